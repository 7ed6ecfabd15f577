#![allow(clippy::print_stdout, clippy::print_stderr)]
//! Engine benchmarks: git-massgen's worktree creation, snapshot, in-memory merge and a whole
//! `run`, each against the `git` command doing the same work, on generated repositories.
//!
//! ```text
//! cargo build --release && cargo bench --bench engine
//! ```
//!
//! Environment:
//! - `MASSGEN_BENCH_SIZES`  comma-separated file counts (default `20000,100000`)
//! - `MASSGEN_BENCH_REPS`   repetitions of the slow measurements (default 3; snapshot and
//!   merge use at least 5)
//! - `MASSGEN_BENCH_BIN`    the `git-massgen` binary (default `target/release/git-massgen`)
//! - `MASSGEN_BENCH_TMPDIR` where the repositories are generated (default: the system's)
//! - `MASSGEN_BENCH_ONLY`   comma-separated subset of
//!   `worktrees,snapshot,merge,guard,overlay,run`
//! - `MASSGEN_BENCH_REPORT` also write the tables to this file
//! - `MASSGEN_BENCH_SNAPSHOT_REFRESH` (diagnostic) refresh the index of ours' snapshot
//!   worktree with `git update-index --refresh` before measuring
//!
//! Every `git` child process (and the library itself) runs in a sealed environment: the
//! benchmark re-executes itself with no `GIT_*` variables from outside, an empty temporary
//! `HOME`, no system or global configuration and a fixed identity.
//!
//! Markdown tables (with every sample) go to stdout, progress to stderr.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use git_massgen::git::worktree::{self, NewWorktree};
use git_massgen::git::{ObjectId, Repo, merge, snapshot};

#[path = "engine/overlay.rs"]
mod overlay;

const SEALED: &str = "MASSGEN_BENCH_SEALED";
const WORKTREES: usize = 8;
const FILES_PER_DIR: usize = 50;
const DIRS_PER_TOP: usize = 20;

fn main() {
    if std::env::var_os(SEALED).is_none() {
        std::process::exit(reexec_sealed());
    }
    let sizes: Vec<usize> = std::env::var("MASSGEN_BENCH_SIZES")
        .unwrap_or_else(|_| "20000,100000".into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("MASSGEN_BENCH_SIZES: `{s}` is not a number"))
        })
        .collect();
    let reps: usize = std::env::var("MASSGEN_BENCH_REPS")
        .ok()
        .map(|s| s.parse().expect("MASSGEN_BENCH_REPS must be a number"))
        .unwrap_or(3)
        .max(1);
    let bin = binary();
    eprintln!("git-massgen binary: {}", bin.display());
    eprintln!(
        "sizes: {sizes:?}, repetitions: {reps} (snapshot/merge: {})",
        reps.max(5)
    );
    eprintln!(
        "machine: {} cpus, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        String::from_utf8_lossy(&git_out(Path::new("."), &["--version"])).trim()
    );

    let mut report = String::new();
    for &n in &sizes {
        let table = bench_size(n, reps, &bin);
        println!("{table}");
        std::io::stdout().flush().ok();
        report.push_str(&table);
        report.push('\n');
    }
    if let Ok(path) = std::env::var("MASSGEN_BENCH_REPORT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
}

/// Runs this same executable again with a sealed git environment and returns its exit code.
fn reexec_sealed() -> i32 {
    let home = tempfile::Builder::new()
        .prefix("massgen-bench-home-")
        .tempdir()
        .expect("cannot create a temporary HOME");
    let exe = std::env::current_exe().expect("cannot find the benchmark executable");
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env(SEALED, "1")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_CACHE_HOME", home.path().join(".cache"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@localhost")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@localhost")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C");
    let status = cmd.status().expect("cannot re-run the benchmark");
    status.code().unwrap_or(1)
}

fn binary() -> PathBuf {
    let bin = std::env::var_os("MASSGEN_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/git-massgen")
        });
    if !bin.is_file() {
        eprintln!(
            "error: {} does not exist.\nBuild it first: `cargo build --release && cargo bench --bench engine` \
             (or point MASSGEN_BENCH_BIN at a git-massgen binary).",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

// ---------------------------------------------------------------------------------------
// git helpers (the environment is already sealed by `reexec_sealed`)

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).stdin(Stdio::null());
    cmd
}

fn check(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out.stdout
}

fn git_out(dir: &Path, args: &[&str]) -> Vec<u8> {
    check(git(dir).args(args))
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// Flushes dirty pages so one measurement does not pay for the previous one's writeback.
fn settle() {
    let _ = Command::new("sync").status();
}

// ---------------------------------------------------------------------------------------
// The generated repository

fn file_path(i: usize) -> String {
    format!(
        "d{:03}/s{:02}/f{:06}.txt",
        i / (FILES_PER_DIR * DIRS_PER_TOP),
        (i / FILES_PER_DIR) % DIRS_PER_TOP,
        i
    )
}

fn file_content(i: usize) -> String {
    let mut s = format!("file {i}\n");
    for line in 0..4 {
        let _ = writeln!(
            s,
            "line {line} of file {i}: the quick brown fox jumps over the lazy dog"
        );
    }
    s
}

/// A repository with `n` small text files in nested directories and one commit, packed like
/// a fresh clone.
fn generate(root: &Path, n: usize) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_out(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..n {
        let rel = file_path(i);
        let path = repo.join(&rel);
        if i % FILES_PER_DIR == 0 {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        }
        std::fs::write(&path, file_content(i)).unwrap();
    }
    std::fs::write(repo.join("README.md"), "generated benchmark repository\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "/target/\n*.log\n").unwrap();
    git_out(&repo, &["add", "-A"]);
    git_out(&repo, &["commit", "-q", "-m", "initial"]);
    git_out(&repo, &["repack", "-a", "-d", "-q"]);
    repo
}

// ---------------------------------------------------------------------------------------
// Measurements

#[derive(Clone, Copy)]
enum Target {
    /// ours / git at most this.
    Ratio(f64),
    /// ours / git at most 1.
    NotSlower,
    /// ours below this many milliseconds.
    UnderMs(f64),
    None,
}

struct Row {
    op: String,
    ours: Vec<Duration>,
    git: Vec<Duration>,
    target: Target,
}

fn median_ms(samples: &[Duration]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn fmt_samples(samples: &[Duration]) -> String {
    let v: Vec<String> = samples
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
        .collect();
    v.join(", ")
}

fn render(n: usize, rows: &[Row], notes: &[String]) -> String {
    let mut out = format!("### {n} files\n\n");
    out.push_str("| operation | ours (median ms) | git (median ms) | ratio | target | met? |\n");
    out.push_str("|---|---:|---:|---:|---|---|\n");
    for r in rows {
        let ours = median_ms(&r.ours);
        let git = median_ms(&r.git);
        let ratio = match (ours, git) {
            (Some(o), Some(g)) if g > 0.0 => Some(o / g),
            _ => None,
        };
        let (target, met) = match r.target {
            Target::Ratio(x) => (format!("≤ {x}× git"), ratio.map(|q| q <= x)),
            Target::NotSlower => ("≤ 1× git".to_owned(), ratio.map(|q| q <= 1.0)),
            Target::UnderMs(ms) => (format!("< {ms:.0} ms"), ours.map(|o| o < ms)),
            Target::None => ("—".to_owned(), None),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.op,
            ours.map_or("—".into(), |v| format!("{v:.1}")),
            git.map_or("—".into(), |v| format!("{v:.1}")),
            ratio.map_or("—".into(), |q| format!("{q:.2}")),
            target,
            match (r.target, met) {
                (Target::None, _) => "—",
                (_, Some(true)) => "yes",
                (_, Some(false)) => "**no**",
                (_, None) => "?",
            }
        );
    }
    out.push_str("\nSamples (ms):\n\n");
    for r in rows {
        let _ = write!(out, "- {}: ours [{}]", r.op, fmt_samples(&r.ours));
        if !r.git.is_empty() {
            let _ = write!(out, "; git [{}]", fmt_samples(&r.git));
        }
        out.push('\n');
    }
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}

/// Whether `MASSGEN_BENCH_ONLY` (comma-separated: worktrees, snapshot, merge, run; default
/// all) selects a measurement.
fn selected(name: &str) -> bool {
    std::env::var("MASSGEN_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == name))
}

fn bench_size(n: usize, reps: usize, bin: &Path) -> String {
    let prefix = format!("massgen-bench-{n}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    let tmp = match std::env::var_os("MASSGEN_BENCH_TMPDIR") {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .expect("cannot create a temporary directory");
    let root = tmp.path();
    eprintln!("\n== {n} files, in {}", root.display());
    let t = Instant::now();
    let repo_path = generate(root, n);
    eprintln!(
        "generated and committed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let repo = Repo::discover(&repo_path).expect("Repo::discover on the generated repository");
    let base = repo.resolve_commit("HEAD").expect("resolve HEAD");

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if selected("worktrees") {
        bench_worktrees(&repo, base, root, reps, &mut rows);
    }
    if selected("snapshot") {
        bench_snapshot(&repo, base, root, n, reps.max(5), &mut rows, &mut notes);
    }
    if selected("merge") {
        bench_merge(&repo, base, n, reps.max(5), &mut rows, &mut notes);
    }
    if selected("guard") {
        bench_guard(&repo, reps.max(5), &mut rows, &mut notes);
    }
    // Before the checkout runs, whose background purge would slow what follows.
    if selected("overlay") {
        overlay::bench_overlay(&repo, base, root, n, bin, reps, &mut rows, &mut notes);
    }
    if selected("run") {
        bench_run(&repo_path, root, bin, reps, &mut rows, &mut notes);
    }
    let table = render(n, &rows, &notes);
    eprintln!("removing {}", root.display());
    table
}

/// Measurement 1, eight worktrees: `create_all` vs `git worktree add` eight times in a row vs
/// eight at once.
fn bench_worktrees(repo: &Repo, base: ObjectId, root: &Path, reps: usize, rows: &mut Vec<Row>) {
    let mut ours = Vec::new();
    let mut ours_remove = Vec::new();
    let mut seq = Vec::new();
    let mut seq_remove = Vec::new();
    let mut par = Vec::new();
    let interrupt = AtomicBool::new(false);
    let paths = |tag: &str, rep: usize| -> Vec<(String, PathBuf)> {
        (0..WORKTREES)
            .map(|k| {
                (
                    format!("massgen/bench-{tag}{rep}/a{k}"),
                    root.join(format!("wt-{tag}{rep}")).join(format!("a{k}")),
                )
            })
            .collect()
    };
    for rep in 0..reps {
        for variant in 0..3 {
            // Rotate the order so no variant always runs right after another.
            match (variant + rep) % 3 {
                0 => {
                    let wts = paths("ours", rep);
                    let items: Vec<NewWorktree> = wts
                        .iter()
                        .map(|(b, p)| NewWorktree {
                            branch: format!("refs/heads/{b}"),
                            path: p.clone(),
                        })
                        .collect();
                    settle();
                    let t = Instant::now();
                    let created = worktree::create_all(repo, base, &items, &interrupt)
                        .expect("worktree::create_all");
                    ours.push(t.elapsed());
                    assert_eq!(created.len(), WORKTREES);
                    assert!(wts[WORKTREES - 1].1.join(file_path(0)).is_file());
                    settle();
                    let t = Instant::now();
                    std::thread::scope(|s| {
                        for (_, p) in &wts {
                            s.spawn(move || worktree::remove(repo, p).expect("worktree::remove"));
                        }
                    });
                    ours_remove.push(t.elapsed());
                    delete_branches(repo, &wts);
                }
                1 => {
                    let wts = paths("gseq", rep);
                    settle();
                    let t = Instant::now();
                    for (b, p) in &wts {
                        check(
                            git(&repo.workdir)
                                .args(["worktree", "add", "-q", "-b", b])
                                .arg(p)
                                .arg("HEAD"),
                        );
                    }
                    seq.push(t.elapsed());
                    assert!(wts[WORKTREES - 1].1.join(file_path(0)).is_file());
                    settle();
                    let t = Instant::now();
                    for (_, p) in &wts {
                        check(
                            git(&repo.workdir)
                                .args(["worktree", "remove", "--force"])
                                .arg(p),
                        );
                    }
                    seq_remove.push(t.elapsed());
                    delete_branches(repo, &wts);
                }
                _ => {
                    let wts = paths("gpar", rep);
                    settle();
                    let t = Instant::now();
                    let children: Vec<_> = wts
                        .iter()
                        .map(|(b, p)| {
                            git(&repo.workdir)
                                .args(["worktree", "add", "-q", "-b", b])
                                .arg(p)
                                .arg("HEAD")
                                .spawn()
                                .expect("spawn git worktree add")
                        })
                        .collect();
                    for mut c in children {
                        let status = c.wait().expect("wait for git worktree add");
                        assert!(
                            status.success(),
                            "parallel git worktree add failed: {status}"
                        );
                    }
                    par.push(t.elapsed());
                    assert!(wts[WORKTREES - 1].1.join(file_path(0)).is_file());
                    for (_, p) in &wts {
                        std::fs::remove_dir_all(p).expect("remove worktree directory");
                    }
                    git_out(&repo.workdir, &["worktree", "prune"]);
                    delete_branches(repo, &wts);
                }
            }
            eprintln!("worktrees: rep {rep} variant {} done", (variant + rep) % 3);
        }
    }
    rows.push(Row {
        op: format!("create {WORKTREES} worktrees (git: sequential `worktree add`)"),
        ours: ours.clone(),
        git: seq,
        target: Target::Ratio(0.5),
    });
    rows.push(Row {
        op: format!("create {WORKTREES} worktrees (git: {WORKTREES} parallel `worktree add`)"),
        ours,
        git: par,
        target: Target::None,
    });
    rows.push(Row {
        op: format!(
            "remove {WORKTREES} worktrees (ours: parallel `worktree::remove`; git: sequential `worktree remove --force`)"
        ),
        ours: ours_remove,
        git: seq_remove,
        target: Target::None,
    });
}

fn delete_branches(repo: &Repo, wts: &[(String, PathBuf)]) {
    for (b, _) in wts {
        repo.delete_ref(&format!("refs/heads/{b}"))
            .expect("delete branch");
    }
}

/// The files `apply_changes` modifies, deletes and adds.
struct Changes {
    modified: Vec<usize>,
    deleted: Vec<usize>,
    added: Vec<String>,
}

fn changes(n: usize) -> Changes {
    let modified: Vec<usize> = (0..20).map(|k| (k * n / 20 + 13) % n).collect();
    let deleted: Vec<usize> = (0..3).map(|k| (k * n / 3 + 31) % n).collect();
    let added = vec![
        format!(
            "{}/new-a.txt",
            Path::new(&file_path(0)).parent().unwrap().display()
        ),
        format!(
            "{}/new-b.txt",
            Path::new(&file_path(n / 2)).parent().unwrap().display()
        ),
        format!(
            "{}/new-c.txt",
            Path::new(&file_path(n - 1)).parent().unwrap().display()
        ),
        "newdir/sub/new-d.txt".to_owned(),
        "newdir/new-e.txt".to_owned(),
    ];
    Changes {
        modified,
        deleted,
        added,
    }
}

fn apply_changes(wt: &Path, c: &Changes) {
    for &i in &c.modified {
        let mut s = file_content(i);
        s.push_str("changed by the benchmark\n");
        std::fs::write(wt.join(file_path(i)), s).unwrap();
    }
    for &i in &c.deleted {
        std::fs::remove_file(wt.join(file_path(i))).unwrap();
    }
    for a in &c.added {
        let p = wt.join(a);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("new file {a}\n")).unwrap();
    }
}

fn undo_changes(wt: &Path, c: &Changes) {
    for &i in c.modified.iter().chain(&c.deleted) {
        std::fs::write(wt.join(file_path(i)), file_content(i)).unwrap();
    }
    for a in &c.added {
        std::fs::remove_file(wt.join(a)).unwrap();
    }
    std::fs::remove_dir_all(wt.join("newdir")).unwrap();
}

/// Measurement 2, snapshot of 20 modified, 3 deleted and 5 new files: `snapshot()` vs
/// `git add -A && git write-tree`.
fn bench_snapshot(
    repo: &Repo,
    base: ObjectId,
    root: &Path,
    n: usize,
    reps: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    // Each side gets its worktree the way it would make it: ours with create_all, git's with
    // `git worktree add`.
    let ours_branch = "refs/heads/massgen/bench-snap/ours".to_owned();
    let ours_wt = root.join("snap-ours");
    worktree::create_all(
        repo,
        base,
        &[NewWorktree {
            branch: ours_branch.clone(),
            path: ours_wt.clone(),
        }],
        &AtomicBool::new(false),
    )
    .expect("worktree::create_all for the snapshot");
    let git_wt = root.join("snap-git");
    check(
        git(&repo.workdir)
            .args(["worktree", "add", "-q", "-b", "massgen/bench-snap/git"])
            .arg(&git_wt)
            .arg("HEAD"),
    );
    if std::env::var_os("MASSGEN_BENCH_SNAPSHOT_REFRESH").is_some() {
        // Diagnostic: give ours an index with fresh stat data (as git's side gets from its
        // `add -A`/`reset` between repetitions), so no entry is racily clean.
        std::thread::sleep(Duration::from_millis(1100));
        git_out(&ours_wt, &["update-index", "-q", "--refresh"]);
        notes.push(
            "snapshot: MASSGEN_BENCH_SNAPSHOT_REFRESH was set (ours' index refreshed by git first)"
                .into(),
        );
    }
    let c = changes(n);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut trees = BTreeMap::new();
    // Files must be older than the index for neither side to see them as racily clean.
    std::thread::sleep(Duration::from_millis(1100));
    for rep in 0..reps {
        for side in 0..2 {
            if (side + rep) % 2 == 0 {
                apply_changes(&ours_wt, &c);
                settle();
                let t = Instant::now();
                let snap =
                    snapshot::snapshot(repo, &ours_wt, &ours_branch, base, "bench snapshot", false)
                        .unwrap_or_else(|e| panic!("snapshot() failed: {e} ({e:?})"));
                ours.push(t.elapsed());
                assert!(snap.changed, "snapshot() saw no change");
                let tree = repo.tree_of(snap.commit).expect("tree of the snapshot");
                trees.insert(format!("ours#{rep}"), tree.to_string());
                undo_changes(&ours_wt, &c);
                repo.set_ref(&ours_branch, base, Some(snap.commit), "bench: reset")
                    .expect("reset the snapshot branch");
            } else {
                apply_changes(&git_wt, &c);
                settle();
                let t = Instant::now();
                git_out(&git_wt, &["add", "-A"]);
                let tree = first_line(&git_out(&git_wt, &["write-tree"]));
                theirs.push(t.elapsed());
                trees.insert(format!("git#{rep}"), tree);
                undo_changes(&git_wt, &c);
                git_out(&git_wt, &["reset", "-q"]);
            }
            std::thread::sleep(Duration::from_millis(1100));
        }
    }
    let distinct: std::collections::BTreeSet<&String> = trees.values().collect();
    if distinct.len() == 1 {
        notes.push(format!(
            "snapshot: `snapshot()` and `git add -A && git write-tree` produced the same tree {} in every repetition",
            distinct.iter().next().unwrap()
        ));
    } else {
        notes.push(format!(
            "snapshot: TREES DIFFER between ours and git: {trees:?}"
        ));
        eprintln!("WARNING: snapshot trees differ: {trees:?}");
    }
    rows.push(Row {
        op: "snapshot 20 modified + 5 new + 3 deleted (git: `add -A && write-tree`)".into(),
        ours,
        git: theirs,
        target: Target::Ratio(0.7),
    });
    worktree::remove(repo, &ours_wt).expect("remove the snapshot worktree");
    check(
        git(&repo.workdir)
            .args(["worktree", "remove", "--force"])
            .arg(&git_wt),
    );
    eprintln!("snapshot done");
}

/// Two commits on top of `base` changing different files in the same directories.
fn diverge(repo: &Repo, base: ObjectId, n: usize) -> (ObjectId, ObjectId) {
    let mut stream = Vec::new();
    for (side, offset) in [("ours", 0usize), ("theirs", 1usize)] {
        let msg = format!("{side} side\n");
        let _ = write!(
            stream,
            "commit refs/heads/bench/merge-{side}\ncommitter Bench <bench@localhost> 1700000000 +0000\ndata {}\n{msg}from {base}\n",
            msg.len()
        );
        for k in 0..20 {
            let i = (k * n / 20 + offset + 101) % n;
            let content = format!("{}{side} changed this\n", file_content(i));
            let _ = write!(
                stream,
                "M 100644 inline {}\ndata {}\n{content}\n",
                file_path(i),
                content.len()
            );
        }
        for k in 0..2 {
            let i = (k * n / 2 + offset + 203) % n;
            let _ = writeln!(stream, "D {}", file_path(i));
            let content = format!("added by {side}\n");
            let _ = write!(
                stream,
                "M 100644 inline {}/{side}-added-{k}.txt\ndata {}\n{content}\n",
                Path::new(&file_path(i)).parent().unwrap().display(),
                content.len()
            );
        }
        stream.push(b'\n');
    }
    let mut child = git(&repo.workdir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn git fast-import");
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    (
        repo.resolve_commit("refs/heads/bench/merge-ours").unwrap(),
        repo.resolve_commit("refs/heads/bench/merge-theirs")
            .unwrap(),
    )
}

/// Measurement 3, merge check: `merge::plan()` vs `git merge-tree --write-tree`.
fn bench_merge(
    repo: &Repo,
    base: ObjectId,
    n: usize,
    reps: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let (a, b) = diverge(repo, base, n);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut trees = std::collections::BTreeSet::new();
    for rep in 0..reps {
        for side in 0..2 {
            if (side + rep) % 2 == 0 {
                let t = Instant::now();
                let plan = merge::plan(repo, a, b)
                    .unwrap_or_else(|e| panic!("merge::plan failed: {e} ({e:?})"));
                ours.push(t.elapsed());
                assert_eq!(plan.kind, merge::MergeKind::Merge);
                assert!(
                    plan.conflicts.is_empty(),
                    "unexpected conflicts: {:?}",
                    plan.conflicts
                );
                trees.insert(plan.tree.to_string());
            } else {
                let (sa, sb) = (a.to_string(), b.to_string());
                let t = Instant::now();
                let out = git_out(&repo.workdir, &["merge-tree", "--write-tree", &sa, &sb]);
                theirs.push(t.elapsed());
                trees.insert(first_line(&out));
            }
        }
    }
    if trees.len() == 1 {
        notes.push(format!(
            "merge: `plan()` and `git merge-tree --write-tree` produced the same tree {}",
            trees.iter().next().unwrap()
        ));
    } else {
        notes.push(format!(
            "merge: TREES DIFFER between ours and git: {trees:?}"
        ));
        eprintln!("WARNING: merge trees differ: {trees:?}");
    }
    rows.push(Row {
        op: "merge check, clean (git: `merge-tree --write-tree`)".into(),
        ours,
        git: theirs,
        target: Target::NotSlower,
    });
    eprintln!("merge done");
}

/// Measurement 5, the breach guard: one fingerprint of the user's repository (taken before
/// and after the agents of every round) vs `git status --porcelain --untracked-files=all`,
/// which looks at the same files.
fn bench_guard(repo: &Repo, reps: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut same = true;
    let mut last = None;
    for rep in 0..reps {
        for side in 0..2 {
            if (side + rep) % 2 == 0 {
                let t = Instant::now();
                let fp = git_massgen::git::guard::take(
                    repo,
                    &git_massgen::git::guard::Ignore {
                        refs: &|_| false,
                        worktrees: &|_, _| false,
                    },
                )
                .unwrap_or_else(|e| panic!("guard::take failed: {e}"));
                ours.push(t.elapsed());
                if let Some(prev) = &last {
                    same &= git_massgen::git::guard::changes(prev, &fp).is_empty();
                }
                last = Some(fp);
            } else {
                let t = Instant::now();
                git_out(
                    &repo.workdir,
                    &["status", "--porcelain", "--untracked-files=all"],
                );
                theirs.push(t.elapsed());
            }
        }
    }
    notes.push(format!(
        "guard: {} fingerprints in a row of an untouched repository differed",
        if same { "no two" } else { "SOME" }
    ));
    rows.push(Row {
        op: "breach guard, one fingerprint (git: `status --untracked-files=all`)".into(),
        ours,
        git: theirs,
        target: Target::Ratio(2.0),
    });
    eprintln!("guard done");
}

/// `git-massgen run --json` in `repo` with [`WORKTREES`] command agents `agent` and the
/// options `extra`, its worktrees under `cache`, its output captured.
fn massgen_run(
    bin: &Path,
    repo: &Path,
    home: &Path,
    cache: &Path,
    agent: &str,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("-q").arg("-C").arg(repo).arg("run").args(extra);
    for k in 1..=WORKTREES {
        cmd.arg("--agent-cmd").arg(format!("a{k}={agent}"));
    }
    cmd.args(["--json", "benchmark task"])
        .env("XDG_CACHE_HOME", cache)
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Measurement 4, `git-massgen run` with eight agents that sleep two seconds (and, for the
/// overhead, eight that exit at once).
fn bench_run(
    repo: &Path,
    root: &Path,
    bin: &Path,
    reps: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    for (label, agent, target) in [
        ("sleep 2", "sleep 2", Target::UnderMs(3000.0)),
        ("true", "true", Target::None),
    ] {
        let mut walls = Vec::new();
        let mut overheads = Vec::new();
        for _ in 0..reps {
            let mut cmd = massgen_run(bin, repo, root, &root.join("xdg-cache"), agent, &[]);
            settle();
            let t = Instant::now();
            let out = cmd.output().expect("cannot run git-massgen");
            let wall = t.elapsed();
            // Exit 1 means "no winner", expected: the agents change nothing.
            if !matches!(out.status.code(), Some(0 | 1)) {
                panic!(
                    "git-massgen run failed ({}): {}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "git-massgen run --json printed no JSON ({e}): {:?}",
                    out.stdout
                )
            });
            let cands = json["candidates"]
                .as_array()
                .expect("candidates in the JSON");
            assert_eq!(cands.len(), WORKTREES, "candidates: {json}");
            let longest = cands
                .iter()
                .map(|c| c["duration_ms"].as_u64().unwrap_or(0))
                .max()
                .unwrap_or(0);
            walls.push(wall);
            overheads.push(wall.saturating_sub(Duration::from_millis(longest)));
            for c in cands {
                if c["worktree"].is_string() {
                    notes.push(format!("run: worktree left behind: {}", c["worktree"]));
                }
            }
        }
        notes.push(format!(
            "run ({label}): wall minus the longest agent's duration_ms = [{}] ms",
            fmt_samples(&overheads)
        ));
        rows.push(Row {
            op: format!("`git-massgen run`, {WORKTREES} agents `{label}` (wall)"),
            ours: walls,
            git: Vec::new(),
            target,
        });
        eprintln!("run ({label}) done");
    }
}
