//! Copy-on-write directories through the trampoline: `git-massgen sandbox-exec --overlay
//! LOWER UPPER WORK TARGET -- CMD` shows LOWER at TARGET to CMD, keeps its writes in UPPER,
//! and leaves no mount behind. Skipped loudly where unprivileged overlay mounts do not work.

use std::path::{Path, PathBuf};

use crate::support::Massgen;

/// Whether this machine mounts overlays unprivileged: `sandbox-exec --overlay-probe`.
#[allow(clippy::print_stderr)] // says loudly why a test is skipped
pub fn overlay_works(test: &str) -> bool {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_git-massgen"))
        .args(["sandbox-exec", "--overlay-probe"])
        .output()
        .unwrap();
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "overlay ok" {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: no unprivileged overlay here ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    false
}

/// The four directories of an overlay.
pub struct Layers {
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
}

impl Layers {
    /// LOWER, UPPER, WORK and TARGET under `root`, LOWER holding `a` and `dir/b`.
    pub fn new(root: &Path, upper: &str) -> Layers {
        let lower = root.join("lower");
        std::fs::create_dir_all(lower.join("dir")).unwrap();
        std::fs::write(lower.join("a"), "from lower\n").unwrap();
        std::fs::write(lower.join("dir/b"), "b\n").unwrap();
        Layers::empty(root, upper, &lower)
    }

    /// UPPER, WORK and TARGET under `root`, over the existing directory `lower`.
    pub fn empty(root: &Path, upper: &str, lower: &Path) -> Layers {
        let d = |name: &str| {
            let p = root.join(name);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        Layers {
            lower: lower.to_owned(),
            upper: d(upper),
            work: d(&format!("{upper}.work")),
            target: d(&format!("{upper}.target")),
        }
    }

    /// The trampoline running `script` with `sh -c` in TARGET, through the overlay.
    pub fn sh(&self, root: &Path, script: &str) -> Massgen {
        let mut args: Vec<std::ffi::OsString> = vec!["sandbox-exec".into(), "--overlay".into()];
        for p in [&self.lower, &self.upper, &self.work, &self.target] {
            args.push(p.into());
        }
        args.extend(["--".into(), "sh".into(), "-c".into(), script.into()]);
        Massgen::new(root, &self.target).args(args)
    }
}

fn mounted(target: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let target = target.to_str().unwrap();
    info.lines()
        .any(|l| l.split_whitespace().nth(4) == Some(target))
}

fn is_whiteout(path: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

#[test]
fn a_command_sees_the_lower_tree_and_writes_only_to_the_upper() {
    if !overlay_works("overlay_sees_lower") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = Layers::new(tmp.path(), "upper");
    let run = layers
        .sh(
            tmp.path(),
            "pwd; cat a; cat dir/b; echo changed > a; echo new > c; rm dir/b",
        )
        .run()
        .expect_code(0);
    assert_eq!(
        run.stdout,
        format!("{}\nfrom lower\nb\n", layers.target.display())
    );
    // The lower directory is untouched.
    assert_eq!(
        std::fs::read_to_string(layers.lower.join("a")).unwrap(),
        "from lower\n"
    );
    assert_eq!(
        std::fs::read_to_string(layers.lower.join("dir/b")).unwrap(),
        "b\n"
    );
    assert!(!layers.lower.join("c").exists());
    // Every change is in the upper directory: new content, and a whiteout for the deletion.
    assert_eq!(
        std::fs::read_to_string(layers.upper.join("a")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(layers.upper.join("c")).unwrap(),
        "new\n"
    );
    assert!(is_whiteout(&layers.upper.join("dir/b")));
    // The mount lived in the command's namespace only: from here, TARGET is the empty
    // directory it was.
    assert!(!mounted(&layers.target));
    assert_eq!(std::fs::read_dir(&layers.target).unwrap().count(), 0);
}

#[test]
fn two_overlays_of_one_lower_never_see_each_others_writes() {
    if !overlay_works("overlay_two_uppers") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sync = tmp.path().join("sync");
    std::fs::create_dir_all(&sync).unwrap();
    let script = |me: &str, other: &str| {
        format!(
            "echo {me} > a; echo {me} > only-{me}; touch {s}/{me}; \
             while [ ! -e {s}/{other} ]; do sleep 0.05; done; cat a; ls",
            s = sync.display()
        )
    };
    let one = Layers::new(tmp.path(), "one");
    let two = Layers::new(tmp.path(), "two");
    let first = one.sh(tmp.path(), &script("one", "two")).spawn();
    let second = two.sh(tmp.path(), &script("two", "one")).spawn();
    for (child, me) in [(first, "one"), (second, "two")] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text, format!("{me}\na\ndir\nonly-{me}\n"), "{me}");
    }
    assert_eq!(
        std::fs::read_to_string(one.lower.join("a")).unwrap(),
        "from lower\n"
    );
}

#[test]
fn without_user_namespaces_the_trampoline_and_the_probe_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = Layers::new(tmp.path(), "upper");
    let run = layers
        .sh(tmp.path(), "echo ran")
        .env("MASSGEN_TEST_NO_USERNS", "1")
        .run()
        .expect_code(4);
    assert_eq!(run.stdout, "");
    run.assert_stderr("cannot mount the copy-on-write worktree");
    run.assert_stderr("kernel.unprivileged_userns_clone=1");
    let probe = Massgen::new(tmp.path(), tmp.path())
        .args(["sandbox-exec", "--overlay-probe"])
        .env("MASSGEN_TEST_NO_USERNS", "1")
        .run()
        .expect_code(4);
    probe.assert_stderr("user namespace");
}

#[test]
fn a_path_overlayfs_cannot_carry_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layers = Layers::new(tmp.path(), "upper");
    layers.upper = tmp.path().join("up,per");
    std::fs::create_dir_all(&layers.upper).unwrap();
    let run = layers.sh(tmp.path(), "echo ran").run().expect_code(4);
    run.assert_stderr("up,per");
    run.assert_stderr("use a directory without them");
}

#[test]
fn landlock_rules_apply_to_the_merged_tree() {
    if !overlay_works("overlay_with_landlock") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = Layers::new(tmp.path(), "upper");
    let outside = tmp.path().join("outside");
    let mut args: Vec<std::ffi::OsString> = vec!["sandbox-exec".into(), "--overlay".into()];
    for p in [&layers.lower, &layers.upper, &layers.work, &layers.target] {
        args.push(p.into());
    }
    args.extend([
        "--write".into(),
        layers.target.clone().into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        format!("echo in > a && (echo out > {} || true)", outside.display()).into(),
    ]);
    let run = Massgen::new(tmp.path(), &layers.target)
        .args(args)
        .run()
        .expect_code(0);
    assert_eq!(
        std::fs::read_to_string(layers.upper.join("a")).unwrap(),
        "in\n",
        "{run:?}"
    );
    let landlock = std::process::Command::new(env!("CARGO_BIN_EXE_git-massgen"))
        .args(["sandbox-exec", "--", "--probe"])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&landlock.stdout).starts_with("landlock") {
        assert!(!outside.exists(), "a write outside TARGET got through");
    }
}

/// `doctor` says whether copy-on-write worktrees work here, and why not.
#[test]
fn doctor_says_whether_overlays_are_available() {
    let repo = crate::support::TestRepo::new();
    repo.configure("[[agents]]\nname = \"a\"\ncommand = [\"true\"]\n");
    let text = repo
        .massgen()
        .args(["doctor", "--offline"])
        .run()
        .expect_code(0)
        .stdout;
    let line = text.lines().find(|l| l.starts_with("overlay: ")).unwrap();
    let works = overlay_works("doctor_overlay_line");
    assert_eq!(line.contains("overlay: available"), works, "{text}");
    let json = repo
        .massgen()
        .env("MASSGEN_TEST_NO_USERNS", "1")
        .args(["doctor", "--offline", "--json"])
        .expect_json(0);
    let overlay = json["overlay"].as_str().unwrap();
    assert!(overlay.starts_with("unavailable: "), "{json}");
    assert!(overlay.contains("unprivileged_userns_clone"), "{json}");
}
