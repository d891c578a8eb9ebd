//! The library's own lab tests, run by its runner: the builder's faults, running inside
//! the lab, the model assertions, and the quarantine of the test threads.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use netclaim_lab::{kind, Action, Faults, Lab, Observed, Rule, Target, WireSpec, LOCAL, PEER};
use nix::errno::Errno;

#[netclaim_lab::test(lab = Lab::builder().drop_syn_to(7).sysctl("net/ipv4/tcp_syn_retries", 1))]
fn kernel_gives_up_as_the_model_says(lab: &Lab) -> netclaim_lab::Result<()> {
    let seen = lab.capture(7, || TcpStream::connect(lab.addr(7)))?;
    let err = seen.value.as_ref().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_etimedout()), "{err}");
    seen.assert_gave_up_when_kernel_would(&lab.model()?);
    assert_eq!(seen.syns.len(), lab.model()?.schedule().syn_count());
    Ok(())
}

fn libc_etimedout() -> i32 {
    nix::errno::Errno::ETIMEDOUT as i32
}

#[netclaim_lab::test(lab = Lab::builder().drop_syn_to(7))]
fn a_client_deadline_cuts_the_schedule(lab: &Lab) -> netclaim_lab::Result<()> {
    let seen = lab.capture(7, || {
        TcpStream::connect_timeout(&lab.addr(7).into(), Duration::from_millis(2500))
    })?;
    assert_eq!(seen.value.as_ref().unwrap_err().kind(), ErrorKind::TimedOut);
    // SYNs at 0, 1, 2 s: three before the 2.5 s deadline.
    seen.assert_syns_follow(&lab.model()?, Duration::from_millis(2500));
    assert_eq!(seen.syns.len(), 3);
    // A schedule it did not follow is reported, not accepted.
    let wrong = Observed {
        value: (),
        elapsed: seen.elapsed,
        syns: vec![Duration::ZERO, Duration::from_millis(1500)],
        events: Vec::new(),
    };
    assert!(wrong
        .syns_follow(&lab.model()?, Duration::from_millis(2500))
        .is_err());
    Ok(())
}

#[netclaim_lab::test]
fn calls_outside_a_lab_cannot_reach_anything() {
    // The runner moved the test threads into an empty namespace: not even loopback.
    let err = TcpStream::connect("127.0.0.1:1").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(nix::errno::Errno::ENETUNREACH as i32),
        "{err}"
    );
}

#[netclaim_lab::test(lab = Lab::builder().refusing_peer())]
fn two_calls_in_one_lab_run_at_once(lab: &Lab) -> netclaim_lab::Result<()> {
    let peer = lab.peer(80).expect("a peer");
    let started = Instant::now();
    let pause = || {
        std::thread::sleep(Duration::from_millis(500));
        TcpStream::connect(peer).map(|_| ())
    };
    let results = lab.run_all(vec![pause, pause])?;
    for r in results {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    }
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder().drop_syn_to(7))]
async fn tokio_runs_inside_the_lab(lab: &Lab) {
    let attempt = tokio::time::timeout(
        Duration::from_millis(1500),
        tokio::net::TcpStream::connect(lab.addr(7)),
    )
    .await;
    assert!(attempt.is_err(), "the dropped port answered: {attempt:?}");
}

#[netclaim_lab::test]
fn the_port_range_trap_is_refused() {
    let err = Lab::builder()
        .port_range(40000, 40003)
        .never_accepting_server(40001, 4)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("lies in the port range"), "{err}");
}

/// A server of your own behind a slow link: 50 ms each way, so connect() returns after
/// one 100 ms round trip (measured: at least 100 ms, at most 100 + 25 ms on a shared
/// machine plus the lateness the wire measured), and the wire counts the handshake each
/// way.
#[netclaim_lab::test(lab = Lab::builder().link(
    WireSpec::new(Faults::new().delay(Duration::from_millis(50))).seed(7)))]
fn a_server_of_your_own_behind_a_slow_link(lab: &Lab) -> Result<(), Box<dyn std::error::Error>> {
    let server = lab.run_in_peer(|| std::net::TcpListener::bind((PEER, 8080)))??;
    let took = lab.run(|| {
        let t = Instant::now();
        TcpStream::connect((PEER, 8080)).map(|s| (t.elapsed(), s))
    })??;
    let (_conn, from) = server.accept()?;
    assert_eq!(from.ip(), LOCAL);
    let wire = lab.wire_report().expect("a lab with a link has a wire");
    // The wire's own lateness (measured while it ran) widens the window, as a timing
    // check's measured error does: a loaded machine makes it late, not wrong.
    let late = |d: &netclaim_lab::harness::wire::DirectionReport| {
        Duration::from_micros(d.lateness.map_or(0, |l| l.max_us))
    };
    let most = Duration::from_millis(125) + late(&wire.to_peer) + late(&wire.from_peer);
    assert!(
        (Duration::from_millis(100)..=most).contains(&took.0),
        "connect took {:?} through 50 ms each way (at most {most:?})",
        took.0
    );
    assert_eq!(wire.seed, 7);
    // SYN, then the ACK; the SYN-ACK back.
    assert_eq!(
        wire.to_peer.counts.delivered, 2,
        "{:?}",
        wire.to_peer.counts
    );
    assert_eq!(
        wire.from_peer.counts.delivered, 1,
        "{:?}",
        wire.from_peer.counts
    );
    Ok(())
}

/// The README's example: the first SYN-ACK lost on a link of 50 ms each way. The
/// handshake completes with the retransmissions due at the initial RTO of 1 s (the
/// client's SYN reaches the peer at 1.05 s and is answered; the peer's own SYN-ACK
/// retransmission left at 1.05 s), so connect takes 1.1 s, up to 1.1 + 0.25 s (timer
/// slack at HZ=250, a shared machine).
#[netclaim_lab::test(lab = Lab::builder().link(
    WireSpec::new(Faults::new().delay(Duration::from_millis(50)))
        .rule(Rule::from_peer().syn_ack().nth(1).then(Action::Drop))
        .seed(7)))]
fn connect_through_a_lost_syn_ack(lab: &Lab) -> Result<(), Box<dyn std::error::Error>> {
    let _server = lab.run_in_peer(|| std::net::TcpListener::bind((PEER, 8080)))??;
    let took = lab.run(|| {
        let t = Instant::now();
        TcpStream::connect((PEER, 8080)).map(|_| t.elapsed())
    })??;
    assert!(
        (Duration::from_millis(1100)..=Duration::from_millis(1350)).contains(&took),
        "{took:?}"
    );
    let wire = lab.wire_report().expect("a wire");
    assert_eq!(wire.from_peer.counts.dropped_rule, 1);
    Ok(())
}

/// 1 % loss with a seed: the same seed loses the same number of 2000 datagrams in a
/// second lab (the fates are the seed's, not the run's), and about 1 % of them.
#[netclaim_lab::test]
fn seeded_loss_is_reproducible() -> Result<(), Box<dyn std::error::Error>> {
    let lost = |seed| -> Result<(u64, u64), Box<dyn std::error::Error>> {
        let lab = Lab::builder()
            .link(
                WireSpec::default()
                    .to_peer(Faults::new().loss(0.01))
                    .seed(seed),
            )
            .build()?;
        lab.run(|| -> std::io::Result<()> {
            let s = std::net::UdpSocket::bind((LOCAL, 0))?;
            for i in 0u32..2000 {
                s.send_to(&i.to_be_bytes(), (PEER, 9))?;
                // Paced: a burst faster than the relay overflows the TUN device's own
                // queue (500 packets) before the wire sees it, and the fates would then
                // fall on other packets.
                std::thread::sleep(Duration::from_micros(100));
            }
            Ok(())
        })??;
        // Every datagram has reached the wire once it counted 2000.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lab.wire_counters().expect("a wire").to_peer.packets_in < 2000 {
            assert!(Instant::now() < deadline, "the wire saw fewer than 2000");
            std::thread::sleep(Duration::from_millis(10));
        }
        let c = lab.wire_counters().expect("a wire").to_peer;
        Ok((c.lost, c.delivered))
    };
    let (first, delivered) = lost(11)?;
    assert_eq!(lost(11)?, (first, delivered));
    assert_eq!(first + delivered, 2000);
    assert!((5..=40).contains(&first), "1 % of 2000 lost {first}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Each kind of target the builder serves, as a client meets it.

fn errno(e: &std::io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw)
}

#[netclaim_lab::test(lab = Lab::builder().serve(kind::DropSyn, 7).ipv6())]
fn ipv6_drop_syn_is_never_answered(lab: &Lab) -> netclaim_lab::Result<()> {
    let target = lab.target().and_then(Target::sock).expect("a TCP target");
    assert_eq!(target.to_string(), "[::1]:7");
    assert_eq!(
        lab.description(),
        Some("ip6tables -A INPUT -p tcp --dport 7 --syn -j DROP, target [::1]:7")
    );
    let err = lab
        .run(|| TcpStream::connect_timeout(&target, Duration::from_millis(1200)))?
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder().serve(kind::Refuse, 8080).ipv6())]
fn ipv6_refuse_answers_rst(lab: &Lab) -> netclaim_lab::Result<()> {
    let target = lab.target().and_then(Target::sock).expect("a TCP target");
    let err = lab.run(|| TcpStream::connect(target))?.unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ECONNREFUSED), "{err}");
    assert_eq!(
        lab.description(),
        Some("nothing listens on [::1]:8080: the kernel answers a SYN with RST")
    );
    Ok(())
}

#[netclaim_lab::test]
fn a_kind_without_an_ipv6_form_is_refused() {
    let err = Lab::builder()
        .serve(kind::Silent, 8080)
        .ipv6()
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, netclaim_lab::Error::Invalid { reason } if reason == "server silent has no IPv6 target"),
        "{err}"
    );
}

#[netclaim_lab::test(lab = Lab::builder().serve(kind::Blackhole, 80))]
fn a_blackhole_peer_never_answers(lab: &Lab) -> netclaim_lab::Result<()> {
    let target = lab.target().and_then(Target::tcp).expect("a TCP target");
    assert_eq!(target, std::net::SocketAddrV4::new(PEER, 80));
    assert_eq!(
        lab.description(),
        Some("client 192.0.2.1 on a veth to 192.0.2.2, which drops all input; target 192.0.2.2:80")
    );
    let seen = lab.capture(80, || {
        TcpStream::connect_timeout(&target.into(), Duration::from_millis(1500))
    })?;
    assert_eq!(seen.value.as_ref().unwrap_err().kind(), ErrorKind::TimedOut);
    // The SYN at 0 s and its retransmission at 1 s, both unanswered.
    assert_eq!(seen.syns.len(), 2, "{:?}", seen.events);
    Ok(())
}

/// The connect() error each `--reject-with` gives, through one lab per type.
#[netclaim_lab::test]
fn reject_gives_the_error_of_its_type() -> Result<(), Box<dyn std::error::Error>> {
    for (with, expected) in [
        ("tcp-reset", Errno::ECONNREFUSED),
        ("icmp-port-unreachable", Errno::ECONNREFUSED),
        ("icmp-host-unreachable", Errno::EHOSTUNREACH),
        ("icmp-net-unreachable", Errno::ENETUNREACH),
    ] {
        let lab = Lab::builder().serve(kind::Reject::with(with), 80).build()?;
        let peer = lab.peer_ns().expect("a peer").name().to_owned();
        assert_eq!(
            lab.description(),
            Some(
                format!(
                    "client 192.0.2.1 on a veth to 192.0.2.2 ({peer}), whose iptables -A INPUT \
                     -p tcp --dport 80 -j REJECT --reject-with {with}; target 192.0.2.2:80"
                )
                .as_str()
            )
        );
        let err = lab
            .run(|| TcpStream::connect_timeout(&(PEER, 80).into(), Duration::from_secs(5)))?
            .unwrap_err();
        assert_eq!(errno(&err), Some(expected), "{with}: {err}");
    }
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder().serve(kind::Unroutable, 80))]
fn unroutable_has_no_route(lab: &Lab) -> netclaim_lab::Result<()> {
    assert_eq!(
        lab.target(),
        Some(&Target::Tcp(std::net::SocketAddrV4::new(
            kind::UNROUTABLE,
            80
        )))
    );
    assert_eq!(
        lab.description(),
        Some("only lo in the lab: no route to 203.0.113.1:80")
    );
    let err = lab
        .run(|| TcpStream::connect((kind::UNROUTABLE, 80)))?
        .unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ENETUNREACH), "{err}");
    Ok(())
}

/// Reads from a connection to `target` until `wait` passes: what a silent server sends.
fn read_within(target: std::net::SocketAddr, wait: Duration) -> std::io::Result<usize> {
    let mut s = TcpStream::connect(target)?;
    s.set_read_timeout(Some(wait))?;
    s.read(&mut [0; 64])
}

#[netclaim_lab::test(lab = Lab::builder().serve(kind::Silent, 8080))]
fn a_silent_server_accepts_and_sends_nothing(lab: &Lab) -> netclaim_lab::Result<()> {
    assert_eq!(
        lab.description(),
        Some("a server on 127.0.0.1:8080 that accepts and never sends a byte")
    );
    let err = lab
        .run(|| read_within(lab.addr(8080).into(), Duration::from_millis(300)))?
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder().serve(kind::DiesAfterHandshake, 80))]
fn dies_after_handshake_serves_on_the_peer(lab: &Lab) -> netclaim_lab::Result<()> {
    let peer = lab.peer_ns().expect("a peer").name().to_owned();
    assert_eq!(
        lab.description().map(str::to_owned),
        Some(format!(
            "client 192.0.2.1 on a veth to 192.0.2.2 ({peer}), which accepts on 192.0.2.2:80 \
             and, once the client is connected, drops every packet (iptables -A INPUT -j DROP)"
        ))
    );
    // The handshake completes (the server is on the peer), then nothing comes.
    let err = lab
        .run(|| read_within((PEER, 80).into(), Duration::from_millis(300)))?
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    Ok(())
}

/// listen(2) queues backlog + 1 connections; the next SYN is dropped.
#[netclaim_lab::test(lab = Lab::builder().serve(kind::NeverAccept { backlog: 2 }, 8080))]
fn never_accept_queues_one_more_than_its_backlog(lab: &Lab) -> netclaim_lab::Result<()> {
    assert_eq!(
        lab.description(),
        Some("a listener on 127.0.0.1:8080 with listen(2) that never calls accept()")
    );
    let target: std::net::SocketAddr = lab.addr(8080).into();
    let (held, stop) = lab.run(|| {
        let mut held = Vec::new();
        loop {
            match TcpStream::connect_timeout(&target, Duration::from_millis(1200)) {
                Ok(s) if held.len() < 10 => held.push(s),
                Ok(_) => return (held, None),
                Err(e) => return (held, Some(e)),
            }
        }
    })?;
    assert_eq!(held.len(), 3);
    assert_eq!(stop.expect("a connect failed").kind(), ErrorKind::TimedOut);
    Ok(())
}

/// Port 0: the target is the port the kernel bound.
#[netclaim_lab::test(lab = Lab::builder().serve(kind::NeverAccept::default(), 0))]
fn never_accept_on_port_zero_names_the_bound_port(lab: &Lab) -> netclaim_lab::Result<()> {
    let addr = lab.target().and_then(Target::tcp).expect("a TCP target");
    assert_ne!(addr.port(), 0);
    assert_eq!(
        lab.description().map(str::to_owned),
        Some(format!(
            "a listener on {addr} with listen(16) that never calls accept()"
        ))
    );
    lab.run(|| TcpStream::connect(addr))?
        .map_err(|e| netclaim_lab::Error::io("connect", "never-accept", e))?;
    Ok(())
}

/// A unix listener's queue, once full, fails a nonblocking connect() with EAGAIN; its
/// directory goes with the lab.
#[netclaim_lab::test]
fn never_accept_unix_fails_with_eagain_when_full() -> Result<(), Box<dyn std::error::Error>> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let lab = Lab::builder()
        .serve(kind::NeverAcceptUnix { backlog: 2 }, 0)
        .build()?;
    let Some(Target::Unix(path)) = lab.target().cloned() else {
        panic!("a unix target: {:?}", lab.target());
    };
    assert_eq!(
        lab.description().map(str::to_owned),
        Some(format!(
            "a unix listener at {} with listen(2) that never calls accept()",
            path.display()
        ))
    );
    let addr = SockAddr::unix(&path)?;
    let mut held = Vec::new();
    let stop = loop {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        s.set_nonblocking(true)?;
        match s.connect(&addr) {
            Ok(()) if held.len() < 10 => held.push(s),
            Ok(()) => break None,
            Err(e) => break Some(e),
        }
    };
    assert_eq!(held.len(), 3);
    let err = stop.expect("a connect failed");
    assert_eq!(errno(&err), Some(Errno::EAGAIN), "{err}");
    drop(held);
    drop(lab);
    assert!(!path.exists(), "{} outlived its lab", path.display());
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder().serve(kind::Http, 8080))]
fn http_answers_200(lab: &Lab) -> netclaim_lab::Result<()> {
    assert_eq!(
        lab.description(),
        Some("an HTTP server on 127.0.0.1:8080 answering 200 OK with 13 bytes")
    );
    let answer = lab
        .run(|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(lab.addr(8080))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")?;
            // The server keeps the connection open: read until the body is in.
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut text = Vec::new();
            let mut buf = [0; 512];
            let body_len = |t: &[u8]| {
                t.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|end| t.len() - end - 4)
            };
            while body_len(&text) < Some(13) {
                match s.read(&mut buf)? {
                    0 => break,
                    n => text.extend_from_slice(&buf[..n]),
                }
            }
            Ok(String::from_utf8_lossy(&text).into_owned())
        })?
        .map_err(|e| netclaim_lab::Error::io("read", "http", e))?;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("Content-Length: 13\r\n"), "{answer}");
    assert_eq!(
        answer.split("\r\n\r\n").nth(1).map(str::len),
        Some(13),
        "{answer}"
    );
    Ok(())
}

/// The trickle server's headers come at once, each body byte `every` after the last.
#[netclaim_lab::test(lab = Lab::builder().serve(kind::Trickle { every: Duration::from_millis(200), bytes: 3 }, 8080))]
fn trickle_sends_a_byte_every_interval(lab: &Lab) -> netclaim_lab::Result<()> {
    let (head, gaps) = lab
        .run(|| -> std::io::Result<(String, Vec<Duration>)> {
            let mut s = TcpStream::connect(lab.addr(8080))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut head = Vec::new();
            let mut buf = [0; 512];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf)? {
                    0 => break,
                    n => head.extend_from_slice(&buf[..n]),
                }
            }
            let mut last = Instant::now();
            let mut gaps = Vec::new();
            for _ in 0..3 {
                let mut one = [0; 1];
                s.read_exact(&mut one)?;
                gaps.push(last.elapsed());
                last = Instant::now();
            }
            Ok((String::from_utf8_lossy(&head).into_owned(), gaps))
        })?
        .map_err(|e| netclaim_lab::Error::io("read", "trickle", e))?;
    assert!(head.contains("Content-Length: 3\r\n"), "{head}");
    for g in &gaps {
        assert!(
            *g >= Duration::from_millis(190) && *g < Duration::from_millis(400),
            "{gaps:?}"
        );
    }
    Ok(())
}

/// Behind a wire the target is on the peer, and so is its server.
#[netclaim_lab::test(lab = Lab::builder().serve(kind::Silent, 8080).link(WireSpec::default()))]
fn behind_a_wire_the_server_is_on_the_peer(lab: &Lab) -> netclaim_lab::Result<()> {
    assert_eq!(
        lab.target(),
        Some(&Target::Tcp(std::net::SocketAddrV4::new(PEER, 8080)))
    );
    let err = lab
        .run(|| read_within((PEER, 8080).into(), Duration::from_millis(300)))?
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    Ok(())
}

/// An optional sysctl the kernel lacks is a note; one it has is set, and noted.
#[netclaim_lab::test(lab = Lab::builder()
    .sysctl_if_present("net.ipv4.tcp_syn_retries", 2)
    .sysctl_if_present("net.ipv4.tcp_no_such_knob", 1))]
fn optional_sysctls_are_set_where_present(lab: &Lab) -> netclaim_lab::Result<()> {
    assert_eq!(lab.ns().tcp_syn_retries()?, 2);
    assert_eq!(
        lab.notes(),
        [
            "net.ipv4.tcp_syn_retries=2",
            "net.ipv4.tcp_no_such_knob is absent on this kernel: its classic behaviour applies"
        ]
    );
    Ok(())
}

/// A value the kernel rejects is the kernel's refusal, named, not a lab.
#[netclaim_lab::test]
fn a_rejected_sysctl_is_the_kernels_refusal() {
    let err = Lab::builder()
        .sysctl("net.ipv4.tcp_syn_retries", 1000)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, netclaim_lab::Error::SysctlRejected { name, .. } if name == "net.ipv4.tcp_syn_retries"),
        "{err:?}"
    );
    let err = Lab::builder()
        .sysctl_if_present("net.ipv4.tcp_syn_retries", 1000)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, netclaim_lab::Error::SysctlRejected { .. }),
        "{err:?}"
    );
}

/// A plain peer over veth: a server of the test's own, reached at PEER from LOCAL.
#[netclaim_lab::test(lab = Lab::builder().peer())]
fn a_plain_peer_serves_what_the_test_starts(lab: &Lab) -> Result<(), Box<dyn std::error::Error>> {
    let server = lab.run_in_peer(|| std::net::TcpListener::bind((PEER, 3306)))??;
    let _client = lab.run(|| TcpStream::connect((PEER, 3306)))??;
    let (_conn, from) = server.accept()?;
    assert_eq!(from.ip(), LOCAL);
    Ok(())
}

netclaim_lab::main!();

#[netclaim_lab::test(lab = Lab::builder().serve(kind::RstAfterHandshake, 8080))]
fn an_rst_after_handshake_server_accepts_then_resets(lab: &Lab) -> netclaim_lab::Result<()> {
    use std::io::Read;
    let target = lab.target().and_then(Target::sock).expect("a TCP target");
    let read = lab.run(|| -> std::io::Result<usize> {
        let mut conn = TcpStream::connect(target)?; // the handshake completes
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        conn.read(&mut [0u8; 16])
    })?;
    let err = read.expect_err("the server resets, it sends no data and no FIN");
    assert_eq!(errno(&err), Some(Errno::ECONNRESET), "{err}");
    assert_eq!(
        lab.description(),
        Some("a server on 127.0.0.1:8080 that accepts and resets each connection at once (SO_LINGER 0, close)")
    );
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder().serve(kind::Reply { quickack: true }, 8080))]
fn a_reply_server_answers_each_request_in_two_parts(lab: &Lab) -> netclaim_lab::Result<()> {
    use std::io::{Read, Write};
    let target = lab.target().and_then(Target::sock).expect("a TCP target");
    let replies = lab.run(|| -> std::io::Result<Vec<usize>> {
        let mut conn = TcpStream::connect(target)?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut sizes = Vec::new();
        for _ in 0..3 {
            conn.write_all(&[b'a'; 100])?;
            conn.write_all(&[b'b'; 100])?;
            let mut reply = [0u8; 100];
            conn.read_exact(&mut reply)?;
            sizes.push(reply.iter().filter(|b| **b == b'r').count());
        }
        Ok(sizes)
    })?;
    assert_eq!(replies.expect("three replies"), vec![100, 100, 100]);
    assert_eq!(
        lab.description(),
        Some("a server on 127.0.0.1:8080 that reads each 200-byte request and answers 100 bytes, setting TCP_QUICKACK after every recv()")
    );
    Ok(())
}
