//! Process supervision for agents, test commands, judges and reviewers: own process group,
//! stdin closed, output to files, a time limit, and the whole tree killed on timeout or
//! cancellation. When the job ends, however it ends, every process it started ends too,
//! including those that left its process group or session ([`leftovers`]), before the
//! caller looks at what the job left on disk.

pub mod leftovers;
pub mod slurm;

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;

use leftovers::{Leftover, Mark};

/// Grace period between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How a supervised process ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code, when it exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    /// Why the output watcher stopped it, if it did.
    pub aborted: Option<String>,
    pub duration: Duration,
    /// Processes it left running when it exited, which were killed: those in its process
    /// group and those that left it. After a timeout, a cancellation or a stop by the
    /// watcher, only those outside its group (the group itself was stopped on purpose).
    pub leftovers: Vec<Leftover>,
    /// Why the job ended without its command's own exit: its Slurm job lost to a node
    /// failure, preemption, memory, or cancelled by someone else.
    pub lost: Option<String>,
}

impl Finished {
    /// The process exited 0 on its own.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
            && !self.timed_out
            && !self.cancelled
            && self.aborted.is_none()
            && self.lost.is_none()
    }

    /// A few words on how it ended.
    pub fn describe(&self) -> String {
        if self.cancelled {
            "interrupted".into()
        } else if let Some(why) = &self.lost {
            why.clone()
        } else if let Some(why) = &self.aborted {
            format!("stopped: {why}")
        } else if self.timed_out {
            format!(
                "timed out after {}",
                humantime::format_duration(round_secs(self.duration))
            )
        } else if let Some(code) = self.exit_code {
            format!("exited with code {code}")
        } else if let Some(sig) = self.signal {
            format!("killed by signal {sig}")
        } else {
            "ended".into()
        }
    }
}

/// Where `program` is, as `execvp` would find it (a name with a `/` from `cwd`, else on
/// `path`), or the error a spawn of it would give.
pub fn find_program(
    program: &str,
    cwd: &Path,
    path: Option<&std::ffi::OsStr>,
) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable =
        |p: &Path| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let candidates: Vec<std::path::PathBuf> = if program.contains('/') {
        vec![cwd.join(program)]
    } else {
        path.map(std::env::split_paths)
            .into_iter()
            .flatten()
            .map(|dir| cwd.join(dir).join(program))
            .collect()
    };
    let mut denied = false;
    for p in candidates {
        match runnable(&p) {
            Ok(true) => return Ok(p),
            Ok(false) => denied = true,
            Err(_) => {}
        }
    }
    Err(std::io::Error::from_raw_os_error(if denied {
        nix::libc::EACCES
    } else {
        nix::libc::ENOENT
    }))
}

/// Where a confined job's `program` is, found with the job's own `PATH`: a program that
/// cannot start fails here, as a spawn would, not in the trampoline.
fn job_program(job: &Job<'_>, program: &str) -> std::io::Result<std::path::PathBuf> {
    let path = job
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| std::ffi::OsString::from(v))
        .or_else(|| std::env::var_os("PATH"));
    find_program(program, job.cwd, path.as_deref())
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// A command to supervise.
pub struct Job<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
    /// Variables to remove from the inherited environment.
    pub env_remove: &'a [&'a str],
    pub stdout: File,
    pub stderr: File,
    pub timeout: Duration,
    /// Sees every line of stdout (which still goes to `stdout`); returning a reason stops
    /// the process like a timeout does.
    pub watch: Option<LineWatcher>,
    /// Confines the command ([`crate::sandbox`]): it starts through the trampoline.
    pub sandbox: Option<crate::sandbox::Rules>,
    /// Runs it as a Slurm batch job instead of a process here ([`slurm`]).
    pub remote: Option<slurm::Submit>,
}

/// A callback on each line of an agent's output.
pub type LineWatcher = Box<dyn FnMut(&str) -> Option<String> + Send>;

/// Runs `job` to completion, timeout or cancellation, then kills whatever it left running
/// (see [`Finished::leftovers`]). `on_spawn` receives the process group id as soon as the
/// process exists (to be persisted, so that a later `clean` can stop it).
///
/// The job runs with `MASSGEN_JOB=<token>` ([`leftovers::JOB_VAR`]), a token of its own,
/// which is how the processes that left its group are found.
pub async fn supervise(
    mut job: Job<'_>,
    mut cancel: watch::Receiver<bool>,
    on_spawn: impl FnOnce(i32),
) -> std::io::Result<Finished> {
    if let Some(submit) = job.remote.take() {
        return slurm::supervise(job, submit, cancel).await;
    }
    let (program, args) = job
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = match &job.sandbox {
        Some(rules) => {
            let program = job_program(&job, program)?;
            let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
            cmd.args(rules.to_args()).arg(program);
            cmd
        }
        None => tokio::process::Command::new(program),
    };
    let (stdout, log) = match job.watch {
        Some(_) => (Stdio::piped(), Some(job.stdout)),
        None => (Stdio::from(job.stdout), None),
    };
    cmd.args(args)
        .current_dir(job.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(job.stderr))
        .process_group(0)
        .kill_on_drop(true);
    for var in job.env_remove {
        cmd.env_remove(var);
    }
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    let mut mark = Mark::new_job();
    cmd.env(leftovers::JOB_VAR, mark.value());
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    mark.pgid = pgid;
    // Declared after `child`, so dropped before it: a supervision abandoned half-way (its
    // future dropped) still stops the whole job, not only the leader (`kill_on_drop`).
    let mut sweep = Sweep(Some(mark));
    if let Some(pgid) = pgid {
        on_spawn(pgid);
    }
    let (abort_tx, mut abort_rx) = tokio::sync::mpsc::channel::<String>(1);
    let reader = match (child.stdout.take(), log, job.watch) {
        (Some(pipe), Some(log), Some(watch)) => {
            Some(tokio::spawn(copy_lines(pipe, log, watch, abort_tx)))
        }
        _ => None,
    };
    let mut timed_out = false;
    let mut aborted = None;
    let mut cancelled = *cancel.borrow();
    let status = if cancelled {
        None
    } else {
        tokio::select! {
            status = child.wait() => Some(status?),
            _ = tokio::time::sleep(job.timeout) => { timed_out = true; None }
            _ = cancelled_signal(&mut cancel) => { cancelled = true; None }
            Some(why) = abort_rx.recv() => { aborted = Some(why); None }
        }
    };
    let stopped = status.is_none();
    let status = match status {
        Some(status) => status,
        None => {
            if let Some(pgid) = pgid {
                kill_group(pgid, Signal::SIGTERM);
            }
            match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                Ok(status) => status?,
                Err(_) => {
                    if let Some(pgid) = pgid {
                        kill_group(pgid, Signal::SIGKILL);
                    }
                    child.wait().await?
                }
            }
        }
    };
    // The leader is gone; anything else of the job goes too (in its group or not), so
    // nothing writes to the worktree while it is snapshotted.
    let mut leftovers = sweep.run().await;
    if stopped {
        leftovers.retain(|l| pgid.is_none_or(|g| l.pgid != g));
    }
    if let Some(reader) = reader {
        // Every process that could hold the pipe is gone, so it ends; one we could not
        // find (it cleared its environment and left the group) could hold it open, hence
        // the bound.
        let _ = tokio::time::timeout(KILL_GRACE, reader).await;
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(Finished {
        aborted: aborted.clone(),
        exit_code: if timed_out || cancelled || aborted.is_some() {
            None
        } else {
            status.code()
        },
        signal: status.signal(),
        timed_out,
        cancelled,
        duration: start.elapsed(),
        leftovers,
        lost: None,
    })
}

/// Stops a job's leftovers once: when asked, or else when dropped.
struct Sweep(Option<Mark>);

impl Sweep {
    async fn run(&mut self) -> Vec<Leftover> {
        let Some(mark) = self.0.take() else {
            return Vec::new();
        };
        tokio::task::spawn_blocking(move || leftovers::stop(&mark))
            .await
            .unwrap_or_default()
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        if let Some(mark) = self.0.take() {
            leftovers::stop(&mark);
        }
    }
}

/// Copies the agent's stdout into its log, line by line, showing each line to `watch`.
async fn copy_lines(
    pipe: tokio::process::ChildStdout,
    log: File,
    mut watch: LineWatcher,
    abort: tokio::sync::mpsc::Sender<String>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut log = tokio::fs::File::from_std(log);
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = log.write_all(&line).await;
                if let Some(why) = watch(&String::from_utf8_lossy(&line)) {
                    let _ = abort.try_send(why);
                }
            }
        }
    }
    let _ = log.flush().await;
}

/// Resolves once cancellation is requested; never, if the sender is gone.
async fn cancelled_signal(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sends `signal` to a process group; a group that is already gone is fine.
pub fn kill_group(pgid: i32, signal: Signal) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}

/// Kills a process group left by an earlier, killed `git massgen`, but only if its leader
/// still runs with `MASSGEN_RUN=<run>` in its environment (so a reused pid is never hit).
pub fn kill_leftover_group(pgid: i32, run: &str) -> bool {
    if pgid > 1 && leftovers::process_has(pgid, &Mark::run(run).env) {
        kill_group(pgid, Signal::SIGKILL);
        return true;
    }
    false
}

/// Kills every process still carrying `MASSGEN_RUN=<run>` in its environment, with its
/// process group: what the agents of a killed run left behind, including commands that
/// run in groups or sessions of their own. Returns how many processes were killed.
pub fn kill_run_processes(run: &str) -> usize {
    leftovers::stop(&Mark::run(run)).len()
}
