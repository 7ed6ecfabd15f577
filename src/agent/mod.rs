//! Agents: what runs in a candidate's worktree, how it is given the task, and how it is
//! supervised.
//!
//! The task is data. It reaches an agent as one argv element (placeholders are replaced
//! inside arguments, never re-split), as a file, and as environment variables; no shell is
//! ever involved.

pub mod builtin;
pub mod cli;
pub mod doctor;
pub mod events;
pub mod process;
pub mod prompt;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A resolved agent: name, what it runs, extra environment, time limit.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub name: String,
    pub kind: Kind,
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Its own setup commands, run after the `[worktree] setup` ones (empty with
    /// `--no-setup`).
    pub setup: Vec<String>,
    /// Paths it may write beside its worktree under the sandbox (`allow_write`, its CLI's
    /// own configuration with `own_config`, the rate-limit state of the built-in agent).
    pub allow_write: Vec<std::path::PathBuf>,
    /// Given with `--agent-cmd` rather than configured: its argv is kept with the run.
    pub ad_hoc: bool,
}

/// What an agent runs.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Any program; the argv template is expanded by [`Invocation::expand`].
    Command(Vec<String>),
    /// One of the known coding-agent CLIs.
    Cli(cli::CliAgent),
}

impl AgentSpec {
    /// `command` or the preset's name.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Command(_) => "command",
            Kind::Cli(cli) => cli.preset.name(),
        }
    }
}

/// What an agent is told about its job.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    pub run: &'a str,
    pub agent: &'a str,
    pub task: &'a str,
    pub task_file: &'a Path,
    /// The task wrapped in the prompt template.
    pub prompt: &'a str,
    pub prompt_file: &'a Path,
    pub worktree: &'a Path,
    pub base: &'a str,
}

impl Invocation<'_> {
    /// `argv` with `{task}`, `{task_file}`, `{prompt}`, `{prompt_file}`, `{worktree}`,
    /// `{run}`, `{agent}` and `{base}` replaced inside each argument. Replacement is
    /// single-pass, so a task that itself contains `{worktree}` stays as written.
    pub fn expand(&self, argv: &[String]) -> Vec<String> {
        argv.iter().map(|arg| self.expand_one(arg)).collect()
    }

    fn expand_one(&self, arg: &str) -> String {
        fill(
            arg,
            &[
                ("task", self.task),
                ("task_file", &self.task_file.display().to_string()),
                ("prompt", self.prompt),
                ("prompt_file", &self.prompt_file.display().to_string()),
                ("worktree", &self.worktree.display().to_string()),
                ("run", self.run),
                ("agent", self.agent),
                ("base", self.base),
            ],
        )
    }

    /// The `MASSGEN_*` environment every agent gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MASSGEN_TASK", self.task.to_owned()),
            ("MASSGEN_TASK_FILE", self.task_file.display().to_string()),
            (
                "MASSGEN_PROMPT_FILE",
                self.prompt_file.display().to_string(),
            ),
            ("MASSGEN_RUN", self.run.to_owned()),
            ("MASSGEN_AGENT", self.agent.to_owned()),
            ("MASSGEN_WORKTREE", self.worktree.display().to_string()),
            ("MASSGEN_BASE", self.base.to_owned()),
            // Lets hooks and nested tools know they run inside a massgen agent.
            ("MASSGEN_ACTIVE", "1".to_owned()),
            // git run by the agent stops at its worktree: if the worktree's `.git` is
            // deleted, git finds no repository rather than one above it (a worktree root
            // configured inside the user's work tree).
            (
                "GIT_CEILING_DIRECTORIES",
                self.worktree
                    .parent()
                    .unwrap_or(self.worktree)
                    .display()
                    .to_string(),
            ),
        ]
    }
}

/// Replaces each `{key}` of `vars` in `text`, in one pass: a value that itself contains
/// `{key}` stays as written. Unknown `{...}` are left alone.
pub fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let found = vars
            .iter()
            .find(|(key, _)| after.starts_with(key) && after[key.len()..].starts_with('}'));
        match found {
            Some((key, value)) => {
                out.push_str(value);
                rest = &after[key.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses `NAME=COMMAND` from `--agent-cmd`, splitting COMMAND into words like a POSIX
/// shell would (quotes, backslashes) without ever running one.
pub fn parse_agent_cmd(spec: &str) -> Result<(String, Vec<String>), String> {
    let (name, command) = spec
        .split_once('=')
        .ok_or_else(|| format!("`{spec}` is not NAME=COMMAND"))?;
    let name = name.trim();
    crate::config::validate_agent_name(name)?;
    let argv = shell_words::split(command)
        .map_err(|e| format!("cannot split the command of `{name}`: {e}"))?;
    if argv.is_empty() {
        return Err(format!("agent `{name}` has an empty command"));
    }
    Ok((name.to_owned(), argv))
}

/// Checks what only the agent layer knows about a configuration: that every `kind = "llm"`
/// agent, judge and reviewer names a provider we know. Reported at the entry's name, like
/// the checks `config` makes itself.
pub fn check_config(config: &crate::config::Config) -> Result<(), crate::config::ConfigError> {
    let lists = [
        ("agent", &config.agents),
        ("judge", &config.judges),
        ("reviewer", &config.reviewers),
    ];
    for (what, list) in lists {
        for a in list {
            if a.kind == crate::config::AgentKind::Llm
                && let Some(provider) = a.provider.as_deref()
                && let Err(e) = crate::llm::provider::find(provider)
            {
                let name = a.name.get_ref();
                return Err(config.invalid_at(a.name.span(), format!("{what} `{name}`: {e}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv<'a>(task: &'a str) -> Invocation<'a> {
        Invocation {
            run: "r1",
            agent: "a",
            task,
            task_file: Path::new("/tmp/t.txt"),
            prompt: "p",
            prompt_file: Path::new("/tmp/p.txt"),
            worktree: Path::new("/w t"),
            base: "abc",
        }
    }

    #[test]
    fn git_in_an_agent_stops_at_its_worktree() {
        let i = Invocation {
            worktree: Path::new("/cache/wt/run/a"),
            ..inv("t")
        };
        let env = i.env();
        let ceiling = env.iter().find(|(k, _)| *k == "GIT_CEILING_DIRECTORIES");
        assert_eq!(ceiling.map(|(_, v)| v.as_str()), Some("/cache/wt/run"));
    }

    #[test]
    fn placeholders_expand_inside_arguments() {
        let argv = vec![
            "--task={task}".into(),
            "{worktree}".into(),
            "{unknown}".into(),
            "{".into(),
        ];
        assert_eq!(
            inv("fix it").expand(&argv),
            vec!["--task=fix it", "/w t", "{unknown}", "{"]
        );
    }

    #[test]
    fn task_text_is_not_expanded_again() {
        let argv = vec!["{task}".into()];
        assert_eq!(
            inv("say {worktree} $(rm -rf /)").expand(&argv),
            vec!["say {worktree} $(rm -rf /)"]
        );
    }

    #[test]
    fn agent_cmd_splits_like_a_shell() {
        let (name, argv) = parse_agent_cmd("x=sh -c 'echo \"$1\"' -- {task}").unwrap();
        assert_eq!(name, "x");
        assert_eq!(argv, vec!["sh", "-c", "echo \"$1\"", "--", "{task}"]);
        assert!(parse_agent_cmd("noequals").is_err());
        assert!(parse_agent_cmd("bad/name=x").is_err());
        assert!(parse_agent_cmd("x=").is_err());
    }
}
