//! One agent's sessions: its process started with its environment and logs, and for CLI
//! agents the event stream read as it comes, with follow-ups for an agent that asked a
//! question instead of finishing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::RunError;
use super::context::{Event, Plan, Shared};
use super::executor::{self, Unit};
use crate::agent::cli::{CliAgent, LaunchCtx};
use crate::agent::events::{self, Report};
use crate::agent::process::{self, Job, leftovers};
use crate::agent::{AgentSpec, Invocation};
use crate::git::cmd::GIT_REPO_ENV;

/// How an agent's work ended: its last session, and for CLI agents what they reported.
pub(super) struct Ended {
    /// The last session, or why it could not start.
    pub session: Result<process::Finished, String>,
    pub report: Option<Report>,
    pub nudges: u32,
    pub asked: bool,
}

/// The environment of an agent: the preset's own, then the user's `env`, then `MASSGEN_*`.
pub(super) fn agent_env(
    agent: &AgentSpec,
    inv: &Invocation<'_>,
    preset: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut env = preset;
    env.extend(agent.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(inv.env().into_iter().map(|(k, v)| (k.to_owned(), v)));
    env
}

/// Runs one session of an agent with its logs appended to, and its stdout watched when a
/// watcher is given.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_session(
    shared: &Arc<Shared>,
    agent: &AgentSpec,
    argv: &[String],
    wt: &std::path::Path,
    env: Vec<(String, String)>,
    timeout: Duration,
    watch: Option<process::LineWatcher>,
    cancel: &watch::Receiver<bool>,
) -> Result<Result<process::Finished, String>, RunError> {
    let open = |stream: &str| {
        let path = shared.dir.agent_log(&agent.name, stream);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(RunError::io("cannot create log", path))
    };
    let key = match &agent.kind {
        crate::agent::Kind::Cli(cli) => vec![cli.api_key_env.clone()],
        crate::agent::Kind::Command(_) => Vec::new(),
    };
    let remote = shared.remote(&agent.name, Unit::Agent, key);
    // Without a shared file system the job works in a clone on its node.
    let carried = match shared.executor.carries() {
        true => {
            let (slurm, run) = (shared.executor.slurm.clone(), shared.dir.clone());
            let (name, wt, argv) = (agent.name.clone(), wt.to_owned(), argv.to_vec());
            let carried = tokio::task::spawn_blocking(move || {
                executor::carry(&slurm, &run, &name, &wt, &argv)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match carried {
                Ok(carried) => Some(carried),
                Err(why) => return Ok(Err(why)),
            }
        }
        false => None,
    };
    let (argv, cwd) = match &carried {
        Some((wrapped, scratch, _)) => (wrapped.as_slice(), scratch.as_path()),
        None => (argv, wt),
    };
    let job = Job {
        argv,
        cwd,
        env,
        env_remove: GIT_REPO_ENV,
        stdout: open("stdout")?,
        stderr: open("stderr")?,
        timeout,
        watch,
        sandbox: match carried {
            Some(_) => None,
            None => shared.rules(&agent.name, wt, &agent.allow_write),
        },
        remote,
    };
    let name = agent.name.clone();
    let on_spawn = {
        let shared = shared.clone();
        move |pgid: i32| {
            let _ = shared.update_candidate(&name, |c| c.pgid = Some(pgid));
        }
    };
    let mut finished = process::supervise(job, cancel.clone(), on_spawn)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "cannot start `{}`: not found (is it installed and on PATH?)",
                argv[0]
            ),
            _ => format!("cannot start `{}`: {e}", argv[0]),
        });
    if let (Ok(f), Some((_, _, carried))) = (&finished, &carried) {
        // What the node made, read into the worktree; kept aside when that fails.
        let (wt, carried) = (wt.to_owned(), carried.clone());
        let back = tokio::task::spawn_blocking(move || executor::bring_back(&wt, &carried))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(why) = back {
            if f.success() {
                finished = Err(why);
            } else {
                (shared.report)(Event::Warning(format!("{}: {why}", agent.name)));
            }
        }
    }
    if let Ok(f) = &finished
        && let Some(note) = leftovers::describe(&f.leftovers, "the agent")
    {
        (shared.report)(Event::Warning(format!("{}: {note}", agent.name)));
        shared.update_candidate(&agent.name, |c| c.warnings.push(note))?;
    }
    Ok(finished)
}

/// Runs a CLI agent: its session (or, with `resume`, that session continued with the
/// prompt as a follow-up), then, while it ends by asking a question and the CLI can resume,
/// a follow-up telling it to finish on its own. One time limit covers them all.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_cli(
    shared: &Arc<Shared>,
    plan: &Plan,
    agent: &AgentSpec,
    cli: &CliAgent,
    inv: &Invocation<'_>,
    resume: Option<String>,
    extra_env: Vec<(String, String)>,
    cancel: &watch::Receiver<bool>,
) -> Result<Ended, RunError> {
    let home = shared.dir.agent_home(&agent.name);
    std::fs::create_dir_all(&home).map_err(RunError::io("cannot create", &home))?;
    let mut total = Report::default();
    let mut remaining = agent.timeout;
    let mut nudges = 0;
    let mut asked = false;
    let mut resume = resume.filter(|_| cli.preset.can_resume());
    let mut first = true;
    loop {
        let launch = cli.launch(&LaunchCtx {
            prompt: if first { inv.prompt } else { &plan.nudge },
            worktree: inv.worktree,
            home: &home,
            resume: resume.as_deref(),
            read_only: false,
        });
        if let Err(e) = launch.write_files() {
            return Ok(Ended {
                session: Err(format!(
                    "cannot write the configuration of {}: {e}",
                    cli.preset.title()
                )),
                report: Some(total),
                nudges,
                asked,
            });
        }
        let (reading, watch) = {
            let (shared, name) = (shared.clone(), agent.name.clone());
            cli.reading(move |event| {
                (shared.report)(Event::Agent {
                    agent: name.clone(),
                    event,
                })
            })
        };
        first = false;
        let mut preset_env = launch.env.clone();
        preset_env.extend(extra_env.iter().cloned());
        let env = agent_env(agent, inv, preset_env);
        let session = run_session(
            shared,
            agent,
            &launch.argv,
            inv.worktree,
            env,
            remaining,
            Some(watch),
            cancel,
        )
        .await?;
        let this = reading.report();
        total.merge(&this, cli.preset.cumulative_usage());
        let Ok(finished) = &session else {
            return Ok(Ended {
                session,
                report: Some(total),
                nudges,
                asked,
            });
        };
        remaining = remaining.saturating_sub(finished.duration);
        let asking = finished.success()
            && this.ok != Some(false)
            && this
                .final_message
                .as_deref()
                .is_some_and(events::asks_for_input);
        asked |= asking;
        // A clone on a node is gone after its job: no session to resume there.
        let can_nudge = asking
            && !shared.executor.carries()
            && nudges < cli.max_nudges
            && cli.preset.can_resume()
            && total.session_id.is_some()
            && !remaining.is_zero()
            && !*cancel.borrow();
        if !can_nudge {
            return Ok(Ended {
                session,
                report: Some(total),
                nudges,
                asked,
            });
        }
        nudges += 1;
        resume = total.session_id.clone();
        (shared.report)(Event::Nudged {
            agent: agent.name.clone(),
            question: this.final_message.clone().unwrap_or_default(),
        });
    }
}
