//! The operator's own conventions on a real fleet: exit codes a CI job
//! reads, jump hosts (native `proxy_jump`, ssh_config `ProxyJump`, `-J` in
//! Ansible's ssh args), and CI sharding with `report merge`.
//!
//! A host "behind" a jump accepts SSH only from the jump host: a rule in its
//! `raw` table (PREROUTING) drops every other SYN to port 22. rampart owns
//! the `filter` table only and never touches `raw`, so the restriction
//! holds whatever ruleset a test applies, and no test depends on the
//! engine's own rules to keep the controller out. Setup and assertions go
//! through `exec_in` (no SSH).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::rollout::{
    code, error_of, in_host, in_host_ok, q, repo, report, run_json, s, sshd_log, statuses, Scratch,
};
use crate::support::{rampart, show, Lab};

/// Let `host` accept SSH only from `jump`; and give both static neighbour
/// entries for each other (the lab has static ones toward the gateway only).
fn put_behind(lab: &Lab, host: &str, jump: &str) {
    let state = lab.state();
    let find = |n: &str| {
        state
            .hosts
            .iter()
            .find(|h| h.name == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n}"))
    };
    let (h, j) = (find(host), find(jump));
    in_host(
        lab,
        host,
        &format!(
            "ip neigh replace {} lladdr {} dev eth0 nud permanent",
            j.address, j.mac
        ),
    );
    in_host(
        lab,
        jump,
        &format!(
            "ip neigh replace {} lladdr {} dev eth0 nud permanent",
            h.address, h.mac
        ),
    );
    in_host(
        lab,
        host,
        &format!(
            "iptables -t raw -A PREROUTING -p tcp --dport 22 ! -s {} -j DROP",
            j.address
        ),
    );
}

/// Successful logins in a host's sshd log.
fn logins(lab: &Lab, host: &str) -> usize {
    sshd_log(lab, host).matches("Accepted publickey").count()
}

fn input_policy(lab: &Lab, host: &str) -> String {
    in_host(lab, host, "iptables -S INPUT | head -1")
        .trim()
        .to_string()
}

/// Every exit code a run can end with, from the real binary: 0 converged,
/// 1 bad input, 2 drift, 3 a host could not be converged. (130, a second
/// Ctrl-C, is `rollout::second_ctrl_c_exits_at_once_and_the_switch_restores_the_host`.)
#[test]
fn exit_codes_of_real_runs() {
    let lab = Lab::up(2);
    let inv = lab.inventory();
    let pb = repo("playbooks/baseline.yml");
    let out = run_json("audit", &pb, &inv, &[]);
    assert_eq!(code(&out), 2, "a fresh fleet drifts: {}", show(&out));
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = run_json("audit", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "compliant: {}", show(&out));
    let out = run_json("audit", &repo("playbooks/no-such.yml"), &inv, &[]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    lab.cut_link("h002");
    let out = run_json("audit", &pb, &inv, &[]);
    lab.restore_link("h002");
    assert_eq!(code(&out), 3, "h002 unreachable: {}", show(&out));
    assert_eq!(
        statuses(&report(&out)),
        BTreeMap::from([
            ("h001".to_string(), "ok".to_string()),
            ("h002".to_string(), "unreachable".to_string())
        ])
    );
}

const BEHIND: [&str; 4] = ["h002", "h003", "h004", "h005"];

/// h002..h005 accept SSH only from h001. Through h001 (`proxy_jump`), they
/// converge at once: connection A, the fresh connection B of the confirm
/// step (the applied rules let SSH in only from h001: B proves the jump is
/// used), verify, persist. One session to h001 carries all eight
/// connections, at most four at a time (`--forks 2`).
#[test]
fn converges_hosts_that_accept_ssh_only_from_a_jump_host() {
    let lab = Lab::up(5);
    for h in BEHIND {
        put_behind(&lab, h, "h001");
    }
    let scratch = Scratch::new();
    let direct = scratch.write(
        "direct.yml",
        &crate::rollout::inventory(&lab, "  ssh_config: none\n", &[("h002", "")]),
    );
    let pb = repo("playbooks/baseline.yml");
    let out = run_json("audit", &pb, &direct, &[]);
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert!(
        error_of(&report(&out), "h002").contains("TCP connect"),
        "the controller cannot reach h002 directly: {}",
        show(&out)
    );

    let jump = lab.host("h001").address.to_string();
    let only_from_jump = scratch.write(
        "from-jump.yml",
        &format!(
            "- hosts: all\n  firewall:\n    allow: [{{port: 22, proto: tcp, from: {jump}/32}}]\n    ipv6: false\n"
        ),
    );
    let mut hosts = vec![("h001", "")];
    hosts.extend(BEHIND.iter().map(|h| (*h, "proxy_jump: h001")));
    let inv = scratch.write(
        "inv.yml",
        &crate::rollout::inventory(&lab, "  ssh_config: none\n", &hosts),
    );
    let limit = ["--limit", "h002,h003,h004,h005"];
    let before = logins(&lab, "h001");
    let out = run_json(
        "apply",
        &only_from_jump,
        &inv,
        &[&limit[..], &["--forks", "2"]].concat(),
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    assert_eq!(
        statuses(&v),
        BEHIND
            .iter()
            .map(|h| (h.to_string(), "changed".to_string()))
            .collect::<BTreeMap<_, _>>(),
        "{}",
        show(&out)
    );
    for h in BEHIND {
        assert_eq!(input_policy(&lab, h), "-P INPUT DROP");
        assert!(
            in_host(&lab, h, "iptables -S INPUT").contains(&format!("-s {jump}/32")),
            "{h}"
        );
    }
    // One session carries all eight connections. (Another is opened only
    // if a channel open takes over half a second: a starved jump on a
    // loaded machine; eight would mean no sharing at all.)
    let sessions = logins(&lab, "h001") - before;
    assert!(
        (1..=3).contains(&sessions),
        "{sessions} sessions to the jump for 4 hosts, A and B:\n{}",
        sshd_log(&lab, "h001")
    );
    // Idempotent through the jump too.
    let out = run_json("apply", &only_from_jump, &inv, &limit);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        statuses(&report(&out)).values().all(|s| s == "ok"),
        "{}",
        show(&out)
    );
}

/// A chain of two jumps: h003 accepts SSH only from h002, which accepts
/// it only from h001. h001's session carries h002's, which carries h003's.
#[test]
fn a_chain_of_two_jumps() {
    let lab = Lab::up(3);
    put_behind(&lab, "h002", "h001");
    put_behind(&lab, "h003", "h002");
    let scratch = Scratch::new();
    let inv = scratch.write(
        "inv.yml",
        &crate::rollout::inventory(
            &lab,
            "  ssh_config: none\n",
            &[
                ("h001", ""),
                ("h002", "proxy_jump: h001"),
                ("h003", "proxy_jump: h002"),
            ],
        ),
    );
    let out = rampart(&[
        "inventory",
        "-i",
        s(&inv),
        "--limit",
        "h003",
        "--format",
        "json",
    ]);
    let v = report(&out);
    let chain: Vec<&str> = v["hosts"][0]["jumps"]
        .as_array()
        .expect("jumps")
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(chain, ["h001", "h002"], "{}", show(&out));
    let out = run_json(
        "audit",
        &repo("playbooks/baseline.yml"),
        &inv,
        &["--limit", "h003"],
    );
    assert_eq!(
        code(&out),
        2,
        "drift, read through two jumps: {}",
        show(&out)
    );
    assert_eq!(report(&out)["hosts"][0]["os"], "debian");
}

/// A playbook that forgets SSH, applied through a jump: the fresh
/// connection through the jump fails, the host is rolled back over the
/// first one (through the jump as well). The jump comes from `-J` in an
/// Ansible inventory's ssh args; keys and known_hosts from an ssh_config.
#[test]
fn a_lockout_behind_a_jump_is_rolled_back() {
    let lab = Lab::up(2);
    put_behind(&lab, "h002", "h001");
    let scratch = Scratch::new();
    let cfg = scratch.write(
        "ssh_config",
        &format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n",
            lab.identity().display(),
            lab.known_hosts().display()
        ),
    );
    let inv = scratch.write(
        "hosts.ini",
        &format!(
            "[jumps]\nh001 ansible_host={}\n\n[behind]\nh002 ansible_host={}\n\n[behind:vars]\nansible_ssh_common_args='-J root@h001'\n",
            lab.host("h001").address,
            lab.host("h002").address
        ),
    );
    let fresh = in_host(&lab, "h002", "iptables-save -t filter | grep -v '^#'");
    // Predicted first: through a jump, the source the host sees (and the
    // one its rules must let in) is the jump's address.
    let out = run_json(
        "apply",
        &repo("playbooks/lockout.yml"),
        &inv,
        &["--limit", "h002", "--ssh-config", s(&cfg)],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h002"], "failed", "{}", show(&out));
    let jump = lab.host("h001").address;
    assert_eq!(
        error_of(&v, "h002"),
        format!(
            "the new rules would drop NEW SSH from {jump} at INPUT policy DROP: nothing applied"
        )
    );
    // Applied for real (--no-predict), the lockout is rolled back.
    let out = run_json(
        "apply",
        &repo("playbooks/lockout.yml"),
        &inv,
        &["--limit", "h002", "--ssh-config", s(&cfg), "--no-predict"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h002"], "rolled_back", "{}", show(&out));
    let err = error_of(&v, "h002");
    assert!(
        err.contains("via jump host h001") && err.contains("restored over the original connection"),
        "{err}"
    );
    assert_eq!(
        in_host(&lab, "h002", "iptables-save -t filter | grep -v '^#'")
            .lines()
            .map(|l| l.rsplit_once(' ').map_or(l, |(a, _)| a))
            .collect::<Vec<_>>(),
        fresh
            .lines()
            .map(|l| l.rsplit_once(' ').map_or(l, |(a, _)| a))
            .collect::<Vec<_>>(),
        "h002 is back on its previous rules"
    );
    assert!(
        in_host_ok(
            &lab,
            "h002",
            "test ! -e /etc/sysconfig/iptables && test ! -e /etc/iptables/rules.v4"
        ),
        "nothing persisted"
    );
    // And it is reachable through the jump again.
    let out = run_json(
        "audit",
        &repo("playbooks/baseline.yml"),
        &inv,
        &["--limit", "h002", "--ssh-config", s(&cfg)],
    );
    assert_eq!(code(&out), 2, "drift, not unreachable: {}", show(&out));
}

/// A jump host that does not answer makes the hosts behind it
/// `unreachable`, and the error names the jump. One whose host key is not
/// known fails them (trust, not reachability), naming it too.
#[test]
fn a_dead_or_unknown_jump_names_itself() {
    let lab = Lab::up(3);
    put_behind(&lab, "h002", "h001");
    put_behind(&lab, "h003", "h001");
    let scratch = Scratch::new();
    // The jump comes from ssh_config's ProxyJump this time.
    let cfg = scratch.write("ssh_config", "Host h002 h003\n  ProxyJump h001\n");
    let inv = scratch.write(
        "inv.yml",
        &crate::rollout::inventory(&lab, "", &[("h001", ""), ("h002", ""), ("h003", "")]),
    );
    let pb = repo("playbooks/baseline.yml");
    let jump = format!("jump host h001 ({}:22): ", lab.host("h001").address);
    let limit = ["--limit", "h002,h003", "--ssh-config", s(&cfg)];

    // Unknown host key of the jump: failed, before anything runs.
    let kh: String = fs::read_to_string(lab.known_hosts())
        .expect("known_hosts")
        .lines()
        .filter(|l| !l.starts_with(&format!("{} ", lab.host("h001").address)))
        .map(|l| format!("{l}\n"))
        .collect();
    let partial = scratch.write("known_hosts", &kh);
    let inv_partial = scratch.write(
        "inv-partial.yml",
        &fs::read_to_string(&inv)
            .expect("inv")
            .replace(&q(&lab.known_hosts()), &q(&partial)),
    );
    let out = run_json("audit", &pb, &inv_partial, &limit);
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    for h in ["h002", "h003"] {
        assert_eq!(statuses(&v)[h], "failed", "{}", show(&out));
        let e = error_of(&v, h);
        assert!(
            e.starts_with(&jump) && e.contains("host key of h001 is not in"),
            "{e}"
        );
    }

    lab.cut_link("h001");
    let out = run_json("audit", &pb, &inv, &limit);
    lab.restore_link("h001");
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    for h in ["h002", "h003"] {
        assert_eq!(statuses(&v)[h], "unreachable", "{}", show(&out));
        let e = error_of(&v, h);
        assert!(e.starts_with(&format!("{jump}TCP connect to")), "{e}");
    }
}

fn host_names(v: &Value) -> BTreeSet<String> {
    statuses(v).into_keys().collect()
}

/// `--shard K/N` in a CI matrix: 3 shards of a 12-host fleet cover each
/// host exactly once, and `report merge` of their JSON reports says what
/// one unsharded run says: same hosts, same statuses, same exit code.
#[test]
fn three_shards_cover_a_12_host_fleet_once_and_merge_into_one_run() {
    let lab = Lab::up(12);
    let inv = lab.inventory();
    let pb = repo("playbooks/baseline.yml");
    // A mixed fleet: three hosts compliant, the rest drifting.
    let out = run_json("apply", &pb, &inv, &["--limit", "h001,h005,h009"]);
    assert_eq!(code(&out), 0, "{}", show(&out));

    let scratch = Scratch::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = run_json("audit", &pb, &inv, &["--shard", &shard]);
        assert!(matches!(code(&out), 0 | 2), "{}", show(&out));
        let v = report(&out);
        assert_eq!(v["shard"]["index"], k);
        seen.extend(host_names(&v));
        files.push(scratch.write(&format!("shard{k}.json"), &crate::support::stdout(&out)));
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 12, "each host in exactly one shard: {seen:?}");
    assert_eq!(unique.len(), 12, "{seen:?}");

    let whole = run_json("audit", &pb, &inv, &[]);
    assert_eq!(code(&whole), 2, "{}", show(&whole));
    let whole = report(&whole);

    let mut args: Vec<&str> = vec!["report", "merge", "--format", "json"];
    // Any order of the files merges the same.
    args.extend(files.iter().rev().map(|f| s(f)));
    let junit = scratch.path().join("merged.xml");
    args.extend(["--junit", s(&junit)]);
    let merged_out = rampart(&args);
    assert_eq!(code(&merged_out), 2, "{}", show(&merged_out));
    let merged = report(&merged_out);
    assert_eq!(merged["summary"], whole["summary"], "{merged:#}\n{whole:#}");
    assert_eq!(statuses(&merged), statuses(&whole));
    assert_eq!(merged["summary"]["ok"], 3);
    assert_eq!(merged["summary"]["drift"], 9);
    assert!(fs::read_to_string(&junit)
        .expect("junit")
        .contains("tests=\"12\" failures=\"9\""));

    // The human recap of the merge, and a missing shard refused.
    let human = rampart(&["report", "merge", s(&files[0]), s(&files[1]), s(&files[2])]);
    assert_eq!(code(&human), 2);
    assert!(
        crate::support::stdout(&human).contains("12 hosts: 3 ok, 9 drift"),
        "{}",
        show(&human)
    );
    let partial = rampart(&["report", "merge", s(&files[0]), s(&files[2])]);
    assert_eq!(code(&partial), 1, "{}", show(&partial));
    assert!(String::from_utf8_lossy(&partial.stderr).contains("missing shard report(s): 2/3"));
}
