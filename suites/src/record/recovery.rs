//! What the `bulk` client records (see [`crate::measure::connection`]): a transfer with a
//! segment lost on the way, and how the kernel repaired it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The counters of the client's namespace a bulk transfer records (`/proc/net/netstat`'s
/// TcpExt, and `/proc/net/snmp`'s Tcp RetransSegs), by name.
pub const COUNTERS: &[(&str, &str)] = &[
    ("TcpExt", "TCPTimeouts"),
    ("TcpExt", "TCPLossProbes"),
    ("TcpExt", "TCPLossProbeRecovery"),
    ("TcpExt", "TCPSackRecovery"),
    ("TcpExt", "TCPRenoRecovery"),
    ("TcpExt", "TCPFastRetrans"),
    ("TcpExt", "TCPSlowStartRetrans"),
    ("TcpExt", "TCPLostRetransmit"),
    ("TcpExt", "TCPSpuriousRTOs"),
    ("TcpExt", "TCPDSACKRecv"),
    ("Tcp", "RetransSegs"),
];

/// A bulk transfer: its figures from `TCP_INFO`, the namespace's counters and the
/// capture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkRecord {
    /// Bytes written.
    pub bytes: u64,
    /// Whether the sink took every byte and closed within the limit.
    pub complete: bool,
    /// The error that ended the transfer early (its text), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `tcpi_rtt` right after the handshake: the kernel's first RTT sample, µs.
    pub rtt_us: u64,
    /// `tcpi_rtt` at the end: the smoothed RTT, µs.
    pub srtt_us: u64,
    /// `tcpi_rttvar` at the end, µs.
    pub rttvar_us: u64,
    /// `tcpi_rto` at the end, µs.
    pub rto_us: u64,
    /// `tcpi_total_retrans`: segments sent again.
    pub total_retrans: u32,
    /// Whether SACK was agreed (`tcpi_options`).
    pub sack: bool,
    /// `tcpi_snd_mss`.
    pub mss: u32,
    /// Each of [`COUNTERS`] over the transfer (after − before), by name.
    pub counters: BTreeMap<String, u64>,
    /// The first segment sent twice (the capture): its offset in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_offset: Option<u64>,
    /// Its first retransmission, µs after its first transmission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent_us: Option<u64>,
    /// The last packet from the sink before that retransmission, µs before it (a timer
    /// armed by that ACK fired then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_us: Option<u64>,
    /// The round trip of the repair: from the lost segment's retransmission to the first
    /// ACK from the sink past it, µs (the capture; absent in records from before it was
    /// kept). The wire's round trip while the loss was repaired, as the handshake's is at
    /// the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_rtt_us: Option<u64>,
    /// Data segments the capture saw sent more than once (each repeat counted).
    pub wire_retransmissions: usize,
    /// Data segments the capture saw in all.
    pub wire_segments: usize,
}

impl BulkRecord {
    /// A counter over the transfer (0 when not recorded).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}
