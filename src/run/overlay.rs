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
        WorktreeMode::Auto => Ok(match probe() {
            Ok(()) => (true, None),
            Err(why) => (
                false,
                Some(format!(
                    "worktrees are full checkouts: copy-on-write worktrees do not work here ({why})"
                )),
            ),
        }),
    }
}

/// Where the checkout of `base` lies, under the worktree root `root`.
pub fn lower_path(root: &Path, base: ObjectId) -> PathBuf {
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

/// The lock of the checkout at `lower`, taken as `how`: `None` when a non-blocking lock is
/// held elsewhere. A lock file removed (with its checkout, by `clean`) between opening and
/// locking it is opened again, so that two processes never hold locks on different files.
fn lock(lower: &Path, how: FlockArg) -> Result<Option<Flock<File>>, RunError> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let lock = match Flock::lock(open_lock(lower)?, how) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(RunError::io("cannot lock", lock_path(lower))(e.into())),
        };
        let held = lock.metadata().map(|m| (m.dev(), m.ino()));
        let named = std::fs::metadata(lock_path(lower)).map(|m| (m.dev(), m.ino()));
        if let (Ok(held), Ok(named)) = (held, named)
            && held == named
        {
            return Ok(Some(lock));
        }
    }
}

/// The checkout of `base` at `lower` ([`lower_path`]), made unless it is there and complete,
/// and held (a shared lock) until the returned lock is dropped.
pub fn hold_lower(repo: &Repo, lower: &Path, base: ObjectId) -> Result<Flock<File>, RunError> {
    let lock = lock(lower, FlockArg::LockExclusive)?.expect("a blocking lock is taken");
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
pub fn create_all(
    repo: &Repo,
    base: ObjectId,
    lower: &Path,
    items: &[git::worktree::NewWorktree],
) -> Result<(), RunError> {
    let make = |item: &git::worktree::NewWorktree| {
        repo.set_ref(&item.branch, base, None, "massgen: create candidate branch")?;
        register(repo, lower, item)
    };
    all_or_none(items, make, |item| {
        let _ = discard(repo, &item.path);
        let _ = repo.delete_ref(&item.branch);
    })
}

/// The layers of `item`'s copy-on-write worktree over `lower`, and its registration on its
/// branch (which must exist).
fn register(repo: &Repo, lower: &Path, item: &git::worktree::NewWorktree) -> Result<(), RunError> {
    let layers = layers(lower, &item.path);
    for d in [&layers.upper, &layers.work] {
        std::fs::create_dir_all(d).map_err(RunError::io("cannot create", d))?;
    }
    git::worktree::register_overlay(repo, &item.path, &layers.upper, lower, &item.branch)?;
    Ok(())
}

/// `make` for each item in turn; when one fails, `undo` for every item tried so far (the
/// failed one too), and its error.
fn all_or_none(
    items: &[git::worktree::NewWorktree],
    mut make: impl FnMut(&git::worktree::NewWorktree) -> Result<(), RunError>,
    undo: impl Fn(&git::worktree::NewWorktree),
) -> Result<(), RunError> {
    for (i, item) in items.iter().enumerate() {
        if let Err(e) = make(item) {
            items[..=i].iter().for_each(undo);
            return Err(e);
        }
    }
    Ok(())
}

/// The private git directory of the copy-on-write worktree `wt` over `lower`, which the
/// `.git` file in its upper directory names.
fn registration(lower: &Path, wt: &Path) -> Result<PathBuf, git::GitError> {
    git::worktree::git_dir_of(&layers(lower, wt).upper)
        .ok_or_else(|| git::GitError::Other(format!("{} is not a worktree", wt.display())))
}

/// Removes the copy-on-write worktree `wt`: its registration, its directory and its layers
/// (whatever they hold: callers snapshot first).
pub fn discard(repo: &Repo, wt: &Path) -> Result<(), git::GitError> {
    git::worktree::unregister_overlay(repo, wt)?;
    remove_layers(wt)
}

/// Removes the layers of the copy-on-write worktree `wt`, whatever they hold.
fn remove_layers(wt: &Path) -> Result<(), git::GitError> {
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
        // Held by a run that has not recorded it yet, or making it: left alone.
        let Ok(Some(_lock)) = lock(&path, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        match git::worktree::remove(repo, &path) {
            Ok(()) => {
                // Under the lock: a process that opened the file meanwhile opens it again.
                let _ = std::fs::remove_file(lock_path(&path));
                said.push(Said::Info(format!(
                    "massgen: removed the unused base checkout {}",
                    path.display()
                )));
            }
            Err(e) => said.push(Said::Warn(format!(
                "cannot remove the base checkout {}: {e}",
                path.display()
            ))),
        }
    }
    // `lower/` once its last checkout is gone.
    let _ = std::fs::remove_dir(root.join("lower"));
    said
}

/// `git -C wt …` inside the copy-on-write worktree `wt` over `lower`: through the
/// trampoline, which mounts its overlay in a namespace of its own, and comparing only sizes
/// and times as every command inside does.
pub(super) fn git_inside(lower: &Path, wt: &Path) -> Result<git::cmd::Git, git::GitError> {
    let exe = std::env::current_exe()
        .map_err(|e| git::GitError::Other(format!("cannot find this program: {e}")))?;
    let rules = crate::sandbox::Rules {
        overlay: Some(layers(lower, wt)),
        ..Default::default()
    };
    let mut prefix = vec![exe.into_os_string()];
    prefix.extend(rules.to_args());
    let mut git = git::cmd::Git::through(&prefix, wt);
    git.args(["-c", "core.checkStat=minimal"]);
    Ok(git)
}

/// The tree of the copy-on-write worktree `wt` over `lower` as `git add -A` inside it
/// records it, for a snapshot where the agent changed ignore rules or attributes (whose new
/// versions only the merged tree has): a copy of its index brought up to date inside (only
/// changed files are read), then written as a tree. Links to the user's directories
/// (`[worktree] share`) are left out, as snapshots leave them out.
pub fn tree_inside(repo: &Repo, lower: &Path, wt: &Path) -> Result<ObjectId, git::GitError> {
    let admin = registration(lower, wt)?;
    let index = admin.join("massgen-snapshot-index");
    std::fs::copy(admin.join("index"), &index).map_err(|source| git::GitError::Io {
        what: "cannot copy the worktree's index",
        path: index.clone(),
        source,
    })?;
    let tree = (|| {
        let mut add = git_inside(lower, wt)?;
        add.env("GIT_INDEX_FILE", &index)
            .args(["add", "-A", "--", "."]);
        for link in git::worktree::shared_links(&admin) {
            add.arg(format!(":(exclude,top,literal){link}"));
        }
        add.run()?;
        // Only the index and the objects: no need to enter the overlay.
        let out = git::cmd::Git::new(&repo.workdir)
            .env("GIT_INDEX_FILE", &index)
            .arg("write-tree")
            .run()?;
        git::cmd::printed_id(&out.stdout)
    })();
    let _ = std::fs::remove_file(&index);
    tree
}

/// [`git::snapshot::show_candidate`] for the copy-on-write worktree `wt` over `lower`, its
/// reset run inside the overlay.
pub(super) fn sync_index(lower: &Path, wt: &Path, branch: &str) -> Result<(), git::GitError> {
    let admin = registration(lower, wt)?;
    git::snapshot::show_candidate(&admin, branch, git_inside(lower, wt)?)
}

/// Copy-on-write worktrees again for the candidate branches of `items` (a run continued
/// after its worktrees went): each registered over `lower` at the base, then moved to its
/// branch's tip inside (`git read-tree -m -u`: only the files that differ are written, into
/// its upper directory). On failure everything made is removed again; the branches stay.
pub(super) fn reattach_all(
    repo: &Repo,
    base: ObjectId,
    lower: &Path,
    items: &[git::worktree::NewWorktree],
) -> Result<(), RunError> {
    let make = |item: &git::worktree::NewWorktree| {
        let tip = repo
            .ref_target(&item.branch)?
            .ok_or_else(|| RunError::Usage(format!("branch {} is gone", item.branch)))?;
        register(repo, lower, item)?;
        git_inside(lower, &item.path)?
            .args(["read-tree", "-m", "-u"])
            .arg(base.to_string())
            .arg(tip.to_string())
            .run()?;
        Ok(())
    };
    all_or_none(items, make, |item| {
        let _ = discard(repo, &item.path);
    })
}

/// Turns the copy-on-write worktree `wt` over `lower` (snapshotted already) into an ordinary
/// worktree of `branch` at the same path, for `--keep`: checked out, then given what its
/// upper directory holds beyond the candidate's tracked files (ignored and untracked files:
/// dependencies, build output), and its layers removed. A worktree seen outside its
/// namespace costs a full checkout; only kept ones pay it.
pub(super) fn materialize(
    repo: &Repo,
    lower: &Path,
    wt: &Path,
    branch: &str,
) -> Result<(), RunError> {
    let upper = layers(lower, wt).upper;
    git::worktree::unregister_overlay(repo, wt)?;
    let item = git::worktree::NewWorktree {
        branch: branch.to_owned(),
        path: wt.to_owned(),
    };
    git::worktree::attach_all(repo, &[item], &AtomicBool::new(false))?;
    copy_missing(&upper, wt, true).map_err(RunError::io("cannot copy into", wt))?;
    Ok(remove_layers(wt)?)
}

/// Copies what `from` (an upper directory) has and `to` lacks; whiteouts are not copied.
fn copy_missing(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && name == ".git" {
            continue;
        }
        let dest = to.join(&name);
        match std::fs::symlink_metadata(&dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::sys::copy::copy_tree(&entry.path(), &dest)?;
            }
            Ok(m) if m.is_dir() && entry.file_type()?.is_dir() => {
                copy_missing(&entry.path(), &dest, false)?;
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
