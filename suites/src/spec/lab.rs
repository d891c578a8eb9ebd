//! `[claim.lab]`: the lab a claim builds and what it puts at `{target}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::link::{LinkSpec, RuleSpec};
use super::{Family, Span, Value};

/// The lab a claim builds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// `net.*` sysctls set in the lab's namespace before anything runs; a knob the
    /// kernel lacks or a value it rejects makes the claim `not-applicable`.
    #[serde(default)]
    pub sysctls: BTreeMap<String, Value>,
    /// Sysctls set only where the kernel has them (their absence is noted).
    #[serde(default)]
    pub sysctls_if_present: BTreeMap<String, Value>,
    /// What is at `{target}`.
    #[serde(default)]
    pub server: Server,
    /// The target's port (default per server: drop-syn 7, blackhole 80, others 8080).
    #[serde(default)]
    pub port: Option<u16>,
    /// listen() backlog of a never-accept server (default 16; capped by somaxconn).
    #[serde(default)]
    pub backlog: Option<u32>,
    /// Host names the command resolves inside the lab (`/etc/hosts`), each to `target`.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// `ipv4` (default) or `ipv6` (the target is ::1; drop-syn, refuse and none only).
    #[serde(default)]
    pub family: Family,
    /// For `server = "reject"`: what iptables' REJECT sends (`tcp-reset`,
    /// `icmp-port-unreachable`, `icmp-host-unreachable`, `icmp-net-unreachable`,
    /// `icmp-admin-prohibited`, …).
    #[serde(default)]
    pub reject_with: Option<String>,
    /// A wire of netclaim's own between the client and a peer namespace that holds the
    /// server, instead of loopback or a veth: delay, jitter, loss, … ([`super::link`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkSpec>,
    /// Packet rules on that wire (a scripted peer): drop the first SYN-ACK, a zero
    /// window, a reset after N bytes ([`RuleSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
    /// For `server = "trickle"`: how its response body trickles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trickle: Option<TrickleSpec>,
    /// For `server = "reply"`: the server sets `TCP_QUICKACK` again after every recv()
    /// (tcp(7): the flag is not permanent), so it ACKs each part of a request at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quickack: bool,
}

/// `lab.trickle = { every = "1s", bytes = 4 }`: the trickle server sends its headers
/// (with `Content-Length: bytes`) at once, then the body one byte every `every`, the
/// first `every` after the headers: the whole body takes `bytes × every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrickleSpec {
    /// The time between two body bytes (and from the headers to the first).
    pub every: Span,
    /// The body's length (default 4).
    #[serde(default = "TrickleSpec::default_bytes")]
    pub bytes: u64,
}

impl TrickleSpec {
    fn default_bytes() -> u64 {
        4
    }

    /// The time from the headers to the last byte.
    pub fn body_time(&self) -> std::time::Duration {
        self.every
            .0
            .saturating_mul(u32::try_from(self.bytes).unwrap_or(u32::MAX))
    }
}

/// What a lab puts at `{target}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    /// Nothing: the target is 127.0.0.1:port and nothing listens there (RST).
    #[default]
    None,
    /// An iptables rule drops SYNs to 127.0.0.1:port: no answer at all.
    DropSyn,
    /// A peer namespace over veth (192.0.2.2) that drops every packet.
    Blackhole,
    /// Nothing listens on 127.0.0.1:port: the kernel answers SYN with RST.
    Refuse,
    /// A listener that accepts connections and never sends a byte.
    Silent,
    /// A listener that never calls accept(): the kernel completes handshakes until
    /// the accept queue is full.
    NeverAccept,
    /// A unix stream listener (`{target}` is its path) that never calls accept().
    NeverAcceptUnix,
    /// An HTTP server answering `200 OK` with a short body.
    Http,
    /// A peer namespace over veth (192.0.2.2) whose iptables rejects connections to the
    /// port with `lab.reject_with`.
    Reject,
    /// An address (203.0.113.1) the client's lab has no route to.
    Unroutable,
    /// A peer namespace over veth (192.0.2.2) that accepts the connection and then drops
    /// every packet: a host that died after the handshake.
    DiesAfterHandshake,
    /// A listener that accepts each connection and resets it at once (RST).
    RstAfterHandshake,
    /// An HTTP server that answers with its headers at once and then its body one byte
    /// every `lab.trickle.every`.
    Trickle,
    /// A server that answers each 200-byte request with 100 bytes (the `exchange`
    /// client's peer).
    Reply,
    /// A listener that reads each connection to its end, discarding the bytes, then
    /// closes it (`client = "bulk"` writes to it).
    Sink,
}

/// A unit variant's name as the file writes it (`"dies-after-handshake"`).
pub(super) fn serde_kebab<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Server {
    /// Every kind's name, for messages.
    pub const NAMES: &'static str = "none | drop-syn | blackhole | refuse | silent | never-accept | never-accept-unix | http | reject | unroutable | dies-after-handshake | rst-after-handshake | trickle | reply | sink";

    /// The port of `{target}` when the file names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::DropSyn => 7,
            Self::Blackhole | Self::Reject | Self::Unroutable | Self::DiesAfterHandshake => 80,
            _ => 8080,
        }
    }

    /// Whether SYNs to the target are never answered (the kernel retransmits them).
    pub fn drops_syns(self) -> bool {
        matches!(self, Self::DropSyn | Self::Blackhole)
    }

    /// Whether the kernel completes the handshake and then nothing is ever sent.
    pub fn answers_nothing(self) -> bool {
        matches!(
            self,
            Self::Silent | Self::NeverAccept | Self::NeverAcceptUnix
        )
    }
}
