//! `git massgen report RUN [--output FILE] [--open]`: one self-contained HTML page of a run.

use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run (id, unique prefix, or `latest`).
    pub run: String,
    /// Where to write the page [default: report.html in the run's directory].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Open the page in a browser.
    #[arg(long)]
    pub open: bool,
}

pub fn report(_ctx: &Ctx, _args: &ReportArgs) -> Result<Exit, CliError> {
    Err(CliError::new(Exit::Failure, "not yet built"))
}
