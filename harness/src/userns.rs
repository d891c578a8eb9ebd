//! Labs without root: a user namespace of this process's own.
//!
//! A network namespace created inside a user namespace gives its creator CAP_NET_ADMIN
//! (and CAP_NET_RAW, CAP_SYS_ADMIN) over that namespace only: iptables rules, sysctls,
//! links and packet capture all work in the lab, and the host's namespace stays out of
//! reach by construction. So when the process lacks the capabilities, it enters a user
//! namespace of its own, with the calling user mapped to root in it, and builds its labs
//! there exactly as root would.
//!
//! Where: the whole process, early. `unshare(CLONE_NEWUSER)` is refused to a process with
//! more than one thread (EINVAL), and so is `setns` into a user namespace; a lab thread
//! can therefore not enter one later on its own. [`enter_if_unprivileged`] is called at
//! the top of `main` (the `netclaim` binary, and the test binaries that build labs),
//! while the process is single-threaded; every thread started afterwards, every lab and
//! every tool lives in that user namespace. A test harness that is already
//! multi-threaded (libtest) cannot do this: such tests re-run themselves in a child made
//! with `unshare` in its `pre_exec` (a forked child is single-threaded).
//!
//! What cannot work in a user namespace is named where it fails (see the README's mode
//! table): `/run/netns` names (`--name-labs`: the host's mount namespace), sysctls the
//! kernel keeps read-only outside the initial user namespace (`net.core.somaxconn` before
//! 6.3), tools that switch to a user that is not mapped (nginx's default worker user,
//! which the nginx claim sets to root instead).

use std::sync::OnceLock;

use nix::errno::Errno;

/// How this process builds labs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// With the capabilities of the initial user namespace (root, or a privileged
    /// container).
    Root,
    /// In a user namespace of its own: `uid` and `gid` (in the initial namespace) mapped
    /// to root.
    UserNamespace {
        /// The calling user.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// Already inside a user namespace someone else made (`unshare -Ur`, a rootless
    /// container) with the capabilities there.
    InheritedUserNamespace,
    /// Neither: no capabilities, and no user namespace could be entered (a setting or a
    /// seccomp profile blocks them, as [`unavailable`] says). Every lab claim is skipped.
    None,
}

impl Mode {
    /// How reports name it: `root`, `user namespace (uid 1000 as root)`.
    pub fn describe(self) -> String {
        match self {
            Self::Root => "root".into(),
            Self::UserNamespace { uid, .. } => format!("user namespace (uid {uid} as root)"),
            Self::InheritedUserNamespace => "user namespace (inherited)".into(),
            Self::None => "none".into(),
        }
    }

    /// Whether labs live in a user namespace other than the initial one.
    pub fn rootless(self) -> bool {
        matches!(
            self,
            Self::UserNamespace { .. } | Self::InheritedUserNamespace
        )
    }
}

static MODE: OnceLock<Mode> = OnceLock::new();
static UNAVAILABLE: OnceLock<String> = OnceLock::new();

/// Why [`enter_if_unprivileged`] could not enter a user namespace, if it was tried and
/// failed (for the message of a missing privilege).
pub fn unavailable() -> Option<&'static str> {
    UNAVAILABLE.get().map(String::as_str)
}

/// The mode labs are built in: what [`enter_if_unprivileged`] decided, or, when nobody
/// called it, what this process is.
pub fn mode() -> Mode {
    *MODE.get_or_init(current_mode)
}

/// Whether this process's user namespace is the initial one (the host's).
pub fn in_initial_user_namespace() -> bool {
    // The initial user namespace maps the whole range 0..4294967295 onto itself.
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

fn current_mode() -> Mode {
    if in_initial_user_namespace() {
        Mode::Root
    } else {
        Mode::InheritedUserNamespace
    }
}

/// Why labs cannot be built without root here, with the setting that blocks them and the
/// fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The reason, in words a user can act on.
    pub reason: String,
}

/// Enters a user namespace of this process's own when it lacks the capabilities to build
/// labs; does nothing when it has them. Call it first thing in `main`, before any thread
/// exists. `Err` says why it could not, naming what blocks it and the fix.
pub fn enter_if_unprivileged() -> Result<Mode, Unavailable> {
    let entered = enter();
    if let Err(e) = &entered {
        let _ = UNAVAILABLE.set(e.reason.clone());
    }
    entered
}

fn enter() -> Result<Mode, Unavailable> {
    let entered = try_enter();
    if entered.is_err() {
        // No capabilities and no user namespace: reports say so ("mode": "none").
        let _ = MODE.set(Mode::None);
    }
    entered
}

fn try_enter() -> Result<Mode, Unavailable> {
    // The capabilities alone decide: a process that has them but may not write /proc/sys
    // (a container's read-only mount) gains nothing from a user namespace.
    if matches!(crate::privilege::capable(), Ok(Ok(()))) {
        let mode = current_mode();
        let _ = MODE.set(mode);
        return Ok(mode);
    }
    if let Some(n) = threads() {
        if n > 1 {
            return Err(Unavailable {
                reason: format!(
                    "this process already runs {n} threads, and a user namespace can only be \
                     entered by a single-threaded process: call userns::enter_if_unprivileged \
                     at the top of main"
                ),
            });
        }
    }
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    if let Err(errno) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        return Err(Unavailable {
            reason: blocked(errno, &Settings::read()),
        });
    }
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|e| Unavailable {
            reason: format!("entered a user namespace but could not write /proc/self/{file}: {e}"),
        })
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("gid_map", format!("0 {gid} 1\n"))?;
    // AppArmor's restriction (Ubuntu 23.10+) lets the unshare through and denies the
    // capabilities afterwards: try what a lab does first.
    if let Err(errno) = probe_netns() {
        return Err(Unavailable {
            reason: blocked(errno, &Settings::read()),
        });
    }
    let mode = Mode::UserNamespace { uid, gid };
    let _ = MODE.set(mode);
    Ok(mode)
}

/// Creates a network namespace on a scratch thread (and so drops it at once).
fn probe_netns() -> Result<(), Errno> {
    std::thread::Builder::new()
        .name("userns-probe".into())
        .spawn(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET))
        .map_err(|_| Errno::EAGAIN)?
        .join()
        .unwrap_or(Err(Errno::EINVAL))
}

fn threads() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// The settings that can keep an unprivileged user from creating a user namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `kernel.unprivileged_userns_clone` (Debian before 11, some hardened kernels).
    pub unprivileged_userns_clone: Option<String>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 and later).
    pub apparmor_restrict: Option<String>,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<String>,
}

impl Settings {
    /// Reads them from `/proc/sys` (absent knobs are `None`).
    pub fn read() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
        Self {
            unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
        }
    }
}

/// Why `unshare(CLONE_NEWUSER)` failed with `errno`, given the settings: the one that
/// blocks it, and the fix.
pub fn blocked(errno: Errno, s: &Settings) -> String {
    if s.unprivileged_userns_clone.as_deref() == Some("0") {
        return "unprivileged user namespaces are disabled by kernel.unprivileged_userns_clone=0: \
             enable them with sysctl -w kernel.unprivileged_userns_clone=1"
            .into();
    }
    if s.max_user_namespaces.as_deref() == Some("0") {
        return "user namespaces are disabled by user.max_user_namespaces=0: raise it with sysctl -w \
             user.max_user_namespaces=15000"
            .into();
    }
    if errno == Errno::ENOSPC {
        return format!(
            "the limit on user namespaces is reached (user.max_user_namespaces={}): raise it",
            s.max_user_namespaces.as_deref().unwrap_or("?")
        );
    }
    if s.apparmor_restrict.as_deref() == Some("1") {
        return "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns=1, Ubuntu 23.10 and later, GitHub's \
             ubuntu-24.04 runners): set it to 0 (sysctl -w \
             kernel.apparmor_restrict_unprivileged_userns=0) or give netclaim an AppArmor \
             profile with `userns,`"
            .into();
    }
    format!(
        "unshare(CLONE_NEWUSER) failed with {errno} ({}): a seccomp profile or the container \
         runtime forbids user namespaces here; allow them (e.g. docker run --security-opt \
         seccomp=unconfined)",
        errno.desc()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_blocking_setting_is_named_with_its_fix() {
        let s = |clone: Option<&str>, aa: Option<&str>, max: Option<&str>| Settings {
            unprivileged_userns_clone: clone.map(Into::into),
            apparmor_restrict: aa.map(Into::into),
            max_user_namespaces: max.map(Into::into),
        };
        let debian = blocked(Errno::EPERM, &s(Some("0"), None, Some("1000")));
        assert!(
            debian.contains("kernel.unprivileged_userns_clone=0"),
            "{debian}"
        );
        assert!(
            debian.contains("sysctl -w kernel.unprivileged_userns_clone=1"),
            "{debian}"
        );
        let zero = blocked(Errno::ENOSPC, &s(None, None, Some("0")));
        assert!(zero.contains("user.max_user_namespaces=0"), "{zero}");
        let ubuntu = blocked(Errno::EPERM, &s(None, Some("1"), Some("1000")));
        assert!(
            ubuntu.contains("kernel.apparmor_restrict_unprivileged_userns=1"),
            "{ubuntu}"
        );
        let seccomp = blocked(Errno::EPERM, &s(None, Some("0"), Some("1000")));
        assert!(seccomp.contains("seccomp"), "{seccomp}");
        assert!(seccomp.contains("EPERM"), "{seccomp}");
    }

    #[test]
    fn the_mode_of_this_process_is_known() {
        let m = mode();
        assert_eq!(m.rootless(), !in_initial_user_namespace());
        assert!(!m.describe().is_empty());
    }
}
