//! `[claim.run]` and `[claim.sweep]`: the action, the in-repo clients and their socket
//! options, and the sysctl a claim is run once per value of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Span, Value};

/// The action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// A program and its arguments, with `{target}`, `{ip}` and `{port}` replaced.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// An in-repo client instead of a command.
    #[serde(default)]
    pub client: Option<Client>,
    /// The harness's hard deadline for the command (default: twice what the model
    /// predicts, plus 30 s). A command still running then is killed.
    #[serde(default)]
    pub timeout: Option<Span>,
    /// Environment variables for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Bytes fed on the command's stdin (otherwise /dev/null).
    #[serde(default)]
    pub stdin: Option<String>,
    /// The program's own deadline (a connect or read timeout it is configured with), for
    /// a program the tool model does not know: the model then predicts it ends there.
    #[serde(default)]
    pub deadline: Option<Span>,
    /// Run the command under `strace -f -e trace=connect`, so the errno and the number of
    /// its connect() calls to the target are observed (`expect.errno`,
    /// `expect.connect_calls`). Needs strace.
    #[serde(default)]
    pub trace_connect: bool,
    /// Socket options the in-repo client sets before connect().
    #[serde(default)]
    pub socket: SocketSpec,
    /// `connect` only: keep the connection open this long after connect() returns, so
    /// the capture sees what the peer sends meanwhile (its SYN-ACK again when the
    /// handshake's final ACK was lost). At most 60 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Span>,
}

/// Socket options of the in-repo client (tcp(7), socket(7)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketSpec {
    /// `TCP_SYNCNT`: SYN retransmissions of this connect.
    #[serde(default)]
    pub syncnt: Option<u32>,
    /// `TCP_USER_TIMEOUT` (`"3s"`).
    #[serde(default)]
    pub user_timeout: Option<Span>,
    /// `SO_KEEPALIVE`.
    #[serde(default)]
    pub keepalive: bool,
    /// `TCP_KEEPIDLE`, seconds.
    #[serde(default)]
    pub keepidle: Option<u32>,
    /// `TCP_KEEPINTVL`, seconds.
    #[serde(default)]
    pub keepintvl: Option<u32>,
    /// `TCP_KEEPCNT`.
    #[serde(default)]
    pub keepcnt: Option<u32>,
    /// `SO_LINGER` on, with this timeout (`"0s"`: close() resets the connection).
    #[serde(default)]
    pub linger: Option<Span>,
    /// `TCP_LINGER2`, seconds: the orphaned FIN_WAIT_2 lifetime of this socket.
    #[serde(default)]
    pub linger2: Option<i32>,
    /// `TCP_RTO_MIN_US`, µs (up to 200000): this socket's RTO floor, over the
    /// `tcp_rto_min_us` sysctl; a kernel without the option makes the claim
    /// not-applicable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_min_us: Option<u32>,
    /// `TCP_NODELAY` (`exchange`): Nagle's algorithm off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nodelay: bool,
    /// `TCP_CORK` (`exchange`): the client corks its requests and never uncorks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cork: bool,
}

impl SocketSpec {
    /// Whether any option is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The in-repo clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    /// One blocking connect() to the target: its errno and duration.
    Connect,
    /// Nonblocking connects held open until one fails or does not complete: how many
    /// were queued, and the errno of the one that failed (a backlog).
    Fill,
    /// Blocking connects held open until one fails: how many, and the errno (ports).
    Exhaust,
    /// Connects, waits until the peer drops everything, sends 100 bytes and waits for the
    /// connection's error: the data retransmissions and the give-up.
    Send,
    /// Connects and leaves the connection idle until it fails (keepalive).
    Idle,
    /// Connects, then close()s: what goes on the wire (FIN or RST) and how long the
    /// socket stays in the kernel's table (FIN_WAIT_2).
    Close,
    /// Connects over a wire whose peer advertises a zero window (a `window 0` rule toward
    /// the client) and writes until the connection fails: the data fills the window, then
    /// the persist timer probes the peer, and `TCP_USER_TIMEOUT` (required) ends it.
    Stream,
    /// Sends one SYN from a raw socket and never answers the SYN-ACK: the passive side's
    /// SYN-ACK retransmissions and when the server drops the request.
    SynOnly,
    /// Connects to a `reply` server, then makes request/reply exchanges, each request
    /// written as two small write()s before the reply is read (write-write-read): how
    /// long each takes (Nagle, delayed ACKs, `TCP_QUICKACK`, `TCP_CORK`).
    Exchange,
    /// Connects to a sink, writes [`BULK_BYTES`](crate::measure::connection::BULK_BYTES),
    /// shuts its write side and waits until the sink has taken everything and closed:
    /// how a segment lost on the way is repaired (`TCP_INFO`, the namespace's TCP
    /// counters, the capture).
    Bulk,
}

/// Runs a claim once per value of one sysctl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The `net.*` sysctl.
    pub sysctl: String,
    /// Its values; each gets its own lab.
    pub values: Vec<Value>,
}
