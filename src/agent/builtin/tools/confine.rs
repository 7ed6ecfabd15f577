//! Confinement of path arguments to the worktree: lexical `..`, then each symlink on the
//! way resolved and checked; and the walker that list_files and search share, which never
//! leaves the worktree either (no symlinks followed, no ignore files read from above it).

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use ignore::WalkBuilder;

use super::{ToolError, Tools, io_error};

/// A path argument after confinement: the real location and its worktree-relative form.
pub(super) struct Resolved {
    pub(super) abs: PathBuf,
    pub(super) rel: String,
}

impl Tools {
    /// Confines a path argument to the worktree. The argument itself never reaches the OS:
    /// `..` is applied lexically, then each existing component is looked at, and a
    /// symlink is replaced by its canonical target, which must lie inside the root.
    pub(super) fn resolve(&self, arg: &str) -> Result<Resolved, ToolError> {
        let outside = || ToolError::Outside(arg.to_owned());
        let mut parts: Vec<&OsStr> = Vec::new();
        for component in Path::new(arg).components() {
            match component {
                Component::Prefix(_) | Component::RootDir => return Err(outside()),
                Component::CurDir => {}
                Component::ParentDir => _ = parts.pop().ok_or_else(outside)?,
                Component::Normal(name) => parts.push(name),
            }
        }
        if parts.iter().any(|part| *part == ".git") {
            return Err(ToolError::Git(arg.to_owned()));
        }
        let mut abs = self.root.clone();
        let mut rest = parts.into_iter();
        while let Some(name) = rest.next() {
            let next = abs.join(name);
            match fs::symlink_metadata(&next) {
                Ok(meta) if meta.file_type().is_symlink() => match fs::canonicalize(&next) {
                    Ok(target) if target.starts_with(&self.root) => abs = target,
                    Ok(_) => return Err(outside()),
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        // Writing through it would create its target: refuse it, and say
                        // so plainly when that target is outside.
                        let target = fs::read_link(&next).map_err(io_error(arg))?;
                        if lexical(&abs.join(target)).starts_with(&self.root) {
                            return Err(ToolError::Dangling(arg.to_owned()));
                        }
                        return Err(outside());
                    }
                    Err(e) => return Err(io_error(arg)(e)),
                },
                Ok(_) => abs = next,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    // The rest does not exist yet, and it holds no `..`.
                    abs = next;
                    abs.extend(rest);
                    break;
                }
                Err(e) => return Err(io_error(arg)(e)),
            }
        }
        let rel = abs.strip_prefix(&self.root).map_err(|_| outside())?;
        if rel.components().any(|c| c.as_os_str() == ".git") {
            return Err(ToolError::Git(arg.to_owned()));
        }
        Ok(Resolved {
            rel: self.rel(&abs),
            abs,
        })
    }

    /// `path` relative to the root, `.` for the root itself.
    pub(super) fn rel(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }

    /// A walker over `start` that honours ignore files, shows hidden files, skips `.git`
    /// and never follows symlinks.
    pub(super) fn walker(&self, start: &Path) -> WalkBuilder {
        let mut builder = WalkBuilder::new(start);
        builder
            .hidden(false)
            .parents(false)
            .require_git(false)
            .git_global(false)
            .git_exclude(false)
            .follow_links(false)
            .filter_entry(|entry| entry.file_name() != ".git");
        // `parents(true)` would read ignore files above the worktree too (up to `/`
        // without a `.git` to stop it): add those between the root and `start` by hand,
        // outermost first so that deeper ones win.
        let mut dirs: Vec<&Path> = start
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&self.root))
            .collect();
        dirs.reverse();
        for file in dirs
            .iter()
            .flat_map(|d| [d.join(".gitignore"), d.join(".ignore")])
        {
            if file.is_file() {
                let _ = builder.add_ignore(file);
            }
        }
        builder
    }
}

/// Applies `.` and `..` without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => _ = out.pop(),
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
