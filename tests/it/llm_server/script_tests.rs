//! Tests of [`Mode::Script`] through the raw client: each step in each protocol.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::client::{
    Answer, GEMINI_STREAM, anthropic_request, chat_request, gemini_request, joined,
    responses_request, send,
};
use super::{CUT_TEXT, LlmServer, MALFORMED_TEXT, Mode, SCRIPT_DONE, Step};

fn script() -> Mode {
    Mode::Script(vec![
        Step::Fail {
            status: 429,
            retry_after: Some(1),
            code: None,
        },
        Step::Tools(vec![
            ("read_file".into(), json!({"path": "a.txt"})),
            ("run".into(), json!({"command": "ls"})),
        ]),
        Step::Cut,
        Step::Malformed,
        Step::Text("ok".into()),
    ])
}

/// Plays [`script`] with streamed requests to `path` offering tools (`body`), a side
/// request (`side`, no tools) after the failure and one request past the end; checks
/// what all protocols share, with the answer's text at `text` in each event. Returns
/// the answers to the failure, the tool calls, the cut and the malformed stream.
fn play_script(path: &str, body: &Value, side: &Value, text: &str) -> Vec<Answer> {
    let server = LlmServer::start(script());
    assert_eq!(send(&server, "HEAD", "/", None).status, 200);
    let mut answers = vec![send(&server, "POST", path, Some(body))];
    let side = send(&server, "POST", path, Some(side));
    assert_eq!((side.status, side.complete), (200, true), "{path}");
    answers.extend((0..4).map(|_| send(&server, "POST", path, Some(body))));
    let past = send(&server, "POST", path, Some(body));
    let [fail, tools, cut, malformed, ok] = &answers[..] else {
        unreachable!("five answers")
    };
    assert_eq!(fail.status, 429, "{path}");
    assert_eq!(fail.header("retry-after"), Some("1"), "{path}");
    for answer in [tools, cut, malformed, ok, &past] {
        assert_eq!(answer.status, 200, "{path}");
    }
    assert!(
        tools.complete && malformed.complete && ok.complete,
        "{path}"
    );
    assert!(
        !cut.complete,
        "{path}: the cut stream has no terminating chunk"
    );
    assert!(!cut.chunks.is_empty(), "{path}: the cut stream starts");
    assert!(CUT_TEXT.starts_with(&joined(&cut.datas(), text)), "{path}");
    let bad = malformed.raw_datas()[0];
    assert!(serde_json::from_str::<Value>(bad).is_err(), "{path}: {bad}");
    // The bad event took the place of the first piece of text; the rest follows.
    let rest = joined(&malformed.datas()[1..], text);
    assert!(
        !rest.is_empty() && MALFORMED_TEXT.ends_with(&rest),
        "{path}"
    );
    assert_eq!(joined(&ok.datas(), text), "ok", "{path}");
    assert_eq!(joined(&past.datas(), text), SCRIPT_DONE, "{path}");

    let model = server.model_requests();
    assert_eq!(model.len(), 7, "{path}");
    assert_eq!(server.requests().len(), 8, "{path}: and the HEAD");
    assert!(model.iter().all(|r| r.method == "POST" && r.path == path));
    assert_eq!(&model[2].body, body);
    answers.truncate(4);
    answers
}

/// The JSON that the pieces at `pointer` join into, over the events whose `at` is
/// `index`.
fn joined_json(datas: &[Value], at: &str, index: usize, pointer: &str) -> Value {
    let mine: Vec<Value> = datas
        .iter()
        .filter(|d| d.pointer(at) == Some(&json!(index)))
        .cloned()
        .collect();
    serde_json::from_str(&joined(&mine, pointer)).expect("arguments that parse")
}

/// The arguments of [`script`]'s tool calls, in order.
fn script_args() -> [Value; 2] {
    [json!({"path": "a.txt"}), json!({"command": "ls"})]
}

#[test]
fn script_anthropic() {
    let before = SystemTime::now();
    let user = json!([{"role": "user", "content": "go"}]);
    let body = anthropic_request(user.clone(), &["read_file", "run"], true);
    let side = anthropic_request(user, &[], false);
    let answers = play_script("/v1/messages", &body, &side, "/delta/text");
    let [fail, tools, cut, malformed] = &answers[..] else {
        unreachable!("four answers")
    };
    assert_eq!(fail.json()["error"]["type"], "rate_limit_error");
    assert_eq!(
        fail.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    let reset = fail.header("anthropic-ratelimit-requests-reset").unwrap();
    let reset = humantime::parse_rfc3339(reset).expect("an RFC 3339 reset");
    // At least the `retry_after` second after the request, whole seconds rounded up.
    let ahead = reset.duration_since(before).expect("a reset ahead");
    assert!(ahead >= Duration::from_secs(1), "{ahead:?}");
    assert!(ahead <= Duration::from_secs(5), "{ahead:?}");

    let datas = tools.datas();
    let starts: Vec<&Value> = datas
        .iter()
        .filter(|d| d["type"] == "content_block_start")
        .collect();
    assert_eq!(starts.len(), 2);
    for (i, (name, args)) in ["read_file", "run"].iter().zip(script_args()).enumerate() {
        let block = &starts[i]["content_block"];
        assert_eq!(
            (&starts[i]["index"], &block["type"]),
            (&json!(i), &json!("tool_use"))
        );
        assert_eq!(block["name"], *name);
        assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
        assert_eq!(
            joined_json(&datas, "/index", i, "/delta/partial_json"),
            args
        );
    }
    assert_eq!(datas[datas.len() - 2]["delta"]["stop_reason"], "tool_use");
    assert!(
        cut.events()
            .iter()
            .all(|(e, _)| e.as_deref() != Some("message_stop"))
    );
    assert!(malformed.chunks[0].starts_with("event: message_start\ndata: {\"oops"));
    assert_eq!(
        malformed.events().last().unwrap().0.as_deref(),
        Some("message_stop")
    );
}

#[test]
fn script_chat() {
    let user = json!([{"role": "user", "content": "go"}]);
    let body = chat_request(user.clone(), &["read_file", "run"], true);
    let side = chat_request(user, &[], false);
    let text = "/choices/0/delta/content";
    let answers = play_script("/v1/chat/completions", &body, &side, text);
    let [fail, tools, cut, malformed] = &answers[..] else {
        unreachable!("four answers")
    };
    assert_eq!(fail.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(fail.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(fail.header("x-ratelimit-reset-requests"), Some("1s"));

    let datas = tools.datas();
    let call = "/choices/0/delta/tool_calls/0";
    for (i, (name, args)) in ["read_file", "run"].iter().zip(script_args()).enumerate() {
        let start = datas
            .iter()
            .filter_map(|d| d.pointer(call))
            .find(|c| c["index"] == i && c.get("id").is_some())
            .expect("a call's first chunk");
        assert_eq!(start["function"]["name"], *name);
        let index = format!("{call}/index");
        let args_at = format!("{call}/function/arguments");
        assert_eq!(joined_json(&datas, &index, i, &args_at), args);
    }
    let finish = &datas[datas.len() - 3]["choices"][0]["finish_reason"];
    assert_eq!(finish, "tool_calls");
    assert_eq!(datas.last().unwrap(), "[DONE]");
    let cut = cut.datas();
    assert!(cut.iter().all(|d| d != "[DONE]"));
    assert!(
        cut.iter()
            .all(|d| d["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(malformed.datas().last().unwrap(), "[DONE]");
}

#[test]
fn script_responses() {
    let tools = json!([
        {"type": "function", "name": "read_file", "parameters": {}},
        {"type": "function", "name": "run", "parameters": {}},
    ]);
    let body = responses_request(json!([{"role": "user", "content": "go"}]), tools, true);
    let side = responses_request(json!("a title please"), json!([]), false);
    let answers = play_script("/v1/responses", &body, &side, "/delta");
    let [fail, tools, cut, malformed] = &answers[..] else {
        unreachable!("four answers")
    };
    assert_eq!(fail.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(fail.header("x-ratelimit-remaining-requests"), Some("0"));

    let datas = tools.datas();
    for (i, d) in datas.iter().enumerate() {
        assert_eq!(d["sequence_number"], i);
    }
    let added: Vec<&Value> = datas
        .iter()
        .filter(|d| d["type"] == "response.output_item.added")
        .collect();
    assert_eq!(added.len(), 2);
    let output = &datas.last().unwrap()["response"]["output"];
    for (i, (name, args)) in ["read_file", "run"].iter().zip(script_args()).enumerate() {
        assert_eq!(added[i]["output_index"], i);
        assert_eq!(added[i]["item"]["type"], "function_call");
        assert_eq!(added[i]["item"]["name"], *name);
        assert_eq!(joined_json(&datas, "/output_index", i, "/delta"), args);
        let item = &output[i];
        assert_eq!(item["call_id"], added[i]["item"]["call_id"]);
        let whole: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(whole, args);
    }
    assert_ne!(output[0]["call_id"], output[1]["call_id"]);
    let last = |a: &Answer| a.datas().last().unwrap()["type"].clone();
    assert_eq!(last(tools), "response.completed");
    assert_eq!(last(malformed), "response.completed");
    assert!(
        cut.datas()
            .iter()
            .all(|d| d["type"] != "response.completed")
    );
    assert!(malformed.chunks[0].starts_with("event: response.created\n"));
}

#[test]
fn script_gemini() {
    let user = json!([{"role": "user", "parts": [{"text": "go"}]}]);
    let body = gemini_request(user.clone(), &["read_file", "run"]);
    let side = gemini_request(user, &[]);
    let text = "/candidates/0/content/parts/0/text";
    let answers = play_script(GEMINI_STREAM, &body, &side, text);
    let [fail, tools, cut, malformed] = &answers[..] else {
        unreachable!("four answers")
    };
    let error = fail.json()["error"].clone();
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(error["details"][0]["retryDelay"], "1s");

    let datas = tools.datas();
    assert_eq!(datas.len(), 1, "both calls in one event");
    let parts = &datas[0]["candidates"][0]["content"]["parts"];
    assert_eq!(
        parts,
        &json!([
            {"functionCall": {"name": "read_file", "args": {"path": "a.txt"}}},
            {"functionCall": {"name": "run", "args": {"command": "ls"}}},
        ])
    );
    assert_eq!(datas[0]["candidates"][0]["finishReason"], "STOP");
    let cut = cut.datas();
    assert!(
        cut.iter()
            .all(|d| d["candidates"][0].get("finishReason").is_none())
    );
    let malformed = malformed.datas();
    assert_eq!(
        malformed.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
}

#[test]
fn script_unstreamed_and_out_of_credit() {
    let server = LlmServer::start(Mode::Script(vec![
        Step::Fail {
            status: 429,
            retry_after: None,
            code: Some("insufficient_quota".into()),
        },
        Step::Tools(vec![
            ("read_file".into(), json!({"path": "a.txt"})),
            ("run".into(), json!({"command": "ls"})),
        ]),
        Step::Cut,
        Step::Malformed,
        Step::Fail {
            status: 529,
            retry_after: None,
            code: None,
        },
    ]));
    let user = json!([{"role": "user", "content": "go"}]);
    let chat = chat_request(user.clone(), &["read_file"], false);
    let path = "/v1/chat/completions";
    let quota = send(&server, "POST", path, Some(&chat));
    assert_eq!(quota.status, 429);
    assert_eq!(quota.header("retry-after"), None);
    assert_eq!(quota.header("x-ratelimit-reset-requests"), Some("2s"));
    let error = &quota.json()["error"];
    assert_eq!(
        (&error["code"], &error["type"]),
        (&json!("insufficient_quota"), &error["code"])
    );

    let reply = send(&server, "POST", path, Some(&chat)).json();
    let calls = &reply["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls.as_array().map(Vec::len), Some(2));
    assert_eq!(calls[1]["function"]["name"], "run");
    let args: Value =
        serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"command": "ls"}));

    let cut = send(&server, "POST", path, Some(&chat));
    assert_eq!(cut.status, 200);
    assert!(!cut.complete && !cut.body.is_empty());
    let malformed = send(&server, "POST", path, Some(&chat));
    assert!(malformed.complete);
    assert!(serde_json::from_str::<Value>(&malformed.body).is_err());

    // Steps are shared by all endpoints.
    let anthropic = anthropic_request(user, &["run"], false);
    let overloaded = send(&server, "POST", "/v1/messages", Some(&anthropic));
    assert_eq!(overloaded.status, 529);
    assert_eq!(overloaded.json()["error"]["type"], "overloaded_error");
    assert_eq!(
        overloaded.header("anthropic-ratelimit-requests-remaining"),
        None
    );
}
