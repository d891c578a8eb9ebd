//! The library's own lab tests, run by its runner: the builder's faults, running inside
//! the lab, the model assertions, and the quarantine of the test threads.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use netclaim_lab::{Action, Faults, Lab, Observed, Rule, WireSpec, LOCAL, PEER};

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

netclaim_lab::main!();
