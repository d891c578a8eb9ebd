//! Mechanisms for netclaim labs: network namespaces, links, sysctls, firewall rules,
//! commands run inside a namespace, in-process packet capture and the kernel's SYN timing
//! model. Nothing in this crate knows what a claim is.
//!
//! The one rule: `setns(2)` and `unshare(CLONE_NEWNET)` change only the calling thread.
//! Every piece of work for a namespace therefore runs on a thread that entered it first
//! ([`NetNs::run`], [`NetNs::spawn`]), and child processes enter it in `pre_exec`.

#![deny(missing_docs)]

pub mod capture;
pub mod command;
pub mod error;
pub mod firewall;
pub mod hostcheck;
pub mod kernel;
pub mod link;
pub mod model;
pub mod netns;
pub mod owner;
pub mod persist;
pub mod pidns;
pub mod privilege;
pub mod resource;
pub mod slowness;
pub mod sweep;
pub mod sysctl;
pub mod timers;
pub mod tmp;
pub mod tolerance;
pub mod userns;
pub mod wait;
pub mod wire;

pub use error::{Error, Result};
pub use netns::NetNs;
