//! Worktrees while running, `status`, `clean`, kills and interrupts, `init`, `demo`.

use std::time::{Duration, Instant};

use crate::support::{FIX, TestRepo, candidate, wait_for};

/// Number of files below `dir`.
fn walk_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn worktrees_and_branches_exist_while_running_and_clean_removes_them() {
    let repo = TestRepo::new();
    repo.unconfined();
    let out = repo.root.join("seen");
    std::fs::create_dir_all(&out).unwrap();
    let body = format!(
        "git worktree list --porcelain > '{o}/'\"$MASSGEN_AGENT\".list; git rev-parse --abbrev-ref HEAD > '{o}/'\"$MASSGEN_AGENT\".branch; git status --porcelain > '{o}/'\"$MASSGEN_AGENT\".status; echo x > \"$MASSGEN_AGENT\".txt",
        o = out.display()
    );
    let mut cmd = repo.massgen().args(["run", "--json"]);
    for name in ["a1", "a2", "a3"] {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, &body)]);
    }
    let json = cmd.args(["work"]).expect_json(0);
    let run = json["run"].as_str().unwrap();
    for name in ["a1", "a2", "a3"] {
        let list = std::fs::read_to_string(out.join(format!("{name}.list"))).unwrap();
        assert_eq!(list.matches("worktree ").count(), 4, "{list}");
        let branch = std::fs::read_to_string(out.join(format!("{name}.branch"))).unwrap();
        assert_eq!(branch.trim(), format!("massgen/{run}/{name}"));
        assert_eq!(
            std::fs::read_to_string(out.join(format!("{name}.status"))).unwrap(),
            ""
        );
    }
    // After the run: branches kept, worktrees gone (their files deleted in the background);
    // status lists the run.
    assert_eq!(repo.massgen_branches().len(), 3);
    assert_eq!(repo.worktree_count(), 1);
    let cache = repo.root.join("cache/git-massgen/worktrees");
    let leftovers = || walk_files(&cache);
    wait_for("discarded worktrees to be deleted", || leftovers() == 0);
    let list = repo.massgen().args(["status"]).run().expect_code(0);
    assert!(
        list.stdout.contains(run) && list.stdout.contains("scored"),
        "{}",
        list.stdout
    );
    // clean without --force keeps unmerged work; with --force removes everything.
    repo.massgen().args(["clean", run]).run().expect_code(0);
    assert_eq!(repo.massgen_branches().len(), 3);
    repo.massgen()
        .args(["clean", run, "--force"])
        .run()
        .expect_code(0);
    assert!(repo.massgen_branches().is_empty());
    assert_eq!(repo.worktree_count(), 1);
    assert!(!repo.path.join(".massgen/runs").join(run).exists());
    repo.assert_fsck_clean();
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn clean_deletes_merged_and_empty_branches_without_force() {
    let repo = TestRepo::new();
    let json = repo.run_json(&["--merge"], &[("good", FIX), ("noop", "true")], "fix", 0);
    repo.massgen()
        .args(["clean", json["run"].as_str().unwrap()])
        .run()
        .expect_code(0);
    assert!(repo.massgen_branches().is_empty());
    assert!(repo.read("calc.sh").contains("$2 + $3"));
}

#[test]
fn sigkill_during_a_run_then_status_and_clean_recover() {
    let repo = TestRepo::new();
    let body = "echo partial > partial.txt; sleep 60";
    let mut child = repo
        .massgen()
        .args([
            "run",
            "--agent-cmd",
            &repo.agent("slow1", body),
            "--agent-cmd",
            &repo.agent("slow2", body),
            "t",
        ])
        .spawn();
    wait_for("agents to start", || {
        repo.state_of_only_run().is_some_and(|s| {
            s["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["pgid"].is_number())
        })
    });
    let state = repo.state_of_only_run().unwrap();
    let wt = candidate(&state, "slow1")["worktree"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for("the agent's first write", || {
        std::path::Path::new(&wt).join("partial.txt").exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let run = state["run"].as_str().unwrap();
    let status = repo
        .massgen()
        .args(["status", run, "--json"])
        .expect_json(0);
    assert_eq!(status["state"], "interrupted");
    let human = repo.massgen().args(["status", run]).run().expect_code(0);
    human.assert_stdout("interrupted");
    assert_eq!(repo.worktree_count(), 3);
    let pgids: Vec<i64> = state["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pgid"].as_i64().unwrap())
        .collect();
    // clean stops the orphaned agents, saves their work and removes the worktrees.
    repo.massgen().args(["clean", run]).run().expect_code(0);
    for pgid in pgids {
        wait_for("orphaned agent to die", || {
            !std::fs::read_to_string(format!("/proc/{pgid}/stat")).is_ok_and(|s| !s.contains(") Z"))
        });
    }
    assert_eq!(repo.worktree_count(), 1);
    assert_eq!(
        repo.git(&["show", &format!("massgen/{run}/slow1:partial.txt")]),
        "partial"
    );
    repo.massgen()
        .args(["clean", run, "--force"])
        .run()
        .expect_code(0);
    assert!(repo.massgen_branches().is_empty());
    repo.assert_fsck_clean();
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn ctrl_c_stops_agents_and_leaves_an_interrupted_run() {
    let repo = TestRepo::new();
    repo.unconfined();
    let pidfile = repo.root.join("agent.pid");
    let body = format!("echo $$ > '{}'; sleep 60", pidfile.display());
    let child = repo
        .massgen()
        .args(["run", "--agent-cmd", &repo.agent("slow", &body), "t"])
        .spawn();
    wait_for("the agent to start", || pidfile.exists());
    let started = Instant::now();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT delivered");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let agent_pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{}", agent_pid.trim())).exists());
    let state = repo.state_of_only_run().unwrap();
    assert_eq!(state["state"], "interrupted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("git massgen clean"), "{stderr}");
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert_eq!(repo.worktree_count(), 1);
    assert!(repo.massgen_branches().is_empty());
}

#[test]
fn clean_refuses_a_running_run() {
    let repo = TestRepo::new();
    let mut child = repo
        .massgen()
        .args(["run", "--agent-cmd", &repo.agent("slow", "sleep 30"), "t"])
        .spawn();
    wait_for("the run to start", || {
        repo.state_of_only_run()
            .is_some_and(|s| s["state"] == "running")
    });
    let run = repo.state_of_only_run().unwrap()["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = repo
        .massgen()
        .args(["clean", &run, "--force"])
        .run()
        .expect_code(4);
    out.assert_stderr("is still running");
    child.kill().unwrap();
    child.wait().unwrap();
    repo.massgen()
        .args(["clean", &run, "--force"])
        .run()
        .expect_code(0);
    assert_eq!(repo.worktree_count(), 1);
}

#[test]
fn diff_shows_a_candidate_and_compares_two() {
    let repo = TestRepo::new();
    let json = repo
        .massgen()
        .args([
            "run",
            "--json",
            "--agent-cmd",
            &repo.agent("good", FIX),
            "--agent-cmd",
            &repo.agent("bad", crate::support::BREAK),
            "fix",
        ])
        .run()
        .json();
    let run = json["run"].as_str().unwrap();
    let d = repo
        .massgen()
        .args(["diff", run, "good"])
        .run()
        .expect_code(0);
    d.assert_stdout("diff --git a/calc.sh b/calc.sh");
    d.assert_stdout("-  add) echo $(( $2 - $3 )) ;;");
    d.assert_stdout("+  add) echo $(( $2 + $3 )) ;;");
    let d2 = repo
        .massgen()
        .args(["diff", run, "good", "bad"])
        .run()
        .expect_code(0);
    d2.assert_stdout("+  mul) echo $(( $2 + $3 )) ;;");
    assert!(
        !d2.stdout
            .lines()
            .any(|l| l.starts_with("+  add") || l.starts_with("-  add")),
        "{}",
        d2.stdout
    );
    // The patch applies with git itself.
    let patch = repo.root.join("good.patch");
    std::fs::write(&patch, &d.stdout).unwrap();
    repo.git(&["apply", "--check", patch.to_str().unwrap()]);
}

#[test]
fn init_detects_the_test_command_and_refuses_to_overwrite() {
    let repo = TestRepo::new();
    repo.write("Cargo.toml", "[package]\nname = \"x\"\n");
    repo.massgen().args(["init"]).run().expect_code(0);
    let config = repo.read(".massgen/config.toml");
    assert!(config.contains("test = \"cargo test\""), "{config}");
    assert_eq!(
        repo.read(".massgen/.gitignore")
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        ["/runs/", "/reviews/"]
    );
    let again = repo.massgen().args(["init"]).run().expect_code(2);
    assert!(
        again.stderr.contains("already exists") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    repo.massgen()
        .args(["init", "--force"])
        .run()
        .expect_code(0);
    for (file, test) in [
        ("package.json", "npm test"),
        ("pyproject.toml", "pytest"),
        ("go.mod", "go test ./..."),
    ] {
        let r = TestRepo::new();
        r.write(file, "");
        r.massgen().args(["init"]).run().expect_code(0);
        assert!(
            r.read(".massgen/config.toml")
                .contains(&format!("test = \"{test}\""))
        );
    }
}

#[test]
fn demo_runs_offline_and_merges_the_fix() {
    let repo = TestRepo::new();
    let dir = repo.root.join("demo");
    let out = crate::support::Massgen::new(&repo.root, &repo.root)
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .run()
        .expect_code(0);
    out.assert_stdout("careful won");
    out.assert_stdout("fast-forwarded");
    let calc = std::fs::read_to_string(dir.join("calc.sh")).unwrap();
    assert!(calc.contains("$2 + $3") && calc.contains("$2 * $3"));
}
