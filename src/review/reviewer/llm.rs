//! LLM reviewers: one conversation over the built-in HTTP backends (shared rate limits,
//! retries and usage included). The model may read the reviewed tree with the read-only
//! tools (`list_files`, `read_file`, `search`) and answers with `report_findings`.

use serde_json::json;

use super::{Reviewer, Setting, findings_in_text, findings_of};
use crate::agent::builtin::tools::{self as builtin_tools, Tools};
use crate::agent::events::Usage;
use crate::ask::Secret;
use crate::llm::Endpoint;
use crate::llm::chat::{Message, Part, Role, ToolSpec};
use crate::llm::session::Session;
use crate::review::{Parsed, ReviewerOutcome};

const SYSTEM: &str = "You are a careful, precise code reviewer. You read the change and the \
    code around it, report only real problems, and answer by calling `report_findings`.";

const READ_ONLY: [&str; 3] = ["list_files", "read_file", "search"];

fn report_tool() -> ToolSpec {
    ToolSpec {
        name: "report_findings",
        description: "Report your review: every problem you found in the change (an empty list when there is none). Call it once, at the end.",
        schema: json!({
            "type": "object",
            "properties": {
                "findings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": { "type": "string", "description": "File, relative to the repository root." },
                            "line": { "type": "integer", "minimum": 1 },
                            "end_line": { "type": "integer", "minimum": 1 },
                            "severity": { "type": "string", "enum": ["error", "warning", "info"] },
                            "title": { "type": "string", "description": "The problem in a few words." },
                            "message": { "type": "string", "description": "What is wrong and why it matters." },
                            "suggestion": { "type": "string", "description": "How to fix it." },
                        },
                        "required": ["path", "line", "severity", "title", "message"],
                    },
                },
            },
            "required": ["findings"],
        }),
    }
}

pub(super) async fn review(
    reviewer: &Reviewer,
    endpoint: &Endpoint,
    key: Option<&Secret>,
    max_turns: u32,
    setting: &Setting,
    outcome: &mut ReviewerOutcome,
) -> Result<Parsed, String> {
    let tools =
        Tools::new(&setting.worktree).map_err(|e| format!("cannot read the reviewed tree: {e}"))?;
    let mut specs: Vec<ToolSpec> = builtin_tools::specs()
        .into_iter()
        .filter(|t| READ_ONLY.contains(&t.name))
        .collect();
    specs.push(report_tool());
    let mut session = Session::new(endpoint, key.map(|k| k.0.as_str()), SYSTEM, &specs, None)
        .map_err(|e| e.to_string())?;
    let mut messages = vec![Message::user_text(setting.prompt.clone())];
    let mut usage: Option<Usage> = None;
    let mut attempts = 0;
    let mut last_problem = String::from("no answer");
    let log = setting.log(&reviewer.name, "conversation");
    for _turn in 1..=max_turns.max(1) {
        let reply = match session.turn(&mut messages, &mut |_| {}).await {
            Ok(r) => r,
            Err(e) => {
                outcome.usage = usage;
                return Err(e.to_string());
            }
        };
        if let Some(used) = endpoint.usage(&reply) {
            usage.get_or_insert_with(Usage::default).add(&used);
        }
        outcome.usage = usage.clone();
        messages.push(Message::from_reply(&reply));
        let _ = std::fs::write(
            &log,
            serde_json::to_vec_pretty(&messages).unwrap_or_default(),
        );
        if reply.truncated {
            // Findings cut at the output limit are not a review, even when they parse.
            let limit = endpoint.max_output_tokens;
            attempts += 1;
            last_problem = format!("the answer was cut at the output limit ({limit} tokens)");
            outcome
                .warnings
                .push(format!("{last_problem}; asked again"));
            if attempts >= setting.max_attempts {
                break;
            }
            messages.push(Message::answer_again(
                &reply,
                &format!(
                    "Your answer was cut at the output limit ({limit} tokens). Call report_findings again, with shorter messages."
                ),
            ));
            continue;
        }
        if reply.calls.is_empty() {
            // Some models answer in text; take that when it is the JSON asked for.
            if let Ok(parsed) = findings_in_text(&reply.text).and_then(|v| findings_of(&v)) {
                return Ok(parsed);
            }
            attempts += 1;
            last_problem = "the reply called no tool".into();
            if attempts >= setting.max_attempts {
                break;
            }
            messages.push(Message::user_text(
                "Finish the review by calling `report_findings` (with an empty list when the change has no problem).",
            ));
            continue;
        }
        let mut results = Vec::new();
        for call in &reply.calls {
            let (output, is_error) = if call.name == "report_findings" {
                match findings_of(&call.args) {
                    Ok(parsed) => return Ok(parsed),
                    Err(why) => {
                        attempts += 1;
                        last_problem = why.clone();
                        (format!("error: {why}. Call report_findings again."), true)
                    }
                }
            } else if READ_ONLY.contains(&call.name.as_str()) {
                let out = tools.call(&call.name, &call.args).await;
                (out.output, out.is_error)
            } else {
                (
                    format!(
                        "error: there is no tool `{}` in a review; the tree is read-only",
                        call.name
                    ),
                    true,
                )
            };
            results.push(Part::ToolResult {
                id: call.id.clone(),
                name: call.name.clone(),
                output,
                is_error,
            });
        }
        if attempts >= setting.max_attempts {
            break;
        }
        messages.push(Message {
            role: Role::User,
            parts: results,
        });
    }
    Err(format!("no valid review: {last_problem}"))
}
