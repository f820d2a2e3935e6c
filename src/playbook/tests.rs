use std::net::Ipv4Addr;

use super::*;
use crate::firewall::{Cidr, PortRange, Proto};

fn pb(text: &str) -> Result<Playbook, InputError> {
    Playbook::from_text(Path::new("/pb/site.yml"), text)
}

fn err(text: &str) -> (usize, usize, String) {
    let e = pb(text).expect_err("should fail");
    (e.line, e.column, e.message)
}

fn inv() -> Inventory {
    Inventory::from_text(
        Path::new("/inv/hosts.yml"),
        "hosts:\n  web1:\n  web2:\n  mx1:\ngroups:\n  web: [web1, web2]\n  mail: [mx*]\n  empty: []\n",
    )
    .expect("inventory")
}

fn tcp(p: u16) -> Allow {
    Allow {
        ports: PortRange { lo: p, hi: p },
        proto: Proto::Tcp,
        from: None,
    }
}

fn plan(book: &Playbook, host: &str) -> Option<HostPlan> {
    let inv = inv();
    let h = inv.host(host).expect("host").clone();
    book.plan(&inv, &h)
}

#[test]
fn allow_forms() {
    let book = pb("- hosts: all\n  firewall:\n    allow: [http, 8080, \"8443\", \"60000:61000\", \"53/udp\", {port: 51820, proto: UDP, from: 198.51.100.0/24}, {port: ssh}]\n")
        .expect("valid");
    let a = &book.plays[0].firewall.allow;
    assert_eq!(a[0], tcp(80));
    assert_eq!(a[1], tcp(8080));
    assert_eq!(a[2], tcp(8443));
    assert_eq!(
        a[3].ports,
        PortRange {
            lo: 60000,
            hi: 61000
        }
    );
    assert_eq!((a[4].ports.lo, a[4].proto), (53, Proto::Udp));
    assert_eq!(a[5].proto, Proto::Udp);
    assert_eq!(
        a[5].from,
        Some(Cidr::V4(Ipv4Addr::new(198, 51, 100, 0), 24))
    );
    assert_eq!(a[6], tcp(22));
    assert_eq!(book.plays[0].name, "play 1 (hosts: all)");
    assert_eq!(book.plays[0].hosts_at, (1, 10));
}

#[test]
fn merge_rules() {
    let book = pb("\
- name: base
  hosts: all
  firewall:
    allow: [ssh]
    policy: {input: drop, output: accept}
    preserve: ['DOCKER*']
- name: web
  hosts: web
  firewall:
    baseline: false
    allow: [http, ssh, https]
    policy: {input: ACCEPT}
    ipv6: false
    preserve: ['f2b-*', 'DOCKER*']
    persist: {ipv4: /etc/fw4}
- name: web1 only
  hosts: 'web1,!web2'
  firewall:
    baseline: true
    ipv6: true
    persist: {ipv6: /etc/fw6}
")
    .expect("valid");

    let web2 = plan(&book, "web2").expect("matched");
    assert_eq!(web2.plays, ["base", "web"]);
    let f = &web2.firewall;
    assert!(!f.baseline, "only play stating baseline says false");
    assert_eq!(
        f.allow,
        [tcp(22), tcp(80), tcp(443)],
        "concatenated, dups dropped"
    );
    assert_eq!(f.policy.input, Policy::Accept, "last wins");
    assert_eq!(f.policy.output, Policy::Accept);
    assert_eq!(f.policy.forward, Policy::Accept, "unstated: seed default");
    assert!(!f.ipv6);
    assert_eq!(
        f.preserve,
        ["DOCKER*", "f2b-*"],
        "union, no defaults once stated"
    );
    assert_eq!(
        f.persist.as_ref().and_then(|p| p.ipv4.clone()),
        Some("/etc/fw4".into())
    );

    let web1 = plan(&book, "web1").expect("matched");
    assert_eq!(web1.plays, ["base", "web", "web1 only"]);
    assert!(web1.firewall.baseline, "any true");
    assert!(web1.firewall.ipv6, "last stated wins");
    let persist = web1.firewall.persist.expect("persist");
    assert_eq!(
        (persist.ipv4, persist.ipv6),
        (None, Some("/etc/fw6".into())),
        "persist last wins as a whole"
    );

    let mx1 = plan(&book, "mx1").expect("matched by all");
    assert!(mx1.firewall.baseline, "no play states it: default true");
    assert_eq!(mx1.firewall.policy, Policies::default());
}

#[test]
fn defaults_and_unmatched() {
    let book = pb("- hosts: mail\n  firewall: {allow: [smtp]}\n").expect("valid");
    assert!(plan(&book, "web1").is_none());
    let f = plan(&book, "mx1").expect("mail").firewall;
    assert_eq!(f.preserve, firewall::DEFAULT_PRESERVE);
    assert!(f.baseline && f.ipv6);
    assert_eq!(f.persist, None);
    let empty = pb("- hosts: all\n  firewall: {preserve: []}\n").expect("valid");
    assert!(plan(&empty, "web1")
        .expect("all")
        .firewall
        .preserve
        .is_empty());
}

#[test]
fn unknown_names_in_plays_are_reported() {
    let book = pb("- hosts: all\n  firewall: {}\n- hosts: web,wbe\n  firewall: {}\n- hosts: 'mx*,empty'\n  firewall: {}\n")
        .expect("valid");
    let errs = book.unknown_host_names(&inv());
    // `empty` is a group without members: an Inventory keeps only hosts
    // (and their groups), so it is reported too. Documented limitation.
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), (3, 10));
    assert!(errs[0].message.contains("'wbe'"));
}

#[test]
fn errors_have_positions() {
    // YAML syntax.
    let (l, c, m) = err("- hosts: all\n  firewall: {allow: [ssh\n");
    assert!(l >= 2 && c > 0, "{l}:{c} {m}");
    // Unknown keys, at the play, firewall and policy level.
    assert_eq!(err("- hosts: all\n  firewal: {}\n").0, 2);
    let (l, c, m) = err("- hosts: all\n  firewall:\n    alow: [ssh]\n");
    assert_eq!((l, c), (3, 5), "{m}");
    assert!(m.contains("unknown field `alow`"), "{m}");
    let (l, c, m) = err("- hosts: all\n  firewall:\n    policy: {inptu: drop}\n");
    assert_eq!((l, c), (3, 14), "{m}");
    assert!(m.contains("unknown field `inptu`"), "{m}");
    let (l, c, m) = err("- hosts: all\n  firewall:\n    allow: [{port: 1, prot: udp}]\n");
    assert_eq!((l, c), (3, 23), "{m}");
    assert!(
        m.starts_with("[0].firewall.allow[0]: unknown field `prot`"),
        "{m}"
    );
    // Services and ports.
    let (l, c, m) = err("- hosts: all\n  firewall:\n    allow: [ssh, htp]\n");
    assert_eq!((l, c), (3, 18), "{m}");
    assert!(m.contains("unknown service 'htp'"), "{m}");
    let (l, c, m) = err("- hosts: all\n  firewall:\n    allow: [0]\n");
    assert_eq!((l, c), (3, 13), "{m}");
    assert!(m.contains("port 0 is out of range"), "{m}");
    let (l, c, m) = err("- hosts: all\n  firewall:\n    allow:\n      - 65536\n");
    assert_eq!((l, c), (4, 9), "{m}");
    assert!(m.contains("port 65536 is out of range"), "{m}");
    let (l, c, m) =
        err("- hosts: all\n  firewall:\n    allow: [{port: \"61000:60000\", proto: udp}]\n");
    assert_eq!((l, c), (3, 20), "{m}");
    assert!(m.contains("reversed"), "{m}");
    // CIDRs.
    let (l, c, m) = err("- hosts: all\n  firewall:\n    allow: [{port: 22, from: 300.1.1.0/24}]\n");
    assert_eq!((l, c), (3, 30), "{m}");
    assert!(m.contains("'300.1.1.0' is not a valid IPv4 address"), "{m}");
    let (l, c, m) = err("- hosts: all\n  firewall:\n    allow: [{port: 22, from: 10.0.0.0/33}]\n");
    assert_eq!((l, c), (3, 30), "{m}");
    assert!(m.contains("/33 is too long"), "{m}");
    // Policy values, host patterns, persist paths.
    let (l, c, m) = err("- hosts: all\n  firewall:\n    policy: {input: reject}\n");
    assert_eq!((l, c), (3, 21), "{m}");
    let (l, c, m) = err("- hosts: 'web,,db'\n  firewall: {}\n");
    assert_eq!((l, c), (1, 10), "{m}");
    let (l, c, m) = err("- hosts: all\n  firewall:\n    persist: {ipv4: relative/path}\n");
    assert_eq!((l, c), (3, 21), "{m}");
    assert!(m.contains("absolute"), "{m}");
    // Missing required field, empty playbook.
    let (_, _, m) = err("- name: x\n  firewall: {}\n");
    assert!(m.contains("missing field `hosts`"), "{m}");
    assert!(err("# nothing\n").2.contains("empty"));
    assert!(err("[]\n").2.contains("no play"));
}

#[test]
fn raw_rule_with_shell_metacharacters() {
    let (l, c, m) =
        err("- hosts: all\n  firewall:\n    rules:\n      - \"-A INPUT -j ACCEPT; rm -rf /\"\n");
    assert_eq!((l, c), (4, 9), "{m}");
    assert!(m.contains("shell metacharacter ';'"), "{m}");
    assert!(m.contains("at character 19"), "{m}");
}

/// Needs the firewall core's `Rule::parse` (branch `fw`).
#[test]
fn raw_rules_parse_and_dedup() {
    let book = pb("\
- hosts: all
  firewall:
    rules: ['-A INPUT -p udp -m udp --dport 51820 -j ACCEPT']
- hosts: web
  firewall:
    rules: ['-A INPUT -p udp -m udp --dport 51820 -j ACCEPT', '-A INPUT -p tcp -m tcp --dport 9000 -j ACCEPT']
")
    .expect("valid");
    assert_eq!(plan(&book, "web1").expect("web").firewall.rules.len(), 2);
    let (l, c, m) = err("- hosts: all\n  firewall:\n    rules: ['-A INPUT --bogus-flag']\n");
    assert_eq!((l, c), (3, 13), "{m}");
    assert!(m.contains("invalid rule"), "{m}");
}
