//! `git massgen clean`: remove runs' worktrees and branches.
//!
//! Nothing unmerged is deleted without `--force`: worktrees of interrupted runs are first
//! snapshotted onto their branches, and a candidate branch whose commit is not contained in
//! any other branch is kept (and its run with it) unless `--force` is given.

use std::collections::BTreeSet;

use crate::agent::process;
use crate::commands::{Ctx, load_run};
use crate::error::{CliError, Exit};
use crate::git::{self, ObjectId, Repo};
use crate::run::RunError;
use crate::run::layout::{RunDir, branch_ref, runs_dir};
use crate::run::pipeline::discard_worktrees;
use crate::run::state::{self, Phase, RunState};

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
    let config = ctx.config(&repo)?;
    let root = crate::run::layout::worktree_root(&repo, config.run.worktree_root.as_deref());
    let scan = state::scan(&runs_dir(&repo))?;
    let mut targets: Vec<(RunDir, RunState)> = Vec::new();
    let mut unreadable: Vec<state::Unreadable> = Vec::new();
    match &args.run {
        Some(run) => {
            if let Some(u) = scan.unreadable.iter().find(|u| u.run == *run) {
                unreadable.push(u.clone());
            } else {
                let (dir, st) = load_run(&repo, run)?;
                if st.effective_phase().is_active() {
                    return Err(RunError::Busy {
                        run: st.run,
                        pid: st.pid,
                    }
                    .into());
                }
                targets.push((dir, st));
            }
        }
        None => {
            for st in scan.runs.iter().cloned() {
                if st.effective_phase().is_active() {
                    ctx.ui.info(&format!(
                        "massgen: skipped run {}: it is still running (process {}); stop it first",
                        st.run, st.pid
                    ));
                } else {
                    targets.push((RunDir::new(&repo, &st.run), st));
                }
            }
            unreadable = scan.unreadable.clone();
            for dir in &scan.abandoned {
                std::fs::remove_dir_all(dir).map_err(RunError::io("cannot remove", dir))?;
                ctx.ui.info(&format!(
                    "massgen: removed {}, left by a run killed as it was created",
                    dir.display()
                ));
            }
            // Reviews killed before they could clean up leave a worktree of the reviewed
            // tree. The kept review worktree goes too; the next review checks it out again.
            for wt in crate::review::session::sweep(&repo, &root) {
                ctx.ui.info(&format!(
                    "massgen: removed the worktree of an interrupted review: {}",
                    wt.display()
                ));
            }
            if let Some(wt) = crate::review::session::remove_slot(&repo, &root)? {
                ctx.ui.info(&format!(
                    "massgen: removed the review worktree {}",
                    wt.display()
                ));
            }
        }
    }
    let mut kept_any = false;
    for (dir, st) in targets {
        let kept = clean_run(ctx, &repo, &dir, st, args.force)?;
        kept_any |= kept > 0;
    }
    for u in &unreadable {
        let kept = clean_leftovers(ctx, &repo, &root, &u.run, args.force)?;
        kept_any |= kept > 0;
        if kept == 0 {
            std::fs::remove_dir_all(&u.dir).map_err(RunError::io("cannot remove", &u.dir))?;
            ctx.ui
                .info(&format!("massgen: removed run {} ({})", u.run, u.error));
        } else {
            let aside = runs_dir(&repo).join(".unreadable").join(&u.run);
            std::fs::create_dir_all(aside.parent().expect("has a parent"))
                .map_err(RunError::io("cannot create", &aside))?;
            std::fs::rename(&u.dir, &aside).map_err(RunError::io("cannot move", &u.dir))?;
            ctx.ui.info(&format!(
                "massgen: run {} is unreadable ({}); its files were set aside in {}",
                u.run,
                u.error,
                aside.display()
            ));
        }
    }
    if args.run.is_none() {
        // Branches and worktree directories of runs whose directory is gone altogether.
        let known: BTreeSet<&str> = scan
            .runs
            .iter()
            .map(|r| r.run.as_str())
            .chain(unreadable.iter().map(|u| u.run.as_str()))
            .collect();
        let runs = runs_dir(&repo);
        for id in orphan_runs(&repo, &root)? {
            // Looked at again now: a run created since the scan is not an orphan.
            let staged = std::fs::read_dir(&runs).is_ok_and(|mut d| {
                d.any(|e| {
                    e.is_ok_and(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!(".{id}.new-"))
                    })
                })
            });
            if !known.contains(id.as_str()) && !runs.join(&id).exists() && !staged {
                let kept = clean_leftovers(ctx, &repo, &root, &id, args.force)?;
                kept_any |= kept > 0;
            }
        }
    }
    if kept_any {
        ctx.ui.info(
            "hint: unmerged candidate branches were kept; `git massgen clean --force` deletes them",
        );
    }
    Ok(Exit::Success)
}

/// Ids of runs that have candidate branches or a worktree directory.
fn orphan_runs(repo: &Repo, root: &std::path::Path) -> Result<BTreeSet<String>, CliError> {
    let mut ids = BTreeSet::new();
    for (name, _) in repo.branch_tips()? {
        if let Some((id, _)) = name
            .strip_prefix("refs/heads/massgen/")
            .and_then(|rest| rest.split_once('/'))
        {
            ids.insert(id.to_owned());
        }
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::sys::is_run_id(&name) && e.path().is_dir() {
                ids.insert(name);
            }
        }
    }
    Ok(ids)
}

/// Cleans what a run left when its state is unreadable or gone: its processes, its
/// worktrees (what a complete one holds is saved onto its branch first), its worktree
/// directory, and its branches (merged ones, or all with `--force`). Returns how many
/// branches were kept.
fn clean_leftovers(
    ctx: &Ctx,
    repo: &Repo,
    root: &std::path::Path,
    run: &str,
    force: bool,
) -> Result<usize, CliError> {
    let stray = process::kill_run_processes(run);
    if stray > 0 {
        ctx.ui.info(&format!(
            "massgen: stopped {stray} leftover process(es) of run {run}"
        ));
    }
    let run_root = root.join(run);
    let trash = crate::run::trash::dir(root);
    let own = format!("refs/heads/massgen/{run}/");
    for (wt, branch) in git::worktree::registered_under(repo, &run_root) {
        if let Some(branch) = branch.filter(|b| b.starts_with(&own))
            && git::worktree::is_ready(repo, &wt)
            && let Some(tip) = repo.ref_target(&branch)?
        {
            let message = format!("massgen: work left in run {run}\n");
            match git::snapshot::snapshot(repo, &wt, &branch, tip, &message, false) {
                Ok(snap) if snap.commit != tip => ctx.ui.info(&format!(
                    "massgen: saved the work in {} onto {}",
                    wt.display(),
                    branch.trim_start_matches("refs/heads/")
                )),
                Ok(_) => {}
                Err(e) => ctx.ui.warn(&format!(
                    "cannot snapshot {} before removal: {e}",
                    wt.display()
                )),
            }
        }
        if let Err(e) = git::worktree::discard(repo, &wt, &trash) {
            ctx.ui
                .warn(&format!("cannot remove worktree {}: {e}", wt.display()));
        }
    }
    if run_root.is_dir() {
        let _ = std::fs::create_dir_all(&trash);
        let target = trash.join(format!("{run}-leftovers-{}", std::process::id()));
        match std::fs::rename(&run_root, &target) {
            Ok(()) => ctx.ui.info(&format!(
                "massgen: removed the worktree directory {} of run {run}",
                run_root.display()
            )),
            Err(e) => ctx
                .ui
                .warn(&format!("cannot remove {}: {e}", run_root.display())),
        }
        crate::run::trash::purge_in_background(&trash);
    }
    let protected = other_branch_tips(repo, run)?;
    let mut kept = 0;
    for (name, tip) in repo.branch_tips()? {
        if !name.starts_with(&own) {
            continue;
        }
        let Ok(tip) = ObjectId::from_hex(tip.as_bytes()) else {
            continue;
        };
        let merged = protected
            .iter()
            .any(|&p| repo.is_ancestor(tip, p).unwrap_or(false));
        let short = name.trim_start_matches("refs/heads/");
        if force || merged {
            repo.delete_ref(&name)?;
            ctx.ui.info(&format!("massgen: deleted branch {short}"));
        } else {
            kept += 1;
            ctx.ui.info(&format!(
                "massgen: kept unmerged branch {short} (its run {run} has no readable state)"
            ));
        }
    }
    Ok(kept)
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
        // A worktree made by a run killed before its agents started, or one whose checkout
        // was cut short, holds no agent work; a snapshot of it would record the deletion of
        // every file not yet checked out.
        if st.state == Phase::Created || !git::worktree::is_ready(repo, &wt) {
            ctx.ui.info(&format!(
                "massgen: {}'s worktree was never completely set up (the run stopped before its agents started); discarded without a snapshot",
                c.agent
            ));
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
                c.unsaved = false;
            }
            Err(e) if force => ctx.ui.warn(&format!(
                "{}: cannot snapshot its worktree ({}); discarded with --force",
                c.agent,
                e.with_causes()
            )),
            Err(e) => {
                c.unsaved = true;
                ctx.ui.warn(&format!(
                    "{}: cannot snapshot its worktree ({}); kept {} so that nothing is lost (fix the cause and clean again, or clean --force to discard it)",
                    c.agent,
                    e.with_causes(),
                    wt.display()
                ));
            }
        }
    }
    st.save(dir)?;
    let errors = discard_worktrees(repo, &mut st, force);
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
    let worktrees_kept = st
        .candidates
        .iter()
        .filter(|c| c.worktree.is_some())
        .count();
    if kept == 0 && errors.is_empty() && worktrees_kept == 0 {
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
