//! What rampart knows about match modules and targets: the arity of their
//! options and the canonical form iptables-save prints for them.
//!
//! Verification compares the host's `iptables-save` with the desired rules
//! as text, so every spelling a user may write (`--dport ssh`, `--syn`,
//! `--state ESTABLISHED,RELATED`, `--limit 6/minute`) must become the one
//! the kernel round trip produces. Each rule here mirrors the `*_save`
//! function of the corresponding libxtables extension (iptables 1.8.x).
//! Modules not listed are kept exactly as written (opaque): correct for
//! anything read from a host. For raw rules, [`Rule::canon_certain`] says
//! whether the offline form is exactly what every supported iptables prints
//! (proved against `tests/corpus/printed/`, see `corpus.rs`); when it is
//! not, the host's own iptables gives the form (`hostcanon.rs`).
//!
//! This module depends on `model` only: `parse` tokenizes and calls in
//! here, never the other way round.

use super::model::{cidr_to_string, parse_cidr, Arg, Match, Opt, Rule, Target};
use super::services::{canonical_proto, port_number, PROTOCOLS};
use super::spec::Family;

/// One token of a rule line: its text with quotes and escapes removed,
/// whether any part of it was quoted, and its 0-based char offset.
///
/// Defined here rather than in `parse` so that the dependency runs one way
/// only: `parse` tokenizes and asks `canon` what each option means; `canon`
/// knows nothing of how lines are split.
#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub text: String,
    pub quoted: bool,
    pub start: usize,
}

/// (module, option, number of arguments). Aliases map in [`canonical_name`].
const MATCH_OPTS: &[(&str, &str, usize)] = &[
    ("tcp", "--sport", 1),
    ("tcp", "--source-port", 1),
    ("tcp", "--dport", 1),
    ("tcp", "--destination-port", 1),
    ("tcp", "--tcp-flags", 2),
    ("tcp", "--syn", 0),
    ("tcp", "--tcp-option", 1),
    ("udp", "--sport", 1),
    ("udp", "--source-port", 1),
    ("udp", "--dport", 1),
    ("udp", "--destination-port", 1),
    ("sctp", "--sport", 1),
    ("sctp", "--source-port", 1),
    ("sctp", "--dport", 1),
    ("sctp", "--destination-port", 1),
    ("sctp", "--chunk-types", 2),
    ("dccp", "--sport", 1),
    ("dccp", "--source-port", 1),
    ("dccp", "--dport", 1),
    ("dccp", "--destination-port", 1),
    ("dccp", "--dccp-types", 1),
    ("dccp", "--dccp-option", 1),
    ("icmp", "--icmp-type", 1),
    ("icmp6", "--icmpv6-type", 1),
    ("multiport", "--dports", 1),
    ("multiport", "--destination-ports", 1),
    ("multiport", "--sports", 1),
    ("multiport", "--source-ports", 1),
    ("multiport", "--ports", 1),
    ("state", "--state", 1),
    ("conntrack", "--ctstate", 1),
    ("conntrack", "--ctproto", 1),
    ("conntrack", "--ctorigsrc", 1),
    ("conntrack", "--ctorigdst", 1),
    ("conntrack", "--ctreplsrc", 1),
    ("conntrack", "--ctrepldst", 1),
    ("conntrack", "--ctorigsrcport", 1),
    ("conntrack", "--ctorigdstport", 1),
    ("conntrack", "--ctreplsrcport", 1),
    ("conntrack", "--ctrepldstport", 1),
    ("conntrack", "--ctstatus", 1),
    ("conntrack", "--ctexpire", 1),
    ("conntrack", "--ctdir", 1),
    ("limit", "--limit", 1),
    ("limit", "--limit-burst", 1),
    ("comment", "--comment", 1),
    ("recent", "--set", 0),
    ("recent", "--rcheck", 0),
    ("recent", "--update", 0),
    ("recent", "--remove", 0),
    ("recent", "--seconds", 1),
    ("recent", "--reap", 0),
    ("recent", "--hitcount", 1),
    ("recent", "--rttl", 0),
    ("recent", "--name", 1),
    ("recent", "--mask", 1),
    ("recent", "--rsource", 0),
    ("recent", "--rdest", 0),
    ("connlimit", "--connlimit-upto", 1),
    ("connlimit", "--connlimit-above", 1),
    ("connlimit", "--connlimit-mask", 1),
    ("connlimit", "--connlimit-saddr", 0),
    ("connlimit", "--connlimit-daddr", 0),
    ("mark", "--mark", 1),
    ("connmark", "--mark", 1),
    ("iprange", "--src-range", 1),
    ("iprange", "--dst-range", 1),
    ("mac", "--mac-source", 1),
    ("owner", "--uid-owner", 1),
    ("owner", "--gid-owner", 1),
    ("owner", "--socket-exists", 0),
    ("owner", "--suppl-groups", 0),
    ("length", "--length", 1),
    ("ttl", "--ttl-eq", 1),
    ("ttl", "--ttl-lt", 1),
    ("ttl", "--ttl-gt", 1),
    ("hl", "--hl-eq", 1),
    ("hl", "--hl-lt", 1),
    ("hl", "--hl-gt", 1),
    ("pkttype", "--pkt-type", 1),
    ("tcpmss", "--mss", 1),
    ("cpu", "--cpu", 1),
    ("quota", "--quota", 1),
    ("helper", "--helper", 1),
    ("addrtype", "--src-type", 1),
    ("addrtype", "--dst-type", 1),
    ("addrtype", "--limit-iface-in", 0),
    ("addrtype", "--limit-iface-out", 0),
];

const TARGET_OPTS: &[(&str, &str, usize)] = &[
    ("REJECT", "--reject-with", 1),
    ("LOG", "--log-prefix", 1),
    ("LOG", "--log-level", 1),
    ("LOG", "--log-tcp-sequence", 0),
    ("LOG", "--log-tcp-options", 0),
    ("LOG", "--log-ip-options", 0),
    ("LOG", "--log-uid", 0),
    ("LOG", "--log-macdecode", 0),
    ("NFQUEUE", "--queue-num", 1),
    ("NFQUEUE", "--queue-balance", 1),
    ("NFQUEUE", "--queue-bypass", 0),
    ("NFQUEUE", "--fail-open", 0),
    ("NFQUEUE", "--queue-cpu-fanout", 0),
    ("MARK", "--set-mark", 1),
    ("MARK", "--set-xmark", 1),
    ("MARK", "--and-mark", 1),
    ("MARK", "--or-mark", 1),
    ("MARK", "--xor-mark", 1),
    ("CONNMARK", "--set-mark", 1),
    ("CONNMARK", "--set-xmark", 1),
    ("CONNMARK", "--and-mark", 1),
    ("CONNMARK", "--or-mark", 1),
    ("CONNMARK", "--xor-mark", 1),
    ("CONNMARK", "--save-mark", 0),
    ("CONNMARK", "--restore-mark", 0),
    ("CONNMARK", "--nfmask", 1),
    ("CONNMARK", "--ctmask", 1),
    ("CONNMARK", "--mask", 1),
    ("TCPMSS", "--set-mss", 1),
    ("TCPMSS", "--clamp-mss-to-pmtu", 0),
    ("AUDIT", "--type", 1),
];

/// Targets that take no options at all (verdicts).
const VERDICTS: &[&str] = &["ACCEPT", "DROP", "RETURN", "QUEUE"];

pub(crate) fn is_known_match(module: &str) -> bool {
    MATCH_OPTS.iter().any(|(m, _, _)| *m == module)
}

pub(crate) fn match_opt_arity(module: &str, opt: &str) -> Option<usize> {
    MATCH_OPTS
        .iter()
        .find(|(m, o, _)| *m == module && *o == opt)
        .map(|&(_, _, n)| n)
}

pub(crate) fn is_known_target(target: &str) -> bool {
    VERDICTS.contains(&target) || TARGET_OPTS.iter().any(|(t, _, _)| *t == target)
}

pub(crate) fn target_opt_arity(target: &str, opt: &str) -> Option<usize> {
    TARGET_OPTS
        .iter()
        .find(|(t, o, _)| *t == target && *o == opt)
        .map(|&(_, _, n)| n)
}

/// The match iptables loads implicitly for `-p PROTO` when it meets an
/// option it does not know yet (`-p tcp --dport 22` -> `-m tcp`).
pub(crate) fn implicit_match(proto: &str) -> Option<&'static str> {
    match proto {
        "tcp" => Some("tcp"),
        "udp" => Some("udp"),
        "icmp" => Some("icmp"),
        "ipv6-icmp" => Some("icmp6"),
        "sctp" => Some("sctp"),
        "dccp" => Some("dccp"),
        _ => None,
    }
}

type OptResult = Result<Opt, (usize, String)>;

fn err<T>(tok: &Tok, msg: impl Into<String>) -> Result<T, (usize, String)> {
    Err((tok.start, msg.into()))
}

fn opt(negated: bool, name: &str, args: Vec<Arg>) -> OptResult {
    Ok(Opt {
        negated,
        name: name.to_string(),
        args,
    })
}

fn as_given(args: &[Tok]) -> Vec<Arg> {
    args.iter()
        .map(|t| Arg {
            text: t.text.clone(),
            quoted: t.quoted,
        })
        .collect()
}

/// One option of a match, in canonical form. `args` has the arity checked.
pub(crate) fn normalize_match_opt(module: &str, name: &str, neg: bool, args: &[Tok]) -> OptResult {
    let first = args.first();
    match (module, name, first) {
        ("tcp" | "udp", "--sport" | "--source-port", Some(a)) => {
            opt(neg, "--sport", vec![Arg::bare(port_range(a)?)])
        }
        ("tcp" | "udp", "--dport" | "--destination-port", Some(a)) => {
            opt(neg, "--dport", vec![Arg::bare(port_range(a)?)])
        }
        ("tcp", "--syn", _) => opt(
            neg,
            "--tcp-flags",
            vec![Arg::bare("FIN,SYN,RST,ACK"), Arg::bare("SYN")],
        ),
        ("tcp", "--tcp-flags", Some(mask)) => {
            let cmp = args.get(1).unwrap_or(mask);
            opt(
                neg,
                "--tcp-flags",
                vec![Arg::bare(tcp_flags(mask)?), Arg::bare(tcp_flags(cmp)?)],
            )
        }
        ("tcp", "--tcp-option", Some(a)) => opt(neg, name, vec![Arg::bare(number(a, 0, 255)?)]),
        ("multiport", _, Some(a)) => {
            let canonical = match name {
                "--destination-ports" | "--dports" => "--dports",
                "--source-ports" | "--sports" => "--sports",
                _ => "--ports",
            };
            opt(neg, canonical, vec![Arg::bare(port_list(a)?)])
        }
        ("state", "--state", Some(a)) => opt(neg, name, vec![Arg::bare(ct_states(a, false)?)]),
        ("conntrack", "--ctstate", Some(a)) => opt(neg, name, vec![Arg::bare(ct_states(a, true)?)]),
        ("limit", "--limit", Some(a)) => opt(neg, name, vec![Arg::bare(rate(a)?)]),
        ("limit", "--limit-burst", Some(a)) => {
            opt(neg, name, vec![Arg::bare(number(a, 1, 10000)?)])
        }
        ("comment", "--comment", Some(a)) => {
            if a.text.len() > 255 {
                return err(a, "comment longer than 255 bytes");
            }
            opt(neg, name, vec![Arg::saved_string(a.text.clone())])
        }
        ("recent", "--seconds" | "--hitcount", Some(a)) => {
            opt(neg, name, vec![Arg::bare(number(a, 1, u32::MAX as u64)?)])
        }
        ("recent", "--name", Some(a)) => {
            if a.text.is_empty() || a.text.len() > 199 || a.text.contains(char::is_whitespace) {
                return err(a, "bad recent list name");
            }
            opt(neg, name, vec![Arg::bare(a.text.clone())])
        }
        ("conntrack", "--ctproto", Some(a)) => opt(neg, name, vec![Arg::bare(proto_number(a)?)]),
        ("conntrack", "--ctorigsrc" | "--ctorigdst" | "--ctreplsrc" | "--ctrepldst", Some(a)) => {
            let c = parse_cidr(&a.text).or_else(|m| err(a, m))?;
            opt(neg, name, vec![Arg::bare(cidr_to_string(&c))])
        }
        (
            "conntrack",
            "--ctorigsrcport" | "--ctorigdstport" | "--ctreplsrcport" | "--ctrepldstport",
            Some(a),
        ) => opt(neg, name, vec![Arg::bare(port_range(a)?)]),
        ("addrtype", "--src-type" | "--dst-type", Some(a)) => {
            opt(neg, name, vec![Arg::bare(addr_types(a)?)])
        }
        // `! --connlimit-above N` is `--connlimit-upto N` and vice versa:
        // the kernel keeps one flag, and connlimit_save prints from it.
        ("connlimit", "--connlimit-upto" | "--connlimit-above", Some(a)) => {
            let above = (name == "--connlimit-above") != neg;
            let n = number(a, 0, u32::MAX as u64)?;
            let name = if above {
                "--connlimit-above"
            } else {
                "--connlimit-upto"
            };
            opt(false, name, vec![Arg::bare(n)])
        }
        ("connlimit", "--connlimit-mask", Some(a)) => {
            opt(neg, name, vec![Arg::bare(number(a, 0, 128)?)])
        }
        ("mark" | "connmark", "--mark", Some(a)) => opt(neg, name, vec![Arg::bare(mark(a)?)]),
        ("iprange", "--src-range" | "--dst-range", Some(a)) => {
            opt(neg, name, vec![Arg::bare(ip_range(a)?)])
        }
        ("mac", "--mac-source", Some(a)) => opt(neg, name, vec![Arg::bare(mac(a)?)]),
        ("owner", "--uid-owner" | "--gid-owner", Some(a)) => {
            opt(neg, name, vec![Arg::bare(owner_id(a))])
        }
        ("length" | "tcpmss", "--length" | "--mss", Some(a)) => {
            opt(neg, name, vec![Arg::bare(u16_range(a)?)])
        }
        ("ttl" | "hl", _, Some(a)) => opt(neg, name, vec![Arg::bare(number(a, 0, 255)?)]),
        ("pkttype", "--pkt-type", Some(a)) => {
            let t = a.text.to_ascii_lowercase();
            match t.as_str() {
                "unicast" | "broadcast" | "multicast" => opt(neg, name, vec![Arg::bare(t)]),
                _ => err(a, format!("unknown packet type {:?}", a.text)),
            }
        }
        ("cpu", "--cpu", Some(a)) => opt(neg, name, vec![Arg::bare(number(a, 0, 65535)?)]),
        ("quota", "--quota", Some(a)) => opt(neg, name, vec![Arg::bare(number(a, 0, u64::MAX)?)]),
        ("helper", "--helper", Some(a)) => opt(neg, name, vec![Arg::saved_string(a.text.clone())]),
        ("icmp", "--icmp-type", Some(a)) => opt(neg, name, vec![Arg::bare(icmp_type(a, false)?)]),
        ("icmp6", "--icmpv6-type", Some(a)) => opt(neg, name, vec![Arg::bare(icmp_type(a, true)?)]),
        _ => opt(neg, name, as_given(args)),
    }
}

/// One option of a target, in canonical form.
pub(crate) fn normalize_target_opt(target: &str, name: &str, neg: bool, args: &[Tok]) -> OptResult {
    match (target, name, args.first()) {
        ("REJECT", "--reject-with", Some(a)) => {
            let t = a.text.to_ascii_lowercase();
            let t = if t == "tcp-rst" {
                "tcp-reset".into()
            } else {
                t
            };
            opt(neg, name, vec![Arg::bare(t)])
        }
        // MARK and CONNMARK keep one (value, mask) pair: iptables-save
        // prints every spelling as --set-xmark VALUE/MASK, where
        // `--or-mark M` is M/M, `--and-mark M` is 0/~M, `--xor-mark M` is M/0.
        ("MARK" | "CONNMARK", "--set-mark" | "--set-xmark", Some(a)) => {
            let (v, m) = mark_pair(a)?;
            let m = if name == "--set-mark" && !a.text.contains('/') {
                u32::MAX
            } else if name == "--set-mark" {
                // --set-mark V/M zeroes M, then sets V: V/(M|V).
                m | v
            } else {
                m
            };
            opt(
                neg,
                "--set-xmark",
                vec![Arg::bare(format!("{v:#x}/{m:#x}"))],
            )
        }
        ("MARK" | "CONNMARK", "--and-mark" | "--or-mark" | "--xor-mark", Some(a)) => {
            let m = u32_any_base(&a.text).ok_or((a.start, format!("bad mark {:?}", a.text)))?;
            let (v, mask) = match name {
                "--and-mark" => (0, !m),
                "--or-mark" => (m, m),
                _ => (m, 0),
            };
            opt(
                neg,
                "--set-xmark",
                vec![Arg::bare(format!("{v:#x}/{mask:#x}"))],
            )
        }
        ("CONNMARK", "--nfmask" | "--ctmask", Some(a)) => {
            let m = u32_any_base(&a.text).ok_or((a.start, format!("bad mask {:?}", a.text)))?;
            opt(neg, name, vec![Arg::bare(format!("{m:#x}"))])
        }
        ("NFQUEUE", "--queue-num", Some(a)) => {
            opt(neg, name, vec![Arg::bare(number(a, 0, 65535)?)])
        }
        ("TCPMSS", "--set-mss", Some(a)) => opt(neg, name, vec![Arg::bare(number(a, 0, 65535)?)]),
        ("AUDIT", "--type", Some(a)) => {
            let t = a.text.to_ascii_lowercase();
            match t.as_str() {
                "accept" | "drop" | "reject" => opt(neg, name, vec![Arg::bare(t)]),
                _ => err(a, format!("unknown audit type {:?}", a.text)),
            }
        }
        ("LOG", "--log-prefix", Some(a)) => {
            if a.text.len() > 29 {
                return err(a, "log prefix longer than 29 characters");
            }
            opt(neg, name, vec![Arg::saved_string(a.text.clone())])
        }
        ("LOG", "--log-level", Some(a)) => {
            const LEVELS: &[&str] = &[
                "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
            ];
            let t = a.text.to_ascii_lowercase();
            let level = match t.as_str() {
                "panic" => Some(0),
                "err" => Some(3),
                "warn" => Some(4),
                _ => LEVELS
                    .iter()
                    .position(|l| *l == t)
                    .or_else(|| t.parse::<usize>().ok().filter(|n| *n <= 7)),
            };
            match level {
                Some(l) => opt(neg, name, vec![Arg::bare(l.to_string())]),
                None => err(a, format!("bad log level {}", a.text)),
            }
        }
        _ => opt(neg, name, as_given(args)),
    }
}

/// Sort `opts` by the position of their name in `order` (unknown last),
/// keeping the given order among equals.
fn sort_opts(opts: &mut [Opt], order: &[&str]) {
    opts.sort_by_key(|o| {
        order
            .iter()
            .position(|n| *n == o.name)
            .unwrap_or(order.len())
    });
}

/// Option order and defaults of a finished match, as its save function prints.
pub(crate) fn finish_match(m: &mut Match) {
    match m.name.as_str() {
        "tcp" | "udp" => {
            // A full range is the kernel default and is not printed.
            m.opts.retain(|o| {
                !(matches!(o.name.as_str(), "--sport" | "--dport")
                    && !o.negated
                    && o.args.first().is_some_and(|a| a.text == "0:65535"))
            });
            sort_opts(
                &mut m.opts,
                &["--sport", "--dport", "--tcp-option", "--tcp-flags"],
            );
        }
        "limit" => {
            if m.opt("--limit").is_none() {
                m.opts.insert(0, Opt::new("--limit", &["3/hour"]));
            }
            m.opts.retain(|o| {
                !(o.name == "--limit-burst" && o.args.first().is_some_and(|a| a.text == "5"))
            });
            sort_opts(&mut m.opts, &["--limit", "--limit-burst"]);
        }
        "recent" => {
            if m.opt("--name").is_none() {
                m.opts.push(Opt::new("--name", &["DEFAULT"]));
            }
            if m.opt("--rsource").is_none() && m.opt("--rdest").is_none() {
                m.opts.push(Opt::new("--rsource", &[]));
            }
            sort_recent(m);
        }
        "conntrack" => sort_opts(
            &mut m.opts,
            &[
                "--ctstate",
                "--ctproto",
                "--ctorigsrc",
                "--ctorigdst",
                "--ctreplsrc",
                "--ctrepldst",
                "--ctorigsrcport",
                "--ctorigdstport",
                "--ctreplsrcport",
                "--ctrepldstport",
                "--ctstatus",
                "--ctexpire",
                "--ctdir",
            ],
        ),
        "connlimit" => {
            if m.opt("--connlimit-upto").is_none() && m.opt("--connlimit-above").is_none() {
                // iptables requires one; keep the rule as written so the
                // host's iptables-restore --test says so.
                return;
            }
            if m.opt("--connlimit-saddr").is_none() && m.opt("--connlimit-daddr").is_none() {
                m.opts.push(Opt::new("--connlimit-saddr", &[]));
            }
            sort_connlimit(m);
        }
        "owner" => sort_opts(
            &mut m.opts,
            &[
                "--socket-exists",
                "--uid-owner",
                "--gid-owner",
                "--suppl-groups",
            ],
        ),
        "iprange" => sort_opts(&mut m.opts, &["--src-range", "--dst-range"]),
        "addrtype" => sort_opts(
            &mut m.opts,
            &[
                "--src-type",
                "--dst-type",
                "--limit-iface-in",
                "--limit-iface-out",
            ],
        ),
        _ => {}
    }
}

fn sort_connlimit(m: &mut Match) {
    sort_opts(
        &mut m.opts,
        &[
            "--connlimit-upto",
            "--connlimit-above",
            "--connlimit-mask",
            "--connlimit-saddr",
            "--connlimit-daddr",
        ],
    );
}

fn sort_recent(m: &mut Match) {
    // recent's `!` belongs to the whole match and is printed before the
    // command option, which comes first anyway.
    sort_opts(
        &mut m.opts,
        &[
            "--set",
            "--rcheck",
            "--update",
            "--remove",
            "--seconds",
            "--reap",
            "--hitcount",
            "--rttl",
            "--name",
            "--mask",
            "--rsource",
            "--rdest",
        ],
    );
}

/// Option order and defaults of a finished target.
pub(crate) fn finish_target(t: &mut Target) {
    if t.name == "NFQUEUE"
        && t.opt_named("--queue-num").is_none()
        && t.opt_named("--queue-balance").is_none()
    {
        t.opts.insert(0, Opt::new("--queue-num", &["0"]));
    }
    if t.name == "NFQUEUE" {
        sort_target_opts(
            t,
            &[
                "--queue-num",
                "--queue-balance",
                "--queue-bypass",
                "--fail-open",
                "--queue-cpu-fanout",
            ],
        );
    }
    if t.name == "CONNMARK"
        && (t.opt_named("--save-mark").is_some() || t.opt_named("--restore-mark").is_some())
        && t.opt_named("--mask").is_none()
    {
        for m in ["--nfmask", "--ctmask"] {
            if t.opt_named(m).is_none() {
                t.opts.push(Opt::new(m, &["0xffffffff"]));
            }
        }
        sort_target_opts(
            t,
            &["--save-mark", "--restore-mark", "--nfmask", "--ctmask"],
        );
    }
    if t.name == "LOG" {
        t.opts.retain(|o| {
            !(o.name == "--log-level" && o.args.first().is_some_and(|a| a.text == "4"))
        });
        sort_opts(
            &mut t.opts,
            &[
                "--log-prefix",
                "--log-level",
                "--log-tcp-sequence",
                "--log-tcp-options",
                "--log-ip-options",
                "--log-uid",
                "--log-macdecode",
            ],
        );
    }
}

fn sort_target_opts(t: &mut Target, order: &[&str]) {
    sort_opts(&mut t.opts, order);
}

impl Target {
    fn opt_named(&self, name: &str) -> Option<&Opt> {
        self.opts.iter().find(|o| o.name == name)
    }
}

/// Options of targets rampart writes exactly as every version prints them;
/// any other option (CONNMARK's `--mask`, NFQUEUE's `--fail-open`) leaves
/// the rule to the host.
const CERTAIN_TARGET_OPTS: &[(&str, &[&str])] = &[
    ("REJECT", &["--reject-with"]),
    (
        "LOG",
        &[
            "--log-prefix",
            "--log-level",
            "--log-tcp-sequence",
            "--log-tcp-options",
            "--log-ip-options",
            "--log-uid",
            "--log-macdecode",
        ],
    ),
    (
        "NFQUEUE",
        &[
            "--queue-num",
            "--queue-balance",
            "--queue-bypass",
            "--queue-cpu-fanout",
        ],
    ),
    ("MARK", &["--set-xmark"]),
    (
        "CONNMARK",
        &[
            "--set-xmark",
            "--save-mark",
            "--restore-mark",
            "--nfmask",
            "--ctmask",
        ],
    ),
    ("TCPMSS", &["--set-mss", "--clamp-mss-to-pmtu"]),
    ("AUDIT", &["--type"]),
];

/// `V[/M]` for MARK/CONNMARK: the mask defaults to all ones.
fn mark_pair(a: &Tok) -> Result<(u32, u32), (usize, String)> {
    let bad = || (a.start, format!("bad mark {:?}", a.text));
    match a.text.split_once('/') {
        Some((v, m)) => Ok((
            u32_any_base(v).ok_or_else(bad)?,
            u32_any_base(m).ok_or_else(bad)?,
        )),
        None => Ok((u32_any_base(&a.text).ok_or_else(bad)?, u32::MAX)),
    }
}

/// `A`, `A:B`, `A:`, `:B` (numbers up to 65535) as length and tcpmss print:
/// `A` when both ends are equal, else `A:B`.
fn u16_range(a: &Tok) -> Result<String, (usize, String)> {
    let n = |t: &str, d: u64| -> Result<u64, (usize, String)> {
        if t.is_empty() {
            return Ok(d);
        }
        match t.parse::<u64>() {
            Ok(v) if v <= 65535 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
            _ => err(a, format!("bad range {:?}", a.text)),
        }
    };
    let (lo, hi) = match a.text.split_once(':') {
        Some((l, h)) => (n(l, 0)?, n(h, 65535)?),
        None => {
            let v = n(&a.text, 0)?;
            (v, v)
        }
    };
    if lo > hi {
        return err(a, format!("bad range {:?} (start above end)", a.text));
    }
    Ok(if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}:{hi}")
    })
}

/// The parts of the canonical form that depend on the family: REJECT's
/// default and aliases, recent's default `--mask`.
pub(crate) fn apply_family(rule: &mut Rule, family: Family) {
    if let Some(t) = rule.target.as_mut() {
        if t.name == "REJECT" {
            if t.opts.iter().all(|o| o.name != "--reject-with") {
                let d = match family {
                    Family::V4 => "icmp-port-unreachable",
                    Family::V6 => "icmp6-port-unreachable",
                };
                t.opts.push(Opt::new("--reject-with", &[d]));
            }
            for o in t.opts.iter_mut().filter(|o| o.name == "--reject-with") {
                if let Some(a) = o.args.first_mut() {
                    a.text = reject_alias(&a.text, family).to_string();
                }
            }
        }
    }
    for m in rule.matches.iter_mut().filter(|m| m.name == "connlimit") {
        if m.opt("--connlimit-mask").is_none() {
            let len = match family {
                Family::V4 => "32",
                Family::V6 => "128",
            };
            m.opts.push(Opt::new("--connlimit-mask", &[len]));
            sort_connlimit(m);
        }
    }
    for m in rule.matches.iter_mut().filter(|m| m.name == "recent") {
        if m.opt("--mask").is_none() {
            let mask = match family {
                Family::V4 => "255.255.255.255",
                Family::V6 => "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            };
            m.opts.push(Opt::new("--mask", &[mask]));
            sort_recent(m);
        }
    }
}

fn reject_alias(t: &str, family: Family) -> &str {
    match (family, t) {
        (Family::V4, "net-unreach") => "icmp-net-unreachable",
        (Family::V4, "host-unreach") => "icmp-host-unreachable",
        (Family::V4, "port-unreach") => "icmp-port-unreachable",
        (Family::V4, "proto-unreach") => "icmp-proto-unreachable",
        (Family::V4, "net-prohib") => "icmp-net-prohibited",
        (Family::V4, "host-prohib") => "icmp-host-prohibited",
        (Family::V4, "admin-prohib") => "icmp-admin-prohibited",
        (Family::V6, "no-route") => "icmp6-no-route",
        (Family::V6, "adm-prohibited") => "icmp6-adm-prohibited",
        (Family::V6, "addr-unreach") => "icmp6-addr-unreachable",
        (Family::V6, "port-unreach") => "icmp6-port-unreachable",
        _ => t,
    }
}

/// Is this a target that takes no options?
pub(crate) fn is_verdict(target: &str) -> bool {
    VERDICTS.contains(&target)
}

fn number(a: &Tok, lo: u64, hi: u64) -> Result<String, (usize, String)> {
    match a.text.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) && a.text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n.to_string())
        }
        _ => err(
            a,
            format!("expected a number {lo}..{hi}, found {:?}", a.text),
        ),
    }
}

fn port(a: &Tok, text: &str) -> Result<u16, (usize, String)> {
    port_number(text).ok_or((a.start, format!("bad port {text:?}")))
}

/// A service name the host may know from its `/etc/services` although
/// rampart's table does not: a letter, then letters, digits, `-`, `_`, `.`.
fn service_name_syntax(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `P`, `P:Q`, `:Q`, `P:` -> `P` or `P:Q`, numbers only. A service name
/// not in rampart's table is kept as written, for the host's iptables to
/// resolve (the rule is then not certain offline).
fn port_range(a: &Tok) -> Result<String, (usize, String)> {
    let unknown_name = |t: &str| port_number(t).is_none() && service_name_syntax(t);
    let parts: Vec<&str> = a.text.split(':').collect();
    if parts.len() <= 2
        && parts.iter().any(|p| unknown_name(p))
        && parts
            .iter()
            .all(|p| p.is_empty() || port_number(p).is_some() || unknown_name(p))
    {
        return Ok(a.text.clone());
    }
    match a.text.split_once(':') {
        None => Ok(port(a, &a.text)?.to_string()),
        Some((lo, hi)) => {
            let lo = if lo.is_empty() { 0 } else { port(a, lo)? };
            let hi = if hi.is_empty() { 65535 } else { port(a, hi)? };
            if lo > hi {
                return err(a, format!("bad port range {} (start above end)", a.text));
            }
            Ok(if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}:{hi}")
            })
        }
    }
}

/// Is a canonical port argument numbers only (`22`, `1024:65535`, `80,443`)?
fn port_numeric(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b',')
}

/// multiport's list: at most 15 ports, a range counting two.
fn port_list(a: &Tok) -> Result<String, (usize, String)> {
    let mut out = Vec::new();
    let mut slots = 0;
    for item in a.text.split(',') {
        if item.is_empty() {
            return err(a, format!("empty port in {:?}", a.text));
        }
        let sub = Tok {
            text: item.to_string(),
            quoted: false,
            start: a.start,
        };
        let r = port_range(&sub)?;
        slots += if r.contains(':') { 2 } else { 1 };
        out.push(r);
    }
    if slots > 15 && out.iter().all(|p| port_numeric(p)) {
        return err(
            a,
            "multiport takes at most 15 ports (a range counts as two)",
        );
    }
    Ok(out.join(","))
}

/// A number the way strtoul(..., 0) reads it: `0x` hex, leading `0`
/// octal, else decimal; at most 32 bits.
fn u32_any_base(text: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (h, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// mark/connmark `VALUE[/MASK]` -> `0xV[/0xM]`, the mask left out when it
/// is all ones (mark_mt_save).
fn mark(a: &Tok) -> Result<String, (usize, String)> {
    let (v, m) = match a.text.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (a.text.as_str(), None),
    };
    let bad = || (a.start, format!("bad mark {:?}", a.text));
    let v = u32_any_base(v).ok_or_else(bad)?;
    let m = match m {
        Some(m) => u32_any_base(m).ok_or_else(bad)?,
        None => u32::MAX,
    };
    Ok(if m == u32::MAX {
        format!("{v:#x}")
    } else {
        format!("{v:#x}/{m:#x}")
    })
}

/// iprange's `A-B` (or one address) with both ends printed as inet_ntop does.
fn ip_range(a: &Tok) -> Result<String, (usize, String)> {
    let one = |t: &str| -> Result<std::net::IpAddr, (usize, String)> {
        t.parse::<std::net::IpAddr>()
            .map_err(|_| (a.start, format!("bad address {t:?} in range {:?}", a.text)))
    };
    match a.text.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (one(lo)?, one(hi)?);
            if lo.is_ipv4() != hi.is_ipv4() {
                return err(a, format!("range {:?} mixes IPv4 and IPv6", a.text));
            }
            Ok(format!("{lo}-{hi}"))
        }
        None => {
            let x = one(&a.text)?;
            Ok(format!("{x}-{x}"))
        }
    }
}

/// A MAC address, lowercase (mac_save prints `%02x`).
fn mac(a: &Tok) -> Result<String, (usize, String)> {
    let parts: Vec<&str> = a.text.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return err(a, format!("bad MAC address {:?}", a.text));
    }
    Ok(parts
        .iter()
        .map(|p| format!("{:0>2}", p.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(":"))
}

/// owner's `--uid-owner`/`--gid-owner`: `N` or `N-M` as printed (`N-N` is
/// `N`); a name stays as written, for the host to resolve.
fn owner_id(a: &Tok) -> String {
    let num = |t: &str| {
        t.parse::<u32>()
            .ok()
            .filter(|_| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    };
    match a.text.split_once('-') {
        None => match num(&a.text) {
            Some(n) => n.to_string(),
            None => a.text.clone(),
        },
        Some((lo, hi)) => match (num(lo), num(hi)) {
            (Some(l), Some(h)) if l == h => l.to_string(),
            (Some(l), Some(h)) => format!("{l}-{h}"),
            _ => a.text.clone(),
        },
    }
}

/// Is this owner argument a number or range (not a name the host resolves)?
fn owner_id_numeric(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// conntrack's `--ctproto`: iptables-save prints the number.
fn proto_number(a: &Tok) -> Result<String, (usize, String)> {
    let name = match canonical_proto(&a.text) {
        Some(n) if n != "all" => n,
        _ => return err(a, format!("unknown protocol {:?}", a.text)),
    };
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(name);
    }
    match PROTOCOLS.iter().find(|(n, _)| *n == name) {
        Some((_, num)) => Ok(num.to_string()),
        None => err(a, format!("unknown protocol {:?}", a.text)),
    }
}

/// addrtype's types, in the kernel's bit order (how addrtype_save prints).
fn addr_types(a: &Tok) -> Result<String, (usize, String)> {
    const ORDER: &[&str] = &[
        "UNSPEC",
        "UNICAST",
        "LOCAL",
        "BROADCAST",
        "ANYCAST",
        "MULTICAST",
        "BLACKHOLE",
        "UNREACHABLE",
        "PROHIBIT",
        "THROW",
        "NAT",
        "XRESOLVE",
    ];
    let mut seen = [false; 12];
    for t in a.text.split(',') {
        let t = t.to_ascii_uppercase();
        match ORDER.iter().position(|n| *n == t) {
            Some(i) => seen[i] = true,
            None => return err(a, format!("unknown address type {t:?}")),
        }
    }
    Ok(ORDER
        .iter()
        .zip(seen)
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(","))
}

const TCP_FLAGS: &[(&str, u8)] = &[
    ("FIN", 0x01),
    ("SYN", 0x02),
    ("RST", 0x04),
    ("PSH", 0x08),
    ("ACK", 0x10),
    ("URG", 0x20),
];

/// `ALL`, `NONE`, or a comma list -> the six names in kernel bit order.
fn tcp_flags(a: &Tok) -> Result<String, (usize, String)> {
    let mut bits = 0u8;
    for f in a.text.split(',') {
        let f = f.to_ascii_uppercase();
        bits |= match f.as_str() {
            "ALL" => 0x3f,
            "NONE" => 0,
            _ => match TCP_FLAGS.iter().find(|(n, _)| *n == f) {
                Some(&(_, b)) => b,
                None => return err(a, format!("unknown TCP flag {f:?}")),
            },
        };
    }
    if bits == 0 {
        return Ok("NONE".into());
    }
    Ok(TCP_FLAGS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(","))
}

/// State names in the order the kernel's bits make iptables print them.
fn ct_states(a: &Tok, conntrack: bool) -> Result<String, (usize, String)> {
    const ORDER: &[&str] = &[
        "INVALID",
        "NEW",
        "RELATED",
        "ESTABLISHED",
        "UNTRACKED",
        "SNAT",
        "DNAT",
    ];
    let allowed = if conntrack { 7 } else { 5 };
    let mut seen = [false; 7];
    for s in a.text.split(',') {
        let s = s.to_ascii_uppercase();
        match ORDER[..allowed].iter().position(|n| *n == s) {
            Some(i) => seen[i] = true,
            None => return err(a, format!("unknown connection state {s:?}")),
        }
    }
    Ok(ORDER
        .iter()
        .zip(seen)
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(","))
}

/// `N[/unit]` -> the rate limit prints back, via the kernel's
/// representation (`avg = 10000 * seconds_per_unit / N`) and libxt_limit's
/// `print_rate`, so `60/minute` canonicalizes to `1/sec` exactly as it will
/// on the host.
fn rate(a: &Tok) -> Result<String, (usize, String)> {
    const SCALE: u64 = 10000;
    let (n, unit) = match a.text.split_once('/') {
        Some((n, u)) => (n, Some(u)),
        None => (a.text.as_str(), None),
    };
    let mult: u64 = match unit.map(|u| u.to_ascii_lowercase()) {
        None => 1,
        Some(u) if u.is_empty() => return err(a, "missing rate unit"),
        Some(u) if "second".starts_with(&u) => 1,
        Some(u) if "minute".starts_with(&u) => 60,
        Some(u) if "hour".starts_with(&u) => 3600,
        Some(u) if "day".starts_with(&u) => 86400,
        Some(u) => return err(a, format!("unknown rate unit {u:?}")),
    };
    let r: u64 = match n.parse() {
        Ok(r) if r > 0 && n.bytes().all(|b| b.is_ascii_digit()) => r,
        _ => return err(a, format!("bad rate {:?}", a.text)),
    };
    if r > SCALE * mult {
        return err(a, format!("rate {} too fast", a.text));
    }
    let period = SCALE * mult / r;
    let rates: [(&str, u64); 4] = [
        ("day", SCALE * 86400),
        ("hour", SCALE * 3600),
        ("min", SCALE * 60),
        ("sec", SCALE),
    ];
    let mut i = 1;
    while i < rates.len() {
        let m = rates[i].1;
        if period > m || m / period < m % period {
            break;
        }
        i += 1;
    }
    let (name, m) = rates[i - 1];
    Ok(format!("{}/{}", m / period, name))
}

/// ICMP type names -> `T` or `T/C`, as icmp_save / icmp6_save print.
fn icmp_type(a: &Tok, v6: bool) -> Result<String, (usize, String)> {
    const V4: &[(&str, &str)] = &[
        ("any", "any"),
        ("echo-reply", "0"),
        ("pong", "0"),
        ("destination-unreachable", "3"),
        ("network-unreachable", "3/0"),
        ("host-unreachable", "3/1"),
        ("protocol-unreachable", "3/2"),
        ("port-unreachable", "3/3"),
        ("fragmentation-needed", "3/4"),
        ("source-route-failed", "3/5"),
        ("network-unknown", "3/6"),
        ("host-unknown", "3/7"),
        ("network-prohibited", "3/9"),
        ("host-prohibited", "3/10"),
        ("tos-network-unreachable", "3/11"),
        ("tos-host-unreachable", "3/12"),
        ("communication-prohibited", "3/13"),
        ("host-precedence-violation", "3/14"),
        ("precedence-cutoff", "3/15"),
        ("source-quench", "4"),
        ("redirect", "5"),
        ("network-redirect", "5/0"),
        ("host-redirect", "5/1"),
        ("tos-network-redirect", "5/2"),
        ("tos-host-redirect", "5/3"),
        ("echo-request", "8"),
        ("ping", "8"),
        ("router-advertisement", "9"),
        ("router-solicitation", "10"),
        ("time-exceeded", "11"),
        ("ttl-exceeded", "11"),
        ("ttl-zero-during-transit", "11/0"),
        ("ttl-zero-during-reassembly", "11/1"),
        ("parameter-problem", "12"),
        ("ip-header-bad", "12/0"),
        ("required-option-missing", "12/1"),
        ("timestamp-request", "13"),
        ("timestamp-reply", "14"),
        ("address-mask-request", "17"),
        ("address-mask-reply", "18"),
    ];
    const V6: &[(&str, &str)] = &[
        ("destination-unreachable", "1"),
        ("no-route", "1/0"),
        ("communication-prohibited", "1/1"),
        ("beyond-scope", "1/2"),
        ("address-unreachable", "1/3"),
        ("port-unreachable", "1/4"),
        ("failed-policy", "1/5"),
        ("reject-route", "1/6"),
        ("packet-too-big", "2"),
        ("time-exceeded", "3"),
        ("ttl-exceeded", "3"),
        ("ttl-zero-during-transit", "3/0"),
        ("ttl-zero-during-reassembly", "3/1"),
        ("parameter-problem", "4"),
        ("bad-header", "4/0"),
        ("unknown-header-type", "4/1"),
        ("unknown-option", "4/2"),
        ("echo-request", "128"),
        ("ping", "128"),
        ("echo-reply", "129"),
        ("pong", "129"),
        ("mld-listener-query", "130"),
        ("mld-listener-report", "131"),
        ("mld-listener-done", "132"),
        ("router-solicitation", "133"),
        ("router-advertisement", "134"),
        ("neighbour-solicitation", "135"),
        ("neighbor-solicitation", "135"),
        ("neighbour-advertisement", "136"),
        ("neighbor-advertisement", "136"),
        ("redirect", "137"),
    ];
    let t = a.text.to_ascii_lowercase();
    let table = if v6 { V6 } else { V4 };
    if let Some((_, v)) = table.iter().find(|(n, _)| *n == t) {
        return Ok((*v).to_string());
    }
    let num = |s: &str| {
        s.parse::<u8>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
    };
    match t.split_once('/') {
        None if num(&t).is_some() => Ok(t),
        Some((ty, code)) if num(ty).is_some() && num(code).is_some() => Ok(t),
        _ => err(a, format!("unknown ICMP type {:?}", a.text)),
    }
}

/// Protocol names every supported iptables prints the same way (its own
/// built-in table, not `/etc/protocols`): 1.8.11 prints any other protocol
/// as a number where 1.8.7 and 1.8.9 print the name `/etc/protocols` gives.
const CERTAIN_PROTOS: &[&str] = &[
    "tcp",
    "udp",
    "udplite",
    "icmp",
    "ipv6-icmp",
    "sctp",
    "dccp",
    "esp",
    "ah",
];

/// Target extensions of iptables 1.8 (a user chain can never be named like
/// one). One of these without options is printed with its defaults filled
/// in (`-j NFQUEUE` -> `--queue-num 0`), so only the ones rampart models
/// are certain.
const EXTENSION_TARGETS: &[&str] = &[
    "AUDIT",
    "CHECKSUM",
    "CLASSIFY",
    "CLUSTERIP",
    "CONNMARK",
    "CONNSECMARK",
    "CT",
    "DNAT",
    "DNPT",
    "DSCP",
    "ECN",
    "HL",
    "HMARK",
    "IDLETIMER",
    "LED",
    "LOG",
    "MARK",
    "MASQUERADE",
    "NETMAP",
    "NFLOG",
    "NFQUEUE",
    "NOTRACK",
    "RATEEST",
    "REDIRECT",
    "REJECT",
    "SECMARK",
    "SET",
    "SNAT",
    "SNPT",
    "SYNPROXY",
    "TCPMSS",
    "TCPOPTSTRIP",
    "TEE",
    "TOS",
    "TPROXY",
    "TRACE",
    "TTL",
    "ULOG",
];

/// Matches whose canonical form rampart writes exactly as every supported
/// iptables version and backend prints it (checked against the printed
/// corpus, `tests/corpus/printed/`).
const CERTAIN_MATCHES: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "multiport",
    "state",
    "conntrack",
    "limit",
    "comment",
    "recent",
    "addrtype",
    "connlimit",
    "mark",
    "connmark",
    "iprange",
    "mac",
    "owner",
    "length",
    "ttl",
    "hl",
    "pkttype",
    "tcpmss",
    "cpu",
    "quota",
    "helper",
];

/// Is `rule`'s offline canonical form exactly what iptables-save prints
/// for it on every supported version and backend? False for anything that
/// depends on the host: names only the host resolves (users, groups),
/// modules rampart keeps opaque, spellings that differ between versions.
pub(crate) fn rule_certain(rule: &Rule) -> bool {
    if let Some(p) = &rule.proto {
        if !CERTAIN_PROTOS.contains(&p.value.as_str()) {
            return false;
        }
    }
    for (i, m) in rule.matches.iter().enumerate() {
        if !CERTAIN_MATCHES.contains(&m.name.as_str()) {
            return false;
        }
        // A module loaded twice (`-p tcp --dport 22 -m tcp --tcp-flags ...`)
        // is merged into one by some versions and not by others.
        if rule.matches[..i].iter().any(|x| x.name == m.name) {
            return false;
        }
        // Users and groups by name: only the host knows their numbers.
        if m.name == "owner"
            && m.opts.iter().any(|o| {
                matches!(o.name.as_str(), "--uid-owner" | "--gid-owner")
                    && !o.args.first().is_some_and(|a| owner_id_numeric(&a.text))
            })
        {
            return false;
        }
        // Service names rampart's table lacks: the host resolves them.
        let ports = matches!(m.name.as_str(), "tcp" | "udp" | "multiport" | "conntrack");
        if ports
            && m.opts.iter().any(|o| {
                o.name.ends_with("port") || o.name.ends_with("ports")
            } && !o.args.first().is_some_and(|a| port_numeric(&a.text)))
        {
            return false;
        }
        // The mask default is per family: unknown until the rule is placed.
        if m.name == "connlimit" && m.opt("--connlimit-mask").is_none() {
            return false;
        }
    }
    if let Some(t) = &rule.target {
        let certain_opts = CERTAIN_TARGET_OPTS
            .iter()
            .find(|(n, _)| *n == t.name)
            .map(|(_, o)| *o);
        if let Some(list) = certain_opts {
            if t.opts.iter().any(|o| !list.contains(&o.name.as_str())) {
                return false;
            }
        }
        let known = is_verdict(&t.name) || certain_opts.is_some();
        if !known && EXTENSION_TARGETS.contains(&t.name.as_str()) {
            return false;
        }
        if !known && !t.opts.is_empty() {
            return false;
        }
    }
    true
}

impl Rule {
    /// Whether this rule's canonical form is certain: exactly what
    /// `iptables-save` prints for it on every supported iptables (1.8.7,
    /// 1.8.9, 1.8.11; legacy and nf_tables). When every desired rule is
    /// certain, verification can compare with the offline form; otherwise
    /// only the host's own iptables can say how it prints the rule
    /// (docs/design.md, "Canonical form").
    pub fn canon_certain(&self) -> bool {
        rule_certain(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> Tok {
        Tok {
            text: s.into(),
            quoted: false,
            start: 0,
        }
    }

    #[test]
    fn rates_print_like_libxt_limit() {
        let r = |s: &str| rate(&tok(s)).map_err(|e| e.1);
        assert_eq!(r("5/min").as_deref(), Ok("5/min"));
        assert_eq!(r("5/minute").as_deref(), Ok("5/min"));
        assert_eq!(r("60/m").as_deref(), Ok("1/sec"));
        assert_eq!(r("3/hour").as_deref(), Ok("3/hour"));
        assert_eq!(r("10").as_deref(), Ok("10/sec"));
        assert_eq!(r("2/d").as_deref(), Ok("2/day"));
        assert!(r("0/s").is_err());
        assert!(r("5/fortnight").is_err());
    }

    #[test]
    fn states_in_kernel_order() {
        let s = |x: &str, c| ct_states(&tok(x), c).map_err(|e| e.1);
        assert_eq!(
            s("ESTABLISHED,RELATED", false).as_deref(),
            Ok("RELATED,ESTABLISHED")
        );
        assert_eq!(
            s("established,new,invalid", false).as_deref(),
            Ok("INVALID,NEW,ESTABLISHED")
        );
        assert!(s("DNAT", false).is_err());
        assert_eq!(s("DNAT,NEW", true).as_deref(), Ok("NEW,DNAT"));
    }

    #[test]
    fn tcp_flag_lists() {
        let f = |x: &str| tcp_flags(&tok(x)).map_err(|e| e.1);
        assert_eq!(f("ALL").as_deref(), Ok("FIN,SYN,RST,PSH,ACK,URG"));
        assert_eq!(f("NONE").as_deref(), Ok("NONE"));
        assert_eq!(f("ack,syn").as_deref(), Ok("SYN,ACK"));
        assert!(f("XMAS").is_err());
    }

    #[test]
    fn ports() {
        let p = |x: &str| port_range(&tok(x)).map_err(|e| e.1);
        assert_eq!(p("ssh").as_deref(), Ok("22"));
        assert_eq!(p("1024:").as_deref(), Ok("1024:65535"));
        assert_eq!(p(":1023").as_deref(), Ok("0:1023"));
        assert_eq!(p("80:80").as_deref(), Ok("80"));
        assert!(p("90:80").is_err());
        assert!(p("70000").is_err());
        let l = |x: &str| port_list(&tok(x)).map_err(|e| e.1);
        assert_eq!(l("http,https,8000:8100").as_deref(), Ok("80,443,8000:8100"));
        assert!(l("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16").is_err());
        assert!(l("80,,443").is_err());
    }
}
