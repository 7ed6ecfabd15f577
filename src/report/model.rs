//! What the report shows, gathered from a run's state and the repository: the ranking with
//! its evidence, votes, turns, each candidate's coloured diff and the pairwise similarity of
//! the candidates' changes. Plain data, serialized for the template and for the page's
//! script; nothing here knows HTML.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::highlight::{self, Line};
use crate::agent::events::Usage;
use crate::git::{ObjectId, Repo, diff};
use crate::run::state::{Candidate, Phase, RunState, Status, Voter};
use crate::score::agreement::similarity;

/// Lines of one candidate's diff shown at most; the rest is left to `git massgen diff`.
const MAX_DIFF_LINES: usize = 5_000;
/// Characters of one diff line shown at most (minified files make very long lines).
const MAX_LINE_CHARS: usize = 2_000;

/// The whole page.
#[derive(Debug, Serialize)]
pub struct Page {
    pub run: String,
    pub task: String,
    pub phase: &'static str,
    pub merged: bool,
    pub base: String,
    pub base_branch: Option<String>,
    pub test_command: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub winner: Option<String>,
    pub reason: Option<String>,
    /// A sentence about the phase, when the run is not simply finished.
    pub phase_note: Option<String>,
    pub rows: Vec<Row>,
    pub votes: Vec<VoteView>,
    pub abstentions: Vec<VoteView>,
    pub turns: Vec<TurnView>,
    pub usage: Option<UsageView>,
    pub judge_usage: Option<UsageView>,
    pub warnings: Vec<String>,
    /// Changes made in the user's repository while agents ran; they block merging.
    pub breaches: Vec<String>,
    pub heatmap: Heatmap,
    pub diffs: Vec<DiffView>,
    pub version: &'static str,
}

/// One candidate in ranking order, with all the evidence for its place.
#[derive(Debug, Serialize)]
pub struct Row {
    pub rank: Option<usize>,
    pub agent: String,
    pub kind: String,
    pub status: &'static str,
    pub winner: bool,
    pub exit_code: Option<i32>,
    pub tests: Option<TestsView>,
    /// Votes that count now (current turn, latest of each voter).
    pub votes: Vec<VoteView>,
    pub agreement: String,
    pub insertions: usize,
    pub deletions: usize,
    pub files: Vec<String>,
    pub files_changed: usize,
    pub usage: Option<UsageView>,
    pub duration: String,
    pub turns: Option<u32>,
    pub branch: String,
    pub commit: Option<String>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// Writes or connections the sandbox denied it.
    pub denied: u32,
    pub final_message: Option<String>,
    pub anchor: String,
}

#[derive(Debug, Serialize)]
pub struct TestsView {
    pub ok: bool,
    pub summary: String,
    pub passed: Option<u64>,
    pub failed: Option<u64>,
    pub errors: Option<u64>,
    pub skipped: Option<u64>,
    /// The runner ran no test: the test setup failed, not a test.
    pub could_not_collect: bool,
    pub duration: String,
}

#[derive(Debug, Serialize)]
pub struct VoteView {
    pub judge: String,
    pub by: &'static str,
    pub candidate: Option<String>,
    pub reason: String,
    pub turn: u32,
    pub round: u32,
}

#[derive(Debug, Serialize)]
pub struct TurnView {
    pub turn: u32,
    pub prompt: String,
    pub agents: Vec<String>,
    pub rounds: u32,
    pub converged: bool,
    pub winner: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct UsageView {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: Option<String>,
}

/// Pairwise similarity of the candidates' changed lines.
#[derive(Debug, Serialize)]
pub struct Heatmap {
    pub agents: Vec<String>,
    /// `cells[i][j]`: the similarity of `agents[i]` and `agents[j]`, `None` where either has
    /// no finished change.
    pub cells: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub value: Option<f64>,
    pub text: String,
    pub style: String,
}

/// One candidate's diff against the base, or why there is none.
#[derive(Debug, Serialize)]
pub struct DiffView {
    pub agent: String,
    pub anchor: String,
    pub status: &'static str,
    pub missing: Option<String>,
    pub truncated: bool,
    pub files: Vec<FileView>,
}

#[derive(Debug, Serialize)]
pub struct FileView {
    pub path: String,
    pub lines: Vec<Line>,
}

/// Gathers the page of `state`. Diffs that cannot be read become a sentence saying why.
pub fn page(repo: &Repo, state: &RunState) -> Page {
    let base = ObjectId::from_hex(state.base.as_bytes()).ok();
    build(state, |c, commit| render(repo, state, base, c, commit))
}

/// Gathers the page with `diff_of(candidate, commit)` giving a candidate's diff against
/// the base.
pub(super) fn build(
    state: &RunState,
    diff_of: impl Fn(&Candidate, &str) -> Result<diff::Rendered, String>,
) -> Page {
    let phase = state.effective_phase();
    let rendered: Vec<Result<diff::Rendered, String>> = state
        .candidates
        .iter()
        .map(|c| match &c.commit {
            Some(commit) => diff_of(c, commit),
            None => Err(match c.status {
                Status::Pending | Status::Running => {
                    format!("no candidate yet ({})", c.status.as_str())
                }
                _ => format!("no candidate commit ({})", c.status.as_str()),
            }),
        })
        .collect();
    let current = state.current_votes();
    let mut order: Vec<usize> = (0..state.candidates.len()).collect();
    order.sort_by_key(|&i| state.candidates[i].rank.unwrap_or(usize::MAX));
    let rows = order
        .iter()
        .map(|&i| {
            let c = &state.candidates[i];
            let files = rendered[i]
                .as_ref()
                .map(|r| r.paths.clone())
                .unwrap_or_default();
            Row {
                rank: c.rank,
                agent: c.agent.clone(),
                kind: c.kind.clone(),
                status: c.status.as_str(),
                winner: state.winner.as_deref() == Some(c.agent.as_str()),
                exit_code: c.exit_code,
                tests: c.tests.as_ref().map(|t| TestsView {
                    ok: t.ok(),
                    summary: t.summary(),
                    passed: t.passed,
                    failed: t.failed,
                    errors: t.errors,
                    skipped: t.skipped,
                    could_not_collect: t.could_not_collect,
                    duration: duration(t.duration_ms),
                }),
                votes: current
                    .iter()
                    .filter(|v| v.candidate == c.agent)
                    .map(|v| vote_view(v))
                    .collect(),
                agreement: format!("{:.2}", c.agreement),
                insertions: c.insertions,
                deletions: c.deletions,
                files,
                files_changed: c.files_changed,
                usage: c.usage.as_ref().map(usage_view),
                duration: duration(c.duration_ms),
                turns: c.turns,
                branch: c.branch.clone(),
                commit: c.commit.as_ref().map(|h| short(h).to_owned()),
                error: c.error.clone(),
                warnings: c.warnings.clone(),
                denied: c.denied,
                final_message: c.final_message.clone(),
                anchor: anchor(i),
            }
        })
        .collect();
    let diffs = order
        .iter()
        .map(|&i| diff_view(i, &state.candidates[i], &rendered[i]))
        .collect();
    Page {
        run: state.run.clone(),
        task: state.task.clone(),
        phase: phase.as_str(),
        merged: state.merged,
        base: short(&state.base).to_owned(),
        base_branch: state.base_branch.clone(),
        test_command: state.test_command.clone(),
        created_at: timestamp(state.created_at),
        updated_at: timestamp(state.updated_at),
        winner: state.winner.clone(),
        reason: state.reason.clone(),
        phase_note: phase_note(phase),
        rows,
        votes: state.votes.iter().map(vote_view).collect(),
        abstentions: state
            .abstentions
            .iter()
            .map(|a| VoteView {
                judge: a.judge.clone(),
                by: "judge",
                candidate: None,
                reason: a.reason.clone(),
                turn: a.turn,
                round: a.round,
            })
            .collect(),
        turns: state
            .turns
            .iter()
            .map(|t| TurnView {
                turn: t.turn,
                prompt: t.prompt.clone(),
                agents: t.agents.clone(),
                rounds: t.rounds,
                converged: t.converged,
                winner: t.winner.clone(),
                reason: t.reason.clone(),
            })
            .collect(),
        usage: state.usage.as_ref().map(usage_view),
        judge_usage: state.judge_usage.as_ref().map(usage_view),
        warnings: state.warnings.clone(),
        breaches: state.breaches.clone(),
        heatmap: heatmap(&order, state, &rendered),
        diffs,
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// The diff of a candidate against the run's base, or why it cannot be shown.
fn render(
    repo: &Repo,
    state: &RunState,
    base: Option<ObjectId>,
    c: &Candidate,
    hex: &str,
) -> Result<diff::Rendered, String> {
    let base = base.ok_or_else(|| format!("the run's base `{}` is not a commit id", state.base))?;
    let commit =
        ObjectId::from_hex(hex.as_bytes()).map_err(|_| format!("bad commit id `{hex}`"))?;
    let branch_gone = matches!(
        repo.ref_target(&format!("refs/heads/{}", c.branch)),
        Ok(None)
    );
    diff::render(repo, base, commit).map_err(|e| {
        if branch_gone {
            format!(
                "the branch {} is gone and its commit {} cannot be read",
                c.branch,
                short(hex)
            )
        } else {
            format!("the diff cannot be read: {e}")
        }
    })
}

fn diff_view(i: usize, c: &Candidate, rendered: &Result<diff::Rendered, String>) -> DiffView {
    let (missing, truncated, files) = match rendered {
        Err(why) => (Some(why.clone()), false, Vec::new()),
        Ok(r) if r.patch.is_empty() => (Some("no change against the base".into()), false, vec![]),
        Ok(r) => {
            let mut budget = MAX_DIFF_LINES;
            // Only what can be shown is highlighted: a million-line patch costs no more
            // than the lines kept (file headers take a few lines each, hence the slack).
            let (shown, mut truncated) = head_of(&r.patch, MAX_DIFF_LINES * 2);
            let mut files = Vec::new();
            for (path, mut lines) in highlight::files(&shown) {
                if budget == 0 {
                    truncated = true;
                    break;
                }
                if lines.len() > budget {
                    lines.truncate(budget);
                    truncated = true;
                }
                budget -= lines.len();
                for line in &mut lines {
                    cut_line(line);
                }
                files.push(FileView { path, lines });
            }
            (None, truncated, files)
        }
    };
    DiffView {
        agent: c.agent.clone(),
        anchor: anchor(i),
        status: c.status.as_str(),
        missing,
        truncated,
        files,
    }
}

/// The first `max` lines of a patch, each cut to a little over [`MAX_LINE_CHARS`]
/// characters, and whether anything was left out.
fn head_of(patch: &str, max: usize) -> (String, bool) {
    let mut out = String::new();
    let mut cut = false;
    for (i, line) in patch.lines().enumerate() {
        if i == max {
            cut = true;
            break;
        }
        let mut chars = line.char_indices();
        match chars.nth(MAX_LINE_CHARS + 1) {
            Some((end, _)) => out.push_str(&line[..end]),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    (out, cut)
}

/// Cuts a line's tokens to [`MAX_LINE_CHARS`] characters in all.
fn cut_line(line: &mut Line) {
    let mut left = MAX_LINE_CHARS;
    let mut keep = 0;
    for tok in &mut line.toks {
        let n = tok.t.chars().count();
        keep += 1;
        if n > left {
            let cut: String = tok.t.chars().take(left).collect();
            tok.t = cut + " …";
            line.toks.truncate(keep);
            return;
        }
        left -= n;
    }
}

/// Similarity of every pair of finished candidates' changed lines; the diagonal is 1.
fn heatmap(
    order: &[usize],
    state: &RunState,
    rendered: &[Result<diff::Rendered, String>],
) -> Heatmap {
    let lines: Vec<Option<&str>> = order
        .iter()
        .map(|&i| match &rendered[i] {
            Ok(r) if state.candidates[i].status == Status::Done && !r.changed_lines.is_empty() => {
                Some(r.changed_lines.as_str())
            }
            _ => None,
        })
        .collect();
    let n = order.len();
    let mut cells = vec![vec![cell(None); n]; n];
    for i in 0..n {
        for j in i..n {
            let value = match (lines[i], lines[j]) {
                (Some(_), Some(_)) if i == j => Some(1.0),
                (Some(a), Some(b)) => Some(similarity(a, b)),
                _ => None,
            };
            cells[i][j] = cell(value);
            cells[j][i] = cell(value);
        }
    }
    Heatmap {
        agents: order
            .iter()
            .map(|&i| state.candidates[i].agent.clone())
            .collect(),
        cells,
    }
}

/// A heatmap cell: pale for unlike changes, deep blue for identical ones.
fn cell(value: Option<f64>) -> Cell {
    match value {
        None => Cell {
            value: None,
            text: "–".into(),
            style: "background:#f3f3f3;color:#999".into(),
        },
        Some(v) => {
            let v = v.clamp(0.0, 1.0);
            let light = 96.0 - 58.0 * v;
            let fg = if light < 60.0 { "#fff" } else { "#111" };
            Cell {
                value: Some((v * 1000.0).round() / 1000.0),
                text: format!("{v:.2}"),
                style: format!("background:hsl(212,70%,{light:.0}%);color:{fg}"),
            }
        }
    }
}

fn vote_view(v: &crate::run::state::Vote) -> VoteView {
    VoteView {
        judge: v.judge.clone(),
        by: match v.by {
            Voter::Judge => "judge",
            Voter::Agent => "agent",
        },
        candidate: Some(v.candidate.clone()),
        reason: v.reason.clone(),
        turn: v.turn,
        round: v.round,
    }
}

fn usage_view(u: &Usage) -> UsageView {
    UsageView {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cost: u.cost_usd.map(|c| format!("${c:.4}")),
    }
}

fn phase_note(phase: Phase) -> Option<String> {
    Some(
        match phase {
            Phase::Created | Phase::Running => {
                "the run is still running; this page shows it as it was when written"
            }
            Phase::Scoring => "the run is being scored; the ranking may still change",
            Phase::Interrupted => {
                "the run was interrupted; `git massgen clean` saves what the agents left"
            }
            Phase::Abandoned => "the run was abandoned",
            Phase::Scored | Phase::Merged => return None,
        }
        .to_owned(),
    )
}

/// An id for a candidate's diff section (agent names may hold dots).
fn anchor(i: usize) -> String {
    format!("cand-{i}")
}

fn short(hex: &str) -> &str {
    &hex[..12.min(hex.len())]
}

/// `1.2 s`, `3 min 4 s`.
fn duration(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn timestamp(secs: u64) -> String {
    if secs == 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::state::Phase;

    #[test]
    fn durations_and_times_read_well() {
        assert_eq!(duration(1234), "1.2 s");
        assert_eq!(duration(184_000), "3 min 4 s");
        assert_eq!(timestamp(1_767_225_600), "2026-01-01 00:00:00 UTC");
        assert_eq!(timestamp(0), "-");
    }

    #[test]
    fn cells_shade_with_similarity() {
        assert_eq!(cell(None).text, "–");
        let full = cell(Some(1.0));
        assert_eq!(full.text, "1.00");
        assert!(full.style.contains("38%"), "{}", full.style);
        assert!(cell(Some(0.0)).style.contains("96%"));
    }

    #[test]
    fn long_lines_are_cut() {
        let mut line = highlight::files(&format!(
            "diff --git a/a b/a\n@@ -0,0 +1 @@\n+{}\n",
            "x".repeat(5000)
        ))
        .remove(0)
        .1
        .remove(2);
        cut_line(&mut line);
        let len: usize = line.toks.iter().map(|t| t.t.chars().count()).sum();
        assert_eq!(len, MAX_LINE_CHARS + 2);
    }

    #[test]
    fn finished_runs_need_no_note() {
        assert!(phase_note(Phase::Scored).is_none());
        assert!(
            phase_note(Phase::Interrupted)
                .unwrap()
                .contains("interrupted")
        );
    }
}
