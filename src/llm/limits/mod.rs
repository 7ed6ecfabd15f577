//! Rate limits shared by every agent and every git-massgen process on the machine.
//!
//! Limits are kept per `"provider/model"` key: requests and tokens per minute, requests
//! per day, and requests in flight. [`Window`] is the pure decision core (a sliding
//! window over granted requests plus a FIFO queue of waiting tickets); [`Limiter`] keeps
//! one `Window` per key in a JSON file under a state directory, read and rewritten under
//! an exclusive `flock`, so that agents in other processes wait in the same queue.
//!
//! The module never prints: waits are reported through the caller's `on_wait`.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;
/// The longest pause between two looks at the shared state while waiting.
const POLL_MS: u64 = 250;
/// Random extra pause, so that waiting processes do not poll in lockstep.
const JITTER_MS: u64 = 40;

pub use crate::model::Limits;

/// The shipped profiles, one table per `"provider/model"`.
const SHIPPED: &str = include_str!("../../../templates/rate_limits.toml");

/// The shipped profiles (`templates/rate_limits.toml`): `"provider/model"` to its limits.
pub fn shipped() -> BTreeMap<String, Limits> {
    toml::from_str(SHIPPED).expect("templates/rate_limits.toml is checked by a unit test")
}

/// Parses the `--rate-limit` flag, such as `rpm=10,tpm=20000,rpd=100,max_concurrent=2`.
/// Errors name the part that is wrong.
pub fn parse_flag(s: &str) -> Result<Limits, String> {
    let mut limits = Limits::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected NAME=NUMBER, such as rpm=10"))?;
        let (name, value) = (name.trim(), value.trim());
        let number: u64 = value
            .parse()
            .map_err(|_| format!("`{part}`: `{value}` is not a whole number"))?;
        if number == 0 {
            return Err(format!("`{part}`: a limit must be at least 1"));
        }
        let small =
            || u32::try_from(number).map_err(|_| format!("`{part}`: {number} is too large"));
        let given_before = match name {
            "rpm" => limits.rpm.replace(small()?).is_some(),
            "tpm" => limits.tpm.replace(number).is_some(),
            "rpd" => limits.rpd.replace(small()?).is_some(),
            "max_concurrent" => limits.max_concurrent.replace(small()?).is_some(),
            _ => {
                return Err(format!(
                    "`{part}`: unknown limit `{name}`; expected rpm, tpm, rpd or max_concurrent"
                ));
            }
        };
        if given_before {
            return Err(format!("`{name}` is given twice"));
        }
    }
    if limits.is_empty() {
        return Err("no limit given; expected e.g. rpm=10,tpm=20000".to_owned());
    }
    Ok(limits)
}

/// A granted request, kept while it counts against a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Granted {
    at_ms: u64,
    tokens: u64,
    id: u64,
}

/// A request of a process, waiting its turn or in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    id: u64,
    pid: u32,
    since_ms: u64,
    tokens: u64,
}

/// The shared state of one key, and the decisions on it. Times are milliseconds since
/// the epoch, passed in, so that tests can drive it with a simulated clock.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Window {
    /// Granted requests, oldest first, for as long as they count (a day with an RPD).
    requests: Vec<Granted>,
    /// Granted requests that have not finished.
    in_flight: Vec<Entry>,
    /// Waiting tickets in arrival order.
    waiting: Vec<Entry>,
    /// A server asked us to wait until then (0: it did not).
    blocked_until_ms: u64,
}

/// What a request may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It fits: grant it.
    Go,
    /// It must wait. `until_ms` is the earliest time it could go; it equals the time of
    /// the decision when that depends on other requests finishing.
    Wait { until_ms: u64, why: String },
    /// The daily budget is spent until `resets_at_ms`; waiting makes no sense.
    Never { why: String, resets_at_ms: u64 },
}

impl Window {
    /// Drops what has expired and the entries of dead processes (`alive(pid)` false),
    /// then decides for a request estimated at `tokens`, made by ticket `id` of `pid`.
    ///
    /// The first call for an `id` puts it at the end of the queue; a ticket may only go
    /// when no older live ticket waits, so requests go in arrival order across agents
    /// and processes. A request larger than `tpm` by itself may go when the last 60 s
    /// hold no tokens: it would never fit otherwise, and alone it is what the server
    /// allows at best. `Never` when the RPD budget is spent; it resets when the oldest
    /// request of the day window leaves it. A `Never` ticket leaves the queue.
    pub fn decide(
        &mut self,
        limits: &Limits,
        now_ms: u64,
        id: u64,
        pid: u32,
        tokens: u64,
        alive: &dyn Fn(u32) -> bool,
    ) -> Decision {
        self.expire(limits, now_ms, alive);
        if let Some(rpd) = limits.rpd {
            let rpd = rpd.max(1) as usize;
            if self.requests.len() >= rpd {
                self.waiting.retain(|t| t.id != id);
                let oldest = self.requests[self.requests.len() - rpd].at_ms;
                return Decision::Never {
                    why: format!("rpd limit of {rpd} requests a day reached"),
                    resets_at_ms: oldest.saturating_add(DAY_MS),
                };
            }
        }
        let position = match self.waiting.iter().position(|t| t.id == id) {
            Some(position) => {
                self.waiting[position].tokens = tokens;
                position
            }
            None => {
                self.waiting.push(Entry {
                    id,
                    pid,
                    since_ms: now_ms,
                    tokens,
                });
                self.waiting.len() - 1
            }
        };
        if position > 0 {
            let head = self.waiting[0].tokens;
            let until_ms = self
                .limit_wait(limits, now_ms, head)
                .map_or(now_ms, |(until, _)| until);
            let s = if position == 1 { "" } else { "s" };
            return Decision::Wait {
                until_ms,
                why: format!("{position} earlier request{s} queued"),
            };
        }
        match self.limit_wait(limits, now_ms, tokens) {
            None => Decision::Go,
            Some((until_ms, why)) => Decision::Wait { until_ms, why },
        }
    }

    /// Records a granted request (and in flight), removing its waiting ticket.
    pub fn grant(&mut self, now_ms: u64, id: u64, pid: u32, tokens: u64) {
        self.waiting.retain(|t| t.id != id);
        self.requests.push(Granted {
            at_ms: now_ms,
            tokens,
            id,
        });
        self.in_flight.push(Entry {
            id,
            pid,
            since_ms: now_ms,
            tokens,
        });
    }

    /// The request finished (or its ticket was given up): no longer in flight nor
    /// waiting; its token count replaced by the actual one when known.
    pub fn release(&mut self, id: u64, actual_tokens: Option<u64>) {
        self.in_flight.retain(|r| r.id != id);
        self.waiting.retain(|t| t.id != id);
        if let Some(actual) = actual_tokens
            && let Some(request) = self.requests.iter_mut().find(|r| r.id == id)
        {
            request.tokens = actual;
        }
    }

    /// A server said to slow down (retry-after, or nothing remaining until a reset time).
    pub fn block_until(&mut self, until_ms: u64) {
        self.blocked_until_ms = self.blocked_until_ms.max(until_ms);
    }

    /// Forgets requests that no window counts any more and entries of dead processes.
    /// Without an RPD only the last minute is kept, so the state file stays small.
    fn expire(&mut self, limits: &Limits, now_ms: u64, alive: &dyn Fn(u32) -> bool) {
        let keep_ms = if limits.rpd.is_some() {
            DAY_MS
        } else {
            MINUTE_MS
        };
        self.requests
            .retain(|r| r.at_ms.saturating_add(keep_ms) > now_ms);
        // Grants are recorded in time order; sorting guards against a clock set back.
        self.requests.sort_by_key(|r| r.at_ms);
        self.in_flight.retain(|r| alive(r.pid));
        self.waiting.retain(|t| alive(t.pid));
        if self.blocked_until_ms <= now_ms {
            self.blocked_until_ms = 0;
        }
    }

    /// Why a request of `tokens` cannot go now, ignoring the queue and the RPD, and the
    /// earliest time it could.
    fn limit_wait(&self, limits: &Limits, now_ms: u64, tokens: u64) -> Option<(u64, String)> {
        if self.blocked_until_ms > now_ms {
            return Some((
                self.blocked_until_ms,
                "the server asked to slow down".to_owned(),
            ));
        }
        if let Some(max) = limits.max_concurrent {
            let max = max.max(1) as usize;
            if self.in_flight.len() >= max {
                let why = format!(
                    "{} requests in flight (max_concurrent {max})",
                    self.in_flight.len()
                );
                return Some((now_ms, why));
            }
        }
        let minute: Vec<&Granted> = self
            .requests
            .iter()
            .filter(|r| r.at_ms.saturating_add(MINUTE_MS) > now_ms)
            .collect();
        if let Some(rpm) = limits.rpm {
            let rpm = rpm.max(1) as usize;
            if minute.len() >= rpm {
                let until = minute[minute.len() - rpm].at_ms + MINUTE_MS;
                let why = format!("{} requests in the last minute (rpm {rpm})", minute.len());
                return Some((until, why));
            }
        }
        if let Some(tpm) = limits.tpm {
            let used = minute
                .iter()
                .fold(0u64, |sum, r| sum.saturating_add(r.tokens));
            if used > 0 && used.saturating_add(tokens) > tpm {
                let mut left = used;
                let mut until = now_ms;
                for request in &minute {
                    left = left.saturating_sub(request.tokens);
                    until = request.at_ms + MINUTE_MS;
                    if left == 0 || left.saturating_add(tokens) <= tpm {
                        break;
                    }
                }
                let why =
                    format!("{used} tokens in the last minute, {tokens} more would pass tpm {tpm}");
                return Some((until, why));
            }
        }
        None
    }
}

/// Errors of rate limiting.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The daily budget of `key` is spent.
    #[error("{key}: {why}; it resets at {resets_at}")]
    Exhausted {
        key: String,
        why: String,
        resets_at_ms: u64,
        /// `resets_at_ms` in local time, RFC 3339.
        resets_at: String,
    },
    /// The shared state could not be read, locked or written.
    #[error("cannot use the rate-limit state {path}")]
    State {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The limiter of one key, its state in `<state_dir>/<sanitized key>.json`, guarded by an
/// exclusive `flock` on `<same>.lock`, so that concurrent processes share it.
#[derive(Debug, Clone)]
pub struct Limiter {
    key: String,
    limits: Limits,
    state: PathBuf,
    lock: PathBuf,
}

/// A granted request. `done` (or dropping it) ends it; before it is granted, dropping it
/// takes its ticket out of the queue.
#[derive(Debug)]
pub struct Permit {
    /// `None` once released, or when the request was never tracked.
    limiter: Option<Limiter>,
    id: u64,
}

impl Permit {
    /// The request finished having used `actual_tokens`.
    pub fn done(mut self, actual_tokens: u64) {
        self.finish(Some(actual_tokens));
    }

    fn finish(&mut self, actual_tokens: Option<u64>) {
        if let Some(limiter) = self.limiter.take() {
            // Nothing to do about a failure here: the entry goes when this process ends.
            let _ = limiter.with_state(|window, _| window.release(self.id, actual_tokens));
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl Limiter {
    /// A limiter for `key` with `limits`, keeping its state in `state_dir`.
    pub fn new(state_dir: &Path, key: &str, limits: Limits) -> Limiter {
        let file: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Limiter {
            key: key.to_owned(),
            limits,
            state: state_dir.join(format!("{file}.json")),
            lock: state_dir.join(format!("{file}.lock")),
        }
    }

    /// The default state directory: `$XDG_STATE_HOME/git-massgen/ratelimits`, else
    /// `~/.local/state/git-massgen/ratelimits`.
    pub fn default_dir() -> PathBuf {
        let xdg = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let state = xdg.unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            home.join(".local").join("state")
        });
        state.join("git-massgen").join("ratelimits")
    }

    /// Waits until a request of `tokens` fits, looking at the shared state at most every
    /// 250 ms (with a little jitter), and calls `on_wait(until_ms, why)` once for each
    /// distinct reason to wait. Fails at once with [`LimitError::Exhausted`] when the
    /// daily budget is spent. Without limits, a state that cannot be used is no error.
    pub async fn acquire(
        &self,
        tokens: u64,
        on_wait: &mut (dyn FnMut(u64, &str) + Send),
    ) -> Result<Permit, LimitError> {
        let pid = std::process::id();
        // Until granted, this is our ticket: dropping it (the caller gave up) leaves the queue.
        let mut permit = Permit {
            limiter: Some(self.clone()),
            id: fastrand::u64(..),
        };
        let id = permit.id;
        let mut reported: Option<String> = None;
        loop {
            let looked = self.with_state(|window, now_ms| {
                let decision = window.decide(&self.limits, now_ms, id, pid, tokens, &process_alive);
                if decision == Decision::Go {
                    window.grant(now_ms, id, pid, tokens);
                }
                (decision, now_ms)
            });
            let (decision, now_ms) = match looked {
                Ok(looked) => looked,
                Err(_) if self.limits.is_empty() => {
                    permit.limiter = None;
                    return Ok(permit);
                }
                Err(err) => return Err(err),
            };
            match decision {
                Decision::Go => return Ok(permit),
                Decision::Never { why, resets_at_ms } => {
                    return Err(LimitError::Exhausted {
                        key: self.key.clone(),
                        why,
                        resets_at_ms,
                        resets_at: local_rfc3339(resets_at_ms),
                    });
                }
                Decision::Wait { until_ms, why } => {
                    if reported.as_deref() != Some(why.as_str()) {
                        on_wait(until_ms, &why);
                        reported = Some(why);
                    }
                    let pause = if until_ms > now_ms {
                        (until_ms - now_ms).min(POLL_MS)
                    } else {
                        POLL_MS
                    };
                    let pause = pause + fastrand::u64(0..=JITTER_MS);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        }
    }

    /// A server said to slow down: every request for this key waits until `until_ms`.
    pub fn block_until(&self, until_ms: u64) {
        // Best effort: the server will say so again if this could not be recorded.
        let _ = self.with_state(|window, _| window.block_until(until_ms));
    }

    /// Runs `f` on the shared window and the current time under the lock, then writes the
    /// window back atomically. The lock is held only for this read-modify-write of a small
    /// file, which is why blocking on it inside async code is fine.
    fn with_state<R>(&self, f: impl FnOnce(&mut Window, u64) -> R) -> Result<R, LimitError> {
        let error = state_error;
        let dir = self
            .state
            .parent()
            .expect("the state file is joined to a directory");
        fs::create_dir_all(dir).map_err(error(dir))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(error(&self.lock))?;
        let _lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| error(&self.lock)(io::Error::from(errno)))?;
        let mut window = self.load().map_err(error(&self.state))?;
        let result = f(&mut window, now_ms());
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(error(dir))?;
        // One write: `to_writer` on an unbuffered file would make a system call per token.
        let bytes = serde_json::to_vec(&window)
            .map_err(io::Error::other)
            .map_err(error(dir))?;
        io::Write::write_all(&mut temp, &bytes).map_err(error(temp.path()))?;
        temp.persist(&self.state)
            .map_err(|e| error(&self.state)(e.error))?;
        Ok(result)
    }

    /// The shared window; a missing file is an empty one, and a corrupt one is kept aside
    /// as `.corrupt` and replaced by an empty one.
    fn load(&self) -> io::Result<Window> {
        match fs::read(&self.state) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                let _ = fs::rename(&self.state, self.state.with_extension("json.corrupt"));
                Window::default()
            })),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Window::default()),
            Err(err) => Err(err),
        }
    }
}

/// Wraps an I/O error on `path` of the shared state.
fn state_error(path: &Path) -> impl FnOnce(io::Error) -> LimitError + '_ {
    move |source| LimitError::State {
        path: path.to_owned(),
        source,
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Whether `pid` runs: signal 0 reaches it, or it exists but belongs to someone else.
fn process_alive(pid: u32) -> bool {
    match i32::try_from(pid) {
        // 0 and negative pids name process groups, never one process.
        Ok(raw) if raw > 0 => matches!(kill(Pid::from_raw(raw), None), Ok(()) | Err(Errno::EPERM)),
        _ => false,
    }
}

/// `at_ms` in local time as RFC 3339, through gix's time-zone support (jiff); in UTC if
/// the local time cannot be computed.
fn local_rfc3339(at_ms: u64) -> String {
    let now = gix::date::Zoned::now();
    let delta = i128::from(at_ms) - i128::from(now.timestamp().as_millisecond());
    let shift = Duration::from_millis(u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX));
    let at = if delta >= 0 {
        now.checked_add(shift)
    } else {
        now.checked_sub(shift)
    };
    match at {
        Ok(at) => at.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        Err(_) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
        }
    }
}

#[cfg(test)]
mod tests;
