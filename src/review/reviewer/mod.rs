//! Running one reviewer: a command (`command`), a CLI preset (`cli`), or the built-in
//! LLM backends (`llm`). Each reads the change and answers `{"findings": [...]}`; an
//! answer of the wrong shape is retried with what was wrong, up to the attempts allowed
//! ([`crate::ask`]'s loop), and then the reviewer has failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use super::{Finding, Parsed, ReviewerOutcome};
use crate::agent::cli::CliAgent;
use crate::ask::{self, Secret};
use crate::run::plan::PlanError;

mod cli;
mod command;
mod llm;

/// A reviewer, resolved from configuration.
#[derive(Debug, Clone)]
pub struct Reviewer {
    pub name: String,
    pub kind: ReviewerKind,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum ReviewerKind {
    /// argv with placeholders `{diff}`, `{worktree}`, `{base}`, `{head}`, and its env.
    Command {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    /// A coding-agent CLI, started read-only in the reviewed tree with the review prompt.
    Cli {
        cli: Box<CliAgent>,
        env: Vec<(String, String)>,
    },
    /// The built-in HTTP backends, in this process.
    Llm {
        endpoint: Box<crate::llm::Endpoint>,
        key: Option<Secret>,
        /// Turns of the conversation, at most.
        max_turns: u32,
    },
}

impl ReviewerKind {
    pub fn name(&self) -> String {
        match self {
            ReviewerKind::Command { .. } => "command".into(),
            ReviewerKind::Cli { cli, .. } => cli.preset.name().into(),
            ReviewerKind::Llm { .. } => "llm".into(),
        }
    }
}

/// What every reviewer of one review is given.
#[derive(Debug, Clone)]
pub struct Setting {
    pub id: String,
    /// The review's directory: `logs/` and `homes/` go here.
    pub dir: PathBuf,
    /// The reviewed tree, checked out.
    pub worktree: PathBuf,
    /// The unified diff, in a file.
    pub diff_file: PathBuf,
    /// The changed paths, one per line, in a file.
    pub files_file: PathBuf,
    pub base: String,
    pub head: String,
    /// The review prompt (`templates/review.md`, filled in).
    pub prompt: String,
    /// How reviewers are confined: they may write the review's directory (their logs and
    /// homes), not the reviewed tree.
    pub sandbox: Option<crate::sandbox::Rules>,
    pub max_attempts: u32,
}

/// The rules of a reviewer's process: the review's own, with its directory writable.
pub(super) fn setting_rules(setting: &Setting) -> Option<crate::sandbox::Rules> {
    let mut rules = setting.sandbox.clone()?;
    rules.write.push(setting.dir.clone());
    Some(rules)
}

impl Setting {
    fn log(&self, reviewer: &str, stream: &str) -> PathBuf {
        self.dir
            .join("logs")
            .join(format!("{reviewer}.{stream}.log"))
    }
}

/// Runs one reviewer within its time limit; cancellation stops it.
pub async fn review(
    reviewer: &Reviewer,
    setting: &Setting,
    cancel: watch::Receiver<bool>,
) -> ReviewerOutcome {
    let start = Instant::now();
    let mut outcome = ReviewerOutcome {
        name: reviewer.name.clone(),
        kind: reviewer.kind.name(),
        log: Some(
            setting
                .dir
                .join("logs")
                .join(format!("{}.*.log", reviewer.name))
                .display()
                .to_string(),
        ),
        ..Default::default()
    };
    let answer = match std::fs::create_dir_all(setting.dir.join("logs")) {
        Err(e) => Err(format!("cannot create the log directory: {e}")),
        Ok(()) => match &reviewer.kind {
            ReviewerKind::Command { argv, env } => {
                command::review(reviewer, argv, env, setting, cancel, &mut outcome.warnings).await
            }
            ReviewerKind::Cli { cli, env } => {
                cli::review(reviewer, cli, env, setting, cancel, &mut outcome).await
            }
            ReviewerKind::Llm {
                endpoint,
                key,
                max_turns,
            } => {
                let mut cancel = cancel;
                let run = llm::review(
                    reviewer,
                    endpoint,
                    key.as_ref(),
                    *max_turns,
                    setting,
                    &mut outcome,
                );
                tokio::select! {
                    r = tokio::time::timeout(reviewer.timeout, run) => r.unwrap_or_else(|_| Err(format!(
                        "timed out after {}",
                        humantime::format_duration(reviewer.timeout)
                    ))),
                    _ = cancel.wait_for(|c| *c) => Err("interrupted".into()),
                }
            }
        },
    };
    match answer.map(|parsed| grounded(parsed, &setting.worktree)) {
        Ok((parsed, dropped)) => {
            outcome.ok = true;
            outcome.findings = parsed.findings;
            outcome.rejected = parsed.rejected;
            outcome.warnings.extend(dropped);
        }
        Err(e) => outcome.error = Some(e),
    }
    outcome.duration_ms = start.elapsed().as_millis() as u64;
    outcome
}

/// The example finding of `templates/review.md`: an answer that copies it found nothing.
const EXAMPLE: (&str, u32, &str) = ("src/file.rs", 12, "the problem in a few words");

fn is_example(f: &Finding) -> bool {
    (f.path.as_str(), f.line, f.title.as_str()) == EXAMPLE
}

/// A reviewer's answer read as findings, whatever its kind: of the right shape, and not
/// only the template's example copied (which is asked again, like any wrong answer).
pub(super) fn findings_of(answer: &Value) -> Result<Parsed, String> {
    let parsed = crate::review::parse_findings(answer)?;
    if !parsed.findings.is_empty() && parsed.findings.iter().all(is_example) {
        return Err(
            "the answer only echoes the example finding of the review template (src/file.rs:12); report the problems of this change, or an empty list"
                .into(),
        );
    }
    Ok(parsed)
}

/// Keeps the findings that exist in the reviewed `tree`: a path that is not a file there,
/// or a line past the end of its file, is dropped, with why (the second list).
fn grounded(mut parsed: Parsed, tree: &Path) -> (Parsed, Vec<String>) {
    let mut dropped = Vec::new();
    let mut lines: BTreeMap<String, Option<usize>> = BTreeMap::new();
    parsed.findings.retain(|f| {
        if is_example(f) {
            dropped.push(format!(
                "dropped a finding that copies the template's example ({}:{})",
                f.path, f.line
            ));
            return false;
        }
        let count = *lines
            .entry(f.path.clone())
            .or_insert_with(|| line_count(tree, &f.path));
        match count {
            None => {
                dropped.push(format!(
                    "dropped a finding on {}:{}: no such file in the reviewed tree ({})",
                    f.path, f.line, f.title
                ));
                false
            }
            Some(n) if f.line as usize > n.max(1) => {
                dropped.push(format!(
                    "dropped a finding on {}:{}: the file has {n} lines ({})",
                    f.path, f.line, f.title
                ));
                false
            }
            Some(_) => true,
        }
    });
    (parsed, dropped)
}

/// Lines of the file `path` in `tree`; `None` when it is not a file there (or would leave
/// the tree).
fn line_count(tree: &Path, path: &str) -> Option<usize> {
    let rel = Path::new(path);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let full = tree.join(rel);
    if !std::fs::symlink_metadata(&full).ok()?.is_file() {
        return None;
    }
    let bytes = std::fs::read(&full).ok()?;
    let newlines = bytes.iter().filter(|b| **b == b'\n').count();
    Some(newlines + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n")))
}

fn open_log(path: &std::path::Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// The variables every reviewer process gets.
fn review_env(reviewer: &Reviewer, setting: &Setting) -> Vec<(String, String)> {
    [
        ("MASSGEN_REVIEW", setting.id.clone()),
        ("MASSGEN_REVIEWER", reviewer.name.clone()),
        ("MASSGEN_DIFF", setting.diff_file.display().to_string()),
        ("MASSGEN_FILES", setting.files_file.display().to_string()),
        ("MASSGEN_WORKTREE", setting.worktree.display().to_string()),
        ("MASSGEN_BASE", setting.base.clone()),
        ("MASSGEN_HEAD", setting.head.clone()),
        // Anything it commits must not start a review of its own.
        ("MASSGEN_ACTIVE", "1".into()),
        // git run by the reviewer never finds a repository above the reviewed tree, even
        // if the tree's `.git` is gone.
        (
            "GIT_CEILING_DIRECTORIES",
            setting
                .worktree
                .parent()
                .unwrap_or(&setting.worktree)
                .display()
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(confined_tmp(reviewer, setting))
    .collect()
}

/// A confined reviewer's own `TMPDIR` (`/tmp` is not writable for it), in the review's
/// directory.
fn confined_tmp(reviewer: &Reviewer, setting: &Setting) -> Option<(String, String)> {
    setting.sandbox.as_ref()?;
    let tmp = setting.dir.join("tmp").join(&reviewer.name);
    std::fs::create_dir_all(&tmp).ok()?;
    Some(("TMPDIR".to_owned(), tmp.display().to_string()))
}

/// The findings in an agent's final message: the whole text as JSON, else the last fenced
/// block that is, else the outermost braces ([`ask::json::in_text`]); the error is the
/// feedback for the next attempt.
pub fn findings_in_text(text: &str) -> Result<Value, String> {
    ask::json::in_text(text)
        .ok_or_else(|| "the final message holds no {\"findings\": [...]} JSON".into())
}

/// Default time limit of one reviewer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The reviewers the command line chose: configured ones by name (all when none), ad-hoc
/// command reviewers, and a time limit over the configuration's.
#[derive(Debug, Clone, Default)]
pub struct Chosen {
    pub reviewers: Vec<String>,
    pub reviewer_cmds: Vec<String>,
    pub timeout: Option<Duration>,
}

/// The reviewers: configured ones (or those named), then the ad-hoc ones.
/// The reviewers: configured ones (or those named with --reviewer), then --reviewer-cmd.
pub fn from_config(
    repo: &crate::git::Repo,
    config: &crate::config::Config,
    chosen: &Chosen,
) -> Result<Vec<Reviewer>, PlanError> {
    let timeout = chosen
        .timeout
        .or(config.review.timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    for name in &chosen.reviewers {
        if !config.reviewers.iter().any(|r| r.name.get_ref() == name) {
            let known: Vec<&str> = config
                .reviewers
                .iter()
                .map(|r| r.name.get_ref().as_str())
                .collect();
            return Err(
                PlanError::usage(format!("no reviewer `{name}` in the configuration")).hint(
                    if known.is_empty() {
                        "add [[reviewers]] to .massgen/config.toml".to_owned()
                    } else {
                        format!("configured reviewers: {}", known.join(", "))
                    },
                ),
            );
        }
    }
    let llm = crate::run::plan::llm_shared(repo, config, None, false, Vec::new())?;
    let mut out = Vec::new();
    for c in &config.reviewers {
        let name = c.name.get_ref().clone();
        if !chosen.reviewers.is_empty() && !chosen.reviewers.contains(&name) {
            continue;
        }
        let env: Vec<(String, String)> =
            c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let kind = match crate::agent::cli::Preset::from_kind(c.kind) {
            None => ReviewerKind::Command {
                argv: c.command.clone(),
                env,
            },
            Some(crate::agent::cli::Preset::Llm) => {
                let (spec, key) = crate::run::plan::in_process_llm(c, &llm, "reviewer")?;
                ReviewerKind::Llm {
                    endpoint: Box::new(spec.endpoint),
                    key,
                    max_turns: spec.max_turns,
                }
            }
            Some(preset) => ReviewerKind::Cli {
                cli: Box::new(CliAgent::from_config(preset, c)),
                env,
            },
        };
        out.push(Reviewer {
            name,
            kind,
            timeout: chosen.timeout.or(c.timeout).unwrap_or(timeout),
        });
    }
    for spec in &chosen.reviewer_cmds {
        let (name, argv) = crate::agent::parse_agent_cmd(spec)
            .map_err(|e| PlanError::usage(e.replace("agent `", "reviewer `")))?;
        if out.iter().any(|r| r.name == name) {
            return Err(PlanError::usage(format!(
                "reviewer `{name}` is given twice"
            )));
        }
        out.push(Reviewer {
            name,
            kind: ReviewerKind::Command {
                argv,
                env: Vec::new(),
            },
            timeout,
        });
    }
    if out.is_empty() {
        return Err(PlanError::usage("no reviewers: nothing would look at the change").hint(
            "add [[reviewers]] to .massgen/config.toml (see `git massgen init`), or pass --reviewer-cmd NAME=COMMAND",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_found_in_prose() {
        let fenced = "Here is my review.\n```json\n{\"findings\": [{\"path\": \"a\", \"line\": 1, \"title\": \"t\"}]}\n```\nDone.";
        assert!(findings_in_text(fenced).unwrap()["findings"].is_array());
        let bare = "Review: {\"findings\": []} that is all";
        assert!(findings_in_text(bare).unwrap()["findings"].is_array());
        assert!(findings_in_text("{\"findings\": []}").is_ok());
        assert_eq!(
            findings_in_text("No problems found.").unwrap_err(),
            "the final message holds no {\"findings\": [...]} JSON"
        );
    }
}
