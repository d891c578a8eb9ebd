//! When the harness itself runs out of something (file descriptors, threads, processes,
//! memory, disk), it has failed: what it measured at that moment says nothing about the
//! kernel behaviour a claim is about. This module recognises those errnos and names the
//! resource with the limit in force, so a claim can end in `error` with a reason a user
//! can act on instead of reporting `refuted … observed EMFILE`.

use std::fmt;

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// A resource of this process or machine the harness ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// EMFILE: this process's file descriptor limit (RLIMIT_NOFILE).
    FileDescriptors,
    /// ENFILE: the system-wide file table (fs.file-max).
    SystemFiles,
    /// EAGAIN from clone/fork: threads or processes (a pids cgroup, RLIMIT_NPROC,
    /// kernel.threads-max).
    Tasks,
    /// ENOMEM.
    Memory,
    /// ENOSPC.
    Disk,
}

impl Exhausted {
    /// The resource an errno means when *the harness* got it from a call that allocates
    /// (socket, open, pipe, mmap, write). EAGAIN is not here: only a failed thread or
    /// process creation means [`Exhausted::Tasks`] (see [`Exhausted::of_spawn`]); from a
    /// nonblocking socket it is an observation.
    pub fn of_errno(errno: Errno) -> Option<Self> {
        match errno {
            Errno::EMFILE => Some(Self::FileDescriptors),
            Errno::ENFILE => Some(Self::SystemFiles),
            Errno::ENOMEM => Some(Self::Memory),
            Errno::ENOSPC => Some(Self::Disk),
            _ => None,
        }
    }

    /// The resource behind a failed thread or process creation.
    pub fn of_spawn(e: &std::io::Error) -> Option<Self> {
        match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::EAGAIN) => Some(Self::Tasks),
            Some(errno) => Self::of_errno(errno),
            None => None,
        }
    }

    /// The resource behind an I/O error, if any (see [`Exhausted::of_errno`]).
    pub fn of_io(e: &std::io::Error) -> Option<Self> {
        e.raw_os_error()
            .and_then(|raw| Self::of_errno(Errno::from_raw(raw)))
    }

    /// The errno's symbolic name.
    pub fn errno_name(self) -> &'static str {
        match self {
            Self::FileDescriptors => "EMFILE",
            Self::SystemFiles => "ENFILE",
            Self::Tasks => "EAGAIN",
            Self::Memory => "ENOMEM",
            Self::Disk => "ENOSPC",
        }
    }

    /// What ran out and the limit in force now, with how to raise it.
    pub fn describe(self) -> String {
        match self {
            Self::FileDescriptors => match getrlimit(Resource::RLIMIT_NOFILE) {
                Ok((soft, hard)) => {
                    let more = soft.saturating_mul(2).max(4096);
                    let fix = if soft < hard {
                        format!("raise it, e.g. `ulimit -n {}`", more.min(hard))
                    } else {
                        format!("raise the hard limit too (as root: `ulimit -Hn {more}; ulimit -n {more}`)")
                    };
                    format!(
                        "file descriptors (EMFILE): RLIMIT_NOFILE is {soft} (hard limit {hard}); {fix}"
                    )
                }
                Err(_) => "file descriptors (EMFILE): raise RLIMIT_NOFILE (`ulimit -n`)".into(),
            },
            Self::SystemFiles => format!(
                "the system-wide file table (ENFILE): fs.file-nr is {}; raise fs.file-max",
                read_trimmed("/proc/sys/fs/file-nr").unwrap_or_else(|| "unreadable".into())
            ),
            Self::Tasks => format!(
                "threads or processes (EAGAIN from clone): {}; raise the limit that is reached",
                task_limits()
            ),
            Self::Memory => format!(
                "memory (ENOMEM): {}",
                mem_available().unwrap_or_else(|| "MemAvailable unreadable".into())
            ),
            Self::Disk => format!(
                "disk space (ENOSPC) in {}: free some space or point TMPDIR elsewhere",
                std::env::temp_dir().display()
            ),
        }
    }
}

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The C library's messages for the errnos of [`Exhausted`], as tools print them
/// (`curl: (7) … Too many open files`), paired with the resource.
pub const TOOL_MESSAGES: &[(&str, Exhausted)] = &[
    ("Too many open files in system", Exhausted::SystemFiles),
    ("Too many open files", Exhausted::FileDescriptors),
    ("Cannot allocate memory", Exhausted::Memory),
    ("Out of memory", Exhausted::Memory),
    ("No space left on device", Exhausted::Disk),
    (
        "fork: retry: Resource temporarily unavailable",
        Exhausted::Tasks,
    ),
    ("Cannot fork", Exhausted::Tasks),
];

/// The first resource-exhaustion message in a tool's output, if any.
pub fn in_tool_output(text: &str) -> Option<Exhausted> {
    TOOL_MESSAGES
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|&(_, r)| r)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn mem_available() -> Option<String> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The limits on threads and processes that apply to this process: its pids cgroup
/// (v1 or v2), RLIMIT_NPROC and kernel.threads-max.
fn task_limits() -> String {
    let mut parts = Vec::new();
    if let Some((dir, max, current)) = pids_cgroup() {
        parts.push(format!(
            "pids cgroup {dir}: pids.max {max}, pids.current {current}"
        ));
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NPROC) {
        parts.push(format!("RLIMIT_NPROC {soft}"));
    }
    if let Some(t) = read_trimmed("/proc/sys/kernel/threads-max") {
        parts.push(format!("kernel.threads-max {t}"));
    }
    parts.join(", ")
}

/// This process's pids cgroup directory with its `pids.max` and `pids.current`.
fn pids_cgroup() -> Option<(String, String, String)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let dir = if controllers.split(',').any(|c| c == "pids") {
            format!("/sys/fs/cgroup/pids{path}")
        } else if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}")
        } else {
            continue;
        };
        let max = read_trimmed(&format!("{dir}/pids.max"));
        let current = read_trimmed(&format!("{dir}/pids.current"));
        if let (Some(max), Some(current)) = (max, current) {
            return Some((dir, max, current));
        }
    }
    None
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (as systemd advises for
/// programs that need many descriptors; a full run holds ~150 at its peak). The previous
/// soft limit is returned so children can be given it back (some tools close every fd up
/// to the limit at start-up). Nothing changes when the limits are equal.
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(soft);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_errnos_are_resources_and_eagain_only_from_a_spawn() {
        assert_eq!(
            Exhausted::of_errno(Errno::EMFILE),
            Some(Exhausted::FileDescriptors)
        );
        assert_eq!(Exhausted::of_errno(Errno::ENOSPC), Some(Exhausted::Disk));
        assert_eq!(Exhausted::of_errno(Errno::EAGAIN), None);
        assert_eq!(Exhausted::of_errno(Errno::ETIMEDOUT), None);
        let eagain = std::io::Error::from_raw_os_error(libc::EAGAIN);
        assert_eq!(Exhausted::of_spawn(&eagain), Some(Exhausted::Tasks));
        assert_eq!(Exhausted::of_io(&eagain), None);
    }

    #[test]
    fn the_descriptor_limit_is_named_with_its_value() {
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let text = Exhausted::FileDescriptors.describe();
        assert!(text.contains(&format!("RLIMIT_NOFILE is {soft}")), "{text}");
        assert!(text.contains("ulimit -n"), "{text}");
        // The advice raises the limit: never a value at or below the one in force.
        let advised: u64 = text
            .rsplit("ulimit -n ")
            .next()
            .and_then(|t| t.trim_end_matches('`').split('`').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(advised > soft || soft == u64::MAX, "{text}");
    }

    #[test]
    fn tool_messages_name_the_resource() {
        assert_eq!(
            in_tool_output("curl: (7) socket: Too many open files"),
            Some(Exhausted::FileDescriptors)
        );
        assert_eq!(
            in_tool_output("Too many open files in system"),
            Some(Exhausted::SystemFiles)
        );
        assert_eq!(
            in_tool_output("connect() failed (11: Resource temporarily unavailable)"),
            None
        );
    }
}
