//! `git massgen init`: write `.massgen/config.toml` and `.massgen/.gitignore`.

use std::path::Path;

use crate::agent::cli::{Preset, which};
use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::run::layout::{MASSGEN_GITIGNORE, RUNTIME_ONLY_GITIGNORE};

/// The configuration template, embedded in the binary.
pub const CONFIG_TEMPLATE: &str = include_str!("../../templates/config.toml");

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Overwrite an existing .massgen/config.toml.
    #[arg(long)]
    pub force: bool,
}

pub fn init(ctx: &Ctx, args: &InitArgs) -> Result<Exit, CliError> {
    let repo = ctx.repo()?;
    let dir = repo.massgen_dir();
    let path = dir.join("config.toml");
    if path.exists() && !args.force {
        return Err(
            CliError::usage(format!("{} already exists", path.display()))
                .hint("pass --force to overwrite it"),
        );
    }
    std::fs::create_dir_all(&dir)?;
    let test = detect_test_command(&repo.workdir);
    let test_line = match test {
        Some(t) => format!("test = {}", toml_string(t)),
        None => "# No test command detected; set one so candidates can be tested:\n# test = \"make test\"".into(),
    };
    let found: Vec<Preset> = Preset::ALL
        .into_iter()
        .filter(|p| which(p.name()).is_some())
        .collect();
    let text = CONFIG_TEMPLATE
        .replace("{{test_line}}", &test_line)
        .replace("{{agents}}", &agents_section(&found));
    // Checked before writing: the template must always parse.
    crate::agent::check_config(&crate::config::Config::parse(&text, &path)?)?;
    std::fs::write(&path, text)?;
    let gitignore = dir.join(".gitignore");
    let current = std::fs::read_to_string(&gitignore).unwrap_or_default();
    if current.is_empty() || current == RUNTIME_ONLY_GITIGNORE {
        std::fs::write(&gitignore, MASSGEN_GITIGNORE)?;
    } else if !current
        .lines()
        .any(|l| l.trim() == "/runs/" || l.trim() == "runs/")
    {
        std::fs::write(&gitignore, format!("{current}{MASSGEN_GITIGNORE}"))?;
    }
    ctx.ui.line(&format!("wrote {}", path.display()));
    match test {
        Some(t) => ctx.ui.line(&format!("test command: {t}")),
        None => ctx
            .ui
            .line("no test command detected; set [score] test in the file"),
    }
    if found.is_empty() {
        ctx.ui.line(
            "no agent CLI found on PATH (claude, codex, gemini, opencode, qwen, aider); add [[agents]] to the file",
        );
    } else {
        let names: Vec<&str> = found.iter().map(|p| p.name()).collect();
        ctx.ui.line(&format!("agents: {}", names.join(", ")));
        ctx.ui
            .line("check them with `git massgen doctor`, then: git massgen run \"<task>\"");
    }
    Ok(Exit::Success)
}

/// `[[agents]]` for each CLI found on PATH.
fn agents_section(found: &[Preset]) -> String {
    let mut out = String::new();
    if !found.is_empty() {
        out.push_str("# Agent CLIs found on PATH by `git massgen init`.\n");
    }
    for p in found {
        out.push_str(&format!(
            "[[agents]]\nname = \"{0}\"\nkind = \"{0}\"\n# model = \"...\"\n\n",
            p.name()
        ));
    }
    out
}

/// The test command of the project at `root`, from the files that identify its ecosystem.
pub fn detect_test_command(root: &Path) -> Option<&'static str> {
    let has = |f: &str| root.join(f).exists();
    if has("Cargo.toml") {
        Some("cargo test")
    } else if has("package.json") {
        Some("npm test")
    } else if has("pyproject.toml") || has("pytest.ini") || has("setup.py") || has("tox.ini") {
        Some("pytest")
    } else if has("go.mod") {
        Some("go test ./...")
    } else {
        None
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_with_and_without_a_test() {
        for line in ["test = \"cargo test\"", "# test = \"x\""] {
            for found in [&[][..], &Preset::ALL[..]] {
                let text = CONFIG_TEMPLATE
                    .replace("{{test_line}}", line)
                    .replace("{{agents}}", &agents_section(found));
                let c = crate::config::Config::parse(&text, Path::new("t")).unwrap();
                assert_eq!(c.agents.len(), found.len());
            }
        }
    }
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn agents_example_parses() {
        let text = include_str!("../../templates/agents.example.toml");
        let c = crate::config::Config::parse(text, std::path::Path::new("x")).unwrap();
        assert_eq!(c.agents.len(), 14);
        assert_eq!(c.judges.len(), 2);
        assert_eq!(c.judging.max_attempts, Some(3));
        assert_eq!(c.score.weights.map(|w| w.votes), Some(2.0));
    }
}
