//! What the kernel and the tools are predicted to do, from what is in force (sysctls,
//! socket options, tool options): the figures a claim's expectation is computed from.
//! Pure, like [`crate::judge`], which reads them.

pub mod budget;
pub mod connection;
pub mod exchange;
pub mod plan;
pub mod ports;
pub mod recovery;
pub mod tools;
pub mod versions;

pub use budget::{estimate, fill_cap, limit, sweep_rounds, DEFAULT_BACKLOG, SWEEP_JOBS};
pub use plan::{model_of, End, Plan};
