//! The file tools: list_files, read_file, write_file, edit_file, search. They block, so
//! `Tools::call` runs them off the async workers.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use super::confine::Resolved;
use super::{
    Args, BINARY_PROBE, LINE_LIMIT, LIST_DEPTH, LIST_LIMIT, MAX_FILE, OUTPUT_LIMIT, Outcome,
    READ_LIMIT, SEARCH_LIMIT, ToolError, Tools, cut_at, io_error, refused, text,
};

impl Tools {
    pub(super) fn list_files(&self, args: &Args) -> Result<Outcome, ToolError> {
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

    pub(super) fn read_file(&self, args: &Args) -> Result<Outcome, ToolError> {
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

    pub(super) fn write_file(&self, args: &Args) -> Result<Outcome, ToolError> {
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

    pub(super) fn edit_file(&self, args: &Args) -> Result<Outcome, ToolError> {
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

    pub(super) fn search(&self, args: &Args) -> Result<Outcome, ToolError> {
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

/// A line as shown: a minified file's one huge line must not fill the output alone.
fn cut_line(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= LINE_LIMIT {
        return line.into();
    }
    format!("{}… [{} bytes]", cut_at(line, LINE_LIMIT), line.len()).into()
}
