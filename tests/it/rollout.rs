//! Rollouts and access on a real fleet (docs/design.md, "Guarantees": host
//! keys, isolation and rollouts):
//! `--serial` batches and the canary, `--max-fail-percent`, Ctrl-C, `become`
//! through sudo, trust on first use of host keys, per-host settings.
//!
//! "Never contacted" is proved from the host's side: its sshd log gains no
//! line, no `/var/lib/rampart` appears, its rules are still the empty tables
//! of a fresh host. Setup and assertions go through `exec_in` (no SSH), so
//! they do not depend on what is tested.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{rampart, run_bounded, show, stdout, Lab, RAMPART_TIMEOUT};

/// Quick timeouts for every run: the lab answers in milliseconds.
pub(crate) const QUICK: [&str; 4] = ["--connect-timeout", "2", "--confirm-timeout", "10"];

/// A directory of files for one test (inventories, playbooks, known_hosts),
/// on the controller; removed on drop.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rampart-fleet-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).expect("create scratch subdir");
        }
        fs::write(&p, content).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A path as a YAML double-quoted scalar (JSON strings are valid YAML).
pub(crate) fn q(p: &Path) -> String {
    Value::String(p.display().to_string()).to_string()
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The single JSON document of `--format json`.
pub(crate) fn report(out: &Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", show(out)))
}

/// Host name -> status, from a JSON report.
pub(crate) fn statuses(v: &Value) -> BTreeMap<String, String> {
    v["hosts"]
        .as_array()
        .expect("hosts array")
        .iter()
        .map(|h| {
            (
                h["name"].as_str().expect("name").to_string(),
                h["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

pub(crate) fn host_entry<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["hosts"]
        .as_array()
        .expect("hosts array")
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the report: {v:#}"))
}

pub(crate) fn error_of(v: &Value, name: &str) -> String {
    host_entry(v, name)["error"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `rampart <cmd> PLAYBOOK -i INV --format json <QUICK> <extra>`.
pub(crate) fn run_json(cmd: &str, playbook: &Path, inventory: &Path, extra: &[&str]) -> Output {
    let mut args = vec![cmd, s(playbook), "-i", s(inventory), "--format", "json"];
    args.extend(QUICK);
    args.extend(extra);
    rampart(&args)
}

pub(crate) fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The host's sshd log (`-E`), as it is now.
pub(crate) fn sshd_log(lab: &Lab, host: &str) -> String {
    let p = lab.state().paths().host(host).sshd_log();
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The lines of an sshd log that show an SSH client: everything except the
/// listener's start and the lab's own readiness probe (a bare TCP connect,
/// which sshd may log a moment after `lab up` returned). Every connection
/// is logged as "Connection from" (LogLevel VERBOSE), the probe's too, so
/// that line is not counted: a client always leaves more than that line.
pub(crate) fn contacts(log: &str) -> Vec<String> {
    log.lines()
        .map(str::trim)
        .filter(|l| {
            let probe = l
                .starts_with("kex_exchange_identification: Connection closed by remote host")
                || (l.starts_with("Connection closed by ") && !l.contains('['))
                || l.starts_with("Connection from ");
            !l.is_empty() && !l.starts_with("Server listening on ") && !probe
        })
        .map(str::to_string)
        .collect()
}

/// stdout of a command run inside the host, which must succeed.
pub(crate) fn in_host(lab: &Lab, host: &str, sh: &str) -> String {
    let out = lab.exec_in(host, &["sh", "-c", sh]);
    assert!(out.status.success(), "{host}: {sh}:\n{}", show(&out));
    stdout(&out)
}

/// Whether a shell test inside the host succeeds.
pub(crate) fn in_host_ok(lab: &Lab, host: &str, sh: &str) -> bool {
    lab.exec_in(host, &["sh", "-c", sh]).status.success()
}

/// The host's rules (both families) without comments and counters.
pub(crate) fn rules_now(lab: &Lab, host: &str) -> String {
    let raw = in_host(lab, host, "iptables-save; echo '##v6'; ip6tables-save");
    raw.lines()
        .filter(|l| !l.starts_with("# "))
        .map(|l| {
            if l.starts_with(':') {
                // ":CHAIN POLICY [p:b]" -> ":CHAIN POLICY"
                l.rsplit_once(' ').map_or(l, |(a, _)| a).to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A host rampart never touched in this test: its sshd saw nobody since
/// `log_before`, it has no rampart state and no rules (a fresh lab host).
pub(crate) fn assert_never_contacted(lab: &Lab, host: &str, log_before: &str) {
    let log = sshd_log(lab, host);
    assert_eq!(
        contacts(&log),
        contacts(log_before),
        "{host}'s sshd saw a client although the host must never be contacted:\n{log}"
    );
    assert!(
        !in_host_ok(lab, host, "test -e /var/lib/rampart"),
        "{host} has /var/lib/rampart"
    );
    assert_eq!(rules_now(lab, host).trim(), "##v6", "{host}: rules changed");
    assert_eq!(no_strays(lab, host), Vec::<String>::new());
}

/// Processes in the host other than sshd (its listener and sessions).
pub(crate) fn no_strays(lab: &Lab, host: &str) -> Vec<String> {
    lab.host_processes(host)
        .into_iter()
        .map(|p| p.cmdline)
        .filter(|c| !c.starts_with("sshd") && !c.contains("/sshd"))
        .collect()
}

/// A native inventory: `defaults` lines then one `name: {...}` per host.
pub(crate) fn inventory(lab: &Lab, defaults: &str, hosts: &[(&str, &str)]) -> String {
    let mut y = format!(
        "defaults:\n  identity_file: {}\n  known_hosts: {}\n{defaults}hosts:\n",
        q(&lab.identity()),
        q(&lab.known_hosts())
    );
    for (name, extra) in hosts {
        let h = lab.host(name);
        let sep = if extra.is_empty() { "" } else { ", " };
        y.push_str(&format!(
            "  {name}: {{address: {}{sep}{extra}}}\n",
            h.address
        ));
    }
    y
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("h{i:03}")).collect()
}

// ---------------------------------------------------------------- serial

#[test]
fn failing_canary_stops_the_rollout_and_the_rest_are_never_contacted() {
    let lab = Lab::up(4);
    let baseline = repo("playbooks/baseline.yml");
    lab.cut_link("h001");
    let logs: Vec<String> = names(4).iter().map(|h| sshd_log(&lab, h)).collect();

    let scratch = Scratch::new();
    let junit = scratch.path().join("junit.xml");
    let out = run_json(
        "apply",
        &baseline,
        &lab.inventory(),
        &[
            "--serial",
            "1",
            "--max-fail-percent",
            "0",
            "--junit",
            s(&junit),
        ],
    );
    lab.restore_link("h001");
    let xml = fs::read_to_string(&junit).expect("the JUnit file is written");
    assert_eq!(xml.matches("<skipped").count(), 3, "{xml}");
    assert_eq!(
        xml.matches("<failure type=\"unreachable\"").count(),
        1,
        "{xml}"
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let st = statuses(&v);
    assert_eq!(st["h001"], "unreachable", "{v:#}");
    for h in ["h002", "h003", "h004"] {
        assert_eq!(st[h], "skipped", "{h}: {v:#}");
    }
    assert_eq!(v["summary"]["skipped"], 3, "{v:#}");
    assert_eq!(v["summary"]["unreachable"], 1, "{v:#}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max-fail-percent"),
        "the stop is explained:\n{}",
        show(&out)
    );
    for (i, h) in names(4).iter().enumerate().skip(1) {
        assert_never_contacted(&lab, h, &logs[i]);
    }
}

#[test]
fn host_key_failure_in_the_second_batch_stops_before_the_third() {
    // Batches of 2: {h001,h002} fine, {h003,h004} with h003 failing (changed
    // key): h004 still runs (same batch), h005 and h006 are never contacted.
    let lab = Lab::up(6);
    lab.change_host_key("h003");
    let logs: Vec<String> = names(6).iter().map(|h| sshd_log(&lab, h)).collect();
    let out = run_json(
        "apply",
        &repo("playbooks/baseline.yml"),
        &lab.inventory(),
        &["--serial", "2", "--max-fail-percent", "20"],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let st = statuses(&v);
    let want = [
        ("h001", "changed"),
        ("h002", "changed"),
        ("h003", "failed"),
        ("h004", "changed"),
        ("h005", "skipped"),
        ("h006", "skipped"),
    ];
    for (h, s) in want {
        assert_eq!(st[h], s, "{h}: {v:#}");
    }
    assert!(error_of(&v, "h003").contains("HOST KEY CHANGED"), "{v:#}");
    // A changed key fails before authentication: h003's sshd accepted nobody.
    assert!(
        !sshd_log(&lab, "h003")[logs[2].len()..].contains("Accepted"),
        "{}",
        sshd_log(&lab, "h003")
    );
    assert!(!in_host_ok(&lab, "h003", "test -e /var/lib/rampart"));
    for i in [4, 5] {
        assert_never_contacted(&lab, &names(6)[i], &logs[i]);
    }
}

/// The hosts in the order the plain progress lines (stderr) report them done.
fn finish_order(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (_, rest) = rest.split_once("] ")?;
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

#[test]
fn serial_batches_converge_a_healthy_fleet_by_count_and_by_percent() {
    let lab = Lab::up(4);
    let out = run_json(
        "apply",
        &repo("playbooks/baseline.yml"),
        &lab.inventory(),
        &["--serial", "2", "--max-fail-percent", "0"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    assert!(statuses(&v).values().all(|s| s == "changed"), "{v:#}");
    assert_eq!(v["summary"]["changed"], 4);
    // Batches of 2: both hosts of the first batch finish before any of the second.
    let order = finish_order(&out);
    assert_eq!(order.len(), 4, "{}", show(&out));
    let mut first: Vec<String> = order[..2].to_vec();
    first.sort();
    assert_eq!(first, ["h001", "h002"], "finish order {order:?}");

    // 50% of 4 hosts: batches of 2 again, with another playbook: all change.
    let scratch = Scratch::new();
    let pb = scratch.write(
        "web.yml",
        "- hosts: all\n  firewall:\n    allow: [ssh, {port: 8080, proto: tcp}]\n",
    );
    let out = run_json(
        "apply",
        &pb,
        &lab.inventory(),
        &["--serial", "50%", "--max-fail-percent", "0"],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    assert!(statuses(&v).values().all(|s| s == "changed"), "{v:#}");
    let order = finish_order(&out);
    let mut first: Vec<String> = order[..2].to_vec();
    first.sort();
    assert_eq!(first, ["h001", "h002"], "finish order {order:?}");
    for h in names(4) {
        assert!(
            in_host(&lab, &h, "iptables-save").contains("--dport 8080 -j ACCEPT"),
            "{h}"
        );
    }
}

// ---------------------------------------------------------------- Ctrl-C

/// Start rampart in the background with stdout/stderr to files.
fn spawn_rampart(args: &[&str], scratch: &Scratch) -> std::process::Child {
    let o = fs::File::create(scratch.path().join("out")).expect("out file");
    let e = fs::File::create(scratch.path().join("err")).expect("err file");
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(o)
        .stderr(e)
        .spawn()
        .expect("spawn rampart")
}

fn wait_bounded(child: &mut std::process::Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return Some(st.code().unwrap_or(-1));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn sigint(child: &std::process::Child) {
    // `kill(1)`: the crate forbids unsafe code, libc::kill included.
    let pid = child.id().to_string();
    let out = run_bounded(
        Command::new("kill").args(["-s", "INT", &pid]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "kill -INT {pid}: {}", show(&out));
}

/// Poll until some host has `path` (a transaction reached it); its name.
fn wait_for_in_flight(
    lab: &Lab,
    hosts: &[String],
    path: &str,
    child: &mut std::process::Child,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for h in hosts {
            if in_host_ok(lab, h, &format!("test -e {path}")) {
                return h.clone();
            }
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "rampart ended before any host was seen in flight"
        );
        assert!(Instant::now() < deadline, "no host reached {path}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_starts_no_new_host_and_reports_the_rest_skipped() {
    let lab = Lab::up(4);
    let hosts = names(4);
    let logs: BTreeMap<String, String> = hosts
        .iter()
        .map(|h| (h.clone(), sshd_log(&lab, h)))
        .collect();
    let scratch = Scratch::new();
    let pb = repo("playbooks/baseline.yml");
    let inv = lab.inventory();
    let mut args = vec![
        "apply",
        s(&pb),
        "-i",
        s(&inv),
        "--no-predict",
        "--format",
        "json",
        "--forks",
        "1",
    ];
    args.extend(QUICK);
    let mut child = spawn_rampart(&args, &scratch);
    let first = wait_for_in_flight(&lab, &hosts, "/var/lib/rampart", &mut child);
    sigint(&child);
    let rc = wait_bounded(&mut child, RAMPART_TIMEOUT);
    let out = fs::read_to_string(scratch.path().join("out")).unwrap_or_default();
    let err = fs::read_to_string(scratch.path().join("err")).unwrap_or_default();
    let what = format!("rc {rc:?}\n--- stdout\n{out}\n--- stderr\n{err}");
    assert_eq!(rc, Some(3), "exits by itself, 3 (hosts skipped): {what}");
    assert!(err.contains("interrupted"), "{what}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {what}"));
    let st = statuses(&v);
    assert_eq!(st.len(), 4, "{what}");
    assert_ne!(st[&first], "skipped", "{first} was in flight: {what}");
    let skipped: Vec<&String> = st
        .iter()
        .filter(|(_, s)| *s == "skipped")
        .map(|(h, _)| h)
        .collect();
    assert!(
        skipped.len() >= 2,
        "forks 1: at most 2 hosts could start: {what}"
    );
    for (h, status) in &st {
        match status.as_str() {
            "skipped" => assert_never_contacted(&lab, h, &logs[h]),
            // The in-flight host finished its transaction: converged and persisted.
            "changed" => {
                assert!(in_host(&lab, h, "iptables -S INPUT").contains("-P INPUT DROP"));
                assert!(in_host_ok(
                    &lab,
                    h,
                    "test -s /etc/sysconfig/iptables || test -s /etc/iptables/rules.v4"
                ));
                assert_eq!(no_strays(&lab, h), Vec::<String>::new(), "{h}");
            }
            other => panic!("{h}: unexpected status {other}: {what}"),
        }
    }
}

#[test]
fn second_ctrl_c_exits_at_once_and_the_switch_restores_the_host() {
    let lab = Lab::up(2);
    let hosts = names(2);
    let logs: BTreeMap<String, String> = hosts
        .iter()
        .map(|h| (h.clone(), sshd_log(&lab, h)))
        .collect();
    let scratch = Scratch::new();
    // Lockout: the confirmation fails, so the host stays in flight for at
    // least the connect timeout with its switch armed.
    let pb = repo("playbooks/lockout.yml");
    let inv = lab.inventory();
    let mut args = vec![
        "apply",
        s(&pb),
        "-i",
        s(&inv),
        "--no-predict",
        "--format",
        "json",
        "--forks",
        "1",
    ];
    args.extend(QUICK);
    let mut child = spawn_rampart(&args, &scratch);
    let first = wait_for_in_flight(&lab, &hosts, "/var/lib/rampart/switch.pid", &mut child);
    sigint(&child);
    thread::sleep(Duration::from_millis(300));
    sigint(&child);
    let t = Instant::now();
    let rc = wait_bounded(&mut child, Duration::from_secs(20));
    let err = fs::read_to_string(scratch.path().join("err")).unwrap_or_default();
    assert_eq!(rc, Some(130), "a second Ctrl-C exits 130: {err}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a second Ctrl-C exits at once, took {:?}",
        t.elapsed()
    );
    assert!(err.contains("interrupted twice"), "{err}");

    // The host is back on its old (empty) rules within the confirm window,
    // by rampart's restore or the dead-man switch, and nothing is left running.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let back = in_host(&lab, &first, "iptables -S INPUT").trim() == "-P INPUT ACCEPT"
            && !in_host_ok(&lab, &first, "test -e /var/lib/rampart/switch.pid")
            && no_strays(&lab, &first).is_empty();
        if back {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{first} not restored: {}\nprocesses {:?}",
            rules_now(&lab, &first),
            no_strays(&lab, &first)
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert!(!in_host_ok(
        &lab,
        &first,
        "ls /etc/sysconfig/iptables /etc/iptables/rules.v4 2>/dev/null | grep -q ."
    ));
    let ssh = lab.ssh(&first, "echo back");
    assert_eq!(stdout(&ssh).trim(), "back", "{}", show(&ssh));
    for h in hosts.iter().filter(|h| **h != first) {
        assert_never_contacted(&lab, h, &logs[h]);
    }
}

// ---------------------------------------------------------------- become

#[test]
fn become_runs_through_passwordless_sudo_and_fails_clearly_otherwise() {
    let lab = Lab::up(1);
    let scratch = Scratch::new();
    let pb = repo("playbooks/baseline.yml");
    let log0 = sshd_log(&lab, "h001");
    let _ = log0;

    // sudo wants a password: failed, with the reason, nothing changed.
    let inv = scratch.write(
        "nopw.yml",
        &inventory(&lab, "", &[("h001", "user: nopw, become: true")]),
    );
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h001"], "failed", "{v:#}");
    let e = error_of(&v, "h001");
    assert!(e.contains("sudo") && e.contains("password"), "{e}");
    assert_eq!(rules_now(&lab, "h001").trim(), "##v6");
    assert!(!in_host_ok(&lab, "h001", "test -e /var/lib/rampart"));

    // Not root and no become: failed, saying so.
    let inv = scratch.write(
        "deploy-nobecome.yml",
        &inventory(&lab, "", &[("h001", "user: deploy, become: false")]),
    );
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h001"], "failed", "{v:#}");
    let e = error_of(&v, "h001");
    assert!(e.contains("not root") && e.contains("become"), "{e}");
    assert_eq!(rules_now(&lab, "h001").trim(), "##v6");
    assert!(!in_host_ok(&lab, "h001", "test -e /var/lib/rampart"));

    // Passwordless sudo: converged, files owned by root.
    let inv = scratch.write(
        "deploy.yml",
        &inventory(&lab, "  user: deploy\n  become: true\n", &[("h001", "")]),
    );
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h001"], "changed", "{v:#}");
    assert!(in_host(&lab, "h001", "iptables -S INPUT").contains("-P INPUT DROP"));
    let owners = in_host(
        &lab,
        "h001",
        "stat -c '%n %U %G %a' /etc/sysconfig/iptables /etc/sysconfig/ip6tables /var/lib/rampart",
    );
    assert_eq!(
        owners.trim(),
        "/etc/sysconfig/iptables root root 600\n/etc/sysconfig/ip6tables root root 600\n/var/lib/rampart root root 700"
    );
    assert!(
        sshd_log(&lab, "h001").contains("Accepted publickey for deploy"),
        "ran as deploy"
    );
    assert_eq!(no_strays(&lab, "h001"), Vec::<String>::new());
    // And again: ok, through sudo too.
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(statuses(&report(&out))["h001"], "ok");
}

// ---------------------------------------------------------------- host keys

fn key_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn accept_new_host_keys_records_unknown_keys_but_never_a_changed_one() {
    let lab = Lab::up(2);
    let scratch = Scratch::new();
    let kh = scratch.write("known_hosts", "");
    let inv = scratch.write(
        "inv.yml",
        &inventory(
            &lab,
            &format!("  known_hosts: {}\n", q(&kh)),
            &[("h001", ""), ("h002", "")],
        )
        .replacen(
            &format!("  known_hosts: {}\n", q(&lab.known_hosts())),
            "",
            1,
        ),
    );
    let pb = repo("playbooks/baseline.yml");

    // Unknown keys without the flag: failed, nothing recorded, nothing run.
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    for h in ["h001", "h002"] {
        assert_eq!(statuses(&v)[h], "failed", "{v:#}");
        assert!(error_of(&v, h).contains("--accept-new-host-keys"), "{v:#}");
        assert!(!in_host_ok(&lab, h, "test -e /var/lib/rampart"));
    }
    assert!(key_lines(&kh).is_empty());

    // With the flag: converged, one line per host recorded.
    let out = run_json("apply", &pb, &inv, &["--accept-new-host-keys"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(statuses(&report(&out)).values().all(|s| s == "changed"));
    let lines = key_lines(&kh);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for h in ["h001", "h002"] {
        let addr = lab.host(h).address.to_string();
        let real = fs::read_to_string(lab.known_hosts()).expect("lab known_hosts");
        let real_key = real
            .lines()
            .find(|l| l.split_whitespace().next() == Some(addr.as_str()))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .expect("lab key");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&addr) && l.contains(&real_key)),
            "{h}'s real key recorded: {lines:?}"
        );
    }

    // Without the flag now: the recorded keys are trusted.
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(statuses(&report(&out)).values().all(|s| s == "ok"));

    // A changed key fails even with the flag, before authenticating.
    lab.change_host_key("h001");
    let log = sshd_log(&lab, "h001");
    let out = run_json("apply", &pb, &inv, &["--accept-new-host-keys"]);
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h001"], "failed", "{v:#}");
    assert_eq!(statuses(&v)["h002"], "ok", "{v:#}");
    assert!(error_of(&v, "h001").contains("HOST KEY CHANGED"), "{v:#}");
    assert_eq!(key_lines(&kh), lines, "known_hosts unchanged");
    let after = sshd_log(&lab, "h001");
    assert!(
        !after[log.len().min(after.len())..].contains("Accepted"),
        "no login on a changed key: {after}"
    );
}

// ---------------------------------------------------------------- per host

#[test]
fn per_host_identity_known_hosts_and_port_are_honoured() {
    let lab = Lab::up(4);
    let scratch = Scratch::new();
    // Defaults that cannot work: an unauthorized key (another host's host
    // key is a valid private key nobody authorized) and an empty known_hosts.
    let bad_key = lab.state().paths().host("h004").host_key();
    let empty_kh = scratch.write("empty_known_hosts", "");
    let good_key = lab.identity();
    let good_kh = lab.known_hosts();
    let y = format!(
        "defaults:\n  identity_file: {}\n  known_hosts: {}\nhosts:\n\
         \x20 h001: {{address: {}, identity_file: {}, known_hosts: {}}}\n\
         \x20 h002: {{address: {}, known_hosts: {}}}\n\
         \x20 h003: {{address: {}, identity_file: {}, known_hosts: {}, port: 2222}}\n\
         \x20 h004: {{address: {}, identity_file: {}}}\n",
        q(&bad_key),
        q(&empty_kh),
        lab.host("h001").address,
        q(&good_key),
        q(&good_kh),
        lab.host("h002").address,
        q(&good_kh),
        lab.host("h003").address,
        q(&good_key),
        q(&good_kh),
        lab.host("h004").address,
        q(&good_key),
    );
    let inv = scratch.write("inv.yml", &y);
    let out = run_json("apply", &repo("playbooks/baseline.yml"), &inv, &[]);
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let st = statuses(&v);
    // Its own key and known_hosts: converged.
    assert_eq!(st["h001"], "changed", "{v:#}");
    // Default (unauthorized) key: authentication fails.
    assert_eq!(st["h002"], "unreachable", "{v:#}");
    assert!(error_of(&v, "h002").contains("authentication"), "{v:#}");
    assert!(error_of(&v, "h002").contains(s(&bad_key)), "{v:#}");
    // Its own port, where nothing listens.
    assert_eq!(st["h003"], "unreachable", "{v:#}");
    assert!(error_of(&v, "h003").contains(":2222"), "{v:#}");
    // Default (empty) known_hosts: unknown key.
    assert_eq!(st["h004"], "failed", "{v:#}");
    assert!(error_of(&v, "h004").contains(s(&empty_kh)), "{v:#}");
    for h in ["h002", "h003", "h004"] {
        assert!(!in_host_ok(&lab, h, "test -e /var/lib/rampart"), "{h}");
        assert_eq!(rules_now(&lab, h).trim(), "##v6", "{h}");
    }
    assert!(key_lines(&empty_kh).is_empty());
}

#[test]
fn accepting_a_new_key_keeps_a_hand_edited_known_hosts_intact() {
    // The last line of a hand-edited file often lacks its newline.
    let lab = Lab::up(2);
    let scratch = Scratch::new();
    let addr2 = lab.host("h002").address.to_string();
    let real = fs::read_to_string(lab.known_hosts()).expect("lab known_hosts");
    let line2 = real
        .lines()
        .find(|l| l.split_whitespace().next() == Some(addr2.as_str()))
        .expect("h002's key")
        .to_string();
    let kh = scratch.write("known_hosts", &format!("# mine\n{line2}"));
    let y = inventory(&lab, "", &[("h001", ""), ("h002", "")]).replacen(
        &q(&lab.known_hosts()),
        &q(&kh),
        1,
    );
    let inv = scratch.write("inv.yml", &y);
    let pb = repo("playbooks/baseline.yml");
    let out = run_json("apply", &pb, &inv, &["--accept-new-host-keys"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let lines = key_lines(&kh);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], line2);
    // Both entries still work without the flag.
    let out = run_json("apply", &pb, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(statuses(&report(&out)).values().all(|s| s == "ok"));
}

/// A fresh VPS reached with its root password (`password_env`):
/// no key anywhere (HOME without .ssh, no agent), the password read from
/// the named variable; a wrong one is `unreachable` with nothing run; an
/// unset one stops the run before any host is contacted (exit 1).
#[test]
fn password_from_the_environment_logs_in_to_a_fresh_vps() {
    let lab = Lab::up(2);
    let scratch = Scratch::new();
    let home = scratch.path().join("home");
    fs::create_dir_all(&home).expect("empty home");
    let password =
        fs::read_to_string(lab.dir().join("root_password")).expect("the lab's root password");
    let y = format!(
        "defaults:\n  known_hosts: {}\n  password_env: RAMPART_TEST_ROOT_PW\nhosts:\n\
         \x20 h001: {{address: {}}}\n",
        q(&lab.known_hosts()),
        lab.host("h001").address,
    );
    let inv = scratch.write("inv.yml", &y);
    let playbook = repo("playbooks/baseline.yml");
    let run = |pw: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
        // -vv: every step sent and what came back, on stderr; the password
        // must not be in it either.
        cmd.args([
            "apply",
            s(&playbook),
            "-i",
            s(&inv),
            "--format",
            "json",
            "-vv",
        ])
        .args(QUICK)
        .env("HOME", &home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RAMPART_TEST_ROOT_PW");
        if let Some(pw) = pw {
            cmd.env("RAMPART_TEST_ROOT_PW", pw);
        }
        run_bounded(&mut cmd, RAMPART_TIMEOUT)
    };
    let log_before = sshd_log(&lab, "h001");

    let out = run(None);
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        show(&out).contains("RAMPART_TEST_ROOT_PW"),
        "{}",
        show(&out)
    );
    assert_never_contacted(&lab, "h001", &log_before);

    let out = run(Some("not-the-password"));
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h001"], "unreachable", "{v:#}");
    assert!(error_of(&v, "h001").contains("password"), "{v:#}");
    assert!(
        !error_of(&v, "h001").contains("not-the-password"),
        "the password is never shown: {v:#}"
    );
    assert!(!in_host_ok(&lab, "h001", "test -e /var/lib/rampart"));

    let out = run(Some(password.trim()));
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(statuses(&report(&out))["h001"], "changed", "{}", show(&out));
    assert!(
        !show(&out).contains(password.trim()),
        "the password is never shown"
    );
    // -v: a line per step with its time; -vv: the steps and their output.
    let err = String::from_utf8_lossy(&out.stderr);
    for step in ["connect", "facts", "test", "confirm", "verify", "persist"] {
        assert!(
            err.lines()
                .any(|l| l.trim_start().starts_with("h001 ") && l.ends_with(&format!("s {step}"))),
            "-v shows the {step} step:\n{err}"
        );
    }
    for step in ["facts", "apply", "verify", "commit"] {
        assert!(
            err.contains(&format!("sends the {step} step")),
            "-vv shows the {step} step"
        );
    }
    assert!(in_host_ok(&lab, "h001", "test -s /etc/sysconfig/iptables"));
}
