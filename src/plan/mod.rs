//! Task plans: a change split into tasks with dependencies, read from a TOML file
//! (`.massgen/plans/<name>.toml` or any path) and checked whole before anything runs.
//!
//! This module owns the plan's model ([`TaskPlan`], [`Task`]), reading and checking the file
//! ([`file`]: every problem at its line and column, with a hint) and the dependency graph
//! ([`graph`]: cycles, waves). It only reads the file it is given: it never prints, never
//! touches the repository, and knows the configuration only through the agent names the
//! caller passes in.

pub mod file;
pub mod graph;
pub mod hand;
pub mod integrate;
pub mod matrix;
mod options;
pub mod planner;
pub mod resolve;
mod resolver;
pub mod run;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// The most tasks a plan may hold.
pub const MAX_TASKS: usize = 100;
/// The most refinement rounds a task may ask for.
pub const MAX_ROUNDS: u32 = 20;

/// A plan that passed every check: ids unique, dependencies known and acyclic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPlan {
    /// `name`, or the file's stem.
    pub name: String,
    /// The command that tests the integrated result; `None`: the configuration's
    /// `[score] test`.
    pub integration_test: Option<String>,
    /// The agent that resolves conflicts while tasks are integrated.
    pub resolver: Option<String>,
    /// In plan order (the order of the file).
    pub tasks: Vec<Task>,
}

/// One `[[tasks]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    /// `title`, or the first line of `task`.
    pub title: String,
    /// What the agents are asked to do.
    pub task: String,
    /// Ids of the tasks this one starts after, as written.
    pub depends_on: Vec<String>,
    /// Configured agents to run; empty: every configured agent.
    pub agents: Vec<String>,
    /// The test command of this task's candidates; `None`: `[score] test`.
    pub test: Option<String>,
    /// Refinement rounds (1..=[`MAX_ROUNDS`]); `None`: as `run` decides.
    pub rounds: Option<u32>,
    /// Each agent's time limit; `None`: as `run` decides.
    pub timeout: Option<Duration>,
    /// 1 when the task depends on nothing, else one more than its latest dependency's: the
    /// tasks of a wave can run at once.
    pub wave: usize,
}

impl TaskPlan {
    /// The tasks of each wave, in plan order; wave 1 first.
    pub fn waves(&self) -> Vec<Vec<&Task>> {
        let count = self.tasks.iter().map(|t| t.wave).max().unwrap_or(0);
        let mut waves: Vec<Vec<&Task>> = vec![Vec::new(); count];
        for task in &self.tasks {
            waves[task.wave - 1].push(task);
        }
        waves
    }
}

/// Why a plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("no plan at {path}")]
    NotFound { path: PathBuf },
    #[error("cannot read the plan {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, in the order of the file.
    #[error("{path}: the plan has {count} problem(s)", count = problems.len())]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One thing wrong in a plan file, where it was written and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct Problem {
    /// The file as it is shown to the user.
    #[serde(skip)]
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Where plans named without a path live.
pub fn plans_dir(massgen_dir: &Path) -> PathBuf {
    massgen_dir.join("plans")
}

/// Whether a plan argument is a bare name (`auth`, meaning `.massgen/plans/auth.toml`)
/// rather than a path: no `/` and no `.toml` at the end.
pub fn is_bare_name(arg: &str) -> bool {
    !arg.is_empty() && !arg.contains('/') && !arg.ends_with(".toml") && arg != "." && arg != ".."
}

/// Reads and checks the plan at `path`. `shown` is how messages name the file; `agents`
/// are the configured agents' names (`None`: not known, so `agents` and `resolver` are
/// only checked for their form).
pub fn load(
    path: &Path,
    shown: &Path,
    agents: Option<&[String]>,
) -> Result<TaskPlan, PlanFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PlanFileError::NotFound {
                path: shown.to_owned(),
            });
        }
        Err(source) => {
            return Err(PlanFileError::Read {
                path: shown.to_owned(),
                source,
            });
        }
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    file::parse(&text, shown, &stem, agents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_and_paths() {
        assert!(is_bare_name("auth"));
        assert!(is_bare_name("auth.v2"));
        for path in ["auth.toml", "plans/auth", "./auth", "/tmp/x", ".", "..", ""] {
            assert!(!is_bare_name(path), "{path}");
        }
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../templates/plan.example.toml");
        let configured = ["claude".to_owned(), "codex".to_owned()];
        let plan = file::parse(text, Path::new("auth.toml"), "x", Some(&configured)).unwrap();
        assert_eq!(plan.name, "auth");
        let waves: Vec<usize> = plan.waves().iter().map(Vec::len).collect();
        assert_eq!(waves, [1, 2, 1]);
        assert_eq!(plan.tasks[1].timeout, Some(Duration::from_secs(20 * 60)));
    }

    #[test]
    fn a_missing_file_is_named_as_shown() {
        let err = load(
            Path::new("/nonexistent/plans/x.toml"),
            Path::new("x.toml"),
            None,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "no plan at x.toml");
    }
}

/// Why a plan cannot be run (a task's own failure is a task status, not an error).
#[derive(Debug, thiserror::Error)]
pub enum PlanRunError {
    #[error("plan {plan} is being run by process {pid}")]
    Busy { plan: String, pid: u32 },
    #[error("{branch} exists, but plan {plan} has no state")]
    Stray { plan: String, branch: String },
    #[error("{branch} is at {found}, not where plan {plan} left it ({expected})")]
    Moved {
        plan: String,
        branch: String,
        expected: String,
        found: String,
    },
    #[error("--merge merges plan {plan} into {target}, which is not the current branch")]
    NotOnTarget { plan: String, target: String },
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Merge(#[from] crate::run::merge::MergeError),
    #[error(transparent)]
    Setup(#[from] crate::run::plan::PlanError),
}
