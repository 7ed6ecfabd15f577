//! Crashes at exact instants (kill points set with `MASSGEN_TEST_KILL_AT`), then recovery:
//! nothing the user had is lost, and nothing is recorded or merged that an agent did not do.

use crate::support::{FIX, TestRepo, wait_for};

/// A repository with `n` more tracked files, committed.
fn big_repo(n: usize) -> TestRepo {
    let repo = TestRepo::new();
    for i in 0..n {
        repo.write(&format!("d{}/f{i}.txt", i % 20), &format!("file {i}\n"));
    }
    repo.commit_all("many files");
    repo
}

fn tracked(repo: &TestRepo) -> usize {
    repo.git(&["ls-files"]).lines().count()
}

/// Runs two do-nothing agents with the process killed at `point`; returns the exit.
fn killed_run(repo: &TestRepo, point: &str) {
    let out = repo
        .massgen()
        .env("MASSGEN_TEST_KILL_AT", point)
        .args([
            "run",
            "--agent-cmd",
            "a=true",
            "--agent-cmd",
            "b=true",
            "task",
        ])
        .run();
    assert_eq!(out.code, None, "killed at {point}: {out:?}");
}

/// After a crash while worktrees were being made, no candidate exists that deletes the
/// files not yet checked out: `merge` finds nothing to merge, `clean` saves nothing and
/// removes everything, and the user's branch keeps all its files.
#[test]
fn a_crash_while_worktrees_are_made_never_yields_a_candidate() {
    for point in ["worktrees-registered", "worktree-checked-out"] {
        let repo = big_repo(400);
        let files = tracked(&repo);
        let head = repo.git(&["rev-parse", "HEAD"]);
        killed_run(&repo, point);
        // Registrations are written whole: git sees no broken worktree even before `clean`.
        repo.assert_fsck_clean();

        let merge = repo.massgen().args(["merge", "latest", "a"]).run();
        assert_ne!(merge.code, Some(0), "{point}: {merge:?}");
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), head, "{point}");

        let clean = repo.massgen().args(["clean", "--all"]).run().expect_code(0);
        assert!(!clean.stderr.contains("saved"), "{point}: {}", clean.stderr);
        clean.assert_stderr("never completely set up");
        assert!(repo.massgen_branches().is_empty(), "{point}");
        assert_eq!(repo.worktree_count(), 1, "{point}");
        assert_eq!(tracked(&repo), files, "{point}");
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), head, "{point}");
        assert_eq!(repo.git(&["status", "--porcelain"]), "", "{point}");
        repo.assert_fsck_clean();
    }
}

/// The worktree root of `repo` (the sealed cache), where each run has a directory.
fn worktree_root(repo: &TestRepo) -> std::path::PathBuf {
    let base = repo.root.join("cache/git-massgen/worktrees");
    let entry = std::fs::read_dir(&base).unwrap().flatten().next().unwrap();
    entry.path()
}

#[test]
fn one_damaged_run_does_not_block_the_others() {
    let repo = TestRepo::new();
    let good = repo.run_json(&[], &[("a", FIX)], "fix", 0);
    let good = good["run"].as_str().unwrap().to_owned();
    let bad = repo.run_json(&["--keep"], &[("b", "echo b > b.txt")], "b", 0);
    let bad = bad["run"].as_str().unwrap().to_owned();
    // The kept worktree holds more work than the candidate: it must be saved.
    let wt = worktree_root(&repo).join(&bad).join("b");
    std::fs::write(wt.join("more.txt"), "more\n").unwrap();
    let state = repo
        .path
        .join(".massgen/runs")
        .join(&bad)
        .join("state.json");
    let text = std::fs::read(&state).unwrap();
    std::fs::write(&state, &text[..text.len() / 2]).unwrap();

    let list = repo.massgen().args(["status"]).run().expect_code(0);
    list.assert_stdout(&good);
    list.assert_stdout("unreadable");
    let json = repo.massgen().args(["status", "--json"]).expect_json(0);
    assert_eq!(json.as_array().unwrap().len(), 2, "{json}");
    repo.massgen().args(["status", &good]).run().expect_code(0);
    let shown = repo.massgen().args(["status", &bad]).run().expect_code(4);
    shown.assert_stderr("git massgen clean");

    let clean = repo.massgen().args(["clean", "--all"]).run().expect_code(0);
    clean.assert_stderr("saved the work");
    clean.assert_stderr("set aside");
    let branch = format!("massgen/{bad}/b");
    let files = repo.git(&["ls-tree", "-r", "--name-only", &branch]);
    assert!(
        files.contains("more.txt") && files.contains("b.txt"),
        "{files}"
    );
    assert_eq!(repo.worktree_count(), 1);
    // With --force the kept branch goes too, and nothing of either run is left.
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert!(
        repo.massgen_branches().is_empty(),
        "{:?}",
        repo.massgen_branches()
    );
    let status = repo.massgen().args(["status", "--json"]).expect_json(0);
    assert_eq!(status, serde_json::json!([]));
    repo.assert_fsck_clean();
}

#[test]
fn a_run_killed_as_it_was_created_is_removed_by_clean() {
    let repo = TestRepo::new();
    killed_run(&repo, "run-staged");
    // An earlier version's leftover: a run directory without state.
    let old = repo.path.join(".massgen/runs/20260101-000000-abcd");
    std::fs::create_dir_all(old.join("logs")).unwrap();
    let status = repo.massgen().args(["status"]).run().expect_code(0);
    status.assert_stdout("20260101-000000-abcd");
    status.assert_stdout("no state.json");
    let clean = repo
        .massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    clean.assert_stderr("killed as it was created");
    let left: Vec<_> = std::fs::read_dir(repo.path.join(".massgen/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn what_agents_write_beside_their_worktrees_is_removed() {
    let repo = TestRepo::new();
    let json = repo.run_json(
        &[],
        &[("a", "echo junk > ../junk.txt; echo x > x.txt")],
        "t",
        0,
    );
    let run = json["run"].as_str().unwrap();
    let dir = worktree_root(&repo).join(run);
    wait_for("the run's worktree directory to go", || !dir.exists());
}

#[test]
fn clean_says_which_running_runs_it_skipped() {
    let repo = TestRepo::new();
    let child = repo
        .massgen()
        .args(["run", "--agent-cmd", &repo.agent("slow", "sleep 30"), "t"])
        .spawn();
    wait_for("the run to start", || {
        repo.massgen()
            .args(["status", "--json"])
            .expect_json(0)
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["state"] == "running"))
    });
    let clean = repo
        .massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    clean.assert_stderr("skipped run");
    clean.assert_stderr("still running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait_with_output();
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
}

#[test]
fn a_lock_left_on_a_candidate_branch_by_a_killed_clean_does_not_block_the_next() {
    let repo = TestRepo::new();
    let json = repo.run_json(&[], &[("a", FIX)], "fix", 0);
    let run = json["run"].as_str().unwrap();
    let lock = repo
        .path
        .join(format!(".git/refs/heads/massgen/{run}/a.lock"));
    std::fs::write(&lock, "").unwrap();
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert!(repo.massgen_branches().is_empty());
    assert!(!lock.exists());
    repo.assert_fsck_clean();
}

#[test]
fn an_agent_that_replaces_its_dot_git_still_has_its_work_saved() {
    for (what, escape) in [
        ("git init", "rm -f .git && git init -q ."),
        ("a link", "rm -f .git && ln -s \"$USER_REPO/.git\" .git"),
    ] {
        let repo = TestRepo::new();
        let body = format!("{FIX}; echo new > new.txt; {escape}");
        let json = repo
            .massgen()
            .env("USER_REPO", &repo.path)
            .args([
                "run",
                "--json",
                "--agent-cmd",
                &repo.agent("a", &body),
                "fix",
            ])
            .expect_json(0);
        let c = crate::support::candidate(&json, "a");
        assert_eq!(c["status"], "done", "{what}: {c}");
        let branch = c["branch"].as_str().unwrap();
        let files = repo.git(&["ls-tree", "-r", "--name-only", branch]);
        assert!(files.contains("new.txt"), "{what}: {files}");
        assert!(!files.contains(".git/"), "{what}: {files}");
        assert!(
            repo.git(&["show", &format!("{branch}:calc.sh")])
                .contains("$2 + $3"),
            "{what}"
        );
        assert_eq!(repo.git(&["status", "--porcelain"]), "", "{what}");
        repo.assert_fsck_clean();
    }
}

/// What a test command writes in a candidate's worktree is never recorded as the candidate's,
/// even when the run is killed while the tests run.
#[test]
fn test_output_never_becomes_part_of_a_candidate() {
    let repo = TestRepo::new();
    let body = "echo fix > fix.txt";
    // The test command kills git-massgen (its parent) after writing its output.
    let test = "echo out > test-artifact.txt; kill -9 $PPID; sleep 5";
    let out = repo
        .massgen()
        .args([
            "run",
            "--test",
            test,
            "--agent-cmd",
            &repo.agent("a", body),
            "t",
        ])
        .run();
    assert_eq!(out.code, None, "{out:?}");
    let branch = repo.massgen_branches().pop().expect("a candidate branch");
    let clean = repo.massgen().args(["clean", "--all"]).run().expect_code(0);
    clean.assert_stderr("changes made after its candidate was recorded");
    let files = repo.git(&["ls-tree", "-r", "--name-only", &branch]);
    assert!(files.contains("fix.txt"), "{files}");
    assert!(!files.contains("test-artifact.txt"), "{files}");
    repo.massgen()
        .args(["merge", "latest", "a"])
        .run()
        .expect_code(0);
    assert!(repo.path.join("fix.txt").exists());
    assert!(!repo.path.join("test-artifact.txt").exists());
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
}
