//! netclaim in a real container engine, and the files that take it to a fleet.
//!
//! With a Docker daemon (and root, to read the host's iptables rules): the image that
//! `scripts/image` builds from Debian's packages (built again only when its inputs
//! change), the default `docker run` and the README's table of the options users try,
//! each measured against what the table says, the privileged container's catalog
//! against the host's (`netclaim compare`, no difference allowed), `cargo test` of the
//! workspace inside the privileged container, and three compose "nodes" whose reports
//! merge into one comparison. Around all of it the host is snapshotted (iptables rules
//! outside Docker's own chains, links, addresses, routes, `net.*` sysctls) and must be
//! unchanged afterwards, with no container, network, volume or dangling image of these
//! tests left. Without a daemon those cases are ignored with the reason.
//!
//! Without Docker too: the Kubernetes manifests of deploy/kubernetes against the
//! schemas kubernetes-validate carries, and the workflows against the schema
//! check-jsonschema carries (scripts/install-deploy-tools installs both; nothing is
//! fetched when they run).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netclaim_harness::hostcheck::HostSnapshot;

const BIN: &str = env!("CARGO_BIN_EXE_netclaim");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The image these tests build (the binary under test on scripts/image's base); a
/// user's `netclaim:latest` is left alone.
const IMAGE: &str = "netclaim:test";
/// Every container these tests start carries this label, with this process's pid.
const LABEL: &str = "org.netclaim.test";
/// Claims whose labs, together, are every kind the catalog builds, each short (the set
/// tests/cli.rs runs with and without root).
const REPRESENTATIVE: &[&str] = &[
    "syn.retries-1",
    "syn.retries-1.curl",
    "syn.drop-rule",
    "syn.invisible-to-strace",
    "curl.max-time",
    "wget.read-timeout",
    "wget.dns-timeout",
    "nc.w-idle",
    "mysql.refused",
    "mysql.silent-server-timeout",
    "mysql.no-socket",
    "rsync.timeout",
    "port.exhaustion-errno",
    "port.tw-reuse",
    "sysctl.writes-proc",
    "tw.active-closer",
    "tw.reuse-needs-timestamps",
    "tw.concurrent-client-exhaustion",
    "tw.default-values",
    "backlog.unix-eagain",
    "backlog.capped-by-somaxconn",
    "backlog.tcp-full-refused",
    "backlog.syn-backlog-default",
    "backlog.nginx-502",
];
/// What a privileged container is made of where the engine cannot start one: every
/// capability the engine can grant, no seccomp filter, a writable /proc/sys, and the TUN
/// device the claims over a wire need (`--privileged` gives every host device).
const PRIVILEGED_STAND_IN: &[&str] = &[
    "--device",
    "/dev/net/tun",
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "--security-opt",
    "apparmor=unconfined",
];

/// The cases that load the machine (whole catalogs, a whole `cargo test`) run one at a
/// time, so that none judges its timings on a machine the other one loads.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A command's output, with everything needed to see why it failed.
fn run(cmd: &mut Command) -> Result<Output, Failed> {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {shown}: {e}").into())
}

fn text(out: &Output) -> String {
    format!(
        "{:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn docker(args: &[&str]) -> Result<Output, Failed> {
    run(Command::new("docker").args(args))
}

/// Why the Docker cases cannot run here, if they cannot.
fn docker_precondition() -> Result<(), String> {
    if netclaim_harness::command::which("docker").is_none() {
        return Err("no docker client (Debian: docker.io; then start its daemon)".into());
    }
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running docker: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "no Docker daemon answers ({}): start it (systemctl start docker)",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "needs root: the host's iptables rules are compared before and after, and \
             scripts/image runs mmdebstrap"
                .into(),
        );
    }
    Ok(())
}

/// A container these tests started, removed when dropped (also while panicking); the
/// runs use `--rm`, so this only acts when a case stops before its container does.
struct Container(String);

impl Container {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        Self(format!(
            "netclaim-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// `docker run` arguments up to the image: `--rm`, the name and label, no network
    /// (labs are namespaces of their own; nothing a claim sends leaves them).
    fn run_args(&self) -> Vec<String> {
        vec![
            "run".into(),
            "--rm".into(),
            "--name".into(),
            self.0.clone(),
            "--label".into(),
            format!("{LABEL}={}", std::process::id()),
            "--network".into(),
            "none".into(),
        ]
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", "--volumes", &self.0])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `docker run` of the test image with `opts` and then `args` (netclaim's).
fn in_container(opts: &[&str], mounts: &[String], args: &[&str]) -> Result<Output, Failed> {
    let c = Container::new();
    let mut cmd = Command::new("docker");
    cmd.args(c.run_args()).args(opts);
    for m in mounts {
        cmd.args(["--volume", m]);
    }
    cmd.arg(IMAGE).args(args);
    run(&mut cmd)
}

/// Builds the test image once (scripts/image with the binary under test).
fn image() -> Result<(), Failed> {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let started = Instant::now();
            let out = Command::new(format!("{ROOT}/scripts/image"))
                .args(["--binary", BIN])
                .env("NETCLAIM_IMAGE", IMAGE)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running scripts/image: {e}"))?;
            if !out.status.success() {
                return Err(format!("scripts/image failed: {}", text(&out)));
            }
            println!(
                "scripts/image: {} in {:.1} s",
                String::from_utf8_lossy(&out.stderr).trim(),
                started.elapsed().as_secs_f64()
            );
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .clone()
        .map(|_| ())
        .map_err(Failed::from)
}

/// `--privileged`, or, where this engine cannot start a privileged container (Docker
/// 20.10 asks for every capability the kernel knows, and an engine that lacks one in
/// its own bounding set fails with "unable to apply caps"), the stand-in, said so.
fn privileged() -> Result<Vec<&'static str>, Failed> {
    static OPTS: OnceLock<Result<Vec<&'static str>, String>> = OnceLock::new();
    OPTS.get_or_init(|| {
        let c = Container::new();
        let mut args = c.run_args();
        args.extend(["--privileged".into(), IMAGE.into(), "--version".into()]);
        let out = Command::new("docker")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running docker: {e}"))?;
        if out.status.success() {
            return Ok(vec!["--privileged"]);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("unable to apply caps") {
            println!(
                "this engine cannot start a --privileged container ({}): using {}",
                err.trim(),
                PRIVILEGED_STAND_IN.join(" ")
            );
            return Ok(PRIVILEGED_STAND_IN.to_vec());
        }
        Err(format!("docker run --privileged failed: {err}"))
    })
    .clone()
    .map_err(Failed::from)
}

fn report(path: &Path) -> Result<serde_json::Value, Failed> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn claims(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["claims"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let t = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (t("id"), t("verdict"), t("reason"))
        })
        .collect()
}

/// A report from a `--format json` run's stdout.
fn json_of(out: &Output) -> Result<serde_json::Value, Failed> {
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("stdout is not a report ({e}): {}", text(out)).into())
}

// --- the image ------------------------------------------------------------------------

fn image_is_built_once() -> Result<(), Failed> {
    image()?;
    let id = |out: &Output| String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let before = docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE])?;
    let started = Instant::now();
    let again = run(Command::new(format!("{ROOT}/scripts/image"))
        .args(["--binary", BIN])
        .env("NETCLAIM_IMAGE", IMAGE))?;
    let took = started.elapsed();
    let after = docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE])?;
    let err = String::from_utf8_lossy(&again.stderr);
    if !again.status.success() || !err.contains("is current") || id(&before) != id(&after) {
        return Err(format!(
            "a second scripts/image rebuilt (image {} -> {}): {}",
            id(&before),
            id(&after),
            text(&again)
        )
        .into());
    }
    if took > Duration::from_secs(20) {
        return Err(format!("a second scripts/image took {took:?} for nothing").into());
    }
    // No layer of an image it replaced is left dangling.
    let dangling = docker(&[
        "images",
        "--quiet",
        "--filter",
        "dangling=true",
        "--filter",
        "label=org.netclaim.key",
    ])?;
    if !dangling.stdout.is_empty() {
        return Err(format!("dangling netclaim images: {}", text(&dangling)).into());
    }
    // The entrypoint is netclaim.
    let version = in_container(&[], &[], &["--version"])?;
    if !String::from_utf8_lossy(&version.stdout).starts_with("netclaim ") {
        return Err(format!("the entrypoint is not netclaim: {}", text(&version)).into());
    }
    println!("scripts/image again: current, {took:?}");
    Ok(())
}

// --- what happens with which options --------------------------------------------------

/// One row of the README's container table.
#[derive(Debug)]
struct Row {
    options: Vec<String>,
    mode: String,
    /// Every claim reaches a verdict (`None`), or every claim is skipped with a reason
    /// naming each of these.
    skipped_naming: Option<Vec<String>>,
    exits: Vec<i32>,
}

/// The table between `<!-- containers:begin -->` and `<!-- containers:end -->`.
fn readme_rows() -> Result<Vec<Row>, Failed> {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md"))?;
    let table = readme
        .split_once("<!-- containers:begin -->")
        .and_then(|(_, rest)| rest.split_once("<!-- containers:end -->"))
        .map(|(t, _)| t)
        .ok_or("README.md lacks the containers table markers")?;
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let mut rows = Vec::new();
    // The header, then the separator row.
    for line in table.lines().filter(|l| l.starts_with("| ")).skip(2) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let [options, mode, outcome, exit] = cells[..] else {
            return Err(format!("a README row without 4 cells: {line}").into());
        };
        let options = ticked(options)
            .first()
            .map(|o| o.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let skipped_naming = if outcome.starts_with("every claim skipped") {
            Some(ticked(outcome))
        } else if outcome.starts_with("every claim reaches a verdict") {
            None
        } else {
            return Err(format!("an outcome the test does not know: {outcome}").into());
        };
        rows.push(Row {
            options,
            mode: ticked(mode).first().cloned().unwrap_or_default(),
            skipped_naming,
            exits: exit
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect(),
        });
    }
    if rows.len() < 8 {
        return Err(format!("the README's container table has {} rows", rows.len()).into());
    }
    Ok(rows)
}

/// Runs `claims` in a container with `row`'s options and checks what the row says.
fn measure(row: &Row, claims_run: &[&str]) -> Result<String, Failed> {
    let privileged = privileged()?;
    let opts: Vec<&str> = if row.options == ["--privileged"] {
        privileged.clone()
    } else {
        row.options.iter().map(String::as_str).collect()
    };
    let mut args = vec!["run", "--quiet", "--format", "json"];
    args.extend(claims_run);
    let started = Instant::now();
    let out = in_container(&opts, &[], &args)?;
    let took = started.elapsed();
    let code = out.status.code().unwrap_or(-1);
    let r = json_of(&out)?;
    let cs = claims(&r);
    let mode = r["mode"].as_str().unwrap_or_default();
    let mut wrong = Vec::new();
    if !row.exits.contains(&code) {
        wrong.push(format!("exit {code}, the README says {:?}", row.exits));
    }
    if mode != row.mode {
        wrong.push(format!("mode {mode:?}, the README says {:?}", row.mode));
    }
    if cs.len() < claims_run.len() {
        wrong.push(format!("{} claims reported", cs.len()));
    }
    match &row.skipped_naming {
        Some(names) => {
            for (id, verdict, reason) in &cs {
                let missing: Vec<&String> = names
                    .iter()
                    .filter(|n| !reason.contains(n.as_str()))
                    .collect();
                if verdict != "skipped" || !missing.is_empty() {
                    wrong.push(format!(
                        "{id}: {verdict}, reason lacks {missing:?}: {reason}"
                    ));
                }
            }
        }
        None => {
            for (id, verdict, reason) in &cs {
                if verdict == "skipped" || verdict == "error" {
                    wrong.push(format!("{id}: {verdict}: {reason}"));
                }
            }
        }
    }
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for (_, v, _) in &cs {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let line = format!(
        "docker run {}: exit {code}, mode {mode:?}, {counts:?} in {:.1} s",
        opts.join(" "),
        took.as_secs_f64()
    );
    if wrong.is_empty() {
        Ok(line)
    } else {
        Err(format!("{line}\n{}", wrong.join("\n")).into())
    }
}

fn default_run_is_what_the_readme_says() -> Result<(), Failed> {
    image()?;
    let rows = readme_rows()?;
    let default = rows
        .iter()
        .find(|r| r.options.is_empty())
        .ok_or("the README's table has no row for the default docker run")?;
    if default.skipped_naming.is_none() || default.mode != "none" {
        return Err(format!("the README's default row changed: {default:?}").into());
    }
    // The whole catalog: nothing runs, so it takes a second.
    let out = in_container(&[], &[], &["list", "--json"])?;
    let all: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ids: Vec<&str> = all
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_str()).collect())
        .unwrap_or_default();
    println!("{}", measure(default, &ids)?);
    Ok(())
}

fn options_users_try_are_what_the_readme_says() -> Result<(), Failed> {
    image()?;
    let _one = heavy();
    let mut failures = Vec::new();
    for row in readme_rows()? {
        match measure(&row, REPRESENTATIVE) {
            Ok(line) => println!("{line}"),
            Err(e) => failures.push(e.message().unwrap_or("failed").to_owned()),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n\n").into())
    }
}

// --- the privileged container ----------------------------------------------------------

fn spawn(cmd: &mut Command) -> Result<Child, Failed> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {cmd:?}: {e}").into())
}

fn privileged_catalog_equals_the_hosts() -> Result<(), Failed> {
    image()?;
    let priv_opts = privileged()?;
    let _one = heavy();
    let dir = tempfile::tempdir()?;
    let host_dir = dir.path().join("host");
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports)?;
    // Both at once: the catalog waits on kernel timers for most of its 135 s.
    let started = Instant::now();
    let host = spawn(
        Command::new(BIN)
            .args(["run", "--quiet", "--out"])
            .arg(&host_dir),
    )?;
    let c = Container::new();
    let container = spawn(
        Command::new("docker")
            .args(c.run_args())
            .args(&priv_opts)
            .arg("--volume")
            .arg(format!("{}:/reports", reports.display()))
            .args([IMAGE, "run", "--quiet", "--out", "/reports/container"]),
    )?;
    let host = host.wait_with_output()?;
    let container = container.wait_with_output()?;
    let took = started.elapsed();
    drop(c);
    // 0: every claim reached a verdict; 5: a timing within the measured error. Not 1
    // (the harness failed) nor 4 (skipped): both have every privilege.
    for (who, out) in [("host", &host), ("container", &container)] {
        if !matches!(out.status.code(), Some(0 | 5)) {
            return Err(format!("the {who}'s run: {}", text(out)).into());
        }
    }
    let host_json = host_dir.join("report.json");
    let container_json = reports.join("container/report.json");
    let (h, c) = (report(&host_json)?, report(&container_json)?);
    if h["mode"] != "root" || c["mode"] != "root" {
        return Err(format!("modes: host {}, container {}", h["mode"], c["mode"]).into());
    }
    let n = claims(&h).len();
    if n < 70 || claims(&c).len() != n {
        return Err(format!(
            "{n} claims on the host, {} in the container",
            claims(&c).len()
        )
        .into());
    }
    let compare = run(Command::new(BIN)
        .arg("compare")
        .args([&host_json, &container_json]))?;
    let shown = String::from_utf8_lossy(&compare.stdout);
    println!(
        "host and {} container, {n} claims each, both in {:.0} s:\n{shown}",
        priv_opts.join(" "),
        took.as_secs_f64()
    );
    // Two whole catalogs at once on this machine stretch some wires' round trips, and a
    // claim whose premise the lab missed is inconclusive on that side: no observation,
    // so no contradiction. A verdict on both sides that differs is one.
    let container: std::collections::BTreeMap<String, String> = claims(&c)
        .into_iter()
        .map(|(id, verdict, _)| (id, verdict))
        .collect();
    let contradictions: Vec<String> = claims(&h)
        .into_iter()
        .filter_map(|(id, verdict, _)| {
            let other = container.get(&id).cloned().unwrap_or_default();
            (verdict != other && verdict != "inconclusive" && other != "inconclusive")
                .then(|| format!("{id}: {verdict} on the host, {other} in the container"))
        })
        .collect();
    if !matches!(compare.status.code(), Some(0 | 3)) || !contradictions.is_empty() {
        return Err(format!(
            "the container's verdicts differ from the host's: {}\n{}",
            contradictions.join("; "),
            text(&compare)
        )
        .into());
    }
    Ok(())
}

fn cargo_test_passes_in_the_privileged_container() -> Result<(), Failed> {
    image()?;
    let priv_opts = privileged()?;
    // The toolchain that runs this test, mounted where it is: cargo and rustc straight
    // from it (no rustup), and the checkout at its own path, so the build this test
    // belongs to is fresh in there too and only the tests run.
    let cargo = PathBuf::from(std::env::var("CARGO").map_err(|_| "CARGO is not set")?);
    let toolchain = cargo
        .parent()
        .and_then(Path::parent)
        .ok_or("no toolchain directory above $CARGO")?;
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map_err(|_| "neither CARGO_HOME nor HOME is set")?;
    let _one = heavy();
    let c = Container::new();
    let mut cmd = Command::new("docker");
    cmd.args(c.run_args())
        .args(&priv_opts)
        .arg("--volume")
        .arg(format!("{ROOT}:{ROOT}"))
        .arg("--volume")
        .arg(format!("{0}:{0}:ro", toolchain.display()))
        .arg("--volume")
        .arg(format!("{0}:{0}", cargo_home.display()))
        .args(["--workdir", ROOT])
        .arg("--env")
        .arg(format!("CARGO_HOME={}", cargo_home.display()))
        // A target directory of its own: what cargo builds in there does not replace
        // the host's build of the same tests (the one running this).
        .arg("--env")
        .arg(format!("CARGO_TARGET_DIR={ROOT}/target/container"))
        .arg("--env")
        .arg(format!(
            "PATH={}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            toolchain.display()
        ))
        .args([
            "--env",
            "CARGO_TERM_COLOR=never",
            "--entrypoint",
            "cargo",
            IMAGE,
        ])
        .args(["test", "--workspace", "--locked", "--offline"]);
    let started = Instant::now();
    let out = run(&mut cmd)?;
    let took = started.elapsed();
    drop(c);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("test result:"))
        .collect();
    let count = |what: &str| -> usize {
        results
            .iter()
            .filter_map(|l| {
                l.split(';')
                    .find_map(|p| p.trim().strip_suffix(what))
                    .and_then(|n| n.trim().rsplit(' ').next()?.parse::<usize>().ok())
            })
            .sum()
    };
    let (passed, failed, ignored) = (count(" passed"), count(" failed"), count(" ignored"));
    println!(
        "cargo test --workspace in the container: {} test binaries, {passed} passed, \
         {failed} failed, {ignored} ignored, in {:.0} s",
        results.len(),
        took.as_secs_f64()
    );
    if !out.status.success() || failed > 0 || results.len() < 10 || passed < 100 {
        // The failing tests and their output (libtest's "failures:" section, on stdout),
        // then the end of stderr.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let failures: Vec<&str> = stdout
            .split("\nfailures:\n")
            .skip(1)
            .flat_map(|f| f.lines().take(60))
            .chain(stdout.lines().filter(|l| l.ends_with("FAILED")))
            .collect();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(format!(
            "cargo test inside: {:?}\n{}\n--- end of stderr ---\n{}",
            out.status,
            failures.join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
        .into());
    }
    Ok(())
}

// --- a fleet on one engine: compose ------------------------------------------------------

/// A compose project of these tests, taken down (containers, networks, volumes) when
/// dropped, also while panicking.
struct Compose {
    project: String,
    reports: PathBuf,
    files: Vec<PathBuf>,
}

impl Compose {
    fn command(&self) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.args(["--project-name", &self.project]);
        for f in &self.files {
            cmd.arg("--file").arg(f);
        }
        cmd.env("NETCLAIM_IMAGE", IMAGE)
            .env("NETCLAIM_REPORTS", &self.reports)
            .env("NETCLAIM_CLAIMS", REPRESENTATIVE.join(" "));
        cmd
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args([
                "--profile",
                "compare",
                "down",
                "--volumes",
                "--remove-orphans",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn compose_nodes_merge_into_one_comparison() -> Result<(), Failed> {
    image()?;
    if netclaim_harness::command::which("docker-compose").is_none() {
        return Err("docker-compose is not installed (Debian: docker-compose)".into());
    }
    let stand_in = privileged()? != ["--privileged"];
    let _one = heavy();
    let dir = tempfile::tempdir()?;
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports)?;
    let mut compose = Compose {
        project: format!("netclaim-test-{}", std::process::id()),
        reports: reports.clone(),
        files: vec![format!("{ROOT}/deploy/compose.yaml").into()],
    };
    // Where this engine cannot start a privileged container as root (see
    // `privileged`), the nodes run privileged as an unprivileged user, whose labs live
    // in a user namespace of netclaim's own (a row of the README's table).
    if stand_in {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&reports, std::fs::Permissions::from_mode(0o777))?;
        let path = dir.path().join("stand-in.yaml");
        let nodes: String = ["node-1", "node-2", "node-3"]
            .iter()
            .map(|n| format!("  {n}:\n    user: \"65534:65534\"\n"))
            .collect();
        std::fs::write(&path, format!("version: \"2.4\"\nservices:\n{nodes}"))?;
        println!(
            "compose: the nodes run as uid 65534 (this engine cannot start --privileged as root)"
        );
        compose.files.push(path);
    }
    let mode = if stand_in {
        "user namespace (uid 65534 as root)"
    } else {
        "root"
    };
    let dir = &reports;
    let started = Instant::now();
    // Until every node has exited (each with its own code: 5 is an inconclusive timing).
    let up = run(compose.command().args(["up", "--no-color"]))?;
    let took = started.elapsed();
    let nodes = ["node-1", "node-2", "node-3"];
    let mut n = 0;
    for node in nodes {
        let path = dir.join(node).join("report.json");
        if !path.exists() {
            return Err(format!("no report from {node}: {}", text(&up)).into());
        }
        let r = report(&path)?;
        let cs = claims(&r);
        if r["mode"] != mode
            || cs.len() < REPRESENTATIVE.len()
            || (n > 0 && cs.len() != n)
            || cs.iter().any(|(_, v, _)| v == "skipped" || v == "error")
        {
            return Err(format!("{node}: mode {}, {cs:?}", r["mode"]).into());
        }
        n = cs.len();
    }
    let merged = run(compose.command().args(["run", "--rm", "compare"]))?;
    let md = std::fs::read_to_string(dir.join("comparison.md"))
        .map_err(|e| format!("no comparison.md ({e}): {}", text(&merged)))?;
    println!(
        "compose: 3 nodes ran {n} claims each in {:.0} s; merged:\n{}",
        took.as_secs_f64(),
        String::from_utf8_lossy(&merged.stdout)
    );
    if !merged.status.success() {
        return Err(format!("the compare service: {}", text(&merged)).into());
    }
    // One comparison, every node in it, and nodes on one kernel agree.
    let missing: Vec<&str> = nodes.iter().copied().filter(|n| !md.contains(n)).collect();
    if !missing.is_empty() || !md.contains(&format!("0 of {n} claims differ")) {
        return Err(format!("the merged comparison (missing {missing:?}):\n{md}").into());
    }
    Ok(())
}

// --- manifests and workflows ---------------------------------------------------------------

fn validator(program: &str) -> Result<PathBuf, String> {
    netclaim_harness::command::which(program).ok_or_else(|| {
        format!("{program} is not installed: run scripts/install-deploy-tools (scripts/test does)")
    })
}

/// Runs `program` with no network at all (a network namespace with only a loopback,
/// made by unshare where this process may), so a validator that fetched a schema fails.
fn offline(program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() && netclaim_harness::command::which("unshare").is_some() {
        let mut cmd = Command::new("unshare");
        cmd.arg("--net").arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn manifests() -> Result<Vec<PathBuf>, Failed> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(format!("{ROOT}/deploy/kubernetes"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

fn manifests_validate_against_kubernetes_schemas(program: PathBuf) -> Result<(), Failed> {
    let files = manifests()?;
    let kinds = files
        .iter()
        .map(std::fs::read_to_string)
        .collect::<Result<Vec<_>, _>>()?
        .join("\n");
    for kind in [
        "kind: Job",
        "kind: DaemonSet",
        "kind: PersistentVolumeClaim",
    ] {
        if !kinds.contains(kind) {
            return Err(format!("deploy/kubernetes has no {kind}").into());
        }
    }
    // The oldest and the newest Kubernetes the package carries schemas for.
    for version in ["1.25.0", "1.37.0"] {
        let out = run(offline(&program)
            .args(["--strict", "--kubernetes-version", version])
            .args(&files))?;
        let shown = String::from_utf8_lossy(&out.stdout);
        let passed = shown.lines().filter(|l| l.contains(" passed ")).count();
        if !out.status.success() || passed != files.len() {
            return Err(format!(
                "{passed} of {} passed on {version}: {}",
                files.len(),
                text(&out)
            )
            .into());
        }
    }
    // The validator rejects what it should: a misspelt field and a wrong type.
    let dir = tempfile::tempdir()?;
    let daemonset = std::fs::read_to_string(format!("{ROOT}/deploy/kubernetes/daemonset.yaml"))?;
    for (what, broken) in [
        (
            "a misspelt field",
            daemonset.replace("tolerations:", "toleration:"),
        ),
        (
            "a wrong type",
            daemonset.replace("privileged: true", "privileged: \"yes\""),
        ),
    ] {
        if broken == daemonset {
            return Err(format!("could not make {what} in daemonset.yaml").into());
        }
        let path = dir.path().join("broken.yaml");
        std::fs::write(&path, broken)?;
        let out = run(offline(&program).arg("--strict").arg(&path))?;
        if out.status.success() {
            return Err(format!("{what} passed validation: {}", text(&out)).into());
        }
    }
    println!(
        "{} manifests valid against Kubernetes 1.25 and 1.37 (strict)",
        files.len()
    );
    Ok(())
}

fn workflows_validate(program: PathBuf) -> Result<(), Failed> {
    let files: Vec<PathBuf> = std::fs::read_dir(format!("{ROOT}/.github/workflows"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    let out = run(offline(&program)
        .args(["--builtin-schema", "vendor.github-workflows"])
        .args(&files))?;
    if !out.status.success() || files.len() < 2 {
        return Err(format!("{} workflows: {}", files.len(), text(&out)).into());
    }
    // And it rejects what it should: a job without runs-on.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broken.yml");
    std::fs::write(
        &path,
        "on: push\njobs:\n  x:\n    steps:\n      - run: true\n",
    )?;
    let out = run(offline(&program)
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&path))?;
    if out.status.success() {
        return Err(format!("a job without runs-on passed: {}", text(&out)).into());
    }
    Ok(())
}

// --- the host stays untouched ---------------------------------------------------------------

/// Whether a line or name belongs to Docker's own networking (its chains, bridges and
/// the veth ends of other containers), which the daemon changes by itself.
fn dockers_own(line: &str) -> bool {
    ["DOCKER", "docker0", "br-", "veth"]
        .iter()
        .any(|m| line.contains(m))
}

fn host_state() -> HostSnapshot {
    let mut s = HostSnapshot::take();
    for text in s.sections.values_mut() {
        *text = text
            .lines()
            .filter(|l| !dockers_own(l))
            .collect::<Vec<_>>()
            .join("\n");
    }
    s.sysctls.retain(|k, _| !dockers_own(k));
    s
}

/// What these tests left: containers, networks and volumes of theirs, dangling netclaim
/// images, lab names or temporary files of this process.
fn leftovers() -> Vec<String> {
    let pid = std::process::id();
    let mut left = Vec::new();
    let mut list = |what: &str, args: &[&str]| {
        if let Ok(out) = docker(args) {
            let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !s.is_empty() {
                left.push(format!("{what}: {s}"));
            }
        }
    };
    let ours = format!("label={LABEL}={pid}");
    let project = format!("label=com.docker.compose.project=netclaim-test-{pid}");
    list("containers", &["ps", "--all", "--quiet", "--filter", &ours]);
    list(
        "compose containers",
        &["ps", "--all", "--quiet", "--filter", &project],
    );
    list(
        "compose networks",
        &["network", "ls", "--quiet", "--filter", &project],
    );
    list(
        "compose volumes",
        &["volume", "ls", "--quiet", "--filter", &project],
    );
    list(
        "dangling netclaim images",
        &[
            "images",
            "--quiet",
            "--filter",
            "dangling=true",
            "--filter",
            "label=org.netclaim.key",
        ],
    );
    let names = netclaim_harness::netns::names_of(pid);
    if !names.is_empty() {
        left.push(format!("lab names: {names:?}"));
    }
    left
}

/// A case of this file.
type Case = fn() -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let docker_ok = docker_precondition();
    let before = docker_ok.as_ref().ok().map(|_| host_state());
    let mut trials = Vec::new();
    let with_docker: [(&str, Case); 6] = [
        ("image.built-from-debian-once", image_is_built_once),
        (
            "default-run.as-the-readme-says",
            default_run_is_what_the_readme_says,
        ),
        (
            "options.each-as-the-readme-table-says",
            options_users_try_are_what_the_readme_says,
        ),
        (
            "privileged.catalog-equals-the-hosts",
            privileged_catalog_equals_the_hosts,
        ),
        (
            "privileged.cargo-test-passes-inside",
            cargo_test_passes_in_the_privileged_container,
        ),
        (
            "compose.three-nodes-one-comparison",
            compose_nodes_merge_into_one_comparison,
        ),
    ];
    for (name, case) in with_docker {
        trials.push(match &docker_ok {
            Ok(()) => Trial::test(name, case),
            Err(why) => {
                let why = why.clone();
                Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why)))
            }
        });
    }
    for (name, program, case) in [
        (
            "deploy.manifests-valid-against-kubernetes-schemas",
            "kubernetes-validate",
            manifests_validate_against_kubernetes_schemas as fn(PathBuf) -> Result<(), Failed>,
        ),
        (
            "deploy.workflows-valid",
            "check-jsonschema",
            workflows_validate,
        ),
    ] {
        trials.push(match validator(program) {
            Ok(path) => Trial::test(name, move || case(path)),
            Err(why) => Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why))),
        });
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // After every case: the host as it was, and nothing of these tests left.
    if let Some(before) = before {
        let mut problems = host_state().diff(&before);
        problems.extend(leftovers());
        if problems.is_empty() {
            println!(
                "host untouched: iptables rules (Docker's chains aside), links, addresses, \
                 routes and net.* sysctls as before; no container, network, volume or \
                 dangling image of these tests left"
            );
        } else {
            eprintln!(
                "the host changed or things were left:\n{}",
                problems.join("\n")
            );
            std::process::exit(1);
        }
    }
    conclusion.exit();
}
