//! Confining what git-massgen starts to its worktree.
//!
//! One description of the rules ([`Rules`]: where a process may write, which TCP ports it
//! may connect to and bind) serves both platforms: on Linux the process restricts itself
//! with Landlock (the `landlock` crate: no privileges, no extra binary) before it `exec`s
//! the command; on macOS the same rules become a Seatbelt profile for `sandbox-exec`.
//! Reading stays open everywhere (toolchains live everywhere).
//!
//! The one way in is the trampoline, `git-massgen sandbox-exec [OPTIONS] -- CMD ARGS…`
//! ([`trampoline`]): `agent::process::supervise` puts every supervised command (agents,
//! setup, tests, command judges and reviewers, the built-in LLM agent's process) through it
//! when a job carries rules.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::sys::overlay::{Overlay, PROBE_ARG};

/// The internal command that confines itself, then runs a command.
pub const TRAMPOLINE: &str = "sandbox-exec";

/// Set by tests only: Landlock is treated as missing, as on an old kernel.
pub const NO_LANDLOCK_VAR: &str = "MASSGEN_TEST_NO_LANDLOCK";

/// What a confined process may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Files and directories (with everything beneath) it may write, create and remove.
    pub write: Vec<PathBuf>,
    /// TCP ports it may connect to; `None`: any.
    pub connect: Option<Vec<u16>>,
    /// TCP ports it may bind; `None`: any.
    pub bind: Option<Vec<u16>>,
    /// Refuse to run the command when the rules cannot be enforced (`mode = "required"`).
    pub required: bool,
    /// A copy-on-write overlay to mount (in a private namespace) before anything else.
    pub overlay: Option<Overlay>,
}

impl Rules {
    /// The trampoline's arguments for these rules, up to and including `--`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = vec![OsString::from(TRAMPOLINE)];
        if let Some(o) = &self.overlay {
            args.push("--overlay".into());
            for p in [&o.lower, &o.upper, &o.work, &o.target] {
                args.push(p.clone().into_os_string());
            }
        }
        for p in &self.write {
            args.push("--write".into());
            args.push(p.clone().into_os_string());
        }
        let ports = |ports: &[u16]| {
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        if let Some(c) = &self.connect {
            args.push("--connect".into());
            args.push(ports(c).into());
        }
        if let Some(b) = &self.bind {
            args.push("--bind".into());
            args.push(ports(b).into());
        }
        if self.required {
            args.push("--required".into());
        }
        args.push("--".into());
        args
    }

    /// Reads the trampoline's arguments (after [`TRAMPOLINE`]); returns the rules and the
    /// command.
    pub fn from_args(
        mut args: impl Iterator<Item = OsString>,
    ) -> Result<(Rules, Vec<OsString>), String> {
        let mut rules = Rules::default();
        let ports = |v: Option<OsString>| -> Result<Vec<u16>, String> {
            let v = v.ok_or("a port list is missing")?;
            let v = v.to_str().ok_or("bad port list")?;
            v.split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().map_err(|_| format!("bad port `{p}`")))
                .collect()
        };
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("--write") => rules
                    .write
                    .push(args.next().ok_or("--write needs a path")?.into()),
                Some("--connect") => rules.connect = Some(ports(args.next())?),
                Some("--bind") => rules.bind = Some(ports(args.next())?),
                Some("--required") => rules.required = true,
                Some("--overlay") => {
                    let mut dir = || -> Result<PathBuf, String> {
                        Ok(args
                            .next()
                            .ok_or("--overlay needs LOWER UPPER WORK TARGET")?
                            .into())
                    };
                    rules.overlay = Some(Overlay {
                        lower: dir()?,
                        upper: dir()?,
                        work: dir()?,
                        target: dir()?,
                    });
                }
                Some("--") => {
                    let command: Vec<OsString> = args.collect();
                    if command.is_empty() {
                        return Err("no command after --".into());
                    }
                    return Ok((rules, command));
                }
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        Err("no command (expected -- CMD ARGS…)".into())
    }
}

/// How far the rules could be enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    /// Every rule, with this Landlock ABI.
    Full(u8),
    /// Some rules (an older kernel: network or truncation rules missing).
    Partial(u8),
    /// None: the kernel has no Landlock.
    None,
}

impl Enforced {
    /// One line for the user.
    pub fn describe(self) -> String {
        match self {
            Enforced::Full(abi) => format!("Landlock ABI {abi}, every rule enforced"),
            Enforced::Partial(abi) => {
                format!("Landlock ABI {abi}, some rules not enforced (an older kernel)")
            }
            Enforced::None => "no Landlock in this kernel".to_owned(),
        }
    }
}

/// Restricts the calling process (and whatever it `exec`s or starts) to `rules`.
#[cfg(target_os = "linux")]
pub fn enforce(rules: &Rules) -> Result<Enforced, String> {
    use landlock::{
        ABI, AccessFs, AccessNet, LandlockStatus, NetPort, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
    };
    if std::env::var_os(NO_LANDLOCK_VAR).is_some() {
        return Ok(Enforced::None);
    }
    let abi = ABI::V6;
    let err = |e: landlock::RulesetError| e.to_string();
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_write(abi))
        .map_err(err)?;
    if rules.connect.is_some() {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp).map_err(err)?;
    }
    if rules.bind.is_some() {
        ruleset = ruleset.handle_access(AccessNet::BindTcp).map_err(err)?;
    }
    let writable: Vec<&PathBuf> = rules.write.iter().filter(|p| p.exists()).collect();
    let mut created = ruleset
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(writable, AccessFs::from_write(abi)))
        .map_err(err)?;
    for (ports, access) in [
        (&rules.connect, AccessNet::ConnectTcp),
        (&rules.bind, AccessNet::BindTcp),
    ] {
        for port in ports.iter().flatten() {
            created = created.add_rule(NetPort::new(*port, access)).map_err(err)?;
        }
    }
    let status = created.restrict_self().map_err(err)?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as u8,
        _ => 0,
    };
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Full(abi),
        RulesetStatus::PartiallyEnforced => Enforced::Partial(abi),
        RulesetStatus::NotEnforced => Enforced::None,
    })
}

/// Landlock is Linux's; elsewhere the trampoline runs `sandbox-exec` with a profile.
#[cfg(not(target_os = "linux"))]
pub fn enforce(_rules: &Rules) -> Result<Enforced, String> {
    Ok(Enforced::None)
}

/// The trampoline: mounts its overlay if it has one, confines itself with the rules in
/// `args` (what follows [`TRAMPOLINE`]), then replaces itself with the command. Returns
/// only on failure, with the exit status to end with.
pub fn trampoline(args: impl Iterator<Item = OsString>) -> u8 {
    let fail = |why: String| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "git-massgen sandbox-exec: {why}");
        4
    };
    let mut args = args.peekable();
    if args.peek().is_some_and(|a| a == PROBE_ARG) {
        return match crate::sys::overlay::probe_here() {
            Ok(()) => {
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), "overlay ok");
                0
            }
            Err(why) => fail(why),
        };
    }
    let (rules, command) = match Rules::from_args(args) {
        Ok(parsed) => parsed,
        Err(why) => return fail(why),
    };
    // The overlay first: Landlock's rules hold inodes, which must be the merged tree's.
    if let Some(overlay) = &rules.overlay {
        let cwd = std::env::current_dir();
        if let Err(e) = crate::sys::overlay::enter(overlay) {
            return fail(format!("cannot mount the copy-on-write worktree: {e}"));
        }
        // The working directory still names what lay under the mount; the same path now
        // leads into the merged tree.
        if let Ok(cwd) = cwd
            && let Err(e) = std::env::set_current_dir(&cwd)
        {
            return fail(format!("cannot enter {}: {e}", cwd.display()));
        }
    }
    if command.first().is_some_and(|c| c == "--probe") {
        return match enforce(&rules) {
            Ok(e) => {
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), "{}", probe_line(e));
                0
            }
            Err(why) => fail(why),
        };
    }
    // Only a copy-on-write worktree asked for: nothing to confine.
    let unconfined = rules.overlay.is_some() && rules == overlay_only(&rules);
    let mut cmd = if unconfined {
        let mut cmd = std::process::Command::new(&command[0]);
        cmd.args(&command[1..]);
        cmd
    } else if cfg!(target_os = "macos") {
        let mut cmd = std::process::Command::new("/usr/bin/sandbox-exec");
        cmd.arg("-p").arg(seatbelt_profile(&rules)).args(&command);
        cmd
    } else {
        match enforce(&rules) {
            Ok(Enforced::None) if rules.required => {
                return fail(
                    "the sandbox is required ([sandbox] mode = \"required\") but this kernel has no Landlock".into(),
                );
            }
            Ok(_) => {}
            Err(why) => return fail(format!("cannot confine the command: {why}")),
        }
        let mut cmd = std::process::Command::new(&command[0]);
        cmd.args(&command[1..]);
        cmd
    };
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    fail(format!("cannot run {:?}: {e}", command[0]))
}

/// `rules` without any confinement: its overlay alone. A trampoline given only `--overlay`
/// mounts and runs the command unconfined; with no option at all, it confines the command
/// to writing nowhere, as before.
fn overlay_only(rules: &Rules) -> Rules {
    Rules {
        overlay: rules.overlay.clone(),
        ..Rules::default()
    }
}

/// What `sandbox-exec -- --probe` prints: `landlock <abi> full|partial`, or `none`.
fn probe_line(e: Enforced) -> String {
    match e {
        Enforced::Full(abi) => format!("landlock {abi} full"),
        Enforced::Partial(abi) => format!("landlock {abi} partial"),
        Enforced::None => "none".to_owned(),
    }
}

/// Whether this machine can confine commands, found by running the trampoline once (a
/// process confines only itself): what [`enforce`] would achieve, or why it cannot be known.
pub fn probe(exe: &Path) -> Result<Enforced, String> {
    let out = std::process::Command::new(exe)
        .args([TRAMPOLINE, "--connect", "", "--", "--probe"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["landlock", abi, level] => {
            let abi: u8 = abi
                .parse()
                .map_err(|_| format!("bad probe answer {text:?}"))?;
            Ok(if *level == "full" {
                Enforced::Full(abi)
            } else {
                Enforced::Partial(abi)
            })
        }
        ["none"] => Ok(Enforced::None),
        _ => Err(format!(
            "the sandbox probe failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Whether this machine can mount copy-on-write worktrees, found by running the trampoline
/// once (`sandbox-exec --overlay-probe`: a process of its own, whose single thread can enter
/// a user namespace): `Err` says why not.
pub fn overlay_probe(exe: &Path) -> Result<(), String> {
    let out = std::process::Command::new(exe)
        .args([TRAMPOLINE, PROBE_ARG])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "overlay ok" {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let why = err.trim().trim_start_matches("git-massgen sandbox-exec: ");
    Err(if why.is_empty() {
        format!("the overlay probe failed ({})", out.status)
    } else {
        why.to_owned()
    })
}

/// The rules as a Seatbelt profile (macOS `sandbox-exec -p`): everything allowed but
/// writing outside `write` and, where restricted, TCP outside the ports.
pub fn seatbelt_profile(rules: &Rules) -> String {
    let quote = |p: &Path| {
        let s = p.display().to_string();
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    };
    let mut out = String::from("(version 1)\n(allow default)\n(deny file-write*)\n");
    out.push_str("(allow file-write*\n");
    for p in &rules.write {
        out.push_str(&format!("    (subpath {})\n", quote(p)));
    }
    out.push_str(")\n");
    if let Some(ports) = &rules.connect {
        out.push_str("(deny network-outbound (remote tcp))\n");
        for port in ports {
            out.push_str(&format!(
                "(allow network-outbound (remote tcp \"*:{port}\"))\n"
            ));
        }
    }
    if let Some(ports) = &rules.bind {
        out.push_str("(deny network-bind (local tcp))\n");
        for port in ports {
            out.push_str(&format!("(allow network-bind (local tcp \"*:{port}\"))\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            write: vec!["/w/tree".into(), "/tmp/a \"quoted\" dir".into()],
            connect: Some(vec![443, 8000]),
            bind: None,
            required: true,
            overlay: Some(Overlay {
                lower: "/l".into(),
                upper: "/u p".into(),
                work: "/w".into(),
                target: "/t".into(),
            }),
        }
    }

    #[test]
    fn rules_go_through_the_trampolines_arguments_unchanged() {
        let mut args = rules().to_args();
        assert_eq!(args.remove(0), TRAMPOLINE);
        args.extend(["sh".into(), "-c".into(), "echo --write".into()]);
        let (back, command) = Rules::from_args(args.into_iter()).unwrap();
        assert_eq!(back, rules());
        assert_eq!(command, ["sh", "-c", "echo --write"]);
        assert!(Rules::from_args(["--write".into()].into_iter()).is_err());
        assert!(Rules::from_args(["--".into()].into_iter()).is_err());
        let none =
            Rules::from_args(["--connect".into(), "".into(), "--".into(), "x".into()].into_iter())
                .unwrap()
                .0;
        assert_eq!(none.connect, Some(vec![]));
    }

    #[test]
    fn the_seatbelt_profile_allows_writes_only_where_the_rules_say() {
        let profile = seatbelt_profile(&rules());
        assert!(profile.starts_with("(version 1)\n(allow default)\n(deny file-write*)\n"));
        assert!(profile.contains("(subpath \"/w/tree\")"), "{profile}");
        assert!(
            profile.contains("(subpath \"/tmp/a \\\"quoted\\\" dir\")"),
            "{profile}"
        );
        assert!(profile.contains("(deny network-outbound (remote tcp))"));
        assert!(profile.contains("(allow network-outbound (remote tcp \"*:443\"))"));
        assert!(
            !profile.contains("network-bind"),
            "bind is not restricted: {profile}"
        );
        // Parentheses balance: sandbox-exec would refuse the profile otherwise.
        let depth = profile.chars().fold(0i32, |d, c| match c {
            '(' => d + 1,
            ')' => d - 1,
            _ => d,
        });
        assert_eq!(depth, 0);
        let open = Rules::default();
        assert!(!seatbelt_profile(&open).contains("network"));
    }
}
