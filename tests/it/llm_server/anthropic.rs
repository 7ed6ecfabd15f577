//! Anthropic Messages: `POST …/messages`, streamed or not.

use serde_json::{Value, json};

use super::http::{Response, sse};
use super::{
    Conversation, INPUT_TOKENS, OUTPUT_TOKENS, Reply, Shared, content_text, decide, function,
    items, model_name, next_id, pieces, str_field, wants_stream,
};

pub(super) fn anthropic(shared: &Shared, body: &Value) -> Response {
    let messages = items(body, "messages");
    let is_user = |m: &&Value| str_field(m, "role") == "user";
    let conv = Conversation {
        tools: items(body, "tools")
            .iter()
            .map(|t| function(str_field(t, "name")))
            .collect(),
        after_tool_result: messages.last().filter(is_user).is_some_and(|m| {
            items(m, "content")
                .iter()
                .any(|b| str_field(b, "type") == "tool_result")
        }),
        user_texts: messages
            .iter()
            .filter(is_user)
            .map(|m| content_text(&m["content"]))
            .collect(),
        body,
    };
    let reply = decide(shared, &conv, "toolu_");
    let id = format!("msg_{}", next_id(shared));
    let model = model_name(body);
    let (block, stop_reason) = match &reply {
        Reply::Text(text) => (json!({"type": "text", "text": text}), "end_turn"),
        Reply::Call(call) => (
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.args}),
            "tool_use",
        ),
    };
    if !wants_stream(body) {
        return Response::json(
            200,
            json!({
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
                "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
            }),
        );
    }
    let event = |data: Value| sse(Some(data["type"].as_str().expect("typed event")), &data);
    let mut events = vec![event(json!({
        "type": "message_start",
        "message": {
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        },
    }))];
    let (start, deltas) = match &reply {
        Reply::Text(text) => (
            json!({"type": "text", "text": ""}),
            pieces(text, 2)
                .into_iter()
                .map(|p| json!({"type": "text_delta", "text": p}))
                .collect::<Vec<_>>(),
        ),
        Reply::Call(call) => (
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}),
            pieces(&call.args.to_string(), 3)
                .into_iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect(),
        ),
    };
    events.push(event(
        json!({"type": "content_block_start", "index": 0, "content_block": start}),
    ));
    for delta in deltas {
        events.push(event(
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    events.push(event(json!({"type": "content_block_stop", "index": 0})));
    events.push(event(json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS},
    })));
    events.push(event(json!({"type": "message_stop"})));
    Response::events(events)
}
