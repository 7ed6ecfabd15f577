//! Running one reviewer: a command (`command`), a CLI preset (`cli`), or the built-in
//! LLM backends (`llm`), asked through [`crate::ask::respondent`]. Each reads the change
//! and answers `{"findings": [...]}`; an answer of the wrong shape is retried with what was
//! wrong, up to the attempts allowed, and then the reviewer has failed. What is a review's
//! own is here: its prompt and environment, what a valid answer is, and the findings kept
//! only where they exist in the reviewed tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Finding, Parsed, ReviewerOutcome};
use crate::ask::respondent::{self, Question};
use crate::llm::chat::ToolSpec;
use crate::run::plan::PlanError;

/// A reviewer, resolved from configuration.
pub type Reviewer = respondent::Respondent;

/// How a reviewer runs: a command (argv with placeholders `{diff}`, `{worktree}`, `{base}`,
/// `{head}`), a CLI started read-only, or the built-in backends.
pub type ReviewerKind = respondent::Kind;

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
fn setting_rules(setting: &Setting) -> Option<crate::sandbox::Rules> {
    let mut rules = setting.sandbox.clone()?;
    rules.write.push(setting.dir.clone());
    Some(rules)
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
    let asking = respondent::Setting {
        dir: setting.dir.clone(),
        tree: setting.worktree.clone(),
        prompt: setting.prompt.clone(),
        placeholders: [
            ("diff", &setting.diff_file.display().to_string()),
            ("worktree", &setting.worktree.display().to_string()),
            ("base", &setting.base),
            ("head", &setting.head),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect(),
        env: review_env(reviewer, setting),
        sandbox: setting_rules(setting),
        max_attempts: setting.max_attempts,
    };
    let mut report = respondent::Report::default();
    let answer = respondent::ask(reviewer, &asking, &Review, cancel, &mut report)
        .await
        .map_err(|why| respondent::describe(&why, report.attempts));
    outcome.usage = report.usage;
    outcome.warnings = report.warnings;
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

/// What a reviewer is asked: findings, reported with `report_findings` by a model.
struct Review;

impl Question for Review {
    type Answer = Parsed;

    fn check(&self, answer: &Value) -> Result<Parsed, String> {
        findings_of(answer)
    }

    fn role(&self) -> &'static str {
        "the reviewer"
    }

    fn shape(&self) -> &'static str {
        "{\"findings\": [...]}"
    }

    fn system(&self) -> &'static str {
        "You are a careful, precise code reviewer. You read the change and the code around \
         it, report only real problems, and answer by calling `report_findings`."
    }

    fn tool(&self) -> ToolSpec {
        report_tool()
    }

    fn nudge(&self) -> &'static str {
        "Finish the review by calling `report_findings` (with an empty list when the change has no problem)."
    }
}

fn report_tool() -> ToolSpec {
    ToolSpec {
        name: "report_findings",
        description: "Report your review: every problem you found in the change (an empty list when there is none). Call it once, at the end.",
        schema: json!({
            "type": "object",
            "properties": {
                "findings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": { "type": "string", "description": "File, relative to the repository root." },
                            "line": { "type": "integer", "minimum": 1 },
                            "end_line": { "type": "integer", "minimum": 1 },
                            "severity": { "type": "string", "enum": ["error", "warning", "info"] },
                            "title": { "type": "string", "description": "The problem in a few words." },
                            "message": { "type": "string", "description": "What is wrong and why it matters." },
                            "suggestion": { "type": "string", "description": "How to fix it." },
                        },
                        "required": ["path", "line", "severity", "title", "message"],
                    },
                },
            },
            "required": ["findings"],
        }),
    }
}

/// The example finding of `templates/review.md`: an answer that copies it found nothing.
const EXAMPLE: (&str, u32, &str) = ("src/file.rs", 12, "the problem in a few words");

fn is_example(f: &Finding) -> bool {
    (f.path.as_str(), f.line, f.title.as_str()) == EXAMPLE
}

/// A reviewer's answer read as findings, whatever its kind: of the right shape, and not
/// only the template's example copied (which is asked again, like any wrong answer).
fn findings_of(answer: &Value) -> Result<Parsed, String> {
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
        let kind = crate::run::plan::respondent_kind(c, &llm, "reviewer")?;
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
    fn a_review_answer_is_findings_that_do_not_only_echo_the_example() {
        assert!(Review.check(&json!({"findings": []})).is_ok());
        let echo = json!({"findings": [{"path": "src/file.rs", "line": 12, "severity": "error",
            "title": "the problem in a few words", "message": "m"}]});
        let why = Review.check(&echo).unwrap_err();
        assert!(why.contains("echoes the example finding"), "{why}");
        assert!(Review.check(&json!({"finding": []})).is_err());
    }
}
