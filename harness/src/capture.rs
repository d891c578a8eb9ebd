//! In-process packet capture inside a lab: an `AF_PACKET` socket opened on a thread in
//! the namespace records TCP handshake packets (SYN, SYN-ACK, RST, FIN) and data pushes
//! (PSH) with kernel receive timestamps, like the seeds' tcpdump listings but without a
//! tcpdump process. Pure ACKs are left out.

use std::fmt;
use std::io::IoSliceMut;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, LinkAddr, MsgFlags};
use nix::sys::time::TimeVal;

use crate::error::{Error, Result};
use crate::netns::NetNs;

const PACKET_OUTGOING: u8 = 4;
const LOOPBACK_IFINDEX: usize = 1;

/// TCP header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH: the segment carries data the sender pushes.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// A connection request: SYN without ACK.
    pub fn is_syn(self) -> bool {
        self.has(Self::SYN) && !self.has(Self::ACK)
    }

    /// SYN-ACK.
    pub fn is_syn_ack(self) -> bool {
        self.has(Self::SYN) && self.has(Self::ACK)
    }

    /// RST.
    pub fn is_rst(self) -> bool {
        self.has(Self::RST)
    }

    /// FIN.
    pub fn is_fin(self) -> bool {
        self.has(Self::FIN)
    }

    /// Data pushed (PSH).
    pub fn is_push(self) -> bool {
        self.has(Self::PSH)
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tcpdump's notation: S, S., R, R., F., .
        let mut s = String::new();
        for (bit, c) in [
            (Self::SYN, 'S'),
            (Self::FIN, 'F'),
            (Self::RST, 'R'),
            (Self::PSH, 'P'),
        ] {
            if self.has(bit) {
                s.push(c);
            }
        }
        if self.has(Self::ACK) {
            s.push('.');
        }
        f.write_str(&s)
    }
}

/// One captured TCP packet (or an ICMP error about one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpEvent {
    /// Kernel timestamp, relative to the start of the capture.
    pub at: Duration,
    /// Source address and port (for an ICMP error: of the TCP segment it quotes).
    pub src: SocketAddr,
    /// Destination address and port (likewise).
    pub dst: SocketAddr,
    /// TCP flags.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (0 when the header was cut before it, as an ICMP error may
    /// quote it, and in captures recorded before it was kept).
    #[serde(default)]
    pub ack: u32,
    /// Payload bytes.
    pub len: u32,
    /// For an ICMP (or ICMPv6) error: its (type, code); the addresses and ports are then
    /// those of the TCP segment it returns.
    pub icmp: Option<(u8, u8)>,
}

impl TcpEvent {
    /// Whether this segment acknowledges stream bytes past `seq` (ACK set, its number
    /// after `seq` in sequence-number arithmetic, RFC 9293 3.4).
    pub fn acks_past(&self, seq: u32) -> bool {
        self.flags.has(TcpFlags::ACK) && (self.ack.wrapping_sub(seq) as i32) > 0
    }
}

impl fmt::Display for TcpEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((kind, code)) = self.icmp {
            return write!(
                f,
                "{:>10.3} s  ICMP type {kind} code {code} about {} > {}",
                self.at.as_secs_f64(),
                self.src,
                self.dst
            );
        }
        write!(
            f,
            "{:>10.3} s  {} > {}  Flags [{}]",
            self.at.as_secs_f64(),
            self.src,
            self.dst,
            self.flags
        )?;
        if self.len > 0 {
            write!(f, ", seq {}, length {}", self.seq, self.len)?;
        }
        Ok(())
    }
}

/// A running capture; [`Capture::finish`] stops it and returns the packets.
#[derive(Debug)]
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Result<Vec<TcpEvent>>>>,
    started: Instant,
}

impl Capture {
    /// The moment every [`TcpEvent::at`] is relative to, on the monotonic clock, so that
    /// packets can be set against other events (a process's spawn and exit). Packet
    /// stamps are the kernel's wall clock, read together with this instant.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Stops capturing and returns the packets seen, in order.
    pub fn finish(self) -> Result<Vec<TcpEvent>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| Error::Thread {
            thread: "capture".into(),
            reason: "panicked".into(),
        })??
    }
}

/// The TCP header at `tcp` between `src` and `dst`, with `payload` bytes after its
/// header (`None` for a quoted header, whose payload is unknown).
fn tcp_of(
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    tcp: &[u8],
    total: Option<usize>,
) -> Option<TcpEvent> {
    // A quoted header may be cut after its first 8 bytes (RFC 792): ports and sequence.
    let need = if total.is_some() { 14 } else { 8 };
    if tcp.len() < need {
        return None;
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let header = tcp.get(12).map_or(20, |b| usize::from(b >> 4) * 4);
    let len = total.map_or(0, |t| t.saturating_sub(header) as u32);
    Some(TcpEvent {
        at: Duration::ZERO,
        src: SocketAddr::new(src, port(&tcp[0..2])),
        dst: SocketAddr::new(dst, port(&tcp[2..4])),
        flags: TcpFlags(tcp.get(13).copied().unwrap_or(0)),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        ack: tcp
            .get(8..12)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        len,
        icmp: None,
    })
}

/// An IPv4 packet: a TCP segment, or an ICMP error quoting one.
fn ipv4(ip: &[u8], quoted: bool) -> Option<TcpEvent> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let addr = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let body = ip.get(ihl..)?;
    match ip[9] {
        6 => tcp_of(
            addr(&ip[12..16]).into(),
            addr(&ip[16..20]).into(),
            body,
            (!quoted).then(|| total.saturating_sub(ihl)),
        ),
        1 if !quoted && body.len() >= 8 && body[0] == 3 => {
            let mut inner = ipv4(body.get(8..)?, true)?;
            inner.icmp = Some((body[0], body[1]));
            Some(inner)
        }
        _ => None,
    }
}

/// An IPv6 packet without extension headers: a TCP segment, or an ICMPv6 error quoting
/// one.
fn ipv6(ip: &[u8], quoted: bool) -> Option<TcpEvent> {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let addr = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        Ipv6Addr::from(a)
    };
    let body = &ip[40..];
    match ip[6] {
        6 => tcp_of(
            addr(&ip[8..24]).into(),
            addr(&ip[24..40]).into(),
            body,
            (!quoted).then_some(payload),
        ),
        58 if !quoted && body.len() >= 8 && body[0] == 1 => {
            let mut inner = ipv6(body.get(8..)?, true)?;
            inner.icmp = Some((body[0], body[1]));
            Some(inner)
        }
        _ => None,
    }
}

/// Parses an Ethernet frame carrying IPv4 or IPv6 with TCP, or an ICMP error about a TCP
/// segment (its `at` left at zero); `None` for anything else.
pub fn parse_frame(frame: &[u8]) -> Option<TcpEvent> {
    if frame.len() < 14 {
        return None;
    }
    match frame[12..14] {
        [0x08, 0x00] => ipv4(&frame[14..], false),
        [0x86, 0xdd] => ipv6(&frame[14..], false),
        _ => None,
    }
}

/// Parses an IP packet without link header (as read on a TUN device): IPv4 or IPv6 by its
/// version nibble, as [`parse_frame`] does after the Ethernet header.
pub fn parse_ip(packet: &[u8]) -> Option<TcpEvent> {
    match packet.first()? >> 4 {
        4 => ipv4(packet, false),
        6 => ipv6(packet, false),
        _ => None,
    }
}

/// A packet socket that sees every packet the namespace sends and receives, with link
/// headers (`SOCK_RAW`) or without (`SOCK_DGRAM`), and a short receive timeout so that a
/// capture loop sees its stop flag.
fn packet_socket(ty: libc::c_int, call: &'static str) -> Result<OwnedFd> {
    // ETH_P_ALL: outgoing packets reach only the packet taps registered for every protocol.
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the returned descriptor is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, ty | libc::SOCK_CLOEXEC, i32::from(proto)) };
    if fd < 0 {
        return Err(Error::sys(call, nix::errno::Errno::last()));
    }
    // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 20_000))
        .map_err(|e| Error::sys("setsockopt(SO_RCVTIMEO)", e))?;
    Ok(fd)
}

/// The TCP capture's socket: whole frames, each with the kernel's receive timestamp.
fn open_packet_socket() -> Result<OwnedFd> {
    let fd = packet_socket(libc::SOCK_RAW, "socket(AF_PACKET, SOCK_RAW, ETH_P_ALL)")?;
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)
        .map_err(|e| Error::sys("setsockopt(SO_TIMESTAMPNS)", e))?;
    // Room for a bulk transfer's packets while the capture thread waits for a CPU (the
    // default, rmem_default, holds about a hundred data segments: a transfer of hundreds
    // lost some on a loaded machine). SO_RCVBUFFORCE passes rmem_max where the capability
    // allows; otherwise SO_RCVBUF, capped by it.
    if setsockopt(&fd, sockopt::RcvBufForce, &CAPTURE_RCVBUF).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &CAPTURE_RCVBUF);
    }
    Ok(fd)
}

/// The capture socket's receive buffer, bytes.
const CAPTURE_RCVBUF: usize = 16 << 20;

/// The wall clock and the monotonic clock read together: of a few tries, the one whose two
/// monotonic reads around the wall-clock read are closest (a preemption between the reads
/// would shift every packet's instant by its length: seen as a give-up 6 ms "early" on a
/// loaded machine).
fn clock_pair() -> (Duration, Instant) {
    let mut best: Option<(Duration, Duration, Instant)> = None;
    for _ in 0..5 {
        let before = Instant::now();
        let wall = realtime_now();
        let after = Instant::now();
        let gap = after - before;
        if best.is_none_or(|(g, _, _)| gap < g) {
            best = Some((gap, wall, before + gap / 2));
        }
    }
    let (_, wall, mono) = best.unwrap_or((Duration::ZERO, realtime_now(), Instant::now()));
    (wall, mono)
}

fn realtime_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn capture_loop(
    fd: OwnedFd,
    port: u16,
    all: bool,
    stop: &AtomicBool,
    t0: Duration,
) -> Result<Vec<TcpEvent>> {
    let mut events = Vec::new();
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<LinkAddr>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_TRUNC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(events);
                }
                continue;
            }
            Err(e) => return Err(Error::sys("recvmsg(AF_PACKET)", e)),
        };
        let stamp = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    Some(Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32))
                }
                _ => None,
            })
        });
        let Some(link) = msg.address else { continue };
        let len = msg.bytes.min(buf.len());
        // On lo every packet shows twice (outgoing, then incoming): keep the outgoing copy.
        if link.ifindex() == LOOPBACK_IFINDEX && link.pkttype() != PACKET_OUTGOING {
            continue;
        }
        // A TUN device (the wire's, ARPHRD_NONE) has no link header: the packet is IP.
        let parsed = if link.hatype() == libc::ARPHRD_NONE {
            parse_ip(&buf[..len])
        } else {
            parse_frame(&buf[..len])
        };
        let Some(p) = parsed else {
            continue;
        };
        if p.src.port() != port && p.dst.port() != port {
            continue;
        }
        let handshake = p.icmp.is_none()
            && (p.flags.has(TcpFlags::SYN)
                || p.flags.has(TcpFlags::RST)
                || p.flags.has(TcpFlags::FIN)
                || p.flags.has(TcpFlags::PSH));
        if !(all || handshake) {
            continue;
        }
        events.push(TcpEvent {
            at: stamp.unwrap_or_else(realtime_now).saturating_sub(t0),
            ..p
        });
    }
}

impl NetNs {
    /// Starts capturing TCP handshake packets to or from `port` on every interface of
    /// this namespace. The socket is open when this returns.
    pub fn capture_tcp(&self, port: u16) -> Result<Capture> {
        self.capture(port, false)
    }

    /// Starts capturing every TCP segment to or from `port` (data, pure ACKs and
    /// keepalive probes too) and the ICMP errors about them.
    pub fn capture_tcp_all(&self, port: u16) -> Result<Capture> {
        self.capture(port, true)
    }

    fn capture(&self, port: u16, all: bool) -> Result<Capture> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = self.spawn("capture", move || {
            let fd = match open_packet_socket() {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let (t0, started) = clock_pair();
            let _ = ready_tx.send(Ok(started));
            capture_loop(fd, port, all, &flag, t0)
        })?;
        match ready_rx.recv() {
            Ok(Ok(started)) => Ok(Capture {
                stop,
                thread,
                started,
            }),
            _ => Err(match thread.join() {
                Ok(Err(e)) | Ok(Ok(Err(e))) => e,
                _ => Error::Thread {
                    thread: "capture".into(),
                    reason: "capture ended before it started".into(),
                },
            }),
        }
    }
}

/// Times of the connection requests (SYN without ACK) sent to `dst_port`, relative to the
/// first one.
pub fn syn_times(events: &[TcpEvent], dst_port: u16) -> Vec<Duration> {
    let syns: Vec<Duration> = events
        .iter()
        .filter(|e| e.flags.is_syn() && e.icmp.is_none() && e.dst.port() == dst_port)
        .map(|e| e.at)
        .collect();
    let first = syns.first().copied().unwrap_or_default();
    syns.into_iter().map(|t| t - first).collect()
}

/// Renders events as a tcpdump-like timeline, relative to the first packet.
pub fn timeline(events: &[TcpEvent]) -> String {
    timeline_from(events, events.first().map(|e| e.at).unwrap_or_default())
}

/// Renders events as a tcpdump-like timeline, relative to `first` (the first packet of
/// a longer capture of which these are a part).
pub fn timeline_from(events: &[TcpEvent], first: Duration) -> String {
    events
        .iter()
        .map(|e| {
            TcpEvent {
                at: e.at - first,
                ..e.clone()
            }
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One DNS query seen leaving a namespace (see [`NetNs::capture_dns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    /// When the capture read it, on the monotonic clock (an instant means something only
    /// in the process that captured it).
    pub at: Instant,
    /// The nameserver it went to.
    pub dst: Ipv4Addr,
    /// Its QTYPE: 1 for A, 28 for AAAA.
    pub qtype: u16,
    /// The name asked for, labels joined with dots.
    pub name: String,
}

/// A running capture of the DNS queries (IPv4 UDP to port 53) leaving a namespace: what
/// the TCP capture leaves out. [`DnsCapture::finish`] stops it.
pub struct DnsCapture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Result<Vec<DnsQuery>>>>,
}

impl DnsCapture {
    /// Stops capturing and returns the queries seen, in order.
    pub fn finish(self) -> Result<Vec<DnsQuery>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| Error::Thread {
            thread: "dns-capture".into(),
            reason: "panicked".into(),
        })??
    }
}

/// Parses an IPv4 packet (no link header) carrying a DNS query to port 53, read at `at`;
/// `None` for anything else.
pub fn parse_dns_query(pkt: &[u8], at: Instant) -> Option<DnsQuery> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != 17 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let udp = pkt.get(ihl..)?;
    if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != 53 {
        return None;
    }
    let dns = &udp[8..];
    // Header (12 bytes), then QNAME labels, QTYPE.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*dns.get(i)?);
        if len == 0 || len & 0xc0 != 0 {
            i += 1;
            break;
        }
        labels.push(String::from_utf8_lossy(dns.get(i + 1..i + 1 + len)?).into_owned());
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([*dns.get(i)?, *dns.get(i + 1)?]);
    Some(DnsQuery {
        at,
        dst: Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]),
        qtype,
        name: labels.join("."),
    })
}

/// Reads packets from `fd` until `stop`, keeping the DNS queries.
fn dns_capture_loop(fd: OwnedFd, stop: &AtomicBool) -> Result<Vec<DnsQuery>> {
    let mut queries = Vec::new();
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let n = match nix::sys::socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("recv(AF_PACKET)", e)),
        };
        let at = Instant::now();
        if let Some(q) = parse_dns_query(&buf[..n.min(buf.len())], at) {
            queries.push(q);
        }
    }
    Ok(queries)
}

impl NetNs {
    /// Starts capturing the DNS queries (IPv4 UDP to port 53) this namespace sends, on
    /// every interface. The socket is open when this returns. Each query is stamped when
    /// the capture reads it (within a few µs of its sending on an idle machine).
    pub fn capture_dns(&self) -> Result<DnsCapture> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = self.spawn("dns-capture", move || {
            let fd =
                match packet_socket(libc::SOCK_DGRAM, "socket(AF_PACKET, SOCK_DGRAM, ETH_P_ALL)") {
                    Ok(fd) => fd,
                    Err(e) => {
                        let _ = ready_tx.send(false);
                        return Err(e);
                    }
                };
            let _ = ready_tx.send(true);
            dns_capture_loop(fd, &flag)
        })?;
        match ready_rx.recv() {
            Ok(true) => Ok(DnsCapture { stop, thread }),
            _ => Err(match thread.join() {
                Ok(Err(e)) | Ok(Ok(Err(e))) => e,
                _ => Error::Thread {
                    thread: "dns-capture".into(),
                    reason: "the DNS capture ended before it started".into(),
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&[127, 0, 0, 1]);
        f[14 + 16..14 + 20].copy_from_slice(&[192, 0, 2, 2]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[34 + 13] = flags;
        f
    }

    #[test]
    fn parses_a_syn() {
        let p = parse_frame(&frame(TcpFlags::SYN)).unwrap();
        assert_eq!(p.src, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(p.dst, "192.0.2.2:80".parse().unwrap());
        assert!(p.flags.is_syn());
        assert_eq!(p.flags.to_string(), "S");
        assert_eq!(TcpFlags(TcpFlags::SYN | TcpFlags::ACK).to_string(), "S.");
    }

    #[test]
    fn reads_payload_length_and_sequence() {
        let mut f = frame(TcpFlags::ACK);
        f[16..18].copy_from_slice(&(20u16 + 20 + 100).to_be_bytes());
        f[34 + 4..34 + 8].copy_from_slice(&7u32.to_be_bytes());
        f[34 + 12] = 5 << 4;
        let p = parse_frame(&f).unwrap();
        assert_eq!((p.seq, p.len), (7, 100));
    }

    #[test]
    fn reads_the_acknowledgement_in_sequence_arithmetic() {
        let mut f = frame(TcpFlags::ACK);
        f[34 + 8..34 + 12].copy_from_slice(&5u32.to_be_bytes());
        let p = parse_frame(&f).unwrap();
        assert_eq!(p.ack, 5);
        // 5 comes after u32::MAX - 10 once the numbers wrap, not before 7.
        assert!(p.acks_past(u32::MAX - 10));
        assert!(p.acks_past(4));
        assert!(!p.acks_past(5));
        assert!(!p.acks_past(7));
        // Without the ACK flag the field means nothing.
        f[34 + 13] = TcpFlags::PSH;
        assert!(!parse_frame(&f).unwrap().acks_past(4));
    }

    #[test]
    fn reads_an_icmp_error_as_the_segment_it_quotes() {
        let syn = frame(TcpFlags::SYN);
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = 1;
        f[34] = 3;
        f[35] = 13;
        f.extend_from_slice(&syn[14..14 + 28]);
        let p = parse_frame(&f).unwrap();
        assert_eq!(p.icmp, Some((3, 13)));
        assert_eq!(p.dst, "192.0.2.2:80".parse().unwrap());
    }

    #[test]
    fn parses_ipv6() {
        let mut f = vec![0u8; 14 + 40 + 20];
        f[12] = 0x86;
        f[13] = 0xdd;
        f[14] = 0x60;
        f[18..20].copy_from_slice(&20u16.to_be_bytes());
        f[20] = 6;
        f[14 + 8 + 15] = 1;
        f[14 + 24 + 15] = 1;
        f[54..56].copy_from_slice(&40000u16.to_be_bytes());
        f[56..58].copy_from_slice(&7u16.to_be_bytes());
        f[54 + 13] = TcpFlags::SYN;
        let p = parse_frame(&f).unwrap();
        assert_eq!(p.dst, "[::1]:7".parse().unwrap());
        assert!(p.flags.is_syn());
    }

    #[test]
    fn parses_an_ip_packet_without_link_header() {
        let f = frame(TcpFlags::SYN | TcpFlags::ACK);
        let p = parse_ip(&f[14..]).unwrap();
        assert!(p.flags.is_syn_ack());
        assert_eq!(p.dst, "192.0.2.2:80".parse().unwrap());
        assert_eq!(parse_ip(&[0x20; 40]), None);
    }

    #[test]
    fn ignores_non_tcp() {
        let mut f = frame(TcpFlags::SYN);
        f[14 + 9] = 17;
        assert_eq!(parse_frame(&f), None);
        assert_eq!(parse_frame(&f[..20]), None);
    }

    #[test]
    fn dns_query_parses() {
        let mut pkt = vec![0u8; 20 + 8 + 12];
        pkt[0] = 0x45;
        pkt[9] = 17;
        pkt[16..20].copy_from_slice(&[192, 0, 2, 2]);
        pkt[22..24].copy_from_slice(&53u16.to_be_bytes());
        pkt.extend_from_slice(b"\x01a\x07example\x00\x00\x1c\x00\x01");
        let q = parse_dns_query(&pkt, Instant::now()).expect("a query");
        assert_eq!(q.name, "a.example");
        assert_eq!(q.qtype, 28);
        assert_eq!(q.dst, Ipv4Addr::new(192, 0, 2, 2));
        // Not UDP to port 53.
        pkt[23] = 54;
        assert_eq!(parse_dns_query(&pkt, Instant::now()), None);
    }
}
