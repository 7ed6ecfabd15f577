//! CLI agent presets without the real CLIs: `init` detection, `doctor`, the checks of preset
//! keys in the configuration, the API key check of `run`, the prompt template, and fake CLIs
//! (shell scripts replaying recorded event streams) driven through a whole run.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::support::{TestRepo, candidate};

/// Where `git`, `sh` and the coreutils live; the real agent CLIs are not installed here.
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

const PRESETS: [&str; 6] = ["claude", "codex", "gemini", "opencode", "qwen", "aider"];

/// A recorded Claude Code session that writes hello.txt.
const CLAUDE_WRITE: &str = include_str!("../fixtures/streams/claude-write.jsonl");
const CLAUDE_SESSION: &str = "d700bdb4-c242-4743-9d4e-45c1400dc852";

/// Writes an executable script; returns its path.
fn executable(path: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("a script lives in a directory")).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_owned()
}

/// A directory of fake CLIs that print a version and exit.
fn fake_clis(repo: &TestRepo, names: &[&str]) -> PathBuf {
    let dir = repo.scratch("fakebin");
    for name in names {
        executable(&dir.join(name), &format!("echo \"fake {name} 1.0\""));
    }
    dir
}

/// The presets whose binary is installed in [`SYSTEM_PATH`] itself.
fn presets_on_system_path() -> Vec<&'static str> {
    PRESETS
        .into_iter()
        .filter(|name| {
            std::env::split_paths(SYSTEM_PATH).any(|dir| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(dir.join(name))
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        })
        .collect()
}

/// A TOML string holding `s`.
fn toml_str(s: impl AsRef<str>) -> String {
    toml::Value::String(s.as_ref().to_owned()).to_string()
}

/// A free port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The `[[agents]]` of a configuration file as (name, kind) pairs.
fn agents_of(text: &str) -> Vec<(String, String)> {
    let value: toml::Table = toml::from_str(text).expect("the config is TOML");
    let Some(agents) = value.get("agents") else {
        return Vec::new();
    };
    agents
        .as_array()
        .expect("agents is an array")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["kind"].as_str().unwrap_or("command").to_owned(),
            )
        })
        .collect()
}

/// The doctor check `name` of `agent`.
fn check<'a>(json: &'a serde_json::Value, agent: &str, name: &str) -> &'a serde_json::Value {
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["agent"] == agent && c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check of {agent} in {json:#}"))
}

/// The `field` (`detail` or `fix`) of a doctor check, as text.
fn said<'a>(json: &'a serde_json::Value, agent: &str, name: &str, field: &str) -> &'a str {
    check(json, agent, name)[field]
        .as_str()
        .unwrap_or_else(|| panic!("the {name} check of {agent} has no {field}: {json:#}"))
}

/// The names of the checks of `agent`, in order.
fn checks_of(json: &serde_json::Value, agent: &str) -> Vec<String> {
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["agent"] == agent)
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts nothing of a run was created: no branch, no worktree, no run directory.
fn assert_no_run(repo: &TestRepo) {
    assert!(repo.massgen_branches().is_empty(), "branches were created");
    assert_eq!(repo.worktree_count(), 1, "a worktree was created");
    let runs = repo.path.join(".massgen/runs");
    let entries = std::fs::read_dir(&runs).map_or(0, |d| d.count());
    assert_eq!(entries, 0, "{} holds a run", runs.display());
}

#[test]
fn init_writes_an_agent_for_each_cli_on_path() {
    let repo = TestRepo::new();
    let fake = fake_clis(&repo, &["claude", "codex"]);
    let path = format!("{}:{SYSTEM_PATH}", fake.display());
    let run = repo
        .massgen()
        .env("PATH", &path)
        .args(["init"])
        .run()
        .expect_code(0);
    // Presets installed system-wide are found too; the fakes must be found in any case.
    let system = presets_on_system_path();
    let expected: Vec<(String, String)> = PRESETS
        .into_iter()
        .filter(|p| ["claude", "codex"].contains(p) || system.contains(p))
        .map(|p| (p.to_owned(), p.to_owned()))
        .collect();
    let text = repo.read(".massgen/config.toml");
    assert_eq!(agents_of(&text), expected, "{text}");
    let names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    run.assert_stdout(&format!("agents: {}", names.join(", ")));
    assert_eq!(
        repo.read(".massgen/.gitignore")
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        ["/runs/", "/reviews/"]
    );

    // The written file is a valid configuration, and its agents resolve to the fakes.
    let json = repo
        .massgen()
        .env("PATH", &path)
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("OPENAI_API_KEY", "sk-test")
        .args(["doctor", "--offline", "--json"])
        .args(["-a", "claude", "-a", "codex"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(json["ok"], true, "{json:#}");
    for name in ["claude", "codex"] {
        assert_eq!(
            checks_of(&json, name),
            ["binary", "version", "credentials"],
            "{json:#}"
        );
        assert_eq!(
            check(&json, name, "binary")["detail"],
            fake.join(name).display().to_string()
        );
        assert_eq!(
            check(&json, name, "version")["detail"],
            format!("fake {name} 1.0")
        );
    }
}

#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn init_without_clis_writes_no_agents() {
    let system = presets_on_system_path();
    if !system.is_empty() {
        eprintln!("SKIPPED init_without_clis_writes_no_agents: {system:?} in {SYSTEM_PATH}");
        return;
    }
    let repo = TestRepo::new();
    let run = repo
        .massgen()
        .env("PATH", SYSTEM_PATH)
        .args(["init"])
        .run()
        .expect_code(0);
    run.assert_stdout("no agent CLI found on PATH");
    let text = repo.read(".massgen/config.toml");
    assert!(agents_of(&text).is_empty(), "{text}");
    // The file parses, and says there is nothing to run.
    let run = repo
        .massgen()
        .env("PATH", SYSTEM_PATH)
        .args(["doctor", "--offline"])
        .run()
        .expect_code(2);
    run.assert_stderr("no agents are configured");
    let run = repo
        .massgen()
        .env("PATH", SYSTEM_PATH)
        .args(["run", "task"])
        .run()
        .expect_code(2);
    run.assert_stderr("no agents to run");
    assert_no_run(&repo);
}

#[test]
fn doctor_passes_an_agent_with_binary_key_and_listening_endpoint() {
    let repo = TestRepo::new();
    let bin = executable(
        &repo.root.join("bin/my-claude"),
        "[ \"$1\" = --version ] || exit 9\necho\necho '2.1.0 (Claude Code)'\necho 'update available'",
    );
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/v1",
        server.local_addr().unwrap().port()
    );
    repo.configure(&format!(
            "[[agents]]\nname = \"cc\"\nkind = \"claude\"\nbin = {}\napi_key_env = \"MY_KEY\"\nbase_url = {}\n",
            toml_str(bin.display().to_string()),
            toml_str(&url)
        ),
    );
    let json = repo
        .massgen()
        .env("MY_KEY", "sk-test")
        .args(["doctor", "--json"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(
        checks_of(&json, "cc"),
        ["binary", "version", "credentials", "endpoint"]
    );
    for c in json["checks"].as_array().unwrap() {
        assert_eq!(c["ok"], true, "{c:#}");
        assert!(c.get("fix").is_none(), "{c:#}");
    }
    // The first non-empty line of `BIN --version`.
    assert_eq!(
        check(&json, "cc", "version")["detail"],
        "2.1.0 (Claude Code)"
    );
    assert_eq!(
        check(&json, "cc", "binary")["detail"],
        bin.display().to_string()
    );
    assert_eq!(said(&json, "cc", "credentials", "detail"), "MY_KEY is set");
    assert!(said(&json, "cc", "endpoint", "detail").starts_with(&url));
    // The same in words.
    let run = repo
        .massgen()
        .env("MY_KEY", "sk-test")
        .args(["doctor"])
        .run()
        .expect_code(0);
    run.assert_stdout("ok   cc: version: 2.1.0 (Claude Code)");
    run.assert_stdout("all 1 agent(s) look ready");
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
}

#[test]
fn doctor_reports_every_problem_with_a_fix() {
    let repo = TestRepo::new();
    let bin = executable(&repo.root.join("bin/claude"), "echo 'fake 1.0'");
    let broken = executable(
        &repo.root.join("bin/broken"),
        "echo 'cannot find module' >&2; exit 3",
    );
    let url = format!("http://127.0.0.1:{}", closed_port());
    repo.configure(&format!(
            "[[agents]]\nname = \"nobin\"\nkind = \"claude\"\nbin = {}\napi_key_env = \"MY_KEY\"\nbase_url = {url}\n\n\
             [[agents]]\nname = \"nokey\"\nkind = \"claude\"\nbin = {}\napi_key_env = \"MY_KEY\"\nbase_url = {url}\n\n\
             [[agents]]\nname = \"noversion\"\nkind = \"claude\"\nbin = {}\nown_config = true\nbase_url = {url}\n",
            toml_str(repo.root.join("bin/nonexistent").display().to_string()),
            toml_str(bin.display().to_string()),
            toml_str(broken.display().to_string()),
            url = toml_str(&url),
        ),
    );
    let json = repo
        .massgen()
        .args(["doctor", "--json"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(json["ok"], false, "{json:#}");
    let failing: BTreeSet<(String, String)> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            let fix = c["fix"].as_str().unwrap_or_default();
            assert!(!fix.is_empty(), "a failing check without a fix: {c:#}");
            (
                c["agent"].as_str().unwrap().to_owned(),
                c["check"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (agent, name) in [
        ("nobin", "binary"),
        ("nokey", "credentials"),
        ("nokey", "endpoint"),
        ("noversion", "version"),
        ("noversion", "endpoint"),
    ] {
        assert!(
            failing.contains(&(agent.to_owned(), name.to_owned())),
            "{agent} {name} does not fail: {json:#}"
        );
    }
    assert_eq!(check(&json, "nokey", "binary")["ok"], true);
    assert_eq!(check(&json, "nokey", "version")["ok"], true);
    assert_eq!(check(&json, "noversion", "credentials")["ok"], true);
    assert!(said(&json, "noversion", "version", "detail").contains("cannot find module"));
    assert_eq!(
        said(&json, "nokey", "credentials", "detail"),
        "MY_KEY is not set (or empty)"
    );
    assert!(said(&json, "nokey", "credentials", "fix").contains("export MY_KEY=<key>"));
    assert!(said(&json, "nokey", "endpoint", "detail").starts_with(&url));

    let run = repo.massgen().args(["doctor"]).run().expect_code(1);
    run.assert_stdout("FAIL nobin: binary:");
    run.assert_stdout("is not an executable file");
    run.assert_stdout("     fix: point `bin` at the installed binary, or install it: npm install -g @anthropic-ai/claude-code");
    run.assert_stdout("FAIL nokey: credentials: MY_KEY is not set (or empty)");
    run.assert_stdout("     fix: export MY_KEY=<key>");
    run.assert_stdout("FAIL nokey: endpoint:");
    run.assert_stdout("     fix: start the server, or fix `base_url`");
    run.assert_stdout("FAIL noversion: version:");
    run.assert_stdout(&format!("{} problem(s) found", failing.len()));
}

#[test]
fn doctor_passes_credentials_with_own_config_and_no_key() {
    let repo = TestRepo::new();
    let bin = executable(&repo.root.join("bin/claude"), "echo 'fake 1.0'");
    let agent = format!(
        "[[agents]]\nname = \"cc\"\nkind = \"claude\"\nbin = {}\n",
        toml_str(bin.display().to_string())
    );
    // Without a key, the preset's default variable is missing...
    repo.configure(&agent);
    let json = repo
        .massgen()
        .args(["doctor", "--offline", "--json"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(check(&json, "cc", "credentials")["ok"], false, "{json:#}");
    assert_eq!(
        said(&json, "cc", "credentials", "detail"),
        "ANTHROPIC_API_KEY is not set (or empty)"
    );
    // ...and with the user's own login there is nothing to check.
    repo.configure(&format!("{agent}own_config = true\n"));
    let json = repo
        .massgen()
        .args(["doctor", "--offline", "--json"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(check(&json, "cc", "credentials")["ok"], true);
    assert!(said(&json, "cc", "credentials", "detail").contains("own_config"));
    // --offline skips the endpoint.
    assert_eq!(checks_of(&json, "cc"), ["binary", "version", "credentials"]);
}

#[test]
fn doctor_checks_a_command_agents_program_and_knows_its_agents() {
    let repo = TestRepo::new();
    repo.configure(
        "[[agents]]\nname = \"ghost\"\ncommand = [\"no-such-agent-program\", \"{task}\"]\n\n\
         [[agents]]\nname = \"shell\"\ncommand = [\"sh\", \"-c\", \"true\"]\n",
    );
    let json = repo
        .massgen()
        .args(["doctor", "--json"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(json["ok"], false);
    assert_eq!(check(&json, "ghost", "binary")["ok"], false, "{json:#}");
    let detail = said(&json, "ghost", "binary", "detail");
    assert!(detail.contains("`no-such-agent-program` not found on PATH"));
    assert!(!said(&json, "ghost", "binary", "fix").is_empty());
    assert_eq!(check(&json, "shell", "binary")["ok"], true, "{json:#}");
    assert!(said(&json, "shell", "binary", "detail").ends_with("/sh"));
    // A command agent has nothing else to check.
    assert_eq!(checks_of(&json, "shell"), ["binary"]);
    // Selecting the good one alone passes; selecting an unknown one is a usage error.
    repo.massgen()
        .args(["doctor", "--agent", "shell"])
        .run()
        .expect_code(0);
    let run = repo
        .massgen()
        .args(["doctor", "--agent", "nosuch"])
        .run()
        .expect_code(2);
    run.assert_stderr("no agent named `nosuch`");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn preset_keys_are_checked_with_file_line_and_column() {
    let cases = [
        (
            "[[agents]]\nname = \"a\"\ncommand = [\"true\"]\nmodel = \"opus\"\n",
            "config.toml:2:8: ",
            "`model` applies to CLI presets",
        ),
        (
            "[[agents]]\nname = \"a\"\nkind = \"claude\"\ncommand = [\"claude\"]\n",
            "config.toml:2:8: ",
            "use `bin` and `args` instead of `command`",
        ),
        (
            "[[agents]]\nname = \"a\"\nkind = \"codex\"\nbase_url = \"ftp://x\"\n",
            "config.toml:2:8: ",
            "base_url = \"ftp://x\" must start with http:// or https://",
        ),
        (
            "[[agents]]\nname = \"a\"\nkind = \"gemini\"\napi_key_env = \"1BAD\"\n",
            "config.toml:2:8: ",
            "api_key_env = \"1BAD\" is not an environment variable name",
        ),
        (
            "[[agents]]\nname = \"a\"\nkind = \"cursor\"\n",
            "config.toml:3:8: ",
            "unknown agent kind `cursor`: expected `command`, `llm` or one of claude, codex",
        ),
        (
            "[[agents]]\nname = \"a\"\nkind = \"claude\"\nmodle = \"x\"\n",
            "config.toml:4:1: ",
            "unknown field `modle`",
        ),
    ];
    for (config, at, message) in cases {
        let repo = TestRepo::new();
        repo.write(".massgen/config.toml", config);
        for args in [&["run", "task"][..], &["doctor", "--offline"][..]] {
            let run = repo.massgen().args(args).run().expect_code(2);
            let line = run.stderr.lines().find(|l| l.contains(at));
            assert!(
                line.is_some_and(|l| l.contains(message)),
                "no `{at}...{message}` line:\n{}",
                run.stderr
            );
        }
        assert_no_run(&repo);
    }
}

#[test]
fn run_refuses_a_preset_whose_key_variable_is_unset() {
    let repo = TestRepo::new();
    let started = repo.root.join("started");
    let bin = executable(
        &repo.root.join("bin/claude"),
        &format!("touch {}", started.display()),
    );
    repo.configure(&format!(
        "[[agents]]\nname = \"cc\"\nkind = \"claude\"\nbin = {}\napi_key_env = \"MY_KEY\"\n",
        toml_str(bin.display().to_string())
    ));
    // Unset, and set but empty.
    for key in [None, Some("")] {
        let mut cmd = repo.massgen().args(["run", "--json", "write hello.txt"]);
        if let Some(value) = key {
            cmd = cmd.env("MY_KEY", value);
        }
        let run = cmd.run().expect_code(2);
        run.assert_stderr("api_key_env = \"MY_KEY\", but MY_KEY is not set");
        run.assert_stderr("hint: export MY_KEY=");
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert_no_run(&repo);
        assert!(!started.exists(), "the agent was started");
    }
}

#[test]
fn command_agents_get_the_task_in_the_default_prompt_template() {
    let repo = TestRepo::new();
    repo.configure("[[agents]]\nname = \"copy\"\n\
         command = [\"sh\", \"-c\", \"cp \\\"$MASSGEN_PROMPT_FILE\\\" prompt-seen.txt; cp \\\"$1\\\" prompt-arg.txt\", \"sh\", \"{prompt_file}\"]\n",
    );
    let task = "Add a greeting file named hello.txt";
    let json = repo
        .massgen()
        .args(["run", "--json", "--keep", "--test", "true", "--", task])
        .run()
        .expect_code(0)
        .json();
    let c = candidate(&json, "copy");
    assert_eq!(c["status"], "done", "{c:#}");
    let branch = c["branch"].as_str().unwrap();
    let worktree = c["worktree"].as_str().expect("kept worktree");
    let seen = repo.git(&["show", &format!("{branch}:prompt-seen.txt")]);
    assert!(seen.contains(task), "{seen}");
    // The built-in template's rule about questions.
    assert!(seen.contains("No human is available"), "{seen}");
    assert!(
        seen.contains(&format!("Your worktree: {worktree}")),
        "{seen}"
    );
    assert!(seen.contains("Run the project's tests (`true`)"), "{seen}");
    assert_eq!(
        repo.git(&["show", &format!("{branch}:prompt-arg.txt")]),
        seen
    );
    // The prompt is kept with the run.
    let run_id = json["run"].as_str().unwrap();
    let kept = repo.read(&format!(".massgen/runs/{run_id}/prompts/copy.md"));
    assert_eq!(kept.trim_end(), seen);
}

#[test]
fn a_prompt_template_override_reaches_file_env_and_argv_intact() {
    let repo = TestRepo::new();
    repo.write(
        ".massgen/templates/prompt.md",
        "CUSTOM {task} in {worktree}",
    );
    repo.configure("[[agents]]\nname = \"copy\"\n\
         command = [\"sh\", \"-c\", \"cp \\\"$MASSGEN_PROMPT_FILE\\\" prompt-seen.txt\"]\n\n\
         [[agents]]\nname = \"argv\"\n\
         command = [\"sh\", \"-c\", \"printf '%s' \\\"$1\\\" > prompt-arg.txt; echo $# > argc.txt\", \"sh\", \"{prompt}\"]\n",
    );
    let task = "Fix \"quotes\", 'single' and $(touch pwned) `touch pwned2` {worktree} $HOME";
    let json = repo
        .massgen()
        .args(["run", "--json", "--keep", "--", task])
        .run()
        .expect_code(0)
        .json();
    let show = |agent: &str, file: &str| {
        let branch = candidate(&json, agent)["branch"].as_str().unwrap();
        let out = repo.git_output(&["show", &format!("{branch}:{file}")]);
        assert!(out.status.success(), "{agent} left no {file}");
        String::from_utf8(out.stdout).unwrap()
    };
    let worktree = |agent: &str| {
        candidate(&json, agent)["worktree"]
            .as_str()
            .expect("kept worktree")
            .to_owned()
    };
    assert_eq!(
        show("copy", "prompt-seen.txt"),
        format!("CUSTOM {task} in {}", worktree("copy"))
    );
    // One argument, the task's own `{worktree}` and `$(...)` left as written.
    assert_eq!(
        show("argv", "prompt-arg.txt"),
        format!("CUSTOM {task} in {}", worktree("argv"))
    );
    assert_eq!(show("argv", "argc.txt"), "1\n");
    for agent in ["copy", "argv"] {
        for f in ["pwned", "pwned2"] {
            assert!(!Path::new(&worktree(agent)).join(f).exists(), "{agent} {f}");
        }
    }
}

/// A fake `claude` that records each invocation (argv NUL-separated, environment) under
/// `$OUT` and writes hello.txt, then replays `$OUT/resume.jsonl` when resuming and
/// `$OUT/first.jsonl` otherwise.
const FAKE_CLAUDE: &str = r#"i=1
while [ -e "$OUT/argv.$i" ]; do i=$((i + 1)); done
for a in "$@"; do printf '%s\0' "$a"; done > "$OUT/argv.$i"
env > "$OUT/env.$i"
printf 'hello from the tool\n' > hello.txt
case " $* " in
  *" --resume "*) cat "$OUT/resume.jsonl" ;;
  *) cat "$OUT/first.jsonl" ;;
esac"#;

struct FakeClaude {
    repo: TestRepo,
    out: PathBuf,
}

impl FakeClaude {
    /// A repository with one agent `cc` of kind claude whose `bin` is [`FAKE_CLAUDE`];
    /// `extra` is added to its `[[agents]]` entry.
    fn new(first: &str, resume: &str, extra: &str) -> FakeClaude {
        let repo = TestRepo::new();
        // The stand-in CLI writes what it was given where the test looks: unconfined.
        repo.unconfined();
        let out = repo.scratch("seen");
        std::fs::write(out.join("first.jsonl"), first).unwrap();
        std::fs::write(out.join("resume.jsonl"), resume).unwrap();
        let bin = executable(&repo.root.join("bin/fake-claude"), FAKE_CLAUDE);
        repo.configure(&format!(
            "[[agents]]\nname = \"cc\"\nkind = \"claude\"\nbin = {}\nenv = {{ OUT = {} }}\n{extra}",
            toml_str(bin.display().to_string()),
            toml_str(out.display().to_string()),
        ));
        FakeClaude { repo, out }
    }

    fn run(&self, task: &str) -> serde_json::Value {
        self.repo
            .massgen()
            .env("MY_KEY", "sk-ant-test")
            .args(["run", "--json", "--", task])
            .run()
            .expect_code(0)
            .json()
    }

    /// The arguments of the `n`th invocation, if there was one.
    fn argv(&self, n: usize) -> Option<Vec<String>> {
        let raw = std::fs::read(self.out.join(format!("argv.{n}"))).ok()?;
        let raw = raw.strip_suffix(b"\0").unwrap_or(&raw);
        Some(
            raw.split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into())
                .collect(),
        )
    }

    /// The value of `var` in the `n`th invocation's environment; empty when unset.
    fn env(&self, n: usize, var: &str) -> String {
        let text = std::fs::read_to_string(self.out.join(format!("env.{n}"))).unwrap();
        let prefix = format!("{var}=");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_default()
            .to_owned()
    }
}

/// The argument after `flag`.
fn after<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let i = argv.iter().position(|a| a == flag)?;
    argv.get(i + 1).map(String::as_str)
}

#[test]
fn a_claude_preset_runs_in_its_own_config_home_and_reports_usage() {
    let fake = FakeClaude::new(
        CLAUDE_WRITE,
        "",
        "model = \"test-model\"\nargs = [\"--extra-flag\"]\napi_key_env = \"MY_KEY\"\nbase_url = \"http://127.0.0.1:9/\"\n",
    );
    let task = "Create hello.txt holding a greeting.";
    let json = fake.run(task);
    let run_id = json["run"].as_str().unwrap();
    let c = candidate(&json, "cc");
    assert_eq!(c["kind"], "claude");
    assert_eq!(c["status"], "done", "{c:#}");
    assert_eq!(c["files_changed"], 1);
    assert_eq!(c["usage"]["input_tokens"], 200, "{c:#}");
    assert_eq!(c["usage"]["output_tokens"], 40, "{c:#}");
    assert_eq!(c["usage"]["cost_usd"].as_f64(), Some(0.002), "{c:#}");
    assert_eq!(c["turns"], 2);
    assert_eq!(c["final_message"], "I created hello.txt.");
    assert_eq!(c["asked_for_input"], false);
    assert_eq!(c["nudges"], 0);
    assert_eq!(c["session_id"], CLAUDE_SESSION);
    assert_eq!(json["usage"]["input_tokens"], 200, "{json:#}");
    assert_eq!(
        fake.repo
            .git(&["show", &format!("massgen/{run_id}/cc:hello.txt")]),
        "hello from the tool"
    );

    // Started once, headless, with the prompt after -p and the configured extras.
    assert!(fake.argv(2).is_none(), "started twice");
    let argv = fake.argv(1).expect("started");
    let prompt = fake
        .repo
        .read(&format!(".massgen/runs/{run_id}/prompts/cc.md"));
    assert!(prompt.contains(task), "{prompt}");
    assert_eq!(argv[0], "-p");
    assert_eq!(argv[1], prompt);
    assert_eq!(after(&argv, "--output-format"), Some("stream-json"));
    assert_eq!(after(&argv, "--model"), Some("test-model"));
    assert_eq!(argv.last().map(String::as_str), Some("--extra-flag"));
    assert!(!argv.contains(&"--resume".to_owned()), "{argv:?}");

    // Its own configuration home inside the run, the key and endpoint in its own variables.
    let home = fake
        .repo
        .path
        .join(format!(".massgen/runs/{run_id}/homes/cc"));
    let home = home.canonicalize().expect("the agent's home exists");
    let seen = PathBuf::from(fake.env(1, "CLAUDE_CONFIG_DIR"));
    assert_eq!(seen.canonicalize().ok(), Some(home), "{seen:?}");
    assert_eq!(fake.env(1, "ANTHROPIC_API_KEY"), "sk-ant-test");
    assert_eq!(fake.env(1, "ANTHROPIC_BASE_URL"), "http://127.0.0.1:9");
    assert_eq!(fake.env(1, "MASSGEN_AGENT"), "cc");
}

const ASK_SESSION: &str = "sess-ask-1";
const QUESTION: &str = "Should I use tabs or spaces?";
const ANSWERED: &str = "I chose spaces and created hello.txt.";

/// A session that ends with a question, and its resumption that finishes.
fn asking_streams() -> (String, String) {
    let init = format!(
        r#"{{"type":"system","subtype":"init","session_id":"{ASK_SESSION}","model":"test-model"}}"#
    );
    let result = |text: &str, input: u64, output: u64, cost: f64| {
        format!(
            r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"{text}","session_id":"{ASK_SESSION}","total_cost_usd":{cost},"usage":{{"input_tokens":{input},"output_tokens":{output}}}}}"#
        )
    };
    (
        format!("{init}\n{}\n", result(QUESTION, 10, 5, 0.25)),
        format!("{init}\n{}\n", result(ANSWERED, 20, 7, 0.5)),
    )
}

#[test]
fn a_claude_agent_that_asks_is_resumed_and_told_to_finish() {
    let (first, resume) = asking_streams();
    let fake = FakeClaude::new(&first, &resume, "");
    let json = fake.run("Indent the file.");
    let c = candidate(&json, "cc");
    assert_eq!(c["status"], "done", "{c:#}");
    assert_eq!(c["asked_for_input"], true, "{c:#}");
    assert_eq!(c["nudges"], 1, "{c:#}");
    assert_eq!(c["final_message"], ANSWERED);
    // Both sessions count.
    assert_eq!(c["usage"]["input_tokens"], 30, "{c:#}");
    assert_eq!(c["usage"]["output_tokens"], 12, "{c:#}");
    assert_eq!(c["usage"]["cost_usd"].as_f64(), Some(0.75), "{c:#}");
    assert_eq!(c["turns"], 2, "{c:#}");

    let first_argv = fake.argv(1).expect("first session");
    assert!(!first_argv.contains(&"--resume".to_owned()));
    let second = fake.argv(2).expect("a second session");
    assert_eq!(after(&second, "--resume"), Some(ASK_SESSION), "{second:?}");
    // The follow-up is the nudge, not the task again.
    let nudge = after(&second, "-p").unwrap();
    assert!(nudge.contains("Do not ask again"), "{nudge}");
    assert!(!nudge.contains("Indent the file."), "{nudge}");
    // Both sessions share the agent's configuration home, where the session lives.
    let home = fake.env(1, "CLAUDE_CONFIG_DIR");
    assert!(!home.is_empty());
    assert_eq!(fake.env(2, "CLAUDE_CONFIG_DIR"), home);
    assert!(fake.argv(3).is_none(), "nudged twice");
}

#[test]
fn max_nudges_zero_leaves_the_question_unanswered() {
    let (first, resume) = asking_streams();
    let fake = FakeClaude::new(&first, &resume, "max_nudges = 0\n");
    let json = fake.run("Indent the file.");
    let c = candidate(&json, "cc");
    assert_eq!(c["asked_for_input"], true, "{c:#}");
    assert_eq!(c["nudges"], 0, "{c:#}");
    assert_eq!(c["final_message"], QUESTION);
    assert!(fake.argv(1).is_some());
    assert!(fake.argv(2).is_none(), "resumed despite max_nudges = 0");
}

/// A `--version` that leaves a child holding its output open must not hang `doctor`.
#[test]
fn doctor_does_not_wait_for_what_a_version_probe_leaves_behind() {
    let repo = TestRepo::new();
    let bin = executable(
        &repo.root.join("bin/claude"),
        "echo 'fake 1.0'; sleep 300 &",
    );
    let agent = format!(
        "[[agents]]\nname = \"cc\"\nkind = \"claude\"\nbin = {}\nown_config = true\n",
        toml_str(bin.display().to_string())
    );
    repo.configure(&agent);
    let mut child = repo.massgen().args(["doctor", "--offline"]).spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("doctor still waits on the background child of --version");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

/// In a refinement round a CLI agent continues its own session: `--resume` with the round's
/// prompt (the peers' candidates), `MASSGEN_ROUND`/`MASSGEN_PEERS` set, and a `VOTE:` line
/// of its answer counted.
#[test]
fn a_claude_agent_continues_its_session_in_round_two_and_votes() {
    let (first, _) = asking_streams();
    let first = first.replace(QUESTION, "Done.");
    let (_, resume) = asking_streams();
    let resume = resume.replace(
        ANSWERED,
        "Both work; mine is fine.\\nVOTE: A - it is complete",
    );
    let fake = FakeClaude::new(&first, &resume, "");
    let peer = fake.repo.agent("peer", "echo other > other.txt");
    let json = fake
        .repo
        .massgen()
        .env("MY_KEY", "sk-ant-test")
        .args(["run", "--json", "--rounds", "2", "--agent", "cc"])
        .args(["--agent-cmd", &peer, "--", "Say hello."])
        .run()
        .expect_code(0)
        .json();
    let round2 = fake.argv(2).expect("a second session");
    assert_eq!(after(&round2, "--resume"), Some(ASK_SESSION), "{round2:?}");
    let prompt = after(&round2, "-p").unwrap_or_else(|| round2.last().unwrap());
    assert!(
        round2
            .iter()
            .any(|a| a.contains("Round 2") && a.contains("## Candidate B")),
        "{prompt}"
    );
    assert_eq!(fake.env(2, "MASSGEN_ROUND"), "2");
    assert!(fake.env(2, "MASSGEN_PEERS").ends_with("peers.json"));
    assert!(fake.argv(3).is_none(), "nudged after voting");
    let c = candidate(&json, "cc");
    assert_eq!(
        crate::support::actions(&json, "cc"),
        ["worked", "voted"],
        "{c:#}"
    );
    let vote = &json["votes"][0];
    assert_eq!(vote["judge"], "cc");
    assert_eq!(vote["by"], "agent");
    assert_eq!(vote["reason"], "it is complete");
    assert_eq!(c["usage"]["input_tokens"], 30, "{c:#}");
}
