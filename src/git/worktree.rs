//! Linked worktrees for candidates: registered atomically by us and checked out in
//! parallel with gix, marked ready once complete, removed with gix (falling back to
//! `git worktree remove` when gix refuses), and repaired when an agent deleted or replaced
//! its `.git` file.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::cmd::Git;
use super::{GitError, GixContext, ObjectId, Repo};

/// A worktree to create: a new branch at the base, checked out at `path`.
#[derive(Debug, Clone)]
pub struct NewWorktree {
    /// Full ref name of the branch, `refs/heads/massgen/<run>/<agent>`.
    pub branch: String,
    /// Where the work tree goes; must not exist or be empty.
    pub path: PathBuf,
}

/// Creates one branch per item at `base`, then checks out all worktrees in parallel, and
/// returns their paths. On failure everything created so far is removed again.
pub fn create_all(
    repo: &Repo,
    base: ObjectId,
    items: &[NewWorktree],
    interrupt: &AtomicBool,
) -> Result<Vec<PathBuf>, GitError> {
    let mut made_branches = Vec::new();
    for item in items {
        if let Err(e) = repo.set_ref(&item.branch, base, None, "massgen: create candidate branch") {
            rollback(repo, &made_branches, &[]);
            return Err(e);
        }
        made_branches.push(item.branch.clone());
    }
    attach_all(repo, items, interrupt).inspect_err(|_| rollback(repo, &made_branches, &[]))
}

/// Checks out worktrees for branches that already exist (a run continued after its
/// worktrees were removed). On failure the worktrees created so far are removed again.
pub fn attach_all(
    repo: &Repo,
    items: &[NewWorktree],
    interrupt: &AtomicBool,
) -> Result<Vec<PathBuf>, GitError> {
    // Registration is quick and sequential; checkout, the slow part, runs in parallel.
    let mut registered = Vec::new();
    let mut results: Vec<Result<PathBuf, GitError>> = Vec::new();
    for item in items {
        match register(repo, &item.path, &format!("ref: {}", item.branch)) {
            Ok(_) => registered.push(item),
            Err(e) => results.push(Err(e)),
        }
    }
    crate::sys::kill_point("worktrees-registered");
    let checked_out: Vec<Result<PathBuf, GitError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = registered
            .iter()
            .map(|item| {
                scope.spawn(move || {
                    checkout(repo, &item.path, interrupt).map(|()| item.path.clone())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(GitError::Other("worktree thread panicked".into())))
            })
            .collect()
    });
    results.extend(checked_out);
    if let Some(i) = results.iter().position(Result::is_err) {
        for item in &registered {
            let _ = remove(repo, &item.path);
        }
        return Err(results.swap_remove(i).expect_err("an error"));
    }
    Ok(results.into_iter().flatten().collect())
}

/// Checks out `commit` with a detached HEAD at `path` (a read-only view: a review). No
/// branch is created; remove it with [`remove`] or [`discard`].
pub fn create_detached(
    repo: &Repo,
    commit: ObjectId,
    path: &Path,
    interrupt: &AtomicBool,
) -> Result<(), GitError> {
    register(repo, path, &commit.to_string())?;
    checkout(repo, path, interrupt).inspect_err(|_| {
        let _ = remove(repo, path);
    })
}

/// Registers the copy-on-write worktree of `branch` (full ref name) whose merged tree appears
/// at `target` inside its agent's namespace, over the checkout `lower` (a registered
/// worktree at the base), with its changes in `upper`. Outside the namespace `target` stays
/// empty: the `.git` file goes into `upper` (so the merged tree shows it), the registration
/// gets `lower`'s index (so `git status` inside sees a clean tree), is marked ready, and is
/// locked, so that `git worktree prune` never takes it for a deleted worktree. Remove it with
/// [`unregister_overlay`]. Returns the registration directory.
pub fn register_overlay(
    repo: &Repo,
    target: &Path,
    upper: &Path,
    lower: &Path,
    branch: &str,
) -> Result<PathBuf, GitError> {
    // Named by its `.git` file: no search through every registration, once per agent.
    let lower_admin = git_dir_of(lower).ok_or_else(|| {
        GitError::Other(format!("{} is not a registered worktree", lower.display()))
    })?;
    let admin = register(repo, target, &format!("ref: {branch}"))?;
    let done = (|| {
        std::fs::rename(target.join(".git"), upper.join(".git"))?;
        std::fs::copy(lower_admin.join("index"), admin.join("index"))?;
        std::fs::write(
            admin.join("locked"),
            "git-massgen: a copy-on-write worktree, visible in its agent's namespace only\n",
        )?;
        std::fs::File::create(admin.join(READY_FILE)).and_then(|f| f.sync_all())
    })();
    done.map_err(|source| {
        let _ = std::fs::remove_file(target.join(".git"));
        let _ = std::fs::remove_dir_all(&admin);
        GitError::Io {
            what: "cannot register the copy-on-write worktree",
            path: target.to_owned(),
            source,
        }
    })?;
    Ok(admin)
}

/// The private git directory that the `.git` file in `dir` names (`gitdir: …`), if any.
pub fn git_dir_of(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dir.join(".git")).ok()?;
    let named = Path::new(text.trim().strip_prefix("gitdir: ")?);
    Some(dir.join(named))
}

/// Removes the registration of the copy-on-write worktree at `target` and its (empty)
/// directory; its layers are the caller's.
pub fn unregister_overlay(repo: &Repo, target: &Path) -> Result<(), GitError> {
    if let Some(admin) = registration(repo, target) {
        match std::fs::remove_dir_all(&admin) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(GitError::Io {
                    what: "cannot remove the worktree's registration",
                    path: admin,
                    source: e,
                });
            }
            _ => {}
        }
    }
    match std::fs::remove_dir(target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(GitError::Io {
            what: "cannot remove the worktree directory",
            path: target.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Registers a linked worktree at `path` whose HEAD is `head` (`ref: <branch>` or a commit
/// id), as `git worktree add --no-checkout` does, but atomically: the registration's files
/// are written in a staging directory beside `worktrees/` and renamed into it in one step
/// (never over an existing one), so that git, gix and concurrent git-massgen processes
/// never read a half-written registration, and a crash never leaves one without a valid
/// HEAD. Then `path/.git` points at it. Returns the registration directory.
fn register(repo: &Repo, path: &Path, head: &str) -> Result<PathBuf, GitError> {
    fn io(what: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> GitError {
        let path = p.to_owned();
        move |source| GitError::Io { what, path, source }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io("cannot create the worktree directory", parent))?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let empty = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
            if !empty {
                return Err(GitError::Other(format!(
                    "cannot create worktree {}: the directory exists and is not empty",
                    path.display()
                )));
            }
        }
        Err(e) => return Err(io("cannot create the worktree directory", path)(e)),
    }
    let path = std::fs::canonicalize(path).map_err(io("cannot resolve", path))?;
    let leaf: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "worktree".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let staging_root = repo.common_dir.join("massgen-registering");
    let staging = staging_root.join(format!("{leaf}-{}", crate::sys::unique()));
    std::fs::create_dir_all(&staging).map_err(io("cannot register the worktree", &staging))?;
    let written = [
        ("HEAD", format!("{head}\n")),
        ("commondir", "../..\n".to_owned()),
        ("gitdir", format!("{}\n", path.join(".git").display())),
    ]
    .iter()
    .try_for_each(|(name, text)| std::fs::write(staging.join(name), text));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io("cannot register the worktree", &staging)(e));
    }
    let worktrees = repo.common_dir.join("worktrees");
    let _ = std::fs::create_dir_all(&worktrees);
    let mut admin = None;
    for n in 0..1000 {
        let name = if n == 0 {
            leaf.clone()
        } else {
            format!("{leaf}{n}")
        };
        let target = worktrees.join(&name);
        match rename_noreplace(&staging, &target) {
            Ok(()) => {
                admin = Some(target);
                break;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    || e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(io("cannot register the worktree", &target)(e));
            }
        }
    }
    let Some(admin) = admin else {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(GitError::Other(format!(
            "cannot register worktree {}: no free name under {}",
            path.display(),
            worktrees.display()
        )));
    };
    // The staging directory itself stays: removing it could race with another process
    // about to stage a registration in it.
    if let Err(e) = write_gitfile(&path.join(".git"), &admin) {
        let _ = std::fs::remove_dir_all(&admin);
        return Err(e);
    }
    Ok(admin)
}

/// `rename` that fails instead of replacing an existing (even empty) directory.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE)
            .map_err(std::io::Error::from)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        if to.exists() {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        std::fs::rename(from, to)
    }
}

/// Checks out the tree of a registered worktree's HEAD into its empty directory and writes
/// its index, then marks it ready ([`READY_FILE`]).
fn checkout(repo: &Repo, path: &Path, interrupt: &AtomicBool) -> Result<(), GitError> {
    let what = || format!("cannot check out worktree {}", path.display());
    let wt = repo.open_worktree(path)?;
    let tree = wt.head_commit().ctx(what)?.tree_id().ctx(what)?.detach();
    let mut index = wt.index_from_tree(&tree).ctx(what)?;
    let mut options = wt
        .checkout_options(gix::worktree::stack::state::attributes::Source::IdMapping)
        .ctx(what)?;
    options.destination_is_initially_empty = true;
    let objects = wt.objects.clone().into_arc().ctx(what)?;
    let progress = gix::progress::Discard;
    gix::worktree::state::checkout(
        &mut index, path, objects, &progress, &progress, interrupt, options,
    )
    .ctx(what)?;
    index.write(Default::default()).ctx(what)?;
    crate::sys::kill_point("worktree-checked-out");
    record_pristine_index(&wt);
    mark_ready(&wt)
}

/// Name of the file, in a candidate worktree's private git directory, that holds the checksum
/// of the index as it was checked out. While the index still has that checksum the agent
/// has not staged or committed anything, and a snapshot can skip comparing HEAD with the
/// index (a tree-wide diff).
pub const PRISTINE_INDEX_FILE: &str = "massgen-pristine-index";

fn record_pristine_index(wt: &gix::Repository) {
    if let Ok(index) = wt.index()
        && let Some(checksum) = index.checksum()
    {
        // Only an optimisation: a missing file makes snapshots take the full path.
        let _ = std::fs::write(wt.git_dir().join(PRISTINE_INDEX_FILE), checksum.to_string());
    }
}

/// Name of the file, in a candidate worktree's private git directory, written once its
/// checkout is complete. Only a worktree that has it can hold an agent's work: one whose
/// checkout was cut short (a crash while the worktrees were made) lacks files that the base
/// has, and a snapshot of it would record their deletion.
pub const READY_FILE: &str = "massgen-ready";

/// Name of the file, in a worktree's private git directory, that lists the paths (one per
/// line, relative to the worktree) linked to the user's own ignored directories
/// (`[worktree] share`). Snapshots leave them out: the link is no work of the agent's.
pub const SHARED_FILE: &str = "massgen-shared";

/// Records `links` as [`SHARED_FILE`] of the worktree at `path`.
pub fn record_shared(repo: &Repo, path: &Path, links: &[String]) -> Result<(), GitError> {
    let admin = registration(repo, path).ok_or_else(|| {
        GitError::Other(format!("{} is not a registered worktree", path.display()))
    })?;
    let file = admin.join(SHARED_FILE);
    let mut text = links.join("\n");
    text.push('\n');
    crate::sys::write_atomic(&file, text.as_bytes()).map_err(|source| GitError::Io {
        what: "cannot record the shared links of",
        path: file,
        source,
    })
}

/// The paths [`record_shared`] recorded in the worktree whose private git directory is
/// `git_dir`.
pub fn shared_links(git_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(git_dir.join(SHARED_FILE))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn mark_ready(wt: &gix::Repository) -> Result<(), GitError> {
    let path = wt.git_dir().join(READY_FILE);
    let file = std::fs::File::create(&path).and_then(|f| f.sync_all());
    file.map_err(|source| GitError::Io {
        what: "cannot mark the worktree as checked out",
        path,
        source,
    })
}

/// Whether the worktree at `path` was completely checked out: it is registered and its
/// registration carries [`READY_FILE`]. Worktrees made by earlier versions (with gix's
/// `add_worktree`) count as complete when gix finished them: its `locked` file, written
/// while a worktree is being added, is gone and the index exists.
pub fn is_ready(repo: &Repo, path: &Path) -> bool {
    let Some(admin) = registration(repo, path) else {
        return false;
    };
    admin.join(READY_FILE).is_file()
        || (!admin.join("locked").exists() && admin.join("index").is_file())
}

fn rollback(repo: &Repo, branches: &[String], paths: &[PathBuf]) {
    for p in paths {
        let _ = remove(repo, p);
    }
    for b in branches {
        let _ = repo.delete_ref(b);
    }
}

/// Removes a linked worktree and its registration, discarding whatever is in it
/// (callers snapshot first). A worktree whose directory is already gone is pruned.
pub fn remove(repo: &Repo, path: &Path) -> Result<(), GitError> {
    let local = repo.local();
    let via_gix = local.remove_worktree(
        path,
        gix::worktree::remove::Force::DiscardChanges,
        gix::progress::Discard,
    );
    if via_gix.is_ok() && !path.exists() {
        return Ok(());
    }
    if path.exists() {
        let out = Git::new(&repo.workdir)
            .args(["worktree", "remove", "--force", "--force"])
            .arg(path)
            .output()?;
        if !out.status.success() && path.exists() {
            // Not (or no longer) a registered worktree: it is our own directory, delete it.
            std::fs::remove_dir_all(path).map_err(|source| GitError::Io {
                what: "cannot remove worktree directory",
                path: path.to_owned(),
                source,
            })?;
        }
    }
    Git::new(&repo.workdir).args(["worktree", "prune"]).run()?;
    Ok(())
}

/// Detaches a worktree without waiting for its files to be deleted: the directory is renamed
/// into `trash` (same file system, so it is one syscall), then its registration
/// (`admin_dir`, under the common dir's `worktrees/`) is removed, which is what
/// `git worktree prune` does for a worktree whose directory is gone. Deleting `trash` is
/// left to the caller, typically in the background. Falls back to [`remove`].
pub fn discard(repo: &Repo, path: &Path, trash: &Path) -> Result<(), GitError> {
    let Some(admin_dir) = registration(repo, path) else {
        return remove(repo, path);
    };
    let admin_dir = admin_dir.as_path();
    if path.exists() {
        // Only a directory that is this very worktree is moved: its `.git` file must point
        // at `admin_dir`. Anything else goes through `git worktree remove`, which checks.
        if !gitfile_points_to(path, admin_dir) {
            return remove(repo, path);
        }
        std::fs::create_dir_all(trash).map_err(|source| GitError::Io {
            what: "cannot create the trash directory",
            path: trash.to_owned(),
            source,
        })?;
        let leaf = path
            .strip_prefix(trash.parent().unwrap_or(trash))
            .map(|p| p.to_string_lossy().replace('/', "-"))
            .unwrap_or_else(|_| "worktree".into());
        let target = trash.join(format!("{leaf}-{}", crate::sys::unique()));
        if std::fs::rename(path, &target).is_err() {
            return remove(repo, path);
        }
    }
    match std::fs::remove_dir_all(admin_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GitError::Io {
            what: "cannot remove the worktree's registration",
            path: admin_dir.to_owned(),
            source,
        }),
    }
}

fn gitfile_points_to(path: &Path, admin_dir: &Path) -> bool {
    let same = |a: &Path, b: &Path| {
        a == b
            || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    };
    std::fs::read_to_string(path.join(".git")).is_ok_and(|text| {
        text.trim()
            .strip_prefix("gitdir:")
            .is_some_and(|p| same(Path::new(p.trim()), admin_dir))
    })
}

/// The registration of the worktree at `path`, when the two still point at each other: the
/// registration names `path`, and `path/.git` names the registration. Only then may git be
/// run in `path` as that worktree (with `--git-dir` set to the registration): a worktree
/// whose `.git` was deleted or replaced would otherwise resolve to an enclosing repository.
pub fn intact_registration(repo: &Repo, path: &Path) -> Option<PathBuf> {
    registration(repo, path).filter(|admin| gitfile_points_to(path, admin))
}

/// The registration (`<common dir>/worktrees/<name>`) whose `gitdir` file names the worktree
/// at `path`, found by reading the registrations (git's own way to repair a worktree).
pub fn registration(repo: &Repo, path: &Path) -> Option<PathBuf> {
    let want = std::fs::canonicalize(path).ok()?.join(".git");
    registrations(repo)
        .into_iter()
        .find(|r| {
            r.gitdir == want || std::fs::canonicalize(&r.path).is_ok_and(|p| p.join(".git") == want)
        })
        .map(|r| r.admin)
}

/// One registered linked worktree, as its files under `<common dir>/worktrees/` say.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The registration's directory.
    pub admin: PathBuf,
    /// What its `gitdir` file names: the worktree's `.git`.
    pub gitdir: PathBuf,
    /// The worktree: the parent of `gitdir`.
    pub path: PathBuf,
    /// Its HEAD file: `ref: <branch>` or a commit id.
    pub head: String,
}

impl Registration {
    /// The branch its HEAD names, if it is on one.
    pub fn branch(&self) -> Option<&str> {
        self.head.strip_prefix("ref: ")
    }
}

/// Every registration of this repository (those whose `gitdir` cannot be read are skipped).
pub fn registrations(repo: &Repo) -> Vec<Registration> {
    let Ok(entries) = std::fs::read_dir(repo.common_dir.join("worktrees")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let admin = e.path();
            let gitdir = PathBuf::from(std::fs::read_to_string(admin.join("gitdir")).ok()?.trim());
            let path = gitdir.parent()?.to_owned();
            let head = std::fs::read_to_string(admin.join("HEAD")).unwrap_or_default();
            Some(Registration {
                head: head.trim().to_owned(),
                admin,
                gitdir,
                path,
            })
        })
        .collect()
}

/// Puts back the `.git` file of a worktree whose agent deleted it. Returns whether a repair
/// was needed; a `.git` that was replaced by something else is an error.
pub fn repair_gitfile(path: &Path, admin_dir: &Path) -> Result<bool, GitError> {
    let gitfile = path.join(".git");
    match std::fs::symlink_metadata(&gitfile) {
        Ok(meta) if meta.is_file() => {
            if gitfile_points_to(path, admin_dir) {
                return Ok(false);
            }
            write_gitfile(&gitfile, admin_dir)?;
            Ok(true)
        }
        Ok(meta) => {
            // A directory (the agent ran `git init` there) or a link (perhaps to the user's
            // repository): moved beside the worktree, never followed, and the `.git` file
            // written again, so that the agent's files can still be snapshotted.
            let aside = path.with_file_name(format!(
                ".{}.replaced-git-{}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                crate::sys::unique()
            ));
            let moved = if meta.is_symlink() {
                std::fs::remove_file(&gitfile)
            } else {
                std::fs::rename(&gitfile, &aside)
            };
            moved.map_err(|source| GitError::Io {
                what: "cannot move aside the directory or link that replaced the worktree's .git",
                path: gitfile.clone(),
                source,
            })?;
            write_gitfile(&gitfile, admin_dir)?;
            Ok(true)
        }
        Err(_) if path.is_dir() => {
            write_gitfile(&gitfile, admin_dir)?;
            Ok(true)
        }
        Err(_) => Err(GitError::Other(format!(
            "worktree {} no longer exists",
            path.display()
        ))),
    }
}

fn write_gitfile(gitfile: &Path, admin_dir: &Path) -> Result<(), GitError> {
    std::fs::write(gitfile, format!("gitdir: {}\n", admin_dir.display())).map_err(|source| {
        GitError::Io {
            what: "cannot repair the worktree's .git file",
            path: gitfile.to_owned(),
            source,
        }
    })
}

/// The registered worktrees of this repository whose directory lies under `dir`, with the
/// branch their HEAD names (if any): what a run left when its state is gone.
pub fn registered_under(repo: &Repo, dir: &Path) -> Vec<(PathBuf, Option<String>)> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Option<String>)> = registrations(repo)
        .into_iter()
        .filter_map(|r| {
            let path = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
            path.starts_with(&dir)
                .then(|| (path, r.branch().map(str::to_owned)))
        })
        .collect();
    out.sort();
    out
}
