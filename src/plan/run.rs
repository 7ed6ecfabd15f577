//! Running a task plan: each task a full run (`run::pipeline::execute`) from the tip of the
//! plan's integration branch, started as soon as every task it depends on is integrated,
//! at most `jobs` at once; each winner merged onto the integration branch
//! ([`super::integrate`]) in plan order; dependents of a task that failed or was blocked
//! skipped, independent tasks going on.
//!
//! The state ([`super::state`]) is saved after every transition, a task's run id as soon as
//! its run exists, so a killed `plan run` is resumed by the next: done tasks are kept, a
//! task whose run finished is taken from that run, any other run is cleaned and its task
//! run again. Nothing here prints: what happens is told through a callback.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use super::hand::Which as Hand;
use super::integrate::{self, Integration};
use super::resolver::{Conflict, resolve_and_integrate};
use super::state::{self, PlanState, TaskStatus};
use super::{Task, TaskPlan};
use crate::git::{ObjectId, Repo};
use crate::run::RunError;
use crate::run::clean::{Said, Which};
use crate::run::layout::RunDir;
use crate::run::pipeline::{self, Event};
use crate::run::state::{Phase, RunState};

pub use super::PlanRunError;
pub use super::options::{MakeRun, Observer, Options};

/// Where what happens is told.
pub type Say = Arc<dyn Fn(Said) + Send + Sync>;

/// How a plan run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every task is done.
    Done,
    /// Some task failed, was blocked or skipped.
    Incomplete,
    /// Ctrl-C: the runs going on were interrupted; the next `plan run` resumes.
    Interrupted,
}

/// The plan's state, new or resumed, with its integration branch checked (or created).
/// Returns the tasks whose runs finished before the last `plan run` was killed, to be
/// integrated first.
pub fn prepare(
    repo: &Repo,
    plan: &TaskPlan,
    path: &Path,
    root: &Path,
    say: &mut dyn FnMut(Said),
) -> Result<(PlanState, Vec<(String, RunState)>), PlanRunError> {
    let branch = state::integration_ref(&plan.name);
    let tip = repo.ref_target(&branch)?;
    let Some(mut st) = state::load(repo, &plan.name)? else {
        if tip.is_some() {
            return Err(PlanRunError::Stray {
                plan: plan.name.clone(),
                branch,
            });
        }
        let (head, current) = repo.head()?;
        let mut st = PlanState::new(plan, path, current, head.to_string());
        st.save(repo)?;
        repo.set_ref(&branch, head, None, "massgen: plan started")?;
        return Ok((st, Vec::new()));
    };
    if st.owned_elsewhere() {
        return Err(PlanRunError::Busy {
            plan: st.plan,
            pid: st.pid,
        });
    }
    st.pid = std::process::id();
    st.follow(plan);
    // A winner recorded as integrated whose branch move was cut short.
    for t in st.tasks.iter_mut().filter(|t| t.status != TaskStatus::Done) {
        match &t.integrated {
            Some(c)
                if tip
                    .is_some_and(|tip| crate::run::state::commit_id(c).is_ok_and(|c| c == tip)) =>
            {
                t.status = TaskStatus::Done;
                st.integration_commit = c.clone();
            }
            _ => t.integrated = None,
        }
    }
    let expected = crate::run::state::commit_id(&st.integration_commit)?;
    match tip {
        Some(tip) if tip == expected => {}
        None if st.integration_commit == st.target_commit => {
            repo.set_ref(&branch, expected, None, "massgen: plan started")?;
        }
        found => {
            return Err(PlanRunError::Moved {
                plan: st.plan,
                branch,
                expected: st.integration_commit,
                found: found.map_or_else(|| "nowhere (deleted)".into(), |c| c.to_string()),
            });
        }
    }
    let mut finished = Vec::new();
    for t in st.tasks.iter_mut().filter(|t| t.status != TaskStatus::Done) {
        // A conflict the user is resolving stays blocked until `plan continue`.
        if let Some(dir) = &t.resolving {
            t.status = TaskStatus::Blocked;
            t.reason = Some(format!(
                "being resolved by hand in {}; commit there, then: git massgen plan continue {}",
                dir.display(),
                st.plan
            ));
            continue;
        }
        // Failed, blocked and skipped tasks are tried again, from the integration tip; a
        // running one is taken from its run if that run finished.
        let was_running = t.status == TaskStatus::Running;
        let run = t.run.take();
        t.status = TaskStatus::Pending;
        t.reason = None;
        t.conflicts.clear();
        t.winner = None;
        t.commit = None;
        let Some(run) = run else { continue };
        let Ok(rs) = RunState::load(&RunDir::new(repo, &run)) else {
            continue;
        };
        match rs.effective_phase() {
            Phase::Scored | Phase::Merged if was_running => {
                t.status = TaskStatus::Running;
                t.run = Some(run);
                finished.push((t.id.clone(), rs));
            }
            Phase::Interrupted | Phase::Created | Phase::Running | Phase::Scoring => {
                say(Said::Info(format!(
                    "massgen: plan {}: cleaning run {run} of task {}, cut short; the task runs again",
                    st.plan, t.id
                )));
                if let Err(e) = crate::run::clean::clean(repo, root, Which::Run(&run), false, say) {
                    say(Said::Warn(format!("cannot clean run {run}: {e}")));
                }
            }
            _ => {}
        }
    }
    st.save(repo)?;
    Ok((st, finished))
}

/// Runs the plan's tasks until none can start.
pub async fn drive(
    repo: Arc<Repo>,
    plan: &TaskPlan,
    state: PlanState,
    resumed: Vec<(String, RunState)>,
    opts: &Options,
    make: &MakeRun<'_>,
    say: Say,
) -> Result<(PlanState, End), PlanRunError> {
    let st = Arc::new(Mutex::new(state));
    let save = |st: &mut PlanState| st.save(&repo);
    let order = |id: &str| plan.tasks.iter().position(|t| t.id == id).unwrap_or(0);
    let mut set: JoinSet<(String, Result<RunState, RunError>)> = JoinSet::new();
    let mut in_flight: BTreeSet<usize> = BTreeSet::new();
    let mut finished: Vec<(String, Result<RunState, RunError>)> =
        resumed.into_iter().map(|(id, rs)| (id, Ok(rs))).collect();
    let mut interrupted = false;
    let mut seen: Vec<(String, TaskStatus)> = Vec::new();
    keep_up(&repo, plan, opts, make, &st, &say).await?;
    loop {
        tell_changes(opts, &st, &mut seen);
        // Integrate finished runs in plan order: one waits while a task before it runs.
        finished.sort_by_key(|(id, _)| order(id));
        while let Some((id, _)) = finished.first() {
            if in_flight.first().is_some_and(|&first| first < order(id)) {
                break;
            }
            let (id, result) = finished.remove(0);
            let task = &plan.tasks[order(&id)];
            match result {
                Ok(rs) => settle(&repo, plan, task, rs, opts, make, &st, &say).await?,
                Err(RunError::Interrupted) => {
                    interrupted = true;
                    let mut s = st.lock().expect("plan state lock");
                    s.task_mut(&id).status = TaskStatus::Pending;
                    save(&mut s)?;
                }
                Err(e) => {
                    let mut s = st.lock().expect("plan state lock");
                    let t = s.task_mut(&id);
                    t.status = TaskStatus::Failed;
                    t.reason = Some(format!("the run failed: {e}"));
                    say(Said::Warn(format!(
                        "plan {}: task {id} failed: {e}",
                        plan.name
                    )));
                    save(&mut s)?;
                }
            }
        }
        keep_up(&repo, plan, opts, make, &st, &say).await?;
        let startable = {
            let mut s = st.lock().expect("plan state lock");
            skip_dependents(&mut s, &say);
            let mut ready = Vec::new();
            for task in &plan.tasks {
                let deps_done = task
                    .depends_on
                    .iter()
                    .all(|d| s.task(d).status == TaskStatus::Done);
                let t = s.task_mut(&task.id);
                if t.status == TaskStatus::Pending && deps_done && !interrupted {
                    t.status = TaskStatus::Ready;
                }
                if t.status == TaskStatus::Ready {
                    ready.push(task);
                }
            }
            save(&mut s)?;
            ready
        };
        for task in startable {
            if in_flight.len() >= opts.jobs.max(1) {
                break;
            }
            let base = {
                let s = st.lock().expect("plan state lock");
                crate::run::state::commit_id(&s.integration_commit)?
            };
            let run_plan = match make(task, base) {
                Ok(p) => p,
                Err(e) => {
                    let mut s = st.lock().expect("plan state lock");
                    let t = s.task_mut(&task.id);
                    t.status = TaskStatus::Failed;
                    t.reason = Some(format!("cannot start its run: {e}"));
                    say(Said::Warn(format!(
                        "plan {}: task {} cannot start: {e}",
                        plan.name, task.id
                    )));
                    save(&mut s)?;
                    continue;
                }
            };
            {
                let mut s = st.lock().expect("plan state lock");
                let t = s.task_mut(&task.id);
                t.status = TaskStatus::Running;
                t.run = None;
                save(&mut s)?;
            }
            say(Said::Info(format!(
                "massgen: plan {}: task {} started (wave {}, from {})",
                plan.name,
                task.id,
                task.wave,
                &base.to_string()[..12]
            )));
            // The run id is saved as soon as the run exists, before any agent starts.
            let reporter: pipeline::Reporter = {
                let (st, repo, id, say) = (st.clone(), repo.clone(), task.id.clone(), say.clone());
                let observer = opts.observer.clone();
                Arc::new(move |e: Event| {
                    let run = match &e {
                        Event::Created { run, .. } => {
                            let mut s = st.lock().expect("plan state lock");
                            s.task_mut(&id).run = Some(run.clone());
                            if let Err(e) = s.save(&repo) {
                                say(Said::Warn(format!("cannot save the plan's state: {e}")));
                            }
                            Some(run.clone())
                        }
                        Event::Warning(w) => {
                            say(Said::Warn(format!("task {id}: {w}")));
                            None
                        }
                        _ => None,
                    };
                    if let Some(o) = &observer {
                        let run = run
                            .or_else(|| st.lock().expect("plan state lock").task(&id).run.clone());
                        o.run_event(&id, run.as_deref(), &e);
                    }
                })
            };
            let (repo, id) = (repo.clone(), task.id.clone());
            in_flight.insert(order(&id));
            set.spawn(async move { (id, pipeline::execute(repo, run_plan, reporter).await) });
        }
        let Some(joined) = set.join_next().await else {
            if finished.is_empty() {
                break;
            }
            continue;
        };
        let (id, result) = joined.expect("a task's run does not panic");
        in_flight.remove(&order(&id));
        finished.push((id, result));
    }
    tell_changes(opts, &st, &mut seen);
    let st = Arc::try_unwrap(st)
        .expect("no run holds the plan state any more")
        .into_inner()
        .expect("plan state lock");
    let end = if interrupted {
        End::Interrupted
    } else if st.all_done() {
        End::Done
    } else {
        End::Incomplete
    };
    Ok((st, end))
}

/// Tells the observer of every task whose status changed since `seen`.
fn tell_changes(opts: &Options, st: &Mutex<PlanState>, seen: &mut Vec<(String, TaskStatus)>) {
    let Some(observer) = &opts.observer else {
        return;
    };
    let s = st.lock().expect("plan state lock");
    for t in &s.tasks {
        match seen.iter_mut().find(|(id, _)| *id == t.id) {
            Some((_, status)) if *status == t.status => {}
            Some((_, status)) => {
                *status = t.status;
                observer.task(t);
            }
            None => {
                seen.push((t.id.clone(), t.status));
                observer.task(t);
            }
        }
    }
}

/// A task's run is over: its winner integrated (through the resolver when it conflicts and
/// the plan has one), or the task failed or was blocked.
#[allow(clippy::too_many_arguments)]
async fn settle(
    repo: &Arc<Repo>,
    plan: &TaskPlan,
    task: &Task,
    rs: RunState,
    opts: &Options,
    make: &MakeRun<'_>,
    st: &Mutex<PlanState>,
    say: &Say,
) -> Result<(), PlanRunError> {
    let id = &task.id;
    let winner = rs.winner.clone().and_then(|w| {
        let commit = rs.candidate(&w)?.commit.clone()?;
        Some((w, commit))
    });
    let Some((winner, commit)) = winner else {
        let reason = rs
            .reason
            .clone()
            .unwrap_or_else(|| "no candidate won".into());
        let mut s = st.lock().expect("plan state lock");
        let t = s.task_mut(id);
        t.status = TaskStatus::Failed;
        t.reason = Some(format!("no winner in run {}: {reason}", rs.run));
        say(Said::Warn(format!(
            "plan {}: task {id} failed: no winner ({reason})",
            plan.name
        )));
        return Ok(s.save(repo)?);
    };
    let ours = {
        let mut s = st.lock().expect("plan state lock");
        let t = s.task_mut(id);
        t.run = Some(rs.run.clone());
        t.winner = Some(winner.clone());
        t.commit = Some(commit.clone());
        s.save(repo)?;
        crate::run::state::commit_id(&s.integration_commit)?
    };
    let message = format!("massgen plan {}: {id} ({})\n", plan.name, task.title);
    let theirs = crate::run::state::commit_id(&commit)?;
    let check = opts.check(repo, &plan.name, id);
    let mut outcome =
        integrate::integrate(repo.clone(), ours, theirs, message.clone(), check).await?;
    if let (Integration::Conflicts(paths), Some(resolver)) = (&outcome, &plan.resolver) {
        say(Said::Info(format!(
            "massgen: plan {}: task {id} conflicts with the integration branch in {}; {resolver} resolves it",
            plan.name,
            crate::run::merge::name_some(paths)
        )));
        let conflict = Conflict {
            ours,
            theirs,
            paths: paths.clone(),
        };
        let which = Hand::Task(id);
        outcome = resolve_and_integrate(
            repo, plan, task, which, resolver, &conflict, message, opts, make, st,
        )
        .await?;
    }
    let mut s = st.lock().expect("plan state lock");
    let (status, reason) = match outcome {
        Integration::Ready(new) => {
            s.task_mut(id).integrated = Some(new.to_string());
            s.save(repo)?;
            crate::sys::kill_point("plan-integrating");
            if new != ours {
                let log = format!("massgen: plan {}: {id}", plan.name);
                repo.set_ref(&s.integration_branch, new, Some(ours), &log)?;
            }
            s.integration_commit = new.to_string();
            (TaskStatus::Done, None)
        }
        Integration::Conflicts(paths) => {
            let reason = format!(
                "its winner ({winner}) conflicts with the integration branch in {}; resolve it by hand with `git massgen plan resolve {} {id}`, set a `resolver` in the plan, or run the plan again to run the task again from the integration branch",
                crate::run::merge::name_some(&paths),
                plan.name
            );
            s.task_mut(id).conflicts = paths;
            (TaskStatus::Blocked, Some(reason))
        }
        Integration::Unresolved(paths, why) => {
            let reason = format!(
                "its winner ({winner}) conflicts with the integration branch in {}, and the resolver did not resolve it: {why}; resolve it by hand with `git massgen plan resolve {} {id}`",
                crate::run::merge::name_some(&paths),
                plan.name
            );
            s.task_mut(id).conflicts = paths;
            (TaskStatus::Blocked, Some(reason))
        }
        Integration::TestFailed(why) => (TaskStatus::Failed, Some(why)),
    };
    let t = s.task_mut(id);
    t.status = status;
    t.reason = reason.clone();
    match &reason {
        None => say(Said::Info(format!(
            "massgen: plan {}: task {id} done (winner {winner}, run {})",
            plan.name, rs.run
        ))),
        Some(r) => say(Said::Warn(format!(
            "plan {}: task {id} {}: {r}",
            plan.name,
            status.as_str()
        ))),
    }
    Ok(s.save(repo)?)
}

/// Pending tasks that depend on a task that failed, was blocked or skipped are skipped.
fn skip_dependents(s: &mut PlanState, say: &Say) {
    loop {
        let mut changed = false;
        for i in 0..s.tasks.len() {
            if !matches!(s.tasks[i].status, TaskStatus::Pending | TaskStatus::Ready) {
                continue;
            }
            let dead = s.tasks[i].depends_on.iter().find_map(|d| {
                let dep = s.task(d);
                matches!(
                    dep.status,
                    TaskStatus::Failed | TaskStatus::Blocked | TaskStatus::Skipped
                )
                .then(|| (d.clone(), dep.status))
            });
            if let Some((dep, status)) = dead {
                let t = &mut s.tasks[i];
                t.status = TaskStatus::Skipped;
                t.reason = Some(format!("it depends on {dep}, which {}", was(status)));
                say(Said::Warn(format!(
                    "plan {}: task {} skipped: it depends on {dep} ({})",
                    s.plan,
                    s.tasks[i].id,
                    status.as_str()
                )));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// `failed`, `is blocked`, `was skipped`: what became of a dependency, in a sentence.
fn was(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Blocked => "is blocked",
        TaskStatus::Skipped => "was skipped",
        other => other.as_str(),
    }
}

/// Keeps the integration branch up with the branch the plan targets: commits that arrived
/// there since the plan started (or since the last look) are merged onto the integration
/// branch, in memory and checked by the integration test, before more tasks start. New
/// commits that conflict are left out, with a warning naming the paths, and tried again
/// at the next look.
async fn keep_up(
    repo: &Arc<Repo>,
    plan: &TaskPlan,
    opts: &Options,
    make: &MakeRun<'_>,
    st: &Mutex<PlanState>,
    say: &Say,
) -> Result<(), PlanRunError> {
    let (target, known, ours) = {
        let s = st.lock().expect("plan state lock");
        let Some(target) = s.target_branch.clone() else {
            return Ok(());
        };
        (
            target,
            crate::run::state::commit_id(&s.target_commit)?,
            crate::run::state::commit_id(&s.integration_commit)?,
        )
    };
    let Some(now) = repo.ref_target(&target)? else {
        return Ok(());
    };
    let left_out = st.lock().expect("plan state lock").target_left_out.clone();
    if now == known || left_out.is_some_and(|c| c.parse::<ObjectId>().is_ok_and(|c| c == now)) {
        return Ok(());
    }
    let short = target.trim_start_matches("refs/heads/");
    let outcome = if repo.is_ancestor(now, ours)? {
        // Already in (the plan's own merge, or a rewind to an older commit).
        Integration::Ready(ours)
    } else {
        let message = format!("massgen plan {}: the new commits of {short}\n", plan.name);
        let check = opts.check(repo, &plan.name, Hand::Target.check_id());
        let outcome = integrate::integrate(repo.clone(), ours, now, message.clone(), check).await?;
        match (outcome, &plan.resolver) {
            // The same conflict handling as a task's: the resolver, told what came in.
            (Integration::Conflicts(paths), Some(resolver)) => {
                say(Said::Info(format!(
                    "massgen: plan {}: {short} moved, and its new commits conflict with the integration branch in {}; {resolver} resolves it",
                    plan.name,
                    crate::run::merge::name_some(&paths)
                )));
                let log = crate::git::cmd::Git::new(&repo.workdir)
                    .args(["log", "--format=- %s", &format!("{known}..{now}")])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let incoming = Task {
                    id: Hand::Target.check_id().into(),
                    title: format!("the new commits of {short}"),
                    task: format!("Commits that arrived on {short} while the plan ran:\n{log}"),
                    depends_on: Vec::new(),
                    agents: Vec::new(),
                    test: None,
                    rounds: None,
                    timeout: None,
                    wave: 1,
                };
                let conflict = Conflict {
                    ours,
                    theirs: now,
                    paths: paths.clone(),
                };
                let which = Hand::Target;
                resolve_and_integrate(
                    repo, plan, &incoming, which, resolver, &conflict, message, opts, make, st,
                )
                .await?
            }
            (outcome, _) => outcome,
        }
    };
    let mut s = st.lock().expect("plan state lock");
    match outcome {
        Integration::Ready(new) => {
            if new != ours {
                let log = format!("massgen: plan {}: {short} moved", plan.name);
                repo.set_ref(&s.integration_branch, new, Some(ours), &log)?;
                s.integration_commit = new.to_string();
                say(Said::Info(format!(
                    "massgen: plan {}: {short} moved to {}; its new commits are merged onto the integration branch",
                    plan.name,
                    &now.to_string()[..12]
                )));
            }
            s.target_commit = now.to_string();
            Ok(s.save(repo)?)
        }
        Integration::Conflicts(paths) | Integration::Unresolved(paths, _) => {
            s.target_left_out = Some(now.to_string());
            s.target_conflicts = paths.clone();
            s.save(repo)?;
            say(Said::Warn(format!(
                "plan {}: {short} moved, and its new commits conflict with the integration branch in {}; the plan goes on without them (resolve it by hand with `git massgen plan resolve {} --target`)",
                plan.name,
                crate::run::merge::name_some(&paths),
                plan.name
            )));
            Ok(())
        }
        Integration::TestFailed(why) => {
            s.target_left_out = Some(now.to_string());
            s.save(repo)?;
            say(Said::Warn(format!(
                "plan {}: {short} moved, and with its new commits {why}; the plan goes on without them",
                plan.name
            )));
            Ok(())
        }
    }
}
