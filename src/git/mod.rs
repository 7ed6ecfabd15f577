//! Repository access: discovery, revisions, refs, worktrees, snapshots, diffs and merges.
//!
//! gix does the work wherever it can (objects, refs, tree edits, tree diffs, in-memory
//! merges, worktree creation). The `git` binary is called only through [`cmd`] for what gix
//! cannot do yet: moving the user's work tree to a new commit, and reading the user's
//! work-tree status in exactly the way git itself sees it.

pub mod cmd;
pub mod diff;
mod filter;
pub mod guard;
pub mod merge;
pub mod overlay_snapshot;
pub mod snapshot;
pub mod worktree;

use std::path::{Path, PathBuf};

use gix::refs::transaction::PreviousValue;

/// Errors of repository operations.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("not a git repository: {path}")]
    NotARepository {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{path} is a bare repository; git massgen needs a work tree")]
    Bare { path: PathBuf },
    #[error("HEAD has no commit yet")]
    UnbornHead,
    #[error("cannot resolve revision `{rev}`")]
    BadRevision {
        rev: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("`{cmdline}` failed ({status}): {stderr}")]
    Command {
        cmdline: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{cmdline}`")]
    Spawn {
        cmdline: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Gix {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the clean filter `{driver}` failed on {path}: {reason}")]
    Filter {
        path: String,
        driver: String,
        reason: String,
    },
    #[error("cannot convert {path} as `git add` would: {reason}")]
    Convert { path: String, reason: String },
    #[error("{0}")]
    Other(String),
}

impl GitError {
    /// The message followed by its causes, on one line: for an error that is kept as text
    /// (a candidate's error) rather than shown with `caused by:` lines.
    pub fn with_causes(&self) -> String {
        causes(self)
    }
}

/// An error and its causes on one line, a cause that repeats the text before it left out.
pub(crate) fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// Attaches a description to any gix error.
pub(crate) trait GixContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, GitError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> GixContext<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, GitError> {
        self.map_err(|e| GitError::Gix {
            what: what(),
            source: Box::new(e),
        })
    }
}

/// The object id type used throughout.
pub type ObjectId = gix::ObjectId;

/// The user's repository, opened once per command.
pub struct Repo {
    /// Shareable handle; call [`Repo::local`] for a thread-local one.
    pub shared: gix::ThreadSafeRepository,
    /// Root of the work tree the command was started in.
    pub workdir: PathBuf,
    /// The repository's common git directory (shared by all worktrees).
    pub common_dir: PathBuf,
    /// The git directory of the current worktree.
    pub git_dir: PathBuf,
    /// In-memory configuration applied to every repository handle we open.
    overrides: Vec<String>,
}

impl Repo {
    /// Finds the repository containing `dir`, honouring `GIT_DIR` and friends like git does.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let not_a_repo = |e: gix::Error| GitError::NotARepository {
            path: dir.to_owned(),
            source: Box::new(e),
        };
        let probe = gix::ThreadSafeRepository::discover_with_environment_overrides(dir)
            .map_err(not_a_repo)?;
        let mut overrides = vec![
            // Worktrees are checked out and then inspected within the same second; compare
            // timestamps to the nanosecond so that freshly written index entries are not all
            // "racily clean" (which would make every snapshot re-hash every file).
            "gitoxide.core.useNsec=true".to_owned(),
        ];
        if probe.to_thread_local().committer().is_none() {
            // Reflogs need a committer and CI machines often have none: our own ref updates
            // (and new worktrees' HEAD logs) then log as git-massgen. In memory only; the
            // user's configuration files are never touched.
            overrides.push("committer.name=git-massgen".to_owned());
            overrides.push("committer.email=git-massgen@localhost".to_owned());
        }
        let shared = gix::ThreadSafeRepository::discover_with_environment_overrides_opts(
            dir,
            Default::default(),
            trust_with(&overrides),
        )
        .map_err(not_a_repo)?;
        let local = shared.to_thread_local();
        let Some(workdir) = local.workdir() else {
            return Err(GitError::Bare {
                path: local.git_dir().to_owned(),
            });
        };
        let workdir = absolute(workdir);
        let common_dir = absolute(local.common_dir());
        let git_dir = absolute(local.git_dir());
        Ok(Repo {
            shared,
            workdir,
            common_dir,
            git_dir,
            overrides,
        })
    }

    /// Opens the linked worktree at `path` with the same in-memory configuration.
    pub fn open_worktree(&self, path: &Path) -> Result<gix::Repository, GitError> {
        let options = gix::open::Options::default().config_overrides(self.overrides.clone());
        gix::open_opts(path, options).ctx(|| format!("cannot open worktree {}", path.display()))
    }

    /// A repository handle for the current thread.
    pub fn local(&self) -> gix::Repository {
        let mut repo = self.shared.to_thread_local();
        repo.object_cache_size_if_unset(4 * 1024 * 1024);
        repo
    }

    /// The `.massgen` directory of this work tree.
    pub fn massgen_dir(&self) -> PathBuf {
        self.workdir.join(".massgen")
    }

    /// Resolves a revision to a commit id.
    pub fn resolve_commit(&self, rev: &str) -> Result<ObjectId, GitError> {
        let repo = self.local();
        let id = repo
            .rev_parse_single(rev)
            .map_err(|e| GitError::BadRevision {
                rev: rev.to_owned(),
                source: Box::new(e),
            })?;
        let commit = id
            .object()
            .ctx(|| format!("cannot read object {id}"))?
            .peel_to_commit()
            .map_err(|e| GitError::BadRevision {
                rev: rev.to_owned(),
                source: Box::new(e),
            })?;
        Ok(commit.id)
    }

    /// The commit HEAD points to, and the branch it is on (`None` when detached).
    pub fn head(&self) -> Result<(ObjectId, Option<String>), GitError> {
        let repo = self.local();
        let head = repo.head().ctx(|| "cannot read HEAD".into())?;
        let branch = head.referent_name().map(|n| n.as_bstr().to_string());
        let id = head.id().ok_or(GitError::UnbornHead)?.detach();
        Ok((id, branch))
    }

    /// The commit a branch (full ref name) points to, if it exists.
    pub fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, GitError> {
        let repo = self.local();
        match repo
            .try_find_reference(name)
            .ctx(|| format!("cannot read {name}"))?
        {
            Some(mut r) => Ok(Some(
                r.peel_to_id()
                    .ctx(|| format!("cannot resolve {name}"))?
                    .detach(),
            )),
            None => Ok(None),
        }
    }

    /// Points `name` at `target`, requiring its current value to be `expected`
    /// (`None`: the ref must not exist yet).
    pub fn set_ref(
        &self,
        name: &str,
        target: ObjectId,
        expected: Option<ObjectId>,
        log: &str,
    ) -> Result<(), GitError> {
        let repo = self.local();
        let previous = match expected {
            Some(id) => PreviousValue::MustExistAndMatch(gix::refs::Target::Object(id)),
            None => PreviousValue::MustNotExist,
        };
        repo.reference(name, target, previous, log)
            .ctx(|| format!("cannot update {name}"))?;
        Ok(())
    }

    /// Deletes the ref `name` if it exists.
    pub fn delete_ref(&self, name: &str) -> Result<bool, GitError> {
        let repo = self.local();
        match repo
            .try_find_reference(name)
            .ctx(|| format!("cannot read {name}"))?
        {
            Some(r) => {
                r.delete().ctx(|| format!("cannot delete {name}"))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Deletes a ref that only git-massgen writes and that nothing is writing now (a
    /// candidate branch of a run that is not running): a lock file left on it by a process
    /// killed while it updated the ref is stale, so it is removed and the deletion tried
    /// again. Returns whether a stale lock was removed.
    pub fn delete_own_ref(&self, name: &str) -> Result<bool, GitError> {
        match self.delete_ref(name) {
            Ok(_) => Ok(false),
            Err(first) => {
                let lock = self.common_dir.join(format!("{name}.lock"));
                if std::fs::remove_file(&lock).is_err() {
                    return Err(first);
                }
                self.delete_ref(name)?;
                Ok(true)
            }
        }
    }

    /// All refs under `refs/heads/` and HEAD with their targets, for breach detection.
    pub fn branch_tips(&self) -> Result<Vec<(String, String)>, GitError> {
        let repo = self.local();
        let mut out = Vec::new();
        let refs = repo.references().ctx(|| "cannot list refs".into())?;
        for r in refs
            .local_branches()
            .ctx(|| "cannot list branches".into())?
        {
            let r = r.map_err(|e| GitError::Other(format!("cannot read a branch: {e}")))?;
            out.push((r.name().as_bstr().to_string(), r.target().id().to_string()));
        }
        if let Ok(head) = repo.head() {
            let target = head.id().map(|id| id.to_string()).unwrap_or_default();
            out.push(("HEAD".into(), target));
        }
        out.sort();
        Ok(out)
    }

    /// The best common ancestor of two commits, if they have one.
    pub fn merge_base(&self, a: ObjectId, b: ObjectId) -> Result<Option<ObjectId>, GitError> {
        if a == b {
            return Ok(Some(a));
        }
        let repo = self.local();
        match repo.merge_base(a, b) {
            Ok(base) => Ok(base.map(|b| b.detach())),
            Err(e) => Err(GitError::Gix {
                what: format!("cannot find the merge base of {a} and {b}"),
                source: Box::new(e),
            }),
        }
    }

    /// Whether `ancestor` is reachable from `descendant` (or equal to it).
    pub fn is_ancestor(&self, ancestor: ObjectId, descendant: ObjectId) -> Result<bool, GitError> {
        if ancestor == descendant {
            return Ok(true);
        }
        let repo = self.local();
        match repo.merge_base(ancestor, descendant) {
            Ok(base) => Ok(base.is_some_and(|b| b.detach() == ancestor)),
            Err(_) => Ok(false),
        }
    }

    /// The tree of a commit.
    pub fn tree_of(&self, commit: ObjectId) -> Result<ObjectId, GitError> {
        let repo = self.local();
        let c = repo
            .find_commit(commit)
            .ctx(|| format!("cannot read commit {commit}"))?;
        Ok(c.tree_id()
            .ctx(|| format!("cannot read tree of {commit}"))?
            .detach())
    }
}

fn trust_with(overrides: &[String]) -> gix::sec::trust::Mapping<gix::open::Options> {
    let mut trust = gix::sec::trust::Mapping::<gix::open::Options>::default();
    trust.full = trust.full.config_overrides(overrides.iter().cloned());
    trust.reduced = trust.reduced.config_overrides(overrides.iter().cloned());
    trust
}

/// Makes a path absolute without resolving symlinks (paths are shown to the user).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// A signature for commits made by git-massgen itself, independent of the user's identity
/// configuration (which may be unset on CI machines).
pub(crate) fn signature(name: &str, email: &str) -> gix::actor::Signature {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    gix::actor::Signature {
        name: name.into(),
        email: email.into(),
        time: gix::date::Time::new(now, 0),
    }
}
