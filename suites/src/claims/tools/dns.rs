//! `wget.dns-timeout`: wget against a nameserver that never answers; the resolver settings
//! and the DNS runs `wget.timeout-sets-all` uses too.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_harness::command::CommandOutput;
use netclaim_harness::tolerance::tool_deadline_window;
use netclaim_lab::{Lab, LOCAL, PEER};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{check_contains, check_duration, line_with, margin, wget, DNS_NAME};
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::tool::version_line;
use crate::measure::tool::version_of;
use crate::record::attempt::Attempt;
use crate::text::secs;

/// A client namespace at [`LOCAL`] on a veth to a peer at [`PEER`] that drops every
/// packet: the nameserver that never answers.
pub(super) fn blackhole_lab() -> netclaim_lab::Result<Lab> {
    Lab::builder().blackhole_peer().build()
}

/// The resolver settings handed to the tool.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resolver {
    pub(super) timeout_s: u64,
    pub(super) attempts: u64,
}

impl Resolver {
    pub(super) fn resolv_conf(self) -> String {
        format!(
            "nameserver {}\noptions timeout:{} attempts:{}\n",
            PEER, self.timeout_s, self.attempts
        )
    }

    /// When glibc's stub resolver gives up on a nameserver that never answers.
    ///
    /// `__res_context_send` loops `attempts` times over the nameservers; `send_dg` waits
    /// `retrans << ns` (ns = the server's index, 0 with one server, `/ nscount` beyond),
    /// with the A and AAAA queries of `getaddrinfo` sent together on one socket (no
    /// `single-request`), so both share each wait. With one server: timeout × attempts.
    pub(super) fn give_up(self) -> Duration {
        Duration::from_secs(self.timeout_s * self.attempts)
    }

    /// When each round of queries goes out.
    pub(super) fn rounds(self) -> Vec<Duration> {
        (0..self.attempts)
            .map(|k| Duration::from_secs(k * self.timeout_s))
            .collect()
    }
}

/// One DNS query seen on the wire, as a measurement records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct QueryAt {
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
pub(super) struct DnsRun {
    /// What wget did.
    pub(super) output: CommandOutput,
    /// The DNS queries it caused.
    pub(super) queries: Vec<QueryAt>,
    /// The run timed from its first query (the resolver starts right after wget arms its
    /// --dns-timeout alarm) to its exit, with this machine's timer lateness meanwhile.
    pub(super) measurement: Attempt,
}

impl DnsRun {
    /// Query send times relative to the tool's start.
    fn times(&self) -> Vec<Duration> {
        self.queries.iter().map(|q| q.after).collect()
    }

    /// Start times of the rounds of queries (queries within 100 ms form one round),
    /// relative to the first query.
    pub(super) fn rounds(&self) -> Vec<Duration> {
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
    pub(super) fn evidence(&self) -> String {
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

fn wget_dns_run(lab: &Lab, resolver: Resolver, args: &[&str]) -> Result<DnsRun> {
    let deadline = resolver.give_up() + margin();
    let target = format!("http://{DNS_NAME}/");
    let cmd = wget(deadline, args)
        .args(["--tries", "1", target.as_str()])
        .etc_file("resolv.conf", resolver.resolv_conf());
    let cap = lab.ns().capture_dns().context("starting the DNS capture")?;
    let started = Instant::now();
    let output = lab
        .ns()
        .run_command(&cmd)
        .with_context(|| format!("running {}", cmd.command_line()))?;
    let queries = cap.finish().context("finishing the DNS capture")?;
    // Read the timer probe over the run now, while its instants mean something.
    let measurement = Attempt::record(
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
pub(super) struct DnsCase {
    pub(super) label: &'static str,
    pub(super) option: &'static str,
    pub(super) value: Duration,
    pub(super) resolver: Resolver,
}

impl DnsCase {
    pub(super) fn expected(&self) -> Duration {
        self.value.min(self.resolver.give_up())
    }

    fn expected_message(&self) -> String {
        if self.value < self.resolver.give_up() {
            wget_dns_alarm_message()
        } else {
            EAI_AGAIN_MESSAGE.into()
        }
    }

    pub(super) fn run(&self, lab: &Lab) -> Result<DnsRun> {
        let v = format!("{}", self.value.as_secs_f64());
        wget_dns_run(lab, self.resolver, &[self.option, &v])
    }

    /// Model checks of one run: the give-up time, the message, the exit code, and the
    /// rounds of queries the resolver sent before the give-up.
    pub(super) fn model_checks(&self, o: &mut Outcome, run: &DnsRun) {
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
                self.label, PEER
            ),
            format!("{predicted:?}"),
            format!(
                "{:?}",
                observed.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
            ),
            ok && run.queries.iter().all(|q| q.dst == PEER),
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
pub(super) struct DnsTimeout {
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
fn measure_dns_timeout(_ctx: &Ctx) -> Result<Observation<DnsTimeout>> {
    let lab = blackhole_lab()?;
    let short = DNS_SHORT.run(&lab)?;
    let long = DNS_LONG.run(&lab)?;
    Ok(Observation::Observed(DnsTimeout {
        client: lab.ns().name().to_owned(),
        host: lab
            .peer_ns()
            .context("the blackhole lab's peer")?
            .name()
            .to_owned(),
        version: version_of("wget"),
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
        m.client, LOCAL, m.host, PEER, PEER
    ));
    for (case, run) in [(short, a), (long, b)] {
        o.evidence(format!(
            "{}: resolv.conf {:?}\n{}",
            case.label,
            case.resolver.resolv_conf(),
            run.evidence()
        ));
    }
    version_line(&mut o, "wget", m.version.as_deref());
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
pub(super) const DNS_TIMEOUT: Steps<DnsTimeout> = Steps {
    measure: measure_dns_timeout,
    judge: judge_dns_timeout,
};
