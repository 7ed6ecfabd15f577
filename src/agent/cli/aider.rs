//! aider: `aider --message PROMPT --yes-always --no-auto-commits ...`. It writes text, not
//! events: edits show as `Applied edit to PATH`, usage as
//! `Tokens: 2.3k sent, 104 received. Cost: $0.01 message, $0.02 session.`
//! Its history files go to the agent's home, not into the worktree. It cannot resume a
//! session, so it is never nudged.

use super::{AgentEvent, CliAgent, Launch, LaunchCtx, Parser};

pub(super) fn launch(agent: &CliAgent, ctx: &LaunchCtx<'_>) -> Launch {
    let mut l = Launch::new(&agent.bin);
    let home = |f: &str| ctx.home.join(f).display().to_string();
    l.arg("--yes-always")
        .arg("--no-auto-commits")
        .arg("--no-dirty-commits")
        .arg("--no-check-update")
        .arg("--no-analytics")
        .arg("--no-gitignore")
        .arg("--no-pretty")
        .arg("--no-stream")
        .arg("--no-fancy-input")
        .arg("--no-show-model-warnings")
        .arg("--map-tokens")
        .arg("0")
        .arg("--chat-history-file")
        .arg(home("chat.history.md"))
        .arg("--input-history-file")
        .arg(home("input.history"));
    if ctx.read_only {
        l.arg("--dry-run");
    }
    if let Some(model) = &agent.model {
        // With an OpenAI-compatible endpoint, aider needs the `openai/` prefix.
        let model = if agent.base_url.is_some() && !model.contains('/') {
            format!("openai/{model}")
        } else {
            model.clone()
        };
        l.arg("--model").arg(model);
    }
    if let Some(url) = &agent.base_url {
        let url = if url.ends_with("/v1") {
            url.clone()
        } else {
            format!("{url}/v1")
        };
        l.arg("--openai-api-base").arg(url);
    }
    l.argv.extend(agent.args.iter().cloned());
    l.arg("--message").arg(ctx.prompt);
    if !agent.own_config {
        // aider keeps caches and analytics in ~/.aider; it gets a home of its own, with
        // git still reading the user's global configuration.
        if let Some(home) = std::env::var_os("HOME")
            && std::env::var_os("GIT_CONFIG_GLOBAL").is_none()
        {
            let global = std::path::Path::new(&home).join(".gitconfig");
            l.env("GIT_CONFIG_GLOBAL", global.display().to_string());
        }
        l.env("HOME", ctx.home.display().to_string());
    }
    if agent.api_key_env_set
        && let Some(key) = agent.api_key()
    {
        let var = match agent.model.as_deref() {
            Some(m) if m.starts_with("anthropic/") => "ANTHROPIC_API_KEY",
            Some(m) if m.starts_with("gemini/") => "GEMINI_API_KEY",
            _ => "OPENAI_API_KEY",
        };
        l.env(var, key);
    }
    l
}

pub(super) fn parse(p: &mut Parser, line: &str) -> Vec<AgentEvent> {
    let mut out = Vec::new();
    if let Some(path) = line.strip_prefix("Applied edit to ") {
        // What came since the reply is aider echoing the edit.
        p.text.clear();
        out.push(AgentEvent::FileEdit {
            path: path.trim().to_owned(),
        });
    } else if let Some(rest) = line.strip_prefix("Tokens: ") {
        // The model's reply ends here; the files it lists are not part of its message.
        let reply = prose(&std::mem::take(&mut p.text));
        if !reply.is_empty() {
            out.push(AgentEvent::Message { text: reply });
        }
        // "2.3k sent, 104 received. Cost: $0.01 message, $0.02 session."
        let mut words = rest.split_whitespace();
        let sent = words.next().and_then(parse_count);
        let received = rest
            .split(", ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(parse_count);
        out.push(AgentEvent::Usage {
            input_tokens: sent.unwrap_or(0),
            output_tokens: received.unwrap_or(0),
        });
        if let Some(cost) = rest
            .split("Cost: $")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<f64>().ok())
        {
            out.push(AgentEvent::Cost { usd: cost });
        }
    } else if is_error_line(line) {
        out.push(AgentEvent::Error {
            message: line.to_owned(),
        });
    } else if line.starts_with("Aider v") {
        out.push(AgentEvent::Started {
            model: None,
            session: None,
        });
    } else if is_status_line(line) {
    } else if line.is_empty() {
        if !p.text.is_empty() {
            p.text.push('\n');
        }
    } else {
        if !p.text.is_empty() && !p.text.ends_with('\n') {
            p.text.push('\n');
        }
        p.text.push_str(line);
    }
    out
}

/// A reply without the file listings of aider's edit formats: everything before the first
/// fence, less the path line that introduces it.
fn prose(reply: &str) -> String {
    let mut lines: Vec<&str> = reply
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .collect();
    let listed = lines.len() < reply.lines().count();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    if listed && lines.last().is_some_and(|l| !l.trim().contains(' ')) {
        lines.pop();
    }
    lines.join("\n").trim().to_owned()
}

/// `2.3k` → 2300, `104` → 104, `1.2M` → 1200000.
fn parse_count(word: &str) -> Option<u64> {
    let word = word.trim_end_matches(',');
    let (num, mult) = match word.chars().last()? {
        'k' => (&word[..word.len() - 1], 1_000.0),
        'M' => (&word[..word.len() - 1], 1_000_000.0),
        _ => (word, 1.0),
    };
    num.parse::<f64>().ok().map(|n| (n * mult).round() as u64)
}

fn is_error_line(line: &str) -> bool {
    [
        "litellm.",
        "AuthenticationError",
        "The API provider is not able to authenticate",
        "RateLimitError",
        "APIConnectionError",
        "Error:",
    ]
    .iter()
    .any(|p| line.starts_with(p) || line.contains(&format!("{p}:")))
}

/// Lines aider prints about itself, not the model's words.
fn is_status_line(line: &str) -> bool {
    [
        "Model:",
        "Main model:",
        "Weak model:",
        "Editor model:",
        "Git repo:",
        "Repo-map:",
        "Added ",
        "Use /help",
        "Warning:",
        "You can skip",
        "https://aider.chat",
        "Can't initialize",
        "Retrying in",
        "Creating empty file",
        "Commit ",
        "Dirty files",
        "HTTPSConnectionPool",
        "Update git name",
        "Update git email",
        "─",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}
