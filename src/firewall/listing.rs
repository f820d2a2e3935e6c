//! `iptables -L` output, parsed well enough to cross-check a ruleset.
//!
//! The transaction verifies with `iptables -L -n` (shown to the operator as evidence)
//! besides comparing `iptables-save`. The listing is meant for humans, so it
//! is parsed by columns named in its header, and only what a cross-check
//! needs is interpreted: chains, policies, counters and one row per rule.
//! Variants handled: with or without `-v`, `--line-numbers`, `-n`; IPv4 and
//! IPv6 (whose `opt` column may be blank); iptables >= 1.8.9 printing the
//! protocol as a number (`6`) and older ones as a name (`tcp`); an empty
//! target column (a rule that only counts).

use std::collections::BTreeMap;

use super::model::Ruleset;
use super::{ParseError, Policy};

/// One `Chain NAME (...)` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListChain {
    pub name: String,
    /// `ACCEPT`/`DROP` for built-in chains.
    pub policy: Option<String>,
    /// `(N references)` for user chains.
    pub references: Option<u64>,
    /// Policy counters (`-v` only), with K/M/G/T suffixes expanded.
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub rows: Vec<ListRow>,
}

/// One rule row. Columns absent from the listing are None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    pub num: Option<u64>,
    pub pkts: Option<u64>,
    pub bytes: Option<u64>,
    /// Empty for a rule without a target.
    pub target: String,
    /// As printed: `tcp`, `all`, or a number (`6`, `0`), maybe `!`-prefixed.
    pub prot: String,
    /// `--`, `-f`, `!f`, or empty (ip6tables may leave it blank).
    pub opt: String,
    pub in_iface: Option<String>,
    pub out_iface: Option<String>,
    pub source: String,
    pub destination: String,
    /// Everything after the destination (match and target details).
    pub rest: String,
}

/// A whole `iptables -L` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    pub chains: Vec<ListChain>,
}

impl Listing {
    /// Chain name -> number of rules.
    pub fn rule_counts(&self) -> BTreeMap<String, usize> {
        self.chains
            .iter()
            .map(|c| (c.name.clone(), c.rows.len()))
            .collect()
    }

    /// The policy of a built-in chain.
    pub fn policy(&self, chain: &str) -> Option<&str> {
        self.chain(chain).and_then(|c| c.policy.as_deref())
    }

    pub fn chain(&self, name: &str) -> Option<&ListChain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// `123`, `5K`, `17M` -> a number (the listing's units are powers of 1000).
/// A count too large for 64 bits is no count at all: the text comes from
/// the host, and a hostile listing must not overflow (`99999999999999T`).
fn count(s: &str) -> Option<u64> {
    let (digits, mult) = match s.strip_suffix(['K', 'M', 'G', 'T']) {
        Some(d) if s.ends_with('K') => (d, 1_000),
        Some(d) if s.ends_with('M') => (d, 1_000_000),
        Some(d) if s.ends_with('G') => (d, 1_000_000_000),
        Some(d) => (d, 1_000_000_000_000),
        None => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn perr<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// `Chain INPUT (policy DROP 0 packets, 0 bytes)` / `Chain X (2 references)`.
fn chain_header(line: &str, n: usize) -> Result<ListChain, ParseError> {
    let rest = line.strip_prefix("Chain ").unwrap_or(line);
    let (name, paren) = match rest.split_once(" (") {
        Some((a, b)) => (a.trim(), b.trim_end().trim_end_matches(')')),
        None => return perr(n, format!("bad chain header {line:?}")),
    };
    let mut c = ListChain {
        name: name.to_string(),
        policy: None,
        references: None,
        packets: None,
        bytes: None,
        rows: Vec::new(),
    };
    let words: Vec<&str> = paren.split_whitespace().collect();
    match words.as_slice() {
        ["policy", p, rest @ ..] => {
            c.policy = Some(p.to_string());
            if let [pk, "packets,", by, "bytes"] = rest {
                c.packets = count(pk);
                c.bytes = count(by);
            }
        }
        [r, "references"] | [r, "reference"] => c.references = count(r),
        _ => return perr(n, format!("bad chain header {line:?}")),
    }
    Ok(c)
}

/// Column layout of one header line.
struct Columns {
    num: bool,
    counters: bool,
    ifaces: bool,
    /// Char offset of `prot` in the header: a first token starting at or
    /// after it (minus the `!` slot) means the target column is empty.
    prot_at: usize,
}

fn header(line: &str) -> Option<Columns> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if !words.contains(&"target") || !words.contains(&"prot") {
        return None;
    }
    Some(Columns {
        num: words.contains(&"num"),
        counters: words.contains(&"pkts"),
        ifaces: words.contains(&"in"),
        prot_at: line.find("prot").unwrap_or(0),
    })
}

/// Tokens with their start offsets.
fn words_at(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

fn row(line: &str, cols: &Columns, n: usize) -> Result<ListRow, ParseError> {
    let w = words_at(line);
    let mut k = 0;
    let mut next = |what: &str| -> Result<(usize, &str), ParseError> {
        let r = w.get(k).copied();
        k += 1;
        r.ok_or(ParseError {
            line: n,
            message: format!("rule row without {what}: {line:?}"),
        })
    };
    let num = if cols.num {
        Some(count(next("num")?.1).ok_or(ParseError {
            line: n,
            message: format!("bad rule number in {line:?}"),
        })?)
    } else {
        None
    };
    let (pkts, bytes) = if cols.counters {
        (count(next("pkts")?.1), count(next("bytes")?.1))
    } else {
        (None, None)
    };
    let (at, first) = next("target")?;
    let (target, prot) = if at + 1 >= cols.prot_at && cols.prot_at > 0 {
        (String::new(), first.to_string())
    } else {
        (first.to_string(), next("prot")?.1.to_string())
    };
    let mut opt = String::new();
    if let Some((_, o)) = w.get(k) {
        if matches!(*o, "--" | "-f" | "!f") {
            opt = o.to_string();
            k += 1;
        }
    }
    let mut next = |what: &str| -> Result<(usize, &str), ParseError> {
        let r = w.get(k).copied();
        k += 1;
        r.ok_or(ParseError {
            line: n,
            message: format!("rule row without {what}: {line:?}"),
        })
    };
    let (in_iface, out_iface) = if cols.ifaces {
        (
            Some(next("in")?.1.to_string()),
            Some(next("out")?.1.to_string()),
        )
    } else {
        (None, None)
    };
    let source = next("source")?.1.to_string();
    let destination = next("destination")?.1.to_string();
    let rest = match w.get(k) {
        Some((at, _)) => line[*at..].trim_end().to_string(),
        None => String::new(),
    };
    Ok(ListRow {
        num,
        pkts,
        bytes,
        target,
        prot,
        opt,
        in_iface,
        out_iface,
        source,
        destination,
        rest,
    })
}

/// Parse `iptables -L [-n] [-v] [-x] [--line-numbers]` (or ip6tables) output.
pub fn parse_list(text: &str) -> Result<Listing, ParseError> {
    let mut listing = Listing::default();
    let mut cols: Option<Columns> = None;
    for (idx, line) in text.lines().enumerate() {
        let n = idx + 1;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("Chain ") {
            listing.chains.push(chain_header(line, n)?);
            cols = None;
            continue;
        }
        let Some(chain) = listing.chains.last_mut() else {
            return perr(n, format!("text before the first chain: {line:?}"));
        };
        match &cols {
            None => match header(line) {
                Some(h) => cols = Some(h),
                None => return perr(n, format!("expected a column header, found {line:?}")),
            },
            Some(c) => chain.rows.push(row(line, c, n)?),
        }
    }
    Ok(listing)
}

/// Does this listing show the filter table of `rs`? Same chains, same
/// built-in policies, same number of rules per chain. The listing cannot
/// prove more (it abbreviates rules), and `iptables-save` is compared
/// separately; this catches a listing taken from different rules.
pub fn listing_matches(listing: &Listing, rs: &Ruleset) -> Result<(), String> {
    let filter = rs.filter_or_default();
    let mut problems = Vec::new();
    for c in &filter.chains {
        let Some(lc) = listing.chain(&c.name) else {
            problems.push(format!("chain {} missing from the listing", c.name));
            continue;
        };
        let want = c.policy.map(Policy::as_str);
        if want != lc.policy.as_deref() {
            problems.push(format!(
                "chain {}: policy {} in the listing, {} expected",
                c.name,
                lc.policy.as_deref().unwrap_or("-"),
                want.unwrap_or("-")
            ));
        }
        if lc.rows.len() != c.rules.len() {
            problems.push(format!(
                "chain {}: {} rules in the listing, {} expected",
                c.name,
                lc.rows.len(),
                c.rules.len()
            ));
        }
    }
    for lc in &listing.chains {
        if filter.chain(&lc.name).is_none() {
            problems.push(format!("unexpected chain {} in the listing", lc.name));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile `-L` listing: counters too large for 64 bits are no
    /// counters (None), never an overflow.
    #[test]
    fn huge_counters_do_not_overflow() {
        assert_eq!(count("17M"), Some(17_000_000));
        assert_eq!(count("18446744073709551615"), Some(u64::MAX));
        assert_eq!(count("18446744073709551615T"), None);
        assert_eq!(count("99999999999T"), None);
        assert_eq!(count("T"), None);
        assert_eq!(count(""), None);
        let l = parse_list(
            "Chain INPUT (policy DROP 99999999999999T packets, 5G bytes)\n\
             num   pkts bytes target     prot opt in     out     source               destination\n\
             1     99999999999999999999T 1 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = &l.chains[0];
        assert_eq!((c.packets, c.bytes), (None, Some(5_000_000_000)));
        assert_eq!(c.rows[0].pkts, None);
    }
}
