//! Reading the files netclaim takes as input — claim files, reports, recordings — as the
//! untrusted input they are.
//!
//! A claim file may be a symlink to `/dev/zero` (an unbounded read fills memory until the
//! OOM killer fires) or a FIFO (a read blocks until someone writes). So every input file
//! is opened without blocking (`O_NONBLOCK`: opening a FIFO that has no writer returns at
//! once), checked with `fstat` on the descriptor that was opened (not the path, which may
//! change in between), refused unless it is a regular file, and read with a bound: at
//! most `cap + 1` bytes, so a file that grows while it is read is refused too.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The size cap of a claim file: the largest claim file of the catalog is ~20 KB and
/// 10,000 claims in one file take ~2 MB.
pub const CLAIM_FILE_CAP: u64 = 4 << 20;

/// The size cap of a report.json or recording.json: a full run's report is ~300 KB today,
/// its recording about as much; a fleet's merged report is a few of those.
pub const REPORT_CAP: u64 = 64 << 20;

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// open(2) or fstat(2) failed (no such file, no permission, a socket: ENXIO).
    #[error("cannot open {}{via}: {source}", path.display())]
    Open {
        /// The path as given.
        path: PathBuf,
        /// ` (a symlink to …)` when the path is one; empty otherwise.
        via: String,
        /// The error, with its errno.
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file: a directory, a FIFO, a device, a socket.
    #[error(
        "{}{via} is {kind}, not a regular file: give a regular file of at most {}",
        path.display(),
        Size(*cap)
    )]
    NotRegular {
        /// The path as given.
        path: PathBuf,
        /// ` (a symlink to /dev/zero)` when the path is one; empty otherwise.
        via: String,
        /// What it is (`a directory`, `a FIFO (named pipe)`, `a character device`).
        kind: &'static str,
        /// The size cap that applies.
        cap: u64,
    },
    /// Larger than the cap (by its size, or by growing while it was read).
    #[error(
        "{} is larger than {}{}: netclaim reads at most {} of such a file; split it",
        path.display(),
        Size(*cap),
        size.map(|s| format!(" ({})", Size(s))).unwrap_or_default(),
        Size(*cap)
    )]
    TooLarge {
        /// The path as given.
        path: PathBuf,
        /// Its size, when fstat(2) told it.
        size: Option<u64>,
        /// The cap.
        cap: u64,
    },
    /// read(2) failed.
    #[error("reading {} failed: {source}", path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// The error, with its errno.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not UTF-8 text.
    #[error(
        "{} is not UTF-8 text (invalid byte at offset {offset}): give a text file",
        path.display()
    )]
    NotText {
        /// The path as given.
        path: PathBuf,
        /// The offset of the first byte that is not valid UTF-8.
        offset: usize,
    },
}

impl InputError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. }
            | Self::NotRegular { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Read { path, .. }
            | Self::NotText { path, .. } => path,
        }
    }
}

/// A byte count for people: `4 MiB`, `300 KiB`, `12 bytes`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1 << 20 && n % (1 << 20) == 0 {
            write!(f, "{} MiB", n >> 20)
        } else if n >= 1 << 20 {
            write!(f, "{:.1} MiB", n as f64 / (1 << 20) as f64)
        } else if n >= 1 << 10 {
            write!(f, "{} KiB", n >> 10)
        } else {
            write!(f, "{n} bytes")
        }
    }
}

/// ` (a symlink to /dev/zero)` when `path` is a symlink; empty otherwise.
fn resolves(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            let to = std::fs::canonicalize(path)
                .or_else(|_| std::fs::read_link(path))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            format!(" (a symlink to {to})")
        }
        _ => String::new(),
    }
}

/// What a non-regular file is, in words.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The whole of the regular file at `path` as bytes, at most `cap` of them. Never
/// blocks on a FIFO and never reads more than `cap + 1` bytes of anything.
pub fn read_bytes(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    let open_error = |source: std::io::Error| {
        // open(2) of a unix socket fails with ENXIO: say what the path is.
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() && source.raw_os_error() == Some(libc::ENXIO) => {
                InputError::NotRegular {
                    path: path.to_owned(),
                    via: resolves(path),
                    kind: kind_of(m.file_type()),
                    cap,
                }
            }
            _ => InputError::Open {
                path: path.to_owned(),
                via: resolves(path),
                source,
            },
        }
    };
    // O_NONBLOCK: opening a FIFO without a writer returns at once (instead of waiting for
    // one); O_NOCTTY: a terminal device never becomes the controlling terminal. Neither
    // changes how a regular file reads.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(open_error)?;
    // The descriptor's own type and size, not the path's: the path may have been
    // swapped since.
    let meta = file.metadata().map_err(|source| InputError::Open {
        path: path.to_owned(),
        via: resolves(path),
        source,
    })?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_owned(),
            via: resolves(path),
            kind: kind_of(meta.file_type()),
            cap,
        });
    }
    if meta.len() > cap {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            size: Some(meta.len()),
            cap,
        });
    }
    read_bounded(file, path, cap)
}

/// At most `cap` bytes of `file`; one more is an error (the file grew past the cap).
fn read_bounded(file: File, path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            size: None,
            cap,
        });
    }
    Ok(bytes)
}

/// The whole of the regular text file at `path`, at most `cap` bytes (see [`read_bytes`]).
pub fn read_text(path: &Path, cap: u64) -> Result<String, InputError> {
    String::from_utf8(read_bytes(path, cap)?).map_err(|e| InputError::NotText {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("suites-input-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_reads_whole() {
        let dir = scratch("regular");
        let f = dir.join("a.toml");
        std::fs::write(&f, "abc").unwrap();
        let got = read_text(&f, 3);
        let over = read_text(&f, 2);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got.unwrap(), "abc");
        let e = over.unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    size: Some(3),
                    cap: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("larger than 2 bytes (3 bytes)"),
            "{e}"
        );
    }

    #[test]
    fn devices_are_refused_without_reading() {
        for dev in ["/dev/zero", "/dev/urandom"] {
            let e = read_text(Path::new(dev), CLAIM_FILE_CAP).unwrap_err();
            assert!(
                matches!(
                    e,
                    InputError::NotRegular {
                        kind: "a character device",
                        ..
                    }
                ),
                "{dev}: {e:?}"
            );
            assert!(
                e.to_string().contains(&format!(
                    "{dev} is a character device, not a regular file: give a regular file of at most 4 MiB"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn a_symlink_is_named_with_what_it_points_to() {
        let dir = scratch("symlink");
        let link = dir.join("z.toml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_text(&link, CLAIM_FILE_CAP).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            e.to_string()
                .contains("z.toml (a symlink to /dev/zero) is a character device"),
            "{e}"
        );
    }

    #[test]
    fn a_fifo_and_a_directory_are_refused_at_once() {
        let dir = scratch("fifo");
        let fifo = dir.join("f.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Would block forever in open(2) without O_NONBLOCK: this test would hang.
        let e = read_text(&fifo, REPORT_CAP).unwrap_err();
        let d = read_text(&dir, REPORT_CAP).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(
                e,
                InputError::NotRegular {
                    kind: "a FIFO (named pipe)",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("at most 64 MiB"), "{e}");
        assert!(
            matches!(
                d,
                InputError::NotRegular {
                    kind: "a directory",
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn a_socket_and_a_missing_file_say_what_they_are() {
        let dir = scratch("socket");
        let sock = dir.join("s.toml");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = read_text(&sock, CLAIM_FILE_CAP).unwrap_err();
        let missing = read_text(&dir.join("none.toml"), CLAIM_FILE_CAP).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(
                e,
                InputError::NotRegular {
                    kind: "a socket",
                    ..
                }
            ),
            "{e:?}"
        );
        match missing {
            InputError::Open { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn growing_past_the_cap_while_read_is_refused() {
        // /proc files report size 0 and are regular: the read's own bound applies.
        let e = read_bytes(Path::new("/proc/self/maps"), 16).unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    size: None,
                    cap: 16,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn binary_is_not_text() {
        let dir = scratch("binary");
        let f = dir.join("b.json");
        std::fs::write(&f, b"ok\xff").unwrap();
        let e = read_text(&f, 10).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(e, InputError::NotText { offset: 2, .. }), "{e:?}");
    }
}
