//! Removing what runs left on the host: `/run/netns/netclaim-<pid>-<n>` names of named
//! labs and `$TMPDIR/netclaim-<tag>-<pid>-<n>` temporary files and directories.
//!
//! Guards remove both on every exit path they see; only a SIGKILL (or a crash) leaves
//! them. [`stale`] removes those whose owner is gone — checked by identity, not by pid
//! alone, since a pid is reused (see [`crate::owner`]) — and [`own`] those of this
//! process, for an interrupted run about to exit. Two sweeps may run at once (two runs
//! starting, or a run and `netclaim clean`): what the other removed first is reported as
//! [`Sweep::vanished`], not as a failure.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::netns::{self, Gone, NETNS_RUN_DIR};
use crate::owner;

/// What a sweep did with each name it was asked to remove.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Removed by this sweep: lab names (`netclaim-<pid>-<n>`) and temporary paths.
    pub removed: Vec<String>,
    /// Gone before this sweep reached it: another process removed it first.
    pub vanished: Vec<String>,
    /// Could not be removed; each entry names the path and the reason.
    pub failed: Vec<String>,
}

impl Sweep {
    /// Whether the sweep found nothing to do.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.vanished.is_empty() && self.failed.is_empty()
    }
}

/// Removes the lab names and temporary entries whose owner is gone: a lab name whose pid
/// no longer holds the namespace (dead, or a reused pid), a temporary entry no guard
/// holds. This process's own are never stale.
pub fn stale() -> Sweep {
    let me = std::process::id();
    let mut done = Sweep::default();
    // Names under /run/netns are root's (a user namespace cannot make them, nor remove
    // them); temporary entries only this user's.
    let names = if crate::userns::mode().rootless() {
        Vec::new()
    } else {
        netns::list_named()
    };
    for name in names {
        let Some(pid) = netns::owner_pid(&name) else {
            continue;
        };
        let path = Path::new(NETNS_RUN_DIR).join(&name);
        if pid == me || lab_name_owned(pid, &path) {
            continue;
        }
        record(&mut done, name, netns::remove_name_at(&path));
    }
    for (path, pid) in crate::tmp::entries() {
        if pid == me || temp_owned(pid, &path) || !mine(&path) {
            continue;
        }
        record(&mut done, path.display().to_string(), remove_temp(&path));
    }
    done
}

/// Removes this process's lab names and temporary entries (on SIGINT, SIGTERM or SIGHUP,
/// just before exiting, while claim threads may still hold them).
pub fn own() -> Sweep {
    let me = std::process::id();
    let mut done = Sweep::default();
    for name in netns::names_of(me) {
        let result = netns::remove_name_at(&Path::new(NETNS_RUN_DIR).join(&name));
        record(&mut done, name, result);
    }
    for (path, _) in crate::tmp::entries().into_iter().filter(|(_, p)| *p == me) {
        record(&mut done, path.display().to_string(), remove_temp(&path));
    }
    done
}

fn record(done: &mut Sweep, name: String, result: std::result::Result<Gone, String>) {
    match result {
        Ok(Gone::Removed) => done.removed.push(name),
        Ok(Gone::Vanished) => done.vanished.push(name),
        Err(e) => done.failed.push(e),
    }
}

/// A named lab is its owner's while the owner holds the namespace; a name that is not a
/// namespace mount yet (the owner is between creating the file and mounting it) while the
/// owner runs and started before the file was made.
fn lab_name_owned(pid: u32, path: &Path) -> bool {
    match owner::netns_inode(path) {
        Some(ino) => owner::holds_netns(pid, ino),
        None => made_by(pid, path),
    }
}

/// A temporary entry is its owner's while a guard holds its lock (see [`crate::tmp`]):
/// the pid in its name may have been reused. Entries made by a netclaim from before the
/// locks carry none: those count as owned while a process called `netclaim` runs under
/// that pid and started before the entry was made (pid 1 never owns one).
fn temp_owned(pid: u32, path: &Path) -> bool {
    if crate::tmp::is_held(path) {
        // Held although its owner is gone: a tool's process forked by the owner, killed
        // with it (PR_SET_PDEATHSIG) but not yet gone, still has the lock's descriptor
        // (it closes on exec). Give such a process a moment to die.
        return owner::is_running(pid) || still_held_after(path, Duration::from_secs(2));
    }
    owner::is_netclaim(pid) && made_by(pid, path)
}

fn still_held_after(path: &Path, patience: Duration) -> bool {
    crate::wait::until_every(
        &format!("the lock on {} to be released", path.display()),
        patience,
        Duration::from_millis(20),
        || {
            if crate::tmp::is_held(path) {
                crate::wait::Poll::Pending("held".into())
            } else {
                crate::wait::Poll::Ready(())
            }
        },
    )
    .is_err()
}

/// Whether `path` is this process's to remove: root removes any run's; without root
/// only this user's (another user's are not ours, and /tmp's sticky bit refuses them).
fn mine(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    !crate::userns::mode().rootless()
        || std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw())
}

/// Whether `pid` runs and started before `path` was last written.
fn made_by(pid: u32, path: &Path) -> bool {
    match std::fs::symlink_metadata(path).and_then(|m| m.modified()) {
        Ok(made) => owner::made_by_running(pid, made),
        // Gone already, or unreadable: leave it to the remover to say which.
        Err(_) => owner::is_running(pid),
    }
}

fn remove_temp(path: &Path) -> std::result::Result<Gone, String> {
    match crate::tmp::remove(path) {
        Ok(true) => Ok(Gone::Removed),
        Ok(false) => Ok(Gone::Vanished),
        Err(e) => Err(format!("remove {}: {e}", path.display())),
    }
}

/// An advisory lock that test cases take around sweeps, since a sweep removes every dead
/// runner's names on the host, not only its caller's. A case that leaves stale names on
/// purpose and checks that its own sweep removes them holds it
/// [`exclusive`](SweepLock::exclusive); a case that starts `netclaim run` (whose start
/// sweeps) holds it [`shared`](SweepLock::shared). It is `flock(2)` on a directory the
/// cases agree on (the workspace's `target/tmp`), so it works between the threads of one
/// test binary (`cargo test`), between test binaries and between one-case processes
/// (`cargo nextest`), and leaves nothing behind. `netclaim` itself never takes it.
#[derive(Debug)]
pub struct SweepLock {
    _held: nix::fcntl::Flock<File>,
}

impl SweepLock {
    /// Waits until no case holds the lock exclusively.
    pub fn shared(dir: &Path) -> Result<Self> {
        Self::take(dir, nix::fcntl::FlockArg::LockShared)
    }

    /// Waits until no other case holds the lock at all.
    pub fn exclusive(dir: &Path) -> Result<Self> {
        Self::take(dir, nix::fcntl::FlockArg::LockExclusive)
    }

    fn take(dir: &Path, how: nix::fcntl::FlockArg) -> Result<Self> {
        let file = File::open(dir).map_err(|e| Error::io("open", dir, e))?;
        nix::fcntl::Flock::lock(file, how)
            .map(|held| Self { _held: held })
            .map_err(|(_, errno)| Error::io("flock", dir, errno.into()))
    }
}
