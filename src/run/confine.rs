//! The sandbox of a run: whether its commands are confined (`[sandbox] mode`, found out once
//! per run by probing the kernel through the trampoline), and the rules of each command
//! (see [`crate::sandbox`]): what it may write (its worktree, its home, a private
//! `TMPDIR`, what git needs to commit in that worktree and nothing more of the repository,
//! the package managers' caches, `allow_write`), and which TCP ports it may use.

use std::path::{Path, PathBuf};

use super::RunError;
use super::layout::RunDir;
use crate::config::{Network, SandboxMode};
use crate::git::Repo;
use crate::model::PORT_BLOCK;
use crate::sandbox::{Enforced, Rules};

/// How a run confines its commands, as planned.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    pub mode: SandboxMode,
    pub network: Network,
    /// `[sandbox] allow_write`, expanded.
    pub allow_write: Vec<PathBuf>,
}

impl Sandbox {
    /// `[sandbox]` with the mode of a flag over it, paths expanded for `worktree_root`.
    pub fn from_config(
        section: &crate::config::SandboxSection,
        flag: Option<SandboxMode>,
        worktree_root: &Path,
    ) -> Sandbox {
        Sandbox {
            mode: flag.or(section.mode).unwrap_or_default(),
            network: section.network.clone(),
            allow_write: section
                .allow_write
                .iter()
                .map(|p| expand(p, worktree_root))
                .collect(),
        }
    }
}

/// Whether the run's commands will be confined: the plan's sandbox when the kernel can
/// enforce it, with a line that says what was found (kept with the run). `mode =
/// "required"` without Landlock is an error; `auto` without it gives a warning.
pub fn resolve(plan: &Sandbox) -> Result<(Option<Sandbox>, String, Option<String>), RunError> {
    if plan.mode == SandboxMode::Off {
        return Ok((None, "off".to_owned(), None));
    }
    let found = std::env::current_exe()
        .map_err(|e| format!("cannot find this program: {e}"))
        .and_then(|exe| crate::sandbox::probe(&exe));
    match found {
        Ok(e @ (Enforced::Full(_) | Enforced::Partial(_))) => {
            Ok((Some(plan.clone()), e.describe(), None))
        }
        Ok(Enforced::None) | Err(_) => {
            let why = match found {
                Err(why) => why,
                _ => Enforced::None.describe(),
            };
            if plan.mode == SandboxMode::Required {
                return Err(RunError::NoSandbox { why });
            }
            Ok((
                None,
                format!("unavailable: {why}"),
                Some(format!(
                    "agents run unconfined: {why} (the breach guard still watches; [sandbox] mode = \"required\" refuses to run without it)"
                )),
            ))
        }
    }
}

/// How many lines of the log at `path` report a denied write or connection: what the
/// kernel says to a confined process (`EACCES`, `EPERM`) as programs print it.
pub fn denials(path: &Path) -> u32 {
    let Ok(text) = std::fs::read(path) else {
        return 0;
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| {
            l.contains("Permission denied")
                || l.contains("Operation not permitted")
                || l.contains("EACCES")
                || l.contains("EPERM")
        })
        .count() as u32
}

/// Expands `~/` (the home directory) and `{worktree_root}` in a configured path.
pub fn expand(path: &str, worktree_root: &Path) -> PathBuf {
    let path = path.replace("{worktree_root}", &worktree_root.display().to_string());
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Device files any command may write.
const DEVICES: [&str; 9] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
    "/dev/random",
    "/dev/urandom",
];

/// Package managers' caches under the home directory, written by installs and builds.
const CACHES: [&str; 14] = [
    ".npm",
    ".cache/pip",
    ".cache/uv",
    ".cache/pypoetry",
    ".cache/go-build",
    ".cache/yarn",
    ".cache/pnpm",
    ".local/share/pnpm",
    ".yarn",
    "go/pkg/mod",
    ".cargo/registry",
    ".cargo/git",
    ".m2/repository",
    ".gradle/caches",
];

impl Sandbox {
    /// The rules of a command that may write `write` beside what every confined command may
    /// (devices, caches, `allow_write`), with its own block of ports `own`.
    pub fn rules(&self, mut write: Vec<PathBuf>, own: Vec<u16>) -> Rules {
        write.extend(DEVICES.iter().map(PathBuf::from));
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            write.extend(CACHES.iter().map(|c| home.join(c)));
            write.push(home.join(".cargo/.package-cache"));
            write.push(home.join(".cargo/.package-cache-mutate"));
            write.push(home.join(".cargo/.global-cache"));
        }
        write.extend(self.allow_write.iter().cloned());
        let (connect, bind) = match &self.network {
            Network::All => (None, None),
            Network::None => (Some(own.clone()), Some(own)),
            Network::Ports(ports) => {
                let mut connect = ports.clone();
                connect.extend(own);
                (Some(connect), None)
            }
        };
        Rules {
            write,
            connect,
            bind,
            required: self.mode == SandboxMode::Required,
            overlay: None,
        }
    }
}

/// The rules of a command in `agent`'s worktree `wt` of the run in `dir`, with `extra` paths
/// it may write and its block of ports from `port`.
pub(super) fn agent_rules(
    sandbox: &Sandbox,
    repo: &Repo,
    dir: &RunDir,
    agent: &str,
    wt: &Path,
    extra: &[PathBuf],
    port: Option<u16>,
) -> Rules {
    let common = &repo.common_dir;
    let branches = common.join(super::layout::branch_prefix(&dir.id));
    let reflogs = common
        .join("logs")
        .join(super::layout::branch_prefix(&dir.id));
    let tmp = tmp_dir(dir, agent);
    for d in [&reflogs, &tmp] {
        let _ = std::fs::create_dir_all(d);
    }
    let mut write = vec![
        wt.to_path_buf(),
        dir.agent_home(agent),
        tmp,
        common.join("objects"),
        branches,
        reflogs,
    ];
    write.extend(crate::git::worktree::registration(repo, wt));
    write.extend(extra.iter().cloned());
    let own: Vec<u16> = port
        .map(|p| (p..p.saturating_add(PORT_BLOCK)).collect())
        .unwrap_or_default();
    sandbox.rules(write, own)
}

/// `agent`'s private temporary directory, its `TMPDIR` when confined.
pub(super) fn tmp_dir(dir: &RunDir, agent: &str) -> PathBuf {
    dir.dir.join("tmp").join(agent)
}

/// What a command's environment adds: with `confined`, its own `TMPDIR` (`tmp`) and git
/// told not to start work that writes outside what it may (`gc.auto=0`, no background
/// maintenance, an identity); with `overlay` (a copy-on-write worktree, whose files' inode
/// and device numbers are not those its index recorded), git told to compare only sizes and
/// times (`core.checkStat=minimal`) rather than hash every file again. All through
/// `GIT_CONFIG_*`, numbered after the entries the environment already has.
pub(super) fn command_env(
    repo: &Repo,
    tmp: &Path,
    confined: bool,
    overlay: bool,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut settings = Vec::new();
    if confined {
        env.push(("TMPDIR".to_owned(), tmp.display().to_string()));
        settings.push(("gc.auto".to_owned(), "0".to_owned()));
        settings.push(("maintenance.auto".to_owned(), "false".to_owned()));
        // Without an identity a tool may write one into the repository's config (aider
        // does), which it may not: it gets the one its commits would carry.
        let config = repo.local().config_snapshot().clone();
        for (key, var, fallback) in [
            ("user.name", "GIT_AUTHOR_NAME", "git-massgen"),
            ("user.email", "GIT_AUTHOR_EMAIL", "git-massgen@localhost"),
        ] {
            if config.string(key).is_none() {
                let value = std::env::var(var).unwrap_or_else(|_| fallback.to_owned());
                settings.push((key.to_owned(), value));
            }
        }
    }
    if overlay {
        settings.push(("core.checkStat".to_owned(), "minimal".to_owned()));
    }
    if settings.is_empty() {
        return env;
    }
    let first: usize = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    for (i, (key, value)) in settings.iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{}", first + i), key.clone()));
        env.push((format!("GIT_CONFIG_VALUE_{}", first + i), value.clone()));
    }
    env.push((
        "GIT_CONFIG_COUNT".to_owned(),
        (first + settings.len()).to_string(),
    ));
    env
}
