//! One model behind one HTTP endpoint: everything a call needs (protocol, address, key
//! variable, request parameters, retries, rate limits, price) and nothing about what the
//! conversation is for. The built-in agent, judges and reviewers each hold one.
//!
//! The key itself is never stored here, only the name of its variable: an endpoint is
//! written into the agent's spec file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::chat::{Reply, ToolChoice};
use super::client::{CallError, Client};
use super::limits::{Limiter, Limits};
use super::provider::Protocol;
use super::wire::Params;

/// Where and how to call one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub protocol: Protocol,
    /// `anthropic`, `vllm`, ...: for messages, prices and rate-limit keys.
    pub provider: String,
    pub model: String,
    /// Without a trailing `/`.
    pub base_url: String,
    /// The variable holding the key; the key itself is never written down.
    pub api_key_env: Option<String>,
    pub temperature: Option<f64>,
    /// Room for one answer, in tokens.
    pub max_output_tokens: u32,
    /// The model's rate limits, shared with every process through `limits_dir`.
    pub limits: Limits,
    pub limits_dir: PathBuf,
    /// Dollars per million input and output tokens, when known.
    pub price: Option<(f64, f64)>,
    /// Attempts of one call (the first included) before giving up.
    pub max_attempts: u32,
    /// The first backoff between attempts; it doubles each time.
    pub retry_base_ms: u64,
    /// Whether requests are streamed (`stream = false` for servers that cannot stream
    /// tool calls).
    #[serde(default = "yes")]
    pub stream: bool,
    /// `tool_choice` sent with every request, when set.
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
}

fn yes() -> bool {
    true
}

impl Endpoint {
    /// `provider/model`: the key of rate limits and prices, and the model's name in events.
    pub fn name(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }

    /// The HTTP client of this endpoint, and the shared rate limiter of its model when it
    /// has limits.
    pub fn connect(&self, key: Option<&str>) -> Result<(Client, Option<Limiter>), CallError> {
        let mut client = Client::new(
            self.protocol,
            &self.provider,
            &self.base_url,
            &self.model,
            key,
        )?;
        client.max_attempts = self.max_attempts;
        client.base_delay = Duration::from_millis(self.retry_base_ms);
        client.stream = self.stream.into();
        let limiter = (!self.limits.is_empty())
            .then(|| Limiter::new(&self.limits_dir, &self.name(), self.limits));
        Ok((client, limiter))
    }

    /// Request parameters with `system` as the system prompt.
    pub fn params<'a>(&'a self, system: &'a str) -> Params<'a> {
        Params {
            model: &self.model,
            system,
            temperature: self.temperature,
            max_output_tokens: self.max_output_tokens,
            completion_tokens_field: self.is_openai_itself(),
            tool_choice: self.tool_choice,
        }
    }

    /// Whether this is OpenAI's own API, which wants `max_completion_tokens`; every
    /// compatible server (vLLM, llama.cpp, Ollama, OpenRouter, any other `base_url`) reads
    /// `max_tokens`, and some ignore the other.
    fn is_openai_itself(&self) -> bool {
        self.protocol == Protocol::OpenaiChat
            && self
                .base_url
                .split_once("://")
                .map_or(self.base_url.as_str(), |(_, rest)| rest)
                .split(['/', ':'])
                .next()
                .is_some_and(|host| host == "api.openai.com")
    }

    /// What one reply used and cost, as our usage; `None` when the server reported no
    /// usage (unknown, not zero).
    pub fn usage(&self, reply: &Reply) -> Option<crate::model::Usage> {
        let used = reply.usage?;
        Some(crate::model::Usage {
            input_tokens: used.input,
            output_tokens: used.output,
            cost_usd: self.cost(reply),
        })
    }

    /// What one reply cost in dollars, when the price is known.
    pub fn cost(&self, reply: &Reply) -> Option<f64> {
        let (input, output) = self.price?;
        let used = reply.usage?;
        Some((used.input as f64 * input + used.output as f64 * output) / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(price: Option<(f64, f64)>) -> Endpoint {
        Endpoint {
            protocol: Protocol::Anthropic,
            provider: "anthropic".into(),
            model: "m".into(),
            base_url: "http://127.0.0.1:1".into(),
            api_key_env: None,
            temperature: None,
            max_output_tokens: 1,
            limits: Limits::default(),
            limits_dir: PathBuf::from("/nonexistent"),
            price,
            max_attempts: 1,
            retry_base_ms: 1,
            stream: true,
            tool_choice: None,
        }
    }

    #[test]
    fn cost_is_known_only_with_a_price() {
        let reply = Reply {
            usage: Some(crate::llm::chat::Tokens {
                input: 1_000_000,
                output: 500_000,
            }),
            ..Reply::default()
        };
        assert_eq!(endpoint(Some((3.0, 15.0))).cost(&reply), Some(10.5));
        assert_eq!(endpoint(None).cost(&reply), None);
        // Usage unknown: the cost is unknown, not zero.
        assert_eq!(endpoint(Some((3.0, 15.0))).cost(&Reply::default()), None);
    }

    #[test]
    fn only_openais_own_api_names_completion_tokens() {
        let mut e = endpoint(None);
        e.protocol = Protocol::OpenaiChat;
        e.provider = "openai".into();
        e.base_url = "https://api.openai.com/v1".into();
        assert!(e.params("s").completion_tokens_field);
        // provider = "openai" pointed at a local server: that server reads max_tokens.
        e.base_url = "http://127.0.0.1:8000/v1".into();
        assert!(!e.params("s").completion_tokens_field);
        e.provider = "openrouter".into();
        e.base_url = "https://openrouter.ai/api/v1".into();
        assert!(!e.params("s").completion_tokens_field);
        assert_eq!(e.name(), "openrouter/m");
    }

    #[test]
    fn an_endpoint_without_limits_has_no_limiter() {
        let (client, limiter) = endpoint(None).connect(Some("k")).expect("a client");
        assert!(limiter.is_none());
        assert_eq!(client.max_attempts, 1);
    }
}
