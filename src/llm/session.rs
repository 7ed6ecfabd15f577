//! One conversation with one endpoint, turn by turn: what the built-in agent, LLM judges
//! and LLM reviewers share. Each turn fits the messages into the context window (when one
//! is known), sends them, and learns from the server's usage how many characters a token
//! is ([`Estimator`]). A request the server still refuses as too long is shortened with the
//! server's own numbers and sent once more.

use super::chat::{Message, Reply, ToolSpec};
use super::client::{CallError, Client, Notice};
use super::context::{self, Estimator, TooLong};
use super::endpoint::Endpoint;
use super::limits::Limiter;
use super::wire;

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    TooLong(#[from] TooLong),
    #[error(
        "context_window = {window} cannot hold the system prompt, the tools and {max_output_tokens} tokens of answer"
    )]
    WindowTooSmall { window: u64, max_output_tokens: u32 },
}

pub struct Session<'a> {
    endpoint: &'a Endpoint,
    client: Client,
    limiter: Option<Limiter>,
    system: &'a str,
    tools: &'a [ToolSpec],
    estimator: Estimator,
    /// The context window in tokens: configured, or learned from a refusal.
    window: Option<u64>,
    /// Characters of the system prompt and the tool definitions, sent with every turn.
    fixed_chars: usize,
}

impl<'a> Session<'a> {
    pub fn new(
        endpoint: &'a Endpoint,
        key: Option<&str>,
        system: &'a str,
        tools: &'a [ToolSpec],
        window: Option<u64>,
    ) -> Result<Session<'a>, CallError> {
        let (client, limiter) = endpoint.connect(key)?;
        let defs: Vec<_> = tools
            .iter()
            .map(|t| (&t.name, &t.description, &t.schema))
            .collect();
        let fixed_chars = system.len() + serde_json::to_string(&defs).map_or(0, |s| s.len());
        Ok(Session {
            endpoint,
            client,
            limiter,
            system,
            tools,
            estimator: Estimator::default(),
            window,
            fixed_chars,
        })
    }

    /// One turn: `messages` fitted into the window (shortened in place), sent, answered.
    pub async fn turn(
        &mut self,
        messages: &mut Vec<Message>,
        notice: &mut (dyn FnMut(Notice) + Send),
    ) -> Result<Reply, TurnError> {
        let max_output = u64::from(self.endpoint.max_output_tokens);
        let params = self.endpoint.params(self.system);
        let mut shortened = false;
        loop {
            let fixed = self.estimator.tokens(self.fixed_chars);
            if let Some(window) = self.window {
                let budget =
                    window
                        .checked_sub(fixed + max_output)
                        .ok_or(TurnError::WindowTooSmall {
                            window,
                            max_output_tokens: self.endpoint.max_output_tokens,
                        })?;
                context::fit(messages, budget, &self.estimator)?;
            }
            let body = wire::body(self.endpoint.protocol, &params, messages, self.tools);
            let sizes: Vec<(usize, u64)> = messages.iter().map(context::size).collect();
            let sent = fixed
                + sizes
                    .iter()
                    .map(|&(c, i)| self.estimator.of_size(c, i))
                    .sum::<u64>();
            let (chars, images) = sizes
                .iter()
                .fold((self.fixed_chars, 0), |(c, i), (mc, mi)| (c + mc, i + mi));
            let answer = self
                .client
                .complete(&body, self.limiter.as_ref(), sent + max_output, notice)
                .await;
            match answer {
                Ok(reply) => {
                    if let Some(usage) = reply.usage {
                        self.estimator
                            .learn(chars, messages.len() + 1, images, usage.input);
                    }
                    return Ok(reply);
                }
                Err(CallError::ContextOverflow {
                    status,
                    message,
                    prompt_tokens,
                    context,
                    ..
                }) if !shortened => {
                    shortened = true;
                    match prompt_tokens {
                        Some(p) => self.estimator.learn(chars, messages.len() + 1, images, p),
                        None => self.estimator.chars_per_token *= 0.75,
                    }
                    // The window holds the answer too (llama.cpp counts both against n_ctx).
                    let window = match (context, self.window) {
                        (Some(n), Some(w)) => n.min(w),
                        (Some(n), None) => n,
                        (None, Some(w)) => w,
                        (None, None) => prompt_tokens.unwrap_or(sent) * 3 / 4,
                    };
                    self.window = Some(window);
                    notice(Notice::Retry {
                        attempt: 1,
                        status: Some(status),
                        delay: std::time::Duration::ZERO,
                        message: format!(
                            "{message}; shortening the conversation to a {window}-token window and sending it again"
                        ),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
