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
const DOCKER_V4: &str = include_str!("../../tests/golden/docker-host.v4.save");
const F2B_V4: &str = include_str!("../../tests/golden/fail2ban-host.v4.save");
const F2B_V6: &str = include_str!("../../tests/golden/fail2ban-host.v6.save");
const F2B_V4_LIST: &str = include_str!("../../tests/golden/fail2ban-host.v4.list-nv");
const HANDMADE_V4: &str = include_str!("../../tests/golden/handmade.v4.save");
const HANDMADE_V6: &str = include_str!("../../tests/golden/handmade.v6.save");

/// Every golden dump with its family.
const DUMPS: &[(&str, &str, Family)] = &[
    ("seed", SEED_SAVE, Family::V4),
    ("docker v4", DOCKER_V4, Family::V4),
    ("fail2ban v4", F2B_V4, Family::V4),
    ("fail2ban v6", F2B_V6, Family::V6),
    ("handmade v4", HANDMADE_V4, Family::V4),
    ("handmade v6", HANDMADE_V6, Family::V6),
];

fn port(p: u16) -> Allow {
    Allow {
        ports: PortRange { lo: p, hi: p },
        proto: Proto::Tcp,
        from: None,
    }
}

/// The seed's firewall: baseline, allow [http, https, ssh], default policies.
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
fn render_notes_rules_a_host_may_print_differently() {
    // The seed's baseline is certain: no note, the seed's file exactly.
    for (f, golden) in [(Family::V4, SEED_V4), (Family::V6, SEED_V6)] {
        let want = desired(&seed_spec(), f);
        assert_eq!(uncertain_note(&want), None);
        assert_eq!(render_noted(&want), golden);
    }
    let mut spec = seed_spec();
    spec.rules = [
        "-A OUTPUT -m owner --uid-owner root -j ACCEPT",
        "-A INPUT -p tcp --syn --dport 22 -m connlimit --connlimit-above 3 -j REJECT",
        "-A INPUT -p gre -j ACCEPT",
    ]
    .iter()
    .map(|l| Rule::parse(l).unwrap_or_else(|e| panic!("{e}")))
    .collect();
    let text = render_noted(&desired(&spec, Family::V4));
    let (note, rest) = text.split_once('\n').unwrap_or_default();
    assert_eq!(
        note,
        "# rampart: 2 rules may be printed differently by the host's iptables, which decides their final form: -A INPUT -p gre -j ACCEPT; -A OUTPUT -m owner --uid-owner root -j ACCEPT"
    );
    assert_eq!(rest, render(&desired(&spec, Family::V4)));
    assert!(rest.contains(
        "--connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with icmp-port-unreachable"
    ));
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
    let e =
        listing_matches(&l, &desired(&other, Family::V4)).expect_err("INPUT ACCEPT is not DROP");
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
        (
            "-A INPUT -p tcp -m state --state NEW --dport 22 -j ACCEPT",
            "-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT",
        ),
        (
            "-A INPUT -m limit -j LOG",
            "-A INPUT -m limit --limit 3/hour -j LOG",
        ),
        (
            "-A DOCKER ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
            "-A DOCKER ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp -m multiport --destination-ports http,https -j f2b-sshd",
            "-A INPUT -p tcp -m multiport --dports 80,443 -j f2b-sshd",
        ),
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
        ("-A INPUT -p tcp --dport 22x -j ACCEPT", 24),
        ("-A INPUT -p tcp --dport ssh:22:23 -j ACCEPT", 24),
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

/// A playbook's rule may quote shell metacharacters, never control
/// characters (an ESC in a comment would reach every terminal showing the
/// rules); a host's dump is read as printed, and shown escaped.
#[test]
fn control_characters_are_refused_even_quoted() {
    let err = |l: &str| match Rule::parse(l) {
        Ok(r) => panic!("{l} parsed as {r}"),
        Err(e) => (e.offset, e.message),
    };
    let (o, m) = err("-A INPUT -m comment --comment \"red \u{1b}[31m\" -j ACCEPT");
    assert_eq!(o, 35, "{m}");
    assert!(m.contains("control character"), "{m}");
    assert!(err("-A INPUT -m comment --comment \"a\tb\" -j ACCEPT")
        .1
        .contains("control"));
    assert!(err("-A INPUT -m comment --comment \"a\rb\" -j ACCEPT")
        .1
        .contains("line break"));
    // A host's comment may hold any of them, a carriage return included:
    // its dump still parses, and renders back exactly.
    let dump = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"red \u{1b}[31m\r\u{9b}x\" -j ACCEPT\nCOMMIT\n";
    let live = parse_save(dump, Family::V4).unwrap_or_else(|e| panic!("{e}"));
    let rules = &live.filter_or_default().chains[0].rules;
    assert_eq!(rules.len(), 1);
    assert!(render(&live).contains(&rules[0].to_line()));
    assert_eq!(
        rules[0].to_line(),
        "-A INPUT -m comment --comment \"red \u{1b}[31m\r\u{9b}x\" -j ACCEPT"
    );
}

/// The block of one table exactly as iptables-save printed it, counters
/// zeroed: what `render_table` must reproduce.
fn dump_block(text: &str, table: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in text.lines() {
        if l.strip_prefix('*') == Some(table) {
            inside = true;
        }
        if inside && !l.starts_with('#') {
            if let Some(rest) = l.strip_prefix(':') {
                let (head, _) = rest.rsplit_once(' ').unwrap_or((rest, ""));
                out.push_str(&format!(":{head} [0:0]\n"));
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        if inside && l == "COMMIT" {
            break;
        }
    }
    out
}

#[test]
fn golden_dumps_round_trip_exactly() {
    for (name, text, family) in DUMPS {
        let rs = parse_ok(text, *family);
        assert!(!rs.tables.is_empty(), "{name}");
        for t in &rs.tables {
            assert_eq!(
                lines(&rs, &t.name),
                dump_lines(text, &t.name),
                "{name}: table {}",
                t.name
            );
            assert_eq!(
                render_table(t),
                dump_block(text, &t.name),
                "{name}: table {}",
                t.name
            );
        }
        // Each rule line also parses alone (lenient dumps are not the only
        // way in: engine code may re-parse single lines).
        for l in dump_lines(text, "filter") {
            let r = Rule::parse(&l).map(|r| r.for_family(*family).to_line());
            assert_eq!(r.as_ref(), Ok(&l), "{name}");
        }
        // Parsing is idempotent through render.
        let again = parse_ok(&render(&rs), *family);
        assert!(diff(&rs, &again).is_empty(), "{name}");
    }
}

#[test]
fn golden_handmade_is_structured() {
    let rs = parse_ok(HANDMADE_V4, Family::V4);
    assert_eq!(
        rs.tables
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["raw", "mangle", "filter"]
    );
    let f = rs.filter_or_default();
    let input = f
        .chain("INPUT")
        .map(|c| c.rules.clone())
        .unwrap_or_default();
    let brute = &input[4];
    assert_eq!(brute.target_name(), Some("SSH-BRUTE"));
    assert!(brute.source().is_some_and(|s| s.negated));
    let set = input
        .iter()
        .find(|r| r.matches().iter().any(|m| m.name == "set"))
        .map(|r| r.matches()[0].opts[0].args.len());
    assert_eq!(set, Some(2), "opaque options keep all their arguments");
    let goto = f
        .chain("web-in")
        .and_then(|c| c.rules.last())
        .and_then(|r| r.target().cloned());
    assert!(goto.is_some_and(|t| t.goto && t.name == "LOGDROP"));
    assert_eq!(
        f.chain("LOGDROP").map(|c| c.policy),
        Some(None),
        "user chains have no policy"
    );
}

#[test]
fn golden_docker_preserved() {
    let live = parse_ok(DOCKER_V4, Family::V4);
    let patterns: Vec<String> = DEFAULT_PRESERVE.iter().map(|s| s.to_string()).collect();
    let want = with_preserved(&desired(&seed_spec(), Family::V4), &live, &patterns);
    let wf = want.filter_or_default();
    let lf = live.filter_or_default();
    for chain in [
        "DOCKER",
        "DOCKER-ISOLATION-STAGE-1",
        "DOCKER-ISOLATION-STAGE-2",
        "DOCKER-USER",
    ] {
        assert_eq!(wf.chain(chain), lf.chain(chain), "{chain} kept exactly");
    }
    let forward: Vec<String> = wf
        .chain("FORWARD")
        .map(|c| c.rules.iter().map(|r| r.to_line()).collect())
        .unwrap_or_default();
    assert_eq!(
        forward,
        [
            "-A FORWARD -j DOCKER-USER",
            "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
            "-A FORWARD -o br-5f2a9c1e7d3b -j DOCKER",
            "-A FORWARD -o docker0 -j DOCKER",
        ]
    );
    // rampart's own: the playbook's policies, the baseline in INPUT.
    assert_eq!(
        wf.chain("FORWARD").and_then(|c| c.policy),
        Some(Policy::Accept)
    );
    assert_eq!(wf.chain("INPUT").map(|c| c.rules.len()), Some(9));
    // The nat table is not rampart's: render names only *filter.
    let text = render(&want);
    assert!(text.starts_with("*filter\n") && !text.contains("*nat"));
    assert!(text.contains(":DOCKER-ISOLATION-STAGE-1 - [0:0]\n"));

    // "Apply": the host now prints its untouched nat table and our filter.
    let nat = dump_block(DOCKER_V4, "nat");
    let after =
        format!("# Generated by iptables-save v1.8.9 (nf_tables)\n{nat}{text}# Completed\n");
    let after = parse_ok(&after, Family::V4);
    let d = diff(&want, &after);
    assert!(d.is_empty(), "{d}");
    assert_eq!(after.table("nat"), live.table("nat"));
    // Converging again keeps everything as it is (second run is ok).
    let again = with_preserved(&desired(&seed_spec(), Family::V4), &after, &patterns);
    assert_eq!(again, want);

    // Before applying, the diff says what will change, readably.
    let before = diff(&want, &live);
    assert!(before
        .lines
        .contains(&"~ policy INPUT ACCEPT -> DROP".to_string()));
    assert!(before
        .lines
        .contains(&"~ policy FORWARD DROP -> ACCEPT".to_string()));
    assert!(before
        .lines
        .contains(&"- -A FORWARD -i docker0 -o docker0 -j ACCEPT".to_string()));
    assert!(!before.lines.iter().any(|l| l.contains("DOCKER-USER")));
}

#[test]
fn golden_fail2ban_is_already_compliant() {
    let patterns: Vec<String> = DEFAULT_PRESERVE.iter().map(|s| s.to_string()).collect();
    let mut spec = seed_spec();
    spec.allow = [22, 25, 465].into_iter().map(port).collect();
    for (text, family, jumps) in [(F2B_V4, Family::V4, 2), (F2B_V6, Family::V6, 1)] {
        let live = parse_ok(text, family);
        let want = with_preserved(&desired(&spec, family), &live, &patterns);
        let d = diff(&want, &live);
        assert!(d.is_empty(), "{family:?}: {d}");
        let input = want
            .filter_or_default()
            .chain("INPUT")
            .map(|c| c.rules.clone())
            .unwrap_or_default();
        assert!(input[..jumps]
            .iter()
            .all(|r| r.target_name().is_some_and(|t| t.starts_with("f2b-"))));
        assert_eq!(render(&want), dump_block(text, "filter"));
    }
    // Without preserve patterns the bans would be dropped, and the diff says so.
    let live = parse_ok(F2B_V4, Family::V4);
    let d = diff(&desired(&spec, Family::V4), &live);
    assert!(d.lines.contains(&"- -N f2b-sshd".to_string()), "{d}");
    assert!(d
        .lines
        .contains(&"- -A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd".to_string()));
}

#[test]
fn golden_fail2ban_listing_v() {
    let l = match parse_list(F2B_V4_LIST) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let live = parse_ok(F2B_V4, Family::V4);
    assert_eq!(listing_matches(&l, &live), Ok(()));
    let input = l
        .chain("INPUT")
        .cloned()
        .unwrap_or_else(|| panic!("no INPUT"));
    assert_eq!(input.packets, Some(1523));
    assert_eq!(input.bytes, Some(88412));
    assert_eq!(l.chain("OUTPUT").and_then(|c| c.bytes), Some(10_000_000));
    assert_eq!(l.chain("f2b-sshd").and_then(|c| c.references), Some(1));
    let r = &input.rows[0];
    assert_eq!(
        (r.num, r.target.as_str(), r.prot.as_str(), r.rest.as_str()),
        (Some(1), "f2b-postfix", "6", "multiport dports 25,465,587")
    );
    let r = &input.rows[2];
    assert_eq!((r.pkts, r.bytes), (Some(98_000), Some(40_000_000)));
    let r = &input.rows[6];
    assert_eq!(r.in_iface.as_deref(), Some("lo"));
    assert_eq!(r.out_iface.as_deref(), Some("*"));
    assert_eq!(r.rest, "");
    assert_eq!(l.rule_counts().get("f2b-sshd"), Some(&4));
    // Against the desired ruleset without the preserved chains it fails.
    let mut spec = seed_spec();
    spec.allow = [22, 25, 465].into_iter().map(port).collect();
    assert!(listing_matches(&l, &desired(&spec, Family::V4)).is_err());
}

#[test]
fn listing_variants() {
    // The brief's -L -n -v --line-numbers shape (1.8.9: numeric prot).
    let text = "Chain INPUT (policy DROP 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        1    52 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            state RELATED,ESTABLISHED
2        0     0 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp flags:0x3F/0x00
5        0     0 ACCEPT     0    --  lo     *       0.0.0.0/0            0.0.0.0/0           
";
    let l = parse_list(text).unwrap_or_else(|e| panic!("{e}"));
    let rows = &l.chains[0].rows;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].num, Some(5));
    assert_eq!(rows[2].in_iface.as_deref(), Some("lo"));
    assert_eq!(rows[1].rest, "tcp flags:0x3F/0x00");

    // ip6tables -L -n: blank opt column, a rule without target, a user chain.
    let text = "Chain INPUT (policy ACCEPT)
target     prot opt source               destination         
ACCEPT     all      ::/0                 ::/0                 state RELATED,ESTABLISHED
           tcp      2001:db8::/32        ::/0                
f2b-sshd   tcp      ::/0                 ::/0                 multiport dports 22

Chain f2b-sshd (1 references)
target     prot opt source               destination         
RETURN     all      ::/0                 ::/0                
";
    let l = parse_list(text).unwrap_or_else(|e| panic!("{e}"));
    let rows = &l.chains[0].rows;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0].opt.as_str(), rows[0].source.as_str()),
        ("", "::/0")
    );
    assert_eq!(
        (rows[1].target.as_str(), rows[1].prot.as_str()),
        ("", "tcp")
    );
    assert_eq!(rows[1].source, "2001:db8::/32");
    assert_eq!(rows[2].target, "f2b-sshd");
    assert_eq!(l.rule_counts().get("f2b-sshd"), Some(&1));

    // Rejects what is not a listing.
    assert!(parse_list("hello\n").is_err());
    assert!(parse_list("Chain INPUT (policy DROP)\nnot a header\n").is_err());
}

#[test]
fn save_variants() {
    // iptables -S
    let s = "-P INPUT DROP
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N f2b-sshd
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -i lo -j ACCEPT
-A f2b-sshd -s 203.0.113.5/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
";
    let rs = parse_ok(s, Family::V4);
    let f = rs.filter_or_default();
    assert_eq!(f.chain("INPUT").and_then(|c| c.policy), Some(Policy::Drop));
    assert_eq!(f.chain("f2b-sshd").map(|c| c.rules.len()), Some(2));
    // iptables-save -c: counters before rules, and -c inside.
    let s = "*filter
:INPUT ACCEPT [10:600]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
[5:300] -A INPUT -i lo -j ACCEPT
-A INPUT -c 7 420 -p icmp -j ACCEPT
COMMIT
";
    let rs = parse_ok(s, Family::V4);
    assert_eq!(
        lines(&rs, "filter"),
        ["-A INPUT -i lo -j ACCEPT", "-A INPUT -p icmp -j ACCEPT"]
    );
    // Structural errors carry the 1-based line.
    let bad: &[(&str, usize)] = &[
        ("*filter\n:INPUT ACCEPT [0:0]\n", 2), // reported at the end of the text
        ("COMMIT\n", 1),
        ("*filter\n:INPUT MAYBE [0:0]\nCOMMIT\n", 2),
        ("*filter\n-A NOPE -j ACCEPT\nCOMMIT\n", 2),
        (
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport\nCOMMIT\n",
            3,
        ),
        ("*filter\nCOMMIT\n*filter\nCOMMIT\n", 3),
        ("*filter\n:X - [0:0]\n:X - [0:0]\nCOMMIT\n", 3),
        ("garbage\n", 1),
        ("*nat\n*filter\n", 2),
    ];
    for (text, line) in bad {
        match parse_save(text, Family::V4) {
            Ok(rs) => panic!("{text:?} parsed: {rs:?}"),
            Err(e) => assert_eq!(e.line, *line, "{text:?}: {e}"),
        }
    }
    // Unknown modules and targets never fail a host dump.
    let s = "*filter
:INPUT ACCEPT [0:0]
-A INPUT -m u32 --u32 \"0x0>>0x16&0x3c@0xc>>0x1a=0x5\" -m string --string \"GET /x\" --algo bm --to 65535 -j NFLOG --nflog-group 2
COMMIT
";
    let rs = parse_ok(s, Family::V4);
    assert_eq!(lines(&rs, "filter"), dump_lines(s, "filter"));
}

#[test]
fn preserve_follows_jumps_between_chains() {
    let live = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:helper - [0:0]
:f2b-sshd - [0:0]
:mine - [0:0]
-A INPUT -j mine
-A INPUT -s 192.0.2.9/32 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A OUTPUT -g f2b-sshd
-A f2b-sshd -j helper
-A f2b-sshd -j RETURN
-A helper -j RETURN
-A mine -j ACCEPT
COMMIT
";
    let live = parse_ok(live, Family::V4);
    let patterns = vec!["f2b-*".to_string()];
    let mut spec = seed_spec();
    // A raw rule identical to a kept jump is not applied twice.
    spec.rules = vec![
        Rule::parse("-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd")
            .unwrap_or_else(|e| panic!("{e}")),
    ];
    let want = with_preserved(&desired(&spec, Family::V4), &live, &patterns);
    let f = want.filter_or_default();
    assert!(f.chain("helper").is_some(), "reached from a kept chain");
    assert!(f.chain("mine").is_none(), "not matched, not reached");
    let input = f
        .chain("INPUT")
        .map(|c| c.rules.clone())
        .unwrap_or_default();
    assert_eq!(input[0].target_name(), Some("f2b-sshd"));
    assert_eq!(
        input
            .iter()
            .filter(|r| r.target_name() == Some("f2b-sshd"))
            .count(),
        1
    );
    let output = f
        .chain("OUTPUT")
        .map(|c| c.rules.clone())
        .unwrap_or_default();
    assert_eq!(output.len(), 1);
    assert!(output[0].target().is_some_and(|t| t.goto));
    let text = render(&want);
    let helper = text.find(":helper").unwrap_or(0);
    let f2b = text.find(":f2b-sshd").unwrap_or(0);
    assert!(
        f2b < helper,
        "user chains sorted by name as iptables-save does:\n{text}"
    );
    // Nothing live to preserve: desired unchanged.
    assert_eq!(
        with_preserved(
            &desired(&spec, Family::V4),
            &Ruleset::empty(Family::V4),
            &patterns
        ),
        desired(&spec, Family::V4)
    );
}

#[test]
fn diff_reports_reorder_and_is_deterministic() {
    let want = desired(&seed_spec(), Family::V4);
    let mut live = want.clone();
    if let Some(input) = live.table_mut("filter").and_then(|t| t.chain_mut("INPUT")) {
        input.rules.swap(6, 8);
    }
    let d = diff(&want, &live);
    assert_eq!(
        d.lines.last().map(String::as_str),
        Some("~ INPUT: rules reordered")
    );
    assert!(d.lines.iter().any(|l| l.starts_with("- -A INPUT")));
    assert!(d.lines.iter().any(|l| l.starts_with("+ -A INPUT")));
    assert_eq!(d, diff(&want, &live));
    // Rules added and removed (not a reorder): no note.
    let mut other = seed_spec();
    other.allow.pop();
    let d = diff(&desired(&other, Family::V4), &want);
    assert_eq!(d.lines, ["- -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]);
    // Extra user chain on the host; missing one in desired.
    let mut spec = seed_spec();
    spec.rules = vec![Rule::parse("-A LOGDROP -j DROP").unwrap_or_else(|e| panic!("{e}"))];
    let d = diff(&desired(&spec, Family::V4), &want);
    assert_eq!(d.lines, ["+ -N LOGDROP", "+ -A LOGDROP -j DROP"]);
    let d = diff(&want, &desired(&spec, Family::V4));
    assert_eq!(d.lines, ["- -N LOGDROP", "- -A LOGDROP -j DROP"]);
}

#[test]
fn allows_and_raw_rules_per_family() {
    let v4net = parse_cidr("198.51.100.0/24").unwrap_or_else(|e| panic!("{e}"));
    let v6net = parse_cidr("2001:db8::/32").unwrap_or_else(|e| panic!("{e}"));
    let spec = FirewallSpec {
        baseline: false,
        allow: vec![
            Allow {
                ports: PortRange { lo: 8080, hi: 8080 },
                proto: Proto::Tcp,
                from: Some(v4net),
            },
            Allow {
                ports: PortRange {
                    lo: 60000,
                    hi: 61000,
                },
                proto: Proto::Udp,
                from: None,
            },
            Allow {
                ports: PortRange { lo: 22, hi: 22 },
                proto: Proto::Tcp,
                from: Some(v6net),
            },
        ],
        rules: [
            "-A INPUT -p udp -m udp --dport 51820 -j ACCEPT",
            "-A INPUT -s 192.0.2.1 -j DROP",
            "-A INPUT -p icmpv6 -j ACCEPT",
        ]
        .iter()
        .map(|l| Rule::parse(l).unwrap_or_else(|e| panic!("{e}")))
        .collect(),
        ..FirewallSpec::default()
    };
    let v4 = render(&desired(&spec, Family::V4));
    assert_eq!(
        v4,
        "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 198.51.100.0/24 -p tcp -m tcp --dport 8080 -j ACCEPT
-A INPUT -p udp -m udp --dport 60000:61000 -j ACCEPT
-A INPUT -p udp -m udp --dport 51820 -j ACCEPT
-A INPUT -s 192.0.2.1/32 -j DROP
COMMIT
"
    );
    let v6 = render(&desired(&spec, Family::V6));
    assert_eq!(
        v6,
        "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 60000:61000 -j ACCEPT
-A INPUT -s 2001:db8::/32 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p udp -m udp --dport 51820 -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
COMMIT
"
    );
}
