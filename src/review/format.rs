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
mod tests {
    use super::*;
    use crate::review::{Kept, ReviewerOutcome};

    const SCHEMA: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sarif-schema-2.1.0.json"
    ));

    fn kept(path: &str, line: u32, end: Option<u32>, severity: Severity, title: &str) -> Kept {
        Kept {
            finding: Finding {
                path: path.into(),
                line,
                end_line: end,
                severity,
                title: title.into(),
                message: format!("About {title}.\nSecond line."),
                suggestion: None,
            },
            reviewers: vec!["claude".into(), "codex".into()],
            fingerprint: fingerprint(path, title, severity),
        }
    }

    fn reviewer(name: &str, error: Option<&str>) -> ReviewerOutcome {
        ReviewerOutcome {
            name: name.into(),
            kind: "command".into(),
            ok: error.is_none(),
            error: error.map(Into::into),
            ..ReviewerOutcome::default()
        }
    }

    fn sample() -> Report {
        let mut first = kept("src/a b.rs", 3, Some(5), Severity::Error, "SQL injection");
        first.finding.suggestion = Some("Use a bound parameter.".into());
        let mut twin = kept("src/a b.rs", 9, None, Severity::Error, "sql   Injection");
        twin.fingerprint = first.fingerprint.clone();
        Report {
            id: "r1".into(),
            target: "main..HEAD".into(),
            base: "a".repeat(40),
            head: "b".repeat(40),
            files: vec!["src/a b.rs".into()],
            quorum: 2,
            reviewers: vec![
                reviewer("claude", None),
                reviewer("codex", None),
                reviewer("gemini", Some("timed out after 600s")),
            ],
            findings: vec![
                first,
                twin,
                kept("docs/naïve #1?.md", 1, None, Severity::Warning, "Typo: teh"),
                kept("c:x/100%.rs", 7, Some(7), Severity::Info, "Typo, teh"),
            ],
            dropped: 2,
        }
    }

    fn sarif_validator() -> (boon::Schemas, boon::SchemaIndex) {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the vendored schema is JSON");
        let url = schema["$id"]
            .as_str()
            .expect("the schema has an $id")
            .to_owned();
        let mut compiler = boon::Compiler::new();
        compiler.enable_format_assertions();
        compiler.add_resource(&url, schema).expect("schema added");
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(&url, &mut schemas)
            .expect("schema compiles");
        (schemas, index)
    }

    #[test]
    fn several_reviews_make_one_valid_output() {
        let (a, b) = (sample(), sample());
        let both = [a, b];
        let json: Value = serde_json::from_str(&render_all(&both, Format::Json)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 2);
        let sarif: Value = serde_json::from_str(&render_all(&both, Format::Sarif)).unwrap();
        assert_eq!(sarif["runs"].as_array().unwrap().len(), 2);
        let (schemas, index) = sarif_validator();
        assert!(schemas.validate(&sarif, index).is_ok());
        let gitlab: Value = serde_json::from_str(&render_all(&both, Format::Gitlab)).unwrap();
        let prints: HashSet<&str> = gitlab
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["fingerprint"].as_str().unwrap())
            .collect();
        assert_eq!(
            prints.len(),
            2 * both[0].findings.len(),
            "unique across reviews"
        );
        let text = render_all(&both, Format::Text);
        assert_eq!(text, render(&both[0], Format::Text).repeat(2));
        assert_eq!(render_all(&[], Format::Json), "");
    }

    #[test]
    fn sarif_is_valid_against_the_schema() {
        let (schemas, index) = sarif_validator();
        for report in [sample(), Report::default()] {
            let doc: Value = serde_json::from_str(&render(&report, Format::Sarif)).unwrap();
            if let Err(e) = schemas.validate(&doc, index) {
                panic!("{e:#}\n{doc:#}");
            }
        }
        let doc: Value = serde_json::from_str(&render(&sample(), Format::Sarif)).unwrap();
        let run = &doc["runs"][0];
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        let uris: Vec<&str> = results
            .iter()
            .map(|r| {
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            uris,
            [
                "src/a%20b.rs",
                "src/a%20b.rs",
                "docs/na%C3%AFve%20%231%3F.md",
                "c%3Ax/100%25.rs"
            ]
        );
        assert_eq!(results[0]["level"], "error");
        assert_eq!(results[2]["level"], "warning");
        assert_eq!(results[3]["level"], "note");
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["region"]["endLine"],
            5
        );
        assert_eq!(
            results[1]["locations"][0]["physicalLocation"]["region"]["endLine"],
            9
        );
        let text = results[0]["message"]["text"].as_str().unwrap();
        assert!(
            text.starts_with("SQL injection\n\nAbout SQL injection."),
            "{text}"
        );
        assert!(
            text.ends_with("Suggestion: Use a bound parameter."),
            "{text}"
        );
        assert_eq!(results[0]["properties"]["agreed"], 2);
        // One rule per title regardless of case and spacing; colliding slugs told apart.
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0]["id"], "sql-injection");
        assert_eq!(results[1]["ruleIndex"], 0);
        assert_ne!(rules[1]["id"], rules[2]["id"]);
        assert!(rules[1]["id"].as_str().unwrap().starts_with("typo-teh-"));
        for r in results {
            let index = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(r["ruleId"], rules[index]["id"]);
        }
        let invocation = &run["invocations"][0];
        assert_eq!(invocation["executionSuccessful"], false);
        let notes = invocation["toolExecutionNotifications"].as_array().unwrap();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0]["message"]["text"]
                .as_str()
                .unwrap()
                .contains("gemini")
        );
    }

    #[test]
    fn the_validator_rejects_broken_sarif() {
        let (schemas, index) = sarif_validator();
        let doc: Value = serde_json::from_str(&render(&sample(), Format::Sarif)).unwrap();
        let breakages: [(&str, Value); 4] = [
            ("/runs/0/results/0/level", json!("fatal")),
            ("/version", json!("2.0.0")),
            (
                "/runs/0/results/0/locations/0/physicalLocation/artifactLocation/uri",
                json!("src/a b.rs"),
            ),
            (
                "/runs/0/results/0/locations/0/physicalLocation/region/startLine",
                json!(0),
            ),
        ];
        for (pointer, value) in breakages {
            let mut broken = doc.clone();
            *broken.pointer_mut(pointer).unwrap() = value;
            assert!(
                schemas.validate(&broken, index).is_err(),
                "{pointer} accepted"
            );
        }
    }

    #[test]
    fn github_commands_escape_like_the_toolkit() {
        let mut k = kept("a,b:c%.rs", 4, Some(6), Severity::Warning, "50% off: a, b");
        k.finding.message = "line 1\r\nline 2: 100%, done".into();
        let report = Report {
            findings: vec![k, kept("x.rs", 1, None, Severity::Info, "i")],
            reviewers: vec![reviewer("r1", None), reviewer("r2", Some("exit 1:\nboom"))],
            ..Report::default()
        };
        let out = render(&report, Format::Github);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "::warning file=a%2Cb%3Ac%25.rs,line=4,endLine=6,title=50%25 off%3A a%2C b\
                 ::line 1%0D%0Aline 2: 100%25, done%0A%0AAgreed: claude, codex",
                "::notice file=x.rs,line=1,endLine=1,title=i::About i.%0ASecond line.\
                 %0A%0AAgreed: claude, codex",
                "::warning title=git-massgen%3A reviewer r2 failed::exit 1:%0Aboom",
            ]
        );
        assert!(out.ends_with('\n'));
        assert_eq!(render(&Report::default(), Format::Github), "");
    }

    #[test]
    fn rdjsonl_has_one_diagnostic_per_line() {
        let report = sample();
        let out = render(&report, Format::Rdjsonl);
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), report.findings.len());
        let severities: Vec<&str> = lines
            .iter()
            .map(|l| l["severity"].as_str().unwrap())
            .collect();
        assert_eq!(severities, ["ERROR", "ERROR", "WARNING", "INFO"]);
        let first = &lines[0];
        assert_eq!(first["location"]["path"], "src/a b.rs");
        assert_eq!(first["location"]["range"]["start"]["line"], 3);
        assert_eq!(first["location"]["range"]["end"]["line"], 5);
        assert_eq!(first["source"]["name"], "git-massgen");
        assert_eq!(first["code"]["value"], "sql-injection");
        assert!(
            first["message"]
                .as_str()
                .unwrap()
                .contains("Suggestion: Use a bound")
        );
        assert_eq!(lines[2]["location"]["path"], "docs/naïve #1?.md");
        assert_eq!(render(&Report::default(), Format::Rdjsonl), "");
    }

    #[test]
    fn gitlab_fingerprints_are_unique_and_stable() {
        let mut report = sample();
        let mut third = report.findings[0].clone();
        third.finding.line = 40;
        report.findings.push(third);
        let out = render(&report, Format::Gitlab);
        assert_eq!(out, render(&report, Format::Gitlab));
        let issues: Vec<Value> = serde_json::from_str(&out).unwrap();
        let fps: Vec<&str> = issues
            .iter()
            .map(|i| i["fingerprint"].as_str().unwrap())
            .collect();
        assert_eq!(
            fps.iter().collect::<HashSet<_>>().len(),
            fps.len(),
            "{fps:?}"
        );
        assert_eq!(fps[0], report.findings[0].fingerprint);
        assert!(fps.iter().all(|f| f.len() == 32));
        assert_eq!(issues[0]["severity"], "critical");
        assert_eq!(issues[2]["severity"], "major");
        assert_eq!(issues[3]["severity"], "info");
        assert_eq!(issues[0]["location"]["lines"]["begin"], 3);
        assert_eq!(issues[0]["location"]["lines"]["end"], 5);
        assert_eq!(issues[0]["check_name"], "sql-injection");
        assert_eq!(render(&Report::default(), Format::Gitlab), "[]\n");
    }

    #[test]
    fn fingerprints_ignore_case_and_spacing_only() {
        let fp = fingerprint("a.rs", "Unused  import\n", Severity::Warning);
        assert_eq!(fp, fingerprint("a.rs", " unused import", Severity::Warning));
        assert_eq!(fp.len(), 32);
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(fp, fingerprint("b.rs", "unused import", Severity::Warning));
        assert_ne!(fp, fingerprint("a.rs", "unused import", Severity::Error));
        assert_ne!(fp, fingerprint("a.rs", "unused imports", Severity::Warning));
        // Pinned: consumers track findings by this digest across releases.
        assert_eq!(hex_digest(""), "6c62272e07bb014262b821756295c58d");
        assert_eq!(hex_digest("a"), "d228cb696f1a8caf78912b704e4a8964");
    }

    #[test]
    fn text_reads_well() {
        let mut empty = Report {
            quorum: 2,
            reviewers: vec![reviewer("claude", None), reviewer("codex", None)],
            ..Report::default()
        };
        assert_eq!(
            render(&empty, Format::Text),
            "No findings kept, none dropped below quorum 2 of 2 reviewers.\n"
        );
        empty.dropped = 1;
        empty.reviewers[1] = reviewer("codex", Some("no answer in 600s"));
        assert_eq!(
            render(&empty, Format::Text),
            "No findings kept, 1 dropped below quorum 2 of 2 reviewers.\n\
             reviewer codex failed: no answer in 600s\n"
        );
        let out = render(&sample(), Format::Text);
        let expected_start = "\
src/a b.rs:3-5: error: SQL injection  [agreed: claude, codex]
    About SQL injection.
    Second line.
    suggestion: Use a bound parameter.

src/a b.rs:9: error: sql   Injection  [agreed: claude, codex]
";
        assert!(out.starts_with(expected_start), "{out}");
        assert!(out.contains("\nc:x/100%.rs:7: info: Typo, teh  [agreed: claude, codex]\n"));
        assert!(out.ends_with(
            "\n4 findings kept (2 errors, 1 warning, 1 info), 2 dropped below quorum 2 of \
             3 reviewers.\nreviewer gemini failed: timed out after 600s\n"
        ));
    }

    #[test]
    fn json_is_the_report() {
        let report = sample();
        let out = render(&report, Format::Json);
        assert!(out.ends_with("}\n"));
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value, serde_json::to_value(&report).unwrap());
    }
}
