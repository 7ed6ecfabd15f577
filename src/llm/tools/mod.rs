//! The agent's tools, confined to its worktree.
//!
//! Every path argument is data: it must be relative, `..` is applied lexically and may not
//! climb above the root, and each symlink on the way is resolved and must stay inside, so
//! no tool reads or writes outside the worktree or inside `.git`. `run` is the one tool
//! whose argument reaches a shell; that is its purpose, and it runs in its own process
//! group so that everything it starts dies with it. Outputs are bounded so that one call
//! can never flood the model's context.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{ErrorKind, Read as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ignore::WalkBuilder;
use nix::sys::signal::Signal;
use serde_json::{Map, Value, json};

use crate::agent::process::kill_group;

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

/// A tool as offered to the model.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema object for the arguments.
    pub schema: Value,
}

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

/// The tools of one agent, confined to its worktree.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The worktree root, canonicalized.
    root: PathBuf,
    /// Variables removed from the environment of `run` commands (API keys).
    hidden: Vec<String>,
}

/// A path argument after confinement: the real location and its worktree-relative form.
struct Resolved {
    abs: PathBuf,
    rel: String,
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

    /// Confines a path argument to the worktree. The argument itself never reaches the OS:
    /// `..` is applied lexically, then each existing component is looked at, and a
    /// symlink is replaced by its canonical target, which must lie inside the root.
    fn resolve(&self, arg: &str) -> Result<Resolved, ToolError> {
        let outside = || ToolError::Outside(arg.to_owned());
        let mut parts: Vec<&OsStr> = Vec::new();
        for component in Path::new(arg).components() {
            match component {
                Component::Prefix(_) | Component::RootDir => return Err(outside()),
                Component::CurDir => {}
                Component::ParentDir => _ = parts.pop().ok_or_else(outside)?,
                Component::Normal(name) => parts.push(name),
            }
        }
        if parts.iter().any(|part| *part == ".git") {
            return Err(ToolError::Git(arg.to_owned()));
        }
        let mut abs = self.root.clone();
        let mut rest = parts.into_iter();
        while let Some(name) = rest.next() {
            let next = abs.join(name);
            match fs::symlink_metadata(&next) {
                Ok(meta) if meta.file_type().is_symlink() => match fs::canonicalize(&next) {
                    Ok(target) if target.starts_with(&self.root) => abs = target,
                    Ok(_) => return Err(outside()),
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        // Writing through it would create its target: refuse it, and say
                        // so plainly when that target is outside.
                        let target = fs::read_link(&next).map_err(io_error(arg))?;
                        if lexical(&abs.join(target)).starts_with(&self.root) {
                            return Err(ToolError::Dangling(arg.to_owned()));
                        }
                        return Err(outside());
                    }
                    Err(e) => return Err(io_error(arg)(e)),
                },
                Ok(_) => abs = next,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    // The rest does not exist yet, and it holds no `..`.
                    abs = next;
                    abs.extend(rest);
                    break;
                }
                Err(e) => return Err(io_error(arg)(e)),
            }
        }
        let rel = abs.strip_prefix(&self.root).map_err(|_| outside())?;
        if rel.components().any(|c| c.as_os_str() == ".git") {
            return Err(ToolError::Git(arg.to_owned()));
        }
        Ok(Resolved {
            rel: self.rel(&abs),
            abs,
        })
    }

    /// `path` relative to the root, `.` for the root itself.
    fn rel(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }

    /// A walker over `start` that honours ignore files, shows hidden files, skips `.git`
    /// and never follows symlinks.
    fn walker(&self, start: &Path) -> WalkBuilder {
        let mut builder = WalkBuilder::new(start);
        builder
            .hidden(false)
            .parents(false)
            .require_git(false)
            .git_global(false)
            .git_exclude(false)
            .follow_links(false)
            .filter_entry(|entry| entry.file_name() != ".git");
        // `parents(true)` would read ignore files above the worktree too (up to `/`
        // without a `.git` to stop it): add those between the root and `start` by hand,
        // outermost first so that deeper ones win.
        let mut dirs: Vec<&Path> = start
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&self.root))
            .collect();
        dirs.reverse();
        for file in dirs
            .iter()
            .flat_map(|d| [d.join(".gitignore"), d.join(".ignore")])
        {
            if file.is_file() {
                let _ = builder.add_ignore(file);
            }
        }
        builder
    }

    fn list_files(&self, args: &Args) -> Result<Outcome, ToolError> {
        let arg = args.str("path")?.unwrap_or(".");
        let dir = self.resolve(arg)?;
        if !fs::metadata(&dir.abs).map_err(io_error(arg))?.is_dir() {
            return refused(format!("{} is not a directory; use read_file", dir.rel));
        }
        let walk = self.walker(&dir.abs).max_depth(Some(LIST_DEPTH)).build();
        let mut entries: Vec<(PathBuf, bool)> = walk
            .flatten()
            .filter(|entry| entry.depth() > 0)
            .map(|entry| {
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                (entry.into_path(), is_dir)
            })
            .collect();
        entries.sort();
        let mut out = String::new();
        for (path, is_dir) in entries.iter().take(LIST_LIMIT) {
            _ = writeln!(out, "{}{}", self.rel(path), if *is_dir { "/" } else { "" });
        }
        if entries.is_empty() {
            out.push_str("(empty directory)\n");
        } else if entries.len() > LIST_LIMIT {
            let more = entries.len() - LIST_LIMIT;
            _ = writeln!(out, "[{more} more entries left out; list a subdirectory]");
        }
        text(out)
    }

    fn read_file(&self, args: &Args) -> Result<Outcome, ToolError> {
        let arg = args.required_str("path")?;
        let offset = args.uint("offset")?.unwrap_or(1);
        let limit = args.uint("limit")?.unwrap_or(READ_LIMIT);
        if offset == 0 || limit == 0 {
            return refused("`offset` (1-based) and `limit` must be at least 1".into());
        }
        let file = self.resolve(arg)?;
        let bytes = read_text_file(&file, arg)?;
        let content = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = content.lines().collect();
        let (total, start) = (
            lines.len(),
            usize::try_from(offset - 1).unwrap_or(usize::MAX),
        );
        if total == 0 {
            return text(format!("({} is empty)", file.rel));
        } else if start >= total {
            return refused(format!(
                "offset {offset} is past the end: {} has {total} lines",
                file.rel
            ));
        }
        let (mut out, mut end) = (String::new(), start);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        for (i, line) in lines.iter().enumerate().skip(start).take(limit) {
            let entry = format!("{}\t{}\n", i + 1, cut_line(line));
            // Stop at whole lines, well before `bound` would cut one in half.
            if out.len() + entry.len() > OUTPUT_LIMIT - 200 {
                break;
            }
            out.push_str(&entry);
            end = i + 1;
        }
        if start > 0 || end < total {
            let more = if end < total {
                format!("more with offset={}", end + 1)
            } else {
                "end of file".to_owned()
            };
            _ = writeln!(out, "[lines {}-{end} of {total}; {more}]", start + 1);
        }
        text(out)
    }

    fn write_file(&self, args: &Args) -> Result<Outcome, ToolError> {
        let arg = args.required_str("path")?;
        let content = args.required_str("content")?;
        let file = self.resolve(arg)?;
        match fs::metadata(&file.abs) {
            Ok(meta) if meta.is_dir() => return refused(format!("{} is a directory", file.rel)),
            // A FIFO or a device would block or write elsewhere.
            Ok(meta) if !meta.is_file() => {
                return refused(format!("{} is not a regular file", file.rel));
            }
            _ => {}
        }
        if let Some(parent) = file.abs.parent() {
            fs::create_dir_all(parent).map_err(io_error(arg))?;
        }
        fs::write(&file.abs, content).map_err(io_error(arg))?;
        let output = format!("wrote {} bytes to {}", content.len(), file.rel);
        Ok(Outcome {
            output,
            edited: Some(file.rel),
            ..Outcome::default()
        })
    }

    fn edit_file(&self, args: &Args) -> Result<Outcome, ToolError> {
        let arg = args.required_str("path")?;
        let (old, new) = (args.required_str("old")?, args.required_str("new")?);
        if old.is_empty() {
            return refused("`old` must not be empty; use write_file to create a file".into());
        }
        let file = self.resolve(arg)?;
        let Ok(content) = String::from_utf8(read_text_file(&file, arg)?) else {
            return refused(format!("{} is not UTF-8 text", file.rel));
        };
        let (count, at) = (content.matches(old).count(), content.find(old).unwrap_or(0));
        if count != 1 {
            let hint = match count {
                0 => "read the file and copy the text exactly",
                _ => "include more surrounding lines",
            };
            return refused(format!(
                "`old` must occur exactly once in {}, but it occurs {count} times; {hint}",
                file.rel
            ));
        }
        let edited = format!("{}{new}{}", &content[..at], &content[at + old.len()..]);
        fs::write(&file.abs, edited).map_err(io_error(arg))?;
        let line = content[..at].matches('\n').count() + 1;
        let output = format!("edited {} at line {line}", file.rel);
        Ok(Outcome {
            output,
            edited: Some(file.rel),
            ..Outcome::default()
        })
    }

    fn search(&self, args: &Args) -> Result<Outcome, ToolError> {
        let pattern = args.required_str("pattern")?;
        let arg = args.str("path")?.unwrap_or(".");
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 24)
            .build();
        let regex = regex.or_else(|e| refused(format!("invalid regex: {e}")))?;
        let start = self.resolve(arg)?;
        fs::metadata(&start.abs).map_err(io_error(arg))?;
        let mut walker = self.walker(&start.abs);
        walker
            .max_filesize(Some(MAX_FILE))
            .sort_by_file_name(|a, b| a.cmp(b));
        let (mut out, mut matches) = (String::new(), 0);
        for entry in walker.build().flatten() {
            // Symlinks are not files here: they are never followed.
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(bytes) = fs::read(entry.path()) else {
                continue;
            };
            if is_binary(&bytes) {
                continue;
            }
            let rel = self.rel(entry.path());
            let content = String::from_utf8_lossy(&bytes);
            for (i, line) in content
                .lines()
                .enumerate()
                .filter(|(_, l)| regex.is_match(l))
            {
                if matches == SEARCH_LIMIT {
                    _ = writeln!(
                        out,
                        "[stopped at {matches} matches; narrow the pattern or the path]"
                    );
                    return text(out);
                }
                matches += 1;
                _ = writeln!(out, "{rel}:{}:{}", i + 1, cut_line(line));
            }
        }
        if matches == 0 {
            out.push_str("no matches\n");
        }
        text(out)
    }

    async fn run(&self, args: &Value) -> Result<Outcome, ToolError> {
        let args = Args::new(args)?;
        let command = args.required_str("command")?;
        let timeout = args.uint("timeout")?.unwrap_or(RUN_TIMEOUT_DEFAULT);
        let secs = timeout.clamp(1, RUN_TIMEOUT_MAX);
        // One pipe for both streams, so that the output interleaves as it was written.
        let (reader, writer) = std::io::pipe().map_err(ToolError::Start)?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        for var in &self.hidden {
            cmd.env_remove(var);
        }
        cmd.stdout(writer.try_clone().map_err(ToolError::Start)?)
            .stderr(writer);
        cmd.process_group(0).kill_on_drop(true);
        let spawned = cmd.spawn();
        // `cmd` holds copies of the write end; the reader sees EOF only once they close.
        drop(cmd);
        let mut child = spawned.map_err(ToolError::Start)?;
        let mut group = GroupGuard::new(child.id().and_then(|id| i32::try_from(id).ok()));

        // A plain thread, not `spawn_blocking`: a process that escaped the group may hold
        // the pipe open forever, and the runtime's shutdown waits for blocking tasks.
        let tail = Arc::new(Mutex::new(Tail::default()));
        let (done, finished) = tokio::sync::oneshot::channel();
        let sink = Arc::clone(&tail);
        let reading = move || {
            let (mut reader, mut chunk) = (reader, [0u8; 8192]);
            while let Ok(n @ 1..) = reader.read(&mut chunk) {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(&chunk[..n]);
            }
            _ = done.send(());
        };
        if let Err(e) = std::thread::Builder::new()
            .name("run-output".into())
            .spawn(reading)
        {
            return refused(format!("could not read the command's output: {e}"));
        }

        let waited = tokio::time::timeout(Duration::from_secs(secs), child.wait()).await;
        // What is left of the group dies now, after a timeout and after a normal exit
        // alike (background jobs): nothing the agent starts outlives its call.
        group.kill();
        let mut out = match waited {
            Err(_) => {
                _ = child.wait().await;
                format!("timed out after {secs} s: the command and all it started were killed\n")
            }
            Ok(Ok(status)) => match status.code() {
                Some(code) => format!("exit code {code}\n"),
                None => format!("killed by signal {}\n", status.signal().unwrap_or(0)),
            },
            Ok(Err(e)) => format!("could not wait for the command: {e}\n"),
        };
        _ = tokio::time::timeout(PIPE_GRACE, finished).await;
        let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        let kept = &tail.buf[tail.buf.len().saturating_sub(RUN_TAIL)..];
        if tail.total > kept.len() {
            let cut = tail.total - kept.len();
            _ = writeln!(
                out,
                "[{cut} earlier bytes of output cut; the last 16 KiB follow]"
            );
        }
        if kept.is_empty() {
            out.push_str("(no output)");
        }
        out.push_str(&String::from_utf8_lossy(kept));
        text(out)
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

/// Process groups of `run` calls under way. They are not in the agent's own group, so a
/// signal to the agent does not reach them: [`kill_running`] does, from the agent's
/// SIGTERM handler.
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kills every command the tools have running (the agent is being stopped).
pub fn kill_running() {
    let groups = std::mem::take(&mut *RUNNING.lock().unwrap_or_else(|p| p.into_inner()));
    for pgid in groups {
        kill_group(pgid, Signal::SIGKILL);
    }
}

/// Kills the command's process group when the call ends, even when the call's future is
/// dropped halfway (`kill_on_drop` alone would reach only the shell).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn new(pgid: Option<i32>) -> GroupGuard {
        if let Some(pgid) = pgid {
            RUNNING.lock().unwrap_or_else(|p| p.into_inner()).push(pgid);
        }
        GroupGuard(pgid)
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid, Signal::SIGKILL);
            RUNNING
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|g| *g != pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The end of a stream: at least its last [`RUN_TAIL`] bytes, and how many came in all.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
    total: usize,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > 2 * RUN_TAIL {
            self.buf.drain(..self.buf.len() - RUN_TAIL);
        }
    }
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

/// Reads a regular text file for read_file and edit_file.
fn read_text_file(file: &Resolved, arg: &str) -> Result<Vec<u8>, ToolError> {
    let meta = fs::metadata(&file.abs).map_err(io_error(arg))?;
    if meta.is_dir() {
        return refused(format!("{} is a directory; use list_files", file.rel));
    } else if !meta.is_file() {
        return refused(format!("{} is not a regular file", file.rel));
    } else if meta.len() > MAX_FILE {
        return refused(format!("{} is too large ({} bytes)", file.rel, meta.len()));
    }
    let bytes = fs::read(&file.abs).map_err(io_error(arg))?;
    if is_binary(&bytes) {
        return refused(format!("{} is a binary file", file.rel));
    }
    Ok(bytes)
}

fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(BINARY_PROBE)].contains(&0)
}

/// Applies `.` and `..` without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => _ = out.pop(),
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_at(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A line as shown: a minified file's one huge line must not fill the output alone.
fn cut_line(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= LINE_LIMIT {
        return line.into();
    }
    format!("{}… [{} bytes]", cut_at(line, LINE_LIMIT), line.len()).into()
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
