//! What measuring records and judging reads: serialisable, holding durations and
//! observations, never clock readings, so that a recording is judged again without root.

pub mod attempt;
pub mod connection;
pub mod exchange;
mod measurement;
pub mod recovery;
pub(crate) mod target;
#[cfg(test)]
pub(crate) mod testing;
pub mod tool;

pub use measurement::{LabRecord, LinkCounts, LinkRecord, Measurement, RunRecord, OUTPUT_KEEP};
pub(crate) use target::{substitute, Target};

/// A duration as the records hold it: whole microseconds.
pub(crate) fn micros(d: std::time::Duration) -> u64 {
    d.as_micros() as u64
}
