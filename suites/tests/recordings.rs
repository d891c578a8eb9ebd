//! The committed recordings (`suites/recordings/*.json`: what full runs measured on real
//! kernels) judged again with today's catalog and models, without root or a lab.
//!
//! A change to a model, a tolerance or a statement that would flip a verdict measured on
//! one of these kernels fails here, in an ordinary `cargo test`, with the claim and the
//! reason; so does a claim whose measurement no longer reads (its record changed shape:
//! record the kernels again, `scripts/record`). A built-in claim no recording holds yet
//! is listed as "not recorded yet", not failed: `scripts/record ID...` adds it.

use std::path::{Path, PathBuf};

use netclaim_suites::catalog;
use netclaim_suites::recording::{rejudge_all, NotJudged, Recording};

fn recordings() -> Vec<(PathBuf, Recording)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let r = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not a recording: {e}", p.display()));
            (p, r)
        })
        .collect()
}

#[test]
fn every_recorded_verdict_is_judged_the_same_today() {
    let claims = catalog::all();
    let recordings = recordings();
    assert!(
        recordings.len() >= 2,
        "expected recordings of at least two kernels, found {}",
        recordings.len()
    );
    let mut problems = Vec::new();
    let mut judged = 0;
    for (path, recording) in &recordings {
        for (r, now) in rejudge_all(recording, &claims) {
            judged += 1;
            match now {
                Ok(o) if o.verdict() == r.verdict => {}
                Ok(o) => problems.push(format!(
                    "{} ({}): recorded {}, judged {} now: {}",
                    r.id,
                    path.display(),
                    r.verdict,
                    o.verdict(),
                    o.reason()
                )),
                Err(e) => problems.push(format!("{} ({}): {e}", r.id, path.display())),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {judged} recorded verdicts are judged differently today:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A built-in claim no recording holds yet (added since the recordings were made) is
/// "not recorded yet", reported and not a failure: adding a claim does not force
/// recording every kernel again before `cargo test` passes. `scripts/record ID...` adds
/// its measurements to the recordings. Shown here with a recording that lost one claim:
/// the claim is listed, and every other claim is judged as before.
#[test]
fn a_claim_not_recorded_yet_is_listed_and_the_rest_judged() {
    let claims = catalog::all();
    for (path, recording) in recordings() {
        let missing = recording.not_recorded(&claims);
        if !missing.is_empty() {
            eprintln!(
                "{} (Linux {}): not recorded yet: {} (add them: scripts/record {})",
                path.display(),
                recording.kernel,
                missing.join(", "),
                missing.join(" ")
            );
        }
    }
    let (_, mut recording) = recordings()
        .into_iter()
        .find(|(p, _)| p.ends_with("6.18.json"))
        .expect("the 6.18 recording");
    let before = recording.not_recorded(&claims);
    let dropped = recording.claims.remove(
        recording
            .claims
            .iter()
            .position(|r| r.id == "syn.retries-1")
            .expect("syn.retries-1 is recorded"),
    );
    let mut after = recording.not_recorded(&claims);
    after.retain(|id| !before.contains(id));
    assert_eq!(after, [dropped.id.as_str()]);
    let judged = rejudge_all(&recording, &claims);
    assert_eq!(judged.len(), recording.claims.len());
    for (r, now) in judged {
        match now {
            Ok(o) => assert_eq!(o.verdict(), r.verdict, "{}", r.id),
            Err(e) => panic!("{}: {e}", r.id),
        }
    }
}

/// A recorded claim the catalog no longer has (renamed or removed) is not judged, and
/// says why: the recordings are re-recorded (`scripts/record`) rather than kept stale.
#[test]
fn a_recorded_claim_the_catalog_lost_is_not_judged() {
    let claims = catalog::all();
    let (_, mut recording) = recordings().into_iter().next().expect("a recording");
    recording.claims[0].id = "syn.no-such-claim".into();
    let (_, now) = rejudge_all(&recording, &claims)
        .into_iter()
        .find(|(r, _)| r.id == "syn.no-such-claim")
        .expect("judged");
    assert!(matches!(now, Err(NotJudged::Unknown)), "{now:?}");
}

#[test]
fn recordings_name_their_kernel_and_its_hz() {
    for (path, r) in recordings() {
        assert!(!r.kernel.is_empty(), "{}: no kernel", path.display());
        assert!(
            [100, 250, 300, 1000].contains(&r.hz),
            "{}: CONFIG_HZ {} is not one Linux offers",
            path.display(),
            r.hz
        );
    }
}

/// The 6.18 recording with `change` made to the measurement of claim `id`, judged again:
/// why that claim was not judged.
fn forged(id: &str, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let (_, mut recording) = recordings()
        .into_iter()
        .find(|(p, _)| p.ends_with("6.18.json"))
        .expect("the 6.18 recording");
    let r = recording
        .claims
        .iter_mut()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} is recorded"));
    change(&mut r.measurement);
    let claims = catalog::all();
    let (_, now) = rejudge_all(&recording, &claims)
        .into_iter()
        .find(|(r, _)| r.id == id)
        .expect("judged");
    match now {
        Err(e @ NotJudged::Inconsistent(_)) => e.to_string(),
        other => panic!("{id}: a forged record was judged: {other:?}"),
    }
}

// Each of these was judged `holds` (or its recorded verdict) before records were checked
// for consistency.
#[test]
fn records_that_contradict_themselves_are_not_judged() {
    let why = forged("syn.retries-1", |m| {
        m["lab"]["in_force"]["net.ipv4.tcp_syn_retries"] = "7".into();
    });
    assert!(
        why.contains("the claim sets net.ipv4.tcp_syn_retries=1; the record shows net.ipv4.tcp_syn_retries=7"),
        "{why}"
    );
    let why = forged("syn.default-timeout", |m| {
        let times: Vec<u64> = (0..13).map(|i| i * 1_000_000).collect();
        m["lab"]["run"]["syn_times_us"] = times.clone().into();
        m["lab"]["run"]["timed"]["syn_times_us"] = times.into();
        m["lab"]["run"]["timed"]["syn_late_us"] = vec![0u64; 13].into();
        m["lab"]["run"]["conn_syns"] = vec![13u64].into();
    });
    assert!(
        why.contains("13 SYNs on one connection, where the sysctls in force allow at most 11"),
        "{why}"
    );
    let why = forged("syn.retries-1.curl", |m| {
        m["lab"]["run"]["timed_out"] = true.into();
    });
    assert!(
        why.contains("killed at the harness's deadline (timed_out), yet it exited by itself"),
        "{why}"
    );
    let why = forged("mysql.no-socket", |m| {
        m["observed"]["output"]["timed_out"] = true.into();
    });
    assert!(why.contains("yet it exited by itself with code 1"), "{why}");
    let why = forged("syn.drop-rule", |m| {
        m["observed"]["model"]["syn_retries"] = 7.into();
    });
    assert!(
        why.contains("the claim sets tcp_syn_retries=1; the record shows 7 in force"),
        "{why}"
    );
    let why = forged("syn.drop-rule", |m| {
        if let Some(events) = m["observed"]["events"].as_array_mut() {
            events.reverse();
        }
    });
    assert!(
        why.contains("events: listed out of the order they were seen in"),
        "{why}"
    );
    let why = forged("syn.retries-1", |m| m["hz"] = 0.into());
    assert!(
        why.contains("hz: 0 is not a CONFIG_HZ Linux offers"),
        "{why}"
    );
    // Each of these hung or crashed the judge (a model counting SYNs for 4e9 retries,
    // wget's tries, rsync's periods of a 0 s timeout).
    let why = forged("syn.default-timeout", |m| {
        m["lab"]["in_force"]["net.ipv4.tcp_syn_retries"] = "4000000000".into();
    });
    assert!(
        why.contains("net.ipv4.tcp_syn_retries=4000000000 in force, which the kernel does not accept (1..=127)"),
        "{why}"
    );
    let why = forged("wget.connect-timeout", |m| {
        if let Some(tries) = m["lab"]["run"]["argv"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|a| *a == "3"))
        {
            *tries = "4000000000".into();
        }
    });
    assert!(why.contains("the record ran"), "{why}");
    let why = forged("rsync.timeout", |m| {
        m["observed"]["runs"][0]["seconds"] = 0.into()
    });
    assert!(why.contains("the record has [0, 4]"), "{why}");
    let why = forged("tw.duration", |m| {
        m["observed"]["gone"]["secs"] = 9_000_000_000u64.into();
    });
    assert!(why.contains("is out of range"), "{why}");
}

#[test]
fn a_recording_with_an_impossible_hz_has_nothing_judged() {
    let (_, mut recording) = recordings().remove(0);
    recording.hz = 0;
    let claims = catalog::all();
    let judged = rejudge_all(&recording, &claims);
    assert!(!judged.is_empty());
    for (r, now) in judged {
        match now {
            Err(NotJudged::Inconsistent(why)) => assert!(
                why.iter()
                    .any(|w| w.contains("hz 0 is not a CONFIG_HZ Linux offers")),
                "{}: {why:?}",
                r.id
            ),
            other => panic!("{}: judged under hz 0: {other:?}", r.id),
        }
    }
}
