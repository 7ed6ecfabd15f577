//! `git massgen conflicts`: which candidates of a run conflict with each other and with the
//! current branch (see `run/conflicts.rs`), so that more than one can be merged.

use crate::commands::{Ctx, load_run};
use crate::error::{CliError, Exit};
use crate::run::conflicts::{self, Pair};

#[derive(Debug, clap::Args)]
pub struct ConflictsArgs {
    /// The run (id, unique prefix, or `latest`).
    pub run: String,
    /// Print the matrix as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn conflicts(ctx: &Ctx, args: &ConflictsArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let (_, state) = load_run(&repo, &args.run)?;
    let (head, branch) = repo.head()?;
    let name = branch
        .as_deref()
        .map(|b| b.trim_start_matches("refs/heads/").to_owned())
        .unwrap_or_else(|| "HEAD".to_owned());
    let matrix = conflicts::matrix(&repo, &state, head, &name)?;
    let mut ranked: Vec<&crate::run::state::Candidate> = state
        .candidates
        .iter()
        .filter(|c| matrix.candidates.contains(&c.agent))
        .collect();
    ranked.sort_by_key(|c| c.rank.unwrap_or(usize::MAX));
    let ranked: Vec<String> = ranked.iter().map(|c| c.agent.clone()).collect();
    let together = matrix.together(&ranked);
    if args.json {
        let mut value = serde_json::to_value(&matrix).expect("the matrix serializes");
        value["together"] = serde_json::json!(together);
        ctx.ui.json(&value);
        return Ok(Exit::Success);
    }
    if matrix.candidates.is_empty() {
        ctx.ui
            .line(&format!("run {}: no candidate changed anything", state.run));
        return Ok(Exit::Success);
    }
    let line = |p: &Pair| {
        if p.conflicts.is_empty() {
            format!("  {} × {}: clean\n", p.a, p.b)
        } else {
            format!(
                "  {} × {}: conflict in {}\n",
                p.a,
                p.b,
                p.conflicts.join(", ")
            )
        }
    };
    let mut out = format!(
        "run {}: {} candidates with changes\n",
        state.run,
        matrix.candidates.len()
    );
    if !matrix.pairs.is_empty() {
        out.push_str("with each other:\n");
        matrix.pairs.iter().for_each(|p| out.push_str(&line(p)));
    }
    out.push_str(&format!("with {}:\n", matrix.head));
    matrix
        .against_head
        .iter()
        .for_each(|p| out.push_str(&line(p)));
    if together.len() > 1 {
        out.push_str(&format!(
            "these merge together cleanly: {} (git massgen merge {} AGENT, one after another)\n",
            together.join(", "),
            state.run
        ));
    }
    ctx.ui.out(&out);
    Ok(Exit::Success)
}
