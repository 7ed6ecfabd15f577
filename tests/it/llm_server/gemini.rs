//! Gemini: `POST /v1beta/models/MODEL:generateContent` and
//! `:streamGenerateContent`.

use serde_json::{Value, json};

use super::http::{Response, sse};
use super::{
    Conversation, INPUT_TOKENS, OUTPUT_TOKENS, Reply, Shared, content_text, decide, function,
    items, pieces, str_field,
};

pub(super) fn gemini(shared: &Shared, body: &Value, model: &str, stream: bool) -> Response {
    let contents = items(body, "contents");
    let conv = Conversation {
        tools: items(body, "tools")
            .iter()
            .flat_map(|t| items(t, "functionDeclarations"))
            .map(|f| function(str_field(f, "name")))
            .collect(),
        after_tool_result: contents.last().is_some_and(|c| {
            items(c, "parts")
                .iter()
                .any(|p| p.get("functionResponse").is_some())
        }),
        user_texts: contents
            .iter()
            .filter(|c| str_field(c, "role") == "user")
            .map(|c| content_text(&c["parts"]))
            .collect(),
        body,
    };
    let reply = decide(shared, &conv, "call_");
    let usage = json!({
        "promptTokenCount": INPUT_TOKENS,
        "candidatesTokenCount": OUTPUT_TOKENS,
        "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS,
    });
    let candidate = |parts: Value, last: bool| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut data = json!({"modelVersion": model});
        if last {
            candidate["finishReason"] = json!("STOP");
            data["usageMetadata"] = usage.clone();
        }
        data["candidates"] = json!([candidate]);
        data
    };
    let parts: Vec<Value> = match &reply {
        Reply::Text(text) if stream => pieces(text, 2)
            .into_iter()
            .map(|p| json!({"text": p}))
            .collect(),
        Reply::Text(text) => vec![json!({"text": text})],
        Reply::Call(call) => {
            vec![json!({"functionCall": {"name": call.name, "args": call.args}})]
        }
    };
    if !stream {
        return Response::json(200, candidate(json!(parts), true));
    }
    let count = parts.len();
    let events = parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| sse(None, &candidate(json!([part]), i + 1 == count)))
        .collect();
    Response::events(events)
}
