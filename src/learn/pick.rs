//! Choosing for a new task from what was learned: which agents run (`run --pick N`), by
//! Thompson sampling on each agent's record for the task's kind, and how many rounds
//! (`run --rounds auto`), from whether refinement rounds changed the outcome on that kind.
//!
//! Thompson sampling: each agent's chance of winning is unknown; what the counters say of it
//! is the distribution Beta(wins kept + 1, losses + 1) (uniform before any run). One value is
//! drawn from each agent's distribution and the agents with the highest draws run. A
//! well-proven agent draws high nearly every time; an agent with few runs draws anywhere,
//! so it still gets tried now and then, less as the evidence against it grows. The draws
//! come from a seeded generator: the same seed and the same counters pick the same agents.
//!
//! Pure functions over [`Learning`]; nothing here reads git or prints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::counts::{Coordination, Counts, Learning};

/// What a pick goes for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    /// The agents most likely to win.
    #[default]
    Wins,
    /// The most wins per dollar: the sampled chance divided by the agent's mean cost.
    Cheap,
}

/// Which counters an agent's record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Its runs on this kind of task.
    Kind,
    /// It has none on this kind: its runs on every kind.
    Overall,
    /// It has no runs at all.
    None,
}

/// An agent's record as the pick used it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub basis: Basis,
    pub runs: u64,
    /// Wins that stand (a reverted winner is a loss).
    pub wins: u64,
}

/// One agent's draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub record: Record,
    /// The chance of winning drawn from Beta(wins + 1, runs - wins + 1).
    pub sampled: f64,
    /// With `prefer = cheap`: the dollars a run is taken to cost ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// ... not known for this agent: the median of the others' known costs (1.0 if none).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cost_assumed: bool,
    /// ... and `sampled / cost_usd`, what was ranked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_dollar: Option<f64>,
    pub picked: bool,
}

impl Choice {
    /// What the agents were ranked by.
    pub fn score(&self) -> f64 {
        self.per_dollar.unwrap_or(self.sampled)
    }
}

/// A pick, as the run keeps it (`picked` in its state and JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picked {
    /// The task's kind (`class:language`).
    pub kind: String,
    pub seed: u64,
    pub prefer: Prefer,
    /// Agent → its draw.
    pub agents: BTreeMap<String, Choice>,
}

impl Picked {
    /// The agents picked.
    pub fn chosen(&self) -> impl Iterator<Item = &str> {
        self.agents
            .iter()
            .filter(|(_, c)| c.picked)
            .map(|(a, _)| a.as_str())
    }

    /// Agents with their draws, best first (as they were ranked).
    pub fn ranked(&self) -> Vec<(&str, &Choice)> {
        let mut out: Vec<(&str, &Choice)> =
            self.agents.iter().map(|(a, c)| (a.as_str(), c)).collect();
        out.sort_by(|a, b| {
            b.1.picked
                .cmp(&a.1.picked)
                .then(b.1.score().total_cmp(&a.1.score()))
        });
        out
    }

    /// One line per agent saying why it was picked or not, best first:
    /// `picked claude: 7 of 9 won on fix:rust, sampled 0.81`.
    pub fn explain(&self) -> Vec<String> {
        self.ranked()
            .into_iter()
            .map(|(agent, c)| {
                let verdict = if c.picked { "picked" } else { "not picked" };
                let r = &c.record;
                let record = match r.basis {
                    Basis::Kind => format!("{} of {} won on {}", r.wins, r.runs, self.kind),
                    Basis::Overall => format!(
                        "no record on {}; overall {} of {}",
                        self.kind, r.wins, r.runs
                    ),
                    Basis::None => "no record yet".to_owned(),
                };
                let mut line = format!("{verdict} {agent}: {record}, sampled {:.2}", c.sampled);
                if let (Some(cost), Some(per)) = (c.cost_usd, c.per_dollar) {
                    line.push_str(&format!(
                        " at ${cost:.2} a run{}: {per:.2} per dollar",
                        if c.cost_assumed { " (assumed)" } else { "" }
                    ));
                }
                line
            })
            .collect()
    }
}

/// Picks `n` of `agents` (at most all of them) for a task of kind `kind` by Thompson
/// sampling on `learning`, drawing with `seed`. Agents are drawn from in the order given,
/// and ties go to the earlier one, so the order is part of what the seed reproduces.
///
/// Each agent's record is its counters on `kind`; with no run of that kind, its counters
/// on every kind. With [`Prefer::Cheap`] the draw is divided by the agent's mean cost per
/// run (on `kind`, else overall); an agent whose cost was never known is taken to cost the
/// median of the others' known costs, or 1.0 dollar when no agent's is known; a cost under
/// a cent counts as a cent.
pub fn pick(
    learning: &Learning,
    agents: &[String],
    kind: &str,
    n: usize,
    prefer: Prefer,
    seed: u64,
) -> Picked {
    let totals = learning.totals();
    let counts: Vec<(Record, Option<f64>)> = agents
        .iter()
        .map(|agent| {
            let kinds = totals.get(agent);
            let on_kind = kinds.and_then(|k| k.get(kind)).filter(|c| c.runs > 0);
            let overall = Counts::sum(kinds.into_iter().flat_map(|k| k.values()));
            let (basis, c) = match on_kind {
                Some(c) => (Basis::Kind, c),
                None if overall.runs > 0 => (Basis::Overall, &overall),
                None => (Basis::None, &overall),
            };
            let cost = c.mean_cost().or_else(|| overall.mean_cost());
            let record = Record {
                basis,
                runs: c.runs,
                wins: c.wins_kept(),
            };
            (record, cost)
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut choices: Vec<Choice> = counts
        .iter()
        .enumerate()
        .map(|(i, (record, cost))| {
            let sampled = sample_beta(
                &mut rng,
                record.wins as f64 + 1.0,
                record.runs.saturating_sub(record.wins) as f64 + 1.0,
            );
            let (cost_usd, cost_assumed) = match (prefer, cost) {
                (Prefer::Wins, _) => (None, false),
                (Prefer::Cheap, Some(c)) => (Some(positive(*c)), false),
                (Prefer::Cheap, None) => {
                    let others: Vec<f64> = counts
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .filter_map(|(_, (_, c))| *c)
                        .collect();
                    (Some(positive(median(others).unwrap_or(1.0))), true)
                }
            };
            Choice {
                record: record.clone(),
                sampled,
                cost_usd,
                cost_assumed,
                per_dollar: cost_usd.map(|c| sampled / c),
                picked: false,
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..choices.len()).collect();
    order.sort_by(|&a, &b| {
        choices[b]
            .score()
            .total_cmp(&choices[a].score())
            .then(a.cmp(&b))
    });
    for &i in order.iter().take(n) {
        choices[i].picked = true;
    }
    Picked {
        kind: kind.to_owned(),
        seed,
        prefer,
        agents: agents.iter().cloned().zip(choices).collect(),
    }
}

/// A cost to divide by: under a cent (free runs included) counts as a cent, so that the
/// cheapest rank first without dividing by zero.
fn positive(cost: f64) -> f64 {
    if cost.is_finite() && cost > 0.01 {
        cost
    } else {
        0.01
    }
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    Some(if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    })
}

/// A draw from Beta(a, b) (a, b > 0): X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
pub fn sample_beta(rng: &mut fastrand::Rng, a: f64, b: f64) -> f64 {
    let x = sample_gamma(rng, a);
    let y = sample_gamma(rng, b);
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// A draw from Gamma(shape, 1), shape > 0, by Marsaglia and Tsang's method ("A simple
/// method for generating gamma variables", 2000); a shape under 1 is boosted by one and
/// scaled by U^(1/shape).
pub fn sample_gamma(rng: &mut fastrand::Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.f64(); // (0, 1]
        return sample_gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = sample_normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.f64();
        if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// A standard normal draw (Box–Muller).
fn sample_normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64(); // (0, 1]: ln is finite
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `--rounds auto` needs this many runs with rounds on the kind before it trusts them ...
pub const AUTO_MIN_RUNS: u64 = 3;
/// ... and a revised candidate winning at least this share of them to run a second round.
pub const AUTO_MIN_SHARE: f64 = 0.25;

/// How many rounds `--rounds auto` runs on a kind of task, and why in words.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoRounds {
    pub rounds: u32,
    pub why: String,
}

/// `--rounds auto` on kind `kind`: 2 rounds when at least [`AUTO_MIN_RUNS`] runs with
/// rounds were recorded on it and a revised candidate won at least [`AUTO_MIN_SHARE`] of
/// them; otherwise 1, including when nothing is known (auto never explores: the evidence
/// comes from runs given `--rounds 2` or more).
pub fn auto_rounds(c: &Coordination, kind: &str) -> AutoRounds {
    let (runs, won) = (c.rounds_runs, c.revised_won);
    let (rounds, why) = if runs == 0 {
        (1, format!("no run with rounds on {kind} yet"))
    } else if runs < AUTO_MIN_RUNS {
        (
            1,
            format!("only {runs} of the {AUTO_MIN_RUNS} runs with rounds needed on {kind}"),
        )
    } else if won as f64 >= AUTO_MIN_SHARE * runs as f64 {
        (
            2,
            format!("a revised candidate won {won} of {runs} runs with rounds on {kind}"),
        )
    } else {
        (
            1,
            format!("a revised candidate won only {won} of {runs} runs with rounds on {kind}"),
        )
    };
    AutoRounds { rounds, why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::Machine;

    fn learning(records: &[(&str, &str, u64, u64, Option<f64>)]) -> Learning {
        let mut m = Machine::default();
        for (agent, kind, runs, wins, cost) in records {
            let c = m.counts_mut(agent, kind);
            c.runs = *runs;
            c.wins = *wins;
            if let Some(cost) = cost {
                c.cost_usd = cost * *runs as f64;
                c.cost_known = *runs;
            }
        }
        let mut l = Learning::default();
        l.machines.insert("m".into(), m);
        l
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn beta_draws_have_the_right_mean_and_variance() {
        let mut rng = fastrand::Rng::with_seed(1);
        for (a, b) in [
            (1.0, 1.0),
            (8.0, 3.0),
            (2.0, 20.0),
            (0.5, 0.5),
            (120.0, 40.0),
        ] {
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| sample_beta(&mut rng, a, b)).collect();
            assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let want_mean = a / (a + b);
            let want_var = a * b / ((a + b).powi(2) * (a + b + 1.0));
            assert!((mean - want_mean).abs() < 0.01, "Beta({a},{b}) mean {mean}");
            assert!(
                (var - want_var).abs() < 0.1 * want_var + 1e-4,
                "Beta({a},{b}) variance {var}, want {want_var}"
            );
        }
    }

    #[test]
    fn gamma_draws_have_the_right_mean() {
        let mut rng = fastrand::Rng::with_seed(2);
        for shape in [0.3, 1.0, 2.5, 30.0] {
            let n = 40_000;
            let mean = (0..n).map(|_| sample_gamma(&mut rng, shape)).sum::<f64>() / n as f64;
            assert!(
                (mean - shape).abs() < 0.03 * shape.max(1.0),
                "{shape}: {mean}"
            );
        }
    }

    #[test]
    fn a_seed_reproduces_the_pick_and_the_better_record_wins_most_picks() {
        let l = learning(&[
            ("good", "fix:rust", 20, 16, None),
            ("poor", "fix:rust", 20, 3, None),
            ("meh", "fix:rust", 20, 8, None),
        ]);
        let agents = names(&["poor", "meh", "good"]);
        let a = pick(&l, &agents, "fix:rust", 1, Prefer::Wins, 7);
        assert_eq!(a, pick(&l, &agents, "fix:rust", 1, Prefer::Wins, 7));
        assert_eq!(a.chosen().collect::<Vec<_>>(), ["good"]);
        assert_eq!(a.agents["good"].record.basis, Basis::Kind);
        let good = (0..200)
            .filter(|&seed| {
                pick(&l, &agents, "fix:rust", 1, Prefer::Wins, seed)
                    .chosen()
                    .eq(["good"])
            })
            .count();
        assert!(good > 190, "good picked {good} of 200 times");
        let two = pick(&l, &agents, "fix:rust", 2, Prefer::Wins, 7);
        assert_eq!(two.chosen().count(), 2);
        let lines = two.explain();
        assert!(lines[0].starts_with("picked good: 16 of 20 won on fix:rust, sampled 0."));
        assert!(lines[2].starts_with("not picked "), "{lines:?}");
    }

    #[test]
    fn without_a_record_on_the_kind_the_overall_one_counts() {
        let l = learning(&[
            ("a", "fix:rust", 30, 27, None),
            ("a", "docs:text", 10, 9, None),
            ("b", "fix:python", 30, 3, None),
            ("b", "fix:rust", 10, 0, None),
        ]);
        let p = pick(
            &l,
            &names(&["a", "b", "c"]),
            "fix:python",
            1,
            Prefer::Wins,
            3,
        );
        assert_eq!(
            p.agents["a"].record,
            Record {
                basis: Basis::Overall,
                runs: 40,
                wins: 36
            }
        );
        assert_eq!(p.agents["b"].record.basis, Basis::Kind);
        assert_eq!(p.agents["c"].record.basis, Basis::None);
        let text = p.explain().join("\n");
        assert!(
            text.contains("a: no record on fix:python; overall 36 of 40"),
            "{text}"
        );
        assert!(text.contains("c: no record yet"), "{text}");
        let a = (0..100)
            .filter(|&s| {
                pick(&l, &names(&["a", "b"]), "fix:python", 1, Prefer::Wins, s)
                    .chosen()
                    .eq(["a"])
            })
            .count();
        assert!(a > 95, "{a}");
    }

    #[test]
    fn preferring_cheap_divides_by_the_cost() {
        // Equal records; one costs a tenth of the other; the third's cost is unknown.
        let l = learning(&[
            ("dear", "fix:rust", 40, 30, Some(2.0)),
            ("cheap", "fix:rust", 40, 28, Some(0.2)),
            ("unknown", "fix:rust", 40, 10, None),
        ]);
        let agents = names(&["dear", "cheap", "unknown"]);
        let p = pick(&l, &agents, "fix:rust", 1, Prefer::Cheap, 11);
        assert_eq!(p.chosen().collect::<Vec<_>>(), ["cheap"]);
        let u = &p.agents["unknown"];
        assert!(u.cost_assumed);
        assert!(
            (u.cost_usd.unwrap() - 1.1).abs() < 1e-9,
            "median of 2.0 and 0.2"
        );
        let dear = &p.agents["dear"];
        assert_eq!(dear.cost_usd, Some(2.0));
        assert!((dear.per_dollar.unwrap() - dear.sampled / 2.0).abs() < 1e-12);
        assert!(
            p.explain()[0].contains("at $0.20 a run: "),
            "{:?}",
            p.explain()
        );
        // Preferring wins, the dearer agent is as likely as the cheap one.
        let w = pick(&l, &agents, "fix:rust", 1, Prefer::Wins, 11);
        assert!(w.agents.values().all(|c| c.cost_usd.is_none()));
        // No cost known at all: 1.0 each.
        let none = learning(&[("x", "fix:rust", 1, 1, None)]);
        let p = pick(&none, &names(&["x", "y"]), "fix:rust", 1, Prefer::Cheap, 1);
        assert!(p.agents.values().all(|c| c.cost_usd == Some(1.0)));
    }

    #[test]
    fn rounds_auto_follows_the_rule() {
        let c = |runs, won| Coordination {
            rounds_runs: runs,
            revised_won: won,
            ..Default::default()
        };
        assert_eq!(auto_rounds(&c(0, 0), "fix:rust").rounds, 1);
        assert!(
            auto_rounds(&c(0, 0), "fix:rust")
                .why
                .contains("no run with rounds")
        );
        assert_eq!(auto_rounds(&c(2, 2), "k").rounds, 1);
        assert_eq!(auto_rounds(&c(4, 1), "k").rounds, 2);
        assert_eq!(auto_rounds(&c(5, 1), "k").rounds, 1);
        assert_eq!(
            auto_rounds(&c(8, 3), "k").why,
            "a revised candidate won 3 of 8 runs with rounds on k"
        );
    }
}
