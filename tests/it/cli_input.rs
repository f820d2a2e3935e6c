//! Bad input exits 1 with file:line:column and contacts no host; the
//! offline commands (`render`, `inventory`) print what they promise.
//!
//! Every case writes its own files under the system temp directory (unique
//! names, so cases run in parallel) and runs the built binary. No case needs
//! the lab: nothing here ever opens a connection.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const INVENTORY: &str = "\
hosts:
  web1: {address: 203.0.113.10}
  web2: {address: 203.0.113.11, port: 2222, user: admin, become: true}
  mx1:  {address: \"2001:db8::25\"}
groups:
  web: [web1, web2]
  mail: [\"mx*\"]
";

const PLAYBOOK: &str = "\
- name: base
  hosts: all
  firewall:
    allow: [ssh]
";

/// A file with this content under the temp dir, unique to this process and call.
fn temp_file(name: &str, content: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rampart-cli-input-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write temp file");
    path
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env("HOME", std::env::temp_dir())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run rampart")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Run, and check: exit 1 and stderr `rampart: error: FILE:LINE:COL: ...message...`.
#[track_caller]
fn assert_input_error(args: &[&str], file: &Path, line: usize, col: usize, message: &str) {
    let out = rampart(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    let want = format!("rampart: error: {}:{line}:{col}: ", file.display());
    assert!(stderr.contains(&want), "want {want:?} in stderr: {stderr}");
    assert!(
        stderr.contains(message),
        "want {message:?} in stderr: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

/// A bad playbook, rendered against the good inventory.
#[track_caller]
fn bad_playbook(text: &str, line: usize, col: usize, message: &str) {
    let inv = temp_file("inv.yml", INVENTORY);
    let pb = temp_file("pb.yml", text);
    assert_input_error(
        &["render", s(&pb), "-i", s(&inv), "--host", "web1"],
        &pb,
        line,
        col,
        message,
    );
}

/// A bad inventory, listed.
#[track_caller]
fn bad_inventory(name: &str, text: &str, line: usize, col: usize, message: &str) {
    let inv = temp_file(name, text);
    assert_input_error(&["inventory", "-i", s(&inv)], &inv, line, col, message);
}

#[test]
fn yaml_syntax_error_in_playbook() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    allow: [ssh\n",
        4,
        1,
        "did not find expected ',' or ']'",
    );
}

#[test]
fn yaml_syntax_error_in_inventory() {
    bad_inventory(
        "inv.yml",
        "hosts:\n  web1: {address: 1.2.3.4\n",
        3,
        1,
        "did not find expected",
    );
}

#[test]
fn unknown_key_in_playbook() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    allow: [ssh]\n    polcy: {input: drop}\n",
        4,
        5,
        "unknown field `polcy`",
    );
}

#[test]
fn unknown_key_in_inventory() {
    bad_inventory(
        "inv.yml",
        "hosts:\n  web1:\n    adress: 203.0.113.10\n",
        3,
        5,
        "unknown field `adress`",
    );
}

#[test]
fn unknown_service() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    allow: [http, htps]\n",
        3,
        19,
        "unknown service 'htps'",
    );
}

#[test]
fn port_zero() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    allow: [0]\n",
        3,
        13,
        "port 0 is out of range (1-65535)",
    );
}

#[test]
fn port_too_big() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    allow:\n      - {port: 65536, proto: udp}\n",
        4,
        16,
        "port 65536 is out of range (1-65535)",
    );
}

#[test]
fn port_range_reversed() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    allow: [\"61000:60000\"]\n",
        3,
        13,
        "port range 61000:60000 is reversed",
    );
}

#[test]
fn bad_cidr_address() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    allow: [{port: 22, from: 300.1.1.0/24}]\n",
        3,
        30,
        "'300.1.1.0' is not a valid IPv4 address",
    );
}

#[test]
fn bad_cidr_prefix() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    allow:\n      - port: 22\n        from: 192.0.2.0/33\n",
        5,
        15,
        "prefix /33 is too long for IPv4",
    );
}

#[test]
fn raw_rule_with_shell_metacharacters() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    rules:\n      - \"-A INPUT -j ACCEPT; rm -rf /\"\n",
        4,
        9,
        "shell metacharacter ';' is not allowed in a rule (at character 19 of the rule)",
    );
}

/// Needs the firewall core's `Rule::parse` (branch `fw`).
#[test]
fn raw_rule_that_does_not_parse() {
    bad_playbook(
        "- hosts: all\n  firewall:\n    rules: [\"-A INPUT -p tcp --dport 22 -j\"]\n",
        3,
        13,
        "invalid rule: ",
    );
}

#[test]
fn bad_inventory_port() {
    bad_inventory(
        "inv.yml",
        "defaults:\n  port: 70000\nhosts:\n  web1:\n",
        2,
        9,
        "port 70000 is out of range (1-65535)",
    );
}

#[test]
fn duplicate_host() {
    bad_inventory(
        "inv.yml",
        "hosts:\n  web1: {address: 203.0.113.10}\n  web1: {address: 203.0.113.11}\n",
        3,
        3,
        "duplicate host 'web1'",
    );
}

#[test]
fn group_naming_unknown_host() {
    bad_inventory(
        "inv.yml",
        "hosts:\n  web1:\ngroups:\n  web:\n    - web1\n    - web2\n",
        6,
        7,
        "group 'web' names 'web2', which is neither a host nor a group",
    );
}

#[test]
fn ansible_ini_bad_port_and_password() {
    bad_inventory(
        "hosts.ini",
        "[web]\nweb1 ansible_host=203.0.113.10 ansible_port=0\n",
        2,
        32,
        "ansible_port: port 0 is out of range",
    );
    bad_inventory(
        "hosts.ini",
        "[web]\nweb1 ansible_password=secret\n",
        2,
        6,
        "ansible_password is not supported",
    );
}

#[test]
fn render_unknown_host() {
    let inv = temp_file("inv.yml", INVENTORY);
    let pb = temp_file("pb.yml", PLAYBOOK);
    let out = rampart(&["render", s(&pb), "-i", s(&inv), "--host", "web9"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "rampart: error: {}: --host 'web9' is not a host of this inventory",
            inv.display()
        )),
        "{stderr}"
    );
}

#[test]
fn render_host_matched_by_no_play() {
    let inv = temp_file("inv.yml", INVENTORY);
    let pb = temp_file("pb.yml", "- hosts: web\n  firewall: {allow: [http]}\n");
    let out = rampart(&["render", s(&pb), "-i", s(&inv), "--host", "mx1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: no play matches host 'mx1'", pb.display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn limit_matching_nothing() {
    let inv = temp_file("inv.yml", INVENTORY);
    let out = rampart(&["inventory", "-i", s(&inv), "--limit", "web,!web1,!web2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--limit 'web,!web1,!web2' matches no host"),
        "{stderr}"
    );
    let out = rampart(&["inventory", "-i", s(&inv), "--limit", "wbe"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no host or group named 'wbe'"), "{stderr}");
}

/// Needs the firewall core (`desired`, `render`; branch `fw`).
#[test]
fn render_baseline_playbook_is_the_seed() {
    let out = rampart(&[
        "render",
        s(&repo("playbooks/baseline.yml")),
        "-i",
        s(&repo("inventory/example.yml")),
        "--host",
        "web2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        crate::support::SEED_V4
    );
}

#[test]
fn inventory_table_and_json() {
    let inv = temp_file("inv.yml", INVENTORY);
    let pb = temp_file(
        "pb.yml",
        "- name: web only\n  hosts: web\n  firewall: {allow: [http]}\n",
    );
    let out = rampart(&["inventory", "-i", s(&inv), "--playbook", s(&pb)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "NAME  ADDRESS       PORT  USER   BECOME  GROUPS  PLAYS"
    );
    assert_eq!(
        lines[2],
        "web2  203.0.113.11  2222  admin  yes     web     web only"
    );
    assert_eq!(
        lines[3],
        "mx1   2001:db8::25  22    root   no      mail    - (no play: not contacted)"
    );

    let out = rampart(&[
        "inventory",
        "-i",
        s(&inv),
        "--limit",
        "all,!mail",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let hosts = doc["hosts"].as_array().expect("hosts");
    let names: Vec<&str> = hosts.iter().filter_map(|h| h["name"].as_str()).collect();
    assert_eq!(names, ["web1", "web2"]);
    assert_eq!(hosts[1]["port"], 2222);
    assert_eq!(hosts[1]["become"], true);
    assert_eq!(hosts[1]["groups"], serde_json::json!(["web"]));
}

#[test]
fn example_inventories_agree() {
    let yml = rampart(&[
        "inventory",
        "-i",
        s(&repo("inventory/example.yml")),
        "--format",
        "json",
    ]);
    let ini = rampart(&[
        "inventory",
        "-i",
        s(&repo("inventory/example.ini")),
        "--format",
        "json",
    ]);
    assert_eq!(
        yml.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&yml.stderr)
    );
    assert_eq!(
        ini.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ini.stderr)
    );
    let a: serde_json::Value = serde_json::from_slice(&yml.stdout).expect("json");
    let b: serde_json::Value = serde_json::from_slice(&ini.stdout).expect("json");
    assert_eq!(
        a["hosts"], b["hosts"],
        "the INI example describes the same fleet"
    );
}

#[test]
fn shipped_playbooks_load() {
    for pb in ["baseline.yml", "mail.yml", "lockout.yml"] {
        let out = rampart(&[
            "inventory",
            "-i",
            s(&repo("inventory/example.yml")),
            "--playbook",
            s(&repo(&format!("playbooks/{pb}"))),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{pb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The seed's mail ports table, through an Ansible INI inventory.
#[test]
fn render_mail_playbook_from_ansible_inventory() {
    let out = rampart(&[
        "render",
        s(&repo("playbooks/mail.yml")),
        "-i",
        s(&repo("inventory/example.ini")),
        "--host",
        "mx1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let ports: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("-A INPUT -p tcp -m tcp --dport "))
        .filter_map(|l| l.strip_suffix(" -j ACCEPT"))
        .collect();
    assert_eq!(ports, ["22", "25", "465", "110", "995", "143", "993"]);
}

/// IPv6: ipv6-icmp instead of icmp, and an IPv4-only source is left out.
#[test]
fn render_web_playbook_ipv6() {
    let args = |v6: bool| {
        let mut a = vec![
            "render".to_string(),
            s(&repo("playbooks/web.yml")).to_string(),
            "-i".into(),
            s(&repo("inventory/example.yml")).to_string(),
            "--host".into(),
            "web1".into(),
        ];
        if v6 {
            a.push("--ipv6".into());
        }
        a
    };
    let run = |v6: bool| {
        let a = args(v6);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = rampart(&a);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let v4 = run(false);
    let v6 = run(true);
    assert!(
        v4.contains("-A INPUT -s 198.51.100.0/24 -p tcp -m tcp --dport 8080 -j ACCEPT"),
        "{v4}"
    );
    assert!(!v6.contains("198.51.100.0/24"), "{v6}");
    assert!(v6.contains("-A INPUT -p ipv6-icmp -j ACCEPT"), "{v6}");
    assert!(
        v6.contains("-A INPUT -p udp -m udp --dport 51820 -j ACCEPT"),
        "{v6}"
    );
}
