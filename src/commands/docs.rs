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

use clap::{Args, CommandFactory};

use super::Ctx;
use crate::cli::Cli;
use crate::docs::{BIN, CompletionShell, completion_script, man_pages};
use crate::error::{CliError, Exit};

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
    let pages = man_pages(Cli::command());
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
    ctx.ui.out(&completion_script(&Cli::command(), args.shell));
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
    fn manpath_hint_names_the_parent_of_man1() {
        let hint = manpath_hint(Path::new("/x/share/man/man1"));
        assert!(hint.contains("MANPATH=\"/x/share/man:$MANPATH\""), "{hint}");
        assert!(manpath_hint(Path::new("/x/pages")).contains("man1"));
    }

    #[test]
    fn pages_are_named_as_git_looks_them_up() {
        let files: Vec<String> = man_pages(Cli::command())
            .into_iter()
            .map(|p| p.file)
            .collect();
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
        let script = completion_script(&Cli::command(), CompletionShell::Bash);
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
}
