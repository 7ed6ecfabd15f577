//! The error boundary of the command line: one type that carries what went wrong, the chain
//! of causes, hints for the user, and the documented exit code.

use std::fmt;

/// Documented exit codes (see README.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what it was asked.
    Success = 0,
    /// A negative result: no candidate qualified, or a merge had conflicts or was blocked.
    Negative = 1,
    /// Bad usage: arguments, configuration, unknown run or agent.
    Usage = 2,
    /// The repository cannot be used: not a repository, bare, unborn HEAD.
    Repository = 3,
    /// A git operation or the file system failed.
    Failure = 4,
    /// Interrupted by Ctrl-C; the run is left for `status` and `clean`.
    Interrupted = 130,
}

/// An error as the user sees it: `error: …`, then `caused by: …` lines, then `hint: …` lines.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub error: Box<dyn std::error::Error + Send + Sync>,
    pub hints: Vec<String>,
}

impl CliError {
    /// An error with an exit code.
    pub fn new(exit: Exit, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        CliError {
            exit,
            error: error.into(),
            hints: Vec::new(),
        }
    }

    /// A usage error (exit 2).
    pub fn usage(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        CliError::new(Exit::Usage, error)
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// The error message followed by its causes, one per line.
    pub fn chain(&self) -> Vec<String> {
        let mut out = vec![self.error.to_string()];
        let mut source = self.error.source();
        while let Some(err) = source {
            let text = err.to_string();
            if out.last() != Some(&text) {
                out.push(text);
            }
            source = err.source();
        }
        out
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl From<crate::git::GitError> for CliError {
    fn from(err: crate::git::GitError) -> Self {
        use crate::git::GitError;
        let (exit, hint) = match &err {
            GitError::NotARepository { .. } => (
                Exit::Repository,
                Some("run this inside a git repository, or create one with `git init`"),
            ),
            GitError::Bare { .. } => (
                Exit::Repository,
                Some("agents need a work tree to compare against; use a clone with a work tree"),
            ),
            GitError::UnbornHead => (
                Exit::Repository,
                Some("make a first commit, or pass --base REV"),
            ),
            GitError::BadRevision { .. } => {
                (Exit::Usage, Some("check the revision with `git rev-parse`"))
            }
            _ => (Exit::Failure, None),
        };
        let mut e = CliError::new(exit, err);
        if let Some(h) = hint {
            e = e.hint(h);
        }
        e
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(err: crate::config::ConfigError) -> Self {
        match &err {
            // The file system, not the configuration: e.g. `.massgen` is a file.
            crate::config::ConfigError::Read { path, .. } => {
                let parent = path.parent().map(|p| p.display().to_string());
                CliError::new(Exit::Failure, err).hint(format!(
                    "git massgen keeps its configuration and runs in the directory {}; move what is there out of the way",
                    parent.unwrap_or_default()
                ))
            }
            _ => CliError::usage(err).hint("see README.md, \"Configuration\", for every key"),
        }
    }
}

impl From<crate::run::RunError> for CliError {
    fn from(err: crate::run::RunError) -> Self {
        use crate::run::RunError;
        match err {
            RunError::Git(g) => g.into(),
            RunError::UnknownRun { .. } => {
                CliError::usage(err).hint("list runs with `git massgen status`")
            }
            RunError::UnknownAgent { .. } => {
                CliError::usage(err).hint("list a run's agents with `git massgen status RUN`")
            }
            RunError::Usage(_) => CliError::usage(err),
            RunError::Interrupted => CliError::new(Exit::Interrupted, err).hint(
                "`git massgen status` shows what was left; `git massgen clean RUN` removes it",
            ),
            RunError::Busy { .. } => {
                CliError::new(Exit::Failure, err).hint("wait for it to finish, or stop it first")
            }
            RunError::Io { ref source, .. }
                if source.kind() == std::io::ErrorKind::NotADirectory =>
            {
                CliError::new(Exit::Failure, err).hint(
                    "a file is where git massgen keeps a directory (.massgen, .massgen/runs); move it out of the way",
                )
            }
            RunError::NoSandbox { .. } => CliError::new(Exit::Failure, err).hint(
                "Landlock needs Linux 5.13 or later with it enabled (lsm=landlock); or run with --sandbox auto (the breach guard still watches)",
            ),
            RunError::NoOverlay { .. } => CliError::new(Exit::Failure, err).hint(
                "run with --worktree-mode checkout (or [worktree] mode = \"checkout\"), or allow unprivileged user namespaces and overlay mounts as the reason says",
            ),
            RunError::NoSlurm { .. } => CliError::new(Exit::Failure, err).hint(
                "check the cluster with `sinfo` and `scontrol ping` (SLURM_CONF names its configuration), or run here with --executor local",
            ),
            RunError::NoSpace { .. } => CliError::new(Exit::Failure, err).hint(
                "free some space (`git massgen clean --all` removes finished runs' worktrees), run fewer agents, or set [run] worktree_root to a larger file system",
            ),
            RunError::State { .. } => CliError::new(Exit::Failure, err).hint(
                "the run's state file is damaged; `git massgen clean RUN` saves what its worktrees hold and sets it aside",
            ),
            _ => CliError::new(Exit::Failure, err),
        }
    }
}

impl From<crate::run::merge::MergeError> for CliError {
    fn from(err: crate::run::merge::MergeError) -> Self {
        use crate::run::merge::MergeError;
        match err {
            MergeError::Run(e) => e.into(),
            MergeError::Git(e) => e.into(),
            MergeError::NoCommit { ref run, .. } => {
                let hint = format!("see `git massgen status {run}`");
                CliError::new(Exit::Negative, err).hint(hint)
            }
            MergeError::Breach {
                ref run,
                ref breaches,
            } => {
                let (run, breaches) = (run.clone(), breaches.clone());
                let mut e = CliError::new(Exit::Negative, err);
                for b in breaches.iter().take(10) {
                    e = e.hint(format!("breach: {b}"));
                }
                if breaches.len() > 10 {
                    e = e.hint(format!("… and {} more", breaches.len() - 10));
                }
                e.hint(format!(
                    "check them (`git massgen status {run}`); if you made them yourself, merge with --allow-breach"
                ))
            }
            MergeError::InProgress { how, .. } => CliError::new(Exit::Negative, err)
                .hint(format!("finish it ({how}), then merge again")),
            MergeError::TargetUnborn => CliError::new(Exit::Repository, err)
                .hint("commit something first, or run without --merge and merge a candidate later"),
            MergeError::TargetBusy { how, .. } => CliError::new(Exit::Negative, err)
                .hint(format!("finish it ({how}) first, or run without --merge")),
        }
    }
}

impl From<crate::hooks::HooksError> for CliError {
    fn from(err: crate::hooks::HooksError) -> Self {
        use crate::hooks::HooksError;
        match &err {
            HooksError::ChainedExists { hook, path } => {
                let hint = format!(
                    "the {hook} hook there is not ours and would be kept as {}, which is taken \
                     (left from an earlier install?); merge or move one of them, then install \
                     again",
                    path.display()
                );
                CliError::usage(err).hint(hint)
            }
            HooksError::Foreign { .. } => CliError::usage(err).hint(
                "git-massgen's hook is not installed there: this one was put there by something \
                 else; remove it by hand if it should go",
            ),
            HooksError::Managed { manager, .. } => {
                let hint = format!(
                    "add `git massgen review --hook pre-commit` (or `--hook pre-push --remote \"$1\"`) to the {manager} hook scripts instead, e.g. .husky/pre-commit"
                );
                CliError::usage(err).hint(hint)
            }
            HooksError::HooksDir(_) | HooksError::Io { .. } => CliError::new(Exit::Failure, err),
        }
    }
}

impl From<crate::run::plan::PlanError> for CliError {
    fn from(err: crate::run::plan::PlanError) -> Self {
        let exit = if err.failure {
            Exit::Failure
        } else {
            Exit::Usage
        };
        let hint = err.hint.clone();
        let e = CliError::new(exit, err);
        match hint {
            Some(h) => e.hint(h),
            None => e,
        }
    }
}

impl From<crate::plan::planner::PlannerError> for CliError {
    fn from(err: crate::plan::planner::PlannerError) -> Self {
        use crate::plan::planner::PlannerError;
        match err {
            PlannerError::Exists { .. } => CliError::usage(err)
                .hint("pass --force to replace it, or --output FILE to write the plan elsewhere"),
            PlannerError::Interrupted => CliError::new(Exit::Interrupted, err),
            PlannerError::Invalid { .. } => CliError::new(Exit::Failure, err).hint(
                "nothing was written; ask again, allow more attempts ([plan] max_attempts), or try another --planner",
            ),
            PlannerError::Failed { .. } => CliError::new(Exit::Failure, err)
                .hint("nothing was written; check that the planner runs (`git massgen doctor`), or try another --planner"),
            PlannerError::Io { .. } => CliError::new(Exit::Failure, err),
        }
    }
}

impl From<crate::learn::LearnError> for CliError {
    fn from(err: crate::learn::LearnError) -> Self {
        use crate::learn::LearnError;
        match err {
            LearnError::Git(g) => g.into(),
            LearnError::Foreign { .. } => CliError::new(Exit::Failure, err).hint(format!(
                "`git massgen learn reset` deletes {} (it is recorded anew by the next run)",
                crate::learn::REF
            )),
            LearnError::Contended => CliError::new(Exit::Failure, err)
                .hint("other git massgen processes keep updating it; try again"),
        }
    }
}

/// A plan file's errors as the user sees them: one per problem (each at its line and
/// column, with its hint), in the order of the file; exit 2 for a plan that is wrong or
/// missing, 4 for one that cannot be read.
pub fn plan_errors(err: crate::plan::PlanFileError) -> Vec<CliError> {
    use crate::plan::PlanFileError;
    match err {
        PlanFileError::NotFound { .. } => vec![CliError::usage(err).hint(
            "a bare NAME is read from .massgen/plans/NAME.toml; a path (with a `/`, or ending in .toml) is read as it is",
        )],
        PlanFileError::Read { .. } => vec![CliError::new(Exit::Failure, err)],
        PlanFileError::Invalid { problems, .. } => problems
            .into_iter()
            .map(|problem| {
                let hint = problem.hint.clone();
                let e = CliError::usage(problem);
                match hint {
                    Some(h) => e.hint(h),
                    None => e,
                }
            })
            .collect(),
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        CliError::new(Exit::Failure, err)
    }
}
