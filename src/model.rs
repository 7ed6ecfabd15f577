//! The types of a run that every layer shares: candidates and their statuses, test results,
//! votes, rounds and turns, usage. Types only (with the small methods that describe them);
//! the run's life cycle that changes them lives in `run/`. Imports nothing of this crate.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Tokens and money, summed over an agent's whole work (nudges included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `null` when the CLI does not report a cost.
    pub cost_usd: Option<f64>,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        if let Some(c) = other.cost_usd {
            *self.cost_usd.get_or_insert(0.0) += c;
        }
    }
}

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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Passed tests, when the runner's output says.
    pub passed: Option<u64>,
    /// Failed tests, when the runner's output says.
    pub failed: Option<u64>,
    /// Errors the runner counts apart from failures (collection, import, build and fixture
    /// errors; a test suite that failed to run), when its output says.
    #[serde(default)]
    pub errors: Option<u64>,
    /// Tests reported as neither passed nor failed (skipped, ignored, todo, expected
    /// failures), when the runner's output says.
    #[serde(default)]
    pub skipped: Option<u64>,
    /// The command's exit code (`null` when it was killed).
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default)]
    pub duration_ms: u64,
    /// The runner ran no test at all (it collected none, or met only errors) and did not
    /// succeed: the test setup failed, not a test.
    #[serde(default)]
    pub could_not_collect: bool,
}

impl TestResult {
    /// The tests ran to completion and passed.
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0)
            && !self.timed_out
            && !self.could_not_collect
            && self.failed.unwrap_or(0) == 0
            && self.errors.unwrap_or(0) == 0
    }

    /// Failures and errors together: what counts against a candidate.
    pub fn failures(&self) -> u64 {
        self.failed.unwrap_or(0) + self.errors.unwrap_or(0)
    }

    /// A few words: `4 passed, 0 failed` (with errors and skipped tests when there are
    /// any), `tests could not be collected (2 errors)`, or what the exit code says.
    pub fn summary(&self) -> String {
        if self.timed_out {
            return "tests timed out".into();
        }
        if self.could_not_collect {
            return format!("tests {}", self.counts_words().unwrap_or_default());
        }
        self.counts_words().unwrap_or_else(|| match self.exit_code {
            Some(0) => "tests passed".into(),
            Some(code) => format!("tests exited with code {code}"),
            None => "tests were killed".into(),
        })
    }

    /// What the runner's counts say, `4 passed, 0 failed, 1 error` or `could not be
    /// collected (2 errors)`; `None` when the output had no counts.
    pub fn counts_words(&self) -> Option<String> {
        if self.could_not_collect {
            return Some(match self.errors.filter(|&e| e > 0) {
                Some(e) => format!("could not be collected ({})", errors(e)),
                None => "could not be collected (no test ran)".into(),
            });
        }
        let (p, f) = (self.passed?, self.failed?);
        let mut words = format!("{p} passed, {f} failed");
        if let Some(e) = self.errors.filter(|&e| e > 0) {
            words.push_str(&format!(", {}", errors(e)));
        }
        if let Some(s) = self.skipped.filter(|&s| s > 0) {
            words.push_str(&format!(", {s} skipped"));
        }
        Some(words)
    }
}

fn errors(n: u64) -> String {
    format!("{n} error{}", if n == 1 { "" } else { "s" })
}

/// How many ports each agent gets.
pub const PORT_BLOCK: u16 = 10;

/// `MASSGEN_PORT` (the first port of a block) and `MASSGEN_PORTS` (`first-last`).
pub fn port_env(port: Option<u16>) -> Vec<(String, String)> {
    match port {
        Some(p) => vec![
            ("MASSGEN_PORT".into(), p.to_string()),
            (
                "MASSGEN_PORTS".into(),
                format!("{p}-{}", p + PORT_BLOCK - 1),
            ),
        ],
        None => Vec::new(),
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
    /// The first of its block of [`PORT_BLOCK`] ports (free on 127.0.0.1 when the run
    /// started, distinct across the run's agents): `MASSGEN_PORT` and `MASSGEN_PORTS` for
    /// its agent and its test command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Its worktree's setup commands (`[worktree] setup`) have run successfully; cleared
    /// when its worktree is checked out again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub set_up: bool,
    /// What its agent left is on its branch: set by every successful snapshot, cleared when
    /// an agent session starts. What the worktree holds beyond it afterwards (test output,
    /// edits by hand) is never recorded as the candidate's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub saved: bool,
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
    /// Its agent's last Slurm job (`[executor] kind = "slurm"`), as last polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
    /// Every Slurm job of its agent, setup and tests, as last polled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<SlurmJob>,
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
    /// Writes or connections the sandbox denied, as the agent's output reports them
    /// (`Permission denied`, `Operation not permitted`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub denied: u32,
    /// Replies of the model cut at the output limit (the built-in agent).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated: u32,
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

/// A Slurm job as `scontrol show job` last described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJob {
    pub id: u64,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `TIMEOUT`, `CANCELLED`, `NODE_FAIL`,
    /// `OUT_OF_MEMORY`, …
    pub state: String,
    /// Why it waits or ended (`Resources`, `Priority`, `NonZeroExitCode`), when Slurm says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node it runs or ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What it runs of its candidate: `agent`, `setup`, `test` (in a run's state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl SlurmJob {
    /// `job 12 RUNNING on node1`, `test job 13 PENDING (Resources)`.
    pub fn describe(&self) -> String {
        let unit = match self.unit.as_deref() {
            None | Some("agent") => String::new(),
            Some(unit) => format!("{unit} "),
        };
        let mut text = format!("{unit}job {} {}", self.id, self.state);
        if let Some(reason) = &self.reason {
            text.push_str(&format!(" ({reason})"));
        }
        if let Some(node) = &self.node {
            text.push_str(&format!(" on {node}"));
        }
        text
    }
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

/// The known CLIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Claude,
    Codex,
    Gemini,
    Opencode,
    Qwen,
    Aider,
    /// The built-in agent over HTTP (`kind = "llm"`): our own binary, `llm-agent`.
    Llm,
}

impl Preset {
    /// Where the CLI writes when it runs with the user's own configuration
    /// (`own_config = true`), relative to the home directory: its sandbox lets it write
    /// there. With a generated configuration it writes in its own home, which it may.
    pub fn own_config_dirs(self) -> &'static [&'static str] {
        match self {
            Preset::Claude => &[".claude", ".claude.json", ".cache/claude-cli-nodejs"],
            Preset::Codex => &[".codex"],
            Preset::Gemini => &[".gemini"],
            Preset::Opencode => &[
                ".local/share/opencode",
                ".local/state/opencode",
                ".config/opencode",
                ".cache/opencode",
            ],
            Preset::Qwen => &[".qwen"],
            Preset::Aider => &[".aider", ".cache/aider"],
            Preset::Llm => &[],
        }
    }

    pub const ALL: [Preset; 6] = [
        Preset::Claude,
        Preset::Codex,
        Preset::Gemini,
        Preset::Opencode,
        Preset::Qwen,
        Preset::Aider,
    ];

    /// The `kind` in configuration, and the binary's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Claude => "claude",
            Preset::Codex => "codex",
            Preset::Gemini => "gemini",
            Preset::Opencode => "opencode",
            Preset::Qwen => "qwen",
            Preset::Aider => "aider",
            Preset::Llm => "llm",
        }
    }
}

/// How serious a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// Parses `error`, `warning` or `info` (any case; `note` is taken as `info`).
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Severity::Error),
            "warning" | "warn" => Some(Severity::Warning),
            "info" | "note" => Some(Severity::Info),
            _ => None,
        }
    }
}

/// The limits of one `"provider/model"`; each is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per 60 s.
    pub rpm: Option<u32>,
    /// Tokens (estimated, then actual) per 60 s.
    pub tpm: Option<u64>,
    /// Requests per 86,400 s.
    pub rpd: Option<u32>,
    /// Requests in flight at once.
    pub max_concurrent: Option<u32>,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The limits in words, such as `9 RPM, 240000 TPM, 245 RPD`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            self.rpm.map(|n| format!("{n} RPM")),
            self.tpm.map(|n| format!("{n} TPM")),
            self.rpd.map(|n| format!("{n} RPD")),
            self.max_concurrent.map(|n| format!("{n} concurrent")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "no limits".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
