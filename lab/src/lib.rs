//! Throwaway Linux network namespaces for your own tests.
//!
//! A [`Lab`] is a network namespace of its own (with `lo` up) and, as you ask for them,
//! a port whose SYNs are dropped, a peer over veth that blackholes or refuses, a server
//! that never accepts or never answers, a shrunken port range, and any `net.*` sysctl.
//! Your code runs inside it ([`Lab::run`], [`Lab::capture`], [`Lab::block_on`]); what it
//! did comes back with how long it took and the SYNs it sent, and can be checked against
//! the kernel's timing model with the same timer-slack windows the netclaim catalog uses.
//!
//! ```no_run
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use netclaim_lab::Lab;
//!
//! #[netclaim_lab::test(lab = Lab::builder().drop_syn_to(7))]
//! fn connect_timeout_of_two_seconds(lab: &Lab) -> netclaim_lab::Result<()> {
//!     let seen = lab.capture(7, || {
//!         TcpStream::connect_timeout(&lab.addr(7).into(), Duration::from_secs(2))
//!     })?;
//!     assert_eq!(seen.value.as_ref().unwrap_err().kind(), std::io::ErrorKind::TimedOut);
//!     seen.assert_syns_follow(&lab.model()?, Duration::from_secs(2));
//!     Ok(())
//! }
//!
//! netclaim_lab::main!();
//! ```
//!
//! The test target needs `harness = false` in `Cargo.toml`; [`main!`] runs every
//! `#[netclaim_lab::test]` of the binary. Labs need `CAP_SYS_ADMIN` and `CAP_NET_ADMIN`:
//! as root they are made directly; as an ordinary user the runner first enters a user
//! namespace of its own (the user mapped to root in it), where the kernel allows that;
//! where it does not, every lab test is reported as *ignored* with the setting that
//! blocks it — never as passed.
//!
//! The runner also moves the test threads into an empty network namespace of their own
//! (no interfaces, not even `lo`): a client call made outside [`Lab::run`],
//! [`Lab::capture`] or [`Lab::block_on`] — a plain `#[tokio::test]`-style runtime, a
//! forgotten closure — fails with `ENETUNREACH` instead of talking to the host. What this
//! cannot catch: sockets opened before the test started, unix-domain sockets bound to a
//! path (they are not per namespace), and code that switches namespaces itself.
//!
//! ## A server of your own behind a slow link
//!
//! [`LabBuilder::link`] joins the lab to a peer namespace through netclaim's own wire
//! instead of a veth: a delay, jitter, loss, a rate, packet rules (see
//! [`harness::wire`]), each way. Start your server in the peer ([`Lab::run_in_peer`]),
//! your client in the lab, and read what the wire did ([`Lab::wire_report`]):
//!
//! ```no_run
//! use std::net::{TcpListener, TcpStream};
//! use std::time::{Duration, Instant};
//! use netclaim_lab::{Lab, Faults, WireSpec, PEER};
//!
//! #[netclaim_lab::test(lab = Lab::builder().link(
//!     WireSpec::new(Faults::new().delay(Duration::from_millis(50))).seed(7)))]
//! fn connect_takes_one_round_trip(lab: &Lab) -> Result<(), Box<dyn std::error::Error>> {
//!     let _server = lab.run_in_peer(|| TcpListener::bind((PEER, 8080)))??;
//!     let took = lab.run(|| {
//!         let t = Instant::now();
//!         TcpStream::connect((PEER, 8080)).map(|_| t.elapsed())
//!     })??;
//!     // 50 ms each way: connect() returns after the SYN-ACK, one 100 ms round trip.
//!     assert!(took >= Duration::from_millis(100), "{took:?}");
//!     let wire = lab.wire_report().expect("the lab has a wire");
//!     assert_eq!(wire.from_peer.counts.delivered, 1); // the SYN-ACK
//!     Ok(())
//! }
//!
//! netclaim_lab::main!();
//! ```
//!
//! Where a wire cannot be built (no `/dev/net/tun`, as in a container started without
//! `--device /dev/net/tun`), its tests are reported as *ignored* with that reason.

#![deny(missing_docs)]

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use netclaim_fixtures as fixtures;
pub use netclaim_harness as harness;
pub use netclaim_harness::capture::TcpEvent;
pub use netclaim_harness::model::{SynModel, SynSchedule};
pub use netclaim_harness::{Error, NetNs, Result};
pub use netclaim_lab_macros::test;

use netclaim_harness::capture;
use netclaim_harness::sysctl::knob;
use netclaim_harness::tolerance::Window;
use netclaim_harness::wire::Wire;
pub use netclaim_harness::wire::{
    Action, Counts, Faults, Jitter, Loss, Rule, WireCounters, WireReport, WireSpec,
};

pub mod kind;
pub mod timing;

pub use kind::{Kind, Site, Started, Target};

mod runner;
pub use runner::{run_tests, LabTest, TestError, TESTS};

/// The peer's address, over veth (RFC 5737 TEST-NET-1).
pub const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The lab's own address on that veth.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// How to build a [`Lab`]: `Lab::builder().sysctl(…).drop_syn_to(7).build()`.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until .build()"]
pub struct LabBuilder {
    sysctls: Vec<(String, String)>,
    optional: Vec<(String, String)>,
    /// Kinds on the lab's loopback, each at its port, besides the target.
    servers: Vec<(Arc<dyn Kind>, u16)>,
    /// The lab's target: one kind at a port.
    target: Option<(Arc<dyn Kind>, u16)>,
    /// A peer without a target of its own (blackholing or plain).
    peer: Option<Arc<dyn Kind>>,
    ipv6: bool,
    port_range: Option<(u16, u16)>,
    link: Option<WireSpec>,
}

impl LabBuilder {
    /// Sets a `net.*` sysctl in the lab, named `net.ipv4.tcp_syn_retries` or
    /// `net/ipv4/tcp_syn_retries`. Other sysctls are refused (they belong to the host),
    /// and so are `net.*` knobs whose write would act beyond the lab: absent from a
    /// namespace, read-only there, global in effect (`net.netfilter.nf_hooks_lwtunnel`), or
    /// naming a kernel module that is not loaded (see `netclaim_harness::sysctl`); `build`
    /// then fails with `Error::SysctlGlobal` naming why.
    pub fn sysctl(mut self, name: &str, value: impl fmt::Display) -> Self {
        self.sysctls
            .push((netclaim_harness::sysctl::dotted(name), value.to_string()));
        self
    }

    /// Sets a `net.*` sysctl where the kernel has it: where it is absent the lab is built
    /// all the same, and [`Lab::notes`] says so (`NAME is absent on this kernel: its
    /// classic behaviour applies`); where it is set, the notes say `NAME=VALUE`. Any other
    /// refusal fails `build` as [`LabBuilder::sysctl`]'s would.
    pub fn sysctl_if_present(mut self, name: &str, value: impl fmt::Display) -> Self {
        self.optional
            .push((netclaim_harness::sysctl::dotted(name), value.to_string()));
        self
    }

    /// Puts `kind` at the lab's target, port `port`: on [`PEER`] when the kind lives on a
    /// peer ([`Kind::on_peer`]) or the lab has a [`LabBuilder::link`], else at the kind's
    /// own address (loopback; [`kind::UNROUTABLE`] for [`kind::Unroutable`]). What it built
    /// is [`Lab::target`] and [`Lab::description`].
    pub fn serve(mut self, kind: impl Kind + 'static, port: u16) -> Self {
        self.target = Some((Arc::new(kind), port));
        self
    }

    /// Puts the target ([`LabBuilder::serve`]) on `[::1]` instead of `127.0.0.1`, for the
    /// kinds that have an IPv6 form ([`kind::DropSyn`], [`kind::Refuse`]); the others
    /// refuse to build.
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Drops SYNs to `port` on the lab's loopback (`127.0.0.1:port` never answers).
    pub fn drop_syn_to(mut self, port: u16) -> Self {
        self.servers.push((Arc::new(kind::DropSyn), port));
        self
    }

    /// A peer namespace at [`PEER`] over veth that drops every packet.
    pub fn blackhole_peer(mut self) -> Self {
        self.peer = Some(Arc::new(kind::Blackhole));
        self
    }

    /// A peer namespace at [`PEER`] over veth where nothing listens: RST. Start your own
    /// server in it with [`Lab::run_in_peer`].
    pub fn refusing_peer(self) -> Self {
        self.peer()
    }

    /// A plain peer namespace at [`PEER`] over veth ([`LOCAL`] is the lab's end): start
    /// your own server in it with [`Lab::run_in_peer`]; until then nothing listens (RST).
    pub fn peer(mut self) -> Self {
        self.peer = Some(Arc::new(kind::Refuse));
        self
    }

    /// A listener on `127.0.0.1:port` that never calls accept(): once `backlog`
    /// (capped by `net.core.somaxconn`) + 1 connections are queued, the kernel drops
    /// further SYNs.
    pub fn never_accepting_server(mut self, port: u16, backlog: i32) -> Self {
        self.servers
            .push((Arc::new(kind::NeverAccept { backlog }), port));
        self
    }

    /// A server on `127.0.0.1:port` that accepts and never sends a byte.
    pub fn silent_server(mut self, port: u16) -> Self {
        self.servers.push((Arc::new(kind::Silent), port));
        self
    }

    /// Joins the lab to a peer namespace at [`PEER`] through netclaim's wire instead of a
    /// veth, with `spec`'s faults and rules each way ([`LOCAL`] is the lab's end). With
    /// no peer kind asked for, the peer is a plain namespace: start your own server in
    /// it with [`Lab::run_in_peer`]. [`Lab::wire_report`] says what the wire did. A
    /// target ([`LabBuilder::serve`]) is then on the peer.
    pub fn link(mut self, spec: WireSpec) -> Self {
        self.link = Some(spec);
        self
    }

    /// Shrinks `net.ipv4.ip_local_port_range` to `low..=high`. The lab's servers must
    /// listen outside it ([`LabBuilder::build`] refuses otherwise): a server in the range
    /// would take one of the ports your client is meant to run out of.
    pub fn port_range(mut self, low: u16, high: u16) -> Self {
        self.port_range = Some((low, high));
        self
    }

    /// Whether the lab needs a peer namespace.
    fn wants_peer(&self) -> bool {
        self.peer.is_some()
            || self.link.is_some()
            || self.target.as_ref().is_some_and(|(k, _)| k.on_peer())
    }

    /// Builds the lab. A sysctl the kernel lacks or rejects is [`Error::SysctlAbsent`] /
    /// [`Error::SysctlRejected`], naming it.
    pub fn build(self) -> Result<Lab> {
        if let Some((low, high)) = self.port_range {
            let local = self
                .target
                .iter()
                .filter(|_| !self.wants_peer())
                .map(|(_, p)| p);
            if let Some(port) = self
                .servers
                .iter()
                .map(|(_, p)| p)
                .chain(local)
                .find(|p| (low..=high).contains(*p))
            {
                return Err(Error::Invalid {
                    reason: format!(
                        "server port {port} lies in the port range {low}-{high} the lab shrinks: \
                         it would take one of the client's ports; choose a port outside it"
                    ),
                });
            }
        }
        let mut sysctls = self.sysctls.clone();
        if let Some((low, high)) = self.port_range {
            sysctls.push((knob::IP_LOCAL_PORT_RANGE.into(), format!("{low} {high}")));
        }
        let pairs: Vec<(&str, &str)> = sysctls
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(spec) = &self.link {
            // A bad spec is refused before any namespace is made.
            spec.validate()?;
        }
        let ns = NetNs::with_sysctls(&pairs)?;
        let (peer, wire) = if self.wants_peer() {
            let peer = NetNs::new()?;
            let wire = match &self.link {
                Some(spec) => Some(Wire::between_addrs(
                    &ns,
                    LOCAL,
                    &peer,
                    PEER,
                    24,
                    spec.clone(),
                )?),
                None => {
                    netclaim_harness::link::veth_pair(&ns, LOCAL, &peer, PEER, 24)?;
                    None
                }
            };
            (Some(peer), wire)
        } else {
            (None, None)
        };
        let mut notes = Vec::new();
        for (name, value) in &self.optional {
            match ns.set_sysctl(name, value) {
                Ok(()) => notes.push(format!("{name}={value}")),
                Err(Error::SysctlAbsent { .. }) => notes.push(format!(
                    "{name} is absent on this kernel: its classic behaviour applies"
                )),
                Err(e) => return Err(e),
            }
        }
        fn site<'a>(
            lab: &'a NetNs,
            peer: Option<&'a NetNs>,
            wire: bool,
            addr: SocketAddr,
            server: &'a NetNs,
        ) -> Site<'a> {
            Site {
                lab,
                peer,
                server,
                addr,
                wire,
            }
        }
        let site = |addr, server| site(&ns, peer.as_ref(), wire.is_some(), addr, server);
        let mut guards = Vec::new();
        if let (Some(kind), Some(p)) = (&self.peer, &peer) {
            let started = kind.start(&site(SocketAddrV4::new(PEER, 0).into(), p))?;
            guards.extend(started.guard);
        }
        for (kind, port) in &self.servers {
            let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, *port);
            guards.extend(kind.start(&site(addr.into(), &ns))?.guard);
        }
        let target = match &self.target {
            None => None,
            Some((kind, port)) => {
                let addr = match &peer {
                    Some(_) => SocketAddr::new(PEER.into(), *port),
                    None => SocketAddr::new(kind.address(self.ipv6), *port),
                };
                // Behind a wire every server is on the peer's side of it.
                let server = match (&wire, &peer) {
                    (Some(_), Some(p)) => p,
                    _ => &ns,
                };
                let started = kind.start(&site(addr, server))?;
                guards.extend(started.guard);
                Some((started.target, started.description))
            }
        };
        Ok(Lab {
            _servers: guards,
            target,
            notes,
            wire,
            peer,
            ns,
        })
    }
}

/// A network namespace with its faults, removed (with its servers and peer) on drop.
#[derive(Debug)]
pub struct Lab {
    // Dropped in this order: servers, the wire, the peer, the namespace.
    _servers: Vec<Box<dyn fmt::Debug + Send + Sync>>,
    target: Option<(Target, String)>,
    notes: Vec<String>,
    wire: Option<Wire>,
    peer: Option<NetNs>,
    ns: NetNs,
}

impl Lab {
    /// Starts describing a lab.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The lab's namespace (for [`NetNs::command`], sysctls, iptables).
    pub fn ns(&self) -> &NetNs {
        &self.ns
    }

    /// `127.0.0.1:port` inside the lab.
    pub fn addr(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
    }

    /// Where the target ([`LabBuilder::serve`]) is, if the lab has one.
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref().map(|(t, _)| t)
    }

    /// What the target is, in the words a report's evidence uses (`iptables -A INPUT -p
    /// tcp --dport 7 --syn -j DROP, target 127.0.0.1:7`), if the lab has one.
    pub fn description(&self) -> Option<&str> {
        self.target.as_ref().map(|(_, d)| d.as_str())
    }

    /// What became of the sysctls asked for with [`LabBuilder::sysctl_if_present`], one
    /// line each.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The peer's `PEER:port`, if the lab has a peer.
    pub fn peer(&self, port: u16) -> Option<SocketAddrV4> {
        self.peer.as_ref().map(|_| SocketAddrV4::new(PEER, port))
    }

    /// Runs `f` on a thread of its own inside the lab and returns its result: sockets it
    /// opens are the lab's. Calls from several threads run at the same time.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        run_in(&self.ns, f)
    }

    /// Runs `f` on a thread of its own inside the peer's namespace (your own server
    /// behind the lab's link or veth): sockets it opens are the peer's, and stay open
    /// after `f` returns them. An [`Error::Invalid`] when the lab has no peer.
    pub fn run_in_peer<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let peer = self.peer.as_ref().ok_or_else(|| Error::Invalid {
            reason: "the lab has no peer: ask for one with .link(…), .refusing_peer() or \
                     .blackhole_peer()"
                .into(),
        })?;
        run_in(peer, f)
    }

    /// The peer's namespace, if the lab has a peer.
    pub fn peer_ns(&self) -> Option<&NetNs> {
        self.peer.as_ref()
    }

    /// The wire between the lab and its peer, if built with [`LabBuilder::link`].
    pub fn wire(&self) -> Option<&Wire> {
        self.wire.as_ref()
    }

    /// Takes the wire out of the lab (to stop it with `Wire::finish` and keep its
    /// report); the lab has none afterwards.
    pub fn take_wire(&mut self) -> Option<Wire> {
        self.wire.take()
    }

    /// What the wire did so far, each way: counts (delivered, lost, duplicated,
    /// reordered, dropped by rules or the limit), its lateness against schedule, the
    /// packet log and the seed. `None` without a wire.
    pub fn wire_report(&self) -> Option<WireReport> {
        self.wire.as_ref().map(Wire::report)
    }

    /// The wire's counts so far, each way. `None` without a wire.
    pub fn wire_counters(&self) -> Option<WireCounters> {
        self.wire.as_ref().map(Wire::counters)
    }

    /// Runs every job at once, each on its own thread inside the lab; their results in
    /// order.
    pub fn run_all<R: Send, F: FnOnce() -> R + Send>(&self, jobs: Vec<F>) -> Result<Vec<R>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|job| {
                    std::thread::Builder::new()
                        .name(format!("{}:run", self.ns.name()))
                        .spawn_scoped(s, move || self.run(job))
                        .map_err(|e| Error::thread_spawn(self.ns.name(), e))
                })
                .collect::<Result<_>>()?;
            handles
                .into_iter()
                .map(|h| {
                    h.join().map_err(|p| Error::Thread {
                        thread: self.ns.name().to_owned(),
                        reason: panic_text(&p),
                    })?
                })
                .collect()
        })
    }

    /// Runs `f` inside the lab while capturing the TCP handshake packets to `port`
    /// (SYN, SYN-ACK, RST, FIN): its result, how long it took, and the SYNs it sent.
    pub fn capture<R: Send>(&self, port: u16, f: impl FnOnce() -> R + Send) -> Result<Observed<R>> {
        let cap = self.ns.capture_tcp(port)?;
        let started = Instant::now();
        let value = self.run(f)?;
        let elapsed = started.elapsed();
        let events = cap.finish()?;
        Ok(Observed {
            syns: capture::syn_times(&events, port),
            value,
            elapsed,
            events,
        })
    }

    /// Runs an async block on a current-thread tokio runtime inside the lab (its
    /// `TcpStream`s are the lab's) and returns its output.
    pub fn block_on<F, Fut, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = R>,
        R: Send,
    {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(f()))
                .map_err(|e| Error::io("create", "tokio runtime", e))
        })?
    }

    /// The kernel's SYN model for the sysctls in force in the lab (tcp_syn_retries,
    /// tcp_syn_linear_timeouts where the kernel has it, tcp_rto_max_ms).
    pub fn model(&self) -> Result<SynModel> {
        timing::model_in(&self.ns)
    }
}

/// Runs `f` on a scoped thread that entered `ns` first.
fn run_in<R: Send>(ns: &NetNs, f: impl FnOnce() -> R + Send) -> Result<R> {
    let thread = format!("{}:run", ns.name());
    std::thread::scope(|s| {
        let job = std::thread::Builder::new()
            .name(thread.clone())
            .spawn_scoped(s, move || {
                nix::sched::setns(ns.fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::sys("setns(CLONE_NEWNET)", e))?;
                Ok(f())
            })
            .map_err(|e| Error::thread_spawn(thread.clone(), e))?;
        job.join().map_err(|p| Error::Thread {
            thread: thread.clone(),
            reason: panic_text(&p),
        })?
    })
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// What code run in a lab returned, how long it took, and the packets it caused.
#[derive(Debug)]
pub struct Observed<R> {
    /// What the code returned.
    pub value: R,
    /// From its start to its end.
    pub elapsed: Duration,
    /// Send times of its SYNs, from the first.
    pub syns: Vec<Duration>,
    /// Every handshake packet captured, in order.
    pub events: Vec<TcpEvent>,
}

/// How a measurement disagrees with the kernel's timing model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What was compared.
    pub what: String,
    /// The expectation with its window.
    pub expected: String,
    /// What was measured.
    pub observed: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the kernel model expects {}, observed {}",
            self.what, self.expected, self.observed
        )
    }
}

impl std::error::Error for Mismatch {}

fn secs_list(times: &[Duration]) -> String {
    let v: Vec<String> = times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect();
    format!("[{}] s", v.join(", "))
}

impl<R> Observed<R> {
    /// Whether the SYNs sent before `up_to` (the client's own deadline, or the kernel's
    /// give-up) follow `model`: as many as the schedule sends by then (a SYN due within
    /// 100 ms of it may or may not go out), each within its timer-slack window.
    pub fn syns_follow(
        &self,
        model: &SynModel,
        up_to: Duration,
    ) -> std::result::Result<(), Mismatch> {
        let schedule = model.schedule();
        let (windows, _) = timing::schedule_windows(&schedule, hz(), Duration::ZERO);
        let (fewest, most) = timing::syns_before(&schedule, up_to);
        let n = self.syns.len();
        if !(fewest..=most).contains(&n) {
            return Err(Mismatch {
                what: format!("SYNs sent in the first {:.3} s", up_to.as_secs_f64()),
                expected: if fewest == most {
                    fewest.to_string()
                } else {
                    format!("{fewest}..={most}")
                },
                observed: format!("{n} at {}", secs_list(&self.syns)),
            });
        }
        match windows
            .iter()
            .zip(&self.syns)
            .position(|(w, t)| !w.contains(*t))
        {
            None => Ok(()),
            Some(i) => Err(Mismatch {
                what: format!("SYN {} send time", i + 1),
                expected: format!(
                    "{:.3} s within {}",
                    schedule.send_times[i].as_secs_f64(),
                    windows[i]
                ),
                observed: secs_list(&self.syns),
            }),
        }
    }

    /// Panics with the mismatch unless [`Observed::syns_follow`] holds.
    pub fn assert_syns_follow(&self, model: &SynModel, up_to: Duration) {
        if let Err(m) = self.syns_follow(model, up_to) {
            panic!("{m}");
        }
    }

    /// Whether the code gave up when the kernel would: every SYN of `model`'s schedule
    /// on time, and the end within the give-up window (late only, by the slack of the
    /// timers the kernel arms).
    pub fn gave_up_when_kernel_would(&self, model: &SynModel) -> std::result::Result<(), Mismatch> {
        let schedule = model.schedule();
        self.syns_follow(model, schedule.give_up)?;
        let window = timing::give_up_window(schedule.give_up, &schedule, hz(), Duration::ZERO);
        if window.contains(self.elapsed) {
            Ok(())
        } else {
            Err(Mismatch {
                what: "give-up time".into(),
                expected: format!("{:.3} s within {window}", schedule.give_up.as_secs_f64()),
                observed: format!("{:.3} s", self.elapsed.as_secs_f64()),
            })
        }
    }

    /// Panics with the mismatch unless [`Observed::gave_up_when_kernel_would`] holds.
    pub fn assert_gave_up_when_kernel_would(&self, model: &SynModel) {
        if let Err(m) = self.gave_up_when_kernel_would(model) {
            panic!("{m}");
        }
    }

    /// Whether the code ended within `window` (a deadline of its own).
    pub fn ended_within(&self, window: Window) -> bool {
        window.contains(self.elapsed)
    }
}

/// `CONFIG_HZ` of the running kernel (for timer-slack windows), read once.
fn hz() -> u32 {
    static HZ: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *HZ.get_or_init(netclaim_harness::kernel::hz_for_slack)
}

/// Runs every `#[netclaim_lab::test]` of this test binary: put `netclaim_lab::main!();`
/// at the end of a test target with `harness = false`.
#[macro_export]
macro_rules! main {
    () => {
        fn main() {
            $crate::run_tests()
        }
    };
}

#[doc(hidden)]
pub mod __private {
    pub use linkme;

    use crate::{Error, Lab, LabBuilder, TestError};

    /// Whatever a test returns, as the runner's result.
    pub trait Outcome {
        /// `Err` with the message when the test failed.
        fn into_result(self) -> Result<(), TestError>;
    }

    impl Outcome for () {
        fn into_result(self) -> Result<(), TestError> {
            Ok(())
        }
    }

    impl<E: std::fmt::Debug + 'static> Outcome for Result<(), E> {
        fn into_result(self) -> Result<(), TestError> {
            self.map_err(|e| match unavailable(&e) {
                Some(reason) => TestError::Skipped(reason),
                None => TestError::Failed(format!("{e:?}")),
            })
        }
    }

    /// The reason, when a test's error is the machine lacking what its lab needs
    /// ([`Error::Unavailable`], as itself or boxed): a lab built in the test's body
    /// skips like one built by the attribute.
    fn unavailable(e: &dyn std::any::Any) -> Option<String> {
        let inner = e.downcast_ref::<Error>().or_else(|| {
            e.downcast_ref::<Box<dyn std::error::Error>>()
                .and_then(|b| b.downcast_ref::<Error>())
                .or_else(|| {
                    e.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
                        .and_then(|b| b.downcast_ref::<Error>())
                })
        });
        match inner {
            Some(e @ Error::Unavailable { .. }) => Some(e.to_string()),
            _ => None,
        }
    }

    pub fn outcome(o: impl Outcome) -> Result<(), TestError> {
        o.into_result()
    }

    /// Builds the lab; what this machine lacks (no /dev/net/tun for a wire) skips the
    /// test with the reason instead of failing it.
    pub fn build(b: LabBuilder) -> Result<Lab, TestError> {
        b.build().map_err(|e| match e {
            Error::Unavailable { .. } => TestError::Skipped(e.to_string()),
            e => TestError::Failed(format!("building the lab: {e}")),
        })
    }

    pub fn block_on<F, Fut>(lab: &Lab, f: F) -> Result<(), TestError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future,
        Fut::Output: Outcome + Send,
    {
        lab.block_on(f)
            .map_err(|e| TestError::Failed(format!("running in the lab: {e}")))?
            .into_result()
    }
}
