//! The conversation, in our own terms (messages, the tools offered, the reply); `wire`
//! turns it into each provider's shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A picture attached to the task, already checked (type by content, size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub mime: String,
    /// Base64 of the file.
    pub base64: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub args: Value,
    /// The reply was cut at the output limit inside this call: its arguments are
    /// incomplete, and it is answered with an error instead of being run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    Image(Image),
    ToolCall(ToolCall),
    ToolResult {
        id: String,
        name: String,
        output: String,
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            parts: vec![Part::Text { text: text.into() }],
        }
    }

    /// The assistant's turn as it goes back into the conversation: its text, then its tool
    /// calls (an empty reply still takes its place, so that roles alternate).
    pub fn from_reply(reply: &Reply) -> Message {
        let mut parts = Vec::new();
        if !reply.text.trim().is_empty() {
            parts.push(Part::Text {
                text: reply.text.clone(),
            });
        }
        parts.extend(reply.calls.iter().cloned().map(Part::ToolCall));
        if parts.is_empty() {
            parts.push(Part::Text {
                text: "(no answer)".into(),
            });
        }
        Message {
            role: Role::Assistant,
            parts,
        }
    }

    /// The user's turn after a reply that must be given again: an error result with
    /// `words` for each of its tool calls (every call must be answered), or the words alone
    /// when it made none.
    pub fn answer_again(reply: &Reply, words: &str) -> Message {
        if reply.calls.is_empty() {
            return Message::user_text(words);
        }
        Message {
            role: Role::User,
            parts: reply
                .calls
                .iter()
                .map(|c| Part::ToolResult {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    output: format!("error: {words}"),
                    is_error: true,
                })
                .collect(),
        }
    }

    /// For a reply cut at the output limit of `limit` tokens: the problem, as warnings say
    /// it, and the turn that asks again, ending with `then` (what to do instead).
    pub fn cut_answer(reply: &Reply, limit: u32, then: &str) -> (String, Message) {
        (
            format!("the answer was cut at the output limit ({limit} tokens)"),
            Message::answer_again(
                reply,
                &format!("Your answer was cut at the output limit ({limit} tokens). {then}"),
            ),
        )
    }

    /// Whether this message holds tool results (and so must follow its tool calls).
    pub fn has_tool_results(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::ToolResult { .. }))
    }
}

/// A tool as offered to the model.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema object for the arguments.
    pub schema: Value,
}

/// Tokens one response used, as the server counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
}

/// What the model answered in one turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub calls: Vec<ToolCall>,
    /// `None` when the server reported no usage: unknown, not zero.
    pub usage: Option<Tokens>,
    /// The provider's stop reason, as it said it.
    pub stop: Option<String>,
    /// The reply was cut at the output limit (`length`, `max_tokens`, `MAX_TOKENS`,
    /// `incomplete`): its text or its last call is unfinished.
    pub truncated: bool,
}

/// Whether the model must call a tool (`tool_choice`); servers differ in what they need:
/// llama-cpp-python offers tools only when a choice is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    Auto,
    Required,
    None,
}

impl ToolChoice {
    pub fn parse(s: &str) -> Result<ToolChoice, String> {
        match s {
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            "none" => Ok(ToolChoice::None),
            other => Err(format!(
                "tool_choice = \"{other}\": expected \"auto\", \"required\" or \"none\""
            )),
        }
    }
}
