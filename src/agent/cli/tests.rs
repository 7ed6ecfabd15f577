//! Each preset's parser on event streams recorded from the real CLIs (against the loopback
//! server of the integration tests; see `tests/fixtures/streams/`).

use super::*;
use crate::agent::events::Report;

fn agent(preset: Preset) -> CliAgent {
    CliAgent {
        preset,
        model: Some("test-model".into()),
        bin: preset.name().into(),
        args: vec![],
        base_url: Some("http://127.0.0.1:1".into()),
        api_key_env: "MASSGEN_TEST_KEY".into(),
        api_key_env_set: true,
        max_nudges: 1,
        own_config: false,
        llm: None,
    }
}

/// Parses a whole recorded stream; returns the events and their report.
fn parse(preset: Preset, stream: &str) -> (Vec<AgentEvent>, Report) {
    let mut parser = agent(preset).parser();
    let mut events: Vec<AgentEvent> = stream.lines().flat_map(|l| parser.line(l)).collect();
    events.extend(parser.finish());
    let mut report = Report::default();
    for e in &events {
        report.apply(e);
    }
    (events, report)
}

macro_rules! stream {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/streams/", $name))
    };
}

fn assert_wrote(preset: Preset, stream: &str, turns: u32, cost: Option<f64>) {
    let (events, r) = parse(preset, stream);
    assert_eq!(r.ok, Some(true), "{events:#?}");
    assert_eq!(r.final_message.as_deref(), Some("I created hello.txt."));
    assert!(r.session_id.is_some(), "{events:#?}");
    assert!(r.usage.input_tokens >= 100, "{r:?}");
    assert!(r.usage.output_tokens >= 20, "{r:?}");
    assert_eq!(r.usage.cost_usd, cost);
    assert_eq!(r.turns, Some(turns), "{events:#?}");
    assert!(r.error.is_none(), "{r:?}");
    assert!(
        events.iter().any(
            |e| matches!(e, AgentEvent::ToolCall { detail, .. } if detail.contains("hello.txt"))
        ),
        "{events:#?}"
    );
}

#[test]
fn claude_write() {
    assert_wrote(
        Preset::Claude,
        stream!("claude-write.jsonl"),
        2,
        Some(0.002),
    );
}

#[test]
fn codex_write() {
    let (_, r) = parse(Preset::Codex, stream!("codex-write.jsonl"));
    assert_eq!(r.usage.input_tokens, 200);
    assert_eq!(r.usage.output_tokens, 40);
    assert_wrote(Preset::Codex, stream!("codex-write.jsonl"), 1, None);
}

#[test]
fn gemini_write() {
    assert_wrote(Preset::Gemini, stream!("gemini-write.jsonl"), 2, None);
}

#[test]
fn opencode_write() {
    assert_wrote(
        Preset::Opencode,
        stream!("opencode-write.jsonl"),
        2,
        Some(0.0),
    );
}

#[test]
fn qwen_write() {
    assert_wrote(Preset::Qwen, stream!("qwen-write.jsonl"), 2, None);
}

#[test]
fn aider_write() {
    let (events, r) = parse(Preset::Aider, stream!("aider-write.txt"));
    assert!(events.contains(&AgentEvent::FileEdit {
        path: "hello.txt".into()
    }));
    assert_eq!(r.final_message.as_deref(), Some("I created hello.txt."));
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (100, 20));
    assert_eq!(r.usage.cost_usd, None);
}

#[test]
fn aider_text() {
    let out = "Aider v0.86.2\nModel: openai/test-model with whole edit format\n\nI will create the file.\n\nTokens: 2.3k sent, 104 received. Cost: $0.0012 message, $0.0024 session.\nApplied edit to hello.txt\n";
    let (events, r) = parse(Preset::Aider, out);
    assert!(events.contains(&AgentEvent::FileEdit {
        path: "hello.txt".into()
    }));
    assert_eq!(r.usage.input_tokens, 2300);
    assert_eq!(r.usage.output_tokens, 104);
    assert_eq!(r.usage.cost_usd, Some(0.0012));
    assert_eq!(r.final_message.as_deref(), Some("I will create the file."));
    assert_eq!(r.ok, Some(true));
}

/// Each CLI's own words for an authentication failure reach the report.
#[test]
fn auth_failures_carry_the_cli_message() {
    for (preset, stream) in [
        (Preset::Claude, stream!("claude-401.jsonl")),
        (Preset::Codex, stream!("codex-401.jsonl")),
        (Preset::Gemini, stream!("gemini-401.jsonl")),
        (Preset::Opencode, stream!("opencode-401.jsonl")),
        (Preset::Qwen, stream!("qwen-401.jsonl")),
    ] {
        let (events, r) = parse(preset, stream);
        assert_eq!(r.ok, Some(false), "{preset:?}: {events:#?}");
        let error = r.error.unwrap_or_default();
        assert!(error.contains("401"), "{preset:?}: {error}");
    }
}

/// Claude Code retries a 401; the parser reports the retries and asks to stop at once.
#[test]
fn claude_retrying_a_401_is_fatal_but_a_429_is_not() {
    let mut parser = agent(Preset::Claude).parser();
    let events: Vec<AgentEvent> = stream!("claude-401-retrying.jsonl")
        .lines()
        .flat_map(|l| parser.line(l))
        .collect();
    let retry = events
        .iter()
        .find(|e| matches!(e, AgentEvent::Retry { .. }))
        .expect("a retry event");
    assert!(matches!(
        retry,
        AgentEvent::Retry {
            status: Some(401),
            attempt: Some(1),
            delay_ms: Some(_),
            ..
        }
    ));
    let why = parser.fatal(retry).expect("fatal");
    assert!(why.contains("authentication failed (HTTP 401)"), "{why}");

    let mut parser = agent(Preset::Claude).parser();
    let events: Vec<AgentEvent> = stream!("claude-429-retrying.jsonl")
        .lines()
        .flat_map(|l| parser.line(l))
        .collect();
    let retries = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                AgentEvent::Retry {
                    status: Some(429),
                    ..
                }
            )
        })
        .count();
    assert!(retries >= 1);
    assert!(events.iter().all(|e| parser.fatal(e).is_none()));
}

#[test]
fn codex_reconnects_are_retries_then_failure() {
    let (events, r) = parse(Preset::Codex, stream!("codex-429.jsonl"));
    assert!(r.retries >= 1, "{events:#?}");
    assert_eq!(r.ok, Some(false));
    assert!(r.error.unwrap().contains("429"));
}

#[test]
fn a_resumed_codex_session_reports_running_totals() {
    let (_, first) = parse(Preset::Codex, stream!("codex-write.jsonl"));
    let mut second = first.clone();
    second.usage.input_tokens = 400;
    let mut total = first.clone();
    total.merge(&second, Preset::Codex.cumulative_usage());
    assert_eq!(total.usage.input_tokens, 400);
    let mut total = first.clone();
    total.merge(&second, Preset::Claude.cumulative_usage());
    assert_eq!(total.usage.input_tokens, 600);
}

#[test]
fn launches_keep_the_prompt_one_argument_and_keys_out_of_files() {
    let home = std::path::Path::new("/h");
    let prompt = "fix it; $(rm -rf /) \"quoted\"";
    for preset in Preset::ALL {
        let ctx = LaunchCtx {
            prompt,
            worktree: std::path::Path::new("/w t"),
            home,
            resume: None,
            read_only: false,
        };
        let l = agent(preset).launch(&ctx);
        assert_eq!(
            l.argv.iter().filter(|a| a.as_str() == prompt).count(),
            1,
            "{preset:?}: {:?}",
            l.argv
        );
        for (path, text) in &l.files {
            assert!(path.starts_with(home), "{preset:?} writes {path:?}");
            assert!(!text.contains("sk-"), "{preset:?} writes a key");
        }
    }
}

#[test]
fn resume_flags() {
    let ctx = LaunchCtx {
        prompt: "go on",
        worktree: std::path::Path::new("/w"),
        home: std::path::Path::new("/h"),
        resume: Some("S1"),
        read_only: false,
    };
    let argv = |p: Preset| agent(p).launch(&ctx).argv.join(" ");
    assert!(argv(Preset::Claude).contains("--resume S1"));
    assert!(argv(Preset::Codex).starts_with("codex exec resume S1 --json"));
    assert!(argv(Preset::Gemini).contains("--resume S1"));
    assert!(argv(Preset::Qwen).contains("--resume S1"));
    assert!(argv(Preset::Opencode).contains("--session S1"));
}

#[test]
fn read_only_launches_cannot_edit() {
    let ctx = LaunchCtx {
        prompt: "review",
        worktree: std::path::Path::new("/w"),
        home: std::path::Path::new("/h"),
        resume: None,
        read_only: true,
    };
    let argv = |p: Preset| agent(p).launch(&ctx).argv.join(" ");
    assert!(argv(Preset::Claude).contains("--allowedTools Read,Grep,Glob,LS"));
    assert!(!argv(Preset::Claude).contains("dangerously"));
    assert!(argv(Preset::Codex).contains("--sandbox read-only"));
    assert!(!argv(Preset::Codex).contains("dangerously"));
    assert!(!argv(Preset::Gemini).contains("--yolo"));
    assert!(!argv(Preset::Opencode).contains("--auto"));
    assert!(argv(Preset::Aider).contains("--dry-run"));
}
