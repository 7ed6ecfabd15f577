//! Making a fresh worktree ready before its agent starts: the ignored files and directories
//! it needs brought in from the user's work tree (`[worktree] include`, `clone`, `share`,
//! `.worktreeinclude`), then the `[worktree] setup` commands and the agent's own (install
//! dependencies, build once), run with `sh -c` one after another in the worktree, within one
//! time limit, with their output in `logs/<agent>.setup.log`. Also the free-space check
//! made before any worktree is created.

use std::path::Path;
use std::time::Instant;

use tokio::sync::watch;

use super::RunError;
use super::context::{Plan, Shared};
use crate::agent::AgentSpec;
use crate::agent::process::{self, Job};
use crate::git::cmd::GIT_REPO_ENV;
use crate::sys::copy::Copied;

/// What makes a fresh worktree ready, from `[worktree]`: the same for an agent's worktree
/// and for one git-massgen makes for itself (a plan's integration check).
#[derive(Debug, Clone, Default)]
pub struct Ready {
    /// `include`, `.worktreeinclude` and `clone` patterns.
    pub include: Vec<String>,
    pub share: Vec<String>,
    /// `[worktree] setup` (empty with `--no-setup`).
    pub setup: Vec<String>,
    pub setup_timeout: std::time::Duration,
    /// `[worktree] env`, `{worktree_root}` expanded.
    pub env: Vec<(String, String)>,
}

impl Ready {
    pub fn from_config(
        config: &crate::config::Config,
        workdir: &Path,
        worktree_root: &Path,
        no_setup: bool,
    ) -> Ready {
        let mut include = include_patterns(&config.worktree, workdir);
        include.extend(config.worktree.clone.iter().cloned());
        let root = worktree_root.display().to_string();
        Ready {
            include,
            share: config.worktree.share.clone(),
            setup: if no_setup {
                Vec::new()
            } else {
                config.worktree.setup.clone()
            },
            setup_timeout: config
                .worktree
                .setup_timeout
                .unwrap_or(crate::config::DEFAULT_SETUP_TIMEOUT),
            env: config
                .worktree
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.replace("{worktree_root}", &root)))
                .collect(),
        }
    }

    /// Readies `wt`, a worktree git-massgen made for itself at `repo`'s commit: what
    /// `include` and `share` name brought in, then the `setup` commands, with their output
    /// in `log`. `Ok(Err(why))` when that failed.
    pub async fn ready(
        &self,
        repo: &std::sync::Arc<crate::git::Repo>,
        wt: &Path,
        log: &Path,
    ) -> Result<Result<(), String>, RunError> {
        if let Err(why) = bring(repo, &self.include, &self.share, wt, wt, log).await? {
            return Ok(Err(why));
        }
        let commands: Vec<&String> = self.setup.iter().collect();
        // Nothing cancels it but its time limit.
        let (_keep, cancel) = watch::channel(false);
        let setting = Commands {
            env: self.env.clone(),
            wt,
            log,
            timeout: self.setup_timeout,
            sandbox: None,
            remote: None,
        };
        run_commands(&commands, &setting, &cancel).await
    }
}

/// How setup commands run.
struct Commands<'a> {
    env: Vec<(String, String)>,
    wt: &'a Path,
    log: &'a Path,
    /// For all of them together.
    timeout: std::time::Duration,
    sandbox: Option<crate::sandbox::Rules>,
    /// The run and agent whose setup runs as Slurm jobs, when it does.
    remote: Option<(&'a std::sync::Arc<Shared>, &'a str)>,
}

/// Makes `agent`'s fresh worktree `wt` ready before the agent starts: the ignored files and
/// directories it should have ([`bring_in`]), then the setup commands of `plan` and of the
/// agent. `Ok(Err(why))` when one failed (`why`: the last line of its output, or how it
/// ended); `Err` when the run is interrupted or a log cannot be written.
pub(super) async fn prepare(
    shared: &std::sync::Arc<Shared>,
    plan: &Plan,
    agent: &AgentSpec,
    wt: &Path,
    cancel: &watch::Receiver<bool>,
) -> Result<Result<(), String>, RunError> {
    let log = shared.dir.setup_log(&agent.name);
    // A copy-on-write worktree gets them in its upper directory, where they are its own.
    let into = shared.overlay_of(wt).map(|o| o.upper);
    let into = into.as_deref().unwrap_or(wt);
    if let Err(why) = bring(&shared.repo, &plan.include, &plan.share, wt, into, &log).await? {
        return Ok(Err(why));
    }
    let commands: Vec<&String> = plan.setup.iter().chain(&agent.setup).collect();
    let setting = Commands {
        env: shared.command_env(&agent.name, wt),
        wt,
        log: &log,
        timeout: plan.setup_timeout,
        sandbox: shared.rules(&agent.name, wt, &agent.allow_write),
        remote: Some((shared, &agent.name)),
    };
    run_commands(&commands, &setting, cancel).await
}

/// Runs `commands` one after another with `sh -c` in the worktree, within one time limit,
/// their output appended to the log. `Ok(Err(why))` when one failed: the last line of its
/// output, or how it ended.
async fn run_commands(
    commands: &[&String],
    s: &Commands<'_>,
    cancel: &watch::Receiver<bool>,
) -> Result<Result<(), String>, RunError> {
    let (wt, log) = (s.wt, s.log);
    let started = Instant::now();
    for command in commands {
        let Some(left) = s.timeout.checked_sub(started.elapsed()) else {
            return Ok(Err(format!("timed out after {}s", s.timeout.as_secs())));
        };
        let out = append(log, &format!("$ {command}"))?;
        // Where this command's output starts: its last line is the reason it failed.
        let from = out.metadata().map(|m| m.len()).unwrap_or(0);
        let argv = vec!["sh".to_owned(), "-c".to_owned(), (*command).clone()];
        let job = Job {
            argv: &argv,
            cwd: wt,
            env: s.env.clone(),
            env_remove: GIT_REPO_ENV,
            stderr: out
                .try_clone()
                .map_err(RunError::io("cannot create log", log))?,
            stdout: out,
            timeout: left,
            watch: None,
            sandbox: s.sandbox.clone(),
            remote: s.remote.and_then(|(shared, agent)| {
                shared.remote(agent, super::executor::Unit::Setup, Vec::new())
            }),
        };
        let finished = process::supervise(job, cancel.clone(), |_| {})
            .await
            .map_err(RunError::io("cannot run a setup command in", wt))?;
        if finished.cancelled {
            return Err(RunError::Interrupted);
        }
        if finished.timed_out {
            return Ok(Err(format!(
                "`{command}` timed out after {}s",
                s.timeout.as_secs()
            )));
        }
        if !finished.success() {
            let text = std::fs::read(log).unwrap_or_default();
            let own = text.get(from as usize..).unwrap_or_default();
            let last = String::from_utf8_lossy(own)
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned);
            return Ok(Err(last.unwrap_or_else(|| {
                format!("`{command}` failed ({})", finished.describe())
            })));
        }
    }
    Ok(Ok(()))
}

/// [`bring_in`] off the async threads, into the directory `into` (the worktree `wt`, or
/// its overlay's upper directory), what it did written to `log`; `Ok(Err(why))` when it
/// failed.
async fn bring(
    repo: &std::sync::Arc<crate::git::Repo>,
    include: &[String],
    share: &[String],
    wt: &Path,
    into: &Path,
    log: &Path,
) -> Result<Result<(), String>, RunError> {
    if include.is_empty() && share.is_empty() {
        return Ok(Ok(()));
    }
    let (repo, include, share) = (repo.clone(), include.to_vec(), share.to_vec());
    let (wt, into) = (wt.to_path_buf(), into.to_path_buf());
    let brought =
        tokio::task::spawn_blocking(move || bring_in(&repo, &include, &share, &wt, &into))
            .await
            .expect("copying does not panic");
    Ok(match brought {
        Ok(b) => {
            drop(append(log, &b.describe())?);
            Ok(())
        }
        Err(why) => {
            drop(append(log, &why)?);
            Err(why)
        }
    })
}

/// Appends a line to the setup log `log`; returns the log, open for appending.
fn append(log: &Path, line: &str) -> Result<std::fs::File, RunError> {
    use std::io::Write;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(RunError::io("cannot create log", log))?;
    writeln!(out, "{line}").map_err(RunError::io("cannot write log", log))?;
    Ok(out)
}

/// The patterns of ignored files copied into every worktree, agents' and reviews':
/// `[worktree] include` and the lines of `.worktreeinclude` at the work tree's root.
pub fn include_patterns(section: &crate::config::WorktreeSection, workdir: &Path) -> Vec<String> {
    let mut patterns = section.include.clone();
    if let Ok(text) = std::fs::read_to_string(workdir.join(".worktreeinclude")) {
        patterns.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    patterns
}

/// What [`bring_in`] did.
#[derive(Debug, Default)]
pub struct Brought {
    pub copied: Copied,
    /// Paths linked to the user's own (`[worktree] share`).
    pub linked: Vec<String>,
    /// Patterns that matched no ignored file of the user's work tree.
    pub unmatched: Vec<String>,
}

impl Brought {
    /// One line for the setup log.
    fn describe(&self) -> String {
        let c = &self.copied;
        let mut line = format!(
            "# brought in {} ({:.1} MiB), {} of them cloned copy-on-write",
            if c.files == 1 {
                "1 file".to_owned()
            } else {
                format!("{} files", c.files)
            },
            c.bytes as f64 / (1024.0 * 1024.0),
            c.cloned
        );
        if !self.linked.is_empty() {
            line.push_str(&format!("; linked {}", self.linked.join(", ")));
        }
        if !self.unmatched.is_empty() {
            line.push_str(&format!(
                "; no ignored file matches {}",
                self.unmatched.join(", ")
            ));
        }
        line
    }
}

/// Brings into `wt` the ignored files and directories of the user's work tree that
/// `include` names (gitignore syntax: `.env` and other configuration the tests read,
/// dependency trees), copied ([`crate::sys::copy`]: cloned copy-on-write where the file
/// system can), and links to those `share` names (the same directory for every worktree;
/// recorded so that snapshots leave the links out). `share` wins where both match. They are
/// written under `into`: `wt` itself, or the upper directory of its overlay.
pub fn bring_in(
    repo: &crate::git::Repo,
    include: &[String],
    share: &[String],
    wt: &Path,
    into: &Path,
) -> Result<Brought, String> {
    let mut brought = Brought::default();
    let mut used = std::collections::BTreeSet::new();
    for entry in select(repo, include, share)? {
        used.insert(entry.pattern);
        let (from, to) = (repo.workdir.join(&entry.rel), into.join(&entry.rel));
        if entry.link {
            share_dir(&from, &to).map_err(|e| format!("cannot link {}: {e}", entry.rel))?;
            brought.linked.push(entry.rel);
        } else {
            let done = crate::sys::copy::copy_tree(&from, &to)
                .map_err(|e| format!("cannot copy {}: {e}", entry.rel))?;
            brought.copied.add(done);
        }
    }
    brought.unmatched = include
        .iter()
        .chain(share)
        .filter(|p| !used.contains(p.as_str()))
        .cloned()
        .collect();
    if !brought.linked.is_empty() {
        crate::git::worktree::record_shared(repo, wt, &brought.linked)
            .map_err(|e| e.to_string())?;
    }
    Ok(brought)
}

/// An ignored entry of the user's work tree to bring into worktrees.
struct Selected {
    /// Relative to the work tree; a directory wholly ignored is one entry.
    rel: String,
    /// Linked (`share`) rather than copied.
    link: bool,
    /// The pattern that chose it.
    pattern: String,
}

/// The ignored entries of the user's work tree that `include` or `share` name.
fn select(
    repo: &crate::git::Repo,
    include: &[String],
    share: &[String],
) -> Result<Vec<Selected>, String> {
    if include.is_empty() && share.is_empty() {
        return Ok(Vec::new());
    }
    let matcher = |patterns: &[String]| {
        let mut builder = ignore::gitignore::GitignoreBuilder::new(&repo.workdir);
        for p in patterns {
            builder
                .add_line(None, p)
                .map_err(|e| format!("bad include pattern `{p}`: {e}"))?;
        }
        builder
            .build()
            .map_err(|e| format!("bad include patterns: {e}"))
    };
    let (copy, link) = (matcher(include)?, matcher(share)?);
    // Ignored entries as git lists them: a directory wholly ignored is one entry.
    let out = crate::git::cmd::Git::new(&repo.workdir)
        .args([
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
        ])
        .run()
        .map_err(|e| e.to_string())?;
    let mut chosen = Vec::new();
    for raw in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = String::from_utf8_lossy(raw);
        let is_dir = rel.ends_with('/');
        let rel = rel.trim_end_matches('/');
        if rel.starts_with(".massgen") || rel == ".git" {
            continue;
        }
        let path = repo.workdir.join(rel);
        for (matcher, link) in [(&link, true), (&copy, false)] {
            let m = matcher.matched_path_or_any_parents(&path, is_dir);
            if m.is_ignore() {
                chosen.push(Selected {
                    rel: rel.to_owned(),
                    link,
                    pattern: m
                        .inner()
                        .map(|g| g.original().to_owned())
                        .unwrap_or_default(),
                });
                break;
            }
        }
    }
    Ok(chosen)
}

/// What copying the entries `include` names into one worktree takes on disk; nothing when
/// they would be cloned copy-on-write onto `root`.
fn include_size(repo: &crate::git::Repo, include: &[String], root: &Path) -> u64 {
    let Ok(chosen) = select(repo, include, &[]) else {
        return 0;
    };
    // The probe is made in the git directory, not the work tree (never touched), which is
    // nearly always on the same file system.
    if chosen.is_empty() || crate::sys::copy::can_clone_between(&repo.common_dir, root) {
        return 0;
    }
    chosen
        .iter()
        .map(|e| crate::sys::disk_usage(&repo.workdir.join(&e.rel)))
        .sum()
}

/// Links `to` to the user's `from`; a link already there (a worktree set up again) is
/// replaced, anything else is refused.
fn share_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(to) {
        Ok(m) if m.is_symlink() => std::fs::remove_file(to)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something else is already there",
            ));
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(from, to)
}

/// Refuses to start when the worktree root's file system cannot hold `copies` checkouts of
/// `base` (the sizes of its files, with a block's overhead each) with the ignored files
/// `include` brings into each (unless they would be cloned copy-on-write), and a margin of
/// 2% of the file system or 32 MiB, whichever is smaller. Nothing is checked where the
/// sizes or the free space cannot be read.
pub(super) fn check_space(
    repo: &crate::git::Repo,
    base: crate::git::ObjectId,
    include: &[String],
    root: &Path,
    copies: usize,
) -> Result<(), RunError> {
    const MIB: u64 = 1024 * 1024;
    let Ok(out) = crate::git::cmd::Git::new(&repo.workdir)
        .args(["ls-tree", "-r", "-l", "-z"])
        .arg(base.to_string())
        .run()
    else {
        return Ok(());
    };
    let one: u64 = out
        .stdout
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let meta = std::str::from_utf8(entry.split(|b| *b == b'\t').next()?).ok()?;
            let size = meta.split_whitespace().nth(3)?.parse::<u64>().ok()?;
            Some(size.div_ceil(4096) * 4096 + 4096)
        })
        .sum();
    // The root may not exist yet: its nearest existing ancestor is on the same file system.
    let mut probe = root.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            return Ok(());
        }
    }
    let Ok(fs) = nix::sys::statvfs::statvfs(&probe) else {
        return Ok(());
    };
    let block = fs.fragment_size();
    let free = fs.blocks_available() * block;
    let margin = (fs.blocks() * block / 50).min(32 * MIB);
    let each = one + include_size(repo, include, &probe);
    let need = each * copies as u64;
    if need + margin > free {
        return Err(RunError::NoSpace {
            need: need.div_ceil(MIB),
            each: each.div_ceil(MIB),
            copies,
            free: free / MIB,
            root: root.to_path_buf(),
        });
    }
    Ok(())
}
