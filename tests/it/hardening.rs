//! The safety net holds when the host (or a file) misbehaves: host keys
//! revoked anywhere, hosts only a CA vouches for, the global known_hosts,
//! persist paths that name system files, control characters in what a
//! host prints, and the controller's own file-descriptor limit.
//!
//! Assertions about a host are made from inside it (`exec_in`, its sshd
//! log), never from rampart's report alone.

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart::remote::ConnectError;

use crate::support::{
    accepted_logins, code, host_report, inventory_with, is_kernel_default, live, playbook, report,
    run, same_rules, sh_in, show, state_dir, statuses, stdout, Lab, Scratch,
};

/// The lab's known_hosts line of `host` (`ADDRESS TYPE KEY`).
fn key_line(lab: &Lab, host: &str) -> String {
    let addr = lab.host(host).address.to_string();
    fs::read_to_string(lab.known_hosts())
        .expect("the lab's known_hosts")
        .lines()
        .find(|l| l.split_whitespace().next() == Some(addr.as_str()))
        .unwrap_or_else(|| panic!("no known_hosts line for {host} ({addr})"))
        .to_string()
}

/// `TYPE KEY` of a known_hosts line.
fn key_of(line: &str) -> String {
    line.split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A host rampart refused to trust: failed (not unreachable), nothing ran
/// there, no session was even authenticated.
fn assert_untouched(lab: &Lab, host: &str, logins_before: usize) {
    assert_eq!(
        accepted_logins(lab, host),
        logins_before,
        "{host}: a session was authenticated"
    );
    assert!(is_kernel_default(&live(lab, host, "iptables")), "{host}");
    assert!(is_kernel_default(&live(lab, host, "ip6tables")), "{host}");
    assert_eq!(state_dir(lab, host), None, "{host}: a command ran");
}

/// Guarantee 6: `@revoked` wins whatever the line order and whichever file
/// (the user's or the global one) holds it, and a host that only a
/// `@cert-authority` line covers is never trusted on first use. Each fails
/// before any command runs, `--accept-new-host-keys` or not, and no
/// known_hosts file changes.
#[test]
fn revoked_anywhere_and_cert_authority_only_fail_before_any_command() {
    let lab = Lab::up(3);
    let scratch = Scratch::new(&lab);
    let (l1, l2, l3) = (
        key_line(&lab, "h001"),
        key_line(&lab, "h002"),
        key_line(&lab, "h003"),
    );
    let a1 = lab.host("h001").address;
    let a2 = lab.host("h002").address;
    let a3 = lab.host("h003").address;
    // h001: its plain line, then (AFTER it) the same key revoked.
    let kh1 = scratch.write("kh1", &format!("{l1}\n@revoked {a1} {}\n", key_of(&l1)));
    // h002: only a CA covers it (the key is some CA's, not the host's).
    let kh2 = scratch.write(
        "kh2",
        &format!(
            "@cert-authority 198.18.*,*.lab ssh-ed25519 {}\n",
            key_of(&l1).split(' ').nth(1).unwrap_or("")
        ),
    );
    // h003: known in the user file, revoked in the global one.
    let kh3 = scratch.write("kh3", &format!("{l3}\n"));
    let global = scratch.write("global", &format!("@revoked * {}\n", key_of(&l3)));
    let config = scratch.write(
        "ssh_config",
        &format!("Host *\n  GlobalKnownHostsFile {}\n", global.display()),
    );
    let inv = inventory_with(
        &lab,
        &scratch,
        &format!(
            "  h001: {{address: {a1}, known_hosts: {kh1:?}}}\n  h002: {{address: {a2}, known_hosts: {kh2:?}}}\n  h003: {{address: {a3}, known_hosts: {kh3:?}}}\n"
        ),
    );
    let before: Vec<(String, usize)> = ["h001", "h002", "h003"]
        .iter()
        .map(|h| (h.to_string(), accepted_logins(&lab, h)))
        .collect();
    let files_before: Vec<String> = [&kh1, &kh2, &kh3, &global]
        .iter()
        .map(|p| fs::read_to_string(p).expect("read"))
        .collect();
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &inv,
        &[
            "--format",
            "json",
            "--accept-new-host-keys",
            "--ssh-config",
            &config.to_string_lossy(),
        ],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    for (h, want) in [
        ("h001", "revoked"),
        ("h002", "only a @cert-authority line"),
        ("h003", "revoked"),
    ] {
        let r = host_report(&v, h);
        assert_eq!(r["status"], "failed", "{r:#}");
        assert_eq!(r["step"], "connect", "{r:#}");
        let err = r["error"].as_str().unwrap_or_default().to_lowercase();
        assert!(err.contains(want), "{h}: {err}");
    }
    for (h, logins) in &before {
        assert_untouched(&lab, h, *logins);
    }
    let files_after: Vec<String> = [&kh1, &kh2, &kh3, &global]
        .iter()
        .map(|p| fs::read_to_string(p).expect("read"))
        .collect();
    assert_eq!(files_after, files_before, "a known_hosts file changed");
    assert!(
        !files_after[1].contains(&key_of(&l2)),
        "h002's key was trusted on first use"
    );
}

/// The global known_hosts is consulted after the user's file, read-only: a
/// key listed there alone is known (nothing recorded), and a key trusted
/// on first use is recorded in the user file, never in the global one.
#[test]
fn global_known_hosts_is_read_and_never_written() {
    let lab = Lab::up(2);
    let scratch = Scratch::new(&lab);
    let (l1, l2) = (key_line(&lab, "h001"), key_line(&lab, "h002"));
    let a1 = lab.host("h001").address;
    let a2 = lab.host("h002").address;
    let global_text = format!("# the machine's\n{l1}\n");
    let global = scratch.write("global", &global_text);
    let config = scratch.write(
        "ssh_config",
        &format!("GlobalKnownHostsFile {}\n", global.display()),
    );
    let kh1 = scratch.write("kh1", "");
    let kh2 = scratch.write("kh2", "");
    let inv = inventory_with(
        &lab,
        &scratch,
        &format!(
            "  h001: {{address: {a1}, known_hosts: {kh1:?}}}\n  h002: {{address: {a2}, known_hosts: {kh2:?}}}\n"
        ),
    );
    let cfg = config.to_string_lossy().into_owned();
    // Without trust on first use: h001 is known through the global file,
    // h002 is unknown.
    let out = run(
        "audit",
        &playbook("baseline.yml"),
        &inv,
        &["--format", "json", "--ssh-config", &cfg],
    );
    let v = report(&out);
    assert_eq!(host_report(&v, "h001")["status"], "drift", "{v:#}");
    assert_eq!(host_report(&v, "h002")["status"], "failed", "{v:#}");
    // With it: h002's key goes to its user file only.
    let out = run(
        "apply",
        &playbook("baseline.yml"),
        &inv,
        &[
            "--format",
            "json",
            "--ssh-config",
            &cfg,
            "--accept-new-host-keys",
        ],
    );
    let v = report(&out);
    assert_eq!(
        statuses(&v).values().collect::<Vec<_>>(),
        ["changed", "changed"],
        "{}",
        show(&out)
    );
    assert_eq!(fs::read_to_string(&kh1).expect("kh1"), "", "h001 was known");
    let recorded = fs::read_to_string(&kh2).expect("kh2");
    assert!(recorded.contains(&key_of(&l2)), "{recorded}");
    assert_eq!(
        fs::read_to_string(&global).expect("global"),
        global_text,
        "the global file was written"
    );
}

/// An audit reads nothing it should not, an apply overwrites no system
/// file: a `persist` path that names one, is relative, or climbs with `..`
/// is refused when the playbook loads (exit 1, file:line:column), before
/// any host is contacted; a plain path under /etc/ is accepted.
#[test]
fn persist_paths_to_system_files_are_refused_before_any_host() {
    let lab = Lab::up(1);
    let scratch = Scratch::new(&lab);
    let logins = accepted_logins(&lab, "h001");
    let cases = [
        ("/etc/shadow", "system file rampart must never overwrite"),
        ("/etc/ssh/sshd_config", "system file"),
        ("/var/lib/rampart/backup.v4", "system file"),
        ("etc/iptables/rules.v4", "absolute"),
        ("/etc/iptables/../shadow", "'..'"),
        ("/tmp/rules.v4", "outside /etc/ and /var/lib/"),
    ];
    for (i, (path, why)) in cases.iter().enumerate() {
        let book = scratch.write(
            &format!("persist{i}.yml"),
            &format!("- hosts: all\n  firewall:\n    allow: [ssh]\n    persist: {{ipv4: {path}, ipv6: /etc/rp6}}\n"),
        );
        let out = run("audit", &book.to_string_lossy(), &lab.inventory(), &[]);
        assert_eq!(code(&out), 1, "{path}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let at = format!("{}:4:21: ", book.display());
        assert!(err.contains(&at), "{path}: no {at} in {err}");
        assert!(err.contains(why), "{path}: {err}");
        assert!(stdout(&out).is_empty(), "{path}: {}", show(&out));
    }
    assert_eq!(
        accepted_logins(&lab, "h001"),
        logins,
        "a host was contacted"
    );
    // A plain file under /etc/ is fine: the audit runs (drift: no rules yet).
    let book = scratch.write(
        "fine.yml",
        "- hosts: all\n  firewall:\n    allow: [ssh]\n    persist: {ipv4: /etc/fw/rules.v4, ipv6: /etc/fw/rules.v6}\n",
    );
    let out = run(
        "audit",
        &book.to_string_lossy(),
        &lab.inventory(),
        &["--format", "json"],
    );
    assert_eq!(code(&out), 2, "{}", show(&out));
}

/// No raw control character a host printed (an ESC in a rule comment, in
/// its os-release ID, hence in an error message) or a file holds (an
/// inventory address) reaches the terminal: the human report and the
/// progress lines show `\x1b`; JSON escapes it; JUnit replaces it.
#[test]
fn control_characters_from_hosts_never_reach_the_terminal() {
    let lab = Lab::up(2);
    let scratch = Scratch::new(&lab);
    // h001: a live rule whose comment clears the screen and turns red.
    sh_in(
        &lab,
        "h001",
        "iptables -A INPUT -p tcp --dport 8080 -m comment --comment \"$(printf 'x\\033[2J\\033[31my\\r\\302\\233z')\" -j ACCEPT",
    );
    // h002: an os-release whose ID hides escapes (and no ID_LIKE): the OS
    // is not known, and the error names the ID.
    sh_in(
        &lab,
        "h002",
        "rm -f /etc/os-release; printf 'ID=\"evil\\033]0;pwned\\007\\033[2J\"\\n' > /etc/os-release",
    );
    let junit = scratch.path().join("audit.xml");
    let out = run(
        "audit",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--diff", "--junit", &junit.to_string_lossy()],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
    let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    let text = String::from_utf8_lossy(&all);
    assert!(
        !all.iter().any(|&b| b == 0x1b || b == b'\r' || b == 0x07),
        "a raw control character reached the terminal:\n{text:?}"
    );
    assert!(
        !text.contains('\u{9b}'),
        "a raw C1 control reached the terminal:\n{text:?}"
    );
    let human = stdout(&out);
    assert!(
        human.contains("--comment \"x\\x1b[2J\\x1b[31my\\x0d\\u{9b}z\""),
        "the comment is not shown escaped:\n{human}"
    );
    assert!(
        human.contains("ID=evil\\x1b]0;pwned\\x07\\x1b[2j"),
        "the error is not shown escaped:\n{human}"
    );
    // JUnit: well-formed XML 1.0 (no C0 control but tab and newline), the
    // escape kept visible.
    let xml = fs::read_to_string(&junit).expect("junit file");
    assert!(
        !xml.chars()
            .any(|c| ((c as u32) < 0x20 && c != '\n' && c != '\t')
                || ('\u{7f}'..='\u{9f}').contains(&c)),
        "{xml:?}"
    );
    assert!(xml.contains("\\x1b[2J"), "{xml}");
    // JSON: escaped by the encoder, the exact text when decoded.
    let out = run(
        "audit",
        &playbook("baseline.yml"),
        &lab.inventory(),
        &["--format", "json", "--diff"],
    );
    assert!(!out.stdout.contains(&0x1b), "{}", show(&out));
    assert!(!stdout(&out).contains('\u{9b}'), "{}", show(&out));
    let v = report(&out);
    let diff = host_report(&v, "h001")["diff"].as_str().unwrap_or_default();
    assert!(
        diff.contains("x\u{1b}[2J\u{1b}[31my\r\u{9b}z"),
        "{diff:?} in {v:#}"
    );
    // A control character in an input file: the error quoting it is inert.
    let inv = inventory_with(
        &lab,
        &scratch,
        "  ghost: {address: \"203.0.113.9\\e[2J\"}\n",
    );
    let out = run("audit", &playbook("baseline.yml"), &inv, &[]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(!out.stderr.contains(&0x1b), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("203.0.113.9\\x1b[2J"),
        "{}",
        show(&out)
    );
}

/// `ConnectError::is_local`: only failures of this machine (out of file
/// descriptors, buffers or memory, no local address or route) are local;
/// the host refusing or not answering never is.
#[test]
fn local_connect_failures_are_told_apart() {
    let tcp = |errno: i32| ConnectError::Tcp {
        addr: "198.18.0.2:22".into(),
        source: std::io::Error::from_raw_os_error(errno),
    };
    for local in [
        libc::EMFILE,
        libc::ENFILE,
        libc::ENOBUFS,
        libc::ENOMEM,
        libc::EADDRNOTAVAIL,
        libc::ENETUNREACH,
    ] {
        assert!(tcp(local).is_local(), "errno {local}");
    }
    for remote in [
        libc::ECONNREFUSED,
        libc::ETIMEDOUT,
        libc::EHOSTUNREACH,
        libc::ECONNRESET,
    ] {
        assert!(!tcp(remote).is_local(), "errno {remote}");
    }
    assert!(!ConnectError::Handshake("x".into()).is_local());
    let timed_out = ConnectError::Tcp {
        addr: "198.18.0.2:22".into(),
        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
    };
    assert!(!timed_out.is_local());
}

/// "Max open files" of a running process: (soft, hard).
fn nofile_of(pid: u32) -> Option<(String, String)> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Some((f.get(3)?.to_string(), f.get(4)?.to_string()))
}

/// rampart raises its soft RLIMIT_NOFILE to the hard limit at start: run
/// with 64 soft / 4096 hard (prlimit execs it, same pid), it shows 4096 /
/// 4096 in /proc while it works. The "host" is a loopback listener that
/// never answers, so the run is still connecting when it is looked at.
#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    let dir = std::env::temp_dir().join(format!("rampart-nofile-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("mkdir");
    let inv = dir.join("inventory.yml");
    fs::write(
        &inv,
        format!(
            "defaults: {{known_hosts: {:?}}}\nhosts:\n  silent: {{address: 127.0.0.1, port: {port}}}\n",
            dir.join("known_hosts").display()
        ),
    )
    .expect("write inventory");
    let mut child = Command::new("prlimit")
        .arg("--nofile=64:4096")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_rampart"))
        .args(["audit", &playbook("baseline.yml"), "-i"])
        .arg(&inv)
        .args(["--ssh-config", "none", "--connect-timeout", "30"])
        .args(["--confirm-timeout", "65", "--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run prlimit");
    let pid = child.id();
    // rampart is connecting once the listener has a connection to accept.
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut held = None;
    while held.is_none() && Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => held = Some(s),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("rampart ended before connecting: {status}: {err}");
        }
    }
    let limits = nofile_of(pid);
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_dir_all(&dir);
    assert!(held.is_some(), "rampart never connected");
    assert_eq!(
        limits,
        Some(("4096".to_string(), "4096".to_string())),
        "soft RLIMIT_NOFILE of the running rampart"
    );
}

/// Local trouble is not a lockout: rampart run with hard RLIMIT_NOFILE
/// limits from too few to enough (`prlimit N:N`, which it cannot raise).
/// Somewhere in that range connection A fits and the confirming
/// connection B does not: the host must then be rolled back over A (its
/// rules exactly as before), the error must name the local cause, and at
/// no limit may a host be left with unconfirmed rules, a switch still
/// armed, or unreachable over SSH. Every run must change something (two
/// playbooks, alternately), so that each one reaches the confirmation.
#[test]
fn an_fd_shortage_on_this_machine_never_locks_a_host_out() {
    let lab = Lab::up(1);
    let scratch = Scratch::new(&lab);
    let books = [
        scratch.write("a.yml", "- hosts: all\n  firewall:\n    allow: [ssh]\n"),
        scratch.write(
            "b.yml",
            "- hosts: all\n  firewall:\n    allow: [ssh, http]\n",
        ),
    ];
    let inv = lab.inventory();
    let mut seen = Vec::new();
    for (i, n) in (8..=18).enumerate() {
        let book = &books[i % 2];
        let before = live(&lab, "h001", "iptables");
        let out = crate::support::run_bounded(
            Command::new("prlimit")
                .arg(format!("--nofile={n}:{n}"))
                .arg("--")
                .arg(env!("CARGO_BIN_EXE_rampart"))
                .args([
                    "apply",
                    &book.to_string_lossy(),
                    "-i",
                    &inv.to_string_lossy(),
                ])
                .args(["--format", "json", "--connect-timeout", "2"])
                .args(["--confirm-timeout", "10", "--ssh-config", "none"]),
            crate::support::RAMPART_TIMEOUT,
        );
        let after = live(&lab, "h001", "iptables");
        let outcome = if code(&out) == 1 {
            // Too few to start at all: nothing was contacted.
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(err.contains("Too many open files"), "{n}: {}", show(&out));
            assert!(same_rules(&after, &before), "{n}");
            "no start".to_string()
        } else {
            let v = report(&out);
            let r = host_report(&v, "h001");
            let status = r["status"].as_str().unwrap_or_default().to_string();
            let error = r["error"].as_str().unwrap_or_default().to_string();
            match status.as_str() {
                "changed" => assert!(
                    !same_rules(&after, &before),
                    "{n}: changed, yet the same rules"
                ),
                "rolled_back" => {
                    assert_eq!(r["step"], "confirm", "{n}: {r:#}");
                    assert!(
                        same_rules(&after, &before),
                        "{n}: not restored exactly: {after} {r:#}"
                    );
                    assert!(
                        error.contains("Too many open files") && error.contains("local"),
                        "{n}: the local cause is not named: {r:#}"
                    );
                }
                "failed" | "unreachable" => {
                    assert_eq!(r["step"], "connect", "{n}: {r:#}");
                    assert!(same_rules(&after, &before), "{n}: {after} {r:#}");
                }
                other => panic!("{n}: unexpected status {other}: {r:#}"),
            }
            format!("{status}: {error}")
        };
        // Never left behind: a switch still armed, a lockout.
        assert_eq!(
            crate::support::settle_processes(&lab, "h001", Duration::from_secs(15)),
            Vec::<String>::new(),
            "{n}: {outcome}"
        );
        let ssh = lab.ssh("h001", "true");
        assert!(ssh.status.success(), "{n}: {outcome}: {}", show(&ssh));
        seen.push((n, outcome));
    }
    eprintln!("fd limits and outcomes: {seen:#?}");
    assert!(
        seen.iter().any(|(_, o)| o.starts_with("rolled_back")),
        "no limit let A connect and B fail: the scenario was not exercised: {seen:#?}"
    );
    assert!(
        seen.iter().any(|(_, o)| o.starts_with("changed")),
        "{seen:#?}"
    );
}
