//! Scoring and ranking candidates, and saying in one sentence why the winner won.
//!
//! Order: candidates that finished with a change come first (failed, timed out and no-change
//! ones last); then test evidence (passing suites first, then suites that ran over those
//! that could not collect, then more passed, then fewer failed and errors together);
//! then votes (judges' and agents'); then agreement with the other candidates; then the
//! smaller change; then configuration order, so that ties are broken deterministically.
//!
//! With `[score.weights]` the evidence is instead turned into one number per candidate
//! (each part in 0..=1, weighted and summed); ties of that number fall back to the order
//! above.

pub mod agreement;
pub mod test_output;

use std::cmp::Ordering;

use crate::config::Weights;
use crate::model::{Candidate, Status, Vote};

/// What the ranking weighs besides the candidates themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy<'a> {
    pub tests_configured: bool,
    pub weights: Option<Weights>,
    /// The votes that count (the last round's).
    pub votes: &'a [&'a Vote],
}

impl Policy<'_> {
    fn votes_for(&self, agent: &str) -> usize {
        self.votes.iter().filter(|v| v.candidate == agent).count()
    }
}

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

/// The candidates judges choose between: with `all`, every one that finished with a change;
/// otherwise those that tie with the best of them on tests (what tests cannot decide).
pub fn contenders(cands: &[Candidate], all: bool) -> Vec<usize> {
    let done: Vec<usize> = (0..cands.len())
        .filter(|&i| cands[i].status == Status::Done)
        .collect();
    if all {
        return done;
    }
    let Some(&best) = done
        .iter()
        .min_by(|&&a, &&b| compare_tests(&cands[a], &cands[b]))
    else {
        return Vec::new();
    };
    done.into_iter()
        .filter(|&i| compare_tests(&cands[i], &cands[best]) == Ordering::Equal)
        .collect()
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
fn compare(a: &Candidate, b: &Candidate, p: &Policy<'_>) -> Ordering {
    status_rank(a.status)
        .cmp(&status_rank(b.status))
        .then_with(|| compare_tests(a, b))
        .then_with(|| p.votes_for(&b.agent).cmp(&p.votes_for(&a.agent)))
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
            .then_with(|| x.could_not_collect.cmp(&y.could_not_collect))
            .then_with(|| y.passed.unwrap_or(0).cmp(&x.passed.unwrap_or(0)))
            .then_with(|| x.failures().cmp(&y.failures())),
        _ => Ordering::Equal,
    }
}

/// Whether the test command collected nothing in every worktree it ran in: then the test
/// setup (the command, the environment it needs) is at fault, not the candidates' code.
/// Where some candidates' tests ran, what differs between the candidates is their code, so
/// one that could not collect ranks below them.
pub fn collected_nowhere(cands: &[Candidate]) -> bool {
    let mut tested = cands
        .iter()
        .filter(|c| c.status == Status::Done)
        .filter_map(|c| c.tests.as_ref())
        .peekable();
    tested.peek().is_some() && tested.all(|t| t.could_not_collect)
}

/// Each part of the evidence as a number in 0..=1, weighted and summed.
fn weighted(c: &Candidate, w: &Weights, p: &Policy<'_>, max_size: usize) -> f64 {
    let tests = match &c.tests {
        Some(t) => match t.passed {
            Some(passed) if passed + t.failures() > 0 && t.exit_code.is_some() => {
                passed as f64 / (passed + t.failures()) as f64
            }
            _ => f64::from(u8::from(t.ok())),
        },
        None => 0.0,
    };
    let votes = if p.votes.is_empty() {
        0.0
    } else {
        p.votes_for(&c.agent) as f64 / p.votes.len() as f64
    };
    let size = if max_size == 0 {
        1.0
    } else {
        1.0 - size(c) as f64 / max_size as f64
    };
    w.tests * tests + w.votes * votes + w.agreement * c.agreement + w.size * size
}

/// Ranks candidates (in configuration order) and explains the result.
pub fn rank(cands: &[Candidate], p: &Policy<'_>) -> Ranking {
    let tests_configured = p.tests_configured;
    let mut order: Vec<usize> = (0..cands.len()).collect();
    // A stable sort keeps configuration order for full ties.
    match &p.weights {
        None => order.sort_by(|&a, &b| compare(&cands[a], &cands[b], p)),
        Some(w) => {
            let max_size = cands.iter().map(size).max().unwrap_or(0);
            let points: Vec<f64> = cands.iter().map(|c| weighted(c, w, p, max_size)).collect();
            order.sort_by(|&a, &b| {
                status_rank(cands[a].status)
                    .cmp(&status_rank(cands[b].status))
                    .then_with(|| points[b].total_cmp(&points[a]))
                    .then_with(|| compare(&cands[a], &cands[b], p))
            });
        }
    }
    let winner = order
        .first()
        .copied()
        .filter(|&i| qualifies(&cands[i], tests_configured));
    let mut reason = match (winner, &p.weights) {
        (Some(w), Some(weights)) => {
            let max_size = cands.iter().map(size).max().unwrap_or(0);
            let runner_up = order.get(1).map(|&i| &cands[i]);
            format!(
                "{} won: it has the most points under [score.weights] ({:.3}{})",
                cands[w].agent,
                weighted(&cands[w], weights, p, max_size),
                runner_up.map_or_else(String::new, |r| format!(
                    " vs {:.3} for {}",
                    weighted(r, weights, p, max_size),
                    r.agent
                ))
            )
        }
        (Some(w), None) => explain_win(cands, &order, w, p),
        (None, _) => explain_no_winner(cands, tests_configured),
    };
    if let Some(w) = winner {
        reason.push_str(&cite_votes(&cands[w].agent, p));
    }
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

/// `; votes: 2 of 3 for it (judge-a: "..."; judge-b: "...")`, or nothing without votes.
fn cite_votes(winner: &str, p: &Policy<'_>) -> String {
    if p.votes.is_empty() {
        return String::new();
    }
    let for_it: Vec<String> = p
        .votes
        .iter()
        .filter(|v| v.candidate == winner)
        .map(|v| format!("{}: \"{}\"", v.judge, one_line(&v.reason)))
        .collect();
    if for_it.is_empty() {
        return format!("; votes: none of {} for it", p.votes.len());
    }
    format!(
        "; votes: {} of {} for it ({})",
        for_it.len(),
        p.votes.len(),
        for_it.join("; ")
    )
}

fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 160 {
        format!("{}...", line.chars().take(157).collect::<String>())
    } else {
        line
    }
}

fn explain_win(cands: &[Candidate], order: &[usize], w: usize, p: &Policy<'_>) -> String {
    let tests_configured = p.tests_configured;
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
    } else if p.votes_for(&win.agent) != p.votes_for(&runner_up.agent) {
        format!(
            "tests tie with {} ({}), and it has more votes ({} vs {})",
            runner_up.agent,
            tests_words(win),
            p.votes_for(&win.agent),
            p.votes_for(&runner_up.agent)
        )
    } else if win.agreement != runner_up.agreement {
        let votes = if p.votes.is_empty() {
            String::new()
        } else {
            format!(", votes tie ({} each)", p.votes_for(&win.agent))
        };
        format!(
            "tests tie with {} ({}){votes}, and it agrees more with the other candidates ({:.2} vs {:.2})",
            runner_up.agent,
            tests_words(win),
            win.agreement,
            runner_up.agreement
        )
    } else if size(win) != size(runner_up) {
        format!(
            "it ties with {} on tests{} and agreement, and is the smaller change (+{}/-{} vs +{}/-{})",
            runner_up.agent,
            if p.votes.is_empty() { "" } else { ", votes" },
            win.insertions,
            win.deletions,
            runner_up.insertions,
            runner_up.deletions
        )
    } else {
        format!(
            "it ties with {} on tests{}, agreement and size, and comes first in configuration order",
            runner_up.agent,
            if p.votes.is_empty() { "" } else { ", votes" }
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
    if tests_configured && collected_nowhere(cands) {
        return format!(
            "no candidate qualified: the test command could not collect any test in any candidate's worktree, so the test setup is at fault, not the candidates' code (check [score] test and the test logs): {}",
            cands.iter().map(fate).collect::<Vec<_>>().join("; ")
        );
    }
    format!(
        "no candidate qualified (a winner must {need}): {}",
        cands.iter().map(fate).collect::<Vec<_>>().join("; ")
    )
}

#[cfg(test)]
mod tests_rank {
    use super::*;
    use crate::model::TestResult;

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
                ..Default::default()
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
        let r = rank(
            &cands,
            &Policy {
                tests_configured: true,
                ..Default::default()
            },
        );
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
        assert_eq!(
            rank(
                &cands,
                &Policy {
                    tests_configured: true,
                    ..Default::default()
                }
            )
            .winner,
            Some(1)
        );
        let cands = vec![
            cand("a", Status::Done, None, 0.5, 10),
            cand("b", Status::Done, None, 0.5, 3),
        ];
        let r = rank(&cands, &Policy::default());
        assert_eq!(r.winner, Some(1));
        assert!(r.reason.contains("smaller change"), "{}", r.reason);
        let cands = vec![
            cand("a", Status::Done, None, 0.5, 3),
            cand("b", Status::Done, None, 0.5, 3),
        ];
        let r = rank(&cands, &Policy::default());
        assert_eq!(r.winner, Some(0));
        assert!(r.reason.contains("configuration order"), "{}", r.reason);
    }

    fn vote(judge: &str, candidate: &str) -> Vote {
        Vote {
            judge: judge.into(),
            by: Default::default(),
            candidate: candidate.into(),
            reason: format!("{judge} likes {candidate}"),
            turn: 1,
            round: 1,
        }
    }

    #[test]
    fn votes_decide_after_tests() {
        let cands = vec![
            cand("a", Status::Done, Some((2, 0, 0)), 0.9, 1),
            cand("b", Status::Done, Some((2, 0, 0)), 0.1, 9),
            cand("c", Status::Done, Some((1, 1, 1)), 0.9, 1),
        ];
        let votes = [vote("j1", "b"), vote("j2", "b"), vote("j3", "c")];
        let refs: Vec<&Vote> = votes.iter().collect();
        let p = Policy {
            tests_configured: true,
            weights: None,
            votes: &refs,
        };
        let r = rank(&cands, &p);
        assert_eq!(r.order, vec![1, 0, 2]);
        assert!(r.reason.contains("more votes (2 vs 0)"), "{}", r.reason);
        assert!(
            r.reason
                .contains("votes: 2 of 3 for it (j1: \"j1 likes b\"; j2:"),
            "{}",
            r.reason
        );
        // Tests still come first: c's votes do not lift it over passing suites.
        assert_eq!(contenders(&cands, false), vec![0, 1]);
        assert_eq!(contenders(&cands, true), vec![0, 1, 2]);
    }

    #[test]
    fn a_vote_tie_falls_to_agreement_then_order() {
        let cands = vec![
            cand("a", Status::Done, None, 0.5, 3),
            cand("b", Status::Done, None, 0.5, 3),
        ];
        let votes = [vote("j1", "b"), vote("j2", "a")];
        let refs: Vec<&Vote> = votes.iter().collect();
        let p = Policy {
            votes: &refs,
            ..Default::default()
        };
        let r = rank(&cands, &p);
        assert_eq!(r.winner, Some(0));
        assert!(
            r.reason
                .contains("ties with b on tests, votes, agreement and size, and comes first in configuration order"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn weights_can_put_votes_over_tests() {
        let cands = vec![
            cand("a", Status::Done, Some((3, 1, 0)), 0.0, 1),
            cand("b", Status::Done, Some((1, 3, 0)), 0.0, 1),
        ];
        let votes = [vote("j1", "b"), vote("j2", "b")];
        let refs: Vec<&Vote> = votes.iter().collect();
        let weights = Weights {
            tests: 1.0,
            votes: 2.0,
            agreement: 0.0,
            size: 0.0,
        };
        let p = Policy {
            tests_configured: false,
            weights: Some(weights),
            votes: &refs,
        };
        let r = rank(&cands, &p);
        assert_eq!(r.winner, Some(1), "{}", r.reason);
        assert!(r.reason.contains("most points"), "{}", r.reason);
    }

    /// A candidate whose runner met `errors` errors; `could_not_collect` as given.
    fn with_errors(mut c: Candidate, errors: u64, could_not_collect: bool) -> Candidate {
        let t = c.tests.as_mut().expect("a test result");
        t.errors = Some(errors);
        t.could_not_collect = could_not_collect;
        c
    }

    #[test]
    fn errors_count_against_a_candidate_like_failures() {
        let cands = vec![
            with_errors(
                cand("erring", Status::Done, Some((3, 0, 1)), 0.9, 1),
                2,
                false,
            ),
            cand("failing", Status::Done, Some((3, 1, 1)), 0.1, 9),
        ];
        let r = rank(&cands, &Policy::default());
        assert_eq!(r.order, vec![1, 0], "{}", r.reason);
        assert_eq!(
            fate(&cands[0]),
            "erring: 3 passed, 0 failed, 2 errors",
            "errors are shown apart from failures"
        );
        let weights = Weights {
            tests: 1.0,
            votes: 0.0,
            agreement: 0.0,
            size: 0.0,
        };
        let max = 9;
        let p = Policy::default();
        assert!(weighted(&cands[0], &weights, &p, max) < weighted(&cands[1], &weights, &p, max));
    }

    #[test]
    fn a_candidate_whose_tests_could_not_collect_ranks_below_tests_that_ran() {
        let cands = vec![
            with_errors(
                cand("broken", Status::Done, Some((0, 0, 2)), 0.9, 1),
                1,
                true,
            ),
            cand("failing", Status::Done, Some((0, 3, 1)), 0.1, 9),
            cand("good", Status::Done, Some((3, 0, 0)), 0.1, 9),
        ];
        let p = Policy {
            tests_configured: true,
            ..Default::default()
        };
        let r = rank(&cands, &p);
        assert_eq!(r.order, vec![2, 1, 0], "{}", r.reason);
        assert_eq!(r.winner, Some(2));
        assert!(
            r.reason
                .contains("broken: tests could not be collected (1 error)"),
            "{}",
            r.reason
        );
        assert!(!collected_nowhere(&cands));
    }

    #[test]
    fn tests_collected_nowhere_blame_the_setup() {
        let cands = vec![
            with_errors(cand("a", Status::Done, Some((0, 0, 2)), 0.9, 1), 13, true),
            with_errors(cand("b", Status::Done, Some((0, 0, 2)), 0.9, 1), 13, true),
            cand("idle", Status::NoChange, None, 0.0, 0),
        ];
        assert!(collected_nowhere(&cands));
        let r = rank(
            &cands,
            &Policy {
                tests_configured: true,
                ..Default::default()
            },
        );
        assert_eq!(r.winner, None);
        assert!(
            r.reason
                .contains("the test setup is at fault, not the candidates' code")
                && r.reason
                    .contains("a: tests could not be collected (13 errors)"),
            "{}",
            r.reason
        );
        assert!(!collected_nowhere(&cands[2..]), "no tests ran at all");
    }

    #[test]
    fn nobody_qualifies_when_all_tests_fail() {
        let cands = vec![cand("a", Status::Done, Some((0, 2, 1)), 0.0, 1)];
        let r = rank(
            &cands,
            &Policy {
                tests_configured: true,
                ..Default::default()
            },
        );
        assert_eq!(r.winner, None);
        assert!(
            r.reason.starts_with("no candidate qualified"),
            "{}",
            r.reason
        );
    }
}
