//! Kill points: named places where the process kills itself with `SIGKILL` when the
//! environment asks for it, so that tests can reproduce a crash at an exact instant instead
//! of by timing luck.
//!
//! `MASSGEN_TEST_KILL_AT=worktree-registered,merge-committed` kills the process the first
//! time it reaches either point. The points are listed in `ARCHITECTURE.md`; they cost one
//! environment lookup each and do nothing unless the variable is set.

/// The environment variable that names the kill points.
pub const ENV: &str = "MASSGEN_TEST_KILL_AT";

/// Kills the process (`SIGKILL`, no clean-up, as `kill -9` would) when `point` is one of the
/// points named in [`ENV`].
pub fn reached(point: &str) {
    let Some(points) = std::env::var_os(ENV) else {
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
