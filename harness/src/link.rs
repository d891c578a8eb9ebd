//! Links inside labs, over rtnetlink: `lo` up, and veth pairs between two namespaces.
//!
//! Every function here that ends in `_current` talks to the namespace of the calling
//! thread; call it from [`NetNs::run`]. Addresses come from the RFC 5737 documentation
//! ranges, so nothing a lab does can reach a real host.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// TEST-NET-1, RFC 5737: the client side of veth labs.
pub const TEST_NET_1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 0);
/// TEST-NET-2, RFC 5737.
pub const TEST_NET_2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);
/// TEST-NET-3, RFC 5737.
pub const TEST_NET_3: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 0);

/// Whether `addr` lies in one of the RFC 5737 documentation ranges or loopback: the only
/// addresses a lab may target.
pub fn is_lab_address(addr: Ipv4Addr) -> bool {
    let [a, b, c, _] = addr.octets();
    addr.is_loopback()
        || [TEST_NET_1, TEST_NET_2, TEST_NET_3].iter().any(|net| {
            let [x, y, z, _] = net.octets();
            (a, b, c) == (x, y, z)
        })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("create", "tokio runtime", e))
}

/// Runs `f` with an rtnetlink handle bound to the calling thread's namespace.
fn with_handle<F, Fut, T>(f: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let rt = runtime()?;
    rt.block_on(async move {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::io("open", "NETLINK_ROUTE socket", e))?;
        let task = tokio::spawn(connection);
        let out = f(handle).await;
        task.abort();
        out
    })
}

fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

/// A blocking NETLINK_ROUTE socket for one-off link requests, without a runtime to build.
///
/// A netlink socket belongs to the namespace of the thread that opened it, whichever
/// thread uses it afterwards: [`NetNs`] opens one on the lab's thread and brings `lo` up
/// through it from the creating thread, while the lab's thread writes sysctls.
pub struct RouteSocket {
    socket: rtnetlink::sys::Socket,
}

impl RouteSocket {
    /// Opens a socket in the calling thread's namespace.
    pub fn open_current() -> Result<Self> {
        use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
        let io =
            |op: &'static str| move |e: std::io::Error| Error::io(op, "NETLINK_ROUTE socket", e);
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(io("open"))?;
        socket.bind_auto().map_err(io("bind"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io("connect"))?;
        Ok(Self { socket })
    }

    /// Sets the link with `index` up (`lo` is index 1 in every new namespace) with one
    /// RTM_SETLINK request; `name` is for messages.
    pub fn set_up(&self, name: &str, index: u32) -> Result<()> {
        use rtnetlink::packet_core::{
            NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
        };
        use rtnetlink::packet_route::RouteNetlinkMessage;

        let what = format!("ip link set {name} up");
        let io = |op: &'static str| {
            let what = what.clone();
            move |e: std::io::Error| Error::io(op, format!("NETLINK_ROUTE socket ({what})"), e)
        };
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK;
        header.sequence_number = 1;
        let link = LinkUnspec::new_with_index(index).up().build();
        let mut request = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::SetLink(link)),
        );
        request.finalize();
        let mut buf = vec![0u8; request.buffer_len()];
        request.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(io("send"))?;

        let mut reply = Vec::with_capacity(4096);
        self.socket.recv(&mut reply, 0).map_err(io("recv"))?;
        let ack = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply).map_err(|e| {
            Error::io(
                "parse",
                format!("netlink ack ({what})"),
                std::io::Error::other(e.to_string()),
            )
        })?;
        match ack.payload {
            NetlinkPayload::Error(err) => match err.code {
                None => Ok(()),
                Some(code) => Err(Error::sys(what, nix::errno::Errno::from_raw(-code.get()))),
            },
            other => Err(Error::io(
                "parse",
                format!("netlink ack ({what})"),
                std::io::Error::other(format!("unexpected reply {other:?}")),
            )),
        }
    }
}

async fn index_of(handle: &Handle, name: &str) -> Result<u32> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(link.header.index),
        Ok(None) => Err(Error::Thread {
            thread: "netlink".into(),
            reason: format!("link {name} vanished"),
        }),
        Err(e) => Err(netlink(format!("ip link show {name}"))(e)),
    }
}

async fn address_up(handle: &Handle, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    let index = index_of(handle, name).await?;
    handle
        .address()
        .add(index, addr.into(), prefix)
        .execute()
        .await
        .map_err(netlink(format!("ip addr add {addr}/{prefix} dev {name}")))?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink(format!("ip link set {name} up")))
}

/// Gives the existing link `name` in the calling thread's namespace the lab address
/// `addr/prefix` and sets it up (`ip addr add … dev name; ip link set name up`). Run it on
/// a thread inside the namespace ([`NetNs::run`]).
pub fn address_up_current(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    if !is_lab_address(addr) {
        return Err(Error::Invalid {
            reason: format!("{addr} is outside the RFC 5737 lab ranges"),
        });
    }
    with_handle(|handle| async move { address_up(&handle, name, addr, prefix).await })
}

/// Sets the transmit queue length of `name` in the calling thread's namespace (`ip link
/// set name txqueuelen len`).
pub fn set_txqueuelen_current(name: &str, len: u32) -> Result<()> {
    with_handle(|handle| async move {
        let index = index_of(&handle, name).await?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).txqueuelen(len).build())
            .execute()
            .await
            .map_err(netlink(format!("ip link set {name} txqueuelen {len}")))
    })
}

/// The packets the kernel dropped on transmit on `name` in the calling thread's
/// namespace (its `tx_dropped` counter: for a TUN device, its queue was full).
pub fn tx_dropped_current(name: &str) -> Result<u64> {
    use rtnetlink::packet_route::link::LinkAttribute;
    with_handle(|handle| async move {
        let mut links = handle.link().get().match_name(name.to_owned()).execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Stats64(s) => Some(s.tx_dropped),
                    _ => None,
                })
                .unwrap_or(0)),
            Ok(None) => Err(Error::Thread {
                thread: "netlink".into(),
                reason: format!("link {name} vanished"),
            }),
            Err(e) => Err(netlink(format!("ip -s link show {name}"))(e)),
        }
    })
}

/// Connects `a` and `b` with a veth pair (`nc0` in `a`, `nc1` in `b`) in the subnet
/// `addr_a/prefix`, `addr_b/prefix`. Both addresses must be lab addresses.
pub fn veth_pair(
    a: &NetNs,
    addr_a: Ipv4Addr,
    b: &NetNs,
    addr_b: Ipv4Addr,
    prefix: u8,
) -> Result<()> {
    for addr in [addr_a, addr_b] {
        if !is_lab_address(addr) {
            return Err(Error::Thread {
                thread: "veth".into(),
                reason: format!("{addr} is outside the RFC 5737 lab ranges"),
            });
        }
    }
    let peer_fd = b.fd().as_raw_fd();
    a.run(|| {
        with_handle(|handle| async move {
            handle
                .link()
                .add(LinkVeth::new("nc0", "nc1").build())
                .execute()
                .await
                .map_err(netlink("ip link add nc0 type veth peer name nc1"))?;
            let peer = index_of(&handle, "nc1").await?;
            handle
                .link()
                .set(
                    LinkUnspec::new_with_index(peer)
                        .setns_by_fd(peer_fd)
                        .build(),
                )
                .execute()
                .await
                .map_err(netlink("ip link set nc1 netns <peer>"))?;
            address_up(&handle, "nc0", addr_a, prefix).await
        })
    })??;
    b.run(|| {
        with_handle(|handle| async move { address_up(&handle, "nc1", addr_b, prefix).await })
    })??;
    // The kernel turns carrier on and activates the qdisc later, from the linkwatch work
    // (rate-limited to once a second, later still under load). Until then packets are
    // dropped by the noop qdisc before any packet socket sees them: a claim's first SYN
    // would vanish without trace. So wait until both ends are operationally up.
    a.run(|| wait_running("nc0", LINK_UP_TIMEOUT))??;
    b.run(|| wait_running("nc1", LINK_UP_TIMEOUT))?
}

/// How long a new veth may take to become operational.
const LINK_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until `name` in the calling thread's namespace has `IFF_RUNNING` (operstate up,
/// set by linkwatch just before it activates the device's qdisc).
pub fn wait_running(name: &str, timeout: std::time::Duration) -> Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .map_err(|e| Error::io("socket", "AF_INET for SIOCGIFFLAGS", e))?;
    let flags = || -> Result<i32> {
        // SAFETY: ifreq is plain old data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_ifru.ifru_flags of the valid,
        // exclusively borrowed ifreq.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
        if rc != 0 {
            return Err(Error::io(
                "ioctl(SIOCGIFFLAGS)",
                name,
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: the kernel filled the flags member of the union.
        Ok(i32::from(unsafe { req.ifr_ifru.ifru_flags }))
    };
    let mut failed = None;
    let waited = crate::wait::until_every(
        &format!("{name} running (carrier up)"),
        timeout,
        std::time::Duration::from_millis(5),
        || match flags() {
            Ok(f) if f & libc::IFF_RUNNING != 0 => crate::wait::Poll::Ready(()),
            Ok(f) => crate::wait::Poll::Pending(format!("flags {f:#x}")),
            Err(e) => {
                failed = Some(e);
                crate::wait::Poll::Ready(())
            }
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    waited.map_err(|e| Error::Thread {
        thread: "veth".into(),
        reason: e.to_string(),
    })?;
    // linkwatch activates the qdisc right after publishing the operstate.
    std::thread::sleep(std::time::Duration::from_millis(2));
    Ok(())
}
