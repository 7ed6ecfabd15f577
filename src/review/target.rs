//! What a review looks at: a base and a reviewed commit, resolved from a range, the staged
//! change, a merge base, or what a hook is about to commit or push; and the reviewed tree
//! checked out in a detached worktree of its own.

use std::path::{Path, PathBuf};

use crate::git::cmd::Git;
use crate::git::{GitError, ObjectId, Repo};

/// What the user asked to review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `A..B` or `A...B` (the change B brings since it forked from A), `A..` / `..B` (HEAD
    /// for the missing side), or one revision (that commit's own change).
    Range(String),
    /// The index against HEAD; `index` is the index file git's hook environment names
    /// (`git commit -a` and `git commit PATH` commit a temporary index).
    Staged { index: Option<PathBuf> },
    /// The merge base of REV and HEAD, to HEAD.
    Base(String),
}

/// A resolved review target.
#[derive(Debug, Clone)]
pub struct Target {
    /// As the user would name it.
    pub label: String,
    /// The tree reviewed against (a commit's tree, or the empty tree).
    pub base: ObjectId,
    /// The commit reviewed against, when there is one.
    pub base_commit: Option<ObjectId>,
    /// The reviewed commit (for staged changes, a commit of the index that no ref holds).
    pub head: ObjectId,
}

/// Errors resolving a target: what was wrong, with a hint.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{message}")]
    Usage { message: String, hint: String },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("cannot read stdin: {0}")]
    Stdin(String),
}

fn usage(message: impl Into<String>, hint: impl Into<String>) -> TargetError {
    TargetError::Usage {
        message: message.into(),
        hint: hint.into(),
    }
}

/// The id of the empty tree (written if missing, as git does).
fn empty_tree(repo: &Repo) -> Result<ObjectId, GitError> {
    let out = Git::new(&repo.workdir)
        .args(["hash-object", "-w", "-t", "tree", "/dev/null"])
        .run()?;
    crate::git::cmd::printed_id(&out.stdout)
}

fn commit(repo: &Repo, rev: &str) -> Result<ObjectId, TargetError> {
    repo.resolve_commit(rev).map_err(|e| match e {
        GitError::BadRevision { .. } => usage(
            format!("`{rev}` is not a commit in this repository"),
            "name a branch, tag or commit id (`git log --oneline` lists them)",
        ),
        other => other.into(),
    })
}

/// The first parent of a commit, if it has one.
fn parent(repo: &Repo, id: ObjectId) -> Result<Option<ObjectId>, GitError> {
    let local = repo.local();
    let commit = local
        .find_commit(id)
        .map_err(|e| GitError::Other(format!("cannot read commit {id}: {e}")))?;
    Ok(commit.parent_ids().next().map(|p| p.detach()))
}

/// Resolves what to review.
pub fn resolve(repo: &Repo, spec: &Spec) -> Result<Target, TargetError> {
    match spec {
        Spec::Range(range) => resolve_range(repo, range),
        Spec::Base(rev) => {
            let (head, _) = repo.head()?;
            let other = commit(repo, rev)?;
            let base = repo.merge_base(other, head)?.ok_or_else(|| {
                usage(
                    format!("`{rev}` and HEAD have no common history"),
                    "give a range instead: git massgen review A..B",
                )
            })?;
            Ok(Target {
                label: format!("{rev}...HEAD"),
                base: repo.tree_of(base)?,
                base_commit: Some(base),
                head,
            })
        }
        Spec::Staged { index } => staged(repo, index.as_deref()),
    }
}

fn resolve_range(repo: &Repo, range: &str) -> Result<Target, TargetError> {
    let range = range.trim();
    if range.is_empty() || range.starts_with('-') {
        return Err(usage(
            format!("`{range}` is not a range"),
            "give A..B, A...B or one commit",
        ));
    }
    let split = range
        .split_once("...")
        .or_else(|| range.split_once(".."))
        .map(|(a, b)| {
            let side = |s: &str| if s.is_empty() { "HEAD" } else { s }.to_owned();
            (side(a), side(b))
        });
    match split {
        Some((a, b)) => {
            let (a_id, b_id) = (commit(repo, &a)?, commit(repo, &b)?);
            // The change B brings, as a pull request shows it: from where it forked from A.
            let base = repo.merge_base(a_id, b_id)?.unwrap_or(a_id);
            Ok(Target {
                label: range.to_owned(),
                base: repo.tree_of(base)?,
                base_commit: Some(base),
                head: b_id,
            })
        }
        None => {
            let head = commit(repo, range)?;
            let base_commit = parent(repo, head)?;
            let base = match base_commit {
                Some(p) => repo.tree_of(p)?,
                None => empty_tree(repo)?,
            };
            Ok(Target {
                label: range.to_owned(),
                base,
                base_commit,
                head,
            })
        }
    }
}

/// The index as a commit on top of HEAD (objects only: no ref, no reflog, nothing in the
/// work tree changes).
fn staged(repo: &Repo, index: Option<&Path>) -> Result<Target, TargetError> {
    let mut write = Git::new(&repo.workdir);
    write.arg("write-tree");
    if let Some(index) = index {
        write.env("GIT_INDEX_FILE", index);
    }
    let out = write.output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(if stderr.contains("unmerged") {
            usage(
                "the index has unresolved merge conflicts",
                "resolve them and `git add` the files, then review again",
            )
        } else {
            GitError::Other(format!("git write-tree failed: {}", stderr.trim())).into()
        });
    }
    let tree = crate::git::cmd::printed_id(&out.stdout)?;
    let head = match repo.head() {
        Ok((id, _)) => Some(id),
        Err(GitError::UnbornHead) => None,
        Err(e) => return Err(e.into()),
    };
    let base = match head {
        Some(h) => repo.tree_of(h)?,
        None => empty_tree(repo)?,
    };
    let mut make = Git::new(&repo.workdir);
    make.args([
        "commit-tree",
        "--no-gpg-sign",
        "-m",
        "git-massgen review: staged changes",
    ]);
    if let Some(h) = head {
        make.arg("-p").arg(h.to_string());
    }
    make.arg(tree.to_string());
    for (k, v) in [
        ("GIT_AUTHOR_NAME", "git-massgen"),
        ("GIT_AUTHOR_EMAIL", "git-massgen@localhost"),
        ("GIT_COMMITTER_NAME", "git-massgen"),
        ("GIT_COMMITTER_EMAIL", "git-massgen@localhost"),
    ] {
        make.env(k, v);
    }
    let commit = crate::git::cmd::printed_id(&make.run()?.stdout)?;
    Ok(Target {
        label: "staged changes".into(),
        base,
        base_commit: head,
        head: commit,
    })
}

/// One pushed ref, from git's pre-push hook input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub local_ref: String,
    pub local: String,
    pub remote_ref: String,
    pub remote: String,
}

/// Reads git's pre-push lines: `<local ref> <local sha> <remote ref> <remote sha>`.
pub fn parse_pre_push(input: &str) -> Result<Vec<Pushed>, String> {
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [lr, l, rr, r] => Ok(Pushed {
                    local_ref: (*lr).to_owned(),
                    local: (*l).to_owned(),
                    remote_ref: (*rr).to_owned(),
                    remote: (*r).to_owned(),
                }),
                _ => Err(format!("not a pre-push line: {l:?}")),
            }
        })
        .collect()
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// The review of one pushed ref: its commits the remote does not have. `None` for a
/// deletion or when nothing new is pushed.
pub fn pushed_target(
    repo: &Repo,
    remote_name: &str,
    p: &Pushed,
) -> Result<Option<Target>, TargetError> {
    if is_zero(&p.local) {
        return Ok(None);
    }
    let local = commit(repo, &p.local)?;
    let label = format!(
        "{} -> {}",
        p.local_ref.trim_start_matches("refs/heads/"),
        p.remote_ref.trim_start_matches("refs/heads/")
    );
    // An update of a ref whose old value we have: what is new since the fork point.
    if !is_zero(&p.remote)
        && let Ok(remote) = repo.resolve_commit(&p.remote)
    {
        let base = repo.merge_base(remote, local)?.unwrap_or(remote);
        if base == local {
            return Ok(None);
        }
        return Ok(Some(Target {
            label,
            base: repo.tree_of(base)?,
            base_commit: Some(base),
            head: local,
        }));
    }
    // A new ref (or an old value we do not have): from the closest point the remote already
    // has, that is the merge base with its tracking refs nearest to what is pushed. `$1` of
    // a pre-push hook may be a URL rather than a remote's name: then every tracking ref
    // counts.
    let Some(base_commit) = nearest_remote_base(repo, remote_name, local)? else {
        // The remote has nothing we know of: everything up to `local` is new to it.
        return Ok(Some(Target {
            label,
            base: empty_tree(repo)?,
            base_commit: None,
            head: local,
        }));
    };
    if base_commit == local {
        return Ok(None);
    }
    Ok(Some(Target {
        label,
        base: repo.tree_of(base_commit)?,
        base_commit: Some(base_commit),
        head: local,
    }))
}

/// The merge base of `local` with the remote's tracking refs (all remotes' when it has
/// none) that leaves the fewest commits to review.
fn nearest_remote_base(
    repo: &Repo,
    remote_name: &str,
    local: ObjectId,
) -> Result<Option<ObjectId>, GitError> {
    let tracking = |pattern: &str| -> Result<Vec<ObjectId>, GitError> {
        let out = Git::new(&repo.workdir)
            .args(["for-each-ref", "--format=%(objectname)"])
            .arg(pattern)
            .run()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| ObjectId::from_hex(l.trim().as_bytes()).ok())
            .collect())
    };
    let mut refs = tracking(&format!("refs/remotes/{remote_name}/"))?;
    if refs.is_empty() {
        refs = tracking("refs/remotes/")?;
    }
    let mut bases: Vec<ObjectId> = Vec::new();
    for r in refs {
        if let Some(b) = repo.merge_base(local, r)?
            && !bases.contains(&b)
        {
            bases.push(b);
        }
    }
    let mut best: Option<(u64, ObjectId)> = None;
    for b in bases {
        let out = Git::new(&repo.workdir)
            .args(["rev-list", "--count"])
            .arg(format!("{b}..{local}"))
            .run()?;
        let n: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(u64::MAX);
        if best.is_none_or(|(m, _)| n < m) {
            best = Some((n, b));
        }
    }
    Ok(best.map(|(_, b)| b))
}

/// The change as a unified diff, and the changed paths.
pub fn diff(repo: &Repo, target: &Target) -> Result<(String, Vec<String>), GitError> {
    let (base, head) = (target.base.to_string(), target.head.to_string());
    let common = [
        "-c",
        "core.quotepath=off",
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        "--find-renames",
    ];
    let out = Git::new(&repo.workdir)
        .args(common)
        .arg(&base)
        .arg(&head)
        .run()?;
    let patch = String::from_utf8_lossy(&out.stdout).into_owned();
    let out = Git::new(&repo.workdir)
        .args(common)
        .args(["--name-only", "-z"])
        .arg(&base)
        .arg(&head)
        .run()?;
    let files = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    Ok((patch, files))
}

/// Which hook is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookKind {
    /// git's pre-commit hook: the staged change (or the index `git commit` is writing).
    PreCommit,
    /// git's pre-push hook: the pushed commits, read from stdin.
    PrePush,
    /// The pre-commit framework: PRE_COMMIT_FROM_REF..PRE_COMMIT_TO_REF when it sets them
    /// (pre-push, or `--from-ref/--to-ref`), else the staged change.
    PreCommitFramework,
}

/// What to review, as the command line says it: one of a range, the staged change, the
/// change since a base, or what the calling hook is about to commit or push.
#[derive(Debug, Clone, Default)]
pub struct What {
    pub range: Option<String>,
    pub staged: bool,
    pub base: Option<String>,
    pub hook: Option<HookKind>,
    /// The remote a pre-push hook pushes to.
    pub remote: Option<String>,
}

/// What to review, from the arguments (or the calling hook).
/// What to review, from the arguments (or the calling hook).
pub fn targets(repo: &Repo, what: &What) -> Result<Vec<Target>, TargetError> {
    let one = |spec: Spec| -> Result<Vec<Target>, TargetError> { Ok(vec![resolve(repo, &spec)?]) };
    // git gives hooks the index it is committing; `git commit -a` and `git commit PATH`
    // commit a temporary one.
    let hook_index = || {
        std::env::var_os("GIT_INDEX_FILE")
            .filter(|v| !v.is_empty())
            .and_then(|v| std::path::absolute(v).ok())
    };
    if let Some(range) = &what.range {
        return one(Spec::Range(range.clone()));
    }
    if what.staged {
        return one(Spec::Staged { index: None });
    }
    if let Some(rev) = &what.base {
        return one(Spec::Base(rev.clone()));
    }
    match what.hook.expect("clap requires one of the targets") {
        HookKind::PreCommit => one(Spec::Staged {
            index: hook_index(),
        }),
        HookKind::PreCommitFramework => {
            let var = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            };
            let to = var(&["PRE_COMMIT_TO_REF", "PRE_COMMIT_ORIGIN"]);
            match (var(&["PRE_COMMIT_FROM_REF", "PRE_COMMIT_SOURCE"]), &to) {
                (Some(from), Some(to)) => one(Spec::Range(format!("{from}..{to}"))),
                // A push the framework gave no range for (a new branch reaching a root
                // commit): what the remote's tracking refs do not hold.
                _ if var(&["PRE_COMMIT_HOOK_STAGE"]).is_some_and(|s| s == "pre-push") => {
                    let local = repo.resolve_commit(to.as_deref().unwrap_or("HEAD"))?;
                    let remote =
                        var(&["PRE_COMMIT_REMOTE_NAME"]).unwrap_or_else(|| "origin".into());
                    let pushed = Pushed {
                        local_ref: "HEAD".into(),
                        local: local.to_string(),
                        remote_ref: var(&["PRE_COMMIT_REMOTE_BRANCH"])
                            .unwrap_or_else(|| "HEAD".into()),
                        remote: "0".repeat(40),
                    };
                    Ok(pushed_target(repo, &remote, &pushed)?.into_iter().collect())
                }
                _ => one(Spec::Staged {
                    index: hook_index(),
                }),
            }
        }
        HookKind::PrePush => {
            let remote = what.remote.clone().ok_or_else(|| {
                usage(
                    "--hook pre-push needs --remote NAME",
                    "the pre-push hook passes the remote's name as its first argument",
                )
            })?;
            let mut input = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
                .map_err(|e| TargetError::Stdin(e.to_string()))?;
            let pushed = parse_pre_push(&input)
                .map_err(|e| usage(e, "git gives the pre-push hook one line per pushed ref"))?;
            let mut out = Vec::new();
            for p in &pushed {
                if let Some(t) = pushed_target(repo, &remote, p)? {
                    out.push(t);
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_push_lines_are_read() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let got = parse_pre_push(&format!("refs/heads/x {a} refs/heads/x {z}\n\n")).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].remote, z);
        assert!(is_zero(&got[0].remote));
        assert!(parse_pre_push("refs/heads/x abc").is_err());
    }
}
