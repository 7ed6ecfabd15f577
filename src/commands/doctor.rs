//! `git massgen doctor`: checks every configured agent (binary, version, credentials,
//! endpoint) and says what to fix.

use crate::commands::Ctx;
use crate::config::{AgentConfig, Config};
use crate::error::{CliError, Exit};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Check only this agent (repeatable).
    #[arg(short, long = "agent", value_name = "NAME")]
    pub agents: Vec<String>,
    /// Skip the network check of each agent's endpoint.
    #[arg(long)]
    pub offline: bool,
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
    let problems = checks.iter().filter(|c| !c.ok).count();
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
        }));
    } else {
        let mut out = format!("sandbox: {sandbox}\noverlay: {overlay}\n");
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
