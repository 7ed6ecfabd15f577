//! Command respondents: a program run in the tree that prints its JSON answer on stdout.
//!
//! An answer of the wrong shape is asked for again with `MASSGEN_ATTEMPT` and
//! `MASSGEN_FEEDBACK` (what was wrong) set, within one time limit for all attempts. A
//! program that exits non-zero has failed: asking again would only crash again.

use std::time::Instant;

use tokio::sync::watch;

use super::{Question, Report, Respondent, Setting, open_log};
use crate::agent::process::{self, Job, leftovers};
use crate::ask::{self, Asker, Attempt, GaveUp};
use crate::git::cmd::GIT_REPO_ENV;

pub(super) async fn ask<Q: Question>(
    respondent: &Respondent,
    argv: &[String],
    env: &[(String, String)],
    setting: &Setting,
    question: &Q,
    cancel: watch::Receiver<bool>,
    report: &mut Report,
) -> Result<Q::Answer, GaveUp> {
    let placeholders: Vec<(&str, &str)> = setting
        .placeholders
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let argv: Vec<String> = argv
        .iter()
        .map(|a| crate::agent::fill(a, &placeholders))
        .collect();
    let mut vars = env.to_vec();
    vars.extend(setting.env.iter().cloned());
    let mut asker = CommandAsker {
        respondent,
        argv: &argv,
        vars,
        setting,
        question,
        deadline: Instant::now() + respondent.timeout,
        cancel,
        warnings: &mut report.warnings,
    };
    let asked = ask::until_answered(&mut asker, setting.max_attempts).await;
    report.attempts = asked.attempts;
    asked.result
}

/// A command, run again for each attempt with the attempt and the feedback in its
/// environment.
struct CommandAsker<'a, Q> {
    respondent: &'a Respondent,
    argv: &'a [String],
    /// Its environment, but for `MASSGEN_ATTEMPT` and `MASSGEN_FEEDBACK`.
    vars: Vec<(String, String)>,
    setting: &'a Setting,
    question: &'a Q,
    /// One time limit for all attempts.
    deadline: Instant,
    cancel: watch::Receiver<bool>,
    warnings: &'a mut Vec<String>,
}

impl<Q: Question> Asker for CommandAsker<'_, Q> {
    type Answer = Q::Answer;

    async fn ask(&mut self, attempt: u32, feedback: &str) -> Attempt<Q::Answer> {
        self.once(attempt, feedback)
            .await
            .unwrap_or_else(Attempt::Failed)
    }
}

impl<Q: Question> CommandAsker<'_, Q> {
    /// One attempt; `Err` when it failed.
    async fn once(&mut self, attempt: u32, feedback: &str) -> Result<Attempt<Q::Answer>, String> {
        let name = &self.respondent.name;
        let stdout_path = self.setting.log(name, &format!("a{attempt}.stdout"));
        let stdout = open_log(&stdout_path)?;
        let stderr_path = self.setting.log(name, "stderr");
        let stderr = open_log(&stderr_path)?;
        let mut vars = self.vars.clone();
        vars.push(("MASSGEN_ATTEMPT".into(), attempt.to_string()));
        vars.push(("MASSGEN_FEEDBACK".into(), feedback.to_owned()));
        let job = Job {
            argv: self.argv,
            cwd: &self.setting.tree,
            env: vars,
            env_remove: GIT_REPO_ENV,
            stdout,
            stderr,
            timeout: self.deadline.saturating_duration_since(Instant::now()),
            watch: None,
            sandbox: self.setting.sandbox.clone(),
            remote: None,
        };
        let finished = process::supervise(job, self.cancel.clone(), |_| {})
            .await
            .map_err(|e| format!("cannot start `{}`: {e}", self.argv[0]))?;
        self.warnings.extend(leftovers::describe(
            &finished.leftovers,
            self.question.role(),
        ));
        if finished.cancelled || finished.timed_out {
            return Err(finished.describe());
        }
        if !finished.success() {
            let said =
                ask::json::last_line(&std::fs::read_to_string(&stderr_path).unwrap_or_default());
            // A crash is not a malformed answer: asking again would only crash again.
            return Err(format!(
                "{}{}",
                finished.describe(),
                said.map_or_else(String::new, |l| format!(": {l}"))
            ));
        }
        let output = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        let answer = ask::json::in_output(&output)
            .map_err(|e| e.describe(self.question.role()))
            .and_then(|v| self.question.check(&v));
        Ok(Attempt::checked(answer))
    }
}
