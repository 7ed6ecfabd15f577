//! `git massgen learn merge|export|import|reset`: the statistics that `stats` shows and
//! `run --pick` uses, shared between clones (another clone's ref merged in, a JSON file
//! written or merged in) and started afresh. Merging never replaces and never counts
//! twice (`learn::share`).
//!
//! Exit codes: 0 done (including "nothing new" and "nothing to reset"); 2 (usage) a REF or
//! FILE that is missing or does not hold statistics; 3 outside a repository; 4 when our
//! own `refs/massgen/learning` is unreadable (hint: `learn reset`), or git or the file
//! system fails.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::Ctx;
use crate::error::{CliError, Exit};
use crate::git::{GitError, Repo};
use crate::learn::{LearnError, REF, share, store};

/// How to bring in another clone's statistics, for hints.
const FETCH: &str = "git fetch origin +refs/massgen/learning:refs/massgen/learning-origin";

/// `git massgen learn`.
#[derive(Debug, Args)]
pub struct LearnArgs {
    #[command(subcommand)]
    pub action: LearnAction,
}

#[derive(Debug, Subcommand)]
pub enum LearnAction {
    /// Merge another clone's statistics (a ref or commit, e.g. its refs/massgen/learning
    /// fetched as refs/massgen/learning-origin) into ours; nothing is counted twice.
    Merge(MergeArgs),
    /// Write the whole statistics as one JSON file.
    Export(ExportArgs),
    /// Merge the statistics of a file written by `learn export` into ours (not replacing).
    Import(ImportArgs),
    /// Delete refs/massgen/learning: learn afresh from the next run.
    Reset,
    /// Look for this clone's merged winners in the current branch's history: a revert makes
    /// a loss, surviving `--after` later commits confirms (each run also does this first).
    Update(UpdateArgs),
}

/// `learn update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Later commits a merged winner must survive to be confirmed.
    #[arg(long, value_name = "N", default_value_t = crate::learn::history::CONFIRM_AFTER,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub after: u64,
    /// Print what was found as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `learn merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// A ref or commit holding another clone's refs/massgen/learning.
    #[arg(value_name = "REF")]
    pub rev: String,
    /// Print one JSON object on stdout: the machines added, updated and unchanged.
    #[arg(long)]
    pub json: bool,
}

/// `learn export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write: a path, or `-` for stdout.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `learn import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A file written by `learn export`, or `-` for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print one JSON object on stdout: the machines added, updated and unchanged.
    #[arg(long)]
    pub json: bool,
}

pub fn learn(ctx: &Ctx, args: &LearnArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    match &args.action {
        LearnAction::Merge(a) => merge(ctx, &repo, a),
        LearnAction::Export(a) => export(ctx, &repo, a),
        LearnAction::Import(a) => import(ctx, &repo, a),
        LearnAction::Reset => reset(ctx, &repo),
        LearnAction::Update(a) => update(ctx, &repo, a),
    }
}

fn update(ctx: &Ctx, repo: &Repo, args: &UpdateArgs) -> Result<Exit, CliError> {
    let found = crate::learn::history::update(repo, args.after)?;
    if args.json {
        ctx.ui.json(&found);
        return Ok(Exit::Success);
    }
    let mut text = String::new();
    for (agent, run) in &found.reverted {
        text.push_str(&format!(
            "reverted: {agent}'s winner of run {run} (a loss)\n"
        ));
    }
    for (agent, run) in &found.confirmed {
        text.push_str(&format!("confirmed: {agent}'s winner of run {run}\n"));
    }
    text.push_str(&format!(
        "{} still pending\n",
        crate::ui::count(found.pending, "merged winner")
    ));
    ctx.ui.out(&text);
    Ok(Exit::Success)
}

fn merge(ctx: &Ctx, repo: &Repo, args: &MergeArgs) -> Result<Exit, CliError> {
    let rev = &args.rev;
    let commit = repo.resolve_commit(rev).map_err(|e| match e {
        GitError::BadRevision { .. } => CliError::usage(e).hint(format!(
            "fetch another clone's statistics first: `{FETCH}`, then `git massgen learn merge refs/massgen/learning-origin`"
        )),
        e => e.into(),
    })?;
    let other = store::read_commit(repo, commit).map_err(|e| match e {
        LearnError::Foreign { why } => {
            CliError::usage(format!("{rev} is not git-massgen's statistics: {why}")).hint(format!(
                "name a commit of another clone's {REF}, e.g. after `{FETCH}`"
            ))
        }
        e => e.into(),
    })?;
    let short = &commit.to_string()[..12];
    let outcome = share::merge(
        repo,
        commit,
        &other,
        &format!("learn merge {rev} ({short})"),
    )?;
    show(ctx, &format!("{rev} ({short})"), &outcome, args.json);
    Ok(Exit::Success)
}

fn export(ctx: &Ctx, repo: &Repo, args: &ExportArgs) -> Result<Exit, CliError> {
    let (learning, _) = store::load(repo)?;
    let bytes = share::to_json(&learning);
    if args.file.as_os_str() == "-" {
        ctx.ui.out(&String::from_utf8_lossy(&bytes));
        return Ok(Exit::Success);
    }
    let path = ctx.cwd.join(&args.file);
    crate::sys::write_atomic(&path, &bytes).map_err(|e| {
        CliError::new(
            Exit::Failure,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    ctx.ui.line(&format!(
        "wrote the statistics of {} to {}",
        crate::ui::count(learning.machines.len(), "machine"),
        args.file.display()
    ));
    Ok(Exit::Success)
}

fn import(ctx: &Ctx, repo: &Repo, args: &ImportArgs) -> Result<Exit, CliError> {
    let bytes = read(ctx, &args.file)?;
    let other = share::from_json(&bytes).map_err(|e| {
        CliError::usage(format!("{}: {e}", args.file.display()))
            .hint("import a file written by `git massgen learn export FILE`")
    })?;
    let name = args.file.display().to_string();
    let outcome = share::import(repo, &other, &format!("learn import {name}"))?;
    show(ctx, &name, &outcome, args.json);
    Ok(Exit::Success)
}

/// The file named on the command line, or stdin for `-`.
fn read(ctx: &Ctx, file: &Path) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    let result = if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(ctx.cwd.join(file)).map(|b| bytes = b)
    };
    result.map_err(|e| {
        let err = CliError::usage(format!("cannot read {}: {e}", file.display()));
        if e.kind() == std::io::ErrorKind::NotFound {
            err.hint("write one in the other clone with `git massgen learn export FILE`")
        } else {
            err
        }
    })?;
    Ok(bytes)
}

fn reset(ctx: &Ctx, repo: &Repo) -> Result<Exit, CliError> {
    let Some(tip) = repo.ref_target(REF)? else {
        ctx.ui
            .line(&format!("nothing to reset: {REF} does not exist"));
        return Ok(Exit::Success);
    };
    // What is removed, when it can be read at all (a damaged ref is what reset is for).
    let what = match store::read_commit(repo, tip) {
        Ok(l) => {
            let runs: u64 = l
                .totals()
                .values()
                .flat_map(|kinds| kinds.values())
                .map(|c| c.runs)
                .sum();
            format!(
                "{}, {} counted",
                crate::ui::count(l.machines.len(), "machine"),
                crate::ui::count(runs as usize, "candidate run")
            )
        }
        Err(_) => "not readable as statistics".into(),
    };
    store::reset(repo)?;
    ctx.ui.line(&format!("deleted {REF} (was {tip}: {what})"));
    ctx.ui.info(&format!(
        "hint: while git keeps the commit, `git update-ref {REF} {tip}` restores it"
    ));
    ctx.ui.info(&format!(
        "hint: a copy pushed elsewhere stays there: `{FETCH}` and `git massgen learn merge refs/massgen/learning-origin` bring it back; `git push origin :{REF}` deletes it"
    ));
    Ok(Exit::Success)
}

/// What a merge or import changed, as text or JSON.
fn show(ctx: &Ctx, from: &str, outcome: &share::Outcome, json: bool) {
    if json {
        let mut value = serde_json::to_value(outcome).expect("outcome serializes");
        value["from"] = from.into();
        value["changed"] = outcome.changed().into();
        ctx.ui.json(&value);
        return;
    }
    if !outcome.changed() {
        ctx.ui.line(&format!(
            "nothing new from {from}: {REF} already holds what it knows ({})",
            crate::ui::count(outcome.unchanged.len(), "machine")
        ));
        return;
    }
    let mut text = format!("merged {from} into {REF}\n");
    for (label, ids) in [
        ("added", &outcome.added),
        ("updated", &outcome.updated),
        ("unchanged", &outcome.unchanged),
    ] {
        if !ids.is_empty() {
            text.push_str(&format!("  {label:<10} {}\n", ids.join(", ")));
        }
    }
    if outcome.records > 0 {
        text.push_str(&format!(
            "  {} copied\n",
            crate::ui::count(outcome.records, "run record")
        ));
    }
    ctx.ui.out(&text);
}
