//! CLI reviewers: a coding-agent CLI started read-only in the reviewed tree with the review
//! prompt; the JSON in its final message is the answer. A malformed answer is asked for
//! again in the same session, where the CLI can resume one.

use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::watch;

use super::{Reviewer, Setting, findings_in_text, open_log, review_env, setting_rules};
use crate::agent::cli::{CliAgent, LaunchCtx};
use crate::agent::events::Usage;
use crate::agent::process::{self, Job, leftovers};
use crate::ask::{self, Asker, Attempt, GaveUp};
use crate::git::cmd::GIT_REPO_ENV;
use crate::review::{Parsed, ReviewerOutcome};

/// A CLI preset: started read-only in the reviewed tree; its final message is the answer.
/// A malformed answer is asked again in the same session where the CLI can resume.
pub(super) async fn review(
    reviewer: &Reviewer,
    cli: &CliAgent,
    env: &[(String, String)],
    setting: &Setting,
    cancel: watch::Receiver<bool>,
    outcome: &mut ReviewerOutcome,
) -> Result<Parsed, String> {
    let home = setting.dir.join("homes").join(&reviewer.name);
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let mut asker = CliReviewer {
        reviewer,
        cli,
        env,
        setting,
        home,
        deadline: Instant::now() + reviewer.timeout,
        cancel,
        session: None,
        usage: Usage::default(),
        outcome,
    };
    let asked = ask::until_answered(&mut asker, setting.max_attempts).await;
    asked.result.map_err(|gave_up| match gave_up {
        GaveUp::Failed(why) => why,
        GaveUp::Malformed(last) => format!("no valid answer: {last}"),
    })
}

/// A CLI reviewer: launched with the review prompt, then resumed with the feedback.
struct CliReviewer<'a> {
    reviewer: &'a Reviewer,
    cli: &'a CliAgent,
    env: &'a [(String, String)],
    setting: &'a Setting,
    /// Its configuration home.
    home: PathBuf,
    /// One time limit for all attempts.
    deadline: Instant,
    cancel: watch::Receiver<bool>,
    /// The session to resume, when the CLI can resume one.
    session: Option<String>,
    /// Over all attempts.
    usage: Usage,
    /// Its warnings and usage go here as they come.
    outcome: &'a mut ReviewerOutcome,
}

impl Asker for CliReviewer<'_> {
    type Answer = Parsed;

    async fn ask(&mut self, attempt: u32, feedback: &str) -> Attempt<Parsed> {
        self.once(attempt, feedback)
            .await
            .unwrap_or_else(Attempt::Failed)
    }

    /// A malformed answer is asked again only in its session: a fresh one would review
    /// all over again.
    fn can_ask_again(&self) -> bool {
        self.session.is_some()
    }
}

impl CliReviewer<'_> {
    /// One attempt; `Err` when it failed.
    async fn once(&mut self, attempt: u32, feedback: &str) -> Result<Attempt<Parsed>, String> {
        let (cli, setting) = (self.cli, self.setting);
        let prompt = if attempt == 1 {
            setting.prompt.clone()
        } else {
            format!(
                "Your answer could not be read: {feedback}. Reply with only the JSON object \
                 {{\"findings\": [...]}} described before, and nothing else."
            )
        };
        let launch = cli.launch(&LaunchCtx {
            prompt: &prompt,
            worktree: &setting.worktree,
            home: &self.home,
            resume: self.session.as_deref(),
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
        vars.extend(self.env.iter().cloned());
        vars.extend(review_env(self.reviewer, setting));
        let job = Job {
            argv: &launch.argv,
            cwd: &setting.worktree,
            env: vars,
            env_remove: GIT_REPO_ENV,
            stdout: open_log(&setting.log(&self.reviewer.name, "stdout"))?,
            stderr: open_log(&setting.log(&self.reviewer.name, "stderr"))?,
            timeout: self.deadline.saturating_duration_since(Instant::now()),
            watch: Some(watcher),
            sandbox: setting_rules(setting),
        };
        let finished = process::supervise(job, self.cancel.clone(), |_| {})
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "cannot start `{}`: not found ({})",
                    launch.argv[0],
                    cli.preset.install_hint()
                ),
                _ => format!("cannot start `{}`: {e}", launch.argv[0]),
            })?;
        self.outcome
            .warnings
            .extend(leftovers::describe(&finished.leftovers, "the reviewer"));
        let this = reading.report();
        if this.has_usage {
            if cli.preset.cumulative_usage() {
                self.usage = this.usage.clone();
            } else {
                self.usage.add(&this.usage);
            }
            self.outcome.usage = Some(self.usage.clone());
        }
        if !finished.success() || this.ok == Some(false) {
            return Err(this.error.unwrap_or_else(|| finished.describe()));
        }
        let answer = this
            .final_message
            .as_deref()
            .ok_or_else(|| "the agent ended without a message".to_owned())
            .and_then(findings_in_text)
            .and_then(|v| super::findings_of(&v));
        if answer.is_err() {
            // Where to ask again, if anywhere.
            self.session = this.session_id.filter(|_| cli.preset.can_resume());
        }
        Ok(Attempt::checked(answer))
    }
}
