//! `git massgen clean`: remove runs' worktrees and branches (see `run/clean.rs`), and the
//! worktrees of interrupted reviews.

use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::run::clean::{self, Said};

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// The run to clean (id, unique prefix, or `latest`).
    #[arg(conflicts_with = "all")]
    pub run: Option<String>,
    /// Clean every run that is not running (the default when no run is named).
    #[arg(long)]
    pub all: bool,
    /// Also delete candidate branches that were never merged.
    #[arg(long)]
    pub force: bool,
}

pub fn clean(ctx: &Ctx, args: &CleanArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    let root = crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref());
    let mut say = |said: Said| match said {
        Said::Info(line) => ctx.ui.info(&line),
        Said::Warn(line) => ctx.ui.warn(&line),
    };
    if args.run.is_none() {
        // Reviews killed before they could clean up leave a worktree of the reviewed tree.
        // The kept review worktree goes too; the next review checks it out again.
        for wt in crate::review::session::sweep(&repo, &root) {
            say(Said::Info(format!(
                "massgen: removed the worktree of an interrupted review: {}",
                wt.display()
            )));
        }
        if let Some(wt) = crate::review::session::remove_slot(&repo, &root)? {
            say(Said::Info(format!(
                "massgen: removed the review worktree {}",
                wt.display()
            )));
        }
    }
    clean::clean(&repo, &root, args.run.as_deref(), args.force, &mut say)?;
    Ok(Exit::Success)
}
