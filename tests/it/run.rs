//! `git massgen run`: agents, snapshots, scoring, ranking, task delivery.

use crate::support::{BREAK, FIX, TestRepo, candidate};

#[test]
fn winner_is_chosen_by_tests_among_good_bad_crashing_hanging_and_noop() {
    let repo = TestRepo::new();
    repo.unconfined();
    let pidfile = repo.root.join("hang.pid");
    let run = repo
        .massgen()
        .args(["run", "--json", "--test", "sh test.sh", "--timeout", "3s"])
        .args(["--agent-cmd", &repo.agent("good", FIX)])
        .args(["--agent-cmd", &repo.agent("bad", BREAK)])
        .args([
            "--agent-cmd",
            &repo.agent("crash", "echo half > calc.sh; echo boom >&2; exit 3"),
        ])
        .args([
            "--agent-cmd",
            &repo.agent(
                "hang",
                &format!(
                    "echo $$ > '{}'; echo started > wip.txt; sleep 600",
                    pidfile.display()
                ),
            ),
        ])
        .args(["--agent-cmd", &repo.agent("noop", "true")])
        .arg_task("fix the calculator")
        .run()
        .expect_code(0);
    let json = run.json();
    assert_eq!(json["winner"], "good");
    assert_eq!(json["state"], "scored");
    assert_eq!(json["merged"], false);
    let good = candidate(&json, "good");
    assert_eq!(good["status"], "done");
    assert_eq!(good["rank"], 1);
    assert_eq!(good["tests"]["passed"], 4);
    assert_eq!(good["tests"]["failed"], 0);
    assert_eq!(good["files_changed"], 1);
    assert_eq!(good["insertions"], 1);
    assert_eq!(good["deletions"], 1);
    let bad = candidate(&json, "bad");
    assert_eq!(bad["status"], "done");
    assert_eq!(bad["tests"]["failed"], 2);
    assert_eq!(bad["rank"], 2);
    let crash = candidate(&json, "crash");
    assert_eq!(crash["status"], "failed");
    assert_eq!(crash["exit_code"], 3);
    assert!(crash["tests"].is_null());
    let hang = candidate(&json, "hang");
    assert_eq!(hang["status"], "timeout");
    let noop = candidate(&json, "noop");
    assert_eq!(noop["status"], "no_change");
    assert!(
        json["reason"].as_str().unwrap().starts_with("good won"),
        "{}",
        json["reason"]
    );
    // The crashing and hanging agents' work is kept on their branches, nothing is lost.
    let crash_branch = crash["branch"].as_str().unwrap();
    assert_eq!(
        repo.git(&["show", &format!("{crash_branch}:calc.sh")]),
        "half"
    );
    let hang_branch = hang["branch"].as_str().unwrap();
    assert_eq!(
        repo.git(&["show", &format!("{hang_branch}:wip.txt")]),
        "started"
    );
    // The hanging agent was killed.
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "hanging agent still runs"
    );
    // Branches stay, worktrees go, the user's tree is untouched.
    assert_eq!(repo.massgen_branches().len(), 5);
    assert_eq!(repo.worktree_count(), 1);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert!(repo.read("calc.sh").contains("$2 - $3"));
    repo.assert_fsck_clean();
    // The candidate commit's parent is the base.
    let base = repo.git(&["rev-parse", "HEAD"]);
    assert_eq!(json["base"], base);
    let good_commit = good["commit"].as_str().unwrap();
    assert_eq!(repo.git(&["rev-parse", &format!("{good_commit}^")]), base);
}

#[test]
fn human_output_has_a_table_and_a_reason() {
    let repo = TestRepo::new();
    let run = repo
        .massgen()
        .args(["run", "--test", "sh test.sh"])
        .args(["--agent-cmd", &repo.agent("good", FIX)])
        .args(["--agent-cmd", &repo.agent("noop", "true")])
        .arg_task("fix it")
        .run()
        .expect_code(0);
    run.assert_stdout("rank  agent");
    assert!(
        run.stdout
            .contains("good won: it is the only candidate that finished with a change"),
        "{}",
        run.stdout
    );
    run.assert_stderr("good: running");
}

#[test]
fn no_qualifying_candidate_exits_1() {
    let repo = TestRepo::new();
    let run = repo
        .massgen()
        .args(["run", "--json", "--test", "sh test.sh"])
        .args(["--agent-cmd", &repo.agent("bad", BREAK)])
        .arg_task("fix it")
        .run()
        .expect_code(1);
    assert!(run.json()["winner"].is_null());
    assert!(
        run.json()["reason"]
            .as_str()
            .unwrap()
            .starts_with("no candidate qualified")
    );
}

const HOSTILE_TASK: &str = "Fix \"quotes\" and 'single' $(touch pwned) `touch pwned2` $HOME\nsecond line; rm -rf / ünïcödé 🚀 {worktree}\n";

#[test]
fn task_text_reaches_the_agent_intact_and_never_a_shell() {
    let repo = TestRepo::new();
    let body = "printf '%s' \"$1\" > arg.txt; printf '%s' \"$MASSGEN_TASK\" > env.txt; cp \"$MASSGEN_TASK_FILE\" file.txt; \
                printf '%s|%s|%s' \"$MASSGEN_RUN\" \"$MASSGEN_AGENT\" \"$MASSGEN_BASE\" > meta.txt; pwd > pwd.txt";
    let script = repo.script("echo.sh", body);
    let spec = format!(
        "echo=sh {} {{task}}",
        shell_words::quote(&script.display().to_string())
    );
    for (how, source) in [
        ("arg", None),
        ("stdin", Some("-")),
        ("file", Some("--task-file")),
    ] {
        let mut cmd = repo.massgen().args(["run", "--json", "--agent-cmd", &spec]);
        cmd = match source {
            None => cmd.arg_task(HOSTILE_TASK),
            Some("-") => cmd.args(["-"]).stdin(HOSTILE_TASK),
            Some(_) => {
                let f = repo.root.join("task.md");
                std::fs::write(&f, HOSTILE_TASK).unwrap();
                cmd.args(["--task-file".as_ref(), f.as_os_str()])
            }
        };
        let json = cmd.expect_json(0);
        let branch = candidate(&json, "echo")["branch"]
            .as_str()
            .unwrap()
            .to_owned();
        let show = |f: &str| {
            let out = repo.git_output(&["show", &format!("{branch}:{f}")]);
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(show("arg.txt"), HOSTILE_TASK, "task via {how}");
        assert_eq!(show("env.txt"), HOSTILE_TASK, "task via {how}");
        assert_eq!(show("file.txt"), HOSTILE_TASK, "task via {how}");
        let run_id = json["run"].as_str().unwrap();
        assert_eq!(
            show("meta.txt"),
            format!("{run_id}|echo|{}", json["base"].as_str().unwrap())
        );
        assert!(
            show("pwd.txt")
                .trim_end()
                .ends_with(&format!("{run_id}/echo"))
        );
        assert_eq!(json["task"], HOSTILE_TASK);
    }
    for f in ["pwned", "pwned2"] {
        assert!(!repo.path.join(f).exists());
        assert!(!repo.root.join(f).exists());
    }
}

#[test]
fn configured_agents_run_with_their_env_and_can_be_selected() {
    let repo = TestRepo::new();
    let script = repo.script("envy.sh", "printf '%s' \"$GREETING\" > greeting.txt");
    repo.write(
        ".massgen/config.toml",
        &format!(
            "[score]\ntest = \"sh test.sh\"\n\n[[agents]]\nname = \"envy\"\ncommand = [\"sh\", \"{}\"]\nenv = {{ GREETING = \"hello world\" }}\n\n[[agents]]\nname = \"other\"\ncommand = [\"false\"]\n",
            script.display()
        ),
    );
    let json = repo
        .massgen()
        .args(["run", "--json", "-a", "envy", "say hello"])
        .run()
        .json();
    assert_eq!(json["candidates"].as_array().unwrap().len(), 1);
    let branch = candidate(&json, "envy")["branch"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        repo.git(&["show", &format!("{branch}:greeting.txt")]),
        "hello world"
    );
    assert_eq!(json["test_command"], "sh test.sh");
    // Runtime state never shows in the user's status.
    assert_eq!(
        repo.git(&["status", "--porcelain", "--untracked-files=all"]),
        "?? .massgen/.gitignore\n?? .massgen/config.toml".trim()
    );
}

#[test]
fn runtime_state_never_shows_in_git_status() {
    let repo = TestRepo::new();
    repo.massgen()
        .args(["run", "--agent-cmd", &repo.agent("good", FIX), "fix it"])
        .run()
        .expect_code(0);
    assert!(repo.path.join(".massgen/runs").is_dir());
    assert_eq!(
        repo.git(&["status", "--porcelain", "--untracked-files=all"]),
        ""
    );
}

#[test]
fn agent_commits_and_deletions_and_new_files_are_all_captured() {
    let repo = TestRepo::new();
    let body = "echo one > committed.txt && git add committed.txt && git commit -q -m 'agent commit' && \
                rm README && mkdir -p new/dir && echo two > new/dir/file.txt && chmod +x test.sh && \
                echo ignored > junk.log && echo '*.log' > .gitignore";
    let json = repo.run_json(&[], &[("busy", body)], "do things", 0);
    let c = candidate(&json, "busy");
    let branch = c["branch"].as_str().unwrap();
    let files = repo.git(&["diff", "--name-status", "main", branch]);
    assert_eq!(
        files,
        "A\t.gitignore\nD\tREADME\nA\tcommitted.txt\nA\tnew/dir/file.txt\nM\ttest.sh"
    );
    assert_eq!(c["files_changed"], 5);
    // The agent's own commit is kept under the snapshot.
    let log = repo.git(&["log", "--format=%s", &format!("main..{branch}")]);
    assert!(log.ends_with("agent commit"), "{log}");
    assert_eq!(log.lines().count(), 2);
}

#[test]
fn agent_deleting_its_git_file_is_repaired_and_snapshotted() {
    let repo = TestRepo::new();
    let json = repo.run_json(&[], &[("vandal", &format!("rm .git && {FIX}"))], "fix", 0);
    let c = candidate(&json, "vandal");
    assert_eq!(c["status"], "done");
    assert!(c["warnings"][0].as_str().unwrap().contains(".git"), "{c}");
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
}

#[test]
fn keep_leaves_clean_worktrees_on_their_branches() {
    let repo = TestRepo::new();
    let json = repo.run_json(&["--keep"], &[("good", FIX)], "fix", 0);
    let c = candidate(&json, "good");
    let wt = c["worktree"].as_str().unwrap();
    assert_eq!(repo.worktree_count(), 2);
    let status = std::process::Command::new("git")
        .args(["-C", wt, "status", "--porcelain"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "");
    let head = std::process::Command::new("git")
        .args(["-C", wt, "rev-parse", "--abbrev-ref", "HEAD"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&head.stdout).trim(),
        c["branch"].as_str().unwrap()
    );
    // Outside the user's work tree.
    assert!(!std::path::Path::new(wt).starts_with(&repo.path));
}

/// Adds the task as the last argument.
trait ArgTask {
    fn arg_task(self, task: &str) -> Self;
}

impl ArgTask for crate::support::Massgen {
    fn arg_task(self, task: &str) -> Self {
        self.args(["--", task])
    }
}

#[test]
fn agents_run_in_parallel() {
    // Each agent waits until every agent has started: only possible if they run at once.
    let repo = TestRepo::new();
    repo.unconfined();
    let meet = repo.scratch("meet");
    let body = format!(
        "touch '{m}/'\"$MASSGEN_AGENT\"; i=0; while [ $(ls '{m}' | wc -l) -lt 3 ]; do i=$((i+1)); [ $i -gt 200 ] && exit 7; sleep 0.05; done; echo met > met.txt",
        m = meet.display()
    );
    let mut cmd = repo.massgen().args(["run", "--json"]);
    for name in ["p1", "p2", "p3"] {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, &body)]);
    }
    let json = cmd.arg_task("meet").expect_json(0);
    for name in ["p1", "p2", "p3"] {
        assert_eq!(candidate(&json, name)["status"], "done", "{json}");
    }
}

#[test]
fn jobs_bounds_how_many_agents_run_at_once() {
    let repo = TestRepo::new();
    let lock = repo.root.join("busy");
    let seen = repo.root.join("overlap");
    let body = format!(
        "[ -e '{l}' ] && touch '{s}'; touch '{l}'; sleep 0.3; rm -f '{l}'; echo x > \"$MASSGEN_AGENT\".txt",
        l = lock.display(),
        s = seen.display()
    );
    let mut cmd = repo.massgen().args(["run", "--json", "--jobs", "1"]);
    for name in ["s1", "s2", "s3"] {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, &body)]);
    }
    cmd.arg_task("one at a time").run().expect_code(0);
    assert!(!seen.exists(), "two agents ran at once despite --jobs 1");
}

#[test]
fn an_agent_touching_the_users_branches_is_reported() {
    let repo = TestRepo::new();
    repo.unconfined();
    let json = repo.run_json(
        &[],
        &[("sneaky", &format!("git branch sneaky && {FIX}"))],
        "fix",
        0,
    );
    let breaches = json["breaches"].to_string();
    assert!(
        breaches.contains("ref refs/heads/sneaky was created"),
        "{breaches}"
    );
}

#[test]
fn files_the_agent_only_staged_are_captured() {
    // Staged and unchanged since: only the HEAD-to-index comparison can see it.
    let repo = TestRepo::new();
    let json = repo.run_json(
        &[],
        &[(
            "stager",
            "echo x > staged.txt && git add staged.txt && git rm -q --cached README",
        )],
        "stage",
        0,
    );
    let branch = candidate(&json, "stager")["branch"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        repo.git(&["diff", "--name-status", "main", &branch]),
        "A\tstaged.txt"
    );
}
