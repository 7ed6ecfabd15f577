//! `git massgen init`: write `.massgen/config.toml` and `.massgen/.gitignore`.

use std::path::Path;

use crate::agent::cli::{Preset, which};
use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::run::imports;
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
        Some(t) => format!("test = {}", toml_string(t.command)),
        None => "# No test command detected; set one so candidates can be tested:\n# test = \"make test\"".into(),
    };
    let found: Vec<Preset> = Preset::ALL
        .into_iter()
        .filter(|p| which(p.name()).is_some())
        .collect();
    let text = CONFIG_TEMPLATE
        .replace("{{test_line}}", &test_line)
        .replace("{{worktree}}", &worktree_section(&repo.workdir))
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
        Some(t) => {
            ctx.ui.line(&format!("test command: {}", t.command));
            if let Some(why) = t.why {
                ctx.ui.line(&format!("  ({why})"));
            }
        }
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

/// `[worktree]`: what makes a fresh worktree of the project at `root` ready to test, for the
/// ecosystems it uses, with the other choices as comments.
fn worktree_section(root: &Path) -> String {
    let has = |f: &str| root.join(f).exists();
    let mut out = String::from(
        "# What a fresh worktree needs before its agent starts (README.md, \"Ready-to-test
# worktrees\"). Ignored files are not in a worktree: copy them (include), clone dependency
# trees (copy-on-write where the file system can), or install them (setup). Setup, agent and
# tests get ports MASSGEN_PORT..MASSGEN_PORT+9 of their own: PORT=$MASSGEN_PORT npm test
[worktree]
",
    );
    let mut other = Vec::new();
    let mut line = |active: bool, text: String| {
        if active {
            out.push_str(&text);
            out.push('\n');
        } else {
            other.push(format!("# {text}"));
        }
    };
    line(has(".env"), "include = [\".env\"]".to_owned());
    if has("package.json") {
        let install = toml_string(if has("package-lock.json") {
            "npm ci --prefer-offline"
        } else {
            "npm install --prefer-offline"
        });
        let cloned = has("node_modules");
        line(cloned, "clone = [\"node_modules\"]".to_owned());
        line(!cloned, format!("setup = [{install}]"));
    }
    if has("Cargo.toml") {
        // One target directory for all candidates compiles the dependencies once (builds
        // take turns on it); `clone = ["target"]` would give each a copy of its own.
        line(
            true,
            "env = { CARGO_TARGET_DIR = \"{worktree_root}/cargo-target\" }".to_owned(),
        );
        line(false, "clone = [\"target\"]".to_owned());
    }
    if has("pyproject.toml") || has("setup.py") {
        // Each worktree's own virtual environment, so its tests import its own code.
        line(
            false,
            "setup = [\"python3 -m venv .venv && .venv/bin/pip install -q -e .\"]".to_owned(),
        );
    }
    line(
        false,
        "share = [\"big-cache\"]   # linked, not copied: agents can change it for all".to_owned(),
    );
    line(false, "setup_timeout = \"10m\"".to_owned());
    line(
        false,
        "max_disk = \"20G\"   # finished runs' worktrees removed, oldest first".to_owned(),
    );
    for text in other {
        out.push_str(&text);
        out.push('\n');
    }
    out
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

/// A detected test command, and why it is not the ecosystem's plain one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCommand {
    pub command: &'static str,
    pub why: Option<&'static str>,
}

/// pytest for a `src/` layout: the package is importable only from `src/`, and each
/// worktree must import its own (an installed copy, editable or not, is the user's).
const PYTEST_SRC: &str = "PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} pytest";

/// The test command of the project at `root`, from the files that identify its ecosystem.
pub fn detect_test_command(root: &Path) -> Option<TestCommand> {
    let has = |f: &str| root.join(f).exists();
    let plain = |command| Some(TestCommand { command, why: None });
    if has("Cargo.toml") {
        plain("cargo test")
    } else if has("package.json") {
        plain("npm test")
    } else if [
        "pyproject.toml",
        "pytest.ini",
        "setup.py",
        "setup.cfg",
        "tox.ini",
    ]
    .iter()
    .any(|f| has(f))
    {
        if imports::python_src_layout(root) && !imports::pytest_sets_pythonpath(root) {
            Some(TestCommand {
                command: PYTEST_SRC,
                why: Some(
                    "a src/ layout: with src/ on PYTHONPATH, pytest imports the package from each candidate's worktree (plain pytest cannot import it there, or imports an installed copy)",
                ),
            })
        } else {
            plain("pytest")
        }
    } else if has("go.mod") {
        plain("go test ./...")
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
    fn worktree_lines_follow_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let parse = |dir: &Path| {
            let text = format!("{}\n", worktree_section(dir));
            crate::config::Config::parse(&text, Path::new("t"))
                .unwrap()
                .worktree
        };
        let w = parse(dir.path());
        assert!(w.include.is_empty() && w.clone.is_empty() && w.setup.is_empty());
        for f in [
            "package.json",
            "package-lock.json",
            ".env",
            "pyproject.toml",
        ] {
            std::fs::write(dir.path().join(f), "{}").unwrap();
        }
        let w = parse(dir.path());
        assert_eq!(w.include, [".env"]);
        assert_eq!(w.setup, ["npm ci --prefer-offline"]);
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        let w = parse(dir.path());
        assert_eq!(w.clone, ["node_modules"]);
        assert!(w.setup.is_empty());
        assert_eq!(w.env["CARGO_TARGET_DIR"], "{worktree_root}/cargo-target");
    }

    #[test]
    fn a_python_src_layout_gets_src_on_pythonpath() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("pyproject.toml"), "").unwrap();
        assert_eq!(detect_test_command(root).unwrap().command, "pytest");
        std::fs::create_dir_all(root.join("src/calcpkg")).unwrap();
        std::fs::write(root.join("src/calcpkg/__init__.py"), "").unwrap();
        let t = detect_test_command(root).unwrap();
        assert_eq!(t.command, PYTEST_SRC);
        assert!(t.why.is_some_and(|w| w.contains("src/ layout")));
        // The line survives TOML quoting.
        let text = CONFIG_TEMPLATE
            .replace(
                "{{test_line}}",
                &format!("test = {}", toml_string(t.command)),
            )
            .replace("{{worktree}}", "")
            .replace("{{agents}}", "");
        let c = crate::config::Config::parse(&text, Path::new("t")).unwrap();
        assert_eq!(c.score.test.as_deref(), Some(PYTEST_SRC));
    }

    #[test]
    fn template_parses_with_and_without_a_test() {
        for line in ["test = \"cargo test\"", "# test = \"x\""] {
            for found in [&[][..], &Preset::ALL[..]] {
                let text = CONFIG_TEMPLATE
                    .replace("{{test_line}}", line)
                    .replace("{{worktree}}", &worktree_section(Path::new(".")))
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
