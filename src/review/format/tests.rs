//! Tests of the output formats, SARIF against its schema.

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
