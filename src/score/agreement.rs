//! Agreement between candidates: how similar each candidate's changed lines are to the other
//! candidates' (mean pairwise similarity). Independent agents that arrive at the same change
//! are more likely right.

use std::time::{Duration, Instant};

use similar::{Algorithm, TextDiff};

/// For each candidate (`None`: no change to compare), its mean similarity in `0.0..=1.0` to
/// every other candidate that has a change. Candidates without a change, or without a peer,
/// get 0.
pub fn agreement(changes: &[Option<&str>]) -> Vec<f64> {
    let n = changes.len();
    let mut sim = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in (i + 1)..n {
            if let (Some(a), Some(b)) = (changes[i], changes[j]) {
                let s = similarity(a, b);
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

/// Line-based similarity ratio of two change lists, bounded in time for huge changes.
pub fn similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .deadline(Instant::now() + Duration::from_millis(500))
        .diff_lines(a, b);
    f64::from(diff.ratio())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
