//! A copy-on-write worktree's tree, read from its overlay's upper directory
//! (`git::overlay_snapshot::tree_from_upper`), is the tree the checkout-mode snapshot
//! records for the same edits.

use std::path::Path;

use git_massgen::git::{Repo, overlay_snapshot::tree_from_upper, snapshot::snapshot};

use crate::overlay::{Layers, overlay_works};
use crate::support::{TestRepo, seal};

/// Every kind of change an agent makes, as one shell script run in the worktree.
const EDITS: &str = "set -e
echo more >> README
echo new > added.txt
rm test.sh
mv calc.sh calc2.sh
chmod +x tool.sh
mkdir -p newdir/sub; echo x > newdir/x; echo y > newdir/sub/y
rm -r lib gone
ln -s README link-new
ln -sfn calc2.sh link-old
echo ignored > debug.log
mkdir build; echo out > build/out.o
echo changed > keep/tracked.log
echo untracked > keep/other.log
rm -r docs; echo now a file > docs
rm notdir; mkdir notdir; echo inside > notdir/f
rm -r over; mkdir over; echo c > over/c
mkdir -p ignored-dir/deep; echo z > ignored-dir/deep/z
echo through the filter > shout.up
printf 'c\\r\\n' >> old.crlf
printf 'x\\r\\ny\\r\\n' > new.crlf
";

fn base_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("tool.sh", "#!/bin/sh\n");
    repo.write("lib/a.txt", "a\n");
    repo.write("lib/b.txt", "b\n");
    repo.write("gone/x/y", "y\n");
    repo.write("docs/keep.txt", "keep\n");
    repo.write("notdir", "a file\n");
    repo.write("over/a", "a\n");
    repo.write("over/b", "b\n");
    repo.write(".gitignore", "*.log\nbuild/\nignored-dir/\n");
    repo.write(".gitattributes", "*.up filter=upper\n");
    repo.git(&["config", "filter.upper.clean", "tr a-z A-Z"]);
    repo.commit_all("base");
    repo.write("keep/tracked.log", "tracked though ignored\n");
    repo.git(&["add", "-f", "keep/tracked.log"]);
    repo.git(&["commit", "-q", "-m", "a tracked ignored file"]);
    std::os::unix::fs::symlink("README", repo.path.join("link-old")).unwrap();
    repo.commit_all("a link");
    // Committed with CRs before `text=auto` applied to it: git keeps them when it changes.
    repo.write("old.crlf", "a\r\nb\r\n");
    repo.commit_all("a file with CRs");
    repo.write(".gitattributes", "*.up filter=upper\n*.crlf text=auto\n");
    repo.commit_all("text=auto");
    repo
}

fn sh(root: &Path, dir: &Path, script: &str) {
    let mut cmd = std::process::Command::new("sh");
    seal(&mut cmd, root);
    let out = cmd.current_dir(dir).args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn git_status(root: &Path, dir: &Path) -> String {
    let mut cmd = std::process::Command::new("git");
    seal(&mut cmd, root);
    let out = cmd
        .current_dir(dir)
        .args(["status", "--porcelain"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_upper_directory_gives_the_checkout_snapshots_tree() {
    if !overlay_works("overlay_snapshot_equivalence") {
        return;
    }
    let test = base_repo();
    let base = test.git(&["rev-parse", "HEAD"]);
    let wa = test.root.join("wa");
    let wb = test.root.join("wb");
    test.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "cand-a",
        wa.to_str().unwrap(),
    ]);
    test.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "cand-b",
        wb.to_str().unwrap(),
    ]);
    let repo = Repo::discover(&test.path).unwrap();
    let base_id = repo.resolve_commit(&base).unwrap();
    let base_tree = repo.tree_of(base_id).unwrap();

    // Checkout mode: the edits in a worktree of its own, snapshot as runs do.
    sh(&test.root, &wa, EDITS);
    let snap = snapshot(&repo, &wa, "refs/heads/cand-a", base_id, "snapshot", false).unwrap();
    let checkout_tree = repo.tree_of(snap.commit).unwrap();

    // Overlay mode: the same edits through the trampoline over a clean checkout.
    let layers = Layers::empty(&test.root, "upper", &wb);
    layers.sh(&test.root, EDITS).run().expect_code(0);
    let mut warnings = Vec::new();
    let overlay_tree = tree_from_upper(&repo, &wb, base_tree, &layers.upper, &mut warnings)
        .unwrap()
        .expect("no ignore rules changed");

    assert_eq!(
        overlay_tree.to_string(),
        checkout_tree.to_string(),
        "checkout:\n{}\noverlay:\n{}",
        test.git(&["ls-tree", "-r", &checkout_tree.to_string()]),
        test.git(&["ls-tree", "-r", &overlay_tree.to_string()]),
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    // The tree holds what the edits made, checked with git itself.
    let listing = test.git(&["ls-tree", "-r", &overlay_tree.to_string()]);
    for expected in [
        "100755 blob",
        "\ttool.sh",
        "120000 blob",
        "\tlink-new",
        "\tkeep/tracked.log",
        "\tnewdir/sub/y",
        "\tnotdir/f",
        "\tover/c",
        "\tdocs\n",
    ] {
        assert!(
            listing.contains(expected),
            "{expected:?} missing:\n{listing}"
        );
    }
    for absent in [
        "debug.log",
        "build/",
        "other.log",
        "ignored-dir",
        "\tover/a",
        "\tlib/",
        "\tgone/",
        "\ttest.sh",
    ] {
        assert!(!listing.contains(absent), "{absent:?} present:\n{listing}");
    }
    // `text=auto` as git applies it: CRs kept where the known version has them.
    let blob = |path: &str| {
        let out = test.git_output(&["cat-file", "blob", &format!("{overlay_tree}:{path}")]);
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(blob("old.crlf"), "a\r\nb\r\nc\r\n");
    assert_eq!(blob("new.crlf"), "x\ny\n");
    // Clean filters ran as `git add` runs them.
    assert_eq!(
        test.git(&["show", &format!("{overlay_tree}:shout.up")]),
        "THROUGH THE FILTER"
    );
    // The lower checkout was never written.
    assert_eq!(git_status(&test.root, &wb), "");
    assert_ne!(overlay_tree, base_tree);
}

#[test]
fn an_untouched_overlay_gives_the_base_tree() {
    if !overlay_works("overlay_snapshot_untouched") {
        return;
    }
    let test = base_repo();
    let wb = test.root.join("wb");
    test.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "cand-b",
        wb.to_str().unwrap(),
    ]);
    let repo = Repo::discover(&test.path).unwrap();
    let base_tree = repo.tree_of(repo.resolve_commit("HEAD").unwrap()).unwrap();
    let layers = Layers::empty(&test.root, "upper", &wb);
    // Reading, and writing only ignored files, changes nothing.
    layers
        .sh(&test.root, "cat README > /dev/null; echo x > debug.log")
        .run()
        .expect_code(0);
    let tree = tree_from_upper(&repo, &wb, base_tree, &layers.upper, &mut Vec::new())
        .unwrap()
        .unwrap();
    assert_eq!(tree, base_tree);
}
