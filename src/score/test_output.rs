//! Reading test counts from a test runner's output: cargo test, cargo nextest, pytest,
//! go test (`-v`), jest, vitest, and any plain `N passed, M failed` line. When nothing is
//! recognised the exit code alone is the evidence.

/// Passed and failed counts found in `output`, summed over all summary lines.
pub fn parse_counts(output: &str) -> Option<(u64, u64)> {
    let mut passed = 0u64;
    let mut failed = 0u64;
    let mut found = false;
    let mut go_pass = 0u64;
    let mut go_fail = 0u64;
    for raw in output.lines() {
        let line = strip_ansi(raw);
        let line = line.trim();
        // go test -v: one line per test.
        if line.starts_with("--- PASS:") {
            go_pass += 1;
            continue;
        }
        if line.starts_with("--- FAIL:") {
            go_fail += 1;
            continue;
        }
        // jest/vitest also report suites and files; only the test line counts.
        if line.starts_with("Test Suites:") || line.starts_with("Test Files") {
            continue;
        }
        if let Some((p, f)) = counts_in_line(line) {
            passed += p;
            failed += f;
            found = true;
        }
    }
    if found {
        Some((passed, failed))
    } else if go_pass + go_fail > 0 {
        Some((go_pass, go_fail))
    } else {
        None
    }
}

/// `N passed` / `N failed` (also `N passing`, `N failing`, `N errors` as failures) in one
/// line; `None` unless a count of passed or failed tests is present.
fn counts_in_line(line: &str) -> Option<(u64, u64)> {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '|' | '(' | ')' | '=' | ':'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut passed = None;
    let mut failed = None;
    let mut errors = 0u64;
    for pair in words.windows(2) {
        let Ok(n) = pair[0].parse::<u64>() else {
            continue;
        };
        let word = pair[1].trim_end_matches('.').to_ascii_lowercase();
        match word.as_str() {
            "passed" | "passing" | "pass" => passed = Some(passed.unwrap_or(0) + n),
            "failed" | "failing" | "fail" => failed = Some(failed.unwrap_or(0) + n),
            "error" | "errors" => errors += n,
            _ => {}
        }
    }
    if passed.is_none() && failed.is_none() {
        return None;
    }
    Some((passed.unwrap_or(0), failed.unwrap_or(0) + errors))
}

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

#[cfg(test)]
mod parse_tests {
    use super::parse_counts;

    #[test]
    fn cargo_test_sums_binaries() {
        let out = "running 3 tests\ntest a ... ok\n\ntest result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\nrunning 4 tests\ntest result: ok. 4 passed; 0 failed; 0 ignored\n";
        assert_eq!(parse_counts(out), Some((6, 1)));
    }

    #[test]
    fn nextest_summary() {
        let out = "     Summary [   0.012s] 10 tests run: 8 passed, 2 failed, 0 skipped\n";
        assert_eq!(parse_counts(out), Some((8, 2)));
    }

    #[test]
    fn pytest_summary() {
        assert_eq!(
            parse_counts("==== 1 failed, 3 passed in 0.12s ===="),
            Some((3, 1))
        );
        assert_eq!(
            parse_counts("\u{1b}[32m==== 5 passed in 0.01s ====\u{1b}[0m"),
            Some((5, 0))
        );
        assert_eq!(
            parse_counts("=== 2 passed, 1 error in 0.1s ==="),
            Some((2, 1))
        );
    }

    #[test]
    fn go_test_verbose() {
        let out = "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n--- FAIL: TestB (0.00s)\nFAIL\n";
        assert_eq!(parse_counts(out), Some((1, 1)));
    }

    #[test]
    fn jest_and_vitest() {
        let jest =
            "Test Suites: 1 failed, 1 passed, 2 total\nTests:       1 failed, 4 passed, 5 total\n";
        assert_eq!(parse_counts(jest), Some((4, 1)));
        let vitest = " Test Files  1 failed | 1 passed (2)\n      Tests  1 failed | 4 passed (5)\n";
        assert_eq!(parse_counts(vitest), Some((4, 1)));
    }

    #[test]
    fn plain_line_and_nothing() {
        assert_eq!(parse_counts("3 passed, 0 failed"), Some((3, 0)));
        assert_eq!(parse_counts("all good\n"), None);
    }
}
