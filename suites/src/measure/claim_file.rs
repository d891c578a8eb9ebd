//! Measuring a claim file's claim: its fresh-namespace sysctls, then each lab (one per
//! sweep value, a bounded number at once) and its run, with what its wire did.

use std::path::Path;

use anyhow::{Context, Result};
use netclaim_harness::{Error as HarnessError, NetNs};

use crate::measure::act::act;
use crate::measure::build::{build, in_force};
use crate::models::budget::SWEEP_JOBS;
use crate::outcome::Ctx;
use crate::record::{LabRecord, LinkCounts, LinkRecord, Measurement};
use crate::spec::{ClaimSpec, Value};

/// The most packets of a wire's log the evidence shows.
const WIRE_TIMELINE_MAX: usize = 40;

/// The wire's first packets, both ways in the order they entered it: when each was sent
/// into the wire and when it left it (delivered), or what became of it instead.
fn wire_timeline(report: &netclaim_harness::wire::WireReport, max: usize) -> String {
    use netclaim_harness::wire::Fate;
    let mut entries: Vec<(&str, &netclaim_harness::wire::LogEntry)> = report
        .to_peer
        .log
        .iter()
        .map(|e| ("to peer  ", e))
        .chain(report.from_peer.log.iter().map(|e| ("from peer", e)))
        .collect();
    entries.sort_by_key(|(_, e)| e.arrived_us);
    let total = entries.len();
    let secs = |us: u64| us as f64 / 1e6;
    let mut text = String::from("--- the wire: sent into it → left it ---");
    for (way, e) in entries.into_iter().take(max) {
        let flags = e
            .tcp_flags
            .map(|f| format!(" [{}]", netclaim_harness::capture::TcpFlags(f)))
            .unwrap_or_else(|| format!(" (not TCP, {} B)", e.len));
        let payload = e
            .tcp_payload
            .filter(|p| *p > 0)
            .map(|p| format!(" {p} B"))
            .unwrap_or_default();
        let fate = match (e.fate, e.sent_us) {
            (Fate::Delivered, Some(t)) => format!("→ {:.3} s", secs(t)),
            (Fate::Corrupted, Some(t)) => format!("→ {:.3} s, corrupted", secs(t)),
            (Fate::Held, _) => "still held when the wire stopped".into(),
            (Fate::Lost, _) => "lost".into(),
            (Fate::Limit, _) => "dropped: the queue was full".into(),
            (Fate::RuleDrop(n), _) => format!("dropped by rule {n}"),
            (Fate::Reset(n), _) => format!("reset by rule {n}"),
            (Fate::Icmp(n), _) => format!("answered with ICMP by rule {n}"),
            (_, None) => "not sent".into(),
        };
        text.push_str(&format!(
            "\n{:>9.3} s  {way}  #{}{flags}{payload}  {fate}",
            secs(e.arrived_us),
            e.n
        ));
    }
    if total > max {
        text.push_str(&format!("\n… {} more packets (counted above)", total - max));
    }
    text
}

/// Builds one lab and runs the action in it.
fn lab_and_run(
    spec: &ClaimSpec,
    extra: Option<(&str, String)>,
    dir: Option<&Path>,
) -> Result<LabRecord> {
    let mut built = match build(spec, extra)? {
        Ok(b) => b,
        Err(reason) => {
            return Ok(LabRecord {
                refused: Some(reason),
                ..LabRecord::default()
            })
        }
    };
    let in_force = in_force(spec, built.ns())?;
    let run = match &spec.run {
        Some(_) => Some(act(spec, &built, &in_force, dir)?),
        None => None,
    };
    let mut notes = built.notes.clone();
    notes.insert(0, built.description.clone());
    let mut timeline = None;
    let link = built.lab.take_wire().map(|w| {
        let report = w.finish();
        timeline = Some(wire_timeline(&report, WIRE_TIMELINE_MAX));
        LinkRecord {
            seed: report.seed,
            to_peer: LinkCounts::from(&report.to_peer),
            from_peer: LinkCounts::from(&report.from_peer),
        }
    });
    let mut run = run;
    if let Some(l) = &link {
        notes.push(format!(
            "the wire (seed {}): toward the peer {}; from the peer {}",
            l.seed, l.to_peer, l.from_peer
        ));
        // A packet the relay released late is a late event to the kernels at both ends,
        // as a late timer is: a round trip's worth of it joins every timing's error.
        let late = l.to_peer.late_max_us.unwrap_or(0) + l.from_peer.late_max_us.unwrap_or(0);
        if let Some(t) = timeline.take() {
            notes.push(t);
        }
        if let Some(t) = run.as_mut().and_then(|r| r.timed.as_mut()) {
            t.late_us += late;
            t.syn_late_us.iter_mut().for_each(|s| *s += late);
            notes.push(format!(
                "each timing's error includes the wire's release lateness, {:.1} ms a round trip",
                late as f64 / 1000.0
            ));
        }
    }
    Ok(LabRecord {
        name: built.ns().name().to_owned(),
        target: built.target.text(),
        in_force,
        notes,
        refused: None,
        run,
        link,
    })
}

/// Measures a claim file's claim: its fresh-namespace sysctls, then its lab(s) and run.
/// `dir` is the claim file's directory (for `{dir}`).
pub fn measure(spec: &ClaimSpec, ctx: &Ctx, dir: Option<&Path>) -> Result<Measurement> {
    let mut m = Measurement {
        kernel: ctx.kernel.clone(),
        hz: ctx.hz,
        rootless: netclaim_harness::userns::mode().rootless(),
        ..Measurement::default()
    };
    let fresh_names: Vec<&String> = spec
        .expect
        .sysctls
        .keys()
        .chain(spec.model.defaults.keys())
        .collect();
    if !fresh_names.is_empty() {
        let ns = NetNs::new().context("creating a fresh namespace")?;
        for name in fresh_names {
            m.fresh.insert(name.clone(), ns.sysctl_opt(name)?);
        }
    }
    if let Some(argv0) = spec
        .run
        .as_ref()
        .and_then(|r| r.command.as_ref())
        .and_then(|c| c.first())
    {
        m.tool_version = netclaim_harness::command::tool_version(argv0);
    }
    match &spec.sweep {
        Some(sweep) => {
            let values: Vec<String> = sweep.values.iter().map(Value::text).collect();
            let done = bounded("sweep-point", SWEEP_JOBS, values.len(), |i| {
                let lab = lab_and_run(spec, Some((sweep.sysctl.as_str(), values[i].clone())), dir)?;
                Ok((values[i].clone(), lab))
            });
            for r in done {
                m.sweep.push(r?);
            }
        }
        None if spec.run.is_some() || !spec.lab.sysctls.is_empty() => {
            m.lab = Some(lab_and_run(spec, None, dir)?);
        }
        None => {}
    }
    Ok(m)
}

/// Runs `job(0..n)` on at most `slots` threads named `name`, each taking the next index
/// as it finishes one; returns the results in index order. A job whose thread panicked is
/// an error naming it; when no thread can be started at all, every job is the harness's
/// error (out of threads).
fn bounded<T: Send>(
    name: &str,
    slots: usize,
    n: usize,
    job: impl Fn(usize) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return out;
            }
            out.push((i, job(i)));
        }
    };
    let mut results: Vec<Option<Result<T>>> = (0..n).map(|_| None).collect();
    let mut spawn_error = None;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..slots.clamp(1, n.max(1)))
            .filter_map(|_| {
                match std::thread::Builder::new()
                    .name(name.to_owned())
                    .spawn_scoped(s, worker)
                {
                    Ok(h) => Some(h),
                    Err(e) => {
                        spawn_error.get_or_insert(e);
                        None
                    }
                }
            })
            .collect();
        for h in handles {
            // A panicking job loses its worker's results: those jobs are reported below.
            if let Ok(done) = h.join() {
                for (i, r) in done {
                    results[i] = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(match &spawn_error {
                    Some(e) if next.load(std::sync::atomic::Ordering::Relaxed) == 0 => {
                        let again = e.raw_os_error().map_or_else(
                            || std::io::Error::new(e.kind(), e.to_string()),
                            std::io::Error::from_raw_os_error,
                        );
                        HarnessError::thread_spawn(name, again).into()
                    }
                    _ => anyhow::anyhow!("a {name} thread panicked"),
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bounded_sweep_runs_at_most_its_slots_at_once_and_keeps_the_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let done = bounded("t", 4, 50, |i| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            now.fetch_sub(1, Ordering::SeqCst);
            if i == 7 {
                anyhow::bail!("value {i} failed");
            }
            Ok(i * 10)
        });
        assert_eq!(done.len(), 50);
        assert!(most.load(Ordering::SeqCst) <= 4, "{most:?}");
        for (i, r) in done.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i * 10),
                Err(e) => assert_eq!((i, e.to_string()), (7, "value 7 failed".into())),
            }
        }
    }
}
