//! `git massgen plan check`: real plan files through the real binary; every problem at its
//! line and column with exit 2, a valid plan shown in waves, `--json`.

use crate::support::{Massgen, TestRepo};

const DIAMOND: &str = r#"name = "diamond"
integration_test = "sh test.sh"

[[tasks]]
id = "a"
title = "Lay the ground"
task = "Write the base"

[[tasks]]
id = "b"
task = "Build the left side"
depends_on = ["a"]
agents = ["fixer"]

[[tasks]]
id = "c"
task = "Build the right side"
depends_on = ["a"]
rounds = 2
timeout = "20m"

[[tasks]]
id = "d"
task = "Join both sides"
depends_on = ["b", "c"]
"#;

/// A repository with one configured agent, `fixer`.
fn repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.configure(
        "[score]\ntest = \"sh test.sh\"\n[[agents]]\nname = \"fixer\"\ncommand = [\"true\"]\n",
    );
    repo
}

/// Runs `plan check ARGS…`, asserting the exit code; returns the run.
fn check(repo: &TestRepo, args: &[&str], code: i32) -> crate::support::Run {
    repo.massgen()
        .args(["plan", "check"])
        .args(args)
        .run()
        .expect_code(code)
}

#[test]
fn a_valid_diamond_is_shown_in_waves() {
    let repo = repo();
    repo.write(".massgen/plans/diamond.toml", DIAMOND);
    let run = check(&repo, &["diamond"], 0);
    assert_eq!(
        run.stdout,
        "plan diamond: 4 tasks in 3 waves\n\
         wave 1: a\n\
         wave 2: b (after a), c (after a)\n\
         wave 3: d (after b, c)\n"
    );
    assert_eq!(run.stderr, "");
    // The same file by its path, from a subdirectory.
    let sub = repo.path.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let run = Massgen::new(&repo.root, &sub)
        .args(["plan", "check", "../.massgen/plans/diamond.toml"])
        .run()
        .expect_code(0);
    run.assert_stdout("plan diamond: 4 tasks in 3 waves");
}

#[test]
fn json_gives_tasks_with_their_waves() {
    let repo = repo();
    repo.write(
        "plans/diamond.toml",
        &DIAMOND.replace("integration_test = \"sh test.sh\"\n", ""),
    );
    let json = check(&repo, &["plans/diamond.toml", "--json"], 0).json();
    assert_eq!(json["name"], "diamond");
    assert_eq!(json["path"], "plans/diamond.toml");
    assert_eq!(json["valid"], true);
    assert_eq!(json["integration_test"], "sh test.sh", "from [score] test");
    assert_eq!(json["waves"], serde_json::json!([["a"], ["b", "c"], ["d"]]));
    let tasks = json["tasks"].as_array().unwrap();
    let d = &tasks[3];
    assert_eq!(d["id"], "d");
    assert_eq!(
        d["title"], "Join both sides",
        "title: the first line of the task"
    );
    assert_eq!(d["depends_on"], serde_json::json!(["b", "c"]));
    assert_eq!(d["wave"], 3);
    assert_eq!(tasks[0]["title"], "Lay the ground");
    assert_eq!(tasks[1]["agents"], serde_json::json!(["fixer"]));
    assert_eq!(tasks[2]["rounds"], 2);
    assert_eq!(tasks[2]["timeout_secs"], 1200);
}

#[test]
fn every_problem_is_printed_at_its_line_and_column() {
    let repo = repo();
    repo.write(
        ".massgen/plans/bad.toml",
        r#"resolver = "nobody"

[[tasks]]
id = "a"
task = "one"
depends_on = ["a", "ghost"]

[[tasks]]
id = "b"
task = "  "
agents = ["fixer", "claude"]
rounds = 0

[[tasks]]
id = "a"
task = "again"
"#,
    );
    let run = check(&repo, &["bad"], 2);
    let expected = [
        ".massgen/plans/bad.toml:1:12: resolver: no agent named `nobody` in .massgen/config.toml",
        ".massgen/plans/bad.toml:6:15: task `a` depends on itself",
        ".massgen/plans/bad.toml:6:20: task `a` depends on unknown task `ghost`",
        ".massgen/plans/bad.toml:10:8: task `b`: `task` is empty",
        ".massgen/plans/bad.toml:11:20: task `b`: no agent named `claude` in .massgen/config.toml",
        ".massgen/plans/bad.toml:12:10: task `b`: rounds = 0; expected 1 to 20",
        ".massgen/plans/bad.toml:15:6: task id `a` is used twice: here and at 4:6",
    ];
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .collect();
    assert_eq!(errors, expected, "stderr:\n{}", run.stderr);
    run.assert_stderr("hint: configured agents: fixer");
    run.assert_stderr("hint: the plan's tasks are `a` and `b`");
    run.assert_stderr("hint: task ids must be unique; rename one of them");
    assert_eq!(run.stdout, "");
}

#[test]
fn a_cycle_is_named_from_its_smallest_id() {
    let repo = repo();
    repo.write(
        "cycle.toml",
        r#"[[tasks]]
id = "c"
task = "third"
depends_on = ["b"]

[[tasks]]
id = "free"
task = "no part of it"

[[tasks]]
id = "a"
task = "first"
depends_on = ["c"]

[[tasks]]
id = "b"
task = "second"
depends_on = ["a"]
"#,
    );
    let run = check(&repo, &["cycle.toml"], 2);
    run.assert_stderr("error: cycle.toml:13:15: dependency cycle: a → c → b → a\n");
    run.assert_stderr("hint: each task depends on the next");
}

#[test]
fn more_than_100_tasks_are_refused() {
    let repo = repo();
    let text: String = (1..=101)
        .map(|i| format!("[[tasks]]\nid = \"t{i}\"\ntask = \"step {i}\"\n\n"))
        .collect();
    repo.write("big.toml", &text);
    let run = check(&repo, &["big.toml"], 2);
    run.assert_stderr("error: big.toml:401:1: plan has 101 tasks; at most 100\n");
    run.assert_stderr("hint: split it into several plans");
}

#[test]
fn unknown_keys_and_empty_plans_are_errors() {
    let repo = repo();
    repo.write(
        "typo.toml",
        "[[tasks]]\nid = \"a\"\ntask = \"x\"\n  depend_on = [\"b\"]\n",
    );
    let run = check(&repo, &["typo.toml"], 2);
    run.assert_stderr("error: typo.toml:4:3: unknown field `depend_on`");
    run.assert_stderr("hint: see README.md, \"Task plans\"");
    repo.write("empty.toml", "name = \"empty\"\n");
    let run = check(&repo, &["empty.toml"], 2);
    run.assert_stderr("error: empty.toml:1:1: the plan has no tasks\n");
}

#[test]
fn json_of_an_invalid_plan_lists_its_errors() {
    let repo = repo();
    repo.write(
        "bad.toml",
        "[[tasks]]\nid = \"a\"\ntask = \"x\"\ndepends_on = [\"x\"]\n[[tasks]]\nid = \"b\"\n",
    );
    let run = check(&repo, &["bad.toml", "--json"], 2);
    let json = run.json();
    assert_eq!(json["valid"], false);
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{json}");
    assert_eq!(
        (&errors[0]["line"], &errors[0]["column"]),
        (&4.into(), &15.into())
    );
    assert_eq!(errors[0]["message"], "task `a` depends on unknown task `x`");
    assert_eq!(errors[1]["message"], "task `b` has no `task` text");
    assert!(errors[1]["hint"].is_string());
    // Still said on stderr, for the person running the script.
    run.assert_stderr("error: bad.toml:6:6: task `b` has no `task` text");
}

#[test]
fn a_missing_plan_is_a_usage_error() {
    let repo = repo();
    let run = check(&repo, &["nothere"], 2);
    run.assert_stderr("error: no plan at .massgen/plans/nothere.toml");
    run.assert_stderr("hint: a bare NAME is read from .massgen/plans/NAME.toml");
    let run = check(&repo, &["nothere.toml"], 2);
    run.assert_stderr("error: no plan at nothere.toml");
}

#[test]
fn a_path_is_checked_outside_a_repository_but_a_name_is_not() {
    let repo = TestRepo::new();
    let outside = repo.scratch("outside");
    std::fs::write(outside.join("p.toml"), DIAMOND).unwrap();
    let run = Massgen::new(&repo.root, &outside)
        .args(["plan", "check", "p.toml"])
        .run()
        .expect_code(0);
    run.assert_stdout("plan diamond: 4 tasks in 3 waves");
    run.assert_stderr("agent names are not checked");
    Massgen::new(&repo.root, &outside)
        .args(["plan", "check", "p"])
        .run()
        .expect_code(3);
}
