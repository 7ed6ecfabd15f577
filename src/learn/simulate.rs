//! Does picking learn? A seeded simulation of `run --pick 2` over a stream of tasks, with
//! the real [`pick`] and the real counters: five agents whose chance of success on each of
//! three kinds of task (and whose cost per run) is hidden from the picker.
//!
//! Each task: its kind is drawn; the strategy picks agents; each picked agent succeeds with
//! its hidden chance on the kind; the task is won when any picked agent succeeded, and its
//! winner is one of those, drawn uniformly (as tests leave a tie). Then the counters are
//! updated as recording after a run does: every picked agent `runs += 1` (and its cost),
//! the winner `wins += 1`. So an agent that succeeded but was not chosen counts a loss, as
//! a real candidate that was not the winner does.
//!
//! The world (kinds and each agent's successes) is drawn from the seed alone, the same for
//! every strategy, so that strategies are compared on the same tasks. Regret is expected
//! regret: the chance that the oracle's pick wins the task minus the chance that the
//! strategy's pick does. `scripts/bench-learn.sh` prints the tables; BENCHMARKS.md, "Does
//! it learn?", has the figures.

use std::fmt::Write as _;

use super::counts::{Learning, Machine};
use super::pick::{Prefer, pick};

/// The kinds of task in the simulation.
pub const KINDS: [&str; 3] = ["fix:rust", "feature:python", "docs:text"];

/// A simulated agent: its hidden chance of success on each of [`KINDS`], and its dollars
/// per run.
#[derive(Debug, Clone, Copy)]
pub struct SimAgent {
    pub name: &'static str,
    pub success: [f64; 3],
    pub cost: f64,
}

/// The agents: the best pair differs on each kind, the cheap ones are good at one kind.
pub const AGENTS: [SimAgent; 5] = [
    SimAgent {
        name: "alpha",
        success: [0.70, 0.35, 0.40],
        cost: 1.00,
    },
    SimAgent {
        name: "beta",
        success: [0.55, 0.65, 0.30],
        cost: 0.50,
    },
    SimAgent {
        name: "gamma",
        success: [0.30, 0.60, 0.75],
        cost: 0.30,
    },
    SimAgent {
        name: "delta",
        success: [0.40, 0.30, 0.70],
        cost: 0.10,
    },
    SimAgent {
        name: "epsilon",
        success: [0.20, 0.25, 0.35],
        cost: 0.05,
    },
];

/// How agents are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// [`pick`], preferring wins or wins per dollar.
    Thompson(Prefer),
    /// `n` agents uniformly at random.
    Random,
    /// The `n` agents with the highest hidden chance on the kind.
    Oracle,
}

impl Strategy {
    pub fn label(self) -> &'static str {
        match self {
            Strategy::Thompson(Prefer::Wins) => "Thompson (prefer wins)",
            Strategy::Thompson(Prefer::Cheap) => "Thompson (prefer cheap)",
            Strategy::Random => "random",
            Strategy::Oracle => "oracle",
        }
    }
}

/// One sequence of tasks, task by task.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Whether a picked agent succeeded.
    pub won: Vec<bool>,
    /// The oracle's chance of winning the task minus the picked agents' chance.
    pub regret: Vec<f64>,
    /// Dollars the picked agents cost.
    pub cost: Vec<f64>,
}

/// The chance that at least one of `picked` succeeds on kind `k`.
fn chance(picked: &[usize], k: usize) -> f64 {
    1.0 - picked
        .iter()
        .map(|&i| 1.0 - AGENTS[i].success[k])
        .product::<f64>()
}

/// The `n` agents with the highest hidden chance on kind `k` (ties: the earlier).
fn oracle(n: usize, k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..AGENTS.len()).collect();
    order.sort_by(|&a, &b| {
        AGENTS[b].success[k]
            .total_cmp(&AGENTS[a].success[k])
            .then(a.cmp(&b))
    });
    order.truncate(n);
    order
}

/// `tasks` tasks, `n` agents picked for each, with `strategy`; everything drawn from `seed`.
pub fn simulate(strategy: Strategy, tasks: usize, n: usize, seed: u64) -> Outcome {
    let names: Vec<String> = AGENTS.iter().map(|a| a.name.to_owned()).collect();
    // The world's draws and the strategy's are apart, so every strategy meets the same
    // tasks and the same successes.
    let mut world = fastrand::Rng::with_seed(seed);
    let mut own = fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut learning = Learning::default();
    learning.machines.insert("sim".into(), Machine::default());
    let mut out = Outcome::default();
    for _ in 0..tasks {
        let k = world.usize(..KINDS.len());
        let succeeds: Vec<bool> = AGENTS.iter().map(|a| world.f64() < a.success[k]).collect();
        let picked: Vec<usize> = match strategy {
            Strategy::Thompson(prefer) => {
                let p = pick(&learning, &names, KINDS[k], n, prefer, own.u64(..));
                (0..AGENTS.len())
                    .filter(|&i| p.agents[&names[i]].picked)
                    .collect()
            }
            Strategy::Random => {
                let mut all: Vec<usize> = (0..AGENTS.len()).collect();
                own.shuffle(&mut all);
                all.truncate(n);
                all
            }
            Strategy::Oracle => oracle(n, k),
        };
        let winners: Vec<usize> = picked.iter().copied().filter(|&i| succeeds[i]).collect();
        let winner = (!winners.is_empty()).then(|| winners[own.usize(..winners.len())]);
        let machine = learning.machines.get_mut("sim").expect("made above");
        for &i in &picked {
            let c = machine.counts_mut(&names[i], KINDS[k]);
            c.runs += 1;
            c.wins += u64::from(winner == Some(i));
            c.cost_usd += AGENTS[i].cost;
            c.cost_known += 1;
        }
        out.won.push(winner.is_some());
        out.regret
            .push(chance(&oracle(n, k), k) - chance(&picked, k));
        out.cost.push(picked.iter().map(|&i| AGENTS[i].cost).sum());
    }
    out
}

/// The mean over seeds of one strategy's outcomes.
#[derive(Debug, Clone)]
pub struct Summary {
    pub strategy: Strategy,
    /// Share of tasks won, over tasks `from..=to` (1-based), for each window asked.
    pub win_rate: Vec<f64>,
    /// Cumulative regret after every `step` tasks.
    pub regret: Vec<f64>,
    /// Share of all tasks won.
    pub won: f64,
    /// Dollars per task over all tasks.
    pub cost_per_task: f64,
}

/// `strategy` over `seeds` seeds of `tasks` tasks: win rates over `windows` (1-based,
/// inclusive), cumulative regret every `step` tasks.
pub fn summarize(
    strategy: Strategy,
    seeds: u64,
    tasks: usize,
    n: usize,
    windows: &[(usize, usize)],
    step: usize,
) -> Summary {
    let runs: Vec<Outcome> = (0..seeds)
        .map(|s| simulate(strategy, tasks, n, s))
        .collect();
    let mean = |f: &dyn Fn(&Outcome) -> f64| runs.iter().map(f).sum::<f64>() / seeds as f64;
    Summary {
        strategy,
        win_rate: windows
            .iter()
            .map(|&(from, to)| {
                mean(&|o| {
                    o.won[from - 1..to].iter().filter(|w| **w).count() as f64
                        / (to - from + 1) as f64
                })
            })
            .collect(),
        regret: (step..=tasks)
            .step_by(step)
            .map(|t| mean(&|o| o.regret[..t].iter().sum()))
            .collect(),
        won: mean(&|o| o.won.iter().filter(|w| **w).count() as f64 / tasks as f64),
        cost_per_task: mean(&|o| o.cost.iter().sum::<f64>() / tasks as f64),
    }
}

/// Tasks, agents picked per task, seeds and windows of the published figures.
pub const TASKS: usize = 200;
pub const PICK: usize = 2;
pub const SEEDS: u64 = 20;
pub const WINDOWS: [(usize, usize); 3] = [(26, 50), (51, 200), (151, 200)];
pub const STEP: usize = 25;
pub const STRATEGIES: [Strategy; 4] = [
    Strategy::Thompson(Prefer::Wins),
    Strategy::Thompson(Prefer::Cheap),
    Strategy::Random,
    Strategy::Oracle,
];

/// The published figures, every strategy's.
pub fn figures() -> Vec<Summary> {
    STRATEGIES
        .iter()
        .map(|&s| summarize(s, SEEDS, TASKS, PICK, &WINDOWS, STEP))
        .collect()
}

/// The figures as Markdown tables: win rates (and their share of the oracle's), cost, and
/// cumulative regret every 25 tasks.
pub fn report(figures: &[Summary]) -> String {
    let oracle = figures
        .iter()
        .find(|s| s.strategy == Strategy::Oracle)
        .expect("the oracle is simulated");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{SEEDS} seeds, {TASKS} tasks, --pick {PICK} of {} agents, {} kinds\n",
        AGENTS.len(),
        KINDS.len()
    );
    out.push_str("| strategy |");
    for (from, to) in WINDOWS {
        let _ = write!(out, " won, tasks {from}–{to} (of oracle) |");
    }
    out.push_str(" $ per task | tasks won per $ |\n|---|");
    out.push_str(&"---|".repeat(WINDOWS.len() + 2));
    out.push('\n');
    for s in figures {
        let _ = write!(out, "| {} |", s.strategy.label());
        for (w, o) in s.win_rate.iter().zip(&oracle.win_rate) {
            let _ = write!(out, " {w:.3} ({:.0}%) |", 100.0 * w / o);
        }
        let _ = writeln!(
            out,
            " {:.2} | {:.2} |",
            s.cost_per_task,
            s.won / s.cost_per_task
        );
    }
    out.push_str("\nCumulative expected regret (tasks won, oracle minus strategy) after each 25 tasks:\n\n| strategy |");
    for t in (STEP..=TASKS).step_by(STEP) {
        let _ = write!(out, " {t} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(TASKS / STEP));
    out.push('\n');
    for s in figures.iter().filter(|s| s.strategy != Strategy::Oracle) {
        let _ = write!(out, "| {} |", s.strategy.label());
        for r in &s.regret {
            let _ = write!(out, " {r:.1} |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_is_the_same_for_every_strategy() {
        let a = simulate(Strategy::Oracle, 50, 2, 3);
        let b = simulate(Strategy::Oracle, 50, 2, 3);
        assert_eq!(a.won, b.won);
        assert!(a.regret.iter().all(|r| r.abs() < 1e-12));
        let t = simulate(Strategy::Thompson(Prefer::Wins), 50, 2, 3);
        assert_eq!(
            t.won,
            simulate(Strategy::Thompson(Prefer::Wins), 50, 2, 3).won
        );
        assert!(t.regret.iter().all(|r| *r >= -1e-12));
    }

    /// Thompson picking learns: over tasks 151–200, averaged over 20 seeds, it wins more
    /// tasks than picking at random and at least 85% as many as the oracle; its regret
    /// grows slower at the end than at the start.
    #[test]
    // The figures are what this test is for; `cargo test -- --nocapture` shows them
    // (scripts/bench-learn.sh).
    #[allow(clippy::print_stdout)]
    fn thompson_picking_learns_which_agents_win() {
        let figures = figures();
        println!("\n{}", report(&figures));
        let by = |s: Strategy| figures.iter().find(|f| f.strategy == s).expect("simulated");
        let thompson = by(Strategy::Thompson(Prefer::Wins));
        let random = by(Strategy::Random);
        let oracle = by(Strategy::Oracle);
        assert!(thompson.win_rate[2] > random.win_rate[2] + 0.05);
        assert!(thompson.win_rate[2] >= 0.85 * oracle.win_rate[2]);
        let first = thompson.regret[1] - thompson.regret[0];
        let last = thompson.regret[7] - thompson.regret[6];
        assert!(
            last < first,
            "regret per 25 tasks: first {first}, last {last}"
        );
        let cheap = by(Strategy::Thompson(Prefer::Cheap));
        assert!(cheap.won / cheap.cost_per_task > 1.5 * thompson.won / thompson.cost_per_task);
    }
}
