//! The agent loop of `kind = "llm"`, run as `git-massgen llm-agent --spec FILE` in the
//! candidate's worktree: it talks to the model, runs the tools the model calls, and writes
//! our own [`AgentEvent`]s as JSON lines on stdout, which the pipeline reads like any CLI's
//! event stream (same supervision, timeout and logs).

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::chat::{Image, Message, Part, Role};
use super::client::{Client, Notice};
use super::limits::{Limiter, Limits};
use super::provider::Protocol;
use super::tools::{self, Tools};
use super::wire::{self, Params};
use crate::agent::events::{AgentEvent, asks_for_input};

/// Everything the agent process needs, written by the pipeline into the agent's home.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub protocol: Protocol,
    /// `anthropic`, `vllm`, ...: for messages, prices and rate-limit keys.
    pub provider: String,
    pub model: String,
    pub base_url: String,
    /// The variable holding the key; the key itself is never written down.
    pub api_key_env: Option<String>,
    pub max_turns: u32,
    pub context_window: Option<u64>,
    pub temperature: Option<f64>,
    pub max_output_tokens: u32,
    pub system: String,
    pub prompt: String,
    pub images: Vec<Image>,
    pub limits: Limits,
    pub limits_dir: PathBuf,
    /// Dollars per million input and output tokens, when known.
    pub price: Option<(f64, f64)>,
    /// Replies sent to a model that waits for a human, at most.
    pub max_nudges: u32,
    pub nudge: String,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
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

impl Spec {
    /// The HTTP client of this spec's endpoint, and the shared rate limiter of its model
    /// when it has limits.
    pub fn connect(&self, key: Option<&str>) -> Result<(Client, Option<Limiter>), String> {
        let mut client = Client::new(
            self.protocol,
            &self.provider,
            &self.base_url,
            &self.model,
            key,
        )
        .map_err(|e| e.0)?;
        client.max_attempts = self.max_attempts;
        client.base_delay = std::time::Duration::from_millis(self.retry_base_ms);
        let limiter = (!self.limits.is_empty()).then(|| {
            Limiter::new(
                &self.limits_dir,
                &format!("{}/{}", self.provider, self.model),
                self.limits,
            )
        });
        Ok((client, limiter))
    }

    /// One turn of an in-process conversation (a judge, a reviewer): the request built
    /// for the spec's protocol, sized for the rate limiter, sent with retries.
    pub async fn turn(
        &self,
        client: &Client,
        limiter: Option<&Limiter>,
        system: &str,
        messages: &[Message],
        tools: &[tools::ToolSpec],
    ) -> Result<super::chat::Reply, String> {
        let body = wire::body(self.protocol, &self.params(system), messages, tools);
        let estimate = super::context::estimate_all(messages) + u64::from(self.max_output_tokens);
        client
            .complete(&body, limiter, estimate, &mut |_| {})
            .await
            .map_err(|e| e.0)
    }

    /// Adds one reply's tokens, and their cost when the price is known, to `usage`.
    pub fn count(&self, usage: &mut crate::agent::events::Usage, reply: &super::chat::Reply) {
        usage.input_tokens += reply.input_tokens;
        usage.output_tokens += reply.output_tokens;
        if let Some((input, output)) = self.price {
            *usage.cost_usd.get_or_insert(0.0) += (reply.input_tokens as f64 * input
                + reply.output_tokens as f64 * output)
                / 1_000_000.0;
        }
    }

    /// Request parameters with `system` as the system prompt.
    pub fn params<'a>(&'a self, system: &'a str) -> Params<'a> {
        Params {
            model: &self.model,
            system,
            temperature: self.temperature,
            max_output_tokens: self.max_output_tokens,
            completion_tokens_field: matches!(self.provider.as_str(), "openai" | "openrouter"),
        }
    }
}

/// The session id the built-in agent reports: its conversation is kept in its home.
pub const SESSION: &str = "conversation";

/// Writes one event as a JSON line on stdout.
fn emit(event: &AgentEvent) {
    let line = serde_json::to_string(event).expect("events serialize");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the loop; the exit code says whether the agent finished.
pub async fn run(spec: Spec) -> i32 {
    // Stopped (timeout, Ctrl-C): the commands its tools run live in groups of their own,
    // which the signal to the agent's group does not reach.
    tokio::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tools::kill_running();
        std::process::exit(143);
    });
    let mut messages = Vec::new();
    let result = run_inner(&spec, &mut messages).await;
    if let Some(path) = &spec.conversation
        && !messages.is_empty()
        && let Ok(text) = serde_json::to_vec(&messages)
    {
        // Images are not kept: a resumed conversation goes on without them.
        let _ = std::fs::write(path, text);
    }
    match result {
        Ok(()) => 0,
        Err(message) => {
            emit(&AgentEvent::Error { message });
            emit(&AgentEvent::Finished {
                ok: false,
                turns: None,
            });
            1
        }
    }
}

async fn run_inner(spec: &Spec, messages: &mut Vec<Message>) -> Result<(), String> {
    let key = match &spec.api_key_env {
        Some(var) => Some(
            std::env::var(var)
                .ok()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{var} is not set; it should hold the {} API key",
                        spec.provider
                    )
                })?,
        ),
        None => None,
    };
    let worktree = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
    // Commands the model runs never see API keys.
    let mut hidden: Vec<String> = super::provider::PROVIDERS
        .iter()
        .filter_map(|p| p.key_env.map(str::to_owned))
        .collect();
    hidden.extend(spec.api_key_env.clone());
    let tools = Tools::new(&worktree)
        .map_err(|e| format!("cannot use the worktree: {e}"))?
        .hiding_env(hidden);
    let specs = tools::specs();
    let (client, limiter) = spec.connect(key.as_deref())?;
    emit(&AgentEvent::Started {
        model: Some(format!("{}/{}", spec.provider, spec.model)),
        session: spec.conversation.as_ref().map(|_| SESSION.to_owned()),
    });

    if spec.start_delay_ms > 0 {
        emit(&AgentEvent::Waiting {
            until_ms: super::limits::now_ms() + spec.start_delay_ms,
            reason: format!(
                "staggered start: agents share the rpm limit of {}/{}",
                spec.provider, spec.model
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
    match earlier {
        Some(earlier) if !earlier.is_empty() => {
            *messages = earlier;
            let next = Part::Text {
                text: spec.prompt.clone(),
            };
            // Roles alternate: a conversation cut after tool results gets the text in the
            // same user message.
            match messages.last_mut() {
                Some(last) if last.role == Role::User => last.parts.push(next),
                _ => messages.push(Message {
                    role: Role::User,
                    parts: vec![next],
                }),
            }
        }
        _ => {
            let mut first = vec![Part::Text {
                text: spec.prompt.clone(),
            }];
            first.extend(spec.images.iter().cloned().map(Part::Image));
            *messages = vec![Message {
                role: Role::User,
                parts: first,
            }];
        }
    }
    let params = spec.params(&spec.system);
    // What the context window must hold besides the messages.
    let fixed = super::context::estimate(&Message::user_text(format!(
        "{}{}",
        spec.system,
        serde_json::to_string(
            &specs
                .iter()
                .map(|t| (&t.name, &t.description, &t.schema))
                .collect::<Vec<_>>()
        )
        .unwrap_or_default()
    )));
    let mut nudges = 0;
    for turn in 1..=spec.max_turns {
        if let Some(window) = spec.context_window {
            let budget = window
                .checked_sub(fixed + u64::from(spec.max_output_tokens))
                .ok_or_else(|| {
                    format!(
                        "context_window = {window} cannot hold the system prompt, the tools and {} tokens of answer",
                        spec.max_output_tokens
                    )
                })?;
            super::context::fit(messages, budget)?;
        }
        let body = wire::body(spec.protocol, &params, messages, &specs);
        let estimate =
            fixed + super::context::estimate_all(messages) + u64::from(spec.max_output_tokens);
        let mut on_notice = |n: Notice| match n {
            Notice::Retry {
                attempt,
                status,
                delay,
                message,
            } => emit(&AgentEvent::Retry {
                attempt: Some(attempt),
                status,
                delay_ms: Some(delay.as_millis() as u64),
                message: Some(message),
            }),
            Notice::Waiting { until_ms, why } => emit(&AgentEvent::Waiting {
                until_ms,
                reason: why,
            }),
        };
        let reply = client
            .complete(&body, limiter.as_ref(), estimate, &mut on_notice)
            .await
            .map_err(|e| e.0)?;
        emit(&AgentEvent::Usage {
            input_tokens: reply.input_tokens,
            output_tokens: reply.output_tokens,
        });
        if let Some((input, output)) = spec.price {
            emit(&AgentEvent::Cost {
                usd: (reply.input_tokens as f64 * input + reply.output_tokens as f64 * output)
                    / 1_000_000.0,
            });
        }
        let mut assistant = Vec::new();
        if !reply.text.trim().is_empty() {
            emit(&AgentEvent::Message {
                text: reply.text.clone(),
            });
            assistant.push(Part::Text {
                text: reply.text.clone(),
            });
        }
        if reply.calls.is_empty() && reply.text.trim().is_empty() {
            return Err(format!(
                "the model sent an empty reply (stop reason: {})",
                reply.stop.as_deref().unwrap_or("none")
            ));
        }
        if reply.calls.is_empty() {
            // Text only: either the work is done, or the model waits for a human.
            messages.push(Message {
                role: Role::Assistant,
                parts: assistant,
            });
            if asks_for_input(&reply.text) && nudges < spec.max_nudges {
                nudges += 1;
                emit(&AgentEvent::AskedForInput {
                    question: reply.text.clone(),
                });
                messages.push(Message::user_text(spec.nudge.clone()));
                continue;
            }
            emit(&AgentEvent::Finished {
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
            emit(&AgentEvent::ToolCall {
                tool: call.name.clone(),
                detail: tool_detail(&call.args),
            });
            let outcome = if call.truncated {
                tools::Outcome {
                    output: format!(
                        "error: your reply was cut at the output limit ({} tokens) inside this call, so it was not run; make smaller calls (write a large file in parts)",
                        spec.max_output_tokens
                    ),
                    is_error: true,
                    ..Default::default()
                }
            } else {
                tools.call(&call.name, &call.args).await
            };
            if let Some(path) = &outcome.edited {
                emit(&AgentEvent::FileEdit { path: path.clone() });
            }
            if outcome.is_error {
                emit(&AgentEvent::ToolError {
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
            emit(&AgentEvent::Message { text: summary });
            emit(&AgentEvent::Finished {
                ok: true,
                turns: Some(turn),
            });
            return Ok(());
        }
    }
    Err(format!(
        "the model did not finish within max_turns = {} turns",
        spec.max_turns
    ))
}

fn tool_detail(args: &serde_json::Value) -> String {
    ["command", "path", "pattern"]
        .iter()
        .find_map(|k| args.get(*k)?.as_str())
        .unwrap_or("")
        .to_owned()
}
