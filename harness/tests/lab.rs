//! The harness's mechanisms against the real kernel: namespaces, sysctls, iptables,
//! the command runner, links and capture. These need root; without it every case is
//! reported as ignored with the reason.

use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netclaim_harness::command::ToolCommand;
use netclaim_harness::sysctl::knob;
use netclaim_harness::{capture, link, Error, NetNs};
use nix::errno::Errno;

type Case = fn() -> anyhow::Result<()>;

mod common;
use common::ensure;

/// A named lab is bind-mounted, visible to `ip netns`, has lo up, and is gone after drop.
fn netns_lifecycle() -> anyhow::Result<()> {
    let ns = NetNs::named()?;
    let name = ns.name().to_owned();
    let prefix = format!("netclaim-{}-", std::process::id());
    ensure(name.starts_with(&prefix), || format!("name {name}"))?;
    let path = Path::new("/run/netns").join(&name);
    ensure(path.exists(), || format!("{} missing", path.display()))?;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &name, "ip", "-o", "link", "show", "lo"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure(text.contains("UP") && text.contains("LOOPBACK"), || {
        format!("lo not up: {text}")
    })?;
    drop(ns);
    ensure(!path.exists(), || {
        format!("{} still exists after drop", path.display())
    })?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure(!mounts.contains(&name), || format!("{name} still mounted"))
}

/// `lo`'s interface flags in `ns` (IFF_UP 0x1, IFF_LOOPBACK 0x8, …).
fn lo_flags(ns: &NetNs) -> anyhow::Result<u32> {
    let text = ns.run(|| std::fs::read_to_string("/sys/class/net/lo/flags"))??;
    Ok(u32::from_str_radix(
        text.trim().trim_start_matches("0x"),
        16,
    )?)
}

/// By default a lab has lo up and no `/run/netns` entry or mount: there is nothing on
/// the host to leave behind.
fn netns_unnamed_by_default() -> anyhow::Result<()> {
    netclaim_harness::netns::set_naming(false);
    let ns = NetNs::new()?;
    let name = ns.name().to_owned();
    ensure(ns.mount_path().is_none(), || format!("{name} was mounted"))?;
    let path = Path::new("/run/netns").join(&name);
    ensure(!path.exists(), || format!("{} exists", path.display()))?;
    let flags = lo_flags(&ns)?;
    ensure(flags & libc::IFF_UP as u32 != 0, || {
        format!("lo is down: flags {flags:#x}")
    })?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure(!mounts.contains(&name), || format!("{name} mounted"))
}

/// `with_sysctls` sets them while `lo` comes up; a rejected or absent sysctl fails the
/// creation with the typed error.
fn netns_with_sysctls() -> anyhow::Result<()> {
    let ns = NetNs::with_sysctls(&[
        (knob::TCP_SYN_RETRIES, "2"),
        (knob::IP_LOCAL_PORT_RANGE, "40000 40003"),
    ])?;
    ensure(ns.tcp_syn_retries()? == 2, || "tcp_syn_retries".into())?;
    ensure(ns.ip_local_port_range()? == (40000, 40003), || {
        "port range".into()
    })?;
    let flags = lo_flags(&ns)?;
    ensure(flags == 0x9, || format!("lo flags {flags:#x}"))?;
    drop(ns);

    match NetNs::with_sysctls(&[(knob::TCP_SYN_RETRIES, "0")]) {
        Err(Error::SysctlRejected { name, value, errno }) => ensure(
            name == knob::TCP_SYN_RETRIES && value == "0" && errno == Errno::EINVAL,
            || format!("{name}={value}: {errno}"),
        )?,
        other => anyhow::bail!("tcp_syn_retries=0 gave {other:?}"),
    }
    match NetNs::with_sysctls(&[("net.ipv4.no_such_knob", "1")]) {
        Err(Error::SysctlAbsent { .. }) => Ok(()),
        other => anyhow::bail!("absent knob gave {other:?}"),
    }
}

/// A panicking claim still removes its namespace.
fn netns_cleanup_while_panicking() -> anyhow::Result<()> {
    let payload = std::panic::catch_unwind(|| {
        let ns = NetNs::named().expect("namespace");
        let path = Path::new("/run/netns").join(ns.name());
        assert!(path.exists());
        std::panic::panic_any(path);
    })
    .expect_err("the closure panics");
    let path = payload
        .downcast::<std::path::PathBuf>()
        .expect("path payload");
    ensure(!path.exists(), || {
        format!("{} left behind by a panic", path.display())
    })
}

/// Work inside the lab sees the lab; the caller's thread stays in the host namespace.
fn run_switches_only_a_helper_thread() -> anyhow::Result<()> {
    let host = std::fs::read_link("/proc/thread-self/ns/net")?;
    let ns = NetNs::new()?;
    let inside = ns.run(|| std::fs::read_link("/proc/thread-self/ns/net"))??;
    ensure(inside != host, || "run() did not enter the lab".into())?;
    ensure(
        std::fs::read_link("/proc/thread-self/ns/net")? == host,
        || "the caller's thread changed namespace".into(),
    )
}

/// Sysctls are per lab: a write is visible inside, not on the host; errors are typed.
fn sysctls_are_per_lab_and_errors_name_the_cause() -> anyhow::Result<()> {
    let host_value = std::fs::read_to_string("/proc/sys/net/core/somaxconn")?;
    let ns = NetNs::new()?;
    ns.set_somaxconn(7)?;
    ensure(ns.somaxconn()? == 7, || {
        "somaxconn not set in the lab".into()
    })?;
    ensure(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")? == host_value,
        || "host somaxconn changed".into(),
    )?;
    ns.set_ip_local_port_range(40000, 40003)?;
    ensure(ns.ip_local_port_range()? == (40000, 40003), || {
        "port range".into()
    })?;

    match ns.set_tcp_syn_retries(0) {
        Err(Error::SysctlRejected { name, value, errno }) => ensure(
            name == knob::TCP_SYN_RETRIES && value == "0" && errno == Errno::EINVAL,
            || format!("{name}={value}: {errno}"),
        )?,
        other => anyhow::bail!("tcp_syn_retries=0 gave {other:?}"),
    }
    match ns.set_sysctl(knob::SOMAXCONN, "many") {
        Err(Error::SysctlRejected {
            errno: Errno::EINVAL,
            ..
        }) => {}
        other => anyhow::bail!("somaxconn=many gave {other:?}"),
    }
    match ns.set_sysctl("net.ipv4.no_such_knob", "1") {
        Err(e @ Error::SysctlAbsent { .. }) => {
            ensure(e.to_string().contains("net.ipv4.no_such_knob"), || {
                e.to_string()
            })?
        }
        other => anyhow::bail!("absent knob gave {other:?}"),
    }
    match ns.set_sysctl("kernel.hostname", "x") {
        Err(Error::NotNetSysctl { .. }) => Ok(()),
        other => anyhow::bail!("kernel.hostname gave {other:?}"),
    }
}

fn iptables_save_rules() -> anyhow::Result<String> {
    let out = std::process::Command::new("iptables-save").output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// iptables rules land in the lab only.
fn iptables_rules_stay_in_the_lab() -> anyhow::Result<()> {
    let host_before = iptables_save_rules()?;
    let ns = NetNs::new()?;
    ns.drop_syn_to_port(7)?;
    let rules = ns.iptables_rules("filter")?;
    ensure(
        rules
            .iter()
            .any(|r| r.contains("--dport 7") && r.contains("-j DROP")),
        || format!("{rules:?}"),
    )?;
    ensure(iptables_save_rules()? == host_before, || {
        "host iptables changed".into()
    })
}

/// The runner captures status, output and duration, and kills at the deadline.
fn command_runner_captures_and_kills() -> anyhow::Result<()> {
    let ns = NetNs::new()?;
    let out = ns.run_command(
        &ToolCommand::new("sh", Duration::from_secs(10))
            .args(["-c", "echo out; echo err >&2; exit 3"]),
    )?;
    ensure(
        out.exit_code() == Some(3)
            && out.stdout == "out\n"
            && out.stderr == "err\n"
            && !out.timed_out,
        || out.to_string(),
    )?;

    let out = ns.run_command(
        &ToolCommand::new("sh", Duration::from_millis(300))
            .args(["-c", "echo started; sleep 30 & sleep 30"]),
    )?;
    ensure(out.timed_out && out.signal() == Some(9), || out.to_string())?;
    ensure(
        out.duration >= Duration::from_millis(300) && out.duration < Duration::from_secs(2),
        || format!("{:?}", out.duration),
    )?;
    ensure(out.stdout == "started\n", || out.to_string())?;

    let out =
        ns.run_command(&ToolCommand::new("ip", Duration::from_secs(5)).args(["-o", "link"]))?;
    ensure(
        out.stdout.lines().count() == 1 && out.stdout.contains("lo:"),
        || format!("the child is not in the lab: {out}"),
    )?;

    match ns.run_command(&ToolCommand::new(
        "no-such-tool-netclaim",
        Duration::from_secs(1),
    )) {
        Err(Error::ToolMissing { program, .. }) => {
            ensure(program == "no-such-tool-netclaim", || program)
        }
        other => anyhow::bail!("missing tool gave {other:?}"),
    }
}

/// A knob the lab shows but whose write would act on the host is refused, naming why,
/// and the host's value stays. Each write offers the host's own current value, so that
/// even a regression here cannot change the host.
fn sysctl_global_to_the_host_refused() -> anyhow::Result<()> {
    let host =
        |name: &str| std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/")));
    let ns = NetNs::new()?;
    let mut tried = 0;
    for (name, why) in [
        ("net.netfilter.nf_hooks_lwtunnel", "until reboot"),
        ("net.netfilter.nf_conntrack_max", "read-only"),
    ] {
        let Ok(before) = host(name) else {
            eprintln!("{name}: absent on this kernel, not tried");
            continue;
        };
        tried += 1;
        match ns.set_sysctl(name, before.trim()) {
            Err(Error::SysctlGlobal { name: n, reason }) => {
                ensure(n == name && reason.contains(why), || {
                    format!("{n}: {reason}")
                })?
            }
            other => anyhow::bail!("{name} gave {other:?}"),
        }
        ensure(host(name)? == before, || {
            format!("{name} changed on the host")
        })?;
    }
    ensure(tried > 0, || "no global knob to try on this kernel".into())?;
    // A congestion control that is not loaded would be loaded into the host's kernel.
    match ns.set_sysctl("net.ipv4.tcp_congestion_control", "netclaim_no_such_cc") {
        Err(Error::SysctlGlobal { reason, .. }) => {
            ensure(reason.contains("load a kernel module"), || reason.clone())?
        }
        other => anyhow::bail!("an unloaded congestion control gave {other:?}"),
    }
    // One that is loaded is the lab's own business.
    let loaded = ns.sysctl("net.ipv4.tcp_available_congestion_control")?;
    let first = loaded
        .split_whitespace()
        .next()
        .unwrap_or("reno")
        .to_owned();
    ns.set_sysctl("net.ipv4.tcp_congestion_control", &first)?;
    ensure(
        ns.sysctl("net.ipv4.tcp_congestion_control")? == first,
        || first.clone(),
    )
}

/// The pids of processes whose command line is `sleep <marker>` (not a shell that has it
/// in its script).
fn processes_with(marker: &str) -> Vec<u32> {
    let wanted = format!("sleep\0{marker}\0");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c == wanted.as_bytes())
                .unwrap_or(false)
        })
        .collect()
}

/// A marker no other process has: a sleep duration unique to this process and case.
fn unique_sleep(case: u32) -> String {
    format!("{}.{:06}{case}", 300 + case, std::process::id())
}

/// However a tool detaches (nohup, setsid, a background job of a shell that exits or is
/// killed at its deadline), nothing it started runs after the run returns.
fn command_leaves_no_process_behind() -> anyhow::Result<()> {
    let ns = NetNs::new()?;
    let (a, b, c) = (unique_sleep(1), unique_sleep(2), unique_sleep(3));
    let out = ns.run_command(&ToolCommand::new("sh", Duration::from_secs(10)).args([
        "-c",
        &format!("nohup setsid sleep {a} >/dev/null 2>&1 & sleep 0.2; echo x"),
    ]))?;
    ensure(out.exit_code() == Some(0) && out.stdout == "x\n", || {
        out.to_string()
    })?;
    let out = ns.run_command(&ToolCommand::new("setsid", Duration::from_secs(10)).args([
        "sh",
        "-c",
        &format!("sleep {b} &"),
    ]))?;
    ensure(out.exit_code() == Some(0) && !out.timed_out, || {
        out.to_string()
    })?;
    let out = ns.run_command(
        &ToolCommand::new("sh", Duration::from_millis(500))
            .args(["-c", &format!("setsid sleep {c} & sleep 30")]),
    )?;
    ensure(out.timed_out, || out.to_string())?;
    for marker in [&a, &b, &c] {
        let left = processes_with(marker);
        ensure(left.is_empty(), || {
            format!("`sleep {marker}` still runs as pid {left:?}")
        })?;
    }
    Ok(())
}

/// A tool starts with no signal blocked, even when the thread that runs it blocks some
/// (netclaim's threads block SIGINT, SIGTERM and SIGHUP: one thread takes them).
fn command_starts_with_no_blocked_signal() -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let ns = NetNs::new()?;
    let mut blocked = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        blocked.add(sig);
    }
    let mut before = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut before))?;
    let out = ns.run_command(
        &ToolCommand::new("sh", Duration::from_secs(10))
            .args(["-c", "grep SigBlk /proc/self/status & wait"]),
    );
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None)?;
    let out = out?;
    ensure(out.stdout.trim() == "SigBlk:\t0000000000000000", || {
        out.to_string()
    })
}

/// A daemon's guard ends what the daemon started, however it detached.
fn command_daemon_takes_what_it_started_along() -> anyhow::Result<()> {
    let ns = NetNs::new()?;
    let marker = unique_sleep(4);
    let mut daemon = ns.start_daemon(&ToolCommand::new("sh", Duration::from_secs(10)).args([
        "-c",
        &format!("nohup setsid sleep {marker} >/dev/null 2>&1 & exec sleep 600"),
    ]))?;
    use netclaim_harness::wait::{until, Poll};
    let started = until(
        "the daemon's detached sleep",
        Duration::from_secs(5),
        || match processes_with(&marker).is_empty() {
            true => Poll::Pending("not running yet".into()),
            false => Poll::Ready(()),
        },
    );
    ensure(started.is_ok(), || {
        format!("the daemon did not start: {}", daemon.log())
    })?;
    ensure(daemon.exited().is_none(), || daemon.log())?;
    drop(daemon);
    let left = processes_with(&marker);
    ensure(left.is_empty(), || {
        format!("`sleep {marker}` outlived its daemon as pid {left:?}")
    })
}

/// Of a tool printing without end, the first and last OUTPUT_KEEP bytes are kept and the
/// rest is counted.
fn command_output_is_capped() -> anyhow::Result<()> {
    use netclaim_harness::command::OUTPUT_KEEP;
    let ns = NetNs::new()?;
    let total = 8 * OUTPUT_KEEP + 123;
    let out = ns.run_command(&ToolCommand::new("sh", Duration::from_secs(30)).args([
        "-c",
        &format!("head -c {total} /dev/zero | tr '\\0' a; printf END; echo short >&2"),
    ]))?;
    let cut = (total + 3 - 2 * OUTPUT_KEEP) as u64;
    ensure(out.stdout_cut == cut && out.stderr_cut == 0, || {
        format!(
            "cut {} and {}, expected {cut} and 0",
            out.stdout_cut, out.stderr_cut
        )
    })?;
    let marker = format!("\n[netclaim: {cut} bytes cut here]\n");
    ensure(
        out.stdout.len() == 2 * OUTPUT_KEEP + marker.len()
            && out.stdout.ends_with("aEND")
            && out.stdout.contains(&marker)
            && out.stderr == "short\n"
            && out.output_cut(),
        || format!("{} bytes kept, stderr {:?}", out.stdout.len(), out.stderr),
    )
}

/// A private /etc/resolv.conf for one command, without touching the host's.
fn etc_override_is_private() -> anyhow::Result<()> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let ns = NetNs::new()?;
    let out = ns.run_command(
        &ToolCommand::new("cat", Duration::from_secs(5))
            .args(["/etc/resolv.conf"])
            .etc_file("resolv.conf", "nameserver 192.0.2.53\n"),
    )?;
    ensure(out.stdout == "nameserver 192.0.2.53\n", || out.to_string())?;
    ensure(
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default() == host,
        || "host resolv.conf changed".into(),
    )
}

/// veth between two labs: traffic flows; a blackhole host makes connect() time out.
fn veth_and_blackhole() -> anyhow::Result<()> {
    let (a, b) = (NetNs::new()?, NetNs::new()?);
    let (ip_a, ip_b) = ([192, 0, 2, 1].into(), [192, 0, 2, 2].into());
    link::veth_pair(&a, ip_a, &b, ip_b, 24)?;
    let server = SocketAddrV4::new(ip_b, 8080);
    let listener = b.run(|| TcpListener::bind(server))??;
    let stream =
        a.run(|| TcpStream::connect_timeout(&SocketAddr::V4(server), Duration::from_secs(2)))??;
    let (_, peer) = listener.accept()?;
    ensure(peer.ip() == std::net::IpAddr::V4(ip_a), || {
        format!("peer {peer}")
    })?;
    drop(stream);

    b.drop_all_input()?;
    a.set_tcp_syn_retries(1)?;
    let cap = a.capture_tcp(8080)?;
    let err = a
        .run(|| TcpStream::connect(server))?
        .expect_err("blackholed");
    let events = cap.finish()?;
    ensure(err.raw_os_error() == Some(libc::ETIMEDOUT), || {
        format!("{err}")
    })?;
    let syns = capture::syn_times(&events, 8080);
    ensure(
        syns.len() >= 2 && events.iter().all(|e| !e.flags.is_rst()),
        || capture::timeline(&events),
    )?;
    ensure(
        !link::is_lab_address([10, 0, 0, 1].into()) && link::is_lab_address(ip_b),
        || "address plan".into(),
    )
}

/// The capture sees a SYN and the RST of a closed loopback port.
fn capture_sees_syn_and_rst() -> anyhow::Result<()> {
    let ns = NetNs::new()?;
    let cap = ns.capture_tcp(9)?;
    let err = ns
        .run(|| TcpStream::connect("127.0.0.1:9"))?
        .expect_err("closed port");
    let events = cap.finish()?;
    ensure(err.raw_os_error() == Some(libc::ECONNREFUSED), || {
        format!("{err}")
    })?;
    ensure(
        events.len() == 2 && events[0].flags.is_syn() && events[1].flags.is_rst(),
        || capture::timeline(&events),
    )
}

/// The sweep cases make names of dead owners and sweep every such name: one at a time,
/// and not while another test binary's `netclaim run` sweeps (see `SweepLock`).
fn sweeping_alone() -> anyhow::Result<netclaim_harness::sweep::SweepLock> {
    Ok(netclaim_harness::sweep::SweepLock::exclusive(Path::new(
        env!("CARGO_TARGET_TMPDIR"),
    ))?)
}

/// Makes `/run/netns/netclaim-<pid>-0`, a bind mount of `source`'s name, for a pid that
/// cannot exist (pid_max is at most 2^22), as a runner killed with SIGKILL leaves it.
fn stale_name(source: &NetNs, dead_pid: u32) -> anyhow::Result<std::path::PathBuf> {
    anyhow::ensure!(dead_pid > 1 << 22, "pid {dead_pid} could be alive");
    let stale = Path::new("/run/netns").join(format!("netclaim-{dead_pid}-0"));
    std::fs::File::create(&stale)?;
    nix::mount::mount(
        Some(&Path::new("/run/netns").join(source.name())),
        &stale,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )?;
    Ok(stale)
}

/// A name left by a dead runner is swept; live ones are kept.
fn sweep_removes_only_dead_owners() -> anyhow::Result<()> {
    let _alone = sweeping_alone()?;
    let ns = NetNs::named()?;
    let stale = stale_name(&ns, 1 << 23)?;
    let swept = netclaim_harness::sweep::stale();
    ensure(swept.failed.is_empty(), || format!("{:?}", swept.failed))?;
    ensure(
        swept.removed.iter().any(|n| stale.ends_with(n)) && !stale.exists(),
        || format!("swept {swept:?}"),
    )?;
    ensure(
        Path::new("/run/netns").join(ns.name()).exists()
            && !swept.removed.iter().any(|n| n == ns.name()),
        || "a live lab was swept".into(),
    )
}

/// Two sweeps at once (two runs starting, or a run and `netclaim clean`) share the stale
/// names between them: neither fails on a name the other removed first, and every name
/// is gone afterwards. Repeated, because each round races differently.
fn concurrent_sweeps_do_not_fail() -> anyhow::Result<()> {
    let _alone = sweeping_alone()?;
    let ns = NetNs::named()?;
    let mut raced = 0;
    let mut all = Vec::new();
    for round in 0..20u32 {
        let names: Vec<_> = (0..16u32)
            .map(|i| stale_name(&ns, (1 << 23) + round * 16 + i))
            .collect::<anyhow::Result<_>>()?;
        let barrier = std::sync::Barrier::new(2);
        let (a, b) = std::thread::scope(|s| {
            let sweep = || {
                barrier.wait();
                netclaim_harness::sweep::stale()
            };
            let a = s.spawn(sweep);
            let b = s.spawn(sweep);
            (a.join().unwrap(), b.join().unwrap())
        });
        ensure(a.failed.is_empty() && b.failed.is_empty(), || {
            format!("round {round}: {:?} {:?}", a.failed, b.failed)
        })?;
        for path in &names {
            let name = path.file_name().unwrap().to_string_lossy();
            ensure(!path.exists(), || format!("round {round}: {name} left"))?;
            ensure(
                a.removed.iter().chain(&b.removed).any(|n| *n == name),
                || format!("round {round}: nobody removed {name}: {a:?} {b:?}"),
            )?;
        }
        raced += a.vanished.len() + b.vanished.len();
        all.extend(names);
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    for path in &all {
        let point = format!(" {} ", path.display());
        ensure(!mounts.contains(&point), || {
            format!("a stale mount survived: {}", path.display())
        })?;
    }
    eprintln!("concurrent sweeps: {raced} name(s) found already removed by the other sweep");
    Ok(())
}

/// Two labs never share a name.
fn names_are_unique() -> anyhow::Result<()> {
    let (a, b) = (NetNs::new()?, NetNs::new()?);
    ensure(a.name() != b.name(), || a.name().into())
}

fn main() {
    // Without root, labs run in a user namespace of this process's own: entered first,
    // while the process is single-threaded (see netclaim_harness::userns).
    let _ = netclaim_harness::userns::enter_if_unprivileged();
    let args = Arguments::from_args();
    let privileged = netclaim_harness::privilege::check();
    let cases: [(&str, Case); 19] = [
        ("netns::unnamed_by_default", netns_unnamed_by_default),
        ("netns::with_sysctls", netns_with_sysctls),
        (
            "netns::sweep_removes_only_dead_owners",
            sweep_removes_only_dead_owners,
        ),
        (
            "netns::concurrent_sweeps_do_not_fail",
            concurrent_sweeps_do_not_fail,
        ),
        ("netns::lifecycle", netns_lifecycle),
        (
            "netns::cleanup_while_panicking",
            netns_cleanup_while_panicking,
        ),
        (
            "netns::run_switches_only_a_helper_thread",
            run_switches_only_a_helper_thread,
        ),
        ("netns::names_are_unique", names_are_unique),
        (
            "sysctl::per_lab_and_typed_errors",
            sysctls_are_per_lab_and_errors_name_the_cause,
        ),
        (
            "sysctl::global_to_the_host_refused",
            sysctl_global_to_the_host_refused,
        ),
        (
            "firewall::rules_stay_in_the_lab",
            iptables_rules_stay_in_the_lab,
        ),
        (
            "command::captures_and_kills",
            command_runner_captures_and_kills,
        ),
        ("command::etc_override_is_private", etc_override_is_private),
        (
            "command::leaves_no_process_behind",
            command_leaves_no_process_behind,
        ),
        (
            "command::starts_with_no_blocked_signal",
            command_starts_with_no_blocked_signal,
        ),
        (
            "command::daemon_takes_what_it_started_along",
            command_daemon_takes_what_it_started_along,
        ),
        ("command::output_is_capped", command_output_is_capped),
        ("link::veth_and_blackhole", veth_and_blackhole),
        ("capture::syn_and_rst", capture_sees_syn_and_rst),
    ];
    // Named labs are bind mounts under /run/netns, in the host's mount namespace: a user
    // namespace cannot make them (the README lists what differs without root).
    let named = [
        "netns::sweep_removes_only_dead_owners",
        "netns::concurrent_sweeps_do_not_fail",
        "netns::lifecycle",
        "netns::cleanup_while_panicking",
    ];
    let rootless = netclaim_harness::userns::mode().rootless();
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            let privileged = match privileged.clone() {
                Ok(()) if rootless && named.contains(&name) => Err(format!(
                    "named labs (/run/netns bind mounts) need root; this run's labs are in a {}",
                    netclaim_harness::userns::mode().describe()
                )),
                other => other,
            };
            Trial::ignorable_test(name, move || match privileged {
                Err(reason) => Ok(Completion::ignored_with(reason)),
                Ok(()) => case()
                    .map(|()| Completion::Completed)
                    .map_err(|e| Failed::from(format!("{e:#}"))),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
