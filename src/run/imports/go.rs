//! Go: `use` and `replace` directives in the work tree's `go.work`, and `replace`
//! directives in its `go.mod`, that name a directory of the work tree.
//!
//! An absolute one makes go in a candidate's worktree build the user's directory from the
//! worktree's own copy of the file. `go.work` is often not committed; go looks for it in
//! parent directories, so from a worktree under the work tree it finds the user's, whose
//! relative paths are then the user's too. Only the root `go.mod` is read, not those of the
//! modules `go.work` uses.

use std::path::Path;

use super::{Named, Tree};

/// The warnings for the work tree's `go.work` and `go.mod`.
pub(super) fn check(tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (file, walks) in [("go.work", true), ("go.mod", false)] {
        let file = Path::new(file);
        if let Some(text) = tree.read(file) {
            out.extend(super::warnings(
                tree,
                file,
                Path::new(""),
                walks,
                "go",
                directives(&text),
            ));
        }
    }
    out
}

/// The directories that `use` directives and local `replace` directives name, single or
/// in blocks.
fn directives(text: &str) -> Vec<Named> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        let words = tokens(line);
        let Some(first) = words.first() else {
            continue;
        };
        let (verb, args) = match &block {
            Some(_) if first == ")" => {
                block = None;
                continue;
            }
            Some(verb) => (verb.clone(), &words[..]),
            None if words.len() == 2 && words[1] == "(" => {
                block = Some(first.clone());
                continue;
            }
            None => (first.clone(), &words[1..]),
        };
        match verb.as_str() {
            "use" => {
                if let Some(path) = args.first() {
                    out.push(named(format!("use {path}"), path));
                }
            }
            "replace" => {
                let Some(arrow) = args.iter().position(|a| a == "=>") else {
                    continue;
                };
                // Only a path that starts with `/`, `./` or `../` is a directory; anything
                // else is a module path.
                if let Some(path) = args
                    .get(arrow + 1)
                    .filter(|p| p.starts_with('/') || p.starts_with("./") || p.starts_with("../"))
                {
                    let module = args[..arrow].join(" ");
                    out.push(named(format!("replace {module} => {path}"), path));
                }
            }
            _ => {}
        }
    }
    out
}

fn named(written: String, path: &str) -> Named {
    Named {
        written,
        path: path.to_owned(),
        prefix: "",
        // The nearest `go.work` is the one go uses.
        shadowed: true,
    }
}

/// The words of a line of `go.mod` or `go.work`: quoted strings (`"…"` or `` `…` ``)
/// unquoted, up to a `//` comment.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() && !rest.starts_with("//") {
        let (word, after) = match rest.chars().next() {
            Some(quote @ ('"' | '`')) => {
                let body = &rest[1..];
                let end = if quote == '"' {
                    // Skip escaped quotes.
                    let mut escaped = false;
                    body.char_indices()
                        .find(|&(_, c)| {
                            let end = c == '"' && !escaped;
                            escaped = c == '\\' && !escaped;
                            end
                        })
                        .map(|(i, _)| i)
                } else {
                    body.find('`')
                };
                let end = end.unwrap_or(body.len());
                let word = body[..end].replace("\\\"", "\"").replace("\\\\", "\\");
                (word, body.get(end + 1..).unwrap_or(""))
            }
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (rest[..end].to_owned(), &rest[end..])
            }
        };
        out.push(word);
        rest = after.trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<(String, String)> {
        directives(text)
            .into_iter()
            .map(|n| (n.written, n.path))
            .collect()
    }

    #[test]
    fn words_are_split_with_quotes_and_comments() {
        assert_eq!(tokens("use ./a // the app"), vec!["use", "./a"]);
        assert_eq!(
            tokens(r#"  replace x => "/a b/c" v1"#),
            vec!["replace", "x", "=>", "/a b/c", "v1"]
        );
        assert_eq!(tokens("use `/raw path`"), vec!["use", "/raw path"]);
        assert_eq!(tokens(r#""a\"b""#), vec!["a\"b"]);
        assert!(tokens("// only a comment").is_empty());
    }

    #[test]
    fn use_and_local_replace_are_read_single_and_in_blocks() {
        let work = "go 1.22\n\nuse (\n\t./app\n\t/home/u/proj/lib // shared\n)\n\nuse ./tool\n\
                    replace example.com/x v1.2.0 => /home/u/proj/x\n\
                    replace (\n\texample.com/y => ../y\n\texample.com/z => example.com/z2 v1.0.0\n)\n";
        assert_eq!(
            paths(work),
            vec![
                ("use ./app".to_owned(), "./app".to_owned()),
                (
                    "use /home/u/proj/lib".to_owned(),
                    "/home/u/proj/lib".to_owned()
                ),
                ("use ./tool".to_owned(), "./tool".to_owned()),
                (
                    "replace example.com/x v1.2.0 => /home/u/proj/x".to_owned(),
                    "/home/u/proj/x".to_owned()
                ),
                (
                    "replace example.com/y => ../y".to_owned(),
                    "../y".to_owned()
                ),
            ]
        );
        let module = "module example.com/app\n\ngo 1.22\n\nrequire example.com/x v1.2.0\n";
        assert!(paths(module).is_empty());
    }
}
