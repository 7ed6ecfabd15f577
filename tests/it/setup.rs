//! `[worktree] setup`: commands that make each new worktree ready before its agent starts;
//! a failing setup fails that candidate only, and its agent never runs.

use crate::support::{TestRepo, candidate};

fn repo_with_setup() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(".gitignore", "deps/\n");
    repo.commit_all("ignore deps");
    repo.configure(
        r#"[worktree]
setup = [
  "mkdir -p deps && echo 41 > deps/value",
  "[ \"$MASSGEN_AGENT\" != bad ] || { echo \"cannot install for $MASSGEN_AGENT\"; exit 3; }",
]
"#,
    );
    repo
}

#[test]
fn setup_runs_before_each_agent_and_a_failure_fails_only_its_candidate() {
    let repo = repo_with_setup();
    let ran = repo.root.join("ran");
    std::fs::create_dir_all(&ran).unwrap();
    let body = format!(
        "touch '{}'/\"$MASSGEN_AGENT\"; echo $(( $(cat deps/value) + 1 )) > answer.txt",
        ran.display()
    );
    let json = repo.run_json(
        &["--test", "test \"$(cat answer.txt)\" = 42"],
        &[("good", &body), ("bad", &body)],
        "answer",
        0,
    );
    assert_eq!(json["winner"], "good");
    let bad = candidate(&json, "bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["error"], "setup failed: cannot install for bad");
    assert!(ran.join("good").exists());
    assert!(!ran.join("bad").exists(), "bad's agent must not start");
    let run = json["run"].as_str().unwrap();
    let log = repo
        .path
        .join(format!(".massgen/runs/{run}/logs/good.setup.log"));
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("mkdir -p deps")
    );
    // What setup made (ignored) is not part of the candidate.
    let files = repo.git(&[
        "ls-tree",
        "-r",
        "--name-only",
        &format!("massgen/{run}/good"),
    ]);
    assert!(!files.contains("deps/"), "{files}");
    // Nothing of the failed candidate is saved by clean.
    let clean = repo.massgen().args(["clean", "--all"]).run().expect_code(0);
    assert!(!clean.stderr.contains("saved"), "{}", clean.stderr);
}

#[test]
fn no_setup_skips_it() {
    let repo = repo_with_setup();
    let json = repo.run_json(
        &["--no-setup"],
        &[("bad", "test -e deps/value || echo none > none.txt")],
        "t",
        0,
    );
    let bad = candidate(&json, "bad");
    assert_eq!(bad["status"], "done", "{bad}");
}

#[test]
fn ignored_files_and_directories_are_brought_into_each_worktree() {
    let repo = TestRepo::new();
    repo.write(".gitignore", ".env\ndeps/\nbuild/\n");
    repo.write(".worktreeinclude", "# what the tests read\n.env\n");
    repo.commit_all("ignore");
    repo.configure("[worktree]\nclone = [\"deps\"]\n");
    repo.write(".env", "VALUE=40\n");
    repo.write("deps/lib/add.sh", "echo $(( $1 + 2 ))\n");
    repo.write("build/huge.bin", "not wanted\n");
    let body = ". ./.env; sh deps/lib/add.sh $VALUE > answer.txt; test -e build/huge.bin && touch saw-build || true";
    let json = repo.run_json(
        &["--test", "test \"$(cat answer.txt)\" = 42"],
        &[("a", body), ("b", body)],
        "t",
        0,
    );
    for agent in ["a", "b"] {
        let c = candidate(&json, agent);
        assert_eq!(c["tests"]["exit_code"], 0, "{c}");
        let files = repo.git(&[
            "ls-tree",
            "-r",
            "--name-only",
            c["branch"].as_str().unwrap(),
        ]);
        assert!(files.contains("answer.txt"), "{files}");
        assert!(
            !files.contains(".env") && !files.contains("deps/"),
            "{files}"
        );
        assert!(
            !files.contains("saw-build"),
            "only what is named is copied: {files}"
        );
    }
    assert_eq!(repo.read(".env"), "VALUE=40\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

/// A run whose worktrees cannot fit on the worktree root's file system is refused before
/// anything is made. Needs a small tmpfs mounted in the test (root); skipped loudly elsewhere.
#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn a_run_that_cannot_fit_is_refused_with_the_figures() {
    let repo = TestRepo::new();
    let small = repo.root.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&small)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED a_run_that_cannot_fit…: cannot mount a tmpfs here (not root?)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    // 1 MiB of files, four agents: 4 MiB of worktrees do not fit in 4 MiB with a margin.
    for i in 0..8 {
        repo.write(&format!("data/{i}.txt"), &"x".repeat(128 * 1024));
    }
    repo.commit_all("data");
    repo.configure(&format!("[run]\nworktree_root = \"{}\"\n", small.display()));
    let mut cmd = repo.massgen().args(["run"]);
    for name in ["a", "b", "c", "d"] {
        cmd = cmd.args(["--agent-cmd", &format!("{name}=true")]);
    }
    let out = cmd.args(["t"]).run().expect_code(4);
    out.assert_stderr("not enough free space for the worktrees");
    out.assert_stderr("hint:");
    assert!(repo.massgen_branches().is_empty());
    assert!(
        !repo.path.join(".massgen/runs").exists()
            || std::fs::read_dir(repo.path.join(".massgen/runs"))
                .unwrap()
                .next()
                .is_none()
    );
    // Two agents fit.
    repo.massgen()
        .args(["run", "--agent-cmd", "a=true", "t"])
        .run()
        .expect_code(1);
}
