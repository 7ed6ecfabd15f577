//! `git massgen plan status [PLAN] [--json]`: a plan's tasks in wave order with their
//! status, run, winner and reason; without PLAN, the plans that were run.
//!
//! Exit codes: 0; 2 no such plan (or it was never run).

use std::path::PathBuf;

use clap::Args;

use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::plan::state::{self, PlanState, TaskStatus};

/// `plan status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The plan: its name, or the path of its file; omitted: every plan that was run.
    #[arg(value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Print the state as JSON on stdout (a list of states without PLAN).
    #[arg(long)]
    pub json: bool,
}

pub fn status(ctx: &Ctx, args: &StatusArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let Some(arg) = &args.plan else {
        let all = state::list(&repo)?;
        if args.json {
            ctx.ui.json(&all);
        } else if all.is_empty() {
            ctx.ui.out("no plan was run in this repository\n");
        } else {
            let mut text = String::new();
            for st in &all {
                text.push_str(&format!("{}  {}\n", st.plan, summary(st)));
            }
            ctx.ui.out(&text);
        }
        return Ok(Exit::Success);
    };
    let st = super::load_state(ctx, &repo, arg)?;
    let matrix = crate::plan::matrix::matrix(&repo, &st)?;
    if args.json {
        let mut value = serde_json::to_value(&st).expect("the plan state serializes");
        value["conflicts"] = serde_json::to_value(&matrix).expect("the matrix serializes");
        ctx.ui.json(&value);
    } else {
        let mut text = render(&st);
        text.push_str(&render_conflicts(&matrix));
        ctx.ui.out(&text);
    }
    Ok(Exit::Success)
}

/// The conflicting pairs of the plan's matrix, or that the winners of each wave merge
/// cleanly; nothing when no wave had two winners and nothing waits to be integrated.
fn render_conflicts(m: &crate::plan::matrix::PlanConflicts) -> String {
    let all: Vec<_> = m.pairs.iter().chain(&m.against_integration).collect();
    if all.is_empty() {
        return String::new();
    }
    let clashing: Vec<_> = all.iter().filter(|p| !p.conflicts.is_empty()).collect();
    if clashing.is_empty() {
        return "conflicts: none (the winners of each wave merge cleanly)\n".to_owned();
    }
    let mut out = String::from("conflicts:\n");
    for p in clashing {
        out.push_str(&format!(
            "  {} × {}: {}\n",
            p.a,
            p.b,
            p.conflicts.join(", ")
        ));
    }
    out
}

/// `3 of 4 tasks done, 1 failed; running` and the like.
fn summary(st: &PlanState) -> String {
    let count = |s: TaskStatus| st.tasks.iter().filter(|t| t.status == s).count();
    let mut parts = vec![format!(
        "{} of {} tasks done",
        count(TaskStatus::Done),
        st.tasks.len()
    )];
    for s in [
        TaskStatus::Running,
        TaskStatus::Failed,
        TaskStatus::Blocked,
        TaskStatus::Skipped,
    ] {
        let n = count(s);
        if n > 0 {
            parts.push(format!("{n} {}", s.as_str()));
        }
    }
    let mut out = parts.join(", ");
    if st.owned_elsewhere() {
        out.push_str(&format!(" (running, process {})", st.pid));
    } else if st.tasks.iter().any(|t| t.status == TaskStatus::Running) {
        out.push_str(" (interrupted: `plan run` resumes it)");
    }
    if let Some(c) = &st.merged {
        out.push_str(&format!("; merged as {}", &c[..c.len().min(12)]));
    }
    out
}

/// The plan's header, then one line per task in wave order (plan order within a wave),
/// with its reason on the next line.
pub fn render(st: &PlanState) -> String {
    let short = |r: &str| r.trim_start_matches("refs/heads/").to_owned();
    let mut out = format!(
        "plan {}: {}\nintegration branch {} at {} (from {} at {})\n",
        st.plan,
        summary(st),
        short(&st.integration_branch),
        &st.integration_commit[..12.min(st.integration_commit.len())],
        st.target_branch
            .as_deref()
            .map_or_else(|| "a detached HEAD".to_owned(), short),
        &st.target_commit[..12.min(st.target_commit.len())],
    );
    let mut tasks: Vec<_> = st.tasks.iter().collect();
    tasks.sort_by_key(|t| t.wave);
    let width = tasks.iter().map(|t| t.id.len()).max().unwrap_or(0);
    for t in tasks {
        out.push_str(&format!(
            "wave {}  {:width$}  {:8}  run {}  winner {}\n",
            t.wave,
            t.id,
            t.status.as_str(),
            t.run.as_deref().unwrap_or("-"),
            t.winner.as_deref().unwrap_or("-"),
        ));
        if let Some(reason) = &t.reason {
            out.push_str(&format!("        {reason}\n"));
        }
    }
    out
}
