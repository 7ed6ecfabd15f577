//! The statistics kept in git: `refs/massgen/learning` points to a commit whose tree holds
//! one file per machine, `machines/<id>.json` (its [`Machine`]), and each run's records,
//! `records/<id>/<run>.json`. Written with gix, each update a new commit on the last, the
//! ref moved by compare-and-swap: two processes recording at once both land (the loser of
//! the swap reads again and applies its change anew). Shareable like any ref:
//! `git push origin refs/massgen/learning`, fetch it elsewhere, `learn merge`.

use std::collections::BTreeMap;

use gix::objs::tree::EntryKind;

use super::counts::{Learning, Machine};
use crate::git::{GitError, GixContext, ObjectId, Repo};

/// The ref that holds what was learned.
pub const REF: &str = "refs/massgen/learning";
/// This clone's machine id, in the repository's git directory.
const MACHINE_FILE: &str = "massgen-machine-id";
/// How many times an update is tried against concurrent ones.
const ATTEMPTS: usize = 50;

/// Why the statistics cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("{REF} is not git-massgen's statistics: {why}")]
    Foreign { why: String },
    #[error("cannot update {REF}: it kept changing under {ATTEMPTS} attempts")]
    Contended,
    #[error(transparent)]
    Git(#[from] GitError),
}

/// This clone's machine id: made once (random) and kept in the repository's git directory
/// (`massgen-machine-id`, beside its config, never shared), so that every clone counts
/// under its own.
pub fn machine_id(repo: &Repo) -> Result<String, GitError> {
    let path = repo.common_dir.join(MACHINE_FILE);
    let io = |source| GitError::Io {
        what: "cannot keep the machine id in",
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // Written beside and linked into place: two processes at once agree on the first.
    let id = format!("{:016x}", fastrand::u64(..));
    let staging = repo
        .common_dir
        .join(format!("{MACHINE_FILE}.{}", std::process::id()));
    std::fs::write(&staging, format!("{id}\n")).map_err(io)?;
    let linked = std::fs::hard_link(&staging, &path);
    let _ = std::fs::remove_file(&staging);
    match linked {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)
                .map_err(io)?
                .trim()
                .to_owned())
        }
        Err(e) => Err(io(e)),
    }
}

/// What the ref holds now (nothing learned when it does not exist), and its commit.
pub fn load(repo: &Repo) -> Result<(Learning, Option<ObjectId>), LearnError> {
    let Some(tip) = repo.ref_target(REF)? else {
        return Ok((Learning::default(), None));
    };
    Ok((read_commit(repo, tip)?, Some(tip)))
}

/// The statistics in the commit `commit` (of this ref, or of another machine's).
pub fn read_commit(repo: &Repo, commit: ObjectId) -> Result<Learning, LearnError> {
    let local = repo.local();
    let foreign = |why: String| LearnError::Foreign { why };
    let c = local
        .find_object(commit)
        .map_err(|e| foreign(e.to_string()))?
        .try_into_commit()
        .map_err(|_| foreign(format!("{commit} is not a commit")))?;
    let tree = c.tree().map_err(|e| foreign(e.to_string()))?;
    let Some(machines) = tree.find_entry("machines").filter(|e| e.mode().is_tree()) else {
        return Err(foreign("its tree has no machines/ directory".into()));
    };
    let machines = machines
        .object()
        .map_err(|e| foreign(e.to_string()))?
        .into_tree();
    let mut out = Learning::default();
    for entry in machines.iter() {
        let entry = entry.map_err(|e| foreign(e.to_string()))?;
        let name = entry.filename().to_string();
        let Some(id) = name.strip_suffix(".json") else {
            return Err(foreign(format!("machines/{name} is not a machine's file")));
        };
        let blob = entry.object().map_err(|e| foreign(e.to_string()))?;
        let machine: Machine = serde_json::from_slice(&blob.data)
            .map_err(|e| foreign(format!("machines/{name}: {e}")))?;
        out.machines.insert(id.to_owned(), machine);
    }
    Ok(out)
}

/// Changes what this machine learned with `change`, which may also name files to add
/// (`records/...`); retried from the new tip when another process moved the ref first.
pub fn update(
    repo: &Repo,
    message: &str,
    mut change: impl FnMut(&mut Machine) -> Vec<(String, Vec<u8>)>,
) -> Result<(), LearnError> {
    let id = machine_id(repo)?;
    update_all(repo, message, |learning| {
        let m = learning
            .machines
            .entry(id.clone())
            .or_insert_with(|| Machine {
                machine: id.clone(),
                ..Machine::default()
            });
        change(m)
    })
}

/// Changes the whole statistics (every machine's: `learn import`) by compare-and-swap on
/// the ref.
pub fn update_all(
    repo: &Repo,
    message: &str,
    change: impl FnMut(&mut Learning) -> Vec<(String, Vec<u8>)>,
) -> Result<(), LearnError> {
    update_with(repo, message, None, change)
}

/// Merges another clone's statistics, the commit `other` with what it holds (`learn merge`,
/// after [`read_commit`]): `change` folds them into ours. The result is a merge commit with
/// `other` as its second parent, so that pushing our ref afterwards fast-forwards the one
/// `other` came from; when ours is behind `other` and `change` adds nothing of ours, the ref
/// simply moves to `other`.
pub fn merge_commit(
    repo: &Repo,
    other: (ObjectId, &Learning),
    message: &str,
    change: impl FnMut(&mut Learning) -> Vec<(String, Vec<u8>)>,
) -> Result<(), LearnError> {
    update_with(repo, message, Some(other), change)
}

/// The compare-and-swap loop of every update; `merged`: the commit merged in, if any, with
/// what it holds ([`read_commit`]; a fast-forward needs our result to equal it).
fn update_with(
    repo: &Repo,
    message: &str,
    merged: Option<(ObjectId, &Learning)>,
    mut change: impl FnMut(&mut Learning) -> Vec<(String, Vec<u8>)>,
) -> Result<(), LearnError> {
    let (other, theirs) = (merged.map(|(o, _)| o), merged.map(|(_, l)| l));
    for _ in 0..ATTEMPTS {
        let (mut learning, tip) = load(repo)?;
        let before = learning.clone();
        let files = change(&mut learning);
        // Whether history must still record `other` (it is not among our ancestors), and
        // whether the ref can just move to it (we are among its ancestors).
        let (join, fast_forward) = match (other, tip) {
            (None, _) => (false, false),
            (Some(_), None) => (true, true),
            (Some(o), Some(t)) if repo.is_ancestor(o, t)? => (false, false),
            (Some(o), Some(t)) => (true, repo.is_ancestor(t, o)?),
        };
        if !join && learning == before && files.is_empty() {
            return Ok(());
        }
        let commit = match (other, theirs) {
            (Some(o), Some(theirs)) if fast_forward && learning == *theirs => o,
            _ => {
                let parents: Vec<ObjectId> =
                    tip.into_iter().chain(other.filter(|_| join)).collect();
                write(repo, &learning, &files, &parents, message)?
            }
        };
        match repo.set_ref(REF, commit, tip, message) {
            Ok(()) => return Ok(()),
            // Another process moved it first: read again, change again.
            Err(_) if repo.ref_target(REF)? != tip => {
                std::thread::sleep(std::time::Duration::from_millis(fastrand::u64(1..20)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(LearnError::Contended)
}

/// Deletes the ref (`learn reset`); whether there was one.
pub fn reset(repo: &Repo) -> Result<bool, GitError> {
    repo.delete_ref(REF)
}

/// A commit holding `learning`'s machine files and `files`, on the first parent's tree.
fn write(
    repo: &Repo,
    learning: &Learning,
    files: &[(String, Vec<u8>)],
    parents: &[ObjectId],
    message: &str,
) -> Result<ObjectId, GitError> {
    let local = repo.local();
    // On the first parent's tree: our records stay; the other side's come as `files`.
    let base = match parents.first() {
        Some(p) => repo.tree_of(*p)?,
        None => ObjectId::empty_tree(gix::hash::Kind::Sha1),
    };
    let mut editor = local
        .edit_tree(base)
        .ctx(|| "cannot edit the statistics' tree".into())?;
    let mut blobs: BTreeMap<String, Vec<u8>> = learning
        .machines
        .iter()
        .map(|(id, m)| {
            let text = serde_json::to_vec_pretty(m).expect("statistics serialize");
            (format!("machines/{id}.json"), text)
        })
        .collect();
    blobs.insert("README".into(), README.as_bytes().to_vec());
    blobs.extend(files.iter().cloned());
    for (path, bytes) in blobs {
        let id = local
            .write_blob(&bytes)
            .ctx(|| format!("cannot write {path}"))?
            .detach();
        editor
            .upsert(path.as_str(), EntryKind::Blob, id)
            .ctx(|| format!("cannot edit {path}"))?;
    }
    let tree = editor
        .write()
        .ctx(|| "cannot write the statistics' tree".into())?
        .detach();
    let sig = crate::git::signature("git-massgen", "git-massgen@localhost");
    let mut time = gix::date::parse::TimeBuf::default();
    let sig = sig.to_ref(&mut time);
    Ok(local
        .new_commit_as(sig, sig, message, tree, parents.iter().copied())
        .ctx(|| "cannot write the statistics' commit".into())?
        .id)
}

const README: &str = "What git-massgen learned about which agents win on this repository.\n\
machines/<id>.json: each clone's grow-only counters (per agent and kind of task), merged\n\
by taking the larger of each; records/<id>/<run>.json: the records of each run.\n\
Share it with `git push origin refs/massgen/learning`; combine with `git massgen learn merge`.\n";
