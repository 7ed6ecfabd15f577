#!/bin/sh
# What judges and refinement rounds cost on top of a plain run, next to git doing the same
# worktree work by hand, all in one repository and one session.
#
#   scripts/bench-consensus.sh [REPS]
#
# Three command agents each write one file. Measured (median of REPS, default 7):
#   git        git worktree add -b, write, git add + commit, git diff base, worktree remove (x3)
#   run        git massgen run with the three agents
#   judges     the same with three command judges asked every time ([judging] when = "always")
#   rounds     the same with --rounds 2: every agent sees its peers and votes in round 2
#   continue   git massgen run --continue on the run, every agent writing one more file
set -eu
cd "$(dirname "$0")/.."
reps=${1:-7}
cargo build --release -q
bin=$PWD/target/release/git-massgen
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp/home XDG_CACHE_HOME=$tmp/cache GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
git config --global user.name bench
git config --global user.email bench@example.com
repo=$tmp/repo
mkdir -p "$repo/src"
cd "$repo"
git init -q -b main
i=0
while [ $i -lt 2000 ]; do
  printf 'line %s\n' $i > "src/f$i.txt"
  i=$((i + 1))
done
cat > "$tmp/judge.sh" <<'J'
label=$(awk '/"label":/ { l = $0; sub(/.*"label": "/, "", l); sub(/".*/, "", l); print l; exit }' "$MASSGEN_CANDIDATES")
printf '{"vote": "%s", "reason": "first"}\n' "$label"
J
cat > "$tmp/agent.sh" <<'A'
if [ "${MASSGEN_ROUND:-1}" != 1 ]; then
  own=$(awk '/^  "yours": "/ { l = $0; sub(/.*"yours": "/, "", l); sub(/".*/, "", l); print l }' "$MASSGEN_PEERS")
  printf '{"vote": "%s", "reason": "mine"}\n' "$own" > "$MASSGEN_VOTE"
  exit 0
fi
echo "$MASSGEN_AGENT turn ${MASSGEN_TURN:-1}" >> "out-$MASSGEN_AGENT.txt"
A
mkdir -p .massgen
write_config() {
  {
    for a in a1 a2 a3; do
      printf '[[agents]]\nname = "%s"\ncommand = ["sh", "%s"]\n' "$a" "$tmp/agent.sh"
    done
    if [ "$1" = judges ]; then
      printf '[judging]\nwhen = "always"\n'
      for j in j1 j2 j3; do
        printf '[[judges]]\nname = "%s"\ncommand = ["sh", "%s"]\n' "$j" "$tmp/judge.sh"
      done
    fi
  } > .massgen/config.toml
}
write_config plain
printf '/runs/\n' > .massgen/.gitignore
git add -A && git commit -qm base

now() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ms() { echo $((($2 - $1) / 1000000)); }

git_by_hand() {
  for a in a1 a2 a3; do
    git worktree add -q -b "bench/$a" "$tmp/wt-$a" HEAD
    echo "$a" > "$tmp/wt-$a/out-$a.txt"
    git -C "$tmp/wt-$a" add -A
    git -C "$tmp/wt-$a" commit -qm "$a"
    git diff HEAD "bench/$a" > /dev/null
  done
  for a in a1 a2 a3; do
    git worktree remove --force "$tmp/wt-$a"
    git branch -qD "bench/$a"
  done
}

: > "$tmp/git" ; : > "$tmp/run" ; : > "$tmp/judges" ; : > "$tmp/rounds" ; : > "$tmp/continue"
r=0
while [ $r -lt "$reps" ]; do
  t0=$(now); git_by_hand; t1=$(now); ms "$t0" "$t1" >> "$tmp/git"
  write_config plain
  t0=$(now); "$bin" run -q --json "bench" > "$tmp/last.json"; t1=$(now)
  ms "$t0" "$t1" >> "$tmp/run"
  id=$(sed -n 's/^  "run": "\(.*\)",$/\1/p' "$tmp/last.json")
  t0=$(now); "$bin" run -q --json --continue "$id" "more" > /dev/null; t1=$(now)
  ms "$t0" "$t1" >> "$tmp/continue"
  write_config judges
  t0=$(now); "$bin" run -q --json "bench" > /dev/null; t1=$(now)
  ms "$t0" "$t1" >> "$tmp/judges"
  write_config plain
  t0=$(now); "$bin" run -q --json --rounds 2 "bench" > /dev/null; t1=$(now)
  ms "$t0" "$t1" >> "$tmp/rounds"
  "$bin" clean -q --all --force > /dev/null 2>&1 || true
  r=$((r + 1))
done
printf '| 3 agents, 2000-file repository | median ms (%s runs) |\n|---|---|\n' "$reps"
for k in git run judges rounds continue; do
  printf '| %s | %s |\n' "$k" "$(median < "$tmp/$k")"
done
