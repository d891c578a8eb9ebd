//! TIME_WAIT (seed 003): who holds it, how long it lasts, when tcp_tw_reuse can take it
//! over, and what the knobs default to.
//!
//! Sockets are observed in `/proc/thread-self/net/tcp`, read on the lab namespace's own
//! thread; for a TIME_WAIT socket its `tm->when` column is the time left on the TIME_WAIT
//! timer in `USER_HZ` ticks.

use std::net::SocketAddrV4;
use std::time::Duration;

use netclaim_fixtures::ports::{state, TcpEntry};
use nix::errno::Errno;

use super::seeds;
use crate::claim::{Claim, Needs, Procedure};

mod active_closer;
mod concurrent;
mod duration;
mod reuse;
#[cfg(test)]
mod tests;

use active_closer::ACTIVE_CLOSER;
use concurrent::CONCURRENT_CLIENT_EXHAUSTION;
use duration::DURATION;
use reuse::REUSE_NEEDS_TIMESTAMPS;

/// `TCP_TIMEWAIT_LEN` (`include/net/tcp.h`): 60 s, a constant, not a sysctl.
const TCP_TIMEWAIT_LEN: Duration = Duration::from_secs(60);
/// The seed's 2 MSL with MSL = 2 minutes.
const STATED_TIME_WAIT: Duration = Duration::from_secs(240);

fn find(table: &[TcpEntry], local: SocketAddrV4, remote: SocketAddrV4) -> Option<TcpEntry> {
    table
        .iter()
        .copied()
        .find(|e| e.local == local && e.remote == remote)
}

fn describe(e: Option<TcpEntry>) -> String {
    match e {
        Some(e) if e.state == state::TIME_WAIT => format!(
            "TIME_WAIT ({:.2} s left on the timer)",
            e.timer_left().as_secs_f64()
        ),
        Some(e) => e.state_name().to_owned(),
        None => "CLOSED (no socket)".to_owned(),
    }
}

/// A connect's result as recorded: the local port, or the errno's number.
type Connected = std::result::Result<u16, i32>;

/// The record of a connect's result.
fn record(r: std::result::Result<u16, Errno>) -> Connected {
    r.map_err(|e| e as i32)
}

/// A recorded connect's result, with its errno.
fn replay(r: &Connected) -> std::result::Result<u16, Errno> {
    r.map_err(Errno::from_raw)
}

/// "connected from port 40001" or "errno 99 (EADDRNOTAVAIL: …)".
fn show(r: &std::result::Result<u16, Errno>) -> String {
    match r {
        Ok(p) => format!("connected from port {p}"),
        Err(e) => format!("errno {} ({e})", *e as i32),
    }
}

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "tw.active-closer",
            source: seeds::TIME_WAIT,
            statement: "TIME_WAIT appears on the side that closes the connection first; the other side ends in CLOSED.",
            lab: "one namespace, listener on 127.0.0.1:8080",
            action: "one connection closed by the client first, one closed by the server first; read /proc/thread-self/net/tcp",
            needs: Needs::default(),
            estimate: S,
            run: Procedure::Rust(&ACTIVE_CLOSER),
        },
        Claim {
            id: "tw.duration",
            source: seeds::TIME_WAIT,
            statement: "A TIME_WAIT socket lasts 2 MSL, with MSL = 2 minutes (4 minutes).",
            lab: "one namespace, listener on 127.0.0.1:8080",
            action: "make one client-side TIME_WAIT, read its timer, poll /proc/thread-self/net/tcp every 100 ms until it is gone (at most 75 s)",
            needs: Needs::default(),
            estimate: 63 * S,
            run: Procedure::Rust(&DURATION),
        },
        Claim {
            id: "tw.reuse-needs-timestamps",
            source: seeds::TIME_WAIT,
            statement: "tcp_tw_reuse has no effect unless tcp_timestamps=1.",
            lab: "two namespaces with ip_local_port_range 40000-40003 and tcp_tw_reuse=1: one with tcp_timestamps=0, one with 1",
            action: "fill each range with client-closed TIME_WAIT sockets, wait past tcp_tw_reuse_delay, connect once more",
            needs: Needs::default(),
            estimate: 2 * S,
            run: Procedure::Rust(&REUSE_NEEDS_TIMESTAMPS),
        },
        Claim {
            id: "tw.concurrent-client-exhaustion",
            source: seeds::TIME_WAIT,
            statement: "A client making many short concurrent connections fills the local port range with TIME_WAIT sockets and then cannot connect.",
            lab: "client 192.0.2.1 and server 192.0.2.2:3306 on a veth; client ip_local_port_range 40000-40007, other sysctls at their defaults",
            action: "4 threads make short connections (connect, send, close first) until connect() fails; retry after tcp_tw_reuse_delay",
            needs: Needs::default(),
            estimate: 2 * S,
            run: Procedure::Rust(&CONCURRENT_CLIENT_EXHAUSTION),
        },
    ]
}
