//! The conflict matrix of a plan: the winners of each wave merged with each other, and each
//! winner not yet integrated merged with the integration branch's tip, in memory (only
//! objects are written). It shows which tasks of a wave touch the same lines, before or
//! after one of them is blocked.

use serde::Serialize;

use super::state::{PlanState, TaskStatus};
use crate::git::{GitError, ObjectId, Repo};
use crate::run::conflicts::{Pair, conflicting_paths};

/// What [`matrix`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanConflicts {
    /// Pairs of winners of the same wave.
    pub pairs: Vec<Pair>,
    /// Winners not integrated yet, each against the integration branch's tip.
    pub against_integration: Vec<Pair>,
}

/// Merges, in memory, every pair of winners of one wave, and each winner not yet integrated
/// with the integration tip.
pub fn matrix(repo: &Repo, st: &PlanState) -> Result<PlanConflicts, GitError> {
    let id = |hex: &str| {
        ObjectId::from_hex(hex.as_bytes())
            .map_err(|e| GitError::Other(format!("bad commit id `{hex}` in plan state: {e}")))
    };
    let conflicts = |ours, theirs| conflicting_paths(repo, ours, theirs);
    let winners: Vec<(&str, usize, ObjectId, TaskStatus)> = st
        .tasks
        .iter()
        .filter_map(|t| Some((t.id.as_str(), t.wave, t.commit.as_deref()?, t.status)))
        .map(|(task, wave, hex, status)| Ok((task, wave, id(hex)?, status)))
        .collect::<Result<_, GitError>>()?;
    let mut out = PlanConflicts::default();
    for (i, (a, wave, ca, _)) in winners.iter().enumerate() {
        for (b, other_wave, cb, _) in &winners[i + 1..] {
            if wave == other_wave {
                out.pairs.push(Pair {
                    a: (*a).to_owned(),
                    b: (*b).to_owned(),
                    conflicts: conflicts(*ca, *cb)?,
                });
            }
        }
    }
    let tip = id(&st.integration_commit)?;
    for (task, _, commit, status) in &winners {
        if *status != TaskStatus::Done {
            out.against_integration.push(Pair {
                a: (*task).to_owned(),
                b: "integration".to_owned(),
                conflicts: conflicts(tip, *commit)?,
            });
        }
    }
    Ok(out)
}
