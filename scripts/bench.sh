#!/bin/sh
# Runs the engine benchmarks (benches/engine.rs) and keeps the markdown tables.
#
#   scripts/bench.sh [REPORT.md]
#
# Environment (all optional): MASSGEN_BENCH_SIZES (default 20000,100000),
# MASSGEN_BENCH_REPS (default 3), MASSGEN_BENCH_TMPDIR (where the repositories are
# generated; default the system temp dir), MASSGEN_BENCH_BIN (default target/release/git-massgen).
set -eu
cd "$(dirname "$0")/.."
report=${1:-target/bench-engine.md}
cargo build --release
MASSGEN_BENCH_REPORT=$report cargo bench --bench engine
echo "tables written to $report" >&2
