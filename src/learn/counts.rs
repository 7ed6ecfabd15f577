//! What is learned, as data: per machine, per agent and kind of task, grow-only counters
//! ([`Counts`]); per kind, whether coordination changed the outcome ([`Coordination`]);
//! the merged winners waiting for history to confirm or revert them ([`Merged`]). Each
//! machine only ever adds to its own counters, so two copies of the statistics merge by
//! taking, machine by machine, the larger of each counter: nothing is counted twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One agent on one kind of task, as one machine counted it. Every field only grows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Candidates of scored runs.
    pub runs: u64,
    /// Runs it won.
    pub wins: u64,
    /// Sum of the share of its tests that passed, over the runs whose tests were counted.
    pub tests_share: f64,
    pub tests_known: u64,
    /// Judges' votes it received.
    pub votes: u64,
    /// Dollars, over the runs whose cost is known.
    pub cost_usd: f64,
    pub cost_known: u64,
    pub duration_ms: u64,
    /// Its winners merged into the user's branch; of them, confirmed by history (they
    /// survived) and reverted (a loss).
    pub merged: u64,
    pub confirmed: u64,
    pub reverted: u64,
}

impl Counts {
    /// The sum of `counts`.
    pub fn sum<'a>(counts: impl IntoIterator<Item = &'a Counts>) -> Counts {
        let mut sum = Counts::default();
        for c in counts {
            sum.add(c);
        }
        sum
    }

    /// Wins that stand: a reverted winner is a loss.
    pub fn wins_kept(&self) -> u64 {
        self.wins.saturating_sub(self.reverted)
    }

    pub fn losses(&self) -> u64 {
        self.runs.saturating_sub(self.wins_kept())
    }

    /// Mean dollars per run, when any cost is known.
    pub fn mean_cost(&self) -> Option<f64> {
        (self.cost_known > 0).then(|| self.cost_usd / self.cost_known as f64)
    }

    /// Adds `other` (the totals of several machines).
    pub fn add(&mut self, o: &Counts) {
        self.runs += o.runs;
        self.wins += o.wins;
        self.tests_share += o.tests_share;
        self.tests_known += o.tests_known;
        self.votes += o.votes;
        self.cost_usd += o.cost_usd;
        self.cost_known += o.cost_known;
        self.duration_ms += o.duration_ms;
        self.merged += o.merged;
        self.confirmed += o.confirmed;
        self.reverted += o.reverted;
    }

    /// The larger of each counter: two copies of one machine's counters, merged.
    pub fn max_with(&mut self, o: &Counts) {
        self.runs = self.runs.max(o.runs);
        self.wins = self.wins.max(o.wins);
        self.tests_share = self.tests_share.max(o.tests_share);
        self.tests_known = self.tests_known.max(o.tests_known);
        self.votes = self.votes.max(o.votes);
        self.cost_usd = self.cost_usd.max(o.cost_usd);
        self.cost_known = self.cost_known.max(o.cost_known);
        self.duration_ms = self.duration_ms.max(o.duration_ms);
        self.merged = self.merged.max(o.merged);
        self.confirmed = self.confirmed.max(o.confirmed);
        self.reverted = self.reverted.max(o.reverted);
    }
}

/// Per kind of task: whether refinement rounds and judges changed the outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Coordination {
    /// Runs with more than one round, and of them those a revised candidate won.
    pub rounds_runs: u64,
    pub revised_won: u64,
    /// Runs judges voted in whose winner was merged, and of them those where the judges'
    /// favourite is what was kept.
    pub judged: u64,
    pub judges_agreed: u64,
}

impl Coordination {
    pub fn add(&mut self, o: &Coordination) {
        self.rounds_runs += o.rounds_runs;
        self.revised_won += o.revised_won;
        self.judged += o.judged;
        self.judges_agreed += o.judges_agreed;
    }

    pub fn max_with(&mut self, o: &Coordination) {
        self.rounds_runs = self.rounds_runs.max(o.rounds_runs);
        self.revised_won = self.revised_won.max(o.revised_won);
        self.judged = self.judged.max(o.judged);
        self.judges_agreed = self.judges_agreed.max(o.judges_agreed);
    }
}

/// Where a merged winner stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    Pending,
    Confirmed,
    Reverted,
}

/// A winner merged into the user's branch, watched in history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merged {
    /// The commit the merge left on the branch (the landing commit).
    pub commit: String,
    /// The winner's candidate commit.
    pub candidate: String,
    pub agent: String,
    pub kind: String,
    pub run: String,
    pub fate: Fate,
    /// Commits seen on top of it so far.
    #[serde(default)]
    pub after: u64,
}

/// Everything one machine learned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub machine: String,
    /// Agent → kind → counters.
    pub agents: BTreeMap<String, BTreeMap<String, Counts>>,
    /// Kind → coordination.
    pub kinds: BTreeMap<String, Coordination>,
    pub merged: Vec<Merged>,
    /// Runs already recorded (a run is recorded once, whoever asks again).
    pub recorded: Vec<String>,
}

impl Machine {
    pub fn counts_mut(&mut self, agent: &str, kind: &str) -> &mut Counts {
        self.agents
            .entry(agent.to_owned())
            .or_default()
            .entry(kind.to_owned())
            .or_default()
    }

    /// Two copies of one machine's learning: the larger of each counter, the union of the
    /// merged winners (the more decided fate of each) and of the runs recorded.
    pub fn max_with(&mut self, o: &Machine) {
        for (agent, kinds) in &o.agents {
            for (kind, c) in kinds {
                self.counts_mut(agent, kind).max_with(c);
            }
        }
        for (kind, c) in &o.kinds {
            self.kinds.entry(kind.clone()).or_default().max_with(c);
        }
        for m in &o.merged {
            match self.merged.iter_mut().find(|x| x.commit == m.commit) {
                Some(x) => {
                    x.fate = x.fate.max(m.fate);
                    x.after = x.after.max(m.after);
                }
                None => self.merged.push(m.clone()),
            }
        }
        for r in &o.recorded {
            if !self.recorded.contains(r) {
                self.recorded.push(r.clone());
            }
        }
    }
}

/// The learning of every machine, as the ref holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learning {
    pub machines: BTreeMap<String, Machine>,
}

impl Learning {
    /// Another copy merged in, without counting anything twice.
    pub fn merge(&mut self, other: &Learning) {
        for (id, m) in &other.machines {
            match self.machines.get_mut(id) {
                Some(mine) => mine.max_with(m),
                None => {
                    self.machines.insert(id.clone(), m.clone());
                }
            }
        }
    }

    /// Every machine's counters summed: agent → kind → counts.
    pub fn totals(&self) -> BTreeMap<String, BTreeMap<String, Counts>> {
        let mut out: BTreeMap<String, BTreeMap<String, Counts>> = BTreeMap::new();
        for m in self.machines.values() {
            for (agent, kinds) in &m.agents {
                for (kind, c) in kinds {
                    out.entry(agent.clone())
                        .or_default()
                        .entry(kind.clone())
                        .or_default()
                        .add(c);
                }
            }
        }
        out
    }

    /// Coordination per kind, summed over machines.
    pub fn coordination(&self, kind: &str) -> Coordination {
        let mut c = Coordination::default();
        for m in self.machines.values() {
            if let Some(k) = m.kinds.get(kind) {
                c.add(k);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(id: &str, runs: u64, wins: u64) -> Machine {
        let mut m = Machine {
            machine: id.into(),
            ..Default::default()
        };
        let c = m.counts_mut("claude", "fix:rust");
        c.runs = runs;
        c.wins = wins;
        m
    }

    #[test]
    fn merging_twice_or_both_ways_counts_nothing_twice() {
        let mut a = Learning::default();
        a.machines.insert("m1".into(), machine("m1", 5, 3));
        let mut b = Learning::default();
        // b has an older copy of m1 and its own m2.
        b.machines.insert("m1".into(), machine("m1", 4, 3));
        b.machines.insert("m2".into(), machine("m2", 2, 1));
        let mut ab = a.clone();
        ab.merge(&b);
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        let total = &ab.totals()["claude"]["fix:rust"];
        assert_eq!((total.runs, total.wins), (7, 4));
    }

    #[test]
    fn a_reverted_win_is_a_loss() {
        let c = Counts {
            runs: 4,
            wins: 3,
            reverted: 1,
            ..Default::default()
        };
        assert_eq!((c.wins_kept(), c.losses()), (2, 2));
    }
}
