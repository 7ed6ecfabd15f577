#![allow(clippy::print_stdout, clippy::print_stderr, dead_code)]
//! Built-in agent benchmarks against the loopback server of the tests:
//!
//! 1. the rate limiter's cost per request (acquire + done through the shared state file),
//!    against the bare in-memory decision;
//! 2. the agent loop's cost per turn (request body, streamed reply, tool call, events),
//!    against a bare streamed call to the same server.
//!
//! ```text
//! cargo build --release && cargo bench --bench llm
//! ```
//! `MASSGEN_BENCH_TURNS` (default 200) and `MASSGEN_BENCH_LIMITER_N` (default 2000).

// The tests' own unit tests come along when this is compiled as a test; they are not run.
#[allow(unused_imports)]
#[path = "../tests/it/llm_server/mod.rs"]
mod llm_server;

use std::time::{Duration, Instant};

use git_massgen::llm::client::Client;
use git_massgen::llm::limits::{Limiter, Limits, Window};
use git_massgen::llm::provider::Protocol;
use llm_server::{LlmServer, Mode, Step};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_usize("MASSGEN_BENCH_LIMITER_N", 2000);
    let turns = env_usize("MASSGEN_BENCH_TURNS", 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // 1. Limiter.
    let limits = Limits {
        rpm: Some(1_000_000),
        tpm: Some(u64::MAX / 4),
        rpd: Some(10_000_000),
        max_concurrent: Some(64),
    };
    let mut window = Window::default();
    let start = Instant::now();
    for i in 0..n as u64 {
        let now = 1_000_000 + i;
        let _ = window.decide(&limits, now, i, 1, 100, &|_| true);
        window.grant(now, i, 1, 100);
        window.release(i, Some(120));
    }
    let in_memory = start.elapsed() / n as u32;
    let dir = tempfile::tempdir().unwrap();
    let limiter = Limiter::new(dir.path(), "bench/model", limits);
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            let permit = limiter.acquire(100, &mut |_, _| {}).await.unwrap();
            permit.done(120);
        }
    });
    let shared = start.elapsed() / n as u32;

    // 2. Agent loop against a bare call.
    let server = LlmServer::start(Mode::Script(vec![]));
    let client = Client::new(Protocol::Anthropic, "bench", &server.url(), "m", Some("k")).unwrap();
    let body = serde_json::json!({
        "model": "m", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "finish", "description": "d", "input_schema": {"type": "object"}}],
    });
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..turns {
            client.complete(&body, None, 0, &mut |_| {}).await.unwrap();
        }
    });
    let bare = start.elapsed() / turns as u32;
    drop(server);

    let mut steps: Vec<Step> = (0..turns - 1)
        .map(|_| Step::Tools(vec![("list_files".into(), serde_json::json!({}))]))
        .collect();
    steps.push(Step::Tools(vec![(
        "finish".into(),
        serde_json::json!({"summary": "done"}),
    )]));
    let server = LlmServer::start(Mode::Script(steps));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), "x").unwrap();
    let spec = serde_json::json!({
        "protocol": "anthropic", "provider": "bench", "model": "m", "base_url": server.url(),
        "api_key_env": null, "max_turns": turns + 1, "context_window": null,
        "temperature": null, "max_output_tokens": 100, "system": "s", "prompt": "p",
        "images": [], "limits": {"rpm": null, "tpm": null, "rpd": null, "max_concurrent": null},
        "limits_dir": dir.path(), "price": null, "max_nudges": 0, "nudge": "n",
        "max_attempts": 1, "retry_base_ms": 10, "start_delay_ms": 0,
    });
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let bin = std::env::var("MASSGEN_BENCH_BIN")
        .unwrap_or_else(|_| "target/release/git-massgen".to_owned());
    let bin = std::fs::canonicalize(&bin).expect("build the release binary first");
    let start = Instant::now();
    let out = std::process::Command::new(&bin)
        .args(["llm-agent", "--spec"])
        .arg(&spec_path)
        .current_dir(work.path())
        .output()
        .unwrap();
    let total = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let per_turn = total / turns as u32;

    let us = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    println!("| measurement | per request or turn |");
    println!("|---|---|");
    println!(
        "| limiter decision in memory (`Window`) | {} |",
        us(in_memory)
    );
    println!(
        "| limiter acquire + done through the shared state file | {} |",
        us(shared)
    );
    println!(
        "| bare streamed call to the loopback server (`Client::complete`) | {} |",
        us(bare)
    );
    println!(
        "| agent loop turn (`llm-agent`: body, stream, `list_files`, events; process start included) | {} |",
        us(per_turn)
    );
    println!(
        "| agent loop overhead per turn (turn − bare call) | {} |",
        us(per_turn.saturating_sub(bare))
    );
    eprintln!("({n} limiter requests, {turns} turns)");
}
