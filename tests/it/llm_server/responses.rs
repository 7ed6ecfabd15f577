//! OpenAI Responses: `POST …/responses`, with function, custom and local shell tools.

use serde_json::{Value, json};

use super::http::{Response, sse};
use super::{
    Conversation, INPUT_TOKENS, OUTPUT_TOKENS, Reply, Shared, ToolCall, ToolKind, content_text,
    function, items, model_name, next_id, pieces, str_field, wants_stream,
};

/// What the turn logic needs from a Responses request.
pub(super) fn conversation(body: &Value) -> Conversation<'_> {
    const OUTPUTS: [&str; 3] = [
        "function_call_output",
        "custom_tool_call_output",
        "local_shell_call_output",
    ];
    let input = items(body, "input");
    let mut user_texts: Vec<String> = input
        .iter()
        .filter(|i| str_field(i, "role") == "user")
        .map(|i| content_text(&i["content"]))
        .collect();
    if let Some(text) = body["input"].as_str() {
        user_texts.push(text.to_owned());
    }
    Conversation {
        tools: items(body, "tools")
            .iter()
            .filter_map(|t| match str_field(t, "type") {
                "function" => Some(function(str_field(t, "name"))),
                "custom" => Some((str_field(t, "name").to_owned(), ToolKind::Custom)),
                "local_shell" => Some(("local_shell".to_owned(), ToolKind::LocalShell)),
                _ => None,
            })
            .collect(),
        after_tool_result: input
            .last()
            .is_some_and(|i| OUTPUTS.contains(&str_field(i, "type"))),
        user_texts,
        body,
    }
}

/// `reply` as a response: one message item, or one call item per call.
pub(super) fn render(shared: &Shared, body: &Value, reply: &Reply) -> Response {
    let n = next_id(shared);
    let model = model_name(body);
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": format!("resp_{n}"), "object": "response", "created_at": 0,
            "status": status, "model": model, "output": output, "usage": usage,
        })
    };
    let usage = json!({
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    });
    let items: Vec<Value> = match reply {
        Reply::Text(text) => vec![json!({
            "type": "message", "id": format!("msg_{}", next_id(shared)), "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        })],
        Reply::Calls(calls) => calls
            .iter()
            .map(|call| call_item(call, next_id(shared)))
            .collect(),
    };
    let completed = response("completed", json!(items), usage);
    if !wants_stream(body) {
        return Response::json(200, completed);
    }
    let in_progress = response("in_progress", json!([]), Value::Null);
    Response::events(responses_events(&items, in_progress, completed))
}

/// The output item of a call, as `response.output_item.done` carries it; `n` makes its
/// id unique.
fn call_item(call: &ToolCall, n: u64) -> Value {
    match call.kind {
        ToolKind::Function => json!({
            "type": "function_call", "id": format!("fc_{n}"), "status": "completed",
            "call_id": call.id, "name": call.name, "arguments": call.args.to_string(),
        }),
        ToolKind::Custom => json!({
            "type": "custom_tool_call", "id": format!("ctc_{n}"), "status": "completed",
            "call_id": call.id, "name": call.name, "input": call.args.to_string(),
        }),
        ToolKind::LocalShell => json!({
            "type": "local_shell_call", "id": format!("lsh_{n}"), "status": "completed",
            "call_id": call.id,
            "action": {"type": "exec", "command": call.args["command"], "env": {}},
        }),
    }
}

/// The stream of one response holding `items`, each event typed and numbered.
fn responses_events(items: &[Value], in_progress: Value, done: Value) -> Vec<String> {
    let mut events = Vec::new();
    let mut emit = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(events.len());
        events.push(sse(Some(kind), &data));
    };
    emit("response.created", json!({"response": in_progress}));
    emit("response.in_progress", json!({"response": in_progress}));
    for (index, item) in items.iter().enumerate() {
        // The item as first announced: in progress, without its content or arguments.
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        for (field, empty) in [
            ("content", json!([])),
            ("arguments", json!("")),
            ("input", json!("")),
        ] {
            if added.get(field).is_some() {
                added[field] = empty;
            }
        }
        emit(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        );
        let place = json!({"item_id": item["id"], "output_index": index});
        let at = |fields| with(&place, fields);
        // Text, arguments and custom input arrive in pieces; a local shell call comes
        // whole.
        let streamed = match str_field(item, "type") {
            "function_call" => Some(("response.function_call_arguments", "arguments")),
            "custom_tool_call" => Some(("response.custom_tool_call_input", "input")),
            _ => None,
        };
        if let Some(text) = item.pointer("/content/0/text").and_then(Value::as_str) {
            let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
            let at = |fields| at(with(&json!({"content_index": 0}), fields));
            emit("response.content_part.added", at(json!({"part": part("")})));
            for piece in pieces(text, 2) {
                emit("response.output_text.delta", at(json!({"delta": piece})));
            }
            emit("response.output_text.done", at(json!({"text": text})));
            emit(
                "response.content_part.done",
                at(json!({"part": part(text)})),
            );
        } else if let Some((prefix, field)) = streamed {
            let whole = item[field].as_str().expect("a text field");
            for piece in pieces(whole, 3) {
                emit(&format!("{prefix}.delta"), at(json!({"delta": piece})));
            }
            emit(&format!("{prefix}.done"), at(json!({field: whole})));
        }
        emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
    }
    emit("response.completed", json!({"response": done}));
    events
}

/// `fields` merged into `base` (both JSON objects).
fn with(base: &Value, fields: Value) -> Value {
    let mut out = base.clone();
    if let (Some(out), Value::Object(fields)) = (out.as_object_mut(), fields) {
        out.extend(fields);
    }
    out
}
