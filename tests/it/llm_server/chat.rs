//! OpenAI Chat Completions: `POST …/chat/completions`, streamed or not.

use serde_json::{Value, json};

use super::http::{Response, sse};
use super::{
    Conversation, INPUT_TOKENS, OUTPUT_TOKENS, Reply, Shared, content_text, function, items,
    model_name, next_id, pieces, str_field, wants_stream,
};

/// What the turn logic needs from a Chat Completions request.
pub(super) fn conversation(body: &Value) -> Conversation<'_> {
    let messages = items(body, "messages");
    Conversation {
        tools: items(body, "tools")
            .iter()
            .map(|t| function(str_field(&t["function"], "name")))
            .collect(),
        after_tool_result: messages
            .last()
            .is_some_and(|m| str_field(m, "role") == "tool"),
        user_texts: messages
            .iter()
            .filter(|m| str_field(m, "role") == "user")
            .map(|m| content_text(&m["content"]))
            .collect(),
        body,
    }
}

/// `reply` as a completion: content, or one `tool_calls` entry per call.
pub(super) fn render(shared: &Shared, body: &Value, reply: &Reply) -> Response {
    let id = format!("chatcmpl-{}", next_id(shared));
    let model = model_name(body);
    let usage = json!({
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    });
    let finish_reason = match reply {
        Reply::Text(_) => "stop",
        Reply::Calls(_) => "tool_calls",
    };
    if !wants_stream(body) {
        let message = match reply {
            Reply::Text(text) => json!({"role": "assistant", "content": text}),
            Reply::Calls(calls) => {
                let calls: Vec<Value> = calls
                    .iter()
                    .map(|call| {
                        json!({"id": call.id, "type": "function", "function":
                            {"name": call.name, "arguments": call.args.to_string()}})
                    })
                    .collect();
                json!({"role": "assistant", "content": null, "tool_calls": calls})
            }
        };
        return Response::json(
            200,
            json!({
                "id": id, "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": usage,
            }),
        );
    }
    let chunk = |choices: Value| {
        let data = json!({
            "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": choices,
        });
        sse(None, &data)
    };
    let delta = |delta: Value| chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]));
    let mut events = Vec::new();
    match reply {
        Reply::Text(text) => {
            for (i, piece) in pieces(text, 2).into_iter().enumerate() {
                events.push(match i {
                    0 => delta(json!({"role": "assistant", "content": piece})),
                    _ => delta(json!({"content": piece})),
                });
            }
        }
        Reply::Calls(calls) => {
            for (index, call) in calls.iter().enumerate() {
                // A call starts with its id and name; its arguments follow in pieces.
                let mut start = json!({
                    "tool_calls": [{"index": index, "id": call.id, "type": "function",
                                    "function": {"name": call.name, "arguments": ""}}],
                });
                if index == 0 {
                    start["role"] = json!("assistant");
                }
                events.push(delta(start));
                for piece in pieces(&call.args.to_string(), 3) {
                    events.push(delta(json!({"tool_calls": [
                        {"index": index, "function": {"arguments": piece}},
                    ]})));
                }
            }
        }
    }
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}]),
    ));
    if body["stream_options"]["include_usage"].as_bool() == Some(true) {
        let mut last = json!({
            "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [],
        });
        last["usage"] = usage;
        events.push(sse(None, &last));
    }
    events.push("data: [DONE]\n\n".to_owned());
    Response::events(events)
}
