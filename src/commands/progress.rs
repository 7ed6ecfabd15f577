//! What a run shows while it runs: on a terminal, one live line per agent (indicatif), with
//! the files it has changed so far (watched with `notify`); otherwise plain lines on stderr;
//! and with `--events PATH`, one JSON object per event for machines.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::agent::events::AgentEvent;
use crate::run::pipeline::Event;
use crate::run::state::{Action, Voter};
use crate::ui::{self, Ui};

/// Where the NDJSON event stream goes.
pub enum EventSink {
    Stdout,
    File(std::fs::File),
}

/// Everything that reports a run's progress.
pub struct Progress {
    ui: Arc<Ui>,
    live: Option<Live>,
    events: Option<Mutex<EventSink>>,
    run: Mutex<String>,
}

impl Progress {
    /// Live lines when `live` (stderr is a terminal, not `--json`, not `--quiet`), plain
    /// lines otherwise; events to `events` when given.
    pub fn new(ui: Arc<Ui>, live: bool, events: Option<EventSink>, run: &str) -> Progress {
        // A terminal indicatif will not draw on (TERM unset or dumb) gets plain lines.
        let live = live
            .then(|| Live::new(ui.color_err()))
            .filter(|l| !l.multi.is_hidden());
        Progress {
            live,
            ui,
            events: events.map(Mutex::new),
            run: Mutex::new(run.to_owned()),
        }
    }

    /// Reports one event.
    pub fn report(&self, event: Event) {
        if let Event::Created { run, .. } = &event {
            *self.run.lock().unwrap_or_else(|e| e.into_inner()) = run.clone();
        }
        if let Some(sink) = &self.events {
            let run = self.run.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let (agent, kind, data) = record(&event);
            // Fields in a fixed order, for people reading the stream too.
            let text = format!(
                "{{\"time\":{},\"run\":{},\"agent\":{},\"kind\":{},\"data\":{}}}\n",
                json!(crate::run::rfc3339_now()),
                json!(run),
                json!(agent),
                json!(kind),
                data
            );
            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
            let _ = match &mut *sink {
                EventSink::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
                EventSink::File(f) => f.write_all(text.as_bytes()),
            };
        }
        match &self.live {
            Some(live) => live.show(event),
            None => plain(&self.ui, event),
        }
    }

    /// Ends the live lines, leaving each agent's last state on screen.
    pub fn finish(&self) {
        if let Some(live) = &self.live {
            live.finish();
        }
    }
}

/// An event as `(agent, kind, data)` for the NDJSON stream.
pub fn record(event: &Event) -> (Option<String>, &'static str, Value) {
    let ms = |d: &Duration| d.as_millis() as u64;
    match event {
        Event::Created {
            run,
            agents,
            worktree_root,
        } => (
            None,
            "created",
            json!({"run": run, "agents": agents, "worktree_root": worktree_root}),
        ),
        Event::WorktreesReady { elapsed } => {
            (None, "worktrees_ready", json!({"elapsed_ms": ms(elapsed)}))
        }
        Event::RoundStarted {
            turn,
            round,
            agents,
        } => (
            None,
            "round_started",
            json!({"turn": turn, "round": round, "agents": agents}),
        ),
        Event::AgentStarted { agent } => (Some(agent.clone()), "agent_started", json!({})),
        Event::Agent { agent, event } => (
            Some(agent.clone()),
            "agent_event",
            serde_json::to_value(event).unwrap_or(Value::Null),
        ),
        Event::Nudged { agent, question } => {
            (Some(agent.clone()), "nudged", json!({"question": question}))
        }
        Event::AgentFinished {
            agent,
            how,
            elapsed,
        } => (
            Some(agent.clone()),
            "agent_finished",
            json!({"how": how, "elapsed_ms": ms(elapsed)}),
        ),
        Event::Snapshotted {
            agent,
            status,
            action,
            files,
            insertions,
            deletions,
        } => (
            Some(agent.clone()),
            "snapshotted",
            json!({"status": status, "action": action, "files": files,
                   "insertions": insertions, "deletions": deletions}),
        ),
        Event::TestsStarted { agent } => (Some(agent.clone()), "tests_started", json!({})),
        Event::TestsFinished { agent, summary } => (
            Some(agent.clone()),
            "tests_finished",
            json!({"summary": summary}),
        ),
        Event::JudgesStarted { judges, candidates } => (
            None,
            "judges_started",
            json!({"judges": judges, "candidates": candidates}),
        ),
        Event::JudgesSkipped { why } => (None, "judges_skipped", json!({"why": why})),
        Event::Voted {
            voter,
            by,
            candidate,
            reason,
        } => (
            (*by == Voter::Agent).then(|| voter.clone()),
            "voted",
            json!({"voter": voter, "by": by, "candidate": candidate, "reason": reason}),
        ),
        Event::Abstained { judge, reason } => {
            (None, "abstained", json!({"judge": judge, "reason": reason}))
        }
        Event::Settled { round, converged } => (
            None,
            "settled",
            json!({"round": round, "converged": converged}),
        ),
        Event::Warning(w) => (None, "warning", json!({"message": w})),
    }
}

/// One plain line per event on stderr (not a terminal, or `--json`).
pub fn plain(ui: &Ui, event: Event) {
    match event {
        Event::Created {
            run,
            agents,
            worktree_root,
        } => ui.info(&format!(
            "massgen: run {run}: {agents} agent(s), worktrees in {}",
            worktree_root.display()
        )),
        Event::WorktreesReady { elapsed } => ui.info(&format!(
            "massgen: worktrees ready in {} ms",
            elapsed.as_millis()
        )),
        Event::AgentStarted { agent } => ui.info(&format!("massgen: {agent}: running")),
        Event::AgentFinished {
            agent,
            how,
            elapsed,
        } => ui.info(&format!(
            "massgen: {agent}: {how} after {:.1}s",
            elapsed.as_secs_f64()
        )),
        Event::Snapshotted {
            agent,
            status,
            action,
            files,
            insertions,
            deletions,
        } => ui.info(&format!(
            "massgen: {agent}: {} ({}, +{insertions} -{deletions})",
            match action {
                Action::Worked | Action::Failed => status.as_str(),
                other => other.as_str(),
            },
            ui::count(files, "file")
        )),
        Event::RoundStarted {
            turn,
            round,
            agents,
        } => ui.info(&format!(
            "massgen: {}round {round}: {agents} agent(s) see their peers' candidates",
            if turn > 1 {
                format!("turn {turn}, ")
            } else {
                String::new()
            }
        )),
        Event::JudgesStarted { judges, candidates } => ui.info(&format!(
            "massgen: {} choosing between {candidates} candidates",
            ui::count(judges, "judge")
        )),
        Event::JudgesSkipped { why } => ui.info(&format!("massgen: judges not asked: {why}")),
        Event::Voted {
            voter,
            by,
            candidate,
            reason,
        } => ui.info(&format!(
            "massgen: {} {voter} votes for {candidate}: {}",
            match by {
                Voter::Judge => "judge",
                Voter::Agent => "agent",
            },
            reason.lines().next().unwrap_or("")
        )),
        Event::Abstained { judge, reason } => {
            ui.info(&format!("massgen: judge {judge} abstains: {reason}"))
        }
        Event::Settled { round, converged } => ui.info(&if converged {
            format!(
                "massgen: converged in round {round}: every agent voted without changing anything"
            )
        } else {
            format!("massgen: round {round} changed nothing; stopping")
        }),
        Event::TestsStarted { agent } => ui.info(&format!("massgen: {agent}: testing")),
        Event::TestsFinished { agent, summary } => {
            ui.info(&format!("massgen: {agent}: tests {summary}"))
        }
        Event::Agent { agent, event } => match &event {
            AgentEvent::Retry { .. }
            | AgentEvent::Error { .. }
            | AgentEvent::Waiting { .. }
            | AgentEvent::AskedForInput { .. } => {
                ui.info(&format!("massgen: {agent}: {}", event.describe()))
            }
            _ => {}
        },
        Event::Nudged { agent, question } => ui.info(&format!(
            "massgen: {agent}: asked \"{}\"; told to finish on its own",
            question.lines().last().unwrap_or("").trim()
        )),
        Event::Warning(w) => ui.warn(&w),
    }
}

/// The live view: a line per agent.
struct Live {
    multi: MultiProgress,
    style: ProgressStyle,
    color: bool,
    state: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    worktree_root: Option<PathBuf>,
    agents: BTreeMap<String, AgentLine>,
}

struct AgentLine {
    bar: ProgressBar,
    state: String,
    /// Paths changed so far, shared with its file watcher.
    changed: Arc<Mutex<HashSet<PathBuf>>>,
    _watcher: Option<notify::RecommendedWatcher>,
    tokens: u64,
    cost: Option<f64>,
    last: String,
}

impl Live {
    fn new(color: bool) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let style = ProgressStyle::with_template("{spinner} {prefix:16} {elapsed:>4} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Live {
            multi,
            style,
            color,
            state: Mutex::new(LiveState::default()),
        }
    }

    fn show(&self, event: Event) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &event {
            Event::Created { worktree_root, .. } => {
                st.worktree_root = Some(worktree_root.clone());
            }
            Event::AgentStarted { agent } => {
                let wt = st.worktree_root.as_ref().map(|r| r.join(agent));
                let line = st.agents.entry(agent.clone()).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(self.style.clone());
                    bar.set_prefix(agent.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    AgentLine {
                        bar,
                        state: String::new(),
                        changed: Arc::default(),
                        _watcher: None,
                        tokens: 0,
                        cost: None,
                        last: String::new(),
                    }
                });
                line.bar.reset_elapsed();
                line.state = "running".into();
                if let Some(wt) = wt {
                    line._watcher = watch_files(&wt, line.changed.clone());
                }
            }
            Event::Agent { agent, event } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    match event {
                        AgentEvent::Usage {
                            input_tokens,
                            output_tokens,
                        } => line.tokens += input_tokens + output_tokens,
                        AgentEvent::Cost { usd } => *line.cost.get_or_insert(0.0) += usd,
                        AgentEvent::Finished { .. } => {}
                        other => line.last = other.describe(),
                    }
                }
            }
            Event::AgentFinished { agent, how, .. } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    line.state = "snapshotting".into();
                    line.last = how.clone();
                    line._watcher = None;
                }
            }
            Event::Snapshotted {
                agent,
                status,
                files,
                ..
            } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    line.state = status.as_str().replace('_', " ");
                    let mut changed = line.changed.lock().unwrap_or_else(|e| e.into_inner());
                    changed.clear();
                    changed.extend((0..*files).map(|i| PathBuf::from(i.to_string())));
                }
            }
            Event::TestsStarted { agent } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    line.state = "testing".into();
                }
            }
            Event::TestsFinished { agent, summary } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    line.state = "done".into();
                    line.last = format!("tests {summary}");
                }
            }
            Event::Warning(w) => {
                let text = format!("{} {w}", ui::paint(self.color, ui::Paint::Warn, "warning:"));
                let _ = self.multi.println(text);
            }
            other => {
                // Run-wide events (rounds, judges, votes) as lines above the agents.
                let (_, kind, _) = record(other);
                if kind != "worktrees_ready" {
                    let text = describe(other);
                    if !text.is_empty() {
                        let _ = self.multi.println(text);
                    }
                }
            }
        }
        for line in st.agents.values() {
            line.bar.set_message(line.message(self.color));
        }
    }

    fn finish(&self) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for line in st.agents.values() {
            line.bar.finish_with_message(line.message(self.color));
        }
    }
}

impl AgentLine {
    fn message(&self, color: bool) -> String {
        let files = self.changed.lock().map(|c| c.len()).unwrap_or(0);
        let padded = format!("{:<12}", self.state);
        let state = match self.state.as_str() {
            "done" | "finished" => ui::paint(color, ui::Paint::Good, &padded),
            "failed" | "timed out" | "interrupted" => ui::paint(color, ui::Paint::Bad, &padded),
            _ => padded,
        };
        let mut parts = vec![state, ui::count(files, "file")];
        if self.tokens > 0 {
            parts.push(format!("{} tok", self.tokens));
        }
        if let Some(usd) = self.cost {
            parts.push(format!("${usd:.2}"));
        }
        let last: String = self
            .last
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        if !last.is_empty() {
            parts.push(last);
        }
        parts.join("  ")
    }
}

/// A run-wide event in a few words, as the plain lines say it.
fn describe(event: &Event) -> String {
    match event {
        Event::RoundStarted { turn, round, .. } => format!("massgen: turn {turn}, round {round}"),
        Event::JudgesStarted { judges, candidates } => format!(
            "massgen: {} choosing between {candidates} candidates",
            ui::count(*judges, "judge")
        ),
        Event::JudgesSkipped { why } => format!("massgen: judges not asked: {why}"),
        Event::Voted {
            voter, candidate, ..
        } => format!("massgen: {voter} votes for {candidate}"),
        Event::Abstained { judge, reason } => format!("massgen: judge {judge} abstains: {reason}"),
        Event::Settled { round, converged } => {
            format!("massgen: round {round} settled (converged: {converged})")
        }
        Event::Nudged { agent, .. } => format!("massgen: {agent} asked a question; told to finish"),
        _ => String::new(),
    }
}

/// Watches a worktree for changed files, leaving out `.git` and ignored files. `None` when
/// the system will not watch it (too many directories for inotify, say): the line then
/// shows the count from the snapshot only.
fn watch_files(
    worktree: &Path,
    changed: Arc<Mutex<HashSet<PathBuf>>>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let root = worktree.to_owned();
    let ignore = {
        let mut b = ignore::gitignore::GitignoreBuilder::new(&root);
        b.add(root.join(".gitignore"));
        b.build().ok()
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else {
            return;
        };
        if event.kind.is_access() {
            return;
        }
        for path in event.paths {
            let Ok(rel) = path.strip_prefix(&root) else {
                continue;
            };
            if rel
                .components()
                .next()
                .is_some_and(|c| c.as_os_str() == ".git")
            {
                continue;
            }
            let is_dir = path.is_dir();
            if is_dir {
                continue;
            }
            if ignore
                .as_ref()
                .is_some_and(|g| g.matched_path_or_any_parents(rel, false).is_ignore())
            {
                continue;
            }
            changed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(rel.to_owned());
        }
    })
    .ok()?;
    watcher
        .watch(worktree, notify::RecursiveMode::Recursive)
        .ok()?;
    Some(watcher)
}
