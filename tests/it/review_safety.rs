//! `git massgen review` when things go wrong: killed and concurrent reviews, records that
//! are not ours, reviewers that vandalise their tree, signals.

use serde_json::json;

use crate::review::{assert_only_the_review_worktree_is_left, finders, review_json};
use crate::support::TestRepo;

#[test]
fn killed_reviews_leave_nothing_the_next_review_does_not_take_over_or_remove() {
    let repo = TestRepo::new();
    let slow = repo.script("slow.sh", "sleep 30; echo '{\"findings\": []}'");
    repo.configure(&format!(
        "[[reviewers]]\nname = \"slow\"\ncommand = [\"sh\", {}]\n",
        toml::Value::String(slow.display().to_string())
    ));
    repo.write("app.txt", "x\n");
    repo.git(&["add", "app.txt"]);
    // Two reviews at once: the first takes the kept worktree, the second checks out its own.
    let mut first = repo.massgen().args(["review", "--staged"]).spawn();
    crate::support::wait_for("the kept worktree", || repo.worktree_count() == 2);
    let mut second = repo.massgen().args(["review", "--staged"]).spawn();
    crate::support::wait_for("a second worktree", || repo.worktree_count() == 3);
    for child in [&mut first, &mut second] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let _ = std::process::Command::new("pkill")
        .args(["-f", &slow.display().to_string()])
        .status();
    assert_eq!(repo.worktree_count(), 3, "a kill leaves both worktrees");
    // The next review takes over the kept worktree (its holder is dead) and removes the
    // other one.
    repo.configure(&finders(&repo, &[("a", "")]));
    repo.write("app.txt", "BUG\n");
    repo.git(&["add", "app.txt"]);
    let json = review_json(&repo, &["--staged"], 1);
    assert_eq!(
        json["findings"][0]["path"], "app.txt",
        "the kept tree moved to the change"
    );
    assert_only_the_review_worktree_is_left(&repo);
    repo.assert_fsck_clean();
}

#[test]
fn a_review_record_from_anywhere_never_deletes_what_is_not_ours() {
    let repo = TestRepo::new();
    let victim = repo.scratch("victim");
    std::fs::write(victim.join("precious"), "keep me").unwrap();
    for (id, path) in [
        ("20990101-000000-dead", victim.display().to_string()),
        ("20990101-000001-dead", "src".into()),
    ] {
        repo.write(
            &format!(".massgen/reviews/{id}/active.json"),
            &json!({"pid": 4_000_000, "worktree": path}).to_string(),
        );
    }
    repo.write("src/keep.txt", "keep\n");
    repo.configure(&finders(&repo, &[("a", "")]));
    repo.write("app.txt", "x\n");
    repo.git(&["add", "app.txt"]);
    review_json(&repo, &["--staged"], 0);
    repo.massgen().args(["clean"]).run().expect_code(0);
    assert_eq!(
        std::fs::read_to_string(victim.join("precious")).unwrap(),
        "keep me"
    );
    assert_eq!(repo.read("src/keep.txt"), "keep\n");
}

#[test]
fn a_reviewer_that_deletes_git_cannot_touch_the_users_repository() {
    let repo = TestRepo::new();
    // Unconfined, so that the vandal gets as far as it can (confined, it changes nothing).
    repo.git(&["config", "massgen.sandbox", "off"]);
    let out = repo.scratch("seen");
    let vandal = repo.script(
        "vandal.sh",
        r#"rm -f .git; git rev-parse --show-toplevel > "$OUT/top" 2>&1; echo '{"findings": []}'"#,
    );
    repo.write(".gitignore", ".wt/\n");
    repo.configure(&format!(
        "[run]\nworktree_root = \".wt\"\n\n[[reviewers]]\nname = \"vandal\"\ncommand = [\"sh\", {}]\nenv = {{ OUT = {} }}\n",
        toml::Value::String(vandal.display().to_string()),
        toml::Value::String(out.display().to_string())
    ));
    repo.write("README", "edited, not staged\n");
    repo.write("new.txt", "staged\n");
    repo.git(&["add", "new.txt"]);
    let status = repo.git(&["status", "--porcelain"]);
    for _ in 0..2 {
        let run = repo.massgen().args(["review", "HEAD"]).run().expect_code(0);
        run.assert_stderr("reviewers changed");
        let top = std::fs::read_to_string(out.join("top")).unwrap();
        assert!(
            top.contains("not a git repository"),
            "git found a repository: {top}"
        );
    }
    assert_eq!(repo.git(&["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(repo.git(&["status", "--porcelain"]), status);
    assert_eq!(repo.read("README"), "edited, not staged\n");
    assert_only_the_review_worktree_is_left(&repo);
    repo.assert_fsck_clean();
}

#[test]
fn sigterm_stops_the_reviewers_and_cleans_up() {
    let repo = TestRepo::new();
    let slow = repo.script("slow-term.sh", "sleep 30; echo '{\"findings\": []}'");
    repo.configure(&format!(
        "[[reviewers]]\nname = \"slow\"\ncommand = [\"sh\", {}]\n",
        toml::Value::String(slow.display().to_string())
    ));
    repo.write("app.txt", "x\n");
    repo.git(&["add", "app.txt"]);
    let child = repo.massgen().args(["review", "--staged"]).spawn();
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", &slow.display().to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    crate::support::wait_for("the reviewer", running);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::support::wait_for("the reviewer to be stopped", || !running());
    assert_only_the_review_worktree_is_left(&repo);
}

#[test]
fn clean_removes_the_kept_worktree_even_without_the_reviews_directory() {
    let repo = TestRepo::new();
    repo.configure(&finders(&repo, &[("a", "")]));
    review_json(&repo, &["HEAD"], 0);
    assert_eq!(repo.worktree_count(), 2);
    std::fs::remove_dir_all(repo.path.join(".massgen/reviews")).unwrap();
    assert_only_the_review_worktree_is_left(&repo);
}
