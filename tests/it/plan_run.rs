//! `git massgen plan run` and `plan status`: real plans through the real binary, agents as
//! shell scripts that write a file named after their task (`$MASSGEN_TASK` is `make X`)
//! and count their runs in a file outside the repository.

use std::path::PathBuf;

use crate::support::{TestRepo, wait_for};

/// The agent: `make X` writes `X.txt` and appends X to `$COUNT`; `fail X` exits 1 having
/// changed nothing; `clash X` writes other content to `X.txt`; `make slow` sleeps 30 s the first time (until `$MARK` exists).
pub const AGENT: &str = r#"set -e
what=${MASSGEN_TASK%% *}
name=${MASSGEN_TASK#* }
if [ "$what" = fail ]; then exit 1; fi
if [ "$what" = clash ]; then echo clash > "$name.txt"; exit 0; fi
if [ "$name" = slow ] && [ ! -e "$MARK" ]; then : > "$MARK"; sleep 30; fi
echo "$name" >> "$COUNT"
echo "$name" > "$name.txt"
"#;

const DIAMOND: &str = r#"name = "diamond"
integration_test = "test -f a.txt"

[[tasks]]
id = "a"
task = "make a"

[[tasks]]
id = "b"
task = "make b"
depends_on = ["a"]

[[tasks]]
id = "c"
task = "make c"
depends_on = ["a"]

[[tasks]]
id = "d"
task = "make d"
depends_on = ["b", "c"]
"#;

/// A repository with one agent, `w`, running [`AGENT`]; returns it with the counter file.
pub fn repo() -> (TestRepo, PathBuf) {
    let repo = TestRepo::new();
    repo.unconfined();
    let script = repo.script("w.sh", AGENT);
    let count = repo.scratch("counts").join("count");
    let mark = repo.scratch("counts").join("slow-started");
    repo.configure(&format!(
        "[[agents]]\nname = \"w\"\ncommand = [\"sh\", \"{}\"]\nenv = {{ COUNT = \"{}\", MARK = \"{}\" }}\n",
        script.display(),
        count.display(),
        mark.display()
    ));
    (repo, count)
}

pub fn task<'a>(state: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    state["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {state}"))
}

fn files_of(repo: &TestRepo, commit: &str) -> Vec<String> {
    repo.git(&["ls-tree", "-r", "--name-only", commit])
        .lines()
        .filter(|f| f.ends_with(".txt"))
        .map(str::to_owned)
        .collect()
}

fn counts(path: &PathBuf) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_diamond_runs_each_task_on_what_it_depends_on() {
    let (repo, count) = repo();
    repo.write(".massgen/plans/diamond.toml", DIAMOND);
    repo.commit_all("plan");
    let state = repo
        .massgen()
        .args(["plan", "run", "diamond", "--json"])
        .expect_json(0);
    for id in ["a", "b", "c", "d"] {
        assert_eq!(task(&state, id)["status"], "done", "{state}");
    }
    // d's candidate was made from a tip holding a's, b's and c's work.
    let d = task(&state, "d")["commit"].as_str().unwrap();
    assert_eq!(files_of(&repo, d), ["a.txt", "b.txt", "c.txt", "d.txt"]);
    let tip = repo.git(&["rev-parse", "massgen/plan/diamond/integration"]);
    assert_eq!(state["integration_commit"], tip.as_str());
    assert_eq!(files_of(&repo, &tip), ["a.txt", "b.txt", "c.txt", "d.txt"]);
    assert_eq!(counts(&count), ["a", "b", "c", "d"]);
    // b and c both moved from a: one of them is a merge commit named after its task.
    let log = repo.git(&["log", "--format=%s", "massgen/plan/diamond/integration"]);
    assert!(
        log.contains("massgen plan diamond: b (make b)")
            || log.contains("massgen plan diamond: c (make c)"),
        "{log}"
    );
    // The user's branch is untouched; nothing is left checked out.
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
    // Status shows the same state.
    let status = repo
        .massgen()
        .args(["plan", "status", "diamond", "--json"])
        .expect_json(0);
    assert_eq!(status["integration_commit"], tip.as_str());
    let listed = repo.massgen().args(["plan", "status"]).run().expect_code(0);
    listed.assert_stdout("diamond  4 of 4 tasks done");
}

#[test]
fn a_failed_task_skips_its_dependents_and_the_rest_goes_on() {
    let (repo, _count) = repo();
    repo.write(
        "plan.toml",
        r#"name = "mixed"
[[tasks]]
id = "broken"
task = "fail broken"
[[tasks]]
id = "after"
task = "make after"
depends_on = ["broken"]
[[tasks]]
id = "later"
task = "make later"
depends_on = ["after"]
[[tasks]]
id = "fine"
task = "make fine"
"#,
    );
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(1);
    assert_eq!(task(&state, "broken")["status"], "failed");
    assert!(
        task(&state, "broken")["reason"]
            .as_str()
            .unwrap()
            .contains("no winner")
    );
    assert_eq!(task(&state, "after")["status"], "skipped");
    assert_eq!(
        task(&state, "after")["reason"],
        "it depends on broken, which failed"
    );
    assert_eq!(task(&state, "later")["status"], "skipped");
    assert_eq!(task(&state, "fine")["status"], "done");
    let text = repo
        .massgen()
        .args(["plan", "status", "mixed"])
        .run()
        .expect_code(0);
    text.assert_stdout("1 of 4 tasks done, 1 failed, 2 skipped");
}

#[test]
fn a_killed_plan_resumes_without_doing_anything_twice() {
    let (repo, count) = repo();
    repo.write(
        "plan.toml",
        r#"name = "resume"
[[tasks]]
id = "first"
task = "make first"
[[tasks]]
id = "slow"
task = "make slow"
depends_on = ["first"]
[[tasks]]
id = "last"
task = "make last"
depends_on = ["slow"]
"#,
    );
    let mark = count.with_file_name("slow-started");
    let mut child = repo.massgen().args(["plan", "run", "plan.toml"]).spawn();
    wait_for("the slow task's agent", || mark.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let state = repo
        .massgen()
        .args(["plan", "status", "resume", "--json"])
        .expect_json(0);
    assert_eq!(task(&state, "first")["status"], "done");
    assert_eq!(task(&state, "slow")["status"], "running");
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(0);
    for id in ["first", "slow", "last"] {
        assert_eq!(task(&state, id)["status"], "done", "{state}");
    }
    assert_eq!(counts(&count), ["first", "last", "slow"]);
    repo.assert_fsck_clean();
    assert_eq!(
        repo.worktree_count(),
        1,
        "{}",
        repo.git(&["worktree", "list"])
    );
}

#[test]
fn merge_fast_forwards_the_users_branch_to_the_integration_tip() {
    let (repo, _count) = repo();
    repo.write(".massgen/plans/diamond.toml", DIAMOND);
    repo.commit_all("plan");
    let state = repo
        .massgen()
        .args(["plan", "run", "diamond", "--merge", "--json"])
        .expect_json(0);
    let tip = repo.git(&["rev-parse", "massgen/plan/diamond/integration"]);
    assert_eq!(repo.git(&["rev-parse", "main"]), tip);
    assert_eq!(state["merge"]["kind"], "fast_forward");
    assert_eq!(repo.read("d.txt"), "d\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_conflicting_winner_is_blocked_with_its_paths() {
    let (repo, _count) = repo();
    repo.write(
        "plan.toml",
        r#"name = "clash"
[[tasks]]
id = "a"
task = "make a"
[[tasks]]
id = "other"
task = "clash a"
[[tasks]]
id = "then"
task = "make then"
depends_on = ["other"]
"#,
    );
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(1);
    assert_eq!(task(&state, "a")["status"], "done");
    let other = task(&state, "other");
    assert_eq!(other["status"], "blocked", "{state}");
    assert_eq!(other["conflicts"], serde_json::json!(["a.txt"]));
    assert!(
        other["reason"]
            .as_str()
            .unwrap()
            .contains("git massgen plan resolve clash other")
    );
    assert_eq!(task(&state, "then")["status"], "skipped");
    // The integration branch holds a's work only.
    let tip = repo.git(&["rev-parse", "massgen/plan/clash/integration"]);
    assert_eq!(repo.git(&["show", &format!("{tip}:a.txt")]), "a");
    // The matrix names the clash: between the wave's winners, and of the blocked one with
    // the integration branch.
    let status = repo
        .massgen()
        .args(["plan", "status", "clash", "--json"])
        .expect_json(0);
    let pairs = &status["conflicts"]["pairs"];
    assert_eq!(pairs[0]["a"], "a", "{status}");
    assert_eq!(pairs[0]["b"], "other");
    assert_eq!(pairs[0]["conflicts"], serde_json::json!(["a.txt"]));
    let pending = &status["conflicts"]["against_integration"];
    assert_eq!(pending[0]["a"], "other", "{status}");
    assert_eq!(pending[0]["conflicts"], serde_json::json!(["a.txt"]));
    let text = repo
        .massgen()
        .args(["plan", "status", "clash"])
        .run()
        .expect_code(0)
        .stdout;
    assert!(text.contains("a × other: a.txt"), "{text}");
    assert!(text.contains("other × integration: a.txt"), "{text}");
}

#[test]
fn events_tell_each_task_and_its_run() {
    let (repo, _count) = repo();
    repo.write("plan.toml", DIAMOND);
    let state = repo
        .massgen()
        .args([
            "plan",
            "run",
            "plan.toml",
            "--json",
            "--events",
            "ev.ndjson",
        ])
        .expect_json(0);
    let text = std::fs::read_to_string(repo.path.join("ev.ndjson")).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events.iter().all(|e| e["plan"] == "diamond"), "{text}");
    let done_at = |id: &str| {
        events
            .iter()
            .position(|e| e["kind"] == "task" && e["task"] == id && e["data"]["status"] == "done")
            .unwrap_or_else(|| panic!("no done event for {id}: {text}"))
    };
    assert!(done_at("a") < done_at("b") && done_at("a") < done_at("c"));
    assert!(done_at("b") < done_at("d") && done_at("c") < done_at("d"));
    // Each task's run events carry the task and its run id.
    for id in ["a", "b", "c", "d"] {
        let run = task(&state, id)["run"].as_str().unwrap();
        assert!(
            events
                .iter()
                .any(|e| e["task"] == id && e["run"] == run && e["kind"] == "agent_started"),
            "{id}: {text}"
        );
    }
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "plan_finished");
    assert_eq!(last["data"]["end"], "done");
    assert_eq!(last["data"]["tasks"]["done"], 4);
}

/// Ten tasks in four waves.
const TEN: &str = r#"name = "ten"
[[tasks]]
id = "t1"
task = "make t1"
[[tasks]]
id = "t2"
task = "make t2"
[[tasks]]
id = "t3"
task = "make t3"
depends_on = ["t1"]
[[tasks]]
id = "t4"
task = "make t4"
depends_on = ["t1", "t2"]
[[tasks]]
id = "t5"
task = "make t5"
depends_on = ["t2"]
[[tasks]]
id = "t6"
task = "make t6"
depends_on = ["t3"]
[[tasks]]
id = "t7"
task = "make t7"
depends_on = ["t4", "t5"]
[[tasks]]
id = "t8"
task = "make t8"
[[tasks]]
id = "t9"
task = "make t9"
depends_on = ["t6", "t7"]
[[tasks]]
id = "t10"
task = "make t10"
depends_on = ["t8"]
"#;

#[test]
fn kill_9_at_random_moments_loses_nothing_and_does_nothing_twice() {
    let (repo, _count) = repo();
    repo.write("plan.toml", TEN);
    let target = repo.git(&["rev-parse", "HEAD"]);
    // A fixed seed: the same moments on every machine that is as fast.
    let mut seed: u64 = 0x5eed_1234;
    let mut delays = Vec::new();
    for _ in 0..6 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let ms = 50 + (seed >> 33) % 900;
        delays.push(ms);
        let mut child = repo.massgen().args(["plan", "run", "plan.toml"]).spawn();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        // SIGKILL: no handler runs.
        let _ = child.kill();
        let _ = child.wait();
    }
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(0);
    let tip = repo.git(&["rev-parse", "massgen/plan/ten/integration"]);
    for i in 1..=10 {
        let id = format!("t{i}");
        assert_eq!(
            task(&state, &id)["status"],
            "done",
            "{id} after kills at {delays:?}"
        );
        assert_eq!(repo.git(&["show", &format!("{tip}:{id}.txt")]), id);
    }
    // One commit on the integration branch's first-parent line per task: each integrated
    // exactly once.
    let line = repo.git(&["rev-list", "--first-parent", &format!("{target}..{tip}")]);
    assert_eq!(line.lines().count(), 10, "kills at {delays:?}:\n{line}");
    repo.assert_fsck_clean();
    assert_eq!(
        repo.worktree_count(),
        1,
        "kills at {delays:?}: {}",
        repo.git(&["worktree", "list"])
    );
}

#[test]
fn the_plan_report_draws_the_graph_with_statuses_and_links() {
    let (repo, _count) = repo();
    repo.write("plan.toml", DIAMOND);
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(0);
    // plan run leaves it to plan report: beside the state by default, or where asked.
    let beside = repo.path.join(".massgen/runs/.plans/diamond/report.html");
    assert!(!beside.exists());
    repo.massgen()
        .args(["plan", "report", "diamond"])
        .run()
        .expect_code(0);
    assert!(beside.exists());
    let out = repo
        .massgen()
        .args(["plan", "report", "diamond", "--output", "page.html"])
        .run()
        .expect_code(0);
    // Attribute values come HTML-escaped (`/` as `&#x2f;`), as browsers read them.
    let page = std::fs::read_to_string(repo.path.join("page.html"))
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(
        out.stdout.trim_end().ends_with("page.html"),
        "{}",
        out.stdout
    );
    assert!(page.contains("<svg"), "{page}");
    for id in ["a", "b", "c", "d"] {
        assert!(
            page.contains(&format!("data-task=\"{id}\" data-status=\"done\"")),
            "{id}"
        );
        // Each task links to its run's own report, relative to the page.
        let run = task(&state, id)["run"].as_str().unwrap();
        assert!(
            page.contains(&format!(".massgen/runs/{run}/report.html\"")),
            "{id}: {page}"
        );
    }
    // a → b, a → c, b → d, c → d.
    assert_eq!(page.matches("class=\"edge\"").count(), 4);
    // Self-contained: nothing is fetched from elsewhere.
    assert!(
        !page.contains("https://") && !page.contains("src=\"http"),
        "{page}"
    );
    // A task's text is data: the title of a task cannot become markup.
    repo.write(
        "evil.toml",
        "name = \"evil\"\n[[tasks]]\nid = \"x\"\ntitle = \"<script>alert(1)</script>\"\ntask = \"make x\"\n",
    );
    repo.massgen()
        .args(["plan", "run", "evil.toml"])
        .run()
        .expect_code(0);
    repo.massgen()
        .args(["plan", "report", "evil"])
        .run()
        .expect_code(0);
    let page =
        std::fs::read_to_string(repo.path.join(".massgen/runs/.plans/evil/report.html")).unwrap();
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{page}"
    );
}

#[test]
fn the_integration_test_runs_in_a_worktree_made_ready_like_the_agents() {
    let (repo, _count) = repo();
    let config = std::fs::read_to_string(repo.path.join(".massgen/config.toml")).unwrap();
    repo.configure(&format!(
        "{config}\n[worktree]\ninclude = [\".env\"]\nsetup = [\"echo ready > setup-ran\"]\n"
    ));
    repo.write(".gitignore", ".env\nsetup-ran\n");
    repo.commit_all("ignore .env");
    repo.write(".env", "SECRET=1\n");
    repo.write(
        "plan.toml",
        "name = \"ready\"\nintegration_test = \"grep -q SECRET=1 .env && test -f setup-ran\"\n[[tasks]]\nid = \"a\"\ntask = \"make a\"\n",
    );
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(0);
    assert_eq!(task(&state, "a")["status"], "done", "{state:#}");
    let log = std::fs::read_to_string(
        repo.path
            .join(".massgen/runs/.plans/ready/logs/a.integration.log"),
    )
    .unwrap();
    assert!(log.contains("brought in 1 file"), "{log}");
    assert!(log.contains("$ echo ready > setup-ran"), "{log}");

    // A setup that fails there (only there: agents' worktrees have MASSGEN_AGENT) leaves
    // the task failed, saying why, and the branch where it was.
    repo.configure(&format!(
        "{config}\n[worktree]\ninclude = [\".env\"]\nsetup = [\"test -n \\\"$MASSGEN_AGENT\\\" || {{ echo no network >&2; exit 1; }}\"]\n"
    ));
    repo.write(
        "plan2.toml",
        "name = \"unready\"\nintegration_test = \"true\"\n[[tasks]]\nid = \"b\"\ntask = \"make b\"\n",
    );
    let state = repo
        .massgen()
        .args(["plan", "run", "plan2.toml", "--json"])
        .expect_json(1);
    let b = task(&state, "b");
    assert_eq!(b["status"], "failed", "{state:#}");
    let reason = b["reason"].as_str().unwrap();
    assert!(
        reason.contains("could not be made ready") && reason.contains("no network"),
        "{reason}"
    );
    assert_eq!(
        state["integration_commit"], state["target_commit"],
        "the integration branch did not move"
    );
}
