//! Lockout prediction: run one packet through a ruleset's filter table the
//! way the kernel would, and say which rule decides its fate
//! (docs/design.md, "Lockout prediction").
//!
//! rampart holds the whole desired ruleset as a model before it touches a
//! host, so it can ask "would these rules drop the controller's next SSH
//! connection?" instead of finding out by applying them and rolling back.
//! [`evaluate`] answers with a [`Verdict`] and the place that decided it:
//! a rule (chain and 1-based number, as `iptables -L --line-numbers` counts)
//! or a built-in chain's policy.
//!
//! What is modelled, with the kernel's semantics (`ipt_do_table`,
//! `ip_packet_match` and the xt_* match functions):
//! - traversal: rule order, jumps to user chains, `-g` (goto: a later
//!   return skips the chain that went), `RETURN`, a user chain falling off
//!   its end (returns), a built-in chain's policy when the packet falls off
//!   (or returns from) it;
//! - `-s`/`-d` with masks and `!`, `-i`/`-o` with the `+` wildcard and `!`,
//!   `-p` by name or number and `!`, `-f`;
//! - `-m tcp`/`-m udp` (`--sport`, `--dport`, ranges, `!`, `--tcp-flags`,
//!   hence `--syn`), `-m multiport` (`--ports`, `--dports`, `--sports`,
//!   ranges, `!`), `-m state --state`, `-m conntrack --ctstate`, `-m icmp
//!   --icmp-type`, `-m icmp6 --icmpv6-type`, `-m comment`;
//! - targets `ACCEPT`, `DROP`, `REJECT`, `RETURN`, user chains, and the
//!   non-terminating ones (no target, `LOG`, `NFLOG`, `MARK`, ...: the
//!   packet goes on whatever they do).
//!
//! Everything else is "unknown": a rule with an unmodelled match (`-m
//! limit`, `-m recent`, other conntrack options...) or target (`NFQUEUE`,
//! `TARPIT`...). Such a rule is still skipped for certain when a modelled
//! part of it cannot match (a rule is a conjunction: one false part is
//! enough), and ignored when its target lets the packet go on anyway.
//! Otherwise the answer is [`Verdict::Unknown`] naming that rule: never a
//! guess.
//!
//! Where iptables-legacy and iptables-nft load the same rule with
//! different meanings (found by the kernel test, `tests/it/predict.rs`, on
//! iptables v1.8.9 nf_tables: see `backends_disagree` and
//! `merged_ports`), the answer is unknown unless both meanings agree.
//!
//! The packet's fields may be partly unknown, because the engine does not
//! know everything about the connection it is about to open: the source
//! port is a range ([`Ports`]), and the incoming interface may be
//! [`Iface::Unknown`] (a real interface that is not `lo`). A rule whose
//! outcome depends on what is not known is unknown, never guessed.
//!
//! Pure: no I/O. Bounded: jump loops (which the kernel refuses to load) and
//! nesting deeper than [`MAX_DEPTH`] give `Unknown`, never a hang.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::model::{Chain, Match, Rule, Ruleset, Table};
use super::services::{canonical_proto, PROTOCOLS};
use super::spec::{Cidr, Family, Policy};

/// How deep user chains may nest (jumps and gotos on the way) before the
/// evaluator gives up with `Unknown`. nf_tables itself refuses more than
/// 16 levels, so a loadable ruleset never comes near this.
pub const MAX_DEPTH: usize = 64;

/// How many rules one evaluation may visit. A loop-free ruleset can still
/// make a packet visit a chain many times (A jumps to B twice, B to C
/// twice...); this keeps a pathological one from taking forever.
const MAX_STEPS: usize = 200_000;

/// An inclusive range of ports: one exact port, or every port the packet
/// may have when it is not known exactly (the client's ephemeral source
/// port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ports {
    pub lo: u16,
    pub hi: u16,
}

impl Ports {
    /// Any port at all.
    pub const ANY: Ports = Ports { lo: 0, hi: 65535 };

    pub fn is_exact(&self) -> bool {
        self.lo == self.hi
    }
}

impl From<u16> for Ports {
    fn from(p: u16) -> Ports {
        Ports { lo: p, hi: p }
    }
}

impl From<RangeInclusive<u16>> for Ports {
    fn from(r: RangeInclusive<u16>) -> Ports {
        let (a, b) = r.into_inner();
        Ports {
            lo: a.min(b),
            hi: a.max(b),
        }
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_exact() {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}:{}", self.lo, self.hi)
        }
    }
}

/// The TCP flags byte (the low six bits `--tcp-flags` can test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const NONE: TcpFlags = TcpFlags(0);
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);

    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// The packet's connection tracking state, as `--state`/`--ctstate` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtState {
    New,
    Established,
    Related,
    Invalid,
    Untracked,
}

impl CtState {
    /// The name `iptables-save` prints.
    pub fn name(self) -> &'static str {
        match self {
            CtState::New => "NEW",
            CtState::Established => "ESTABLISHED",
            CtState::Related => "RELATED",
            CtState::Invalid => "INVALID",
            CtState::Untracked => "UNTRACKED",
        }
    }

    /// Only a packet with a conntrack entry can belong to a NATed connection.
    fn has_entry(self) -> bool {
        matches!(self, CtState::New | CtState::Established | CtState::Related)
    }
}

/// The interface a packet comes in on (`-i`) or goes out of (`-o`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Iface {
    /// No interface: `-o` for a packet in INPUT, `-i` for one in OUTPUT.
    /// The kernel compares an empty name: only `+` matches it.
    None,
    /// A real interface whose name is not known, known not to be `lo`:
    /// rampart knows a host's address, not the name of the NIC the
    /// controller's packets arrive on, but they come from another machine,
    /// so never on `lo`. `-i lo` is then certainly false and `-i +`
    /// certainly true; any other name makes the rule unknown.
    Unknown,
    Named(String),
}

/// One packet, family-independent.
///
/// Fields that do not apply to its protocol are ignored (ports for ICMP,
/// ICMP type for TCP). Build the common ones with [`Packet::tcp_syn`] and
/// [`Packet::tcp_established`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (IPv6: the upper-layer protocol, after extension headers).
    pub protocol: u8,
    pub in_iface: Iface,
    pub out_iface: Iface,
    /// TCP/UDP source port, or the range it lies in when not known exactly.
    pub sport: Ports,
    /// TCP/UDP destination port (or range).
    pub dport: Ports,
    pub tcp_flags: TcpFlags,
    pub state: CtState,
    /// ICMP or ICMPv6 (type, code).
    pub icmp: Option<(u8, u8)>,
    /// A second or later IPv4 fragment (what `-f` matches): such a packet
    /// has no transport header, so port, flag and ICMP matches never match it.
    pub fragment: bool,
}

impl Packet {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;

    /// The first packet of a new TCP connection: SYN only, conntrack NEW,
    /// arriving from another machine on an interface whose name is not
    /// known (see [`Iface::Unknown`]; change it with [`Packet::arriving_on`]).
    pub fn tcp_syn(src: IpAddr, sport: impl Into<Ports>, dst: IpAddr, dport: u16) -> Packet {
        Packet {
            src,
            dst,
            protocol: Packet::TCP,
            in_iface: Iface::Unknown,
            out_iface: Iface::None,
            sport: sport.into(),
            dport: dport.into(),
            tcp_flags: TcpFlags::SYN,
            state: CtState::New,
            icmp: None,
            fragment: false,
        }
    }

    /// A packet of an established TCP connection (ACK, conntrack
    /// ESTABLISHED), like the next packet of the controller's open session.
    pub fn tcp_established(
        src: IpAddr,
        sport: impl Into<Ports>,
        dst: IpAddr,
        dport: u16,
    ) -> Packet {
        Packet {
            tcp_flags: TcpFlags::ACK,
            state: CtState::Established,
            ..Packet::tcp_syn(src, sport, dst, dport)
        }
    }

    /// A UDP packet opening a new flow.
    pub fn udp(src: IpAddr, sport: impl Into<Ports>, dst: IpAddr, dport: u16) -> Packet {
        Packet {
            protocol: Packet::UDP,
            tcp_flags: TcpFlags::NONE,
            ..Packet::tcp_syn(src, sport, dst, dport)
        }
    }

    /// An ICMP (IPv4) or ICMPv6 (IPv6) message, new to conntrack.
    pub fn icmp(src: IpAddr, dst: IpAddr, icmp_type: u8, code: u8) -> Packet {
        Packet {
            protocol: if src.is_ipv4() {
                Packet::ICMP
            } else {
                Packet::ICMPV6
            },
            sport: Ports::ANY,
            dport: Ports::ANY,
            tcp_flags: TcpFlags::NONE,
            icmp: Some((icmp_type, code)),
            ..Packet::tcp_syn(src, 0, dst, 0)
        }
    }

    /// The same packet arriving on `iface` (`Iface::Named("lo".into())` for loopback).
    pub fn arriving_on(mut self, iface: Iface) -> Packet {
        self.in_iface = iface;
        self
    }

    /// The same packet with another conntrack state.
    pub fn with_state(mut self, state: CtState) -> Packet {
        self.state = state;
        self
    }

    /// The same packet with other TCP flags.
    pub fn with_flags(mut self, flags: TcpFlags) -> Packet {
        self.tcp_flags = flags;
        self
    }

    fn family(&self) -> Option<Family> {
        match (self.src, self.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => Some(Family::V4),
            (IpAddr::V6(_), IpAddr::V6(_)) => Some(Family::V6),
            _ => None,
        }
    }
}

/// What the filter table does with the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    /// REJECT, whatever `--reject-with` says: the sender gets an error at once.
    Reject,
    /// A rule the evaluator cannot decide stands in the way (see the module docs).
    Unknown,
}

impl Verdict {
    /// Drop or reject: the packet does not get through.
    pub fn blocks(self) -> bool {
        matches!(self, Verdict::Drop | Verdict::Reject)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
            Verdict::Unknown => "unknown",
        })
    }
}

/// A rule's position: its chain and its 1-based number in that chain, as
/// `iptables -L --line-numbers` counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleRef {
    pub chain: String,
    pub number: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule {}", self.chain, self.number)
    }
}

/// Where the verdict was decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decider {
    /// A rule: its position and its text as iptables-save prints it.
    Rule { rule: RuleRef, line: String },
    /// A built-in chain's policy (the packet fell off its end or returned from it).
    Policy { chain: String, policy: Policy },
    /// No rule to name: the chain does not exist, or the packet's family is
    /// not the ruleset's (only with `Verdict::Unknown`).
    Chain { chain: String },
}

impl fmt::Display for Decider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decider::Rule { rule, line } => write!(f, "at {rule} ({line})"),
            Decider::Policy { chain, policy } => {
                write!(f, "at {chain} policy {}", policy.as_str())
            }
            Decider::Chain { chain } => write!(f, "at {chain}"),
        }
    }
}

/// One rule the packet matched on its way (counted by the kernel's packet
/// counter of that rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hit {
    pub rule: RuleRef,
    /// False for a rule with a non-terminating target whose match could not
    /// be decided: the packet went on either way, but whether this rule's
    /// counter counted it is not known.
    pub certain: bool,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    /// The deciding rule or policy; for `Unknown`, the rule that could not be evaluated.
    pub at: Decider,
    /// The jumps and gotos that led to the deciding chain, outermost first
    /// (empty when it was decided in the starting chain).
    pub via: Vec<RuleRef>,
    /// Why the verdict is `Unknown` (None otherwise).
    pub reason: Option<String>,
    /// Every rule the packet matched, in the order it met them.
    pub hits: Vec<Hit>,
}

impl Evaluation {
    pub fn is_unknown(&self) -> bool {
        self.verdict == Verdict::Unknown
    }
}

impl fmt::Display for Evaluation {
    /// `drop at INPUT policy DROP`, `accept at INPUT rule 9 (-A INPUT ...)`,
    /// `unknown at INPUT rule 3 (-A INPUT ...): match limit is not modelled`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verdict, self.at)?;
        if !self.via.is_empty() {
            let via: Vec<String> = self.via.iter().map(|r| r.to_string()).collect();
            write!(f, " via {}", via.join(", "))?;
        }
        if let Some(r) = &self.reason {
            write!(f, ": {r}")?;
        }
        Ok(())
    }
}

/// Three-valued truth of one part of a rule for this packet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    /// Cannot tell; the text says why.
    Maybe(String),
}

impl Tri {
    fn of(b: bool) -> Tri {
        if b {
            Tri::Yes
        } else {
            Tri::No
        }
    }

    fn maybe(why: impl Into<String>) -> Tri {
        Tri::Maybe(why.into())
    }

    /// Apply a `!`.
    fn negate_if(self, negated: bool) -> Tri {
        match (self, negated) {
            (Tri::Yes, true) => Tri::No,
            (Tri::No, true) => Tri::Yes,
            (t, _) => t,
        }
    }
}

/// A conjunction: one `No` decides; otherwise the first `Maybe` does.
#[derive(Default)]
struct All {
    no: bool,
    maybe: Option<String>,
}

impl All {
    fn add(&mut self, t: Tri) {
        match t {
            Tri::Yes => {}
            Tri::No => self.no = true,
            Tri::Maybe(why) => {
                if self.maybe.is_none() {
                    self.maybe = Some(why);
                }
            }
        }
    }

    fn result(self) -> Tri {
        match (self.no, self.maybe) {
            (true, _) => Tri::No,
            (false, Some(why)) => Tri::Maybe(why),
            (false, None) => Tri::Yes,
        }
    }
}

/// Targets that let the packet go on to the next rule whatever they do to
/// it (log it, mark it, add it to a set). A rule with one of these never
/// decides a verdict, so an unknown match in it does not matter.
const NON_TERMINATING: &[&str] = &[
    "LOG",
    "NFLOG",
    "ULOG",
    "MARK",
    "CONNMARK",
    "CLASSIFY",
    "TCPMSS",
    "SET",
    "AUDIT",
    "TEE",
    "IDLETIMER",
    "LED",
    "RATEEST",
    "SECMARK",
    "CONNSECMARK",
];

/// What a rule's target does when the rule matches.
enum Action<'a> {
    Continue,
    Accept,
    Drop,
    Reject,
    Return,
    Jump(&'a Chain),
    Goto(&'a Chain),
    Unknown(String),
}

fn action<'a>(rule: &Rule, table: &'a Table) -> Action<'a> {
    let Some(t) = rule.target() else {
        return Action::Continue;
    };
    let user_chain = table.chain(&t.name).filter(|c| !c.is_builtin());
    if t.goto {
        return match user_chain {
            Some(c) => Action::Goto(c),
            None => Action::Unknown(format!("-g {}: no such user chain", t.name)),
        };
    }
    match t.name.as_str() {
        "ACCEPT" => Action::Accept,
        "DROP" => Action::Drop,
        "REJECT" => Action::Reject,
        "RETURN" => Action::Return,
        name => match user_chain {
            Some(c) => Action::Jump(c),
            None if NON_TERMINATING.contains(&name) => Action::Continue,
            None if table.chain(name).is_some() => {
                Action::Unknown(format!("-j {name}: a jump to a built-in chain"))
            }
            None => Action::Unknown(format!("target {name} is not modelled")),
        },
    }
}

/// One user chain being traversed.
struct Frame<'a> {
    chain: &'a Chain,
    /// Index of the next rule to evaluate.
    next: usize,
    /// Entered by `-g`: returning from it also leaves the chain that went.
    by_goto: bool,
    /// The rule that jumped or went here (None for the starting chain).
    entered_by: Option<RuleRef>,
}

/// Run `packet` through `chain` (normally `INPUT`) of `ruleset`'s filter
/// table, as the kernel would, and say what happens to it and where.
///
/// A ruleset without a filter table is the kernel's default (every
/// built-in chain empty with policy ACCEPT). A packet whose family is not
/// the ruleset's, or a chain that does not exist, gives `Unknown`.
pub fn evaluate(ruleset: &Ruleset, chain: &str, packet: &Packet) -> Evaluation {
    let default;
    let table = match ruleset.table("filter") {
        Some(t) => t,
        None => {
            default = Table::default_filter();
            &default
        }
    };
    let mut hits = Vec::new();
    let unknown_chain = |why: String, hits: Vec<Hit>| Evaluation {
        verdict: Verdict::Unknown,
        at: Decider::Chain {
            chain: chain.to_string(),
        },
        via: Vec::new(),
        reason: Some(why),
        hits,
    };
    match packet.family() {
        Some(f) if f == ruleset.family => {}
        Some(_) => {
            return unknown_chain(
                format!(
                    "the packet is not {} (evaluate it against the {} ruleset)",
                    fam(ruleset.family),
                    if ruleset.family == Family::V4 {
                        "IPv6"
                    } else {
                        "IPv4"
                    }
                ),
                hits,
            )
        }
        None => {
            return unknown_chain(
                "the packet's source and destination are of different families".into(),
                hits,
            )
        }
    }
    let Some(start) = table.chain(chain) else {
        return unknown_chain(format!("no chain {chain} in the filter table"), hits);
    };
    let family = ruleset.family;
    let mut stack: Vec<Frame> = vec![Frame {
        chain: start,
        next: 0,
        by_goto: false,
        entered_by: None,
    }];
    let mut steps = 0usize;
    let via = |stack: &[Frame]| -> Vec<RuleRef> {
        stack.iter().filter_map(|f| f.entered_by.clone()).collect()
    };
    loop {
        let Some(top) = stack.last_mut() else {
            // Returned from the starting chain: its policy decides.
            return policy_of(start, hits);
        };
        let Some(rule) = top.chain.rules.get(top.next) else {
            // Fell off the end: a built-in chain's policy decides; a user
            // chain returns.
            if stack.len() == 1 && start.is_builtin() {
                return policy_of(start, hits);
            }
            leave(&mut stack);
            continue;
        };
        top.next += 1;
        let here = RuleRef {
            chain: top.chain.name.clone(),
            number: top.next,
        };
        steps += 1;
        let decided =
            |verdict: Verdict, reason: Option<String>, stack: &[Frame], hits| Evaluation {
                verdict,
                at: Decider::Rule {
                    rule: here.clone(),
                    line: rule.to_line(),
                },
                via: via(stack),
                reason,
                hits,
            };
        if steps > MAX_STEPS {
            let why = format!("more than {MAX_STEPS} rules visited");
            return decided(Verdict::Unknown, Some(why), &stack, hits);
        }
        let act = action(rule, table);
        match rule_matches(rule, packet, family) {
            Tri::No => continue,
            Tri::Maybe(why) => {
                if let Action::Continue = act {
                    hits.push(Hit {
                        rule: here,
                        certain: false,
                    });
                    continue;
                }
                return decided(Verdict::Unknown, Some(why), &stack, hits);
            }
            Tri::Yes => {}
        }
        hits.push(Hit {
            rule: here.clone(),
            certain: true,
        });
        let (target, by_goto) = match act {
            Action::Continue => continue,
            Action::Accept => return decided(Verdict::Accept, None, &stack, hits),
            Action::Drop => return decided(Verdict::Drop, None, &stack, hits),
            Action::Reject => return decided(Verdict::Reject, None, &stack, hits),
            Action::Unknown(why) => return decided(Verdict::Unknown, Some(why), &stack, hits),
            Action::Return => {
                leave(&mut stack);
                continue;
            }
            Action::Jump(c) => (c, false),
            Action::Goto(c) => (c, true),
        };
        if stack.iter().any(|f| f.chain.name == target.name) {
            let why = format!(
                "{} is already being traversed: a loop, which the kernel refuses to load",
                target.name
            );
            return decided(Verdict::Unknown, Some(why), &stack, hits);
        }
        if stack.len() >= MAX_DEPTH {
            let why = format!("user chains nested deeper than {MAX_DEPTH}");
            return decided(Verdict::Unknown, Some(why), &stack, hits);
        }
        stack.push(Frame {
            chain: target,
            next: 0,
            by_goto,
            entered_by: Some(here),
        });
    }
}

/// Return from the current chain: to the rule after the jump that entered
/// it, skipping every chain that left by `-g` on the way.
fn leave(stack: &mut Vec<Frame>) {
    while let Some(f) = stack.pop() {
        if !f.by_goto {
            break;
        }
    }
}

fn policy_of(chain: &Chain, hits: Vec<Hit>) -> Evaluation {
    match chain.policy {
        Some(policy) => Evaluation {
            verdict: match policy {
                Policy::Accept => Verdict::Accept,
                Policy::Drop => Verdict::Drop,
            },
            at: Decider::Policy {
                chain: chain.name.clone(),
                policy,
            },
            via: Vec::new(),
            reason: None,
            hits,
        },
        None => Evaluation {
            verdict: Verdict::Unknown,
            at: Decider::Chain {
                chain: chain.name.clone(),
            },
            via: Vec::new(),
            reason: Some(format!(
                "the packet leaves user chain {} (its caller decides)",
                chain.name
            )),
            hits,
        },
    }
}

fn fam(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// Does `rule` match `p`? Every part is evaluated (a later certain `No`
/// beats an earlier `Maybe`).
fn rule_matches(rule: &Rule, p: &Packet, family: Family) -> Tri {
    let mut all = All::default();
    if let Some(s) = rule.source() {
        all.add(in_cidr(&s.value, p.src).negate_if(s.negated));
    }
    if let Some(d) = rule.destination() {
        all.add(in_cidr(&d.value, p.dst).negate_if(d.negated));
    }
    if let Some(i) = rule.in_interface() {
        all.add(iface(&i.value, &p.in_iface, "-i").negate_if(i.negated));
    }
    if let Some(o) = rule.out_interface() {
        all.add(iface(&o.value, &p.out_iface, "-o").negate_if(o.negated));
    }
    if let Some(pr) = rule.protocol() {
        all.add(protocol(&pr.value, pr.negated, p.protocol));
    }
    if let Some(negated) = rule.fragment() {
        all.add(match family {
            Family::V4 => Tri::of(p.fragment).negate_if(negated),
            Family::V6 => Tri::maybe("-f in an IPv6 ruleset"),
        });
    }
    for m in rule.matches() {
        all.add(module(m, p));
    }
    all.result()
}

fn in_cidr(c: &Cidr, a: IpAddr) -> Tri {
    match (c, a) {
        (Cidr::V4(net, len), IpAddr::V4(x)) => {
            let mask = match len {
                0 => 0,
                l => u32::MAX << (32 - u32::from((*l).min(32))),
            };
            Tri::of(u32::from(x) & mask == u32::from(*net) & mask)
        }
        (Cidr::V6(net, len), IpAddr::V6(x)) => {
            let mask = match len {
                0 => 0,
                l => u128::MAX << (128 - u32::from((*l).min(128))),
            };
            Tri::of(u128::from(x) & mask == u128::from(*net) & mask)
        }
        _ => Tri::maybe("an address of the other family"),
    }
}

/// `-i`/`-o NAME`: exact, or a prefix when NAME ends in `+` (`+` alone
/// matches everything, even no interface: the kernel compares no byte).
fn iface(pattern: &str, have: &Iface, opt: &str) -> Tri {
    let (prefix, wildcard) = match pattern.strip_suffix('+') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let fits = |name: &str| {
        if wildcard {
            name.starts_with(prefix)
        } else {
            name == prefix
        }
    };
    match have {
        Iface::None => Tri::of(fits("")),
        Iface::Named(n) => Tri::of(fits(n)),
        Iface::Unknown if wildcard && prefix.is_empty() => Tri::Yes,
        Iface::Unknown if pattern == "lo" => Tri::No,
        Iface::Unknown => Tri::maybe(format!(
            "{opt} {pattern}: the packet's interface name is not known"
        )),
    }
}

/// `-p VALUE`: a name from the protocol table or a number (iptables-save
/// prints numbers for protocols its table lacks, and rampart keeps what a
/// host printed).
fn protocol(value: &str, negated: bool, have: u8) -> Tri {
    if value == "all" {
        // iptables refuses `! -p all`; a plain one is dropped when parsed.
        return if negated {
            Tri::maybe("! -p all")
        } else {
            Tri::Yes
        };
    }
    let number = match value.parse::<u8>() {
        Ok(n) => Some(n),
        Err(_) => canonical_proto(value)
            .and_then(|c| PROTOCOLS.iter().find(|(n, _)| *n == c).map(|&(_, p)| p)),
    };
    match number {
        Some(n) => Tri::of(n == have).negate_if(negated),
        None => Tri::maybe(format!("protocol {value} is not known")),
    }
}

fn proto_name(n: u8) -> String {
    canonical_proto(&n.to_string()).unwrap_or_else(|| n.to_string())
}

fn module(m: &Match, p: &Packet) -> Tri {
    // Every option of the module is a test the packet must pass; `test`
    // gives its truth before its `!`, None when the option is not modelled.
    let per_option = |test: &dyn Fn(&str, &str, &str) -> Option<Tri>| {
        let mut all = All::default();
        let merged = merged_ports(m);
        for o in &m.opts {
            let arg = |i: usize| o.args.get(i).map(|a| a.text.as_str()).unwrap_or("");
            if let Some(why) = backends_disagree(&m.name, &o.name, o.negated, arg(0), arg(1)) {
                all.add(Tri::Maybe(why));
                continue;
            }
            if let Some((s, d)) = merged.filter(|_| o.name == "--sport") {
                all.add(merged_truth(s, d, p));
                continue;
            }
            if merged.is_some() && o.name == "--dport" {
                continue; // decided with --sport
            }
            all.add(match test(&o.name, arg(0), arg(1)) {
                Some(t) => t.negate_if(o.negated),
                None => Tri::maybe(format!("-m {} {} is not modelled", m.name, o.name)),
            });
        }
        all.result()
    };
    let ports = |name: &str, arg: &str| match name {
        "--sport" => Some(port_range(arg, p.sport, "source")),
        "--dport" => Some(port_range(arg, p.dport, "destination")),
        _ => None,
    };
    match m.name.as_str() {
        "comment" => per_option(&|name, _, _| (name == "--comment").then_some(Tri::Yes)),
        "state" => per_option(&|name, arg, _| (name == "--state").then(|| ct_state(arg, p.state))),
        "conntrack" => {
            per_option(&|name, arg, _| (name == "--ctstate").then(|| ct_state(arg, p.state)))
        }
        "tcp" => needs_proto(m, p, Packet::TCP, || {
            per_option(&|name, arg, cmp| match name {
                "--tcp-flags" => Some(tcp_flags(arg, cmp, p.tcp_flags)),
                _ => ports(name, arg),
            })
        }),
        "udp" => needs_proto(m, p, Packet::UDP, || {
            per_option(&|name, arg, _| ports(name, arg))
        }),
        "multiport" => {
            if p.protocol != Packet::TCP && p.protocol != Packet::UDP {
                // sctp, dccp and udplite have ports too, but the packet
                // model carries ports for TCP and UDP only.
                return Tri::maybe(format!(
                    "-m multiport on protocol {}",
                    proto_name(p.protocol)
                ));
            }
            if p.fragment {
                return Tri::No;
            }
            per_option(&|name, arg, _| match name {
                "--sports" => Some(port_list(arg, p.sport, "source")),
                "--dports" => Some(port_list(arg, p.dport, "destination")),
                "--ports" => Some(or(
                    port_list(arg, p.sport, "source"),
                    port_list(arg, p.dport, "destination"),
                )),
                _ => None,
            })
        }
        "icmp" => needs_proto(m, p, Packet::ICMP, || {
            per_option(&|name, arg, _| (name == "--icmp-type").then(|| icmp_type(arg, p.icmp)))
        }),
        "icmp6" => needs_proto(m, p, Packet::ICMPV6, || {
            per_option(&|name, arg, _| (name == "--icmpv6-type").then(|| icmp_type(arg, p.icmp)))
        }),
        other => Tri::maybe(format!("match {other} is not modelled")),
    }
}

/// `! --sport S ! --dport D` with single ports: iptables-nft 1.8 loads
/// the two tests as ONE comparison of the 4 bytes holding both ports,
/// negated, so the kernel matches when EITHER port differs, where
/// iptables-legacy (and the rule's meaning) needs both to differ. Seen on
/// iptables v1.8.9 (nf_tables), the version of Debian 12.
fn merged_ports(m: &Match) -> Option<(&str, &str)> {
    if m.name != "tcp" && m.name != "udp" {
        return None;
    }
    let single = |name: &str| {
        m.opt(name)
            .filter(|o| o.negated)
            .and_then(|o| o.args.first())
            .map(|a| a.text.as_str())
            .filter(|t| t.parse::<u16>().is_ok())
    };
    Some((single("--sport")?, single("--dport")?))
}

/// The truth of a merged `! --sport S ! --dport D`: certain only where both
/// backends agree.
fn merged_truth(s: &str, d: &str, p: &Packet) -> Tri {
    let sport_differs = port_range(s, p.sport, "source").negate_if(true);
    let dport_differs = port_range(d, p.dport, "destination").negate_if(true);
    let mut legacy = All::default();
    legacy.add(sport_differs.clone());
    legacy.add(dport_differs.clone());
    let legacy = legacy.result();
    let nft = or(sport_differs, dport_differs);
    if legacy == nft {
        return legacy;
    }
    Tri::maybe(format!(
        "! --sport {s} ! --dport {d}: iptables-legacy matches when both ports differ, iptables-nft 1.8 when either does"
    ))
}

/// Options whose kernel behaviour depends on the iptables backend:
/// iptables-nft (1.8.x) drops a test that can never be true instead of
/// loading it, so the rule matches every packet where iptables-legacy's
/// matches none: `! --dport 0:65535` (any full port range, negated) and
/// `--tcp-flags NONE X` unless it is the always-true `NONE NONE`.
fn backends_disagree(module: &str, opt: &str, negated: bool, a: &str, b: &str) -> Option<String> {
    let bang = if negated { "! " } else { "" };
    let why = || {
        Some(format!(
            "-m {module} {bang}{opt} {a}{}{b}: iptables-legacy never matches it, iptables-nft drops it and matches everything",
            if b.is_empty() { "" } else { " " }
        ))
    };
    match (module, opt) {
        ("tcp" | "udp", "--sport" | "--dport") if negated && parse_range(a) == Some((0, 65535)) => {
            why()
        }
        ("tcp", "--tcp-flags")
            if flag_bits(a) == Some(0) && (negated || flag_bits(b) != Some(0)) =>
        {
            why()
        }
        _ => None,
    }
}

/// The protocol-specific matches: the kernel only loads them with the
/// matching `-p` (so for another protocol the rule's `-p` already said
/// no), and they never match a non-first fragment, which has no header.
fn needs_proto(m: &Match, p: &Packet, proto: u8, test: impl FnOnce() -> Tri) -> Tri {
    if p.protocol != proto {
        return Tri::maybe(format!(
            "-m {} on a {} packet (the kernel needs -p {})",
            m.name,
            proto_name(p.protocol),
            proto_name(proto)
        ));
    }
    if p.fragment {
        return Tri::No;
    }
    test()
}

fn or(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::Yes, _) | (_, Tri::Yes) => Tri::Yes,
        (Tri::No, Tri::No) => Tri::No,
        (Tri::Maybe(why), _) | (_, Tri::Maybe(why)) => Tri::Maybe(why),
    }
}

/// `P` or `P:Q` (canonical: numbers only).
fn parse_range(text: &str) -> Option<(u16, u16)> {
    match text.split_once(':') {
        None => text.parse().ok().map(|p| (p, p)),
        Some((a, b)) => {
            let a: u16 = if a.is_empty() { 0 } else { a.parse().ok()? };
            let b: u16 = if b.is_empty() { 65535 } else { b.parse().ok()? };
            (a <= b).then_some((a, b))
        }
    }
}

/// Is the packet's port (or every port it may have) in the union of
/// `ranges`? Unknown when some of its possible ports are and some are not.
fn ports_in(ranges: &[(u16, u16)], have: Ports, which: &str) -> Tri {
    if ranges.iter().all(|&(a, b)| b < have.lo || a > have.hi) {
        return Tri::No;
    }
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    // Sweep: the lowest port of `have` not yet covered.
    let mut need = u32::from(have.lo);
    for (a, b) in sorted {
        if u32::from(a) <= need && u32::from(b) >= need {
            need = u32::from(b) + 1;
        }
    }
    if need > u32::from(have.hi) {
        return Tri::Yes;
    }
    Tri::maybe(format!(
        "the packet's {which} port is only known to be in {have}"
    ))
}

fn port_range(arg: &str, have: Ports, which: &str) -> Tri {
    match parse_range(arg) {
        Some(r) => ports_in(&[r], have, which),
        None => Tri::maybe(format!("bad port range {arg:?}")),
    }
}

fn port_list(arg: &str, have: Ports, which: &str) -> Tri {
    let ranges: Option<Vec<(u16, u16)>> = arg.split(',').map(parse_range).collect();
    match ranges {
        Some(r) if !r.is_empty() => ports_in(&r, have, which),
        _ => Tri::maybe(format!("bad port list {arg:?}")),
    }
}

/// `--tcp-flags MASK COMP`: the flags under MASK are exactly COMP.
fn tcp_flags(mask: &str, cmp: &str, have: TcpFlags) -> Tri {
    match (flag_bits(mask), flag_bits(cmp)) {
        (Some(mask), Some(cmp)) => Tri::of(have.0 & mask == cmp),
        _ => Tri::maybe(format!("bad TCP flags {mask} {cmp}")),
    }
}

fn flag_bits(list: &str) -> Option<u8> {
    let mut bits = 0;
    for f in list.split(',') {
        bits |= match f {
            "NONE" => 0,
            "ALL" => 0x3f,
            "FIN" => TcpFlags::FIN.0,
            "SYN" => TcpFlags::SYN.0,
            "RST" => TcpFlags::RST.0,
            "PSH" => TcpFlags::PSH.0,
            "ACK" => TcpFlags::ACK.0,
            "URG" => TcpFlags::URG.0,
            _ => return None,
        };
    }
    Some(bits)
}

/// `--state`/`--ctstate LIST`: the packet's state is in the list. SNAT and
/// DNAT (conntrack only) are whether its connection is NATed, which the
/// packet does not say: they decide only when its state alone does not.
fn ct_state(list: &str, have: CtState) -> Tri {
    let mut nat = false;
    for s in list.split(',') {
        match s {
            "SNAT" | "DNAT" => nat = true,
            "INVALID" | "NEW" | "RELATED" | "ESTABLISHED" | "UNTRACKED" => {
                if s == have.name() {
                    return Tri::Yes;
                }
            }
            _ => return Tri::maybe(format!("unknown connection state {s}")),
        }
    }
    if nat && have.has_entry() {
        return Tri::maybe("whether the connection is NATed (SNAT/DNAT) is not known");
    }
    Tri::No
}

/// `--icmp-type any | T | T/C` (canonical: numbers): `T` alone is any code.
fn icmp_type(arg: &str, have: Option<(u8, u8)>) -> Tri {
    if arg == "any" {
        return Tri::Yes;
    }
    let want = match arg.split_once('/') {
        None => arg.parse::<u8>().ok().map(|t| (t, None)),
        Some((t, c)) => t.parse::<u8>().ok().zip(c.parse::<u8>().ok().map(Some)),
    };
    let Some((t, c)) = want else {
        return Tri::maybe(format!("ICMP type {arg} is not known"));
    };
    let Some((ht, hc)) = have else {
        return Tri::maybe("the packet's ICMP type is not given");
    };
    Tri::of(ht == t && c.is_none_or(|c| c == hc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::{desired, parse_save};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SEED_V4: &str = include_str!("../../tests/golden/seed-baseline-v4.rules");
    const SEED_V6: &str = include_str!("../../tests/golden/seed-baseline-v6.rules");
    const HANDMADE_V4: &str = include_str!("../../tests/golden/handmade.v4.save");
    const HANDMADE_V6: &str = include_str!("../../tests/golden/handmade.v6.save");
    const DOCKER_V4: &str = include_str!("../../tests/golden/docker-host.v4.save");
    const F2B_V4: &str = include_str!("../../tests/golden/fail2ban-host.v4.save");
    const LOCKOUT: &str = include_str!("../../playbooks/lockout.yml");

    const CONTROLLER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
    const HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

    fn ip(a: Ipv4Addr) -> IpAddr {
        IpAddr::V4(a)
    }

    /// NEW SSH from the controller, interface name unknown: what the engine asks.
    fn syn22() -> Packet {
        Packet::tcp_syn(ip(CONTROLLER), 40000, ip(HOST), 22)
    }

    fn syn(dport: u16) -> Packet {
        Packet::tcp_syn(ip(CONTROLLER), 40000, ip(HOST), dport)
    }

    fn est22() -> Packet {
        Packet::tcp_established(ip(CONTROLLER), 40000, ip(HOST), 22)
    }

    fn on(p: Packet, name: &str) -> Packet {
        p.arriving_on(Iface::Named(name.into()))
    }

    /// An IPv4 filter table: INPUT with `policy`, the rules, every user
    /// chain they append to declared.
    fn table(policy: &str, rules: &[&str]) -> Ruleset {
        let mut text = format!(
            "*filter\n:INPUT {policy} [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        );
        let mut users: Vec<&str> = Vec::new();
        for r in rules {
            let chain = r.split_whitespace().nth(1).expect("-A CHAIN");
            if !["INPUT", "FORWARD", "OUTPUT"].contains(&chain) && !users.contains(&chain) {
                users.push(chain);
            }
        }
        for u in users {
            text.push_str(&format!(":{u} - [0:0]\n"));
        }
        for r in rules {
            text.push_str(r);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        parse_save(&text, Family::V4).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// `verdict` + where, as Display prints it (reason left out).
    fn short(e: &Evaluation) -> String {
        format!("{} {}", e.verdict, e.at)
    }

    fn check(name: &str, rs: &Ruleset, p: &Packet, want: &str) {
        let e = evaluate(rs, "INPUT", p);
        assert_eq!(short(&e), want, "{name}: {e}");
    }

    #[test]
    fn the_seed_baseline() {
        let rs = parse_save(SEED_V4, Family::V4).expect("seed parses");
        let ssh = "accept at INPUT rule 9 (-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT)";
        check("NEW ssh, interface unknown", &rs, &syn22(), ssh);
        check("NEW ssh on eth0", &rs, &on(syn22(), "eth0"), ssh);
        let any_port = Packet::tcp_syn(ip(CONTROLLER), Ports::ANY, ip(HOST), 22);
        check("any source port", &rs, &any_port, ssh);
        check(
            "established",
            &rs,
            &est22(),
            "accept at INPUT rule 1 (-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT)",
        );
        check("NEW smtp", &rs, &syn(25), "drop at INPUT policy DROP");
        check(
            "NEW http",
            &rs,
            &syn(80),
            "accept at INPUT rule 7 (-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT)",
        );
        check(
            "null scan",
            &rs,
            &syn22().with_flags(TcpFlags::NONE),
            "drop at INPUT rule 2 (-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP)",
        );
        check(
            "NEW without SYN",
            &rs,
            &syn22().with_flags(TcpFlags::ACK),
            "drop at INPUT rule 3 (-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW -j DROP)",
        );
        check(
            "xmas (conntrack calls it INVALID)",
            &rs,
            &syn22()
                .with_flags(TcpFlags(0x3f))
                .with_state(CtState::Invalid),
            "drop at INPUT rule 4 (-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,SYN,RST,PSH,ACK,URG -j DROP)",
        );
        check(
            "loopback",
            &rs,
            &on(syn(25), "lo"),
            "accept at INPUT rule 5 (-A INPUT -i lo -j ACCEPT)",
        );
        check(
            "ping",
            &rs,
            &Packet::icmp(ip(CONTROLLER), ip(HOST), 8, 0),
            "accept at INPUT rule 6 (-A INPUT -p icmp -j ACCEPT)",
        );
        check(
            "udp dns",
            &rs,
            &Packet::udp(ip(CONTROLLER), 5353, ip(HOST), 53),
            "drop at INPUT policy DROP",
        );
        // The rules the SYN matched on its way: only the deciding one.
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(
            e.hits,
            vec![Hit {
                rule: RuleRef {
                    chain: "INPUT".into(),
                    number: 9
                },
                certain: true
            }]
        );
        assert!(e.via.is_empty() && e.reason.is_none());
    }

    #[test]
    fn the_seed_baseline_v6() {
        let rs = parse_save(SEED_V6, Family::V6).expect("seed v6 parses");
        let c: IpAddr = "2001:db8::7".parse().expect("addr");
        let h: IpAddr = "2001:db8:1::10".parse().expect("addr");
        let e = evaluate(&rs, "INPUT", &Packet::tcp_syn(c, 40000, h, 22));
        assert_eq!(e.verdict, Verdict::Accept, "{e}");
        assert!(e.to_string().contains("--dport 22"), "{e}");
        let e = evaluate(&rs, "INPUT", &Packet::icmp(c, h, 135, 0));
        assert_eq!(e.verdict, Verdict::Accept, "neighbour solicitation: {e}");
        let e = evaluate(&rs, "INPUT", &Packet::tcp_syn(c, 40000, h, 25));
        assert_eq!(short(&e), "drop at INPUT policy DROP");
        // An IPv4 packet against the IPv6 rules: not a guess.
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(e.verdict, Verdict::Unknown);
        assert_eq!(e.at.to_string(), "at INPUT");
    }

    #[test]
    fn the_lockout_playbook_drops_new_ssh_at_the_policy() {
        let pb = crate::playbook::Playbook::from_text(std::path::Path::new("lockout.yml"), LOCKOUT)
            .expect("lockout.yml parses");
        let spec = crate::playbook::merge(pb.plays.iter().map(|p| &p.firewall));
        let rs = desired(&spec, Family::V4);
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(e.verdict, Verdict::Drop);
        assert_eq!(e.to_string(), "drop at INPUT policy DROP");
        let e = evaluate(&rs, "INPUT", &est22());
        assert_eq!(e.verdict, Verdict::Accept);
        assert_eq!(
            e.at,
            Decider::Rule {
                rule: RuleRef {
                    chain: "INPUT".into(),
                    number: 1
                },
                line: "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT".into()
            }
        );
        let rs6 = desired(&spec, Family::V6);
        let c: IpAddr = "2001:db8::7".parse().expect("addr");
        let h: IpAddr = "2001:db8:1::10".parse().expect("addr");
        let e = evaluate(&rs6, "INPUT", &Packet::tcp_syn(c, 40000, h, 22));
        assert_eq!(e.to_string(), "drop at INPUT policy DROP");
    }

    #[test]
    fn addresses_interfaces_protocols_and_negations() {
        let a = "accept at INPUT rule 1";
        let cases: &[(&str, &str, Packet, &str)] = &[
            (
                "-A INPUT -s 203.0.113.7/32 -j ACCEPT",
                "exact source",
                syn22(),
                a,
            ),
            (
                "-A INPUT -s 203.0.113.0/24 -j ACCEPT",
                "source net",
                syn22(),
                a,
            ),
            ("-A INPUT -s 0.0.0.0/0 -j ACCEPT", "/0", syn22(), a),
            (
                "-A INPUT -s 203.0.112.0/24 -j ACCEPT",
                "other net",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT ! -s 203.0.112.0/23 -j ACCEPT",
                "! other net",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            ("-A INPUT ! -s 10.0.0.0/8 -j ACCEPT", "! source", syn22(), a),
            (
                "-A INPUT -d 198.51.100.10/32 -j ACCEPT",
                "destination",
                syn22(),
                a,
            ),
            (
                "-A INPUT ! -d 198.51.100.0/24 -j ACCEPT",
                "! destination",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            ("-A INPUT -p 6 -j ACCEPT", "-p by number", syn22(), a),
            ("-A INPUT -p TCP -j ACCEPT", "-p by name", syn22(), a),
            ("-A INPUT ! -p udp -j ACCEPT", "! -p", syn22(), a),
            (
                "-A INPUT ! -p tcp -j ACCEPT",
                "! -p tcp",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            ("-A INPUT -p all -j ACCEPT", "-p all", syn22(), a),
            (
                "-A INPUT -p tcp ! --dport 22 -j ACCEPT",
                "! --dport",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -p tcp --dport 20:30 -j ACCEPT",
                "dport range",
                syn22(),
                a,
            ),
            (
                "-A INPUT -p tcp ! --dport 23:65535 -j ACCEPT",
                "! dport range",
                syn22(),
                a,
            ),
            (
                "-A INPUT -p tcp --sport 1024: -j ACCEPT",
                "sport range",
                syn22(),
                a,
            ),
            ("-A INPUT -p tcp --syn -j ACCEPT", "--syn", syn22(), a),
            (
                "-A INPUT -p tcp ! --syn -j ACCEPT",
                "! --syn",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -p tcp --tcp-flags SYN,ACK SYN -j ACCEPT",
                "flags",
                syn22(),
                a,
            ),
            (
                "-A INPUT -p tcp --tcp-flags ALL NONE -j ACCEPT",
                "flags none",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -p tcp -m multiport --dports 80,22 -j ACCEPT",
                "multiport",
                syn22(),
                a,
            ),
            (
                "-A INPUT -p tcp -m multiport --dports 80,20:30 -j ACCEPT",
                "multiport range",
                syn22(),
                a,
            ),
            (
                "-A INPUT -p tcp -m multiport ! --dports 80,443 -j ACCEPT",
                "! multiport",
                syn22(),
                a,
            ),
            (
                "-A INPUT -p tcp -m multiport ! --dports 80,22 -j ACCEPT",
                "! multiport hit",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -p tcp -m multiport --ports 40000,1 -j ACCEPT",
                "--ports by source",
                syn22(),
                a,
            ),
            (
                "-A INPUT -p tcp -m multiport --sports 80 -j ACCEPT",
                "--sports",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -p udp -m multiport --dports 22 -j ACCEPT",
                "multiport udp",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -m state --state NEW -j ACCEPT",
                "state",
                syn22(),
                a,
            ),
            (
                "-A INPUT -m state ! --state NEW -j ACCEPT",
                "! state",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT",
                "ctstate",
                syn22(),
                a,
            ),
            (
                "-A INPUT -m conntrack ! --ctstate INVALID -j ACCEPT",
                "! ctstate",
                syn22(),
                a,
            ),
            (
                "-A INPUT -m conntrack --ctstate NEW,DNAT -j ACCEPT",
                "ctstate decided by state",
                syn22(),
                a,
            ),
            (
                "-A INPUT -m comment --comment \"ssh in\" -j ACCEPT",
                "comment",
                syn22(),
                a,
            ),
            (
                "-A INPUT -i lo -j ACCEPT",
                "-i lo, external",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT ! -i lo -j ACCEPT",
                "! -i lo, external",
                syn22(),
                a,
            ),
            ("-A INPUT -i + -j ACCEPT", "-i +", syn22(), a),
            (
                "-A INPUT -i eth+ -j ACCEPT",
                "-i eth+ on eth0",
                on(syn22(), "eth0"),
                a,
            ),
            (
                "-A INPUT -i eth+ -j ACCEPT",
                "-i eth+ on ens3",
                on(syn22(), "ens3"),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT ! -i eth0 -j ACCEPT",
                "! -i eth0 on eth0",
                on(syn22(), "eth0"),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -i eth0 -j ACCEPT",
                "-i eth0 on eth0",
                on(syn22(), "eth0"),
                a,
            ),
            (
                "-A INPUT -i eth -j ACCEPT",
                "no prefix without +",
                on(syn22(), "eth0"),
                "drop at INPUT policy DROP",
            ),
            (
                "-A INPUT -f -j ACCEPT",
                "-f",
                syn22(),
                "drop at INPUT policy DROP",
            ),
            ("-A INPUT ! -f -j ACCEPT", "! -f", syn22(), a),
        ];
        for (rule, name, p, want) in cases {
            let rs = table("DROP", &[rule]);
            let e = evaluate(&rs, "INPUT", p);
            let got = short(&e);
            assert!(got.starts_with(want), "{name}: {rule}: {e}");
        }
    }

    #[test]
    fn outgoing_interface_of_an_incoming_packet_is_none() {
        // In INPUT the kernel compares -o with an empty name: only `+` fits.
        let rs = table(
            "DROP",
            &[
                "-A INPUT -j U",
                "-A U -o eth0 -j ACCEPT",
                "-A U ! -o lo -j REJECT",
            ],
        );
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(e.to_string(), "reject at U rule 2 (-A U ! -o lo -j REJECT --reject-with icmp-port-unreachable) via INPUT rule 1");
    }

    #[test]
    fn unknowns_are_named_and_never_guessed() {
        let cases: &[(&[&str], Packet, &str, &str)] = &[
            (
                &["-A INPUT -p tcp -m limit --limit 1/sec -j ACCEPT"],
                syn22(),
                "unknown at INPUT rule 1 (-A INPUT -p tcp -m limit --limit 1/sec -j ACCEPT)",
                "match limit is not modelled",
            ),
            (
                &["-A INPUT -i eth0 -j DROP", "-A INPUT -j ACCEPT"],
                syn22(),
                "unknown at INPUT rule 1 (-A INPUT -i eth0 -j DROP)",
                "-i eth0: the packet's interface name is not known",
            ),
            (
                &["-A INPUT -i lo+ -j DROP"],
                syn22(),
                "unknown at INPUT rule 1 (-A INPUT -i lo+ -j DROP)",
                "interface",
            ),
            (
                &["-A INPUT -p tcp -j NFQUEUE --queue-num 3"],
                syn22(),
                "unknown at INPUT rule 1 (-A INPUT -p tcp -j NFQUEUE --queue-num 3)",
                "target NFQUEUE is not modelled",
            ),
            (
                &["-A INPUT -j QUEUE"],
                syn22(),
                "unknown at INPUT rule 1 (-A INPUT -j QUEUE)",
                "target QUEUE",
            ),
            (
                &["-A INPUT -p tcp -m conntrack --ctstate NEW --ctproto tcp -j DROP"],
                syn22(),
                "unknown at INPUT rule 1",
                "-m conntrack --ctproto is not modelled",
            ),
            (
                &["-A INPUT -m conntrack --ctstate DNAT -j ACCEPT"],
                syn22(),
                "unknown at INPUT rule 1",
                "NATed",
            ),
            (
                &["-A INPUT -p tcp -m tcp --tcp-option 2 -j DROP"],
                syn22(),
                "unknown at INPUT rule 1",
                "--tcp-option is not modelled",
            ),
            (
                &["-A INPUT -p tcp --sport 30000:50000 -j DROP"],
                Packet::tcp_syn(ip(CONTROLLER), 1024..=65535, ip(HOST), 22),
                "unknown at INPUT rule 1",
                "source port is only known to be in 1024:65535",
            ),
            (
                &["-A INPUT -j MISSING"],
                syn22(),
                "unknown at INPUT rule 1 (-A INPUT -j MISSING)",
                "target MISSING is not modelled",
            ),
            (
                &["-A INPUT -j OUTPUT"],
                syn22(),
                "unknown at INPUT rule 1",
                "built-in chain",
            ),
        ];
        for (rules, p, want, why) in cases {
            let rs = table("DROP", rules);
            let e = evaluate(&rs, "INPUT", p);
            assert_eq!(e.verdict, Verdict::Unknown, "{rules:?}: {e}");
            assert!(short(&e).starts_with(want), "{rules:?}: {e}");
            let reason = e.reason.clone().unwrap_or_default();
            assert!(reason.contains(why), "{rules:?}: reason {reason:?}");
            assert!(e.to_string().ends_with(&format!(": {reason}")), "{e}");
        }
    }

    #[test]
    fn a_known_part_that_cannot_match_skips_an_unknown_rule() {
        let rs = table(
            "DROP",
            &[
                // -p udp: certainly not this TCP packet, whatever limit says.
                "-A INPUT -p udp -m limit --limit 1/sec -j ACCEPT",
                // The unknown match comes first, the certain mismatch later.
                "-A INPUT -m limit --limit 1/sec -s 10.0.0.0/8 -j ACCEPT",
                "-A INPUT -i eth0 -p icmp -j DROP",
                "-A INPUT -p tcp -m recent --rcheck --name X -m tcp --dport 80 -j DROP",
                "-A INPUT -p tcp --sport 1:1023 -j DROP",
                "-A INPUT -p tcp -m multiport --sports 1:100,200:300 -j DROP",
                "-A INPUT -p tcp -m multiport --sports 1:29999,30000:65535 -j ACCEPT",
            ],
        );
        let p = Packet::tcp_syn(ip(CONTROLLER), 1024..=65535, ip(HOST), 22);
        let e = evaluate(&rs, "INPUT", &p);
        assert_eq!(short(&e), "accept at INPUT rule 7 (-A INPUT -p tcp -m multiport --sports 1:29999,30000:65535 -j ACCEPT)");
    }

    #[test]
    fn where_iptables_legacy_and_nft_disagree_the_answer_is_unknown() {
        // Observed on iptables v1.8.9 (nf_tables): these rules load as
        // something else than iptables-legacy loads (see backends_disagree
        // and merged_ports).
        let unknown = |rule: &str, p: &Packet| {
            let e = evaluate(&table("DROP", &[rule]), "INPUT", p);
            assert_eq!(e.verdict, Verdict::Unknown, "{rule}: {e}");
            assert!(
                e.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("iptables-nft")),
                "{rule}: {e}"
            );
        };
        unknown(
            "-A INPUT -p tcp ! --sport 32775 ! --dport 22 -j ACCEPT",
            &syn22(),
        );
        unknown(
            "-A INPUT -p udp ! --sport 5 ! --dport 53 -j ACCEPT",
            &Packet::udp(ip(CONTROLLER), 9, ip(HOST), 53),
        );
        unknown("-A INPUT -p tcp ! --dport 0:65535 -j ACCEPT", &syn22());
        unknown("-A INPUT -p tcp ! --sport 0:65535 -j ACCEPT", &syn22());
        unknown("-A INPUT -p tcp --tcp-flags NONE SYN -j ACCEPT", &syn22());
        unknown(
            "-A INPUT -p tcp ! --tcp-flags NONE NONE -j ACCEPT",
            &syn22(),
        );
        // Where both backends agree, the answer stands.
        let a = "accept at INPUT rule 1";
        let d = "drop at INPUT policy DROP";
        let cases: &[(&str, Packet, &str)] = &[
            (
                "-A INPUT -p tcp ! --sport 32775 ! --dport 80 -j ACCEPT",
                syn22(),
                a,
            ),
            (
                "-A INPUT -p tcp ! --sport 32775 ! --dport 22 -j ACCEPT",
                Packet::tcp_syn(ip(CONTROLLER), 32775, ip(HOST), 22),
                d,
            ),
            (
                "-A INPUT -p tcp ! --sport 1:3 ! --dport 22 -j ACCEPT",
                syn22(),
                d,
            ),
            (
                "-A INPUT -p tcp --sport 40000 ! --dport 22 -j ACCEPT",
                syn22(),
                d,
            ),
            (
                "-A INPUT -p tcp --tcp-flags NONE NONE -j ACCEPT",
                syn22(),
                a,
            ),
            ("-A INPUT -p tcp ! --dport 1:65535 -j ACCEPT", syn22(), d),
        ];
        for (rule, p, want) in cases {
            let e = evaluate(&table("DROP", &[rule]), "INPUT", p);
            assert!(short(&e).starts_with(want), "{rule}: {e}");
        }
    }

    #[test]
    fn non_terminating_targets_let_an_unknown_rule_pass() {
        let rs = table(
            "DROP",
            &[
                "-A INPUT -m limit --limit 2/min -j LOG --log-prefix \"in: \"",
                "-A INPUT -m recent --set --name SSH",
                "-A INPUT -j NFLOG",
                "-A INPUT -p tcp --dport 22 -j ACCEPT",
            ],
        );
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(e.verdict, Verdict::Accept, "{e}");
        let hits: Vec<(usize, bool)> = e.hits.iter().map(|h| (h.rule.number, h.certain)).collect();
        assert_eq!(hits, vec![(1, false), (2, false), (3, true), (4, true)]);
    }

    #[test]
    fn user_chains_return_and_goto() {
        let rs = table(
            "DROP",
            &[
                "-A INPUT -j A",
                "-A INPUT -p tcp -j ACCEPT",
                "-A A -p tcp -g B",
                "-A A -j DROP",
                "-A B -p tcp --dport 22 -j RETURN",
                "-A B -p tcp --dport 23 -j C",
                "-A B -j REJECT --reject-with tcp-reset",
                "-A C -p tcp --sport 1:1023 -j DROP",
            ],
        );
        // 22: B returns, and returning from a goto skips A: INPUT rule 2.
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(
            e.to_string(),
            "accept at INPUT rule 2 (-A INPUT -p tcp -j ACCEPT)"
        );
        let numbers: Vec<String> = e.hits.iter().map(|h| h.rule.to_string()).collect();
        assert_eq!(
            numbers,
            ["INPUT rule 1", "A rule 1", "B rule 1", "INPUT rule 2"]
        );
        // 23: C falls off its end back into B, whose rule 3 rejects.
        let e = evaluate(&rs, "INPUT", &syn(23));
        assert_eq!(
            e.to_string(),
            "reject at B rule 3 (-A B -j REJECT --reject-with tcp-reset) via INPUT rule 1, A rule 1"
        );
        // udp: A's rule 2.
        let e = evaluate(&rs, "INPUT", &Packet::udp(ip(CONTROLLER), 1, ip(HOST), 53));
        assert_eq!(
            e.to_string(),
            "drop at A rule 2 (-A A -j DROP) via INPUT rule 1"
        );
    }

    #[test]
    fn return_and_goto_out_of_the_builtin_chain_reach_its_policy() {
        let rs = table("DROP", &["-A INPUT -p tcp -j RETURN", "-A INPUT -j ACCEPT"]);
        check(
            "RETURN in INPUT",
            &rs,
            &syn22(),
            "drop at INPUT policy DROP",
        );
        let rs = table(
            "ACCEPT",
            &["-A INPUT -g G", "-A INPUT -j DROP", "-A G -p udp -j DROP"],
        );
        check(
            "goto from INPUT, fall off",
            &rs,
            &syn22(),
            "accept at INPUT policy ACCEPT",
        );
        let rs = table(
            "DROP",
            &[
                "-A INPUT -j G",
                "-A INPUT -j ACCEPT",
                "-A G -j RETURN",
                "-A G -j DROP",
            ],
        );
        check(
            "jump, return",
            &rs,
            &syn22(),
            "accept at INPUT rule 2 (-A INPUT -j ACCEPT)",
        );
    }

    #[test]
    fn loops_and_depth_are_bounded() {
        let rs = table("DROP", &["-A INPUT -j A", "-A A -j B", "-A B -p tcp -j A"]);
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(short(&e), "unknown at B rule 1 (-A B -p tcp -j A)");
        assert!(
            e.reason.as_deref().is_some_and(|r| r.contains("loop")),
            "{e}"
        );
        let rs = table("DROP", &["-A INPUT -g A", "-A A -g B", "-A B -g A"]);
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(short(&e), "unknown at B rule 1 (-A B -g A)");
        // A packet that does not take the looping branch is still decided.
        let rs = table(
            "DROP",
            &[
                "-A INPUT -j A",
                "-A A -j B",
                "-A B -p udp -j A",
                "-A B -j ACCEPT",
            ],
        );
        check(
            "loop not taken",
            &rs,
            &syn22(),
            "accept at B rule 2 (-A B -j ACCEPT)",
        );
        // A chain of 100 user chains is too deep.
        let names: Vec<String> = (0..100).map(|i| format!("C{i}")).collect();
        let mut rules = vec!["-A INPUT -j C0".to_string()];
        for w in names.windows(2) {
            rules.push(format!("-A {} -j {}", w[0], w[1]));
        }
        let refs: Vec<&str> = rules.iter().map(|s| s.as_str()).collect();
        let e = evaluate(&table("DROP", &refs), "INPUT", &syn22());
        assert_eq!(e.verdict, Verdict::Unknown);
        assert!(
            e.reason.as_deref().is_some_and(|r| r.contains("deeper")),
            "{e}"
        );
        assert_eq!(e.via.len(), MAX_DEPTH - 1);
        // Diamond: A calls B twice, B calls C twice, ... 2^14 paths, bounded.
        let mut rules = vec!["-A INPUT -j D0".to_string()];
        for i in 0..14 {
            rules.push(format!("-A D{i} -j D{}", i + 1));
            rules.push(format!("-A D{i} -j D{}", i + 1));
        }
        rules.push("-A D14 -p udp -j DROP".into());
        rules.push("-A INPUT -j ACCEPT".into());
        let refs: Vec<&str> = rules.iter().map(|s| s.as_str()).collect();
        let e = evaluate(&table("DROP", &refs), "INPUT", &syn22());
        assert_eq!(e.verdict, Verdict::Accept, "{e}");
        let mut rules = vec!["-A INPUT -j D0".to_string()];
        for i in 0..20 {
            rules.push(format!("-A D{i} -j D{}", i + 1));
            rules.push(format!("-A D{i} -j D{}", i + 1));
        }
        rules.push("-A D20 -p udp -j DROP".into());
        let refs: Vec<&str> = rules.iter().map(|s| s.as_str()).collect();
        let e = evaluate(&table("DROP", &refs), "INPUT", &syn22());
        assert!(
            e.reason
                .as_deref()
                .is_some_and(|r| r.contains("rules visited")),
            "{e}"
        );
    }

    #[test]
    fn icmp_types_and_codes() {
        let echo = Packet::icmp(ip(CONTROLLER), ip(HOST), 8, 0);
        let frag_needed = Packet::icmp(ip(CONTROLLER), ip(HOST), 3, 4);
        let port_unreach = Packet::icmp(ip(CONTROLLER), ip(HOST), 3, 3);
        let a = "accept at INPUT rule 1";
        let d = "drop at INPUT policy DROP";
        let cases: &[(&str, &Packet, &str)] = &[
            (
                "-A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
                &echo,
                a,
            ),
            ("-A INPUT -p icmp --icmp-type 8 -j ACCEPT", &echo, a),
            ("-A INPUT -p icmp --icmp-type any -j ACCEPT", &echo, a),
            ("-A INPUT -p icmp --icmp-type 0 -j ACCEPT", &echo, d),
            ("-A INPUT -p icmp ! --icmp-type 0 -j ACCEPT", &echo, a),
            (
                "-A INPUT -p icmp --icmp-type destination-unreachable -j ACCEPT",
                &frag_needed,
                a,
            ),
            (
                "-A INPUT -p icmp --icmp-type fragmentation-needed -j ACCEPT",
                &frag_needed,
                a,
            ),
            (
                "-A INPUT -p icmp --icmp-type fragmentation-needed -j ACCEPT",
                &port_unreach,
                d,
            ),
            ("-A INPUT -p icmp --icmp-type 8 -j ACCEPT", &syn22(), d),
        ];
        for (rule, p, want) in cases {
            let e = evaluate(&table("DROP", &[rule]), "INPUT", p);
            assert!(short(&e).starts_with(want), "{rule}: {e}");
        }
        // ICMPv6 in an IPv6 ruleset.
        let text = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\n-A INPUT -s 2001:db8::/32 ! -d 2001:db8:1::/48 -j REJECT\nCOMMIT\n";
        let rs = parse_save(text, Family::V6).expect("parses");
        let c: IpAddr = "2001:db8::7".parse().expect("addr");
        let h: IpAddr = "2001:db8:1::10".parse().expect("addr");
        let other: IpAddr = "2001:db8:2::10".parse().expect("addr");
        assert_eq!(
            evaluate(&rs, "INPUT", &Packet::icmp(c, h, 128, 0)).verdict,
            Verdict::Accept
        );
        assert_eq!(
            evaluate(&rs, "INPUT", &Packet::icmp(c, h, 129, 0)).verdict,
            Verdict::Drop
        );
        assert_eq!(
            evaluate(&rs, "INPUT", &Packet::tcp_syn(c, 1, other, 22)).verdict,
            Verdict::Reject
        );
        let v6 = Ipv6Addr::LOCALHOST;
        assert_eq!(
            evaluate(&rs, "INPUT", &Packet::icmp(IpAddr::V6(v6), h, 129, 0)).verdict,
            Verdict::Drop
        );
    }

    #[test]
    fn fragments_have_no_ports() {
        let mut frag = syn22();
        frag.fragment = true;
        let rs = table(
            "ACCEPT",
            &[
                "-A INPUT -p tcp ! --dport 22 -j DROP",
                "-A INPUT -f -j REJECT",
            ],
        );
        // `! --dport 22` is false for a fragment too: the kernel's tcp match
        // gives up before the `!`.
        let e = evaluate(&rs, "INPUT", &frag);
        assert_eq!(
            short(&e),
            "reject at INPUT rule 2 (-A INPUT -f -j REJECT --reject-with icmp-port-unreachable)"
        );
    }

    #[test]
    fn no_filter_table_and_missing_chains() {
        let empty = Ruleset::empty(Family::V4);
        assert_eq!(
            evaluate(&empty, "INPUT", &syn22()).to_string(),
            "accept at INPUT policy ACCEPT"
        );
        let e = evaluate(&empty, "NOPE", &syn22());
        assert_eq!(e.verdict, Verdict::Unknown);
        assert_eq!(
            e.to_string(),
            "unknown at NOPE: no chain NOPE in the filter table"
        );
        // Starting in a user chain that falls off its end.
        let rs = table("DROP", &["-A U -p udp -j ACCEPT"]);
        let e = evaluate(&rs, "U", &syn22());
        assert_eq!(e.verdict, Verdict::Unknown, "{e}");
        let mixed = Packet::tcp_syn(ip(CONTROLLER), 1, "::1".parse().expect("addr"), 22);
        assert_eq!(evaluate(&rs, "INPUT", &mixed).verdict, Verdict::Unknown);
    }

    #[test]
    fn real_world_dumps() {
        let rs = parse_save(HANDMADE_V4, Family::V4).expect("parses");
        // From the office: accepted before the brute-force chain.
        let office = Packet::tcp_syn(ip(Ipv4Addr::new(192, 0, 2, 9)), 40000, ip(HOST), 22);
        assert_eq!(
            evaluate(&rs, "INPUT", &office).to_string(),
            "accept at INPUT rule 6 (-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j ACCEPT)"
        );
        // From anywhere else: `recent` decides, which is not modelled.
        let e = evaluate(&rs, "INPUT", &syn22());
        assert_eq!(e.verdict, Verdict::Unknown);
        assert!(
            e.to_string()
                .starts_with("unknown at SSH-BRUTE rule 3 (-A SSH-BRUTE -m recent --update"),
            "{e}"
        );
        assert_eq!(
            e.via,
            vec![RuleRef {
                chain: "INPUT".into(),
                number: 5
            }]
        );
        // Established: rule 3 (conntrack).
        assert_eq!(
            evaluate(&rs, "INPUT", &est22()).at.to_string(),
            "at INPUT rule 3 (-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT)"
        );
        // Web from a rejected network: goto, jump and REJECT.
        let web = Packet::tcp_syn(ip(Ipv4Addr::new(198, 51, 100, 77)), 40000, ip(HOST), 443);
        assert_eq!(
            evaluate(&rs, "INPUT", &web).to_string(),
            "reject at web-in rule 1 (-A web-in -s 198.51.100.0/24 -j REJECT --reject-with icmp-host-prohibited) via INPUT rule 7"
        );
        // Every golden dump evaluates without a panic, for a few packets.
        let v6c: IpAddr = "2001:db8::7".parse().expect("addr");
        let v6h: IpAddr = "2001:db8:1::10".parse().expect("addr");
        for (text, family) in [
            (HANDMADE_V4, Family::V4),
            (HANDMADE_V6, Family::V6),
            (DOCKER_V4, Family::V4),
            (F2B_V4, Family::V4),
        ] {
            let rs = parse_save(text, family).expect("parses");
            let (c, h) = match family {
                Family::V4 => (ip(CONTROLLER), ip(HOST)),
                Family::V6 => (v6c, v6h),
            };
            for chain in ["INPUT", "FORWARD", "OUTPUT"] {
                for p in [
                    Packet::tcp_syn(c, 1024..=65535, h, 22),
                    Packet::tcp_established(c, 50000, h, 22),
                    Packet::udp(c, 53, h, 53),
                    Packet::icmp(c, h, 8, 0),
                ] {
                    let e = evaluate(&rs, chain, &p);
                    assert_eq!(e.reason.is_some(), e.is_unknown(), "{e}");
                }
            }
        }
    }

    #[test]
    fn display() {
        let rs = parse_save(SEED_V4, Family::V4).expect("seed parses");
        let e = evaluate(&rs, "INPUT", &syn(25));
        assert_eq!(e.at.to_string(), "at INPUT policy DROP");
        assert_eq!(
            format!(
                "the new rules would {} NEW SSH from {CONTROLLER} {}",
                e.verdict, e.at
            ),
            "the new rules would drop NEW SSH from 203.0.113.7 at INPUT policy DROP"
        );
        assert_eq!(Ports::from(22).to_string(), "22");
        assert_eq!(Ports::from(1024..=65535).to_string(), "1024:65535");
        assert!(Verdict::Reject.blocks() && !Verdict::Unknown.blocks());
    }
}
