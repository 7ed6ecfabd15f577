//! Asking one configured agent of any kind for one JSON answer: a command (`command.rs`:
//! run again with the feedback in its environment), a CLI preset (`cli.rs`: started
//! read-only, resumed with the feedback), or the built-in LLM backends (`llm.rs`: one
//! conversation with the read-only tools and a single answer tool). Reviewers and the
//! planner are asked this way; what differs between them is the [`Question`]: how an answer
//! is checked and the words that ask for it again.
//!
//! The respondent works in a tree it must not change (`Setting::tree`) and may write only
//! its own directory (`Setting::dir`: `logs/`, `homes/`), which the caller's sandbox rules
//! are expected to allow. Nothing here knows of findings, plans or runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::{GaveUp, Secret};
use crate::agent::cli::CliAgent;
use crate::agent::events::Usage;
use crate::llm::chat::ToolSpec;

mod cli;
mod command;
mod llm;

/// An agent resolved from configuration, to be asked for an answer.
#[derive(Debug, Clone)]
pub struct Respondent {
    pub name: String,
    pub kind: Kind,
    /// For all attempts together.
    pub timeout: Duration,
}

/// How a respondent is run.
#[derive(Debug, Clone)]
pub enum Kind {
    /// argv with placeholders ([`Setting::placeholders`]), and its env.
    Command {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    /// A coding-agent CLI, started read-only in the tree with the prompt.
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

impl Kind {
    /// `command`, `llm` or the CLI preset's name.
    pub fn name(&self) -> String {
        match self {
            Kind::Command { .. } => "command".into(),
            Kind::Cli { cli, .. } => cli.preset.name().into(),
            Kind::Llm { .. } => "llm".into(),
        }
    }
}

/// Where and with what a respondent is asked.
#[derive(Debug, Clone)]
pub struct Setting {
    /// Its own directory: `logs/<name>.<stream>.log` and `homes/<name>` go here.
    pub dir: PathBuf,
    /// Where it runs, and what the LLM's read-only tools read; never written.
    pub tree: PathBuf,
    /// What it is asked (CLI and LLM kinds; commands get it through `placeholders` and
    /// `env` as the caller chooses).
    pub prompt: String,
    /// Placeholders filled in a command's argv (`("diff", "/path")` fills `{diff}`).
    pub placeholders: Vec<(String, String)>,
    /// Variables every process gets, after its own `env`.
    pub env: Vec<(String, String)>,
    /// How its processes are confined; `dir` must be writable under these rules.
    pub sandbox: Option<crate::sandbox::Rules>,
    pub max_attempts: u32,
}

impl Setting {
    fn log(&self, respondent: &str, stream: &str) -> PathBuf {
        self.dir
            .join("logs")
            .join(format!("{respondent}.{stream}.log"))
    }
}

/// What is asked: how an answer is checked, and the words that ask for it (again).
pub trait Question: Sync {
    /// The answer once checked.
    type Answer: Send;

    /// Checks an answer (a command's JSON, a CLI's final message as JSON, the answer tool's
    /// arguments); `Err` says what is wrong, and is told on the next attempt.
    fn check(&self, answer: &Value) -> Result<Self::Answer, String>;

    /// Who answers, as messages name it: `the reviewer`.
    fn role(&self) -> &'static str;

    /// The answer's shape in a few characters: `{"findings": [...]}`.
    fn shape(&self) -> &'static str;

    /// The LLM's system prompt.
    fn system(&self) -> &'static str;

    /// The LLM's answer tool; the read-only tools are offered beside it.
    fn tool(&self) -> ToolSpec;

    /// Told to an LLM that replied without calling a tool.
    fn nudge(&self) -> &'static str;
}

/// What asking left beside the answer, kept whether or not an answer came.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Attempts made (answers asked for).
    pub attempts: u32,
    /// Over all attempts, when the respondent reports it.
    pub usage: Option<Usage>,
    /// Processes it left running, answers cut at the output limit, ...
    pub warnings: Vec<String>,
}

/// Asks `respondent` until its answer passes `question`'s check, the attempts allowed are
/// spent, it fails, its time limit passes or `cancel` turns true. `Err` says why no answer
/// came: [`GaveUp::Failed`] when it could not be asked (it could not start, crashed, timed
/// out, was interrupted), [`GaveUp::Malformed`] with the last problem when no answer was
/// right ([`describe`] says either in one line).
pub async fn ask<Q: Question>(
    respondent: &Respondent,
    setting: &Setting,
    question: &Q,
    cancel: watch::Receiver<bool>,
    report: &mut Report,
) -> Result<Q::Answer, GaveUp> {
    std::fs::create_dir_all(setting.dir.join("logs"))
        .map_err(|e| GaveUp::Failed(format!("cannot create the log directory: {e}")))?;
    match &respondent.kind {
        Kind::Command { argv, env } => {
            command::ask(respondent, argv, env, setting, question, cancel, report).await
        }
        Kind::Cli { cli, env } => {
            cli::ask(respondent, cli, env, setting, question, cancel, report).await
        }
        Kind::Llm {
            endpoint,
            key,
            max_turns,
        } => {
            let mut cancel = cancel;
            let run = llm::ask(
                respondent,
                endpoint,
                key.as_ref(),
                *max_turns,
                setting,
                question,
                report,
            );
            tokio::select! {
                r = tokio::time::timeout(respondent.timeout, run) => r.unwrap_or_else(|_| Err(GaveUp::Failed(format!(
                    "timed out after {}",
                    humantime::format_duration(respondent.timeout)
                )))),
                _ = cancel.wait_for(|c| *c) => Err(GaveUp::Failed("interrupted".into())),
            }
        }
    }
}

/// Why no answer came, in one line; `attempts` as in the [`Report`].
pub fn describe(gave_up: &GaveUp, attempts: u32) -> String {
    match gave_up {
        GaveUp::Failed(why) => why.clone(),
        GaveUp::Malformed(last) if attempts == 0 => last.clone(),
        GaveUp::Malformed(last) => {
            format!("no valid answer in {attempts} attempt(s); last: {last}")
        }
    }
}

fn open_log(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// The JSON in an agent's final message ([`super::json::in_text`]); the error is the
/// feedback for the next attempt.
fn in_message<Q: Question>(question: &Q, text: &str) -> Result<Value, String> {
    super::json::in_text(text)
        .ok_or_else(|| format!("the final message holds no {} JSON", question.shape()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shape;

    impl Question for Shape {
        type Answer = u64;
        fn check(&self, answer: &Value) -> Result<u64, String> {
            answer["n"].as_u64().ok_or_else(|| "no `n`".into())
        }
        fn role(&self) -> &'static str {
            "the counter"
        }
        fn shape(&self) -> &'static str {
            "{\"n\": 1}"
        }
        fn system(&self) -> &'static str {
            ""
        }
        fn tool(&self) -> ToolSpec {
            ToolSpec {
                name: "count",
                description: "",
                schema: serde_json::json!({}),
            }
        }
        fn nudge(&self) -> &'static str {
            ""
        }
    }

    #[test]
    fn a_final_message_without_json_names_the_shape_asked_for() {
        assert_eq!(
            in_message(&Shape, "Here: ```json\n{\"n\": 2}\n```").map(|v| Shape.check(&v)),
            Ok(Ok(2))
        );
        assert_eq!(
            in_message(&Shape, "No idea.").unwrap_err(),
            "the final message holds no {\"n\": 1} JSON"
        );
        assert_eq!(
            describe(&GaveUp::Malformed("no `n`".into()), 3),
            "no valid answer in 3 attempt(s); last: no `n`"
        );
        assert_eq!(describe(&GaveUp::Failed("crashed".into()), 1), "crashed");
    }
}
