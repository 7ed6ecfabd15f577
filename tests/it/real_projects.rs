//! Real Python and Node projects made ready to test in every worktree by the features meant
//! for them: an editable `pip install -e .` (its imports fixed for a `src/` layout, a hint
//! otherwise), the test command `init` writes for a `src/` layout, `node_modules` brought in by `[worktree] clone` or installed by
//! `[worktree] setup`, and `MASSGEN_PORT` for tests that listen.
//!
//! The packages come from `scripts/prepare-fixtures.sh` (`.ci/run` calls it), since tests
//! never use the network; it leaves them in `$MASSGEN_FIXTURES`, by default this
//! checkout's `target/fixtures`. A test whose tool (python3, node, npm) or fixture is
//! missing is skipped with a `SKIPPED` line on stderr.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestRepo, candidate, seal};

/// Where `scripts/prepare-fixtures.sh` left its fixtures.
fn fixtures() -> PathBuf {
    std::env::var_os("MASSGEN_FIXTURES")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures"))
}

/// `program` in the sealed environment of `repo`'s tests, kept away from the machine's pip
/// configuration and from pip's version check (which uses the network).
fn sealed(repo: &TestRepo, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    seal(&mut cmd, &repo.root);
    cmd.env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    cmd
}

/// Runs `cmd`; its output, or what failed and the last error line it printed.
fn succeeds(cmd: &mut Command) -> Result<String, String> {
    let what = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.output().map_err(|e| format!("`{what}`: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Ok(text);
    }
    // Pip ends with hints; the line that says what went wrong comes before them.
    let lines = || text.lines().rev().map(str::trim);
    let last = lines()
        .find(|l| l.to_lowercase().contains("error: "))
        .or_else(|| lines().find(|l| !l.is_empty()));
    Err(format!(
        "`{what}` failed ({}): {}",
        out.status,
        last.unwrap_or("no output")
    ))
}

/// Whether `program --version` runs.
fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Copies a file or a whole directory (links as links), as a user's own copy would.
fn copy(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-R")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(
        status.success(),
        "cp -R {} {}",
        from.display(),
        to.display()
    );
}

/// The test process's `PATH` with `bin` first (a virtual environment's, say).
fn path_with(bin: &Path) -> std::ffi::OsString {
    let mut paths = vec![bin.to_owned()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("a PATH")
}

// --- Python -------------------------------------------------------------------------------

/// The setuptools that `scripts/prepare-fixtures.sh` downloads.
const SETUPTOOLS: &str = "75.8.0";

const PYPROJECT: &str = r#"[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "calcpkg"
version = "0.1.0"
"#;

const CALC_PY: &str = "def add(a, b):\n    return a - b\n";

const TEST_PY: &str = r#"import unittest

from calcpkg import add


class TestAdd(unittest.TestCase):
    def test_small(self):
        self.assertEqual(add(2, 3), 5)

    def test_negative(self):
        self.assertEqual(add(-2, -3), -5)

    def test_zero(self):
        self.assertEqual(add(0, 0), 0)
"#;

const UNITTEST: &str = "python -m unittest discover -s tests";

/// A Python project with the bug in `add`, its package in `package_dir` (`src/calcpkg` or
/// `calcpkg`), committed with the `.gitignore` such a project has.
fn python_repo(pyproject: &str, package_dir: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("pyproject.toml", pyproject);
    repo.write(&format!("{package_dir}/__init__.py"), CALC_PY);
    repo.write("tests/test_calc.py", TEST_PY);
    repo.write(".gitignore", "__pycache__/\n*.egg-info/\nbuild/\n");
    repo.commit_all("a python package with a bug");
    repo
}

/// A virtual environment beside the repository (not in it) made by `python3 -m venv`, with
/// the repository's project installed in editable mode by a real, offline
/// `pip install --no-build-isolation --no-index -e .`. `None`, after a `SKIPPED` line, where
/// that cannot be done here.
#[allow(clippy::print_stderr)] // says loudly why a test is skipped
fn editable_venv(repo: &TestRepo, test: &str) -> Option<PathBuf> {
    let venv = repo.root.join("venv");
    if let Err(e) = succeeds(sealed(repo, "python3").args(["-m", "venv"]).arg(&venv)) {
        eprintln!("SKIPPED {test}: python3 -m venv does not work here: {e}");
        return None;
    }
    let pip = venv.join("bin/pip");
    // The setuptools a venv bundles (if any) cannot build an editable wheel alone.
    let wheels = fixtures().join("wheels");
    if wheels
        .join(format!("setuptools-{SETUPTOOLS}-py3-none-any.whl"))
        .is_file()
    {
        let installed = succeeds(
            sealed(repo, &pip)
                .args(["install", "--no-index", "--find-links"])
                .arg(&wheels)
                .arg(format!("setuptools=={SETUPTOOLS}")),
        );
        if let Err(e) = installed {
            eprintln!("SKIPPED {test}: cannot install setuptools from {wheels:?}: {e}");
            return None;
        }
    }
    let editable = succeeds(sealed(repo, &pip).current_dir(&repo.path).args([
        "install",
        "--no-build-isolation",
        "--no-index",
        "-e",
        ".",
    ]));
    if let Err(e) = editable {
        eprintln!(
            "SKIPPED {test}: pip install -e . fails offline here \
             (run scripts/prepare-fixtures.sh for a setuptools that builds editable wheels): {e}"
        );
        return None;
    }
    Some(venv)
}

/// Where the `python` of `venv` imports `calcpkg` from, run in `dir`.
fn imported_from(repo: &TestRepo, venv: &Path, dir: &Path) -> String {
    succeeds(
        sealed(repo, venv.join("bin/python"))
            .current_dir(dir)
            .args(["-c", "import calcpkg; print(calcpkg.__file__)"]),
    )
    .expect("calcpkg imports")
    .trim()
    .to_owned()
}

#[test]
fn python_src_layout_editable_install_each_candidate_tests_its_own_code() {
    let repo = python_repo(PYPROJECT, "src/calcpkg");
    let Some(venv) = editable_venv(&repo, "python_src_layout_editable_install…") else {
        return;
    };
    // The install is real: the venv's Python imports the user's src/ from anywhere.
    let user_code = repo.path.join("src/calcpkg/__init__.py");
    assert_eq!(
        imported_from(&repo, &venv, &repo.root),
        user_code.display().to_string()
    );
    let mut cmd = repo
        .massgen()
        .env("PATH", path_with(&venv.join("bin")))
        .args(["run", "--json", "--test", UNITTEST]);
    for (name, body) in [
        ("fixer", "sed -i 's/a - b/a + b/' src/calcpkg/__init__.py"),
        ("wrong", "sed -i 's/a - b/a * b/' src/calcpkg/__init__.py"),
    ] {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, body)]);
    }
    let out = cmd.args(["fix add"]).run().expect_code(0);
    out.assert_stderr("makes Python import");
    out.assert_stderr("each worktree's own src/ is put first on PYTHONPATH");
    let json = out.json();
    assert_eq!(json["pythonpath"], "src", "{json}");
    assert_eq!(json["winner"], "fixer", "{json}");
    assert_eq!(candidate(&json, "fixer")["tests"]["exit_code"], 0, "{json}");
    let wrong = &candidate(&json, "wrong")["tests"];
    assert_ne!(wrong["exit_code"], 0, "its tests ran its own code: {json}");
    let run = json["run"].as_str().expect("a run id");
    let log = repo
        .path
        .join(format!(".massgen/runs/{run}/logs/wrong.test.log"));
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("AssertionError: 6 != 5"), "{log}");
    // The user's code is untouched until the merge; then their own install runs the fix.
    assert!(repo.read("src/calcpkg/__init__.py").contains("a - b"));
    repo.massgen().args(["merge", run]).run().expect_code(0);
    succeeds(
        sealed(&repo, venv.join("bin/python"))
            .current_dir(&repo.path)
            .args(["-m", "unittest", "discover", "-s", "tests"]),
    )
    .expect("the merged fix passes in the user's own environment");
}

#[test]
fn python_flat_layout_editable_install_gets_the_setup_hint() {
    let pyproject = format!("{PYPROJECT}\n[tool.setuptools]\npackages = [\"calcpkg\"]\n");
    let repo = python_repo(&pyproject, "calcpkg");
    let Some(venv) = editable_venv(&repo, "python_flat_layout_editable_install…") else {
        return;
    };
    let user_code = repo.path.join("calcpkg/__init__.py");
    assert_eq!(
        imported_from(&repo, &venv, &repo.root),
        user_code.display().to_string()
    );
    let fixer = repo.agent("fixer", "sed -i 's/a - b/a + b/' calcpkg/__init__.py");
    let run = |test: &str, code: i32| {
        repo.massgen()
            .env("PATH", path_with(&venv.join("bin")))
            .args(["run", "--json", "--test", test, "--agent-cmd", &fixer])
            .args(["fix add"])
            .run()
            .expect_code(code)
    };
    // No src/ to put first: the fix would be a guess, so the run only says what to do.
    // A test command run from the worktree's root imports the worktree's package anyway
    // (the current directory comes first on sys.path, setuptools' finder last).
    let out = run(UNITTEST, 0);
    out.assert_stderr("makes Python import");
    out.assert_stderr("install into a virtual environment in each worktree with [worktree] setup");
    let json = out.json();
    assert!(json["pythonpath"].is_null(), "{json}");
    assert_eq!(json["winner"], "fixer", "{json}");
    // One that runs from elsewhere imports the user's unchanged code, which is what the
    // hint warns of: the fix fails its tests.
    let out = run(
        "cd tests && python -c 'import calcpkg; print(calcpkg.__file__)' \
         && python -m unittest test_calc",
        1,
    );
    out.assert_stderr("makes Python import");
    let json = out.json();
    assert!(json["winner"].is_null(), "{json}");
    let run = json["run"].as_str().expect("a run id");
    let log = repo
        .path
        .join(format!(".massgen/runs/{run}/logs/fixer.test.log"));
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains(&user_code.display().to_string()), "{log}");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

/// The pytest that `scripts/prepare-fixtures.sh` downloads.
const PYTEST: &str = "8.3.5";

/// A virtual environment beside the repository with pytest installed offline from the
/// fixtures, and nothing of the project. `None`, after a `SKIPPED` line, where that cannot
/// be done here.
#[allow(clippy::print_stderr)] // says loudly why a test is skipped
fn pytest_venv(repo: &TestRepo, test: &str) -> Option<PathBuf> {
    let venv = repo.root.join("venv");
    if let Err(e) = succeeds(sealed(repo, "python3").args(["-m", "venv"]).arg(&venv)) {
        eprintln!("SKIPPED {test}: python3 -m venv does not work here: {e}");
        return None;
    }
    let installed = succeeds(
        sealed(repo, venv.join("bin/pip"))
            .args(["install", "--no-index", "--find-links"])
            .arg(fixtures().join("wheels"))
            .arg(format!("pytest=={PYTEST}")),
    );
    if let Err(e) = installed {
        eprintln!(
            "SKIPPED {test}: cannot install pytest offline \
             (run scripts/prepare-fixtures.sh for its wheels): {e}"
        );
        return None;
    }
    Some(venv)
}

#[test]
fn init_for_a_python_src_layout_tests_each_candidates_own_code() {
    let repo = python_repo(PYPROJECT, "src/calcpkg");
    let Some(venv) = pytest_venv(&repo, "init_for_a_python_src_layout…") else {
        return;
    };
    let path = path_with(&venv.join("bin"));
    let init = repo
        .massgen()
        .env("PATH", &path)
        .args(["init"])
        .run()
        .expect_code(0);
    init.assert_stdout("test command: PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} pytest");
    init.assert_stdout("a src/ layout");
    repo.commit_all("massgen configuration");
    let run = |test: Option<&str>, code: i32| {
        let mut cmd = repo.massgen().env("PATH", &path).args(["run", "--json"]);
        if let Some(test) = test {
            cmd = cmd.args(["--test", test]);
        }
        for (name, body) in [
            ("fixer", "sed -i 's/a - b/a + b/' src/calcpkg/__init__.py"),
            (
                "wrong",
                "sed -i 's/a - b/a + b + 1/' src/calcpkg/__init__.py",
            ),
        ] {
            cmd = cmd.args(["--agent-cmd", &repo.agent(name, body)]);
        }
        cmd.args(["fix add"]).run().expect_code(code)
    };
    // With the command init wrote, each candidate's tests import its own code: the user's
    // (a - b) would pass one test of three, the wrong fix none.
    let json = run(None, 0).json();
    assert_eq!(json["winner"], "fixer", "{json}");
    let fixer = &candidate(&json, "fixer")["tests"];
    assert_eq!(
        (&fixer["passed"], &fixer["failed"], &fixer["errors"]),
        (&3.into(), &0.into(), &0.into()),
        "{json}"
    );
    let wrong = &candidate(&json, "wrong")["tests"];
    assert_eq!(
        (&wrong["passed"], &wrong["failed"]),
        (&0.into(), &3.into()),
        "{json}"
    );

    // Plain pytest cannot import the package from a worktree: every candidate's tests could
    // not be collected, which blames the test setup, not the candidates.
    let out = run(Some("pytest"), 1);
    out.assert_stderr("could not collect any test in any candidate's worktree");
    let json = out.json();
    assert!(json["winner"].is_null(), "{json}");
    for agent in ["fixer", "wrong"] {
        let t = &candidate(&json, agent)["tests"];
        assert_eq!(t["could_not_collect"], true, "{json}");
        assert_eq!(
            (&t["passed"], &t["failed"], &t["errors"]),
            (&0.into(), &0.into(), &1.into()),
            "{json}"
        );
    }
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the test setup is at fault")
            && reason.contains("fixer: tests could not be collected (1 error)"),
        "{reason}"
    );
    let id = json["run"].as_str().expect("a run id");
    let report = repo.root.join("report.html");
    repo.massgen()
        .args(["report", id, "--output", report.to_str().unwrap()])
        .run()
        .expect_code(0);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("not collected") && html.contains("tests could not be collected"),
        "the report says so"
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

// --- Node ---------------------------------------------------------------------------------

/// The Node project, committed with `node_modules/` ignored.
const NODE_PROJECT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/node-project");

/// Agents that each fix `add` in their own way.
const NODE_FIXERS: [(&str, &str); 2] = [
    ("plus", "sed -i 's/a - b/a + b/' index.js"),
    ("swap", "sed -i 's/a - b/b + a/' index.js"),
];

/// A repository holding the Node project of `tests/fixtures/node-project` with `config` as
/// its `.massgen/config.toml` and `node_modules` installed in the user's work tree, as after
/// `npm ci`. `None`, after a `SKIPPED` line, without node and npm or the prepared fixture.
#[allow(clippy::print_stderr)] // says loudly why a test is skipped
fn node_repo(test: &str, config: &str) -> Option<TestRepo> {
    if !found("node") || !found("npm") {
        eprintln!("SKIPPED {test}: node or npm is not installed");
        return None;
    }
    let prepared = fixtures().join("node-project");
    if !prepared.join(".prepared").is_file() {
        eprintln!(
            "SKIPPED {test}: no Node fixture in {} (run scripts/prepare-fixtures.sh)",
            prepared.display()
        );
        return None;
    }
    let repo = TestRepo::new();
    for file in ["package.json", "package-lock.json", "index.js", "test.js"] {
        copy(&Path::new(NODE_PROJECT).join(file), &repo.path.join(file));
    }
    repo.write(".gitignore", "node_modules/\n");
    repo.commit_all("a node project with a bug");
    // The test's own npm cache is outside the worktrees: confined setup commands may
    // write it.
    let cache = toml::Value::String(repo.root.join("npm-cache").display().to_string());
    repo.configure(&format!("{config}\n[sandbox]\nallow_write = [{cache}]\n"));
    copy(
        &prepared.join("node_modules"),
        &repo.path.join("node_modules"),
    );
    // A cache of the test's own, so that `npm ci --offline` never writes to the fixture's.
    copy(&fixtures().join("npm-cache"), &repo.root.join("npm-cache"));
    Some(repo)
}

/// `git massgen run --json --test "npm test"` with the fixers; asserts the exit code.
fn run_npm_test(repo: &TestRepo, code: i32) -> serde_json::Value {
    let mut cmd = repo
        .massgen()
        .env("npm_config_cache", repo.root.join("npm-cache"))
        .env("npm_config_update_notifier", "false")
        .args(["run", "--json", "--test", "npm test"]);
    for (name, body) in NODE_FIXERS {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, body)]);
    }
    cmd.args(["fix add"]).run().expect_code(code).json()
}

/// Every fixer's tests passed (`3 passed, 0 failed`), and nothing of `node_modules` is part
/// of its candidate or changed in the user's work tree.
fn assert_every_candidate_passes(repo: &TestRepo, json: &serde_json::Value) {
    for (name, _) in NODE_FIXERS {
        let c = candidate(json, name);
        assert_eq!(c["status"], "done", "{c}");
        assert_eq!(c["tests"]["exit_code"], 0, "{c}");
        assert_eq!(c["tests"]["passed"], 3, "{c}");
        assert_eq!(c["tests"]["failed"], 0, "{c}");
        let files = repo.git(&[
            "ls-tree",
            "-r",
            "--name-only",
            c["branch"].as_str().unwrap(),
        ]);
        assert!(!files.contains("node_modules"), "{files}");
    }
    assert!(!json["winner"].is_null(), "{json}");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn node_modules_cloned_into_each_worktree() {
    let config = "[worktree]\nclone = [\"node_modules\"]\n";
    let Some(repo) = node_repo("node_modules_cloned_into_each_worktree", config) else {
        return;
    };
    let json = run_npm_test(&repo, 0);
    assert_every_candidate_passes(&repo, &json);
}

#[test]
fn npm_ci_offline_as_setup_in_each_worktree() {
    let config = "[worktree]\nsetup = [\"npm ci --offline --no-audit --no-fund\"]\n";
    let Some(repo) = node_repo("npm_ci_offline_as_setup_in_each_worktree", config) else {
        return;
    };
    let json = run_npm_test(&repo, 0);
    assert_every_candidate_passes(&repo, &json);
    let run = json["run"].as_str().expect("a run id");
    for (name, _) in NODE_FIXERS {
        let log = repo
            .path
            .join(format!(".massgen/runs/{run}/logs/{name}.setup.log"));
        let log = std::fs::read_to_string(log).unwrap();
        assert!(log.contains("added 1 package"), "{log}");
    }
}

#[test]
fn node_tests_fail_in_worktrees_without_node_modules() {
    let Some(repo) = node_repo("node_tests_fail_in_worktrees_without_node_modules", "") else {
        return;
    };
    // The fixes are right, but no worktree has the package the tests require.
    let json = run_npm_test(&repo, 1);
    assert!(json["winner"].is_null(), "{json}");
    let run = json["run"].as_str().expect("a run id");
    for (name, _) in NODE_FIXERS {
        assert_ne!(candidate(&json, name)["tests"]["exit_code"], 0, "{json}");
        let log = repo
            .path
            .join(format!(".massgen/runs/{run}/logs/{name}.test.log"));
        let log = std::fs::read_to_string(log).unwrap();
        assert!(log.contains("Cannot find module 'is-number'"), "{log}");
    }
}

/// A test that listens on `MASSGEN_PORT`, waits until the tests of all `expected`
/// candidates listen at once (each leaves a file named after its agent in `dir`), then
/// checks that its port answers with its own server.
const PORT_TEST_JS: &str = r#"const fs = require("fs");
const net = require("net");
const path = require("path");
const [dir, expected] = process.argv.slice(2);
const agent = process.env.MASSGEN_AGENT;
const port = Number(process.env.MASSGEN_PORT);
const fail = (why) => {
  console.log(`0 passed, 1 failed: ${why}`);
  process.exit(1);
};
const server = net.createServer((socket) => socket.end(agent));
server.on("error", (e) => fail(`port ${port}: ${e.code}`));
server.listen(port, "127.0.0.1", () => {
  fs.writeFileSync(path.join(dir, agent), String(port));
  const deadline = Date.now() + 20000;
  const poll = () => {
    if (fs.readdirSync(dir).length < Number(expected)) {
      if (Date.now() > deadline) fail("the other candidates' tests never listened");
      return setTimeout(poll, 20);
    }
    let answer = "";
    net.connect(port, "127.0.0.1")
      .on("data", (d) => (answer += d))
      .on("end", () => {
        if (answer !== agent) fail(`port ${port} answered ${answer}`);
        console.log("1 passed, 0 failed");
        server.close();
      });
  };
  poll();
});
"#;

#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn node_test_servers_of_parallel_candidates_listen_on_their_own_ports() {
    if !found("node") {
        eprintln!("SKIPPED node_test_servers_of_parallel_candidates…: node is not installed");
        return;
    }
    let repo = TestRepo::new();
    repo.unconfined();
    repo.write("port-test.js", PORT_TEST_JS);
    repo.commit_all("a test that listens");
    let listening = repo.scratch("listening");
    let names = ["a", "b", "c"];
    let test = format!(
        "node port-test.js {} {}",
        shell_words::quote(&listening.display().to_string()),
        names.len()
    );
    let mut cmd = repo
        .massgen()
        .args(["run", "--json", "--jobs", "3", "--test", &test]);
    for name in names {
        cmd = cmd.args([
            "--agent-cmd",
            &repo.agent(name, "echo \"$MASSGEN_AGENT\" > who.txt"),
        ]);
    }
    let json = cmd.args(["listen"]).expect_json(0);
    let mut ports = std::collections::BTreeSet::new();
    for name in names {
        let c = candidate(&json, name);
        assert_eq!(c["tests"]["exit_code"], 0, "{c}");
        let port = std::fs::read_to_string(listening.join(name)).unwrap();
        assert_eq!(c["port"], serde_json::json!(port.parse::<u16>().unwrap()));
        ports.insert(port);
    }
    assert_eq!(ports.len(), names.len(), "{ports:?}");
}
