//! The HTML report of a task plan: its graph (tasks by wave, arrows from what each depends
//! on, coloured by status), each task's winner, cost, time and reason with a link to its
//! run's own report, and the conflict matrix. One self-contained page from
//! `templates/plan_report.html` (`.massgen/templates/plan_report.html` replaces it),
//! rendered with HTML autoescaping like the run report.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use super::{ReportError, write_html};
use crate::git::Repo;
use crate::plan::matrix::PlanConflicts;
use crate::plan::state::PlanState;
use crate::run::layout::RunDir;
use crate::run::state::RunState;

pub const TEMPLATE_NAME: &str = "plan_report.html";
const BUILTIN: &str = include_str!("../../templates/plan_report.html");

/// Width and height of a task's box in the graph, and the gaps between them.
const W: u32 = 190;
const H: u32 = 62;
const GAP_X: u32 = 70;
const GAP_Y: u32 = 24;
const MARGIN: u32 = 12;

#[derive(Serialize)]
struct Page<'a> {
    version: &'static str,
    plan: &'a str,
    target_branch: Option<&'a str>,
    target_commit: &'a str,
    integration_branch: &'a str,
    integration_commit: &'a str,
    merged: Option<&'a str>,
    width: u32,
    height: u32,
    nodes: Vec<Node<'a>>,
    edges: Vec<Edge>,
    total_cost: Option<String>,
    matrix: PlanConflicts,
}

#[derive(Serialize)]
struct Node<'a> {
    id: &'a str,
    title: &'a str,
    wave: usize,
    status: &'a str,
    x: u32,
    y: u32,
    run: Option<&'a str>,
    /// The run's report, relative to the plan report's directory, when it exists.
    link: Option<String>,
    winner: Option<&'a str>,
    reason: Option<&'a str>,
    conflicts: &'a [String],
    cost: Option<String>,
    time: Option<String>,
}

#[derive(Serialize)]
struct Edge {
    path: String,
}

/// Renders the plan report of `st` for a page written at `path`.
pub fn render(
    repo: &Repo,
    st: &PlanState,
    matrix: &PlanConflicts,
    path: &Path,
) -> Result<String, ReportError> {
    let (source, origin) = super::template_source(&repo.massgen_dir(), TEMPLATE_NAME, BUILTIN)?;
    let page = page(repo, st, matrix, path);
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    let rendered = env
        .add_template_owned(TEMPLATE_NAME, source.into_owned())
        .and_then(|()| {
            env.get_template(TEMPLATE_NAME)?.render(super::to_value(
                serde_json::to_value(&page).expect("the page serializes"),
            ))
        });
    rendered.map_err(|source| ReportError::Template {
        template: origin,
        source,
    })
}

/// Writes the plan report to `path` (atomically), and the report of each task's run that
/// has none yet (a plan's runs are not written one by `run`), so that every task links to
/// its run's page.
pub fn write(
    repo: &Repo,
    st: &PlanState,
    matrix: &PlanConflicts,
    path: &Path,
) -> Result<(), ReportError> {
    for run in st.tasks.iter().filter_map(|t| t.run.as_deref()) {
        let dir = RunDir::new(repo, run);
        if !dir.dir.join(super::REPORT_FILE).exists()
            && let Ok(rs) = RunState::load(&dir)
        {
            super::write_report(repo, &dir, &rs)?;
        }
    }
    let html = render(repo, st, matrix, path)?;
    write_html(path, &html)
}

/// Where the plan report goes by default: beside the plan's state.
pub fn default_path(repo: &Repo, plan: &str) -> PathBuf {
    crate::plan::state::dir(repo, plan).join("report.html")
}

fn page<'a>(repo: &Repo, st: &'a PlanState, matrix: &PlanConflicts, path: &Path) -> Page<'a> {
    let mut per_wave: Vec<u32> = Vec::new();
    let mut nodes = Vec::new();
    let mut total: Option<f64> = None;
    let here = path.parent().unwrap_or(Path::new("."));
    for t in &st.tasks {
        let wave = t.wave.max(1);
        if per_wave.len() < wave {
            per_wave.resize(wave, 0);
        }
        let row = per_wave[wave - 1];
        per_wave[wave - 1] += 1;
        let run_state = t
            .run
            .as_deref()
            .and_then(|r| RunState::load(&RunDir::new(repo, r)).ok());
        let cost = run_state
            .as_ref()
            .and_then(|rs| rs.usage.as_ref())
            .and_then(|u| u.cost_usd);
        if let Some(c) = cost {
            *total.get_or_insert(0.0) += c;
        }
        let link = t.run.as_deref().and_then(|r| {
            let report = RunDir::new(repo, r).dir.join(super::REPORT_FILE);
            report.exists().then(|| relative(here, &report))
        });
        nodes.push(Node {
            id: &t.id,
            title: &t.title,
            wave,
            status: t.status.as_str(),
            x: MARGIN + (wave as u32 - 1) * (W + GAP_X),
            y: MARGIN + row * (H + GAP_Y),
            run: t.run.as_deref(),
            link,
            winner: t.winner.as_deref(),
            reason: t.reason.as_deref(),
            conflicts: &t.conflicts,
            cost: cost.map(|c| format!("${c:.4}")),
            time: run_state.as_ref().map(|rs| {
                humantime::format_duration(std::time::Duration::from_secs(
                    rs.updated_at.saturating_sub(rs.created_at),
                ))
                .to_string()
            }),
        });
    }
    let edges = st
        .tasks
        .iter()
        .flat_map(|t| t.depends_on.iter().map(move |d| (d, &t.id)))
        .filter_map(|(from, to)| {
            let a = nodes.iter().find(|n| n.id == from.as_str())?;
            let b = nodes.iter().find(|n| n.id == to.as_str())?;
            let (x1, y1) = (a.x + W, a.y + H / 2);
            let (x2, y2) = (b.x, b.y + H / 2);
            let mid = (x1 + x2) / 2;
            Some(Edge {
                path: format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"),
            })
        })
        .collect();
    let rows = per_wave.iter().copied().max().unwrap_or(1);
    Page {
        version: env!("CARGO_PKG_VERSION"),
        plan: &st.plan,
        target_branch: st.target_branch.as_deref(),
        target_commit: &st.target_commit,
        integration_branch: &st.integration_branch,
        integration_commit: &st.integration_commit,
        merged: st.merged.as_deref(),
        width: 2 * MARGIN + per_wave.len().max(1) as u32 * (W + GAP_X) - GAP_X,
        height: 2 * MARGIN + rows * (H + GAP_Y) - GAP_Y,
        nodes,
        edges,
        total_cost: total.map(|c| format!("${c:.4}")),
        // Only the pairs that conflict.
        matrix: PlanConflicts {
            pairs: conflicting(&matrix.pairs),
            against_integration: conflicting(&matrix.against_integration),
        },
    }
}

fn conflicting(pairs: &[crate::run::conflicts::Pair]) -> Vec<crate::run::conflicts::Pair> {
    pairs
        .iter()
        .filter(|p| !p.conflicts.is_empty())
        .cloned()
        .collect()
}

/// `to` relative to the directory `from` (both absolute), with `/`.
fn relative(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to_parts: Vec<_> = to.components().collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out: Vec<String> = vec!["..".to_owned(); from.len() - common];
    out.extend(
        to_parts[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::relative;
    use std::path::Path;

    #[test]
    fn links_are_relative_to_the_page() {
        assert_eq!(
            relative(
                Path::new("/r/.massgen/runs/.plans/p"),
                Path::new("/r/.massgen/runs/x/report.html")
            ),
            "../../x/report.html"
        );
    }
}
