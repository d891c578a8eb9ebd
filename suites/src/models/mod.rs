//! What the kernel and the tools are predicted to do, from what is in force (sysctls,
//! socket options, tool options): the figures a claim's expectation is computed from.
//! Pure, like [`crate::judge`], which reads them.

pub mod connection;
