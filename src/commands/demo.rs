//! `git massgen demo`: the whole pipeline on a throw-away repository, offline, with three
//! deterministic built-in agents: one fixes the bug, one "fixes" it by breaking another
//! test, one changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::agent::prompt::Template;
use crate::agent::{AgentSpec, Kind};
use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::git::Repo;
use crate::git::cmd::Git;
use crate::run::layout;
use crate::run::pipeline::Plan;

const CALC: &str = include_str!("../../templates/demo/calc.sh");
const TEST: &str = include_str!("../../templates/demo/test.sh");

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to create the demo repository (default: a new directory under the temp dir).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DemoAgentArgs {
    /// fix, break or noop.
    pub behaviour: String,
}

pub fn demo(ctx: &Ctx, args: &DemoArgs) -> Result<Exit, CliError> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("git-massgen-demo-{}", crate::run::new_run_id())),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        return Err(
            CliError::usage(format!("{} exists and is not empty", dir.display()))
                .hint("pick another --dir, or omit it"),
        );
    }
    std::fs::create_dir_all(&dir)?;
    make_repo(&dir)?;
    ctx.ui.info(&format!(
        "massgen demo: repository with a failing test in {}",
        dir.display()
    ));

    let exe = std::env::current_exe()?;
    let exe = exe.display().to_string();
    let agent = |name: &str, behaviour: &str| AgentSpec {
        name: name.into(),
        kind: Kind::Command(vec![exe.clone(), "demo-agent".into(), behaviour.into()]),
        env: Default::default(),
        timeout: Duration::from_secs(60),
        setup: Vec::new(),
        allow_write: Vec::new(),
        ad_hoc: false,
    };
    let repo = Repo::discover(&dir)?;
    let (base, branch) = repo.head()?;
    let plan = Plan {
        task: "calc.sh add gives wrong answers; make `sh test.sh` pass".into(),
        base,
        base_branch: branch,
        agents: vec![
            agent("careful", "fix"),
            agent("hasty", "break"),
            agent("idle", "noop"),
        ],
        jobs: 3,
        test: Some("sh test.sh".into()),
        test_timeout: Duration::from_secs(60),
        keep: false,
        worktree_root: layout::worktree_root(&repo, None),
        prompt_template: Template::Prompt.load(&repo.massgen_dir())?,
        nudge: Template::Nudge.load(&repo.massgen_dir())?,
        images: Vec::new(),
        rounds: 1,
        round_template: Template::Round.load(&repo.massgen_dir())?,
        continue_template: Template::Continue.load(&repo.massgen_dir())?,
        judges: Vec::new(),
        judging: crate::run::pipeline::Judging {
            when: Default::default(),
            diff_budget: crate::judge::DEFAULT_DIFF_BUDGET,
            max_attempts: crate::judge::DEFAULT_MAX_ATTEMPTS,
            template: Template::Judge.load(&repo.massgen_dir())?,
        },
        weights: None,
        include: Vec::new(),
        setup: Vec::new(),
        setup_timeout: crate::config::DEFAULT_SETUP_TIMEOUT,
        share: Vec::new(),
        env: Vec::new(),
        max_disk: None,
        sandbox: Default::default(),
        picked: None,
        worktree_mode: Default::default(),
        executor: Default::default(),
    };
    let repo = Arc::new(repo);
    let rt = super::runtime()?;
    let progress = std::sync::Arc::new(crate::ui::progress::Progress::new(
        std::sync::Arc::new(ctx.ui.sibling()),
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json && !ctx.ui.is_quiet(),
        None,
        "",
    ));
    let state = rt.block_on(super::execute(repo.clone(), plan, progress))?;
    let exit = super::finish(
        ctx,
        &repo,
        state.clone(),
        Some(crate::run::merge::MergeOptions::default()),
        args.json,
        None,
    )?;
    if !args.json {
        ctx.ui.line(&format!(
            "\nthe demo repository: {}\n  git -C {} log --oneline --graph --all\n  git massgen -C {} status {}\n  git massgen -C {} diff {} hasty",
            dir.display(),
            shell_words::quote(&dir.display().to_string()),
            shell_words::quote(&dir.display().to_string()),
            state.run,
            shell_words::quote(&dir.display().to_string()),
            state.run,
        ));
    }
    Ok(exit)
}

fn make_repo(dir: &Path) -> Result<(), CliError> {
    Git::new(dir)
        .args(["init", "--quiet", "--initial-branch=main"])
        .run()?;
    std::fs::write(dir.join("calc.sh"), CALC)?;
    std::fs::write(dir.join("test.sh"), TEST)?;
    std::fs::write(
        dir.join("README"),
        "A tiny calculator with a bug, for git massgen demo.\n",
    )?;
    Git::new(dir).args(["add", "."]).run()?;
    Git::new(dir)
        .args([
            "-c",
            "user.name=git-massgen demo",
            "-c",
            "user.email=demo@git-massgen.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--quiet",
            "-m",
            "calculator with a failing test",
        ])
        .run()?;
    Ok(())
}

/// The built-in demo agents: deterministic edits of `calc.sh` in the current directory.
pub fn demo_agent(args: &DemoAgentArgs) -> Result<Exit, CliError> {
    let path = Path::new("calc.sh");
    let text = std::fs::read_to_string(path)?;
    let (delay, new_text) = match args.behaviour.as_str() {
        "fix" => (1200, text.replace("$(( $2 - $3 ))", "$(( $2 + $3 ))")),
        "break" => (
            600,
            text.replace("$(( $2 - $3 ))", "$(( $2 + $3 ))")
                .replace("$(( $2 * $3 ))", "$(( $2 + $3 ))"),
        ),
        "noop" => (300, text.clone()),
        other => return Err(CliError::usage(format!("unknown demo behaviour `{other}`"))),
    };
    std::thread::sleep(Duration::from_millis(delay));
    if new_text != text {
        std::fs::write(path, new_text)?;
    }
    Ok(Exit::Success)
}
