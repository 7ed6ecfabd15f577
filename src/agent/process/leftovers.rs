//! Processes a supervised job left running: found in `/proc` by a mark they carry, then
//! killed until none is left.
//!
//! Killing the job's process group is not enough: a process can leave it (`setsid`, a
//! double fork), and it is then re-parented to init with nothing tying it to the job but
//! what it inherited. What every one of them inherits is the environment, so each job gets
//! a variable of its own ([`JOB_VAR`], a token unique to the job), and a job's leftovers
//! are the live processes whose `/proc/<pid>/environ` carries it, or that are still in the
//! job's process group (which also catches one that cleared its environment but did not
//! leave the group). `clean` uses the same search with `MASSGEN_RUN=<run>` to stop what a
//! killed `git massgen` left behind.
//!
//! This module never waits for a process (`waitpid`): the processes it kills are not our
//! children (the job's leader is reaped by the supervisor before the search starts, and
//! orphans belong to init), and a stray `waitpid` would steal an exit status from tokio or
//! std. A process counts as gone once `/proc` shows it as a zombie or not at all.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The variable that marks every process of one supervised job.
pub const JOB_VAR: &str = "MASSGEN_JOB";

/// How long [`stop`] keeps killing before it gives up on processes that do not die (a
/// process in uninterruptible sleep can take a while to act on SIGKILL).
const STOP_LIMIT: Duration = Duration::from_secs(2);

/// Pause between two searches while killed processes are still dying.
const RESCAN: Duration = Duration::from_millis(5);

/// What marks the processes to stop.
#[derive(Debug, Clone)]
pub struct Mark {
    /// `NAME=value` as it appears in `/proc/<pid>/environ`.
    pub env: String,
    /// Also every process in this process group, whatever its environment.
    pub pgid: Option<i32>,
}

impl Mark {
    /// A fresh mark for one job: `MASSGEN_JOB=<pid>-<counter>-<random>`, unique to this
    /// process and, through the random part, to this process's lifetime.
    pub fn new_job() -> Mark {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Mark {
            env: format!(
                "{JOB_VAR}={}-{n}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            ),
            pgid: None,
        }
    }

    /// The processes of a run: everything started with `MASSGEN_RUN=<run>`.
    pub fn run(run: &str) -> Mark {
        Mark {
            env: format!("MASSGEN_RUN={run}"),
            pgid: None,
        }
    }

    /// The variable's value, to put in a job's environment.
    pub fn value(&self) -> &str {
        self.env.split_once('=').map_or("", |(_, v)| v)
    }

    fn matches(&self, stat: &Stat, environ: impl FnOnce() -> Option<Vec<u8>>) -> bool {
        self.pgid.is_some_and(|g| g > 1 && stat.pgid == g)
            || environ().is_some_and(|env| environ_has(&env, &self.env))
    }
}

/// A process that was still running and was killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Its process id (gone now, and free to be reused).
    pub pid: i32,
    /// Its command name (as in `/proc/<pid>/comm`, at most 15 bytes).
    pub name: String,
    /// Its process group when it was found.
    pub pgid: i32,
}

/// Kills every live process `mark` matches, and their process groups (unless a group is
/// ours), searching again until none is left or [`STOP_LIMIT`] has passed, so that a
/// process forking while it is killed does not escape. Returns each process killed once,
/// in the order found. Blocking; a few milliseconds when there is nothing to kill.
pub fn stop(mark: &Mark) -> Vec<Leftover> {
    let me = std::process::id() as i32;
    let our_group = nix::unistd::getpgrp().as_raw();
    let deadline = Instant::now() + STOP_LIMIT;
    let mut stopped: Vec<(Leftover, u64)> = Vec::new();
    loop {
        let found = find(mark, me);
        if found.is_empty() {
            break;
        }
        for (pid, stat) in found {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            if stat.pgid > 1 && stat.pgid != our_group {
                let _ = killpg(Pid::from_raw(stat.pgid), Signal::SIGKILL);
            }
            if !stopped
                .iter()
                .any(|(l, start)| l.pid == pid && *start == stat.start)
            {
                stopped.push((
                    Leftover {
                        pid,
                        name: stat.name,
                        pgid: stat.pgid,
                    },
                    stat.start,
                ));
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(RESCAN);
    }
    stopped.into_iter().map(|(l, _)| l).collect()
}

/// The live processes (not zombies) other than `me` that `mark` matches.
fn find(mark: &Mark, me: i32) -> Vec<(i32, Stat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        let Some(stat) = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        else {
            continue;
        };
        if !stat.alive() {
            continue;
        }
        if mark.matches(&stat, || std::fs::read(dir.join("environ")).ok()) {
            found.push((pid, stat));
        }
    }
    found
}

/// Whether a NUL-separated environment block holds `var` (`NAME=value`) exactly.
fn environ_has(environ: &[u8], var: &str) -> bool {
    environ.split(|b| *b == 0).any(|kv| kv == var.as_bytes())
}

/// Whether the process at `/proc/<pid>` runs with `var` (`NAME=value`) in its environment.
pub(super) fn process_has(pid: i32, var: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| environ_has(&env, var))
}

/// What we read from `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stat {
    name: String,
    /// `R`, `S`, `D`, `Z`, ...
    state: char,
    pgid: i32,
    /// Clock ticks after boot: with the pid, names one process even if the pid is reused.
    start: u64,
}

impl Stat {
    /// Not a zombie, not dead: it can still run and write.
    fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid pgrp session ... starttime ...`. The
/// command name may hold spaces and parentheses, so the fields are counted after its last
/// `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (head, rest) = text.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), pgrp 5, starttime 22.
    Some(Stat {
        name,
        state: fields.first()?.chars().next()?,
        pgid: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// "stopped 1 process {who} left running (pid 12: sleep)", or `None` when nothing was.
pub fn describe(left: &[Leftover], who: &str) -> Option<String> {
    const NAMED: usize = 5;
    if left.is_empty() {
        return None;
    }
    let mut named: Vec<String> = left
        .iter()
        .take(NAMED)
        .map(|l| format!("pid {}: {}", l.pid, l.name))
        .collect();
    if left.len() > NAMED {
        named.push(format!("{} more", left.len() - NAMED));
    }
    let noun = if left.len() == 1 {
        "process"
    } else {
        "processes"
    };
    Some(format!(
        "stopped {} {noun} {who} left running ({})",
        left.len(),
        named.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (sleep) S 1 4240 4240 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 987654 2000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = parse_stat(STAT).unwrap();
        assert_eq!(
            stat,
            Stat {
                name: "sleep".into(),
                state: 'S',
                pgid: 4240,
                start: 987654,
            }
        );
        assert!(stat.alive());
        let odd = STAT.replace("(sleep) S", "(a) b (c) Z");
        let stat = parse_stat(&odd).unwrap();
        assert_eq!(stat.name, "a) b (c");
        assert_eq!(stat.pgid, 4240);
        assert!(!stat.alive());
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn the_mark_is_a_whole_variable_in_the_environment() {
        let env = b"PATH=/bin\0MASSGEN_JOB=1-2-ab\0HOME=/h\0";
        assert!(environ_has(env, "MASSGEN_JOB=1-2-ab"));
        assert!(!environ_has(env, "MASSGEN_JOB=1-2-a"));
        assert!(!environ_has(env, "MASSGEN_JOB=1-2-abc"));
        assert!(!environ_has(b"", "MASSGEN_JOB=1-2-ab"));
        let stat = parse_stat(STAT).unwrap();
        let by_env = Mark {
            env: "MASSGEN_JOB=1-2-ab".into(),
            pgid: None,
        };
        assert!(by_env.matches(&stat, || Some(env.to_vec())));
        assert!(!by_env.matches(&stat, || None));
        let by_group = Mark {
            pgid: Some(4240),
            ..by_env.clone()
        };
        assert!(by_group.matches(&stat, || None));
        let other_group = Mark {
            pgid: Some(1),
            ..by_env
        };
        assert!(!other_group.matches(&stat, || Some(b"A=1\0".to_vec())));
    }

    #[test]
    fn job_marks_differ_and_name_the_variable() {
        let (a, b) = (Mark::new_job(), Mark::new_job());
        assert_ne!(a.env, b.env);
        assert!(a.env.starts_with("MASSGEN_JOB="));
        assert_eq!(a.env, format!("{JOB_VAR}={}", a.value()));
        assert_eq!(Mark::run("r1").env, "MASSGEN_RUN=r1");
    }

    #[test]
    fn leftovers_are_described_with_their_pids() {
        let left = |n: i32| -> Vec<Leftover> {
            (1..=n)
                .map(|pid| Leftover {
                    pid,
                    name: "sleep".into(),
                    pgid: 1,
                })
                .collect()
        };
        assert_eq!(describe(&[], "the agent"), None);
        assert_eq!(
            describe(&left(1), "the agent").unwrap(),
            "stopped 1 process the agent left running (pid 1: sleep)"
        );
        assert_eq!(
            describe(&left(7), "the test command").unwrap(),
            "stopped 7 processes the test command left running (pid 1: sleep, pid 2: sleep, \
             pid 3: sleep, pid 4: sleep, pid 5: sleep, 2 more)"
        );
    }

    /// A process outside the group, found by its environment, is killed and reported once.
    #[test]
    fn stop_kills_a_marked_process_in_a_session_of_its_own() {
        let mark = Mark::new_job();
        let mut child = std::process::Command::new("setsid")
            .args(["sleep", "30"])
            .env(JOB_VAR, mark.value())
            .spawn()
            .expect("setsid runs");
        // Wait until it has exec'd sleep with the mark (setsid may fork first).
        let started = Instant::now();
        while !find(&mark, 0).iter().any(|(_, s)| s.name == "sleep") {
            assert!(started.elapsed() < Duration::from_secs(10), "never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = stop(&mark);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].name, "sleep");
        assert!(find(&mark, 0).is_empty());
        let _ = child.wait();
        assert!(stop(&mark).is_empty());
    }
}
