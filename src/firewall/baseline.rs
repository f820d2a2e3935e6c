//! The seed's protections and the desired filter table of one host.
//!
//! The seed (a 2016 how-to for a freshly rented CentOS 6 VPS) typed, in this
//! effective order: accept established traffic, drop three kinds of bogus TCP
//! (null scan, NEW without SYN, xmas scan), accept loopback and ICMP, open
//! the service ports, then set INPUT's policy to DROP. rampart states the
//! same as one ruleset, in the form `iptables-save` prints it, so that the
//! host's dump after applying compares equal line for line.

use super::model::Chain;
use super::model::{Opt, Rule, Ruleset, Table};
use super::spec::{Allow, Family, FirewallSpec};

fn tcp_flags(neg: bool, mask: &str, cmp: &str) -> Opt {
    let mut o = Opt::new("--tcp-flags", &[mask, cmp]);
    o.negated = neg;
    o
}

/// The seed's protections for one family, in the seed's order.
pub fn baseline_rules(family: Family) -> Vec<Rule> {
    const ALL: &str = "FIN,SYN,RST,PSH,ACK,URG";
    let state = |s: &str| vec![Opt::new("--state", &[s])];
    vec![
        // Replies to what the host itself started, first so they cost one match.
        Rule::new("INPUT")
            .with_match("state", state("RELATED,ESTABLISHED"))
            .jump("ACCEPT"),
        // Null scan: no flags at all.
        Rule::new("INPUT")
            .with_proto("tcp")
            .with_match("tcp", vec![tcp_flags(false, ALL, "NONE")])
            .jump("DROP"),
        // A NEW connection that does not start with SYN (SYN flood tricks).
        Rule::new("INPUT")
            .with_proto("tcp")
            .with_match("tcp", vec![tcp_flags(true, "FIN,SYN,RST,ACK", "SYN")])
            .with_match("state", state("NEW"))
            .jump("DROP"),
        // Xmas/stealth scan: every flag set.
        Rule::new("INPUT")
            .with_proto("tcp")
            .with_match("tcp", vec![tcp_flags(false, ALL, ALL)])
            .jump("DROP"),
        Rule::new("INPUT").with_in("lo").jump("ACCEPT"),
        // ping for IPv4; for IPv6 ICMP also carries neighbour discovery,
        // without which the host falls off the network.
        Rule::new("INPUT")
            .with_proto(match family {
                Family::V4 => "icmp",
                Family::V6 => "ipv6-icmp",
            })
            .jump("ACCEPT"),
    ]
}

/// `-A INPUT [-s CIDR] -p tcp -m tcp --dport P[:Q] -j ACCEPT` (udp alike),
/// or None when the source belongs to the other family.
pub fn allow_rule(allow: &Allow, family: Family) -> Option<Rule> {
    let mut r = Rule::new("INPUT");
    if let Some(from) = allow.from {
        if from.family() != family {
            return None;
        }
        r = r.with_src(from);
    }
    let p = allow.ports;
    let ports = if p.lo == p.hi {
        p.lo.to_string()
    } else {
        format!("{}:{}", p.lo.min(p.hi), p.lo.max(p.hi))
    };
    let proto = allow.proto.as_str();
    Some(
        r.with_proto(proto)
            .with_match(proto, vec![Opt::new("--dport", &[&ports])])
            .jump("ACCEPT"),
    )
}

/// The filter-table Ruleset rampart wants for this spec and family:
/// built-in chains with the spec's policies, the baseline (if asked), the
/// allows, then the raw rules that fit this family (a raw rule appending to
/// a chain that is not built in declares that chain).
pub fn desired(spec: &FirewallSpec, family: Family) -> Ruleset {
    let mut filter = Table::new("filter");
    for (name, policy) in [
        ("INPUT", spec.policy.input),
        ("FORWARD", spec.policy.forward),
        ("OUTPUT", spec.policy.output),
    ] {
        filter.chains.push(Chain::builtin(name, policy));
    }
    if spec.baseline {
        for r in baseline_rules(family) {
            filter.push_rule(r);
        }
    }
    for a in &spec.allow {
        if let Some(r) = allow_rule(a, family) {
            filter.push_rule(r);
        }
    }
    for r in &spec.rules {
        if r.family().is_none_or(|f| f == family) {
            filter.push_rule(r.for_family(family));
        }
    }
    Ruleset {
        family,
        tables: vec![filter],
    }
}
