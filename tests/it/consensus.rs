//! Judges' votes, refinement rounds (`run --rounds`) and multi-turn runs (`run --continue`),
//! with real git, command agents and command judges.

use serde_json::Value;

use crate::support::{BREAK, FIX, TestRepo, actions, candidate};

/// A command judge (POSIX sh and awk): keeps a copy of its input in `$CAPTURE`, logs each
/// attempt, and votes for the candidate whose patch contains `$WANT`.
pub const JUDGE: &str = r#"
cp "$MASSGEN_CANDIDATES" "$CAPTURE/$MASSGEN_JUDGE.json"
echo "attempt $MASSGEN_ATTEMPT feedback=$MASSGEN_FEEDBACK" >> "$CAPTURE/$MASSGEN_JUDGE.log"
ls -a .. > "$CAPTURE/$MASSGEN_JUDGE.around"
label=$(awk -v want="$WANT" '
  /"label":/ { l = $0; sub(/.*"label": "/, "", l); sub(/".*/, "", l) }
  /"patch":/ && index($0, want) { print l; exit }' "$MASSGEN_CANDIDATES")
printf '{"vote": "%s", "reason": "it has %s"}\n' "$label" "$WANT"
"#;

/// `[[judges]]` running [`JUDGE`] from `script`, voting for `want`.
pub fn judge_toml(
    name: &str,
    script: &std::path::Path,
    capture: &std::path::Path,
    want: &str,
) -> String {
    format!(
        "[[judges]]\nname = \"{name}\"\nkind = \"command\"\ncommand = [\"sh\", \"{}\"]\nenv = {{ WANT = \"{want}\", CAPTURE = \"{}\" }}\n",
        script.display(),
        capture.display()
    )
}

/// An agent writing `answer.txt` with `answer`, padded so that its change has `lines` lines.
fn answer(answer: &str, lines: usize) -> String {
    let mut body = format!("echo 'answer={answer}' > answer.txt");
    for i in 1..lines {
        body.push_str(&format!("; echo 'pad {i}' >> answer.txt"));
    }
    body
}

fn votes(json: &Value) -> Vec<(String, String, String, u64)> {
    json["votes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["judge"].as_str().unwrap().to_owned(),
                v["candidate"].as_str().unwrap().to_owned(),
                v["by"].as_str().unwrap().to_owned(),
                v["round"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn judges_decide_when_tests_cannot_and_never_see_agent_names() {
    let repo = TestRepo::new();
    // The judges write what they were given where the test looks: unconfined.
    repo.unconfined();
    let capture = repo.scratch("capture");
    let script = repo.script("judge.sh", JUDGE);
    let mut config = String::new();
    for name in ["j1", "j2"] {
        config.push_str(&judge_toml(name, &script, &capture, "answer=42"));
    }
    config.push_str(&judge_toml("j3", &script, &capture, "answer=7"));
    repo.configure(&config);
    // No test command: the smallest change and the first in configuration order lose to
    // the one the judges prefer.
    let json = repo.run_json(
        &[],
        &[
            ("alice-agent", &answer("7", 1)),
            ("bob-agent", &answer("13", 1)),
            ("carol-agent", &answer("42", 3)),
        ],
        "compute the answer",
        0,
    );
    assert_eq!(json["winner"], "carol-agent", "{}", json["reason"]);
    let reason = json["reason"].as_str().unwrap();
    assert!(reason.contains("more votes (2 vs 1)"), "{reason}");
    assert!(
        reason
            .contains("votes: 2 of 3 for it (j1: \"it has answer=42\"; j2: \"it has answer=42\")"),
        "{reason}"
    );
    let mut got = votes(&json);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("j1".into(), "carol-agent".into(), "judge".into(), 1),
            ("j2".into(), "carol-agent".into(), "judge".into(), 1),
            ("j3".into(), "alice-agent".into(), "judge".into(), 1),
        ]
    );
    assert_eq!(candidate(&json, "carol-agent")["votes"], 2);
    assert_eq!(candidate(&json, "bob-agent")["votes"], 0);
    // What each judge read: the task, three anonymous candidates with their diffs and
    // sizes, and no agent name anywhere.
    for name in ["j1", "j2", "j3"] {
        let input = std::fs::read_to_string(capture.join(format!("{name}.json"))).unwrap();
        for agent in ["alice", "bob", "carol"] {
            assert!(!input.contains(agent), "{name} saw {agent}: {input}");
        }
        let input: Value = serde_json::from_str(&input).unwrap();
        assert_eq!(input["task"], "compute the answer");
        let cands = input["candidates"].as_array().unwrap();
        let labels: Vec<&str> = cands.iter().map(|c| c["label"].as_str().unwrap()).collect();
        assert_eq!(labels, ["A", "B", "C"]);
        for c in cands {
            assert_eq!(c["files"], serde_json::json!(["answer.txt"]));
            assert!(c["patch"].as_str().unwrap().contains("+answer="), "{c}");
            assert!(c["tests"].is_null());
        }
    }
    // Judges work where nothing names the agents (not in the run's directory).
    let around = std::fs::read_to_string(capture.join("j1.around")).unwrap();
    assert!(
        !around.contains("state.json") && !around.contains("patches"),
        "{around}"
    );
    // The ranking table shows the votes.
    let shown = repo
        .massgen()
        .args(["status", json["run"].as_str().unwrap()])
        .run()
        .expect_code(0);
    shown.assert_stdout("votes");
    shown.assert_stdout("vote (turn 1, round 1): judge j1 for carol-agent: it has answer=42");
}

#[test]
fn judges_are_asked_only_when_tests_leave_a_tie_unless_always() {
    let repo = TestRepo::new();
    // The judges write what they were given where the test looks: unconfined.
    repo.unconfined();
    let capture = repo.scratch("capture");
    let script = repo.script("judge.sh", JUDGE);
    // The judge prefers the broken candidate: tests must still win.
    repo.configure(&judge_toml("j1", &script, &capture, "nothing matches this"));
    let json = repo.run_json(
        &["--test", "sh test.sh"],
        &[("good", FIX), ("bad", BREAK)],
        "fix add",
        0,
    );
    assert_eq!(json["winner"], "good");
    assert!(json["votes"].as_array().unwrap().is_empty());
    assert!(!capture.join("j1.log").exists(), "the judge was asked");

    repo.write(
        ".massgen/config.toml",
        &format!(
            "[judging]\nwhen = \"always\"\n{}",
            judge_toml("j1", &script, &capture, "mul) echo $(( $2 + $3")
        ),
    );
    repo.commit_all("always judge");
    let json = repo.run_json(
        &["--test", "sh test.sh"],
        &[("good", FIX), ("bad", BREAK)],
        "fix add",
        0,
    );
    assert!(capture.join("j1.log").exists(), "the judge was not asked");
    assert_eq!(json["winner"], "good", "{}", json["reason"]);
    assert_eq!(json["votes"].as_array().unwrap().len(), 1);
}

#[test]
fn invalid_judge_output_is_retried_then_the_judge_abstains() {
    let repo = TestRepo::new();
    // The judges write what they were given where the test looks: unconfined.
    repo.unconfined();
    let capture = repo.scratch("capture");
    let flaky = repo.script(
        "flaky.sh",
        &format!(
            r#"echo "attempt $MASSGEN_ATTEMPT feedback=$MASSGEN_FEEDBACK" >> "{c}/flaky.log"
if [ "$MASSGEN_ATTEMPT" = 1 ]; then echo "I would pick the second one"; exit 0; fi
label=$(awk '/"label":/ {{ l = $0; sub(/.*"label": "/, "", l); sub(/".*/, "", l) }}
  /"patch":/ && index($0, "answer=2") {{ print l; exit }}' "$MASSGEN_CANDIDATES")
echo "{{\"vote\": \"$label\", \"reason\": \"second try\"}}""#,
            c = capture.display()
        ),
    );
    let broken = repo.script(
        "broken.sh",
        &format!(
            r#"echo "attempt $MASSGEN_ATTEMPT" >> "{c}/broken.log"
echo '{{"vote": "Z", "reason": "no such candidate"}}'"#,
            c = capture.display()
        ),
    );
    let crashing = repo.script("crash.sh", "echo 'judge crashed' >&2; exit 4");
    repo.configure(&format!(
        "[judging]\nmax_attempts = 3\n[[judges]]\nname = \"flaky\"\ncommand = [\"sh\", \"{}\"]\n[[judges]]\nname = \"broken\"\ncommand = [\"sh\", \"{}\"]\n[[judges]]\nname = \"crash\"\ncommand = [\"sh\", \"{}\"]\n",
        flaky.display(),
        broken.display(),
        crashing.display()
    ));
    let json = repo.run_json(
        &[],
        &[("one", &answer("1", 1)), ("two", &answer("2", 1))],
        "answer",
        0,
    );
    assert_eq!(json["winner"], "two", "{}", json["reason"]);
    assert_eq!(
        votes(&json),
        vec![("flaky".into(), "two".into(), "judge".into(), 1)]
    );
    let log = std::fs::read_to_string(capture.join("flaky.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(lines[0], "attempt 1 feedback=");
    assert!(
        lines[1].starts_with("attempt 2 feedback=the output is not a JSON object"),
        "{log}"
    );
    let broken_log = std::fs::read_to_string(capture.join("broken.log")).unwrap();
    assert_eq!(broken_log.lines().count(), 3, "{broken_log}");
    let abstentions = json["abstentions"].as_array().unwrap();
    assert_eq!(abstentions.len(), 2, "{abstentions:?}");
    let why = |judge: &str| {
        abstentions
            .iter()
            .find(|a| a["judge"] == judge)
            .unwrap_or_else(|| panic!("{judge} did not abstain"))["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        why("broken").contains("no valid vote in 3 attempt(s)")
            && why("broken").contains("\"Z\" is not a candidate; vote for one of A, B"),
        "{}",
        why("broken")
    );
    assert!(why("crash").contains("judge crashed"), "{}", why("crash"));
}

#[test]
fn a_vote_tie_is_broken_by_configuration_order_and_says_so() {
    for (first, second) in [("left", "right"), ("right", "left")] {
        let repo = TestRepo::new();
        let capture = repo.scratch("capture");
        let script = repo.script("judge.sh", JUDGE);
        repo.configure(&format!(
            "{}{}",
            judge_toml("j1", &script, &capture, "answer=left"),
            judge_toml("j2", &script, &capture, "answer=right")
        ));
        let agents = [(first, answer(first, 1)), (second, answer(second, 1))];
        let json = repo.run_json(
            &[],
            &[(agents[0].0, &agents[0].1), (agents[1].0, &agents[1].1)],
            "pick a side",
            0,
        );
        assert_eq!(json["winner"], first, "{}", json["reason"]);
        let reason = json["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!(
                "ties with {second} on tests, votes, agreement and size, and comes first in configuration order"
            )),
            "{reason}"
        );
    }
}

/// A command agent for refinement rounds (POSIX sh and awk). Round 1: `$FIRST`. Later
/// rounds read `$MASSGEN_PEERS`. With `ADOPT=1`, an agent whose own tests fail applies the
/// patch of a peer whose tests pass, and once its own pass it votes (file `$MASSGEN_VOTE`)
/// for that peer; without, it votes for its own candidate.
const REFINER: &str = r#"
echo "round=$MASSGEN_ROUND peers=$MASSGEN_PEERS" >> "$CAPTURE/$MASSGEN_AGENT.log"
if [ "$MASSGEN_ROUND" = 1 ]; then eval "$FIRST"; exit; fi
peers=$(awk '
  /"label":/ { l = $0; sub(/.*"label": "/, "", l); sub(/".*/, "", l); ok = 0 }
  /"patch":/ { p = $0; sub(/.*"patch": "/, "", p); sub(/".*/, "", p) }
  /"ok": true/ { ok = 1 }
  /^      "yours": / { mine = ($0 ~ /true/); print l, p, ok, mine }' "$MASSGEN_PEERS")
mine_ok=$(echo "$peers" | awk '$4 == 1 { print $3 }')
best=$(echo "$peers" | awk '$3 == 1 && $4 == 0 { print $1, $2; exit }')
own=$(echo "$peers" | awk '$4 == 1 { print $1 }')
if [ "$ADOPT" = 1 ] && [ "$mine_ok" != 1 ] && [ -n "$best" ]; then
  git checkout -q "$MASSGEN_BASE" -- calc.sh
  git apply "${best#* }"
  exit
fi
label=$own
[ "$ADOPT" = 1 ] && [ -n "$best" ] && label=${best%% *}
printf '{"vote": "%s", "reason": "round %s: its tests pass"}\n' "$label" "$MASSGEN_ROUND" > "$MASSGEN_VOTE"
"#;

#[test]
fn an_agent_adopts_a_better_peer_in_round_two_and_the_run_converges() {
    let repo = TestRepo::new();
    let capture = repo.scratch("capture");
    let script = repo.script("refiner.sh", REFINER);
    let agent = |name: &str, first: &str, adopt: bool| {
        format!(
            "[[agents]]\nname = \"{name}\"\ncommand = [\"sh\", \"{}\"]\nenv = {{ FIRST = \"{}\", ADOPT = \"{}\", CAPTURE = \"{}\" }}\n",
            script.display(),
            first.replace('\\', "\\\\").replace('"', "\\\""),
            u8::from(adopt),
            capture.display()
        )
    };
    repo.configure(&format!(
        "{}{}",
        agent("good", FIX, false),
        agent("bad", BREAK, true)
    ));
    let json = repo
        .massgen()
        .args([
            "run",
            "--json",
            "--sandbox",
            "off",
            "--rounds",
            "5",
            "--test",
            "sh test.sh",
            "fix add",
        ])
        .expect_json(0);
    assert_eq!(json["rounds"], 3, "{json:#}");
    let turn = &json["turns"][0];
    assert_eq!(turn["rounds"], 3);
    assert_eq!(turn["converged"], true);
    let actions = |agent: &str| actions(&json, agent);
    assert_eq!(actions("good"), ["worked", "voted", "voted"]);
    assert_eq!(actions("bad"), ["worked", "revised", "voted"]);
    // bad's round-2 commit builds on its round-1 commit, and now passes the tests.
    let bad = candidate(&json, "bad");
    let history = bad["history"].as_array().unwrap();
    let r1 = history[0]["commit"].as_str().unwrap();
    let r2 = history[1]["commit"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert_eq!(repo.git(&["rev-parse", &format!("{r2}^")]), r1);
    assert_eq!(bad["commit"], r2);
    assert_eq!(bad["tests"]["failed"], 0);
    assert_eq!(bad["status"], "done");
    // Round 3's votes count: both for good.
    assert_eq!(json["winner"], "good", "{}", json["reason"]);
    let reason = json["reason"].as_str().unwrap();
    assert!(reason.contains("more votes (2 vs 0)"), "{reason}");
    let mut round3: Vec<_> = votes(&json).into_iter().filter(|v| v.3 == 3).collect();
    round3.sort();
    assert_eq!(
        round3,
        vec![
            ("bad".into(), "good".into(), "agent".into(), 3),
            ("good".into(), "good".into(), "agent".into(), 3),
        ]
    );
    // Each agent ran once per round and saw a peers file from round 2 on.
    let log = std::fs::read_to_string(capture.join("bad.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].starts_with("round=1 peers="));
    assert!(lines[1].starts_with("round=2 peers=/"), "{log}");
    // The peers file names no agent.
    let peers_path = lines[1].split("peers=").nth(1).unwrap();
    let peers = std::fs::read_to_string(peers_path).unwrap();
    assert!(
        !peers.contains("good") && !peers.contains("\"bad"),
        "{peers}"
    );
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
}

#[test]
fn rounds_end_when_nothing_changes_and_single_round_runs_are_unchanged() {
    let repo = TestRepo::new();
    // Agents that do their work once and then neither change nor vote.
    let once = "[ \"$MASSGEN_ROUND\" = 1 ] || exit 0; ";
    // The test command leaves a file behind: it must not become part of a candidate.
    let json = repo.run_json(
        &["--rounds", "4", "--test", "date > artefact.txt; sh test.sh"],
        &[
            ("a", &format!("{once}{FIX}")),
            ("b", &format!("{once}{BREAK}")),
        ],
        "fix add",
        0,
    );
    assert_eq!(json["rounds"], 2);
    assert_eq!(json["turns"][0]["converged"], false);
    assert_eq!(json["winner"], "a");
    let history = candidate(&json, "b")["history"].as_array().unwrap().clone();
    assert_eq!(history[1]["action"], "stopped");
    assert_eq!(history[1]["commit"], history[0]["commit"]);
    assert_eq!(actions(&json, "a"), ["worked", "stopped"]);
    let plain = repo.run_json(&[], &[("a", FIX)], "fix add", 0);
    assert_eq!(plain["rounds"], 1);
    assert_eq!(candidate(&plain, "a")["history"][0]["action"], "worked");
}

#[test]
fn continue_builds_on_the_candidates_and_keeps_the_turns() {
    let repo = TestRepo::new();
    let capture = repo.scratch("capture");
    let body = |name: &str, first: &str| {
        format!(
            r#"cp "$MASSGEN_PROMPT_FILE" "{c}/{name}.turn$MASSGEN_TURN.prompt"
if [ "$MASSGEN_TURN" = 1 ]; then {first}; else echo "turn $MASSGEN_TURN by {name}: $MASSGEN_FOLLOW_UP" >> NOTES; fi"#,
            c = capture.display()
        )
    };
    // The agents write what they were told outside their worktrees: unconfined.
    let first = repo.run_json(
        &["--sandbox", "off", "--test", "sh test.sh"],
        &[("good", &body("good", FIX)), ("bad", &body("bad", BREAK))],
        "fix add",
        0,
    );
    let run = first["run"].as_str().unwrap().to_owned();
    let turn1 = |agent: &str| {
        candidate(&first, agent)["commit"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(repo.worktree_count(), 1);

    let second = repo
        .massgen()
        .args([
            "run",
            "--json",
            "--sandbox",
            "off",
            "--continue",
            &run,
            "write NOTES",
        ])
        .expect_json(0);
    assert_eq!(second["run"], run.as_str());
    assert_eq!(second["turns"].as_array().unwrap().len(), 2);
    assert_eq!(second["turns"][1]["prompt"], "write NOTES");
    assert_eq!(second["test_command"], "sh test.sh");
    for agent in ["good", "bad"] {
        let c = candidate(&second, agent);
        let commit = c["commit"].as_str().unwrap();
        assert_eq!(
            repo.git(&["rev-parse", &format!("{commit}^")]),
            turn1(agent)
        );
        assert_eq!(
            repo.git(&["show", &format!("{commit}:NOTES")]),
            format!("turn 2 by {agent}: write NOTES")
        );
        let prompt =
            std::fs::read_to_string(capture.join(format!("{agent}.turn2.prompt"))).unwrap();
        assert!(
            prompt.contains("write NOTES") && prompt.contains("fix add"),
            "{prompt}"
        );
    }
    // good's fix is still there, bad's tests still fail.
    assert_eq!(second["winner"], "good");
    assert_eq!(candidate(&second, "bad")["tests"]["failed"], 2);

    // Only the winner goes on; the other keeps its candidate and is not ranked.
    let third = repo
        .massgen()
        .args([
            "run",
            "--json",
            "--continue",
            &run,
            "--winner-only",
            "more NOTES",
        ])
        .expect_json(0);
    assert_eq!(third["turns"][2]["agents"], serde_json::json!(["good"]));
    assert_eq!(
        candidate(&third, "bad")["commit"],
        candidate(&second, "bad")["commit"]
    );
    assert!(candidate(&third, "bad")["rank"].is_null());
    let good = candidate(&third, "good")["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        repo.git(&["show", &format!("{good}:NOTES")]),
        "turn 2 by good: write NOTES\nturn 3 by good: more NOTES"
    );
    let status = repo.massgen().args(["status", &run]).run().expect_code(0);
    status.assert_stdout("turns:");
    status.assert_stdout("3. more NOTES");
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();

    // The merged result holds every turn's work.
    repo.massgen().args(["merge", &run]).run().expect_code(0);
    assert_eq!(
        repo.read("NOTES"),
        "turn 2 by good: write NOTES\nturn 3 by good: more NOTES\n"
    );
    assert!(repo.read("calc.sh").contains("$2 + $3"));
}

#[test]
fn continue_refuses_what_it_cannot_continue() {
    let repo = TestRepo::new();
    let none = repo
        .massgen()
        .args(["run", "--continue", "nope", "more"])
        .run()
        .expect_code(2);
    none.assert_stderr("no run `nope`");
    let json = repo.run_json(&["--test", "sh test.sh"], &[("bad", BREAK)], "fix add", 1);
    let run = json["run"].as_str().unwrap();
    let refused = repo
        .massgen()
        .args(["run", "--continue", run, "--winner-only", "more"])
        .run()
        .expect_code(1);
    refused.assert_stderr("has no winner to continue from");
    let mixed = repo
        .massgen()
        .args(["run", "--continue", run, "--base", "HEAD", "more"])
        .run()
        .expect_code(2);
    mixed.assert_stderr("--base");
    // A branch deleted by hand: refused, and the run is left as it was.
    repo.git(&["branch", "-D", &format!("massgen/{run}/bad")]);
    let state_before = repo
        .massgen()
        .args(["status", "--json", run])
        .expect_json(0);
    let cleaned = repo
        .massgen()
        .args(["run", "--continue", run, "more"])
        .run()
        .expect_code(2);
    cleaned.assert_stderr("has no candidate branch to continue from");
    let state_after = repo
        .massgen()
        .args(["status", "--json", run])
        .expect_json(0);
    assert_eq!(state_after["turns"], state_before["turns"]);
    assert_eq!(state_after["state"], state_before["state"]);
    assert_eq!(repo.worktree_count(), 1);
    repo.massgen()
        .args(["clean", run, "--force"])
        .run()
        .expect_code(0);
    repo.massgen()
        .args(["run", "--continue", run, "more"])
        .run()
        .expect_code(2)
        .assert_stderr(&format!("no run `{run}`"));
}

mod llm {
    //! LLM judges and the built-in agent in rounds, against the loopback protocol server.

    use serde_json::{Value, json};

    use super::{answer, votes};
    use crate::llm_server::{LlmServer, Mode, Step};
    use crate::support::{TestRepo, actions, candidate};

    const KEY_VAR: &str = "MASSGEN_TEST_KEY";
    const PROVIDERS: [&str; 4] = ["openai", "openai-responses", "anthropic", "gemini"];

    fn vote(label: &str, reason: &str) -> Step {
        Step::Tools(vec![(
            "vote".into(),
            json!({"candidate": label, "reason": reason}),
        )])
    }

    fn judge_toml(name: &str, provider: &str, url: &str) -> String {
        format!(
            "[[judges]]\nname = \"{name}\"\nkind = \"llm\"\nprovider = \"{provider}\"\nmodel = \"test-model\"\nbase_url = \"{url}\"\napi_key_env = \"{KEY_VAR}\"\n"
        )
    }

    /// The agent whose answer follows `## Candidate {label}` in a request body: `names[0]`
    /// wrote `answer=1`, `names[1]` `answer=2`.
    fn agent_behind(body: &str, label: &str, names: [&str; 2]) -> String {
        let at = body
            .find(&format!("## Candidate {label}"))
            .unwrap_or_else(|| panic!("no candidate {label} in {body}"));
        let rest = &body[at..];
        let answer = &rest[rest.find("+answer=").unwrap() + "+answer=".len()..];
        let value: String = answer.chars().take_while(char::is_ascii_digit).collect();
        match value.as_str() {
            "1" => names[0],
            "2" => names[1],
            other => panic!("unknown answer {other}"),
        }
        .to_owned()
    }

    #[test]
    fn llm_judges_vote_through_the_tool_on_every_protocol_and_bad_votes_are_retried() {
        let servers: Vec<LlmServer> = PROVIDERS
            .iter()
            .map(|_| {
                LlmServer::start(Mode::Script(vec![
                    Step::Text("B looks best to me.".into()),
                    vote("Z", "there is no Z"),
                    vote("B", "it is the clearer change"),
                ]))
            })
            .collect();
        let failing = LlmServer::start(Mode::Fail {
            status: 401,
            retry_after: None,
        });
        let repo = TestRepo::new();
        let mut config = String::new();
        for (p, s) in PROVIDERS.iter().zip(&servers) {
            config.push_str(&judge_toml(p, p, &s.url()));
        }
        config.push_str(&judge_toml("locked-out", "anthropic", &failing.url()));
        repo.configure(&config);
        let json = repo
            .massgen()
            .env(KEY_VAR, "sk-judge")
            .env("MASSGEN_RETRY_BASE_MS", "20")
            .args(["run", "--json"])
            .args(["--agent-cmd", &repo.agent("one", &answer("1", 1))])
            .args(["--agent-cmd", &repo.agent("two", &answer("2", 1))])
            .args(["--", "compute the answer"])
            .expect_json(0);
        let got = votes(&json);
        assert_eq!(got.len(), 4, "{got:?}");
        for (p, server) in PROVIDERS.iter().zip(&servers) {
            let requests = server.model_requests();
            assert_eq!(requests.len(), 3, "{p}");
            let first = requests[0].body.to_string();
            assert!(first.contains("\"vote\""), "{p}: the vote tool is offered");
            assert!(first.contains("compute the answer"), "{p}");
            for name in ["\"one\"", "\"two\"", "massgen/"] {
                assert!(!first.contains(name), "{p}: the judge saw {name}");
            }
            assert!(
                requests[1].body.to_string().contains("You did not vote"),
                "{p}"
            );
            assert!(
                requests[2]
                    .body
                    .to_string()
                    .contains("is not a candidate; vote for one of A, B"),
                "{p}"
            );
            let expected = agent_behind(&first, "B", ["one", "two"]);
            let vote = json["votes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["judge"] == *p)
                .unwrap_or_else(|| panic!("{p} did not vote"));
            assert_eq!(vote["candidate"], expected.as_str(), "{p}");
            assert_eq!(vote["reason"], "it is the clearer change");
        }
        let abstained = &json["abstentions"][0];
        assert_eq!(abstained["judge"], "locked-out");
        assert!(
            abstained["reason"].as_str().unwrap().contains("401"),
            "{abstained}"
        );
        // Judges' tokens count in the run's usage: 4 judges x 3 requests x 100 in.
        assert_eq!(json["judge_usage"]["input_tokens"], 1200);
        assert_eq!(json["usage"]["input_tokens"], 1200);
    }

    #[test]
    fn the_built_in_agent_goes_on_from_its_conversation_in_round_two() {
        let server = LlmServer::start(Mode::Script(vec![
            Step::Tools(vec![(
                "write_file".into(),
                json!({"path": "answer.txt", "content": "answer=1\n"}),
            )]),
            Step::Tools(vec![("finish".into(), json!({"summary": "Wrote it."}))]),
            Step::Text("Mine is right.\n\nVOTE: A - it is complete".into()),
        ]));
        let repo = TestRepo::new();
        repo.configure(&format!(
            "[[agents]]\nname = \"model\"\nkind = \"llm\"\nprovider = \"anthropic\"\nmodel = \"test-model\"\nbase_url = \"{}\"\napi_key_env = \"{KEY_VAR}\"\n",
            server.url()
        ));
        let peer = repo.agent("peer", &answer("2", 1));
        let json = repo
            .massgen()
            .env(KEY_VAR, "sk-agent")
            .args(["run", "--json", "--rounds", "2", "--agent", "model"])
            .args(["--agent-cmd", &peer])
            .args(["--", "compute the answer"])
            .expect_json(0);
        let requests = server.model_requests();
        assert_eq!(requests.len(), 3, "{json:#}");
        // Round 2's request carries round 1's conversation, then the peers.
        let round2: Value = requests[2].body.clone();
        let text = round2.to_string();
        assert!(
            text.contains("write_file") && text.contains("Wrote it."),
            "{text}"
        );
        assert!(
            text.contains("Round 2") && text.contains("## Candidate B"),
            "{text}"
        );
        let model = candidate(&json, "model");
        assert_eq!(actions(&json, "model"), ["worked", "voted"], "{model:#}");
        let cast: Vec<_> = votes(&json)
            .into_iter()
            .filter(|v| v.0 == "model")
            .collect();
        assert_eq!(cast.len(), 1, "{json:#}");
        assert_eq!(cast[0].2, "agent");
        assert_eq!(cast[0].3, 2);
        let expected = agent_behind(&text, "A", ["model", "peer"]);
        assert_eq!(cast[0].1, expected);
        assert_eq!(model["usage"]["input_tokens"], 300);
    }
}
