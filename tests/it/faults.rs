//! The safety net when the host itself misbehaves (docs/design.md,
//! "Guarantees"): each test injects a fault for real into a lab host
//! (inside its own mount namespace, through its own /etc, so nothing leaks
//! to the machine) and checks that rampart neither leaves the host locked
//! out nor persists or reports anything it has not proven.
//!
//! The fault helpers (below) do what a real host can do to rampart:
//! - `fail_restores`: the host's iptables-restore refuses a ruleset, as a
//!   kernel without a module or a broken backend does: a wrapper takes the
//!   place of the tool in /etc/alternatives, the way Debian installs it;
//! - `fill_fs`: the filesystem holding a directory is full;
//! - `hide_ipv6`: a kernel booted with ipv6.disable=1 (ip6tables cannot
//!   open its tables);
//! - `churn_bans`: fail2ban banning while rampart works.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{normalize_save, rampart, sh_in as sh, show, state_dir, Lab};

/// The filter table of a family as rampart compares it: no comments, no
/// counters; the kernel's default table where a host has none yet (what a
/// restore of a backup leaves).
fn rules(lab: &Lab, host: &str, tool: &str) -> String {
    normalize_save(&sh(lab, host, &format!("{tool}-save -t filter")))
}

/// `--no-predict` and short timeouts: a lockout that is really applied, to
/// test the rollback under a fault, in a few seconds.
const LOCKOUT: [&str; 5] = [
    "--no-predict",
    "--connect-timeout",
    "2",
    "--confirm-timeout",
    "9",
];

fn pb(name: &str) -> String {
    format!("{}/playbooks/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn apply(lab: &Lab, playbook: &str, extra: &[&str]) -> (i32, Value) {
    let inv = lab.inventory();
    let mut args = vec![
        "apply",
        playbook,
        "-i",
        inv.to_str().expect("utf-8 path"),
        "--format",
        "json",
    ];
    args.extend(extra);
    let out = rampart(&args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}): {}", show(&out)));
    (out.status.code().unwrap_or(-1), v)
}

fn host<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["hosts"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["name"] == name))
        .unwrap_or_else(|| panic!("{name} in {v:#}"))
}

/// Make the host's `iptables-restore` (not its `--test` runs) let `skip`
/// restores through, then fail `fail` of them ("always": every one).
fn fail_restores(lab: &Lab, host: &str, skip: u32, fail: &str) {
    let wrapper = r#"#!/bin/sh
# rampart lab fault: iptables-restore refusing rulesets (tests/it/faults.rs)
real=$(cat /etc/rampart-fault/iptables-restore.real)
case " $* " in *" --test "* | *" -t "* | *" --help "* | *" -V "*) exec "$real" "$@" ;; esac
f=/run/rampart-fault/restore
if [ -f "$f" ]; then
    read -r skip fail <"$f"
    if [ "$skip" -gt 0 ]; then
        echo "$((skip - 1)) $fail" >"$f"
    elif [ "$fail" = always ] || [ "$fail" -gt 0 ]; then
        [ "$fail" = always ] || echo "0 $((fail - 1))" >"$f"
        cat >/dev/null
        echo "iptables-restore: line 2 failed (rampart lab fault)" >&2
        exit 1
    fi
fi
exec "$real" "$@"
"#;
    sh(
        lab,
        host,
        &format!(
            "set -e; mkdir -p /etc/rampart-fault /run/rampart-fault
             [ -f /etc/rampart-fault/iptables-restore.real ] || readlink /etc/alternatives/iptables-restore > /etc/rampart-fault/iptables-restore.real
             cat > /etc/rampart-fault/iptables-restore <<'EOF'\n{wrapper}EOF
             chmod 755 /etc/rampart-fault/iptables-restore
             ln -sfn /etc/rampart-fault/iptables-restore /etc/alternatives/iptables-restore
             echo '{skip} {fail}' > /run/rampart-fault/restore"
        ),
    );
}

/// Let the host's restores work again.
fn heal_restores(lab: &Lab, host: &str) {
    sh(lab, host, "rm -f /run/rampart-fault/restore");
}

/// Make the filesystem holding `dir` full: a small tmpfs over it (with
/// what it held), filled to the last block.
fn fill_fs(lab: &Lab, host: &str, dir: &str) {
    sh(
        lab,
        host,
        &format!(
            "set -e; d={dir}; mkdir -p \"$d\"; t=$(mktemp -d /run/fault.XXXXXX); cp -a \"$d\"/. \"$t\"/
             mount -t tmpfs -o size=64k,mode=0755 rampart-fault \"$d\"; cp -a \"$t\"/. \"$d\"/; rm -rf \"$t\"
             dd if=/dev/zero of=\"$d/.fill\" bs=1k 2>/dev/null || true
             ! ( echo x > \"$d/.probe\" ) 2>/dev/null"
        ),
    );
}

/// What a kernel booted with ipv6.disable=1 does to ip6tables: every tool
/// fails to open its table. (A lab host shares the machine's kernel, so the
/// tools stand in for it, the way /etc/alternatives lets them.)
fn hide_ipv6(lab: &Lab, host: &str) {
    sh(
        lab,
        host,
        "set -e; mkdir -p /etc/rampart-fault
         for t in ip6tables ip6tables-save ip6tables-restore; do
           printf '#!/bin/sh\\necho \"%s: cannot initialize ip6tables table '\"'\"'filter'\"'\"': Address family not supported by protocol\" >&2\\nexit 1\\n' \"$t\" > /etc/rampart-fault/$t
           chmod 755 /etc/rampart-fault/$t
           ln -sfn /etc/rampart-fault/$t /etc/alternatives/$t
         done",
    );
}

fn no_switch_left(lab: &Lab, host: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = lab
            .host_processes(host)
            .into_iter()
            .filter(|p| p.cmdline.contains("switch.sh") || p.cmdline.starts_with("sleep"))
            .map(|p| format!("{} {}", p.pid, p.cmdline))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host}: a switch is left: {left:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A restore over connection A that fails never disarms the switch: the
/// switch restores by itself, and the report says who did it.
#[test]
fn a_failed_restore_never_disarms_the_switch() {
    let lab = Lab::up(1);
    let before = rules(&lab, "h001", "iptables");
    // The apply goes through; the restore over A fails; the switch's works.
    fail_restores(&lab, "h001", 1, "1");
    let (code, v) = apply(&lab, &pb("lockout.yml"), &LOCKOUT);
    let r = host(&v, "h001");
    assert_eq!(
        (code, r["status"].as_str()),
        (3, Some("rolled_back")),
        "{v:#}"
    );
    let err = r["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("restored by the dead-man switch")
            && err.contains("restoring the previous rules failed"),
        "{err}"
    );
    assert_eq!(
        rules(&lab, "h001", "iptables"),
        before,
        "the backup is live again"
    );
    no_switch_left(&lab, "h001");
    assert_eq!(
        state_dir(&lab, "h001"),
        Some(vec!["backup.v4".to_string(), "backup.v6".to_string()])
    );
}

/// A switch that cannot restore records it, and the report never says
/// `rolled_back`: it names what is live, read over the connection that
/// still answers. The next run warns.
#[test]
fn a_switch_that_cannot_restore_says_so_and_nothing_claims_success() {
    let lab = Lab::up(1);
    let before = rules(&lab, "h001", "iptables");
    fail_restores(&lab, "h001", 1, "always");
    let (code, v) = apply(&lab, &pb("lockout.yml"), &LOCKOUT);
    let r = host(&v, "h001");
    assert_eq!(
        (code, r["status"].as_str(), r["step"].as_str()),
        (3, Some("failed"), Some("rollback")),
        "{v:#}"
    );
    let err = r["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("the NEW rules are still live") && err.contains("restore_failed"),
        "{err}"
    );
    assert_eq!(
        sh(&lab, "h001", "cat /var/lib/rampart/switch.state").trim(),
        "restore_failed"
    );
    no_switch_left(&lab, "h001");
    // The operator repairs the host; the next run says what happened.
    heal_restores(&lab, "h001");
    sh(
        &lab,
        "h001",
        "iptables-restore < /var/lib/rampart/backup.v4",
    );
    assert_eq!(rules(&lab, "h001", "iptables"), before);
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    let r = host(&v, "h001");
    assert_eq!((code, r["status"].as_str()), (0, Some("changed")), "{v:#}");
    assert!(
        r["warnings"].as_array().is_some_and(|w| w.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("could not restore its backup")))),
        "{r:#}"
    );
}

/// A full disk where the rules are persisted: the host is `failed
/// [persist]`, the new rules stay live (they were confirmed), and the file
/// the next boot loads is byte for byte what it was.
#[test]
fn a_full_disk_at_persist_keeps_the_old_file_and_says_so() {
    let lab = Lab::up(1);
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    assert_eq!(code, 0, "{v:#}");
    let file = "/etc/sysconfig/iptables"; // h001 is the centos6 personality
    let old = sh(&lab, "h001", &format!("sha256sum {file}"));
    fill_fs(&lab, "h001", "/etc/sysconfig");
    let mail = lab.scratch("mail.yml");
    std::fs::write(&mail, "- hosts: all\n  firewall:\n    allow: [ssh, smtp]\n").expect("playbook");
    let (code, v) = apply(&lab, &mail.to_string_lossy(), &[]);
    let r = host(&v, "h001");
    assert_eq!(
        (code, r["status"].as_str(), r["step"].as_str()),
        (3, Some("failed"), Some("persist")),
        "{v:#}"
    );
    let err = r["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("live and confirmed but not persisted") && err.contains(file),
        "{err}"
    );
    assert_eq!(
        sh(&lab, "h001", &format!("sha256sum {file}")),
        old,
        "the persisted file changed"
    );
    assert!(
        rules(&lab, "h001", "iptables").contains("--dport 25"),
        "the new rules stay live"
    );
    assert!(
        !sh(&lab, "h001", "ls -A /etc/sysconfig").contains("rampart-tmp"),
        "a temp file was left"
    );
    no_switch_left(&lab, "h001");
}

/// A full disk where the backup goes: nothing is applied, no switch armed.
#[test]
fn a_full_disk_at_backup_applies_nothing() {
    let lab = Lab::up(1);
    let before = rules(&lab, "h001", "iptables");
    fill_fs(&lab, "h001", "/var/lib/rampart");
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    let r = host(&v, "h001");
    assert_eq!(
        (code, r["status"].as_str(), r["step"].as_str()),
        (3, Some("failed"), Some("backup")),
        "{v:#}"
    );
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing applied")),
        "{r:#}"
    );
    assert_eq!(rules(&lab, "h001", "iptables"), before);
    no_switch_left(&lab, "h001");
}

/// Churn in preserved chains (fail2ban banning while rampart works) is
/// neither a verify failure nor lost: every ban made during the apply is
/// there afterwards.
#[test]
fn bans_made_during_an_apply_are_kept_and_fail_nothing() {
    let lab = Lab::up(1);
    sh(
        &lab,
        "h001",
        "iptables -N f2b-sshd && iptables -A f2b-sshd -j RETURN && iptables -I INPUT -p tcp -m multiport --dports 22 -j f2b-sshd",
    );
    // fail2ban's part: a ban every 20 ms, each logged, until told to stop.
    let (code, v) = thread::scope(|scope| {
        let bans = scope.spawn(|| {
            lab.exec_in(
                "h001",
                &[
                    "sh",
                    "-c",
                    "i=1; while [ ! -e /run/stop-bans ] && [ $i -lt 1500 ]; do
                       ip=10.$((i / 250)).$((i % 250)).1
                       iptables -w 5 -I f2b-sshd 1 -s $ip -j REJECT && echo $ip >> /run/bans
                       i=$((i + 1)); sleep 0.02; done",
                ],
            )
        });
        thread::sleep(Duration::from_millis(300));
        let result = apply(&lab, &pb("baseline.yml"), &[]);
        sh(&lab, "h001", "touch /run/stop-bans");
        let out = bans.join().expect("the ban loop");
        assert!(out.status.success(), "{}", show(&out));
        result
    });
    let r = host(&v, "h001");
    assert_eq!((code, r["status"].as_str()), (0, Some("changed")), "{v:#}");
    let live = rules(&lab, "h001", "iptables");
    let bans = sh(&lab, "h001", "cat /run/bans");
    let n = bans.lines().count();
    assert!(n > 10, "the ban loop ran ({n} bans)");
    for ip in bans.lines() {
        assert!(
            live.contains(&format!("-A f2b-sshd -s {ip}/32 -j REJECT")),
            "ban of {ip} lost:\n{live}"
        );
    }
    assert!(
        live.contains("-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd"),
        "{live}"
    );
    // And a rerun while nothing bans is ok.
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    assert_eq!(
        (code, host(&v, "h001")["status"].as_str()),
        (0, Some("ok")),
        "{v:#}"
    );
}

/// The persist-only path (live rules right, files stale) takes the host's
/// lock and busy check: it never persists rules another run has applied
/// but not yet confirmed.
#[test]
fn persisting_never_writes_rules_another_run_has_not_confirmed() {
    let lab = Lab::up(1);
    let inv = lab.inventory();
    // Run 1 applies; it is frozen once its switch is armed (its rules are
    // live, not yet confirmed, not persisted).
    let run1 = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["apply", &pb("baseline.yml"), "-i"])
        .arg(&inv)
        .args(["--format", "json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run 1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sh(
        &lab,
        "h001",
        "cat /var/lib/rampart/switch.pid 2>/dev/null || true",
    )
    .trim()
    .is_empty()
    {
        assert!(Instant::now() < deadline, "run 1 never armed its switch");
        thread::sleep(Duration::from_millis(5));
    }
    let pid = run1.id();
    assert!(pid > 1);
    // A signal to our own child (positive pid: never a group).
    let stopped = std::process::Command::new("/bin/kill")
        .args(["-s", "STOP", &pid.to_string()])
        .status();
    assert!(stopped.is_ok_and(|s| s.success()));
    // The host finishes the apply step it already has: wait for its rules.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rules(&lab, "h001", "iptables").contains("--dport 22 -j ACCEPT") {
        assert!(Instant::now() < deadline, "run 1's rules never went live");
        thread::sleep(Duration::from_millis(10));
    }
    // Run 2 finds the live rules right and the files missing.
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    let _ = std::process::Command::new("/bin/kill")
        .args(["-s", "CONT", &pid.to_string()])
        .status();
    let out = run1.wait_with_output().expect("run 1 ends");
    let r = host(&v, "h001");
    let first: Value = serde_json::from_slice(&out.stdout).expect("run 1's report");
    assert_eq!(
        host(&first, "h001")["status"],
        "changed",
        "run 1: {first:#}"
    );
    // Run 2 either waited its turn (busy) or ran after run 1 persisted.
    match r["status"].as_str() {
        Some("failed") => {
            assert_eq!(r["step"], "persist", "{r:#}");
            assert!(
                r["error"].as_str().is_some_and(|e| e.contains("in flight")),
                "{r:#}"
            );
            assert_eq!(code, 3);
        }
        other => panic!("run 2 persisted rules run 1 had not confirmed: {other:?} {r:#}"),
    }
}

/// A kernel without IPv6: a warning, and IPv4 converges.
#[test]
fn a_kernel_without_ipv6_is_a_warning_and_ipv4_converges() {
    let lab = Lab::up(1);
    hide_ipv6(&lab, "h001");
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    let r = host(&v, "h001");
    assert_eq!((code, r["status"].as_str()), (0, Some("changed")), "{v:#}");
    assert!(
        r["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("IPv6 is disabled")))),
        "{r:#}"
    );
    assert_eq!(
        r["persisted"],
        serde_json::json!(["/etc/sysconfig/iptables"]),
        "{r:#}"
    );
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    assert_eq!(
        (code, host(&v, "h001")["status"].as_str()),
        (0, Some("ok")),
        "{v:#}"
    );
}

// ---- The xtables lock, on a real Debian 11 (iptables 1.8.7, legacy) ----

/// Switch a Debian host to the legacy backend, as an operator would.
fn use_legacy(lab: &Lab, host: &str) {
    sh(
        lab,
        host,
        "update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null && \
         update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null && \
         iptables -V | grep -q legacy",
    );
}

/// Hold the host's xtables lock for `secs` seconds, as fail2ban, Docker
/// and kube-proxy do while they work; returns once it is held.
fn hold_xtables_lock(lab: &Lab, host: &str, secs: u32) {
    sh(
        lab,
        host,
        &format!(
            "rm -f /run/lock-held; setsid -f flock -x /run/xtables.lock sh -c 'touch /run/lock-held; sleep {secs}' </dev/null >/dev/null 2>&1
             i=0; while [ ! -e /run/lock-held ] && [ $i -lt 500 ]; do i=$((i + 1)); sleep 0.01; done; [ -e /run/lock-held ]"
        ),
    );
}

/// iptables 1.8.7 (legacy) fails at once while another program holds the
/// xtables lock. rampart's calls wait for it, bounded: the apply converges.
#[test]
fn a_held_xtables_lock_delays_an_apply_on_debian11_legacy() {
    let lab = Lab::up_distros(1, &["debian11"]);
    use_legacy(&lab, "h001");
    // What 1.8.7 does without waiting: fail at once.
    hold_xtables_lock(&lab, "h001", 4);
    let bare = lab.exec_in(
        "h001",
        &[
            "sh",
            "-c",
            "printf '*filter\\nCOMMIT\\n' | iptables-restore",
        ],
    );
    assert!(
        !bare.status.success() && String::from_utf8_lossy(&bare.stderr).contains("xtables lock"),
        "iptables 1.8.7 without -w: {}",
        show(&bare)
    );
    let t = Instant::now();
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    let r = host(&v, "h001");
    assert_eq!((code, r["status"].as_str()), (0, Some("changed")), "{v:#}");
    assert_eq!(r["backend"], "legacy", "{r:#}");
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "it did wait for the lock"
    );
    let (code, v) = apply(&lab, &pb("baseline.yml"), &[]);
    assert_eq!(
        (code, host(&v, "h001")["status"].as_str()),
        (0, Some("ok")),
        "{v:#}"
    );
}

/// The controller dies mid-lockout, and the lock is held as the switch
/// fires: the switch waits for it, restores, and the host comes back by
/// itself.
#[test]
fn the_switch_waits_for_a_held_lock_and_brings_the_host_back() {
    let lab = Lab::up_distros(1, &["debian11"]);
    use_legacy(&lab, "h001");
    let before = rules(&lab, "h001", "iptables");
    let inv = lab.inventory();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["apply", &pb("lockout.yml"), "-i"])
        .arg(&inv)
        .args([
            "--no-predict",
            "--connect-timeout",
            "4",
            "--confirm-timeout",
            "13",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("rampart apply");
    // Once the lockout is live (the switch is armed before it), SIGKILL the
    // controller: nobody is left to restore but the switch.
    let deadline = Instant::now() + Duration::from_secs(20);
    while rules(&lab, "h001", "iptables").contains("--dport 22")
        || !rules(&lab, "h001", "iptables").contains("--dport 80")
    {
        assert!(Instant::now() < deadline, "the lockout never went live");
        thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL rampart");
    let _ = child.wait();
    let killed = Instant::now();
    // The lock is held from now until after the switch fires (13 s after
    // arming, which came before the kill).
    hold_xtables_lock(&lab, "h001", 16);
    let back = (|| {
        while killed.elapsed() < Duration::from_secs(60) {
            if rules(&lab, "h001", "iptables") == before {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    })();
    assert!(
        back,
        "the switch never restored the host: {}",
        rules(&lab, "h001", "iptables")
    );
    assert!(
        killed.elapsed() >= Duration::from_secs(15),
        "restored while the lock was held?"
    );
    // The rules are back a moment before the switch has proven and
    // recorded it: wait (bounded) for its record.
    let recorded = crate::support::wait_until(Duration::from_secs(20), || {
        sh(
            &lab,
            "h001",
            "cat /var/lib/rampart/switch.state 2>/dev/null || true",
        )
        .trim()
            != "firing"
    });
    assert!(recorded, "the switch never recorded the end of its restore");
    assert_eq!(
        sh(&lab, "h001", "cat /var/lib/rampart/switch.state").trim(),
        "restored"
    );
    let ssh = lab.ssh("h001", "true");
    assert!(ssh.status.success(), "{}", show(&ssh));
    no_switch_left(&lab, "h001");
}
