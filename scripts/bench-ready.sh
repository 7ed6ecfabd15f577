#!/bin/bash
# Time to the first test result, and disk, when 4 agents' worktrees need a project's
# dependencies: `git massgen run` with `[worktree] setup`, `clone` and a shared
# CARGO_TARGET_DIR, against the same done by hand with `git worktree add`.
#
#   scripts/bench-ready.sh [REPORT.md]
#
# Needs root (loop mounts), mkfs.ext4, mkfs.xfs, node + npm and the npm registry (once, to
# fill a private npm cache), cargo and crates.io (once, `cargo fetch`). Two file systems
# are made on sparse images in BENCH_TMPDIR and loop-mounted: a journaled ext4 (the
# ordinary file system: copies are copies) and an XFS with reflink (copies share data).
# Both are unmounted and removed on exit, also on failure.
#
# Cases (4 agents `sh -c 'echo aN >> notes.txt'`, `--test "npm test"` / `"cargo test -q"`,
# `--json --keep --events FILE`; the worktree root inside the repository, on its file system):
#   node  ours-setup     ext4, [worktree] setup = ["npm ci --prefer-offline"]
#         ours-clone     ext4, [worktree] clone = ["node_modules"] (a copy)
#         ours-clone-j2  the same with --jobs 2 (2 agents, and 2 test runs, at once)
#         ours-cow       XFS,  [worktree] clone = ["node_modules"] (copy-on-write)
#         ours-cow-only  the same with --test true: the disk the clones alone take
#         hand-ci        ext4, git worktree add x4, npm ci --prefer-offline in each, one
#                        after another, then npm test in the first (then in the others)
#         hand-ci-par    the same with the 4 npm ci at once (& and wait)
#         hand-cp        ext4, git worktree add x4, cp -r node_modules into each, npm test
#         hand-cp-cow    XFS, the same (GNU cp >= 9 clones where the file system can)
#   cargo ours-plain     ext4, every worktree builds from scratch
#         ours-shared    ext4, [worktree] env CARGO_TARGET_DIR = "{worktree_root}/cargo-target",
#                        emptied first (the worktree root's, kept from run to run)
#         ours-shared-warm  the next run, the shared target kept
#         ours-clone     ext4, clone = ["target"] after `cargo build --tests` in the work tree
#         ours-cow       XFS, the same, copy-on-write
#         ours-cow-only  the same with --test true
#         hand           ext4, git worktree add x4, cargo test -q in each, one after another
# Ours and by hand take turns at going first (Node). npm runs with audit and fund off.
#
# Measured per case (median of the repetitions), from the start of the command: ready
# (ours: the last `agent_started` event, every worktree made and set up; by hand: the 4
# worktrees made and their dependencies in place), first test result (ours: the first
# `tests_finished` event; by hand: the end of the first `npm test` / `cargo test`), all 4
# tested, wall time, and the disk the case added (`df` used bytes, after `sync`).
#
# Environment (all optional):
#   BENCH_ONLY        node | cargo (default: both)
#   BENCH_REPS        repetitions of the Node cases (default 3)
#   BENCH_CARGO_REPS  repetitions of the Cargo cases (default 1)
#   BENCH_TMPDIR      where the images go (default /var/tmp)
#   BENCH_IMG_SIZE    size of each sparse image (default 12G)
#   BENCH_BIN         the binary (default target/release/git-massgen, built when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
report=${1:-target/bench-ready.md}
commit=$(git rev-parse --short HEAD)
only=${BENCH_ONLY:-node,cargo}
reps=${BENCH_REPS:-3}
cargo_reps=${BENCH_CARGO_REPS:-1}
img_size=${BENCH_IMG_SIZE:-12G}
bin=${BENCH_BIN:-$PWD/target/release/git-massgen}
[ -x "$bin" ] || cargo build --release -q
bin=$(realpath "$bin")
mkdir -p "$(dirname "$report")"
report=$(realpath "$report")
[ "$(id -u)" = 0 ] || { echo "bench-ready: needs root for the loop mounts" >&2; exit 2; }

tmp=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/bench-ready.XXXXXX")
ext4=$tmp/ext4
xfs=$tmp/xfs
cleanup() {
  set +e
  cd /
  # Give background purges of discarded worktrees a moment, then unmount (lazily if busy).
  for m in "$ext4" "$xfs"; do
    if mountpoint -q "$m"; then
      umount "$m" 2> /dev/null || { sleep 2; umount "$m" 2> /dev/null; } || umount -l "$m"
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Tools keep their own homes; git and npm get sealed ones.
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
export HOME=$tmp/home XDG_CACHE_HOME=$tmp/cache GIT_CONFIG_NOSYSTEM=1
export npm_config_cache=$tmp/npm-cache npm_config_audit=false npm_config_fund=false \
  npm_config_update_notifier=false CI=1
export CARGO_BUILD_JOBS=2 CARGO_TERM_PROGRESS_WHEN=never
unset CARGO_TARGET_DIR GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
mkdir -p "$HOME"
git config --global user.name bench
git config --global user.email bench@example.com
git config --global init.defaultBranch main
git config --global advice.detachedHead false

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
machine="$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), $(git --version), node $(node --version 2> /dev/null), npm $(npm --version 2> /dev/null), $(cargo --version 2> /dev/null), mkfs.xfs $(mkfs.xfs -V 2> /dev/null | awk '{ print $NF }'), $(cp --version | head -1)"

mkdir -p "$ext4" "$xfs"
truncate -s "$img_size" "$tmp/ext4.img" "$tmp/xfs.img"
mkfs.ext4 -q -F "$tmp/ext4.img"
mkfs.xfs -q -m reflink=1 "$tmp/xfs.img"
mount -o loop "$tmp/ext4.img" "$ext4"
mount -o loop "$tmp/xfs.img" "$xfs"

log() { printf '%s\n' "$*" >&2; }
now() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print int((a[int((NR + 1) / 2)] + a[int(NR / 2) + 1]) / 2) }'; }
used() { sync; df -B1 --output=used "$1" | tail -1 | tr -d ' '; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# Results: one line per repetition in $tmp/res/<suite>.<case>:
# ready_ms first_ms all_ms wall_ms disk_bytes.
mkdir -p "$tmp/res"
record() {
  echo "$2 $3 $4 $5 $6" >> "$tmp/res/$1"
  log "$1: ready $2 ms, first test result $3 ms, all tested $4 ms, wall $5 ms, disk +$(mib "$6") MiB"
}
note() { [ -z "$2" ] || echo "$2" > "$tmp/res/$1.note"; }

# A repository at $1 holding the files of $2 (a directory), committed; $3: what to ignore.
make_repo() {
  mkdir -p "$1"
  cp -r "$2/." "$1/"
  (
    cd "$1"
    git init -q
    printf '%s\n' "$3" > .gitignore
    mkdir -p .massgen
    printf '/runs/\n/worktrees/\n/config.toml\n' > .massgen/.gitignore
    git add -A
    git commit -qm base
  )
}

# Writes the run configuration of the repository $1: the worktree root inside it (on the
# same file system), then the [worktree] lines given.
configure() {
  local repo=$1
  shift
  {
    printf '[run]\nworktree_root = ".massgen/worktrees"\n\n[worktree]\n'
    printf '%s\n' "$@"
  } > "$repo/.massgen/config.toml"
}

# Removes what a case left: runs, worktrees, branches; waits for background purges.
reset_repo() {
  (
    cd "$1"
    "$bin" clean -q --all --force > /dev/null 2>&1 || true
    for w in $(git worktree list --porcelain | sed -n 's/^worktree //p' | tail -n +2); do
      git worktree remove --force "$w" 2> /dev/null || rm -rf "$w"
    done
    git worktree prune
    for b in $(git for-each-ref --format='%(refname:short)' refs/heads/hand/ refs/heads/massgen/); do
      git branch -qD "$b"
    done
    rm -rf hand
    local i=0
    while [ -e .massgen/worktrees/.trash ] && [ -n "$(ls -A .massgen/worktrees/.trash 2> /dev/null)" ]; do
      i=$((i + 1))
      [ $i -lt 600 ] || { log "trash not purged after 60 s"; break; }
      sleep 0.1
    done
  )
}

# The millisecond clock of the events' "time" fields for the events of kind $2 in $1, sorted.
event_ms() {
  sed -n 's/^{"time":"\([^"]*\)".*"kind":"'"$2"'".*/\1/p' "$1" |
    while read -r t; do date -d "$t" +%s%3N; done | sort -n
}

# One `git massgen run` with 4 agents in the repository $1 on the file system $4, tests $2;
# records $3. More options for `run` after those.
ours() {
  local repo=$1 test=$2 key=$3 fs=$4 ev=$tmp/events.jsonl out=$tmp/run.json
  shift 4
  reset_repo "$repo"
  local before t0 t1 after
  before=$(used "$fs")
  rm -f "$ev"
  cd "$repo"
  t0=$(now)
  "$bin" run --json --keep --events "$ev" --test "$test" "$@" \
    --agent-cmd "a1=sh -c 'echo a1 >> notes.txt'" --agent-cmd "a2=sh -c 'echo a2 >> notes.txt'" \
    --agent-cmd "a3=sh -c 'echo a3 >> notes.txt'" --agent-cmd "a4=sh -c 'echo a4 >> notes.txt'" \
    bench > "$out" 2> "$tmp/run.err" || { log "$key: run failed"; cat "$tmp/run.err" "$out" >&2; exit 1; }
  t1=$(now)
  after=$(used "$fs")
  [ "$(grep -c '"kind":"tests_finished".*exited with code 0' "$ev")" = 4 ] ||
    { log "$key: expected 4 passing test runs"; cat "$ev" >&2; exit 1; }
  local times ready
  times=$(event_ms "$ev" tests_finished)
  # Ready: every worktree made, its dependencies in place and its agent started.
  ready=$(event_ms "$ev" agent_started | tail -1)
  record "$key" $((ready - t0)) $(($(echo "$times" | head -1) - t0)) $(($(echo "$times" | tail -1) - t0)) \
    $((t1 - t0)) $((after - before))
  local run
  run=$(sed -n 's/^  "run": "\(.*\)",$/\1/p' "$out")
  note "$key" "$(grep -h '^# brought in' .massgen/runs/"$run"/logs/a1.setup.log 2> /dev/null | head -1 | sed 's/^# //')"
  cd - > /dev/null
}

# By hand in the repository $1 on the file system $6: 4 worktrees, then $2 in each (a shell
# snippet, "$w" the worktree) one after another ($3 = seq) or at once ($3 = par); then the
# test $4 in the first, then in the others. Records $5.
by_hand() {
  local repo=$1 ready=$2 mode=$3 test=$4 key=$5 fs=$6
  reset_repo "$repo"
  local before t0 t_ready first all after
  before=$(used "$fs")
  cd "$repo"
  t0=$(now)
  for n in 1 2 3 4; do git worktree add -q -b "hand/a$n" "hand/a$n" HEAD; done
  if [ "$mode" = par ]; then
    for n in 1 2 3 4; do (w=hand/a$n && eval "$ready") & done
    wait
  else
    for n in 1 2 3 4; do w=hand/a$n && eval "$ready"; done
  fi
  t_ready=$(now)
  (cd hand/a1 && sh -c "$test" > "$tmp/test.log" 2>&1) || { log "$key: test failed"; cat "$tmp/test.log" >&2; exit 1; }
  first=$(now)
  for n in 2 3 4; do
    (cd "hand/a$n" && sh -c "$test" > "$tmp/test.log" 2>&1) || { log "$key: test failed"; cat "$tmp/test.log" >&2; exit 1; }
  done
  all=$(now)
  after=$(used "$fs")
  record "$key" $((t_ready - t0)) $((first - t0)) $((all - t0)) $((all - t0)) $((after - before))
  cd - > /dev/null
}

# Cargo by hand: 4 worktrees, then `cargo test -q` in each, one after another (the first
# result comes after the first build).
cargo_by_hand() {
  local repo=$1 key=$2 fs=$3
  reset_repo "$repo"
  local before t0 t_ready first="" all after
  before=$(used "$fs")
  cd "$repo"
  t0=$(now)
  for n in 1 2 3 4; do git worktree add -q -b "hand/a$n" "hand/a$n" HEAD; done
  t_ready=$(now)
  for n in 1 2 3 4; do
    (cd "hand/a$n" && cargo test -q > "$tmp/test.log" 2>&1) || { log "$key: test failed"; cat "$tmp/test.log" >&2; exit 1; }
    [ -n "$first" ] || first=$(now)
  done
  all=$(now)
  after=$(used "$fs")
  record "$key" $((t_ready - t0)) $((first - t0)) $((all - t0)) $((all - t0)) $((after - before))
  cd - > /dev/null
}

kib() { du -sk "$1" | cut -f1; }

# ---------------------------------------------------------------------------------------
node_ours() {
  configure "$ext4/node" 'setup = ["npm ci --prefer-offline"]'
  ours "$ext4/node" "npm test" node.ours-setup "$ext4"
  configure "$ext4/node" 'clone = ["node_modules"]'
  ours "$ext4/node" "npm test" node.ours-clone "$ext4"
  ours "$ext4/node" "npm test" node.ours-clone-j2 "$ext4" --jobs 2
  configure "$xfs/node" 'clone = ["node_modules"]'
  ours "$xfs/node" "npm test" node.ours-cow "$xfs"
  # What the clones alone take: the tests write nothing here, but cargo's do.
  ours "$xfs/node" true node.ours-cow-only "$xfs"
}

node_hand() {
  local ci='(cd "$w" && npm ci --prefer-offline --silent > /dev/null)'
  by_hand "$ext4/node" "$ci" seq "npm test" node.hand-ci "$ext4"
  by_hand "$ext4/node" "$ci" par "npm test" node.hand-ci-par "$ext4"
  by_hand "$ext4/node" 'cp -r node_modules "$w/"' seq "npm test" node.hand-cp "$ext4"
  by_hand "$xfs/node" 'cp -r node_modules "$w/"' seq "npm test" node.hand-cp-cow "$xfs"
}

node_suite() {
  local proj=$tmp/node-project
  mkdir -p "$proj/test"
  cat > "$proj/package.json" << 'EOF'
{
  "name": "bench-ready-node",
  "version": "1.0.0",
  "private": true,
  "scripts": { "test": "jest" },
  "devDependencies": { "jest": "^29.7.0" }
}
EOF
  echo "test('adds', () => { expect(1 + 1).toBe(2); });" > "$proj/test/sum.test.js"
  log "node: npm install (fills the npm cache, writes package-lock.json)"
  (cd "$proj" && npm install --silent > /dev/null && rm -rf node_modules)
  make_repo "$ext4/node" "$proj" "node_modules/"
  make_repo "$xfs/node" "$proj" "node_modules/"
  (cd "$ext4/node" && npm ci --prefer-offline --silent > /dev/null)
  (cd "$xfs/node" && npm ci --prefer-offline --silent > /dev/null)
  local packages files
  packages=$(find "$ext4/node/node_modules" -name package.json -path '*/node_modules/*/package.json' \
    -not -path '*/node_modules/*/node_modules/*/*/package.json' | wc -l)
  files=$(find "$ext4/node/node_modules" -type f | wc -l)
  echo "node_modules: $(kib "$ext4/node/node_modules") KiB (du -sk, ext4), $(kib "$xfs/node/node_modules") KiB (XFS), $files files, $(ls "$ext4/node/node_modules" | wc -l) top-level entries, about $packages package.json" > "$tmp/res/node.deps"
  echo "$(kib "$ext4/node/node_modules")" > "$tmp/res/node.deps_kib_ext4"
  echo "$(kib "$xfs/node/node_modules")" > "$tmp/res/node.deps_kib_xfs"
  log "$(cat "$tmp/res/node.deps")"

  local r=0
  while [ $r -lt "$reps" ]; do
    log "node: repetition $((r + 1)) of $reps"
    # Ours and by hand take turns at going first.
    if [ $((r % 2)) = 0 ]; then node_ours; node_hand; else node_hand; node_ours; fi
    r=$((r + 1))
  done
  reset_repo "$ext4/node"
  reset_repo "$xfs/node"
}

# ---------------------------------------------------------------------------------------
cargo_suite() {
  local proj=$tmp/cargo-project
  mkdir -p "$proj/src"
  cat > "$proj/Cargo.toml" << 'EOF'
[package]
name = "bench-ready-cargo"
version = "0.1.0"
edition = "2021"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
regex = "1"
anyhow = "1"
thiserror = "1"
clap = { version = "4", features = ["derive"] }
rand = "0.8"
itertools = "0.13"
log = "0.4"
once_cell = "1"
bytes = "1"
smallvec = "1"
EOF
  cat > "$proj/src/lib.rs" << 'EOF'
//! A trivial crate with real dependencies, for scripts/bench-ready.sh.
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

pub fn parse(s: &str) -> anyhow::Result<Point> {
    Ok(serde_json::from_str(s)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let p = super::parse(r#"{"x":1,"y":2}"#).unwrap();
        assert_eq!(p, super::Point { x: 1, y: 2 });
        assert!(regex::Regex::new("^a+$").unwrap().is_match("aaa"));
    }
}
EOF
  log "cargo: generate-lockfile and fetch"
  (cd "$proj" && cargo generate-lockfile -q && cargo fetch -q)
  make_repo "$ext4/cargo" "$proj" "/target"
  make_repo "$xfs/cargo" "$proj" "/target"

  local r=0
  while [ $r -lt "$cargo_reps" ]; do
    log "cargo: repetition $((r + 1)) of $cargo_reps"
    rm -rf "$ext4/cargo/target" "$xfs/cargo/target"
    configure "$ext4/cargo"
    ours "$ext4/cargo" "cargo test -q" cargo.ours-plain "$ext4"
    configure "$ext4/cargo" 'env = { CARGO_TARGET_DIR = "{worktree_root}/cargo-target" }'
    # The shared target is under the repository's worktree root, kept from run to run:
    # the first run builds the dependencies, later runs find them built.
    rm -rf "$ext4/cargo/.massgen/worktrees/cargo-target"
    ours "$ext4/cargo" "cargo test -q" cargo.ours-shared "$ext4"
    ours "$ext4/cargo" "cargo test -q" cargo.ours-shared-warm "$ext4"
    rm -rf "$ext4/cargo/.massgen/worktrees/cargo-target"
    cargo_by_hand "$ext4/cargo" cargo.hand "$ext4"
    local t0
    t0=$(now)
    (cd "$ext4/cargo" && cargo build --tests -q)
    echo "$(($(now) - t0))" >> "$tmp/res/cargo.prebuild_ms"
    (cd "$xfs/cargo" && cargo build --tests -q)
    echo "$(kib "$ext4/cargo/target")" > "$tmp/res/cargo.deps_kib_ext4"
    echo "$(kib "$xfs/cargo/target")" > "$tmp/res/cargo.deps_kib_xfs"
    echo "target after \`cargo build --tests\` in the work tree (took $(secs "$(median < "$tmp/res/cargo.prebuild_ms")") s on ext4): $(kib "$ext4/cargo/target") KiB (du -sk, ext4), $(kib "$xfs/cargo/target") KiB (XFS), $(find "$ext4/cargo/target" -type f | wc -l) files" > "$tmp/res/cargo.deps"
    configure "$ext4/cargo" 'clone = ["target"]'
    ours "$ext4/cargo" "cargo test -q" cargo.ours-clone "$ext4"
    configure "$xfs/cargo" 'clone = ["target"]'
    ours "$xfs/cargo" "cargo test -q" cargo.ours-cow "$xfs"
    ours "$xfs/cargo" true cargo.ours-cow-only "$xfs"
    r=$((r + 1))
  done
  reset_repo "$ext4/cargo"
  reset_repo "$xfs/cargo"
}

# ---------------------------------------------------------------------------------------
case ",$only," in *,node,*) node_suite ;; esac
case ",$only," in *,cargo,*) cargo_suite ;; esac

# The table: medians; disk per agent against one copy of the dependency tree.
describe() {
  case $1 in
    node.ours-setup) echo 'ours, `setup = ["npm ci --prefer-offline"]`, ext4' ;;
    node.ours-clone) echo 'ours, `clone = ["node_modules"]`, ext4 (copy)' ;;
    node.ours-clone-j2) echo 'ours, the same with `--jobs 2` (2 agents and 2 test runs at once)' ;;
    node.ours-cow) echo 'ours, `clone = ["node_modules"]`, XFS (copy-on-write)' ;;
    node.ours-cow-only) echo 'ours, the same with `--test true`: what the 4 clones alone add to the disk' ;;
    node.hand-ci) echo 'by hand: `git worktree add` ×4, `npm ci --prefer-offline` in each one after another, `npm test`, ext4' ;;
    node.hand-ci-par) echo 'by hand: the same, the 4 `npm ci` at once (`&`, `wait`), ext4' ;;
    node.hand-cp) echo 'by hand: `git worktree add` ×4, `cp -r node_modules` into each, `npm test`, ext4' ;;
    node.hand-cp-cow) echo 'by hand: the same on XFS (GNU cp 9 clones)' ;;
    cargo.ours-plain) echo 'ours, plain worktrees (each builds from scratch), ext4' ;;
    cargo.ours-shared) echo 'ours, `env = { CARGO_TARGET_DIR = "{worktree_root}/cargo-target" }`, ext4, first run (the shared target empty)' ;;
    cargo.ours-shared-warm) echo 'ours, the same, the next run (the shared target kept from the first)' ;;
    cargo.ours-clone) echo 'ours, `clone = ["target"]` after `cargo build --tests`, ext4 (copy)' ;;
    cargo.ours-cow) echo 'ours, `clone = ["target"]` after `cargo build --tests`, XFS (copy-on-write)' ;;
    cargo.ours-cow-only) echo 'ours, the same with `--test true`: what the 4 clones alone add to the disk' ;;
    cargo.hand) echo 'by hand: `git worktree add` ×4, `cargo test -q` in each one after another, ext4' ;;
  esac
}
table() {
  local suite=$1 base=$2 deps_ext4 deps_xfs base_first c
  shift 2
  deps_ext4=$(cat "$tmp/res/$suite.deps_kib_ext4")
  deps_xfs=$(cat "$tmp/res/$suite.deps_kib_xfs")
  base_first=$(cut -d' ' -f2 < "$tmp/res/$suite.$base" | median)
  printf '%s\n\n' "$(cat "$tmp/res/$suite.deps")"
  printf '| case | ready, s | first test result, s | all 4 tested, s | wall, s | disk added, MiB | added per agent / one copy | first result / %s |\n' "$base"
  printf '|---|---|---|---|---|---|---|---|\n'
  for c in "$@"; do
    local f=$tmp/res/$suite.$c ready first all wall disk deps
    [ -s "$f" ] || continue
    ready=$(cut -d' ' -f1 < "$f" | median)
    first=$(cut -d' ' -f2 < "$f" | median)
    all=$(cut -d' ' -f3 < "$f" | median)
    wall=$(cut -d' ' -f4 < "$f" | median)
    disk=$(cut -d' ' -f5 < "$f" | median)
    case $c in *cow*) deps=$deps_xfs ;; *) deps=$deps_ext4 ;; esac
    printf '| %s%s | %s | %s | %s | %s | %s | %s | %s |\n' "$(describe "$suite.$c")" \
      "$([ -s "$f.note" ] && printf ' (%s)' "$(cat "$f.note")")" \
      "$(secs "$ready")" "$(secs "$first")" "$(secs "$all")" "$(secs "$wall")" "$(mib "$disk")" \
      "$(awk -v d="$disk" -v k="$deps" 'BEGIN { printf "%.1f%%", 100 * d / 4 / (k * 1024) }')" \
      "$(awk -v a="$first" -v b="$base_first" 'BEGIN { printf "%.2f", a / b }')"
  done
  printf '\nMedians of %s repetitions. First test result of each repetition, ms:\n\n' "$(wc -l < "$tmp/res/$suite.$base")"
  for c in "$@"; do
    [ -s "$tmp/res/$suite.$c" ] && printf -- '- %s: %s\n' "$c" "$(cut -d' ' -f2 < "$tmp/res/$suite.$c" | tr '\n' ' ')"
  done
  echo
}
{
  printf '## Results (%s, %s)\n\n' "$(date -u +%Y-%m-%d)" "$commit"
  printf 'Machine: %s. Load average (1, 5, 15 min) at the start: %s; at the end: %s.\n\n' \
    "$machine" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
  [ -s "$tmp/res/node.deps" ] && table node hand-ci ours-setup ours-clone ours-clone-j2 ours-cow ours-cow-only hand-ci hand-ci-par hand-cp hand-cp-cow
  [ -s "$tmp/res/cargo.deps" ] && table cargo hand ours-plain ours-shared ours-shared-warm ours-clone ours-cow ours-cow-only hand
  true
} | tee "$report"
log "tables written to $report"
