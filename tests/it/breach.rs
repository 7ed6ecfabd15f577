//! Escapes: whatever an agent changes in the user's repository outside its worktree (work
//! tree, index, HEAD, refs, config, hooks) is reported by name, kept in the run's state,
//! and blocks merging unless `--allow-breach`. Tested with the sandbox off: with it on,
//! these escapes are blocked (tests/it/sandbox.rs).

use crate::support::{FIX, TestRepo};

/// Runs one fixing agent that also does `escape` (a shell snippet; `$USER_REPO` is the
/// user's repository) with `--merge`; returns the failed run's output.
fn escaping_run(repo: &TestRepo, escape: &str) -> crate::support::Run {
    let body = format!("{FIX}; {escape}");
    repo.massgen()
        .env("USER_REPO", &repo.path)
        .args(["run", "--sandbox", "off", "--test", "sh test.sh", "--merge"])
        .args(["--agent-cmd", &repo.agent("a", &body), "fix the calculator"])
        .run()
}

fn breaches(repo: &TestRepo) -> Vec<String> {
    let json = repo
        .massgen()
        .args(["status", "latest", "--json"])
        .expect_json(0);
    json["breaches"]
        .as_array()
        .expect("breaches")
        .iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_escape_is_named_and_blocks_the_merge() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "branch moved by the agent",
            "git checkout -q --ignore-other-worktrees main && echo x >> README && git commit -qam x",
            "ref refs/heads/main was changed",
        ),
        (
            "tracked file written by absolute path",
            "echo evil >> \"$USER_REPO/README\"",
            "your work tree: README was changed",
        ),
        (
            "untracked file written by absolute path",
            "echo evil > \"$USER_REPO/new.txt\"",
            "your work tree: new.txt was created",
        ),
        (
            "user's index",
            "echo staged > \"$USER_REPO/staged.txt\" && git -C \"$USER_REPO\" add -A",
            "your index: staged.txt was created",
        ),
        (
            "tag",
            "git update-ref refs/tags/evil HEAD",
            "ref refs/tags/evil was created",
        ),
        (
            "config",
            "git -C \"$USER_REPO\" config core.evil true",
            "config file was changed",
        ),
        (
            "hook",
            "printf '#!/bin/sh\\n' > \"$USER_REPO/.git/hooks/post-commit\"",
            "hooks/post-commit was created",
        ),
        (
            "worktree the agent added",
            "git worktree add -q --detach ../extra HEAD",
            "linked worktree",
        ),
        (
            "test script the agent planted",
            "printf 'echo evil > \"%s/from-test.txt\"\\n' \"$USER_REPO\" >> test.sh",
            "your work tree: from-test.txt was created",
        ),
    ];
    for (what, escape, named) in cases {
        let repo = TestRepo::new();
        let head = repo.git(&["rev-parse", "main"]);
        let run = escaping_run(&repo, escape).expect_code(1);
        run.assert_stderr("is not merged");
        run.assert_stderr("--allow-breach");
        let found = breaches(&repo);
        assert!(
            found.iter().any(|b| b.contains(named)),
            "{what}: {named:?} not in {found:?}\n{}",
            run.stderr
        );
        // The merge was not made: main is where the user (or the agent) left it, and the
        // candidate's fix is not in it.
        assert!(!repo.read("calc.sh").contains("$2 + $3"), "{what}");
        if *what != "branch moved by the agent" {
            assert_eq!(repo.git(&["rev-parse", "main"]), head, "{what}");
        }
        // `merge` refuses the same way; `--allow-breach` merges.
        let again = repo
            .massgen()
            .args(["merge", "latest"])
            .run()
            .expect_code(1);
        again.assert_stderr("breach:");
        if *what == "tag" || *what == "config" || *what == "hook" {
            repo.massgen()
                .args(["merge", "latest", "--allow-breach"])
                .run()
                .expect_code(0);
            assert!(repo.read("calc.sh").contains("$2 + $3"), "{what}");
        }
        repo.massgen()
            .args(["clean", "--all", "--force"])
            .run()
            .expect_code(0);
        assert_eq!(repo.worktree_count(), 1, "{what}");
    }
}

#[test]
fn an_honest_run_has_no_breach_even_beside_another_run() {
    let repo = TestRepo::new();
    // The quick run ends, and writes the learning statistics (a ref), while the slow one's
    // agent still works: neither that ref nor the quick run's branches are a breach.
    let spawn = |name: &str, script: &str| {
        repo.massgen()
            .args([
                "run",
                "--sandbox",
                "off",
                "--json",
                "--agent-cmd",
                &repo.agent(name, script),
                "fix",
            ])
            .spawn()
    };
    let slow = spawn("a", &format!("sleep 3; {FIX}"));
    let quick = spawn("b", FIX);
    for child in [quick, slow] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["breaches"], serde_json::json!([]), "{json}");
    }
    assert!(
        repo.git_output(&["rev-parse", "--verify", "-q", "refs/massgen/learning"])
            .status
            .success()
    );
}

#[test]
fn merge_refuses_while_a_git_operation_is_paused() {
    let repo = TestRepo::new();
    repo.run_json(&[], &[("a", FIX)], "fix", 0);
    // A rebase stopped at an `edit` step.
    repo.write("other.txt", "1\n");
    repo.commit_all("second");
    let out = repo.git_output(&[
        "-c",
        "sequence.editor=sed -i 1s/^pick/edit/",
        "rebase",
        "-qi",
        "HEAD~1",
    ]);
    assert!(out.status.success(), "{out:?}");
    let merge = repo
        .massgen()
        .args(["merge", "latest", "a"])
        .run()
        .expect_code(1);
    merge.assert_stderr("a rebase is in progress");
    merge.assert_stderr("git rebase --continue");
    // `run --merge` says so before any agent starts.
    let marker = repo.root.join("agent-ran");
    let body = format!("touch '{}'", marker.display());
    let run = repo
        .massgen()
        .args([
            "run",
            "--sandbox",
            "off",
            "--merge",
            "--agent-cmd",
            &repo.agent("b", &body),
            "task",
        ])
        .run()
        .expect_code(1);
    run.assert_stderr("no agent was started");
    assert!(!marker.exists());
    repo.git(&["rebase", "--abort"]);

    // A conflicted merge.
    repo.git(&["checkout", "-qb", "side", "HEAD~1"]);
    repo.write("other.txt", "2\n");
    repo.commit_all("side");
    repo.git(&["checkout", "-q", "main"]);
    assert!(!repo.git_output(&["merge", "-q", "side"]).status.success());
    let merge = repo
        .massgen()
        .args(["merge", "latest", "a"])
        .run()
        .expect_code(1);
    merge.assert_stderr("a merge is in progress");
}

#[test]
fn run_merge_on_an_unborn_branch_fails_before_any_agent_runs() {
    let repo = TestRepo::new();
    repo.git(&["checkout", "-q", "--orphan", "fresh"]);
    let marker = repo.root.join("agent-ran");
    let body = format!("touch '{}'", marker.display());
    let run = repo
        .massgen()
        .args(["run", "--sandbox", "off", "--base", "main", "--merge"])
        .args(["--agent-cmd", &repo.agent("a", &body), "task"])
        .run()
        .expect_code(3);
    run.assert_stderr("HEAD has no commit yet");
    assert!(!marker.exists());
    assert!(repo.massgen_branches().is_empty());
}

#[test]
fn deleted_files_are_named_in_the_ranking_the_stat_and_the_merge_message() {
    let repo = TestRepo::new();
    repo.write("old.txt", "old\n");
    repo.commit_all("add old");
    // The agent resets its branch below the base: its candidate deletes old.txt.
    let body = "git reset -q --hard HEAD~1";
    let run = repo
        .massgen()
        .args([
            "run",
            "--sandbox",
            "off",
            "--agent-cmd",
            &repo.agent("a", body),
            "task",
        ])
        .run()
        .expect_code(0);
    run.assert_stdout("a deletes 1 file: old.txt");
    let stat = repo.massgen().args(["diff", "latest", "a", "--stat"]).run();
    stat.assert_stdout("old.txt (deleted)");
    // A squash merge writes its own message, which names the deletion.
    let merge = repo
        .massgen()
        .args(["merge", "latest", "a", "--squash"])
        .run()
        .expect_code(0);
    merge.assert_stdout("deleted 1 file: old.txt");
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.contains("Deletes: old.txt"), "{message}");
    assert!(!repo.path.join("old.txt").exists());
}

#[test]
fn two_run_merge_at_once_go_one_after_the_other() {
    let repo = TestRepo::new();
    let spawn = |name: &str, file: &str| {
        let body = format!("echo {name} > {file}");
        repo.massgen()
            .args([
                "run",
                "--sandbox",
                "off",
                "--merge",
                "--agent-cmd",
                &repo.agent(name, &body),
                "task",
            ])
            .spawn()
    };
    let children = [spawn("a", "a.txt"), spawn("b", "b.txt")];
    let mut merged = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("index.lock"), "{stderr}");
        match out.status.code() {
            Some(0) => merged += 1,
            // The other run's merge moved main while this one's agents ran: a breach.
            Some(1) => assert!(stderr.contains("breach"), "{stderr}"),
            code => panic!("exit {code:?}: {stderr}"),
        }
    }
    assert!(merged >= 1);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}
