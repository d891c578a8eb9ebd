//! Lab lifecycle benchmark: `cargo bench -p netclaim-harness --bench lab` (as root).
//!
//! Five rounds, each measuring, in one run so machine noise hits every flow alike:
//!
//! * a bare `unshare(CLONE_NEWNET)` on a fresh thread and joining it (the kernel's own
//!   cost of a namespace, and the baseline of the ratios);
//! * a netclaim lab: create (its thread, `lo` up) with three sysctls
//!   ([`NetNs::with_sysctls`]), destroy;
//! * the shell flow `ip netns add` / `ip netns exec … ip link set lo up` /
//!   `ip netns exec … sysctl -w` once per sysctl / `ip netns del`, and for reference the
//!   same with the three sysctls in one `sysctl -w`;
//! * for reference: the shell flow again, back to back in a block of its own; the lab
//!   named under `/run/netns` (`NETCLAIM_NAME_LABS=1`: bind mount, unmount); the lab with
//!   one iptables SYN DROP rule.
//!
//! Bare unshares and labs run in pairs, back to back, in alternating order (ABBA), with
//! the shell flows spread among them, so that the medians behind each target's ratio come
//! from the same stretch of time. Each other block starts after a pause (the kernel tears
//! namespaces down asynchronously; one block's leftovers should not bill the next). Each
//! round prints its medians and ratios; the verdict uses the worst round, so one lucky
//! round cannot meet a target.
//!
//! Then 500 labs alive at once: creation time, memory per lab (the system's MemAvailable
//! and Slab deltas: namespaces live in kernel memory, not in our RSS), and a check that
//! destroying them leaves nothing behind.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use netclaim_harness::NetNs;

const SYSCTLS: [(&str, &str); 3] = [
    ("net.ipv4.tcp_syn_retries", "1"),
    ("net.core.somaxconn", "4"),
    ("net.ipv4.ip_local_port_range", "40000 40003"),
];

const ROUNDS: usize = 5;
const PAIRS: usize = 200;
const NAMED: usize = 60;
const RULED: usize = 40;
const SHELL: usize = 20;
const SHELL_ONE_EXEC: usize = 10;
const ALIVE: usize = 500;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// A median as µs; "n/a" for what this mode does not measure (zero).
fn us(d: Duration) -> String {
    if d.is_zero() {
        "n/a".into()
    } else {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    }
}

/// Without root, labs live in a user namespace: `ip netns` and named labs (both the
/// host's /run/netns) are root's and not measured.
fn rootless() -> bool {
    netclaim_harness::userns::mode().rootless()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn bare_unshare() -> Duration {
    let t = Instant::now();
    std::thread::spawn(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET))
        .join()
        .expect("thread")
        .expect("unshare(CLONE_NEWNET)");
    t.elapsed()
}

#[derive(Clone, Copy)]
enum Lab {
    Plain,
    Named,
    WithRule,
}

fn lab(kind: Lab) -> Duration {
    netclaim_harness::netns::set_naming(matches!(kind, Lab::Named));
    let t = Instant::now();
    let ns = NetNs::with_sysctls(&SYSCTLS).expect("lab");
    if let Lab::WithRule = kind {
        ns.drop_syn_to_port(7).expect("iptables");
    }
    drop(ns);
    let took = t.elapsed();
    netclaim_harness::netns::set_naming(false);
    took
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An `ip netns` name that is deleted even if a step of the flow panics.
struct ShellNs(String);

impl Drop for ShellNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The `ip netns` flow; `one_exec` sets the three sysctls in one `sysctl -w`.
fn ip_netns_flow(i: usize, one_exec: bool) -> Duration {
    // netclaim-<pid>-<n> with n past the labs' counter: `netclaim clean` would sweep it.
    let name = format!("netclaim-{}-{}", std::process::id(), 1_000_000 + i);
    let exec = |cmd: &[&str]| {
        let mut args = vec!["ip", "netns", "exec", &name];
        args.extend_from_slice(cmd);
        sh(&args);
    };
    let assignments: Vec<String> = SYSCTLS.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let t = Instant::now();
    sh(&["ip", "netns", "add", &name]);
    let guard = ShellNs(name.clone());
    exec(&["ip", "link", "set", "lo", "up"]);
    if one_exec {
        let mut cmd = vec!["sysctl", "-qw"];
        cmd.extend(assignments.iter().map(String::as_str));
        exec(&cmd);
    } else {
        for a in &assignments {
            exec(&["sysctl", "-qw", a]);
        }
    }
    std::mem::forget(guard);
    sh(&["ip", "netns", "del", &name]);
    t.elapsed()
}

fn meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Runs `a` and `b` `n` times each in alternating order (ABBA: neither always runs right
/// after the other), calling `between(i)` after the i-th pair, and returns their medians:
/// the two are measured under the same machine conditions, so their ratio holds even
/// when the machine's speed drifts.
fn paired(
    n: usize,
    a: &dyn Fn() -> Duration,
    b: &dyn Fn() -> Duration,
    between: &mut dyn FnMut(usize),
) -> Pair {
    settle();
    let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        if i % 2 == 0 {
            xs.push(a());
            ys.push(b());
        } else {
            ys.push(b());
            xs.push(a());
        }
        between(i);
    }
    Pair {
        a: median(xs),
        b: median(ys),
    }
}

/// Two medians measured side by side.
#[derive(Clone, Copy)]
struct Pair {
    a: Duration,
    b: Duration,
}

impl Pair {
    /// How many times `b` takes as long as `a`.
    fn ratio(self) -> f64 {
        ratio(self.b, self.a)
    }
}

/// One round's medians.
struct Round {
    /// bare unshare, lab.
    lab: Pair,
    /// bare unshare, named lab.
    named: Pair,
    /// `ip netns` flow, one `sysctl -w` per sysctl.
    shell: Duration,
    /// `ip netns` flow with one `sysctl -w`.
    shell_one_exec: Duration,
    /// `ip netns` flows back to back in a block of their own.
    shell_alone: Duration,
    /// Lab with one iptables rule.
    ruled: Duration,
}

impl Round {
    fn shell_over_lab(&self) -> f64 {
        ratio(self.shell, self.lab.b)
    }
}

/// Lets the kernel finish tearing down the namespaces of the previous block (that runs
/// asynchronously, in `cleanup_net`), so one block's leftovers do not bill the next.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// One round. The bare/lab pairs run back to back, with an `ip netns` flow after every
/// tenth pair (and a one-exec flow after every twentieth), so the flows' median and the
/// lab's come from the same stretch of time.
fn round(r: usize, scale: usize) -> Round {
    let n = |count: usize| (count / scale).max(2);
    let (pairs, shell_n, one_n) = (n(PAIRS), n(SHELL), n(SHELL_ONE_EXEC));
    let (mut shell, mut one_exec) = (Vec::new(), Vec::new());
    let lab_pair = paired(pairs, &bare_unshare, &|| lab(Lab::Plain), &mut |i| {
        let id = r * 1000 + i;
        if rootless() {
            return;
        }
        if (i + 1) % (pairs / shell_n) == 0 {
            shell.push(ip_netns_flow(id, false));
        }
        if (i + 1) % (pairs / one_n) == 0 {
            one_exec.push(ip_netns_flow(id + 500, true));
        }
    });
    Round {
        lab: lab_pair,
        shell: median(shell),
        shell_one_exec: median(one_exec),
        shell_alone: if rootless() {
            Duration::ZERO
        } else {
            settle();
            median(
                (0..shell_n)
                    .map(|i| ip_netns_flow(r * 1000 + 900 + i, false))
                    .collect(),
            )
        },
        named: if rootless() {
            Pair {
                a: Duration::ZERO,
                b: Duration::ZERO,
            }
        } else {
            paired(n(NAMED), &bare_unshare, &|| lab(Lab::Named), &mut |_| ())
        },
        ruled: {
            settle();
            median((0..n(RULED)).map(|_| lab(Lab::WithRule)).collect())
        },
    }
}

/// Threads of this process named like a lab's (`netclaim-<pid>-<n>`, cut to 15 bytes).
fn lab_threads() -> usize {
    let prefix: String = format!("netclaim-{}-", std::process::id())
        .chars()
        .take(15)
        .collect();
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with(&prefix))
                })
                .count()
        })
        .unwrap_or(0)
}

/// File descriptors of this process that refer to a network namespace.
fn netns_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter(|f| {
                    std::fs::read_link(f.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("net:["))
                })
                .count()
        })
        .unwrap_or(0)
}

fn lifecycle() {
    // Warm-up: page cache, the iptables modules, the `ip` binary.
    round(ROUNDS, 10);
    println!(
        "lab lifecycle (create, lo up, 3 sysctls, destroy): {ROUNDS} rounds; medians of \
         {PAIRS} bare unshare/lab pairs back to back with {SHELL} ip netns flows and \
         {SHELL_ONE_EXEC} one-exec flows among them, then {NAMED} bare/named lab pairs and \
         {RULED} labs with an iptables rule"
    );
    println!(
        "  {:>5}  {:>8} {:>8} {:>8}  {:>9} {:>8}  {:>9} {:>8}  {:>9} {:>8}  {:>8} {:>8} {:>8}  {:>9}",
        "round",
        "bare",
        "lab",
        "lab/bare",
        "ip netns",
        "/lab",
        "1 exec",
        "/lab",
        "alone",
        "/lab",
        "bare",
        "named",
        "/bare",
        "+iptables"
    );
    let mut rounds = Vec::with_capacity(ROUNDS);
    for r in 0..ROUNDS {
        let x = round(r, 1);
        println!(
            "  {:>5}  {:>8} {:>8} {:>8.2}  {:>9} {:>8.1}  {:>9} {:>8.1}  {:>9} {:>8.1}  {:>8} {:>8} {:>8.2}  {:>9}",
            r + 1,
            us(x.lab.a),
            us(x.lab.b),
            x.lab.ratio(),
            us(x.shell),
            x.shell_over_lab(),
            us(x.shell_one_exec),
            ratio(x.shell_one_exec, x.lab.b),
            us(x.shell_alone),
            ratio(x.shell_alone, x.lab.b),
            us(x.named.a),
            us(x.named.b),
            x.named.ratio(),
            us(x.ruled),
        );
        rounds.push(x);
    }
    let worst_lab = rounds.iter().map(|r| r.lab.ratio()).fold(0.0, f64::max);
    let worst_shell = rounds
        .iter()
        .map(Round::shell_over_lab)
        .fold(f64::MAX, f64::min);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if rootless() {
        println!(
            "  labs in a {}: worst round: lab = {worst_lab:.2} x bare unshare (target <= 1.5: \
             {}); the ip netns flows and named labs need root and are not measured",
            netclaim_harness::userns::mode().describe(),
            verdict(worst_lab <= 1.5)
        );
    } else {
        println!(
            "  worst round: lab = {worst_lab:.2} x bare unshare (target <= 1.5: {}); \
             ip netns flow = {worst_shell:.1} x the lab (target >= 20: {})",
            verdict(worst_lab <= 1.5),
            verdict(worst_shell >= 20.0)
        );
    }
    println!(
        "  ip netns: one `ip netns exec … sysctl -w` per sysctl, among the labs (the target's \
         figure); 1 exec: all three sysctls in one exec; alone: ip netns flows back to back \
         in a block of their own; named: the lab bind-mounted under /run/netns \
         (NETCLAIM_NAME_LABS=1). All but the target's figures are for reference."
    );
}

fn scale() {
    settle();
    let (threads, fds) = (lab_threads(), netns_fds());
    let (avail, slab) = (meminfo("MemAvailable:"), meminfo("Slab:"));
    let t = Instant::now();
    let alive: Vec<NetNs> = (0..ALIVE).map(|_| NetNs::new().expect("lab")).collect();
    let created = t.elapsed();
    let (avail_used, slab_used) = (
        avail.saturating_sub(meminfo("MemAvailable:")),
        meminfo("Slab:").saturating_sub(slab),
    );
    let distinct: HashSet<u64> = alive
        .iter()
        .map(|ns| {
            nix::sys::stat::fstat(ns.fd())
                .expect("fstat of a netns fd")
                .st_ino
        })
        .collect();
    let live_threads = lab_threads() - threads;
    let t = Instant::now();
    drop(alive);
    let destroyed = t.elapsed();
    let (left_threads, left_fds) = (lab_threads() - threads, netns_fds() - fds);
    let left_names = netclaim_harness::netns::names_of(std::process::id()).len();
    println!("{ALIVE} labs alive at once:");
    println!(
        "  created in {:.3} s ({} per lab): {} distinct namespaces, {live_threads} lab threads",
        created.as_secs_f64(),
        us(created / ALIVE as u32),
        distinct.len()
    );
    println!(
        "  memory per lab: {} KiB of MemAvailable, {} KiB of Slab",
        avail_used / ALIVE as u64,
        slab_used / ALIVE as u64
    );
    println!(
        "  destroyed in {:.3} s; left behind: {left_threads} threads, {left_fds} namespace \
         fds, {left_names} /run/netns names",
        destroyed.as_secs_f64()
    );
    assert_eq!(distinct.len(), ALIVE, "every lab is its own namespace");
    assert_eq!(live_threads, ALIVE, "every lab has its thread while alive");
    assert_eq!(
        (left_threads, left_fds, left_names),
        (0, 0, 0),
        "labs left behind after destruction"
    );
}

fn main() {
    // Without root, labs run in a user namespace of this process's own: entered first,
    // while the process is single-threaded (see netclaim_harness::userns).
    let _ = netclaim_harness::userns::enter_if_unprivileged();
    if let Err(reason) = netclaim_harness::privilege::check() {
        eprintln!("lab benchmark skipped: {reason}");
        return;
    }
    // `cargo bench` passes --bench; a filter argument is not supported.
    lifecycle();
    scale();
}
