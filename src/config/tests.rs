//! Tests of the configuration's parsing and checks.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("config.toml"))
}

#[test]
fn sizes_parse_in_powers_of_1024() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("500M"), Ok(500 << 20));
    assert_eq!(parse_size("20G"), Ok(20 << 30));
    assert_eq!(parse_size("20GiB"), Ok(20 << 30));
    assert_eq!(parse_size("1.5g"), Ok(3 << 29));
    assert!(parse_size("20 lightyears").is_err());
    assert!(parse_size("0G").is_err());
    let c = parse("[worktree]\nmax_disk = \"2G\"\n").unwrap();
    assert_eq!(c.worktree.max_disk, Some(2 << 30));
}

#[test]
fn full_config_parses() {
    let c = parse(
        r#"
[run]
jobs = 3
timeout = "90s"
pick = 2
[score]
test = "cargo test"
test_timeout = "10m"
[[agents]]
name = "fixer"
kind = "command"
command = ["my-agent", "--task", "{task}"]
env = { SOME_VAR = "x" }
timeout = "5m"
"#,
    )
    .unwrap();
    assert_eq!(c.run.jobs, Some(3));
    assert_eq!(c.run.pick, Some(2));
    assert_eq!(c.run.timeout, Some(Duration::from_secs(90)));
    assert_eq!(c.agents[0].timeout, Some(Duration::from_secs(300)));
    assert_eq!(c.agents[0].env["SOME_VAR"], "x");
}

#[test]
fn values_out_of_range_are_reported_at_their_key() {
    for (text, at) in [
        ("[run]\ntimeout = \"5m\"\njobs = 0\n", "config.toml:3:1: "),
        ("run.jobs = 0\n", "config.toml:1:1: "),
        ("[run]\njobs = 2\n pick = 0\n", "config.toml:3:2: "),
        ("[review]\n  quorum = 0\n", "config.toml:2:3: "),
        ("[judging]\nmax_attempts = 0\n", "config.toml:2:1: "),
        (
            "[plan]\ntimeout = \"2m\"\nmax_attempts = 0\n",
            "config.toml:3:1: ",
        ),
        ("[score.weights]\ntests = -1\n", "config.toml:1:1: "),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.starts_with(at), "{text:?}: {err}");
    }
}

#[test]
fn unknown_key_reports_line_and_column() {
    let err = parse("[run]\njobs = 2\n  jobz = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("config.toml:3:3: "), "{err}");
    assert!(err.contains("jobz"), "{err}");
}

#[test]
fn duplicate_agent_is_rejected_at_its_line() {
    let err = parse(
        "[[agents]]\nname = \"a\"\ncommand = [\"x\"]\n[[agents]]\nname = \"a\"\ncommand = [\"y\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("config.toml:5:8: "), "{err}");
}

#[test]
fn bad_duration_is_an_error() {
    let err = parse("[run]\ntimeout = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid duration"), "{err}");
    assert!(err.starts_with("config.toml:2:"), "{err}");
}

#[test]
fn judges_are_command_or_llm_and_checked_like_agents() {
    let err = parse("[[judges]]\nname = \"j\"\nkind = \"claude\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("config.toml:2:8: "), "{err}");
    assert!(
        err.contains("judges are kind = \"command\" or kind = \"llm\""),
        "{err}"
    );
    let err = parse("[[judges]]\nname = \"j\"\n").unwrap_err().to_string();
    assert!(err.contains("judge `j` has no `command`"), "{err}");
    let err = parse("[[judges]]\nname = \"j\"\ncommand = [\"x\"]\n[[judges]]\nname = \"j\"\ncommand = [\"y\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("judge `j` is defined twice"), "{err}");
    let err = parse("[score.weights]\ntests = -1.0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("score.weights"), "{err}");
    let err = parse("[judging]\nwhen = \"sometimes\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("config.toml:2:8: "), "{err}");
    let ok = parse("[judging]\nwhen = \"always\"\nmax_attempts = 2\n[[judges]]\nname = \"j\"\ncommand = [\"x\"]\n").unwrap();
    assert_eq!(ok.judging.when, JudgeWhen::Always);
}

#[test]
fn agent_names_are_ref_safe() {
    assert!(validate_agent_name("claude-1").is_ok());
    for bad in ["", "-x", ".x", "a/b", "a..b", "x.lock", "a b", "ü"] {
        assert!(validate_agent_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn executor_section_parses_and_rejects_unknown_kinds() {
    let c = parse(
        "[executor]\nkind = \"slurm\"\n[executor.slurm]\npartition = \"gpu\"\ncpus_per_task = 4\nmem = \"8G\"\ngres = \"gpu:1\"\nextra_args = [\"--qos=long\"]\nexport = [\"KEY\"]\nrequeue = true\nshared_fs = false\nscratch = \"/scratch\"\n[score]\nexecutor = \"slurm\"\n",
    )
    .unwrap();
    assert_eq!(c.executor.kind, Some(ExecutorKind::Slurm));
    assert_eq!(c.score.executor, Some(ExecutorKind::Slurm));
    let s = &c.executor.slurm;
    assert_eq!(s.partition.as_deref(), Some("gpu"));
    assert_eq!(s.cpus_per_task, Some(4));
    assert_eq!(s.extra_args, ["--qos=long"]);
    assert!(s.requeue);
    assert_eq!(s.shared_fs, Some(false));
    let err = parse("[executor]\nkind = \"k8s\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.toml:2:8"), "{err}");
    assert!(err.contains("local") && err.contains("slurm"), "{err}");
    let err = parse("[executor.slurm]\npartitoin = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("partitoin"), "{err}");
}
