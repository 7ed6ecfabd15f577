//! Copy-on-write clones of `[worktree] clone` directories, on a real XFS file system: a
//! loop-mounted image made in the test (root, `mkfs.xfs`; skipped loudly elsewhere). The
//! clones share their data with the user's copy, and a write in one worktree shows nowhere
//! else.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{Massgen, TestRepo, candidate, seal};

/// An XFS image mounted at a directory, unmounted when dropped.
struct Xfs {
    mount: PathBuf,
}

impl Xfs {
    fn mount(image: &Path, mount: &Path, size_mb: u64) -> Result<Xfs, String> {
        let file = std::fs::File::create(image).map_err(|e| e.to_string())?;
        file.set_len(size_mb << 20).map_err(|e| e.to_string())?;
        let ok = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(Command::new("mkfs.xfs").args(["-q", "-f"]).arg(image)) {
            return Err("mkfs.xfs is not available (Debian: xfsprogs)".into());
        }
        std::fs::create_dir_all(mount).map_err(|e| e.to_string())?;
        if !ok(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(mount))
        {
            return Err("cannot loop-mount an image here (not root?)".into());
        }
        Ok(Xfs {
            mount: mount.to_owned(),
        })
    }

    fn free(&self) -> u64 {
        let fs = nix::sys::statvfs::statvfs(&self.mount).unwrap();
        fs.blocks_available() * fs.fragment_size()
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

fn git(dir: &Path, root: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    seal(&mut cmd, root);
    let out = cmd.current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn cloned_dependency_trees_share_extents_on_xfs() {
    let tmp = TestRepo::new();
    let xfs = match Xfs::mount(&tmp.root.join("xfs.img"), &tmp.root.join("xfs"), 400) {
        Ok(xfs) => xfs,
        Err(why) => {
            eprintln!("SKIPPED cloned_dependency_trees_share_extents_on_xfs: {why}");
            return;
        }
    };
    let proj = xfs.mount.join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    git(&proj, &tmp.root, &["init", "-q", "--initial-branch=main"]);
    std::fs::write(proj.join(".gitignore"), "deps/\n").unwrap();
    std::fs::create_dir_all(proj.join(".massgen")).unwrap();
    std::fs::write(
        proj.join(".massgen/config.toml"),
        "[run]\nworktree_root = \".massgen/worktrees\"\n[worktree]\nclone = [\"deps\"]\n",
    )
    .unwrap();
    std::fs::write(proj.join(".massgen/.gitignore"), "/runs/\n/worktrees/\n").unwrap();
    git(&proj, &tmp.root, &["add", "-A"]);
    git(
        &proj,
        &tmp.root,
        &["commit", "-qm", "a project with dependencies"],
    );
    // 32 MiB of dependencies that do not compress.
    const SIZE: u64 = 32 << 20;
    std::fs::create_dir_all(proj.join("deps/lib")).unwrap();
    let mut data = vec![0u8; SIZE as usize];
    let mut rng = fastrand::Rng::with_seed(7);
    rng.fill(&mut data);
    std::fs::write(proj.join("deps/lib/blob.bin"), &data).unwrap();
    std::fs::write(proj.join("deps/version"), "1\n").unwrap();
    drop(data);
    Command::new("sync").status().unwrap();

    let free_before = xfs.free();
    let mut cmd = Massgen::new(&tmp.root, &proj).args(["run", "--json", "--keep"]);
    let body = "test -s deps/lib/blob.bin && echo ok > saw.txt";
    for agent in ["a", "b", "c", "d"] {
        cmd = cmd.args(["--agent-cmd", &tmp.agent(agent, body)]);
    }
    let json = cmd.args(["--test", "test -s saw.txt", "t"]).expect_json(0);
    Command::new("sync").status().unwrap();
    let grown = free_before.saturating_sub(xfs.free());
    // Four clones of 32 MiB take less than 10% of one copy each.
    assert!(
        grown < 4 * SIZE / 10,
        "the file system lost {grown} bytes for 4 clones of {SIZE}"
    );

    let wt = |agent: &str| PathBuf::from(candidate(&json, agent)["worktree"].as_str().unwrap());
    let log = std::fs::read_to_string(
        proj.join(".massgen/runs")
            .join(json["run"].as_str().unwrap())
            .join("logs/b.setup.log"),
    )
    .unwrap();
    assert!(log.contains("2 of them cloned copy-on-write"), "{log}");
    let frag = Command::new("filefrag")
        .arg("-v")
        .arg(wt("b").join("deps/lib/blob.bin"))
        .output();
    match frag {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("shared"), "extents are shared: {text}");
        }
        _ => eprintln!("filefrag is not available; extents checked by free space only"),
    }
    // A write in one worktree shows neither in another nor in the user's copy.
    std::fs::write(wt("a").join("deps/lib/blob.bin"), b"changed").unwrap();
    let len = |p: PathBuf| std::fs::metadata(p).unwrap().len();
    assert_eq!(len(wt("b").join("deps/lib/blob.bin")), SIZE);
    assert_eq!(len(proj.join("deps/lib/blob.bin")), SIZE);
    let c = candidate(&json, "c");
    assert_eq!(c["tests"]["exit_code"], 0, "{c}");

    Massgen::new(&tmp.root, &proj)
        .args(["clean", "--all", "--force"])
        .run()
        .expect_code(0);
    assert_eq!(len(proj.join("deps/lib/blob.bin")), SIZE);
}
