//! `rampart apply` on a real lab, trying to break the guarantees of
//! docs/design.md ("Guarantees").
//!
//! Every assertion about a host is made from inside the host (`exec_in`,
//! its namespaces, no SSH), never from rampart's own report alone.
//! The helpers here are shared with `audit.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// [`baseline_converges`] on the personalities (tests/it/distros.rs: on real distros).
#[test]
fn baseline_converges_a_mixed_fleet_to_the_seed() {
    baseline_converges(&Lab::up(4));
}

/// A mixed fleet converges to exactly the seed's rules, persisted where each
/// distro loads them, with an honest JSON report and nothing left behind.
pub(crate) fn baseline_converges(lab: &Lab) {
    let hosts = lab.hosts();
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    assert_eq!(v["command"], "apply", "{v:#}");
    assert_eq!(v["summary"]["hosts"], hosts.len(), "{v:#}");
    assert_eq!(v["summary"]["changed"], hosts.len(), "{v:#}");
    for k in ["ok", "drift", "rolled_back", "failed", "unreachable"] {
        assert_eq!(v["summary"][k], 0, "summary.{k}: {v:#}");
    }
    for h in &hosts {
        let r = host_report(&v, &h.name);
        let name = &h.name;
        assert_eq!(r["status"], "changed", "{name}: {r:#}");
        assert_eq!(r["address"], h.address.to_string(), "{name}");
        assert_eq!(r["error"], Value::Null, "{name}: {r:#}");
        assert_eq!(r["os"], expected_os(&h.kind), "{name}: {r:#}");
        let backend = r["backend"].as_str().unwrap_or_default();
        match expected_backend(&h.kind) {
            Some(want) => assert_eq!(backend, want, "{name}: {r:#}"),
            None => assert!(
                backend == "nf_tables" || backend == "legacy",
                "{name}: backend {backend:?}"
            ),
        }
        let paths = persist_paths(&h.personality);
        assert_eq!(r["persisted"], serde_json::json!(paths), "{name}: {r:#}");
        assert!(
            r["diff"].as_str().is_some_and(|d| d.contains("--dport 22")),
            "{name}: the diff shows what changed: {r:#}"
        );
        let warnings = r["warnings"].as_array().expect("warnings is an array");
        assert!(warnings.is_empty(), "{name}: {r:#}");
        // A host with no boot loader in the lab (ubuntu22): rampart installs
        // its own (boot: ensure, the default), after the rules were persisted.
        if has_boot_loader(&h.kind) {
            assert!(
                r.get("installed").is_none(),
                "{name}: loaders present: {r:#}"
            );
        } else {
            assert!(
                r["installed"].as_array().is_some_and(|i| i.len() == 1
                    && i[0]
                        .as_str()
                        .is_some_and(|t| t.contains("rampart-firewall"))),
                "{name}: {r:#}"
            );
            assert!(
                r["diff"]
                    .as_str()
                    .is_some_and(|d| d.contains("+ boot loader")),
                "{name}: {r:#}"
            );
        }

        // The host itself: exactly the seed, both families.
        let (v4, v6) = live_both(lab, name);
        assert_eq!(filter_table(&v4), SEED_V4, "{name}: iptables-save");
        assert_eq!(filter_table(&v6), seed_v6(), "{name}: ip6tables-save");
        // Persisted files: the right place, 0600, the same rules.
        for (path, want) in paths.iter().zip([SEED_V4.to_string(), seed_v6()]) {
            let info = file_info(lab, name, path)
                .unwrap_or_else(|| panic!("{name}: {path} was not written"));
            let (meta, content) = info.split_once('\n').expect("stat line");
            assert!(meta.starts_with("600 "), "{name}: {path} mode: {meta}");
            assert_eq!(
                filter_table(&normalize_save(content)),
                want,
                "{name}: {path}"
            );
        }
        // The other family's paths are not written.
        let other = if paths[0].starts_with("/etc/sysconfig") {
            persist_paths("debian12")
        } else {
            persist_paths("rocky9")
        };
        for p in other {
            assert_eq!(file_info(lab, name, p), None, "{name}: {p} written");
        }
        // Nothing left behind but the backups.
        assert_eq!(
            state_dir(lab, name),
            Some(vec!["backup.v4".to_string(), "backup.v6".to_string()]),
            "{name}: /var/lib/rampart"
        );
        let left = settle_processes(lab, name, Duration::from_secs(5));
        assert!(left.is_empty(), "{name}: processes left: {left:?}");
        // And plain OpenSSH still gets in (NEW connections pass).
        let ssh = lab.ssh(name, "true");
        assert!(ssh.status.success(), "{name}: {}", show(&ssh));
    }
}

/// [`second_run_is_ok`] on the personalities (tests/it/distros.rs: on real distros).
#[test]
fn second_run_is_ok_and_changes_nothing() {
    second_run_is_ok(&Lab::up(4));
}

/// Guarantee 5: a second run on a compliant fleet reports `ok` and changes
/// nothing: no rules, no file (mtime), no backup, no process.
pub(crate) fn second_run_is_ok(lab: &Lab) {
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let first = run("apply", &playbook("baseline.yml"), &lab.inventory(), &[]);
    assert_eq!(code(&first), 0, "{}", show(&first));
    let before: Vec<HostState> = hosts
        .iter()
        .map(|h| {
            assert!(settle_processes(lab, &h.name, Duration::from_secs(5)).is_empty());
            host_state(lab, &h.name, &h.personality)
        })
        .collect();
    let backups_before: Vec<_> = hosts
        .iter()
        .map(|h| file_info(lab, &h.name, "/var/lib/rampart/backup.v4"))
        .collect();
    let second = run(
        "apply",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--format", "json"],
    );
    assert_eq!(code(&second), 0, "{}", show(&second));
    let v = report(&second);
    assert_eq!(statuses(&v), all(&names, "ok"), "{v:#}");
    assert_eq!(v["summary"]["ok"], hosts.len(), "{v:#}");
    for (i, h) in hosts.iter().enumerate() {
        let r = host_report(&v, &h.name);
        assert_eq!(r["persisted"], serde_json::json!([]), "{}: {r:#}", h.name);
        assert_eq!(r["diff"], Value::Null, "{}: {r:#}", h.name);
        let left = settle_processes(lab, &h.name, Duration::from_secs(5));
        assert!(left.is_empty(), "{}: processes left: {left:?}", h.name);
        assert_eq!(
            host_state(lab, &h.name, &h.personality),
            before[i],
            "{}: the second run changed the host",
            h.name
        );
        assert_eq!(
            file_info(lab, &h.name, "/var/lib/rampart/backup.v4"),
            backups_before[i],
            "{}: the backup was rewritten",
            h.name
        );
    }
}

/// [`lockout_rolls_back`] on the personalities (tests/it/distros.rs: on real distros).
#[test]
fn lockout_rolls_every_host_back() {
    lockout_rolls_back(&Lab::up(4));
}

/// A playbook without ssh locks every NEW connection out: the confirm
/// fails, every host is `rolled_back` to exactly its old rules, nothing is
/// persisted (guarantees 1 and 3), and the hosts answer plain ssh.
pub(crate) fn lockout_rolls_back(lab: &Lab) {
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    // h001, h002: converged earlier (persisted files exist), then a rule by
    // hand; h003, h004: fresh hosts with no rules at all.
    let pre = run(
        "apply",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--limit", "h001,h002"],
    );
    assert_eq!(code(&pre), 0, "{}", show(&pre));
    hand_rules(lab, "h001");
    let before: Vec<HostState> = hosts
        .iter()
        .map(|h| host_state(lab, &h.name, &h.personality))
        .collect();
    assert!(before[0].v4.contains("HANDMADE"), "{:?}", before[0]);

    // --no-predict: the lockout must really be applied, to test the rollback.
    let out = run(
        "apply",
        &playbook("lockout.yml"),
        &lab.inventory(),
        &["--format", "json", "--no-predict"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v), all(&names, "rolled_back"), "{v:#}");
    assert_eq!(v["summary"]["rolled_back"], hosts.len(), "{v:#}");
    for (i, h) in hosts.iter().enumerate() {
        let name = &h.name;
        let r = host_report(&v, name);
        assert_eq!(r["persisted"], serde_json::json!([]), "{name}: {r:#}");
        assert!(
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("nothing persisted")),
            "{name}: {r:#}"
        );
        let after = host_state(lab, name, &h.personality);
        assert!(
            same_rules(&after.v4, &before[i].v4),
            "{name}: iptables not restored:\nbefore:\n{}\nafter:\n{}",
            before[i].v4,
            after.v4
        );
        assert!(
            same_rules(&after.v6, &before[i].v6),
            "{name}: ip6tables not restored:\nbefore:\n{}\nafter:\n{}",
            before[i].v6,
            after.v6
        );
        assert_eq!(after.files, before[i].files, "{name}: persisted files");
        let mut dir = after.state_dir.clone().unwrap_or_default();
        dir.sort();
        assert_eq!(dir, ["backup.v4", "backup.v6"], "{name}: /var/lib/rampart");
        let left = settle_processes(lab, name, Duration::from_secs(5));
        assert!(left.is_empty(), "{name}: processes left: {left:?}");
        let ssh = lab.ssh(name, "true");
        assert!(ssh.status.success(), "{name}: {}", show(&ssh));
    }
}

/// [`killed_controller_restored_by_switch`] on the personalities (tests/it/distros.rs: on real distros).
#[test]
fn killed_controller_leaves_the_switch_to_restore_every_host() {
    killed_controller_restored_by_switch(&Lab::up(2));
}

/// Guarantee 1 with the controller SIGKILLed mid-transaction (rules applied,
/// confirmation pending): the dead-man switch alone brings every host back.
pub(crate) fn killed_controller_restored_by_switch(lab: &Lab) {
    let hosts = lab.hosts();
    hand_rules(lab, "h001");
    let before: Vec<HostState> = hosts
        .iter()
        .map(|h| host_state(lab, &h.name, &h.personality))
        .collect();

    // confirm-timeout must be >= 2 x connect-timeout + 5.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("apply")
        .arg(playbook("lockout.yml"))
        .arg("-i")
        .arg(lab.inventory())
        .args([
            "--connect-timeout",
            "4",
            "--confirm-timeout",
            "13",
            "--no-predict",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rampart");
    let started = Instant::now();
    // Kill while the fresh connection is still trying (4 s), before rampart
    // could restore over connection A itself.
    let applied = wait_until(Duration::from_secs(8), || {
        hosts
            .iter()
            .enumerate()
            .all(|(i, h)| live(lab, &h.name, "iptables") != before[i].v4)
    });
    child.kill().expect("SIGKILL rampart");
    let _ = child.wait();
    let killed_after = started.elapsed();
    assert!(
        applied,
        "the lockout rules never reached every host within 8 s"
    );
    // Nobody is left to restore over connection A: the rules stay locked
    // until the switch fires (13 s after arming).
    for (i, h) in hosts.iter().enumerate() {
        assert_ne!(
            live(lab, &h.name, "iptables"),
            before[i].v4,
            "{}: restored before the switch could fire ({killed_after:?})",
            h.name
        );
    }
    let restored = wait_until(Duration::from_secs(20), || {
        hosts.iter().enumerate().all(|(i, h)| {
            let (v4, v6) = live_both(lab, &h.name);
            same_rules(&v4, &before[i].v4) && same_rules(&v6, &before[i].v6)
        })
    });
    for (i, h) in hosts.iter().enumerate() {
        let name = &h.name;
        let after = host_state(lab, name, &h.personality);
        assert!(
            restored,
            "{name}: not restored within 20 s after SIGKILL at {killed_after:?}:\nbefore: {:?}\nafter: {after:?}",
            before[i]
        );
        assert_eq!(after.files, before[i].files, "{name}: persisted files");
        assert!(
            after.files.iter().all(Option::is_none),
            "{name}: something was persisted"
        );
        // The switch cleans up after itself (no pid file, no script) and
        // leaves its record: the claim it won, and what it did.
        let mut dir = after.state_dir.clone().unwrap_or_default();
        dir.sort();
        let claims = dir.iter().filter(|f| f.starts_with("claim.")).count();
        dir.retain(|f| !f.starts_with("claim."));
        assert_eq!(claims, 1, "{name}: one claim, the switch's");
        assert_eq!(
            dir,
            ["backup.v4", "backup.v6", "switch.state"],
            "{name}: /var/lib/rampart"
        );
        let record = lab.exec_in(name, &["cat", "/var/lib/rampart/switch.state"]);
        assert_eq!(
            stdout(&record).trim(),
            "restored",
            "{name}: the switch's record"
        );
        let left = settle_processes(lab, name, Duration::from_secs(5));
        assert!(left.is_empty(), "{name}: processes left: {left:?}");
        let ssh = lab.ssh(name, "true");
        assert!(ssh.status.success(), "{name}: {}", show(&ssh));
    }
    // The next run after a fired switch converges and tidies up.
    let again = run("apply", &playbook("baseline.yml"), &lab.inventory(), &[]);
    assert_eq!(code(&again), 0, "{}", show(&again));
    for h in &hosts {
        assert_eq!(
            state_dir(lab, &h.name),
            Some(vec!["backup.v4".to_string(), "backup.v6".to_string()]),
            "{}",
            h.name
        );
    }
}

/// Guarantee 8: a host at an address where nothing answers, a host whose
/// link is cut and a host whose sshd is down are `unreachable` (exit 3);
/// the others still converge.
#[test]
fn dead_addresses_are_unreachable_and_the_rest_converge() {
    let lab = Lab::up(4);
    let hosts = lab.hosts();
    let scratch = Scratch::new(&lab);
    // An address of this lab's subnet that no host uses.
    let o = hosts[0].address.octets();
    let ghost = std::net::Ipv4Addr::new(o[0], o[1], o[2], o[3] + 200);
    let mut body = String::new();
    for h in &hosts {
        body.push_str(&format!("  {}: {{address: {}}}\n", h.name, h.address));
    }
    body.push_str(&format!("  ghost: {{address: {ghost}}}\n"));
    let inv = inventory_with(&lab, &scratch, &body);
    lab.cut_link("h002");
    lab.stop_sshd("h004");
    let started = Instant::now();
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &inv,
        &["--format", "json"],
    );
    let took = started.elapsed();
    lab.restore_link("h002");
    lab.start_sshd("h004");
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let want: BTreeMap<String, String> = [
        ("h001", "changed"),
        ("h002", "unreachable"),
        ("h003", "changed"),
        ("h004", "unreachable"),
        ("ghost", "unreachable"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(statuses(&v), want, "{v:#}");
    assert_eq!(v["summary"]["unreachable"], 3, "{v:#}");
    assert_eq!(v["summary"]["changed"], 2, "{v:#}");
    for n in ["h002", "h004", "ghost"] {
        let r = host_report(&v, n);
        assert!(
            r["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{n}: {r:#}"
        );
    }
    assert!(
        took < Duration::from_secs(15),
        "unreachable hosts must cost about --connect-timeout, took {took:?}"
    );
    for n in ["h001", "h003"] {
        assert_eq!(filter_table(&live(&lab, n, "iptables")), SEED_V4, "{n}");
    }
    // The cut and the sshd-less hosts were never touched.
    for n in ["h002", "h004"] {
        assert!(is_kernel_default(&live(&lab, n, "iptables")), "{n}");
        assert_eq!(state_dir(&lab, n), None, "{n}");
    }
}

/// Guarantee 6: a changed host key fails the host before any command runs:
/// no session is even authenticated, no rules, no state dir.
#[test]
fn changed_host_key_fails_before_any_command() {
    let lab = Lab::up(2);
    lab.change_host_key("h001");
    let logins = accepted_logins(&lab, "h001");
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--format", "json", "--accept-new-host-keys"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let r = host_report(&v, "h001");
    assert_eq!(r["status"], "failed", "{r:#}");
    let err = r["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(err.contains("host key"), "{r:#}");
    assert_eq!(host_report(&v, "h002")["status"], "changed", "{v:#}");
    assert_eq!(
        accepted_logins(&lab, "h001"),
        logins,
        "a session was opened"
    );
    assert!(is_kernel_default(&live(&lab, "h001", "iptables")));
    assert!(is_kernel_default(&live(&lab, "h001", "ip6tables")));
    assert_eq!(state_dir(&lab, "h001"), None, "a command ran on h001");
    // --accept-new-host-keys never overrides a changed key.
    let kh = fs::read_to_string(lab.known_hosts()).expect("known_hosts");
    let key =
        fs::read_to_string(lab.state().paths().host("h001").host_key_pub()).expect("host key");
    let blob = key.split_whitespace().nth(1).expect("key blob");
    assert!(!kh.contains(blob), "the changed key was recorded");
}

/// Guarantee 6: an unknown host key fails (nothing runs) unless
/// `--accept-new-host-keys`, which records it; later runs trust it.
#[test]
fn unknown_host_key_fails_unless_accepted_then_is_recorded() {
    let lab = Lab::up(2);
    let scratch = Scratch::new(&lab);
    let empty_kh = scratch.write("known_hosts", "");
    let h1 = lab.host("h001");
    let h2 = lab.host("h002");
    let inv = inventory_with(
        &lab,
        &scratch,
        &format!(
            "  h001: {{address: {}, known_hosts: {:?}}}\n  h002: {{address: {}}}\n",
            h1.address,
            empty_kh.to_string_lossy(),
            h2.address
        ),
    );
    let logins = accepted_logins(&lab, "h001");
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &inv,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let r = host_report(&v, "h001");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert!(
        r["error"].as_str().unwrap_or_default().contains("host key"),
        "{r:#}"
    );
    assert_eq!(host_report(&v, "h002")["status"], "changed", "{v:#}");
    assert_eq!(
        accepted_logins(&lab, "h001"),
        logins,
        "a session was opened"
    );
    assert_eq!(state_dir(&lab, "h001"), None, "a command ran on h001");
    assert!(is_kernel_default(&live(&lab, "h001", "iptables")));
    assert_eq!(fs::read_to_string(&empty_kh).unwrap_or_default(), "");

    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &inv,
        &["--format", "json", "--accept-new-host-keys"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    assert_eq!(host_report(&v, "h001")["status"], "changed", "{v:#}");
    assert_eq!(host_report(&v, "h002")["status"], "ok", "{v:#}");
    let recorded = fs::read_to_string(&empty_kh).expect("known_hosts");
    let key =
        fs::read_to_string(lab.state().paths().host("h001").host_key_pub()).expect("host key");
    let blob = key.split_whitespace().nth(1).expect("key blob");
    assert!(recorded.contains(blob), "key not recorded: {recorded}");

    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &inv,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(host_report(&report(&out), "h001")["status"], "ok");
}

/// Guarantee 7: shell metacharacters in every inventory and playbook value
/// execute nothing, on the controller or on a host.
#[test]
fn hostile_values_execute_nothing() {
    let lab = Lab::up(2);
    let scratch = Scratch::new(&lab);
    let mark = format!(
        "/tmp/rampart-pwned-{}-{}",
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::Relaxed)
    );
    let pwned = |m: &str| {
        format!("$(touch${{IFS}}{m})`touch${{IFS}}{m}`;touch${{IFS}}{m};'\"|touch${{IFS}}{m}")
    };
    let evil = pwned(&mark);
    // A known_hosts file whose path is hostile (and has spaces).
    let kh_path = scratch
        .path()
        .join(format!("kh {}", evil.replace('/', "_")));
    fs::copy(lab.known_hosts(), &kh_path).expect("copy known_hosts");
    let h1 = lab.host("h001");
    let h2 = lab.host("h002");
    let q = |s: &str| serde_json::to_string(s).expect("json string");
    let inv = inventory_with(
        &lab,
        &scratch,
        &format!(
            "  {}: {{address: {}}}\n  h2: {{address: {}, known_hosts: {}}}\n  h3: {{address: {}}}\n",
            q(&format!("h{evil}")),
            h1.address,
            h2.address,
            q(&kh_path.to_string_lossy()),
            q(&evil)
        ),
    );
    let p4 = format!("/etc/rp4{evil}");
    let p6 = format!("/etc/rp6{}", evil.replace('/', "_"));
    let book = scratch.write(
        "hostile.yml",
        &format!(
            "- name: {}\n  hosts: all\n  firewall:\n    allow: [ssh]\n    persist: {{ipv4: {}, ipv6: {}}}\n",
            q(&format!("play {evil}")),
            q(&p4),
            q(&p6)
        ),
    );
    let out = run(
        "apply",
        &book.to_string_lossy(),
        &inv,
        &[
            "--format",
            "json",
            "--junit",
            &scratch.path().join("j.xml").to_string_lossy(),
        ],
    );
    let v = report(&out);
    let hostile_name = format!("h{evil}");
    let want: BTreeMap<String, String> = [
        (hostile_name.as_str(), "changed"),
        ("h2", "changed"),
        ("h3", "unreachable"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(statuses(&v), want, "{}", show(&out));
    assert_eq!(code(&out), 3, "{}", show(&out));
    // The persisted files are the literal paths.
    for (host, name) in [("h001", hostile_name.as_str()), ("h002", "h2")] {
        let r = host_report(&v, name);
        assert_eq!(r["persisted"], serde_json::json!([p4, p6]), "{r:#}");
        for p in [&p4, &p6] {
            let f = file_info(&lab, host, p);
            assert!(
                f.as_deref().is_some_and(|f| f.contains("--dport 22")),
                "{host}: {p} not written literally: {f:?}"
            );
        }
    }
    // Nothing ran anywhere.
    assert!(
        !Path::new(&mark).exists(),
        "{mark} created on the controller"
    );
    for h in ["h001", "h002"] {
        let out = lab.exec_in(
            h,
            &[
                "find",
                "/tmp",
                "/",
                "-maxdepth",
                "1",
                "-name",
                "rampart-pwned-*",
            ],
        );
        assert_eq!(stdout(&out), "", "{h}: something ran: {}", show(&out));
    }
    // A persist path with spaces is refused before any host is contacted.
    let logins = accepted_logins(&lab, "h001");
    let spaced = scratch.write(
        "spaced.yml",
        &format!(
            "- hosts: all\n  firewall:\n    allow: [ssh]\n    persist: {{ipv4: {}, ipv6: /etc/rp6}}\n",
            q(&format!("/etc/x; touch {mark}"))
        ),
    );
    let out = run("apply", &spaced.to_string_lossy(), &lab.inventory(), &[]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert_eq!(accepted_logins(&lab, "h001"), logins);
    // A hostile user name is refused before any host is contacted.
    let inv = inventory_with(
        &lab,
        &scratch,
        &format!(
            "  h001: {{address: {}, user: {}}}\n",
            h1.address,
            q(&format!("root{evil}"))
        ),
    );
    let out = run("apply", &playbook("baseline.yml"), &inv, &[]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert_eq!(accepted_logins(&lab, "h001"), logins);
    assert!(
        !Path::new(&mark).exists(),
        "{mark} created on the controller"
    );
}

/// Guarantee 2: rules the host itself rejects (at `iptables-restore --test`,
/// or only when really applied) fail the host and leave its rules exactly
/// as they were: never half a ruleset, nothing persisted, no switch left.
#[test]
fn rules_the_host_rejects_fail_and_change_nothing() {
    let lab = Lab::up(2);
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let pre = run(
        "apply",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--limit", "h001"],
    );
    assert_eq!(code(&pre), 0, "{}", show(&pre));
    hand_rules(&lab, "h001");
    let scratch = Scratch::new(&lab);
    // Valid iptables-save syntax, but the host has no such match module (the
    // test rejects it) / no such chain (nf_tables' --test lets it through,
    // the real restore does not).
    for (rule, step) in [
        ("-A INPUT -m nosuchmatch -j ACCEPT", "test"),
        (
            "-A INPUT -p tcp -m tcp --dport 8443 -j NOSUCHCHAIN",
            "apply",
        ),
    ] {
        let book = scratch.write(
            "rejected.yml",
            &format!("- hosts: all\n  firewall:\n    allow: [ssh, http]\n    rules: [{rule:?}]\n"),
        );
        let before: Vec<HostState> = hosts
            .iter()
            .map(|h| host_state(&lab, &h.name, &h.personality))
            .collect();
        let out = run(
            "apply",
            &book.to_string_lossy(),
            &lab.inventory(),
            &["--format", "json"],
        );
        assert_eq!(code(&out), 3, "{rule}: {}", show(&out));
        let v = report(&out);
        assert_eq!(statuses(&v), all(&names, "failed"), "{rule}: {v:#}");
        for (i, h) in hosts.iter().enumerate() {
            let name = &h.name;
            let r = host_report(&v, name);
            assert_eq!(r["step"], step, "{rule}: {name}: {r:#}");
            assert_eq!(r["persisted"], serde_json::json!([]), "{name}: {r:#}");
            let after = host_state(&lab, name, &h.personality);
            assert!(
                same_rules(&after.v4, &before[i].v4) && same_rules(&after.v6, &before[i].v6),
                "{rule}: {name}: rules changed:\nbefore: {:?}\nafter: {after:?}",
                before[i]
            );
            assert_eq!(after.files, before[i].files, "{rule}: {name}: persisted");
            // Backups at most (a fresh host fails the test before any).
            let dir = after.state_dir.clone().unwrap_or_default();
            assert!(
                dir.iter().all(|f| f == "backup.v4" || f == "backup.v6"),
                "{rule}: {name}: /var/lib/rampart holds {dir:?}"
            );
            let left = settle_processes(&lab, name, Duration::from_secs(5));
            assert!(left.is_empty(), "{rule}: {name}: processes left: {left:?}");
        }
    }
}

/// Guarantee 1 with the network dropping mid-transaction: the link goes
/// down once the lockout rules are in, so neither a fresh connection nor
/// connection A answers; the switch restores the host, and once the link is
/// back rampart proves it with a new connection: `rolled_back`.
#[test]
fn network_drop_mid_transaction_is_rolled_back_by_the_switch() {
    let lab = Lab::up(1);
    hand_rules(&lab, "h001");
    let h = lab.host("h001");
    let before = host_state(&lab, "h001", &h.personality);
    let inv = lab.inventory();
    let book = playbook("lockout.yml");
    let apply = thread::spawn(move || {
        let inv = inv.to_string_lossy().into_owned();
        rampart(&[
            "apply",
            &book,
            "-i",
            &inv,
            "--no-predict",
            "--connect-timeout",
            "4",
            "--confirm-timeout",
            "13",
            "--format",
            "json",
        ])
    });
    let applied = wait_until(Duration::from_secs(8), || {
        live(&lab, "h001", "iptables") != before.v4
    });
    lab.cut_link("h001");
    // The fresh connection fails 4 s after the apply, the restore over A
    // 4 s later; the switch fires 13 s after arming: bring the link back
    // in between, so rampart can prove the host is back.
    thread::sleep(Duration::from_millis(9500));
    lab.restore_link("h001");
    let out = apply.join().expect("the apply thread");
    assert!(applied, "the lockout rules never reached the host");
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let r = host_report(&v, "h001");
    assert_eq!(r["status"], "rolled_back", "{r:#}");
    assert_eq!(r["persisted"], serde_json::json!([]), "{r:#}");
    // Connection A was down too: only the switch could restore the rules.
    // (When the link went down before A's answer to the apply came back,
    // rampart only tries the fresh connection once the link is back; it
    // gets through after the switch fired, and says so.)
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("dead-man switch")),
        "{r:#}"
    );
    let after = host_state(&lab, "h001", &h.personality);
    assert_eq!(after.v4, before.v4, "iptables not restored");
    assert_eq!(after.v6, before.v6, "ip6tables not restored");
    assert_eq!(after.files, before.files, "persisted files");
    let left = settle_processes(&lab, "h001", Duration::from_secs(5));
    assert!(left.is_empty(), "processes left: {left:?}");
    let ssh = lab.ssh("h001", "true");
    assert!(ssh.status.success(), "{}", show(&ssh));
}

/// [`concurrent_applies_never_orphan_a_switch`] on one personality host
/// (tests/it/distros.rs: on every real distro, busybox's flock-less one too).
#[test]
fn concurrent_applies_on_one_host_never_orphan_a_switch() {
    concurrent_applies_never_orphan_a_switch(&Lab::up(1));
}

/// Two applies on every host at the same moment (two operators, two CI
/// jobs): one converges it, the other is refused as busy or finds it ok;
/// never two armed switches, so no orphaned switch that would silently
/// restore the old rules after a `changed` report.
pub(crate) fn concurrent_applies_never_orphan_a_switch(lab: &Lab) {
    let inv = lab.inventory();
    let hosts = lab.hosts();
    for round in 0..4 {
        for h in &hosts {
            sh_in(
                lab,
                &h.name,
                "iptables -F && iptables -P INPUT ACCEPT && ip6tables -F && ip6tables -P INPUT ACCEPT",
            );
        }
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let inv = inv.clone();
                thread::spawn(move || {
                    run(
                        "apply",
                        &playbook("baseline.yml"),
                        &inv,
                        &["--format", "json"],
                    )
                })
            })
            .collect();
        let outs: Vec<Output> = runs
            .into_iter()
            .map(|t| t.join().expect("apply thread"))
            .collect();
        for h in &hosts {
            let name = &h.name;
            // Right after both ended, no switch may be armed any more.
            let left = strays(lab, name);
            assert!(
                !left
                    .iter()
                    .any(|p| p.contains("sleep") || p.contains("switch")),
                "round {round}: {name} ({}): a switch is still armed after both runs: {left:?}",
                h.kind
            );
            let mut st: Vec<String> = outs
                .iter()
                .map(|o| {
                    host_report(&report(o), name)["status"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            st.sort();
            // Serialized by the busy check: one changes the host; the other
            // is refused (failed, busy), finds it converged (ok), or read the
            // host before the first applied and came after it ended
            // (changed again). Never a rollback: both runs' fresh
            // connections succeed.
            assert!(
                st.contains(&"changed".to_string())
                    && st
                        .iter()
                        .all(|s| s == "changed" || s == "failed" || s == "ok"),
                "round {round}: {name} ({}): {st:?}\n{}\n{}",
                h.kind,
                show(&outs[0]),
                show(&outs[1])
            );
            assert_eq!(
                filter_table(&live(lab, name, "iptables")),
                SEED_V4,
                "round {round}: {name} ({})",
                h.kind
            );
            assert_eq!(
                state_dir(lab, name),
                Some(vec!["backup.v4".to_string(), "backup.v6".to_string()]),
                "round {round}: {name} ({})",
                h.kind
            );
        }
    }
}

/// `become: true` converges through passwordless sudo; where sudo wants a
/// password the host is `failed` with a clear message and nothing ran. A
/// host that no play matches is never contacted.
#[test]
fn become_through_sudo_and_unmatched_hosts_left_alone() {
    let lab = Lab::up(3);
    let scratch = Scratch::new(&lab);
    let [h1, h2, h3] = [lab.host("h001"), lab.host("h002"), lab.host("h003")];
    let inv = inventory_with(
        &lab,
        &scratch,
        &format!(
            "  h001: {{address: {}, user: deploy, become: true}}\n  h002: {{address: {}, user: nopw, become: true}}\n  h003: {{address: {}}}\ngroups:\n  sudoers: [h001, h002]\n",
            h1.address, h2.address, h3.address
        ),
    );
    let book = scratch.write(
        "sudoers.yml",
        "- hosts: sudoers\n  firewall:\n    allow: [http, https, ssh]\n",
    );
    let logins = accepted_logins(&lab, "h003");
    let out = run(
        "apply",
        &book.to_string_lossy(),
        &inv,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let want: BTreeMap<String, String> = [("h001", "changed"), ("h002", "failed")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(statuses(&v), want, "h003 is in no play: {v:#}");
    assert_eq!(filter_table(&live(&lab, "h001", "iptables")), SEED_V4);
    let r = host_report(&v, "h002");
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("sudo")),
        "{r:#}"
    );
    assert!(is_kernel_default(&live(&lab, "h002", "iptables")));
    assert_eq!(
        state_dir(&lab, "h002"),
        None,
        "a command ran as root on h002"
    );
    assert_eq!(accepted_logins(&lab, "h003"), logins, "h003 was contacted");
    assert_eq!(state_dir(&lab, "h003"), None);
    // Second run through sudo: ok.
    let out = run(
        "apply",
        &book.to_string_lossy(),
        &inv,
        &["--format", "json", "--limit", "h001"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(host_report(&report(&out), "h001")["status"], "ok");
}
