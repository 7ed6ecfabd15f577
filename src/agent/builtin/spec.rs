//! What one built-in agent is given: the [`Endpoint`] it calls and the settings of its own
//! loop, resolved from an `[[agents]]` entry (`kind = "llm"`) and what every agent of the
//! run shares. The pipeline writes it as JSON into the agent's home, and
//! `git-massgen llm-agent --spec FILE` reads it back; both sides use this one type.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;
use crate::llm::Endpoint;
use crate::llm::chat::{Image, ToolChoice};
use crate::llm::limits::Limits;
use crate::llm::provider::{self, Price};

/// Default turns of the built-in agent.
pub const DEFAULT_MAX_TURNS: u32 = 50;
/// Default room for one answer.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 8_192;
/// Default replies to a model that waits for a human.
const DEFAULT_MAX_NUDGES: u32 = 2;
/// Attempts of one model call before giving up.
const MAX_ATTEMPTS: u32 = 5;

/// Everything the agent process needs, written by the pipeline into the agent's home.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// The model and how to call it.
    pub endpoint: Endpoint,
    pub max_turns: u32,
    /// Tokens the model can hold; the conversation is fitted into it when set.
    pub context_window: Option<u64>,
    pub system: String,
    pub prompt: String,
    pub images: Vec<Image>,
    /// Replies sent to a model that waits for a human, at most.
    pub max_nudges: u32,
    pub nudge: String,
    /// Agents sharing an `rpm` limit start this far apart (0 for the first).
    #[serde(default)]
    pub start_delay_ms: u64,
    /// Where the conversation is kept when the agent stops, so that a later session (a
    /// refinement round, a `run --continue` turn) goes on from it.
    #[serde(default)]
    pub conversation: Option<PathBuf>,
    /// Go on from the kept conversation, with `prompt` as the next user message.
    #[serde(default)]
    pub resume: bool,
}

/// What every built-in agent of a run shares (judges and reviewers take their endpoints
/// from it too).
#[derive(Debug, Clone)]
pub struct Shared {
    pub system: String,
    pub nudge: String,
    pub prices: BTreeMap<String, Price>,
    /// Shipped profiles with the config's `[limits]` over them.
    pub limits: BTreeMap<String, Limits>,
    /// `--rate-limit`: replaces the profile of every built-in agent.
    pub flag: Option<Limits>,
    /// `--no-rate-limit`.
    pub unlimited: bool,
    pub images: Vec<Image>,
    pub limits_dir: PathBuf,
}

/// The spec of one `kind = "llm"` agent (its prompt is filled in at launch). Errors name
/// the agent (`agent `NAME`: …`).
pub fn spec_for(a: &AgentConfig, shared: &Shared) -> Result<Spec, String> {
    let name = a.name.get_ref();
    let p = provider::find(a.provider.as_deref().unwrap_or_default())
        .map_err(|e| format!("agent `{name}`: {e}"))?;
    let model = a.model.clone().unwrap_or_default();
    let api_key_env = a
        .api_key_env
        .clone()
        .or_else(|| p.key_env.map(str::to_owned));
    // The key may come from the agent's own `env` table, which its process gets.
    if let Some(var) = &api_key_env
        && a.env.get(var).is_none_or(|v| v.is_empty())
        && std::env::var(var).map_or(true, |v| v.is_empty())
    {
        return Err(format!(
            "agent `{name}`: {var} is not set; it should hold the {} API key",
            p.name
        ));
    }
    if !shared.images.is_empty() && a.vision == Some(false) {
        return Err(format!(
            "agent `{name}`: {}/{model} takes no images (vision = false), but the task has {} attached; drop --image, or run without this agent (--agent)",
            p.name,
            shared.images.len()
        ));
    }
    let key = format!("{}/{model}", p.name);
    let limits = if shared.unlimited {
        Limits::default()
    } else {
        shared
            .flag
            .or_else(|| shared.limits.get(&key).copied())
            .unwrap_or_default()
    };
    let endpoint = Endpoint {
        protocol: p.protocol,
        provider: p.name.to_owned(),
        base_url: a
            .base_url
            .clone()
            .unwrap_or_else(|| p.base_url.to_owned())
            .trim_end_matches('/')
            .to_owned(),
        price: provider::price_of(&shared.prices, p.name, &model).map(|pr| (pr.input, pr.output)),
        model,
        api_key_env,
        temperature: a.temperature,
        max_output_tokens: a.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS),
        limits,
        limits_dir: shared.limits_dir.clone(),
        max_attempts: MAX_ATTEMPTS,
        // The first backoff; MASSGEN_RETRY_BASE_MS shortens it (the tests do).
        retry_base_ms: std::env::var("MASSGEN_RETRY_BASE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        stream: a.stream.unwrap_or(true),
        tool_choice: a
            .tool_choice
            .as_deref()
            .map(ToolChoice::parse)
            .transpose()
            .map_err(|e| format!("agent `{name}`: {e}"))?,
    };
    Ok(Spec {
        endpoint,
        max_turns: a.max_turns.unwrap_or(DEFAULT_MAX_TURNS),
        context_window: a.context_window,
        system: shared.system.clone(),
        prompt: String::new(),
        images: shared.images.clone(),
        max_nudges: a.max_nudges.unwrap_or(DEFAULT_MAX_NUDGES),
        nudge: shared.nudge.clone(),
        start_delay_ms: 0,
        conversation: None,
        resume: false,
    })
}

/// Spreads the starts of agents that share an `rpm` limit over the minute, one request
/// interval apart, so that they do not all queue on the first second.
pub fn stagger(specs: &mut [&mut Spec]) {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for spec in specs.iter_mut() {
        let Some(rpm) = spec.endpoint.limits.rpm else {
            continue;
        };
        let n = seen.entry(spec.endpoint.name()).or_insert(0);
        spec.start_delay_ms = *n * (60_000 / u64::from(rpm.max(1)));
        *n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(model: &str, rpm: Option<u32>) -> Spec {
        serde_json::from_value(serde_json::json!({
            "endpoint": {
                "protocol": "anthropic", "provider": "p", "model": model, "base_url": "http://x",
                "api_key_env": null, "temperature": null, "max_output_tokens": 1,
                "limits": {"rpm": rpm, "tpm": null, "rpd": null, "max_concurrent": null},
                "limits_dir": "/tmp", "price": null, "max_attempts": 1, "retry_base_ms": 1,
            },
            "max_turns": 1, "context_window": null, "system": "", "prompt": "", "images": [],
            "max_nudges": 0, "nudge": "",
        }))
        .expect("a spec as the pipeline writes it")
    }

    #[test]
    fn agents_sharing_an_rpm_limit_start_one_interval_apart() {
        let (mut a, mut b, mut c, mut d) = (
            spec("m", Some(6)),
            spec("m", Some(6)),
            spec("other", Some(6)),
            spec("m", None),
        );
        stagger(&mut [&mut a, &mut b, &mut c, &mut d]);
        assert_eq!(
            [
                a.start_delay_ms,
                b.start_delay_ms,
                c.start_delay_ms,
                d.start_delay_ms
            ],
            [0, 10_000, 0, 0]
        );
    }

    #[test]
    fn a_spec_reads_back_what_it_wrote() {
        let mut written = spec("m", Some(6));
        written.conversation = Some(PathBuf::from("/home/conversation.json"));
        written.resume = true;
        let text = serde_json::to_string_pretty(&written).expect("a spec serializes");
        let read: Spec = serde_json::from_str(&text).expect("a spec reads back");
        assert_eq!(read.endpoint, written.endpoint);
        assert_eq!(read.conversation, written.conversation);
        assert!(read.resume);
    }
}
