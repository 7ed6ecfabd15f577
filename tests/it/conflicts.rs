//! `git massgen conflicts RUN`: every pair of candidates, and each against the current
//! branch, merged in memory; which conflict, on which paths.

use crate::support::TestRepo;

#[test]
fn the_matrix_names_conflicting_pairs_and_what_merges_together() {
    let repo = TestRepo::new();
    let json = repo.run_json(
        &["--test", "true"],
        &[
            ("plus", "sed -i 's/$2 - $3/$2 + $3/' calc.sh"),
            ("times", "sed -i 's/$2 - $3/$3 + $2/' calc.sh"),
            ("notes", "echo notes > NOTES"),
            ("idle", "true"),
        ],
        "t",
        0,
    );
    let run = json["run"].as_str().unwrap().to_owned();
    let matrix = repo
        .massgen()
        .args(["conflicts", &run, "--json"])
        .expect_json(0);
    // The agent that changed nothing is left out.
    assert_eq!(
        matrix["candidates"].as_array().unwrap().len(),
        3,
        "{matrix}"
    );
    let pair = |a: &str, b: &str| {
        matrix["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| (p["a"] == a && p["b"] == b) || (p["a"] == b && p["b"] == a))
            .unwrap_or_else(|| panic!("no pair {a} {b}: {matrix}"))["conflicts"]
            .clone()
    };
    assert_eq!(pair("plus", "times"), serde_json::json!(["calc.sh"]));
    assert_eq!(pair("plus", "notes"), serde_json::json!([]));
    assert_eq!(pair("times", "notes"), serde_json::json!([]));
    assert_eq!(matrix["head"], "main");
    for p in matrix["against_head"].as_array().unwrap() {
        assert_eq!(p["conflicts"], serde_json::json!([]), "{matrix}");
    }
    let together = matrix["together"].as_array().unwrap();
    assert_eq!(
        together.len(),
        2,
        "one calc.sh change and the notes: {matrix}"
    );
    assert!(together.contains(&serde_json::json!("notes")));

    // The user changes the same line: every calc.sh candidate now conflicts with main.
    repo.write(
        "calc.sh",
        &repo.read("calc.sh").replace("$2 - $3", "$2 + $3 + 0"),
    );
    repo.commit_all("mine");
    let text = repo
        .massgen()
        .args(["conflicts", &run])
        .run()
        .expect_code(0)
        .stdout;
    assert!(text.contains("plus × main: conflict in calc.sh"), "{text}");
    assert!(text.contains("times × main: conflict in calc.sh"), "{text}");
    assert!(text.contains("notes × main: clean"), "{text}");
    assert!(text.contains("plus × times: conflict in calc.sh"), "{text}");
    // Nothing was written but objects: the user's tree and refs are as they were.
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}
