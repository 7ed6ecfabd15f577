//! Gemini: `POST /v1beta/models/MODEL:generateContent` and
//! `:streamGenerateContent`.

use serde_json::{Value, json};

use super::http::{Response, sse};
use super::{
    Conversation, INPUT_TOKENS, OUTPUT_TOKENS, Reply, content_text, function, items, pieces,
    str_field,
};

/// What the turn logic needs from a `generateContent` request.
pub(super) fn conversation(body: &Value) -> Conversation<'_> {
    let contents = items(body, "contents");
    Conversation {
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
    }
}

/// `reply` as candidates: text parts (one event per piece when streamed), or one
/// `functionCall` part per call, all in one event.
pub(super) fn render(reply: &Reply, model: &str, stream: bool) -> Response {
    let usage = json!({
        "promptTokenCount": INPUT_TOKENS,
        "candidatesTokenCount": OUTPUT_TOKENS,
        "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS,
    });
    let candidate = |parts: &[Value], last: bool| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut data = json!({"modelVersion": model});
        if last {
            candidate["finishReason"] = json!("STOP");
            data["usageMetadata"] = usage.clone();
        }
        data["candidates"] = json!([candidate]);
        data
    };
    // The parts of each event when streamed; all of them in the one reply otherwise.
    let chunks: Vec<Vec<Value>> = match reply {
        Reply::Text(text) if stream => pieces(text, 2)
            .into_iter()
            .map(|p| vec![json!({"text": p})])
            .collect(),
        Reply::Text(text) => vec![vec![json!({"text": text})]],
        Reply::Calls(calls) => vec![
            calls
                .iter()
                .map(|call| json!({"functionCall": {"name": call.name, "args": call.args}}))
                .collect(),
        ],
    };
    if !stream {
        return Response::json(200, candidate(&chunks.concat(), true));
    }
    let count = chunks.len();
    let events = chunks
        .iter()
        .enumerate()
        .map(|(i, parts)| sse(None, &candidate(parts, i + 1 == count)))
        .collect();
    Response::events(events)
}
