//! All terminal output. Domain modules never print; commands hand their results here.
//!
//! Results go to stdout (a table, a diff, or one JSON object with `--json`); progress and
//! warnings go to stderr so that scripts can capture stdout alone. A closed pipe on stdout is
//! not an error (`git massgen diff RUN | head`).

use std::io::{self, Write};
use std::sync::Mutex;

use crate::error::CliError;

/// The output sink shared by every command.
pub struct Ui {
    quiet: bool,
    stderr_lock: Mutex<()>,
}

impl Ui {
    /// A sink writing to the process's stdout and stderr.
    pub fn new(quiet: bool) -> Self {
        Ui {
            quiet,
            stderr_lock: Mutex::new(()),
        }
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
        self.stderr_line(&format!("warning: {text}"));
    }

    fn stderr_line(&self, text: &str) {
        let _guard = self.stderr_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut stderr = io::stderr().lock();
        let _ = writeln!(stderr, "{text}");
    }

    /// Prints an error with its causes and hints, git style.
    pub fn error(&self, err: &CliError) {
        let chain = err.chain();
        let mut text = format!("error: {}\n", chain[0]);
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
    use super::table;

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
