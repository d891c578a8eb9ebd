//! The `netclaim` binary end to end: bad input gets one clear message and exit code 2;
//! comparing reports; and, as root, every way a run can end (SIGINT, SIGTERM, SIGKILL then
//! `netclaim clean`) leaves no namespace, mount or process behind, and two runs at once do
//! not disturb each other.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netclaim_harness::netns::{names_of, SweepLock};

const BIN: &str = env!("CARGO_BIN_EXE_netclaim");

fn netclaim(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running the netclaim binary")
}

fn expect_exit(out: &Output, code: i32, stderr_has: &[&str]) -> Result<(), Failed> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(code) {
        return Err(format!(
            "expected exit {code}, got {:?}\nstdout: {}\nstderr: {stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    for needle in stderr_has {
        if !stderr.contains(needle) {
            return Err(format!("stderr lacks {needle:?}:\n{stderr}").into());
        }
    }
    Ok(())
}

fn write_report(dir: &Path, name: &str, kernel: &str, verdict: &str, ms: u64) -> String {
    let path = dir.join(name);
    let report = serde_json::json!({
        "netclaim": "0.1.0", "kernel": kernel, "hz": 250,
        "sysctl_defaults": {}, "tools": {}, "wall_ms": ms, "longest_claim_ms": ms,
        "longest_claim": "syn.retries-1", "wall_over_longest": 1.0,
        "claims": [{
            "id": "syn.retries-1", "source": "002_e7b34916364827ff.txt",
            "statement": "s", "lab": "l", "action": "a", "verdict": verdict, "reason": "",
            "duration_ms": ms,
            "claimed": {"duration_ms": 3000, "exit_code": null, "errno": 110, "syn_count": null, "syn_times_ms": null, "value": null},
            "expected": {"duration_ms": 3000, "exit_code": null, "errno": 110, "syn_count": 3, "syn_times_ms": [0, 1000, 2000], "value": null},
            "observed": {"duration_ms": ms, "exit_code": null, "errno": 110, "syn_count": 3, "syn_times_ms": [0, 1000, 2000], "value": null},
            "claim_checks": [], "model_checks": [], "model_agrees": true,
            "evidence": "", "timelines": []
        }]
    });
    std::fs::write(&path, report.to_string()).expect("writing a test report");
    path.display().to_string()
}

fn bad_input_trials() -> Vec<Trial> {
    vec![
        Trial::test("bad-input.unknown-filter", || {
            let out = netclaim(&["run", "no.such-claim"]);
            expect_exit(&out, 2, &["\"no.such-claim\"", "netclaim list"])
        }),
        Trial::test("bad-input.missing-baseline", || {
            let out = netclaim(&["run", "syn.retries-1", "--baseline", "/nonexistent/r.json"]);
            expect_exit(
                &out,
                2,
                &["--baseline", "/nonexistent/r.json", "cannot read report"],
            )
        }),
        Trial::test("bad-input.malformed-baseline", || {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("r.json");
            std::fs::write(&path, "{\"kernel\": 1")?;
            let out = netclaim(&["run", "syn.retries-1", "--baseline", path.to_str().unwrap()]);
            expect_exit(&out, 2, &["is not a netclaim report"])
        }),
        Trial::test("bad-input.unwritable-out", || {
            let out = netclaim(&["run", "syn.retries-1", "--out", "/proc/netclaim-out"]);
            expect_exit(&out, 2, &["/proc/netclaim-out", "writable directory"])
        }),
        Trial::test("bad-input.malformed-compare", || {
            let dir = tempfile::tempdir()?;
            let good = write_report(dir.path(), "a.json", "6.1", "holds", 3000);
            let bad = dir.path().join("b.json");
            std::fs::write(&bad, "not json")?;
            let out = netclaim(&["compare", &good, bad.to_str().unwrap()]);
            expect_exit(&out, 2, &["b.json", "is not a netclaim report"])
        }),
        Trial::test("compare.lists-changed-claims", || {
            let dir = tempfile::tempdir()?;
            let a = write_report(dir.path(), "a.json", "6.1.0", "holds", 3000);
            let b = write_report(dir.path(), "b.json", "6.18.0", "refuted", 7000);
            let out = netclaim(&["compare", &a, &b, "--format", "markdown"]);
            expect_exit(&out, 3, &[])?;
            let text = String::from_utf8_lossy(&out.stdout);
            for needle in [
                "syn.retries-1",
                "verdict holds → refuted",
                "duration 3.00 s → 7.00 s",
            ] {
                if !text.contains(needle) {
                    return Err(format!("comparison lacks {needle:?}:\n{text}").into());
                }
            }
            let same = netclaim(&["compare", &a, &a]);
            expect_exit(&same, 0, &[])
        }),
        Trial::test("list.names-every-claim", || {
            let out = netclaim(&["list", "--json"]);
            expect_exit(&out, 0, &[])?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            let n = v.as_array().map(Vec::len).unwrap_or(0);
            if n < 17 {
                return Err(format!("only {n} claims listed").into());
            }
            Ok(())
        }),
    ]
}

/// Pids of the processes `pid` started (its threads' children).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

/// Whether `pid` still runs (a zombie waiting for its reaper has stopped running).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A `netclaim run` child, killed and reaped if a test returns early.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Run {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Run {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Whether a test run names its labs under /run/netns (`--name-labs`).
#[derive(Clone, Copy, PartialEq)]
enum Labs {
    Named,
    Unnamed,
}

fn spawn_run(claim: &str, labs: Labs) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", claim, "--quiet", "--format", "json"])
        .env_remove("NETCLAIM_NAME_LABS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if labs == Labs::Named {
        cmd.arg("--name-labs");
    }
    Run(cmd.spawn().expect("starting netclaim run"))
}

/// The network namespace of a process or thread, as `net:[inode]`.
fn netns_of(proc_path: &str) -> Option<String> {
    std::fs::read_link(format!("{proc_path}/ns/net"))
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

/// Threads of `pid` in a network namespace other than this test's: lab threads.
fn lab_threads(pid: u32) -> usize {
    let host = netns_of("/proc/self");
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter(|t| netns_of(&t.path().to_string_lossy()) != host)
                .count()
        })
        .unwrap_or(0)
}

/// Children of `pid` (tools) in a network namespace other than this test's, with it.
fn lab_children(pid: u32) -> Vec<(u32, String)> {
    let host = netns_of("/proc/self");
    children_of(pid)
        .into_iter()
        .filter_map(|c| Some((c, netns_of(&format!("/proc/{c}"))?)))
        .filter(|(_, ns)| Some(ns) != host.as_ref())
        .collect()
}

/// Processes anywhere on the system in one of `namespaces`.
fn processes_in(namespaces: &[String]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| {
                    alive(*p)
                        && netns_of(&format!("/proc/{p}")).is_some_and(|n| namespaces.contains(&n))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the run has its labs (named ones under /run/netns) and, if asked, a child
/// process (a tool) inside one; returns those children with their namespaces.
fn wait_for_labs(
    child: &Child,
    labs: Labs,
    want_children: bool,
) -> Result<Vec<(u32, String)>, Failed> {
    let start = Instant::now();
    loop {
        let has_labs = match labs {
            Labs::Named => !names_of(child.id()).is_empty(),
            Labs::Unnamed => lab_threads(child.id()) > 0,
        };
        let kids = lab_children(child.id());
        if has_labs && (!want_children || !kids.is_empty()) {
            return Ok(kids);
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err("the run made no lab within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus, Failed> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return Err(format!("did not exit within {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn interrupted(signal: nix::sys::signal::Signal, code: i32, labs: Labs) -> Result<(), Failed> {
    // syn.retries-5-nc runs nc inside a lab for ~65 s: stop it a few seconds in.
    let mut child = spawn_run("syn.retries-5-nc", labs);
    let tools = wait_for_labs(&child, labs, true)?;
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)?;
    let status = wait_exit(&mut child, Duration::from_secs(10))?;
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    if status.code() != Some(code) {
        return Err(format!("exit {status:?}, expected {code}; stderr: {stderr}").into());
    }
    if !stderr.contains("tearing down") {
        return Err(format!("no teardown message: {stderr}").into());
    }
    nothing_left(child.id(), &tools)
}

/// After run `pid` ended: no /run/netns name or mount of its, and no process left in
/// the namespaces its tools ran in.
fn nothing_left(pid: u32, tools: &[(u32, String)]) -> Result<(), Failed> {
    let left = names_of(pid);
    if !left.is_empty() {
        return Err(format!("namespaces left behind: {left:?}").into());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    if let Some(m) = mounts
        .lines()
        .find(|l| l.contains(&format!("netclaim-{pid}-")))
    {
        return Err(format!("mount left behind: {m}").into());
    }
    let namespaces: Vec<String> = tools.iter().map(|(_, ns)| ns.clone()).collect();
    let start = Instant::now();
    loop {
        let living: Vec<u32> = tools
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| alive(*p))
            .chain(processes_in(&namespaces))
            .collect();
        if living.is_empty() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(2) {
            return Err(format!("processes outlived the run: {living:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every `netclaim run` sweeps the names of dead runs as it starts, so a run started by one
/// case could remove the names `cleanup.sigkill-named-then-clean` leaves on purpose for
/// `netclaim clean` (which then has nothing to report). Cases that start runs share the
/// harness's `SweepLock` (a flock, so it also holds under nextest's one process per case);
/// that case, like the harness's own sweep cases, takes it alone.
fn sweep_lock(exclusive: bool) -> Result<SweepLock, Failed> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let lock = if exclusive {
        SweepLock::exclusive(dir)
    } else {
        SweepLock::shared(dir)
    };
    lock.map_err(|e| format!("{e}").into())
}

fn shared(name: &str, case: fn() -> Result<(), Failed>) -> Trial {
    Trial::test(name, move || {
        let _runs = sweep_lock(false)?;
        case()
    })
}

fn alone(name: &str, case: fn() -> Result<(), Failed>) -> Trial {
    Trial::test(name, move || {
        let _only = sweep_lock(true)?;
        case()
    })
}

fn root_trials() -> Vec<Trial> {
    vec![
        shared("cleanup.sigint", || {
            interrupted(nix::sys::signal::Signal::SIGINT, 130, Labs::Unnamed)
        }),
        shared("cleanup.sigterm-named", || {
            interrupted(nix::sys::signal::Signal::SIGTERM, 143, Labs::Named)
        }),
        shared("cleanup.sigkill-leaves-nothing", || {
            let mut child = spawn_run("syn.retries-5-nc", Labs::Unnamed);
            let tools = wait_for_labs(&child, Labs::Unnamed, true)?;
            if !names_of(child.id()).is_empty() {
                return Err("an unnamed run made /run/netns names".into());
            }
            child.kill()?;
            child.wait()?;
            nothing_left(child.id(), &tools)
        }),
        alone("cleanup.sigkill-named-then-clean", || {
            let mut child = spawn_run("syn.default-timeout-exponential", Labs::Named);
            wait_for_labs(&child, Labs::Named, false)?;
            let pid = child.id();
            child.kill()?;
            child.wait()?;
            let stale = names_of(pid);
            if stale.is_empty() {
                return Err("SIGKILL left nothing to sweep: the test proves nothing".into());
            }
            let out = netclaim(&["clean"]);
            expect_exit(&out, 0, &[])?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            for name in &stale {
                if !stdout.contains(&format!("removed {name}")) {
                    return Err(format!("clean did not report {name}: {stdout}").into());
                }
            }
            // After clean, no name or mount of the killed run is left.
            nothing_left(pid, &[])
        }),
        shared("concurrency.two-runs-at-once", || {
            let mut runs: Vec<Run> = (0..2)
                .map(|_| spawn_run("syn.retries-1", Labs::Unnamed))
                .collect();
            for run in &mut runs {
                let mut stdout = Vec::new();
                if let Some(mut o) = run.stdout.take() {
                    use std::io::Read;
                    o.read_to_end(&mut stdout)?;
                }
                let status = run.wait()?;
                let out = Output {
                    status,
                    stdout,
                    stderr: Vec::new(),
                };
                expect_exit(&out, 0, &[])?;
                let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
                let claims = v["claims"].as_array().cloned().unwrap_or_default();
                if claims.len() != 6 || claims.iter().any(|c| c["verdict"] != "holds") {
                    return Err(format!(
                        "a concurrent run saw different verdicts: {}",
                        claims
                            .iter()
                            .map(|c| format!("{}={}", c["id"], c["verdict"]))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                    .into());
                }
            }
            Ok(())
        }),
    ]
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = bad_input_trials();
    let privileged = netclaim_harness::privilege::check();
    for t in root_trials() {
        trials.push(match &privileged {
            Ok(()) => t,
            Err(reason) => {
                let reason = reason.clone();
                Trial::ignorable_test(t.name().to_owned(), move || {
                    Ok(Completion::ignored_with(reason))
                })
            }
        });
    }
    libtest_mimic::run(&args, trials).exit();
}
