//! `git massgen clean`: remove runs' worktrees and branches.
//!
//! Nothing unmerged is deleted without `--force`: worktrees of interrupted runs are first
//! snapshotted onto their branches, and a candidate branch whose commit is not contained in
//! any other branch is kept (and its run with it) unless `--force` is given.

use crate::agent::process;
use crate::commands::{Ctx, load_run};
use crate::error::{CliError, Exit};
use crate::git::{self, ObjectId, Repo};
use crate::run::RunError;
use crate::run::layout::{RunDir, branch_ref, runs_dir};
use crate::run::pipeline::discard_worktrees;
use crate::run::state::{self, RunState};

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// The run to clean (id, unique prefix, or `latest`).
    #[arg(conflicts_with = "all")]
    pub run: Option<String>,
    /// Clean every run that is not running (the default when no run is named).
    #[arg(long)]
    pub all: bool,
    /// Also delete candidate branches that were never merged.
    #[arg(long)]
    pub force: bool,
}

pub fn clean(ctx: &Ctx, args: &CleanArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let targets: Vec<(RunDir, RunState)> = match &args.run {
        Some(run) => {
            let (dir, st) = load_run(&repo, run)?;
            if st.effective_phase().is_active() {
                return Err(RunError::Busy {
                    run: st.run,
                    pid: st.pid,
                }
                .into());
            }
            vec![(dir, st)]
        }
        None => state::list(&runs_dir(&repo))?
            .into_iter()
            .filter(|st| !st.effective_phase().is_active())
            .map(|st| (RunDir::new(&repo, &st.run), st))
            .collect(),
    };
    // Reviews killed before they could clean up leave a worktree of the reviewed tree.
    // The kept review worktree goes too; the next review checks it out again.
    if args.run.is_none() {
        let config = ctx.config(&repo)?;
        let root = crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref());
        for wt in crate::review::session::sweep(&repo, &root) {
            ctx.ui.info(&format!(
                "removed the worktree of an interrupted review: {}",
                wt.display()
            ));
        }
        if let Some(wt) = crate::review::session::remove_slot(&repo, &root)? {
            ctx.ui
                .info(&format!("removed the review worktree {}", wt.display()));
        }
    }
    let mut kept_any = false;
    for (dir, st) in targets {
        let kept = clean_run(ctx, &repo, &dir, st, args.force)?;
        kept_any |= kept > 0;
    }
    if kept_any {
        ctx.ui.info(
            "hint: unmerged candidate branches were kept; `git massgen clean --force` deletes them",
        );
    }
    Ok(Exit::Success)
}

/// Cleans one run; returns how many branches were kept.
fn clean_run(
    ctx: &Ctx,
    repo: &Repo,
    dir: &RunDir,
    mut st: RunState,
    force: bool,
) -> Result<usize, CliError> {
    // Agents left running by a killed `git massgen` are stopped first.
    for c in &mut st.candidates {
        if let Some(pgid) = c.pgid.take()
            && process::kill_leftover_group(pgid, &st.run)
        {
            ctx.ui.info(&format!(
                "massgen: stopped leftover agent {} of run {}",
                c.agent, st.run
            ));
        }
    }
    // And whatever else still runs for this run (commands agents started in groups of
    // their own).
    let stray = process::kill_run_processes(&st.run);
    if stray > 0 {
        ctx.ui.info(&format!(
            "massgen: stopped {stray} leftover process(es) of run {}",
            st.run
        ));
    }
    // Save what interrupted agents left before their worktrees go.
    let base = super::state_commit_id(&st.base)?;
    for c in &mut st.candidates {
        let Some(wt) = c.worktree.clone() else {
            continue;
        };
        if !wt.exists() {
            continue;
        }
        let branch = branch_ref(&st.run, &c.agent);
        let message = format!(
            "massgen: {} work left in an interrupted run {}\n",
            c.agent, st.run
        );
        match git::snapshot::snapshot(repo, &wt, &branch, base, &message, false) {
            Ok(snap) => {
                if c.commit.as_deref() != Some(&snap.commit.to_string()) && snap.changed {
                    ctx.ui.info(&format!(
                        "massgen: saved {}'s work onto {}",
                        c.agent, c.branch
                    ));
                }
                c.commit = Some(snap.commit.to_string());
            }
            Err(e) => ctx.ui.warn(&format!(
                "{}: cannot snapshot worktree before removal: {}",
                c.agent,
                e.with_causes()
            )),
        }
    }
    st.save(dir)?;
    let errors = discard_worktrees(repo, &mut st);
    for e in &errors {
        ctx.ui.warn(e);
    }
    st.save(dir)?;

    // Branches: delete merged or empty ones; unmerged ones only with --force.
    let protected = other_branch_tips(repo, &st.run)?;
    let mut kept = 0;
    for c in &st.candidates {
        let name = branch_ref(&st.run, &c.agent);
        let Some(tip) = repo.ref_target(&name)? else {
            continue;
        };
        let empty = repo.tree_of(tip)? == repo.tree_of(base)?;
        let merged = protected
            .iter()
            .any(|&p| repo.is_ancestor(tip, p).unwrap_or(false));
        if force || empty || merged {
            repo.delete_ref(&name)?;
        } else {
            kept += 1;
            ctx.ui
                .info(&format!("massgen: kept unmerged branch {}", c.branch));
        }
    }
    if kept == 0 && errors.is_empty() {
        std::fs::remove_dir_all(&dir.dir).map_err(RunError::io("cannot remove", &dir.dir))?;
        ctx.ui.info(&format!("massgen: removed run {}", st.run));
    }
    Ok(kept)
}

/// Tips of all branches that are not this run's candidates.
fn other_branch_tips(repo: &Repo, run: &str) -> Result<Vec<ObjectId>, CliError> {
    let own = format!("refs/heads/massgen/{run}/");
    let mut out = Vec::new();
    for (name, id) in repo.branch_tips()? {
        if name.starts_with(&own) || id.is_empty() {
            continue;
        }
        if let Ok(id) = ObjectId::from_hex(id.as_bytes()) {
            out.push(id);
        }
    }
    Ok(out)
}
