//! Who owns what a run left on the host: is the process named in a `netclaim-…-<pid>-<n>`
//! name still the one that made it?
//!
//! A pid alone does not say so: after a SIGKILL the pid is free, and the kernel hands it
//! to the next process. So a lab name counts as owned only while that pid *holds* the
//! namespace (a thread in it or a descriptor of it: every live lab has both), and a
//! temporary file only while that pid is alive and started before the file was made.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// How far a process start time read from `/proc` may be off: `/proc/stat`'s `btime` is
/// in whole seconds.
const START_TIME_SLACK: Duration = Duration::from_secs(2);

/// Whether `pid` is a running process (a zombie has stopped running: its owner is gone).
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

/// Whether `pid` runs the `netclaim` program (by its command name).
pub fn is_netclaim(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "netclaim")
}

/// When `pid` started, on the wall clock (to within [`START_TIME_SLACK`]).
pub fn started_at(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state is field 3, starttime field 22.
    let (_, rest) = stat.rsplit_once(')')?;
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(boot)
            + Duration::from_millis(ticks * 1000 / hz),
    )
}

/// Whether `pid` is running and started no later than `made` (the time a file it is
/// named in was created or last written): otherwise the pid was reused, and whatever
/// carried it belonged to a process that is gone.
pub fn made_by_running(pid: u32, made: SystemTime) -> bool {
    is_running(pid) && started_at(pid).is_some_and(|start| start <= made + START_TIME_SLACK)
}

/// Whether a thread of `pid` is in, or a descriptor of `pid` refers to, the network
/// namespace with inode `ino`.
pub fn holds_netns(pid: u32, ino: u64) -> bool {
    let want = format!("net:[{ino}]");
    let points_at = |dir: String, leaf: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let link = if leaf.is_empty() {
                    e.path()
                } else {
                    e.path().join(leaf)
                };
                std::fs::read_link(link).is_ok_and(|target| target.as_os_str() == want.as_str())
            })
        })
    };
    points_at(format!("/proc/{pid}/task"), "ns/net") || points_at(format!("/proc/{pid}/fd"), "")
}

/// The network namespace inode behind `path` when it is a namespace mount (as `ip netns`
/// names are), `None` for a plain file (a name not mounted yet, or left half-made).
pub fn netns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let fs = nix::sys::statfs::statfs(path).ok()?;
    (fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .then(|| std::fs::metadata(path).ok().map(|m| m.ino()))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_running_and_started_before_now() {
        let me = std::process::id();
        assert!(is_running(me));
        let start = started_at(me).expect("own start time");
        assert!(start <= SystemTime::now() + START_TIME_SLACK);
        assert!(made_by_running(me, SystemTime::now()));
        // A file made long before this process started cannot be this process's.
        assert!(!made_by_running(
            me,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1)
        ));
        assert!(!is_running(1 << 23), "pids stop below 2^22");
    }

    #[test]
    fn a_thread_in_a_namespace_holds_it() {
        let ino = std::fs::read_link("/proc/thread-self/ns/net")
            .ok()
            .and_then(|l| {
                l.to_string_lossy()
                    .trim_start_matches("net:[")
                    .trim_end_matches(']')
                    .parse::<u64>()
                    .ok()
            })
            .expect("own netns inode");
        assert!(holds_netns(std::process::id(), ino));
        assert!(!holds_netns(std::process::id(), ino + 1_000_000));
    }
}
