//! `run --worktree-mode overlay`: copy-on-write worktrees over one shared checkout of the
//! base give the same candidates as full checkouts, leave nothing behind, and are refused
//! where overlays do not work.

use std::path::PathBuf;

use crate::overlay::overlay_works;
use crate::support::{BREAK, FIX, TestRepo, candidate};

/// The base checkouts (`<worktree root>/lower/<base>`) registered in `repo`.
fn lowers(repo: &TestRepo) -> Vec<PathBuf> {
    repo.git(&["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .filter(|p| p.contains("/lower/"))
        .map(PathBuf::from)
        .collect()
}

/// The tree of each candidate of a run, by agent.
fn trees(repo: &TestRepo, json: &serde_json::Value) -> Vec<(String, String)> {
    ["careful", "hasty"]
        .iter()
        .map(|a| {
            let branch = candidate(json, a)["branch"].as_str().unwrap().to_owned();
            let tree = repo.git(&["rev-parse", &format!("{branch}^{{tree}}")]);
            (a.to_string(), tree.trim().to_owned())
        })
        .collect()
}

const CAREFUL: &str = "echo careful > who.txt; rm README";
const HASTY: &str = "echo hasty > who.txt; mkdir -p docs && echo d > docs/x";

fn agents() -> [(&'static str, String); 2] {
    [
        ("careful", format!("{FIX}; {CAREFUL}")),
        ("hasty", format!("{BREAK}; {HASTY}")),
    ]
}

fn run(repo: &TestRepo, mode: &str) -> serde_json::Value {
    let agents = agents();
    let agents: Vec<(&str, &str)> = agents.iter().map(|(n, b)| (*n, b.as_str())).collect();
    repo.run_json(
        &["--worktree-mode", mode, "--test", "sh test.sh"],
        &agents,
        "fix the calculator",
        0,
    )
}

#[test]
fn overlay_runs_give_the_candidates_of_checkout_runs_and_share_one_base_checkout() {
    if !overlay_works("overlay_runs_give_the_candidates_of_checkout_runs") {
        return;
    }
    let repo = TestRepo::new();
    let checkout = run(&repo, "checkout");
    let overlay = run(&repo, "overlay");
    // The same winner, from tests that saw each candidate's own files.
    assert_eq!(overlay["winner"], "careful");
    assert_eq!(overlay["winner"], checkout["winner"]);
    assert_eq!(candidate(&overlay, "careful")["tests"]["passed"], 4);
    assert_eq!(candidate(&overlay, "hasty")["tests"]["failed"], 2);
    assert_eq!(overlay["breaches"], serde_json::json!([]));
    // The same trees: neither agent saw the other's writes.
    assert_eq!(trees(&repo, &overlay), trees(&repo, &checkout));
    // Nothing left but the base checkout, which the next run on the base reuses.
    let lower = lowers(&repo);
    assert_eq!(lower.len(), 1, "{lower:?}");
    assert_eq!(repo.worktree_count(), 2);
    let gitfile = std::fs::read_to_string(lower[0].join(".git")).unwrap();
    let admin = PathBuf::from(gitfile.trim().strip_prefix("gitdir: ").unwrap());
    std::fs::write(admin.join("test-marker"), "").unwrap();
    let again = run(&repo, "overlay");
    assert_eq!(trees(&repo, &again), trees(&repo, &checkout));
    assert_eq!(lowers(&repo), lower);
    assert!(
        admin.join("test-marker").is_file(),
        "the base checkout was made again"
    );
    let run_root = PathBuf::from(again["worktree_root"].as_str().unwrap());
    assert!(!run_root.join(".overlay").exists());
    repo.assert_fsck_clean();
    // Removed once no run uses it.
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert!(lowers(&repo).is_empty());
    assert!(!lower[0].exists());
    assert!(
        !lower[0].parent().unwrap().exists(),
        "lock files or lower/ left"
    );
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
}

#[test]
fn git_status_in_a_fresh_overlay_worktree_is_clean() {
    if !overlay_works("git_status_in_a_fresh_overlay_worktree_is_clean") {
        return;
    }
    let repo = TestRepo::new();
    let out = repo.root.join("status.txt");
    let body = format!(
        "git status --porcelain > '{0}' 2>&1; git rev-parse --abbrev-ref HEAD >> '{0}'",
        out.display()
    );
    repo.run_json(
        &["--worktree-mode", "overlay", "--sandbox", "off"],
        &[("look", &body)],
        "look",
        1,
    );
    let said = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 1, "{said}");
    assert!(lines[0].starts_with("massgen/"), "{said}");
}

#[test]
fn overlay_mode_without_user_namespaces_is_refused_before_anything_is_made() {
    let repo = TestRepo::new();
    let agents = agents();
    let run = repo
        .massgen()
        .env("MASSGEN_TEST_NO_USERNS", "1")
        .args(["run", "--worktree-mode", "overlay", "--test", "sh test.sh"])
        .args(["--agent-cmd", &repo.agent("careful", &agents[0].1)])
        .args(["--", "fix it"])
        .run()
        .expect_code(4);
    run.assert_stderr("copy-on-write worktrees (--worktree-mode overlay) do not work here");
    run.assert_stderr("user namespaces");
    run.assert_stderr("--worktree-mode checkout");
    assert!(repo.massgen_branches().is_empty());
    assert_eq!(repo.worktree_count(), 1);
    let runs = repo.path.join(".massgen/runs");
    assert!(
        !runs.exists() || std::fs::read_dir(&runs).unwrap().next().is_none(),
        "a run was made"
    );
}

#[test]
fn clean_saves_what_an_agent_left_in_its_overlay_after_a_kill() {
    if !overlay_works("clean_saves_what_an_agent_left_in_its_overlay_after_a_kill") {
        return;
    }
    let repo = TestRepo::new();
    // The agent kills git-massgen (its parent) after writing; unconfined, since a
    // sandbox may keep it from signalling outside.
    let body = "echo work > left.txt; rm README; kill -9 $PPID; sleep 5";
    let out = repo
        .massgen()
        .args(["run", "--worktree-mode", "overlay", "--sandbox", "off"])
        .args(["--agent-cmd", &repo.agent("a", body), "t"])
        .run();
    assert_eq!(out.code, None, "{out:?}");
    let branch = repo.massgen_branches().pop().expect("a candidate branch");
    let clean = repo.massgen().args(["clean", "--all"]).run().expect_code(0);
    clean.assert_stderr("saved a's work");
    let files = repo.git(&["ls-tree", "-r", "--name-only", &branch]);
    assert!(files.contains("left.txt"), "{files}");
    assert!(!files.contains("README"), "{files}");
    assert_eq!(lowers(&repo).len(), 1, "the kept run still names it");
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
}

#[test]
fn auto_falls_back_to_checkouts_with_a_warning() {
    let repo = TestRepo::new();
    repo.write(".massgen/config.toml", "[worktree]\nmode = \"auto\"\n");
    let run = repo
        .massgen()
        .env("MASSGEN_TEST_NO_USERNS", "1")
        .args([
            "run",
            "--json",
            "--agent-cmd",
            &repo.agent("careful", FIX),
            "t",
        ])
        .run()
        .expect_code(0);
    run.assert_stderr("worktrees are full checkouts: copy-on-write worktrees do not work here");
    assert_eq!(run.json()["worktree_mode"], "checkout");
}

#[test]
fn setup_and_commits_made_inside_an_overlay_worktree_count() {
    if !overlay_works("setup_and_commits_made_inside_an_overlay_worktree_count") {
        return;
    }
    let repo = TestRepo::new();
    repo.write(
        ".massgen/config.toml",
        "[worktree]\nsetup = [\"echo ready > setup.out\"]\n",
    );
    // Confined as by default: git works inside, on the candidate branch.
    let body = "cat setup.out > seen.txt && git add seen.txt && git commit -qm inside \
                && echo after > after.txt";
    let json = repo.run_json(&["--worktree-mode", "overlay"], &[("a", body)], "t", 0);
    let branch = candidate(&json, "a")["branch"].as_str().unwrap().to_owned();
    let show = |file: &str| repo.git(&["show", &format!("{branch}:{file}")]);
    assert_eq!(show("seen.txt").trim(), "ready");
    assert_eq!(show("after.txt").trim(), "after");
    let log = repo.git(&["log", "--format=%s", "-2", &branch]);
    assert!(log.lines().nth(1) == Some("inside"), "{log}");
    assert_eq!(json["breaches"], serde_json::json!([]));
    assert_eq!(repo.worktree_count(), 2);
    repo.assert_fsck_clean();
}
