//! `netclaim vm`: run the catalog under another kernel in a throwaway VM and bring its
//! report back.
//!
//! virtme-ng (`vng`) boots the kernel image in QEMU with the host's root filesystem shared
//! read-only (copy-on-write overlays in the guest), so the guest runs this very binary and
//! the host's tools. A host directory shared read-write (`--rwdir`) receives the guest's
//! `netclaim run --out`; on success its files are copied to `--out`.
//!
//! Acceleration: KVM when `/dev/kvm` opens read-write and a guest actually comes up under
//! it (nested KVM can open yet hang in early boot), otherwise TCG software emulation,
//! said on stderr. Timing honesty: before the catalog, the guest sleeps
//! [`CLOCK_PROBE_S`] by its own clock while the host times the same interval from the
//! guest's markers; the result, and the guest report's SYN timer fidelity, are printed
//! and stored in `vm.json` and under `"vm"` in the copied `report.json`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netclaim_harness::command::which;
use netclaim_harness::tmp::TempDir;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How long the guest sleeps by its own clock while the host times it.
const CLOCK_PROBE_S: u64 = 5;
/// A guest that has not printed its first marker by then under KVM is taken as hung (as
/// nested KVM can be) and the run is retried under TCG. A KVM boot takes a few seconds.
const KVM_BOOT_DEADLINE: Duration = Duration::from_secs(45);
/// Same, under TCG (a boot takes 20–40 s there); past it the run fails.
const TCG_BOOT_DEADLINE: Duration = Duration::from_secs(300);
/// Claims at once in the guest under TCG, unless --jobs is given (see [`guest_jobs`]).
/// Measured on 2 emulated CPUs: all 52 at once put 20 tool claims past their tolerances,
/// 6 at once 3 (by < 0.6 s), for 4 min of wall time instead of 3.
const TCG_DEFAULT_JOBS: usize = 6;
/// The prefix of the guest's marker lines on its stderr.
const MARK: &str = "netclaim-vm:";

#[derive(clap::Args)]
pub struct VmArgs {
    /// The kernel image to boot: /boot/vmlinuz-RELEASE (its modules must be in
    /// /lib/modules/RELEASE) or a built tree's arch/x86/boot/bzImage.
    #[arg(long, value_name = "PATH")]
    kernel: PathBuf,
    /// Where to put report.json, junit.xml, report.md, timelines/ and vm.json
    /// (default: ./vm-RELEASE).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Only claims whose id contains one of these (as for `run`).
    filters: Vec<String>,
    /// Guest memory (QEMU syntax).
    #[arg(long, default_value = "2G")]
    memory: String,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Hardware virtualisation: auto (KVM when /dev/kvm works, else TCG), kvm, or tcg.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    accel: Accel,
    /// Passed to `netclaim run` in the guest (default: all claims at once under KVM, 6
    /// under TCG, where each process start costs emulated CPU time).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// No progress from the guest on stderr (the summary is still printed).
    #[arg(long, short)]
    quiet: bool,
    /// Show the guest kernel's console (boot messages) too: for a guest that does not boot.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Accel {
    Auto,
    Kvm,
    Tcg,
}

/// What one boot attempt produced.
enum Boot {
    /// The guest came up and ran the command.
    Ran(Guest),
    /// The guest never printed its first marker: why.
    NoGuest(String),
}

/// What the guest said on its marker lines, with host timestamps.
#[derive(Default)]
struct Guest {
    release: Option<String>,
    /// (guest-clock ms, host-clock ms) for a sleep of CLOCK_PROBE_S by the guest clock.
    clock: Option<(f64, f64)>,
    /// `netclaim run`'s exit status in the guest.
    exit: Option<u8>,
}

pub fn run(args: VmArgs) -> Result<u8> {
    // Fail here, before booting a VM, on a filter that matches nothing.
    crate::select(&args.filters, &crate::ClaimFiles::default())?;
    let vng = find_vng()?;
    check_kernel(&args.kernel)?;
    let release = kernel_release(&args.kernel);
    if let Some(rel) = &release {
        if !Path::new("/lib/modules").join(rel).is_dir() && !args.kernel.is_dir() {
            eprintln!(
                "netclaim vm: warning: no /lib/modules/{rel}: the guest may lack the virtio, 9p \
                 and netfilter modules (install the kernel's package, not just its image)"
            );
        }
    }
    let exe = std::env::current_exe().context("locating the netclaim binary")?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None => PathBuf::from(format!("vm-{}", release.as_deref().unwrap_or("kernel"))),
    };
    std::fs::create_dir_all(&out).with_context(|| {
        format!(
            "cannot create --out directory {}: choose a writable directory",
            out.display()
        )
    })?;

    // The guest writes into a fresh shared directory; `--out` only gets complete results.
    let stage_dir = TempDir::new("vm").context("creating the directory shared with the VM")?;
    let stage = stage_dir.path();

    let kvm = kvm_usable();
    let mut accel = match (args.accel, &kvm) {
        (Accel::Tcg, _) => Accel::Tcg,
        (Accel::Kvm, Err(why)) => bail!("--accel kvm, but {why}"),
        (_, Ok(())) => Accel::Kvm,
        (Accel::Auto, Err(why)) => {
            eprintln!(
                "netclaim vm: {why}: using TCG software emulation (slower; timers less exact)"
            );
            Accel::Tcg
        }
    };
    crate::on_interrupt(stop_vm)?;
    let started = Instant::now();
    let guest = loop {
        eprintln!(
            "netclaim vm: booting {} under {} ({} CPU(s), {} memory) with {}",
            args.kernel.display(),
            accel_name(accel),
            args.cpus,
            args.memory,
            vng.display()
        );
        let script = guest_script(&exe, stage, &args, guest_jobs(&args, accel));
        match boot(&vng, &args, accel, stage, &script)? {
            Boot::Ran(g) => break g,
            Boot::NoGuest(why) if accel == Accel::Kvm && args.accel == Accel::Auto => {
                eprintln!(
                    "netclaim vm: the guest did not come up under KVM ({why}); retrying under \
                     TCG software emulation (slower; timers less exact)"
                );
                accel = Accel::Tcg;
            }
            Boot::NoGuest(why) => {
                let avoid_kvm = if accel == Accel::Kvm {
                    "; --accel tcg avoids KVM"
                } else {
                    ""
                };
                bail!(
                    "the guest did not come up under {}: {why} (rerun with --verbose to see \
                     its console{avoid_kvm})",
                    accel_name(accel)
                )
            }
        }
    };

    let report_path = stage.join("report.json");
    let code = match guest.exit {
        Some(code) => code,
        None => bail!(
            "the guest came up but netclaim did not finish in it (the VM stopped early): \
             rerun with --verbose to see the guest console"
        ),
    };
    if !report_path.is_file() {
        bail!(
            "netclaim in the guest exited {code} without writing report.json in {}",
            stage.display()
        );
    }
    let mut report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&report_path).context("reading the guest's report.json")?,
    )
    .context("the guest's report.json is not JSON")?;

    let jobs = guest_jobs(&args, accel);
    let vm = vm_facts(&args, accel, jobs, &guest, &report, started.elapsed());
    eprintln!("{}", summary(&vm, accel));
    if let Some(obj) = report.as_object_mut() {
        obj.insert("vm".into(), vm.clone());
    }
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")
        .context("writing report.json")?;
    std::fs::write(
        stage.join("vm.json"),
        serde_json::to_string_pretty(&vm)? + "\n",
    )
    .context("writing vm.json")?;
    copy_dir(stage, &out)
        .with_context(|| format!("copying the guest's results to {}", out.display()))?;
    eprintln!(
        "netclaim vm: wrote report.json, vm.json, junit.xml, report.md and timelines/ to {}",
        out.display()
    );
    Ok(code)
}

/// `vng` on PATH (or in the venv scripts/install-vm-tools makes).
fn find_vng() -> Result<PathBuf> {
    which("vng")
        .or_else(|| which("/opt/netclaim-vm/bin/vng"))
        .context(
            "virtme-ng's `vng` is not installed (not on PATH nor in /opt/netclaim-vm): run \
             scripts/install-vm-tools (installs qemu-system-x86, virtme-ng and Debian's kernel)",
        )
}

fn check_kernel(kernel: &Path) -> Result<()> {
    if kernel.exists() {
        if kernel.is_file() && std::fs::File::open(kernel).is_err() {
            bail!(
                "cannot read the kernel image {}: distribution kernels are mode 0600, run as \
                 root or `chmod a+r` it",
                kernel.display()
            );
        }
        return Ok(());
    }
    let found: Vec<String> = netclaim_harness::kernel::boot_images()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if found.is_empty() {
        bail!(
            "no kernel image at {}, and /boot has no vmlinuz-*: run scripts/install-vm-tools \
             (installs Debian's linux-image-amd64) or pass a built tree's \
             arch/x86/boot/bzImage",
            kernel.display()
        )
    }
    bail!(
        "no kernel image at {}; installed kernels: {}",
        kernel.display(),
        found.join(", ")
    )
}

/// The release string of a bzImage (its setup header points at "6.1.0-56-amd64 (...)"),
/// else what follows `vmlinuz-` in the file name.
fn kernel_release(kernel: &Path) -> Option<String> {
    let from_header = (|| {
        let mut head = vec![0u8; 0x8000];
        let mut f = std::fs::File::open(kernel).ok()?;
        let n = f.read(&mut head).ok()?;
        head.truncate(n);
        if head.get(0x202..0x206)? != b"HdrS" {
            return None;
        }
        let ptr = u16::from_le_bytes([*head.get(0x20E)?, *head.get(0x20F)?]) as usize + 0x200;
        let text = head.get(ptr..)?;
        let end = text.iter().position(|&b| b == 0 || b == b' ')?;
        let rel = std::str::from_utf8(&text[..end]).ok()?;
        (!rel.is_empty()).then(|| rel.to_owned())
    })();
    from_header.or_else(|| {
        kernel
            .file_name()?
            .to_str()?
            .strip_prefix("vmlinuz-")
            .map(str::to_owned)
    })
}

fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm cannot be opened read-write ({e})"))
}

/// `--jobs` for `netclaim run` in the guest. Under TCG every process start costs ~0.5 s
/// of emulated CPU: 52 claims at once on 2 emulated CPUs delay tools past their
/// tolerances, so at most [`TCG_DEFAULT_JOBS`] run at once unless --jobs says otherwise.
fn guest_jobs(args: &VmArgs, accel: Accel) -> Option<usize> {
    args.jobs
        .or((accel == Accel::Tcg).then_some(TCG_DEFAULT_JOBS))
}

fn accel_name(a: Accel) -> &'static str {
    match a {
        Accel::Kvm => "KVM",
        Accel::Tcg | Accel::Auto => "TCG (software emulation)",
    }
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell command the guest runs: markers (kernel release, the clock probe), then the
/// catalog, then the exit status.
fn guest_script(exe: &Path, stage: &Path, args: &VmArgs, jobs: Option<usize>) -> String {
    let mut run = vec![
        sh_quote(&exe.display().to_string()),
        "run".into(),
        "--format".into(),
        "json".into(),
        "--out".into(),
        sh_quote(&stage.display().to_string()),
    ];
    if args.quiet {
        run.push("--quiet".into());
    }
    if let Some(j) = jobs {
        run.push(format!("--jobs={j}"));
    }
    if !args.filters.is_empty() {
        run.push("--".into());
        run.extend(args.filters.iter().map(|f| sh_quote(f)));
    }
    format!(
        "echo \"{MARK} up $(uname -r)\" >&2; \
         t0=$(date +%s%N); echo \"{MARK} clock-start\" >&2; sleep {CLOCK_PROBE_S}; \
         t1=$(date +%s%N); echo \"{MARK} clock-end $(( (t1 - t0) / 1000 ))\" >&2; \
         {} >/dev/null; echo \"{MARK} exit $?\" >&2",
        run.join(" ")
    )
}

/// One boot: spawns vng in its own process group, streams the guest's output, and kills
/// the group when the guest does not come up in time.
fn boot(vng: &Path, args: &VmArgs, accel: Accel, stage: &Path, script: &str) -> Result<Boot> {
    let mut cmd = Command::new(vng);
    cmd.arg("--run")
        .arg(&args.kernel)
        .arg("--memory")
        .arg(&args.memory)
        .arg("--cpus")
        .arg(args.cpus.to_string())
        .arg(format!("--rwdir={}", stage.display()))
        .arg("--exec")
        .arg(script);
    if accel == Accel::Tcg {
        cmd.arg("--disable-kvm");
    }
    if args.verbose {
        cmd.arg("--verbose");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", vng.display()))?;
    set_child_group(child.id());

    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).split(b'\n').map_while(|l| l.ok()) {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);

    let spawned = Instant::now();
    let boot_deadline = if accel == Accel::Kvm {
        KVM_BOOT_DEADLINE
    } else {
        TCG_BOOT_DEADLINE
    };
    let deadline = spawned + boot_deadline;
    let mut guest = Guest::default();
    let mut up = false;
    let mut clock_start: Option<Instant> = None;
    let mut tail: Vec<String> = Vec::new();
    loop {
        let wait = if up {
            Duration::from_secs(3600)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok((at, line)) => {
                if let Some(m) = line.trim().strip_prefix(MARK) {
                    let m = m.trim();
                    if let Some(rel) = m.strip_prefix("up") {
                        up = true;
                        guest.release = Some(rel.trim().to_owned());
                        eprintln!(
                            "netclaim vm: guest up (Linux {}) after {:.1} s; timing its clock",
                            rel.trim(),
                            (at - spawned).as_secs_f64()
                        );
                    } else if m == "clock-start" {
                        clock_start = Some(at);
                    } else if let Some(us) = m.strip_prefix("clock-end") {
                        if let (Some(s), Ok(us)) = (clock_start, us.trim().parse::<f64>()) {
                            guest.clock = Some((us / 1000.0, (at - s).as_secs_f64() * 1000.0));
                        }
                    } else if let Some(code) = m.strip_prefix("exit") {
                        guest.exit = code.trim().parse().ok();
                    }
                    continue;
                }
                if args.verbose || (up && !args.quiet) {
                    eprintln!("[vm] {line}");
                } else {
                    tail.push(line);
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !up => {
                kill_group(&mut child);
                for r in readers {
                    let _ = r.join();
                }
                return Ok(Boot::NoGuest(format!(
                    "no sign of it after {} s",
                    boot_deadline.as_secs()
                )));
            }
            Err(_) => break,
        }
    }
    let status = child.wait().context("waiting for vng")?;
    set_child_group(0);
    for r in readers {
        let _ = r.join();
    }
    if !up {
        let said = if tail.is_empty() {
            String::new()
        } else {
            format!("; it said:\n  {}", tail.join("\n  "))
        };
        return Ok(Boot::NoGuest(format!("vng exited with {status}{said}")));
    }
    Ok(Boot::Ran(guest))
}

/// The process group of the running vng (0: none), for the signal thread.
static CHILD_GROUP: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

fn set_child_group(pid: u32) {
    CHILD_GROUP.store(pid as i32, std::sync::atomic::Ordering::SeqCst);
}

fn kill_group(child: &mut Child) {
    let _ = nix::sys::signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
    set_child_group(0);
}

/// SIGINT/SIGTERM: stop the VM (vng, virtme-run and QEMU share one process group).
fn stop_vm(sig: Signal) {
    let group = CHILD_GROUP.load(std::sync::atomic::Ordering::SeqCst);
    if group > 0 {
        let _ = nix::sys::signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
    eprintln!("\nnetclaim vm: {sig}: stopped the VM");
}

/// What `vm.json` (and `"vm"` in report.json) records about the run.
fn vm_facts(
    args: &VmArgs,
    accel: Accel,
    jobs: Option<usize>,
    guest: &Guest,
    report: &serde_json::Value,
    wall: Duration,
) -> serde_json::Value {
    let clock = guest.clock.map(|(g, h)| {
        serde_json::json!({
            "requested_ms": CLOCK_PROBE_S * 1000,
            "guest_ms": round3(g),
            "host_ms": round3(h),
            "guest_overshoot_ms": round3(g - (CLOCK_PROBE_S * 1000) as f64),
            "guest_minus_host_ms": round3(g - h),
        })
    });
    serde_json::json!({
        "kernel_image": args.kernel.display().to_string(),
        "kernel": guest.release,
        "accel": match accel { Accel::Kvm => "kvm", _ => "tcg" },
        "cpus": args.cpus,
        "jobs": jobs,
        "memory": args.memory,
        "clock_probe": clock,
        "timing": report.get("timing").cloned().unwrap_or(serde_json::Value::Null),
        "vm_wall_ms": wall.as_millis() as u64,
        "exit_code": guest.exit,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn summary(vm: &serde_json::Value, accel: Accel) -> String {
    let mut s = format!(
        "netclaim vm: Linux {} under {}",
        vm["kernel"].as_str().unwrap_or("?"),
        accel_name(accel)
    );
    let c = &vm["clock_probe"];
    if c.is_object() {
        s += &format!(
            "\nnetclaim vm: guest clock: `sleep {CLOCK_PROBE_S}` lasted {:.1} ms by the guest's \
             clock (timer overshoot {:+.1} ms) and {:.1} ms by the host's (guest − host \
             {:+.1} ms, includes the serial-line latency)",
            c["guest_ms"].as_f64().unwrap_or(f64::NAN),
            c["guest_overshoot_ms"].as_f64().unwrap_or(f64::NAN),
            c["host_ms"].as_f64().unwrap_or(f64::NAN),
            c["guest_minus_host_ms"].as_f64().unwrap_or(f64::NAN),
        );
    } else {
        s += "\nnetclaim vm: guest clock: not measured (the guest did not report its probe)";
    }
    let t = &vm["timing"];
    if t.is_object() {
        s += &format!(
            "\nnetclaim vm: SYN timers in the guest: worst interval error {:.1} ms of {:.1} ms \
             allowed ({}), {} of {} intervals outside",
            t["worst_error_ms"].as_f64().unwrap_or(f64::NAN),
            t["worst_allowed_ms"].as_f64().unwrap_or(f64::NAN),
            t["worst_at"].as_str().unwrap_or("?"),
            t["outside"],
            t["intervals"],
        );
    }
    s
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying to {}", target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_sh() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn release_from_file_name_when_no_header() {
        let dir = TempDir::new("vm-test").unwrap();
        let k = dir.path().join("vmlinuz-9.9.9-test");
        std::fs::write(&k, b"not a bzImage").unwrap();
        assert_eq!(kernel_release(&k).as_deref(), Some("9.9.9-test"));
    }

    #[test]
    fn release_from_bzimage_header() {
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let v = b"6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        img[0x500..0x500 + v.len()].copy_from_slice(v);
        let dir = TempDir::new("vm-test").unwrap();
        let k = dir.path().join("bzImage");
        std::fs::write(&k, &img).unwrap();
        assert_eq!(kernel_release(&k).as_deref(), Some("6.1.0-56-amd64"));
    }
}
