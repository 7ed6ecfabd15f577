//! Taking a conflict resolved by hand (`plan resolve`, then `plan continue`): the commit
//! made in the resolution worktree must merge exactly the integration branch's tip and what
//! was being merged, leave no conflict marker, and pass the integration test; then it goes
//! onto the integration branch (compare-and-swap), the state says so, and the worktree is
//! removed.

use std::sync::Arc;

use super::PlanRunError;
use super::integrate::{self, Integration};
use super::options::Options;
use super::resolve;
use super::state::{PlanState, TaskStatus};
use crate::git::Repo;
use crate::run::state::commit_id;

/// What is being resolved by hand: a task, or the target branch's new commits.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    Task(&'a str),
    Target,
}

impl Which<'_> {
    /// The name of its integration checks' logs and worktrees: a task's id, or one no task
    /// id can be (ids start with a letter or a digit).
    pub fn check_id(&self) -> &str {
        match self {
            Which::Task(id) => id,
            Which::Target => "@target",
        }
    }
}

/// Why a resolution cannot be taken yet.
#[derive(Debug, thiserror::Error)]
pub enum Taking {
    /// The user has more to do in the resolution worktree: what, and where.
    #[error("{label} of plan {plan}: {why}")]
    NotYet {
        label: String,
        plan: String,
        why: String,
        dir: std::path::PathBuf,
    },
    #[error(transparent)]
    Failed(#[from] PlanRunError),
}

impl From<crate::git::GitError> for Taking {
    fn from(e: crate::git::GitError) -> Taking {
        Taking::Failed(e.into())
    }
}

impl From<crate::run::RunError> for Taking {
    fn from(e: crate::run::RunError) -> Taking {
        Taking::Failed(e.into())
    }
}

/// Puts the commit made in a resolution worktree on the integration branch; returns what
/// was integrated, in words.
pub async fn take(
    repo: &Arc<Repo>,
    st: &mut PlanState,
    which: Which<'_>,
    opts: &Options,
) -> Result<String, Taking> {
    let name = st.plan.clone();
    let (label, again, dir, theirs, conflicts) = match which {
        Which::Task(id) => {
            let t = st.task(id);
            (
                format!("task {id}"),
                id.to_owned(),
                t.resolving.clone(),
                t.commit.clone(),
                t.conflicts.clone(),
            )
        }
        Which::Target => (
            "the target branch's new commits".to_owned(),
            "--target".to_owned(),
            st.target_resolving.clone(),
            st.target_left_out.clone(),
            st.target_conflicts.clone(),
        ),
    };
    let dir = dir.expect("only what is being resolved");
    let ours = commit_id(&st.integration_commit)?;
    let theirs = commit_id(theirs.as_deref().unwrap_or_default())?;
    let not_yet = |why: String| Taking::NotYet {
        label: label.clone(),
        plan: name.clone(),
        why,
        dir: dir.clone(),
    };
    if !dir.exists() {
        match which {
            Which::Task(id) => st.task_mut(id).resolving = None,
            Which::Target => st.target_resolving = None,
        }
        st.save(repo)?;
        return Err(not_yet(format!(
            "{} is gone; check the merge out again with `git massgen plan resolve {name} {again}`",
            dir.display()
        )));
    }
    let head = resolve::head(&dir)?;
    if resolve::parents(repo, head)? != [ours, theirs] {
        return Err(not_yet(
            "the resolution is not committed yet (its commit must merge the integration branch's tip and what is being merged)".into(),
        ));
    }
    let left = resolve::markers_left(repo, head, &conflicts);
    if !left.is_empty() {
        return Err(not_yet(format!(
            "conflict markers are left in {}",
            crate::run::merge::name_some(&left)
        )));
    }
    let check = opts.check(repo, &name, which.check_id());
    let message = format!("massgen plan {name}: {label}, resolved by hand\n");
    let new = match integrate::integrate(repo.clone(), ours, head, message, check).await? {
        Integration::Ready(new) => new,
        Integration::TestFailed(why) => return Err(not_yet(why)),
        Integration::Conflicts(paths) | Integration::Unresolved(paths, _) => {
            return Err(not_yet(format!(
                "it conflicts with the integration branch in {}",
                crate::run::merge::name_some(&paths)
            )));
        }
    };
    if let Which::Task(id) = which {
        st.task_mut(id).integrated = Some(new.to_string());
        st.save(repo)?;
    }
    repo.set_ref(
        &st.integration_branch,
        new,
        Some(ours),
        &format!("massgen: plan {name}: {label} resolved by hand"),
    )?;
    st.integration_commit = new.to_string();
    match which {
        Which::Task(id) => {
            let t = st.task_mut(id);
            t.status = TaskStatus::Done;
            t.reason = None;
            t.resolving = None;
        }
        Which::Target => {
            st.target_commit = theirs.to_string();
            st.target_left_out = None;
            st.target_conflicts.clear();
            st.target_resolving = None;
        }
    }
    st.save(repo)?;
    crate::git::worktree::remove(repo, &dir)?;
    Ok(label)
}
