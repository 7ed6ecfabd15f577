#!/usr/bin/env bash
# Slurm as an executor, measured on a real one-node cluster (scripts/slurm.sh, the node
# declaring 8 CPUs):
#   1. per-job latency through git-massgen's own path (`doctor --executor slurm`: sbatch,
#      scontrol polling, the output copied back): submission to start, and to completion
#      as git-massgen sees it, median of 20;
#   2. `run` with 8 agents `sleep 2` as Slurm jobs against the same run with local
#      processes, in the same session (median of 5 each).
#
#   scripts/bench-slurm.sh            (starts and stops its own cluster; needs Debian's
#                                      slurmctld slurmd slurm-client munge)
set -euo pipefail
cd "$(dirname "$0")/.."
slurm_sh="$PWD/scripts/slurm.sh"
cargo build --release --quiet
bin="$PWD/target/release/git-massgen"
work="$(mktemp -d)"
trap '"$slurm_sh" stop "$work/slurm" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
SLURM_CONF="$("$slurm_sh" start "$work/slurm" 8)"
export SLURM_CONF

repo="$work/repo"
git init -q "$repo"
cd "$repo"
echo a > f.txt
git add f.txt
git -c user.name=b -c user.email=b@b commit -qm init
mkdir -p .massgen
{
    echo '[run]'
    echo 'jobs = 8'
    for i in 1 2 3 4 5 6 7 8; do
        printf '[[agents]]\nname = "a%s"\nkind = "command"\ncommand = ["sh", "-c", "sleep 2; echo %s > f.txt"]\n' "$i" "$i"
    done
} > .massgen/config.toml

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

starts=(); totals=()
for _ in $(seq 20); do
    out="$("$bin" doctor --offline --executor slurm --json)"
    starts+=("$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["executor"]["probe"]["start_ms"])')")
    totals+=("$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["executor"]["probe"]["total_ms"])')")
done
echo "per job, median of 20: submission to start $(printf '%s\n' "${starts[@]}" | median) ms, to completion seen $(printf '%s\n' "${totals[@]}" | median) ms"

time_run() {
    local t0 t1
    t0=$(date +%s.%N)
    "$bin" run --executor "$1" --sandbox off "bench" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}
for kind in local slurm; do
    ts=()
    for _ in 1 2 3 4 5; do ts+=("$(time_run "$kind")"); done
    echo "run, 8 agents sleep 2, $kind: median $(printf '%s\n' "${ts[@]}" | median) s (${ts[*]})"
done
