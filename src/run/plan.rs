//! A run's [`Plan`] from the configuration and the command line's options: which agents
//! (configured, named, or ad hoc), their kinds resolved (CLI presets, the built-in agent),
//! judges, templates, limits. Used by `run`, `review` (its LLM reviewers) and `demo`.

use std::path::PathBuf;
use std::time::Duration;

use super::context::{Judging, Plan};
use crate::agent::cli::{CliAgent, Preset};
use crate::agent::prompt::Template;
use crate::agent::{self, AgentSpec, Kind};
use crate::config::{self, Config};
use crate::git::{ObjectId, Repo};
use crate::judge::{self, Judge, JudgeKind};
use crate::run::layout;

/// What the command line says about a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Configured agents to run (`--agent`); all when empty and no `agent_cmds`.
    pub agents: Vec<String>,
    /// Ad-hoc command agents, `NAME=COMMAND`.
    pub agent_cmds: Vec<String>,
    pub test: Option<String>,
    pub timeout: Option<Duration>,
    pub jobs: Option<u16>,
    pub keep: bool,
    pub images: Vec<PathBuf>,
    pub rounds: u32,
    /// `--no-setup`: the worktrees' setup commands are not run.
    pub no_setup: bool,
    /// `--sandbox`.
    pub sandbox: Option<crate::config::SandboxMode>,
    /// `--worktree-mode`.
    pub worktree_mode: Option<crate::config::WorktreeMode>,
    /// `--executor`.
    pub executor: Option<crate::config::ExecutorKind>,
}

/// Where a run starts: the task and the commit (and branch) the agents start from.
#[derive(Debug, Clone)]
pub struct Start {
    pub task: String,
    pub base: ObjectId,
    pub base_branch: Option<String>,
}

/// Why a plan cannot be made: a usage error (with a hint), or the system failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    pub message: String,
    pub hint: Option<String>,
    /// The system failed (a template could not be read, ...), not the user's input.
    pub failure: bool,
}

impl PlanError {
    pub fn usage(message: impl std::fmt::Display) -> PlanError {
        PlanError {
            message: message.to_string(),
            hint: None,
            failure: false,
        }
    }

    pub fn failure(message: impl std::fmt::Display) -> PlanError {
        PlanError {
            failure: true,
            ..PlanError::usage(message)
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> PlanError {
        self.hint = Some(hint.into());
        self
    }
}

impl From<std::io::Error> for PlanError {
    fn from(e: std::io::Error) -> PlanError {
        PlanError::failure(e)
    }
}

/// What every built-in agent, judge and reviewer shares: prompts, prices, rate limits.
pub fn llm_shared(
    repo: &Repo,
    config: &Config,
    flag: Option<crate::llm::limits::Limits>,
    unlimited: bool,
    images: Vec<crate::llm::chat::Image>,
) -> Result<crate::agent::builtin::Shared, PlanError> {
    Ok(crate::agent::builtin::Shared {
        system: Template::LlmSystem.load(&repo.massgen_dir())?,
        nudge: Template::Nudge.load(&repo.massgen_dir())?,
        prices: {
            let path = repo.massgen_dir().join("prices.toml");
            let text = std::fs::read_to_string(&path).ok();
            crate::llm::provider::prices(text.as_deref()).map_err(PlanError::usage)?
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
pub fn in_process_llm(
    c: &config::AgentConfig,
    llm: &crate::agent::builtin::Shared,
    role: &str,
) -> Result<(crate::agent::builtin::Spec, Option<judge::Secret>), PlanError> {
    let spec = crate::agent::builtin::spec_for(c, llm).map_err(|e| {
        PlanError::usage(e.replacen("agent `", &format!("{role} `"), 1)).hint(format!(
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

/// How a configured entry of any kind is asked for an answer (a reviewer, the planner): a
/// command, a CLI preset started read-only, or the built-in backends in this process.
/// `role` names it in messages.
pub fn respondent_kind(
    c: &config::AgentConfig,
    llm: &crate::agent::builtin::Shared,
    role: &str,
) -> Result<crate::ask::respondent::Kind, PlanError> {
    use crate::ask::respondent::Kind;
    let env: Vec<(String, String)> = c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(match Preset::from_kind(c.kind) {
        None => Kind::Command {
            argv: c.command.clone(),
            env,
        },
        Some(Preset::Llm) => {
            let (spec, key) = in_process_llm(c, llm, role)?;
            Kind::Llm {
                endpoint: Box::new(spec.endpoint),
                key,
                max_turns: spec.max_turns,
            }
        }
        Some(preset) => Kind::Cli {
            cli: Box::new(CliAgent::from_config(preset, c)),
            env,
        },
    })
}

/// The plan of a run (or of a turn of `--continue`) from flags and configuration.
pub fn plan(
    repo: &Repo,
    config: &Config,
    opts: &RunOptions,
    llm: &crate::agent::builtin::Shared,
    start: Start,
    agents: Vec<AgentSpec>,
) -> Result<Plan, PlanError> {
    let Start {
        task,
        base,
        base_branch,
    } = start;
    let massgen = repo.massgen_dir();
    let jobs = opts
        .jobs
        .map(usize::from)
        .or(config.run.jobs)
        .unwrap_or(agents.len());
    let worktree_root = layout::worktree_root(repo, config.run.worktree_root.as_deref());
    let ready =
        super::setup::Ready::from_config(config, &repo.workdir, &worktree_root, opts.no_setup);
    let plan = Plan {
        task,
        base,
        base_branch,
        jobs,
        test: opts.test.clone().or(config.score.test.clone()),
        test_timeout: config
            .score
            .test_timeout
            .unwrap_or(config::DEFAULT_TEST_TIMEOUT),
        keep: opts.keep,
        worktree_root: worktree_root.clone(),
        prompt_template: Template::Prompt.load(&massgen)?,
        nudge: llm.nudge.clone(),
        images: opts
            .images
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect(),
        agents,
        rounds: opts.rounds,
        round_template: Template::Round.load(&massgen)?,
        continue_template: Template::Continue.load(&massgen)?,
        judges: judges(config, llm)?,
        judging: Judging {
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
        include: ready.include,
        setup: ready.setup,
        setup_timeout: ready.setup_timeout,
        share: ready.share,
        env: ready.env,
        max_disk: config.worktree.max_disk,
        sandbox: super::confine::Sandbox::from_config(
            &config.sandbox,
            opts.sandbox,
            &worktree_root,
        ),
        picked: None,
        worktree_mode: opts
            .worktree_mode
            .or(config.worktree.mode)
            .unwrap_or_default(),
        executor: super::executor::Executor::from_config(
            &config.executor,
            config.score.executor,
            opts.executor,
        ),
    };
    // Without a shared file system agents work in clones on the nodes: not in an overlay
    // (seen only here), and not confined (the rules name paths of this machine).
    let mut plan = plan;
    // Paths the nodes use mean the same on every node only when absolute.
    let slurm = &plan.executor.slurm;
    for (key, path) in [
        ("scratch", &slurm.scratch),
        ("stage", &slurm.stage),
        ("program", &slurm.program),
    ] {
        if let Some(path) = path.as_ref().filter(|p| p.is_relative()) {
            let (shown, hint) = (path.display(), "write the whole path, e.g.");
            return Err(PlanError::usage(format!(
                "[executor.slurm] {key} = \"{shown}\" must be an absolute path (the nodes use it)"
            ))
            .hint(format!("{hint} {key} = \"/{shown}\"")));
        }
    }
    if plan.executor.carries() {
        use crate::config::{SandboxMode, WorktreeMode};
        let why = "agents work in clones on the nodes with [executor.slurm] shared_fs = false";
        if plan.sandbox.mode == SandboxMode::Required {
            return Err(PlanError::usage(format!(
                "[sandbox] mode = \"required\" cannot confine them: {why}"
            ))
            .hint("use shared_fs = true, or [sandbox] mode = \"auto\""));
        }
        match plan.worktree_mode {
            WorktreeMode::Overlay => {
                return Err(PlanError::usage(format!(
                    "copy-on-write worktrees cannot hold their work: {why}"
                ))
                .hint("use [worktree] mode = \"checkout\" or \"auto\""));
            }
            WorktreeMode::Auto => plan.worktree_mode = WorktreeMode::Checkout,
            WorktreeMode::Checkout => {}
        }
    }
    // What `[worktree] env` puts under the worktree root (a shared `CARGO_TARGET_DIR`) is
    // made for commands to write: confined ones may, and it exists for the rule to hold.
    for (key, value) in &config.worktree.env {
        if value.contains("{worktree_root}")
            && let Some((_, path)) = plan.env.iter().find(|(k, _)| k == key)
        {
            let path = PathBuf::from(path);
            let _ = std::fs::create_dir_all(&path);
            plan.sandbox.allow_write.push(path);
        }
    }
    Ok(plan)
}

/// The configured judges, resolved.
pub fn judges(
    config: &Config,
    llm: &crate::agent::builtin::Shared,
) -> Result<Vec<Judge>, PlanError> {
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

/// Reads and checks `--image` files.
pub fn load_images(paths: &[PathBuf]) -> Result<Vec<crate::llm::chat::Image>, PlanError> {
    paths
        .iter()
        .map(|p| {
            crate::llm::image::load(p).map_err(|e| {
                PlanError::usage(e)
                    .hint("images must be PNG, JPEG, GIF or WebP files of at most 5 MiB")
            })
        })
        .collect()
}

pub fn select_agents(
    config: &Config,
    opts: &RunOptions,
    llm: &crate::agent::builtin::Shared,
) -> Result<Vec<AgentSpec>, PlanError> {
    let default_timeout = default_timeout(opts, config);
    let from_config = |a: &config::AgentConfig| agent_from_config(a, opts, config, llm);
    let mut out: Vec<AgentSpec> = Vec::new();
    if opts.agents.is_empty() && opts.agent_cmds.is_empty() {
        out = config
            .agents
            .iter()
            .map(from_config)
            .collect::<Result<_, _>>()?;
    }
    for name in &opts.agents {
        let found = config.agents.iter().find(|a| a.name.get_ref() == name);
        match found {
            Some(a) => out.push(from_config(a)?),
            None => {
                let known: Vec<&str> = config
                    .agents
                    .iter()
                    .map(|a| a.name.get_ref().as_str())
                    .collect();
                return Err(PlanError::usage(format!(
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
    for spec in &opts.agent_cmds {
        let (name, argv) = agent::parse_agent_cmd(spec).map_err(PlanError::usage)?;
        out.push(ad_hoc(name, argv, default_timeout));
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
        return Err(PlanError::usage("no agents to run")
            .hint("configure [[agents]] in .massgen/config.toml (`git massgen init`), or pass --agent-cmd NAME=COMMAND"));
    }
    let mut names: Vec<&str> = out.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(PlanError::usage(format!("agent `{}` is given twice", w[0])));
    }
    Ok(out)
}

/// An ad-hoc command agent (`--agent-cmd NAME=COMMAND`).
pub fn ad_hoc(name: String, argv: Vec<String>, timeout: Duration) -> AgentSpec {
    AgentSpec {
        name,
        kind: Kind::Command(argv),
        env: Default::default(),
        timeout,
        setup: Vec::new(),
        allow_write: Vec::new(),
        ad_hoc: true,
    }
}

pub fn default_timeout(opts: &RunOptions, config: &Config) -> Duration {
    opts.timeout
        .or(config.run.timeout)
        .unwrap_or(config::DEFAULT_AGENT_TIMEOUT)
}

/// A configured agent, resolved.
pub fn agent_from_config(
    a: &config::AgentConfig,
    opts: &RunOptions,
    config: &Config,
    llm: &crate::agent::builtin::Shared,
) -> Result<AgentSpec, PlanError> {
    let default_timeout = default_timeout(opts, config);
    let name = a.name.get_ref().clone();
    let mut allow_write: Vec<PathBuf> = a
        .allow_write
        .iter()
        .map(|p| super::confine::expand(p, std::path::Path::new("")))
        .collect();
    if a.own_config
        && let (Some(preset), Some(home)) = (Preset::from_kind(a.kind), std::env::var_os("HOME"))
    {
        let home = PathBuf::from(home);
        allow_write.extend(preset.own_config_dirs().iter().map(|d| home.join(d)));
    }
    let kind = match Preset::from_kind(a.kind) {
        None => Kind::Command(a.command.clone()),
        Some(Preset::Llm) => {
            let spec = crate::agent::builtin::spec_for(a, llm).map_err(|e| {
                PlanError::usage(e).hint("check the agent with `git massgen doctor`")
            })?;
            let mut cli = CliAgent::from_config(Preset::Llm, a);
            cli.bin = std::env::current_exe()
                .map_err(|e| PlanError::failure(format!("cannot find this program: {e}")))?
                .display()
                .to_string();
            cli.max_nudges = 0;
            // The rate limits all agents share are kept there.
            let _ = std::fs::create_dir_all(&llm.limits_dir);
            allow_write.push(llm.limits_dir.clone());
            cli.llm = Some(Box::new(spec));
            Kind::Cli(cli)
        }
        Some(preset) => {
            let cli = CliAgent::from_config(preset, a);
            if cli.api_key_env_set && cli.api_key().is_none() {
                return Err(PlanError::usage(format!(
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
        timeout: opts.timeout.or(a.timeout).unwrap_or(default_timeout),
        setup: if opts.no_setup {
            Vec::new()
        } else {
            a.setup.clone()
        },
        allow_write,
        ad_hoc: false,
    })
}

/// `--rounds`: a number of rounds, or `auto` (decided from what was learned on the task's
/// kind, [`crate::learn::pick::auto_rounds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounds {
    Fixed(u32),
    Auto,
}

impl Rounds {
    /// The number of rounds, 1 for `auto` until it is decided.
    pub fn fixed_or_one(self) -> u32 {
        match self {
            Rounds::Fixed(n) => n,
            Rounds::Auto => 1,
        }
    }
}

/// The most refinement rounds a run may ask for.
pub const MAX_ROUNDS: u32 = 20;

/// Parses `--rounds`: 1 to [`MAX_ROUNDS`], or `auto`.
pub fn parse_rounds(s: &str) -> Result<Rounds, String> {
    if s == "auto" {
        return Ok(Rounds::Auto);
    }
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_ROUNDS).contains(&n) => Ok(Rounds::Fixed(n)),
        _ => Err(format!("expected a number from 1 to {MAX_ROUNDS}, or auto")),
    }
}

/// `--pick N` (or `[run] pick`), `--prefer`, `--seed`.
#[derive(Debug, Clone, Copy)]
pub struct PickOptions {
    pub n: usize,
    pub prefer: crate::learn::pick::Prefer,
    /// Random (and said) when not given.
    pub seed: Option<u64>,
    /// `n` comes from `[run] pick`: with no more than `n` agents, all run and nothing is
    /// picked (a flag asking for more agents than there are is an error).
    pub from_config: bool,
}

impl PickOptions {
    /// From `--pick` (`flag`, which wins) or `[run] pick` (`config`); none without either.
    pub fn new(
        flag: Option<usize>,
        config: Option<usize>,
        prefer: crate::learn::pick::Prefer,
        seed: Option<u64>,
    ) -> Option<PickOptions> {
        flag.or(config).map(|n| PickOptions {
            n,
            prefer,
            seed,
            from_config: flag.is_none(),
        })
    }
}

/// What was learned, applied to a new run: the agents that run, how they were picked, how
/// many rounds, and what to tell the user about it.
#[derive(Debug)]
pub struct Learned {
    pub agents: Vec<AgentSpec>,
    pub picked: Option<crate::learn::pick::Picked>,
    pub rounds: u32,
    /// Lines saying what was decided and why.
    pub notes: Vec<String>,
}

/// Applies `pick` and `--rounds` to `agents` (those the run would otherwise run) for
/// `task`, reading `refs/massgen/learning` only when either needs it.
pub fn apply_learning(
    repo: &Repo,
    task: &str,
    agents: Vec<AgentSpec>,
    pick: Option<PickOptions>,
    rounds: Rounds,
) -> Result<Learned, PlanError> {
    use crate::learn::pick;
    let pick = pick.filter(|p| !(p.from_config && p.n >= agents.len()));
    let mut learned = Learned {
        agents,
        picked: None,
        rounds: rounds.fixed_or_one(),
        notes: Vec::new(),
    };
    if pick.is_none() && rounds != Rounds::Auto {
        return Ok(learned);
    }
    let kind = kind_before(repo, task)?;
    // What history says of earlier merged winners counts before choosing; a failure to
    // look is only a note (the run goes on with what was learned so far).
    if let Err(e) = crate::learn::history::update(repo, crate::learn::history::CONFIRM_AFTER) {
        learned
            .notes
            .push(format!("cannot look for reverted winners in history: {e}"));
    }
    let (learning, _) = crate::learn::store::load(repo).map_err(|e| {
        PlanError::failure(format!("cannot read what was learned: {e}"))
            .hint("see it with `git massgen stats`; start afresh with `git massgen learn reset`")
    })?;
    if rounds == Rounds::Auto {
        let auto = pick::auto_rounds(&learning.coordination(&kind), &kind);
        learned.rounds = auto.rounds;
        learned.notes.push(format!(
            "--rounds auto: {} round{}: {}",
            auto.rounds,
            if auto.rounds == 1 { "" } else { "s" },
            auto.why
        ));
    }
    let Some(p) = pick else {
        return Ok(learned);
    };
    let names: Vec<String> = learned.agents.iter().map(|a| a.name.clone()).collect();
    if p.n == 0 {
        return Err(
            PlanError::usage("--pick 0 would run no agent").hint(format!(
                "pick from 1 to {}, or leave --pick out to run them all",
                names.len()
            )),
        );
    }
    if p.n > names.len() {
        return Err(PlanError::usage(format!(
            "--pick {}, but only {} agent{} would run: {}",
            p.n,
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ))
        .hint(format!(
            "pick from 1 to {}, or name more agents (--agent, --agent-cmd, [[agents]])",
            names.len()
        )));
    }
    let seed = p.seed.unwrap_or_else(|| u64::from(fastrand::u32(..)));
    let picked = pick::pick(&learning, &names, &kind, p.n, p.prefer, seed);
    learned.notes.push(format!(
        "picking {} of {} for {kind} by Thompson sampling{} (seed {seed}; --seed {seed} picks the same on the same statistics)",
        p.n,
        names.len(),
        match p.prefer {
            pick::Prefer::Wins => "",
            pick::Prefer::Cheap => ", wins per dollar",
        }
    ));
    learned.notes.extend(picked.explain());
    learned
        .agents
        .retain(|a| picked.agents.get(&a.name).is_some_and(|c| c.picked));
    learned.picked = Some(picked);
    Ok(learned)
}

/// The key of `task`'s kind before it runs ([`crate::learn::features::Kind::before`]): from
/// the files it names, else the repository's (`git ls-files`).
pub fn kind_before(repo: &Repo, task: &str) -> Result<String, PlanError> {
    let mut failed = None;
    let files = || match crate::git::cmd::Git::new(&repo.workdir)
        .args(["ls-files", "-z"])
        .run()
    {
        Ok(out) => out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
        Err(e) => {
            failed = Some(PlanError::failure(e.to_string()));
            Vec::new()
        }
    };
    let kind = crate::learn::features::Kind::before(task, files);
    match failed {
        Some(e) => Err(e),
        None => Ok(kind.key()),
    }
}
