//! `git massgen review`: several reviewers look at one change; findings enough of them agree
//! on are reported, and the exit code says whether any is serious enough to fail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args};

use super::Ctx;
use crate::agent::prompt::Template;
use crate::config;
use crate::error::{CliError, Exit};
use crate::review::format::{self, Format};
use crate::review::reviewer::{self, Chosen};
use crate::review::session::{self, Request};
use crate::review::target::{self, HookKind, TargetError};
use crate::review::{Report, ReviewerOutcome, Severity, cluster};

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
    let chosen = Chosen {
        reviewers: args.reviewers.clone(),
        reviewer_cmds: args.reviewer_cmds.clone(),
        timeout: args.timeout,
    };
    let reviewers = reviewer::from_config(&repo, &config, &chosen)?;
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
    let what = target::What {
        range: args.range.clone(),
        staged: args.staged,
        base: args.base.clone(),
        hook: args.hook,
        remote: args.remote.clone(),
    };
    let targets = target::targets(&repo, &what).map_err(target_error)?;
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
            include: crate::run::setup::include_patterns(&config.worktree, &repo.workdir),
            sandbox: crate::run::confine::Sandbox::from_config(
                &config.sandbox,
                None,
                &crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref()),
            ),
        };
        ctx.ui.info(&format!(
            "git-massgen: reviewing {} with {} reviewer(s), quorum {quorum}",
            req.target.label,
            reviewers.len()
        ));
        let ui = Arc::new(ctx.ui.sibling());
        let on_done = Arc::new(move |o: &ReviewerOutcome| crate::ui::render::reviewer_done(&ui, o));
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
        output = crate::ui::render::color_text(&output);
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

fn target_error(e: TargetError) -> CliError {
    match e {
        TargetError::Usage { message, hint } => CliError::usage(message).hint(hint),
        TargetError::Git(e) => e.into(),
        TargetError::Stdin(_) => CliError::new(Exit::Failure, e),
    }
}
