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
    port: Option<u16>,
    cancel: &watch::Receiver<bool>,
) -> Result<Result<(), String>, RunError> {
    let log = shared.dir.setup_log(agent);
    let started = Instant::now();
    for command in &plan.setup {
        let Some(left) = plan.setup_timeout.checked_sub(started.elapsed()) else {
            return Ok(Err(format!(
                "timed out after {}s",
                plan.setup_timeout.as_secs()
            )));
        };
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(RunError::io("cannot create log", &log))
        };
        let out = open()?;
        {
            use std::io::Write;
            let mut header = open()?;
            let _ = writeln!(header, "$ {command}");
        }
        let mut env = vec![
            ("MASSGEN_RUN".to_owned(), shared.dir.id.clone()),
            ("MASSGEN_AGENT".to_owned(), agent.to_owned()),
            ("MASSGEN_WORKTREE".to_owned(), wt.display().to_string()),
            ("MASSGEN_ACTIVE".to_owned(), "1".to_owned()),
        ];
        env.extend(crate::model::port_env(port));
        let argv = vec!["sh".to_owned(), "-c".to_owned(), command.clone()];
        let job = Job {
            argv: &argv,
            cwd: wt,
            env,
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
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty() && *l != format!("$ {command}"))
                .map(str::to_owned);
            return Ok(Err(last.unwrap_or_else(|| {
                format!("`{command}` failed ({})", finished.describe())
            })));
        }
    }
    Ok(Ok(()))
}
