//! A run's persisted state (`state.json`), written atomically after every transition so that
//! a killed process leaves a run that `status` can explain and `clean` can finish.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunError;
use super::layout::RunDir;
pub use crate::model::{
    Abstention, Action, Candidate, Phase, RoundEntry, Status, TestResult, Turn, Usage, Vote, Voter,
};

/// The whole persisted run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub run: String,
    pub base: String,
    /// The branch HEAD was on when the run started (full ref name), if any.
    pub base_branch: Option<String>,
    pub task: String,
    pub state: Phase,
    pub winner: Option<String>,
    pub merged: bool,
    /// One sentence on why the winner won (or why nobody did).
    pub reason: Option<String>,
    pub test_command: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    /// The process that owns the run while it is active.
    pub pid: u32,
    pub worktree_root: PathBuf,
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The sum of the candidates' usage, when any reported one.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Votes of judges and agents, every round.
    #[serde(default)]
    pub votes: Vec<Vote>,
    /// Judges that gave no valid vote.
    #[serde(default)]
    pub abstentions: Vec<Abstention>,
    /// Rounds of the current turn that have run.
    #[serde(default)]
    pub rounds: u32,
    /// The turns: the task, then each `--continue`.
    #[serde(default)]
    pub turns: Vec<Turn>,
    /// Tokens and cost of LLM judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_usage: Option<Usage>,
    /// What changed in the user's repository while agents ran (work tree, index, HEAD,
    /// refs, config, hooks), one line each. Any breach blocks merging without
    /// `--allow-breach`.
    #[serde(default)]
    pub breaches: Vec<String>,
    /// A directory of each worktree put first on `PYTHONPATH` for its agent, setup and
    /// tests, because an editable install points Python at the user's work tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pythonpath: Option<PathBuf>,
    /// How the run's commands were confined: `off`, `Landlock ABI 7, every rule
    /// enforced`, `unavailable: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// How the agents were picked from those configured (`run --pick`): the task's kind,
    /// the seed, each agent's record and draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picked: Option<crate::learn::pick::Picked>,
    /// How the worktrees were made: `checkout` (also for runs recorded before there was a
    /// choice) or `overlay`.
    #[serde(default = "checkout")]
    pub worktree_mode: String,
    /// With `overlay`: the shared checkout of the base every agent's overlay lies on
    /// (`<worktree root>/lower/<base>`); `clean` removes it once no run names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<PathBuf>,
    /// `slurm` when some of its commands run as Slurm jobs (named `massgen-<run>-…`), which
    /// `clean` cancels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// Without a shared file system: where the nodes' bundles go, which `clean` reads
    /// into the worktrees of agents a crash interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundles: Option<PathBuf>,
}

fn checkout() -> String {
    "checkout".to_owned()
}

impl RunState {
    /// The phase as the user should see it: an active run whose process is gone was
    /// interrupted.
    pub fn effective_phase(&self) -> Phase {
        if self.state.is_active() && !process_alive(self.pid) {
            Phase::Interrupted
        } else {
            self.state
        }
    }

    pub fn candidate(&self, agent: &str) -> Option<&Candidate> {
        self.candidates.iter().find(|c| c.agent == agent)
    }

    /// The candidate of `agent`, or an error naming the run.
    pub fn require_candidate(&self, agent: &str) -> Result<&Candidate, RunError> {
        self.candidate(agent).ok_or_else(|| RunError::UnknownAgent {
            run: self.run.clone(),
            agent: agent.to_owned(),
        })
    }

    /// The current turn (1 before any `--continue`).
    pub fn turn(&self) -> u32 {
        self.turns.last().map_or(1, |t| t.turn)
    }

    /// The votes that count now: in the current turn, each judge's latest vote (unless it
    /// abstained after it), and the vote of each agent whose latest action was that vote.
    pub fn current_votes(&self) -> Vec<&Vote> {
        let turn = self.turn();
        let mut out: Vec<&Vote> = Vec::new();
        for (i, v) in self.votes.iter().enumerate() {
            if v.turn != turn {
                continue;
            }
            let superseded = self.votes[i + 1..]
                .iter()
                .any(|later| later.turn == turn && later.judge == v.judge && later.by == v.by);
            if superseded {
                continue;
            }
            let counts = match v.by {
                // Not if it abstained later, or the candidate it chose changed since.
                Voter::Judge => {
                    !self
                        .abstentions
                        .iter()
                        .any(|a| a.turn == turn && a.judge == v.judge && a.round > v.round)
                        && !self.candidate(&v.candidate).is_some_and(|c| {
                            c.history.iter().any(|h| {
                                h.turn == turn && h.round > v.round && h.action == Action::Revised
                            })
                        })
                }
                Voter::Agent => self.candidate(&v.judge).is_some_and(|c| {
                    c.history
                        .iter()
                        .rfind(|h| h.turn == turn)
                        .is_some_and(|h| h.round == v.round && h.action == Action::Voted)
                }),
            };
            if counts {
                out.push(v);
            }
        }
        out
    }

    /// The task as judges and peers see it: with the follow-ups of later turns.
    pub fn task_for_judges(&self) -> String {
        let mut task = self.task.clone();
        for t in self.turns.iter().skip(1) {
            task.push_str(&format!("\n\nFollow-up (turn {}): {}", t.turn, t.prompt));
        }
        task
    }

    pub fn candidate_mut(&mut self, agent: &str) -> Option<&mut Candidate> {
        self.candidates.iter_mut().find(|c| c.agent == agent)
    }

    /// Loads a run's state.
    pub fn load(dir: &RunDir) -> Result<RunState, RunError> {
        load_file(&dir.state_file())
    }

    /// Writes the state atomically (temporary file, then rename).
    pub fn save(&mut self, dir: &RunDir) -> Result<(), RunError> {
        self.updated_at = super::now_secs();
        let path = dir.state_file();
        let text = serde_json::to_vec_pretty(self).expect("state serializes");
        write_atomic(&path, &text)
    }
}

fn load_file(path: &Path) -> Result<RunState, RunError> {
    let bytes = std::fs::read(path).map_err(RunError::io("cannot read run state", path))?;
    serde_json::from_slice(&bytes).map_err(|source| RunError::State {
        path: path.to_owned(),
        source,
    })
}

/// A commit id stored in a run's state.
pub fn commit_id(hex: &str) -> Result<crate::git::ObjectId, RunError> {
    crate::git::ObjectId::from_hex(hex.as_bytes()).map_err(|e| RunError::BadId {
        id: hex.to_owned(),
        why: e.to_string(),
    })
}

/// Writes `bytes` to `path` whole or not at all ([`crate::sys::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    crate::sys::write_atomic(path, bytes).map_err(RunError::io("cannot write", path))
}

pub use crate::sys::process_alive;

/// A run directory whose state cannot be read: `state.json` is missing (a process killed
/// as the run was created by an earlier version) or damaged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unreadable {
    pub run: String,
    pub dir: PathBuf,
    /// Why, in words.
    pub error: String,
}

/// What is in `.massgen/runs/`.
#[derive(Debug, Default)]
pub struct Scan {
    /// Readable runs, oldest first (run ids sort by time).
    pub runs: Vec<RunState>,
    pub unreadable: Vec<Unreadable>,
    /// Directories of runs being created (`.<id>.new-<pid>`) whose process is gone.
    pub abandoned: Vec<PathBuf>,
}

/// Reads every run of the repository. One unreadable run never hides the others.
pub fn scan(runs_dir: &Path) -> Result<Scan, RunError> {
    let mut out = Scan::default();
    let entries = match std::fs::read_dir(runs_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(RunError::io("cannot list runs", runs_dir)(e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        if name.starts_with('.') {
            if let Some((_, pid)) = super::layout::staged_run(&name)
                && !process_alive(pid)
            {
                out.abandoned.push(dir);
            }
            continue;
        }
        let state = dir.join("state.json");
        match load_file(&state) {
            Ok(st) => out.runs.push(st),
            Err(e) => {
                let error = match &e {
                    _ if !state.exists() => {
                        "no state.json (the run was killed as it was created)".to_owned()
                    }
                    RunError::State { source, .. } => format!("state.json is damaged ({source})"),
                    other => other.to_string(),
                };
                out.unreadable.push(Unreadable {
                    run: name,
                    dir,
                    error,
                });
            }
        }
    }
    out.runs.sort_by(|a, b| a.run.cmp(&b.run));
    out.unreadable.sort_by(|a, b| a.run.cmp(&b.run));
    Ok(out)
}

/// Every readable run of the repository, oldest first (run ids sort by time).
pub fn list(runs_dir: &Path) -> Result<Vec<RunState>, RunError> {
    Ok(scan(runs_dir)?.runs)
}

/// Resolves a run argument: an exact id, a unique prefix, or `latest`.
pub fn resolve(runs_dir: &Path, arg: &str) -> Result<String, RunError> {
    let runs = list(runs_dir)?;
    if arg == "latest" || arg == "last" {
        return runs
            .last()
            .map(|r| r.run.clone())
            .ok_or_else(|| RunError::UnknownRun { run: arg.into() });
    }
    let plain = !arg.is_empty() && !arg.starts_with('.') && !arg.contains('/');
    if runs.iter().any(|r| r.run == arg)
        || (plain && runs_dir.join(arg).join("state.json").is_file())
    {
        return Ok(arg.to_owned());
    }
    let matches: Vec<&RunState> = runs.iter().filter(|r| r.run.starts_with(arg)).collect();
    match matches.as_slice() {
        [one] => Ok(one.run.clone()),
        [] => Err(RunError::UnknownRun { run: arg.into() }),
        many => Err(RunError::Usage(format!(
            "`{arg}` matches {} runs: {}",
            many.len(),
            many.iter()
                .map(|r| r.run.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run with candidates `a` and `b` in turn 1, with the given history, votes and
    /// abstentions (given as JSON).
    fn run(history_a: &str, history_b: &str, votes: &str, abstentions: &str) -> RunState {
        let text = format!(
            r#"{{"run": "r", "base": "0", "base_branch": null, "task": "t", "state": "scored",
            "winner": null, "merged": false, "reason": null, "test_command": null,
            "created_at": 0, "updated_at": 0, "pid": 0, "worktree_root": "/w",
            "candidates": [
              {{"agent": "a", "branch": "x", "commit": null, "status": "done", "exit_code": 0,
                "files_changed": 0, "insertions": 0, "deletions": 0, "tests": null,
                "agreement": 0.0, "rank": null, "history": {history_a}}},
              {{"agent": "b", "branch": "y", "commit": null, "status": "done", "exit_code": 0,
                "files_changed": 0, "insertions": 0, "deletions": 0, "tests": null,
                "agreement": 0.0, "rank": null, "history": {history_b}}}],
            "votes": {votes}, "abstentions": {abstentions}, "turns": [{{"turn": 1, "prompt": "t",
            "agents": ["a", "b"], "started_at": 0, "rounds": 2, "converged": false,
            "winner": null, "reason": null}}]}}"#
        );
        serde_json::from_str(&text).expect("a valid state")
    }

    fn counted(st: &RunState) -> Vec<(String, String, u32)> {
        st.current_votes()
            .into_iter()
            .map(|v| (v.judge.clone(), v.candidate.clone(), v.round))
            .collect()
    }

    fn vote(judge: &str, by: &str, candidate: &str, round: u32) -> String {
        format!(
            r#"{{"judge": "{judge}", "by": "{by}", "candidate": "{candidate}", "reason": "r", "turn": 1, "round": {round}}}"#
        )
    }

    fn entry(round: u32, action: &str) -> String {
        format!(r#"{{"turn": 1, "round": {round}, "action": "{action}", "commit": null}}"#)
    }

    #[test]
    fn a_judges_latest_vote_counts_unless_it_abstained_later() {
        let worked = format!("[{}]", entry(1, "worked"));
        let votes = format!(
            "[{}, {}]",
            vote("j", "judge", "a", 1),
            vote("j", "judge", "b", 2)
        );
        let st = run(&worked, &worked, &votes, "[]");
        assert_eq!(counted(&st), vec![("j".into(), "b".into(), 2)]);
        let abstained = r#"[{"judge": "j", "turn": 1, "round": 3, "reason": "no answer"}]"#;
        let st = run(&worked, &worked, &votes, abstained);
        assert!(counted(&st).is_empty());
    }

    #[test]
    fn a_judges_vote_lapses_when_its_candidate_is_revised_after_it() {
        let revised = format!("[{}, {}]", entry(1, "worked"), entry(2, "revised"));
        let worked = format!("[{}]", entry(1, "worked"));
        let votes = format!("[{}]", vote("j", "judge", "a", 1));
        assert!(counted(&run(&revised, &worked, &votes, "[]")).is_empty());
        assert_eq!(counted(&run(&worked, &worked, &votes, "[]")).len(), 1);
    }

    #[test]
    fn an_agents_vote_counts_while_its_latest_action_is_that_vote() {
        let voted = format!("[{}, {}]", entry(1, "worked"), entry(2, "voted"));
        let revised_later = format!(
            "[{}, {}, {}]",
            entry(1, "worked"),
            entry(2, "voted"),
            entry(3, "revised")
        );
        let worked = format!("[{}]", entry(1, "worked"));
        let votes = format!("[{}]", vote("a", "agent", "b", 2));
        assert_eq!(
            counted(&run(&voted, &worked, &votes, "[]")),
            vec![("a".into(), "b".into(), 2)]
        );
        assert!(counted(&run(&revised_later, &worked, &votes, "[]")).is_empty());
    }

    #[test]
    fn an_active_run_whose_process_is_gone_is_interrupted() {
        let mut st = run("[]", "[]", "[]", "[]");
        st.state = Phase::Running;
        st.pid = 0;
        assert_eq!(st.effective_phase(), Phase::Interrupted);
        st.state = Phase::Scored;
        assert_eq!(st.effective_phase(), Phase::Scored);
    }
}
