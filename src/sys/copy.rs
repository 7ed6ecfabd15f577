//! Copying files and whole trees, sharing their data where the file system can: each file
//! is first cloned (`FICLONE` on Linux btrfs, XFS and bcachefs; `clonefile` on macOS, through
//! `reflink-copy`), so the copy takes no space until one side is written; elsewhere it is
//! copied. The files of a tree are copied by several threads at once.
//!
//! Links are copied as links (never followed); files keep their permissions and their
//! modification and access times, as with `cp -p`. Build tools compare outputs' times with
//! each other: cargo rebuilds a crate when a dependency's output looks newer than its own,
//! so a `target` copied with fresh, arbitrarily ordered times was rebuilt almost whole.
//! Against the freshly checked-out sources the copied outputs look older, so a make-like
//! tool rebuilds rather than trust outputs built from the user's own (perhaps changed)
//! sources.

use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Regular files and links written.
    pub files: u64,
    /// Bytes of the regular files.
    pub bytes: u64,
    /// Files whose data is shared with their source (cloned, not copied).
    pub cloned: u64,
}

impl Copied {
    /// Adds what another copy did.
    pub fn add(&mut self, other: Copied) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.cloned += other.cloned;
    }
}

/// Copies `from` (a file, a link or a directory with everything in it) to `to`, creating
/// `to`'s parents. Whatever is at `to` already is replaced file by file.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<Copied> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut done = Copied::default();
    walk(from, to, &mut files, &mut dirs, &mut done)?;
    done.add(copy_files(&files)?);
    // Directories get their permissions last: a read-only one could not be filled.
    for (dir, perms) in dirs.into_iter().rev() {
        std::fs::set_permissions(dir, perms)?;
    }
    Ok(done)
}

/// Creates the directories and links of the tree at `from` under `to`, and lists its regular
/// files (source, destination) for copying.
fn walk(
    from: &Path,
    to: &Path,
    files: &mut Vec<(PathBuf, PathBuf)>,
    dirs: &mut Vec<(PathBuf, std::fs::Permissions)>,
    done: &mut Copied,
) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    walk_entry(from, to, meta.file_type(), Some(meta), files, dirs, done)
}

/// [`walk`] for an entry whose type is known. Below the top, the type comes from the
/// directory entry: files and links are not `stat`ed here (a file's length comes from the
/// copy), only directories, for their permissions.
fn walk_entry(
    from: &Path,
    to: &Path,
    kind: std::fs::FileType,
    meta: Option<std::fs::Metadata>,
    files: &mut Vec<(PathBuf, PathBuf)>,
    dirs: &mut Vec<(PathBuf, std::fs::Permissions)>,
    done: &mut Copied,
) -> io::Result<()> {
    if kind.is_symlink() {
        let target = std::fs::read_link(from)?;
        if let Err(e) = std::os::unix::fs::symlink(&target, to) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            remove_if_there(to)?;
            std::os::unix::fs::symlink(target, to)?;
        }
        done.files += 1;
    } else if kind.is_dir() {
        let meta = match meta {
            Some(m) => m,
            None => std::fs::symlink_metadata(from)?,
        };
        match std::fs::create_dir(to) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && to.is_dir() => {}
            other => other?,
        }
        dirs.push((to.to_path_buf(), meta.permissions()));
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            walk_entry(
                &entry.path(),
                &to.join(entry.file_name()),
                entry.file_type()?,
                None,
                files,
                dirs,
                done,
            )?;
        }
    } else if kind.is_file() {
        files.push((from.to_path_buf(), to.to_path_buf()));
    }
    // Sockets, fifos and devices are not copied.
    Ok(())
}

/// Removes a file or link at `path`, if any.
fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Copies the listed files with up to 8 threads; the first error stops them all.
fn copy_files(files: &[(PathBuf, PathBuf)]) -> io::Result<Copied> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Once a clone fails for want of support, the rest of the tree is copied straight away.
    let can_clone = AtomicBool::new(true);
    let error = Mutex::new(None);
    let total = Mutex::new(Copied::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Copied::default();
                while !failed.load(Ordering::Relaxed) {
                    let Some((from, to)) = files.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    match copy_file(from, to, &can_clone) {
                        Ok((len, cloned)) => {
                            mine.files += 1;
                            mine.bytes += len;
                            mine.cloned += u64::from(cloned);
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            let what = io::Error::new(e.kind(), format!("{}: {e}", from.display()));
                            error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(what);
                        }
                    }
                }
                total.lock().unwrap_or_else(|p| p.into_inner()).add(mine);
            });
        }
    });
    match error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(total.into_inner().unwrap_or_else(|p| p.into_inner())),
    }
}

/// Clones `from` to `to` where the file system can, else copies it, with its mode and times;
/// returns its length and whether it was cloned. Whatever is at `to` is replaced; a link
/// there is never followed.
///
/// Few system calls per file, since a dependency tree has thousands: the destination is
/// created exclusively (a fresh worktree has nothing there, so nothing is removed first), its
/// mode and times set through the open file, and the data cloned or copied between the two
/// open files.
fn copy_file(from: &Path, to: &Path, can_clone: &AtomicBool) -> io::Result<(u64, bool)> {
    let mut src = std::fs::File::open(from)?;
    let meta = src.metadata()?;
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.permissions().mode())
            .open(to)
    };
    let mut dst = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_if_there(to)?;
            create()?
        }
        other => other?,
    };
    // The mode given at creation is narrowed by the umask; the copy keeps the source's.
    dst.set_permissions(meta.permissions())?;
    if can_clone.load(Ordering::Relaxed) {
        match reflink_copy::reflink_file(&src, &dst) {
            Ok(()) => {
                keep_times(&dst, &meta)?;
                return Ok((meta.len(), true));
            }
            Err(e) if unsupported(&e) => can_clone.store(false, Ordering::Relaxed),
            // Another reason (a file that changed meanwhile, a quota): the copy says it.
            Err(_) => dst.set_len(0)?,
        }
    }
    // `copy_file_range` between the two files on Linux, as `std::fs::copy` does.
    io::copy(&mut src, &mut dst)?;
    keep_times(&dst, &meta)?;
    Ok((meta.len(), false))
}

/// Gives the copy `dst` the times of its source (after its data: writing it set them anew).
fn keep_times(dst: &std::fs::File, source: &std::fs::Metadata) -> io::Result<()> {
    dst.set_times(
        std::fs::FileTimes::new()
            .set_modified(source.modified()?)
            .set_accessed(source.accessed()?),
    )
}

/// Whether a clone failed because the file systems cannot share data (not this file's fault).
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EOPNOTSUPP | nix::libc::EXDEV | nix::libc::EINVAL | nix::libc::ENOTTY)
    ) || e.kind() == io::ErrorKind::Unsupported
}

/// Whether a file in `dir` can be cloned onto `dest_dir` (same file system, one that shares
/// data): tried with a small probe file, removed afterwards.
pub fn can_clone_between(dir: &Path, dest_dir: &Path) -> bool {
    let Ok(probe) = tempfile::Builder::new()
        .prefix(".massgen-clone-probe")
        .tempfile_in(dir)
    else {
        return false;
    };
    let _ = std::io::Write::write_all(&mut probe.as_file(), b"probe");
    let target = dest_dir.join(format!(".massgen-clone-probe-{}", std::process::id()));
    let cloned = reflink_copy::reflink(probe.path(), &target).is_ok();
    let _ = std::fs::remove_file(&target);
    cloned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_copied_with_links_and_modes_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("a/b")).unwrap();
        std::fs::write(from.join("a/b/file"), b"12345").unwrap();
        std::fs::write(from.join("run.sh"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(from.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("a/b/file", from.join("link")).unwrap();
        // An output older than another keeps that order in the copy (cargo compares them).
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::options()
            .write(true)
            .open(from.join("a/b/file"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let to = dir.path().join("x/to");
        let copied = copy_tree(&from, &to).unwrap();
        let modified = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(modified(&to.join("a/b/file")), old);
        assert_eq!(modified(&to.join("run.sh")), modified(&from.join("run.sh")));
        assert_eq!(copied.files, 3);
        assert_eq!(copied.bytes, 15);
        assert_eq!(std::fs::read(to.join("a/b/file")).unwrap(), b"12345");
        assert_eq!(
            std::fs::read_link(to.join("link")).unwrap(),
            Path::new("a/b/file")
        );
        let mode = std::fs::metadata(to.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        // Copying again over the first copy replaces it.
        std::fs::write(from.join("a/b/file"), b"changed").unwrap();
        copy_tree(&from, &to).unwrap();
        assert_eq!(std::fs::read(to.join("a/b/file")).unwrap(), b"changed");
        // A link where a file is copied is replaced, never written through.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"mine").unwrap();
        std::fs::remove_file(to.join("run.sh")).unwrap();
        std::os::unix::fs::symlink(&outside, to.join("run.sh")).unwrap();
        copy_tree(&from, &to).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"mine");
        assert!(
            std::fs::symlink_metadata(to.join("run.sh"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read(to.join("run.sh")).unwrap(), b"#!/bin/sh\n");
    }
}
