//! Making a fresh worktree ready before its agent starts: the `[worktree] setup` commands
//! (install dependencies, build once), run with `sh -c` one after another in the worktree,
//! within one time limit, with their output in `logs/<agent>.setup.log`.

use std::path::Path;
use std::time::Instant;

use tokio::sync::watch;

use super::RunError;
use super::context::{Plan, Shared};
use crate::agent::process::{self, Job};
use crate::git::cmd::GIT_REPO_ENV;

/// Runs the setup commands of `plan` in `wt` for `agent`. `Ok(Err(why))` when one failed
/// (`why`: the last line of its output, or how it ended); `Err` when the run is interrupted
/// or a log cannot be written.
pub(super) async fn set_up(
    shared: &Shared,
    plan: &Plan,
    agent: &str,
    wt: &Path,
    cancel: &watch::Receiver<bool>,
) -> Result<Result<(), String>, RunError> {
    let log = shared.dir.setup_log(agent);
    let env = shared.command_env(agent, wt);
    let started = Instant::now();
    for command in &plan.setup {
        let Some(left) = plan.setup_timeout.checked_sub(started.elapsed()) else {
            return Ok(Err(format!(
                "timed out after {}s",
                plan.setup_timeout.as_secs()
            )));
        };
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(RunError::io("cannot create log", &log))?;
        {
            use std::io::Write;
            let _ = writeln!(out, "$ {command}");
        }
        // Where this command's output starts: its last line is the reason it failed.
        let from = out.metadata().map(|m| m.len()).unwrap_or(0);
        let argv = vec!["sh".to_owned(), "-c".to_owned(), command.clone()];
        let job = Job {
            argv: &argv,
            cwd: wt,
            env: env.clone(),
            env_remove: GIT_REPO_ENV,
            stderr: out
                .try_clone()
                .map_err(RunError::io("cannot create log", &log))?,
            stdout: out,
            timeout: left,
            watch: None,
        };
        let finished = process::supervise(job, cancel.clone(), |_| {})
            .await
            .map_err(RunError::io("cannot run a setup command in", wt))?;
        if finished.cancelled {
            return Err(RunError::Interrupted);
        }
        if finished.timed_out {
            return Ok(Err(format!(
                "`{command}` timed out after {}s",
                plan.setup_timeout.as_secs()
            )));
        }
        if !finished.success() {
            let text = std::fs::read(&log).unwrap_or_default();
            let own = text.get(from as usize..).unwrap_or_default();
            let last = String::from_utf8_lossy(own)
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned);
            return Ok(Err(last.unwrap_or_else(|| {
                format!("`{command}` failed ({})", finished.describe())
            })));
        }
    }
    Ok(Ok(()))
}

/// Copies into `wt` the ignored files and directories of the user's work tree that
/// `patterns` (gitignore syntax) name: `.env` and other configuration the tests read,
/// dependency trees. `std::fs::copy` uses `copy_file_range` on Linux and `clonefile` on
/// macOS, which share the data where the file system supports it (not measured yet); links
/// are copied as links. Returns how many files were copied.
pub(super) fn bring_in(
    repo: &crate::git::Repo,
    patterns: &[String],
    wt: &Path,
) -> Result<usize, String> {
    if patterns.is_empty() {
        return Ok(0);
    }
    let mut builder = ignore::gitignore::GitignoreBuilder::new(&repo.workdir);
    for p in patterns {
        builder
            .add_line(None, p)
            .map_err(|e| format!("bad include pattern `{p}`: {e}"))?;
    }
    let wanted = builder
        .build()
        .map_err(|e| format!("bad include patterns: {e}"))?;
    // Ignored entries as git lists them: a directory wholly ignored is one entry.
    let out = crate::git::cmd::Git::new(&repo.workdir)
        .args([
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
        ])
        .run()
        .map_err(|e| e.to_string())?;
    let mut copied = 0;
    for raw in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = String::from_utf8_lossy(raw);
        let is_dir = rel.ends_with('/');
        let rel = rel.trim_end_matches('/');
        if rel.starts_with(".massgen") || rel == ".git" {
            continue;
        }
        let from = repo.workdir.join(rel);
        if !wanted
            .matched_path_or_any_parents(&from, is_dir)
            .is_ignore()
        {
            continue;
        }
        copied += copy_tree(&from, &wt.join(rel)).map_err(|e| format!("cannot copy {rel}: {e}"))?;
    }
    Ok(copied)
}

/// Copies a file, a link or a whole directory; returns how many files and links.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<usize> {
    let meta = std::fs::symlink_metadata(from)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.is_symlink() {
        let target = std::fs::read_link(from)?;
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(target, to)?;
        return Ok(1);
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        let mut n = 0;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            n += copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(n);
    }
    std::fs::copy(from, to)?;
    Ok(1)
}

/// Refuses to start when the worktree root's file system cannot hold `copies` checkouts of
/// `base` (the sizes of its files, with a block's overhead each) and a margin of 2% of the
/// file system or 32 MiB, whichever is smaller. Nothing is checked where the sizes or the
/// free space cannot be read.
pub(super) fn check_space(
    repo: &crate::git::Repo,
    base: crate::git::ObjectId,
    root: &Path,
    copies: usize,
) -> Result<(), RunError> {
    const MIB: u64 = 1024 * 1024;
    let Ok(out) = crate::git::cmd::Git::new(&repo.workdir)
        .args(["ls-tree", "-r", "-l", "-z"])
        .arg(base.to_string())
        .run()
    else {
        return Ok(());
    };
    let one: u64 = out
        .stdout
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let meta = std::str::from_utf8(entry.split(|b| *b == b'\t').next()?).ok()?;
            let size = meta.split_whitespace().nth(3)?.parse::<u64>().ok()?;
            Some(size.div_ceil(4096) * 4096 + 4096)
        })
        .sum();
    // The root may not exist yet: its nearest existing ancestor is on the same file system.
    let mut probe = root.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            return Ok(());
        }
    }
    let Ok(fs) = nix::sys::statvfs::statvfs(&probe) else {
        return Ok(());
    };
    let block = fs.fragment_size();
    let free = fs.blocks_available() * block;
    let margin = (fs.blocks() * block / 50).min(32 * MIB);
    let need = one * copies as u64;
    if need + margin > free {
        return Err(RunError::NoSpace {
            need: need.div_ceil(MIB),
            free: free / MIB,
            root: root.to_path_buf(),
        });
    }
    Ok(())
}
