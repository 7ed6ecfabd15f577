//! Reading a plan file: the TOML is parsed into a raw shape that keeps where every value was
//! written, then checked whole.
//!
//! A file that is not TOML, has an unknown key or a value of the wrong type stops at that
//! first problem (the TOML parser goes no further). A file that parses is checked
//! completely, and every problem is returned at once, in the order of the file, so that
//! one edit can fix them all.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{MAX_ROUNDS, MAX_TASKS, PlanFileError, Problem, Task, TaskPlan, graph};
use crate::config::{line_column, parse_duration, validate_agent_name};

/// The hint of a parse error: the keys are listed in one place.
const KEYS_HINT: &str = "see README.md, \"Task plans\", for every key";
/// What a task id or plan name may be (they become parts of branch names).
const NAME_RULE: &str = "use 1-64 letters, digits, `-`, `_` or `.`, not starting with `-` or `.`";
/// How many ids a hint lists before it stops.
const LISTED: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: Option<Spanned<String>>,
    integration_test: Option<Spanned<String>>,
    resolver: Option<Spanned<String>>,
    tasks: Option<Spanned<Vec<Spanned<RawTask>>>>,
}

/// Everything optional: a missing `id` or `task` is reported with the other problems, not
/// instead of them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    task: Option<Spanned<String>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    agents: Option<Spanned<Vec<Spanned<String>>>>,
    test: Option<Spanned<String>>,
    rounds: Option<Spanned<i64>>,
    timeout: Option<Spanned<String>>,
}

/// A problem at a byte offset of the file.
struct Found {
    at: usize,
    message: String,
    hint: Option<String>,
}

/// The problems found so far.
#[derive(Default)]
struct Findings(Vec<Found>);

impl Findings {
    fn add(&mut self, at: Range<usize>, message: String, hint: impl Into<Option<String>>) {
        self.0.push(Found {
            at: at.start,
            message,
            hint: hint.into(),
        });
    }
}

/// Parses and checks plan text. `path` names the file in messages; `stem` is the default
/// name; `agents` are the configured agents (`None`: unknown, not checked).
pub fn parse(
    text: &str,
    path: &Path,
    stem: &str,
    agents: Option<&[String]>,
) -> Result<TaskPlan, PlanFileError> {
    let raw: RawPlan = toml::from_str(text).map_err(|e| {
        let found = Found {
            at: e.span().map_or(0, |s| s.start),
            message: e.message().trim().to_owned(),
            hint: Some(KEYS_HINT.to_owned()),
        };
        invalid(path, text, vec![found])
    })?;
    let mut found = Findings::default();
    let name = plan_name(&raw, stem, &mut found);
    if let Some(test) = &raw.integration_test
        && test.get_ref().trim().is_empty()
    {
        found.add(
            test.span(),
            "`integration_test` is empty".to_owned(),
            "leave it out to use the configuration's [score] test".to_owned(),
        );
    }
    if let Some(resolver) = &raw.resolver {
        check_agent(resolver, "resolver", agents, &mut found);
    }
    let raw_tasks: &[Spanned<RawTask>] = raw.tasks.as_ref().map_or(&[], |t| t.get_ref());
    if raw_tasks.is_empty() {
        found.add(
            raw.tasks.as_ref().map_or(0..0, |t| t.span()),
            "the plan has no tasks".to_owned(),
            "add a [[tasks]] entry with an `id` and a `task`".to_owned(),
        );
    }
    if raw_tasks.len() > MAX_TASKS {
        found.add(
            raw_tasks[MAX_TASKS].span(),
            format!("plan has {} tasks; at most {MAX_TASKS}", raw_tasks.len()),
            "split it into several plans, or join small tasks".to_owned(),
        );
    }
    // Ids first: a task may depend on one defined after it.
    let mut index: HashMap<&str, (usize, Range<usize>)> = HashMap::new();
    for (i, raw_task) in raw_tasks.iter().enumerate() {
        let Some(id) = &raw_task.get_ref().id else {
            found.add(
                raw_task.span(),
                format!("task {} has no `id`", i + 1),
                format!("give each task an `id`: {NAME_RULE}"),
            );
            continue;
        };
        let text_id = id.get_ref().as_str();
        if validate_agent_name(text_id).is_err() {
            found.add(
                id.span(),
                format!("invalid task id `{text_id}`"),
                NAME_RULE.to_owned(),
            );
        }
        match index.get(text_id) {
            Some((_, first)) => {
                let (line, column) = line_column(text, first.start);
                found.add(
                    id.span(),
                    format!("task id `{text_id}` is used twice: here and at {line}:{column}"),
                    "task ids must be unique; rename one of them".to_owned(),
                );
            }
            None => {
                index.insert(text_id, (i, id.span()));
            }
        }
    }
    let mut ids: Vec<(&str, usize)> = index.iter().map(|(id, (i, _))| (*id, *i)).collect();
    ids.sort_unstable_by_key(|(_, i)| *i);
    let known = listed(&ids.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    let mut tasks = Vec::with_capacity(raw_tasks.len());
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(raw_tasks.len());
    // For naming a cycle where it starts: the span of each `depends_on` entry by edge.
    let mut edge_at: HashMap<(usize, usize), Range<usize>> = HashMap::new();
    for (i, raw_task) in raw_tasks.iter().enumerate() {
        let at = raw_task.span();
        let raw_task = raw_task.get_ref();
        let id = raw_task.id.as_ref().map_or("", |id| id.get_ref().as_str());
        let label = match &raw_task.id {
            Some(_) => format!("task `{id}`"),
            None => format!("task {}", i + 1),
        };
        let mut task_deps = Vec::new();
        for dep in &raw_task.depends_on {
            let d = dep.get_ref().as_str();
            if raw_task.id.is_some() && d == id {
                found.add(
                    dep.span(),
                    format!("{label} depends on itself"),
                    format!("remove `{d}` from its depends_on"),
                );
            } else if let Some((j, _)) = index.get(d) {
                if task_deps.contains(j) {
                    found.add(
                        dep.span(),
                        format!("{label} lists `{d}` twice in depends_on"),
                        "list each dependency once".to_owned(),
                    );
                } else {
                    task_deps.push(*j);
                    edge_at.insert((i, *j), dep.span());
                }
            } else {
                found.add(
                    dep.span(),
                    format!("{label} depends on unknown task `{d}`"),
                    format!("the plan's tasks are {known}"),
                );
            }
        }
        deps.push(task_deps);
        tasks.push(check_task(raw_task, at, &label, agents, &mut found));
    }
    let id_of: Vec<&str> = raw_tasks
        .iter()
        .map(|t| {
            t.get_ref()
                .id
                .as_ref()
                .map_or("", |id| id.get_ref().as_str())
        })
        .collect();
    for cycle in graph::cycles(&id_of, &deps) {
        let named: Vec<&str> = cycle.iter().map(|&i| id_of[i]).collect();
        found.add(
            edge_at[&(cycle[0], cycle[1])].clone(),
            format!("dependency cycle: {}", named.join(" → ")),
            "each task depends on the next, so none can start; remove one of these dependencies"
                .to_owned(),
        );
    }
    if !found.0.is_empty() {
        return Err(invalid(path, text, found.0));
    }
    let waves = graph::waves(&deps).expect("a plan without cycles has waves");
    let tasks = tasks
        .into_iter()
        .zip(waves)
        .map(|(task, wave)| Task { wave, ..task })
        .collect();
    Ok(TaskPlan {
        name,
        integration_test: raw.integration_test.map(Spanned::into_inner),
        resolver: raw.resolver.map(Spanned::into_inner),
        tasks,
    })
}

/// The plan's name: `name`, or the file's stem; either must be usable in a branch name.
fn plan_name(raw: &RawPlan, stem: &str, found: &mut Findings) -> String {
    match &raw.name {
        Some(name) => {
            if validate_agent_name(name.get_ref()).is_err() {
                found.add(
                    name.span(),
                    format!("invalid plan name `{}`", name.get_ref()),
                    NAME_RULE.to_owned(),
                );
            }
            name.get_ref().clone()
        }
        None => {
            if validate_agent_name(stem).is_err() {
                found.add(
                    0..0,
                    format!("the plan has no `name`, and its file name `{stem}` cannot be one"),
                    format!("add name = \"...\" at the top: {NAME_RULE}"),
                );
            }
            stem.to_owned()
        }
    }
}

/// Checks a task's own values (not its dependencies) and returns it, wave not yet known.
/// `at` is where the task's table was written.
fn check_task(
    raw: &RawTask,
    at: Range<usize>,
    label: &str,
    agents: Option<&[String]>,
    found: &mut Findings,
) -> Task {
    let text = raw.task.as_ref().map_or("", |t| t.get_ref().as_str());
    let what_hint = || "`task` is the text the agents are given".to_owned();
    match &raw.task {
        None => found.add(
            raw.id.as_ref().map_or(at, |id| id.span()),
            format!("{label} has no `task` text"),
            what_hint(),
        ),
        Some(t) if t.get_ref().trim().is_empty() => {
            found.add(t.span(), format!("{label}: `task` is empty"), what_hint());
        }
        Some(_) => {}
    }
    for (key, value, instead) in [
        ("title", &raw.title, "the first line of `task`"),
        ("test", &raw.test, "the configuration's [score] test"),
    ] {
        if let Some(v) = value
            && v.get_ref().trim().is_empty()
        {
            found.add(
                v.span(),
                format!("{label}: `{key}` is empty"),
                format!("leave it out to use {instead}"),
            );
        }
    }
    let mut names: Vec<String> = Vec::new();
    if let Some(list) = &raw.agents {
        if list.get_ref().is_empty() {
            found.add(
                list.span(),
                format!("{label}: `agents` is empty"),
                "leave it out to run every configured agent".to_owned(),
            );
        }
        for agent in list.get_ref() {
            if names.contains(agent.get_ref()) {
                found.add(
                    agent.span(),
                    format!("{label} lists agent `{}` twice", agent.get_ref()),
                    "list each agent once".to_owned(),
                );
                continue;
            }
            check_agent(agent, label, agents, found);
            names.push(agent.get_ref().clone());
        }
    }
    let rounds = raw.rounds.as_ref().and_then(|r| {
        let n = *r.get_ref();
        let fits = (1..=i64::from(MAX_ROUNDS)).contains(&n);
        if !fits {
            found.add(
                r.span(),
                format!("{label}: rounds = {n}; expected 1 to {MAX_ROUNDS}"),
                "rounds are refinement rounds, as with `run --rounds`".to_owned(),
            );
        }
        fits.then(|| u32::try_from(n).expect("1..=20 fits"))
    });
    let timeout = raw
        .timeout
        .as_ref()
        .and_then(|t| match parse_duration(t.get_ref()) {
            Ok(d) => Some(d),
            Err(why) => {
                found.add(t.span(), format!("{label}: {why}"), None);
                None
            }
        });
    let first_line = text.lines().map(str::trim).find(|l| !l.is_empty());
    Task {
        id: raw
            .id
            .as_ref()
            .map(|id| id.get_ref().clone())
            .unwrap_or_default(),
        title: raw
            .title
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_else(|| first_line.unwrap_or_default().to_owned()),
        task: text.to_owned(),
        depends_on: raw.depends_on.iter().map(|d| d.get_ref().clone()).collect(),
        agents: names,
        test: raw.test.as_ref().map(|t| t.get_ref().clone()),
        rounds,
        timeout,
        wave: 0,
    }
}

/// An agent named by `who` (a task or the resolver): a valid name, and a configured agent
/// when the configuration is known.
fn check_agent(
    agent: &Spanned<String>,
    who: &str,
    agents: Option<&[String]>,
    found: &mut Findings,
) {
    let name = agent.get_ref();
    if validate_agent_name(name).is_err() {
        found.add(
            agent.span(),
            format!("{who}: invalid agent name `{name}`"),
            NAME_RULE.to_owned(),
        );
        return;
    }
    let Some(configured) = agents else {
        return;
    };
    if !configured.contains(name) {
        let names: Vec<&str> = configured.iter().map(String::as_str).collect();
        found.add(
            agent.span(),
            format!("{who}: no agent named `{name}` in .massgen/config.toml"),
            if names.is_empty() {
                "no agents are configured; add [[agents]] to .massgen/config.toml".to_owned()
            } else {
                format!("configured agents: {}", names.join(", "))
            },
        );
    }
}

/// `a, b and c`; the first [`LISTED`] then how many more.
fn listed(ids: &[&str]) -> String {
    let quoted: Vec<String> = ids.iter().take(LISTED).map(|i| format!("`{i}`")).collect();
    match (ids.len(), quoted.split_last()) {
        (_, None) => "none".to_owned(),
        (n, Some((last, rest))) if n <= LISTED => {
            if rest.is_empty() {
                last.clone()
            } else {
                format!("{} and {last}", rest.join(", "))
            }
        }
        (n, _) => format!("{}, and {} more", quoted.join(", "), n - LISTED),
    }
}

/// The error for problems found in `text`, in the order of the file.
fn invalid(path: &Path, text: &str, mut found: Vec<Found>) -> PlanFileError {
    found.sort_by_key(|f| f.at);
    let problems = found
        .into_iter()
        .map(|f| {
            let (line, column) = line_column(text, f.at);
            Problem {
                path: path.to_owned(),
                line,
                column,
                message: f.message,
                hint: f.hint,
            }
        })
        .collect();
    PlanFileError::Invalid {
        path: path.to_owned(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(text: &str, agents: Option<&[String]>) -> Result<TaskPlan, Vec<String>> {
        parse(text, Path::new("p.toml"), "p", agents).map_err(|e| match e {
            PlanFileError::Invalid { problems, .. } => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => panic!("{other}"),
        })
    }

    fn problems(text: &str) -> Vec<String> {
        parse_with(text, None).expect_err("invalid")
    }

    const DIAMOND: &str = r#"
[[tasks]]
id = "a"
task = "Lay the ground\nin two lines"

[[tasks]]
id = "b"
task = "Build on a"
depends_on = ["a"]

[[tasks]]
id = "c"
title = "See"
task = "Also on a"
depends_on = ["a"]
agents = ["claude"]
rounds = 2
timeout = "20m"

[[tasks]]
id = "d"
task = "Join b and c"
depends_on = ["b", "c"]
"#;

    #[test]
    fn a_diamond_runs_in_three_waves() {
        let plan = parse_with(DIAMOND, None).unwrap();
        assert_eq!(plan.name, "p");
        let waves: Vec<Vec<&str>> = plan
            .waves()
            .iter()
            .map(|w| w.iter().map(|t| t.id.as_str()).collect())
            .collect();
        assert_eq!(waves, [vec!["a"], vec!["b", "c"], vec!["d"]]);
        let c = &plan.tasks[2];
        assert_eq!((c.title.as_str(), c.wave), ("See", 2));
        assert_eq!(c.rounds, Some(2));
        assert_eq!(c.timeout, Some(std::time::Duration::from_secs(1200)));
        assert_eq!(plan.tasks[0].title, "Lay the ground", "title: first line");
        assert_eq!(plan.tasks[3].depends_on, ["b", "c"]);
    }

    #[test]
    fn a_cycle_is_named_from_its_smallest_id_at_its_first_edge() {
        let text = "[[tasks]]\nid = \"c\"\ntask = \"x\"\ndepends_on = [\"a\"]\n\
                    [[tasks]]\nid = \"b\"\ntask = \"x\"\ndepends_on = [\"c\"]\n\
                    [[tasks]]\nid = \"a\"\ntask = \"x\"\ndepends_on = [\"b\"]\n";
        assert_eq!(
            problems(text),
            ["p.toml:12:15: dependency cycle: a → b → c → a"]
        );
    }

    #[test]
    fn more_than_100_tasks_is_reported_at_the_101st() {
        let text: String = (1..=101)
            .map(|i| format!("[[tasks]]\nid = \"t{i}\"\ntask = \"x\"\n"))
            .collect();
        // Task 101 starts on line 301.
        assert_eq!(
            problems(&text),
            ["p.toml:301:1: plan has 101 tasks; at most 100"]
        );
        let hundred: String = text.lines().take(300).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse_with(&hundred, None).unwrap().tasks.len(), 100);
    }

    #[test]
    fn a_duplicate_id_names_both_places() {
        let text = "[[tasks]]\nid = \"a\"\ntask = \"x\"\n[[tasks]]\n  id = \"a\"\ntask = \"y\"\n";
        assert_eq!(
            problems(text),
            ["p.toml:5:8: task id `a` is used twice: here and at 2:6"]
        );
    }

    #[test]
    fn unknown_and_self_dependencies() {
        let text = "[[tasks]]\nid = \"a\"\ntask = \"x\"\ndepends_on = [\"a\", \"zz\"]\n\
                    [[tasks]]\nid = \"b\"\ntask = \"x\"\ndepends_on = [\"x\", \"a\", \"a\"]\n";
        assert_eq!(
            problems(text),
            [
                "p.toml:4:15: task `a` depends on itself",
                "p.toml:4:20: task `a` depends on unknown task `zz`",
                "p.toml:8:15: task `b` depends on unknown task `x`",
                "p.toml:8:25: task `b` lists `a` twice in depends_on",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let text = r#"name = "bad name"
integration_test = " "
[[tasks]]
title = "no id"
task = "x"
[[tasks]]
id = "b"
task = ""
agents = []
rounds = 21
timeout = "soon"
test = ""
[[tasks]]
id = "c"
rounds = 0
"#;
        let found = problems(text);
        let at: Vec<&str> = found
            .iter()
            .map(|p| p.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            at,
            [
                "p.toml:1:8",
                "p.toml:2:20",
                "p.toml:3:1",
                "p.toml:8:8",
                "p.toml:9:10",
                "p.toml:10:10",
                "p.toml:11:11",
                "p.toml:12:8",
                "p.toml:14:6",
                "p.toml:15:10",
            ],
            "{found:#?}"
        );
        assert!(found[2].ends_with("task 1 has no `id`"), "{found:#?}");
        assert!(found[5].ends_with("rounds = 21; expected 1 to 20"));
        assert!(found[6].contains("invalid duration `soon`"));
        assert!(found[8].ends_with("task `c` has no `task` text"));
        assert!(found[9].ends_with("task `c`: rounds = 0; expected 1 to 20"));
    }

    #[test]
    fn no_tasks_and_unknown_keys() {
        assert_eq!(
            problems("name = \"x\"\n"),
            ["p.toml:1:1: the plan has no tasks"]
        );
        assert_eq!(
            problems("tasks = []\n"),
            ["p.toml:1:9: the plan has no tasks"]
        );
        let found = problems("[[tasks]]\nid = \"a\"\ntask = \"x\"\n  dependson = [\"b\"]\n");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("p.toml:4:3: unknown field `dependson`"),
            "{found:?}"
        );
    }

    #[test]
    fn agents_are_checked_against_the_configuration_when_known() {
        let text = "resolver = \"judy\"\n[[tasks]]\nid = \"a\"\ntask = \"x\"\nagents = [\"claude\", \"codx\", \"claude\"]\n";
        assert!(
            parse_with(text, None).is_err(),
            "a repeated agent is wrong anyway"
        );
        let configured = ["claude".to_owned(), "codex".to_owned()];
        assert_eq!(
            parse_with(text, Some(&configured)).unwrap_err(),
            [
                "p.toml:1:12: resolver: no agent named `judy` in .massgen/config.toml",
                "p.toml:5:21: task `a`: no agent named `codx` in .massgen/config.toml",
                "p.toml:5:29: task `a` lists agent `claude` twice",
            ]
        );
        let fine =
            "resolver = \"codex\"\n[[tasks]]\nid = \"a\"\ntask = \"x\"\nagents = [\"claude\"]\n";
        let plan = parse_with(fine, Some(&configured)).unwrap();
        assert_eq!(plan.resolver.as_deref(), Some("codex"));
        assert_eq!(plan.tasks[0].agents, ["claude"]);
    }

    #[test]
    fn the_name_defaults_to_a_usable_stem() {
        let text = "[[tasks]]\nid = \"a\"\ntask = \"x\"\n";
        let err = parse(text, Path::new("my plan.toml"), "my plan", None).unwrap_err();
        let PlanFileError::Invalid { problems, .. } = err else {
            panic!("{err}")
        };
        assert!(
            problems[0].message.contains("file name `my plan`"),
            "{problems:?}"
        );
        assert!(problems[0].hint.as_deref().unwrap().contains("name = "));
    }

    #[test]
    fn hints_list_the_plans_ids() {
        assert_eq!(listed(&["a"]), "`a`");
        assert_eq!(listed(&["a", "b", "c"]), "`a`, `b` and `c`");
        let many: Vec<String> = (0..12).map(|i| format!("t{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(listed(&many).ends_with("`t09`, and 2 more"));
    }
}
