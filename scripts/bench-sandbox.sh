#!/usr/bin/env bash
# The sandbox's costs: the start-up of the trampoline (`git-massgen sandbox-exec`, which
# confines itself with Landlock and then execs the command) per command, as the median of
# N starts of `true` with and without it; and the breach guard's fingerprint on a large
# repository against `git status` (benches/engine.rs, MASSGEN_BENCH_ONLY=guard).
#
#   scripts/bench-sandbox.sh [N]        (default N = 200; builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200}"
cargo build --release --quiet
bin="$PWD/target/release/git-massgen"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/w"
"$bin" sandbox-exec -- --probe
python3 - "$bin" "$dir/w" "$n" <<'PY'
import statistics, subprocess, sys, time
bin, wt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
true = subprocess.run(["sh", "-c", "command -v true"], capture_output=True, text=True).stdout.strip()
rules = ["sandbox-exec", "--write", wt, "--write", "/dev/null", "--write", "/tmp", "--"]
cases = {
    "true": [true],
    "trampoline + true": [bin, *rules, true],
    "trampoline + true, 443 only": [bin, "sandbox-exec", "--write", wt, "--connect", "443", "--", true],
}
times = {k: [] for k in cases}
for _ in range(n):
    for name, argv in cases.items():  # interleaved: the machine's noise falls on all alike
        t = time.perf_counter()
        subprocess.run(argv, check=True)
        times[name].append((time.perf_counter() - t) * 1000)
base = statistics.median(times["true"])
print(f"{'case':32} {'median ms':>10} {'p90 ms':>8} {'added ms':>9}")
for name, ts in times.items():
    ts.sort()
    med = statistics.median(ts)
    print(f"{name:32} {med:10.2f} {ts[int(len(ts) * 0.9)]:8.2f} {med - base:9.2f}")
PY
