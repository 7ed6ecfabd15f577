//! Where a run's commands run (`[executor]`, `--executor`, `massgen.executor`): here, or as
//! Slurm batch jobs (`agent::process::slurm`). Agents, their setup and command judges follow
//! `[executor] kind`; test commands follow `[score] executor`. LLM judges' and the built-in
//! agent's model calls are made by processes here (the built-in agent's process is a job
//! like any agent), and reviewers (`git massgen review`, hooks) run here.
//!
//! With a shared file system (the default) a job runs in the agent's worktree, as a local
//! process would. Without one (`shared_fs = false`) an agent's job carries its work by git:
//! it gets a bundle of the candidate's branch, `git-massgen node-run` clones it into the
//! node's scratch directory, runs the agent there and bundles the result; back here that
//! result is read into the agent's worktree, and the usual snapshot makes the candidate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ExecutorKind, ExecutorSection, SlurmSection};
use crate::git::cmd::Git;

/// Where the units of a run run, as planned.
#[derive(Debug, Clone, Default)]
pub struct Executor {
    /// Agents and their setup.
    pub agents: ExecutorKind,
    /// Test commands (`[score] executor`).
    pub tests: ExecutorKind,
    pub slurm: Arc<SlurmSection>,
}

/// Which command of an agent a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Agent,
    Setup,
    Test,
    /// A command judge, which follows the agents.
    Judge,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Agent => "agent",
            Unit::Setup => "setup",
            Unit::Test => "test",
            Unit::Judge => "judge",
        }
    }
}

impl Executor {
    /// `[executor]` with the kind of a flag over it; `[score] executor` for tests.
    pub fn from_config(
        section: &ExecutorSection,
        tests: Option<ExecutorKind>,
        flag: Option<ExecutorKind>,
    ) -> Executor {
        Executor {
            agents: flag.or(section.kind).unwrap_or_default(),
            tests: tests.unwrap_or_default(),
            slurm: Arc::new(section.slurm.clone()),
        }
    }

    /// Agents' work travels by git bundles: Slurm without a shared file system.
    pub fn carries(&self) -> bool {
        self.agents == ExecutorKind::Slurm && self.slurm.shared_fs == Some(false)
    }

    /// Whether `unit` runs as a Slurm job. Setup and tests need the worktree, so they stay
    /// here without a shared file system.
    pub fn remote(&self, unit: Unit) -> bool {
        let shared = self.slurm.shared_fs != Some(false);
        match unit {
            Unit::Agent => self.agents == ExecutorKind::Slurm,
            Unit::Setup | Unit::Judge => self.agents == ExecutorKind::Slurm && shared,
            Unit::Test => self.tests == ExecutorKind::Slurm && shared,
        }
    }

    /// Whether any unit runs as a Slurm job.
    pub fn uses_slurm(&self) -> bool {
        self.agents == ExecutorKind::Slurm || self.tests == ExecutorKind::Slurm
    }

    /// `slurm` when any unit runs as a job, kept in the run's state for `clean`.
    pub fn name(&self) -> Option<String> {
        self.uses_slurm()
            .then(|| ExecutorKind::Slurm.as_str().to_owned())
    }

    /// Refuses a run whose cluster does not answer, before it makes anything.
    pub async fn check(&self) -> Result<(), super::RunError> {
        if !self.uses_slurm() {
            return Ok(());
        }
        crate::agent::process::slurm::check_controller()
            .await
            .map_err(|why| super::RunError::NoSlurm { why })
    }
}

/// Where a run's bundles go without a shared file system: `[executor.slurm] stage`/<run>,
/// else the run's `bundles/`.
pub fn stage_dir(slurm: &SlurmSection, run: &super::layout::RunDir) -> PathBuf {
    match &slurm.stage {
        Some(dir) => dir.join(&run.id),
        None => run.dir.join("bundles"),
    }
}

/// An agent's job without a shared file system: where its bundles are.
#[derive(Clone)]
pub(super) struct Carried {
    /// The candidate's branch, for the node to clone.
    pub inbound: PathBuf,
    /// What the node made of it.
    pub outbound: PathBuf,
}

impl Carried {
    /// The bundles of `agent` in the stage directory `stage`.
    pub(super) fn of(stage: &Path, agent: &str) -> Carried {
        Carried {
            inbound: stage.join(format!("{agent}.in.bundle")),
            outbound: stage.join(format!("{agent}.out.bundle")),
        }
    }
}

/// Prepares an agent's job to carry its work by git: a bundle of the worktree's branch in
/// the stage directory, and `argv` wrapped in `git-massgen node-run`. Returns the new argv
/// and the directory the job starts in (the node's scratch).
pub(super) fn carry(
    slurm: &SlurmSection,
    run: &super::layout::RunDir,
    agent: &str,
    wt: &Path,
    argv: &[String],
) -> Result<(Vec<String>, PathBuf, Carried), String> {
    let stage = stage_dir(slurm, run);
    std::fs::create_dir_all(&stage)
        .map_err(|e| format!("cannot create {}: {e}", stage.display()))?;
    let carried = Carried::of(&stage, agent);
    let _ = std::fs::remove_file(&carried.outbound);
    // The candidate's branch with its history: a node has nothing to start from.
    Git::new(wt)
        .args(["bundle", "create", "--quiet"])
        .arg(&carried.inbound)
        .arg("HEAD")
        .run()
        .map_err(|e| format!("cannot bundle the worktree's branch: {e}"))?;
    let program = crate::agent::process::slurm::node_program(slurm)
        .map_err(|e| format!("cannot find this program: {e}"))?;
    let scratch = slurm
        .scratch
        .clone()
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let mut wrapped = vec![
        program.display().to_string(),
        "node-run".to_owned(),
        "--bundle".to_owned(),
        carried.inbound.display().to_string(),
        "--out".to_owned(),
        carried.outbound.display().to_string(),
        "--scratch".to_owned(),
        scratch.display().to_string(),
        "--worktree".to_owned(),
        wt.display().to_string(),
        "--".to_owned(),
    ];
    wrapped.extend(argv.iter().cloned());
    Ok((wrapped, scratch, carried))
}

/// Reads what the node made into the agent's worktree: the bundle fetched (objects only,
/// `FETCH_HEAD` is the worktree's own) and its tree checked out over the branch's with a
/// two-tree `read-tree` (or, where setup left the worktree's files changed, a reset to it),
/// so the snapshot that follows records exactly that tree. When it fails, the bundle is
/// kept aside (`<agent>.unread.bundle`) and the error says where.
pub(super) fn bring_back(wt: &Path, carried: &Carried) -> Result<(), String> {
    if !carried.outbound.exists() {
        return Err(format!(
            "the job left no candidate bundle at {} (see the agent's stderr log)",
            carried.outbound.display()
        ));
    }
    let read = || -> Result<(), String> {
        Git::new(wt)
            .args(["fetch", "--quiet", "--no-tags"])
            .arg(&carried.outbound)
            .arg("HEAD")
            .run()
            .map_err(|e| format!("cannot fetch the candidate bundle: {e}"))?;
        let two_tree = Git::new(wt)
            .args(["read-tree", "-m", "-u", "HEAD", "FETCH_HEAD"])
            .run();
        if two_tree.is_err() {
            Git::new(wt)
                .args(["read-tree", "--reset", "-u", "FETCH_HEAD"])
                .run()
                .map_err(|e| format!("cannot check out the node's candidate: {e}"))?;
        }
        Ok(())
    };
    read().map_err(|why| {
        let aside = carried.outbound.with_extension("unread.bundle");
        match std::fs::rename(&carried.outbound, &aside) {
            Ok(()) => format!("{why}; the node's work is kept in {}", aside.display()),
            Err(_) => why,
        }
    })
}
