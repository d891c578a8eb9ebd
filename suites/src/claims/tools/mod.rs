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

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::http::{SlowBodyServer, Trickle};
use netclaim_fixtures::server::NoAcceptListener;
use netclaim_harness::command::{CommandOutput, ToolCommand};
use netclaim_harness::model::SynModel;
use netclaim_harness::tolerance::{tool_deadline_window, Window};
use netclaim_harness::NetNs;
use nix::errno::Errno;

use serde::{Deserialize, Serialize};

use super::seeds;
use crate::claim::{Check, Claim, Ctx, Figures, Measured, Needs, Outcome, Procedure, Steps};
use crate::lab::{
    self, check_eq, check_timing, secs, Against, BlackholeLab, Measurement, SynDropLab, ToolRun,
    DROPPED_PORT, TOOL_STARTUP,
};

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
fn check_duration(
    o: &mut Outcome,
    against: Against,
    what: &str,
    expected: Duration,
    m: &lab::Measured,
) {
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
        lab::describe_model(model),
        secs(model.schedule().give_up)
    )
}

// ---------------------------------------------------------------------------------------
// curl

/// `curl: (28) Operation timed out after N milliseconds with X out of Y bytes received`.
fn parse_max_time_message(text: &str) -> Option<(u64, u64, u64)> {
    let rest = text.split("Operation timed out after ").nth(1)?;
    let mut words = rest.split_whitespace();
    let ms = words.next()?.parse().ok()?;
    (words.next()? == "milliseconds").then_some(())?;
    (words.next()? == "with").then_some(())?;
    let x = words.next()?.parse().ok()?;
    (words.next()? == "out").then_some(())?;
    (words.next()? == "of").then_some(())?;
    let y = words.next()?.parse().ok()?;
    Some((ms, x, y))
}

/// How the slow HTTP server of `curl.max-time` sends its body: far slower than the
/// 2 s `--max-time`.
const MAX_TIME_TRICKLE: Trickle = Trickle {
    content_length: 1_000_000,
    initial: 20_000,
    chunk: 1_000,
    interval: Duration::from_millis(100),
};

/// The `--max-time` of `curl.max-time`.
const MAX_TIME: Duration = Duration::from_secs(2);

/// What `curl.max-time` measured: curl with `--max-time 2` against a server trickling a
/// large body ([`MAX_TIME_TRICKLE`]), and what the server did meanwhile.
#[derive(Debug, Serialize, Deserialize)]
struct MaxTime {
    /// The lab's namespace.
    lab: String,
    /// The URL curl fetched.
    url: String,
    /// The installed curl's version.
    version: Option<String>,
    /// The curl run.
    run: ToolRun,
    /// What the server recorded per connection, as text (its instants mean nothing once
    /// the measuring process is gone).
    served: String,
    /// When the server sent the headers, from just before curl was started.
    headers_after: Option<Duration>,
    /// Body bytes the server had written when curl hung up.
    body_sent: Option<u64>,
}

/// `curl.max-time`, measured: curl against the trickling server.
fn measure_max_time(_ctx: &Ctx) -> Result<Measured<MaxTime>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let trickle = MAX_TIME_TRICKLE;
    let server = SlowBodyServer::start(&ns, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), trickle)
        .context("starting the slow HTTP server")?;
    let cmd = curl(
        MAX_TIME + margin(),
        &["--max-time", "2", &url(server.addr())],
    );
    let started = Instant::now();
    let run = lab::run_tool(&ns, &cmd, server.addr().port())?;
    let served = server.served();
    drop(server);
    let headers_after = served
        .first()
        .and_then(|s| s.headers_at)
        .map(|t| t.saturating_duration_since(started));
    Ok(Measured::Observed(MaxTime {
        lab: ns.name().to_owned(),
        url: cmd
            .command_line()
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned(),
        version: lab::version_of("curl"),
        run,
        served: format!("{served:?}"),
        headers_after,
        body_sent: served.first().map(|s| s.body_sent),
    }))
}

/// `curl.max-time`, judged: the stated exit 28 and message at N s, and which body bytes
/// the server's schedule says curl had by then.
fn judge_max_time(m: &MaxTime, _ctx: &Ctx) -> Outcome {
    let trickle = MAX_TIME_TRICKLE;
    let max_time = MAX_TIME;
    let run = &m.run;
    let out = run.output.combined();
    let parsed = parse_max_time_message(&out);

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: HTTP server on {} answers 200 with Content-Length {}, sends {} body bytes at \
         once, then {} bytes every {} ms (the whole body would take {})",
        m.lab,
        m.url,
        trickle.content_length,
        trickle.initial,
        trickle.chunk,
        trickle.interval.as_millis(),
        secs(trickle.full_duration())
    ));
    o.evidence(format!("server side: {}", m.served));
    o.evidence(lab::tool_evidence(run));
    lab::version_line(&mut o, "curl", m.version.as_deref());
    o.claimed = Figures {
        exit_code: Some(28),
        value: Some(
            "Operation timed out after 2000 milliseconds with X out of Y bytes received".into(),
        ),
        ..Figures::default()
    }
    .duration(max_time);
    o.observed = lab::tool_figures(run);

    // From the SYN to the exit: curl arms --max-time before it connects, so its FIN comes
    // a little less than 2 s after the SYN; its exit does not.
    let took = run.measurement.tool_timer();
    check_duration(&mut o, Against::Statement, "run time", max_time, &took);
    check_eq(
        &mut o,
        Against::Statement,
        "exit code",
        Some(28),
        run.output.exit_code(),
    );
    o.claim_check(
        "message",
        "Operation timed out after N milliseconds with X out of Y bytes received",
        format!("{:?}", last_line(&out)),
        parsed.is_some(),
    );
    let reported_window = Window {
        min: max_time,
        max: max_time + TOOL_STARTUP,
    };
    let reported = parsed.map(|(ms, _, _)| Duration::from_millis(ms));
    // curl's own count of its run: as late as its timer fired, so it carries the run's
    // measured error.
    Against::Statement.record_check(
        &mut o,
        Check {
            what: "N in the message".into(),
            expected: format!("{} ms within {reported_window}", max_time.as_millis()),
            observed: reported.map_or("(no message)".into(), |d| format!("{} ms", d.as_millis())),
            ok: reported.is_some_and(|d| reported_window.contains(d)),
            timing: reported.map(|d| lab::timing(reported_window, d, &took)),
        },
    );

    // The model: curl's whole-transfer deadline ends it in the middle of the body, with
    // the bytes the server had sent by then.
    let headers_after = m.headers_after;
    // Low end: what the schedule had sent one tick before curl's N (counted from curl's
    // own start, which is later than ours by its start-up time, so this is a floor). High
    // end: what the server really had written when curl hung up; under load the
    // server's sleeps and curl's start-up shift both, so the schedule alone is no bound.
    let body_sent = m.body_sent;
    let predicted_x = match (headers_after, reported, body_sent) {
        (Some(h), Some(n), Some(sent)) => {
            let body_time = n.saturating_sub(h);
            let lo = trickle.sent_after(body_time.saturating_sub(trickle.interval));
            Some((lo, sent.max(lo)))
        }
        _ => None,
    };
    o.expected = Figures {
        exit_code: Some(28),
        value: Some(format!(
            "Operation timed out after ~{} milliseconds with {} out of {} bytes received",
            max_time.as_millis(),
            predicted_x.map_or("?".into(), |(lo, hi)| format!("{lo}..={hi}")),
            trickle.content_length
        )),
        ..Figures::default()
    }
    .duration(max_time);
    check_duration(&mut o, Against::Model, "run time", max_time, &took);
    check_eq(
        &mut o,
        Against::Model,
        "exit code",
        Some(28),
        run.output.exit_code(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "Y (the Content-Length)",
        Some(trickle.content_length),
        parsed.map(|(_, _, y)| y),
    );
    o.model_check(
        "X (body bytes: at least the schedule's by N − one tick, at most what the server wrote)",
        predicted_x.map_or("(server never sent headers)".into(), |(lo, hi)| {
            format!("{lo}..={hi}")
        }),
        parsed.map_or("(no message)".into(), |(_, x, _)| x.to_string()),
        matches!((predicted_x, parsed), (Some((lo, hi)), Some((_, x, _))) if (lo..=hi).contains(&x)),
    );
    o
}

/// `curl.max-time` in two steps.
const MAX_TIME_STEPS: Steps<MaxTime> = Steps {
    measure: measure_max_time,
    judge: judge_max_time,
};

// ---------------------------------------------------------------------------------------
// wget

// ---------------------------------------------------------------------------------------
// DNS

/// The resolver settings handed to the tool.
#[derive(Debug, Clone, Copy)]
struct Resolver {
    timeout_s: u64,
    attempts: u64,
}

impl Resolver {
    fn resolv_conf(self) -> String {
        format!(
            "nameserver {}\noptions timeout:{} attempts:{}\n",
            BlackholeLab::HOST,
            self.timeout_s,
            self.attempts
        )
    }

    /// When glibc's stub resolver gives up on a nameserver that never answers.
    ///
    /// `__res_context_send` loops `attempts` times over the nameservers; `send_dg` waits
    /// `retrans << ns` (ns = the server's index, 0 with one server, `/ nscount` beyond),
    /// with the A and AAAA queries of `getaddrinfo` sent together on one socket (no
    /// `single-request`), so both share each wait. With one server: timeout × attempts.
    fn give_up(self) -> Duration {
        Duration::from_secs(self.timeout_s * self.attempts)
    }

    /// When each round of queries goes out.
    fn rounds(self) -> Vec<Duration> {
        (0..self.attempts)
            .map(|k| Duration::from_secs(k * self.timeout_s))
            .collect()
    }
}

/// One DNS query seen on the wire, as a measurement records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueryAt {
    /// When it left, from just before the tool was started.
    after: Duration,
    /// The nameserver it went to.
    dst: Ipv4Addr,
    /// Its QTYPE (1 A, 28 AAAA).
    qtype: u16,
    /// The name asked for.
    name: String,
}

impl QueryAt {
    /// The QTYPE by name.
    fn qtype_name(&self) -> String {
        match self.qtype {
            1 => "A".into(),
            28 => "AAAA".into(),
            t => format!("type {t}"),
        }
    }
}

/// A wget run against a name only a silent nameserver could resolve.
#[derive(Debug, Serialize, Deserialize)]
struct DnsRun {
    /// What wget did.
    output: CommandOutput,
    /// The DNS queries it caused.
    queries: Vec<QueryAt>,
    /// The run timed from its first query (the resolver starts right after wget arms its
    /// --dns-timeout alarm) to its exit, with this machine's timer lateness meanwhile.
    measurement: Measurement,
}

impl DnsRun {
    /// Query send times relative to the tool's start.
    fn times(&self) -> Vec<Duration> {
        self.queries.iter().map(|q| q.after).collect()
    }

    /// Start times of the rounds of queries (queries within 100 ms form one round),
    /// relative to the first query.
    fn rounds(&self) -> Vec<Duration> {
        let times = self.times();
        let first = times.first().copied().unwrap_or_default();
        let mut rounds: Vec<Duration> = Vec::new();
        for t in times {
            let t = t - first;
            if rounds
                .last()
                .is_none_or(|r| t > *r + Duration::from_millis(100))
            {
                rounds.push(t);
            }
        }
        rounds
    }

    /// The output and the queries on the wire, as evidence.
    fn evidence(&self) -> String {
        let lines: Vec<String> = self
            .queries
            .iter()
            .map(|q| {
                format!(
                    "{:>8.3} s  query {} {} > {}:53",
                    q.after.as_secs_f64(),
                    q.qtype_name(),
                    q.name,
                    q.dst
                )
            })
            .collect();
        format!(
            "{}\n--- DNS queries on the wire (from the tool's start) ---\n{}",
            self.output,
            if lines.is_empty() {
                "(none)".into()
            } else {
                lines.join("\n")
            }
        )
    }
}

fn wget_dns_run(lab: &BlackholeLab, resolver: Resolver, args: &[&str]) -> Result<DnsRun> {
    let deadline = resolver.give_up() + margin();
    let target = format!("http://{DNS_NAME}/");
    let cmd = wget(deadline, args)
        .args(["--tries", "1", target.as_str()])
        .etc_file("resolv.conf", resolver.resolv_conf());
    let cap = lab
        .client
        .capture_dns()
        .context("starting the DNS capture")?;
    let started = Instant::now();
    let output = lab
        .client
        .run_command(&cmd)
        .with_context(|| format!("running {}", cmd.command_line()))?;
    let queries = cap.finish().context("finishing the DNS capture")?;
    // Read the timer probe over the run now, while its instants mean something.
    let measurement = Measurement::record(
        &[],
        queries.first().map(|q| q.at),
        output.started,
        output.started + output.duration,
        true,
    );
    let queries = queries
        .into_iter()
        .map(|q| QueryAt {
            after: q.at.saturating_duration_since(started),
            dst: q.dst,
            qtype: q.qtype,
            name: q.name,
        })
        .collect();
    Ok(DnsRun {
        output,
        queries,
        measurement,
    })
}

/// wget's message when its own `--dns-timeout` alarm ends the lookup (errno ETIMEDOUT).
fn wget_dns_alarm_message() -> String {
    format!("failed: {}.", Errno::ETIMEDOUT.desc())
}

/// wget's message when getaddrinfo gives up (EAI_AGAIN).
const EAI_AGAIN_MESSAGE: &str = "failed: Temporary failure in name resolution.";

/// One DNS case: a wget `--dns-timeout` (or `--timeout`) option against a resolver.
struct DnsCase {
    label: &'static str,
    option: &'static str,
    value: Duration,
    resolver: Resolver,
}

impl DnsCase {
    fn expected(&self) -> Duration {
        self.value.min(self.resolver.give_up())
    }

    fn expected_message(&self) -> String {
        if self.value < self.resolver.give_up() {
            wget_dns_alarm_message()
        } else {
            EAI_AGAIN_MESSAGE.into()
        }
    }

    fn run(&self, lab: &BlackholeLab) -> Result<DnsRun> {
        let v = format!("{}", self.value.as_secs_f64());
        wget_dns_run(lab, self.resolver, &[self.option, &v])
    }

    /// Model checks of one run: the give-up time, the message, the exit code, and the
    /// rounds of queries the resolver sent before the give-up.
    fn model_checks(&self, o: &mut Outcome, run: &DnsRun) {
        let out = run.output.combined();
        check_duration(
            o,
            Against::Model,
            &format!("{}: give-up time", self.label),
            self.expected(),
            &run.measurement.tool_timer(),
        );
        check_contains(
            o,
            Against::Model,
            &format!("{}: message", self.label),
            &out,
            &self.expected_message(),
        );
        check_eq(
            o,
            Against::Model,
            &format!("{}: exit code (network failure)", self.label),
            Some(4),
            run.output.exit_code(),
        );
        let predicted: Vec<u128> = self
            .resolver
            .rounds()
            .into_iter()
            .filter(|t| *t + Duration::from_millis(100) < self.expected())
            .map(|t| t.as_millis())
            .collect();
        let observed = run.rounds();
        let ok = predicted.len() == observed.len()
            && predicted.iter().zip(&observed).all(|(p, t)| {
                let w = tool_deadline_window(Duration::from_millis(*p as u64));
                w.contains(*t)
            });
        o.model_check(
            &format!(
                "{}: query rounds to {} (ms from the first)",
                self.label,
                BlackholeLab::HOST
            ),
            format!("{predicted:?}"),
            format!(
                "{:?}",
                observed.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
            ),
            ok && run.queries.iter().all(|q| q.dst == BlackholeLab::HOST),
        );
    }
}

/// `wget.dns-timeout`'s first case: `--dns-timeout` shorter than the resolver.
const DNS_SHORT: DnsCase = DnsCase {
    label: "--dns-timeout 1.5, resolver 2 s × 2",
    option: "--dns-timeout",
    value: Duration::from_millis(1500),
    resolver: Resolver {
        timeout_s: 2,
        attempts: 2,
    },
};

/// `wget.dns-timeout`'s second case: the resolver shorter than `--dns-timeout`.
const DNS_LONG: DnsCase = DnsCase {
    label: "--dns-timeout 10, resolver 1 s × 2",
    option: "--dns-timeout",
    value: Duration::from_secs(10),
    resolver: Resolver {
        timeout_s: 1,
        attempts: 2,
    },
};

/// What `wget.dns-timeout` measured: wget against the silent nameserver, once per case
/// ([`DNS_SHORT`], [`DNS_LONG`]).
#[derive(Debug, Serialize, Deserialize)]
struct DnsTimeout {
    /// The client's namespace.
    client: String,
    /// The silent host's namespace.
    host: String,
    /// The installed wget's version.
    version: Option<String>,
    /// The run of [`DNS_SHORT`].
    short: DnsRun,
    /// The run of [`DNS_LONG`].
    long: DnsRun,
}

/// `wget.dns-timeout`, measured: both cases against the blackhole lab.
fn measure_dns_timeout(_ctx: &Ctx) -> Result<Measured<DnsTimeout>> {
    let lab = BlackholeLab::new(&[])?;
    let short = DNS_SHORT.run(&lab)?;
    let long = DNS_LONG.run(&lab)?;
    Ok(Measured::Observed(DnsTimeout {
        client: lab.client.name().to_owned(),
        host: lab.host.name().to_owned(),
        version: lab::version_of("wget"),
        short,
        long,
    }))
}

/// `wget.dns-timeout`, judged: the option's N s, or the resolver's own give-up when it
/// comes first.
fn judge_dns_timeout(m: &DnsTimeout, _ctx: &Ctx) -> Outcome {
    let (short, long) = (&DNS_SHORT, &DNS_LONG);
    let (a, b) = (&m.short, &m.long);

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab: client {} ({}) on a veth to {} ({}), which drops all input; the tool sees its own \
         /etc/resolv.conf naming {} as the only nameserver; name {DNS_NAME}. glibc waits \
         timeout × attempts for one silent server (A and AAAA share each wait)",
        m.client,
        BlackholeLab::CLIENT,
        m.host,
        BlackholeLab::HOST,
        BlackholeLab::HOST
    ));
    for (case, run) in [(short, a), (long, b)] {
        o.evidence(format!(
            "{}: resolv.conf {:?}\n{}",
            case.label,
            case.resolver.resolv_conf(),
            run.evidence()
        ));
    }
    lab::version_line(&mut o, "wget", m.version.as_deref());
    o.claimed = Figures {
        value: Some(format!(
            "{}: {} (the option); {}: {} (the resolver's, earlier)",
            short.label,
            secs(short.value),
            long.label,
            secs(long.resolver.give_up())
        )),
        ..Figures::default()
    }
    .duration(short.value);
    o.expected = Figures {
        exit_code: Some(4),
        value: Some(format!(
            "{}: {} {:?}; {}: {} {:?}",
            short.label,
            secs(short.expected()),
            short.expected_message(),
            long.label,
            secs(long.expected()),
            long.expected_message()
        )),
        ..Figures::default()
    }
    .duration(short.expected());
    let (took_a, took_b) = (a.measurement.tool_timer(), b.measurement.tool_timer());
    o.observed = Figures {
        exit_code: a.output.exit_code(),
        value: Some(format!(
            "{}: {} {:?}; {}: {} {:?}",
            short.label,
            secs(took_a.took),
            line_with(&a.output.combined(), "Resolving").unwrap_or_default(),
            long.label,
            secs(took_b.took),
            line_with(&b.output.combined(), "Resolving").unwrap_or_default()
        )),
        ..Figures::default()
    }
    .duration(took_a.took);

    check_duration(
        &mut o,
        Against::Statement,
        &format!("{}: gives up after the option", short.label),
        short.value,
        &took_a,
    );
    check_duration(
        &mut o,
        Against::Statement,
        &format!("{}: gives up earlier, when the resolver does", long.label),
        long.resolver.give_up(),
        &took_b,
    );
    short.model_checks(&mut o, a);
    long.model_checks(&mut o, b);
    o
}

/// `wget.dns-timeout` in two steps.
const DNS_TIMEOUT: Steps<DnsTimeout> = Steps {
    measure: measure_dns_timeout,
    judge: judge_dns_timeout,
};

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
struct TimeoutSetsAll {
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
fn measure_timeout_sets_all(_ctx: &Ctx) -> Result<Measured<TimeoutSetsAll>> {
    let (option, value) = SETS_ALL_OPTION;
    let deadline = option + margin();

    // Connect: a port whose SYNs are dropped.
    let drop_lab = SynDropLab::new(&[])?;
    let connect_model = lab::model_in(&drop_lab.ns)?;
    let cmd = wget(
        deadline,
        &["--timeout", value, "--tries", "1", &url(drop_lab.target)],
    );
    let connect = lab::run_tool(&drop_lab.ns, &cmd, DROPPED_PORT)?;
    let (connect_lab, connect_target) = (drop_lab.ns.name().to_owned(), drop_lab.target);
    drop(drop_lab);

    // Read: a server that completes the handshake and never answers.
    let ns = NetNs::new().context("creating the silent-server namespace")?;
    let listener = NoAcceptListener::bind(&ns, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), 16)
        .context("binding the silent server")?;
    let cmd = wget(
        deadline,
        &["--timeout", value, "--tries", "1", &url(listener.addr())],
    );
    let read = lab::run_tool(&ns, &cmd, listener.addr().port())?;
    let (read_lab, read_addr) = (ns.name().to_owned(), listener.addr());
    drop(listener);
    drop(ns);

    // DNS: a nameserver that never answers, with a resolver slower than the option.
    let blackhole = BlackholeLab::new(&[])?;
    let dns = SETS_ALL_DNS.run(&blackhole)?;
    Ok(Measured::Observed(TimeoutSetsAll {
        version: lab::version_of("wget"),
        connect_lab,
        connect_target,
        connect_model,
        connect,
        read_lab,
        read_addr,
        read,
        dns_client: blackhole.client.name().to_owned(),
        dns,
    }))
}

/// `wget.timeout-sets-all`, judged: each phase ends after the option (the connect phase
/// earlier if the kernel gives up first).
fn judge_timeout_sets_all(m: &TimeoutSetsAll, _ctx: &Ctx) -> Outcome {
    let (option, _) = SETS_ALL_OPTION;
    let mut o = Outcome::default();
    lab::version_line(&mut o, "wget", m.version.as_deref());
    let mut observed = Vec::new();

    // Connect: a port whose SYNs are dropped.
    let run = &m.connect;
    o.evidence(drop_lab_evidence(
        &m.connect_lab,
        m.connect_target,
        &m.connect_model,
    ));
    o.evidence(lab::tool_evidence(run));
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
    o.evidence(lab::tool_evidence(run));
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
        BlackholeLab::HOST,
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
const TIMEOUT_SETS_ALL: Steps<TimeoutSetsAll> = Steps {
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

// ---------------------------------------------------------------------------------------
// nc

/// The `-w` of `nc.w-idle`.
const NC_IDLE: Duration = Duration::from_secs(2);

/// What `nc.w-idle` measured: `nc -w 2` connected to a server that never sends, without
/// and with `-q 1`.
#[derive(Debug, Serialize, Deserialize)]
struct NcIdle {
    /// The lab's namespace.
    lab: String,
    /// Where the silent server listens.
    addr: SocketAddrV4,
    /// The installed nc's version.
    version: Option<String>,
    /// `nc -v -w 2`.
    run: ToolRun,
    /// The same with `-q 1`.
    run_q: ToolRun,
    /// `run` as nc's idle timer: from its SYN to its FIN, with this machine's timer
    /// lateness meanwhile.
    until_close: lab::Measured,
}

/// `nc.w-idle`, measured: nc against the silent server, without and with `-q 1`.
fn measure_nc_w_idle(_ctx: &Ctx) -> Result<Measured<NcIdle>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let listener = NoAcceptListener::bind(&ns, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), 16)
        .context("binding the silent server")?;
    let addr = listener.addr();
    let option = NC_IDLE;
    let base = [
        "-v".to_string(),
        "-w".into(),
        "2".into(),
        addr.ip().to_string(),
        addr.port().to_string(),
    ];
    // stdin is /dev/null: at EOF at once, so only the connection can be idle.
    let plain = ToolCommand::new("nc", option + margin()).args(base.clone());
    // The same with "-q 1", which the man page says quits 1 s after EOF on stdin.
    let with_q = ToolCommand::new("nc", option + margin())
        .args(["-q", "1"])
        .args(base);
    let run = lab::run_tool(&ns, &plain, addr.port())?;
    let run_q = lab::run_tool(&ns, &with_q, addr.port())?;
    // nc closes the idle connection when -w expires: timed to its FIN, here, where the
    // timer probe covers the run.
    let until_close = run.until_close(addr.port());
    Ok(Measured::Observed(NcIdle {
        lab: ns.name().to_owned(),
        addr,
        version: lab::version_of("nc"),
        run,
        run_q,
        until_close,
    }))
}

/// `nc.w-idle`, judged: the connection is established and closed after -w of idle.
fn judge_nc_w_idle(m: &NcIdle, _ctx: &Ctx) -> Outcome {
    let (addr, run, run_q) = (m.addr, &m.run, &m.run_q);
    let option = NC_IDLE;
    let out = run.output.combined();
    // The client's FIN, relative to its SYN: when nc closed the connection.
    let fin_after = |r: &ToolRun| -> Option<Duration> {
        let syn = r
            .events
            .iter()
            .find(|e| e.flags.is_syn() && e.dst.port() == addr.port())?;
        let fin = r.events.iter().find(|e| {
            e.flags.0 & netclaim_harness::capture::TcpFlags::FIN != 0
                && e.src.port() == syn.src.port()
                && e.dst.port() == addr.port()
        })?;
        Some(fin.at - syn.at)
    };
    let fin = fin_after(run);
    let fin_q = fin_after(run_q);

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: a listener on {addr} that never calls accept(): the kernel completes the \
         handshake, nothing is ever sent back",
        m.lab
    ));
    o.evidence(lab::tool_evidence(run));
    o.evidence(format!(
        "with -q 1 (evidence only, not checked: the man page says -q quits N s after EOF on \
         stdin; compare the client FIN and the exit time below):\n{}",
        lab::tool_evidence(run_q)
    ));
    o.evidence(format!(
        "client FIN after its SYN: without -q {:?}, with -q 1 {:?}",
        fin.map(secs),
        fin_q.map(secs)
    ));
    lab::version_line(&mut o, "nc", m.version.as_deref());
    o.claimed = Figures::default().duration(option);
    o.expected = Figures {
        exit_code: Some(0),
        value: Some(format!(
            "Connection to {} {} port [tcp/*] succeeded!",
            addr.ip(),
            addr.port()
        )),
        ..Figures::default()
    }
    .duration(option);
    o.observed = lab::tool_figures(run);
    o.observed.value = Some(format!(
        "{}; FIN after {}; with -q 1: {}, exit {:?}",
        line_with(&out, "succeeded").unwrap_or_else(|| last_line(&out)),
        fin.map_or("(none)".into(), secs),
        secs(run_q.took()),
        run_q.output.exit_code()
    ));

    check_contains(
        &mut o,
        Against::Statement,
        "the connection is established",
        &out,
        "succeeded!",
    );
    // nc closes the idle connection when -w expires: timed to its FIN.
    let took = m.until_close.clone();
    check_duration(
        &mut o,
        Against::Statement,
        "closes after -w of idle",
        option,
        &took,
    );
    check_duration(&mut o, Against::Model, "run time", option, &took);
    check_eq(
        &mut o,
        Against::Model,
        "exit code (silent close)",
        Some(0),
        run.output.exit_code(),
    );
    let fin_window = tool_deadline_window(option);
    match fin {
        // nc's timer, seen on the wire: the run's measured error applies to it.
        Some(d) => check_timing(
            &mut o,
            Against::Model,
            "client FIN on the wire, after its SYN",
            option,
            fin_window,
            &lab::Measured { took: d, ..took },
        ),
        None => o.model_check(
            "client FIN on the wire, after its SYN",
            format!("{} within {fin_window}", secs(option)),
            "(no FIN)",
            false,
        ),
    }
    o
}

/// `nc.w-idle` in two steps.
const NC_W_IDLE: Steps<NcIdle> = Steps {
    measure: measure_nc_w_idle,
    judge: judge_nc_w_idle,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::testing::ctx;
    use crate::Verdict;

    /// A recorded curl run: its first SYN 5 ms after the spawn, its exit `took` later.
    fn curl_run(code: i32, stderr: &str, took: Duration) -> ToolRun {
        serde_json::from_value(serde_json::json!({
            "output": {
                "command_line": "curl -q -sS --noproxy * -o /dev/null --max-time 2 http://127.0.0.1:8080/",
                "netns": "lab",
                "status": code << 8,
                "stdout": "",
                "stderr": stderr,
                "duration": took + Duration::from_millis(5),
                "timed_out": false
            },
            "events": [],
            "syn_times": [{"secs": 0, "nanos": 0}],
            "measurement": Measurement {
                syn_times_us: vec![0],
                first_packet_us: Some(5_000),
                duration_us: (took + Duration::from_millis(5)).as_micros() as u64,
                tool: true,
                syn_late_us: vec![0],
                late_us: 0,
            }
        }))
        .expect("a recorded tool run")
    }

    fn max_time(run: ToolRun) -> MaxTime {
        MaxTime {
            lab: "lab".into(),
            url: "http://127.0.0.1:8080/".into(),
            version: Some("curl 7.88.1 (x86_64-pc-linux-gnu)".into()),
            run,
            served: "[]".into(),
            headers_after: Some(Duration::from_millis(10)),
            body_sent: Some(40_000),
        }
    }

    #[test]
    fn curl_ending_with_28_at_max_time_holds() {
        let run = curl_run(
            28,
            "curl: (28) Operation timed out after 2000 milliseconds with 39000 out of 1000000 \
             bytes received\n",
            Duration::from_millis(2000),
        );
        let o = judge_max_time(&max_time(run), &ctx());
        assert_eq!(o.verdict(), Verdict::Holds, "{}", o.reason());
        assert!(o.model_agrees(), "{:?}", o.model_checks);
        let exit = &o.claim_checks[1];
        assert_eq!(
            (exit.what.as_str(), exit.observed.as_str()),
            ("exit code", "28")
        );
    }

    #[test]
    fn curl_exiting_7_is_refuted() {
        let run = curl_run(
            7,
            "curl: (7) Failed to connect to 127.0.0.1 port 8080: Connection refused\n",
            Duration::from_millis(1),
        );
        let o = judge_max_time(&max_time(run), &ctx());
        assert_eq!(o.verdict(), Verdict::Refuted);
        assert!(
            o.reason().contains("exit code: claimed 28, observed 7"),
            "{}",
            o.reason()
        );
    }

    #[test]
    fn curl_killed_at_the_harness_deadline_is_an_error_not_a_refutation() {
        // Under emulation beside a load, curl had not exited when the harness's deadline
        // for it passed: killed, no exit code, no message. That is no observation of
        // curl's --max-time.
        let mut run = curl_run(0, "", MAX_TIME + DEADLINE_MARGIN);
        run.output.timed_out = true;
        run.output.status = std::os::unix::process::ExitStatusExt::from_raw(9);
        let measured = serde_json::to_value(crate::claim::Measured::Observed(max_time(run)))
            .expect("a record");
        let o =
            crate::claim::TwoSteps::judge(&MAX_TIME_STEPS, &measured, &ctx()).expect("it reads");
        assert_eq!(o.verdict(), Verdict::Error, "{}", o.reason());
        assert!(
            o.reason().starts_with("the harness killed `curl -q -sS"),
            "{}",
            o.reason()
        );
        assert!(o.reason().contains("after 12.005 s"), "{}", o.reason());
    }

    #[test]
    fn max_time_message_parses() {
        let m = "curl: (28) Operation timed out after 5000 milliseconds with 5626456 out of 77194340 bytes received";
        assert_eq!(parse_max_time_message(m), Some((5000, 5626456, 77194340)));
        assert_eq!(parse_max_time_message("curl: (7) nope"), None);
    }

    #[test]
    fn resolver_waits_timeout_times_attempts() {
        let r = Resolver {
            timeout_s: 1,
            attempts: 2,
        };
        assert_eq!(r.give_up(), 2 * S);
        assert_eq!(r.rounds(), vec![Duration::ZERO, S]);
    }
}
