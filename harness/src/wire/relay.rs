//! One direction of the wire: a thread that reads packets from one TUN device, decides
//! each one's fate (rules, then the faults, every random draw from the seeded
//! generator), holds it until it is due and writes it into the other device.
//!
//! Each packet draws the same number of random values whatever happens to it, so the
//! fate of the `n`th packet depends only on the seed and `n`: a run with the same seed
//! and the same packets loses, duplicates and delays the same ones.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::packet::{self, Segment};
use super::spec::{Action, Distribution, Faults, Loss, Rule, SplitMix64};
use super::tun::VNET_HDR_LEN;
use crate::capture::TcpFlags;

/// How many packets a direction's log keeps (the first ones; later ones are counted).
pub const LOG_CAP: usize = 20_000;

/// Lateness histogram resolution: 1 µs buckets up to this many µs, then one overflow.
const HIST_US: usize = 100_000;

/// A release this close ahead is waited for by spinning, not sleeping: a sleep's wake-up
/// costs tens of µs, which would all be lateness.
const SPIN: Duration = Duration::from_micros(40);

/// The largest packet a device hands over: a 64 KiB GSO super-packet and its header.
const BUF: usize = 65_536 + VNET_HDR_LEN;

/// What became of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fate", content = "rule")]
pub enum Fate {
    /// Still held (or held when the wire stopped).
    Held,
    /// Delivered (its `sent_us` says when).
    Delivered,
    /// Delivered with a bit flipped.
    Corrupted,
    /// Lost by the loss model.
    Lost,
    /// Dropped at the tail: `limit` packets were held.
    Limit,
    /// Dropped by rule `n` (1-based).
    RuleDrop(usize),
    /// Dropped by rule `n`, both ends reset.
    Reset(usize),
    /// Dropped by rule `n`, an ICMP error returned to its sender.
    Icmp(usize),
}

/// One packet in a direction's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Its number in this direction, from 1.
    pub n: u64,
    /// IP bytes (a super-packet's whole length).
    pub len: u32,
    /// TCP flags, if it is a TCP segment.
    pub tcp_flags: Option<u8>,
    /// TCP payload bytes, if it is a TCP segment.
    pub tcp_payload: Option<u32>,
    /// When the wire read it, µs since the wire started.
    pub arrived_us: u64,
    /// When it was due to leave, µs since the wire started.
    pub due_us: Option<u64>,
    /// When it left, µs since the wire started.
    pub sent_us: Option<u64>,
    /// What became of it.
    #[serde(flatten)]
    pub fate: Fate,
}

/// What a direction did, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Packets read from the sending side (a GSO super-packet counts once).
    pub packets_in: u64,
    /// Their IP bytes.
    pub bytes_in: u64,
    /// Of them, GSO super-packets carried unsegmented.
    pub super_packets: u64,
    /// Packets written to the receiving side (duplicates included).
    pub delivered: u64,
    /// Their IP bytes.
    pub bytes_delivered: u64,
    /// Lost by the loss model.
    pub lost: u64,
    /// Dropped at the tail of a full queue (`limit`).
    pub dropped_limit: u64,
    /// Dropped by a rule (reset and ICMP rules included).
    pub dropped_rule: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Delivered after a packet that arrived later.
    pub reordered: u64,
    /// Delivered with a bit flipped.
    pub corrupted: u64,
    /// Held longer by a rule.
    pub rule_delayed: u64,
    /// Rewritten by a rule (window, MSS).
    pub rewritten: u64,
    /// Packets a rule made up (RSTs, ICMP errors).
    pub injected: u64,
    /// Writes the kernel refused.
    pub write_errors: u64,
    /// Packets held now.
    pub held: u64,
    /// The most packets held at once.
    pub max_held_packets: u64,
    /// The most bytes held at once.
    pub max_held_bytes: u64,
}

/// How late the wire released packets against when they were due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Lateness {
    /// Packets measured.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Worst, µs.
    pub max_us: u64,
}

/// A direction's shared state: counts, lateness and the log, read by the owner of the
/// wire while the relay runs.
#[derive(Debug)]
pub struct Stats {
    /// The counts.
    pub counts: Counts,
    hist: Vec<u32>,
    late_count: u64,
    late_max: Duration,
    /// The first [`LOG_CAP`] packets.
    pub log: Vec<LogEntry>,
    /// Whether SCHED_FIFO was granted to the relay thread.
    pub realtime: bool,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            counts: Counts::default(),
            hist: Vec::new(),
            late_count: 0,
            late_max: Duration::ZERO,
            log: Vec::new(),
            realtime: false,
        }
    }
}

impl Stats {
    fn late(&mut self, by: Duration) {
        if self.hist.is_empty() {
            self.hist = vec![0; HIST_US + 1];
        }
        let us = (by.as_micros() as usize).min(HIST_US);
        self.hist[us] += 1;
        self.late_count += 1;
        self.late_max = self.late_max.max(by);
    }

    /// Median, p99 and max of the lateness so far.
    pub fn lateness(&self) -> Option<Lateness> {
        if self.late_count == 0 {
            return None;
        }
        let at = |q: f64| {
            let rank = ((self.late_count as f64 * q).ceil() as u64).max(1);
            let mut seen = 0u64;
            for (us, n) in self.hist.iter().enumerate() {
                seen += u64::from(*n);
                if seen >= rank {
                    return us as u64;
                }
            }
            HIST_US as u64
        };
        Some(Lateness {
            count: self.late_count,
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: self.late_max.as_micros() as u64,
        })
    }

    fn log_at(&mut self, index: Option<usize>) -> Option<&mut LogEntry> {
        index.and_then(|i| self.log.get_mut(i))
    }
}

/// A held packet, ordered by due time then arrival (a min-heap through reversed `Ord`).
struct Held {
    due: Instant,
    order: u64,
    arrival: u64,
    log: Option<usize>,
    /// Made up by a rule (a RST, an ICMP error), not read from the sender.
    injected: bool,
    /// Goes back into the sending side's device (a rule's answer to the sender).
    to_sender: bool,
    data: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

/// The random values one packet draws, all of them, whatever becomes of it.
struct Draws {
    loss: f64,
    state: f64,
    corrupt: f64,
    corrupt_at: f64,
    duplicate: f64,
    reorder: f64,
    jitter: (f64, f64),
}

impl Draws {
    fn from(rng: &mut SplitMix64) -> Self {
        Self {
            loss: rng.unit(),
            state: rng.unit(),
            corrupt: rng.unit(),
            corrupt_at: rng.unit(),
            duplicate: rng.unit(),
            reorder: rng.unit(),
            jitter: (rng.unit(), rng.unit()),
        }
    }
}

/// Everything one direction's thread owns.
pub struct Relay {
    /// The device packets are read from (the sender's side; RSTs and ICMP errors to the
    /// sender are written back into it).
    pub rx: Arc<OwnedFd>,
    /// The device packets are delivered into.
    pub tx: Arc<OwnedFd>,
    /// Readable when the wire stops.
    pub stop: Arc<OwnedFd>,
    /// Its faults.
    pub faults: Faults,
    /// The rules that look at this direction, with their 1-based numbers.
    pub rules: Vec<(usize, Rule)>,
    /// Whether packets pass untouched (GSO super-packets included).
    pub pass_through: bool,
    /// The other direction's fixed delay. A rule's answer to the sender (a RST, an ICMP
    /// error) reaches it after this direction's fixed delay and this one, as if the far
    /// end had answered over the wire.
    pub back_delay: Duration,
    /// This direction's generator.
    pub rng: SplitMix64,
    /// The shared counts.
    pub stats: Arc<Mutex<Stats>>,
    /// The wire's start, for log times.
    pub epoch: Instant,
}

/// Per-flow initial sequence numbers, for rules on stream offsets.
type Flows = HashMap<(Ipv4Addr, u16, Ipv4Addr, u16), u32>;

struct State {
    heap: BinaryHeap<Held>,
    held_bytes: usize,
    order: u64,
    arrivals: u64,
    loss_stage: u64,
    bad_state: bool,
    last_due: Option<Instant>,
    link_free: Option<Instant>,
    max_released: Option<u64>,
    rule_hits: Vec<u64>,
    flows: Flows,
}

impl State {
    /// Holds a packet a rule made up until `due` (it is counted as held, and is written
    /// into the sender's device when `to_sender`).
    fn inject(&mut self, due: Instant, to_sender: bool, ip: Vec<u8>) {
        self.order += 1;
        let data = with_header(ip);
        self.held_bytes += data.len();
        self.heap.push(Held {
            due,
            order: self.order,
            arrival: 0,
            log: None,
            injected: true,
            to_sender,
            data,
        });
    }
}

fn since(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_micros() as u64
}

fn write_fd(fd: &OwnedFd, data: &[u8]) -> bool {
    // SAFETY: writes `data.len()` bytes from a valid slice to an open descriptor.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    n == data.len() as isize
}

/// Prepends an all-zero virtio-net header (no GSO, checksums complete).
fn with_header(ip: Vec<u8>) -> Vec<u8> {
    let mut v = vec![0u8; VNET_HDR_LEN];
    v.extend(ip);
    v
}

impl Relay {
    /// Runs until the stop descriptor becomes readable.
    pub fn run(mut self) {
        let realtime = tune_thread();
        self.lock().realtime = realtime;
        let mut buf = vec![0u8; BUF];
        let mut st = State {
            heap: BinaryHeap::new(),
            held_bytes: 0,
            order: 0,
            arrivals: 0,
            loss_stage: 0,
            bad_state: false,
            last_due: None,
            link_free: None,
            max_released: None,
            rule_hits: vec![0; self.rules.len()],
            flows: HashMap::new(),
        };
        loop {
            let now = self.release_due(&mut st);
            let wait = st.heap.peek().map(|h| h.due.saturating_duration_since(now));
            let readable = match wait {
                Some(w) if w <= SPIN => true, // spin: try a read and release again
                _ => match self.poll(wait.map(|w| w - SPIN)) {
                    Polled::Stop => break,
                    Polled::Readable => true,
                    Polled::Timeout => false,
                },
            };
            if readable {
                self.read_batch(&mut buf, &mut st);
            }
        }
        let mut stats = self.lock();
        stats.counts.held = st.heap.len() as u64;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn poll(&self, timeout: Option<Duration>) -> Polled {
        let mut fds = [
            libc::pollfd {
                fd: self.rx.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: two valid pollfds and a valid (or null) timespec, for this call only.
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
        if n <= 0 {
            return Polled::Timeout;
        }
        if fds[1].revents != 0 {
            return Polled::Stop;
        }
        if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Polled::Stop;
        }
        Polled::Readable
    }

    /// Reads what is there (up to a batch, so releases are not held up).
    fn read_batch(&mut self, buf: &mut [u8], st: &mut State) {
        for _ in 0..64 {
            // SAFETY: reads into a valid, exclusively borrowed buffer of its length.
            let n = unsafe { libc::read(self.rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= VNET_HDR_LEN as isize {
                return;
            }
            let now = Instant::now();
            let n = n as usize;
            if self.pass_through {
                self.pass(&buf[..n], now, st);
            } else {
                self.arrive(buf[..n].to_vec(), now, st);
            }
        }
    }

    fn log(&self, stats: &mut Stats, entry: LogEntry) -> Option<usize> {
        (stats.log.len() < LOG_CAP).then(|| {
            stats.log.push(entry);
            stats.log.len() - 1
        })
    }

    fn pass(&mut self, data: &[u8], now: Instant, st: &mut State) {
        st.arrivals += 1;
        let len = (data.len() - VNET_HDR_LEN) as u64;
        let seg = packet::segment(&data[VNET_HDR_LEN..]);
        // Locked before the write, as in `release_due`.
        let mut stats = self.lock();
        let ok = write_fd(&self.tx, data);
        let sent = Instant::now();
        let c = &mut stats.counts;
        c.packets_in += 1;
        c.bytes_in += len;
        // virtio_net_hdr.gso_type (byte 1): 0 is VIRTIO_NET_HDR_GSO_NONE.
        if data[1] != 0 {
            c.super_packets += 1;
        }
        if ok {
            c.delivered += 1;
            c.bytes_delivered += len;
        } else {
            c.write_errors += 1;
        }
        let entry = LogEntry {
            n: st.arrivals,
            len: len as u32,
            tcp_flags: seg.map(|s| s.flags),
            tcp_payload: seg.map(|s| s.payload),
            arrived_us: since(self.epoch, now),
            due_us: Some(since(self.epoch, now)),
            sent_us: Some(since(self.epoch, sent)),
            fate: Fate::Delivered,
        };
        self.log(&mut stats, entry);
    }

    /// Whether `rule` matches `seg` apart from its `nth`.
    fn matches(rule: &Rule, seg: &Segment, flows: &Flows) -> bool {
        if seg.flags & rule.flags_set != rule.flags_set || seg.flags & rule.flags_clear != 0 {
            return false;
        }
        if let Some(offset) = rule.after_bytes {
            let Some(isn) = flows.get(&(seg.src, seg.sport, seg.dst, seg.dport)) else {
                return false;
            };
            let start = u64::from(seg.seq.wrapping_sub(isn.wrapping_add(1)));
            if seg.payload == 0 || start + u64::from(seg.payload) <= offset {
                return false;
            }
        }
        true
    }

    fn arrive(&mut self, mut data: Vec<u8>, now: Instant, st: &mut State) {
        st.arrivals += 1;
        let draws = Draws::from(&mut self.rng);
        let len = (data.len() - VNET_HDR_LEN) as u32;
        let seg = packet::segment(&data[VNET_HDR_LEN..]);
        if let Some(s) = &seg {
            if s.flags & TcpFlags::SYN != 0 {
                st.flows.insert((s.src, s.sport, s.dst, s.dport), s.seq);
            }
        }
        let mut stats_guard = self.lock();
        let stats = &mut *stats_guard;
        stats.counts.packets_in += 1;
        stats.counts.bytes_in += u64::from(len);
        let log = self.log(
            stats,
            LogEntry {
                n: st.arrivals,
                len,
                tcp_flags: seg.map(|s| s.flags),
                tcp_payload: seg.map(|s| s.payload),
                arrived_us: since(self.epoch, now),
                due_us: None,
                sent_us: None,
                fate: Fate::Held,
            },
        );
        let mut extra = Duration::ZERO;
        if let Some(seg) = seg {
            for (i, (number, rule)) in self.rules.iter().enumerate() {
                if !Self::matches(rule, &seg, &st.flows) {
                    continue;
                }
                st.rule_hits[i] += 1;
                if rule.nth.is_some_and(|n| n != st.rule_hits[i]) {
                    continue;
                }
                let ip = &mut data[VNET_HDR_LEN..];
                let end = match rule.action {
                    Action::Drop => Some(Fate::RuleDrop(*number)),
                    Action::Delay(d) => {
                        extra += d;
                        stats.counts.rule_delayed += 1;
                        None
                    }
                    Action::Window(w) => {
                        packet::set_window(ip, &seg, w);
                        stats.counts.rewritten += 1;
                        None
                    }
                    Action::Mss(m) => {
                        if packet::set_mss(ip, &seg, m) {
                            stats.counts.rewritten += 1;
                        }
                        None
                    }
                    Action::Reset => {
                        let (to_sender, to_receiver) = packet::resets(&seg);
                        let ahead = now + self.faults.delay;
                        st.inject(ahead, false, to_receiver);
                        st.inject(ahead + self.back_delay, true, to_sender);
                        Some(Fate::Reset(*number))
                    }
                    Action::IcmpUnreachable(code) => {
                        if let Some(p) = packet::icmp_unreachable(ip, code) {
                            let round_trip = self.faults.delay + self.back_delay;
                            st.inject(now + round_trip, true, p);
                        }
                        Some(Fate::Icmp(*number))
                    }
                };
                if let Some(fate) = end {
                    stats.counts.dropped_rule += 1;
                    if let Some(e) = stats.log_at(log) {
                        e.fate = fate;
                    }
                    return;
                }
            }
        }
        let f = &self.faults;
        // Loss.
        st.loss_stage += 1;
        let lost = match f.loss {
            None => false,
            Some(Loss::Random(p)) => draws.loss < p,
            Some(Loss::EveryNth(n)) => st.loss_stage % n == 0,
            Some(Loss::GilbertElliott {
                p,
                r,
                loss_bad,
                loss_good,
            }) => {
                st.bad_state = if st.bad_state {
                    draws.state >= r
                } else {
                    draws.state < p
                };
                draws.loss < if st.bad_state { loss_bad } else { loss_good }
            }
        };
        if lost {
            stats.counts.lost += 1;
            if let Some(e) = stats.log_at(log) {
                e.fate = Fate::Lost;
            }
            return;
        }
        let mut fate = Fate::Delivered;
        if draws.corrupt < f.corrupt && len > 0 {
            let bit =
                ((draws.corrupt_at * f64::from(len) * 8.0) as usize).min(len as usize * 8 - 1);
            data[VNET_HDR_LEN + bit / 8] ^= 1 << (bit % 8);
            stats.counts.corrupted += 1;
            fate = Fate::Corrupted;
        }
        if st.heap.len() >= f.limit {
            stats.counts.dropped_limit += 1;
            if let Some(e) = stats.log_at(log) {
                e.fate = Fate::Limit;
            }
            return;
        }
        // When it is due: the delay, its jitter, a rule's extra; then the rate.
        let mut delay = f.delay;
        if let Some(j) = f.jitter {
            let spread = j.spread.as_secs_f64();
            let offset = match j.distribution {
                Distribution::Uniform => spread * (2.0 * draws.jitter.0 - 1.0),
                Distribution::Normal => {
                    // Box-Muller, cut at 4 standard deviations.
                    let u1 = draws.jitter.0.max(f64::MIN_POSITIVE);
                    let z = (-2.0 * u1.ln()).sqrt()
                        * (2.0 * std::f64::consts::PI * draws.jitter.1).cos();
                    spread * z.clamp(-4.0, 4.0)
                }
            };
            delay = Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0));
        }
        let keeps_order = f.jitter.is_none_or(|j| !j.reorders);
        let mut due = now + delay + extra;
        let overtakes = f.reorder.is_some_and(|r| draws.reorder < r.probability);
        if overtakes {
            due = now;
        } else {
            if keeps_order {
                if let Some(last) = st.last_due {
                    due = due.max(last);
                }
            }
            st.last_due = Some(due);
        }
        if let Some(bps) = f.rate_bps {
            let tx = Duration::from_secs_f64(f64::from(len) * 8.0 / bps as f64);
            let start = st.link_free.map_or(due, |free| free.max(due));
            due = start + tx;
            st.link_free = Some(due);
        }
        if let Some(e) = stats.log_at(log) {
            e.due_us = Some(since(self.epoch, due));
            e.fate = fate;
        }
        let copies = if draws.duplicate < f.duplicate && st.heap.len() + 1 < f.limit {
            stats.counts.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            st.order += 1;
            st.held_bytes += data.len();
            let data = if copy + 1 == copies {
                std::mem::take(&mut data)
            } else {
                data.clone()
            };
            st.heap.push(Held {
                due,
                order: st.order,
                arrival: st.arrivals,
                log: log.filter(|_| copy == 0),
                injected: false,
                to_sender: false,
                data,
            });
        }
        let c = &mut stats.counts;
        c.held = st.heap.len() as u64;
        c.max_held_packets = c.max_held_packets.max(c.held);
        c.max_held_bytes = c.max_held_bytes.max(st.held_bytes as u64);
    }

    /// Writes every packet that is due; returns the time it last looked at the clock.
    fn release_due(&mut self, st: &mut State) -> Instant {
        let mut now = Instant::now();
        while st.heap.peek().is_some_and(|h| h.due <= now) {
            let Some(held) = st.heap.pop() else { break };
            st.held_bytes -= held.data.len();
            // Counted under the lock taken before the write: the write delivers at once
            // (the receiver may act on it), and whoever reads the counts after seeing
            // that must see it counted.
            let mut stats = self.lock();
            let fd = if held.to_sender { &self.rx } else { &self.tx };
            let ok = write_fd(fd, &held.data);
            let sent = Instant::now();
            stats.late(sent.saturating_duration_since(held.due));
            let c = &mut stats.counts;
            c.held = st.heap.len() as u64;
            if !ok {
                c.write_errors += 1;
            } else if held.injected {
                c.injected += 1;
            } else {
                c.delivered += 1;
                c.bytes_delivered += (held.data.len() - VNET_HDR_LEN) as u64;
            }
            if held.injected {
                now = sent;
                continue;
            }
            match st.max_released {
                Some(m) if held.arrival < m => c.reordered += 1,
                _ => st.max_released = Some(held.arrival),
            }
            let epoch = self.epoch;
            if let Some(e) = stats.log_at(held.log) {
                e.sent_us = Some(since(epoch, sent));
            }
            now = sent;
        }
        now
    }
}

enum Polled {
    Readable,
    Timeout,
    Stop,
}

/// Asks for 1 ns timer slack (the default 50 µs would all be lateness) and, where
/// allowed, SCHED_FIFO priority 1; whether the latter was granted.
fn tune_thread() -> bool {
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes a value and changes only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: a valid sched_param for the calling thread (0); EPERM without
    // CAP_SYS_NICE (rootless), which only costs precision.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}
