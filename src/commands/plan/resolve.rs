//! Resolving a blocked task by hand. `git massgen plan resolve PLAN TASK` checks the
//! conflicting merge out in a worktree of its own (git's markers in the conflicted files)
//! and says where; the user resolves and commits there; `git massgen plan continue PLAN`
//! checks that commit (a merge of the integration tip and the task's winner, no marker
//! left, the integration test passing), puts it on the integration branch, removes the
//! worktree, and runs the rest of the plan as `plan run` does.
//!
//! Exit codes of `resolve`: 0 checked out (or already); 2 no such plan or task, or the task
//! is not blocked by a conflict. `continue`: those of `plan run`, and 1 when a resolution
//! is not committed, still has markers or fails the integration test.

use std::path::PathBuf;

use clap::Args;

use super::run::RunArgs;
use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::plan::hand::{self, Taking, Which};
use crate::plan::resolve;
use crate::plan::state::{PlanState, TaskStatus};
use crate::run::state::commit_id;

/// `plan resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The plan: its name, or the path of its file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The blocked task.
    #[arg(
        value_name = "TASK",
        required_unless_present = "target",
        conflicts_with = "target"
    )]
    pub task: Option<String>,
    /// The new commits of the branch the plan targets, which conflict with the integration
    /// branch, instead of a task.
    #[arg(long)]
    pub target: bool,
}

pub fn resolve(ctx: &Ctx, args: &ResolveArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    let mut st = super::load_state(ctx, &repo, &args.plan)?;
    let name = st.plan.clone();
    let root = crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref());
    let Some(task) = &args.task else {
        return resolve_target(ctx, &repo, &mut st, &root);
    };
    let Some(t) = st.tasks.iter().find(|t| t.id == *task) else {
        let ids: Vec<&str> = st.tasks.iter().map(|t| t.id.as_str()).collect();
        return Err(CliError::usage(format!("plan {name} has no task {}", task))
            .hint(format!("its tasks: {}", ids.join(", "))));
    };
    if let Some(dir) = t.resolving.clone().filter(|d| d.exists()) {
        ctx.ui.out(&instructions(
            &name,
            &format!("task {task}"),
            &dir,
            &t.conflicts,
        ));
        return Ok(Exit::Success);
    }
    let theirs = match (&t.status, &t.commit, t.conflicts.is_empty()) {
        (TaskStatus::Blocked, Some(commit), false) => commit_id(commit)?,
        _ => {
            return Err(CliError::usage(format!(
                "task {} of plan {name} is {}, not blocked by a conflict",
                task,
                t.status.as_str()
            ))
            .hint(format!("see the plan: git massgen plan status {name}")));
        }
    };
    let ours = commit_id(&st.integration_commit)?;
    let dir = root
        .join("plans")
        .join(&name)
        .join(format!("resolve-{task}"));
    let paths = resolve::check_out(&repo, ours, theirs, &dir)?;
    let t = st.task_mut(task);
    t.resolving = Some(dir.clone());
    t.conflicts = if paths.is_empty() {
        t.conflicts.clone()
    } else {
        paths
    };
    t.reason = Some(format!(
        "being resolved by hand in {}; commit there, then: git massgen plan continue {name}",
        dir.display()
    ));
    let conflicts = t.conflicts.clone();
    st.save(&repo)?;
    ctx.ui.out(&instructions(
        &name,
        &format!("task {task}"),
        &dir,
        &conflicts,
    ));
    Ok(Exit::Success)
}

/// `plan resolve PLAN --target`: the target branch's new commits that conflict, checked
/// out merged onto the integration branch.
fn resolve_target(
    ctx: &Ctx,
    repo: &crate::git::Repo,
    st: &mut PlanState,
    root: &std::path::Path,
) -> Result<Exit, CliError> {
    let name = st.plan.clone();
    let what = "the new commits of the target branch";
    if let Some(dir) = st.target_resolving.clone().filter(|d| d.exists()) {
        ctx.ui
            .out(&instructions(&name, what, &dir, &st.target_conflicts));
        return Ok(Exit::Success);
    }
    let Some(theirs) = st.target_left_out.clone() else {
        return Err(CliError::usage(format!(
            "the target branch of plan {name} has no new commits that conflict"
        ))
        .hint(format!("see the plan: git massgen plan status {name}")));
    };
    let dir = root.join("plans").join(&name).join("resolve-target");
    let paths = resolve::check_out(
        repo,
        commit_id(&st.integration_commit)?,
        commit_id(&theirs)?,
        &dir,
    )?;
    if !paths.is_empty() {
        st.target_conflicts = paths;
    }
    st.target_resolving = Some(dir.clone());
    st.save(repo)?;
    ctx.ui
        .out(&instructions(&name, what, &dir, &st.target_conflicts));
    Ok(Exit::Success)
}

fn instructions(plan: &str, task: &str, dir: &std::path::Path, files: &[String]) -> String {
    let quoted = shell_words::quote(&dir.display().to_string()).into_owned();
    let mut out = format!(
        "the merge of {task} is checked out in {}\nconflicted files:\n",
        dir.display()
    );
    for f in files {
        out.push_str(&format!("  {f}\n"));
    }
    out.push_str(&format!(
        "resolve them there, then:\n  git -C {quoted} add -A && git -C {quoted} commit --no-edit\n  git massgen plan continue {plan}\n"
    ));
    out
}

/// `plan continue`: the hand resolutions integrated, then the plan run on.
pub fn continue_plan(ctx: &Ctx, args: &RunArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    let mut st = super::load_state(ctx, &repo, &args.file)?;
    let name = st.plan.clone();
    let pending: Vec<String> = st
        .tasks
        .iter()
        .filter(|t| t.resolving.is_some())
        .map(|t| t.id.clone())
        .collect();
    if pending.is_empty() && st.target_resolving.is_none() {
        ctx.ui.info(&format!(
            "massgen: plan {name}: no conflict is being resolved by hand"
        ));
    }
    let root = crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref());
    let opts =
        crate::plan::run::Options::new(&config, &repo.workdir, root, plan_test(ctx, &repo, &st), 1);
    let repo = std::sync::Arc::new(repo);
    if st.target_resolving.is_some() {
        take_resolution(ctx, &repo, &mut st, Which::Target, &opts)?;
    }
    for id in pending {
        take_resolution(ctx, &repo, &mut st, Which::Task(&id), &opts)?;
    }
    drop(repo);
    // The plan as it was run: a bare name finds its file through the state.
    let args = RunArgs {
        file: st.path.clone(),
        jobs: args.jobs,
        merge: args.merge,
        executor: args.executor,
        json: args.json,
        events: args.events.clone(),
    };
    super::run::run(ctx, &args)
}

/// The `integration_test` of the plan's file, when the file can still be read.
fn plan_test(ctx: &Ctx, repo: &crate::git::Repo, st: &PlanState) -> Option<String> {
    let (path, shown) = super::locate(ctx, Some(repo), &st.path);
    crate::plan::load(&path, &shown, None)
        .ok()
        .and_then(|p| p.integration_test)
}

/// Puts the commit made in a resolution worktree on the integration branch.
fn take_resolution(
    ctx: &Ctx,
    repo: &std::sync::Arc<crate::git::Repo>,
    st: &mut PlanState,
    which: Which<'_>,
    opts: &crate::plan::run::Options,
) -> Result<(), CliError> {
    let rt = super::super::runtime()?;
    match rt.block_on(hand::take(repo, st, which, opts)) {
        Ok(label) => {
            ctx.ui.info(&format!(
                "massgen: plan {}: {label} integrated (resolved by hand)",
                st.plan
            ));
            Ok(())
        }
        Err(e @ Taking::NotYet { .. }) => {
            let Taking::NotYet {
                ref dir, ref plan, ..
            } = e
            else {
                unreachable!("matched above")
            };
            let hint = format!(
                "finish the merge in {}: resolve, `git add` the files and `git commit`; then run `git massgen plan continue {plan}` again",
                dir.display()
            );
            Err(CliError::new(Exit::Negative, e).hint(hint))
        }
        Err(Taking::Failed(e)) => Err(CliError::new(Exit::Failure, e)),
    }
}
