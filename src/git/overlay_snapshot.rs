//! The tree of a copy-on-write worktree, read from its overlay's upper directory.
//!
//! An agent that worked on an overlay (`sys::overlay`) left every change in the upper
//! directory and nothing else: new and changed files and links as themselves, a deleted
//! file or directory as a *whiteout* (a character device 0:0), a directory that replaced one
//! of the lower tree marked *opaque* (`user.overlay.opaque=y`). Walking that directory alone
//! gives the candidate's tree without looking at the unchanged files at all; the result is
//! the tree the checkout-mode snapshot (`snapshot::build`) records for the same edits:
//! files are stored through the same [`Cleaner`] (attributes, clean filters, LFS), and
//! untracked ignored files are left out as `git status` leaves them out.
//!
//! Ignore rules and attributes are read from `wt`, the checkout the overlay lies on (its
//! lower directory). Where the agent changed a `.gitignore` or `.gitattributes` (they are in
//! the upper directory), those are not the rules of the merged tree: no tree is made, and the
//! caller asks git inside the overlay.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use gix::bstr::{BString, ByteSlice, ByteVec};

use super::filter::Cleaner;
use super::{GitError, GixContext, ObjectId, Repo};

/// The tree that `base_tree` becomes with the changes recorded in the overlay directory
/// `upper`, whose lower directory is the checkout `wt` of `repo` (its attributes,
/// configuration and ignore rules apply). Objects are written; no commit, no ref, no index.
/// `None` when the changes include ignore rules or attributes, whose new versions apply.
pub fn tree_from_upper(
    repo: &Repo,
    wt: &Path,
    base_tree: ObjectId,
    upper: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<ObjectId>, GitError> {
    let wt_repo = repo.open_worktree(wt)?;
    // The lower checkout's index is the base tree's and all its files are on disk: ignore
    // rules and attributes are read from the files, and its index (as large as the
    // repository) is never read.
    let index = gix::index::State::new(wt_repo.object_hash());
    let excludes = wt_repo
        .excludes(
            &index,
            None,
            gix::worktree::stack::state::ignore::Source::WorktreeThenIdMappingIfNotSkipped,
        )
        .ctx(|| "cannot read the worktree's ignore rules".into())?;
    // Links to the user's own directories that the run made are no work of the agent's:
    // recorded in the registration that `upper/.git` names.
    let shared = super::worktree::git_dir_of(upper)
        .map(|admin| super::worktree::shared_links(&admin))
        .unwrap_or_default();
    let mut walk = Walk {
        shared: shared.into_iter().map(BString::from).collect(),
        base: wt_repo
            .find_tree(base_tree)
            .ctx(|| format!("cannot read tree {base_tree}"))?,
        excludes,
        removals: Vec::new(),
        upserts: Vec::new(),
        rules_changed: false,
        warnings,
    };
    walk.dir(upper, &BString::default(), false)?;
    let Walk {
        removals,
        upserts,
        rules_changed,
        ..
    } = walk;
    if rules_changed {
        return Ok(None);
    }
    let mut editor = wt_repo
        .edit_tree(base_tree)
        .ctx(|| "cannot edit the candidate's tree".into())?;
    // Removals first: an opaque directory is emptied before its upper content is added.
    for path in &removals {
        editor
            .remove(path.as_bstr())
            .ctx(|| format!("cannot edit {path}"))?;
    }
    if !upserts.is_empty() {
        let mut cleaner = Cleaner::for_checkout_of(&wt_repo, base_tree)?;
        for (path, full, meta) in &upserts {
            let (kind, id) = cleaner.store(path.as_bstr(), full, meta, warnings)?;
            editor
                .upsert(path.as_bstr(), kind, id)
                .ctx(|| format!("cannot edit {path}"))?;
        }
        cleaner.finish()?;
    }
    Ok(Some(
        editor
            .write()
            .ctx(|| "cannot write the candidate's tree".into())?
            .detach(),
    ))
}

/// What the base tree has at a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InBase {
    Nothing,
    Tree,
    Blob,
}

struct Walk<'a, 'repo> {
    /// Paths left out unless the base has them.
    shared: Vec<BString>,
    base: gix::Tree<'repo>,
    excludes: gix::AttributeStack<'repo>,
    removals: Vec<BString>,
    upserts: Vec<(BString, PathBuf, std::fs::Metadata)>,
    /// A `.gitignore` or `.gitattributes` was written or deleted.
    rules_changed: bool,
    warnings: &'a mut Vec<String>,
}

impl Walk<'_, '_> {
    /// Records the changes under the upper directory `dir`, which is `prefix` in the tree
    /// (empty at the top); `ignored`: `dir` is ignored, so its untracked files are too.
    fn dir(&mut self, dir: &Path, prefix: &BString, ignored: bool) -> Result<(), GitError> {
        let io = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| GitError::Io { what, path, source }
        };
        let entries =
            std::fs::read_dir(dir).map_err(io("cannot read the overlay's upper directory", dir))?;
        for entry in entries {
            let entry = entry.map_err(io("cannot read the overlay's upper directory", dir))?;
            let name = entry.file_name();
            // The worktree's own `.git` file is no content.
            if prefix.is_empty() && name == ".git" {
                continue;
            }
            if name == ".gitignore" || name == ".gitattributes" {
                self.rules_changed = true;
                return Ok(());
            }
            let full = entry.path();
            let mut rel = prefix.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.push_str(
                gix::path::os_str_into_bstr(&name)
                    .ctx(|| format!("file name {} is not valid here", full.display()))?,
            );
            let meta = std::fs::symlink_metadata(&full)
                .map_err(io("cannot read a changed file", &full))?;
            if is_whiteout(&full, &meta) {
                self.removals.push(rel);
                continue;
            }
            let in_base = self.in_base(&rel)?;
            if in_base == InBase::Nothing && self.shared.contains(&rel) {
                continue;
            }
            if meta.is_dir() {
                if in_base == InBase::Blob || (in_base == InBase::Tree && is_opaque(&full)) {
                    self.removals.push(rel.clone());
                }
                let ignored = ignored || self.is_excluded(&rel, true)?;
                if in_base != InBase::Tree {
                    if ignored {
                        continue;
                    }
                    if full.join(".git").exists() {
                        self.warnings
                            .push(format!("skipped nested repository {rel}"));
                        continue;
                    }
                }
                self.dir(&full, &rel, ignored)?;
                if self.rules_changed {
                    return Ok(());
                }
                continue;
            }
            if !meta.is_file() && !meta.file_type().is_symlink() {
                continue;
            }
            if in_base == InBase::Tree {
                self.removals.push(rel.clone());
            }
            if in_base != InBase::Blob && (ignored || self.is_excluded(&rel, false)?) {
                continue;
            }
            self.upserts.push((rel, full, meta));
        }
        Ok(())
    }

    fn in_base(&self, rel: &BString) -> Result<InBase, GitError> {
        let path =
            gix::path::from_bstr(rel.as_bstr()).ctx(|| format!("path {rel} is not valid here"))?;
        let entry = self
            .base
            .lookup_entry_by_path(&path)
            .ctx(|| format!("cannot look up {rel} in the base tree"))?;
        Ok(match entry {
            None => InBase::Nothing,
            Some(e) if e.mode().is_tree() => InBase::Tree,
            Some(_) => InBase::Blob,
        })
    }

    fn is_excluded(&mut self, rel: &BString, dir: bool) -> Result<bool, GitError> {
        let mode = if dir {
            gix::index::entry::Mode::DIR
        } else {
            gix::index::entry::Mode::FILE
        };
        Ok(self
            .excludes
            .at_entry(rel.as_bstr(), Some(mode))
            .ctx(|| format!("cannot match {rel} against the ignore rules"))?
            .is_excluded())
    }
}

/// A deleted path: a character device 0:0, or (overlayfs with `xwhiteouts`) an empty file
/// marked `user.overlay.whiteout`.
fn is_whiteout(path: &Path, meta: &std::fs::Metadata) -> bool {
    (meta.file_type().is_char_device() && meta.rdev() == 0)
        || (meta.is_file()
            && meta.len() == 0
            && (xattr(path, "user.overlay.whiteout").is_some()
                || xattr(path, "trusted.overlay.whiteout").is_some()))
}

/// A directory whose lower namesake is hidden: `overlay.opaque` is `y` (`x` only says that
/// it holds xwhiteouts).
fn is_opaque(path: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| xattr(path, name).as_deref() == Some(b"y".as_slice()))
}

/// The value of extended attribute `name` of `path` (links not followed), if it has one.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 16];
    rustix::fs::lgetxattr(path, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}
