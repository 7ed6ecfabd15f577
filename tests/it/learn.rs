//! `git massgen stats` and `git massgen learn merge|export|import|reset`: statistics
//! written through the real ref and read back with git, concurrent writers, two clones
//! sharing through a bare remote, and a damaged ref.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{Massgen, TestRepo, seal};

const REF: &str = "refs/massgen/learning";

/// One machine's counters: (agent, kind, counters as JSON).
fn machine(id: &str, counts: &[(&str, &str, Value)]) -> (String, Value) {
    let mut agents = serde_json::Map::new();
    for (agent, kind, c) in counts {
        let kinds = agents.entry(agent.to_string()).or_insert_with(|| json!({}));
        kinds[kind] = c.clone();
    }
    (id.to_owned(), json!({"machine": id, "agents": agents}))
}

/// An export file of these machines, written into the test's temp area.
fn export_file(repo_root: &Path, name: &str, machines: &[(String, Value)]) -> PathBuf {
    let map: serde_json::Map<String, Value> = machines.iter().cloned().collect();
    let path = repo_root.join(name);
    std::fs::write(&path, json!({"version": 1, "machines": map}).to_string()).unwrap();
    path
}

/// Runs git in `dir` with the sealed environment; panics unless it succeeds.
fn git_in(root: &Path, dir: &Path, args: &[&str]) -> String {
    let out = git_output(root, dir, args, None);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn git_output(root: &Path, dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new("git");
    seal(&mut cmd, root);
    cmd.current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("git runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `git` with stdin; the trimmed stdout.
fn git_stdin(repo: &TestRepo, args: &[&str], stdin: &str) -> String {
    let out = git_output(&repo.root, &repo.path, args, Some(stdin));
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `stats --json`'s row for an agent and kind (`None`: every kind).
fn row<'a>(stats: &'a Value, agent: &str, kind: Option<&str>) -> &'a Value {
    stats["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["agent"] == agent && r["kind"] == json!(kind))
        .unwrap_or_else(|| panic!("no row {agent} {kind:?} in {stats}"))
}

fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((got - want).abs() < 1e-6, "got {got}, want {want}");
}

#[test]
fn imported_statistics_land_in_the_ref_and_stats_reads_them() {
    let repo = TestRepo::new();
    let file = export_file(
        &repo.root,
        "m1.json",
        &[machine(
            "m1",
            &[
                (
                    "claude",
                    "fix:rust",
                    json!({"runs": 4, "wins": 3, "reverted": 1, "merged": 2, "confirmed": 1,
                           "cost_usd": 0.8, "cost_known": 2}),
                ),
                ("codex", "fix:rust", json!({"runs": 4, "wins": 1})),
                ("codex", "docs:text", json!({"runs": 2, "wins": 2})),
            ],
        )],
    );
    let out = repo
        .massgen()
        .args(["learn".as_ref(), "import".as_ref(), file.as_os_str()])
        .run()
        .expect_code(0);
    out.assert_stdout("added      m1");

    // Read back with git itself: a commit whose tree holds the machine's file.
    assert_eq!(repo.git(&["cat-file", "-t", REF]), "commit");
    let text = repo.git(&["cat-file", "-p", &format!("{REF}:machines/m1.json")]);
    let m1: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m1["agents"]["claude"]["fix:rust"]["runs"], 4);
    assert_eq!(m1["agents"]["claude"]["fix:rust"]["reverted"], 1);

    let stats = repo.massgen().args(["stats", "--json"]).expect_json(0);
    assert_eq!(stats["machines"], 1);
    let claude = row(&stats, "claude", Some("fix:rust"));
    assert_eq!(claude["runs"], 4);
    assert_eq!(claude["wins"], 3);
    assert_eq!(claude["wins_kept"], 2, "a reverted winner is a loss");
    assert_eq!(claude["losses"], 2);
    close(&claude["win_rate"], 0.5);
    // Beta(3, 3): 5% and 95% quantiles.
    close(&claude["interval"][0], 0.189_255_38);
    close(&claude["interval"][1], 0.810_744_62);
    close(&claude["mean_cost_usd"], 0.4);
    close(&claude["cost_per_win_usd"], 0.8);
    assert_eq!(
        (&claude["merged"], &claude["confirmed"]),
        (&json!(2), &json!(1))
    );
    close(&claude["survival"], 0.5);
    let codex = row(&stats, "codex", Some("fix:rust"));
    close(&codex["interval"][0], 0.076_440_39);
    close(&codex["interval"][1], 0.657_408_32);
    assert_eq!(codex["mean_cost_usd"], Value::Null);
    let codex_all = row(&stats, "codex", None);
    assert_eq!(
        (&codex_all["runs"], &codex_all["wins_kept"]),
        (&json!(6), &json!(3))
    );

    // Filters: a class matches its kinds; an agent only its rows.
    let fixes = repo
        .massgen()
        .args(["stats", "--json", "--kind", "fix", "--agent", "codex"])
        .expect_json(0);
    let rows = fixes["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{fixes}");
    assert_eq!(rows[0]["kind"], "fix:rust");

    let text = repo.massgen().args(["stats"]).run().expect_code(0);
    text.assert_stdout("90% interval");
    text.assert_stdout("docs:text  codex");
    text.assert_stdout("19–81%");

    // The same file again changes nothing: no new commit.
    let tip = repo.git(&["rev-parse", REF]);
    repo.massgen()
        .args(["learn".as_ref(), "import".as_ref(), file.as_os_str()])
        .run()
        .expect_code(0)
        .assert_stdout("nothing new");
    assert_eq!(repo.git(&["rev-parse", REF]), tip);

    // Export gives back what was imported.
    let out = repo
        .massgen()
        .args(["learn", "export", "-"])
        .run()
        .expect_code(0);
    let exported: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(exported["version"], 1);
    assert_eq!(
        exported["machines"]["m1"]["agents"]["codex"]["docs:text"]["wins"],
        2
    );
    repo.assert_fsck_clean();
}

#[test]
fn without_statistics_stats_says_how_they_come() {
    let repo = TestRepo::new();
    repo.massgen()
        .args(["stats"])
        .run()
        .expect_code(0)
        .assert_stdout("no statistics yet");
    let stats = repo.massgen().args(["stats", "--json"]).expect_json(0);
    assert_eq!(stats, json!({"machines": 0, "rows": [], "kinds": []}));
    repo.massgen()
        .args(["learn", "reset"])
        .run()
        .expect_code(0)
        .assert_stdout("nothing to reset");
}

#[test]
fn concurrent_imports_lose_nothing() {
    const N: usize = 6;
    let repo = TestRepo::new();
    let files: Vec<PathBuf> = (0..N)
        .map(|i| {
            let id = format!("m{i}");
            let counts = json!({"runs": i as u64 + 1, "wins": 1});
            export_file(
                &repo.root,
                &format!("{id}.json"),
                &[machine(&id, &[("claude", "fix:rust", counts)])],
            )
        })
        .collect();
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            repo.massgen()
                .args(["learn".as_ref(), "import".as_ref(), f.as_os_str()])
                .spawn()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..N {
        repo.git(&["cat-file", "-e", &format!("{REF}:machines/m{i}.json")]);
    }
    // One commit per import: each swapped in on top of the others.
    assert_eq!(repo.git(&["rev-list", "--count", REF]), N.to_string());
    let stats = repo.massgen().args(["stats", "--json"]).expect_json(0);
    let all = row(&stats, "claude", None);
    assert_eq!(all["runs"], (1..=N).sum::<usize>());
    assert_eq!(all["wins"], N);
    repo.assert_fsck_clean();
}

/// A clone of the test repository's remote, beside it.
struct Peer {
    root: PathBuf,
    path: PathBuf,
}

impl Peer {
    fn git(&self, args: &[&str]) -> String {
        git_in(&self.root, &self.path, args)
    }

    fn massgen(&self) -> Massgen {
        Massgen::new(&self.root, &self.path)
    }

    fn import(&self, name: &str, machines: &[(String, Value)]) {
        let file = export_file(&self.root, name, machines);
        self.massgen()
            .args(["learn".as_ref(), "import".as_ref(), file.as_os_str()])
            .run()
            .expect_code(0);
    }

    /// `git fetch` of the remote's statistics, then `learn merge --json` of them.
    fn fetch_and_merge(&self) -> Value {
        self.git(&["fetch", "-q", "origin", &format!("+{REF}:{REF}-origin")]);
        self.massgen()
            .args(["learn", "merge", "--json", &format!("{REF}-origin")])
            .expect_json(0)
    }

    fn stats(&self) -> Value {
        self.massgen().args(["stats", "--json"]).expect_json(0)
    }
}

/// Adds `records/<path>` to the tip of the ref, as a recorded run would.
fn add_record(clone: &Peer, path: &str) {
    let script = format!(
        "set -e; export GIT_INDEX_FILE=\"$PWD/../record.index\"; git read-tree {REF}; \
         blob=$(echo '{{\"run\": 1}}' | git hash-object -w --stdin); \
         git update-index --add --cacheinfo 100644,$blob,records/{path}; \
         commit=$(git commit-tree $(git write-tree) -p {REF} -m record); \
         git update-ref {REF} $commit; rm -f \"$GIT_INDEX_FILE\""
    );
    let mut cmd = Command::new("sh");
    seal(&mut cmd, &clone.root);
    let out = cmd
        .current_dir(&clone.path)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_clones_share_through_a_remote_without_counting_twice() {
    let repo = TestRepo::new();
    let remote = repo.root.join("remote.git");
    repo.git(&["clone", "-q", "--bare", ".", remote.to_str().unwrap()]);
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    let a = Peer {
        root: repo.root.clone(),
        path: repo.path.clone(),
    };
    let b = Peer {
        root: repo.root.clone(),
        path: repo.root.join("b"),
    };
    repo.git(&[
        "clone",
        "-q",
        remote.to_str().unwrap(),
        b.path.to_str().unwrap(),
    ]);
    // Each clone's machine id, where git-massgen keeps it.
    std::fs::write(a.path.join(".git/massgen-machine-id"), "aaaa\n").unwrap();
    std::fs::write(b.path.join(".git/massgen-machine-id"), "bbbb\n").unwrap();

    // A counts under its machine id, with a run record, and pushes.
    let a_counts = |runs: u64, wins: u64| {
        [machine(
            "aaaa",
            &[("claude", "fix:rust", json!({"runs": runs, "wins": wins}))],
        )]
    };
    a.import("a1.json", &a_counts(4, 3));
    add_record(&a, "aaaa/run-1.json");
    a.git(&["push", "-q", "origin", REF]);

    // B has its own, and merges A's twice: A's counted once.
    b.import(
        "b1.json",
        &[machine(
            "bbbb",
            &[
                ("claude", "fix:rust", json!({"runs": 2, "wins": 1})),
                ("codex", "fix:rust", json!({"runs": 3, "wins": 1})),
            ],
        )],
    );
    let first = b.fetch_and_merge();
    assert_eq!(first["added"], json!(["aaaa"]), "{first}");
    assert_eq!(first["records"], 1);
    assert_eq!(first["changed"], true);
    let again = b.fetch_and_merge();
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["unchanged"], json!(["aaaa"]));
    let claude = row(&b.stats(), "claude", Some("fix:rust")).clone();
    assert_eq!((&claude["runs"], &claude["wins"]), (&json!(6), &json!(4)));
    b.git(&["cat-file", "-e", &format!("{REF}:records/aaaa/run-1.json")]);

    // A counts more and pushes again: B gets the new counts, not both copies.
    a.import("a2.json", &a_counts(5, 3));
    a.git(&["push", "-q", "origin", REF]);
    let update = b.fetch_and_merge();
    assert_eq!(update["updated"], json!(["aaaa"]), "{update}");
    let claude = row(&b.stats(), "claude", Some("fix:rust")).clone();
    assert_eq!((&claude["runs"], &claude["wins"]), (&json!(7), &json!(4)));

    // B's merges keep A's commits as parents: its push fast-forwards the remote's ref.
    let parents = b.git(&["rev-list", "--parents", "-n", "1", REF]);
    assert_eq!(parents.split(' ').count(), 3, "a merge commit: {parents}");
    b.git(&["push", "-q", "origin", REF]);

    // A takes B's: both hold the same statistics (the same commit: A was behind).
    let back = a.fetch_and_merge();
    assert_eq!(back["added"], json!(["bbbb"]), "{back}");
    assert_eq!(a.stats(), b.stats());
    assert_eq!(a.git(&["rev-parse", REF]), b.git(&["rev-parse", REF]));
    let codex = row(&a.stats(), "codex", None).clone();
    assert_eq!(codex["runs"], 3);
    repo.assert_fsck_clean();
    assert!(
        git_output(&b.root, &b.path, &["fsck", "--no-progress"], None)
            .status
            .success()
    );
}

#[test]
fn a_damaged_ref_is_reported_with_learn_reset_and_reset_removes_it() {
    let repo = TestRepo::new();
    let blob = git_stdin(&repo, &["hash-object", "-w", "--stdin"], "not statistics\n");
    let bad_json = {
        let tree = git_stdin(
            &repo,
            &["mktree"],
            &format!("100644 blob {blob}\tm1.json\n"),
        );
        let tree = git_stdin(
            &repo,
            &["mktree"],
            &format!("040000 tree {tree}\tmachines\n"),
        );
        repo.git(&["commit-tree", &tree, "-m", "bad"])
    };
    let head = repo.git(&["rev-parse", "HEAD"]);
    for (target, why) in [
        (blob.as_str(), "is not a commit"),
        (head.as_str(), "no machines/ directory"),
        (bad_json.as_str(), "machines/m1.json"),
    ] {
        repo.git(&["update-ref", REF, target]);
        for args in [&["stats"][..], &["learn", "export", "-"][..]] {
            let out = repo.massgen().args(args).run().expect_code(4);
            out.assert_stderr(&format!("{REF} is not git-massgen's statistics"));
            out.assert_stderr(why);
            out.assert_stderr("hint: `git massgen learn reset`");
        }
    }
    let file = export_file(&repo.root, "m.json", &[machine("m9", &[])]);
    repo.massgen()
        .args(["learn".as_ref(), "import".as_ref(), file.as_os_str()])
        .run()
        .expect_code(4)
        .assert_stderr("learn reset");

    let out = repo.massgen().args(["learn", "reset"]).run().expect_code(0);
    out.assert_stdout(&format!("deleted {REF} (was {bad_json}: not readable"));
    out.assert_stderr(&format!("git update-ref {REF} {bad_json}"));
    assert!(
        !repo
            .git_output(&["rev-parse", "--verify", "-q", REF])
            .status
            .success()
    );
    repo.massgen()
        .args(["stats"])
        .run()
        .expect_code(0)
        .assert_stdout("no statistics yet");
    // And learning starts again.
    repo.massgen()
        .args(["learn".as_ref(), "import".as_ref(), file.as_os_str()])
        .run()
        .expect_code(0);
    repo.git(&["cat-file", "-e", &format!("{REF}:machines/m9.json")]);
}

#[test]
fn merge_and_import_refuse_what_is_missing_or_not_statistics() {
    let repo = TestRepo::new();
    let out = repo
        .massgen()
        .args(["learn", "merge", "refs/massgen/learning-origin"])
        .run()
        .expect_code(2);
    out.assert_stderr("cannot resolve revision");
    out.assert_stderr("hint: fetch another clone's statistics first");
    let out = repo
        .massgen()
        .args(["learn", "merge", "HEAD"])
        .run()
        .expect_code(2);
    out.assert_stderr("HEAD is not git-massgen's statistics");
    let out = repo
        .massgen()
        .args(["learn", "import", "missing.json"])
        .run()
        .expect_code(2);
    out.assert_stderr("cannot read missing.json");
    out.assert_stderr("learn export FILE");
    repo.write("bad.json", "{\"version\": 7, \"machines\": {}}");
    repo.massgen()
        .args(["learn", "import", "bad.json"])
        .run()
        .expect_code(2)
        .assert_stderr("version 7");
    // Nothing was written by any of them.
    assert!(
        !repo
            .git_output(&["rev-parse", "--verify", "-q", REF])
            .status
            .success()
    );
    // An import from stdin.
    repo.massgen()
        .args(["learn", "import", "-"])
        .stdin(&json!({"version": 1, "machines": {"m1": {}}}).to_string())
        .run()
        .expect_code(0)
        .assert_stdout("added      m1");
}
