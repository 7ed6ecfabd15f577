//! Differences between two commits: which files changed (gix tree diff), how many lines
//! were added and removed, a unified patch for people, and the changed lines alone for
//! comparing candidates with each other.

use std::fmt::Write as _;

use gix::objs::tree::EntryMode;
use similar::{ChangeTag, TextDiff};

use super::{GitError, GixContext, ObjectId, Repo};

/// Files larger than this are compared as binary (not line-diffed).
const MAX_TEXT_BYTES: usize = 8 * 1024 * 1024;

/// One changed path between two trees.
#[derive(Debug, Clone)]
pub struct FileChange {
    pub path: String,
    pub old: Option<(EntryMode, ObjectId)>,
    pub new: Option<(EntryMode, ObjectId)>,
}

/// Size of a change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub files: usize,
    pub insertions: usize,
    pub deletions: usize,
}

/// A rendered difference.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub stat: Stat,
    /// A unified diff in git's format.
    pub patch: String,
    /// Only the changed lines, each prefixed with its path and `+`/`-`, in path order.
    pub changed_lines: String,
    /// The changed paths, sorted.
    pub paths: Vec<String>,
    /// Of those, the deleted files.
    pub deleted: Vec<String>,
}

/// The blob-level changes between the trees of two commits (renames are not tracked: a
/// rename is a deletion and an addition).
pub fn changes(repo: &Repo, old: ObjectId, new: ObjectId) -> Result<Vec<FileChange>, GitError> {
    tree_changes(repo, repo.tree_of(old)?, repo.tree_of(new)?)
}

/// The blob-level changes between two trees. A plain tree diff: no rename tracking, so no
/// blob resource cache (and its attribute lookups) is needed.
pub fn tree_changes(
    repo: &Repo,
    old: ObjectId,
    new: ObjectId,
) -> Result<Vec<FileChange>, GitError> {
    use gix::diff::tree::recorder::Change;
    let local = repo.local();
    let tree = |id: ObjectId| -> Result<gix::Tree<'_>, GitError> {
        local.find_tree(id).ctx(|| format!("cannot read tree {id}"))
    };
    let (old_tree, new_tree) = (tree(old)?, tree(new)?);
    let mut recorder = gix::diff::tree::Recorder::default();
    gix::diff::tree(
        gix::objs::TreeRefIter::from_bytes(&old_tree.data, old_tree.id.kind()),
        gix::objs::TreeRefIter::from_bytes(&new_tree.data, new_tree.id.kind()),
        gix::diff::tree::State::default(),
        &local.objects,
        &mut recorder,
    )
    .ctx(|| format!("cannot diff {old} and {new}"))?;
    let mut out = Vec::new();
    for change in recorder.records {
        let (path, old, new) = match change {
            Change::Addition {
                path,
                entry_mode,
                oid,
                ..
            } => (path, None, Some((entry_mode, oid))),
            Change::Deletion {
                path,
                entry_mode,
                oid,
                ..
            } => (path, Some((entry_mode, oid)), None),
            Change::Modification {
                path,
                previous_entry_mode,
                previous_oid,
                entry_mode,
                oid,
            } => (
                path,
                Some((previous_entry_mode, previous_oid)),
                Some((entry_mode, oid)),
            ),
        };
        // Directory entries themselves are not changes; their files are listed on their own.
        let old = old.filter(|(m, _)| !m.is_tree());
        let new = new.filter(|(m, _)| !m.is_tree());
        if old.is_none() && new.is_none() {
            continue;
        }
        out.push(FileChange {
            path: path.to_string(),
            old,
            new,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Diffs two commits into a stat, a patch and the list of changed lines.
pub fn render(repo: &Repo, old: ObjectId, new: ObjectId) -> Result<Rendered, GitError> {
    let local = repo.local();
    let mut out = Rendered::default();
    for change in changes(repo, old, new)? {
        out.stat.files += 1;
        out.paths.push(change.path.clone());
        if change.new.is_none() {
            out.deleted.push(change.path.clone());
        }
        // A blob too large to line-diff is not read at all: it would only be called binary,
        // and reading it would hold all of it in memory.
        let size = |side: &Option<(EntryMode, ObjectId)>| -> Result<u64, GitError> {
            match side {
                Some((mode, id)) if !mode.is_commit() => Ok(local
                    .find_header(*id)
                    .ctx(|| format!("cannot read blob {id}"))?
                    .size()),
                _ => Ok(0),
            }
        };
        let (old_size, new_size) = (size(&change.old)?, size(&change.new)?);
        if old_size.max(new_size) > MAX_TEXT_BYTES as u64 {
            binary_patch(&mut out, &change, new_size);
            continue;
        }
        let read = |side: &Option<(EntryMode, ObjectId)>| -> Result<Vec<u8>, GitError> {
            match side {
                Some((mode, id)) if !mode.is_commit() => Ok(local
                    .find_blob(*id)
                    .ctx(|| format!("cannot read blob {id}"))?
                    .take_data()),
                Some((_, id)) => Ok(format!("Subproject commit {id}\n").into_bytes()),
                None => Ok(Vec::new()),
            }
        };
        let (old_bytes, new_bytes) = (read(&change.old)?, read(&change.new)?);
        file_patch(&mut out, &change, &old_bytes, &new_bytes);
    }
    Ok(out)
}

fn mode_octal(mode: EntryMode) -> String {
    format!("{:06o}", mode.value())
}

fn is_binary(bytes: &[u8]) -> bool {
    bytes.len() > MAX_TEXT_BYTES || bytes[..bytes.len().min(8000)].contains(&0)
}

/// The `diff --git` header lines of a change; returns the names of its two sides.
fn patch_header(out: &mut Rendered, change: &FileChange) -> (String, String) {
    let path = &change.path;
    let _ = writeln!(out.patch, "diff --git a/{path} b/{path}");
    match (&change.old, &change.new) {
        (None, Some((mode, _))) => {
            let _ = writeln!(out.patch, "new file mode {}", mode_octal(*mode));
        }
        (Some((mode, _)), None) => {
            let _ = writeln!(out.patch, "deleted file mode {}", mode_octal(*mode));
        }
        (Some((a, _)), Some((b, _))) if a != b => {
            let _ = writeln!(
                out.patch,
                "old mode {}\nnew mode {}",
                mode_octal(*a),
                mode_octal(*b)
            );
        }
        _ => {}
    }
    let a_name = if change.old.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".into()
    };
    let b_name = if change.new.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".into()
    };
    (a_name, b_name)
}

/// A change shown as binary; `new_len` is the new side's size.
fn binary_patch(out: &mut Rendered, change: &FileChange, new_len: u64) {
    let (a_name, b_name) = patch_header(out, change);
    let path = &change.path;
    let _ = writeln!(out.patch, "Binary files {a_name} and {b_name} differ");
    let _ = writeln!(out.changed_lines, "{path}\tbinary {new_len}");
}

fn file_patch(out: &mut Rendered, change: &FileChange, old: &[u8], new: &[u8]) {
    if is_binary(old) || is_binary(new) {
        binary_patch(out, change, new.len() as u64);
        return;
    }
    let path = &change.path;
    let (a_name, b_name) = patch_header(out, change);
    let (old_text, new_text) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    if old_text == new_text {
        return;
    }
    let diff = TextDiff::from_lines(old_text.as_ref(), new_text.as_ref());
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            ChangeTag::Insert => {
                out.stat.insertions += 1;
                '+'
            }
            ChangeTag::Delete => {
                out.stat.deletions += 1;
                '-'
            }
            ChangeTag::Equal => continue,
        };
        let _ = writeln!(
            out.changed_lines,
            "{path}\t{sign}{}",
            change.value().trim_end_matches('\n')
        );
    }
    let _ = write!(
        out.patch,
        "{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&a_name, &b_name)
    );
    if !out.patch.ends_with('\n') {
        out.patch.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_detection() {
        assert!(is_binary(b"a\0b"));
        assert!(!is_binary(b"plain text\n"));
    }
}
