//! Temporary files and directories of this process, named `netclaim-<tag>-<pid>-<n>` under
//! the system's temporary directory. Each is owned by a guard ([`TempDir`], [`TempFile`])
//! that removes it on drop; what a run killed by SIGKILL could not remove, the next run's
//! sweep (or `netclaim clean`) finds by its name: see [`crate::sweep`].
//!
//! The guard also holds a `flock(2)` on the entry for its whole life, taken before the
//! entry gets its name (it is made under a hidden name, locked, then renamed). The lock
//! is what tells a sweep that the owner is alive: it goes with the owner's last
//! descriptor, also on SIGKILL, whereas the pid in the name may already belong to
//! another process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// The tags of temporary names, so that a sweep only ever removes what netclaim made
/// (`/tmp/netclaim-report`, a user's `--out` directory, has no tag and no pid).
pub const TAGS: &[&str] = &[
    "etc", "daemon", "eagain", "nginx", "mysql", "strace", "rsyncd", "vm", "vm-test", "t",
];

/// A fresh path `$TMPDIR/netclaim-<tag>-<pid>-<n>`, unique within this process; nothing
/// is created. `tag` must be one of [`TAGS`].
fn unique_path(tag: &str) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    debug_assert!(
        TAGS.contains(&tag),
        "temporary tag {tag:?} is not in tmp::TAGS"
    );
    std::env::temp_dir().join(format!(
        "{}{tag}-{}-{}",
        crate::netns::NAME_PREFIX,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The pid in a temporary name `netclaim-<tag>-<pid>-<n>` whose tag is one of [`TAGS`].
pub fn owner_of(name: &str) -> Option<u32> {
    let name = name.strip_prefix(HIDDEN).unwrap_or(name);
    let rest = name.strip_prefix(crate::netns::NAME_PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let (n, pid, tag) = (parts.next()?, parts.next()?, parts.next()?);
    n.parse::<u32>().ok()?;
    TAGS.contains(&tag).then_some(())?;
    pid.parse().ok()
}

/// Every temporary entry (`$TMPDIR/netclaim-<tag>-<pid>-<n>`) on the host, with its
/// owner pid.
pub fn entries() -> Vec<(PathBuf, u32)> {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, u32)> = dir
        .flatten()
        .filter_map(|e| {
            let pid = owner_of(e.file_name().to_str()?)?;
            Some((e.path(), pid))
        })
        .collect();
    found.sort();
    found
}

/// Removes a temporary entry, a file or a directory tree. `Ok(false)` when it was
/// already gone (another sweep got there first).
pub fn remove(path: &Path) -> std::io::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let removed = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The hidden name an entry is made under before it is locked and renamed; a sweep
/// treats it like the final name.
const HIDDEN: &str = ".netclaim-new-";

/// Makes an entry at a hidden name with `make`, locks it, and renames it to `path`, so
/// that no sweep ever sees it named and unlocked.
fn make_locked(path: &Path, make: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<Lock> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hidden = path.with_file_name(format!("{HIDDEN}{name}"));
    make(&hidden).map_err(|e| Error::io("create", &hidden, e))?;
    let locked = lock(&hidden);
    let renamed = locked.and_then(|lock| {
        std::fs::rename(&hidden, path)
            .map(|()| lock)
            .map_err(|e| Error::io("rename", &hidden, e))
    });
    if renamed.is_err() {
        let _ = remove(&hidden);
    }
    renamed
}

/// The lock a guard holds on its entry.
type Lock = nix::fcntl::Flock<std::fs::File>;

fn lock(path: &Path) -> Result<Lock> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| Error::io("flock", path, errno.into()))
}

/// Whether a live guard (of any process) holds `path`. A path nobody holds is stale:
/// its owner ended without removing it.
pub fn is_held(path: &Path) -> bool {
    match std::fs::File::open(path) {
        Ok(file) => nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .is_err_and(|(_, errno)| errno == nix::errno::Errno::EWOULDBLOCK),
        // Unreadable: say held rather than remove what cannot be checked.
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// A private temporary directory, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    _lock: Lock,
}

impl TempDir {
    /// Creates `$TMPDIR/netclaim-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Result<Self> {
        let path = unique_path(tag);
        let lock = make_locked(&path, |p| std::fs::create_dir(p))?;
        Ok(Self { path, _lock: lock })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A temporary file (a daemon's log), removed on drop.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    _lock: Lock,
}

impl TempFile {
    /// Creates an empty `$TMPDIR/netclaim-<tag>-<pid>-<n>`.
    pub fn create(tag: &str) -> Result<Self> {
        let path = unique_path(tag);
        let lock = make_locked(&path, |p| {
            std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(p)
                .map(drop)
        })?;
        Ok(Self { path, _lock: lock })
    }

    /// Opens it for appending (a child's stdout and stderr).
    pub fn open_append(&self) -> Result<std::fs::File> {
        std::fs::File::options()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io("open", &self.path, e))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_pid_for_the_sweep_and_directories_go_on_drop() {
        let dir = TempDir::new("t").expect("temp dir");
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("netclaim-t-"), "{name}");
        assert_eq!(owner_of(&name), Some(std::process::id()));
        let path = dir.path().to_owned();
        std::fs::write(path.join("f"), b"x").expect("write");
        drop(dir);
        assert!(!path.exists());
        assert_ne!(unique_path("t"), unique_path("t"));
    }

    #[test]
    fn a_guard_holds_its_entry_until_dropped() {
        let dir = TempDir::new("t").expect("temp dir");
        let path = dir.path().to_owned();
        assert!(is_held(&path), "a live guard's entry must count as held");
        // An entry nobody holds (its owner was killed) is not held, whatever its name says.
        let orphan = unique_path("t");
        std::fs::create_dir(&orphan).unwrap();
        assert!(!is_held(&orphan));
        remove(&orphan).unwrap();
        drop(dir);
        assert!(!path.exists());
        assert!(!is_held(&path), "gone is not held");
    }

    #[test]
    fn files_go_on_drop() {
        let f = TempFile::create("daemon").expect("temp file");
        let path = f.path().to_owned();
        assert!(path.is_file());
        drop(f);
        assert!(!path.exists());
    }

    #[test]
    fn only_tagged_names_with_a_pid_are_ours() {
        assert_eq!(owner_of("netclaim-rsyncd-1234-0"), Some(1234));
        assert_eq!(owner_of("netclaim-vm-test-1234-3"), Some(1234));
        assert_eq!(owner_of("netclaim-report"), None);
        assert_eq!(owner_of("netclaim-1234-0"), None, "a lab name, not a file");
        assert_eq!(owner_of("netclaim-mine-1234-0"), None, "not our tag");
        assert_eq!(owner_of("netclaim-vm-12x-0"), None);
        assert_eq!(owner_of(".netclaim-new-netclaim-etc-77-1"), Some(77));
    }
}
