//! A run's persisted state (`state.json`), written atomically after every transition so that
//! a killed process leaves a run that `status` can explain and `clean` can finish.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunError;
use super::layout::RunDir;
use crate::agent::events::Usage;

/// The life cycle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Created,
    Running,
    Scoring,
    Scored,
    Merged,
    Abandoned,
    Interrupted,
}

impl Phase {
    /// Whether a live process is expected to own a run in this phase.
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Created | Phase::Running | Phase::Scoring)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::Running => "running",
            Phase::Scoring => "scoring",
            Phase::Scored => "scored",
            Phase::Merged => "merged",
            Phase::Abandoned => "abandoned",
            Phase::Interrupted => "interrupted",
        }
    }
}

/// What became of one agent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Pending,
    Running,
    Done,
    Failed,
    Timeout,
    NoChange,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Timeout => "timeout",
            Status::NoChange => "no_change",
        }
    }
}

/// The result of a candidate's test command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Passed tests, when the runner's output says.
    pub passed: Option<u64>,
    /// Failed tests, when the runner's output says.
    pub failed: Option<u64>,
    /// The command's exit code (`null` when it was killed).
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default)]
    pub duration_ms: u64,
}

impl TestResult {
    /// The tests ran to completion and passed.
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.failed.unwrap_or(0) == 0
    }

    /// A few words: `4 passed, 0 failed`, or what the exit code says.
    pub fn summary(&self) -> String {
        if self.timed_out {
            return "tests timed out".into();
        }
        match (self.passed, self.failed) {
            (Some(p), Some(f)) => format!("{p} passed, {f} failed"),
            _ => match self.exit_code {
                Some(0) => "tests passed".into(),
                Some(code) => format!("tests exited with code {code}"),
                None => "tests were killed".into(),
            },
        }
    }
}

/// One agent's candidate.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Candidate {
    pub agent: String,
    /// `command` or the CLI preset.
    #[serde(default = "command_kind")]
    pub kind: String,
    /// Short branch name, `massgen/<run>/<agent>`.
    pub branch: String,
    pub commit: Option<String>,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub files_changed: usize,
    pub insertions: usize,
    pub deletions: usize,
    pub tests: Option<TestResult>,
    pub agreement: f64,
    pub rank: Option<usize>,
    /// The worktree while it exists.
    pub worktree: Option<PathBuf>,
    /// The agent's process group while it runs.
    #[serde(default)]
    pub pgid: Option<i32>,
    #[serde(default)]
    pub duration_ms: u64,
    /// Why it failed, in words.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Tokens and cost, when the agent reports them (CLI presets do).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Model turns, when the agent reports them.
    #[serde(default)]
    pub turns: Option<u32>,
    /// The agent's last message: its summary, or its question.
    #[serde(default)]
    pub final_message: Option<String>,
    /// It ended (at least once) by asking for input instead of finishing.
    #[serde(default)]
    pub asked_for_input: bool,
    /// Follow-ups sent telling it to finish on its own.
    #[serde(default)]
    pub nudges: u32,
    /// The CLI's session, for resuming it.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Model calls retried (429, 5xx, broken streams), as the agent reported them.
    #[serde(default)]
    pub retries: u32,
    /// Times it waited for a shared rate limit.
    #[serde(default)]
    pub rate_limit_waits: u32,
}

fn command_kind() -> String {
    "command".into()
}

/// The whole persisted run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub run: String,
    pub base: String,
    /// The branch HEAD was on when the run started (full ref name), if any.
    pub base_branch: Option<String>,
    pub task: String,
    pub state: Phase,
    pub winner: Option<String>,
    pub merged: bool,
    /// One sentence on why the winner won (or why nobody did).
    pub reason: Option<String>,
    pub test_command: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    /// The process that owns the run while it is active.
    pub pid: u32,
    pub worktree_root: PathBuf,
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The sum of the candidates' usage, when any reported one.
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl RunState {
    /// The phase as the user should see it: an active run whose process is gone was
    /// interrupted.
    pub fn effective_phase(&self) -> Phase {
        if self.state.is_active() && !process_alive(self.pid) {
            Phase::Interrupted
        } else {
            self.state
        }
    }

    pub fn candidate(&self, agent: &str) -> Option<&Candidate> {
        self.candidates.iter().find(|c| c.agent == agent)
    }

    /// The candidate of `agent`, or an error naming the run.
    pub fn require_candidate(&self, agent: &str) -> Result<&Candidate, RunError> {
        self.candidate(agent).ok_or_else(|| RunError::UnknownAgent {
            run: self.run.clone(),
            agent: agent.to_owned(),
        })
    }

    pub fn candidate_mut(&mut self, agent: &str) -> Option<&mut Candidate> {
        self.candidates.iter_mut().find(|c| c.agent == agent)
    }

    /// Loads a run's state.
    pub fn load(dir: &RunDir) -> Result<RunState, RunError> {
        load_file(&dir.state_file())
    }

    /// Writes the state atomically (temporary file, then rename).
    pub fn save(&mut self, dir: &RunDir) -> Result<(), RunError> {
        self.updated_at = super::now_secs();
        let path = dir.state_file();
        let text = serde_json::to_vec_pretty(self).expect("state serializes");
        write_atomic(&path, &text)
    }
}

fn load_file(path: &Path) -> Result<RunState, RunError> {
    let bytes = std::fs::read(path).map_err(RunError::io("cannot read run state", path))?;
    serde_json::from_slice(&bytes).map_err(|source| RunError::State {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers see the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    use std::io::Write;
    let dir = path.parent().expect("state files live in a directory");
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(RunError::io("cannot write", dir))?;
    tmp.write_all(bytes)
        .map_err(RunError::io("cannot write", path))?;
    tmp.as_file()
        .sync_data()
        .map_err(RunError::io("cannot write", path))?;
    tmp.persist(path)
        .map_err(|e| RunError::io("cannot write", path)(e.error))?;
    Ok(())
}

/// Whether process `pid` is alive and is a git-massgen process (guards against pid reuse
/// where /proc can tell).
pub fn process_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    };
    if !alive {
        return false;
    }
    // A zombie (killed, not yet reaped by its parent) is not running the run.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some(state) = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
        && (state == "Z" || state == "X")
    {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("massgen"),
        Err(_) => true,
    }
}

/// Every run of the repository, oldest first (run ids sort by time).
pub fn list(runs_dir: &Path) -> Result<Vec<RunState>, RunError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(runs_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(RunError::io("cannot list runs", runs_dir)(e)),
    };
    for entry in entries.flatten() {
        let state = entry.path().join("state.json");
        if state.is_file() {
            out.push(load_file(&state)?);
        }
    }
    out.sort_by(|a, b| a.run.cmp(&b.run));
    Ok(out)
}

/// Resolves a run argument: an exact id, a unique prefix, or `latest`.
pub fn resolve(runs_dir: &Path, arg: &str) -> Result<String, RunError> {
    let runs = list(runs_dir)?;
    if arg == "latest" || arg == "last" {
        return runs
            .last()
            .map(|r| r.run.clone())
            .ok_or_else(|| RunError::UnknownRun { run: arg.into() });
    }
    if runs.iter().any(|r| r.run == arg) {
        return Ok(arg.to_owned());
    }
    let matches: Vec<&RunState> = runs.iter().filter(|r| r.run.starts_with(arg)).collect();
    match matches.as_slice() {
        [one] => Ok(one.run.clone()),
        [] => Err(RunError::UnknownRun { run: arg.into() }),
        many => Err(RunError::Usage(format!(
            "`{arg}` matches {} runs: {}",
            many.len(),
            many.iter()
                .map(|r| r.run.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
