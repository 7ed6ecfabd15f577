//! Finding the JSON answer in what was printed: a command's stdout (the whole output, or its
//! last line that is an object) or a CLI's final message (the whole text, a fenced block, or
//! the outermost braces). Models and scripts like to say a few words around their answer.

use serde_json::Value;

/// Why a command's output holds no JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoJson {
    /// Nothing but white space.
    Empty,
    /// Text, but no line of it is a JSON object; `last_line` is the last one (cut to 200
    /// characters), to show what came instead.
    NotAnObject { last_line: String },
}

impl NoJson {
    /// What was wrong, in words for the feedback; `speaker` names who printed the output
    /// (`"the judge"`).
    pub fn describe(&self, speaker: &str) -> String {
        match self {
            NoJson::Empty => format!("{speaker} printed nothing"),
            NoJson::NotAnObject { last_line } => {
                format!("the output is not a JSON object ({last_line:?})")
            }
        }
    }
}

/// A command's answer: its whole output as a JSON object, or else its last line that is one.
pub fn in_output(output: &str) -> Result<Value, NoJson> {
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(output.trim()) {
        return Ok(v);
    }
    output
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .find_map(|l| match serde_json::from_str::<Value>(l.trim()) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => None,
        })
        .ok_or_else(|| match last_line(output) {
            Some(last_line) => NoJson::NotAnObject { last_line },
            None => NoJson::Empty,
        })
}

/// The JSON in an agent's final message: the whole text, else the last fenced block that is
/// JSON, else the text between the first `{` and the last `}`.
pub fn in_text(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Some(v);
    }
    if let Some(v) = fenced_blocks(text)
        .iter()
        .rev()
        .find_map(|block| serde_json::from_str::<Value>(block.trim()).ok())
    {
        return Some(v);
    }
    let (a, b) = (text.find('{')?, text.rfind('}')?);
    if a < b {
        serde_json::from_str::<Value>(&text[a..=b]).ok()
    } else {
        None
    }
}

/// The bodies of the closed ```` ``` ```` blocks of `text`, in order (the info string after
/// the opening fence is not part of the body).
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
        let Some(close) = after[body_start..].find("```") else {
            break;
        };
        blocks.push(&after[body_start..body_start + close]);
        rest = &after[body_start + close + 3..];
    }
    blocks
}

/// The last line of `text` that is not blank, trimmed and cut to 200 characters: what a
/// failing program said last, for a one-line message.
pub fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_json_line_is_the_answer() {
        assert_eq!(
            in_output("thinking...\n{\"vote\": \"A\", \"reason\": \"r\"}\n").unwrap()["vote"],
            "A"
        );
        assert_eq!(
            in_output("{\n  \"vote\": \"B\",\n  \"reason\": \"r\"\n}\n").unwrap()["vote"],
            "B"
        );
        assert_eq!(in_output(" \n\n"), Err(NoJson::Empty));
        assert_eq!(
            in_output("I pick A"),
            Err(NoJson::NotAnObject {
                last_line: "I pick A".into()
            })
        );
        // A JSON value that is not an object is not an answer.
        assert!(in_output("[1, 2]\n\"A\"\n").is_err());
    }

    #[test]
    fn no_json_is_described_for_the_feedback() {
        assert_eq!(
            NoJson::Empty.describe("the judge"),
            "the judge printed nothing"
        );
        assert_eq!(
            in_output("I pick A").unwrap_err().describe("the judge"),
            "the output is not a JSON object (\"I pick A\")"
        );
    }

    #[test]
    fn json_is_found_in_prose() {
        let fenced = "Here is my review.\n```json\n{\"findings\": [{\"path\": \"a\", \"line\": 1, \"title\": \"t\"}]}\n```\nDone.";
        assert!(in_text(fenced).unwrap()["findings"].is_array());
        let bare = "Review: {\"findings\": []} that is all";
        assert!(in_text(bare).unwrap()["findings"].is_array());
        assert!(in_text("{\"findings\": []}").is_some());
        assert!(in_text("No problems found.").is_none());
        assert!(in_text("} backwards {").is_none());
    }

    #[test]
    fn the_last_fenced_block_that_is_json_wins() {
        let text = "```json\n{\"n\": 1}\n```\nthen\n```\n{\"n\": 2}\n```\n```sh\nnot json\n```";
        assert_eq!(in_text(text).unwrap()["n"], 2);
        assert_eq!(fenced_blocks("```\nopen only"), Vec::<&str>::new());
    }

    #[test]
    fn last_lines_are_trimmed_and_cut() {
        assert_eq!(last_line("a\n  b  \n\n").as_deref(), Some("b"));
        assert_eq!(last_line(" \n"), None);
        assert_eq!(last_line(&"x".repeat(300)).map(|l| l.len()), Some(200));
    }
}
