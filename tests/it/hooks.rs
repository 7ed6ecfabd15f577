//! `git massgen hooks install|uninstall`: the shipped scripts land in the hooks directory git
//! really uses, run on real `git commit` and `git push`, chain the hook that was there before
//! (same arguments, same stdin, its failure stops git) and give it back untouched.
//!
//! The review itself is not under test here: commits either skip it (`MASSGEN_SKIP=1`,
//! `MASSGEN_ACTIVE`), or find a stand-in `git-massgen` on PATH that records how the hook
//! called it.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{Run, TestRepo, seal};

const PRE_COMMIT: &str = include_str!("../../hooks/pre-commit");
const PRE_PUSH: &str = include_str!("../../hooks/pre-push");

/// `git massgen hooks ARGS…` in the repository, asserting the exit code.
fn hooks(repo: &TestRepo, args: &[&str], code: i32) -> Run {
    repo.massgen()
        .args(["hooks"])
        .args(args)
        .run()
        .expect_code(code)
}

/// PATH without any directory holding a `git-massgen`, so that hooks cannot find one.
fn path_without_massgen() -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("git-massgen").exists())
        .collect();
    std::env::join_paths(dirs).expect("PATH entries join")
}

/// A stand-in `git-massgen` first on PATH: it records its arguments (one per line) in
/// `review.args` and its stdin in `review.stdin` under the test's temp area, then exits with
/// `code`.
fn path_with_fake_massgen(repo: &TestRepo, code: i32) -> OsString {
    let bin = repo.scratch("fake-bin");
    let log = repo.root.join("review");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{log}.args'\ncat > '{log}.stdin'\nexit {code}\n",
        log = log.display()
    );
    let exe = bin.join("git-massgen");
    fs::write(&exe, script).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(&path_without_massgen()));
    std::env::join_paths(dirs).unwrap()
}

/// `git ARGS…` in the repository's sealed environment plus `env`, stdin null.
fn git_env(repo: &TestRepo, args: &[&str], env: &[(&str, &OsStr)]) -> Output {
    let mut cmd = Command::new("git");
    seal(&mut cmd, &repo.root);
    cmd.current_dir(&repo.path)
        .args(args)
        .stdin(Stdio::null())
        .env("PATH", path_without_massgen());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("git runs")
}

/// Stages a change and commits it with `env`; returns git's output.
fn commit(repo: &TestRepo, env: &[(&str, &OsStr)]) -> Output {
    let n = fs::read_dir(&repo.path).unwrap().count();
    repo.write(&format!("file{n}.txt"), "change\n");
    repo.git(&["add", "-A"]);
    git_env(repo, &["commit", "-q", "-m", "a change"], env)
}

/// `MASSGEN_SKIP=1`: our review is skipped, a chained hook still runs.
fn skip() -> (&'static str, &'static OsStr) {
    ("MASSGEN_SKIP", OsStr::new("1"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn head(repo: &TestRepo) -> String {
    repo.git(&["rev-parse", "HEAD"])
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// An executable script at `path`.
fn script(path: &Path, body: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The hooks directory's entries with their content and mode, sorted.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    entries(dir)
        .into_iter()
        .map(|n| {
            let p = dir.join(&n);
            (n, fs::read(&p).unwrap(), mode(&p))
        })
        .collect()
}

/// The hooks directory's entries, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".sample"))
        .collect();
    names.sort();
    names
}

#[test]
fn install_writes_the_shipped_script_and_commits_go_through() {
    let repo = TestRepo::new();
    let dir = repo.path.join(".git/hooks");
    let run = hooks(&repo, &["install", "--json"], 0);
    run.assert_stderr("no [[reviewers]] in .massgen/config.toml");
    let json = run.json();
    assert_eq!(json["hooks_dir"], dir.to_str().unwrap());
    assert_eq!(
        json["hooks"],
        serde_json::json!([{"name": "pre-commit", "action": "installed", "chained": false}])
    );
    let hook = dir.join("pre-commit");
    assert_eq!(fs::read_to_string(&hook).unwrap(), PRE_COMMIT);
    assert_eq!(mode(&hook), 0o755);
    assert!(!dir.join("pre-push").exists(), "pre-push only on request");

    let before = head(&repo);
    let out = commit(&repo, &[skip()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("review skipped (MASSGEN_SKIP=1)"));
    assert_ne!(head(&repo), before);

    // Text output names the hook, the action and the directory.
    let run = hooks(&repo, &["install", "--hook", "all"], 0);
    run.assert_stdout(&format!(
        "the pre-commit hook is already installed in {}",
        dir.display()
    ));
    run.assert_stdout(&format!("installed the pre-push hook in {}", dir.display()));
    assert_eq!(fs::read_to_string(dir.join("pre-push")).unwrap(), PRE_PUSH);
    assert_eq!(mode(&dir.join("pre-push")), 0o755);
}

#[test]
fn the_hook_runs_review_and_its_exit_code_decides() {
    let repo = TestRepo::new();
    hooks(&repo, &["install"], 0);
    let before = head(&repo);
    let refuse = path_with_fake_massgen(&repo, 1);
    let out = commit(&repo, &[("PATH", refuse.as_os_str())]);
    assert!(
        !out.status.success(),
        "review said no, the commit must stop"
    );
    assert_eq!(head(&repo), before);
    let args = fs::read_to_string(repo.root.join("review.args")).unwrap();
    assert_eq!(args, "review\n--hook\npre-commit\n");

    let accept = path_with_fake_massgen(&repo, 0);
    let out = git_env(
        &repo,
        &["commit", "-q", "-m", "again"],
        &[("PATH", accept.as_os_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(head(&repo), before);
}

#[test]
fn without_git_massgen_on_path_the_commit_is_refused_with_a_hint() {
    let repo = TestRepo::new();
    hooks(&repo, &["install"], 0);
    let before = head(&repo);
    let out = commit(&repo, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("git-massgen is not on PATH"), "{err}");
    assert!(err.contains("MASSGEN_SKIP=1 git commit"), "{err}");
    assert_eq!(head(&repo), before);
}

#[test]
fn massgen_active_alone_skips_the_review() {
    let repo = TestRepo::new();
    hooks(&repo, &["install"], 0);
    let before = head(&repo);
    // No git-massgen on PATH: were the review attempted, the commit would be refused.
    let out = commit(&repo, &[("MASSGEN_ACTIVE", OsStr::new("1"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(head(&repo), before);
}

#[test]
fn an_existing_hook_is_chained_and_restored() {
    let repo = TestRepo::new();
    let dir = repo.path.join(".git/hooks");
    let hook = dir.join("pre-commit");
    let marker = repo.root.join("earlier-hook-ran");
    script(
        &hook,
        &format!("echo ran > '{}'\nexit 3", marker.display()),
        0o750,
    );
    let original = fs::read(&hook).unwrap();

    let json = hooks(&repo, &["install", "--json"], 0).json();
    assert_eq!(json["hooks"][0]["action"], "installed");
    assert_eq!(json["hooks"][0]["chained"], true);
    assert_eq!(fs::read_to_string(&hook).unwrap(), PRE_COMMIT);
    let kept = dir.join("pre-commit.pre-massgen");
    assert_eq!(fs::read(&kept).unwrap(), original);
    assert_eq!(mode(&kept), 0o750);

    // The earlier hook runs first and its failure stops the commit, review skipped or not.
    let before = head(&repo);
    let out = commit(&repo, &[skip()]);
    assert!(!out.status.success());
    assert!(marker.exists(), "the earlier hook did not run");
    assert_eq!(head(&repo), before);
    // git reports any failure as 1; the hook itself passes the earlier hook's code on.
    let out = Command::new(&hook)
        .current_dir(&repo.path)
        .env("MASSGEN_SKIP", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));

    let json = hooks(&repo, &["uninstall", "--json"], 0).json();
    assert_eq!(
        json["hooks"],
        serde_json::json!([{"name": "pre-commit", "action": "removed", "chained": true}])
    );
    assert_eq!(fs::read(&hook).unwrap(), original);
    assert_eq!(mode(&hook), 0o750);
    assert!(!kept.exists());
    let run = hooks(&repo, &["uninstall", "--hook", "pre-push"], 0);
    run.assert_stdout("the pre-push hook is not installed in");
}

#[test]
fn a_symlinked_hook_stays_a_symlink() {
    let repo = TestRepo::new();
    let dir = repo.path.join(".git/hooks");
    let target = repo.root.join("shared-hooks/check");
    let marker = repo.root.join("linked-hook-ran");
    script(&target, &format!("touch '{}'", marker.display()), 0o755);
    symlink(&target, dir.join("pre-commit")).unwrap();

    hooks(&repo, &["install"], 0);
    let kept = dir.join("pre-commit.pre-massgen");
    assert_eq!(fs::read_link(&kept).unwrap(), target);
    let out = commit(&repo, &[skip()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(marker.exists(), "the linked hook did not run");

    hooks(&repo, &["uninstall"], 0);
    assert_eq!(fs::read_link(dir.join("pre-commit")).unwrap(), target);
    assert_eq!(entries(&dir), ["pre-commit"]);
}

#[test]
fn a_hook_that_is_not_executable_is_not_run_as_git_would_not() {
    let repo = TestRepo::new();
    let dir = repo.path.join(".git/hooks");
    script(&dir.join("pre-commit"), "exit 1", 0o644);
    hooks(&repo, &["install"], 0);
    let out = commit(&repo, &[skip()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn core_hooks_path_is_honoured_relative_and_absolute() {
    let repo = TestRepo::new();
    repo.git(&["config", "core.hooksPath", ".githooks"]);
    // From a subdirectory too: a relative hooksPath is relative to the top of the work tree.
    fs::create_dir_all(repo.path.join("sub")).unwrap();
    let json = crate::support::Massgen::new(&repo.root, &repo.path.join("sub"))
        .args(["hooks", "install", "--json"])
        .expect_json(0);
    let dir = repo.path.join(".githooks");
    assert_eq!(json["hooks_dir"], dir.to_str().unwrap());
    assert_eq!(
        fs::read_to_string(dir.join("pre-commit")).unwrap(),
        PRE_COMMIT
    );
    assert!(!repo.path.join(".git/hooks/pre-commit").exists());
    let out = commit(&repo, &[skip()]);
    assert!(stderr(&out).contains("review skipped"), "{}", stderr(&out));

    let abs = repo.root.join("central hooks");
    repo.git(&["config", "core.hooksPath", abs.to_str().unwrap()]);
    let json = hooks(&repo, &["install", "--json"], 0).json();
    assert_eq!(json["hooks_dir"], abs.to_str().unwrap());
    assert_eq!(
        fs::read_to_string(abs.join("pre-commit")).unwrap(),
        PRE_COMMIT
    );
    let out = commit(&repo, &[skip()]);
    assert!(stderr(&out).contains("review skipped"), "{}", stderr(&out));
}

#[test]
fn a_linked_worktree_installs_into_the_common_hooks() {
    let repo = TestRepo::new();
    let wt = repo.root.join("wt");
    repo.git(&["worktree", "add", "-q", wt.to_str().unwrap()]);
    let json = crate::support::Massgen::new(&repo.root, &wt)
        .args(["hooks", "install", "--json"])
        .expect_json(0);
    let dir = repo.path.join(".git/hooks");
    assert_eq!(json["hooks_dir"], dir.to_str().unwrap());
    assert!(dir.join("pre-commit").exists());
}

#[test]
fn install_refuses_when_the_chained_name_is_taken_and_changes_nothing() {
    let repo = TestRepo::new();
    let dir = repo.path.join(".git/hooks");
    script(&dir.join("pre-commit"), "exit 0", 0o755);
    script(&dir.join("pre-commit.pre-massgen"), "exit 1", 0o700);
    let before = snapshot(&dir);

    // pre-push alone would be fine: with both asked for, neither is installed.
    let run = hooks(
        &repo,
        &["install", "--hook", "pre-push", "--hook", "pre-commit"],
        2,
    );
    run.assert_stderr("pre-commit.pre-massgen already exists");
    run.assert_stderr("hint:");
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn install_twice_is_idempotent_and_an_old_version_is_updated() {
    let repo = TestRepo::new();
    let dir = repo.path.join(".git/hooks");
    hooks(&repo, &["install"], 0);
    let json = hooks(&repo, &["install", "--json"], 0).json();
    assert_eq!(json["hooks"][0]["action"], "already-installed");
    assert_eq!(entries(&dir), ["pre-commit"]);

    let hook = dir.join("pre-commit");
    script(&hook, "# git-massgen review hook\nexit 1", 0o755);
    let json = hooks(&repo, &["install", "--json"], 0).json();
    assert_eq!(json["hooks"][0]["action"], "updated");
    assert_eq!(json["hooks"][0]["chained"], false);
    assert_eq!(fs::read_to_string(&hook).unwrap(), PRE_COMMIT);
    assert_eq!(entries(&dir), ["pre-commit"], "no temporary file left");
}

#[test]
fn uninstall_refuses_a_foreign_hook() {
    let repo = TestRepo::new();
    let dir = repo.path.join(".git/hooks");
    let hook = dir.join("pre-commit");
    script(&hook, "exit 0", 0o755);
    let run = hooks(&repo, &["uninstall"], 2);
    run.assert_stderr("is not a git-massgen hook");
    run.assert_stderr("hint:");
    assert_eq!(fs::read_to_string(&hook).unwrap(), "#!/bin/sh\nexit 0\n");
}

#[test]
fn outside_a_repository_is_a_repository_error() {
    let repo = TestRepo::new();
    let outside = repo.scratch("elsewhere");
    let run = crate::support::Massgen::new(&repo.root, &outside)
        .args(["hooks", "install"])
        .run()
        .expect_code(3);
    run.assert_stderr("not a git repository");
}

#[test]
fn pre_push_chains_with_the_same_arguments_and_stdin() {
    let repo = TestRepo::new();
    let remote = repo.root.join("remote.git");
    repo.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    let dir = repo.path.join(".git/hooks");
    let seen = repo.root.join("earlier-push-hook");
    script(
        &dir.join("pre-push"),
        &format!(
            "printf '%s\\n' \"$@\" > '{seen}.args'\ncat > '{seen}.stdin'",
            seen = seen.display()
        ),
        0o755,
    );
    let json = hooks(&repo, &["install", "--hook", "pre-push", "--json"], 0).json();
    assert_eq!(json["hooks"][0]["name"], "pre-push");
    assert_eq!(json["hooks"][0]["chained"], true);

    let tip = head(&repo);
    let out = git_env(
        &repo,
        &["push", "-q", "origin", "main", "HEAD:refs/heads/other"],
        &[skip()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let zero = "0".repeat(40);
    let lines = format!(
        "refs/heads/main {tip} refs/heads/main {zero}\nHEAD {tip} refs/heads/other {zero}\n"
    );
    let args = format!("origin\n{}\n", remote.display());
    assert_eq!(
        fs::read_to_string(seen.with_extension("stdin")).unwrap(),
        lines
    );
    assert_eq!(
        fs::read_to_string(seen.with_extension("args")).unwrap(),
        args
    );

    // The review gets the same lines, and the remote's name.
    repo.write("more.txt", "more\n");
    repo.commit_all("more");
    let tip2 = head(&repo);
    let fake = path_with_fake_massgen(&repo, 0);
    let out = git_env(
        &repo,
        &["push", "-q", "origin", "main"],
        &[("PATH", fake.as_os_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = format!("refs/heads/main {tip2} refs/heads/main {tip}\n");
    assert_eq!(
        fs::read_to_string(seen.with_extension("stdin")).unwrap(),
        lines
    );
    assert_eq!(
        fs::read_to_string(repo.root.join("review.stdin")).unwrap(),
        lines
    );
    assert_eq!(
        fs::read_to_string(repo.root.join("review.args")).unwrap(),
        "review\n--hook\npre-push\n--remote=origin\n"
    );

    // A review that refuses stops the push.
    repo.write("bad.txt", "bad\n");
    repo.commit_all("bad");
    let refuse = path_with_fake_massgen(&repo, 1);
    let out = git_env(
        &repo,
        &["push", "-q", "origin", "main"],
        &[("PATH", refuse.as_os_str())],
    );
    assert!(!out.status.success());
    assert_eq!(
        repo.git(&["--git-dir", remote.to_str().unwrap(), "rev-parse", "main"]),
        tip2
    );
}

/// PATH with the `git-massgen` under test first.
fn path_with_massgen() -> OsString {
    let exe = Path::new(env!("CARGO_BIN_EXE_git-massgen"));
    let mut dirs = vec![exe.parent().expect("the binary's directory").to_owned()];
    dirs.extend(std::env::split_paths(&path_without_massgen()));
    std::env::join_paths(dirs).unwrap()
}

/// Asserts git refused because the review agreed on a finding.
fn refused_by_review(out: &Output) {
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("agreed finding"), "{said}");
}

#[test]
fn end_to_end_the_real_review_refuses_agreed_findings() {
    let repo = TestRepo::new();
    repo.unconfined();
    repo.configure(&crate::review::finders(&repo, &[("a", ""), ("b", "")]));
    let remote = repo.root.join("remote.git");
    repo.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    repo.git(&["push", "-q", "origin", "main"]);
    hooks(&repo, &["install", "--hook", "all"], 0);
    let path = path_with_massgen();
    let env = [("PATH", path.as_os_str())];
    let before = head(&repo);

    // Staged: refused. `git commit -a` (a temporary index): refused too.
    repo.write("app.txt", "BUG here\n");
    repo.git(&["add", "app.txt"]);
    let out = git_env(&repo, &["commit", "-q", "-m", "bug"], &env);
    refused_by_review(&out);
    assert_eq!(head(&repo), before);
    repo.write("app.txt", "fine\n");
    repo.git(&["add", "app.txt"]);
    repo.write("app.txt", "fine\nBUG again\n");
    let out = git_env(&repo, &["commit", "-q", "-a", "-m", "bug"], &env);
    refused_by_review(&out);
    assert_eq!(head(&repo), before);

    // Clean: accepted, and pushed.
    repo.write("app.txt", "fine\n");
    let out = git_env(&repo, &["commit", "-q", "-a", "-m", "fine"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = git_env(&repo, &["push", "-q", "origin", "main"], &env);
    assert!(out.status.success(), "{}", stderr(&out));

    // A commit that skipped the review is caught at the push.
    repo.write("app.txt", "BUG late\n");
    repo.git(&["add", "app.txt"]);
    let skipped = [("PATH", path.as_os_str()), skip()];
    let out = git_env(&repo, &["commit", "-q", "-m", "late"], &skipped);
    assert!(out.status.success(), "{}", stderr(&out));
    let pushed = repo.git(&["--git-dir", remote.to_str().unwrap(), "rev-parse", "main"]);
    let out = git_env(&repo, &["push", "-q", "origin", "main"], &env);
    refused_by_review(&out);
    assert_eq!(
        repo.git(&["--git-dir", remote.to_str().unwrap(), "rev-parse", "main"]),
        pushed
    );
}
