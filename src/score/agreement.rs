//! Agreement between candidates: how similar each candidate's changed lines are to the other
//! candidates' (mean pairwise similarity). Independent agents that arrive at the same change
//! are more likely right.
//!
//! The measure: each candidate's change is the multiset of its changed lines, a line being
//! its file, its side (`+` added, `-` removed) and its text without leading and trailing
//! white space; blank lines are left out. Two candidates' similarity is the Dice
//! coefficient of their multisets, `2 × |A ∩ B| / (|A| + |B|)`: the share of changed lines
//! they have in common. Order does not count, so the same function added with its blank
//! lines before it in one diff and after it in another, or placed elsewhere in the file,
//! is the same change; a line that only one of them changes, or changes in another file,
//! lowers the score.

use std::collections::HashMap;

/// For each candidate (`None`: no change to compare), its mean similarity in `0.0..=1.0` to
/// every other candidate that has a change. Candidates without a change, or without a peer,
/// get 0.
pub fn agreement(changes: &[Option<&str>]) -> Vec<f64> {
    let lines: Vec<Option<Lines<'_>>> = changes.iter().map(|c| c.map(changed_lines)).collect();
    let n = changes.len();
    let mut sim = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in (i + 1)..n {
            if let (Some(a), Some(b)) = (&lines[i], &lines[j]) {
                let s = dice(a, b);
                sim[i][j] = s;
                sim[j][i] = s;
            }
        }
    }
    (0..n)
        .map(|i| {
            if changes[i].is_none() {
                return 0.0;
            }
            let peers: Vec<usize> = (0..n).filter(|&j| j != i && changes[j].is_some()).collect();
            if peers.is_empty() {
                return 0.0;
            }
            let mean = peers.iter().map(|&j| sim[i][j]).sum::<f64>() / peers.len() as f64;
            (mean * 1000.0).round() / 1000.0
        })
        .collect()
}

/// The similarity of two change lists (`path\t+line` per changed line, as
/// `git::diff::Rendered::changed_lines` holds them), in `0.0..=1.0`.
pub fn similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    dice(&changed_lines(a), &changed_lines(b))
}

/// A change as a multiset: how many times each changed line (file, side, trimmed text)
/// occurs.
struct Lines<'a> {
    counts: HashMap<(&'a str, &'a str, &'a str), u32>,
    total: u32,
}

fn changed_lines(change: &str) -> Lines<'_> {
    let mut counts = HashMap::new();
    let mut total = 0;
    for line in change.lines() {
        // `path\t+text`, `path\t-text`, or `path\tbinary <size>`.
        let (path, rest) = line.split_once('\t').unwrap_or(("", line));
        let (side, text) = match rest.as_bytes().first() {
            Some(b'+' | b'-') => rest.split_at(1),
            _ => ("", rest),
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        *counts.entry((path, side, text)).or_insert(0) += 1;
        total += 1;
    }
    Lines { counts, total }
}

/// The Dice coefficient of two multisets; two changes of nothing but blank lines agree.
fn dice(a: &Lines<'_>, b: &Lines<'_>) -> f64 {
    if a.total + b.total == 0 {
        return 1.0;
    }
    let common: u32 = a
        .counts
        .iter()
        .map(|(key, &n)| n.min(b.counts.get(key).copied().unwrap_or(0)))
        .sum();
    2.0 * f64::from(common) / f64::from(a.total + b.total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lines` of `path` as `git::diff` renders changed lines.
    fn change(path: &str, lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{path}\t{l}\n")).collect()
    }

    /// The same function, as two candidates added it to `setutils.py`: one diff puts its two
    /// blank lines after it, the other before it (where the function's neighbours are).
    const FUNCTION: [&str; 7] = [
        "+def complement(wrapped):",
        "+    \"\"\"The set of everything not in wrapped.\"\"\"",
        "+    if isinstance(wrapped, _ComplementSet):",
        "+        return wrapped.complemented()",
        "+    if type(wrapped) is frozenset:",
        "+        return _ComplementSet(excluded=wrapped)",
        "+    return _ComplementSet(excluded=set(wrapped))",
    ];

    fn blanks_after() -> String {
        let mut lines = FUNCTION.to_vec();
        lines.extend(["+", "+"]);
        change("boltons/setutils.py", &lines)
    }

    fn blanks_before() -> String {
        let mut lines = vec!["+", "+"];
        lines.extend(FUNCTION);
        change("boltons/setutils.py", &lines)
    }

    /// The fix with its blank lines after it, and a harmful extra change: a check removed
    /// elsewhere in the file.
    fn harmful() -> String {
        blanks_after()
            + &change(
                "boltons/setutils.py",
                &[
                    "-        if not isinstance(other, (set, frozenset)):",
                    "-            return NotImplemented",
                ],
            )
    }

    #[test]
    fn identical_changes_agree_fully() {
        let a = "f\t+x\nf\t-y\n";
        let r = agreement(&[Some(a), Some(a), None]);
        assert_eq!(r, vec![1.0, 1.0, 0.0]);
    }

    #[test]
    fn different_changes_agree_less() {
        let r = agreement(&[Some("f\t+x\n"), Some("f\t+x\n"), Some("g\t+zzz\n")]);
        assert!(r[0] > r[2], "{r:?}");
        assert_eq!(r[2], 0.0);
    }

    #[test]
    fn blank_lines_and_order_do_not_count() {
        // Compared as ordered sequences these scored 0.78.
        assert_eq!(similarity(&blanks_after(), &blanks_before()), 1.0);
        let indented = change("boltons/setutils.py", &["+  x = 1", "+"]);
        assert_eq!(similarity(&indented, "boltons/setutils.py\t+x = 1\n"), 1.0);
        let reordered = change("f", &["+b", "-a", "+a"]);
        assert_eq!(
            similarity(&reordered, &change("f", &["-a", "+a", "+b"])),
            1.0
        );
    }

    #[test]
    fn the_side_and_the_file_of_a_line_count() {
        assert_eq!(similarity("f\t+x\n", "f\t-x\n"), 0.0);
        assert_eq!(similarity("f\t+x\n", "g\t+x\n"), 0.0);
        // Dice on multisets: {x, x} and {x} share one of three.
        let s = similarity("f\t+x\nf\t+x\n", "f\t+x\n");
        assert!((s - 2.0 / 3.0).abs() < 1e-9, "{s}");
    }

    #[test]
    fn a_harmful_extra_change_lowers_agreement_whatever_the_blank_lines() {
        let (a, b, c) = (blanks_after(), blanks_before(), harmful());
        let r = agreement(&[Some(&a), Some(&b), Some(&c)]);
        // The clean fixes agree fully with each other, and share their 7 lines that are
        // not blank with the harmful one's 9 (14/16): 0.94 each against its 0.88. As ordered
        // sequences the harmful one (0.80) outranked the fix with its blank lines first
        // (0.74).
        assert_eq!(r, vec![0.938, 0.938, 0.875]);
    }
}
