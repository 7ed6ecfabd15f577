//! `git massgen hooks install|uninstall [--hook NAME]`: the review hooks, chained after any
//! hook already there.

use clap::{Args, Subcommand};

use super::Ctx;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct HooksArgs {
    #[command(subcommand)]
    pub action: HooksAction,
}

#[derive(Debug, Subcommand)]
pub enum HooksAction {
    /// Install the review hooks into the repository's hooks directory.
    Install,
    /// Remove the review hooks, restoring any hook they were chained to.
    Uninstall,
}

pub fn hooks(_ctx: &Ctx, _args: &HooksArgs) -> Result<Exit, CliError> {
    Err(CliError::new(Exit::Failure, "not yet built"))
}
