//! The run: its id, where its files live, its persisted state, and the pipeline that takes it
//! from worktrees to a ranked result.

mod attempt;
pub mod layout;
mod peers;
pub mod pipeline;
mod scoring;
mod session;
pub mod state;
pub mod trash;

use std::path::PathBuf;

use crate::git::GitError;

/// Errors of the run lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("no run `{run}`")]
    UnknownRun { run: String },
    #[error("run {run} has no agent `{agent}`")]
    UnknownAgent { run: String, agent: String },
    #[error("{0}")]
    Usage(String),
    #[error("interrupted")]
    Interrupted,
    #[error("run {run} is still running (process {pid})")]
    Busy { run: String, pid: u32 },
    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read run state {path}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl RunError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> RunError {
        let path = path.into();
        move |source| RunError::Io { what, path, source }
    }
}

/// The current UTC time: date, time of day, and the time since the epoch.
struct Utc {
    ymd: (i64, u32, u32),
    hms: (u64, u64, u64),
    now: std::time::Duration,
}

fn utc_now() -> Utc {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let rem = secs % 86_400;
    Utc {
        ymd: civil_from_days((secs / 86_400) as i64),
        hms: (rem / 3600, rem / 60 % 60, rem % 60),
        now,
    }
}

/// A new run id: UTC time to the second (sortable, readable) and 4 random hex digits.
pub fn new_run_id() -> String {
    let Utc {
        ymd: (y, m, d),
        hms: (h, mi, s),
        now,
    } = utc_now();
    let salt = (now.subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{y:04}{m:02}{d:02}-{h:02}{mi:02}{s:02}-{salt:04x}")
}

/// The current UTC time as RFC 3339 with milliseconds, `2026-11-22T01:40:00.123Z`.
pub fn rfc3339_now() -> String {
    let Utc {
        ymd: (y, m, d),
        hms: (h, mi, s),
        now,
    } = utc_now();
    format!(
        "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_778), (2026, 11, 21));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn run_ids_sort_by_time_and_are_ref_safe() {
        let id = new_run_id();
        assert_eq!(id.len(), 20, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
