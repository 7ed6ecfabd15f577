//! `git massgen plan new GOAL --planner NAME`: a configured agent writes a task plan for the
//! goal; the plan is checked as `plan check` checks a file (an invalid one is asked for
//! again, with what was wrong), written to `.massgen/plans/<name>.toml` or `--output`, and
//! shown in waves. It is never run.
//!
//! Exit codes: 0 the plan was written; 2 usage (no such planner, an empty goal, the file
//! exists without `--force`); 3 not in a repository; 4 the planner could not run or gave no
//! valid plan in `[plan] max_attempts`, or the file could not be written; 130 interrupted.
//! Nothing is written unless a valid plan came.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::{Ctx, render};
use crate::agent::prompt::Template;
use crate::error::{CliError, Exit};
use crate::plan::planner::{self, Planned, Request};
use crate::run::confine::{self, Sandbox};

/// `plan new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// What the plan is for: the change to split into tasks.
    pub goal: String,
    /// The configured agent (an [[agents]] entry of any kind) that writes the plan.
    #[arg(long, value_name = "NAME")]
    pub planner: String,
    /// Where to write the plan [default: .massgen/plans/NAME.toml, NAME the plan's name].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object on stdout: the plan and where it was written.
    #[arg(long)]
    pub json: bool,
}

pub fn new(ctx: &Ctx, args: &NewArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    if args.goal.trim().is_empty() {
        return Err(CliError::usage("the goal is empty")
            .hint("say what the plan is for: git massgen plan new \"Add sign-up and login\" --planner NAME"));
    }
    let agents: Vec<String> = config
        .agents
        .iter()
        .map(|a| a.name.get_ref().clone())
        .collect();
    let Some(entry) = config
        .agents
        .iter()
        .find(|a| a.name.get_ref() == &args.planner)
    else {
        return Err(CliError::usage(format!(
            "no agent `{}` in .massgen/config.toml to be the planner",
            args.planner
        ))
        .hint(if agents.is_empty() {
            "add an [[agents]] entry to .massgen/config.toml (see `git massgen init`)".to_owned()
        } else {
            format!("configured agents: {}", agents.join(", "))
        }));
    };
    // Refused before the planner is asked, when the file is known already.
    let output = args.output.as_ref().map(|o| ctx.cwd.join(o));
    if let Some(path) = &output {
        refuse_existing(ctx, path, args.force)?;
    }
    let llm = crate::run::plan::llm_shared(&repo, &config, None, false, Vec::new())?;
    let kind = crate::run::plan::respondent_kind(entry, &llm, "planner")?;
    let worktree_root =
        crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref());
    let (sandbox, _, _) =
        confine::resolve(&Sandbox::from_config(&config.sandbox, None, &worktree_root))?;
    let req = Request {
        goal: args.goal.trim().to_owned(),
        planner: crate::ask::respondent::Respondent {
            name: args.planner.clone(),
            kind,
            timeout: config
                .plan
                .timeout
                .or(entry.timeout)
                .unwrap_or(planner::DEFAULT_TIMEOUT),
        },
        agents,
        template: Template::Plan.load(&repo.massgen_dir())?,
        sandbox,
        worktree_root,
        max_attempts: config
            .plan
            .max_attempts
            .unwrap_or(planner::DEFAULT_MAX_ATTEMPTS),
    };
    ctx.ui.info(&format!(
        "massgen: planner {} is writing a plan (up to {} attempt(s))",
        args.planner, req.max_attempts
    ));
    let repo = Arc::new(repo);
    let rt = super::super::runtime()?;
    let planned = rt.block_on(planner::plan(repo.clone(), req))?;
    for warning in &planned.warnings {
        ctx.ui.warn(warning);
    }
    let path = output.unwrap_or_else(|| {
        crate::plan::plans_dir(&repo.massgen_dir()).join(format!("{}.toml", planned.plan.name))
    });
    refuse_existing(ctx, &path, args.force)?;
    planner::save(&path, &planned.toml, args.force)?;
    let shown = path.strip_prefix(&ctx.cwd).unwrap_or(&path).to_owned();
    ctx.ui.info(&format!(
        "massgen: wrote {} (planner {}, attempt {})",
        shown.display(),
        args.planner,
        planned.attempts
    ));
    if args.json {
        ctx.ui.json(&to_json(&planned, &shown, &args.planner));
    } else {
        ctx.ui.out(&format!(
            "{}run it with `git massgen plan run {}`\n",
            render(&planned.plan),
            shown.display()
        ));
    }
    Ok(Exit::Success)
}

/// Exit 2 when `path` exists and may not be replaced.
fn refuse_existing(ctx: &Ctx, path: &Path, force: bool) -> Result<(), CliError> {
    if force || !path.exists() {
        return Ok(());
    }
    let shown = path.strip_prefix(&ctx.cwd).unwrap_or(path);
    Err(CliError::usage(format!("{} exists", shown.display()))
        .hint("pass --force to replace it, or --output FILE to write the plan elsewhere"))
}

/// `plan new --json`.
fn to_json(planned: &Planned, shown: &Path, planner: &str) -> serde_json::Value {
    let plan = &planned.plan;
    json!({
        "name": plan.name,
        "path": shown.display().to_string(),
        "planner": planner,
        "attempts": planned.attempts,
        "usage": planned.usage,
        "warnings": planned.warnings,
        "tasks": plan.tasks.iter().map(|t| json!({
            "id": t.id,
            "title": t.title,
            "task": t.task,
            "depends_on": t.depends_on,
            "wave": t.wave,
            "agents": t.agents,
            "test": t.test,
        })).collect::<Vec<_>>(),
        "waves": plan
            .waves()
            .iter()
            .map(|w| w.iter().map(|t| t.id.as_str()).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
    })
}
