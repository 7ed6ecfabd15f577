//! `git massgen review`: several reviewers look at one change; findings enough of them agree
//! on are reported, and the exit code says whether any is serious enough to fail.

use clap::Args;

use super::Ctx;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct ReviewArgs {}

pub fn review(_ctx: &Ctx, _args: ReviewArgs) -> Result<Exit, CliError> {
    Err(CliError::new(Exit::Failure, "not yet built"))
}
