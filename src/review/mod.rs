//! Code review: several reviewers look at one change, each reporting findings; findings that
//! enough reviewers agree on are kept and written in the format CI wants.
//!
//! [`target`] resolves what is reviewed (a range, the staged change, or a merge base) and
//! materializes it in a detached worktree; [`reviewer`] runs the reviewers; [`cluster`] groups
//! their findings and applies the quorum; [`format`] writes the result.

pub mod cluster;
pub mod format;
pub mod reviewer;
pub mod session;
pub mod target;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::model::Severity;

/// One finding as a reviewer reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Relative to the repository root, with `/` separators.
    pub path: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, at least `line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_line: Option<u32>,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

impl Finding {
    /// The last line the finding covers.
    pub fn last_line(&self) -> u32 {
        self.end_line.unwrap_or(self.line).max(self.line)
    }

    /// Reads one finding from a reviewer's JSON, saying what is wrong when it is not one.
    pub fn from_json(value: &Value) -> Result<Finding, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| "a finding is not a JSON object".to_owned())?;
        let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::trim);
        let path = text("path")
            .or_else(|| text("file"))
            .filter(|p| !p.is_empty())
            .ok_or("a finding has no \"path\"")?;
        let path = normalize_path(path).ok_or_else(|| {
            format!("finding path {path:?} is not a relative path inside the repository")
        })?;
        let number = |key: &str| -> Result<Option<u32>, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
                    .map(|n| Some(n as u32))
                    .ok_or_else(|| {
                        format!("finding {path}: \"{key}\" must be a line number (1 or more)")
                    }),
            }
        };
        let line = number("line")?.unwrap_or(1);
        let end_line = number("end_line")?.filter(|&e| e > line);
        let severity = match text("severity") {
            None => Severity::Warning,
            Some(s) => Severity::parse(s).ok_or_else(|| {
                format!("finding {path}:{line}: severity {s:?} is not error, warning or info")
            })?,
        };
        let message = text("message").unwrap_or_default().to_owned();
        let title = text("title")
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .or_else(|| message.lines().next().map(|l| l.chars().take(80).collect()))
            .filter(|t: &String| !t.is_empty())
            .ok_or_else(|| {
                format!("finding {path}:{line} has neither \"title\" nor \"message\"")
            })?;
        let suggestion = text("suggestion")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Ok(Finding {
            message: if message.is_empty() {
                title.clone()
            } else {
                message
            },
            path,
            line,
            end_line,
            severity,
            title,
            suggestion,
        })
    }
}

/// `./a//b` → `a/b`; `None` for absolute paths and paths leaving the root.
fn normalize_path(path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// What a reviewer's output held: its findings, and the entries that were not findings.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    pub findings: Vec<Finding>,
    /// Why each rejected entry was rejected.
    pub rejected: Vec<String>,
}

/// Reads `{"findings": [...]}` (or a bare array). Entries that are not findings are
/// rejected one by one; an answer that is not of that shape is an error.
pub fn parse_findings(value: &Value) -> Result<Parsed, String> {
    let list = match value {
        Value::Array(list) => list,
        Value::Object(obj) => obj
            .get("findings")
            .and_then(Value::as_array)
            .ok_or("the answer has no \"findings\" array")?,
        _ => return Err("the answer is not {\"findings\": [...]}".into()),
    };
    let mut parsed = Parsed::default();
    for item in list {
        match Finding::from_json(item) {
            Ok(f) => parsed.findings.push(f),
            Err(e) => parsed.rejected.push(e),
        }
    }
    Ok(parsed)
}

/// A finding kept by the quorum, with who agreed on it.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    #[serde(flatten)]
    pub finding: Finding,
    /// The reviewers that reported it, in configuration order.
    pub reviewers: Vec<String>,
    /// Stable across runs for the same path, title and severity: a hex digest.
    pub fingerprint: String,
}

/// How one reviewer fared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReviewerOutcome {
    pub name: String,
    pub kind: String,
    /// Whether it produced an answer.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Findings it reported (all of them, kept or not).
    pub findings: Vec<Finding>,
    /// Entries of its answer that were not valid findings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<String>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::agent::events::Usage>,
    /// Where its logs are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Things worth telling about the run (processes it left running, which were stopped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The result of a review.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub id: String,
    /// What was reviewed, as the user named it (`main..HEAD`, `staged changes`).
    pub target: String,
    /// The commit reviewed against, and the reviewed commit (for staged changes, a commit
    /// made of the index that no ref points at).
    pub base: String,
    pub head: String,
    pub files: Vec<String>,
    pub quorum: usize,
    pub reviewers: Vec<ReviewerOutcome>,
    /// Kept findings, most severe first, then by path and line.
    pub findings: Vec<Kept>,
    /// Findings reported by too few reviewers.
    pub dropped: usize,
}

impl Report {
    /// The most severe kept finding.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|k| k.finding.severity).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn findings_are_read_and_checked() {
        let p = parse_findings(&json!({"findings": [
            {"path": "./src//a.rs", "line": 3, "end_line": 5, "severity": "ERROR", "title": "t", "message": "m"},
            {"path": "b.rs", "line": "7", "message": "only a message\nsecond line"},
            {"path": "/etc/passwd", "line": 1, "title": "x"},
            {"path": "../up", "line": 1, "title": "x"},
            {"path": "c.rs", "line": 0, "title": "x"},
            {"path": "c.rs", "line": 2, "severity": "fatal", "title": "x"},
            {"path": "c.rs", "line": 2},
            "text",
        ]}))
        .unwrap();
        assert_eq!(p.findings.len(), 2, "{:?}", p.rejected);
        assert_eq!(p.findings[0].path, "src/a.rs");
        assert_eq!(p.findings[0].severity, Severity::Error);
        assert_eq!(p.findings[0].last_line(), 5);
        assert_eq!(p.findings[1].title, "only a message");
        assert_eq!(p.findings[1].severity, Severity::Warning);
        assert_eq!(p.rejected.len(), 6);
        assert!(parse_findings(&json!({"x": 1})).is_err());
        assert!(parse_findings(&json!([])).unwrap().findings.is_empty());
    }
}
