//! Command reviewers: a program run in the reviewed tree (the diff in `MASSGEN_DIFF`, the
//! changed paths in `MASSGEN_FILES`) that prints `{"findings": [...]}` on stdout.
//!
//! An answer of the wrong shape is asked for again with `MASSGEN_ATTEMPT` and
//! `MASSGEN_FEEDBACK` (what was wrong) set, within one time limit for all attempts. A
//! reviewer that exits non-zero has failed: asking again would only crash again.

use std::time::Instant;

use tokio::sync::watch;

use super::{Reviewer, Setting, open_log, review_env, setting_rules};
use crate::agent::process::{self, Job, leftovers};
use crate::ask::{self, Asker, Attempt, GaveUp};
use crate::git::cmd::GIT_REPO_ENV;
use crate::review::Parsed;

/// A command reviewer: runs in the reviewed tree, prints `{"findings": [...]}`.
pub(super) async fn review(
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
    let mut vars = env.to_vec();
    vars.extend(review_env(reviewer, setting));
    let mut asker = CommandReviewer {
        reviewer,
        argv: &argv,
        vars,
        setting,
        deadline: Instant::now() + reviewer.timeout,
        cancel,
        warnings,
    };
    let asked = ask::until_answered(&mut asker, setting.max_attempts).await;
    asked.result.map_err(|gave_up| match gave_up {
        GaveUp::Failed(why) => why,
        GaveUp::Malformed(last) => format!(
            "no valid answer in {} attempt(s); last: {last}",
            asked.attempts
        ),
    })
}

/// A command reviewer, run again for each attempt with the attempt and the feedback in its
/// environment.
struct CommandReviewer<'a> {
    reviewer: &'a Reviewer,
    argv: &'a [String],
    /// Its environment, but for `MASSGEN_ATTEMPT` and `MASSGEN_FEEDBACK`.
    vars: Vec<(String, String)>,
    setting: &'a Setting,
    /// One time limit for all attempts.
    deadline: Instant,
    cancel: watch::Receiver<bool>,
    warnings: &'a mut Vec<String>,
}

impl Asker for CommandReviewer<'_> {
    type Answer = Parsed;

    async fn ask(&mut self, attempt: u32, feedback: &str) -> Attempt<Parsed> {
        self.once(attempt, feedback)
            .await
            .unwrap_or_else(Attempt::Failed)
    }
}

impl CommandReviewer<'_> {
    /// One attempt; `Err` when it failed.
    async fn once(&mut self, attempt: u32, feedback: &str) -> Result<Attempt<Parsed>, String> {
        let stdout_path = self
            .setting
            .log(&self.reviewer.name, &format!("a{attempt}.stdout"));
        let stdout = open_log(&stdout_path)?;
        let stderr_path = self.setting.log(&self.reviewer.name, "stderr");
        let stderr = open_log(&stderr_path)?;
        let mut vars = self.vars.clone();
        vars.push(("MASSGEN_ATTEMPT".into(), attempt.to_string()));
        vars.push(("MASSGEN_FEEDBACK".into(), feedback.to_owned()));
        let job = Job {
            argv: self.argv,
            cwd: &self.setting.worktree,
            env: vars,
            env_remove: GIT_REPO_ENV,
            stdout,
            stderr,
            timeout: self.deadline.saturating_duration_since(Instant::now()),
            watch: None,
            sandbox: setting_rules(self.setting),
        };
        let finished = process::supervise(job, self.cancel.clone(), |_| {})
            .await
            .map_err(|e| format!("cannot start `{}`: {e}", self.argv[0]))?;
        self.warnings
            .extend(leftovers::describe(&finished.leftovers, "the reviewer"));
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
        // "the judge" is the wording reviewers have always been told when they print
        // nothing (the parser was the judges'); kept so that no output changes.
        let answer = ask::json::in_output(&output)
            .map_err(|e| e.describe("the judge"))
            .and_then(|v| super::findings_of(&v));
        Ok(Attempt::checked(answer))
    }
}
