//! The built-in agent and LLM judges against what real local servers send: the captured
//! bytes of llama.cpp's `llama-server` and llama-cpp-python's server
//! (`tests/fixtures/llm-wire/`) replayed through the loopback server, and the same cases in
//! the Anthropic, Responses and Gemini dialects from their documented formats.

use serde_json::{Value, json};

use crate::llm_server::{LlmServer, Mode, Recorded, Step};
use crate::support::{TestRepo, candidate};

const KEY_VAR: &str = "MASSGEN_TEST_KEY";

const REPEATED_NAME: &str = include_str!("../fixtures/llm-wire/llama-cpp-python-repeated-name.sse");
const CUT_AT_LENGTH: &str = include_str!("../fixtures/llm-wire/llama-server-cut-at-length.sse");
const LLAMA_OVERFLOW: &str =
    include_str!("../fixtures/llm-wire/llama-server-context-overflow.json");

fn agent_toml(provider: &str, url: &str, extra: &str) -> String {
    format!(
        "[[agents]]\nname = \"a\"\nkind = \"llm\"\nprovider = \"{provider}\"\nmodel = \"test-model\"\nbase_url = \"{url}\"\napi_key_env = \"{KEY_VAR}\"\ntimeout = \"120s\"\n{extra}\n"
    )
}

fn run(repo: &TestRepo, code: i32) -> Value {
    repo.massgen()
        .env(KEY_VAR, "sk-test")
        .env("MASSGEN_RETRY_BASE_MS", "20")
        .args(["run", "--json", "Read calc.sh and say what it does."])
        .run()
        .expect_code(code)
        .json()
}

/// SSE data lines (one per line in `lines`) as a body: each event ends with a blank line.
fn sse(lines: &str) -> String {
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n\n"))
        .collect()
}

fn raw(status: u16, content_type: &str, body: String) -> Step {
    Step::Raw {
        status,
        content_type: content_type.into(),
        body,
    }
}

fn events(body: String) -> Step {
    raw(200, "text/event-stream", body)
}

fn finish() -> Step {
    Step::Tools(vec![("finish".into(), json!({"summary": "done reading"}))])
}

fn body(r: &Recorded) -> String {
    r.body.to_string()
}

/// A chunk as llama-cpp-python 0.3.36 sends it: the whole name again, beside the legacy
/// `function_call`, with the next piece of the arguments.
fn repeated_name_chunk(name: &str, piece: &str, finish: Option<&str>) -> String {
    let call = json!({"name": name, "arguments": piece});
    let chunk = json!({
        "id": "chatcmpl-47ce7062", "object": "chat.completion.chunk", "created": 1796555514,
        "model": "smollm2-135m-instruct",
        "choices": [{"index": 0, "finish_reason": finish, "logprobs": null, "delta": {
            "role": null, "content": null, "function_call": call,
            "tool_calls": [{"index": 0, "id": format!("call__0_{name}_cmpl-47ce7062"), "type": "function", "function": call}],
        }}],
    });
    format!("data: {chunk}\n")
}

#[test]
fn a_tool_name_repeated_in_every_chunk_calls_the_tool_and_unknown_usage_stays_unknown() {
    // The captured chunks (`{"`, `path`, `":`), then the rest in the same shape.
    let mut first = REPEATED_NAME.to_owned();
    first.push_str(&repeated_name_chunk("read_file", " \"calc.sh\"}", None));
    first.push_str(&repeated_name_chunk("read_file", "", Some("tool_calls")));
    first.push_str("data: [DONE]\n");
    let mut second = String::new();
    for piece in ["{\"summary\"", ": \"done", " reading\"}"] {
        second.push_str(&repeated_name_chunk("finish", piece, None));
    }
    second.push_str(&repeated_name_chunk("finish", "", Some("tool_calls")));
    second.push_str("data: [DONE]\n");
    let server = LlmServer::start(Mode::Script(vec![
        events(sse(&first)),
        events(sse(&second)),
    ]));
    let repo = TestRepo::new();
    // provider = "openai" pointed at a local server: it must get `max_tokens`.
    repo.configure(&agent_toml("openai", &server.url(), ""));
    let out = run(&repo, 1);
    let c = candidate(&out, "a");
    assert_eq!(c["status"], "no_change", "{c:#}");
    assert!(c["error"].is_null(), "{c:#}");
    // llama-cpp-python reports no usage: unknown, not 0/0, and no cost.
    assert!(c["usage"].is_null(), "{c:#}");
    let requests = server.model_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body["max_tokens"], 8192);
    assert!(requests[0].body.get("max_completion_tokens").is_none());
    let messages = requests[1].body["messages"].as_array().unwrap().clone();
    let call = &messages[messages.len() - 2]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "read_file", "{call}");
    let result = messages.last().unwrap()["content"].as_str().unwrap();
    assert!(!result.contains("unknown tool"), "{result}");
    assert!(
        result.contains("add"),
        "the file's content came back: {result}"
    );
}

/// A `write_file` call cut by the output limit, in each dialect: llama-server's captured
/// bytes for Chat Completions, the documented event shapes for the others.
fn cut_call(provider: &str) -> String {
    let partial = "{\\\"path\\\": \\\"notes.md\\\", \\\"content\\\": \\\"a long";
    match provider {
        "openai" => sse(CUT_AT_LENGTH),
        "anthropic" => format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"test-model\",\"stop_reason\":null,\"usage\":{{\"input_tokens\":1273,\"output_tokens\":1}}}}}}\n\n\
             event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"write_file\",\"input\":{{}}}}}}\n\n\
             event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{partial}\"}}}}\n\n\
             event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":256}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        ),
        "openai-responses" => format!(
            "event: response.created\ndata: {{\"type\":\"response.created\",\"response\":{{\"id\":\"resp_1\",\"status\":\"in_progress\"}}}}\n\n\
             event: response.output_item.added\ndata: {{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"write_file\",\"arguments\":\"\"}}}}\n\n\
             event: response.function_call_arguments.delta\ndata: {{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":0,\"delta\":\"{partial}\"}}\n\n\
             event: response.incomplete\ndata: {{\"type\":\"response.incomplete\",\"response\":{{\"id\":\"resp_1\",\"status\":\"incomplete\",\"incomplete_details\":{{\"reason\":\"max_output_tokens\"}},\"usage\":{{\"input_tokens\":1273,\"output_tokens\":256}}}}}}\n\n"
        ),
        // Gemini sends whole calls; one cut at the limit comes without its arguments.
        "gemini" => "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"write_file\"}}],\"role\":\"model\"},\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":1273,\"candidatesTokenCount\":256}}\n\n".to_owned(),
        other => panic!("no cut call for {other}"),
    }
}

/// The arguments of the first tool call the agent sent back, as an object, in the
/// request's own dialect.
fn sent_back_args(provider: &str, r: &Recorded) -> Value {
    let b = &r.body;
    let parse = |v: &Value| serde_json::from_str::<Value>(v.as_str().unwrap()).unwrap();
    match provider {
        "openai" => {
            let m = b["messages"].as_array().unwrap();
            let call = m.iter().find(|m| m.get("tool_calls").is_some()).unwrap();
            parse(&call["tool_calls"][0]["function"]["arguments"])
        }
        "openai-responses" => {
            let items = b["input"].as_array().unwrap();
            let call = items.iter().find(|i| i["type"] == "function_call").unwrap();
            parse(&call["arguments"])
        }
        "anthropic" => {
            let m = b["messages"].as_array().unwrap();
            m.iter()
                .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
                .find(|c| c["type"] == "tool_use")
                .unwrap()["input"]
                .clone()
        }
        "gemini" => {
            let c = b["contents"].as_array().unwrap();
            c.iter()
                .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
                .find(|p| p.get("functionCall").is_some())
                .unwrap()["functionCall"]["args"]
                .clone()
        }
        other => panic!("{other}"),
    }
}

/// A run of an agent with a 256-token output limit whose model first answers with `cut`
/// (a reply cut at that limit, in `provider`'s dialect), then finishes.
fn cut_then_finish(provider: &str, cut: String) -> (LlmServer, Value) {
    let server = LlmServer::start(Mode::Script(vec![events(cut), finish()]));
    let repo = TestRepo::new();
    repo.configure(&agent_toml(
        provider,
        &server.url(),
        "max_output_tokens = 256",
    ));
    let out = run(&repo, 1);
    (server, out)
}

#[test]
fn a_call_cut_at_the_output_limit_goes_back_as_an_empty_object_in_every_dialect() {
    for provider in ["openai", "anthropic", "openai-responses", "gemini"] {
        let (server, out) = cut_then_finish(provider, cut_call(provider));
        let c = candidate(&out, "a");
        assert!(c["error"].is_null(), "{provider}: {c:#}");
        let requests = server.model_requests();
        assert_eq!(requests.len(), 2, "{provider}");
        assert_eq!(
            sent_back_args(provider, &requests[1]),
            json!({}),
            "{provider}"
        );
        let text = body(&requests[1]);
        if provider == "gemini" {
            // Whole calls: nothing was cut inside it, so it ran and failed for want of
            // arguments; the reply itself was cut, and the agent says so.
            assert!(!text.contains("\"args\":null"), "{text}");
        } else {
            assert!(
                text.contains("cut at the output limit (256 tokens)"),
                "{provider}: {text}"
            );
        }
        assert_eq!(c["truncated"], 1, "{provider}: {c:#}");
    }
}

/// A text reply cut at the output limit, in each dialect.
fn cut_text(provider: &str) -> String {
    match provider {
        "openai" => sse(
            "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"The script calc.sh\"}}],\"object\":\"chat.completion.chunk\"}\n\
             data: {\"choices\":[{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}],\"object\":\"chat.completion.chunk\"}\n\
             data: {\"choices\":[],\"object\":\"chat.completion.chunk\",\"usage\":{\"completion_tokens\":256,\"prompt_tokens\":900,\"total_tokens\":1156}}\n\
             data: [DONE]\n",
        ),
        "anthropic" => "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":900,\"output_tokens\":1}}}\n\n\
             event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
             event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"The script calc.sh\"}}\n\n\
             event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":256}}\n\n\
             event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned(),
        "openai-responses" => "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"delta\":\"The script calc.sh\"}\n\n\
             event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"usage\":{\"input_tokens\":900,\"output_tokens\":256}}}\n\n".to_owned(),
        "gemini" => "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"The script calc.sh\"}],\"role\":\"model\"},\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":900,\"candidatesTokenCount\":256}}\n\n".to_owned(),
        other => panic!("{other}"),
    }
}

#[test]
fn a_reply_cut_at_the_output_limit_is_not_an_answer_the_agent_is_told_and_goes_on() {
    for provider in ["openai", "anthropic", "openai-responses", "gemini"] {
        let (server, out) = cut_then_finish(provider, cut_text(provider));
        let c = candidate(&out, "a");
        assert!(c["error"].is_null(), "{provider}: {c:#}");
        assert_eq!(c["truncated"], 1, "{provider}: {c:#}");
        assert_eq!(c["final_message"], "done reading", "{provider}: {c:#}");
        let requests = server.model_requests();
        assert_eq!(
            requests.len(),
            2,
            "{provider}: a cut reply does not end the agent"
        );
        assert!(
            body(&requests[1]).contains("Your reply was cut at the output limit (256 tokens)"),
            "{provider}"
        );
        // The usage of the cut reply counts.
        assert_eq!(c["usage"]["input_tokens"], 1000, "{provider}: {c:#}");
    }
}

#[test]
fn a_request_over_the_context_window_is_shortened_with_the_servers_numbers_and_sent_again() {
    let repo = TestRepo::new();
    repo.write("big.txt", &"0123456789 0123456789\n".repeat(1400));
    let read = |p: &str| Step::Tools(vec![("read_file".into(), json!({"path": p}))]);
    let server = LlmServer::start(Mode::Script(vec![
        read("big.txt"),
        read("calc.sh"),
        read("test.sh"),
        read("README"),
        // llama-server's own refusal: 9093 tokens in a 4096-token context.
        raw(400, "application/json", LLAMA_OVERFLOW.to_owned()),
        finish(),
    ]));
    repo.configure(&agent_toml(
        "llamacpp",
        &server.url(),
        "max_output_tokens = 512",
    ));
    let out = run(&repo, 1);
    let c = candidate(&out, "a");
    assert!(c["error"].is_null(), "{c:#}");
    assert_eq!(c["final_message"], "done reading", "{c:#}");
    assert!(c["retries"].as_u64().unwrap() >= 1, "{c:#}");
    let requests = server.model_requests();
    assert_eq!(requests.len(), 6);
    let (refused, again) = (body(&requests[4]), body(&requests[5]));
    assert!(
        again.len() < refused.len() / 2,
        "{} then {}",
        refused.len(),
        again.len()
    );
    // Old tool output shortened or whole turns dropped, with a note saying so.
    assert!(again.contains("to fit the context window"), "{again}");

    // vLLM's, OpenAI's and Anthropic's words for the same refusal are understood too.
    for (provider, status, refusal) in [
        (
            "vllm",
            400,
            json!({"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you requested 9605 tokens (9093 in the messages, 512 in the completion). Please reduce the length of the messages or completion.", "type": "BadRequestError", "param": null, "code": 400}),
        ),
        (
            "openai",
            400,
            json!({"error": {"message": "This model's maximum context length is 4096 tokens. However, your messages resulted in 9093 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        ),
        (
            "anthropic",
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 9093 tokens > 4096 maximum"}}),
        ),
    ] {
        let server = LlmServer::start(Mode::Script(vec![
            read("big.txt"),
            read("calc.sh"),
            read("test.sh"),
            read("README"),
            raw(status, "application/json", refusal.to_string()),
            finish(),
        ]));
        let repo = TestRepo::new();
        repo.write("big.txt", &"0123456789 0123456789\n".repeat(1400));
        repo.configure(&agent_toml(
            provider,
            &server.url(),
            "max_output_tokens = 512",
        ));
        let out = run(&repo, 1);
        let c = candidate(&out, "a");
        assert!(c["error"].is_null(), "{provider}: {c:#}");
        let requests = server.model_requests();
        assert_eq!(requests.len(), 6, "{provider}");
        assert!(
            body(&requests[5]).len() < body(&requests[4]).len() / 2,
            "{provider}"
        );
    }
}

#[test]
fn an_empty_200_is_asked_again_once_unstreamed_and_then_explained() {
    // llama-cpp-python fails a streamed request it cannot serve with an empty 200.
    let empty = || events(String::new());
    let list = Step::Tools(vec![("list_files".into(), json!({}))]);
    let server = LlmServer::start(Mode::Script(vec![empty(), list, finish()]));
    let repo = TestRepo::new();
    repo.configure(&agent_toml("llamacpp", &server.url(), ""));
    let out = run(&repo, 1);
    let c = candidate(&out, "a");
    assert!(c["error"].is_null(), "{c:#}");
    let requests = server.model_requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].body["stream"], true);
    // Asked again without streaming, and later turns go unstreamed at once.
    assert_eq!(requests[1].body["stream"], false);
    assert!(requests[1].body.get("stream_options").is_none());
    assert_eq!(requests[2].body["stream"], false);

    // Empty both ways: one clear error after two requests, not five identical retries.
    let server = LlmServer::start(Mode::Script(vec![
        empty(),
        raw(200, "application/json", String::new()),
    ]));
    let repo = TestRepo::new();
    repo.configure(&agent_toml("llamacpp", &server.url(), ""));
    let out = run(&repo, 1);
    let error = candidate(&out, "a")["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains(
            "HTTP 200 with an empty body; the server may have rejected the request; see its log"
        ),
        "{error}"
    );
    assert_eq!(server.model_requests().len(), 2);
}

#[test]
fn stream_and_tool_choice_are_sent_as_configured() {
    let server = LlmServer::start(Mode::Script(vec![finish()]));
    let repo = TestRepo::new();
    repo.configure(&agent_toml(
        "llamacpp",
        &server.url(),
        "stream = false\ntool_choice = \"auto\"",
    ));
    let out = run(&repo, 1);
    assert!(candidate(&out, "a")["error"].is_null(), "{out:#}");
    let r = &server.model_requests()[0];
    assert_eq!(r.body["stream"], false);
    assert_eq!(r.body["tool_choice"], "auto");

    // A choice we do not know is a clear error before anything runs.
    repo.configure(&agent_toml(
        "llamacpp",
        &server.url(),
        "tool_choice = \"always\"",
    ));
    let run = repo
        .massgen()
        .env(KEY_VAR, "sk-test")
        .args(["run", "task"])
        .run();
    run.assert_stderr("tool_choice = \"always\": expected \"auto\", \"required\" or \"none\"");
    assert_eq!(repo.worktree_count(), 1);
}

#[test]
fn a_judges_answer_cut_at_the_output_limit_is_asked_again() {
    // A complete vote, but the reply says it was cut: not a vote.
    let cut_vote = sse(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"vote\",\"arguments\":\"{\\\"candidate\\\": \\\"A\\\", \\\"reason\\\": \\\"because\\\"}\"}}]}}]}\n\
         data: {\"choices\":[{\"index\":0,\"finish_reason\":\"length\",\"delta\":{}}]}\n\
         data: [DONE]\n",
    );
    let server = LlmServer::start(Mode::Script(vec![
        events(cut_vote),
        Step::Tools(vec![(
            "vote".into(),
            json!({"candidate": "B", "reason": "clearer"}),
        )]),
    ]));
    let repo = TestRepo::new();
    repo.configure(&format!(
        "[[judges]]\nname = \"j\"\nkind = \"llm\"\nprovider = \"llamacpp\"\nmodel = \"m\"\nbase_url = \"{}\"\nmax_output_tokens = 64\n",
        server.url()
    ));
    let json = repo
        .massgen()
        .args(["run", "--json"])
        .args(["--agent-cmd", &repo.agent("one", "echo one > answer.txt")])
        .args(["--agent-cmd", &repo.agent("two", "echo two > answer.txt")])
        .args(["--", "write the answer"])
        .expect_json(0);
    let requests = server.model_requests();
    assert_eq!(requests.len(), 2, "{json:#}");
    assert!(body(&requests[1]).contains("cut at the output limit (64 tokens)"));
    let votes = json["votes"].as_array().unwrap();
    assert_eq!(votes.len(), 1, "{json:#}");
    assert_eq!(votes[0]["reason"], "clearer");
    let warnings = json["warnings"].to_string();
    assert!(
        warnings.contains("judge j: the answer was cut at the output limit"),
        "{warnings}"
    );
}

/// A real `llama-server`, when `MASSGEN_LLAMA_SERVER` names its binary and
/// `MASSGEN_LLAMA_MODEL` a GGUF model (SmolLM2-135M-Instruct is enough): the agent talks to
/// it over tools for a few turns without a protocol error. Skipped, loudly, without them.
#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn a_real_llama_server_when_one_is_given() {
    let (Ok(bin), Ok(model)) = (
        std::env::var("MASSGEN_LLAMA_SERVER"),
        std::env::var("MASSGEN_LLAMA_MODEL"),
    ) else {
        eprintln!(
            "SKIPPED: set MASSGEN_LLAMA_SERVER (a llama-server binary) and MASSGEN_LLAMA_MODEL (a GGUF file) to run the agent against a real llama.cpp server"
        );
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(&bin)
        .args(["-m", &model, "--jinja", "-c", "4096", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start llama-server");
    let healthy = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        health_ok(port)
    });
    let outcome = std::panic::catch_unwind(|| {
        assert!(
            healthy,
            "llama-server did not become healthy on port {port}"
        );
        let repo = TestRepo::new();
        repo.configure(&agent_toml(
            "llamacpp",
            &format!("http://127.0.0.1:{port}"),
            "max_turns = 3\nmax_output_tokens = 256\ncontext_window = 4096",
        ));
        let out = repo
            .massgen()
            .env(KEY_VAR, "none")
            .args(["run", "--json", "Read calc.sh and say what it does."])
            .run()
            .json();
        let c = candidate(&out, "a").clone();
        let error = c["error"].as_str().unwrap_or("");
        for broken in [
            "unknown tool",
            "HTTP 4",
            "HTTP 5",
            "empty body",
            "malformed",
        ] {
            assert!(!error.contains(broken), "{error}");
        }
        assert!(
            c["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0,
            "{c:#}"
        );
    });
    let _ = server.kill();
    let _ = server.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn health_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}
