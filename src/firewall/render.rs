//! Model -> iptables-restore text.
//!
//! The output is deterministic and shaped like `iptables-save` prints a table
//! (built-in chains in hook order, user chains sorted by name, rules grouped
//! by chain in that order), so a rendered file, a persisted file and a
//! host's dump can be compared by eye and by `diff`.

use super::model::{builtin_chains, Chain, Ruleset, Table};
use super::spec::Policy;

/// One table as iptables-restore input: `*name`, chain lines with `[0:0]`,
/// rules, `COMMIT`, trailing newline. Missing built-in chains of a known
/// table are written with the kernel default (ACCEPT), so the text always
/// states every policy.
pub fn render_table(table: &Table) -> String {
    let mut out = format!("*{}\n", table.name);
    let defaults: Vec<Chain> = builtin_chains(&table.name)
        .iter()
        .filter(|b| table.chain(b).is_none())
        .map(|b| Chain::builtin(b, Policy::Accept))
        .collect();
    let present = table.chains_in_save_order();
    let mut all: Vec<&Chain> = Vec::new();
    for b in builtin_chains(&table.name) {
        if let Some(c) = present.iter().find(|c| c.name == *b) {
            all.push(c);
        } else if let Some(c) = defaults.iter().find(|c| c.name == *b) {
            all.push(c);
        }
    }
    let rest: Vec<&Chain> = present
        .iter()
        .filter(|c| !all.iter().any(|a| a.name == c.name))
        .copied()
        .collect();
    all.extend(rest);
    for c in &all {
        let policy = c.policy.map(|p| p.as_str()).unwrap_or("-");
        out.push_str(&format!(":{} {} [0:0]\n", c.name, policy));
    }
    for c in &all {
        for r in &c.rules {
            out.push_str(&r.to_line());
            out.push('\n');
        }
    }
    out.push_str("COMMIT\n");
    out
}

/// iptables-restore input for the filter table of `rs`: deterministic,
/// `*filter`, chain lines with `[0:0]`, rules, `COMMIT`, trailing newline.
/// Only the filter table: the host's nat/mangle/raw tables stay untouched
/// because iptables-restore only flushes the tables it is given.
pub fn render(rs: &Ruleset) -> String {
    render_table(&rs.filter_or_default())
}

/// At most this many rules are named in the note of [`render_noted`].
const NOTE_RULES: usize = 3;

/// One comment line saying which rules of the filter table `rs` a host may
/// print differently from this rendering (their offline canonical form is
/// not certain, see [`super::Rule::canon_certain`]), or None when every rule
/// is certain. rampart asks the host itself for those rules' form when it
/// converges, so this is only a warning about the text shown offline.
pub fn uncertain_note(rs: &Ruleset) -> Option<String> {
    let table = rs.filter_or_default();
    let uncertain: Vec<String> = table
        .chains_in_save_order()
        .iter()
        .flat_map(|c| c.rules.iter())
        .filter(|r| !r.canon_certain())
        .map(|r| r.to_line())
        .collect();
    if uncertain.is_empty() {
        return None;
    }
    let mut named = uncertain[..uncertain.len().min(NOTE_RULES)].join("; ");
    if uncertain.len() > NOTE_RULES {
        named.push_str(&format!("; and {} more", uncertain.len() - NOTE_RULES));
    }
    let n = uncertain.len();
    Some(format!(
        "# rampart: {n} rule{} may be printed differently by the host's iptables, which decides their final form: {}",
        if n == 1 { "" } else { "s" },
        named.replace('\n', " ")
    ))
}

/// [`render`] for people (`rampart render`): the same text, preceded by the
/// [`uncertain_note`] line when there is one (iptables-restore ignores it).
pub fn render_noted(rs: &Ruleset) -> String {
    match uncertain_note(rs) {
        Some(note) => format!("{note}\n{}", render(rs)),
        None => render(rs),
    }
}
