//! Argument parsing and dispatch: one exhaustive match over the commands, errors mapped to
//! exit codes at this boundary only.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{self, Ctx};
use crate::error::{CliError, Exit};
use crate::ui::Ui;

/// Run several coding agents on one task, each in its own worktree and branch; score their
/// work, explain the winner, and merge it with conflict detection.
#[derive(Debug, Parser)]
#[command(
    name = "git-massgen",
    bin_name = "git massgen",
    version,
    max_term_width = 100
)]
pub struct Cli {
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print no progress on stderr (errors and warnings still appear).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour the output: auto (a terminal, unless NO_COLOR or color.massgen / color.ui say
    /// otherwise), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN")]
    pub color: Option<crate::settings::ColorWhen>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write .massgen/config.toml (detecting the test command) and .massgen/.gitignore.
    Init(commands::init::InitArgs),
    /// Give a task to every agent in its own worktree, score the candidates, rank them.
    Run(commands::run::RunArgs),
    /// List runs, or show one run's candidates, scores and worktrees.
    Status(commands::status::StatusArgs),
    /// Show a candidate's change against the base, or two candidates against each other.
    Diff(commands::diff::DiffArgs),
    /// Which candidates of a run conflict with each other and with the current branch.
    Conflicts(commands::conflicts::ConflictsArgs),
    /// Merge the winner (or a chosen candidate) into the current branch, proved clean first.
    Merge(commands::merge::MergeArgs),
    /// Remove finished runs' worktrees and branches (unmerged work only with --force).
    Clean(commands::clean::CleanArgs),
    /// Several reviewers look at a change; findings enough of them agree on are reported.
    Review(commands::review::ReviewArgs),
    /// Task plans: sub-tasks with dependencies; `plan check` validates one, `plan run` runs
    /// it, `plan status` shows how far it got.
    Plan(commands::plan::PlanArgs),
    /// Install or remove the review hooks (pre-commit, pre-push), chained to existing ones.
    Hooks(commands::hooks::HooksArgs),
    /// Write one self-contained HTML page of a run: ranking, evidence, diffs, comparisons.
    Report(commands::report::ReportArgs),
    /// Which agent wins, per kind of task: runs, wins, win rate with a 90% interval, cost,
    /// merged winners confirmed or reverted.
    Stats(commands::stats::StatsArgs),
    /// The statistics behind `stats`: `learn merge` another clone's, `learn export` and
    /// `learn import` them as JSON, `learn reset`.
    Learn(commands::learn::LearnArgs),
    /// Write the man pages (git-massgen.1 and one per command) where man finds them.
    InstallMan(commands::docs::InstallManArgs),
    /// Print shell completions (bash, zsh, fish).
    Completions(commands::docs::CompletionsArgs),
    /// Check every configured agent: binary, version, credentials, endpoint.
    Doctor(commands::doctor::DoctorArgs),
    /// Run the whole pipeline on a throw-away repository with three built-in agents.
    Demo(commands::demo::DemoArgs),
    /// A built-in deterministic agent used by `demo` (internal).
    #[command(hide = true)]
    DemoAgent(commands::demo::DemoAgentArgs),
    /// The built-in LLM agent, run by `run` in a candidate's worktree (internal).
    #[command(hide = true)]
    LlmAgent {
        /// The agent's spec, written by `run`.
        #[arg(long)]
        spec: PathBuf,
    },
    /// Deletes discarded worktrees in the background (internal).
    #[command(hide = true)]
    PurgeTrash {
        /// The trash directory (not named `dir`: that is the global -C).
        trash: PathBuf,
    },
}

/// Parses the command line, runs the command and returns the documented exit code.
pub fn main() -> ExitCode {
    // The sandbox trampoline starts before every confined command: no parsing beyond its
    // own, no git settings.
    let mut args = std::env::args_os();
    match args.nth(1) {
        Some(a) if a == crate::sandbox::TRAMPOLINE => {
            return ExitCode::from(crate::sandbox::trampoline(args));
        }
        // An agent's Slurm job without a shared file system: the agent's own exit code.
        Some(a) if a == crate::run::node::NODE_RUN => {
            return ExitCode::from(crate::run::node::main(args));
        }
        _ => {}
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { Exit::Usage as u8 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let cwd = match cli
        .dir
        .clone()
        .map(Ok)
        .unwrap_or_else(std::env::current_dir)
    {
        Ok(dir) => dir,
        Err(e) => {
            Ui::new(cli.quiet).error(&CliError::new(Exit::Failure, e));
            return ExitCode::from(Exit::Failure as u8);
        }
    };
    // Internal commands (one per agent process, say) need no git settings: no `git config`
    // run for them.
    let internal = matches!(
        cli.command,
        Command::DemoAgent(_) | Command::LlmAgent { .. } | Command::PurgeTrash { .. }
    );
    let settings = if internal {
        crate::settings::GitSettings::default()
    } else {
        crate::settings::GitSettings::read(&cwd)
    };
    let no_color = std::env::var("NO_COLOR").ok();
    // git counts a pager it started for us as a terminal.
    let pager_in_use = std::env::var("GIT_PAGER_IN_USE")
        .is_ok_and(|v| crate::settings::bool_value(&v) != Some(false));
    let terminal = |t: bool| t || pager_in_use;
    let ui = Ui::with_color(
        cli.quiet,
        crate::settings::use_color(
            cli.color,
            no_color.as_deref(),
            &settings,
            terminal(std::io::stdout().is_terminal()),
        ),
        crate::settings::use_color(
            cli.color,
            no_color.as_deref(),
            &settings,
            std::io::stderr().is_terminal(),
        ),
    );
    let ctx = Ctx { ui, cwd, settings };
    let result = dispatch(&ctx, cli.command);
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(err) => {
            ctx.ui.error(&err);
            ExitCode::from(err.exit as u8)
        }
    }
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<Exit, CliError> {
    match command {
        Command::Init(args) => commands::init::init(ctx, &args),
        Command::Run(args) => commands::run::run(ctx, args),
        Command::Status(args) => commands::status::status(ctx, &args),
        Command::Diff(args) => commands::diff::diff(ctx, &args),
        Command::Conflicts(args) => commands::conflicts::conflicts(ctx, &args),
        Command::Merge(args) => commands::merge::merge(ctx, &args),
        Command::Clean(args) => commands::clean::clean(ctx, &args),
        Command::Review(args) => commands::review::review(ctx, args),
        Command::Plan(args) => commands::plan::plan(ctx, &args),
        Command::Hooks(args) => commands::hooks::hooks(ctx, &args),
        Command::Report(args) => commands::report::report(ctx, &args),
        Command::Stats(args) => commands::stats::stats(ctx, &args),
        Command::Learn(args) => commands::learn::learn(ctx, &args),
        Command::InstallMan(args) => commands::docs::install_man(ctx, &args),
        Command::Completions(args) => commands::docs::completions(ctx, &args),
        Command::Doctor(args) => commands::doctor::doctor(ctx, &args),
        Command::Demo(args) => commands::demo::demo(ctx, &args),
        Command::DemoAgent(args) => commands::demo::demo_agent(&args),
        Command::LlmAgent { spec } => commands::llm_agent(&spec),
        Command::PurgeTrash { trash } => {
            crate::run::trash::purge(&trash);
            Ok(Exit::Success)
        }
    }
}
