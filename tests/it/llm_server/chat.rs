//! OpenAI Chat Completions: `POST …/chat/completions`, streamed or not.

use serde_json::{Value, json};

use super::http::{Response, sse};
use super::{
    Conversation, INPUT_TOKENS, OUTPUT_TOKENS, Reply, Shared, content_text, decide, function,
    items, model_name, next_id, pieces, str_field, wants_stream,
};

pub(super) fn chat(shared: &Shared, body: &Value) -> Response {
    let messages = items(body, "messages");
    let conv = Conversation {
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
    };
    let reply = decide(shared, &conv, "call_");
    let id = format!("chatcmpl-{}", next_id(shared));
    let model = model_name(body);
    let usage = json!({
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    });
    let finish_reason = match reply {
        Reply::Text(_) => "stop",
        Reply::Call(_) => "tool_calls",
    };
    if !wants_stream(body) {
        let message = match &reply {
            Reply::Text(text) => json!({"role": "assistant", "content": text}),
            Reply::Call(call) => json!({
                "role": "assistant", "content": null,
                "tool_calls": [{"id": call.id, "type": "function", "function":
                    {"name": call.name, "arguments": call.args.to_string()}}],
            }),
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
    match &reply {
        Reply::Text(text) => {
            for (i, piece) in pieces(text, 2).into_iter().enumerate() {
                events.push(match i {
                    0 => delta(json!({"role": "assistant", "content": piece})),
                    _ => delta(json!({"content": piece})),
                });
            }
        }
        Reply::Call(call) => {
            events.push(delta(json!({
                "role": "assistant",
                "tool_calls": [{"index": 0, "id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": ""}}],
            })));
            for piece in pieces(&call.args.to_string(), 3) {
                events.push(delta(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                ));
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
