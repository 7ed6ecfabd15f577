//! The real agent CLIs (installed by `scripts/install-clis.sh`) driven by `git massgen run`
//! against the loopback LLM server.

// The recording server prints its address; skipped CLIs are reported on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

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
    let url_file = std::env::var("MASSGEN_SERVE_URL_FILE")
        .unwrap_or_else(|_| format!("/tmp/llm_server_url.{name}"));
    std::fs::write(url_file, server.url()).unwrap();
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

use std::path::PathBuf;
use std::sync::Mutex;

use crate::support::{TestRepo, candidate, processes_of};

/// One real-CLI run at a time: each starts several Node programs, and the 2-core CI
/// machine should not time them out.
static SERIAL: Mutex<()> = Mutex::new(());

const KEY_VAR: &str = "MASSGEN_TEST_KEY";
const KEY: &str = "sk-massgen-test-key";
const CONTENT: &str = "hello from the tool\n";
const FINAL: &str = "I created hello.txt.";

/// Where `scripts/install-clis.sh` put the CLIs.
fn cli_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MASSGEN_CLI_BIN") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("git-massgen/clis/bin")
}

/// The installed CLIs among `wanted`, saying loudly which are skipped.
fn installed(test: &str, wanted: &[&'static str]) -> Vec<(&'static str, PathBuf)> {
    let dir = cli_dir();
    let mut found = Vec::new();
    for name in wanted {
        let bin = dir.join(name);
        if bin.exists() {
            found.push((*name, bin));
        } else {
            eprintln!(
                "SKIPPED in {test}: {name} is not installed in {} (run scripts/install-clis.sh)",
                dir.display()
            );
        }
    }
    found
}

/// A config with one agent per CLI, all pointed at `url`.
fn config(agents: &[(&str, PathBuf)], url: &str, timeout: &str, test: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(test) = test {
        text.push_str(&format!("[score]\ntest = \"{test}\"\n\n"));
    }
    for (name, bin) in agents {
        text.push_str(&agent_entry(name, name, bin, url, timeout));
    }
    text
}

fn agent_entry(name: &str, kind: &str, bin: &std::path::Path, url: &str, timeout: &str) -> String {
    format!(
        "[[agents]]\nname = \"{name}\"\nkind = \"{kind}\"\nbin = \"{}\"\nmodel = \"test-model\"\nbase_url = \"{url}\"\napi_key_env = \"{KEY_VAR}\"\ntimeout = \"{timeout}\"\n\n",
        bin.display()
    )
}

fn run(repo: &TestRepo, code: i32) -> serde_json::Value {
    repo.massgen()
        .env(KEY_VAR, KEY)
        .args(["run", "--json", "Create hello.txt holding a greeting."])
        .run()
        .expect_code(code)
        .json()
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(files_containing(&path, needle));
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            out.push(path);
        }
    }
    out
}

const ALL: [&str; 6] = ["claude", "codex", "gemini", "opencode", "qwen", "aider"];

#[test]
fn every_cli_writes_through_its_own_tool() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let agents = installed("every_cli_writes_through_its_own_tool", &ALL);
    if agents.is_empty() {
        return;
    }
    let server = LlmServer::start(Mode::Write {
        file: "hello.txt".into(),
        content: CONTENT.into(),
        final_text: FINAL.into(),
    });
    let repo = TestRepo::new();
    let mut text = config(&agents, &server.url(), "180s", Some("test -f hello.txt"));
    // A second agent of the same kind, to show they never share a config home.
    let twin = agents.iter().find(|(n, _)| *n == "claude").cloned();
    if let Some((kind, bin)) = &twin {
        text.push_str(&agent_entry("claude-2", kind, bin, &server.url(), "180s"));
    }
    repo.configure(&text);
    let out = run(&repo, 0);
    let id = out["run"].as_str().unwrap();
    if twin.is_some() {
        let homes = repo.path.join(".massgen/runs").join(id).join("homes");
        for name in ["claude", "claude-2"] {
            assert_eq!(candidate(&out, name)["status"], "done");
            let sessions = homes.join(name).join("projects");
            assert!(sessions.is_dir(), "{name} kept no sessions in its own home");
        }
    }
    for (name, _) in &agents {
        let c = candidate(&out, name);
        let logs = repo.path.join(".massgen/runs").join(id).join("logs");
        let stderr = std::fs::read_to_string(logs.join(format!("{name}.stderr.log")));
        assert_eq!(c["status"], "done", "{name}: {c:#}\nstderr: {stderr:?}");
        assert_eq!(c["kind"], *name);
        assert_eq!(
            c["files_changed"], 1,
            "{name} changed more than hello.txt: {c:#}"
        );
        assert_eq!(c["tests"]["exit_code"], 0, "{name}: {c:#}");
        assert!(
            c["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{name}: {c:#}"
        );
        assert!(
            c["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{name}: {c:#}"
        );
        assert!(c["usage"].get("cost_usd").is_some(), "{name}: {c:#}");
        assert_eq!(c["asked_for_input"], false, "{name}: {c:#}");
        if *name != "aider" {
            assert_eq!(c["final_message"], FINAL, "{name}: {c:#}");
            assert!(c["turns"].as_u64().unwrap() >= 1, "{name}: {c:#}");
        }
        let file = repo.git(&["show", &format!("massgen/{id}/{name}:hello.txt")]);
        assert_eq!(file.trim_end(), CONTENT.trim_end(), "{name}");
    }
    assert!(out["winner"].is_string(), "{out:#}");
    assert!(out["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // Claude Code and Codex report what they spent; Codex reports no cost.
    if agents.iter().any(|(n, _)| *n == "codex") {
        assert!(candidate(&out, "codex")["usage"]["cost_usd"].is_null());
    }
    // The key reached the servers through each CLI's own mechanism.
    let requests = server.requests();
    let authed = |path: &str| {
        requests.iter().any(|r| {
            r.path.starts_with(path)
                && [
                    r.header("x-api-key"),
                    r.header("authorization"),
                    r.header("x-goog-api-key"),
                ]
                .into_iter()
                .flatten()
                .any(|v| v.contains(KEY))
        })
    };
    for (name, path) in [
        ("claude", "/v1/messages"),
        ("codex", "/v1/responses"),
        ("gemini", "/v1beta/models/"),
        ("opencode", "/v1/chat/completions"),
    ] {
        if agents.iter().any(|(n, _)| *n == name) {
            assert!(
                authed(path),
                "{name} sent no authenticated request to {path}"
            );
        }
    }
    // The key stays in the environment: no file of the run (logs, generated configs, the
    // CLIs' own session files) holds it.
    let leaks = files_containing(&repo.path.join(".massgen/runs").join(id), KEY);
    assert!(leaks.is_empty(), "the API key was written to {leaks:?}");
    // Nothing was written into the user's home: every CLI got a home of its own.
    for dir in [
        ".claude",
        ".claude.json",
        ".codex",
        ".gemini",
        ".qwen",
        ".aider",
    ] {
        assert!(
            !repo.root.join("home").join(dir).exists(),
            "{dir} written in HOME"
        );
    }
    assert!(processes_of(id).is_empty());
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}

#[test]
fn auth_failures_end_as_failed_candidates_with_the_cli_message() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let agents = installed(
        "auth_failures_end_as_failed_candidates_with_the_cli_message",
        &["claude", "codex", "gemini", "opencode"],
    );
    if agents.is_empty() {
        return;
    }
    let server = LlmServer::start(Mode::Fail {
        status: 401,
        retry_after: None,
    });
    let repo = TestRepo::new();
    repo.configure(&config(&agents, &server.url(), "120s", None));
    let started = std::time::Instant::now();
    let out = run(&repo, 1);
    for (name, _) in &agents {
        let c = candidate(&out, name);
        assert_eq!(c["status"], "failed", "{name}: {c:#}");
        let error = c["error"].as_str().unwrap_or_default();
        assert!(error.contains("401"), "{name}: {error}");
    }
    // Claude Code would retry the 401 ten times over minutes; it is stopped at once.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(100),
        "took {:?}",
        started.elapsed()
    );
    let status = repo
        .massgen()
        .args(["status", "latest"])
        .run()
        .expect_code(0);
    status.assert_stdout("401");
}

#[test]
fn a_cli_stuck_on_429_ends_by_our_timeout_with_its_tree_gone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let agents = installed(
        "a_cli_stuck_on_429_ends_by_our_timeout_with_its_tree_gone",
        &["gemini", "claude"],
    );
    if agents.is_empty() {
        return;
    }
    let server = LlmServer::start(Mode::Fail {
        status: 429,
        retry_after: Some(1),
    });
    let repo = TestRepo::new();
    repo.configure(&config(&agents, &server.url(), "8s", None));
    let out = run(&repo, 1);
    let id = out["run"].as_str().unwrap();
    for (name, _) in &agents {
        let c = candidate(&out, name);
        assert_eq!(c["status"], "timeout", "{name}: {c:#}");
        assert!(c["error"].as_str().unwrap().contains("timed out"), "{c:#}");
    }
    if agents.iter().any(|(n, _)| *n == "claude") {
        let error = candidate(&out, "claude")["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(error.contains("429"), "{error}");
    }
    assert!(
        processes_of(id).is_empty(),
        "left running: {:?}",
        processes_of(id)
    );
    assert_eq!(repo.worktree_count(), 1);
}

#[test]
fn an_agent_that_asks_is_nudged_and_finishes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let agents = installed(
        "an_agent_that_asks_is_nudged_and_finishes",
        &["claude", "codex", "gemini", "opencode", "qwen"],
    );
    if agents.is_empty() {
        return;
    }
    let server = LlmServer::start(Mode::AskThenWrite {
        question: "Should the greeting be formal or casual?".into(),
        nudge_marker: "this run is unattended".into(),
        file: "hello.txt".into(),
        content: CONTENT.into(),
        final_text: FINAL.into(),
    });
    let repo = TestRepo::new();
    repo.configure(&config(&agents, &server.url(), "180s", None));
    let out = run(&repo, 0);
    let id = out["run"].as_str().unwrap();
    for (name, _) in &agents {
        let c = candidate(&out, name);
        assert_eq!(c["asked_for_input"], true, "{name}: {c:#}");
        assert_eq!(c["nudges"], 1, "{name}: {c:#}");
        assert_eq!(c["status"], "done", "{name}: {c:#}");
        assert_eq!(c["final_message"], FINAL, "{name}: {c:#}");
        let file = repo.git(&["show", &format!("massgen/{id}/{name}:hello.txt")]);
        assert_eq!(file.trim_end(), CONTENT.trim_end(), "{name}");
    }
}

/// A review by each real CLI, started read-only: the CLI accepts the read-only flags, its
/// final message carries the findings, and the reviewed tree is left as it was.
#[test]
fn every_cli_reviews_read_only_and_its_findings_are_read() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // aider reports no final message to read findings from.
    let clis = installed(
        "every_cli_reviews_read_only_and_its_findings_are_read",
        &["claude", "codex", "gemini", "opencode", "qwen"],
    );
    if clis.is_empty() {
        return;
    }
    let answer = "I read the change.\n```json\n{\"findings\": [{\"path\": \"app.txt\", \"line\": 1, \"severity\": \"error\", \"title\": \"Bug marker left in\", \"message\": \"app.txt still says BUG\"}]}\n```";
    let servers: Vec<LlmServer> = clis
        .iter()
        .map(|_| {
            LlmServer::start(Mode::Script(vec![crate::llm_server::Step::Text(
                answer.into(),
            )]))
        })
        .collect();
    let repo = TestRepo::new();
    let mut text = String::from("[review]\nquorum = 1\n\n");
    for ((name, bin), server) in clis.iter().zip(&servers) {
        text.push_str(
            &agent_entry(name, name, bin, &server.url(), "180s")
                .replace("[[agents]]", "[[reviewers]]"),
        );
    }
    repo.configure(&text);
    repo.write("app.txt", "BUG\n");
    repo.git(&["add", "app.txt"]);
    let run = repo
        .massgen()
        .env(KEY_VAR, KEY)
        .args(["review", "--staged", "--json"])
        .run();
    let json = run.json();
    for (name, _) in &clis {
        let r = json["reviewers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == *name)
            .unwrap();
        assert_eq!(r["ok"], true, "{name}: {r:#}\n{}", run.stderr);
        assert_eq!(
            r["findings"][0]["title"], "Bug marker left in",
            "{name}: {r:#}"
        );
    }
    let kept = &json["findings"][0];
    assert_eq!(
        kept["reviewers"].as_array().unwrap().len(),
        clis.len(),
        "{json:#}"
    );
    assert!(!run.stderr.contains("reviewers changed"), "{}", run.stderr);
    assert_eq!(run.code, Some(1));
    assert_eq!(repo.git(&["status", "--porcelain"]), "A  app.txt");
}
