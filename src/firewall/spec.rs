//! The desired firewall facts of one host, as a playbook states them
//! (docs/design.md, "Formats"), after every matching play has been merged.
//!
//! This is the contract between [`crate::playbook`] (which fills it from YAML
//! and validates every value) and the rest of [`crate::firewall`] (which turns
//! it into rulesets). Everything here is already valid: ports in range,
//! addresses parsed, raw rules parsed into the model.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::Rule;

/// Address family: iptables (IPv4) or ip6tables (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The command prefix for this family: `iptables` or `ip6tables`.
    pub fn cmd(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A single port or an inclusive range `lo:hi` (lo <= hi, both 1..=65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

/// An address block; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cidr {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl Cidr {
    pub fn family(&self) -> Family {
        match self {
            Cidr::V4(..) => Family::V4,
            Cidr::V6(..) => Family::V6,
        }
    }
}

/// One `allow` entry: a service name resolved to its port, or an explicit one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Allow {
    pub ports: PortRange,
    pub proto: Proto,
    pub from: Option<Cidr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

/// What to do when nothing on a host loads the persisted rules at boot
/// (docs/design.md, "Persistence and boot").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Boot {
    /// Install and enable rampart's own minimal loader (the default: a
    /// persisted file nobody loads protects nothing after a reboot).
    #[default]
    Ensure,
    /// Only say so, in a warning.
    Warn,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }
    }
}

/// Policies of the three built-in filter chains. Default: the seed's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub input: Policy,
    pub forward: Policy,
    pub output: Policy,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            input: Policy::Drop,
            forward: Policy::Accept,
            output: Policy::Accept,
        }
    }
}

/// Where the rules are persisted, when the play overrides the OS default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersistPaths {
    pub ipv4: Option<PathBuf>,
    pub ipv6: Option<PathBuf>,
}

/// The default `preserve` patterns (docs/design.md, "The transaction").
pub const DEFAULT_PRESERVE: &[&str] = &["DOCKER*", "f2b-*", "fail2ban-*", "KUBE-*", "CNI-*"];

/// The merged desired firewall of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct FirewallSpec {
    /// The seed's protections (established first, TCP flag drops, lo, icmp).
    pub baseline: bool,
    /// In playbook order, duplicates dropped.
    pub allow: Vec<Allow>,
    /// Raw rules, parsed and validated, in playbook order, duplicates dropped.
    pub rules: Vec<Rule>,
    pub policy: Policies,
    /// Manage ip6tables too (default true).
    pub ipv6: bool,
    /// Chain-name glob patterns left exactly as found on the host.
    pub preserve: Vec<String>,
    pub persist: Option<PersistPaths>,
    pub boot: Boot,
}

impl Default for FirewallSpec {
    fn default() -> Self {
        FirewallSpec {
            baseline: true,
            allow: Vec::new(),
            rules: Vec::new(),
            policy: Policies::default(),
            ipv6: true,
            preserve: DEFAULT_PRESERVE.iter().map(|s| s.to_string()).collect(),
            persist: None,
            boot: Boot::Ensure,
        }
    }
}
