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
    /// Its worktree holds work that no snapshot could save: the worktree is kept (by the
    /// run and by `clean` without `--force`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsaved: bool,
    /// The files the candidate deletes (relative to the base).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
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
    /// Votes for it in the round that was scored last (judges' and agents').
    #[serde(default)]
    pub votes: u32,
    /// What it did in each round of each turn, with the candidate commit after it.
    #[serde(default)]
    pub history: Vec<RoundEntry>,
    /// The argv of an ad-hoc agent (`--agent-cmd`), so that `--continue` can run it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

/// What an agent did in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Its first attempt at the task (round 1 of a turn).
    Worked,
    /// It changed its candidate after seeing its peers'.
    Revised,
    /// It changed nothing and voted for a candidate.
    Voted,
    /// It changed nothing and did not vote.
    Stopped,
    /// Its session failed or timed out.
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Worked => "worked",
            Action::Revised => "revised",
            Action::Voted => "voted",
            Action::Stopped => "stopped",
            Action::Failed => "failed",
        }
    }
}

/// One round of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundEntry {
    pub turn: u32,
    pub round: u32,
    pub action: Action,
    /// The candidate commit after the round.
    pub commit: Option<String>,
}

/// Who cast a vote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Voter {
    #[default]
    Judge,
    Agent,
}

/// A vote for a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The judge's name, or the agent's for an agent's vote.
    pub judge: String,
    #[serde(default)]
    pub by: Voter,
    /// The agent whose candidate it is (resolved from the anonymous label).
    pub candidate: String,
    pub reason: String,
    #[serde(default = "one")]
    pub turn: u32,
    pub round: u32,
}

fn one() -> u32 {
    1
}

/// A judge that gave no valid vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Abstention {
    pub judge: String,
    #[serde(default = "one")]
    pub turn: u32,
    pub round: u32,
    /// Why: its last invalid answer, or the error that stopped it.
    pub reason: String,
}

/// One turn of a run: the task, or a follow-up given with `run --continue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub turn: u32,
    /// The task (turn 1) or the follow-up.
    pub prompt: String,
    /// The agents that took part.
    pub agents: Vec<String>,
    pub started_at: u64,
    /// Rounds run in this turn.
    pub rounds: u32,
    /// All agents voted without changing anything in the last round.
    pub converged: bool,
    pub winner: Option<String>,
    pub reason: Option<String>,
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
    /// Votes of judges and agents, every round.
    #[serde(default)]
    pub votes: Vec<Vote>,
    /// Judges that gave no valid vote.
    #[serde(default)]
    pub abstentions: Vec<Abstention>,
    /// Rounds of the current turn that have run.
    #[serde(default)]
    pub rounds: u32,
    /// The turns: the task, then each `--continue`.
    #[serde(default)]
    pub turns: Vec<Turn>,
    /// Tokens and cost of LLM judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_usage: Option<Usage>,
    /// What changed in the user's repository while agents ran (work tree, index, HEAD,
    /// refs, config, hooks), one line each. Any breach blocks merging without
    /// `--allow-breach`.
    #[serde(default)]
    pub breaches: Vec<String>,
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

    /// The current turn (1 before any `--continue`).
    pub fn turn(&self) -> u32 {
        self.turns.last().map_or(1, |t| t.turn)
    }

    /// The votes that count now: in the current turn, each judge's latest vote (unless it
    /// abstained after it), and the vote of each agent whose latest action was that vote.
    pub fn current_votes(&self) -> Vec<&Vote> {
        let turn = self.turn();
        let mut out: Vec<&Vote> = Vec::new();
        for (i, v) in self.votes.iter().enumerate() {
            if v.turn != turn {
                continue;
            }
            let superseded = self.votes[i + 1..]
                .iter()
                .any(|later| later.turn == turn && later.judge == v.judge && later.by == v.by);
            if superseded {
                continue;
            }
            let counts = match v.by {
                // Not if it abstained later, or the candidate it chose changed since.
                Voter::Judge => {
                    !self
                        .abstentions
                        .iter()
                        .any(|a| a.turn == turn && a.judge == v.judge && a.round > v.round)
                        && !self.candidate(&v.candidate).is_some_and(|c| {
                            c.history.iter().any(|h| {
                                h.turn == turn && h.round > v.round && h.action == Action::Revised
                            })
                        })
                }
                Voter::Agent => self.candidate(&v.judge).is_some_and(|c| {
                    c.history
                        .iter()
                        .rfind(|h| h.turn == turn)
                        .is_some_and(|h| h.round == v.round && h.action == Action::Voted)
                }),
            };
            if counts {
                out.push(v);
            }
        }
        out
    }

    /// The task as judges and peers see it: with the follow-ups of later turns.
    pub fn task_for_judges(&self) -> String {
        let mut task = self.task.clone();
        for t in self.turns.iter().skip(1) {
            task.push_str(&format!("\n\nFollow-up (turn {}): {}", t.turn, t.prompt));
        }
        task
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

/// A run directory whose state cannot be read: `state.json` is missing (a process killed
/// as the run was created by an earlier version) or damaged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unreadable {
    pub run: String,
    pub dir: PathBuf,
    /// Why, in words.
    pub error: String,
}

/// What is in `.massgen/runs/`.
#[derive(Debug, Default)]
pub struct Scan {
    /// Readable runs, oldest first (run ids sort by time).
    pub runs: Vec<RunState>,
    pub unreadable: Vec<Unreadable>,
    /// Directories of runs being created (`.<id>.new-<pid>`) whose process is gone.
    pub abandoned: Vec<PathBuf>,
}

/// Reads every run of the repository. One unreadable run never hides the others.
pub fn scan(runs_dir: &Path) -> Result<Scan, RunError> {
    let mut out = Scan::default();
    let entries = match std::fs::read_dir(runs_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(RunError::io("cannot list runs", runs_dir)(e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        if let Some(rest) = name.strip_prefix('.') {
            let pid = rest
                .rsplit_once(".new-")
                .and_then(|(_, pid)| pid.parse::<u32>().ok());
            if let Some(pid) = pid
                && !process_alive(pid)
            {
                out.abandoned.push(dir);
            }
            continue;
        }
        let state = dir.join("state.json");
        match load_file(&state) {
            Ok(st) => out.runs.push(st),
            Err(e) => {
                let error = if state.exists() {
                    let mut text = e.to_string();
                    if let RunError::State { source, .. } = &e {
                        text = format!("state.json is damaged ({source})");
                    }
                    text
                } else {
                    "no state.json (the run was killed as it was created)".to_owned()
                };
                out.unreadable.push(Unreadable {
                    run: name,
                    dir,
                    error,
                });
            }
        }
    }
    out.runs.sort_by(|a, b| a.run.cmp(&b.run));
    out.unreadable.sort_by(|a, b| a.run.cmp(&b.run));
    Ok(out)
}

/// Every readable run of the repository, oldest first (run ids sort by time).
pub fn list(runs_dir: &Path) -> Result<Vec<RunState>, RunError> {
    Ok(scan(runs_dir)?.runs)
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
    let plain = !arg.is_empty() && !arg.starts_with('.') && !arg.contains('/');
    if runs.iter().any(|r| r.run == arg)
        || (plain && runs_dir.join(arg).join("state.json").is_file())
    {
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
