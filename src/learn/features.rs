//! The kind of a task, by a small deterministic featurizer: a class from the task's words
//! (fix, feature, refactor, test, docs) and the main language of the files (by extension).
//! The statistics are kept per `class:language` ([`Kind::key`]); the top directories are
//! recorded beside, for `stats`.
//!
//! After a run the files are those the candidates changed; before one (to pick agents),
//! the files the task names, else the repository's own files.

use std::collections::BTreeMap;

use serde::Serialize;

/// What a task asks for, from its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Fix,
    Test,
    Refactor,
    Docs,
    Feature,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Fix => "fix",
            Class::Test => "test",
            Class::Refactor => "refactor",
            Class::Docs => "docs",
            Class::Feature => "feature",
        }
    }
}

/// The words that mark each class; a task matching none is a feature.
const WORDS: [(Class, &[&str]); 4] = [
    (
        Class::Fix,
        &[
            "fix",
            "fixes",
            "fixed",
            "bug",
            "bugs",
            "error",
            "errors",
            "crash",
            "crashes",
            "broken",
            "fails",
            "failing",
            "failure",
            "regression",
            "wrong",
            "incorrect",
            "panic",
            "panics",
        ],
    ),
    (
        Class::Test,
        &[
            "test", "tests", "testing", "coverage", "unittest", "spec", "specs",
        ],
    ),
    (
        Class::Refactor,
        &[
            "refactor",
            "refactoring",
            "rename",
            "restructure",
            "cleanup",
            "clean",
            "simplify",
            "extract",
            "reorganize",
            "dedupe",
            "deduplicate",
            "split",
        ],
    ),
    (
        Class::Docs,
        &[
            "doc",
            "docs",
            "documentation",
            "document",
            "readme",
            "comment",
            "comments",
            "docstring",
            "docstrings",
            "changelog",
            "typo",
            "typos",
        ],
    ),
];

/// The class of `task`: the class with the most of its words in the text (ties go in the
/// order fix, test, refactor, docs); none: a feature.
pub fn class(task: &str) -> Class {
    let words: Vec<String> = task
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut best = (0, Class::Feature);
    for (class, marks) in WORDS {
        let n = words.iter().filter(|w| marks.contains(&w.as_str())).count();
        if n > best.0 {
            best = (n, class);
        }
    }
    best.1
}

/// The language of a file, by its extension.
pub fn language(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "other",
    };
    match ext.as_str() {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "tsx" | "mts" | "cts" => "typescript",
        "go" => "go",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" => "cpp",
        "cs" => "csharp",
        "rb" => "ruby",
        "php" => "php",
        "swift" => "swift",
        "sh" | "bash" | "zsh" => "shell",
        "md" | "rst" | "adoc" | "txt" => "text",
        "toml" | "yaml" | "yml" | "json" | "ini" | "cfg" => "config",
        "html" | "css" | "scss" | "vue" | "svelte" => "web",
        "sql" => "sql",
        _ => "other",
    }
}

/// The language most of `paths` are in (ties: the first in name order); `none` without
/// paths.
pub fn main_language(paths: &[String]) -> &'static str {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for p in paths {
        *counts.entry(language(p)).or_default() += 1;
    }
    // Text and configuration only decide when nothing else was touched.
    let code = counts
        .iter()
        .filter(|(l, _)| !matches!(**l, "text" | "config" | "other"))
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
    code.or_else(|| counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))))
        .map_or("none", |(l, _)| l)
}

/// The top directories of `paths` (`.` for files at the root), at most 3, in name order.
pub fn top_dirs(paths: &[String]) -> Vec<String> {
    let mut dirs: Vec<String> = paths
        .iter()
        .map(|p| match p.split_once('/') {
            Some((top, _)) => top.to_owned(),
            None => ".".to_owned(),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs.truncate(3);
    dirs
}

/// The kind of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kind {
    pub class: Class,
    pub language: &'static str,
    pub dirs: Vec<String>,
}

impl Kind {
    /// The kind of `task` whose candidates changed `paths`.
    pub fn of(task: &str, paths: &[String]) -> Kind {
        Kind {
            class: class(task),
            language: main_language(paths),
            dirs: top_dirs(paths),
        }
    }

    /// The kind of `task` before it runs: the files it names (words with a known
    /// extension), else `repo_files()` (the repository's, listed only then).
    pub fn before(task: &str, repo_files: impl FnOnce() -> Vec<String>) -> Kind {
        let named: Vec<String> = task
            .split(|c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | ',' | '(' | ')'))
            .map(|w| w.trim_end_matches(['.', ':', ';']))
            .filter(|w| w.contains('.') && !matches!(language(w), "other"))
            .map(str::to_owned)
            .collect();
        if named.is_empty() {
            Kind::of(task, &repo_files())
        } else {
            Kind::of(task, &named)
        }
    }

    /// The key its statistics are kept under: `class:language`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.class.as_str(), self.language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn classes_of_known_tasks() {
        assert_eq!(class("Fix the crash when the config is empty"), Class::Fix);
        assert_eq!(class("Fix failing test in parser"), Class::Fix);
        assert_eq!(class("Add tests for the tokenizer"), Class::Test);
        assert_eq!(class("Refactor: extract the retry loop"), Class::Refactor);
        assert_eq!(class("Fix the docs typo in README"), Class::Docs);
        assert_eq!(class("Add a --verbose flag"), Class::Feature);
        assert_eq!(class(""), Class::Feature);
    }

    #[test]
    fn languages_and_directories() {
        let changed = paths(&["src/a.rs", "src/b.rs", "README.md", "tests/t.py"]);
        assert_eq!(main_language(&changed), "rust");
        assert_eq!(top_dirs(&changed), [".", "src", "tests"]);
        assert_eq!(
            main_language(&paths(&["README.md", "Cargo.toml", "docs/x.md"])),
            "text"
        );
        assert_eq!(main_language(&[]), "none");
        assert_eq!(language(".gitignore"), "other");
        assert_eq!(language("Makefile"), "other");
        let kind = Kind::of("Fix add in calc.sh", &paths(&["calc.sh"]));
        assert_eq!(kind.key(), "fix:shell");
    }

    #[test]
    fn before_a_run_the_files_the_task_names_decide() {
        let repo = paths(&["src/main.rs", "src/lib.rs", "build.py"]);
        assert_eq!(
            Kind::before("Fix the parser in `tools/parse.py`.", || repo.clone()).key(),
            "fix:python"
        );
        assert_eq!(
            Kind::before("Add a flag", || repo.clone()).key(),
            "feature:rust"
        );
    }
}
