//! Scoring and ranking candidates, and saying in one sentence why the winner won.
//!
//! Order: candidates that finished with a change come first (failed, timed out and no-change
//! ones last); then test evidence (passing suites first, then more passed, fewer failed);
//! then agreement with the other candidates; then the smaller change; then configuration
//! order, so that ties are broken deterministically.

pub mod agreement;
pub mod tests;

use std::cmp::Ordering;

use crate::run::state::{Candidate, Status};

/// The ranking of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Candidate indices, best first.
    pub order: Vec<usize>,
    /// The winner's index, if any candidate qualified.
    pub winner: Option<usize>,
    /// Why the winner won, or why nobody did.
    pub reason: String,
}

/// Whether a candidate can win: it finished with a change, and its tests passed when a test
/// command ran.
pub fn qualifies(c: &Candidate, tests_configured: bool) -> bool {
    c.status == Status::Done && (!tests_configured || c.tests.as_ref().is_some_and(|t| t.ok()))
}

fn status_rank(s: Status) -> u8 {
    match s {
        Status::Done => 0,
        Status::NoChange => 1,
        Status::Timeout => 2,
        Status::Failed => 3,
        Status::Pending | Status::Running => 4,
    }
}

fn size(c: &Candidate) -> usize {
    c.insertions + c.deletions
}

/// Compares two candidates, better first.
fn compare(a: &Candidate, b: &Candidate) -> Ordering {
    status_rank(a.status)
        .cmp(&status_rank(b.status))
        .then_with(|| compare_tests(a, b))
        .then_with(|| {
            b.agreement
                .partial_cmp(&a.agreement)
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| size(a).cmp(&size(b)))
}

fn compare_tests(a: &Candidate, b: &Candidate) -> Ordering {
    match (&a.tests, &b.tests) {
        (Some(x), Some(y)) => y
            .ok()
            .cmp(&x.ok())
            .then_with(|| y.passed.unwrap_or(0).cmp(&x.passed.unwrap_or(0)))
            .then_with(|| x.failed.unwrap_or(0).cmp(&y.failed.unwrap_or(0))),
        _ => Ordering::Equal,
    }
}

/// Ranks candidates (in configuration order) and explains the result.
pub fn rank(cands: &[Candidate], tests_configured: bool) -> Ranking {
    let mut order: Vec<usize> = (0..cands.len()).collect();
    // A stable sort keeps configuration order for full ties.
    order.sort_by(|&a, &b| compare(&cands[a], &cands[b]));
    let winner = order
        .first()
        .copied()
        .filter(|&i| qualifies(&cands[i], tests_configured));
    let reason = match winner {
        Some(w) => explain_win(cands, &order, w, tests_configured),
        None => explain_no_winner(cands, tests_configured),
    };
    Ranking {
        order,
        winner,
        reason,
    }
}

fn tests_words(c: &Candidate) -> String {
    c.tests
        .as_ref()
        .map_or_else(|| "no tests ran".into(), |t| t.summary())
}

fn fate(c: &Candidate) -> String {
    match c.status {
        Status::NoChange => format!("{} made no change", c.agent),
        Status::Timeout => format!("{} timed out", c.agent),
        Status::Failed => format!(
            "{} failed ({})",
            c.agent,
            c.error.as_deref().unwrap_or("exited non-zero")
        ),
        Status::Pending | Status::Running => format!("{} did not finish", c.agent),
        Status::Done => format!("{}: {}", c.agent, tests_words(c)),
    }
}

fn explain_win(cands: &[Candidate], order: &[usize], w: usize, tests_configured: bool) -> String {
    let win = &cands[w];
    let others: Vec<&Candidate> = order[1..].iter().map(|&i| &cands[i]).collect();
    let Some(runner_up) = others.first() else {
        return format!("{} won: it was the only candidate", win.agent);
    };
    let rest = if others.len() > 1 {
        format!(
            " (others: {})",
            others[1..]
                .iter()
                .map(|c| fate(c))
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else {
        String::new()
    };
    let why = if runner_up.status != Status::Done {
        if tests_configured {
            format!(
                "it is the only candidate that finished with a change, and its tests pass ({}); {}",
                tests_words(win),
                fate(runner_up)
            )
        } else {
            format!(
                "it is the only candidate that finished with a change; {}",
                fate(runner_up)
            )
        }
    } else if compare_tests(win, runner_up) != Ordering::Equal {
        if runner_up.tests.as_ref().is_some_and(|t| t.ok()) {
            format!(
                "more of its tests pass ({}) than {}'s ({})",
                tests_words(win),
                runner_up.agent,
                tests_words(runner_up)
            )
        } else {
            format!(
                "its tests pass ({}) and {}'s do not ({})",
                tests_words(win),
                runner_up.agent,
                tests_words(runner_up)
            )
        }
    } else if win.agreement != runner_up.agreement {
        format!(
            "tests tie with {} ({}), and it agrees more with the other candidates ({:.2} vs {:.2})",
            runner_up.agent,
            tests_words(win),
            win.agreement,
            runner_up.agreement
        )
    } else if size(win) != size(runner_up) {
        format!(
            "it ties with {} on tests and agreement, and is the smaller change (+{}/-{} vs +{}/-{})",
            runner_up.agent,
            win.insertions,
            win.deletions,
            runner_up.insertions,
            runner_up.deletions
        )
    } else {
        format!(
            "it ties with {} on tests, agreement and size, and comes first in configuration order",
            runner_up.agent
        )
    };
    format!("{} won: {why}{rest}", win.agent)
}

fn explain_no_winner(cands: &[Candidate], tests_configured: bool) -> String {
    if cands.is_empty() {
        return "no candidate qualified: there were no agents".into();
    }
    let need = if tests_configured {
        "finish with a change whose tests pass"
    } else {
        "finish with a change"
    };
    format!(
        "no candidate qualified (a winner must {need}): {}",
        cands.iter().map(fate).collect::<Vec<_>>().join("; ")
    )
}

#[cfg(test)]
mod tests_rank {
    use super::*;
    use crate::run::state::TestResult;

    fn cand(
        agent: &str,
        status: Status,
        tests: Option<(u64, u64, i32)>,
        agreement: f64,
        size: usize,
    ) -> Candidate {
        Candidate {
            agent: agent.into(),
            branch: String::new(),
            commit: None,
            status,
            exit_code: Some(0),
            files_changed: 1,
            insertions: size,
            deletions: 0,
            tests: tests.map(|(p, f, code)| TestResult {
                passed: Some(p),
                failed: Some(f),
                exit_code: Some(code),
                timed_out: false,
                duration_ms: 0,
            }),
            agreement,
            rank: None,
            ..Default::default()
        }
    }

    #[test]
    fn tests_decide_first() {
        let cands = vec![
            cand("bad", Status::Done, Some((1, 1, 1)), 0.9, 1),
            cand("noop", Status::NoChange, None, 0.0, 0),
            cand("good", Status::Done, Some((2, 0, 0)), 0.1, 50),
        ];
        let r = rank(&cands, true);
        assert_eq!(r.order, vec![2, 0, 1]);
        assert_eq!(r.winner, Some(2));
        assert!(
            r.reason.starts_with("good won: its tests pass"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn agreement_then_size_then_order() {
        let cands = vec![
            cand("a", Status::Done, Some((2, 0, 0)), 0.5, 10),
            cand("b", Status::Done, Some((2, 0, 0)), 0.7, 10),
        ];
        assert_eq!(rank(&cands, true).winner, Some(1));
        let cands = vec![
            cand("a", Status::Done, None, 0.5, 10),
            cand("b", Status::Done, None, 0.5, 3),
        ];
        let r = rank(&cands, false);
        assert_eq!(r.winner, Some(1));
        assert!(r.reason.contains("smaller change"), "{}", r.reason);
        let cands = vec![
            cand("a", Status::Done, None, 0.5, 3),
            cand("b", Status::Done, None, 0.5, 3),
        ];
        let r = rank(&cands, false);
        assert_eq!(r.winner, Some(0));
        assert!(r.reason.contains("configuration order"), "{}", r.reason);
    }

    #[test]
    fn nobody_qualifies_when_all_tests_fail() {
        let cands = vec![cand("a", Status::Done, Some((0, 2, 1)), 0.0, 1)];
        let r = rank(&cands, true);
        assert_eq!(r.winner, None);
        assert!(
            r.reason.starts_with("no candidate qualified"),
            "{}",
            r.reason
        );
    }
}
