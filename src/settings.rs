//! What git's own configuration says to git-massgen: `massgen.*` settings (layered between
//! `.massgen/config.toml` and flags, `git -c massgen.x=y massgen …` included), colour
//! (`color.massgen`, `color.ui`) and paging (`core.pager`, `pager.massgen`), resolved the way
//! git resolves them for its own commands.

use std::path::Path;

use crate::config::{Config, ConfigError, parse_duration};

/// The relevant part of git's configuration, read once per command.
#[derive(Debug, Clone, Default)]
pub struct GitSettings {
    /// `(key, value)` in the order git lists them (later ones win); keys as git prints them:
    /// section and variable lowercased.
    entries: Vec<(String, String)>,
}

impl GitSettings {
    /// Reads `massgen.*`, `color.massgen`, `color.ui`, `core.pager` and `pager.massgen` from
    /// git's configuration as seen from `dir` (global and system files, the repository's,
    /// and `git -c` through the environment). Nothing when git cannot say.
    pub fn read(dir: &Path) -> GitSettings {
        let out = crate::git::cmd::Git::new(dir)
            .args([
                "config",
                "--null",
                "--get-regexp",
                r"^(massgen\..*|color\.massgen|color\.ui|core\.pager|pager\.massgen)$",
            ])
            .output();
        let Ok(out) = out else {
            return GitSettings::default();
        };
        GitSettings::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// Parses `git config --null --get-regexp` output: `key\nvalue\0` records.
    pub fn parse(text: &str) -> GitSettings {
        let entries = text
            .split('\0')
            .filter(|r| !r.is_empty())
            .map(|r| match r.split_once('\n') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                // A key without a value (`[massgen] strict`) is boolean true.
                None => (r.to_owned(), "true".to_owned()),
            })
            .collect();
        GitSettings { entries }
    }

    /// The last value of `key` (lowercase).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Lays the `massgen.*` settings over a configuration read from the file. Returns the
    /// keys it does not know, for a warning.
    pub fn overlay(&self, config: &mut Config) -> Result<Vec<String>, ConfigError> {
        let mut unknown = Vec::new();
        for (key, value) in &self.entries {
            let Some(name) = key.strip_prefix("massgen.") else {
                continue;
            };
            let bad = |why: String| ConfigError::Setting {
                key: key.clone(),
                message: format!("`{value}`: {why}"),
            };
            let duration = || parse_duration(value).map_err(&bad);
            let number = || {
                value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected a number of at least 1".into()))
            };
            match name {
                "jobs" => config.run.jobs = Some(number()?),
                "pick" => config.run.pick = Some(number()?),
                "timeout" => config.run.timeout = Some(duration()?),
                "worktreeroot" => config.run.worktree_root = Some(expand_home(value)),
                "test" => config.score.test = Some(value.clone()),
                "testtimeout" => config.score.test_timeout = Some(duration()?),
                "reviewquorum" => config.review.quorum = Some(number()?),
                "reviewtimeout" => config.review.timeout = Some(duration()?),
                "failon" => {
                    let ok = value == "never" || crate::model::Severity::parse(value).is_some();
                    if !ok {
                        return Err(bad("expected error, warning, info or never".into()));
                    }
                    config.review.fail_on = Some(value.clone());
                }
                "sandbox" => {
                    config.sandbox.mode = Some(
                        crate::config::SandboxMode::parse(value)
                            .ok_or_else(|| bad("expected auto, required or off".into()))?,
                    );
                }
                "executor" => {
                    config.executor.kind = Some(
                        crate::config::ExecutorKind::parse(value)
                            .ok_or_else(|| bad("expected local or slurm".into()))?,
                    );
                }
                "strict" => {
                    config.review.strict =
                        bool_value(value).ok_or_else(|| bad("expected true or false".into()))?;
                }
                _ => unknown.push(key.clone()),
            }
        }
        Ok(unknown)
    }
}

/// `~/x` as git's `--type=path` reads it: under `$HOME`.
fn expand_home(value: &str) -> std::path::PathBuf {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    match (value.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        (None, Some(home)) if value == "~" => home,
        _ => value.into(),
    }
}

/// git's booleans: true/yes/on/1 and false/no/off/0 (and empty for false).
pub fn bool_value(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" | "" => Some(false),
        _ => None,
    }
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Whether to colour: `--color` first, then `NO_COLOR`, then `color.massgen`, then
/// `color.ui`, then whether the output is a terminal (or a pager git started for us).
pub fn use_color(
    flag: Option<ColorWhen>,
    no_color: Option<&str>,
    settings: &GitSettings,
    terminal: bool,
) -> bool {
    match flag {
        Some(ColorWhen::Always) => return true,
        Some(ColorWhen::Never) => return false,
        _ => {}
    }
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    for key in ["color.massgen", "color.ui"] {
        match settings.get(key).map(str::to_ascii_lowercase).as_deref() {
            Some("always") => return true,
            Some("never") | Some("false") | Some("no") | Some("off") | Some("0") => return false,
            Some("auto") | Some("true") | Some("yes") | Some("on") | Some("1") => return terminal,
            _ => {}
        }
    }
    terminal
}

/// The pager for paged output, as git chooses it: none when stdout is not a terminal or
/// git already started one (`GIT_PAGER_IN_USE`), or `pager.massgen` is false; else
/// `GIT_PAGER`, `pager.massgen` when it names a command, `core.pager`, `PAGER`, `less`.
/// `cat` and the empty string mean none.
pub fn pager(
    env: &dyn Fn(&str) -> Option<String>,
    settings: &GitSettings,
    terminal: bool,
) -> Option<String> {
    if !terminal || env("GIT_PAGER_IN_USE").is_some_and(|v| bool_value(&v) != Some(false)) {
        return None;
    }
    let configured = settings.get("pager.massgen");
    if configured.is_some_and(|v| bool_value(v) == Some(false)) {
        return None;
    }
    // As git orders them: GIT_PAGER, then `pager.<cmd> = <command>`, then core.pager.
    let own = configured
        .filter(|v| bool_value(v).is_none())
        .map(str::to_owned);
    let cmd = env("GIT_PAGER")
        .or(own)
        .or_else(|| settings.get("core.pager").map(str::to_owned))
        .or_else(|| env("PAGER"))
        .unwrap_or_else(|| "less".to_owned());
    let cmd = cmd.trim().to_owned();
    (!cmd.is_empty() && cmd != "cat").then_some(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(pairs: &[(&str, &str)]) -> GitSettings {
        GitSettings::parse(
            &pairs
                .iter()
                .map(|(k, v)| format!("{k}\n{v}\0"))
                .collect::<String>(),
        )
    }

    #[test]
    fn colour_precedence_is_flag_no_color_massgen_ui_terminal() {
        let none = settings(&[]);
        assert!(use_color(None, None, &none, true));
        assert!(!use_color(None, None, &none, false));
        assert!(use_color(Some(ColorWhen::Always), Some("1"), &none, false));
        assert!(!use_color(Some(ColorWhen::Never), None, &none, true));
        assert!(!use_color(Some(ColorWhen::Auto), Some("1"), &none, true));
        assert!(
            use_color(None, Some(""), &none, true),
            "an empty NO_COLOR is unset"
        );
        let ui_never = settings(&[("color.ui", "never")]);
        assert!(!use_color(None, None, &ui_never, true));
        let both = settings(&[("color.ui", "never"), ("color.massgen", "always")]);
        assert!(
            use_color(None, None, &both, false),
            "color.massgen beats color.ui"
        );
        assert!(
            !use_color(None, Some("1"), &both, true),
            "NO_COLOR beats config"
        );
        let auto = settings(&[("color.massgen", "auto"), ("color.ui", "always")]);
        assert!(!use_color(None, None, &auto, false));
    }

    #[test]
    fn pager_precedence_follows_git() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let none = settings(&[]);
        assert_eq!(pager(&env(&[]), &none, true).as_deref(), Some("less"));
        assert_eq!(pager(&env(&[]), &none, false), None, "not a terminal");
        assert_eq!(
            pager(&env(&[("GIT_PAGER_IN_USE", "true")]), &none, true),
            None
        );
        let core = settings(&[("core.pager", "more")]);
        assert_eq!(
            pager(&env(&[("PAGER", "most")]), &core, true).as_deref(),
            Some("more")
        );
        assert_eq!(
            pager(
                &env(&[("GIT_PAGER", "delta"), ("PAGER", "most")]),
                &core,
                true
            )
            .as_deref(),
            Some("delta")
        );
        assert_eq!(pager(&env(&[("GIT_PAGER", "cat")]), &none, true), None);
        let off = settings(&[("pager.massgen", "false"), ("core.pager", "more")]);
        assert_eq!(pager(&env(&[]), &off, true), None);
        let own = settings(&[("pager.massgen", "less -S"), ("core.pager", "more")]);
        assert_eq!(pager(&env(&[]), &own, true).as_deref(), Some("less -S"));
        assert_eq!(
            pager(&env(&[("GIT_PAGER", "x")]), &own, true).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn massgen_settings_overlay_the_file() {
        let mut config = Config::default();
        let unknown = settings(&[
            ("massgen.test", "make check"),
            ("massgen.timeout", "90s"),
            ("massgen.strict", "yes"),
            ("massgen.failon", "warning"),
            ("massgen.nope", "1"),
        ])
        .overlay(&mut config)
        .unwrap();
        assert_eq!(config.score.test.as_deref(), Some("make check"));
        assert_eq!(config.run.timeout, Some(Duration::from_secs(90)));
        assert!(config.review.strict);
        assert_eq!(config.review.fail_on.as_deref(), Some("warning"));
        assert_eq!(unknown, ["massgen.nope"]);
        let err = settings(&[("massgen.jobs", "0")])
            .overlay(&mut Config::default())
            .unwrap_err();
        assert!(err.to_string().contains("git config massgen.jobs"), "{err}");
    }
}
