//! opencode: `opencode run --format json --dir WORKTREE -m PROVIDER/MODEL PROMPT`.
//!
//! With `base_url`, a generated `opencode.json` (named by `OPENCODE_CONFIG`) declares an
//! OpenAI-compatible provider `massgen` whose key is read from the configured variable.
//! Events: `step_start`, `tool_use{part{tool, state}}`, `text{part{text}}`,
//! `step_finish{part{reason, tokens, cost}}`, `error`.

use serde_json::{Value, json};

use super::{AgentEvent, CliAgent, Launch, LaunchCtx, Parser, str_at, tool_events, u64_at};

pub(super) fn launch(agent: &CliAgent, ctx: &LaunchCtx<'_>) -> Launch {
    let mut l = Launch::new(&agent.bin);
    l.arg("run").arg("--format").arg("json");
    if !ctx.read_only {
        l.arg("--auto");
    }
    l.arg("--dir").arg(ctx.worktree.display().to_string());
    if let Some(session) = ctx.resume {
        l.arg("--session").arg(session);
    }
    if let Some(model) = model_arg(agent) {
        l.arg("-m").arg(model);
    }
    l.argv.extend(agent.args.iter().cloned());
    l.arg("--").arg(ctx.prompt);
    l.env("OPENCODE_DISABLE_AUTOUPDATE", "1")
        .env("OPENCODE_DISABLE_SHARE", "1")
        .env("OPENCODE_DISABLE_LSP_DOWNLOAD", "1");
    if !agent.own_config {
        let config = ctx.home.join("opencode.json");
        l.env("OPENCODE_CONFIG", config.display().to_string())
            .env("OPENCODE_CONFIG_DIR", ctx.home.display().to_string())
            .env(
                "OPENCODE_DB",
                ctx.home.join("opencode.db").display().to_string(),
            );
        // Its logs, sessions and caches go to the agent's own home too: parallel agents do
        // not share them, and a confined agent may write there.
        for (var, dir) in [
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_CONFIG_HOME", "config"),
        ] {
            l.env(var, ctx.home.join(dir).display().to_string());
        }
        l.files.push((config, config_json(agent)));
    }
    l
}

/// `massgen/<model>` for the generated provider; the user's `provider/model` otherwise.
fn model_arg(agent: &CliAgent) -> Option<String> {
    let model = agent.model.as_ref()?;
    Some(if agent.base_url.is_some() {
        format!("massgen/{model}")
    } else {
        model.clone()
    })
}

fn config_json(agent: &CliAgent) -> String {
    let mut config = json!({
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": false,
        "share": "disabled",
        "permission": { "edit": "allow", "bash": "allow", "webfetch": "allow" },
    });
    if let Some(url) = &agent.base_url {
        let url = if url.ends_with("/v1") {
            url.clone()
        } else {
            format!("{url}/v1")
        };
        let model = agent.model.clone().unwrap_or_else(|| "default".into());
        config["provider"] = json!({
            "massgen": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "massgen",
                "options": {
                    "baseURL": url,
                    "apiKey": format!("{{env:{}}}", agent.api_key_env),
                },
                "models": { model.clone(): { "name": model } },
            }
        });
    }
    serde_json::to_string_pretty(&config).expect("JSON serializes")
}

pub(super) fn parse(p: &mut Parser, v: &Value) -> Vec<AgentEvent> {
    let mut out = Vec::new();
    let part = v.get("part").unwrap_or(&Value::Null);
    match str_at(v, &["type"]).unwrap_or("") {
        "step_start" => out.push(AgentEvent::Started {
            model: None,
            session: str_at(v, &["sessionID"])
                .or(str_at(part, &["sessionID"]))
                .map(str::to_owned),
        }),
        "text" => {
            if let Some(text) = str_at(part, &["text"]) {
                out.push(AgentEvent::Message { text: text.into() });
            }
        }
        "tool_use" => {
            let tool = str_at(part, &["tool"]).unwrap_or("tool");
            out.extend(tool_events(
                tool,
                part.pointer("/state/input").unwrap_or(&Value::Null),
            ));
            if str_at(part, &["state", "status"]) == Some("error")
                && let Some(e) = str_at(part, &["state", "error"])
            {
                out.push(AgentEvent::Error {
                    message: format!("{tool}: {e}"),
                });
            }
        }
        "step_finish" => {
            p.steps += 1;
            let tokens = part.get("tokens").unwrap_or(&Value::Null);
            out.push(AgentEvent::Usage {
                input_tokens: u64_at(tokens, &["input"]).unwrap_or(0)
                    + u64_at(tokens, &["cache", "read"]).unwrap_or(0),
                output_tokens: u64_at(tokens, &["output"]).unwrap_or(0)
                    + u64_at(tokens, &["reasoning"]).unwrap_or(0),
            });
            if let Some(cost) = part.get("cost").and_then(Value::as_f64) {
                out.push(AgentEvent::Cost { usd: cost });
            }
            if str_at(part, &["reason"]) != Some("tool-calls") {
                out.push(AgentEvent::Finished {
                    ok: true,
                    turns: Some(std::mem::take(&mut p.steps)),
                });
            }
        }
        "error" => {
            let message = str_at(v, &["error", "data", "message"])
                .or(str_at(v, &["error", "message"]))
                .or(str_at(v, &["error", "name"]))
                .unwrap_or("error")
                .to_owned();
            out.push(AgentEvent::Error { message });
            out.push(AgentEvent::Finished {
                ok: false,
                turns: None,
            });
        }
        _ => {}
    }
    out
}
