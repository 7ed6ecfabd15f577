//! `git massgen report RUN [--output FILE] [--open]`: one self-contained HTML page of a run.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Ctx, load_run};
use crate::error::{CliError, Exit};
use crate::report::{self, ReportError};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run (id, unique prefix, or `latest`).
    pub run: String,
    /// Where to write the page [default: report.html in the run's directory].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Open the page in a browser.
    #[arg(long)]
    pub open: bool,
}

pub fn report(ctx: &Ctx, args: &ReportArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let (dir, state) = load_run(&repo, &args.run)?;
    let path = match &args.output {
        Some(out) => {
            let path = ctx.cwd.join(out);
            report::write_to(&repo, &state, &path).map_err(cli_error)?;
            path
        }
        None => report::write_report(&repo, &dir, &state).map_err(cli_error)?,
    };
    ctx.ui.line(&path.display().to_string());
    if args.open
        && let Err(e) = open(&path)
    {
        ctx.ui.warn(&format!("cannot open {}: {e}", path.display()));
    }
    Ok(Exit::Success)
}

pub(crate) fn cli_error(err: ReportError) -> CliError {
    match err {
        ReportError::Write(e) => e.into(),
        e @ ReportError::Template { .. } => CliError::new(Exit::Failure, e)
            .hint("fix or remove .massgen/templates/report.html to use the built-in page"),
        e => CliError::new(Exit::Failure, e),
    }
}

/// Starts the desktop's opener on `path` in its own process group, without waiting for it.
pub(crate) fn open(path: &Path) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    Command::new(opener)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{opener}: {e}")))
}
