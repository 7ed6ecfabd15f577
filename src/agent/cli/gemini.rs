//! Gemini CLI (`gemini -p PROMPT --output-format stream-json --yolo`) and its fork Qwen Code
//! (`qwen -p PROMPT --output-format stream-json --yolo`, OpenAI-compatible endpoints).
//!
//! Gemini's events: `init{session_id, model}`, `message{role, content, delta}`,
//! `tool_use{tool_name, parameters}`, `tool_result{status}`, `error`, and a final
//! `result{status, stats}`. Qwen Code writes Claude Code's stream format, so its lines
//! go to that parser.

use serde_json::Value;

use super::{AgentEvent, CliAgent, Launch, LaunchCtx, Parser, Preset, str_at, tool_events, u64_at};

pub(super) fn launch(agent: &CliAgent, ctx: &LaunchCtx<'_>) -> Launch {
    let qwen = agent.preset == Preset::Qwen;
    let mut l = Launch::new(&agent.bin);
    l.arg("-p").arg(ctx.prompt);
    l.arg("--output-format").arg("stream-json");
    if !ctx.read_only {
        // Without it, non-interactive mode offers no tool that edits or runs commands.
        l.arg("--yolo");
    }
    if let Some(session) = ctx.resume {
        l.arg("--resume").arg(session);
    }
    if let Some(model) = &agent.model {
        l.arg("-m").arg(model);
    }
    l.argv.extend(agent.args.iter().cloned());
    // Without trust, `--yolo` is silently downgraded to asking.
    l.env("GEMINI_CLI_TRUST_WORKSPACE", "true");
    if qwen {
        if !agent.own_config {
            l.env("QWEN_HOME", ctx.home.display().to_string());
            l.files
                .push((ctx.home.join("settings.json"), settings_json("openai")));
        }
        if let Some(url) = &agent.base_url {
            l.env("OPENAI_BASE_URL", url.as_str());
        }
        if let Some(key) = agent.api_key() {
            l.env("OPENAI_API_KEY", key);
        }
        if let Some(model) = &agent.model {
            l.env("OPENAI_MODEL", model.as_str());
        }
    } else {
        if !agent.own_config {
            // GEMINI_CLI_HOME stands in for the home directory, for Gemini CLI only.
            l.env("GEMINI_CLI_HOME", ctx.home.display().to_string());
            l.files.push((
                ctx.home.join(".gemini/settings.json"),
                settings_json("gemini-api-key"),
            ));
        }
        if let Some(url) = &agent.base_url {
            l.env("GOOGLE_GEMINI_BASE_URL", url.as_str());
        }
        if agent.api_key_env_set
            && let Some(key) = agent.api_key()
        {
            l.env("GEMINI_API_KEY", key);
        }
    }
    l
}

/// Settings that select API-key authentication (without one, Gemini CLI exits 41) and
/// turn off what an unattended run does not want.
fn settings_json(auth: &str) -> String {
    let v = serde_json::json!({
        "security": { "auth": { "selectedType": auth } },
        "general": { "disableAutoUpdate": true, "disableUpdateNag": true },
        "privacy": { "usageStatisticsEnabled": false },
        "telemetry": { "enabled": false },
    });
    serde_json::to_string_pretty(&v).expect("JSON serializes")
}

pub(super) fn parse(p: &mut Parser, v: &Value) -> Vec<AgentEvent> {
    let kind = str_at(v, &["type"]).unwrap_or("");
    let assistant = kind == "message" && str_at(v, &["role"]) == Some("assistant");
    // A model turn begins with its first tool call or its first words after anything else.
    if (kind == "tool_use" && p.prev != "tool_use") || (assistant && p.prev != "assistant") {
        p.steps += 1;
    }
    if kind == "tool_use" || assistant || kind == "tool_result" {
        p.prev = if assistant {
            "assistant".into()
        } else {
            kind.into()
        };
    }
    let mut out = Vec::new();
    match kind {
        "init" => out.push(AgentEvent::Started {
            model: str_at(v, &["model"]).map(str::to_owned),
            session: str_at(v, &["session_id"]).map(str::to_owned),
        }),
        "message" if str_at(v, &["role"]) == Some("assistant") => {
            let content = str_at(v, &["content"]).unwrap_or("");
            if v.get("delta").and_then(Value::as_bool).unwrap_or(false) {
                p.text.push_str(content);
            } else {
                out.extend(p.flush_text());
                out.push(AgentEvent::Message {
                    text: content.to_owned(),
                });
            }
        }
        "tool_use" => {
            out.extend(p.flush_text());
            let tool = str_at(v, &["tool_name"]).unwrap_or("tool");
            out.extend(tool_events(
                tool,
                v.get("parameters").unwrap_or(&Value::Null),
            ));
        }
        "error" => {
            let message = str_at(v, &["message"]).unwrap_or("error").to_owned();
            out.push(AgentEvent::Error { message });
        }
        "result" if v.get("is_error").is_some() || v.get("subtype").is_some() => {
            return super::claude::parse(p, v);
        }
        "result" => {
            out.extend(p.flush_text());
            let stats = v.get("stats").unwrap_or(&Value::Null);
            if stats.is_object() {
                out.push(AgentEvent::Usage {
                    input_tokens: u64_at(stats, &["input_tokens"]).unwrap_or(0),
                    output_tokens: u64_at(stats, &["output_tokens"]).unwrap_or(0),
                });
            }
            let ok = str_at(v, &["status"]) == Some("success");
            if !ok {
                let message = str_at(v, &["error", "message"])
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        format!(
                            "ended with status {}",
                            str_at(v, &["status"]).unwrap_or("?")
                        )
                    });
                out.push(AgentEvent::Error { message });
            }
            out.push(AgentEvent::Finished {
                ok,
                turns: Some(std::mem::take(&mut p.steps)),
            });
        }
        // Qwen Code writes Claude Code's format.
        "system" | "assistant" | "user" | "stream_event" => {
            return super::claude::parse(p, v);
        }
        _ => {}
    }
    out
}
