//! What a run shows: the NDJSON event stream, the live view on a terminal, and the plain
//! output elsewhere (snapshotted with insta, paths and times redacted).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{FIX, TestRepo, seal};

/// Redacts what differs between runs: temp paths, run ids, durations, commit ids.
fn redacted(repo: &TestRepo, text: &str) -> String {
    let mut out = text
        .replace(repo.root.to_str().unwrap(), "[TMP]")
        .replace('\r', "");
    for (re, with) in [
        (r"\d{8}-\d{6}-[0-9a-f]{4}", "[RUN]"),
        (r"\d+ ms", "[N] ms"),
        (r"\d+\.\d+s", "[N]s"),
        (r"\b[0-9a-f]{12,40}\b", "[SHA]"),
        (r"worktrees in \S+", "worktrees in [DIR]"),
        // What the kernel offers differs between machines.
        (r"sandbox: .*", "sandbox: [SANDBOX]"),
    ] {
        out = regex::Regex::new(re)
            .unwrap()
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

#[test]
fn plain_output_off_a_terminal() {
    let repo = TestRepo::new();
    let run = repo
        .massgen()
        .args([
            "run",
            "--test",
            "sh test.sh",
            "--agent-cmd",
            &repo.agent("fixer", FIX),
        ])
        .args(["--", "fix the calculator"])
        .run()
        .expect_code(0);
    insta::assert_snapshot!("run_stderr", redacted(&repo, &run.stderr));
    insta::assert_snapshot!("run_stdout", redacted(&repo, &run.stdout));
    let status = repo
        .massgen()
        .args(["status", "latest"])
        .run()
        .expect_code(0);
    insta::assert_snapshot!("status_stdout", redacted(&repo, &status.stdout));
    // --quiet: nothing on stderr.
    let quiet = repo
        .massgen()
        .args([
            "-q",
            "run",
            "--agent-cmd",
            &repo.agent("fixer", FIX),
            "--",
            "again",
        ])
        .run()
        .expect_code(0);
    assert_eq!(quiet.stderr, "");
}

#[test]
fn the_event_stream_is_one_json_object_per_event() {
    let repo = TestRepo::new();
    let file = repo.root.join("events.ndjson");
    let json = repo.run_json(
        &["--test", "sh test.sh", "--events", file.to_str().unwrap()],
        &[("fixer", FIX), ("idle", "true")],
        "fix the calculator",
        0,
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let time = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    for (line, e) in text.lines().zip(&events) {
        assert!(line.starts_with("{\"time\":"), "fields in order: {line}");
        assert_eq!(e["run"], json["run"], "{line}");
        assert!(time.is_match(e["time"].as_str().unwrap()), "{line}");
        assert!(e["data"].is_object(), "{line}");
    }
    let kinds = |agent: &str| -> Vec<&str> {
        events
            .iter()
            .filter(|e| e["agent"] == agent)
            .map(|e| e["kind"].as_str().unwrap())
            .collect()
    };
    assert_eq!(events[0]["kind"], "created");
    assert_eq!(events[0]["agent"], Value::Null);
    for agent in ["fixer", "idle"] {
        let k = kinds(agent);
        for want in ["agent_started", "agent_finished", "snapshotted"] {
            assert!(k.contains(&want), "{agent}: {k:?}");
        }
    }
    assert!(kinds("fixer").contains(&"tests_finished"));
    let snap = events
        .iter()
        .find(|e| e["kind"] == "snapshotted" && e["agent"] == "fixer")
        .unwrap();
    assert_eq!(snap["data"]["files"], 1);
    // `-` is stdout, which --json needs for itself.
    let run = repo
        .massgen()
        .args([
            "run",
            "--json",
            "--events",
            "-",
            "--agent-cmd",
            &repo.agent("a", FIX),
            "--",
            "t",
        ])
        .run()
        .expect_code(2);
    run.assert_stderr("--events - and --json would both write to stdout");
    let run = repo
        .massgen()
        .args([
            "run",
            "--events",
            "-",
            "--agent-cmd",
            &repo.agent("a", FIX),
            "--",
            "t",
        ])
        .run()
        .expect_code(0);
    // stdout is the stream alone; the ranking went to stderr.
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines[0]["kind"], "created");
    let last = lines.last().unwrap();
    assert_eq!(last["kind"], "finished");
    assert_eq!(last["data"]["winner"], "a");
    run.assert_stderr("rank  agent");
}

#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn a_terminal_gets_a_live_line_per_agent() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: util-linux `script` is not installed");
        return;
    }
    let repo = TestRepo::new();
    let slow = "for i in 1 2 3 4; do echo $i > f$i.txt; sleep 0.4; done";
    let bin = Path::new(env!("CARGO_BIN_EXE_git-massgen"));
    let command = format!(
        "{} run --test 'sh test.sh' --agent-cmd {} --agent-cmd {} -- 'a task'",
        bin.display(),
        shell_words::quote(&repo.agent("slow", slow)),
        shell_words::quote(&repo.agent("fixer", FIX)),
    );
    let mut cmd = Command::new("script");
    seal(&mut cmd, &repo.root);
    let out = cmd
        .current_dir(&repo.path)
        .env("TERM", "xterm-256color")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    // The lines are redrawn in place; their last state shows each agent's result.
    assert!(screen.contains("\u{1b}[1A"), "redrawn in place: {screen:?}");
    // The count moves while the agent works, before it reports anything.
    let moving = regex::Regex::new(r"[1-3] files?\s+running").unwrap();
    assert!(moving.is_match(&screen), "no live count: {screen}");
    for want in ["slow", "fixer", "running", "4 files", "tests"] {
        assert!(screen.contains(want), "{want}: {screen}");
    }
    assert!(screen.contains("rank  agent"), "then the ranking");
    assert!(
        !screen.contains("massgen: slow: running"),
        "no plain lines on a terminal"
    );
}
