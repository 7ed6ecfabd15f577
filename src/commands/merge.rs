//! `git massgen merge`: merge a candidate into the current branch, proved clean first.

use crate::commands::{Ctx, load_run};
use crate::error::{CliError, Exit};
use crate::run::merge::{MergeOptions, merge_candidate};
use crate::ui::render::render_outcome;

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The run (id, unique prefix, or `latest`).
    pub run: String,
    /// The agent whose candidate to merge (default: the winner).
    pub agent: Option<String>,
    /// Make one commit on top of the current branch instead of a merge commit.
    #[arg(long)]
    pub squash: bool,
    /// Only check: report conflicts and blocking files, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    /// Merge even though the run recorded a breach (something changed in your repository
    /// while its agents ran).
    #[arg(long)]
    pub allow_breach: bool,
}

pub fn merge(ctx: &Ctx, args: &MergeArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let (dir, mut state) = load_run(&repo, &args.run)?;
    let agent = match &args.agent {
        Some(a) => a.clone(),
        None => state.winner.clone().ok_or_else(|| {
            CliError::new(Exit::Negative, format!("run {} has no winner", state.run)).hint(format!(
                "name a candidate: git massgen merge {} AGENT",
                state.run
            ))
        })?,
    };
    let options = MergeOptions {
        squash: args.squash,
        dry_run: args.dry_run,
        allow_breach: args.allow_breach,
    };
    let waiting = super::merge_waiting(ctx);
    let outcome = merge_candidate(&repo, &dir, &mut state, &agent, options, &waiting)?;
    if args.json {
        ctx.ui.json(&outcome);
    } else {
        ctx.ui.out(&render_outcome(&outcome));
    }
    Ok(
        if outcome.merged
            || (args.dry_run && outcome.conflicts.is_empty() && outcome.blocked_by_dirty.is_empty())
        {
            Exit::Success
        } else {
            Exit::Negative
        },
    )
}
