//! Each provider's request: its URL, headers and body, from [`chat`](super::chat)'s
//! conversation; the replies are read by [`stream`](super::stream).
//!
//! Anthropic Messages, OpenAI Chat Completions (also vLLM, Ollama, llama.cpp, OpenRouter),
//! OpenAI Responses and Gemini `streamGenerateContent` (or `generateContent` unstreamed).

use base64::Engine;
use serde_json::{Value, json};

use super::chat::{Message, Part, Role, ToolCall, ToolChoice, ToolSpec};
use super::provider::Protocol;

/// What a request needs besides the conversation.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    pub model: &'a str,
    pub system: &'a str,
    pub temperature: Option<f64>,
    pub max_output_tokens: u32,
    /// OpenAI's own API wants `max_completion_tokens` (its newer models refuse
    /// `max_tokens`); compatible servers want `max_tokens`.
    pub completion_tokens_field: bool,
    /// Sent only when set: servers differ in what they accept.
    pub tool_choice: Option<ToolChoice>,
}

/// The URL of a request, streamed or not (only Gemini's differs). `base` is the base URL
/// without a trailing slash; a base without a path gets `/v1` (or `/v1beta`), one with a
/// path is used as given (`.../v1`, `.../api/v1`, `.../v1beta/openai`).
pub fn url(protocol: Protocol, base: &str, model: &str, stream: bool) -> String {
    let has_path = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .contains('/');
    let v1 = |base: &str| {
        if has_path {
            base.to_owned()
        } else {
            format!("{base}/v1")
        }
    };
    match protocol {
        Protocol::OpenaiChat => format!("{}/chat/completions", v1(base)),
        Protocol::OpenaiResponses => format!("{}/responses", v1(base)),
        Protocol::Anthropic => format!("{}/messages", v1(base)),
        Protocol::Gemini => {
            let root = if has_path {
                base.trim_end_matches("/v1beta")
            } else {
                base
            };
            if stream {
                format!("{root}/v1beta/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("{root}/v1beta/models/{model}:generateContent")
            }
        }
    }
}

/// Headers carrying the key (and the API version where one is required).
pub fn auth_headers(protocol: Protocol, key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match protocol {
        Protocol::Anthropic => {
            out.push(("anthropic-version", "2023-06-01".to_owned()));
            if let Some(k) = key {
                out.push(("x-api-key", k.to_owned()));
            }
        }
        Protocol::Gemini => {
            if let Some(k) = key {
                out.push(("x-goog-api-key", k.to_owned()));
            }
        }
        Protocol::OpenaiChat | Protocol::OpenaiResponses => {
            if let Some(k) = key {
                out.push(("authorization", format!("Bearer {k}")));
            }
        }
    }
    out
}

/// The JSON body of a streaming request.
pub fn body(protocol: Protocol, p: &Params<'_>, messages: &[Message], tools: &[ToolSpec]) -> Value {
    let mut body = match protocol {
        Protocol::Anthropic => json!({
            "model": p.model,
            "max_tokens": p.max_output_tokens,
            "system": p.system,
            "messages": messages.iter().map(anthropic_message).collect::<Vec<_>>(),
            "tools": tools.iter().map(|t| json!({
                "name": t.name, "description": t.description, "input_schema": t.schema,
            })).collect::<Vec<_>>(),
            "stream": true,
        }),
        Protocol::OpenaiChat => {
            let mut msgs = vec![json!({"role": "system", "content": p.system})];
            for m in messages {
                msgs.extend(chat_messages(m));
            }
            json!({
                "model": p.model,
                "messages": msgs,
                "tools": tools.iter().map(|t| json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.schema,
                }})).collect::<Vec<_>>(),
                "stream": true,
                "stream_options": {"include_usage": true},
                if p.completion_tokens_field { "max_completion_tokens" } else { "max_tokens" }:
                    p.max_output_tokens,
            })
        }
        Protocol::OpenaiResponses => json!({
            "model": p.model,
            "instructions": p.system,
            "input": messages.iter().flat_map(responses_items).collect::<Vec<_>>(),
            "tools": tools.iter().map(|t| json!({
                "type": "function", "name": t.name, "description": t.description,
                "parameters": t.schema,
            })).collect::<Vec<_>>(),
            "stream": true,
            "max_output_tokens": p.max_output_tokens,
        }),
        Protocol::Gemini => json!({
            "systemInstruction": {"parts": [{"text": p.system}]},
            "contents": messages.iter().map(gemini_content).collect::<Vec<_>>(),
            "tools": [{"functionDeclarations": tools.iter().map(|t| json!({
                "name": t.name, "description": t.description,
                "parameters": gemini_schema(&t.schema),
            })).collect::<Vec<_>>()}],
            "generationConfig": {"maxOutputTokens": p.max_output_tokens},
        }),
    };
    if let Some(t) = p.temperature {
        match protocol {
            Protocol::Gemini => body["generationConfig"]["temperature"] = json!(t),
            _ => body["temperature"] = json!(t),
        }
    }
    if let Some(choice) = p.tool_choice {
        set_tool_choice(protocol, &mut body, choice);
    }
    body
}

/// `tool_choice` in each protocol's own words.
fn set_tool_choice(protocol: Protocol, body: &mut Value, choice: ToolChoice) {
    let word = |auto: &str, required: &str, none: &str| match choice {
        ToolChoice::Auto => auto.to_owned(),
        ToolChoice::Required => required.to_owned(),
        ToolChoice::None => none.to_owned(),
    };
    match protocol {
        Protocol::OpenaiChat | Protocol::OpenaiResponses => {
            body["tool_choice"] = json!(word("auto", "required", "none"))
        }
        Protocol::Anthropic => body["tool_choice"] = json!({"type": word("auto", "any", "none")}),
        Protocol::Gemini => {
            body["toolConfig"] =
                json!({"functionCallingConfig": {"mode": word("AUTO", "ANY", "NONE")}})
        }
    }
}

/// A streaming request's body made into the same request unstreamed (Gemini's differs
/// only in its URL).
pub fn unstreamed(body: &mut Value) {
    if let Some(obj) = body.as_object_mut() {
        if obj.contains_key("stream") {
            obj.insert("stream".into(), Value::Bool(false));
        }
        obj.remove("stream_options");
    }
}

/// A call's arguments as they go back to the model: always an object (a call cut at the
/// output limit has none; Anthropic and Gemini refuse anything but an object).
fn args_of(c: &ToolCall) -> Value {
    if c.args.is_object() {
        c.args.clone()
    } else {
        json!({})
    }
}

/// Gemini takes a subset of OpenAPI schemas: no `additionalProperties`, no `$schema`.
fn gemini_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "additionalProperties" | "$schema"))
                .map(|(k, v)| (k.clone(), gemini_schema(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(gemini_schema).collect()),
        other => other.clone(),
    }
}

fn data_url(i: &super::chat::Image) -> String {
    format!("data:{};base64,{}", i.mime, i.base64)
}

fn anthropic_message(m: &Message) -> Value {
    let content: Vec<Value> = m
        .parts
        .iter()
        .map(|p| match p {
            Part::Text { text } => json!({"type": "text", "text": text}),
            Part::Image(i) => json!({"type": "image", "source": {
                "type": "base64", "media_type": i.mime, "data": i.base64,
            }}),
            Part::ToolCall(c) => json!({"type": "tool_use", "id": c.id, "name": c.name, "input": args_of(c)}),
            Part::ToolResult {
                id,
                output,
                is_error,
                ..
            } => json!({"type": "tool_result", "tool_use_id": id, "content": output, "is_error": is_error}),
        })
        .collect();
    json!({"role": role(m.role, "assistant"), "content": content})
}

fn role(r: Role, assistant: &str) -> String {
    match r {
        Role::User => "user".into(),
        Role::Assistant => assistant.into(),
    }
}

/// One of our messages may become several Chat Completions messages (tool results are
/// messages of their own).
fn chat_messages(m: &Message) -> Vec<Value> {
    let mut out = Vec::new();
    match m.role {
        Role::Assistant => {
            let text: String = m
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            let calls: Vec<Value> = m
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::ToolCall(c) => Some(json!({"id": c.id, "type": "function", "function": {
                        "name": c.name, "arguments": args_of(c).to_string(),
                    }})),
                    _ => None,
                })
                .collect();
            let mut msg = json!({"role": "assistant", "content": text});
            if !calls.is_empty() {
                msg["tool_calls"] = json!(calls);
            }
            out.push(msg);
        }
        Role::User => {
            let mut content = Vec::new();
            for p in &m.parts {
                match p {
                    Part::ToolResult { id, output, .. } => out.push(json!({
                        "role": "tool", "tool_call_id": id, "content": output,
                    })),
                    Part::Text { text } => content.push(json!({"type": "text", "text": text})),
                    Part::Image(i) => content.push(json!({
                        "type": "image_url", "image_url": {"url": data_url(i)},
                    })),
                    Part::ToolCall(_) => {}
                }
            }
            if !content.is_empty() {
                // Plain text stays a string: some compatible servers take nothing else.
                let only_text = content.iter().all(|c| c["type"] == "text");
                let content = if only_text {
                    json!(
                        content
                            .iter()
                            .filter_map(|c| c["text"].as_str())
                            .collect::<Vec<_>>()
                            .join("\n\n")
                    )
                } else {
                    json!(content)
                };
                out.push(json!({"role": "user", "content": content}));
            }
        }
    }
    out
}

fn responses_items(m: &Message) -> Vec<Value> {
    let mut out = Vec::new();
    let mut content = Vec::new();
    for p in &m.parts {
        match p {
            Part::Text { text } if m.role == Role::User => {
                content.push(json!({"type": "input_text", "text": text}))
            }
            Part::Text { text } => content.push(json!({"type": "output_text", "text": text})),
            Part::Image(i) => {
                content.push(json!({"type": "input_image", "image_url": data_url(i)}))
            }
            Part::ToolCall(c) => out.push(json!({
                "type": "function_call", "call_id": c.id, "name": c.name,
                "arguments": args_of(c).to_string(),
            })),
            Part::ToolResult { id, output, .. } => out.push(json!({
                "type": "function_call_output", "call_id": id, "output": output,
            })),
        }
    }
    if !content.is_empty() {
        out.insert(
            0,
            json!({"role": role(m.role, "assistant"), "content": content}),
        );
    }
    out
}

fn gemini_content(m: &Message) -> Value {
    let parts: Vec<Value> = m
        .parts
        .iter()
        .map(|p| match p {
            Part::Text { text } => json!({"text": text}),
            Part::Image(i) => json!({"inline_data": {"mime_type": i.mime, "data": i.base64}}),
            Part::ToolCall(c) => json!({"functionCall": {"name": c.name, "args": args_of(c)}}),
            Part::ToolResult {
                name,
                output,
                is_error,
                ..
            } => json!({"functionResponse": {"name": name, "response": {
                if *is_error { "error" } else { "content" }: output,
            }}}),
        })
        .collect();
    json!({"role": role(m.role, "model"), "parts": parts})
}

/// Base64 of bytes, for images.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::stream::{Stream, ev};

    #[test]
    fn request_shapes_follow_each_provider() {
        let p = |field| Params {
            model: "m",
            system: "s",
            temperature: None,
            max_output_tokens: 7,
            completion_tokens_field: field,
            tool_choice: None,
        };
        let tools = vec![ToolSpec {
            name: "x",
            description: "d",
            schema: json!({"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}}),
        }];
        let openai = body(Protocol::OpenaiChat, &p(true), &[], &tools);
        assert_eq!(openai["max_completion_tokens"], 7);
        assert!(openai.get("max_tokens").is_none());
        let vllm = body(Protocol::OpenaiChat, &p(false), &[], &tools);
        assert_eq!(vllm["max_tokens"], 7);
        let gemini = body(Protocol::Gemini, &p(false), &[], &tools);
        let params = &gemini["tools"][0]["functionDeclarations"][0]["parameters"];
        assert!(params.get("additionalProperties").is_none());
        assert_eq!(params["properties"]["a"]["type"], "string");
    }

    #[test]
    fn urls_keep_a_configured_path() {
        let chat = |base| url(Protocol::OpenaiChat, base, "m", true);
        assert_eq!(chat("http://h:1"), "http://h:1/v1/chat/completions");
        assert_eq!(chat("http://h/api/v1"), "http://h/api/v1/chat/completions");
        assert_eq!(
            chat("https://g.com/v1beta/openai"),
            "https://g.com/v1beta/openai/chat/completions"
        );
        assert_eq!(
            url(Protocol::Anthropic, "https://api.anthropic.com", "m", true),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            url(Protocol::Gemini, "https://x.com", "g", true),
            "https://x.com/v1beta/models/g:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url(Protocol::Gemini, "https://x.com", "g", false),
            "https://x.com/v1beta/models/g:generateContent"
        );
    }

    const ALL: [Protocol; 4] = [
        Protocol::OpenaiChat,
        Protocol::OpenaiResponses,
        Protocol::Anthropic,
        Protocol::Gemini,
    ];

    fn params(tool_choice: Option<ToolChoice>) -> Params<'static> {
        Params {
            model: "m",
            system: "s",
            temperature: None,
            max_output_tokens: 7,
            completion_tokens_field: false,
            tool_choice,
        }
    }

    #[test]
    fn a_call_cut_at_the_limit_goes_back_with_an_empty_object_in_every_protocol() {
        let mut s = Stream::new(Protocol::OpenaiChat);
        s.event(&ev(json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "write_file", "arguments": "{\"path\": \"a"}}]}}]})))
            .unwrap();
        s.event(&ev(
            json!({"choices": [{"delta": {}, "finish_reason": "length"}]}),
        ))
        .unwrap();
        let reply = s.finish().unwrap();
        assert!(reply.truncated && reply.calls[0].truncated);
        let conversation = [Message::user_text("task"), Message::from_reply(&reply)];
        for protocol in ALL {
            let b = body(protocol, &params(None), &conversation, &[]);
            let sent = match protocol {
                Protocol::OpenaiChat => {
                    let a = b["messages"][2]["tool_calls"][0]["function"]["arguments"].clone();
                    serde_json::from_str(a.as_str().unwrap()).unwrap()
                }
                Protocol::OpenaiResponses => {
                    let a = b["input"][1]["arguments"].clone();
                    serde_json::from_str(a.as_str().unwrap()).unwrap()
                }
                Protocol::Anthropic => b["messages"][1]["content"][0]["input"].clone(),
                Protocol::Gemini => b["contents"][1]["parts"][0]["functionCall"]["args"].clone(),
            };
            assert_eq!(sent, json!({}), "{protocol:?}: {b}");
        }
    }

    #[test]
    fn tool_choice_in_each_protocols_words() {
        let tools = [ToolSpec {
            name: "x",
            description: "d",
            schema: json!({"type": "object"}),
        }];
        let b = |p, c| body(p, &params(Some(c)), &[], &tools);
        assert_eq!(
            b(Protocol::OpenaiChat, ToolChoice::Auto)["tool_choice"],
            "auto"
        );
        assert_eq!(
            b(Protocol::OpenaiResponses, ToolChoice::Required)["tool_choice"],
            "required"
        );
        assert_eq!(
            b(Protocol::Anthropic, ToolChoice::Required)["tool_choice"],
            json!({"type": "any"})
        );
        assert_eq!(
            b(Protocol::Gemini, ToolChoice::None)["toolConfig"]["functionCallingConfig"]["mode"],
            "NONE"
        );
        assert!(
            body(Protocol::OpenaiChat, &params(None), &[], &tools)
                .get("tool_choice")
                .is_none()
        );
        let mut streamed = body(Protocol::OpenaiChat, &params(None), &[], &tools);
        unstreamed(&mut streamed);
        assert_eq!(streamed["stream"], false);
        assert!(streamed.get("stream_options").is_none());
    }
}
