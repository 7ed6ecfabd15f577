//! Running one reviewer: a command, a CLI preset, or the built-in LLM backends. Each reads
//! the change and answers `{"findings": [...]}`; an answer of the wrong shape is retried
//! with what was wrong, up to the attempts allowed, and then the reviewer has failed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use super::{Parsed, ReviewerOutcome, parse_findings};
use crate::agent::cli::{CliAgent, LaunchCtx};
use crate::agent::process::{self, Job, leftovers};
use crate::git::cmd::GIT_REPO_ENV;
use crate::judge::Secret;
use crate::judge::command::{last_line, parse};

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
    pub max_attempts: u32,
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
                command(reviewer, argv, env, setting, cancel, &mut outcome.warnings).await
            }
            ReviewerKind::Cli { cli, env } => {
                run_cli(reviewer, cli, env, setting, cancel, &mut outcome).await
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
    match answer {
        Ok(parsed) => {
            outcome.ok = true;
            outcome.findings = parsed.findings;
            outcome.rejected = parsed.rejected;
        }
        Err(e) => outcome.error = Some(e),
    }
    outcome.duration_ms = start.elapsed().as_millis() as u64;
    outcome
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
    .collect()
}

/// A command reviewer: runs in the reviewed tree, prints `{"findings": [...]}`.
async fn command(
    reviewer: &Reviewer,
    argv: &[String],
    env: &[(String, String)],
    setting: &Setting,
    cancel: watch::Receiver<bool>,
    warnings: &mut Vec<String>,
) -> Result<Parsed, String> {
    let (diff, wt) = (
        setting.diff_file.display().to_string(),
        setting.worktree.display().to_string(),
    );
    let argv: Vec<String> = argv
        .iter()
        .map(|a| {
            crate::agent::fill(
                a,
                &[
                    ("diff", &diff),
                    ("worktree", &wt),
                    ("base", &setting.base),
                    ("head", &setting.head),
                ],
            )
        })
        .collect();
    let mut feedback = String::new();
    let deadline = Instant::now() + reviewer.timeout;
    for attempt in 1..=setting.max_attempts {
        let stdout_path = setting.log(&reviewer.name, &format!("a{attempt}.stdout"));
        let stdout = open_log(&stdout_path)?;
        let stderr_path = setting.log(&reviewer.name, "stderr");
        let stderr = open_log(&stderr_path)?;
        let mut vars = env.to_vec();
        vars.extend(review_env(reviewer, setting));
        vars.push(("MASSGEN_ATTEMPT".into(), attempt.to_string()));
        vars.push(("MASSGEN_FEEDBACK".into(), feedback.clone()));
        let job = Job {
            argv: &argv,
            cwd: &setting.worktree,
            env: vars,
            env_remove: GIT_REPO_ENV,
            stdout,
            stderr,
            // One time limit for all attempts.
            timeout: deadline.saturating_duration_since(Instant::now()),
            watch: None,
        };
        let finished = process::supervise(job, cancel.clone(), |_| {})
            .await
            .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
        warnings.extend(leftovers::describe(&finished.leftovers, "the reviewer"));
        if finished.cancelled || finished.timed_out {
            return Err(finished.describe());
        }
        let output = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if !finished.success() {
            let said = last_line(&std::fs::read_to_string(&stderr_path).unwrap_or_default());
            // A crash is not a malformed answer: asking again would only crash again.
            return Err(format!(
                "{}{}",
                finished.describe(),
                said.map_or_else(String::new, |l| format!(": {l}"))
            ));
        }
        match parse(&output).and_then(|v| parse_findings(&v)) {
            Ok(parsed) => return Ok(parsed),
            Err(why) => feedback = why,
        }
    }
    Err(format!(
        "no valid answer in {} attempt(s); last: {feedback}",
        setting.max_attempts
    ))
}

/// The findings in an agent's final message: the whole text as JSON, else the last fenced
/// block that is, else the outermost braces.
pub fn findings_in_text(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    let mut blocks: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
        let Some(close) = after[body_start..].find("```") else {
            break;
        };
        blocks.push(&after[body_start..body_start + close]);
        rest = &after[body_start + close + 3..];
    }
    for block in blocks.iter().rev() {
        if let Ok(v) = serde_json::from_str::<Value>(block.trim()) {
            return Ok(v);
        }
    }
    if let (Some(a), Some(b)) = (text.find('{'), text.rfind('}'))
        && a < b
        && let Ok(v) = serde_json::from_str::<Value>(&text[a..=b])
    {
        return Ok(v);
    }
    Err("the final message holds no {\"findings\": [...]} JSON".into())
}

/// A CLI preset: started read-only in the reviewed tree; its final message is the answer.
/// A malformed answer is asked again in the same session where the CLI can resume.
async fn run_cli(
    reviewer: &Reviewer,
    cli: &CliAgent,
    env: &[(String, String)],
    setting: &Setting,
    cancel: watch::Receiver<bool>,
    outcome: &mut ReviewerOutcome,
) -> Result<Parsed, String> {
    let home = setting.dir.join("homes").join(&reviewer.name);
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let deadline = Instant::now() + reviewer.timeout;
    let mut prompt = setting.prompt.clone();
    let mut session: Option<String> = None;
    let mut last_problem = String::new();
    let mut usage = crate::agent::events::Usage::default();
    for _ in 0..setting.max_attempts {
        let launch = cli.launch(&LaunchCtx {
            prompt: &prompt,
            worktree: &setting.worktree,
            home: &home,
            resume: session.as_deref(),
            read_only: true,
        });
        launch.write_files().map_err(|e| {
            format!(
                "cannot write the configuration of {}: {e}",
                cli.preset.title()
            )
        })?;
        let (reading, watcher) = cli.reading(|_| {});
        let mut vars = launch.env.clone();
        vars.extend(env.iter().cloned());
        vars.extend(review_env(reviewer, setting));
        let job = Job {
            argv: &launch.argv,
            cwd: &setting.worktree,
            env: vars,
            env_remove: GIT_REPO_ENV,
            stdout: open_log(&setting.log(&reviewer.name, "stdout"))?,
            stderr: open_log(&setting.log(&reviewer.name, "stderr"))?,
            timeout: deadline.saturating_duration_since(Instant::now()),
            watch: Some(watcher),
        };
        let finished = process::supervise(job, cancel.clone(), |_| {})
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "cannot start `{}`: not found ({})",
                    launch.argv[0],
                    cli.preset.install_hint()
                ),
                _ => format!("cannot start `{}`: {e}", launch.argv[0]),
            })?;
        outcome
            .warnings
            .extend(leftovers::describe(&finished.leftovers, "the reviewer"));
        let this = reading.report();
        if this.has_usage {
            if cli.preset.cumulative_usage() {
                usage = this.usage.clone();
            } else {
                usage.add(&this.usage);
            }
            outcome.usage = Some(usage.clone());
        }
        if !finished.success() || this.ok == Some(false) {
            return Err(this.error.unwrap_or_else(|| finished.describe()));
        }
        let answer = this
            .final_message
            .as_deref()
            .ok_or_else(|| "the agent ended without a message".to_owned())
            .and_then(findings_in_text)
            .and_then(|v| parse_findings(&v));
        match answer {
            Ok(parsed) => return Ok(parsed),
            Err(why) => last_problem = why,
        }
        session = this.session_id.filter(|_| cli.preset.can_resume());
        if session.is_none() {
            break;
        }
        prompt = format!(
            "Your answer could not be read: {last_problem}. Reply with only the JSON object \
             {{\"findings\": [...]}} described before, and nothing else."
        );
    }
    Err(format!("no valid answer: {last_problem}"))
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
        assert!(findings_in_text("No problems found.").is_err());
    }
}
