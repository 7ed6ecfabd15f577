//! `git-massgen node-run`: an agent's Slurm job on a node that does not see the worktree
//! root (`[executor.slurm] shared_fs = false`). Dispatched before argument parsing, as the
//! trampoline is, and exits with the agent's own exit code.
//!
//! `node-run --bundle IN --out OUT --scratch DIR --worktree WT -- CMD ARGS…`: clones the
//! bundle `IN` (the candidate's branch) into a directory of its own under `DIR`, runs the
//! command there (with `WT`, the worktree's path on the submitting machine, replaced by the
//! clone's path in its arguments and `MASSGEN_WORKTREE`), then commits everything the
//! command left (`git add -A`, so ignored files stay out, as in a snapshot) and writes the
//! commit as the bundle `OUT` (written whole, then renamed). The clone is removed. Stopped
//! by `scancel` (SIGTERM), it waits for the command to end and still writes `OUT`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::git::cmd::Git;

/// The internal command's name.
pub const NODE_RUN: &str = "node-run";

/// How long a stopped command may take to end before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

struct Args {
    bundle: PathBuf,
    out: PathBuf,
    scratch: PathBuf,
    worktree: String,
    argv: Vec<OsString>,
}

fn parse(args: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let mut args = args.into_iter();
    let (mut bundle, mut out, mut scratch, mut worktree) = (None, None, None, None);
    loop {
        let Some(flag) = args.next() else {
            return Err("missing `--` before the command".into());
        };
        if flag == "--" {
            break;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{} needs a value", flag.to_string_lossy()))?;
        match flag.to_str() {
            Some("--bundle") => bundle = Some(PathBuf::from(value)),
            Some("--out") => out = Some(PathBuf::from(value)),
            Some("--scratch") => scratch = Some(PathBuf::from(value)),
            Some("--worktree") => worktree = Some(value.to_string_lossy().into_owned()),
            _ => return Err(format!("unknown option {}", flag.to_string_lossy())),
        }
    }
    let argv: Vec<OsString> = args.collect();
    if argv.is_empty() {
        return Err("no command after `--`".into());
    }
    Ok(Args {
        bundle: bundle.ok_or("--bundle is required")?,
        out: out.ok_or("--out is required")?,
        scratch: scratch.ok_or("--scratch is required")?,
        worktree: worktree.ok_or("--worktree is required")?,
        argv,
    })
}

/// Runs `node-run` with its arguments (after the command name); returns the exit code.
pub fn main(args: impl Iterator<Item = OsString>) -> u8 {
    let args = match parse(args) {
        Ok(args) => args,
        Err(why) => {
            say(&why);
            return 2;
        }
    };
    let clone = args.scratch.join(format!(
        "massgen-{}-{}",
        std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| std::process::id().to_string()),
        fastrand::u32(..)
    ));
    let code = match run(&args, &clone) {
        Ok(code) => code,
        Err(why) => {
            say(&why);
            4
        }
    };
    let _ = std::fs::remove_dir_all(&clone);
    code
}

/// Says why it failed on stderr, which Slurm writes into the agent's stderr log.
fn say(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "git-massgen node-run: {why}");
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    Git::new(dir)
        .args(args)
        .run()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .map_err(|e| e.to_string())
}

/// `text` with `from` replaced by `to` where `from` is a whole path: followed by nothing,
/// `/`, or a character that cannot continue a file name in a list (`:`, space, quote…).
fn swap_path(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        let whole = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')));
        out.push_str(&rest[..at]);
        out.push_str(if whole { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn run(args: &Args, clone: &Path) -> Result<u8, String> {
    std::fs::create_dir_all(clone)
        .map_err(|e| format!("cannot create {}: {e}", clone.display()))?;
    git(clone, &["init", "--quiet"])?;
    let bundle = args.bundle.to_string_lossy();
    git(clone, &["fetch", "--quiet", "--no-tags", &bundle, "HEAD"])?;
    git(
        clone,
        &[
            "checkout",
            "--quiet",
            "-B",
            "massgen-candidate",
            "FETCH_HEAD",
        ],
    )?;
    let base = git(clone, &["rev-parse", "HEAD"])?;

    let here = clone.display().to_string();
    let swap = |v: &std::ffi::OsStr| -> OsString {
        match v.to_str() {
            Some(s) => swap_path(s, &args.worktree, &here).into(),
            None => v.to_owned(),
        }
    };
    let mut cmd = tokio::process::Command::new(swap(&args.argv[0]));
    cmd.args(args.argv[1..].iter().map(|a| swap(a)))
        .current_dir(clone)
        .kill_on_drop(true);
    // Paths into the worktree (`MASSGEN_WORKTREE`, `PYTHONPATH`, `[worktree] env`) name
    // the clone.
    for (k, v) in std::env::vars_os() {
        let new = swap(&v);
        if new != v {
            cmd.env(k, new);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    let status = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", args.argv[0].to_string_lossy()))?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            status = child.wait() => return status.map_err(|e| e.to_string()),
            _ = term.recv() => {}
        }
        // Slurm signals every process of the job; the command ends, then its work is
        // saved.
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(status) => status.map_err(|e| e.to_string()),
            Err(_) => {
                let _ = child.kill().await;
                child.wait().await.map_err(|e| e.to_string())
            }
        }
    })?;

    git(clone, &["add", "--all"])?;
    git(
        clone,
        &[
            "-c",
            "user.name=git-massgen",
            "-c",
            "user.email=git-massgen@localhost",
            "-c",
            "commit.gpgSign=false",
            "commit",
            "--quiet",
            "--allow-empty",
            "--no-verify",
            "--message",
            "node-run: the agent's work",
        ],
    )?;
    let partial = args.out.with_extension("partial");
    let not_base = format!("^{base}");
    git(
        clone,
        &[
            "bundle",
            "create",
            "--quiet",
            &partial.to_string_lossy(),
            "HEAD",
            &not_base,
        ],
    )?;
    std::fs::rename(&partial, &args.out)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(sig)) => 128u8.saturating_add(u8::try_from(sig).unwrap_or(0)),
        _ => 1,
    })
}

#[cfg(test)]
mod tests {
    use super::swap_path;

    #[test]
    fn only_whole_paths_are_swapped() {
        let (from, to) = ("/wt/a", "/scratch/c");
        assert_eq!(swap_path("/wt/a", from, to), "/scratch/c");
        assert_eq!(
            swap_path("/wt/a/src:/wt/ab", from, to),
            "/scratch/c/src:/wt/ab"
        );
        assert_eq!(
            swap_path("--dir=/wt/a --x /wt/a.b", from, to),
            "--dir=/scratch/c --x /wt/a.b"
        );
        assert_eq!(swap_path("nothing", from, to), "nothing");
    }
}
