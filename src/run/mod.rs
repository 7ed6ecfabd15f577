//! The run: its id, where its files live, its persisted state, and the pipeline that takes it
//! from worktrees to a ranked result.

mod attempt;
pub mod clean;
pub mod confine;
pub mod conflicts;
pub mod context;
pub mod executor;
pub mod imports;
pub mod layout;
pub mod learning;
pub mod merge;
pub mod node;
pub mod overlay;
mod peers;
pub mod pipeline;
pub mod plan;
mod scoring;
mod session;
pub mod setup;
pub mod state;
pub mod trash;

use std::path::PathBuf;

use crate::git::GitError;

/// What cleaning and the lifecycle tell the user as they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    Info(String),
    Warn(String),
}

/// Errors of the run lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("no run `{run}`")]
    UnknownRun { run: String },
    #[error("run {run} has no agent `{agent}`")]
    UnknownAgent { run: String, agent: String },
    #[error("{0}")]
    Usage(String),
    #[error("interrupted")]
    Interrupted,
    #[error("run {run} is still running (process {pid})")]
    Busy { run: String, pid: u32 },
    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the sandbox is required ([sandbox] mode = \"required\"), but {why}")]
    NoSandbox { why: String },
    #[error("copy-on-write worktrees (--worktree-mode overlay) do not work here: {why}")]
    NoOverlay { why: String },
    #[error("Slurm cannot take jobs ([executor] kind = \"slurm\"): {why}")]
    NoSlurm { why: String },
    #[error(
        "not enough free space for the worktrees: they need about {need} MiB under {} ({copies} × {each} MiB, the checkout and the ignored files brought in), and its file system has {free} MiB free",
        root.display()
    )]
    NoSpace {
        need: u64,
        each: u64,
        copies: usize,
        free: u64,
        root: PathBuf,
    },
    #[error("bad commit id `{id}` in run state: {why}")]
    BadId { id: String, why: String },
    #[error("cannot read run state {path}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl RunError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> RunError {
        let path = path.into();
        move |source| RunError::Io { what, path, source }
    }
}

pub use crate::sys::{new_run_id, now_secs, rfc3339_now};
