#!/usr/bin/env bash
# Task plans at scale: a seeded random graph of TASKS tasks (default 100) of a command agent
# that sleeps 0.1–1 s and writes its own file, run with `plan run --jobs JOBS` (default 8),
# against the critical-path bound (the larger of the longest path's sleeps and the total
# sleep / JOBS). Then the per-task overhead: a chain of 20 tasks that sleep 0, run one at a
# time, against the same 20 steps done by hand with git (worktree add, the agent, commit,
# merge onto an integration branch, worktree remove), in the same run.
#
#   scripts/bench-plan.sh [TASKS] [JOBS] [SEED]      (builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
tasks="${1:-100}"
jobs="${2:-8}"
seed="${3:-42}"
cargo build --release --quiet
bin="$PWD/target/release/git-massgen"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
python3 - "$bin" "$dir" "$tasks" "$jobs" "$seed" <<'PY'
import os, random, subprocess, sys, time
bin, root, n, jobs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b",
           GIT_COMMITTER_EMAIL="b@x", HOME=os.path.join(root, "home"),
           XDG_CACHE_HOME=os.path.join(root, "cache"), XDG_STATE_HOME=os.path.join(root, "state"))
os.makedirs(env["HOME"])
agent = os.path.join(root, "agent.sh")
with open(agent, "w") as f:
    # MASSGEN_TASK is "sleep S make X".
    f.write('set -e\nset -- $MASSGEN_TASK\nsleep "$2"\necho "$4" > "$4.txt"\n')

def git(cwd, *args):
    return subprocess.run(["git", "-C", cwd, *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()

def repo(name):
    path = os.path.join(root, name)
    os.makedirs(path)
    git(path, "init", "-q", "--initial-branch=main")
    with open(os.path.join(path, "README"), "w") as f:
        f.write("bench\n")
    os.makedirs(os.path.join(path, ".massgen"))
    with open(os.path.join(path, ".massgen/config.toml"), "w") as f:
        f.write(f'[[agents]]\nname = "w"\ncommand = ["sh", "{agent}"]\n')
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")
    return path

def write_plan(path, name, specs):
    with open(os.path.join(path, "plan.toml"), "w") as f:
        f.write(f'name = "{name}"\n')
        for tid, sleep, deps in specs:
            dep = ", ".join(f'"{d}"' for d in deps)
            f.write(f'[[tasks]]\nid = "{tid}"\ntask = "sleep {sleep:.2f} make {tid}"\n'
                    f'depends_on = [{dep}]\n')

def plan_run(path):
    t = time.perf_counter()
    p = subprocess.run([bin, "plan", "run", "plan.toml", "--jobs", str(jobs_now)], cwd=path,
                       env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"plan run failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return wall

# 1. The random graph: each task depends on up to 2 earlier ones, sleeps 0.1–1 s.
rng = random.Random(seed)
specs = []
for i in range(n):
    deps = sorted({f"t{rng.randrange(i)}" for _ in range(rng.choice([0, 1, 1, 2]))}) if i else []
    specs.append((f"t{i}", round(rng.uniform(0.1, 1.0), 2), deps))
finish = {}
for tid, sleep, deps in specs:
    finish[tid] = sleep + max((finish[d] for d in deps), default=0.0)
longest = max(finish.values())
total = sum(s for _, s, _ in specs)
bound = max(longest, total / jobs)
big = repo("graph")
write_plan(big, "graph", specs)
jobs_now = jobs
wall = plan_run(big)

# 2. Per-task overhead: a chain of 20 tasks that sleep 0, one at a time.
chain = [(f"c{i}", 0.0, [f"c{i-1}"] if i else []) for i in range(20)]
small = repo("chain")
write_plan(small, "chain", chain)
jobs_now = 1
chain_wall = plan_run(small)

# The same 20 steps by hand with git.
hand = repo("hand")
git(hand, "branch", "integration")
t = time.perf_counter()
for tid, _, _ in chain:
    wt = os.path.join(root, "wt-" + tid)
    git(hand, "worktree", "add", "-q", "-b", "task-" + tid, wt, "integration")
    subprocess.run(["sh", agent], cwd=wt, env=dict(env, MASSGEN_TASK=f"sleep 0 make {tid}"), check=True)
    git(wt, "add", "-A")
    git(wt, "commit", "-qm", tid)
    git(wt, "checkout", "-q", "--detach", "integration")
    git(wt, "merge", "-q", "--no-ff", "-m", "merge " + tid, "task-" + tid)
    git(hand, "update-ref", "refs/heads/integration", git(wt, "rev-parse", "HEAD"))
    git(hand, "worktree", "remove", "--force", wt)
hand_wall = time.perf_counter() - t

per_task = chain_wall / len(chain)
per_hand = hand_wall / len(chain)
path_len = max(len(s[2]) for s in specs)
print(f"random graph: {n} tasks, --jobs {jobs}, seed {seed}")
print(f"  longest path of sleeps   {longest:8.2f} s")
print(f"  total sleep / jobs       {total / jobs:8.2f} s")
print(f"  bound (the larger)       {bound:8.2f} s")
print(f"  plan run wall            {wall:8.2f} s   = {wall / bound:.2f}x the bound")
print(f"per-task overhead (chain of {len(chain)}, sleep 0, --jobs 1)")
print(f"  git-massgen plan run     {per_task * 1000:8.0f} ms per task ({chain_wall:.2f} s)")
print(f"  by hand with git         {per_hand * 1000:8.0f} ms per task ({hand_wall:.2f} s)")
print(f"  bound + overhead x {n}/{jobs} tasks per job: {bound + per_task * n / jobs:.2f} s"
      f" -> wall is {wall / (bound + per_task * n / jobs):.2f}x that")
PY
