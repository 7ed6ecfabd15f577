//! A running plan's persisted state, `.massgen/runs/.plans/<name>/state.json`: every task's
//! status, run, winner and integration, and the plan's target and integration branch.
//! Written atomically after every transition, so that a killed `plan run` leaves a state
//! that `plan status` explains and the next `plan run` resumes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Task, TaskPlan};
use crate::git::Repo;
use crate::run::RunError;
use crate::run::layout;

/// What became of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for tasks it depends on.
    Pending,
    /// Everything it depends on is done; waiting for a job slot.
    Ready,
    /// Its run is going on, or finished and waiting to be integrated.
    Running,
    /// Its winner is on the integration branch.
    Done,
    /// No winner, the run failed, or the integration test failed.
    Failed,
    /// Its winner conflicts with the integration branch.
    Blocked,
    /// A task it depends on failed, was blocked or skipped.
    Skipped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Ready => "ready",
            TaskStatus::Running => "running",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Skipped => "skipped",
        }
    }

    /// Whether nothing more happens to the task in this plan run.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Done | TaskStatus::Failed | TaskStatus::Blocked | TaskStatus::Skipped
        )
    }
}

/// One task's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskState {
    pub id: String,
    pub title: String,
    pub wave: usize,
    pub depends_on: Vec<String>,
    pub status: TaskStatus,
    /// The run of its current (or last) attempt.
    pub run: Option<String>,
    pub winner: Option<String>,
    /// The winner's candidate commit.
    pub commit: Option<String>,
    /// The integration branch's commit once the winner is on it; recorded before the
    /// branch moves, so that a process killed in between is recognized.
    pub integrated: Option<String>,
    /// Why it failed, was blocked or skipped.
    pub reason: Option<String>,
    /// With `blocked`: the conflicted paths.
    #[serde(default)]
    pub conflicts: Vec<String>,
    /// The run of the resolver agent, when one resolved (or tried to resolve) a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_run: Option<String>,
    /// With `blocked`: the worktree where `plan resolve` checked the conflicted merge out
    /// for the user; `plan continue` takes the commit made there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolving: Option<PathBuf>,
}

/// A plan's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanState {
    pub plan: String,
    /// The plan file it was started from.
    pub path: PathBuf,
    /// The branch that was current when the plan started (full ref), if any.
    pub target_branch: Option<String>,
    /// Its commit then: where the integration branch started.
    pub target_commit: String,
    /// `refs/heads/massgen/plan/<name>/integration`.
    pub integration_branch: String,
    /// The integration branch's tip as this state knows it.
    pub integration_commit: String,
    /// The process running the plan (dead: the plan was interrupted).
    pub pid: u32,
    pub created_at: u64,
    pub updated_at: u64,
    /// The commit the target branch was moved to by `--merge`.
    #[serde(default)]
    pub merged: Option<String>,
    /// A commit of the target branch whose new commits could not be merged onto the
    /// integration branch (conflicts, or the integration test failed): not tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_left_out: Option<String>,
    /// With `target_left_out`: the conflicted paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_conflicts: Vec<String>,
    /// The run of the resolver on the target branch's new commits, when one tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resolution_run: Option<String>,
    /// Where `plan resolve --target` checked out their conflicting merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resolving: Option<PathBuf>,
    /// In plan order.
    pub tasks: Vec<TaskState>,
}

impl PlanState {
    /// The state of a plan about to start at `target_commit`.
    pub fn new(
        plan: &TaskPlan,
        path: &Path,
        target_branch: Option<String>,
        target_commit: String,
    ) -> PlanState {
        let now = crate::sys::now_secs();
        PlanState {
            plan: plan.name.clone(),
            path: path.to_owned(),
            target_branch,
            integration_branch: integration_ref(&plan.name),
            integration_commit: target_commit.clone(),
            target_commit,
            pid: std::process::id(),
            created_at: now,
            updated_at: now,
            merged: None,
            target_left_out: None,
            target_conflicts: Vec::new(),
            target_resolution_run: None,
            target_resolving: None,
            tasks: plan.tasks.iter().map(new_task).collect(),
        }
    }

    /// Brings the tasks in line with the plan file as it is now: tasks added to it start
    /// pending, tasks removed from it are dropped, and the order is the file's.
    pub fn follow(&mut self, plan: &TaskPlan) {
        let mut old = std::mem::take(&mut self.tasks);
        for task in &plan.tasks {
            let state = match old.iter().position(|t| t.id == task.id) {
                Some(i) => {
                    let mut t = old.swap_remove(i);
                    t.title = task.title.clone();
                    t.wave = task.wave;
                    t.depends_on = task.depends_on.clone();
                    t
                }
                None => new_task(task),
            };
            self.tasks.push(state);
        }
    }

    pub fn task(&self, id: &str) -> &TaskState {
        self.tasks
            .iter()
            .find(|t| t.id == id)
            .expect("tasks of the plan are in its state")
    }

    pub fn task_mut(&mut self, id: &str) -> &mut TaskState {
        self.tasks
            .iter_mut()
            .find(|t| t.id == id)
            .expect("tasks of the plan are in its state")
    }

    /// Whether every task is done.
    pub fn all_done(&self) -> bool {
        self.tasks.iter().all(|t| t.status == TaskStatus::Done)
    }

    /// Whether the process that owns the plan is alive (and not this one).
    pub fn owned_elsewhere(&self) -> bool {
        self.pid != std::process::id() && crate::sys::process_alive(self.pid)
    }

    /// Writes the state atomically.
    pub fn save(&mut self, repo: &Repo) -> Result<(), RunError> {
        self.updated_at = crate::sys::now_secs();
        let dir = dir(repo, &self.plan);
        std::fs::create_dir_all(&dir).map_err(RunError::io("cannot create", &dir))?;
        let text = serde_json::to_vec_pretty(self).expect("plan state serializes");
        crate::run::state::write_atomic(&dir.join("state.json"), &text)
    }
}

fn new_task(task: &Task) -> TaskState {
    TaskState {
        id: task.id.clone(),
        title: task.title.clone(),
        wave: task.wave,
        depends_on: task.depends_on.clone(),
        status: TaskStatus::Pending,
        run: None,
        winner: None,
        commit: None,
        integrated: None,
        reason: None,
        conflicts: Vec::new(),
        resolution_run: None,
        resolving: None,
    }
}

/// The integration branch of plan `name`.
pub fn integration_ref(name: &str) -> String {
    format!("{}{name}/integration", layout::PLAN_BRANCHES)
}

/// The directory of plan `name`'s state and logs.
pub fn dir(repo: &Repo, name: &str) -> PathBuf {
    layout::plans_state_dir(repo).join(name)
}

/// Plan `name`'s state, if it was ever run.
pub fn load(repo: &Repo, name: &str) -> Result<Option<PlanState>, RunError> {
    let path = dir(repo, name).join("state.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RunError::io("cannot read plan state", &path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| RunError::State { path, source })
}

/// Every plan with a state, by name.
pub fn list(repo: &Repo) -> Result<Vec<PlanState>, RunError> {
    let root = layout::plans_state_dir(repo);
    let mut names: Vec<String> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.path().join("state.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(RunError::io("cannot list plans", &root)(e)),
    };
    names.sort();
    let mut out = Vec::new();
    for name in names {
        out.extend(load(repo, &name)?);
    }
    Ok(out)
}
