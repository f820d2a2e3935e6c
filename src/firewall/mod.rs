//! The pure firewall core: no I/O, no ssh2, no tokio.
//!
//! A [`Ruleset`] is what one `iptables-save` (or `ip6tables-save`) prints:
//! tables, chains with policies, rules. rampart manages the `filter` table
//! only; other tables are parsed so that real hosts never make it choke,
//! and left alone on the host because the rendered input names only `*filter`.
//!
//! CONTRACT (implemented by the firewall-core work; other layers rely on it):
//! - [`Rule::parse`]: one `-A CHAIN ...` line (iptables-save syntax) -> Rule,
//!   errors carry a 0-based char offset into the line.
//! - [`desired`]: FirewallSpec + family -> the filter-table Ruleset rampart wants.
//! - [`render`]: Ruleset -> iptables-restore input (deterministic; filter only).
//! - [`parse_save`]: iptables-save / `iptables -S` text -> Ruleset.
//! - [`with_preserved`]: desired + live + patterns -> desired with the live
//!   preserved chains and the jumps into them.
//! - [`diff`]: desired vs live (filter table only; counters and comment lines ignored).
//! - [`listing::parse_list`]: `iptables -L -n [-v] [--line-numbers]` -> a listing.
//! - [`evaluate`]: ruleset + chain + [`Packet`] -> the [`Verdict`] and the
//!   rule or policy that decides it (lockout prediction).
//!
//! Canonical form: every Rule is stored as `iptables-save` (1.8.x) prints it,
//! so verification is text equality: `-A CHAIN [!] -s [!] -d [!] -i [!] -o
//! [!] -p [-f] -m ... -j|-g ...`; CIDRs masked with an explicit length; `-p`
//! lowercase names (`icmpv6` -> `ipv6-icmp`, `-p all` dropped); implicit
//! `-m tcp/udp/icmp/icmp6` inserted where iptables loads them; ports and
//! ICMP types numeric; `--syn` -> `--tcp-flags FIN,SYN,RST,ACK SYN`; flag
//! and conntrack state lists in kernel bit order; limit rates through
//! libxt_limit's arithmetic with the default burst 5 omitted; LOG level 4
//! omitted and names -> numbers; recent's defaults (`--name DEFAULT`,
//! `--mask`, `--rsource`) and REJECT's default `--reject-with` added per
//! family ([`Rule::for_family`]); `--comment`/`--log-prefix` quoted exactly
//! when `xtables_save_string` quotes. Modules not known are kept verbatim.
//! [`Rule::canon_certain`] says whether a rule's offline form is exactly
//! what every supported iptables (1.8.7, 1.8.9, 1.8.11; legacy and
//! nf_tables) prints; for the others the host decides: [`canon_probe`],
//! the canon step (src/remote/scripts/canon.sh) and [`host_canonical`] load the desired table into a
//! throwaway network namespace on the host and pair what it prints with the
//! desired rules.
//!
//! Layout: `model` (the types), `parse` (text -> model), `canon` (what
//! iptables-save prints for each known module), `services` (the seed's port
//! table), `baseline` (the seed's protections -> `desired`), `render`,
//! `preserve` (Docker/fail2ban chains), `diff`, `listing` (`iptables -L`),
//! `hostcanon` (the host's own canonical form), `corpus` (tests against
//! what real iptables versions print), `eval` (a packet through the
//! filter table).

mod baseline;
mod canon;
#[cfg(test)]
mod corpus;
mod diff;
pub mod eval;
mod hostcanon;
pub mod listing;
mod model;
mod parse;
mod preserve;
mod render;
pub mod services;
pub mod spec;
#[cfg(test)]
mod tests;

pub use baseline::{allow_rule, baseline_rules, desired};
pub use diff::diff;
pub use eval::{
    evaluate, CtState, Decider, Evaluation, Hit, Iface, Packet, Ports, RuleRef, TcpFlags, Verdict,
};
pub use hostcanon::{canon_probe, host_canonical, HostCanon, HOST_CANON_MARKER};
pub use listing::{listing_matches, parse_list, Listing};
pub use model::{
    builtin_chains, cidr_to_string, mask_cidr, parse_cidr, Arg, Chain, Match, Neg, Opt, Rule,
    Ruleset, Table, Target,
};
pub use parse::parse_save;
pub use preserve::{glob_match, preserved_chains, with_preserved, without_preserved};
pub use render::{render, render_noted, render_table, uncertain_note};
pub use services::{service_port, SERVICES};
pub use spec::*;

use std::fmt;

/// A parse problem in one rule line: `offset` is a 0-based char index into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for RuleError {}

/// A problem in a whole `iptables-save` / `-L` text: `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// How `live` differs from `desired` in the filter table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    /// Human-readable lines: `+ ...` wanted but missing, `- ...` present but unwanted,
    /// `~ ...` notes (policy change, reordered).
    pub lines: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}
