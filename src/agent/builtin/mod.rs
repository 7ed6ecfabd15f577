//! The built-in agent (`kind = "llm"`): our own coding agent over the models' HTTP APIs
//! (`crate::llm`), run as `git-massgen llm-agent --spec FILE` in the candidate's worktree.
//! It talks to the model, runs the tools the model calls ([`tools`], confined to the
//! worktree), and writes our own [`AgentEvent`]s as JSON lines, which the pipeline reads
//! like any CLI's event stream (same supervision, timeout and logs).
//!
//! The loop never installs signal handlers and never exits the process: the command that
//! runs it does, and stops the tools' commands with [`tools::kill_running`].

pub mod spec;
pub mod tools;

use std::io::Write;

use crate::agent::events::{AgentEvent, asks_for_input};
use crate::llm::CallError;
use crate::llm::chat::{Message, Part, Role};
use crate::llm::client::Notice;
use crate::llm::limits::now_ms;
use crate::llm::provider::PROVIDERS;
use crate::llm::session::{Session, TurnError};

pub use spec::{Shared, Spec, spec_for, stagger};
use tools::Tools;

/// The session id the built-in agent reports: its conversation is kept in its home.
pub const SESSION: &str = "conversation";

/// Why the agent stopped without finishing; the message is its `error` event.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{var} is not set; it should hold the {provider} API key")]
    NoKey { var: String, provider: String },
    #[error("no working directory: {0}")]
    NoWorkingDirectory(#[source] std::io::Error),
    #[error("cannot use the worktree: {0}")]
    Worktree(#[source] std::io::Error),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Turn(#[from] TurnError),
    #[error("the model sent an empty reply (stop reason: {})", .stop.as_deref().unwrap_or("none"))]
    EmptyReply { stop: Option<String> },
    #[error("the model did not finish within max_turns = {0} turns")]
    OutOfTurns(u32),
}

/// Where the agent's events go: one JSON object per line, flushed at once (the pipeline
/// reads them live).
struct Events<'a>(&'a mut (dyn Write + Send));

impl Events<'_> {
    fn emit(&mut self, event: AgentEvent) {
        let line = serde_json::to_string(&event).expect("events serialize");
        // A reader that went away cannot be told anything more.
        let _ = writeln!(self.0, "{line}");
        let _ = self.0.flush();
    }
}

/// Runs the agent in the current directory (its worktree), writing its events to `out`.
/// On failure the error has already been reported on `out` (an `error` event, then an
/// unsuccessful `finished`). The conversation is kept where the spec says, either way.
pub async fn run(spec: &Spec, out: &mut (dyn Write + Send)) -> Result<(), Error> {
    let mut events = Events(out);
    let mut messages = Vec::new();
    let result = converse(spec, &mut messages, &mut events).await;
    if let Some(path) = &spec.conversation
        && !messages.is_empty()
        && let Ok(text) = serde_json::to_vec(&messages)
    {
        // Images are not kept: a resumed conversation goes on without them.
        let _ = std::fs::write(path, text);
    }
    if let Err(e) = &result {
        events.emit(AgentEvent::Error {
            message: e.to_string(),
        });
        events.emit(AgentEvent::Finished {
            ok: false,
            turns: None,
        });
    }
    result
}

/// The API key from the variable the endpoint names.
fn api_key(spec: &Spec) -> Result<Option<String>, Error> {
    let Some(var) = &spec.endpoint.api_key_env else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(key) if !key.is_empty() => Ok(Some(key)),
        _ => Err(Error::NoKey {
            var: var.clone(),
            provider: spec.endpoint.provider.clone(),
        }),
    }
}

/// The tools in the current directory; commands the model runs never see API keys.
fn worktree_tools(spec: &Spec) -> Result<Tools, Error> {
    let worktree = std::env::current_dir().map_err(Error::NoWorkingDirectory)?;
    let mut hidden: Vec<String> = PROVIDERS
        .iter()
        .filter_map(|p| p.key_env.map(str::to_owned))
        .collect();
    hidden.extend(spec.endpoint.api_key_env.clone());
    Ok(Tools::new(&worktree)
        .map_err(Error::Worktree)?
        .hiding_env(hidden))
}

/// The messages a session starts from: the kept conversation with the prompt as the next
/// user message when resuming one, otherwise the prompt and the task's images.
fn opening(spec: &Spec, earlier: Option<Vec<Message>>) -> Vec<Message> {
    let next = Part::Text {
        text: spec.prompt.clone(),
    };
    match earlier {
        Some(mut messages) if !messages.is_empty() => {
            // Roles alternate: a conversation cut after tool results gets the text in the
            // same user message.
            match messages.last_mut() {
                Some(last) if last.role == Role::User => last.parts.push(next),
                _ => messages.push(Message {
                    role: Role::User,
                    parts: vec![next],
                }),
            }
            messages
        }
        _ => {
            let mut first = vec![next];
            first.extend(spec.images.iter().cloned().map(Part::Image));
            vec![Message {
                role: Role::User,
                parts: first,
            }]
        }
    }
}

async fn converse(
    spec: &Spec,
    messages: &mut Vec<Message>,
    events: &mut Events<'_>,
) -> Result<(), Error> {
    let endpoint = &spec.endpoint;
    let key = api_key(spec)?;
    let tools = worktree_tools(spec)?;
    let specs = tools::specs();
    let mut session = Session::new(
        endpoint,
        key.as_deref(),
        &spec.system,
        &specs,
        spec.context_window,
    )?;
    events.emit(AgentEvent::Started {
        model: Some(endpoint.name()),
        session: spec.conversation.as_ref().map(|_| SESSION.to_owned()),
    });

    if spec.start_delay_ms > 0 {
        events.emit(AgentEvent::Waiting {
            until_ms: now_ms() + spec.start_delay_ms,
            reason: format!(
                "staggered start: agents share the rpm limit of {}",
                endpoint.name()
            ),
        });
        tokio::time::sleep(std::time::Duration::from_millis(spec.start_delay_ms)).await;
    }
    let earlier: Option<Vec<Message>> = spec
        .conversation
        .as_ref()
        .filter(|_| spec.resume)
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    *messages = opening(spec, earlier);
    let max_output_tokens = endpoint.max_output_tokens;
    let mut nudges = 0;
    for turn in 1..=spec.max_turns {
        let mut on_notice = |n: Notice| match n {
            Notice::Retry {
                attempt,
                status,
                delay,
                message,
            } => events.emit(AgentEvent::Retry {
                attempt: Some(attempt),
                status,
                delay_ms: Some(delay.as_millis() as u64),
                message: Some(message),
            }),
            Notice::Waiting { until_ms, why } => events.emit(AgentEvent::Waiting {
                until_ms,
                reason: why,
            }),
        };
        let reply = session.turn(messages, &mut on_notice).await?;
        // Usage a server does not report stays unknown: no event, rather than zeros.
        if let Some(used) = reply.usage {
            events.emit(AgentEvent::Usage {
                input_tokens: used.input,
                output_tokens: used.output,
            });
        }
        if let Some(usd) = endpoint.cost(&reply) {
            events.emit(AgentEvent::Cost { usd });
        }
        let mut assistant = Vec::new();
        if !reply.text.trim().is_empty() {
            events.emit(AgentEvent::Message {
                text: reply.text.clone(),
            });
            assistant.push(Part::Text {
                text: reply.text.clone(),
            });
        }
        if reply.truncated {
            events.emit(AgentEvent::Truncated { max_output_tokens });
        }
        if reply.calls.is_empty() && reply.text.trim().is_empty() && !reply.truncated {
            return Err(Error::EmptyReply { stop: reply.stop });
        }
        if reply.calls.is_empty() && reply.truncated {
            // Cut at the output limit in the middle of words: not an answer. The model is
            // told so and goes on; the turn counts against max_turns.
            messages.push(Message::from_reply(&reply));
            messages.push(Message::user_text(format!(
                "Your reply was cut at the output limit ({max_output_tokens} tokens). Go on from where it stopped, in shorter steps: write large files in parts."
            )));
            continue;
        }
        if reply.calls.is_empty() {
            // Text only: either the work is done, or the model waits for a human.
            messages.push(Message {
                role: Role::Assistant,
                parts: assistant,
            });
            if asks_for_input(&reply.text) && nudges < spec.max_nudges {
                nudges += 1;
                events.emit(AgentEvent::AskedForInput {
                    question: reply.text.clone(),
                });
                messages.push(Message::user_text(spec.nudge.clone()));
                continue;
            }
            events.emit(AgentEvent::Finished {
                ok: true,
                turns: Some(turn),
            });
            return Ok(());
        }
        assistant.extend(reply.calls.iter().cloned().map(Part::ToolCall));
        messages.push(Message {
            role: Role::Assistant,
            parts: assistant,
        });
        let mut results = Vec::new();
        let mut finished = None;
        for call in &reply.calls {
            events.emit(AgentEvent::ToolCall {
                tool: call.name.clone(),
                detail: tool_detail(&call.args),
            });
            let outcome = if call.truncated {
                tools::Outcome {
                    output: format!(
                        "error: your reply was cut at the output limit ({max_output_tokens} tokens) inside this call, so it was not run; make smaller calls (write a large file in parts)"
                    ),
                    is_error: true,
                    ..Default::default()
                }
            } else {
                tools.call(&call.name, &call.args).await
            };
            if let Some(path) = &outcome.edited {
                events.emit(AgentEvent::FileEdit { path: path.clone() });
            }
            if outcome.is_error {
                events.emit(AgentEvent::ToolError {
                    tool: call.name.clone(),
                    message: outcome.output.lines().next().unwrap_or("").to_owned(),
                });
            }
            if let Some(summary) = outcome.finish {
                finished = Some(summary);
            }
            results.push(Part::ToolResult {
                id: call.id.clone(),
                name: call.name.clone(),
                output: outcome.output,
                is_error: outcome.is_error,
            });
        }
        messages.push(Message {
            role: Role::User,
            parts: results,
        });
        if let Some(summary) = finished {
            events.emit(AgentEvent::Message { text: summary });
            events.emit(AgentEvent::Finished {
                ok: true,
                turns: Some(turn),
            });
            return Ok(());
        }
    }
    Err(Error::OutOfTurns(spec.max_turns))
}

/// What a tool call is about, in the progress line: its command, path or pattern.
fn tool_detail(args: &serde_json::Value) -> String {
    ["command", "path", "pattern"]
        .iter()
        .find_map(|k| args.get(*k)?.as_str())
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prompt: &str) -> Spec {
        serde_json::from_value(serde_json::json!({
            "endpoint": {
                "protocol": "anthropic", "provider": "p", "model": "m", "base_url": "http://x",
                "api_key_env": null, "temperature": null, "max_output_tokens": 1,
                "limits": {"rpm": null, "tpm": null, "rpd": null, "max_concurrent": null},
                "limits_dir": "/tmp", "price": null, "max_attempts": 1, "retry_base_ms": 1,
            },
            "max_turns": 1, "context_window": null, "system": "", "prompt": prompt,
            "images": [{"mime": "image/png", "base64": "AA=="}],
            "max_nudges": 0, "nudge": "",
        }))
        .expect("a spec")
    }

    fn texts(m: &Message) -> Vec<&str> {
        m.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_fresh_session_starts_with_the_prompt_and_the_images() {
        let opened = opening(&spec("do it"), None);
        assert_eq!(opened.len(), 1);
        assert_eq!(texts(&opened[0]), ["do it"]);
        assert!(matches!(opened[0].parts[1], Part::Image(_)));
        assert_eq!(opening(&spec("do it"), Some(Vec::new())), opened);
    }

    #[test]
    fn a_resumed_session_goes_on_with_alternating_roles() {
        let after_text = vec![
            Message::user_text("task"),
            Message {
                role: Role::Assistant,
                parts: vec![Part::Text {
                    text: "done".into(),
                }],
            },
        ];
        let opened = opening(&spec("more"), Some(after_text));
        assert_eq!(opened.len(), 3);
        assert_eq!(texts(&opened[2]), ["more"]);
        // Cut after tool results: the text joins that user message.
        let after_results = vec![Message::user_text("results")];
        let opened = opening(&spec("more"), Some(after_results));
        assert_eq!(opened.len(), 1);
        assert_eq!(texts(&opened[0]), ["results", "more"]);
    }

    #[test]
    fn errors_read_as_the_agent_reported_them() {
        assert_eq!(
            Error::EmptyReply { stop: None }.to_string(),
            "the model sent an empty reply (stop reason: none)"
        );
        assert_eq!(
            Error::OutOfTurns(3).to_string(),
            "the model did not finish within max_turns = 3 turns"
        );
    }

    #[test]
    fn the_detail_of_a_call_is_its_command_path_or_pattern() {
        let args = serde_json::json!({"pattern": "fn main", "path": "src"});
        assert_eq!(tool_detail(&args), "src");
        assert_eq!(tool_detail(&serde_json::json!({})), "");
    }
}
