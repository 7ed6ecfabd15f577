//! Scoring a round: tests in the worktrees of changed candidates, agreement between the
//! candidates, judges' votes when tests cannot decide, and the ranking with its reason.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::RunError;
use super::context::{Event, Plan, Shared};
use super::executor::Unit;
use super::state::{Abstention, Phase, Status, Vote, Voter};
use crate::agent::events;
use crate::agent::process::{self, Job, leftovers};
use crate::git::cmd::GIT_REPO_ENV;
use crate::judge::{self, Ballot, Entry};
use crate::score;

/// Scores the candidates of `participants` after round `round` of the current turn:
/// tests for those whose commit changed (or that have no result yet), agreement, judges
/// when `judge_now`, then the ranking. Candidates outside `participants` keep their data
/// but are not ranked.
pub(super) async fn score_round(
    shared: &Arc<Shared>,
    plan: &Plan,
    participants: &[String],
    judge_now: bool,
    permits: &Arc<Semaphore>,
    cancel: &watch::Receiver<bool>,
) -> Result<(), RunError> {
    let previous = shared.snapshot_state().state;
    shared.update(|s| s.state = Phase::Scoring)?;
    let state = shared.snapshot_state();
    let takes_part = |agent: &str| participants.iter().any(|p| p == agent);
    // 1. Tests, in parallel, in the worktrees of candidates with a change.
    if let Some(test) = &plan.test {
        let mut tasks = tokio::task::JoinSet::new();
        let todo: Vec<(String, PathBuf)> = state
            .candidates
            .iter()
            .filter(|c| c.status == Status::Done && c.tests.is_none() && takes_part(&c.agent))
            .filter_map(|c| Some((c.agent.clone(), c.worktree.clone()?)))
            .collect();
        let any_tested = !todo.is_empty();
        for (agent, wt) in todo {
            let shared = shared.clone();
            let permits = permits.clone();
            let cancel = cancel.clone();
            let test = test.clone();
            let timeout = plan.test_timeout;
            // A worktree that will be worked in again is put back to its candidate, so
            // that what the tests wrote does not become part of the next snapshot.
            let restore = plan.rounds > 1 || plan.keep || state.turn() > 1;
            tasks.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                run_tests(&shared, &agent, &wt, &test, timeout, cancel).await?;
                if restore {
                    restore_worktree(&shared, &agent, &wt).await;
                }
                Ok::<(), RunError>(())
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("test task does not panic")?;
        }
        if *cancel.borrow() {
            return Err(RunError::Interrupted);
        }
        if any_tested {
            warn_if_collected_nowhere(shared, test, &takes_part)?;
        }
    }

    // 2. Diffs of the candidates that count, for agreement and for the judges.
    let state = shared.snapshot_state();
    let mut entries: Vec<Option<Entry>> = Vec::new();
    for c in &state.candidates {
        let entry = match (&c.commit, c.status == Status::Done && takes_part(&c.agent)) {
            (Some(commit), true) => {
                let rendered = shared.rendered(commit, plan.base).await?;
                Some(Entry {
                    agent: c.agent.clone(),
                    patch: rendered.patch.clone(),
                    files: rendered.paths.clone(),
                    insertions: rendered.stat.insertions,
                    deletions: rendered.stat.deletions,
                    tests: c.tests.clone(),
                })
            }
            _ => None,
        };
        entries.push(entry);
    }
    let lines: Vec<Option<String>> = state
        .candidates
        .iter()
        .zip(&entries)
        .map(|(c, e)| {
            e.as_ref()?;
            shared.cached_lines(c.commit.as_deref()?)
        })
        .collect();
    let changes: Vec<Option<&str>> = lines.iter().map(Option::as_deref).collect();
    let agreement = score::agreement::agreement(&changes);

    // 3. Judges, when tests leave more than one candidate at the top.
    if judge_now && !plan.judges.is_empty() {
        let ranked: Vec<_> = state
            .candidates
            .iter()
            .filter(|c| takes_part(&c.agent))
            .cloned()
            .collect();
        let contenders: Vec<Entry> = score::contenders(
            &ranked,
            plan.judging.when == crate::config::JudgeWhen::Always,
        )
        .into_iter()
        .filter_map(|i| {
            entries
                .iter()
                .flatten()
                .find(|e| e.agent == ranked[i].agent)
                .cloned()
        })
        .collect();
        if contenders.len() >= 2 {
            let ballot = Ballot {
                task: state.task_for_judges(),
                entries: contenders,
                diff_budget: plan.judging.diff_budget,
            };
            judge_all(shared, plan, ballot, cancel).await?;
        } else if !contenders.is_empty() {
            (shared.report)(Event::JudgesSkipped {
                why: "the tests leave one candidate at the top".into(),
            });
        }
    }

    // 4. The ranking.
    let weights = plan.weights;
    shared.update(|s| {
        for (c, a) in s.candidates.iter_mut().zip(&agreement) {
            c.agreement = *a;
        }
        let votes: Vec<Vote> = s.current_votes().into_iter().cloned().collect();
        let idx: Vec<usize> = (0..s.candidates.len())
            .filter(|&i| takes_part(&s.candidates[i].agent))
            .collect();
        let ranked: Vec<_> = idx.iter().map(|&i| s.candidates[i].clone()).collect();
        let counted: Vec<&Vote> = votes.iter().filter(|v| takes_part(&v.candidate)).collect();
        let ranking = score::rank(
            &ranked,
            &score::Policy {
                tests_configured: s.test_command.is_some(),
                weights,
                votes: &counted,
            },
        );
        for c in &mut s.candidates {
            c.rank = None;
            c.votes = counted.iter().filter(|v| v.candidate == c.agent).count() as u32;
        }
        for (pos, &i) in ranking.order.iter().enumerate() {
            s.candidates[idx[i]].rank = Some(pos + 1);
        }
        s.winner = ranking.winner.map(|i| ranked[i].agent.clone());
        s.reason = Some(ranking.reason);
        s.usage = s
            .candidates
            .iter()
            .filter_map(|c| c.usage.as_ref())
            .chain(s.judge_usage.as_ref())
            .fold(None, |total: Option<events::Usage>, u| {
                let mut total = total.unwrap_or_default();
                total.add(u);
                Some(total)
            });
        s.state = previous;
    })
}

/// Warns, once, when the test command could not collect a test in any candidate's
/// worktree: the command or what it needs is broken, which no candidate can be blamed for.
fn warn_if_collected_nowhere(
    shared: &Arc<Shared>,
    test: &str,
    takes_part: &dyn Fn(&str) -> bool,
) -> Result<(), RunError> {
    let state = shared.snapshot_state();
    let cands: Vec<_> = state
        .candidates
        .iter()
        .filter(|c| takes_part(&c.agent))
        .cloned()
        .collect();
    if !score::collected_nowhere(&cands) {
        return Ok(());
    }
    let first = cands
        .iter()
        .find(|c| c.tests.is_some())
        .expect("collected nowhere means some candidate was tested");
    let warning = format!(
        "the test command `{test}` could not collect any test in any candidate's worktree \
         (tests could not be collected): the test setup is broken, not the candidates' code; \
         see {} and fix [score] test",
        shared.dir.test_log(&first.agent).display()
    );
    if state.warnings.contains(&warning) {
        return Ok(());
    }
    (shared.report)(Event::Warning(warning.clone()));
    shared.update(|s| s.warnings.push(warning))
}

/// Puts a worktree back to its candidate commit: tracked files reset, untracked files that
/// are not ignored removed (the candidate commit holds everything the agent left), but for
/// the links to the user's shared directories.
async fn restore_worktree(shared: &Arc<Shared>, agent: &str, wt: &std::path::Path) {
    let wt = wt.to_owned();
    let repo = shared.repo.clone();
    // Inside its overlay for a copy-on-write worktree.
    let git = (shared.worktree_git(&wt), shared.worktree_git(&wt));
    let done = tokio::task::spawn_blocking(move || {
        let (mut reset, mut clean) = (git.0?, git.1?);
        reset.args(["reset", "-q", "--hard", "HEAD"]).run()?;
        let links = crate::git::worktree::registration(&repo, &wt)
            .map(|admin| crate::git::worktree::shared_links(&admin))
            .unwrap_or_default();
        clean.args(["clean", "-fdq"]);
        for link in links {
            clean.arg("-e").arg(format!("/{link}"));
        }
        clean.run()
    })
    .await
    .expect("restoring does not panic");
    if let Err(e) = done {
        (shared.report)(Event::Warning(format!(
            "{agent}: cannot put the worktree back after its tests: {e}"
        )));
    }
}

/// Asks every judge in parallel and records their votes and abstentions.
async fn judge_all(
    shared: &Arc<Shared>,
    plan: &Plan,
    ballot: Ballot,
    cancel: &watch::Receiver<bool>,
) -> Result<(), RunError> {
    let state = shared.snapshot_state();
    let (turn, round) = (state.turn(), state.rounds);
    (shared.report)(Event::JudgesStarted {
        judges: plan.judges.len(),
        candidates: ballot.entries.len(),
    });
    let setting = judge::Setting {
        run: shared.dir.id.clone(),
        turn,
        round,
        dir: shared.dir.dir.join("judges"),
        max_attempts: plan.judging.max_attempts,
        template: plan.judging.template.clone(),
        sandbox: shared
            .sandbox
            .as_ref()
            .map(|s| s.rules(Vec::new(), Vec::new())),
        remote: shared.executor.remote(Unit::Judge).then(|| {
            let shared = shared.clone();
            judge::Remote(Arc::new(move |name: &str| {
                shared.remote(name, Unit::Judge, Vec::new())
            }))
        }),
    };
    let ballot = Arc::new(ballot);
    let mut tasks = tokio::task::JoinSet::new();
    for judge in plan.judges.clone() {
        let (ballot, setting, cancel) = (ballot.clone(), setting.clone(), cancel.clone());
        tasks.spawn(async move { judge::ask(&judge, &ballot, &setting, cancel).await });
    }
    let mut verdicts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        verdicts.push(joined.expect("a judge does not panic"));
    }
    if *cancel.borrow() {
        return Err(RunError::Interrupted);
    }
    // Configuration order, whatever order they finished in.
    verdicts.sort_by_key(|v| plan.judges.iter().position(|j| j.name == v.judge));
    for v in &verdicts {
        for w in &v.warnings {
            (shared.report)(Event::Warning(format!("judge {}: {w}", v.judge)));
        }
        match (&v.vote, &v.abstained) {
            (Some((candidate, reason)), _) => (shared.report)(Event::Voted {
                voter: v.judge.clone(),
                by: Voter::Judge,
                candidate: candidate.clone(),
                reason: reason.clone(),
            }),
            (None, why) => (shared.report)(Event::Abstained {
                judge: v.judge.clone(),
                reason: why.clone().unwrap_or_default(),
            }),
        }
    }
    shared.update(|s| {
        for v in verdicts {
            s.warnings
                .extend(v.warnings.iter().map(|w| format!("judge {}: {w}", v.judge)));
            if let Some(u) = &v.usage {
                s.judge_usage.get_or_insert_with(Default::default).add(u);
            }
            match v.vote {
                Some((candidate, reason)) => s.votes.push(Vote {
                    judge: v.judge,
                    by: Voter::Judge,
                    candidate,
                    reason,
                    turn,
                    round,
                }),
                None => s.abstentions.push(Abstention {
                    judge: v.judge,
                    turn,
                    round,
                    reason: v.abstained.unwrap_or_default(),
                }),
            }
        }
    })
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
        env: shared.command_env(agent, wt),
        env_remove: GIT_REPO_ENV,
        stdout: out,
        stderr: err,
        timeout,
        watch: None,
        sandbox: shared.rules(agent, wt, &[]),
        remote: shared.remote(agent, super::executor::Unit::Test, Vec::new()),
    };
    let finished = process::supervise(job, cancel, |_| {})
        .await
        .map_err(RunError::io("cannot run the test command in", wt))?;
    if finished.cancelled {
        return Ok(());
    }
    let left = leftovers::describe(&finished.leftovers, "the test command");
    if let Some(note) = &left {
        (shared.report)(Event::Warning(format!("{agent}: {note}")));
    }
    let output = read_tail(&log, 8 * 1024 * 1024);
    let counts = score::test_output::parse_counts(&output);
    let result = score::test_output::test_result(
        counts,
        finished.exit_code,
        finished.timed_out,
        finished.duration.as_millis() as u64,
    );
    // Said after "tests": `4 passed, 0 failed (exited with code 0)`.
    let summary = match result.counts_words() {
        Some(words) if !result.timed_out => format!("{words} ({})", finished.describe()),
        _ => finished.describe(),
    };
    (shared.report)(Event::TestsFinished {
        agent: agent.into(),
        summary,
    });
    shared.update_candidate(agent, |c| {
        c.tests = Some(result);
        c.warnings.extend(left);
    })
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
