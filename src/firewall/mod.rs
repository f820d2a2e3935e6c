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

pub mod spec;

pub use spec::*;

// The implementation modules (model, baseline, services, render, parse, diff,
// listing) are added by the firewall-core work.

// ---------------------------------------------------------------------------
// API SKELETON: placeholder bodies, to be replaced by the firewall-core work.
// Signatures are the contract; keep them (add more freely).
// ---------------------------------------------------------------------------

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

/// One rule, e.g. `-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    chain: String,
    args: Vec<String>,
}

impl Rule {
    /// Parse one `-A CHAIN ...` line in iptables-save syntax, validating it.
    /// Shell metacharacters outside a quoted comment are rejected.
    pub fn parse(line: &str) -> Result<Rule, RuleError> {
        let _ = line;
        todo!("firewall core")
    }

    /// The chain this rule is appended to.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The one family this rule can live in, or None when it fits both.
    pub fn family(&self) -> Option<Family> {
        todo!("firewall core")
    }

    /// The canonical line, as iptables-save prints it.
    pub fn to_line(&self) -> String {
        todo!("firewall core")
    }
}

/// What one `iptables-save` prints (or what rampart wants it to print).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub family: Family,
}

impl Ruleset {
    /// No tables at all: what an nf_tables host with no rules prints.
    pub fn empty(family: Family) -> Ruleset {
        Ruleset { family }
    }
}

/// The filter-table ruleset rampart wants for this spec and family.
pub fn desired(spec: &FirewallSpec, family: Family) -> Ruleset {
    let _ = (spec, family);
    todo!("firewall core")
}

/// iptables-restore input for the filter table of `rs`: deterministic,
/// `*filter`, chain lines with `[0:0]`, rules, `COMMIT`, trailing newline.
pub fn render(rs: &Ruleset) -> String {
    let _ = rs;
    todo!("firewall core")
}

/// Parse `iptables-save` (or `iptables -S`) output. Comment lines and
/// counters are ignored; unknown matches are kept as opaque, exact rules.
pub fn parse_save(text: &str, family: Family) -> Result<Ruleset, ParseError> {
    let _ = (text, family);
    todo!("firewall core")
}

/// `desired` plus the chains of `live` whose names match `patterns`, and the
/// rules of built-in chains that jump to them, kept exactly as found.
pub fn with_preserved(desired: &Ruleset, live: &Ruleset, patterns: &[String]) -> Ruleset {
    let _ = (live, patterns);
    desired.clone()
}

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

/// Compare the filter tables of `desired` and `live` (a missing filter table
/// counts as the kernel default: three ACCEPT chains, no rules).
pub fn diff(desired: &Ruleset, live: &Ruleset) -> Diff {
    let _ = (desired, live);
    todo!("firewall core")
}
