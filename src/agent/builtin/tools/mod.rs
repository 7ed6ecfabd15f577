//! The agent's tools, confined to its worktree.
//!
//! Every path argument is data: it must be relative, `..` is applied lexically and may not
//! climb above the root, and each symlink on the way is resolved and must stay inside, so
//! no tool reads or writes outside the worktree or inside `.git`. `run` is the one tool
//! whose argument reaches a shell; that is its purpose, and it runs in its own process
//! group so that everything it starts dies with it. Outputs are bounded so that one call
//! can never flood the model's context.

mod confine;
mod files;
mod run;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::llm::chat::ToolSpec;
pub use run::kill_running;

/// The most any tool's output may hold, in bytes.
const OUTPUT_LIMIT: usize = 32 * 1024;
/// How much of the end of a command's output `run` keeps.
const RUN_TAIL: usize = 16 * 1024;
const RUN_TIMEOUT_DEFAULT: u64 = 120;
const RUN_TIMEOUT_MAX: u64 = 600;
/// How long `run` waits for its output pipe to close once the group is dead: a process
/// that left the group (`setsid`) may hold it open forever.
const PIPE_GRACE: Duration = Duration::from_secs(2);
const LIST_DEPTH: usize = 3;
const LIST_LIMIT: usize = 500;
const READ_LIMIT: u64 = 400;
const SEARCH_LIMIT: usize = 200;
/// Longest line shown by read_file and search, in bytes.
const LINE_LIMIT: usize = 2000;
/// A file with a NUL byte in this many first bytes is binary.
const BINARY_PROBE: usize = 8 * 1024;
/// Files larger than this are not read, edited or searched.
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// All tools, in a fixed order: list_files, read_file, write_file, edit_file, search, run,
/// finish.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        tool(
            "list_files",
            "List a directory of the worktree, 3 levels deep, directories ending in `/`. \
             Files ignored by .gitignore are left out.",
            json!({ "path": { "type": "string", "description": "Directory, relative to the worktree root (default \".\")." } }),
            &[],
        ),
        tool(
            "read_file",
            "Read a text file, each line prefixed with its number and a tab: at most `limit` \
             lines (default 400) from line `offset` (1-based, default 1).",
            json!({
                "path": { "type": "string", "description": "File, relative to the worktree root." },
                "offset": { "type": "integer", "minimum": 1, "description": "First line to read." },
                "limit": { "type": "integer", "minimum": 1, "description": "Most lines to read." },
            }),
            &["path"],
        ),
        tool(
            "write_file",
            "Create or overwrite a file, creating its parent directories.",
            json!({
                "path": { "type": "string", "description": "File, relative to the worktree root." },
                "content": { "type": "string", "description": "The whole new content." },
            }),
            &["path", "content"],
        ),
        tool(
            "edit_file",
            "Replace one exact piece of text in a file. `old` must occur exactly once: \
             include enough surrounding lines to make it unique.",
            json!({
                "path": { "type": "string", "description": "File, relative to the worktree root." },
                "old": { "type": "string", "description": "The exact text to replace." },
                "new": { "type": "string", "description": "The text to put in its place." },
            }),
            &["path", "old", "new"],
        ),
        tool(
            "search",
            "Search file contents line by line with a regular expression (Rust syntax); \
             prints `path:line:text`, at most 200 matches. Ignored files are skipped.",
            json!({
                "pattern": { "type": "string", "description": "The regular expression." },
                "path": { "type": "string", "description": "File or directory to search (default \".\")." },
            }),
            &["pattern"],
        ),
        tool(
            "run",
            "Run a shell command (`sh -c`) in the worktree root without stdin; returns the \
             exit code and the last 16 KiB of stdout and stderr together. Everything it \
             starts is killed when it ends or times out.",
            json!({
                "command": { "type": "string", "description": "The shell command line." },
                "timeout": { "type": "integer", "minimum": 1, "maximum": 600, "description": "Seconds before it is killed (default 120)." },
            }),
            &["command"],
        ),
        tool(
            "finish",
            "Declare the task done and stop, with a short summary of what you changed.",
            json!({ "summary": { "type": "string", "description": "What was done." } }),
            &["summary"],
        ),
    ]
}

fn tool(
    name: &'static str,
    description: &'static str,
    props: Value,
    required: &[&str],
) -> ToolSpec {
    let schema = json!({
        "type": "object", "properties": props, "required": required, "additionalProperties": false,
    });
    ToolSpec {
        name,
        description,
        schema,
    }
}

/// What a tool call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// What the model sees, at most 32 KiB.
    pub output: String,
    /// A tool error: bad arguments, path refused, no match, command failed to start.
    pub is_error: bool,
    /// The worktree-relative path written, for write_file and edit_file.
    pub edited: Option<String>,
    /// `Some(summary)` for finish.
    pub finish: Option<String>,
}

fn text(output: String) -> Result<Outcome, ToolError> {
    Ok(Outcome {
        output,
        ..Outcome::default()
    })
}

/// Why a call failed; the message is what the model reads.
#[derive(Debug, thiserror::Error)]
enum ToolError {
    #[error("path {0:?} is outside the worktree")]
    Outside(String),
    #[error("path {0:?} is inside .git, which is off limits")]
    Git(String),
    #[error("path {0:?} goes through a symlink to nothing")]
    Dangling(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("could not start `sh`: {0}")]
    Start(std::io::Error),
    /// Bad arguments and refused requests, said in full.
    #[error("{0}")]
    Refused(String),
}

fn refused<T>(message: String) -> Result<T, ToolError> {
    Err(ToolError::Refused(message))
}

fn io_error(path: &str) -> impl FnOnce(std::io::Error) -> ToolError + '_ {
    move |source| ToolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The tools of one agent, confined to its worktree (see `confine`).
#[derive(Debug, Clone)]
pub struct Tools {
    /// The worktree root, canonicalized.
    root: PathBuf,
    /// Variables removed from the environment of `run` commands (API keys).
    hidden: Vec<String>,
}

impl Tools {
    /// Tools working in `worktree`, an existing directory.
    pub fn new(worktree: &Path) -> std::io::Result<Tools> {
        let root = fs::canonicalize(worktree)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                ErrorKind::NotADirectory,
                root.display().to_string(),
            ));
        }
        Ok(Tools {
            root,
            hidden: Vec::new(),
        })
    }

    /// Removes these variables from the environment of `run` commands.
    pub fn hiding_env(mut self, vars: Vec<String>) -> Tools {
        self.hidden = vars;
        self
    }

    /// Runs one call. Never panics on any input; bad input is an `is_error` outcome naming
    /// the problem.
    pub async fn call(&self, name: &str, args: &Value) -> Outcome {
        let result = match name {
            "run" => self.run(args).await,
            "finish" => finish(args),
            "list_files" | "read_file" | "write_file" | "edit_file" | "search" => {
                // File work blocks: keep it off the async workers (searching a large tree
                // takes a while), and a panic in it becomes an error, not a crash.
                let (tools, name, args) = (self.clone(), name.to_owned(), args.clone());
                tokio::task::spawn_blocking(move || tools.call_blocking(&name, &args))
                    .await
                    .unwrap_or_else(|e| refused(format!("the tool failed: {e}")))
            }
            _ => refused(format!(
                "unknown tool `{name}`; the tools are list_files, read_file, write_file, \
                 edit_file, search, run, finish"
            )),
        };
        let mut outcome = result.unwrap_or_else(|e| Outcome {
            output: e.to_string(),
            is_error: true,
            ..Outcome::default()
        });
        outcome.output = bound(outcome.output);
        outcome
    }

    fn call_blocking(&self, name: &str, args: &Value) -> Result<Outcome, ToolError> {
        let args = Args::new(args)?;
        match name {
            "list_files" => self.list_files(&args),
            "read_file" => self.read_file(&args),
            "write_file" => self.write_file(&args),
            "edit_file" => self.edit_file(&args),
            _ => self.search(&args),
        }
    }
}

fn finish(args: &Value) -> Result<Outcome, ToolError> {
    let summary = Args::new(args)?.required_str("summary")?.to_owned();
    let output = "finished".to_owned();
    Ok(Outcome {
        output,
        finish: Some(summary),
        ..Outcome::default()
    })
}

/// The arguments of one call, read leniently: `null` is missing, numbers may be strings.
struct Args<'a>(Option<&'a Map<String, Value>>);

impl<'a> Args<'a> {
    fn new(value: &'a Value) -> Result<Args<'a>, ToolError> {
        match value {
            Value::Object(map) => Ok(Args(Some(map))),
            Value::Null => Ok(Args(None)),
            _ => refused("the arguments must be a JSON object".into()),
        }
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, ToolError> {
        match self.0.and_then(|map| map.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => refused(format!("argument `{key}` must be a string")),
        }
    }

    fn required_str(&self, key: &str) -> Result<&'a str, ToolError> {
        self.str(key)?
            .map_or_else(|| refused(format!("missing argument `{key}`")), Ok)
    }

    fn uint(&self, key: &str) -> Result<Option<u64>, ToolError> {
        let number = match self.0.and_then(|map| map.get(key)) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        number.map_or_else(
            || refused(format!("argument `{key}` must be a whole number ≥ 0")),
            |n| Ok(Some(n)),
        )
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_at(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Bounds an output to [`OUTPUT_LIMIT`] bytes, saying how much was cut.
fn bound(output: String) -> String {
    if output.len() <= OUTPUT_LIMIT {
        return output;
    }
    let kept = cut_at(&output, OUTPUT_LIMIT - 100);
    format!(
        "{kept}\n[output cut: {} more bytes]",
        output.len() - kept.len()
    )
}

#[cfg(test)]
mod tests;
