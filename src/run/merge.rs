//! Merging a candidate into the user's branch: refused after a breach or while a git
//! operation is paused, planned in memory and proved clean, applied under the repository's
//! merge lock, and recorded in the run's state.

use serde::Serialize;

use super::RunError;
use super::layout::RunDir;
use super::state::{Phase, RunState};
use crate::git::merge::{self, Conflict, MergeKind};
use crate::git::{GitError, Repo};

/// Why a merge was not made (beside conflicts and dirty files, which are an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{agent} left no candidate commit")]
    NoCommit { agent: String, run: String },
    #[error("run {run} is not merged: {} in your repository while its agents ran", made(.breaches.len()))]
    Breach { run: String, breaches: Vec<String> },
    #[error("{what} is in progress in your work tree; nothing was merged")]
    InProgress {
        what: &'static str,
        how: &'static str,
    },
    /// `run --merge` on an unborn HEAD, found before any agent starts.
    #[error("--merge needs a current branch with a commit; HEAD has no commit yet")]
    TargetUnborn,
    /// `run --merge` while a git operation is paused, found before any agent starts.
    #[error(
        "--merge cannot merge while {what} is in progress in your work tree; no agent was started"
    )]
    TargetBusy {
        what: &'static str,
        how: &'static str,
    },
}

/// What `run --merge` needs, checked before any agent starts: a branch with a commit to
/// merge into and no git operation paused in the work tree.
pub fn check_target(repo: &Repo) -> Result<(), MergeError> {
    match repo.head() {
        Err(GitError::UnbornHead) => return Err(MergeError::TargetUnborn),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    match merge::operation_in_progress(repo) {
        Some((what, how)) => Err(MergeError::TargetBusy { what, how }),
        None => Ok(()),
    }
}

fn made(n: usize) -> String {
    match n {
        1 => "1 change was made".to_owned(),
        n => format!("{n} changes were made"),
    }
}

/// How a candidate is merged.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeOptions {
    pub squash: bool,
    pub dry_run: bool,
    pub allow_breach: bool,
}

/// The outcome of a merge, as `merge --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub merged: bool,
    /// The new HEAD commit (or, with --dry-run, the candidate commit).
    pub commit: Option<String>,
    pub conflicts: Vec<Conflict>,
    pub blocked_by_dirty: Vec<String>,
    pub agent: String,
    pub kind: MergeKind,
    pub dry_run: bool,
    pub files: Vec<String>,
    /// The files the merge deletes.
    pub deleted: Vec<String>,
    /// The branch merged into, when it is not the branch the run started from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Merges `agent`'s candidate of a run into HEAD, recording the result in the run state.
/// Refused while the run recorded a breach (unless allowed) or a git operation is paused in
/// the work tree; planned and applied under the repository's merge lock (`waiting` is
/// called when another merge holds it).
pub fn merge_candidate(
    repo: &Repo,
    dir: &RunDir,
    state: &mut RunState,
    agent: &str,
    options: MergeOptions,
    waiting: &dyn Fn(),
) -> Result<Outcome, MergeError> {
    if state.effective_phase().is_active() {
        return Err(RunError::Busy {
            run: state.run.clone(),
            pid: state.pid,
        }
        .into());
    }
    if !state.breaches.is_empty() && !options.allow_breach {
        return Err(MergeError::Breach {
            run: state.run.clone(),
            breaches: state.breaches.clone(),
        });
    }
    let cand = state.require_candidate(agent)?;
    let Some(commit) = cand.commit.as_deref() else {
        return Err(MergeError::NoCommit {
            agent: agent.to_owned(),
            run: state.run.clone(),
        });
    };
    let theirs = super::state::commit_id(commit)?;
    if let Some((what, how)) = merge::operation_in_progress(repo) {
        return Err(MergeError::InProgress { what, how });
    }
    let _lock = if options.dry_run {
        None
    } else {
        Some(merge::lock(repo, MERGE_LOCK_WAIT, waiting)?)
    };
    let (ours, branch) = repo.head()?;
    let plan = merge::plan(repo, ours, theirs)?;
    let note = match (&state.base_branch, &branch) {
        (Some(base), Some(now)) if base != now => Some(format!(
            "merging into {}, not {}, the branch run {} started from",
            short_branch(now),
            short_branch(base),
            state.run
        )),
        (Some(base), None) => Some(format!(
            "HEAD is detached; run {} started from {}",
            state.run,
            short_branch(base)
        )),
        _ => None,
    };
    let mut outcome = Outcome {
        merged: false,
        commit: None,
        conflicts: plan.conflicts.clone(),
        blocked_by_dirty: Vec::new(),
        agent: agent.to_owned(),
        kind: plan.kind,
        dry_run: options.dry_run,
        files: plan.changed_paths.clone(),
        deleted: plan.deleted_paths.clone(),
        note,
    };
    if !plan.conflicts.is_empty() {
        return Ok(outcome);
    }
    let dirty = merge::dirty_paths(repo)?;
    outcome.blocked_by_dirty = merge::dirty_overlap(&plan, &dirty);
    if !outcome.blocked_by_dirty.is_empty() {
        return Ok(outcome);
    }
    if options.dry_run {
        outcome.commit = Some(theirs.to_string());
        return Ok(outcome);
    }
    let first_line: String = state
        .task
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(72)
        .collect();
    let mut message = if options.squash {
        format!(
            "{first_line}\n\nSquashed massgen candidate {agent} of run {}.\n",
            state.run
        )
    } else {
        format!(
            "Merge massgen candidate {agent} of run {}\n\nTask: {first_line}\n",
            state.run
        )
    };
    if !plan.deleted_paths.is_empty() {
        message.push_str(&format!("\nDeletes: {}\n", name_some(&plan.deleted_paths)));
    }
    let new_head = merge::apply(repo, &plan, options.squash, &message)?;
    outcome.merged = true;
    outcome.commit = Some(new_head.to_string());
    state.merged = true;
    state.state = Phase::Merged;
    state.save(dir)?;
    // Watched in history from now on; learning never fails a merge.
    if let Err(e) = super::learning::record_merge(repo, state, agent, new_head) {
        state
            .warnings
            .push(format!("cannot record the merge for learning: {e}"));
        state.save(dir)?;
    }
    Ok(outcome)
}

/// How long a merge waits for another one to finish.
const MERGE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

fn short_branch(name: &str) -> &str {
    name.strip_prefix("refs/heads/").unwrap_or(name)
}

/// The first ten names, then how many more.
pub fn name_some(paths: &[String]) -> String {
    let mut out = paths
        .iter()
        .take(10)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > 10 {
        out.push_str(&format!(" and {} more", paths.len() - 10));
    }
    out
}
