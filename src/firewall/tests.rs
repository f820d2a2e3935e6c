//! Golden and table tests of the firewall core.
//!
//! Goldens live in `tests/golden/` and are compiled in with `include_str!`,
//! so these run as unit tests (the integration test binary is shared with
//! layers that need a network). The seed's saved file and listing are the
//! first goldens; the others are hand-written dumps in the exact shape
//! iptables-save prints for a Docker host, a fail2ban host and a busy
//! hand-made ruleset.

use super::*;

const SEED_SAVE: &str = include_str!("../../tests/golden/seed-iptables-save.txt");
const SEED_LIST: &str = include_str!("../../tests/golden/seed-iptables-L.txt");
const SEED_V4: &str = include_str!("../../tests/golden/seed-baseline-v4.rules");
const SEED_V6: &str = include_str!("../../tests/golden/seed-baseline-v6.rules");

fn port(p: u16) -> Allow {
    Allow {
        ports: PortRange { lo: p, hi: p },
        proto: Proto::Tcp,
        from: None,
    }
}

/// The SPEC §1 spec: baseline, allow [http, https, ssh], default policies.
fn seed_spec() -> FirewallSpec {
    FirewallSpec {
        allow: ["http", "https", "ssh"]
            .iter()
            .filter_map(|s| service_port(s))
            .map(port)
            .collect(),
        ..FirewallSpec::default()
    }
}

#[allow(dead_code)] // used by the dump goldens
fn lines(rs: &Ruleset, table: &str) -> Vec<String> {
    rs.table(table)
        .map(|t| {
            t.chains_in_save_order()
                .iter()
                .flat_map(|c| c.rules.iter().map(|r| r.to_line()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `-A` lines of one table of a dump, exactly as written.
#[allow(dead_code)] // used by the dump goldens
fn dump_lines(text: &str, table: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(t) = l.strip_prefix('*') {
            inside = t == table;
        } else if inside && l.starts_with("-A ") {
            out.push(l.to_string());
        }
    }
    out
}

fn parse_ok(text: &str, family: Family) -> Ruleset {
    match parse_save(text, family) {
        Ok(rs) => rs,
        Err(e) => panic!("golden does not parse: {e}"),
    }
}

#[test]
fn golden_seed_render_v4() {
    assert_eq!(render(&desired(&seed_spec(), Family::V4)), SEED_V4);
}

#[test]
fn golden_seed_render_v6() {
    assert_eq!(render(&desired(&seed_spec(), Family::V6)), SEED_V6);
}

#[test]
fn golden_seed_save_equals_desired() {
    let live = parse_ok(SEED_SAVE, Family::V4);
    let want = desired(&seed_spec(), Family::V4);
    let d = diff(&want, &live);
    assert!(d.is_empty(), "{d}");
    assert_eq!(render(&live), SEED_V4);
    // Counters on chain lines are read and dropped.
    assert_eq!(live.table("filter").map(|t| t.chains.len()), Some(3));
}

#[test]
fn golden_seed_listing() {
    let l = match parse_list(SEED_LIST) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(l.rule_counts().get("INPUT"), Some(&9));
    assert_eq!(l.rule_counts().get("FORWARD"), Some(&0));
    assert_eq!(l.rule_counts().get("OUTPUT"), Some(&0));
    assert_eq!(l.policy("INPUT"), Some("DROP"));
    assert_eq!(l.policy("FORWARD"), Some("ACCEPT"));
    assert_eq!(l.policy("OUTPUT"), Some("ACCEPT"));
    let input = l.chain("INPUT").map(|c| c.rows.clone()).unwrap_or_default();
    assert_eq!(input[0].target, "ACCEPT");
    assert_eq!(input[0].prot, "all");
    assert_eq!(input[0].source, "anywhere");
    assert_eq!(input[0].rest, "state RELATED,ESTABLISHED");
    assert_eq!(input[8].rest, "tcp dpt:ssh");
    assert_eq!(input[4].rest, "");
    assert_eq!(
        listing_matches(&l, &desired(&seed_spec(), Family::V4)),
        Ok(())
    );
    // And it notices a listing of other rules.
    let mut other = seed_spec();
    other.allow.pop();
    assert!(listing_matches(&l, &desired(&other, Family::V4)).is_err());
    other.policy.input = Policy::Accept;
    let e = listing_matches(&l, &desired(&other, Family::V4)).expect_err("INPUT ACCEPT is not DROP");
    assert!(e.contains("policy"), "{e}");
}

#[test]
fn empty_save_is_no_tables_and_kernel_default() {
    let live = parse_ok("", Family::V4);
    assert!(live.tables.is_empty());
    let d = diff(&desired(&seed_spec(), Family::V4), &live);
    assert_eq!(d.lines[0], "~ policy INPUT ACCEPT -> DROP");
    assert_eq!(d.lines.len(), 1 + 9);
    assert!(d.lines[1..].iter().all(|l| l.starts_with("+ -A INPUT ")));
    let kernel_default = Ruleset {
        family: Family::V4,
        tables: vec![Table::default_filter()],
    };
    assert!(diff(&kernel_default, &live).is_empty());
}

fn canon(line: &str) -> String {
    match Rule::parse(line) {
        Ok(r) => r.to_line(),
        Err(e) => panic!("{line}: {e}"),
    }
}

#[test]
fn canonical_forms_match_iptables_save() {
    let cases = [
        (
            "-A INPUT -p tcp --tcp-flags ALL NONE -j DROP",
            "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP",
        ),
        (
            "-A INPUT -p tcp ! --syn -m state --state NEW -j DROP",
            "-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW -j DROP",
        ),
        (
            "-A INPUT -p tcp --tcp-flags ALL ALL -j DROP",
            "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,SYN,RST,PSH,ACK,URG -j DROP",
        ),
        (
            "-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT",
            "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp --dport 80 -j ACCEPT",
            "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp -m tcp --dport ssh -j ACCEPT",
            "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
        ),
        (
            "-A INPUT -s 198.51.100.7 -j ACCEPT",
            "-A INPUT -s 198.51.100.7/32 -j ACCEPT",
        ),
        (
            "-A INPUT -s 2001:db8::1 -j ACCEPT",
            "-A INPUT -s 2001:db8::1/128 -j ACCEPT",
        ),
        (
            "-A INPUT -s 10.1.2.3/8 -j ACCEPT",
            "-A INPUT -s 10.0.0.0/8 -j ACCEPT",
        ),
        ("-A INPUT -p icmpv6 -j ACCEPT", "-A INPUT -p ipv6-icmp -j ACCEPT"),
        ("-A INPUT -p ipv6-icmp -j ACCEPT", "-A INPUT -p ipv6-icmp -j ACCEPT"),
        (
            "-A INPUT -p tcp -m comment --comment \"mail ports\" -m multiport --dports 25,465 -j ACCEPT",
            "-A INPUT -p tcp -m comment --comment \"mail ports\" -m multiport --dports 25,465 -j ACCEPT",
        ),
        (
            "-A INPUT -m comment --comment \"ssh\" -j ACCEPT",
            "-A INPUT -m comment --comment ssh -j ACCEPT",
        ),
        (
            "-A INPUT -j LOG --log-prefix \"drop: \"",
            "-A INPUT -j LOG --log-prefix \"drop: \"",
        ),
        (
            "-A INPUT -j LOG --log-level warning --log-prefix x",
            "-A INPUT -j LOG --log-prefix x",
        ),
        (
            "-A INPUT -j LOG --log-prefix \"say \\\"hi\\\" \" --log-level info",
            "-A INPUT -j LOG --log-prefix \"say \\\"hi\\\" \" --log-level 6",
        ),
        (
            "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
            "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
        ),
        (
            "-A INPUT -j ACCEPT -p tcp -i eth0 -s 192.0.2.0/24 --dport 443",
            "-A INPUT -s 192.0.2.0/24 -i eth0 -p tcp -m tcp --dport 443 -j ACCEPT",
        ),
        (
            "-A INPUT -p udp --dport 60000:61000 -j ACCEPT",
            "-A INPUT -p udp -m udp --dport 60000:61000 -j ACCEPT",
        ),
        (
            "-A INPUT -p 6 --dport 1024: --sport :1023 -j ACCEPT",
            "-A INPUT -p tcp -m tcp --sport 0:1023 --dport 1024:65535 -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp -m limit --limit 6/minute --limit-burst 5 -j ACCEPT",
            "-A INPUT -p tcp -m limit --limit 6/min -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp -m conntrack --ctstate ESTABLISHED,NEW -j ACCEPT",
            "-A INPUT -p tcp -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT",
        ),
        (
            "-A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
            "-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT",
        ),
        (
            "-A INPUT -p ipv6-icmp --icmpv6-type neighbor-solicitation -j ACCEPT",
            "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
        ),
        (
            "-A INPUT -p all -s 0.0.0.0/0 -j ACCEPT",
            "-A INPUT -s 0.0.0.0/0 -j ACCEPT",
        ),
        (
            "-A INPUT ! -s 10.0.0.0/8 ! -i eth+ -p tcp ! --dport 22 -j DROP",
            "-A INPUT ! -s 10.0.0.0/8 ! -i eth+ -p tcp -m tcp ! --dport 22 -j DROP",
        ),
        (
            "-A INPUT -p tcp --dport 22 -m recent --name SSH --set",
            "-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name SSH --rsource",
        ),
        ("-A INPUT -s 192.0.2.1 -j REJECT", "-A INPUT -s 192.0.2.1/32 -j REJECT --reject-with icmp-port-unreachable"),
        ("-A INPUT -s 2001:db8::/32 -j REJECT", "-A INPUT -s 2001:db8::/32 -j REJECT --reject-with icmp6-port-unreachable"),
        ("-A INPUT -f -j DROP", "-A INPUT -f -j DROP"),
        ("-A INPUT -g f2b-sshd", "-A INPUT -g f2b-sshd"),
        ("-A INPUT  -i lo   -j ACCEPT ", "-A INPUT -i lo -j ACCEPT"),
    ];
    for (input, want) in cases {
        assert_eq!(canon(input), want, "input: {input}");
        // Canonical is a fixed point.
        assert_eq!(canon(want), want, "input: {want}");
    }
}

#[test]
fn family_dependent_defaults() {
    let r = match Rule::parse("-A INPUT -p tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH --rsource -j DROP") {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.family(), None);
    assert_eq!(
        r.for_family(Family::V4).to_line(),
        "-A INPUT -p tcp -m tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP"
    );
    assert_eq!(
        r.for_family(Family::V6).to_line(),
        "-A INPUT -p tcp -m tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j DROP"
    );
    let r = match Rule::parse("-A INPUT -p tcp -j REJECT") {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        r.for_family(Family::V6).to_line(),
        "-A INPUT -p tcp -j REJECT --reject-with icmp6-port-unreachable"
    );
    // desired() applies it to raw rules.
    let spec = FirewallSpec {
        baseline: false,
        rules: vec![r],
        ..FirewallSpec::default()
    };
    assert!(render(&desired(&spec, Family::V4))
        .contains("-A INPUT -p tcp -j REJECT --reject-with icmp-port-unreachable\n"));
}

#[test]
fn rule_families() {
    let fam = |l: &str| Rule::parse(l).map(|r| r.family()).ok().flatten();
    assert_eq!(fam("-A INPUT -s 192.0.2.1 -j ACCEPT"), Some(Family::V4));
    assert_eq!(fam("-A INPUT -p icmp -j ACCEPT"), Some(Family::V4));
    assert_eq!(fam("-A INPUT -d 2001:db8::1 -j ACCEPT"), Some(Family::V6));
    assert_eq!(fam("-A INPUT -p icmpv6 -j ACCEPT"), Some(Family::V6));
    assert_eq!(fam("-A INPUT -p ipv6-icmp -j ACCEPT"), Some(Family::V6));
    assert_eq!(fam("-A INPUT -p tcp --dport 22 -j ACCEPT"), None);
    assert_eq!(
        fam("-A INPUT -p tcp -j REJECT --reject-with icmp6-adm-prohibited"),
        Some(Family::V6)
    );
}

#[test]
fn rule_errors_carry_offsets() {
    let err = |l: &str| match Rule::parse(l) {
        Ok(r) => panic!("{l} parsed as {r}"),
        Err(e) => (e.offset, e.message),
    };
    let cases: &[(&str, usize)] = &[
        ("-A INPUT -j ACCEPT; rm -rf /", 18),
        ("-A INPUT -p tcp --dport $(id) -j ACCEPT", 24),
        ("-A INPUT -j ACCEPT | tee", 19),
        ("-A INPUT -j ACCEPT && x", 19),
        ("-A INPUT -m comment --comment `x` -j ACCEPT", 30),
        ("-A INPUT -s 1.2.3.4 > /tmp/x", 20),
        ("-A INPUT -j ACC\\EPT", 15),
        ("-A INPUT -m comment --comment 'a b' -j ACCEPT", 30),
        ("-A INPUT -m comment --comment \"open", 30),
        ("-I INPUT -j ACCEPT", 0),
        ("INPUT -j ACCEPT", 0),
        ("", 0),
        ("-A", 2),
        ("-A INPUT -p tcp --dport", 23),
        ("-A INPUT -s", 11),
        ("-A INPUT -p tcp --dport 70000 -j ACCEPT", 24),
        ("-A INPUT -p tcp --dport nosuch -j ACCEPT", 24),
        ("-A INPUT -p tcp --dport 90:80 -j ACCEPT", 24),
        ("-A INPUT -s 300.1.1.1 -j ACCEPT", 12),
        ("-A INPUT -s example.com -j ACCEPT", 12),
        ("-A INPUT -s 10.0.0.0/40 -j ACCEPT", 12),
        ("-A INPUT --dport 22 -j ACCEPT", 9),
        ("-A INPUT -p tcp --bogus -j ACCEPT", 16),
        ("-A INPUT -m state --state NEWISH -j ACCEPT", 26),
        ("-A INPUT -m state --stat NEW -j ACCEPT", 18),
        ("-A INPUT -j ACCEPT stray", 19),
        ("-A INPUT ! -j ACCEPT", 9),
        ("-A INPUT -p nosuchproto -j ACCEPT", 12),
        ("-A INPUT -s 192.0.2.1 -d 2001:db8::1 -j ACCEPT", 0),
        ("-A INPUT -m multiport --dports 80 -j ACCEPT", 0),
        (
            "-A INPUT -j LOG --log-prefix \"this prefix is much too long!!\"",
            29,
        ),
        ("-A INPUT -p tcp -m recent --set foo", 32),
    ];
    for (line, offset) in cases {
        let (o, m) = err(line);
        assert_eq!(o, *offset, "{line}: {m}");
    }
}

#[test]
fn quoted_values_are_allowed_metacharacters_and_all() {
    let r = canon("-A INPUT -m comment --comment \"a; b | c & $d (e) {f} <g>\" -j ACCEPT");
    assert_eq!(
        r,
        "-A INPUT -m comment --comment \"a; b | c & $d (e) {f} <g>\" -j ACCEPT"
    );
    // iptables-save escapes ' as well as " and \.
    let r = canon("-A INPUT -m comment --comment \"it's \\\\ok\" -j ACCEPT");
    assert_eq!(
        r,
        "-A INPUT -m comment --comment \"it\\'s \\\\ok\" -j ACCEPT"
    );
}
