//! `git massgen install-man` and `git massgen completions`: the pages exist and render with
//! the real `man`; the completion scripts complete for real in bash, both as `git-massgen`
//! and as `git massgen` under git's own completion.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Massgen, TestRepo, seal};

/// Every page `install-man` writes: the main one, the visible commands, `plan`'s,
/// `hooks`' and `learn`'s commands.
const PAGES: &[&str] = &[
    "git-massgen.1",
    "git-massgen-init.1",
    "git-massgen-run.1",
    "git-massgen-status.1",
    "git-massgen-diff.1",
    "git-massgen-conflicts.1",
    "git-massgen-merge.1",
    "git-massgen-clean.1",
    "git-massgen-review.1",
    "git-massgen-plan.1",
    "git-massgen-plan-check.1",
    "git-massgen-plan-run.1",
    "git-massgen-plan-status.1",
    "git-massgen-plan-resolve.1",
    "git-massgen-plan-continue.1",
    "git-massgen-plan-report.1",
    "git-massgen-plan-new.1",
    "git-massgen-hooks.1",
    "git-massgen-hooks-install.1",
    "git-massgen-hooks-uninstall.1",
    "git-massgen-report.1",
    "git-massgen-stats.1",
    "git-massgen-learn.1",
    "git-massgen-learn-merge.1",
    "git-massgen-learn-export.1",
    "git-massgen-learn-import.1",
    "git-massgen-learn-reset.1",
    "git-massgen-learn-update.1",
    "git-massgen-install-man.1",
    "git-massgen-completions.1",
    "git-massgen-doctor.1",
    "git-massgen-demo.1",
];

/// Commands that exist for git-massgen itself and must not be advertised.
const HIDDEN: &[&str] = &["demo-agent", "llm-agent", "purge-trash"];

/// Where git's own bash completion lives on Debian-like systems.
const GIT_BASH_COMPLETION: &str = "/usr/share/bash-completion/completions/git";

/// Whether `program` is on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Says loudly that a check was skipped, and why.
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn skipped(what: &str, why: &str) {
    eprintln!("SKIPPED {what}: {why}");
}

/// Roff text with its escaped hyphens plain, for searching.
fn plain_roff(text: &str) -> String {
    text.replace("\\-", "-")
}

/// The process's umask from /proc (Linux), to know what mode a new file gets.
fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

/// Runs `man` on `page` from `man_dir` (a directory holding `man1/`) with output on stdout.
fn man(repo: &TestRepo, man_dir: &Path, page: &str) -> std::process::Output {
    let mut cmd = Command::new("man");
    seal(&mut cmd, &repo.root);
    cmd.env("MANPATH", man_dir)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .args(["-P", "cat", page])
        .output()
        .expect("man runs")
}

#[test]
fn install_man_writes_every_page() {
    let repo = TestRepo::new();
    let dir = repo.root.join("man/man1");
    let out = repo
        .massgen()
        .args(["install-man".as_ref(), dir.as_os_str()])
        .run()
        .expect_code(0);
    let listed: Vec<&str> = out.stdout.lines().collect();
    let expected: Vec<String> = PAGES
        .iter()
        .map(|p| dir.join(p).display().to_string())
        .collect();
    assert_eq!(listed, expected, "one line per page written");
    for page in PAGES {
        let text = std::fs::read_to_string(dir.join(page)).expect("page written");
        assert!(
            text.lines().any(|l| l.starts_with(".TH ")) && text.contains(".SH NAME"),
            "{page} is not a man page:\n{text}"
        );
    }
    let main = plain_roff(&std::fs::read_to_string(dir.join("git-massgen.1")).unwrap());
    assert!(main.contains(".TH GIT-MASSGEN 1"), "{main}");
    assert!(
        main.contains("git-massgen - Run several"),
        "NAME line: {main}"
    );
    for sub in ["run", "review", "report", "merge", "install-man"] {
        assert!(
            main.contains(&format!("git-massgen-{sub}(1)")),
            "{sub}: {main}"
        );
    }
    let run = plain_roff(&std::fs::read_to_string(dir.join("git-massgen-run.1")).unwrap());
    assert!(run.contains("git massgen run"), "synopsis: {run}");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), PAGES.len(), "no temp files left: {files:?}");
    for hidden in HIDDEN {
        assert!(!main.contains(hidden), "{hidden} advertised: {main}");
    }
    if let Some(mask) = umask() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("git-massgen.1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o644 & !mask,
            "pages readable as the umask allows"
        );
    }
}

#[test]
fn install_man_dir_is_relative_to_c_and_rewrites_pages() {
    let repo = TestRepo::new();
    let dir = repo.path.join("doc/man1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("git-massgen.1"), "stale\n").unwrap();
    let elsewhere = repo.scratch("elsewhere");
    let out = Massgen::new(&repo.root, &elsewhere)
        .args(["-C".as_ref(), repo.path.as_os_str()])
        .args(["install-man", "doc/man1"])
        .run()
        .expect_code(0);
    out.assert_stdout(&dir.join("git-massgen-run.1").display().to_string());
    // `-C` is global: after the command too.
    Massgen::new(&repo.root, &elsewhere)
        .args(["install-man".as_ref(), "-C".as_ref(), repo.path.as_os_str()])
        .args(["doc/man1"])
        .run()
        .expect_code(0)
        .assert_stdout(&dir.join("git-massgen-run.1").display().to_string());
    let main = std::fs::read_to_string(dir.join("git-massgen.1")).unwrap();
    assert!(main.contains(".TH"), "rewritten: {main}");
}

#[test]
fn install_man_pages_render_with_man() {
    if !on_path("man") {
        skipped(
            "install_man_pages_render_with_man",
            "`man` is not installed",
        );
        return;
    }
    let repo = TestRepo::new();
    let man_dir = repo.root.join("share/man");
    let dir = man_dir.join("man1");
    // With the directory on MANPATH, `man -w` finds the page and the hint says so.
    let out = repo
        .massgen()
        .args(["install-man".as_ref(), dir.as_os_str()])
        .env("MANPATH", &man_dir)
        .run()
        .expect_code(0);
    out.assert_stderr("`git help massgen` and `git massgen --help` now open these pages");

    let out = man(&repo, &man_dir, "git-massgen");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "man failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NAME") && text.contains("git-massgen"),
        "{text}"
    );
    assert!(text.contains("git-massgen-review(1)"), "{text}");
    let out = man(&repo, &man_dir, "git-massgen-completions");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bash-completion/completions/git-massgen"),
        "{text}"
    );

    // What `git massgen --help` runs: git turns it into `git help massgen`, i.e. `man
    // git-massgen`.
    // git maps `massgen` to the page `git-massgen` only when a `git-massgen` program is on
    // PATH (else to `gitmassgen`, as for its guides).
    let bin = Path::new(env!("CARGO_BIN_EXE_git-massgen"))
        .parent()
        .unwrap();
    let path = std::env::join_paths(std::iter::once(bin.to_owned()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut git = Command::new("git");
    seal(&mut git, &repo.root);
    let out = git
        .env("PATH", path)
        .env("MANPATH", &man_dir)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .args(["-c", "help.format=man", "help", "massgen"])
        .output()
        .expect("git runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("git-massgen-run(1)"),
        "git help massgen: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_man_warns_when_man_does_not_find_the_pages() {
    if !on_path("man") {
        skipped(
            "install_man_warns_when_man_does_not_find_the_pages",
            "`man` is not installed",
        );
        return;
    }
    let repo = TestRepo::new();
    let dir = repo.root.join("pages/man1");
    let out = repo
        .massgen()
        .args(["install-man".as_ref(), dir.as_os_str()])
        .run()
        .expect_code(0);
    out.assert_stderr("warning: `man git-massgen`");
    out.assert_stderr(&format!(
        "export MANPATH=\"{}:$MANPATH\"",
        repo.root.join("pages").display()
    ));
}

#[test]
fn install_man_defaults_to_share_man_beside_bin() {
    let repo = TestRepo::new();
    let bin = repo.scratch("prefix/bin");
    let exe = bin.join("git-massgen");
    // `current_exe` resolves symlinks, so the binary itself must live in `bin/`.
    let built = Path::new(env!("CARGO_BIN_EXE_git-massgen"));
    if std::fs::hard_link(built, &exe).is_err() {
        std::fs::copy(built, &exe).expect("copy the binary");
    }
    let mut cmd = Command::new(&exe);
    seal(&mut cmd, &repo.root);
    let out = cmd
        .current_dir(&repo.path)
        .arg("install-man")
        .output()
        .expect("git-massgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = repo.root.join("prefix/share/man/man1");
    for page in PAGES {
        assert!(
            dir.join(page).is_file(),
            "{page} missing; stdout:\n{stdout}"
        );
    }
}

#[test]
fn install_man_outside_a_bin_directory_asks_for_dir() {
    // The test binary lives in target/debug, not in a `bin` directory.
    let repo = TestRepo::new();
    let out = repo.massgen().args(["install-man"]).run().expect_code(2);
    out.assert_stderr("is not in a `bin` directory");
    out.assert_stderr("hint: name the directory");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn install_man_into_an_unusable_dir_fails_with_a_hint() {
    let repo = TestRepo::new();
    // A regular file where a directory should be: fails even for root.
    let file = repo.root.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let dir: PathBuf = file.join("man1");
    let out = repo
        .massgen()
        .args(["install-man".as_ref(), dir.as_os_str()])
        .run()
        .expect_code(4);
    out.assert_stderr(&format!("error: cannot create {}", dir.display()));
    out.assert_stderr("caused by:");
    out.assert_stderr("hint: choose a directory you can write to");
}

/// `git massgen completions SHELL`'s stdout.
fn completions(repo: &TestRepo, shell: &str) -> String {
    repo.massgen()
        .args(["completions", shell])
        .run()
        .expect_code(0)
        .stdout
}

/// Runs `script` in a bare bash (no rc files) in the test's sealed environment with the
/// bash completion script at `$MG`; returns stdout, failing on a non-zero exit.
fn bash(repo: &TestRepo, script: &str) -> String {
    let file = repo.root.join("git-massgen.bash");
    std::fs::write(&file, completions(repo, "bash")).unwrap();
    let mut cmd = Command::new("bash");
    seal(&mut cmd, &repo.root);
    let out = cmd
        .current_dir(&repo.path)
        .env("MG", &file)
        .args(["--norc", "--noprofile", "-c", script])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The words bash would offer, one per line in `out`, sorted.
fn words(out: &str) -> Vec<&str> {
    let mut w: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    w.sort_unstable();
    w
}

#[test]
fn completions_bash_defines_both_functions() {
    let repo = TestRepo::new();
    let script = completions(&repo, "bash");
    // clap_complete's function (spelled `_git__massgen` by clap_complete 4.6), registered
    // for the `git-massgen` program.
    let registered = script
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("complete -F ")
                .filter(|rest| rest.ends_with(" git-massgen"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `complete -F … git-massgen`:\n{script}"));
    assert!(registered.starts_with("_git"), "{registered}");
    assert!(
        script.contains(&format!("{registered}() {{")),
        "{registered} defined"
    );
    assert!(script.contains("_git_massgen() {"), "git's hook defined");
    for hidden in HIDDEN {
        assert!(!script.contains(hidden), "{hidden} offered");
    }
    let out = bash(
        &repo,
        "source \"$MG\"; declare -F _git_massgen; complete -p git-massgen",
    );
    assert!(out.contains("_git_massgen"), "{out}");
    assert!(out.contains(&format!("-F {registered}")), "{out}");
}

#[test]
fn completions_bash_completes_git_massgen_for_real() {
    let repo = TestRepo::new();
    let out = bash(
        &repo,
        r#"source "$MG"
show() { printf '%s\n' "${COMPREPLY[@]}"; echo ---; }
COMP_WORDS=(git massgen r); COMP_CWORD=2; _git_massgen; show
COMP_WORDS=(git massgen hooks in); COMP_CWORD=3; _git_massgen; show
COMP_WORDS=(git massgen completions ""); COMP_CWORD=3; _git_massgen; show
__git_cmd_idx=3
COMP_WORDS=(git -C /tmp massgen rev); COMP_CWORD=4; _git_massgen; show
unset __git_cmd_idx
f=$(complete -p git-massgen); f=${f#*-F }; f=${f%% *}
COMP_WORDS=(git-massgen run --job); COMP_CWORD=2; $f git-massgen --job run; show
COMP_WORDS=(git-massgen ""); COMP_CWORD=1; $f git-massgen "" git-massgen; show
"#,
    );
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(words(parts[0]), ["report", "review", "run"], "{out}");
    assert_eq!(words(parts[1]), ["install"], "{out}");
    let shells = words(parts[2]);
    for shell in ["bash", "fish", "zsh"] {
        assert!(shells.contains(&shell), "{shell} offered: {out}");
    }
    assert_eq!(words(parts[3]), ["review"], "after `git -C DIR`: {out}");
    assert_eq!(words(parts[4]), ["--jobs"], "`run --job`: {out}");
    let top = words(parts[5]);
    for sub in ["run", "review", "install-man", "completions"] {
        assert!(top.contains(&sub), "{sub} offered: {out}");
    }
    for hidden in HIDDEN {
        assert!(!top.contains(hidden), "{hidden} offered: {out}");
    }
}

#[test]
fn completions_bash_work_under_gits_own_completion() {
    if !Path::new(GIT_BASH_COMPLETION).is_file() {
        skipped(
            "completions_bash_work_under_gits_own_completion",
            &format!("{GIT_BASH_COMPLETION} is not installed"),
        );
        return;
    }
    let repo = TestRepo::new();
    // Only git's script is sourced; ours is loaded the way bash-completion does it on
    // demand: git asks `_completion_loader git-massgen` for a missing `_git_massgen`.
    let out = bash(
        &repo,
        &format!(
            r#"source {GIT_BASH_COMPLETION}
_completion_loader() {{ [[ $1 == git-massgen ]] && source "$MG"; }}
show() {{ printf '%s\n' "${{COMPREPLY[@]}}"; echo ---; }}
at() {{ COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); }}
at git massgen re; __git_func_wrap __git_main; show
at git -C . massgen hooks un; __git_func_wrap __git_main; show
at git massgen merge --; __git_func_wrap __git_main; show
"#
        ),
    );
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(words(parts[0]), ["report", "review"], "{out}");
    assert_eq!(words(parts[1]), ["uninstall"], "{out}");
    assert!(words(parts[2]).contains(&"--help"), "{out}");
}

#[test]
fn completions_zsh_and_fish() {
    let repo = TestRepo::new();
    let zsh = completions(&repo, "zsh");
    assert!(
        zsh.starts_with("#compdef git-massgen\n#description "),
        "{zsh}"
    );
    // zsh's own `_git` calls `_git-<command>` for `git <command>`.
    assert!(zsh.contains("_git-massgen() {"), "{zsh}");
    let fish = completions(&repo, "fish");
    assert!(fish.contains("complete -c git-massgen"), "{fish}");
    for (shell, script) in [("zsh", &zsh), ("fish", &fish)] {
        assert!(script.contains("review"), "{shell}: {script}");
        for hidden in HIDDEN {
            assert!(!script.contains(hidden), "{shell} offers {hidden}");
        }
        if !on_path(shell) {
            skipped(
                &format!("completions_zsh_and_fish: `{shell} -n`"),
                &format!("`{shell}` is not installed"),
            );
            continue;
        }
        let file = repo.root.join(format!("completion.{shell}"));
        std::fs::write(&file, script).unwrap();
        let out = Command::new(shell)
            .arg("-n")
            .arg(&file)
            .output()
            .expect("shell runs");
        assert!(
            out.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn completions_rejects_an_unknown_shell() {
    let repo = TestRepo::new();
    let out = repo
        .massgen()
        .args(["completions", "powershell"])
        .run()
        .expect_code(2);
    out.assert_stderr("invalid value 'powershell'");
    out.assert_stderr("bash, zsh, fish");
}

#[test]
fn completions_help_says_how_to_install() {
    let repo = TestRepo::new();
    let out = repo
        .massgen()
        .args(["completions", "--help"])
        .run()
        .expect_code(0);
    out.assert_stdout("> ~/.local/share/bash-completion/completions/git-massgen");
    out.assert_stdout("> ~/.zfunc/_git-massgen");
    out.assert_stdout("> ~/.config/fish/completions/git-massgen.fish");
}
