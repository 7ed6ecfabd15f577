//! The vendors' error replies: status, error body and the headers that say when to
//! retry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::Protocol;
use super::http::Response;

/// An error reply to a model request.
pub(super) struct Failure<'a> {
    pub(super) status: u16,
    /// Seconds, sent as `retry-after` (and for Gemini as a `RetryInfo` detail).
    pub(super) retry_after: Option<u64>,
    /// Replaces the vendor's error kind: Anthropic's `error.type`, OpenAI's `error.code`
    /// (and `error.type` too for `insufficient_quota`, as OpenAI sends it), Gemini's
    /// `error.status`.
    pub(super) code: Option<&'a str>,
    /// A 429 also carries the vendor's rate-limit headers (remaining 0, reset soon).
    pub(super) rate_limit_headers: bool,
}

/// How far ahead the rate-limit headers put the reset when no `retry_after` is given.
const DEFAULT_RESET_SECS: u64 = 2;

/// The vendor's error body for the failure, with its headers.
pub(super) fn failure(protocol: Protocol, failure: &Failure) -> Response {
    let Failure {
        status,
        retry_after,
        code,
        rate_limit_headers,
    } = *failure;
    let (anthropic_type, openai_type, openai_code, gemini_status) = kinds(status);
    let message = format!("scripted failure: HTTP {status}");
    let body = match protocol {
        Protocol::Anthropic => json!({
            "type": "error",
            "error": {"type": code.unwrap_or(anthropic_type), "message": message},
        }),
        Protocol::OpenAi => {
            let kind = match code {
                Some("insufficient_quota") => "insufficient_quota",
                _ => openai_type,
            };
            json!({"error": {
                "message": message, "type": kind, "param": null,
                "code": code.unwrap_or(openai_code),
            }})
        }
        Protocol::Gemini => {
            let details = match retry_after {
                Some(secs) => json!([{
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{secs}s"),
                }]),
                None => json!([]),
            };
            json!({"error": {
                "code": status, "message": message,
                "status": code.unwrap_or(gemini_status), "details": details,
            }})
        }
    };
    let mut response = Response::json(status, body);
    if let Some(secs) = retry_after {
        response
            .headers
            .push(("retry-after".to_owned(), secs.to_string()));
    }
    if rate_limit_headers && status == 429 {
        let reset = retry_after.unwrap_or(DEFAULT_RESET_SECS);
        response.headers.extend(rate_limits(protocol, reset));
    }
    response
}

/// The error kinds for `status`: Anthropic's type, OpenAI's type and code, Gemini's
/// status.
fn kinds(status: u16) -> (&'static str, &'static str, &'static str, &'static str) {
    match status {
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
    }
}

/// The request-budget headers of an exhausted limit that resets in `secs` seconds:
/// Anthropic states the reset as an RFC 3339 time, OpenAI as a duration; Gemini sends
/// none.
fn rate_limits(protocol: Protocol, secs: u64) -> Vec<(String, String)> {
    let pairs = match protocol {
        Protocol::Anthropic => {
            // Rounded up: whole seconds that never come before the promised reset.
            let reset = SystemTime::now() + Duration::from_secs(secs);
            let since = reset.duration_since(UNIX_EPOCH).expect("after 1970");
            let whole = since.as_secs() + u64::from(since.subsec_nanos() > 0);
            let reset = UNIX_EPOCH + Duration::from_secs(whole);
            vec![
                ("anthropic-ratelimit-requests-limit", "50".to_owned()),
                ("anthropic-ratelimit-requests-remaining", "0".to_owned()),
                (
                    "anthropic-ratelimit-requests-reset",
                    humantime::format_rfc3339_seconds(reset).to_string(),
                ),
            ]
        }
        Protocol::OpenAi => vec![
            ("x-ratelimit-limit-requests", "60".to_owned()),
            ("x-ratelimit-remaining-requests", "0".to_owned()),
            ("x-ratelimit-reset-requests", format!("{secs}s")),
        ],
        Protocol::Gemini => Vec::new(),
    };
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}
