//! The committed recordings (`suites/recordings/*.json`: what full runs measured on real
//! kernels) judged again with today's catalog and models, without root or a lab.
//!
//! A change to a model, a tolerance or a statement that would flip a verdict measured on
//! one of these kernels fails here, in an ordinary `cargo test`, with the claim and the
//! reason; so does a claim whose measurement no longer reads (its record changed shape:
//! record the kernels again, `scripts/record`), and a built-in claim that no recording
//! covers.

use std::path::{Path, PathBuf};

use netclaim_suites::catalog;
use netclaim_suites::recording::{rejudge_all, Recording};
use netclaim_suites::spec::Tier;

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

#[test]
fn every_built_in_claim_of_the_default_tier_is_recorded_on_each_kernel() {
    let claims = catalog::all();
    for (path, recording) in recordings() {
        let missing: Vec<&str> = claims
            .iter()
            .filter(|c| c.tier() == Tier::Default)
            .map(|c| c.id)
            .filter(|id| !recording.claims.iter().any(|r| r.id == *id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} (Linux {}) has no measurement of {}: record it again (scripts/record)",
            path.display(),
            recording.kernel,
            missing.join(", ")
        );
    }
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
