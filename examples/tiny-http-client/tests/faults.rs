//! What the client does when the network misbehaves, in throwaway network namespaces:
//! `cargo test` as root, or as an ordinary user where user namespaces are allowed.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::Duration;

use netclaim_lab::Lab;
use tiny_http_client::{get, get_async, Timeouts};

const SECOND: Duration = Duration::from_secs(1);

#[netclaim_lab::test(lab = Lab::builder().drop_syn_to(80))]
fn syn_drop_with_a_two_second_connect_timeout(lab: &Lab) -> netclaim_lab::Result<()> {
    let timeouts = Timeouts {
        connect: Some(2 * SECOND),
        read: None,
    };
    let seen = lab.capture(80, || get(lab.addr(80).into(), timeouts))?;
    assert_eq!(seen.value.as_ref().unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(seen.elapsed >= 2 * SECOND && seen.elapsed < 2 * SECOND + SECOND / 2);
    // SYNs at 0 and 1 s (and one at 2 s may or may not go out): as the kernel says.
    seen.assert_syns_follow(&lab.model()?, 2 * SECOND);
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder().drop_syn_to(80).sysctl("net.ipv4.tcp_syn_retries", 1))]
fn tcp_syn_retries_1_without_a_timeout(lab: &Lab) -> netclaim_lab::Result<()> {
    let timeouts = Timeouts {
        connect: None,
        read: None,
    };
    let seen = lab.capture(80, || get(lab.addr(80).into(), timeouts))?;
    let err = seen.value.as_ref().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(110), "ETIMEDOUT, got {err}");
    // Given up when the kernel gives up: about 3 s, three SYNs on kernels since 6.5.
    seen.assert_gave_up_when_kernel_would(&lab.model()?);
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder()
    .sysctl("net.core.somaxconn", 1)
    .never_accepting_server(8080, 128))]
fn a_full_accept_queue(lab: &Lab) -> netclaim_lab::Result<()> {
    let timeouts = Timeouts {
        connect: Some(SECOND),
        read: Some(SECOND),
    };
    let addr = lab.addr(8080).into();
    // While the queue has room the handshake completes: the read times out, and std
    // reports a read timeout as WouldBlock (EAGAIN), not TimedOut.
    let first = lab.run(|| get(addr, timeouts))?;
    assert_eq!(first.unwrap_err().kind(), ErrorKind::WouldBlock);
    // backlog min(128, somaxconn 1) + 1 = 2 connections fit: that one (the client has
    // closed it, but nobody accepted it) and one more, held here.
    let held = lab.run(|| TcpStream::connect_timeout(&addr, SECOND))?;
    assert!(held.is_ok(), "{held:?}");
    // Now the SYN is dropped: the connect times out. No RST, no ECONNREFUSED.
    let full = lab.capture(8080, || get(addr, timeouts))?;
    assert_eq!(full.value.as_ref().unwrap_err().kind(), ErrorKind::TimedOut);
    // Unanswered SYNs, as the kernel sends them until the 1 s connect timeout.
    full.assert_syns_follow(&lab.model()?, SECOND);
    assert!(full.events.iter().all(|e| !e.flags.is_rst()));
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder()
    .port_range(40000, 40003)
    .never_accepting_server(8080, 64))]
fn port_exhaustion(lab: &Lab) -> netclaim_lab::Result<()> {
    let addr = lab.addr(8080);
    // Four local ports, four connections held open: none left for the client.
    let held = lab.run(|| (0..4).map(|_| TcpStream::connect(addr)).collect::<Vec<_>>())?;
    assert!(held.iter().all(|c| c.is_ok()));
    let timeouts = Timeouts {
        connect: Some(SECOND),
        read: Some(SECOND),
    };
    let err = lab.run(|| get(addr.into(), timeouts))?.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(99), "EADDRNOTAVAIL, got {err}");
    Ok(())
}

#[netclaim_lab::test(lab = Lab::builder().drop_syn_to(80))]
async fn tokio_with_a_timeout(lab: &Lab) {
    // This runtime runs inside the lab: 127.0.0.1:80 is the lab's dropped port.
    let attempt = tokio::time::timeout(2 * SECOND, get_async(lab.addr(80).into())).await;
    assert!(
        attempt.is_err(),
        "expected the 2 s timeout, got {attempt:?}"
    );
}

netclaim_lab::main!();
