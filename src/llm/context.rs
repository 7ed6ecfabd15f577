//! Keeping a conversation within the model's context window: estimate tokens per message;
//! shorten old tool outputs first, then drop the oldest middle turns with a note; fail
//! clearly when even the task and the last turn do not fit.
//!
//! The estimate starts conservative (2.5 characters per token: code and digits take far
//! more tokens than prose) and is then calibrated from what the server counted: every
//! response's usage gives the true prompt tokens for the characters sent ([`Estimator`]).
//! A server that still rejects a request for length says so in its own words; [`overflow`]
//! reads its numbers, so that the conversation can be shortened with them and sent again.
//!
//! No tokenizer is bundled: the models behind an agent are mostly not OpenAI's (Claude,
//! Gemini, whatever a local server runs), each with its own vocabulary, and the count a
//! server reports is exact for the model it runs.

use serde_json::Value;

use super::chat::{Message, Part};

/// How the note about dropped messages ends (to find it again).
const NOTE_END: &str = "; the task above still holds]";

/// Tokens an image is counted as (providers charge roughly this for a mid-size picture).
const IMAGE_TOKENS: u64 = 1_600;
/// Characters kept of a shortened tool output.
const SHORT_OUTPUT: usize = 400;
/// Tool outputs of the most recent messages are never shortened.
const KEEP_RECENT: usize = 4;

/// Characters per token before the server has counted anything: low enough for code and
/// digits (a 7.6 KB task of digits was 8.1k–9.1k tokens on a real server), so that a request
/// is over-estimated rather than sent and rejected.
pub const START_CHARS_PER_TOKEN: f64 = 2.5;
/// The most characters a token is ever taken to hold: English prose with the largest
/// vocabularies comes near 4.
pub const MAX_CHARS_PER_TOKEN: f64 = 4.0;
/// Framing tokens counted per message.
const FRAMING: u64 = 8;

/// Characters of text in a message (what tokens are counted from) and its images.
pub fn size(m: &Message) -> (usize, u64) {
    let chars = m
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
    (chars, images)
}

/// Tokens from characters, at a ratio learned from the server's own counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimator {
    pub chars_per_token: f64,
}

impl Default for Estimator {
    fn default() -> Self {
        Estimator {
            chars_per_token: START_CHARS_PER_TOKEN,
        }
    }
}

impl Estimator {
    pub fn estimate(&self, m: &Message) -> u64 {
        let (chars, images) = size(m);
        self.of_size(chars, images)
    }

    /// Tokens of a message of `chars` characters and `images` images ([`size`]).
    pub fn of_size(&self, chars: usize, images: u64) -> u64 {
        self.tokens(chars) + FRAMING + images * IMAGE_TOKENS
    }

    pub fn estimate_all(&self, messages: &[Message]) -> u64 {
        messages.iter().map(|m| self.estimate(m)).sum()
    }

    /// Tokens of `chars` characters of text.
    pub fn tokens(&self, chars: usize) -> u64 {
        (chars as f64 / self.chars_per_token).ceil() as u64
    }

    /// Learns from a request of `chars` characters, `messages` messages and `images`
    /// images that the server counted as `prompt_tokens`. The ratio is kept 10% below what
    /// was seen, so that the next, different request is not estimated short, and never
    /// above [`MAX_CHARS_PER_TOKEN`] (a server that under-reports, as a cache discount
    /// might, must not make a request look small).
    pub fn learn(&mut self, chars: usize, messages: usize, images: u64, prompt_tokens: u64) {
        let text_tokens = prompt_tokens
            .saturating_sub(images * IMAGE_TOKENS)
            .saturating_sub(messages as u64 * FRAMING);
        // Too little to go on: a tiny request is mostly the server's own framing.
        if chars < 200 || text_tokens == 0 {
            return;
        }
        self.chars_per_token =
            (chars as f64 / text_tokens as f64 * 0.9).clamp(0.5, MAX_CHARS_PER_TOKEN);
    }
}

/// A server's refusal of a request longer than the context window, out of its error body:
/// `Some((prompt tokens, window))`, each as far as the server said. Understood: llama.cpp's
/// `exceed_context_size_error` (`n_prompt_tokens`, `n_ctx`), vLLM's and OpenAI's "maximum
/// context length is N tokens" (`context_length_exceeded`), Anthropic's "prompt is too
/// long: N tokens > M maximum", Gemini's "input token count (N) exceeds the maximum number
/// of tokens allowed (M)".
pub fn overflow(body: &str) -> Option<(Option<u64>, Option<u64>)> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = v.get("error").unwrap_or(&v);
    if err["type"] == "exceed_context_size_error" {
        return Some((err["n_prompt_tokens"].as_u64(), err["n_ctx"].as_u64()));
    }
    let message = err["message"].as_str().unwrap_or(body).to_lowercase();
    let known = err["code"] == "context_length_exceeded"
        || [
            "maximum context length",
            "prompt is too long",
            "exceeds the maximum number of tokens",
            "context window",
            "context size",
        ]
        .iter()
        .any(|w| message.contains(w));
    if !known {
        return None;
    }
    let context = number_after(&message, "maximum context length is ")
        .or_else(|| number_after(&message, "maximum number of tokens allowed ("))
        .or_else(|| number_after(&message, "tokens > "))
        .or_else(|| number_after(&message, "context size ("))
        .or_else(|| number_after(&message, "context window of "));
    let prompt = number_after(&message, "resulted in ")
        .or_else(|| number_after(&message, "prompt is too long: "))
        .or_else(|| number_after(&message, "input token count ("))
        .or_else(|| number_after(&message, "your request has "))
        .or_else(|| number_after(&message, "tokens ("))
        .or_else(|| number_after(&message, "requested tokens ("))
        .or_else(|| number_after(&message, "request ("));
    Some((prompt, context))
}

/// The number that starts right after `prefix` in `s`.
fn number_after(s: &str, prefix: &str) -> Option<u64> {
    let at = s.find(prefix)? + prefix.len();
    let digits: String = s[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
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
pub fn fit(messages: &mut Vec<Message>, budget: u64, est: &Estimator) -> Result<Fitted, TooLong> {
    let total_of = |m: &[Message]| est.estimate_all(m);
    let mut done = Fitted::default();
    if total_of(messages) <= budget {
        return Ok(done);
    }
    // 1. Shorten old tool outputs, oldest first.
    let protected = messages.len().saturating_sub(KEEP_RECENT);
    for i in 1..protected {
        if total_of(messages) <= budget {
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
    while total_of(messages) > budget && messages.len() > 2 {
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
    let total = total_of(messages);
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

    /// The first estimate of messages, before any usage was seen.
    fn estimate_all(messages: &[Message]) -> u64 {
        Estimator::default().estimate_all(messages)
    }
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
        assert_eq!(
            fit(&mut m, 10_000, &Estimator::default()).unwrap(),
            Fitted::default()
        );
        assert_eq!(m, before);
    }

    #[test]
    fn old_outputs_are_shortened_before_anything_is_dropped() {
        let mut m = conversation(6, 4_000);
        let budget = estimate_all(&m) - 2_000;
        let done = fit(&mut m, budget, &Estimator::default()).unwrap();
        assert!(done.shortened > 0 && done.dropped == 0, "{done:?}");
        assert!(estimate_all(&m) <= budget);
        assert_eq!(m.len(), 13);
    }

    #[test]
    fn middle_turns_are_dropped_with_a_note_and_pairs_stay_whole() {
        let mut m = conversation(20, 300);
        let budget = 600;
        let done = fit(&mut m, budget, &Estimator::default()).unwrap();
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
        fit(&mut m, budget, &Estimator::default()).unwrap();
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
        fit(&mut m, budget, &Estimator::default()).unwrap();
        assert_eq!(m[1].role, Role::Assistant);
        for w in m[1..].windows(2) {
            assert_ne!(w[0].role, w[1].role);
        }
    }

    #[test]
    fn an_impossible_fit_is_an_error() {
        let mut m = vec![Message::user_text("x".repeat(10_000))];
        let err = fit(&mut m, 100, &Estimator::default()).unwrap_err();
        assert_eq!(err.budget, 100);
        assert!(err.to_string().contains("context_window"), "{err}");
    }
}

#[cfg(test)]
mod calibration_tests {
    use super::*;

    #[test]
    fn the_ratio_is_learned_from_the_servers_count() {
        let mut est = Estimator::default();
        // Digits: 7.6 KB counted as 8.1k tokens by a real server.
        est.learn(7_600, 1, 0, 8_100 + FRAMING);
        assert!(est.chars_per_token < 1.0, "{est:?}");
        let task = Message::user_text("7".repeat(7_600));
        assert!(est.estimate(&task) >= 8_100, "{}", est.estimate(&task));
        // Too little text teaches nothing.
        let before = est;
        est.learn(50, 1, 0, 40);
        assert_eq!(est, before);
        // The first estimate is conservative for code: well above 3.5 characters a token.
        assert_eq!(Estimator::default().tokens(3_500), 1_400);
    }

    #[test]
    fn overflow_refusals_are_read_with_their_numbers() {
        let llama_server = r#"{"error":{"code":400,"message":"request (9093 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9093,"n_ctx":4096}}"#;
        assert_eq!(overflow(llama_server), Some((Some(9093), Some(4096))));
        let vllm = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#;
        assert_eq!(overflow(vllm), Some((Some(4000), Some(4096))));
        let openai = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130532 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        assert_eq!(overflow(openai), Some((Some(130_532), Some(128_000))));
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#;
        assert_eq!(overflow(anthropic), Some((Some(208_310), Some(200_000))));
        let gemini = r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(overflow(gemini), Some((Some(1_200_000), Some(1_048_576))));
        assert_eq!(
            overflow(r#"{"error":{"message":"invalid model","code":"model_not_found"}}"#),
            None
        );
    }
}
