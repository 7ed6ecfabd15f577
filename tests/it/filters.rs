//! Snapshots store what `git add` would store: `.gitattributes` end-of-line conversion,
//! `core.autocrlf`, clean and process filter drivers (git-lfs), large files streamed.

use crate::support::{TestRepo, candidate};

/// Commits `.gitattributes` (and any other files already written) on `main`.
fn with_attributes(repo: &TestRepo, attributes: &str) {
    repo.write(".gitattributes", attributes);
    repo.commit_all("attributes");
}

/// The bytes of `rev:path` as stored in the repository.
fn blob(repo: &TestRepo, spec: &str) -> Vec<u8> {
    let out = repo.git_output(&["cat-file", "blob", spec]);
    assert!(out.status.success(), "no blob {spec}");
    out.stdout
}

/// Paths changed between `main` and `commit`.
fn changed(repo: &TestRepo, commit: &str) -> String {
    repo.git(&["diff", "--name-only", "main", commit])
}

fn merge_latest(repo: &TestRepo) {
    let out = repo
        .massgen()
        .args(["merge", "latest", "--json"])
        .expect_json(0);
    assert_eq!(out["merged"], true, "{out}");
}

#[test]
fn eol_crlf_files_are_stored_with_lf_and_merge_leaves_status_clean() {
    let repo = TestRepo::new();
    repo.unconfined();
    repo.write("notes.txt", "first\r\nsecond\r\n");
    repo.write("keep.txt", "untouched\r\n");
    repo.write("same.txt", "rewritten\r\n");
    with_attributes(&repo, "*.txt text eol=crlf\n");
    assert_eq!(blob(&repo, "HEAD:notes.txt"), b"first\nsecond\n");
    let seen = repo.root.join("seen.txt");
    let body = format!(
        "cp keep.txt '{}' && printf 'one\\r\\ntwo\\r\\n' > new.txt && printf 'changed\\r\\n' > notes.txt && \
         cp same.txt same.tmp && rm same.txt && mv same.tmp same.txt",
        seen.display()
    );
    let json = repo.run_json(&[], &[("crlf", &body)], "edit notes", 0);
    // The agent's worktree was checked out as git would: with CRLF.
    assert_eq!(std::fs::read(&seen).unwrap(), b"untouched\r\n");
    let c = candidate(&json, "crlf");
    assert_eq!(c["status"], "done");
    let commit = c["commit"].as_str().unwrap();
    // Untouched and rewritten-but-equal CRLF files are not changes.
    assert_eq!(changed(&repo, commit), "new.txt\nnotes.txt");
    assert_eq!(c["files_changed"], 2);
    assert_eq!(blob(&repo, &format!("{commit}:new.txt")), b"one\ntwo\n");
    assert_eq!(blob(&repo, &format!("{commit}:notes.txt")), b"changed\n");

    merge_latest(&repo);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(repo.read("new.txt"), "one\r\ntwo\r\n");
    repo.assert_fsck_clean();
}

#[test]
fn core_autocrlf_and_text_auto_normalize_text_but_not_binary_files() {
    let repo = TestRepo::new();
    repo.git(&["config", "core.autocrlf", "true"]);
    with_attributes(&repo, "*.dat text=auto\n");
    let body = "printf 'a\\r\\nb\\r\\n' > plain.txt && printf 'x\\r\\ny\\r\\n' > auto.dat && \
                printf 'bin\\000\\r\\n' > blob.dat";
    let json = repo.run_json(&[], &[("auto", body)], "write", 0);
    let commit = candidate(&json, "auto")["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(blob(&repo, &format!("{commit}:plain.txt")), b"a\nb\n");
    assert_eq!(blob(&repo, &format!("{commit}:auto.dat")), b"x\ny\n");
    assert_eq!(blob(&repo, &format!("{commit}:blob.dat")), b"bin\0\r\n");

    merge_latest(&repo);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(repo.read("plain.txt"), "a\r\nb\r\n");
}

#[test]
fn attributes_the_agent_writes_apply_to_its_own_files() {
    let repo = TestRepo::new();
    let body = "echo '*.txt text' > .gitattributes && printf 'l1\\r\\nl2\\r\\n' > win.txt";
    let json = repo.run_json(&[], &[("attrs", body)], "write", 0);
    let commit = candidate(&json, "attrs")["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(blob(&repo, &format!("{commit}:win.txt")), b"l1\nl2\n");
    merge_latest(&repo);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn ident_and_working_tree_encoding_are_undone_like_git_add() {
    let repo = TestRepo::new();
    with_attributes(
        &repo,
        "*.txt text working-tree-encoding=UTF-16\n*.c ident\n",
    );
    let body =
        "printf '\\377\\376h\\000i\\000\\n\\000' > wide.txt && printf 'id: $Id: abc $\\n' > id.c";
    let json = repo.run_json(&[], &[("conv", body)], "write", 0);
    let commit = candidate(&json, "conv")["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(blob(&repo, &format!("{commit}:wide.txt")), b"hi\n");
    assert_eq!(blob(&repo, &format!("{commit}:id.c")), b"id: $Id$\n");
    merge_latest(&repo);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn kept_worktree_is_clean_after_a_normalizing_snapshot() {
    let repo = TestRepo::new();
    with_attributes(&repo, "*.txt text eol=crlf\n");
    let json = repo.run_json(
        &["--keep"],
        &[(
            "keep",
            "printf 'k\\r\\n' > k.txt && printf 'u\\n' > unix.txt",
        )],
        "write",
        0,
    );
    let c = candidate(&json, "keep");
    let wt = c["worktree"].as_str().unwrap();
    let commit = c["commit"].as_str().unwrap();
    assert_eq!(blob(&repo, &format!("{commit}:k.txt")), b"k\n");
    assert_eq!(blob(&repo, &format!("{commit}:unix.txt")), b"u\n");
    assert_eq!(repo.git(&["-C", wt, "status", "--porcelain"]), "");
}

#[test]
fn clean_filter_output_is_stored_and_merge_leaves_status_clean() {
    let repo = TestRepo::new();
    repo.git(&["config", "filter.upper.clean", "tr a-z A-Z"]);
    repo.git(&["config", "filter.upper.smudge", "cat"]);
    with_attributes(&repo, "*.up filter=upper\n");
    let body = "echo hello > shout.up && echo quiet > plain.txt";
    let json = repo.run_json(&[], &[("upper", body)], "write", 0);
    let c = candidate(&json, "upper");
    let commit = c["commit"].as_str().unwrap();
    assert_eq!(blob(&repo, &format!("{commit}:shout.up")), b"HELLO\n");
    assert_eq!(blob(&repo, &format!("{commit}:plain.txt")), b"quiet\n");
    assert_eq!(c["warnings"], serde_json::json!([]));

    merge_latest(&repo);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

/// A long-running `process` filter (git's protocol, version 2) in the style of git's own
/// `t/t0021/rot13-filter.pl`: `clean` upper-cases, `smudge` passes content through, and a
/// path containing `fail` gets `status=error`.
const UPPER_PROCESS: &str = r#"
use strict; use warnings;
binmode STDIN; binmode STDOUT; $| = 1;
sub rd { my $n = read(STDIN, my $len, 4); exit 0 if !$n; die "short length" if $n != 4;
  $len = hex $len; return undef if $len == 0; my $buf = '';
  while (length($buf) < $len - 4) { my $r = read(STDIN, $buf, $len - 4 - length($buf), length($buf)); die "eof" if !$r; }
  return $buf; }
sub wr { my $d = shift; printf STDOUT "%04x", length($d) + 4; print STDOUT $d; }
sub fl { print STDOUT "0000"; }
rd() =~ /^git-filter-client\n?$/ or die "client"; rd() =~ /^version=2\n?$/ or die "version";
while (defined rd()) {}
wr("git-filter-server\n"); wr("version=2\n"); fl();
while (defined rd()) {}
wr("capability=clean\n"); wr("capability=smudge\n"); fl();
while (1) {
  my %h; while (defined(my $l = rd())) { chomp $l; my ($k, $v) = split /=/, $l, 2; $h{$k} = $v; }
  my $content = ''; while (defined(my $d = rd())) { $content .= $d; }
  if ($h{pathname} =~ /fail/) { wr("status=error\n"); fl(); next; }
  $content = uc $content if $h{command} eq 'clean';
  wr("status=success\n"); fl();
  while (length $content) { wr(substr($content, 0, 65516, '')); }
  fl(); fl();
}
"#;

/// Configures the `upper` process filter for `*.up` files; false (and says so loudly) when
/// perl is missing.
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn upper_process_filter(repo: &TestRepo, test: &str, required: bool) -> bool {
    let perl = std::process::Command::new("perl")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !perl {
        eprintln!("SKIPPED {test}: perl is not on PATH (the stand-in process filter needs it)");
        return false;
    }
    let script = repo.scratch("filters").join("upper.pl");
    std::fs::write(&script, UPPER_PROCESS).unwrap();
    let command = format!("perl '{}'", script.display());
    repo.git(&["config", "filter.upper.process", &command]);
    repo.git(&["config", "filter.upper.required", &required.to_string()]);
    with_attributes(repo, "*.up filter=upper\n");
    true
}

#[test]
fn process_filter_output_is_stored_even_when_larger_than_memory_spool() {
    let test = "process_filter_output_is_stored_even_when_larger_than_memory_spool";
    let repo = TestRepo::new();
    if !upper_process_filter(&repo, test, true) {
        return;
    }
    // 3 MiB of output: more than is kept in memory, so it goes through a temporary file.
    let body = "echo hello > small.up && head -c 3145728 /dev/zero | tr '\\000' 'a' > big.up";
    let json = repo.run_json(&[], &[("proc", body)], "write", 0);
    let c = candidate(&json, "proc");
    assert_eq!(c["status"], "done", "{c}");
    let commit = c["commit"].as_str().unwrap();
    assert_eq!(blob(&repo, &format!("{commit}:small.up")), b"HELLO\n");
    let big = blob(&repo, &format!("{commit}:big.up"));
    assert_eq!(big.len(), 3 * 1024 * 1024);
    assert!(big.iter().all(|b| *b == b'A'));

    merge_latest(&repo);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}

#[test]
fn a_required_process_filter_reporting_an_error_names_file_and_driver() {
    let test = "a_required_process_filter_reporting_an_error_names_file_and_driver";
    let repo = TestRepo::new();
    if !upper_process_filter(&repo, test, true) {
        return;
    }
    // `a.up` goes first and is filtered; then the filter reports an error for `z-fail.up`.
    let body = "echo x > a.up && echo y > z-fail.up";
    let json = repo.run_json(&[], &[("a", body)], "write", 1);
    let error = candidate(&json, "a")["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("the clean filter `upper` failed on z-fail.up: "),
        "{error}"
    );
    assert!(error.contains("indicated an error"), "{error}");
}

#[test]
fn a_process_filter_that_is_not_required_and_reports_an_error_is_skipped_with_a_warning() {
    let test =
        "a_process_filter_that_is_not_required_and_reports_an_error_is_skipped_with_a_warning";
    let repo = TestRepo::new();
    if !upper_process_filter(&repo, test, false) {
        return;
    }
    let body = "echo x > a.up && echo y > z-fail.up";
    let json = repo.run_json(&[], &[("a", body)], "write", 0);
    let c = candidate(&json, "a");
    let commit = c["commit"].as_str().unwrap();
    assert_eq!(blob(&repo, &format!("{commit}:a.up")), b"X\n");
    assert_eq!(blob(&repo, &format!("{commit}:z-fail.up")), b"y\n");
    let warnings = c["warnings"].to_string();
    assert!(
        warnings.contains("the clean filter `upper` failed on z-fail.up"),
        "{warnings}"
    );
}

#[test]
fn a_required_filter_that_fails_fails_the_snapshot_naming_file_and_driver() {
    let repo = TestRepo::new();
    repo.git(&["config", "filter.broken.clean", "false"]);
    repo.git(&["config", "filter.broken.required", "true"]);
    with_attributes(&repo, "*.dat filter=broken\n");
    let run = repo
        .massgen()
        .args(["run", "--json"])
        .args(["--agent-cmd", &repo.agent("a", "echo data > x.dat")])
        .args(["--", "write"])
        .run()
        .expect_code(1);
    let json = run.json();
    let c = candidate(&json, "a");
    assert_eq!(c["status"], "failed");
    let error = c["error"].as_str().unwrap();
    assert!(
        error.contains("the clean filter `broken` failed on x.dat"),
        "{error}"
    );
    run.assert_stderr("the clean filter `broken` failed on x.dat");
    // Nothing half-written: the candidate branch still points at the base.
    assert_eq!(
        repo.git(&["rev-parse", c["branch"].as_str().unwrap()]),
        repo.git(&["rev-parse", "main"])
    );
    repo.assert_fsck_clean();
    // The agent's work is only in its worktree: the run keeps it, and so does `clean`.
    let wt = std::path::PathBuf::from(c["worktree"].as_str().expect("worktree kept"));
    assert_eq!(std::fs::read_to_string(wt.join("x.dat")).unwrap(), "data\n");
    run.assert_stderr("could not be snapshotted");
    let clean = repo.massgen().args(["clean", "--all"]).run().expect_code(0);
    clean.assert_stderr("kept");
    assert!(wt.join("x.dat").exists());
    repo.git(&["config", "filter.broken.required", "false"]);
    repo.git(&["config", "filter.broken.clean", "cat"]);
    // Once the cause is fixed, `clean` saves the work onto the branch.
    let clean = repo.massgen().args(["clean", "--all"]).run().expect_code(0);
    clean.assert_stderr("saved a's work");
    let branch = c["branch"].as_str().unwrap();
    assert_eq!(repo.git(&["show", &format!("{branch}:x.dat")]), "data");
    repo.massgen()
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert_eq!(repo.worktree_count(), 1);
}

#[test]
fn a_required_process_filter_that_cannot_start_names_file_and_driver() {
    let repo = TestRepo::new();
    repo.git(&[
        "config",
        "filter.lfs.process",
        "git-massgen-no-such-filter filter-process",
    ]);
    repo.git(&["config", "filter.lfs.required", "true"]);
    with_attributes(&repo, "*.bin filter=lfs -text\n");
    let json = repo.run_json(&[], &[("a", "echo data > x.bin")], "write", 1);
    let error = candidate(&json, "a")["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("the clean filter `lfs` failed on x.bin"),
        "{error}"
    );
}

#[test]
fn a_filter_that_is_not_required_and_fails_stores_the_file_as_is_with_a_warning() {
    let repo = TestRepo::new();
    repo.git(&["config", "filter.flaky.clean", "false"]);
    with_attributes(&repo, "*.dat filter=flaky text eol=lf\n");
    let json = repo.run_json(&[], &[("a", "printf 'raw\\r\\n' > x.dat")], "write", 0);
    let c = candidate(&json, "a");
    assert_eq!(c["status"], "done");
    let commit = c["commit"].as_str().unwrap();
    // Like git: the driver is skipped, the other conversions still apply.
    assert_eq!(blob(&repo, &format!("{commit}:x.dat")), b"raw\n");
    let warning = c["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("the clean filter `flaky` failed on x.dat"),
        "{warning}"
    );
}

#[test]
fn symlinks_and_executable_bits_are_kept_under_attributes() {
    let repo = TestRepo::new();
    with_attributes(&repo, "* text=auto\n");
    let body =
        "printf '#!/bin/sh\\r\\necho hi\\r\\n' > tool.sh && chmod +x tool.sh && ln -s calc.sh link";
    let json = repo.run_json(&[], &[("modes", body)], "write", 0);
    let commit = candidate(&json, "modes")["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let tree = repo.git(&["ls-tree", &commit, "tool.sh", "link"]);
    assert!(tree.contains("100755 blob"), "{tree}");
    assert!(tree.contains("120000 blob"), "{tree}");
    assert_eq!(blob(&repo, &format!("{commit}:link")), b"calc.sh");
    assert_eq!(
        blob(&repo, &format!("{commit}:tool.sh")),
        b"#!/bin/sh\necho hi\n"
    );
}

#[test]
fn a_large_file_is_stored_intact() {
    let repo = TestRepo::new();
    let source = repo.scratch("data").join("big.bin");
    // 100 MiB that do not compress to nothing: a repeated 1 MiB pseudo-random block.
    let mut block = vec![0u8; 1024 * 1024];
    let mut x: u32 = 0x9e37_79b9;
    for b in &mut block {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        for _ in 0..100 {
            f.write_all(&block).unwrap();
        }
    }
    let body = format!("cp '{}' big.bin", source.display());
    let json = repo.run_json(&[], &[("big", &body)], "write", 0);
    let c = candidate(&json, "big");
    let commit = c["commit"].as_str().unwrap();
    assert_eq!(
        repo.git(&["cat-file", "-s", &format!("{commit}:big.bin")]),
        (100 * 1024 * 1024).to_string()
    );
    let expected = repo.git(&["hash-object", &source.display().to_string()]);
    assert_eq!(
        repo.git(&["rev-parse", &format!("{commit}:big.bin")]),
        expected
    );
    repo.assert_fsck_clean();
}

/// Whether `git-lfs` can run here; says loudly why a test is skipped when it cannot.
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn git_lfs_available(test: &str) -> bool {
    let found = std::process::Command::new("git-lfs")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED {test}: git-lfs is not on PATH (apt-get install git-lfs)");
    }
    found
}

#[test]
fn git_lfs_files_are_stored_as_pointers_and_merge_leaves_status_clean() {
    if !git_lfs_available("git_lfs_files_are_stored_as_pointers_and_merge_leaves_status_clean") {
        return;
    }
    let repo = TestRepo::new();
    repo.unconfined();
    repo.git(&["lfs", "install", "--local"]);
    repo.write(
        ".gitattributes",
        "*.bin filter=lfs diff=lfs merge=lfs -text\n",
    );
    repo.write("old.bin", "tracked before the run\n");
    repo.commit_all("lfs");
    assert!(
        blob(&repo, "HEAD:old.bin").starts_with(b"version https://git-lfs.github.com/spec/v1"),
        "the test repository itself stores a pointer"
    );
    let seen = repo.root.join("seen.bin");
    let content = "large binary stand-in\n".repeat(1000);
    let body = format!(
        "cp old.bin '{}' && for i in $(seq 1000); do echo 'large binary stand-in'; done > new.bin",
        seen.display()
    );
    let json = repo.run_json(&[], &[("lfs", &body)], "write", 0);
    // The agent saw real content, not a pointer.
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "tracked before the run\n"
    );
    let c = candidate(&json, "lfs");
    assert_eq!(c["status"], "done", "{c}");
    let commit = c["commit"].as_str().unwrap();
    assert_eq!(changed(&repo, commit), "new.bin");
    let pointer = String::from_utf8(blob(&repo, &format!("{commit}:new.bin"))).unwrap();
    assert!(
        pointer.starts_with("version https://git-lfs.github.com/spec/v1\n"),
        "{pointer}"
    );
    let oid = pointer
        .lines()
        .find_map(|l| l.strip_prefix("oid sha256:"))
        .expect("an oid line")
        .to_owned();
    assert!(
        pointer.contains(&format!("size {}\n", content.len())),
        "{pointer}"
    );
    let object = repo
        .path
        .join(".git/lfs/objects")
        .join(&oid[..2])
        .join(&oid[2..4])
        .join(&oid);
    assert_eq!(std::fs::read_to_string(&object).unwrap(), content);

    merge_latest(&repo);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(repo.read("new.bin"), content);
    repo.assert_fsck_clean();
}
