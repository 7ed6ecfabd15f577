//! Test helpers: a real git repository in a temp dir with a sealed environment (no user or
//! system git config, fixed identity and dates, private HOME and cache), and a runner for
//! the `git-massgen` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const CALC: &str = include_str!("../../templates/demo/calc.sh");
pub const TEST: &str = include_str!("../../templates/demo/test.sh");

/// A repository under test.
pub struct TestRepo {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub path: PathBuf,
}

/// Applies the sealed environment to a command.
pub fn seal(cmd: &mut Command, root: &Path) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root.join("home"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env("GIT_CONFIG_GLOBAL", root.join("home/.gitconfig"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test User")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test User")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .env("LC_ALL", "C");
}

impl TestRepo {
    /// A repository with the calculator project (a failing test) committed on `main`.
    pub fn new() -> TestRepo {
        TestRepo::named("repo")
    }

    /// Like [`TestRepo::new`], in a directory called `name` (may contain spaces).
    pub fn named(name: &str) -> TestRepo {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().to_owned();
        std::fs::create_dir_all(root.join("home")).unwrap();
        std::fs::write(root.join("home/.gitconfig"), "").unwrap();
        let path = root.join(name);
        std::fs::create_dir_all(&path).unwrap();
        let repo = TestRepo {
            _tmp: tmp,
            root,
            path,
        };
        repo.git(&["init", "-q", "--initial-branch=main"]);
        repo.write("calc.sh", CALC);
        repo.write("test.sh", TEST);
        repo.write("README", "calculator\n");
        repo.commit_all("initial");
        repo
    }

    /// An empty directory in the test's temp area (not a repository).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.root.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path.join(rel)).unwrap()
    }

    /// Commits a `.massgen/config.toml` the way `git massgen init` leaves it (with the
    /// `.gitignore` that keeps runs out of `git status`).
    pub fn configure(&self, config: &str) {
        self.write(".massgen/config.toml", config);
        self.write(".massgen/.gitignore", "/runs/\n");
        self.commit_all("configure agents");
    }

    /// Runs here unconfined (`massgen.sandbox = off`): for tests whose agents or commands
    /// write where the test watches, outside their worktrees.
    pub fn unconfined(&self) {
        self.git(&["config", "massgen.sandbox", "off"]);
    }

    pub fn commit_all(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
    }

    /// Runs git in the repository; panics unless it succeeds; returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn git_output(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("git");
        seal(&mut cmd, &self.root);
        cmd.current_dir(&self.path)
            .args(args)
            .output()
            .expect("git runs")
    }

    /// An agent script in the test's temp area; returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let dir = self.root.join("agents");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        p
    }

    /// `--agent-cmd NAME=sh SCRIPT` for a script made with [`TestRepo::script`].
    pub fn agent(&self, name: &str, body: &str) -> String {
        let p = self.script(&format!("{name}.sh"), body);
        format!("{name}=sh {}", shell_words::quote(&p.display().to_string()))
    }

    /// `git massgen run --json FLAGS --agent-cmd NAME=sh SCRIPT… TASK`, asserting the exit
    /// code; returns the run JSON. Each agent is a name and a shell script body.
    pub fn run_json(
        &self,
        flags: &[&str],
        agents: &[(&str, &str)],
        task: &str,
        code: i32,
    ) -> serde_json::Value {
        let mut cmd = self.massgen().args(["run", "--json"]).args(flags);
        for (name, body) in agents {
            cmd = cmd.args(["--agent-cmd", &self.agent(name, body)]);
        }
        cmd.args(["--", task]).expect_json(code)
    }

    /// A `git massgen` command in this repository.
    pub fn massgen(&self) -> Massgen {
        Massgen::new(&self.root, &self.path)
    }

    /// The branches whose names start with `massgen/`.
    pub fn massgen_branches(&self) -> Vec<String> {
        let out = self.git(&[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/massgen/",
        ]);
        out.lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The only run's state file, once it exists.
    pub fn state_of_only_run(&self) -> Option<serde_json::Value> {
        let runs = self.path.join(".massgen/runs");
        let entry = std::fs::read_dir(runs).ok()?.flatten().next()?;
        let text = std::fs::read_to_string(entry.path().join("state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Number of entries in `git worktree list`.
    pub fn worktree_count(&self) -> usize {
        self.git(&["worktree", "list", "--porcelain"])
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count()
    }

    /// Asserts `git fsck` finds nothing.
    pub fn assert_fsck_clean(&self) {
        let out = self.git_output(&["fsck", "--no-progress"]);
        assert!(
            out.status.success(),
            "fsck: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !text.contains("error") && !text.contains("broken"),
            "fsck: {text}"
        );
    }
}

/// A `git-massgen` invocation.
pub struct Massgen {
    cmd: Command,
    stdin: Option<String>,
}

impl Massgen {
    pub fn new(root: &Path, dir: &Path) -> Massgen {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_git-massgen"));
        seal(&mut cmd, root);
        cmd.current_dir(dir);
        Massgen { cmd, stdin: None }
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(
        mut self,
        args: I,
    ) -> Massgen {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Massgen {
        self.cmd.env(key, value);
        self
    }

    pub fn stdin(mut self, text: &str) -> Massgen {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Runs to completion.
    pub fn run(mut self) -> Run {
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("git-massgen starts");
        if let Some(text) = self.stdin.take() {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs to completion, asserts the exit code and parses stdout as JSON.
    pub fn expect_json(self, code: i32) -> serde_json::Value {
        self.run().expect_code(code).json()
    }

    /// Starts without waiting.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git-massgen starts")
    }
}

/// The outcome of a `git-massgen` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts stderr contains `needle`, showing stderr when it does not.
    pub fn assert_stderr(&self, needle: &str) {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
    }

    /// Asserts stdout contains `needle`, showing stdout when it does not.
    pub fn assert_stdout(&self, needle: &str) {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The candidate object of `agent` in run JSON.
pub fn candidate<'a>(run: &'a serde_json::Value, agent: &str) -> &'a serde_json::Value {
    run["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c["agent"] == agent)
        .unwrap_or_else(|| panic!("no candidate {agent} in {run}"))
}

/// What `agent` did in each round of a run (`worked`, `revised`, `voted`, ...).
pub fn actions(run: &serde_json::Value, agent: &str) -> Vec<String> {
    candidate(run, agent)["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["action"].as_str().expect("an action").to_owned())
        .collect()
}

/// Agent bodies for the calculator project.
pub const FIX: &str = "sed 's/\\$2 - \\$3/$2 + $3/' calc.sh > calc.tmp && mv calc.tmp calc.sh";
pub const BREAK: &str = "sed -e 's/\\$2 - \\$3/$2 + $3/' -e 's/\\$2 \\* \\$3/$2 + $3/' calc.sh > calc.tmp && mv calc.tmp calc.sh";

/// Processes still running for `run` (their environment names it).
pub fn processes_of(run: &str) -> Vec<String> {
    let marker = format!("MASSGEN_RUN={run}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// Polls `cond` every 50 ms until it holds; fails after 30 s naming `what`.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
