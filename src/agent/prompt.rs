//! Prompt templates: the task wrapped in the rules every agent works under, and the
//! follow-up that tells an agent that asked a question to finish on its own.
//!
//! Built-in templates live in `templates/`; a file of the same name in
//! `.massgen/templates/` replaces one. Placeholders are `{name}`, filled in one pass.

use std::path::Path;

/// A template known by name.
#[derive(Debug, Clone, Copy)]
pub enum Template {
    /// `prompt.md`: `{task}`, `{worktree}`, `{test_rule}`, `{agent}`, `{run}`.
    Prompt,
    /// `nudge.md`: no placeholders needed.
    Nudge,
    /// `llm_system.md`: the built-in agent's system prompt.
    LlmSystem,
    /// `judge.md`: what an LLM judge is asked (`{task}`, `{candidates}`, `{labels}`).
    Judge,
    /// `round.md`: a refinement round (`{task}`, `{candidates}`, `{labels}`, `{yours}`,
    /// `{vote_file}`, `{worktree}`, `{round}`, `{test_rule}`).
    Round,
    /// `continue.md`: a turn of `run --continue` (`{task}`, `{earlier}`, `{follow_up}`,
    /// `{worktree}`, `{test_rule}`, `{agent}`, `{run}`).
    Continue,
    /// `review.md`: what a CLI or LLM reviewer is asked (`{target}`, `{files}`, `{diff}`,
    /// `{diff_file}`, `{worktree}`, `{base}`, `{head}`).
    Review,
    /// `plan.md`: what the planner of `plan new` is asked (`{goal}`, `{schema}`, `{agents}`,
    /// `{files}`, `{worktree}`, `{max_tasks}`).
    Plan,
}

impl Template {
    pub fn file_name(self) -> &'static str {
        match self {
            Template::Prompt => "prompt.md",
            Template::Nudge => "nudge.md",
            Template::LlmSystem => "llm_system.md",
            Template::Judge => "judge.md",
            Template::Round => "round.md",
            Template::Continue => "continue.md",
            Template::Review => "review.md",
            Template::Plan => "plan.md",
        }
    }

    fn builtin(self) -> &'static str {
        match self {
            Template::Prompt => include_str!("../../templates/prompt.md"),
            Template::Nudge => include_str!("../../templates/nudge.md"),
            Template::LlmSystem => include_str!("../../templates/llm_system.md"),
            Template::Judge => include_str!("../../templates/judge.md"),
            Template::Round => include_str!("../../templates/round.md"),
            Template::Continue => include_str!("../../templates/continue.md"),
            Template::Review => include_str!("../../templates/review.md"),
            Template::Plan => include_str!("../../templates/plan.md"),
        }
    }

    /// The override in `<massgen_dir>/templates/`, else the built-in text.
    pub fn load(self, massgen_dir: &Path) -> std::io::Result<String> {
        let path = massgen_dir.join("templates").join(self.file_name());
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.builtin().to_owned()),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }
}

/// The sentence of the prompt about tests.
pub fn test_rule(test: Option<&str>) -> String {
    match test {
        Some(cmd) => {
            format!("Run the project's tests (`{cmd}`) before you finish, and make them pass.")
        }
        None => "Run the project's tests, if it has any, before you finish.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_holds_the_task_once_and_unexpanded() {
        let text = Template::Prompt.load(Path::new("/nonexistent")).unwrap();
        let task = "fix {worktree} and $(rm -rf /)";
        let filled = super::super::fill(
            &text,
            &[
                ("task", task),
                ("worktree", "/w"),
                ("test_rule", &test_rule(Some("make test"))),
            ],
        );
        assert_eq!(filled.matches(task).count(), 1);
        assert!(filled.contains("Your worktree: /w"));
        assert!(filled.contains("`make test`"));
        assert!(filled.contains("No human is available"));
    }

    #[test]
    fn override_replaces_the_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/nudge.md"), "finish now").unwrap();
        assert_eq!(Template::Nudge.load(dir.path()).unwrap(), "finish now");
    }
}
