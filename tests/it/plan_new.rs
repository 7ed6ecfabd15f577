//! `git massgen plan new`: a configured agent (a script, or the built-in LLM kind against the
//! loopback server) writes a plan; an invalid one is answered with what was wrong and asked
//! again; the file written passes `plan check`; nothing runs, nothing else is left behind.

use serde_json::{Value, json};

use crate::llm_server::{LlmServer, Mode, Step};
use crate::support::TestRepo;

/// A plan whose tasks depend on each other in a circle: `a → b → a`.
const CYCLE: &str = r#"{"name": "auth", "tasks": [{"id": "a", "title": "A", "task": "do a", "depends_on": ["b"]}, {"id": "b", "title": "B", "task": "do b", "depends_on": ["a"]}]}"#;

/// A valid plan of three tasks in two waves, wrapped as `{"plan": ...}`.
const VALID: &str = r#"{"plan": {"name": "auth", "tasks": [{"id": "schema", "title": "Users table", "task": "Write the migration\nand its rollback", "depends_on": []}, {"id": "api", "title": "Endpoints", "task": "Add POST /signup", "depends_on": ["schema"], "agents": ["planner"], "test": "sh test.sh"}, {"id": "ui", "title": "Forms", "task": "Add the forms", "depends_on": ["schema"]}]}}"#;

/// A repository whose agents are `planner` (running `body` with `{goal}` as its argument)
/// and `fixer`; `extra` goes at the end of the configuration.
fn repo_with_planner(body: &str, extra: &str) -> TestRepo {
    let repo = TestRepo::new();
    let script = repo.script("planner.sh", body);
    let out = repo.scratch("seen");
    repo.configure(&format!(
        "[[agents]]\nname = \"planner\"\ncommand = [\"sh\", {}, \"{{goal}}\"]\nenv = {{ OUT = {} }}\n\n\
         [[agents]]\nname = \"fixer\"\ncommand = [\"true\"]\n{extra}",
        toml::Value::String(script.display().to_string()),
        toml::Value::String(out.display().to_string()),
    ));
    repo
}

/// Nothing ran and nothing but the plan file was left: no `massgen/` branch, no run
/// directory, one worktree, the temporary directory empty, `git status` showing `expected`.
fn assert_nothing_ran(repo: &TestRepo, tmp: &std::path::Path, expected: &str) {
    assert!(
        repo.massgen_branches().is_empty(),
        "{:?}",
        repo.massgen_branches()
    );
    assert!(
        !repo.path.join(".massgen/runs").exists(),
        "no run directory"
    );
    assert_eq!(repo.worktree_count(), 1);
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    assert_eq!(repo.git(&["status", "--porcelain"]), expected);
    repo.assert_fsck_clean();
}

#[test]
fn a_command_planner_is_told_its_cycle_and_its_second_plan_is_written_not_run() {
    let repo = repo_with_planner(
        &format!(
            "printf '%s' \"$1\" > \"$OUT/goal\"; pwd > \"$OUT/cwd\"; cp \"$MASSGEN_PROMPT_FILE\" \"$OUT/prompt\"\n\
             if [ \"$MASSGEN_ATTEMPT\" = 1 ]; then echo 'Here is my plan:'; echo '{CYCLE}'; exit 0; fi\n\
             printf '%s' \"$MASSGEN_FEEDBACK\" > \"$OUT/feedback\"\n\
             printf '%s\\n' '{VALID}'"
        ),
        "",
    );
    // The planner writes where the test looks: unconfined.
    repo.unconfined();
    let tmp = repo.scratch("tmp");
    let goal = "Add sign-up and login; $(touch pwned)";
    let run = repo
        .massgen()
        .env("TMPDIR", &tmp)
        .args(["plan", "new", goal, "--planner", "planner"])
        .run()
        .expect_code(0);
    assert_eq!(
        run.stdout,
        "plan auth: 3 tasks in 2 waves\n\
         wave 1: schema\n\
         wave 2: api (after schema), ui (after schema)\n\
         run it with `git massgen plan run .massgen/plans/auth.toml`\n"
    );
    run.assert_stderr("wrote .massgen/plans/auth.toml (planner planner, attempt 2)");
    let seen = repo.root.join("seen");
    let feedback = std::fs::read_to_string(seen.join("feedback")).unwrap();
    assert!(
        feedback.contains("dependency cycle: a → b → a"),
        "the second attempt was told the cycle: {feedback}"
    );
    assert_eq!(std::fs::read_to_string(seen.join("goal")).unwrap(), goal);
    assert_eq!(
        std::fs::read_to_string(seen.join("cwd")).unwrap().trim(),
        repo.path.canonicalize().unwrap().display().to_string()
    );
    let prompt = std::fs::read_to_string(seen.join("prompt")).unwrap();
    for part in [
        goal,
        "\"maxItems\": 100",
        "among: planner, fixer",
        "calc.sh\n",
    ] {
        assert!(prompt.contains(part), "{part}: {prompt}");
    }
    let text = repo.read(".massgen/plans/auth.toml");
    assert!(
        text.contains("task = \"\"\"\nWrite the migration\nand its rollback\"\"\""),
        "{text}"
    );
    let check = repo
        .massgen()
        .args(["plan", "check", "auth", "--json"])
        .expect_json(0);
    assert_eq!(check["waves"], json!([["schema"], ["api", "ui"]]));
    assert_eq!(check["tasks"][1]["agents"], json!(["planner"]));
    assert_eq!(check["tasks"][1]["test"], "sh test.sh");
    assert!(!repo.path.join("pwned").exists(), "the goal is data");
    assert_nothing_ran(&repo, &tmp, "?? .massgen/plans/");
}

#[test]
fn an_llm_planner_is_answered_through_its_tool_and_writes_where_it_is_told() {
    let valid: Value = serde_json::from_str(VALID).unwrap();
    let mut unknown_agent = valid.clone();
    unknown_agent["plan"]["tasks"][2]["agents"] = json!(["nobody"]);
    let server = LlmServer::start(Mode::Script(vec![
        Step::Tools(vec![("read_file".into(), json!({"path": "README"}))]),
        Step::Tools(vec![("write_plan".into(), unknown_agent)]),
        Step::Tools(vec![("write_plan".into(), valid)]),
    ]));
    let repo = TestRepo::new();
    repo.configure(&format!(
        "[[agents]]\nname = \"planner\"\nkind = \"llm\"\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{}\"\napi_key_env = \"PLAN_KEY\"\n",
        server.url()
    ));
    let tmp = repo.scratch("tmp");
    let json = repo
        .massgen()
        .env("PLAN_KEY", "sk-plan")
        .env("TMPDIR", &tmp)
        .env("MASSGEN_RETRY_BASE_MS", "20")
        .args(["plan", "new", "Add sign-up", "--planner", "planner"])
        .args(["--output", "docs/auth-plan.toml", "--json"])
        .expect_json(0);
    assert_eq!(json["path"], "docs/auth-plan.toml");
    assert_eq!(json["name"], "auth");
    assert_eq!(json["attempts"], 2);
    assert_eq!(json["waves"], json!([["schema"], ["api", "ui"]]));
    assert_eq!(
        json["tasks"][0]["task"],
        "Write the migration\nand its rollback"
    );
    repo.massgen()
        .args(["plan", "check", "docs/auth-plan.toml"])
        .run()
        .expect_code(0);
    let requests = server.model_requests();
    assert_eq!(requests.len(), 3);
    let first = requests[0].body.to_string();
    assert!(
        first.contains("write_plan") && first.contains("Add sign-up"),
        "{first}"
    );
    assert!(
        !first.contains("\"write_file\""),
        "only read-only tools are offered"
    );
    assert!(
        requests[1].body.to_string().contains("calculator"),
        "README was read"
    );
    let told = requests[2].body.to_string();
    assert!(told.contains("no agent named `nobody`"), "{told}");
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-plan"));
    assert_nothing_ran(&repo, &tmp, "?? docs/");
}

#[test]
fn bad_input_and_a_planner_that_never_plans_leave_nothing() {
    let never = r#"echo '{"name": "bad", "tasks": [{"id": "a", "title": "A", "task": "x", "depends_on": ["zz"]}]}'"#;
    let repo = repo_with_planner(never, "[plan]\nmax_attempts = 2\n");
    let tmp = repo.scratch("tmp");
    let run = repo
        .massgen()
        .env("TMPDIR", &tmp)
        .args(["plan", "new", "x", "--planner", "claude"])
        .run()
        .expect_code(2);
    run.assert_stderr("no agent `claude` in .massgen/config.toml");
    run.assert_stderr("configured agents: planner, fixer");
    repo.massgen()
        .args(["plan", "new", " ", "--planner", "planner"])
        .run()
        .expect_code(2)
        .assert_stderr("the goal is empty");

    let run = repo
        .massgen()
        .env("TMPDIR", &tmp)
        .args(["plan", "new", "Add sign-up", "--planner", "planner"])
        .run()
        .expect_code(4);
    run.assert_stderr("planner `planner` gave no valid plan in 2 attempt(s)");
    run.assert_stderr("task `a` depends on unknown task `zz`");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        !repo.path.join(".massgen/plans").exists(),
        "no file written"
    );
    assert_nothing_ran(&repo, &tmp, "");

    // An existing file is refused before the planner is asked (it would fail: exit 4).
    repo.write("plan.toml", "keep");
    repo.massgen()
        .args([
            "plan",
            "new",
            "x",
            "--planner",
            "planner",
            "-o",
            "plan.toml",
        ])
        .run()
        .expect_code(2)
        .assert_stderr("hint: pass --force to replace it");
    assert_eq!(repo.read("plan.toml"), "keep");
}

#[test]
fn the_default_file_is_replaced_only_with_force() {
    let repo = repo_with_planner(&format!("printf '%s\\n' '{VALID}'"), "");
    repo.write(".massgen/plans/auth.toml", "# mine\n");
    let run = repo
        .massgen()
        .args(["plan", "new", "Add sign-up", "--planner", "planner"])
        .run()
        .expect_code(2);
    run.assert_stderr(".massgen/plans/auth.toml exists");
    assert_eq!(repo.read(".massgen/plans/auth.toml"), "# mine\n");
    repo.massgen()
        .args([
            "plan",
            "new",
            "Add sign-up",
            "--planner",
            "planner",
            "--force",
        ])
        .run()
        .expect_code(0);
    assert!(
        repo.read(".massgen/plans/auth.toml")
            .starts_with("# Written by")
    );
}
