//! `git massgen diff`: a candidate against its base, or two candidates against each other.

use std::io::IsTerminal as _;

use crate::commands::{Ctx, load_run};
use crate::error::{CliError, Exit};
use crate::git::{ObjectId, diff};
use crate::run::state::RunState;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The run (id, unique prefix, or `latest`).
    pub run: String,
    /// The candidate to show (default: the winner).
    pub agent: Option<String>,
    /// A second candidate: show the change from AGENT's candidate to this one.
    pub agent2: Option<String>,
    /// Print only the list of changed files with line counts.
    #[arg(long)]
    pub stat: bool,
}

pub fn diff(ctx: &Ctx, args: &DiffArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let (_, state) = load_run(&repo, &args.run)?;
    let agent = match &args.agent {
        Some(a) => a.clone(),
        None => state.winner.clone().ok_or_else(|| {
            CliError::usage(format!("run {} has no winner; name a candidate", state.run))
                .hint(format!("git massgen diff {} AGENT", state.run))
        })?,
    };
    let base = crate::run::state::commit_id(&state.base)?;
    let (old, new) = match &args.agent2 {
        None => (base, commit_of(&state, &agent)?),
        Some(other) => (commit_of(&state, &agent)?, commit_of(&state, other)?),
    };
    let rendered = diff::render(&repo, old, new)?;
    let text = if args.stat {
        let mut text: String = rendered
            .paths
            .iter()
            .map(|p| {
                if rendered.deleted.contains(p) {
                    format!("{p} (deleted)\n")
                } else {
                    format!("{p}\n")
                }
            })
            .collect();
        text.push_str(&format!(
            "{} files changed, {} insertions(+), {} deletions(-)\n",
            rendered.stat.files, rendered.stat.insertions, rendered.stat.deletions
        ));
        text
    } else if ctx.ui.color() {
        crate::ui::color_patch(&rendered.patch)
    } else {
        rendered.patch
    };
    // Paged the way git pages its diff (GIT_PAGER, core.pager, pager.massgen, PAGER).
    let pager = crate::settings::pager(
        &|k| std::env::var(k).ok(),
        &ctx.settings,
        std::io::stdout().is_terminal(),
    );
    if ctx.ui.page(&text, pager.as_deref()) {
        return Ok(Exit::Interrupted);
    }
    Ok(Exit::Success)
}

fn commit_of(state: &RunState, agent: &str) -> Result<ObjectId, CliError> {
    let c = state.require_candidate(agent)?;
    match &c.commit {
        Some(id) => Ok(crate::run::state::commit_id(id)?),
        None => Err(CliError::new(
            Exit::Negative,
            format!("{agent} has no candidate commit ({})", c.status.as_str()),
        )),
    }
}
