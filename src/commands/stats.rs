//! `git massgen stats [--json] [--kind KIND] [--agent NAME]`: which agent wins, per kind
//! of task and over every kind, from `refs/massgen/learning` (`learn::stats` does the
//! numbers).
//!
//! Exit codes: 0 (also with no statistics yet, said so); 3 outside a repository; 4 when
//! the ref is unreadable (hint: `learn reset`) or git fails.

use clap::Args;
use serde::Serialize;

use super::Ctx;
use crate::error::{CliError, Exit};
use crate::learn::stats::{self, Filter, Row};
use crate::learn::{Coordination, REF, store};

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one JSON object on stdout (see README.md, "JSON").
    #[arg(long)]
    pub json: bool,
    /// Only this kind of task: `class:language` (fix:rust), a class (fix) or a language
    /// (rust).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only this agent.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
}

/// Per kind: whether refinement rounds and judges changed the outcome.
#[derive(Debug, Serialize)]
struct KindRow {
    kind: String,
    #[serde(flatten)]
    coordination: Coordination,
}

/// `stats --json`.
#[derive(Debug, Serialize)]
struct Report {
    machines: usize,
    rows: Vec<Row>,
    kinds: Vec<KindRow>,
}

pub fn stats(ctx: &Ctx, args: &StatsArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let (learning, _) = store::load(&repo)?;
    let filter = Filter {
        kind: args.kind.clone(),
        agent: args.agent.clone(),
    };
    let rows = stats::rows(&learning, &filter);
    let mut kinds: Vec<String> = rows.iter().filter_map(|r| r.kind.clone()).collect();
    kinds.dedup();
    let kinds: Vec<KindRow> = kinds
        .into_iter()
        .map(|kind| KindRow {
            coordination: learning.coordination(&kind),
            kind,
        })
        .collect();
    if args.json {
        ctx.ui.json(&Report {
            machines: learning.machines.len(),
            rows,
            kinds,
        });
        return Ok(Exit::Success);
    }
    if learning.machines.is_empty() {
        ctx.ui.line(&format!(
            "no statistics yet: every scored run records how its agents did in {REF}; \
             `git massgen learn merge REF` brings in another clone's"
        ));
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        let totals = learning.totals();
        let agents: Vec<&str> = totals.keys().map(String::as_str).collect();
        let mut known: Vec<&str> = totals
            .values()
            .flat_map(|k| k.keys().map(String::as_str))
            .collect();
        known.sort_unstable();
        known.dedup();
        ctx.ui.line(&format!(
            "no statistics match; agents: {}; kinds: {}",
            agents.join(", "),
            known.join(", ")
        ));
        return Ok(Exit::Success);
    }
    let table: Vec<Vec<String>> = rows.iter().map(cells).collect();
    let mut text = crate::ui::table(
        &[
            "kind",
            "agent",
            "runs",
            "wins",
            "win rate",
            "90% interval",
            "cost/run",
            "cost/win",
            "merged",
            "confirmed",
            "reverted",
            "survival",
        ],
        &table,
    );
    for k in &kinds {
        let c = &k.coordination;
        if c.rounds_runs > 0 {
            text.push_str(&format!(
                "{}: a revised candidate won {} of {} runs with refinement rounds\n",
                k.kind, c.revised_won, c.rounds_runs
            ));
        }
        if c.judged > 0 {
            text.push_str(&format!(
                "{}: the judges' favourite was kept in {} of {} judged runs\n",
                k.kind, c.judges_agreed, c.judged
            ));
        }
    }
    text.push_str(&format!(
        "from {} in {REF}; a reverted winner counts as a loss; the 90% interval is that \
         of Beta(wins + 1, losses + 1)\n",
        crate::ui::count(learning.machines.len(), "machine")
    ));
    ctx.ui.out(&text);
    Ok(Exit::Success)
}

/// One row of the table.
fn cells(r: &Row) -> Vec<String> {
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let usd = |x: Option<f64>| match x {
        None => "-".to_owned(),
        Some(x) if x >= 1.0 => format!("${x:.2}"),
        Some(x) => format!("${x:.3}"),
    };
    vec![
        r.kind.clone().unwrap_or_else(|| "all".into()),
        r.agent.clone(),
        r.runs.to_string(),
        r.wins_kept.to_string(),
        r.win_rate.map_or_else(|| "-".into(), pct),
        format!("{:.0}–{}", r.interval[0] * 100.0, pct(r.interval[1])),
        usd(r.mean_cost_usd),
        usd(r.cost_per_win_usd),
        r.merged.to_string(),
        r.confirmed.to_string(),
        r.reverted.to_string(),
        r.survival.map_or_else(|| "-".into(), pct),
    ]
}
