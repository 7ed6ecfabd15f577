//! The run pipeline: worktrees → agents → snapshots → tests → agreement → judges → ranking,
//! then, with `--rounds`, refinement rounds in which every agent sees its peers' candidates
//! (anonymized) and revises its own or votes; and with `run --continue`, further turns on
//! the same candidates.
//!
//! State is persisted after every step, so a process killed at any instant leaves a run that
//! `status` reports as interrupted and `clean` can finish. Ctrl-C (or SIGTERM) stops every
//! agent's whole process group and leaves the run in the `interrupted` state.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use tokio::sync::{Semaphore, watch};

use super::RunError;
use super::attempt::{Ask, run_agent};
pub use super::context::{Event, Judging, Plan, Reporter};
use super::context::{Shared, new_shared};
use super::layout::{self, RunDir};
use super::peers::{peer_ballot, refinement};
use super::scoring::score_round;
use super::state::{Action, Candidate, Phase, RunState, Status, Turn};
use crate::agent::{AgentSpec, Kind, prompt};
use crate::git::{self, Repo};
use crate::model::PORT_BLOCK;

/// Runs the whole pipeline and returns the scored run.
pub async fn execute(repo: Arc<Repo>, plan: Plan, report: Reporter) -> Result<RunState, RunError> {
    // Refused before anything is made when copy-on-write worktrees were asked for and
    // cannot work.
    let (overlay, overlay_warning) = super::overlay::resolve(plan.worktree_mode)?;
    let lower = overlay.then(|| super::overlay::lower_path(&plan.worktree_root, plan.base));
    // Refused before anything is made when the worktrees cannot fit (copy-on-write ones
    // share one checkout).
    {
        let (repo, base) = (repo.clone(), plan.base);
        let copies = if overlay { 1 } else { plan.agents.len() };
        let root = plan.worktree_root.clone();
        let include = plan.include.clone();
        tokio::task::spawn_blocking(move || {
            super::setup::check_space(&repo, base, &include, &root, copies)
        })
        .await
        .expect("the space check does not panic")?;
    }
    // Refused before anything is made when the sandbox is required and missing, or the
    // cluster that should run the jobs does not answer.
    let (sandbox, sandbox_is, sandbox_warning) = super::confine::resolve(&plan.sandbox)?;
    plan.executor.check().await?;
    let id = super::new_run_id();
    let dir = RunDir::new(&repo, &id);
    layout::ensure_gitignore(&repo).map_err(RunError::io("cannot write", repo.massgen_dir()))?;
    // The run's directory is made under a name of its own and renamed into place with its
    // state in it: `.massgen/runs/<id>/` never exists without `state.json`, and one left by a
    // process killed meanwhile is known by its pid.
    let staging = RunDir {
        id: id.clone(),
        dir: layout::staging_dir(&repo, &id),
    };
    for sub in ["logs", "patches"] {
        std::fs::create_dir_all(staging.dir.join(sub))
            .map_err(RunError::io("cannot create", &staging.dir))?;
    }
    std::fs::write(staging.task_file(), &plan.task)
        .map_err(RunError::io("cannot write", staging.task_file()))?;

    // Worktrees discarded by an earlier run whose purge did not finish.
    super::trash::purge_in_background(&super::trash::dir(&plan.worktree_root));
    let run_root = plan.worktree_root.join(&id);
    let now = super::now_secs();
    let mut state = RunState {
        run: id.clone(),
        base: plan.base.to_string(),
        base_branch: plan.base_branch.clone(),
        task: plan.task.clone(),
        state: Phase::Created,
        winner: None,
        merged: false,
        reason: None,
        test_command: plan.test.clone(),
        created_at: now,
        updated_at: now,
        pid: std::process::id(),
        worktree_root: run_root.clone(),
        candidates: plan
            .agents
            .iter()
            .map(|a| Candidate {
                agent: a.name.clone(),
                kind: a.kind_name().to_owned(),
                branch: layout::branch_ref(&id, &a.name)
                    .trim_start_matches("refs/heads/")
                    .to_owned(),
                worktree: Some(run_root.join(&a.name)),
                command: a.ad_hoc.then(|| match &a.kind {
                    Kind::Command(argv) => argv.clone(),
                    Kind::Cli(_) => Vec::new(),
                }),
                ..Default::default()
            })
            .collect(),
        warnings: Vec::new(),
        usage: None,
        votes: Vec::new(),
        abstentions: Vec::new(),
        rounds: 0,
        turns: vec![Turn {
            turn: 1,
            prompt: plan.task.clone(),
            agents: plan.agents.iter().map(|a| a.name.clone()).collect(),
            started_at: now,
            rounds: 0,
            converged: false,
            winner: None,
            reason: None,
        }],
        judge_usage: None,
        breaches: Vec::new(),
        pythonpath: None,
        sandbox: Some(sandbox_is),
        picked: plan.picked.clone(),
        worktree_mode: if overlay { "overlay" } else { "checkout" }.to_owned(),
        lower: lower.clone(),
        executor: plan.executor.name(),
        bundles: plan
            .executor
            .carries()
            .then(|| super::executor::stage_dir(&plan.executor.slurm, &dir)),
    };
    // A block of ports per agent, free now: agents' servers and tests never fight.
    let ports = crate::sys::free_port_blocks(state.candidates.len(), PORT_BLOCK, fastrand::u64(..));
    for (c, port) in state.candidates.iter_mut().zip(ports) {
        c.port = Some(port);
    }
    // Tests in a worktree that import the user's work tree would score the user's code.
    let (mut warnings, pythonpath) = super::imports::check(&repo.workdir, &plan);
    state.pythonpath = pythonpath;
    warnings.extend(sandbox_warning);
    warnings.extend(overlay_warning);
    if !plan.share.is_empty() {
        warnings.push(format!(
            "{} linked into every worktree from your work tree ([worktree] share): an agent that writes there changes it for every candidate and for you",
            plan.share.join(", ")
        ));
    }
    // Said once now, and kept with the run.
    state.warnings.extend(warnings.iter().cloned());
    state.save(&staging)?;
    crate::sys::kill_point("run-staged");
    std::fs::rename(&staging.dir, &dir.dir).map_err(RunError::io("cannot create", &dir.dir))?;
    report(Event::Created {
        run: id.clone(),
        agents: plan.agents.len(),
        worktree_root: run_root.clone(),
    });
    for w in warnings {
        report(Event::Warning(w));
    }
    let shared = new_shared(repo.clone(), dir, state, &plan, sandbox, report);
    let worker = shared.clone();
    guarded(&shared, |cancel| async move {
        let shared = worker;
        // Branches and worktrees, in parallel.
        let started = Instant::now();
        let items: Vec<git::worktree::NewWorktree> = plan
            .agents
            .iter()
            .map(|a| git::worktree::NewWorktree {
                branch: layout::branch_ref(&id, &a.name),
                path: plan.worktree_root.join(&id).join(&a.name),
            })
            .collect();
        let repo = shared.repo.clone();
        let base = plan.base;
        // With copy-on-write worktrees, the base's checkout is held until the run ends.
        let _lower = tokio::task::spawn_blocking(move || match lower {
            Some(lower) => {
                let held = super::overlay::hold_lower(&repo, &lower, base)?;
                super::overlay::create_all(&repo, base, &lower, &items)?;
                Ok::<_, RunError>(Some(held))
            }
            None => {
                git::worktree::create_all(&repo, base, &items, &AtomicBool::new(false))?;
                Ok(None)
            }
        })
        .await
        .expect("worktree creation does not panic")?;
        shared.update(|s| s.state = Phase::Running)?;
        (shared.report)(Event::WorktreesReady {
            elapsed: started.elapsed(),
        });
        let agents = plan.agents.clone();
        let first = |a: &AgentSpec, wt: &str| {
            let mut prompt = crate::agent::fill(
                &plan.prompt_template,
                &[
                    ("task", &plan.task),
                    ("worktree", wt),
                    ("test_rule", &prompt::test_rule(plan.test.as_deref())),
                    ("agent", &a.name),
                    ("run", &id),
                ],
            );
            let is_llm = matches!(&a.kind, Kind::Cli(c) if c.llm.is_some());
            if !plan.images.is_empty() && !is_llm {
                prompt.push_str("\n\nImages attached to the task (open them from these paths):\n");
                for image in &plan.images {
                    prompt.push_str(&format!("- {}\n", image.display()));
                }
            }
            (prompt, false)
        };
        run_turn(&shared, &plan, &agents, 1, &first, cancel).await
    })
    .await
}

/// `run --continue`: a new turn on a scored run. Every agent of `plan` continues from its
/// own candidate (its worktree checked out again if it was removed) with the follow-up.
pub async fn continue_run(
    repo: Arc<Repo>,
    plan: Plan,
    run: &str,
    follow_up: &str,
    report: Reporter,
) -> Result<RunState, RunError> {
    let dir = RunDir::new(&repo, run);
    let mut state = RunState::load(&dir)?;
    let (sandbox, sandbox_is, sandbox_warning) = super::confine::resolve(&plan.sandbox)?;
    plan.executor.check().await?;
    state.sandbox = Some(sandbox_is);
    if let Some(w) = sandbox_warning {
        report(Event::Warning(w));
    }
    let phase = state.effective_phase();
    if phase.is_active() {
        return Err(RunError::Busy {
            run: run.to_owned(),
            pid: state.pid,
        });
    }
    if !matches!(phase, Phase::Scored | Phase::Merged) {
        return Err(RunError::Usage(format!(
            "run {run} is {}; only a scored run can be continued",
            phase.as_str()
        )));
    }
    for a in &plan.agents {
        let c = state.require_candidate(&a.name)?;
        let branch = layout::branch_ref(run, &a.name);
        if c.commit.is_none() || repo.ref_target(&branch)?.is_none() {
            return Err(RunError::Usage(format!(
                "agent `{}` of run {run} has no candidate branch to continue from (was the run cleaned?)",
                a.name
            )));
        }
    }
    // Worktrees removed after the last turn are checked out again from the branches. They
    // are recorded before they exist, so that a process killed meanwhile leaves them
    // listed for `clean`; if checking out fails, the run is left as it was.
    let started = Instant::now();
    let before = state.clone();
    let mut items = Vec::new();
    for a in &plan.agents {
        let c = state.require_candidate(&a.name)?;
        // Still there: a kept checkout, or a copy-on-write worktree whose work was not saved.
        if c.worktree
            .as_ref()
            .is_some_and(|w| w.join(".git").exists() || super::overlay::is_overlay(w))
        {
            continue;
        }
        let path = state.worktree_root.join(&a.name);
        items.push(git::worktree::NewWorktree {
            branch: layout::branch_ref(run, &a.name),
            path: path.clone(),
        });
        if let Some(c) = state.candidate_mut(&a.name) {
            c.worktree = Some(path);
            // Checked out again: set up again.
            c.set_up = false;
        }
    }
    state.pid = std::process::id();
    state.state = Phase::Created;
    state.save(&dir)?;
    // A run with copy-on-write worktrees gets them again (over its base's checkout, held
    // until the turn ends) where overlays still work here (asked only when some are needed).
    let remake = || super::overlay::resolve(crate::config::WorktreeMode::Overlay).is_ok();
    let lower = match &state.lower {
        Some(lower) if !items.is_empty() && remake() => {
            Some((lower.clone(), super::state::commit_id(&state.base)?))
        }
        _ => None,
    };
    let attached = {
        let (repo, items) = (repo.clone(), items.clone());
        tokio::task::spawn_blocking(move || match lower {
            Some((lower, base)) => {
                let held = super::overlay::hold_lower(&repo, &lower, base)?;
                super::overlay::reattach_all(&repo, base, &lower, &items)?;
                Ok(Some(held))
            }
            None => {
                git::worktree::attach_all(&repo, &items, &AtomicBool::new(false))?;
                Ok::<_, RunError>(None)
            }
        })
        .await
        .expect("worktree creation does not panic")
    };
    let _lower = match attached {
        Ok(held) => held,
        Err(e) => {
            let mut before = before;
            before.save(&dir)?;
            return Err(e);
        }
    };
    let turn = state.turn() + 1;
    state.turns.push(Turn {
        turn,
        prompt: follow_up.to_owned(),
        agents: plan.agents.iter().map(|a| a.name.clone()).collect(),
        started_at: super::now_secs(),
        rounds: 0,
        converged: false,
        winner: None,
        reason: None,
    });
    state.rounds = 0;
    state.merged = false;
    state.state = Phase::Running;
    state.test_command = plan.test.clone();
    state.save(&dir)?;
    let earlier: Vec<String> = state.turns[1..state.turns.len() - 1]
        .iter()
        .map(|t| format!("- {}", t.prompt.trim()))
        .collect();
    report(Event::Created {
        run: run.to_owned(),
        agents: plan.agents.len(),
        worktree_root: state.worktree_root.clone(),
    });
    report(Event::WorktreesReady {
        elapsed: started.elapsed(),
    });
    let shared = new_shared(repo.clone(), dir, state, &plan, sandbox, report);
    let worker = shared.clone();
    guarded(&shared, |cancel| async move {
        let shared = worker;
        let earlier = if earlier.is_empty() {
            "(none)".to_owned()
        } else {
            earlier.join("\n")
        };
        let next = |a: &AgentSpec, wt: &str| {
            let prompt = crate::agent::fill(
                &plan.continue_template,
                &[
                    ("task", &plan.task),
                    ("earlier", &earlier),
                    ("follow_up", follow_up),
                    ("worktree", wt),
                    ("test_rule", &prompt::test_rule(plan.test.as_deref())),
                    ("agent", &a.name),
                    ("run", &shared.dir.id),
                ],
            );
            (prompt, true)
        };
        let agents = plan.agents.clone();
        run_turn(&shared, &plan, &agents, turn, &next, cancel).await
    })
    .await
}

/// Runs `work` with Ctrl-C and SIGTERM wired to cancellation, and leaves the run
/// interrupted or abandoned when it fails.
async fn guarded<F, Fut>(shared: &Arc<Shared>, work: F) -> Result<RunState, RunError>
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = Result<(), RunError>>,
{
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let cancel_tx = Arc::new(cancel_tx);
    let signal_task = tokio::spawn(wait_for_signal(cancel_tx.clone()));
    let result = work(cancel_rx).await;
    signal_task.abort();
    match result {
        Ok(()) => {
            let state = shared.snapshot_state();
            learn_from(shared, &state).await;
            Ok(shared.snapshot_state())
        }
        Err(RunError::Interrupted) => {
            shared.update(|s| {
                s.state = Phase::Interrupted;
                // A round cut short may have moved candidates past what was scored: no
                // winner stands until the run is scored again (merge one by name).
                if s.rounds > 1 || s.turns.len() > 1 {
                    s.winner = None;
                    s.reason = Some(format!(
                        "interrupted in round {} of turn {}; no winner (merge a candidate by name, or clean the run)",
                        s.rounds,
                        s.turn()
                    ));
                }
                for c in &mut s.candidates {
                    if matches!(c.status, Status::Running | Status::Pending) {
                        c.status = Status::Failed;
                        c.error = Some("interrupted".into());
                    }
                }
            })?;
            Err(RunError::Interrupted)
        }
        Err(e) => {
            let msg = e.to_string();
            let _ = shared.update(|s| {
                s.state = Phase::Abandoned;
                s.warnings.push(format!("run failed: {msg}"));
            });
            Err(e)
        }
    }
}

/// What the scored run teaches (`refs/massgen/learning`), after what history said of
/// earlier merged winners. Learning never fails a run: a problem is a warning.
async fn learn_from(shared: &Arc<Shared>, state: &RunState) {
    let (repo, state) = (shared.repo.clone(), state.clone());
    let learned = tokio::task::spawn_blocking(move || {
        crate::learn::history::update(&repo, crate::learn::history::CONFIRM_AFTER)?;
        super::learning::record_run(&repo, &state)
    })
    .await
    .expect("learning does not panic");
    if let Err(e) = learned {
        let warning = format!("cannot record what the run taught: {e}");
        let _ = shared.update(|s| s.warnings.push(warning.clone()));
        (shared.report)(Event::Warning(warning));
    }
}

async fn wait_for_signal(tx: Arc<watch::Sender<bool>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = tx.send(true);
}

/// One turn: round 1 with `first`'s prompt (and whether to continue a CLI's session), then
/// refinement rounds until the agents converge, nothing changes, or `plan.rounds` is
/// reached; each round is scored. Worktrees go at the end unless kept.
async fn run_turn(
    shared: &Arc<Shared>,
    plan: &Plan,
    agents: &[AgentSpec],
    turn: u32,
    first: &(dyn Fn(&AgentSpec, &str) -> (String, bool) + Sync),
    cancel: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let permits = Arc::new(Semaphore::new(plan.jobs.max(1)));
    let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    let mut converged = false;
    let mut round = 1;
    loop {
        shared.update(|s| {
            s.rounds = round;
            s.state = Phase::Running;
        })?;
        if round > 1 || turn > 1 {
            (shared.report)(Event::RoundStarted {
                turn,
                round,
                agents: agents.len(),
            });
        }
        let state = shared.snapshot_state();
        let mut asks = Vec::new();
        let ballot = if round == 1 {
            None
        } else {
            Some(Arc::new(peer_ballot(shared, plan, &names).await?))
        };
        for a in agents {
            let wt = state
                .require_candidate(&a.name)?
                .worktree
                .clone()
                .expect("worktree exists while running")
                .display()
                .to_string();
            let ask = match &ballot {
                None => {
                    let (prompt, resume) = first(a, &wt);
                    Ask {
                        turn,
                        round,
                        prompt,
                        resume,
                        env: {
                            let mut env = vec![
                                ("MASSGEN_TURN".into(), turn.to_string()),
                                ("MASSGEN_ROUND".into(), round.to_string()),
                            ];
                            if turn > 1
                                && let Some(t) = state.turns.last()
                            {
                                env.push(("MASSGEN_FOLLOW_UP".into(), t.prompt.clone()));
                            }
                            env
                        },
                        ballot: None,
                    }
                }
                Some(ballot) => refinement(shared, plan, a, &wt, ballot.clone(), turn, round)?,
            };
            asks.push((a.clone(), ask));
        }
        let before = run_agents(shared, plan, asks, &permits, &cancel).await?;
        let state = shared.snapshot_state();
        let actions: Vec<Action> = agents
            .iter()
            .filter_map(|a| {
                state
                    .candidate(&a.name)?
                    .history
                    .iter()
                    .rfind(|h| h.turn == turn && h.round == round)
                    .map(|h| h.action)
            })
            .collect();
        let revised = actions
            .iter()
            .any(|a| matches!(a, Action::Revised | Action::Worked));
        score_round(shared, plan, &names, revised, &permits, &cancel).await?;
        // Test commands run the candidates' own code, and judges run commands: what they
        // change in the user's repository is a breach as well.
        record_breaches(shared, &before).await?;
        if round > 1 && !revised {
            converged = actions.iter().all(|a| *a == Action::Voted);
            (shared.report)(Event::Settled { round, converged });
            break;
        }
        let has_candidates = shared
            .snapshot_state()
            .candidates
            .iter()
            .any(|c| c.status == Status::Done && names.contains(&c.agent));
        if round >= plan.rounds || !has_candidates {
            break;
        }
        round += 1;
    }
    shared.update(|s| {
        s.state = Phase::Scored;
        let (winner, reason) = (s.winner.clone(), s.reason.clone());
        if let Some(t) = s.turns.last_mut() {
            t.rounds = round;
            t.converged = converged;
            t.winner = winner;
            t.reason = reason;
        }
    })?;
    if !plan.keep {
        remove_worktrees(shared).await?;
    } else if shared.lower.is_some() {
        materialize_worktrees(shared).await;
    }
    Ok(())
}

/// `--keep` with copy-on-write worktrees: each saved one becomes an ordinary worktree of its
/// candidate branch, seen by everyone ([`super::overlay::materialize`]). One whose work could
/// not be saved stays an overlay, for `clean` to save.
async fn materialize_worktrees(shared: &Arc<Shared>) {
    let state = shared.snapshot_state();
    let lower = shared.lower.clone().expect("copy-on-write worktrees");
    let repo = shared.repo.clone();
    let todo: Vec<(String, PathBuf)> = state
        .candidates
        .iter()
        .filter(|c| !c.unsaved)
        .filter_map(|c| Some((c.agent.clone(), c.worktree.clone()?)))
        .filter(|(_, wt)| super::overlay::is_overlay(wt))
        .collect();
    let run = state.run.clone();
    let errors = tokio::task::spawn_blocking(move || {
        todo.into_iter()
            .filter_map(|(agent, wt)| {
                let branch = layout::branch_ref(&run, &agent);
                super::overlay::materialize(&repo, &lower, &wt, &branch)
                    .err()
                    .map(|e| format!("cannot check out {agent}'s kept worktree: {e}"))
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("checking out does not panic");
    for e in errors {
        (shared.report)(Event::Warning(e));
    }
}

/// Runs the asked agents, at most `jobs` at once, and checks that none of them changed the
/// user's repository (invariant 6): a fingerprint taken before they start is compared with
/// one taken after they end, and every difference is recorded as a breach. Returns the
/// fingerprint from before, for the check after scoring.
async fn run_agents(
    shared: &Arc<Shared>,
    plan: &Plan,
    asks: Vec<(AgentSpec, Ask)>,
    permits: &Arc<Semaphore>,
    cancel: &watch::Receiver<bool>,
) -> Result<git::guard::Fingerprint, RunError> {
    let before = fingerprint(shared).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (agent, ask) in asks {
        let shared = shared.clone();
        let permits = permits.clone();
        let cancel = cancel.clone();
        let plan = plan.clone();
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            run_agent(&shared, &plan, &agent, ask, cancel).await
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let done = joined.expect("agent task does not panic");
        if result.is_ok() {
            result = done;
        }
    }
    // Checked however the agents ended: an interrupted run keeps its breaches too.
    record_breaches(shared, &before).await?;
    result?;
    if *cancel.borrow() {
        return Err(RunError::Interrupted);
    }
    Ok(before)
}

/// Compares the user's repository with `before` and records every new difference as a
/// breach.
async fn record_breaches(
    shared: &Arc<Shared>,
    before: &git::guard::Fingerprint,
) -> Result<(), RunError> {
    let after = fingerprint(shared).await?;
    let found = git::guard::changes(before, &after);
    if found.is_empty() {
        return Ok(());
    }
    let new: Vec<String> = shared.read(|s| {
        found
            .into_iter()
            .filter(|b| !s.breaches.contains(b))
            .collect()
    });
    for b in &new {
        (shared.report)(Event::Warning(format!(
            "breach: {b} during the run; merging is refused without --allow-breach"
        )));
    }
    shared.update(|s| s.breaches.extend(new))
}

/// The user's repository as agents must leave it; candidate branches of runs are left out
/// (this run's own and those of runs going on beside it).
async fn fingerprint(shared: &Arc<Shared>) -> Result<git::guard::Fingerprint, RunError> {
    let repo = shared.repo.clone();
    let runs = layout::runs_dir(&repo);
    let root = shared.read(|s| {
        let root = &s.worktree_root;
        root.parent().map_or_else(|| root.clone(), PathBuf::from)
    });
    let fp = tokio::task::spawn_blocking(move || {
        let is_run = |run: &str| runs.join(run).join("state.json").is_file();
        // Candidate branches of runs, and worktrees made by runs (a candidate's: its HEAD
        // names its own branch) and by reviews.
        // A task plan's integration branch and its check worktrees move beside its runs, and
        // every scored run beside this one writes the learning statistics.
        let refs = |name: &str| {
            layout::run_of_branch(name).is_some_and(is_run)
                || name.starts_with(layout::PLAN_BRANCHES)
                || name == crate::learn::store::REF
        };
        let worktrees = |path: &std::path::Path, branch: Option<&str>| {
            path.starts_with(root.join("reviews"))
                || path.starts_with(root.join("plans"))
                || path.starts_with(root.join("lower"))
                || branch.is_some_and(|b| {
                    layout::run_of_branch(b).is_some_and(|run| {
                        is_run(run)
                            && path.file_name().is_some_and(|n| {
                                *b == layout::branch_ref(run, &n.to_string_lossy())
                            })
                    })
                })
        };
        let ignore = git::guard::Ignore {
            refs: &refs,
            worktrees: &worktrees,
        };
        git::guard::take(&repo, &ignore)
    })
    .await
    .expect("fingerprinting does not panic")?;
    Ok(fp)
}

async fn remove_worktrees(shared: &Arc<Shared>) -> Result<(), RunError> {
    let mut state = shared.snapshot_state();
    let repo = shared.repo.clone();
    let (state, errors) = tokio::task::spawn_blocking(move || {
        let errors = super::clean::discard_worktrees(&repo, &mut state, false);
        (state, errors)
    })
    .await
    .expect("worktree removal does not panic");
    for e in errors {
        (shared.report)(Event::Warning(format!("cannot remove worktree: {e}")));
    }
    for c in state.candidates.iter().filter(|c| c.unsaved) {
        if let Some(wt) = &c.worktree {
            (shared.report)(Event::Warning(format!(
                "kept {}'s worktree {}: its work could not be snapshotted and is only there",
                c.agent,
                wt.display()
            )));
        }
    }
    shared.update(|s| {
        for (c, after) in s.candidates.iter_mut().zip(&state.candidates) {
            c.worktree = after.worktree.clone();
        }
    })
}
