//! The `exchange` client: connects to a `reply` server and makes
//! [`EXCHANGES`](crate::models::exchange::EXCHANGES) request/reply exchanges on the one
//! connection, each request written as two write()s of
//! [`PART_BYTES`](crate::models::exchange::PART_BYTES) and then the reply read
//! (write-write-read), recording each exchange's duration with `TCP_INFO` before it.
//! `run.socket.nodelay` sets `TCP_NODELAY`; `run.socket.cork` sets `TCP_CORK` once and
//! never clears it, so only the kernel releases a request.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netclaim_fixtures::conn;
use netclaim_fixtures::server::{REPLY_BYTES, REQUEST_BYTES};
use netclaim_harness::{slowness, NetNs};

use crate::measure::connection::sock_opts;
use crate::models::exchange::{EXCHANGES, PART_BYTES, REPLY_LIMIT};
use crate::record::exchange::{ExchangeRecord, ExchangeSample};
use crate::record::micros;
use crate::spec::SocketSpec;

/// Runs the exchanges from `ns` to `target`. Returns the time of them all, what was done
/// in words, and the record.
pub fn act(
    ns: &NetNs,
    target: SocketAddr,
    socket: &SocketSpec,
) -> Result<(Duration, String, ExchangeRecord)> {
    const _: () = assert!(2 * PART_BYTES == REQUEST_BYTES);
    let o = conn::connect_with(ns, target, &sock_opts(socket))?;
    let Some(s) = o.socket else {
        bail!(
            "connect() to the reply server at {target} failed: {:?}",
            o.result
        );
    };
    if socket.nodelay {
        s.set_tcp_nodelay(true).context("setsockopt(TCP_NODELAY)")?;
    }
    if socket.cork {
        s.set_tcp_cork(true).context("setsockopt(TCP_CORK)")?;
    }
    s.set_read_timeout(Some(REPLY_LIMIT))
        .context("setsockopt(SO_RCVTIMEO)")?;
    let mut rec = ExchangeRecord {
        handshake_rtt_us: Some(micros(conn::tcp_info(&s)?.rtt)),
        min_rtt_us: None,
        exchanges: Vec::with_capacity(EXCHANGES),
    };
    let started = Instant::now();
    let mut reply = [0u8; REPLY_BYTES];
    for i in 0..EXCHANGES {
        let info = conn::tcp_info(&s)?;
        let t0 = Instant::now();
        for part in [b'a', b'b'] {
            let n = (&s)
                .write(&[part; PART_BYTES])
                .with_context(|| format!("exchange {}: write() of {PART_BYTES} bytes", i + 1))?;
            if n != PART_BYTES {
                bail!("exchange {}: write() took {n} of {PART_BYTES} bytes", i + 1);
            }
        }
        let mut got = 0;
        while got < REPLY_BYTES {
            match (&s).read(&mut reply[got..]) {
                Ok(0) => bail!("exchange {}: the server closed the connection", i + 1),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "exchange {}: no reply within {} s",
                            i + 1,
                            REPLY_LIMIT.as_secs()
                        )
                    })
                }
            }
        }
        let t1 = Instant::now();
        rec.exchanges.push(ExchangeSample {
            took_us: micros(t1 - t0),
            rtt_us: micros(info.rtt),
            rto_us: micros(info.rto),
            late_us: micros(slowness::late_between(t0, t1)),
        });
    }
    let min_rtt = conn::tcp_info(&s)?.min_rtt;
    rec.min_rtt_us = (!min_rtt.is_zero()).then(|| micros(min_rtt));
    let what = format!(
        "connected to {target}{}; {EXCHANGES} exchanges: write({PART_BYTES}), write({PART_BYTES}), read the {REPLY_BYTES}-byte reply",
        match (socket.nodelay, socket.cork) {
            (true, true) => " with TCP_NODELAY and TCP_CORK (never uncorked)",
            (true, false) => " with TCP_NODELAY",
            (false, true) => " with TCP_CORK (never uncorked)",
            (false, false) => "",
        }
    );
    Ok((started.elapsed(), what, rec))
}
