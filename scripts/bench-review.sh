#!/bin/sh
# What `git massgen review` and its pre-commit hook cost, next to git doing the same work by
# hand, in one repository and one session.
#
#   scripts/bench-review.sh [FILES] [REPS]
#
# A repository of FILES files (default 2000) with 3 files staged; three command reviewers
# that read the diff and find nothing. Measured (median of REPS, default 7):
#   git        git write-tree + commit-tree, git worktree add --detach, git diff, the three
#              reviewer scripts one after another, git worktree remove
#   cold       git massgen review --staged with the three reviewers, after `git massgen
#              clean` removed the kept review worktree (a first review checks it out)
#   review     the same again: the kept worktree is moved to the reviewed commit
#   commit     git commit (no hook), then reset
#   hooked     git commit with `git massgen hooks install`ed, then reset
set -eu
cd "$(dirname "$0")/.."
files=${1:-2000}
reps=${2:-7}
cargo build --release -q
bin=$PWD/target/release/git-massgen
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp/home XDG_CACHE_HOME=$tmp/cache GIT_CONFIG_NOSYSTEM=1
export PATH="$PWD/target/release:$PATH"
mkdir -p "$HOME"
git config --global user.name bench
git config --global user.email bench@example.com
repo=$tmp/repo
mkdir -p "$repo/src"
cd "$repo"
git init -q -b main
i=0
while [ $i -lt "$files" ]; do
  printf 'line %s\n' $i > "src/f$i.txt"
  i=$((i + 1))
done
cat > "$tmp/reviewer.sh" <<'R'
wc -l < "${MASSGEN_DIFF:-$1}" > /dev/null
echo '{"findings": []}'
R
mkdir -p .massgen
for rv in r1 r2 r3; do
  printf '[[reviewers]]\nname = "%s"\ncommand = ["sh", "%s"]\n' "$rv" "$tmp/reviewer.sh"
done > .massgen/config.toml
printf '/runs/\n/reviews/\n' > .massgen/.gitignore
git add -A && git commit -qm base
for n in 1 2 3; do echo "changed $n" >> "src/f$n.txt"; done
git add src

now() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ms() { echo $((($2 - $1) / 1000000)); }

git_by_hand() {
  tree=$(git write-tree)
  c=$(git commit-tree -p HEAD -m review "$tree")
  git worktree add -q --detach "$tmp/wt" "$c"
  git diff HEAD "$c" > "$tmp/diff.patch"
  for rv in r1 r2 r3; do (cd "$tmp/wt" && sh "$tmp/reviewer.sh" "$tmp/diff.patch" > /dev/null); done
  git worktree remove --force "$tmp/wt"
}

: > "$tmp/git"; : > "$tmp/cold"; : > "$tmp/review"; : > "$tmp/commit"; : > "$tmp/hooked"
r=0
while [ $r -lt "$reps" ]; do
  t0=$(now); git_by_hand; t1=$(now); ms "$t0" "$t1" >> "$tmp/git"
  "$bin" clean -q > /dev/null
  t0=$(now); "$bin" review -q --staged > /dev/null; t1=$(now); ms "$t0" "$t1" >> "$tmp/cold"
  t0=$(now); "$bin" review -q --staged > /dev/null; t1=$(now); ms "$t0" "$t1" >> "$tmp/review"
  t0=$(now); git commit -qm c; t1=$(now); ms "$t0" "$t1" >> "$tmp/commit"
  git reset -q --soft HEAD~1
  "$bin" hooks install -q > /dev/null
  t0=$(now); git commit -qm c 2>/dev/null; t1=$(now); ms "$t0" "$t1" >> "$tmp/hooked"
  git reset -q --soft HEAD~1
  "$bin" hooks uninstall -q > /dev/null
  r=$((r + 1))
done
printf '| 3 reviewers, %s-file repository, 3 files staged | median ms (%s runs) |\n|---|---|\n' "$files" "$reps"
for k in git cold review commit hooked; do
  printf '| %s | %s |\n' "$k" "$(median < "$tmp/$k")"
done
