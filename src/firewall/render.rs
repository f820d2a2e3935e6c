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
