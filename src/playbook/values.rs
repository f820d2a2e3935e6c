//! The scalar values of a playbook, each checked inside its own
//! `Deserialize` impl: that is what lets serde_norway put the position of
//! the offending node (not of the enclosing play) in front of the message.
//! The parsing itself lives in plain functions, tested without YAML.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::de::{self, Deserialize, MapAccess, Visitor};

use crate::firewall::{service_port, Allow, Boot, Cidr, Policy, PortRange, Proto, Rule, SERVICES};
use crate::inventory::pattern::{check_glob, Pattern};
use crate::inventory::yaml::FieldName;

fn port_number(t: &str) -> Result<u16, String> {
    match t.parse::<u64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is out of range (1-65535)")),
        Err(_) => Err(format!("invalid port '{t}'")),
    }
}

/// A port, a `lo:hi` range, or a service name of the seed's table.
pub fn parse_ports(text: &str) -> Result<PortRange, String> {
    let t = text.trim();
    if let Some((a, b)) = t.split_once(':') {
        let (lo, hi) = (port_number(a.trim())?, port_number(b.trim())?);
        if lo > hi {
            return Err(format!(
                "port range {lo}:{hi} is reversed (write {hi}:{lo})"
            ));
        }
        return Ok(PortRange { lo, hi });
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let p = port_number(t)?;
        return Ok(PortRange { lo: p, hi: p });
    }
    if let Some((a, b)) = t.split_once('-') {
        if a.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok() {
            return Err(format!(
                "'{t}': write a port range as lo:hi, as iptables does"
            ));
        }
    }
    match service_port(t) {
        Some(p) => Ok(PortRange { lo: p, hi: p }),
        None => {
            let known: Vec<&str> = SERVICES.iter().map(|(n, _)| *n).collect();
            Err(format!(
                "unknown service '{t}' (known: {}; or give a port number or lo:hi range)",
                known.join(", ")
            ))
        }
    }
}

/// A port number given as a YAML integer.
fn port_int(n: i128) -> Result<PortRange, String> {
    if (1..=65535).contains(&n) {
        Ok(PortRange {
            lo: n as u16,
            hi: n as u16,
        })
    } else {
        Err(format!("port {n} is out of range (1-65535)"))
    }
}

pub fn parse_proto(text: &str) -> Result<Proto, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        other => Err(format!("unknown protocol '{other}' (expected tcp or udp)")),
    }
}

/// An address or a network, in canonical form (no host bits set: iptables
/// would print the masked network, and the host would never look compliant).
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let t = text.trim();
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let ip: IpAddr = if addr.contains(':') {
        addr.parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("'{addr}' is not a valid IPv6 address"))?
    } else {
        addr.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| format!("'{addr}' is not a valid IPv4 address"))?
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) => {
            let n: u32 = p
                .parse()
                .map_err(|_| format!("'/{p}' is not a valid prefix length in '{t}'"))?;
            if n > max as u32 {
                let fam = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
                return Err(format!(
                    "prefix /{n} is too long for {fam} (at most /{max}) in '{t}'"
                ));
            }
            n as u8
        }
    };
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            if bits & !mask != 0 {
                let net = Ipv4Addr::from(bits & mask);
                return Err(format!("'{t}' has host bits set: write {net}/{len}"));
            }
            Ok(Cidr::V4(a, len))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            if bits & !mask != 0 {
                let net = Ipv6Addr::from(bits & mask);
                return Err(format!("'{t}' has host bits set: write {net}/{len}"));
            }
            Ok(Cidr::V6(a, len))
        }
    }
}

pub fn parse_policy(text: &str) -> Result<Policy, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "accept" => Ok(Policy::Accept),
        "drop" => Ok(Policy::Drop),
        other => Err(format!(
            "invalid policy '{other}' (expected accept or drop)"
        )),
    }
}

pub fn parse_boot(text: &str) -> Result<Boot, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "ensure" => Ok(Boot::Ensure),
        "warn" => Ok(Boot::Warn),
        other => Err(format!("invalid boot '{other}' (expected ensure or warn)")),
    }
}

/// Characters a shell would interpret. Raw rules never reach a shell (they
/// travel as iptables-restore input), but a rule containing them is a
/// mistake or an attack either way, so it is refused here with a position.
const SHELL_META: &[char] = &[';', '|', '&', '`', '$', '<', '>', '\\'];

/// Check and parse one raw rule (`-A CHAIN ...`, iptables-save syntax).
/// Returns the message and the 0-based character offset of the problem.
pub fn parse_rule(text: &str) -> Result<Rule, (usize, String)> {
    if let Some(i) = text.chars().position(|c| c == '\n' || c == '\r') {
        return Err((i, "a rule is one line".into()));
    }
    let mut quoted = false;
    for (i, c) in text.chars().enumerate() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && (SHELL_META.contains(&c) || c.is_control()) {
            return Err((
                i,
                format!("shell metacharacter {c:?} is not allowed in a rule"),
            ));
        }
    }
    Rule::parse(text).map_err(|e| (e.offset, e.message))
}

/// Check a `preserve` chain pattern: an iptables chain name (at most 28
/// characters) with optional glob characters.
pub fn parse_chain_pattern(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.chars().count() <= 28
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.*?[]!".contains(c));
    if !ok {
        return Err(format!(
            "invalid chain pattern '{text}' (a chain name of at most 28 letters, digits, _ - ., with * ? [..] globs)"
        ));
    }
    check_glob(text)?;
    Ok(text.to_string())
}

/// Where a play may persist rules: the trees init systems load firewall
/// rules from (`/etc/sysconfig/iptables`, `/etc/iptables/rules.v4`, ...)
/// and where packages keep state (`/var/lib/iptables/...`). rampart writes
/// the file as root and the facts step reads it in every run, audits
/// included, so anything else on the host is out of reach by construction.
pub const PERSIST_ROOTS: &[&str] = &["/etc/", "/var/lib/"];

/// Files under [`PERSIST_ROOTS`] that a play may never name: overwriting
/// one breaks logins, name resolution, boot or the package manager, and
/// reading one (an audit reads the persisted file to compare it) would
/// pull secrets into rampart's memory. A path is refused when it is one of
/// these, or lies under one that ends in `/`.
pub const PERSIST_FORBIDDEN: &[&str] = &[
    // Accounts, passwords and their backups.
    "/etc/passwd",
    "/etc/passwd-",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/group",
    "/etc/group-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/subuid",
    "/etc/subgid",
    "/etc/sudoers",
    "/etc/sudoers.d/",
    "/etc/doas.conf",
    "/etc/security/",
    "/etc/pam.d/",
    "/etc/login.defs",
    "/etc/shells",
    "/etc/securetty",
    "/etc/nsswitch.conf",
    // sshd and the host's identity: a lockout of another kind.
    "/etc/ssh/",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/machine-id",
    "/etc/os-release",
    // Boot and mounts.
    "/etc/fstab",
    "/etc/crypttab",
    "/etc/inittab",
    "/etc/default/grub",
    "/etc/modprobe.d/",
    "/etc/sysctl.conf",
    "/etc/sysctl.d/",
    "/etc/systemd/",
    "/etc/init.d/",
    "/etc/rc.local",
    "/etc/rc.d/",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d/",
    // Files some program runs as code: a rule comment must never become a command.
    "/etc/crontab",
    "/etc/cron.d/",
    "/etc/cron.hourly/",
    "/etc/cron.daily/",
    "/etc/cron.weekly/",
    "/etc/cron.monthly/",
    "/etc/profile",
    "/etc/profile.d/",
    "/etc/environment",
    "/etc/bash.bashrc",
    "/etc/bashrc",
    // Package managers' and rampart's own state.
    "/etc/apt/",
    "/etc/yum.repos.d/",
    "/var/lib/dpkg/",
    "/var/lib/rpm/",
    "/var/lib/apt/",
    "/var/lib/rampart/",
];

/// Check a remote persistence path (docs/design.md, "Persistence and
/// boot"): the absolute path of a regular file under [`PERSIST_ROOTS`],
/// spelled plainly (no `.` or `..` component, no `//`, no trailing `/`, no
/// whitespace or control character), and not one of the system files of
/// [`PERSIST_FORBIDDEN`]. Plain spelling is what makes the prefix checks
/// mean what they say: `/etc/iptables/../shadow` or `/etc//shadow` never
/// reach the host. Shell metacharacters stay allowed: every value is
/// quoted on its way to the host (`src/remote/shell.rs`).
pub fn parse_remote_path(text: &str) -> Result<PathBuf, String> {
    let shown = text.escape_debug();
    if !text.starts_with('/') {
        return Err(format!("'{shown}' must be an absolute file path"));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "'{shown}' contains whitespace or control characters"
        ));
    }
    if text.ends_with('/') {
        return Err(format!(
            "'{shown}' must be an absolute file path, not a directory (it ends with '/')"
        ));
    }
    if text.contains("//") {
        return Err(format!("'{shown}' must not contain '//'"));
    }
    if text.split('/').any(|s| s == ".." || s == ".") {
        return Err(format!("'{shown}' must not contain '.' or '..' components"));
    }
    if !PERSIST_ROOTS.iter().any(|r| text.starts_with(r)) {
        return Err(format!(
            "'{shown}' is outside {}: rampart persists rules only under these",
            PERSIST_ROOTS.join(" and ")
        ));
    }
    if let Some(f) = PERSIST_FORBIDDEN
        .iter()
        .find(|f| match f.strip_suffix('/') {
            Some(dir) => text.starts_with(*f) || text == dir,
            None => text == **f,
        })
    {
        return Err(format!(
            "'{shown}' is a system file rampart must never overwrite ({f}): persist the rules elsewhere, e.g. /etc/iptables/rules.v4"
        ));
    }
    Ok(PathBuf::from(text))
}

// ---------------------------------------------------------------------------
// Deserialize newtypes
// ---------------------------------------------------------------------------

/// Declares a newtype deserialized from a string (or number) through a parser.
macro_rules! from_text {
    ($(#[$m:meta])* $name:ident, $inner:ty, $expect:literal, $parse:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expect)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        let parse: fn(&str) -> Result<$inner, String> = $parse;
                        parse(v).map($name).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

from_text!(
    /// `proto:` of an allow entry.
    ProtoDoc, Proto, "tcp or udp", parse_proto
);
from_text!(
    /// `from:` of an allow entry.
    CidrDoc, Cidr, "an IPv4/IPv6 address or network", parse_cidr
);
from_text!(
    /// One policy value: accept or drop, any case.
    PolicyDoc, Policy, "accept or drop", parse_policy
);
from_text!(
    /// `boot: ensure | warn`.
    BootDoc, Boot, "ensure or warn", parse_boot
);
from_text!(
    /// One `preserve` pattern.
    ChainPatternDoc, String, "a chain name pattern", parse_chain_pattern
);
from_text!(
    /// A `persist` path on the host.
    RemotePathDoc, PathBuf, "an absolute path", parse_remote_path
);
from_text!(
    /// A play's `hosts:` pattern.
    HostsDoc, String, "a host pattern", |v| Pattern::parse(v).map(|_| v.to_string())
);
from_text!(
    /// One raw rule.
    RuleDoc, Rule, "an iptables-save rule line", |v| parse_rule(v)
        .map_err(|(off, msg)| format!("invalid rule: {msg} (at character {} of the rule)", off + 1))
);

/// A port given as a number, a `"lo:hi"` string, or a service name.
#[derive(Debug, Clone)]
pub struct PortsDoc(pub PortRange);

impl<'de> Deserialize<'de> for PortsDoc {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PortsDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number, a lo:hi range, or a service name")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortsDoc, E> {
                port_int(v as i128).map(PortsDoc).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortsDoc, E> {
                port_int(v as i128).map(PortsDoc).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortsDoc, E> {
                parse_ports(v).map(PortsDoc).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// One `allow` entry: `ssh`, `8080`, `"60000:61000"`, `"53/udp"`, or
/// `{port, proto, from}`. Hand-written rather than an untagged enum: serde's
/// untagged enums buffer the input and lose every position.
#[derive(Debug, Clone)]
pub struct AllowDoc(pub Allow);

const ALLOW_FIELDS: &[&str] = &["port", "proto", "from"];

impl<'de> Deserialize<'de> for AllowDoc {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AllowDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a service name, a port, a lo:hi range, or {port, proto, from}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AllowDoc, E> {
                PortsDoc::visit(port_int(v as i128))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AllowDoc, E> {
                PortsDoc::visit(port_int(v as i128))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AllowDoc, E> {
                let (ports, proto) = match v.rsplit_once('/') {
                    Some((p, pr)) => (p, parse_proto(pr).map_err(E::custom)?),
                    None => (v, Proto::Tcp),
                };
                let ports = parse_ports(ports).map_err(E::custom)?;
                Ok(AllowDoc(Allow {
                    ports,
                    proto,
                    from: None,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AllowDoc, A::Error> {
                let (mut port, mut proto, mut from) = (None, None, None);
                while let Some(key) = map.next_key_seed(FieldName(ALLOW_FIELDS))? {
                    match key {
                        "port" if port.is_none() => port = Some(map.next_value::<PortsDoc>()?.0),
                        "proto" if proto.is_none() => proto = Some(map.next_value::<ProtoDoc>()?.0),
                        "from" if from.is_none() => from = Some(map.next_value::<CidrDoc>()?.0),
                        dup => return Err(de::Error::duplicate_field(dup)),
                    }
                }
                let ports = port.ok_or_else(|| de::Error::missing_field("port"))?;
                Ok(AllowDoc(Allow {
                    ports,
                    proto: proto.unwrap_or(Proto::Tcp),
                    from,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

impl PortsDoc {
    fn visit<E: de::Error>(r: Result<PortRange, String>) -> Result<AllowDoc, E> {
        r.map(|ports| {
            AllowDoc(Allow {
                ports,
                proto: Proto::Tcp,
                from: None,
            })
        })
        .map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_services_ranges() {
        assert_eq!(parse_ports("ssh"), Ok(PortRange { lo: 22, hi: 22 }));
        assert_eq!(parse_ports("IMAPS"), Ok(PortRange { lo: 993, hi: 993 }));
        assert_eq!(parse_ports("8080"), Ok(PortRange { lo: 8080, hi: 8080 }));
        assert_eq!(
            parse_ports("60000:61000"),
            Ok(PortRange {
                lo: 60000,
                hi: 61000
            })
        );
        assert!(parse_ports("0").expect_err("0").contains("out of range"));
        assert!(parse_ports("65536")
            .expect_err("big")
            .contains("out of range"));
        assert!(parse_ports("61000:60000")
            .expect_err("rev")
            .contains("reversed"));
        assert!(parse_ports("60000-61000")
            .expect_err("dash")
            .contains("lo:hi"));
        assert!(parse_ports("htp")
            .expect_err("svc")
            .contains("unknown service 'htp'"));
        assert_eq!(SERVICES.len(), 9);
        assert_eq!(service_port("pop3s"), Some(995));
        assert_eq!(service_port("smtps"), Some(465));
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("198.51.100.0/24"),
            Ok(Cidr::V4(Ipv4Addr::new(198, 51, 100, 0), 24))
        );
        assert_eq!(
            parse_cidr("192.0.2.7"),
            Ok(Cidr::V4(Ipv4Addr::new(192, 0, 2, 7), 32))
        );
        assert!(matches!(parse_cidr("2001:db8::/32"), Ok(Cidr::V6(_, 32))));
        assert!(parse_cidr("300.1.1.0/24")
            .expect_err("bad")
            .contains("not a valid IPv4"));
        assert!(parse_cidr("10.0.0.0/33")
            .expect_err("long")
            .contains("/33 is too long"));
        assert!(parse_cidr("2001:db8::/129")
            .expect_err("long6")
            .contains("at most /128"));
        assert!(parse_cidr("10.0.0.1/8")
            .expect_err("host bits")
            .contains("write 10.0.0.0/8"));
        assert!(parse_cidr("10.0.0.0/x").is_err());
        assert!(parse_cidr("0.0.0.0/0").is_ok());
    }

    #[test]
    fn policies_protos_paths_chains() {
        assert_eq!(parse_policy("DROP"), Ok(Policy::Drop));
        assert_eq!(parse_policy("Accept"), Ok(Policy::Accept));
        assert!(parse_policy("reject").is_err());
        assert_eq!(parse_proto("UDP"), Ok(Proto::Udp));
        assert!(parse_proto("icmp").is_err());
        assert!(parse_remote_path("/etc/iptables.rules").is_ok());
        assert!(parse_remote_path("rules").is_err());
        assert!(parse_remote_path("/etc/../x").is_err());
        assert!(parse_chain_pattern("DOCKER*").is_ok());
        assert!(parse_chain_pattern("bad chain").is_err());
        assert!(parse_chain_pattern("X[").is_err());
    }

    /// An audit reads the persisted file, an apply overwrites it as root:
    /// only plain paths of files under /etc/ and /var/lib/, and never a
    /// system file.
    #[test]
    fn persist_paths_are_plain_files_under_etc_or_var_lib() {
        for ok in [
            "/etc/sysconfig/iptables",
            "/etc/iptables/rules.v6",
            "/var/lib/iptables/rules-save",
            "/etc/rp4$(touch${IFS}x)`y`;z'\"|w",
            "/etc/hosts.allow",
            "/etc/sshd_rules",
        ] {
            assert!(parse_remote_path(ok).is_ok(), "{ok}");
        }
        let refused = |p: &str, why: &str| {
            let e = parse_remote_path(p).expect_err(p);
            assert!(e.contains(why), "{p}: {e}");
        };
        refused("etc/iptables", "absolute");
        refused("./rules", "absolute");
        refused("/etc/iptables/", "not a directory");
        refused("/etc/", "not a directory");
        refused("/etc//shadow", "'//'");
        refused("/etc/iptables/../shadow", "'..'");
        refused("/etc/./shadow", "'.'");
        refused("/etc/..", "'..'");
        refused("/tmp/rules", "outside /etc/ and /var/lib/");
        refused("/root/.ssh/authorized_keys", "outside");
        refused("/var/lib", "outside");
        refused("/etcetera/x", "outside");
        refused("/etc/x y", "whitespace");
        refused("/etc/x\u{1b}[2J", "control");
        for system in [
            "/etc/shadow",
            "/etc/passwd",
            "/etc/group",
            "/etc/gshadow",
            "/etc/sudoers",
            "/etc/sudoers.d/rampart",
            "/etc/ssh/sshd_config",
            "/etc/ssh/sshd_config.d/x.conf",
            "/etc/fstab",
            "/etc/hosts",
            "/etc/crontab",
            "/etc/cron.d/x",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/etc/profile.d/x.sh",
            "/var/lib/dpkg/status",
            "/var/lib/rampart/backup.v4",
        ] {
            refused(system, "system file");
        }
    }

    #[test]
    fn shell_metacharacters_are_refused_before_parsing() {
        let (off, msg) = parse_rule("-A INPUT -j ACCEPT; rm -rf /").expect_err("meta");
        assert_eq!(off, 18);
        assert!(msg.contains("';'"), "{msg}");
        let (off, _) = parse_rule("-A INPUT -j ACCEPT $(reboot)").expect_err("meta");
        assert_eq!(off, 19);
        let (off, msg) = parse_rule("-A INPUT\n-j DROP").expect_err("two lines");
        assert_eq!((off, msg.as_str()), (8, "a rule is one line"));
    }
}
