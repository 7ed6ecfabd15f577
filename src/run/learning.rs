//! What a run teaches `crate::learn`: after every scored run (a plan's tasks included), one
//! record per candidate, counted under the task's kind; after a winner is merged, the
//! merge, watched in history from then on (`learn::history`). A run is recorded once,
//! however often it is asked (a run continued with a new turn is the same run).

use serde::Serialize;

use super::state::{Phase, RunState};
use crate::git::{ObjectId, Repo};
use crate::learn::features::Kind;
use crate::learn::store::{self, LearnError};
use crate::learn::{Fate, Merged};
use crate::model::Status;

/// One candidate's outcome, as kept in `records/<machine>/<run>.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub agent: String,
    pub kind: String,
    pub won: bool,
    /// Share of its tests that passed, when counted.
    pub tests_share: Option<f64>,
    pub votes: u32,
    pub cost_usd: Option<f64>,
    pub duration_ms: u64,
    pub status: &'static str,
}

/// What a run is recorded as: its kind and a record per candidate that counts (one whose
/// worktree could not be made ready is not the agent's doing, nor one that never ran).
pub fn records(repo: &Repo, state: &RunState) -> (Kind, Vec<Record>) {
    let kind = kind_of(repo, state);
    let key = kind.key();
    let records = state
        .candidates
        .iter()
        .filter(|c| !matches!(c.status, Status::Pending | Status::Running))
        .filter(|c| {
            !c.error
                .as_deref()
                .is_some_and(|e| e.starts_with("setup failed"))
        })
        .map(|c| Record {
            agent: c.agent.clone(),
            kind: key.clone(),
            won: state.winner.as_deref() == Some(c.agent.as_str()),
            tests_share: c.tests.as_ref().and_then(|t| {
                let total = t.passed? + t.failed.unwrap_or(0) + t.errors.unwrap_or(0);
                (total > 0).then(|| t.passed.unwrap_or(0) as f64 / total as f64)
            }),
            votes: c.votes,
            cost_usd: c.usage.as_ref().and_then(|u| u.cost_usd),
            duration_ms: c.duration_ms,
            status: c.status.as_str(),
        })
        .collect();
    (kind, records)
}

/// The kind of a run's task: its words, and the files its candidates changed.
pub fn kind_of(repo: &Repo, state: &RunState) -> Kind {
    let mut paths = Vec::new();
    if let Ok(base) = super::state::commit_id(&state.base)
        && let Ok(base_tree) = repo.tree_of(base)
    {
        for c in &state.candidates {
            let Some(commit) = c.commit.as_deref() else {
                continue;
            };
            let Some(tree) = super::state::commit_id(commit)
                .ok()
                .and_then(|id| repo.tree_of(id).ok())
            else {
                continue;
            };
            if let Ok(changes) = crate::git::diff::tree_changes(repo, base_tree, tree) {
                paths.extend(changes.into_iter().map(|ch| ch.path));
            }
        }
    }
    paths.sort();
    paths.dedup();
    Kind::of(&state.task, &paths)
}

/// Records a scored run: each candidate's counters under the task's kind, and whether
/// rounds changed the outcome. Nothing when the run is not scored or was recorded.
pub fn record_run(repo: &Repo, state: &RunState) -> Result<(), LearnError> {
    if !matches!(state.effective_phase(), Phase::Scored | Phase::Merged) {
        return Ok(());
    }
    let (kind, records) = records(repo, state);
    if records.is_empty() {
        return Ok(());
    }
    let machine = store::machine_id(repo)?;
    let file = format!("records/{machine}/{}.json", state.run);
    let bytes = serde_json::to_vec_pretty(&serde_json::json!({
        "run": state.run, "kind": kind, "winner": state.winner, "rounds": state.rounds,
        "candidates": records,
    }))
    .expect("records serialize");
    let key = kind.key();
    let revised_won = state
        .winner
        .as_deref()
        .and_then(|w| state.candidate(w))
        .is_some_and(|c| {
            c.history
                .iter()
                .any(|h| h.action == crate::model::Action::Revised)
        });
    store::update(
        repo,
        &format!("massgen: learned from run {}", state.run),
        |m| {
            if m.recorded.contains(&state.run) {
                return Vec::new();
            }
            m.recorded.push(state.run.clone());
            for r in &records {
                let c = m.counts_mut(&r.agent, &key);
                c.runs += 1;
                c.wins += u64::from(r.won);
                if let Some(share) = r.tests_share {
                    c.tests_share += share;
                    c.tests_known += 1;
                }
                c.votes += u64::from(r.votes);
                if let Some(usd) = r.cost_usd {
                    c.cost_usd += usd;
                    c.cost_known += 1;
                }
                c.duration_ms += r.duration_ms;
            }
            if state.rounds > 1 {
                let k = m.kinds.entry(key.clone()).or_default();
                k.rounds_runs += 1;
                k.revised_won += u64::from(revised_won);
            }
            vec![(file.clone(), bytes.clone())]
        },
    )
}

/// Records that `agent`'s candidate (the winner, or the one the user chose) was merged as
/// `landing` (the commit the merge left on the user's branch): its `merged`, whether the
/// judges had favoured it, and the merge watched in history from now on.
pub fn record_merge(
    repo: &Repo,
    state: &RunState,
    agent: &str,
    landing: ObjectId,
) -> Result<(), LearnError> {
    let winner = agent.to_owned();
    let Some(candidate) = state.candidate(&winner).and_then(|c| c.commit.clone()) else {
        return Ok(());
    };
    let key = kind_of(repo, state).key();
    // The judges' favourite: the most votes of judges, if they voted.
    let judged: Vec<&str> = state
        .votes
        .iter()
        .filter(|v| v.by == crate::model::Voter::Judge)
        .map(|v| v.candidate.as_str())
        .collect();
    let favourite = judged
        .iter()
        .max_by_key(|c| judged.iter().filter(|x| x == c).count())
        .map(|c| (*c).to_owned());
    let landing = landing.to_string();
    store::update(
        repo,
        &format!("massgen: winner of run {} merged", state.run),
        |m| {
            if m.merged.iter().any(|x| x.commit == landing) {
                return Vec::new();
            }
            m.counts_mut(&winner, &key).merged += 1;
            if let Some(f) = &favourite {
                let k = m.kinds.entry(key.clone()).or_default();
                k.judged += 1;
                k.judges_agreed += u64::from(*f == winner);
            }
            m.merged.push(Merged {
                commit: landing.clone(),
                candidate: candidate.clone(),
                agent: winner.clone(),
                kind: key.clone(),
                run: state.run.clone(),
                fate: Fate::Pending,
                after: 0,
            });
            Vec::new()
        },
    )
}
