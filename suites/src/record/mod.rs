//! What measuring records and judging reads: serialisable, holding durations and
//! observations, never clock readings, so that a recording is judged again without root.

pub mod attempt;
pub mod connection;
pub mod tool;
