//! One runner's summary line each: its shape, and its words mapped to passed, failed,
//! errors and skipped. Lines arrive trimmed and without colour.

use super::Counts;

/// `N words` (`3 passed`, `1 timed out`); `None` unless it starts with a count.
fn count_word(item: &str) -> Option<(u64, &str)> {
    let (n, word) = item.trim().split_once(' ')?;
    let word = word.trim();
    (!word.is_empty()).then_some(())?;
    Some((n.parse().ok()?, word))
}

/// `text` without a trailing parenthesis (`(9)`, `(4ms)`, `(0:01:05)`).
fn without_parenthesis(text: &str) -> &str {
    let text = text.trim();
    match text.rfind(" (") {
        Some(at) if text.ends_with(')') => text[..at].trim_end(),
        _ => text,
    }
}

/// cargo test's `test result: FAILED. 1 passed; 4 failed; 1 ignored; 0 measured; …`.
pub(super) fn cargo(line: &str) -> Option<Counts> {
    let rest = line.strip_prefix("test result: ")?;
    let (_, rest) = rest.split_once(". ")?;
    let mut c = Counts::default();
    let mut passed = false;
    for (n, word) in rest.split(';').filter_map(count_word) {
        match word {
            "passed" => {
                c.passed += n;
                passed = true;
            }
            "failed" => c.failed += n,
            "ignored" => c.skipped += n,
            _ => {}
        }
    }
    passed.then_some(c)
}

/// nextest's `Summary [   0.138s] 7 tests run: 2 passed, 5 failed, 1 skipped` (also
/// `3/10 tests run`, `1 timed out`, `2 passed (1 flaky)`).
pub(super) fn nextest(line: &str) -> Option<Counts> {
    let rest = line.strip_prefix("Summary [")?;
    let (_, rest) = rest.split_once(']')?;
    let (_, rest) = rest.split_once(" run: ")?;
    let mut c = Counts::default();
    for item in rest.split(", ") {
        let (n, word) = count_word(without_parenthesis(item))?;
        match word {
            "passed" => c.passed += n,
            "skipped" => c.skipped += n,
            "timed out" => c.failed += n,
            w if w.ends_with("failed") => c.failed += n,
            _ => {}
        }
    }
    Some(c)
}

/// pytest's last line, `==== 6 failed, 3 passed, 1 skipped, 1 error in 0.03s ====` (bare
/// with `-q`; `no tests ran in 0.01s`). Counts of plugins (`4 subtests passed`) and
/// warnings are not tests.
pub(super) fn pytest(line: &str) -> Option<Counts> {
    let body = line.trim_matches(|c: char| c == '=' || c.is_whitespace());
    let (items, duration) = body.rsplit_once(" in ")?;
    let seconds = without_parenthesis(duration).strip_suffix('s')?;
    seconds.parse::<f64>().ok()?;
    if items == "no tests ran" {
        return Some(Counts::default());
    }
    let mut c = Counts::default();
    let mut known = false;
    for item in items.split(", ") {
        let (n, word) = count_word(item)?;
        match word {
            "passed" => c.passed += n,
            "failed" => c.failed += n,
            "error" | "errors" => c.errors += n,
            "skipped" | "xfailed" | "xpassed" => c.skipped += n,
            "deselected" | "warning" | "warnings" | "rerun" => {}
            _ => continue,
        }
        known = true;
    }
    known.then_some(c)
}

/// unittest's `Ran 8 tests in 0.001s`: how many ran.
pub(super) fn unittest_ran(line: &str) -> Option<u64> {
    let (n, rest) = line.strip_prefix("Ran ")?.split_once(' ')?;
    (rest.starts_with("test ") || rest.starts_with("tests ")).then_some(())?;
    n.parse().ok()
}

/// unittest's verdict after `Ran N tests`: `OK`, `OK (skipped=1)`, `NO TESTS RAN`, or
/// `FAILED (failures=3, errors=1, skipped=1, expected failures=1, unexpected
/// successes=1)`. The tests it does not list passed; an unexpected success fails the run,
/// so it counts as a failure.
pub(super) fn unittest_status(line: &str, ran: u64) -> Option<Counts> {
    if line == "NO TESTS RAN" {
        return Some(Counts::default());
    }
    let rest = line
        .strip_prefix("OK")
        .or_else(|| line.strip_prefix("FAILED"))?
        .trim();
    let mut c = Counts::default();
    if !rest.is_empty() {
        let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
        for item in inner.split(", ") {
            let (key, n) = item.split_once('=')?;
            let n: u64 = n.parse().ok()?;
            match key {
                "failures" | "unexpected successes" => c.failed += n,
                "errors" => c.errors += n,
                "skipped" | "expected failures" => c.skipped += n,
                _ => return None,
            }
        }
    }
    c.passed = ran.saturating_sub(c.failed + c.errors + c.skipped);
    Some(c)
}

/// go test's lines: each `--- PASS/FAIL/SKIP:` (subtests too, as go and gotestsum count
/// them) and each package that did not build. Without `-v` go prints no line for a test
/// that passed, so counts are only complete with `=== RUN` lines, or when no package ran
/// any test at all.
#[derive(Debug, Default)]
pub(super) struct Go {
    verbose: bool,
    ran: bool,
    counts: Counts,
}

impl Go {
    /// Whether `line` was one of go's.
    pub(super) fn read(&mut self, line: &str) -> bool {
        if line.starts_with("=== RUN ") {
            self.verbose = true;
        } else if line.starts_with("--- PASS: ") {
            self.counts.passed += 1;
            self.ran = true;
        } else if line.starts_with("--- FAIL: ") {
            self.counts.failed += 1;
            self.ran = true;
        } else if line.starts_with("--- SKIP: ") {
            self.counts.skipped += 1;
            self.ran = true;
        } else if line.starts_with("ok  \t") {
            self.ran = true;
        } else if line.starts_with("FAIL\t")
            && (line.ends_with(" [build failed]") || line.ends_with(" [setup failed]"))
        {
            self.counts.errors += 1;
        } else {
            return false;
        }
        true
    }

    pub(super) fn counts(&self) -> Option<Counts> {
        let nothing_ran = !self.ran && self.counts.errors > 0;
        ((self.verbose && self.ran) || nothing_ran).then_some(self.counts)
    }
}

/// jest's `Tests:       3 failed, 1 skipped, 1 todo, 3 passed, 8 total`.
pub(super) fn jest(line: &str) -> Option<Counts> {
    let rest = line.strip_prefix("Tests:")?;
    let mut c = Counts::default();
    for item in rest.split(',') {
        let (n, word) = count_word(item)?;
        match word {
            "passed" => c.passed += n,
            "failed" => c.failed += n,
            "skipped" | "todo" => c.skipped += n,
            _ => {}
        }
    }
    Some(c)
}

/// vitest's `Tests  3 failed | 3 passed | 1 expected fail | 1 skipped | 1 todo (9)`, or
/// `Tests  no tests`.
pub(super) fn vitest(line: &str) -> Option<Counts> {
    let rest = line.strip_prefix("Tests ")?.trim();
    if rest == "no tests" {
        return Some(Counts::default());
    }
    let mut c = Counts::default();
    for item in without_parenthesis(rest).split('|') {
        let (n, word) = count_word(item)?;
        match word {
            "passed" => c.passed += n,
            "failed" => c.failed += n,
            "skipped" | "todo" | "expected fail" => c.skipped += n,
            _ => {}
        }
    }
    Some(c)
}

/// vitest's errors: the header `⎯⎯ Failed Suites 2 ⎯⎯` (test files that did not load) and
/// the summary's `Errors  1 error` (unhandled errors).
pub(super) fn vitest_errors(line: &str) -> Option<u64> {
    let header = line.trim_matches(|c: char| c == '⎯' || c.is_whitespace());
    if let Some(n) = header.strip_prefix("Failed Suites ") {
        return n.trim().parse().ok();
    }
    let (n, word) = count_word(line.strip_prefix("Errors ")?)?;
    matches!(word, "error" | "errors").then_some(n)
}

/// A whole line of counts in the common words, `2 passed, 2 failed` or mocha's
/// `1 passing (4ms)`, and whether it says passed or failed (mocha puts `1 pending` on a
/// line of its own, which alone is no summary).
pub(super) fn plain(line: &str) -> Option<(Counts, bool)> {
    let body = without_parenthesis(line.trim_end_matches('.'));
    let mut c = Counts::default();
    let mut outcome = false;
    for item in body.split([',', ';']) {
        let (n, word) = count_word(item)?;
        match word.to_ascii_lowercase().as_str() {
            "passed" | "passing" | "pass" => {
                c.passed += n;
                outcome = true;
            }
            "failed" | "failing" | "fail" => {
                c.failed += n;
                outcome = true;
            }
            "error" | "errors" => c.errors += n,
            "skipped" | "pending" | "ignored" | "todo" => c.skipped += n,
            _ => return None,
        }
    }
    Some((c, outcome))
}
