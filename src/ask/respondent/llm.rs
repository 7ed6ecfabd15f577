//! LLM respondents: one conversation over the built-in HTTP backends (shared rate limits,
//! retries and usage included). The model may read the tree with the read-only tools
//! (`list_files`, `read_file`, `search`) and answers with the question's tool; a reply whose
//! text is the JSON asked for is taken too.

use super::{Question, Report, Respondent, Setting, in_message};
use crate::agent::builtin::tools::{self as builtin_tools, Tools};
use crate::agent::events::Usage;
use crate::ask::GaveUp;
use crate::ask::Secret;
use crate::llm::Endpoint;
use crate::llm::chat::{Message, Part, Role, ToolSpec};
use crate::llm::session::Session;

const READ_ONLY: [&str; 3] = ["list_files", "read_file", "search"];

pub(super) async fn ask<Q: Question>(
    respondent: &Respondent,
    endpoint: &Endpoint,
    key: Option<&Secret>,
    max_turns: u32,
    setting: &Setting,
    question: &Q,
    report: &mut Report,
) -> Result<Q::Answer, GaveUp> {
    let tools = Tools::new(&setting.tree)
        .map_err(|e| GaveUp::Failed(format!("cannot read the tree: {e}")))?;
    let answer_tool = question.tool();
    let tool_name = answer_tool.name;
    let mut specs: Vec<ToolSpec> = builtin_tools::specs()
        .into_iter()
        .filter(|t| READ_ONLY.contains(&t.name))
        .collect();
    specs.push(answer_tool);
    let mut session = Session::new(
        endpoint,
        key.map(|k| k.0.as_str()),
        question.system(),
        &specs,
        None,
    )
    .map_err(|e| GaveUp::Failed(e.to_string()))?;
    let mut messages = vec![Message::user_text(setting.prompt.clone())];
    let mut last_problem = String::new();
    let log = setting.log(&respondent.name, "conversation");
    let max_turns = max_turns.max(1);
    for _turn in 1..=max_turns {
        let reply = session
            .turn(&mut messages, &mut |_| {})
            .await
            .map_err(|e| GaveUp::Failed(e.to_string()))?;
        if let Some(used) = endpoint.usage(&reply) {
            report.usage.get_or_insert_with(Usage::default).add(&used);
        }
        messages.push(Message::from_reply(&reply));
        let _ = std::fs::write(
            &log,
            serde_json::to_vec_pretty(&messages).unwrap_or_default(),
        );
        if reply.truncated {
            // An answer cut at the output limit is not an answer, even when it parses.
            let (problem, again) = Message::cut_answer(
                &reply,
                endpoint.max_output_tokens,
                &format!("Call `{tool_name}` again, with shorter text."),
            );
            report.attempts += 1;
            report.warnings.push(format!("{problem}; asked again"));
            last_problem = problem;
            if report.attempts >= setting.max_attempts {
                break;
            }
            messages.push(again);
            continue;
        }
        if reply.calls.is_empty() {
            // Some models answer in text; take that when it is the JSON asked for.
            report.attempts += 1;
            let told = match in_message(question, &reply.text).map(|v| question.check(&v)) {
                Ok(Ok(answer)) => return Ok(answer),
                // JSON, but a wrong answer: say what is wrong with it.
                Ok(Err(why)) => {
                    let told = format!("{why}. Answer by calling `{tool_name}`.");
                    last_problem = why;
                    told
                }
                Err(_) => {
                    last_problem = "the reply called no tool".into();
                    question.nudge().to_owned()
                }
            };
            if report.attempts >= setting.max_attempts {
                break;
            }
            messages.push(Message::user_text(told));
            continue;
        }
        let mut results = Vec::new();
        for call in &reply.calls {
            let (output, is_error) = if call.name == tool_name {
                report.attempts += 1;
                match question.check(&call.args) {
                    Ok(answer) => return Ok(answer),
                    Err(why) => {
                        let told = format!("error: {why}. Call `{tool_name}` again.");
                        last_problem = why;
                        (told, true)
                    }
                }
            } else if READ_ONLY.contains(&call.name.as_str()) {
                let out = tools.call(&call.name, &call.args).await;
                (out.output, out.is_error)
            } else {
                (
                    format!(
                        "error: there is no tool `{}`; the tree is read-only: answer with `{tool_name}`",
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
        if report.attempts >= setting.max_attempts {
            break;
        }
        messages.push(Message {
            role: Role::User,
            parts: results,
        });
    }
    Err(GaveUp::Malformed(if report.attempts == 0 {
        format!("the conversation ended after {max_turns} turn(s) without an answer")
    } else {
        last_problem
    }))
}
