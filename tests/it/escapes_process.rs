//! Processes that try to outlive what started them: an agent or a test command that leaves
//! something running in a session of its own (`setsid`) or behind a double fork. Whatever
//! it is, it must be stopped when the agent (or the test) ends, before the worktree is
//! snapshotted, and the candidate says so.
//! The processes write marks outside the worktree to be watched, so runs here are
//! unconfined (`--sandbox off`).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{FIX, TestRepo, candidate, processes_of, wait_for};

/// Long enough for a late write (after 2 s) to have happened, had its process survived.
const LATE: Duration = Duration::from_secs(4);

/// The pid written to `file`, once it is there.
fn pid_in(file: &Path) -> String {
    std::fs::read_to_string(file)
        .expect("pid file")
        .trim()
        .to_owned()
}

/// Whether `/proc` shows `pid` as a live process (not gone, not a zombie).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// The candidate's warnings, one string.
fn warnings(run: &serde_json::Value, agent: &str) -> String {
    candidate(run, agent)["warnings"].to_string()
}

#[test]
fn processes_an_agent_left_outside_its_group_are_stopped_before_the_snapshot() {
    let repo = TestRepo::new();
    let outside = repo.scratch("outside");
    // A new session, aimed at the user's repository: the escape this guards against.
    let setsid = r#"echo work > work.txt
setsid sh -c 'echo $$ > "$OUTSIDE/setsid.pid"; sleep 2; echo late > "$USER_REPO/late.txt"' &
while [ ! -s "$OUTSIDE/setsid.pid" ]; do sleep 0.05; done
exit 0"#;
    // A double fork: re-parented to init, still in the agent's group.
    let fork = r#"echo work > work.txt
( (sh -c 'echo $$ > "$OUTSIDE/fork.pid"; sleep 2; touch "$OUTSIDE/late-fork.txt"') & ) &
while [ ! -s "$OUTSIDE/fork.pid" ]; do sleep 0.05; done"#;
    // Writes into its worktree all the time: the snapshot must be taken after it is gone.
    let busy = r#"setsid sh -c 'echo $$ > "$OUTSIDE/busy.pid"; while :; do echo x >> busy.txt; sleep 0.01; done' &
while [ ! -s busy.txt ]; do sleep 0.05; done"#;
    let run = repo
        .massgen()
        .env("OUTSIDE", &outside)
        .env("USER_REPO", &repo.path)
        .args(["run", "--json", "--sandbox", "off", "--keep"])
        .args(["--agent-cmd", &repo.agent("setsid", setsid)])
        .args(["--agent-cmd", &repo.agent("fork", fork)])
        .args(["--agent-cmd", &repo.agent("busy", busy)])
        .args(["--", "leave something running"])
        .run()
        .expect_code(0);
    let ended = Instant::now();
    let json = run.json();
    let id = json["run"].as_str().unwrap().to_owned();
    for agent in ["setsid", "fork", "busy"] {
        assert_eq!(candidate(&json, agent)["status"], "done", "{json:#}");
        let pid = pid_in(&outside.join(format!("{agent}.pid")));
        assert!(!alive(&pid), "{agent}'s process {pid} still runs");
        let w = warnings(&json, agent);
        assert!(w.contains("the agent left running"), "{agent}: {w}");
        assert!(w.contains(&format!("pid {pid}: ")), "{agent}: {w}");
    }
    run.assert_stderr("the agent left running");
    assert!(processes_of(&id).is_empty(), "{:?}", processes_of(&id));

    // Nothing it wrote after the snapshot: the kept worktree holds what the branch holds.
    let busy = candidate(&json, "busy");
    let snapshot = repo.git(&[
        "show",
        &format!("{}:busy.txt", busy["branch"].as_str().unwrap()),
    ]);
    let wt = Path::new(busy["worktree"].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        std::fs::read_to_string(wt.join("busy.txt"))
            .unwrap()
            .trim_end(),
        snapshot
    );

    std::thread::sleep(LATE.saturating_sub(ended.elapsed()));
    assert!(
        !repo.path.join("late.txt").exists(),
        "an escaped process wrote into the repository"
    );
    assert!(!outside.join("late-fork.txt").exists());
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    // `status` shows what was stopped.
    let status = repo
        .massgen()
        .args(["status", &id, "--json"])
        .expect_json(0);
    assert!(
        warnings(&status, "setsid").contains("left running"),
        "{status:#}"
    );
    repo.massgen()
        .args(["clean", &id, "--force"])
        .run()
        .expect_code(0);
}

#[test]
fn a_test_command_that_leaves_a_process_running_has_it_stopped() {
    let repo = TestRepo::new();
    let outside = repo.scratch("outside");
    let test = r#"setsid sh -c 'echo $$ > "$OUTSIDE/test.pid"; sleep 2; touch "$OUTSIDE/late-test.txt"' &
while [ ! -s "$OUTSIDE/test.pid" ]; do sleep 0.05; done
sh test.sh"#;
    let json = repo
        .massgen()
        .env("OUTSIDE", &outside)
        .args(["run", "--json", "--sandbox", "off", "--test", test])
        .args(["--agent-cmd", &repo.agent("good", FIX)])
        .args(["--", "fix the calculator"])
        .expect_json(0);
    let ended = Instant::now();
    let good = candidate(&json, "good");
    assert_eq!(good["tests"]["passed"], 4, "{good:#}");
    let pid = pid_in(&outside.join("test.pid"));
    assert!(!alive(&pid), "the test's process {pid} still runs");
    let w = warnings(&json, "good");
    assert!(w.contains("the test command left running"), "{w}");
    assert!(w.contains(&format!("pid {pid}: sh")), "{w}");
    let id = json["run"].as_str().unwrap();
    wait_for("no process of the run", || processes_of(id).is_empty());
    std::thread::sleep(LATE.saturating_sub(ended.elapsed()));
    assert!(!outside.join("late-test.txt").exists());
}

#[test]
fn a_judge_that_leaves_a_process_running_has_it_stopped() {
    let repo = TestRepo::new();
    let outside = repo.scratch("outside");
    let judge = repo.script(
        "judge.sh",
        r#"setsid sh -c 'echo $$ > "$OUTSIDE/judge.pid"; sleep 30' &
while [ ! -s "$OUTSIDE/judge.pid" ]; do sleep 0.05; done
echo '{"vote": "A", "reason": "it is first"}'"#,
    );
    repo.configure(&format!(
        "[[judges]]\nname = \"j\"\ncommand = [\"sh\", \"{}\"]\n",
        judge.display()
    ));
    let json = repo
        .massgen()
        .env("OUTSIDE", &outside)
        .args(["run", "--json", "--sandbox", "off"])
        .args(["--agent-cmd", &repo.agent("one", "echo 1 > answer.txt")])
        .args(["--agent-cmd", &repo.agent("two", "echo 2 > answer.txt")])
        .args(["--", "answer"])
        .expect_json(0);
    assert_eq!(json["votes"].as_array().map(Vec::len), Some(1), "{json:#}");
    let pid = pid_in(&outside.join("judge.pid"));
    assert!(!alive(&pid), "the judge's process {pid} still runs");
    let w = json["warnings"].to_string();
    assert!(
        w.contains("judge j: stopped") && w.contains(&format!("pid {pid}: sh")),
        "{w}"
    );
}
