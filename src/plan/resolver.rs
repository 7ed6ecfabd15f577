//! The plan's resolver agent: a winner that conflicts with the integration branch (or new
//! commits of the target branch that do) is merged with git's markers left in, committed as
//! it is, and given to a run of the resolver alone, told the conflicted files and both
//! sides' tasks; its result must leave no marker, and goes on as a merge of both sides.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::integrate::{self, Integration};
use super::options::{MakeRun, Options};
use super::resolve;
use super::state::{PlanState, TaskStatus};
use super::{PlanRunError, Task, TaskPlan};
use crate::git::{ObjectId, Repo};
use crate::run::RunError;
use crate::run::pipeline::{self, Event};

/// A winner that conflicts with the integration branch.
pub(super) struct Conflict {
    /// The integration branch's tip.
    pub ours: ObjectId,
    /// The winner.
    pub theirs: ObjectId,
    pub paths: Vec<String>,
}

/// The resolver agent's turn: the conflicted merge committed as it is (markers and all) is
/// the base of a run of the resolver alone, told both sides' tasks and the conflicted
/// files. Its candidate must leave no marker in them; the result is a merge commit of the
/// two sides with the candidate's tree. `Err`: why the conflict is still there.
#[allow(clippy::too_many_arguments)]
async fn resolve_by_agent(
    repo: &Arc<Repo>,
    plan: &TaskPlan,
    task: &Task,
    which: super::hand::Which<'_>,
    resolver: &str,
    conflict: &Conflict,
    opts: &Options,
    make: &MakeRun<'_>,
    st: &Mutex<PlanState>,
) -> Result<Result<ObjectId, String>, PlanRunError> {
    let dir = opts
        .worktree_root
        .join("plans")
        .join(&plan.name)
        .join(format!("{}-conflict-{}", task.id, crate::sys::unique()));
    let scaffold = {
        let (repo, dir) = (repo.clone(), dir.clone());
        let (ours, theirs) = (conflict.ours, conflict.theirs);
        let message = format!(
            "massgen plan {}: {} conflicted, to be resolved\n",
            plan.name, task.id
        );
        tokio::task::spawn_blocking(move || {
            resolve::check_out(&repo, ours, theirs, &dir)?;
            let committed = resolve::commit_as_is(&dir, &message);
            crate::git::worktree::remove(&repo, &dir)?;
            committed
        })
        .await
        .expect("checking out a conflict does not panic")?
    };
    let others = {
        let s = st.lock().expect("plan state lock");
        let deps = dependencies(plan, &task.id);
        plan.tasks
            .iter()
            .filter(|t| s.task(&t.id).status == TaskStatus::Done && !deps.contains(&t.id))
            .map(|t| format!("### Task {} ({})\n\n{}\n", t.id, t.title, t.task.trim()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let files: String = conflict.paths.iter().map(|p| format!("- {p}\n")).collect();
    let prompt = format!(
        "Two changes made in parallel conflict. The files below hold git's conflict markers (<<<<<<<, =======, >>>>>>>): resolve every conflict so that both changes work together, remove every marker, and keep the rest of both changes.\n\nConflicted files:\n{files}\n## The change being merged: task {} ({})\n\n{}\n\n## Already on the integration branch\n\n{others}",
        task.id,
        task.title,
        task.task.trim()
    );
    let resolution = Task {
        id: format!("{}-resolve", task.id),
        title: format!("resolve {}", task.id),
        task: prompt,
        depends_on: Vec::new(),
        agents: vec![resolver.to_owned()],
        test: opts.integration_test.clone(),
        rounds: Some(1),
        timeout: task.timeout,
        wave: task.wave,
    };
    let run_plan = make(&resolution, scaffold)?;
    let quiet: pipeline::Reporter = Arc::new(|_: Event| {});
    let rs = match pipeline::execute(repo.clone(), run_plan, quiet).await {
        Ok(rs) => rs,
        Err(RunError::Interrupted) => return Err(RunError::Interrupted.into()),
        Err(e) => return Ok(Err(format!("its run failed: {e}"))),
    };
    {
        let mut s = st.lock().expect("plan state lock");
        match which {
            super::hand::Which::Task(id) => s.task_mut(id).resolution_run = Some(rs.run.clone()),
            // The target branch's new commits are no task of the plan.
            super::hand::Which::Target => s.target_resolution_run = Some(rs.run.clone()),
        }
        s.save(repo)?;
    }
    let Some(commit) = rs
        .winner
        .as_ref()
        .and_then(|w| rs.candidate(w)?.commit.clone())
    else {
        let why = rs.reason.clone().unwrap_or_else(|| "no result".into());
        return Ok(Err(format!("run {} has no result: {why}", rs.run)));
    };
    let resolved = crate::run::state::commit_id(&commit)?;
    let left = resolve::markers_left(repo, resolved, &conflict.paths);
    if !left.is_empty() {
        return Ok(Err(format!(
            "conflict markers are left in {} (run {})",
            crate::run::merge::name_some(&left),
            rs.run
        )));
    }
    let message = format!(
        "massgen plan {}: {} ({}), conflicts resolved by {resolver}\n",
        plan.name, task.id, task.title
    );
    Ok(Ok(resolve::merge_commit(
        repo,
        resolved,
        conflict.ours,
        conflict.theirs,
        &message,
    )?))
}

/// A conflict of `task` (or of the target branch's new commits, `which`) resolved by
/// `resolver` ([`resolve_by_agent`]), and its merge integrated onto the integration branch
/// with `message`, checked as `which`'s integrations are; `Unresolved` with why when the
/// resolver left the conflict.
#[allow(clippy::too_many_arguments)]
pub(super) async fn resolve_and_integrate(
    repo: &Arc<Repo>,
    plan: &TaskPlan,
    task: &Task,
    which: super::hand::Which<'_>,
    resolver: &str,
    conflict: &Conflict,
    message: String,
    opts: &Options,
    make: &MakeRun<'_>,
    st: &Mutex<PlanState>,
) -> Result<Integration, PlanRunError> {
    match resolve_by_agent(repo, plan, task, which, resolver, conflict, opts, make, st).await? {
        Ok(merge) => {
            let check = opts.check(repo, &plan.name, which.check_id());
            integrate::integrate(repo.clone(), conflict.ours, merge, message, check).await
        }
        Err(why) => Ok(Integration::Unresolved(conflict.paths.clone(), why)),
    }
}

/// Every task `id` depends on, directly or not.
fn dependencies(plan: &TaskPlan, id: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = vec![id.to_owned()];
    while let Some(next) = todo.pop() {
        if let Some(t) = plan.tasks.iter().find(|t| t.id == next) {
            for d in &t.depends_on {
                if found.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
    }
    found
}
