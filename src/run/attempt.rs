//! One agent in one round: its session (a fresh one, or its CLI session continued with a
//! follow-up), the snapshot of what it left, and what it did: worked, revised its candidate,
//! voted for one, stopped, or failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::RunError;
use super::context::{Event, Plan, Shared};
use super::layout;
use super::session::{Ended, agent_env, run_cli, run_session};
use super::state::{Action, RoundEntry, Status, Vote, Voter};
use crate::agent::{AgentSpec, Invocation, Kind};
use crate::git;
use crate::judge::{Ballot, View};

/// What one agent is asked in one round.
pub(super) struct Ask {
    pub turn: u32,
    pub round: u32,
    /// The whole prompt of a fresh session; also the follow-up of a continued one.
    pub prompt: String,
    /// Continue the CLI's own session when it has one.
    pub resume: bool,
    /// `MASSGEN_ROUND`, `MASSGEN_PEERS`, `MASSGEN_VOTE`, ...
    pub env: Vec<(String, String)>,
    /// In a refinement round: where the agent may write its vote, and the labels it saw.
    pub ballot: Option<Seen>,
}

/// The peers an agent saw, to read its vote against.
pub(super) struct Seen {
    pub ballot: Arc<Ballot>,
    pub view: View,
    pub vote_file: PathBuf,
}

/// Records that `agent` failed in this round before it could leave a candidate (`error` says
/// why, also shown as a warning); `mark` says what became of its worktree.
fn failed(
    shared: &Shared,
    agent: &str,
    ask: &Ask,
    before: Option<String>,
    error: String,
    mark: impl FnOnce(&mut crate::model::Candidate),
) -> Result<(), RunError> {
    (shared.report)(Event::Warning(format!("{agent}: {error}")));
    shared.update_candidate(agent, |c| {
        c.status = Status::Failed;
        c.error = Some(error);
        mark(c);
        c.history.push(RoundEntry {
            turn: ask.turn,
            round: ask.round,
            action: Action::Failed,
            commit: before,
        });
    })
}

/// Runs the agent, snapshots its worktree, and records what it did.
pub(super) async fn run_agent(
    shared: &Arc<Shared>,
    plan: &Plan,
    agent: &AgentSpec,
    ask: Ask,
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
    let before = cand.commit.clone();
    let status_before = cand.status;
    // A fresh worktree is made ready first: the ignored files it should have, then the
    // setup commands; if that fails, its agent never starts.
    let needs_setup = !plan.setup.is_empty()
        || !agent.setup.is_empty()
        || !plan.include.is_empty()
        || !plan.share.is_empty();
    if needs_setup && !cand.set_up {
        let ready = super::setup::prepare(shared, plan, agent, &wt, &cancel).await?;
        match ready {
            Ok(()) => shared.update_candidate(&agent.name, |c| c.set_up = true)?,
            Err(why) => {
                // Nothing of an agent is in its worktree.
                return failed(
                    shared,
                    &agent.name,
                    &ask,
                    before,
                    format!("setup failed: {why}"),
                    |c| {
                        c.saved = true;
                    },
                );
            }
        }
    }
    shared.update_candidate(&agent.name, |c| {
        c.status = Status::Running;
        c.saved = false;
    })?;
    (shared.report)(Event::AgentStarted {
        agent: agent.name.clone(),
    });

    let task_file = shared.dir.task_file();
    let prompt_file = shared.dir.prompt_file(&agent.name);
    let base = plan.base.to_string();
    write_file(&prompt_file, &ask.prompt)?;
    let inv = Invocation {
        run: &id,
        agent: &agent.name,
        task: &plan.task,
        task_file: &task_file,
        prompt: &ask.prompt,
        prompt_file: &prompt_file,
        worktree: &wt,
        base: &base,
    };
    let mut extra_env = ask.env.clone();
    extra_env.extend(shared.worktree_env(&agent.name, &wt));
    let ended = match &agent.kind {
        Kind::Command(argv) => {
            let argv = inv.expand(argv);
            let env = agent_env(agent, &inv, extra_env.clone());
            let session =
                run_session(shared, agent, &argv, &wt, env, agent.timeout, None, &cancel).await?;
            Ended {
                session,
                report: None,
                nudges: 0,
                asked: false,
            }
        }
        Kind::Cli(cli) => {
            let resume = cand.session_id.clone().filter(|_| ask.resume);
            run_cli(
                shared,
                plan,
                agent,
                cli,
                &inv,
                resume,
                extra_env.clone(),
                &cancel,
            )
            .await?
        }
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
    let denied = if shared.sandbox.is_some() {
        ["stdout", "stderr"]
            .iter()
            .map(|s| super::confine::denials(&shared.dir.agent_log(&agent.name, s)))
            .sum()
    } else {
        0
    };
    shared.update_candidate(&agent.name, |c| {
        c.pgid = None;
        c.denied = denied;
        c.exit_code = exit_code;
        c.duration_ms += elapsed.as_millis() as u64;
        c.error = error.clone();
        c.nudges += nudges;
        c.asked_for_input |= asked;
        if let Some(r) = &report {
            c.nudges += r.nudged;
            c.truncated += r.truncated;
            c.asked_for_input |= r.nudged > 0;
            c.retries += r.retries;
            c.rate_limit_waits += r.waits;
            // An agent that reported no usage has none known: not 0/0.
            if r.has_usage {
                c.usage.get_or_insert_with(Default::default).add(&r.usage);
            }
            c.turns = match (c.turns, r.turns) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            c.final_message = r.final_message.clone();
            if r.session_id.is_some() {
                c.session_id = r.session_id.clone();
            }
        }
    })?;
    if *cancel.borrow() {
        return Ok(());
    }
    let final_message = report.as_ref().and_then(|r| r.final_message.clone());

    // Snapshot whatever the agent left, whatever its exit status, so nothing is lost.
    let repo = shared.repo.clone();
    let branch = layout::branch_ref(&id, &agent.name);
    let message = snapshot_message(&agent.name, &id, &plan.task, ask.turn, ask.round);
    // Later rounds and turns work on in the same worktree: its index must match the new
    // candidate commit.
    let works_on = plan.rounds > 1 || ask.turn > 1;
    let keep = plan.keep || works_on;
    let base = plan.base;
    let wt2 = wt.clone();
    let overlay = shared.overlay_of(&wt);
    let snap = tokio::task::spawn_blocking(move || {
        let snap = match overlay {
            // A copy-on-write worktree's work is all in its overlay's upper directory.
            Some(o) => {
                let inside = || super::overlay::tree_inside(&repo, &o.lower, &wt2);
                let snap = git::snapshot::snapshot_overlay(
                    &repo, &o.lower, &o.upper, &branch, base, &message, &inside,
                )?;
                // A kept one is checked out at the end anyway.
                if works_on {
                    super::overlay::sync_index(&o.lower, &wt2, &branch)?;
                }
                snap
            }
            None => git::snapshot::snapshot(&repo, &wt2, &branch, base, &message, keep)?,
        };
        let rendered = git::diff::render(&repo, base, snap.commit)?;
        Ok::<_, git::GitError>((snap, rendered))
    })
    .await
    .expect("snapshot does not panic");

    let (snap, rendered) = match snap {
        Ok(done) => done,
        Err(e) => {
            // Its work is only in its worktree, which is kept.
            let error = format!("snapshot failed: {}", e.with_causes());
            return failed(shared, &agent.name, &ask, before, error, |c| {
                c.unsaved = true
            });
        }
    };
    let commit = snap.commit.to_string();
    let changed_now = before.as_deref() != Some(commit.as_str());
    let refining = ask.ballot.is_some();
    let vote = match (&ask.ballot, status) {
        (Some(seen), Status::Done) if !changed_now => read_vote(seen, final_message.as_deref()),
        _ => Ok(None),
    };
    let (action, status) = match (status, refining) {
        (Status::Done, false) => (Action::Worked, status_of(snap.changed)),
        (Status::Done, true) if changed_now => (Action::Revised, status_of(snap.changed)),
        (Status::Done, true) => match &vote {
            Ok(Some(_)) => (Action::Voted, status_before),
            _ => (Action::Stopped, status_before),
        },
        // A failed refinement that changed nothing leaves the earlier candidate standing.
        (_, true) if !changed_now => (Action::Failed, status_before),
        (failed, _) => (Action::Failed, failed),
    };
    if let Err(why) = &vote {
        (shared.report)(Event::Warning(format!(
            "{}: its vote was not counted: {why}",
            agent.name
        )));
    }
    let patch_path = shared.dir.patch(&agent.name);
    std::fs::write(&patch_path, &rendered.patch)
        .map_err(RunError::io("cannot write", patch_path))?;
    shared.remember(&commit, rendered.clone());
    for w in &snap.warnings {
        (shared.report)(Event::Warning(format!("{}: {w}", agent.name)));
    }
    let voted = vote.ok().flatten();
    if let Some((candidate, reason)) = &voted {
        (shared.report)(Event::Voted {
            voter: agent.name.clone(),
            by: Voter::Agent,
            candidate: candidate.clone(),
            reason: reason.clone(),
        });
    }
    shared.update(|s| {
        if let Some((candidate, reason)) = &voted {
            s.votes.push(Vote {
                judge: agent.name.clone(),
                by: Voter::Agent,
                candidate: candidate.clone(),
                reason: reason.clone(),
                turn: ask.turn,
                round: ask.round,
            });
        }
        let Some(c) = s.candidate_mut(&agent.name) else {
            return;
        };
        c.status = status;
        c.commit = Some(commit.clone());
        c.saved = true;
        c.unsaved = false;
        c.files_changed = rendered.stat.files;
        c.insertions = rendered.stat.insertions;
        c.deletions = rendered.stat.deletions;
        c.deleted = rendered.deleted.clone();
        c.warnings.extend(snap.warnings.iter().cloned());
        if changed_now {
            c.tests = None;
        }
        if matches!(action, Action::Voted | Action::Stopped) {
            // Its candidate still stands: the session's "failure" fields do not apply.
            c.error = None;
        }
        c.history.push(RoundEntry {
            turn: ask.turn,
            round: ask.round,
            action,
            commit: Some(commit.clone()),
        });
    })?;
    (shared.report)(Event::Snapshotted {
        agent: agent.name.clone(),
        status,
        action,
        files: rendered.stat.files,
        insertions: rendered.stat.insertions,
        deletions: rendered.stat.deletions,
    });
    Ok(())
}

fn status_of(changed: bool) -> Status {
    if changed {
        Status::Done
    } else {
        Status::NoChange
    }
}

/// The vote an agent wrote to its vote file, or else a `VOTE: <label>` line of its final
/// message; an unknown label is an error, no vote at all is `None`.
fn read_vote(seen: &Seen, final_message: Option<&str>) -> Result<Option<(String, String)>, String> {
    if let Ok(text) = std::fs::read_to_string(&seen.vote_file) {
        let value: serde_json::Value = serde_json::from_str(text.trim())
            .map_err(|e| format!("{} is not JSON: {e}", seen.vote_file.display()))?;
        return crate::judge::check_vote(&seen.view, &seen.ballot, &value).map(Some);
    }
    let Some(message) = final_message else {
        return Ok(None);
    };
    let re = regex::Regex::new(r"(?im)^[\s*>`_#-]*vote\s*:\s*(?:candidate\s+)?\**((?-i:[A-Z]{1,2}))\b\**[\s:.,;)\-–—]*(.*)$")
        .expect("the vote pattern compiles");
    let Some(found) = re.captures_iter(message).last() else {
        return Ok(None);
    };
    let label = &found[1];
    let mut reason = found[2].trim().to_owned();
    if reason.is_empty() {
        reason = message
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !re.is_match(l))
            .unwrap_or("no reason given")
            .to_owned();
    }
    let value = serde_json::json!({ "vote": label, "reason": reason });
    crate::judge::check_vote(&seen.view, &seen.ballot, &value).map(Some)
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), RunError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(RunError::io("cannot create", dir))?;
    }
    std::fs::write(path, text).map_err(RunError::io("cannot write", path))
}

fn snapshot_message(agent: &str, run: &str, task: &str, turn: u32, round: u32) -> String {
    let first: String = task.lines().next().unwrap_or("").chars().take(72).collect();
    let when = if (turn, round) == (1, 1) {
        String::new()
    } else {
        format!(" (turn {turn}, round {round})")
    };
    format!("massgen: {agent} candidate for run {run}{when}\n\nTask: {first}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Entry;

    fn seen(dir: &std::path::Path) -> Seen {
        let ballot = Arc::new(Ballot {
            task: "t".into(),
            entries: ["a", "b"]
                .iter()
                .map(|a| Entry {
                    agent: (*a).into(),
                    patch: String::new(),
                    files: vec![],
                    insertions: 0,
                    deletions: 0,
                    tests: None,
                })
                .collect(),
            diff_budget: 100,
        });
        let view = ballot.anonymize("seed", Some("a"));
        Seen {
            ballot,
            view,
            vote_file: dir.join("vote.json"),
        }
    }

    #[test]
    fn votes_come_from_the_file_or_the_last_vote_line() {
        let dir = tempfile::tempdir().unwrap();
        let s = seen(dir.path());
        let b_label = s.view.label_of(&s.ballot, "b").unwrap().to_owned();
        assert_eq!(read_vote(&s, Some("All good.")).unwrap(), None);
        let msg = format!("Looked at both.\n\n**VOTE: {b_label}** - it handles the edge case");
        assert_eq!(
            read_vote(&s, Some(&msg)).unwrap(),
            Some(("b".into(), "it handles the edge case".into()))
        );
        let msg = format!("I keep mine.\nvote: {b_label}");
        assert_eq!(
            read_vote(&s, Some(&msg)).unwrap().unwrap().1,
            "I keep mine."
        );
        assert!(read_vote(&s, Some("VOTE: Q")).is_err());
        std::fs::write(
            &s.vote_file,
            format!("{{\"vote\": \"{b_label}\", \"reason\": \"tests pass\"}}"),
        )
        .unwrap();
        assert_eq!(
            read_vote(&s, None).unwrap(),
            Some(("b".into(), "tests pass".into()))
        );
    }
}
