//! `git massgen status`: runs and their agents, states, scores, worktrees and disk used.

use crate::agent::process::slurm;
use crate::commands::{Ctx, load_run};
use crate::error::{CliError, Exit};
use crate::run::layout::runs_dir;
use crate::run::state::{self, RunState};
use crate::ui;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Show this run in detail (id, unique prefix, or `latest`).
    pub run: Option<String>,
    /// Print JSON: one object for a run, an array for the list.
    #[arg(long)]
    pub json: bool,
}

/// The state as shown: a dead owner process turns an active run into `interrupted`.
fn shown(mut st: RunState) -> RunState {
    st.state = st.effective_phase();
    st
}

pub fn status(ctx: &Ctx, args: &StatusArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    match &args.run {
        Some(run) => {
            let (_, st) = load_run(&repo, run)?;
            let st = shown(st);
            if args.json {
                ctx.ui.json(&st);
            } else {
                ctx.ui.out(&render_run(&st));
            }
        }
        None => {
            let scan = state::scan(&runs_dir(&repo))?;
            let unreadable = scan.unreadable;
            let runs: Vec<RunState> = scan.runs.into_iter().map(shown).collect();
            if args.json {
                let mut list = serde_json::to_value(&runs).expect("runs serialize");
                if let Some(items) = list.as_array_mut() {
                    for (item, run) in items.iter_mut().zip(&runs) {
                        item["disk_bytes"] = crate::sys::disk_usage(&run.worktree_root).into();
                    }
                    items.extend(unreadable.iter().map(|u| {
                        serde_json::json!({"run": u.run, "state": "unreadable", "error": u.error})
                    }));
                }
                ctx.ui.json(&list);
            } else if runs.is_empty() && unreadable.is_empty() {
                ctx.ui
                    .line("no runs yet; start one with: git massgen run \"<task>\"");
            } else {
                let mut total = 0;
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        let disk = crate::sys::disk_usage(&r.worktree_root);
                        total += disk;
                        let task: String = r
                            .task
                            .lines()
                            .next()
                            .unwrap_or("")
                            .chars()
                            .take(50)
                            .collect();
                        vec![
                            r.run.clone(),
                            r.state.as_str().to_owned(),
                            r.candidates.len().to_string(),
                            r.winner.clone().unwrap_or_else(|| "-".into()),
                            if disk == 0 {
                                "-".into()
                            } else {
                                crate::sys::human_size(disk)
                            },
                            task,
                        ]
                    })
                    .collect();
                let mut rows = rows;
                for u in &unreadable {
                    rows.push(vec![
                        u.run.clone(),
                        "unreadable".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        u.error.clone(),
                    ]);
                }
                ctx.ui.out(&ui::table(
                    &["run", "state", "agents", "winner", "disk", "task"],
                    &rows,
                ));
                ctx.ui.out(&format!(
                    "worktrees: {} in all\n",
                    crate::sys::human_size(total)
                ));
                if !unreadable.is_empty() {
                    ctx.ui.info(
                        "hint: `git massgen clean` saves what unreadable runs' worktrees hold and removes them",
                    );
                }
            }
        }
    }
    Ok(Exit::Success)
}

fn render_run(st: &RunState) -> String {
    let mut out = crate::ui::render::render_ranking(st);
    out.push_str(&format!("\nstate: {}", st.state.as_str()));
    if st.merged {
        out.push_str(" (merged)");
    }
    out.push('\n');
    out.push_str(&format!("base:  {}\n", &st.base[..12.min(st.base.len())]));
    let task: String = st
        .task
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(100)
        .collect();
    out.push_str(&format!("task:  {task}\n"));
    if let Some(sandbox) = &st.sandbox {
        out.push_str(&format!("sandbox: {sandbox}\n"));
    }
    if st.turns.len() > 1 || st.rounds > 1 {
        out.push_str("turns:\n");
        for t in &st.turns {
            let prompt: String = t
                .prompt
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(70)
                .collect();
            out.push_str(&format!(
                "  {}. {prompt}\n     {}, {}{}, winner {}\n",
                t.turn,
                ui::count(t.agents.len(), "agent"),
                ui::count(t.rounds as usize, "round"),
                if t.converged { " (converged)" } else { "" },
                t.winner.as_deref().unwrap_or("none")
            ));
        }
    }
    for v in &st.votes {
        out.push_str(&format!(
            "vote (turn {}, round {}): {} {} for {}: {}\n",
            v.turn,
            v.round,
            match v.by {
                crate::run::state::Voter::Judge => "judge",
                crate::run::state::Voter::Agent => "agent",
            },
            v.judge,
            v.candidate,
            v.reason.lines().next().unwrap_or("")
        ));
    }
    for a in &st.abstentions {
        out.push_str(&format!(
            "abstained (turn {}, round {}): judge {}: {}\n",
            a.turn, a.round, a.judge, a.reason
        ));
    }
    if st.state == crate::run::state::Phase::Interrupted {
        out.push_str(&format!(
            "the run was interrupted; `git massgen clean {}` saves what the agents left onto their branches and removes the worktrees\n",
            st.run
        ));
    }
    for c in &st.candidates {
        if let Some(err) = &c.error {
            out.push_str(&format!("{}: {err}\n", c.agent));
        }
        for job in c
            .jobs
            .iter()
            .chain(c.slurm.iter().filter(|_| c.jobs.is_empty()))
        {
            // A job that has not ended is asked about again: its state and pending reason now.
            let now = (!slurm::is_terminal(&job.state))
                .then(|| slurm::poll_now(job.id))
                .flatten()
                .map(|now| crate::model::SlurmJob {
                    unit: job.unit.clone(),
                    ..now
                });
            let job = now.as_ref().unwrap_or(job);
            out.push_str(&format!("{}: Slurm {}\n", c.agent, job.describe()));
        }
        if c.asked_for_input {
            out.push_str(&format!(
                "{}: asked for input instead of finishing; nudged {}\n",
                c.agent,
                ui::count(c.nudges as usize, "time")
            ));
        }
        if let Some(msg) = &c.final_message {
            let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let first: String = first.chars().take(100).collect();
            out.push_str(&format!("{}: said: {first}\n", c.agent));
        }
        for w in &c.warnings {
            out.push_str(&format!("{}: warning: {w}\n", c.agent));
        }
        if c.truncated > 0 {
            out.push_str(&format!(
                "{}: {} cut at the output limit (raise max_output_tokens)\n",
                c.agent,
                if c.truncated == 1 {
                    "1 reply".to_owned()
                } else {
                    format!("{} replies", c.truncated)
                }
            ));
        }
        if c.denied > 0 {
            out.push_str(&format!(
                "{}: the sandbox denied {} (see its logs)\n",
                c.agent,
                if c.denied == 1 {
                    "1 write or connection".to_owned()
                } else {
                    format!("{} writes or connections", c.denied)
                }
            ));
        }
        if let Some(wt) = &c.worktree
            && wt.exists()
        {
            out.push_str(&format!(
                "{}: worktree {} ({})\n",
                c.agent,
                wt.display(),
                crate::sys::human_size(crate::sys::disk_usage(wt))
            ));
        }
    }
    out
}
