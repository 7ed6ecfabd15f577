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

    /// Whether the event stream has stdout (the result then goes to stderr).
    pub fn owns_stdout(&self) -> bool {
        self.events
            .as_ref()
            .is_some_and(|s| matches!(*lock(s), EventSink::Stdout))
    }

    /// The last event of a run: how it ended.
    pub fn finished(&self, state: &crate::run::state::RunState) {
        self.emit(
            None,
            "finished",
            json!({"state": state.state, "winner": state.winner, "reason": state.reason}),
        );
    }

    /// Reports one event.
    pub fn report(&self, event: Event) {
        if let Event::Created { run, .. } = &event {
            *lock(&self.run) = run.clone();
        }
        let (agent, kind, data) = record(&event);
        self.emit(agent, kind, data);
        match &self.live {
            Some(live) => live.show(event),
            None => plain(&self.ui, event),
        }
    }

    fn emit(&self, agent: Option<String>, kind: &str, data: Value) {
        if let Some(sink) = &self.events {
            let run = lock(&self.run).clone();
            // Fields in a fixed order, for people reading the stream too.
            let text = format!(
                "{{\"time\":{},\"run\":{},\"agent\":{},\"kind\":{},\"data\":{}}}\n",
                json!(crate::run::rfc3339_now()),
                json!(run),
                json!(agent),
                json!(kind),
                data
            );
            write_line(sink, &text);
        }
    }

    /// Ends the live lines, leaving each agent's last state on screen.
    pub fn finish(&self) {
        if let Some(live) = &self.live {
            live.finish();
        }
    }
}

/// One line of an event stream; a reader that went away is not an error of the run.
fn write_line(sink: &Mutex<EventSink>, text: &str) {
    let mut sink = lock(sink);
    let _ = match &mut *sink {
        EventSink::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
        EventSink::File(f) => f.write_all(text.as_bytes()),
    };
}

/// `plan run --events`: every task's status change and every event of its run, one JSON
/// object per line: `{"time", "plan", "task", "run", "agent", "kind", "data"}`.
pub struct PlanEvents {
    sink: Mutex<EventSink>,
    plan: String,
}

impl PlanEvents {
    pub fn new(sink: EventSink, plan: &str) -> PlanEvents {
        PlanEvents {
            sink: Mutex::new(sink),
            plan: plan.to_owned(),
        }
    }

    /// Whether the stream has stdout (the result then goes to stderr).
    pub fn owns_stdout(&self) -> bool {
        matches!(*lock(&self.sink), EventSink::Stdout)
    }

    fn write(
        &self,
        task: Option<&str>,
        run: Option<&str>,
        agent: Option<String>,
        kind: &str,
        data: Value,
    ) {
        let text = format!(
            "{{\"time\":{},\"plan\":{},\"task\":{},\"run\":{},\"agent\":{},\"kind\":{},\"data\":{}}}\n",
            json!(crate::run::rfc3339_now()),
            json!(self.plan),
            json!(task),
            json!(run),
            json!(agent),
            json!(kind),
            data
        );
        write_line(&self.sink, &text);
    }

    /// The last event: how the plan run ended (`done`, `incomplete`, `interrupted`).
    pub fn finished(&self, end: &str, state: &crate::plan::state::PlanState) {
        let counts: BTreeMap<&str, usize> = state.tasks.iter().fold(BTreeMap::new(), |mut m, t| {
            *m.entry(t.status.as_str()).or_default() += 1;
            m
        });
        self.write(
            None,
            None,
            None,
            "plan_finished",
            json!({"end": end, "integration": state.integration_commit, "tasks": counts}),
        );
    }
}

impl crate::plan::run::Observer for PlanEvents {
    fn task(&self, t: &crate::plan::state::TaskState) {
        let data = json!({
            "status": t.status, "wave": t.wave, "winner": t.winner, "reason": t.reason,
            "conflicts": t.conflicts, "integrated": t.integrated,
        });
        self.write(Some(&t.id), t.run.as_deref(), None, "task", data);
    }

    fn run_event(&self, task: &str, run: Option<&str>, event: &Event) {
        let (agent, kind, data) = record(event);
        self.write(Some(task), run, agent, kind, data);
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
        Event::Job { agent, unit, job } => (
            Some(agent.clone()),
            "job",
            json!({"unit": unit, "id": job.id, "state": job.state, "reason": job.reason, "node": job.node}),
        ),
        Event::Warning(w) => (None, "warning", json!({"message": w})),
    }
}

/// One plain line per event on stderr (not a terminal, or `--json`).
pub fn plain(ui: &Ui, event: Event) {
    match event {
        Event::Warning(w) => ui.warn(&w),
        other => {
            if let Some(text) = plain_text(&other) {
                ui.info(&text);
            }
        }
    }
}

/// An event in one line for people; `None` for what is not worth a line (and warnings,
/// which are said as warnings).
fn plain_text(event: &Event) -> Option<String> {
    Some(match event {
        Event::Created {
            run,
            agents,
            worktree_root,
        } => format!(
            "massgen: run {run}: {agents} agent(s), worktrees in {}",
            worktree_root.display()
        ),
        Event::WorktreesReady { elapsed } => {
            format!("massgen: worktrees ready in {} ms", elapsed.as_millis())
        }
        Event::AgentStarted { agent } => format!("massgen: {agent}: running"),
        Event::AgentFinished {
            agent,
            how,
            elapsed,
        } => format!(
            "massgen: {agent}: {how} after {:.1}s",
            elapsed.as_secs_f64()
        ),
        Event::Snapshotted {
            agent,
            status,
            action,
            files,
            insertions,
            deletions,
        } => format!(
            "massgen: {agent}: {} ({}, +{insertions} -{deletions})",
            match action {
                Action::Worked | Action::Failed => status.as_str(),
                other => other.as_str(),
            },
            ui::count(*files, "file")
        ),
        Event::RoundStarted {
            turn,
            round,
            agents,
        } => format!(
            "massgen: {}round {round}: {agents} agent(s) see their peers' candidates",
            if *turn > 1 {
                format!("turn {turn}, ")
            } else {
                String::new()
            }
        ),
        Event::JudgesStarted { judges, candidates } => format!(
            "massgen: {} choosing between {candidates} candidates",
            ui::count(*judges, "judge")
        ),
        Event::JudgesSkipped { why } => format!("massgen: judges not asked: {why}"),
        Event::Voted {
            voter,
            by,
            candidate,
            reason,
        } => format!(
            "massgen: {} {voter} votes for {candidate}: {}",
            match by {
                Voter::Judge => "judge",
                Voter::Agent => "agent",
            },
            reason.lines().next().unwrap_or("")
        ),
        Event::Abstained { judge, reason } => {
            format!("massgen: judge {judge} abstains: {reason}")
        }
        Event::Settled { round, converged } => {
            if *converged {
                format!(
                    "massgen: converged in round {round}: every agent voted without changing anything"
                )
            } else {
                format!("massgen: round {round} changed nothing; stopping")
            }
        }
        Event::TestsStarted { agent } => format!("massgen: {agent}: testing"),
        Event::TestsFinished { agent, summary } => format!("massgen: {agent}: tests {summary}"),
        Event::Agent { agent, event } => match event {
            AgentEvent::Retry { .. }
            | AgentEvent::Error { .. }
            | AgentEvent::Waiting { .. }
            | AgentEvent::AskedForInput { .. } => {
                format!("massgen: {agent}: {}", event.describe())
            }
            _ => return None,
        },
        Event::Nudged { agent, question } => format!(
            "massgen: {agent}: asked \"{}\"; told to finish on its own",
            question.lines().last().unwrap_or("").trim()
        ),
        Event::Job { agent, job, .. } => format!("massgen: {agent}: {}", job.describe()),
        Event::Warning(_) => return None,
    })
}

/// The live view: a line per agent.
struct Live {
    multi: MultiProgress,
    color: bool,
    state: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    worktree_root: Option<PathBuf>,
    agents: BTreeMap<String, AgentLine>,
}

/// What a line shows that changes between events: read on every redraw.
#[derive(Default)]
struct LineData {
    /// Paths written so far in this session, from the file watcher.
    touched: HashSet<PathBuf>,
    /// Files in the candidate once snapshotted.
    snapshot: Option<usize>,
    /// How long the session took, once it ended.
    took: Option<Duration>,
}

struct AgentLine {
    bar: ProgressBar,
    data: Arc<Mutex<LineData>>,
    /// The file watcher, set up off the event path; dropped when the session ends.
    watcher: Arc<Mutex<Option<notify::RecommendedWatcher>>>,
    state: String,
    tokens: u64,
    cost: Option<f64>,
    last: String,
}

/// Most directories watched per agent; a larger tree shows the snapshot's count only (and
/// leaves the user's inotify watches alone).
const MAX_WATCHED_DIRS: usize = 1000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Live {
    fn new(color: bool) -> Live {
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            color,
            state: Mutex::new(LiveState::default()),
        }
    }

    /// A line's style: its file count and time are read from `data` on every redraw, so
    /// they move while the agent works even when it reports nothing.
    fn style(data: &Arc<Mutex<LineData>>) -> ProgressStyle {
        let (files, took) = (data.clone(), data.clone());
        ProgressStyle::with_template("{spinner} {prefix:16} {took:>4} {files:>9}  {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "files",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let d = lock(&files);
                    let n = d.snapshot.unwrap_or(d.touched.len());
                    let _ = w.write_str(&ui::count(n, "file"));
                },
            )
            .with_key(
                "took",
                move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let d = lock(&took).took.unwrap_or_else(|| s.elapsed());
                    let _ = write!(w, "{}s", d.as_secs());
                },
            )
    }

    fn show(&self, event: Event) {
        let mut st = lock(&self.state);
        match &event {
            Event::Created { worktree_root, .. } => {
                st.worktree_root = Some(worktree_root.clone());
            }
            Event::AgentStarted { agent } => {
                let wt = st.worktree_root.as_ref().map(|r| r.join(agent));
                let line = st.agents.entry(agent.clone()).or_insert_with(|| {
                    let data = Arc::new(Mutex::new(LineData::default()));
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(Live::style(&data));
                    bar.set_prefix(agent.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    AgentLine {
                        bar,
                        data,
                        watcher: Arc::default(),
                        state: String::new(),
                        tokens: 0,
                        cost: None,
                        last: String::new(),
                    }
                });
                line.bar.reset_elapsed();
                *lock(&line.data) = LineData::default();
                line.state = "running".into();
                if let Some(wt) = wt {
                    // Walking and watching a large tree takes a while: not on the way of
                    // the run's events, and not under this lock.
                    let (slot, data) = (line.watcher.clone(), line.data.clone());
                    std::thread::spawn(move || {
                        let watcher = watch_files(&wt, data);
                        *lock(&slot) = watcher;
                    });
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
                    lock(&line.data).took = Some(line.bar.elapsed());
                    lock(&line.watcher).take();
                }
            }
            Event::Snapshotted {
                agent,
                status,
                files,
                ..
            } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    line.state = match status.as_str() {
                        "timeout" => "timed out".to_owned(),
                        other => other.replace('_', " "),
                    };
                    lock(&line.data).snapshot = Some(*files);
                }
            }
            Event::TestsStarted { agent } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    line.state = "testing".into();
                }
            }
            Event::TestsFinished { agent, summary } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    line.state = "tested".into();
                    line.last = format!("tests {summary}");
                }
            }
            Event::Job { agent, job, .. } => {
                if let Some(line) = st.agents.get_mut(agent) {
                    line.last = job.describe();
                }
            }
            Event::Warning(w) => {
                let text = format!("{} {w}", ui::paint(self.color, ui::Paint::Warn, "warning:"));
                let _ = self.multi.println(text);
            }
            other => {
                // Run-wide events (rounds, judges, votes) as lines above the agents.
                if let Some(text) = plain_text(other) {
                    let _ = self.multi.println(text);
                }
            }
        }
        for line in st.agents.values() {
            line.bar.set_message(line.message(self.color));
        }
    }

    fn finish(&self) {
        let mut st = lock(&self.state);
        for line in st.agents.values_mut() {
            lock(&line.watcher).take();
            if matches!(line.state.as_str(), "running" | "snapshotting" | "testing") {
                line.state = "stopped".into();
            }
            line.bar.finish_with_message(line.message(self.color));
        }
    }
}

impl AgentLine {
    fn message(&self, color: bool) -> String {
        let padded = format!("{:<12}", self.state);
        let state = match self.state.as_str() {
            "done" | "tested" => ui::paint(color, ui::Paint::Good, &padded),
            "failed" | "timed out" | "stopped" => ui::paint(color, ui::Paint::Bad, &padded),
            _ => padded,
        };
        let mut parts = vec![state];
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

/// Watches a worktree's directories (those git does not ignore, `.git` left out, at most
/// [`MAX_WATCHED_DIRS`]) and records the files written in them. `None` when the tree is
/// larger or the system will not watch: the line then shows the snapshot's count.
fn watch_files(worktree: &Path, data: Arc<Mutex<LineData>>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut dirs = Vec::new();
    let walk = ignore::WalkBuilder::new(worktree)
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walk.flatten() {
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            dirs.push(entry.into_path());
            if dirs.len() > MAX_WATCHED_DIRS {
                return None;
            }
        }
    }
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
            if path.is_dir()
                || ignore
                    .as_ref()
                    .is_some_and(|g| g.matched_path_or_any_parents(rel, false).is_ignore())
            {
                continue;
            }
            lock(&data).touched.insert(rel.to_owned());
        }
    })
    .ok()?;
    for dir in &dirs {
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .ok()?;
    }
    Some(watcher)
}
