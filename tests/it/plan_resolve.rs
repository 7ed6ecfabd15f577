//! Conflicts while a plan is integrated: resolved by the plan's resolver agent, by hand
//! with `plan resolve` and `plan continue`, and the target branch moving mid-plan.

use std::path::Path;

use crate::plan_run::{repo, task};
use crate::support::TestRepo;

/// Tasks `a` and `other` write `a.txt` differently; `then` depends on `other`.
fn clash_plan(resolver: Option<&str>) -> String {
    let resolver = resolver.map_or_else(String::new, |r| format!("resolver = \"{r}\"\n"));
    format!(
        "name = \"clash\"\n{resolver}integration_test = \"test -f a.txt\"\n[[tasks]]\nid = \"a\"\ntask = \"make a\"\nagents = [\"w\"]\n[[tasks]]\nid = \"other\"\ntask = \"clash a\"\nagents = [\"w\"]\n[[tasks]]\nid = \"then\"\ntask = \"make then\"\nagents = [\"w\"]\ndepends_on = [\"other\"]\n"
    )
}

/// Adds an agent named `name` running `body` to the repository's configuration.
fn add_agent(repo: &TestRepo, name: &str, body: &str) {
    let script = repo.script(&format!("{name}.sh"), body);
    let config = std::fs::read_to_string(repo.path.join(".massgen/config.toml")).unwrap();
    repo.configure(&format!(
        "{config}\n[[agents]]\nname = \"{name}\"\ncommand = [\"sh\", \"{}\"]\nenv = {{ REPO = \"{}\" }}\n",
        script.display(),
        repo.path.display()
    ));
}

fn parents(repo: &TestRepo, commit: &str) -> usize {
    repo.git(&["rev-list", "--parents", "-n", "1", commit])
        .split_whitespace()
        .count()
        - 1
}

#[test]
fn a_resolver_agent_resolves_a_conflict_and_the_plan_goes_on() {
    let (repo, _count) = repo();
    // Replaces every file holding conflict markers with both sides' words.
    add_agent(
        &repo,
        "fixer",
        r#"for f in $(grep -rl '^<<<<<<< ' --exclude-dir=.git .); do printf 'a and clash\n' > "$f"; done
echo "$MASSGEN_TASK" > "$REPO/../resolver-task.txt""#,
    );
    repo.write("plan.toml", &clash_plan(Some("fixer")));
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(0);
    for id in ["a", "other", "then"] {
        assert_eq!(task(&state, id)["status"], "done", "{id}: {state:#}");
    }
    assert!(
        task(&state, "other")["resolution_run"].is_string(),
        "{state:#}"
    );
    let tip = "massgen/plan/clash/integration";
    assert_eq!(repo.git(&["show", &format!("{tip}:a.txt")]), "a and clash");
    // The resolved integration is a merge of the integration tip and the task's winner.
    let merged = task(&state, "other")["integrated"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(parents(&repo, &merged), 2);
    let winner = task(&state, "other")["commit"].as_str().unwrap().to_owned();
    assert_eq!(
        repo.git(&["rev-list", "--parents", "-n", "1", &merged])
            .split_whitespace()
            .nth(2),
        Some(winner.as_str())
    );
    // The resolver was told the conflicted file and both tasks.
    let told = std::fs::read_to_string(repo.path.join("../resolver-task.txt")).unwrap();
    for needle in ["- a.txt", "clash a", "make a"] {
        assert!(told.contains(needle), "{needle}: {told}");
    }
    repo.assert_fsck_clean();
}

#[test]
fn a_resolver_that_leaves_markers_leaves_the_task_blocked() {
    let (repo, _count) = repo();
    add_agent(&repo, "lazy", "echo looked > note.txt");
    repo.write("plan.toml", &clash_plan(Some("lazy")));
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(1);
    let other = task(&state, "other");
    assert_eq!(other["status"], "blocked", "{state:#}");
    let reason = other["reason"].as_str().unwrap();
    assert!(
        reason.contains("conflict markers are left in a.txt"),
        "{reason}"
    );
    assert_eq!(task(&state, "then")["status"], "skipped");
    // Only a's work is on the integration branch.
    assert_eq!(
        repo.git(&["show", "massgen/plan/clash/integration:a.txt"]),
        "a"
    );
}

fn git_in(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test User")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test User")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap()
}

#[test]
fn a_conflict_resolved_by_hand_is_taken_by_plan_continue() {
    let (repo, _count) = repo();
    repo.write("plan.toml", &clash_plan(None));
    repo.massgen()
        .args(["plan", "run", "plan.toml"])
        .run()
        .expect_code(1);
    let shown = repo
        .massgen()
        .args(["plan", "resolve", "clash", "other"])
        .run()
        .expect_code(0)
        .stdout;
    let dir = shown
        .lines()
        .find_map(|l| l.strip_prefix("the merge of task other is checked out in "))
        .unwrap_or_else(|| panic!("{shown}"))
        .to_owned();
    let dir = Path::new(&dir);
    assert!(shown.contains("  a.txt"), "{shown}");
    let text = std::fs::read_to_string(dir.join("a.txt")).unwrap();
    assert!(text.contains("<<<<<<< "), "{text}");
    // Asked again: the same place.
    let again = repo
        .massgen()
        .args(["plan", "resolve", "clash", "other"])
        .run()
        .expect_code(0)
        .stdout;
    assert_eq!(again, shown);
    // Not committed yet: continue refuses, and says what to do.
    let early = repo
        .massgen()
        .args(["plan", "continue", "plan.toml"])
        .run()
        .expect_code(1);
    early.assert_stderr("the resolution is not committed yet");
    // Resolved and committed by hand: continue integrates it and runs the rest.
    std::fs::write(dir.join("a.txt"), "by hand\n").unwrap();
    assert!(git_in(dir, &["add", "-A"]).status.success());
    let commit = git_in(dir, &["commit", "--no-edit", "-q"]);
    assert!(commit.status.success(), "{commit:?}");
    let state = repo
        .massgen()
        .args(["plan", "continue", "plan.toml", "--json"])
        .expect_json(0);
    for id in ["a", "other", "then"] {
        assert_eq!(task(&state, id)["status"], "done", "{id}: {state:#}");
    }
    let tip = "massgen/plan/clash/integration";
    assert_eq!(repo.git(&["show", &format!("{tip}:a.txt")]), "by hand");
    assert_eq!(repo.git(&["show", &format!("{tip}:then.txt")]), "then");
    assert!(!dir.exists());
    assert_eq!(repo.worktree_count(), 1);
    // A task that is not blocked cannot be resolved.
    let run = repo
        .massgen()
        .args(["plan", "resolve", "clash", "a"])
        .run()
        .expect_code(2);
    run.assert_stderr("task a of plan clash is done, not blocked by a conflict");
    repo.assert_fsck_clean();
}

#[test]
fn commits_that_arrive_on_the_target_branch_are_merged_onto_the_integration_branch() {
    let (repo, _count) = repo();
    // Task a's agent also moves main, as a colleague's push would.
    add_agent(
        &repo,
        "mover",
        r#"echo a > a.txt
blob=$(echo upstream | git -C "$REPO" hash-object -w --stdin)
tree=$( (git -C "$REPO" ls-tree main; printf '100644 blob %s\tupstream.txt\n' "$blob") | git -C "$REPO" mktree)
c=$(git -C "$REPO" commit-tree "$tree" -p main -m upstream)
git -C "$REPO" update-ref refs/heads/main "$c""#,
    );
    repo.write(
        "plan.toml",
        "name = \"moving\"\n[[tasks]]\nid = \"a\"\ntask = \"make a\"\nagents = [\"mover\"]\n[[tasks]]\nid = \"b\"\ntask = \"make b\"\nagents = [\"w\"]\ndepends_on = [\"a\"]\n",
    );
    let run = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .run()
        .expect_code(0);
    run.assert_stderr("main moved to");
    let state = run.json();
    let tip = "massgen/plan/moving/integration";
    assert_eq!(
        repo.git(&["show", &format!("{tip}:upstream.txt")]),
        "upstream"
    );
    assert_eq!(repo.git(&["show", &format!("{tip}:b.txt")]), "b");
    // b started from an integration that held main's new commit.
    let b = task(&state, "b")["commit"].as_str().unwrap().to_owned();
    assert_eq!(
        repo.git(&["show", &format!("{b}:upstream.txt")]),
        "upstream"
    );
    let main = repo.git(&["rev-parse", "main"]);
    assert_eq!(state["target_commit"], main.as_str());
}

/// Task a's agent writes `a.txt` and moves main to a commit that writes `a.txt`
/// differently: the target branch's new commits conflict with the integration branch.
const CLASHING_MOVER: &str = r#"echo a > a.txt
blob=$(echo upstream | git -C "$REPO" hash-object -w --stdin)
tree=$( (git -C "$REPO" ls-tree main; printf '100644 blob %s\ta.txt\n' "$blob") | git -C "$REPO" mktree)
c=$(git -C "$REPO" commit-tree "$tree" -p main -m upstream)
git -C "$REPO" update-ref refs/heads/main "$c""#;

fn moving_plan(resolver: Option<&str>) -> String {
    let resolver = resolver.map_or_else(String::new, |r| format!("resolver = \"{r}\"\n"));
    format!(
        "name = \"moving\"\n{resolver}[[tasks]]\nid = \"a\"\ntask = \"make a\"\nagents = [\"mover\"]\n[[tasks]]\nid = \"b\"\ntask = \"make b\"\nagents = [\"w\"]\ndepends_on = [\"a\"]\n"
    )
}

#[test]
fn new_target_commits_that_conflict_are_resolved_by_hand_or_by_the_resolver() {
    let (repo, _count) = repo();
    add_agent(&repo, "mover", CLASHING_MOVER);
    repo.write("plan.toml", &moving_plan(None));
    let run = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .run()
        .expect_code(0);
    run.assert_stderr("git massgen plan resolve moving --target");
    let state = run.json();
    assert_eq!(state["target_conflicts"], serde_json::json!(["a.txt"]));
    let main = repo.git(&["rev-parse", "main"]);
    assert_eq!(state["target_left_out"], main.as_str());
    let shown = repo
        .massgen()
        .args(["plan", "resolve", "moving", "--target"])
        .run()
        .expect_code(0)
        .stdout;
    let dir = shown
        .lines()
        .find_map(|l| {
            l.strip_prefix("the merge of the new commits of the target branch is checked out in ")
        })
        .unwrap_or_else(|| panic!("{shown}"))
        .to_owned();
    let dir = Path::new(&dir);
    std::fs::write(dir.join("a.txt"), "a and upstream\n").unwrap();
    assert!(git_in(dir, &["add", "-A"]).status.success());
    assert!(git_in(dir, &["commit", "--no-edit", "-q"]).status.success());
    let state = repo
        .massgen()
        .args(["plan", "continue", "moving", "--json"])
        .expect_json(0);
    assert_eq!(state["target_commit"], main.as_str(), "{state:#}");
    assert!(state.get("target_left_out").is_none(), "{state:#}");
    let tip = "massgen/plan/moving/integration";
    assert_eq!(
        repo.git(&["show", &format!("{tip}:a.txt")]),
        "a and upstream"
    );
    assert_eq!(repo.git(&["show", &format!("{tip}:b.txt")]), "b");
    assert!(!dir.exists());
    repo.assert_fsck_clean();

    // With a resolver, the same conflict is resolved as a task's would be.
    let (repo, _count) = repo_with_resolver();
    repo.write("plan.toml", &moving_plan(Some("fixer")));
    let state = repo
        .massgen()
        .args(["plan", "run", "plan.toml", "--json"])
        .expect_json(0);
    assert!(state["target_resolution_run"].is_string(), "{state:#}");
    let main = repo.git(&["rev-parse", "main"]);
    assert_eq!(state["target_commit"], main.as_str());
    assert_eq!(
        repo.git(&["show", "massgen/plan/moving/integration:a.txt"]),
        "a and clash"
    );
}

fn repo_with_resolver() -> (TestRepo, std::path::PathBuf) {
    let (repo, count) = repo();
    add_agent(&repo, "mover", CLASHING_MOVER);
    add_agent(
        &repo,
        "fixer",
        r#"for f in $(grep -rl '^<<<<<<< ' --exclude-dir=.git .); do printf 'a and clash\n' > "$f"; done"#,
    );
    (repo, count)
}
