//! Named providers: the protocol each speaks, its usual base URL and key variable, and its
//! quirks; plus prices per model (`templates/prices.toml`, overridable).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// OpenAI Chat Completions and every server compatible with it.
    OpenaiChat,
    OpenaiResponses,
    Anthropic,
    Gemini,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OpenaiChat => "OpenAI Chat Completions",
            Protocol::OpenaiResponses => "OpenAI Responses",
            Protocol::Anthropic => "Anthropic",
            Protocol::Gemini => "Gemini",
        }
    }
}

/// A provider as configured by `provider = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    pub name: &'static str,
    pub protocol: Protocol,
    pub base_url: &'static str,
    /// The key variable when `api_key_env` is not set; `None`: local servers need none.
    pub key_env: Option<&'static str>,
}

pub const PROVIDERS: [Provider; 8] = [
    Provider {
        name: "openai",
        protocol: Protocol::OpenaiChat,
        base_url: "https://api.openai.com/v1",
        key_env: Some("OPENAI_API_KEY"),
    },
    Provider {
        name: "openai-responses",
        protocol: Protocol::OpenaiResponses,
        base_url: "https://api.openai.com/v1",
        key_env: Some("OPENAI_API_KEY"),
    },
    Provider {
        name: "anthropic",
        protocol: Protocol::Anthropic,
        base_url: "https://api.anthropic.com",
        key_env: Some("ANTHROPIC_API_KEY"),
    },
    Provider {
        name: "gemini",
        protocol: Protocol::Gemini,
        base_url: "https://generativelanguage.googleapis.com",
        key_env: Some("GEMINI_API_KEY"),
    },
    // OpenAI-compatible servers. vLLM needs `--enable-auto-tool-choice --tool-call-parser`
    // for tool calls (the error of its 400 says so).
    Provider {
        name: "vllm",
        protocol: Protocol::OpenaiChat,
        base_url: "http://127.0.0.1:8000/v1",
        key_env: None,
    },
    Provider {
        name: "ollama",
        protocol: Protocol::OpenaiChat,
        base_url: "http://127.0.0.1:11434/v1",
        key_env: None,
    },
    Provider {
        name: "llamacpp",
        protocol: Protocol::OpenaiChat,
        base_url: "http://127.0.0.1:8080/v1",
        key_env: None,
    },
    Provider {
        name: "openrouter",
        protocol: Protocol::OpenaiChat,
        base_url: "https://openrouter.ai/api/v1",
        key_env: Some("OPENROUTER_API_KEY"),
    },
];

pub fn find(name: &str) -> Result<Provider, String> {
    PROVIDERS
        .iter()
        .copied()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
            format!(
                "unknown provider `{name}`: expected one of {}",
                names.join(", ")
            )
        })
}

/// Dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// The shipped prices, with `override_text` (a `.massgen/prices.toml`) laid over them.
pub fn prices(override_text: Option<&str>) -> Result<BTreeMap<String, Price>, String> {
    let mut out: BTreeMap<String, Price> =
        toml::from_str(include_str!("../../templates/prices.toml"))
            .map_err(|e| format!("templates/prices.toml: {e}"))?;
    if let Some(text) = override_text {
        let extra: BTreeMap<String, Price> =
            toml::from_str(text).map_err(|e| format!(".massgen/prices.toml: {e}"))?;
        out.extend(extra);
    }
    Ok(out)
}

/// The price of `provider/model`, else of the model under any provider.
pub fn price_of(prices: &BTreeMap<String, Price>, provider: &str, model: &str) -> Option<Price> {
    prices
        .get(&format!("{provider}/{model}"))
        .or_else(|| prices.get(model))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_prices_parse_and_overrides_win() {
        let p = prices(Some("\"anthropic/x\" = { input = 1.0, output = 2.0 }\n")).unwrap();
        assert_eq!(price_of(&p, "anthropic", "x").unwrap().output, 2.0);
        assert!(p.len() > 3);
        assert!(prices(Some("x = { input = 1.0 }")).is_err());
    }
}
