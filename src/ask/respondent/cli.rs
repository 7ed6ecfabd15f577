//! CLI respondents: a coding-agent CLI started read-only in the tree with the prompt; the
//! JSON in its final message is the answer. A malformed answer is asked for again in the
//! same session, where the CLI can resume one.

use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::watch;

use super::{Question, Report, Respondent, Setting, in_message, open_log};
use crate::agent::cli::{CliAgent, LaunchCtx};
use crate::agent::events::Usage;
use crate::agent::process::{self, Job, leftovers};
use crate::ask::{self, Asker, Attempt, GaveUp};
use crate::git::cmd::GIT_REPO_ENV;

pub(super) async fn ask<Q: Question>(
    respondent: &Respondent,
    cli: &CliAgent,
    env: &[(String, String)],
    setting: &Setting,
    question: &Q,
    cancel: watch::Receiver<bool>,
    report: &mut Report,
) -> Result<Q::Answer, GaveUp> {
    let home = setting.dir.join("homes").join(&respondent.name);
    std::fs::create_dir_all(&home)
        .map_err(|e| GaveUp::Failed(format!("cannot create {}: {e}", home.display())))?;
    let mut asker = CliAsker {
        respondent,
        cli,
        env,
        setting,
        question,
        home,
        deadline: Instant::now() + respondent.timeout,
        cancel,
        session: None,
        usage: Usage::default(),
        report,
    };
    let asked = ask::until_answered(&mut asker, setting.max_attempts).await;
    asker.report.attempts = asked.attempts;
    asked.result
}

/// A CLI: launched with the prompt, then resumed with the feedback.
struct CliAsker<'a, Q> {
    respondent: &'a Respondent,
    cli: &'a CliAgent,
    env: &'a [(String, String)],
    setting: &'a Setting,
    question: &'a Q,
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
    report: &'a mut Report,
}

impl<Q: Question> Asker for CliAsker<'_, Q> {
    type Answer = Q::Answer;

    async fn ask(&mut self, attempt: u32, feedback: &str) -> Attempt<Q::Answer> {
        self.once(attempt, feedback)
            .await
            .unwrap_or_else(Attempt::Failed)
    }

    /// A malformed answer is asked again only in its session: a fresh one would start all
    /// over again.
    fn can_ask_again(&self) -> bool {
        self.session.is_some()
    }
}

impl<Q: Question> CliAsker<'_, Q> {
    /// One attempt; `Err` when it failed.
    async fn once(&mut self, attempt: u32, feedback: &str) -> Result<Attempt<Q::Answer>, String> {
        let (cli, setting) = (self.cli, self.setting);
        let prompt = if attempt == 1 {
            setting.prompt.clone()
        } else {
            format!(
                "Your answer could not be used: {feedback}. Reply with only the JSON object \
                 {} described before, and nothing else.",
                self.question.shape()
            )
        };
        let launch = cli.launch(&LaunchCtx {
            prompt: &prompt,
            worktree: &setting.tree,
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
        vars.extend(setting.env.iter().cloned());
        let name = &self.respondent.name;
        let job = Job {
            argv: &launch.argv,
            cwd: &setting.tree,
            env: vars,
            env_remove: GIT_REPO_ENV,
            stdout: open_log(&setting.log(name, "stdout"))?,
            stderr: open_log(&setting.log(name, "stderr"))?,
            timeout: self.deadline.saturating_duration_since(Instant::now()),
            watch: Some(watcher),
            sandbox: setting.sandbox.clone(),
            remote: None,
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
        self.report.warnings.extend(leftovers::describe(
            &finished.leftovers,
            self.question.role(),
        ));
        let this = reading.report();
        if this.has_usage {
            if cli.preset.cumulative_usage() {
                self.usage = this.usage.clone();
            } else {
                self.usage.add(&this.usage);
            }
            self.report.usage = Some(self.usage.clone());
        }
        if !finished.success() || this.ok == Some(false) {
            return Err(this.error.unwrap_or_else(|| finished.describe()));
        }
        let answer = this
            .final_message
            .as_deref()
            .ok_or_else(|| "the agent ended without a message".to_owned())
            .and_then(|text| in_message(self.question, text))
            .and_then(|v| self.question.check(&v));
        if answer.is_err() {
            // Where to ask again, if anywhere.
            self.session = this.session_id.filter(|_| cli.preset.can_resume());
        }
        Ok(Attempt::checked(answer))
    }
}
