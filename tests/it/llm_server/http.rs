//! HTTP/1.1 for the scripted server: reads requests (keep-alive, `Expect:
//! 100-continue`, sized or chunked bodies) and writes replies, JSON with a length or
//! SSE events chunked one per chunk, whole, cut short or with a first event that does
//! not parse.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::{LOCK, Recorded, Shared, route};

/// A reply: JSON (sized), empty, or a stream of SSE events (chunked, one chunk each).
pub(super) struct Response {
    status: u16,
    pub(super) headers: Vec<(String, String)>,
    body: Body,
    /// Send only part of the body, then close the connection.
    cut: bool,
}

enum Body {
    Empty,
    Json(Value),
    /// Sent as JSON though it is not.
    NotJson(&'static str),
    Events(Vec<String>),
    /// Exact bytes, chunked, with their content type.
    Raw(String, String),
}

/// What a malformed reply sends where JSON belongs.
const NOT_JSON: &str = r#"{"oops"#;

impl Response {
    pub(super) fn json(status: u16, value: Value) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Json(value),
            cut: false,
        }
    }

    pub(super) fn empty() -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: Body::Empty,
            cut: false,
        }
    }

    pub(super) fn raw(status: u16, content_type: &str, body: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Raw(content_type.to_owned(), body.to_owned()),
            cut: false,
        }
    }

    pub(super) fn events(events: Vec<String>) -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: Body::Events(events),
            cut: false,
        }
    }

    /// This reply cut short: the first half of its events (at least one, never all
    /// when there are two or more) or of its JSON, then the connection closes.
    pub(super) fn cut(mut self) -> Response {
        if let Body::Events(events) = &mut self.body {
            events.truncate((events.len() / 2).max(1));
        }
        self.cut = true;
        self
    }

    /// This reply with its first event's data (or its JSON body) replaced by text that
    /// does not parse as JSON.
    pub(super) fn malformed(mut self) -> Response {
        match &mut self.body {
            Body::Events(events) => {
                if let Some(first) = events.first_mut() {
                    let lines: Vec<String> = first
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(|l| {
                            if l.starts_with("data:") {
                                format!("data: {NOT_JSON}")
                            } else {
                                l.to_owned()
                            }
                        })
                        .collect();
                    *first = format!("{}\n\n", lines.join("\n"));
                }
            }
            Body::Json(_) => self.body = Body::NotJson(NOT_JSON),
            Body::Empty | Body::NotJson(_) | Body::Raw(..) => {}
        }
        self
    }
}

/// Serves requests on one connection until the client closes it or the server stops.
pub(super) fn serve_connection(stream: TcpStream, shared: &Shared) {
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
        if response.cut {
            // Our clone in `shared.connections` keeps the socket open unless it is shut
            // down explicitly.
            let _ = writer.shutdown(Shutdown::Both);
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
                // Cut short, the length still promises the whole body.
                let sent = if response.cut {
                    (0..=text.len() / 2)
                        .rev()
                        .find(|&at| text.is_char_boundary(at))
                        .unwrap_or(0)
                } else {
                    text.len()
                };
                head.push_str(&text[..sent]);
            }
        }
        Body::NotJson(text) => {
            head.push_str("content-type: application/json\r\n");
            head.push_str(&format!("content-length: {}\r\n\r\n", text.len()));
            if !head_only {
                head.push_str(text);
            }
        }
        Body::Events(_) => head.push_str(
            "content-type: text/event-stream\r\ncache-control: no-cache\r\n\
             transfer-encoding: chunked\r\n\r\n",
        ),
        Body::Raw(content_type, text) => {
            head.push_str(&format!(
                "content-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
            ));
            if !head_only {
                if !text.is_empty() {
                    head.push_str(&format!("{:x}\r\n{text}\r\n", text.len()));
                }
                head.push_str("0\r\n\r\n");
            }
        }
    }
    w.write_all(head.as_bytes())?;
    if let (Body::Events(events), false) = (&response.body, head_only) {
        for event in events {
            write!(w, "{:x}\r\n{event}\r\n", event.len())?;
            w.flush()?;
        }
        if !response.cut {
            w.write_all(b"0\r\n\r\n")?;
        }
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
pub(super) fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(event) => format!("event: {event}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}
