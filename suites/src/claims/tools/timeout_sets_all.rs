//! `wget.timeout-sets-all`: wget --timeout limits the DNS, connect and read phases, each in
//! a lab of its own.

use std::net::SocketAddrV4;
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_harness::model::SynModel;
use netclaim_lab::{kind, Lab, PEER};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::dns::{blackhole_lab, DnsCase, DnsRun, Resolver};
use super::{check_contains, check_duration, drop_lab_evidence, margin, url, wget, DNS_NAME};
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::tool::{tool_evidence, version_line};
use crate::measure::labs::{model_in, DROPPED_PORT};
use crate::measure::tool::{run_tool, version_of};
use crate::record::tool::ToolRun;
use crate::text::secs;

/// The `--timeout` of `wget.timeout-sets-all`, as a duration and as passed.
const SETS_ALL_OPTION: (Duration, &str) = (Duration::from_millis(1500), "1.5");

/// `wget.timeout-sets-all`'s DNS phase: a resolver slower than the option.
const SETS_ALL_DNS: DnsCase = DnsCase {
    label: "dns",
    option: "--timeout",
    value: SETS_ALL_OPTION.0,
    resolver: Resolver {
        timeout_s: 5,
        attempts: 2,
    },
};

/// What `wget.timeout-sets-all` measured: one wget `--timeout` run per phase, each in a
/// lab of its own.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TimeoutSetsAll {
    /// The installed wget's version.
    version: Option<String>,
    /// The dropped-SYN lab's namespace.
    connect_lab: String,
    /// The port whose SYNs it drops.
    connect_target: SocketAddrV4,
    /// The SYN sysctls in force there.
    connect_model: SynModel,
    /// The run against the dropped port.
    connect: ToolRun,
    /// The silent server's namespace.
    read_lab: String,
    /// Where the silent server listens.
    read_addr: SocketAddrV4,
    /// The run against the silent server.
    read: ToolRun,
    /// The blackhole lab's client namespace.
    dns_client: String,
    /// The run against the silent nameserver ([`SETS_ALL_DNS`]).
    dns: DnsRun,
}

/// `wget.timeout-sets-all`, measured: wget against a dropped port, a silent server and a
/// silent nameserver.
fn measure_timeout_sets_all(_ctx: &Ctx) -> Result<Observation<TimeoutSetsAll>> {
    let (option, value) = SETS_ALL_OPTION;
    let deadline = option + margin();

    // Connect: a port whose SYNs are dropped.
    let drop_lab = Lab::builder().serve(kind::DropSyn, DROPPED_PORT).build()?;
    let connect_target = drop_lab.addr(DROPPED_PORT);
    let connect_model = model_in(drop_lab.ns())?;
    let cmd = wget(
        deadline,
        &["--timeout", value, "--tries", "1", &url(connect_target)],
    );
    let connect = run_tool(drop_lab.ns(), &cmd, DROPPED_PORT)?;
    let connect_lab = drop_lab.ns().name().to_owned();
    drop(drop_lab);

    // Read: a server that completes the handshake and never answers.
    let silent_lab = Lab::builder()
        .serve(kind::NeverAccept { backlog: 16 }, 0)
        .build()
        .context("building the silent-server lab")?;
    let read_addr = silent_lab
        .target()
        .and_then(netclaim_lab::Target::tcp)
        .context("the silent server's address")?;
    let cmd = wget(
        deadline,
        &["--timeout", value, "--tries", "1", &url(read_addr)],
    );
    let read = run_tool(silent_lab.ns(), &cmd, read_addr.port())?;
    let read_lab = silent_lab.ns().name().to_owned();
    drop(silent_lab);

    // DNS: a nameserver that never answers, with a resolver slower than the option.
    let blackhole = blackhole_lab()?;
    let dns = SETS_ALL_DNS.run(&blackhole)?;
    Ok(Observation::Observed(TimeoutSetsAll {
        version: version_of("wget"),
        connect_lab,
        connect_target,
        connect_model,
        connect,
        read_lab,
        read_addr,
        read,
        dns_client: blackhole.ns().name().to_owned(),
        dns,
    }))
}

/// `wget.timeout-sets-all`, judged: each phase ends after the option (the connect phase
/// earlier if the kernel gives up first).
fn judge_timeout_sets_all(m: &TimeoutSetsAll, _ctx: &Ctx) -> Outcome {
    let (option, _) = SETS_ALL_OPTION;
    let mut o = Outcome::default();
    version_line(&mut o, "wget", m.version.as_deref());
    let mut observed = Vec::new();

    // Connect: a port whose SYNs are dropped.
    let run = &m.connect;
    o.evidence(drop_lab_evidence(
        &m.connect_lab,
        m.connect_target,
        &m.connect_model,
    ));
    o.evidence(tool_evidence(run));
    let connect_expected = option.min(m.connect_model.schedule().give_up);
    phase_checks(
        &mut o,
        "connect",
        option,
        connect_expected,
        run,
        &format!(
            "Connecting to {}... failed: {}.",
            m.connect_target,
            Errno::ETIMEDOUT.desc()
        ),
    );
    observed.push(("connect", run.took()));

    // Read: a server that completes the handshake and never answers.
    let run = &m.read;
    o.evidence(format!(
        "lab {}: listener on {} that never accepts",
        m.read_lab, m.read_addr
    ));
    o.evidence(tool_evidence(run));
    phase_checks(
        &mut o,
        "read",
        option,
        option,
        run,
        "Read error (Connection timed out) in headers.",
    );
    observed.push(("read", run.took()));

    // DNS: a nameserver that never answers, with a resolver slower than the option.
    let case = &SETS_ALL_DNS;
    let run = &m.dns;
    o.evidence(format!(
        "lab: client {} on a veth to {}, which drops all input; resolv.conf {:?}, name \
         {DNS_NAME}\n{}",
        m.dns_client,
        PEER,
        case.resolver.resolv_conf(),
        run.evidence()
    ));
    let took = run.measurement.tool_timer();
    check_duration(
        &mut o,
        Against::Statement,
        "dns: gives up after --timeout",
        option,
        &took,
    );
    case.model_checks(&mut o, run);
    observed.push(("dns", took.took));

    o.claimed = Figures {
        value: Some(format!(
            "connect, read and DNS each end after {}",
            secs(option)
        )),
        ..Figures::default()
    }
    .duration(option);
    o.expected = Figures {
        exit_code: Some(4),
        value: Some(format!(
            "connect {}, read {}, dns {}",
            secs(connect_expected),
            secs(option),
            secs(case.expected())
        )),
        ..Figures::default()
    }
    .duration(option);
    o.observed = Figures {
        value: Some(
            observed
                .iter()
                .map(|(p, d)| format!("{p} {}", secs(*d)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ..Figures::default()
    };
    o
}

/// `wget.timeout-sets-all` in two steps.
pub(super) const TIMEOUT_SETS_ALL: Steps<TimeoutSetsAll> = Steps {
    measure: measure_timeout_sets_all,
    judge: judge_timeout_sets_all,
};

/// Checks one phase of `wget --timeout`: statement and model duration, message, exit.
fn phase_checks(
    o: &mut Outcome,
    phase: &str,
    stated: Duration,
    expected: Duration,
    run: &ToolRun,
    message: &str,
) {
    let output = &run.output;
    let took = run.measurement.tool_timer();
    check_duration(
        o,
        Against::Statement,
        &format!("{phase}: gives up after --timeout"),
        stated,
        &took,
    );
    check_duration(
        o,
        Against::Model,
        &format!("{phase}: give-up time"),
        expected,
        &took,
    );
    check_contains(
        o,
        Against::Model,
        &format!("{phase}: message"),
        &output.combined(),
        message,
    );
    check_eq(
        o,
        Against::Model,
        &format!("{phase}: exit code (network failure)"),
        Some(4),
        output.exit_code(),
    );
}
