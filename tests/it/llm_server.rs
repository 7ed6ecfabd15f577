//! A scripted LLM server on loopback for tests that run the real coding-agent CLIs.
//!
//! It speaks four vendors' wire protocols over hand-written HTTP/1.1 (keep-alive,
//! chunked or sized request bodies, one chunk per SSE event in replies): Anthropic
//! Messages, OpenAI Chat Completions, OpenAI Responses and Gemini. Every request is
//! recorded. The answers follow a [`Mode`]: a tool call that writes a file, then a final
//! text once the conversation carries the tool's result; or an error status for every
//! model request. It never reaches the network and needs no API key.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{Value, json};

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
// HTTP/1.1

/// A reply: JSON (sized), empty, or a stream of SSE events (chunked, one chunk each).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

enum Body {
    Empty,
    Json(Value),
    Events(Vec<String>),
}

impl Response {
    fn json(status: u16, value: Value) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Json(value),
        }
    }

    fn empty() -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    fn events(events: Vec<String>) -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: Body::Events(events),
        }
    }
}

/// Serves requests on one connection until the client closes it or the server stops.
fn serve_connection(stream: TcpStream, shared: &Shared) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok(Some(request)) = read_request(&mut reader, &mut writer) else {
            return;
        };
        shared.requests.lock().expect(LOCK).push(request.clone());
        let response = route(&request, shared);
        let head_only = request.method == "HEAD";
        if write_response(&mut writer, &response, head_only).is_err() {
            return;
        }
        if request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

/// Reads one request; `None` when the client closed the connection between requests.
/// `writer` answers `Expect: 100-continue`.
fn read_request(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
) -> std::io::Result<Option<Recorded>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(invalid("malformed request line"));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed inside the headers"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut request = Recorded {
        method,
        path,
        headers,
        body: Value::Null,
    };
    if request
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        body = read_chunked(reader)?;
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
        body = vec![0; len];
        reader.read_exact(&mut body)?;
    }
    request.body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(Some(request))
}

/// Reads a chunked body, discarding chunk extensions and trailers.
fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn write_response(w: &mut impl Write, response: &Response, head_only: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &response.body {
        Body::Empty => head.push_str("content-length: 0\r\n\r\n"),
        Body::Json(value) => {
            let text = value.to_string();
            head.push_str("content-type: application/json\r\n");
            head.push_str(&format!("content-length: {}\r\n\r\n", text.len()));
            if !head_only {
                head.push_str(&text);
            }
        }
        Body::Events(_) => head.push_str(
            "content-type: text/event-stream\r\ncache-control: no-cache\r\n\
             transfer-encoding: chunked\r\n\r\n",
        ),
    }
    w.write_all(head.as_bytes())?;
    if let (Body::Events(events), false) = (&response.body, head_only) {
        for event in events {
            write!(w, "{:x}\r\n{event}\r\n", event.len())?;
            w.flush()?;
        }
        w.write_all(b"0\r\n\r\n")?;
    }
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// One SSE event: an optional `event:` line and one `data:` line.
fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(event) => format!("event: {event}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
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

// ---------------------------------------------------------------------------------------
// Anthropic Messages

fn anthropic(shared: &Shared, body: &Value) -> Response {
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

// ---------------------------------------------------------------------------------------
// OpenAI Chat Completions

fn chat(shared: &Shared, body: &Value) -> Response {
    let messages = items(body, "messages");
    let conv = Conversation {
        tools: items(body, "tools")
            .iter()
            .map(|t| function(str_field(&t["function"], "name")))
            .collect(),
        after_tool_result: messages
            .last()
            .is_some_and(|m| str_field(m, "role") == "tool"),
        user_texts: messages
            .iter()
            .filter(|m| str_field(m, "role") == "user")
            .map(|m| content_text(&m["content"]))
            .collect(),
        body,
    };
    let reply = decide(shared, &conv, "call_");
    let id = format!("chatcmpl-{}", next_id(shared));
    let model = model_name(body);
    let usage = json!({
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    });
    let finish_reason = match reply {
        Reply::Text(_) => "stop",
        Reply::Call(_) => "tool_calls",
    };
    if !wants_stream(body) {
        let message = match &reply {
            Reply::Text(text) => json!({"role": "assistant", "content": text}),
            Reply::Call(call) => json!({
                "role": "assistant", "content": null,
                "tool_calls": [{"id": call.id, "type": "function", "function":
                    {"name": call.name, "arguments": call.args.to_string()}}],
            }),
        };
        return Response::json(
            200,
            json!({
                "id": id, "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": usage,
            }),
        );
    }
    let chunk = |choices: Value| {
        let data = json!({
            "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": choices,
        });
        sse(None, &data)
    };
    let delta = |delta: Value| chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]));
    let mut events = Vec::new();
    match &reply {
        Reply::Text(text) => {
            for (i, piece) in pieces(text, 2).into_iter().enumerate() {
                events.push(match i {
                    0 => delta(json!({"role": "assistant", "content": piece})),
                    _ => delta(json!({"content": piece})),
                });
            }
        }
        Reply::Call(call) => {
            events.push(delta(json!({
                "role": "assistant",
                "tool_calls": [{"index": 0, "id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": ""}}],
            })));
            for piece in pieces(&call.args.to_string(), 3) {
                events.push(delta(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                ));
            }
        }
    }
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}]),
    ));
    if body["stream_options"]["include_usage"].as_bool() == Some(true) {
        let mut last = json!({
            "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [],
        });
        last["usage"] = usage;
        events.push(sse(None, &last));
    }
    events.push("data: [DONE]\n\n".to_owned());
    Response::events(events)
}

// ---------------------------------------------------------------------------------------
// OpenAI Responses

fn responses(shared: &Shared, body: &Value) -> Response {
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
    let conv = Conversation {
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
    };
    let reply = decide(shared, &conv, "call_");
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
    let item = responses_item(&reply, n);
    let completed = response("completed", json!([item]), usage);
    if !wants_stream(body) {
        return Response::json(200, completed);
    }
    let in_progress = response("in_progress", json!([]), Value::Null);
    Response::events(responses_events(&reply, &item, in_progress, completed))
}

/// The output item holding `reply`, as `response.output_item.done` carries it.
fn responses_item(reply: &Reply, n: u64) -> Value {
    match reply {
        Reply::Text(text) => json!({
            "type": "message", "id": format!("msg_{n}"), "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }),
        Reply::Call(call) => match call.kind {
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
        },
    }
}

/// The stream of one response holding `item`, each event typed and numbered.
fn responses_events(reply: &Reply, item: &Value, in_progress: Value, done: Value) -> Vec<String> {
    let mut events = Vec::new();
    let mut emit = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(events.len());
        events.push(sse(Some(kind), &data));
    };
    emit("response.created", json!({"response": in_progress}));
    emit("response.in_progress", json!({"response": in_progress}));
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
        json!({"output_index": 0, "item": added}),
    );
    let item_id = &item["id"];
    match reply {
        Reply::Text(text) => {
            let place = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
            let at = |fields| with(&place, fields);
            let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
            emit("response.content_part.added", at(json!({"part": part("")})));
            for piece in pieces(text, 2) {
                emit("response.output_text.delta", at(json!({"delta": piece})));
            }
            emit("response.output_text.done", at(json!({"text": text})));
            emit(
                "response.content_part.done",
                at(json!({"part": part(text)})),
            );
        }
        Reply::Call(call) => {
            // Arguments and custom input arrive in pieces; a local shell call comes whole.
            let streamed = match call.kind {
                ToolKind::Function => Some(("response.function_call_arguments", "arguments")),
                ToolKind::Custom => Some(("response.custom_tool_call_input", "input")),
                ToolKind::LocalShell => None,
            };
            if let Some((prefix, field)) = streamed {
                let whole = item[field].as_str().expect("a text field");
                let place = json!({"item_id": item_id, "output_index": 0});
                let at = |fields| with(&place, fields);
                for piece in pieces(whole, 3) {
                    emit(&format!("{prefix}.delta"), at(json!({"delta": piece})));
                }
                emit(&format!("{prefix}.done"), at(json!({field: whole})));
            }
        }
    }
    emit(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
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

// ---------------------------------------------------------------------------------------
// Gemini

fn gemini(shared: &Shared, body: &Value, model: &str, stream: bool) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A response as the raw test client read it.
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        /// The body; for a chunked reply, its chunks joined.
        body: String,
        /// The chunks of a chunked reply, in order.
        chunks: Vec<String>,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_str(&self.body).expect("a JSON body")
        }

        /// The SSE events: `event:` name (if any) and `data:` (`[DONE]` as a string).
        fn events(&self) -> Vec<(Option<String>, Value)> {
            assert_eq!(self.header("content-type"), Some("text/event-stream"));
            self.chunks
                .iter()
                .map(|chunk| {
                    assert!(chunk.ends_with("\n\n"), "one event per chunk: {chunk:?}");
                    let event = chunk.lines().find_map(|l| l.strip_prefix("event: "));
                    let data = chunk
                        .lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .expect("a data line");
                    let data = serde_json::from_str(data).unwrap_or(json!(data));
                    (event.map(str::to_owned), data)
                })
                .collect()
        }

        fn datas(&self) -> Vec<Value> {
            self.events().into_iter().map(|(_, d)| d).collect()
        }
    }

    /// Sends one request on a new connection and reads the whole response.
    fn send(server: &LlmServer, method: &str, path: &str, body: Option<&Value>) -> Answer {
        let mut conn = Conn::open(server);
        conn.send(method, path, body)
    }

    /// A keep-alive client connection.
    struct Conn {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
    }

    impl Conn {
        fn open(server: &LlmServer) -> Conn {
            let stream = TcpStream::connect(server.addr).expect("connect");
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            Conn {
                writer: stream.try_clone().unwrap(),
                reader: BufReader::new(stream),
            }
        }

        fn send(&mut self, method: &str, path: &str, body: Option<&Value>) -> Answer {
            let body = body.map(Value::to_string).unwrap_or_default();
            let raw = format!(
                "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            self.send_raw(raw.as_bytes(), method == "HEAD")
        }

        fn send_raw(&mut self, raw: &[u8], head: bool) -> Answer {
            self.writer.write_all(raw).unwrap();
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
            let mut answer = Answer {
                status,
                headers,
                body: String::new(),
                chunks: Vec::new(),
            };
            if head {
                return answer;
            }
            if answer.header("transfer-encoding") == Some("chunked") {
                loop {
                    let mut size = String::new();
                    self.reader.read_line(&mut size).unwrap();
                    let size = usize::from_str_radix(size.trim(), 16).unwrap();
                    let mut chunk = vec![0; size + 2];
                    self.reader.read_exact(&mut chunk).unwrap();
                    if size == 0 {
                        break;
                    }
                    chunk.truncate(size);
                    answer.chunks.push(String::from_utf8(chunk).unwrap());
                }
                answer.body = answer.chunks.concat();
            } else {
                let len: usize = answer.header("content-length").unwrap().parse().unwrap();
                let mut body = vec![0; len];
                self.reader.read_exact(&mut body).unwrap();
                answer.body = String::from_utf8(body).unwrap();
            }
            answer
        }
    }

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

    fn anthropic_request(messages: Value, tools: &[&str], stream: bool) -> Value {
        let tools: Vec<Value> = tools.iter().map(|n| json!({"name": n})).collect();
        json!({
            "model": "claude-test", "stream": stream, "max_tokens": 100,
            "system": [
                {"type": "text", "text": "Env:\n - Primary working directory: /tmp/proj \n"},
            ],
            "messages": messages, "tools": tools,
        })
    }

    fn chat_request(messages: Value, tools: &[&str], stream: bool) -> Value {
        let tools: Vec<Value> = tools
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {}}}))
            .collect();
        json!({
            "model": "gpt-test", "messages": messages, "tools": tools, "stream": stream,
            "stream_options": {"include_usage": true},
        })
    }

    fn responses_request(input: Value, tools: Value, stream: bool) -> Value {
        json!({"model": "codex-test", "instructions": "be brief", "input": input,
               "tools": tools, "stream": stream})
    }

    fn gemini_request(contents: Value, tools: &[&str]) -> Value {
        let decls: Vec<Value> = tools.iter().map(|n| json!({"name": n})).collect();
        json!({
            "contents": contents,
            "systemInstruction": {"parts": [
                {"text": "I'm currently working in the directory: /home/u/p\nBe good."},
            ]},
            "tools": [{"functionDeclarations": decls}],
        })
    }

    const GEMINI_STREAM: &str = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse";

    /// The concatenation of a string field over events.
    fn joined(datas: &[Value], pointer: &str) -> String {
        datas
            .iter()
            .filter_map(|d| d.pointer(pointer).and_then(Value::as_str))
            .collect()
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
}
