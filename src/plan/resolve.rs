//! Resolving a conflict between a task's winner and the integration branch: the merge
//! checked out in a worktree of its own with git's conflict markers in the conflicted
//! files (for the resolver agent, or for the user with `plan resolve`), and the result
//! checked: no marker left, a merge of exactly those two commits.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::git::cmd::Git;
use crate::git::{GitError, ObjectId, Repo};

/// Who committed the scaffolding commit a resolver starts from.
const IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "git-massgen"),
    ("GIT_AUTHOR_EMAIL", "git-massgen@localhost"),
    ("GIT_COMMITTER_NAME", "git-massgen"),
    ("GIT_COMMITTER_EMAIL", "git-massgen@localhost"),
];

/// Checks out `ours` detached at `dir` and merges `theirs` there without committing: the
/// conflicted files hold git's markers. Returns the conflicted paths (none: the merge went
/// through after all). On an error the worktree is removed again.
pub fn check_out(
    repo: &Repo,
    ours: ObjectId,
    theirs: ObjectId,
    dir: &Path,
) -> Result<Vec<String>, GitError> {
    crate::git::worktree::create_detached(repo, ours, dir, &AtomicBool::new(false))?;
    let merged = (|| {
        // Exit 1 with conflicts: what is wanted here.
        Git::new(dir)
            .args([
                "-c",
                "merge.conflictStyle=merge",
                "merge",
                "--no-ff",
                "--no-commit",
            ])
            .args(["--no-edit", "--no-verify"])
            .arg(theirs.to_string())
            .envs(IDENTITY)
            .output()?;
        conflicted(dir)
    })();
    merged.inspect_err(|_| {
        let _ = crate::git::worktree::remove(repo, dir);
    })
}

/// The unmerged paths of the worktree at `dir`.
pub fn conflicted(dir: &Path) -> Result<Vec<String>, GitError> {
    let out = Git::new(dir)
        .args(["diff", "--name-only", "--diff-filter=U", "-z"])
        .run()?;
    let mut paths: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    paths.dedup();
    Ok(paths)
}

/// Commits what the worktree at `dir` holds, markers and all (a merge of the two commits,
/// since the merge is in progress): the commit a resolver agent starts from.
pub fn commit_as_is(dir: &Path, message: &str) -> Result<ObjectId, GitError> {
    Git::new(dir).args(["add", "-A"]).run()?;
    Git::new(dir)
        .args(["commit", "--no-verify", "-q", "-m", message])
        .envs(IDENTITY)
        .run()?;
    head(dir)
}

/// The commit checked out at `dir`.
pub fn head(dir: &Path) -> Result<ObjectId, GitError> {
    let out = Git::new(dir).args(["rev-parse", "HEAD"]).run()?;
    crate::git::cmd::printed_id(&out.stdout)
}

/// The paths among `paths` whose content in `commit` still has a conflict marker line
/// (`<<<<<<< `, `=======`, `>>>>>>> `).
pub fn markers_left(repo: &Repo, commit: ObjectId, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| {
            let spec = format!("{commit}:{p}");
            let Ok(out) = Git::new(&repo.workdir)
                .args(["cat-file", "-p", &spec])
                .run()
            else {
                // Deleted in the resolution: nothing left to resolve there.
                return false;
            };
            has_markers(&out.stdout)
        })
        .cloned()
        .collect()
}

fn has_markers(text: &[u8]) -> bool {
    text.split(|b| *b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.starts_with(b"<<<<<<< ") || line.starts_with(b">>>>>>> ") || line == b"======="
    })
}

/// A commit with the tree of `resolved` and the parents `ours` and `theirs`: the resolved
/// merge as it goes onto the integration branch.
pub fn merge_commit(
    repo: &Repo,
    resolved: ObjectId,
    ours: ObjectId,
    theirs: ObjectId,
    message: &str,
) -> Result<ObjectId, GitError> {
    let tree = repo.tree_of(resolved)?;
    let out = Git::new(&repo.workdir)
        .args(["commit-tree", &tree.to_string(), "-p", &ours.to_string()])
        .args(["-p", &theirs.to_string(), "-m", message])
        .envs(IDENTITY)
        .run()?;
    crate::git::cmd::printed_id(&out.stdout)
}

/// The parents of `commit`.
pub fn parents(repo: &Repo, commit: ObjectId) -> Result<Vec<ObjectId>, GitError> {
    let out = Git::new(&repo.workdir)
        .args(["rev-list", "--parents", "-n", "1", &commit.to_string()])
        .run()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip(1)
        .map(|id| crate::git::cmd::printed_id(id.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::has_markers;

    #[test]
    fn markers_are_whole_lines() {
        assert!(has_markers(b"a\n<<<<<<< HEAD\nx\n=======\ny\n>>>>>>> b\n"));
        assert!(has_markers(b"=======\r\n"));
        assert!(!has_markers(b"a ======= b\n// <<<<<<<\n"));
    }
}
