//! The numbers `git massgen stats` shows: per agent and kind of task (and per agent over
//! every kind), runs, wins that stand, the win rate with a 90% credible interval, cost,
//! and what became of merged winners. Pure arithmetic over [`Learning`]; nothing here
//! reads git or prints.
//!
//! The interval is that of the posterior Beta(wins kept + 1, losses + 1) under a uniform
//! prior: its 5% and 95% quantiles, found exactly (the regularized incomplete beta
//! function by its continued fraction, inverted by bisection). A reverted winner counts
//! as a loss.

use std::cmp::Ordering;

use serde::Serialize;

use super::counts::{Counts, Learning};

/// One row: an agent on one kind of task, or on every kind (`kind` is `None`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub agent: String,
    /// `class:language`; `None` for the agent's record over every kind.
    pub kind: Option<String>,
    pub runs: u64,
    /// Runs won, reverted winners included.
    pub wins: u64,
    /// Wins that stand: wins minus reverted winners.
    pub wins_kept: u64,
    pub losses: u64,
    /// Wins kept per run; `None` before any run.
    pub win_rate: Option<f64>,
    /// The 5% and 95% quantiles of Beta(wins kept + 1, losses + 1).
    pub interval: [f64; 2],
    /// Mean dollars per run, over the runs whose cost is known.
    pub mean_cost_usd: Option<f64>,
    /// Dollars per win kept: the mean cost times runs, over wins kept.
    pub cost_per_win_usd: Option<f64>,
    /// Mean share of its tests that passed, over the runs whose tests were counted.
    pub tests_passed: Option<f64>,
    pub votes: u64,
    /// Winners merged into the user's branch; of them confirmed by history, and reverted.
    pub merged: u64,
    pub confirmed: u64,
    pub reverted: u64,
    /// Confirmed over confirmed and reverted; `None` before either.
    pub survival: Option<f64>,
}

impl Row {
    /// The row of `counts`.
    pub fn new(agent: &str, kind: Option<&str>, c: &Counts) -> Row {
        let (kept, losses) = (c.wins_kept(), c.losses());
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        let (a, b) = (kept as f64 + 1.0, losses as f64 + 1.0);
        Row {
            agent: agent.to_owned(),
            kind: kind.map(str::to_owned),
            runs: c.runs,
            wins: c.wins,
            wins_kept: kept,
            losses,
            win_rate: ratio(kept, c.runs),
            interval: [beta_quantile(a, b, 0.05), beta_quantile(a, b, 0.95)],
            mean_cost_usd: c.mean_cost(),
            cost_per_win_usd: c
                .mean_cost()
                .filter(|_| kept > 0)
                .map(|mean| mean * c.runs as f64 / kept as f64),
            tests_passed: (c.tests_known > 0).then(|| c.tests_share / c.tests_known as f64),
            votes: c.votes,
            merged: c.merged,
            confirmed: c.confirmed,
            reverted: c.reverted,
            survival: ratio(c.confirmed, c.confirmed + c.reverted),
        }
    }
}

/// Which rows to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A kind (`fix:rust`), a class (`fix`) or a language (`rust`); kinds only when set.
    pub kind: Option<String>,
    pub agent: Option<String>,
}

impl Filter {
    fn kind_matches(&self, kind: &str) -> bool {
        match &self.kind {
            None => true,
            Some(want) => {
                let (class, language) = kind.split_once(':').unwrap_or((kind, ""));
                want == kind || want == class || want == language
            }
        }
    }
}

/// The rows of `learning` that `filter` keeps: each agent's record over every kind first
/// (unless a kind is asked for), then kind by kind; within each, the best win rate first.
pub fn rows(learning: &Learning, filter: &Filter) -> Vec<Row> {
    let mut overall = Vec::new();
    let mut by_kind = Vec::new();
    for (agent, kinds) in learning.totals() {
        if filter.agent.as_ref().is_some_and(|a| *a != agent) {
            continue;
        }
        let mut all = Counts::default();
        for (kind, c) in &kinds {
            all.add(c);
            if filter.kind_matches(kind) {
                by_kind.push(Row::new(&agent, Some(kind), c));
            }
        }
        if filter.kind.is_none() {
            overall.push(Row::new(&agent, None, &all));
        }
    }
    overall.sort_by(by_rate);
    by_kind.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| by_rate(a, b)));
    overall.extend(by_kind);
    overall
}

/// Higher win rate first; then the higher lower bound (more evidence); then by name.
fn by_rate(a: &Row, b: &Row) -> Ordering {
    let rate = |r: &Row| r.win_rate.unwrap_or(-1.0);
    rate(b)
        .total_cmp(&rate(a))
        .then_with(|| b.interval[0].total_cmp(&a.interval[0]))
        .then_with(|| a.agent.cmp(&b.agent))
}

/// The `p` quantile of Beta(`a`, `b`): the `x` with I_x(a, b) = p, by bisection (the
/// distribution function is increasing; 100 halvings reach the precision of an `f64`).
pub fn beta_quantile(a: f64, b: f64, p: f64) -> f64 {
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if mid <= low || mid >= high {
            break;
        }
        if beta_cdf(a, b, mid) < p {
            low = mid;
        } else {
            high = mid;
        }
    }
    (low + high) / 2.0
}

/// The regularized incomplete beta function I_x(a, b), the distribution function of
/// Beta(a, b) (Numerical Recipes, `betai`): the continued fraction converges fast for
/// x below the mean, so above it the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) is used.
pub fn beta_cdf(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * continued_fraction(a, b, x) / a
    } else {
        1.0 - front * continued_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of the incomplete beta function, by the modified Lentz method.
fn continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    // Converges in O(sqrt(max(a, b))) steps: 10 000 covers a hundred million runs.
    for m in 1..10_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + aa / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients; about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64) {
        assert!((got - want).abs() < tol, "got {got}, want {want}");
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        close(ln_gamma(1.0), 0.0, 1e-13);
        close(ln_gamma(5.0), 24f64.ln(), 1e-12);
        close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-12);
        close(
            ln_gamma(101.0),
            (1..=100).map(|k| f64::from(k).ln()).sum(),
            1e-9,
        );
    }

    #[test]
    fn uniform_quantiles_are_themselves() {
        close(beta_quantile(1.0, 1.0, 0.05), 0.05, 1e-12);
        close(beta_quantile(1.0, 1.0, 0.95), 0.95, 1e-12);
        close(beta_cdf(1.0, 1.0, 0.3), 0.3, 1e-12);
    }

    #[test]
    fn quantiles_match_closed_forms_and_known_values() {
        // Beta(3, 5): median 0.36412 (scipy.stats.beta.ppf(0.5, 3, 5) = 0.3641161...).
        close(beta_quantile(3.0, 5.0, 0.5), 0.364_116_1, 1e-6);
        // Beta(2, 1): F(x) = x²; Beta(1, 3): F(x) = 1 − (1 − x)³.
        close(beta_quantile(2.0, 1.0, 0.05), 0.05f64.sqrt(), 1e-12);
        close(beta_quantile(1.0, 3.0, 0.95), 1.0 - 0.05f64.cbrt(), 1e-12);
        close(beta_cdf(1.0, 3.0, 0.2), 1.0 - 0.8f64.powi(3), 1e-12);
        // Beta(3, 5) at 0.4: 1 − Σ_{j<3} C(7, j) 0.4^j 0.6^(7−j) = 0.580096.
        close(beta_cdf(3.0, 5.0, 0.4), 0.580_096, 1e-9);
        // Symmetric: the median is 1/2, the tails mirror.
        close(beta_quantile(10.0, 10.0, 0.5), 0.5, 1e-12);
        let (lo, hi) = (
            beta_quantile(10.0, 10.0, 0.05),
            beta_quantile(10.0, 10.0, 0.95),
        );
        close(lo + hi, 1.0, 1e-12);
    }

    #[test]
    fn large_counts_stay_accurate() {
        // Beta(5001, 5001) is close to normal: sd = sqrt(1/(4·10003)) ≈ 0.0049993.
        let lo = beta_quantile(5001.0, 5001.0, 0.05);
        close(lo, 0.5 - 1.644_853_6 * 0.004_999_3, 1e-5);
        close(beta_cdf(5001.0, 5001.0, lo), 0.05, 1e-9);
    }

    fn learning() -> Learning {
        let mut l = Learning::default();
        let mut m = super::super::Machine::default();
        *m.counts_mut("claude", "fix:rust") = Counts {
            runs: 4,
            wins: 3,
            reverted: 1,
            merged: 2,
            confirmed: 1,
            cost_usd: 0.8,
            cost_known: 2,
            ..Default::default()
        };
        *m.counts_mut("codex", "fix:rust") = Counts {
            runs: 4,
            wins: 1,
            ..Default::default()
        };
        *m.counts_mut("codex", "docs:text") = Counts {
            runs: 2,
            wins: 2,
            ..Default::default()
        };
        l.machines.insert("m1".into(), m);
        l
    }

    #[test]
    fn rows_count_reverted_wins_as_losses() {
        let rows = rows(&learning(), &Filter::default());
        let claude = rows
            .iter()
            .find(|r| r.agent == "claude" && r.kind.as_deref() == Some("fix:rust"))
            .unwrap();
        assert_eq!((claude.wins_kept, claude.losses), (2, 2));
        assert_eq!(claude.win_rate, Some(0.5));
        // Beta(3, 3) is symmetric about 1/2.
        close(claude.interval[0] + claude.interval[1], 1.0, 1e-12);
        close(claude.mean_cost_usd.unwrap(), 0.4, 1e-12);
        close(claude.cost_per_win_usd.unwrap(), 0.8, 1e-12);
        assert_eq!(claude.survival, Some(0.5));
    }

    #[test]
    fn rows_come_overall_first_then_by_kind_and_rate() {
        let order: Vec<(String, Option<String>)> = rows(&learning(), &Filter::default())
            .into_iter()
            .map(|r| (r.agent, r.kind))
            .collect();
        let k = |s: &str| Some(s.to_owned());
        assert_eq!(
            order,
            [
                // Both win half their runs; codex has more of them.
                ("codex".into(), None),
                ("claude".into(), None),
                ("codex".into(), k("docs:text")),
                ("claude".into(), k("fix:rust")),
                ("codex".into(), k("fix:rust")),
            ]
        );
        let fix = Filter {
            kind: Some("rust".into()),
            agent: Some("codex".into()),
        };
        let rows = rows(&learning(), &fix);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind.as_deref(), Some("fix:rust"));
    }
}
