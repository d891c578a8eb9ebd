//! The wire's TUN devices: opened on a thread inside their namespace (a TUN device is
//! created in the namespace of the thread that opened `/dev/net/tun`), with a virtio-net
//! header on every packet so that an untouched direction can carry GSO super-packets.
//! A device that is not persistent is deleted by the kernel when its last descriptor
//! closes, so nothing outlives the wire, also after SIGKILL.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};

/// Where the TUN clone device lives.
pub const TUN_PATH: &str = "/dev/net/tun";

/// Length of `struct virtio_net_hdr` (no mergeable buffers): what precedes every packet
/// read from or written to a device opened with `IFF_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;

/// What the wire needs, for [`Error::Unavailable`].
pub const WHAT: &str = "the wire (a TUN device)";

fn unavailable(reason: String) -> Error {
    Error::Unavailable {
        what: WHAT.into(),
        reason,
    }
}

/// Opens the TUN clone device at `path`, read-write and non-blocking; a device this
/// process cannot have is [`Error::Unavailable`], naming why and what to do.
fn open_clone(path: &Path) -> Result<std::fs::File> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENXIO | libc::ENODEV | libc::EACCES | libc::EPERM)
            ) =>
        {
            let hint = if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) {
                // A user namespace's root is no root for the host's device node: the
                // node's own mode decides. udev makes it 0666 (its rule for misc/tun);
                // without udev it stays the kernel's 0600.
                "as an ordinary user the device must be open to you: udev makes it 0666, \
                 without udev (a bare VM or container) `chmod 0666 /dev/net/tun` as root; \
                 or run as root"
            } else {
                "a container needs the device: `docker run --device /dev/net/tun`, \
                 or `modprobe tun` on the host"
            };
            Err(unavailable(format!(
                "cannot open {}: {e} ({hint})",
                path.display()
            )))
        }
        Err(e) => Err(Error::io("open", path, e)),
    }
}

/// Whether this process can have a wire's TUN devices: the clone device opens (nothing
/// is created). `Err` is what building a wire would fail with, for callers that decide
/// before they build (a test that skips a claim whose needs are not met).
pub fn available() -> Result<()> {
    open_clone(Path::new(TUN_PATH)).map(drop)
}

/// Opens `path` (the TUN clone device) and creates the TUN device `name` in the calling
/// thread's namespace: `IFF_TUN | IFF_NO_PI | IFF_VNET_HDR`, non-blocking. With `gso`,
/// the device takes checksum and TSO offload (`TUNSETOFFLOAD`), so the kernel hands the
/// reader unsegmented super-packets; without, every packet is MTU-sized and fully
/// checksummed, ready to be looked at and rewritten.
pub fn open_at(path: &Path, name: &str, gso: bool) -> Result<OwnedFd> {
    let file = open_clone(path)?;
    let fd = OwnedFd::from(file);
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
    // SAFETY: TUNSETIFF reads and writes the valid, exclusively borrowed ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            return Err(unavailable(format!(
                "TUNSETIFF {name}: {e} (creating a TUN device needs CAP_NET_ADMIN over the lab's namespace)"
            )));
        }
        return Err(Error::os(format!("ioctl(TUNSETIFF, {name})"), e));
    }
    let offload = if gso {
        libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6
    } else {
        0
    };
    // SAFETY: TUNSETOFFLOAD takes its argument by value.
    if unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(offload),
        )
    } != 0
    {
        return Err(Error::os(
            format!("ioctl(TUNSETOFFLOAD, {offload:#x}) on {name}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(fd)
}

/// [`open_at`] on [`TUN_PATH`].
pub fn open(name: &str, gso: bool) -> Result<OwnedFd> {
    open_at(Path::new(TUN_PATH), name, gso)
}

/// An eventfd: the relay threads' stop signal.
pub fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain eventfd(2); the descriptor is checked and owned below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(Error::os("eventfd", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_clone_device_is_unavailable_not_a_failure() {
        let err = open_at(Path::new("/nonexistent/net/tun"), "ncw0", false).unwrap_err();
        match &err {
            Error::Unavailable { what, reason } => {
                assert_eq!(what, WHAT);
                assert!(reason.contains("/nonexistent/net/tun"), "{reason}");
                assert!(reason.contains("--device /dev/net/tun"), "{reason}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
