//! One model call over HTTP, streamed unless the endpoint says otherwise, with retries:
//! 429, 5xx, dropped connections, cut or malformed streams are retried with exponential
//! backoff and jitter, honouring `retry-after` and the providers' reset headers;
//! authentication errors, exhausted credit and bad requests are not. A request over the
//! model's context window is a [`CallError::ContextOverflow`] with the server's numbers. A
//! streamed request answered with an empty 200 body is sent once more unstreamed (some
//! servers cannot stream what was asked). Every attempt goes through the shared rate
//! limiter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::chat::Reply;
use super::limits::{LimitError, Limiter, now_ms};
use super::provider::Protocol;
use super::sse::SseParser;
use super::stream::{self, Stream};
use super::wire;

/// The most a single wait between attempts lasts.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// Something worth telling the user while a call is under way.
#[derive(Debug, Clone)]
pub enum Notice {
    Retry {
        attempt: u32,
        status: Option<u16>,
        delay: Duration,
        message: String,
    },
    Waiting {
        until_ms: u64,
        why: String,
    },
}

/// A call that failed for good; the message names the provider, the status and what the
/// provider said.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The HTTP client could not be built.
    #[error("cannot set up HTTP: {0}")]
    Setup(#[source] reqwest::Error),
    /// The shared rate limiter refused or failed (a spent daily budget, a broken state file).
    #[error("{provider}: {source}")]
    Limit {
        provider: String,
        #[source]
        source: LimitError,
    },
    /// A failure not worth retrying: a rejected key or request, exhausted credit.
    #[error("{provider}: {}{message}", http(*status))]
    Refused {
        provider: String,
        /// The HTTP status, `None` when the connection or the stream failed.
        status: Option<u16>,
        message: String,
    },
    /// The server refused the request as longer than the model's context window; the
    /// numbers are the server's when it gave them.
    #[error("{provider}: HTTP {status}: {message}")]
    ContextOverflow {
        provider: String,
        status: u16,
        message: String,
        /// Tokens the server counted in the request.
        prompt_tokens: Option<u64>,
        /// The model's context window, in tokens.
        context: Option<u64>,
    },
    /// Every attempt failed; the last failure is the one named.
    #[error("{provider}: {}{message} (gave up after {attempts} attempts)", http(*status))]
    GaveUp {
        provider: String,
        status: Option<u16>,
        message: String,
        attempts: u32,
    },
}

/// `HTTP 429: ` before a server's message; nothing before a connection's or a stream's.
fn http(status: Option<u16>) -> String {
    status.map(|s| format!("HTTP {s}: ")).unwrap_or_default()
}

pub struct Client {
    http: reqwest::Client,
    pub protocol: Protocol,
    /// `anthropic`, `vllm`, ...: named in messages.
    pub provider: String,
    /// The streaming URL and the unstreamed one (they differ for Gemini only).
    url: String,
    whole_url: String,
    headers: Vec<(&'static str, String)>,
    pub max_attempts: u32,
    pub base_delay: Duration,
    /// Whether requests are streamed: not for servers that cannot (`stream = false`), nor
    /// after a streamed request came back empty (later requests go unstreamed at once).
    pub stream: AtomicBool,
}

/// How one attempt failed.
struct Failure {
    status: Option<u16>,
    message: String,
    retry: bool,
    /// What the server asked for: retry-after, or the reset of a spent limit.
    wait: Option<Duration>,
    /// HTTP 200 with nothing in the body.
    empty: bool,
    /// The request was over the context window: (prompt tokens, window), as known.
    overflow: Option<(Option<u64>, Option<u64>)>,
}

impl Failure {
    fn new(status: Option<u16>, message: String, retry: bool) -> Failure {
        Failure {
            status,
            message,
            retry,
            wait: None,
            empty: false,
            overflow: None,
        }
    }
}

/// What an empty 200 says, and where to look.
const EMPTY_BODY: &str =
    "HTTP 200 with an empty body; the server may have rejected the request; see its log";

impl Client {
    pub fn new(
        protocol: Protocol,
        provider: &str,
        base_url: &str,
        model: &str,
        key: Option<&str>,
    ) -> Result<Client, CallError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("git-massgen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(CallError::Setup)?;
        Ok(Client {
            http,
            protocol,
            provider: provider.to_owned(),
            url: wire::url(protocol, base_url, model, true),
            whole_url: wire::url(protocol, base_url, model, false),
            headers: wire::auth_headers(protocol, key),
            max_attempts: 5,
            base_delay: Duration::from_millis(1000),
            stream: AtomicBool::new(true),
        })
    }

    /// Sends `body` (a streaming request, as [`wire::body`] builds it) until a complete
    /// reply arrives or a failure is final.
    pub async fn complete(
        &self,
        body: &Value,
        limiter: Option<&Limiter>,
        estimate: u64,
        notice: &mut (dyn FnMut(Notice) + Send),
    ) -> Result<Reply, CallError> {
        let mut last: Option<Failure> = None;
        let mut stream = self.stream.load(Ordering::Relaxed);
        let mut whole_body = None;
        let mut attempt = 0;
        while attempt < self.max_attempts.max(1) {
            attempt += 1;
            let permit = match limiter {
                Some(l) => {
                    let mut on_wait = |until_ms: u64, why: &str| {
                        notice(Notice::Waiting {
                            until_ms,
                            why: why.to_owned(),
                        })
                    };
                    Some(l.acquire(estimate, &mut on_wait).await.map_err(|source| {
                        CallError::Limit {
                            provider: self.provider.clone(),
                            source,
                        }
                    })?)
                }
                None => None,
            };
            let sent = if stream {
                self.attempt(body).await
            } else {
                let whole = whole_body.get_or_insert_with(|| {
                    let mut b = body.clone();
                    wire::unstreamed(&mut b);
                    b
                });
                self.attempt_whole(whole).await
            };
            let failure = match sent {
                Ok(reply) => {
                    // A server that reports no usage keeps the estimate counted.
                    if let (Some(p), Some(used)) = (permit, reply.usage) {
                        p.done(used.input + used.output);
                    }
                    return Ok(reply);
                }
                Err(f) => f,
            };
            // An HTTP error generated nothing: it costs no tokens. A broken stream may
            // have; its estimate stays counted.
            match permit {
                Some(p) if failure.status.is_some() => p.done(0),
                other => drop(other),
            }
            if failure.empty && stream {
                // Some servers fail a streamed request they cannot serve with an empty
                // 200 (llama-cpp-python with `tool_choice: "auto"`); sending the same
                // stream again would fail the same way. Once, unstreamed, not counted.
                stream = false;
                self.stream.store(false, Ordering::Relaxed);
                notice(Notice::Retry {
                    attempt,
                    status: Some(200),
                    delay: Duration::ZERO,
                    message: format!("{EMPTY_BODY}; asking again without streaming"),
                });
                attempt -= 1;
                continue;
            }
            if let (Some((prompt_tokens, context)), Some(status)) =
                (failure.overflow, failure.status)
            {
                return Err(CallError::ContextOverflow {
                    provider: self.provider.clone(),
                    status,
                    message: failure.message,
                    prompt_tokens,
                    context,
                });
            }
            if !failure.retry {
                return Err(CallError::Refused {
                    provider: self.provider.clone(),
                    status: failure.status,
                    message: failure.message,
                });
            }
            if attempt == self.max_attempts {
                last = Some(failure);
                break;
            }
            let backoff = self.base_delay.saturating_mul(1 << (attempt - 1).min(10));
            let jittered = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
            // A server's own wait is honoured exactly, plus a little jitter so that agents
            // told the same time do not return at once.
            let delay = failure.wait.map_or(jittered, |w| {
                w + Duration::from_millis(fastrand::u64(0..200))
            });
            let delay = delay.min(MAX_DELAY);
            if let (Some(l), Some(w)) = (limiter, failure.wait) {
                // Everyone on this key holds back as long as this process will.
                l.block_until(now_ms().saturating_add(w.min(MAX_DELAY).as_millis() as u64));
            }
            notice(Notice::Retry {
                attempt,
                status: failure.status,
                delay,
                message: failure.message.clone(),
            });
            tokio::time::sleep(delay).await;
            last = Some(failure);
        }
        let last = last.expect("every attempt returns or records its failure");
        Err(CallError::GaveUp {
            provider: self.provider.clone(),
            status: last.status,
            message: last.message,
            attempts: self.max_attempts,
        })
    }

    async fn attempt(&self, body: &Value) -> Result<Reply, Failure> {
        let resp = self.send(&self.url, body).await?;
        let mut stream = Stream::new(self.protocol);
        let mut sse = SseParser::default();
        let mut bytes = resp.bytes_stream();
        let stream_failure = |message: String| Failure::new(None, message, true);
        let mut received = 0;
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk
                .map_err(|e| stream_failure(format!("the stream broke: {}", error_chain(&e))))?;
            received += chunk.len();
            for event in sse.feed(&chunk) {
                stream
                    .event(&event)
                    .map_err(|e| stream_failure(e.to_string()))?;
            }
        }
        if received == 0 {
            return Err(Failure {
                empty: true,
                ..Failure::new(Some(200), EMPTY_BODY.into(), false)
            });
        }
        if let Some(event) = sse.finish() {
            stream
                .event(&event)
                .map_err(|e| stream_failure(e.to_string()))?;
        }
        stream.finish().map_err(in_stream_failure)
    }

    /// One unstreamed attempt: the whole JSON reply at once.
    async fn attempt_whole(&self, body: &Value) -> Result<Reply, Failure> {
        let resp = self.send(&self.whole_url, body).await?;
        let text = resp.text().await.map_err(|e| {
            Failure::new(
                None,
                format!("the response broke: {}", error_chain(&e)),
                true,
            )
        })?;
        if text.trim().is_empty() {
            return Err(Failure {
                empty: true,
                ..Failure::new(Some(200), EMPTY_BODY.into(), false)
            });
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            Failure::new(
                None,
                format!(
                    "the response is not JSON: {e} in `{}`",
                    stream::cut(&text, 80)
                ),
                true,
            )
        })?;
        Stream::whole(self.protocol, &value).map_err(in_stream_failure)
    }

    /// Posts `body` to `url`: the response when its status is a success, else the
    /// failure its status and body say.
    async fn send(&self, url: &str, body: &Value) -> Result<reqwest::Response, Failure> {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in &self.headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::new(
                None,
                format!("connection failed: {}", error_chain(&e)),
                true,
            )
        })?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            return Err(self.classify(status, &headers, &text));
        }
        Ok(resp)
    }

    fn classify(&self, status: u16, headers: &HeaderMap, body: &str) -> Failure {
        let mut message = stream::error_message(body);
        if message.is_empty() {
            message = "(no message)".into();
        }
        let lower = body.to_lowercase();
        let wait = retry_after(headers)
            .or_else(|| spent_limit_reset(headers))
            .or_else(|| gemini_retry_delay(body));
        if matches!(status, 400 | 413)
            && let Some(overflow) = super::context::overflow(body)
        {
            return Failure {
                overflow: Some(overflow),
                ..Failure::new(Some(status), message, false)
            };
        }
        let retry = match status {
            // Exhausted credit comes as a 429 too; waiting does not refill it.
            429 if lower.contains("insufficient_quota") => {
                message = format!("{message}; the account has no credit left");
                false
            }
            // llama-server refuses tools without a chat template that has them.
            500 if lower.contains("--jinja") => {
                message = format!(
                    "{message}; start llama-server with --jinja (and a chat template with tool support)"
                );
                false
            }
            408 | 409 | 429 | 500..=599 => true,
            401 | 403 => {
                message = format!("{message}; check the API key");
                false
            }
            400 if self.provider == "vllm" && lower.contains("tool") => {
                message = format!(
                    "{message}; a vLLM server needs tool calling enabled: start it with --enable-auto-tool-choice --tool-call-parser <parser>"
                );
                false
            }
            _ => false,
        };
        Failure {
            wait,
            ..Failure::new(Some(status), message, retry)
        }
    }
}

/// A stream's or a whole reply's failure. An error the provider reported inside it is only
/// worth retrying when it says the server is busy or broken; a rejected request stays
/// rejected.
fn in_stream_failure(e: stream::StreamError) -> Failure {
    let mut f = Failure::new(None, e.to_string(), true);
    if matches!(e, stream::StreamError::Provider(_)) {
        let lower = f.message.to_lowercase();
        f.retry = [
            "overload",
            "server_error",
            "api_error",
            "internal",
            "unavailable",
            "rate",
            "capacity",
            "timeout",
        ]
        .iter()
        .any(|w| lower.contains(w));
    }
    f
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

/// `retry-after` in seconds (or an HTTP date), or `retry-after-ms`.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_millis(ms.max(0.0) as u64));
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs.max(0.0)).ok();
    }
    let at = httpdate_to_ms(v)?;
    Some(Duration::from_millis(at.saturating_sub(now_ms())))
}

/// The reset time of a limit the server says is spent (remaining = 0): Anthropic's
/// `anthropic-ratelimit-*-reset` (RFC 3339) or OpenAI's `x-ratelimit-reset-*` (`6m0s`).
fn spent_limit_reset(h: &HeaderMap) -> Option<Duration> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    let mut best: Option<Duration> = None;
    for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
        if get(&format!("anthropic-ratelimit-{kind}-remaining")) == Some("0")
            && let Some(at) = get(&format!("anthropic-ratelimit-{kind}-reset"))
            && let Ok(t) = humantime::parse_rfc3339_weak(at)
        {
            let d = t
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            best = Some(best.map_or(d, |b| b.max(d)));
        }
        if get(&format!("x-ratelimit-remaining-{kind}")) == Some("0")
            && let Some(d) = get(&format!("x-ratelimit-reset-{kind}")).and_then(go_duration)
        {
            best = Some(best.map_or(d, |b| b.max(d)));
        }
    }
    best
}

/// Gemini's `RetryInfo` in a 429 body: `{"error": {"details": [{"retryDelay": "3s"}]}}`.
fn gemini_retry_delay(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    v["error"]["details"]
        .as_array()?
        .iter()
        .find_map(|d| d["retryDelay"].as_str())
        .and_then(go_duration)
}

/// `1h2m3.5s`, `12ms`, `6m0s`.
pub fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += n * unit;
        any = true;
    }
    if !num.is_empty() {
        return None;
    }
    if !any {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Milliseconds since the epoch of an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`).
fn httpdate_to_ms(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)?
        + 1;
    let rfc = format!("{year}-{month:02}-{:0>2}T{time}Z", day);
    let t = humantime::parse_rfc3339_weak(&rfc).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration("5"), None);
    }

    #[test]
    fn gemini_retry_info() {
        let body = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"3s"}]}}"#;
        assert_eq!(gemini_retry_delay(body), Some(Duration::from_secs(3)));
        assert_eq!(gemini_retry_delay("{}"), None);
    }

    #[test]
    fn call_errors_name_the_provider_and_the_status() {
        let refused = CallError::Refused {
            provider: "anthropic".into(),
            status: Some(401),
            message: "invalid x-api-key; check the API key".into(),
        };
        assert_eq!(
            refused.to_string(),
            "anthropic: HTTP 401: invalid x-api-key; check the API key"
        );
        let gave_up = CallError::GaveUp {
            provider: "vllm".into(),
            status: None,
            message: "the stream broke".into(),
            attempts: 5,
        };
        assert_eq!(
            gave_up.to_string(),
            "vllm: the stream broke (gave up after 5 attempts)"
        );
    }

    #[test]
    fn the_vllm_hint_is_for_vllm_only() {
        let body = r#"{"error":{"message":"\"auto\" tool choice requires --enable-auto-tool-choice","type":"BadRequestError"}}"#;
        let client = |provider| {
            Client::new(
                Protocol::OpenaiChat,
                provider,
                "http://127.0.0.1:1",
                "m",
                None,
            )
            .unwrap()
        };
        let vllm = client("vllm").classify(400, &HeaderMap::new(), body);
        assert!(
            vllm.message.contains("--tool-call-parser"),
            "{}",
            vllm.message
        );
        for other in ["openai", "llamacpp", "ollama", "openrouter"] {
            let f = client(other).classify(400, &HeaderMap::new(), body);
            assert!(!f.message.contains("vLLM"), "{other}: {}", f.message);
            assert!(!f.retry);
        }
        let jinja = client("llamacpp").classify(
            500,
            &HeaderMap::new(),
            r#"{"error":{"code":500,"message":"tools param requires --jinja flag","type":"server_error"}}"#,
        );
        assert!(
            jinja.message.contains("start llama-server with --jinja"),
            "{}",
            jinja.message
        );
        assert!(!jinja.retry);
        // A refusal for length is an overflow with the server's numbers, not retried.
        let over = client("llamacpp").classify(
            400,
            &HeaderMap::new(),
            r#"{"error":{"code":400,"message":"request (9093 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9093,"n_ctx":4096}}"#,
        );
        assert_eq!(over.overflow, Some((Some(9093), Some(4096))));
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            httpdate_to_ms("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480_000)
        );
    }
}
