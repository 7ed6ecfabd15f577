//! Slurm as an executor: a [`Job`] submitted with `sbatch --parsable` as a batch job, its
//! state polled ([`state`]; never `sbatch --wait`), its output copied from the
//! files Slurm writes into the job's own log files as it grows (stdout through the line
//! watcher), and `scancel` at its time limit, on cancellation, or when the supervision is
//! dropped. Only the variables it names reach the job (`sbatch` gets only those, and passes
//! them all), never the whole environment.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::leftovers::{self, Mark};
use super::{Finished, Job, LineWatcher, cancelled_signal, job_program};
use crate::config::SlurmSection;
use crate::model::SlurmJob;

mod cluster;
mod state;

pub use cluster::{Probe, cancel_run, jobs_named, probe};
pub use state::{Polled, check_controller, is_terminal, poll, poll_now, scancel, slurm_error};
use state::{Watched, poll_listed, scancel_async};

/// What turns a [`Job`] into a Slurm job.
pub struct Submit {
    pub slurm: Arc<SlurmSection>,
    /// `--job-name`: `massgen-<run>-<agent>`, with `-setup`, `-test` or `-judge` for those.
    pub name: String,
    /// Where Slurm's own files of the job go: `<spool>.sh` (the batch script), and
    /// `<spool>-<id>.out` / `.err` while it runs (copied into the job's logs, then removed).
    pub spool: PathBuf,
    /// More variables of this environment passed by name (the agent's key variable).
    pub export: Vec<String>,
    /// Told the job's state at submission and whenever it changes.
    pub on_state: Option<OnState>,
}

/// Told a job's state at submission and whenever it changes.
pub type OnState = Box<dyn FnMut(&SlurmJob) + Send>;

/// Variables a job always gets when they are set here.
const BASE_EXPORT: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ"];

/// The batch script: the job's argv, as given to `sbatch` after the script, run as is.
const SCRIPT: &str =
    "#!/bin/sh\n# git-massgen: the job's command is this script's arguments.\nexec \"$@\"\n";

/// How long the controller may stay unanswering before a job is given up for lost (a
/// controller's failover takes a while).
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(300);

/// A file Slurm writes, read as it grows.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Copies what is new into `to`, showing each complete line to `watch`; returns the
    /// watcher's reason to stop, if it gave one.
    fn pump(
        &mut self,
        to: &mut std::fs::File,
        watch: Option<&mut LineWatcher>,
        flush: bool,
    ) -> Option<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return None;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return None;
        }
        let mut new = Vec::new();
        let _ = f.read_to_end(&mut new);
        self.offset += new.len() as u64;
        let _ = to.write_all(&new);
        let watch = watch?;
        self.partial.extend_from_slice(&new);
        let mut stop = None;
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if let Some(why) = watch(&String::from_utf8_lossy(&line)) {
                stop.get_or_insert(why);
            }
        }
        if flush && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            if let Some(why) = watch(&String::from_utf8_lossy(&line)) {
                stop.get_or_insert(why);
            }
        }
        stop
    }
}

/// `scancel`s the job when dropped before it ended.
struct Guard(Option<u64>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            scancel(id);
        }
    }
}

/// `sbatch --time`: whole minutes, at least the time limit (git-massgen stops the job at
/// the exact limit itself; Slurm's own limit is the backstop when git-massgen is gone).
fn time_arg(timeout: Duration) -> String {
    let minutes = timeout.as_secs().div_ceil(60).max(1);
    minutes.to_string()
}

/// The `sbatch` arguments of a job: resources from `[executor.slurm]`, then its own.
fn sbatch_args(
    slurm: &SlurmSection,
    submit: &Submit,
    cwd: &Path,
    timeout: Duration,
) -> Vec<String> {
    // `%` starts one of Slurm's file-name patterns.
    let spool = submit.spool.display().to_string().replace('%', "%%");
    let mut args = vec![
        "--parsable".to_owned(),
        format!("--job-name={}", submit.name),
        format!("--chdir={}", cwd.display()),
        format!("--time={}", time_arg(timeout)),
        format!("--output={spool}-%j.out"),
        format!("--error={spool}-%j.err"),
        "--open-mode=append".to_owned(),
        "--export=ALL".to_owned(),
        if slurm.requeue {
            "--requeue"
        } else {
            "--no-requeue"
        }
        .to_owned(),
    ];
    if let Some(p) = &slurm.partition {
        args.push(format!("--partition={p}"));
    }
    if let Some(c) = slurm.cpus_per_task {
        args.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &slurm.mem {
        args.push(format!("--mem={m}"));
    }
    if let Some(g) = &slurm.gres {
        args.push(format!("--gres={g}"));
    }
    args.extend(slurm.extra_args.iter().cloned());
    args
}

/// The whole environment of a job, which is `sbatch`'s own (`--export=ALL` of it): the
/// variables of [`BASE_EXPORT`] and those `export` names that are set here (and not removed
/// by the job), the job's own, its [`leftovers::JOB_VAR`], and Slurm's own settings
/// (`SLURM_*`) for `sbatch` itself; not `SBATCH_*`, whose `SBATCH_GET_USER_ENV` would load
/// the user's login environment. A list given to `--export` instead would make
/// Slurm load the user's login environment on the node (`--get-user-env` is implied), which
/// adds what was not named and costs about a second per job.
fn job_env(
    job: &Job<'_>,
    mark: &Mark,
    export: &[String],
    configured: &[String],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let named = |name: &str| {
        BASE_EXPORT.contains(&name)
            || export.iter().chain(configured).any(|n| n == name)
            || name.starts_with("SLURM_")
    };
    for (k, v) in std::env::vars_os() {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue;
        };
        if named(k) && !job.env_remove.contains(&k) {
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    env.extend(job.env.iter().cloned());
    env.push((leftovers::JOB_VAR.to_owned(), mark.value().to_owned()));
    env
}

/// Runs `job` as a Slurm batch job to its end, its time limit or cancellation.
pub async fn supervise(
    mut job: Job<'_>,
    mut submit: Submit,
    mut cancel: watch::Receiver<bool>,
) -> std::io::Result<Finished> {
    let (program, args) = job
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let slurm = submit.slurm.clone();
    let mut argv: Vec<String> = Vec::new();
    if let Some(rules) = &job.sandbox {
        let program = job_program(&job, program)?;
        argv.push(node_program(&slurm)?.display().to_string());
        argv.extend(
            rules
                .to_args()
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned()),
        );
        argv.push(program.display().to_string());
    } else {
        argv.push(program.clone());
    }
    argv.extend(args.iter().cloned());

    let script = PathBuf::from(format!("{}.sh", submit.spool.display()));
    crate::sys::write_atomic(&script, SCRIPT.as_bytes())
        .map_err(|e| std::io::Error::other(format!("cannot write {}: {e}", script.display())))?;

    let mark = Mark::new_job();
    let mut cmd = tokio::process::Command::new("sbatch");
    cmd.args(sbatch_args(&slurm, &submit, job.cwd, job.timeout))
        .arg(&script)
        .args(&argv)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .env_clear()
        .envs(job_env(&job, &mark, &submit.export, &slurm.export));
    let start = Instant::now();
    let out = cmd.output().await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => std::io::Error::other(
            "cannot start `sbatch`: not found (install Slurm's client commands, Debian's slurm-client, or set [executor] kind = \"local\")",
        ),
        _ => std::io::Error::other(format!("cannot start `sbatch`: {e}")),
    })?;
    if !out.status.success() {
        return Err(slurm_error(
            "sbatch refused the job",
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id: u64 = text
        .trim()
        .split(';')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("sbatch printed no job id: {text}")))?;
    let mut guard = Guard(Some(id));
    let mut last = SlurmJob {
        id,
        state: "PENDING".to_owned(),
        reason: None,
        node: None,
        unit: None,
    };
    if let Some(tell) = submit.on_state.as_mut() {
        tell(&last);
    }
    let spool = submit.spool.display().to_string();
    let mut out_tail = Tail::new(PathBuf::from(format!("{spool}-{id}.out")));
    let mut err_tail = Tail::new(PathBuf::from(format!("{spool}-{id}.err")));

    // The time limit counts from when the job starts: time in the queue is the cluster's,
    // shown as the pending reason.
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut interval = Duration::from_millis(100);
    let _watched = Watched::new(id);
    let mut last_cancel = Instant::now();
    let mut confirming = false;
    let (mut timed_out, mut cancelled, mut aborted, mut lost) = (false, false, None, None);
    let mut unreachable_since: Option<Instant> = None;
    let mut stopping = *cancel.borrow();
    if stopping {
        cancelled = true;
        scancel_async(id).await;
    }
    let polled = loop {
        if !stopping {
            let limit = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = limit => { timed_out = true; }
                _ = cancelled_signal(&mut cancel) => { cancelled = true; }
            }
            if timed_out || cancelled {
                stopping = true;
                scancel_async(id).await;
                last_cancel = Instant::now();
            }
        } else {
            tokio::time::sleep(interval).await;
            // A cancellation the controller missed (a failover) is sent again.
            if last_cancel.elapsed() > Duration::from_secs(5) {
                scancel_async(id).await;
                last_cancel = Instant::now();
            }
        }
        interval = (interval * 5 / 4).min(Duration::from_millis(250));
        if let Some(why) = out_tail.pump(&mut job.stdout, job.watch.as_mut(), false)
            && !stopping
        {
            aborted = Some(why);
            stopping = true;
            scancel_async(id).await;
            last_cancel = Instant::now();
        }
        err_tail.pump(&mut job.stderr, None, false);
        match poll_listed(id).await {
            Ok(p) => {
                unreachable_since = None;
                if deadline.is_none() && p.job.state != "PENDING" {
                    deadline = Some(tokio::time::Instant::now() + job.timeout);
                }
                if p.job != last {
                    last = p.job.clone();
                    if let Some(tell) = submit.on_state.as_mut() {
                        tell(&last);
                    }
                }
                // A job being requeued can show its first run's end for a moment: with
                // `requeue`, an end counts once a second look a moment later agrees.
                let ended = is_terminal(&p.job.state);
                if ended && (!slurm.requeue || stopping || confirming) {
                    break Some(p);
                }
                confirming = ended;
                if ended {
                    interval = Duration::from_millis(500);
                }
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                let gone = e.to_string().contains("no longer known");
                if gone || since.elapsed() > UNREACHABLE_LIMIT {
                    lost = Some(format!("lost track of Slurm job {id}: {e}"));
                    break None;
                }
            }
        }
    };
    guard.0 = None;
    if polled.is_none() {
        scancel_async(id).await;
    }
    // Slurm has closed the files once the job is terminal (the node wrote them).
    out_tail.pump(&mut job.stdout, job.watch.as_mut(), true);
    err_tail.pump(&mut job.stderr, None, true);
    let _ = std::fs::remove_file(&out_tail.path);
    let _ = std::fs::remove_file(&err_tail.path);
    let left = tokio::task::spawn_blocking(move || leftovers::stop(&mark))
        .await
        .unwrap_or_default();
    let stopped_by_us = timed_out || cancelled || aborted.is_some();
    let (mut exit_code, mut signal) = (None, None);
    if let Some(p) = &polled {
        let (code, sig) = p.exit.unwrap_or((0, 0));
        match p.job.state.as_str() {
            "FAILED" if !stopped_by_us && (code, sig) == (0, 0) => {
                lost = Some(lost_reason("FAILED", &p.job));
            }
            "COMPLETED" | "FAILED" if !stopped_by_us => {
                if sig != 0 && code == 0 {
                    signal = Some(sig);
                } else {
                    exit_code = Some(code);
                }
            }
            "TIMEOUT" => timed_out = true,
            "CANCELLED" if stopped_by_us => {}
            other => {
                if !stopped_by_us {
                    lost = Some(lost_reason(other, &p.job));
                }
            }
        }
    }
    Ok(Finished {
        exit_code,
        signal,
        timed_out,
        cancelled,
        aborted,
        duration: start.elapsed(),
        leftovers: left,
        lost,
    })
}

/// Why a job that ended without running its command to the end failed, in words.
fn lost_reason(state: &str, job: &SlurmJob) -> String {
    let on = job
        .node
        .as_deref()
        .map(|n| format!(" on {n}"))
        .unwrap_or_default();
    match state {
        "OUT_OF_MEMORY" => format!(
            "Slurm job {} ran out of memory{on} (OUT_OF_MEMORY; raise [executor.slurm] mem)",
            job.id
        ),
        "NODE_FAIL" => format!(
            "Slurm job {}: its node failed{on} (NODE_FAIL; [executor.slurm] requeue = true runs it again)",
            job.id
        ),
        "PREEMPTED" => format!(
            "Slurm job {} was preempted{on} (PREEMPTED; [executor.slurm] requeue = true runs it again)",
            job.id
        ),
        "CANCELLED" => format!(
            "Slurm job {} was cancelled outside git-massgen{on} (CANCELLED)",
            job.id
        ),
        other => format!(
            "Slurm job {} ended {other}{on}{}",
            job.id,
            job.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    }
}

/// git-massgen as the nodes run it: `[executor.slurm] program`, else this program.
pub fn node_program(slurm: &SlurmSection) -> std::io::Result<PathBuf> {
    match &slurm.program {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_whole_minutes_at_least_the_limit() {
        assert_eq!(time_arg(Duration::from_secs(5)), "1");
        assert_eq!(time_arg(Duration::from_secs(60)), "1");
        assert_eq!(time_arg(Duration::from_secs(61)), "2");
    }

    #[test]
    fn a_lost_job_says_why_and_what_to_do() {
        let job = |state: &str| SlurmJob {
            id: 9,
            state: state.to_owned(),
            reason: None,
            node: Some("n3".to_owned()),
            unit: None,
        };
        let oom = lost_reason("OUT_OF_MEMORY", &job("OUT_OF_MEMORY"));
        assert!(oom.contains("ran out of memory on n3"), "{oom}");
        assert!(oom.contains("[executor.slurm] mem"), "{oom}");
        let node = lost_reason("NODE_FAIL", &job("NODE_FAIL"));
        assert!(
            node.contains("node failed") && node.contains("requeue = true"),
            "{node}"
        );
        let pre = lost_reason("PREEMPTED", &job("PREEMPTED"));
        assert!(pre.contains("preempted"), "{pre}");
        let other = lost_reason("CANCELLED", &job("CANCELLED"));
        assert!(other.contains("outside git-massgen"), "{other}");
    }
}
