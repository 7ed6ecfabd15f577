//! Claude Code: `claude -p PROMPT --output-format stream-json --verbose`.
//!
//! Events: `system/init` (session, model), `assistant` (a Messages API message, maybe with
//! `tool_use` blocks), `user` (tool results), `system/api_retry`, and a final `result`
//! with the turn count, cost, usage and `is_error`.

use serde_json::Value;

use super::{AgentEvent, CliAgent, Launch, LaunchCtx, Parser, str_at, tool_events, u64_at};

pub(super) fn launch(agent: &CliAgent, ctx: &LaunchCtx<'_>) -> Launch {
    let mut l = Launch::new(&agent.bin);
    l.arg("-p")
        .arg(ctx.prompt)
        .arg("--output-format")
        .arg("stream-json")
        .arg("--verbose");
    if ctx.read_only {
        // Print mode denies every tool not allowed here.
        l.arg("--allowedTools").arg("Read,Grep,Glob,LS");
    } else {
        l.arg("--dangerously-skip-permissions");
    }
    if let Some(session) = ctx.resume {
        l.arg("--resume").arg(session);
    }
    if let Some(model) = &agent.model {
        l.arg("--model").arg(model);
    }
    l.argv.extend(agent.args.iter().cloned());
    // The bypass flag is refused as root unless the CLI is told it is sandboxed; each
    // agent is confined to its own worktree and branch.
    if nix::unistd::geteuid().is_root() {
        l.env("IS_SANDBOX", "1");
    }
    l.env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1");
    if !agent.own_config {
        l.env("CLAUDE_CONFIG_DIR", ctx.home.display().to_string());
    }
    if let Some(url) = &agent.base_url {
        l.env("ANTHROPIC_BASE_URL", url.as_str());
    }
    if agent.api_key_env_set
        && let Some(key) = agent.api_key()
    {
        l.env("ANTHROPIC_API_KEY", key);
    }
    l
}

pub(super) fn parse(_p: &mut Parser, v: &Value) -> Vec<AgentEvent> {
    let mut out = Vec::new();
    match (str_at(v, &["type"]), str_at(v, &["subtype"])) {
        (Some("system"), Some("init")) => out.push(AgentEvent::Started {
            model: str_at(v, &["model"]).map(str::to_owned),
            session: str_at(v, &["session_id"]).map(str::to_owned),
        }),
        (Some("system"), Some("api_retry")) => out.push(AgentEvent::Retry {
            attempt: u64_at(v, &["attempt"]).map(|a| a as u32),
            status: u64_at(v, &["error_status"]).map(|s| s as u16),
            delay_ms: v
                .get("retry_delay_ms")
                .and_then(Value::as_f64)
                .map(|ms| ms as u64),
            message: str_at(v, &["error"]).map(str::to_owned),
        }),
        (Some("assistant"), _) => {
            let blocks = v
                .pointer("/message/content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for block in &blocks {
                match str_at(block, &["type"]) {
                    Some("text") => {
                        if let Some(text) = str_at(block, &["text"]) {
                            out.push(AgentEvent::Message { text: text.into() });
                        }
                    }
                    Some("tool_use") => {
                        let tool = str_at(block, &["name"]).unwrap_or("tool");
                        out.extend(tool_events(
                            tool,
                            block.get("input").unwrap_or(&Value::Null),
                        ));
                    }
                    _ => {}
                }
            }
        }
        (Some("result"), _) => {
            // Qwen Code reports a failed API call as a successful result whose text is the
            // error.
            let is_error = v.get("is_error").and_then(Value::as_bool).unwrap_or(false)
                || str_at(v, &["result"]).is_some_and(|r| r.starts_with("[API Error"));
            if let Some(usage) = v.get("usage") {
                out.push(AgentEvent::Usage {
                    input_tokens: [
                        "input_tokens",
                        "cache_creation_input_tokens",
                        "cache_read_input_tokens",
                    ]
                    .iter()
                    .filter_map(|k| u64_at(usage, &[k]))
                    .sum(),
                    output_tokens: u64_at(usage, &["output_tokens"]).unwrap_or(0),
                });
            }
            if let Some(cost) = v.get("total_cost_usd").and_then(Value::as_f64) {
                out.push(AgentEvent::Cost { usd: cost });
            }
            if is_error {
                let message = str_at(v, &["result"])
                    .map(str::to_owned)
                    .or_else(|| {
                        v.get("errors").and_then(Value::as_array).map(|e| {
                            e.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                    })
                    .unwrap_or_else(|| {
                        format!(
                            "{} ended with an error",
                            str_at(v, &["subtype"]).unwrap_or("session")
                        )
                    });
                out.push(AgentEvent::Error { message });
            } else if let Some(text) = str_at(v, &["result"]) {
                out.push(AgentEvent::Message { text: text.into() });
            }
            out.push(AgentEvent::Finished {
                ok: !is_error,
                turns: u64_at(v, &["num_turns"]).map(|t| t as u32),
            });
        }
        _ => {}
    }
    out
}
