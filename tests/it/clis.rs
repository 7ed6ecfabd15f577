//! The real agent CLIs (installed by `scripts/install-clis.sh`) driven by `git massgen run`
//! against the loopback LLM server.

use crate::llm_server::{LlmServer, Mode};

/// Not a test: serves the scripted LLM server for recording a CLI's event stream by hand.
/// `MASSGEN_SERVE=write|ask|401|429 cargo test --test it serve_llm -- --ignored --nocapture`
#[test]
#[ignore]
fn serve_llm() {
    let mode = match std::env::var("MASSGEN_SERVE").as_deref() {
        Ok("ask") => Mode::AskThenWrite {
            question: "Which file name should I use: notes.txt or hello.txt?".into(),
            nudge_marker: "no human".into(),
            file: "hello.txt".into(),
            content: "hello from the tool\n".into(),
            final_text: "I created hello.txt.".into(),
        },
        Ok("401") => Mode::Fail {
            status: 401,
            retry_after: None,
        },
        Ok("429") => Mode::Fail {
            status: 429,
            retry_after: Some(1),
        },
        _ => Mode::Write {
            file: "hello.txt".into(),
            content: "hello from the tool\n".into(),
            final_text: "I created hello.txt.".into(),
        },
    };
    let server = LlmServer::start(mode);
    let name = std::env::var("MASSGEN_SERVE").unwrap_or_else(|_| "write".into());
    std::fs::write(format!("/tmp/llm_server_url.{name}"), server.url()).unwrap();
    println!("serving on {}", server.url());
    let secs = std::env::var("SERVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    std::thread::sleep(std::time::Duration::from_secs(secs));
    for r in server.requests() {
        println!("{} {}", r.method, r.path);
    }
}
