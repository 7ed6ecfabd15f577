//! `git massgen doctor`: checks every configured agent (binary, version, credentials,
//! endpoint) and says what to fix.

use crate::commands::Ctx;
use crate::config::{AgentConfig, Config, ExecutorKind};
use crate::error::{CliError, Exit};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Check only this agent (repeatable).
    #[arg(short, long = "agent", value_name = "NAME")]
    pub agents: Vec<String>,
    /// Skip the network check of each agent's endpoint.
    #[arg(long)]
    pub offline: bool,
    /// Also submit one tiny job to this executor (`slurm`: reports the node, the versions
    /// and the latency); default: `[executor] kind` when it is not local.
    #[arg(long, value_enum, value_name = "KIND")]
    pub executor: Option<crate::config::ExecutorKind>,
    /// Print the findings as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn doctor(ctx: &Ctx, args: &DoctorArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let path = repo.massgen_dir().join("config.toml");
    let config = Config::load(&path)?;
    crate::agent::check_config(&config)?;
    if config.agents.is_empty() {
        return Err(
            CliError::usage(format!("no agents are configured in {}", path.display()))
                .hint("`git massgen init` writes agents for the CLIs found on PATH"),
        );
    }
    for name in &args.agents {
        if !config.agents.iter().any(|a| a.name.get_ref() == name) {
            return Err(CliError::usage(format!(
                "no agent named `{name}` in {}",
                path.display()
            )));
        }
    }
    let selected: Vec<&AgentConfig> = config
        .agents
        .iter()
        .filter(|a| args.agents.is_empty() || args.agents.contains(a.name.get_ref()))
        .collect();
    let checks = crate::agent::doctor::check_agents(&selected, args.offline);
    let slurm = (args.executor.or(config.executor.kind) == Some(ExecutorKind::Slurm)).then(|| {
        let section = std::sync::Arc::new(config.executor.slurm.clone());
        // Its files go where the runs' do: ignored, and seen by the nodes as the runs' are.
        let within = crate::run::layout::runs_dir(&repo);
        let _ = std::fs::create_dir_all(&within);
        let _ = crate::run::layout::ensure_gitignore(&repo);
        let probe = crate::agent::process::slurm::probe(section, within);
        super::runtime().map(|rt| rt.block_on(probe))
    });
    let slurm = slurm.transpose()?;
    let problems =
        checks.iter().filter(|c| !c.ok).count() + usize::from(matches!(slurm, Some(Err(_))));
    // Whether agents can be confined: the kernel's Landlock, found by the trampoline.
    let sandbox = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| crate::sandbox::probe(&exe))
        .map_or_else(|why| format!("unavailable: {why}"), |e| e.describe());
    // Whether worktrees can be copy-on-write overlays (`--worktree-mode overlay`, `auto`).
    let overlay = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| crate::sandbox::overlay_probe(&exe))
        .map_or_else(
            |why| format!("unavailable: {why}"),
            |()| "available (overlayfs in a user namespace)".to_owned(),
        );
    if args.json {
        ctx.ui.json(&serde_json::json!({
            "ok": problems == 0,
            "checks": checks,
            "sandbox": sandbox,
            "overlay": overlay,
            "executor": match &slurm {
                None => serde_json::json!({"kind": "local"}),
                Some(Ok(p)) => serde_json::json!({"kind": "slurm", "ok": true, "probe": p}),
                Some(Err(e)) => serde_json::json!({"kind": "slurm", "ok": false, "error": e}),
            },
        }));
    } else {
        let mut out = format!("sandbox: {sandbox}\noverlay: {overlay}\n");
        match &slurm {
            None => {}
            Some(Ok(p)) => out.push_str(&format!(
                "ok   executor: slurm: job {} ran on {} in {} ms ({} ms to start); {}; on the node: {}\n",
                p.job,
                p.node.as_deref().unwrap_or("?"),
                p.total_ms,
                p.start_ms,
                p.slurm,
                p.program
            )),
            Some(Err(e)) => out.push_str(&format!(
                "FAIL executor: slurm: {e}\n     fix: check `sinfo` and `scontrol ping`, and that git-massgen is on the nodes ([executor.slurm] program)\n"
            )),
        }
        for c in &checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!("{mark} {}: {}: {}\n", c.agent, c.check, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("     fix: {fix}\n"));
            }
        }
        if problems == 0 {
            out.push_str(&format!("all {} agent(s) look ready\n", selected.len()));
        } else {
            out.push_str(&format!("{problems} problem(s) found\n"));
        }
        ctx.ui.out(&out);
    }
    Ok(if problems == 0 {
        Exit::Success
    } else {
        Exit::Negative
    })
}
