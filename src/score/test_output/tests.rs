//! The parser against real output of each runner (`tests/fixtures/test-output/`, captured
//! as its README says), with failures of every kind, and against the lines that once
//! fooled it.

use super::{Counts, parse_counts, test_result};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/test-output/",
            $name
        ))
    };
}

fn counts(passed: u64, failed: u64, errors: u64, skipped: u64) -> Option<Counts> {
    Some(Counts {
        passed,
        failed,
        errors,
        skipped,
    })
}

/// A captured output: the runner's exit code, its own numbers (passed, failed, errors,
/// skipped; `None` where it prints none we can trust), and whether the run could not
/// collect.
struct Case {
    file: &'static str,
    output: &'static str,
    exit: i32,
    counts: Option<(u64, u64, u64, u64)>,
    not_collected: bool,
}

macro_rules! case {
    ($file:literal, $exit:literal, $counts:expr, $not_collected:expr) => {
        Case {
            file: $file,
            output: fixture!($file),
            exit: $exit,
            counts: $counts,
            not_collected: $not_collected,
        }
    };
}

const CASES: &[Case] = &[
    // pytest 9.2: assertion, DID NOT RAISE, pytest.fail, fixture error, skip, xfail,
    // xpass, subtests (pytest's and unittest's).
    case!("pytest-kinds.txt", 1, Some((3, 6, 1, 3)), false),
    case!("pytest-kinds-quiet.txt", 1, Some((3, 6, 1, 3)), false),
    case!("pytest-kinds-color.txt", 1, Some((3, 6, 1, 3)), false),
    // `tests/test_setutils.py:43: Failed` is where a test failed, not 43 failures.
    case!("pytest-raises-location.txt", 1, Some((1, 1, 0, 0)), false),
    case!("pytest-collection-errors.txt", 2, Some((0, 0, 2, 0)), true),
    case!("pytest-setup-error-only.txt", 1, Some((0, 0, 1, 0)), true),
    case!("pytest-no-tests.txt", 5, Some((0, 0, 0, 0)), true),
    // Python 3.11's unittest: failure, assertRaises, error, skip, expected failure,
    // unexpected success, subTest.
    case!("unittest-kinds.txt", 1, Some((1, 4, 1, 2)), false),
    case!("unittest-import-error.txt", 1, Some((0, 0, 1, 0)), true),
    case!("unittest-ok.txt", 0, Some((1, 0, 0, 0)), false),
    // cargo test: assertion, should_panic that did not, ignored, panic, Err, an
    // integration test, a failing doc test; then a crate that does not compile.
    case!("cargo-kinds.txt", 101, Some((3, 6, 0, 1)), false),
    case!("cargo-compile-error.txt", 101, Some((0, 0, 2, 0)), true),
    // nextest prints each failing test's own `test result:` line; its summary counts.
    case!("nextest-kinds.txt", 100, Some((2, 5, 0, 1)), false),
    case!("nextest-filtered.txt", 0, Some((2, 0, 0, 6)), false),
    case!("nextest-compile-error.txt", 101, Some((0, 0, 2, 0)), true),
    // go 1.19 `-v`: pass, fail, skip, subtests, a panic, a package that does not build.
    case!("go-verbose.txt", 2, Some((4, 4, 1, 1)), false),
    case!("go-pass.txt", 0, Some((1, 0, 0, 1)), false),
    case!("go-build-failed.txt", 2, Some((0, 0, 1, 0)), true),
    // Without -v, passing tests leave no line: no counts, the exit code decides.
    case!("go-plain.txt", 2, None, false),
    // jest 30: assertion, toThrow, skip, todo, test.each; two suites that fail to run.
    case!("jest-kinds.txt", 1, Some((3, 3, 2, 2)), false),
    case!("jest-suites-fail.txt", 1, Some((0, 0, 2, 0)), true),
    // vitest 4: the same kinds plus test.fails; files that fail to load; an unhandled
    // error after passing tests.
    case!("vitest-kinds.txt", 1, Some((3, 3, 2, 3)), false),
    case!("vitest-suites-fail.txt", 1, Some((0, 0, 2, 0)), true),
    case!("vitest-unhandled.txt", 1, Some((2, 0, 1, 0)), false),
    case!("vitest-pass.txt", 0, Some((1, 0, 0, 0)), false),
    // The plain lines: mocha 12's `1 passing (4ms)` / `1 pending` / `2 failing`, and the
    // demo's own `2 passed, 2 failed`.
    case!("mocha-kinds.txt", 2, Some((1, 2, 0, 1)), false),
    case!("generic-demo.txt", 1, Some((2, 2, 0, 0)), false),
];

#[test]
fn every_runner_is_read_to_its_own_numbers() {
    let mut wrong = Vec::new();
    for case in CASES {
        let want = case.counts.and_then(|(p, f, e, s)| counts(p, f, e, s));
        let got = parse_counts(case.output);
        let result = test_result(got, Some(case.exit), false, 0);
        if got != want || result.could_not_collect != case.not_collected {
            wrong.push(format!(
                "{}: got {got:?} (could not collect: {}), want {want:?} ({})",
                case.file, result.could_not_collect, case.not_collected
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn a_location_line_is_never_a_count() {
    for line in [
        "tests/test_setutils.py:252: Failed",
        "tests/test_x.py:12: AssertionError",
        "src/lib.rs:30:9: 2 failed",
        "E       Failed: DID NOT RAISE ValueError",
        "error: test failed, to rerun pass `--lib`",
        "Starting 7 tests across 2 binaries (1 test skipped)",
        "    at Object.toBe (tests/kinds.test.js:8:21)",
    ] {
        assert_eq!(parse_counts(line), None, "{line}");
    }
    let out = format!(
        "{}\ntests/test_setutils.py:252: Failed\n",
        "===== 2 failed, 7 passed in 0.52s ====="
    );
    assert_eq!(parse_counts(&out), counts(7, 2, 0, 0));
}

#[test]
fn errors_stay_apart_from_failures() {
    assert_eq!(
        parse_counts("=== 2 passed, 1 error in 0.1s ==="),
        counts(2, 0, 1, 0)
    );
    let only = parse_counts("=============== 1 error in 0.12s ===============");
    assert_eq!(only, counts(0, 0, 1, 0));
    let r = test_result(only, Some(1), false, 0);
    assert!(r.could_not_collect && !r.ok());
    assert_eq!(r.summary(), "tests could not be collected (1 error)");
    let r = test_result(counts(2, 0, 1, 0), Some(1), false, 0);
    assert!(!r.could_not_collect && !r.ok());
    assert_eq!(r.summary(), "2 passed, 0 failed, 1 error");
    assert_eq!(r.failures(), 1);
}

#[test]
fn an_empty_suite_that_succeeds_collected_fine() {
    // `cargo test` in a crate without tests: nothing ran, and nothing went wrong.
    let c = parse_counts("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured\n");
    let r = test_result(c, Some(0), false, 0);
    assert!(!r.could_not_collect && r.ok(), "{r:?}");
    // A timed-out run never printed its verdict.
    let r = test_result(counts(0, 0, 1, 0), None, true, 0);
    assert!(!r.could_not_collect);
    assert_eq!(r.summary(), "tests timed out");
}

#[test]
fn several_runners_in_one_command_add_up() {
    let out = format!(
        "{}\n{}",
        fixture!("nextest-filtered.txt"),
        "   Doc-tests kinds\n\nrunning 2 tests\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.06s\n"
    );
    assert_eq!(parse_counts(&out), counts(3, 1, 0, 6));
    let out = format!(
        "{}{}",
        fixture!("generic-demo.txt"),
        fixture!("pytest-raises-location.txt")
    );
    // A runner's summary wins over plain lines.
    assert_eq!(parse_counts(&out), counts(1, 1, 0, 0));
}

#[test]
fn plain_lines_only_as_whole_lines() {
    assert_eq!(parse_counts("3 passed, 0 failed"), counts(3, 0, 0, 0));
    assert_eq!(parse_counts("3 passed, 0 failed."), counts(3, 0, 0, 0));
    assert_eq!(parse_counts("all good\n"), None);
    assert_eq!(parse_counts("ran 3 passed tests, 1 failed\n"), None);
    assert_eq!(parse_counts("2 pending\n"), None);
}
