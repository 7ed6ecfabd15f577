//! `git massgen merge` and `run --merge`: proved clean before the user's tree is touched.

use crate::support::{FIX, TestRepo, candidate};

/// Runs the fixing agent and returns the run JSON.
fn fixed_run(repo: &TestRepo) -> serde_json::Value {
    repo.run_json(&["--test", "sh test.sh"], &[("good", FIX)], "fix", 0)
}

#[test]
fn run_merge_fast_forwards_the_users_branch() {
    let repo = TestRepo::new();
    let json = repo.run_json(
        &["--merge", "--test", "sh test.sh"],
        &[("good", FIX)],
        "fix",
        0,
    );
    assert_eq!(json["merged"], true);
    assert_eq!(json["state"], "merged");
    assert_eq!(json["merge"]["kind"], "fast_forward");
    let commit = candidate(&json, "good")["commit"].as_str().unwrap();
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), commit);
    assert_eq!(repo.git(&["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert!(repo.read("calc.sh").contains("$2 + $3"));
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let status = repo
        .massgen()
        .args(["status", json["run"].as_str().unwrap(), "--json"])
        .expect_json(0);
    assert_eq!(status["merged"], true);
}

#[test]
fn merge_after_the_branch_moved_makes_a_merge_commit() {
    let repo = TestRepo::new();
    let json = fixed_run(&repo);
    repo.write("NOTES", "unrelated work\n");
    repo.commit_all("user work");
    let before = repo.git(&["rev-parse", "HEAD"]);
    let out = repo
        .massgen()
        .args(["merge", json["run"].as_str().unwrap(), "--json"])
        .expect_json(0);
    assert_eq!(out["merged"], true);
    assert_eq!(out["kind"], "merge");
    assert_eq!(out["conflicts"], serde_json::json!([]));
    let parents = repo.git(&["rev-list", "--parents", "-n1", "HEAD"]);
    let parents: Vec<&str> = parents.split(' ').skip(1).collect();
    assert_eq!(
        parents,
        vec![
            before.as_str(),
            candidate(&json, "good")["commit"].as_str().unwrap()
        ]
    );
    assert!(repo.read("calc.sh").contains("$2 + $3"));
    assert_eq!(repo.read("NOTES"), "unrelated work\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}

#[test]
fn squash_merge_makes_one_commit_with_one_parent() {
    let repo = TestRepo::new();
    let json = fixed_run(&repo);
    repo.write("NOTES", "unrelated\n");
    repo.commit_all("user work");
    let before = repo.git(&["rev-parse", "HEAD"]);
    repo.massgen()
        .args(["merge", "--squash", json["run"].as_str().unwrap()])
        .run()
        .expect_code(0);
    assert_eq!(repo.git(&["rev-parse", "HEAD^"]), before);
    assert!(
        repo.git_output(&["rev-parse", "--verify", "-q", "HEAD^2"])
            .stdout
            .is_empty()
    );
    assert!(repo.read("calc.sh").contains("$2 + $3"));
}

#[test]
fn conflicting_merge_changes_nothing_and_lists_paths() {
    let repo = TestRepo::new();
    let json = fixed_run(&repo);
    let calc = repo.read("calc.sh").replace("$2 - $3", "$2 + $3 + 0");
    repo.write("calc.sh", &calc);
    repo.commit_all("my own fix");
    repo.write("README", "uncommitted edit\n");
    let head = repo.git(&["rev-parse", "HEAD"]);
    let run_id = json["run"].as_str().unwrap();
    let out = repo
        .massgen()
        .args(["merge", run_id, "--json"])
        .expect_json(1);
    assert_eq!(out["merged"], false);
    assert_eq!(out["conflicts"][0]["path"], "calc.sh");
    assert_eq!(out["conflicts"][0]["kind"], "content");
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(repo.read("calc.sh"), calc);
    assert_eq!(repo.read("README"), "uncommitted edit\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), "M README");
    let human = repo.massgen().args(["merge", run_id]).run().expect_code(1);
    human.assert_stdout("calc.sh  (content)");
}

#[test]
fn dirty_overlap_is_refused_and_the_users_edit_survives() {
    let repo = TestRepo::new();
    let json = fixed_run(&repo);
    repo.write("calc.sh", "my unsaved work\n");
    let head = repo.git(&["rev-parse", "HEAD"]);
    let out = repo
        .massgen()
        .args(["merge", json["run"].as_str().unwrap(), "good", "--json"])
        .expect_json(1);
    assert_eq!(out["merged"], false);
    assert_eq!(out["blocked_by_dirty"], serde_json::json!(["calc.sh"]));
    assert_eq!(repo.read("calc.sh"), "my unsaved work\n");
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
}

#[test]
fn staged_and_untracked_overlaps_are_refused_too() {
    let repo = TestRepo::new();
    let json = repo.run_json(&[], &[("adder", "echo theirs > new.txt")], "add", 0);
    repo.write("new.txt", "mine, untracked\n");
    let out = repo
        .massgen()
        .args(["merge", json["run"].as_str().unwrap(), "--json"])
        .expect_json(1);
    assert_eq!(out["blocked_by_dirty"], serde_json::json!(["new.txt"]));
    assert_eq!(repo.read("new.txt"), "mine, untracked\n");
}

#[test]
fn unrelated_uncommitted_changes_survive_a_merge() {
    let repo = TestRepo::new();
    let json = fixed_run(&repo);
    repo.write("README", "edited, not staged\n");
    repo.write("staged.txt", "staged\n");
    repo.git(&["add", "staged.txt"]);
    repo.write("untracked.txt", "untracked\n");
    repo.git(&["stash", "list"]);
    repo.massgen()
        .args(["merge", json["run"].as_str().unwrap()])
        .run()
        .expect_code(0);
    assert!(repo.read("calc.sh").contains("$2 + $3"));
    assert_eq!(repo.read("README"), "edited, not staged\n");
    assert_eq!(repo.read("untracked.txt"), "untracked\n");
    assert_eq!(repo.git(&["diff", "--cached", "--name-only"]), "staged.txt");
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        " M README\nA  staged.txt\n?? untracked.txt".trim_start()
    );
}

#[test]
fn dry_run_changes_nothing() {
    let repo = TestRepo::new();
    let json = fixed_run(&repo);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let out = repo
        .massgen()
        .args([
            "merge",
            "--dry-run",
            "--json",
            json["run"].as_str().unwrap(),
        ])
        .expect_json(0);
    assert_eq!(out["merged"], false);
    assert_eq!(out["kind"], "fast_forward");
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
    assert!(repo.read("calc.sh").contains("$2 - $3"));
}

#[test]
fn merge_on_a_detached_head_moves_head() {
    let repo = TestRepo::new();
    repo.git(&["checkout", "-q", "--detach", "HEAD"]);
    let json = repo.run_json(&["--merge"], &[("good", FIX)], "fix", 0);
    assert_eq!(json["base_branch"], serde_json::Value::Null);
    assert_eq!(
        repo.git(&["rev-parse", "HEAD"]),
        candidate(&json, "good")["commit"].as_str().unwrap()
    );
    assert!(
        repo.git_output(&["symbolic-ref", "-q", "HEAD"])
            .stdout
            .is_empty()
    );
    assert_eq!(
        repo.git(&["rev-parse", "main"]),
        json["base"].as_str().unwrap()
    );
}

#[test]
fn a_merge_onto_another_branch_than_the_runs_base_says_so() {
    let repo = crate::support::TestRepo::new();
    repo.run_json(&[], &[("a", crate::support::FIX)], "fix", 0);
    repo.git(&["checkout", "-qb", "feature"]);
    let merge = repo
        .massgen()
        .args(["merge", "latest", "a"])
        .run()
        .expect_code(0);
    merge.assert_stdout("note: merging into feature, not main, the branch run");
    assert_eq!(repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "feature");
    assert!(repo.read("calc.sh").contains("$2 + $3"));
    assert_eq!(
        repo.git(&["rev-parse", "main"]),
        repo.git(&["rev-parse", "HEAD~1"])
    );
}
