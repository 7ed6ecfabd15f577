//! `git massgen report`: the HTML page of a run, its escaping of what agents, judges and the
//! task say, candidates whose diff is gone, template overrides, `--open`, and the page as
//! headless Chromium renders it (skipped, loudly, where Chromium is not installed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{BREAK, FIX, TestRepo, wait_for};

/// A task and an agent's file that try to break out of the page.
const HOSTILE_TASK: &str = "fix the calculator <script>alert(1)</script> and </script><!--";
const EVIL: &str = "sed 's/\\$2 - \\$3/$2 + $3/' calc.sh > calc.tmp && mv calc.tmp calc.sh; \
                    printf '%s\\n' '<script>alert(1)</script>' '</script><!--' > page.html";

/// A command judge that votes for the first candidate whose patch lacks `page.html`, with a
/// reason holding markup.
const JUDGE: &str = r#"
label=$(awk '
  /"label":/ { l = $0; sub(/.*"label": "/, "", l); sub(/".*/, "", l) }
  /"patch":/ && !index($0, "page.html") { print l; exit }' "$MASSGEN_CANDIDATES")
printf '{"vote": "%s", "reason": "no page.html </script><b>bold</b>"}\n' "$label"
"#;

/// A repository whose judge prefers the candidate without `page.html`, and a scored run of
/// `good` (fixes), `bad` (breaks) and `evil` (fixes and adds hostile HTML); returns the run.
fn hostile_run(repo: &TestRepo) -> Value {
    let judge = repo.script("judge.sh", JUDGE);
    repo.configure(&format!(
        "[[judges]]\nname = \"j1\"\nkind = \"command\"\ncommand = [\"sh\", \"{}\"]\n",
        judge.display()
    ));
    let json = repo.run_json(
        &["--test", "sh test.sh"],
        &[("good", FIX), ("bad", BREAK), ("evil", EVIL)],
        HOSTILE_TASK,
        0,
    );
    assert_eq!(json["winner"], "good", "{}", json["reason"]);
    json
}

/// `git massgen report ARGS`, asserting success; returns the path it printed.
fn report(repo: &TestRepo, args: &[&str]) -> PathBuf {
    let out = repo
        .massgen()
        .args(["report"])
        .args(args)
        .run()
        .expect_code(0);
    let path = PathBuf::from(out.stdout.trim());
    assert!(path.is_file(), "no report at {}", path.display());
    path
}

/// Text as minijinja's HTML autoescape writes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// The values of every `src=` and `href=` attribute.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=", "href=", "SRC=", "HREF="] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            let value = match rest.chars().next() {
                Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
                _ => rest.split([' ', '>']).next().unwrap_or(""),
            };
            out.push(value.to_owned());
        }
    }
    out
}

/// The page's embedded data.
fn data(html: &str) -> Value {
    let start = r#"<script type="application/json" id="massgen-data">"#;
    let from = html.find(start).expect("the data element") + start.len();
    let len = html[from..].find("</script>").expect("the data ends");
    serde_json::from_str(&html[from..from + len]).expect("the data is JSON")
}

#[test]
fn report_shows_the_evidence_and_escapes_what_agents_judges_and_the_task_wrote() {
    let repo = TestRepo::new();
    let json = hostile_run(&repo);
    let run = json["run"].as_str().unwrap();
    let path = report(&repo, &[run]);
    assert!(
        path.ends_with(format!(".massgen/runs/{run}/report.html")),
        "{}",
        path.display()
    );
    let html = std::fs::read_to_string(&path).unwrap();

    // The task, every agent, the winner and why, the judge's vote and reason.
    assert!(html.contains(&escaped(HOSTILE_TASK)), "task missing");
    for agent in ["good", "bad", "evil"] {
        assert!(
            html.contains(&format!("<strong>{agent}</strong>")),
            "{agent}"
        );
    }
    assert!(html.contains("Winner: good"));
    let reason = json["reason"].as_str().unwrap();
    assert!(html.contains(&escaped(reason)), "reason missing: {reason}");
    assert!(html.contains(&escaped("no page.html </script><b>bold</b>")));
    assert!(html.contains("4 passed, 0 failed"));
    assert!(html.contains("id=\"heatmap\""));
    let branch = format!("massgen/{run}/good");
    assert!(html.contains(&escaped(&branch)), "no branch");
    assert!(html.contains("<div class=\"l file\">diff --git a&#x2f;calc.sh"));

    // Nothing from the network.
    for link in links(&html) {
        let l = link.to_ascii_lowercase();
        assert!(
            !(l.starts_with("http:") || l.starts_with("https:") || l.starts_with("//")),
            "external resource {link}"
        );
    }
    for tag in ["<link", "@import", "url(", "<iframe", "<img"] {
        assert!(!html.contains(tag), "{tag} in the page");
    }

    // Hostile text never becomes markup: the page has exactly its own two scripts.
    assert!(!html.contains("<script>alert"), "unescaped script");
    assert!(!html.contains("<b>bold"), "unescaped markup");
    assert_eq!(html.matches("<script").count(), 2);
    assert_eq!(html.matches("</script>").count(), 2);
    assert!(!html.contains("<!--"), "a comment opener got through");
    // ... and still reaches the page's script intact.
    let data = data(&html);
    assert_eq!(data["winner"], "good");
    assert_eq!(data["agents"][0], "good");
    let evil = data["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["agent"] == "evil")
        .unwrap();
    assert!(
        evil.to_string().contains("<script>alert(1)</script>"),
        "{evil}"
    );
    assert_eq!(data["similarity"].as_array().unwrap().len(), 3);
}

#[test]
fn report_goes_where_asked_and_says_which_diffs_are_gone() {
    let repo = TestRepo::new();
    let json = repo.run_json(
        &["--test", "sh test.sh"],
        &[("keep", FIX), ("gone", BREAK), ("crash", "exit 3")],
        "fix it",
        0,
    );
    let run = json["run"].as_str().unwrap();
    // `run` wrote the report into the run's directory when it finished.
    let default = repo.path.join(format!(".massgen/runs/{run}/report.html"));
    assert!(default.exists(), "run writes its report");
    std::fs::remove_file(&default).unwrap();
    // The candidate's branch is deleted and its commit pruned.
    repo.git(&["branch", "-D", &format!("massgen/{run}/gone")]);
    repo.git(&["reflog", "expire", "--expire=now", "--all"]);
    repo.git(&["gc", "-q", "--prune=now"]);
    let gone = json["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["agent"] == "gone")
        .unwrap();
    let commit = gone["commit"].as_str().unwrap();
    assert!(
        !repo
            .git_output(&["cat-file", "-e", commit])
            .status
            .success()
    );

    let path = report(&repo, &[&run[..10], "--output", "page.html"]);
    assert_eq!(
        path.canonicalize().unwrap(),
        repo.path.join("page.html").canonicalize().unwrap()
    );
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(
        html.contains(&escaped(&format!(
            "the branch massgen/{run}/gone is gone and its commit {} cannot be read",
            &commit[..12]
        ))),
        "no word on the gone branch"
    );
    assert!(
        html.contains("no candidate commit (failed)")
            || html.contains("no change against the base")
    );
    // The diff of the candidate that is still there is shown, coloured.
    assert!(html.contains("<div class=\"l add\">+"), "no added line");
    assert!(
        !repo
            .path
            .join(format!(".massgen/runs/{run}/report.html"))
            .exists()
    );
}

#[test]
fn report_of_an_interrupted_run_shows_what_there_is() {
    let repo = TestRepo::new();
    let json = repo.run_json(&[], &[("a", FIX), ("b", BREAK)], "fix it", 0);
    let run = json["run"].as_str().unwrap();
    // Rewrite the state as a run killed while its agents worked.
    let state_file = repo.path.join(format!(".massgen/runs/{run}/state.json"));
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    state["state"] = "running".into();
    state["pid"] = 0.into();
    state["winner"] = Value::Null;
    state["reason"] = Value::Null;
    for c in state["candidates"].as_array_mut().unwrap() {
        c["status"] = "running".into();
        c["commit"] = Value::Null;
        c["rank"] = Value::Null;
    }
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();

    let html = std::fs::read_to_string(report(&repo, &["latest"])).unwrap();
    assert!(html.contains("badge interrupted"), "phase not shown");
    assert!(html.contains("No winner"));
    assert_eq!(
        html.matches("<div class=\"missing\">no candidate yet (running)</div>")
            .count(),
        2
    );
}

#[test]
fn report_template_can_be_replaced_and_still_escapes() {
    let repo = TestRepo::new();
    let json = repo.run_json(&[], &[("a", FIX)], "make <b>it</b> work", 0);
    let run = json["run"].as_str().unwrap();
    repo.write(
        ".massgen/templates/report.html",
        "<p>{{ run }}: {{ task }} ({{ rows | length }} row, winner {{ winner }})</p>",
    );
    let html = std::fs::read_to_string(report(&repo, &[run])).unwrap();
    assert_eq!(
        html,
        format!("<p>{run}: make &lt;b&gt;it&lt;&#x2f;b&gt; work (1 row, winner a)</p>")
    );

    repo.write(".massgen/templates/report.html", "{% if %}");
    let out = repo.massgen().args(["report", run]).run().expect_code(4);
    out.assert_stderr("cannot render the report template");
    out.assert_stderr("hint: fix or remove .massgen/templates/report.html");
}

#[cfg(not(target_os = "macos"))]
#[test]
fn report_open_starts_the_opener_and_does_not_wait() {
    let repo = TestRepo::new();
    let json = repo.run_json(&[], &[("a", FIX)], "fix it", 0);
    let run = json["run"].as_str().unwrap();
    let bin = repo.scratch("bin");
    let opened = repo.root.join("opened.txt");
    let go = repo.root.join("go");
    // The opener finishes only after `report` has returned (or gives up after 20 s): a
    // `report` that waited for it would leave "waited" behind.
    std::fs::write(
        bin.join("xdg-open"),
        format!(
            "#!/bin/sh\nn=0\nwhile [ ! -e '{go}' ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done\n\
             if [ -e '{go}' ]; then printf '%s' \"$1\"; else echo waited; fi > '{opened}'\n",
            go = go.display(),
            opened = opened.display()
        ),
    )
    .unwrap();
    make_executable(&bin.join("xdg-open"));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = repo
        .massgen()
        .env("PATH", &path)
        .args(["report", run, "--open"])
        .run()
        .expect_code(0);
    std::fs::write(&go, "").unwrap();
    wait_for("the opener", || {
        std::fs::read_to_string(&opened).is_ok_and(|s| !s.is_empty())
    });
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), out.stdout.trim());

    // An opener that cannot start is a warning, not a failure.
    let out = repo
        .massgen()
        .env("PATH", repo.scratch("empty"))
        .args(["report", run, "--open"])
        .run()
        .expect_code(0);
    out.assert_stderr("warning: cannot open");
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The first `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs headless Chromium with `args`, its profile and HOME in `scratch`; fails after 120 s.
fn chromium(bin: &Path, scratch: &Path, args: &[String]) -> String {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--disable-extensions",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("chromium starts");
    let start = Instant::now();
    while child
        .try_wait()
        .expect("chromium can be waited on")
        .is_none()
    {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish in 120 s: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium output");
    assert!(
        out.status.success(),
        "chromium {args:?} exited {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// Distinct scanlines of a PNG (as filtered bytes; one colour gives a handful), by python3
/// and zlib; `None` where python3 is missing.
fn distinct_rows(png: &Path) -> Option<usize> {
    const SCRIPT: &str = r#"
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
pos, idat = 8, b''
while pos < len(d):
    n, = struct.unpack('>I', d[pos:pos + 4]); kind = d[pos + 4:pos + 8]; body = d[pos + 8:pos + 8 + n]
    pos += 12 + n
    if kind == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT': idat += body
raw = zlib.decompress(idat)
stride = w * {0: 1, 2: 3, 4: 2, 6: 4}[ctype] * depth // 8 + 1
print(len({raw[i * stride:(i + 1) * stride] for i in range(h)}))
"#;
    let out = Command::new(which("python3")?)
        .args(["-c", SCRIPT])
        .arg(png)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap())
}

#[test]
#[allow(clippy::print_stderr)]
fn report_renders_in_headless_chromium() {
    let Some(bin) = which("chromium").or_else(|| which("chromium-browser")) else {
        eprintln!("SKIPPED: chromium is not installed (install the Debian package `chromium`)");
        return;
    };
    let repo = TestRepo::new();
    let json = hostile_run(&repo);
    let page = report(&repo, &[json["run"].as_str().unwrap()]);
    let scratch = repo.scratch("chromium");
    let url = format!("file://{}", page.display());

    // After the page's script ran: the comparison shows the winner against the runner-up,
    // file by file, and the hostile text is text.
    let dom = chromium(&bin, &scratch, &["--dump-dom".into(), url.clone()]);
    assert!(
        dom.contains("data-compare=\"ready\""),
        "the script did not run"
    );
    assert!(dom.contains("id=\"cmp-table\""), "no comparison");
    assert!(dom.contains("<tr class=\"cmp-file\"><th colspan=\"2\">calc.sh</th></tr>"));
    assert!(dom.contains("similarity: "), "no similarity");
    assert!(
        dom.contains("<option value=\"2\">"),
        "the candidates are not listed"
    );
    assert!(!dom.contains("<script>alert"), "a script got into the DOM");
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // A screenshot of the right size that is not a blank page.
    let shot = scratch.join("report.png");
    let blank_html = scratch.join("blank.html");
    let blank = scratch.join("blank.png");
    std::fs::write(&blank_html, "<!doctype html><html><body></body></html>").unwrap();
    for (png, url) in [
        (&shot, url),
        (&blank, format!("file://{}", blank_html.display())),
    ] {
        chromium(
            &bin,
            &scratch,
            &[
                format!("--screenshot={}", png.display()),
                "--window-size=1280,2000".into(),
                url,
            ],
        );
    }
    let (report_png, blank_png) = (
        std::fs::read(&shot).unwrap(),
        std::fs::read(&blank).unwrap(),
    );
    assert_eq!(png_size(&report_png), (1280, 2000));
    assert_eq!(png_size(&blank_png), (1280, 2000));
    assert!(
        report_png.len() > 30_000 && report_png.len() > 3 * blank_png.len(),
        "the screenshot looks blank: {} bytes, a blank page {} bytes",
        report_png.len(),
        blank_png.len()
    );
    if let (Some(rows), Some(blank_rows)) = (distinct_rows(&shot), distinct_rows(&blank)) {
        assert!(
            rows > 100 && blank_rows * 4 < rows,
            "{rows} distinct rows, a blank page {blank_rows}"
        );
    }
}
