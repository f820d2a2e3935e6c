//! rampart: harden fleets of freshly rented VPSes over SSH.
//!
//! The layers (each calls only the ones below it):
//! - [`cli`], [`app`]: the command line and the dispatch of commands;
//! - [`inventory`], [`playbook`]: input files -> hosts and one desired firewall per host;
//! - [`firewall`]: the pure ruleset model (render, parse, diff), no I/O at all;
//! - [`remote`]: the SSH transport (the only place that uses `ssh2`);
//! - [`converge`]: the per-host transaction and the fleet runner; never prints;
//! - [`report`]: everything a user sees of a run, fed only by events;
//! - [`lab`]: a local throwaway fleet in network namespaces, for tests, demos, benchmarks.

pub mod app;
pub mod cli;
pub mod converge;
pub mod error;
pub mod firewall;
#[cfg(test)]
mod fuzz;
pub mod glob;
pub mod inventory;
pub mod lab;
pub mod limits;
pub mod playbook;
pub mod remote;
pub mod report;

pub use app::run;
pub use error::{Error, InputError, Result};

/// Exit codes (docs/design.md, "Exit codes").
pub mod exit {
    /// Every host ok or changed.
    pub const OK: u8 = 0;
    /// Bad input or usage; no host was contacted.
    pub const BAD_INPUT: u8 = 1;
    /// An audit found drift, and nothing worse.
    pub const DRIFT: u8 = 2;
    /// A host rolled back, failed, was unreachable, or was skipped by a stopped rollout.
    pub const HOST_PROBLEM: u8 = 3;
}
