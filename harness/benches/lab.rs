//! Lab lifecycle benchmark: `cargo bench -p netclaim-harness` (as root).
//!
//! Measures, interleaved in one run so machine noise hits every flow alike:
//!
//! * a bare `unshare(CLONE_NEWNET)` on a fresh thread (the kernel's own cost);
//! * a netclaim lab: create (lo up, bind mount), set three sysctls, destroy;
//! * the same with one iptables SYN DROP rule;
//! * the shell flow `ip netns add` / `ip netns exec … ip link set lo up` /
//!   `ip netns exec … sysctl -w` ×3 / `ip netns del`;
//!
//! then 500 labs alive at once: creation time, memory per lab (the system's
//! MemAvailable and Slab deltas: namespaces live in kernel memory, not in our RSS), and a
//! check that destroying them leaves nothing behind. Prints medians and ratios.

use std::process::Command;
use std::time::{Duration, Instant};

use netclaim_harness::NetNs;

const SYSCTLS: [(&str, &str); 3] = [
    ("net.ipv4.tcp_syn_retries", "1"),
    ("net.core.somaxconn", "4"),
    ("net.ipv4.ip_local_port_range", "40000 40003"),
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn bare_unshare() -> Duration {
    let t = Instant::now();
    std::thread::spawn(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET))
        .join()
        .expect("thread")
        .expect("unshare(CLONE_NEWNET)");
    t.elapsed()
}

fn lab(with_rule: bool) -> Duration {
    let t = Instant::now();
    let ns = NetNs::new().expect("lab");
    ns.set_sysctls(&SYSCTLS).expect("sysctls");
    if with_rule {
        ns.drop_syn_to_port(7).expect("iptables");
    }
    drop(ns);
    t.elapsed()
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

fn ip_netns_flow(i: usize) -> Duration {
    let name = format!("netclaim-bench-{}-{i}", std::process::id());
    let t = Instant::now();
    sh(&["ip", "netns", "add", &name]);
    sh(&[
        "ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up",
    ]);
    for (k, v) in SYSCTLS {
        sh(&[
            "ip",
            "netns",
            "exec",
            &name,
            "sysctl",
            "-qw",
            &format!("{k}={v}"),
        ]);
    }
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

fn main() {
    if let Err(reason) = netclaim_harness::privilege::check() {
        eprintln!("lab benchmark skipped: {reason}");
        return;
    }
    // `cargo bench` passes --bench; a filter argument is not supported.
    let rounds = 200;
    let shell_rounds = 20;
    let (mut bare, mut labs, mut ruled, mut shell) = (vec![], vec![], vec![], vec![]);
    for i in 0..rounds {
        bare.push(bare_unshare());
        labs.push(lab(false));
        if i % 4 == 0 {
            ruled.push(lab(true));
        }
        if i % (rounds / shell_rounds) == 0 {
            shell.push(ip_netns_flow(i));
        }
    }
    let (bare, labs, ruled, shell) = (median(bare), median(labs), median(ruled), median(shell));
    println!("lab lifecycle (create, lo up, 3 sysctls, destroy), medians of one interleaved run:");
    println!("  bare unshare(CLONE_NEWNET)        {:>10}", us(bare));
    println!(
        "  netclaim lab                      {:>10}  = {:.2} x bare unshare (target <= 1.5)",
        us(labs),
        labs.as_secs_f64() / bare.as_secs_f64()
    );
    println!("  netclaim lab + 1 iptables rule    {:>10}", us(ruled));
    println!(
        "  ip netns add/exec/del flow        {:>10}  = {:.1} x the netclaim lab (target >= 20)",
        us(shell),
        shell.as_secs_f64() / labs.as_secs_f64()
    );

    let n = 500;
    let (avail, slab) = (meminfo("MemAvailable:"), meminfo("Slab:"));
    let t = Instant::now();
    let alive: Vec<NetNs> = (0..n).map(|_| NetNs::new().expect("lab")).collect();
    let created = t.elapsed();
    let (avail_used, slab_used) = (
        avail.saturating_sub(meminfo("MemAvailable:")),
        meminfo("Slab:").saturating_sub(slab),
    );
    let names = netclaim_harness::netns::list_named();
    let mine = format!("netclaim-{}-", std::process::id());
    let live = names.iter().filter(|n| n.starts_with(&mine)).count();
    let t = Instant::now();
    drop(alive);
    let destroyed = t.elapsed();
    let left = netclaim_harness::netns::list_named()
        .into_iter()
        .filter(|n| n.starts_with(&mine))
        .count();
    println!("{n} labs alive at once:");
    println!(
        "  created in {:.3} s ({} per lab), {live} visible under /run/netns",
        created.as_secs_f64(),
        us(created / n as u32)
    );
    println!(
        "  memory per lab: {} KiB of MemAvailable, {} KiB of Slab",
        avail_used / n as u64,
        slab_used / n as u64
    );
    println!(
        "  destroyed in {:.3} s; left behind: {left} names",
        destroyed.as_secs_f64()
    );
    assert_eq!(live, n, "every lab must be visible while alive");
    assert_eq!(left, 0, "labs left behind after destruction");
}
