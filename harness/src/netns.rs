//! A network namespace owned by the harness.
//!
//! [`NetNs::new`] creates the namespace with `unshare(CLONE_NEWNET)` on a dedicated thread,
//! keeps a file descriptor to it, bind-mounts it at `/run/netns/netclaim-<pid>-<n>` so that
//! `ip netns exec` can inspect it while it lives, and brings `lo` up over rtnetlink. Work
//! inside it runs on threads that `setns` into it first; the caller's thread never changes
//! namespace, so `NetNs` is `Send` and `Sync`. Dropping it unmounts and removes the name;
//! the kernel frees the namespace once the last socket, thread and process in it are gone.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};

/// Directory where `ip netns` looks for named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// Prefix of every namespace name the harness creates.
pub const NAME_PREFIX: &str = "netclaim-";

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A network namespace that lives as long as this value.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    fd: OwnedFd,
    mount_path: Option<PathBuf>,
}

impl NetNs {
    /// Creates a namespace with `lo` up, named and bind-mounted under `/run/netns`.
    pub fn new() -> Result<Self> {
        let name = format!(
            "{NAME_PREFIX}{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let fd = on_fresh_thread(&name, || {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::sys("unshare(CLONE_NEWNET)", e))?;
            let fd: OwnedFd = File::open("/proc/thread-self/ns/net")
                .map_err(|e| Error::io("open", "/proc/thread-self/ns/net", e))?
                .into();
            crate::link::set_up_current("lo", 1)?;
            Ok(fd)
        })??;
        let mut ns = Self {
            name,
            fd,
            mount_path: None,
        };
        ns.mount_path = Some(ns.bind_mount()?);
        Ok(ns)
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

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `f` on a fresh thread inside the namespace and returns its result.
    ///
    /// Sockets, netlink handles and `/proc/sys/net` files opened by `f` belong to this
    /// namespace. A panic in `f` propagates to the caller.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let fd = self.fd.as_fd();
        on_fresh_thread(&self.name, move || {
            setns(fd, CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::sys("setns(CLONE_NEWNET)", e))?;
            Ok(f())
        })?
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
            .map_err(|e| Error::Thread {
                thread,
                reason: format!("spawn failed: {e}"),
            })
    }

    /// A [`Command`] whose child enters this namespace before `exec`.
    ///
    /// The child also gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the thread that
    /// spawned it; spawn it from a thread that outlives it (see [`crate::command`]).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let raw = self.fd.as_raw_fd();
        // SAFETY: the closure only makes async-signal-safe system calls (setns, prctl) on
        // a file descriptor owned by `self`, which outlives the spawn; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
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
        let Some(path) = self.mount_path.take() else {
            return;
        };
        let result = umount2(&path, MntFlags::MNT_DETACH)
            .map_err(|e| Error::sys(format!("umount2({}, MNT_DETACH)", path.display()), e))
            .and_then(|()| std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e)));
        if let Err(e) = result {
            // Never panic in drop, least of all while already unwinding: report instead.
            let during = if std::thread::panicking() {
                " (while panicking)"
            } else {
                ""
            };
            eprintln!("netclaim: cleaning up namespace {}{during}: {e}", self.name);
        }
    }
}

/// Runs `f` on a new named thread and joins it, re-raising its panic.
fn on_fresh_thread<F, R>(name: &str, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, f)
            .map_err(|e| Error::Thread {
                thread: name.to_owned(),
                reason: format!("spawn failed: {e}"),
            })?;
        match handle.join() {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
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
