//! Reading a provider's reply: every streamed response is read by a [`Stream`] that knows
//! whether it saw the provider's final event (a stream that ends without it was cut and is
//! retried); an unstreamed one is read by [`Stream::whole`] as the stream of the same reply
//! would have been. Errors in the providers' bodies are put in words by
//! [`error_message`].

use serde_json::{Value, json};

use super::chat::{Reply, Tokens, ToolCall};
use super::provider::Protocol;
use super::sse::SseEvent;

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
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
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
            input_tokens: None,
            output_tokens: None,
            stop: None,
            done: false,
            next_id: 0,
        }
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
                let counts: Vec<u64> = [
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ]
                .iter()
                .filter_map(|k| u[*k].as_u64())
                .collect();
                if !counts.is_empty() {
                    self.input_tokens = Some(counts.iter().sum());
                }
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
                    self.output_tokens = Some(o);
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
            self.input_tokens = u["prompt_tokens"].as_u64().or(self.input_tokens);
            self.output_tokens = u["completion_tokens"].as_u64().or(self.output_tokens);
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
            // Servers that repeat the whole name in every chunk (llama-cpp-python) are
            // not continuing it: a name identical to the one so far is taken once.
            if let Some(n) = tc["function"]["name"].as_str()
                && n != c.name
            {
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
                self.input_tokens = u["input_tokens"].as_u64();
                self.output_tokens = u["output_tokens"].as_u64();
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
            self.input_tokens = u["promptTokenCount"].as_u64().or(self.input_tokens);
            self.output_tokens = u["candidatesTokenCount"].as_u64().or(self.output_tokens);
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
                // A call without arguments has none: an empty object, not `null`.
                c.args = fc
                    .get("args")
                    .map_or_else(|| "{}".to_owned(), Value::to_string);
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
        let cut_at_limit = self.stop.as_deref().is_some_and(cut_at_output_limit);
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
                        json!({})
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
        // A server that reports only one of the two counts still reported usage.
        let usage = (self.input_tokens.is_some() || self.output_tokens.is_some()).then(|| Tokens {
            input: self.input_tokens.unwrap_or(0),
            output: self.output_tokens.unwrap_or(0),
        });
        Ok(Reply {
            text: self.text,
            calls,
            usage,
            stop: self.stop,
            truncated: cut_at_limit,
        })
    }

    /// Reads an unstreamed response body, by replaying it as the events a stream of the
    /// same reply would have sent.
    pub fn whole(protocol: Protocol, v: &Value) -> Result<Reply, StreamError> {
        let mut s = Stream::new(protocol);
        let events: Vec<Value> = match protocol {
            Protocol::OpenaiChat => {
                if v.get("error").is_some() {
                    vec![v.clone()]
                } else {
                    let choice = &v["choices"][0];
                    let mut delta = choice["message"].clone();
                    if let Some(calls) = delta["tool_calls"].as_array_mut() {
                        for (i, c) in calls.iter_mut().enumerate() {
                            c["index"] = json!(i);
                        }
                    }
                    vec![json!({
                        "choices": [{"delta": delta, "finish_reason": choice["finish_reason"]}],
                        "usage": v["usage"],
                    })]
                }
            }
            Protocol::Anthropic => {
                if v["type"] == "error" {
                    vec![v.clone()]
                } else {
                    let mut out =
                        vec![json!({"type": "message_start", "message": {"usage": v["usage"]}})];
                    for (i, block) in v["content"].as_array().into_iter().flatten().enumerate() {
                        out.push(json!({"type": "content_block_start", "index": i, "content_block": block}));
                        if block["type"] == "tool_use" {
                            out.push(json!({"type": "content_block_delta", "index": i, "delta": {
                                "type": "input_json_delta", "partial_json": block["input"].to_string(),
                            }}));
                        }
                    }
                    out.push(json!({"type": "message_delta", "delta": {"stop_reason": v["stop_reason"]}, "usage": v["usage"]}));
                    out.push(json!({"type": "message_stop"}));
                    out
                }
            }
            Protocol::OpenaiResponses => {
                if v.get("error").is_some_and(|e| !e.is_null()) {
                    vec![json!({"type": "error", "error": v["error"]})]
                } else {
                    let mut out = Vec::new();
                    for item in v["output"].as_array().into_iter().flatten() {
                        if item["type"] == "function_call" {
                            out.push(json!({"type": "response.output_item.done", "item": item}));
                        }
                        for part in item["content"].as_array().into_iter().flatten() {
                            if part["type"] == "output_text" {
                                out.push(json!({"type": "response.output_text.delta", "delta": part["text"]}));
                            }
                        }
                    }
                    let end = if v["status"] == "incomplete" {
                        "response.incomplete"
                    } else {
                        "response.completed"
                    };
                    out.push(json!({"type": end, "response": v}));
                    out
                }
            }
            Protocol::Gemini => vec![v.clone()],
        };
        for e in &events {
            s.event(&SseEvent {
                event: String::new(),
                data: e.to_string(),
            })?;
        }
        s.done = true;
        s.finish()
    }
}

/// Whether a provider's stop reason says the output limit cut the reply.
fn cut_at_output_limit(stop: &str) -> bool {
    matches!(stop, "max_tokens" | "length" | "incomplete" | "MAX_TOKENS")
}

/// The first `n` characters of `s`, for messages.
pub(super) fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// An SSE event carrying `data`, as tests feed streams.
#[cfg(test)]
pub(super) fn ev(data: Value) -> SseEvent {
    SseEvent {
        event: String::new(),
        data: data.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_name_repeated_in_every_chunk_is_taken_once() {
        // llama-cpp-python 0.3.36 sends the whole name (and the id) with every piece.
        let mut s = Stream::new(Protocol::OpenaiChat);
        for piece in ["{\"", "path", "\":", " \"a.txt\"}"] {
            s.event(&ev(json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"name": "read_file", "arguments": piece}}]}, "finish_reason": null}]})))
                .unwrap();
        }
        s.event(&ev(
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ))
        .unwrap();
        let reply = s.finish().unwrap();
        assert_eq!(reply.calls[0].name, "read_file");
        assert_eq!(reply.calls[0].args, json!({"path": "a.txt"}));
        // No usage reported: unknown, not zero.
        assert_eq!(reply.usage, None);
        // A name that does come in pieces is still put together.
        let mut s = Stream::new(Protocol::OpenaiChat);
        for name in ["read", "_file"] {
            s.event(&ev(json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": name, "arguments": ""}}]}}]})))
                .unwrap();
        }
        s.event(&ev(
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ))
        .unwrap();
        assert_eq!(s.finish().unwrap().calls[0].name, "read_file");
    }

    #[test]
    fn a_reply_cut_at_the_limit_is_truncated_in_every_protocol() {
        let cases: [(Protocol, Vec<Value>); 4] = [
            (
                Protocol::OpenaiChat,
                vec![
                    json!({"choices": [{"delta": {"content": "Hal"}, "finish_reason": "length"}]}),
                ],
            ),
            (
                Protocol::Anthropic,
                vec![
                    json!({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hal"}}),
                    json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 7}}),
                    json!({"type": "message_stop"}),
                ],
            ),
            (
                Protocol::OpenaiResponses,
                vec![
                    json!({"type": "response.output_text.delta", "delta": "Hal"}),
                    json!({"type": "response.incomplete", "response": {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "usage": {"input_tokens": 3, "output_tokens": 7}}}),
                ],
            ),
            (
                Protocol::Gemini,
                vec![
                    json!({"candidates": [{"content": {"parts": [{"text": "Hal"}]}, "finishReason": "MAX_TOKENS"}]}),
                ],
            ),
        ];
        for (protocol, events) in cases {
            let mut s = Stream::new(protocol);
            for e in events {
                s.event(&ev(e)).unwrap();
            }
            let reply = s.finish().unwrap();
            assert!(reply.truncated, "{protocol:?}");
            assert_eq!(reply.text, "Hal");
        }
    }

    #[test]
    fn whole_replies_read_like_streams() {
        let chat = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}}]}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 11, "completion_tokens": 2}});
        let anthropic = json!({"type": "message", "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "c", "name": "read_file", "input": {"path": "a"}}], "stop_reason": "tool_use", "usage": {"input_tokens": 11, "output_tokens": 2}});
        let responses = json!({"status": "completed", "output": [{"type": "message", "content": [{"type": "output_text", "text": "ok"}]}, {"type": "function_call", "id": "fc", "call_id": "c", "name": "read_file", "arguments": "{\"path\":\"a\"}"}], "usage": {"input_tokens": 11, "output_tokens": 2}});
        let gemini = json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "read_file", "args": {"path": "a"}}}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 2}});
        for (protocol, v) in [
            (Protocol::OpenaiChat, chat),
            (Protocol::Anthropic, anthropic),
            (Protocol::OpenaiResponses, responses),
            (Protocol::Gemini, gemini),
        ] {
            let reply = Stream::whole(protocol, &v).unwrap();
            assert_eq!(reply.calls.len(), 1, "{protocol:?}");
            assert_eq!(reply.calls[0].name, "read_file");
            assert_eq!(reply.calls[0].args, json!({"path": "a"}));
            assert_eq!(
                reply.usage,
                Some(Tokens {
                    input: 11,
                    output: 2
                })
            );
            assert!(!reply.truncated);
        }
        let err = Stream::whole(
            Protocol::OpenaiChat,
            &json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
        );
        assert!(matches!(err, Err(StreamError::Provider(_))), "{err:?}");
    }
}
