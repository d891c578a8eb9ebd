//! A wire between two lab namespaces that carries every packet through netclaim, with a
//! fault program per direction (delay, jitter, loss, duplication, reordering,
//! corruption, a rate with a bounded queue) and packet rules (a scripted peer: drop the
//! first SYN-ACK, advertise a zero window, reset after N bytes).
//!
//! The mechanism is Mahimahi's: a TUN device in each namespace (`ncw0` on the client's
//! side, `ncw1` on the peer's), each opened on a thread inside its namespace, and one
//! relay thread per direction that reads a packet from one device and writes it into the
//! other when it is due. The kernel's TCP runs unchanged at both ends. Why not NFQUEUE
//! verdicts: a verdict can only accept, drop or hold a packet in place, while a relay can
//! also duplicate, reorder, rewrite and inject (RSTs, ICMP errors) freely and decides
//! segmentation itself; and neither needs sch_netem, which these kernels lack and a user
//! namespace cannot load.
//!
//! Cost: a direction with no fault and no rule passes GSO super-packets through
//! unsegmented (the devices take TSO offload and a virtio-net header), so bulk TCP keeps
//! most of a veth's throughput; a faulty direction turns offload off on its sending
//! device, so the kernel segments and checksums every packet and the relay handles each
//! one. Every random draw comes from a SplitMix64 generator seeded from the report's
//! `seed` (one stream per direction), and each packet draws the same number of values,
//! so the same seed and the same packets give the same fates.
//!
//! Devices and threads end with the [`Wire`] (drop or [`Wire::finish`]); a device that
//! is not persistent is deleted by the kernel when its descriptor closes, so a SIGKILL
//! leaves nothing either.

mod packet;
mod relay;
mod spec;
pub mod tun;

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use packet::{
    icmp_unreachable, resets, segment, set_mss, set_window, tcp_checksum_ok, Segment,
};
pub use relay::{Counts, Fate, Lateness, LogEntry, LOG_CAP};
pub use spec::{
    Action, Direction, Distribution, Faults, Jitter, Loss, Reorder, Rule, SplitMix64, WireSpec,
    DEFAULT_LIMIT,
};

use crate::error::{Error, Result};
use crate::netns::NetNs;
use relay::{Relay, Stats};

/// The device on the client's side (`a` of [`Wire::between`]).
pub const DEVICE_A: &str = "ncw0";
/// The device on the peer's side.
pub const DEVICE_B: &str = "ncw1";

/// The client side's address by default (RFC 5737 TEST-NET-1, as the veth's).
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The peer side's address by default.
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// The devices' transmit queue (the kernel's ring between the sender and the relay), as
/// `netdev_max_backlog`'s default: a burst beyond it is dropped before the wire sees it
/// (reported as `dropped_before_wire`).
pub const TXQUEUELEN: u32 = 1000;

/// How long a new device may take to come up.
const UP_TIMEOUT: Duration = Duration::from_secs(5);

/// What one direction did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionReport {
    /// Its fault program.
    pub faults: Faults,
    /// Whether it carried packets untouched, GSO super-packets unsegmented.
    pub pass_through: bool,
    /// Whether its relay thread ran with SCHED_FIFO (root only).
    pub realtime: bool,
    /// Packets the sending side's kernel dropped before the wire could read them (the
    /// TUN device's queue of [`TXQUEUELEN`] was full: a burst faster than the relay);
    /// `None` when it could not be read. Not the wire's doing, and not in `counts`.
    pub dropped_before_wire: Option<u64>,
    /// The counts.
    pub counts: Counts,
    /// How late held packets left against when they were due (`None`: none were held).
    pub lateness: Option<Lateness>,
    /// The first [`LOG_CAP`] packets and their fates.
    pub log: Vec<LogEntry>,
}

/// What the wire did, each way, and the seed that makes it reproducible.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireReport {
    /// The seed of every random choice.
    pub seed: u64,
    /// The rules in force.
    pub rules: Vec<Rule>,
    /// Toward the peer.
    pub to_peer: DirectionReport,
    /// From the peer.
    pub from_peer: DirectionReport,
}

impl WireReport {
    /// The report of `direction`.
    pub fn direction(&self, direction: Direction) -> &DirectionReport {
        match direction {
            Direction::ToPeer => &self.to_peer,
            Direction::FromPeer => &self.from_peer,
        }
    }
}

/// The counts of both directions, read while the wire runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WireCounters {
    /// Toward the peer.
    pub to_peer: Counts,
    /// From the peer.
    pub from_peer: Counts,
}

/// A running wire between two namespaces; dropping it (or [`Wire::finish`]) stops the
/// relays and deletes the devices.
#[derive(Debug)]
pub struct Wire {
    spec: WireSpec,
    seed: u64,
    stop: Arc<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
    stats: [Arc<Mutex<Stats>>; 2],
    /// The namespaces of the sending side of each direction (`a`, then `b`), for the
    /// devices' drop counters.
    ns: [OwnedFd; 2],
}

/// `tx_dropped` of `device` in the namespace `ns`, read on a thread that enters it.
fn drops_in(ns: &OwnedFd, device: &str) -> Option<u64> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            crate::link::tx_dropped_current(device).ok()
        })
        .join()
        .ok()
        .flatten()
    })
}

/// A seed for a spec that names none: the clock's nanoseconds mixed with the pid.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    SplitMix64::new(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
}

/// Creates device `name` in the calling thread's namespace (run this on a thread inside
/// it), without IPv6 (no router solicitations on the wire), with `addr/prefix`, up.
fn device(name: &str, addr: Ipv4Addr, prefix: u8, gso: bool) -> Result<OwnedFd> {
    let fd = tun::open(name, gso)?;
    let sysctl = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::write(&sysctl, "1") {
        Ok(()) => {}
        // A kernel without IPv6 has no such file and sends no solicitations either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("write", sysctl, e)),
    }
    crate::link::set_txqueuelen_current(name, TXQUEUELEN)?;
    crate::link::address_up_current(name, addr, prefix)?;
    crate::link::wait_running(name, UP_TIMEOUT)?;
    Ok(fd)
}

impl Wire {
    /// A wire between `a` (the client's side, [`ADDR_A`] on [`DEVICE_A`]) and `b` (the
    /// peer's, [`ADDR_B`] on [`DEVICE_B`]) in 192.0.2.0/24, doing what `spec` says.
    pub fn between(a: &NetNs, b: &NetNs, spec: WireSpec) -> Result<Self> {
        Self::between_addrs(a, ADDR_A, b, ADDR_B, 24, spec)
    }

    /// [`Wire::between`] with addresses of your choice (RFC 5737 lab addresses).
    pub fn between_addrs(
        a: &NetNs,
        addr_a: Ipv4Addr,
        b: &NetNs,
        addr_b: Ipv4Addr,
        prefix: u8,
        spec: WireSpec,
    ) -> Result<Self> {
        spec.validate()?;
        let seed = spec.seed.unwrap_or_else(fresh_seed);
        let to_peer_gso = spec.passes_through(Direction::ToPeer);
        let from_peer_gso = spec.passes_through(Direction::FromPeer);
        // Each device is made on its namespace's thread: it belongs to the namespace of
        // the thread that opened /dev/net/tun.
        let fd_a = Arc::new(a.run(|| device(DEVICE_A, addr_a, prefix, to_peer_gso))??);
        let fd_b = Arc::new(b.run(|| device(DEVICE_B, addr_b, prefix, from_peer_gso))??);
        let stop = Arc::new(tun::eventfd()?);
        let stats = [
            Arc::new(Mutex::new(Stats::default())),
            Arc::new(Mutex::new(Stats::default())),
        ];
        let dup = |ns: &NetNs| {
            ns.fd()
                .try_clone()
                .map_err(|e| Error::io("dup", "netns fd", e))
        };
        let mut wire = Self {
            spec: spec.clone(),
            seed,
            stop: Arc::clone(&stop),
            threads: Vec::new(),
            stats: stats.clone(),
            ns: [dup(a)?, dup(b)?],
        };
        let epoch = Instant::now();
        // One generator per direction, each seeded from the wire's: one direction's
        // traffic never shifts the other's fates.
        let mut root = SplitMix64::new(seed);
        let directions = [
            (Direction::ToPeer, &fd_a, &fd_b, root.next_u64()),
            (Direction::FromPeer, &fd_b, &fd_a, root.next_u64()),
        ];
        for (i, (direction, rx, tx, stream)) in directions.into_iter().enumerate() {
            let relay = Relay {
                rx: Arc::clone(rx),
                tx: Arc::clone(tx),
                stop: Arc::clone(&stop),
                faults: spec.faults(direction).clone(),
                rules: spec
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.directions.contains(&direction))
                    .map(|(n, r)| (n + 1, r.clone()))
                    .collect(),
                pass_through: spec.passes_through(direction),
                back_delay: spec.faults(direction.reverse()).delay,
                rng: SplitMix64::new(stream),
                stats: Arc::clone(&stats[i]),
                epoch,
            };
            let name = format!("{}:wire-{}", a.name(), direction.name());
            // On error, dropping `wire` stops the relay already started.
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || relay.run())
                .map_err(|e| Error::thread_spawn(name, e))?;
            wire.threads.push(thread);
        }
        Ok(wire)
    }

    /// The seed of every random choice (the spec's, or the one drawn for it).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// What the wire was asked to do.
    pub fn spec(&self) -> &WireSpec {
        &self.spec
    }

    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Stats> {
        self.stats[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counts so far, each way.
    pub fn counters(&self) -> WireCounters {
        WireCounters {
            to_peer: self.lock(0).counts,
            from_peer: self.lock(1).counts,
        }
    }

    /// Everything so far, while the wire keeps running.
    pub fn report(&self) -> WireReport {
        let direction = |i: usize, d: Direction| {
            let device = [DEVICE_A, DEVICE_B][i];
            let dropped_before_wire = if self.threads.is_empty() {
                None
            } else {
                drops_in(&self.ns[i], device)
            };
            let s = self.lock(i);
            DirectionReport {
                faults: self.spec.faults(d).clone(),
                pass_through: self.spec.passes_through(d),
                realtime: s.realtime,
                dropped_before_wire,
                counts: s.counts,
                lateness: s.lateness(),
                log: s.log.clone(),
            }
        };
        WireReport {
            seed: self.seed,
            rules: self.spec.rules.clone(),
            to_peer: direction(0, Direction::ToPeer),
            from_peer: direction(1, Direction::FromPeer),
        }
    }

    /// Stops the relays (packets still held are counted in `held`, never delivered),
    /// deletes the devices and returns the report.
    pub fn finish(mut self) -> WireReport {
        // The devices' drop counters are read while they exist.
        let before = [
            drops_in(&self.ns[0], DEVICE_A),
            drops_in(&self.ns[1], DEVICE_B),
        ];
        self.stop_relays();
        let mut report = self.report();
        report.to_peer.dropped_before_wire = before[0];
        report.from_peer.dropped_before_wire = before[1];
        report
    }

    fn stop_relays(&mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to an open eventfd.
        unsafe {
            libc::write(
                self.stop.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop_relays();
    }
}
