//! Each provider's request body and streaming response, from and to [`chat`](super::chat).
//!
//! Anthropic Messages, OpenAI Chat Completions (also vLLM, Ollama, llama.cpp, OpenRouter),
//! OpenAI Responses and Gemini `streamGenerateContent`. Every stream is read by a
//! [`Stream`] that knows whether it saw the provider's final event: a stream that ends
//! without it was cut and is retried.

use base64::Engine;
use serde_json::{Value, json};

use super::chat::{Message, Part, Reply, Role, ToolCall, ToolSpec};
use super::provider::Protocol;
use super::sse::SseEvent;

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
}

/// The URL of a streaming request. `base` is the base URL without a trailing slash; a
/// base without a path gets `/v1` (or `/v1beta`), one with a path is used as given
/// (`.../v1`, `.../api/v1`, `.../v1beta/openai`).
pub fn url(protocol: Protocol, base: &str, model: &str) -> String {
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
            format!("{root}/v1beta/models/{model}:streamGenerateContent?alt=sse")
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
    body
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
            Part::ToolCall(c) => json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.args}),
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
                        "name": c.name, "arguments": c.args.to_string(),
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
                "arguments": c.args.to_string(),
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
            Part::ToolCall(c) => json!({"functionCall": {"name": c.name, "args": c.args}}),
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

/// A provider's error in words, out of its error body.
pub fn error_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.trim().chars().take(300).collect();
    };
    let err = v.get("error").unwrap_or(&v);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| err.as_str())
        .unwrap_or("");
    let code = ["code", "type", "status"]
        .iter()
        .filter_map(|k| err.get(*k))
        .find_map(|c| c.as_str().map(str::to_owned));
    match code {
        Some(c) if !message.contains(&c) => format!("{message} ({c})"),
        _ => message.to_owned(),
    }
}

/// What went wrong inside a stream.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    #[error("the stream sent malformed JSON: {0}")]
    Malformed(String),
    #[error("the provider reported an error in the stream: {0}")]
    Provider(String),
    #[error("the stream ended before the response was complete")]
    Incomplete,
}

#[derive(Debug, Default)]
struct PendingCall {
    id: String,
    name: String,
    args: String,
}

/// A streamed response being assembled.
#[derive(Debug)]
pub struct Stream {
    protocol: Protocol,
    text: String,
    calls: Vec<PendingCall>,
    /// Index of each call by the provider's block index or item id.
    keys: Vec<String>,
    input_tokens: u64,
    output_tokens: u64,
    stop: Option<String>,
    done: bool,
    next_id: u32,
}

impl Stream {
    pub fn new(protocol: Protocol) -> Stream {
        Stream {
            protocol,
            text: String::new(),
            calls: Vec::new(),
            keys: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            stop: None,
            done: false,
            next_id: 0,
        }
    }

    /// Text received so far in this response (for progress).
    pub fn text(&self) -> &str {
        &self.text
    }

    fn call(&mut self, key: String) -> &mut PendingCall {
        let i = match self.keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.keys.push(key);
                self.calls.push(PendingCall::default());
                self.calls.len() - 1
            }
        };
        &mut self.calls[i]
    }

    /// Reads one event.
    pub fn event(&mut self, e: &SseEvent) -> Result<(), StreamError> {
        let data = e.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|err| StreamError::Malformed(format!("{err} in `{}`", cut(data, 80))))?;
        match self.protocol {
            Protocol::Anthropic => self.anthropic(&v),
            Protocol::OpenaiChat => self.chat(&v),
            Protocol::OpenaiResponses => self.responses(&v),
            Protocol::Gemini => self.gemini(&v),
        }
    }

    fn anthropic(&mut self, v: &Value) -> Result<(), StreamError> {
        match v["type"].as_str().unwrap_or("") {
            "message_start" => {
                let u = &v["message"]["usage"];
                self.input_tokens = [
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ]
                .iter()
                .filter_map(|k| u[*k].as_u64())
                .sum();
            }
            "content_block_start" => {
                let block = &v["content_block"];
                if block["type"] == "tool_use" {
                    let key = v["index"].to_string();
                    let c = self.call(key);
                    c.id = block["id"].as_str().unwrap_or("").to_owned();
                    c.name = block["name"].as_str().unwrap_or("").to_owned();
                } else if let Some(t) = block["text"].as_str() {
                    self.text.push_str(t);
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str().unwrap_or("") {
                    "text_delta" => self.text.push_str(d["text"].as_str().unwrap_or("")),
                    "input_json_delta" => {
                        let key = v["index"].to_string();
                        let piece = d["partial_json"].as_str().unwrap_or("").to_owned();
                        self.call(key).args.push_str(&piece);
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.stop = Some(s.to_owned());
                }
                if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = o;
                }
            }
            "message_stop" => self.done = true,
            "error" => return Err(StreamError::Provider(error_message(&v.to_string()))),
            _ => {}
        }
        Ok(())
    }

    fn chat(&mut self, v: &Value) -> Result<(), StreamError> {
        if v.get("error").is_some() {
            return Err(StreamError::Provider(error_message(&v.to_string())));
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.input_tokens = u["prompt_tokens"].as_u64().unwrap_or(self.input_tokens);
            self.output_tokens = u["completion_tokens"]
                .as_u64()
                .unwrap_or(self.output_tokens);
        }
        let Some(choice) = v["choices"].get(0) else {
            return Ok(());
        };
        let d = &choice["delta"];
        if let Some(t) = d["content"].as_str() {
            self.text.push_str(t);
        }
        for tc in d["tool_calls"].as_array().into_iter().flatten() {
            let key = tc["index"].to_string();
            let c = self.call(key);
            if let Some(id) = tc["id"].as_str() {
                c.id = id.to_owned();
            }
            if let Some(n) = tc["function"]["name"].as_str() {
                c.name.push_str(n);
            }
            if let Some(a) = tc["function"]["arguments"].as_str() {
                c.args.push_str(a);
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.stop = Some(f.to_owned());
        }
        Ok(())
    }

    fn responses(&mut self, v: &Value) -> Result<(), StreamError> {
        match v["type"].as_str().unwrap_or("") {
            "response.output_text.delta" => self.text.push_str(v["delta"].as_str().unwrap_or("")),
            "response.output_item.added" | "response.output_item.done" => {
                let item = &v["item"];
                if item["type"] == "function_call" {
                    let key = item["id"]
                        .as_str()
                        .or(item["call_id"].as_str())
                        .unwrap_or("")
                        .to_owned();
                    let c = self.call(key);
                    c.id = item["call_id"].as_str().unwrap_or("").to_owned();
                    c.name = item["name"].as_str().unwrap_or("").to_owned();
                    if let Some(a) = item["arguments"].as_str().filter(|a| !a.is_empty()) {
                        c.args = a.to_owned();
                    }
                }
            }
            "response.function_call_arguments.delta" => {
                let key = v["item_id"].as_str().unwrap_or("").to_owned();
                let piece = v["delta"].as_str().unwrap_or("").to_owned();
                self.call(key).args.push_str(&piece);
            }
            "response.function_call_arguments.done" => {
                let key = v["item_id"].as_str().unwrap_or("").to_owned();
                if let Some(a) = v["arguments"].as_str() {
                    self.call(key).args = a.to_owned();
                }
            }
            "response.completed" | "response.incomplete" => {
                let u = &v["response"]["usage"];
                self.input_tokens = u["input_tokens"].as_u64().unwrap_or(0);
                self.output_tokens = u["output_tokens"].as_u64().unwrap_or(0);
                self.stop = v["response"]["status"].as_str().map(str::to_owned);
                self.done = true;
            }
            "response.failed" | "error" => {
                let err = v["response"]["error"].clone();
                let err = if err.is_null() {
                    v.clone()
                } else {
                    json!({"error": err})
                };
                return Err(StreamError::Provider(error_message(&err.to_string())));
            }
            _ => {}
        }
        Ok(())
    }

    fn gemini(&mut self, v: &Value) -> Result<(), StreamError> {
        if v.get("error").is_some() {
            return Err(StreamError::Provider(error_message(&v.to_string())));
        }
        if let Some(u) = v.get("usageMetadata") {
            self.input_tokens = u["promptTokenCount"].as_u64().unwrap_or(self.input_tokens);
            self.output_tokens = u["candidatesTokenCount"]
                .as_u64()
                .unwrap_or(self.output_tokens);
        }
        let Some(cand) = v["candidates"].get(0) else {
            return Ok(());
        };
        for part in cand["content"]["parts"].as_array().into_iter().flatten() {
            if let Some(t) = part["text"].as_str() {
                self.text.push_str(t);
            }
            if let Some(fc) = part.get("functionCall") {
                self.next_id += 1;
                let key = format!("gemini-{}", self.next_id);
                let c = self.call(key.clone());
                c.id = key;
                c.name = fc["name"].as_str().unwrap_or("").to_owned();
                c.args = fc["args"].to_string();
            }
        }
        if let Some(f) = cand["finishReason"].as_str() {
            self.stop = Some(f.to_owned());
        }
        Ok(())
    }

    /// The whole reply, once the stream has ended.
    pub fn finish(self) -> Result<Reply, StreamError> {
        // Chat Completions and Gemini servers may end without a final marker once they sent
        // a finish reason; Anthropic and Responses always send one.
        let complete = self.done
            || (matches!(self.protocol, Protocol::OpenaiChat | Protocol::Gemini)
                && self.stop.is_some());
        if !complete {
            return Err(StreamError::Incomplete);
        }
        // Cut at the output limit: a call's arguments may be incomplete; that is the
        // model's doing, not the network's, and must not be retried.
        let cut_at_limit = self
            .stop
            .as_deref()
            .is_some_and(|s| matches!(s, "max_tokens" | "length" | "incomplete" | "MAX_TOKENS"));
        let mut calls = Vec::new();
        for (n, c) in self.calls.into_iter().enumerate() {
            let mut truncated = false;
            let args = if c.args.trim().is_empty() {
                json!({})
            } else {
                match serde_json::from_str(&c.args) {
                    Ok(args) => args,
                    Err(_) if cut_at_limit => {
                        truncated = true;
                        Value::Null
                    }
                    Err(e) => {
                        return Err(StreamError::Malformed(format!(
                            "arguments of `{}`: {e}",
                            c.name
                        )));
                    }
                }
            };
            let id = if c.id.is_empty() {
                format!("call_{n}")
            } else {
                c.id
            };
            calls.push(ToolCall {
                id,
                name: c.name,
                args,
                truncated,
            });
        }
        Ok(Reply {
            text: self.text,
            calls,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            stop: self.stop,
        })
    }
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Base64 of bytes, for images.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(data: Value) -> SseEvent {
        SseEvent {
            event: String::new(),
            data: data.to_string(),
        }
    }

    #[test]
    fn a_call_cut_at_the_output_limit_is_marked_not_retried() {
        let mut s = Stream::new(Protocol::Anthropic);
        for e in [
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 5}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "write_file"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"a\", \"content\": \"abc"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}}),
            json!({"type": "message_stop"}),
        ] {
            s.event(&ev(e)).unwrap();
        }
        let reply = s.finish().unwrap();
        assert!(reply.calls[0].truncated);
        // Without the limit, broken arguments are a malformed stream (retried).
        let mut s = Stream::new(Protocol::OpenaiChat);
        s.event(&ev(json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "x", "arguments": "{oops"}}]}, "finish_reason": "tool_calls"}]})))
            .unwrap();
        assert!(matches!(s.finish(), Err(StreamError::Malformed(_))));
    }

    #[test]
    fn request_shapes_follow_each_provider() {
        let p = |field| Params {
            model: "m",
            system: "s",
            temperature: None,
            max_output_tokens: 7,
            completion_tokens_field: field,
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
        let chat = |base| url(Protocol::OpenaiChat, base, "m");
        assert_eq!(chat("http://h:1"), "http://h:1/v1/chat/completions");
        assert_eq!(chat("http://h/api/v1"), "http://h/api/v1/chat/completions");
        assert_eq!(
            chat("https://g.com/v1beta/openai"),
            "https://g.com/v1beta/openai/chat/completions"
        );
        assert_eq!(
            url(Protocol::Anthropic, "https://api.anthropic.com", "m"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            url(Protocol::Gemini, "https://x.com", "g"),
            "https://x.com/v1beta/models/g:streamGenerateContent?alt=sse"
        );
    }
}
