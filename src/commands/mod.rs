//! One module per command, each holding its arguments and its function.

pub mod clean;
pub mod conflicts;
pub mod demo;
pub mod diff;
pub mod docs;
pub mod doctor;
pub mod hooks;
pub mod init;
pub mod learn;
pub mod merge;
pub mod plan;
pub mod report;
pub mod review;
pub mod run;
pub mod stats;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{CliError, Exit};
use crate::git::Repo;
use crate::run::layout::{RunDir, runs_dir};
use crate::run::merge::MergeOptions;
use crate::run::pipeline::{self, Event, Plan};
use crate::run::state::{self, RunState};
use crate::ui::Ui;

/// What every command gets: the output sink and the directory it runs in.
pub struct Ctx {
    pub ui: Ui,
    pub cwd: PathBuf,
    /// git's configuration as it concerns us (`massgen.*`, colour, pager).
    pub settings: crate::settings::GitSettings,
}

impl Ctx {
    /// The repository containing the working directory.
    pub fn repo(&self) -> Result<Repo, CliError> {
        Ok(Repo::discover(&self.cwd)?)
    }

    /// `.massgen/config.toml` with git's `massgen.*` settings over it (flags go over both).
    pub fn config(&self, repo: &Repo) -> Result<crate::config::Config, CliError> {
        let mut config = crate::config::Config::load(&repo.massgen_dir().join("config.toml"))?;
        crate::agent::check_config(&config)?;
        for key in self.settings.overlay(&mut config)? {
            self.ui.warn(&format!(
                "unknown setting {key} in git's configuration (ignored); see README.md, \"Settings from git config\""
            ));
        }
        Ok(config)
    }
}

/// What a merge says while another one holds the repository's merge lock.
pub fn merge_waiting(ctx: &Ctx) -> impl Fn() + '_ {
    || {
        ctx.ui
            .info("massgen: waiting for another git massgen merge to finish")
    }
}

/// Loads a run named on the command line (id, unique prefix, or `latest`).
pub fn load_run(repo: &Repo, arg: &str) -> Result<(RunDir, RunState), CliError> {
    let id = state::resolve(&runs_dir(repo), arg)?;
    let dir = RunDir::new(repo, &id);
    let st = RunState::load(&dir)?;
    Ok((dir, st))
}

/// `llm-agent --spec FILE`: runs the built-in agent in the current directory (a worktree),
/// writing its events as JSON lines on stdout.
pub fn llm_agent(spec: &std::path::Path) -> Result<crate::error::Exit, CliError> {
    use crate::agent::builtin;
    let text = std::fs::read_to_string(spec)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", spec.display())))?;
    let spec: builtin::Spec = serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("bad agent spec {}: {e}", spec.display())))?;
    let rt = runtime_with(Some(2))?;
    // Stopped (timeout, Ctrl-C): the commands its tools run live in process groups of
    // their own, which the signal to the agent's group does not reach. The process exits
    // at once, as a process killed by SIGTERM would (a blocked tool must not hold it).
    rt.spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        builtin::tools::kill_running();
        std::process::exit(143);
    });
    Ok(
        match rt.block_on(builtin::run(&spec, &mut std::io::stdout())) {
            Ok(()) => crate::error::Exit::Success,
            Err(_) => crate::error::Exit::Negative,
        },
    )
}

/// Where `--events PATH` goes: stdout for `-` (refused with `--json`), else the file.
pub fn event_sink(
    ctx: &Ctx,
    events: Option<&Path>,
    json: bool,
) -> Result<Option<crate::ui::progress::EventSink>, CliError> {
    Ok(match events {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            if json {
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
    })
}

/// The progress display of a run: live lines on a terminal (not with `--json` or
/// `--quiet`), plain lines otherwise, and the `--events` stream.
pub fn progress_for(
    ctx: &Ctx,
    events: Option<&Path>,
    json: bool,
    run: &str,
) -> Result<Arc<crate::ui::progress::Progress>, CliError> {
    use std::io::IsTerminal as _;
    let events = event_sink(ctx, events, json)?;
    let live = std::io::stderr().is_terminal() && !json && !ctx.ui.is_quiet();
    Ok(Arc::new(crate::ui::progress::Progress::new(
        Arc::new(ctx.ui.sibling()),
        live,
        events,
        run,
    )))
}

/// The tokio runtime of a command (one worker per CPU).
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    runtime_with(None)
}

/// The one place runtimes are built: multi-threaded, with `threads` workers when given.
fn runtime_with(threads: Option<usize>) -> Result<tokio::runtime::Runtime, CliError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::new(Exit::Failure, e))
}

/// What an operation says as it goes, shown as `info` and `warn` lines.
pub fn say(ctx: &Ctx) -> impl FnMut(crate::run::clean::Said) + '_ {
    |said| match said {
        crate::run::clean::Said::Info(line) => ctx.ui.info(&line),
        crate::run::clean::Said::Warn(line) => ctx.ui.warn(&line),
    }
}

/// `[worktree] max_disk`: before a run adds worktrees, finished runs are cleaned, oldest
/// first, until all runs' worktrees fit (`except`: the run being continued).
pub fn keep_disk_under(
    ctx: &Ctx,
    repo: &crate::git::Repo,
    plan: &Plan,
    except: Option<&str>,
) -> Result<(), CliError> {
    if let Some(max) = plan.max_disk {
        crate::run::clean::keep_under(repo, max, except, &mut say(ctx))?;
    }
    Ok(())
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
        let dir = crate::run::layout::RunDir::new(repo, &state.run);
        let waiting = merge_waiting(ctx);
        match crate::run::merge::merge_candidate(repo, &dir, &mut state, &winner, options, &waiting)
        {
            Ok(outcome) => merge_outcome = Some(outcome),
            // Refused: the ranking and the report still come first.
            Err(e @ crate::run::merge::MergeError::Breach { .. }) => refused = Some(e.into()),
            Err(e) => return Err(e.into()),
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

/// The task: the argument, stdin for `-`, or the file (`--task-file`); never empty.
pub fn read_task(task: Option<&str>, file: Option<&std::path::Path>) -> Result<String, CliError> {
    let task = if let Some(path) = file {
        std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!("cannot read task file {}: {e}", path.display()))
        })?
    } else {
        match task {
            Some("-") => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
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
