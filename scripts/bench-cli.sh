#!/usr/bin/env bash
# What git-massgen adds to a CLI agent's run: Claude Code alone in a checkout, against
# `git massgen run` with one Claude Code agent (worktree, prompt, event parsing, snapshot,
# ranking, worktree removal), both against the loopback LLM server of the tests.
#
#   scripts/bench-cli.sh            # REPS=8 by default; needs scripts/install-clis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${REPS:-8}"
cli_bin="${MASSGEN_CLI_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/git-massgen/clis/bin}"
claude="$cli_bin/claude"
[ -x "$claude" ] || { echo "bench-cli: $claude not found; run scripts/install-clis.sh" >&2; exit 1; }

cargo build --release --quiet
exe="$PWD/target/release/git-massgen"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
MASSGEN_SERVE=write MASSGEN_SERVE_URL_FILE="$work/url" SERVE_SECS=3600 \
    cargo test --quiet --test it serve_llm -- --ignored >/dev/null 2>&1 &
server=$!
for _ in $(seq 1 600); do [ -s "$work/url" ] && break; sleep 0.1; done
url="$(cat "$work/url")"

repo="$work/repo"
git init -q "$repo"
git -C "$repo" -c user.name=b -c user.email=b@b commit -q --allow-empty -m init
mkdir -p "$repo/.massgen"
cat > "$repo/.massgen/config.toml" <<TOML
[[agents]]
name = "claude"
kind = "claude"
bin = "$claude"
model = "test-model"
base_url = "$url"
api_key_env = "BENCH_KEY"
TOML
printf '/runs/\n' > "$repo/.massgen/.gitignore"
git -C "$repo" add .massgen
git -C "$repo" -c user.name=b -c user.email=b@b commit -q -m config
plain="$work/plain"
git clone -q "$repo" "$plain"

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
direct=(); massgen=()
for _ in $(seq 1 "$reps"); do
    direct+=("$(cd "$plain" && ms env CLAUDE_CONFIG_DIR="$work/home" IS_SANDBOX=1 \
        ANTHROPIC_BASE_URL="$url" ANTHROPIC_API_KEY=k "$claude" -p "create hello.txt" \
        --output-format stream-json --verbose --dangerously-skip-permissions --model test-model)")
    git -C "$plain" clean -qfd
    massgen+=("$(cd "$repo" && ms env BENCH_KEY=k "$exe" -q run "create hello.txt")")
done 2>/dev/null
python3 - "${direct[*]}" "${massgen[*]}" <<'PY'
import statistics, sys
d = [int(x) for x in sys.argv[1].split()]
m = [int(x) for x in sys.argv[2].split()]
print(f"claude alone:               median {statistics.median(d):.0f} ms  ({' '.join(map(str, d))})")
print(f"git massgen run, 1 claude:  median {statistics.median(m):.0f} ms  ({' '.join(map(str, m))})")
print(f"overhead:                   {statistics.median(m) - statistics.median(d):+.0f} ms")
PY
