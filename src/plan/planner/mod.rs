//! The planner of `plan new`: a configured agent of any kind is asked to split a goal into
//! a task plan, answered as JSON, checked exactly as `plan check` checks a file, and asked
//! again with what was wrong until the plan is valid or the attempts allowed are spent.
//!
//! The planner works in the repository's work tree, which it may read and must not change:
//! CLI presets start in their read-only mode, commands and CLIs are confined to the
//! planner's own temporary directory where the kernel has Landlock, and the repository's
//! fingerprint before and after is compared (a change is a warning). Its temporary directory
//! (prompt, logs, a CLI's home) is removed however it ends. Nothing here runs a plan, and
//! nothing is written to the repository but the plan file, by [`save`], when asked. What a
//! valid answer is, and how it becomes a plan file, is `answer.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{MAX_TASKS, TaskPlan};
use crate::agent::events::Usage;
use crate::ask::GaveUp;
use crate::ask::respondent::{self, Respondent};
use crate::git::Repo;

mod answer;

use answer::{Planning, schema};

/// Answers a planner may give before `plan new` gives up (`[plan] max_attempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Time limit of a planner, all attempts together (`[plan] timeout`, else its own).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Top-level entries the prompt lists before it stops.
const LISTED_FILES: usize = 200;

/// What the planner is asked.
pub struct Request {
    pub goal: String,
    pub planner: Respondent,
    /// The configured agents' names: what a task's `agents` may name.
    pub agents: Vec<String>,
    /// `templates/plan.md`, not yet filled in.
    pub template: String,
    /// How the planner's processes are confined; `None`: unconfined.
    pub sandbox: Option<crate::run::confine::Sandbox>,
    /// Where the worktrees of runs live (left out of the fingerprint).
    pub worktree_root: PathBuf,
    pub max_attempts: u32,
}

/// A valid plan, as it will be written.
#[derive(Debug)]
pub struct Planned {
    pub plan: TaskPlan,
    /// The plan file's text; it passes `plan check`.
    pub toml: String,
    pub attempts: u32,
    pub usage: Option<Usage>,
    pub warnings: Vec<String>,
}

/// Why no plan was made or written.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// It could not be started, crashed or timed out.
    #[error("planner `{planner}` failed: {why}")]
    Failed { planner: String, why: String },
    /// It answered, but no answer was a valid plan.
    #[error("planner `{planner}` gave no valid plan in {attempts} attempt(s); last: {last}")]
    Invalid {
        planner: String,
        attempts: u32,
        last: String,
    },
    #[error("interrupted: no plan was written")]
    Interrupted,
    #[error("{} exists", path.display())]
    Exists { path: PathBuf },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Asks the planner until it gives a valid plan. Ctrl-C (or SIGTERM, SIGHUP) stops it.
pub async fn plan(repo: Arc<Repo>, req: Request) -> Result<Planned, PlannerError> {
    let room = tempfile::Builder::new()
        .prefix("massgen-planner-")
        .tempdir()
        .map_err(|source| PlannerError::Io {
            what: "cannot create a temporary directory in",
            path: std::env::temp_dir(),
            source,
        })?;
    let dir = room.path().to_path_buf();
    let tree = repo.workdir.clone();
    let files = top_level(&repo);
    let prompt = prompt(&req.template, &req.goal, &req.agents, &files, &tree);
    let prompt_file = dir.join("prompt.md");
    std::fs::write(&prompt_file, &prompt).map_err(|source| PlannerError::Io {
        what: "cannot write",
        path: prompt_file.clone(),
        source,
    })?;
    let prompt_file = prompt_file.display().to_string();
    let tree_s = tree.display().to_string();
    let placeholders: Vec<(String, String)> = [
        ("goal", req.goal.as_str()),
        ("task", &prompt),
        ("prompt", &prompt),
        ("task_file", &prompt_file),
        ("prompt_file", &prompt_file),
        ("worktree", &tree_s),
        ("agent", &req.planner.name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut env: Vec<(String, String)> = [
        ("MASSGEN_GOAL", req.goal.as_str()),
        ("MASSGEN_TASK", &prompt),
        ("MASSGEN_TASK_FILE", &prompt_file),
        ("MASSGEN_PROMPT_FILE", &prompt_file),
        ("MASSGEN_PLANNER", &req.planner.name),
        ("MASSGEN_WORKTREE", &tree_s),
        // Anything it starts must not start a review of its own.
        ("MASSGEN_ACTIVE", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if req.sandbox.is_some() {
        // `/tmp` is not writable for a confined planner: its directory is its temporary one.
        env.push(("TMPDIR".into(), dir.display().to_string()));
    }
    let setting = respondent::Setting {
        dir: dir.clone(),
        tree,
        prompt,
        placeholders,
        env,
        sandbox: req
            .sandbox
            .as_ref()
            .map(|s| s.rules(vec![dir.clone()], Vec::new())),
        max_attempts: req.max_attempts,
    };
    let before = fingerprint(&repo, &req.worktree_root).await;
    let question = Planning {
        agents: &req.agents,
        goal: &req.goal,
        planner: &req.planner.name,
    };
    let (cancel_tx, cancel) = watch::channel(false);
    let mut report = respondent::Report::default();
    let answer = {
        let asked = respondent::ask(&req.planner, &setting, &question, cancel, &mut report);
        tokio::pin!(asked);
        tokio::select! {
            answer = &mut asked => Some(answer),
            _ = crate::sys::stop_signal() => {
                let _ = cancel_tx.send(true);
                // The respondent stops its process group and returns.
                let _ = asked.await;
                None
            }
        }
    };
    let Some(answer) = answer else {
        return Err(PlannerError::Interrupted);
    };
    let mut warnings = report.warnings;
    if let (Some(before), Some(after)) = (before, fingerprint(&repo, &req.worktree_root).await) {
        let changes = crate::git::guard::changes(&before, &after);
        if !changes.is_empty() {
            warnings.push(format!(
                "the repository changed while the planner ran (it should only read it): {}",
                changes.join("; ")
            ));
        }
    }
    drop(room);
    let planner = req.planner.name.clone();
    let (plan, toml) = answer.map_err(|why| match why {
        GaveUp::Failed(why) => PlannerError::Failed { planner, why },
        // A conversation that ended before any answer: nothing was checked.
        GaveUp::Malformed(why) if report.attempts == 0 => PlannerError::Failed { planner, why },
        GaveUp::Malformed(last) => PlannerError::Invalid {
            planner,
            attempts: report.attempts,
            last,
        },
    })?;
    Ok(Planned {
        plan,
        toml,
        attempts: report.attempts,
        usage: report.usage,
        warnings,
    })
}

/// Writes the plan's text at `path` (its directory made when missing), in one step: a
/// reader never sees half a file. An existing file is replaced only when `force`.
pub fn save(path: &Path, text: &str, force: bool) -> Result<(), PlannerError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| PlannerError::Io { what, path, source }
    };
    if !force && path.exists() {
        return Err(PlannerError::Exists {
            path: path.to_owned(),
        });
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    let mut staged = tempfile::Builder::new()
        .prefix(".plan-")
        .suffix(".toml.new")
        .tempfile_in(parent)
        .map_err(io("cannot write in", parent))?;
    std::io::Write::write_all(&mut staged, text.as_bytes()).map_err(io("cannot write", path))?;
    staged
        .as_file()
        .sync_all()
        .map_err(io("cannot write", path))?;
    if force {
        staged.persist(path).map(drop)
    } else {
        // Written by another process meanwhile: still never replaced.
        staged.persist_noclobber(path).map(drop)
    }
    .map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            PlannerError::Exists {
                path: path.to_owned(),
            }
        } else {
            PlannerError::Io {
                what: "cannot write",
                path: path.to_owned(),
                source: e.error,
            }
        }
    })
}

/// `templates/plan.md` filled in.
pub fn prompt(
    template: &str,
    goal: &str,
    agents: &[String],
    files: &[String],
    tree: &Path,
) -> String {
    let schema = serde_json::to_string_pretty(&schema(agents)).expect("a schema serializes");
    let files = if files.is_empty() {
        "(none yet)".to_owned()
    } else {
        files.join("\n")
    };
    crate::agent::fill(
        template,
        &[
            ("goal", goal),
            ("schema", &schema),
            ("agents", &agents.join(", ")),
            ("files", &files),
            ("worktree", &tree.display().to_string()),
            ("max_tasks", &MAX_TASKS.to_string()),
        ],
    )
}

/// The entries of HEAD's tree, directories ending in `/`: enough for the planner to name
/// real places. Empty on an unborn HEAD.
fn top_level(repo: &Repo) -> Vec<String> {
    let local = repo.local();
    let Ok(tree) = local.head_tree() else {
        return Vec::new();
    };
    let mut names: Vec<String> = tree
        .iter()
        .filter_map(Result::ok)
        .map(|e| {
            let name = e.filename().to_string();
            if e.mode().is_tree() { name + "/" } else { name }
        })
        .collect();
    if names.len() > LISTED_FILES {
        let more = names.len() - LISTED_FILES;
        names.truncate(LISTED_FILES);
        names.push(format!("... and {more} more"));
    }
    names
}

/// The repository's fingerprint without what runs make (their branches and worktrees);
/// `None` when it cannot be taken (then nothing is compared).
async fn fingerprint(
    repo: &Arc<Repo>,
    worktree_root: &Path,
) -> Option<crate::git::guard::Fingerprint> {
    let (repo, root) = (repo.clone(), worktree_root.to_owned());
    tokio::task::spawn_blocking(move || {
        let refs = |r: &str| r.starts_with("refs/heads/massgen/") || r == crate::learn::store::REF;
        let worktrees = |path: &Path, _: Option<&str>| path.starts_with(&root);
        let ignore = crate::git::guard::Ignore {
            refs: &refs,
            worktrees: &worktrees,
        };
        crate::git::guard::take(&repo, &ignore).ok()
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_holds_the_goal_the_schema_and_the_files() {
        let text = prompt(
            include_str!("../../../templates/plan.md"),
            "Add {files} sign-up",
            &["claude".to_owned(), "codex".to_owned()],
            &["src/".into(), "Cargo.toml".into()],
            Path::new("/repo"),
        );
        assert_eq!(
            text.matches("Add {files} sign-up").count(),
            1,
            "filled once: {text}"
        );
        assert!(text.contains("src/\nCargo.toml"));
        assert!(text.contains("\"maxItems\": 100"));
        assert!(text.contains("among: claude, codex"));
        assert!(!text.contains("{schema}") && !text.contains("{max_tasks}"));
    }

    #[test]
    fn save_never_replaces_a_file_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans/p.toml");
        save(&path, "one", false).unwrap();
        assert!(matches!(
            save(&path, "two", false),
            Err(PlannerError::Exists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");
        save(&path, "two", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no staged file left");
    }
}
