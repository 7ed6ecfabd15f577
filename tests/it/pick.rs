//! `run --pick N`: agents picked by their record on the task's kind (Thompson sampling on
//! `refs/massgen/learning`), reproducible with `--seed`, explained on stderr and in the
//! run's JSON; `--rounds auto`.

use git_massgen::learn::{Learning, Machine, store};

use crate::support::{BREAK, FIX, TestRepo, candidate};

/// The calculator's task is `fix:shell` (its files are shell scripts).
const KIND: &str = "fix:shell";

/// Writes counters into the repository's `refs/massgen/learning`, as another machine
/// recorded them: agent, kind, runs, wins.
fn learned(repo: &TestRepo, records: &[(&str, &str, u64, u64)], rounds: Option<(u64, u64)>) {
    let git = git_massgen::git::Repo::discover(&repo.path).expect("the test repository");
    let mut m = Machine {
        machine: "elsewhere".into(),
        ..Machine::default()
    };
    for (agent, kind, runs, wins) in records {
        let c = m.counts_mut(agent, kind);
        c.runs = *runs;
        c.wins = *wins;
    }
    if let Some((runs, won)) = rounds {
        let k = m.kinds.entry(KIND.into()).or_default();
        k.rounds_runs = runs;
        k.revised_won = won;
    }
    let mut other = Learning::default();
    other.machines.insert("elsewhere".into(), m);
    store::update_all(&git, "test: learned elsewhere", |l| {
        l.merge(&other);
        Vec::new()
    })
    .expect("statistics written");
}

const AGENTS: [(&str, &str); 3] = [("good", FIX), ("poor", BREAK), ("meh", "true")];

fn pick_run(repo: &TestRepo, flags: &[&str], code: i32) -> crate::support::Run {
    let mut cmd = repo
        .massgen()
        .args(["run", "--json", "--test", "sh test.sh"]);
    cmd = cmd.args(flags);
    for (name, body) in AGENTS {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, body)]);
    }
    cmd.args(["--", "fix the calculator"])
        .run()
        .expect_code(code)
}

#[test]
fn the_better_agent_is_picked_reproducibly_and_the_run_says_why() {
    let repo = TestRepo::new();
    learned(
        &repo,
        &[
            ("good", KIND, 9, 8),
            ("poor", KIND, 9, 1),
            ("meh", KIND, 9, 3),
            ("meh", "docs:text", 4, 4),
        ],
        None,
    );
    let statistics = repo.git(&["rev-parse", "refs/massgen/learning"]);
    let first = pick_run(&repo, &["--pick", "1", "--seed", "7"], 0);
    let json = first.json();
    assert_eq!(json["winner"], "good");
    assert_eq!(json["candidates"].as_array().unwrap().len(), 1);
    assert_eq!(candidate(&json, "good")["status"], "done");
    let picked = &json["picked"];
    assert_eq!(picked["kind"], KIND);
    assert_eq!(picked["seed"], 7);
    assert_eq!(picked["prefer"], "wins");
    assert_eq!(picked["agents"]["good"]["picked"], true);
    assert_eq!(picked["agents"]["poor"]["picked"], false);
    assert_eq!(picked["agents"]["meh"]["picked"], false);
    assert_eq!(picked["agents"]["good"]["record"]["runs"], 9);
    assert_eq!(picked["agents"]["good"]["record"]["wins"], 8);
    assert_eq!(picked["agents"]["good"]["record"]["basis"], "kind");
    first.assert_stderr("massgen: picking 1 of 3 for fix:shell by Thompson sampling (seed 7;");
    first.assert_stderr("massgen: picked good: 8 of 9 won on fix:shell, sampled 0.");
    first.assert_stderr("massgen: not picked poor: 1 of 9 won on fix:shell, sampled 0.");
    // The run was learned from: the next pick sees good's tenth run.
    let learned = pick_run(&repo, &["--pick", "1", "--seed", "7"], 0).json();
    assert_eq!(learned["picked"]["agents"]["good"]["record"]["runs"], 10);
    // The same seed on the same statistics draws the same numbers.
    repo.git(&["update-ref", "refs/massgen/learning", &statistics]);
    let again = pick_run(&repo, &["--pick", "1", "--seed", "7"], 0).json();
    assert_eq!(again["picked"], json["picked"]);
    // Kept with the run.
    let run = json["run"].as_str().unwrap();
    let status = repo
        .massgen()
        .args(["status", "--json", run])
        .expect_json(0);
    assert_eq!(status["picked"], json["picked"]);
    // Only the picked agent's branch was made.
    assert!(repo.massgen_branches().iter().all(|b| b.ends_with("/good")));
    repo.assert_fsck_clean();
}

#[test]
fn without_a_record_on_the_kind_the_overall_one_counts_and_a_seed_is_chosen() {
    let repo = TestRepo::new();
    learned(&repo, &[("good", "feature:rust", 5, 3)], None);
    // The seed is random: whether a picked agent fixes the calculator is not the point.
    let mut cmd = repo
        .massgen()
        .args(["run", "--json", "--pick", "2", "--prefer", "cheap"]);
    for (name, body) in AGENTS {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, body)]);
    }
    let run = cmd.args(["--", "fix the calculator"]).run();
    run.assert_stderr("good: no record on fix:shell; overall 3 of 5, sampled 0.");
    run.assert_stderr(": no record yet, sampled 0.");
    run.assert_stderr("(assumed)");
    let json = run.json();
    let seed = json["picked"]["seed"].as_u64().expect("a seed");
    run.assert_stderr(&format!("--seed {seed} picks the same"));
    assert_eq!(json["picked"]["prefer"], "cheap");
    assert_eq!(json["candidates"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_picks_are_usage_errors_with_a_hint() {
    let repo = TestRepo::new();
    let none = pick_run(&repo, &["--pick", "0"], 2);
    none.assert_stderr("--pick 0 would run no agent");
    none.assert_stderr("hint: pick from 1 to 3");
    let many = pick_run(&repo, &["--pick", "4"], 2);
    many.assert_stderr("--pick 4, but only 3 agents would run: good, poor, meh");
    many.assert_stderr("hint:");
    let prefer = pick_run(&repo, &["--pick", "1", "--prefer", "fast"], 2);
    prefer.assert_stderr("invalid value 'fast'");
    let rounds = pick_run(&repo, &["--rounds", "often"], 2);
    rounds.assert_stderr("expected a number from 1 to 20, or auto");
    assert!(repo.massgen_branches().is_empty());
}

#[test]
fn configured_pick_applies_when_more_agents_would_run_and_rounds_auto_says_why() {
    let repo = TestRepo::new();
    let mut config = String::from("[run]\npick = 2\n");
    for (name, body) in AGENTS {
        let script = repo.script(&format!("{name}.sh"), body);
        config.push_str(&format!(
            "[[agents]]\nname = \"{name}\"\ncommand = [\"sh\", \"{}\"]\n",
            script.display()
        ));
    }
    repo.configure(&config);
    learned(&repo, &[("good", KIND, 9, 8)], Some((4, 2)));
    let run = repo
        .massgen()
        .args(["run", "--json", "--test", "sh test.sh", "--rounds", "auto"])
        .args(["--seed", "3", "--", "fix the calculator"])
        .run()
        .expect_code(0);
    run.assert_stderr("massgen: --rounds auto: 2 rounds: a revised candidate won 2 of 4 runs with rounds on fix:shell");
    run.assert_stderr("massgen: picking 2 of 3");
    let json = run.json();
    assert_eq!(json["candidates"].as_array().unwrap().len(), 2);
    assert_eq!(json["picked"]["seed"], 3);
    // Naming two agents leaves nothing to pick: both run, nothing said.
    let two = repo
        .massgen()
        .args(["run", "--json", "--agent", "good", "--agent", "meh"])
        .args(["--test", "sh test.sh", "--", "fix the calculator"])
        .run()
        .expect_code(0);
    assert!(!two.stderr.contains("picking"), "{}", two.stderr);
    assert!(two.json().get("picked").is_none());
}

#[test]
fn rounds_auto_without_data_runs_one_round() {
    let repo = TestRepo::new();
    let run = repo
        .massgen()
        .args(["run", "--json", "--rounds", "auto"])
        .args(["--agent-cmd", &repo.agent("good", FIX)])
        .args(["--", "fix the calculator"])
        .run()
        .expect_code(0);
    run.assert_stderr("massgen: --rounds auto: 1 round: no run with rounds on fix:shell yet");
    assert_eq!(run.json()["rounds"], 1);
}

#[test]
fn git_config_massgen_pick_picks_like_run_pick() {
    let repo = TestRepo::new();
    learned(&repo, &[("good", KIND, 9, 8), ("poor", KIND, 9, 1)], None);
    repo.git(&["config", "massgen.pick", "1"]);
    let json = pick_run(&repo, &["--seed", "3"], 0).json();
    assert_eq!(json["candidates"].as_array().unwrap().len(), 1, "{json:#}");
    assert_eq!(json["picked"]["seed"], 3);
    repo.git(&["config", "massgen.pick", "none"]);
    let run = pick_run(&repo, &[], 2);
    run.assert_stderr("massgen.pick");
}
