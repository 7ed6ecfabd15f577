//! `git massgen run`: the main job.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::cli::{CliAgent, Preset};
use crate::agent::prompt::Template;
use crate::agent::{self, AgentSpec, Kind};
use crate::commands::Ctx;
use crate::config::{self, Config};
use crate::error::{CliError, Exit};
use crate::judge::{self, Judge, JudgeKind};
use crate::run::layout;
use crate::run::merge::MergeOptions;
use crate::run::pipeline::{self, Event, Plan};
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
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// Start a new turn on run RUN: its agents continue from their own candidates, with
    /// TASK as the follow-up.
    #[arg(long = "continue", value_name = "RUN", conflicts_with_all = ["agent_cmds", "images", "base"])]
    pub continue_run: Option<String>,
    /// With --continue: only the run's winner continues.
    #[arg(long, requires = "continue_run")]
    pub winner_only: bool,
}

pub fn run(ctx: &Ctx, args: RunArgs) -> Result<Exit, CliError> {
    let task = read_task(&args)?;
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    if args.merge {
        check_merge_target(&repo)?;
    }
    let images = load_images(&args.images)?;
    let llm = llm_shared(
        &repo,
        &config,
        args.rate_limit,
        args.no_rate_limit,
        images.clone(),
    )?;
    if let Some(run) = &args.continue_run {
        return continue_run(ctx, repo, &config, &args, &llm, run, task);
    }
    let agents = select_agents(&config, &args, &llm)?;
    let base_rev = args.base.as_deref().unwrap_or("HEAD");
    // An unborn HEAD is only an error when the base is HEAD itself.
    let head = if base_rev == "HEAD" {
        Some(repo.head()?)
    } else {
        repo.head().ok()
    };
    let base = repo.resolve_commit(base_rev)?;
    let base_branch = head.and_then(|(id, branch)| (id == base).then_some(branch).flatten());
    let plan = plan(&repo, &config, &args, &llm, task, base, base_branch, agents)?;
    let repo = Arc::new(repo);
    let rt = runtime()?;
    let progress = progress_for(ctx, &args, "")?;
    let state = rt.block_on(execute(repo.clone(), plan, progress.clone()))?;
    finish(
        ctx,
        &repo,
        state,
        merge_options(&args),
        args.json,
        Some(&progress),
    )
}

/// The progress display of a run: live lines on a terminal (not with `--json` or
/// `--quiet`), plain lines otherwise, and the `--events` stream.
pub fn progress_for(
    ctx: &Ctx,
    args: &RunArgs,
    run: &str,
) -> Result<Arc<crate::ui::progress::Progress>, CliError> {
    use std::io::IsTerminal as _;
    let events = match &args.events {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            if args.json {
                return Err(
                    CliError::usage("--events - and --json would both write to stdout")
                        .hint("write the events to a file: --events run.ndjson"),
                );
            }
            Some(crate::ui::progress::EventSink::Stdout)
        }
        Some(p) => Some(crate::ui::progress::EventSink::File(
            std::fs::File::create(ctx.cwd.join(p)).map_err(|e| {
                CliError::usage(format!("cannot write the events to {}: {e}", p.display()))
            })?,
        )),
    };
    let live = std::io::stderr().is_terminal() && !args.json && !ctx.ui.is_quiet();
    Ok(Arc::new(crate::ui::progress::Progress::new(
        Arc::new(ctx.ui.sibling()),
        live,
        events,
        run,
    )))
}

/// What every built-in agent, judge and reviewer shares: prompts, prices, rate limits.
pub(super) fn llm_shared(
    repo: &crate::git::Repo,
    config: &Config,
    flag: Option<crate::llm::limits::Limits>,
    unlimited: bool,
    images: Vec<crate::llm::chat::Image>,
) -> Result<crate::agent::builtin::Shared, CliError> {
    Ok(crate::agent::builtin::Shared {
        system: Template::LlmSystem.load(&repo.massgen_dir())?,
        nudge: Template::Nudge.load(&repo.massgen_dir())?,
        prices: {
            let path = repo.massgen_dir().join("prices.toml");
            let text = std::fs::read_to_string(&path).ok();
            crate::llm::provider::prices(text.as_deref()).map_err(CliError::usage)?
        },
        limits: {
            let mut l = crate::llm::limits::shipped();
            l.extend(config.limits.clone());
            l
        },
        flag,
        unlimited,
        images,
        limits_dir: crate::llm::limits::Limiter::default_dir(),
    })
}

/// An in-process LLM (a judge or a reviewer): its spec, and its key from its `env` table or
/// the environment. `role` names it in messages ("judge", "reviewer").
pub(super) fn in_process_llm(
    c: &config::AgentConfig,
    llm: &crate::agent::builtin::Shared,
    role: &str,
) -> Result<(crate::agent::builtin::Spec, Option<judge::Secret>), CliError> {
    let spec = crate::agent::builtin::spec_for(c, llm).map_err(|e| {
        CliError::usage(e.replacen("agent `", &format!("{role} `"), 1)).hint(format!(
            "check the {role}'s provider and key, or remove it from the configuration"
        ))
    })?;
    let key = spec.endpoint.api_key_env.as_ref().and_then(|var| {
        c.env
            .get(var)
            .cloned()
            .or_else(|| std::env::var(var).ok())
            .filter(|k| !k.is_empty())
    });
    Ok((spec, key.map(judge::Secret)))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(Exit::Failure, e))
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
    let run = crate::run::state::resolve(&layout::runs_dir(&repo), run)?;
    let state = RunState::load(&layout::RunDir::new(&repo, &run))?;
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
            (Some(a), _) => agent_from_config(a, args, config, llm)?,
            (None, Some(argv)) => AgentSpec {
                name: name.clone(),
                kind: Kind::Command(argv.clone()),
                env: Default::default(),
                timeout: default_timeout(args, config),
                ad_hoc: true,
            },
            (None, None) => {
                return Err(CliError::usage(format!(
                    "agent `{name}` of run {run} is no longer in .massgen/config.toml"
                ))
                .hint("configure it again, or continue the others with --agent NAME"));
            }
        };
        agents.push(spec);
    }
    let base = repo.resolve_commit(&state.base)?;
    let mut plan = plan(
        &repo,
        config,
        args,
        llm,
        state.task.clone(),
        base,
        state.base_branch.clone(),
        agents,
    )?;
    // The run's own test command, unless this turn names another.
    if args.test.is_none() && config.score.test.is_none() {
        plan.test = state.test_command.clone();
    }
    let repo = Arc::new(repo);
    let rt = runtime()?;
    let progress = progress_for(ctx, args, &run)?;
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
    finish(
        ctx,
        &repo,
        state?,
        merge_options(args),
        args.json,
        Some(&progress),
    )
}

/// The plan of a run (or of a turn of `--continue`) from flags and configuration.
#[allow(clippy::too_many_arguments)]
fn plan(
    repo: &crate::git::Repo,
    config: &Config,
    args: &RunArgs,
    llm: &crate::agent::builtin::Shared,
    task: String,
    base: crate::git::ObjectId,
    base_branch: Option<String>,
    agents: Vec<AgentSpec>,
) -> Result<Plan, CliError> {
    let massgen = repo.massgen_dir();
    let jobs = args
        .jobs
        .map(usize::from)
        .or(config.run.jobs)
        .unwrap_or(agents.len());
    let plan = Plan {
        task,
        base,
        base_branch,
        jobs,
        test: args.test.clone().or(config.score.test.clone()),
        test_timeout: config
            .score
            .test_timeout
            .unwrap_or(config::DEFAULT_TEST_TIMEOUT),
        keep: args.keep,
        worktree_root: layout::worktree_root(repo, config.run.worktree_root.as_deref()),
        prompt_template: Template::Prompt.load(&massgen)?,
        nudge: llm.nudge.clone(),
        images: args
            .images
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect(),
        agents,
        rounds: args.rounds,
        round_template: Template::Round.load(&massgen)?,
        continue_template: Template::Continue.load(&massgen)?,
        judges: judges(config, llm)?,
        judging: pipeline::Judging {
            when: config.judging.when,
            diff_budget: config
                .judging
                .diff_budget
                .unwrap_or(judge::DEFAULT_DIFF_BUDGET),
            max_attempts: config
                .judging
                .max_attempts
                .unwrap_or(judge::DEFAULT_MAX_ATTEMPTS),
            template: Template::Judge.load(&massgen)?,
        },
        weights: config.score.weights,
    };
    Ok(plan)
}

/// The configured judges, resolved.
fn judges(config: &Config, llm: &crate::agent::builtin::Shared) -> Result<Vec<Judge>, CliError> {
    let timeout = config.judging.timeout.unwrap_or(judge::DEFAULT_TIMEOUT);
    config
        .judges
        .iter()
        .map(|j| {
            let name = j.name.get_ref().clone();
            let kind = if j.kind == config::AgentKind::Llm {
                let (spec, key) = in_process_llm(j, llm, "judge")?;
                JudgeKind::Llm {
                    endpoint: Box::new(spec.endpoint),
                    key,
                }
            } else {
                JudgeKind::Command {
                    argv: j.command.clone(),
                    env: j.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                }
            };
            Ok(Judge {
                name,
                kind,
                timeout: j.timeout.unwrap_or(timeout),
            })
        })
        .collect()
}

/// Runs a plan, reporting its progress.
pub async fn execute(
    repo: Arc<crate::git::Repo>,
    plan: Plan,
    progress: Arc<crate::ui::progress::Progress>,
) -> Result<RunState, CliError> {
    let reporter = {
        let progress = progress.clone();
        Arc::new(move |e: Event| progress.report(e))
    };
    let state = pipeline::execute(repo, plan, reporter).await;
    progress.finish();
    Ok(state?)
}

/// `--merge` (with `--allow-breach`) as merge options.
fn merge_options(args: &RunArgs) -> Option<MergeOptions> {
    args.merge.then_some(MergeOptions {
        allow_breach: args.allow_breach,
        ..MergeOptions::default()
    })
}

/// What `--merge` needs, checked before any agent starts: a branch with a commit to merge
/// into and no git operation paused in the work tree.
fn check_merge_target(repo: &crate::git::Repo) -> Result<(), CliError> {
    match repo.head() {
        Err(crate::git::GitError::UnbornHead) => {
            return Err(CliError::new(
                Exit::Repository,
                "--merge needs a current branch with a commit; HEAD has no commit yet",
            )
            .hint("commit something first, or run without --merge and merge a candidate later"));
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    if let Some((what, how)) = crate::git::merge::operation_in_progress(repo) {
        return Err(CliError::new(
            Exit::Negative,
            format!("--merge cannot merge while {what} is in progress in your work tree; no agent was started"),
        )
        .hint(format!(
            "finish it ({how}) first, or run without --merge"
        )));
    }
    Ok(())
}

/// Prints the result (and merges when asked); the exit code says whether a winner exists.
pub fn finish(
    ctx: &Ctx,
    repo: &crate::git::Repo,
    mut state: RunState,
    merge: Option<MergeOptions>,
    json: bool,
    progress: Option<&crate::ui::progress::Progress>,
) -> Result<Exit, CliError> {
    if let Some(p) = progress {
        p.finished(&state);
    }
    let stdout_taken = progress.is_some_and(|p| p.owns_stdout());
    let mut merge_outcome = None;
    let mut refused = None;
    if let Some(options) = merge
        && let Some(winner) = state.winner.clone()
    {
        if !state.breaches.is_empty() && !options.allow_breach {
            refused = Some(CliError::from(crate::run::merge::MergeError::Breach {
                run: state.run.clone(),
                breaches: state.breaches.clone(),
            }));
        } else {
            let dir = crate::run::layout::RunDir::new(repo, &state.run);
            let waiting = || {
                ctx.ui
                    .info("massgen: waiting for another git massgen merge to finish")
            };
            let outcome = crate::run::merge::merge_candidate(
                repo, &dir, &mut state, &winner, options, &waiting,
            )?;
            merge_outcome = Some(outcome);
        }
    }
    // The HTML report beside the run's state; a failure to write it is only a warning.
    let dir = crate::run::layout::RunDir::new(repo, &state.run);
    match crate::report::write_report(repo, &dir, &state) {
        Ok(path) => ctx.ui.info(&format!("massgen: report: {}", path.display())),
        Err(e) => ctx.ui.warn(&format!("cannot write the run's report: {e}")),
    }
    if json {
        let mut value = serde_json::to_value(&state).expect("state serializes");
        if let Some(m) = &merge_outcome {
            value["merge"] = serde_json::to_value(m).expect("merge outcome serializes");
        }
        ctx.ui.json(&value);
    } else {
        // With the event stream on stdout, the result for people goes to stderr.
        let mut text = crate::ui::render::render_ranking(&state);
        if let Some(m) = &merge_outcome {
            text.push_str(&crate::ui::render::render_outcome(m));
        } else if state.winner.is_some() {
            text.push_str(&format!(
                "\nmerge it with: git massgen merge {}   (or look first: git massgen diff {})\n",
                state.run, state.run
            ));
        }
        if stdout_taken {
            ctx.ui.err_out(&text);
        } else {
            ctx.ui.out(&text);
        }
    }
    if let Some(refused) = refused {
        return Err(refused);
    }
    let merge_failed = merge_outcome.as_ref().is_some_and(|m| !m.merged);
    Ok(if state.winner.is_none() || merge_failed {
        Exit::Negative
    } else {
        Exit::Success
    })
}

fn read_task(args: &RunArgs) -> Result<String, CliError> {
    let task = if let Some(path) = &args.task_file {
        std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!("cannot read task file {}: {e}", path.display()))
        })?
    } else {
        match args.task.as_deref() {
            Some("-") => {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).map_err(|e| {
                    CliError::usage(format!("cannot read the task from stdin: {e}"))
                })?;
                s
            }
            Some(t) => t.to_owned(),
            None => String::new(),
        }
    };
    if task.trim().is_empty() {
        return Err(
            CliError::usage("the task is empty").hint("git massgen run \"describe the task\"")
        );
    }
    Ok(task)
}

/// Reads and checks `--image` files.
fn load_images(paths: &[PathBuf]) -> Result<Vec<crate::llm::chat::Image>, CliError> {
    paths
        .iter()
        .map(|p| {
            crate::llm::image::load(p).map_err(|e| {
                CliError::usage(e)
                    .hint("images must be PNG, JPEG, GIF or WebP files of at most 5 MiB")
            })
        })
        .collect()
}

fn select_agents(
    config: &Config,
    args: &RunArgs,
    llm: &crate::agent::builtin::Shared,
) -> Result<Vec<AgentSpec>, CliError> {
    let default_timeout = default_timeout(args, config);
    let from_config = |a: &config::AgentConfig| agent_from_config(a, args, config, llm);
    let mut out: Vec<AgentSpec> = Vec::new();
    if args.agents.is_empty() && args.agent_cmds.is_empty() {
        out = config
            .agents
            .iter()
            .map(from_config)
            .collect::<Result<_, _>>()?;
    }
    for name in &args.agents {
        let found = config.agents.iter().find(|a| a.name.get_ref() == name);
        match found {
            Some(a) => out.push(from_config(a)?),
            None => {
                let known: Vec<&str> = config
                    .agents
                    .iter()
                    .map(|a| a.name.get_ref().as_str())
                    .collect();
                return Err(CliError::usage(format!(
                    "no agent named `{name}` in .massgen/config.toml"
                ))
                .hint(if known.is_empty() {
                    "no agents are configured; add [[agents]] or use --agent-cmd NAME=COMMAND"
                        .to_owned()
                } else {
                    format!("configured agents: {}", known.join(", "))
                }));
            }
        }
    }
    for spec in &args.agent_cmds {
        let (name, argv) = agent::parse_agent_cmd(spec).map_err(CliError::usage)?;
        out.push(AgentSpec {
            name,
            kind: Kind::Command(argv),
            env: Default::default(),
            timeout: default_timeout,
            ad_hoc: true,
        });
    }
    let mut llm_specs: Vec<&mut crate::agent::builtin::Spec> = out
        .iter_mut()
        .filter_map(|a| match &mut a.kind {
            Kind::Cli(cli) => cli.llm.as_deref_mut(),
            Kind::Command(_) => None,
        })
        .collect();
    crate::agent::builtin::stagger(&mut llm_specs);
    if out.is_empty() {
        return Err(CliError::usage("no agents to run")
            .hint("configure [[agents]] in .massgen/config.toml (`git massgen init`), or pass --agent-cmd NAME=COMMAND"));
    }
    let mut names: Vec<&str> = out.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(CliError::usage(format!("agent `{}` is given twice", w[0])));
    }
    Ok(out)
}

fn default_timeout(args: &RunArgs, config: &Config) -> Duration {
    args.timeout
        .or(config.run.timeout)
        .unwrap_or(config::DEFAULT_AGENT_TIMEOUT)
}

/// A configured agent, resolved.
fn agent_from_config(
    a: &config::AgentConfig,
    args: &RunArgs,
    config: &Config,
    llm: &crate::agent::builtin::Shared,
) -> Result<AgentSpec, CliError> {
    let default_timeout = default_timeout(args, config);
    let name = a.name.get_ref().clone();
    let kind = match Preset::from_kind(a.kind) {
        None => Kind::Command(a.command.clone()),
        Some(Preset::Llm) => {
            let spec = crate::agent::builtin::spec_for(a, llm).map_err(|e| {
                CliError::usage(e).hint("check the agent with `git massgen doctor`")
            })?;
            let mut cli = CliAgent::from_config(Preset::Llm, a);
            cli.bin = std::env::current_exe()
                .map_err(|e| {
                    CliError::new(Exit::Failure, format!("cannot find this program: {e}"))
                })?
                .display()
                .to_string();
            cli.max_nudges = 0;
            cli.llm = Some(Box::new(spec));
            Kind::Cli(cli)
        }
        Some(preset) => {
            let cli = CliAgent::from_config(preset, a);
            if cli.api_key_env_set && cli.api_key().is_none() {
                return Err(CliError::usage(format!(
                    "agent `{name}`: api_key_env = \"{}\", but {} is not set",
                    cli.api_key_env, cli.api_key_env
                ))
                .hint(format!(
                    "export {}=... before the run, or check with `git massgen doctor`",
                    cli.api_key_env
                )));
            }
            Kind::Cli(cli)
        }
    };
    Ok(AgentSpec {
        name,
        kind,
        env: a.env.clone(),
        timeout: args.timeout.or(a.timeout).unwrap_or(default_timeout),
        ad_hoc: false,
    })
}
