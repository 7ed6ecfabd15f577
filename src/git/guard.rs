//! What agents must leave alone in the user's repository, taken as a fingerprint before they
//! start and compared after they end: the work tree (tracked and untracked files that git
//! does not ignore), the index, HEAD, every ref, the configuration, the hooks and the
//! registered worktrees. Any difference is a breach of the agents' confinement, reported by
//! name.
//!
//! Files are those `git status` lists as changed or untracked, compared by their status and
//! stat data (size, modification and change times, inode, mode): a write of other bytes to a
//! clean file makes it appear, and a write to a changed one changes its stamp. The index is compared by its entries
//! (path, mode, object, stage), not its bytes, because `git status` refreshes the stat data
//! it caches without changing anything the user staged.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use gix::bstr::ByteSlice;

use super::cmd::Git;
use super::{GitError, GixContext, Repo};

/// The state of everything an agent must not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    head: String,
    refs: BTreeMap<String, String>,
    /// The index file's bytes: read whole (cheap), its entries parsed only when two
    /// fingerprints' indexes differ.
    index: Vec<u8>,
    files: BTreeMap<String, String>,
    config: BTreeMap<String, String>,
    hooks: BTreeMap<String, String>,
    worktrees: BTreeMap<String, String>,
}

/// What a fingerprint leaves out: refs (the candidate branches of runs) and linked
/// worktrees (a path and the ref its HEAD names) that git-massgen itself makes.
pub struct Ignore<'a> {
    pub refs: &'a dyn Fn(&str) -> bool,
    pub worktrees: &'a dyn Fn(&Path, Option<&str>) -> bool,
}

/// Takes the fingerprint of `repo`, without what `ignore` names, and without files under
/// `.massgen/runs/` and `.massgen/reviews/` (our own runtime state).
pub fn take(repo: &Repo, ignore: &Ignore<'_>) -> Result<Fingerprint, GitError> {
    let ignore_ref = ignore.refs;
    let local = repo.local();
    let head = std::fs::read_to_string(repo.git_dir.join("HEAD"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let head = match local.head_id() {
        Ok(id) => format!("{head} ({id})"),
        Err(_) => head,
    };

    let mut refs = BTreeMap::new();
    let platform = local.references().ctx(|| "cannot list refs".into())?;
    for r in platform.all().ctx(|| "cannot list refs".into())? {
        let r = r.map_err(|e| GitError::Other(format!("cannot read a ref: {e}")))?;
        let name = r.name().as_bstr().to_string();
        if ignore_ref(&name) {
            continue;
        }
        let target = match r.target().try_id() {
            Some(id) => id.to_string(),
            None => format!("-> {:?}", r.target()),
        };
        refs.insert(name, target);
    }

    let index = std::fs::read(local.index_path()).unwrap_or_default();

    // The files git sees as changed or untracked (not ignored), each with its stamp: a
    // tracked file an agent rewrites with other bytes shows up here, and one already changed
    // or untracked keeps its place with a new stamp. Clean tracked files are git's to
    // compare with the index, as `git status` does (and without writing the index).
    let mut files = BTreeMap::new();
    let listed = Git::new(&repo.workdir)
        .args([
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--no-renames",
        ])
        .run()?;
    for raw in listed.stdout.split(|b| *b == 0).filter(|p| p.len() > 3) {
        let (xy, path) = raw.split_at(3);
        let path = String::from_utf8_lossy(path).into_owned();
        if path.starts_with(".massgen/runs/") || path.starts_with(".massgen/reviews/") {
            continue;
        }
        let xy = String::from_utf8_lossy(&xy[..2]).into_owned();
        let stamp = stamp(&repo.workdir.join(&path));
        files.insert(path, format!("{xy} {stamp}"));
    }

    let mut config = BTreeMap::new();
    for (name, path) in [
        ("config", repo.common_dir.join("config")),
        ("config.worktree", repo.git_dir.join("config.worktree")),
    ] {
        config.insert(name.to_owned(), content(&path));
    }

    let mut hooks = BTreeMap::new();
    let hooks_dir = repo.common_dir.join("hooks");
    walk(&hooks_dir, &hooks_dir, &mut hooks);
    if let Some(custom) = local.config_snapshot().string("core.hooksPath")
        && let Ok(custom) = gix::path::from_bstr(custom.as_bstr())
    {
        let custom = repo.workdir.join(custom);
        if custom != hooks_dir {
            walk(&custom, &custom, &mut hooks);
        }
    }
    let worktrees = super::worktree::registrations(repo)
        .into_iter()
        .filter(|r| !(ignore.worktrees)(&r.path, r.branch()))
        .map(|r| (r.path.display().to_string(), r.head))
        .collect();
    Ok(Fingerprint {
        head,
        refs,
        index,
        files,
        config,
        hooks,
        worktrees,
    })
}

/// What changed between two fingerprints, one line per difference, by name.
pub fn changes(before: &Fingerprint, after: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    if before.head != after.head {
        out.push(format!(
            "HEAD of your work tree moved: {} -> {}",
            before.head, after.head
        ));
    }
    diff_maps(&before.refs, &after.refs, &mut out, |name, what| {
        format!("ref {name} {what}")
    });
    if before.index != after.index {
        // Different bytes, maybe the same entries: `git status` refreshes stat data.
        diff_maps(
            &index_entries(&before.index),
            &index_entries(&after.index),
            &mut out,
            |key, what| {
                let path = key.rsplit_once(':').map_or(key, |(p, _)| p);
                format!("your index: {path} {what}")
            },
        );
    }
    for (path, what) in file_changes(&before.files, &after.files) {
        out.push(format!("your work tree: {path} {what}"));
    }
    diff_maps(&before.config, &after.config, &mut out, |name, _| {
        format!("your repository's {name} file was changed")
    });
    diff_maps(&before.hooks, &after.hooks, &mut out, |name, what| {
        format!("hook {name} {what}")
    });
    diff_maps(
        &before.worktrees,
        &after.worktrees,
        &mut out,
        |path, what| format!("linked worktree {path} {what}"),
    );
    out
}

/// The entries of an index file's bytes, `path:stage` to `mode object`; none when they
/// cannot be read.
fn index_entries(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if bytes.is_empty() {
        return out;
    }
    let Ok((state, _)) = gix::index::State::from_bytes(
        bytes,
        std::time::SystemTime::UNIX_EPOCH.into(),
        gix::hash::Kind::Sha1,
        Default::default(),
    ) else {
        return out;
    };
    for e in state.entries() {
        let path = e.path(&state).to_str_lossy().into_owned();
        out.insert(
            format!("{path}:{}", e.stage_raw()),
            format!("{:o} {}", e.mode.bits(), e.id),
        );
    }
    out
}

/// How each file differs between two listings of changed and untracked files (`XY stamp`
/// by path): a path that appears is a new untracked file, a deleted or a changed tracked
/// file, as its status says; one that disappears was restored, deleted or committed.
fn file_changes(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for path in before
        .keys()
        .chain(after.keys().filter(|k| !before.contains_key(*k)))
    {
        let (was, now) = (before.get(path), after.get(path));
        if was == now {
            continue;
        }
        let what = match now {
            Some(now) if now.ends_with(" missing") => "was deleted",
            Some(now) if now.starts_with("??") && was.is_none() => "was created",
            Some(_) => "was changed",
            None if was.is_some_and(|w| w.starts_with("??")) => "was deleted",
            None => "was changed",
        };
        out.push((path.clone(), what));
    }
    out.sort();
    out
}

fn diff_maps(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    out: &mut Vec<String>,
    line: impl Fn(&str, &str) -> String,
) {
    for (k, v) in before {
        match after.get(k) {
            None => out.push(line(k, "was deleted")),
            Some(w) if w != v => out.push(line(k, "was changed")),
            Some(_) => {}
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        out.push(line(k, "was created"));
    }
}

/// Size, times, inode and mode of a file (not following a link); "missing" when it is gone.
fn stamp(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(m) => format!(
            "{} {}.{} {}.{} {} {:o}",
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.ino(),
            m.mode()
        ),
        Err(_) => "missing".into(),
    }
}

/// A small file's bytes, or "missing".
fn content(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => "missing".into(),
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &path, out);
        } else {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            out.insert(
                format!("{}/{name}", root.display()),
                format!(
                    "{:o} {}",
                    entry.metadata().map(|m| m.mode()).unwrap_or(0),
                    content(&path)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(files: &[(&str, &str)], refs: &[(&str, &str)]) -> Fingerprint {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Fingerprint {
            head: "ref: refs/heads/main".into(),
            refs: map(refs),
            index: Vec::new(),
            files: map(files),
            config: BTreeMap::new(),
            hooks: BTreeMap::new(),
            worktrees: BTreeMap::new(),
        }
    }

    #[test]
    fn index_bytes_that_differ_only_in_stat_data_are_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .current_dir(dir.path())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(dir.path().join("a"), "a").unwrap();
        git(&["add", "a"]);
        let read = || std::fs::read(dir.path().join(".git/index")).unwrap();
        let first = read();
        // Same entries, other stat data: what `git status` writes after a touch.
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join("a"))
            .unwrap();
        file.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30),
        )
        .unwrap();
        git(&["update-index", "--refresh"]);
        let refreshed = read();
        std::fs::write(dir.path().join("b"), "b").unwrap();
        git(&["add", "b"]);
        let added = read();
        let with = |index: Vec<u8>| Fingerprint {
            index,
            ..fp(&[], &[])
        };
        assert_ne!(first, refreshed, "the refresh rewrote the index");
        assert!(changes(&with(first.clone()), &with(refreshed)).is_empty());
        assert_eq!(
            changes(&with(first), &with(added)),
            vec!["your index: b was created"]
        );
    }

    #[test]
    fn every_difference_is_named() {
        let before = fp(
            &[("a", " M 1"), ("b", "?? 1"), ("e", " M 1")],
            &[("refs/heads/main", "x")],
        );
        let after = fp(
            &[
                ("a", " M 2"),
                ("c", "?? 1"),
                ("d", " D missing"),
                ("e", " M 1"),
            ],
            &[("refs/heads/main", "y"), ("refs/tags/t", "x")],
        );
        assert_eq!(
            changes(&before, &after),
            vec![
                "ref refs/heads/main was changed",
                "ref refs/tags/t was created",
                "your work tree: a was changed",
                "your work tree: b was deleted",
                "your work tree: c was created",
                "your work tree: d was deleted",
            ]
        );
        assert!(changes(&before, &before).is_empty());
    }
}
