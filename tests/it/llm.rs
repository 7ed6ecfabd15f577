//! The built-in LLM agent (`kind = "llm"`) against the loopback server, for every protocol:
//! a tool loop that reads, edits, writes and runs; retries; refusals; limits.

use serde_json::{Value, json};

use crate::llm_server::{LlmServer, Mode, Step};
use crate::support::{TestRepo, candidate, processes_of, wait_for};

const KEY_VAR: &str = "MASSGEN_TEST_KEY";
const KEY: &str = "sk-massgen-llm-test";

const PROVIDERS: [&str; 4] = ["openai", "openai-responses", "anthropic", "gemini"];

fn tools(calls: &[(&str, Value)]) -> Step {
    Step::Tools(
        calls
            .iter()
            .map(|(n, a)| ((*n).to_owned(), a.clone()))
            .collect(),
    )
}

/// Reads, edits calc.sh to fix `add`, writes a note, runs the tests, finishes.
fn fixing_script() -> Vec<Step> {
    vec![
        tools(&[
            ("list_files", json!({})),
            ("read_file", json!({"path": "calc.sh"})),
        ]),
        tools(&[(
            "edit_file",
            json!({"path": "calc.sh", "old": "$2 - $3", "new": "$2 + $3"}),
        )]),
        tools(&[(
            "write_file",
            json!({"path": "notes/FIX.md", "content": "add used -\n"}),
        )]),
        tools(&[("run", json!({"command": "sh test.sh"}))]),
        tools(&[("finish", json!({"summary": "Fixed add in calc.sh."}))]),
    ]
}

fn agent_toml(name: &str, provider: &str, url: &str, extra: &str) -> String {
    format!(
        "[[agents]]\nname = \"{name}\"\nkind = \"llm\"\nprovider = \"{provider}\"\nmodel = \"test-model\"\nbase_url = \"{url}\"\napi_key_env = \"{KEY_VAR}\"\ntimeout = \"120s\"\n{extra}\n"
    )
}

fn run(repo: &TestRepo, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["run", "--json"];
    args.extend_from_slice(extra);
    args.push("Fix add in calc.sh so that sh test.sh passes.");
    repo.massgen()
        .env(KEY_VAR, KEY)
        .env("MASSGEN_RETRY_BASE_MS", "50")
        .args(args)
        .run()
        .expect_code(code)
        .json()
}

/// The text of every tool result the agent sent back in a request body.
fn body_text(r: &crate::llm_server::Recorded) -> String {
    r.body.to_string()
}

#[test]
fn the_tool_loop_fixes_the_bug_over_every_protocol() {
    let servers: Vec<LlmServer> = PROVIDERS
        .iter()
        .map(|_| LlmServer::start(Mode::Script(fixing_script())))
        .collect();
    let repo = TestRepo::new();
    let mut text = "[score]\ntest = \"sh test.sh\"\n\n".to_owned();
    for (p, s) in PROVIDERS.iter().zip(&servers) {
        text.push_str(&agent_toml(p, p, &s.url(), ""));
    }
    // A price for one of them: dollars per million tokens.
    repo.write(
        ".massgen/prices.toml",
        "\"anthropic/test-model\" = { input = 3.0, output = 15.0 }\n",
    );
    repo.configure(&text);
    let out = run(&repo, &[], 0);
    let cost = candidate(&out, "anthropic")["usage"]["cost_usd"]
        .as_f64()
        .unwrap();
    assert!((cost - 0.003).abs() < 1e-9, "{cost}");
    assert!(candidate(&out, "gemini")["usage"]["cost_usd"].is_null());
    assert!((out["usage"]["cost_usd"].as_f64().unwrap() - 0.003).abs() < 1e-9);
    let id = out["run"].as_str().unwrap();
    for (p, server) in PROVIDERS.iter().zip(&servers) {
        let c = candidate(&out, p);
        assert_eq!(c["status"], "done", "{p}: {c:#}");
        assert_eq!(c["kind"], "llm");
        assert_eq!(c["files_changed"], 2, "{p}: {c:#}");
        assert_eq!(c["tests"]["failed"], 0, "{p}: {c:#}");
        assert_eq!(c["final_message"], "Fixed add in calc.sh.", "{p}");
        assert_eq!(c["turns"], 5, "{p}: {c:#}");
        assert_eq!(c["usage"]["input_tokens"], 500, "{p}: {c:#}");
        assert_eq!(c["usage"]["output_tokens"], 100, "{p}: {c:#}");
        let note = repo.git(&["show", &format!("massgen/{id}/{p}:notes/FIX.md")]);
        assert_eq!(note.trim_end(), "add used -");
        let requests = server.model_requests();
        assert_eq!(requests.len(), 5, "{p}");
        // The key went in the provider's own header.
        let r = &requests[0];
        let auth = [
            r.header("x-api-key"),
            r.header("authorization"),
            r.header("x-goog-api-key"),
        ];
        assert!(
            auth.iter().flatten().any(|v| v.contains(KEY)),
            "{p}: {:?}",
            r.headers
        );
        // Tool results came back: the file's content, then the test run's output.
        assert!(body_text(&requests[1]).contains("calc.sh"), "{p}");
        assert!(body_text(&requests[4]).contains("exit code 0"), "{p}");
    }
    // Local test model, no price: cost is null; the run sums usage.
    assert_eq!(out["usage"]["input_tokens"], 2000);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}

#[test]
fn transient_failures_are_retried_and_the_work_survives() {
    let mut steps = vec![
        Step::Fail {
            status: 429,
            retry_after: Some(1),
            code: None,
        },
        Step::Fail {
            status: 500,
            retry_after: None,
            code: None,
        },
        Step::Cut,
        Step::Malformed,
    ];
    steps.extend(fixing_script());
    for provider in ["anthropic", "openai"] {
        let server = LlmServer::start(Mode::Script(steps.clone()));
        let repo = TestRepo::new();
        repo.configure(&format!(
            "[score]\ntest = \"sh test.sh\"\n\n{}",
            agent_toml("a", provider, &server.url(), "")
        ));
        let out = run(&repo, &[], 0);
        let c = candidate(&out, "a");
        assert_eq!(c["status"], "done", "{provider}: {c:#}");
        assert_eq!(c["retries"], 4, "{provider}: {c:#}");
        assert_eq!(server.model_requests().len(), 9, "{provider}");
    }
}

#[test]
fn authentication_and_credit_failures_are_not_retried() {
    for (provider, status, code, words) in [
        ("anthropic", 401, None, "anthropic: HTTP 401"),
        ("gemini", 403, None, "gemini: HTTP 403"),
        ("openai", 429, Some("insufficient_quota"), "no credit left"),
    ] {
        let server = LlmServer::start(Mode::Script(vec![Step::Fail {
            status,
            retry_after: None,
            code: code.map(str::to_owned),
        }]));
        let repo = TestRepo::new();
        repo.configure(&agent_toml("a", provider, &server.url(), ""));
        let out = run(&repo, &[], 1);
        let c = candidate(&out, "a");
        assert_eq!(c["status"], "failed", "{c:#}");
        let error = c["error"].as_str().unwrap();
        assert!(error.contains(words), "{provider}: {error}");
        assert_eq!(server.model_requests().len(), 1, "{provider} retried");
    }
}

#[test]
fn paths_outside_the_worktree_are_refused() {
    let server = LlmServer::start(Mode::Script(vec![
        tools(&[
            (
                "write_file",
                json!({"path": "../escaped.txt", "content": "x"}),
            ),
            ("read_file", json!({"path": "/etc/passwd"})),
            (
                "write_file",
                json!({"path": ".git/hooks/pre-commit", "content": "x"}),
            ),
            ("run", json!({"command": "env"})),
        ]),
        tools(&[("finish", json!({"summary": "gave up"}))]),
    ]));
    let repo = TestRepo::new();
    repo.configure(&agent_toml("a", "anthropic", &server.url(), ""));
    let out = run(&repo, &["--keep"], 1);
    let c = candidate(&out, "a");
    assert_eq!(c["status"], "no_change", "{c:#}");
    let wt = std::path::PathBuf::from(c["worktree"].as_str().unwrap());
    assert!(!wt.parent().unwrap().join("escaped.txt").exists());
    let second = body_text(&server.model_requests()[1]);
    assert!(
        second.matches("outside the worktree").count() >= 2,
        "{second}"
    );
    assert!(!second.contains("root:"), "/etc/passwd was read");
    // Commands the model runs do not see the API key.
    assert!(second.contains("MASSGEN_RUN="), "env ran: {second}");
    assert!(!second.contains(KEY), "the key leaked to a tool command");
}

#[test]
fn a_model_that_waits_for_a_human_is_told_to_finish() {
    let mut steps = vec![Step::Text(
        "Should I use tabs or spaces for the fix?".into(),
    )];
    steps.extend(fixing_script());
    let server = LlmServer::start(Mode::Script(steps));
    let repo = TestRepo::new();
    repo.configure(&agent_toml("a", "openai-responses", &server.url(), ""));
    let out = run(&repo, &[], 0);
    let c = candidate(&out, "a");
    assert_eq!(c["status"], "done", "{c:#}");
    assert_eq!(c["asked_for_input"], true);
    assert_eq!(c["nudges"], 1);
    let second = body_text(&server.model_requests()[1]);
    assert!(second.contains("No human is available"), "{second}");
}

#[test]
fn a_long_conversation_is_kept_within_the_context_window() {
    let repo = TestRepo::new();
    repo.write(
        "big.txt",
        &"a fairly long line of text to read\n".repeat(300),
    );
    let mut steps: Vec<Step> = (0..8)
        .map(|_| tools(&[("read_file", json!({"path": "big.txt"}))]))
        .collect();
    steps.push(tools(&[("finish", json!({"summary": "read it"}))]));
    let server = LlmServer::start(Mode::Script(steps));
    repo.configure(&agent_toml(
        "a",
        "anthropic",
        &server.url(),
        "context_window = 12000\nmax_output_tokens = 1000",
    ));
    let out = run(&repo, &[], 1);
    assert_eq!(candidate(&out, "a")["status"], "no_change");
    let sizes: Vec<usize> = server
        .model_requests()
        .iter()
        .map(|r| r.body.to_string().len())
        .collect();
    assert_eq!(sizes.len(), 9);
    // Each read adds ~12 KB; without fitting the last request would be ~100 KB. The
    // server reports 100 tokens a request, so the learned ratio stays at its cap of 4
    // characters a token: 11,000 tokens of room hold about 44,000 characters.
    assert!(*sizes.last().unwrap() < 50_000, "{sizes:?}");
    assert!(
        sizes.windows(2).skip(4).all(|w| w[1] < w[0] + 2_000),
        "{sizes:?}"
    );

    // A window that cannot even hold the task fails with a clear error.
    let server = LlmServer::start(Mode::Script(vec![]));
    let repo = TestRepo::new();
    repo.configure(&agent_toml(
        "a",
        "anthropic",
        &server.url(),
        "context_window = 600\nmax_output_tokens = 100",
    ));
    let out = run(&repo, &[], 1);
    let error = candidate(&out, "a")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("context_window"), "{error}");
    assert!(server.model_requests().is_empty());
}

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

#[test]
fn images_reach_each_provider_in_its_own_shape() {
    let servers: Vec<LlmServer> = PROVIDERS
        .iter()
        .map(|_| {
            LlmServer::start(Mode::Script(vec![tools(&[(
                "finish",
                json!({"summary": "seen"}),
            )])]))
        })
        .collect();
    let repo = TestRepo::new();
    let image = repo.root.join("shot.png");
    std::fs::write(&image, PNG).unwrap();
    let mut text = String::new();
    for (p, s) in PROVIDERS.iter().zip(&servers) {
        text.push_str(&agent_toml(p, p, &s.url(), ""));
    }
    repo.configure(&text);
    run(&repo, &["--image", image.to_str().unwrap()], 1);
    let b64 = "iVBORw0KGgo";
    for (p, s) in PROVIDERS.iter().zip(&servers) {
        let body = s.model_requests()[0].body.clone();
        let shape = match *p {
            "openai" => body["messages"][1]["content"][1]["image_url"]["url"].clone(),
            "openai-responses" => body["input"][0]["content"][1]["image_url"].clone(),
            "anthropic" => body["messages"][0]["content"][1]["source"]["data"].clone(),
            _ => body["contents"][0]["parts"][1]["inline_data"]["data"].clone(),
        };
        let shape = shape.as_str().unwrap_or_default().to_owned();
        assert!(shape.contains(b64), "{p}: {body:#}");
    }

    // A model configured without vision refuses images before anything starts.
    let branches = repo.massgen_branches();
    repo.configure(&agent_toml(
        "blind",
        "vllm",
        &servers[0].url(),
        "vision = false",
    ));
    let refused = repo
        .massgen()
        .env(KEY_VAR, KEY)
        .args(["run", "--image", image.to_str().unwrap(), "t"])
        .run()
        .expect_code(2);
    refused.assert_stderr("takes no images (vision = false)");
    assert_eq!(repo.massgen_branches(), branches);

    // Not an image by content: refused before anything starts.
    let fake = repo.root.join("fake.png");
    std::fs::write(&fake, "<svg/>").unwrap();
    let failed = repo
        .massgen()
        .env(KEY_VAR, KEY)
        .args(["run", "--image", fake.to_str().unwrap(), "t"])
        .run()
        .expect_code(2);
    failed.assert_stderr("not a PNG, JPEG, GIF or WebP");
}

/// Two `git massgen` processes share one requests-per-day budget through the state file.
#[test]
fn two_processes_never_exceed_a_shared_daily_budget() {
    let server = LlmServer::start(Mode::Script(
        (0..10).map(|_| Step::Text("done".into())).collect(),
    ));
    let repo = TestRepo::new();
    let mut text = "[limits.\"anthropic/test-model\"]\nrpd = 3\n\n".to_owned();
    for name in ["a", "b"] {
        text.push_str(&agent_toml(name, "anthropic", &server.url(), ""));
    }
    repo.configure(&text);
    let spawn = || {
        repo.massgen()
            .env(KEY_VAR, KEY)
            .args(["run", "--json", "say done"])
            .spawn()
    };
    let (one, two) = (spawn(), spawn());
    let outs: Vec<Value> = [one, two]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "not JSON ({e}), exit {:?}:\n{}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect();
    assert_eq!(server.model_requests().len(), 3);
    let errors: Vec<String> = outs
        .iter()
        .flat_map(|o| o["candidates"].as_array().unwrap().clone())
        .filter_map(|c| c["error"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(errors.len(), 1, "{outs:#?}");
    assert!(
        errors[0].contains("rpd") || errors[0].contains("per day"),
        "{}",
        errors[0]
    );
}

/// Requests another process made a moment ago count: the agent waits for the minute
/// window, says so while waiting, and records the wait.
#[test]
fn an_agent_waits_for_a_window_another_process_filled() {
    let server = LlmServer::start(Mode::Script(vec![tools(&[(
        "finish",
        json!({"summary": "done"}),
    )])]));
    let repo = TestRepo::new();
    repo.configure(&format!(
        "[limits.\"anthropic/test-model\"]\nrpm = 2\n\n{}",
        agent_toml("a", "anthropic", &server.url(), "")
    ));
    // Two requests of another (live: this test's) process, 58.5 s ago: the window frees
    // up in about 1.5 s.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = now - 58_500;
    let state = json!({
        "requests": [{"at_ms": at, "tokens": 10, "id": 1}, {"at_ms": at, "tokens": 10, "id": 2}],
        "in_flight": [], "waiting": [], "blocked_until_ms": 0,
    });
    let dir = repo.root.join("home/.local/state/git-massgen/ratelimits");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("anthropic_test-model.json"), state.to_string()).unwrap();
    let run = repo
        .massgen()
        .env(KEY_VAR, KEY)
        .args(["run", "--json", "finish"])
        .run()
        .expect_code(1);
    let out = run.json();
    let c = candidate(&out, "a");
    assert_eq!(c["rate_limit_waits"], 1, "{c:#}");
    assert_eq!(c["final_message"], "done");
    run.assert_stderr("waiting");
    run.assert_stderr("rpm 2");
    assert_eq!(server.model_requests().len(), 1);

    // --no-rate-limit: no wait at all.
    std::fs::write(dir.join("anthropic_test-model.json"), state.to_string()).unwrap();
    let server2 = LlmServer::start(Mode::Script(vec![]));
    repo.configure(&format!(
        "[limits.\"anthropic/test-model\"]\nrpm = 2\n\n{}",
        agent_toml("a", "anthropic", &server2.url(), "")
    ));
    let out = repo
        .massgen()
        .env(KEY_VAR, KEY)
        .args(["run", "--json", "--no-rate-limit", "finish"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(candidate(&out, "a")["rate_limit_waits"], 0);
}

#[test]
fn doctor_checks_a_builtin_agent() {
    let server = LlmServer::start(Mode::Script(vec![]));
    let repo = TestRepo::new();
    let mut text = agent_toml("remote", "anthropic", &server.url(), "");
    text.push_str(
        "[[agents]]\nname = \"local\"\nkind = \"llm\"\nprovider = \"vllm\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:9\"\n",
    );
    repo.configure(&text);
    let json = repo
        .massgen()
        .env(KEY_VAR, KEY)
        .args(["doctor", "--json"])
        .run()
        .expect_code(1)
        .json();
    let check = |agent: &str, name: &str| {
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["agent"] == agent && c["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {agent} {name}: {json:#}"))
    };
    assert_eq!(check("remote", "credentials")["ok"], true);
    assert_eq!(check("remote", "endpoint")["ok"], true);
    assert_eq!(
        check("local", "credentials")["detail"],
        "no key needed (local server)"
    );
    assert_eq!(check("local", "endpoint")["ok"], false);
    // A run refuses an agent whose key is missing, before anything is created.
    let failed = repo.massgen().args(["run", "t"]).run().expect_code(2);
    failed.assert_stderr(&format!("{KEY_VAR} is not set"));
    assert!(repo.massgen_branches().is_empty());
}

/// A timeout stops the agent and the commands its `run` tool started (they live in
/// process groups of their own).
#[test]
fn a_timeout_kills_the_commands_the_agent_runs() {
    let server = LlmServer::start(Mode::Script(vec![tools(&[(
        "run",
        json!({"command": "sleep 300 & sleep 300", "timeout": 600}),
    )])]));
    let repo = TestRepo::new();
    repo.configure(
        &agent_toml("a", "anthropic", &server.url(), "")
            .replace("timeout = \"120s\"", "timeout = \"3s\""),
    );
    let out = run(&repo, &[], 1);
    let c = candidate(&out, "a");
    assert_eq!(c["status"], "timeout", "{c:#}");
    let id = out["run"].as_str().unwrap();
    assert!(
        processes_of(id).is_empty(),
        "left running: {:?}",
        processes_of(id)
    );
}

/// `git massgen` killed with -9 while the agent's `run` tool has a command going: `clean`
/// stops the agent and the command (which lives in a process group of its own).
#[test]
fn clean_stops_what_a_killed_runs_agent_left_running() {
    let server = LlmServer::start(Mode::Script(vec![tools(&[(
        "run",
        json!({"command": "echo started > started.txt; sleep 300", "timeout": 600}),
    )])]));
    let repo = TestRepo::new();
    repo.configure(&agent_toml("a", "anthropic", &server.url(), ""));
    let mut child = repo
        .massgen()
        .env(KEY_VAR, KEY)
        .args(["run", "--json", "t"])
        .spawn();
    let runs = repo.path.join(".massgen/runs");
    let mut run_id = String::new();
    wait_for("the tool's command to start", || {
        let Some(Ok(entry)) = std::fs::read_dir(&runs).ok().and_then(|mut d| d.next()) else {
            return false;
        };
        run_id = entry.file_name().to_string_lossy().into_owned();
        processes_of(&run_id).iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("sleep"))
        })
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!processes_of(&run_id).is_empty());
    let cleaned = repo.massgen().args(["clean", &run_id]).run().expect_code(0);
    cleaned.assert_stderr("leftover");
    wait_for("the leftover processes to die", || {
        processes_of(&run_id).is_empty()
    });
}
