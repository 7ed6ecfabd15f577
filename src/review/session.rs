//! One review from start to end: its directory, the reviewed tree checked out in a detached
//! worktree, the reviewers run in parallel, their findings clustered, and everything it
//! created removed again, whatever happened in between.
//!
//! A review's files live in `.massgen/reviews/<id>/` (ignored by git: the directory holds a
//! `.gitignore` of `*`): `diff.patch`, `files.txt`, `logs/`, `report.json`, and while it runs
//! `active.json` naming its process and worktree. A review killed before it could clean up
//! leaves `active.json` behind; the next review removes that worktree.
//!
//! Checking out a whole tree is the slow part of a review (seconds for a few thousand files
//! on a journaled disk), so one review at a time reuses a kept worktree,
//! `<worktree root>/reviews/tree`: it is moved to the reviewed commit with a forced checkout
//! and `git clean -fdx`, which rewrites only what differs. The review using it holds an
//! exclusive `flock` on `.massgen/reviews/tree.lock`; a second review at the same time
//! checks out a worktree of its own and removes it afterwards. Git runs in a review
//! worktree only with `--git-dir` naming its registration, after checking that its `.git`
//! still points there: a reviewer that deletes `.git` cannot make git act on the user's
//! repository.
//! `git massgen clean` removes the kept worktree.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::reviewer::{self, Reviewer, Setting};
use super::target::Target;
use super::{Report, ReviewerOutcome, cluster};
use crate::git::{GitError, Repo};

/// Reviews kept on disk; older ones are removed when a new one starts.
pub const KEEP_REVIEWS: usize = 20;

/// What a review is asked to do.
pub struct Request {
    pub target: Target,
    pub reviewers: Vec<Reviewer>,
    pub quorum: usize,
    /// `review.md`, not yet filled in.
    pub template: String,
    pub diff_budget: usize,
    pub max_attempts: u32,
    /// Where the reviewed tree is checked out (`<worktree root>/reviews/<id>`).
    pub worktree_root: PathBuf,
    /// Ignored files of the user's work tree copied into the reviewed tree
    /// (`[worktree] include`, `.worktreeinclude`).
    pub include: Vec<String>,
    /// How reviewers are confined (`[sandbox]`): they may write only the review's directory.
    pub sandbox: crate::run::confine::Sandbox,
}

/// How a review ended.
pub struct Done {
    pub report: Report,
    /// Ctrl-C stopped it; the report holds what finished before.
    pub interrupted: bool,
    /// The reviewers changed files in the reviewed tree (discarded with it).
    pub modified: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Sandbox(#[from] crate::run::RunError),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ReviewError + 'a {
    move |source| ReviewError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// `.massgen/reviews`
pub fn reviews_dir(repo: &Repo) -> PathBuf {
    repo.massgen_dir().join("reviews")
}

/// A review in progress, as recorded on disk.
#[derive(Debug, Serialize, Deserialize)]
struct Active {
    pid: u32,
    worktree: PathBuf,
}

/// Removes the worktrees of reviews whose process is gone, and all but the newest
/// [`KEEP_REVIEWS`] review directories. Returns the worktrees removed.
///
/// A record is trusted only as far as git confirms it: its worktree must lie under
/// `<worktree_root>/reviews/` and be a registered worktree of this repository whose `.git`
/// points back at its registration. Anything else is left alone (a record can come from
/// anywhere, even a commit).
pub fn sweep(repo: &Repo, worktree_root: &Path) -> Vec<PathBuf> {
    let dir = reviews_dir(repo);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut ids: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    ids.sort();
    let ours = worktree_root.join("reviews");
    let mut removed = Vec::new();
    let mut live = 0;
    for path in ids.iter().rev() {
        let active = std::fs::read(path.join("active.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Active>(&b).ok());
        if let Some(a) = active {
            if crate::run::state::process_alive(a.pid) {
                continue;
            }
            let wt = &a.worktree;
            let confirmed = wt.is_absolute()
                && wt.starts_with(&ours)
                && !wt
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                && crate::git::worktree::intact_registration(repo, wt).is_some();
            if confirmed && crate::git::worktree::remove(repo, wt).is_ok() {
                removed.push(a.worktree.clone());
            }
            let _ = std::fs::remove_file(path.join("active.json"));
        }
        live += 1;
        if live > KEEP_REVIEWS {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    removed
}

/// The kept worktree, and the lock file saying which review uses it.
fn slot_paths(repo: &Repo, worktree_root: &Path) -> (PathBuf, PathBuf) {
    (
        worktree_root.join("reviews").join("tree"),
        reviews_dir(repo).join("tree.lock"),
    )
}

/// Takes the kept worktree's lock (an exclusive `flock`, released by the kernel when the
/// process ends however it ends), unless another review holds it.
fn lock_slot(lock: &Path) -> Option<Flock<std::fs::File>> {
    if let Some(dir) = lock.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .ok()?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

/// `git` in a worktree whose registration is `admin`, never in an enclosing repository,
/// and without the repository's hooks (a checkout would run post-checkout).
fn git_in(path: &Path, admin: &Path) -> crate::git::cmd::Git {
    let mut git = crate::git::cmd::Git::new(path);
    git.args(["-c", "core.hooksPath=/dev/null"])
        .arg(format!("--git-dir={}", admin.display()))
        .arg(format!("--work-tree={}", path.display()));
    git
}

/// Moves the kept worktree to `commit` (creating it when missing or unusable).
fn prepare_slot(repo: &Repo, path: &Path, commit: crate::git::ObjectId) -> Result<(), GitError> {
    if let Some(admin) = crate::git::worktree::intact_registration(repo, path) {
        let moved = git_in(path, &admin)
            .args(["checkout", "-q", "--detach", "--force"])
            .arg(commit.to_string())
            .run()
            .and_then(|_| git_in(path, &admin).args(["clean", "-fdxq"]).run());
        if moved.is_ok() {
            return Ok(());
        }
    }
    if path.exists() || crate::git::worktree::registration(repo, path).is_some() {
        crate::git::worktree::remove(repo, path)?;
    }
    crate::git::worktree::create_detached(repo, commit, path, &AtomicBool::new(false))
}

/// Removes the kept review worktree, unless a review is using it. Returns it when removed.
pub fn remove_slot(repo: &Repo, worktree_root: &Path) -> Result<Option<PathBuf>, GitError> {
    let (path, lock) = slot_paths(repo, worktree_root);
    if !path.exists() && crate::git::worktree::registration(repo, &path).is_none() {
        return Ok(None);
    }
    let Some(_held) = lock_slot(&lock) else {
        return Ok(None);
    };
    crate::git::worktree::remove(repo, &path).map(|()| Some(path))
}

/// Runs a review. `on_done` is told about each reviewer as it finishes.
pub async fn run(
    repo: Arc<Repo>,
    req: Request,
    on_done: Arc<dyn Fn(&ReviewerOutcome) + Send + Sync>,
) -> Result<Done, ReviewError> {
    // Refused before anything is made when the sandbox is required and missing.
    let (sandbox, _, _) = crate::run::confine::resolve(&req.sandbox)?;
    let id = crate::run::new_run_id();
    let root = reviews_dir(&repo);
    std::fs::create_dir_all(&root).map_err(io("cannot create", &root))?;
    let ignore = root.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "# git-massgen reviews: runtime state\n*\n")
            .map_err(io("cannot write", &ignore))?;
    }
    let _ = crate::run::layout::ensure_gitignore(&repo);
    let (swept_repo, swept_root) = (repo.clone(), req.worktree_root.clone());
    tokio::task::spawn_blocking(move || sweep(&swept_repo, &swept_root))
        .await
        .unwrap_or_default();
    let dir = root.join(&id);
    std::fs::create_dir_all(dir.join("logs")).map_err(io("cannot create", &dir))?;

    let (patch, files) = super::target::diff(&repo, &req.target)?;
    let mut report = Report {
        id: id.clone(),
        target: req.target.label.clone(),
        base: req
            .target
            .base_commit
            .map_or_else(|| req.target.base.to_string(), |c| c.to_string()),
        head: req.target.head.to_string(),
        files: files.clone(),
        quorum: req.quorum,
        ..Default::default()
    };
    let diff_file = dir.join("diff.patch");
    let files_file = dir.join("files.txt");
    std::fs::write(&diff_file, &patch).map_err(io("cannot write", &diff_file))?;
    std::fs::write(&files_file, files.join("\n") + "\n")
        .map_err(io("cannot write", &files_file))?;
    if files.is_empty() {
        write_report(&dir, &report);
        return Ok(Done {
            report,
            interrupted: false,
            modified: Vec::new(),
        });
    }

    let (slot, lock) = slot_paths(&repo, &req.worktree_root);
    let held = lock_slot(&lock);
    let slotted = held.is_some();
    let worktree = if slotted {
        slot
    } else {
        req.worktree_root.join("reviews").join(&id)
    };
    // A worktree of its own is recorded before it exists, so that a kill at any point
    // leaves it findable.
    let active = dir.join("active.json");
    if !slotted {
        let record = serde_json::to_vec(&Active {
            pid: std::process::id(),
            worktree: worktree.clone(),
        })
        .expect("serializes");
        std::fs::write(&active, record).map_err(io("cannot write", &active))?;
    }
    let (head, wt) = (req.target.head, worktree.clone());
    let made_repo = repo.clone();
    let include = req.include.clone();
    let made = tokio::task::spawn_blocking(move || {
        if slotted {
            prepare_slot(&made_repo, &wt, head)
        } else {
            crate::git::worktree::create_detached(&made_repo, head, &wt, &AtomicBool::new(false))
        }?;
        crate::run::setup::bring_in(&made_repo, &include, &[], &wt, &wt)
            .map(drop)
            .map_err(|why| GitError::Other(format!("cannot bring in ignored files: {why}")))
    })
    .await
    .unwrap_or_else(|e| Err(GitError::Other(format!("checkout thread failed: {e}"))));
    if let Err(e) = made {
        if !slotted {
            let _ = std::fs::remove_file(&active);
        }
        return Err(e.into());
    }
    // Where git may be run for this worktree (reviewers can delete or replace its `.git`).
    let admin = crate::git::worktree::intact_registration(&repo, &worktree);

    let (cut, was_cut) = crate::ask::cut(&patch, req.diff_budget);
    let diff_text = if was_cut {
        format!(
            "{cut}\n[the diff is cut here; read the rest in {}]\n",
            diff_file.display()
        )
    } else {
        cut
    };
    let base = report.base.clone();
    let prompt = crate::agent::fill(
        &req.template,
        &[
            ("target", &req.target.label),
            ("files", &files.join("\n")),
            ("diff", &diff_text),
            ("diff_file", &diff_file.display().to_string()),
            ("worktree", &worktree.display().to_string()),
            ("base", &base),
            ("head", &report.head),
        ],
    );
    let setting = Setting {
        id: id.clone(),
        dir: dir.clone(),
        worktree: worktree.clone(),
        diff_file,
        files_file,
        base,
        head: report.head.clone(),
        prompt,
        max_attempts: req.max_attempts,
        sandbox: sandbox.map(|s| s.rules(Vec::new(), Vec::new())),
    };
    let (cancel_tx, cancel) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for r in req.reviewers.clone() {
        let (setting, cancel, on_done) = (setting.clone(), cancel.clone(), on_done.clone());
        tasks.spawn(async move {
            let outcome = reviewer::review(&r, &setting, cancel).await;
            on_done(&outcome);
            outcome
        });
    }
    let mut interrupted = false;
    let mut outcomes = Vec::new();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(o)) => outcomes.push(o),
                Some(Err(e)) => outcomes.push(ReviewerOutcome {
                    error: Some(format!("the reviewer's task failed: {e}")),
                    ..Default::default()
                }),
                None => break,
            },
            _ = crate::sys::stop_signal(), if !interrupted => {
                interrupted = true;
                let _ = cancel_tx.send(true);
            }
        }
    }
    outcomes.sort_by_key(|o| req.reviewers.iter().position(|r| r.name == o.name));

    let mut modified = Vec::new();
    if crate::git::worktree::intact_registration(&repo, &worktree).is_none() {
        modified.push(".git (the worktree's link to the repository)".to_owned());
    }
    if let Some(admin) = &admin {
        modified.extend(modified_paths(&worktree, admin));
    }
    let removed = if slotted {
        // Kept for the next review, which puts it at its own commit.
        drop(held);
        Ok(())
    } else {
        let discard_repo = repo.clone();
        let trash = crate::run::trash::dir(&req.worktree_root);
        let wt = worktree.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let r = crate::git::worktree::discard(&discard_repo, &wt, &trash);
            crate::run::trash::purge_in_background(&trash);
            r
        })
        .await
        .unwrap_or_else(|e| Err(GitError::Other(format!("cleanup thread failed: {e}"))));
        if removed.is_ok() {
            let _ = std::fs::remove_file(&active);
        }
        removed
    };

    let (kept, dropped) = cluster::cluster(&outcomes, req.quorum);
    report.reviewers = outcomes;
    report.findings = kept;
    report.dropped = dropped;
    write_report(&dir, &report);
    removed?;
    Ok(Done {
        report,
        interrupted,
        modified,
    })
}

fn write_report(dir: &Path, report: &Report) {
    if let Ok(bytes) = serde_json::to_vec_pretty(report) {
        let _ = crate::run::state::write_atomic(&dir.join("report.json"), &bytes);
    }
}

/// Paths the reviewers changed in the reviewed tree.
fn modified_paths(worktree: &Path, admin: &Path) -> Vec<String> {
    git_in(worktree, admin)
        .args(["status", "--porcelain", "--untracked-files=all"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.get(3..).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
