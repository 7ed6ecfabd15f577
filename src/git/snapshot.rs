//! Turning what an agent left in its worktree into a commit on its branch.
//!
//! The agent's own commits are kept; on top of them, every modified, deleted and new
//! non-ignored file becomes one snapshot commit. Only the candidate's own branch ref moves:
//! the tree is built with gix's tree editor straight from the files on disk, so no index
//! (neither the user's nor the worktree's) is needed or touched. Each file is stored as
//! `git add` would store it ([`super::filter`]: attributes, eol, clean filters, git-lfs).

use std::collections::BTreeSet;
use std::path::Path;

use gix::bstr::{BString, ByteSlice};

use super::cmd::Git;
use super::filter::Cleaner;
use super::{GitError, GixContext, ObjectId, Repo};

/// The outcome of a snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The candidate commit: the snapshot commit, or the agent's last commit when it left
    /// nothing uncommitted.
    pub commit: ObjectId,
    /// Whether the candidate's tree differs from the base's.
    pub changed: bool,
    /// Things worth telling the user (nested repositories skipped, HEAD moved).
    pub warnings: Vec<String>,
}

/// Snapshots the worktree at `wt` onto `branch` (full ref name).
pub fn snapshot(
    repo: &Repo,
    wt: &Path,
    branch: &str,
    base: ObjectId,
    message: &str,
    update_index: bool,
) -> Result<Snapshot, GitError> {
    let mut warnings = Vec::new();
    let Built {
        wt_repo,
        start,
        start_tree,
        tree,
    } = build(repo, wt, branch, base, &mut warnings)?;
    let commit = commit_on(repo, &wt_repo, branch, start, start_tree, tree, message)?;
    if update_index {
        show_candidate(wt_repo.git_dir(), branch, Git::new(wt))?;
    }
    // The commit's tree is `tree`, whether written or `start`'s own.
    let changed = tree != repo.tree_of(base)?;
    Ok(Snapshot {
        commit,
        changed,
        warnings,
    })
}

/// Makes a worktree that is worked in again show its candidate, the tip of `branch`, once
/// its files have been snapshotted: HEAD (in its private git directory `git_dir`) back on
/// `branch` if the agent detached it, and a mixed reset (through `git`, a `git -C <wt>`) so
/// that its index matches the snapshot while keeping the stat data of unchanged entries, and
/// `git status` in it is clean and fast.
pub fn show_candidate(git_dir: &Path, branch: &str, mut git: Git) -> Result<(), GitError> {
    let head = git_dir.join("HEAD");
    let wanted = format!("ref: {branch}");
    if std::fs::read_to_string(&head).map_or(true, |h| h.trim() != wanted) {
        std::fs::write(&head, format!("{wanted}\n")).map_err(|source| GitError::Io {
            what: "cannot reset the worktree's HEAD",
            path: head,
            source,
        })?;
    }
    git.args(["reset", "--quiet"]).run()?;
    Ok(())
}

/// Commits `tree` on `start` (nothing when it is `start`'s own tree, `start_tree`) and moves
/// `branch` there. Returns the candidate commit.
fn commit_on(
    repo: &Repo,
    writer: &gix::Repository,
    branch: &str,
    start: ObjectId,
    start_tree: ObjectId,
    tree: ObjectId,
    message: &str,
) -> Result<ObjectId, GitError> {
    let commit = if tree == start_tree {
        start
    } else {
        let sig = super::signature("git-massgen", "git-massgen@localhost");
        let mut time_buf = gix::date::parse::TimeBuf::default();
        let sig_ref = sig.to_ref(&mut time_buf);
        writer
            .new_commit_as(sig_ref, sig_ref, message, tree, [start])
            .ctx(|| "cannot write the snapshot commit".into())?
            .id
    };
    let current = repo.ref_target(branch)?;
    if current != Some(commit) {
        repo.set_ref(branch, commit, current, "massgen: snapshot candidate")?;
    }
    Ok(commit)
}

/// Snapshots a copy-on-write worktree onto `branch`: the tree its overlay's `upper`
/// directory makes of `base`'s ([`super::overlay_snapshot::tree_from_upper`], read with the
/// checkout `lower` it lies on), committed on the branch's tip when that descends from
/// `base` (the agent committed inside), else on `base`. Where the agent changed ignore rules
/// or attributes, the tree is `inside()`'s instead (git asked inside the overlay). No index
/// is touched.
pub fn snapshot_overlay(
    repo: &Repo,
    lower: &Path,
    upper: &Path,
    branch: &str,
    base: ObjectId,
    message: &str,
    inside: &dyn Fn() -> Result<ObjectId, GitError>,
) -> Result<Snapshot, GitError> {
    let mut warnings = Vec::new();
    let tip = repo.ref_target(branch)?.unwrap_or(base);
    let start = if repo.is_ancestor(base, tip)? {
        tip
    } else {
        warnings.push(
            "the agent's branch does not descend from the base; its commits are ignored".into(),
        );
        base
    };
    let base_tree = repo.tree_of(base)?;
    let start_tree = if start == base {
        base_tree
    } else {
        repo.tree_of(start)?
    };
    let tree =
        super::overlay_snapshot::tree_from_upper(repo, lower, base_tree, upper, &mut warnings)?;
    let tree = match tree {
        Some(tree) => tree,
        None => inside()?,
    };
    // What the agent committed inside is in the files of `upper` as well: the tree of the
    // files is the candidate's, on top of its commits.
    let commit = commit_on(
        repo,
        &repo.local(),
        branch,
        start,
        start_tree,
        tree,
        message,
    )?;
    // The commit's tree is `tree`, whether written or `start`'s own.
    Ok(Snapshot {
        commit,
        changed: tree != base_tree,
        warnings,
    })
}

/// The tree a snapshot of `wt` would record, and what it starts from.
struct Built {
    wt_repo: gix::Repository,
    /// The agent's HEAD (or `base` when it does not descend from it).
    start: ObjectId,
    start_tree: ObjectId,
    tree: ObjectId,
}

/// Whether the worktree at `wt` holds changes that its candidate commit `commit` (the tip of
/// `branch`) does not: what its tests wrote, or edits made by hand in a kept worktree.
/// Objects are written (they are unreferenced), no commit and no ref.
pub fn changed_since(
    repo: &Repo,
    wt: &Path,
    branch: &str,
    commit: ObjectId,
) -> Result<bool, GitError> {
    let built = build(repo, wt, branch, commit, &mut Vec::new())?;
    Ok(built.tree != repo.tree_of(commit)?)
}

fn build(
    repo: &Repo,
    wt: &Path,
    branch: &str,
    base: ObjectId,
    warnings: &mut Vec<String>,
) -> Result<Built, GitError> {
    if let Some(admin) = super::worktree::registration(repo, wt)
        && super::worktree::repair_gitfile(wt, &admin)?
    {
        warnings
            .push("the agent removed or replaced its worktree's .git file; it was repaired".into());
    }
    let wt_repo = repo.open_worktree(wt)?;
    let head = wt_repo
        .head()
        .ctx(|| "cannot read the worktree's HEAD".into())?;
    if head
        .referent_name()
        .map(|n| n.as_bstr().to_string())
        .as_deref()
        != Some(branch)
    {
        warnings.push(format!(
            "the agent moved its worktree's HEAD away from {}",
            branch.trim_start_matches("refs/heads/")
        ));
    }
    let start = head.id().map(|id| id.detach()).unwrap_or(base);
    let start = if repo.is_ancestor(base, start)? {
        start
    } else {
        warnings.push(
            "the agent's HEAD does not descend from the base; its commits are ignored".into(),
        );
        base
    };
    let start_tree = repo.tree_of(start)?;

    let index_untouched = start == base && index_is_pristine(&wt_repo);
    let paths = changed_paths(&wt_repo, start_tree, index_untouched, warnings)?;
    let mut editor = wt_repo
        .edit_tree(start_tree)
        .ctx(|| "cannot edit the candidate's tree".into())?;
    // Removals first: a file replaced by a directory is removed before the directory's
    // files are added under the same name.
    let mut upserts = Vec::new();
    for path in &paths {
        let rel = gix::path::from_bstr(path.as_bstr())
            .ctx(|| format!("path {path} is not valid here"))?;
        let full = wt.join(rel);
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => {
                editor
                    .remove(path.as_bstr())
                    .ctx(|| format!("cannot edit {path}"))?;
            }
            Ok(meta) => upserts.push((path, full, meta)),
            // NotADirectory: a parent directory became a file (`docs/x` when `docs` is one).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                editor
                    .remove(path.as_bstr())
                    .ctx(|| format!("cannot edit {path}"))?;
            }
            Err(source) => {
                return Err(GitError::Io {
                    what: "cannot read a changed file",
                    path: full,
                    source,
                });
            }
        }
    }
    if !upserts.is_empty() {
        let mut cleaner = Cleaner::new(&wt_repo)?;
        for (path, full, meta) in upserts {
            let (kind, id) = cleaner.store(path.as_bstr(), &full, &meta, warnings)?;
            editor
                .upsert(path.as_bstr(), kind, id)
                .ctx(|| format!("cannot edit {path}"))?;
        }
        cleaner.finish()?;
    }
    let tree = editor
        .write()
        .ctx(|| "cannot write the candidate's tree".into())?
        .detach();

    Ok(Built {
        wt_repo,
        start,
        start_tree,
        tree,
    })
}

/// Whether the worktree's index is still the one written at checkout.
fn index_is_pristine(wt_repo: &gix::Repository) -> bool {
    let recorded =
        std::fs::read_to_string(wt_repo.git_dir().join(super::worktree::PRISTINE_INDEX_FILE));
    let Ok(recorded) = recorded else {
        return false;
    };
    wt_repo
        .index()
        .ok()
        .and_then(|index| index.checksum())
        .is_some_and(|c| ObjectId::from_hex(recorded.trim().as_bytes()).ok() == Some(c))
}

/// Paths that differ between `tree`, the worktree's index and the files on disk, with
/// untracked files listed one by one and ignored files left out. With `index_untouched` the
/// index is known to equal `tree`, and only the index is compared with the files.
fn changed_paths(
    wt_repo: &gix::Repository,
    tree: ObjectId,
    index_untouched: bool,
    warnings: &mut Vec<String>,
) -> Result<BTreeSet<BString>, GitError> {
    use gix::status::index_worktree::Item as Iw;
    let status_err = || "cannot read the worktree's status".to_owned();
    let platform = wt_repo
        .status(gix::progress::Discard)
        .ctx(status_err)?
        .untracked_files(gix::status::UntrackedFiles::Files)
        .index_worktree_rewrites(None)
        .index_worktree_submodules(None)
        .tree_index_track_renames(gix::status::tree_index::TrackRenames::Disabled)
        .head_tree(tree);
    let mut paths = BTreeSet::new();
    // Links to the user's own directories that the run made are no work of the agent's.
    let shared = super::worktree::shared_links(wt_repo.git_dir());
    let mut index_worktree = |item: Iw, paths: &mut BTreeSet<BString>| {
        match &item {
            Iw::Modification { status, .. } => {
                if matches!(
                    status,
                    gix::status::plumbing::index_as_worktree::EntryStatus::NeedsUpdate(_)
                ) {
                    return;
                }
            }
            Iw::DirectoryContents { entry, .. } => {
                if entry.status != gix::dir::entry::Status::Untracked
                    || shared.iter().any(|s| entry.rela_path == s.as_bytes())
                {
                    return;
                }
                if matches!(entry.disk_kind, Some(gix::dir::entry::Kind::Repository)) {
                    warnings.push(format!("skipped nested repository {}", entry.rela_path));
                    return;
                }
            }
            Iw::Rewrite { .. } => {}
        }
        paths.insert(item.rela_path().to_owned());
    };
    if index_untouched {
        for item in platform
            .into_index_worktree_iter(Vec::new())
            .ctx(status_err)?
        {
            index_worktree(item.ctx(status_err)?, &mut paths);
        }
    } else {
        for item in platform.into_iter(None).ctx(status_err)? {
            match item.ctx(status_err)? {
                gix::status::Item::IndexWorktree(item) => index_worktree(item, &mut paths),
                gix::status::Item::TreeIndex(change) => {
                    paths.insert(change.location().to_owned());
                }
            }
        }
    }
    Ok(paths)
}
