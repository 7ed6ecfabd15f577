//! The HTML report of a run: one self-contained page (no network resources) with the task,
//! the ranking and its evidence, the winner and why, each candidate's coloured diff, a
//! side-by-side comparison of any two candidates and a heatmap of their agreement.
//!
//! The page comes from `templates/report.html` (built in; `.massgen/templates/report.html`
//! replaces it), rendered by minijinja with HTML autoescaping, so text from agents, judges
//! and the task can never become markup. The page's script reads its data from a
//! `<script type="application/json">` element whose `<`, `>` and `&` are written as JSON
//! escapes, so no `</script>` in a diff can end it. This module never prints.

mod highlight;
mod model;
pub mod plan;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, Value};
use serde::Serialize;

use crate::git::Repo;
use crate::run::RunError;
use crate::run::layout::RunDir;
use crate::run::state::{RunState, write_atomic};

/// The template's file name, built in and in `.massgen/templates/`.
pub const TEMPLATE_NAME: &str = "report.html";
/// The file the report is written to in a run's directory.
pub const REPORT_FILE: &str = "report.html";

const BUILTIN: &str = include_str!("../../templates/report.html");

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the report template {path}")]
    ReadTemplate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot render the report template {template}")]
    Template {
        /// The override's path, or `built-in`.
        template: String,
        #[source]
        source: minijinja::Error,
    },
    #[error(transparent)]
    Write(#[from] RunError),
}

/// The source of the template `name`: the override in `<massgen_dir>/templates/` if there is
/// one, else `builtin`. Returns where it came from too, for error messages.
pub fn template_source(
    massgen_dir: &Path,
    name: &str,
    builtin: &'static str,
) -> Result<(Cow<'static, str>, String), ReportError> {
    let path = massgen_dir.join("templates").join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((Cow::Owned(text), path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((Cow::Borrowed(builtin), "built-in".to_owned()))
        }
        Err(source) => Err(ReportError::ReadTemplate { path, source }),
    }
}

/// Renders the report of `state` as one HTML page.
pub fn render(repo: &Repo, state: &RunState) -> Result<String, ReportError> {
    let (source, origin) = template_source(&repo.massgen_dir(), TEMPLATE_NAME, BUILTIN)?;
    let page = model::page(repo, state);
    render_page(&page, &source).map_err(|source| ReportError::Template {
        template: origin,
        source,
    })
}

/// Renders `page` with the template `source`.
fn render_page(page: &model::Page, source: &str) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    // Every template is HTML, whatever name an override might suggest.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template_owned(TEMPLATE_NAME, source.to_owned())?;
    let fields = to_value(serde_json::to_value(page).expect("the page serializes"));
    let ctx = minijinja::context! {
        data_json => Value::from_safe_string(script_json(&page_data(page))),
        ..fields
    };
    env.get_template(TEMPLATE_NAME)?.render(ctx)
}

/// Renders the report of `state` and writes it to `path` atomically.
pub fn write_to(repo: &Repo, state: &RunState, path: &Path) -> Result<(), ReportError> {
    let html = render(repo, state)?;
    write_html(path, &html)
}

/// Writes a page atomically, readable as the umask allows.
fn write_html(path: &Path, html: &str) -> Result<(), ReportError> {
    write_atomic(path, html.as_bytes())?;
    // The temporary file was private; a page is a document like any other in the tree.
    let mode = 0o666 & !umask();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(
        |source| RunError::Io {
            what: "cannot set the permissions of",
            path: path.to_owned(),
            source,
        },
    )?;
    Ok(())
}

/// The process's umask, as Linux reports it; git's usual 022 elsewhere. (Reading it with
/// `umask(2)` means setting it, which would race with other threads.)
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Writes `report.html` into the run's directory (atomically); returns its path. `run` calls
/// this when it finishes; `git massgen report` when asked.
pub fn write_report(repo: &Repo, dir: &RunDir, state: &RunState) -> Result<PathBuf, ReportError> {
    let path = dir.dir.join(REPORT_FILE);
    write_to(repo, state, &path)?;
    Ok(path)
}

/// What the page's script needs: the candidates in ranking order, their diffs in compact
/// form, and the similarity matrix.
#[derive(Serialize)]
struct Data<'a> {
    run: &'a str,
    winner: Option<&'a str>,
    agents: Vec<&'a str>,
    similarity: Vec<Vec<Option<f64>>>,
    diffs: Vec<DataDiff<'a>>,
}

#[derive(Serialize)]
struct DataDiff<'a> {
    agent: &'a str,
    status: &'a str,
    missing: Option<&'a str>,
    truncated: bool,
    files: Vec<DataFile<'a>>,
}

#[derive(Serialize)]
struct DataFile<'a> {
    path: &'a str,
    lines: Vec<Vec<&'a str>>,
}

fn page_data(page: &model::Page) -> Data<'_> {
    Data {
        run: &page.run,
        winner: page.winner.as_deref(),
        agents: page.diffs.iter().map(|d| d.agent.as_str()).collect(),
        similarity: page
            .heatmap
            .cells
            .iter()
            .map(|row| row.iter().map(|c| c.value).collect())
            .collect(),
        diffs: page
            .diffs
            .iter()
            .map(|d| DataDiff {
                agent: &d.agent,
                status: d.status,
                missing: d.missing.as_deref(),
                truncated: d.truncated,
                files: d
                    .files
                    .iter()
                    .map(|f| DataFile {
                        path: &f.path,
                        lines: f.lines.iter().map(|l| l.compact()).collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// JSON safe inside a `<script>` element: `<`, `>` and `&` (which only occur in strings)
/// become `\u` escapes, as do the line separators JavaScript once refused in strings.
fn script_json<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("report data serializes");
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as a template value (minijinja is built without serde support).
pub(super) fn to_value(json: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(b),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (_, Some(i)) => Value::from(i),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::from(s),
        J::Array(items) => Value::from(items.into_iter().map(to_value).collect::<Vec<_>>()),
        J::Object(map) => Value::from(
            map.into_iter()
                .map(|(k, v)| (k, to_value(v)))
                .collect::<std::collections::BTreeMap<String, Value>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_script() {
        let text = script_json(&serde_json::json!({"d": "</script><!-- & \u{2028}"}));
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["d"], "</script><!-- & \u{2028}");
    }

    #[test]
    fn templates_escape_html_whatever_their_name() {
        let page_src = "{{ task }}|{{ data_json }}";
        let state: RunState = serde_json::from_value(serde_json::json!({
            "run": "r1", "base": "0123456789abcdef0123456789abcdef01234567",
            "base_branch": null, "task": "<b>x</b>", "state": "scored", "winner": null,
            "merged": false, "reason": null, "test_command": null, "created_at": 0,
            "updated_at": 0, "pid": 0, "worktree_root": "/w", "candidates": []
        }))
        .unwrap();
        let page = model::build(&state, |_, _| Err("no repository".into()));
        let html = render_page(&page, page_src).unwrap();
        assert!(html.starts_with("&lt;b&gt;x&lt;&#x2f;b&gt;|{"), "{html}");
    }

    #[test]
    fn the_builtin_template_renders_an_empty_run() {
        let state: RunState = serde_json::from_value(serde_json::json!({
            "run": "r1", "base": "0123", "base_branch": null, "task": "t", "state": "running",
            "winner": null, "merged": false, "reason": null, "test_command": null,
            "created_at": 0, "updated_at": 0, "pid": 0, "worktree_root": "/w",
            "candidates": [{"agent": "a", "branch": "massgen/r1/a", "commit": null,
              "status": "pending", "exit_code": null, "files_changed": 0, "insertions": 0,
              "deletions": 0, "tests": null, "agreement": 0.0, "rank": null,
              "worktree": null}]
        }))
        .unwrap();
        let page = model::build(&state, |_, _| Err("no repository".into()));
        let html = render_page(&page, BUILTIN).unwrap();
        assert!(html.contains("interrupted"), "{html}");
        assert!(html.contains("no candidate yet"), "{html}");
    }
}
