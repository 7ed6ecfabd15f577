//! The `run` tool: a shell command in its own process group, with a time limit, its
//! output read through one pipe and kept to its tail, and its whole group killed when the
//! call ends, however it ends. [`kill_running`] stops the commands under way when the agent
//! itself is stopped.

use std::fmt::Write as _;
use std::io::Read as _;
use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use super::{
    Args, Outcome, PIPE_GRACE, RUN_TAIL, RUN_TIMEOUT_DEFAULT, RUN_TIMEOUT_MAX, ToolError, Tools,
    refused, text,
};
use crate::agent::process::kill_group;

impl Tools {
    pub(super) async fn run(&self, args: &Value) -> Result<Outcome, ToolError> {
        let args = Args::new(args)?;
        let command = args.required_str("command")?;
        let timeout = args.uint("timeout")?.unwrap_or(RUN_TIMEOUT_DEFAULT);
        let secs = timeout.clamp(1, RUN_TIMEOUT_MAX);
        // One pipe for both streams, so that the output interleaves as it was written.
        let (reader, writer) = std::io::pipe().map_err(ToolError::Start)?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        for var in &self.hidden {
            cmd.env_remove(var);
        }
        cmd.stdout(writer.try_clone().map_err(ToolError::Start)?)
            .stderr(writer);
        cmd.process_group(0).kill_on_drop(true);
        let spawned = cmd.spawn();
        // `cmd` holds copies of the write end; the reader sees EOF only once they close.
        drop(cmd);
        let mut child = spawned.map_err(ToolError::Start)?;
        let mut group = GroupGuard::new(child.id().and_then(|id| i32::try_from(id).ok()));

        // A plain thread, not `spawn_blocking`: a process that escaped the group may hold
        // the pipe open forever, and the runtime's shutdown waits for blocking tasks.
        let tail = Arc::new(Mutex::new(Tail::default()));
        let (done, finished) = tokio::sync::oneshot::channel();
        let sink = Arc::clone(&tail);
        let reading = move || {
            let (mut reader, mut chunk) = (reader, [0u8; 8192]);
            while let Ok(n @ 1..) = reader.read(&mut chunk) {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(&chunk[..n]);
            }
            _ = done.send(());
        };
        if let Err(e) = std::thread::Builder::new()
            .name("run-output".into())
            .spawn(reading)
        {
            return refused(format!("could not read the command's output: {e}"));
        }

        let waited = tokio::time::timeout(Duration::from_secs(secs), child.wait()).await;
        // What is left of the group dies now, after a timeout and after a normal exit
        // alike (background jobs): nothing the agent starts outlives its call.
        group.kill();
        let mut out = match waited {
            Err(_) => {
                _ = child.wait().await;
                format!("timed out after {secs} s: the command and all it started were killed\n")
            }
            Ok(Ok(status)) => match status.code() {
                Some(code) => format!("exit code {code}\n"),
                None => format!("killed by signal {}\n", status.signal().unwrap_or(0)),
            },
            Ok(Err(e)) => format!("could not wait for the command: {e}\n"),
        };
        _ = tokio::time::timeout(PIPE_GRACE, finished).await;
        let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        let kept = &tail.buf[tail.buf.len().saturating_sub(RUN_TAIL)..];
        if tail.total > kept.len() {
            let cut = tail.total - kept.len();
            _ = writeln!(
                out,
                "[{cut} earlier bytes of output cut; the last 16 KiB follow]"
            );
        }
        if kept.is_empty() {
            out.push_str("(no output)");
        }
        out.push_str(&String::from_utf8_lossy(kept));
        text(out)
    }
}

/// Process groups of `run` calls under way. They are not in the agent's own group, so a
/// signal to the agent does not reach them: [`kill_running`] does, from the handler of
/// SIGTERM and SIGINT that `git-massgen llm-agent` installs.
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kills every command the tools have running (the agent is being stopped).
pub fn kill_running() {
    let groups = std::mem::take(&mut *RUNNING.lock().unwrap_or_else(|p| p.into_inner()));
    for pgid in groups {
        kill_group(pgid, Signal::SIGKILL);
    }
}

/// Kills the command's process group when the call ends, even when the call's future is
/// dropped halfway (`kill_on_drop` alone would reach only the shell).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn new(pgid: Option<i32>) -> GroupGuard {
        if let Some(pgid) = pgid {
            RUNNING.lock().unwrap_or_else(|p| p.into_inner()).push(pgid);
        }
        GroupGuard(pgid)
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid, Signal::SIGKILL);
            RUNNING
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|g| *g != pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The end of a stream: at least its last [`RUN_TAIL`] bytes, and how many came in all.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
    total: usize,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > 2 * RUN_TAIL {
            self.buf.drain(..self.buf.len() - RUN_TAIL);
        }
    }
}
