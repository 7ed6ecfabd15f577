//! Where a run's files live: its state, task, logs and patches under `.massgen/runs/<id>/`
//! in the work tree, and its worktrees outside the work tree.
//!
//! Worktrees go under the user's cache directory (`$XDG_CACHE_HOME/git-massgen/worktrees/
//! <repo>-<hash>/<run>/<agent>`) by default: a checkout nested inside the user's work tree
//! would be walked by their test runners, file watchers and build tools (cargo looks upward
//! for a workspace), and one inside `.git` sits under the work tree too.

use std::path::{Path, PathBuf};

use crate::git::Repo;

/// The `.gitignore` written into `.massgen/` so runtime state never shows in `git status`.
pub const MASSGEN_GITIGNORE: &str = "# git-massgen runtime state; config.toml and templates/ are meant to be committed\n/runs/\n/reviews/\n";

/// Paths of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub id: String,
    pub dir: PathBuf,
}

impl RunDir {
    /// The run `id` of `repo`.
    pub fn new(repo: &Repo, id: &str) -> RunDir {
        RunDir {
            id: id.to_owned(),
            dir: runs_dir(repo).join(id),
        }
    }
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn task_file(&self) -> PathBuf {
        self.dir.join("task.txt")
    }
    pub fn agent_log(&self, agent: &str, stream: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{agent}.{stream}.log"))
    }
    pub fn setup_log(&self, agent: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{agent}.setup.log"))
    }
    pub fn test_log(&self, agent: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{agent}.test.log"))
    }
    /// The prompt an agent was given: the task in the prompt template.
    pub fn prompt_file(&self, agent: &str) -> PathBuf {
        self.dir.join("prompts").join(format!("{agent}.md"))
    }
    /// A CLI agent's own configuration home (its config files, sessions and caches).
    pub fn agent_home(&self, agent: &str) -> PathBuf {
        self.dir.join("homes").join(agent)
    }
    pub fn patch(&self, agent: &str) -> PathBuf {
        self.dir.join("patches").join(format!("{agent}.patch"))
    }
}

/// Where a run's directory is made before it is renamed into place with its state:
/// `.massgen/runs/.<id>.new-<pid>`.
pub fn staging_dir(repo: &Repo, id: &str) -> PathBuf {
    runs_dir(repo).join(format!(".{id}.new-{}", std::process::id()))
}

/// The run id and process of a directory name made by [`staging_dir`].
pub fn staged_run(name: &str) -> Option<(&str, u32)> {
    let (id, pid) = name.strip_prefix('.')?.rsplit_once(".new-")?;
    Some((id, pid.parse().ok()?))
}

/// `.massgen/runs`
pub fn runs_dir(repo: &Repo) -> PathBuf {
    repo.massgen_dir().join("runs")
}

/// Where every run's candidate branches live.
pub const BRANCHES: &str = "refs/heads/massgen/";

/// The prefix of one run's candidate branches, `refs/heads/massgen/<run>/`.
pub fn branch_prefix(run: &str) -> String {
    format!("{BRANCHES}{run}/")
}

/// The branch of a candidate, as a full ref name.
pub fn branch_ref(run: &str, agent: &str) -> String {
    format!("{}{agent}", branch_prefix(run))
}

/// The run a candidate branch (full ref name) belongs to, if it is one.
/// Only a run id counts: `massgen/plan/…` (a plan's integration branch) is no run's.
pub fn run_of_branch(name: &str) -> Option<&str> {
    name.strip_prefix(BRANCHES)
        .and_then(|rest| rest.split_once('/'))
        .map(|(run, _)| run)
        .filter(|run| crate::sys::is_run_id(run))
}

/// Where task plans' integration branches live, `refs/heads/massgen/plan/<name>/…`: they
/// move while the runs of the plan's tasks go on, which is no breach of those runs.
pub const PLAN_BRANCHES: &str = "refs/heads/massgen/plan/";

/// The state of running task plans, `.massgen/runs/.plans/`: runtime state, ignored with
/// the runs (and skipped by run scans, as every dot-named entry there is).
pub fn plans_state_dir(repo: &Repo) -> PathBuf {
    runs_dir(repo).join(".plans")
}

/// What `run` writes when `.massgen/` holds no configuration: runtime state only, so the
/// directory ignores everything in it, itself included, and never shows in `git status`.
pub const RUNTIME_ONLY_GITIGNORE: &str =
    "# git-massgen runtime state only; `git massgen init` replaces this file\n*\n";

/// Writes `.massgen/.gitignore` when it is missing. Without a `config.toml` next to it the
/// whole directory is runtime state and is ignored entirely.
pub fn ensure_gitignore(repo: &Repo) -> std::io::Result<()> {
    let dir = repo.massgen_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(".gitignore");
    // An empty one can only be what a kill in the middle of an earlier write left.
    if std::fs::metadata(&path).map_or(true, |m| m.len() == 0) {
        let text = if dir.join("config.toml").exists() {
            MASSGEN_GITIGNORE
        } else {
            RUNTIME_ONLY_GITIGNORE
        };
        // Written whole or not at all: a temporary file in the git directory (where a kill
        // leaves nothing `git status` shows), then a rename; a plain write where the two
        // are on different file systems.
        let mut tmp = tempfile::NamedTempFile::new_in(&repo.git_dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        if let Err(e) = tmp.persist(&path) {
            drop(e.file);
            std::fs::write(&path, text)?;
        }
    }
    Ok(())
}

/// The directory under which this repository's worktrees are created.
pub fn worktree_root(repo: &Repo, configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return if p.is_absolute() {
            p.to_owned()
        } else {
            repo.workdir.join(p)
        };
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match cache {
        Some(cache) => cache
            .join("git-massgen")
            .join("worktrees")
            .join(repo_key(repo)),
        None => repo.common_dir.join("massgen").join("worktrees"),
    }
}

/// `<work tree name>-<hash of the common dir>`: readable, and distinct for two clones with
/// the same name.
fn repo_key(repo: &Repo) -> String {
    let name = repo
        .workdir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    // FNV-1a: stable across builds, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in repo.common_dir.to_string_lossy().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{name}-{:08x}", h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_run_ids_own_branches() {
        let run = "20261206-121530-ab12";
        assert_eq!(run_of_branch(&branch_ref(run, "claude")), Some(run));
        assert_eq!(
            run_of_branch("refs/heads/massgen/plan/auth/integration"),
            None
        );
        assert_eq!(run_of_branch("refs/heads/main"), None);
    }
}
