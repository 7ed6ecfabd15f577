//! `git massgen clean`: remove runs' worktrees and branches (see `run/clean.rs`), and the
//! worktrees of interrupted reviews.

use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::run::clean::{self, Said, Which};

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// The run to clean (id, unique prefix, or `latest`).
    #[arg(conflicts_with = "all")]
    pub run: Option<String>,
    /// Clean every run that is not running (the default when no run is named).
    #[arg(long)]
    pub all: bool,
    /// Clean only the runs that are not running and have not changed for this long
    /// (`7d`, `12h`); their unmerged branches are kept unless --force.
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration, conflicts_with_all = ["run", "all"])]
    pub older_than: Option<std::time::Duration>,
    /// Also delete candidate branches that were never merged.
    #[arg(long)]
    pub force: bool,
}

pub fn clean(ctx: &Ctx, args: &CleanArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    let root = crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref());
    let mut say = super::say(ctx);
    let which = match (&args.run, args.older_than) {
        (Some(run), _) => Which::Run(run),
        (None, Some(age)) => Which::OlderThan(age),
        (None, None) => Which::All,
    };
    if matches!(which, Which::All) {
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
    clean::clean(&repo, &root, which, args.force, &mut say)?;
    Ok(Exit::Success)
}
