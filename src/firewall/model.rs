//! The ruleset model: tables, chains, rules.
//!
//! A [`Rule`] is structured where rampart needs to reason about it (addresses,
//! interfaces, protocol, the match modules it loads, its target) and lossless
//! everywhere else: options of modules rampart does not know are kept as the
//! exact tokens `iptables-save` printed, so any real host's ruleset survives
//! parse -> render unchanged. Everything is stored in canonical form (what
//! `iptables-save` prints), so that comparing a desired rule with a live one
//! is plain equality.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::spec::{Cidr, Family, Policy};

/// One argument of an option, and whether `iptables-save` quotes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arg {
    pub text: String,
    pub quoted: bool,
}

impl Arg {
    /// An argument printed bare.
    pub fn bare(text: impl Into<String>) -> Arg {
        Arg {
            text: text.into(),
            quoted: false,
        }
    }

    /// An argument quoted exactly when `xtables_save_string` would quote it
    /// (comments, log prefixes): anything but `[A-Za-z0-9_-]+` is quoted.
    pub fn saved_string(text: impl Into<String>) -> Arg {
        let text = text.into();
        let quoted = text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        Arg { text, quoted }
    }
}

/// One option of a match or target: `[!] --name arg...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Opt {
    pub negated: bool,
    pub name: String,
    pub args: Vec<Arg>,
}

impl Opt {
    pub(crate) fn new(name: &str, args: &[&str]) -> Opt {
        Opt {
            negated: false,
            name: name.to_string(),
            args: args.iter().map(|a| Arg::bare(*a)).collect(),
        }
    }
}

/// `-m NAME` and its options, in the order iptables-save prints them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Match {
    pub name: String,
    pub opts: Vec<Opt>,
}

impl Match {
    /// The first option called `name`.
    pub fn opt(&self, name: &str) -> Option<&Opt> {
        self.opts.iter().find(|o| o.name == name)
    }
}

/// `-j NAME opts...` or `-g CHAIN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub goto: bool,
    pub name: String,
    pub opts: Vec<Opt>,
}

/// A value with an optional `!` in front.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Neg<T> {
    pub negated: bool,
    pub value: T,
}

/// One rule, e.g. `-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT`.
///
/// Fields are private so that every Rule is canonical: build one with
/// [`Rule::parse`] (or the crate's own builders), read it with the accessors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub(crate) chain: String,
    pub(crate) src: Option<Neg<Cidr>>,
    pub(crate) dst: Option<Neg<Cidr>>,
    pub(crate) in_iface: Option<Neg<String>>,
    pub(crate) out_iface: Option<Neg<String>>,
    pub(crate) proto: Option<Neg<String>>,
    /// `-f` (false) or `! -f` (true).
    pub(crate) fragment: Option<bool>,
    pub(crate) matches: Vec<Match>,
    pub(crate) target: Option<Target>,
}

impl Rule {
    /// An empty rule appended to `chain`; the crate builds baseline and
    /// allow rules from this so they cannot fail to parse at run time.
    pub(crate) fn new(chain: &str) -> Rule {
        Rule {
            chain: chain.to_string(),
            src: None,
            dst: None,
            in_iface: None,
            out_iface: None,
            proto: None,
            fragment: None,
            matches: Vec::new(),
            target: None,
        }
    }

    pub(crate) fn with_src(mut self, cidr: Cidr) -> Rule {
        self.src = Some(Neg {
            negated: false,
            value: mask_cidr(cidr),
        });
        self
    }

    pub(crate) fn with_in(mut self, iface: &str) -> Rule {
        self.in_iface = Some(Neg {
            negated: false,
            value: iface.to_string(),
        });
        self
    }

    pub(crate) fn with_proto(mut self, proto: &str) -> Rule {
        self.proto = Some(Neg {
            negated: false,
            value: proto.to_string(),
        });
        self
    }

    pub(crate) fn with_match(mut self, name: &str, opts: Vec<Opt>) -> Rule {
        self.matches.push(Match {
            name: name.to_string(),
            opts,
        });
        self
    }

    pub(crate) fn jump(mut self, target: &str) -> Rule {
        self.target = Some(Target {
            goto: false,
            name: target.to_string(),
            opts: Vec::new(),
        });
        self
    }

    /// The chain this rule is appended to.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// `-s`, canonical (host bits masked).
    pub fn source(&self) -> Option<&Neg<Cidr>> {
        self.src.as_ref()
    }

    /// `-d`, canonical (host bits masked).
    pub fn destination(&self) -> Option<&Neg<Cidr>> {
        self.dst.as_ref()
    }

    /// `-i`.
    pub fn in_interface(&self) -> Option<&Neg<String>> {
        self.in_iface.as_ref()
    }

    /// `-o`.
    pub fn out_interface(&self) -> Option<&Neg<String>> {
        self.out_iface.as_ref()
    }

    /// `-p`, canonical name (`tcp`, `ipv6-icmp`, or a number).
    pub fn protocol(&self) -> Option<&Neg<String>> {
        self.proto.as_ref()
    }

    /// `-f`: Some(false) for `-f`, Some(true) for `! -f`.
    pub fn fragment(&self) -> Option<bool> {
        self.fragment
    }

    /// The `-m` modules in order.
    pub fn matches(&self) -> &[Match] {
        &self.matches
    }

    /// The `-j`/`-g` target, if any (a rule without one only counts packets).
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// The name this rule jumps or goes to, if any.
    pub fn target_name(&self) -> Option<&str> {
        self.target.as_ref().map(|t| t.name.as_str())
    }

    /// The one family this rule can live in, or None when it fits both.
    ///
    /// Decided by its addresses, `-p icmp` / `-p ipv6-icmp`, the icmp/icmp6
    /// matches and REJECT's icmp types: a rule naming any of these would be
    /// refused by the other family's iptables-restore.
    pub fn family(&self) -> Option<Family> {
        let (v4, v6) = self.family_hints();
        match (v4, v6) {
            (true, false) => Some(Family::V4),
            (false, true) => Some(Family::V6),
            _ => None,
        }
    }

    /// (says IPv4, says IPv6): both true means the rule is contradictory.
    pub(crate) fn family_hints(&self) -> (bool, bool) {
        let mut v4 = false;
        let mut v6 = false;
        for c in [&self.src, &self.dst].into_iter().flatten() {
            match c.value.family() {
                Family::V4 => v4 = true,
                Family::V6 => v6 = true,
            }
        }
        match self.proto.as_ref().map(|p| p.value.as_str()) {
            Some("icmp") => v4 = true,
            Some("ipv6-icmp") => v6 = true,
            _ => {}
        }
        // `-f` exists in iptables only (ip6tables has the frag match).
        if self.fragment.is_some() {
            v4 = true;
        }
        // An address argument: IPv6 ones have a colon.
        let addr = |text: &str, v4: &mut bool, v6: &mut bool| {
            if text.contains(':') {
                *v6 = true;
            } else if text.contains('.') {
                *v4 = true;
            }
        };
        for m in &self.matches {
            match m.name.as_str() {
                "icmp" | "ttl" => v4 = true,
                "icmp6" | "hl" | "frag" | "rt" | "hbh" | "dst" | "mh" | "ipv6header" | "eui64"
                | "srh" => v6 = true,
                _ => {}
            }
            for o in &m.opts {
                let first = o.args.first().map(|a| a.text.as_str()).unwrap_or("");
                match (m.name.as_str(), o.name.as_str()) {
                    ("iprange", "--src-range" | "--dst-range")
                    | (
                        "conntrack",
                        "--ctorigsrc" | "--ctorigdst" | "--ctreplsrc" | "--ctrepldst",
                    ) => addr(first, &mut v4, &mut v6),
                    // Prefix lengths past 32 exist in IPv6 only.
                    (
                        "connlimit" | "hashlimit",
                        "--connlimit-mask" | "--hashlimit-srcmask" | "--hashlimit-dstmask",
                    ) if first.parse::<u8>().is_ok_and(|n| n > 32) => v6 = true,
                    // The kernel refuses BROADCAST for IPv6 (there is none).
                    ("addrtype", "--src-type" | "--dst-type") if first.contains("BROADCAST") => {
                        v4 = true
                    }
                    _ => {}
                }
            }
        }
        if let Some(t) = &self.target {
            if t.name == "REJECT" {
                for o in &t.opts {
                    if let Some(a) = o.args.first() {
                        match a.text.as_str() {
                            t if t.starts_with("icmp6-") => v6 = true,
                            t if t.starts_with("icmp-") => v4 = true,
                            // Aliases only one of the two knows.
                            "net-unreach" | "host-unreach" | "proto-unreach" | "net-prohib"
                            | "host-prohib" | "admin-prohib" => v4 = true,
                            "no-route" | "adm-prohibited" | "addr-unreach" => v6 = true,
                            _ => {}
                        }
                    }
                }
            }
        }
        (v4, v6)
    }

    /// The canonical line, as iptables-save prints it.
    pub fn to_line(&self) -> String {
        let mut s = format!("-A {}", self.chain);
        let neg = |s: &mut String, n: bool| {
            if n {
                s.push_str(" !");
            }
        };
        if let Some(a) = &self.src {
            neg(&mut s, a.negated);
            let _ = write!(s, " -s {}", cidr_to_string(&a.value));
        }
        if let Some(a) = &self.dst {
            neg(&mut s, a.negated);
            let _ = write!(s, " -d {}", cidr_to_string(&a.value));
        }
        if let Some(i) = &self.in_iface {
            neg(&mut s, i.negated);
            let _ = write!(s, " -i {}", i.value);
        }
        if let Some(o) = &self.out_iface {
            neg(&mut s, o.negated);
            let _ = write!(s, " -o {}", o.value);
        }
        if let Some(p) = &self.proto {
            neg(&mut s, p.negated);
            let _ = write!(s, " -p {}", p.value);
        }
        if let Some(n) = self.fragment {
            neg(&mut s, n);
            s.push_str(" -f");
        }
        for m in &self.matches {
            let _ = write!(s, " -m {}", m.name);
            write_opts(&mut s, &m.opts);
        }
        if let Some(t) = &self.target {
            let _ = write!(s, " {} {}", if t.goto { "-g" } else { "-j" }, t.name);
            write_opts(&mut s, &t.opts);
        }
        s
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_line())
    }
}

fn write_opts(s: &mut String, opts: &[Opt]) {
    for o in opts {
        if o.negated {
            s.push_str(" !");
        }
        s.push(' ');
        s.push_str(&o.name);
        for a in &o.args {
            s.push(' ');
            write_arg(s, a);
        }
    }
}

/// Print an argument the way `xtables_save_string` does: inside double
/// quotes, `"`, `\` and `'` get a backslash.
fn write_arg(s: &mut String, a: &Arg) {
    if !a.quoted {
        s.push_str(&a.text);
        return;
    }
    s.push('"');
    for c in a.text.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
}

/// `addr/len` as iptables-save prints it (`198.51.100.7/32`, `2001:db8::/32`).
pub fn cidr_to_string(c: &Cidr) -> String {
    match c {
        Cidr::V4(a, l) => format!("{a}/{l}"),
        Cidr::V6(a, l) => format!("{a}/{l}"),
    }
}

/// Clear the host bits, as the kernel does (`10.1.2.3/8` -> `10.0.0.0/8`).
pub fn mask_cidr(c: Cidr) -> Cidr {
    match c {
        Cidr::V4(a, l) => {
            let l = l.min(32);
            let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            Cidr::V4(Ipv4Addr::from(u32::from(a) & mask), l)
        }
        Cidr::V6(a, l) => {
            let l = l.min(128);
            let mask = if l == 0 { 0 } else { u128::MAX << (128 - l) };
            Cidr::V6(Ipv6Addr::from(u128::from(a) & mask), l)
        }
    }
}

/// Parse `ADDR`, `ADDR/LEN` or `ADDR/DOTTED-MASK` (IPv4, contiguous masks
/// only) into a masked Cidr. Host names are refused: iptables would resolve
/// them once, at insert time, which is never what a playbook means.
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    if let Ok(a) = addr.parse::<Ipv4Addr>() {
        let l = match len {
            None => 32,
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
                match l.parse::<u8>() {
                    Ok(n) if n <= 32 => n,
                    _ => return Err(format!("bad prefix length /{l} in {text}")),
                }
            }
            Some(l) => match l.parse::<Ipv4Addr>() {
                Ok(m) => {
                    let m = u32::from(m);
                    if m.leading_ones() + m.trailing_zeros() != 32 {
                        return Err(format!("non-contiguous netmask in {text}"));
                    }
                    m.leading_ones() as u8
                }
                Err(_) => return Err(format!("bad netmask /{l} in {text}")),
            },
        };
        return Ok(mask_cidr(Cidr::V4(a, l)));
    }
    if let Ok(a) = addr.parse::<Ipv6Addr>() {
        let l = match len {
            None => 128,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 128 && l.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("bad prefix length /{l} in {text}")),
            },
        };
        return Ok(mask_cidr(Cidr::V6(a, l)));
    }
    if addr.contains(',') {
        return Err(format!(
            "{text}: several addresses make several rules; write one rule per address"
        ));
    }
    Err(format!(
        "{text} is not an IP address or network (host names are not resolved)"
    ))
}

/// One chain: built-in chains have a policy, user chains (`-`) do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub policy: Option<Policy>,
    pub rules: Vec<Rule>,
}

impl Chain {
    pub fn builtin(name: &str, policy: Policy) -> Chain {
        Chain {
            name: name.to_string(),
            policy: Some(policy),
            rules: Vec::new(),
        }
    }

    pub fn user(name: &str) -> Chain {
        Chain {
            name: name.to_string(),
            policy: None,
            rules: Vec::new(),
        }
    }

    pub fn is_builtin(&self) -> bool {
        self.policy.is_some()
    }
}

/// One table (`*filter`, `*nat`, ...), chains in the order they were declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub chains: Vec<Chain>,
}

/// The built-in chains of a table, in the order iptables-save prints them.
pub fn builtin_chains(table: &str) -> &'static [&'static str] {
    match table {
        "filter" => &["INPUT", "FORWARD", "OUTPUT"],
        "nat" => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle" => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        "raw" => &["PREROUTING", "OUTPUT"],
        "security" => &["INPUT", "FORWARD", "OUTPUT"],
        _ => &[],
    }
}

impl Table {
    pub fn new(name: &str) -> Table {
        Table {
            name: name.to_string(),
            chains: Vec::new(),
        }
    }

    /// What the kernel has before anyone touched it: INPUT, FORWARD, OUTPUT
    /// all ACCEPT and empty. An nf_tables host with no rules prints nothing,
    /// which means exactly this.
    pub fn default_filter() -> Table {
        Table {
            name: "filter".to_string(),
            chains: builtin_chains("filter")
                .iter()
                .map(|c| Chain::builtin(c, Policy::Accept))
                .collect(),
        }
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    pub fn chain_mut(&mut self, name: &str) -> Option<&mut Chain> {
        self.chains.iter_mut().find(|c| c.name == name)
    }

    /// Append a rule to its chain, declaring the chain as a user chain when
    /// it does not exist yet.
    pub fn push_rule(&mut self, rule: Rule) {
        match self.chains.iter_mut().find(|c| c.name == rule.chain) {
            Some(c) => c.rules.push(rule),
            None => {
                let mut c = Chain::user(&rule.chain);
                c.rules.push(rule);
                self.chains.push(c);
            }
        }
    }

    /// Chains in iptables-save order: built-ins in kernel hook order, then
    /// user chains sorted by name (byte order, as libiptc and iptables-nft's
    /// cache both sort them), then any unknown built-in.
    pub fn chains_in_save_order(&self) -> Vec<&Chain> {
        let builtins = builtin_chains(&self.name);
        let mut out: Vec<&Chain> = builtins.iter().filter_map(|b| self.chain(b)).collect();
        let mut odd: Vec<&Chain> = self
            .chains
            .iter()
            .filter(|c| c.is_builtin() && !builtins.contains(&c.name.as_str()))
            .collect();
        let mut users: Vec<&Chain> = self.chains.iter().filter(|c| !c.is_builtin()).collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        odd.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(odd);
        out.extend(users);
        out
    }
}

/// What one `iptables-save` prints (or what rampart wants it to print).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub family: Family,
    pub tables: Vec<Table>,
}

impl Ruleset {
    /// No tables at all: what an nf_tables host with no rules prints.
    pub fn empty(family: Family) -> Ruleset {
        Ruleset {
            family,
            tables: Vec::new(),
        }
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.iter_mut().find(|t| t.name == name)
    }

    /// The filter table, or the kernel default when there is none.
    pub fn filter_or_default(&self) -> Table {
        self.table("filter")
            .cloned()
            .unwrap_or_else(Table::default_filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_masked_and_printed_like_iptables_save() {
        let c = |s: &str| parse_cidr(s).map(|c| cidr_to_string(&c));
        assert_eq!(c("198.51.100.7").as_deref(), Ok("198.51.100.7/32"));
        assert_eq!(c("10.1.2.3/8").as_deref(), Ok("10.0.0.0/8"));
        assert_eq!(c("10.1.2.3/255.255.0.0").as_deref(), Ok("10.1.0.0/16"));
        assert_eq!(c("2001:db8::1").as_deref(), Ok("2001:db8::1/128"));
        assert_eq!(c("2001:DB8:0:0::1/32").as_deref(), Ok("2001:db8::/32"));
        assert!(c("10.0.0.0/33").is_err());
        assert!(c("10.0.0.0/255.0.255.0").is_err());
        assert!(c("example.com").is_err());
        assert!(c("1.2.3.4,5.6.7.8").is_err());
        assert!(c("::1/129").is_err());
        assert!(c("1.2.3.4/").is_err());
    }

    #[test]
    fn saved_string_quoting() {
        assert!(!Arg::saved_string("ssh-in_1").quoted);
        assert!(Arg::saved_string("mail ports").quoted);
        assert!(Arg::saved_string("a/b").quoted);
        assert!(Arg::saved_string("").quoted);
    }
}
