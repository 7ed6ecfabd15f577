//! Cleaning runs: stopping what a killed run left running, saving what its complete
//! worktrees hold onto their branches, discarding the worktrees, deleting merged or empty
//! branches (unmerged ones only when forced), and whatever crashed runs left behind.
//!
//! Nothing unmerged is deleted without `force`: worktrees of interrupted runs are first
//! snapshotted onto their branches, and a candidate branch whose commit is not contained in
//! any other branch is kept (and its run with it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RunError;
use super::layout::{RunDir, branch_ref, runs_dir};
use super::state::{self, Phase, RunState};
use crate::agent::process;
use crate::git::{self, ObjectId, Repo};

pub use super::Said;

/// The runs [`clean`] takes.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// One run: id, unique prefix or `latest`.
    Run(&'a str),
    /// Every run that is not running, and whatever crashed runs left.
    All,
    /// Every run that is not running and has not changed for this long.
    OlderThan(Duration),
}

/// Cleans the runs `which` names. `root` is the worktree root.
pub fn clean(
    repo: &Repo,
    root: &Path,
    which: Which<'_>,
    force: bool,
    say: &mut dyn FnMut(Said),
) -> Result<(), RunError> {
    let scan = state::scan(&runs_dir(repo))?;
    let mut targets: Vec<(RunDir, RunState)> = Vec::new();
    let mut unreadable: Vec<state::Unreadable> = Vec::new();
    match which {
        Which::OlderThan(age) => {
            let cutoff = crate::sys::now_secs().saturating_sub(age.as_secs());
            for st in scan.runs.iter() {
                if !st.effective_phase().is_active() && st.updated_at <= cutoff {
                    targets.push((RunDir::new(repo, &st.run), st.clone()));
                }
            }
            if targets.is_empty() {
                say(Said::Info(format!(
                    "massgen: no finished run is older than {}",
                    humantime::format_duration(age)
                )));
            }
        }
        Which::Run(run) => {
            if let Some(u) = scan.unreadable.iter().find(|u| u.run == run) {
                unreadable.push(u.clone());
            } else {
                let id = state::resolve(&runs_dir(repo), run)?;
                let dir = RunDir::new(repo, &id);
                let st = RunState::load(&dir)?;
                if st.effective_phase().is_active() {
                    return Err(RunError::Busy {
                        run: st.run,
                        pid: st.pid,
                    });
                }
                targets.push((dir, st));
            }
        }
        Which::All => {
            for st in scan.runs.iter().cloned() {
                if st.effective_phase().is_active() {
                    say(Said::Info(format!(
                        "massgen: skipped run {}: it is still running (process {}); stop it first",
                        st.run, st.pid
                    )));
                } else {
                    targets.push((RunDir::new(repo, &st.run), st));
                }
            }
            unreadable = scan.unreadable.clone();
            for dir in &scan.abandoned {
                std::fs::remove_dir_all(dir).map_err(RunError::io("cannot remove", dir))?;
                say(Said::Info(format!(
                    "massgen: removed {}, left by a run killed as it was created",
                    dir.display()
                )));
            }
        }
    }
    let mut kept_any = false;
    for (dir, st) in targets {
        let kept = clean_run(repo, &dir, st, force, say)?;
        kept_any |= kept > 0;
    }
    for u in &unreadable {
        let kept = clean_leftovers(repo, root, &u.run, force, say)?;
        kept_any |= kept > 0;
        if kept == 0 {
            std::fs::remove_dir_all(&u.dir).map_err(RunError::io("cannot remove", &u.dir))?;
            say(Said::Info(format!(
                "massgen: removed run {} ({})",
                u.run, u.error
            )));
        } else {
            let aside = runs_dir(repo).join(".unreadable").join(&u.run);
            std::fs::create_dir_all(aside.parent().expect("has a parent"))
                .map_err(RunError::io("cannot create", &aside))?;
            std::fs::rename(&u.dir, &aside).map_err(RunError::io("cannot move", &u.dir))?;
            say(Said::Info(format!(
                "massgen: run {} is unreadable ({}); its files were set aside in {}",
                u.run,
                u.error,
                aside.display()
            )));
        }
    }
    if matches!(which, Which::All) {
        // Branches and worktree directories of runs whose directory is gone altogether.
        let known: BTreeSet<&str> = scan
            .runs
            .iter()
            .map(|r| r.run.as_str())
            .chain(unreadable.iter().map(|u| u.run.as_str()))
            .collect();
        let runs = runs_dir(repo);
        for id in orphan_runs(repo, root)? {
            // Looked at again now: a run created since the scan is not an orphan.
            let staged = std::fs::read_dir(&runs).is_ok_and(|mut d| {
                d.any(|e| {
                    e.is_ok_and(|e| {
                        super::layout::staged_run(&e.file_name().to_string_lossy())
                            .is_some_and(|(run, _)| run == id)
                    })
                })
            });
            if !known.contains(id.as_str()) && !runs.join(&id).exists() && !staged {
                let kept = clean_leftovers(repo, root, &id, force, say)?;
                kept_any |= kept > 0;
            }
        }
    }
    // Base checkouts of copy-on-write worktrees that no remaining run uses.
    if root.join("lower").is_dir() {
        let runs = state::scan(&runs_dir(repo))?.runs;
        for said in super::overlay::remove_unused_lowers(repo, root, &runs) {
            say(said);
        }
    }
    if kept_any {
        say(Said::Info(
            "hint: unmerged candidate branches were kept; `git massgen clean --force` deletes them"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Ids of runs that have candidate branches or a worktree directory.
fn orphan_runs(repo: &Repo, root: &std::path::Path) -> Result<BTreeSet<String>, RunError> {
    let mut ids = BTreeSet::new();
    for (name, _) in repo.branch_tips()? {
        if let Some(id) = super::layout::run_of_branch(&name) {
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

/// Cancels the Slurm jobs of a run that are still queued or running (none where Slurm's
/// commands are not installed).
fn cancel_jobs(run: &str, say: &mut dyn FnMut(Said)) {
    match process::slurm::cancel_run(run) {
        Ok(ids) if !ids.is_empty() => {
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            say(Said::Info(format!(
                "massgen: cancelled Slurm job(s) {} of run {run}",
                ids.join(", ")
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => say(Said::Warn(format!(
            "cannot cancel the Slurm jobs of run {run}: {e}"
        ))),
    }
}

/// Cleans what a run left when its state is unreadable or gone: its processes, its
/// worktrees (what a complete one holds is saved onto its branch first), its worktree
/// directory, and its branches (merged ones, or all with `--force`). Returns how many
/// branches were kept.
fn clean_leftovers(
    repo: &Repo,
    root: &Path,
    run: &str,
    force: bool,
    say: &mut dyn FnMut(Said),
) -> Result<usize, RunError> {
    cancel_jobs(run, say);
    let stray = process::kill_run_processes(run);
    if stray > 0 {
        say(Said::Info(format!(
            "massgen: stopped {stray} leftover process(es) of run {run}"
        )));
    }
    let run_root = root.join(run);
    let trash = crate::run::trash::dir(root);
    let own = super::layout::branch_prefix(run);
    for (wt, branch) in git::worktree::registered_under(repo, &run_root) {
        if super::overlay::is_overlay(&wt) {
            // Without the run's state its base checkout is unknown: the work left in the
            // overlay is not saved.
            say(Said::Warn(format!(
                "the copy-on-write worktree {} of run {run} was removed without saving its work (the run's state is gone)",
                wt.display()
            )));
            if let Err(e) = super::overlay::discard(repo, &wt) {
                say(Said::Warn(format!(
                    "cannot remove worktree {}: {e}",
                    wt.display()
                )));
            }
            continue;
        }
        if let Some(branch) = branch.filter(|b| b.starts_with(&own))
            && git::worktree::is_ready(repo, &wt)
            && let Some(tip) = repo.ref_target(&branch)?
        {
            let message = format!("massgen: work left in run {run}\n");
            match git::snapshot::snapshot(repo, &wt, &branch, tip, &message, false) {
                Ok(snap) if snap.commit != tip => say(Said::Info(format!(
                    "massgen: saved the work in {} onto {}",
                    wt.display(),
                    branch.trim_start_matches("refs/heads/")
                ))),
                Ok(_) => {}
                Err(e) => say(Said::Warn(format!(
                    "cannot snapshot {} before removal: {e}",
                    wt.display()
                ))),
            }
        }
        if let Err(e) = git::worktree::discard(repo, &wt, &trash) {
            say(Said::Warn(format!(
                "cannot remove worktree {}: {e}",
                wt.display()
            )));
        }
    }
    if run_root.is_dir() {
        match to_trash(&run_root, &trash, run) {
            Ok(()) => say(Said::Info(format!(
                "massgen: removed the worktree directory {} of run {run}",
                run_root.display()
            ))),
            Err(e) => say(Said::Warn(e)),
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
        let merged = contained(repo, tip, &protected);
        let short = name.trim_start_matches("refs/heads/");
        if force || merged {
            repo.delete_own_ref(&name)?;
            say(Said::Info(format!("massgen: deleted branch {short}")));
        } else {
            kept += 1;
            say(Said::Info(format!(
                "massgen: kept unmerged branch {short} (its run {run} has no readable state)"
            )));
        }
    }
    Ok(kept)
}

/// Keeps all runs' worktrees under `max` bytes (`[worktree] max_disk`): finished runs are
/// cleaned, oldest first, until they fit. Their unmerged branches are kept, always, as is
/// the run `except` (one being continued). Returns how many runs were cleaned.
pub fn keep_under(
    repo: &Repo,
    max: u64,
    except: Option<&str>,
    say: &mut dyn FnMut(Said),
) -> Result<usize, RunError> {
    let scan = state::scan(&runs_dir(repo))?;
    let mut sized: Vec<(u64, RunState)> = scan
        .runs
        .into_iter()
        .map(|st| (crate::sys::disk_usage(&st.worktree_root), st))
        .collect();
    let mut total: u64 = sized.iter().map(|(size, _)| size).sum();
    sized.sort_by_key(|(_, st)| st.updated_at);
    let mut cleaned = 0;
    for (size, st) in sized {
        if total <= max {
            break;
        }
        if size == 0 || st.effective_phase().is_active() || Some(st.run.as_str()) == except {
            continue;
        }
        let (id, dir) = (st.run.clone(), RunDir::new(repo, &st.run));
        let root = st.worktree_root.clone();
        clean_run(repo, &dir, st, false, say)?;
        total = total.saturating_sub(size) + crate::sys::disk_usage(&root);
        cleaned += 1;
        say(Said::Info(format!(
            "massgen: cleaned run {id} ({} of worktrees) to keep worktrees under [worktree] max_disk = {}",
            crate::sys::human_size(size),
            crate::sys::human_size(max)
        )));
    }
    Ok(cleaned)
}

/// Cleans one run; returns how many branches were kept.
fn clean_run(
    repo: &Repo,
    dir: &RunDir,
    mut st: RunState,
    force: bool,
    say: &mut dyn FnMut(Said),
) -> Result<usize, RunError> {
    // Agents left running by a killed `git massgen` are stopped first.
    for c in &mut st.candidates {
        if let Some(pgid) = c.pgid.take()
            && process::kill_leftover_group(pgid, &st.run)
        {
            say(Said::Info(format!(
                "massgen: stopped leftover agent {} of run {}",
                c.agent, st.run
            )));
        }
    }
    if st.executor.is_some() {
        cancel_jobs(&st.run, say);
    }
    // Without a shared file system a cancelled node saved its agent's work as a bundle:
    // read into the worktree, it is saved below like any interrupted agent's.
    if let Some(stage) = &st.bundles {
        for c in st.candidates.iter().filter(|c| !c.saved || c.unsaved) {
            let carried = super::executor::Carried::of(stage, &c.agent);
            let Some(wt) = c.worktree.as_deref().filter(|wt| wt.exists()) else {
                continue;
            };
            if !carried.outbound.exists() {
                continue;
            }
            match super::executor::bring_back(wt, &carried) {
                Ok(()) => say(Said::Info(format!(
                    "massgen: {}: read the work its node left ({})",
                    c.agent,
                    carried.outbound.display()
                ))),
                Err(why) => say(Said::Warn(format!("{}: {why}", c.agent))),
            }
        }
    }
    // And whatever else still runs for this run (commands agents started in groups of
    // their own).
    let stray = process::kill_run_processes(&st.run);
    if stray > 0 {
        say(Said::Info(format!(
            "massgen: stopped {stray} leftover process(es) of run {}",
            st.run
        )));
    }
    // Save what interrupted agents left before their worktrees go.
    let base = state::commit_id(&st.base)?;
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
            say(Said::Info(format!(
                "massgen: {}'s worktree was never completely set up (the run stopped before its agents started); discarded without a snapshot",
                c.agent
            )));
            continue;
        }
        let branch = branch_ref(&st.run, &c.agent);
        // A copy-on-write worktree: what its tests wrote after the snapshot is not the
        // agent's, and no one edits it by hand; work left by an interrupted agent is in its
        // overlay's upper directory.
        let lower = st
            .lower
            .as_deref()
            .filter(|_| super::overlay::is_overlay(&wt));
        if lower.is_some() && c.saved && !c.unsaved {
            continue;
        }
        if c.saved && !c.unsaved {
            // Its agent's work is on its branch already (or its agent never ran: its setup
            // failed): what changed since (its tests' output, edits by hand in a kept
            // worktree) is not the agent's, and never becomes part of the candidate.
            let Some(commit) = c.commit.as_deref() else {
                continue;
            };
            let commit = state::commit_id(commit)?;
            match git::snapshot::changed_since(repo, &wt, &branch, commit) {
                Ok(false) => {}
                Ok(true) if force => say(Said::Warn(format!(
                    "{}: its worktree holds changes made after its candidate was recorded (by its tests, or by hand); discarded with --force",
                    c.agent
                ))),
                Ok(true) => {
                    c.unsaved = true;
                    say(Said::Warn(format!(
                        "{}: its worktree {} holds changes made after its candidate was recorded (by its tests, or by hand); kept, not added to the candidate (look, then clean --force)",
                        c.agent,
                        wt.display()
                    )));
                }
                Err(e) => {
                    c.unsaved = !force;
                    say(Said::Warn(format!(
                        "{}: cannot compare its worktree with its candidate ({}); {}",
                        c.agent,
                        e.with_causes(),
                        if force {
                            "discarded with --force"
                        } else {
                            "kept"
                        }
                    )));
                }
            }
            continue;
        }
        let message = format!(
            "massgen: {} work left in an interrupted run {}\n",
            c.agent, st.run
        );
        let snapped = match lower {
            Some(lower) => {
                let upper = super::overlay::layers(lower, &wt).upper;
                let inside = || super::overlay::tree_inside(repo, lower, &wt);
                git::snapshot::snapshot_overlay(
                    repo, lower, &upper, &branch, base, &message, &inside,
                )
            }
            None => git::snapshot::snapshot(repo, &wt, &branch, base, &message, false),
        };
        match snapped {
            Ok(snap) => saved(c, &snap, say),
            Err(e) if force => say(Said::Warn(format!(
                "{}: cannot snapshot its worktree ({}); discarded with --force",
                c.agent,
                e.with_causes()
            ))),
            Err(e) => {
                c.unsaved = true;
                say(Said::Warn(format!(
                    "{}: cannot snapshot its worktree ({}); kept {} so that nothing is lost (fix the cause and clean again, or clean --force to discard it)",
                    c.agent,
                    e.with_causes(),
                    wt.display()
                )));
            }
        }
    }
    st.save(dir)?;
    let errors = discard_worktrees(repo, &mut st, force);
    for e in &errors {
        say(Said::Warn(e.clone()));
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
        let merged = contained(repo, tip, &protected);
        if force || empty || merged {
            repo.delete_own_ref(&name)?;
        } else {
            kept += 1;
            say(Said::Info(format!(
                "massgen: kept unmerged branch {}",
                c.branch
            )));
        }
    }
    let worktrees_kept = st
        .candidates
        .iter()
        .filter(|c| c.worktree.is_some())
        .count();
    if kept == 0 && errors.is_empty() && worktrees_kept == 0 {
        std::fs::remove_dir_all(&dir.dir).map_err(RunError::io("cannot remove", &dir.dir))?;
        say(Said::Info(format!("massgen: removed run {}", st.run)));
    }
    Ok(kept)
}

/// Records a candidate's work saved by `snap` (from a worktree or a copy-on-write one).
fn saved(c: &mut state::Candidate, snap: &git::snapshot::Snapshot, say: &mut dyn FnMut(Said)) {
    if c.commit.as_deref() != Some(&snap.commit.to_string()) && snap.changed {
        say(Said::Info(format!(
            "massgen: saved {}'s work onto {}",
            c.agent, c.branch
        )));
    }
    c.commit = Some(snap.commit.to_string());
    c.unsaved = false;
    c.saved = true;
}

/// Whether `tip` is contained in one of `tips`.
fn contained(repo: &Repo, tip: ObjectId, tips: &[ObjectId]) -> bool {
    tips.iter()
        .any(|&t| repo.is_ancestor(tip, t).unwrap_or(false))
}

/// Moves a run's worktree directory (what is left in it) into the trash; the error, as a
/// line for the user.
fn to_trash(dir: &Path, trash: &Path, run: &str) -> Result<(), String> {
    let _ = std::fs::create_dir_all(trash);
    let target = trash.join(format!("{run}-leftovers-{}", crate::sys::unique()));
    std::fs::rename(dir, &target).map_err(|e| format!("cannot remove {}: {e}", dir.display()))
}

/// Tips of all branches that are not this run's candidates.
fn other_branch_tips(repo: &Repo, run: &str) -> Result<Vec<ObjectId>, RunError> {
    let own = super::layout::branch_prefix(run);
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

/// Detaches a run's worktrees (renamed into the trash, registrations removed) and starts
/// deleting their files in the background; the worktree of a candidate whose work could not
/// be snapshotted stays unless `force`. Returns the errors, one line per worktree.
pub fn discard_worktrees(repo: &Repo, state: &mut RunState, force: bool) -> Vec<String> {
    let repo_root = state
        .worktree_root
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| state.worktree_root.clone());
    let trash = super::trash::dir(&repo_root);
    let mut errors = Vec::new();
    for c in &mut state.candidates {
        if c.unsaved && !force {
            continue;
        }
        if let Some(wt) = &c.worktree {
            let discarded = if super::overlay::is_overlay(wt) {
                super::overlay::discard(repo, wt)
            } else {
                git::worktree::discard(repo, wt, &trash)
            };
            match discarded {
                Ok(()) => c.worktree = None,
                Err(e) => errors.push(format!("{}: {e}", c.agent)),
            }
        }
    }
    if errors.is_empty() && state.candidates.iter().all(|c| c.worktree.is_none()) {
        // Worktrees an agent registered beside its own (`git worktree add ../x`).
        for (path, _) in git::worktree::registered_under(repo, &state.worktree_root) {
            if let Err(e) = git::worktree::discard(repo, &path, &trash) {
                errors.push(format!("{}: {e}", path.display()));
            }
        }
    }
    if std::fs::remove_dir(&state.worktree_root).is_err()
        && errors.is_empty()
        && state.candidates.iter().all(|c| c.worktree.is_none())
        && state.worktree_root.is_dir()
        && state.worktree_root.file_name() == Some(std::ffi::OsStr::new(&state.run))
    {
        // What agents wrote beside their worktrees (`../`) goes with them.
        if let Err(e) = to_trash(&state.worktree_root, &trash, &state.run) {
            errors.push(e);
        }
    }
    super::trash::purge_in_background(&trash);
    errors
}
