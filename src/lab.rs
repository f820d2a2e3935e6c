//! The lab: a real fleet of VPS-like hosts on one Linux machine (SPEC §8).
//!
//! Implemented by the lab work.

use crate::cli::LabCommand;
use crate::error::Result;

/// Where `rampart lab` keeps a lab when `--dir` is not given. Not under
/// /etc, /var, /root, /run or /tmp: hosts overlay or hide those.
pub const DEFAULT_DIR: &str = "/srv/rampart-lab";

/// Run a `rampart lab ...` command; returns the exit code.
pub fn cli(cmd: &LabCommand) -> Result<u8> {
    let _ = cmd;
    todo!("lab")
}
