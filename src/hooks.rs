//! Installing the review hooks of `hooks/` (`git massgen hooks install|uninstall`)
//! into the repository's hooks directory, chained after any hook already there, and takes
//! them out again, putting back what was there.
//!
//! The hooks directory is the one git itself runs hooks from (`git rev-parse --git-path
//! hooks`), so `core.hooksPath` and linked worktrees are honoured. A hook is *ours* when it
//! is a regular file with the marker line [`MARKER`]; anything else at that name (a file, a
//! symlink, a hook manager's script) is *foreign*. Installing over a foreign hook keeps it as
//! `NAME.pre-massgen` (a hard link or a rename: content, mode and symlink-ness exactly as they
//! were); our script runs it first with the same arguments and stdin and stops when it fails.
//! Uninstalling renames it back.
//!
//! What this command must never do: lose or change a hook it did not write. Every check is
//! made for all selected hooks before anything is touched; our script is written to a
//! temporary file and renamed into place, so a kill never leaves half a hook; and when one
//! hook of several fails on the file system, the ones already done are undone.
//!
//! Exit codes: 0 done (including "already installed" and "not installed"); 2 (usage) when
//! the hooks directory's state needs the user's decision: a `NAME.pre-massgen` that is in
//! the way, or a foreign hook that `uninstall` will not touch; 3 outside a repository; 4
//! when git or the file system fails.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::git::cmd::Git;

/// The line that marks a hook as ours.
pub const MARKER: &str = "# git-massgen review hook";

/// What a chained hook's name ends with.
pub const CHAINED_SUFFIX: &str = ".pre-massgen";

/// A hook we ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Reviews the staged change.
    PreCommit,
    /// Reviews the pushed commits.
    PrePush,
}

impl Hook {
    /// Every hook we ship, in the order they are reported.
    pub const ALL: [Hook; 2] = [Hook::PreCommit, Hook::PrePush];

    /// The file name git looks for.
    pub fn name(self) -> &'static str {
        match self {
            Hook::PreCommit => "pre-commit",
            Hook::PrePush => "pre-push",
        }
    }

    /// The shipped script, byte for byte.
    pub fn script(self) -> &'static str {
        match self {
            Hook::PreCommit => include_str!("../hooks/pre-commit"),
            Hook::PrePush => include_str!("../hooks/pre-push"),
        }
    }

    /// The name the hook that was here before ours is kept under.
    pub fn chained_name(self) -> String {
        format!("{}{CHAINED_SUFFIX}", self.name())
    }
}

/// Errors of installing and removing hooks.
#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    /// A foreign hook is in the way and so is the name it would be kept under.
    #[error("cannot install the {hook} hook: {} already exists", path.display())]
    ChainedExists { hook: &'static str, path: PathBuf },
    /// `uninstall` found a hook that is not ours.
    #[error("{} is not a git-massgen hook; leaving it alone", path.display())]
    Foreign { path: PathBuf },
    /// The hooks directory belongs to a hook manager that finds its scripts by the name the
    /// hook was started as, which chaining would change.
    #[error("the hooks directory {} is managed by {manager}", dir.display())]
    Managed { dir: PathBuf, manager: &'static str },
    /// `git rev-parse --git-path hooks` failed.
    #[error("cannot find the hooks directory")]
    HooksDir(#[source] crate::git::GitError),
    /// The file system failed.
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl HooksError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> HooksError {
        let path = path.to_owned();
        move |source| HooksError::Io { what, path, source }
    }
}

/// What was done to one hook (`--json`'s `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Ours written where there was none, or where a foreign hook was (then `chained`).
    Installed,
    /// An older version of ours replaced.
    Updated,
    /// Ours already there, unchanged.
    AlreadyInstalled,
    /// Ours removed (and the chained hook put back when `chained`).
    Removed,
    /// Nothing of ours there; nothing done.
    NotInstalled,
}

/// One hook's outcome. `chained`: after install, whether an earlier hook (kept as
/// `NAME.pre-massgen`) runs before ours; after uninstall, whether it was put back.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The hook's file name.
    pub name: &'static str,
    /// What was done.
    pub action: Action,
    /// Whether an earlier hook runs before ours (install), or was put back (uninstall).
    pub chained: bool,
}

/// The directory git runs hooks from, absolute, created when missing. `--git-path` honours
/// `core.hooksPath` (relative to the work tree's top, where git runs hooks) and resolves a
/// linked worktree's hooks to the common directory's.
pub fn hooks_dir(workdir: &Path) -> Result<PathBuf, HooksError> {
    let out = Git::new(workdir)
        .args(["rev-parse", "--git-path", "hooks"])
        .run()
        .map_err(HooksError::HooksDir)?;
    let text = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
    let dir = workdir.join(OsStr::from_bytes(text));
    fs::create_dir_all(&dir).map_err(HooksError::io("cannot create", &dir))?;
    Ok(dir)
}

/// What is at a hook's name.
enum Existing {
    Absent,
    /// Ours, with its content and permissions (to undo a change).
    Ours(Vec<u8>, fs::Permissions),
    Foreign,
}

fn existing(path: &Path) -> Result<Existing, HooksError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Absent),
        Err(e) => return Err(HooksError::io("cannot read", path)(e)),
    };
    if !meta.file_type().is_file() {
        return Ok(Existing::Foreign);
    }
    let content = fs::read(path).map_err(HooksError::io("cannot read", path))?;
    if is_ours(&content) {
        Ok(Existing::Ours(content, meta.permissions()))
    } else {
        Ok(Existing::Foreign)
    }
}

/// Whether a hook's content carries our marker line.
fn is_ours(content: &[u8]) -> bool {
    content
        .split(|&b| b == b'\n')
        .any(|line| line.trim_ascii() == MARKER.as_bytes())
}

/// Whether anything (a dangling symlink included) is at `path`.
fn exists(path: &Path) -> Result<bool, HooksError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(HooksError::io("cannot read", path)(e)),
    }
}

/// What one hook needs, decided before anything is touched.
enum Step {
    /// Install: nothing there; write ours.
    Write,
    /// Install: an older version of ours (kept to undo); write ours.
    Rewrite(Vec<u8>, fs::Permissions),
    /// Install: a foreign hook; keep it as `NAME.pre-massgen`, write ours.
    Chain,
    /// Install: ours already there.
    Keep,
    /// Uninstall: ours (kept to undo); remove it, restoring a chained hook.
    Remove(Vec<u8>, fs::Permissions),
    /// Uninstall: nothing there.
    Nothing,
}

/// One hook's step, with what it takes to undo it.
struct Planned {
    hook: Hook,
    step: Step,
    chained: bool,
}

/// Installs `hooks` into `dir`: all or none.
/// The hook manager owning `dir`, if one does. husky runs `.husky/<name>` by the basename of
/// `$0`: a chained hook renamed to `<name>.pre-massgen` would silently find nothing to run.
fn manager(dir: &Path) -> Option<&'static str> {
    let husky = dir.join("h").is_file()
        || dir.join("husky.sh").is_file()
        || dir.join("_").join("husky.sh").is_file()
        || dir.components().any(|c| c.as_os_str() == ".husky");
    husky.then_some("husky")
}

pub fn install(dir: &Path, hooks: &[Hook]) -> Result<Vec<Outcome>, HooksError> {
    if let Some(manager) = manager(dir) {
        return Err(HooksError::Managed {
            dir: dir.to_owned(),
            manager,
        });
    }
    apply(dir, plan_install(dir, hooks)?, install_step)
}

/// Checks every hook and decides its install step; touches nothing.
fn plan_install(dir: &Path, hooks: &[Hook]) -> Result<Vec<Planned>, HooksError> {
    let mut plan = Vec::new();
    for &hook in hooks {
        let path = dir.join(hook.name());
        let chained_path = dir.join(hook.chained_name());
        let chained = exists(&chained_path)?;
        let step = match existing(&path)? {
            Existing::Absent => Step::Write,
            // Same script, still executable (git skips a hook that is not).
            Existing::Ours(content, perms)
                if content == hook.script().as_bytes() && perms.mode() & 0o111 != 0 =>
            {
                Step::Keep
            }
            Existing::Ours(content, perms) => Step::Rewrite(content, perms),
            Existing::Foreign if chained => {
                return Err(HooksError::ChainedExists {
                    hook: hook.name(),
                    path: chained_path,
                });
            }
            Existing::Foreign => Step::Chain,
        };
        let chained = chained || matches!(step, Step::Chain);
        plan.push(Planned {
            hook,
            step,
            chained,
        });
    }
    Ok(plan)
}

/// Does one planned install step.
fn install_step(dir: &Path, done: &Planned) -> Result<(), HooksError> {
    let path = dir.join(done.hook.name());
    match &done.step {
        Step::Write | Step::Rewrite(..) => write_atomically(&path, done.hook.script(), None),
        Step::Chain => chain_and_write(dir, done.hook),
        _ => Ok(()),
    }
}

/// Removes `hooks` from `dir`, restoring chained hooks: all or none.
pub fn uninstall(dir: &Path, hooks: &[Hook]) -> Result<Vec<Outcome>, HooksError> {
    apply(dir, plan_uninstall(dir, hooks)?, uninstall_step)
}

/// Checks every hook and decides its uninstall step; touches nothing.
fn plan_uninstall(dir: &Path, hooks: &[Hook]) -> Result<Vec<Planned>, HooksError> {
    let mut plan = Vec::new();
    for &hook in hooks {
        let path = dir.join(hook.name());
        let (step, chained) = match existing(&path)? {
            Existing::Absent => (Step::Nothing, false),
            Existing::Foreign => return Err(HooksError::Foreign { path }),
            Existing::Ours(content, perms) => (
                Step::Remove(content, perms),
                exists(&dir.join(hook.chained_name()))?,
            ),
        };
        plan.push(Planned {
            hook,
            step,
            chained,
        });
    }
    Ok(plan)
}

/// Does one planned uninstall step.
fn uninstall_step(dir: &Path, done: &Planned) -> Result<(), HooksError> {
    let path = dir.join(done.hook.name());
    match &done.step {
        // The rename replaces ours in one step: never a moment without a hook.
        Step::Remove(..) if done.chained => {
            let from = dir.join(done.hook.chained_name());
            fs::rename(&from, &path).map_err(HooksError::io("cannot restore", &from))
        }
        Step::Remove(..) => fs::remove_file(&path).map_err(HooksError::io("cannot remove", &path)),
        _ => Ok(()),
    }
}

/// Does each planned step; when one fails, undoes the ones done before it (best effort: the
/// first error is the one reported).
fn apply(
    dir: &Path,
    plan: Vec<Planned>,
    mut step: impl FnMut(&Path, &Planned) -> Result<(), HooksError>,
) -> Result<Vec<Outcome>, HooksError> {
    let mut done: Vec<Planned> = Vec::new();
    for d in plan {
        if let Err(e) = step(dir, &d) {
            for d in done.iter().rev() {
                let _ = undo(dir, d);
            }
            return Err(e);
        }
        done.push(d);
    }
    Ok(done
        .into_iter()
        .map(|d| Outcome {
            name: d.hook.name(),
            action: match d.step {
                Step::Write | Step::Chain => Action::Installed,
                Step::Rewrite(..) => Action::Updated,
                Step::Keep => Action::AlreadyInstalled,
                Step::Remove(..) => Action::Removed,
                Step::Nothing => Action::NotInstalled,
            },
            chained: d.chained,
        })
        .collect())
}

/// Puts back what was at a hook's name before `d` was done.
fn undo(dir: &Path, d: &Planned) -> Result<(), HooksError> {
    let path = dir.join(d.hook.name());
    let chained_path = dir.join(d.hook.chained_name());
    match &d.step {
        Step::Write => fs::remove_file(&path).map_err(HooksError::io("cannot remove", &path)),
        Step::Chain => {
            fs::rename(&chained_path, &path).map_err(HooksError::io("cannot restore", &path))
        }
        Step::Rewrite(content, perms) => write_atomically(&path, content, Some(perms.clone())),
        Step::Remove(content, perms) => {
            if d.chained {
                link_or_rename(&path, &chained_path)?;
            }
            write_atomically(&path, content, Some(perms.clone()))
        }
        Step::Keep | Step::Nothing => Ok(()),
    }
}

/// Keeps the foreign hook at `NAME` as `NAME.pre-massgen` and puts ours at `NAME`.
///
/// Ours is written to a temporary file first; the foreign hook is then hard-linked to its new
/// name (the same inode: content, mode and symlink-ness unchanged) and ours renamed over the
/// old name, so at every instant the name holds one complete hook or the other. Where hard
/// links are not supported, a rename does the same with a moment in between.
fn chain_and_write(dir: &Path, hook: Hook) -> Result<(), HooksError> {
    let path = dir.join(hook.name());
    let chained_path = dir.join(hook.chained_name());
    let temp = temp_with(dir, hook.script().as_bytes(), None)?;
    link_or_rename(&path, &chained_path)?;
    if let Err(e) = temp.persist(&path) {
        let err = HooksError::io("cannot write", &path)(e.error);
        // Back as it was: the foreign hook at its name, nothing at the chained name.
        if exists(&path).unwrap_or(false) {
            let _ = fs::remove_file(&chained_path);
        } else {
            let _ = fs::rename(&chained_path, &path);
        }
        return Err(err);
    }
    Ok(())
}

/// Gives `from` the additional name `to` (which must not exist) and drops the old one only
/// when linking is impossible. Afterwards `to` is the hook; `from` may still name it.
fn link_or_rename(from: &Path, to: &Path) -> Result<(), HooksError> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(HooksError::io("cannot keep the existing hook as", to)(e))
        }
        Err(_) => fs::rename(from, to).map_err(HooksError::io("cannot rename", from)),
    }
}

/// Writes `content` to `path` through a temporary file in the same directory and a rename,
/// with `perms` (0755 when `None`).
fn write_atomically(
    path: &Path,
    content: impl AsRef<[u8]>,
    perms: Option<fs::Permissions>,
) -> Result<(), HooksError> {
    let dir = path.parent().expect("a hook path has a directory");
    let temp = temp_with(dir, content.as_ref(), perms)?;
    temp.persist(path)
        .map_err(|e| HooksError::io("cannot write", path)(e.error))?;
    Ok(())
}

/// A temporary file in `dir` holding `content`, flushed to disk, with `perms` (0755 when
/// `None`); removed when dropped unless persisted.
fn temp_with(
    dir: &Path,
    content: &[u8],
    perms: Option<fs::Permissions>,
) -> Result<tempfile::NamedTempFile, HooksError> {
    let perms = perms.unwrap_or_else(|| fs::Permissions::from_mode(0o755));
    crate::sys::temp_with(dir, ".massgen-hook-", content, Some(perms))
        .map_err(HooksError::io("cannot write in", dir))
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    #[test]
    fn shipped_scripts_carry_the_marker() {
        for hook in Hook::ALL {
            assert!(is_ours(hook.script().as_bytes()), "{}", hook.name());
            assert!(hook.script().starts_with("#!/bin/sh\n"));
        }
        assert!(!is_ours(
            b"#!/bin/sh\n# not git-massgen review hook\nexit 0\n"
        ));
    }

    fn failing_on_pre_push(
        step: fn(&Path, &Planned) -> Result<(), HooksError>,
    ) -> impl FnMut(&Path, &Planned) -> Result<(), HooksError> {
        move |dir, p| match p.hook {
            Hook::PrePush => Err(HooksError::io("cannot write", dir)(io::Error::other(
                "full",
            ))),
            Hook::PreCommit => step(dir, p),
        }
    }

    /// The names in `dir` with their content (a symlink's target) and mode.
    fn listing(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
        let mut out: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let content = if meta.file_type().is_symlink() {
                    fs::read_link(&path).unwrap().into_os_string().into_vec()
                } else {
                    fs::read(&path).unwrap()
                };
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, content, meta.permissions().mode())
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_failed_install_undoes_the_hooks_done_before() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // Nothing there: the first hook written is removed again.
        let plan = plan_install(dir, &Hook::ALL).unwrap();
        assert!(apply(dir, plan, failing_on_pre_push(install_step)).is_err());
        assert_eq!(listing(dir), vec![]);
        // A foreign hook: chained, then put back.
        fs::write(dir.join("pre-commit"), "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(dir.join("pre-commit"), fs::Permissions::from_mode(0o700)).unwrap();
        let before = listing(dir);
        let plan = plan_install(dir, &Hook::ALL).unwrap();
        assert!(apply(dir, plan, failing_on_pre_push(install_step)).is_err());
        assert_eq!(listing(dir), before);
        // An older version of ours: rewritten, then put back.
        fs::write(
            dir.join("pre-commit"),
            format!("#!/bin/sh\n{MARKER}\nold\n"),
        )
        .unwrap();
        let before = listing(dir);
        let plan = plan_install(dir, &Hook::ALL).unwrap();
        assert!(apply(dir, plan, failing_on_pre_push(install_step)).is_err());
        assert_eq!(listing(dir), before);
    }

    #[test]
    fn a_failed_uninstall_undoes_the_hooks_done_before() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::os::unix::fs::symlink("/bin/true", dir.join("pre-commit")).unwrap();
        install(dir, &Hook::ALL).unwrap();
        let before = listing(dir);
        assert_eq!(before.len(), 3, "{before:?}");
        let plan = plan_uninstall(dir, &Hook::ALL).unwrap();
        assert!(apply(dir, plan, failing_on_pre_push(uninstall_step)).is_err());
        assert_eq!(listing(dir), before);
        // And for real: back to the symlink alone.
        uninstall(dir, &Hook::ALL).unwrap();
        assert_eq!(
            listing(dir).into_iter().map(|e| e.0).collect::<Vec<_>>(),
            vec!["pre-commit"]
        );
        assert_eq!(
            fs::read_link(dir.join("pre-commit")).unwrap(),
            Path::new("/bin/true")
        );
    }
}
