//! What the parts of a run share: the [`Plan`] (resolved from flags and configuration),
//! the progress [`Event`]s for the user interface, and [`Shared`], the run's state behind a
//! lock that every agent's task updates and persists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::RunError;
use super::executor::Unit;
use super::layout::RunDir;
use super::state::{Action, Candidate, RunState, Status, Voter};
use crate::agent::AgentSpec;
use crate::agent::events::AgentEvent;
use crate::agent::process::slurm::Submit;
use crate::config::{JudgeWhen, Weights};
use crate::git::diff::Rendered;
use crate::git::{self, ObjectId, Repo};
use crate::judge::Judge;

/// Everything a run needs to know, resolved from flags and configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub task: String,
    pub base: ObjectId,
    pub base_branch: Option<String>,
    pub agents: Vec<AgentSpec>,
    pub jobs: usize,
    pub test: Option<String>,
    pub test_timeout: Duration,
    pub keep: bool,
    pub worktree_root: PathBuf,
    /// The prompt template (`{task}`, `{worktree}`, `{test_rule}`, `{agent}`, `{run}`).
    pub prompt_template: String,
    /// The follow-up sent to an agent that asked a question.
    pub nudge: String,
    /// Images attached to the task (`--image`), absolute paths. The built-in agent gets
    /// them in its requests; other agents are told where they are.
    pub images: Vec<PathBuf>,
    /// Rounds at most: 1 is a plain run; more let agents see their peers and revise or vote.
    pub rounds: u32,
    /// `round.md`: what an agent is told in a refinement round.
    pub round_template: String,
    /// `continue.md`: what an agent is told in a turn started with `run --continue`.
    pub continue_template: String,
    pub judges: Vec<Judge>,
    pub judging: Judging,
    pub weights: Option<Weights>,
    /// Ignored files and directories of the user's work tree copied into each new worktree
    /// (`[worktree] include`, `.worktreeinclude`, `[worktree] clone`), as gitignore-style
    /// patterns.
    pub include: Vec<String>,
    /// `[worktree] setup`: run in each new worktree before its agent starts (empty with
    /// `--no-setup`).
    pub setup: Vec<String>,
    pub setup_timeout: Duration,
    /// `[worktree] share`: ignored directories of the user's work tree linked into each new
    /// worktree.
    pub share: Vec<String>,
    /// `[worktree] env`, with `{worktree_root}` expanded: for every agent, setup and test.
    pub env: Vec<(String, String)>,
    /// `[worktree] max_disk`: finished runs' worktrees are removed, oldest first, to stay
    /// under it.
    pub max_disk: Option<u64>,
    /// `[sandbox]`, `--sandbox`, `massgen.sandbox`.
    pub sandbox: super::confine::Sandbox,
    /// How the agents were picked (`--pick`), kept in the run's state.
    pub picked: Option<crate::learn::pick::Picked>,
    /// `[worktree] mode`, `--worktree-mode`, as asked (resolved when the run starts).
    pub worktree_mode: crate::config::WorktreeMode,
    /// `[executor]`, `--executor`, `massgen.executor`; `[score] executor`.
    pub executor: super::executor::Executor,
}

/// How judges are asked.
#[derive(Debug, Clone)]
pub struct Judging {
    pub when: JudgeWhen,
    pub diff_budget: usize,
    pub max_attempts: u32,
    /// `judge.md`
    pub template: String,
}

/// Progress of a run, for the user interface.
#[derive(Debug, Clone)]
pub enum Event {
    Created {
        run: String,
        agents: usize,
        worktree_root: PathBuf,
    },
    WorktreesReady {
        elapsed: Duration,
    },
    /// A refinement round (2 and up) or a new turn begins.
    RoundStarted {
        turn: u32,
        round: u32,
        agents: usize,
    },
    AgentStarted {
        agent: String,
    },
    /// Something a CLI agent reported.
    Agent {
        agent: String,
        event: AgentEvent,
    },
    /// An agent ended by asking a question and is told to finish on its own.
    Nudged {
        agent: String,
        question: String,
    },
    AgentFinished {
        agent: String,
        how: String,
        elapsed: Duration,
    },
    Snapshotted {
        agent: String,
        status: Status,
        action: Action,
        files: usize,
        insertions: usize,
        deletions: usize,
    },
    TestsStarted {
        agent: String,
    },
    TestsFinished {
        agent: String,
        summary: String,
    },
    JudgesStarted {
        judges: usize,
        candidates: usize,
    },
    JudgesSkipped {
        why: String,
    },
    /// A judge or an agent voted (`candidate` is the agent's name).
    Voted {
        voter: String,
        by: Voter,
        candidate: String,
        reason: String,
    },
    Abstained {
        judge: String,
        reason: String,
    },
    /// The rounds of a turn ended early: `converged` when every agent voted without
    /// changing anything, else nobody changed anything.
    Settled {
        round: u32,
        converged: bool,
    },
    /// A Slurm job of an agent (its session, setup or tests) changed state.
    Job {
        agent: String,
        /// `agent`, `setup` or `test`.
        unit: String,
        job: crate::model::SlurmJob,
    },
    Warning(String),
}

/// Receives progress events; called from several tasks at once.
pub type Reporter = Arc<dyn Fn(Event) + Send + Sync>;

pub(super) struct Shared {
    pub(super) repo: Arc<Repo>,
    pub(super) dir: RunDir,
    state: Mutex<RunState>,
    pub(super) report: Reporter,
    /// Rendered diffs against the base, by candidate commit.
    rendered: Mutex<BTreeMap<String, Arc<Rendered>>>,
    /// `[worktree] env`, expanded: for every command in a worktree.
    env: Vec<(String, String)>,
    /// How commands are confined; `None` when they are not.
    pub(super) sandbox: Option<super::confine::Sandbox>,
    /// With copy-on-write worktrees: the checkout of the base their overlays lie on.
    pub(super) lower: Option<PathBuf>,
    /// Where its commands run.
    pub(super) executor: super::executor::Executor,
}

impl Shared {
    pub(super) fn update(&self, f: impl FnOnce(&mut RunState)) -> Result<(), RunError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state);
        state.save(&self.dir)
    }

    pub(super) fn update_candidate(
        &self,
        agent: &str,
        f: impl FnOnce(&mut Candidate),
    ) -> Result<(), RunError> {
        self.update(|s| {
            if let Some(c) = s.candidate_mut(agent) {
                f(c);
            }
        })
    }

    /// The rules of a command in `agent`'s worktree `wt`, with `extra` paths it may write;
    /// `None` when the run neither confines nor mounts overlays. A copy-on-write worktree's
    /// overlay is part of the rules whether or not the run confines.
    pub(super) fn rules(
        &self,
        agent: &str,
        wt: &std::path::Path,
        extra: &[std::path::PathBuf],
    ) -> Option<crate::sandbox::Rules> {
        let overlay = self.overlay_of(wt);
        let mut rules = match &self.sandbox {
            Some(sandbox) => {
                let port = self.read(|s| s.candidate(agent).and_then(|c| c.port));
                super::confine::agent_rules(sandbox, &self.repo, &self.dir, agent, wt, extra, port)
            }
            None if overlay.is_some() => crate::sandbox::Rules::default(),
            None => return None,
        };
        rules.overlay = overlay;
        Some(rules)
    }

    /// The overlay of `wt` when it is a copy-on-write worktree (a kept one is a checkout).
    pub(super) fn overlay_of(&self, wt: &std::path::Path) -> Option<crate::sys::overlay::Overlay> {
        let lower = self.lower.as_deref()?;
        super::overlay::is_overlay(wt).then(|| super::overlay::layers(lower, wt))
    }

    /// `git -C wt …` as the worktree's own commands see it: inside its overlay when it is a
    /// copy-on-write worktree.
    pub(super) fn worktree_git(
        &self,
        wt: &std::path::Path,
    ) -> Result<crate::git::cmd::Git, crate::git::GitError> {
        match self.overlay_of(wt) {
            Some(overlay) => super::overlay::git_inside(&overlay.lower, wt),
            None => Ok(crate::git::cmd::Git::new(wt)),
        }
    }

    /// What a command's environment adds for its sandbox and its overlay
    /// ([`super::confine::command_env`]).
    fn confined_env(&self, agent: &str) -> Vec<(String, String)> {
        super::confine::command_env(
            &self.repo,
            &super::confine::tmp_dir(&self.dir, agent),
            self.sandbox.is_some(),
            self.lower.is_some(),
        )
    }

    /// Reads the state under its lock, without copying it.
    pub(super) fn read<T>(&self, f: impl FnOnce(&RunState) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// What a command in `agent`'s worktree `wt` gets beside its own environment: its block
    /// of ports, `[worktree] env`, and `PYTHONPATH` when the run fixes Python imports.
    pub(super) fn worktree_env(&self, agent: &str, wt: &std::path::Path) -> Vec<(String, String)> {
        let (port, pythonpath) = self.read(|s| {
            (
                s.candidate(agent).and_then(|c| c.port),
                s.pythonpath.clone(),
            )
        });
        let mut env = crate::model::port_env(port);
        env.extend(self.env.iter().cloned());
        env.extend(self.confined_env(agent));
        env.extend(python_env(pythonpath.as_deref(), wt));
        env
    }

    /// The environment of a command git-massgen runs in `agent`'s worktree `wt` (its setup,
    /// its tests): which run, agent and worktree, and [`Shared::worktree_env`].
    pub(super) fn command_env(&self, agent: &str, wt: &std::path::Path) -> Vec<(String, String)> {
        let mut env = vec![
            ("MASSGEN_RUN".to_owned(), self.dir.id.clone()),
            ("MASSGEN_AGENT".to_owned(), agent.to_owned()),
            ("MASSGEN_WORKTREE".to_owned(), wt.display().to_string()),
            ("MASSGEN_ACTIVE".to_owned(), "1".to_owned()),
        ];
        env.extend(self.worktree_env(agent, wt));
        env
    }

    pub(super) fn snapshot_state(&self) -> RunState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn remember(&self, commit: &str, rendered: Rendered) {
        self.rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(commit.to_owned(), Arc::new(rendered));
    }

    /// The changed lines of a commit whose diff was rendered.
    pub(super) fn cached_lines(&self, commit: &str) -> Option<String> {
        self.rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(commit)
            .map(|r| r.changed_lines.clone())
    }

    /// The diff of a candidate commit against the base (rendered once).
    pub(super) async fn rendered(
        &self,
        commit: &str,
        base: ObjectId,
    ) -> Result<Arc<Rendered>, RunError> {
        if let Some(r) = self
            .rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(commit)
        {
            return Ok(r.clone());
        }
        let id = self.repo.resolve_commit(commit)?;
        let repo = self.repo.clone();
        let rendered = tokio::task::spawn_blocking(move || git::diff::render(&repo, base, id))
            .await
            .expect("rendering does not panic")?;
        self.remember(commit, rendered);
        Ok(self.rendered.lock().unwrap_or_else(|e| e.into_inner())[commit].clone())
    }
}

impl Shared {
    /// The Slurm submission of `agent`'s `unit`, when it runs as a job: named
    /// `massgen-<run>-<agent>[-setup|-test]`, its files beside the agent's logs, its state
    /// reported and, for the agent's own job, kept in the candidate.
    pub(super) fn remote(
        self: &Arc<Self>,
        agent: &str,
        unit: Unit,
        export: Vec<String>,
    ) -> Option<Submit> {
        if !self.executor.remote(unit) {
            return None;
        }
        let suffix = match unit {
            Unit::Agent => String::new(),
            other => format!("-{}", other.as_str()),
        };
        let shared = self.clone();
        let name = agent.to_owned();
        let on_state = Box::new(move |job: &crate::model::SlurmJob| {
            let job = crate::model::SlurmJob {
                unit: Some(unit.as_str().to_owned()),
                ..job.clone()
            };
            (shared.report)(Event::Job {
                agent: name.clone(),
                unit: unit.as_str().to_owned(),
                job: job.clone(),
            });
            let _ = shared.update_candidate(&name, |c| {
                // Every job of the candidate (setup, sessions, tests) with its last state;
                // `slurm` is its agent's latest.
                match c.jobs.iter_mut().find(|j| j.id == job.id) {
                    Some(known) => *known = job.clone(),
                    None => c.jobs.push(job.clone()),
                }
                if unit == Unit::Agent {
                    c.slurm = Some(job);
                }
            });
        });
        Some(Submit {
            slurm: self.executor.slurm.clone(),
            name: format!("massgen-{}-{agent}{suffix}", self.dir.id),
            spool: self
                .dir
                .dir
                .join("logs")
                .join(format!("{agent}{}.slurm", suffix.replace('-', "."))),
            export,
            on_state: Some(on_state),
        })
    }
}

pub(super) fn new_shared(
    repo: Arc<Repo>,
    dir: RunDir,
    state: RunState,
    plan: &Plan,
    sandbox: Option<super::confine::Sandbox>,
    report: Reporter,
) -> Arc<Shared> {
    Arc::new(Shared {
        repo,
        dir,
        lower: state.lower.clone(),
        state: Mutex::new(state),
        report,
        rendered: Mutex::new(BTreeMap::new()),
        env: plan.env.clone(),
        sandbox,
        executor: plan.executor.clone(),
    })
}

/// `PYTHONPATH` for a process in the worktree `wt` when the run fixes Python imports (`fix`,
/// a directory relative to the worktree, see `imports`): it first, then whatever
/// `PYTHONPATH` was.
fn python_env(fix: Option<&std::path::Path>, wt: &std::path::Path) -> Vec<(String, String)> {
    let Some(fix) = fix else {
        return Vec::new();
    };
    let mut value = wt.join(fix).display().to_string();
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|v| !v.is_empty()) {
        value.push(':');
        value.push_str(&old.to_string_lossy());
    }
    vec![("PYTHONPATH".to_owned(), value)]
}
