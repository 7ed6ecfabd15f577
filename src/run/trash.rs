//! Deleting discarded worktrees off the critical path.
//!
//! Removing a checkout of 100,000 files takes seconds; a run should not wait for it. Worktrees
//! are renamed into `<worktree root>/.trash/` (see [`crate::git::worktree::discard`]) and a
//! detached `git-massgen purge-trash DIR` process deletes them. If that process dies, the
//! next run or `clean` starts another one; nothing in the trash is ever needed again.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The trash directory for worktrees under `worktree_root` (the repository-level root).
pub fn dir(worktree_root: &Path) -> PathBuf {
    worktree_root.join(".trash")
}

/// The file holding the pid of the process purging `trash`, beside it (not inside, so the
/// purge never deletes its own lock).
fn lock_file(trash: &Path) -> PathBuf {
    trash.with_extension("purging")
}

/// Whether a purge of `trash` is already running; it picks up whatever is added meanwhile.
fn purge_running(trash: &Path) -> bool {
    std::fs::read_to_string(lock_file(trash))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(crate::run::state::process_alive)
}

/// Starts a detached process that deletes everything in `trash`, if there is anything and
/// no purge is running yet.
pub fn purge_in_background(trash: &Path) {
    let has_entries = std::fs::read_dir(trash).is_ok_and(|mut d| d.next().is_some());
    if !has_entries || purge_running(trash) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        purge(trash);
        return;
    };
    let spawned = Command::new(exe)
        .arg("purge-trash")
        .arg(trash)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C in the user's terminal does not stop it.
        .process_group(0)
        .spawn();
    if spawned.is_err() {
        purge(trash);
    }
}

/// Deletes everything in `trash` now, until it stays empty; errors are ignored (another
/// purge may be running).
pub fn purge(trash: &Path) {
    let lock = lock_file(trash);
    let _ = std::fs::write(&lock, std::process::id().to_string());
    // Worktrees discarded while this runs are picked up by the next pass.
    for _ in 0..100 {
        let Ok(entries) = std::fs::read_dir(trash) else {
            break;
        };
        let mut any = false;
        for entry in entries.flatten() {
            any = true;
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        if !any {
            break;
        }
    }
    let _ = std::fs::remove_dir(trash);
    let _ = std::fs::remove_file(&lock);
}
