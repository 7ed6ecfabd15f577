//! Command judges: a program that reads the ballot from the JSON file named by
//! `MASSGEN_CANDIDATES` and prints `{"vote": "<label>", "reason": "..."}` on stdout.
//!
//! An answer that is not such an object, or names no candidate, is retried with
//! `MASSGEN_ATTEMPT` and `MASSGEN_FEEDBACK` (what was wrong) set, up to the attempts allowed;
//! then the judge abstains. A judge that exits non-zero is asked again too; one that times
//! out or is interrupted is not.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::{Ballot, Judge, Setting, Verdict, View, check_vote};
use crate::agent::process::{self, Job, leftovers};
use crate::ask::{self, Asker, Attempt, GaveUp};
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
    let mut room = tempfile::Builder::new();
    let room = room.prefix("massgen-judge-");
    let room = match &setting.remote {
        // A job's node must see it: under the run's judges directory.
        Some(_) => {
            std::fs::create_dir_all(&setting.dir).and_then(|()| room.tempdir_in(&setting.dir))
        }
        None => room.tempdir(),
    };
    let room = match room {
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
    let mut vars: Vec<(String, String)> = env.to_vec();
    vars.extend([
        ("MASSGEN_CANDIDATES".into(), input_s),
        ("MASSGEN_TASK_FILE".into(), task_file),
        ("MASSGEN_RUN".into(), setting.run.clone()),
        ("MASSGEN_JUDGE".into(), judge.name.clone()),
        ("MASSGEN_ROUND".into(), round),
    ]);
    if setting.sandbox.is_some() {
        // `/tmp` is not writable for a confined judge: its room is its temporary directory.
        vars.push(("TMPDIR".into(), room.path().display().to_string()));
    }
    let mut asker = CommandJudge {
        argv: &argv,
        vars,
        room: room.path(),
        logs: &setting.dir,
        stem: &stem,
        sandbox: setting.sandbox.as_ref(),
        remote: setting.remote.as_ref().map(|r| (r, judge.name.as_str())),
        timeout: judge.timeout,
        ballot,
        view,
        cancel,
        warnings: Vec::new(),
    };
    let asked = ask::until_answered(&mut asker, setting.max_attempts).await;
    verdict.attempts = asked.attempts;
    verdict.warnings = asker.warnings;
    match asked.result {
        Ok(vote) => verdict.vote = Some(vote),
        Err(GaveUp::Failed(why)) => verdict.abstained = Some(why),
        Err(GaveUp::Malformed(last)) => {
            verdict.abstained = Some(format!(
                "no valid vote in {} attempt(s); last: {last}",
                asked.attempts
            ));
        }
    }
    verdict
}

/// One command judge, asked once per attempt with the attempt and the feedback in its
/// environment.
struct CommandJudge<'a> {
    argv: &'a [String],
    /// Its environment, but for `MASSGEN_ATTEMPT`, `MASSGEN_FEEDBACK` and `MASSGEN_ACTIVE`.
    vars: Vec<(String, String)>,
    /// Where it runs: a directory holding only its input.
    room: &'a Path,
    /// Where its output goes, one pair of files per attempt named from `stem`.
    logs: &'a Path,
    stem: &'a str,
    /// How it is confined; it may write `room` and `logs` too.
    sandbox: Option<&'a crate::sandbox::Rules>,
    /// Its Slurm submission, by its name, when judges run as jobs.
    remote: Option<(&'a super::Remote, &'a str)>,
    /// For each attempt.
    timeout: Duration,
    ballot: &'a Ballot,
    view: &'a View,
    cancel: watch::Receiver<bool>,
    /// Processes it left running, for the verdict.
    warnings: Vec<String>,
}

impl Asker for CommandJudge<'_> {
    type Answer = (String, String);

    async fn ask(&mut self, attempt: u32, feedback: &str) -> Attempt<(String, String)> {
        self.once(attempt, feedback)
            .await
            .unwrap_or_else(Attempt::Failed)
    }
}

impl CommandJudge<'_> {
    /// One attempt; `Err` when it failed.
    async fn once(
        &mut self,
        attempt: u32,
        feedback: &str,
    ) -> Result<Attempt<(String, String)>, String> {
        let out_path = self.logs.join(format!("{}.a{attempt}.stdout", self.stem));
        let err_path = self.logs.join(format!("{}.a{attempt}.stderr", self.stem));
        let (stdout, stderr) = std::fs::File::create(&out_path)
            .and_then(|o| Ok((o, std::fs::File::create(&err_path)?)))
            .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        let mut env = self.vars.clone();
        env.extend([
            ("MASSGEN_ATTEMPT".into(), attempt.to_string()),
            ("MASSGEN_FEEDBACK".into(), feedback.to_owned()),
            ("MASSGEN_ACTIVE".into(), "1".into()),
        ]);
        let job = Job {
            argv: self.argv,
            cwd: self.room,
            env,
            env_remove: GIT_REPO_ENV,
            stdout,
            stderr,
            timeout: self.timeout,
            watch: None,
            sandbox: self.sandbox.map(|rules| {
                let mut rules = rules.clone();
                rules
                    .write
                    .extend([self.room.to_path_buf(), self.logs.to_path_buf()]);
                rules
            }),
            remote: self.remote.and_then(|(make, name)| (make.0)(name)),
        };
        // The supervision enforces the time limit and cancellation, and kills the judge's
        // process group.
        let finished = process::supervise(job, self.cancel.clone(), |_| {})
            .await
            .map_err(|e| format!("cannot start `{}`: {e}", self.argv[0]))?;
        self.warnings
            .extend(leftovers::describe(&finished.leftovers, "the judge"));
        if finished.cancelled || finished.timed_out {
            return Err(finished.describe());
        }
        let answer = if finished.success() {
            let output = std::fs::read_to_string(&out_path).unwrap_or_default();
            ask::json::in_output(&output)
                .map_err(|e| e.describe("the judge"))
                .and_then(|v| check_vote(self.view, self.ballot, &v))
        } else {
            // Unlike a reviewer, a judge that exits non-zero is asked again.
            let said =
                ask::json::last_line(&std::fs::read_to_string(&err_path).unwrap_or_default());
            Err(format!(
                "the judge {}{}",
                finished.describe(),
                said.map_or_else(String::new, |l| format!(": {l}"))
            ))
        };
        Ok(Attempt::checked(answer))
    }
}
