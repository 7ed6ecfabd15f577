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

/// Starts a detached process that deletes everything in `trash`, if there is anything.
pub fn purge_in_background(trash: &Path) {
    let has_entries = std::fs::read_dir(trash).is_ok_and(|mut d| d.next().is_some());
    if !has_entries {
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

/// Deletes everything in `trash` now; errors are ignored (another purge may be running).
pub fn purge(trash: &Path) {
    let Ok(entries) = std::fs::read_dir(trash) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    let _ = std::fs::remove_dir(trash);
}
