//! Port and protocol names.
//!
//! [`SERVICES`] is the seed's table (the how-to's list of ports a VPS
//! typically opens); playbooks resolve `allow: [http, ...]` through
//! [`service_port`]. Rule parsing accepts a few more well-known names because
//! iptables itself resolves them through `/etc/services`, and `iptables-save`
//! always prints numbers, so a raw rule written with a name must be turned
//! into the number the host will print back.

/// The seed's service table, in the seed's order.
pub const SERVICES: &[(&str, u16)] = &[
    ("http", 80),
    ("https", 443),
    ("smtp", 25),
    ("smtps", 465),
    ("pop3", 110),
    ("pop3s", 995),
    ("imap", 143),
    ("imaps", 993),
    ("ssh", 22),
];

/// Extra names iptables resolves from a stock `/etc/services`; accepted in
/// raw rules only (playbook `allow` entries use the seed's table).
const EXTRA_SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("telnet", 23),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("ntp", 123),
    ("snmp", 161),
    ("ldap", 389),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("openvpn", 1194),
    ("mysql", 3306),
    ("postgresql", 5432),
    ("http-alt", 8080),
];

/// The port of one of the seed's service names (case-insensitive).
pub fn service_port(name: &str) -> Option<u16> {
    SERVICES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, p)| p)
}

/// A port as iptables accepts it: a number or a known service name.
pub(crate) fn port_number(text: &str) -> Option<u16> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u16>().ok();
    }
    service_port(text).or_else(|| {
        EXTRA_SERVICES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(text))
            .map(|&(_, p)| p)
    })
}

/// Protocol names as iptables-save prints them, by number. `icmpv6` is an
/// input alias of `ipv6-icmp` (what ip6tables-save prints for 58).
pub(crate) const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("udp", 17),
    ("dccp", 33),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("ipip", 94),
    ("ipcomp", 108),
    ("pim", 103),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("mh", 135),
    ("udplite", 136),
];

/// Canonical spelling of a `-p` value, or None when it is not a protocol.
/// `all` (and 0) canonicalize to `all`, which the caller drops because
/// iptables-save never prints `-p all`.
pub(crate) fn canonical_proto(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if lower == "all" || lower == "0" {
        return Some("all".to_string());
    }
    if lower == "icmpv6" {
        return Some("ipv6-icmp".to_string());
    }
    if !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()) {
        let n: u8 = lower.parse().ok()?;
        return Some(match PROTOCOLS.iter().find(|(_, num)| *num == n) {
            Some((name, _)) => (*name).to_string(),
            None => n.to_string(),
        });
    }
    PROTOCOLS
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(name, _)| (*name).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_table() {
        assert_eq!(service_port("http"), Some(80));
        assert_eq!(service_port("HTTPS"), Some(443));
        assert_eq!(service_port("imaps"), Some(993));
        assert_eq!(service_port("ssh"), Some(22));
        assert_eq!(service_port("domain"), None, "not in the seed's table");
        assert_eq!(port_number("domain"), Some(53));
        assert_eq!(port_number("65535"), Some(65535));
        assert_eq!(port_number("65536"), None);
        assert_eq!(port_number("nope"), None);
    }

    #[test]
    fn protocols() {
        assert_eq!(canonical_proto("TCP").as_deref(), Some("tcp"));
        assert_eq!(canonical_proto("6").as_deref(), Some("tcp"));
        assert_eq!(canonical_proto("icmpv6").as_deref(), Some("ipv6-icmp"));
        assert_eq!(canonical_proto("58").as_deref(), Some("ipv6-icmp"));
        assert_eq!(canonical_proto("253").as_deref(), Some("253"));
        assert_eq!(canonical_proto("bogus"), None);
    }
}
