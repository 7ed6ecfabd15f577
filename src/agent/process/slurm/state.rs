//! A Slurm job's state: `squeue` for every job this process supervises at once,
//! `scontrol show job` for an ended job's exit code, the accounting for a purged one; the
//! Slurm commands run with their errors in words; `scancel`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::model::SlurmJob;

/// States after which a job never runs again.
const TERMINAL: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "CANCELLED",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
];

/// How old the last `squeue` of every polled job may be for a poll to use it.
const FRESH: Duration = Duration::from_millis(100);

/// The jobs this process polls now ([`Watched`]).
static WATCHED: std::sync::Mutex<std::collections::BTreeSet<u64>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The last `squeue` of every polled job: when it ran, and the states it listed.
struct Listed {
    at: Option<Instant>,
    jobs: std::collections::BTreeMap<u64, SlurmJob>,
}

static LISTED: tokio::sync::Mutex<Listed> = tokio::sync::Mutex::const_new(Listed {
    at: None,
    jobs: std::collections::BTreeMap::new(),
});

/// A job in [`WATCHED`] while it is supervised.
pub(super) struct Watched(u64);

impl Watched {
    pub(super) fn new(id: u64) -> Watched {
        WATCHED.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        Watched(id)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        WATCHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// Reads `squeue -o "%i|%T|%r|%N"` lines.
fn parse_squeue(text: &str) -> std::collections::BTreeMap<u64, SlurmJob> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().split('|');
            let id: u64 = parts.next()?.parse().ok()?;
            let state = parts.next()?.trim().to_owned();
            let reason = parts
                .next()
                .map(str::trim)
                .filter(|r| !r.is_empty() && *r != "None");
            let node = parts.next().map(str::trim).filter(|n| !n.is_empty());
            Some((
                id,
                SlurmJob {
                    id,
                    state,
                    reason: reason.map(str::to_owned),
                    node: node.map(str::to_owned),
                    unit: None,
                },
            ))
        })
        .collect()
}

/// The job's state, from one `squeue` of every job this process polls (made at most every
/// [`FRESH`], whoever asks), so the controller gets a few calls a second however many jobs
/// run. A job that ended is asked about once more with [`poll`], for its exit code; one
/// `squeue` does not list (purged, or the call failed) is asked about with [`poll`] too.
pub(super) async fn poll_listed(id: u64) -> std::io::Result<Polled> {
    let listed = {
        let mut listed = LISTED.lock().await;
        if listed.at.is_none_or(|at| at.elapsed() >= FRESH) || !listed.jobs.contains_key(&id) {
            let ids: Vec<String> = WATCHED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .chain(std::iter::once(&id))
                .map(u64::to_string)
                .collect();
            let argv = [
                "squeue",
                "-h",
                "-t",
                "all",
                "-o",
                "%i|%T|%r|%N",
                "-j",
                &ids.join(","),
            ];
            listed.jobs = match slurm_command(&argv).await {
                Ok(text) => parse_squeue(&text),
                Err(_) => std::collections::BTreeMap::new(),
            };
            listed.at = Some(Instant::now());
        }
        listed.jobs.get(&id).cloned()
    };
    match listed {
        Some(job) if !is_terminal(&job.state) => Ok(Polled { job, exit: None }),
        _ => poll(id).await,
    }
}

/// An error of the Slurm commands themselves, with what to check.
pub fn slurm_error(what: &str, detail: &str) -> std::io::Error {
    let detail = detail.trim();
    let hint = if detail.contains("Unable to contact slurm controller")
        || detail.contains("Connection refused")
        || detail.contains("Zero Bytes were transmitted")
    {
        " (is slurmctld running and is SLURM_CONF right? `scontrol ping` says)"
    } else {
        ""
    };
    std::io::Error::other(format!("{what}: {detail}{hint}"))
}

/// Runs `argv` of a Slurm command and returns its stdout, or its stderr as the error.
pub(super) async fn slurm_command(argv: &[&str]) -> std::io::Result<String> {
    let out = tokio::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => std::io::Error::other(format!(
                "cannot start `{}`: not found (install Slurm's client commands, Debian's slurm-client)",
                argv[0]
            )),
            _ => std::io::Error::other(format!("cannot start `{}`: {e}", argv[0])),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = if err.trim().is_empty() {
            format!("exited with {}", out.status)
        } else {
            err.into_owned()
        };
        Err(slurm_error(&format!("`{}` failed", argv.join(" ")), &err))
    }
}

/// `scancel ID`, its output ignored; a finished job is fine.
fn scancel_command(id: u64) -> std::process::Command {
    let mut cmd = std::process::Command::new("scancel");
    cmd.arg(id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// [`scancel_command`], waited for here.
pub fn scancel(id: u64) {
    let _ = scancel_command(id).status();
}

/// [`scancel_command`] without blocking the runtime.
pub(super) async fn scancel_async(id: u64) {
    let _ = tokio::process::Command::from(scancel_command(id))
        .status()
        .await;
}

/// A job's state as `scontrol show job -o ID` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    pub job: SlurmJob,
    /// `ExitCode=N:S`.
    pub exit: Option<(i32, i32)>,
}

/// Reads the fields that matter from one line of `scontrol show job -o`. Values with
/// spaces (the command, paths) come after these in Slurm's order, and a field is taken
/// at its first appearance.
pub fn parse_show_job(line: &str, id: u64) -> Option<Polled> {
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let state = field("JobState")?;
    let reason = field("Reason").filter(|r| r != "None" && r != "(null)");
    let node = field("BatchHost")
        .or_else(|| field("NodeList"))
        .filter(|n| n != "(null)" && !n.is_empty());
    let exit = field("ExitCode").as_deref().and_then(parse_exit);
    Some(Polled {
        job: SlurmJob {
            id,
            state,
            reason,
            node,
            unit: None,
        },
        exit,
    })
}

/// Slurm's `N:S` exit code: the command's exit code and the signal that ended it.
fn parse_exit(text: &str) -> Option<(i32, i32)> {
    let (code, sig) = text.trim().split_once(':')?;
    Some((code.parse().ok()?, sig.parse().ok()?))
}

/// `State|ExitCode` as `sacct -P -n` prints it, for a job `scontrol` forgot.
fn parse_sacct(text: &str, id: u64) -> Option<Polled> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut parts = line.split('|');
    let state = parts.next()?.split_whitespace().next()?.to_owned();
    let exit = parts.next().and_then(parse_exit);
    Some(Polled {
        job: SlurmJob {
            id,
            state,
            reason: None,
            node: None,
            unit: None,
        },
        exit,
    })
}

/// The job's state now: `scontrol`, else the accounting (`sacct`, or the job-completion
/// file through `sacct -c`) once `scontrol` has forgotten it.
pub async fn poll(id: u64) -> std::io::Result<Polled> {
    let ids = id.to_string();
    match slurm_command(&["scontrol", "show", "job", "-o", &ids]).await {
        Ok(text) => parse_show_job(&text, id).ok_or_else(|| {
            std::io::Error::other(format!("cannot read `scontrol show job`: {text}"))
        }),
        Err(e) if e.to_string().contains("Invalid job id") => {
            for argv in [
                [
                    "sacct",
                    "-n",
                    "-P",
                    "-X",
                    "-o",
                    "State,ExitCode",
                    "-j",
                    &ids,
                ]
                .as_slice(),
                [
                    "sacct",
                    "-c",
                    "-n",
                    "-P",
                    "-o",
                    "State,ExitCode",
                    "-j",
                    &ids,
                ]
                .as_slice(),
            ] {
                if let Ok(text) = slurm_command(argv).await
                    && let Some(p) = parse_sacct(&text, id)
                {
                    return Ok(p);
                }
            }
            Err(std::io::Error::other(format!(
                "job {id} is no longer known to Slurm (purged from scontrol and no accounting)"
            )))
        }
        Err(e) => Err(e),
    }
}

/// Whether the cluster takes jobs: `scontrol ping` says its controller answers. Checked
/// before a run makes anything, so that a run without a cluster leaves nothing behind.
pub async fn check_controller() -> Result<(), String> {
    let out = slurm_command(&["scontrol", "ping"])
        .await
        .map_err(|e| e.to_string())?;
    if out.contains("UP") {
        Ok(())
    } else {
        Err(format!("the controller does not answer: {}", out.trim()))
    }
}

/// The job's state now as `scontrol` describes it, without waiting on an async runtime
/// (`status`); `None` when it cannot say.
pub fn poll_now(id: u64) -> Option<SlurmJob> {
    let out = std::process::Command::new("scontrol")
        .args(["show", "job", "-o", &id.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(())?;
    parse_show_job(&String::from_utf8_lossy(&out.stdout), id).map(|p| p.job)
}

/// Whether the job will not run again.
pub fn is_terminal(state: &str) -> bool {
    TERMINAL.contains(&state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_a_job() {
        let line = "JobId=7 JobName=massgen-x-a UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 NodeList=vm BatchHost=vm WorkDir=/tmp/a JobState=X b StdOut=/tmp/o";
        let p = parse_show_job(line, 7).unwrap();
        assert_eq!(p.job.state, "FAILED");
        assert_eq!(p.job.reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(p.job.node.as_deref(), Some("vm"));
        assert_eq!(p.exit, Some((3, 0)));
        let pending = "JobId=8 JobState=PENDING Reason=Resources ExitCode=0:0 NodeList=(null)";
        let p = parse_show_job(pending, 8).unwrap();
        assert_eq!(p.job.describe(), "job 8 PENDING (Resources)");
        assert_eq!(parse_show_job("nonsense", 1), None);
    }

    #[test]
    fn reads_sacct_lines() {
        let p = parse_sacct("CANCELLED by 0|0:15\n", 4).unwrap();
        assert_eq!(p.job.state, "CANCELLED");
        assert_eq!(p.exit, Some((0, 15)));
        assert_eq!(parse_sacct("\n", 4), None);
    }

    #[test]
    fn slurm_errors_name_the_check() {
        let e = slurm_error(
            "sbatch refused the job",
            "sbatch: error: Unable to contact slurm controller (connect failure)",
        );
        assert!(e.to_string().contains("scontrol ping"), "{e}");
        let e = slurm_error("sbatch refused the job", "invalid partition specified: x");
        assert!(!e.to_string().contains("scontrol ping"), "{e}");
    }

    #[test]
    fn reads_squeue_lines() {
        let jobs = parse_squeue("12|RUNNING|None|vm\n13|PENDING|Resources|\nnonsense\n");
        assert_eq!(jobs[&12].describe(), "job 12 RUNNING on vm");
        assert_eq!(jobs[&13].describe(), "job 13 PENDING (Resources)");
        assert_eq!(jobs.len(), 2);
    }

    #[test]
    fn terminal_states() {
        for s in ["COMPLETED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"] {
            assert!(is_terminal(s));
        }
        for s in ["PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"] {
            assert!(!is_terminal(s));
        }
    }
}
