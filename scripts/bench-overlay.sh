#!/usr/bin/env bash
# Copy-on-write worktrees against checkouts, end to end: `git massgen run` with 8 command
# agents that `sleep 2` and change one file each, on a generated repository of FILES files
# (default 100000), with `--worktree-mode checkout` and `--worktree-mode overlay` (the
# first overlay run makes the shared lower checkout; the second reuses it), in the same
# session; then `git worktree add` of 8 checkouts by hand for comparison.
#
#   scripts/bench-overlay.sh [FILES] [REPS]     (builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
files="${1:-100000}"
reps="${2:-2}"
cargo build --release --quiet
bin="$PWD/target/release/git-massgen"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
export HOME="$dir/home" XDG_CACHE_HOME="$dir/cache" XDG_STATE_HOME="$dir/state"
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@x GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@x
mkdir -p "$HOME"
repo="$dir/repo"
mkdir -p "$repo"
cd "$repo"
git init -q -b main
python3 - "$files" <<'PY'
import os, sys
n = int(sys.argv[1])
for i in range(n):
    d = f"src/d{i // 1000:03}/e{(i // 50) % 20:02}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i}.txt", "w") as f:
        f.write(f"line {i}\n" * 4)
PY
git add -A >/dev/null
git commit -qm "generated: $files files"
agents=()
for i in 1 2 3 4 5 6 7 8; do
    agents+=(--agent-cmd "a$i=sh -c 'sleep 2; echo change-$i >> src/d000/e00/f0.txt'")
done
run() { # MODE: wall seconds of one run
    local t0 t1
    t0=$(date +%s.%N)
    "$bin" run --sandbox off --worktree-mode "$1" "${agents[@]}" -- "bench" >/dev/null 2>"$dir/err" \
        || { [ $? -eq 1 ] || { cat "$dir/err" >&2; exit 1; }; }
    t1=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.2f}')"
}
echo "repository: $files files; 8 agents that sleep 2 s and change one file"
echo "overlay probe: $("$bin" sandbox-exec --overlay-probe 2>&1 || true)"
# Overlay runs first: a checkout run leaves 8 worktrees of FILES files to purge in the
# background, which would slow whatever runs next.
echo "first overlay run (makes the shared lower checkout): $(run overlay) s"
for r in $(seq "$reps"); do
    echo "overlay run $((r + 1)) (lower reused): $(run overlay) s"
done
for r in $(seq "$reps"); do
    echo "checkout run $r: $(run checkout) s"
    sleep 20 # let the purge of the last run's worktrees finish
done
t0=$(date +%s.%N)
for i in 1 2 3 4 5 6 7 8; do git worktree add -q --detach "$dir/hand$i" >/dev/null 2>&1; done
t1=$(date +%s.%N)
echo "by hand: git worktree add x8: $(python3 -c "print(f'{$t1 - $t0:.2f}')") s"
