//! Copy-on-write worktrees for a run (`[worktree] mode = "overlay"`, `--worktree-mode`):
//! the base is checked out once, at `<worktree root>/lower/<base>/` (a registered detached
//! worktree shared by every agent and every later run on that base), and each agent works
//! in an overlay of it (`sys::overlay`) mounted at its worktree path inside the private
//! namespace of each of its commands, the trampoline's. Its changes land in
//! `<run root>/.overlay/<agent>/upper` only; outside the namespace its worktree path is an
//! empty directory.
//!
//! Runs using a lower checkout hold a shared `flock` on `lower/<base>.lock` while they run;
//! it is made under the exclusive lock, and `clean` removes it only under that lock once no
//! run's state names it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use nix::fcntl::{Flock, FlockArg};

use super::RunError;
use crate::config::WorktreeMode;
use crate::git::{self, ObjectId, Repo};
use crate::sys::overlay::Overlay;

/// `MASSGEN_OVERLAY_AUTO=1`: `auto` picks the overlay where it works. Without it `auto` is
/// `checkout` for now: the overlay mode is new, and becomes the default only after it has
/// been measured.
pub const AUTO_VAR: &str = "MASSGEN_OVERLAY_AUTO";

/// Whether the run's worktrees are copy-on-write, and a warning when `auto` fell back to
/// checkouts. `overlay` where overlays do not work is refused with the probe's reason.
pub(super) fn resolve(mode: WorktreeMode) -> Result<(bool, Option<String>), RunError> {
    let probe = || {
        std::env::current_exe()
            .map_err(|e| format!("cannot find this program: {e}"))
            .and_then(|exe| crate::sandbox::overlay_probe(&exe))
    };
    match mode {
        WorktreeMode::Checkout => Ok((false, None)),
        WorktreeMode::Overlay => probe()
            .map(|()| (true, None))
            .map_err(|why| RunError::NoOverlay { why }),
        WorktreeMode::Auto if std::env::var_os(AUTO_VAR).is_some_and(|v| v == "1") => {
            Ok(match probe() {
                Ok(()) => (true, None),
                Err(why) => (
                    false,
                    Some(format!(
                        "worktrees are full checkouts: copy-on-write worktrees do not work here ({why})"
                    )),
                ),
            })
        }
        WorktreeMode::Auto => Ok((false, None)),
    }
}

/// The usage error for `what`, not yet supported with copy-on-write worktrees.
pub(super) fn unsupported(what: &str) -> RunError {
    RunError::Usage(format!(
        "{what} is not yet supported with --worktree-mode overlay; use --worktree-mode checkout"
    ))
}

/// Where the checkout of `base` lies, under the worktree root `root`.
pub(super) fn lower_path(root: &Path, base: ObjectId) -> PathBuf {
    root.join("lower").join(base.to_string())
}

fn lock_path(lower: &Path) -> PathBuf {
    lower.with_extension("lock")
}

fn open_lock(lower: &Path) -> Result<File, RunError> {
    let path = lock_path(lower);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(RunError::io("cannot create", parent))?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(RunError::io("cannot open", path))
}

/// The checkout of `base` at `lower` ([`lower_path`]), made unless it is there and complete,
/// and held (a shared lock) until the returned lock is dropped.
pub(super) fn hold_lower(
    repo: &Repo,
    lower: &Path,
    base: ObjectId,
) -> Result<Flock<File>, RunError> {
    let lock = Flock::lock(open_lock(lower)?, FlockArg::LockExclusive)
        .map_err(|(_, e)| RunError::io("cannot lock", lock_path(lower))(e.into()))?;
    if !git::worktree::is_ready(repo, lower) {
        // Left half made by a process killed while checking it out.
        if lower.exists() || git::worktree::registration(repo, lower).is_some() {
            git::worktree::remove(repo, lower)?;
        }
        git::worktree::create_detached(repo, base, lower, &AtomicBool::new(false))?;
    }
    lock.relock(FlockArg::LockShared)
        .map_err(|e| RunError::io("cannot lock", lock_path(lower))(e.into()))?;
    Ok(lock)
}

/// The overlay of the copy-on-write worktree `wt` over `lower`: its layers in
/// `<run root>/.overlay/<agent>/`.
pub fn layers(lower: &Path, wt: &Path) -> Overlay {
    let dir = layers_dir(wt);
    Overlay {
        lower: lower.to_owned(),
        upper: dir.join("upper"),
        work: dir.join("work"),
        target: wt.to_owned(),
    }
}

/// `<run root>/.overlay/<agent>` for the worktree `<run root>/<agent>`.
fn layers_dir(wt: &Path) -> PathBuf {
    let parent = wt.parent().unwrap_or(wt);
    parent
        .join(".overlay")
        .join(wt.file_name().unwrap_or_default())
}

/// Whether `wt` is a copy-on-write worktree (its layers exist).
pub(super) fn is_overlay(wt: &Path) -> bool {
    layers_dir(wt).is_dir()
}

/// Makes a branch at `base` and a copy-on-write worktree over `lower` for each item. On
/// failure everything made so far is removed again.
pub(super) fn create_all(
    repo: &Repo,
    base: ObjectId,
    lower: &Path,
    items: &[git::worktree::NewWorktree],
) -> Result<(), RunError> {
    let mut made: Vec<&git::worktree::NewWorktree> = Vec::new();
    let mut result = Ok(());
    for item in items {
        made.push(item);
        let layers = layers(lower, &item.path);
        let step = repo
            .set_ref(&item.branch, base, None, "massgen: create candidate branch")
            .map_err(RunError::from)
            .and_then(|()| {
                for d in [&layers.upper, &layers.work] {
                    std::fs::create_dir_all(d).map_err(RunError::io("cannot create", d))?;
                }
                git::worktree::register_overlay(
                    repo,
                    &item.path,
                    &layers.upper,
                    lower,
                    &item.branch,
                )?;
                Ok(())
            });
        if let Err(e) = step {
            result = Err(e);
            break;
        }
    }
    if result.is_err() {
        for item in made {
            let _ = discard(repo, &item.path);
            let _ = repo.delete_ref(&item.branch);
        }
    }
    result
}

/// Removes the copy-on-write worktree `wt`: its registration, its directory and its layers
/// (whatever they hold: callers snapshot first).
pub(super) fn discard(repo: &Repo, wt: &Path) -> Result<(), git::GitError> {
    git::worktree::unregister_overlay(repo, wt)?;
    let dir = layers_dir(wt);
    crate::sys::overlay::make_work_removable(&dir.join("work"));
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(git::GitError::Io {
                what: "cannot remove the overlay's layers",
                path: dir,
                source: e,
            });
        }
        _ => {}
    }
    if let Some(parent) = dir.parent() {
        // `.overlay` once its last agent's layers are gone.
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// Removes the base checkouts under `root/lower` that no run's state in `runs` names and no
/// run holds; returns what it says.
pub(super) fn remove_unused_lowers(
    repo: &Repo,
    root: &Path,
    runs: &[super::state::RunState],
) -> Vec<super::Said> {
    use super::Said;
    let mut said = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join("lower")) else {
        return said;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "lock") || !path.is_dir() {
            continue;
        }
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let named = |l: &Path| l == path || std::fs::canonicalize(l).is_ok_and(|l| l == canonical);
        if runs.iter().any(|r| r.lower.as_deref().is_some_and(named)) {
            continue;
        }
        let Ok(file) = open_lock(&path) else {
            continue;
        };
        // Held by a run that has not recorded it yet, or making it: left alone.
        let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        match git::worktree::remove(repo, &path) {
            Ok(()) => said.push(Said::Info(format!(
                "massgen: removed the unused base checkout {}",
                path.display()
            ))),
            Err(e) => said.push(Said::Warn(format!(
                "cannot remove the base checkout {}: {e}",
                path.display()
            ))),
        }
    }
    said
}
