//! Command judges: a program that reads the ballot from the JSON file named by
//! `MASSGEN_CANDIDATES` and prints `{"vote": "<label>", "reason": "..."}` on stdout.
//!
//! An answer that is not such an object, or names no candidate, is retried with
//! `MASSGEN_ATTEMPT` and `MASSGEN_FEEDBACK` (what was wrong) set, up to the attempts allowed;
//! then the judge abstains.

use serde_json::Value;
use tokio::sync::watch;

use super::{Ballot, Judge, Setting, Verdict, View, check_vote};
use crate::agent::process::{self, Job, leftovers};
use crate::git::cmd::GIT_REPO_ENV;

pub(super) async fn ask(
    judge: &Judge,
    argv: &[String],
    env: &[(String, String)],
    ballot: &Ballot,
    view: &View,
    setting: &Setting,
    cancel: watch::Receiver<bool>,
) -> Verdict {
    let mut verdict = Verdict {
        judge: judge.name.clone(),
        ..Default::default()
    };
    let stem = format!("{}.t{}r{}", judge.name, setting.turn, setting.round);
    // The judge works in a directory of its own holding only its input: the run's
    // directory (state, patches, logs) names the agents.
    let room = match tempfile::Builder::new().prefix("massgen-judge-").tempdir() {
        Ok(room) => room,
        Err(e) => {
            verdict.abstained = Some(format!("cannot create a directory for the judge: {e}"));
            return verdict;
        }
    };
    let input = room.path().join("candidates.json");
    let task_copy = room.path().join("task.txt");
    let text = serde_json::to_vec_pretty(&view.json).expect("a view serializes");
    let written = std::fs::create_dir_all(&setting.dir)
        .and_then(|()| std::fs::write(setting.dir.join(format!("{stem}.candidates.json")), &text))
        .and_then(|()| std::fs::write(&input, &text))
        .and_then(|()| std::fs::write(&task_copy, &ballot.task));
    if let Err(e) = written {
        verdict.abstained = Some(format!("cannot write the judge's input: {e}"));
        return verdict;
    }
    let input_s = input.display().to_string();
    let task_file = task_copy.display().to_string();
    let round = setting.round.to_string();
    let argv: Vec<String> = argv
        .iter()
        .map(|a| {
            crate::agent::fill(
                a,
                &[
                    ("candidates", &input_s),
                    ("task_file", &task_file),
                    ("run", &setting.run),
                    ("round", &round),
                ],
            )
        })
        .collect();
    let mut feedback = String::new();
    for attempt in 1..=setting.max_attempts {
        verdict.attempts = attempt;
        let out_path = setting.dir.join(format!("{stem}.a{attempt}.stdout"));
        let err_path = setting.dir.join(format!("{stem}.a{attempt}.stderr"));
        let files = std::fs::File::create(&out_path)
            .and_then(|o| Ok((o, std::fs::File::create(&err_path)?)));
        let (stdout, stderr) = match files {
            Ok(f) => f,
            Err(e) => {
                verdict.abstained = Some(format!("cannot create {}: {e}", out_path.display()));
                return verdict;
            }
        };
        let mut vars: Vec<(String, String)> = env.to_vec();
        vars.extend([
            ("MASSGEN_CANDIDATES".into(), input_s.clone()),
            ("MASSGEN_TASK_FILE".into(), task_file.clone()),
            ("MASSGEN_RUN".into(), setting.run.clone()),
            ("MASSGEN_JUDGE".into(), judge.name.clone()),
            ("MASSGEN_ROUND".into(), round.clone()),
            ("MASSGEN_ATTEMPT".into(), attempt.to_string()),
            ("MASSGEN_FEEDBACK".into(), feedback.clone()),
            ("MASSGEN_ACTIVE".into(), "1".into()),
        ]);
        let job = Job {
            argv: &argv,
            cwd: room.path(),
            env: vars,
            env_remove: GIT_REPO_ENV,
            stdout,
            stderr,
            timeout: judge.timeout,
            watch: None,
        };
        let finished = match process::supervise(job, cancel.clone(), |_| {}).await {
            Ok(f) => f,
            Err(e) => {
                verdict.abstained = Some(format!("cannot start `{}`: {e}", argv[0]));
                return verdict;
            }
        };
        verdict
            .warnings
            .extend(leftovers::describe(&finished.leftovers, "the judge"));
        if finished.cancelled || finished.timed_out {
            verdict.abstained = Some(finished.describe());
            return verdict;
        }
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        let answer = if finished.success() {
            parse(&output).and_then(|v| check_vote(view, ballot, &v))
        } else {
            Err(format!(
                "the judge {}{}",
                finished.describe(),
                last_line(&std::fs::read_to_string(&err_path).unwrap_or_default())
                    .map_or_else(String::new, |l| format!(": {l}"))
            ))
        };
        match answer {
            Ok(vote) => {
                verdict.vote = Some(vote);
                return verdict;
            }
            Err(why) => feedback = why,
        }
    }
    verdict.abstained = Some(format!(
        "no valid vote in {} attempt(s); last: {feedback}",
        setting.max_attempts
    ));
    verdict
}

/// The whole output as a JSON object, or else its last line that is one.
pub(crate) fn parse(output: &str) -> Result<Value, String> {
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(output.trim()) {
        return Ok(v);
    }
    output
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .find_map(|l| match serde_json::from_str::<Value>(l.trim()) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => None,
        })
        .ok_or_else(|| match last_line(output) {
            Some(l) => format!("the output is not a JSON object ({l:?})"),
            None => "the judge printed nothing".into(),
        })
}

pub(crate) fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_json_line_is_the_answer() {
        assert_eq!(
            parse("thinking...\n{\"vote\": \"A\", \"reason\": \"r\"}\n").unwrap()["vote"],
            "A"
        );
        assert_eq!(
            parse("{\n  \"vote\": \"B\",\n  \"reason\": \"r\"\n}\n").unwrap()["vote"],
            "B"
        );
        assert!(parse("").unwrap_err().contains("nothing"));
        assert!(parse("I pick A").unwrap_err().contains("not a JSON object"));
    }
}
