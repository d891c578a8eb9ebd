//! A PID namespace per tool, so that nothing a tool starts can outlive it.
//!
//! A tool may daemonise: `nohup`, `setsid`, a double fork. Such a process leaves the
//! tool's process group and is re-parented, so killing the group misses it, and it keeps
//! the lab's network namespace alive after the lab is gone. Each tool (and daemon) is
//! therefore the first process, the init, of a PID namespace of its own. When an init
//! ends, however it ends, the kernel kills every other process of its namespace
//! (pid_namespaces(7)); and the init itself gets `SIGKILL` as its parent-death signal
//! when the harness thread that started it ends, which includes the harness being
//! `SIGKILL`ed. So every process a claim starts ends with its tool, its lab and its run.
//!
//! Why not a cgroup: `cgroup.kill` would need a delegated, writable cgroup subtree, which
//! an ordinary user, a default container and a `netns vm` guest may not have, and it
//! does nothing when the harness is `SIGKILL`ed before it writes it. A PID namespace needs
//! only `CAP_SYS_ADMIN` in the harness's user namespace, which every mode that can make a
//! network namespace already has, and its teardown is done by the kernel.
//!
//! The price: the tool runs as pid 1 of its namespace, with an init's signal rules: a
//! signal it has no handler for is not delivered from inside its own namespace (a script's
//! `kill $$`) nor when the kernel generates it for the process itself (`SIGPIPE`, so a
//! write to a closed pipe returns `EPIPE` instead). Signals from the harness (`SIGKILL`
//! at a deadline) are delivered as before.
//!
//! `unshare(CLONE_NEWPID)` changes only where the calling thread's *future children* go
//! (and it forbids that thread from creating threads afterwards), so it is called on a
//! thread made for one child: the waiter of [`crate::netns::NetNs::run_command`] or the
//! keeper of a daemon.

use crate::error::{Error, Result};

/// Puts the children the calling thread forks from now on into a new PID namespace; the
/// first of them is its init. The calling thread can create no thread afterwards
/// (`clone(2)`: `EINVAL`), so call it on a thread that only spawns and waits.
pub fn for_children() -> Result<()> {
    // SAFETY: unshare takes no pointers; it changes only this thread's
    // pid_ns_for_children.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        let errno = nix::errno::Errno::last();
        return Err(Error::sys("unshare(CLONE_NEWPID)", errno));
    }
    Ok(())
}
