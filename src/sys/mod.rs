//! The ground floor: what every layer may use and which imports nothing of this crate.
//! Writing a file whole or not at all, whether a process still runs, the clock and run ids,
//! and kill points for crash tests.

pub mod copy;
pub mod overlay;

use std::io::Write;
use std::path::Path;

/// What `path` takes on disk (allocated blocks, as `du` counts them), with everything in it
/// when it is a directory; links are not followed. Data shared copy-on-write with another
/// file is counted in full.
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    own + std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}

/// A size as people read it: `512 B`, `3.4 MiB`, `1.2 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A temporary file in `dir` holding `bytes`, flushed to disk, with `mode` when given;
/// removed when dropped unless persisted. Its name starts with `prefix`.
pub fn temp_with(
    dir: &Path,
    prefix: &str,
    bytes: &[u8],
    mode: Option<std::fs::Permissions>,
) -> std::io::Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new().prefix(prefix).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if let Some(mode) = mode {
        tmp.as_file().set_permissions(mode)?;
    }
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers see the old or the new content, never a mix, and a kill leaves no half file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_with(dir, ".tmp", bytes, None)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether process `pid` is alive and is a git-massgen process (guards against pid reuse
/// where /proc can tell).
pub fn process_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    };
    if !alive {
        return false;
    }
    // A zombie (killed, not yet reaped by its parent) is not running anything.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some(state) = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
        && (state == "Z" || state == "X")
    {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("massgen"),
        Err(_) => true,
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

/// Whether `name` has the shape of a run id, `20261206-121530-ab12`.
pub fn is_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 15 => *c == b'-',
            16..=19 => c.is_ascii_hexdigit(),
            _ => c.is_ascii_digit(),
        })
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

/// A name part no other process or call makes: the process id and the clock's nanoseconds.
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `count` blocks of `size` consecutive TCP ports, every port free on 127.0.0.1 now (it
/// could be bound), the blocks apart from each other; searched from a start that `seed`
/// spreads, so that runs side by side rarely pick the same blocks. Fewer blocks when the
/// range is exhausted.
pub fn free_port_blocks(count: usize, size: u16, seed: u64) -> Vec<u16> {
    const LOW: u32 = 20_000;
    const HIGH: u32 = 60_000;
    let size32 = u32::from(size.max(1));
    let slots = (HIGH - LOW) / size32;
    let mut out = Vec::new();
    for i in 0..slots {
        if out.len() == count {
            break;
        }
        let slot = (seed as u32).wrapping_add(i) % slots;
        let first = (LOW + slot * size32) as u16;
        let free = (0..size).all(|k| std::net::TcpListener::bind(("127.0.0.1", first + k)).is_ok());
        if free {
            out.push(first);
        }
    }
    out
}

/// The environment variable that names the kill points.
pub const KILL_AT: &str = "MASSGEN_TEST_KILL_AT";

/// Waits for Ctrl-C, SIGTERM or SIGHUP (Ctrl-C only where the others cannot be listened
/// for): what stops a review or a planner, which then clean up.
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(mut term), Ok(mut hup)) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A kill point: the process kills itself with `SIGKILL` (no clean-up, as `kill -9` would)
/// when `point` is one of the names in [`KILL_AT`] (comma-separated), so that tests place a
/// crash at an exact instant instead of by timing luck. One environment lookup otherwise.
pub fn kill_point(point: &str) {
    let Some(points) = std::env::var_os(KILL_AT) else {
        return;
    };
    if points
        .to_string_lossy()
        .split(',')
        .any(|p| p.trim() == point)
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught; the process is gone before this line.
        std::process::abort();
    }
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
        assert!(is_run_id(&id), "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(!is_run_id("20261206-121530-ab1g"));
        assert!(!is_run_id("reviews"));
    }

    #[test]
    fn port_blocks_are_free_and_apart() {
        let blocks = free_port_blocks(8, 10, 12_345);
        assert_eq!(blocks.len(), 8);
        let mut sorted = blocks.clone();
        sorted.sort_unstable();
        for w in sorted.windows(2) {
            assert!(w[1] - w[0] >= 10, "{blocks:?}");
        }
        // A port in use is never handed out.
        let taken = std::net::TcpListener::bind(("127.0.0.1", blocks[0] + 3)).unwrap();
        let again = free_port_blocks(8, 10, 12_345);
        assert!(!again.contains(&blocks[0]), "{again:?}");
        drop(taken);
    }

    #[test]
    fn write_atomic_replaces_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
