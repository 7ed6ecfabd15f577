//! Man pages and shell completions, generated from the clap tree given to them (the
//! command line's definition lives in `cli`, which calls these through `commands/docs`).

/// The program's name as a file: the man page's and the completion's command name.
pub const BIN: &str = "git-massgen";

/// What zsh's git completion shows beside `massgen` in `git <TAB>`.
const ZSH_DESCRIPTION: &str = "run several coding agents on one task and merge the best";

/// A shell `completions` can write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
// The variants have no doc comments: clap would list them as help beside each value.
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// One rendered man page.
#[derive(Debug)]
pub struct ManPage {
    /// The file name, `git-massgen-run.1`.
    pub file: String,
    /// The page in roff.
    pub roff: Vec<u8>,
}

/// The main page and one page per visible command, nested commands included.
pub fn man_pages(cmd: clap::Command) -> Vec<ManPage> {
    // As clap_mangen::generate_to does: no `help` command, and a built command so that each
    // subcommand's display name is `git-massgen-<command>` and its synopsis `git massgen
    // <command>`.
    let mut cmd = cmd.disable_help_subcommand(true);
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

/// The completion script for `shell`.
pub fn completion_script(cmd: &clap::Command, shell: CompletionShell) -> String {
    let generator = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = without_hidden_commands(cmd);
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
    fn page_date_honours_source_date_epoch() {
        assert_eq!(page_date(Some("1767225600")), "2026-01-01");
        assert_eq!(page_date(Some("not a number")).len(), "YYYY-MM-DD".len());
        assert_eq!(page_date(None).len(), "YYYY-MM-DD".len());
    }
}
