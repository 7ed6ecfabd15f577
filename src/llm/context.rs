//! Keeping a conversation within the model's context window: estimate tokens per message;
//! shorten old tool outputs first, then drop the oldest middle turns with a note; fail
//! clearly when even the task and the last turn do not fit. A request the model would have
//! to reject for length is never sent.

use super::chat::{Message, Part};

/// How the note about dropped messages ends (to find it again).
const NOTE_END: &str = "; the task above still holds]";

/// Tokens an image is counted as (providers charge roughly this for a mid-size picture).
const IMAGE_TOKENS: u64 = 1_600;
/// Characters kept of a shortened tool output.
const SHORT_OUTPUT: usize = 400;
/// Tool outputs of the most recent messages are never shortened.
const KEEP_RECENT: usize = 4;

/// A rough, deliberately generous estimate: a token per 3.5 characters, plus framing.
pub fn estimate(m: &Message) -> u64 {
    let chars: usize = m
        .parts
        .iter()
        .map(|p| match p {
            Part::Text { text } => text.len(),
            Part::Image(_) => 0,
            Part::ToolCall(c) => c.name.len() + c.args.to_string().len(),
            Part::ToolResult { output, name, .. } => output.len() + name.len(),
        })
        .sum();
    let images = m
        .parts
        .iter()
        .filter(|p| matches!(p, Part::Image(_)))
        .count() as u64;
    (chars as f64 / 3.5).ceil() as u64 + 8 + images * IMAGE_TOKENS
}

pub fn estimate_all(messages: &[Message]) -> u64 {
    messages.iter().map(estimate).sum()
}

/// What fitting did.
#[derive(Debug, Default, PartialEq)]
pub struct Fitted {
    pub shortened: usize,
    pub dropped: usize,
}

/// A conversation that cannot be made to fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the conversation needs about {needed} tokens even after shortening, more than the {budget} the context window leaves; raise `context_window` or shorten the task"
)]
pub struct TooLong {
    /// Tokens the shortened conversation still needs (estimated).
    pub needed: u64,
    /// Tokens the window leaves for the messages.
    pub budget: u64,
}

/// Makes `messages` fit in `budget` tokens (the window less the system prompt, the tool
/// definitions and the room kept for the answer). The first message (the task) and the
/// newest turn are always kept; tool calls and their results are dropped together.
pub fn fit(messages: &mut Vec<Message>, budget: u64) -> Result<Fitted, TooLong> {
    let mut done = Fitted::default();
    if estimate_all(messages) <= budget {
        return Ok(done);
    }
    // 1. Shorten old tool outputs, oldest first.
    let protected = messages.len().saturating_sub(KEEP_RECENT);
    for i in 1..protected {
        if estimate_all(messages) <= budget {
            return Ok(done);
        }
        for part in &mut messages[i].parts {
            if let Part::ToolResult { output, .. } = part
                && output.len() > SHORT_OUTPUT + 100
            {
                let mut cut = SHORT_OUTPUT;
                while !output.is_char_boundary(cut) {
                    cut -= 1;
                }
                let dropped = output.len() - cut;
                output.truncate(cut);
                output.push_str(&format!(
                    "\n[... {dropped} more bytes of this output were removed to fit the context window]"
                ));
                done.shortened += 1;
            }
        }
    }
    // 2. Drop the oldest middle messages, whole exchanges at a time: never leave tool
    // results whose calls are gone.
    while estimate_all(messages) > budget && messages.len() > 2 {
        // Drop messages[1..end]: one message and what answers it (tool results, or the
        // user's reply to an assistant's words), so that roles keep alternating.
        let mut end = 2;
        while end < messages.len() && messages[end].has_tool_results() {
            end += 1;
        }
        if end == 2
            && messages[1].role == super::chat::Role::Assistant
            && end < messages.len() - 1
            && messages[end].role == super::chat::Role::User
        {
            end += 1;
        }
        // The newest turn stays, and the first kept message must not answer a dropped call.
        if end >= messages.len() || messages[end].has_tool_results() {
            break;
        }
        let n = end - 1;
        messages.drain(1..end);
        done.dropped += n;
    }
    if done.dropped > 0 {
        // The note is a part of its own after the task, replaced at each new drop and
        // counting every message dropped so far.
        let first = &mut messages[0].parts;
        let mut total = done.dropped;
        if let Some(Part::Text { text }) = first.last()
            && text.ends_with(NOTE_END)
        {
            total += text
                .trim_start_matches('[')
                .split(' ')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            first.pop();
        }
        first.push(Part::Text {
            text: format!(
                "[{total} earlier messages were dropped to fit the context window{NOTE_END}"
            ),
        });
    }
    let total = estimate_all(messages);
    if total > budget {
        return Err(TooLong {
            needed: total,
            budget,
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::chat::{Role, ToolCall};

    fn exchange(i: usize, output: &str) -> [Message; 2] {
        [
            Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(ToolCall {
                    id: format!("c{i}"),
                    name: "read_file".into(),
                    args: serde_json::json!({"path": "a"}),
                    truncated: false,
                })],
            },
            Message {
                role: Role::User,
                parts: vec![Part::ToolResult {
                    id: format!("c{i}"),
                    name: "read_file".into(),
                    output: output.into(),
                    is_error: false,
                }],
            },
        ]
    }

    fn conversation(turns: usize, output_len: usize) -> Vec<Message> {
        let mut m = vec![Message::user_text("the task")];
        for i in 0..turns {
            m.extend(exchange(i, &"x".repeat(output_len)));
        }
        m
    }

    #[test]
    fn small_conversations_are_untouched() {
        let mut m = conversation(2, 10);
        let before = m.clone();
        assert_eq!(fit(&mut m, 10_000).unwrap(), Fitted::default());
        assert_eq!(m, before);
    }

    #[test]
    fn old_outputs_are_shortened_before_anything_is_dropped() {
        let mut m = conversation(6, 4_000);
        let budget = estimate_all(&m) - 2_000;
        let done = fit(&mut m, budget).unwrap();
        assert!(done.shortened > 0 && done.dropped == 0, "{done:?}");
        assert!(estimate_all(&m) <= budget);
        assert_eq!(m.len(), 13);
    }

    #[test]
    fn middle_turns_are_dropped_with_a_note_and_pairs_stay_whole() {
        let mut m = conversation(20, 300);
        let budget = 600;
        let done = fit(&mut m, budget).unwrap();
        assert!(done.dropped > 0);
        assert!(estimate_all(&m) <= budget);
        assert_eq!(
            m[0].parts[0],
            Part::Text {
                text: "the task".into()
            }
        );
        let note = |m: &[Message]| -> usize {
            let notes: Vec<&String> = m[0]
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text } if text.contains("dropped to fit") => Some(text),
                    _ => None,
                })
                .collect();
            assert_eq!(notes.len(), 1, "{notes:?}");
            notes[0][1..].split(' ').next().unwrap().parse().unwrap()
        };
        let before = note(&m);
        // Every tool result still follows its call.
        for (i, msg) in m.iter().enumerate() {
            if msg.has_tool_results() {
                assert_eq!(m[i - 1].role, Role::Assistant);
            }
        }
        // Fitting again keeps one note, counting every message dropped so far.
        m.extend(exchange(99, &"y".repeat(300)));
        m.extend(exchange(100, &"y".repeat(300)));
        fit(&mut m, budget).unwrap();
        assert!(note(&m) > before);
        for w in m[1..].windows(2) {
            assert_ne!(w[0].role, w[1].role);
        }
    }

    #[test]
    fn a_nudge_goes_with_the_question_it_answers() {
        let mut m = vec![
            Message::user_text("the task"),
            Message {
                role: Role::Assistant,
                parts: vec![Part::Text {
                    text: "x".repeat(3000),
                }],
            },
            Message::user_text("no human is available"),
        ];
        for i in 0..3 {
            m.extend(exchange(i, "ok"));
        }
        let budget = estimate_all(&m) - 500;
        fit(&mut m, budget).unwrap();
        assert_eq!(m[1].role, Role::Assistant);
        for w in m[1..].windows(2) {
            assert_ne!(w[0].role, w[1].role);
        }
    }

    #[test]
    fn an_impossible_fit_is_an_error() {
        let mut m = vec![Message::user_text("x".repeat(10_000))];
        let err = fit(&mut m, 100).unwrap_err();
        assert_eq!(err.budget, 100);
        assert!(err.to_string().contains("context_window"), "{err}");
    }
}
