//! The built-in LLM agent (`kind = "llm"`): our own coding agent over HTTP, talking to
//! OpenAI-compatible servers (Chat Completions and Responses), Anthropic and Gemini.
//!
//! The pipeline starts it as a process of our own binary (`git-massgen llm-agent --spec`)
//! in the candidate's worktree, so it is supervised, timed out and logged like any agent,
//! and reads its events like a CLI's.

pub mod agent;
pub mod chat;
pub mod client;
pub mod context;
pub mod image;
pub mod limits;
pub mod provider;
pub mod sse;
pub mod tools;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::AgentConfig;

/// Default turns of the built-in agent.
pub const DEFAULT_MAX_TURNS: u32 = 50;
/// Default room for one answer.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 8_192;

/// What every built-in agent of a run shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub system: String,
    pub nudge: String,
    pub prices: BTreeMap<String, provider::Price>,
    /// Shipped profiles with the config's `[limits]` over them.
    pub limits: BTreeMap<String, limits::Limits>,
    /// `--rate-limit`: replaces the profile of every built-in agent.
    pub flag: Option<limits::Limits>,
    /// `--no-rate-limit`.
    pub unlimited: bool,
    pub images: Vec<chat::Image>,
    pub limits_dir: PathBuf,
}

/// The spec of one `kind = "llm"` agent (its prompt is filled in at launch).
pub fn spec_for(a: &AgentConfig, shared: &Shared) -> Result<agent::Spec, String> {
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
        limits::Limits::default()
    } else {
        shared
            .flag
            .or_else(|| shared.limits.get(&key).copied())
            .unwrap_or_default()
    };
    Ok(agent::Spec {
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
        max_turns: a.max_turns.unwrap_or(DEFAULT_MAX_TURNS),
        context_window: a.context_window,
        temperature: a.temperature,
        max_output_tokens: a.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS),
        system: shared.system.clone(),
        prompt: String::new(),
        images: shared.images.clone(),
        limits,
        limits_dir: shared.limits_dir.clone(),
        max_nudges: a.max_nudges.unwrap_or(2),
        nudge: shared.nudge.clone(),
        max_attempts: 5,
        // The first backoff; MASSGEN_RETRY_BASE_MS shortens it (the tests do).
        retry_base_ms: std::env::var("MASSGEN_RETRY_BASE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        start_delay_ms: 0,
        conversation: None,
        resume: false,
    })
}

/// Spreads the starts of agents that share an `rpm` limit over the minute, one request
/// interval apart, so that they do not all queue on the first second.
pub fn stagger(specs: &mut [&mut agent::Spec]) {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for spec in specs.iter_mut() {
        let Some(rpm) = spec.limits.rpm else { continue };
        let n = seen
            .entry(format!("{}/{}", spec.provider, spec.model))
            .or_insert(0);
        spec.start_delay_ms = *n * (60_000 / u64::from(rpm.max(1)));
        *n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(model: &str, rpm: Option<u32>) -> agent::Spec {
        serde_json::from_value(serde_json::json!({
            "protocol": "anthropic", "provider": "p", "model": model, "base_url": "http://x",
            "api_key_env": null, "max_turns": 1, "context_window": null, "temperature": null,
            "max_output_tokens": 1, "system": "", "prompt": "", "images": [],
            "limits": {"rpm": rpm, "tpm": null, "rpd": null, "max_concurrent": null},
            "limits_dir": "/tmp", "price": null, "max_nudges": 0, "nudge": "",
            "max_attempts": 1, "retry_base_ms": 1,
        }))
        .unwrap()
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
}
