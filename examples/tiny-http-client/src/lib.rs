//! A tiny HTTP/1.0 client: `get(addr, timeouts)` returns the response's status code. The
//! code under test in this example of netclaim-lab.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long the client waits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the connection (`None`: as long as the kernel keeps trying).
    pub connect: Option<Duration>,
    /// For each read of the response.
    pub read: Option<Duration>,
}

/// `GET /` on `addr`; the status code of the response.
pub fn get(addr: SocketAddr, t: Timeouts) -> io::Result<u16> {
    let mut stream = match t.connect {
        Some(d) => TcpStream::connect_timeout(&addr, d)?,
        None => TcpStream::connect(addr)?,
    };
    stream.set_read_timeout(t.read)?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    status(&head)
}

/// The same with tokio.
pub async fn get_async(addr: SocketAddr) -> io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut head = Vec::new();
    stream.read_to_end(&mut head).await?;
    status(&head)
}

fn status(head: &[u8]) -> io::Result<u16> {
    String::from_utf8_lossy(head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))
}
