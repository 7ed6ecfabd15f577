//! Refinement rounds: the ballot of peers' candidates, and what each agent is given to see
//! them (`MASSGEN_PEERS`, one patch file per label, the round prompt, a vote file).

use std::sync::Arc;

use super::RunError;
use super::attempt::{Ask, Seen};
use super::context::{Plan, Shared};
use super::state::Status;
use crate::agent::{AgentSpec, prompt};
use crate::judge::{Ballot, Entry};

/// Every candidate of the turn's agents that finished with a change, as peers see them.
pub(super) async fn peer_ballot(
    shared: &Arc<Shared>,
    plan: &Plan,
    names: &[String],
) -> Result<Ballot, RunError> {
    let state = shared.snapshot_state();
    let mut entries = Vec::new();
    for c in &state.candidates {
        if c.status != Status::Done || !names.contains(&c.agent) {
            continue;
        }
        let Some(commit) = &c.commit else { continue };
        let r = shared.rendered(commit, plan.base).await?;
        entries.push(Entry {
            agent: c.agent.clone(),
            patch: r.patch.clone(),
            files: r.paths.clone(),
            insertions: r.stat.insertions,
            deletions: r.stat.deletions,
            tests: c.tests.clone(),
        });
    }
    Ok(Ballot {
        task: state.task_for_judges(),
        entries,
        diff_budget: plan.judging.diff_budget,
    })
}

/// What an agent is asked in a refinement round: the peers' candidates under labels of
/// its own (its own marked), written as `MASSGEN_PEERS` with one patch file per label, and
/// a file where it may write its vote.
pub(super) fn refinement(
    shared: &Arc<Shared>,
    plan: &Plan,
    agent: &AgentSpec,
    wt: &str,
    ballot: Arc<Ballot>,
    turn: u32,
    round: u32,
) -> Result<Ask, RunError> {
    let dir = shared
        .dir
        .dir
        .join("rounds")
        .join(format!("t{turn}r{round}"))
        .join(&agent.name);
    std::fs::create_dir_all(&dir).map_err(RunError::io("cannot create", &dir))?;
    let seed = format!("{}/{turn}/{round}/agent:{}", shared.dir.id, agent.name);
    let view = ballot.anonymize(&seed, Some(&agent.name));
    let mut peers = Vec::new();
    for (label, i) in &view.labels {
        let e = &ballot.entries[*i];
        let patch = dir.join(format!("{label}.patch"));
        std::fs::write(&patch, &e.patch).map_err(RunError::io("cannot write", &patch))?;
        let mut shown = view.json["candidates"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["label"] == label.as_str()))
            .cloned()
            .unwrap_or_default();
        shown["patch"] = serde_json::Value::String(patch.display().to_string());
        if let Some(o) = shown.as_object_mut() {
            o.remove("patch_cut");
        }
        peers.push(shown);
    }
    let yours = view.label_of(&ballot, &agent.name).map(str::to_owned);
    let peers_file = dir.join("peers.json");
    let vote_file = dir.join("vote.json");
    let _ = std::fs::remove_file(&vote_file);
    let doc = serde_json::json!({
        "task": ballot.task,
        "turn": turn,
        "round": round,
        "yours": yours,
        "vote_file": vote_file,
        "candidates": peers,
    });
    std::fs::write(
        &peers_file,
        serde_json::to_vec_pretty(&doc).expect("peers serialize"),
    )
    .map_err(RunError::io("cannot write", &peers_file))?;
    let prompt = crate::agent::fill(
        &plan.round_template,
        &[
            ("task", &ballot.task),
            ("candidates", &view.text),
            ("labels", &view.label_list()),
            (
                "yours",
                yours
                    .as_deref()
                    .unwrap_or("none (yours did not finish with a change)"),
            ),
            ("vote_file", &vote_file.display().to_string()),
            ("worktree", wt),
            ("round", &round.to_string()),
            ("test_rule", &prompt::test_rule(plan.test.as_deref())),
        ],
    );
    Ok(Ask {
        turn,
        round,
        prompt,
        resume: true,
        env: vec![
            ("MASSGEN_TURN".into(), turn.to_string()),
            ("MASSGEN_ROUND".into(), round.to_string()),
            ("MASSGEN_PEERS".into(), peers_file.display().to_string()),
            ("MASSGEN_VOTE".into(), vote_file.display().to_string()),
        ],
        ballot: Some(Seen {
            ballot,
            view,
            vote_file,
        }),
    })
}
