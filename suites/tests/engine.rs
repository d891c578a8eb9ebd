//! Claim files run end to end in real labs (as root, or in a user namespace of this
//! process's own): what the engine must get right about the harness's own limits.
//!
//! * the fill client's cap follows the model (a backlog of 1000 holds 1001 connections),
//!   and running out of descriptors on the way is the harness's `error`;
//! * a command or client the harness ends at `run.timeout` is no observation: `error`,
//!   naming the timeout and the model's prediction, unless the claim is about the kill;
//! * a sweep of more values than it runs at once records every value.
//!
//! Without privilege every case is reported as ignored with the reason.

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netclaim_suites::{catalog, executor, Claim, Ctx, Outcome, Verdict};

/// Claims from `text` (one claim file), with their ids.
fn claims_of(text: &str) -> Result<(tempfile::TempDir, Vec<Claim>), Failed> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("claims.toml");
    std::fs::write(&path, text)?;
    let claims = catalog::with_files(&[&path])
        .map_err(|e| format!("{e:?}"))?
        .into_iter()
        .filter(|c| c.id.starts_with("engine."))
        .collect();
    Ok((dir, claims))
}

fn run(text: &str) -> Result<Option<Outcome>, Failed> {
    let (_dir, claims) = claims_of(text)?;
    let claim = claims.first().ok_or("no claim parsed")?;
    if let Some(why) = claim.unmet_needs() {
        eprintln!("{}: {why}", claim.id);
        return Ok(None);
    }
    let (o, _) = executor::run_one(claim, &Ctx::detect());
    Ok(Some(o))
}

fn shown(o: &Outcome) -> String {
    let mut text = format!("verdict {} ({})\n", o.verdict(), o.reason());
    for c in o.claim_checks.iter().chain(&o.model_checks) {
        text.push_str(&format!("  {c}\n"));
    }
    for e in &o.evidence {
        text.push_str(&format!("  {}\n", e.replace('\n', "\n  ")));
    }
    text
}

const FILL_1000: &str = r#"
[[claim]]
id = "engine.fill-1000"
source = "suites/tests/engine.rs"
statement = "A listener with listen(1000) that never accepts queues 1001 connections."
lab = { server = "never-accept", backlog = 1000 }
run = { client = "fill" }
expect = { connections = 1001 }
"#;

// It was refuted with "observed 300": the client stopped at a fixed 300.
fn fill_follows_the_model() -> Result<Completion, Failed> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < 1200 {
        return Ok(Completion::ignored_with(format!(
            "RLIMIT_NOFILE is {}: 1001 connections need about 1100 descriptors",
            lim.rlim_cur
        )));
    }
    let Some(o) = run(FILL_1000)? else {
        return Ok(Completion::ignored_with(
            "a tool the claim needs is missing",
        ));
    };
    if o.verdict() != Verdict::Holds || !o.model_agrees() {
        return Err(format!("expected holds with 1001 connections\n{}", shown(&o)).into());
    }
    if o.observed.value.as_deref() != Some("1001 connections") {
        return Err(format!("observed {:?}\n{}", o.observed.value, shown(&o)).into());
    }
    Ok(Completion::Completed)
}

/// The environment variable under which this binary, run again, is the child of
/// [`fill_out_of_descriptors`].
const CHILD: &str = "NETCLAIM_ENGINE_TEST_LOW_NOFILE";

// 300 descriptors cannot hold 1001 connections: that is the harness running out, not the
// queue refusing.
fn fill_out_of_descriptors() -> Result<Completion, Failed> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .env(CHILD, "300")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if text.starts_with("ignored") {
        return Ok(Completion::ignored_with(text.trim().to_owned()));
    }
    if !text.starts_with("verdict error")
        || !text.contains("file descriptors (EMFILE)")
        || !text.contains("RLIMIT_NOFILE is 300")
    {
        return Err(
            format!("expected an error naming the descriptor limit:\n{text}\n{stderr}").into(),
        );
    }
    Ok(Completion::Completed)
}

/// The child: the fill claim under RLIMIT_NOFILE = `limit`; prints its outcome.
fn low_nofile_child(limit: u64) -> ! {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit on this process, with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        println!("setrlimit failed: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    match run(FILL_1000) {
        Ok(Some(o)) => println!("{}", shown(&o)),
        Ok(None) => println!("ignored: a tool the claim needs is missing"),
        Err(e) => println!("failed: {e:?}"),
    }
    std::process::exit(0);
}

fn curl_claim(expect: &str) -> String {
    format!(
        r#"
[[claim]]
id = "engine.curl-cut-short"
source = "suites/tests/engine.rs"
statement = "With tcp_syn_retries=1, curl gives up after 3 s (run.timeout 1 s cuts it short)."
lab = {{ server = "drop-syn", sysctls = {{ "net.ipv4.tcp_syn_retries" = 1 }} }}
run = {{ command = ["curl", "-sS", "--connect-timeout", "999", "http://{{target}}/"], timeout = "1s" }}
expect = {{ {expect} }}
"#
    )
}

// It was refuted ("give-up observed 0.992 s"): the kill at 1 s is the harness's.
fn command_cut_short() -> Result<Completion, Failed> {
    let Some(o) = run(&curl_claim(r#"duration = "3s", exit = 28"#))? else {
        return Ok(Completion::ignored_with("curl or iptables is missing"));
    };
    let reason = o.reason();
    if o.verdict() != Verdict::Error
        || !reason.contains("killed curl at its run.timeout of 1.000 s")
        || !reason.contains("the kernel gives up after 3.000 s")
        || !reason.contains("give a longer run.timeout")
    {
        return Err(format!("expected an error naming the cut\n{}", shown(&o)).into());
    }
    // When the kill is what the claim is about, it is the observation.
    let Some(o) = run(&curl_claim("killed = true"))? else {
        return Ok(Completion::ignored_with("curl or iptables is missing"));
    };
    if o.verdict() != Verdict::Holds {
        return Err(format!("expect.killed = true: expected holds\n{}", shown(&o)).into());
    }
    Ok(Completion::Completed)
}

// A client after the SYN whose event the harness stopped waiting for: the same.
fn client_cut_short() -> Result<Completion, Failed> {
    let Some(o) = run(r#"
[[claim]]
id = "engine.close-cut-short"
source = "suites/tests/engine.rs"
statement = "With tcp_fin_timeout=5, an orphaned FIN_WAIT_2 socket is gone after 5 s (run.timeout 1 s cuts it short)."
lab = { server = "silent", sysctls = { "net.ipv4.tcp_fin_timeout" = 5 } }
run = { client = "close", timeout = "1s" }
expect = { duration = "5s" }
"#)?
    else {
        return Ok(Completion::ignored_with(
            "a tool the claim needs is missing",
        ));
    };
    if o.verdict() != Verdict::Error
        || !o
            .reason()
            .contains("stopped waiting for the client at its run.timeout of 1.000 s")
    {
        return Err(format!("expected an error naming the cut\n{}", shown(&o)).into());
    }
    Ok(Completion::Completed)
}

// More values than a sweep runs at once: every one recorded and judged, in order.
fn sweep_beyond_its_slots() -> Result<Completion, Failed> {
    let values: Vec<String> = (1..=100).map(|v| v.to_string()).collect();
    let Some(o) = run(&format!(
        r#"
[[claim]]
id = "engine.sweep-100"
source = "suites/tests/engine.rs"
statement = "A refused connect fails with ECONNREFUSED, whatever tcp_fin_timeout is."
lab = {{ server = "refuse" }}
run = {{ client = "connect" }}
sweep = {{ sysctl = "net.ipv4.tcp_fin_timeout", values = [{}] }}
expect = {{ errno = "ECONNREFUSED" }}
"#,
        values.join(", ")
    ))?
    else {
        return Ok(Completion::ignored_with(
            "a tool the claim needs is missing",
        ));
    };
    let observed = o.observed.value.clone().unwrap_or_default();
    let seen: Vec<&str> = observed
        .split_whitespace()
        .filter_map(|v| v.split(':').next())
        .collect();
    if o.verdict() != Verdict::Holds
        || seen != values.iter().map(String::as_str).collect::<Vec<_>>()
    {
        return Err(format!("expected 100 values, in order, holding\n{}", shown(&o)).into());
    }
    Ok(Completion::Completed)
}

/// One case: completed, ignored with a reason, or failed.
type Case = fn() -> Result<Completion, Failed>;

fn main() {
    if let Some(limit) = std::env::var(CHILD).ok().and_then(|v| v.parse().ok()) {
        let _ = netclaim_harness::userns::enter_if_unprivileged();
        low_nofile_child(limit);
    }
    let _ = netclaim_harness::userns::enter_if_unprivileged();
    netclaim_harness::resource::raise_nofile();
    let args = Arguments::from_args();
    let privileged = netclaim_harness::privilege::check();
    let cases: [(&str, Case); 5] = [
        ("fill.backlog-1000-holds-1001", fill_follows_the_model),
        (
            "fill.out-of-descriptors-is-an-error",
            fill_out_of_descriptors,
        ),
        ("timeout.command-cut-short-is-an-error", command_cut_short),
        ("timeout.client-cut-short-is-an-error", client_cut_short),
        ("sweep.more-values-than-slots", sweep_beyond_its_slots),
    ];
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            let privileged = privileged.clone();
            Trial::ignorable_test(name, move || match privileged {
                Ok(()) => case(),
                Err(reason) => Ok(Completion::ignored_with(reason)),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
