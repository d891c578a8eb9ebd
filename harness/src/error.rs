//! Typed errors for the harness. Each variant keeps the errno and the name of what failed.

use std::path::PathBuf;

use nix::errno::Errno;

use crate::resource::Exhausted;

/// Result alias for harness operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the harness itself can fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `call` names it with its arguments.
    #[error("{call} failed")]
    Sys {
        /// The call, e.g. `unshare(CLONE_NEWNET)`.
        call: String,
        /// The errno the kernel returned.
        #[source]
        source: Errno,
    },
    /// Reading or writing a file failed.
    #[error("{op} {path} failed")]
    Io {
        /// What was being done: `open`, `read`, `write`, `create`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink request failed: {what}")]
    Netlink {
        /// The request, e.g. `set lo up`.
        what: String,
        /// The rtnetlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// The sysctl does not exist on this kernel (the knob is absent).
    #[error("sysctl {name} does not exist on this kernel (no {})", path.display())]
    SysctlAbsent {
        /// Dotted sysctl name.
        name: String,
        /// The /proc/sys path that is missing.
        path: PathBuf,
    },
    /// The kernel rejected a value written to a sysctl.
    #[error("the kernel rejected {name}={value}: {errno}")]
    SysctlRejected {
        /// Dotted sysctl name.
        name: String,
        /// The value that was written.
        value: String,
        /// The errno returned by write(2), usually EINVAL.
        errno: Errno,
    },
    /// A `net.*` sysctl that a network namespace shows but whose write acts beyond it (on
    /// the host, or on every namespace); a lab may not write it.
    #[error("refusing to write {name}: {reason}; a lab may only write sysctls the kernel keeps per network namespace")]
    SysctlGlobal {
        /// Dotted sysctl name.
        name: String,
        /// What the write would do beyond the lab.
        reason: String,
    },
    /// The sysctl name is not a `net.*` sysctl; labs only touch their own namespace.
    #[error("refusing sysctl {name:?}: only net.* sysctls belong to a network namespace")]
    NotNetSysctl {
        /// The rejected name.
        name: String,
    },
    /// An iptables invocation inside a lab failed.
    #[error("iptables {args} in {netns} failed: {message}")]
    Firewall {
        /// The iptables arguments.
        args: String,
        /// The namespace name.
        netns: String,
        /// What iptables said.
        message: String,
    },
    /// A program the harness needs is not installed.
    #[error("{program} is not installed: install the Debian package {package} (scripts/install-tools does it)")]
    ToolMissing {
        /// The executable name.
        program: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// Something the lab needs does not work in a user namespace (labs without root):
    /// the reason names it and the fix.
    #[error("{reason}")]
    Rootless {
        /// What fails without root, and what to do.
        reason: String,
    },
    /// A lab was asked for something that cannot work as asked; the reason says why.
    #[error("the lab cannot be built as asked: {reason}")]
    Invalid {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Spawning a command failed.
    #[error("cannot start {command_line}")]
    Spawn {
        /// The full command line.
        command_line: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A socket or other system call on an open descriptor failed; `call` names it.
    #[error("{call} failed")]
    Os {
        /// The call, e.g. `socket(AF_INET, SOCK_STREAM)`.
        call: String,
        /// The underlying error, with its errno.
        #[source]
        source: std::io::Error,
    },
    /// A harness thread could not be started (threads or memory ran out).
    #[error("cannot start thread {thread}")]
    ThreadSpawn {
        /// The thread's name.
        thread: String,
        /// What `clone(2)` said.
        #[source]
        source: std::io::Error,
    },
    /// Something a lab needs is missing on this machine (no `/dev/net/tun` in a
    /// container, say): whatever needs it is skipped with this reason, not failed.
    #[error("{what} is unavailable here: {reason}")]
    Unavailable {
        /// What cannot be had, e.g. `the wire (a TUN device)`.
        what: String,
        /// Why, and how to get it.
        reason: String,
    },
    /// A harness thread panicked or vanished.
    #[error("lab thread {thread} ended abnormally: {reason}")]
    Thread {
        /// The thread name.
        thread: String,
        /// What happened.
        reason: String,
    },
}

impl Error {
    /// Builds [`Error::Sys`] from a call description and an errno.
    pub fn sys(call: impl Into<String>, source: Errno) -> Self {
        Self::Sys {
            call: call.into(),
            source,
        }
    }

    /// Builds [`Error::Os`].
    pub fn os(call: impl Into<String>, source: std::io::Error) -> Self {
        Self::Os {
            call: call.into(),
            source,
        }
    }

    /// Builds [`Error::ThreadSpawn`].
    pub fn thread_spawn(thread: impl Into<String>, source: std::io::Error) -> Self {
        Self::ThreadSpawn {
            thread: thread.into(),
            source,
        }
    }

    /// The resource the harness ran out of, when that is why this failed: an allocating
    /// call that got EMFILE, ENFILE, ENOMEM or ENOSPC, or a thread or process creation
    /// that got EAGAIN. Such a failure says nothing about the behaviour under test.
    pub fn exhausted(&self) -> Option<Exhausted> {
        match self {
            Self::Sys { source, .. } => Exhausted::of_errno(*source),
            Self::Io { source, .. } | Self::Os { source, .. } => Exhausted::of_io(source),
            Self::Spawn { source, .. } | Self::ThreadSpawn { source, .. } => {
                Exhausted::of_spawn(source)
            }
            Self::SysctlRejected { errno, .. } => Exhausted::of_errno(*errno),
            _ => None,
        }
    }

    /// Builds [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
