//! `git massgen merge`: merge a candidate into the current branch, proved clean first.

use serde::Serialize;

use crate::commands::{Ctx, load_run};
use crate::error::{CliError, Exit};
use crate::git::Repo;
use crate::git::merge::{self, Conflict, MergeKind};
use crate::run::RunError;
use crate::run::layout::RunDir;
use crate::run::state::{Phase, RunState};

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The run (id, unique prefix, or `latest`).
    pub run: String,
    /// The agent whose candidate to merge (default: the winner).
    pub agent: Option<String>,
    /// Make one commit on top of the current branch instead of a merge commit.
    #[arg(long)]
    pub squash: bool,
    /// Only check: report conflicts and blocking files, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    /// Merge even though the run recorded a breach (something changed in your repository
    /// while its agents ran).
    #[arg(long)]
    pub allow_breach: bool,
}

/// How a candidate is merged.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeOptions {
    pub squash: bool,
    pub dry_run: bool,
    pub allow_breach: bool,
}

/// The outcome of a merge, as `merge --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub merged: bool,
    /// The new HEAD commit (or, with --dry-run, the candidate commit).
    pub commit: Option<String>,
    pub conflicts: Vec<Conflict>,
    pub blocked_by_dirty: Vec<String>,
    pub agent: String,
    pub kind: MergeKind,
    pub dry_run: bool,
    pub files: Vec<String>,
    /// The files the merge deletes.
    pub deleted: Vec<String>,
    /// The branch merged into, when it is not the branch the run started from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub fn merge(ctx: &Ctx, args: &MergeArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let (dir, mut state) = load_run(&repo, &args.run)?;
    let agent = match &args.agent {
        Some(a) => a.clone(),
        None => state.winner.clone().ok_or_else(|| {
            CliError::new(Exit::Negative, format!("run {} has no winner", state.run)).hint(format!(
                "name a candidate: git massgen merge {} AGENT",
                state.run
            ))
        })?,
    };
    let options = MergeOptions {
        squash: args.squash,
        dry_run: args.dry_run,
        allow_breach: args.allow_breach,
    };
    let waiting = || {
        ctx.ui
            .info("massgen: waiting for another git massgen merge to finish")
    };
    let outcome = merge_candidate(&repo, &dir, &mut state, &agent, options, &waiting)?;
    if args.json {
        ctx.ui.json(&outcome);
    } else {
        ctx.ui.out(&render_outcome(&outcome));
    }
    Ok(
        if outcome.merged
            || (args.dry_run && outcome.conflicts.is_empty() && outcome.blocked_by_dirty.is_empty())
        {
            Exit::Success
        } else {
            Exit::Negative
        },
    )
}

/// Merges `agent`'s candidate of a run into HEAD, recording the result in the run state.
/// Refused while the run recorded a breach (unless allowed) or a git operation is paused in
/// the work tree; planned and applied under the repository's merge lock (`waiting` is
/// called when another merge holds it).
pub fn merge_candidate(
    repo: &Repo,
    dir: &RunDir,
    state: &mut RunState,
    agent: &str,
    options: MergeOptions,
    waiting: &dyn Fn(),
) -> Result<Outcome, CliError> {
    if state.effective_phase().is_active() {
        return Err(RunError::Busy {
            run: state.run.clone(),
            pid: state.pid,
        }
        .into());
    }
    if !state.breaches.is_empty() && !options.allow_breach {
        return Err(breach_refusal(state));
    }
    let cand = state.require_candidate(agent)?;
    let Some(commit) = cand.commit.as_deref() else {
        return Err(
            CliError::new(Exit::Negative, format!("{agent} left no candidate commit"))
                .hint(format!("see `git massgen status {}`", state.run)),
        );
    };
    let theirs = super::state_commit_id(commit)?;
    if let Some((what, how)) = merge::operation_in_progress(repo) {
        return Err(CliError::new(
            Exit::Negative,
            format!("{what} is in progress in your work tree; nothing was merged"),
        )
        .hint(format!("finish it ({how}), then merge again")));
    }
    let _lock = if options.dry_run {
        None
    } else {
        Some(merge::lock(repo, MERGE_LOCK_WAIT, waiting)?)
    };
    let (ours, branch) = repo.head()?;
    let plan = merge::plan(repo, ours, theirs)?;
    let note = match (&state.base_branch, &branch) {
        (Some(base), Some(now)) if base != now => Some(format!(
            "merging into {}, not {}, the branch run {} started from",
            short_branch(now),
            short_branch(base),
            state.run
        )),
        (Some(base), None) => Some(format!(
            "HEAD is detached; run {} started from {}",
            state.run,
            short_branch(base)
        )),
        _ => None,
    };
    let mut outcome = Outcome {
        merged: false,
        commit: None,
        conflicts: plan.conflicts.clone(),
        blocked_by_dirty: Vec::new(),
        agent: agent.to_owned(),
        kind: plan.kind,
        dry_run: options.dry_run,
        files: plan.changed_paths.clone(),
        deleted: plan.deleted_paths.clone(),
        note,
    };
    if !plan.conflicts.is_empty() {
        return Ok(outcome);
    }
    let dirty = merge::dirty_paths(repo)?;
    outcome.blocked_by_dirty = merge::dirty_overlap(&plan, &dirty);
    if !outcome.blocked_by_dirty.is_empty() {
        return Ok(outcome);
    }
    if options.dry_run {
        outcome.commit = Some(theirs.to_string());
        return Ok(outcome);
    }
    let first_line: String = state
        .task
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(72)
        .collect();
    let mut message = if options.squash {
        format!(
            "{first_line}\n\nSquashed massgen candidate {agent} of run {}.\n",
            state.run
        )
    } else {
        format!(
            "Merge massgen candidate {agent} of run {}\n\nTask: {first_line}\n",
            state.run
        )
    };
    if !plan.deleted_paths.is_empty() {
        message.push_str(&format!("\nDeletes: {}\n", name_some(&plan.deleted_paths)));
    }
    let new_head = merge::apply(repo, &plan, options.squash, &message)?;
    outcome.merged = true;
    outcome.commit = Some(new_head.to_string());
    state.merged = true;
    state.state = Phase::Merged;
    state.save(dir)?;
    Ok(outcome)
}

/// How long a merge waits for another one to finish.
const MERGE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The error of a merge refused because of the run's breaches.
pub fn breach_refusal(state: &RunState) -> CliError {
    let mut err = CliError::new(
        Exit::Negative,
        format!(
            "run {} is not merged: {} in your repository while its agents ran",
            state.run,
            match state.breaches.len() {
                1 => "1 change was made".to_owned(),
                n => format!("{n} changes were made"),
            }
        ),
    );
    for b in state.breaches.iter().take(10) {
        err = err.hint(format!("breach: {b}"));
    }
    if state.breaches.len() > 10 {
        err = err.hint(format!("… and {} more", state.breaches.len() - 10));
    }
    err.hint(format!(
        "check them (`git massgen status {}`); if you made them yourself, merge with --allow-breach",
        state.run
    ))
}

fn short_branch(name: &str) -> &str {
    name.strip_prefix("refs/heads/").unwrap_or(name)
}

/// The first ten names, then how many more.
pub fn name_some(paths: &[String]) -> String {
    let mut out = paths
        .iter()
        .take(10)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > 10 {
        out.push_str(&format!(" and {} more", paths.len() - 10));
    }
    out
}

/// Human-readable merge outcome.
pub fn render_outcome(o: &Outcome) -> String {
    let mut out = String::new();
    if !o.conflicts.is_empty() {
        out.push_str(&format!(
            "\nmerge of {} would conflict; nothing was changed:\n",
            o.agent
        ));
        for c in &o.conflicts {
            out.push_str(&format!("  {}  ({})\n", c.path, c.kind));
        }
    } else if !o.blocked_by_dirty.is_empty() {
        out.push_str(&format!(
            "\nmerge of {} refused: these files have uncommitted changes and the merge would change them; nothing was changed:\n",
            o.agent
        ));
        for p in &o.blocked_by_dirty {
            out.push_str(&format!("  {p}\n"));
        }
        out.push_str("commit or stash them, then merge again\n");
    } else if o.dry_run {
        let how = match o.kind {
            MergeKind::UpToDate => "is already merged",
            MergeKind::FastForward => "would fast-forward cleanly",
            MergeKind::Merge => "would merge cleanly",
        };
        out.push_str(&format!(
            "\n{} {how} ({})\n",
            o.agent,
            crate::ui::count(o.files.len(), "file")
        ));
    } else {
        let how = match o.kind {
            MergeKind::UpToDate => "was already merged",
            MergeKind::FastForward => "fast-forwarded",
            MergeKind::Merge => "merged",
        };
        out.push_str(&format!(
            "\n{} {how}: HEAD is now {} ({})\n",
            o.agent,
            o.commit.as_deref().map_or("", |c| &c[..c.len().min(12)]),
            crate::ui::count(o.files.len(), "file")
        ));
    }
    if let Some(note) = &o.note {
        out.push_str(&format!("note: {note}\n"));
    }
    if !o.deleted.is_empty() && o.conflicts.is_empty() {
        out.push_str(&format!(
            "{} {}: {}\n",
            if o.merged { "deleted" } else { "would delete" },
            crate::ui::count(o.deleted.len(), "file"),
            name_some(&o.deleted)
        ));
    }
    out
}
