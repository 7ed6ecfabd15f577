//! What commands print about runs: the ranking and its reason, usage, a merge's outcome.

use crate::git::merge::MergeKind;
use crate::run::merge::{Outcome, name_some};
use crate::run::state::RunState;
use crate::ui;

/// The ranking table and the reason, as `run` and `status RUN` print them.
pub fn render_ranking(state: &RunState) -> String {
    let mut cands: Vec<_> = state.candidates.iter().collect();
    cands.sort_by_key(|c| c.rank.unwrap_or(usize::MAX));
    let with_usage = cands.iter().any(|c| c.usage.is_some());
    let with_votes = !state.votes.is_empty() || !state.abstentions.is_empty();
    let rows: Vec<Vec<String>> = cands
        .iter()
        .map(|c| {
            let tests = c
                .tests
                .as_ref()
                .map_or_else(|| "-".to_owned(), |t| t.summary());
            let mut row = vec![
                c.rank.map_or("-".into(), |r| r.to_string()),
                c.agent.clone(),
                c.status.as_str().to_owned(),
                tests,
                format!("{:.2}", c.agreement),
                format!(
                    "{}, +{} -{}",
                    ui::count(c.files_changed, "file"),
                    c.insertions,
                    c.deletions
                ),
                c.branch.clone(),
            ];
            if with_votes {
                row.insert(4, c.votes.to_string());
            }
            if with_usage {
                let at = row.len() - 1;
                row.insert(at, c.usage.as_ref().map_or("-".into(), usage_words));
            }
            row
        })
        .collect();
    let mut out = format!("run {}\n\n", state.run);
    let mut header = vec![
        "rank", "agent", "status", "tests", "agree", "change", "branch",
    ];
    if with_votes {
        header.insert(4, "votes");
    }
    if with_usage {
        header.insert(header.len() - 1, "tokens in/out, cost");
    }
    out.push_str(&ui::table(&header, &rows));
    for c in cands.iter().filter(|c| !c.deleted.is_empty()) {
        out.push_str(&format!(
            "{} deletes {}: {}\n",
            c.agent,
            ui::count(c.deleted.len(), "file"),
            name_some(&c.deleted)
        ));
    }
    if let Some(reason) = &state.reason {
        out.push_str(&format!("\n{reason}\n"));
    }
    if let Some(t) = state.turns.last()
        && (t.rounds > 1 || t.turn > 1)
    {
        out.push_str(&format!(
            "{}{}{}\n",
            if t.turn > 1 {
                format!("turn {}: ", t.turn)
            } else {
                String::new()
            },
            ui::count(t.rounds as usize, "round"),
            if t.converged {
                ": converged (every agent voted without changing anything)"
            } else {
                ""
            }
        ));
    }
    for w in &state.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if !state.breaches.is_empty() {
        out.push_str(&format!(
            "\nchanged in your repository while the agents ran ({}; merging is refused without --allow-breach):\n",
            match state.breaches.len() { 1 => "1 breach".to_owned(), n => format!("{n} breaches") }
        ));
        for b in &state.breaches {
            out.push_str(&format!("  breach: {b}\n"));
        }
    }
    out
}

/// `12.3k/1.2k $0.0210`
pub fn usage_words(u: &crate::agent::events::Usage) -> String {
    fn k(n: u64) -> String {
        if n >= 10_000 {
            format!("{:.1}k", n as f64 / 1000.0)
        } else {
            n.to_string()
        }
    }
    let cost = u.cost_usd.map_or_else(String::new, |c| format!(" ${c:.4}"));
    format!("{}/{}{cost}", k(u.input_tokens), k(u.output_tokens))
}

/// Human-readable merge outcome.
pub fn render_outcome(o: &Outcome) -> String {
    let mut out = String::new();
    if !o.conflicts.is_empty() {
        out.push_str(&format!(
            "\nmerge of {} would conflict; nothing was changed:\n",
            o.agent
        ));
        for c in &o.conflicts {
            out.push_str(&format!("  {}  ({})\n", c.path, c.kind));
        }
    } else if !o.blocked_by_dirty.is_empty() {
        out.push_str(&format!(
            "\nmerge of {} refused: these files have uncommitted changes and the merge would change them; nothing was changed:\n",
            o.agent
        ));
        for p in &o.blocked_by_dirty {
            out.push_str(&format!("  {p}\n"));
        }
        out.push_str("commit or stash them, then merge again\n");
    } else if o.dry_run {
        let how = match o.kind {
            MergeKind::UpToDate => "is already merged",
            MergeKind::FastForward => "would fast-forward cleanly",
            MergeKind::Merge => "would merge cleanly",
        };
        out.push_str(&format!(
            "\n{} {how} ({})\n",
            o.agent,
            crate::ui::count(o.files.len(), "file")
        ));
    } else {
        let how = match o.kind {
            MergeKind::UpToDate => "was already merged",
            MergeKind::FastForward => "fast-forwarded",
            MergeKind::Merge => "merged",
        };
        out.push_str(&format!(
            "\n{} {how}: HEAD is now {} ({})\n",
            o.agent,
            o.commit.as_deref().map_or("", |c| &c[..c.len().min(12)]),
            crate::ui::count(o.files.len(), "file")
        ));
    }
    if let Some(note) = &o.note {
        out.push_str(&format!("note: {note}\n"));
    }
    if !o.deleted.is_empty() && o.conflicts.is_empty() {
        out.push_str(&format!(
            "{} {}: {}\n",
            if o.merged { "deleted" } else { "would delete" },
            crate::ui::count(o.deleted.len(), "file"),
            name_some(&o.deleted)
        ));
    }
    out
}

/// The text format with severities coloured as git colours good and bad.
pub fn color_text(text: &str) -> String {
    use crate::ui::{Paint, paint};
    text.lines()
        .map(|line| {
            for (word, style) in [
                (": error: ", Paint::Bad),
                (": warning: ", Paint::Warn),
                (": info: ", Paint::Frag),
            ] {
                if let Some(i) = line.find(word) {
                    let (head, rest) = line.split_at(i + 2);
                    let (sev, tail) = rest.split_at(word.len() - 4);
                    return format!("{head}{}{tail}\n", paint(true, style, sev));
                }
            }
            format!("{line}\n")
        })
        .collect()
}

/// One line on a reviewer that finished (and its warnings).
pub fn reviewer_done(ui: &crate::ui::Ui, o: &crate::review::ReviewerOutcome) {
    let secs = o.duration_ms as f64 / 1000.0;
    for w in &o.warnings {
        ui.warn(&format!("reviewer `{}`: {w}", o.name));
    }
    match &o.error {
        None => ui.info(&format!(
            "  {}: {} finding(s) in {secs:.1}s",
            o.name,
            o.findings.len()
        )),
        Some(e) => ui.warn(&format!(
            "reviewer `{}` failed after {secs:.1}s: {e}",
            o.name
        )),
    }
}
