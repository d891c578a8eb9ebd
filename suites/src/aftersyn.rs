//! Where the connection after its first SYN used to be measured, predicted and judged
//! in one file; it is now split by step (issue 20). These re-exports keep the old paths
//! until their users (engine.rs, being split too) import from the rooms.

pub use crate::judge::connection::{end_measured, judge, judge_rejection, statement_checks};
pub use crate::measure::connection::{act, from_wire, sock_opts, RAW_PORT, SEND_BYTES};
pub use crate::models::connection::{
    early, estimate, predict, rejection, window, Prediction, Rejection, MODEL_INPUTS,
};
pub use crate::record::connection::AfterRecord;
