//! Bad input gets a clear error, a hint and a documented exit code, and leaves nothing behind.

use crate::support::{FIX, Massgen, TestRepo};

#[test]
fn bad_config_reports_file_line_and_column() {
    let repo = TestRepo::new();
    repo.write(
        ".massgen/config.toml",
        "[run]\njobs = 2\n\n[[agents]]\nname = \"a\"\ncommand = [\"true\"]\ncomand = 1\n",
    );
    let run = repo.massgen().args(["run", "task"]).run().expect_code(2);
    assert!(
        run.stderr
            .contains("config.toml:7:1: unknown field `comand`"),
        "{}",
        run.stderr
    );
    run.assert_stderr("hint:");
    assert!(repo.massgen_branches().is_empty());
    assert!(!repo.path.join(".massgen/runs").exists());
}

#[test]
fn bad_duration_and_duplicate_agents_are_errors() {
    let repo = TestRepo::new();
    repo.write(".massgen/config.toml", "[run]\ntimeout = \"forever\"\n");
    let run = repo.massgen().args(["run", "task"]).run().expect_code(2);
    assert!(
        run.stderr
            .contains("config.toml:2:11: invalid duration `forever`"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(repo.path.join(".massgen/config.toml")).unwrap();
    let run = repo
        .massgen()
        .args([
            "run",
            "--agent-cmd",
            "a=true",
            "--agent-cmd",
            "a=false",
            "task",
        ])
        .run()
        .expect_code(2);
    run.assert_stderr("agent `a` is given twice");
    let run = repo
        .massgen()
        .args(["run", "--timeout", "0s", "--agent-cmd", "a=true", "t"])
        .run()
        .expect_code(2);
    run.assert_stderr("more than zero");
}

#[test]
fn no_agents_and_unknown_agents_are_usage_errors() {
    let repo = TestRepo::new();
    let run = repo.massgen().args(["run", "task"]).run().expect_code(2);
    run.assert_stderr("error: no agents to run");
    run.assert_stderr("hint: configure [[agents]]");
    let run = repo
        .massgen()
        .args(["run", "-a", "ghost", "task"])
        .run()
        .expect_code(2);
    run.assert_stderr("no agent named `ghost`");
    let run = repo
        .massgen()
        .args(["run", "--agent-cmd", "bad name=true", "task"])
        .run()
        .expect_code(2);
    run.assert_stderr("invalid agent name");
    let run = repo
        .massgen()
        .args(["run", "--agent-cmd", "a=true", "  "])
        .run()
        .expect_code(2);
    run.assert_stderr("the task is empty");
    let run = repo.massgen().args(["run", "--bogus"]).run().expect_code(2);
    run.assert_stderr("--bogus");
    assert!(repo.massgen_branches().is_empty());
}

#[test]
fn unknown_run_and_agent_are_usage_errors() {
    let repo = TestRepo::new();
    let run = repo.massgen().args(["merge", "nope"]).run().expect_code(2);
    run.assert_stderr("no run `nope`");
    assert!(
        run.stderr
            .contains("hint: list runs with `git massgen status`"),
        "{}",
        run.stderr
    );
    let json = repo
        .massgen()
        .args([
            "run",
            "--json",
            "--agent-cmd",
            &repo.agent("good", FIX),
            "fix",
        ])
        .run()
        .json();
    let run = repo
        .massgen()
        .args(["diff", json["run"].as_str().unwrap(), "ghost"])
        .run()
        .expect_code(2);
    run.assert_stderr("has no agent `ghost`");
}

#[test]
fn not_a_git_repository() {
    let repo = TestRepo::new();
    let dir = repo.scratch("plain");
    let run = Massgen::new(&repo.root, &dir)
        .args(["run", "--agent-cmd", "a=true", "task"])
        .run()
        .expect_code(3);
    run.assert_stderr("error: not a git repository");
    run.assert_stderr("hint:");
    assert!(!dir.join(".massgen").exists());
}

#[test]
fn bare_repository() {
    let repo = TestRepo::new();
    let bare = repo.root.join("bare.git");
    repo.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
    let run = Massgen::new(&repo.root, &bare)
        .args(["run", "--agent-cmd", "a=true", "task"])
        .run()
        .expect_code(3);
    run.assert_stderr("is a bare repository");
}

#[test]
fn unborn_head_and_bad_base() {
    let repo = TestRepo::new();
    let run = repo
        .massgen()
        .args(["run", "--base", "no-such-rev", "--agent-cmd", "a=true", "t"])
        .run()
        .expect_code(2);
    run.assert_stderr("cannot resolve revision `no-such-rev`");
    let empty = repo.scratch("empty");
    let mut git = std::process::Command::new("git");
    crate::support::seal(&mut git, &repo.root);
    assert!(
        git.current_dir(&empty)
            .args(["init", "-q"])
            .status()
            .unwrap()
            .success()
    );
    let run = Massgen::new(&repo.root, &empty)
        .args(["run", "--agent-cmd", "a=true", "t"])
        .run()
        .expect_code(3);
    run.assert_stderr("HEAD has no commit yet");
}

#[test]
fn repository_path_with_spaces_works_end_to_end() {
    let repo = TestRepo::named("my repo with spaces");
    let json = repo.run_json(
        &["--merge", "--test", "sh test.sh"],
        &[("good", FIX)],
        "fix",
        0,
    );
    assert_eq!(json["winner"], "good");
    assert_eq!(json["merged"], true);
    assert!(repo.read("calc.sh").contains("$2 + $3"));
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
}

#[test]
fn agent_that_cannot_start_fails_cleanly() {
    let repo = TestRepo::new();
    let json = repo
        .massgen()
        .args([
            "run",
            "--json",
            "--agent-cmd",
            "ghost=/no/such/program {task}",
            "t",
        ])
        .expect_json(1);
    let c = crate::support::candidate(&json, "ghost");
    assert_eq!(c["status"], "failed");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("cannot start `/no/such/program`"),
        "{c}"
    );
    assert_eq!(repo.worktree_count(), 1);
}

#[test]
fn a_file_named_massgen_is_a_file_system_error() {
    let repo = TestRepo::new();
    std::fs::write(repo.path.join(".massgen"), "not a directory\n").unwrap();
    for args in [
        vec!["run", "--agent-cmd", "a=true", "task"],
        vec!["status"],
        vec!["clean", "--all"],
    ] {
        let out = repo.massgen().args(&args).run().expect_code(4);
        out.assert_stderr(".massgen");
        out.assert_stderr("hint:");
    }
    assert!(repo.massgen_branches().is_empty());
}

#[test]
fn config_values_out_of_range_point_at_their_key() {
    let repo = TestRepo::new();
    repo.write(
        ".massgen/config.toml",
        "[run]\ntimeout = \"5m\"\njobs = 0\n",
    );
    let run = repo
        .massgen()
        .args(["run", "--agent-cmd", "a=true", "task"])
        .run()
        .expect_code(2);
    run.assert_stderr("config.toml:3:1: `run.jobs` must be at least 1");
}
