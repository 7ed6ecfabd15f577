//! Colour for diffs in the report: each line of a unified diff gets a class (`add`, `del`,
//! `ctx`, `hunk`, `meta`, `file`) and the code on it is cut into tokens (keyword, string,
//! comment, number) by a small per-line scanner for common languages.
//!
//! The output is plain text with class names, never HTML: the template escapes every token,
//! so nothing in a diff can become markup. The scanner knows no state across lines (a
//! string or comment spanning lines is coloured only where it starts); that is the price of
//! staying small.

use serde::Serialize;

/// One token: its class (`""` for plain text, else `k`, `s`, `c`, `n`) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tok {
    pub c: &'static str,
    pub t: String,
}

/// One diff line: its class and its tokens (the `+`/`-`/` ` sign is the first token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub cls: &'static str,
    pub toks: Vec<Tok>,
}

impl Line {
    /// The compact form embedded for the page's script: `[class, tokclass, text, ...]`.
    pub fn compact(&self) -> Vec<&str> {
        let mut out = Vec::with_capacity(1 + 2 * self.toks.len());
        out.push(self.cls);
        for t in &self.toks {
            out.push(t.c);
            out.push(&t.t);
        }
        out
    }
}

/// What the scanner knows of a language.
struct Syntax {
    keywords: &'static [&'static str],
    comments: &'static [&'static str],
    quotes: &'static [char],
}

const RUST: Syntax = Syntax {
    keywords: &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait",
        "true", "type", "unsafe", "use", "where", "while", "Some", "None", "Ok", "Err",
    ],
    comments: &["//"],
    // `'` is left out: lifetimes would open strings that never close.
    quotes: &['"'],
};

const PYTHON: Syntax = Syntax {
    keywords: &[
        "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
        "elif", "else", "except", "False", "finally", "for", "from", "global", "if", "import",
        "in", "is", "lambda", "None", "nonlocal", "not", "or", "pass", "raise", "return", "True",
        "try", "while", "with", "yield", "self",
    ],
    comments: &["#"],
    quotes: &['"', '\''],
};

const JS: Syntax = Syntax {
    keywords: &[
        "async",
        "await",
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "default",
        "delete",
        "do",
        "else",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "from",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "interface",
        "let",
        "new",
        "null",
        "return",
        "static",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "type",
        "typeof",
        "undefined",
        "var",
        "void",
        "while",
        "yield",
    ],
    comments: &["//"],
    quotes: &['"', '\'', '`'],
};

const GO: Syntax = Syntax {
    keywords: &[
        "break",
        "case",
        "chan",
        "const",
        "continue",
        "default",
        "defer",
        "else",
        "false",
        "for",
        "func",
        "go",
        "if",
        "import",
        "interface",
        "map",
        "nil",
        "package",
        "range",
        "return",
        "select",
        "struct",
        "switch",
        "true",
        "type",
        "var",
    ],
    comments: &["//"],
    quotes: &['"', '`'],
};

const C_LIKE: Syntax = Syntax {
    keywords: &[
        "auto",
        "bool",
        "break",
        "case",
        "catch",
        "char",
        "class",
        "const",
        "continue",
        "default",
        "delete",
        "do",
        "double",
        "else",
        "enum",
        "extends",
        "extern",
        "false",
        "final",
        "float",
        "for",
        "fun",
        "if",
        "implements",
        "import",
        "include",
        "int",
        "interface",
        "long",
        "namespace",
        "new",
        "null",
        "nullptr",
        "override",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "template",
        "this",
        "throw",
        "true",
        "try",
        "typedef",
        "unsigned",
        "using",
        "val",
        "var",
        "virtual",
        "void",
        "while",
    ],
    comments: &["//"],
    quotes: &['"', '\''],
};

const SHELL: Syntax = Syntax {
    keywords: &[
        "case", "do", "done", "echo", "elif", "else", "esac", "exit", "export", "fi", "for",
        "function", "if", "in", "local", "printf", "return", "set", "then", "until", "while",
    ],
    comments: &["#"],
    quotes: &['"', '\''],
};

const RUBY: Syntax = Syntax {
    keywords: &[
        "begin", "class", "def", "do", "else", "elsif", "end", "ensure", "false", "if", "module",
        "nil", "require", "rescue", "return", "self", "true", "unless", "until", "when", "while",
        "yield",
    ],
    comments: &["#"],
    quotes: &['"', '\''],
};

/// Configuration files: comments, strings and numbers only.
const CONFIG: Syntax = Syntax {
    keywords: &["true", "false", "null"],
    comments: &["#"],
    quotes: &['"', '\''],
};

/// The syntax for a path, by its extension (or name).
fn syntax_for(path: &str) -> Option<&'static Syntax> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == "Makefile" || name == "Dockerfile" {
        return Some(&SHELL);
    }
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "rs" => &RUST,
        "py" | "pyi" => &PYTHON,
        "js" | "mjs" | "cjs" | "jsx" | "ts" | "tsx" => &JS,
        "go" => &GO,
        "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "java" | "kt" | "kts" | "cs" | "swift"
        | "scala" | "dart" => &C_LIKE,
        "sh" | "bash" | "zsh" => &SHELL,
        "rb" => &RUBY,
        "toml" | "yaml" | "yml" | "ini" | "cfg" | "conf" => &CONFIG,
        _ => return None,
    })
}

/// The files of a unified diff: each path with its coloured lines, in patch order.
pub fn files(patch: &str) -> Vec<(String, Vec<Line>)> {
    let mut out: Vec<(String, Vec<Line>)> = Vec::new();
    let mut syntax = None;
    // Between `diff --git` and the first `@@` of a file, `---`/`+++` are headers.
    let mut in_header = false;
    for raw in patch.lines() {
        if let Some(rest) = raw.strip_prefix("diff --git ") {
            let path = rest.rsplit_once(" b/").map_or(rest, |(_, b)| b).to_owned();
            syntax = syntax_for(&path);
            in_header = true;
            out.push((path, vec![plain("file", raw)]));
            continue;
        }
        if out.is_empty() {
            out.push((String::new(), Vec::new()));
        }
        let lines = &mut out.last_mut().expect("a file was pushed").1;
        let line = if raw.starts_with("@@") {
            in_header = false;
            plain("hunk", raw)
        } else if in_header || raw.starts_with('\\') {
            plain("meta", raw)
        } else {
            let (cls, code) = match raw.chars().next() {
                Some('+') => ("add", &raw[1..]),
                Some('-') => ("del", &raw[1..]),
                Some(' ') => ("ctx", &raw[1..]),
                _ => ("ctx", raw),
            };
            let sign = &raw[..raw.len() - code.len()];
            let mut toks = vec![Tok {
                c: "",
                t: sign.to_owned(),
            }];
            match syntax {
                Some(s) => toks.extend(tokens(code, s)),
                None => toks.push(Tok {
                    c: "",
                    t: code.to_owned(),
                }),
            }
            Line { cls, toks }
        };
        lines.push(line);
    }
    out
}

fn plain(cls: &'static str, text: &str) -> Line {
    Line {
        cls,
        toks: vec![Tok {
            c: "",
            t: text.to_owned(),
        }],
    }
}

/// Cuts one line of code into tokens; plain runs are merged.
fn tokens(code: &str, syntax: &Syntax) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::new();
    let mut push = |c: &'static str, t: &str| match out.last_mut() {
        Some(last) if last.c == c && c.is_empty() => last.t.push_str(t),
        _ => out.push(Tok { c, t: t.to_owned() }),
    };
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        // `#` opens a comment only as a word of its own (`$#`, `${#x}` and `a#b` are code).
        let word_start = code[..i]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        if syntax
            .comments
            .iter()
            .any(|m| rest.starts_with(m) && (*m != "#" || word_start))
        {
            push("c", rest);
            break;
        }
        let ch = rest.chars().next().expect("not at the end");
        let len = if syntax.quotes.contains(&ch) {
            let end = string_end(rest, ch);
            push("s", &rest[..end]);
            end
        } else if ch.is_ascii_digit() && !prev_is_ident(code, i) {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            push("n", &rest[..end]);
            end
        } else if ch.is_alphabetic() || ch == '_' {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            push(
                if syntax.keywords.contains(&word) {
                    "k"
                } else {
                    ""
                },
                word,
            );
            end
        } else {
            push("", &rest[..ch.len_utf8()]);
            ch.len_utf8()
        };
        i += len;
    }
    out
}

/// The byte length of the string starting at `rest` (quote included), to its closing quote
/// or the end of the line.
fn string_end(rest: &str, quote: char) -> usize {
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            return i + c.len_utf8();
        }
    }
    rest.len()
}

fn prev_is_ident(code: &str, i: usize) -> bool {
    code[..i]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(line: &Line) -> Vec<(&str, &str)> {
        line.toks.iter().map(|t| (t.c, t.t.as_str())).collect()
    }

    #[test]
    fn lines_are_classified_and_split_by_file() {
        let patch = "diff --git a/x.rs b/x.rs\n--- a/x.rs\n+++ b/x.rs\n@@ -1 +1 @@\n-let a = 1;\n+let a = \"two\"; // why\n \\\n\\ No newline at end of file\ndiff --git a/y b/y\nBinary files a/y and b/y differ\n";
        let files = files(patch);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "x.rs");
        assert_eq!(files[1].0, "y");
        let cls: Vec<&str> = files[0].1.iter().map(|l| l.cls).collect();
        assert_eq!(
            cls,
            ["file", "meta", "meta", "hunk", "del", "add", "ctx", "meta"]
        );
        assert_eq!(
            classes(&files[0].1[5]),
            [
                ("", "+"),
                ("k", "let"),
                ("", " a = "),
                ("s", "\"two\""),
                ("", "; "),
                ("c", "// why")
            ]
        );
        assert_eq!(files[1].1[1].cls, "meta");
    }

    #[test]
    fn text_is_kept_whole_and_unknown_languages_stay_plain() {
        let line = "+<script>alert(1)</script> 'unclosed \"x";
        let f = files(&format!(
            "diff --git a/p.py b/p.py\n@@ -0,0 +1 @@\n{line}\n"
        ));
        let joined: String = f[0].1[2].toks.iter().map(|t| t.t.as_str()).collect();
        assert_eq!(joined, line);
        let f = files(&format!(
            "diff --git a/p.txt b/p.txt\n@@ -0,0 +1 @@\n{line}\n"
        ));
        assert_eq!(f[0].1[2].toks.len(), 2);
    }

    #[test]
    fn hash_is_a_comment_only_as_a_word() {
        let toks = tokens("echo $# ${#x} # done", &SHELL);
        assert_eq!(toks.last().unwrap().c, "c");
        assert_eq!(toks.last().unwrap().t, "# done");
        assert!(toks.iter().filter(|t| t.c == "c").count() == 1);
    }

    #[test]
    fn numbers_inside_names_are_not_numbers() {
        let toks = tokens("x1 = 42", &PYTHON);
        assert_eq!(toks[0].t, "x1 = ");
        assert_eq!((toks[1].c, toks[1].t.as_str()), ("n", "42"));
    }

    #[test]
    fn compact_form_pairs_classes_and_text() {
        let l = Line {
            cls: "add",
            toks: vec![Tok {
                c: "k",
                t: "fn".into(),
            }],
        };
        assert_eq!(l.compact(), ["add", "k", "fn"]);
    }
}
