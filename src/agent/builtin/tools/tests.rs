//! Tests of `agent::builtin::tools`.
use std::os::unix::fs::symlink;
use std::time::Instant;

use super::*;

fn setup(files: &[(&str, &str)]) -> (tempfile::TempDir, Tools) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rel, content) in files {
        put(dir.path(), rel, content);
    }
    let tools = Tools::new(dir.path()).expect("tools");
    (dir, tools)
}

fn put(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, content).expect("write");
}

/// The output of a call that must succeed.
async fn ok(tools: &Tools, name: &str, args: Value) -> String {
    let outcome = tools.call(name, &args).await;
    assert!(!outcome.is_error, "{name} {args}: {}", outcome.output);
    outcome.output
}

/// The message of a call that must fail.
async fn err(tools: &Tools, name: &str, args: Value) -> String {
    let outcome = tools.call(name, &args).await;
    assert!(outcome.is_error, "{name} {args} passed: {}", outcome.output);
    assert_eq!((outcome.edited, outcome.finish), (None, None));
    outcome.output
}

#[tokio::test]
async fn list_files_honours_ignores_and_depth() {
    let (dir, tools) = setup(&[
        (".gitignore", "ignored/\n*.log\n"),
        (".git/config", ""),
        (".hidden", ""),
        ("ignored/x", ""),
        ("a/b/c/d/deep.txt", ""),
        ("a/b/x.log", ""),
        ("a/one.rs", ""),
    ]);
    let out = ok(&tools, "list_files", json!({})).await;
    assert_eq!(out, ".gitignore\n.hidden\na/\na/b/\na/b/c/\na/one.rs\n");
    // Below the root, the root's .gitignore still applies.
    let out = ok(&tools, "list_files", json!({ "path": "a/b" })).await;
    assert_eq!(out, "a/b/c/\na/b/c/d/\na/b/c/d/deep.txt\n");
    for i in 0..510 {
        put(dir.path(), &format!("many/{i}"), "");
    }
    let out = ok(&tools, "list_files", json!({ "path": "many" })).await;
    assert_eq!(out.lines().count(), 501);
    assert!(out.ends_with("\n[10 more entries left out; list a subdirectory]\n"));
    let out = err(&tools, "list_files", json!({ "path": "a/one.rs" })).await;
    assert!(out.contains("not a directory"), "{out}");
}

#[tokio::test]
async fn read_file_numbers_and_cuts() {
    let big = ("x".repeat(100) + "\n").repeat(1000);
    let (dir, tools) = setup(&[("f.txt", "one\ntwo\nthree\nfour\nfive\n"), ("big", &big)]);
    let out = ok(&tools, "read_file", json!({ "path": "f.txt" })).await;
    assert_eq!(out, "1\tone\n2\ttwo\n3\tthree\n4\tfour\n5\tfive\n");
    let args = json!({ "path": "./f.txt", "offset": 2, "limit": "2" });
    let out = ok(&tools, "read_file", args).await;
    assert_eq!(
        out,
        "2\ttwo\n3\tthree\n[lines 2-3 of 5; more with offset=4]\n"
    );
    let out = err(&tools, "read_file", json!({ "path": "f.txt", "offset": 9 })).await;
    assert!(out.contains("has 5 lines"), "{out}");
    let out = ok(&tools, "read_file", json!({ "path": "big" })).await;
    assert!(
        out.len() <= OUTPUT_LIMIT && out.ends_with("[lines 1-311 of 1000; more with offset=312]\n")
    );
    fs::write(dir.path().join("bin"), b"ab\0cd").expect("write");
    assert!(
        err(&tools, "read_file", json!({ "path": "bin" }))
            .await
            .contains("binary")
    );
    assert!(
        err(&tools, "read_file", json!({ "path": "nope" }))
            .await
            .contains("nope")
    );
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("fifo");
    for name in ["read_file", "write_file"] {
        let out = err(&tools, name, json!({ "path": "fifo", "content": "" })).await;
        assert!(out.contains("not a regular file"), "{out}");
    }
}

#[tokio::test]
async fn write_and_edit_files() {
    let (dir, tools) = setup(&[]);
    let args = json!({ "path": "src/new/lib.rs", "content": "fn a() {}\nfn b() {}\n" });
    let outcome = tools.call("write_file", &args).await;
    assert_eq!(outcome.output, "wrote 20 bytes to src/new/lib.rs");
    assert_eq!(outcome.edited.as_deref(), Some("src/new/lib.rs"));
    let args = json!({ "path": "src/new/lib.rs", "old": "fn b", "new": "pub fn b" });
    let outcome = tools.call("edit_file", &args).await;
    assert_eq!(outcome.output, "edited src/new/lib.rs at line 2");
    assert_eq!(outcome.edited.as_deref(), Some("src/new/lib.rs"));
    let content = fs::read_to_string(dir.path().join("src/new/lib.rs")).expect("read");
    assert_eq!(content, "fn a() {}\npub fn b() {}\n");
    for (old, times) in [("fn c", "occurs 0 times"), ("() {}", "occurs 2 times")] {
        let args = json!({ "path": "src/new/lib.rs", "old": old, "new": "" });
        let out = err(&tools, "edit_file", args).await;
        assert!(out.contains(times), "{out}");
    }
    let out = err(
        &tools,
        "write_file",
        json!({ "path": "src", "content": "" }),
    )
    .await;
    assert!(out.contains("is a directory"), "{out}");
}

#[tokio::test]
async fn search_honours_gitignore() {
    let (dir, tools) = setup(&[
        (".gitignore", "target/\n"),
        ("src/main.rs", "fn main() {\n    needle();\n}\n"),
        ("src/.gitignore", "gen.rs\n"),
        ("src/gen.rs", "needle\n"),
        ("target/out.rs", "needle\n"),
        (".env", "needle=1\n"),
        (".git/HEAD", "needle\n"),
    ]);
    let out = ok(&tools, "search", json!({ "pattern": r"needle\(?" })).await;
    assert_eq!(out, ".env:1:needle=1\nsrc/main.rs:2:    needle();\n");
    let out = ok(
        &tools,
        "search",
        json!({ "pattern": "needle", "path": "src" }),
    )
    .await;
    assert_eq!(out, "src/main.rs:2:    needle();\n");
    assert_eq!(
        ok(&tools, "search", json!({ "pattern": "hay" })).await,
        "no matches\n"
    );
    assert!(
        err(&tools, "search", json!({ "pattern": "(" }))
            .await
            .contains("invalid regex")
    );
    put(dir.path(), "many.txt", &"hit\n".repeat(300));
    let out = ok(
        &tools,
        "search",
        json!({ "pattern": "hit", "path": "many.txt" }),
    )
    .await;
    assert_eq!(out.lines().count(), SEARCH_LIMIT + 1);
    assert!(out.ends_with("[stopped at 200 matches; narrow the pattern or the path]\n"));
}

#[tokio::test]
async fn escapes_are_refused() {
    let (dir, tools) = setup(&[(".git/config", "[core]\n"), ("a/in.txt", "fine\n")]);
    let elsewhere = tempfile::tempdir().expect("temp dir");
    put(elsewhere.path(), "secret", "s3cret\n");
    symlink(elsewhere.path(), dir.path().join("out")).expect("symlink");
    symlink("/tmp/massgen-nowhere/x", dir.path().join("dangling")).expect("symlink");
    symlink("a", dir.path().join("alias")).expect("symlink");
    for path in [
        "../x",
        "/etc/passwd",
        "a/../../x",
        "out/secret",
        "out/new",
        "dangling",
    ] {
        let out = err(&tools, "read_file", json!({ "path": path })).await;
        assert!(out.contains("is outside the worktree"), "{path}: {out}");
        let out = err(
            &tools,
            "write_file",
            json!({ "path": path, "content": "x" }),
        )
        .await;
        assert!(out.contains("is outside the worktree"), "{path}: {out}");
    }
    for name in ["list_files", "search", "edit_file"] {
        let args = json!({ "path": "out", "pattern": "s", "old": "s", "new": "x" });
        assert!(
            err(&tools, name, args)
                .await
                .contains("is outside the worktree")
        );
    }
    assert_eq!(fs::read_dir(elsewhere.path()).expect("ls").count(), 1);
    assert!(!Path::new("/tmp/massgen-nowhere").exists());
    for path in [".git/config", ".git", "a/../.git/hooks/pre-commit"] {
        let out = err(
            &tools,
            "write_file",
            json!({ "path": path, "content": "x" }),
        )
        .await;
        assert!(out.contains("is inside .git"), "{out}");
    }
    assert_eq!(
        fs::read_to_string(dir.path().join(".git/config")).expect("read"),
        "[core]\n"
    );
    // Symlinks and `..` that stay inside are fine.
    let out = ok(&tools, "read_file", json!({ "path": "alias/in.txt" })).await;
    assert_eq!(out, "1\tfine\n");
    let args = json!({ "path": "a/../alias/new.txt", "content": "x" });
    assert_eq!(
        tools.call("write_file", &args).await.edited.as_deref(),
        Some("a/new.txt")
    );
}

/// Whether process group `pgid` has no live (not zombie) process left, within 2 s:
/// SIGKILL takes a moment to land.
fn group_gone(pgid: &str) -> bool {
    let live = || {
        let dirs = fs::read_dir("/proc").expect("/proc").flatten();
        // `pid (comm) state ppid pgrp ...`, and comm may hold anything.
        let mut stats = dirs.filter_map(|e| fs::read_to_string(e.path().join("stat")).ok());
        stats.any(|stat| {
            let f: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            f.len() > 2 && f[0] != "Z" && f[2] == pgid
        })
    };
    let started = Instant::now();
    while live() {
        if started.elapsed() > Duration::from_secs(2) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn run_reports_exit_code_and_output() {
    let (dir, tools) = setup(&[]);
    let args = json!({ "command": "echo out; echo err >&2; touch made; exit 3" });
    assert_eq!(ok(&tools, "run", args).await, "exit code 3\nout\nerr\n");
    assert!(dir.path().join("made").exists());
    assert_eq!(
        ok(&tools, "run", json!({ "command": "true" })).await,
        "exit code 0\n(no output)"
    );
    assert!(
        err(&tools, "run", json!({ "command": 7 }))
            .await
            .contains("must be a string")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_timeout_kills_the_group() {
    let (_dir, tools) = setup(&[]);
    let started = Instant::now();
    let args = json!({ "command": "echo $$; sleep 30 & sleep 30", "timeout": 1 });
    let out = ok(&tools, "run", args).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(out.starts_with("timed out after 1 s"), "{out}");
    let pgid = out.lines().nth(1).expect("pid line");
    assert!(group_gone(pgid), "group {pgid} still runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_keeps_the_tail_and_kills_background_jobs() {
    let (_dir, tools) = setup(&[]);
    let args = json!({ "command": "head -c 40000 /dev/zero | tr '\\0' a; echo; echo END" });
    let out = ok(&tools, "run", args).await;
    let cut = format!(
        "exit code 0\n[{} earlier bytes of output cut;",
        40005 - RUN_TAIL
    );
    assert!(
        out.starts_with(&cut) && out.ends_with("aaa\nEND\n"),
        "{}",
        &out[..80]
    );
    let args = json!({ "command": "sleep 30 >/dev/null 2>&1 & echo $$" });
    let out = ok(&tools, "run", args).await;
    let pgid = out.lines().nth(1).expect("pid line");
    assert!(group_gone(pgid), "background job of {pgid} survived");
}

#[tokio::test]
async fn finish_specs_and_bad_calls() {
    let (_dir, tools) = setup(&[]);
    let outcome = tools.call("finish", &json!({ "summary": "done" })).await;
    assert_eq!(
        (outcome.finish.as_deref(), outcome.is_error),
        (Some("done"), false)
    );
    assert!(
        err(&tools, "finish", json!({}))
            .await
            .contains("missing argument `summary`")
    );
    assert!(
        err(&tools, "rm_rf", json!({}))
            .await
            .contains("unknown tool `rm_rf`")
    );
    assert!(
        err(&tools, "read_file", json!([1]))
            .await
            .contains("JSON object")
    );
    let args = json!({ "path": "x", "offset": -1 });
    assert!(
        err(&tools, "read_file", args)
            .await
            .contains("`offset` must be")
    );
    let names: Vec<_> = specs().iter().map(|s| s.name).collect();
    let order = [
        "list_files",
        "read_file",
        "write_file",
        "edit_file",
        "search",
        "run",
        "finish",
    ];
    assert_eq!(names, order);
}
