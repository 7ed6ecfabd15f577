//! What runs teach `refs/massgen/learning`: a record per candidate after every scored
//! run, the merged winner watched in history, a revert turned into a loss and a winner
//! that survived confirmed.

use serde_json::Value;

use crate::support::TestRepo;

const FIX: &str = "sed -i 's/\\$2 - \\$3/$2 + $3/' calc.sh";
const BREAK: &str = "echo 'exit 1' >> calc.sh";

fn machine(repo: &TestRepo) -> Value {
    let id = machine_id(repo);
    let text = repo.git(&[
        "cat-file",
        "-p",
        &format!("refs/massgen/learning:machines/{id}.json"),
    ]);
    serde_json::from_str(&text).unwrap()
}

fn run(repo: &TestRepo) -> Value {
    repo.run_json(
        &["--test", "sh test.sh"],
        &[("fixer", FIX), ("breaker", BREAK)],
        "Fix add in calc.sh",
        0,
    )
}

#[test]
fn a_scored_run_is_recorded_once_per_candidate_under_its_kind() {
    let repo = TestRepo::new();
    let out = run(&repo);
    assert_eq!(out["winner"], "fixer");
    let m = machine(&repo);
    let fixer = &m["agents"]["fixer"]["fix:shell"];
    assert_eq!(fixer["runs"], 1, "{m:#}");
    assert_eq!(fixer["wins"], 1);
    assert_eq!(fixer["tests_known"], 1);
    let breaker = &m["agents"]["breaker"]["fix:shell"];
    assert_eq!(
        (breaker["runs"].as_u64(), breaker["wins"].as_u64()),
        (Some(1), Some(0))
    );
    let run_id = out["run"].as_str().unwrap();
    let id = machine_id(&repo);
    let records = repo.git(&[
        "cat-file",
        "-p",
        &format!("refs/massgen/learning:records/{id}/{run_id}.json"),
    ]);
    let records: Value = serde_json::from_str(&records).unwrap();
    assert_eq!(records["kind"]["class"], "fix");
    assert_eq!(records["candidates"].as_array().unwrap().len(), 2);
    // The ref is a chain of commits, each on the last.
    let before = repo.git(&["rev-parse", "refs/massgen/learning"]);
    run(&repo);
    let after = repo.git(&["rev-parse", "refs/massgen/learning"]);
    assert_eq!(repo.git(&["rev-parse", &format!("{after}^")]), before);
    assert_eq!(machine(&repo)["agents"]["fixer"]["fix:shell"]["runs"], 2);
    // The user's branches and work tree are untouched by learning.
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}

#[test]
fn a_reverted_winner_is_a_loss_and_a_surviving_one_is_confirmed() {
    let repo = TestRepo::new();
    let out = run(&repo);
    let run_id = out["run"].as_str().unwrap().to_owned();
    repo.massgen().args(["merge", &run_id]).run().expect_code(0);
    let m = machine(&repo);
    assert_eq!(m["agents"]["fixer"]["fix:shell"]["merged"], 1, "{m:#}");
    assert_eq!(m["merged"][0]["fate"], "pending");
    // Reverted by hand, the way git does it; `learn update` finds it.
    repo.git(&["revert", "--no-edit", "HEAD"]);
    let found = repo
        .massgen()
        .args(["learn", "update", "--json"])
        .expect_json(0);
    assert_eq!(found["reverted"][0][0], "fixer", "{found}");
    assert_eq!(found["reverted"][0][1], run_id.as_str());
    let stats = repo.massgen().args(["stats", "--json"]).expect_json(0);
    assert!(stats.to_string().contains("\"reverted\":1"), "{stats:#}");
    let m = machine(&repo);
    assert_eq!(m["merged"][0]["fate"], "reverted", "{m:#}");
    let fixer = &m["agents"]["fixer"]["fix:shell"];
    assert_eq!(fixer["reverted"], 1);

    // Merged again and undone by a commit that only says what it does: its patch is the
    // inverse of the winner's.
    let repo = TestRepo::new();
    let out = run(&repo);
    let run_id = out["run"].as_str().unwrap().to_owned();
    repo.massgen().args(["merge", &run_id]).run().expect_code(0);
    repo.write("calc.sh", crate::support::CALC);
    repo.commit_all("go back to the old add");
    run(&repo);
    assert_eq!(machine(&repo)["merged"][0]["fate"], "reverted");

    // One that survives 20 commits is confirmed.
    let repo = TestRepo::new();
    let out = run(&repo);
    let run_id = out["run"].as_str().unwrap().to_owned();
    repo.massgen().args(["merge", &run_id]).run().expect_code(0);
    for i in 0..20 {
        repo.write("NOTES", &format!("note {i}\n"));
        repo.commit_all(&format!("note {i}"));
    }
    run(&repo);
    let m = machine(&repo);
    assert_eq!(m["merged"][0]["fate"], "confirmed", "{m:#}");
    assert_eq!(m["agents"]["fixer"]["fix:shell"]["confirmed"], 1);
}

/// This clone's machine id, kept in its git directory.
fn machine_id(repo: &TestRepo) -> String {
    std::fs::read_to_string(repo.path.join(".git/massgen-machine-id"))
        .unwrap()
        .trim()
        .to_owned()
}
