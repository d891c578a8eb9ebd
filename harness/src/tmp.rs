//! Temporary files and directories of this process, named `netclaim-<tag>-<pid>-<n>` under
//! the system's temporary directory, so that [`crate::netns::sweep_own`] finds what a run
//! interrupted by a signal left there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// A fresh path `$TMPDIR/netclaim-<tag>-<pid>-<n>`, unique within this process; nothing
/// is created.
pub fn unique_path(tag: &str) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "{}{tag}-{}-{}",
        crate::netns::NAME_PREFIX,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A private temporary directory, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/netclaim-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Result<Self> {
        let path = unique_path(tag);
        std::fs::create_dir_all(&path).map_err(|e| Error::io("create", &path, e))?;
        Ok(Self(path))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
        assert!(
            name.contains(&format!("-{}-", std::process::id())),
            "{name}"
        );
        let path = dir.path().to_owned();
        std::fs::write(path.join("f"), b"x").expect("write");
        drop(dir);
        assert!(!path.exists());
        assert_ne!(unique_path("t"), unique_path("t"));
    }
}
