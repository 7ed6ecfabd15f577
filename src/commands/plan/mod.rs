//! `git massgen plan`: task plans. `check FILE [--json]` reads a plan, reports every
//! problem in it at its line and column, and shows a valid plan's tasks in waves; `run`
//! (`run.rs`) runs one, `status` (`status.rs`) shows how far a plan got, `new` (`new.rs`)
//! has a planner agent write one, `resolve` and `continue` (`resolve.rs`) take a conflict
//! resolved by hand, and `report` (`report.rs`) writes the plan's HTML page.
//!
//! Exit codes of `check`: 0 the plan is valid; 2 (usage) it is not, every problem printed,
//! or there is no such plan; 3 a bare name outside a repository; 4 the file cannot be read.

mod new;
mod report;
mod resolve;
mod run;
mod status;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Ctx;
use crate::error::{CliError, Exit};
use crate::plan::{self, PlanFileError, TaskPlan};
use crate::ui::count;

/// `git massgen plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub action: PlanAction,
}

#[derive(Debug, Subcommand)]
pub enum PlanAction {
    /// Check a plan file and show its tasks in waves (the tasks of a wave can run at once).
    Check(CheckArgs),
    /// Run a plan: each task a run from the plan's integration branch once what it depends
    /// on is integrated; winners merged onto that branch; resumes a plan run cut short.
    Run(run::RunArgs),
    /// Show a plan's tasks with their status, run, winner and reason; without PLAN, the
    /// plans that were run.
    Status(status::StatusArgs),
    /// Check out a blocked task's conflicting merge in a worktree, to resolve it by hand.
    Resolve(resolve::ResolveArgs),
    /// Put the merges resolved by hand on the integration branch, then run the rest of the
    /// plan (as `plan run`).
    Continue(run::RunArgs),
    /// Write the plan's HTML page: its graph, each task's winner, time and cost, and the
    /// conflict matrix.
    Report(report::ReportArgs),
    /// Have a configured agent write a plan for a goal: checked like `plan check` (an
    /// invalid plan is asked for again), written to .massgen/plans/NAME.toml, never run.
    New(new::NewArgs),
}

/// `plan check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The plan: a path, or a bare name (no `/`, no `.toml`) meaning
    /// .massgen/plans/NAME.toml.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print one JSON object on stdout: the plan with its waves, or its errors.
    #[arg(long)]
    pub json: bool,
}

pub fn plan(ctx: &Ctx, args: &PlanArgs) -> Result<Exit, CliError> {
    match &args.action {
        PlanAction::Check(check_args) => check(ctx, check_args),
        PlanAction::Run(run_args) => run::run(ctx, run_args),
        PlanAction::Status(status_args) => status::status(ctx, status_args),
        PlanAction::Resolve(resolve_args) => resolve::resolve(ctx, resolve_args),
        PlanAction::Continue(run_args) => resolve::continue_plan(ctx, run_args),
        PlanAction::Report(report_args) => report::report(ctx, report_args),
        PlanAction::New(new_args) => new::new(ctx, new_args),
    }
}

/// The state of the plan `arg` names (its name, or its file); a usage error when it was
/// never run.
fn load_state(
    ctx: &Ctx,
    repo: &crate::git::Repo,
    arg: &Path,
) -> Result<plan::state::PlanState, CliError> {
    let name = plan_name(ctx, repo, arg)?;
    plan::state::load(repo, &name)?.ok_or_else(|| {
        CliError::usage(format!("plan {name} was never run"))
            .hint(format!("run it with: git massgen plan run {name}"))
    })
}

/// The name of the plan `arg` names: a bare name is the plan's name; a path names the
/// plan its file declares.
fn plan_name(ctx: &Ctx, repo: &crate::git::Repo, arg: &Path) -> Result<String, CliError> {
    match arg.to_str().filter(|a| plan::is_bare_name(a)) {
        Some(name) => Ok(name.to_owned()),
        None => {
            let (path, shown) = locate(ctx, Some(repo), arg);
            Ok(plan::load(&path, &shown, None)
                .map_err(|e| report_problems(ctx, e))?
                .name)
        }
    }
}

fn check(ctx: &Ctx, args: &CheckArgs) -> Result<Exit, CliError> {
    let bare = args.file.to_str().filter(|arg| plan::is_bare_name(arg));
    // A path can be checked outside a repository (against no configuration); a bare name
    // needs one to find `.massgen/plans/`.
    let repo = match ctx.repo() {
        Ok(repo) => Some(repo),
        Err(e) if bare.is_none() && e.exit == Exit::Repository => None,
        Err(e) => return Err(e),
    };
    let (path, shown) = locate(ctx, repo.as_ref(), &args.file);
    let (agents, default_test) = match &repo {
        Some(repo) => {
            let config = ctx.config(repo)?;
            let names: Vec<String> = config
                .agents
                .iter()
                .map(|a| a.name.get_ref().clone())
                .collect();
            (Some(names), config.score.test)
        }
        None => {
            ctx.ui.info(
                "massgen: not in a git repository; agent names are not checked against a configuration",
            );
            (None, None)
        }
    };
    match plan::load(&path, &shown, agents.as_deref()) {
        Ok(plan) => {
            if args.json {
                ctx.ui
                    .json(&PlanJson::new(&plan, &shown, default_test.as_deref()));
            } else {
                ctx.ui.out(&render(&plan));
            }
            Ok(Exit::Success)
        }
        Err(err) => {
            if args.json
                && let PlanFileError::Invalid { problems, .. } = &err
            {
                ctx.ui.json(&serde_json::json!({
                    "path": shown.display().to_string(),
                    "valid": false,
                    "errors": problems,
                }));
            }
            Err(report_problems(ctx, err))
        }
    }
}

/// Where a plan argument points, and how to name it: a bare name is
/// `.massgen/plans/NAME.toml` (in `repo`), anything else a path from the directory.
fn locate(ctx: &Ctx, repo: Option<&crate::git::Repo>, arg: &Path) -> (PathBuf, PathBuf) {
    match (arg.to_str().filter(|a| plan::is_bare_name(a)), repo) {
        (Some(name), Some(repo)) => {
            let path = plan::plans_dir(&repo.massgen_dir()).join(format!("{name}.toml"));
            let shown = path.strip_prefix(&ctx.cwd).unwrap_or(&path).to_owned();
            (path, shown)
        }
        _ => (ctx.cwd.join(arg), arg.to_owned()),
    }
}

/// Prints every problem of a plan but the last, which is returned as the command's error.
fn report_problems(ctx: &Ctx, err: PlanFileError) -> CliError {
    let mut errors = crate::error::plan_errors(err);
    let last = errors.pop().expect("a plan error has at least one problem");
    for e in &errors {
        ctx.ui.error(e);
    }
    last
}

/// `plan NAME: N tasks in K waves`, then one line per wave, each task with what it waits
/// for.
fn render(plan: &TaskPlan) -> String {
    let waves = plan.waves();
    let mut out = format!(
        "plan {}: {} in {}\n",
        plan.name,
        count(plan.tasks.len(), "task"),
        count(waves.len(), "wave")
    );
    for (i, wave) in waves.iter().enumerate() {
        let tasks: Vec<String> = wave
            .iter()
            .map(|t| {
                if t.depends_on.is_empty() {
                    t.id.clone()
                } else {
                    format!("{} (after {})", t.id, t.depends_on.join(", "))
                }
            })
            .collect();
        out.push_str(&format!("wave {}: {}\n", i + 1, tasks.join(", ")));
    }
    out
}

/// `plan check --json` of a valid plan.
#[derive(Serialize)]
struct PlanJson<'a> {
    name: &'a str,
    path: String,
    valid: bool,
    /// The plan's, else the configuration's `[score] test`.
    integration_test: Option<&'a str>,
    resolver: Option<&'a str>,
    tasks: Vec<TaskJson<'a>>,
    /// Task ids by wave, wave 1 first.
    waves: Vec<Vec<&'a str>>,
}

#[derive(Serialize)]
struct TaskJson<'a> {
    id: &'a str,
    title: &'a str,
    depends_on: &'a [String],
    wave: usize,
    /// Empty: every configured agent.
    agents: &'a [String],
    test: Option<&'a str>,
    rounds: Option<u32>,
    timeout_secs: Option<u64>,
}

impl<'a> PlanJson<'a> {
    fn new(plan: &'a TaskPlan, shown: &Path, default_test: Option<&'a str>) -> Self {
        PlanJson {
            name: &plan.name,
            path: shown.display().to_string(),
            valid: true,
            integration_test: plan.integration_test.as_deref().or(default_test),
            resolver: plan.resolver.as_deref(),
            tasks: plan
                .tasks
                .iter()
                .map(|t| TaskJson {
                    id: &t.id,
                    title: &t.title,
                    depends_on: &t.depends_on,
                    wave: t.wave,
                    agents: &t.agents,
                    test: t.test.as_deref(),
                    rounds: t.rounds,
                    timeout_secs: t.timeout.map(|d| d.as_secs()),
                })
                .collect(),
            waves: plan
                .waves()
                .iter()
                .map(|w| w.iter().map(|t| t.id.as_str()).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_rendered_with_what_each_task_waits_for() {
        let text = "name = \"auth\"\n\
            [[tasks]]\nid = \"schema\"\ntask = \"x\"\n\
            [[tasks]]\nid = \"api\"\ntask = \"x\"\ndepends_on = [\"schema\"]\n\
            [[tasks]]\nid = \"ui\"\ntask = \"x\"\ndepends_on = [\"schema\"]\n\
            [[tasks]]\nid = \"e2e\"\ntask = \"x\"\ndepends_on = [\"api\", \"ui\"]\n";
        let plan = plan::file::parse(text, Path::new("auth.toml"), "auth", None).unwrap();
        assert_eq!(
            render(&plan),
            "plan auth: 4 tasks in 3 waves\n\
             wave 1: schema\n\
             wave 2: api (after schema), ui (after schema)\n\
             wave 3: e2e (after api, ui)\n"
        );
    }
}
