//! Writing a review in the formats people and CI tools read: plain text, JSON, SARIF 2.1.0,
//! reviewdog's rdjsonl, GitHub Actions workflow commands and GitLab Code Quality.
//!
//! Everything here is pure: a [`Report`] goes in, a string comes out. This module never
//! prints; the command decides where the string goes. It also owns [`fingerprint`], the
//! stable identity of a finding that CI tools use to track it from one run to the next.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Finding, Report, Severity};

/// The name tools show for us.
const TOOL: &str = "git-massgen";

/// Where SARIF consumers find the schema of what we write.
const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Key of our entry in SARIF's `partialFingerprints`; bump the version if [`fingerprint`]
/// ever changes, so that consumers do not match old and new digests.
const FINGERPRINT_KEY: &str = "massgen/v1";

/// The output formats of `git massgen review`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: one block per finding and a summary.
    Text,
    /// The whole report as JSON.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF readers.
    Sarif,
    /// reviewdog's rdjsonl: one diagnostic per line.
    Rdjsonl,
    /// GitHub Actions workflow commands, which become annotations.
    Github,
    /// GitLab Code Quality report.
    Gitlab,
}

/// Writes `report` in `format`. The result ends with a newline unless it is empty.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text(report),
        Format::Json => {
            let mut out = serde_json::to_string_pretty(report).expect("a report serializes");
            out.push('\n');
            out
        }
        Format::Sarif => pretty(&sarif(report)),
        Format::Rdjsonl => rdjsonl(report),
        Format::Github => github(report),
        Format::Gitlab => pretty(&gitlab(report)),
    }
}

/// Writes several reviews (a push of several refs) as one output of `format`: text and the
/// line formats one after another, JSON as an array, SARIF as one log with a run per
/// review, GitLab as one list with fingerprints unique across all.
pub fn render_all(reports: &[Report], format: Format) -> String {
    match (reports, format) {
        ([], _) => String::new(),
        ([one], _) => render(one, format),
        (_, Format::Text | Format::Rdjsonl | Format::Github) => {
            reports.iter().map(|r| render(r, format)).collect()
        }
        (_, Format::Json) => {
            let mut out = serde_json::to_string_pretty(reports).expect("reports serialize");
            out.push('\n');
            out
        }
        (_, Format::Sarif) => {
            let mut log = sarif(&reports[0]);
            let runs: Vec<Value> = reports
                .iter()
                .flat_map(|r| sarif(r)["runs"].as_array().cloned().unwrap_or_default())
                .collect();
            log["runs"] = Value::Array(runs);
            pretty(&log)
        }
        (_, Format::Gitlab) => {
            let mut all = reports[0].clone();
            all.findings = reports.iter().flat_map(|r| r.findings.clone()).collect();
            pretty(&gitlab(&all))
        }
    }
}

/// A stable identity for a finding: the same path, title and severity always give the same
/// 32 hex digits, whatever the line, so a finding keeps it when code above it moves. The
/// title is compared without regard to case or runs of whitespace.
pub fn fingerprint(path: &str, title: &str, severity: Severity) -> String {
    let title = normalize_title(title);
    hex_digest(&format!("{path}\0{title}\0{}", severity.as_str()))
}

/// Lowercase, with whitespace runs collapsed to one space and none at either end.
fn normalize_title(title: &str) -> String {
    title
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// FNV-1a, 128 bits, as 32 lowercase hex digits. Not cryptographic; it only has to be stable
/// across platforms and releases, which a hash from `std` does not promise.
fn hex_digest(input: &str) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let hash = input
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    format!("{hash:032x}")
}

fn pretty(value: &Value) -> String {
    let mut out = serde_json::to_string_pretty(value).expect("a JSON value serializes");
    out.push('\n');
    out
}

/// Title, message and suggestion as one text, for formats with a single message field.
fn full_text(f: &Finding) -> String {
    let mut text = f.title.trim().to_owned();
    let message = f.message.trim();
    if !message.is_empty() && message != text {
        text.push_str("\n\n");
        text.push_str(message);
    }
    if let Some(s) = &f.suggestion {
        text.push_str("\n\nSuggestion: ");
        text.push_str(s.trim());
    }
    text
}

/// `path:line` or `path:line-end`.
fn location(f: &Finding) -> String {
    match f.last_line() {
        end if end > f.line => format!("{}:{}-{end}", f.path, f.line),
        _ => format!("{}:{}", f.path, f.line),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn text(report: &Report) -> String {
    if report.files.is_empty() && report.reviewers.is_empty() {
        return format!("Nothing to review: {} changes nothing.\n", report.target);
    }
    let mut out = String::new();
    for kept in &report.findings {
        let f = &kept.finding;
        let _ = write!(out, "{}: {}: {}", location(f), f.severity.as_str(), f.title);
        if !kept.reviewers.is_empty() {
            let _ = write!(out, "  [agreed: {}]", kept.reviewers.join(", "));
        }
        out.push('\n');
        let message = f.message.trim();
        if !message.is_empty() && message != f.title.trim() {
            push_lines(&mut out, "    ", "    ", message);
        }
        if let Some(s) = &f.suggestion {
            let suggestion = format!("suggestion: {}", s.trim());
            push_lines(&mut out, "    ", "      ", &suggestion);
        }
        out.push('\n');
    }
    let count = |s| {
        report
            .findings
            .iter()
            .filter(|k| k.finding.severity == s)
            .count()
    };
    let kept = if report.findings.is_empty() {
        "No findings kept".to_owned()
    } else {
        format!(
            "{} kept ({}, {}, {} info)",
            plural(report.findings.len(), "finding", "findings"),
            plural(count(Severity::Error), "error", "errors"),
            plural(count(Severity::Warning), "warning", "warnings"),
            count(Severity::Info),
        )
    };
    let dropped = match report.dropped {
        0 => "none".to_owned(),
        n => n.to_string(),
    };
    let _ = writeln!(
        out,
        "{kept}, {dropped} dropped below quorum {} of {}.",
        report.quorum,
        plural(report.reviewers.len(), "reviewer", "reviewers"),
    );
    for r in report.reviewers.iter().filter(|r| !r.ok) {
        let error = r.error.as_deref().unwrap_or("no answer").trim();
        let line = format!("reviewer {} failed: {error}", r.name);
        push_lines(&mut out, "", "  ", &line);
    }
    for r in &report.reviewers {
        for w in &r.warnings {
            push_lines(&mut out, "", "  ", &format!("reviewer {}: {w}", r.name));
        }
    }
    out
}

/// Appends `text` line by line, the first line indented by `first` and the others by `rest`;
/// blank lines stay empty.
fn push_lines(out: &mut String, first: &str, rest: &str, text: &str) {
    for (i, line) in text.lines().enumerate() {
        let indent = if i == 0 { first } else { rest };
        match line.trim_end() {
            "" => out.push('\n'),
            line => {
                let _ = writeln!(out, "{indent}{line}");
            }
        }
    }
}

/// The rules of a report: one per distinct (normalized) title, in order of first appearance,
/// and for each finding the index of its rule.
struct Rules {
    /// `(id, title)` of each rule.
    rules: Vec<(String, String)>,
    of_finding: Vec<usize>,
}

impl Rules {
    fn new(report: &Report) -> Rules {
        let mut by_title: HashMap<String, usize> = HashMap::new();
        let mut rules: Vec<(String, String)> = Vec::new();
        let mut normalized: Vec<String> = Vec::new();
        let mut of_finding = Vec::with_capacity(report.findings.len());
        for kept in &report.findings {
            let key = normalize_title(&kept.finding.title);
            let index = *by_title.entry(key.clone()).or_insert_with(|| {
                rules.push((slug(&key), kept.finding.title.trim().to_owned()));
                normalized.push(key);
                rules.len() - 1
            });
            of_finding.push(index);
        }
        // Titles that differ only in punctuation share a slug; give each of them a suffix
        // that depends on its own title alone, so an id does not depend on the order of
        // findings or on which other findings the report has.
        let mut slug_count: HashMap<String, usize> = HashMap::new();
        for (id, _) in &rules {
            *slug_count.entry(id.clone()).or_default() += 1;
        }
        for ((id, _), key) in rules.iter_mut().zip(&normalized) {
            if slug_count[id.as_str()] > 1 {
                *id = format!("{id}-{}", &hex_digest(key)[..8]);
            }
        }
        Rules { rules, of_finding }
    }

    fn id(&self, finding: usize) -> &str {
        &self.rules[self.of_finding[finding]].0
    }
}

/// `Unused variable "x"` → `unused-variable-x`; ASCII letters and digits only, at most 60
/// characters; `finding` when nothing is left.
fn slug(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(60);
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "finding".to_owned()
    } else {
        slug.to_owned()
    }
}

/// Percent-encodes a repository path into a relative URI reference: every byte outside the
/// unreserved characters, the sub-delimiters, `@` and `/` is encoded, `:` included, so that a
/// first segment such as `c:x` is not read as a scheme.
fn uri_path(path: &str) -> String {
    const KEEP: &[u8] = b"-._~!$&'()*+,;=@/";
    let mut uri = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || KEEP.contains(&b) {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri
}

fn sarif(report: &Report) -> Value {
    let rules = Rules::new(report);
    let mut driver = json!({
        "name": TOOL,
        "version": env!("CARGO_PKG_VERSION"),
        "rules": rules.rules.iter().map(|(id, title)| json!({
            "id": id,
            "shortDescription": {"text": title},
        })).collect::<Vec<_>>(),
    });
    // An empty informationUri would not be a valid URI, so it is left out until the
    // manifest names one.
    let info = [env!("CARGO_PKG_HOMEPAGE"), env!("CARGO_PKG_REPOSITORY")]
        .into_iter()
        .find(|u| !u.is_empty());
    if let Some(uri) = info {
        driver["informationUri"] = json!(uri);
    }
    let results: Vec<Value> = report
        .findings
        .iter()
        .enumerate()
        .map(|(i, kept)| {
            let f = &kept.finding;
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "note",
            };
            json!({
                "ruleId": rules.id(i),
                "ruleIndex": rules.of_finding[i],
                "level": level,
                "message": {"text": full_text(f)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri_path(&f.path), "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": f.line, "endLine": f.last_line()},
                    },
                }],
                "partialFingerprints": {FINGERPRINT_KEY: kept.fingerprint},
                "properties": {"reviewers": kept.reviewers, "agreed": kept.reviewers.len()},
            })
        })
        .collect();
    let notifications: Vec<Value> = report
        .reviewers
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            let error = r.error.as_deref().unwrap_or("no answer");
            json!({
                "level": "error",
                "message": {"text": format!("reviewer {} failed: {error}", r.name)},
                "properties": {"reviewer": r.name, "kind": r.kind},
            })
        })
        .collect();
    let mut invocation = json!({
        "executionSuccessful": report.reviewers.iter().all(|r| r.ok),
    });
    if !notifications.is_empty() {
        invocation["toolExecutionNotifications"] = Value::Array(notifications);
    }
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "invocations": [invocation],
            "results": results,
            "properties": {
                "target": report.target,
                "base": report.base,
                "head": report.head,
                "quorum": report.quorum,
                "dropped": report.dropped,
            },
        }],
    })
}

fn rdjsonl(report: &Report) -> String {
    let rules = Rules::new(report);
    let mut out = String::new();
    for (i, kept) in report.findings.iter().enumerate() {
        let f = &kept.finding;
        let severity = match f.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        };
        let line = json!({
            "message": full_text(f),
            "location": {
                "path": f.path,
                "range": {"start": {"line": f.line}, "end": {"line": f.last_line()}},
            },
            "severity": severity,
            "source": {"name": TOOL},
            "code": {"value": rules.id(i)},
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Escapes a workflow command's message as `@actions/core` does (`escapeData`).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value as `@actions/core` does (`escapeProperty`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn github(report: &Report) -> String {
    let mut out = String::new();
    for kept in &report.findings {
        let f = &kept.finding;
        let command = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut message = f.message.trim().to_owned();
        if let Some(s) = &f.suggestion {
            let _ = write!(message, "\n\nSuggestion: {}", s.trim());
        }
        if !kept.reviewers.is_empty() {
            let _ = write!(message, "\n\nAgreed: {}", kept.reviewers.join(", "));
        }
        let _ = writeln!(
            out,
            "::{command} file={},line={},endLine={},title={}::{}",
            escape_property(&f.path),
            f.line,
            f.last_line(),
            escape_property(f.title.trim()),
            escape_data(message.trim_start()),
        );
    }
    // A failed reviewer weakens the quorum; say so where the workflow's reader looks.
    for r in report.reviewers.iter().filter(|r| !r.ok) {
        let error = r.error.as_deref().unwrap_or("no answer");
        let _ = writeln!(
            out,
            "::warning title={}::{}",
            escape_property(&format!("{TOOL}: reviewer {} failed", r.name)),
            escape_data(error.trim()),
        );
    }
    out
}

fn gitlab(report: &Report) -> Value {
    let rules = Rules::new(report);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut used: HashSet<String> = HashSet::new();
    let issues: Vec<Value> = report
        .findings
        .iter()
        .enumerate()
        .map(|(i, kept)| {
            let f = &kept.finding;
            let base = if kept.fingerprint.is_empty() {
                fingerprint(&f.path, &f.title, f.severity)
            } else {
                kept.fingerprint.clone()
            };
            // GitLab wants fingerprints unique within a report; the same finding at two
            // places gets its occurrence index hashed in, in report order, so the same
            // report always gives the same fingerprints.
            let n = seen.entry(base.clone()).or_default();
            let mut fp = match *n {
                0 => base.clone(),
                n => hex_digest(&format!("{base}#{n}")),
            };
            while used.contains(&fp) {
                *n += 1;
                fp = hex_digest(&format!("{base}#{n}"));
            }
            *n += 1;
            used.insert(fp.clone());
            let severity = match f.severity {
                Severity::Error => "critical",
                Severity::Warning => "major",
                Severity::Info => "info",
            };
            json!({
                "description": full_text(f),
                "check_name": rules.id(i),
                "fingerprint": fp,
                "severity": severity,
                "location": {
                    "path": f.path,
                    "lines": {"begin": f.line, "end": f.last_line()},
                },
            })
        })
        .collect();
    Value::Array(issues)
}

#[cfg(test)]
mod tests;
