//! IPv4/TCP as the wire sees it: reading the fields rules match on, rewriting the window
//! and the MSS option with the checksum fixed, and building the RSTs and ICMP errors a
//! rule injects. Pure functions over byte slices (no virtio header), unit-tested without
//! a lab.

use std::net::Ipv4Addr;

/// The fields of an IPv4 TCP segment a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags ([`crate::capture::TcpFlags`] bits).
    pub flags: u8,
    /// Payload length.
    pub payload: u32,
    /// Offset of the TCP header in the packet.
    pub tcp_at: usize,
}

/// Reads an IPv4 TCP segment (the first fragment or an unfragmented packet); `None` for
/// anything else.
pub fn segment(ip: &[u8]) -> Option<Segment> {
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 6 {
        return None;
    }
    // A later fragment has no TCP header.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let tcp = ip.get(ihl..total)?;
    if tcp.len() < 20 {
        return None;
    }
    let header = usize::from(tcp[12] >> 4) * 4;
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some(Segment {
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        sport: u16::from_be_bytes([tcp[0], tcp[1]]),
        dport: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: be32(&tcp[4..8]),
        ack: be32(&tcp[8..12]),
        flags: tcp[13],
        payload: tcp.len().saturating_sub(header) as u32,
        tcp_at: ihl,
    })
}

/// The one's-complement sum of `data` folded into 16 bits, starting from `sum`.
fn fold(mut sum: u32, data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Recomputes the IPv4 header checksum.
pub fn fix_ip_checksum(ip: &mut [u8]) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = !fold(0, &ip[..ihl]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Recomputes the checksum of the TCP (protocol 6) or other transport segment after the
/// IPv4 header, with the pseudo-header; for ICMP (protocol 1) without it.
fn fix_transport_checksum(ip: &mut [u8], checksum_at: usize) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let proto = ip[9];
    let start = ihl + checksum_at;
    ip[start..start + 2].copy_from_slice(&[0, 0]);
    let mut pseudo = 0u32;
    if proto != 1 {
        let len = (total - ihl) as u32;
        let pair = |b: &[u8]| u32::from(u16::from_be_bytes([b[0], b[1]]));
        pseudo = pair(&ip[12..14]) + pair(&ip[14..16]) + pair(&ip[16..18]) + pair(&ip[18..20]);
        pseudo += u32::from(proto) + len;
    }
    let sum = !fold(pseudo, &ip[ihl..total]);
    ip[start..start + 2].copy_from_slice(&sum.to_be_bytes());
}

/// Recomputes the TCP checksum of an IPv4 TCP segment.
pub fn fix_tcp_checksum(ip: &mut [u8]) {
    fix_transport_checksum(ip, 16);
}

/// Whether the TCP checksum of an IPv4 segment is right (for tests).
pub fn tcp_checksum_ok(ip: &[u8]) -> bool {
    let mut copy = ip.to_vec();
    fix_tcp_checksum(&mut copy);
    copy == ip
}

/// Sets the advertised window (the raw 16-bit field; a scaled window of 0 is 0 whatever
/// the scale) and fixes the checksum.
pub fn set_window(ip: &mut [u8], seg: &Segment, window: u16) {
    let at = seg.tcp_at + 14;
    ip[at..at + 2].copy_from_slice(&window.to_be_bytes());
    fix_tcp_checksum(ip);
}

/// Rewrites the MSS option, if the segment has one; whether it had.
pub fn set_mss(ip: &mut [u8], seg: &Segment, mss: u16) -> bool {
    let header = usize::from(ip[seg.tcp_at + 12] >> 4) * 4;
    let mut i = seg.tcp_at + 20;
    let end = (seg.tcp_at + header).min(ip.len());
    while i < end {
        match ip[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = ip.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > end {
                    break;
                }
                if kind == 2 && len == 4 {
                    ip[i + 2..i + 4].copy_from_slice(&mss.to_be_bytes());
                    fix_tcp_checksum(ip);
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

/// An IPv4 header of 20 bytes for `proto`, `total` bytes long, checksummed.
fn ip_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, total: usize) -> Vec<u8> {
    let mut ip = vec![0u8; total];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    fix_ip_checksum(&mut ip);
    ip
}

/// A RST from `src:sport` to `dst:dport` with sequence `seq`, acknowledging `ack` (ACK
/// set when `Some`).
pub fn rst(
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    seq: u32,
    ack: Option<u32>,
) -> Vec<u8> {
    let mut ip = ip_header(src, dst, 6, 40);
    let t = &mut ip[20..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.unwrap_or(0).to_be_bytes());
    t[12] = 5 << 4;
    t[13] = crate::capture::TcpFlags::RST | if ack.is_some() { 0x10 } else { 0 };
    fix_tcp_checksum(&mut ip);
    ip
}

/// The two RSTs that reset the connection of `seg` at the wire: to its sender, as if
/// from its receiver (acknowledging what the sender acknowledged: it is in the sender's
/// window), and to its receiver, as if from its sender (at the segment's sequence
/// number, the receiver's next expected byte).
pub fn resets(seg: &Segment) -> (Vec<u8>, Vec<u8>) {
    use crate::capture::TcpFlags;
    let to_sender = if seg.flags & TcpFlags::ACK != 0 {
        rst((seg.dst, seg.dport), (seg.src, seg.sport), seg.ack, None)
    } else {
        // A SYN acknowledges nothing: the RST answers it (RFC 9293 3.10.7.1).
        let syn = u32::from(seg.flags & (TcpFlags::SYN | TcpFlags::FIN) != 0);
        let ack = seg.seq.wrapping_add(seg.payload).wrapping_add(syn);
        rst((seg.dst, seg.dport), (seg.src, seg.sport), 0, Some(ack))
    };
    let to_receiver = rst((seg.src, seg.sport), (seg.dst, seg.dport), seg.seq, None);
    (to_sender, to_receiver)
}

/// An ICMP destination unreachable with `code` about `original`, from its destination
/// to its source, quoting its IP header and the first 8 bytes after it (RFC 792).
pub fn icmp_unreachable(original: &[u8], code: u8) -> Option<Vec<u8>> {
    if original.len() < 20 || original[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(original[0] & 0x0f) * 4;
    let quoted = &original[..(ihl + 8).min(original.len())];
    let src = Ipv4Addr::new(original[16], original[17], original[18], original[19]);
    let dst = Ipv4Addr::new(original[12], original[13], original[14], original[15]);
    let mut ip = ip_header(src, dst, 1, 20 + 8 + quoted.len());
    ip[20] = 3;
    ip[21] = code;
    ip[28..].copy_from_slice(quoted);
    fix_transport_checksum(&mut ip, 2);
    Some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN-ACK 192.0.2.2:80 → 192.0.2.1:40000 with an MSS option of 1460.
    fn syn_ack() -> Vec<u8> {
        let mut ip = ip_header(
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 1),
            6,
            44,
        );
        let t = &mut ip[20..];
        t[0..2].copy_from_slice(&80u16.to_be_bytes());
        t[2..4].copy_from_slice(&40000u16.to_be_bytes());
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t[8..12].copy_from_slice(&501u32.to_be_bytes());
        t[12] = 6 << 4;
        t[13] = 0x12;
        t[14..16].copy_from_slice(&65535u16.to_be_bytes());
        t[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
        fix_tcp_checksum(&mut ip);
        ip
    }

    #[test]
    fn reads_a_segment() {
        let ip = syn_ack();
        let s = segment(&ip).unwrap();
        assert_eq!((s.sport, s.dport, s.seq, s.ack), (80, 40000, 1000, 501));
        assert_eq!((s.flags, s.payload, s.tcp_at), (0x12, 0, 20));
        assert!(tcp_checksum_ok(&ip));
        // An ICMP packet is not a segment.
        assert_eq!(segment(&icmp_unreachable(&ip, 3).unwrap()), None);
    }

    #[test]
    fn a_known_checksum() {
        // RFC 1071's example words sum to ddf2; the checksum is its complement.
        assert_eq!(
            fold(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn window_and_mss_rewrites_keep_the_checksum_right() {
        let mut ip = syn_ack();
        let s = segment(&ip).unwrap();
        set_window(&mut ip, &s, 0);
        assert_eq!(&ip[34..36], &[0, 0]);
        assert!(tcp_checksum_ok(&ip));
        assert!(set_mss(&mut ip, &s, 536));
        assert_eq!(&ip[42..44], &536u16.to_be_bytes());
        assert!(tcp_checksum_ok(&ip));
    }

    #[test]
    fn resets_answer_each_end_in_its_window() {
        let ip = syn_ack();
        let s = segment(&ip).unwrap();
        let (to_sender, to_receiver) = resets(&s);
        let a = segment(&to_sender).unwrap();
        assert_eq!((a.src, a.sport, a.dport), (s.dst, 40000, 80));
        assert_eq!((a.seq, a.flags), (501, 0x04));
        assert!(tcp_checksum_ok(&to_sender));
        let b = segment(&to_receiver).unwrap();
        assert_eq!((b.dst, b.seq, b.flags), (s.dst, 1000, 0x04));
    }

    #[test]
    fn icmp_quotes_the_header_and_eight_bytes() {
        let ip = syn_ack();
        let icmp = icmp_unreachable(&ip, 3).unwrap();
        assert_eq!(icmp.len(), 20 + 8 + 28);
        assert_eq!((icmp[9], icmp[20], icmp[21]), (1, 3, 3));
        assert_eq!(&icmp[16..20], &[192, 0, 2, 2]);
        assert_eq!(!fold(0, &icmp[20..]), 0, "ICMP checksum");
        assert_eq!(!fold(0, &icmp[..20]), 0, "IP checksum");
        let parsed = crate::capture::parse_ip(&icmp).unwrap();
        assert_eq!(parsed.icmp, Some((3, 3)));
    }
}
