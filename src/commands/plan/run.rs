//! `git massgen plan run PLAN [--jobs N] [--merge] [--json]`: runs a task plan
//! (`plan::run` does the work), one line on stderr per task started and ended, then the
//! tasks' table (or the state as JSON). A plan with a state is resumed.
//!
//! Exit codes: 0 every task done (and merged with `--merge`); 1 some task failed, was
//! blocked or skipped, or `--merge` was refused by conflicts or changed files; 2 usage
//! (a bad plan); 130 interrupted (run it again to resume).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::git::ObjectId;
use crate::plan::Task;
use crate::plan::run::{self as plan_run, End, Options, PlanRunError};
use crate::run::clean::Said;
use crate::run::plan::{self as run_plan, RunOptions, Start};

/// `plan run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan: a path, or a bare name (no `/`, no `.toml`) meaning
    /// .massgen/plans/NAME.toml.
    #[arg(value_name = "PLAN")]
    pub file: PathBuf,
    /// How many tasks run at once (default: `[run] jobs`, else 4).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// When every task is done, merge the integration branch into the branch the plan
    /// started from (which must be the current branch).
    #[arg(long)]
    pub merge: bool,
    /// Where the tasks' agents and setup run: local (default), slurm (`[executor.slurm]`).
    #[arg(long, value_enum, value_name = "KIND")]
    pub executor: Option<crate::config::ExecutorKind>,
    /// Print the plan's state as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write every task's status change and every event of its run, one JSON object per
    /// line, to PATH (`-`: stdout; the tasks' table then goes to stderr).
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: &RunArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    let (path, shown) = super::locate(ctx, Some(&repo), &args.file);
    let names: Vec<String> = config
        .agents
        .iter()
        .map(|a| a.name.get_ref().clone())
        .collect();
    let plan = crate::plan::load(&path, &shown, Some(&names))
        .map_err(|e| super::report_problems(ctx, e))?;
    if args.merge {
        crate::run::merge::check_target(&repo)?;
    }
    let events = crate::commands::event_sink(ctx, args.events.as_deref(), args.json)?
        .map(|sink| Arc::new(crate::ui::progress::PlanEvents::new(sink, &plan.name)));
    crate::run::layout::ensure_gitignore(&repo)?;
    let llm = run_plan::llm_shared(&repo, &config, None, false, Vec::new())?;
    let root = crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref());
    let (state, resumed) =
        plan_run::prepare(&repo, &plan, &path, &root, &mut super::super::say(ctx))
            .map_err(plan_error)?;
    let jobs = args
        .jobs
        .map(usize::from)
        .or(config.run.jobs)
        .unwrap_or(DEFAULT_JOBS);
    let opts = Options {
        observer: events.clone().map(|e| e as Arc<dyn plan_run::Observer>),
        ..Options::new(
            &config,
            &repo.workdir,
            root,
            plan.integration_test.clone(),
            jobs,
        )
    };
    let integration = state.integration_branch.clone();
    let repo = Arc::new(repo);
    let make = |task: &Task, base: ObjectId| {
        let opts = RunOptions {
            agents: task.agents.clone(),
            test: task.test.clone(),
            timeout: task.timeout,
            rounds: task.rounds.unwrap_or(1),
            executor: args.executor,
            ..RunOptions::default()
        };
        let agents = run_plan::select_agents(&config, &opts, &llm)?;
        let start = Start {
            task: task.task.clone(),
            base,
            base_branch: Some(integration.clone()),
        };
        run_plan::plan(&repo, &config, &opts, &llm, start, agents)
    };
    let say: plan_run::Say = {
        let ui = Arc::new(ctx.ui.sibling());
        Arc::new(move |said| match said {
            Said::Info(line) => ui.info(&line),
            Said::Warn(line) => ui.warn(&line),
        })
    };
    let rt = super::super::runtime()?;
    let (state, end) = rt
        .block_on(plan_run::drive(
            repo.clone(),
            &plan,
            state,
            resumed,
            &opts,
            &make,
            say,
        ))
        .map_err(plan_error)?;
    let mut outcome = None;
    if args.merge {
        if end == End::Done {
            let waiting = super::super::merge_waiting(ctx);
            outcome = Some(
                crate::plan::integrate::merge_into_target(&repo, &state, &waiting)
                    .map_err(plan_error)?,
            );
        } else {
            ctx.ui
                .info("massgen: not merged: not every task of the plan is done");
        }
    }
    if let Some(o) = outcome.as_ref().filter(|o| o.merged)
        && let Some(commit) = &o.commit
    {
        let mut state = state.clone();
        state.merged = Some(commit.clone());
        state.save(&repo)?;
    }
    if let Some(events) = &events {
        let end = match end {
            End::Done => "done",
            End::Incomplete => "incomplete",
            End::Interrupted => "interrupted",
        };
        events.finished(end, &state);
    }
    if args.json {
        let mut value = serde_json::to_value(&state).expect("plan state serializes");
        if let Some(o) = &outcome {
            value["merge"] = serde_json::to_value(o).expect("merge outcome serializes");
        }
        ctx.ui.json(&value);
    } else {
        let mut text = super::status::render(&state);
        if let Some(o) = &outcome {
            text.push_str(&crate::ui::render::render_outcome(o));
        }
        if events.as_ref().is_some_and(|e| e.owns_stdout()) {
            ctx.ui.info(text.trim_end());
        } else {
            ctx.ui.out(&text);
        }
    }
    Ok(match end {
        End::Interrupted => Exit::Interrupted,
        End::Done if outcome.is_none_or(|o| o.merged) => Exit::Success,
        _ => Exit::Negative,
    })
}

/// Tasks at once when neither `--jobs` nor `[run] jobs` says.
const DEFAULT_JOBS: usize = 4;

/// A plan that cannot run, with what to do about it.
fn plan_error(err: PlanRunError) -> CliError {
    match err {
        PlanRunError::Run(e) => e.into(),
        PlanRunError::Git(e) => e.into(),
        PlanRunError::Merge(e) => e.into(),
        PlanRunError::Setup(e) => e.into(),
        PlanRunError::Busy { ref plan, .. } => {
            let hint = format!("see how far it got with: git massgen plan status {plan}");
            CliError::usage(err).hint(hint)
        }
        PlanRunError::Stray { ref branch, .. } => {
            let short = branch.trim_start_matches("refs/heads/").to_owned();
            CliError::usage(err).hint(format!(
                "it is left from an earlier run of this plan; delete it to start again: git branch -D {short}"
            ))
        }
        PlanRunError::Moved {
            ref expected,
            ref branch,
            ..
        } => {
            let short = branch.trim_start_matches("refs/heads/").to_owned();
            let expected = expected.clone();
            CliError::new(Exit::Negative, err).hint(format!(
                "put it back to go on: git update-ref refs/heads/{short} {expected}"
            ))
        }
        PlanRunError::NotOnTarget { ref target, .. } => {
            let short = target.trim_start_matches("refs/heads/").to_owned();
            CliError::new(Exit::Negative, err).hint(format!(
                "switch to it (git switch {short}) and merge the integration branch yourself, or run the plan again with --merge"
            ))
        }
    }
}
