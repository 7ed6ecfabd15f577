//! `git massgen install-man [DIR]` and `git massgen completions SHELL`: the man pages and
//! shell completions, generated from the command-line definition itself ([`Cli`]), so they
//! never drift from `--help`.
//!
//! Man pages: `git-massgen.1` and one `git-massgen-<command>.1` per visible command (nested
//! ones too: `git-massgen-hooks-install.1`), named the way git looks them up: `git massgen
//! --help` is turned by git itself into `git help massgen`, which runs `man git-massgen`. The
//! default directory is `<prefix>/share/man/man1` for a binary in `<prefix>/bin`, which
//! man-db searches without MANPATH whenever `<prefix>/bin` is on PATH.
//!
//! Completions: clap_complete's script for `git-massgen`, plus, for bash, a `_git_massgen`
//! function so that `git massgen <TAB>` completes under git's own completion too (git calls
//! `_git_<command>` and loads `completions/git-<command>` on demand). zsh's `_git` calls
//! `_git-massgen`, which is what clap_complete defines, and fish's git completion runs the
//! completions of any `git-*` program on PATH, so neither needs glue.
//!
//! What this module must never do: leave a half-written page (each one is written to a
//! temporary file and renamed into place).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::{Args, CommandFactory, ValueEnum};

use super::Ctx;
use crate::cli::Cli;
use crate::error::{CliError, Exit};

/// The program's name as a file: the man page's and the completion's command name.
const BIN: &str = "git-massgen";

/// Where the completion scripts go; shown in `completions --help` and in the man page.
const COMPLETIONS_INSTALL: &str = "\
Installing (then start a new shell):

bash, with the bash-completion package; completes `git-massgen …` and `git massgen …`:
  git massgen completions bash > ~/.local/share/bash-completion/completions/git-massgen

zsh, with `fpath=(~/.zfunc $fpath)` before `compinit` in ~/.zshrc; zsh's own git completion \
then completes `git massgen …` too:
  git massgen completions zsh > ~/.zfunc/_git-massgen

fish; its git completion uses this for `git massgen …` too:
  git massgen completions fish > ~/.config/fish/completions/git-massgen.fish";

/// What zsh's git completion shows beside `massgen` in `git <TAB>`.
const ZSH_DESCRIPTION: &str = "run several coding agents on one task and merge the best";

/// `git massgen install-man [DIR]`.
#[derive(Debug, Args)]
pub struct InstallManArgs {
    /// Where to write the pages [default: share/man/man1 beside the binary's bin/].
    // Not the id `dir`: that is the global `-C DIR`, which clap would then neither propagate
    // here nor keep apart from this value.
    #[arg(id = "man_dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `git massgen completions SHELL`.
#[derive(Debug, Args)]
#[command(after_long_help = COMPLETIONS_INSTALL)]
pub struct CompletionsArgs {
    /// The shell to print completions for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// A shell `completions` can write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// The variants have no doc comments: clap would list them as help beside each value.
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// What can go wrong installing the man pages.
#[derive(Debug, thiserror::Error)]
enum DocsError {
    #[error("cannot find the path of this program")]
    CurrentExe(#[source] io::Error),
    #[error("{} is not in a `bin` directory, so there is no share/man beside it", exe.display())]
    NoPrefix { exe: PathBuf },
    #[error("cannot create {}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

impl From<DocsError> for CliError {
    fn from(err: DocsError) -> Self {
        match err {
            DocsError::CurrentExe(_) | DocsError::NoPrefix { .. } => CliError::usage(err)
                .hint("name the directory: `git massgen install-man ~/.local/share/man/man1`"),
            DocsError::CreateDir { .. } | DocsError::Write { .. } => {
                CliError::new(Exit::Failure, err).hint(
                    "choose a directory you can write to, e.g. \
                     `git massgen install-man ~/.local/share/man/man1`",
                )
            }
        }
    }
}

/// One rendered man page.
#[derive(Debug)]
pub struct ManPage {
    /// The file name, `git-massgen-run.1`.
    pub file: String,
    /// The page in roff.
    pub roff: Vec<u8>,
}

/// Writes the man pages and says where; checks that `man` finds the main page.
pub fn install_man(ctx: &Ctx, args: &InstallManArgs) -> Result<Exit, CliError> {
    let dir = match &args.dir {
        Some(dir) => ctx.cwd.join(dir),
        None => {
            let exe = std::env::current_exe().map_err(DocsError::CurrentExe)?;
            default_man_dir(&exe)?
        }
    };
    fs::create_dir_all(&dir).map_err(|source| DocsError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let pages = man_pages();
    for page in &pages {
        let path = dir.join(&page.file);
        write_page(&path, &page.roff)?;
        ctx.ui.line(&path.display().to_string());
    }
    report_lookup(ctx, &dir);
    Ok(Exit::Success)
}

/// Prints the completion script for one shell on stdout.
pub fn completions(ctx: &Ctx, args: &CompletionsArgs) -> Result<Exit, CliError> {
    ctx.ui.out(&completion_script(args.shell));
    Ok(Exit::Success)
}

/// `<prefix>/share/man/man1` for a binary at `<prefix>/bin/<name>`: the directory man-db
/// derives from `<prefix>/bin` on PATH.
fn default_man_dir(exe: &Path) -> Result<PathBuf, DocsError> {
    let no_prefix = || DocsError::NoPrefix {
        exe: exe.to_owned(),
    };
    let bin = exe.parent().ok_or_else(no_prefix)?;
    if bin.file_name() != Some("bin".as_ref()) {
        return Err(no_prefix());
    }
    let prefix = bin.parent().ok_or_else(no_prefix)?;
    Ok(prefix.join("share/man/man1"))
}

/// The main page and one page per visible command, nested commands included.
pub fn man_pages() -> Vec<ManPage> {
    // As clap_mangen::generate_to does: no `help` command, and a built command so that each
    // subcommand's display name is `git-massgen-<command>` and its synopsis `git massgen
    // <command>`.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let date = page_date(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref());
    let mut pages = Vec::new();
    collect_pages(cmd, &date, &mut pages);
    pages
}

/// The pages' date, `YYYY-MM-DD`: `SOURCE_DATE_EPOCH` when set (reproducible packaging),
/// else today.
fn page_date(source_date_epoch: Option<&str>) -> String {
    let when = source_date_epoch
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap_or_else(std::time::SystemTime::now);
    let mut text = humantime::format_rfc3339_seconds(when).to_string();
    text.truncate("YYYY-MM-DD".len());
    text
}

fn collect_pages(cmd: clap::Command, date: &str, pages: &mut Vec<ManPage>) {
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned();
    let man = clap_mangen::Man::new(cmd)
        .title(name.to_uppercase())
        .date(date)
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")))
        .manual("Git Manual");
    let mut roff = Vec::new();
    man.render(&mut roff)
        .expect("rendering into a Vec cannot fail");
    pages.push(ManPage {
        file: man.get_filename(),
        roff,
    });
    for sub in subs {
        collect_pages(sub, date, pages);
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, readable by everyone (as
/// the umask allows): `man` may read pages as another user.
fn write_page(path: &Path, bytes: &[u8]) -> Result<(), DocsError> {
    let dir = path.parent().expect("a page path has a directory");
    let write_err = |source| DocsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".git-massgen-")
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(write_err)?;
    tmp.write_all(bytes).map_err(write_err)?;
    tmp.as_file().sync_data().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

/// Says whether `man git-massgen` now finds the page just written, and what to do if not.
fn report_lookup(ctx: &Ctx, dir: &Path) {
    let page = dir.join(format!("{BIN}.1"));
    let found = Command::new("man")
        .args(["-w", BIN])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let found = match found {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines().next().map(|l| PathBuf::from(l.trim()))
        }
        Ok(_) => None,
        Err(_) => {
            ctx.ui
                .warn("`man` is not installed, so the pages cannot be read yet");
            return;
        }
    };
    let same = |p: &Path| match (fs::canonicalize(p), fs::canonicalize(&page)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    match found {
        Some(p) if same(&p) => ctx.ui.info(
            "hint: `git help massgen` and `git massgen --help` now open these pages \
             (`git massgen -h` prints the short help)",
        ),
        other => {
            let what = match other {
                Some(p) => format!("`man {BIN}` opens {} instead", p.display()),
                None => format!("`man {BIN}` does not find the page"),
            };
            ctx.ui.warn(&what);
            ctx.ui.info(&manpath_hint(dir));
        }
    }
}

/// How to make `man` search `dir`.
fn manpath_hint(dir: &Path) -> String {
    match dir.parent() {
        Some(parent) if dir.file_name() == Some("man1".as_ref()) => format!(
            "hint: add its parent to MANPATH, e.g. `export MANPATH=\"{}:$MANPATH\"`, or \
             install into share/man/man1 beside a bin directory on PATH",
            parent.display()
        ),
        _ => "hint: man only searches directories named man1 (under a MANPATH entry); \
              install into one, e.g. ~/.local/share/man/man1"
            .to_owned(),
    }
}

/// The completion script for `shell`.
pub fn completion_script(shell: CompletionShell) -> String {
    let generator = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = without_hidden_commands(&Cli::command());
    let mut out = Vec::new();
    clap_complete::generate(generator, &mut cmd, BIN, &mut out);
    let mut text = String::from_utf8(out).expect("clap_complete writes UTF-8");
    if shell == CompletionShell::Zsh {
        // zsh's `_git` lists `git massgen` with this line, the second of a `_git-*` file.
        if let Some(end) = text.find('\n') {
            text.insert_str(end + 1, &format!("#description {ZSH_DESCRIPTION}\n"));
        }
    }
    if shell == CompletionShell::Bash {
        // clap_complete 4.6 spells the state of `git-massgen <command>` two ways when the
        // program's name has a hyphen: `git__massgen__subcmd__run` where it walks the words
        // and `git__subcmd__massgen__subcmd__run` in the `case` arms, so nothing after a
        // command completes (clap-rs/clap#6421). Spell the arms like the walk; once upstream
        // is fixed this replaces nothing.
        let walk = BIN.replace('-', "__");
        let arms = BIN.replace('-', "__subcmd__");
        text = text.replace(&format!("{arms}__subcmd__"), &format!("{walk}__subcmd__"));
        let func = text
            .split("complete -F ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("clap_complete's bash script registers a completion function")
            .to_owned();
        text.push_str(&GIT_BASH_GLUE.replace("@FUNC@", &func));
    }
    text
}

/// `cmd` without its hidden commands, which clap_complete would offer like any other (the
/// internal ones are for git-massgen itself, never typed).
fn without_hidden_commands(cmd: &clap::Command) -> clap::Command {
    // `Command::new` and `version` take `&'static str` (clap without its `string` feature);
    // the name is BIN and the version the package's, as `#[command(version)]` has it.
    debug_assert_eq!(cmd.get_name(), BIN);
    let mut out = clap::Command::new(BIN)
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
        .subcommand_required(cmd.is_subcommand_required_set())
        .arg_required_else_help(cmd.is_arg_required_else_help_set());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if cmd.get_version().is_some() {
        out = out.version(env!("CARGO_PKG_VERSION"));
    }
    out
}

/// `_git_massgen`: what git's bash completion calls for `git massgen …`. It finds `massgen`
/// in the words (git records its index as `__git_cmd_idx`, after options such as `-C DIR`),
/// presents the rest as `git-massgen …` to clap's function (`@FUNC@`), and lifts git's
/// `nospace` so that a completed word gets its space (directories still get their `/`).
const GIT_BASH_GLUE: &str = r#"
# `git massgen <TAB>` under git's own bash completion, which calls _git_massgen (and loads
# this file as completions/git-massgen when it is not loaded yet).
_git_massgen() {
    local idx=${__git_cmd_idx:-0} i
    if [[ ${COMP_WORDS[idx]} != massgen ]]; then
        idx=0
        for ((i = 1; i < COMP_CWORD; i++)); do
            if [[ ${COMP_WORDS[i]} == massgen ]]; then
                idx=$i
                break
            fi
        done
        ((idx > 0)) || return 0
    fi
    local -a words=(git-massgen "${COMP_WORDS[@]:idx+1}")
    local cword=$((COMP_CWORD - idx))
    local -a COMP_WORDS=("${words[@]}")
    local COMP_CWORD=$cword
    compopt +o nospace 2>/dev/null
    @FUNC@ git-massgen "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_man_dir_is_share_man_beside_bin() {
        let dir = default_man_dir(Path::new("/opt/tools/bin/git-massgen")).unwrap();
        assert_eq!(dir, Path::new("/opt/tools/share/man/man1"));
        let dir = default_man_dir(Path::new("/home/u/.cargo/bin/git-massgen")).unwrap();
        assert_eq!(dir, Path::new("/home/u/.cargo/share/man/man1"));
    }

    #[test]
    fn default_man_dir_needs_a_bin_directory() {
        for exe in [
            "/work/target/debug/git-massgen",
            "/git-massgen",
            "git-massgen",
        ] {
            let err = default_man_dir(Path::new(exe)).unwrap_err();
            assert!(matches!(err, DocsError::NoPrefix { .. }), "{exe}: {err}");
        }
    }

    #[test]
    fn pages_are_named_as_git_looks_them_up() {
        let files: Vec<String> = man_pages().into_iter().map(|p| p.file).collect();
        assert_eq!(files[0], "git-massgen.1");
        for f in [
            "git-massgen-run.1",
            "git-massgen-hooks.1",
            "git-massgen-hooks-install.1",
        ] {
            assert!(files.iter().any(|x| x == f), "{f} missing from {files:?}");
        }
        for hidden in ["demo-agent", "llm-agent", "purge-trash", "help"] {
            let f = format!("git-massgen-{hidden}.1");
            assert!(!files.contains(&f), "{f} should not be written");
        }
    }

    #[test]
    fn bash_states_walked_to_have_case_arms() {
        let script = completion_script(CompletionShell::Bash);
        let arms: Vec<&str> = script
            .lines()
            .filter_map(|l| l.strip_prefix("        ")?.strip_suffix(')'))
            .filter(|l| !l.starts_with(' '))
            .collect();
        let walked: Vec<&str> = script
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cmd=\"")?.strip_suffix('"'))
            .filter(|state| !state.is_empty())
            .collect();
        assert!(walked.len() > 10, "{walked:?}");
        for state in walked {
            assert!(arms.contains(&state), "no case arm for {state}: {arms:?}");
        }
    }

    #[test]
    fn page_date_honours_source_date_epoch() {
        assert_eq!(page_date(Some("1767225600")), "2026-01-01");
        assert_eq!(page_date(Some("not a number")).len(), "YYYY-MM-DD".len());
        assert_eq!(page_date(None).len(), "YYYY-MM-DD".len());
    }

    #[test]
    fn manpath_hint_names_the_parent_of_man1() {
        let hint = manpath_hint(Path::new("/x/share/man/man1"));
        assert!(hint.contains("MANPATH=\"/x/share/man:$MANPATH\""), "{hint}");
        assert!(manpath_hint(Path::new("/x/pages")).contains("man1"));
    }
}
