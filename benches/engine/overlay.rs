//! Measurement 6, copy-on-write worktrees (`--worktree-mode overlay`), each step against
//! what git does for the same in the same run: the shared base checkout (once), eight
//! worktrees made over it, the first `git status` inside one, a snapshot read from the
//! upper directory, and whole runs.

use super::*;
use git_massgen::run::overlay;
use git_massgen::sandbox::Rules;

/// `bin sandbox-exec --overlay … -- argv`: `argv` inside the copy-on-write worktree `wt`.
fn inside(bin: &Path, lower: &Path, wt: &Path, argv: &[&str]) -> Command {
    let rules = Rules {
        overlay: Some(overlay::layers(lower, wt)),
        ..Default::default()
    };
    let mut cmd = Command::new(bin);
    cmd.args(rules.to_args()).args(argv).current_dir(wt);
    cmd
}

/// The files git hashed again (trace2's `refresh/sum_scan`) in the trace at `path`.
fn files_hashed(path: &Path) -> u64 {
    let trace = std::fs::read_to_string(path).unwrap_or_default();
    trace
        .lines()
        .filter(|l| l.contains("\"key\":\"refresh/sum_scan\""))
        .filter_map(|l| {
            l.split("\"value\":\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Disk blocks under `path`, in bytes (links not followed).
fn disk_use(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        total += entries.flatten().map(|e| disk_use(&e.path())).sum::<u64>();
    }
    total
}

/// The shell script that makes [`changes`] (20 modified, 3 deleted, 5 new files).
fn change_script(n: usize) -> String {
    let c = changes(n);
    let mut script = String::from("set -e\n");
    for &i in &c.modified {
        let _ = writeln!(
            script,
            "echo 'changed by the benchmark' >> {}",
            file_path(i)
        );
    }
    for &i in &c.deleted {
        let _ = writeln!(script, "rm {}", file_path(i));
    }
    for a in &c.added {
        let dir = Path::new(a).parent().unwrap().display().to_string();
        let _ = writeln!(script, "mkdir -p {dir} && echo 'new file {a}' > {a}");
    }
    script
}

fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[allow(clippy::too_many_arguments)]
pub(super) fn bench_overlay(
    repo: &Repo,
    base: ObjectId,
    root: &Path,
    n: usize,
    bin: &Path,
    reps: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let probe = Command::new(bin)
        .args(["sandbox-exec", "--overlay-probe"])
        .output()
        .expect("cannot run the probe");
    if !probe.status.success() {
        notes.push(format!(
            "overlay: not measured, overlays do not work here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
        return;
    }
    let cow = root.join("cow");
    let lower = overlay::lower_path(&cow, base);
    settle();
    let t = Instant::now();
    let held = overlay::hold_lower(repo, &lower, base).expect("overlay::hold_lower");
    let made = t.elapsed();
    let git_wt = root.join("cow-git");
    settle();
    let t = Instant::now();
    check(
        git(&repo.workdir)
            .args(["worktree", "add", "-q", "--detach"])
            .arg(&git_wt)
            .arg("HEAD"),
    );
    let one_checkout = t.elapsed();
    rows.push(Row {
        op: "overlay: the shared base checkout, made once (git: `worktree add`)".into(),
        ours: vec![made],
        git: vec![one_checkout],
        target: Target::None,
    });

    // Eight worktrees over it, and the first `git status` inside one (mount included).
    let (mut ready, mut status, mut status_git, mut hashed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    std::thread::sleep(Duration::from_millis(1100));
    for rep in 0..reps {
        let items: Vec<NewWorktree> = (0..WORKTREES)
            .map(|k| NewWorktree {
                branch: format!("refs/heads/massgen/bench-cow{rep}/a{k}"),
                path: cow.join(format!("run{rep}")).join(format!("a{k}")),
            })
            .collect();
        settle();
        let t = Instant::now();
        overlay::create_all(repo, base, &lower, &items).expect("overlay::create_all");
        ready.push(t.elapsed());
        let trace = root.join(format!("cow-trace-{rep}.json"));
        let mut cmd = inside(
            bin,
            &lower,
            &items[0].path,
            &[
                "git",
                "-c",
                "core.checkStat=minimal",
                "status",
                "--porcelain",
            ],
        );
        cmd.env("GIT_TRACE2_EVENT", &trace);
        settle();
        let t = Instant::now();
        let out = run_ok(&mut cmd, "git status inside an overlay");
        status.push(t.elapsed());
        assert!(
            out.stdout.is_empty(),
            "a fresh overlay is not clean: {out:?}"
        );
        hashed.push(files_hashed(&trace));
        for item in &items {
            overlay::discard(repo, &item.path).expect("overlay::discard");
            repo.delete_ref(&item.branch).expect("delete branch");
        }
        settle();
        let t = Instant::now();
        git_out(&git_wt, &["status", "--porcelain"]);
        status_git.push(t.elapsed());
    }
    rows.push(Row {
        op: format!(
            "overlay: {WORKTREES} copy-on-write worktrees ready, base checkout made (git: one `worktree add`)"
        ),
        ours: ready,
        git: vec![one_checkout],
        target: Target::UnderMs(1000.0),
    });
    rows.push(Row {
        op: "overlay: first `git status` in a fresh worktree, mount included (git: in a checkout)"
            .into(),
        ours: status,
        git: status_git,
        target: Target::None,
    });
    notes.push(format!(
        "overlay: files git hashed again in that first `git status` (trace2 refresh/sum_scan): {hashed:?}"
    ));

    bench_overlay_snapshot(repo, base, &cow, &lower, n, bin, reps, rows, notes);
    check(
        git(&repo.workdir)
            .args(["worktree", "remove", "--force"])
            .arg(&git_wt),
    );
    drop(held);
    worktree::remove(repo, &lower).expect("remove the base checkout");
    bench_overlay_run(&repo.workdir, root, bin, reps, rows, notes);
    eprintln!("overlay done");
}

/// The snapshot of 20 modified, 3 deleted and 5 new files from an overlay's upper directory
/// against `git add -A && git write-tree` inside the same overlay.
#[allow(clippy::too_many_arguments)]
fn bench_overlay_snapshot(
    repo: &Repo,
    base: ObjectId,
    cow: &Path,
    lower: &Path,
    n: usize,
    bin: &Path,
    reps: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let branch = "refs/heads/massgen/bench-cow-snap/a".to_owned();
    let wt = cow.join("snap").join("a");
    let item = NewWorktree {
        branch: branch.clone(),
        path: wt.clone(),
    };
    overlay::create_all(repo, base, lower, std::slice::from_ref(&item)).expect("create_all");
    let layers = overlay::layers(lower, &wt);
    let admin = worktree::git_dir_of(&layers.upper).expect("the overlay's registration");
    let lower_index = worktree::git_dir_of(lower)
        .expect("the base checkout's registration")
        .join("index");
    let script = change_script(n);
    // The overlay back to untouched: its upper directory emptied but for its `.git` file, its
    // index the base's again.
    let reset = || {
        git_massgen::sys::overlay::make_work_removable(&layers.work);
        std::fs::remove_dir_all(&layers.work).unwrap();
        std::fs::create_dir_all(&layers.work).unwrap();
        for e in std::fs::read_dir(&layers.upper).unwrap().flatten() {
            if e.file_name() != ".git" {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p).unwrap();
                } else {
                    std::fs::remove_file(&p).unwrap();
                }
            }
        }
        std::fs::copy(&lower_index, admin.join("index")).unwrap();
    };
    let (mut ours, mut theirs, mut trees) = (Vec::new(), Vec::new(), BTreeMap::new());
    let mut upper_use = 0;
    for rep in 0..reps {
        for side in 0..2 {
            run_ok(
                &mut inside(bin, lower, &wt, &["sh", "-c", &script]),
                "changing files inside the overlay",
            );
            settle();
            if (side + rep) % 2 == 0 {
                let t = Instant::now();
                let snap = snapshot::snapshot_overlay(
                    repo,
                    lower,
                    &layers.upper,
                    &branch,
                    base,
                    "bench snapshot",
                    &|| panic!("the benchmark changes no ignore rules"),
                )
                .unwrap_or_else(|e| panic!("snapshot_overlay() failed: {e}"));
                ours.push(t.elapsed());
                let tree = repo.tree_of(snap.commit).expect("tree of the snapshot");
                trees.insert(format!("ours#{rep}"), tree.to_string());
                repo.set_ref(&branch, base, Some(snap.commit), "bench: reset")
                    .expect("reset the snapshot branch");
                upper_use = disk_use(&layers.upper);
            } else {
                let mut cmd = inside(
                    bin,
                    lower,
                    &wt,
                    &["sh", "-c", "git add -A && git write-tree"],
                );
                let t = Instant::now();
                let out = run_ok(&mut cmd, "git add -A && git write-tree inside the overlay");
                theirs.push(t.elapsed());
                trees.insert(format!("git#{rep}"), first_line(&out.stdout));
            }
            reset();
        }
    }
    let distinct: std::collections::BTreeSet<&String> = trees.values().collect();
    notes.push(if distinct.len() == 1 {
        format!(
            "overlay snapshot: `snapshot_overlay()` and git inside the overlay made the same tree {} every time",
            distinct.iter().next().unwrap()
        )
    } else {
        format!("overlay snapshot: TREES DIFFER: {trees:?}")
    });
    notes.push(format!(
        "overlay disk: the base checkout {:.1} MiB, an agent's upper directory with those changes {:.1} KiB",
        disk_use(lower) as f64 / 1048576.0,
        upper_use as f64 / 1024.0
    ));
    rows.push(Row {
        op: "overlay: snapshot 20 modified + 5 new + 3 deleted from the upper directory (git: `add -A && write-tree` inside, mount included)".into(),
        ours,
        git: theirs,
        target: Target::UnderMs(10.0),
    });
    overlay::discard(repo, &wt).expect("overlay::discard");
    repo.delete_ref(&branch).expect("delete branch");
}

/// Whole runs with copy-on-write worktrees: the first (which makes the base checkout), then
/// `reps` more on the same base; the checkout mode's runs are measurement 5's.
fn bench_overlay_run(
    repo: &Path,
    root: &Path,
    bin: &Path,
    reps: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let cache = root.join("xdg-cow");
    let mut walls = Vec::new();
    for _ in 0..=reps {
        let mut cmd = massgen_run(
            bin,
            repo,
            root,
            &cache,
            "sleep 2",
            &["--worktree-mode", "overlay"],
        );
        settle();
        let t = Instant::now();
        let out = cmd.output().expect("cannot run git-massgen");
        walls.push(t.elapsed());
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "git-massgen run --worktree-mode overlay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let first = walls.remove(0);
    rows.push(Row {
        op: format!(
            "`git-massgen run --worktree-mode overlay`, {WORKTREES} agents `sleep 2`, first on its base (wall)"
        ),
        ours: vec![first],
        git: Vec::new(),
        target: Target::None,
    });
    rows.push(Row {
        op: format!(
            "`git-massgen run --worktree-mode overlay`, {WORKTREES} agents `sleep 2`, base checkout made (wall)"
        ),
        ours: walls,
        git: Vec::new(),
        target: Target::UnderMs(3000.0),
    });
    let _ = Command::new(bin)
        .arg("-q")
        .arg("-C")
        .arg(repo)
        .args(["clean", "--all", "--force"])
        .env("XDG_CACHE_HOME", &cache)
        .env("HOME", root)
        .output();
    notes.push("overlay run: measured before the checkout runs of measurement 5".into());
}
