//! The rule corpus (`tests/corpus/*.rules`) converged on real lab hosts.
//!
//! For each corpus file, one playbook whose `rules:` are the file's rules,
//! around them what a real host has: the seed's baseline, an SSH allow,
//! policies, IPv6, and a fail2ban chain (loaded beforehand, preserved).
//! The rules go to user chains nothing jumps to, so no file can cut SSH.
//! Each must be `changed` by the first apply, `ok` on the second and `ok`
//! in an audit: the guarantee that any rule the host accepts converges
//! (docs/design.md, "Canonical form"), on every iptables version and
//! backend of the lab.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::rollout::{code, host_entry, report, run_json, statuses, Scratch};
use crate::support::{show, Lab};

/// A fail2ban host's chains, as fail2ban's iptables-multiport action
/// leaves them (IPv4, then IPv6).
const F2B_V4: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A f2b-sshd -s 203.0.113.66/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
";
const F2B_V6: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A f2b-sshd -s 2001:db8::66/128 -j REJECT --reject-with icmp6-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
";

fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .collect();
    files.sort();
    files
}

/// Put the fail2ban chains back, replacing whatever filter table the host has.
fn load_fail2ban(lab: &Lab, host: &str) {
    for (cmd, dump) in [("iptables", F2B_V4), ("ip6tables", F2B_V6)] {
        let script = format!("printf '%s' \"$1\" | {cmd}-restore");
        let out = lab.exec_in(host, &["sh", "-c", &script, "sh", dump]);
        assert!(
            out.status.success(),
            "{host}: {cmd}-restore:\n{}",
            show(&out)
        );
    }
}

fn playbook(file: &Path) -> String {
    let text = fs::read_to_string(file).expect("read a corpus file");
    let rules: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(|l| Value::String(l.to_string()))
        .collect();
    format!(
        "- name: corpus {}
  hosts: all
  firewall:
    baseline: true
    allow: [ssh]
    policy: {{input: drop, forward: drop, output: accept}}
    ipv6: true
    preserve: [\"f2b-*\"]
    rules: {}
",
        file.display(),
        Value::Array(rules)
    )
}

/// Why a run did not give `want` on every host: statuses, errors, diffs.
fn why(out: &std::process::Output, want: &str) -> Option<String> {
    let v = match serde_json::from_str::<Value>(&String::from_utf8_lossy(&out.stdout)) {
        Ok(v) => v,
        Err(_) => return Some(show(out)),
    };
    let st = statuses(&v);
    let bad: Vec<String> = st
        .iter()
        .filter(|(_, s)| s.as_str() != want)
        .map(|(h, s)| {
            let e = host_entry(&v, h);
            format!(
                "{h}: {s} [{}] {}\n{}",
                e["step"].as_str().unwrap_or(""),
                e["error"].as_str().unwrap_or(""),
                e["diff"].as_str().unwrap_or("")
            )
        })
        .collect();
    if bad.is_empty() && !st.is_empty() {
        None
    } else {
        Some(bad.join("\n"))
    }
}

#[test]
fn every_corpus_file_converges_and_reruns_ok() {
    // Every iptables build the lab has: 1.8.7, 1.8.9 and 1.8.11, each with
    // the nf_tables and the legacy backend (h005 and h006 are switched to
    // legacy the way an operator does it).
    let lab = Lab::up_distros(6, &["debian11", "debian13", "debian12", "debian12-legacy"]);
    let hosts: Vec<String> = lab.hosts().into_iter().map(|h| h.name).collect();
    for h in ["h005", "h006"] {
        let out = lab.exec_in(
            h,
            &[
                "sh",
                "-c",
                "update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null && \
                 update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null",
            ],
        );
        assert!(out.status.success(), "{h}: {}", show(&out));
    }
    let scratch = Scratch::new();
    let inv = lab.inventory();
    let mut failures = Vec::new();
    let mut passed = Vec::new();
    for file in corpus_files() {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        for h in &hosts {
            load_fail2ban(&lab, h);
        }
        let pb = scratch.write(&format!("{name}.yml"), &playbook(&file));
        let mut verdict = None;
        for (cmd, want) in [("apply", "changed"), ("apply", "ok"), ("audit", "ok")] {
            let out = run_json(cmd, &pb, &inv, &[]);
            if let Some(w) = why(&out, want) {
                verdict = Some(format!(
                    "{name}: {cmd} (wanted {want}, exit {}):\n{w}",
                    code(&out)
                ));
                break;
            }
            let v = report(&out);
            // The preserved fail2ban chain is still there, ban and all.
            for h in &hosts {
                let e = host_entry(&v, h);
                assert_ne!(e["status"], "rolled_back", "{name}: {h}: {e:#}");
            }
        }
        for h in &hosts {
            let out = lab.exec_in(
                h,
                &[
                    "sh",
                    "-c",
                    "iptables-save -t filter; ip6tables-save -t filter",
                ],
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("-A f2b-sshd -s 203.0.113.66/32 -j REJECT")
                    && text.contains("-A f2b-sshd -s 2001:db8::66/128 -j REJECT"),
                "{name}: {h}: fail2ban's bans were not preserved:\n{text}"
            );
        }
        match verdict {
            Some(v) => failures.push(v),
            None => passed.push(name),
        }
    }
    eprintln!("corpus files converged: {passed:?}");
    assert!(
        failures.is_empty(),
        "{} of {} corpus files did not converge:\n\n{}",
        failures.len(),
        failures.len() + passed.len(),
        failures.join("\n\n")
    );
}

/// The host canonicalisation (the canon step of src/remote/scripts, over
/// plain SSH) on a real lab host: the host's form of rules rampart cannot know
/// offline comes back paired with the desired rules, loading that form
/// verifies with no difference, and the probe left nothing on the host
/// (rules, files, processes, as the audit's read-only test sees them).
#[test]
fn host_canonicalisation_is_exact_and_leaves_nothing() {
    use rampart::firewall::{
        canon_probe, desired, diff, host_canonical, parse_save, render, with_preserved, Family,
        FirewallSpec, Rule,
    };
    use rampart::remote::script::{self, Kind, Script};
    use rampart::remote::shell::Sections;
    let lab = Lab::up(1);
    let host = "h001";
    load_fail2ban(&lab, host);
    let spec = FirewallSpec {
        rules: [
            "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd",
            "-A INPUT -p tcp --syn --dport 22 -m connlimit --connlimit-above 3 -j REJECT",
            "-A OUTPUT -m owner --uid-owner root -j ACCEPT",
            "-A OUTPUT -p tcp --dport 25 -m owner --gid-owner daemon -j REJECT",
            "-A CORPUS -m string --string \"GET /x\" --algo bm -j DROP",
            "-A CORPUS -j NFLOG --nflog-group 3",
        ]
        .iter()
        .map(|l| Rule::parse(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect(),
        preserve: vec!["f2b-*".to_string()],
        ..FirewallSpec::default()
    };
    let noise = crate::audit::login_noise(&lab, host);
    let before = crate::audit::snapshot(&lab, host);
    for (family, cmd) in [(Family::V4, "iptables"), (Family::V6, "ip6tables")] {
        let live_text = lab.exec_in(host, &["sh", "-c", &format!("{cmd}-save")]);
        let live = parse_save(&String::from_utf8_lossy(&live_text.stdout), family)
            .unwrap_or_else(|e| panic!("{e}"));
        let want = desired(&spec, family);
        let probe = canon_probe(&want, &live);
        let tag = if family == Family::V4 { "v4" } else { "v6" };
        let step = Script::new(Kind::Canon)
            .set("rp_families", tag)
            .set("rp_probe_v4", if tag == "v4" { probe.as_str() } else { "" })
            .set("rp_probe_v6", if tag == "v6" { probe.as_str() } else { "" });
        let script = format!("{}{}", script::preamble("N0NCE"), step.render());
        let out = lab.ssh(host, &script);
        assert!(out.status.success(), "{cmd}: {}", show(&out));
        let sections = Sections::parse(&String::from_utf8_lossy(&out.stdout), "N0NCE");
        assert_eq!(
            sections.text(&format!("rccanon{tag}")).trim(),
            "0",
            "{cmd}: {}",
            show(&out)
        );
        // The probe ran elsewhere: the host's own tables are as they were.
        let now = lab.exec_in(host, &["sh", "-c", &format!("{cmd}-save")]);
        let now = parse_save(&String::from_utf8_lossy(&now.stdout), family)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            now, live,
            "{cmd}: the probe touched the host's own namespace"
        );
        let printed = sections.text(&format!("canon{tag}")).to_string();
        let hc =
            host_canonical(&want, &printed).unwrap_or_else(|e| panic!("{cmd}: {e}\n{printed}"));
        let respelled: Vec<String> = hc.respelled.iter().map(|(_, h)| h.to_line()).collect();
        assert!(
            respelled.contains(&"-A OUTPUT -m owner --uid-owner 0 -j ACCEPT".to_string()),
            "{cmd}: {respelled:#?}"
        );
        assert!(
            respelled.iter().any(|l| l.contains("--gid-owner 1 ")),
            "daemon is gid 1: {respelled:#?}"
        );
        assert!(
            !respelled.iter().any(|l| l.contains("connlimit")),
            "connlimit is certain offline: {respelled:#?}"
        );
        // Applied for real, the host's form verifies with no difference,
        // and the preserved chain is still the live one.
        let full = with_preserved(&hc.ruleset, &live, &spec.preserve);
        let script = format!("printf '%s' \"$1\" | {cmd}-restore && {cmd}-save");
        let out = lab.exec_in(host, &["sh", "-c", &script, "sh", &render(&full)]);
        assert!(out.status.success(), "{cmd}: {}", show(&out));
        let after = parse_save(&String::from_utf8_lossy(&out.stdout), family)
            .unwrap_or_else(|e| panic!("{e}"));
        let d = diff(&full, &after);
        assert!(d.is_empty(), "{cmd}: {d}");
        let offline = with_preserved(&want, &live, &spec.preserve);
        assert!(
            !diff(&offline, &after).is_empty(),
            "{cmd}: the offline form would differ"
        );
        // Back to the state before, for the read-only comparison.
        let script = format!("printf '%s' \"$1\" | {cmd}-restore");
        let reset = lab.exec_in(host, &["sh", "-c", &script, "sh", &render(&live)]);
        assert!(reset.status.success(), "{cmd}: {}", show(&reset));
    }
    // The probes themselves: nothing changed but what the test itself
    // loaded and restored (the tables are compared as printed).
    let after = crate::audit::snapshot(&lab, host);
    let changed = crate::audit::what_changed(&before, &after, &noise);
    assert!(changed.is_empty(), "the probe changed the host:\n{changed}");
}
