//! The wire against the real kernel: two lab namespaces joined by netclaim's TUN relay,
//! each fault and rule checked by what the kernels at both ends did. Without root (and
//! without a user namespace) every case is ignored with the reason; where /dev/net/tun
//! is missing, likewise, naming it.
//!
//! Timing tolerances are stated per case; they allow for a shared, noisy machine (a
//! relay thread or a test thread preempted for a scheduler tick) and never accept the
//! wrong outcome (a delay that is not there, a retransmission that did not happen).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netclaim_harness::wire::{
    Action, Distribution, Faults, Jitter, Loss, Rule, Wire, WireReport, WireSpec, ADDR_A, ADDR_B,
};
use netclaim_harness::{Error, NetNs};

type Case = fn() -> anyhow::Result<()>;

mod common;
use common::ensure;

/// A client namespace, a peer namespace and the wire between them.
struct Pair {
    a: NetNs,
    b: NetNs,
    wire: Option<Wire>,
}

impl Pair {
    fn new(spec: WireSpec) -> anyhow::Result<Self> {
        Self::with_client_sysctls(spec, &[])
    }

    fn with_client_sysctls(spec: WireSpec, sysctls: &[(&str, &str)]) -> anyhow::Result<Self> {
        let a = NetNs::with_sysctls(sysctls)?;
        let b = NetNs::new()?;
        let wire = Wire::between(&a, &b, spec)?;
        Ok(Self {
            a,
            b,
            wire: Some(wire),
        })
    }

    fn wire(&self) -> &Wire {
        self.wire.as_ref().expect("the wire runs until finish")
    }

    fn finish(&mut self) -> WireReport {
        self.wire.take().expect("finished once").finish()
    }

    /// A TCP listener in the peer's namespace.
    fn listen(&self, port: u16) -> anyhow::Result<TcpListener> {
        Ok(self
            .b
            .run(|| TcpListener::bind(SocketAddrV4::new(ADDR_B, port)))??)
    }

    /// Sends `n` numbered UDP datagrams of `size` bytes (at least 4) from the client to
    /// the peer, `gap` apart; returns the numbers the peer received, in order.
    fn udp(&self, n: u32, size: usize, gap: Duration) -> anyhow::Result<Vec<(u32, Instant)>> {
        let rx = self
            .b
            .run(|| UdpSocket::bind(SocketAddrV4::new(ADDR_B, 9000)))??;
        rx.set_read_timeout(Some(Duration::from_millis(200)))?;
        let receiver = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            let mut quiet_since = Instant::now();
            // Until nothing came for 1.5 s (longer than any delay used here).
            while quiet_since.elapsed() < Duration::from_millis(1500) {
                match rx.recv(&mut buf) {
                    Ok(len) if len >= 4 => {
                        got.push((
                            u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
                            Instant::now(),
                        ));
                        quiet_since = Instant::now();
                    }
                    _ => {}
                }
            }
            got
        });
        self.a.run(|| -> anyhow::Result<()> {
            let tx = UdpSocket::bind(SocketAddrV4::new(ADDR_A, 0))?;
            let mut msg = vec![0u8; size.max(4)];
            for i in 0..n {
                msg[..4].copy_from_slice(&i.to_be_bytes());
                tx.send_to(&msg, SocketAddrV4::new(ADDR_B, 9000))?;
                if !gap.is_zero() {
                    std::thread::sleep(gap);
                }
            }
            Ok(())
        })??;
        receiver
            .join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// With 50 ms each way, a TCP connect takes one round trip: at least 100 ms (the wire
/// cannot be early) and at most 100 + 25 ms (scheduling on a shared machine) plus the
/// lateness the wire measured. The
/// capture in the client's namespace sees the SYN leave and the SYN-ACK arrive 100 ms
/// apart on the TUN device (no link header).
fn delay_sets_the_round_trip() -> anyhow::Result<()> {
    let pair = Pair::new(WireSpec::new(
        Faults::new().delay(Duration::from_millis(50)),
    ))?;
    let listener = pair.listen(8080)?;
    let cap = pair.a.capture_tcp(8080)?;
    let took = pair.a.run(|| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let s = TcpStream::connect(SocketAddrV4::new(ADDR_B, 8080))?;
        let took = t.elapsed();
        drop(s);
        Ok(took)
    })??;
    drop(listener);
    let events = cap.finish()?;
    let wire = pair.wire().report();
    // The wire's own lateness, measured while it ran, widens the window (as a timing
    // check's measured error does): a loaded machine makes it late, not wrong.
    let late = |d: &netclaim_harness::wire::DirectionReport| {
        Duration::from_micros(d.lateness.map_or(0, |l| l.max_us))
    };
    let most = Duration::from_millis(125) + late(&wire.to_peer) + late(&wire.from_peer);
    ensure(took >= Duration::from_millis(100), || {
        format!(
            "connect took {:.1} ms, less than the 100 ms round trip",
            ms(took)
        )
    })?;
    ensure(took <= most, || {
        format!(
            "connect took {:.1} ms, over 100 + 25 ms + the wire's lateness ({:.1} ms)",
            ms(took),
            ms(most)
        )
    })?;
    let syn = events.iter().find(|e| e.flags.is_syn());
    let syn_ack = events.iter().find(|e| e.flags.is_syn_ack());
    let (Some(syn), Some(syn_ack)) = (syn, syn_ack) else {
        anyhow::bail!("the capture on ncw0 missed the handshake: {events:?}");
    };
    let rtt = syn_ack.at - syn.at;
    ensure((Duration::from_millis(100)..=most).contains(&rtt), || {
        format!("SYN to SYN-ACK on the wire: {:.1} ms", ms(rtt))
    })?;
    let late = wire.to_peer.lateness.expect("held packets were measured");
    eprintln!(
        "connect {:.1} ms, on the wire {:.1} ms; lateness to_peer p50 {} µs max {} µs (seed {})",
        ms(took),
        ms(rtt),
        late.p50_us,
        late.max_us,
        wire.seed
    );
    Ok(())
}

/// Jitter of ± 15 ms on a 20 ms delay, a datagram every millisecond: without
/// `reorders`, every datagram arrives in order (netem would reorder); with it, some
/// overtake, and the wire counts them.
fn jitter_keeps_order_unless_asked() -> anyhow::Result<()> {
    let jitter = |reorders| Jitter {
        spread: Duration::from_millis(15),
        distribution: Distribution::Uniform,
        reorders,
    };
    for reorders in [false, true] {
        let mut pair = Pair::new(
            WireSpec::default()
                .to_peer(
                    Faults::new()
                        .delay(Duration::from_millis(20))
                        .jitter_with(jitter(reorders)),
                )
                .seed(3),
        )?;
        let got = pair.udp(200, 100, Duration::from_millis(1))?;
        let report = pair.finish();
        ensure(got.len() == 200, || format!("{} of 200 arrived", got.len()))?;
        let out_of_order = got.windows(2).filter(|w| w[1].0 < w[0].0).count();
        if reorders {
            ensure(
                out_of_order > 0 && report.to_peer.counts.reordered > 0,
                || {
                    format!(
                        "reordering jitter reordered nothing ({out_of_order} seen, {} counted)",
                        report.to_peer.counts.reordered
                    )
                },
            )?;
        } else {
            ensure(
                out_of_order == 0 && report.to_peer.counts.reordered == 0,
                || {
                    format!(
                        "jitter without reorders reordered {out_of_order} ({} counted)",
                        report.to_peer.counts.reordered
                    )
                },
            )?;
        }
    }
    Ok(())
}

/// Losing every 10th packet of 100 loses exactly 10: numbers 9, 19, …, 99.
fn loss_every_nth_is_exact() -> anyhow::Result<()> {
    let mut pair =
        Pair::new(WireSpec::default().to_peer(Faults::new().loss_model(Loss::EveryNth(10))))?;
    let got = pair.udp(100, 64, Duration::ZERO)?;
    let report = pair.finish();
    let numbers: Vec<u32> = got.iter().map(|g| g.0).collect();
    let expected: Vec<u32> = (0..100).filter(|i| (i + 1) % 10 != 0).collect();
    ensure(numbers == expected, || format!("received {numbers:?}"))?;
    ensure(report.to_peer.counts.lost == 10, || {
        format!("{:?}", report.to_peer.counts)
    })?;
    // The device's own drop counter is read, and 100 datagrams fit its queue.
    ensure(report.to_peer.dropped_before_wire == Some(0), || {
        format!(
            "dropped before the wire: {:?}",
            report.to_peer.dropped_before_wire
        )
    })
}

/// The fates of one run, in the log: which packets were lost and which duplicated.
fn fates(spec: WireSpec) -> anyhow::Result<(Vec<u32>, u64, u64)> {
    let mut pair = Pair::new(spec)?;
    let got = pair.udp(300, 64, Duration::ZERO)?;
    let report = pair.finish();
    let mut numbers: Vec<u32> = got.iter().map(|g| g.0).collect();
    numbers.sort_unstable();
    let c = report.to_peer.counts;
    Ok((numbers, c.lost, c.duplicated))
}

/// The same seed gives the same fates (the same datagrams lost and duplicated); another
/// seed gives others.
fn same_seed_same_fates() -> anyhow::Result<()> {
    let spec = |seed| {
        WireSpec::default()
            .to_peer(Faults::new().loss(0.3).duplicate(0.1))
            .seed(seed)
    };
    let first = fates(spec(7))?;
    let again = fates(spec(7))?;
    let other = fates(spec(8))?;
    ensure(first.1 > 50 && first.1 < 130, || {
        format!("30 % loss of 300 lost {}", first.1)
    })?;
    ensure(first.2 > 0, || "10 % duplication duplicated none".into())?;
    ensure(first == again, || {
        format!(
            "seed 7 twice: lost {} / {}, duplicated {} / {}",
            first.1, again.1, first.2, again.2
        )
    })?;
    ensure(first != other, || {
        "seeds 7 and 8 gave the same fates".into()
    })
}

/// Reordering (25 % skip a 10 ms delay), duplication (every packet, 100 %) and
/// corruption (every packet: one flipped bit, which the receiver's IP or UDP checksum
/// always catches), each on 200 datagrams a millisecond apart; and Gilbert-Elliott loss,
/// whose losses come in bursts.
fn reorder_duplicate_corrupt_and_bursts() -> anyhow::Result<()> {
    let run = |faults: Faults| -> anyhow::Result<(Vec<u32>, WireReport)> {
        let mut pair = Pair::new(WireSpec::default().to_peer(faults).seed(5))?;
        let got = pair.udp(200, 64, Duration::from_millis(1))?;
        Ok((got.iter().map(|g| g.0).collect(), pair.finish()))
    };
    let delay = Duration::from_millis(10);
    let (got, r) = run(Faults::new().delay(delay).reorder(0.25))?;
    let out_of_order = got.windows(2).filter(|w| w[1] < w[0]).count();
    ensure(
        got.len() == 200 && out_of_order > 0 && r.to_peer.counts.reordered > 0,
        || {
            format!(
                "{} arrived, {out_of_order} out of order, {:?}",
                got.len(),
                r.to_peer.counts
            )
        },
    )?;
    let (got, r) = run(Faults::new().duplicate(1.0))?;
    ensure(
        got.len() == 400 && r.to_peer.counts.duplicated == 200,
        || format!("{} arrived, {:?}", got.len(), r.to_peer.counts),
    )?;
    let (got, r) = run(Faults::new().corrupt(1.0))?;
    ensure(got.is_empty() && r.to_peer.counts.corrupted == 200, || {
        format!(
            "{} corrupted datagrams arrived, {:?}",
            got.len(),
            r.to_peer.counts
        )
    })?;
    let (got, r) = run(Faults::new().loss_model(Loss::GilbertElliott {
        p: 0.05,
        r: 0.3,
        loss_bad: 1.0,
        loss_good: 0.0,
    }))?;
    let lost: Vec<u64> = r
        .to_peer
        .log
        .iter()
        .filter(|e| e.fate == netclaim_harness::wire::Fate::Lost)
        .map(|e| e.n)
        .collect();
    let in_bursts = lost.windows(2).filter(|w| w[1] == w[0] + 1).count();
    ensure(
        got.len() + lost.len() == 200 && !lost.is_empty() && in_bursts > 0,
        || format!("lost {lost:?}: no burst"),
    )
}

/// A rate of 8 Mbit/s with a limit of 20 packets: a burst of 300 datagrams of 1028 IP
/// bytes leaves the wire at 8 Mbit/s ± 10 %, the queue never holds more than 20, and the rest
/// is dropped at the tail.
fn rate_with_a_bounded_queue() -> anyhow::Result<()> {
    let rate = 8_000_000u64;
    let mut pair = Pair::new(WireSpec::default().to_peer(Faults::new().rate_bps(rate).limit(20)))?;
    let got = pair.udp(300, 1000, Duration::ZERO)?;
    let report = pair.finish();
    let c = report.to_peer.counts;
    ensure(c.max_held_packets <= 20, || format!("held {c:?}"))?;
    ensure(c.dropped_limit > 0, || format!("nothing dropped: {c:?}"))?;
    ensure(
        got.len() as u64 == c.delivered && c.delivered + c.dropped_limit == 300,
        || format!("received {}, counts {c:?}", got.len()),
    )?;
    // The rate is timed by when the wire wrote each packet (its log), not by when the
    // receiving thread got round to reading it: a receiver descheduled on a loaded
    // machine stamps late and squeezes the interval.
    let sent: Vec<u64> = report
        .to_peer
        .log
        .iter()
        .filter_map(|e| e.sent_us)
        .collect();
    ensure(sent.len() == got.len(), || {
        format!("{} sent in the log, {} received", sent.len(), got.len())
    })?;
    let (first, last) = (sent[0], sent[sent.len() - 1]);
    let bits = (sent.len() - 1) as f64 * 1028.0 * 8.0;
    let measured = bits / ((last - first) as f64 / 1e6);
    ensure((measured / rate as f64 - 1.0).abs() <= 0.10, || {
        format!("{:.2} Mbit/s for 8", measured / 1e6)
    })
}

/// Dropping the first SYN-ACK: the handshake completes with the retransmission after
/// the initial RTO of 1 s (the client's SYN or the peer's SYN-ACK, both due at 1 s), so
/// connect takes 1 s to 1 s + 250 ms (timer slack at HZ=250 and scheduling).
fn first_syn_ack_dropped() -> anyhow::Result<()> {
    let mut pair =
        Pair::new(WireSpec::default().rule(Rule::from_peer().syn_ack().nth(1).then(Action::Drop)))?;
    let listener = pair.listen(8080)?;
    let took = pair.a.run(|| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let _s = TcpStream::connect(SocketAddrV4::new(ADDR_B, 8080))?;
        Ok(t.elapsed())
    })??;
    drop(listener);
    let report = pair.finish();
    ensure(
        (Duration::from_millis(1000)..=Duration::from_millis(1250)).contains(&took),
        || format!("connect took {:.1} ms", ms(took)),
    )?;
    ensure(report.from_peer.counts.dropped_rule == 1, || {
        format!("{:?}", report.from_peer.counts)
    })
}

/// `ioctl(SIOCOUTQ)`: bytes in the send queue not yet acknowledged.
fn unsent(s: &TcpStream) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int to the valid, exclusively borrowed `n`.
    unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    n
}

/// `tcpi_state` from TCP_INFO (1 is ESTABLISHED).
fn tcp_state(s: &TcpStream) -> u8 {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes of struct tcp_info into `info`.
    unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    info[0]
}

/// A peer that advertises a zero window (every segment from it rewritten to window 0)
/// and answers every probe: the client's data never leaves, and with tcp_retries2=3
/// (which would end an unanswered connection in about 3 s) the connection is still
/// established after 5 s, the 10,000 bytes still queued, probes answered.
fn zero_window_peer_keeps_the_connection() -> anyhow::Result<()> {
    let mut pair = Pair::with_client_sysctls(
        WireSpec::default().rule(Rule::from_peer().then(Action::Window(0))),
        &[("net.ipv4.tcp_retries2", "3")],
    )?;
    let listener = pair.listen(8080)?;
    let (state, queued) = pair.a.run(|| -> anyhow::Result<(u8, i32)> {
        let mut s = TcpStream::connect(SocketAddrV4::new(ADDR_B, 8080))?;
        let (_peer, _) = listener.accept()?;
        s.write_all(&[7u8; 10_000])?;
        std::thread::sleep(Duration::from_secs(5));
        Ok((tcp_state(&s), unsent(&s)))
    })??;
    let report = pair.finish();
    ensure(state == 1, || format!("tcpi_state {state} after 5 s"))?;
    ensure(queued == 10_000, || format!("{queued} bytes still queued"))?;
    let (to, from) = (report.to_peer.counts, report.from_peer.counts);
    // The handshake (SYN, ACK) and at least three zero-window probes, each answered.
    ensure(to.packets_in >= 5 && from.rewritten >= 4, || {
        format!("to_peer {to:?}, from_peer {from:?}")
    })?;
    let data = report
        .to_peer
        .log
        .iter()
        .filter(|e| e.tcp_payload.is_some_and(|p| p > 0))
        .count();
    ensure(data == 0, || {
        format!("{data} data segments passed a zero window")
    })
}

/// A reset after 1000 bytes: the peer reads exactly the first 1000, the next segment is
/// dropped and both ends are reset; the client's next read fails with ECONNRESET.
fn reset_after_n_bytes() -> anyhow::Result<()> {
    let mut pair =
        Pair::new(WireSpec::default().rule(Rule::to_peer().after_bytes(1000).then(Action::Reset)))?;
    let listener = pair.listen(8080)?;
    let server = std::thread::spawn(move || -> std::io::Result<(usize, Option<i32>)> {
        let (mut c, _) = listener.accept()?;
        let mut total = 0;
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => return Ok((total, None)),
                Ok(n) => total += n,
                Err(e) => return Ok((total, e.raw_os_error())),
            }
        }
    });
    let err = pair.a.run(|| -> anyhow::Result<std::io::Error> {
        let mut s = TcpStream::connect(SocketAddrV4::new(ADDR_B, 8080))?;
        s.write_all(&[1u8; 1000])?;
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(&[2u8; 1000])?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut buf = [0u8; 16];
        Ok(match s.read(&mut buf) {
            Ok(n) => anyhow::bail!("read {n} bytes after the reset"),
            Err(e) => e,
        })
    })??;
    let (received, server_err) = server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))??;
    let report = pair.finish();
    ensure(err.raw_os_error() == Some(libc::ECONNRESET), || {
        format!("the client's read failed with {err}")
    })?;
    ensure(received == 1000, || {
        format!("the peer read {received} bytes")
    })?;
    ensure(server_err == Some(libc::ECONNRESET), || {
        format!("the peer's read ended with {server_err:?}")
    })?;
    ensure(report.to_peer.counts.injected == 2, || {
        format!("{:?}", report.to_peer.counts)
    })
}

/// An ICMP port unreachable answering every SYN, on a wire of 5 ms each way: as on a
/// real network, the error comes back after one round trip, while connect() sleeps, so
/// it fails with ECONNREFUSED after 10 ms (up to 10 + 25 ms on a shared machine) and one
/// SYN. (On a zero-delay wire the error can arrive while connect() still holds the
/// socket: the kernel then only records it and aborts at the retransmission, 1 s later.)
fn icmp_unreachable_refuses_after_one_round_trip() -> anyhow::Result<()> {
    let mut pair = Pair::new(
        WireSpec::new(Faults::new().delay(Duration::from_millis(5)))
            .rule(Rule::to_peer().syn().then(Action::IcmpUnreachable(3))),
    )?;
    let _listener = pair.listen(8080)?;
    let (result, took) = pair.a.run(|| {
        let t = Instant::now();
        let r = TcpStream::connect_timeout(
            &SocketAddr::V4(SocketAddrV4::new(ADDR_B, 8080)),
            Duration::from_secs(5),
        );
        (r, t.elapsed())
    })?;
    let report = pair.finish();
    match result {
        Err(e) => ensure(e.kind() == ErrorKind::ConnectionRefused, || {
            format!("connect failed with {e}")
        })?,
        Ok(_) => anyhow::bail!("connect succeeded through an ICMP refusal"),
    }
    ensure(
        (Duration::from_millis(10)..=Duration::from_millis(35)).contains(&took),
        || format!("ECONNREFUSED after {:.1} ms", ms(took)),
    )?;
    let c = report.to_peer.counts;
    ensure(
        c.packets_in == 1 && c.dropped_rule == 1 && c.injected == 1,
        || format!("{c:?}"),
    )
}

/// A perfect wire carries bulk TCP with GSO super-packets unsegmented, every byte
/// intact; the devices are gone once the wire is.
fn perfect_wire_passes_super_packets_and_leaves_nothing() -> anyhow::Result<()> {
    let mut pair = Pair::new(WireSpec::default())?;
    let listener = pair.listen(8080)?;
    let total = 20 << 20;
    let server = std::thread::spawn(move || -> std::io::Result<(usize, u64)> {
        let (mut c, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 16];
        let (mut n, mut sum) = (0usize, 0u64);
        loop {
            match c.read(&mut buf)? {
                0 => return Ok((n, sum)),
                k => {
                    n += k;
                    sum += buf[..k].iter().map(|&b| u64::from(b)).sum::<u64>();
                }
            }
        }
    });
    pair.a.run(|| -> anyhow::Result<()> {
        let mut s = TcpStream::connect(SocketAddrV4::new(ADDR_B, 8080))?;
        let chunk: Vec<u8> = (0..1 << 16).map(|i| (i % 251) as u8).collect();
        for _ in 0..total / chunk.len() {
            s.write_all(&chunk)?;
        }
        Ok(())
    })??;
    let (n, sum) = server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))??;
    let chunk_sum: u64 = (0..1u64 << 16).map(|i| i % 251).sum();
    ensure(
        n == total && sum == chunk_sum * (total as u64 >> 16),
        || format!("received {n} bytes, sum {sum}"),
    )?;
    let report = pair.finish();
    ensure(report.to_peer.counts.super_packets > 0, || {
        format!("no GSO super-packet passed: {:?}", report.to_peer.counts)
    })?;
    for (ns, dev) in [(&pair.a, "ncw0"), (&pair.b, "ncw1")] {
        let found = ns.run(|| nix::net::if_::if_nametoindex(dev))?;
        ensure(found == Err(nix::errno::Errno::ENODEV), || {
            format!("{dev} is still there after the wire ended: {found:?}")
        })?;
    }
    Ok(())
}

/// The environment variable that makes this binary the SIGKILL case's child.
const CHILD: &str = "NETCLAIM_WIRE_TEST_CHILD";

/// The SIGKILL case's child: two named labs joined by a wire, their names on stdout,
/// then it waits to be killed.
fn child() -> ! {
    let run = || -> anyhow::Result<()> {
        let a = NetNs::named()?;
        let b = NetNs::named()?;
        let _wire = Wire::between(&a, &b, WireSpec::new(Faults::new().loss(0.1)))?;
        println!("{} {}", a.name(), b.name());
        std::io::stdout().flush()?;
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    };
    if let Err(e) = run() {
        println!("error: {e:#}");
    }
    std::process::exit(1)
}

/// Whether `dev` exists in the namespace bind-mounted at `path`.
fn device_in(path: &std::path::Path, dev: &str) -> anyhow::Result<bool> {
    let ns = std::fs::File::open(path)?;
    let dev = dev.to_owned();
    std::thread::spawn(move || -> anyhow::Result<bool> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        Ok(nix::net::if_::if_nametoindex(dev.as_str()).is_ok())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("probe thread panicked"))?
}

/// A runner killed with SIGKILL leaves no TUN device behind: its labs were named (so the
/// namespaces outlive it, bind-mounted under /run/netns) and yet neither has its wire
/// device, because a TUN device that is not persistent dies with its descriptor. The
/// names are then swept, as `netclaim clean` would.
fn sigkill_leaves_no_device() -> anyhow::Result<()> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let names: Vec<&str> = line.split_whitespace().collect();
    let paths: Vec<_> = names
        .iter()
        .map(|n| std::path::Path::new(netclaim_harness::netns::NETNS_RUN_DIR).join(n))
        .collect();
    // While the child lives, the probe sees its devices (so it can see them at all).
    let alive: Vec<bool> = paths
        .iter()
        .zip(["ncw0", "ncw1"])
        .map(|(p, dev)| device_in(p, dev).unwrap_or(false))
        .collect();
    child.kill()?;
    let status = child.wait()?;
    ensure(names.len() == 2 && !line.starts_with("error"), || {
        format!("the child said {line:?}")
    })?;
    ensure(alive == [true, true], || {
        format!("the live child's devices were not seen: {alive:?}")
    })?;
    let mut found = Vec::new();
    for (path, dev) in paths.iter().zip(["ncw0", "ncw1"]) {
        ensure(device_in(path, "lo")?, || {
            format!("{} lost its lo: not the child's lab", path.display())
        })?;
        if device_in(path, dev)? {
            found.push(format!("{dev} in {}", path.display()));
        }
    }
    let swept = netclaim_harness::sweep::stale();
    ensure(paths.iter().all(|p| !p.exists()), || {
        format!("the killed child's names survived the sweep: {swept:?}")
    })?;
    ensure(found.is_empty(), || {
        format!(
            "after SIGKILL ({status}), still there: {}",
            found.join(", ")
        )
    })
}

/// A bad spec is refused before anything is built, with the value named.
fn bad_specs_never_run() -> anyhow::Result<()> {
    let a = NetNs::new()?;
    let b = NetNs::new()?;
    match Wire::between(&a, &b, WireSpec::new(Faults::new().loss(1.5))) {
        Err(Error::Invalid { reason }) => ensure(reason.contains("loss 1.5"), || reason),
        other => anyhow::bail!("loss 150 % gave {other:?}"),
    }
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
    }
    let _ = netclaim_harness::userns::enter_if_unprivileged();
    let args = Arguments::from_args();
    let privileged = netclaim_harness::privilege::check();
    // Where the machine has no TUN device, every case is ignored, naming it.
    let tun = match std::fs::metadata(netclaim_harness::wire::tun::TUN_PATH) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "{} is unavailable here: {} ({e})",
            netclaim_harness::wire::tun::WHAT,
            netclaim_harness::wire::tun::TUN_PATH
        )),
    };
    let cases: [(&str, Case); 13] = [
        ("wire::delay_sets_the_round_trip", delay_sets_the_round_trip),
        (
            "wire::jitter_keeps_order_unless_asked",
            jitter_keeps_order_unless_asked,
        ),
        ("wire::loss_every_nth_is_exact", loss_every_nth_is_exact),
        ("wire::same_seed_same_fates", same_seed_same_fates),
        ("wire::rate_with_a_bounded_queue", rate_with_a_bounded_queue),
        (
            "wire::reorder_duplicate_corrupt_and_bursts",
            reorder_duplicate_corrupt_and_bursts,
        ),
        ("wire::first_syn_ack_dropped", first_syn_ack_dropped),
        (
            "wire::zero_window_peer_keeps_the_connection",
            zero_window_peer_keeps_the_connection,
        ),
        ("wire::reset_after_n_bytes", reset_after_n_bytes),
        (
            "wire::icmp_unreachable_refuses_after_one_round_trip",
            icmp_unreachable_refuses_after_one_round_trip,
        ),
        (
            "wire::perfect_wire_passes_super_packets_and_leaves_nothing",
            perfect_wire_passes_super_packets_and_leaves_nothing,
        ),
        ("wire::bad_specs_never_run", bad_specs_never_run),
        ("wire::sigkill_leaves_no_device", sigkill_leaves_no_device),
    ];
    // Named labs are bind mounts in the host's mount namespace: root only.
    let rootless = netclaim_harness::userns::mode().rootless();
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            let ready = privileged.clone().and(tun.clone()).and_then(|()| {
                if rootless && name == "wire::sigkill_leaves_no_device" {
                    Err("named labs (/run/netns bind mounts) need root".to_owned())
                } else {
                    Ok(())
                }
            });
            Trial::ignorable_test(name, move || match ready {
                Err(reason) => Ok(Completion::ignored_with(reason)),
                Ok(()) => match case() {
                    Ok(()) => Ok(Completion::Completed),
                    // A wire that cannot be built here is a skip, not a failure.
                    Err(e) => match e.downcast_ref::<Error>() {
                        Some(Error::Unavailable { .. }) => {
                            Ok(Completion::ignored_with(e.to_string()))
                        }
                        _ => Err(Failed::from(format!("{e:#}"))),
                    },
                },
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
