//! Feeling like git: colour and pager precedence, and `git config massgen.*` settings.

use std::path::Path;
use std::process::Command;

use crate::support::{FIX, TestRepo, seal};

/// `git ARGS` in the repository with this build's `git-massgen` first on PATH, so that
/// `git massgen` and `git -c k=v massgen` reach it the way a user's would.
fn git_massgen(
    repo: &TestRepo,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_git-massgen"))
        .parent()
        .unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut cmd = Command::new("git");
    seal(&mut cmd, &repo.root);
    cmd.current_dir(&repo.path).env("PATH", path).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("git runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn a_run(repo: &TestRepo) -> String {
    let json = repo.run_json(&[], &[("fixer", FIX)], "fix the calculator", 0);
    json["run"].as_str().unwrap().to_owned()
}

#[test]
fn colour_follows_the_flag_no_color_and_git_config() {
    let repo = TestRepo::new();
    let run = a_run(&repo);
    let coloured = |out: &str| out.contains("\x1b[32m+");
    let diff = ["massgen", "diff", &run];
    // Not a terminal: no colour by default.
    let (code, out, _) = git_massgen(&repo, &diff, &[]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("+  echo $(($2 + $3))") || out.contains("+"),
        "{out}"
    );
    assert!(!coloured(&out));
    let with = |args: &[&str], env: &[(&str, &str)]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["massgen", "diff", &run]);
        coloured(&git_massgen(&repo, &all, env).1)
    };
    assert!(with(&["-c", "color.ui=always"], &[]));
    assert!(!with(
        &["-c", "color.ui=always", "-c", "color.massgen=never"],
        &[]
    ));
    assert!(with(
        &["-c", "color.ui=never", "-c", "color.massgen=always"],
        &[]
    ));
    assert!(!with(&["-c", "color.massgen=always"], &[("NO_COLOR", "1")]));
    let mut flag = vec!["massgen", "--color", "always", "diff", &run];
    assert!(coloured(&git_massgen(&repo, &flag, &[("NO_COLOR", "1")]).1));
    flag[2] = "never";
    assert!(!coloured(&git_massgen(&repo, &flag, &[]).1));
    // Warnings and errors are coloured on stderr by the same rules.
    let (_, _, err) = git_massgen(
        &repo,
        &["massgen", "--color", "always", "diff", "nope"],
        &[],
    );
    assert!(err.contains("\x1b[31merror:\x1b[m"), "{err:?}");
}

/// Runs `git massgen diff RUN` on a terminal (util-linux `script` gives it one).
fn on_a_terminal(
    repo: &TestRepo,
    run: &str,
    git_args: &str,
    env: &[(&str, &str)],
) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        return None;
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_git-massgen"))
        .parent()
        .unwrap();
    let mut cmd = Command::new("script");
    seal(&mut cmd, &repo.root);
    cmd.current_dir(&repo.path)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .args([
            "-qec",
            &format!("git {git_args} massgen diff {run}"),
            "/dev/null",
        ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Some(String::from_utf8_lossy(&cmd.output().unwrap().stdout).replace('\r', ""))
}

#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn diff_is_paged_like_git_on_a_terminal_only() {
    let repo = TestRepo::new();
    let run = a_run(&repo);
    let pager = repo.script("pager.sh", "sed 's/^/PAGED:/'");
    let pager = format!("sh {}", pager.display());
    let Some(out) = on_a_terminal(&repo, &run, "", &[("GIT_PAGER", &pager)]) else {
        eprintln!("SKIPPED: util-linux `script` is not installed");
        return;
    };
    assert!(
        out.lines()
            .any(|l| l.starts_with("PAGED:") && l.contains("diff --git")),
        "{out}"
    );
    // core.pager when GIT_PAGER is unset; pager.massgen=false turns it off.
    let out = on_a_terminal(&repo, &run, &format!("-c core.pager='{pager}'"), &[]).unwrap();
    assert!(out.contains("PAGED:"), "{out}");
    let out = on_a_terminal(
        &repo,
        &run,
        "-c pager.massgen=false",
        &[("GIT_PAGER", &pager)],
    )
    .unwrap();
    assert!(
        !out.contains("PAGED:") && out.contains("diff --git"),
        "{out}"
    );
    // A pager git already started for us is not started again.
    let out = on_a_terminal(
        &repo,
        &run,
        "",
        &[("GIT_PAGER", &pager), ("GIT_PAGER_IN_USE", "1")],
    )
    .unwrap();
    assert!(!out.contains("PAGED:"), "{out}");
    // A pager that cannot run is said, and the diff is not lost.
    let out = on_a_terminal(&repo, &run, "", &[("GIT_PAGER", "no-such-pager")]).unwrap();
    assert!(
        out.contains("cannot run the pager `no-such-pager`"),
        "{out}"
    );
    assert!(out.contains("diff --git"), "{out}");
    // Not a terminal: never paged.
    let (_, out, _) = git_massgen(&repo, &["massgen", "diff", &run], &[("GIT_PAGER", &pager)]);
    assert!(!out.contains("PAGED:"));
}

#[test]
fn git_config_massgen_settings_reach_the_run_between_file_and_flags() {
    let repo = TestRepo::new();
    repo.configure("[score]\ntest = \"false\"\n");
    let agent = repo.agent("fixer", FIX);
    let run = |git_args: &[&str]| {
        let mut args: Vec<&str> = git_args.to_vec();
        args.extend([
            "massgen",
            "run",
            "--json",
            "--agent-cmd",
            &agent,
            "--",
            "fix it",
        ]);
        let (code, out, err) = git_massgen(&repo, &args, &[]);
        (code, out, err)
    };
    // The file's test command fails every candidate: no winner.
    assert_eq!(run(&[]).0, Some(1));
    // `git -c massgen.test=...` goes over the file.
    let (code, out, err) = run(&["-c", "massgen.test=sh test.sh"]);
    assert_eq!(code, Some(0), "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["winner"], "fixer");
    // A flag goes over both.
    let flagged = {
        let args = [
            "-c",
            "massgen.test=sh test.sh",
            "massgen",
            "run",
            "--json",
            "--test",
            "false",
            "--agent-cmd",
            &agent,
            "--",
            "fix it",
        ];
        git_massgen(&repo, &args, &[]).0
    };
    assert_eq!(flagged, Some(1));
    // So does a repository's own git config, and a bad value names its key.
    repo.git(&["config", "massgen.test", "sh test.sh"]);
    assert_eq!(run(&[]).0, Some(0));
    let (code, _, err) = run(&["-c", "massgen.jobs=none"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("git config massgen.jobs"), "{err}");
    let (_, _, err) = run(&["-c", "massgen.colour=1"]);
    assert!(err.contains("unknown setting massgen.colour"), "{err}");
}

#[test]
fn review_settings_from_git_config_yield_to_flags() {
    let repo = TestRepo::new();
    repo.unconfined();
    repo.configure(&crate::review::finders(&repo, &[("a", "")]));
    repo.write("app.txt", "BUG\n");
    repo.git(&["add", "app.txt"]);
    let review = |args: &[&str]| git_massgen(&repo, args, &[]).0;
    assert_eq!(review(&["massgen", "review", "--staged"]), Some(1));
    assert_eq!(
        review(&[
            "-c",
            "massgen.failOn=never",
            "massgen",
            "review",
            "--staged"
        ]),
        Some(0)
    );
    assert_eq!(
        review(&[
            "-c",
            "massgen.failOn=never",
            "massgen",
            "review",
            "--staged",
            "--fail-on",
            "error"
        ]),
        Some(1)
    );
}
