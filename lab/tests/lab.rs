//! The library's own lab tests, run by its runner: the builder's faults, running inside
//! the lab, the model assertions, and the quarantine of the test threads.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use netclaim_lab::{Lab, Observed};

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

netclaim_lab::main!();
