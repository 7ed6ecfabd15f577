//! Merging a candidate into the user's branch, proved clean before anything is touched.
//!
//! [`plan`] merges in memory (gix `merge_commits`) and lists conflicts; [`dirty_overlap`]
//! lists the files the merge would change that the user has modified, staged or left
//! untracked; only when both are empty does [`apply`] write a commit and let
//! `git merge --ff-only` move the branch, index and work tree to it in one step (git refuses,
//! changing nothing, if the user touched one of those files in the meantime).

use gix::bstr::ByteSlice;

use super::cmd::Git;
use super::{GitError, GixContext, ObjectId, Repo};

/// How the candidate relates to the user's HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeKind {
    /// The candidate is already contained in HEAD.
    UpToDate,
    /// HEAD is an ancestor of the candidate.
    FastForward,
    /// Both moved: a merge commit (or a squash commit) is needed.
    Merge,
}

/// A conflicting path and what kind of conflict it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    pub path: String,
    pub kind: String,
}

/// The result of merging in memory.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: MergeKind,
    pub ours: ObjectId,
    pub theirs: ObjectId,
    /// The merged tree (meaningful only without conflicts).
    pub tree: ObjectId,
    pub conflicts: Vec<Conflict>,
    /// Paths whose content differs between HEAD's tree and the merged tree.
    pub changed_paths: Vec<String>,
    /// Of those, the files the merge deletes.
    pub deleted_paths: Vec<String>,
}

/// Merges `theirs` into `ours` in memory. Nothing outside the object database is written.
pub fn plan(repo: &Repo, ours: ObjectId, theirs: ObjectId) -> Result<Plan, GitError> {
    let ours_tree = repo.tree_of(ours)?;
    let mut plan = Plan {
        kind: MergeKind::UpToDate,
        ours,
        theirs,
        tree: ours_tree,
        conflicts: Vec::new(),
        changed_paths: Vec::new(),
        deleted_paths: Vec::new(),
    };
    // One merge-base walk tells all three cases apart.
    let base = repo.merge_base(ours, theirs)?;
    if ours == theirs || base == Some(theirs) {
        return Ok(plan);
    }
    if base == Some(ours) {
        plan.kind = MergeKind::FastForward;
        plan.tree = repo.tree_of(theirs)?;
    } else {
        plan.kind = MergeKind::Merge;
        let local = repo.local();
        let options = local
            .tree_merge_options()
            .ctx(|| "cannot read merge configuration".into())?;
        let labels = gix::merge::blob::builtin_driver::text::Labels {
            ancestor: Some("base".into()),
            current: Some("HEAD".into()),
            other: Some("candidate".into()),
        };
        let mut outcome = local
            .merge_commits(ours, theirs, labels, options.into())
            .ctx(|| format!("cannot merge {theirs} into {ours}"))?;
        let how = gix::merge::tree::TreatAsUnresolved::git();
        for c in &outcome.tree_merge.conflicts {
            let affected_by_rename = matches!(
                c.resolution,
                Ok(gix::merge::tree::Resolution::SourceLocationAffectedByRename { .. })
            );
            if c.is_unresolved(how) || affected_by_rename {
                let (ours_change, _) = c.changes_in_resolution();
                plan.conflicts.push(Conflict {
                    path: ours_change.location().to_str_lossy().into_owned(),
                    kind: conflict_kind(c),
                });
            }
        }
        plan.conflicts.sort_by(|a, b| a.path.cmp(&b.path));
        plan.conflicts.dedup();
        if !plan.conflicts.is_empty() {
            return Ok(plan);
        }
        plan.tree = outcome
            .tree_merge
            .tree
            .write()
            .ctx(|| "cannot write the merged tree".into())?
            .detach();
    }
    for c in super::diff::tree_changes(repo, ours_tree, plan.tree)? {
        if c.new.is_none() {
            plan.deleted_paths.push(c.path.clone());
        }
        plan.changed_paths.push(c.path);
    }
    Ok(plan)
}

fn conflict_kind(c: &gix::merge::tree::Conflict) -> String {
    use gix::merge::tree::{Resolution as R, ResolutionFailure as F};
    match &c.resolution {
        Ok(R::OursModifiedTheirsModifiedThenBlobContentMerge { .. }) => "content",
        Ok(R::OursModifiedTheirsRenamedAndChangedThenRename { .. }) => "content (renamed)",
        Ok(R::SourceLocationAffectedByRename { .. }) => "location affected by rename",
        Ok(R::Forced(_)) => "forced resolution",
        Err(F::OursModifiedTheirsDeleted) => "modify/delete",
        Err(F::OursDeletedTheirsRenamed) => "delete/rename",
        Err(F::OursRenamedTheirsRenamedDifferently { .. }) => "rename/rename",
        Err(F::OursRenamedTheirsRenamedToSameLocation) => "rename/rename (same destination)",
        Err(F::OursModifiedTheirsDirectoryThenOursRenamed { .. }) => "file/directory",
        Err(F::OursDirectoryTheirsNonDirectoryTheirsRenamed { .. }) => "directory/file",
        Err(F::OursAddedTheirsAddedTypeMismatch { .. }) => "add/add (type mismatch)",
        Err(F::OursModifiedTheirsRenamedTypeMismatch) => "rename (type mismatch)",
        Err(F::SubmoduleMerge) | Err(F::SubmoduleAddAdd) => "submodule",
        Err(F::Unknown) => "unknown",
    }
    .to_owned()
}

/// Paths the user has modified, staged or created (untracked, not ignored) in the work tree,
/// as git itself reports them.
pub fn dirty_paths(repo: &Repo) -> Result<Vec<String>, GitError> {
    let out = Git::new(&repo.workdir)
        .args([
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
        ])
        .run()?;
    let mut paths = Vec::new();
    for record in out.stdout.split(|b| *b == 0) {
        if record.len() > 3 {
            paths.push(String::from_utf8_lossy(&record[3..]).into_owned());
        }
    }
    Ok(paths)
}

/// The dirty paths that the merge would write to (same path, or one inside the other).
pub fn dirty_overlap(plan: &Plan, dirty: &[String]) -> Vec<String> {
    let inside =
        |a: &str, b: &str| a.len() > b.len() && a.starts_with(b) && a.as_bytes()[b.len()] == b'/';
    let mut out: Vec<String> = dirty
        .iter()
        .filter(|d| {
            let d = d.trim_end_matches('/');
            plan.changed_paths
                .iter()
                .any(|c| c == d || inside(c, d) || inside(d, c))
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Writes the merge (or squash) commit when needed and fast-forwards the user's HEAD, index
/// and work tree to it with git. Returns the new HEAD commit.
pub fn apply(repo: &Repo, plan: &Plan, squash: bool, message: &str) -> Result<ObjectId, GitError> {
    assert!(
        plan.conflicts.is_empty(),
        "apply is only called on a clean plan"
    );
    if plan.kind == MergeKind::UpToDate {
        return Ok(plan.ours);
    }
    let target = landing(repo, plan, squash, message)?;
    let (head, _) = repo.head()?;
    if head != plan.ours {
        return Err(GitError::Other(format!(
            "HEAD moved from {} to {head} while merging; nothing was changed",
            plan.ours
        )));
    }
    crate::sys::kill_point("merge-committed");
    let moved = Git::new(&repo.workdir)
        .args(["merge", "--ff-only", "--no-stat", "--quiet"])
        .arg(target.to_string())
        .run();
    if let Err(GitError::Command { stderr, .. }) = &moved
        && stderr.contains("index.lock")
    {
        return Err(GitError::Other(format!(
            "another git process is using your index ({}); nothing was changed. Wait for it to finish and merge again (remove that file only if no git process is running)",
            repo.git_dir.join("index.lock").display()
        )));
    }
    moved?;
    crate::sys::kill_point("merge-applied");
    Ok(target)
}

/// The commit a clean merge lands on, written when one is needed (a merge or squash
/// commit); objects only: no ref, index or work tree is touched. `ours` when up to date,
/// `theirs` for a fast-forward.
pub fn landing(
    repo: &Repo,
    plan: &Plan,
    squash: bool,
    message: &str,
) -> Result<ObjectId, GitError> {
    assert!(
        plan.conflicts.is_empty(),
        "a merge lands only from a clean plan"
    );
    Ok(match (plan.kind, squash) {
        (MergeKind::UpToDate, _) => plan.ours,
        (MergeKind::FastForward, false) => plan.theirs,
        (MergeKind::FastForward, true) | (MergeKind::Merge, true) => {
            commit(repo, plan.tree, &[plan.ours], message)?
        }
        (MergeKind::Merge, false) => commit(repo, plan.tree, &[plan.ours, plan.theirs], message)?,
    })
}

/// The git operation that is paused in the user's work tree (a merge, rebase, cherry-pick,
/// revert, `git am` or bisect), with the commands that finish or abort it. Merging on top of
/// one would fold our commit into it.
pub fn operation_in_progress(repo: &Repo) -> Option<(&'static str, &'static str)> {
    let dir = &repo.git_dir;
    let has = |name: &str| dir.join(name).exists();
    if has("rebase-merge") || (has("rebase-apply") && !has("rebase-apply/applying")) {
        Some(("a rebase", "git rebase --continue or git rebase --abort"))
    } else if has("rebase-apply") {
        Some(("git am", "git am --continue or git am --abort"))
    } else if has("MERGE_HEAD") {
        Some(("a merge", "commit it, or git merge --abort"))
    } else if has("CHERRY_PICK_HEAD") || has("sequencer/todo") && has("sequencer/opts") {
        Some((
            "a cherry-pick",
            "git cherry-pick --continue or git cherry-pick --abort",
        ))
    } else if has("REVERT_HEAD") {
        Some(("a revert", "git revert --continue or git revert --abort"))
    } else if has("BISECT_LOG") {
        Some(("a bisect", "git bisect reset"))
    } else {
        None
    }
}

/// An exclusive lock on merging into this repository, held while a merge is planned and
/// applied, so that two `git massgen merge` (or `run --merge`) at once go one after the
/// other, the second planned on what the first left. Released when dropped (or by the
/// kernel, however the process ends). `waiting` is called once if the lock is taken.
pub fn lock(
    repo: &Repo,
    timeout: std::time::Duration,
    waiting: &dyn Fn(),
) -> Result<nix::fcntl::Flock<std::fs::File>, GitError> {
    use nix::fcntl::{Flock, FlockArg};
    let path = repo.common_dir.join("massgen-merge.lock");
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| GitError::Io {
                what: "cannot open the merge lock",
                path: path.clone(),
                source,
            })
    };
    let start = std::time::Instant::now();
    let mut told = false;
    loop {
        match Flock::lock(open()?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
            Err((_, errno)) => {
                return Err(GitError::Io {
                    what: "cannot take the merge lock",
                    path,
                    source: errno.into(),
                });
            }
        }
        if start.elapsed() >= timeout {
            return Err(GitError::Other(format!(
                "another git massgen merge has held {} for {}s; nothing was changed",
                path.display(),
                timeout.as_secs()
            )));
        }
        if !told {
            waiting();
            told = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn commit(
    repo: &Repo,
    tree: ObjectId,
    parents: &[ObjectId],
    message: &str,
) -> Result<ObjectId, GitError> {
    let local = repo.local();
    // The user's identity when configured (it is their branch), ours otherwise.
    let fallback = super::signature("git-massgen", "git-massgen@localhost");
    let mut buf_a = gix::date::parse::TimeBuf::default();
    let mut buf_c = gix::date::parse::TimeBuf::default();
    let fallback_ref = fallback.to_ref(&mut buf_a);
    let author = local.author().and_then(Result::ok).unwrap_or(fallback_ref);
    let committer = local
        .committer()
        .and_then(Result::ok)
        .unwrap_or_else(|| fallback.to_ref(&mut buf_c));
    let c = local
        .new_commit_as(committer, author, message, tree, parents.iter().copied())
        .ctx(|| "cannot write the merge commit".into())?;
    Ok(c.id)
}
