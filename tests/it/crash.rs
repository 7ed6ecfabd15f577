//! Crashes at exact instants (kill points set with `MASSGEN_TEST_KILL_AT`), then recovery:
//! nothing the user had is lost, and nothing is recorded or merged that an agent did not do.

use crate::support::TestRepo;

/// A repository with `n` more tracked files, committed.
fn big_repo(n: usize) -> TestRepo {
    let repo = TestRepo::new();
    for i in 0..n {
        repo.write(&format!("d{}/f{i}.txt", i % 20), &format!("file {i}\n"));
    }
    repo.commit_all("many files");
    repo
}

fn tracked(repo: &TestRepo) -> usize {
    repo.git(&["ls-files"]).lines().count()
}

/// Runs two do-nothing agents with the process killed at `point`; returns the exit.
fn killed_run(repo: &TestRepo, point: &str) {
    let out = repo
        .massgen()
        .env("MASSGEN_TEST_KILL_AT", point)
        .args([
            "run",
            "--agent-cmd",
            "a=true",
            "--agent-cmd",
            "b=true",
            "task",
        ])
        .run();
    assert_eq!(out.code, None, "killed at {point}: {out:?}");
}

/// After a crash while worktrees were being made, no candidate exists that deletes the
/// files not yet checked out: `merge` finds nothing to merge, `clean` saves nothing and
/// removes everything, and the user's branch keeps all its files.
#[test]
fn a_crash_while_worktrees_are_made_never_yields_a_candidate() {
    for point in ["worktrees-registered", "worktree-checked-out"] {
        let repo = big_repo(400);
        let files = tracked(&repo);
        let head = repo.git(&["rev-parse", "HEAD"]);
        killed_run(&repo, point);

        let merge = repo.massgen().args(["merge", "latest", "a"]).run();
        assert_ne!(merge.code, Some(0), "{point}: {merge:?}");
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), head, "{point}");

        let clean = repo.massgen().args(["clean", "--all"]).run().expect_code(0);
        assert!(!clean.stderr.contains("saved"), "{point}: {}", clean.stderr);
        clean.assert_stderr("never completely set up");
        assert!(repo.massgen_branches().is_empty(), "{point}");
        assert_eq!(repo.worktree_count(), 1, "{point}");
        assert_eq!(tracked(&repo), files, "{point}");
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), head, "{point}");
        assert_eq!(repo.git(&["status", "--porcelain"]), "", "{point}");
        repo.assert_fsck_clean();
    }
}
