//! `git massgen run`: the main job.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::commands::Ctx;
use crate::config::{self, Config};
use crate::error::{CliError, Exit};
use crate::run::layout;
use crate::run::merge::MergeOptions;
use crate::run::pipeline::{self, Event};
use crate::run::plan::{self, RunOptions};
use crate::run::state::RunState;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The task; `-` reads it from stdin.
    #[arg(value_name = "TASK", required_unless_present = "task_file")]
    pub task: Option<String>,
    /// Read the task from a file.
    #[arg(long, value_name = "PATH", conflicts_with = "task")]
    pub task_file: Option<PathBuf>,
    /// Run this configured agent (repeatable; default: all configured agents).
    #[arg(short, long = "agent", value_name = "NAME")]
    pub agents: Vec<String>,
    /// An ad-hoc command agent, `NAME=COMMAND` (split into words like a shell, run without one).
    #[arg(long = "agent-cmd", value_name = "NAME=COMMAND")]
    pub agent_cmds: Vec<String>,
    /// Test command run with `sh -c` in each candidate's worktree (overrides config).
    #[arg(long, value_name = "CMD")]
    pub test: Option<String>,
    /// Time limit per agent, e.g. 90s or 10m.
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    pub timeout: Option<Duration>,
    /// How many agents (and test commands) run at once; default: all.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// The commit agents start from (default: HEAD).
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Merge the winner into the current branch when done.
    #[arg(long)]
    pub merge: bool,
    /// With --merge: merge even though something changed in your repository while the
    /// agents ran (a breach; without this flag it refuses).
    #[arg(long, requires = "merge")]
    pub allow_breach: bool,
    /// Keep the worktrees after scoring (default: remove them, keep the branches).
    #[arg(long)]
    pub keep: bool,
    /// Do not run the `[worktree] setup` commands in the new worktrees.
    #[arg(long)]
    pub no_setup: bool,
    /// Confine agents, setup and tests to their worktree: auto (where it can), required, off.
    #[arg(long, value_enum, value_name = "MODE")]
    pub sandbox: Option<crate::config::SandboxMode>,
    /// How worktrees are made: checkout (default), overlay (copy-on-write, Linux), auto.
    #[arg(long, value_enum, value_name = "MODE")]
    pub worktree_mode: Option<crate::config::WorktreeMode>,
    /// Where agents and their setup run: local (default), slurm (`[executor.slurm]`).
    #[arg(long, value_enum, value_name = "KIND")]
    pub executor: Option<crate::config::ExecutorKind>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write every progress event as a JSON line (`time`, `run`, `agent`, `kind`, `data`)
    /// to PATH, or to stdout with `-`.
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// Attach an image to the task (repeatable): PNG, JPEG, GIF or WebP, at most 5 MiB.
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,
    /// Rate limits for every built-in LLM agent of this run, e.g. `rpm=10,tpm=200000,rpd=500`
    /// (replaces the shipped and configured profiles).
    #[arg(long, value_name = "LIMITS", value_parser = crate::llm::limits::parse_flag, conflicts_with = "no_rate_limit")]
    pub rate_limit: Option<crate::llm::limits::Limits>,
    /// No rate limits for the built-in LLM agents of this run.
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Rounds at most: after each, every agent sees its peers' candidates (anonymized) and
    /// revises its own or votes; the run stops early when all vote without changing anything.
    /// `auto`: 2 when revised candidates often won on this kind of task, else 1.
    #[arg(long, value_name = "N|auto", default_value = "1", value_parser = plan::parse_rounds)]
    pub rounds: plan::Rounds,
    /// Run N of the agents, picked by their record on this kind of task (`[run] pick`).
    #[arg(long, value_name = "N", conflicts_with = "continue_run")]
    pub pick: Option<usize>,
    /// What picking goes for: wins, or cheap (wins per dollar).
    #[arg(long, value_enum, value_name = "WHAT", default_value_t)]
    pub prefer: crate::learn::pick::Prefer,
    /// The seed of picking's draws, to pick the same again (default: random, printed).
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,
    /// Start a new turn on run RUN: its agents continue from their own candidates, with
    /// TASK as the follow-up.
    #[arg(long = "continue", value_name = "RUN", conflicts_with_all = ["agent_cmds", "images", "base"])]
    pub continue_run: Option<String>,
    /// With --continue: only the run's winner continues.
    #[arg(long, requires = "continue_run")]
    pub winner_only: bool,
}

pub fn run(ctx: &Ctx, args: RunArgs) -> Result<Exit, CliError> {
    let task = super::read_task(args.task.as_deref(), args.task_file.as_deref())?;
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    if args.merge {
        crate::run::merge::check_target(&repo)?;
    }
    let images = plan::load_images(&args.images)?;
    let llm = plan::llm_shared(
        &repo,
        &config,
        args.rate_limit,
        args.no_rate_limit,
        images.clone(),
    )?;
    if let Some(run) = &args.continue_run {
        return continue_run(ctx, repo, &config, &args, &llm, run, task);
    }
    let mut opts = options(&args);
    let agents = plan::select_agents(&config, &opts, &llm)?;
    let pick = plan::PickOptions::new(args.pick, config.run.pick, args.prefer, args.seed);
    let learned = plan::apply_learning(&repo, &task, agents, pick, args.rounds)?;
    let learned = said(ctx, learned);
    opts.rounds = learned.rounds;
    let base_rev = args.base.as_deref().unwrap_or("HEAD");
    // An unborn HEAD is only an error when the base is HEAD itself.
    let head = if base_rev == "HEAD" {
        Some(repo.head()?)
    } else {
        repo.head().ok()
    };
    let base = repo.resolve_commit(base_rev)?;
    let base_branch = head.and_then(|(id, branch)| (id == base).then_some(branch).flatten());
    let start = plan::Start {
        task,
        base,
        base_branch,
    };
    let mut plan = plan::plan(&repo, &config, &opts, &llm, start, learned.agents)?;
    plan.picked = learned.picked;
    super::keep_disk_under(ctx, &repo, &plan, None)?;
    let repo = Arc::new(repo);
    let rt = super::runtime()?;
    let progress = super::progress_for(ctx, args.events.as_deref(), args.json, "")?;
    let state = rt.block_on(super::execute(repo.clone(), plan, progress.clone()))?;
    let merge = merge_options(&args);
    super::finish(ctx, &repo, state, merge, args.json, Some(&progress))
}

/// `run --continue RUN "<follow-up>"`.
fn continue_run(
    ctx: &Ctx,
    repo: crate::git::Repo,
    config: &Config,
    args: &RunArgs,
    llm: &crate::agent::builtin::Shared,
    run: &str,
    follow_up: String,
) -> Result<Exit, CliError> {
    let mut opts = options(args);
    let run = crate::run::state::resolve(&layout::runs_dir(&repo), run)?;
    let state = RunState::load(&layout::RunDir::new(&repo, &run))?;
    let learned = plan::apply_learning(&repo, &state.task, Vec::new(), None, args.rounds)?;
    opts.rounds = said(ctx, learned).rounds;
    let with_candidate = |c: &&crate::run::state::Candidate| c.commit.is_some();
    let mut names: Vec<String> = if args.winner_only {
        vec![state.winner.clone().ok_or_else(|| {
            CliError::new(
                Exit::Negative,
                format!("run {run} has no winner to continue from"),
            )
            .hint(format!(
                "continue every agent: git massgen run --continue {run} \"...\""
            ))
        })?]
    } else if !args.agents.is_empty() {
        args.agents.clone()
    } else {
        // Agents that never left a candidate (they could not start) have nothing to go on.
        state
            .candidates
            .iter()
            .filter(with_candidate)
            .map(|c| c.agent.clone())
            .collect()
    };
    if !args.agents.is_empty() {
        for a in &args.agents {
            state.require_candidate(a)?;
        }
        names.retain(|n| args.agents.contains(n));
    }
    if names.is_empty() {
        return Err(CliError::usage(format!(
            "no agent of run {run} to continue{}",
            if args.winner_only {
                " (the winner is not among the agents named)"
            } else {
                ""
            }
        ))
        .hint(format!(
            "see the run's agents with: git massgen status {run}"
        )));
    }
    let mut agents = Vec::new();
    for name in &names {
        let c = state.require_candidate(name)?;
        let spec = match (
            config.agents.iter().find(|a| a.name.get_ref() == name),
            &c.command,
        ) {
            (Some(a), _) => plan::agent_from_config(a, &opts, config, llm)?,
            (None, Some(argv)) => plan::ad_hoc(
                name.clone(),
                argv.clone(),
                plan::default_timeout(&opts, config),
            ),
            (None, None) => {
                return Err(CliError::usage(format!(
                    "agent `{name}` of run {run} is no longer in .massgen/config.toml"
                ))
                .hint("configure it again, or continue the others with --agent NAME"));
            }
        };
        agents.push(spec);
    }
    let start = plan::Start {
        task: state.task.clone(),
        base: repo.resolve_commit(&state.base)?,
        base_branch: state.base_branch.clone(),
    };
    let mut plan = plan::plan(&repo, config, &opts, llm, start, agents)?;
    // The run's own test command, unless this turn names another.
    if args.test.is_none() && config.score.test.is_none() {
        plan.test = state.test_command.clone();
    }
    super::keep_disk_under(ctx, &repo, &plan, Some(&run))?;
    let repo = Arc::new(repo);
    let rt = super::runtime()?;
    let progress = super::progress_for(ctx, args.events.as_deref(), args.json, &run)?;
    let reporter = {
        let progress = progress.clone();
        Arc::new(move |e: Event| progress.report(e))
    };
    let state = rt.block_on(pipeline::continue_run(
        repo.clone(),
        plan,
        &run,
        &follow_up,
        reporter,
    ));
    progress.finish();
    super::finish(
        ctx,
        &repo,
        state?,
        merge_options(args),
        args.json,
        Some(&progress),
    )
}

/// The run's flags as the plan takes them.
fn options(args: &RunArgs) -> RunOptions {
    RunOptions {
        agents: args.agents.clone(),
        agent_cmds: args.agent_cmds.clone(),
        test: args.test.clone(),
        timeout: args.timeout,
        jobs: args.jobs,
        keep: args.keep,
        images: args.images.clone(),
        rounds: args.rounds.fixed_or_one(),
        no_setup: args.no_setup,
        sandbox: args.sandbox,
        worktree_mode: args.worktree_mode,
        executor: args.executor,
    }
}

/// Says on stderr what was learned and applied: why each agent was picked, the rounds.
fn said(ctx: &Ctx, learned: plan::Learned) -> plan::Learned {
    (learned.notes.iter()).for_each(|n| ctx.ui.info(&format!("massgen: {n}")));
    learned
}

/// `--merge` (with `--allow-breach`) as merge options.
fn merge_options(args: &RunArgs) -> Option<MergeOptions> {
    args.merge.then_some(MergeOptions {
        allow_breach: args.allow_breach,
        ..MergeOptions::default()
    })
}
