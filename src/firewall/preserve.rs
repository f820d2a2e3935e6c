//! Chains rampart must not own: Docker's, fail2ban's, Kubernetes'.
//!
//! iptables-restore replaces the whole filter table, so "leaving a chain
//! alone" means copying it, exactly as found, into what rampart applies,
//! together with the rules of built-in chains that jump into it. Those jumps
//! go at the top of their built-in chain: that is where Docker and fail2ban
//! insert them, and putting them below rampart's accepts would make a ban
//! ineffective for an allowed port.
//!
//! Only jumps (`-j`/`-g` to a preserved chain) are kept from built-in
//! chains. Docker's plain `-A FORWARD -o docker0 ... -j ACCEPT` rules are
//! not: with the default FORWARD ACCEPT policy they change nothing, and
//! otherwise the playbook states what FORWARD should do.

use super::model::{Chain, Rule, Ruleset, Table};

/// Glob on chain names (`*`, `?`, `[set]`), the same matcher as host patterns.
pub use crate::glob::matches as glob_match;

/// The live user chains to keep: those matching a pattern, plus every user
/// chain a kept chain jumps to (so a kept chain never points at nothing).
/// In the live table's order.
pub fn preserved_chains(live: &Table, patterns: &[String]) -> Vec<String> {
    let mut keep: Vec<&str> = live
        .chains
        .iter()
        .filter(|c| !c.is_builtin() && patterns.iter().any(|p| glob_match(p, &c.name)))
        .map(|c| c.name.as_str())
        .collect();
    let mut i = 0;
    while i < keep.len() {
        if let Some(c) = live.chain(keep[i]) {
            for r in &c.rules {
                if let Some(t) = r.target_name() {
                    let is_user_chain = live.chain(t).is_some_and(|c| !c.is_builtin());
                    if is_user_chain && !keep.contains(&t) {
                        keep.push(t);
                    }
                }
            }
        }
        i += 1;
    }
    live.chains
        .iter()
        .filter(|c| keep.contains(&c.name.as_str()))
        .map(|c| c.name.clone())
        .collect()
}

/// `desired` plus the chains of `live` whose names match `patterns`, and the
/// rules of built-in chains that jump to them, kept exactly as found.
///
/// A preserved chain replaces a desired chain of the same name (the host's
/// owner of that chain wins); a desired rule identical to a kept jump is
/// dropped so the jump is not applied twice.
pub fn with_preserved(desired: &Ruleset, live: &Ruleset, patterns: &[String]) -> Ruleset {
    let live_filter = match live.table("filter") {
        Some(t) => t,
        None => return desired.clone(),
    };
    let keep = preserved_chains(live_filter, patterns);
    if keep.is_empty() {
        return desired.clone();
    }
    let mut out = desired.clone();
    if out.table("filter").is_none() {
        out.tables.insert(0, Table::default_filter());
    }
    let Some(filter) = out.table_mut("filter") else {
        return out;
    };
    for name in &keep {
        let Some(found) = live_filter.chain(name) else {
            continue;
        };
        match filter.chain_mut(name) {
            Some(c) => {
                c.policy = None;
                c.rules = found.rules.clone();
            }
            None => filter.chains.push(found.clone()),
        }
    }
    for b in live_filter.chains.iter().filter(|c| c.is_builtin()) {
        let jumps: Vec<Rule> = b
            .rules
            .iter()
            .filter(|r| r.target_name().is_some_and(|t| keep.iter().any(|k| k == t)))
            .cloned()
            .collect();
        if jumps.is_empty() {
            continue;
        }
        if filter.chain(&b.name).is_none() {
            filter.chains.push(Chain {
                name: b.name.clone(),
                policy: b.policy,
                rules: Vec::new(),
            });
        }
        if let Some(dest) = filter.chain_mut(&b.name) {
            dest.rules.retain(|r| !jumps.contains(r));
            let rest = std::mem::take(&mut dest.rules);
            dest.rules = jumps;
            dest.rules.extend(rest);
        }
    }
    out
}

/// The part of `rs` rampart manages: its filter table without the
/// preserved chains (those matching `patterns`, or named in `keep`) and
/// without the rules of built-in chains that jump to them. The same cut as
/// `rp_managed` of the remote scripts makes on a host (docs/design.md,
/// "The transaction"), so that two rulesets compare equal here exactly
/// when the host's own check finds them equal.
pub fn without_preserved(rs: &Ruleset, patterns: &[String], keep: &[String]) -> Ruleset {
    let kept =
        |name: &str| keep.iter().any(|k| k == name) || patterns.iter().any(|p| glob_match(p, name));
    let mut filter = rs
        .table("filter")
        .cloned()
        .unwrap_or_else(Table::default_filter);
    filter.chains.retain(|c| c.is_builtin() || !kept(&c.name));
    for c in filter.chains.iter_mut().filter(|c| c.is_builtin()) {
        c.rules.retain(|r| !r.target_name().is_some_and(kept));
    }
    Ruleset {
        family: rs.family,
        tables: vec![filter],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("DOCKER*", "DOCKER"));
        assert!(glob_match("DOCKER*", "DOCKER-ISOLATION-STAGE-1"));
        assert!(glob_match("f2b-*", "f2b-sshd"));
        assert!(!glob_match("f2b-*", "f2b"));
        assert!(glob_match("KUBE-?VC-*", "KUBE-SVC-ABC"));
        assert!(!glob_match("DOCKER", "DOCKER-USER"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }
}
