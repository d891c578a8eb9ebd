//! A network namespace owned by the harness.
//!
//! [`NetNs::new`] starts the namespace's own OS thread, which creates it with
//! `unshare(CLONE_NEWNET)`, hands the creator a netlink socket opened inside it (the
//! creator brings `lo` up through it), writes any initial sysctls and then serves
//! [`NetNs::run`] jobs for the namespace's whole life. The harness keeps a file descriptor to the
//! namespace; long-running work ([`NetNs::spawn`]) and child processes
//! ([`NetNs::command`]) enter it with `setns`. The caller's thread never changes
//! namespace, so `NetNs` is `Send` and `Sync`. Dropping it stops the thread; the kernel
//! frees the namespace once the last socket, thread and process in it are gone, so even
//! a runner killed with SIGKILL leaves nothing behind.
//!
//! Every lab has a name, `netclaim-<pid>-<n>` (also its thread's name). For debugging,
//! [`set_naming`] or `NETCLAIM_NAME_LABS=1` also bind-mounts each lab at
//! `/run/netns/<name>`, so `ip netns exec <name> …` can inspect it while it lives; drop
//! unmounts it, and [`crate::sweep::stale`] removes the names a killed runner could not. Naming is
//! off by default: the mount and unmount add about 15 % to a lab's cost and are the only
//! thing a lab could leave on the host ([`crate::sweep`] removes those of dead runs).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::mpsc;
use std::thread::{JoinHandle, ThreadId};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};
use crate::link::RouteSocket;

/// Directory where `ip netns` looks for named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// Prefix of every namespace name the harness creates.
pub const NAME_PREFIX: &str = "netclaim-";

/// Environment variable that turns on [`set_naming`] (`1`, `true`, `yes`, `on`).
pub const NAMING_ENV: &str = "NETCLAIM_NAME_LABS";

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// 0: not decided yet (read [`NAMING_ENV`] on first use), 1: off, 2: on.
static NAMING: AtomicU8 = AtomicU8::new(0);

/// Whether labs created from now on get a `/run/netns` name for `ip netns exec`.
pub fn set_naming(on: bool) {
    NAMING.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether new labs are bind-mounted under `/run/netns` (see [`set_naming`]).
pub fn naming() -> bool {
    match NAMING.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var(NAMING_ENV).is_ok_and(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            });
            set_naming(on);
            on
        }
        n => n == 2,
    }
}

/// A job for the namespace's thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The namespace's own thread and the queue of jobs it runs.
#[derive(Debug)]
struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    id: ThreadId,
}

/// A network namespace that lives as long as this value.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    fd: OwnedFd,
    mount_path: Option<PathBuf>,
    worker: Worker,
}

impl NetNs {
    /// Creates a namespace with `lo` up; bind-mounted under `/run/netns` if [`naming`].
    pub fn new() -> Result<Self> {
        Self::create(naming(), &[])
    }

    /// Creates a namespace with `lo` up, bind-mounted under `/run/netns` whatever
    /// [`naming`] says.
    pub fn named() -> Result<Self> {
        Self::create(true, &[])
    }

    /// Creates a namespace with `lo` up and `sysctls` (`net.*` names) set, as
    /// [`NetNs::new`] then [`NetNs::set_sysctls`] would, but with the writes made while
    /// `lo` comes up rather than after. An error names the sysctl and value.
    pub fn with_sysctls(sysctls: &[(&str, &str)]) -> Result<Self> {
        Self::create(naming(), sysctls)
    }

    fn create(mount_name: bool, sysctls: &[(&str, &str)]) -> Result<Self> {
        let name = format!(
            "{NAME_PREFIX}{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let sysctls: Vec<(String, String)> = sysctls
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let (jobs, queue) = mpsc::channel::<Job>();
        // The new thread creates the namespace and hands this thread its fd and a netlink
        // socket opened inside it, then writes the sysctls. Meanwhile this thread brings
        // `lo` up through that socket (the kernel work runs here, in the lab's namespace)
        // and then makes the bind mount, if asked: the sysctls cost no time of their own
        // unless they take longer than `lo`.
        let (created_tx, created_rx) = mpsc::sync_channel::<Result<(OwnedFd, RouteSocket)>>(1);
        let (sysctls_tx, sysctls_rx) = mpsc::sync_channel::<Result<()>>(1);
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let created = (|| {
                    unshare(CloneFlags::CLONE_NEWNET)
                        .map_err(|e| Error::sys("unshare(CLONE_NEWNET)", e))?;
                    let fd = File::open("/proc/thread-self/ns/net")
                        .map(OwnedFd::from)
                        .map_err(|e| Error::io("open", "/proc/thread-self/ns/net", e))?;
                    Ok((fd, RouteSocket::open_current()?))
                })();
                let ok = created.is_ok();
                if created_tx.send(created).is_err() || !ok {
                    return;
                }
                let written = sysctls
                    .iter()
                    .try_for_each(|(k, v)| crate::sysctl::write_current(k, v));
                let ok = written.is_ok();
                if sysctls_tx.send(written).is_err() || !ok {
                    return;
                }
                // Serve jobs until the NetNs is dropped (the sender goes away).
                for job in queue {
                    job();
                }
            })
            .map_err(|e| Error::thread_spawn(name.clone(), e))?;
        let id = thread.thread().id();
        let (fd, route) = match created_rx.recv() {
            Ok(Ok(created)) => created,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(Self::thread_died(name, thread)),
        };
        let mut ns = Self {
            name,
            fd,
            mount_path: None,
            worker: Worker {
                jobs: Some(jobs),
                thread: Some(thread),
                id,
            },
        };
        // On any error below, dropping `ns` stops the thread and undoes the mount.
        route.set_up("lo", 1)?;
        drop(route);
        if mount_name {
            ns.mount_path = Some(ns.bind_mount()?);
        }
        match sysctls_rx.recv() {
            Ok(written) => written?,
            Err(_) => {
                let name = ns.name.clone();
                return Err(match ns.worker.thread.take() {
                    Some(thread) => Self::thread_died(name, thread),
                    None => Error::Thread {
                        thread: name,
                        reason: "ended before the namespace was ready".into(),
                    },
                });
            }
        }
        Ok(ns)
    }

    /// The error for a namespace thread that ended without reporting.
    fn thread_died(name: String, thread: JoinHandle<()>) -> Error {
        let reason = match thread.join() {
            Err(p) => panic_message(&p),
            Ok(()) => "ended before the namespace was ready".into(),
        };
        Error::Thread {
            thread: name,
            reason,
        }
    }

    fn bind_mount(&self) -> Result<PathBuf> {
        std::fs::create_dir_all(NETNS_RUN_DIR)
            .map_err(|e| Error::io("create", NETNS_RUN_DIR, e))?;
        let path = Path::new(NETNS_RUN_DIR).join(&self.name);
        File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let source = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        if let Err(e) = mount(
            Some(source.as_str()),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            let _ = std::fs::remove_file(&path);
            return Err(Error::sys(
                format!("mount --bind {source} {}", path.display()),
                e,
            ));
        }
        Ok(path)
    }

    /// Unmounts and removes the `/run/netns` name; reports failures (it runs in drop).
    fn remove_name(&mut self) {
        let Some(path) = self.mount_path.take() else {
            return;
        };
        let problem = match remove_name_at(&path) {
            Ok(Gone::Removed) => return,
            Ok(Gone::Vanished) => format!("{} was already removed", path.display()),
            Err(e) => e,
        };
        // Never panic in drop, least of all while already unwinding: report instead.
        let during = if std::thread::panicking() {
            " (while panicking)"
        } else {
            ""
        };
        // Not eprintln!: it panics when stderr is a closed pipe, and this runs in drop.
        let _ = writeln!(
            std::io::stderr(),
            "netclaim: cleaning up namespace {}{during}: {problem}",
            self.name
        );
    }

    /// The lab's name, `netclaim-<pid>-<n>`: its thread's name, and its `ip netns` name
    /// if it is bind-mounted (see [`NetNs::mount_path`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the lab is bind-mounted for `ip netns`, if it is.
    pub fn mount_path(&self) -> Option<&Path> {
        self.mount_path.as_deref()
    }

    /// The namespace file descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `f` on the namespace's own thread and returns its result.
    ///
    /// Sockets, netlink handles and `/proc/sys/net` files opened by `f` belong to this
    /// namespace. Jobs run one at a time, so `f` should be short: anything that blocks
    /// for long (a server loop, a capture) belongs on [`NetNs::spawn`]. A panic in `f`
    /// propagates to the caller; a nested `run` from inside `f` runs inline.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        if std::thread::current().id() == self.worker.id {
            return Ok(f());
        }
        let worker_gone = || Error::Thread {
            thread: self.name.clone(),
            reason: "the namespace thread is gone".into(),
        };
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let job = move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            let _ = done_tx.send(result);
        };
        let job: Box<dyn FnOnce() + Send + '_> = Box::new(job);
        // SAFETY: the job may borrow from the caller's stack ('_). It is only ever run or
        // dropped while this function waits below: either `send` fails and hands the job
        // back here, or the worker runs it, and the job's last act is to report through
        // `done_tx`, which this function waits for before returning. The worker never
        // keeps a job after running it, so no borrow outlives this call.
        let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
        let jobs = self.worker.jobs.as_ref().ok_or_else(worker_gone)?;
        if jobs.send(job).is_err() {
            return Err(worker_gone());
        }
        match done_rx.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => Err(worker_gone()),
        }
    }

    /// Starts a long-lived thread inside the namespace (a server, a capture loop).
    pub fn spawn<F, R>(&self, role: &str, f: F) -> Result<JoinHandle<Result<R>>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::io("dup", "netns fd", e))?;
        let thread = format!("{}:{role}", self.name);
        std::thread::Builder::new()
            .name(thread.clone())
            .spawn(move || {
                setns(&fd, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::sys("setns(CLONE_NEWNET)", e))?;
                drop(fd);
                Ok(f())
            })
            .map_err(|e| Error::thread_spawn(thread, e))
    }

    /// A [`Command`] whose child enters this namespace before `exec`.
    ///
    /// The child also gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the thread that
    /// spawned it; spawn it from a thread that outlives it (see [`crate::command`]). It
    /// starts with no signal blocked, whatever the spawning thread blocks.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let raw = self.fd.as_raw_fd();
        // SAFETY: the closure only makes async-signal-safe system calls (setns, prctl,
        // sigprocmask) on a file descriptor owned by `self`, which outlives the spawn, and
        // on a signal set on its own stack; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // A forked child keeps the forking thread's signal mask, and the harness's
                // threads block SIGINT, SIGTERM and SIGHUP (one thread takes them). A shell
                // clears the mask only for what it forks itself in some cases, so without
                // this a tool's `setsid` or background job ran with them blocked and
                // `kill` could not end it.
                let mut empty = std::mem::zeroed::<libc::sigset_t>();
                libc::sigemptyset(&mut empty);
                if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs an async block on a current-thread tokio runtime inside the namespace.
    pub fn block_on<F, Fut, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = R>,
        R: Send,
    {
        self.run(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("create", "tokio runtime", e))?;
            Ok(rt.block_on(f()))
        })?
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Closing the queue ends the namespace's thread once its current job is done; it
        // winds down while the name is removed here.
        drop(self.worker.jobs.take());
        self.remove_name();
        if let Some(thread) = self.worker.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// Lists the `netclaim-*` names currently under `/run/netns`.
pub fn list_named() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(NAME_PREFIX))
        .collect();
    names.sort();
    names
}

/// The `netclaim-<pid>-<n>` names under `/run/netns` that process `pid` created.
pub fn names_of(pid: u32) -> Vec<String> {
    list_named()
        .into_iter()
        .filter(|n| owner_pid(n) == Some(pid))
        .collect()
}

/// The pid that created a `netclaim-<pid>-<n>` name, if the name has that form.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// What became of a `/run/netns` name [`remove_name_at`] was asked to remove.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Gone {
    /// Unmounted and unlinked here.
    Removed,
    /// Another process removed it first.
    Vanished,
}

/// Unmounts and unlinks the `/run/netns` name at `path` (a lab's drop, a sweep), while
/// another process may be doing the same: a run's start-up sweep, `netclaim clean`.
/// EINVAL from umount2: not a mount point any more (a half-made name, or the other
/// process unmounted it a moment ago); still unlink it. ENOENT: the other process
/// finished it first. An error names the call, the path and the reason.
pub(crate) fn remove_name_at(path: &Path) -> std::result::Result<Gone, String> {
    use nix::errno::Errno;
    let unmounted = match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) => true,
        Err(Errno::EINVAL) => false,
        Err(Errno::ENOENT) => return Ok(Gone::Vanished),
        Err(e) => return Err(format!("umount2({}, MNT_DETACH): {e}", path.display())),
    };
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Gone::Removed),
        // The other process unlinked what this one unmounted: removed between the two.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(if unmounted {
            Gone::Removed
        } else {
            Gone::Vanished
        }),
        Err(e) => Err(format!("remove {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_only_harness_names() {
        assert_eq!(owner_pid("netclaim-1234-7"), Some(1234));
        assert_eq!(owner_pid("netclaim-abc-7"), None);
        assert_eq!(owner_pid("netclaim-1234"), None);
        assert_eq!(owner_pid("other-1234-7"), None);
    }
}
