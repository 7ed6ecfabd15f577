//! What agent CLIs report, in our own words: each preset's parser turns its CLI's event
//! stream into [`AgentEvent`]s, and a [`Report`] sums them up for the run's state.

use serde::{Deserialize, Serialize};

/// One thing an agent reported. The built-in LLM agent writes these as JSON lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentEvent {
    Started {
        model: Option<String>,
        session: Option<String>,
    },
    Message {
        text: String,
    },
    ToolCall {
        tool: String,
        detail: String,
    },
    FileEdit {
        path: String,
    },
    Retry {
        attempt: Option<u32>,
        status: Option<u16>,
        delay_ms: Option<u64>,
        message: Option<String>,
    },
    /// Tokens used since the previous `Usage` event of the same agent.
    Usage {
        input_tokens: u64,
        output_tokens: u64,
    },
    /// Cost since the previous `Cost` event.
    Cost {
        usd: f64,
    },
    Error {
        message: String,
    },
    /// A tool call the agent made failed (the agent goes on).
    ToolError {
        tool: String,
        message: String,
    },
    /// The agent ended a turn by asking for input and was told to finish on its own (the
    /// built-in agent does this inside its own loop).
    AskedForInput {
        question: String,
    },
    /// A reply was cut at the output limit (`max_output_tokens`); the built-in agent tells
    /// the model and goes on.
    Truncated {
        max_output_tokens: u32,
    },
    /// Waiting for a rate limit until this time (ms since the epoch).
    Waiting {
        until_ms: u64,
        reason: String,
    },
    Finished {
        ok: bool,
        turns: Option<u32>,
    },
}

impl AgentEvent {
    /// A few words for a progress line.
    pub fn describe(&self) -> String {
        match self {
            AgentEvent::Started { model, .. } => match model {
                Some(m) => format!("started ({m})"),
                None => "started".into(),
            },
            AgentEvent::Message { text } => format!("says: {}", first_line(text, 60)),
            AgentEvent::ToolCall { tool, detail } if detail.is_empty() => tool.clone(),
            AgentEvent::ToolCall { tool, detail } => format!("{tool}: {}", first_line(detail, 50)),
            AgentEvent::FileEdit { path } => format!("edited {path}"),
            AgentEvent::Retry {
                attempt, status, ..
            } => {
                let status = status
                    .map(|s| format!(" after HTTP {s}"))
                    .unwrap_or_default();
                match attempt {
                    Some(a) => format!("retry {a}{status}"),
                    None => format!("retrying{status}"),
                }
            }
            AgentEvent::Usage {
                input_tokens,
                output_tokens,
            } => format!("{input_tokens} tokens in, {output_tokens} out"),
            AgentEvent::Cost { usd } => format!("${usd:.4}"),
            AgentEvent::Error { message } => format!("error: {}", first_line(message, 60)),
            AgentEvent::ToolError { tool, message } => {
                format!("{tool} failed: {}", first_line(message, 50))
            }
            AgentEvent::AskedForInput { question } => {
                format!(
                    "asked \"{}\"; told to finish on its own",
                    first_line(question, 50)
                )
            }
            AgentEvent::Truncated { max_output_tokens } => {
                format!("reply cut at the output limit ({max_output_tokens} tokens)")
            }
            AgentEvent::Waiting { until_ms, reason } => {
                let now = now_ms();
                let secs = until_ms.saturating_sub(now).div_ceil(1000);
                format!("waiting {secs}s for the rate limit ({reason})")
            }
            AgentEvent::Finished { ok: true, .. } => "finished".into(),
            AgentEvent::Finished { ok: false, .. } => "finished with an error".into(),
        }
    }
}

/// Milliseconds since the epoch, now (the clock of `Waiting { until_ms }`).
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn first_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

pub use crate::model::Usage;

/// The sum of one agent's events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub usage: Usage,
    /// Whether any usage was reported at all.
    pub has_usage: bool,
    pub turns: Option<u32>,
    /// The agent's last message: its summary, or its question.
    pub final_message: Option<String>,
    pub session_id: Option<String>,
    /// The CLI's own words for what went wrong, if it said.
    pub error: Option<String>,
    /// What the CLI's final event said, if it sent one.
    pub ok: Option<bool>,
    pub retries: u32,
    /// The last retry, in words (why a timed-out agent was stuck).
    pub last_retry: Option<String>,
    /// Times it waited for a rate limit.
    pub waits: u32,
    /// Times the agent itself was told to finish after asking for input.
    pub nudged: u32,
    /// Replies cut at the output limit.
    pub truncated: u32,
}

impl Report {
    pub fn apply(&mut self, event: &AgentEvent) {
        match event {
            AgentEvent::Started { session, .. } => {
                if session.is_some() {
                    self.session_id = session.clone();
                }
            }
            AgentEvent::Message { text } if !text.trim().is_empty() => {
                self.final_message = Some(text.trim().to_owned());
            }
            AgentEvent::Message { .. } => {}
            AgentEvent::ToolCall { .. }
            | AgentEvent::FileEdit { .. }
            | AgentEvent::ToolError { .. } => {}
            AgentEvent::Waiting { .. } => self.waits += 1,
            AgentEvent::Truncated { .. } => self.truncated += 1,
            AgentEvent::AskedForInput { .. } => self.nudged += 1,
            AgentEvent::Retry { message, .. } => {
                self.retries += 1;
                let mut words = event.describe();
                if let Some(m) = message {
                    words.push_str(&format!(": {m}"));
                }
                self.last_retry = Some(words);
            }
            AgentEvent::Usage {
                input_tokens,
                output_tokens,
            } => {
                self.has_usage = true;
                self.usage.input_tokens += input_tokens;
                self.usage.output_tokens += output_tokens;
            }
            AgentEvent::Cost { usd } => *self.usage.cost_usd.get_or_insert(0.0) += usd,
            AgentEvent::Error { message } if !message.trim().is_empty() => {
                self.error = Some(message.trim().to_owned());
            }
            AgentEvent::Error { .. } => {}
            AgentEvent::Finished { ok, turns } => {
                self.ok = Some(*ok);
                if let Some(t) = turns {
                    *self.turns.get_or_insert(0) += t;
                }
            }
        }
    }
}

impl Report {
    /// Adds the report of a later session of the same agent (a nudge). `cumulative`: the
    /// later session's usage already includes the earlier one's.
    pub fn merge(&mut self, next: &Report, cumulative: bool) {
        if cumulative && next.has_usage {
            let cost = self.usage.cost_usd;
            self.usage = next.usage.clone();
            self.usage.cost_usd = next.usage.cost_usd.or(cost);
        } else {
            self.usage.add(&next.usage);
        }
        self.has_usage |= next.has_usage;
        if let Some(t) = next.turns {
            *self.turns.get_or_insert(0) += t;
        }
        self.final_message = next.final_message.clone().or(self.final_message.take());
        self.session_id = next.session_id.clone().or(self.session_id.take());
        self.error = next.error.clone();
        self.ok = next.ok.or(self.ok);
        self.retries += next.retries;
        self.waits += next.waits;
        self.nudged += next.nudged;
        self.truncated += next.truncated;
        self.last_retry = next.last_retry.clone().or(self.last_retry.take());
    }
}

/// Whether an agent's last message waits for a human instead of finishing: it ends with a
/// question, or asks for a decision, a confirmation or missing information. A closing
/// courtesy such as "let me know if you need anything else" is not a question.
pub fn asks_for_input(message: &str) -> bool {
    let last = message
        .trim()
        .rsplit("\n\n")
        .map(str::trim)
        .find(|p| !p.is_empty())
        .unwrap_or("");
    let lower = last.to_lowercase();
    let courtesy = [
        "let me know if",
        "feel free to",
        "happy to help",
        "if you need anything",
        "if you'd like any",
        "if you would like any",
    ];
    let asks = [
        "please confirm",
        "please provide",
        "please clarify",
        "please let me know",
        "could you clarify",
        "can you clarify",
        "could you confirm",
        "can you confirm",
        "could you provide",
        "can you provide",
        "before i proceed",
        "before proceeding",
        "should i proceed",
        "shall i proceed",
        "do you want me to",
        "would you like me to",
        "would you prefer",
        "which option",
        "which approach",
        "waiting for your",
        "let me know how you",
        "let me know which",
        "let me know what you",
    ];
    if asks.iter().any(|a| lower.contains(a)) {
        return true;
    }
    let ends_with_question = lower
        .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '_' | '`' | ')'))
        .ends_with('?');
    ends_with_question && !courtesy.iter().any(|c| lower.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_told_from_summaries() {
        for asking in [
            "I looked at the code.\n\nShould I change the API or keep it?",
            "Which approach do you prefer: A or B",
            "I need more details. Could you clarify what \"fast\" means here?",
            "Done with step 1. **Do you want me to continue?**",
        ] {
            assert!(asks_for_input(asking), "{asking}");
        }
        for finished in [
            "Fixed the bug in calc.sh and the tests pass.",
            "Fixed it.\n\nLet me know if you need anything else!",
            "Changed `add` to use `+`. Why? Because `-` was wrong.\n\nAll 3 tests pass.",
            "",
        ] {
            assert!(!asks_for_input(finished), "{finished}");
        }
    }

    #[test]
    fn report_sums_usage_and_keeps_the_last_message() {
        let mut r = Report::default();
        for e in [
            AgentEvent::Started {
                model: None,
                session: Some("s1".into()),
            },
            AgentEvent::Message { text: "a".into() },
            AgentEvent::Usage {
                input_tokens: 10,
                output_tokens: 2,
            },
            AgentEvent::Usage {
                input_tokens: 5,
                output_tokens: 1,
            },
            AgentEvent::Cost { usd: 0.5 },
            AgentEvent::Message { text: "b ".into() },
            AgentEvent::Finished {
                ok: true,
                turns: Some(3),
            },
        ] {
            r.apply(&e);
        }
        assert_eq!(r.usage.input_tokens, 15);
        assert_eq!(r.usage.output_tokens, 3);
        assert_eq!(r.usage.cost_usd, Some(0.5));
        assert_eq!(r.final_message.as_deref(), Some("b"));
        assert_eq!(r.session_id.as_deref(), Some("s1"));
        assert_eq!(r.turns, Some(3));
    }
}
