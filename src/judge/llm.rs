//! LLM judges: one conversation with the model over the built-in HTTP backends (shared rate
//! limits included), offering a single `vote{candidate, reason}` tool. A reply without a
//! valid vote is answered with what was wrong, up to the attempts allowed; then the judge
//! abstains.

use serde_json::json;

use super::{Ballot, Judge, Secret, Setting, Verdict, View, check_vote};
use crate::agent::events::Usage;
use crate::llm::Endpoint;
use crate::llm::chat::{Message, ToolSpec};
use crate::llm::session::Session;

/// The system prompt of every LLM judge.
const SYSTEM: &str =
    "You are an impartial reviewer of code changes. You answer only by calling the `vote` tool.";

fn vote_tool(view: &View) -> ToolSpec {
    let labels: Vec<&str> = view.labels.iter().map(|(l, _)| l.as_str()).collect();
    ToolSpec {
        name: "vote",
        description: "Vote for the best candidate.",
        schema: json!({
            "type": "object",
            "properties": {
                "candidate": { "type": "string", "enum": labels, "description": "The label of the candidate you vote for." },
                "reason": { "type": "string", "description": "One or two sentences on why it is the best." },
            },
            "required": ["candidate", "reason"],
            "additionalProperties": false,
        }),
    }
}

pub(super) async fn ask(
    judge: &Judge,
    endpoint: &Endpoint,
    key: Option<&Secret>,
    ballot: &Ballot,
    view: &View,
    setting: &Setting,
) -> Verdict {
    let mut verdict = Verdict {
        judge: judge.name.clone(),
        ..Default::default()
    };
    let tools = [vote_tool(view)];
    let mut session = match Session::new(endpoint, key.map(|k| k.0.as_str()), SYSTEM, &tools, None)
    {
        Ok(session) => session,
        Err(e) => {
            verdict.abstained = Some(e.to_string());
            return verdict;
        }
    };
    let prompt = crate::agent::fill(
        &setting.template,
        &[
            ("task", &ballot.task),
            ("candidates", &view.text),
            ("labels", &view.label_list()),
        ],
    );
    let mut messages = vec![Message::user_text(prompt)];
    let mut last_problem = String::new();
    for attempt in 1..=setting.max_attempts {
        verdict.attempts = attempt;
        let reply = match session.turn(&mut messages, &mut |_| {}).await {
            Ok(r) => r,
            Err(e) => {
                verdict.abstained = Some(e.to_string());
                return verdict;
            }
        };
        if let Some(used) = endpoint.usage(&reply) {
            verdict.usage.get_or_insert_with(Usage::default).add(&used);
        }
        messages.push(Message::from_reply(&reply));
        if reply.truncated {
            // An answer cut at the output limit is not a vote, even when a vote parses.
            let (problem, again) = Message::cut_answer(
                &reply,
                endpoint.max_output_tokens,
                &format!(
                    "Answer briefly: call `vote` with one of {} and a reason of one or two sentences.",
                    view.label_list()
                ),
            );
            verdict.warnings.push(format!("{problem}; asked again"));
            last_problem = problem;
            messages.push(again);
            continue;
        }
        let Some(call) = reply.calls.first() else {
            last_problem = "the reply called no tool".into();
            messages.push(Message::user_text(format!(
                "You did not vote. Call the `vote` tool with one of {} and a reason.",
                view.label_list()
            )));
            continue;
        };
        let answer = if call.name != "vote" {
            Err(format!("there is no tool `{}`; call `vote`", call.name))
        } else {
            check_vote(view, ballot, &call.args)
        };
        match answer {
            Ok(vote) => {
                verdict.vote = Some(vote);
                return verdict;
            }
            Err(why) => {
                messages.push(Message::answer_again(
                    &reply,
                    &format!("{why}. Vote again for one of {}.", view.label_list()),
                ));
                last_problem = why;
            }
        }
    }
    verdict.abstained = Some(format!(
        "no valid vote in {} attempt(s); last: {last_problem}",
        setting.max_attempts
    ));
    verdict
}
