//! All terminal output. Domain modules never print; commands hand their results here.
//!
//! Results go to stdout (a table, a diff, or one JSON object with `--json`); progress and
//! warnings go to stderr so that scripts can capture stdout alone. A closed pipe on stdout is
//! not an error (`git massgen diff RUN | head`).

pub mod progress;
pub mod render;

use std::io::{self, Write};
use std::sync::Mutex;

use crate::error::CliError;

/// The output sink shared by every command.
pub struct Ui {
    quiet: bool,
    /// Colour on stdout and on stderr (`--color`, `NO_COLOR`, `color.massgen`, `color.ui`,
    /// terminals; see `settings::use_color`).
    color_out: bool,
    color_err: bool,
    stderr_lock: Mutex<()>,
}

/// What a piece of output is, for its colour (git's choices: green for added and good, red
/// for removed and bad, yellow for warnings and hunk context, bold for headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    Good,
    Bad,
    Warn,
    Meta,
    Frag,
    Bold,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Good => "32",
            Paint::Bad => "31",
            Paint::Warn => "33",
            Paint::Meta => "1",
            Paint::Frag => "36",
            Paint::Bold => "1",
        }
    }
}

/// `text` in an ANSI colour.
pub fn paint(on: bool, style: Paint, text: &str) -> String {
    if on && !text.is_empty() {
        format!("\x1b[{}m{text}\x1b[m", style.code())
    } else {
        text.to_owned()
    }
}

/// A unified diff coloured the way `git diff` colours it.
pub fn color_patch(patch: &str) -> String {
    let mut out = String::with_capacity(patch.len() + patch.len() / 8);
    // Header lines (`--- a/x`, `index …`) come between `diff --git` and the first hunk; in
    // a hunk, a line `--- x` is a removed line.
    let mut in_header = false;
    for line in patch.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if body.starts_with("diff --git") {
            in_header = true;
        } else if body.starts_with("@@") {
            in_header = false;
        }
        let style = if in_header {
            Some(Paint::Meta)
        } else if body.starts_with("@@") {
            Some(Paint::Frag)
        } else if body.starts_with('+') {
            Some(Paint::Good)
        } else if body.starts_with('-') {
            Some(Paint::Bad)
        } else {
            None
        };
        match style {
            Some(s) => out.push_str(&paint(true, s, body)),
            None => out.push_str(body),
        }
        out.push_str(nl);
    }
    out
}

impl Ui {
    /// A sink writing to the process's stdout and stderr.
    pub fn new(quiet: bool) -> Self {
        Ui::with_color(quiet, false, false)
    }

    /// A sink with colour decided for stdout and stderr.
    pub fn with_color(quiet: bool, color_out: bool, color_err: bool) -> Self {
        Ui {
            quiet,
            color_out,
            color_err,
            stderr_lock: Mutex::new(()),
        }
    }

    /// Another sink with the same settings (for progress reported from other threads).
    pub fn sibling(&self) -> Ui {
        Ui::with_color(self.quiet, self.color_out, self.color_err)
    }

    /// Whether stdout is coloured.
    pub fn color(&self) -> bool {
        self.color_out
    }

    /// Whether stderr is coloured.
    pub fn color_err(&self) -> bool {
        self.color_err
    }

    /// Whether progress is suppressed.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Writes text to stdout as is.
    pub fn out(&self, text: &str) {
        let mut stdout = io::stdout().lock();
        // A closed pipe (`| head`) is success, not an error worth reporting.
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// Writes text to stdout through `pager` (a shell command line from the user's own git
    /// configuration or environment, run with `sh -c` as git runs it), or directly when
    /// there is none or it cannot run. Returns whether a signal (Ctrl-C) came while paging.
    ///
    /// Like git, we wait for the pager whatever happens: a Ctrl-C typed into `less` reaches
    /// us too, and dying then would leave the pager reading the terminal behind the shell.
    pub fn page(&self, text: &str, pager: Option<&str>) -> bool {
        use std::process::{Command, Stdio};
        use tokio::signal::unix::{SignalKind, signal};
        let Some(pager) = pager else {
            self.out(text);
            return false;
        };
        // Registering handlers replaces the default action (terminate) for the rest of the
        // process, which ends right after paging.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let mut signals = match &rt {
            Ok(rt) => rt.block_on(async {
                [
                    SignalKind::interrupt(),
                    SignalKind::quit(),
                    SignalKind::terminate(),
                    SignalKind::hangup(),
                ]
                .into_iter()
                .filter_map(|k| signal(k).ok())
                .collect::<Vec<_>>()
            }),
            Err(_) => Vec::new(),
        };
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(pager).stdin(Stdio::piped());
        // git's defaults: quit if one screen, keep colours, no init; and tell children.
        if std::env::var_os("LESS").is_none() {
            cmd.env("LESS", "FRX");
        }
        if std::env::var_os("LV").is_none() {
            cmd.env("LV", "-c");
        }
        cmd.env("GIT_PAGER_IN_USE", "true");
        let Ok(mut child) = cmd.spawn() else {
            self.out(text);
            return false;
        };
        if let Some(mut stdin) = child.stdin.take() {
            // The pager quitting early (q) closes the pipe: not an error.
            let _ = stdin.write_all(text.as_bytes());
        }
        let status = child.wait();
        if status.as_ref().is_ok_and(|s| s.code() == Some(127)) {
            // The pager could not be run (`sh` said why): the output is not lost.
            self.warn(&format!(
                "cannot run the pager `{pager}`; printing directly"
            ));
            self.out(text);
        }
        use futures_util::FutureExt as _;
        signals
            .iter_mut()
            .any(|s| s.recv().now_or_never().is_some())
    }

    /// Writes text to stderr as is (a result meant for people when stdout carries data).
    pub fn err_out(&self, text: &str) {
        let _guard = self.stderr_lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }

    /// Writes one line to stdout.
    pub fn line(&self, text: &str) {
        self.out(&format!("{text}\n"));
    }

    /// Writes a value as one JSON object on stdout.
    pub fn json<T: serde::Serialize>(&self, value: &T) {
        let text = serde_json::to_string_pretty(value).expect("state serializes to JSON");
        self.line(&text);
    }

    /// A progress or informational line on stderr, unless `--quiet`.
    pub fn info(&self, text: &str) {
        if self.quiet {
            return;
        }
        self.stderr_line(text);
    }

    /// A warning on stderr (shown even with `--quiet`).
    pub fn warn(&self, text: &str) {
        let label = paint(self.color_err, Paint::Warn, "warning:");
        self.stderr_line(&format!("{label} {text}"));
    }

    fn stderr_line(&self, text: &str) {
        let _guard = self.stderr_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut stderr = io::stderr().lock();
        let _ = writeln!(stderr, "{text}");
    }

    /// Prints an error with its causes and hints, git style.
    pub fn error(&self, err: &CliError) {
        let chain = err.chain();
        let mut text = format!(
            "{} {}\n",
            paint(self.color_err, Paint::Bad, "error:"),
            chain[0]
        );
        for cause in &chain[1..] {
            text.push_str(&format!("caused by: {cause}\n"));
        }
        for hint in &err.hints {
            text.push_str(&format!("hint: {hint}\n"));
        }
        let _guard = self.stderr_lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}

/// `1 file`, `2 files`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Renders rows as a left-aligned table with a header; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(header.to_vec());
    for row in rows {
        push_row(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_are_coloured_like_git() {
        let p = "diff --git a/x b/x\n--- a/x\n@@ -1 +1 @@\n-old\n--- not a header\n+new\n ctx\n";
        let c = color_patch(p);
        assert!(c.contains("\x1b[31m-old\x1b[m\n"), "{c:?}");
        assert!(c.contains("\x1b[1m--- a/x\x1b[m\n"));
        assert!(c.contains("\x1b[31m--- not a header\x1b[m\n"));
        assert!(c.contains("\x1b[32m+new\x1b[m\n"));
        assert!(c.contains("\x1b[36m@@ -1 +1 @@\x1b[m"));
        assert!(c.ends_with(" ctx\n"));
        assert_eq!(paint(false, Paint::Bad, "x"), "x");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["rank", "agent"],
            &[
                vec!["1".into(), "fixer".into()],
                vec!["10".into(), "b".into()],
            ],
        );
        assert_eq!(t, "rank  agent\n1     fixer\n10    b\n");
    }
}
