//! Slurm as an executor: a [`Job`] submitted with `sbatch --parsable` as a batch job, its
//! state polled with `scontrol show job` (never `sbatch --wait`), its output copied from the
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

/// What turns a [`Job`] into a Slurm job.
pub struct Submit {
    pub slurm: Arc<SlurmSection>,
    /// `--job-name`: `massgen-<run>-<agent>`, with `-setup` or `-test` for those commands.
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

/// How long the controller may stay unanswering before a job is given up for lost (a
/// controller's failover takes a while).
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(300);

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
struct Watched(u64);

impl Watched {
    fn new(id: u64) -> Watched {
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
async fn poll_listed(id: u64) -> std::io::Result<Polled> {
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
async fn slurm_command(argv: &[&str]) -> std::io::Result<String> {
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

/// `scancel ID`, in the background of whatever called it; a finished job is fine.
pub fn scancel(id: u64) {
    let _ = std::process::Command::new("scancel")
        .arg(id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `scancel ID` without blocking the runtime.
async fn scancel_async(id: u64) {
    let _ = tokio::process::Command::new("scancel")
        .arg(id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
    let exit = field("ExitCode").and_then(|e| {
        let (code, sig) = e.split_once(':')?;
        Some((code.parse().ok()?, sig.parse().ok()?))
    });
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

/// `State|ExitCode` as `sacct -P -n` prints it, for a job `scontrol` forgot.
fn parse_sacct(text: &str, id: u64) -> Option<Polled> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut parts = line.split('|');
    let state = parts.next()?.split_whitespace().next()?.to_owned();
    let exit = parts.next().and_then(|e| {
        let (code, sig) = e.trim().split_once(':')?;
        Some((code.parse().ok()?, sig.parse().ok()?))
    });
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

/// The ids of the queued and running jobs whose name starts with `prefix`
/// (`massgen-<run>-`).
pub fn jobs_named(prefix: &str) -> std::io::Result<Vec<u64>> {
    let out = std::process::Command::new("squeue")
        .args(["--me", "-h", "-o", "%i %j"])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(slurm_error(
            "squeue failed",
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, name) = l.trim().split_once(' ')?;
            name.starts_with(prefix).then(|| id.parse().ok())?
        })
        .collect())
}

/// Cancels every queued or running job of a run (named `massgen-<run>-…`), whoever
/// submitted it: what a killed git-massgen left. Waits (up to 30 s) until Slurm has ended
/// them, so that nothing writes to a worktree afterwards. Returns their ids.
pub fn cancel_run(run: &str) -> std::io::Result<Vec<u64>> {
    let prefix = format!("massgen-{run}-");
    let jobs = jobs_named(&prefix)?;
    for id in &jobs {
        scancel(*id);
    }
    let until = Instant::now() + Duration::from_secs(30);
    while !jobs.is_empty() && Instant::now() < until {
        if jobs_named(&prefix)
            .map(|left| left.is_empty())
            .unwrap_or(true)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(jobs)
}

/// What one tiny job says about the cluster (`doctor --executor slurm`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    pub job: u64,
    pub node: Option<String>,
    /// `sbatch --version` here.
    pub slurm: String,
    /// `git-massgen --version` as the node ran it.
    pub program: String,
    /// From submission until Slurm said the job ran.
    pub start_ms: u64,
    /// From submission until git-massgen saw it complete.
    pub total_ms: u64,
}

/// Submits `git-massgen --version` as a job through the same path agents take, and reports
/// where it ran, what it printed and how long it took. Its files go in a temporary
/// directory under `within`, which the nodes must see.
pub async fn probe(slurm: Arc<SlurmSection>, within: PathBuf) -> Result<Probe, String> {
    let version = slurm_command(&["sbatch", "--version"])
        .await
        .map_err(|e| e.to_string())?;
    let dir = tempfile::Builder::new()
        .prefix("massgen-doctor-")
        .tempdir_in(&within)
        .map_err(|e| format!("cannot make a directory for the job's files: {e}"))?;
    let program = node_program(&slurm).map_err(|e| e.to_string())?;
    let argv = vec![program.display().to_string(), "--version".to_owned()];
    let out_path = dir.path().join("stdout");
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let seen = Arc::new(std::sync::Mutex::new((None::<Duration>, None::<SlurmJob>)));
    let submitted = Instant::now();
    let on_state = {
        let seen = seen.clone();
        Box::new(move |job: &SlurmJob| {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            if job.state != "PENDING" && seen.0.is_none() {
                seen.0 = Some(submitted.elapsed());
            }
            seen.1 = Some(job.clone());
        })
    };
    let job = Job {
        argv: &argv,
        cwd: dir.path(),
        env: Vec::new(),
        env_remove: &[],
        stdout: file(&out_path)?,
        stderr: file(&dir.path().join("stderr"))?,
        timeout: Duration::from_secs(120),
        watch: None,
        sandbox: None,
        remote: None,
    };
    let submit = Submit {
        slurm,
        name: "massgen-doctor".to_owned(),
        spool: dir.path().join("doctor.slurm"),
        export: Vec::new(),
        on_state: Some(on_state),
    };
    let (_keep, cancel) = watch::channel(false);
    let finished = supervise(job, submit, cancel)
        .await
        .map_err(|e| e.to_string())?;
    let (start, last) = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let last = last.ok_or("the job was never seen")?;
    if !finished.success() {
        let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
        return Err(format!(
            "the test job {} {}: {}",
            last.id,
            finished.describe(),
            err.trim()
        ));
    }
    Ok(Probe {
        job: last.id,
        node: last.node,
        slurm: version.trim().to_owned(),
        program: std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .trim()
            .to_owned(),
        start_ms: start.unwrap_or(finished.duration).as_millis() as u64,
        total_ms: submitted.elapsed().as_millis() as u64,
    })
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
