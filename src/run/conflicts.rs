//! The conflict matrix of a run: which candidates merge cleanly with each other and with
//! the current branch, found by merging every pair in memory (nothing outside the object
//! database is written). It tells a user which candidates can be merged together.

use serde::Serialize;

use super::RunError;
use super::state::{self, RunState};
use crate::git::{self, ObjectId, Repo};

/// One pair of candidates, or a candidate and the current branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair {
    pub a: String,
    pub b: String,
    /// The paths that conflict; empty when the two merge cleanly.
    pub conflicts: Vec<String>,
}

/// Every pair of a run's candidates that changed something, and each against HEAD.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub run: String,
    /// The candidates compared, in the run's order.
    pub candidates: Vec<String>,
    pub pairs: Vec<Pair>,
    /// What HEAD is: the branch's short name, or `HEAD` when detached.
    pub head: String,
    /// Each candidate against HEAD.
    pub against_head: Vec<Pair>,
}

impl Matrix {
    /// Candidates that merge cleanly with HEAD and with each other, chosen greedily in the
    /// run's ranking order (the winner first).
    pub fn together(&self, ranked: &[String]) -> Vec<String> {
        let clean = |a: &str, b: &str| {
            self.pairs
                .iter()
                .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
                .is_some_and(|p| p.conflicts.is_empty())
        };
        let mut chosen: Vec<String> = Vec::new();
        for c in ranked {
            let with_head = self
                .against_head
                .iter()
                .any(|p| &p.a == c && p.conflicts.is_empty());
            if with_head && chosen.iter().all(|o| clean(o, c)) {
                chosen.push(c.clone());
            }
        }
        chosen
    }
}

/// The paths that conflict when `theirs` is merged into `ours`, in memory; none when the two
/// merge cleanly.
pub fn conflicting_paths(
    repo: &Repo,
    ours: ObjectId,
    theirs: ObjectId,
) -> Result<Vec<String>, git::GitError> {
    let plan = git::merge::plan(repo, ours, theirs)?;
    Ok(plan.conflicts.into_iter().map(|c| c.path).collect())
}

/// Merges every pair of `state`'s candidates that changed something, and each with `head`
/// (named `head_name`), in memory.
pub fn matrix(
    repo: &Repo,
    state: &RunState,
    head: ObjectId,
    head_name: &str,
) -> Result<Matrix, RunError> {
    let base = state::commit_id(&state.base)?;
    let mut commits: Vec<(String, ObjectId)> = Vec::new();
    for c in &state.candidates {
        let Some(hex) = c.commit.as_deref() else {
            continue;
        };
        let commit = state::commit_id(hex)?;
        if repo.tree_of(commit)? != repo.tree_of(base)? {
            commits.push((c.agent.clone(), commit));
        }
    }
    let conflicts = |ours, theirs| conflicting_paths(repo, ours, theirs);
    let mut pairs = Vec::new();
    for (i, (a, ca)) in commits.iter().enumerate() {
        for (b, cb) in &commits[i + 1..] {
            pairs.push(Pair {
                a: a.clone(),
                b: b.clone(),
                conflicts: conflicts(*ca, *cb)?,
            });
        }
    }
    let against_head = commits
        .iter()
        .map(|(a, c)| {
            Ok(Pair {
                a: a.clone(),
                b: head_name.to_owned(),
                conflicts: conflicts(head, *c)?,
            })
        })
        .collect::<Result<_, RunError>>()?;
    Ok(Matrix {
        run: state.run.clone(),
        candidates: commits.into_iter().map(|(a, _)| a).collect(),
        pairs,
        head: head_name.to_owned(),
        against_head,
    })
}
