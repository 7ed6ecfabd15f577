//! Integrating a task's winner: merged in memory onto the plan's integration branch
//! (fast-forward, else a merge commit), the integration test run on the result in a
//! detached worktree, and only then the branch moved, with its expected old value. At the
//! end, `plan run --merge` brings the integration branch into the user's branch with the
//! same proved-clean merge as `merge`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::PlanRunError;
use super::state::PlanState;
use crate::agent::process::{self, Job};
use crate::git::merge;
use crate::git::{GitError, ObjectId, Repo};
use crate::run::merge::Outcome;

/// What integrating one winner came to.
#[derive(Debug)]
pub enum Integration {
    /// The integration branch can move to this commit (tested, when a test is set).
    Ready(ObjectId),
    /// The winner conflicts with the integration branch in these paths.
    Conflicts(Vec<String>),
    /// The integration test failed on the merged commit.
    TestFailed(String),
    /// The winner conflicts in these paths and the resolver did not resolve them: why.
    Unresolved(Vec<String>, String),
}

/// The integration test: the command, its time limit, where its log goes.
#[derive(Debug, Clone)]
pub struct Check {
    pub command: String,
    pub timeout: Duration,
    /// A fresh directory for the detached worktree.
    pub worktree: PathBuf,
    pub log: PathBuf,
    /// What readies the worktree before the test (`[worktree]` include, share, setup,
    /// env), as for an agent's worktree.
    pub ready: crate::run::setup::Ready,
}

/// Merges `theirs` onto `ours` in memory and, when clean, writes the merge commit (a
/// fast-forward needs none) and runs `check` on it. Nothing moves: the caller moves the
/// branch.
pub async fn integrate(
    repo: std::sync::Arc<Repo>,
    ours: ObjectId,
    theirs: ObjectId,
    message: String,
    check: Option<Check>,
) -> Result<Integration, PlanRunError> {
    let merged = {
        let repo = repo.clone();
        tokio::task::spawn_blocking(move || -> Result<Result<ObjectId, Vec<String>>, GitError> {
            let plan = merge::plan(&repo, ours, theirs)?;
            if !plan.conflicts.is_empty() {
                return Ok(Err(plan.conflicts.into_iter().map(|c| c.path).collect()));
            }
            Ok(Ok(merge::landing(&repo, &plan, false, &message)?))
        })
        .await
        .expect("merging in memory does not panic")?
    };
    let new = match merged {
        Ok(new) => new,
        Err(paths) => return Ok(Integration::Conflicts(paths)),
    };
    let Some(check) = check else {
        return Ok(Integration::Ready(new));
    };
    match run_check(&repo, new, &check).await? {
        None => Ok(Integration::Ready(new)),
        Some(why) => Ok(Integration::TestFailed(why)),
    }
}

/// Runs the integration test at `commit` in a detached worktree, removed afterwards.
/// `None`: it passed; else why not.
async fn run_check(
    repo: &std::sync::Arc<Repo>,
    commit: ObjectId,
    check: &Check,
) -> Result<Option<String>, PlanRunError> {
    {
        let (repo, path) = (repo.clone(), check.worktree.clone());
        tokio::task::spawn_blocking(move || {
            crate::git::worktree::create_detached(&repo, commit, &path, &AtomicBool::new(false))
        })
        .await
        .expect("checking out does not panic")?;
    }
    // The log starts empty: what readying the worktree did, then the test's output.
    let result = match fresh_log(&check.log) {
        Err(e) => Err(e),
        Ok(()) => match check.ready.ready(repo, &check.worktree, &check.log).await {
            Ok(Ok(())) => run_test(check).await.map(|finished| {
                (!finished.success()).then(|| {
                    format!(
                        "the integration test `{}` failed on the merged result ({}); see {}",
                        check.command,
                        finished.describe(),
                        check.log.display()
                    )
                })
            }),
            Ok(Err(why)) => Ok(Some(format!(
                "the integration worktree could not be made ready ([worktree] include, share or setup): {why}; see {}",
                check.log.display()
            ))),
            Err(e) => Err(PlanRunError::Run(e)),
        },
    };
    {
        let (repo, path) = (repo.clone(), check.worktree.clone());
        tokio::task::spawn_blocking(move || crate::git::worktree::remove(&repo, &path))
            .await
            .expect("removing a worktree does not panic")?;
    }
    result
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PlanRunError {
    let path = path.to_owned();
    move |source| PlanRunError::Run(crate::run::RunError::Io { what, path, source })
}

/// Creates `log` empty, and its directory.
fn fresh_log(log: &Path) -> Result<(), PlanRunError> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(io_error("cannot create", parent))?;
    }
    std::fs::File::create(log).map_err(io_error("cannot create log", log))?;
    Ok(())
}

async fn run_test(check: &Check) -> Result<process::Finished, PlanRunError> {
    let out = std::fs::OpenOptions::new()
        .append(true)
        .open(&check.log)
        .map_err(io_error("cannot open log", &check.log))?;
    let err = out
        .try_clone()
        .map_err(io_error("cannot open log", &check.log))?;
    let argv = vec!["sh".to_owned(), "-c".to_owned(), check.command.clone()];
    let job = Job {
        argv: &argv,
        cwd: &check.worktree,
        env: check.ready.env.clone(),
        env_remove: crate::git::cmd::GIT_REPO_ENV,
        stdout: out,
        stderr: err,
        timeout: check.timeout,
        watch: None,
        sandbox: None,
        remote: None,
    };
    // Nothing cancels it but its time limit.
    let (_keep, cancel) = tokio::sync::watch::channel(false);
    process::supervise(job, cancel, |_| {})
        .await
        .map_err(io_error(
            "cannot run the integration test in",
            &check.worktree,
        ))
}

/// `plan run --merge`: merges the integration branch into the target branch, which must
/// be the current branch; planned and applied under the repository's merge lock, refused
/// while a git operation is paused, never over the user's changes.
pub fn merge_into_target(
    repo: &Repo,
    state: &PlanState,
    waiting: &dyn Fn(),
) -> Result<Outcome, PlanRunError> {
    let theirs = crate::run::state::commit_id(&state.integration_commit)?;
    if let Some((what, how)) = merge::operation_in_progress(repo) {
        return Err(crate::run::merge::MergeError::InProgress { what, how }.into());
    }
    let _lock = merge::lock(repo, std::time::Duration::from_secs(120), waiting)?;
    let (ours, branch) = repo.head()?;
    if branch.is_none() || branch != state.target_branch {
        return Err(PlanRunError::NotOnTarget {
            plan: state.plan.clone(),
            target: state
                .target_branch
                .clone()
                .unwrap_or_else(|| "a detached HEAD".into()),
        });
    }
    let plan = merge::plan(repo, ours, theirs)?;
    let mut outcome = Outcome {
        merged: false,
        commit: None,
        conflicts: plan.conflicts.clone(),
        blocked_by_dirty: Vec::new(),
        agent: format!("plan {}", state.plan),
        kind: plan.kind,
        dry_run: false,
        files: plan.changed_paths.clone(),
        deleted: plan.deleted_paths.clone(),
        note: None,
    };
    if !plan.conflicts.is_empty() {
        return Ok(outcome);
    }
    outcome.blocked_by_dirty = merge::dirty_overlap(&plan, &merge::dirty_paths(repo)?);
    if !outcome.blocked_by_dirty.is_empty() {
        return Ok(outcome);
    }
    let done: Vec<&str> = state.tasks.iter().map(|t| t.id.as_str()).collect();
    let mut message = format!(
        "Merge massgen plan {}\n\nTasks: {}\n",
        state.plan,
        done.join(", ")
    );
    if !plan.deleted_paths.is_empty() {
        message.push_str(&format!(
            "\nDeletes: {}\n",
            crate::run::merge::name_some(&plan.deleted_paths)
        ));
    }
    let new_head = merge::apply(repo, &plan, false, &message)?;
    outcome.merged = true;
    outcome.commit = Some(new_head.to_string());
    Ok(outcome)
}
