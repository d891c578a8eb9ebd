//! `netclaim vm` and `netclaim kernels`: run the catalog under other kernels in throwaway
//! VMs, bring their reports back, and (`kernels`) merge them with this machine's into one
//! claims × kernels comparison.
//!
//! virtme-ng (`vng`) boots the kernel image in QEMU with the host's root filesystem shared
//! read-only (copy-on-write overlays in the guest), so the guest runs this very binary and
//! the host's tools. A host directory shared read-write (`--rwdir`) receives the guest's
//! `netclaim run --out`; on success its files are copied to `--out`.
//!
//! Kernels, not machines: the guest gets this machine's memory by default, because the
//! kernel sizes its hash tables and buffer limits from it (tcp_max_syn_backlog,
//! tcp_max_tw_buckets, tcp_ehash_entries, udp_hash_entries, tcp_rmem's maximum), and each
//! report records its machine's memory, build options and sysctl files so that `compare`
//! can say where a differing default comes from.
//!
//! Acceleration: KVM when `/dev/kvm` opens read-write and a guest actually comes up under
//! it (nested KVM can open yet fail or hang in early boot), otherwise TCG software
//! emulation, said on stderr. Under TCG the guest gets a plain CPU model and no default
//! devices, and the drivers of the emulated board are kept from loading: udev's coldplug
//! of them (AHCI, CD-ROM, watchdogs, KVM) took 9 of the 15 s a guest needed to come up.
//! A guest that does not come up is booted once more with its console captured, and the
//! error quotes what the console says.
//!
//! Timing honesty: the guest judges its timing checks with the errors it measures (its
//! own timer lateness and tool start-up, see `netclaim_harness::slowness`); a miss within
//! them is `inconclusive`, never `refuted`. The guest also sleeps [`CLOCK_PROBE_S`] by its
//! own clock while the host times the same interval from its markers; both go into
//! `vm.json` and under `"vm"` in the copied `report.json`.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netclaim_harness::command::which;
use netclaim_harness::tmp::TempDir;
use netclaim_suites::Verdict;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::channel::{ParentArgs, RunEvent, EVENTS_FD};
use crate::compare::Matrix;
use crate::out::errln;
use crate::report::Report;

/// How long the guest sleeps by its own clock while the host times it.
const CLOCK_PROBE_S: u64 = 5;
/// A guest that has not printed its first marker by then under KVM is taken as hung (as
/// nested KVM can be) and the run is retried under TCG. A KVM boot takes a few seconds.
const KVM_BOOT_DEADLINE: Duration = Duration::from_secs(45);
/// Same, under TCG (a boot takes 10–70 s there, depending on the host's load).
const TCG_BOOT_DEADLINE: Duration = Duration::from_secs(300);
/// The file in the shared directory that lets a guest start the claims that need the CPU.
const GO: &str = "go";
/// The guest's TMPDIR, on the tmpfs virtme-ng mounts at /run.
const GUEST_TMP: &str = "/run/netclaim-tmp";
/// The prefix of the guest's marker lines on its stderr.
const MARK: &str = "netclaim-vm:";
/// Claims at once in the guest under TCG, unless --jobs is given; claims that mostly wait
/// on kernel timers do not count (see the runner). Every lab set-up and tool start-up costs
/// emulated CPU time: all 52 at once on 2 emulated CPUs starved tools past their harness
/// deadlines (curl killed after 12 s, nginx not listening after 10 s).
const TCG_DEFAULT_JOBS: usize = 6;
/// QEMU options under TCG: a plain CPU model (no SVM, so no kvm_amd to load) and no
/// default devices (no CD-ROM drive).
const TCG_QEMU_OPTS: &str = "-cpu qemu64,-svm -nodefaults";
/// Drivers of the emulated board that udev would load at boot and netclaim never uses.
/// Modules the claims need (veth, netfilter, 9p, overlay) are not among them.
const BLACKLIST: &[&str] = &[
    "ahci",
    "libahci",
    "libata",
    "ata_piix",
    "ata_generic",
    "floppy",
    "sr_mod",
    "cdrom",
    "sg",
    "scsi_mod",
    "button",
    "evdev",
    "psmouse",
    "serio_raw",
    "pcspkr",
    "i2c_i801",
    "i2c_piix4",
    "i2c_smbus",
    "lpc_ich",
    "i6300esb",
    "iTCO_wdt",
    "iTCO_vendor_support",
    "intel_pmc_bxt",
    "watchdog",
    "kvm",
    "kvm_amd",
    "kvm_intel",
    "ccp",
    "powernow_k8",
    "acpi_cpufreq",
    "qemu_fw_cfg",
];

/// How a guest is set up (shared by `vm` and `kernels`).
#[derive(clap::Args, Clone)]
pub struct GuestArgs {
    /// Guest memory (QEMU syntax; default: this machine's memory, so that the defaults
    /// the kernel scales with memory are those it would have here).
    #[arg(long)]
    memory: Option<String>,
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
    /// No progress from the guests on stderr (the summaries are still printed).
    #[arg(long, short)]
    quiet: bool,
    /// Show the guest kernel's console (boot messages) too.
    #[arg(long, short)]
    verbose: bool,
    /// Include the long tier (as `run --long`): claims that take minutes.
    #[arg(long)]
    long: bool,
}

/// The claim selection of a run with or without the long tier.
fn claim_files(long: bool) -> crate::select::ClaimFiles {
    crate::select::ClaimFiles {
        long,
        ..Default::default()
    }
}

#[derive(clap::Args)]
pub struct VmArgs {
    /// The kernel image to boot: /boot/vmlinuz-RELEASE (its modules must be in
    /// /lib/modules/RELEASE) or a built tree's arch/x86/boot/bzImage.
    #[arg(long, value_name = "PATH")]
    kernel: PathBuf,
    /// Where to put report.json, junit.xml, report.md, timelines/ and vm.json
    /// (default: ./vm-RELEASE); created only when the run succeeds.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Only claims whose id contains one of these (as for `run`).
    filters: Vec<String>,
    #[command(flatten)]
    guest: GuestArgs,
}

#[derive(clap::Args)]
pub struct KernelsArgs {
    /// A kernel image to compare (repeatable; default: every /boot/vmlinuz-*).
    #[arg(long = "kernel", value_name = "PATH")]
    kernels: Vec<PathBuf>,
    /// Leave out this machine's own kernel (run natively, no VM).
    #[arg(long)]
    no_host: bool,
    /// Where to put one directory per kernel (host/, RELEASE/) and comparison.md, .html
    /// and .txt.
    #[arg(long, value_name = "DIR", default_value = "kernels")]
    out: PathBuf,
    /// How runs overlap: `staggered` boots the VMs once this machine's run is past its
    /// CPU-heavy start, lets each start its long claims (which wait on kernel timers) at
    /// once, and runs their CPU-heavy claims one VM after another; `sequential` runs one
    /// after the other; `all` runs everything at once.
    #[arg(long, value_enum, default_value_t = Overlap::Staggered)]
    overlap: Overlap,
    /// Only claims whose id contains one of these (as for `run`).
    filters: Vec<String>,
    #[command(flatten)]
    guest: GuestArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Accel {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Overlap {
    Staggered,
    Sequential,
    All,
}

/// What one boot attempt produced.
enum Boot {
    /// The guest came up and ran the command.
    Ran(Guest),
    /// The guest never printed its first marker: why, and the end of its console.
    NoGuest(NoGuest),
}

struct NoGuest {
    why: String,
    console: Vec<String>,
}

/// What the guest said on its marker lines, with host timestamps.
#[derive(Default)]
struct Guest {
    release: Option<String>,
    /// From spawning vng to the guest's first marker.
    boot: Duration,
    /// (guest-clock ms, host-clock ms) for a sleep of CLOCK_PROBE_S by the guest clock.
    clock: Option<(f64, f64)>,
    /// `netclaim run`'s exit status in the guest.
    exit: Option<u8>,
    /// From the first marker (the catalog's start) to the run's exit marker.
    catalog: Option<Duration>,
}

/// The accelerator for the next boot, shared by the VMs of one command: once KVM failed to
/// bring a guest up, the others go straight to TCG.
struct AccelState {
    asked: Accel,
    current: Mutex<Accel>,
}

impl AccelState {
    fn new(asked: Accel) -> Result<Self> {
        let current = match (asked, kvm_usable()) {
            (Accel::Tcg, _) => Accel::Tcg,
            (Accel::Kvm, Err(why)) => bail!("--accel kvm, but {why}"),
            (_, Ok(())) => Accel::Kvm,
            (Accel::Auto, Err(why)) => {
                errln!(
                    "netclaim vm: {why}: using TCG software emulation (slower; timing checks \
                     carry the guest's measured error)"
                );
                Accel::Tcg
            }
        };
        Ok(Self {
            asked,
            current: Mutex::new(current),
        })
    }

    fn get(&self) -> Accel {
        *self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fall_back_to_tcg(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Accel::Tcg;
    }
}

/// One VM to run.
struct VmJob {
    kernel: PathBuf,
    release: Option<String>,
    /// Prefix of its output lines.
    tag: String,
    out: PathBuf,
    filters: Vec<String>,
    guest: GuestArgs,
    memory: String,
    exe: PathBuf,
    vng: PathBuf,
}

/// Progress of a run (a VM or the host), for the scheduler of `kernels`.
enum Event {
    /// Only claims that wait on kernel timers are left: the next run may start.
    Waiting(usize),
    /// A gated run's waiting claims are under way: its CPU went quiet (see [`Settle`]).
    Settled(usize),
    /// The run ended.
    Done(usize, Result<u8>),
}

impl Event {
    /// What run `index`'s event means to the scheduler.
    fn of_run(index: usize, e: RunEvent) -> Self {
        match e {
            RunEvent::OnlyWaitingLeft => Self::Waiting(index),
            RunEvent::Settled => Self::Settled(index),
        }
    }
}

pub fn run(args: VmArgs) -> Result<u8> {
    // Bad input first, before booting anything or creating anything.
    let kernel = check_kernel(&args.kernel)?;
    crate::select::select(&args.filters, &claim_files(args.guest.long))?;
    let release = kernel_release(&kernel);
    let out = match &args.out {
        Some(o) => o.clone(),
        None => PathBuf::from(format!("vm-{}", release.as_deref().unwrap_or("kernel"))),
    };
    check_out(&out)?;
    let vng = find_vng()?;
    warn_without_modules(&kernel, release.as_deref());
    let exe = std::env::current_exe().context("locating the netclaim binary")?;
    let accel = AccelState::new(args.guest.accel)?;
    crate::interrupt::on_interrupt(stop_all)?;
    let job = VmJob {
        kernel,
        release,
        tag: "vm".into(),
        out,
        filters: args.filters,
        memory: memory_arg(&args.guest),
        guest: args.guest,
        exe,
        vng,
    };
    let (tx, _rx) = mpsc::channel();
    let stage = TempDir::new("vm").context("creating the directory shared with the VM")?;
    std::fs::write(stage.path().join(GO), b"").context("releasing the guest's catalog")?;
    match run_vm(&job, stage.path(), &accel, 0, &tx) {
        Ok(code) => Ok(code),
        Err(e) => {
            errln!("netclaim vm: error: {e:#}");
            Ok(crate::exit::ERROR)
        }
    }
}

/// `netclaim kernels`: this machine and every kernel given, each in its own VM, then one
/// comparison.
pub fn kernels(args: KernelsArgs) -> Result<u8> {
    let images = if args.kernels.is_empty() {
        let found = netclaim_harness::kernel::boot_images();
        if found.is_empty() && args.no_host {
            bail!(
                "no kernel to run: /boot has no vmlinuz-* and --no-host leaves out this \
                 machine's: run scripts/install-vm-tools or pass --kernel PATH"
            );
        }
        found
    } else {
        args.kernels.clone()
    };
    let images = images
        .iter()
        .map(|k| check_kernel(k))
        .collect::<Result<Vec<_>>>()?;
    crate::select::select(&args.filters, &claim_files(args.guest.long))?;
    check_out(&args.out)?;
    let vng = if images.is_empty() {
        PathBuf::new()
    } else {
        find_vng()?
    };
    let exe = std::env::current_exe().context("locating the netclaim binary")?;
    let memory = memory_arg(&args.guest);
    let mut jobs = Vec::new();
    for (i, kernel) in images.into_iter().enumerate() {
        let release = kernel_release(&kernel);
        warn_without_modules(&kernel, release.as_deref());
        let name = release
            .clone()
            .unwrap_or_else(|| format!("kernel-{}", i + 1));
        jobs.push(VmJob {
            out: args.out.join(&name),
            tag: name,
            kernel,
            release,
            filters: args.filters.clone(),
            guest: args.guest.clone(),
            memory: memory.clone(),
            exe: exe.clone(),
            vng: vng.clone(),
        });
    }
    let accel = if jobs.is_empty() {
        None
    } else {
        Some(AccelState::new(args.guest.accel)?)
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating --out directory {}", args.out.display()))?;
    crate::interrupt::on_interrupt(stop_all)?;
    let started = Instant::now();

    // Runs in order: the host first (its CPU-heavy start is short), then each VM. Each
    // run reports when only claims waiting on kernel timers are left. Staggered: the VMs
    // boot once the host's start is over and start their long claims at once (the CPU
    // work of a boot or a lab's set-up costs no accuracy); each VM's claims that need
    // the CPU start when the previous run's are done. Sequential: one run after the
    // other. All: everything at once.
    let host = (!args.no_host).then(|| args.out.join("host"));
    let offset = usize::from(host.is_some());
    let total = jobs.len() + offset;
    let stages = jobs
        .iter()
        .map(|_| TempDir::new("vm").context("creating a directory shared with a VM"))
        .collect::<Result<Vec<_>>>()?;
    let release = |k: usize| {
        if let Some(stage) = stages.get(k) {
            let _ = std::fs::write(stage.path().join(GO), b"");
        }
    };
    let (tx, rx) = mpsc::channel::<Event>();
    let mut results: Vec<Option<Result<u8>>> = (0..total).map(|_| None).collect();
    std::thread::scope(|s| {
        let start = |i: usize| {
            let tx = tx.clone();
            let host = host.clone();
            let (jobs, stages) = (&jobs, &stages);
            let accel = accel.as_ref();
            let filters = &args.filters;
            let guest = &args.guest;
            let exe = &exe;
            s.spawn(move || {
                let r = match (&host, i) {
                    (Some(dir), 0) => run_host(exe, dir, filters, guest, i, &tx),
                    _ => match accel {
                        Some(a) => run_vm(&jobs[i - offset], stages[i - offset].path(), a, i, &tx),
                        None => Err(anyhow::anyhow!("no accelerator state")),
                    },
                };
                let _ = tx.send(Event::Done(i, r));
            });
        };
        let mut booted = vec![false; total];
        let mut boot = |i: usize| {
            if i < total && !booted[i] {
                booted[i] = true;
                start(i);
            }
        };
        if host.is_some() {
            boot(0);
        }
        // Staggered: the first VM's CPU-heavy claims start once every VM has booted and
        // settled (its long claims under way), at the latest `SETTLE_AT_MOST` after the
        // boots began.
        let mut settled = vec![false; total];
        let mut first_released = false;
        let mut boots_began: Option<Instant> = None;
        match (args.overlap, host.is_some()) {
            (Overlap::All, _) => (0..jobs.len()).for_each(|k| {
                release(k);
                boot(k + offset)
            }),
            (Overlap::Staggered, false) => {
                boots_began = Some(Instant::now());
                (0..total).for_each(&mut boot)
            }
            (Overlap::Sequential, false) => {
                release(0);
                boot(0)
            }
            _ => {}
        }
        let mut done = 0;
        let mut moved_on = vec![false; total];
        while done < total {
            let event = rx.recv_timeout(Duration::from_secs(1));
            let i = match event {
                Ok(Event::Waiting(i)) => Some(i),
                Ok(Event::Settled(i)) => {
                    settled[i] = true;
                    None
                }
                Ok(Event::Done(i, r)) => {
                    done += 1;
                    settled[i] = true;
                    results[i] = Some(r);
                    Some(i)
                }
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if args.overlap == Overlap::Staggered && !first_released {
                if let Some(began) = boots_began {
                    if settled[offset..].iter().all(|s| *s) || began.elapsed() >= SETTLE_AT_MOST {
                        first_released = true;
                        release(0);
                    }
                }
            }
            let Some(i) = i else { continue };
            // The next run may go once this one's start is over (staggered) or once it
            // ended (sequential); each run moves the schedule on once.
            let ended = results[i].is_some();
            if moved_on[i] || (args.overlap == Overlap::Sequential && !ended) {
                continue;
            }
            moved_on[i] = true;
            match args.overlap {
                Overlap::Staggered => {
                    if i == 0 && host.is_some() {
                        boots_began = Some(Instant::now());
                        (offset..total).for_each(&mut boot);
                    } else {
                        release(i + 1 - offset);
                    }
                }
                Overlap::Sequential => {
                    release(i + 1 - offset);
                    boot(i + 1);
                }
                Overlap::All => {}
            }
        }
    });
    let wall = started.elapsed();

    // Merge what came back.
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    if let Some(h) = &host {
        dirs.push(("this machine".into(), h.clone()));
    }
    for j in &jobs {
        dirs.push((format!("VM, {}", j.tag), j.out.clone()));
    }
    let mut failed = 0;
    let mut reports = Vec::new();
    let mut labels = Vec::new();
    for ((label, dir), r) in dirs.iter().zip(&results) {
        match r {
            Some(Ok(_)) => match Report::load(&dir.join("report.json")) {
                Ok(rep) => {
                    let accel = vm_accel(&dir.join("vm.json"));
                    labels.push(match accel {
                        Some(a) => format!("VM, {a}"),
                        None => label.clone(),
                    });
                    reports.push(rep);
                }
                Err(e) => {
                    failed += 1;
                    errln!("netclaim kernels: {label}: {e:#}");
                }
            },
            Some(Err(e)) => {
                failed += 1;
                errln!("netclaim kernels: {label}: error: {e:#}");
            }
            None => {
                failed += 1;
                errln!("netclaim kernels: {label}: did not run");
            }
        }
    }
    if reports.is_empty() {
        errln!("netclaim kernels: no run produced a report");
        return Ok(crate::exit::ERROR);
    }
    let matrix = Matrix::new(&reports, &labels);
    let write = |name: &str, text: &str| -> Result<()> {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    let heading = comparison_heading(&reports, &labels, wall);
    write(
        "comparison.md",
        &format!("{heading}\n\n{}", matrix.markdown()),
    )?;
    write("comparison.html", &matrix.html())?;
    write(
        "comparison.txt",
        &format!("{heading}\n{}\n", matrix.table(false, false)),
    )?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    crate::out::table(tty, |color| matrix.table(color, false));
    errln!("netclaim kernels: {heading}");
    errln!(
        "netclaim kernels: wrote comparison.md, comparison.html and comparison.txt to {}",
        args.out.display()
    );
    // The kernels differing is the expected outcome, not drift.
    Ok(crate::exit::of_run(
        reports
            .iter()
            .flat_map(|r| r.claims.iter().map(|c| c.verdict)),
        failed > 0,
        false,
    ))
}

/// "3 kernels (…) in 3 m 12 s on this machine (2 CPUs); inconclusive: 0, 1, 0".
fn comparison_heading(reports: &[Report], labels: &[String], wall: Duration) -> String {
    let cols: Vec<String> = reports
        .iter()
        .zip(labels)
        .map(|(r, l)| {
            let inconclusive = r
                .claims
                .iter()
                .filter(|c| c.verdict == Verdict::Inconclusive)
                .count();
            format!(
                "Linux {} ({l}): {} claims in {:.0} s, {inconclusive} inconclusive",
                r.kernel,
                r.claims.len(),
                r.wall_ms as f64 / 1000.0
            )
        })
        .collect();
    format!(
        "{} kernels side by side in {} m {:02} s on a machine with {} CPUs: {}",
        reports.len(),
        wall.as_secs() / 60,
        wall.as_secs() % 60,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cols.join("; ")
    )
}

/// The accelerator a VM report ran under ("TCG", "KVM"), from its vm.json.
fn vm_accel(vm_json: &Path) -> Option<String> {
    let text = netclaim_suites::input::read_bytes(vm_json, netclaim_suites::input::REPORT_CAP);
    let v: serde_json::Value = serde_json::from_slice(&text.ok()?).ok()?;
    Some(v["accel"].as_str()?.to_uppercase())
}

/// The guest memory: --memory, else this machine's (MemTotal, in MiB).
fn memory_arg(g: &GuestArgs) -> String {
    g.memory.clone().unwrap_or_else(|| {
        netclaim_harness::kernel::memory_kib()
            .map_or_else(|| "2G".into(), |kib| format!("{}M", kib / 1024))
    })
}

/// `vng` on PATH (or in the venv scripts/install-vm-tools makes).
fn find_vng() -> Result<PathBuf> {
    which("vng")
        .or_else(|| which("/opt/netclaim-vm/bin/vng"))
        .context(
            "virtme-ng's `vng` is not installed (not on PATH nor in /opt/netclaim-vm): run \
             scripts/install-vm-tools (installs qemu-system-x86, virtme-ng and Debian's kernels)",
        )
}

/// The setup header's magic of an x86 boot image (`HdrS` at offset 0x202).
const BZIMAGE_MAGIC_AT: usize = 0x202;

/// Checks that `kernel` is a readable x86 kernel image (a bzImage), or a built tree that
/// holds one, before anything boots; returns the image's path.
fn check_kernel(kernel: &Path) -> Result<PathBuf> {
    let image = if kernel.is_dir() {
        let built = kernel.join("arch/x86/boot/bzImage");
        if !built.is_file() {
            bail!(
                "{} is a directory without arch/x86/boot/bzImage: pass a kernel image \
                 (/boot/vmlinuz-RELEASE) or a built kernel tree",
                kernel.display()
            );
        }
        built
    } else {
        kernel.to_owned()
    };
    if !image.exists() {
        let found: Vec<String> = netclaim_harness::kernel::boot_images()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if found.is_empty() {
            bail!(
                "no kernel image at {}, and /boot has no vmlinuz-*: run \
                 scripts/install-vm-tools (installs Debian's kernels) or pass a built tree's \
                 arch/x86/boot/bzImage",
                image.display()
            )
        }
        bail!(
            "no kernel image at {}; installed kernels: {}",
            image.display(),
            found.join(", ")
        );
    }
    let mut f = std::fs::File::open(&image).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the kernel image {} ({e}): distribution kernels are mode 0600, run as \
             root or `chmod a+r` it",
            image.display()
        )
    })?;
    let mut head = vec![0u8; BZIMAGE_MAGIC_AT + 4];
    let n = read_up_to(&mut f, &mut head)
        .with_context(|| format!("reading the kernel image {}", image.display()))?;
    if n < head.len() || &head[BZIMAGE_MAGIC_AT..] != b"HdrS" {
        bail!(
            "{} is not a Linux kernel image (no x86 boot header: \"HdrS\" at offset 0x202): \
             pass /boot/vmlinuz-RELEASE or a built tree's arch/x86/boot/bzImage",
            image.display()
        );
    }
    Ok(image)
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Checks that `--out` can be created or written, without creating it.
fn check_out(dir: &Path) -> Result<()> {
    let writable = |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok();
    if dir.exists() {
        if !dir.is_dir() || !writable(dir) {
            bail!(
                "--out {} is not a writable directory: choose a writable directory",
                dir.display()
            );
        }
        return Ok(());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    // The nearest existing ancestor must take new directories.
    let existing = parent.ancestors().find(|a| a.exists()).map(Path::to_owned);
    match existing {
        Some(a) if a.is_dir() && writable(&a) => Ok(()),
        _ => bail!(
            "cannot create --out directory {}: choose a writable directory",
            dir.display()
        ),
    }
}

fn warn_without_modules(kernel: &Path, release: Option<&str>) {
    if let Some(rel) = release {
        if !Path::new("/lib/modules").join(rel).is_dir() && !kernel.ends_with("bzImage") {
            errln!(
                "netclaim vm: warning: no /lib/modules/{rel}: the guest may lack the virtio, 9p \
                 and netfilter modules (install the kernel's package, not just its image)"
            );
        }
    }
}

/// The release string of a bzImage (its setup header points at "6.1.0-56-amd64 (...)"),
/// else what follows `vmlinuz-` in the file name.
fn kernel_release(kernel: &Path) -> Option<String> {
    let from_header = (|| {
        let mut head = vec![0u8; 0x8000];
        let mut f = std::fs::File::open(kernel).ok()?;
        let n = read_up_to(&mut f, &mut head).ok()?;
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

/// The `netclaim run` command line for `out`, its events on [`EVENTS_FD`] and, with a
/// `gate`, its claims that need the CPU held until the gate's file exists.
fn run_command(
    exe: &Path,
    out: &Path,
    jobs: Option<usize>,
    long: bool,
    filters: &[String],
    gate: Option<&Path>,
) -> Vec<String> {
    let mut run = vec![
        exe.display().to_string(),
        "run".into(),
        "--format".into(),
        "json".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    if let Some(j) = jobs {
        run.push(format!("--jobs={j}"));
    }
    if long {
        run.push("--long".into());
    }
    run.extend(ParentArgs::argv(gate));
    if !filters.is_empty() {
        run.push("--".into());
        run.extend(filters.iter().cloned());
    }
    run
}

/// The shell command the guest runs: its release, the clock probe beside the catalog,
/// then the catalog's exit status.
fn guest_script(
    exe: &Path,
    stage: &Path,
    jobs: Option<usize>,
    long: bool,
    filters: &[String],
) -> String {
    let go = stage.join(GO);
    let run: Vec<String> = run_command(exe, stage, jobs, long, filters, Some(&go))
        .iter()
        .map(|a| sh_quote(a))
        .collect();
    // The guest's temporary files go to its own tmpfs: its /tmp shows the host's (an
    // overlay), where its sweep of stale netclaim entries would see the host's, this
    // shared directory among them, without the host's locks (9p does not carry them).
    // The claims that wait on kernel timers start at once; the others, which need the
    // CPU, when the host creates `go` in the shared directory (`run --busy-gate`):
    // several VMs may start their long claims together, then take turns. The console is
    // the run's only way to the host: its events go there too. The guest's kernel is the
    // VM's own and thrown away with it, so it may load the TUN module the claims over a
    // wire need (its /dev/net/tun appears with it); on the host netclaim loads none.
    format!(
        "echo \"{MARK} up $(uname -r)\" >&2; \
         modprobe -q tun 2>/dev/null; \
         mkdir -p {GUEST_TMP} && export TMPDIR={GUEST_TMP}; \
         ( t0=$(date +%s%N); echo \"{MARK} clock-start\" >&2; sleep {CLOCK_PROBE_S}; \
         t1=$(date +%s%N); echo \"{MARK} clock-end $(( (t1 - t0) / 1000 ))\" >&2 ) & \
         {} {EVENTS_FD}>&2 >/dev/null; echo \"{MARK} exit $?\" >&2; wait",
        run.join(" "),
    )
}

/// Process groups of the running VMs and host run, for the signal thread.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn register(pid: u32) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(pid as i32);
}

fn unregister(pid: u32) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|g| *g != pid as i32);
}

fn kill_group(child: &mut Child) {
    let _ = nix::sys::signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
    unregister(child.id());
}

/// SIGINT/SIGTERM/SIGHUP: stop every VM (vng, virtme-run and QEMU share one process
/// group) and the host run; the signal thread then removes this process's shared
/// directories.
fn stop_all(sig: Signal) {
    let groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for g in &groups {
        let _ = nix::sys::signal::killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    errln!(
        "\nnetclaim vm: {sig}: stopped {} VM(s) or run(s)",
        groups.len()
    );
}

/// How long after the VMs began to boot the first one's CPU-heavy claims start even if
/// not every VM has settled (a slow or failed boot).
const SETTLE_AT_MOST: Duration = Duration::from_secs(90);

/// This machine's own run, natively, as a child `netclaim run`.
fn run_host(
    exe: &Path,
    out: &Path,
    filters: &[String],
    guest: &GuestArgs,
    index: usize,
    events: &mpsc::Sender<Event>,
) -> Result<u8> {
    let argv = run_command(exe, out, None, guest.long, filters, None);
    errln!(
        "netclaim kernels: running the catalog on this machine (Linux {}) natively",
        netclaim_harness::kernel::release()
    );
    // The run's events come down a pipe of their own (close-on-exec here, so no other
    // child holds it open), joined to EVENTS_FD in the child.
    let (from_run, to_parent) =
        crate::channel::pipe().context("creating the host run's event pipe")?;
    let to_parent_fd = to_parent.as_raw_fd();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: between fork and exec the closure calls only dup2 and fcntl, which are
    // async-signal-safe, and allocates nothing. fcntl clears close-on-exec also when the
    // pipe's end already is EVENTS_FD (dup2 onto itself leaves the flag as it was).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(to_parent_fd, EVENTS_FD) < 0
                || libc::fcntl(EVENTS_FD, libc::F_SETFD, 0) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // The child has its copy: the pipe ends when the run does.
    drop(to_parent);
    let mut child = spawned.with_context(|| format!("starting {}", argv.join(" ")))?;
    register(child.id());
    let listener = {
        let events = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from_run).lines().map_while(|l| l.ok()) {
                if let Some(e) = RunEvent::parse(&line) {
                    let _ = events.send(Event::of_run(index, e));
                }
            }
        })
    };
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            if !guest.quiet {
                errln!("[host] {line}");
            }
        }
    }
    let status = child.wait().context("waiting for the host run")?;
    unregister(child.id());
    let _ = listener.join();
    let code = status.code().map_or(crate::exit::ERROR, |c| c as u8);
    if !out.join("report.json").is_file() {
        bail!("the run on this machine exited {status} without writing report.json");
    }
    Ok(code)
}

/// Boots `job`'s kernel (retrying as documented), runs the catalog in it (the claims that
/// need the CPU once `go` is in `stage`, the directory shared with it, fresh, so that
/// `--out` only gets complete results), and copies its results to `job.out`; returns the
/// guest run's exit code.
fn run_vm(
    job: &VmJob,
    stage: &Path,
    accel: &AccelState,
    index: usize,
    events: &mpsc::Sender<Event>,
) -> Result<u8> {
    let started = Instant::now();
    let mut attempts: Vec<serde_json::Value> = Vec::new();
    let mut tcg_failures: Vec<NoGuest> = Vec::new();
    let (guest, used) = loop {
        let a = accel.get();
        errln!(
            "netclaim vm: [{}] booting {} under {} ({} CPU(s), {} memory)",
            job.tag,
            job.kernel.display(),
            accel_name(a),
            job.guest.cpus,
            job.memory,
        );
        let jobs = job
            .guest
            .jobs
            .or((a == Accel::Tcg).then_some(TCG_DEFAULT_JOBS));
        let script = guest_script(&job.exe, stage, jobs, job.guest.long, &job.filters);
        match boot(job, a, stage, &script, index, events)? {
            Boot::Ran(g) => {
                attempts.push(serde_json::json!({"accel": accel_key(a), "up_s": round3(g.boot.as_secs_f64())}));
                break (g, a);
            }
            Boot::NoGuest(f) => {
                attempts.push(serde_json::json!({"accel": accel_key(a), "failed": f.why}));
                if a == Accel::Kvm && accel.asked == Accel::Auto {
                    errln!(
                        "netclaim vm: [{}] the guest did not come up under KVM ({}); retrying \
                         under TCG software emulation",
                        job.tag,
                        f.why
                    );
                    accel.fall_back_to_tcg();
                    continue;
                }
                tcg_failures.push(f);
                if tcg_failures.len() == 1 {
                    errln!(
                        "netclaim vm: [{}] the guest did not come up under {}: {}; booting it \
                         once more (its console is captured)",
                        job.tag,
                        accel_name(a),
                        tcg_failures[0].why
                    );
                    continue;
                }
                bail!(boot_failure(job, a, &tcg_failures));
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
    // The guest wrote it: as untrusted as any report (a regular file, at most REPORT_CAP).
    let mut report: serde_json::Value = serde_json::from_slice(
        &netclaim_suites::input::read_bytes(&report_path, netclaim_suites::input::REPORT_CAP)
            .context("reading the guest's report.json")?,
    )
    .context("the guest's report.json is not JSON")?;
    let vm = vm_facts(job, used, &guest, &report, &attempts, started.elapsed());
    errln!("{}", summary(&job.tag, &vm, used));
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
    copy_dir(stage, &job.out)
        .with_context(|| format!("copying the guest's results to {}", job.out.display()))?;
    errln!(
        "netclaim vm: [{}] wrote report.json, recording.json, vm.json, junit.xml, report.md and timelines/ to {}",
        job.tag,
        job.out.display()
    );
    Ok(code)
}

fn accel_key(a: Accel) -> &'static str {
    match a {
        Accel::Kvm => "kvm",
        _ => "tcg",
    }
}

/// The error for a guest that did not come up twice: both reasons, what its console says,
/// and what to do.
fn boot_failure(job: &VmJob, a: Accel, failures: &[NoGuest]) -> String {
    let last = failures.last().map(|f| f.console.as_slice()).unwrap_or(&[]);
    let diagnosis = diagnose(last);
    let mods = match &job.release {
        Some(rel) if !Path::new("/lib/modules").join(rel).is_dir() => format!(
            " /lib/modules/{rel} is missing: install the kernel's package (its modules), not \
             just its image."
        ),
        _ => String::new(),
    };
    let kvm = if a == Accel::Kvm {
        " --accel tcg avoids KVM."
    } else {
        ""
    };
    format!(
        "the guest did not come up under {} in {} tries: {}.\n{diagnosis}\nlast console \
         lines:\n  {}\nWhat to do: rerun the command (a host under heavy load can delay a TCG \
         boot past its deadline); if it fails again, try --memory 2G or --cpus 1, and rerun \
         with --verbose to watch the whole console.{mods}{kvm}",
        accel_name(a),
        failures.len(),
        failures
            .iter()
            .map(|f| f.why.as_str())
            .collect::<Vec<_>>()
            .join("; then "),
        last.iter()
            .rev()
            .take(15)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    )
}

/// The console line that says why a guest stopped, if it says.
fn diagnose(console: &[String]) -> String {
    const SIGNS: &[&str] = &[
        "Kernel panic",
        "not syncing",
        "BUG:",
        "Oops",
        "general protection fault",
        "qemu-system",
        "Assertion",
        "VFS:",
        "No working init",
        "virtme-init: cannot",
        "failed to",
        "Failed to",
        "can't",
        "cannot",
    ];
    let hit = SIGNS
        .iter()
        .find_map(|s| console.iter().find(|l| l.contains(s)));
    let milestone = console.iter().rev().find(|l| {
        [
            "Run /init",
            "switching to real root",
            "virtme-ng-init:",
            "Linux version",
        ]
        .iter()
        .any(|m| l.contains(m))
    });
    match (hit, milestone, console.last()) {
        (Some(h), _, _) => format!("The console says: {}", h.trim()),
        (None, Some(m), _) => format!(
            "The console shows no error; the last boot step it reached: {}",
            m.trim()
        ),
        (None, None, Some(last)) => format!(
            "The console shows no error and stops before the kernel's first message, at: {}",
            last.trim()
        ),
        (None, None, None) => "The console is empty: QEMU did not start the kernel".into(),
    }
}

/// Whether a line is the guest kernel's console (`[   12.345678] …`) rather than output.
fn is_console(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('[')
        && t[1..]
            .split(']')
            .next()
            .is_some_and(|n| n.trim().parse::<f64>().is_ok())
}

/// One boot: spawns vng in its own process group, streams the guest's output, and kills
/// the group when the guest does not come up in time.
fn boot(
    job: &VmJob,
    accel: Accel,
    stage: &Path,
    script: &str,
    index: usize,
    events: &mpsc::Sender<Event>,
) -> Result<Boot> {
    let mut cmd = Command::new(&job.vng);
    cmd.arg("--run")
        .arg(&job.kernel)
        .arg("--memory")
        .arg(&job.memory)
        .arg("--cpus")
        .arg(job.guest.cpus.to_string())
        .arg(format!("--rwdir={}", stage.display()))
        // virtiofsd is not used: vng would wait 3 s for it to start before taking 9p.
        .arg("--force-9p")
        .arg(format!(
            "--append=modprobe.blacklist={}",
            BLACKLIST.join(",")
        ))
        // The console, kept to say why a guest did not come up; shown with --verbose.
        .arg("--verbose")
        .arg("--exec")
        .arg(script);
    if accel == Accel::Tcg {
        cmd.arg("--disable-kvm")
            .arg(format!("--qemu-opts={TCG_QEMU_OPTS}"));
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", job.vng.display()))?;
    register(child.id());

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
    let mut up_at: Option<Instant> = None;
    let mut clock_start: Option<Instant> = None;
    let mut console: Vec<String> = Vec::new();
    loop {
        let wait = if up_at.is_some() {
            Duration::from_secs(3600)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok((at, line)) => {
                if let Some(e) = RunEvent::parse(&line) {
                    let _ = events.send(Event::of_run(index, e));
                    continue;
                }
                if let Some(m) = line.trim().strip_prefix(MARK) {
                    let m = m.trim();
                    if let Some(rel) = m.strip_prefix("up") {
                        up_at = Some(at);
                        guest.boot = at - spawned;
                        guest.release = Some(rel.trim().to_owned());
                        errln!(
                            "netclaim vm: [{}] guest up (Linux {}) after {:.1} s",
                            job.tag,
                            rel.trim(),
                            guest.boot.as_secs_f64()
                        );
                    } else if m == "clock-start" {
                        clock_start = Some(at);
                    } else if let Some(us) = m.strip_prefix("clock-end") {
                        if let (Some(s), Ok(us)) = (clock_start, us.trim().parse::<f64>()) {
                            guest.clock = Some((us / 1000.0, (at - s).as_secs_f64() * 1000.0));
                        }
                    } else if let Some(code) = m.strip_prefix("exit") {
                        guest.exit = code.trim().parse().ok();
                        guest.catalog = up_at.map(|u| at - u);
                    }
                    continue;
                }
                let kernel_line = is_console(&line) || up_at.is_none();
                if kernel_line {
                    console.push(line.clone());
                    if console.len() > 400 {
                        console.remove(0);
                    }
                }
                let show = if kernel_line {
                    job.guest.verbose
                } else {
                    !job.guest.quiet
                };
                if show {
                    errln!("[{}] {line}", job.tag);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if up_at.is_none() => {
                kill_group(&mut child);
                for r in readers {
                    let _ = r.join();
                }
                return Ok(Boot::NoGuest(NoGuest {
                    why: format!("no sign of it after {} s", boot_deadline.as_secs()),
                    console,
                }));
            }
            Err(_) => break,
        }
    }
    let status = child.wait().context("waiting for vng")?;
    unregister(child.id());
    for r in readers {
        let _ = r.join();
    }
    if up_at.is_none() {
        return Ok(Boot::NoGuest(NoGuest {
            why: format!(
                "vng exited with {status} before the guest ran anything{}",
                if status.code() == Some(255) {
                    " (255: QEMU ended without the guest's exit status: a crash, a panic or \
                     a failed init)"
                } else {
                    ""
                }
            ),
            console,
        }));
    }
    Ok(Boot::Ran(guest))
}

/// What `vm.json` (and `"vm"` in report.json) records about the run.
fn vm_facts(
    job: &VmJob,
    accel: Accel,
    guest: &Guest,
    report: &serde_json::Value,
    attempts: &[serde_json::Value],
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
        "kernel_image": job.kernel.display().to_string(),
        "kernel": guest.release,
        "accel": accel_key(accel),
        "cpus": job.guest.cpus,
        "jobs": job.guest.jobs.or((accel == Accel::Tcg).then_some(TCG_DEFAULT_JOBS)),
        "memory": job.memory,
        "memory_from": if job.guest.memory.is_some() { "--memory" } else { "this machine's MemTotal" },
        "qemu_opts": (accel == Accel::Tcg).then_some(TCG_QEMU_OPTS),
        "boot_attempts": attempts,
        "up_after_s": round3(guest.boot.as_secs_f64()),
        "catalog_s": guest.catalog.map(|d| round3(d.as_secs_f64())),
        "clock_probe": clock,
        "timing": report.get("timing").cloned().unwrap_or(serde_json::Value::Null),
        "slowness": report.get("slowness").cloned().unwrap_or(serde_json::Value::Null),
        "vm_wall_ms": wall.as_millis() as u64,
        "exit_code": guest.exit,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn summary(tag: &str, vm: &serde_json::Value, accel: Accel) -> String {
    let mut s = format!(
        "netclaim vm: [{tag}] Linux {} under {}: up after {:.1} s, catalog {:.1} s",
        vm["kernel"].as_str().unwrap_or("?"),
        accel_name(accel),
        vm["up_after_s"].as_f64().unwrap_or(f64::NAN),
        vm["catalog_s"].as_f64().unwrap_or(f64::NAN),
    );
    let c = &vm["clock_probe"];
    if c.is_object() {
        s += &format!(
            "\nnetclaim vm: [{tag}] guest clock: `sleep {CLOCK_PROBE_S}` (beside the catalog) \
             lasted {:.1} ms by the guest's clock and {:.1} ms by the host's (guest − host \
             {:+.1} ms, includes the serial-line latency)",
            c["guest_ms"].as_f64().unwrap_or(f64::NAN),
            c["host_ms"].as_f64().unwrap_or(f64::NAN),
            c["guest_minus_host_ms"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let w = &vm["slowness"];
    if w.is_object() {
        s += &format!(
            "\nnetclaim vm: [{tag}] guest timers: median {:.1} ms late, worst {:.1} ms; {} \
             timing check(s) inconclusive (missed by less than the measured error)",
            w["median_late_ms"].as_f64().unwrap_or(f64::NAN),
            w["worst_late_ms"].as_f64().unwrap_or(f64::NAN),
            w["inconclusive_checks"],
        );
    }
    let t = &vm["timing"];
    if t.is_object() {
        s += &format!(
            "\nnetclaim vm: [{tag}] SYN timers in the guest: worst interval error {:.1} ms of \
             {:.1} ms allowed ({}), {} of {} intervals outside",
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

    fn bzimage(dir: &Path) -> PathBuf {
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let v = b"6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        img[0x500..0x500 + v.len()].copy_from_slice(v);
        let k = dir.join("bzImage");
        std::fs::write(&k, &img).unwrap();
        k
    }

    #[test]
    fn release_from_bzimage_header() {
        let dir = TempDir::new("vm-test").unwrap();
        assert_eq!(
            kernel_release(&bzimage(dir.path())).as_deref(),
            Some("6.1.0-56-amd64")
        );
    }

    // Issue 10 item 8: a file that is not a kernel image is bad input, found before boot.
    #[test]
    fn only_a_bzimage_passes_the_kernel_check() {
        let dir = TempDir::new("vm-test").unwrap();
        let text = dir.path().join("passwd");
        std::fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let e = check_kernel(&text).unwrap_err().to_string();
        assert!(e.contains("is not a Linux kernel image"), "{e}");
        let short = dir.path().join("short");
        std::fs::write(&short, b"HdrS").unwrap();
        assert!(check_kernel(&short).is_err());
        let k = bzimage(dir.path());
        assert_eq!(check_kernel(&k).unwrap(), k);
        // A directory is a built tree only with arch/x86/boot/bzImage in it.
        assert!(check_kernel(dir.path())
            .unwrap_err()
            .to_string()
            .contains("without arch/x86/boot/bzImage"));
    }

    #[test]
    fn out_is_checked_without_being_created() {
        let dir = TempDir::new("vm-test").unwrap();
        let new = dir.path().join("a/b/out");
        check_out(&new).unwrap();
        assert!(!new.exists());
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(check_out(&file).is_err());
        assert!(check_out(&file.join("sub")).is_err());
    }

    // The guest's run had its busy gate from an environment variable and told the host
    // through a fixed stderr line; now both are `run` options.
    #[test]
    fn the_guest_run_gets_its_gate_and_sends_its_events_to_the_console() {
        let script = guest_script(
            Path::new("/usr/bin/netclaim"),
            Path::new("/tmp/stage"),
            Some(6),
            false,
            &["syn".into()],
        );
        assert!(
            script.contains(
                "'/usr/bin/netclaim' 'run' '--format' 'json' '--out' '/tmp/stage' '--jobs=6' \
                 '--events-fd=3' '--busy-gate=/tmp/stage/go' '--' 'syn' 3>&2 >/dev/null;"
            ),
            "{script}"
        );
        assert!(!script.contains("NETCLAIM_"), "{script}");
        let host = run_command(
            Path::new("netclaim"),
            Path::new("out"),
            None,
            true,
            &[],
            None,
        );
        assert_eq!(
            host,
            [
                "netclaim",
                "run",
                "--format",
                "json",
                "--out",
                "out",
                "--long",
                "--events-fd=3"
            ]
        );
    }

    #[test]
    fn a_console_says_why_a_guest_stopped() {
        let console: Vec<String> = [
            "[    0.000000] Linux version 6.12.117+deb12-amd64",
            "[    3.45] Run /init as init process",
            "[    3.90] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(
            diagnose(&console),
            "The console says: [    3.90] Kernel panic - not syncing: Attempted to kill init! \
             exitcode=0x00000100"
        );
        assert_eq!(
            diagnose(&console[..2]),
            "The console shows no error; the last boot step it reached: [    3.45] Run /init \
             as init process"
        );
        assert!(is_console(
            "[   12.345678] 9pnet: Installing 9P2000 support"
        ));
        assert!(!is_console("[ 1/52] holds syn.retries-1 (3.28 s)"));
        assert!(!is_console("netclaim: running 52 claims"));
    }
}
