//! A planner's answer: the JSON Schema it is given, the [`Question`] it is asked (the
//! `write_plan` tool of an LLM planner), and an answer turned into plan-file text and checked
//! exactly as `plan check` checks a file; everything wrong is said at once, for the next
//! attempt.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ask::respondent::Question;
use crate::llm::chat::ToolSpec;
use crate::plan::{MAX_TASKS, PlanFileError, TaskPlan};

/// The JSON Schema of a planner's answer.
pub fn schema(agents: &[String]) -> Value {
    let id = json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$", "maxLength": 64 });
    json!({
        "type": "object",
        "properties": {
            "name": id,
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_TASKS,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": id,
                        "title": { "type": "string", "minLength": 1, "description": "The task in a few words." },
                        "task": { "type": "string", "minLength": 1, "description": "The whole instruction for the agents." },
                        "depends_on": { "type": "array", "items": { "type": "string" }, "description": "Ids of the tasks that must be done first." },
                        "agents": { "type": "array", "items": { "type": "string", "enum": agents }, "minItems": 1 },
                        "test": { "type": "string", "minLength": 1, "description": "A shell command that checks the task's work." },
                    },
                    "required": ["id", "title", "task", "depends_on"],
                    "additionalProperties": false,
                },
            },
        },
        "required": ["name", "tasks"],
        "additionalProperties": false,
    })
}

/// What a planner is asked for: a plan, checked as `plan check` checks a file.
pub(super) struct Planning<'a> {
    pub agents: &'a [String],
    pub goal: &'a str,
    pub planner: &'a str,
}

impl Question for Planning<'_> {
    type Answer = (TaskPlan, String);

    fn check(&self, answer: &Value) -> Result<(TaskPlan, String), String> {
        checked(answer, self.agents, self.goal, self.planner)
    }

    fn role(&self) -> &'static str {
        "the planner"
    }

    fn shape(&self) -> &'static str {
        "{\"name\": ..., \"tasks\": [...]}"
    }

    fn system(&self) -> &'static str {
        "You plan changes to a code base as tasks for coding agents. You read the code you \
         need, never change it, and answer only by calling `write_plan`."
    }

    fn tool(&self) -> ToolSpec {
        ToolSpec {
            name: "write_plan",
            description: "Give the plan: its name and its tasks. Call it once, at the end.",
            schema: json!({
                "type": "object",
                "properties": { "plan": schema(self.agents) },
                "required": ["plan"],
            }),
        }
    }

    fn nudge(&self) -> &'static str {
        "Finish by calling `write_plan` with the plan."
    }
}

/// One task of an answer, as the planner may write it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct AnswerTask {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    task: String,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agents: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    test: Option<String>,
}

/// The plan file as written.
#[derive(Serialize)]
struct PlanFile<'a> {
    name: &'a str,
    tasks: Vec<AnswerTask>,
}

/// An answer (`{"name", "tasks"}`, or that inside `{"plan": ...}`) turned into a plan file
/// and checked as `plan check` checks one; `Err` says everything that is wrong, for the
/// next attempt.
fn checked(
    answer: &Value,
    agents: &[String],
    goal: &str,
    planner: &str,
) -> Result<(TaskPlan, String), String> {
    let plan = answer
        .get("plan")
        .filter(|p| p.is_object())
        .unwrap_or(answer);
    let object = plan
        .as_object()
        .ok_or("the answer is not a JSON object {\"name\", \"tasks\"}")?;
    let mut wrong: Vec<String> = object
        .keys()
        .filter(|k| !matches!(k.as_str(), "name" | "tasks"))
        .map(|k| format!("unknown key `{k}` (a plan has `name` and `tasks`)"))
        .collect();
    let name = object.get("name").and_then(Value::as_str);
    if name.is_none() {
        wrong.push("the plan has no `name` (a string)".into());
    }
    let Some(raw_tasks) = object.get("tasks").and_then(Value::as_array) else {
        wrong.push("the plan has no `tasks` list".into());
        return Err(wrong.join("; "));
    };
    let mut tasks = Vec::with_capacity(raw_tasks.len());
    for (i, raw) in raw_tasks.iter().enumerate() {
        match AnswerTask::deserialize(raw) {
            Ok(task) => tasks.push(task),
            Err(e) => wrong.push(format!("task {} of the list: {e}", i + 1)),
        }
    }
    let Some(name) = name.filter(|_| wrong.is_empty()) else {
        return Err(wrong.join("; "));
    };
    let text = to_toml(&PlanFile { name, tasks }, goal, planner);
    match crate::plan::file::parse(&text, Path::new("plan.toml"), name, Some(agents)) {
        Ok(plan) => Ok((plan, text)),
        Err(PlanFileError::Invalid { problems, .. }) => {
            let said: Vec<String> = problems
                .iter()
                .map(|p| match &p.hint {
                    Some(hint) => format!("{} ({hint})", p.message),
                    None => p.message.clone(),
                })
                .collect();
            Err(format!("the plan is not valid: {}", said.join("; ")))
        }
        Err(other) => Err(other.to_string()),
    }
}

/// The plan file's text: a comment naming the goal and the planner, then the plan.
fn to_toml(plan: &PlanFile<'_>, goal: &str, planner: &str) -> String {
    let mut out =
        format!("# Written by `git massgen plan new --planner {planner}` for the goal:\n");
    for line in goal.trim().lines() {
        // A comment may not hold control characters.
        let line: String = line
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        match line.trim_end() {
            "" => out.push_str("#\n"),
            line => out.push_str(&format!("#   {line}\n")),
        }
    }
    out.push_str(
        "# Check it with `git massgen plan check FILE`, run it with `git massgen plan run FILE`.\n\n",
    );
    out.push_str(&toml::to_string_pretty(plan).expect("a plan serializes as TOML"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> Vec<String> {
        vec!["claude".to_owned(), "codex".to_owned()]
    }

    fn check(answer: Value) -> Result<(TaskPlan, String), String> {
        checked(&answer, &configured(), "Add sign-up\nand login", "claude")
    }

    #[test]
    fn a_valid_answer_becomes_a_plan_file_that_plan_check_accepts() {
        let (plan, text) = check(json!({"plan": {"name": "auth", "tasks": [
            {"id": "schema", "title": "Users table", "task": "Write the migration.\nAnd its rollback.", "depends_on": []},
            {"id": "api", "title": "Endpoints", "task": "Add POST /signup.", "depends_on": ["schema"], "agents": ["codex"], "test": "cargo test api"},
        ]}}))
        .unwrap();
        assert_eq!(plan.name, "auth");
        assert_eq!(plan.tasks[1].wave, 2);
        assert!(text.starts_with("# Written by `git massgen plan new --planner claude` for the goal:\n#   Add sign-up\n#   and login\n"), "{text}");
        let again =
            crate::plan::file::parse(&text, Path::new("auth.toml"), "x", Some(&configured()))
                .unwrap();
        assert_eq!(again, plan, "the text is the plan:\n{text}");
        assert_eq!(
            again.tasks[0].task,
            "Write the migration.\nAnd its rollback."
        );
    }

    #[test]
    fn what_plan_check_rejects_is_told_back() {
        let cycle = check(json!({"name": "p", "tasks": [
            {"id": "a", "title": "A", "task": "x", "depends_on": ["b"]},
            {"id": "b", "title": "B", "task": "y", "depends_on": ["a"]},
        ]}))
        .unwrap_err();
        assert!(
            cycle.starts_with("the plan is not valid: dependency cycle: a → b → a ("),
            "{cycle}"
        );
        let many: Vec<Value> = (0..=MAX_TASKS)
            .map(|i| json!({"id": format!("t{i}"), "title": "t", "task": "x", "depends_on": []}))
            .collect();
        let too_many = check(json!({"name": "p", "tasks": many})).unwrap_err();
        assert!(
            too_many.contains("plan has 101 tasks; at most 100"),
            "{too_many}"
        );
        let bad = check(json!({"name": "p", "tasks": [
            {"id": "a", "title": "A", "task": " ", "depends_on": ["zz"], "agents": ["nobody"]},
            {"id": "a", "title": "A", "task": "x", "depends_on": []},
        ]}))
        .unwrap_err();
        for why in [
            "`task` is empty",
            "depends on unknown task `zz`",
            "no agent named `nobody`",
            "configured agents: claude, codex",
            "task id `a` is used twice",
        ] {
            assert!(bad.contains(why), "{why}: {bad}");
        }
    }

    #[test]
    fn a_wrong_shape_is_named() {
        assert_eq!(
            check(json!({"tasks": [{"id": "a", "task": "x", "rounds": 2}], "extra": 1}))
                .unwrap_err(),
            "unknown key `extra` (a plan has `name` and `tasks`); the plan has no `name` (a string); \
             task 1 of the list: unknown field `rounds`, expected one of `id`, `title`, `task`, `depends_on`, `agents`, `test`"
        );
        assert_eq!(
            check(json!({"name": "p"})).unwrap_err(),
            "the plan has no `tasks` list"
        );
        assert!(
            check(json!({"name": "p", "tasks": [{"id": 3, "task": "x"}]}))
                .unwrap_err()
                .contains("task 1 of the list: invalid type")
        );
        assert!(
            check(json!({"name": "../x", "tasks": [{"id": "a", "task": "x"}]}))
                .unwrap_err()
                .contains("invalid plan name `../x`")
        );
    }
}
