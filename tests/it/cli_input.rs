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
        "NAME  ADDRESS       PORT  USER   BECOME  KEY  JUMP  GROUPS  PLAYS"
    );
    assert_eq!(
        lines[2],
        "web2  203.0.113.11  2222  admin  yes     -    -     web     web only"
    );
    assert_eq!(
        lines[3],
        "mx1   2001:db8::25  22    root   no      -    -     mail    - (no play: not contacted)"
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
    // Where each value came from differs (a YAML key, an INI line): the rest not.
    let without_sources = |out: &Output| {
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        for h in v["hosts"].as_array_mut().expect("hosts") {
            h.as_object_mut().expect("host").remove("sources");
        }
        v
    };
    let a = without_sources(&yml);
    let b = without_sources(&ini);
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

// ------------------------------------------------ operator conventions (issue 14)

/// Run with a HOME of the test's own (for `~/.ssh/config`) and extra
/// environment variables.
fn rampart_env(args: &[&str], home: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(args)
        .env("HOME", home)
        .env("RUST_BACKTRACE", "0")
        .env_remove("RAMPART_FORKS")
        .env_remove("RAMPART_FORMAT")
        .env_remove("RAMPART_CONNECT_TIMEOUT")
        .env_remove("RAMPART_CONFIRM_TIMEOUT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rampart")
}

/// A fresh, empty directory of this test's own.
fn temp_dir(name: &str) -> PathBuf {
    let d = temp_file(name, "").with_file_name(format!("{name}.d"));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// clap's exit code for a usage error is 2, which rampart's CI users read
/// as drift: every usage error exits 1, help and version 0 (on stdout).
#[test]
fn usage_errors_exit_1_help_and_version_exit_0() {
    let inv = temp_file("inv.yml", INVENTORY);
    let pb = temp_file("pb.yml", PLAYBOOK);
    let home = temp_dir("home");
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let usage: Vec<Case> = vec![
        (
            vec!["apply", s(&pb), "-i", s(&inv), "--bogus"],
            vec![],
            "--bogus",
        ),
        (vec!["apply", s(&pb)], vec![], "--inventory"),
        (
            vec!["audit", s(&pb), "-i", s(&inv), "--forks", "0"],
            vec![],
            "--forks",
        ),
        (
            vec!["audit", s(&pb), "-i", s(&inv)],
            vec![("RAMPART_FORKS", "0")],
            "--forks",
        ),
        (
            vec!["audit", s(&pb), "-i", s(&inv)],
            vec![("RAMPART_FORMAT", "xml")],
            "--format",
        ),
        (
            vec!["audit", s(&pb), "-i", s(&inv), "--shard", "4/3"],
            vec![],
            "K/N",
        ),
        (
            vec!["inventory", "-i", s(&inv), "--shard", "0/2"],
            vec![],
            "K/N",
        ),
        (vec!["completions", "tcsh"], vec![], "tcsh"),
        (vec!["report", "merge"], vec![], "REPORT.json"),
        (vec![], vec![], "Usage"),
    ];
    for (args, env, says) in usage {
        let out = rampart_env(&args, &home, &env);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} {env:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    for args in [
        vec!["--help"],
        vec!["apply", "--help"],
        vec!["help", "audit"],
    ] {
        let out = rampart_env(&args, &home, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage:"), "{args:?}");
    }
    let out = rampart_env(&["--version"], &home, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("rampart "),
        "{}",
        text(&out.stdout)
    );
    // The variables are read, and a flag beats them.
    let out = rampart_env(
        &["inventory", "-i", s(&inv)],
        &home,
        &[("RAMPART_FORMAT", "json")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from the variable");
    let out = rampart_env(
        &["inventory", "-i", s(&inv), "--format", "human"],
        &home,
        &[("RAMPART_FORMAT", "json")],
    );
    assert!(
        text(&out.stdout).starts_with("NAME "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn completions_and_man_page() {
    let home = temp_dir("home");
    for (shell, marker) in [
        ("bash", "_rampart()"),
        ("zsh", "#compdef rampart"),
        ("fish", "complete -c rampart"),
    ] {
        let out = rampart_env(&["completions", shell], &home, &[]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(script.contains("--shard"), "{shell} completes the flags");
    }
    let out = rampart_env(&["man"], &home, &[]);
    assert_eq!(out.status.code(), Some(0));
    let page = text(&out.stdout);
    assert!(page.contains(".TH rampart 1"), "{page:.300}");
    assert!(page.contains("completions"), "the page lists the commands");
}

#[test]
fn bad_ssh_config_exits_1_with_its_position() {
    let inv = temp_file("inv.yml", INVENTORY);
    let cfg = temp_file("ssh_config", "# mine\nHost web*\n  Port 99999\n");
    assert_input_error(
        &["inventory", "-i", s(&inv), "--ssh-config", s(&cfg)],
        &cfg,
        3,
        8,
        "port 99999 is out of range",
    );
    let cfg = temp_file("ssh_config", "Host *\n  ProxyJump ops@gw:22,oops:x\n");
    assert_input_error(
        &["inventory", "-i", s(&inv), "--ssh-config", s(&cfg)],
        &cfg,
        2,
        23,
        "bad jump host 'oops:x': invalid port 'x'",
    );
    // The inventory names its own ssh_config; ~/.ssh/config is the default.
    let inv2 = temp_file(
        "inv.yml",
        &format!("defaults:\n  ssh_config: {}\nhosts:\n  a:\n", cfg.display()),
    );
    assert_input_error(&["inventory", "-i", s(&inv2)], &cfg, 2, 23, "bad jump host");
    let home = temp_dir("home");
    let user_cfg = home.join(".ssh/config");
    std::fs::create_dir_all(home.join(".ssh")).expect("mkdir");
    std::fs::write(&user_cfg, "Host a\n  User \"x\n").expect("write");
    let out = rampart_env(&["inventory", "-i", s(&inv)], &home, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("{}:2:8: unterminated quote", user_cfg.display())),
        "{}",
        text(&out.stderr)
    );
    // `none` turns it off, on the command line or in the inventory.
    let out = rampart_env(
        &["inventory", "-i", s(&inv), "--ssh-config", "none"],
        &home,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let inv3 = temp_file("inv.yml", "defaults:\n  ssh_config: none\nhosts:\n  a:\n");
    let out = rampart_env(&["inventory", "-i", s(&inv3)], &home, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn bad_proxy_jump_exits_1_with_its_position() {
    bad_inventory(
        "inv.yml",
        "hosts:\n  web1: {proxy_jump: 'ops@gw:70000'}\n",
        2,
        22,
        "bad jump host 'ops@gw:70000'",
    );
    bad_inventory(
        "inv.ini",
        "[web]\nweb1 ansible_ssh_common_args='-o ProxyJump=a,,b'\n",
        2,
        6,
        "ansible_ssh_common_args: bad jump host ''",
    );
    let inv = temp_file(
        "inv.yml",
        "hosts:\n  a: {proxy_jump: b}\n  b: {proxy_jump: a}\n",
    );
    let out = rampart(&["inventory", "-i", s(&inv)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("jump hosts form a cycle: a -> b -> a"),
        "{}",
        text(&out.stderr)
    );
}

/// `rampart inventory` shows what each host will be reached with, and why.
#[test]
fn ssh_config_fills_what_the_inventory_leaves_unsaid() {
    let home = temp_dir("home");
    std::fs::create_dir_all(home.join(".ssh")).expect("mkdir");
    let cfg = home.join(".ssh/config");
    std::fs::write(
        &cfg,
        "Host bastion\n  HostName 192.0.2.7\n  User ops\n  ProxyJump none\n\
         Host web*\n  User deploy\n  Port 2222\n  IdentityFile ~/.ssh/id_%h\n  ProxyJump bastion\n  StrictHostKeyChecking no\n\
         Host *\n  UserKnownHostsFile ~/.ssh/kh1 ~/.ssh/kh2\n",
    )
    .expect("write");
    // web1's key exists; web2's does not: ssh passes over it, so does rampart.
    std::fs::write(home.join(".ssh/id_203.0.113.10"), "").expect("write key");
    let inv = temp_file(
        "inv.yml",
        "hosts:\n  web1: {address: 203.0.113.10}\n  web2: {address: 203.0.113.11, user: admin}\n  mx1:\n",
    );
    let out = rampart_env(
        &["inventory", "-i", s(&inv), "--format", "json"],
        &home,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let warnings = text(&out.stderr);
    assert_eq!(
        warnings
            .matches("StrictHostKeyChecking no is not honoured")
            .count(),
        1,
        "one warning per line, not per host: {warnings}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let web1 = &doc["hosts"][0];
    let at = |line: usize| format!("ssh_config {}:{line}", cfg.display());
    assert_eq!(web1["address"], "203.0.113.10");
    assert_eq!(web1["sources"]["address"], "hosts.web1");
    assert_eq!(
        (web1["user"].clone(), web1["port"].clone()),
        ("deploy".into(), 2222.into())
    );
    assert_eq!(web1["sources"]["user"], at(6).as_str());
    assert_eq!(
        web1["identity_file"],
        home.join(".ssh/id_203.0.113.10")
            .display()
            .to_string()
            .as_str()
    );
    assert_eq!(
        web1["known_hosts"],
        home.join(".ssh/kh1").display().to_string().as_str()
    );
    assert_eq!(
        web1["extra_known_hosts"],
        serde_json::json!([
            home.join(".ssh/kh2").display().to_string(),
            "/etc/ssh/ssh_known_hosts",
            "/etc/ssh/ssh_known_hosts2"
        ])
    );
    assert_eq!(web1["jumps"][0]["address"], "192.0.2.7");
    assert_eq!(web1["jumps"][0]["user"], "ops");
    assert_eq!(web1["sources"]["jumps"], at(9).as_str());
    let web2 = &doc["hosts"][1];
    assert_eq!(web2["user"], "admin", "the inventory beats ssh_config");
    assert_eq!(web2["identity_file"], serde_json::Value::Null);
    assert!(
        warnings.contains(&format!(
            "IdentityFile {} does not exist: not used",
            home.join(".ssh/id_203.0.113.11").display()
        )),
        "{warnings}"
    );
    let mx1 = &doc["hosts"][2];
    assert_eq!(
        (mx1["address"].clone(), mx1["port"].clone()),
        ("mx1".into(), 22.into())
    );
    assert_eq!(mx1["sources"]["address"], "name");
    assert_eq!(mx1["jumps"], serde_json::json!([]));

    let out = rampart_env(&["inventory", "-i", s(&inv)], &home, &[]);
    let table = text(&out.stdout);
    assert!(
        table.contains("web1  203.0.113.10  2222  deploy"),
        "{table}"
    );
    assert!(table.contains("ops@192.0.2.7:22"), "{table}");
    assert!(
        table.contains(&format!("web1: address hosts.web1; port {}", at(7))),
        "{table}"
    );
}

#[test]
fn shards_partition_any_selection_exactly_once() {
    let mut y = String::from("hosts:\n");
    for i in 1..=12 {
        y.push_str(&format!("  web{i:02}:\n"));
    }
    y.push_str("groups:\n  low: ['web0*']\n");
    let inv = temp_file("inv.yml", &y);
    let home = temp_dir("home");
    for limit in [None, Some("low")] {
        let mut seen: Vec<String> = Vec::new();
        for k in 1..=3 {
            let shard = format!("{k}/3");
            let mut args = vec![
                "inventory",
                "-i",
                s(&inv),
                "--shard",
                &shard,
                "--format",
                "json",
            ];
            if let Some(l) = limit {
                args.extend(["--limit", l]);
            }
            let out = rampart_env(&args, &home, &[]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            for h in doc["hosts"].as_array().expect("hosts") {
                seen.push(h["name"].as_str().expect("name").to_string());
            }
        }
        seen.sort();
        let want: Vec<String> = (1..=if limit.is_some() { 9 } else { 12 })
            .map(|i| format!("web{i:02}"))
            .collect();
        assert_eq!(
            seen, want,
            "limit {limit:?}: each host in exactly one shard"
        );
    }
    // A shard with no host is not an error.
    let one = temp_file("inv.yml", "hosts:\n  lonely:\n");
    let outs: Vec<Output> = (1..=2)
        .map(|k| {
            let shard = format!("{k}/2");
            rampart_env(&["inventory", "-i", s(&one), "--shard", &shard], &home, &[])
        })
        .collect();
    assert!(outs.iter().all(|o| o.status.code() == Some(0)));
    let empty: Vec<&Output> = outs
        .iter()
        .filter(|o| text(&o.stderr).contains("holds none of the 1 selected host(s)"))
        .collect();
    assert_eq!(empty.len(), 1, "exactly one of the two shards is empty");
}

#[test]
fn report_merge_refuses_what_is_not_one_run() {
    let home = temp_dir("home");
    let bad = temp_file("a.json", "{\n  \"command\": \"audit\",\n  oops\n}\n");
    assert_input_error(
        &["report", "merge", s(&bad)],
        &bad,
        3,
        3,
        "not a rampart JSON report",
    );
    let doc = |shard: &str, host: &str| {
        format!(
            "{{\"command\": \"audit\", \"playbook\": \"pb.yml\", \"check\": true, \"started_at\": \"2026-01-01T00:00:00Z\", \
             \"duration_ms\": 5, \"shard\": {shard}, \"summary\": {{}}, \"hosts\": [{{\"name\": \"{host}\", \"address\": \"192.0.2.1\", \
             \"status\": \"drift\", \"os\": null, \"backend\": null, \"persisted\": [], \"diff\": null, \"error\": null, \
             \"step\": null, \"warnings\": [], \"plays\": [\"p\"], \"duration_ms\": 5}}]}}"
        )
    };
    let a = temp_file("a.json", &doc("{\"index\": 1, \"count\": 2}", "web1"));
    let b = temp_file("b.json", &doc("{\"index\": 2, \"count\": 2}", "web1"));
    let out = rampart_env(&["report", "merge", s(&a), s(&b)], &home, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("host web1 is also in"),
        "{}",
        text(&out.stderr)
    );
    let out = rampart_env(&["report", "merge", s(&a)], &home, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing shard report(s): 2/2"),
        "{}",
        text(&out.stderr)
    );
    let b = temp_file("b.json", &doc("{\"index\": 2, \"count\": 2}", "web2"));
    let junit = a.with_file_name("merged.xml");
    let out = rampart_env(
        &[
            "report",
            "merge",
            s(&b),
            s(&a),
            "--junit",
            s(&junit),
            "--format",
            "json",
        ],
        &home,
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "drift merges to drift: {}",
        text(&out.stderr)
    );
    let merged: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(merged["summary"]["hosts"], 2);
    assert_eq!(merged["summary"]["drift"], 2);
    assert_eq!(merged["hosts"][0]["name"], "web1", "sorted by name");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("tests=\"2\" failures=\"2\""), "{xml}");
}

#[test]
fn ansible_directory_with_vars_files_and_one_warning() {
    let dir = temp_dir("ansible");
    std::fs::create_dir_all(dir.join("group_vars/web")).expect("mkdir");
    std::fs::write(
        dir.join("10-hosts.ini"),
        "[web]\nweb1\nweb2 ansible_user=own\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("20-more.yml"),
        "all:\n  children:\n    db:\n      hosts:\n        db1:\n          ansible_python_interpreter: /usr/bin/python3\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("group_vars/all.yml"),
        "ansible_user: deploy\nansible_connection: ssh\nntp_server: pool.ntp.org\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("group_vars/web/vars.yml"),
        "ansible_port: 2222\nansible_ssh_common_args: -J gw.example.net\nansible_pipelining: true\n",
    )
    .expect("w");
    let home = temp_dir("home");
    let out = rampart_env(
        &["inventory", "-i", s(&dir), "--format", "json"],
        &home,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("does not use").count(),
        1,
        "one warning per run: {stderr}"
    );
    assert!(
        stderr.contains("ansible_pipelining (group_vars/web/vars.yml)")
            && stderr.contains("ansible_python_interpreter (20-more.yml: host db1)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ntp_server") && !stderr.contains("ansible_connection"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let by = |n: &str| {
        doc["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .find(|h| h["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n}"))
    };
    assert_eq!(by("web1")["user"], "deploy");
    assert_eq!(by("web1")["port"], 2222);
    assert_eq!(by("web1")["jumps"][0]["address"], "gw.example.net");
    assert_eq!(by("web2")["user"], "own");
    assert_eq!(by("db1")["port"], 22);

    std::fs::write(dir.join("group_vars/db.ini"), "ansible_user=x\n").expect("w");
    let out = rampart_env(&["inventory", "-i", s(&dir)], &home, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("group_vars/db.ini: unknown variables file format '.ini'"),
        "{}",
        text(&out.stderr)
    );
}

/// An ssh_config `ConnectTimeout` takes the place of `--connect-timeout` for
/// its host, so the dead-man switch must outlast it too: checked before any
/// host is contacted (the addresses are TEST-NET, never reached).
#[test]
fn ssh_config_connect_timeout_counts_for_the_confirm_timeout() {
    let inv = temp_file("inv.yml", INVENTORY);
    let pb = temp_file("pb.yml", PLAYBOOK);
    let cfg = temp_file("ssh_config", "Host web2\n  ConnectTimeout 20\n");
    let home = temp_dir("home");
    let out = rampart_env(
        &["apply", s(&pb), "-i", s(&inv), "--ssh-config", s(&cfg)],
        &home,
        &[("RAMPART_CONFIRM_TIMEOUT", "40")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "--confirm-timeout 40s is too short for host web2, whose ConnectTimeout is 20s (ssh_config): it must be at least 2 x connect timeout + 5s (45s)"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// `--ask-pass` never echoes: without a terminal to turn echo off on, it
/// refuses (before any host is contacted).
#[test]
fn ask_pass_without_a_terminal_refuses() {
    let inv = temp_file(
        "inv.yml",
        "defaults:\n  password_env: RAMPART_TEST_UNSET_PW\nhosts:\n  web1: {address: 192.0.2.10}\n",
    );
    let pb = temp_file("pb.yml", PLAYBOOK);
    let home = temp_dir("home");
    // setsid: no controlling terminal, so /dev/tty cannot be opened.
    let out = Command::new("setsid")
        .arg(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "audit",
            s(&pb),
            "-i",
            s(&inv),
            "--ask-pass",
            "--ssh-config",
            "none",
        ])
        .env("HOME", &home)
        .env_remove("RAMPART_TEST_UNSET_PW")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run setsid rampart");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("reading the password: no terminal to ask on"),
        "{}",
        text(&out.stderr)
    );
}
