//! The lab itself: isolation, cleanup, reachability with plain OpenSSH.
//!
//! These run real namespaces, sshd and iptables (root, Linux). Nothing here
//! runs iptables on the machine itself: isolation is checked from another host.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use rampart::lab::{net, LabState};

use crate::support::{rampart, reap_stale_labs, show, stdout, Lab, Pid, TEST_ROOT};

fn ok_stdout(out: &std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what}:\n{}", show(out));
    stdout(out)
}

/// Everything of lab index `k` and dir `dir` still on the machine.
fn leftovers(k: u32, dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    left.extend(net::netns_of(k).into_iter().map(|n| format!("netns {n}")));
    left.extend(net::veths_of(k).into_iter().map(|l| format!("link {l}")));
    if net::bridge_owner(k).as_deref() == Some(net::bridge_alias(dir).as_str()) {
        left.push(format!("bridge {}", net::bridge_name(k)));
    }
    let needle = dir.to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(m) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) {
            if m.contains(&needle) {
                left.push(format!("mounts of {needle} seen by pid {pid}"));
            }
        }
        if rampart::lab::sys::cmdline(pid.parse().unwrap_or(0)).contains(&needle) {
            left.push(format!("process {pid} mentioning {needle}"));
        }
    }
    if dir.exists() {
        left.push(format!("dir {}", dir.display()));
    }
    left
}

#[test]
fn every_host_answers_plain_openssh_with_its_personality() {
    let lab = Lab::up(4);
    let hosts = lab.hosts();
    let kinds: Vec<&str> = hosts.iter().map(|h| h.personality.as_str()).collect();
    assert_eq!(kinds, ["centos6", "rocky9", "debian12", "ubuntu22"]);
    let probe = "hostname; echo ---; cat /etc/os-release 2>/dev/null || echo NO-OS-RELEASE; \
                 echo ---; cat /etc/redhat-release 2>/dev/null || echo NO-REDHAT; \
                 echo ---; cat /etc/debian_version 2>/dev/null || echo NO-DEBIAN; \
                 echo ---; test -d /etc/sysconfig && echo SYSCONFIG; \
                 test -f /etc/rc3.d/S08iptables && test -f /etc/init.d/iptables && echo INITSCRIPT; \
                 ls /etc/systemd/system/multi-user.target.wants/ 2>/dev/null | grep -E 'ip6?tables|netfilter'; \
                 echo ---; iptables -S; echo ---; iptables-save | wc -c";
    for h in &hosts {
        let out = ok_stdout(&lab.ssh(&h.name, probe), &format!("ssh to {}", h.name));
        let parts: Vec<&str> = out.split("---\n").collect();
        assert_eq!(parts.len(), 7, "{}: {out}", h.name);
        let (os, rh, deb, loaders) = (parts[1], parts[2], parts[3], parts[4]);
        assert_eq!(parts[0].trim(), h.name);
        assert!(parts[5].contains("-P INPUT ACCEPT"), "{}: {out}", h.name);
        assert_eq!(parts[6].trim(), "0", "a fresh host has no tables: {out}");
        match h.personality.as_str() {
            "centos6" => {
                assert!(os.contains("NO-OS-RELEASE"), "{out}");
                assert_eq!(rh.trim(), "CentOS release 6.10 (Final)");
                assert!(deb.contains("NO-DEBIAN"), "{out}");
                assert_eq!(loaders.trim(), "SYSCONFIG\nINITSCRIPT");
            }
            "rocky9" => {
                assert!(os.contains("ID=\"rocky\""), "{out}");
                assert!(os.contains("ID_LIKE=\"rhel centos fedora\""), "{out}");
                assert!(os.contains("VERSION_ID=\"9."), "{out}");
                assert!(rh.starts_with("Rocky Linux release 9"), "{out}");
                assert!(deb.contains("NO-DEBIAN"), "{out}");
                assert_eq!(
                    loaders.trim(),
                    "SYSCONFIG\nip6tables.service\niptables.service"
                );
            }
            "debian12" => {
                assert!(os.contains("\nID=debian\n"), "{out}");
                assert!(rh.contains("NO-REDHAT"), "{out}");
                assert!(deb.starts_with("12"), "{out}");
                assert_eq!(loaders.trim(), "netfilter-persistent.service");
            }
            "ubuntu22" => {
                assert!(os.contains("\nID=ubuntu\n"), "{out}");
                assert!(os.contains("\nID_LIKE=debian\n"), "{out}");
                assert!(rh.contains("NO-REDHAT"), "{out}");
                assert_eq!(loaders.trim(), "", "ubuntu22 has no boot loader of rules");
            }
            other => panic!("unknown personality {other}"),
        }
    }
}

#[test]
fn inventory_and_known_hosts_describe_the_lab() {
    let lab = Lab::up(5);
    let state = lab.state();
    let text = fs::read_to_string(lab.inventory()).expect("read inventory.yml");
    let inv: serde_json::Value = serde_norway::from_str(&text).expect("inventory.yml is YAML");
    let d = &inv["defaults"];
    assert_eq!(d["user"], "root");
    assert_eq!(d["port"], 22);
    assert_eq!(
        d["identity_file"],
        lab.identity().to_string_lossy().as_ref()
    );
    assert_eq!(
        d["known_hosts"],
        lab.known_hosts().to_string_lossy().as_ref()
    );
    for h in lab.hosts() {
        assert_eq!(inv["hosts"][&h.name]["address"], h.address.to_string());
    }
    assert_eq!(
        inv["groups"]["centos6"],
        serde_json::json!(["h001", "h005"])
    );
    assert_eq!(inv["groups"]["ubuntu22"], serde_json::json!(["h004"]));
    let known = fs::read_to_string(lab.known_hosts()).expect("read known_hosts");
    assert_eq!(known.lines().count(), 5);
    for (line, h) in known.lines().zip(&state.hosts) {
        assert!(
            line.starts_with(&format!("{} ssh-ed25519 AAAA", h.address)),
            "{line}"
        );
    }
    let k = state.index.expect("an index");
    assert_eq!(
        state.subnet.as_deref(),
        Some(format!("{}/22", net::subnet_base(k)).as_str())
    );
    let status = rampart(&["lab", "status", "--dir", &lab.dir().to_string_lossy()]);
    let text = ok_stdout(&status, "lab status");
    assert!(text.contains("5 answering"), "{text}");
    assert!(text.contains("h003") && text.contains("debian12"), "{text}");
}

#[test]
fn deploy_may_sudo_without_password_and_nopw_may_not() {
    let lab = Lab::up(2);
    for h in lab.hosts() {
        let out = lab.ssh_as("deploy", &h.name, "sudo -n id -u");
        assert_eq!(ok_stdout(&out, "deploy sudo").trim(), "0");
        let out = lab.ssh_as("nopw", &h.name, "id -un; sudo -n true");
        assert!(!out.status.success(), "{}", show(&out));
        assert_eq!(stdout(&out).trim(), "nopw");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("password is required"),
            "{}",
            show(&out)
        );
    }
}

#[test]
fn hosts_are_isolated_from_each_other_and_from_the_machine() {
    let lab = Lab::up(2);
    let token = format!("rampart-isolation-{}", std::process::id());
    let dirs = ["/var", "/etc", "/root", "/tmp", "/run", "/var/lib"];
    let write: Vec<String> = dirs
        .iter()
        .map(|d| format!("mkdir -p {d} && echo x > {d}/{token}"))
        .collect();
    ok_stdout(
        &lab.ssh("h001", &write.join(" && ")),
        "write markers on h001",
    );
    ok_stdout(
        &lab.ssh("h001", "iptables -A INPUT -p tcp --dport 9 -j DROP"),
        "add a rule on h001",
    );
    let seen_on_1 = ok_stdout(
        &lab.ssh(
            "h001",
            &format!("ls {}", dirs.map(|d| format!("{d}/{token}")).join(" ")),
        ),
        "markers on h001",
    );
    assert_eq!(seen_on_1.lines().count(), dirs.len());
    for d in dirs {
        let path = format!("{d}/{token}");
        let out = lab.ssh("h002", &format!("test -e {path} && echo LEAK || echo none"));
        assert_eq!(
            ok_stdout(&out, "look on h002").trim(),
            "none",
            "{path} leaked to h002"
        );
        let out = lab.exec_in("h002", &["test", "-e", &path]);
        assert!(!out.status.success(), "{path} leaked to h002 (nsenter)");
        assert!(!Path::new(&path).exists(), "{path} leaked to the machine");
    }
    let rules_1 = ok_stdout(
        &lab.exec_in("h001", &["iptables", "-S", "INPUT"]),
        "h001 rules",
    );
    assert!(rules_1.contains("--dport 9 -j DROP"), "{rules_1}");
    let rules_2 = ok_stdout(&lab.ssh("h002", "iptables -S INPUT"), "h002 rules");
    assert!(
        !rules_2.contains("--dport 9"),
        "h001's rule leaked to h002: {rules_2}"
    );
    let name = ok_stdout(&lab.exec_in("h002", &["hostname"]), "hostname");
    assert_eq!(name.trim(), "h002");
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("machine hostname")
            .trim(),
        "h001"
    );

    // A process started on h001 lives in h001 only.
    ok_stdout(
        &lab.ssh(
            "h001",
            &format!("setsid -f bash -c 'exec -a {token} sleep 300' >/dev/null 2>&1 < /dev/null"),
        ),
        "start a process",
    );
    // `setsid -f` returns before its child exists: wait for it (bounded).
    assert!(
        lab.wait_process("h001", &token, Duration::from_secs(10))
            .is_some(),
        "{:?}",
        lab.host_processes("h001")
    );
    assert!(!lab
        .host_processes("h002")
        .iter()
        .any(|p| p.cmdline.contains(&token)));
    let sshd = lab.sshd_pid("h001").expect("sshd runs");
    assert!(lab.host_processes("h001").iter().any(|p| p.pid == sshd));
    let scratch = lab.scratch("notes.txt");
    fs::write(&scratch, "a test's own file").expect("write a scratch file");
}

#[test]
fn down_removes_every_namespace_link_process_mount_and_file() {
    let lab = Lab::up(3);
    let state = lab.state();
    let k = state.index.expect("an index");
    let dir = lab.dir().to_path_buf();
    let pids: Vec<Pid> = lab
        .hosts()
        .iter()
        .flat_map(|h| lab.host_processes(&h.name))
        .map(|p| Pid::of(p.pid))
        .collect();
    assert!(pids.len() >= 3, "every host runs sshd");
    let out = lab.down();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(leftovers(k, &dir), Vec::<String>::new());
    for pid in pids {
        assert!(!pid.alive(), "{pid:?} survived lab down");
    }
    // Idempotent.
    let again = rampart(&["lab", "down", "--dir", &dir.to_string_lossy()]);
    assert!(again.status.success(), "{}", show(&again));
    assert!(stdout(&again).contains("nothing to do"), "{}", show(&again));
}

#[test]
fn down_after_a_crash_finds_the_lab_by_its_index_and_bridge_label() {
    // Crash after allocating the index, before the hosts were recorded.
    let lab = Lab::up(2);
    let mut state = lab.state();
    let k = state.index.expect("an index");
    state.hosts.clear();
    state.complete = false;
    state.save().expect("rewrite state.json");
    let dir = lab.leak();
    let out = rampart(&["lab", "down", "--dir", &dir.to_string_lossy()]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(leftovers(k, &dir), Vec::<String>::new());

    // state.json lost altogether: the bridge's label still names the dir.
    let lab = Lab::up(2);
    let k = lab.state().index.expect("an index");
    fs::remove_file(lab.dir().join("state.json")).expect("remove state.json");
    let dir = lab.leak();
    let out = rampart(&["lab", "down", "--dir", &dir.to_string_lossy()]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(leftovers(k, &dir), Vec::<String>::new());
}

#[test]
fn up_over_a_half_built_lab_rebuilds_it() {
    let lab = Lab::up(3);
    let old = lab.state();
    let old_keepers: Vec<Pid> = old
        .hosts
        .iter()
        .map(|h| Pid::of(rampart::lab::host::keeper(&old, &h.name).expect("a keeper")))
        .collect();
    // Break it in several ways: a dead sshd, a host without processes or
    // namespace, a missing key, an incomplete state.
    lab.stop_sshd("h001");
    let h2 = lab.host("h002");
    for p in net::netns_pids(&h2.netns) {
        rampart::lab::sys::signal(p, libc::SIGKILL);
    }
    let del = std::process::Command::new("ip")
        .args(["netns", "del", &h2.netns])
        .status()
        .expect("run ip");
    assert!(del.success());
    fs::remove_file(lab.identity()).expect("remove the client key");
    let mut s = lab.state();
    s.complete = false;
    s.save().expect("rewrite state.json");

    let again = Lab::up_in(lab.dir(), 3);
    let new = again.state();
    assert!(new.complete);
    for h in again.hosts() {
        let out = again.ssh(&h.name, "hostname");
        assert_eq!(ok_stdout(&out, "ssh after rebuild").trim(), h.name);
    }
    for p in old_keepers {
        assert!(!p.alive(), "old host process {p:?} survived");
    }
    let k = new.index.expect("an index");
    assert_eq!(net::netns_of(k).len(), 3);
    // Both handles name the same dir: one teardown is enough.
    let _ = lab.leak();
}

#[test]
fn two_labs_side_by_side_do_not_collide() {
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(|| Lab::up(2));
        let b = s.spawn(|| Lab::up(2));
        (
            a.join().expect("lab a comes up"),
            b.join().expect("lab b comes up"),
        )
    });
    let (sa, sb) = (a.state(), b.state());
    assert_ne!(sa.index, sb.index);
    assert_ne!(sa.subnet, sb.subnet);
    let addrs: HashSet<_> = a
        .hosts()
        .iter()
        .chain(&b.hosts())
        .map(|h| h.address)
        .collect();
    assert_eq!(addrs.len(), 4);
    for lab in [&a, &b] {
        for h in lab.hosts() {
            assert_eq!(
                ok_stdout(&lab.ssh(&h.name, "hostname"), "ssh").trim(),
                h.name
            );
        }
    }
    // A lab built while `a` exists copies `a`'s mounts into its hosts at
    // boot; they must let go of them, or `a`'s mounts and links outlive it.
    let c = Lab::up(1);
    assert_ne!(c.state().index, sa.index);
    // Removing one leaves the others whole.
    let ka = sa.index.expect("an index");
    let dir_a = a.dir().to_path_buf();
    assert!(a.down().status.success());
    assert_eq!(leftovers(ka, &dir_a), Vec::<String>::new());
    for lab in [&b, &c] {
        for h in lab.hosts() {
            assert_eq!(
                ok_stdout(&lab.ssh(&h.name, "hostname"), "ssh").trim(),
                h.name
            );
        }
    }
}

#[test]
fn forty_hosts_all_answer() {
    let lab = Lab::up(40);
    let hosts = lab.hosts();
    assert_eq!(hosts.len(), 40);
    let next = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while let Some(h) = hosts.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let out = lab.ssh(&h.name, "hostname");
                    if !out.status.success() || stdout(&out).trim() != h.name {
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("{}: {}", h.name, show(&out)));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fault_helpers_cut_stop_and_rekey_a_host() {
    fault_helpers_work(&Lab::up(1));
}

/// The helpers fault tests use (cut the link, stop and start sshd, change
/// the host key, exec_in) on every host of `lab`, all at once: a process
/// started on the host lives on through all of it.
pub(crate) fn fault_helpers_work(lab: &Lab) {
    let hosts = lab.hosts();
    thread::scope(|s| {
        for h in &hosts {
            s.spawn(move || fault_helpers_on(lab, &h.name));
        }
    });
}

fn fault_helpers_on(lab: &Lab, name: &str) {
    // Detached without `setsid -f` (busybox's setsid has no -f), under a
    // name of its own (`tail`: `sleep` is a busybox applet on busybox hosts,
    // which would not answer to another name).
    ok_stdout(
        &lab.ssh(
            name,
            "bash -c \"nohup bash -c 'exec -a survivor tail -f /dev/null' >/dev/null 2>&1 </dev/null &\"",
        ),
        "start a process",
    );
    // The SSH command returns before the process exists, let alone has
    // exec'd as `survivor`: wait for it (bounded), never just look once.
    let survivor = lab
        .wait_process(name, "survivor", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{name}: the process does not run"))
        .pid;
    let alive = format!("kill -0 {survivor}");

    lab.cut_link(name);
    let out = lab.ssh(name, "true");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timed out"),
        "{name}: a cut link drops packets: {}",
        show(&out)
    );
    lab.restore_link(name);
    ok_stdout(&lab.ssh(name, "true"), "ssh after restore_link");

    lab.stop_sshd(name);
    let out = lab.ssh(name, "true");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{name}: {}",
        show(&out)
    );
    let status = rampart(&["lab", "status", "--dir", &lab.dir().to_string_lossy()]);
    assert_eq!(status.status.code(), Some(3), "{}", show(&status));
    assert!(stdout(&status)
        .lines()
        .any(|l| l.starts_with(name) && l.ends_with("DOWN")));
    lab.start_sshd(name);
    let out = lab.ssh(name, &alive);
    ok_stdout(&out, "the host kept its processes across an sshd restart");

    lab.change_host_key(name);
    let out = lab.ssh(name, "true");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{name}: {}",
        show(&out)
    );
    let out = lab.exec_in(name, &["sh", "-c", &alive]);
    ok_stdout(&out, "exec_in does not need ssh");
}

#[test]
fn refuses_a_lab_dir_that_hosts_overlay_or_hide() {
    for d in [
        "/tmp/rampart-lab-test",
        "/var/lib/rampart-lab",
        "/etc/lab",
        "/root/lab",
        "/run/lab",
    ] {
        let out = rampart(&["lab", "up", "1", "--dir", d]);
        assert_eq!(out.status.code(), Some(1), "{d}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("lab: lab dir") && err.contains("choose another --dir"),
            "{err}"
        );
        assert!(!Path::new(d).exists(), "{d} was created");
    }
    // A symlink into /tmp is under /tmp too.
    fs::create_dir_all(TEST_ROOT).expect("create the test root");
    let link = Path::new(TEST_ROOT).join(format!("to-tmp-{}", std::process::id()));
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("/tmp", &link).expect("symlink");
    let out = rampart(&["lab", "up", "1", "--dir", &link.join("x").to_string_lossy()]);
    fs::remove_file(&link).expect("remove symlink");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("under /tmp"));
}

#[test]
fn refuses_to_run_without_root() {
    let out = crate::support::run_bounded(
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_rampart"))
            .args(["lab", "up", "1", "--dir", "/srv/rampart-test/never"]),
        std::time::Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
}

#[test]
fn stale_labs_of_dead_test_runs_are_reaped() {
    let lab = Lab::up(1);
    let k = lab.state().index.expect("an index");
    // Pretend its creator died: a pid that ran and exited.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("run true");
    let dead = child.id();
    child.wait().expect("wait for true");
    let mut state: LabState = lab.state();
    state.creator.pid = dead;
    state.save().expect("rewrite state.json");
    let dir = lab.leak();
    let reaped = reap_stale_labs();
    assert!(reaped.contains(&dir), "{reaped:?}");
    assert_eq!(leftovers(k, &dir), Vec::<String>::new());
}

/// `lab reboot` is a power cycle: every process of the host dies (its
/// keeper too), every netfilter table of both backends is the kernel's
/// default again, /run and /tmp are new, the disk (/etc, /var, /root) is
/// kept, and sshd answers with the same host key. Other hosts are untouched.
#[test]
fn reboot_is_a_power_cycle_that_keeps_the_disk() {
    let lab = Lab::up(2);
    let token = format!("rampart-reboot-{}", std::process::id());
    ok_stdout(
        &lab.ssh(
            "h001",
            &format!(
                "setsid -f bash -c 'exec -a {token} sleep 300' >/dev/null 2>&1 < /dev/null; \
                 iptables -A INPUT -p tcp --dport 9 -j DROP && \
                 iptables -t nat -A POSTROUTING -o eth0 -j ACCEPT && \
                 ip6tables -A INPUT -p tcp --dport 9 -j DROP && \
                 {{ iptables-legacy -A INPUT -p tcp --dport 7 -j DROP 2>/dev/null && echo LEGACY || true; }}; \
                 echo disk > /root/{token} && echo disk > /etc/{token} && echo disk > /var/{token} && \
                 echo run > /run/{token} && echo tmp > /tmp/{token}"
            ),
        ),
        "prepare h001",
    );
    let legacy = lab
        .exec_in("h001", &["sh", "-c", "iptables-legacy-save 2>/dev/null"])
        .stdout;
    let had_legacy = String::from_utf8_lossy(&legacy).contains("--dport 7");
    let process = Pid::of(
        lab.wait_process("h001", &token, Duration::from_secs(10))
            .expect("the process runs")
            .pid,
    );
    let state = lab.state();
    let old_keeper = Pid::of(rampart::lab::host::keeper(&state, "h001").expect("a keeper"));
    let other_keeper = rampart::lab::host::keeper(&state, "h002").expect("a keeper");
    let report = lab.reboot(&["h001"]);
    assert!(
        report.contains("h001 (centos6): SSH answers")
            && report.contains("lab reboot: 1 host rebooted"),
        "{report}"
    );
    assert!(!process.alive(), "a process survived");
    assert!(!old_keeper.alive(), "the keeper survived");
    let new_keeper = rampart::lab::host::keeper(&lab.state(), "h001").expect("a new keeper");
    assert_ne!(Pid::of(new_keeper), old_keeper);
    assert_eq!(
        rampart::lab::host::keeper(&lab.state(), "h002").expect("h002's keeper"),
        other_keeper,
        "h002 was rebooted too"
    );
    for save in ["iptables-save", "ip6tables-save"] {
        let out = ok_stdout(&lab.exec_in("h001", &[save]), save);
        assert!(
            !out.contains("--dport 9") && !out.contains("*nat"),
            "{save} after reboot:\n{out}"
        );
    }
    if had_legacy {
        let out = lab.exec_in("h001", &["iptables-legacy-save"]);
        assert!(
            !stdout(&out).contains("--dport 7"),
            "legacy rules survived: {}",
            show(&out)
        );
    }
    let files = ok_stdout(
        &lab.ssh(
            "h001",
            &format!(
                "for d in /root /etc /var /run /tmp; do test -e $d/{token} && echo $d; done; hostname"
            ),
        ),
        "look at h001's files (same host key: strict checking passes)",
    );
    assert_eq!(files, "/root\n/etc\n/var\nh001\n");
    assert!(lab.ssh("h002", "true").status.success());
}
