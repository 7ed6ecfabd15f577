//! `git massgen review`: real repositories, real reviewer processes, real git.

use serde_json::{Value, json};

use crate::llm_server::{LlmServer, Mode, Step};
use crate::support::TestRepo;

/// A command reviewer: reports every line holding `BUG` in the changed files of the
/// reviewed tree, with severity `$SEV` (default error), plus `$EXTRA` (a JSON finding).
pub const BUG_FINDER: &str = r#"tmp=$(mktemp)
while IFS= read -r f; do
  [ -f "$MASSGEN_WORKTREE/$f" ] || continue
  grep -n 'BUG' "$MASSGEN_WORKTREE/$f" | cut -d: -f1 | while read -r n; do
    printf '{"path": "%s", "line": %s, "severity": "%s", "title": "Bug marker left in the code", "message": "line %s still says BUG"}\n' "$f" "$n" "${SEV:-error}" "$n"
  done
done < "$MASSGEN_FILES" > "$tmp"
[ -n "$EXTRA" ] && printf '%s\n' "$EXTRA" >> "$tmp"
printf '{"findings": [%s]}\n' "$(paste -sd, "$tmp")"
rm -f "$tmp""#;

/// `[[reviewers]]` entries running [`BUG_FINDER`] with the given env tables.
pub fn finders(repo: &TestRepo, reviewers: &[(&str, &str)]) -> String {
    let script = repo.script("finder.sh", BUG_FINDER);
    reviewers
        .iter()
        .map(|(name, env)| {
            format!(
                "[[reviewers]]\nname = \"{name}\"\ncommand = [\"sh\", {}]\nenv = {{ {env} }}\n\n",
                toml::Value::String(script.display().to_string())
            )
        })
        .collect()
}

const LONE: &str = r#"EXTRA = '{"path": "app.txt", "line": 1, "severity": "error", "title": "Rename the variable", "message": "only this reviewer cares"}'"#;

pub fn review_json(repo: &TestRepo, args: &[&str], code: i32) -> Value {
    repo.massgen()
        .args(["review", "--json"])
        .args(args)
        .expect_json(code)
}

/// After a review only the kept review worktree is left besides the main one, and
/// `git massgen clean` removes it.
pub fn assert_only_the_review_worktree_is_left(repo: &TestRepo) {
    let list = repo.git(&["worktree", "list", "--porcelain"]);
    let trees: Vec<&str> = list
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .collect();
    assert!(trees.len() <= 2, "{list}");
    if let Some(kept) = trees.get(1) {
        assert!(kept.ends_with("/reviews/tree"), "{list}");
    }
    repo.massgen().args(["clean"]).run().expect_code(0);
    assert_eq!(repo.worktree_count(), 1);
}

fn refs(repo: &TestRepo) -> String {
    repo.git(&["for-each-ref", "--format=%(refname) %(objectname)"])
}

#[test]
fn quorum_keeps_agreed_findings_and_drops_lone_ones() {
    let repo = TestRepo::new();
    repo.configure(&finders(&repo, &[("a", ""), ("b", ""), ("c", LONE)]));
    repo.write("app.txt", "one\nBUG two\nthree\n");
    repo.git(&["add", "app.txt"]);
    let (status, refs_before) = (repo.git(&["status", "--porcelain"]), refs(&repo));
    let json = review_json(&repo, &["--staged"], 1);
    assert_eq!(json["target"], "staged changes");
    assert_eq!(json["files"], json!(["app.txt"]));
    assert_eq!(json["quorum"], 2);
    let kept = json["findings"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{json:#}");
    assert_eq!(kept[0]["path"], "app.txt");
    assert_eq!(kept[0]["line"], 2);
    assert_eq!(kept[0]["severity"], "error");
    assert_eq!(kept[0]["reviewers"], json!(["a", "b", "c"]));
    assert_eq!(json["dropped"], 1, "the lone finding is dropped");
    assert!(
        json["reviewers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true)
    );
    // Not failing on it, or needing all three for the lone one too.
    review_json(&repo, &["--staged", "--fail-on", "never"], 0);
    let all = review_json(&repo, &["--staged", "--quorum", "1"], 1);
    assert_eq!(all["findings"].as_array().unwrap().len(), 2);
    // Warnings fail only from --fail-on warning.
    let mut config = finders(
        &repo,
        &[("a", "SEV = \"warning\""), ("b", "SEV = \"warning\"")],
    );
    config.push_str("[review]\nquorum = 2\n");
    repo.write(".massgen/config.toml", &config);
    review_json(&repo, &["--staged"], 0);
    review_json(&repo, &["--staged", "--fail-on", "warning"], 1);
    // Nothing of the user's changed; nothing of ours is left.
    repo.git(&["reset", "-q", ".massgen/config.toml"]);
    repo.git(&["checkout", "-q", ".massgen/config.toml"]);
    assert_eq!(repo.git(&["status", "--porcelain"]), status);
    assert_eq!(refs(&repo), refs_before);
    assert_only_the_review_worktree_is_left(&repo);
    repo.assert_fsck_clean();
}

#[test]
fn reviewers_see_what_is_staged_not_the_work_tree() {
    let repo = TestRepo::new();
    repo.configure(&finders(&repo, &[("a", "")]));
    repo.write("app.txt", "BUG\n");
    repo.git(&["add", "app.txt"]);
    repo.write("app.txt", "fixed in the work tree only\n");
    let json = review_json(&repo, &["--staged"], 1);
    assert_eq!(json["findings"][0]["line"], 1);
    repo.write("app.txt", "clean\n");
    repo.git(&["add", "app.txt"]);
    repo.write("app.txt", "BUG, not staged\n");
    let json = review_json(&repo, &["--staged"], 0);
    assert_eq!(json["findings"], json!([]));
    // Nothing staged at all: nothing to review, no reviewer started.
    repo.git(&["reset", "-q"]);
    let json = review_json(&repo, &["--staged"], 0);
    assert_eq!(json["files"], json!([]));
    assert_eq!(json["reviewers"], json!([]));
}

#[test]
fn ranges_commits_and_merge_bases() {
    let repo = TestRepo::new();
    repo.configure(&finders(&repo, &[("a", "")]));
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("feature.txt", "BUG in the feature\n");
    repo.commit_all("feature");
    repo.git(&["checkout", "-q", "main"]);
    repo.write("main.txt", "BUG on main after the fork\n");
    repo.commit_all("main moves on");
    // A range reviews what the feature brings since it forked, not main's later work.
    for range in ["main..feature", "main...feature"] {
        let json = review_json(&repo, &[range], 1);
        assert_eq!(json["files"], json!(["feature.txt"]), "{range}");
        assert_eq!(json["target"], range);
    }
    // One commit: its own change.
    let json = review_json(&repo, &["feature"], 1);
    assert_eq!(json["files"], json!(["feature.txt"]));
    let json = review_json(&repo, &["HEAD"], 1);
    assert_eq!(json["files"], json!(["main.txt"]));
    // --base: from the merge base to HEAD.
    repo.git(&["checkout", "-q", "feature"]);
    let json = review_json(&repo, &["--base", "main"], 1);
    assert_eq!(json["files"], json!(["feature.txt"]));
    // The root commit is reviewed against the empty tree.
    let root = repo.git(&["rev-list", "--max-parents=0", "HEAD"]);
    let json = review_json(&repo, &[&root], 0);
    assert!(json["files"].as_array().unwrap().len() >= 3, "{json}");
}

#[test]
fn every_format_from_the_command_line() {
    let repo = TestRepo::new();
    let lone = r#"EXTRA = '{"path": "dir with space/a,b.txt", "line": 1, "severity": "warning", "title": "50% done: really, no", "message": "first line\nsecond: line"}'"#;
    let mut config = finders(&repo, &[("a", lone), ("b", "")]);
    config.push_str("[review]\nquorum = 1\n");
    repo.configure(&config);
    repo.write("dir with space/a,b.txt", "BUG\n");
    repo.git(&["add", "-A"]);
    let out = |format: &str| {
        let run = repo
            .massgen()
            .args(["review", "--staged", "--format", format])
            .run()
            .expect_code(1);
        run.stdout.clone()
    };
    // SARIF, valid against the 2.1.0 schema.
    let sarif: Value = serde_json::from_str(&out("sarif")).unwrap();
    let schema: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sarif-schema-2.1.0.json"
    )))
    .unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.enable_format_assertions();
    compiler.add_resource("sarif.json", schema).unwrap();
    let id = compiler.compile("sarif.json", &mut schemas).unwrap();
    if let Err(e) = schemas.validate(&sarif, id) {
        panic!("invalid SARIF: {e:#}\n{sarif:#}");
    }
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().any(
            |r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                == "dir%20with%20space/a,b.txt"
        ),
        "{sarif:#}"
    );
    // GitHub workflow commands, escaped.
    let github = out("github");
    assert!(
        github.contains("::error file=dir with space/a%2Cb.txt,line=1,"),
        "{github}"
    );
    assert!(
        github.contains("title=50%25 done%3A really%2C no::first line%0Asecond: line"),
        "{github}"
    );
    // rdjsonl: one diagnostic per line.
    let lines: Vec<Value> = out("rdjsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().any(|d| d["severity"] == "ERROR"));
    assert_eq!(lines[0]["location"]["path"], "dir with space/a,b.txt");
    // GitLab code quality: unique fingerprints.
    let gitlab: Value = serde_json::from_str(&out("gitlab")).unwrap();
    let prints: std::collections::BTreeSet<&str> = gitlab
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(prints.len(), 2);
    assert!(gitlab[0]["severity"] == "critical" || gitlab[1]["severity"] == "critical");
    // Text, and --output instead of stdout.
    assert!(out("text").contains("dir with space/a,b.txt:1: error:"));
    let file = repo.root.join("review.sarif");
    let run = repo
        .massgen()
        .args(["review", "--staged", "--format", "sarif", "--output"])
        .args([&file])
        .run()
        .expect_code(1);
    assert!(run.stdout.is_empty());
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["version"], "2.1.0");
}

#[test]
fn reviewer_failures_are_reported_and_strict_fails_the_review() {
    let repo = TestRepo::new();
    // The reviewer writes where the test looks, outside the review: unconfined.
    repo.git(&["config", "massgen.sandbox", "off"]);
    let flaky = repo.script(
        "flaky.sh",
        r#"if [ "$MASSGEN_ATTEMPT" = 1 ]; then echo 'I think it is fine'; else echo "$MASSGEN_FEEDBACK" > "$OUT/feedback"; echo '{"findings": []}'; fi"#,
    );
    let out = repo.scratch("seen");
    let mut config = finders(&repo, &[("a", "")]);
    config.push_str(&format!(
        "[[reviewers]]\nname = \"flaky\"\ncommand = [\"sh\", {}]\nenv = {{ OUT = {} }}\n\n[[reviewers]]\nname = \"crash\"\ncommand = [\"sh\", \"-c\", \"echo oops >&2; exit 3\"]\n",
        toml::Value::String(flaky.display().to_string()),
        toml::Value::String(out.display().to_string())
    ));
    repo.configure(&config);
    repo.write("app.txt", "clean\n");
    repo.git(&["add", "app.txt"]);
    let run = repo
        .massgen()
        .args(["review", "--staged", "--json"])
        .run()
        .expect_code(0);
    run.assert_stderr("reviewer `crash` failed");
    run.assert_stderr("exited with code 3: oops");
    let json = run.json();
    let crash = &json["reviewers"][2];
    assert_eq!(crash["ok"], false);
    assert!(crash["error"].as_str().unwrap().contains("oops"));
    // The flaky reviewer was asked again, told what was wrong.
    assert_eq!(json["reviewers"][1]["ok"], true);
    let feedback = std::fs::read_to_string(out.join("feedback")).unwrap();
    assert!(feedback.contains("not a JSON object"), "{feedback}");
    repo.massgen()
        .args(["review", "--staged", "--strict"])
        .run()
        .expect_code(1);
    // No reviewer at all could review: a failure, not a pass.
    let run = repo
        .massgen()
        .args(["review", "--staged", "--reviewer", "crash"])
        .run()
        .expect_code(4);
    run.assert_stderr("no reviewer could review staged changes");
    assert_only_the_review_worktree_is_left(&repo);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let repo = TestRepo::new();
    let none = repo
        .massgen()
        .args(["review", "--staged"])
        .run()
        .expect_code(2);
    none.assert_stderr("no reviewers");
    none.assert_stderr("hint: add [[reviewers]]");
    repo.configure(&finders(&repo, &[("a", "")]));
    repo.massgen().args(["review"]).run().expect_code(2);
    repo.massgen()
        .args(["review", "--staged", "HEAD"])
        .run()
        .expect_code(2);
    let bad = repo
        .massgen()
        .args(["review", "nope..HEAD"])
        .run()
        .expect_code(2);
    bad.assert_stderr("`nope` is not a commit");
    let bad = repo
        .massgen()
        .args(["review", "HEAD", "--quorum", "2"])
        .run()
        .expect_code(2);
    bad.assert_stderr("quorum 2 is more than the 1 reviewer(s)");
    let bad = repo
        .massgen()
        .args(["review", "HEAD", "--reviewer", "zed"])
        .run()
        .expect_code(2);
    bad.assert_stderr("configured reviewers: a");
    repo.write(
        ".massgen/config.toml",
        "[[reviewers]]\nname = \"x\"\nkind = \"nope\"\n",
    );
    let bad = repo.massgen().args(["review", "HEAD"]).run().expect_code(2);
    bad.assert_stderr("config.toml:3:");
    let elsewhere = repo.scratch("not-a-repo");
    crate::support::Massgen::new(&repo.root, &elsewhere)
        .args(["review", "--staged"])
        .run()
        .expect_code(3);
}

#[test]
fn an_llm_reviewer_reads_the_tree_and_reports_through_its_tool() {
    let finding = json!({"findings": [{"path": "app.txt", "line": 2, "severity": "error", "title": "Bug marker left in", "message": "BUG is still there"}]});
    let server = LlmServer::start(Mode::Script(vec![
        Step::Tools(vec![("read_file".into(), json!({"path": "app.txt"}))]),
        Step::Tools(vec![(
            "write_file".into(),
            json!({"path": "x", "content": "y"}),
        )]),
        Step::Tools(vec![("report_findings".into(), finding)]),
    ]));
    let repo = TestRepo::new();
    let mut config = finders(&repo, &[("a", "")]);
    config.push_str(&format!(
        "[[reviewers]]\nname = \"model\"\nkind = \"llm\"\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{}\"\napi_key_env = \"REVIEW_KEY\"\n",
        server.url()
    ));
    repo.configure(&config);
    repo.write("app.txt", "one\nBUG two\n");
    repo.git(&["add", "app.txt"]);
    let json = repo
        .massgen()
        .env("REVIEW_KEY", "sk-review")
        .env("MASSGEN_RETRY_BASE_MS", "20")
        .args(["review", "--staged", "--json"])
        .expect_json(1);
    let kept = json["findings"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{json:#}");
    assert_eq!(kept[0]["reviewers"], json!(["a", "model"]));
    assert_eq!(json["reviewers"][1]["usage"]["input_tokens"], 300);
    let requests = server.model_requests();
    assert_eq!(requests.len(), 3);
    let first = requests[0].body.to_string();
    assert!(
        first.contains("report_findings") && first.contains("+BUG two"),
        "{first}"
    );
    assert!(
        !first.contains("\"write_file\""),
        "only read-only tools are offered"
    );
    assert!(
        requests[1].body.to_string().contains("BUG two"),
        "the file was read"
    );
    assert!(
        requests[2]
            .body
            .to_string()
            .contains("the tree is read-only")
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer sk-review")
    );
}

#[test]
fn a_cli_reviewer_runs_read_only_and_answers_in_its_final_message() {
    let repo = TestRepo::new();
    // The stand-in CLI writes what it was given where the test looks: unconfined.
    repo.git(&["config", "massgen.sandbox", "off"]);
    let out = repo.scratch("seen");
    let answer = r#"Looked at it.\n```json\n{\"findings\": [{\"path\": \"app.txt\", \"line\": 1, \"severity\": \"warning\", \"title\": \"Leftover BUG\", \"message\": \"remove it\"}]}\n```"#;
    let stream = format!(
        "{}\n{}\n{}\n",
        r#"{"type":"system","subtype":"init","session_id":"S1","model":"m"}"#,
        format_args!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"{answer}"}}]}}}}"#
        ),
        r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"session_id":"S1","usage":{"input_tokens":10,"output_tokens":5},"total_cost_usd":0.01}"#
    );
    std::fs::write(out.join("stream.jsonl"), stream).unwrap();
    let bin = repo.script(
        "fake-claude",
        r#"for a in "$@"; do printf '%s\n' "$a"; done > "$OUT/argv"; pwd > "$OUT/cwd"; cat "$OUT/stream.jsonl""#,
    );
    repo.configure(&format!(
        "[[reviewers]]\nname = \"cc\"\nkind = \"claude\"\nbin = {}\nenv = {{ OUT = {} }}\n",
        toml::Value::String(make_executable(&bin)),
        toml::Value::String(out.display().to_string())
    ));
    repo.write("app.txt", "BUG\n");
    repo.git(&["add", "app.txt"]);
    let json = review_json(&repo, &["--staged"], 0);
    assert_eq!(json["findings"][0]["title"], "Leftover BUG", "{json:#}");
    assert_eq!(json["reviewers"][0]["kind"], "claude");
    let argv = std::fs::read_to_string(out.join("argv")).unwrap();
    assert!(
        argv.contains("--allowedTools\nRead,Grep,Glob,LS\n"),
        "{argv}"
    );
    assert!(!argv.contains("--dangerously-skip-permissions"), "{argv}");
    assert!(
        argv.contains("Answer with only this JSON object"),
        "the review prompt"
    );
    let cwd = std::fs::read_to_string(out.join("cwd")).unwrap();
    assert!(
        cwd.contains("/reviews/"),
        "it ran in the reviewed tree: {cwd}"
    );
    assert_only_the_review_worktree_is_left(&repo);
}

fn make_executable(path: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// `pre-commit` from `scripts/install-clis.sh`, or on PATH.
fn pre_commit_framework() -> Option<std::path::PathBuf> {
    let cache = std::env::var_os("MASSGEN_CLI_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| {
                    std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache")
                })
                .join("git-massgen/clis/bin")
        })
        .join("pre-commit");
    if cache.exists() {
        return Some(cache);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("pre-commit"))
        .find(|p| p.exists())
}

#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn the_pre_commit_framework_runs_the_review_hook_from_this_repository() {
    let Some(framework) = pre_commit_framework() else {
        eprintln!(
            "SKIPPED: the pre-commit framework is not installed (run scripts/install-clis.sh)"
        );
        return;
    };
    if !std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.git")).exists() {
        eprintln!("SKIPPED: pre-commit try-repo needs this source tree to be a git checkout");
        return;
    }
    let repo = TestRepo::new();
    repo.configure(&finders(&repo, &[("a", "")]));
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_git-massgen"))
        .parent()
        .unwrap()
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let try_repo = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(&framework);
        crate::support::seal(&mut cmd, &repo.root);
        let out = cmd
            .current_dir(&repo.path)
            .env("PATH", &path)
            .env("PRE_COMMIT_HOME", repo.root.join("pre-commit-home"))
            .args([
                "try-repo",
                env!("CARGO_MANIFEST_DIR"),
                "massgen-review-system",
            ])
            .args(["--verbose", "--color", "never"])
            .args(extra)
            .output()
            .expect("pre-commit starts");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    // At commit time: the staged change.
    repo.write("app.txt", "BUG\n");
    repo.git(&["add", "app.txt"]);
    let (code, text) = try_repo(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("app.txt:1: error: Bug marker left in the code"),
        "{text}"
    );
    repo.write("app.txt", "clean\n");
    repo.git(&["add", "app.txt"]);
    let (code, text) = try_repo(&[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Passed"), "{text}");
    // At push time: the framework's PRE_COMMIT_FROM_REF..PRE_COMMIT_TO_REF.
    repo.commit_all("clean");
    repo.write("pushed.txt", "BUG pushed\n");
    repo.commit_all("bug");
    let (code, text) = try_repo(&[
        "--hook-stage",
        "pre-push",
        "--from-ref",
        "HEAD~1",
        "--to-ref",
        "HEAD",
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("pushed.txt:1: error"), "{text}");
    assert_only_the_review_worktree_is_left(&repo);
}

#[test]
fn this_repository_reviews_itself_with_scripts_review_diff() {
    let repo = TestRepo::new();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/review-diff.sh");
    repo.write(
        "src/lib.rs",
        "fn f() {\n    // dbg!(in a comment)\n    dbg!(\"a\\\"b\\\\c\");\n}\n",
    );
    repo.write("tests/t.rs", "fn t() { dbg!(1); }\n");
    repo.write("notes.txt", "a\n<<<<<<< HEAD\n");
    repo.git(&["add", "-A"]);
    let json = review_json(
        &repo,
        &["--staged", "--reviewer-cmd", &format!("self=sh {script}")],
        1,
    );
    let got: Vec<(String, u64)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("notes.txt".to_owned(), 2), ("src/lib.rs".to_owned(), 3)],
        "{json:#}"
    );
    let message = json["findings"][1]["message"].as_str().unwrap();
    assert!(message.ends_with(r#"dbg!("a\"b\\c");"#), "{message}");
    // This repository's own configuration is valid and names it.
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.massgen/config.toml"))
            .unwrap();
    assert!(config.contains("scripts/review-diff.sh"));
}

#[test]
fn pushed_commits_are_reviewed_from_what_the_remote_has() {
    let repo = TestRepo::new();
    repo.configure(&finders(&repo, &[("a", "")]));
    let bare = repo.root.join("remote.git");
    repo.git(&["init", "-q", "--bare", bare.to_str().unwrap()]);
    repo.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    repo.git(&["push", "-q", "origin", "main"]);
    repo.git(&["checkout", "-q", "-b", "feat"]);
    repo.write("feature.txt", "BUG in the feature\n");
    repo.commit_all("feature");
    repo.git(&["checkout", "-q", "main"]);
    repo.write("main.txt", "BUG already pushed\n");
    repo.commit_all("main moves on");
    repo.git(&["push", "-q", "origin", "main"]);
    repo.git(&["checkout", "-q", "feat"]);
    repo.git(&["merge", "-q", "--no-edit", "main"]);
    let tip = repo.git(&["rev-parse", "HEAD"]);
    let line = format!("refs/heads/feat {tip} refs/heads/feat {}\n", "0".repeat(40));
    // By remote name, and by URL (as `git push /path/to/remote.git feat` gives it).
    for remote in ["origin", bare.to_str().unwrap()] {
        let json = repo
            .massgen()
            .args(["review", "--json", "--hook", "pre-push", "--remote", remote])
            .stdin(&line)
            .expect_json(1);
        assert_eq!(json["files"], json!(["feature.txt"]), "{remote}");
    }
    // Two refs pushed at once: one output holding both reviews.
    repo.git(&["branch", "feat2", "feat~1"]);
    let tip2 = repo.git(&["rev-parse", "feat2"]);
    let two = format!(
        "{line}refs/heads/feat2 {tip2} refs/heads/feat2 {}\n",
        "0".repeat(40)
    );
    let run = repo
        .massgen()
        .args([
            "review", "--format", "sarif", "--hook", "pre-push", "--remote", "origin",
        ])
        .stdin(&two)
        .run()
        .expect_code(1);
    let sarif: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(sarif["runs"].as_array().unwrap().len(), 2, "{sarif:#}");
    // A deletion, or nothing new: nothing to review.
    let delete = format!("(delete) {} refs/heads/old {tip}\n", "0".repeat(40));
    repo.massgen()
        .args(["review", "--hook", "pre-push", "--remote", "origin"])
        .stdin(&delete)
        .run()
        .expect_code(0)
        .assert_stderr("nothing to review");
}

#[test]
fn hooks_in_a_repository_without_reviewers_skip_and_managers_are_respected() {
    let repo = TestRepo::new();
    repo.write("app.txt", "x\n");
    repo.git(&["add", "app.txt"]);
    repo.massgen()
        .args(["review", "--hook", "pre-commit"])
        .run()
        .expect_code(0)
        .assert_stderr(
            "no [[reviewers]] in .massgen/config.toml: the pre-commit review is skipped",
        );
    // husky finds its scripts by the name the hook runs as: chaining would silence it.
    repo.write(".husky/_/h", "# husky\n");
    repo.git(&["config", "core.hooksPath", ".husky/_"]);
    let run = repo
        .massgen()
        .args(["hooks", "install"])
        .run()
        .expect_code(2);
    run.assert_stderr("managed by husky");
    run.assert_stderr("git massgen review --hook pre-commit");
    assert!(!repo.path.join(".husky/_/pre-commit").exists());
}

/// The example finding of `templates/review.md`, as a reviewer that copies it answers.
const TEMPLATE_EXAMPLE: &str = r#"{"findings": [{"path": "src/file.rs", "line": 12, "end_line": 14, "severity": "error", "title": "the problem in a few words", "message": "what is wrong and why it matters", "suggestion": "how to fix it"}]}"#;

#[test]
fn findings_that_do_not_exist_are_dropped_and_an_echo_of_the_example_is_no_answer() {
    let repo = TestRepo::new();
    let echo = repo.script("echo.sh", &format!("echo '{TEMPLATE_EXAMPLE}'"));
    let made_up = repo.script(
        "made-up.sh",
        r#"echo '{"findings": [
  {"path": "nope.rs", "line": 1, "severity": "error", "title": "No such file", "message": "m"},
  {"path": "app.txt", "line": 99, "severity": "error", "title": "Past the end", "message": "m"},
  {"path": "../outside", "line": 1, "severity": "error", "title": "Outside", "message": "m"},
  {"path": "app.txt", "line": 2, "severity": "error", "title": "Bug marker left in the code", "message": "m"}]}'"#,
    );
    let mut config = finders(&repo, &[("a", "")]);
    for (name, script) in [("echo", &echo), ("made-up", &made_up)] {
        config.push_str(&format!(
            "[[reviewers]]\nname = \"{name}\"\ncommand = [\"sh\", {}]\n\n",
            toml::Value::String(script.display().to_string())
        ));
    }
    repo.configure(&config);
    repo.write("app.txt", "one\nBUG two\n");
    repo.git(&["add", "app.txt"]);
    let run = repo
        .massgen()
        .args(["review", "--staged", "--json", "--quorum", "2"])
        .run()
        .expect_code(1);
    let json = run.json();
    let echo = &json["reviewers"][1];
    assert_eq!(echo["ok"], false, "{json:#}");
    let error = echo["error"].as_str().unwrap();
    assert!(error.contains("echoes the example finding"), "{error}");
    let made_up = &json["reviewers"][2];
    assert_eq!(made_up["ok"], true);
    let found = made_up["findings"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{made_up:#}");
    assert_eq!(found[0]["line"], 2);
    let warnings = made_up["warnings"].to_string();
    for why in [
        "nope.rs:1: no such file in the reviewed tree",
        "app.txt:99: the file has 2 lines",
    ] {
        assert!(warnings.contains(why), "{why}: {warnings}");
    }
    // A path that leaves the tree is not a finding at all.
    assert!(
        made_up["rejected"].to_string().contains(".."),
        "{made_up:#}"
    );
    // Only the real finding, agreed by two reviewers, is kept.
    let kept = json["findings"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{json:#}");
    assert_eq!(kept[0]["reviewers"], json!(["a", "made-up"]));
    // The text output names the reviewer and what was dropped.
    let text = repo
        .massgen()
        .args(["review", "--staged", "--quorum", "2"])
        .run()
        .expect_code(1);
    text.assert_stdout("reviewer made-up: dropped a finding on nope.rs:1");

    // An LLM reviewer that copies the example is asked again.
    let real = json!({"findings": [{"path": "app.txt", "line": 2, "severity": "error", "title": "Bug marker left in the code", "message": "m"}]});
    let example: serde_json::Value = serde_json::from_str(TEMPLATE_EXAMPLE).unwrap();
    let server = LlmServer::start(Mode::Script(vec![
        Step::Tools(vec![("report_findings".into(), example)]),
        Step::Tools(vec![("report_findings".into(), real)]),
    ]));
    let mut config = finders(&repo, &[("a", "")]);
    config.push_str(&format!(
        "[[reviewers]]\nname = \"model\"\nkind = \"llm\"\nprovider = \"vllm\"\nmodel = \"test-model\"\nbase_url = \"{}\"\n",
        server.url()
    ));
    repo.configure(&config);
    repo.write("app.txt", "zero\nBUG two\n");
    repo.git(&["add", "app.txt"]);
    let json = review_json(&repo, &["--staged", "--quorum", "2"], 1);
    assert_eq!(json["findings"].as_array().unwrap().len(), 1, "{json:#}");
    let requests = server.model_requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1]
            .body
            .to_string()
            .contains("echoes the example finding")
    );
}
