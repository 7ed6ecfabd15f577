//! `git massgen plan report PLAN [--output FILE] [--open]`: the plan's HTML page (its
//! graph by wave and status, each task's winner, time, cost and a link to its run's own
//! report, and the conflict matrix), by default beside the plan's state.
//!
//! Exit codes: 0 written; 2 no such plan (or it was never run); 1 the page could not be
//! made.

use std::path::PathBuf;

use clap::Args;

use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::report::plan as plan_report;

/// `plan report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The plan: its name, or the path of its file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Where to write the page [default: report.html beside the plan's state].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Open the page in a browser.
    #[arg(long)]
    pub open: bool,
}

pub fn report(ctx: &Ctx, args: &ReportArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let st = super::load_state(ctx, &repo, &args.plan)?;
    let name = st.plan.clone();
    let path = match &args.output {
        Some(out) => ctx.cwd.join(out),
        None => plan_report::default_path(&repo, &name),
    };
    let matrix = crate::plan::matrix::matrix(&repo, &st)?;
    plan_report::write(&repo, &st, &matrix, &path).map_err(crate::commands::report::cli_error)?;
    ctx.ui.line(&path.display().to_string());
    if args.open
        && let Err(e) = crate::commands::report::open(&path)
    {
        ctx.ui.warn(&format!("cannot open {}: {e}", path.display()));
    }
    Ok(Exit::Success)
}
