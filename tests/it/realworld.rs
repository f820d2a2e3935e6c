//! Real-world hosts (docs/design.md, "The transaction": preserved chains): Docker, fail2ban,
//! Kubernetes and hand-written rules already loaded, ufw enabled, and the
//! Ansible inventories people already have.
//!
//! Each host gets its rules with `iptables-restore` inside the host (no
//! SSH), written here as `iptables-save` would print them. Every match and
//! target used below loads in the lab's kernel (multiport, conntrack,
//! limit, recent, comment, mark, addrtype, LOG, REJECT, MASQUERADE, DNAT,
//! MARK), so nothing had to be dropped.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::rollout::{
    code, contacts, error_of, in_host, in_host_ok, q, repo, report, run_json, s, sshd_log,
    statuses, Scratch, QUICK,
};
use crate::support::{run_bounded, show, Lab, RAMPART_TIMEOUT};

/// The default `preserve` list.
const DEFAULT_PRESERVE: [&str; 5] = ["DOCKER*", "f2b-*", "fail2ban-*", "KUBE-*", "CNI-*"];

/// A Docker host: Docker's filter chains and FORWARD jumps, its nat table,
/// a mangle rule, and a few rules of the owner's.
const DOCKER_V4: &str = r#"*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i docker0 -p tcp -m tcp --dport 5432 -j MARK --set-xmark 0x1/0xffffffff
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
:BLOCKLOG - [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -s 10.9.0.0/16 -j BLOCKLOG
-A DOCKER-USER -j RETURN
-A BLOCKLOG -j LOG --log-prefix "docker-user block: "
-A BLOCKLOG -j DROP
COMMIT
"#;

/// Docker with `"ip6tables": true`.
const DOCKER_V6: &str = r#"*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
"#;

/// fail2ban's sshd jail (iptables-multiport action) on a hand-kept ruleset.
const F2B_V4: &str = r#"*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 3306 -j ACCEPT
-A f2b-sshd -s 203.0.113.7/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -s 198.51.100.66/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
"#;

const F2B_V6: &str = r#"*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A f2b-sshd -s 2001:db8::bad/128 -j REJECT --reject-with icmp6-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
"#;

/// An admin's own ruleset: multiport, conntrack, limit, recent, comments
/// with spaces, quotes and shell characters, a LOG prefix, REJECT variants, negations, interfaces, user
/// chains; plus an old-style fail2ban chain and a Kubernetes one (jumped
/// to from INPUT and OUTPUT).
const HAND_V4: &str = r#"*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:LOGDROP - [0:0]
:SSH-GUARD - [0:0]
:fail2ban-ssh - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp -m multiport --dports 22 -j fail2ban-ssh
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j LOGDROP
-A INPUT -i lo -j ACCEPT
-A INPUT ! -i lo -s 127.0.0.0/8 -j DROP
-A INPUT -p tcp -m multiport --dports 80,443,8000:8100 -m comment --comment "web and alt ports" -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec --limit-burst 10 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j SSH-GUARD
-A INPUT -i eth0 ! -s 10.0.0.0/8 -p udp -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable
-A INPUT -p tcp -m tcp --dport 25 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp ! --dport 22 -m comment --comment "everything else: log, then drop" -j LOGDROP
-A INPUT -p udp -m comment --comment "a \"mine\" rule; with $HOME and `x`" -m udp --dport 9 -j DROP
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A OUTPUT -j KUBE-FIREWALL
-A OUTPUT -o eth0 -p tcp -m tcp --dport 25 -j REJECT --reject-with icmp-admin-prohibited
-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-FORWARD -m comment --comment "it\'s \"quoted\" default/kubernetes:https" -j ACCEPT
-A LOGDROP -m limit --limit 3/min -j LOG --log-prefix "rampart test drop: " --log-level 4
-A LOGDROP -j DROP
-A SSH-GUARD -m recent --set --name ssh --rsource
-A SSH-GUARD -m recent --update --seconds 60 --hitcount 10 --name ssh --rsource -j LOGDROP
-A SSH-GUARD -j ACCEPT
-A fail2ban-ssh -s 192.0.2.99/32 -j DROP
-A fail2ban-ssh -j RETURN
COMMIT
"#;

const HAND_V6: &str = r#"*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:TCP-IN - [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -j KUBE-FIREWALL
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -p ipv6-icmp -m limit --limit 10/sec -j ACCEPT
-A INPUT ! -i lo -s ::1/128 -j DROP
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m conntrack --ctstate NEW -j TCP-IN
-A INPUT -p tcp -m recent --name portscan --rcheck --seconds 86400 -j DROP
-A INPUT -m comment --comment "reject the rest, politely" -j REJECT --reject-with icmp6-adm-prohibited
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP
-A TCP-IN -p tcp -m multiport --dports 22,80,443 -j ACCEPT
-A TCP-IN -p tcp ! -s 2001:db8::/32 -m tcp --dport 8443 -j LOG --log-prefix "v6 8443 from outside: "
-A TCP-IN -j RETURN
-A f2b-sshd -s 2001:db8::bad/128 -j REJECT --reject-with icmp6-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
"#;

/// Load `dump` into the host with `<cmd>-restore` (run inside it, no SSH).
fn load(lab: &Lab, host: &str, cmd: &str, dump: &str) {
    let script = format!("printf '%s' \"$1\" | {cmd}-restore");
    let out = lab.exec_in(host, &["sh", "-c", &script, "sh", dump]);
    assert!(
        out.status.success(),
        "{host}: {cmd}-restore of the test's rules failed (a match missing in this kernel?):\n{}",
        show(&out)
    );
}

/// `cmd-save` of the host, split by table, comments gone, counters zeroed.
fn tables(lab: &Lab, host: &str, cmd: &str) -> Vec<(String, Vec<String>)> {
    let raw = in_host(lab, host, &format!("{cmd}-save"));
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in raw.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(t) = line.strip_prefix('*') {
            out.push((t.to_string(), Vec::new()));
            continue;
        }
        let line = if line.starts_with(':') {
            line.rsplit_once(' ').map_or(line, |(a, _)| a).to_string()
        } else {
            line.to_string()
        };
        if let Some((_, lines)) = out.last_mut() {
            if line != "COMMIT" {
                lines.push(line);
            }
        }
    }
    out.sort();
    out
}

fn table(all: &[(String, Vec<String>)], name: &str) -> Vec<String> {
    all.iter()
        .find(|(t, _)| t == name)
        .map(|(_, l)| l.clone())
        .unwrap_or_default()
}

fn tables_but_filter(all: &[(String, Vec<String>)]) -> Vec<(String, Vec<String>)> {
    all.iter().filter(|(t, _)| t != "filter").cloned().collect()
}

fn matches(name: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *p,
    })
}

/// The target of a rule (`-j X` or `-g X`).
fn target(rule: &str) -> Option<&str> {
    let mut it = rule.split_whitespace();
    while let Some(w) = it.next() {
        if w == "-j" || w == "-g" {
            return it.next();
        }
    }
    None
}

const BUILTIN: [&str; 3] = ["INPUT", "FORWARD", "OUTPUT"];

/// The chain a `-A` / `:` line belongs to.
fn chain_of(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix(':') {
        rest.split_whitespace().next().unwrap_or("")
    } else {
        line.split_whitespace().nth(1).unwrap_or("")
    }
}

/// The part of a filter table `preserve` keeps: preserved chains (their
/// declarations and rules), the user chains they jump to (else their rules
/// could not stay as they are), and the built-in chains' jumps into
/// preserved chains, in order.
fn preserved(filter: &[String], patterns: &[&str]) -> Vec<String> {
    let mut kept: Vec<String> = filter
        .iter()
        .map(|l| chain_of(l).to_string())
        .filter(|c| matches(c, patterns) && !BUILTIN.contains(&c.as_str()))
        .collect();
    loop {
        let more: Vec<String> = filter
            .iter()
            .filter(|l| l.starts_with("-A ") && kept.iter().any(|k| k == chain_of(l)))
            .filter_map(|l| target(l).map(str::to_string))
            .filter(|t| {
                !kept.contains(t) && filter.iter().any(|l| l.starts_with(&format!(":{t} ")))
            })
            .collect();
        if more.is_empty() {
            break;
        }
        kept.extend(more);
    }
    filter
        .iter()
        .filter(|l| {
            let chain = chain_of(l);
            if kept.iter().any(|k| k == chain) {
                return true;
            }
            l.starts_with("-A ")
                && BUILTIN.contains(&chain)
                && target(l).is_some_and(|t| matches(t, patterns))
        })
        .cloned()
        .collect()
}

/// The desired rules of the baseline playbook, as `cmd-save` prints them.
fn baseline_rules(cmd: &str) -> Vec<String> {
    let icmp = if cmd == "ip6tables" {
        "ipv6-icmp"
    } else {
        "icmp"
    };
    [
        ":INPUT DROP".to_string(),
        ":FORWARD ACCEPT".to_string(),
        ":OUTPUT ACCEPT".to_string(),
        "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT".to_string(),
        "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP".to_string(),
        "-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW -j DROP"
            .to_string(),
        "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,SYN,RST,PSH,ACK,URG -j DROP"
            .to_string(),
        "-A INPUT -i lo -j ACCEPT".to_string(),
        format!("-A INPUT -p {icmp} -j ACCEPT"),
        "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT".to_string(),
        "-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT".to_string(),
        "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT".to_string(),
    ]
    .into()
}

type Snapshot = Vec<(String, Vec<(String, Vec<String>)>)>;

fn snapshot(lab: &Lab, host: &str) -> Snapshot {
    ["iptables", "ip6tables"]
        .iter()
        .map(|c| (c.to_string(), tables(lab, host, c)))
        .collect()
}

/// After an apply with `patterns` preserved: the preserved part of each
/// filter table is exactly as before, every other table untouched, and
/// the rest of the filter table is exactly the desired rules.
fn assert_converged_preserving(
    lab: &Lab,
    host: &str,
    before: &Snapshot,
    patterns: &[&str],
    desired: &dyn Fn(&str) -> Vec<String>,
) {
    let after = snapshot(lab, host);
    for ((cmd, b), (_, a)) in before.iter().zip(&after) {
        let (bf, af) = (table(b, "filter"), table(a, "filter"));
        let kept = preserved(&bf, patterns);
        assert_eq!(
            preserved(&af, patterns),
            kept,
            "{host} {cmd}: preserved chains and jumps, in order\nbefore:\n{}\nafter:\n{}",
            bf.join("\n"),
            af.join("\n")
        );
        let rest: Vec<String> = af.iter().filter(|l| !kept.contains(l)).cloned().collect();
        // A host's own chain declarations come out sorted; compare rules in order.
        assert_eq!(
            rest,
            desired(cmd),
            "{host} {cmd}: everything not preserved is rampart's\nafter:\n{}",
            af.join("\n")
        );
        assert_eq!(
            tables_but_filter(a),
            tables_but_filter(b),
            "{host} {cmd}: other tables untouched"
        );
    }
}

#[test]
fn docker_fail2ban_and_hand_written_hosts_converge_keeping_what_is_preserved() {
    let lab = Lab::up(3);
    load(&lab, "h001", "iptables", DOCKER_V4);
    load(&lab, "h001", "ip6tables", DOCKER_V6);
    load(&lab, "h002", "iptables", F2B_V4);
    load(&lab, "h002", "ip6tables", F2B_V6);
    load(&lab, "h003", "iptables", HAND_V4);
    load(&lab, "h003", "ip6tables", HAND_V6);
    let hosts = ["h001", "h002", "h003"];
    let before: Vec<Snapshot> = hosts.iter().map(|h| snapshot(&lab, h)).collect();
    let pb = repo("playbooks/baseline.yml");
    let inv = lab.inventory();

    // Audit: drift everywhere, a diff that names what goes, nothing changed.
    let out = run_json("audit", &pb, &inv, &[]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    let v = report(&out);
    assert!(statuses(&v).values().all(|s| s == "drift"), "{v:#}");
    let diff3 = crate::rollout::host_entry(&v, "h003")["diff"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(diff3.contains("- -N LOGDROP"), "{diff3}");
    assert!(diff3.contains("--comment \"web and alt ports\""), "{diff3}");
    assert!(!diff3.contains("KUBE-FIREWALL"), "preserved: {diff3}");
    assert!(!diff3.contains("fail2ban-ssh"), "preserved: {diff3}");
    for (h, b) in hosts.iter().zip(&before) {
        assert_eq!(&snapshot(&lab, h), b, "{h}: audit changed nothing");
        assert!(!in_host_ok(&lab, h, "test -e /var/lib/rampart"), "{h}");
    }

    // Apply: converged; preserved chains and jumps as they were.
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    assert!(statuses(&v).values().all(|s| s == "changed"), "{v:#}");
    for (h, b) in hosts.iter().zip(&before) {
        assert_converged_preserving(&lab, h, b, &DEFAULT_PRESERVE, &baseline_rules);
    }
    // The persisted file is what the kernel holds, Docker chains included.
    let persisted = in_host(&lab, "h003", "cat /etc/iptables/rules.v4");
    assert!(persisted.contains(":KUBE-FIREWALL"), "{persisted}");
    assert!(!persisted.contains("LOGDROP"), "{persisted}");
    let persisted = in_host(&lab, "h001", "cat /etc/sysconfig/iptables");
    assert!(
        persisted.contains("-A FORWARD -o docker0 -j DOCKER"),
        "{persisted}"
    );

    // Then: audit clean, apply ok.
    let out = run_json("audit", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(statuses(&report(&out)).values().all(|s| s == "ok"));
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(statuses(&report(&out)).values().all(|s| s == "ok"));
}

#[test]
fn preserve_lists_in_the_playbook_replace_the_default() {
    // h001: `preserve: []` drops fail2ban's and Docker's filter chains;
    // h002: `preserve: [f2b-*]` keeps fail2ban's, drops Docker's.
    let lab = Lab::up(2);
    for h in ["h001", "h002"] {
        load(&lab, h, "iptables", DOCKER_V4);
        load(&lab, h, "ip6tables", F2B_V6);
        // fail2ban adds its chain to Docker's host: `-I INPUT 1 -j f2b-sshd`.
        in_host(
            &lab,
            h,
            "iptables -N f2b-sshd && iptables -A f2b-sshd -s 203.0.113.7 -j REJECT && \
             iptables -A f2b-sshd -j RETURN && \
             iptables -I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd",
        );
    }
    let before: Vec<Snapshot> = ["h001", "h002"].iter().map(|h| snapshot(&lab, h)).collect();
    let scratch = Scratch::new();
    let pb = scratch.write(
        "preserve.yml",
        "- name: base\n  hosts: all\n  firewall:\n    allow: [ssh]\n\
         - name: nothing kept\n  hosts: h001\n  firewall:\n    preserve: []\n\
         - name: fail2ban kept\n  hosts: h002\n  firewall:\n    preserve: [\"f2b-*\"]\n",
    );
    let out = run_json("apply", &pb, &lab.inventory(), &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(statuses(&report(&out)).values().all(|s| s == "changed"));
    let desired = |cmd: &str| -> Vec<String> {
        baseline_rules(cmd)
            .into_iter()
            .filter(|l| !l.contains("--dport 80 ") && !l.contains("--dport 443 "))
            .collect()
    };
    assert_converged_preserving(&lab, "h001", &before[0], &[], &desired);
    assert_converged_preserving(&lab, "h002", &before[1], &["f2b-*"], &desired);
    let h1 = in_host(&lab, "h001", "iptables-save; ip6tables-save");
    assert!(
        !h1.contains("f2b-sshd") && !h1.contains(":DOCKER-USER"),
        "{h1}"
    );
    assert!(
        h1.contains("-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT"),
        "the nat table is not the playbook's: {h1}"
    );
    let h2 = in_host(&lab, "h002", "iptables-save");
    assert!(
        h2.contains(":f2b-sshd") && !h2.contains(":DOCKER-USER"),
        "{h2}"
    );
    let out = run_json("audit", &pb, &lab.inventory(), &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
}

#[test]
fn enabled_ufw_fails_the_host_and_leaves_it_untouched() {
    let lab = Lab::up(4);
    load(&lab, "h004", "iptables", F2B_V4);
    in_host(
        &lab,
        "h004",
        "mkdir -p /etc/ufw && printf '# /etc/ufw/ufw.conf\\nENABLED=yes\\nLOGLEVEL=low\\n' > /etc/ufw/ufw.conf",
    );
    let before = snapshot(&lab, "h004");
    let out = run_json(
        "apply",
        &repo("playbooks/baseline.yml"),
        &lab.inventory(),
        &["--limit", "h004,h003"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h004"], "failed", "{v:#}");
    assert_eq!(
        statuses(&v)["h003"],
        "changed",
        "one host's failure stops no other: {v:#}"
    );
    let e = error_of(&v, "h004");
    assert!(e.contains("ufw") && e.contains("disable"), "{e}");
    assert_eq!(snapshot(&lab, "h004"), before);
    assert!(!in_host_ok(&lab, "h004", "test -e /var/lib/rampart"));
    assert!(!in_host_ok(&lab, "h004", "test -e /etc/iptables/rules.v4"));

    // ufw disabled: the same host converges.
    in_host(
        &lab,
        "h004",
        "sed -i 's/^ENABLED=yes/ENABLED=no/' /etc/ufw/ufw.conf",
    );
    let out = run_json(
        "apply",
        &repo("playbooks/baseline.yml"),
        &lab.inventory(),
        &["--limit", "h004"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(statuses(&report(&out))["h004"], "changed");
}

/// rampart with `HOME` set (Ansible inventories use `~/.ssh/known_hosts`).
fn rampart_home(home: &Path, args: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(args)
            .env("HOME", home)
            .env_remove("SSH_AUTH_SOCK"),
        RAMPART_TIMEOUT,
    )
}

#[test]
fn ansible_ini_and_yaml_inventories_converge_only_the_limited_group() {
    let lab = Lab::up(4);
    let scratch = Scratch::new();
    let home = scratch.path().join("home");
    let addr = |h: &str| lab.host(h).address.to_string();
    fs::create_dir_all(home.join(".ssh")).expect("mkdir home/.ssh");
    // As Debian and Ubuntu keep it (HashKnownHosts yes): hashed names.
    fs::copy(lab.known_hosts(), home.join(".ssh/known_hosts")).expect("copy known_hosts");
    let hash = run_bounded(
        Command::new("ssh-keygen")
            .args(["-q", "-H", "-f"])
            .arg(home.join(".ssh/known_hosts")),
        RAMPART_TIMEOUT,
    );
    assert!(hash.status.success(), "{}", show(&hash));
    let hashed = fs::read_to_string(home.join(".ssh/known_hosts")).expect("read known_hosts");
    assert!(
        hashed.starts_with("|1|") && !hashed.contains(&addr("h001")),
        "{hashed}"
    );
    // The INI one names the key under ~ (expanded from HOME).
    fs::copy(lab.identity(), home.join(".ssh/id_lab")).expect("copy the key");
    let key = lab.identity();
    let logs: Vec<String> = ["h001", "h002", "h003", "h004"]
        .iter()
        .map(|h| sshd_log(&lab, h))
        .collect();

    let ini = scratch.write(
        "hosts.ini",
        &format!(
            "# an Ansible inventory\n\
             [web]\n\
             h001 ansible_host={}\n\
             h002 ansible_host={} ansible_user=deploy ansible_become=true\n\
             \n\
             [db]\n\
             h003 ansible_host={} ansible_port=22\n\
             h004 ansible_host={}\n\
             \n\
             [fleet:children]\n\
             web\n\
             db\n\
             \n\
             [fleet:vars]\n\
             ansible_user=root\n\
             ansible_ssh_private_key_file=~/.ssh/id_lab\n",
            addr("h001"),
            addr("h002"),
            addr("h003"),
            addr("h004"),
        ),
    );
    let pb = repo("playbooks/baseline.yml");
    let mut args = vec![
        "apply",
        s(&pb),
        "-i",
        s(&ini),
        "--format",
        "json",
        "--limit",
        "web",
    ];
    args.extend(QUICK);
    let out = rampart_home(&home, &args);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    let st = statuses(&v);
    assert_eq!(
        st.keys().collect::<Vec<_>>(),
        ["h001", "h002"],
        "only the web group: {v:#}"
    );
    assert!(st.values().all(|s| s == "changed"), "{v:#}");
    assert!(
        sshd_log(&lab, "h002").contains("Accepted publickey for deploy"),
        "h002's own ansible_user wins over the group's"
    );
    for (i, h) in ["h003", "h004"].iter().enumerate() {
        assert_eq!(
            contacts(&sshd_log(&lab, h)),
            contacts(&logs[i + 2]),
            "{h} never contacted"
        );
        assert!(!in_host_ok(&lab, h, "test -e /var/lib/rampart"), "{h}");
    }

    let yaml = scratch.write(
        "hosts.yml",
        &format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {}\n  children:\n\
             \x20   web:\n      hosts:\n        h001: {{ansible_host: {}}}\n        h002: {{ansible_host: {}}}\n\
             \x20   db:\n      hosts:\n        h003:\n          ansible_host: {}\n          ansible_port: 22\n        h004:\n          ansible_host: {}\n",
            q(&key),
            addr("h001"),
            addr("h002"),
            addr("h003"),
            addr("h004"),
        ),
    );
    let mut args = vec![
        "apply",
        s(&pb),
        "-i",
        s(&yaml),
        "--format",
        "json",
        "--limit",
        "db",
    ];
    args.extend(QUICK);
    let out = rampart_home(&home, &args);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    let st = statuses(&v);
    assert_eq!(st.keys().collect::<Vec<_>>(), ["h003", "h004"], "{v:#}");
    assert!(st.values().all(|s| s == "changed"), "{v:#}");

    // The whole fleet through the YAML one: everything is in place.
    let mut args = vec!["audit", s(&pb), "-i", s(&yaml), "--format", "json"];
    args.extend(QUICK);
    let out = rampart_home(&home, &args);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let st = statuses(&report(&out));
    assert_eq!(st.len(), 4);
    assert!(st.values().all(|s| s == "ok"), "{st:?}");
}

/// A running firewalld would rewrite the rules behind rampart's back: the
/// host fails with a clear message and is left exactly as it was. (The lab
/// has no systemd: `firewall-cmd --state` answering "running" is how the
/// host says so, as on a real one; the stand-in lives on a tmpfs mounted in
/// that host's own mount namespace only.)
#[test]
fn running_firewalld_fails_the_host_and_leaves_it_untouched() {
    let lab = Lab::up(2);
    in_host(
        &lab,
        "h002",
        "mount -t tmpfs tmpfs /usr/local/bin && printf '#!/bin/sh\\necho running\\n' > /usr/local/bin/firewall-cmd && chmod 755 /usr/local/bin/firewall-cmd",
    );
    let before = snapshot(&lab, "h002");
    let out = run_json(
        "apply",
        &repo("playbooks/baseline.yml"),
        &lab.inventory(),
        &[],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h002"], "failed", "{v:#}");
    assert_eq!(statuses(&v)["h001"], "changed", "{v:#}");
    assert!(error_of(&v, "h002").contains("firewalld"), "{v:#}");
    assert_eq!(snapshot(&lab, "h002"), before);
    assert!(!in_host_ok(&lab, "h002", "test -e /var/lib/rampart"));

    in_host(&lab, "h002", "umount /usr/local/bin");
    let out = run_json(
        "apply",
        &repo("playbooks/baseline.yml"),
        &lab.inventory(),
        &["--limit", "h002"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
}

/// A host without ip6tables is reported with a warning, not failed;
/// IPv4 is converged and persisted alone. The tools vanish from that host
/// only: its /etc/alternatives links are removed in its own /etc overlay.
#[test]
fn host_without_ip6tables_is_converged_for_ipv4_and_warned_about() {
    let lab = Lab::up(3);
    in_host(
        &lab,
        "h003",
        "rm -f /etc/alternatives/ip6tables /etc/alternatives/ip6tables-save /etc/alternatives/ip6tables-restore && ! command -v ip6tables-restore",
    );
    let out = run_json(
        "apply",
        &repo("playbooks/baseline.yml"),
        &lab.inventory(),
        &["--limit", "h003"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    let h = crate::rollout::host_entry(&v, "h003");
    assert_eq!(h["status"], "changed", "{v:#}");
    assert_eq!(
        h["persisted"],
        serde_json::json!(["/etc/iptables/rules.v4"]),
        "{v:#}"
    );
    assert!(
        h["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("ip6tables")))),
        "{v:#}"
    );
    assert!(!in_host_ok(&lab, "h003", "test -e /etc/iptables/rules.v6"));
    let again = run_json(
        "apply",
        &repo("playbooks/baseline.yml"),
        &lab.inventory(),
        &["--limit", "h003"],
    );
    assert_eq!(statuses(&report(&again))["h003"], "ok", "{}", show(&again));
}
