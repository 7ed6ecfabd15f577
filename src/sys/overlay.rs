//! Copy-on-write directories on Linux: an unprivileged overlayfs mount in a private user
//! and mount namespace.
//!
//! [`enter`] moves the calling process into a new user namespace (keeping its own uid and
//! gid inside, like `unshare --map-current-user`) and a new mount namespace, then mounts
//! an overlay at `target`: reads come from `lower` unless `upper` has the file, and every
//! write lands in `upper` only. The mount exists in that namespace alone, so it goes away
//! with the last process in it; nothing has to be unmounted and nothing else sees it.
//! Deleting a file of `lower` leaves a *whiteout* in `upper` (a character device 0:0), and
//! a directory that replaces one of `lower` is marked opaque (`user.overlay.opaque`).
//!
//! A process can enter a new user namespace only while it has one thread, so `enter` runs
//! in the sandbox trampoline before it `exec`s; `sandbox::overlay_probe` asks a fresh
//! trampoline process, which runs [`probe_here`], so that the caller's own threads do not
//! matter.

use std::path::{Path, PathBuf};

/// Set by tests only: user namespaces are treated as disabled, as on a locked-down kernel.
pub const NO_USERNS_VAR: &str = "MASSGEN_TEST_NO_USERNS";

/// The trampoline's argument that runs the overlay probe ([`probe_here`]).
pub const PROBE_ARG: &str = "--overlay-probe";

/// The four directories of one overlay mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Read-only layer: what the merged tree starts as.
    pub lower: PathBuf,
    /// Where every change lands (new and changed files, whiteouts for deletions).
    pub upper: PathBuf,
    /// overlayfs's scratch directory: empty, on the same file system as `upper`.
    pub work: PathBuf,
    /// Where the merged tree appears (in the new mount namespace only).
    pub target: PathBuf,
}

/// Why [`enter`] failed; each names the step, the errno and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("copy-on-write worktrees need Linux")]
    Unsupported,
    #[error(
        "the overlay's {what} path `{}` holds `,`, `:` or `\\`, which overlayfs options \
         cannot carry (or is not UTF-8); use a directory without them",
        path.display()
    )]
    BadPath { what: &'static str, path: PathBuf },
    #[error("cannot create a user namespace (unshare: {errno}): {hint}")]
    Unshare {
        errno: nix::Error,
        hint: &'static str,
    },
    #[error("cannot write {file} in the new user namespace: {source}; {hint}")]
    IdMap {
        file: &'static str,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("cannot make the mounts private in the new mount namespace: {errno}")]
    Private { errno: nix::Error },
    #[error("cannot mount the overlay at {target:?} (mount: {errno}): {hint}")]
    Mount {
        target: PathBuf,
        errno: nix::Error,
        hint: &'static str,
    },
}

const USERNS_DISABLED: &str = "unprivileged user namespaces are disabled: sysctl \
     kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0 / Ubuntu: sysctl \
     kernel.apparmor_restrict_unprivileged_userns=0";

impl Overlay {
    /// The `mount -t overlay` options: `lowerdir=…,upperdir=…,workdir=…,userxattr`.
    pub fn options(&self) -> Result<String, OverlayError> {
        let mut out = String::new();
        for (what, key, path) in [
            ("lower", "lowerdir", &self.lower),
            ("upper", "upperdir", &self.upper),
            ("work", "workdir", &self.work),
        ] {
            let text = path.to_str().filter(|s| !s.contains([',', ':', '\\']));
            let Some(text) = text else {
                return Err(OverlayError::BadPath {
                    what,
                    path: path.clone(),
                });
            };
            out.push_str(&format!("{key}={text},"));
        }
        if self.target.to_str().is_none() {
            return Err(OverlayError::BadPath {
                what: "target",
                path: self.target.clone(),
            });
        }
        out.push_str("userxattr");
        Ok(out)
    }
}

/// Enters a new user and mount namespace and mounts `overlay` there. Call it in a process
/// with a single thread (the kernel refuses otherwise), before it `exec`s what should see
/// the merged tree; the process's working directory still points at what lay under the
/// mount, so `chdir` to it again.
#[cfg(target_os = "linux")]
pub fn enter(overlay: &Overlay) -> Result<(), OverlayError> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    let options = overlay.options()?;
    if std::env::var_os(NO_USERNS_VAR).is_some() {
        return Err(OverlayError::Unshare {
            errno: nix::Error::EPERM,
            hint: USERNS_DISABLED,
        });
    }
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|errno| {
        OverlayError::Unshare {
            errno,
            hint: match errno {
                nix::Error::EINVAL => {
                    "the process has several threads (a bug: enter from the trampoline only)"
                }
                nix::Error::ENOSPC => "user.max_user_namespaces is 0 or reached: raise it",
                _ => USERNS_DISABLED,
            },
        }
    })?;
    let write = |file: &'static str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|source| OverlayError::IdMap {
            file,
            source,
            hint: USERNS_DISABLED,
        })
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1"))?;
    write("gid_map", format!("{gid} {gid} 1"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|errno| OverlayError::Private { errno })?;
    mount(
        Some("overlay"),
        &overlay.target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|errno| OverlayError::Mount {
        target: overlay.target.clone(),
        errno,
        hint: match errno {
            nix::Error::ENOENT | nix::Error::ENOTDIR => "a directory of the overlay is missing",
            nix::Error::EPERM => {
                "this kernel does not let unprivileged users mount overlayfs (Linux 5.11 or \
                 later needed) or a security module forbids it"
            }
            _ => {
                "overlayfs refused the directories: upper and work must be empty-or-overlay \
                 directories on one file system with user extended attributes (not NFS), \
                 Linux 5.11 or later"
            }
        },
    })?;
    Ok(())
}

/// Overlays are Linux's.
#[cfg(not(target_os = "linux"))]
pub fn enter(_overlay: &Overlay) -> Result<(), OverlayError> {
    Err(OverlayError::Unsupported)
}

/// The probe's own work, in the trampoline process: an overlay over temporary directories,
/// a file written through it found in the upper directory only. Leaves nothing behind.
pub fn probe_here() -> Result<(), String> {
    let tmp = tempfile::Builder::new()
        .prefix("massgen-overlay-probe")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let dir = |name: &str| -> Result<PathBuf, String> {
        let p = tmp.path().join(name);
        std::fs::create_dir(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        Ok(p)
    };
    let overlay = Overlay {
        lower: dir("lower")?,
        upper: dir("upper")?,
        work: dir("work")?,
        target: dir("target")?,
    };
    let checked = (|| {
        std::fs::write(overlay.lower.join("seen"), "lower\n").map_err(|e| e.to_string())?;
        enter(&overlay).map_err(|e| e.to_string())?;
        let seen = std::fs::read_to_string(overlay.target.join("seen")).unwrap_or_default();
        if seen != "lower\n" {
            return Err("the overlay does not show its lower directory".to_owned());
        }
        std::fs::write(overlay.target.join("written"), "upper\n")
            .map_err(|e| format!("cannot write through the overlay: {e}"))?;
        if !overlay.upper.join("written").exists() || overlay.lower.join("written").exists() {
            return Err("a write through the overlay did not land in its upper directory".into());
        }
        Ok(())
    })();
    release(&overlay);
    checked
}

/// Unmounts `overlay` (in this namespace, where it is mounted) and makes its scratch
/// directory removable: overlayfs leaves `work/work` with mode 000.
pub fn release(overlay: &Overlay) {
    #[cfg(target_os = "linux")]
    let _ = nix::mount::umount2(&overlay.target, nix::mount::MntFlags::MNT_DETACH);
    make_work_removable(&overlay.work);
}

/// overlayfs creates `work/work` with mode 000, which only root may empty; gives it back to
/// its owner so that `work` can be removed.
pub fn make_work_removable(work: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let inner = work.join("work");
    if inner.is_dir() {
        let _ = std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(lower: &str) -> Overlay {
        Overlay {
            lower: lower.into(),
            upper: "/t/up".into(),
            work: "/t/work".into(),
            target: "/t/merged dir".into(),
        }
    }

    #[test]
    fn options_name_the_three_layers_and_refuse_what_they_cannot_carry() {
        assert_eq!(
            overlay("/t/low er").options().unwrap(),
            "lowerdir=/t/low er,upperdir=/t/up,workdir=/t/work,userxattr"
        );
        for bad in ["/t/a,b", "/t/a:b", "/t/a\\b"] {
            let err = overlay(bad).options().unwrap_err().to_string();
            assert!(err.contains("lower path"), "{err}");
            assert!(err.contains(bad), "{err}");
        }
    }
}
