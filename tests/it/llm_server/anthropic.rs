//! Anthropic Messages: `POST …/messages`, streamed or not.

use serde_json::{Value, json};

use super::http::{Response, sse};
use super::{
    Conversation, INPUT_TOKENS, OUTPUT_TOKENS, Reply, Shared, content_text, function, items,
    model_name, next_id, pieces, str_field, wants_stream,
};

/// What the turn logic needs from a Messages request.
pub(super) fn conversation(body: &Value) -> Conversation<'_> {
    let messages = items(body, "messages");
    let is_user = |m: &&Value| str_field(m, "role") == "user";
    Conversation {
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
    }
}

/// `reply` as a message: one `text` block, or one `tool_use` block per call.
pub(super) fn render(shared: &Shared, body: &Value, reply: &Reply) -> Response {
    let id = format!("msg_{}", next_id(shared));
    let model = model_name(body);
    let (blocks, stop_reason) = match reply {
        Reply::Text(text) => (vec![json!({"type": "text", "text": text})], "end_turn"),
        Reply::Calls(calls) => (
            calls
                .iter()
                .map(|c| json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.args}))
                .collect(),
            "tool_use",
        ),
    };
    if !wants_stream(body) {
        return Response::json(
            200,
            json!({
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": blocks, "stop_reason": stop_reason, "stop_sequence": null,
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
    for (index, block) in blocks.iter().enumerate() {
        // A block starts empty; its text or its input's JSON follows in pieces.
        let (start, deltas) = match block["text"].as_str() {
            Some(text) => (
                json!({"type": "text", "text": ""}),
                pieces(text, 2)
                    .into_iter()
                    .map(|p| json!({"type": "text_delta", "text": p}))
                    .collect::<Vec<_>>(),
            ),
            None => {
                let mut start = block.clone();
                start["input"] = json!({});
                let deltas = pieces(&block["input"].to_string(), 3)
                    .into_iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                    .collect();
                (start, deltas)
            }
        };
        events.push(event(
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        for delta in deltas {
            events.push(event(
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push(event(json!({"type": "content_block_stop", "index": index})));
    }
    events.push(event(json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS},
    })));
    events.push(event(json!({"type": "message_stop"})));
    Response::events(events)
}
