//! Ephemeral port exhaustion and errno 99 (seed 001).
//!
//! Every claim shrinks `net.ipv4.ip_local_port_range` inside its own namespace to a few
//! ports, so "every port in use" takes a handful of connections instead of 28 232. The
//! connections go to a listener on 127.0.0.1:8080, outside the range. The number of
//! connections the kernel can make is predicted from the range read back: connect()
//! (`__inet_hash_connect`) scans `high + 1 - low` ports rounded down to an even number

//! when that is more than one, both parities, skipping `ip_local_reserved_ports`.

use std::net::SocketAddrV4;
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, Exhaustion, TcpEntry, TimeWaitFill};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::seeds;
use crate::claim::{Claim, Needs, Procedure};
use crate::models::ports::usable_ports;

mod exhaustion;
mod range_size;
#[cfg(test)]
mod tests;
mod tw_reuse;
mod writes_proc;

use exhaustion::{EXHAUSTION_CURL, EXHAUSTION_ERRNO};
use range_size::RANGE_SIZE;
use tw_reuse::TW_REUSE;
use writes_proc::WRITES_PROC;

/// Where the lab listener listens (outside every range the claims set).
pub(crate) const LISTEN_PORT: u16 = 8080;
/// A second destination port, to show that ports are per destination.
pub(crate) const OTHER_PORT: u16 = 8081;
/// The shrunken range most claims use: four ports.
pub(crate) const SMALL_RANGE: (u16, u16) = (40000, 40003);

/// `127.0.0.1:port`.
pub(crate) fn loopback(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new([127, 0, 0, 1].into(), port)
}

/// The range in force after setting `range`, and the number of usable ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RangeInForce {
    /// Low and high, read back.
    pub low: u16,
    /// High, read back.
    pub high: u16,
    /// `ip_local_reserved_ports`, read back.
    pub reserved: String,
    /// What connect() can use at most.
    pub usable: usize,
    /// What connect() can use at least (less than `usable` for odd-sized ranges).
    pub usable_min: usize,
}

impl RangeInForce {
    /// Evidence text.
    pub fn describe(&self) -> String {
        let count = if self.usable_min == self.usable {
            self.usable.to_string()
        } else {
            format!(
                "{} or {} (odd-sized range: each connect() scans an even number of ports)",
                self.usable_min, self.usable
            )
        };
        format!(
            "ip_local_port_range = {} {} (read back), ip_local_reserved_ports = {:?}: connect() can use {count} port(s)",
            self.low, self.high, self.reserved
        )
    }
}

/// Sets the port range of `ns` and reads back what is in force.
pub(crate) fn set_range(
    ns: &NetNs,
    (low, high): (u16, u16),
) -> netclaim_harness::Result<RangeInForce> {
    ns.set_ip_local_port_range(low, high)?;
    let (low, high) = ns.ip_local_port_range()?;
    let reserved = ns
        .sysctl_opt("net.ipv4.ip_local_reserved_ports")?
        .unwrap_or_default();
    let (usable_min, usable) = usable_ports(low, high, &reserved);
    Ok(RangeInForce {
        low,
        high,
        usable,
        usable_min,
        reserved,
    })
}

/// The socket table of a lab namespace as read at one moment, with what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Table {
    /// What the moment was ("with every port held").
    pub title: String,
    /// The namespace it was read in.
    pub lab: String,
    /// Its sockets.
    pub rows: Vec<TcpEntry>,
}

impl Table {
    /// Reads the socket table of `ns`.
    pub fn read(ns: &NetNs, title: &str) -> Result<Self> {
        let table = ports::tcp_table(ns).context("reading /proc/thread-self/net/tcp")?;
        Ok(Self {
            title: title.to_owned(),
            lab: ns.name().to_owned(),
            rows: table,
        })
    }

    /// The sockets.
    pub fn entries(&self) -> &[TcpEntry] {
        &self.rows
    }

    /// The table with a per-state summary, as evidence.
    pub fn text(&self) -> String {
        let table = self.entries();
        format!(
            "{} (/proc/thread-self/net/tcp in {}): {:?}\n{}",
            self.title,
            self.lab,
            ports::state_counts(table),
            ports::table_text(table)
        )
    }
}

/// Connections held open, as recorded: their local ports and how the next connect()
/// ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Held {
    /// Local ports, in connect order.
    pub ports: Vec<u16>,
    /// The errno (number) of the first failed connect, if one failed.
    pub failure: Option<i32>,
    /// Whether a connect neither completed nor failed in time.
    pub stalled: bool,
}

impl Held {
    /// The record of `ex`.
    pub fn of(ex: &Exhaustion) -> Self {
        Self {
            ports: ex.ports.clone(),
            failure: ex.failure.map(|e| e as i32),
            stalled: ex.stalled,
        }
    }

    /// The errno of the failed connect.
    pub fn failure(&self) -> Option<Errno> {
        self.failure.map(Errno::from_raw)
    }
}

/// Short client-closed connections as recorded: their ports, how the next connect()
/// ended, and when they had all reached TIME_WAIT.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Filled {
    /// Client ports, in order.
    pub ports: Vec<u16>,
    /// The errno (number) of the connect that failed, if one did.
    pub failure: Option<i32>,
    /// How long after the last close every port was in TIME_WAIT (`None`: not within
    /// the fixtures' limit).
    pub settled: Option<Duration>,
}

impl Filled {
    /// The record of `fill`.
    pub fn of(fill: &TimeWaitFill) -> Self {
        Self {
            ports: fill.ports.clone(),
            failure: fill.failure.map(|e| e as i32),
            settled: fill.settled,
        }
    }

    /// The errno of the failed connect.
    pub fn failure(&self) -> Option<Errno> {
        self.failure.map(Errno::from_raw)
    }

    /// "all in TIME_WAIT 3 ms after the last close", or that they were not.
    pub fn settled_text(&self) -> String {
        TimeWaitFill {
            settled: self.settled,
            ..TimeWaitFill::default()
        }
        .settled_text()
    }
}

/// `net.ipv4.tcp_tw_reuse_delay` in force in `ns`, in ms (`None`: the kernel has no such
/// knob, before 6.13).
pub(crate) fn tw_reuse_delay(ns: &NetNs) -> Result<Option<u64>> {
    ns.sysctl_opt("net.ipv4.tcp_tw_reuse_delay")?
        .map(|ms| {
            ms.trim()
                .parse()
                .with_context(|| format!("tcp_tw_reuse_delay is not a number of ms: {ms:?}"))
        })
        .transpose()
}

/// How long a TIME_WAIT socket must age before `tcp_tw_reuse` may take it over, and why,
/// for the `tcp_tw_reuse_delay` in force ([`tw_reuse_delay`]).
///
/// `tcp_twsk_unique()` reuses a TIME_WAIT only when it recorded a peer timestamp
/// (`tw_ts_recent_stamp != 0`, i.e. timestamps were negotiated) and, since Linux 6.13,
/// `tcp_clock_ms() > tw_entry_stamp + tcp_tw_reuse_delay` (ms, default 1000); before that,
/// `ktime_get_seconds() > tw_ts_recent_stamp + 1`, i.e. 1 to 2 s.
pub(crate) fn tw_reuse_age(delay_ms: Option<u64>) -> (Duration, String) {
    match delay_ms {
        Some(ms) => (
            Duration::from_millis(ms + 1),
            format!("tcp_tw_reuse_delay = {ms} ms: a TIME_WAIT becomes reusable {ms}..{} ms after it was entered", ms + 1),
        ),
        None => (
            Duration::from_secs(2),
            "no tcp_tw_reuse_delay (kernel < 6.13): a TIME_WAIT becomes reusable when the seconds clock is past its last timestamp + 1 s, i.e. 1..2 s after it was entered".into(),
        ),
    }
}

fn errno_figure(e: Option<Errno>) -> Option<i32> {
    e.map(|e| e as i32)
}

fn errno_text(e: Option<Errno>) -> String {
    match e {
        Some(e) => format!("{} ({})", e as i32, e),
        None => "none (no connect failed)".into(),
    }
}

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    let lab =
        "one namespace, ip_local_port_range shrunk to 40000-40003, listener on 127.0.0.1:8080";
    vec![
        Claim {
            id: "port.exhaustion-errno",
            source: seeds::ERRNO_99,
            statement: "When every port of ip_local_port_range is in use (including by TIME_WAIT sockets), connect() fails with EADDRNOTAVAIL (99, \"Cannot assign requested address\").",
            lab,
            action: "hold connections from every port to a listener that never accepts, then connect() once more; again with the ports held by client-closed TIME_WAIT sockets and tcp_tw_reuse=0",
            needs: Needs::default(),
            estimate: S,
            run: Procedure::Rust(&EXHAUSTION_ERRNO),
        },
        Claim {
            id: "port.exhaustion-curl",
            source: seeds::ERRNO_99,
            statement: "With every local port in use, curl (libcurl) fails with CURLE_COULDNT_CONNECT, exit code 7.",
            lab,
            action: "hold connections from every port, then curl -sS -v --max-time 10 http://127.0.0.1:8080/",
            needs: Needs { tools: &["curl"] },
            estimate: S,
            run: Procedure::Rust(&EXHAUSTION_CURL),
        },
        Claim {
            id: "port.range-size",
            source: seeds::ERRNO_99,
            statement: "The number of concurrent outgoing connections to one destination is bounded by the size of ip_local_port_range.",
            lab: "one namespace, ip_local_port_range 40000-40007, listeners on 127.0.0.1:8080 and :8081; a second namespace with the odd range 40000-40004",
            action: "hold connections to :8080 until connect() fails, then to :8081; the same with the odd range",
            needs: Needs::default(),
            estimate: S,
            run: Procedure::Rust(&RANGE_SIZE),
        },
        Claim {
            id: "port.tw-reuse",
            source: seeds::ERRNO_99,
            statement: "net.ipv4.tcp_tw_reuse=1 lets new outgoing connections reuse local ports held by TIME_WAIT sockets.",
            lab: "one namespace, ip_local_port_range 40000-40003, tcp_timestamps=1, listener on 127.0.0.1:8080",
            action: "fill the range with client-closed TIME_WAIT sockets; connect with tcp_tw_reuse=0, with 1 at once, with 1 after tcp_tw_reuse_delay, and with 2",
            needs: Needs::default(),
            estimate: 2 * S,
            run: Procedure::Rust(&TW_REUSE),
        },
        Claim {
            id: "sysctl.writes-proc",
            source: seeds::ERRNO_99,
            statement: "`sysctl -w` writes the value to the file under /proc/sys/net/…, and it takes effect at once for new sockets.",
            lab: "one namespace, listener on 127.0.0.1:8080",
            action: "sysctl -w net.ipv4.ip_local_port_range=\"40000 40001\" inside the namespace (under strace when available), then connect until the range is used up",
            needs: Needs { tools: &["sysctl"] },
            estimate: S,
            run: Procedure::Rust(&WRITES_PROC),
        },
    ]
}
