//! The run pipeline: worktrees → agents → snapshots → tests → agreement → ranking.
//!
//! State is persisted after every step, so a process killed at any instant leaves a run that
//! `status` reports as interrupted and `clean` can finish. Ctrl-C (or SIGTERM) stops every
//! agent's whole process group and leaves the run in the `interrupted` state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::RunError;
use super::layout::{self, RunDir};
use super::session::{Ended, agent_env, run_cli, run_session};
use super::state::{Candidate, Phase, RunState, Status, TestResult};
use crate::agent::events::{self, AgentEvent};
use crate::agent::process::{self, Job};
use crate::agent::{AgentSpec, Invocation, Kind, prompt};
use crate::git::cmd::GIT_REPO_ENV;
use crate::git::{self, ObjectId, Repo};
use crate::score;

/// Everything a run needs to know, resolved from flags and configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub task: String,
    pub base: ObjectId,
    pub base_branch: Option<String>,
    pub agents: Vec<AgentSpec>,
    pub jobs: usize,
    pub test: Option<String>,
    pub test_timeout: Duration,
    pub keep: bool,
    pub worktree_root: PathBuf,
    /// The prompt template (`{task}`, `{worktree}`, `{test_rule}`, `{agent}`, `{run}`).
    pub prompt_template: String,
    /// The follow-up sent to an agent that asked a question.
    pub nudge: String,
    /// Images attached to the task (`--image`), absolute paths. The built-in agent gets
    /// them in its requests; other agents are told where they are.
    pub images: Vec<PathBuf>,
}

/// Progress of a run, for the user interface.
#[derive(Debug, Clone)]
pub enum Event {
    Created {
        run: String,
        agents: usize,
        worktree_root: PathBuf,
    },
    WorktreesReady {
        elapsed: Duration,
    },
    AgentStarted {
        agent: String,
    },
    /// Something a CLI agent reported.
    Agent {
        agent: String,
        event: AgentEvent,
    },
    /// An agent ended by asking a question and is told to finish on its own.
    Nudged {
        agent: String,
        question: String,
    },
    AgentFinished {
        agent: String,
        how: String,
        elapsed: Duration,
    },
    Snapshotted {
        agent: String,
        status: Status,
        files: usize,
        insertions: usize,
        deletions: usize,
    },
    TestsStarted {
        agent: String,
    },
    TestsFinished {
        agent: String,
        summary: String,
    },
    Warning(String),
}

/// Receives progress events; called from several tasks at once.
pub type Reporter = Arc<dyn Fn(Event) + Send + Sync>;

pub(super) struct Shared {
    repo: Arc<Repo>,
    pub(super) dir: RunDir,
    state: Mutex<RunState>,
    pub(super) report: Reporter,
    /// Changed lines per agent, for agreement.
    changed_lines: Mutex<BTreeMap<String, String>>,
}

impl Shared {
    pub(super) fn update(&self, f: impl FnOnce(&mut RunState)) -> Result<(), RunError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state);
        state.save(&self.dir)
    }

    pub(super) fn update_candidate(
        &self,
        agent: &str,
        f: impl FnOnce(&mut Candidate),
    ) -> Result<(), RunError> {
        self.update(|s| {
            if let Some(c) = s.candidate_mut(agent) {
                f(c);
            }
        })
    }

    pub(super) fn snapshot_state(&self) -> RunState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Runs the whole pipeline and returns the scored run.
pub async fn execute(repo: Arc<Repo>, plan: Plan, report: Reporter) -> Result<RunState, RunError> {
    let id = super::new_run_id();
    let dir = RunDir::new(&repo, &id);
    layout::ensure_gitignore(&repo).map_err(RunError::io("cannot write", repo.massgen_dir()))?;
    for sub in ["logs", "patches"] {
        std::fs::create_dir_all(dir.dir.join(sub))
            .map_err(RunError::io("cannot create", &dir.dir))?;
    }
    std::fs::write(dir.task_file(), &plan.task)
        .map_err(RunError::io("cannot write", dir.task_file()))?;

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
                commit: None,
                status: Status::Pending,
                exit_code: None,
                files_changed: 0,
                insertions: 0,
                deletions: 0,
                tests: None,
                agreement: 0.0,
                rank: None,
                worktree: Some(run_root.join(&a.name)),
                ..Default::default()
            })
            .collect(),
        warnings: Vec::new(),
        usage: None,
    };
    state.save(&dir)?;
    report(Event::Created {
        run: id.clone(),
        agents: plan.agents.len(),
        worktree_root: run_root.clone(),
    });

    let shared = Arc::new(Shared {
        repo: repo.clone(),
        dir: dir.clone(),
        state: Mutex::new(state),
        report: report.clone(),
        changed_lines: Mutex::new(BTreeMap::new()),
    });

    // Ctrl-C and SIGTERM cancel the run.
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let cancel_tx = Arc::new(cancel_tx);
    let signal_task = tokio::spawn(wait_for_signal(cancel_tx.clone()));

    let result = pipeline(&shared, &plan, cancel_rx).await;
    signal_task.abort();
    match result {
        Ok(()) => Ok(shared.snapshot_state()),
        Err(RunError::Interrupted) => {
            shared.update(|s| {
                s.state = Phase::Interrupted;
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

async fn pipeline(
    shared: &Arc<Shared>,
    plan: &Plan,
    cancel: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let id = shared.dir.id.clone();
    // 1. Branches and worktrees, in parallel.
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
    let created = tokio::task::spawn_blocking(move || {
        git::worktree::create_all(&repo, base, &items, &AtomicBool::new(false))
    })
    .await
    .expect("worktree creation does not panic")?;
    debug_assert_eq!(created.len(), plan.agents.len());
    shared.update(|s| s.state = Phase::Running)?;
    (shared.report)(Event::WorktreesReady {
        elapsed: started.elapsed(),
    });
    let tips_before = user_tips(&shared.repo, &id)?;

    // 2. Agents, at most `jobs` at once.
    let permits = Arc::new(Semaphore::new(plan.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for agent in plan.agents.clone() {
        let shared = shared.clone();
        let permits = permits.clone();
        let cancel = cancel.clone();
        let plan = plan.clone();
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            run_agent(&shared, &plan, &agent, cancel).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("agent task does not panic")?;
    }
    if *cancel.borrow() {
        return Err(RunError::Interrupted);
    }
    let tips_after = user_tips(&shared.repo, &id)?;
    for (name, before) in &tips_before {
        let after = tips_after.get(name);
        if after != Some(before) {
            let msg = format!(
                "{name} changed during the run ({} -> {}); if no one else changed it, an agent wrote outside its worktree",
                short(before),
                after.map_or("deleted", |a| short(a))
            );
            (shared.report)(Event::Warning(msg.clone()));
            shared.update(|s| s.warnings.push(msg))?;
        }
    }
    for name in tips_after.keys().filter(|n| !tips_before.contains_key(*n)) {
        let msg = format!("{name} was created during the run");
        (shared.report)(Event::Warning(msg.clone()));
        shared.update(|s| s.warnings.push(msg))?;
    }

    // 3. Tests, in parallel, in the worktrees of candidates with a change.
    shared.update(|s| s.state = Phase::Scoring)?;
    if let Some(test) = &plan.test {
        let mut tasks = tokio::task::JoinSet::new();
        let todo: Vec<(String, PathBuf)> = shared
            .snapshot_state()
            .candidates
            .iter()
            .filter(|c| c.status == Status::Done)
            .filter_map(|c| Some((c.agent.clone(), c.worktree.clone()?)))
            .collect();
        for (agent, wt) in todo {
            let shared = shared.clone();
            let permits = permits.clone();
            let cancel = cancel.clone();
            let test = test.clone();
            let timeout = plan.test_timeout;
            tasks.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                run_tests(&shared, &agent, &wt, &test, timeout, cancel).await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("test task does not panic")?;
        }
        if *cancel.borrow() {
            return Err(RunError::Interrupted);
        }
    }

    // 4. Agreement and ranking.
    let lines = shared
        .changed_lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    shared.update(|s| {
        let changes: Vec<Option<&str>> = s
            .candidates
            .iter()
            .map(|c| {
                (c.status == Status::Done)
                    .then(|| lines.get(&c.agent).map(String::as_str))
                    .flatten()
            })
            .collect();
        let agreement = score::agreement::agreement(&changes);
        for (c, a) in s.candidates.iter_mut().zip(agreement) {
            c.agreement = a;
        }
        let ranking = score::rank(&s.candidates, s.test_command.is_some());
        for (pos, &i) in ranking.order.iter().enumerate() {
            s.candidates[i].rank = Some(pos + 1);
        }
        s.winner = ranking.winner.map(|i| s.candidates[i].agent.clone());
        s.usage = s.candidates.iter().filter_map(|c| c.usage.as_ref()).fold(
            None,
            |total: Option<events::Usage>, u| {
                let mut total = total.unwrap_or_default();
                total.add(u);
                Some(total)
            },
        );
        s.reason = Some(ranking.reason);
        s.state = Phase::Scored;
    })?;

    // 5. Worktrees go unless asked to keep them; branches stay.
    if !plan.keep {
        remove_worktrees(shared).await?;
    }
    Ok(())
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Branch tips and HEAD of the user, without this run's own branches.
fn user_tips(repo: &Repo, run: &str) -> Result<BTreeMap<String, String>, RunError> {
    let own = format!("refs/heads/massgen/{run}/");
    Ok(repo
        .branch_tips()?
        .into_iter()
        .filter(|(name, _)| !name.starts_with(&own))
        .collect())
}

async fn run_agent(
    shared: &Arc<Shared>,
    plan: &Plan,
    agent: &AgentSpec,
    cancel: watch::Receiver<bool>,
) -> Result<(), RunError> {
    if *cancel.borrow() {
        return Ok(());
    }
    let id = shared.dir.id.clone();
    let cand = shared
        .snapshot_state()
        .candidate(&agent.name)
        .cloned()
        .expect("every agent has a candidate");
    let wt = cand
        .worktree
        .clone()
        .expect("worktree exists while running");
    shared.update_candidate(&agent.name, |c| c.status = Status::Running)?;
    (shared.report)(Event::AgentStarted {
        agent: agent.name.clone(),
    });

    let task_file = shared.dir.task_file();
    let prompt_file = shared.dir.prompt_file(&agent.name);
    let base = plan.base.to_string();
    let worktree = wt.display().to_string();
    let mut prompt = crate::agent::fill(
        &plan.prompt_template,
        &[
            ("task", &plan.task),
            ("worktree", &worktree),
            ("test_rule", &prompt::test_rule(plan.test.as_deref())),
            ("agent", &agent.name),
            ("run", &id),
        ],
    );
    let is_llm = matches!(&agent.kind, Kind::Cli(c) if c.llm.is_some());
    if !plan.images.is_empty() && !is_llm {
        prompt.push_str("\n\nImages attached to the task (open them from these paths):\n");
        for image in &plan.images {
            prompt.push_str(&format!("- {}\n", image.display()));
        }
    }
    write_file(&prompt_file, &prompt)?;
    let inv = Invocation {
        run: &id,
        agent: &agent.name,
        task: &plan.task,
        task_file: &task_file,
        prompt: &prompt,
        prompt_file: &prompt_file,
        worktree: &wt,
        base: &base,
    };
    let ended = match &agent.kind {
        Kind::Command(argv) => {
            let argv = inv.expand(argv);
            let env = agent_env(agent, &inv, Vec::new());
            let session =
                run_session(shared, agent, &argv, &wt, env, agent.timeout, None, &cancel).await?;
            Ended {
                session,
                report: None,
                nudges: 0,
                asked: false,
            }
        }
        Kind::Cli(cli) => run_cli(shared, plan, agent, cli, &inv, &cancel).await?,
    };
    let Ended {
        session,
        report,
        nudges,
        asked,
    } = ended;
    let (status, exit_code, mut error, elapsed) = match &session {
        Ok(f) => {
            let cli_failed = report.as_ref().and_then(|r| r.ok) == Some(false);
            let status = if f.cancelled {
                Status::Failed
            } else if f.timed_out {
                Status::Timeout
            } else if f.success() && !cli_failed {
                Status::Done
            } else {
                Status::Failed
            };
            let error = (status != Status::Done).then(|| f.describe());
            (status, f.exit_code, error, f.duration)
        }
        Err(e) => (Status::Failed, None, Some(e.clone()), Duration::ZERO),
    };
    if status == Status::Timeout
        && let Some(retry) = report.as_ref().and_then(|r| r.last_retry.clone())
        && let Some(how) = &error
    {
        error = Some(format!("{how}; it was retrying ({retry})"));
    }
    // The CLI's own words for what went wrong come first: they say what to fix.
    if status != Status::Done
        && let Some(said) = report.as_ref().and_then(|r| r.error.clone())
        && let Some(how) = &error
        && !how.contains(&said)
    {
        error = Some(format!("{said} ({how})"));
    }
    (shared.report)(Event::AgentFinished {
        agent: agent.name.clone(),
        how: match &session {
            Ok(f) if status == Status::Done => f.describe(),
            _ => error.clone().unwrap_or_default(),
        },
        elapsed,
    });
    shared.update_candidate(&agent.name, |c| {
        c.pgid = None;
        c.exit_code = exit_code;
        c.duration_ms = elapsed.as_millis() as u64;
        c.error = error.clone();
        c.nudges = nudges;
        c.asked_for_input = asked;
        if let Some(r) = &report {
            c.nudges += r.nudged;
            c.asked_for_input |= r.nudged > 0;
            c.retries = r.retries;
            c.rate_limit_waits = r.waits;
            c.usage = Some(r.usage.clone());
            c.turns = r.turns;
            c.final_message = r.final_message.clone();
            c.session_id = r.session_id.clone();
        }
    })?;
    if *cancel.borrow() {
        return Ok(());
    }

    // Snapshot whatever the agent left, whatever its exit status, so nothing is lost.
    let repo = shared.repo.clone();
    let branch = layout::branch_ref(&id, &agent.name);
    let message = snapshot_message(&agent.name, &id, &plan.task);
    let keep = plan.keep;
    let base = plan.base;
    let wt2 = wt.clone();
    let snap = tokio::task::spawn_blocking(move || {
        let snap = git::snapshot::snapshot(&repo, &wt2, &branch, base, &message, keep)?;
        let rendered = git::diff::render(&repo, base, snap.commit)?;
        Ok::<_, git::GitError>((snap, rendered))
    })
    .await
    .expect("snapshot does not panic");

    match snap {
        Ok((snap, rendered)) => {
            let warnings = snap.warnings.clone();
            let status = match status {
                Status::Done if !snap.changed => Status::NoChange,
                other => other,
            };
            let patch_path = shared.dir.patch(&agent.name);
            std::fs::write(&patch_path, &rendered.patch)
                .map_err(RunError::io("cannot write", patch_path))?;
            if snap.changed {
                shared
                    .changed_lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(agent.name.clone(), rendered.changed_lines.clone());
            }
            for w in &warnings {
                (shared.report)(Event::Warning(format!("{}: {w}", agent.name)));
            }
            shared.update_candidate(&agent.name, |c| {
                c.status = status;
                c.commit = Some(snap.commit.to_string());
                c.files_changed = rendered.stat.files;
                c.insertions = rendered.stat.insertions;
                c.deletions = rendered.stat.deletions;
                c.warnings.extend(warnings);
            })?;
            (shared.report)(Event::Snapshotted {
                agent: agent.name.clone(),
                status,
                files: rendered.stat.files,
                insertions: rendered.stat.insertions,
                deletions: rendered.stat.deletions,
            });
        }
        Err(e) => {
            let msg = format!("snapshot failed: {e}");
            (shared.report)(Event::Warning(format!("{}: {msg}", agent.name)));
            shared.update_candidate(&agent.name, |c| {
                c.status = Status::Failed;
                c.error = Some(msg);
            })?;
        }
    }
    Ok(())
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), RunError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(RunError::io("cannot create", dir))?;
    }
    std::fs::write(path, text).map_err(RunError::io("cannot write", path))
}

fn snapshot_message(agent: &str, run: &str, task: &str) -> String {
    let first: String = task.lines().next().unwrap_or("").chars().take(72).collect();
    format!("massgen: {agent} candidate for run {run}\n\nTask: {first}\n")
}

async fn run_tests(
    shared: &Arc<Shared>,
    agent: &str,
    wt: &std::path::Path,
    test: &str,
    timeout: Duration,
    cancel: watch::Receiver<bool>,
) -> Result<(), RunError> {
    if *cancel.borrow() {
        return Ok(());
    }
    (shared.report)(Event::TestsStarted {
        agent: agent.into(),
    });
    let log = shared.dir.test_log(agent);
    let out = std::fs::File::create(&log).map_err(RunError::io("cannot create log", &log))?;
    let err = out
        .try_clone()
        .map_err(RunError::io("cannot create log", &log))?;
    let argv = vec!["sh".to_owned(), "-c".to_owned(), test.to_owned()];
    let job = Job {
        argv: &argv,
        cwd: wt,
        env: vec![
            ("MASSGEN_RUN".into(), shared.dir.id.clone()),
            ("MASSGEN_AGENT".into(), agent.into()),
            ("MASSGEN_WORKTREE".into(), wt.display().to_string()),
            ("MASSGEN_ACTIVE".into(), "1".into()),
        ],
        env_remove: GIT_REPO_ENV,
        stdout: out,
        stderr: err,
        timeout,
        watch: None,
    };
    let finished = process::supervise(job, cancel, |_| {})
        .await
        .map_err(RunError::io("cannot run the test command in", wt))?;
    if finished.cancelled {
        return Ok(());
    }
    let output = read_tail(&log, 8 * 1024 * 1024);
    let counts = score::tests::parse_counts(&output);
    let result = TestResult {
        passed: counts.map(|c| c.0),
        failed: counts.map(|c| c.1),
        exit_code: finished.exit_code,
        timed_out: finished.timed_out,
        duration_ms: finished.duration.as_millis() as u64,
    };
    let summary = match counts {
        Some((p, f)) => format!("{p} passed, {f} failed ({})", finished.describe()),
        None => finished.describe(),
    };
    (shared.report)(Event::TestsFinished {
        agent: agent.into(),
        summary,
    });
    shared.update_candidate(agent, |c| c.tests = Some(result))
}

/// The last `limit` bytes of a file, as text (summaries come at the end).
fn read_tail(path: &std::path::Path, limit: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > limit {
        let _ = f.seek(SeekFrom::Start(len - limit));
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

async fn remove_worktrees(shared: &Arc<Shared>) -> Result<(), RunError> {
    let mut state = shared.snapshot_state();
    let repo = shared.repo.clone();
    let (state, errors) = tokio::task::spawn_blocking(move || {
        let errors = discard_worktrees(&repo, &mut state);
        (state, errors)
    })
    .await
    .expect("worktree removal does not panic");
    for e in errors {
        (shared.report)(Event::Warning(format!("cannot remove worktree: {e}")));
    }
    shared.update(|s| {
        for (c, after) in s.candidates.iter_mut().zip(&state.candidates) {
            c.worktree = after.worktree.clone();
        }
    })
}

/// Detaches a run's worktrees (renamed into the trash, registrations removed) and starts
/// deleting their files in the background. Returns the errors, one line per worktree.
pub fn discard_worktrees(repo: &Repo, state: &mut RunState) -> Vec<String> {
    let repo_root = state
        .worktree_root
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| state.worktree_root.clone());
    let trash = super::trash::dir(&repo_root);
    let mut errors = Vec::new();
    for c in &mut state.candidates {
        if let Some(wt) = &c.worktree {
            match git::worktree::discard(repo, wt, &trash) {
                Ok(()) => c.worktree = None,
                Err(e) => errors.push(format!("{}: {e}", c.agent)),
            }
        }
    }
    let _ = std::fs::remove_dir(&state.worktree_root);
    super::trash::purge_in_background(&trash);
    errors
}
