//! What copy-on-write worktrees do beyond one round: refinement rounds and `--continue`
//! give the candidates of checkouts (git inside sees each candidate, not the base), `--keep`
//! leaves ordinary worktrees with everything the agent left, ignored files brought in reach
//! the overlay, and `auto` picks overlays where they work.

use std::path::{Path, PathBuf};

use crate::overlay::overlay_works;
use crate::support::{FIX, TestRepo, candidate};

/// Round 1 fixes and makes files; round 2 and turn 2 record what `git status` says inside,
/// then change more (a new directory, a deletion, an append).
const STEPS: &str = r#"
case "$MASSGEN_TURN.$MASSGEN_ROUND" in
1.1) FIXCMD; echo one > r1.txt; rm README; mkdir -p gone && echo g > gone/f ;;
1.2) printf %s "$(git status --porcelain)" > status.round2; git log -1 --format=%an > who.round2
     echo two >> r1.txt; mkdir -p new/deep && echo n > new/deep/f; rm -r gone ;;
*)   printf %s "$(git status --porcelain)" > status.turn2; findmnt -no FSTYPE "$PWD" > 'MOUNTS'; echo three >> r1.txt; chmod +x r1.txt ;;
esac
"#;

/// [`STEPS`]; the second turn writes the type of the file system its worktree is on to `mounts`.
fn steps(mounts: &Path) -> String {
    STEPS
        .replace("FIXCMD", FIX)
        .replace("MOUNTS", &mounts.display().to_string())
}

/// The tree of `agent`'s candidate in the run `json`.
fn tree(repo: &TestRepo, json: &serde_json::Value, agent: &str) -> String {
    let branch = candidate(json, agent)["branch"]
        .as_str()
        .unwrap()
        .to_owned();
    repo.git(&["rev-parse", &format!("{branch}^{{tree}}")])
        .trim()
        .to_owned()
}

/// Two rounds, then a second turn, in `mode`; the run's JSON after each.
fn two_rounds_then_a_turn(repo: &TestRepo, mode: &str) -> (serde_json::Value, serde_json::Value) {
    let mounts = repo.root.join(format!("{mode}.mounts"));
    let steps = steps(&mounts);
    let first = repo.run_json(
        &["--worktree-mode", mode, "--rounds", "2", "--sandbox", "off"],
        &[("a", &steps)],
        "fix it",
        0,
    );
    let run = first["run"].as_str().unwrap().to_owned();
    let second = repo
        .massgen()
        .args(["run", "--json", "--sandbox", "off", "--continue", &run])
        .args(["--", "more"])
        .expect_json(0);
    (first, second)
}

#[test]
fn rounds_and_turns_in_overlays_give_the_candidates_of_checkouts() {
    if !overlay_works("rounds_and_turns_in_overlays_give_the_candidates_of_checkouts") {
        return;
    }
    let repo = TestRepo::new();
    let (c1, c2) = two_rounds_then_a_turn(&repo, "checkout");
    let (o1, o2) = two_rounds_then_a_turn(&repo, "overlay");
    assert_eq!(o1["worktree_mode"], "overlay");
    assert_eq!(o1["rounds"], 2);
    assert_eq!(tree(&repo, &o1, "a"), tree(&repo, &c1, "a"));
    assert_eq!(tree(&repo, &o2, "a"), tree(&repo, &c2, "a"));
    // Inside, git saw the candidate of the round before: a clean tree on its commit.
    let branch = candidate(&o2, "a")["branch"].as_str().unwrap().to_owned();
    let show = |file: &str| repo.git(&["show", &format!("{branch}:{file}")]);
    assert_eq!(show("status.round2"), "");
    assert_eq!(show("who.round2"), "git-massgen");
    assert_eq!(show("status.turn2"), "");
    // The second turn worked in an overlay again.
    let fs = std::fs::read_to_string(repo.root.join("overlay.mounts")).unwrap();
    assert_eq!(fs.trim(), "overlay");
    assert_eq!(show("r1.txt"), "one\ntwo\nthree");
    assert!(!show("new/deep/f").is_empty());
    assert_eq!(o2["breaches"], serde_json::json!([]));
    // The continued turn's overlays went, the base checkout stays until clean.
    let root = PathBuf::from(o2["worktree_root"].as_str().unwrap());
    assert!(!root.join(".overlay").exists());
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert_eq!(repo.worktree_count(), 1);
    assert!(!root.parent().unwrap().join("lower").exists());
    repo.assert_fsck_clean();
}

/// Whether `path` is a mount point this process sees.
fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(path.as_str()))
}

#[test]
fn keep_leaves_ordinary_worktrees_with_all_the_agent_left() {
    if !overlay_works("keep_leaves_ordinary_worktrees_with_all_the_agent_left") {
        return;
    }
    let repo = TestRepo::new();
    repo.write(".gitignore", "build/\n");
    repo.commit_all("ignore build");
    let body = format!("{FIX}; mkdir -p build && echo out > build/o.txt; rm README");
    let json = repo.run_json(
        &[
            "--worktree-mode",
            "overlay",
            "--keep",
            "--test",
            "sh test.sh",
        ],
        &[("a", &body)],
        "fix it",
        0,
    );
    let wt = PathBuf::from(candidate(&json, "a")["worktree"].as_str().unwrap());
    assert!(!mounted(&wt));
    // Seen from outside, as any worktree: the candidate's files and its ignored output.
    assert!(
        std::fs::read_to_string(wt.join("calc.sh"))
            .unwrap()
            .contains("$2 + $3")
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("build/o.txt")).unwrap(),
        "out\n"
    );
    assert!(!wt.join("README").exists());
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&wt)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(git(&["status", "--porcelain"]), "");
    let branch = candidate(&json, "a")["branch"].as_str().unwrap();
    assert_eq!(git(&["rev-parse", "--abbrev-ref", "HEAD"]).trim(), branch);
    let list = repo.git(&["worktree", "list", "--porcelain"]);
    assert!(!list.contains("locked"), "{list}");
    let root = PathBuf::from(json["worktree_root"].as_str().unwrap());
    assert!(!root.join(".overlay").exists());
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert!(!wt.exists());
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
}

#[test]
fn ignored_files_brought_in_reach_overlay_worktrees_and_stay_out_of_candidates() {
    if !overlay_works("ignored_files_brought_in_reach_overlay_worktrees") {
        return;
    }
    let repo = TestRepo::new();
    repo.write(".gitignore", ".env\ncache/\n");
    repo.commit_all("ignore");
    repo.write(".env", "SECRET=1\n");
    repo.write("cache/data", "cached\n");
    repo.write(
        ".massgen/config.toml",
        "[worktree]\ninclude = [\".env\"]\nshare = [\"cache\"]\n",
    );
    let body = "cat .env > seen.txt; cat cache/data >> seen.txt; echo changed > .env";
    let json = repo.run_json(
        &["--worktree-mode", "overlay", "--sandbox", "off"],
        &[("a", body)],
        "look",
        0,
    );
    let branch = candidate(&json, "a")["branch"].as_str().unwrap().to_owned();
    let show = |file: &str| repo.git(&["show", &format!("{branch}:{file}")]);
    assert_eq!(show("seen.txt"), "SECRET=1\ncached");
    let files = repo.git(&["ls-tree", "-r", "--name-only", &branch]);
    assert!(
        !files.contains(".env") && !files.contains("cache"),
        "{files}"
    );
    // The copy was the agent's own: the user's is untouched.
    assert_eq!(repo.read(".env"), "SECRET=1\n");
    assert_eq!(json["breaches"], serde_json::json!([]));
}

#[test]
fn auto_picks_overlays_where_they_work() {
    let works = overlay_works("auto_picks_overlays_where_they_work");
    let repo = TestRepo::new();
    repo.write(".massgen/config.toml", "[worktree]\nmode = \"auto\"\n");
    let run = repo
        .massgen()
        .args(["run", "--json", "--agent-cmd", &repo.agent("a", FIX), "t"])
        .run()
        .expect_code(0);
    let expected = if works { "overlay" } else { "checkout" };
    assert_eq!(run.json()["worktree_mode"], expected);
    assert_eq!(
        run.stderr
            .contains("copy-on-write worktrees do not work here"),
        !works
    );
}

/// Adds a commit with `n` more small files to `repo`'s `main` through `git fast-import`,
/// and checks it out.
fn add_files(repo: &TestRepo, n: usize) {
    use std::io::Write;
    let mut stream = Vec::new();
    let _ = write!(
        stream,
        "commit refs/heads/main\ncommitter t <t@example.com> 0 +0000\ndata 5\nmany\nfrom refs/heads/main^0\n"
    );
    for i in 0..n {
        let data = format!("file {i}\n");
        let _ = write!(
            stream,
            "M 100644 inline d{:03}/s{:02}/f{i:06}.txt\ndata {}\n{data}\n",
            i / 1000,
            (i / 50) % 20,
            data.len()
        );
    }
    let mut cmd = std::process::Command::new("git");
    crate::support::seal(&mut cmd, &repo.root);
    let mut child = cmd
        .current_dir(&repo.path)
        .args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success());
    repo.git(&["reset", "-q", "--hard"]);
}

#[test]
fn git_status_in_a_fresh_overlay_worktree_of_100k_files_hashes_no_file() {
    if !overlay_works("git_status_in_a_fresh_overlay_worktree_of_100k_files") {
        return;
    }
    let repo = TestRepo::new();
    add_files(&repo, 100_000);
    let (trace, out) = (repo.root.join("trace.json"), repo.root.join("status.txt"));
    let body = format!(
        "GIT_TRACE2_EVENT='{}' git status --porcelain > '{}'",
        trace.display(),
        out.display()
    );
    repo.run_json(
        &["--worktree-mode", "overlay", "--sandbox", "off"],
        &[("look", &body)],
        "look",
        1,
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    // trace2's count of the index's entries, and of the files git read to hash them again.
    let trace = std::fs::read_to_string(&trace).unwrap();
    let value = |key: &str| -> Vec<u64> {
        let key = format!("\"key\":\"{key}\",\"value\":\"");
        trace
            .lines()
            .filter_map(|l| {
                l.split(key.as_str())
                    .nth(1)?
                    .split('"')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    assert!(
        value("read/cache_nr").iter().all(|n| *n > 100_000),
        "{trace}"
    );
    assert!(!value("refresh/sum_scan").is_empty(), "{trace}");
    assert!(value("refresh/sum_scan").iter().all(|n| *n == 0), "{trace}");
}

#[test]
fn ignore_rules_the_agent_changed_apply_to_its_candidate() {
    if !overlay_works("ignore_rules_the_agent_changed_apply_to_its_candidate") {
        return;
    }
    let repo = TestRepo::new();
    repo.write(".gitignore", "*.log\n");
    repo.commit_all("ignore logs");
    // Logs are no longer ignored, installed dependencies are.
    let body = "printf 'deps/\\n' > .gitignore; mkdir deps; echo x > deps/a; \
                echo l > kept.log; echo y > new.txt";
    let run = |mode: &str| {
        let json = repo.run_json(
            &["--worktree-mode", mode, "--sandbox", "off"],
            &[("a", body)],
            "t",
            0,
        );
        let branch = candidate(&json, "a")["branch"].as_str().unwrap().to_owned();
        repo.git(&["ls-tree", "-r", "--name-only", &branch])
    };
    let (checkout, overlay) = (run("checkout"), run("overlay"));
    assert_eq!(overlay, checkout);
    assert!(
        overlay.contains("kept.log") && overlay.contains("new.txt"),
        "{overlay}"
    );
    assert!(!overlay.contains("deps/"), "{overlay}");
}
