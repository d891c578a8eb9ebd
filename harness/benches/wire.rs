//! The wire against a plain veth, in one run: `cargo bench -p netclaim-harness --bench
//! wire` (as root, or rootless where user namespaces are allowed).
//!
//! * Added latency per direction with no fault: UDP ping-pong round trips (10,000) over
//!   a veth, over a wire whose directions pass packets through (GSO on), and over a wire
//!   that handles every packet (a 0 % loss fault: the per-packet path, no offload).
//!   Added latency per direction is half the difference of the median round trips.
//!   Goal ≤ 50 µs median.
//! * Bulk TCP throughput for 3 s each (client → peer), same three links. Goal ≥ 1 Gbit/s
//!   through an undelayed wire.
//! * Delay precision at 1,000 packets/s: 10 ms delay, 5 s of datagrams; the wire's own
//!   lateness (released − due: median, p99, max) and the receiver's one-way delay minus
//!   10 ms. Goal p99 |released − due| ≤ 200 µs on an idle machine.
//! * Memory bounded by `limit` under a 10 s delay at full rate: 1,400-byte datagrams
//!   for 3 s into limit 1000; the most packets and bytes held, the tail drops and this
//!   process's RSS growth.
//!
//! The machine is shared: run it twice and read both.

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use netclaim_harness::wire::{Faults, Wire, WireSpec, ADDR_A, ADDR_B};
use netclaim_harness::NetNs;

/// The three links measured side by side.
#[derive(Clone, Copy, Debug)]
enum Link {
    Veth,
    WirePassThrough,
    WirePerPacket,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Self::Veth => "veth",
            Self::WirePassThrough => "wire, pass-through (GSO)",
            Self::WirePerPacket => "wire, per packet (0 % loss)",
        }
    }
}

struct Pair {
    a: NetNs,
    b: NetNs,
    wire: Option<Wire>,
}

fn pair(link: Link) -> Pair {
    let a = NetNs::new().expect("namespace a");
    let b = NetNs::new().expect("namespace b");
    let wire = match link {
        Link::Veth => {
            netclaim_harness::link::veth_pair(&a, ADDR_A, &b, ADDR_B, 24).expect("veth");
            None
        }
        Link::WirePassThrough => Some(Wire::between(&a, &b, WireSpec::default()).expect("wire")),
        Link::WirePerPacket => Some(
            Wire::between(&a, &b, WireSpec::new(Faults::new().loss(0.0)).seed(1)).expect("wire"),
        ),
    };
    Pair { a, b, wire }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Median and p99 UDP round trip a → b → a.
fn round_trips(p: &Pair, n: usize) -> (Duration, Duration) {
    let echo =
        p.b.run(|| UdpSocket::bind(SocketAddrV4::new(ADDR_B, 7000)))
            .expect("run")
            .expect("bind echo");
    echo.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((len, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..len], from);
            }
        }
    });
    let mut rtts =
        p.a.run(|| {
            let s = UdpSocket::bind(SocketAddrV4::new(ADDR_A, 0)).expect("bind");
            s.connect(SocketAddrV4::new(ADDR_B, 7000)).expect("connect");
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            let mut rtts = Vec::with_capacity(n);
            for i in 0..n + 100 {
                let t = Instant::now();
                s.send(&(i as u64).to_be_bytes()).expect("send");
                if s.recv(&mut buf).is_ok() && i >= 100 {
                    rtts.push(t.elapsed());
                }
            }
            rtts
        })
        .expect("run");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
    rtts.sort();
    (percentile(&rtts, 0.5), percentile(&rtts, 0.99))
}

/// Bulk TCP a → b for `secs`: Gbit/s.
fn throughput(p: &Pair, secs: u64) -> f64 {
    let listener =
        p.b.run(|| TcpListener::bind(SocketAddrV4::new(ADDR_B, 5001)))
            .expect("run")
            .expect("listen");
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 18];
        let mut n = 0u64;
        while let Ok(k) = c.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        n
    });
    let elapsed =
        p.a.run(|| {
            let mut s = TcpStream::connect(SocketAddrV4::new(ADDR_B, 5001)).expect("connect");
            let chunk = vec![0x5au8; 1 << 18];
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(secs) {
                s.write_all(&chunk).expect("write");
            }
            drop(s);
            t.elapsed()
        })
        .expect("run");
    let bytes = server.join().expect("server");
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn precision() {
    let delay = Duration::from_millis(10);
    let a = NetNs::new().expect("a");
    let b = NetNs::new().expect("b");
    let wire =
        Wire::between(&a, &b, WireSpec::new(Faults::new().delay(delay)).seed(1)).expect("wire");
    let rx = b
        .run(|| UdpSocket::bind(SocketAddrV4::new(ADDR_B, 7001)))
        .expect("run")
        .expect("bind");
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let epoch = Instant::now();
    let receiver = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut one_way = Vec::new();
        while let Ok(n) = rx.recv(&mut buf) {
            let now = epoch.elapsed();
            if n >= 8 {
                let sent = Duration::from_nanos(u64::from_be_bytes(buf[..8].try_into().unwrap()));
                one_way.push(now.saturating_sub(sent));
            }
        }
        one_way
    });
    a.run(|| {
        let s = UdpSocket::bind(SocketAddrV4::new(ADDR_A, 0)).expect("bind");
        let start = Instant::now();
        for i in 0..5000u32 {
            // 1,000 packets/s on an absolute schedule.
            let at = start + Duration::from_millis(u64::from(i));
            while Instant::now() < at {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            let stamp = epoch.elapsed().as_nanos() as u64;
            s.send_to(&stamp.to_be_bytes(), SocketAddrV4::new(ADDR_B, 7001))
                .expect("send");
        }
    })
    .expect("run");
    let mut one_way = receiver.join().expect("receiver");
    let report = wire.finish();
    one_way.sort();
    let late = report.to_peer.lateness.unwrap_or_default();
    let extra: Vec<Duration> = one_way.iter().map(|d| d.saturating_sub(delay)).collect();
    println!(
        "delay precision, 10 ms at 1,000 packets/s ({} packets, SCHED_FIFO {}):",
        late.count, report.to_peer.realtime
    );
    println!(
        "  wire's own |released - due|: p50 {} µs, p99 {} µs, max {} µs  (goal p99 <= 200 µs) -> {}",
        late.p50_us,
        late.p99_us,
        late.max_us,
        if late.p99_us <= 200 { "met" } else { "NOT met" }
    );
    println!(
        "  receiver's one-way delay - 10 ms: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        us(percentile(&extra, 0.5)),
        us(percentile(&extra, 0.99)),
        us(percentile(&extra, 1.0))
    );
}

fn memory() {
    let a = NetNs::new().expect("a");
    let b = NetNs::new().expect("b");
    let limit = 1000;
    let wire = Wire::between(
        &a,
        &b,
        WireSpec::new(Faults::new().delay(Duration::from_secs(10)).limit(limit)).seed(1),
    )
    .expect("wire");
    let before = rss_kib();
    let sent = a
        .run(|| {
            let s = UdpSocket::bind(SocketAddrV4::new(ADDR_A, 0)).expect("bind");
            let msg = [0u8; 1400];
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < Duration::from_secs(3) {
                if s.send_to(&msg, SocketAddrV4::new(ADDR_B, 9)).is_ok() {
                    n += 1;
                }
            }
            n
        })
        .expect("run");
    let during = rss_kib();
    let report = wire.finish();
    let c = report.to_peer.counts;
    println!("memory under a 10 s delay at full rate, limit {limit}, 3 s of 1,400-byte datagrams:");
    println!(
        "  sent {sent}, dropped by the kernel before the wire {:?}, reached the wire {}, dropped at the limit {}, held at most {} packets / {} KiB (goal <= {limit} packets) -> {}",
        report.to_peer.dropped_before_wire,
        c.packets_in,
        c.dropped_limit,
        c.max_held_packets,
        c.max_held_bytes / 1024,
        if c.max_held_packets <= limit as u64 { "met" } else { "NOT met" }
    );
    println!(
        "  process RSS {before} KiB before, {during} KiB with the queue full (+{} KiB)",
        during.saturating_sub(before)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = netclaim_harness::userns::enter_if_unprivileged();
    if let Err(reason) = netclaim_harness::privilege::check() {
        println!("wire bench skipped: {reason}");
        return;
    }
    let links = [Link::Veth, Link::WirePassThrough, Link::WirePerPacket];
    println!("added latency per direction (UDP ping-pong, 10,000 round trips):");
    let mut medians = Vec::new();
    for link in links {
        let p = pair(link);
        let (p50, p99) = round_trips(&p, 10_000);
        medians.push(p50);
        println!(
            "  {:<28} round trip p50 {:>6.1} µs, p99 {:>7.1} µs",
            link.name(),
            us(p50),
            us(p99)
        );
        drop(p);
    }
    for (i, link) in links.iter().enumerate().skip(1) {
        let added = medians[i].saturating_sub(medians[0]) / 2;
        println!(
            "  added by the {} per direction: {:.1} µs median (goal <= 50 µs) -> {}",
            link.name(),
            us(added),
            if added <= Duration::from_micros(50) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    println!("bulk TCP throughput, 3 s each:");
    for link in links {
        let p = pair(link);
        let gbps = throughput(&p, 3);
        let extra = p
            .wire
            .as_ref()
            .map(|w| {
                let c = w.counters().to_peer;
                format!(
                    " ({} packets, {} of them GSO super-packets)",
                    c.packets_in, c.super_packets
                )
            })
            .unwrap_or_default();
        println!("  {:<28} {gbps:>6.2} Gbit/s{extra}", link.name());
    }
    precision();
    memory();
}
