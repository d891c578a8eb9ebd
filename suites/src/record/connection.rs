//! What a client after the SYN records (see [`crate::measure::connection`]): rejections,
//! retransmissions, keepalive probes, close() and the passive side's SYN-ACKs.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What a client after the SYN observed, beside the engine's common record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AfterRecord {
    /// The handshake's RTT on the wire (SYN out → SYN-ACK in), µs.
    pub rtt_us: Option<u64>,
    /// `TCP_INFO`'s `tcpi_rto` right after the handshake, µs.
    pub kernel_rto_us: Option<u64>,
    /// `TCP_INFO`'s `tcpi_rtt` right after the handshake: the kernel's own first RTT
    /// sample, µs (the model's input; under emulation it can exceed the wire's RTT by
    /// milliseconds).
    #[serde(default)]
    pub kernel_rtt_us: Option<u64>,
    /// `stream`: `tcpi_rto` once the first window probe is out (the persist timer's
    /// base is `max(RTO, TCP_RTO_MIN)`; the data's own RTT samples move it from the
    /// handshake's), µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_rto_us: Option<u64>,
    /// `stream`: for each entry of `sent_us`, the last packet from the peer before the
    /// next one (after the last: the last at all), µs from the same origin: the ACK the
    /// persist timer was armed at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answered_us: Vec<u64>,
    /// `idle` with a live peer: the median round trip from a keepalive probe to the
    /// peer's answer on the wire, µs (the model's input for when the next probe is due;
    /// the handshake's one sample may have been taken under a load that passed). Absent
    /// when no probe was answered, and in records from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_rtt_us: Option<u64>,
    /// `send`: transmissions of the data segment; `idle`: keepalive probes (from the
    /// SYN-ACK); `syn-only`: SYN-ACKs. µs, from the first (or the SYN-ACK).
    pub sent_us: Vec<u64>,
    /// `close`: the client sent an RST.
    pub rst: bool,
    /// `close`: the client sent a FIN.
    pub fin: bool,
    /// Kernel states the socket (or request) went through while watched.
    pub states: Vec<String>,
    /// Whether the socket (or request) left the kernel's table while watched.
    pub gone: bool,
    /// `close`: when the orphan's FIN_WAIT_2 timer is due, from close(), as the kernel
    /// armed it (the last sighting in FIN_WAIT2 plus the time left on its timer, in ms as
    /// the kernel's jiffies give it). Unlike the moment the socket is seen gone, it does
    /// not depend on how soon the watching thread gets the CPU.
    #[serde(default)]
    pub armed_end_us: Option<u64>,
    /// ICMP (type, code) errors about the connection seen on the wire.
    pub icmp: Vec<(u8, u8)>,
    /// µs from where the client starts its clock to where the kernel starts its timer:
    /// `close`, from close() to the peer's ACK of its FIN (FIN_WAIT_2 starts there; a
    /// delayed ACK takes tens of ms; records from before the instants were kept count from
    /// the FIN); `idle`, from the handshake to the last packet received from
    /// the peer (keepalive counts idleness from there; a probe the peer still answered
    /// before it went silent moves it).
    #[serde(default)]
    pub starts_after_us: Option<u64>,
    /// `close`: how long close() took, µs. An ACK of the FIN that arrives while close()
    /// still holds the socket waits in its backlog until close() releases it, and only
    /// then arms the FIN_WAIT_2 timer: the timer starts between the ACK and close()'s
    /// return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_took_us: Option<u64>,
    /// `close`: when close() was called, to set the capture's packets against (only in
    /// the measuring process; not recorded).
    #[serde(skip)]
    pub close_started: Option<Instant>,
    /// Per entry of `sent_us`: the slowness probe's worst timer lateness over each kernel
    /// timer before it, summed, µs (how much later than the model it may have gone out
    /// on this machine). Empty in records from before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_late_us: Vec<u64>,
    /// The probe's worst timer lateness over the whole wait (from the client's start to
    /// the error or the socket's departure), µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_us: Option<u64>,
    /// How much later than the event the watch of the socket (its lookups) may have recorded it,
    /// µs: from the last lookup that still found the socket to the one that did not; with
    /// `armed_end_us`, the longest lookup (the sighting may precede its recorded time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_error_us: Option<u64>,
    /// `bulk`: the transfer and its loss recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<super::recovery::BulkRecord>,
}

impl AfterRecord {
    /// The round trip a model of `client` counts: the kernel's first sample (else the
    /// handshake's on the wire), but for keepalive, whose next probe is due keepalive
    /// time after the answer to the last, the probes' own where one was answered.
    pub fn model_rtt(&self, client: crate::spec::Client) -> Option<std::time::Duration> {
        let probes = self
            .probe_rtt_us
            .filter(|_| client == crate::spec::Client::Idle);
        probes
            .or(self.kernel_rtt_us)
            .or(self.rtt_us)
            .map(std::time::Duration::from_micros)
    }
}
