//! The dependency graph of a plan's tasks, as indices in plan order: its cycles, each named
//! the same way every time, and its waves.
//!
//! `deps[i]` lists the tasks task `i` depends on. Self-dependencies and unknown ids are the
//! caller's to report; they are not edges here.

/// One cycle per group of tasks that depend on each other in a circle (a strongly
/// connected component of more than one task): the shortest cycle through the group's
/// smallest id, preferring at each step the task that comes first in the plan. Each cycle
/// starts and ends with that task (`[a, b, c, a]`: `a` depends on `b`, `b` on `c`, `c` on
/// `a`). Cycles come in the plan order of their first task.
pub fn cycles(ids: &[&str], deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = components(deps)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|component| {
            let start = *component
                .iter()
                .min_by_key(|&&i| (ids[i], i))
                .expect("a component has members");
            shortest_cycle(start, &component, deps)
        })
        .collect();
    out.sort_by_key(|c| c[0]);
    out
}

/// The wave of each task (1: depends on nothing; k: one more than its latest dependency),
/// or `None` when the graph has a cycle.
pub fn waves(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = deps.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = vec![0; n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
            waiting[i] += 1;
        }
    }
    let mut wave = vec![1; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &j in &dependents[i] {
            wave[j] = wave[j].max(wave[i] + 1);
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(j);
            }
        }
    }
    (done == n).then_some(wave)
}

/// Strongly connected components (Tarjan's algorithm, iterative: a plan file may hold a
/// chain long enough to overflow the stack of a recursive one).
fn components(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = deps.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        // (task, how many of its dependencies have been followed)
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut followed)) = path.last_mut() {
            if let Some(&w) = deps[v].get(*followed) {
                *followed += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    path.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            path.pop();
            if let Some(&(parent, _)) = path.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(component);
            }
        }
    }
    out
}

/// The shortest way from `start` back to itself inside `component`, breadth first with
/// each task's dependencies taken in plan order (so ties go to tasks earlier in the plan).
fn shortest_cycle(start: usize, component: &[usize], deps: &[Vec<usize>]) -> Vec<usize> {
    let mut inside = vec![false; deps.len()];
    for &i in component {
        inside[i] = true;
    }
    // Where the search came from to reach each task.
    let mut from: Vec<Option<usize>> = vec![None; deps.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        let mut next: Vec<usize> = deps[v].iter().copied().filter(|&w| inside[w]).collect();
        next.sort_unstable();
        for w in next {
            if w == start {
                let mut back = vec![start, v];
                let mut at = v;
                while let Some(prev) = from[at] {
                    back.push(prev);
                    at = prev;
                }
                // Collected backwards: start, v, …, the first step, start.
                back.reverse();
                return back;
            }
            if from[w].is_none() {
                from[w] = Some(v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("every task of a strongly connected component lies on a cycle")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(ids: &[&str], cycle: &[usize]) -> String {
        cycle
            .iter()
            .map(|&i| ids[i])
            .collect::<Vec<_>>()
            .join(" → ")
    }

    #[test]
    fn a_diamond_has_three_waves() {
        // a; b, c after a; d after b and c
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        assert_eq!(waves(&deps), Some(vec![1, 2, 2, 3]));
        assert!(cycles(&["a", "b", "c", "d"], &deps).is_empty());
    }

    #[test]
    fn waves_follow_the_longest_chain() {
        // d after a and c; c after b; b after a
        let deps = vec![vec![], vec![0], vec![1], vec![0, 2]];
        assert_eq!(waves(&deps), Some(vec![1, 2, 3, 4]));
    }

    #[test]
    fn a_cycle_starts_at_its_smallest_id() {
        // plan order: c, a, b; a depends on b, b on c, c on a
        let ids = ["c", "a", "b"];
        let deps = vec![vec![1], vec![2], vec![0]];
        let found = cycles(&ids, &deps);
        assert_eq!(found.len(), 1);
        assert_eq!(named(&ids, &found[0]), "a → b → c → a");
        assert_eq!(waves(&deps), None);
    }

    #[test]
    fn a_cycle_is_the_shortest_through_its_start_with_ties_in_plan_order() {
        // a → y → a and a → x → a are both shortest; y comes first in the plan. The long
        // way round (a → z → w → a) is not taken, though z is first in a's depends_on.
        let ids = ["a", "y", "x", "z", "w"];
        let deps = vec![vec![3, 1, 2], vec![0], vec![0], vec![4], vec![0]];
        let found = cycles(&ids, &deps);
        assert_eq!(found.len(), 1, "one component");
        assert_eq!(named(&ids, &found[0]), "a → y → a");
    }

    #[test]
    fn separate_cycles_are_named_separately() {
        let ids = ["p", "q", "free", "r", "s"];
        let deps = vec![vec![1], vec![0], vec![], vec![4], vec![3]];
        let found: Vec<String> = cycles(&ids, &deps).iter().map(|c| named(&ids, c)).collect();
        assert_eq!(found, ["p → q → p", "r → s → r"]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let mut deps: Vec<Vec<usize>> = (0..n).map(|i| vec![i + 1]).collect();
        deps[n - 1] = vec![0];
        let ids: Vec<String> = (0..n).map(|i| format!("t{i:06}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let found = cycles(&ids, &deps);
        assert_eq!(found[0].len(), n + 1);
        assert_eq!(found[0][0], 0);
        assert_eq!(found[0][1], 1);
    }
}
