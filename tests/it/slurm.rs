//! Agents, setup and tests as jobs of a real one-node Slurm (`scripts/slurm.sh`, started by
//! `.ci/run`, which exports `SLURM_CONF`). Without a cluster these tests say so and skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{FIX, TestRepo, candidate, wait_for};

/// The cluster's configuration when one answers; `None` (said loudly) otherwise.
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn cluster() -> Option<PathBuf> {
    let Some(conf) = std::env::var_os("SLURM_CONF").map(PathBuf::from) else {
        eprintln!(
            "SKIPPED: no Slurm cluster (SLURM_CONF is not set; .ci/run starts one with scripts/slurm.sh)"
        );
        return None;
    };
    let ok = Command::new("sinfo")
        .env("SLURM_CONF", &conf)
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED: the Slurm cluster of {} does not answer",
            conf.display()
        );
        return None;
    }
    Some(conf)
}

/// `scontrol show job -o ID` of the cluster at `conf`.
fn show_job(conf: &PathBuf, id: u64) -> String {
    let out = Command::new("scontrol")
        .env("SLURM_CONF", conf)
        .args(["show", "job", "-o", &id.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ids of the queued or running jobs named `massgen-<run>-…`.
fn live_jobs(conf: &PathBuf, run: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .env("SLURM_CONF", conf)
        .args(["-h", "-o", "%i %j"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("massgen-{run}-")))
        .map(str::to_owned)
        .collect()
}

fn job_id(c: &serde_json::Value) -> u64 {
    c["slurm"]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no Slurm job in {c}"))
}

/// `run --json` of one agent `a` with `body` on the cluster at `conf`.
fn one_agent(conf: &Path, repo: &TestRepo, body: &str) -> crate::support::Massgen {
    repo.massgen().env("SLURM_CONF", conf).args([
        "run",
        "--json",
        "--agent-cmd",
        &repo.agent("a", body),
        "--",
        "t",
    ])
}

/// [`one_agent`] to its end, expecting `code`.
fn run_one(conf: &Path, repo: &TestRepo, body: &str, code: i32) -> serde_json::Value {
    one_agent(conf, repo, body).expect_json(code)
}

fn slurm_config(extra: &str) -> String {
    format!("[executor]\nkind = \"slurm\"\n{extra}\n[score]\ntest = \"sh test.sh\"\n")
}

#[test]
fn four_command_agents_as_jobs_are_ranked_and_the_winner_merged() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.configure(&slurm_config(""));
    let mut cmd = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args(["run", "--json", "--merge"]);
    for (name, body) in [
        ("fix", FIX),
        ("broken", "echo 'exit 1' >> calc.sh"),
        ("nothing", "true"),
        ("fails", "echo half > half.txt; exit 3"),
    ] {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, body)]);
    }
    let run = cmd.args(["--", "fix add"]).expect_json(0);
    assert_eq!(run["winner"], "fix", "{run}");
    assert_eq!(run["merged"], true);
    assert!(repo.read("calc.sh").contains("$2 + $3"));
    let id = run["run"].as_str().unwrap();
    for agent in ["fix", "broken", "nothing", "fails"] {
        let c = candidate(&run, agent);
        let line = show_job(&conf, job_id(c));
        assert!(
            line.contains(&format!("JobName=massgen-{id}-{agent} ")),
            "{line}"
        );
        let want = if agent == "fails" {
            "FAILED"
        } else {
            "COMPLETED"
        };
        assert_eq!(c["slurm"]["state"], want, "{c}");
        assert!(c["slurm"]["node"].is_string(), "{c}");
    }
    // A failing job's exit code reaches its candidate.
    let fails = candidate(&run, "fails");
    assert_eq!(fails["status"], "failed");
    assert_eq!(fails["exit_code"], 3);
    assert!(show_job(&conf, job_id(fails)).contains("ExitCode=3:0"));
    // Only what was named reached the jobs: the agent's environment has no SLURM_CONF
    // of ours beyond Slurm's own, and the user's work tree is untouched but for the merge.
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
    // `status` names each agent's job.
    let status = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args(["status", id])
        .run()
        .expect_code(0);
    status.assert_stdout(&format!(
        "fix: Slurm job {} COMPLETED",
        job_id(candidate(&run, "fix"))
    ));
}

#[test]
fn only_the_named_variables_reach_a_job() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.unconfined();
    repo.configure(&slurm_config(
        "[executor.slurm]\nexport = [\"PASSED_ON\"]\n",
    ));
    let seen = repo.root.join("env.txt");
    let body = format!("env > '{}'", seen.display());
    repo.massgen()
        .env("SLURM_CONF", &conf)
        .env("PASSED_ON", "yes")
        .env("NOT_PASSED", "secret")
        .args([
            "run",
            "--json",
            "--agent-cmd",
            &repo.agent("env", &body),
            "--",
            "t",
        ])
        .expect_json(1);
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(env.contains("PASSED_ON=yes"), "{env}");
    assert!(env.contains("MASSGEN_AGENT=env"), "{env}");
    assert!(env.contains("SLURM_JOB_ID="), "{env}");
    assert!(!env.contains("NOT_PASSED"), "{env}");
}

#[test]
fn a_timeout_cancels_the_job_and_the_candidate_is_timeout() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.configure(&slurm_config(""));
    let run = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args([
            "run",
            "--json",
            "--timeout",
            "3s",
            "--agent-cmd",
            &repo.agent("slow", &format!("{FIX}; sleep 120")),
            "--",
            "t",
        ])
        .expect_json(1);
    let c = candidate(&run, "slow");
    assert_eq!(c["status"], "timeout", "{c}");
    // Its work up to the limit is its candidate, and the job is gone from the queue.
    assert!(c["files_changed"].as_u64().unwrap() >= 1, "{c}");
    let line = show_job(&conf, job_id(c));
    assert!(line.contains("JobState=CANCELLED"), "{line}");
    assert!(live_jobs(&conf, run["run"].as_str().unwrap()).is_empty());
}

#[test]
fn clean_after_a_kill_cancels_the_jobs_and_keeps_the_work() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.configure(&slurm_config(""));
    let body = "echo partial > partial.txt; sleep 120";
    let mut child = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args([
            "run",
            "--agent-cmd",
            &repo.agent("a", body),
            "--agent-cmd",
            &repo.agent("b", body),
            "t",
        ])
        .spawn();
    let state = || repo.state_of_only_run();
    wait_for("both agents' first writes", || {
        state().is_some_and(|s| {
            s["candidates"].as_array().unwrap().iter().all(|c| {
                c["worktree"]
                    .as_str()
                    .is_some_and(|wt| PathBuf::from(wt).join("partial.txt").exists())
            })
        })
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let st = state().unwrap();
    let run = st["run"].as_str().unwrap().to_owned();
    assert_eq!(
        live_jobs(&conf, &run).len(),
        2,
        "the jobs outlive git-massgen"
    );
    let clean = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args(["clean", &run])
        .run()
        .expect_code(0);
    clean.assert_stderr("cancelled Slurm job(s)");
    assert!(live_jobs(&conf, &run).is_empty());
    for agent in ["a", "b"] {
        let branch = format!("massgen/{run}/{agent}");
        assert_eq!(
            repo.git(&["show", &format!("{branch}:partial.txt")]),
            "partial"
        );
    }
    assert_eq!(repo.worktree_count(), 1);
    repo.assert_fsck_clean();
}

/// The trees of the candidates of a run with these agents and this extra configuration.
fn trees(conf: &PathBuf, repo: &TestRepo, config: &str, agents: &[(&str, &str)]) -> Vec<String> {
    repo.write(".massgen/config.toml", config);
    let mut cmd =
        repo.massgen()
            .env("SLURM_CONF", conf)
            .args(["run", "--json", "--sandbox", "off"]);
    for (name, body) in agents {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, body)]);
    }
    let run = cmd.args(["--", "t"]).run();
    let run = run.json();
    agents
        .iter()
        .map(|(name, _)| {
            let c = candidate(&run, name);
            assert_eq!(c["slurm"].is_object(), config.contains("slurm"), "{c}");
            let commit = c["commit"].as_str().unwrap_or_else(|| panic!("{c}"));
            repo.git(&["rev-parse", &format!("{commit}^{{tree}}")])
        })
        .collect()
}

#[test]
fn without_a_shared_file_system_candidates_equal_local_ones() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.write(".gitignore", "build/\n");
    repo.write("dir/old.txt", "old\n");
    repo.write("mode.sh", "echo\n");
    repo.configure("");
    let agents = [
        (
            "edits",
            "echo more >> README; rm calc.sh; mkdir -p new/deep; echo n > new/deep/n.txt; git mv test.sh renamed.sh",
        ),
        (
            "modes",
            "chmod +x mode.sh; rm -r dir; mkdir build; echo o > build/out.o; ln -s README link",
        ),
        ("fix", FIX),
    ];
    let local = trees(&conf, &repo, "", &agents);
    let scratch = repo.scratch("node-scratch");
    let carried = trees(
        &conf,
        &repo,
        &format!(
            "[executor]\nkind = \"slurm\"\n[executor.slurm]\nshared_fs = false\nscratch = \"{}\"\n",
            scratch.display()
        ),
        &agents,
    );
    assert_eq!(local, carried);
    // The clones on the node are removed; the user's tree is as it was.
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    assert!(repo.path.join("calc.sh").exists());
}

#[test]
fn tests_and_setup_run_as_jobs() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.write(".gitignore", ".setup-job\n");
    repo.configure(
        "[executor]\nkind = \"slurm\"\n[worktree]\nsetup = [\"test -n \\\"$SLURM_JOB_ID\\\" && echo \\\"$SLURM_JOB_NAME\\\" > .setup-job\"]\n[score]\nexecutor = \"slurm\"\ntest = \"test -n \\\"$SLURM_JOB_ID\\\" && grep -q '$2 + $3' calc.sh && cat .setup-job\"\n",
    );
    let run = run_one(&conf, &repo, FIX, 0);
    let c = candidate(&run, "a");
    assert_eq!(c["tests"]["exit_code"], 0, "{c}");
    assert_eq!(c["files_changed"], 1, "{c}");
    let id = run["run"].as_str().unwrap();
    let log = std::fs::read_to_string(
        repo.path
            .join(format!(".massgen/runs/{id}/logs/a.test.log")),
    )
    .unwrap();
    assert!(log.contains(&format!("massgen-{id}-a-setup")), "{log}");
    // Every job of the candidate is in the run's state, and `status` names each.
    let units: Vec<&str> = c["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["setup", "agent", "test"], "{c}");
    let status = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args(["status", id])
        .run()
        .expect_code(0);
    for unit in ["setup job", "a: Slurm job", "test job"] {
        status.assert_stdout(unit);
    }
}

#[test]
fn doctor_submits_a_job_and_reports_the_node() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.configure("[[agents]]\nname = \"a\"\nkind = \"command\"\ncommand = [\"true\"]\n");
    let out = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args(["doctor", "--offline", "--executor", "slurm", "--json"])
        .expect_json(0);
    assert_eq!(out["executor"]["ok"], true, "{out}");
    assert!(out["executor"]["probe"]["node"].is_string(), "{out}");
    assert!(
        out["executor"]["probe"]["program"]
            .as_str()
            .unwrap()
            .starts_with("git-massgen "),
        "{out}"
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn an_unreachable_controller_is_a_clear_error() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    // The same cluster on a port nothing listens on.
    let text = std::fs::read_to_string(&conf).unwrap();
    let bad = repo.root.join("bad-slurm.conf");
    let text: String = text
        .lines()
        .map(|l| match l.split_once('=') {
            Some(("SlurmctldPort", _)) => "SlurmctldPort=1".to_owned(),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&bad, text + "\nMessageTimeout=1\n").unwrap();
    repo.configure(&slurm_config(""));
    // Refused before anything is made.
    let out = repo
        .massgen()
        .env("SLURM_CONF", &bad)
        .args(["run", "--agent-cmd", &repo.agent("a", FIX), "--", "t"])
        .run()
        .expect_code(4);
    out.assert_stderr("Slurm cannot take jobs");
    out.assert_stderr("scontrol ping");
    assert!(repo.massgen_branches().is_empty());
    assert!(
        !repo.path.join(".massgen/runs").exists()
            || std::fs::read_dir(repo.path.join(".massgen/runs"))
                .unwrap()
                .count()
                == 0
    );
    assert_eq!(repo.worktree_count(), 1);
}

/// Starts a run of one agent `body` in the background and returns it with the agent's job
/// id once the job runs and `ready` holds.
fn running_job(
    conf: &PathBuf,
    repo: &TestRepo,
    body: &str,
    ready: impl Fn() -> bool,
) -> (std::process::Child, u64) {
    let child = one_agent(conf, repo, body).spawn();
    let mut id = None;
    wait_for("the agent's job to run", || {
        id = repo
            .state_of_only_run()
            .and_then(|s| candidate(&s, "a")["slurm"]["id"].as_u64());
        id.is_some_and(|id| show_job(conf, id).contains("JobState=RUNNING")) && ready()
    });
    (child, id.unwrap())
}

/// The run JSON of a run started with [`running_job`], once it ends with `code`.
fn finished(child: std::process::Child, code: i32) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scontrol(conf: &PathBuf, args: &[&str]) {
    let out = Command::new("scontrol")
        .env("SLURM_CONF", conf)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "scontrol {args:?}: {out:?}");
}

#[test]
fn a_job_sbatch_refuses_fails_its_candidate_with_sbatchs_words() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.configure(&slurm_config(
        "[executor.slurm]\npartition = \"no-such-partition\"\n",
    ));
    let run = run_one(&conf, &repo, FIX, 1);
    let c = candidate(&run, "a");
    assert_eq!(c["status"], "failed", "{c}");
    let error = c["error"].as_str().unwrap();
    assert!(error.contains("sbatch refused the job"), "{error}");
    assert!(error.to_lowercase().contains("partition"), "{error}");
}

#[test]
fn a_requeued_job_runs_again_and_its_candidate_is_the_second_run() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.unconfined();
    repo.configure(&slurm_config("[executor.slurm]\nrequeue = true\n"));
    let count = repo.root.join("starts");
    let body = format!(
        "echo start >> '{c}'; if [ \"$(wc -l < '{c}')\" = 1 ]; then sleep 120; fi; {FIX}",
        c = count.display()
    );
    let (child, id) = running_job(&conf, &repo, &body, || count.exists());
    // What preemption or a node failure does to a job that may be requeued.
    scontrol(&conf, &["requeue", &id.to_string()]);
    wait_for("the job to wait again", || {
        show_job(&conf, id).contains("JobState=PENDING")
    });
    // Slurm holds a requeued job back for a while; the test does not wait for that, but
    // leaves the node a second to forget the first run (started at once, slurmd refuses it:
    // "Job credential revoked").
    std::thread::sleep(std::time::Duration::from_secs(1));
    scontrol(&conf, &["update", &format!("JobId={id}"), "StartTime=now"]);
    let run = finished(child, 0);
    let c = candidate(&run, "a");
    assert_eq!(c["status"], "done", "{c}");
    assert_eq!(c["slurm"]["state"], "COMPLETED", "{c}");
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "start\nstart\n");
}

#[test]
fn a_job_cancelled_by_someone_else_fails_its_candidate_with_the_reason() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.configure(&slurm_config(""));
    let (child, id) = running_job(&conf, &repo, "sleep 120", || true);
    let out = Command::new("scancel")
        .env("SLURM_CONF", &conf)
        .arg(id.to_string())
        .output()
        .unwrap();
    assert!(out.status.success());
    let run = finished(child, 1);
    let c = candidate(&run, "a");
    assert_eq!(c["status"], "failed", "{c}");
    let error = c["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("Slurm job {id} was cancelled outside git-massgen")),
        "{error}"
    );
}

#[test]
fn without_a_shared_file_system_a_required_sandbox_or_overlays_are_refused() {
    // Refused before anything is submitted: no cluster needed.
    let repo = TestRepo::new();
    let carried = "[executor]\nkind = \"slurm\"\n[executor.slurm]\nshared_fs = false\n";
    for (extra, says) in [
        ("[sandbox]\nmode = \"required\"\n", "cannot confine them"),
        (
            "[worktree]\nmode = \"overlay\"\n",
            "copy-on-write worktrees cannot hold",
        ),
    ] {
        repo.write(".massgen/config.toml", &format!("{carried}{extra}"));
        let out = repo
            .massgen()
            .args(["run", "--agent-cmd", &repo.agent("a", FIX), "--", "t"])
            .run()
            .expect_code(2);
        out.assert_stderr(says);
        out.assert_stderr("shared_fs = false");
        assert!(repo.massgen_branches().is_empty());
    }
}

#[test]
fn a_job_is_confined_to_its_worktree_as_a_local_agent_is() {
    let Some(conf) = cluster() else { return };
    if !crate::sandbox::landlock("a_job_is_confined_to_its_worktree_as_a_local_agent_is") {
        return;
    }
    let repo = TestRepo::new();
    repo.configure(&slurm_config(""));
    let target = repo.path.join("escaped.txt");
    let body = format!(
        "echo out > '{}' || echo denied > denied.txt; echo in > inside.txt",
        target.display()
    );
    let run = run_one(&conf, &repo, &body, 1);
    let c = candidate(&run, "a");
    assert!(c["slurm"]["id"].is_u64(), "{c}");
    assert!(!target.exists(), "the job wrote into the user's work tree");
    let branch = c["branch"].as_str().unwrap();
    assert_eq!(
        repo.git(&["show", &format!("{branch}:denied.txt")]),
        "denied"
    );
    assert_eq!(repo.git(&["show", &format!("{branch}:inside.txt")]), "in");
    assert!(run["breaches"].as_array().unwrap().is_empty(), "{run}");
}

#[test]
fn without_a_shared_file_system_clean_after_a_kill_keeps_what_the_node_did() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    let scratch = repo.scratch("node-scratch");
    repo.configure(&format!(
        "[executor]\nkind = \"slurm\"\n[executor.slurm]\nshared_fs = false\nscratch = \"{}\"\n",
        scratch.display()
    ));
    let mut child = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args([
            "run",
            "--agent-cmd",
            &repo.agent("a", "echo partial > partial.txt; sleep 120"),
            "t",
        ])
        .spawn();
    wait_for("the agent's first write in its clone on the node", || {
        std::fs::read_dir(&scratch)
            .unwrap()
            .flatten()
            .any(|clone| clone.path().join("partial.txt").exists())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let run = repo.state_of_only_run().unwrap()["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let clean = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args(["clean", &run])
        .run()
        .expect_code(0);
    clean.assert_stderr("cancelled Slurm job(s)");
    clean.assert_stderr("read the work its node left");
    assert_eq!(
        repo.git(&["show", &format!("massgen/{run}/a:partial.txt")]),
        "partial"
    );
    assert!(live_jobs(&conf, &run).is_empty());
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    assert_eq!(repo.worktree_count(), 1);
}

#[test]
fn a_plans_tasks_run_their_agents_as_jobs() {
    let Some(conf) = cluster() else { return };
    let (repo, _count) = crate::plan_run::repo();
    repo.write(
        ".massgen/plans/two.toml",
        "name = \"two\"\n\n[[tasks]]\nid = \"a\"\ntask = \"make a\"\n\n[[tasks]]\nid = \"b\"\ntask = \"make b\"\ndepends_on = [\"a\"]\n",
    );
    repo.commit_all("plan");
    let state = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args(["plan", "run", "two", "--executor", "slurm", "--json"])
        .expect_json(0);
    let tip = repo.git(&["rev-parse", "massgen/plan/two/integration"]);
    assert_eq!(state["integration_commit"], tip.as_str());
    for id in ["a", "b"] {
        let task = crate::plan_run::task(&state, id);
        assert_eq!(task["status"], "done", "{state}");
        let run = task["run"].as_str().unwrap();
        let st: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(repo.path.join(format!(".massgen/runs/{run}/state.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(st["executor"], "slurm", "{st}");
        assert_eq!(candidate(&st, "w")["slurm"]["state"], "COMPLETED", "{st}");
    }
    assert_eq!(repo.git(&["show", &format!("{tip}:b.txt")]), "b");
}

#[test]
fn command_judges_run_as_jobs_beside_the_agents() {
    let Some(conf) = cluster() else { return };
    let repo = TestRepo::new();
    repo.unconfined();
    let capture = repo.scratch("capture");
    // The judge votes only from inside a Slurm job.
    let script = repo.script(
        "judge.sh",
        &format!(
            "test -n \"$SLURM_JOB_ID\" || exit 9\necho \"$SLURM_JOB_NAME\" > \"$CAPTURE/job\"\n{}",
            crate::consensus::JUDGE
        ),
    );
    repo.configure(
        &format!(
            "{}{}",
            slurm_config(""),
            crate::consensus::judge_toml("j", &script, &capture, "answer=42")
        )
        .replace("[score]\ntest = \"sh test.sh\"\n", ""),
    );
    let run = repo
        .massgen()
        .env("SLURM_CONF", &conf)
        .args(["run", "--json"])
        .args([
            "--agent-cmd",
            &repo.agent("short", "echo 'answer=7' > answer.txt"),
        ])
        .args([
            "--agent-cmd",
            &repo.agent(
                "right",
                "echo 'answer=42' > answer.txt; echo pad >> answer.txt",
            ),
        ])
        .args(["--", "answer"])
        .expect_json(0);
    assert_eq!(run["winner"], "right", "{run}");
    let id = run["run"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(capture.join("job")).unwrap().trim(),
        format!("massgen-{id}-j-judge")
    );
}

#[test]
fn paths_the_nodes_use_must_be_absolute() {
    // Refused before anything is submitted: no cluster needed.
    let repo = TestRepo::new();
    for key in ["scratch", "stage", "program"] {
        repo.write(
            ".massgen/config.toml",
            &format!("[executor]\nkind = \"slurm\"\n[executor.slurm]\n{key} = \"relative/dir\"\n"),
        );
        let out = repo
            .massgen()
            .args(["run", "--agent-cmd", &repo.agent("a", FIX), "--", "t"])
            .run()
            .expect_code(2);
        out.assert_stderr(&format!(
            "[executor.slurm] {key} = \"relative/dir\" must be an absolute path"
        ));
        out.assert_stderr("hint:");
        assert!(repo.massgen_branches().is_empty());
    }
}
