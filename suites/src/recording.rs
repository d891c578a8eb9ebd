//! Recorded measurements, judged again.
//!
//! Measuring needs a lab and privilege; judging is a pure function of a measurement, the
//! claim's statement and the models. A [`Recording`] keeps what a run measured (and the
//! verdicts it reached), so that an old run can be judged again with today's catalog
//! and models (`netclaim judge`), and so that the judges are unit-tested on real
//! measurements from real kernels without root — the way nextest keeps the expected
//! outcomes of its fixtures as data. A model or tolerance change that would flip a
//! recorded verdict fails an ordinary `cargo test`.

use serde::{Deserialize, Serialize};

use crate::claim::{Claim, Ctx, Outcome, Verdict};

/// What a run measured: per claim, its measurement and the verdict it reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// The netclaim version that measured.
    pub netclaim: String,
    /// `uname -r` of the kernel measured.
    pub kernel: String,
    /// Its `CONFIG_HZ`.
    pub hz: u32,
    /// `root` or the user namespace the labs ran in.
    #[serde(default = "root")]
    pub mode: String,
    /// The claims that recorded a measurement.
    pub claims: Vec<Recorded>,
}

fn root() -> String {
    "root".into()
}

/// One claim's measurement and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// The claim's id.
    pub id: String,
    /// The verdict the run reached.
    pub verdict: Verdict,
    /// What was measured.
    pub measurement: serde_json::Value,
}

impl Recording {
    /// The context the measurements were judged in (the recorded kernel and HZ).
    pub fn ctx(&self) -> Ctx {
        Ctx {
            hz: self.hz,
            kernel: self.kernel.clone(),
        }
    }
}

/// Why a recorded claim could not be judged again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotJudged {
    /// The catalog has no claim with that id any more.
    Unknown,
    /// The measurement does not fit the claim's judge (a different format).
    Unreadable(String),
}

impl std::fmt::Display for NotJudged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown => f.write_str(
                "no claim with this id in the catalog: a claim from a claim file is judged \
                 with `netclaim judge --claims PATH` (the files the run was given)",
            ),
            Self::Unreadable(e) => write!(f, "the recorded measurement does not fit: {e}"),
        }
    }
}

/// Judges `measurement` again for `claim` in `ctx`, with the current statement and models.
pub fn rejudge(
    claim: &Claim,
    measurement: &serde_json::Value,
    ctx: &Ctx,
) -> Result<Outcome, NotJudged> {
    claim
        .judge(measurement, ctx)
        .map_err(|e| NotJudged::Unreadable(e.to_string()))
}

/// Judges every recorded claim that `catalog` can judge again: (id, recorded verdict,
/// the outcome now or why not).
pub fn rejudge_all<'a>(
    recording: &'a Recording,
    catalog: &[Claim],
) -> Vec<(&'a Recorded, Result<Outcome, NotJudged>)> {
    let ctx = recording.ctx();
    recording
        .claims
        .iter()
        .map(|r| {
            let now = match catalog.iter().find(|c| c.id == r.id) {
                Some(claim) => rejudge(claim, &r.measurement, &ctx),
                None => Err(NotJudged::Unknown),
            };
            (r, now)
        })
        .collect()
}
