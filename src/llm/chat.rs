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

/// What the model answered in one turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub calls: Vec<ToolCall>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The provider's stop reason, as it said it.
    pub stop: Option<String>,
}
