#!/bin/sh
# Does picking learn? The seeded simulation of `run --pick 2` (src/learn/simulate.rs): five
# agents with hidden chances of success per kind of task and costs, three kinds, 200 tasks,
# 20 seeds; Thompson sampling (the real `learn::pick::pick` on the real counters, preferring
# wins and preferring cheap) against picking at random and an oracle that knows the
# chances. Prints the win rates (tasks 26–50, 51–200, 151–200), dollars per task and the
# cumulative expected regret every 25 tasks, as Markdown (BENCHMARKS.md, "Does it learn?").
#
#   scripts/bench-learn.sh
#
# It is the unit test `thompson_picking_learns_which_agents_win` (which also asserts that
# Thompson beats random and reaches 85% of the oracle over tasks 151–200), with its output
# shown; it takes well under a second once built.
set -eu
cd "$(dirname "$0")/.."
cargo test --lib learn::simulate::tests::thompson_picking_learns_which_agents_win \
  -- --exact --nocapture --test-threads=1 2>/dev/null |
  awk '/^[0-9]+ seeds, /{on=1} on && /^(ok|test result)/{exit} on'
