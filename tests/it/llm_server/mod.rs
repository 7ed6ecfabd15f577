//! A scripted LLM server on loopback for tests that run the real coding-agent CLIs and
//! our own agent.
//!
//! It speaks four vendors' wire protocols over hand-written HTTP/1.1 (keep-alive,
//! chunked or sized request bodies, one chunk per SSE event in replies): Anthropic
//! Messages, OpenAI Chat Completions, OpenAI Responses and Gemini. Every request is
//! recorded. The answers follow a [`Mode`]: a tool call that writes a file, then a final
//! text once the conversation carries the tool's result; an error status for every
//! model request; or a script of [`Step`]s, one per model request, that can also fail,
//! cut a stream short or send one that does not parse. It never reaches the network and
//! needs no API key.

#![allow(dead_code)]

mod anthropic;
mod chat;
mod client;
mod failure;
mod gemini;
mod http;
mod responses;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{Value, json};

use self::failure::{Failure, failure};
use self::http::{Response, serve_connection};

/// Fixed usage reported by every model response.
const INPUT_TOKENS: u64 = 100;
const OUTPUT_TOKENS: u64 = 20;
/// The answer to side requests (no tools offered: titles, topic detection).
const SIDE_TEXT: &str = "Test title";
/// The answer to tool-offering requests once a script has run out of steps.
pub const SCRIPT_DONE: &str = "done";
/// The text whose stream [`Step::Cut`] cuts short.
const CUT_TEXT: &str = "This answer is cut off";
/// The text streamed after the bad first event of [`Step::Malformed`].
const MALFORMED_TEXT: &str = "after a malformed event";
/// The model name used when a request names none.
const MODEL: &str = "test-model";
/// Why a lock of the shared state can be taken: its holders never panic.
const LOCK: &str = "server state lock is never poisoned";

/// What the server answers to model requests.
#[derive(Debug, Clone)]
pub enum Mode {
    /// First turn: a tool call that creates `file` (relative to the agent's working
    /// directory) holding `content`; once a request carries a tool result: final text
    /// `final_text`.
    Write {
        file: String,
        content: String,
        final_text: String,
    },
    /// Answers `question` as final text (no tool call) until a user message contains
    /// `nudge_marker` (case-insensitive substring); after that behaves like `Write`.
    AskThenWrite {
        question: String,
        nudge_marker: String,
        file: String,
        content: String,
        final_text: String,
    },
    /// Every model request gets this HTTP status with the vendor's error body for it;
    /// `retry_after` (seconds) is sent as a `retry-after` header.
    Fail {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Each model request that offers tools takes the next step, in the order the
    /// requests arrive on any connection; once the steps are used up the answer is the
    /// text [`SCRIPT_DONE`]. Requests offering no tools (titles, summaries) get a side
    /// text and take no step.
    Script(Vec<Step>),
}

/// One model request's answer in [`Mode::Script`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Answers with these tool calls (name, JSON arguments), all in one response, in
    /// the protocol's own shape: several `tool_use` blocks, `tool_calls` entries,
    /// `function_call` items or `functionCall` parts. A name the request offers as a
    /// Responses custom or local shell tool is called as one.
    Tools(Vec<(String, Value)>),
    /// Answers with final text.
    Text(String),
    /// An HTTP error with the vendor's error body; `retry_after` (seconds) as a
    /// `retry-after` header; `code` replaces the error's kind (Anthropic `error.type`,
    /// OpenAI `error.code`, with `error.type` too for `insufficient_quota`; Gemini
    /// `error.status`). A 429 also carries the vendor's rate-limit headers: Anthropic
    /// `anthropic-ratelimit-requests-{limit,remaining,reset}` (remaining 0, reset as
    /// RFC 3339), OpenAI `x-ratelimit-{limit,remaining,reset}-requests` (remaining 0,
    /// reset as a duration like `2s`), both resetting `retry_after` seconds ahead
    /// (2 without it).
    Fail {
        status: u16,
        retry_after: Option<u64>,
        code: Option<String>,
    },
    /// Starts a normal text answer (status 200, the first half of its events), then
    /// closes the connection: no terminating chunk, no final event (`message_stop`,
    /// `[DONE]`, `response.completed`, Gemini's `finishReason`). Unstreamed: the JSON
    /// body's first half under a `content-length` for all of it.
    Cut,
    /// A 200 stream whose first event's data is not JSON (`{"oops`), then the rest of a
    /// normal text answer and a proper end. Unstreamed: the body `{"oops`.
    Malformed,
    /// Exactly these bytes as the body, with this status and content type, sent chunked
    /// (no chunk at all when empty): the replay of a real server's capture.
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path with its query string.
    pub path: String,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Null` when empty or not JSON.
    pub body: Value,
}

impl Recorded {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a POST to a model endpoint (not a token count, model list or
    /// probe).
    pub fn is_model_request(&self) -> bool {
        Endpoint::of(self).is_some()
    }
}

/// A running server; stops accepting and closes its connections on drop.
pub struct LlmServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// State shared by the accept thread and the connection threads.
struct Shared {
    mode: Mode,
    requests: Mutex<Vec<Recorded>>,
    /// Clones of open connections, so that drop can unblock their reads.
    connections: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    /// Numbers tool calls and messages so that ids are unique.
    next_id: AtomicU64,
    /// The next step of a [`Mode::Script`].
    next_step: AtomicUsize,
}

impl LlmServer {
    /// Starts a server on `127.0.0.1` with a free port.
    pub fn start(mode: Mode) -> LlmServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Shared {
            mode,
            requests: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            next_step: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                // Events go out as small writes; without this, Nagle and delayed ACKs add
                // 40 ms to a streamed reply.
                let _ = stream.set_nodelay(true);
                if let Ok(clone) = stream.try_clone() {
                    accept_shared.connections.lock().expect(LOCK).push(clone);
                }
                let conn_shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve_connection(stream, &conn_shared));
            }
        });
        LlmServer {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect(LOCK).clone()
    }

    /// The POSTs to model endpoints received so far, in order (side requests
    /// included).
    pub fn model_requests(&self) -> Vec<Recorded> {
        let requests = self.shared.requests.lock().expect(LOCK);
        requests
            .iter()
            .filter(|r| r.is_model_request())
            .cloned()
            .collect()
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // A connection of our own wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // No connection is added once the accept loop has ended; shutting down the open
        // ones ends their threads' blocking reads.
        for conn in self.shared.connections.lock().expect(LOCK).drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Routing

/// The wire protocols, for shaping error bodies.
#[derive(Clone, Copy)]
enum Protocol {
    Anthropic,
    OpenAi,
    Gemini,
}

/// The endpoints that answer as a model.
enum Endpoint<'a> {
    Anthropic,
    Chat,
    Responses,
    Gemini { model: &'a str, stream: bool },
}

impl<'a> Endpoint<'a> {
    /// The model endpoint `request` is for, if it is a POST to one.
    fn of(request: &'a Recorded) -> Option<Endpoint<'a>> {
        let path = request.path.split('?').next().unwrap_or("");
        if request.method != "POST" {
            return None;
        }
        if path.ends_with("/messages") {
            Some(Endpoint::Anthropic)
        } else if path.ends_with("/chat/completions") {
            Some(Endpoint::Chat)
        } else if path.ends_with("/responses") {
            Some(Endpoint::Responses)
        } else {
            let (model, action) = path.strip_prefix("/v1beta/models/")?.split_once(':')?;
            match action {
                "generateContent" => Some(Endpoint::Gemini {
                    model,
                    stream: false,
                }),
                "streamGenerateContent" => Some(Endpoint::Gemini {
                    model,
                    stream: true,
                }),
                _ => None,
            }
        }
    }

    fn protocol(&self) -> Protocol {
        match self {
            Endpoint::Anthropic => Protocol::Anthropic,
            Endpoint::Chat | Endpoint::Responses => Protocol::OpenAi,
            Endpoint::Gemini { .. } => Protocol::Gemini,
        }
    }
}

fn route(request: &Recorded, shared: &Shared) -> Response {
    if let Some(endpoint) = Endpoint::of(request) {
        return model_reply(shared, &endpoint, &request.body);
    }
    let path = request.path.split('?').next().unwrap_or("");
    match (request.method.as_str(), path) {
        ("HEAD" | "GET", "/") => Response::empty(),
        ("GET", "/v1/models" | "/models") => Response::json(
            200,
            json!({"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "test"}
            ]}),
        ),
        ("GET", "/v1beta/models") => Response::json(200, json!({"models": [gemini_model()]})),
        ("GET", p) if p.starts_with("/v1beta/models/") => Response::json(200, gemini_model()),
        ("POST", p) if p.ends_with("/messages/count_tokens") => {
            Response::json(200, json!({"input_tokens": 10}))
        }
        ("POST", p) if p.starts_with("/v1beta/models/") && p.ends_with(":countTokens") => {
            Response::json(200, json!({"totalTokens": 10}))
        }
        _ => not_found(path),
    }
}

fn not_found(path: &str) -> Response {
    Response::json(
        404,
        json!({"error": {
            "message": format!("no route for {path}"), "type": "not_found_error", "code": 404,
        }}),
    )
}

fn gemini_model() -> Value {
    json!({
        "name": format!("models/{MODEL}"),
        "displayName": "Test model",
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

/// Answers a model request: the mode's error, or the reply the turn logic decides,
/// delivered whole, cut short or malformed.
fn model_reply(shared: &Shared, endpoint: &Endpoint, body: &Value) -> Response {
    let protocol = endpoint.protocol();
    if let Mode::Fail {
        status,
        retry_after,
    } = shared.mode
    {
        let plain = Failure {
            status,
            retry_after,
            code: None,
            rate_limit_headers: false,
        };
        return failure(protocol, &plain);
    }
    let conv = match endpoint {
        Endpoint::Anthropic => anthropic::conversation(body),
        Endpoint::Chat => chat::conversation(body),
        Endpoint::Responses => responses::conversation(body),
        Endpoint::Gemini { .. } => gemini::conversation(body),
    };
    let id_prefix = match endpoint {
        Endpoint::Anthropic => "toolu_",
        _ => "call_",
    };
    let (reply, delivery) = match decide(shared, &conv, id_prefix) {
        Decision::Answer(reply, delivery) => (reply, delivery),
        Decision::Fail(step) => return failure(protocol, &step),
        Decision::Raw(status, content_type, body) => {
            return Response::raw(status, content_type, body);
        }
    };
    let response = match endpoint {
        Endpoint::Anthropic => anthropic::render(shared, body, &reply),
        Endpoint::Chat => chat::render(shared, body, &reply),
        Endpoint::Responses => responses::render(shared, body, &reply),
        Endpoint::Gemini { model, stream } => gemini::render(&reply, model, *stream),
    };
    match delivery {
        Delivery::Whole => response,
        Delivery::Cut => response.cut(),
        Delivery::Malformed => response.malformed(),
    }
}

// ---------------------------------------------------------------------------------------
// Turn logic, common to the protocols

/// What the scripted model says in one response.
enum Reply {
    Text(String),
    /// One or more tool calls, all in one response.
    Calls(Vec<ToolCall>),
}

struct ToolCall {
    /// Unique per server, e.g. `call_3`, `toolu_3`.
    id: String,
    name: String,
    kind: ToolKind,
    args: Value,
}

/// How a tool is offered; only the Responses API has kinds besides `Function`.
#[derive(Clone, Copy, PartialEq)]
enum ToolKind {
    Function,
    Custom,
    LocalShell,
}

/// How a reply reaches the client.
enum Delivery {
    Whole,
    /// See [`Step::Cut`].
    Cut,
    /// See [`Step::Malformed`].
    Malformed,
}

/// The answer to a model request.
enum Decision<'a> {
    Answer(Reply, Delivery),
    Fail(Failure<'a>),
    /// See [`Step::Raw`].
    Raw(u16, &'a str, &'a str),
}

impl Decision<'_> {
    fn whole(reply: Reply) -> Self {
        Decision::Answer(reply, Delivery::Whole)
    }

    fn text(text: &str) -> Self {
        Decision::whole(Reply::Text(text.to_owned()))
    }
}

/// What the turn logic needs from a request, whatever its protocol.
struct Conversation<'a> {
    /// Tools offered, by name (a `local_shell` tool is named `local_shell`).
    tools: Vec<(String, ToolKind)>,
    /// The last message carries a tool result.
    after_tool_result: bool,
    /// The text of every user message.
    user_texts: Vec<String>,
    /// The whole request, searched for the agent's working directory.
    body: &'a Value,
}

impl Conversation<'_> {
    /// How the tool `name` is offered, if it is.
    fn offered(&self, name: &str) -> Option<ToolKind> {
        self.tools.iter().find(|(n, _)| n == name).map(|(_, k)| *k)
    }
}

/// Decides the answer to a model request; `id_prefix` starts tool call ids.
fn decide<'a>(shared: &'a Shared, conv: &Conversation, id_prefix: &str) -> Decision<'a> {
    if conv.tools.is_empty() {
        // aider offers no tools: it edits files by answering in its "whole" edit format,
        // the path on a line of its own, then the file's content fenced.
        if let Mode::Write {
            file,
            content,
            final_text,
        } = &shared.mode
            && conv.body.to_string().contains("file listing")
        {
            return Decision::text(&format!("{final_text}\n\n{file}\n```\n{content}```\n"));
        }
        return Decision::text(SIDE_TEXT);
    }
    let (file, content, final_text) = match &shared.mode {
        Mode::Write {
            file,
            content,
            final_text,
        } => (file, content, final_text),
        Mode::AskThenWrite {
            question,
            nudge_marker,
            file,
            content,
            final_text,
        } => {
            let marker = nudge_marker.to_lowercase();
            if !conv
                .user_texts
                .iter()
                .any(|t| t.to_lowercase().contains(&marker))
            {
                return Decision::text(question);
            }
            (file, content, final_text)
        }
        Mode::Script(steps) => return scripted(shared, steps, conv, id_prefix),
        Mode::Fail { .. } => unreachable!("failures are answered before the turn logic"),
    };
    if conv.after_tool_result {
        return Decision::text(final_text);
    }
    match write_call(conv, file, content) {
        Some((name, kind, args)) => Decision::whole(Reply::Calls(vec![ToolCall {
            id: format!("{id_prefix}{}", next_id(shared)),
            name,
            kind,
            args,
        }])),
        None => Decision::text(final_text),
    }
}

/// Takes the script's next step; steps are shared by all connections.
fn scripted<'a>(
    shared: &Shared,
    steps: &'a [Step],
    conv: &Conversation,
    id_prefix: &str,
) -> Decision<'a> {
    let at = shared.next_step.fetch_add(1, Ordering::SeqCst);
    match steps.get(at) {
        None => Decision::text(SCRIPT_DONE),
        Some(Step::Text(text)) => Decision::text(text),
        Some(Step::Tools(calls)) => Decision::whole(Reply::Calls(
            calls
                .iter()
                .map(|(name, args)| ToolCall {
                    id: format!("{id_prefix}{}", next_id(shared)),
                    name: name.clone(),
                    kind: conv.offered(name).unwrap_or(ToolKind::Function),
                    args: args.clone(),
                })
                .collect(),
        )),
        Some(Step::Fail {
            status,
            retry_after,
            code,
        }) => Decision::Fail(Failure {
            status: *status,
            retry_after: *retry_after,
            code: code.as_deref(),
            rate_limit_headers: true,
        }),
        Some(Step::Cut) => Decision::Answer(Reply::Text(CUT_TEXT.to_owned()), Delivery::Cut),
        Some(Step::Malformed) => {
            Decision::Answer(Reply::Text(MALFORMED_TEXT.to_owned()), Delivery::Malformed)
        }
        Some(Step::Raw {
            status,
            content_type,
            body,
        }) => Decision::Raw(*status, content_type, body),
    }
}

/// The offered tool that writes `content` to `file`, with its arguments: a shell tool
/// if any, else a write tool with an absolute path.
fn write_call(conv: &Conversation, file: &str, content: &str) -> Option<(String, ToolKind, Value)> {
    let cmd = format!(
        "printf '%s' {} > {}",
        shell_quote(content),
        shell_quote(file)
    );
    let shells = [
        ("Bash", json!({"command": cmd, "description": "write file"})),
        ("exec_command", json!({"cmd": cmd})),
        ("shell", json!({"command": ["bash", "-lc", cmd]})),
        ("local_shell", json!({"command": ["bash", "-lc", cmd]})),
        (
            "run_shell_command",
            json!({"command": cmd, "description": "write file"}),
        ),
        ("bash", json!({"command": cmd, "description": "write file"})),
    ];
    for (name, args) in shells {
        if let Some(kind) = conv.offered(name) {
            return Some((name.to_owned(), kind, args));
        }
    }
    // Write tools want an absolute path; without a known directory the relative one is
    // passed and the tool decides.
    let path = match working_directory(conv.body) {
        Some(dir) => std::path::Path::new(&dir).join(file).display().to_string(),
        None => file.to_owned(),
    };
    let writers = [
        ("Write", json!({"file_path": path, "content": content})),
        ("write_file", json!({"file_path": path, "content": content})),
        ("write", json!({"filePath": path, "content": content})),
    ];
    writers
        .into_iter()
        .find_map(|(name, args)| conv.offered(name).map(|kind| (name.to_owned(), kind, args)))
}

/// `s` in single quotes for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The agent's working directory as its prompt states it: after a known phrase (any
/// case), the rest of that line, or the first item of a list starting on the next line
/// (Gemini CLI), when that is an absolute path.
fn working_directory(body: &Value) -> Option<String> {
    // Claude Code and opencode say "working directory: ", Qwen Code "I'm currently
    // working in ...", Gemini CLI lists "Workspace Directories", Codex has `<cwd>`.
    const PHRASES: [&str; 6] = [
        "working directory: ",
        "current working directory is ",
        "i'm currently working in the directory: ",
        "workspace directories:**",
        "cwd: ",
        "<cwd>",
    ];
    let mut strings = Vec::new();
    collect_strings(body, &mut strings);
    PHRASES.iter().find_map(|phrase| {
        strings.iter().find_map(|s| {
            // ASCII lowercasing keeps byte offsets, so `at` indexes `s` too.
            let lower = s.to_ascii_lowercase();
            lower.match_indices(phrase).find_map(|(at, _)| {
                let rest = &s[at + phrase.len()..];
                let line = rest.lines().map(str::trim).find(|l| !l.is_empty())?;
                let line = line.trim_start_matches("- ").trim_end_matches("</cwd>");
                line.starts_with('/').then(|| line.trim().to_owned())
            })
        })
    })
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// `s` cut into at most `n` non-empty pieces on character boundaries.
fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n).max(1);
    let mut out: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// The text of a message's content: a string, or the `text` of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An offered tool of the common kind.
fn function(name: &str) -> (String, ToolKind) {
    (name.to_owned(), ToolKind::Function)
}

fn wants_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

fn model_name(body: &Value) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or(MODEL)
        .to_owned()
}

fn next_id(shared: &Shared) -> u64 {
    shared.next_id.fetch_add(1, Ordering::SeqCst)
}

fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod script_tests;
#[cfg(test)]
mod tests;
