//! `[[agents]]`, `[[judges]]` and `[[reviewers]]` entries: their kinds, their keys, and the
//! checks of what each kind takes; agent names and environment variable names.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration;
use crate::model::Preset;

/// The kinds of agent this version knows: `command`, or the name of a CLI preset.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AgentKind {
    /// Any program, given the task through argv placeholders and the environment.
    #[default]
    Command,
    /// One of the known coding-agent CLIs.
    Cli(Preset),
    /// The built-in agent over HTTP.
    Llm,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Command => "command",
            AgentKind::Cli(preset) => preset.name(),
            AgentKind::Llm => "llm",
        }
    }
}

impl TryFrom<String> for AgentKind {
    type Error = String;
    fn try_from(name: String) -> Result<AgentKind, String> {
        if name == "command" {
            return Ok(AgentKind::Command);
        }
        if name == "llm" {
            return Ok(AgentKind::Llm);
        }
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .map(AgentKind::Cli)
            .ok_or_else(|| {
                let kinds: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown agent kind `{name}`: expected `command`, `llm` or one of {}",
                    kinds.join(", ")
                )
            })
    }
}

/// One `[[agents]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub name: Spanned<String>,
    #[serde(default)]
    pub kind: AgentKind,
    /// A command agent's argv.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// Agents: commands run with `sh -c` in the agent's new worktree after the
    /// `[worktree] setup` ones, before it starts.
    #[serde(default)]
    pub setup: Vec<String>,
    /// More paths this agent may write under the sandbox (beside `[sandbox] allow_write`).
    #[serde(default)]
    pub allow_write: Vec<String>,
    /// CLI presets: the model, in the CLI's own spelling.
    pub model: Option<String>,
    /// CLI presets: the binary, when not the preset's name on PATH.
    pub bin: Option<String>,
    /// CLI presets: extra arguments, appended to the preset's own.
    #[serde(default)]
    pub args: Vec<String>,
    /// CLI presets: the API endpoint (mapped to the CLI's own variable, config file or flag).
    pub base_url: Option<String>,
    /// CLI presets: the environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// CLI presets: how many times an agent that ends by asking a question is told to finish.
    pub max_nudges: Option<u32>,
    /// CLI presets: use the user's own CLI configuration and login instead of a generated,
    /// per-agent one (agents of that kind then share it).
    #[serde(default)]
    pub own_config: bool,
    /// `llm`: `openai`, `openai-responses`, `anthropic`, `gemini`, `vllm`, `ollama`,
    /// `llamacpp`, `openrouter`.
    pub provider: Option<String>,
    /// `llm`: the most model turns.
    pub max_turns: Option<u32>,
    /// `llm`: the model's context window in tokens.
    pub context_window: Option<u64>,
    /// `llm`: sampling temperature.
    pub temperature: Option<f64>,
    /// `llm`: the most tokens of one answer.
    pub max_output_tokens: Option<u32>,
    /// `llm`: whether the model takes images (default true); `--image` is refused for
    /// an agent with `vision = false`.
    pub vision: Option<bool>,
    /// `llm`: stream replies (default true); `false` for servers that cannot stream tool
    /// calls (llama-cpp-python).
    pub stream: Option<bool>,
    /// `llm`: `tool_choice` sent with every request: `auto`, `required` or `none`.
    pub tool_choice: Option<String>,
}

impl AgentConfig {
    /// A command agent needs `command` and takes no preset fields; a preset takes no
    /// `command`.
    pub(super) fn check_kind_fields(&self) -> Result<(), String> {
        let name = self.name.get_ref();
        let kind = self.kind;
        let llm_only = [
            ("provider", self.provider.is_some()),
            ("max_turns", self.max_turns.is_some()),
            ("context_window", self.context_window.is_some()),
            ("temperature", self.temperature.is_some()),
            ("max_output_tokens", self.max_output_tokens.is_some()),
            ("vision", self.vision.is_some()),
            ("stream", self.stream.is_some()),
            ("tool_choice", self.tool_choice.is_some()),
        ];
        if kind != AgentKind::Llm
            && let Some((key, _)) = llm_only.iter().find(|(_, set)| *set)
        {
            return Err(format!(
                "agent `{name}`: `{key}` applies to kind = \"llm\" agents"
            ));
        }
        if kind == AgentKind::Llm {
            // Whether the provider is one we know is checked by the layer that knows them
            // (`agent::check_config`); here only that there is one.
            if self.provider.is_none() {
                return Err(format!(
                    "agent `{name}` (kind = \"llm\") needs `provider` (openai, openai-responses, anthropic, gemini, vllm, ollama, llamacpp, openrouter)"
                ));
            }
            if self.model.is_none() {
                return Err(format!("agent `{name}` (kind = \"llm\") needs `model`"));
            }
            for (key, set) in [
                ("command", !self.command.is_empty()),
                ("bin", self.bin.is_some()),
                ("args", !self.args.is_empty()),
                ("own_config", self.own_config),
            ] {
                if set {
                    return Err(format!(
                        "agent `{name}`: `{key}` does not apply to kind = \"llm\""
                    ));
                }
            }
            if self.max_turns == Some(0) {
                return Err(format!("agent `{name}`: max_turns must be at least 1"));
            }
        }
        if kind == AgentKind::Command {
            if self.command.is_empty() {
                return Err(format!(
                    "agent `{name}` has no `command` (an argv list, e.g. [\"my-agent\", \"{{task}}\"]), and no preset `kind` (claude, codex, gemini, opencode, qwen, aider)"
                ));
            }
            let preset_only = [
                ("model", self.model.is_some()),
                ("bin", self.bin.is_some()),
                ("args", !self.args.is_empty()),
                ("base_url", self.base_url.is_some()),
                ("api_key_env", self.api_key_env.is_some()),
                ("max_nudges", self.max_nudges.is_some()),
                ("own_config", self.own_config),
            ];
            if let Some((key, _)) = preset_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "agent `{name}`: `{key}` applies to CLI presets (kind = \"claude\", ...); a command agent takes its options in `command`"
                ));
            }
        } else if !self.command.is_empty() {
            return Err(format!(
                "agent `{name}` (kind = \"{}\"): use `bin` and `args` instead of `command`",
                kind.as_str()
            ));
        }
        if let Some(var) = &self.api_key_env
            && !is_env_name(var)
        {
            return Err(format!(
                "agent `{name}`: api_key_env = \"{var}\" is not an environment variable name"
            ));
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "agent `{name}`: base_url = \"{url}\" must start with http:// or https://"
            ));
        }
        Ok(())
    }
}

/// `NAME` of an environment variable: letters, digits and `_`, not starting with a digit.
pub fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Agent names become branch name components (`massgen/<run>/<name>`) and directory names,
/// so they are restricted to a safe set.
pub fn validate_agent_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty()
        || name.len() > 64
        || !ok_chars
        || name.starts_with(['-', '.'])
        || name.ends_with('.')
        || name.contains("..")
        || name.ends_with(".lock")
    {
        return Err(format!(
            "invalid agent name `{name}`: use 1-64 letters, digits, `-`, `_` or `.`, not starting with `-` or `.`"
        ));
    }
    Ok(())
}
