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
    repo.unconfined();
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

/// `[worktree] share`: the user's ignored directory is linked, not copied, into each
/// worktree; the link never becomes part of a candidate, and the run says agents can change
/// it for all.
#[test]
fn shared_directories_are_linked_and_left_out_of_candidates() {
    let repo = TestRepo::new();
    repo.write(".gitignore", "node_modules/\n");
    repo.commit_all("ignore node_modules");
    repo.configure("[worktree]\nshare = [\"node_modules\"]\n");
    repo.write("node_modules/pkg/index.js", "module.exports = 42;\n");
    let body = "test -L node_modules && cat node_modules/pkg/index.js > seen.txt";
    let out = repo
        .massgen()
        .args(["run", "--json", "--keep", "--test", "test -s seen.txt"])
        .args(["--agent-cmd", &repo.agent("a", body)])
        .args(["--agent-cmd", &repo.agent("b", body)])
        .args(["t"])
        .run()
        .expect_code(0);
    out.assert_stderr("linked into every worktree");
    let json = out.json();
    for agent in ["a", "b"] {
        let c = candidate(&json, agent);
        assert_eq!(c["tests"]["exit_code"], 0, "{c}");
        let branch = c["branch"].as_str().unwrap();
        let files = repo.git(&["ls-tree", "-r", "--name-only", branch]);
        assert!(files.contains("seen.txt"), "{files}");
        assert!(
            !files.contains("node_modules"),
            "the link is no work: {files}"
        );
        let wt = std::path::PathBuf::from(c["worktree"].as_str().unwrap());
        let link = std::fs::read_link(wt.join("node_modules")).unwrap();
        assert_eq!(link, repo.path.join("node_modules"));
    }
    let status = repo
        .massgen()
        .args(["status", "latest"])
        .run()
        .expect_code(0);
    status.assert_stdout("linked into every worktree");
    // Cleaning removes the links, never what they point to.
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert_eq!(
        repo.read("node_modules/pkg/index.js"),
        "module.exports = 42;\n"
    );
}

/// An agent's own `setup` runs after the `[worktree] setup` commands, in its worktree only;
/// `[worktree] env` reaches setup, agent and tests, with `{worktree_root}` expanded.
#[test]
fn an_agents_own_setup_and_the_worktree_env() {
    let repo = TestRepo::new();
    let agent = repo.script(
        "copy.sh",
        // A confined agent may write what `[worktree] env` puts under the worktree root.
        "cp order.txt seen.txt; echo \"$CACHE\" > cache.txt; echo hi > \"$CACHE/$MASSGEN_AGENT\"",
    );
    repo.write(".gitignore", "order.txt\n");
    repo.commit_all("ignore order.txt");
    repo.configure(&format!(
        r#"[worktree]
setup = ["echo shared >> order.txt"]
env = {{ CACHE = "{{worktree_root}}/cache" }}

[[agents]]
name = "own"
command = ["sh", "{agent}"]
setup = ["echo \"own $CACHE\" >> order.txt"]

[[agents]]
name = "plain"
command = ["sh", "{agent}"]
"#,
        agent = agent.display()
    ));
    let json = repo
        .massgen()
        .args(["run", "--json", "--keep"])
        .args(["--test", "test \"$(cat cache.txt)\" = \"$CACHE\"", "t"])
        .expect_json(0);
    // The worktree root holds the run's directory, which holds each worktree.
    let wt = std::path::PathBuf::from(candidate(&json, "own")["worktree"].as_str().unwrap());
    let cache = format!("{}/cache", wt.parent().unwrap().parent().unwrap().display());
    let seen = |agent: &str| {
        let branch = candidate(&json, agent)["branch"]
            .as_str()
            .unwrap()
            .to_owned();
        repo.git(&["show", &format!("{branch}:seen.txt")])
    };
    assert_eq!(seen("own"), format!("shared\nown {cache}"));
    for agent in ["own", "plain"] {
        let wrote = std::path::Path::new(&cache).join(agent);
        assert_eq!(std::fs::read_to_string(&wrote).unwrap(), "hi\n", "{json}");
    }
    assert_eq!(seen("plain"), "shared");
    for agent in ["own", "plain"] {
        assert_eq!(candidate(&json, agent)["tests"]["exit_code"], 0);
    }
}

/// Sets a run's `updated_at` back by `secs`, as if it had finished that long ago.
fn age_run(repo: &TestRepo, run: &str, secs: u64) {
    let path = repo.path.join(".massgen/runs").join(run).join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let then = state["updated_at"].as_u64().unwrap() - secs;
    state["updated_at"] = then.into();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
}

/// `clean --older-than` takes only runs that have not changed for that long; unmerged
/// branches stay.
#[test]
fn clean_older_than_takes_only_old_runs() {
    let repo = TestRepo::new();
    let body = "echo work > work.txt";
    let old = repo.run_json(&["--keep"], &[("a", body)], "old", 0);
    let new = repo.run_json(&["--keep"], &[("a", body)], "new", 0);
    let (old, new) = (old["run"].as_str().unwrap(), new["run"].as_str().unwrap());
    age_run(&repo, old, 3 * 3600);
    let out = repo
        .massgen()
        .args(["clean", "--older-than", "2h"])
        .run()
        .expect_code(0);
    out.assert_stderr(&format!("kept unmerged branch massgen/{old}/a"));
    let worktrees = repo.git(&["worktree", "list"]);
    assert!(!worktrees.contains(old), "{worktrees}");
    assert!(worktrees.contains(new), "{worktrees}");
    assert_eq!(repo.massgen_branches().len(), 2);
    repo.massgen()
        .args(["clean", "--older-than", "soon"])
        .run()
        .expect_code(2);
    repo.assert_fsck_clean();
}

/// `[worktree] max_disk`: before a run adds worktrees, finished runs are cleaned oldest
/// first until all fit; their branches stay. `status` shows each run's disk and the total.
#[test]
fn max_disk_cleans_the_oldest_finished_runs_first() {
    let repo = TestRepo::new();
    repo.configure("[worktree]\nmax_disk = \"600K\"\n");
    // 700 KiB of work per run: two runs do not fit.
    let body = "head -c 716800 /dev/zero > big.bin";
    let first = repo.run_json(&["--keep"], &[("a", body)], "first", 0);
    let first = first["run"].as_str().unwrap().to_owned();
    age_run(&repo, &first, 60);
    let status = repo.massgen().args(["status"]).run().expect_code(0);
    status.assert_stdout("disk");
    status.assert_stdout("in all");
    let out = repo
        .massgen()
        .args(["run", "--json", "--keep"])
        .args(["--agent-cmd", &repo.agent("b", body), "second"])
        .run()
        .expect_code(0);
    out.assert_stderr(&format!("cleaned run {first}"));
    let second = out.json()["run"].as_str().unwrap().to_owned();
    let worktrees = repo.git(&["worktree", "list"]);
    assert!(!worktrees.contains(&first), "{worktrees}");
    assert!(worktrees.contains(&second), "{worktrees}");
    let branches = repo.massgen_branches();
    assert!(
        branches.iter().any(|b| b.contains(&first)),
        "unmerged branches are kept: {branches:?}"
    );
}

/// `.worktreeinclude` reaches reviews too: the reviewed tree has the ignored `.env`, each
/// time (the kept review worktree is cleaned between reviews).
#[test]
fn reviews_get_the_included_files() {
    let repo = TestRepo::new();
    repo.write(".gitignore", ".env\n");
    repo.write(".worktreeinclude", ".env\n");
    let reviewer = repo.script(
        "env-reader.sh",
        r#"v=$(cat "$MASSGEN_WORKTREE/.env" 2>/dev/null || echo missing)
printf '{"findings": [{"path": "app.txt", "line": 1, "severity": "warning", "title": "env", "message": "%s"}]}\n' "$v""#,
    );
    repo.configure(&format!(
        "[[reviewers]]\nname = \"env\"\ncommand = [\"sh\", {}]\n",
        toml::Value::String(reviewer.display().to_string())
    ));
    repo.write(".env", "SECRET=1\n");
    for round in ["one\n", "two\n"] {
        repo.write("app.txt", round);
        repo.git(&["add", "app.txt"]);
        let json = repo
            .massgen()
            .args(["review", "--json", "--staged"])
            .expect_json(0);
        assert_eq!(json["findings"][0]["message"], "SECRET=1", "{json}");
    }
}
