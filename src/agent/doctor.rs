//! What `git massgen doctor` checks of each agent: its binary and version, its credentials
//! variable, and whether its endpoint accepts a connection. Changes nothing.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::agent::cli::{CliAgent, Preset, which};
use crate::config::AgentConfig;

/// One check of one agent.
#[derive(Debug, Serialize)]
pub struct Check {
    pub agent: String,
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What to do about it, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Checks `agents`, in parallel (a version probe can take seconds); `offline` skips the
/// network checks.
pub fn check_agents(agents: &[&AgentConfig], offline: bool) -> Vec<Check> {
    std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter()
            .map(|a| s.spawn(move || check_agent(a, offline)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a check does not panic"))
            .collect()
    })
}

fn check_agent(a: &AgentConfig, offline: bool) -> Vec<Check> {
    let name = a.name.get_ref().clone();
    let check = |check: &'static str, ok: bool, detail: String, fix: Option<String>| Check {
        agent: name.clone(),
        check,
        ok,
        detail,
        fix,
    };
    let Some(preset) = Preset::from_kind(a.kind) else {
        let program = &a.command[0];
        let found = which(program);
        return vec![match found {
            Some(p) => check(
                "binary",
                true,
                format!("{program} is {}", p.display()),
                None,
            ),
            None => check(
                "binary",
                false,
                format!("`{program}` not found on PATH"),
                Some("install it, or give its full path in `command`".into()),
            ),
        }];
    };
    if preset == Preset::Llm {
        return check_llm(a, offline, &check);
    }
    let cli = CliAgent::from_config(preset, a);
    let mut out = Vec::new();
    match which(&cli.bin) {
        None => {
            let (where_, fix) = if cli.bin.contains('/') {
                (
                    "is not an executable file",
                    format!(
                        "point `bin` at the installed binary, or install it: {}",
                        preset.install_hint()
                    ),
                )
            } else {
                (
                    "is not on PATH",
                    format!("{}, or set `bin` to its path", preset.install_hint()),
                )
            };
            out.push(check(
                "binary",
                false,
                format!("`{}` ({}) {where_}", cli.bin, preset.title()),
                Some(fix),
            ));
        }
        Some(bin) => {
            out.push(check("binary", true, bin.display().to_string(), None));
            out.push(match version(&bin) {
                Ok(v) => check("version", true, v, None),
                Err(e) => check(
                    "version",
                    false,
                    format!("`{} --version` failed: {e}", cli.bin),
                    Some("reinstall it; the binary does not run".into()),
                ),
            });
        }
    }
    out.push(if cli.own_config {
        check(
            "credentials",
            true,
            format!("own_config: uses your own {} login and configuration", preset.title()),
            None,
        )
    } else if cli.api_key().is_some() {
        check("credentials", true, format!("{} is set", cli.api_key_env), None)
    } else {
        check(
            "credentials",
            false,
            format!("{} is not set (or empty)", cli.api_key_env),
            Some(format!(
                "export {}=<key>, or set `api_key_env` to the variable that holds it, or `own_config = true` to use your own `{}` login",
                cli.api_key_env,
                preset.name()
            )),
        )
    });
    if !offline {
        out.push(endpoint_check(
            cli.base_url.as_deref(),
            preset.default_base_url(),
            &check,
        ));
    }
    out
}

/// The built-in agent: its provider, its key variable, its endpoint.
fn check_llm(
    a: &AgentConfig,
    offline: bool,
    check: &dyn Fn(&'static str, bool, String, Option<String>) -> Check,
) -> Vec<Check> {
    let mut out = Vec::new();
    let p = match crate::llm::provider::find(a.provider.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => {
            out.push(check("provider", false, e, Some("set `provider`".into())));
            return out;
        }
    };
    out.push(check(
        "provider",
        true,
        format!(
            "{} ({}), model {}",
            p.name,
            p.protocol.name(),
            a.model.as_deref().unwrap_or("?")
        ),
        None,
    ));
    let var = a
        .api_key_env
        .clone()
        .or_else(|| p.key_env.map(str::to_owned));
    out.push(match var {
        None => check(
            "credentials",
            true,
            "no key needed (local server)".into(),
            None,
        ),
        Some(var) if std::env::var(&var).is_ok_and(|v| !v.is_empty()) => {
            check("credentials", true, format!("{var} is set"), None)
        }
        Some(var) => check(
            "credentials",
            false,
            format!("{var} is not set (or empty)"),
            Some(format!(
                "export {var}=<key>, or set `api_key_env` to the variable that holds it"
            )),
        ),
    });
    if !offline {
        out.push(endpoint_check(a.base_url.as_deref(), p.base_url, check));
    }
    out
}

/// Whether the configured endpoint (or the default one) accepts a connection.
fn endpoint_check(
    configured: Option<&str>,
    default: &str,
    check: &dyn Fn(&'static str, bool, String, Option<String>) -> Check,
) -> Check {
    let url = configured.unwrap_or(default);
    match reachable(url) {
        Ok(ms) => check("endpoint", true, format!("{url} answers ({ms} ms)"), None),
        Err(e) => check(
            "endpoint",
            false,
            format!("{url}: {e}"),
            Some(if configured.is_some() {
                "start the server, or fix `base_url`".to_owned()
            } else {
                "check the network or proxy, or set `base_url`".to_owned()
            }),
        ),
    }
}

/// The first line `BIN --version` prints, within 20 seconds. Output goes to files, not
/// pipes, so that a chatty binary cannot block and a background child holding a pipe open
/// cannot keep us waiting; at the deadline the whole process group is killed.
fn version(bin: &std::path::Path) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let out = tempfile::tempfile().map_err(|e| e.to_string())?;
    let err = tempfile::tempfile().map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(err.try_clone().map_err(|e| e.to_string())?)
        .env("NO_COLOR", "1")
        .process_group(0)
        .spawn()
        .map_err(|e| e.to_string())?;
    let pgid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                crate::agent::process::kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err("no answer within 20s".into());
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // Whatever it left running in its group goes too.
    crate::agent::process::kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
    let text = read_start(out);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if !status.success() || line.is_empty() {
        let err = read_start(err);
        let why = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Err(match status.code() {
            Some(code) if code != 0 => format!("exit code {code}: {}", why.trim()),
            _ => why.trim().to_owned(),
        });
    }
    Ok(line.to_owned())
}

/// The first 64 KiB of a temporary file, as text.
fn read_start(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.take(64 * 1024).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Opens a TCP connection to the URL's host and port; returns the milliseconds it took.
fn reachable(url: &str) -> Result<u128, String> {
    let (https, rest) = match url.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => return Err("not an http(s) URL".into()),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    let target = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{}", if https { 443 } else { 80 })
    };
    let start = Instant::now();
    let addrs = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {target}: {e}"))?;
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(_) => return Ok(start.elapsed().as_millis()),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}
