//! Judges: commands or LLMs that see the task and the candidates, anonymized, and vote for
//! one with a reason.
//!
//! A judge never sees an agent's name: each candidate gets a label (A, B, C, ...) in an
//! order shuffled for each judge and round, its diff is cut to a budget (with the list of all
//! changed files), and its test evidence and size come with it. The same anonymized view is
//! what agents see of their peers in refinement rounds ([`Ballot::anonymize`]).

pub mod command;
pub mod llm;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::agent::events::Usage;
use crate::ask::cut;
use crate::model::TestResult;

/// The API key of an LLM judge (shared with reviewers, so it lives in [`crate::ask`]).
pub use crate::ask::Secret;

/// Default characters of one candidate's diff that a judge sees.
pub const DEFAULT_DIFF_BUDGET: usize = 30_000;
/// Default answers a judge may give before it abstains.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default time limit of one judge.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// One candidate as the judges see it (the agent's name stays here, outside every view).
#[derive(Debug, Clone)]
pub struct Entry {
    pub agent: String,
    pub patch: String,
    pub files: Vec<String>,
    pub insertions: usize,
    pub deletions: usize,
    pub tests: Option<TestResult>,
}

/// The task and the candidates to choose from.
#[derive(Debug, Clone)]
pub struct Ballot {
    pub task: String,
    pub entries: Vec<Entry>,
    pub diff_budget: usize,
}

/// A ballot as one judge (or agent) sees it: labels instead of names.
#[derive(Debug, Clone)]
pub struct View {
    /// `(label, index into the ballot's entries)`, in the order shown.
    pub labels: Vec<(String, usize)>,
    /// `{"task", "candidates": [{"label", "patch", "files", ...}]}`
    pub json: Value,
    /// The same for a model to read.
    pub text: String,
}

impl View {
    /// The agent behind a label.
    pub fn resolve<'a>(&self, ballot: &'a Ballot, label: &str) -> Option<&'a str> {
        let label = label.trim().trim_start_matches("Candidate ").trim();
        self.labels
            .iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(label))
            .map(|(_, i)| ballot.entries[*i].agent.as_str())
    }

    pub fn label_list(&self) -> String {
        self.labels
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The label of an agent's candidate.
    pub fn label_of(&self, ballot: &Ballot, agent: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(_, i)| ballot.entries[*i].agent == agent)
            .map(|(l, _)| l.as_str())
    }
}

/// `A`..`Z`, then `AA`, `AB`, ...
pub fn label(i: usize) -> String {
    let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
    if i < 26 {
        letter(i).to_string()
    } else {
        format!("{}{}", letter(i / 26 - 1), letter(i))
    }
}

/// A permutation of `0..n` drawn from `seed` (the same seed, the same order).
pub fn shuffled(n: usize, seed: &str) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(fnv(seed));
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    order
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Serialize)]
struct Shown<'a> {
    label: &'a str,
    patch: String,
    /// Whether the patch was cut to the budget (`files` still lists every file).
    patch_cut: bool,
    files: &'a [String],
    files_changed: usize,
    insertions: usize,
    deletions: usize,
    tests: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    yours: Option<bool>,
}

fn tests_json(t: &TestResult) -> Value {
    json!({
        "ok": t.ok(),
        "summary": t.summary(),
        "passed": t.passed,
        "failed": t.failed,
        "errors": t.errors,
        "skipped": t.skipped,
        "exit_code": t.exit_code,
        "timed_out": t.timed_out,
        "could_not_collect": t.could_not_collect,
    })
}

impl Ballot {
    /// The view for `seed` (a judge's name and the round): labels in shuffled order. With
    /// `own`, that agent's candidate is marked as the viewer's own.
    pub fn anonymize(&self, seed: &str, own: Option<&str>) -> View {
        let order = shuffled(self.entries.len(), seed);
        let labels: Vec<(String, usize)> = order
            .iter()
            .enumerate()
            .map(|(pos, &i)| (label(pos), i))
            .collect();
        let mut shown = Vec::new();
        let mut text = String::new();
        for (l, i) in &labels {
            let e = &self.entries[*i];
            let (patch, was_cut) = cut(&e.patch, self.diff_budget);
            let yours = own.map(|o| o == e.agent);
            let tests = e
                .tests
                .as_ref()
                .map_or_else(|| "no tests ran".to_owned(), TestResult::summary);
            text.push_str(&format!(
                "## Candidate {l}{}\n\nTests: {tests}\nSize: {} file(s), +{} -{}\nFiles: {}\n\n```diff\n{patch}```\n",
                if yours == Some(true) { " (yours)" } else { "" },
                e.files.len(),
                e.insertions,
                e.deletions,
                e.files.join(", "),
            ));
            if was_cut {
                text.push_str(&format!(
                    "(diff cut to {} characters; every changed file is listed above)\n",
                    self.diff_budget
                ));
            }
            text.push('\n');
            shown.push(Shown {
                label: l,
                patch,
                patch_cut: was_cut,
                files: &e.files,
                files_changed: e.files.len(),
                insertions: e.insertions,
                deletions: e.deletions,
                tests: e.tests.as_ref().map(tests_json),
                yours,
            });
        }
        let json = json!({ "task": self.task, "candidates": shown });
        View { labels, json, text }
    }
}

/// A judge, resolved from configuration.
#[derive(Debug, Clone)]
pub struct Judge {
    pub name: String,
    pub kind: JudgeKind,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum JudgeKind {
    /// argv with placeholders `{candidates}`, `{task_file}`, `{run}`, `{round}`, and its env.
    Command {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    /// The built-in HTTP client.
    Llm {
        endpoint: Box<crate::llm::Endpoint>,
        key: Option<Secret>,
    },
}

/// What a judge needs besides the ballot.
#[derive(Debug, Clone)]
pub struct Setting {
    pub run: String,
    pub turn: u32,
    pub round: u32,
    /// Where the judge's files (input, output, logs) go.
    pub dir: PathBuf,
    pub max_attempts: u32,
    /// `judge.md`: `{task}`, `{candidates}`, `{labels}`.
    pub template: String,
    /// How a command judge is confined (it may write its own directory and `dir`).
    pub sandbox: Option<crate::sandbox::Rules>,
    /// Makes a command judge's Slurm job, by the judge's name, when judges run as jobs;
    /// its directory is then made under `dir`, which the nodes see.
    pub remote: Option<Remote>,
}

/// A Slurm submission for a judge, by the judge's name.
#[derive(Clone)]
pub struct Remote(pub std::sync::Arc<SubmitFor>);

/// Makes the Slurm submission of a named judge.
pub type SubmitFor = dyn Fn(&str) -> Option<crate::agent::process::slurm::Submit> + Send + Sync;

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

/// What came of asking one judge.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub judge: String,
    /// The agent voted for, and why.
    pub vote: Option<(String, String)>,
    /// Why it abstained.
    pub abstained: Option<String>,
    pub attempts: u32,
    pub usage: Option<Usage>,
    /// Things worth telling about the asking (processes a command judge left running).
    pub warnings: Vec<String>,
}

/// Checks one answer `{"vote": "<label>", "reason": "..."}` against a view; the error says
/// what was wrong, for the retry.
pub fn check_vote(view: &View, ballot: &Ballot, value: &Value) -> Result<(String, String), String> {
    let label = value
        .get("vote")
        .or_else(|| value.get("candidate"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "no \"vote\" label: answer {{\"vote\": \"<label>\", \"reason\": \"...\"}} with one of {}",
                view.label_list()
            )
        })?;
    let agent = view.resolve(ballot, label).ok_or_else(|| {
        format!(
            "\"{label}\" is not a candidate; vote for one of {}",
            view.label_list()
        )
    })?;
    let reason = value
        .get("reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    if reason.is_empty() {
        return Err("the vote has no \"reason\"; say in a sentence why".into());
    }
    Ok((agent.to_owned(), reason.to_owned()))
}

/// Asks a judge, within its time limit; cancellation stops it.
pub async fn ask(
    judge: &Judge,
    ballot: &Ballot,
    setting: &Setting,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Verdict {
    let seed = format!(
        "{}/{}/{}/{}",
        setting.run, setting.turn, setting.round, judge.name
    );
    let view = ballot.anonymize(&seed, None);
    match &judge.kind {
        // The command's own supervision enforces the time limit and cancellation, and
        // kills its process group.
        JudgeKind::Command { argv, env } => {
            command::ask(judge, argv, env, ballot, &view, setting, cancel).await
        }
        JudgeKind::Llm { endpoint, key } => {
            let stopped = |why: String| Verdict {
                judge: judge.name.clone(),
                abstained: Some(why),
                ..Default::default()
            };
            let mut cancel = cancel;
            tokio::select! {
                verdict = tokio::time::timeout(judge.timeout, llm::ask(judge, endpoint, key.as_ref(), ballot, &view, setting)) => {
                    verdict.unwrap_or_else(|_| stopped(format!(
                        "timed out after {}",
                        humantime::format_duration(judge.timeout)
                    )))
                }
                _ = cancel.wait_for(|c| *c) => stopped("interrupted".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot() -> Ballot {
        Ballot {
            task: "fix it".into(),
            entries: ["alpha-agent", "beta-agent", "gamma-agent"]
                .iter()
                .map(|a| Entry {
                    agent: (*a).into(),
                    patch: format!("+line by {}\n", a.len()),
                    files: vec!["f.txt".into()],
                    insertions: 1,
                    deletions: 0,
                    tests: None,
                })
                .collect(),
            diff_budget: 100,
        }
    }

    #[test]
    fn labels_run_past_z() {
        assert_eq!(label(0), "A");
        assert_eq!(label(25), "Z");
        assert_eq!(label(26), "AA");
        assert_eq!(label(27), "AB");
    }

    #[test]
    fn views_hide_names_and_shuffle_per_seed() {
        let b = ballot();
        let v = b.anonymize("run/1/1/j1", None);
        let text = format!("{}{}", v.text, v.json);
        for a in ["alpha", "beta", "gamma"] {
            assert!(!text.contains(a), "{text}");
        }
        // The same seed gives the same order; some seed gives another.
        assert_eq!(b.anonymize("run/1/1/j1", None).labels, v.labels);
        assert!(
            (0..20).any(|i| b.anonymize(&format!("s{i}"), None).labels != v.labels),
            "orders never differ"
        );
        for (l, i) in &v.labels {
            assert_eq!(v.resolve(&b, l), Some(b.entries[*i].agent.as_str()));
        }
    }

    #[test]
    fn votes_are_checked() {
        let b = ballot();
        let v = b.anonymize("x", None);
        let ok = check_vote(&v, &b, &json!({"vote": "b", "reason": "tidy"})).unwrap();
        assert_eq!(ok.0, v.resolve(&b, "B").unwrap());
        assert!(
            check_vote(&v, &b, &json!({"vote": "Q", "reason": "x"}))
                .unwrap_err()
                .contains("A, B, C")
        );
        assert!(check_vote(&v, &b, &json!({"vote": "A"})).is_err());
        assert!(check_vote(&v, &b, &json!({"pick": "A"})).is_err());
    }
}
