//! A scripted LLM server on loopback for tests that run the real coding-agent CLIs.
//!
//! It speaks four vendors' wire protocols over hand-written HTTP/1.1 (keep-alive,
//! chunked or sized request bodies, one chunk per SSE event in replies): Anthropic
//! Messages, OpenAI Chat Completions, OpenAI Responses and Gemini. Every request is
//! recorded. The answers follow a [`Mode`]: a tool call that writes a file, then a final
//! text once the conversation carries the tool's result; or an error status for every
//! model request. It never reaches the network and needs no API key.

#![allow(dead_code)]

mod anthropic;
mod chat;
mod gemini;
mod http;
mod responses;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{Value, json};

use self::anthropic::anthropic;
use self::chat::chat;
use self::gemini::gemini;
use self::http::{Response, serve_connection};
use self::responses::responses;

/// Fixed usage reported by every model response.
const INPUT_TOKENS: u64 = 100;
const OUTPUT_TOKENS: u64 = 20;
/// The answer to side requests (no tools offered: titles, topic detection).
const SIDE_TEXT: &str = "Test title";
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
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
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

fn route(request: &Recorded, shared: &Shared) -> Response {
    let path = request.path.split('?').next().unwrap_or("");
    let body = &request.body;
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
        ("POST", p) if p.ends_with("/messages") => {
            model_reply(shared, Protocol::Anthropic, || anthropic(shared, body))
        }
        ("POST", p) if p.ends_with("/chat/completions") => {
            model_reply(shared, Protocol::OpenAi, || chat(shared, body))
        }
        ("POST", p) if p.ends_with("/responses") => {
            model_reply(shared, Protocol::OpenAi, || responses(shared, body))
        }
        ("POST", p) if p.starts_with("/v1beta/models/") => {
            let (model, action) = p["/v1beta/models/".len()..]
                .split_once(':')
                .unwrap_or(("", ""));
            match action {
                "countTokens" => Response::json(200, json!({"totalTokens": 10})),
                "generateContent" | "streamGenerateContent" => {
                    let stream = action == "streamGenerateContent";
                    model_reply(shared, Protocol::Gemini, || {
                        gemini(shared, body, model, stream)
                    })
                }
                _ => not_found(p),
            }
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

/// Answers a model request: the mode's error, or what `answer` builds.
fn model_reply(shared: &Shared, protocol: Protocol, answer: impl FnOnce() -> Response) -> Response {
    match shared.mode {
        Mode::Fail {
            status,
            retry_after,
        } => failure(protocol, status, retry_after),
        _ => answer(),
    }
}

/// The vendor's error body for `status`, with `retry-after` when given.
fn failure(protocol: Protocol, status: u16, retry_after: Option<u64>) -> Response {
    let (anthropic_type, openai_type, openai_code, gemini_status) = match status {
        400 => (
            "invalid_request_error",
            "invalid_request_error",
            "invalid_request",
            "INVALID_ARGUMENT",
        ),
        401 => (
            "authentication_error",
            "invalid_request_error",
            "invalid_api_key",
            "UNAUTHENTICATED",
        ),
        403 => (
            "permission_error",
            "invalid_request_error",
            "permission_denied",
            "PERMISSION_DENIED",
        ),
        404 => (
            "not_found_error",
            "invalid_request_error",
            "model_not_found",
            "NOT_FOUND",
        ),
        429 => (
            "rate_limit_error",
            "requests",
            "rate_limit_exceeded",
            "RESOURCE_EXHAUSTED",
        ),
        503 | 529 => (
            "overloaded_error",
            "server_error",
            "overloaded",
            "UNAVAILABLE",
        ),
        _ => ("api_error", "server_error", "server_error", "INTERNAL"),
    };
    let message = format!("scripted failure: HTTP {status}");
    let body = match protocol {
        Protocol::Anthropic => json!({
            "type": "error",
            "error": {"type": anthropic_type, "message": message},
        }),
        Protocol::OpenAi => json!({
            "error": {"message": message, "type": openai_type, "param": null, "code": openai_code},
        }),
        Protocol::Gemini => {
            let details = match retry_after {
                Some(secs) => json!([{
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{secs}s"),
                }]),
                None => json!([]),
            };
            json!({"error": {
                "code": status, "message": message, "status": gemini_status, "details": details,
            }})
        }
    };
    let mut response = Response::json(status, body);
    if let Some(secs) = retry_after {
        response
            .headers
            .push(("retry-after".to_owned(), secs.to_string()));
    }
    response
}

// ---------------------------------------------------------------------------------------
// Turn logic, common to the protocols

/// What the scripted model says in one response.
enum Reply {
    Text(String),
    Call(ToolCall),
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

/// Decides the reply to a model request; `id_prefix` starts the tool call id.
fn decide(shared: &Shared, conv: &Conversation, id_prefix: &str) -> Reply {
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
            return Reply::Text(format!("{final_text}\n\n{file}\n```\n{content}```\n"));
        }
        return Reply::Text(SIDE_TEXT.to_owned());
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
                return Reply::Text(question.clone());
            }
            (file, content, final_text)
        }
        Mode::Fail { .. } => unreachable!("failures are answered before the turn logic"),
    };
    if conv.after_tool_result {
        return Reply::Text(final_text.clone());
    }
    match write_call(conv, file, content) {
        Some((name, kind, args)) => Reply::Call(ToolCall {
            id: format!(
                "{id_prefix}{}",
                shared.next_id.fetch_add(1, Ordering::SeqCst)
            ),
            name,
            kind,
            args,
        }),
        None => Reply::Text(final_text.clone()),
    }
}

/// The offered tool that writes `content` to `file`, with its arguments: a shell tool
/// if any, else a write tool with an absolute path.
fn write_call(conv: &Conversation, file: &str, content: &str) -> Option<(String, ToolKind, Value)> {
    let offered = |name: &str| conv.tools.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
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
        if let Some(kind) = offered(name) {
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
        .find_map(|(name, args)| offered(name).map(|kind| (name.to_owned(), kind, args)))
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
mod tests;
