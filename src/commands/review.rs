//! `git massgen review`: several reviewers look at one change; findings enough of them agree
//! on are reported, and the exit code says whether any is serious enough to fail.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};

use super::Ctx;
use crate::agent::cli::{CliAgent, Preset};
use crate::agent::prompt::Template;
use crate::config::{self, Config};
use crate::error::{CliError, Exit};
use crate::review::format::{self, Format};
use crate::review::reviewer::{Reviewer, ReviewerKind};
use crate::review::session::{self, Request};
use crate::review::target::{self, Spec, Target, TargetError};
use crate::review::{Report, ReviewerOutcome, Severity, cluster};

/// Default time limit of one reviewer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Which hook is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookKind {
    /// git's pre-commit hook: the staged change (or the index `git commit` is writing).
    PreCommit,
    /// git's pre-push hook: the pushed commits, read from stdin.
    PrePush,
    /// The pre-commit framework: PRE_COMMIT_FROM_REF..PRE_COMMIT_TO_REF when it sets them
    /// (pre-push, or `--from-ref/--to-ref`), else the staged change.
    PreCommitFramework,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["range", "staged", "base", "hook"])))]
pub struct ReviewArgs {
    /// What to review: `A..B` or `A...B` (the change B brings since it forked from A, as a
    /// pull request shows it), or one commit (its own change).
    pub range: Option<String>,
    /// Review the staged change (the index against HEAD).
    #[arg(long)]
    pub staged: bool,
    /// Review from the merge base of REV and HEAD to HEAD.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Called from a hook: what to review comes from the hook. MASSGEN_SKIP=1, or
    /// MASSGEN_ACTIVE (set for everything git-massgen starts), skips the review.
    #[arg(long, value_enum, value_name = "HOOK")]
    pub hook: Option<HookKind>,
    /// The remote being pushed to (`--hook pre-push`).
    #[arg(long, value_name = "NAME", requires = "hook")]
    pub remote: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Write the output to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Fail (exit 1) on a kept finding of this severity or worse [default: error, or
    /// `review.fail_on`].
    #[arg(long, value_name = "LEVEL", value_parser = ["error", "warning", "info", "never"])]
    pub fail_on: Option<String>,
    /// A reviewer that fails fails the review (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Reviewers that must report a finding for it to be kept [default: a majority].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub quorum: Option<u32>,
    /// Only these configured reviewers (repeatable).
    #[arg(long = "reviewer", value_name = "NAME")]
    pub reviewers: Vec<String>,
    /// An ad-hoc command reviewer, NAME=COMMAND (repeatable; split like a shell would, never
    /// run by one).
    #[arg(long = "reviewer-cmd", value_name = "NAME=COMMAND")]
    pub reviewer_cmds: Vec<String>,
    /// Time limit of each reviewer (e.g. 90s, 5m).
    #[arg(long, value_parser = config::parse_duration)]
    pub timeout: Option<Duration>,
}

pub fn review(ctx: &Ctx, args: ReviewArgs) -> Result<Exit, CliError> {
    if let Some(hook) = args.hook
        && let Some(why) = skipped()
    {
        ctx.ui.info(&format!(
            "git-massgen: review skipped in the {} hook ({why})",
            hook_name(hook)
        ));
        return Ok(Exit::Success);
    }
    let repo = ctx.repo()?;
    let config = ctx.config(&repo)?;
    if let Some(hook) = args.hook
        && config.reviewers.is_empty()
        && args.reviewer_cmds.is_empty()
    {
        // A hooks directory shared by many repositories (a global core.hooksPath) must not
        // block commits in those that have no reviewers.
        ctx.ui.warn(&format!(
            "no [[reviewers]] in .massgen/config.toml: the {} review is skipped",
            hook_name(hook)
        ));
        return Ok(Exit::Success);
    }
    let reviewers = reviewers(&repo, &config, &args)?;
    let quorum = args
        .quorum
        .map(|q| q as usize)
        .or(config.review.quorum)
        .unwrap_or_else(|| cluster::majority(reviewers.len()));
    if quorum > reviewers.len() {
        return Err(CliError::usage(format!(
            "quorum {quorum} is more than the {} reviewer(s)",
            reviewers.len()
        ))
        .hint("lower --quorum (or review.quorum), or add reviewers"));
    }
    let fail_on = match args.fail_on.as_deref().or(config.review.fail_on.as_deref()) {
        None => Some(Severity::Error),
        Some("never") => None,
        Some(level) => Severity::parse(level),
    };
    let strict = args.strict || config.review.strict;
    let targets = targets(&repo, &args)?;
    let format = if args.json { Format::Json } else { args.format };
    if targets.is_empty() {
        ctx.ui.info("git-massgen: nothing to review");
    }
    let repo = Arc::new(repo);
    let rt = super::runtime()?;
    let mut exit = Exit::Success;
    let mut failure: Option<CliError> = None;
    let mut reports = Vec::new();
    for target in targets {
        let req = Request {
            target,
            reviewers: reviewers.clone(),
            quorum,
            template: Template::Review.load(&repo.massgen_dir())?,
            diff_budget: config
                .review
                .diff_budget
                .unwrap_or(crate::judge::DEFAULT_DIFF_BUDGET),
            max_attempts: config
                .review
                .max_attempts
                .unwrap_or(crate::judge::DEFAULT_MAX_ATTEMPTS),
            worktree_root: crate::run::layout::worktree_root(
                &repo,
                config.run.worktree_root.as_deref(),
            ),
        };
        ctx.ui.info(&format!(
            "git-massgen: reviewing {} with {} reviewer(s), quorum {quorum}",
            req.target.label,
            reviewers.len()
        ));
        let ui = Arc::new(ctx.ui.sibling());
        let on_done = Arc::new(move |o: &ReviewerOutcome| progress(&ui, o));
        let done = rt
            .block_on(session::run(repo.clone(), req, on_done))
            .map_err(|e| CliError::new(Exit::Failure, e))?;
        if !done.modified.is_empty() {
            ctx.ui.warn(&format!(
                "reviewers changed {} file(s) in the reviewed tree (discarded with it): {}",
                done.modified.len(),
                done.modified.join(", ")
            ));
        }
        reports.push(done.report.clone());
        match verdict(ctx, &done.report, fail_on, strict, args.hook.is_some()) {
            _ if done.interrupted => exit = Exit::Interrupted,
            Ok(this) if exit == Exit::Success => exit = this,
            Ok(_) => {}
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    // What was reviewed is written even when a review failed.
    let mut output = format::render_all(&reports, format);
    if format == Format::Text && args.output.is_none() && ctx.ui.color() {
        output = color_text(&output);
    }
    match &args.output {
        Some(path) => crate::run::state::write_atomic(path, output.as_bytes())
            .map_err(|e| CliError::new(Exit::Failure, e))?,
        None => ctx.ui.out(&output),
    }
    match failure {
        Some(e) if exit != Exit::Interrupted => Err(e),
        _ => Ok(exit),
    }
}

/// The text format with severities coloured as git colours good and bad.
fn color_text(text: &str) -> String {
    use crate::ui::{Paint, paint};
    text.lines()
        .map(|line| {
            for (word, style) in [
                (": error: ", Paint::Bad),
                (": warning: ", Paint::Warn),
                (": info: ", Paint::Frag),
            ] {
                if let Some(i) = line.find(word) {
                    let (head, rest) = line.split_at(i + 2);
                    let (sev, tail) = rest.split_at(word.len() - 4);
                    return format!("{head}{}{tail}\n", paint(true, style, sev));
                }
            }
            format!("{line}\n")
        })
        .collect()
}

/// Why a hook's review is skipped, if it is.
fn skipped() -> Option<&'static str> {
    if std::env::var("MASSGEN_SKIP").is_ok_and(|v| v == "1") {
        return Some("MASSGEN_SKIP=1");
    }
    if std::env::var_os("MASSGEN_ACTIVE").is_some_and(|v| !v.is_empty()) {
        return Some("started by git-massgen: MASSGEN_ACTIVE is set");
    }
    None
}

fn hook_name(hook: HookKind) -> &'static str {
    match hook {
        HookKind::PreCommit => "pre-commit",
        HookKind::PrePush => "pre-push",
        HookKind::PreCommitFramework => "pre-commit framework",
    }
}

fn progress(ui: &crate::ui::Ui, o: &ReviewerOutcome) {
    let secs = o.duration_ms as f64 / 1000.0;
    for w in &o.warnings {
        ui.warn(&format!("reviewer `{}`: {w}", o.name));
    }
    match &o.error {
        None => ui.info(&format!(
            "  {}: {} finding(s) in {secs:.1}s",
            o.name,
            o.findings.len()
        )),
        Some(e) => ui.warn(&format!(
            "reviewer `{}` failed after {secs:.1}s: {e}",
            o.name
        )),
    }
}

/// The exit code of one review.
fn verdict(
    ctx: &Ctx,
    report: &Report,
    fail_on: Option<Severity>,
    strict: bool,
    hook: bool,
) -> Result<Exit, CliError> {
    if report.files.is_empty() {
        ctx.ui
            .info(&format!("git-massgen: {} changes nothing", report.target));
        return Ok(Exit::Success);
    }
    let failed: Vec<&ReviewerOutcome> = report.reviewers.iter().filter(|r| !r.ok).collect();
    let skip_hint = "to go ahead anyway: MASSGEN_SKIP=1 git commit ... (or git push ...)";
    if !report.reviewers.is_empty() && failed.len() == report.reviewers.len() {
        let mut err = CliError::new(
            Exit::Failure,
            format!(
                "no reviewer could review {}: {}",
                report.target,
                failed
                    .iter()
                    .map(|r| format!("{} ({})", r.name, r.error.as_deref().unwrap_or("failed")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
        .hint(format!(
            "the logs are in .massgen/reviews/{}/logs/",
            report.id
        ));
        if hook {
            err = err.hint(skip_hint);
        }
        return Err(err);
    }
    if strict && !failed.is_empty() {
        ctx.ui.warn(&format!(
            "{} reviewer(s) failed and the review is strict: failing",
            failed.len()
        ));
        return Ok(Exit::Negative);
    }
    match (fail_on, report.worst()) {
        (Some(level), Some(worst)) if worst >= level => {
            let n = report
                .findings
                .iter()
                .filter(|k| k.finding.severity >= level)
                .count();
            ctx.ui.warn(&format!(
                "{n} agreed finding(s) at or above {}: the review fails",
                level.as_str()
            ));
            if hook {
                ctx.ui.warn(skip_hint);
            }
            Ok(Exit::Negative)
        }
        _ => Ok(Exit::Success),
    }
}

/// What to review, from the arguments (or the calling hook).
fn targets(repo: &crate::git::Repo, args: &ReviewArgs) -> Result<Vec<Target>, CliError> {
    let one = |spec: Spec| -> Result<Vec<Target>, CliError> {
        Ok(vec![target::resolve(repo, &spec).map_err(target_error)?])
    };
    // git gives hooks the index it is committing; `git commit -a` and `git commit PATH`
    // commit a temporary one.
    let hook_index = || {
        std::env::var_os("GIT_INDEX_FILE")
            .filter(|v| !v.is_empty())
            .and_then(|v| std::path::absolute(v).ok())
    };
    if let Some(range) = &args.range {
        return one(Spec::Range(range.clone()));
    }
    if args.staged {
        return one(Spec::Staged { index: None });
    }
    if let Some(rev) = &args.base {
        return one(Spec::Base(rev.clone()));
    }
    match args.hook.expect("clap requires one of the targets") {
        HookKind::PreCommit => one(Spec::Staged {
            index: hook_index(),
        }),
        HookKind::PreCommitFramework => {
            let var = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            };
            let to = var(&["PRE_COMMIT_TO_REF", "PRE_COMMIT_ORIGIN"]);
            match (var(&["PRE_COMMIT_FROM_REF", "PRE_COMMIT_SOURCE"]), &to) {
                (Some(from), Some(to)) => one(Spec::Range(format!("{from}..{to}"))),
                // A push the framework gave no range for (a new branch reaching a root
                // commit): what the remote's tracking refs do not hold.
                _ if var(&["PRE_COMMIT_HOOK_STAGE"]).is_some_and(|s| s == "pre-push") => {
                    let local = repo.resolve_commit(to.as_deref().unwrap_or("HEAD"))?;
                    let remote =
                        var(&["PRE_COMMIT_REMOTE_NAME"]).unwrap_or_else(|| "origin".into());
                    let pushed = target::Pushed {
                        local_ref: "HEAD".into(),
                        local: local.to_string(),
                        remote_ref: var(&["PRE_COMMIT_REMOTE_BRANCH"])
                            .unwrap_or_else(|| "HEAD".into()),
                        remote: "0".repeat(40),
                    };
                    Ok(target::pushed_target(repo, &remote, &pushed)
                        .map_err(target_error)?
                        .into_iter()
                        .collect())
                }
                _ => one(Spec::Staged {
                    index: hook_index(),
                }),
            }
        }
        HookKind::PrePush => {
            let remote = args.remote.clone().ok_or_else(|| {
                CliError::usage("--hook pre-push needs --remote NAME")
                    .hint("the pre-push hook passes the remote's name as its first argument")
            })?;
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| CliError::new(Exit::Failure, format!("cannot read stdin: {e}")))?;
            let pushed = target::parse_pre_push(&input).map_err(|e| {
                CliError::usage(e).hint("git gives the pre-push hook one line per pushed ref")
            })?;
            let mut out = Vec::new();
            for p in &pushed {
                if let Some(t) = target::pushed_target(repo, &remote, p).map_err(target_error)? {
                    out.push(t);
                }
            }
            Ok(out)
        }
    }
}

fn target_error(e: TargetError) -> CliError {
    match e {
        TargetError::Usage { message, hint } => CliError::usage(message).hint(hint),
        TargetError::Git(e) => e.into(),
    }
}

/// The reviewers: configured ones (or those named with --reviewer), then --reviewer-cmd.
fn reviewers(
    repo: &crate::git::Repo,
    config: &Config,
    args: &ReviewArgs,
) -> Result<Vec<Reviewer>, CliError> {
    let timeout = args
        .timeout
        .or(config.review.timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    for name in &args.reviewers {
        if !config.reviewers.iter().any(|r| r.name.get_ref() == name) {
            let known: Vec<&str> = config
                .reviewers
                .iter()
                .map(|r| r.name.get_ref().as_str())
                .collect();
            return Err(
                CliError::usage(format!("no reviewer `{name}` in the configuration")).hint(
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
        if !args.reviewers.is_empty() && !args.reviewers.contains(&name) {
            continue;
        }
        let env: Vec<(String, String)> =
            c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let kind = match Preset::from_kind(c.kind) {
            None => ReviewerKind::Command {
                argv: c.command.clone(),
                env,
            },
            Some(Preset::Llm) => {
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
            timeout: args.timeout.or(c.timeout).unwrap_or(timeout),
        });
    }
    for spec in &args.reviewer_cmds {
        let (name, argv) = crate::agent::parse_agent_cmd(spec)
            .map_err(|e| CliError::usage(e.replace("agent `", "reviewer `")))?;
        if out.iter().any(|r| r.name == name) {
            return Err(CliError::usage(format!("reviewer `{name}` is given twice")));
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
        return Err(CliError::usage("no reviewers: nothing would look at the change").hint(
            "add [[reviewers]] to .massgen/config.toml (see `git massgen init`), or pass --reviewer-cmd NAME=COMMAND",
        ));
    }
    Ok(out)
}
