//! Sharing the statistics between clones: another clone's ref merged into ours
//! (`learn merge`), the whole statistics as one JSON file (`learn export`) and such a file
//! merged in (`learn import`). Merging never replaces: each machine's counters are
//! merged by taking the larger of each ([`Learning::merge`]), so merging the same copy
//! twice, or copies that already hold each other, counts nothing twice.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::counts::{Learning, Machine};
use super::store::{self, LearnError};
use crate::git::{GixContext, ObjectId, Repo};

/// The version of the export file this build writes and reads.
pub const VERSION: u32 = 1;

/// Why an export file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("not git-massgen's statistics: {0}")]
    Json(#[from] serde_json::Error),
    #[error("statistics of version {found}; this git-massgen reads version {VERSION}")]
    Version { found: u32 },
    #[error("`{id}` is not a machine id (letters, digits, `.`, `_`, `-`; at most 64)")]
    MachineId { id: String },
}

/// The export file: `{"version": 1, "machines": {id: Machine}}`.
#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    machines: BTreeMap<String, Machine>,
}

/// The statistics as the export file holds them (pretty JSON, a final newline).
pub fn to_json(learning: &Learning) -> Vec<u8> {
    let file = File {
        version: VERSION,
        machines: learning.machines.clone(),
    };
    let mut out = serde_json::to_vec_pretty(&file).expect("statistics serialize");
    out.push(b'\n');
    out
}

/// An export file read back. Machine ids become file names in the ref's tree, so they are
/// checked; a machine's own `machine` field follows its key.
pub fn from_json(bytes: &[u8]) -> Result<Learning, ShareError> {
    let file: File = serde_json::from_slice(bytes)?;
    if file.version != VERSION {
        return Err(ShareError::Version {
            found: file.version,
        });
    }
    let mut out = Learning::default();
    for (id, mut machine) in file.machines {
        if !is_machine_id(&id) {
            return Err(ShareError::MachineId { id });
        }
        machine.machine.clone_from(&id);
        out.machines.insert(id, machine);
    }
    Ok(out)
}

/// Whether `id` can name a machine's file (`machines/<id>.json`).
fn is_machine_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// What merging another copy in changed, machine by machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    /// Machines we had no statistics of.
    pub added: Vec<String>,
    /// Machines of which the other copy knew more.
    pub updated: Vec<String>,
    /// Machines already known as well as the other copy knows them.
    pub unchanged: Vec<String>,
    /// Run records (`records/...`) copied from the other copy's ref.
    pub records: usize,
}

impl Outcome {
    /// Whether anything was added or updated.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.updated.is_empty() || self.records > 0
    }
}

/// `other` merged into `learning`; what that changed.
fn fold(learning: &mut Learning, other: &Learning) -> Outcome {
    let mut outcome = Outcome::default();
    for (id, theirs) in &other.machines {
        match learning.machines.get(id) {
            None => outcome.added.push(id.clone()),
            Some(mine) => {
                let mut merged = mine.clone();
                merged.max_with(theirs);
                if merged == *mine {
                    outcome.unchanged.push(id.clone());
                } else {
                    outcome.updated.push(id.clone());
                }
            }
        }
    }
    learning.merge(other);
    outcome
}

/// Merges an export file's statistics into the ref (`learn import`).
pub fn import(repo: &Repo, other: &Learning, message: &str) -> Result<Outcome, LearnError> {
    let mut outcome = Outcome::default();
    store::update_all(repo, message, |learning| {
        outcome = fold(learning, other);
        Vec::new()
    })?;
    Ok(outcome)
}

/// Merges the statistics of the commit `commit` (another clone's ref, fetched) into ours
/// (`learn merge`), with the run records ours lacks. `other` is what [`store::read_commit`]
/// read there.
pub fn merge(
    repo: &Repo,
    commit: ObjectId,
    other: &Learning,
    message: &str,
) -> Result<Outcome, LearnError> {
    // Records never change once written: those whose path we lack are new to us (one that
    // a concurrent update adds meanwhile is written again, the same).
    let ours = records(repo, repo.ref_target(store::REF)?)?;
    let local = repo.local();
    let mut files = Vec::new();
    for (path, id) in records(repo, Some(commit))? {
        if !ours.contains_key(&path) {
            let blob = local
                .find_object(id)
                .ctx(|| format!("cannot read {path} of {commit}"))?;
            files.push((path, blob.data.clone()));
        }
    }
    let mut outcome = Outcome::default();
    store::merge_commit(repo, (commit, other), message, |learning| {
        outcome = fold(learning, other);
        outcome.records = files.len();
        files.clone()
    })?;
    Ok(outcome)
}

/// The run records under `records/` in `commit`'s tree: path → blob.
fn records(
    repo: &Repo,
    commit: Option<ObjectId>,
) -> Result<BTreeMap<String, ObjectId>, LearnError> {
    let mut out = BTreeMap::new();
    let Some(commit) = commit else {
        return Ok(out);
    };
    let local = repo.local();
    let tree = local
        .find_commit(commit)
        .ctx(|| format!("cannot read commit {commit}"))?
        .tree()
        .ctx(|| format!("cannot read the tree of {commit}"))?;
    let Some(entry) = tree.find_entry("records").filter(|e| e.mode().is_tree()) else {
        return Ok(out);
    };
    // Depth-first: `records/<machine>/<run>.json`, whatever the depth.
    let mut pending = vec![("records".to_owned(), entry.object_id())];
    let mut seen = BTreeSet::new();
    while let Some((dir, id)) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        let tree = local.find_tree(id).ctx(|| format!("cannot read {dir}/"))?;
        for entry in tree.iter() {
            let entry = entry.ctx(|| format!("cannot read {dir}/"))?;
            let path = format!("{dir}/{}", entry.filename());
            if entry.mode().is_tree() {
                pending.push((path, entry.object_id()));
            } else if entry.mode().is_blob() {
                out.insert(path, entry.object_id());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(id: &str, runs: u64) -> Machine {
        let mut m = Machine {
            machine: id.into(),
            ..Default::default()
        };
        m.counts_mut("claude", "fix:rust").runs = runs;
        m
    }

    #[test]
    fn export_files_round_trip() {
        let mut l = Learning::default();
        l.machines.insert("m1".into(), machine("m1", 3));
        let text = to_json(&l);
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(
            v["machines"]["m1"]["agents"]["claude"]["fix:rust"]["runs"],
            3
        );
        assert_eq!(from_json(&text).unwrap(), l);
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(matches!(
            from_json(br#"{"version": 2, "machines": {}}"#),
            Err(ShareError::Version { found: 2 })
        ));
        assert!(matches!(
            from_json(br#"{"version": 1, "machines": {"../x": {}}}"#),
            Err(ShareError::MachineId { .. })
        ));
        assert!(matches!(from_json(b"[]"), Err(ShareError::Json(_))));
    }

    #[test]
    fn folding_says_what_changed() {
        let mut ours = Learning::default();
        ours.machines.insert("m1".into(), machine("m1", 3));
        ours.machines.insert("m2".into(), machine("m2", 5));
        let mut theirs = Learning::default();
        theirs.machines.insert("m1".into(), machine("m1", 4));
        theirs.machines.insert("m2".into(), machine("m2", 2));
        theirs.machines.insert("m3".into(), machine("m3", 1));
        let outcome = fold(&mut ours, &theirs);
        assert_eq!(outcome.added, ["m3"]);
        assert_eq!(outcome.updated, ["m1"]);
        assert_eq!(outcome.unchanged, ["m2"]);
        assert_eq!(fold(&mut ours, &theirs).added.len(), 0);
        assert_eq!(ours.totals()["claude"]["fix:rust"].runs, 10);
    }
}
