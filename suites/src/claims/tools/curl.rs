//! `curl.max-time`: curl --max-time caps the whole transfer, against a server that trickles
//! its body.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::http::{SlowBodyServer, Trickle};
use netclaim_harness::tolerance::{Window, TOOL_STARTUP};
use netclaim_harness::NetNs;
use serde::{Deserialize, Serialize};

use super::{check_duration, curl, last_line, margin, url};
use crate::claim::{Check, Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::timing::timing;
use crate::judge::tool::{tool_evidence, tool_figures, version_line};
use crate::measure::tool::{run_tool, version_of};
use crate::record::tool::ToolRun;
use crate::text::secs;

/// `curl: (28) Operation timed out after N milliseconds with X out of Y bytes received`.
pub(super) fn parse_max_time_message(text: &str) -> Option<(u64, u64, u64)> {
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
pub(super) const MAX_TIME: Duration = Duration::from_secs(2);

/// What `curl.max-time` measured: curl with `--max-time 2` against a server trickling a
/// large body ([`MAX_TIME_TRICKLE`]), and what the server did meanwhile.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct MaxTime {
    /// The lab's namespace.
    pub(super) lab: String,
    /// The URL curl fetched.
    pub(super) url: String,
    /// The installed curl's version.
    pub(super) version: Option<String>,
    /// The curl run.
    pub(super) run: ToolRun,
    /// What the server recorded per connection, as text (its instants mean nothing once
    /// the measuring process is gone).
    pub(super) served: String,
    /// When the server sent the headers, from just before curl was started.
    pub(super) headers_after: Option<Duration>,
    /// Body bytes the server had written when curl hung up.
    pub(super) body_sent: Option<u64>,
}

/// `curl.max-time`, measured: curl against the trickling server.
fn measure_max_time(_ctx: &Ctx) -> Result<Observation<MaxTime>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let trickle = MAX_TIME_TRICKLE;
    let server = SlowBodyServer::start(&ns, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), trickle)
        .context("starting the slow HTTP server")?;
    let cmd = curl(
        MAX_TIME + margin(),
        &["--max-time", "2", &url(server.addr())],
    );
    let started = Instant::now();
    let run = run_tool(&ns, &cmd, server.addr().port())?;
    let served = server.served();
    drop(server);
    let headers_after = served
        .first()
        .and_then(|s| s.headers_at)
        .map(|t| t.saturating_duration_since(started));
    Ok(Observation::Observed(MaxTime {
        lab: ns.name().to_owned(),
        url: cmd
            .command_line()
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned(),
        version: version_of("curl"),
        run,
        served: format!("{served:?}"),
        headers_after,
        body_sent: served.first().map(|s| s.body_sent),
    }))
}

/// `curl.max-time`, judged: the stated exit 28 and message at N s, and which body bytes
/// the server's schedule says curl had by then.
pub(super) fn judge_max_time(m: &MaxTime, _ctx: &Ctx) -> Outcome {
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
    o.evidence(tool_evidence(run));
    version_line(&mut o, "curl", m.version.as_deref());
    o.claimed = Figures {
        exit_code: Some(28),
        value: Some(
            "Operation timed out after 2000 milliseconds with X out of Y bytes received".into(),
        ),
        ..Figures::default()
    }
    .duration(max_time);
    o.observed = tool_figures(run);

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
            timing: reported.map(|d| timing(reported_window, d, &took)),
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
pub(super) const MAX_TIME_STEPS: Steps<MaxTime> = Steps {
    measure: measure_max_time,
    judge: judge_max_time,
};
