//! One module per command, each holding its arguments and its function.

pub mod clean;
pub mod demo;
pub mod diff;
pub mod docs;
pub mod doctor;
pub mod hooks;
pub mod init;
pub mod merge;
pub mod report;
pub mod review;
pub mod run;
pub mod status;

use std::path::PathBuf;

use crate::error::CliError;
use crate::git::Repo;
use crate::run::layout::{RunDir, runs_dir};
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

/// Parses a commit id stored in a run's state.
pub fn state_commit_id(hex: &str) -> Result<crate::git::ObjectId, CliError> {
    crate::git::ObjectId::from_hex(hex.as_bytes()).map_err(|e| {
        CliError::new(
            crate::error::Exit::Failure,
            format!("bad commit id `{hex}` in run state: {e}"),
        )
    })
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(crate::error::Exit::Failure, e))?;
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
