//! Tests of the scripted server through a raw HTTP client.

use super::client::{
    Conn, GEMINI_STREAM, anthropic_request, chat_request, gemini_request, joined,
    responses_request, send,
};
use super::*;

const CMD: &str = "printf '%s' 'it'\\''s done' > 'out.txt'";

fn write_mode() -> Mode {
    Mode::Write {
        file: "out.txt".into(),
        content: "it's done".into(),
        final_text: "All written.".into(),
    }
}

fn ask_mode() -> Mode {
    Mode::AskThenWrite {
        question: "Which file?".into(),
        nudge_marker: "JUST DO IT".into(),
        file: "out.txt".into(),
        content: "it's done".into(),
        final_text: "All written.".into(),
    }
}

#[test]
fn routes_on_one_keep_alive_connection() {
    let server = LlmServer::start(write_mode());
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let mut conn = Conn::open(&server);
    let head = conn.send("HEAD", "/", None);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("0"))
    );
    let models = conn.send("GET", "/v1/models", None).json();
    assert_eq!(models["data"][0]["id"], "test-model");
    let gemini = conn.send("GET", "/v1beta/models", None).json();
    assert_eq!(gemini["models"][0]["name"], "models/test-model");
    let count = conn.send(
        "POST",
        "/v1/messages/count_tokens?beta=true",
        Some(&json!({})),
    );
    assert_eq!(count.json(), json!({"input_tokens": 10}));
    let count = conn.send("POST", "/v1beta/models/g:countTokens", Some(&json!({})));
    assert_eq!(count.json(), json!({"totalTokens": 10}));
    let missing = conn.send("GET", "/nowhere", None);
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]["message"].is_string());

    let recorded = server.requests();
    let paths: Vec<&str> = recorded.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/",
            "/v1/models",
            "/v1beta/models",
            "/v1/messages/count_tokens?beta=true",
            "/v1beta/models/g:countTokens",
            "/nowhere"
        ]
    );
    assert_eq!(recorded[0].method, "HEAD");
    assert_eq!(recorded[0].body, Value::Null);
    assert_eq!(recorded[3].header("Content-Type"), Some("application/json"));
    assert_eq!(recorded[3].body, json!({}));
}

#[test]
fn anthropic_tool_call_then_final_text() {
    let server = LlmServer::start(write_mode());
    let path = "/v1/messages?beta=true";
    let first = json!([{"role": "user", "content": "write it"}]);
    let tools = ["Read", "Write", "Bash"];
    let answer = send(
        &server,
        "POST",
        path,
        Some(&anthropic_request(first, &tools, true)),
    );
    assert_eq!(answer.status, 200);
    let events = answer.events();
    let names: Vec<&str> = events.iter().filter_map(|(e, _)| e.as_deref()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let datas = answer.datas();
    assert_eq!(datas[0]["message"]["usage"]["input_tokens"], 100);
    assert_eq!(datas[0]["message"]["content"], json!([]));
    let block = &datas[1]["content_block"];
    assert_eq!(
        (&block["type"], &block["name"]),
        (&json!("tool_use"), &json!("Bash"))
    );
    assert_eq!(block["input"], json!({}));
    let id = block["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("toolu_"));
    let input: Value = serde_json::from_str(&joined(&datas, "/delta/partial_json")).unwrap();
    assert_eq!(input, json!({"command": CMD, "description": "write file"}));
    assert_eq!(datas[6]["delta"]["stop_reason"], "tool_use");
    assert_eq!(datas[6]["usage"]["output_tokens"], 20);

    let second = json!([
        {"role": "user", "content": "write it"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": id, "name": "Bash", "input": input},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": "ok"},
        ]},
    ]);
    let answer = send(
        &server,
        "POST",
        path,
        Some(&anthropic_request(second, &tools, true)),
    );
    let datas = answer.datas();
    assert_eq!(
        datas[1]["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(joined(&datas, "/delta/text"), "All written.");
    assert_eq!(datas[datas.len() - 2]["delta"]["stop_reason"], "end_turn");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn anthropic_non_streamed_write_tool_and_side_request() {
    let server = LlmServer::start(write_mode());
    let first = json!([{"role": "user", "content": "write it"}]);
    let body = anthropic_request(first.clone(), &["Read", "Write"], false);
    let reply = send(&server, "POST", "/v1/messages", Some(&body)).json();
    assert_eq!(reply["stop_reason"], "tool_use");
    assert_eq!(
        reply["usage"],
        json!({"input_tokens": 100, "output_tokens": 20})
    );
    let block = &reply["content"][0];
    assert_eq!(block["name"], "Write");
    assert_eq!(
        block["input"],
        json!({"file_path": "/tmp/proj/out.txt", "content": "it's done"})
    );

    let side = anthropic_request(first, &[], false);
    let reply = send(&server, "POST", "/v1/messages", Some(&side)).json();
    assert_eq!(reply["content"][0]["text"], "Test title");
    assert_eq!(reply["stop_reason"], "end_turn");
}

#[test]
fn chat_tool_call_usage_and_final_text() {
    let server = LlmServer::start(write_mode());
    let path = "/v1/chat/completions";
    let first = json!([{"role": "system", "content": "hi"}, {"role": "user", "content": "go"}]);
    let tools = ["read", "write", "bash"];
    let answer = send(
        &server,
        "POST",
        path,
        Some(&chat_request(first, &tools, true)),
    );
    let datas = answer.datas();
    assert_eq!(datas.last().unwrap(), "[DONE]");
    let start = &datas[0]["choices"][0]["delta"];
    assert_eq!(start["role"], "assistant");
    let call = &start["tool_calls"][0];
    assert_eq!(
        (&call["index"], &call["type"]),
        (&json!(0), &json!("function"))
    );
    assert_eq!(call["function"], json!({"name": "bash", "arguments": ""}));
    let id = call["id"].as_str().unwrap().to_owned();
    let args = joined(&datas, "/choices/0/delta/tool_calls/0/function/arguments");
    let args: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(args, json!({"command": CMD, "description": "write file"}));
    let finish = &datas[datas.len() - 3];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = &datas[datas.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120})
    );

    let second = json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "bash", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": id, "content": "done"},
    ]);
    let answer = send(
        &server,
        "POST",
        path,
        Some(&chat_request(second, &tools, true)),
    );
    let datas = answer.datas();
    assert_eq!(joined(&datas, "/choices/0/delta/content"), "All written.");
    assert_eq!(
        datas[datas.len() - 3]["choices"][0]["finish_reason"],
        "stop"
    );

    let side = json!({"model": "m", "messages": [{"role": "user", "content": "title?"}]});
    let reply = send(&server, "POST", path, Some(&side)).json();
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["message"]["content"], "Test title");
    assert_eq!(reply["usage"]["total_tokens"], 120);
}

#[test]
fn responses_tool_call_then_final_text() {
    let server = LlmServer::start(write_mode());
    let tools = json!([
        {"type": "function", "name": "exec_command", "parameters": {}},
        {"type": "custom", "name": "apply_patch"},
        {"type": "web_search"},
    ]);
    let user = json!({
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "go"}],
    });
    let body = responses_request(json!([user]), tools.clone(), true);
    let answer = send(&server, "POST", "/v1/responses", Some(&body));
    let events = answer.events();
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "{data}");
        assert_eq!(name.as_deref(), data["type"].as_str());
    }
    let types: Vec<&str> = events
        .iter()
        .map(|(_, d)| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    assert_eq!(
        types[types.len() - 4..],
        [
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let datas = answer.datas();
    let added = &datas[2]["item"];
    assert_eq!(
        (&added["type"], &added["name"]),
        (&json!("function_call"), &json!("exec_command"))
    );
    let args = joined(&datas, "/delta");
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"cmd": CMD})
    );
    assert_eq!(datas[datas.len() - 3]["arguments"], args);
    let item = &datas[datas.len() - 2]["item"];
    assert_eq!(item["arguments"], args);
    let completed = &datas[datas.len() - 1]["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"], json!([item]));
    assert_eq!(
        completed["usage"],
        json!({"input_tokens": 100, "output_tokens": 20, "total_tokens": 120,
               "input_tokens_details": {"cached_tokens": 0},
               "output_tokens_details": {"reasoning_tokens": 0}})
    );

    let call_id = item["call_id"].clone();
    let output = json!({"type": "function_call_output", "call_id": call_id, "output": "ok"});
    let input = json!([user, item, output]);
    let answer = send(
        &server,
        "POST",
        "/v1/responses",
        Some(&responses_request(input, tools, true)),
    );
    let datas = answer.datas();
    let types: Vec<&str> = datas.iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(joined(&datas[4..6], "/delta"), "All written.");
    assert_eq!(datas[6]["text"], "All written.");
    let output = &datas[9]["response"]["output"][0];
    assert_eq!(output["content"][0]["text"], "All written.");
    assert_eq!(output["role"], "assistant");

    let side = responses_request(json!("a title please"), json!([]), false);
    let reply = send(&server, "POST", "/v1/responses", Some(&side)).json();
    assert_eq!(reply["status"], "completed");
    assert_eq!(reply["output"][0]["content"][0]["text"], "Test title");
}

#[test]
fn responses_local_shell_tool() {
    let server = LlmServer::start(write_mode());
    let tools = json!([{"type": "local_shell"}]);
    let user = json!([{"role": "user", "content": "go"}]);
    let body = responses_request(user.clone(), tools.clone(), true);
    let datas = send(&server, "POST", "/v1/responses", Some(&body)).datas();
    let types: Vec<&str> = datas.iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let item = &datas[3]["item"];
    assert_eq!(item["type"], "local_shell_call");
    assert_eq!(item["action"]["command"], json!(["bash", "-lc", CMD]));

    let output =
        json!({"type": "local_shell_call_output", "call_id": item["call_id"], "output": ""});
    let input = json!([user[0], item, output]);
    let body = responses_request(input, tools, false);
    let reply = send(&server, "POST", "/v1/responses", Some(&body)).json();
    assert_eq!(reply["output"][0]["content"][0]["text"], "All written.");
    assert_eq!(reply["usage"]["output_tokens"], 20);
}

#[test]
fn gemini_tool_call_then_final_text() {
    let server = LlmServer::start(write_mode());
    let first = json!([{"role": "user", "parts": [{"text": "go"}]}]);
    let tools = ["read_file", "write_file", "run_shell_command"];
    let answer = send(
        &server,
        "POST",
        GEMINI_STREAM,
        Some(&gemini_request(first.clone(), &tools)),
    );
    let datas = answer.datas();
    assert_eq!(datas.len(), 1);
    let candidate = &datas[0]["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(
        candidate["content"]["parts"][0]["functionCall"],
        json!({
            "name": "run_shell_command",
            "args": {"command": CMD, "description": "write file"},
        })
    );
    assert_eq!(
        datas[0]["usageMetadata"],
        json!({"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120})
    );

    let second = json!([
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "run_shell_command", "args": {}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "run_shell_command", "response": {"output": ""}}},
        ]},
    ]);
    let answer = send(
        &server,
        "POST",
        GEMINI_STREAM,
        Some(&gemini_request(second, &tools)),
    );
    let datas = answer.datas();
    assert_eq!(datas.len(), 2);
    assert_eq!(
        joined(&datas, "/candidates/0/content/parts/0/text"),
        "All written."
    );
    assert!(datas[0].get("usageMetadata").is_none());
    assert_eq!(datas[1]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(datas[1]["usageMetadata"]["totalTokenCount"], 120);

    // Without a shell tool: write_file with the absolute path from the prompt.
    let path = "/v1beta/models/gemini-test:generateContent";
    let reply = send(
        &server,
        "POST",
        path,
        Some(&gemini_request(first.clone(), &["write_file"])),
    )
    .json();
    assert_eq!(
        reply["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"file_path": "/home/u/p/out.txt", "content": "it's done"})
    );
    let reply = send(&server, "POST", path, Some(&gemini_request(first, &[]))).json();
    assert_eq!(
        reply["candidates"][0]["content"]["parts"][0]["text"],
        "Test title"
    );
    assert_eq!(reply["usageMetadata"]["candidatesTokenCount"], 20);
}

#[test]
fn ask_then_write_switches_after_the_marker() {
    let server = LlmServer::start(ask_mode());
    let ask = json!([{"role": "user", "content": [{"type": "text", "text": "write it"}]}]);
    let reply = send(
        &server,
        "POST",
        "/v1/messages",
        Some(&anthropic_request(ask, &["Bash"], false)),
    )
    .json();
    assert_eq!(reply["content"][0]["text"], "Which file?");
    let nudged = json!([
        {"role": "user", "content": "write it"},
        {"role": "assistant", "content": "Which file?"},
        {"role": "user", "content": [{"type": "text", "text": "Just do it, please"}]},
    ]);
    let reply = send(
        &server,
        "POST",
        "/v1/messages",
        Some(&anthropic_request(nudged, &["Bash"], false)),
    )
    .json();
    assert_eq!(reply["content"][0]["name"], "Bash");

    let first = json!([{"role": "user", "parts": [{"text": "go"}]}]);
    let reply = send(
        &server,
        "POST",
        GEMINI_STREAM,
        Some(&gemini_request(first, &["run_shell_command"])),
    );
    assert_eq!(
        joined(&reply.datas(), "/candidates/0/content/parts/0/text"),
        "Which file?"
    );
    let nudged = json!([
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"text": "Which file?"}]},
        {"role": "user", "parts": [{"text": "just do it"}]},
    ]);
    let reply = send(
        &server,
        "POST",
        GEMINI_STREAM,
        Some(&gemini_request(nudged, &["run_shell_command"])),
    );
    assert!(
        reply.datas()[0]
            .pointer("/candidates/0/content/parts/0/functionCall")
            .is_some()
    );

    let chat = chat_request(
        json!([{"role": "user", "content": [{"type": "text", "text": "JUST DO IT"}]}]),
        &["bash"],
        false,
    );
    let reply = send(&server, "POST", "/v1/chat/completions", Some(&chat)).json();
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    let responses = responses_request(
        json!([{"role": "user", "content": "go"}]),
        json!([{"type": "function", "name": "shell"}]),
        false,
    );
    let reply = send(&server, "POST", "/v1/responses", Some(&responses)).json();
    assert_eq!(reply["output"][0]["content"][0]["text"], "Which file?");
}

#[test]
fn fail_429_per_protocol() {
    let server = LlmServer::start(Mode::Fail {
        status: 429,
        retry_after: Some(3),
    });
    let user = json!([{"role": "user", "content": "go"}]);
    let cases = [
        (
            "/v1/messages?beta=true",
            anthropic_request(user.clone(), &["Bash"], true),
        ),
        (
            "/v1/chat/completions",
            chat_request(user.clone(), &["bash"], true),
        ),
        ("/v1/responses", responses_request(user, json!([]), true)),
        (GEMINI_STREAM, gemini_request(json!([]), &[])),
    ];
    let mut bodies = Vec::new();
    for (path, body) in &cases {
        let answer = send(&server, "POST", path, Some(body));
        assert_eq!(answer.status, 429, "{path}");
        assert_eq!(answer.header("retry-after"), Some("3"), "{path}");
        bodies.push(answer.json());
    }
    assert_eq!(bodies[0]["type"], "error");
    assert_eq!(bodies[0]["error"]["type"], "rate_limit_error");
    assert_eq!(bodies[1]["error"]["code"], "rate_limit_exceeded");
    assert!(bodies[2]["error"]["message"].is_string());
    assert_eq!(bodies[3]["error"]["code"], 429);
    assert_eq!(bodies[3]["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(bodies[3]["error"]["details"][0]["retryDelay"], "3s");
    // Routes that are not model requests still answer.
    assert_eq!(send(&server, "HEAD", "/", None).status, 200);
}

#[test]
fn fail_401_is_an_auth_error() {
    let server = LlmServer::start(Mode::Fail {
        status: 401,
        retry_after: None,
    });
    let answer = send(&server, "POST", "/v1/messages", Some(&json!({})));
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("retry-after"), None);
    assert_eq!(answer.json()["error"]["type"], "authentication_error");
    let answer = send(&server, "POST", GEMINI_STREAM, Some(&json!({})));
    assert_eq!(answer.json()["error"]["status"], "UNAUTHENTICATED");
    let answer = send(&server, "POST", "/v1/chat/completions", Some(&json!({})));
    assert_eq!(answer.json()["error"]["code"], "invalid_api_key");
}

#[test]
fn chunked_request_body_is_read() {
    let server = LlmServer::start(write_mode());
    let body =
        chat_request(json!([{"role": "user", "content": "go"}]), &["bash"], false).to_string();
    let (a, b) = body.split_at(body.len() / 2);
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x};ext=1\r\n{a}\r\n{:X}\r\n{b}\r\n0\r\ntrailer: x\r\n\r\n",
        a.len(),
        b.len()
    );
    let mut conn = Conn::open(&server);
    let reply = conn.send_raw(raw.as_bytes(), false).json();
    assert_eq!(
        reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "bash"
    );
    // The connection stays usable after a chunked body.
    assert_eq!(conn.send("GET", "/v1/models", None).status, 200);
    let recorded = server.requests();
    assert_eq!(recorded[0].body.to_string(), body);
    assert_eq!(recorded[0].header("transfer-encoding"), Some("chunked"));
}

#[test]
fn working_directory_as_each_cli_states_it() {
    let samples = [
        (
            " - Primary working directory: /tmp/cc\n - Is git",
            "/tmp/cc",
        ),
        ("<env>\n  Working directory: /tmp/oc/work\n", "/tmp/oc/work"),
        (
            "I'm currently working in the directory: /tmp/qw/work\n",
            "/tmp/qw/work",
        ),
        (
            "- **Workspace Directories:**\n  - /tmp/gm/work\n- **Dir",
            "/tmp/gm/work",
        ),
        (
            "<environment_context>\n  <cwd>/tmp/cx/work</cwd>",
            "/tmp/cx/work",
        ),
    ];
    for (text, dir) in samples {
        let body = json!({"system": "the current working directory. Working directory: none",
                          "messages": [{"content": text}]});
        assert_eq!(working_directory(&body).as_deref(), Some(dir), "{text}");
    }
    assert_eq!(working_directory(&json!({"cwd": "relative: x"})), None);
}

#[test]
fn the_shell_command_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("sh")
        .args(["-c", CMD])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "it's done"
    );
}

#[test]
fn no_usable_tool_gives_the_final_text_and_ids_are_unique() {
    let server = LlmServer::start(write_mode());
    let user = json!([{"role": "user", "content": "go"}]);
    let reply = send(
        &server,
        "POST",
        "/v1/chat/completions",
        Some(&chat_request(user.clone(), &["grep"], false)),
    )
    .json();
    assert_eq!(reply["choices"][0]["message"]["content"], "All written.");
    let ids: Vec<Value> = (0..2)
        .map(|_| {
            let reply = send(
                &server,
                "POST",
                "/v1/chat/completions",
                Some(&chat_request(user.clone(), &["bash"], false)),
            )
            .json();
            reply["choices"][0]["message"]["tool_calls"][0]["id"].clone()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
}
