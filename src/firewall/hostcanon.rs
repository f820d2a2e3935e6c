//! The host's own canonical form of the desired rules.
//!
//! rampart's offline canonicaliser ([`super::Rule::canon_certain`]) knows
//! exactly how every supported iptables prints the modules it models; for
//! anything else (opaque modules, users and groups by name, spellings that
//! differ between versions) only the host's own iptables can say what
//! `iptables-save` will print. The engine then loads the desired filter
//! table into a throwaway network namespace on the host and reads it back
//! (docs/design.md, "Canonical form"):
//!
//! 1. [`canon_probe`] makes the iptables-restore input for it: the desired
//!    table, plus an empty declaration of every live user chain the desired
//!    rules jump to (the preserved Docker/fail2ban chains), so that the jumps
//!    load. The preserved chains' own rules are not loaded: they are already
//!    in the host's form, and some of them cannot load in a namespace of
//!    their own (a fail2ban `-m set --match-set f2b-sshd` needs the host's
//!    ipset, which a new namespace does not have).
//! 2. The host loads that text in its canon step (`src/remote/scripts/canon.sh`).
//! 3. [`host_canonical`] parses what it printed and pairs it, rule for rule,
//!    with the desired table: the result is the desired table in the host's
//!    form, which verification compares with and `with_preserved` completes.

use super::model::{Rule, Ruleset, Table};
use super::parse::parse_save;
use super::render::render_table;

/// The line the host prints once the throwaway namespace exists (the
/// canon step, `src/remote/scripts/canon.sh`, which shows how the probe
/// runs and why it leaves nothing behind). Without it, the namespace could
/// not be made (no `unshare`, or not allowed): the engine falls back to
/// the offline form, with a warning. With it and a failure, the host's
/// iptables refused the rules.
pub const HOST_CANON_MARKER: &str = "rampart-canon-namespace";

/// The iptables-restore input to load into the throwaway namespace: the
/// filter table of `desired` (as [`super::desired`] makes it, before
/// [`super::with_preserved`]), plus an empty declaration of each user chain
/// of `live` that a desired rule jumps or goes to and `desired` does not
/// define.
pub fn canon_probe(desired: &Ruleset, live: &Ruleset) -> String {
    let mut filter = desired.filter_or_default();
    if let Some(live_filter) = live.table("filter") {
        let wanted: Vec<String> = filter
            .chains
            .iter()
            .flat_map(|c| c.rules.iter().filter_map(Rule::target_name))
            .filter(|t| {
                live_filter.chain(t).is_some_and(|c| !c.is_builtin()) && filter.chain(t).is_none()
            })
            .map(str::to_string)
            .collect();
        for name in wanted {
            if filter.chain(&name).is_none() {
                filter.chains.push(super::model::Chain::user(&name));
            }
        }
    }
    render_table(&filter)
}

/// The desired table as the host prints it, and which rules it spells
/// differently from rampart's offline form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCanon {
    /// `desired` with every rule replaced by the host's printing of it.
    pub ruleset: Ruleset,
    /// (rampart's offline form, the host's form) of each rule that differs,
    /// in table order: what a diff can show to explain itself.
    pub respelled: Vec<(Rule, Rule)>,
}

/// Pair what the host printed for the probe of `desired` (the text after
/// [`HOST_CANON_MARKER`]) with `desired`, rule for rule: iptables keeps the
/// chains, their policies and each chain's rules in order, one printed rule
/// per loaded rule. Anything else (a chain missing, a count that differs,
/// text that is not iptables-save output) is an error: the caller then
/// cannot trust the host's form and says so.
pub fn host_canonical(desired: &Ruleset, printed: &str) -> Result<HostCanon, String> {
    let text = match printed.split_once(HOST_CANON_MARKER) {
        Some((_, after)) => after,
        None => printed,
    };
    let host = parse_save(text, desired.family)
        .map_err(|e| format!("the host's iptables-save output does not parse: {e}"))?;
    let host_filter = host
        .table("filter")
        .ok_or("the host printed no filter table for the probe")?;
    let want = desired.filter_or_default();
    let mut out = Table::new("filter");
    let mut respelled = Vec::new();
    for c in &want.chains {
        let h = host_filter
            .chain(&c.name)
            .ok_or_else(|| format!("the host printed no chain {}", c.name))?;
        if h.policy != c.policy {
            return Err(format!(
                "the host printed chain {} with another policy",
                c.name
            ));
        }
        if h.rules.len() != c.rules.len() {
            return Err(format!(
                "the host printed {} rules in chain {} for the {} loaded",
                h.rules.len(),
                c.name,
                c.rules.len()
            ));
        }
        for (ours, theirs) in c.rules.iter().zip(&h.rules) {
            if ours.to_line() != theirs.to_line() {
                respelled.push((ours.clone(), theirs.clone()));
            }
        }
        let mut chain = c.clone();
        chain.rules = h.rules.clone();
        out.chains.push(chain);
    }
    for h in &host_filter.chains {
        if want.chain(&h.name).is_none() && !h.rules.is_empty() {
            return Err(format!(
                "the host printed rules in chain {}, which was not loaded",
                h.name
            ));
        }
    }
    let mut ruleset = desired.clone();
    match ruleset.table_mut("filter") {
        Some(t) => *t = out,
        None => ruleset.tables.insert(0, out),
    }
    Ok(HostCanon { ruleset, respelled })
}

#[cfg(test)]
mod tests {
    use super::super::{desired, diff, parse_save, with_preserved, Family, FirewallSpec, Rule};
    use super::*;

    fn spec(rules: &[&str]) -> FirewallSpec {
        FirewallSpec {
            rules: rules
                .iter()
                .map(|l| Rule::parse(l).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect(),
            ..FirewallSpec::default()
        }
    }

    /// What iptables 1.8.9 printed (tests/corpus/printed) for the issue's
    /// two rules, and a fail2ban host around them.
    #[test]
    fn host_form_replaces_the_offline_form_rule_for_rule() {
        let s = spec(&[
            "-A INPUT -p tcp --syn --dport 22 -m connlimit --connlimit-above 3 -j REJECT",
            "-A OUTPUT -m owner --uid-owner root -j ACCEPT",
            "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd",
        ]);
        let want = desired(&s, Family::V4);
        let uncertain: Vec<String> = want
            .filter_or_default()
            .chains
            .iter()
            .flat_map(|c| c.rules.iter())
            .filter(|r| !r.canon_certain())
            .map(|r| r.to_line())
            .collect();
        assert_eq!(
            uncertain,
            ["-A OUTPUT -m owner --uid-owner root -j ACCEPT"],
            "connlimit is known offline, a user name is not"
        );
        let live = parse_save(
            "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A f2b-sshd -m set --match-set f2b-sshd src -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
",
            Family::V4,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let probe = canon_probe(&want, &live);
        assert!(probe.contains(":f2b-sshd - [0:0]\n"), "{probe}");
        assert!(
            !probe.contains("match-set"),
            "preserved rules are not loaded: {probe}"
        );

        // What the host's iptables printed after loading the probe.
        let printed = format!(
            "{HOST_CANON_MARKER}
# Generated by iptables-save v1.8.9 (nf_tables) on Wed Nov 25 15:54:05 2026
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
{}
-A INPUT -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 3 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with icmp-port-unreachable
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A OUTPUT -m owner --uid-owner 0 -j ACCEPT
COMMIT
# Completed on Wed Nov 25 15:54:05 2026
",
            probe
                .lines()
                .filter(|l| l.starts_with("-A INPUT") && !l.contains("connlimit") && !l.contains("f2b"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let hc = host_canonical(&want, &printed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hc.respelled.len(), 1, "{:?}", hc.respelled);
        assert_eq!(
            hc.respelled[0].1.to_line(),
            "-A OUTPUT -m owner --uid-owner 0 -j ACCEPT"
        );
        // The host, once applied, prints the preserved chain and our rules
        // in its form: verification then finds nothing to change.
        let patterns = vec!["f2b-*".to_string()];
        let full = with_preserved(&hc.ruleset, &live, &patterns);
        let after = parse_save(&render_table(&full.filter_or_default()), Family::V4)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(diff(&full, &after).is_empty());
        // The offline form would have been reported forever as drift.
        let offline = with_preserved(&want, &live, &patterns);
        assert!(!diff(&offline, &after).is_empty());
        let f = full.filter_or_default();
        assert_eq!(
            f.chain("f2b-sshd").map(|c| c.rules.len()),
            Some(2),
            "the preserved chain is the live one"
        );
        assert_eq!(
            f.chain("INPUT").map(|c| c
                .rules
                .iter()
                .filter(|r| r.target_name() == Some("f2b-sshd"))
                .count()),
            Some(1),
            "the jump is not doubled"
        );
    }

    /// The probe is iptables-restore input and nothing else, whatever a
    /// quoted comment holds (metacharacters are only accepted inside
    /// double quotes); it travels to the host as a quoted shell variable.
    #[test]
    fn probe_lines_cannot_end_a_here_document() {
        let want = desired(
            &spec(&[
                "-A INPUT -p tcp --dport 80 -m comment --comment \"x; $(reboot) `id` | y\" -j ACCEPT",
                "-A CORPUS -p tcp --dport kerberos -j ACCEPT",
            ]),
            Family::V4,
        );
        let probe = canon_probe(&want, &Ruleset::empty(Family::V4));
        assert!(
            probe.contains("--comment \"x; $(reboot) `id` | y\""),
            "{probe}"
        );
        for l in probe.lines() {
            assert!(
                l.starts_with('*') || l.starts_with(':') || l.starts_with("-A ") || l == "COMMIT",
                "{l}"
            );
        }
        // A service name rampart's table lacks is the host's to resolve.
        let r = Rule::parse("-A CORPUS -p tcp --dport kerberos -j ACCEPT")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.to_line(),
            "-A CORPUS -p tcp -m tcp --dport kerberos -j ACCEPT"
        );
        assert!(!r.canon_certain());
        let r = Rule::parse("-A CORPUS -p udp --sport bootps:bootpc -j ACCEPT")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.to_line(),
            "-A CORPUS -p udp -m udp --sport 67:68 -j ACCEPT"
        );
        assert!(r.canon_certain());
    }

    #[test]
    fn host_output_that_does_not_pair_is_an_error() {
        let want = desired(
            &spec(&["-A CORPUS -m owner --uid-owner root -j ACCEPT"]),
            Family::V4,
        );
        let probe = canon_probe(&want, &Ruleset::empty(Family::V4));
        // No marker (the namespace was never made) and nothing printed.
        assert!(host_canonical(&want, "").is_err());
        // A rule missing.
        let short: String = probe
            .lines()
            .filter(|l| !l.starts_with("-A CORPUS"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = host_canonical(&want, &short).expect_err("a rule is missing");
        assert!(e.contains("CORPUS"), "{e}");
        // The probe itself round-trips when everything was certain.
        let hc = host_canonical(&want, &probe).unwrap_or_else(|e| panic!("{e}"));
        assert!(hc.respelled.is_empty());
        assert_eq!(hc.ruleset, want);
    }
}
