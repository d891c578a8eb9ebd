//! What a lab holds at its target: one type per kind, each knowing how to build itself
//! and how to say what it built (the words a report's evidence shows, and the line a key
//! table gives the kind).
//!
//! [`LabBuilder::serve`](crate::LabBuilder::serve) puts one kind at the lab's target:
//!
//! ```no_run
//! use netclaim_lab::{kind, Lab};
//!
//! # fn main() -> netclaim_lab::Result<()> {
//! let lab = Lab::builder().serve(kind::Reject::with("icmp-port-unreachable"), 80).build()?;
//! // A peer at 192.0.2.2 over veth whose iptables rejects port 80.
//! println!("{}", lab.description().unwrap_or_default());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::time::Duration;

use netclaim_fixtures::bulk::SinkServer;
use netclaim_fixtures::http::{SlowBodyServer, Trickle as HttpBody};
use netclaim_fixtures::server::{
    NoAcceptListener, ReplyServer, SilentServer, UnixNoAcceptListener, REPLY_BYTES, REQUEST_BYTES,
};
use netclaim_harness::tmp::TempDir;
use netclaim_harness::{Error, NetNs, Result};

use crate::{LOCAL, PEER};

/// An address no lab has a route to (RFC 5737 TEST-NET-3).
pub const UNROUTABLE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// Where a client aims at a lab's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An IPv4 address and port.
    Tcp(SocketAddrV4),
    /// An IPv6 address and port.
    Tcp6(SocketAddrV6),
    /// A unix stream socket's path.
    Unix(PathBuf),
}

impl Target {
    /// The target as a client names it: `127.0.0.1:7`, `[::1]:7`, a path.
    pub fn text(&self) -> String {
        match self {
            Self::Tcp(a) => a.to_string(),
            Self::Tcp6(a) => a.to_string(),
            Self::Unix(p) => p.display().to_string(),
        }
    }

    /// The IPv4 address, if the target is one.
    pub fn tcp(&self) -> Option<SocketAddrV4> {
        match self {
            Self::Tcp(a) => Some(*a),
            Self::Tcp6(_) | Self::Unix(_) => None,
        }
    }

    /// The TCP address, IPv4 or IPv6.
    pub fn sock(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(a) => Some((*a).into()),
            Self::Tcp6(a) => Some((*a).into()),
            Self::Unix(_) => None,
        }
    }
}

/// Where a kind is built: the lab's namespaces and the address its target is at.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    /// The lab's own namespace (the client's).
    pub lab: &'a NetNs,
    /// The peer's namespace over veth or a wire, if the lab has one.
    pub peer: Option<&'a NetNs>,
    /// Where a server runs: the peer behind a wire, the lab itself otherwise.
    pub server: &'a NetNs,
    /// The target's address: [`PEER`] when the lab has a peer, else the kind's own
    /// address ([`Kind::address`]).
    pub addr: SocketAddr,
    /// Whether the peer is over netclaim's wire rather than a veth.
    pub wire: bool,
}

impl Site<'_> {
    /// The peer, for a kind that needs one ([`Kind::on_peer`]).
    fn peer(&self, kind: &dyn Kind) -> Result<&NetNs> {
        self.peer.ok_or_else(|| Error::Invalid {
            reason: format!("{} needs its peer", kind.name()),
        })
    }

    /// The IPv4 address, for a kind that has no IPv6 form.
    fn v4(&self, kind: &dyn Kind) -> Result<SocketAddrV4> {
        match self.addr {
            SocketAddr::V4(a) => Ok(a),
            SocketAddr::V6(_) => Err(Error::Invalid {
                reason: format!("server {} has no IPv6 target", kind.name()),
            }),
        }
    }

    /// `veth` or `wire`: what joins the lab to its peer.
    fn joined_by(&self) -> &'static str {
        if self.wire {
            "wire"
        } else {
            "veth"
        }
    }
}

/// A kind, built: what must stay alive while the lab is used, where the client aims,
/// and the words for it.
#[derive(Debug)]
pub struct Started {
    /// Servers and directories held for their `Drop`.
    pub guard: Option<Box<dyn fmt::Debug + Send + Sync>>,
    /// Where the client aims.
    pub target: Target,
    /// What was built, as the evidence says it (`iptables -A INPUT … -j DROP, target …`).
    pub description: String,
}

impl Started {
    fn at(site: &Site<'_>, description: String) -> Self {
        Self {
            guard: None,
            target: match site.addr {
                SocketAddr::V4(a) => Target::Tcp(a),
                SocketAddr::V6(a) => Target::Tcp6(a),
            },
            description,
        }
    }

    fn holding(mut self, guard: impl fmt::Debug + Send + Sync + 'static) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }
}

/// One kind of lab target: what is at the address a client aims at.
pub trait Kind: fmt::Debug + Send + Sync {
    /// Its name as a claim file's `lab.server` writes it (`drop-syn`).
    fn name(&self) -> &'static str;

    /// What it is, in a few words, for a key table (`iptables drops SYNs to
    /// 127.0.0.1:port`).
    fn about(&self) -> &'static str;

    /// Another name a claim file may give it (`none` for `refuse`).
    fn alias(&self) -> Option<&'static str> {
        None
    }

    /// Whether it lives on a peer namespace ([`PEER`]) over veth rather than in the lab.
    fn on_peer(&self) -> bool {
        false
    }

    /// The address of its target when the lab has no peer: loopback by default.
    fn address(&self, ipv6: bool) -> IpAddr {
        if ipv6 {
            Ipv6Addr::LOCALHOST.into()
        } else {
            Ipv4Addr::LOCALHOST.into()
        }
    }

    /// Builds it at `site`.
    fn start(&self, site: &Site<'_>) -> Result<Started>;
}

/// An iptables rule drops SYNs to the port: no answer at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropSyn;

impl Kind for DropSyn {
    fn name(&self) -> &'static str {
        "drop-syn"
    }
    fn about(&self) -> &'static str {
        "iptables drops SYNs to 127.0.0.1:port"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let port = site.addr.port();
        let tables = match site.addr {
            SocketAddr::V4(_) => {
                site.server.drop_syn_to_port(port)?;
                "iptables"
            }
            SocketAddr::V6(_) => {
                site.server.ip6tables_append(
                    "filter",
                    "INPUT",
                    &netclaim_harness::firewall::drop_syn_rule(port),
                )?;
                "ip6tables"
            }
        };
        Ok(Started::at(
            site,
            format!(
                "{tables} -A INPUT -p tcp --dport {port} --syn -j DROP, target {}",
                site.addr
            ),
        ))
    }
}

/// Nothing listens on the port: the kernel answers a SYN with RST.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refuse;

impl Kind for Refuse {
    fn name(&self) -> &'static str {
        "refuse"
    }
    fn about(&self) -> &'static str {
        "nothing listens: RST"
    }
    fn alias(&self) -> Option<&'static str> {
        Some("none")
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        Ok(Started::at(
            site,
            format!(
                "nothing listens on {}: the kernel answers a SYN with RST",
                site.addr
            ),
        ))
    }
}

/// A peer over veth that drops every packet: an unreachable host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Blackhole;

impl Kind for Blackhole {
    fn name(&self) -> &'static str {
        "blackhole"
    }
    fn about(&self) -> &'static str {
        "a peer namespace 192.0.2.2 over veth that drops everything"
    }
    fn on_peer(&self) -> bool {
        true
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let peer = site.peer(self)?;
        let addr = site.v4(self)?;
        peer.drop_all_input()?;
        let description = if site.wire {
            format!(
                "client {LOCAL} on the wire to {PEER} ({}), which drops all input; target {addr}",
                peer.name()
            )
        } else {
            format!("client {LOCAL} on a veth to {PEER}, which drops all input; target {addr}")
        };
        Ok(Started::at(site, description))
    }
}

/// A peer over veth whose iptables rejects connections to the port
/// (`--reject-with` what [`Reject::with`] names).
#[derive(Debug, Clone, Default)]
pub struct Reject {
    /// The `--reject-with` type (`tcp-reset`, `icmp-port-unreachable`, …).
    pub with: String,
}

impl Reject {
    /// Rejects with `with` (`tcp-reset`, `icmp-host-unreachable`, …).
    pub fn with(with: impl Into<String>) -> Self {
        Self { with: with.into() }
    }
}

impl Kind for Reject {
    fn name(&self) -> &'static str {
        "reject"
    }
    fn about(&self) -> &'static str {
        "a peer 192.0.2.2 over veth whose iptables REJECTs the port `--reject-with lab.reject_with`"
    }
    fn on_peer(&self) -> bool {
        true
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let peer = site.peer(self)?;
        let addr = site.v4(self)?;
        let rule = format!(
            "-p tcp --dport {} -j REJECT --reject-with {}",
            addr.port(),
            self.with
        );
        peer.iptables_append("filter", "INPUT", &rule)?;
        Ok(Started::at(
            site,
            format!(
                "client {LOCAL} on a {} to {PEER} ({}), whose iptables -A INPUT {rule}; target {addr}",
                site.joined_by(),
                peer.name()
            ),
        ))
    }
}

/// An address ([`UNROUTABLE`]) the lab has no route to: only `lo`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unroutable;

impl Kind for Unroutable {
    fn name(&self) -> &'static str {
        "unroutable"
    }
    fn about(&self) -> &'static str {
        "203.0.113.1, which the lab has no route to"
    }
    fn address(&self, _ipv6: bool) -> IpAddr {
        UNROUTABLE.into()
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let addr = site.v4(self)?;
        Ok(Started::at(
            site,
            format!("only lo in the lab: no route to {addr}"),
        ))
    }
}

/// A listener that accepts connections and never sends a byte.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Kind for Silent {
    fn name(&self) -> &'static str {
        "silent"
    }
    fn about(&self) -> &'static str {
        "accepts, never sends"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let addr = site.v4(self)?;
        let server = SilentServer::start(site.server, addr)?;
        Ok(Started::at(
            site,
            format!("a server on {addr} that accepts and never sends a byte"),
        )
        .holding(server))
    }
}

/// A listener that accepts each connection and resets it at once (`SO_LINGER` 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct RstAfterHandshake;

impl Kind for RstAfterHandshake {
    fn name(&self) -> &'static str {
        "rst-after-handshake"
    }
    fn about(&self) -> &'static str {
        "accepts, then resets the connection (RST)"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let addr = site.v4(self)?;
        let server = SilentServer::start_resetting(site.server, addr)?;
        Ok(Started::at(
            site,
            format!("a server on {addr} that accepts and resets each connection at once (SO_LINGER 0, close)"),
        )
        .holding(server))
    }
}

/// A listener that reads each connection to its end, discarding the bytes, then closes
/// it: the receiving end of a bulk transfer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sink;

impl Kind for Sink {
    fn name(&self) -> &'static str {
        "sink"
    }
    fn about(&self) -> &'static str {
        "reads and discards until end of stream, then closes"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let addr = site.v4(self)?;
        let server = SinkServer::start(site.server, addr)?;
        Ok(Started::at(
            site,
            format!("a server on {addr} that reads each connection to its end, discarding the bytes, then closes it"),
        )
        .holding(server))
    }
}

/// A peer over veth that accepts the connection and then drops every packet: a host
/// that died after the handshake (the client's side installs the drop once connected).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiesAfterHandshake;

impl Kind for DiesAfterHandshake {
    fn name(&self) -> &'static str {
        "dies-after-handshake"
    }
    fn about(&self) -> &'static str {
        "a peer 192.0.2.2 over veth that accepts the connection, then drops every packet"
    }
    fn on_peer(&self) -> bool {
        true
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let peer = site.peer(self)?;
        let addr = site.v4(self)?;
        let server = SilentServer::start(peer, addr)?;
        Ok(Started::at(
            site,
            format!(
                "client {LOCAL} on a {} to {PEER} ({}), which accepts on {addr} and, once the client is connected, drops every packet (iptables -A INPUT -j DROP)",
                site.joined_by(),
                peer.name()
            ),
        )
        .holding(server))
    }
}

/// A listener that never calls accept(): the kernel completes handshakes until the
/// accept queue (`backlog`, capped by `net.core.somaxconn`, plus one) is full, then
/// drops further SYNs.
#[derive(Debug, Clone, Copy)]
pub struct NeverAccept {
    /// listen()'s backlog.
    pub backlog: i32,
}

impl Default for NeverAccept {
    fn default() -> Self {
        Self {
            backlog: DEFAULT_BACKLOG,
        }
    }
}

/// The listen() backlog of a never-accept server when none is asked for.
pub const DEFAULT_BACKLOG: i32 = 16;

impl Kind for NeverAccept {
    fn name(&self) -> &'static str {
        "never-accept"
    }
    fn about(&self) -> &'static str {
        "listens, never calls accept()"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let listener = NoAcceptListener::bind(site.server, site.v4(self)?, self.backlog)?;
        // Port 0 asks the kernel for one: the target is the port it bound.
        let addr = listener.addr();
        Ok(Started {
            guard: None,
            target: Target::Tcp(addr),
            description: format!(
                "a listener on {addr} with listen({}) that never calls accept()",
                self.backlog
            ),
        }
        .holding(listener))
    }
}

/// A unix stream listener that never calls accept(), in a directory the lab owns (and
/// removes): once its queue is full a nonblocking connect() fails with EAGAIN.
#[derive(Debug, Clone, Copy)]
pub struct NeverAcceptUnix {
    /// listen()'s backlog.
    pub backlog: i32,
}

impl Default for NeverAcceptUnix {
    fn default() -> Self {
        Self {
            backlog: DEFAULT_BACKLOG,
        }
    }
}

impl Kind for NeverAcceptUnix {
    fn name(&self) -> &'static str {
        "never-accept-unix"
    }
    fn about(&self) -> &'static str {
        "the same on a unix socket; `{target}` is its path"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let dir = TempDir::new("eagain")?;
        let path = dir.path().join("listener.sock");
        let listener = UnixNoAcceptListener::bind(site.lab, &path, self.backlog)?;
        let description = format!(
            "a unix listener at {} with listen({}) that never calls accept()",
            path.display(),
            self.backlog
        );
        Ok(Started {
            guard: Some(Box::new((listener, dir))),
            target: Target::Unix(path),
            description,
        })
    }
}

/// An HTTP server answering `200 OK` with a short body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Http;

impl Http {
    /// The body it answers with.
    pub const BODY: &'static [u8] = b"netclaim lab\n";
}

impl Kind for Http {
    fn name(&self) -> &'static str {
        "http"
    }
    fn about(&self) -> &'static str {
        "answers `200 OK`"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let addr = site.v4(self)?;
        let body = Self::BODY.len() as u64;
        let all_at_once = HttpBody {
            content_length: body,
            initial: body,
            chunk: body,
            interval: Duration::ZERO,
        };
        http_server(
            site,
            all_at_once,
            format!("an HTTP server on {addr} answering 200 OK with {body} bytes"),
        )
    }
}

/// A [`SlowBodyServer`] at the site's address sending `body`, described as `what`.
fn http_server(site: &Site<'_>, body: HttpBody, what: String) -> Result<Started> {
    let server = SlowBodyServer::start(site.server, site.v4(&Http)?, body)?;
    Ok(Started::at(site, what).holding(server))
}

/// An HTTP server that answers `200 OK` with its headers at once (`Content-Length:
/// bytes`) and then its body one byte every `every`, the first `every` after the headers;
/// the connection stays open after the last byte until the client closes it. A client's
/// idle (read) timeout shorter than `every` ends the transfer before the first byte; a
/// longer one sees the whole body, `bytes × every` after the headers.
#[derive(Debug, Clone, Copy)]
pub struct Trickle {
    /// The time between two body bytes (and from the headers to the first).
    pub every: Duration,
    /// The body's length.
    pub bytes: u64,
}

impl Default for Trickle {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(1),
            bytes: 4,
        }
    }
}

impl Kind for Trickle {
    fn name(&self) -> &'static str {
        "trickle"
    }
    fn about(&self) -> &'static str {
        "answers `200 OK` with its headers, then its body one byte every `lab.trickle.every`"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let addr = site.v4(self)?;
        let byte_by_byte = HttpBody {
            content_length: self.bytes,
            initial: 0,
            chunk: 1,
            interval: self.every,
        };
        http_server(
            site,
            byte_by_byte,
            format!(
                "an HTTP server on {addr} answering 200 OK with Content-Length {} at once, then one byte every {} ms",
                self.bytes,
                self.every.as_millis()
            ),
        )
    }
}

/// A server that answers each request of [`REQUEST_BYTES`] with [`REPLY_BYTES`] in one
/// write(); with `quickack`, it sets `TCP_QUICKACK` after every recv().
#[derive(Debug, Clone, Copy, Default)]
pub struct Reply {
    /// Set `TCP_QUICKACK` after every recv() (tcp(7): the flag is not permanent).
    pub quickack: bool,
}

impl Kind for Reply {
    fn name(&self) -> &'static str {
        "reply"
    }
    fn about(&self) -> &'static str {
        "reads each 200-byte request, answers 100 bytes; with `lab.quickack`, sets TCP_QUICKACK after every recv()"
    }
    fn start(&self, site: &Site<'_>) -> Result<Started> {
        let addr = site.v4(self)?;
        let server = ReplyServer::start(site.server, addr, self.quickack)?;
        Ok(Started::at(
            site,
            format!(
                "a server on {addr} that reads each {REQUEST_BYTES}-byte request and answers {REPLY_BYTES} bytes{}",
                if self.quickack {
                    ", setting TCP_QUICKACK after every recv()"
                } else {
                    ""
                }
            ),
        )
        .holding(server))
    }
}

/// Every kind, in its default configuration, in the order a key table lists them.
pub fn all() -> Vec<Box<dyn Kind>> {
    vec![
        Box::new(DropSyn),
        Box::new(Blackhole),
        Box::new(Refuse),
        Box::new(Silent),
        Box::new(NeverAccept::default()),
        Box::new(NeverAcceptUnix::default()),
        Box::new(Http),
        Box::new(Reject::default()),
        Box::new(Unroutable),
        Box::new(DiesAfterHandshake),
        Box::new(RstAfterHandshake),
        Box::new(Trickle::default()),
        Box::new(Reply::default()),
        Box::new(Sink),
    ]
}

/// The key table's text for every kind: `` `drop-syn` (iptables drops …), `blackhole` (…) ``.
pub fn table_text() -> String {
    all()
        .iter()
        .map(|k| match k.alias() {
            Some(alias) => format!("`{}` / `{alias}` ({})", k.name(), k.about()),
            None => format!("`{}` ({})", k.name(), k.about()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The README's key-table row for `lab.server`, generated from the kinds
/// (`scripts/update-readme --kinds` writes it; a test checks the README holds it).
pub fn readme_row() -> String {
    format!(
        "| `lab.server` | what is at `{{target}}`: {} |",
        table_text()
    )
}
