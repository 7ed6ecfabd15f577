//! Presets for the coding-agent CLIs: how each one is started non-interactively with
//! permission to edit, where its configuration goes, and how its output is read.
//!
//! Each agent gets its own configuration home under the run's directory (unless
//! `own_config`), so parallel agents of one kind never share a config directory and the
//! user's own configuration is never written. API keys stay in the environment: generated
//! files name the variable, never its value.

mod aider;
mod claude;
mod codex;
mod gemini;
mod opencode;

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::events::AgentEvent;
use crate::config::{AgentConfig, AgentKind};

/// Default number of follow-ups sent to an agent that ends by asking a question.
pub const DEFAULT_MAX_NUDGES: u32 = 1;

pub use crate::model::Preset;

impl Preset {
    pub fn from_kind(kind: AgentKind) -> Option<Preset> {
        match kind {
            AgentKind::Command => None,
            AgentKind::Cli(preset) => Some(preset),
            AgentKind::Llm => Some(Preset::Llm),
        }
    }

    /// The product, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Preset::Claude => "Claude Code",
            Preset::Codex => "Codex",
            Preset::Gemini => "Gemini CLI",
            Preset::Opencode => "opencode",
            Preset::Qwen => "Qwen Code",
            Preset::Aider => "aider",
            Preset::Llm => "the built-in LLM agent",
        }
    }

    /// Where to get it.
    pub fn install_hint(self) -> &'static str {
        match self {
            Preset::Claude => "npm install -g @anthropic-ai/claude-code",
            Preset::Codex => "npm install -g @openai/codex",
            Preset::Gemini => "npm install -g @google/gemini-cli",
            Preset::Opencode => "npm install -g opencode-ai",
            Preset::Qwen => "npm install -g @qwen-code/qwen-code",
            Preset::Aider => "pipx install aider-chat",
            Preset::Llm => "it is part of git-massgen",
        }
    }

    /// The variable the CLI reads its API key from when `api_key_env` is not set.
    pub fn default_key_env(self) -> &'static str {
        match self {
            Preset::Claude => "ANTHROPIC_API_KEY",
            Preset::Gemini => "GEMINI_API_KEY",
            Preset::Codex | Preset::Opencode | Preset::Qwen | Preset::Aider => "OPENAI_API_KEY",
            // Resolved from the provider instead.
            Preset::Llm => "",
        }
    }

    /// The endpoint it talks to when `base_url` is not set (for `doctor`).
    pub fn default_base_url(self) -> &'static str {
        match self {
            Preset::Claude => "https://api.anthropic.com",
            Preset::Gemini => "https://generativelanguage.googleapis.com",
            Preset::Codex | Preset::Opencode | Preset::Aider => "https://api.openai.com/v1",
            Preset::Llm => "",
            Preset::Qwen => "https://dashscope.aliyuncs.com/compatible-mode/v1",
        }
    }

    /// Whether a resumed session reports usage as a running total since the session began
    /// (Codex's `turn.completed` does), rather than for the new part only.
    pub fn cumulative_usage(self) -> bool {
        matches!(self, Preset::Codex)
    }

    /// Whether a finished session can be continued with a follow-up prompt. (The built-in
    /// agent keeps its conversation in its home; it answers questions itself, inside its own
    /// loop, so it is never nudged from outside.)
    pub fn can_resume(self) -> bool {
        !matches!(self, Preset::Aider)
    }
}

/// A configured CLI agent.
#[derive(Debug, Clone)]
pub struct CliAgent {
    pub preset: Preset,
    pub model: Option<String>,
    pub bin: String,
    pub args: Vec<String>,
    pub base_url: Option<String>,
    /// The variable holding the API key (the preset's default when not configured).
    pub api_key_env: String,
    /// Whether `api_key_env` was configured rather than defaulted.
    pub api_key_env_set: bool,
    pub max_nudges: u32,
    pub own_config: bool,
    /// The built-in agent's settings (its prompt is filled in at launch).
    pub llm: Option<Box<crate::agent::builtin::Spec>>,
}

impl CliAgent {
    pub fn from_config(preset: Preset, c: &AgentConfig) -> CliAgent {
        CliAgent {
            preset,
            model: c.model.clone(),
            bin: c.bin.clone().unwrap_or_else(|| preset.name().to_owned()),
            args: c.args.clone(),
            base_url: c
                .base_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            api_key_env: c
                .api_key_env
                .clone()
                .unwrap_or_else(|| preset.default_key_env().to_owned()),
            api_key_env_set: c.api_key_env.is_some(),
            max_nudges: c.max_nudges.unwrap_or(DEFAULT_MAX_NUDGES),
            own_config: c.own_config,
            llm: None,
        }
    }

    /// The API key's value, when its variable is set and not empty.
    pub fn api_key(&self) -> Option<String> {
        std::env::var(&self.api_key_env)
            .ok()
            .filter(|v| !v.is_empty())
    }

    /// The command, environment and generated files of one session.
    pub fn launch(&self, ctx: &LaunchCtx<'_>) -> Launch {
        let mut launch = match self.preset {
            Preset::Claude => claude::launch(self, ctx),
            Preset::Codex => codex::launch(self, ctx),
            Preset::Gemini | Preset::Qwen => gemini::launch(self, ctx),
            Preset::Opencode => opencode::launch(self, ctx),
            Preset::Aider => aider::launch(self, ctx),
            Preset::Llm => llm_launch(self, ctx),
        };
        // Never let a CLI wait on a terminal that is not there, or update itself mid-run.
        launch.env.push(("NO_COLOR".into(), "1".into()));
        launch.env.push(("CI".into(), "1".into()));
        launch
    }

    /// Reads one session's stdout as it comes: the returned watcher parses each line, sums
    /// the events into the session's [`Report`], hands each event to `on_event`, and stops
    /// the process on a fatal one; [`Reading::report`] gives the sum afterwards.
    pub fn reading(
        &self,
        on_event: impl Fn(AgentEvent) + Send + 'static,
    ) -> (Reading, crate::agent::process::LineWatcher) {
        let reading = Reading {
            parser: std::sync::Arc::new(std::sync::Mutex::new(self.parser())),
            report: std::sync::Arc::default(),
        };
        let (parser, report) = (reading.parser.clone(), reading.report.clone());
        let watcher = Box::new(move |line: &str| {
            let (events, fatal) = {
                let mut parser = parser.lock().unwrap_or_else(|e| e.into_inner());
                let events = parser.line(line);
                let fatal = events.iter().find_map(|e| parser.fatal(e));
                (events, fatal)
            };
            for event in events {
                report
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply(&event);
                on_event(event);
            }
            fatal
        });
        (reading, watcher)
    }

    /// A fresh parser for this preset's output.
    pub fn parser(&self) -> Parser {
        Parser {
            preset: self.preset,
            text: String::new(),
            seen_result: false,
            steps: 0,
            prev: String::new(),
        }
    }
}

/// The built-in agent: this binary's `llm-agent`, given a spec file in its home.
fn llm_launch(agent: &CliAgent, ctx: &LaunchCtx<'_>) -> Launch {
    let mut spec = agent.llm.clone().expect("an llm agent has its spec");
    spec.prompt = ctx.prompt.to_owned();
    spec.conversation = Some(ctx.home.join("conversation.json"));
    spec.resume = ctx.resume.is_some();
    let path = ctx.home.join("spec.json");
    let mut l = Launch::new(&agent.bin);
    l.arg("llm-agent")
        .arg("--spec")
        .arg(path.display().to_string());
    l.files.push((
        path,
        serde_json::to_string_pretty(&spec).expect("a spec serializes"),
    ));
    l
}

/// One session's output as read so far (see [`CliAgent::reading`]).
pub struct Reading {
    parser: std::sync::Arc<std::sync::Mutex<Parser>>,
    report: std::sync::Arc<std::sync::Mutex<crate::agent::events::Report>>,
}

impl Reading {
    /// The session's report, with what the parser held back until the end.
    pub fn report(&self) -> crate::agent::events::Report {
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for event in self
            .parser
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish()
        {
            report.apply(&event);
        }
        report
    }
}

/// What one session is given.
#[derive(Debug, Clone, Copy)]
pub struct LaunchCtx<'a> {
    /// The task wrapped in the prompt template, or the nudge when resuming.
    pub prompt: &'a str,
    pub worktree: &'a Path,
    /// This agent's own configuration home (created empty by the caller).
    pub home: &'a Path,
    /// The session to continue.
    pub resume: Option<&'a str>,
    /// A review: the CLI may read but not edit (where it has a mode for that).
    pub read_only: bool,
}

/// How to start one session.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Files to write before starting (generated configuration).
    pub files: Vec<(PathBuf, String)>,
}

impl Launch {
    fn new(bin: &str) -> Launch {
        Launch {
            argv: vec![bin.to_owned()],
            ..Launch::default()
        }
    }
    fn arg(&mut self, a: impl Into<String>) -> &mut Launch {
        self.argv.push(a.into());
        self
    }
    fn env(&mut self, k: &str, v: impl Into<String>) -> &mut Launch {
        self.env.push((k.to_owned(), v.into()));
        self
    }

    /// Writes the generated files.
    pub fn write_files(&self) -> std::io::Result<()> {
        for (path, text) in &self.files {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, text)?;
        }
        Ok(())
    }
}

/// Reads one CLI's stdout, line by line, into [`AgentEvent`]s.
#[derive(Debug)]
pub struct Parser {
    preset: Preset,
    /// Streamed message pieces not yet reported as a whole message.
    text: String,
    /// Whether the CLI's final event arrived.
    seen_result: bool,
    /// Model calls since the last finished turn (opencode reports steps; Gemini's turns
    /// are counted from its events).
    steps: u32,
    /// The previous event type, for counting Gemini's turns.
    prev: String,
}

impl Parser {
    /// Events for one line of output. Lines that are not the CLI's JSON are ignored (aider
    /// writes text, which its own parser reads).
    pub fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let line = line.trim();
        if self.preset == Preset::Aider {
            return aider::parse(self, line);
        }
        if self.preset == Preset::Llm {
            // Our own agent writes our own events.
            return serde_json::from_str::<AgentEvent>(line)
                .into_iter()
                .collect();
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Vec::new();
        };
        let events = match self.preset {
            Preset::Claude => claude::parse(self, &v),
            Preset::Codex => codex::parse(self, &v),
            Preset::Gemini | Preset::Qwen => gemini::parse(self, &v),
            Preset::Opencode => opencode::parse(self, &v),
            Preset::Aider | Preset::Llm => unreachable!("handled above"),
        };
        if events
            .iter()
            .any(|e| matches!(e, AgentEvent::Finished { .. }))
        {
            self.seen_result = true;
        }
        events
    }

    /// Events still held when the output ends (a message streamed in pieces).
    pub fn finish(&mut self) -> Vec<AgentEvent> {
        if self.preset == Preset::Aider {
            // aider's words after its last reply are its own, not the model's.
            self.text.clear();
        }
        let mut out = self.flush_text();
        if self.preset == Preset::Aider && !self.seen_result {
            out.push(AgentEvent::Finished {
                ok: true,
                turns: None,
            });
        }
        out
    }

    fn flush_text(&mut self) -> Vec<AgentEvent> {
        let text = std::mem::take(&mut self.text);
        if text.trim().is_empty() {
            Vec::new()
        } else {
            vec![AgentEvent::Message { text }]
        }
    }

    /// Whether a stream of events should be stopped now, and why: Claude Code retries an
    /// authentication failure ten times with growing delays, which would otherwise run
    /// until our timeout. Other CLIs give up on their own.
    pub fn fatal(&self, event: &AgentEvent) -> Option<String> {
        if self.preset != Preset::Claude {
            return None;
        }
        match event {
            AgentEvent::Retry {
                status: Some(status @ (401 | 403)),
                message,
                ..
            } => Some(format!(
                "authentication failed (HTTP {status}){}; check the API key",
                message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )),
            _ => None,
        }
    }
}

/// Strings and numbers out of JSON, without ceremony.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    at(v, path)?.as_u64()
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

/// The binary a command resolves to: a path as given, else the first match on PATH.
pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH");
    crate::agent::process::find_program(bin, Path::new(""), path.as_deref()).ok()
}

/// The events of one tool call: the call, and the file it edits when it is a write tool.
fn tool_events(tool: &str, input: &Value) -> Vec<AgentEvent> {
    let mut out = vec![AgentEvent::ToolCall {
        tool: tool.to_owned(),
        detail: tool_detail(input),
    }];
    if let Some(path) = edited_path(tool, input) {
        out.push(AgentEvent::FileEdit { path });
    }
    out
}

/// A short tool detail out of a tool call's input: the command, the path, or nothing.
fn tool_detail(input: &Value) -> String {
    for key in ["command", "cmd", "file_path", "filePath", "path", "pattern"] {
        match input.get(key) {
            Some(Value::String(s)) => return s.clone(),
            Some(Value::Array(parts)) => {
                return parts
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            _ => {}
        }
    }
    String::new()
}

/// Whether a tool (by name) writes files, and the path it writes.
fn edited_path(tool: &str, input: &Value) -> Option<String> {
    let writes = matches!(
        tool,
        "Write" | "Edit" | "MultiEdit" | "write_file" | "replace" | "edit" | "write" | "patch"
    );
    if !writes {
        return None;
    }
    ["file_path", "filePath", "path"]
        .iter()
        .find_map(|k| input.get(*k)?.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
