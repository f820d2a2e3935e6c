//! Desired vs live, as the lines an operator reads in a report.
//!
//! Filter table only (the one rampart owns). Rules are compared by their
//! canonical lines, so counters never matter and two spellings of one rule
//! never differ. Within a chain the rule lists are aligned with a longest
//! common subsequence: order matters to iptables (first match wins), so a
//! moved rule is shown as removed where it was and added where it belongs,
//! plus a note when only the order differs.

use std::collections::BTreeMap;

use super::model::{builtin_chains, Chain, Ruleset, Table};
use super::spec::Policy;
use super::Diff;

/// Above this many cells the LCS table is not built; the chain is shown as
/// all-removed then all-added (still correct, just less minimal).
const MAX_LCS_CELLS: usize = 4_000_000;

/// Compare the filter tables of `desired` and `live` (a missing filter table
/// counts as the kernel default: three ACCEPT chains, no rules).
pub fn diff(desired: &Ruleset, live: &Ruleset) -> Diff {
    let d = desired.filter_or_default();
    let l = live.filter_or_default();
    let mut lines = Vec::new();

    let mut builtins: Vec<String> = builtin_chains("filter")
        .iter()
        .map(|s| s.to_string())
        .collect();
    for c in d.chains.iter().chain(l.chains.iter()) {
        if c.is_builtin() && !builtins.contains(&c.name) {
            builtins.push(c.name.clone());
        }
    }
    let policy = |t: &Table, name: &str| {
        t.chain(name)
            .and_then(|c| c.policy)
            .unwrap_or(Policy::Accept)
    };
    for b in &builtins {
        let (dp, lp) = (policy(&d, b), policy(&l, b));
        if dp != lp {
            lines.push(format!("~ policy {b} {} -> {}", lp.as_str(), dp.as_str()));
        }
    }

    let mut names: Vec<&str> = d
        .chains_in_save_order()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for c in l.chains_in_save_order() {
        if !names.contains(&c.name.as_str()) {
            names.push(c.name.as_str());
        }
    }
    let empty = Vec::new();
    for name in names {
        let dc = d.chain(name);
        let lc = l.chain(name);
        let is_user = |c: Option<&Chain>| c.is_some_and(|c| !c.is_builtin());
        let rules = |c: Option<&Chain>| -> Vec<String> {
            c.map(|c| c.rules.iter().map(|r| r.to_line()).collect())
                .unwrap_or_else(|| empty.clone())
        };
        let (dr, lr) = (rules(dc), rules(lc));
        if is_user(dc) && lc.is_none() {
            lines.push(format!("+ -N {name}"));
        }
        if is_user(lc) && dc.is_none() {
            lines.push(format!("- -N {name}"));
        }
        let ops = align(&lr, &dr);
        let mut removed: BTreeMap<&str, i64> = BTreeMap::new();
        let mut changed = false;
        for (op, line) in &ops {
            match op {
                Op::Keep => {}
                Op::Remove => {
                    changed = true;
                    *removed.entry(line).or_default() += 1;
                    lines.push(format!("- {line}"));
                }
                Op::Add => {
                    changed = true;
                    *removed.entry(line).or_default() -= 1;
                    lines.push(format!("+ {line}"));
                }
            }
        }
        if changed && removed.values().all(|v| *v == 0) {
            lines.push(format!("~ {name}: rules reordered"));
        }
    }
    Diff { lines }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Remove,
    Add,
}

/// Edit script from `old` to `new` (LCS), removals before additions at each
/// point of difference.
fn align<'a>(old: &'a [String], new: &'a [String]) -> Vec<(Op, &'a str)> {
    let pre = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_suf = old.len().min(new.len()) - pre;
    let suf = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_suf)
        .take_while(|(a, b)| a == b)
        .count();
    let a = &old[pre..old.len() - suf];
    let b = &new[pre..new.len() - suf];
    let mut out: Vec<(Op, &str)> = old[..pre].iter().map(|s| (Op::Keep, s.as_str())).collect();
    if a.len().saturating_mul(b.len()) > MAX_LCS_CELLS {
        out.extend(a.iter().map(|s| (Op::Remove, s.as_str())));
        out.extend(b.iter().map(|s| (Op::Add, s.as_str())));
    } else {
        // lcs[i][j] = LCS length of a[i..] and b[j..]
        let w = b.len() + 1;
        let mut lcs = vec![0u32; (a.len() + 1) * w];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i * w + j] = if a[i] == b[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                out.push((Op::Keep, &a[i]));
                i += 1;
                j += 1;
            } else if i < a.len() && (j == b.len() || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
                out.push((Op::Remove, &a[i]));
                i += 1;
            } else {
                out.push((Op::Add, &b[j]));
                j += 1;
            }
        }
    }
    out.extend(
        old[old.len() - suf..]
            .iter()
            .map(|s| (Op::Keep, s.as_str())),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn align_minimal() {
        let old = s(&["a", "b", "c", "d"]);
        let new = s(&["a", "c", "b", "d"]);
        let ops = align(&old, &new);
        let changes: Vec<_> = ops.iter().filter(|(o, _)| *o != Op::Keep).collect();
        assert_eq!(changes.len(), 2, "{ops:?}");
        let (e, x, xy) = (s(&[]), s(&["x"]), s(&["x", "y"]));
        assert_eq!(align(&e, &x), vec![(Op::Add, "x")]);
        assert_eq!(align(&xy, &e), vec![(Op::Remove, "x"), (Op::Remove, "y")]);
    }
}
