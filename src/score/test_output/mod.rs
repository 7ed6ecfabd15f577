//! Reading test counts from a test runner's output: cargo test, cargo nextest, pytest,
//! Python's unittest, go test (`-v`), jest, vitest, and a plain `N passed, M failed` line.
//!
//! Each runner is recognised by the shape of its own summary (pytest's `=== … in 0.12s ===`,
//! cargo's `test result:`, nextest's `Summary [`, unittest's `Ran N tests` and `FAILED (…)`,
//! go's `--- PASS:` lines, jest's `Tests:`, vitest's `Tests  … (N)`), never by any line
//! that holds a number and a word: pytest prints `tests/test_x.py:252: Failed` where a test
//! fails through its `Failed` exception, and that is no count. The plain line counts only
//! when no runner's summary was found, and only when the whole line is a list of counts.
//!
//! Errors (collection, import, build and fixture errors; a test file that failed to load)
//! are kept apart from failures, as the runners keep them. A run that ran no test and did
//! not succeed "could not collect": its test setup failed, not a test. When nothing is
//! recognised, the exit code alone is the evidence.

mod runners;
#[cfg(test)]
mod tests;

use crate::model::TestResult;

/// What a runner's summary says, summed over its summaries (cargo prints one per test
/// binary; a command may run several runners).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    /// Errors the runner counts apart from failures.
    pub errors: u64,
    /// Neither passed nor failed: skipped, ignored, todo, expected failures (pytest's
    /// `xfailed` and `xpassed`, vitest's `expected fail`, unittest's `expected failures`).
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.errors += other.errors;
        self.skipped += other.skipped;
    }
}

/// The counts of every runner summary found in `output`; `None` when none was found.
pub fn parse_counts(output: &str) -> Option<Counts> {
    let mut found = Summaries::default();
    for raw in output.lines() {
        let line = strip_ansi(raw);
        // A progress display rewrites its line after a carriage return; the last text
        // written is what a terminal shows.
        let line = line.trim_end_matches('\r');
        let line = line.rsplit('\r').next().unwrap_or(line);
        found.read(line);
    }
    found.finish()
}

/// A candidate's test result from its runner's counts and how the command ended.
pub fn test_result(
    counts: Option<Counts>,
    exit_code: Option<i32>,
    timed_out: bool,
    duration_ms: u64,
) -> TestResult {
    TestResult {
        passed: counts.map(|c| c.passed),
        failed: counts.map(|c| c.failed),
        errors: counts.map(|c| c.errors),
        skipped: counts.map(|c| c.skipped),
        exit_code,
        timed_out,
        duration_ms,
        could_not_collect: could_not_collect(counts, exit_code, timed_out),
    }
}

/// Whether a run collected nothing to run: the runner's summary counts no test passed or
/// failed, and it met errors or did not succeed (pytest's `2 errors in 0.1s` or
/// `no tests ran`, jest's `Tests: 0 total` under failed suites, a crate that did not
/// compile). A timed-out run says nothing of the kind.
fn could_not_collect(counts: Option<Counts>, exit_code: Option<i32>, timed_out: bool) -> bool {
    !timed_out
        && counts.is_some_and(|c| {
            c.passed == 0 && c.failed == 0 && (c.errors > 0 || exit_code != Some(0))
        })
}

/// The summaries found so far, per runner, and the lines that count only beside them.
#[derive(Debug, Default)]
struct Summaries {
    /// `test result:` lines of `cargo test`'s own binaries (not those nextest captured).
    cargo: Option<Counts>,
    /// `test result:` lines of doc tests, which nextest does not run.
    cargo_doc: Option<Counts>,
    /// Within cargo's `Doc-tests` section.
    in_doc_tests: bool,
    /// `error: could not compile` lines (cargo test and nextest).
    compile_errors: u64,
    nextest: Option<Counts>,
    pytest: Option<Counts>,
    unittest: Option<Counts>,
    /// `Ran N tests` waiting for unittest's `OK` or `FAILED (…)` line.
    unittest_ran: Option<u64>,
    go: runners::Go,
    jest: Option<Counts>,
    /// `● Test suite failed to run`, before jest's repeated failures at the end.
    jest_errors: u64,
    jest_repeats: bool,
    vitest: Option<Counts>,
    /// `Failed Suites N` and `Errors  N errors`.
    vitest_errors: u64,
    plain: Option<Counts>,
    plain_has_outcome: bool,
}

impl Summaries {
    fn read(&mut self, raw: &str) {
        let line = raw.trim();
        if line.starts_with("Doc-tests ") {
            self.in_doc_tests = true;
        } else if line.starts_with("Running ") || line.starts_with("Nextest run ID") {
            self.in_doc_tests = false;
        }
        // Unindented: nextest indents the output it captured from each test.
        if raw.starts_with("test result: ") {
            if let Some(c) = runners::cargo(line) {
                let into = if self.in_doc_tests {
                    &mut self.cargo_doc
                } else {
                    &mut self.cargo
                };
                into.get_or_insert_default().add(c);
            }
            return;
        }
        if line.starts_with("error: could not compile `") {
            self.compile_errors += 1;
            return;
        }
        if let Some(c) = runners::nextest(line) {
            self.nextest.get_or_insert_default().add(c);
            return;
        }
        if let Some(c) = runners::pytest(line) {
            self.pytest.get_or_insert_default().add(c);
            return;
        }
        if let Some(n) = runners::unittest_ran(line) {
            self.unittest_ran = Some(n);
            return;
        }
        if let Some(ran) = self.unittest_ran
            && let Some(c) = runners::unittest_status(line, ran)
        {
            self.unittest.get_or_insert_default().add(c);
            self.unittest_ran = None;
            return;
        }
        if self.go.read(line) {
            return;
        }
        if let Some(c) = runners::jest(line) {
            self.jest.get_or_insert_default().add(c);
            return;
        }
        if line == "● Test suite failed to run" && !self.jest_repeats {
            self.jest_errors += 1;
            return;
        }
        if line.starts_with("Summary of all failing tests") {
            self.jest_repeats = true;
            return;
        }
        if let Some(c) = runners::vitest(line) {
            self.vitest.get_or_insert_default().add(c);
            return;
        }
        if let Some(n) = runners::vitest_errors(line) {
            self.vitest_errors += n;
            return;
        }
        if let Some((c, outcome)) = runners::plain(line) {
            self.plain.get_or_insert_default().add(c);
            self.plain_has_outcome |= outcome;
        }
    }

    /// The sum over the runners found; the plain lines only when no runner was.
    fn finish(self) -> Option<Counts> {
        let mut total: Option<Counts> = None;
        let mut add = |c: Option<Counts>| {
            if let Some(c) = c {
                total.get_or_insert_default().add(c);
            }
        };
        // A nextest run's own count replaces the `test result:` lines of the binaries it
        // ran; doc tests come from `cargo test --doc` beside it.
        add(self.nextest.or(self.cargo));
        add(self.cargo_doc);
        if self.compile_errors > 0 {
            add(Some(Counts {
                errors: self.compile_errors,
                ..Counts::default()
            }));
        }
        add(self.pytest);
        add(self.unittest);
        add(self.go.counts());
        add(self.jest.map(|c| Counts {
            errors: c.errors + self.jest_errors,
            ..c
        }));
        add(self.vitest.map(|c| Counts {
            errors: c.errors + self.vitest_errors,
            ..c
        }));
        if total.is_none() && self.plain_has_outcome {
            return self.plain;
        }
        total
    }
}

/// `s` without terminal colour and style sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
