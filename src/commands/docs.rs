//! `git massgen install-man [DIR]` and `git massgen completions SHELL`: the man pages and
//! shell completions, generated from the command-line definition itself.

use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct InstallManArgs {
    /// Where to write the pages [default: share/man/man1 beside the binary's bin/].
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh or fish.
    pub shell: String,
}

pub fn install_man(_ctx: &Ctx, _args: &InstallManArgs) -> Result<Exit, CliError> {
    Err(CliError::new(Exit::Failure, "not yet built"))
}

pub fn completions(_ctx: &Ctx, _args: &CompletionsArgs) -> Result<Exit, CliError> {
    Err(CliError::new(Exit::Failure, "not yet built"))
}
