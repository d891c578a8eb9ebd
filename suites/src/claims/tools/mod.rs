//! The timeouts of curl, wget and nc (seed 000): which option limits which phase, what
//! the tool prints and how it exits when the limit is reached, and where the kernel or
//! the resolver gives up first.
//!
//! Every claim runs the real tool in a lab (a port whose SYNs are dropped, a server that
//! completes the handshake and never answers, an HTTP server that trickles its body, or
//! a nameserver that never answers) and compares its duration, exit code and message
//! with the statement and with a prediction computed from the tool's options, the
//! sysctls in force and the resolver settings handed to it.
//!
//! Tool timers are user-space timers: they never fire early. A duration is timed from the
//! tool's first packet (its start-up is not the tool's timer), which the tool sends a
//! moment after arming its timer, so the windows allow `TOOL_EARLY` early and
//! `max(TOOL_STARTUP, 5 %)` late for the tool's process work. Options are fractional (`2.5`, `1.5`) where the tool
//! accepts that, to keep the tool's deadline clear of the kernel's SYN retransmissions,
//! which fall on whole seconds.

use std::net::SocketAddrV4;
use std::time::Duration;

use netclaim_harness::command::ToolCommand;
use netclaim_harness::model::SynModel;
use netclaim_harness::tolerance::tool_deadline_window;

use super::seeds;
use crate::claim::{Claim, Needs, Outcome, Procedure};
use crate::judge::checks::Against;
use crate::judge::timing::check_timing;
use crate::record::attempt::Measured;
use crate::text::{describe_model, secs};

mod curl;
mod dns;
mod nc;
#[cfg(test)]
mod tests;
mod timeout_sets_all;

use curl::MAX_TIME_STEPS;
use dns::DNS_TIMEOUT;
use nc::NC_W_IDLE;
use timeout_sets_all::TIMEOUT_SETS_ALL;

const S: Duration = Duration::from_secs(1);
/// Hard deadline added to every tool run beyond what it should take, on a machine that
/// starts processes as fast as an idle native one.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// [`DEADLINE_MARGIN`] stretched by this machine's measured slowness: under emulation a
/// tool's start-up alone took 5.5 s, and a tool killed at the harness's deadline is no
/// observation (`error`), so the margin grows with how slowly processes start now.
fn margin() -> Duration {
    netclaim_harness::slowness::stretch(DEADLINE_MARGIN)
}
/// A name under the reserved `example` TLD; with one dot and the default `ndots:1` the
/// resolver tries it as is, and the lab host has no domain to append.
const DNS_NAME: &str = "netclaim.example";

/// Records a duration check against `expected` in a tool window.
fn check_duration(o: &mut Outcome, against: Against, what: &str, expected: Duration, m: &Measured) {
    check_timing(
        o,
        against,
        what,
        expected,
        tool_deadline_window(expected),
        m,
    );
}

/// Records a "the output contains" check.
fn check_contains(o: &mut Outcome, against: Against, what: &str, text: &str, needle: &str) {
    check_contains_any(o, against, what, text, &[needle]);
}

/// Checks that `text` contains one of `needles` (a tool that words the same outcome in
/// more than one way).
fn check_contains_any(o: &mut Outcome, against: Against, what: &str, text: &str, needles: &[&str]) {
    let found = needles.iter().find(|n| text.contains(**n));
    let e = match needles {
        [one] => format!("contains {one:?}"),
        _ => format!("contains one of {needles:?}"),
    };
    let obs = format!(
        "{:?}",
        found
            .and_then(|n| line_with(text, n))
            .unwrap_or_else(|| last_line(text))
    );
    against.record(o, what, e, obs, found.is_some());
}

/// The last non-empty line of `text`.
fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .unwrap_or_default()
}

/// The first line of `text` containing `needle`.
fn line_with(text: &str, needle: &str) -> Option<String> {
    text.lines()
        .find(|l| l.contains(needle))
        .map(|l| l.trim().to_owned())
}

fn url(addr: SocketAddrV4) -> String {
    format!("http://{addr}/")
}

/// curl without config file or proxy, silent but showing errors.
fn curl(deadline: Duration, args: &[&str]) -> ToolCommand {
    ToolCommand::new("curl", deadline)
        .args(["-q", "-sS", "--noproxy", "*", "-o", "/dev/null"])
        .args(args.iter().copied())
}

/// wget without config file or proxy, writing the document to /dev/null.
fn wget(deadline: Duration, args: &[&str]) -> ToolCommand {
    ToolCommand::new("wget", deadline)
        .args(["--no-config", "--no-proxy", "-O", "/dev/null"])
        .args(args.iter().copied())
}

/// The evidence line of a dropped-SYN lab: its namespace `lab`, the `target` whose SYNs
/// are dropped and the SYN sysctls in force there.
fn drop_lab_evidence(lab: &str, target: SocketAddrV4, model: &SynModel) -> String {
    format!(
        "lab {}: iptables SYN DROP on {}; in force: {}; the kernel would give up after {}",
        lab,
        target,
        describe_model(model),
        secs(model.schedule().give_up)
    )
}

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    let _drop_lab =
        "one namespace, iptables -A INPUT -p tcp --dport 7 --syn -j DROP, target 127.0.0.1:7";
    let silent = "one namespace, a TCP listener on 127.0.0.1 that never calls accept()";
    let blackhole = "client namespace 192.0.2.1 on a veth to 192.0.2.2, which drops all input; \
                     the tool's own /etc/resolv.conf names 192.0.2.2";
    let with = |t: &'static [&'static str]| Needs { tools: t };
    vec![
        Claim {
            id: "curl.max-time",
            source: seeds::TOOLS,
            statement: "curl --max-time N caps the whole transfer: a slow download stops at N s with exit 28 and \"Operation timed out after N milliseconds with X out of Y bytes received\".",
            lab: "one namespace, an HTTP server on 127.0.0.1 that announces Content-Length 1000000 and trickles the body (20 kB, then 1 kB every 100 ms)",
            action: "curl --max-time 2 -o /dev/null http://127.0.0.1:PORT/",
            needs: with(&["curl"]),
            estimate: 3 * S,
            run: Procedure::Rust(&MAX_TIME_STEPS),
        },
        Claim {
            id: "wget.dns-timeout",
            source: seeds::TOOLS,
            statement: "wget --dns-timeout N with an unreachable nameserver gives up after N s, or earlier when the resolver's own timeout/attempts (resolv.conf) run out first.",
            lab: blackhole,
            action: "wget --tries 1 http://netclaim.example/ twice: --dns-timeout 1.5 with resolver timeout:2 attempts:2, and --dns-timeout 10 with timeout:1 attempts:2",
            needs: with(&["iptables", "wget"]),
            estimate: 4 * S,
            run: Procedure::Rust(&DNS_TIMEOUT),
        },
        Claim {
            id: "wget.timeout-sets-all",
            source: seeds::TOOLS,
            statement: "wget --timeout N sets the DNS, connect and read timeouts at once.",
            lab: "three labs: a dropped-SYN port, a listener that never accepts, a nameserver that never answers (resolver timeout:5 attempts:2)",
            action: "wget --timeout 1.5 --tries 1 against each",
            needs: with(&["iptables", "wget"]),
            estimate: 6 * S,
            run: Procedure::Rust(&TIMEOUT_SETS_ALL),
        },
        Claim {
            id: "nc.w-idle",
            source: seeds::TOOLS,
            statement: "nc -w N connected to a silent server closes the connection after N s idle.",
            lab: silent,
            action: "nc -v -w 2 127.0.0.1 PORT with stdin at EOF (/dev/null); again with -q 1",
            needs: with(&["nc"]),
            estimate: 5 * S,
            run: Procedure::Rust(&NC_W_IDLE),
        },
    ]
}
