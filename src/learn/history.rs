//! Delayed rewards from history: each merged winner still pending is looked for in the
//! current branch's history. A later commit that reverts it (its message says `This
//! reverts commit <it>`, or its patch is the inverse of the winner's) turns the win into a
//! loss; one that survived `confirm_after` later commits (default 20) is confirmed. Only
//! what is pending is looked at, and at most `confirm_after` commits each: cheap enough to
//! look before every pick and after every run.

use std::collections::BTreeMap;

use super::counts::Fate;
use super::store::{self, LearnError};
use crate::git::cmd::Git;
use crate::git::{ObjectId, Repo};

/// Later commits a merged winner must survive to be confirmed.
pub const CONFIRM_AFTER: u64 = 20;

/// What an update found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    /// Winners confirmed, and reverted: (agent, run).
    pub confirmed: Vec<(String, String)>,
    pub reverted: Vec<(String, String)>,
    /// Still pending (not reached, or too few commits after them yet).
    pub pending: usize,
}

/// Looks at the pending merged winners of this machine against HEAD's history.
pub fn update(repo: &Repo, confirm_after: u64) -> Result<Found, LearnError> {
    let (learning, _) = store::load(repo)?;
    let id = store::machine_id(repo)?;
    let Some(mine) = learning.machines.get(&id) else {
        return Ok(Found::default());
    };
    let pending: Vec<_> = mine
        .merged
        .iter()
        .filter(|m| m.fate == Fate::Pending)
        .cloned()
        .collect();
    if pending.is_empty() {
        return Ok(Found::default());
    }
    // What history says of each: (fate, commits after it).
    let mut verdicts: BTreeMap<String, (Fate, u64)> = BTreeMap::new();
    for m in &pending {
        verdicts.insert(
            m.commit.clone(),
            judge(repo, &m.commit, &m.candidate, confirm_after),
        );
    }
    let mut found = Found::default();
    store::update(
        repo,
        "massgen: merged winners looked for in history",
        |machine| {
            found = Found::default();
            for m in machine
                .merged
                .iter_mut()
                .filter(|m| m.fate == Fate::Pending)
            {
                let Some(&(fate, after)) = verdicts.get(&m.commit) else {
                    continue;
                };
                m.after = m.after.max(after);
                let counts = machine
                    .agents
                    .entry(m.agent.clone())
                    .or_default()
                    .entry(m.kind.clone())
                    .or_default();
                match fate {
                    Fate::Reverted => {
                        counts.reverted += 1;
                        found.reverted.push((m.agent.clone(), m.run.clone()));
                    }
                    Fate::Confirmed => {
                        counts.confirmed += 1;
                        found.confirmed.push((m.agent.clone(), m.run.clone()));
                    }
                    Fate::Pending => found.pending += 1,
                }
                m.fate = fate;
            }
            Vec::new()
        },
    )?;
    Ok(found)
}

/// The fate of the winner merged as `commit` (its candidate `candidate`) in HEAD's
/// history, and how many commits came after it (looked at up to `confirm_after`).
fn judge(repo: &Repo, commit: &str, candidate: &str, confirm_after: u64) -> (Fate, u64) {
    let git = |args: &[&str]| -> Option<String> {
        let out = Git::new(&repo.workdir).args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // Not in HEAD's history (another branch, or rewound): not decided here.
    let in_head = ObjectId::from_hex(commit.as_bytes())
        .ok()
        .zip(repo.resolve_commit("HEAD").ok())
        .is_some_and(|(c, head)| repo.is_ancestor(c, head).unwrap_or(false));
    if !in_head {
        return (Fate::Pending, 0);
    }
    // The later commits with their messages, in one `git log`: id NUL message NUL ….
    let log = git(&[
        "log",
        "--reverse",
        "--first-parent",
        "-z",
        "--format=%H%x00%B",
        &format!("{commit}..HEAD"),
    ])
    .unwrap_or_default();
    let fields: Vec<&str> = log.split('\0').collect();
    let later: Vec<(&str, &str)> = fields
        .chunks_exact(2)
        .map(|f| (f[0].trim(), f[1]))
        .take(confirm_after as usize)
        .collect();
    let inverse = patch_id(repo, &["diff", commit, &format!("{commit}^1")]);
    for (i, (c, message)) in later.iter().enumerate() {
        let names_it = message.lines().any(|l| {
            l.trim_start()
                .strip_prefix("This reverts commit ")
                .is_some_and(|rest| {
                    let id = rest.trim_end_matches('.').trim();
                    !id.is_empty() && (commit.starts_with(id) || candidate.starts_with(id))
                })
        });
        let undoes =
            inverse.is_some() && patch_id(repo, &["diff", &format!("{c}^1"), c]) == inverse;
        if names_it || undoes {
            return (Fate::Reverted, i as u64 + 1);
        }
    }
    let after = later.len() as u64;
    if after >= confirm_after {
        (Fate::Confirmed, after)
    } else {
        (Fate::Pending, after)
    }
}

/// `git patch-id --stable` of the diff `diff_args` prints; `None` for an empty diff.
fn patch_id(repo: &Repo, diff_args: &[&str]) -> Option<String> {
    let diff = Git::new(&repo.workdir).args(diff_args).output().ok()?;
    if diff.stdout.is_empty() {
        return None;
    }
    // The header `git patch-id` needs before a bare diff.
    let mut input = b"commit 0000000000000000000000000000000000000000\n".to_vec();
    input.extend_from_slice(&diff.stdout);
    let out = Git::new(&repo.workdir)
        .args(["patch-id", "--stable"])
        .output_with_input(&input)
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned)
}
