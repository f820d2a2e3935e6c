//! The remote scripts (src/remote/scripts/*.sh), run directly under the
//! three shells rampart meets on hosts: dash (Debian's sh), bash --posix
//! (RHEL's sh) and busybox sh (Alpine-like hosts; its PATH holds busybox
//! applets only, so there is no `flock`). iptables is a stub with a small
//! "kernel" of its own (tests/scripts/xtables-stub.sh) that can fail on
//! demand: a held xtables lock, a rejected ruleset, a failing restore.
//! Each test covers a success or one failure branch, on every shell.
//!
//! These need no root and no network; what the scripts do to a real
//! kernel is the lab tests' part.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rampart::remote::facts::Facts;
use rampart::remote::script::{self, Kind, Script};
use rampart::remote::shell::Sections;

use crate::support::run_bounded;

const NONCE: &str = "T35T";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sh {
    Dash,
    BashPosix,
    Busybox,
}

const SHELLS: [Sh; 3] = [Sh::Dash, Sh::BashPosix, Sh::Busybox];

impl Sh {
    fn argv(self) -> &'static [&'static str] {
        match self {
            Sh::Dash => &["dash"],
            Sh::BashPosix => &["bash", "--posix"],
            Sh::Busybox => &["busybox", "sh"],
        }
    }
}

/// A scratch host: a state dir, a stub kernel, a PATH.
struct Bench {
    sh: Sh,
    root: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

const BEFORE: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A INPUT -s 192.0.2.9/32 -j ACCEPT\n-A f2b-sshd -s 203.0.113.5/32 -j REJECT\n-A f2b-sshd -j RETURN\nCOMMIT\n";

/// The managed part of the desired rules (what the engine sends).
const DESIRED: &str = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:MINE - [0:0]\n-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -j MINE\n-A MINE -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";

/// What the stub kernel holds once DESIRED is applied over BEFORE.
const AFTER: &str = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:MINE - [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -j MINE\n-A MINE -p tcp -m tcp --dport 22 -j ACCEPT\n-A f2b-sshd -s 203.0.113.5/32 -j REJECT\n-A f2b-sshd -j RETURN\nCOMMIT\n";

struct Ran {
    sections: Sections,
    text: String,
}

impl Ran {
    /// Assert that section `name` holds `want` (trimmed), showing the whole
    /// output of the step otherwise.
    fn expect(&self, sh: Sh, name: &str, want: &str) {
        assert_eq!(
            self.sections.text(name).trim(),
            want,
            "{sh:?}: {}",
            self.text
        );
    }
}

impl Bench {
    fn new(sh: Sh) -> Bench {
        let root = std::env::temp_dir().join(format!(
            "rampart-scripts-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        for d in ["bin", "kernel", "state", "etc", "systemd"] {
            fs::create_dir_all(root.join(d)).expect("scratch dirs");
        }
        let stub = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/xtables-stub.sh");
        for name in [
            "iptables",
            "iptables-save",
            "iptables-restore",
            "ip6tables",
            "ip6tables-save",
            "ip6tables-restore",
        ] {
            symlink(&stub, root.join("bin").join(name)).expect("stub link");
        }
        if sh == Sh::Busybox {
            // A busybox host: every tool an applet, and no flock at all.
            fs::create_dir_all(root.join("busybox")).expect("applet dir");
            let list = Command::new("busybox")
                .arg("--list")
                .output()
                .expect("busybox --list");
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                let _ = symlink("/usr/bin/busybox", root.join("busybox").join(applet));
            }
            assert!(
                !root.join("busybox/flock").exists(),
                "this busybox has flock: the test means to run without one"
            );
        }
        let b = Bench { sh, root };
        b.set_kernel("v4", BEFORE);
        b
    }

    fn path(&self) -> String {
        let bin = self.root.join("bin").display().to_string();
        match self.sh {
            Sh::Busybox => format!("{bin}:{}", self.root.join("busybox").display()),
            _ => format!("{bin}:/usr/sbin:/usr/bin:/sbin:/bin"),
        }
    }

    fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    fn kernel(&self, f: &str) -> PathBuf {
        self.root.join("kernel").join(f)
    }

    fn set_kernel(&self, fam: &str, rules: &str) {
        fs::write(self.kernel(&format!("{fam}.rules")), rules).expect("kernel rules");
    }

    fn rules(&self, fam: &str) -> String {
        fs::read_to_string(self.kernel(&format!("{fam}.rules"))).unwrap_or_default()
    }

    fn fault(&self, name: &str, value: &str) {
        fs::write(self.kernel(name), value).expect("fault file");
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.kernel("calls")).unwrap_or_default()
    }

    /// A script with this bench's state dir.
    fn script(&self, kind: Kind) -> Script {
        Script::new(kind).set("rp_state", self.state().display().to_string())
    }

    fn lib(&self) -> Script {
        script::lib_vars(NONCE)
            .set("rp_path", self.path())
            .set("rp_state", self.state().display().to_string())
            .set(
                "rp_systemd",
                self.root.join("no-systemd").display().to_string(),
            )
    }

    /// Run one step the way a connection's shell does: the preamble, the
    /// step, the end marker.
    fn run(&self, step: &Script) -> Ran {
        let text = format!(
            "{}{}printf '\\n@@rampart:%s:@end %s\\n' \"$rp_nonce\" \"$?\"\n",
            script::preamble_with(&self.lib()),
            step.render()
        );
        let argv = self.sh.argv();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .args(["-s", "198.18.0.1 40000 198.18.0.2 22"])
            .env("RP_STUB", self.root.join("kernel"))
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the shell");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("send the step");
        drop(stdin);
        let out = wait_bounded(child, Duration::from_secs(60));
        let all = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            all.contains(&format!("@@rampart:{NONCE}:@end ")),
            "{:?}: the step did not end:\n{all}\n{}",
            self.sh,
            String::from_utf8_lossy(&out.stderr)
        );
        Ran {
            sections: Sections::parse(&all, NONCE),
            text: all,
        }
    }

    fn apply(&self, secs: u32) -> Script {
        let switch = self
            .script(Kind::Switch)
            .set("rp_token", "tok")
            .set("rp_secs", secs.to_string())
            .set("rp_families", "v4")
            .set("rp_attempts", "3")
            .set("rp_preserve", "f2b-*\n")
            .standalone(&self.lib().set("rp_nonce", "switch"));
        self.script(Kind::Apply)
            .set("rp_token", "tok")
            .set("rp_secs", secs.to_string())
            .set("rp_families", "v4")
            .set("rp_switch", switch)
            .set("rp_desired_v4", DESIRED)
            .set("rp_desired_v6", "")
            .set("rp_preserve", "f2b-*\n")
            .set("rp_keep", "")
    }

    fn commit(&self, token: &str, path: &Path) -> Script {
        self.script(Kind::Commit)
            .set("rp_token", token)
            .set("rp_families", "v4")
            .set("rp_path_v4", path.display().to_string())
            .set("rp_path_v6", "")
            .set("rp_text_v4", AFTER.trim_end())
            .set("rp_text_v6", "")
    }

    fn restore(&self) -> Script {
        self.script(Kind::Restore)
            .set("rp_token", "tok")
            .set("rp_families", "v4")
            .set("rp_preserve", "f2b-*\n")
            .set("rp_keep", "")
    }

    /// The switch's pid, if one runs: the process switch.pid names, with
    /// the start time it names (not a later process with the same pid).
    fn switch_pid(&self) -> Option<u32> {
        let rec = fs::read_to_string(self.state().join("switch.pid")).ok()?;
        let mut f = rec.split_whitespace();
        let pid: u32 = f.next()?.parse().ok()?;
        let start = f.next()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
        (fields.get(19) == Some(&start)).then_some(pid)
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "{:?}: timed out waiting for {what}",
                self.sh
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn state_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.state())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        // A switch a test left armed: end its process group (it leads one).
        // Always `kill -s TERM -- -PGID`: procps's kill reads
        // `kill -TERM -PGID` as kill(-1), every process (this test learnt).
        if let Some(pid) = self.switch_pid().filter(|p| *p > 1) {
            let _ = Command::new("/bin/kill")
                .args(["-s", "TERM", "--", &format!("-{pid}")])
                .status();
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn wait_bounded(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "the shell did not end in {timeout:?}: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn each_shell(test: impl Fn(&Bench) + Sync) {
    thread::scope(|s| {
        let handles: Vec<_> = SHELLS
            .iter()
            .map(|sh| {
                let test = &test;
                s.spawn(move || test(&Bench::new(*sh)))
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
}

#[test]
fn the_stub_kernel_and_every_shell_are_there() {
    for sh in SHELLS {
        let argv = sh.argv();
        let out = run_bounded(
            Command::new(argv[0])
                .args(&argv[1..])
                .args(["-c", "echo ok"]),
            Duration::from_secs(10),
        );
        assert!(
            out.status.success(),
            "{sh:?} is not installed (CI installs dash, bash and busybox)"
        );
    }
}

#[test]
fn facts_read_regular_files_and_never_follow_a_symlink() {
    each_shell(|b| {
        let rules = b.root.join("etc/rules.v4");
        fs::write(&rules, "*filter\nCOMMIT\n").expect("rules file");
        let secret = b.root.join("etc/shadow");
        fs::write(&secret, "root:$6$secret-hash:1:::\n").expect("secret");
        let link = b.root.join("etc/rules.v6");
        symlink(&secret, &link).expect("symlink");
        let missing = b.root.join("etc/none");
        let step = b.script(Kind::Facts).set(
            "rp_files",
            script::lines([&rules, &link, &missing].map(|p| p.display().to_string())),
        );
        let r = b.run(&step);
        let s = &r.sections;
        assert_eq!(
            s.text(&format!("file:{}", rules.display())),
            "present\n*filter\nCOMMIT\n",
            "{:?}",
            b.sh
        );
        assert_eq!(
            s.text(&format!("file:{}", link.display())).trim(),
            "symlink",
            "{:?}",
            b.sh
        );
        assert_eq!(
            s.text(&format!("file:{}", missing.display())).trim(),
            "absent",
            "{:?}",
            b.sh
        );
        assert!(
            !r.text.contains("secret-hash"),
            "{:?}: read through the symlink",
            b.sh
        );
        assert_eq!(
            s.text("ssh_connection").trim(),
            "198.18.0.1 40000 198.18.0.2 22"
        );
        assert!(
            s.text("save4").contains("-A f2b-sshd -j RETURN")
                && s.text("save4").ends_with("@@rc=0\n"),
            "{:?}: {}",
            b.sh,
            s.text("save4")
        );
        let has: Vec<&str> = s.text("has").lines().collect();
        assert_eq!(
            has.contains(&"flock"),
            b.sh != Sh::Busybox,
            "{:?}: {has:?}",
            b.sh
        );
    });
}

#[test]
fn facts_take_the_backend_from_the_save_header_and_ask_iptables_only_when_it_is_silent() {
    each_shell(|b| {
        let facts = |b: &Bench| {
            let _ = fs::remove_file(b.kernel("calls"));
            let r = b.run(&b.script(Kind::Facts).set("rp_files", ""));
            (Facts::parse(&r.sections), b.calls())
        };
        let asked = |calls: &str| calls.lines().any(|l| l == "iptables -V");
        // 1.8.9 and later (nf_tables) name the backend: no `iptables -V`.
        fs::write(
            b.kernel("header"),
            "# Generated by iptables-save v1.8.9 (nf_tables) on Fri Dec  4 21:30:58 2026\n",
        )
        .expect("header");
        let (f, calls) = facts(b);
        assert_eq!(f.backend, "nf_tables", "{:?}", b.sh);
        assert!(!asked(&calls), "{:?}: asked anyway: {calls}", b.sh);
        // 1.8.7 does not: iptables -V answers (the stub is legacy).
        fs::write(
            b.kernel("header"),
            "# Generated by iptables-save v1.8.7 on Fri Dec  4 21:30:58 2026\n",
        )
        .expect("header");
        let (f, calls) = facts(b);
        assert!(asked(&calls), "{:?}: {calls}", b.sh);
        assert_eq!(f.backend, "legacy", "{:?}", b.sh);
        // A rule's comment that looks like the header is not one.
        fs::remove_file(b.kernel("header")).expect("header");
        b.set_kernel(
            "v4",
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"# Generated by iptables-save v1.8.9 (nf_tables) on x\" -j ACCEPT\nCOMMIT\n",
        );
        let (f, calls) = facts(b);
        assert!(asked(&calls), "{:?}: {calls}", b.sh);
        assert_eq!(f.backend, "legacy", "{:?}", b.sh);
    });
}

#[test]
fn apply_then_commit_converges_keeps_preserved_chains_and_leaves_only_backups() {
    each_shell(|b| {
        let r = b.run(&b.apply(300));
        let s = &r.sections;
        assert_eq!(s.text("result").trim(), "applied", "{:?}: {}", b.sh, r.text);
        assert_eq!(s.text("armed").trim(), "setsid", "{:?}", b.sh);
        assert_eq!(
            b.rules("v4"),
            AFTER,
            "{:?}: fail2ban's chain and jump kept, the rest replaced",
            b.sh
        );
        assert!(
            s.text("backupv4")
                .contains("-A INPUT -s 192.0.2.9/32 -j ACCEPT"),
            "{:?}",
            b.sh
        );
        let pid = b.switch_pid().expect("the switch runs");
        let persisted = b.root.join("etc/iptables/rules.v4");
        let c = b.run(&b.commit("tok", &persisted));
        c.expect(b.sh, "disarm", "disarmed");
        c.expect(b.sh, "persistv4", "ok");
        assert_eq!(
            fs::read_to_string(&persisted).expect("persisted"),
            AFTER,
            "{:?}",
            b.sh
        );
        let mode = fs::metadata(&persisted).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", b.sh);
        b.wait_for("the switch to end", || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        let files: Vec<String> = b.state_files().into_iter().collect();
        // No lock left either: a busybox host has no flock, and its lock
        // directory must go with the step that took it.
        assert_eq!(files, ["backup.v4"], "{:?}: only the backup stays", b.sh);
    });
}

#[test]
fn a_ruleset_the_test_rejects_changes_nothing_and_arms_nothing() {
    each_shell(|b| {
        b.fault("fail.iptables-restore.test", "always");
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "test_failed");
        assert!(
            r.sections.text("detail").contains("line 2 failed"),
            "{:?}",
            b.sh
        );
        assert_eq!(b.rules("v4"), BEFORE);
        assert_eq!(b.switch_pid(), None);
        assert!(
            !b.state().join("backup.v4").exists(),
            "{:?}: no backup either",
            b.sh
        );
    });
}

#[test]
fn a_backup_that_cannot_be_written_applies_nothing() {
    each_shell(|b| {
        // The backup's place is taken (it is written in place, never
        // through a link, and a directory is not removed): the write fails
        // as on a full disk.
        fs::create_dir_all(b.state().join("backup.v4")).expect("obstacle");
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "backup_failed");
        assert!(
            r.sections.text("detail").contains("nothing applied"),
            "{:?}",
            b.sh
        );
        assert_eq!(b.rules("v4"), BEFORE);
        assert_eq!(b.switch_pid(), None);
    });
}

#[test]
fn an_apply_failure_is_undone_and_disarmed_only_when_the_undo_is_proven() {
    each_shell(|b| {
        // The apply's own restore fails once; the undo works.
        b.fault("fail.iptables-restore", "1");
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "apply_failed");
        assert!(
            r.sections
                .text("detail")
                .contains("previous rules restored"),
            "{:?}: {}",
            b.sh,
            r.text
        );
        assert_eq!(b.rules("v4"), BEFORE, "{:?}", b.sh);
        assert_eq!(b.switch_pid(), None, "{:?}: proven, so disarmed", b.sh);
    });
    each_shell(|b| {
        // Every restore fails: the undo cannot be proven, the switch stays.
        b.fault("fail.iptables-restore", "always");
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "apply_failed");
        assert!(
            r.sections.text("detail").contains("stays armed"),
            "{:?}: {}",
            b.sh,
            r.text
        );
        assert!(
            b.switch_pid().is_some(),
            "{:?}: the switch must stay armed",
            b.sh
        );
    });
}

#[test]
fn a_held_xtables_lock_delays_the_work_and_never_breaks_it() {
    each_shell(|b| {
        // iptables 1.8.7 legacy without -w: fails at once while the lock is held.
        b.fault("lock.iptables-restore", "2");
        let t = Instant::now();
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "applied");
        assert!(
            t.elapsed() >= Duration::from_secs(2),
            "{:?}: retried once a second",
            b.sh
        );
        assert!(
            !b.calls().contains("-w"),
            "{:?}: no -w where the tool has none:\n{}",
            b.sh,
            b.calls()
        );
    });
    each_shell(|b| {
        // A tool that takes -w gets it, for every call that can take the lock.
        b.fault("wait", "");
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "applied");
        let calls = b.calls();
        for l in calls.lines().filter(|l| {
            l.starts_with("iptables-restore") && !l.contains("--help") && !l.contains("-V")
        }) {
            assert!(l.contains("-w 10"), "{:?}: {l}", b.sh);
        }
        assert!(
            !calls
                .lines()
                .any(|l| l.starts_with("iptables-save") && l.contains("-w")),
            "{:?}: -save takes no -w",
            b.sh
        );
    });
}

#[test]
fn the_switch_restores_retries_and_records_what_it_did() {
    each_shell(|b| {
        let r = b.run(&b.apply(1));
        r.expect(b.sh, "result", "applied");
        // Its first two restores fail (a lock, a busy kernel): it retries.
        b.fault("fail.iptables-restore", "2");
        let rec = b.state().join("switch.state");
        b.wait_for("the switch's record", || {
            fs::read_to_string(&rec)
                .is_ok_and(|s| s.trim() == "restored" || s.trim() == "restore_failed")
        });
        assert_eq!(
            fs::read_to_string(&rec).unwrap_or_default().trim(),
            "restored",
            "{:?}",
            b.sh
        );
        assert_eq!(b.rules("v4"), BEFORE, "{:?}", b.sh);
        b.wait_for("the switch to end", || b.switch_pid().is_none());
    });
    each_shell(|b| {
        let r = b.run(&b.apply(1));
        r.expect(b.sh, "result", "applied");
        b.fault("fail.iptables-restore", "always");
        let rec = b.state().join("switch.state");
        b.wait_for("the switch's record", || {
            fs::read_to_string(&rec).is_ok_and(|s| s.trim() == "restore_failed")
        });
        assert_eq!(b.rules("v4"), AFTER, "{:?}", b.sh);
    });
}

#[test]
fn a_confirmation_and_the_switch_never_both_end_a_transaction() {
    each_shell(|b| {
        // The switch fired first: the confirmation must not persist.
        let r = b.run(&b.apply(1));
        r.expect(b.sh, "result", "applied");
        let rec = b.state().join("switch.state");
        b.wait_for("the switch to restore", || {
            fs::read_to_string(&rec).is_ok_and(|s| s.trim() == "restored")
        });
        let persisted = b.root.join("etc/rules.v4");
        let c = b.run(&b.commit("tok", &persisted));
        c.expect(b.sh, "disarm", "fired restored");
        assert!(
            !persisted.exists(),
            "{:?}: persisted after the switch fired",
            b.sh
        );
        let v = b.run(
            &b.script(Kind::Verify)
                .set("rp_token", "tok")
                .set("rp_families", "v4")
                .set("rp_listing", "no"),
        );
        assert_eq!(
            v.sections.text("switch").trim(),
            "fired restored",
            "{:?}",
            b.sh
        );
    });
    each_shell(|b| {
        // The confirmation first: the switch never restores afterwards.
        let r = b.run(&b.apply(2));
        r.expect(b.sh, "result", "applied");
        let c = b.run(&b.commit("tok", &b.root.join("etc/rules.v4")));
        c.expect(b.sh, "disarm", "disarmed");
        thread::sleep(Duration::from_millis(2500));
        assert_eq!(
            b.rules("v4"),
            AFTER,
            "{:?}: the disarmed switch restored",
            b.sh
        );
        assert!(!b.state().join("switch.state").exists(), "{:?}", b.sh);
    });
}

#[test]
fn a_restore_is_proven_before_it_disarms_and_keeps_new_bans() {
    each_shell(|b| {
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "applied");
        // fail2ban bans someone between the apply and the rollback.
        b.set_kernel(
            "v4",
            &AFTER.replace(
                "-A f2b-sshd -j RETURN",
                "-A f2b-sshd -s 198.51.100.7/32 -j REJECT\n-A f2b-sshd -j RETURN",
            ),
        );
        let x = b.run(&b.restore());
        x.expect(b.sh, "result", "restored");
        let now = b.rules("v4");
        assert!(
            now.contains("-A INPUT -s 192.0.2.9/32 -j ACCEPT") && !now.contains("MINE"),
            "{:?}: {now}",
            b.sh
        );
        assert!(
            now.contains("198.51.100.7"),
            "{:?}: the new ban was lost: {now}",
            b.sh
        );
        assert_eq!(b.switch_pid(), None, "{:?}", b.sh);
    });
    each_shell(|b| {
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "applied");
        b.fault("fail.iptables-restore", "always");
        let x = b.run(&b.restore());
        x.expect(b.sh, "result", "restore_failed");
        assert!(
            b.switch_pid().is_some(),
            "{:?}: an unproven restore disarmed the switch",
            b.sh
        );
    });
}

#[test]
fn persisting_is_refused_while_another_switch_is_armed_and_never_half_writes() {
    each_shell(|b| {
        // Another run's switch is armed: the persist-only path is busy.
        let r = b.run(&b.apply(300));
        r.expect(b.sh, "result", "applied");
        let persisted = b.root.join("etc/rules.v4");
        let c = b.run(&b.commit("", &persisted));
        c.expect(b.sh, "result", "busy");
        assert!(!persisted.exists(), "{:?}", b.sh);
    });
    each_shell(|b| {
        let persisted = b.root.join("etc/rules.v4");
        fs::write(&persisted, "old rules\n").expect("old file");
        fs::create_dir_all(b.root.join("etc/rules.v4.rampart-tmp")).expect("obstacle");
        let c = b.run(&b.commit("", &persisted));
        assert!(
            c.sections.text("persistv4").starts_with("failed: "),
            "{:?}: {}",
            b.sh,
            c.text
        );
        assert_eq!(
            fs::read_to_string(&persisted).expect("old file"),
            "old rules\n",
            "{:?}",
            b.sh
        );
    });
}

#[test]
fn a_dead_holders_lock_is_taken_over_and_systemd_run_is_used_where_systemd_runs() {
    each_shell(|b| {
        // Without flock (busybox) the lock is a directory naming its holder;
        // a holder that died does not block the host.
        fs::create_dir_all(b.state().join("lock")).expect("lock dir");
        fs::write(b.state().join("lock/pid"), "999999\n").expect("dead holder");
        // systemd is PID 1 here, and its systemd-run works.
        fs::create_dir_all(b.root.join("systemd")).expect("systemd dir");
        let stub = b.root.join("bin/systemd-run");
        fs::write(&stub, "#!/bin/sh\necho \"systemd-run $*\" >>\"$RP_STUB/calls\"\nwhile [ $# -gt 0 ]; do case $1 in --*) shift ;; *) break ;; esac; done\nsetsid \"$@\" </dev/null >/dev/null 2>&1 &\n").expect("stub");
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).expect("chmod");
        let lib_dir = b.root.join("systemd").display().to_string();
        let step = b.apply(300);
        let text = format!(
            "{}{}printf '\\n@@rampart:%s:@end %s\\n' \"$rp_nonce\" \"$?\"\n",
            script::preamble_with(&b.lib().set("rp_systemd", lib_dir)),
            step.render()
        );
        let argv = b.sh.argv();
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .arg("-s")
            .env("RP_STUB", b.root.join("kernel"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("shell");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("send");
        let out = wait_bounded(child, Duration::from_secs(60));
        let all = String::from_utf8_lossy(&out.stdout).into_owned();
        let s = Sections::parse(&all, NONCE);
        assert_eq!(s.text("result").trim(), "applied", "{:?}: {all}", b.sh);
        assert_eq!(s.text("armed").trim(), "systemd-run", "{:?}: {all}", b.sh);
        assert!(
            b.calls().contains("systemd-run --unit=rampart-switch-tok"),
            "{:?}",
            b.sh
        );
        assert!(b.switch_pid().is_some(), "{:?}", b.sh);
    });
}

#[test]
fn shellcheck_finds_nothing_in_the_remote_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/remote/scripts");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("scripts dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/xtables-stub.sh"));
    let out = run_bounded(
        Command::new("shellcheck")
            .args(["-s", "sh", "-S", "style"])
            .args(&files),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "shellcheck (installed by .ci/run) on {files:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process that ended but is not reaped yet (a zombie) is not running:
/// the disarm waits for the switch to be gone, and a switch its parent has
/// not reaped must not keep it waiting.
#[test]
fn a_zombie_is_not_a_running_switch() {
    each_shell(|b| {
        // A child of this test process that ends at once and is not waited
        // for: a zombie until `wait` below reaps it. (A shell as its parent
        // raced: dash may reap its background child before it execs.)
        let mut child = Command::new("true").spawn().expect("zombie maker");
        let zombie = child.id().to_string();
        b.wait_for("the child to be a zombie", || {
            fs::read_to_string(format!("/proc/{zombie}/stat"))
                .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        });
        let step = b
            .script(Kind::Verify)
            .set("rp_token", "tok")
            .set("rp_families", "")
            .set("rp_listing", "no");
        // The verify step reports the switch; point switch.pid at the zombie.
        fs::create_dir_all(b.state()).expect("state dir");
        let stat = fs::read_to_string(format!("/proc/{zombie}/stat")).expect("stat");
        let start = stat
            .rsplit_once(") ")
            .and_then(|(_, r)| r.split_whitespace().nth(19).map(str::to_string))
            .expect("start time");
        fs::write(b.state().join("switch.pid"), format!("{zombie} {start}\n")).expect("switch.pid");
        let r = b.run(&step);
        r.expect(b.sh, "switch", "gone");
        let _ = child.wait();
    });
}
