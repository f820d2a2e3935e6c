//! Plays (SPEC §3), merged into one desired [`FirewallSpec`] per host.
//!
//! CONTRACT (implemented by the inputs work): [`Playbook::load`] validates
//! everything (unknown keys, services, ports, CIDRs, raw rules) with
//! file:line:column; [`Playbook::plan`] merges the plays matching a host.

use std::path::{Path, PathBuf};

use crate::error::InputError;
use crate::firewall::FirewallSpec;
use crate::inventory::{Host, Inventory};

/// One play as written.
#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    pub hosts: String,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

/// What one host should become: the merged spec and the plays it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPlan {
    pub plays: Vec<String>,
    pub firewall: FirewallSpec,
}

impl Playbook {
    pub fn load(path: &Path) -> Result<Playbook, InputError> {
        let _ = path;
        todo!("inputs")
    }

    /// The merged plan for `host`, or None when no play matches it (then the
    /// host is not contacted).
    pub fn plan(&self, inventory: &Inventory, host: &Host) -> Option<HostPlan> {
        let _ = (inventory, host);
        todo!("inputs")
    }
}

/// `rampart render`: print the iptables-restore input for one host.
pub fn cli_render(args: &crate::cli::RenderArgs) -> crate::error::Result<u8> {
    let _ = args;
    todo!("inputs")
}
