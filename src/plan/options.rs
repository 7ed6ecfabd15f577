//! What a plan run is given: its options (jobs, the integration test and how its worktree
//! is made ready), how a task's run is made, and who is told of its progress. Below both
//! the driver (`run.rs`) and the resolver (`resolver.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Task;
use super::integrate::Check;
use super::state;
use crate::git::{ObjectId, Repo};
use crate::run::pipeline::{self, Event};
use crate::run::plan::PlanError;

/// How a plan runs.
pub struct Options {
    /// Tasks running at once.
    pub jobs: usize,
    /// The plan's `integration_test`, else `[score] test`.
    pub integration_test: Option<String>,
    pub test_timeout: Duration,
    /// Where check worktrees go: `<worktree root>/plans/<name>/`.
    pub worktree_root: PathBuf,
    /// What readies a check worktree before the test (`[worktree]`).
    pub ready: crate::run::setup::Ready,
    /// Told each task whose status changed, and each event of a task's run (with the
    /// task's id and its run's, once known): for `--events`.
    pub observer: Option<Arc<dyn Observer>>,
}

/// What a plan's progress is told.
pub trait Observer: Send + Sync {
    /// A task's status changed (seen after each step; a task that only passed through
    /// `ready` on its way to `running` is seen `running`).
    fn task(&self, task: &state::TaskState);
    /// An event of the run of task `task`.
    fn run_event(&self, task: &str, run: Option<&str>, event: &Event);
}

impl Options {
    /// The options of a plan run under `config`: `jobs` at once, the plan's
    /// `integration_test` (else `[score] test`), check worktrees under `worktree_root` made
    /// ready as `[worktree]` says; no observer.
    pub fn new(
        config: &crate::config::Config,
        workdir: &std::path::Path,
        worktree_root: PathBuf,
        integration_test: Option<String>,
        jobs: usize,
    ) -> Options {
        Options {
            jobs,
            integration_test: integration_test.or_else(|| config.score.test.clone()),
            test_timeout: config
                .score
                .test_timeout
                .unwrap_or(crate::config::DEFAULT_TEST_TIMEOUT),
            ready: crate::run::setup::Ready::from_config(config, workdir, &worktree_root, false),
            worktree_root,
            observer: None,
        }
    }

    /// The integration test of task `id`'s merge, in a fresh worktree, logged under the
    /// plan's state; `None` without a test.
    pub fn check(&self, repo: &Repo, plan: &str, id: &str) -> Option<Check> {
        self.integration_test.as_ref().map(|command| Check {
            command: command.clone(),
            timeout: self.test_timeout,
            worktree: self
                .worktree_root
                .join("plans")
                .join(plan)
                .join(format!("{id}-{}", crate::sys::unique())),
            log: state::dir(repo, plan)
                .join("logs")
                .join(format!("{id}.integration.log")),
            ready: self.ready.clone(),
        })
    }
}

/// Makes a task's run, starting at the given commit.
pub type MakeRun<'a> =
    dyn Fn(&Task, ObjectId) -> Result<pipeline::Plan, PlanError> + Send + Sync + 'a;
