//! `git massgen hooks install|uninstall [--hook NAME]...`: the review hooks put where git
//! runs hooks, chained after any hook already there, and taken out again (`hooks.rs` does
//! the work, all or nothing).
//!
//! Exit codes: 0 done (including "already installed" and "not installed"); 2 (usage) when
//! the hooks directory's state needs the user's decision: a `NAME.pre-massgen` that is in
//! the way, or a foreign hook that `uninstall` will not touch; 3 outside a repository; 4
//! when git or the file system fails.

use std::path::Path;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::Ctx;
use crate::error::{CliError, Exit};
use crate::hooks::{Action, CHAINED_SUFFIX, Hook, Outcome, hooks_dir, install, uninstall};

/// `git massgen hooks`.
#[derive(Debug, Args)]
pub struct HooksArgs {
    #[command(subcommand)]
    pub action: HooksAction,
}

#[derive(Debug, Subcommand)]
pub enum HooksAction {
    /// Install the review hooks into the repository's hooks directory; a hook already there
    /// is kept as NAME.pre-massgen and runs first.
    Install(Selection),
    /// Remove the review hooks, restoring any hook they were chained to.
    Uninstall(Selection),
}

/// Which hooks, and how to report.
#[derive(Debug, Args)]
pub struct Selection {
    /// A hook to act on; repeat for several. Only pre-commit by default: a review is a run of
    /// several reviewers, and one per commit plus one per push would double the cost for the
    /// same change.
    #[arg(long = "hook", value_name = "NAME", value_enum)]
    pub hooks: Vec<HookChoice>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A `--hook` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookChoice {
    /// Review the staged change before each commit.
    PreCommit,
    /// Review the pushed commits before each push.
    PrePush,
    /// Both.
    All,
}

/// The hooks selected by `--hook` (pre-commit when none), without repeats, in order.
fn selected(choices: &[HookChoice]) -> Vec<Hook> {
    if choices.is_empty() {
        return vec![Hook::PreCommit];
    }
    Hook::ALL
        .into_iter()
        .filter(|h| {
            choices.iter().any(|c| match c {
                HookChoice::All => true,
                HookChoice::PreCommit => *h == Hook::PreCommit,
                HookChoice::PrePush => *h == Hook::PrePush,
            })
        })
        .collect()
}

#[derive(Serialize)]
struct Report<'a> {
    hooks_dir: String,
    hooks: &'a [Outcome],
}

/// `git massgen hooks install|uninstall`: acts on the selected hooks, all or none, and says
/// what was done to each.
pub fn hooks(ctx: &Ctx, args: &HooksArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let dir = hooks_dir(&repo.workdir)?;
    if dir.starts_with(&repo.workdir) && !dir.starts_with(&repo.common_dir) {
        // core.hooksPath pointing into the work tree: often a directory the team commits.
        ctx.ui.info(&format!(
            "note: the hooks directory {} is in the work tree; `git status` will show the change",
            dir.display()
        ));
    }
    let (selection, outcomes) = match &args.action {
        HooksAction::Install(sel) => (sel, install(&dir, &selected(&sel.hooks))?),
        HooksAction::Uninstall(sel) => (sel, uninstall(&dir, &selected(&sel.hooks))?),
    };
    if matches!(args.action, HooksAction::Install(_)) {
        let config = ctx.config(&repo)?;
        if config.reviewers.is_empty() {
            ctx.ui.warn(
                "no [[reviewers]] in .massgen/config.toml: the hook refuses commits until you add some (README.md, \"Code review\")",
            );
        }
    }
    if selection.json {
        ctx.ui.json(&Report {
            hooks_dir: dir.to_string_lossy().into_owned(),
            hooks: &outcomes,
        });
    } else {
        for o in &outcomes {
            ctx.ui.line(&describe(o, &dir));
        }
    }
    Ok(Exit::Success)
}

/// One line saying what was done to a hook, and where.
fn describe(o: &Outcome, dir: &Path) -> String {
    let (name, dir) = (o.name, dir.display());
    let kept = format!("{name}{CHAINED_SUFFIX}");
    let first = if o.chained {
        format!("; the earlier hook, {kept}, runs first")
    } else {
        String::new()
    };
    match o.action {
        Action::Installed if o.chained => format!(
            "installed the {name} hook in {dir}, chained to the existing hook, kept as {kept}"
        ),
        Action::Installed => format!("installed the {name} hook in {dir}"),
        Action::Updated => format!("updated the {name} hook in {dir}{first}"),
        Action::AlreadyInstalled => {
            format!("the {name} hook is already installed in {dir}{first}")
        }
        Action::Removed if o.chained => {
            format!("removed the {name} hook from {dir}; restored the earlier hook")
        }
        Action::Removed => format!("removed the {name} hook from {dir}"),
        Action::NotInstalled => format!("the {name} hook is not installed in {dir}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_pre_commit_only() {
        assert_eq!(selected(&[]), vec![Hook::PreCommit]);
        assert_eq!(
            selected(&[
                HookChoice::PrePush,
                HookChoice::PreCommit,
                HookChoice::PrePush
            ]),
            vec![Hook::PreCommit, Hook::PrePush]
        );
        assert_eq!(selected(&[HookChoice::All]), Hook::ALL.to_vec());
    }
}
