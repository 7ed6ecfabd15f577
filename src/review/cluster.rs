//! Grouping findings across reviewers and keeping those a quorum agrees on.
//!
//! Two findings are the same when they are on the same path, their lines overlap (within
//! [`LINE_SLACK`] lines), and their words are alike (Jaccard similarity of their title and
//! message words of at least [`MIN_SIMILARITY`]). Grouping is greedy and deterministic:
//! reviewers in configuration order, each finding joining the most similar group that has
//! nothing from its reviewer yet. A group is kept when at least `quorum` reviewers are in
//! it; its severity is the one a quorum agrees on at least (the quorum-th highest).

use std::collections::BTreeSet;

use super::{Finding, Kept, ReviewerOutcome, Severity};

/// Lines two findings may be apart and still overlap.
pub const LINE_SLACK: u32 = 2;
/// The least word similarity of two findings that are the same.
pub const MIN_SIMILARITY: f64 = 0.2;

/// The default quorum: a majority of the reviewers.
pub fn majority(reviewers: usize) -> usize {
    reviewers / 2 + 1
}

const STOP: &[&str] = &[
    "the", "and", "for", "that", "this", "with", "are", "was", "not", "but", "can", "could",
    "should", "would", "will", "may", "might", "from", "into", "when", "which", "there", "their",
    "its", "has", "have", "been", "being", "than", "then", "also", "use", "used", "using", "line",
    "lines", "code", "here", "does", "don", "isn", "any",
];

fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 && !STOP.contains(&w.as_str()))
        .map(|w| {
            // A light stemmer: plurals and simple verb forms meet.
            let mut w = w;
            for suffix in ["ing", "ed", "es", "s"] {
                if w.len() > suffix.len() + 3 && w.ends_with(suffix) {
                    w.truncate(w.len() - suffix.len());
                    break;
                }
            }
            w
        })
        .collect()
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

/// How alike two findings' words are, 0 to 1: the better of their titles' and their whole
/// texts' similarity.
pub fn similarity(a: &Finding, b: &Finding) -> f64 {
    // Texts too short to have words ("UB", "i++") still match when they are the same.
    let plain = |t: &str| {
        t.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    if plain(&a.title) == plain(&b.title) || plain(&a.message) == plain(&b.message) {
        return 1.0;
    }
    let title = jaccard(&words(&a.title), &words(&b.title));
    let all = |f: &Finding| words(&format!("{} {}", f.title, f.message));
    title.max(jaccard(&all(a), &all(b)))
}

fn overlaps(a: &Finding, b: &Finding) -> bool {
    a.path == b.path
        && a.line <= b.last_line().saturating_add(LINE_SLACK)
        && b.line <= a.last_line().saturating_add(LINE_SLACK)
}

struct Group<'a> {
    /// (reviewer index, finding)
    members: Vec<(usize, &'a Finding)>,
}

/// Groups the successful reviewers' findings and keeps those at least `quorum` reviewers
/// report. Returns the kept findings (most severe first, then by path and line) and how
/// many groups were dropped.
pub fn cluster(outcomes: &[ReviewerOutcome], quorum: usize) -> (Vec<Kept>, usize) {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (r, outcome) in outcomes.iter().enumerate().filter(|(_, o)| o.ok) {
        for finding in &outcome.findings {
            let best = groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.members.iter().all(|(m, _)| *m != r))
                .filter_map(|(i, g)| {
                    g.members
                        .iter()
                        .filter(|(_, f)| overlaps(f, finding))
                        .map(|(_, f)| similarity(f, finding))
                        .filter(|s| *s >= MIN_SIMILARITY)
                        .max_by(f64::total_cmp)
                        .map(|s| (i, s))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
            match best {
                Some((i, _)) => groups[i].members.push((r, finding)),
                None => groups.push(Group {
                    members: vec![(r, finding)],
                }),
            }
        }
    }
    let quorum = quorum.max(1);
    let mut kept = Vec::new();
    let mut dropped = 0;
    for g in &groups {
        if g.members.len() < quorum {
            dropped += 1;
            continue;
        }
        let mut severities: Vec<Severity> = g.members.iter().map(|(_, f)| f.severity).collect();
        severities.sort_by(|a, b| b.cmp(a));
        let severity = severities[quorum - 1];
        let (_, rep) = g
            .members
            .iter()
            .find(|(_, f)| f.severity == severity)
            .copied()
            .unwrap_or(g.members[0]);
        let mut finding = rep.clone();
        finding.severity = severity;
        if finding.suggestion.is_none() {
            finding.suggestion = g.members.iter().find_map(|(_, f)| f.suggestion.clone());
        }
        let mut reviewers: Vec<(usize, String)> = g
            .members
            .iter()
            .map(|(r, _)| (*r, outcomes[*r].name.clone()))
            .collect();
        reviewers.sort();
        kept.push(Kept {
            fingerprint: super::format::fingerprint(&finding.path, &finding.title, severity),
            finding,
            reviewers: reviewers.into_iter().map(|(_, n)| n).collect(),
        });
    }
    kept.sort_by(|a, b| {
        b.finding
            .severity
            .cmp(&a.finding.severity)
            .then_with(|| a.finding.path.cmp(&b.finding.path))
            .then(a.finding.line.cmp(&b.finding.line))
    });
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, line: u32, sev: Severity, title: &str, message: &str) -> Finding {
        Finding {
            path: path.into(),
            line,
            end_line: None,
            severity: sev,
            title: title.into(),
            message: message.into(),
            suggestion: None,
        }
    }

    fn outcome(name: &str, findings: Vec<Finding>) -> ReviewerOutcome {
        ReviewerOutcome {
            name: name.into(),
            ok: true,
            findings,
            ..Default::default()
        }
    }

    #[test]
    fn agreed_findings_are_kept_and_lone_ones_dropped() {
        use Severity::*;
        let outcomes = vec![
            outcome(
                "a",
                vec![
                    f(
                        "src/db.rs",
                        10,
                        Error,
                        "SQL injection",
                        "User input is concatenated into the SQL query",
                    ),
                    f("src/db.rs", 40, Info, "Typo in comment", "recieve"),
                ],
            ),
            outcome(
                "b",
                vec![f(
                    "src/db.rs",
                    11,
                    Warning,
                    "Possible SQL injection",
                    "query built by concatenating input",
                )],
            ),
            outcome(
                "c",
                vec![
                    f(
                        "src/db.rs",
                        10,
                        Error,
                        "Injection risk in SQL query",
                        "concatenated user input",
                    ),
                    // Same line, a different problem: not the same finding.
                    f(
                        "src/db.rs",
                        10,
                        Warning,
                        "Unused variable",
                        "`conn` is never read",
                    ),
                ],
            ),
            ReviewerOutcome {
                name: "broken".into(),
                ok: false,
                ..Default::default()
            },
        ];
        let (kept, dropped) = cluster(&outcomes, majority(3));
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].reviewers, ["a", "b", "c"]);
        // error, error, warning: a quorum of 2 agrees on error.
        assert_eq!(kept[0].finding.severity, Error);
        assert_eq!(dropped, 2);
        // With quorum 3 the severity all three agree on is warning.
        let (kept, _) = cluster(&outcomes, 3);
        assert_eq!(kept[0].finding.severity, Warning);
        // Quorum 1 keeps everything.
        assert_eq!(cluster(&outcomes, 1).0.len(), 3);
    }

    #[test]
    fn other_paths_and_far_lines_do_not_merge() {
        use Severity::*;
        let outcomes = vec![
            outcome(
                "a",
                vec![f("x.rs", 1, Error, "Null dereference", "p may be null")],
            ),
            outcome(
                "b",
                vec![f("y.rs", 1, Error, "Null dereference", "p may be null")],
            ),
            outcome(
                "c",
                vec![f("x.rs", 30, Error, "Null dereference", "p may be null")],
            ),
        ];
        let (kept, dropped) = cluster(&outcomes, 2);
        assert!(kept.is_empty());
        assert_eq!(dropped, 3);
    }

    #[test]
    fn the_same_short_text_is_the_same_finding() {
        use Severity::*;
        let a = f("x.c", 4, Error, "UB", "i++ + i++");
        let b = f("x.c", 4, Error, "ub", "i++ +  i++");
        assert_eq!(similarity(&a, &b), 1.0);
        let (kept, _) = cluster(&[outcome("r1", vec![a]), outcome("r2", vec![b])], 2);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn similarity_is_symmetric_and_bounded() {
        use Severity::*;
        let a = f(
            "x",
            1,
            Error,
            "Off-by-one in loop bound",
            "the loop reads past the end",
        );
        let b = f(
            "x",
            1,
            Error,
            "Loop bound off by one",
            "reads one element past the end",
        );
        let s = similarity(&a, &b);
        assert!((similarity(&b, &a) - s).abs() < 1e-9);
        assert!((MIN_SIMILARITY..=1.0).contains(&s), "{s}");
    }
}
