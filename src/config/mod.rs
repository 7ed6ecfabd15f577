//! `.massgen/config.toml`: what a run uses when flags do not say otherwise.
//!
//! Every key is optional except an agent's `name`. Unknown keys are errors that name the file,
//! line and column, so that a typo never silently changes what runs.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod agent;
pub use agent::{AgentConfig, AgentKind, is_env_name, validate_agent_name};

/// Default per-agent time limit.
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Default time limit of a candidate's test command.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `massgen.*` setting in git's configuration.
    #[error("git config {key}: {message}")]
    Setting { key: String, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The parsed configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where it was read from and its text, so that the modules that own a key can report
    /// a bad value at its line and column ([`Config::invalid_at`]).
    #[serde(skip)]
    pub source: Option<(PathBuf, String)>,
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub score: ScoreSection,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Judges that vote for a candidate when tests cannot decide: `kind = "command"` or
    /// `kind = "llm"`, with the same keys as agents of those kinds.
    #[serde(default)]
    pub judges: Vec<AgentConfig>,
    #[serde(default)]
    pub judging: JudgingSection,
    /// Reviewers for `git massgen review`: `kind = "command"`, `"llm"` or a CLI preset, with
    /// the same keys as agents of that kind.
    #[serde(default)]
    pub reviewers: Vec<AgentConfig>,
    #[serde(default)]
    pub review: ReviewSection,
    /// `[plan]`: the planner of `plan new`.
    #[serde(default)]
    pub plan: PlanSection,
    /// Rate limits per `"provider/model"`, over the shipped profiles.
    #[serde(default)]
    pub limits: BTreeMap<String, crate::model::Limits>,
    #[serde(default)]
    pub worktree: WorktreeSection,
    #[serde(default)]
    pub sandbox: SandboxSection,
    /// `[executor]`: where agents, setup and test commands run.
    #[serde(default)]
    pub executor: ExecutorSection,
}

/// `[executor]`: where the commands of a run run: here (`local`), or as Slurm batch jobs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSection {
    /// `local` (default) or `slurm`.
    pub kind: Option<ExecutorKind>,
    #[serde(default)]
    pub slurm: SlurmSection,
}

/// `[executor] kind`, `[score] executor`, `--executor`, `massgen.executor`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// Processes on this machine, supervised by git-massgen.
    #[default]
    Local,
    /// Slurm batch jobs (`sbatch`), polled with `scontrol`.
    Slurm,
}

impl ExecutorKind {
    pub fn parse(text: &str) -> Option<ExecutorKind> {
        match text {
            "local" => Some(ExecutorKind::Local),
            "slurm" => Some(ExecutorKind::Slurm),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

/// `[executor.slurm]`: how jobs are submitted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem` (`"4G"`, Slurm's own syntax).
    pub mem: Option<String>,
    /// `--gres` (`"gpu:1"`).
    pub gres: Option<String>,
    /// More `sbatch` arguments, as they are (`["--qos=long"]`).
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// A job lost to a node failure or preemption is queued again (`--requeue`) instead of
    /// failing its candidate.
    #[serde(default)]
    pub requeue: bool,
    /// More variables of this environment passed to jobs by name (API keys), beside the
    /// `MASSGEN_*` variables, the agent's own `env` and the key variable it names.
    #[serde(default)]
    pub export: Vec<String>,
    /// Whether the nodes see the worktree root (default `true`). Without it, an agent's job
    /// gets a git bundle of its branch, works in a clone in `scratch`, and returns its
    /// candidate as a bundle.
    pub shared_fs: Option<bool>,
    /// Node-local directory of the clones when `shared_fs = false` (default `/tmp`).
    pub scratch: Option<PathBuf>,
    /// Directory every node sees, where the bundles go when `shared_fs = false` (default:
    /// the run's directory).
    pub stage: Option<PathBuf>,
    /// git-massgen on the nodes (default: this program's own path).
    pub program: Option<PathBuf>,
}

/// `[sandbox]`: what agents and the commands of a run may write and connect to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    /// `auto` (confine where the kernel can), `required` (refuse to start otherwise), `off`.
    pub mode: Option<SandboxMode>,
    /// `"all"` (default), `"none"`, or the TCP ports commands may connect to.
    #[serde(default)]
    pub network: Network,
    /// More paths every confined command may write (`~/` is the home directory,
    /// `{worktree_root}` the repository's worktree root, which holds every run's).
    #[serde(default)]
    pub allow_write: Vec<String>,
}

/// `[sandbox] mode`, `--sandbox`, `massgen.sandbox`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Confine where the kernel supports it; say once per run when it cannot.
    #[default]
    Auto,
    /// Refuse to start without it.
    Required,
    /// Do not confine (the breach guard still watches).
    Off,
}

impl SandboxMode {
    pub fn parse(text: &str) -> Option<SandboxMode> {
        match text {
            "auto" => Some(SandboxMode::Auto),
            "required" => Some(SandboxMode::Required),
            "off" => Some(SandboxMode::Off),
            _ => None,
        }
    }
}

/// `[sandbox] network`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Network {
    #[default]
    All,
    /// No TCP but each command's own block of ports.
    None,
    /// Connections only to these TCP ports (and each command's own block).
    Ports(Vec<u16>),
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Network, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Ports(Vec<u16>),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected \"all\", \"none\" or a list of TCP ports")
        })? {
            Raw::Word(w) if w == "all" => Ok(Network::All),
            Raw::Word(w) if w == "none" => Ok(Network::None),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "unknown network `{w}`: expected \"all\", \"none\" or a list of TCP ports"
            ))),
            Raw::Ports(p) => Ok(Network::Ports(p)),
        }
    }
}

/// `[worktree]`: what makes a fresh worktree ready to test.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorktreeSection {
    /// Ignored files of the user's work tree copied into every new worktree
    /// (gitignore-style patterns; `.worktreeinclude` at the repository root adds more).
    #[serde(default)]
    pub include: Vec<String>,
    /// Ignored directories copied whole into every new worktree (`node_modules`, `.venv`,
    /// `target`): cloned copy-on-write where the file system can, else copied.
    #[serde(default)]
    pub clone: Vec<String>,
    /// Ignored directories linked into every new worktree (a symlink to the user's own):
    /// nothing is copied, but an agent that writes through the link changes it for all.
    #[serde(default)]
    pub share: Vec<String>,
    /// Environment of every agent, setup and test command; `{worktree_root}` in a value is
    /// the repository's worktree root, shared by its runs (e.g. `CARGO_TARGET_DIR = "{worktree_root}/cargo-target"`,
    /// one build of the dependencies for all candidates).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Finished runs' worktrees are removed, oldest first, until all runs' worktrees take
    /// less than this (`"20G"`, `"500M"`); their branches are kept.
    #[serde(default, deserialize_with = "byte_size")]
    pub max_disk: Option<u64>,
    /// Commands run with `sh -c` in each new worktree before its agent starts (install
    /// dependencies, build once), one after another.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Time limit of one worktree's setup, all its commands together.
    #[serde(default, deserialize_with = "duration")]
    pub setup_timeout: Option<Duration>,
    /// How candidates' worktrees are made: `checkout` (default), `overlay` (copy-on-write),
    /// `auto`.
    pub mode: Option<WorktreeMode>,
}

/// `[worktree] mode`, `run --worktree-mode`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum WorktreeMode {
    /// A full checkout per agent.
    #[default]
    Checkout,
    /// One shared checkout of the base under a copy-on-write overlay per agent (Linux,
    /// unprivileged user namespaces); refused where it cannot work.
    Overlay,
    /// Overlay where it works, else checkout (with a warning saying why).
    Auto,
}

/// Default time limit of a worktree's setup.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// `[run]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// How many agents (and test commands) run at once.
    pub jobs: Option<usize>,
    /// Per-agent time limit.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// Where worktrees are created; relative paths are relative to the work tree root.
    pub worktree_root: Option<PathBuf>,
    /// Run this many of the agents that would run, picked by what was learned (`--pick`);
    /// all of them when no more would run.
    pub pick: Option<usize>,
}

/// `[score]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSection {
    /// The test command, run with `sh -c` in every candidate's worktree.
    pub test: Option<String>,
    /// Time limit of one test command.
    #[serde(default, deserialize_with = "duration")]
    pub test_timeout: Option<Duration>,
    /// Where test commands run: `local` (default) or `slurm` (`[executor.slurm]`'s jobs).
    pub executor: Option<ExecutorKind>,
    /// Weights of the evidence; without them evidence is compared in order (tests, votes,
    /// agreement, size).
    pub weights: Option<Weights>,
}

/// `[score.weights]`: each candidate's evidence as a number in 0..=1, multiplied by its
/// weight and summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    #[serde(default)]
    pub tests: f64,
    #[serde(default)]
    pub votes: f64,
    #[serde(default)]
    pub agreement: f64,
    #[serde(default)]
    pub size: f64,
}

/// When judges are asked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeWhen {
    /// Only when tests leave more than one candidate at the top.
    #[default]
    Tie,
    /// Whenever there are two candidates with a change.
    Always,
}

/// `[judging]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgingSection {
    #[serde(default)]
    pub when: JudgeWhen,
    /// Characters of each candidate's diff a judge sees.
    pub diff_budget: Option<usize>,
    /// Answers a judge may give before it abstains (invalid votes are retried).
    pub max_attempts: Option<u32>,
    /// Time limit of one judge.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
}

/// `[review]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSection {
    /// How many reviewers must report a finding for it to be kept (default: a majority).
    pub quorum: Option<usize>,
    /// The least severity of a kept finding that fails the review: `error` (default),
    /// `warning`, `info` or `never`.
    pub fail_on: Option<String>,
    /// Whether a reviewer that fails fails the review.
    #[serde(default)]
    pub strict: bool,
    /// Time limit of one reviewer.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// Characters of the diff an LLM reviewer is given in its prompt.
    pub diff_budget: Option<usize>,
    /// Answers a reviewer may give before it counts as failed (invalid answers are retried).
    pub max_attempts: Option<u32>,
}

/// `[plan]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSection {
    /// Answers the planner may give before `plan new` gives up (invalid plans are asked
    /// again with what was wrong).
    pub max_attempts: Option<u32>,
    /// Time limit of the planner, all attempts together (over its own `timeout`).
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parses `90s`, `10m`, `1h 30m`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}`: {e} (examples: 90s, 10m, 1h)"))?;
    if d.is_zero() {
        return Err(format!("invalid duration `{text}`: must be more than zero"));
    }
    Ok(d)
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    parse_size(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parses a size: `500M`, `20G`, `1.5G`, `4096` (bytes); `K`, `M`, `G`, `T` are powers of
/// 1024, with or without a trailing `B` or `iB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size `{text}` (examples: 500M, 20G, 1.5T)");
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (number, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => t.split_at(at),
        None => (t, ""),
    };
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(format!("invalid size `{text}`: must be more than zero"));
    }
    Ok((n * scale as f64) as u64)
}

impl Config {
    /// Loads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            invalid(
                path,
                text,
                e.span().unwrap_or(0..0),
                e.message().trim().to_owned(),
            )
        })?;
        let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
        for agent in &config.agents {
            let name = agent.name.get_ref();
            if let Err(why) = validate_agent_name(name) {
                return Err(invalid(path, text, agent.name.span(), why));
            }
            if seen.insert(name, ()).is_some() {
                return Err(invalid(
                    path,
                    text,
                    agent.name.span(),
                    format!("agent `{name}` is defined twice; names must be unique"),
                ));
            }
            if let Err(why) = agent.check_kind_fields() {
                return Err(invalid(path, text, agent.name.span(), why));
            }
        }
        let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
        for judge in &config.judges {
            let name = judge.name.get_ref();
            let why = validate_agent_name(name)
                .err()
                .or_else(|| {
                    seen.insert(name, ())
                        .map(|()| format!("judge `{name}` is defined twice; names must be unique"))
                })
                .or_else(|| {
                    (!matches!(judge.kind, AgentKind::Command | AgentKind::Llm)).then(|| {
                        format!(
                            "judge `{name}`: kind = \"{}\"; judges are kind = \"command\" or kind = \"llm\"",
                            judge.kind.as_str()
                        )
                    })
                })
                .or_else(|| judge.check_kind_fields().err());
            if let Some(why) = why {
                return Err(invalid(
                    path,
                    text,
                    judge.name.span(),
                    why.replace("agent `", "judge `"),
                ));
            }
        }
        let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
        for reviewer in &config.reviewers {
            let name = reviewer.name.get_ref();
            let why = validate_agent_name(name)
                .err()
                .or_else(|| {
                    seen.insert(name, ()).map(|()| {
                        format!("reviewer `{name}` is defined twice; names must be unique")
                    })
                })
                .or_else(|| reviewer.check_kind_fields().err());
            if let Some(why) = why {
                return Err(invalid(
                    path,
                    text,
                    reviewer.name.span(),
                    why.replace("agent `", "reviewer `"),
                ));
            }
        }
        let review = &config.review;
        fn zero(
            table: &'static str,
            key: &'static str,
            value: Option<usize>,
        ) -> Option<(&'static str, &'static str, String)> {
            (value == Some(0)).then(|| (table, key, format!("`{table}.{key}` must be at least 1")))
        }
        let problem = zero("review", "quorum", review.quorum)
            .or_else(|| {
                zero(
                    "review",
                    "max_attempts",
                    review.max_attempts.map(|q| q as usize),
                )
            })
            .or_else(|| zero("review", "diff_budget", review.diff_budget))
            .or_else(|| {
                review
                    .fail_on
                    .as_deref()
                    .filter(|f| *f != "never" && crate::model::Severity::parse(f).is_none())
                    .map(|f| {
                        (
                            "review",
                            "fail_on",
                            format!(
                                "`review.fail_on = \"{f}\"`: expected error, warning, info or never"
                            ),
                        )
                    })
            })
            .or_else(|| {
                config.score.weights.and_then(|w| {
                    let fine = [w.tests, w.votes, w.agreement, w.size]
                        .iter()
                        .all(|x| x.is_finite() && *x >= 0.0)
                        && w.tests + w.votes + w.agreement + w.size > 0.0;
                    (!fine).then(|| {
                        (
                            "score.weights",
                            "",
                            "`score.weights` must be numbers of at least 0, not all 0".to_owned(),
                        )
                    })
                })
            })
            .or_else(|| {
                zero(
                    "judging",
                    "max_attempts",
                    config.judging.max_attempts.map(|q| q as usize),
                )
            })
            .or_else(|| zero("judging", "diff_budget", config.judging.diff_budget))
            .or_else(|| {
                zero(
                    "plan",
                    "max_attempts",
                    config.plan.max_attempts.map(|q| q as usize),
                )
            })
            .or_else(|| zero("run", "jobs", config.run.jobs))
            .or_else(|| zero("run", "pick", config.run.pick));
        if let Some((table, key, message)) = problem {
            let (line, column) = locate(text, table, key);
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            });
        }
        let mut config = config;
        config.source = Some((path.to_owned(), text.to_owned()));
        Ok(config)
    }
}

/// Line and column of `key` in `[table]` (or of `table.key` written dotted, or of the
/// table's header when `key` is empty or not found): where a value that parsed but is not
/// allowed was written.
fn locate(text: &str, table: &str, key: &str) -> (usize, usize) {
    let mut section = String::new();
    let mut header = None;
    let starts_key = |rest: &str, key: &str| {
        rest.strip_prefix(key)
            .is_some_and(|after| after.trim_start().starts_with('='))
    };
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let column = line.len() - trimmed.len() + 1;
        if let Some(name) = trimmed.strip_prefix('[') {
            section = name
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            if section == table && header.is_none() {
                header = Some((i + 1, column));
            }
            continue;
        }
        let dotted = if section.is_empty() {
            format!("{table}.{key}")
        } else {
            format!(
                "{}.{key}",
                table.strip_prefix(&format!("{section}.")).unwrap_or("")
            )
        };
        if !key.is_empty()
            && ((section == table && starts_key(trimmed, key)) || starts_key(trimmed, &dotted))
        {
            return (i + 1, column);
        }
    }
    header.unwrap_or((1, 1))
}

impl Config {
    /// An error at `span` of the file this configuration was read from.
    pub fn invalid_at(&self, span: Range<usize>, message: String) -> ConfigError {
        match &self.source {
            Some((path, text)) => invalid(path, text, span, message),
            None => ConfigError::Invalid {
                path: PathBuf::from("config.toml"),
                line: 0,
                column: 0,
                message,
            },
        }
    }
}

fn invalid(path: &Path, text: &str, span: Range<usize>, message: String) -> ConfigError {
    let (line, column) = line_column(text, span.start);
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
