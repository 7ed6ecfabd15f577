//! A raw HTTP/1.1 client for testing the scripted server: it reads exactly what the
//! server wrote (status, headers, each chunk) and notices a reply cut short. Also the
//! model requests of each protocol, as the tests send them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use super::LlmServer;

/// A response as the raw test client read it.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    /// The body; for a chunked reply, its chunks joined.
    pub(super) body: String,
    /// The chunks of a chunked reply, in order.
    pub(super) chunks: Vec<String>,
    /// The body ended as HTTP says it should: the terminating chunk, or as many bytes
    /// as `content-length` promised. False when the connection closed first.
    pub(super) complete: bool,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// The SSE events: `event:` name (if any) and `data:` (as a string when it is not
    /// JSON, like `[DONE]`).
    pub(super) fn events(&self) -> Vec<(Option<String>, Value)> {
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

    pub(super) fn datas(&self) -> Vec<Value> {
        self.events().into_iter().map(|(_, d)| d).collect()
    }

    /// Each event's `data:` line as sent.
    pub(super) fn raw_datas(&self) -> Vec<&str> {
        self.chunks
            .iter()
            .filter_map(|chunk| chunk.lines().find_map(|l| l.strip_prefix("data: ")))
            .collect()
    }
}

/// Sends one request on a new connection and reads the whole response.
pub(super) fn send(server: &LlmServer, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let mut conn = Conn::open(server);
    conn.send(method, path, body)
}

/// A keep-alive client connection.
pub(super) struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub(super) fn open(server: &LlmServer) -> Conn {
        let stream = TcpStream::connect(server.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    pub(super) fn send(&mut self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        let body = body.map(Value::to_string).unwrap_or_default();
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send_raw(raw.as_bytes(), method == "HEAD")
    }

    pub(super) fn send_raw(&mut self, raw: &[u8], head: bool) -> Answer {
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
            complete: true,
        };
        if head {
            return answer;
        }
        if answer.header("transfer-encoding") == Some("chunked") {
            answer.complete = self.read_chunks(&mut answer.chunks);
            answer.body = answer.chunks.concat();
        } else {
            let len: usize = answer.header("content-length").unwrap().parse().unwrap();
            let mut body = Vec::new();
            // A timeout or reset reads as an early end, like a close.
            let _ = (&mut self.reader).take(len as u64).read_to_end(&mut body);
            answer.complete = body.len() == len;
            answer.body = String::from_utf8(body).unwrap();
        }
        answer
    }

    /// Reads chunks into `chunks`; whether the terminating chunk came before the
    /// connection closed.
    fn read_chunks(&mut self, chunks: &mut Vec<String>) -> bool {
        loop {
            let mut size = String::new();
            match self.reader.read_line(&mut size) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            if self.reader.read_exact(&mut chunk).is_err() {
                return false;
            }
            if size == 0 {
                return true;
            }
            chunk.truncate(size);
            chunks.push(String::from_utf8(chunk).unwrap());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Requests

/// A Messages request offering the tools named, stating a working directory.
pub(super) fn anthropic_request(messages: Value, tools: &[&str], stream: bool) -> Value {
    let tools: Vec<Value> = tools.iter().map(|n| json!({"name": n})).collect();
    json!({
        "model": "claude-test", "stream": stream, "max_tokens": 100,
        "system": [
            {"type": "text", "text": "Env:\n - Primary working directory: /tmp/proj \n"},
        ],
        "messages": messages, "tools": tools,
    })
}

/// A Chat Completions request offering the function tools named, usage included when
/// streamed.
pub(super) fn chat_request(messages: Value, tools: &[&str], stream: bool) -> Value {
    let tools: Vec<Value> = tools
        .iter()
        .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {}}}))
        .collect();
    json!({
        "model": "gpt-test", "messages": messages, "tools": tools, "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

/// A Responses request offering `tools` as given.
pub(super) fn responses_request(input: Value, tools: Value, stream: bool) -> Value {
    json!({"model": "codex-test", "instructions": "be brief", "input": input,
           "tools": tools, "stream": stream})
}

/// A Gemini request declaring the functions named, stating a working directory.
pub(super) fn gemini_request(contents: Value, tools: &[&str]) -> Value {
    let decls: Vec<Value> = tools.iter().map(|n| json!({"name": n})).collect();
    json!({
        "contents": contents,
        "systemInstruction": {"parts": [
            {"text": "I'm currently working in the directory: /home/u/p\nBe good."},
        ]},
        "tools": [{"functionDeclarations": decls}],
    })
}

/// Where Gemini streams.
pub(super) const GEMINI_STREAM: &str = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse";

/// The concatenation of the string at `pointer` over events.
pub(super) fn joined(datas: &[Value], pointer: &str) -> String {
    datas
        .iter()
        .filter_map(|d| d.pointer(pointer).and_then(Value::as_str))
        .collect()
}
