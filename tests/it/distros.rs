//! Real distributions (issue 12): the scenarios of apply.rs and audit.rs,
//! written once there, run here on hosts of every real root filesystem
//! (`rampart lab up --distros`): each runs its own OpenSSH, iptables (both
//! backends), `sh` (dash, busybox ash) and boot-time loader. Then `lab
//! reboot` meets what was persisted, on the distros and on the personalities.
//!
//! One lab per scenario, with every kind round-robin: hosts are
//! independent, and one lab of five costs about what a lab of one does.
//! The root filesystems come from the machine's cache (`rampart lab
//! rootfs`); the first test that needs one builds it, once, under a lock.

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::apply::{
    baseline_converges, concurrent_applies_never_orphan_a_switch,
    killed_controller_restored_by_switch, lockout_rolls_back, second_run_is_ok,
};
use crate::audit::audit_and_check_are_read_only;
use crate::lab::fault_helpers_work;
use crate::support::*;

/// Every kind with a real root filesystem.
const DISTROS: &[&str] = &[
    "debian11",
    "debian12",
    "debian13",
    "debian12-legacy",
    "busybox",
];

/// A lab with one host of every distro; `RAMPART_TEST_DISTROS=a,b` runs
/// the scenarios on those kinds only (say, while fixing one of them).
fn distro_lab() -> Lab {
    let chosen = std::env::var("RAMPART_TEST_DISTROS").unwrap_or_default();
    let kinds: Vec<&str> = chosen.split(',').filter(|k| !k.is_empty()).collect();
    let kinds = if kinds.is_empty() {
        DISTROS
    } else {
        &kinds[..]
    };
    Lab::up_distros(kinds.len(), kinds)
}

/// The build record of a distro host's root filesystem (`build.json`).
fn build_info(lab: &Lab, host: &str) -> serde_json::Value {
    let state = lab.state();
    let root: PathBuf = state
        .host(host)
        .and_then(|h| h.rootfs.clone())
        .unwrap_or_else(|| panic!("{host} has no root filesystem"));
    let path = root.parent().expect("an entry dir").join("build.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("build.json is JSON")
}

/// The upstream part of a Debian version (`1:9.2p1-2+deb12u5` -> `9.2p1`).
fn upstream(v: &str) -> String {
    rampart::lab::rootfs::upstream_version(v)
}

/// The SSH banner the host's sshd sends (`SSH-2.0-OpenSSH_9.2p1 Debian-...`).
fn banner(h: &LabHost) -> String {
    use std::io::{BufRead, BufReader};
    let s = TcpStream::connect_timeout(&(h.address, 22).into(), Duration::from_secs(5))
        .expect("connect to sshd");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .expect("read the banner");
    line.trim().to_string()
}

#[test]
fn every_distro_host_runs_its_own_userland() {
    let lab = distro_lab();
    let hosts = lab.hosts();
    for h in &hosts {
        assert!(DISTROS.contains(&h.kind.as_str()), "{}: {}", h.name, h.kind);
        let name = &h.name;
        assert!(h.rootfs, "{name}: a distro host runs a root filesystem");
        let info = build_info(&lab, name);
        // sshd: the distro's own, as its banner says (the release, 9.2 of
        // 9.2p1: Debian's security updates may bump the portable suffix).
        let ssh_version = upstream(
            info["packages"]["openssh-server"]
                .as_str()
                .expect("openssh"),
        );
        let release = ssh_version.split('p').next().unwrap_or_default();
        let b = banner(h);
        assert!(
            b.starts_with(&format!("SSH-2.0-OpenSSH_{release}p")) && b.contains(" Debian-"),
            "{name} ({}): banner {b:?}, built with OpenSSH {ssh_version}",
            h.kind
        );
        // iptables and its backend, over plain OpenSSH as root.
        let out = lab.ssh(name, "iptables -V; readlink -f /bin/sh; cat /etc/debian_version; command -v flock || echo NO-FLOCK; id -un");
        assert!(out.status.success(), "{name}: {}", show(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        let ipt = upstream(info["packages"]["iptables"].as_str().expect("iptables"));
        let backend = expected_backend(&h.kind).expect("a distro's backend");
        assert_eq!(
            lines[0],
            format!("iptables v{ipt} ({backend})"),
            "{name} ({}): {text}",
            h.kind
        );
        let want_version = match h.kind.as_str() {
            "debian11" => "11.",
            "debian13" => "13.",
            _ => "12.",
        };
        assert!(lines[2].starts_with(want_version), "{name}: {text}");
        if h.kind == "busybox" {
            assert_eq!(lines[1], "/usr/bin/busybox", "{name}: {text}");
            assert_eq!(lines[3], "NO-FLOCK", "{name}: the busybox host has a flock");
            for tool in ["kill", "sleep", "setsid"] {
                let out = lab.exec_in(name, &["readlink", "-f", &format!("/usr/bin/{tool}")]);
                assert_eq!(stdout(&out).trim(), "/usr/bin/busybox", "{name}: {tool}");
            }
        } else {
            assert_eq!(lines[1], "/usr/bin/dash", "{name}: {text}");
            assert_ne!(lines[3], "NO-FLOCK", "{name}: {text}");
        }
        assert_eq!(lines[4], "root");
        // The lab's users, as on every host.
        let out = lab.ssh_as("deploy", name, "sudo -n id -u");
        assert!(out.status.success(), "{name}: {}", show(&out));
        assert_eq!(stdout(&out).trim(), "0");
        let out = lab.ssh_as("nopw", name, "sudo -n true");
        assert!(!out.status.success(), "{name}: {}", show(&out));
        // No rules, nothing persisted, on a fresh host (the build saved none).
        assert!(is_kernel_default(&live(&lab, name, "iptables")), "{name}");
        for p in persist_paths(&h.kind) {
            assert_eq!(file_info(&lab, name, p), None, "{name}: {p}");
        }
        // Its own root: the machine's files are out of reach.
        let out = lab.exec_in(
            name,
            &[
                "sh",
                "-c",
                "test -e /work || test -e /srv/rampart-cache || echo CLEAN",
            ],
        );
        assert_eq!(stdout(&out).trim(), "CLEAN", "{name}: {}", show(&out));
    }
    // Every host booted with sysvinit and ran netfilter-persistent.
    let report = lab.reboot(&["all"]);
    for h in &hosts {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("{} (", h.name)))
            .unwrap_or_else(|| panic!("{}: not in the reboot report:\n{report}", h.name));
        assert!(line.contains("sysvinit, 1 firewall loader"), "{report}");
    }
    assert_eq!(
        report
            .matches("/etc/rcS.d/S01netfilter-persistent: /etc/init.d/netfilter-persistent start: exit 0")
            .count(),
        hosts.len(),
        "{report}"
    );
}

/// The fault helpers work on distro hosts too (their sshd is the
/// distro's, their root is not the machine's).
#[test]
fn fault_helpers_work_on_every_distro() {
    fault_helpers_work(&distro_lab());
}

#[test]
fn baseline_converges_and_a_rerun_is_ok_on_every_distro() {
    let lab = distro_lab();
    baseline_converges(&lab);
    second_run_is_ok(&lab);
}

#[test]
fn lockout_is_rolled_back_on_every_distro() {
    lockout_rolls_back(&distro_lab());
}

#[test]
fn a_killed_controller_is_restored_by_the_switch_on_every_distro() {
    killed_controller_restored_by_switch(&distro_lab());
}

/// The busy check holds on every distro: with util-linux's flock, and on
/// the busybox host, which has no flock at all.
#[test]
fn concurrent_applies_never_orphan_a_switch_on_every_distro() {
    concurrent_applies_never_orphan_a_switch(&distro_lab());
}

#[test]
fn audit_is_read_only_on_every_distro() {
    audit_and_check_are_read_only(&distro_lab());
}

/// `become: true` through each distro's sudo: passwordless sudo converges
/// (and a rerun is ok), sudo that wants a password fails the host untouched.
#[test]
fn become_through_each_distros_sudo() {
    let lab = distro_lab();
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let scratch = Scratch::new(&lab);
    let as_user = |user: &str| -> String {
        hosts
            .iter()
            .map(|h| {
                format!(
                    "  {}: {{address: {}, user: {user}, become: true}}\n",
                    h.name, h.address
                )
            })
            .collect()
    };
    let denied = inventory_with(&lab, &scratch, &as_user("nopw"));
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &denied,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v), all(&names, "failed"), "{v:#}");
    for h in &hosts {
        let r = host_report(&v, &h.name);
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains("sudo")),
            "{}: {r:#}",
            h.name
        );
        assert!(
            is_kernel_default(&live(&lab, &h.name, "iptables")),
            "{}",
            h.name
        );
        assert_eq!(
            state_dir(&lab, &h.name),
            None,
            "{}: a command ran as root",
            h.name
        );
    }
    let sudo = inventory_with(&lab, &scratch, &as_user("deploy"));
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &sudo,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(statuses(&report(&out)), all(&names, "changed"));
    for h in &hosts {
        assert_eq!(
            filter_table(&live(&lab, &h.name, "iptables")),
            SEED_V4,
            "{}",
            h.name
        );
        assert_eq!(
            filter_table(&live(&lab, &h.name, "ip6tables")),
            seed_v6(),
            "{}",
            h.name
        );
    }
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &sudo,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(statuses(&report(&out)), all(&names, "ok"));
}

/// Apply, reboot, and check every host: the persisted rules are live again
/// (loaded by the host's own loader, or by rampart's where it had none:
/// `boot: ensure`), SSH answers, and an audit agrees.
fn applied_rules_survive_a_reboot(lab: &Lab) {
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let out = run("apply", &playbook("baseline.yml"), &lab.inventory(), &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let keepers: Vec<Pid> = hosts
        .iter()
        .map(|h| Pid::of(rampart::lab::host::keeper(&lab.state(), &h.name).expect("a keeper")))
        .collect();
    let booted = lab.reboot(&names);
    for (h, old) in hosts.iter().zip(keepers) {
        let name = &h.name;
        assert!(!old.alive(), "{name}: its old keeper survived the reboot");
        let (v4, v6) = live_both(lab, name);
        assert_eq!(
            filter_table(&v4),
            SEED_V4,
            "{name} ({}): iptables after reboot\n{booted}",
            h.kind
        );
        assert_eq!(
            filter_table(&v6),
            seed_v6(),
            "{name} ({}): ip6tables after reboot\n{booted}",
            h.kind
        );
        let ssh = lab.ssh(name, "true");
        assert!(ssh.status.success(), "{name}: {}", show(&ssh));
        // What was persisted is still on the disk.
        for p in persist_paths(&h.kind) {
            assert!(
                file_info(lab, name, p).is_some(),
                "{name}: {p} lost in the reboot"
            );
        }
    }
    let out = run(
        "audit",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--format", "json"],
    );
    let v = report(&out);
    for h in &hosts {
        assert_eq!(
            host_report(&v, &h.name)["status"],
            "ok",
            "{} ({}) after reboot: {}",
            h.name,
            h.kind,
            show(&out)
        );
    }
}

#[test]
fn applied_rules_survive_a_reboot_on_every_distro() {
    applied_rules_survive_a_reboot(&distro_lab());
}

/// The personalities' loaders are real too: CentOS 6's init scripts (rc3.d),
/// Rocky 9's iptables-services units and Debian 12's netfilter-persistent
/// unit load what was persisted; Ubuntu 22 has none, so rampart installs its own.
#[test]
fn applied_rules_survive_a_reboot_on_the_personalities() {
    let lab = Lab::up(4);
    applied_rules_survive_a_reboot(&lab);
    // The report names the loaders that ran, and how they ended.
    let report = lab.reboot(&["h001", "h002", "h003", "h004"]);
    for want in [
        "h001 (centos6): ",
        "sysvinit, 2 firewall loaders",
        "/etc/rc3.d/S08ip6tables: /etc/init.d/ip6tables start: exit 0",
        "/etc/rc3.d/S08iptables: /etc/init.d/iptables start: exit 0",
        "h002 (rocky9): ",
        "/etc/systemd/system/multi-user.target.wants/iptables.service: /usr/sbin/iptables-restore /etc/sysconfig/iptables: exit 0",
        "/etc/systemd/system/multi-user.target.wants/ip6tables.service: /usr/sbin/ip6tables-restore /etc/sysconfig/ip6tables: exit 0",
        "h003 (debian12): ",
        "/etc/systemd/system/multi-user.target.wants/netfilter-persistent.service: ",
        "lab reboot: 4 hosts rebooted",
    ] {
        assert!(report.contains(want), "{want:?} not in:\n{report}");
    }
    // ubuntu22 had no loader: rampart installed its own, which the reboot ran.
    assert!(
        report.contains("sysinit.target.wants/rampart-firewall.service: /bin/sh /etc/rampart/firewall-load: exit 0"),
        "{report}"
    );
}

/// After a rolled-back apply, a reboot brings back the previous rules:
/// nothing of the rolled-back ruleset was persisted. h001, h002: converged
/// to the seed first (persisted); the others never persisted anything.
#[test]
fn a_rolled_back_apply_leaves_the_previous_rules_after_a_reboot() {
    let lab = distro_lab();
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let pre = run(
        "apply",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--limit", "h001,h002"],
    );
    assert_eq!(code(&pre), 0, "{}", show(&pre));
    let before: Vec<HostState> = hosts
        .iter()
        .map(|h| host_state(&lab, &h.name, &h.kind))
        .collect();
    // --no-predict: the lockout must really be applied, to be rolled back.
    let out = run(
        "apply",
        &playbook("lockout.yml"),
        &lab.inventory(),
        &["--format", "json", "--no-predict"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert_eq!(statuses(&report(&out)), all(&names, "rolled_back"));
    let reboot = lab.reboot(&names);
    for (i, h) in hosts.iter().enumerate() {
        let name = &h.name;
        let after = host_state(&lab, name, &h.kind);
        assert_eq!(
            after.files, before[i].files,
            "{name}: persisted files changed"
        );
        let (v4, v6) = live_both(&lab, name);
        if i < 2 {
            assert_eq!(filter_table(&v4), SEED_V4, "{name} ({}):\n{reboot}", h.kind);
            assert_eq!(filter_table(&v6), seed_v6(), "{name} ({})", h.kind);
        } else {
            assert!(
                is_kernel_default(&v4),
                "{name} ({}): {v4}\n{reboot}",
                h.kind
            );
            assert!(is_kernel_default(&v6), "{name} ({}): {v6}", h.kind);
        }
        let ssh = lab.ssh(name, "true");
        assert!(ssh.status.success(), "{name}: {}", show(&ssh));
    }
}

/// `boot: ensure` on every kind of host whose loader is disabled (a fresh
/// Ubuntu without iptables-persistent, a Rocky without iptables-services
/// enabled, a Debian whose netfilter-persistent was removed): the audit
/// reports it as drift, `boot: warn` only warns, and the default installs
/// rampart's own loader, which the next boot runs: the rules come back.
#[test]
fn hosts_without_a_loader_get_rampart_s_own_and_their_rules_survive_a_reboot() {
    let kinds = [
        "centos6",
        "rocky9",
        "ubuntu22",
        "debian11",
        "debian12",
        "debian13",
        "debian12-legacy",
        "busybox",
    ];
    let lab = Lab::up_distros(kinds.len(), &kinds);
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    for h in &names {
        sh_in(
            &lab,
            h,
            "rm -f /etc/systemd/system/*.wants/netfilter-persistent.service \
                   /etc/systemd/system/*.wants/iptables.service /etc/systemd/system/*.wants/ip6tables.service \
                   /etc/rc?.d/S*netfilter-persistent /etc/rc?.d/S*iptables /etc/rc?.d/S*ip6tables",
        );
    }
    let inv = lab.inventory();
    let warn = lab.scratch("warn.yml");
    std::fs::write(
        &warn,
        "- hosts: all\n  firewall:\n    allow: [http, https, ssh]\n    boot: warn\n",
    )
    .expect("playbook");
    let out = run(
        "apply",
        &warn.to_string_lossy(),
        &inv,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    for h in &hosts {
        let r = host_report(&v, &h.name);
        assert!(
            r.get("installed").is_none(),
            "{} ({}): {r:#}",
            h.name,
            h.kind
        );
        assert!(
            r["warnings"].as_array().is_some_and(|w| w
                .iter()
                .any(|w| w.as_str().is_some_and(|w| w.contains("no boot loader")))),
            "{} ({}): {r:#}",
            h.name,
            h.kind
        );
    }
    // The default playbook wants a loader: the audit says it is missing.
    let out = run(
        "audit",
        &playbook("baseline.yml"),
        &inv,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 2, "{}", show(&out));
    let v = report(&out);
    for h in &hosts {
        let r = host_report(&v, &h.name);
        assert_eq!(r["status"], "drift", "{} ({}): {r:#}", h.name, h.kind);
        assert!(
            r["diff"]
                .as_str()
                .is_some_and(|d| d.contains("+ boot loader") && !d.contains("-A INPUT")),
            "{} ({}): only the loader is missing: {r:#}",
            h.name,
            h.kind
        );
    }
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &inv,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    for h in &hosts {
        let r = host_report(&v, &h.name);
        let want = match h.kind.as_str() {
            "rocky9" | "ubuntu22" => "rampart-firewall.service (systemd)",
            _ => "/etc/init.d/rampart-firewall (sysvinit)",
        };
        assert!(
            r["installed"].as_array().is_some_and(|i| i
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.contains(want)))),
            "{} ({}): {want}: {r:#}",
            h.name,
            h.kind
        );
    }
    let booted = lab.reboot(&names);
    for h in &hosts {
        let (v4, v6) = live_both(&lab, &h.name);
        assert_eq!(
            filter_table(&v4),
            SEED_V4,
            "{} ({}): after reboot:\n{booted}",
            h.name,
            h.kind
        );
        assert_eq!(filter_table(&v6), seed_v6(), "{} ({})", h.name, h.kind);
    }
    let out = run(
        "audit",
        &playbook("baseline.yml"),
        &inv,
        &["--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(statuses(&report(&out)), all(&names, "ok"));
}
