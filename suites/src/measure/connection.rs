//! Measuring a connection after its first SYN: rejections (RST, ICMP, no route), the
//! data retransmission timer and its give-up, keepalive, close() and the passive side's
//! SYN-ACK retransmissions. [`act`] runs the client inside the lab the engine built,
//! [`from_wire`] reads the capture once the action is over; both fill an
//! [`AfterRecord`], which [`crate::judge::connection`] judges.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::bulk;
use netclaim_fixtures::conn::{self, SockOpts};
use netclaim_fixtures::ports::{self, state};
use netclaim_harness::capture::{self, TcpEvent};
use netclaim_harness::wait::Poll;
use netclaim_harness::{slowness, NetNs};
use nix::errno::Errno;

use crate::record::connection::AfterRecord;
use crate::record::micros;
use crate::record::recovery::{BulkRecord, COUNTERS};
use crate::spec::{ClaimSpec, Client, Server, SocketSpec};

impl AfterRecord {
    /// Records what watching the socket (by its lookups) saw.
    fn watched(&mut self, w: &conn::Watched) {
        self.gone = w.gone.is_some();
        self.watch_error_us = w.gone.map(|g| micros(g.saturating_sub(w.seen_until)));
        self.states = w
            .states
            .iter()
            .map(|s| state::name(s.1).to_owned())
            .collect();
    }
}

/// The raw client's source port (`syn-only`).
pub const RAW_PORT: u16 = 40999;
/// Bytes the `send` client writes.
pub const SEND_BYTES: usize = 100;
/// Bytes the `stream` client offers in one write() (and its SO_SNDBUF).
pub const STREAM_BYTES: usize = 256 * 1024;
/// Bytes the `bulk` client writes: at 10-40 ms of round trip, five or six round trips of
/// slow start, hundreds of segments after a loss placed in the first quarter.
pub const BULK_BYTES: usize = 512 * 1024;

/// The socket options of a spec.
pub fn sock_opts(s: &SocketSpec) -> SockOpts {
    SockOpts {
        syncnt: s.syncnt,
        user_timeout: s.user_timeout.map(|t| t.0),
        keepalive: s.keepalive,
        keepidle: s.keepidle,
        keepintvl: s.keepintvl,
        keepcnt: s.keepcnt,
        linger: s.linger.map(|t| t.0),
        linger2: s.linger2,
        rto_min_us: s.rto_min_us,
    }
}

/// connect() with the client's options; once connected, TCP_INFO's first RTT sample and
/// RTO go into `rec`. `Err((errno, duration))`: connect() failed.
fn connected(
    ns: &NetNs,
    target: SocketAddr,
    opts: &SockOpts,
    rec: &mut AfterRecord,
) -> Result<std::result::Result<socket2::Socket, (Option<Errno>, Duration)>> {
    let o = conn::connect_with(ns, target, opts)?;
    let Some(socket) = o.socket else {
        return Ok(Err((o.errno(), o.duration)));
    };
    let info = conn::tcp_info(&socket)?;
    rec.kernel_rto_us = Some(micros(info.rto));
    rec.kernel_rtt_us = Some(micros(info.rtt));
    Ok(Ok(socket))
}

/// Waits (up to 2 s) until the peer's side of the client's connection is ESTABLISHED,
/// looked up by sock_diag in the peer's namespace; a peer that never gets there (a rule
/// drops the final ACK) is left as it is.
fn peer_established(peer: &NetNs, target: SocketAddr, socket: &socket2::Socket) -> Result<()> {
    let (Some(SocketAddr::V4(client)), SocketAddr::V4(server)) =
        (socket.local_addr().ok().and_then(|a| a.as_socket()), target)
    else {
        return Ok(());
    };
    let diag = ports::Diag::open(peer)?;
    let seen = netclaim_harness::wait::until_every(
        &format!("the peer's side of {client} → {server} established"),
        Duration::from_secs(2),
        Duration::from_micros(500),
        || match diag.lookup(server, client) {
            Ok(Some(e)) if e.state == state::ESTABLISHED => Poll::Ready(Ok(())),
            Ok(seen) => Poll::Pending(format!("{seen:?}")),
            Err(e) => Poll::Ready(Err(e)),
        },
    );
    match seen {
        Ok((found, _)) => found.map_err(Into::into),
        Err(_) => Ok(()),
    }
}

/// Runs a client after the SYN in the lab: `ns` is the client's namespace, `peer` the
/// other end's (for `send`, and `idle` to `dies-after-handshake`, which make it drop
/// everything once connected; `idle` to a `silent` peer leaves it alive).
/// Returns (errno, duration, notes, record).
pub fn act(
    client: Client,
    spec: &ClaimSpec,
    ns: &NetNs,
    peer: Option<&NetNs>,
    target: SocketAddr,
    limit: Duration,
) -> Result<(Option<Errno>, Duration, String, AfterRecord)> {
    let opts = spec
        .run
        .as_ref()
        .map(|r| sock_opts(&r.socket))
        .unwrap_or_default();
    let mut rec = AfterRecord::default();
    match client {
        Client::Send | Client::Idle => {
            let peer = peer.context("the client needs the peer's namespace")?;
            let socket = match connected(ns, target, &opts, &mut rec)? {
                Ok(socket) => socket,
                Err((errno, took)) => return Ok((errno, took, "connect() failed".into(), rec)),
            };
            let connected_at = Instant::now();
            // A peer that dies after the handshake drops everything from now on; any other
            // (`idle` with a silent server) stays alive and answers keepalive probes.
            let dies = spec.lab.server == Server::DiesAfterHandshake;
            if dies {
                // Over a wire the handshake's final ACK is still on its way: the peer
                // dies once its side is established, or it would send its SYN-ACK again.
                peer_established(peer, target, &socket)?;
                peer.drop_all_input()
                    .with_context(|| format!("making {} drop everything", peer.name()))?;
            }
            let started = Instant::now();
            let what = if client == Client::Send {
                use std::io::Write;
                (&socket)
                    .write_all(&[b'n'; SEND_BYTES])
                    .context("send() of 100 bytes")?;
                format!(
                    "connected to {target}; the peer drops everything; send({SEND_BYTES} bytes), then wait for the connection's error"
                )
            } else if dies {
                format!(
                    "connected to {target}; the peer drops everything; the connection stays idle until it fails"
                )
            } else {
                format!(
                    "connected to {target}; the peer stays alive; the connection stays idle until it fails or the wait ends ({} s)",
                    limit.as_secs_f64()
                )
            };
            let waited = conn::wait_error(&socket, limit)?;
            let from = if client == Client::Idle {
                connected_at
            } else {
                started
            };
            rec.late_us = Some(micros(slowness::late_between(from, Instant::now())));
            let (errno, at) = match waited {
                Some((e, at)) => (e, at),
                None => (None, started.elapsed()),
            };
            rec.gone = waited.is_some();
            let at = if client == Client::Idle {
                // From the handshake (the last packet received), as keepalive counts.
                at + started.duration_since(connected_at)
            } else {
                at
            };
            Ok((errno, at, what, rec))
        }
        Client::Stream => {
            let socket = match connected(ns, target, &opts, &mut rec)? {
                Ok(socket) => socket,
                Err((errno, took)) => return Ok((errno, took, "connect() failed".into(), rec)),
            };
            // More than the first flight (ten segments) must wait in the send queue
            // when the window closes, or nothing is left to probe for.
            socket
                .set_send_buffer_size(STREAM_BYTES)
                .context("SO_SNDBUF")?;
            socket.set_nonblocking(true).context("O_NONBLOCK")?;
            let started = Instant::now();
            let written = match std::io::Write::write(&mut &socket, &[b'n'; STREAM_BYTES]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e).context("write() of the stream"),
            };
            socket.set_nonblocking(false).context("O_NONBLOCK off")?;
            // The persist timer's base, once the first probe is out (tcpi_backoff 1).
            let mut persist_rto = None;
            while started.elapsed() < limit.min(Duration::from_secs(10)) {
                let info = conn::tcp_info(&socket)?;
                if info.backoff > 0 {
                    persist_rto = Some(info.rto);
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            rec.persist_rto_us = persist_rto.map(micros);
            let waiting_from = started.elapsed();
            let waited = conn::wait_error(&socket, limit.saturating_sub(waiting_from))?;
            rec.late_us = Some(micros(slowness::late_between(started, Instant::now())));
            rec.gone = waited.is_some();
            let (errno, at) = waited
                .map(|(e, at)| (e, waiting_from + at))
                .unwrap_or((None, started.elapsed()));
            Ok((
                errno,
                at,
                format!(
                    "connected to {target}; the peer's window is 0; write({STREAM_BYTES} bytes) took {written}, then wait for the connection's error"
                ),
                rec,
            ))
        }
        Client::Close => {
            let socket = match connected(ns, target, &opts, &mut rec)? {
                Ok(socket) => socket,
                Err((errno, took)) => return Ok((errno, took, "connect() failed".into(), rec)),
            };
            let (Some(SocketAddr::V4(local)), SocketAddr::V4(remote)) =
                (socket.local_addr().ok().and_then(|a| a.as_socket()), target)
            else {
                anyhow::bail!("close watches an IPv4 connection");
            };
            let diag = ports::Diag::open(ns)?;
            let started = Instant::now();
            rec.close_started = Some(started);
            drop(socket);
            // The watch's times count from its own start, after close().
            let watch_from = started.elapsed();
            rec.close_took_us = Some(micros(watch_from));
            let w = conn::wait_gone(&diag, local, remote, |_| true, limit)?;
            rec.late_us = Some(micros(slowness::late_between(started, Instant::now())));
            rec.watched(&w);
            // Projected from the last sighting in FIN_WAIT_2 (the first if the last had
            // no timer left): the jiffies the timer counts in may run at another rate
            // than the clock, which a projection over the whole timer would carry.
            rec.armed_end_us = w
                .last
                .filter(|s| s.1 == state::FIN_WAIT2 && !s.2.is_zero())
                .or_else(|| {
                    w.states
                        .iter()
                        .copied()
                        .find(|s| s.1 == state::FIN_WAIT2 && !s.2.is_zero())
                })
                .map(|(at, _, left)| micros(watch_from + at + left));
            if rec.armed_end_us.is_some() {
                rec.watch_error_us = Some(micros(w.slowest_read));
            }
            Ok((
                None,
                w.gone
                    .map(|g| watch_from + g)
                    .unwrap_or_else(|| started.elapsed()),
                format!("connected to {target} from {local}; close(); look the socket up (sock_diag) until it is gone"),
                rec,
            ))
        }
        Client::SynOnly => {
            let SocketAddr::V4(dst) = target else {
                anyhow::bail!("syn-only sends an IPv4 SYN");
            };
            let src = SocketAddrV4::new(conn::RAW_CLIENT, RAW_PORT);
            ns.iptables_append(
                "filter",
                "INPUT",
                &format!("-p tcp --dport {RAW_PORT} -j DROP"),
            )
            .context("dropping what comes back to the raw client")?;
            let started = Instant::now();
            conn::send_raw_syn(ns, src, dst)?;
            // The request appears at once; then watch it until the server drops it.
            let diag = ports::Diag::open(ns)?;
            let appeared = netclaim_harness::wait::until_every(
                &format!("a SYN_RECV request for {src} at {dst}"),
                Duration::from_secs(2),
                Duration::from_millis(2),
                || match diag.lookup(dst, src) {
                    Ok(Some(e)) if e.state == state::SYN_RECV => Poll::Ready(Ok(())),
                    Ok(seen) => Poll::Pending(format!("{seen:?}")),
                    Err(e) => Poll::Ready(Err(e)),
                },
            );
            appeared?.0?;
            // The watch's times count from its own start.
            let watch_from = Instant::now();
            let w = conn::wait_gone(&diag, dst, src, |st| st == state::SYN_RECV, limit)?;
            rec.late_us = Some(micros(slowness::late_between(started, Instant::now())));
            rec.watched(&w);
            let lifetime = w
                .gone
                .map(|g| g + watch_from.duration_since(started))
                .unwrap_or_else(|| started.elapsed());
            Ok((
                None,
                lifetime,
                format!("one SYN from a raw socket at {src} to {dst}, never answered (iptables drops what comes back to port {RAW_PORT}); look the request up (sock_diag)"),
                rec,
            ))
        }
        Client::Bulk => {
            let b = match bulk::bulk(ns, target, &opts, BULK_BYTES, limit)? {
                Ok(b) => b,
                Err(e) => return Ok((Some(e), Duration::ZERO, "connect() failed".into(), rec)),
            };
            rec.kernel_rtt_us = Some(micros(b.connected.rtt));
            rec.kernel_rto_us = Some(micros(b.connected.rto));
            rec.gone = b.complete;
            rec.bulk = Some(bulk_record(&b));
            let errno = b
                .error
                .as_ref()
                .and_then(std::io::Error::raw_os_error)
                .map(Errno::from_raw);
            Ok((
                errno,
                b.duration,
                format!("connected to {target}; write {} KiB, shut the write side, read until the sink closes", BULK_BYTES / 1024),
                rec,
            ))
        }
        other => anyhow::bail!("{other:?} is not a client after the SYN"),
    }
}

/// The record of a bulk transfer, before the capture is read.
fn bulk_record(b: &bulk::Bulk) -> BulkRecord {
    BulkRecord {
        bytes: BULK_BYTES as u64,
        complete: b.complete,
        error: b.error.as_ref().map(ToString::to_string),
        rtt_us: micros(b.connected.rtt),
        srtt_us: micros(b.done.rtt),
        rttvar_us: micros(b.done.rttvar),
        rto_us: micros(b.done.rto),
        total_retrans: b.done.total_retrans,
        sack: b.done.sack,
        mss: b.done.snd_mss,
        counters: COUNTERS
            .iter()
            .map(|(group, name)| {
                let delta = bulk::counter(&b.after, group, name)
                    .saturating_sub(bulk::counter(&b.before, group, name));
                ((*name).to_owned(), delta)
            })
            .collect(),
        ..BulkRecord::default()
    }
}

/// The capture's account of a bulk transfer: the first data segment sent twice (the one
/// the wire lost), when it was sent again, how long the sink had been quiet then, and
/// how many data segments went out more than once.
fn bulk_from_wire(b: &mut BulkRecord, events: &[TcpEvent], port: u16) {
    let data: Vec<&TcpEvent> = events
        .iter()
        .filter(|e| e.dst.port() == port && e.icmp.is_none() && e.len > 0)
        .collect();
    let Some(isn) = events
        .iter()
        .find(|e| e.flags.is_syn() && e.dst.port() == port)
        .map(|e| e.seq)
    else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    let mut first_repeat: Option<&TcpEvent> = None;
    for e in &data {
        if !seen.insert(e.seq) {
            b.wire_retransmissions += 1;
            first_repeat.get_or_insert(e);
        }
    }
    b.wire_segments = data.len();
    let Some(again) = first_repeat else {
        return;
    };
    let Some(original) = data.iter().find(|e| e.seq == again.seq) else {
        return;
    };
    b.lost_offset = Some(u64::from(again.seq.wrapping_sub(isn.wrapping_add(1))));
    b.resent_us = Some(micros(again.at.saturating_sub(original.at)));
    let from_sink = |e: &&TcpEvent| e.src.port() == port && e.icmp.is_none();
    b.quiet_us = events
        .iter()
        .filter(from_sink)
        .filter(|e| e.at <= again.at)
        .map(|e| e.at)
        .max()
        .map(|last| micros(again.at - last));
    // No ACK can pass the hole before the segment sent again fills it; the receiver
    // acknowledges at once when it does (its out-of-order queue empties).
    b.repair_rtt_us = events
        .iter()
        .filter(from_sink)
        .find(|e| e.at >= again.at && e.acks_past(again.seq))
        .map(|e| micros(e.at - again.at));
}

/// The capture of a bulk transfer in short: the packets around the lost segment's first
/// transmission and around its retransmission (the whole transfer is hundreds).
pub fn bulk_timeline(events: &[TcpEvent], port: u16) -> String {
    const AROUND: usize = 6;
    let data = |e: &TcpEvent| e.dst.port() == port && e.len > 0;
    let mut seen = std::collections::HashSet::new();
    let again = events.iter().position(|e| data(e) && !seen.insert(e.seq));
    let Some(again) = again else {
        let shown = events.len().min(2 * AROUND);
        return format!(
            "{}
… {} packets in all, no data segment sent twice",
            capture::timeline(&events[..shown]),
            events.len()
        );
    };
    let original = events
        .iter()
        .position(|e| data(e) && e.seq == events[again].seq)
        .unwrap_or(again);
    let span = |i: usize| i.saturating_sub(AROUND)..(i + AROUND + 1).min(events.len());
    let (a, b) = (span(original), span(again));
    let first = events.first().map(|e| e.at).unwrap_or_default();
    let show = |r: std::ops::Range<usize>| capture::timeline_from(&events[r], first);
    if a.end >= b.start {
        return show(a.start..b.end);
    }
    format!(
        "{}\n… {} packets …\n{}\n({} packets in all)",
        show(a.clone()),
        b.start - a.end,
        show(b),
        events.len()
    )
}

/// Fills the wire-derived parts of `rec` from the capture of the action.
/// `capture_started` is the instant the events' times count from (for the slowness
/// probe's lateness over each timer).
pub fn from_wire(
    client: Option<Client>,
    rec: &mut AfterRecord,
    events: &[TcpEvent],
    port: u16,
    capture_started: Option<Instant>,
) {
    // The probe's lateness over the timers before each transmission (at `times`, from the
    // capture's start), summed; the first is a timer too when it runs from `from`.
    let chain_late = |times: &[Duration], from: Option<Duration>| -> Vec<u64> {
        let Some(t0) = capture_started else {
            return Vec::new();
        };
        let mut sum = Duration::ZERO;
        times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let armed = if i == 0 { from } else { Some(times[i - 1]) };
                if let Some(a) = armed {
                    sum += slowness::late_between(t0 + a, t0 + *t);
                }
                micros(sum)
            })
            .collect()
    };
    let syn = events
        .iter()
        .find(|e| e.flags.is_syn() && e.dst.port() == port);
    let synack = events
        .iter()
        .find(|e| e.flags.is_syn_ack() && e.src.port() == port);
    if let (Some(s), Some(a)) = (syn, synack) {
        rec.rtt_us = Some(micros(a.at.saturating_sub(s.at)));
    }
    rec.icmp = events.iter().filter_map(|e| e.icmp).collect();
    let from_client = |e: &&TcpEvent| e.dst.port() == port && e.icmp.is_none();
    let rel = |times: Vec<Duration>, from: Duration| -> Vec<u64> {
        times
            .into_iter()
            .map(|t| micros(t.saturating_sub(from)))
            .collect()
    };
    match client {
        Some(Client::Send) => {
            let first = events.iter().filter(from_client).find(|e| e.len > 0);
            if let Some(f) = first {
                let times: Vec<Duration> = events
                    .iter()
                    .filter(from_client)
                    .filter(|e| e.len > 0 && e.seq == f.seq)
                    .map(|e| e.at)
                    .collect();
                rec.sent_late_us = chain_late(&times, None);
                rec.sent_us = rel(times, f.at);
            }
        }
        Some(Client::Stream) => {
            // The first data segment, then the window probes: pure ACKs (at snd_una − 1);
            // the client has nothing else to acknowledge, the peer sends no data.
            let first = events.iter().filter(from_client).find(|e| e.len > 0);
            if let Some(f) = first {
                let times: Vec<Duration> = std::iter::once(f.at)
                    .chain(
                        events
                            .iter()
                            .filter(from_client)
                            .filter(|e| e.at > f.at && e.len == 0 && e.flags.0 == 0x10)
                            .map(|e| e.at),
                    )
                    .collect();
                // The last packet from the peer before each next transmission.
                let from_peer: Vec<Duration> = events
                    .iter()
                    .filter(|e| e.src.port() == port && e.icmp.is_none() && e.at > f.at)
                    .map(|e| e.at)
                    .collect();
                // Each transmission's answer; one the capture missed (it may, under
                // load) taken as one round trip (the kernel's) after it.
                let rtt = Duration::from_micros(rec.kernel_rtt_us.unwrap_or_default());
                let answered: Vec<Duration> = times
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let next = times.get(i + 1).copied().unwrap_or(Duration::MAX);
                        from_peer
                            .iter()
                            .copied()
                            .rfind(|a| a > t && *a < next)
                            .unwrap_or(*t + rtt)
                    })
                    .collect();
                rec.answered_us = rel(answered, f.at);
                rec.sent_late_us = chain_late(&times, None);
                rec.sent_us = rel(times, f.at);
            }
        }
        Some(Client::Idle) => {
            // Keepalive probes: pure ACKs at snd_una − 1, i.e. the SYN's own sequence.
            // Idleness counts from the last packet received from the peer before the
            // first probe: the SYN-ACK, or what came before the peer went silent. A live
            // peer's answers to the probes come after it.
            if let (Some(s), Some(a)) = (syn, synack) {
                let is_probe = |e: &&TcpEvent| {
                    from_client(e) && e.len == 0 && e.flags.0 == 0x10 && e.seq == s.seq
                };
                let first_probe = events.iter().find(is_probe).map(|e| e.at);
                let from_peer: Vec<Duration> = events
                    .iter()
                    .filter(|e| e.src.port() == port && e.icmp.is_none())
                    .map(|e| e.at)
                    .collect();
                let last_rx = from_peer
                    .iter()
                    .copied()
                    .filter(|at| first_probe.is_none_or(|p| *at < p))
                    .max()
                    .unwrap_or(a.at);
                let times: Vec<Duration> = events
                    .iter()
                    .filter(is_probe)
                    .filter(|e| e.at > last_rx)
                    .map(|e| e.at)
                    .collect();
                // Each answered probe's round trip: to the peer's first packet after it,
                // before the next probe.
                let mut rtts: Vec<Duration> = times
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &t)| {
                        let next = times.get(i + 1).copied().unwrap_or(Duration::MAX);
                        from_peer
                            .iter()
                            .find(|&&at| at > t && at < next)
                            .map(|&at| at - t)
                    })
                    .collect();
                rtts.sort();
                rec.probe_rtt_us = rtts.get(rtts.len() / 2).map(|&d| micros(d));
                rec.sent_late_us = chain_late(&times, Some(last_rx));
                rec.sent_us = rel(times, last_rx);
                rec.starts_after_us = Some(micros(last_rx - a.at));
            }
        }
        Some(Client::Close) => {
            let after_handshake = events
                .iter()
                .filter(from_client)
                .filter(|e| !e.flags.is_syn());
            for e in after_handshake {
                rec.rst |= e.flags.is_rst();
                rec.fin |= e.flags.0 & 0x01 != 0;
            }
            let fin = events
                .iter()
                .filter(from_client)
                .find(|e| e.flags.0 & 0x01 != 0);
            if let Some(f) = fin {
                let ack = events.iter().find(|e| {
                    e.src.port() == port
                        && e.icmp.is_none()
                        && e.at >= f.at
                        && e.flags.0 & 0x10 != 0
                });
                // From close() to the ACK of the FIN, on one clock: a FIN is not always
                // sent at the moment close() is called (a 6.12 guest under TCG still
                // showed the socket ESTABLISHED after close() returned, and sent its
                // FIN 75 ms later). Without the instants, from the FIN.
                rec.starts_after_us = ack.map(|a| match (capture_started, rec.close_started) {
                    (Some(t0), Some(closed)) => {
                        micros((t0 + a.at).saturating_duration_since(closed))
                    }
                    _ => micros(a.at - f.at),
                });
            }
        }
        Some(Client::Bulk) => {
            if let Some(b) = &mut rec.bulk {
                bulk_from_wire(b, events, port);
            }
        }
        Some(Client::SynOnly) => {
            let times: Vec<Duration> = events
                .iter()
                .filter(|e| e.flags.is_syn_ack() && e.src.port() == port)
                .map(|e| e.at)
                .collect();
            let first = times.first().copied().unwrap_or_default();
            rec.sent_late_us = chain_late(&times, None);
            rec.sent_us = rel(times, first);
        }
        _ => {}
    }
}
