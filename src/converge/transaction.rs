//! One host, one transaction (SPEC §6): read, diff, test, back up, arm,
//! apply, confirm over a NEW connection, verify, persist; or roll back.
//!
//! Round trips are few on purpose (SPEC §7): connection A runs one read-only
//! script (facts, live rules, persisted files) and, only when something must
//! change, one script that tests, backs up, arms the dead-man switch and
//! applies. Connection B runs one script that disarms and reads the result,
//! and one that persists. Nothing sleeps on the happy path.
//!
//! The dead-man switch is a `setsid` shell on the host that restores the
//! backup after `confirm_timeout` unless its process group is killed first;
//! it survives the SSH session and the controller (guarantee 1).

use std::time::{Duration, Instant};

use crate::firewall::{self, Family, Ruleset};
use crate::playbook::HostPlan;
use crate::remote::facts::{self, Facts};
use crate::remote::shell::{heredoc_to_file, quote, Sections, PROLOGUE};
use crate::remote::{ConnectError, Connection, Connector, Reach};

use super::report_types::{HostReport, Status, Step};

/// Where rampart keeps its state on a host: backups (kept), the switch's pid
/// file and the uploaded rules (both removed when the transaction ends).
pub const STATE_DIR: &str = "/var/lib/rampart";

/// Everything one host's transaction needs.
#[derive(Debug, Clone)]
pub struct Job {
    pub reach: Reach,
    pub plan: HostPlan,
    /// Read-only: report drift, change nothing.
    pub check: bool,
    pub confirm_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Per-family working data once the host has been read.
struct FamilyState {
    family: Family,
    desired: Ruleset,
    live_diff: firewall::Diff,
    persist_path: String,
    /// None when the persisted file already matches.
    file_problem: Option<String>,
}

fn tag(f: Family) -> &'static str {
    match f {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

/// Run the whole transaction for one host. Never panics on host data;
/// every failure becomes a status with the step and a message.
pub fn run(connector: &dyn Connector, job: &Job, progress: &(dyn Fn(Step) + Sync)) -> HostReport {
    let started = Instant::now();
    let mut rep = HostReport::new(&job.reach.name, &job.reach.address, job.plan.plays.clone());
    let result = Txn {
        connector,
        job,
        progress,
        rep: &mut rep,
        token: new_token(),
    }
    .go();
    if let Err((status, step, msg)) = result {
        rep.status = status;
        rep.step = Some(step);
        rep.error = Some(msg);
    }
    rep.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    rep
}

type Fail = (Status, Step, String);

struct Txn<'a> {
    connector: &'a dyn Connector,
    job: &'a Job,
    progress: &'a (dyn Fn(Step) + Sync),
    rep: &'a mut HostReport,
    /// Names this transaction's uploaded files on the host, so that a
    /// concurrent run's cleanup never removes them.
    token: String,
}

/// A token unique to this transaction: process id, time, and a counter.
fn new_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:08x}{:x}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn connect_fail(step: Step, e: &ConnectError) -> Fail {
    let status = if e.is_host_key() {
        Status::Failed
    } else {
        Status::Unreachable
    };
    (status, step, e.to_string())
}

/// Did the script run at all? (sudo refusing, or no shell, prints no sections.)
fn check_ran(out: &crate::remote::Output, become_: bool, step: Step) -> Result<(), Fail> {
    if out.stdout.contains("@@rampart:") {
        return Ok(());
    }
    let err = out.stderr.trim();
    let msg = if become_ && (err.contains("sudo") || err.contains("password")) {
        format!("sudo refused (become needs passwordless sudo: NOPASSWD): {err}")
    } else {
        format!("remote shell failed (exit {}): {err}", out.status)
    };
    Err((Status::Failed, step, msg))
}

impl Txn<'_> {
    fn step(&self, s: Step) {
        (self.progress)(s);
    }

    fn go(&mut self) -> Result<(), Fail> {
        let job = self.job;
        let spec = &job.plan.firewall;
        self.step(Step::Connect);
        let mut a = self
            .connector
            .connect(&job.reach)
            .map_err(|e| connect_fail(Step::Connect, &e))?;

        // Step 2-3: facts, live rules, persisted files: one read-only round trip.
        self.step(Step::Facts);
        let mut extra = Vec::new();
        if let Some(p) = &spec.persist {
            for path in [&p.ipv4, &p.ipv6].into_iter().flatten() {
                extra.push(path.display().to_string());
            }
        }
        let out = a.run(&facts::read_script(&extra)).map_err(|e| {
            (
                Status::Unreachable,
                Step::Facts,
                format!("connection lost: {e}"),
            )
        })?;
        check_ran(&out, job.reach.become_, Step::Facts)?;
        let facts = Facts::parse(&out.stdout);
        self.rep.os = Some(facts.os_id.clone());
        self.rep.backend = Some(facts.backend.clone());
        let fail = |msg: String| (Status::Failed, Step::Facts, msg);
        if facts.uid != Some(0) {
            return Err(fail(format!(
                "commands run as uid {}, not root: set `become: true` for this host",
                facts.uid.map_or("?".into(), |u| u.to_string())
            )));
        }
        if facts.firewalld_active {
            return Err(fail("firewalld is active and would fight rampart over the rules: disable it first (systemctl disable --now firewalld)".into()));
        }
        if facts.ufw_active {
            return Err(fail("ufw is enabled and would fight rampart over the rules: disable it first (ufw disable)".into()));
        }
        if !facts.has_iptables {
            return Err(fail(
                "iptables-save/iptables-restore not found on the host: install iptables".into(),
            ));
        }
        let (p4, p6) = self.persist_paths(&facts)?;

        self.step(Step::Diff);
        let mut families = vec![(Family::V4, p4)];
        if spec.ipv6 {
            if facts.has_ip6tables {
                families.push((Family::V6, p6));
            } else {
                self.rep
                    .warnings
                    .push("no ip6tables on this host: IPv6 rules not managed".into());
            }
        }
        let mut states = Vec::new();
        for (family, path) in families {
            states.push(self.read_family(&facts, family, path)?);
        }
        let live_changes = states.iter().any(|s| !s.live_diff.is_empty());
        let file_changes = states.iter().any(|s| s.file_problem.is_some());
        let diff_text = render_diff(&states);
        if !live_changes && !file_changes {
            self.rep.status = Status::Ok;
            return Ok(());
        }
        self.rep.diff = Some(diff_text);
        if job.check {
            self.rep.status = Status::Drift;
            return Ok(());
        }
        if !live_changes {
            // Live rules are right; only persisted files are stale: rewrite them
            // from the live rules (already confirmed, nothing to roll back).
            self.step(Step::Persist);
            let saves: Vec<(Family, String)> = states
                .iter()
                .map(|s| (s.family, save_text(&facts, s.family).unwrap_or_default()))
                .collect();
            self.persist(a.as_mut(), &states, &saves)?;
            self.rep.status = Status::Changed;
            return Ok(());
        }
        self.apply(a, &states)
    }

    fn persist_paths(&self, facts: &Facts) -> Result<(String, String), Fail> {
        let defaults = facts.os.persist_paths();
        let over = self.job.plan.firewall.persist.as_ref();
        let pick = |o: Option<&std::path::PathBuf>, d: Option<&str>| -> Option<String> {
            o.map(|p| p.display().to_string())
                .or_else(|| d.map(str::to_string))
        };
        let p4 = pick(over.and_then(|p| p.ipv4.as_ref()), defaults.map(|d| d.0));
        let p6 = pick(over.and_then(|p| p.ipv6.as_ref()), defaults.map(|d| d.1));
        match (p4, p6) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err((
                Status::Failed,
                Step::Facts,
                format!(
                    "unsupported OS family (ID={}): no known place to persist rules; set `persist: {{ipv4: PATH, ipv6: PATH}}` in the play",
                    facts.os_id
                ),
            )),
        }
    }

    fn read_family(
        &mut self,
        facts: &Facts,
        family: Family,
        path: String,
    ) -> Result<FamilyState, Fail> {
        let spec = &self.job.plan.firewall;
        let save = save_text(facts, family).map_err(|e| (Status::Failed, Step::Facts, e))?;
        let live = firewall::parse_save(&save, family).map_err(|e| {
            (
                Status::Failed,
                Step::Diff,
                format!("cannot parse {}-save output: {e}", family.cmd()),
            )
        })?;
        let desired =
            firewall::with_preserved(&firewall::desired(spec, family), &live, &spec.preserve);
        let live_diff = firewall::diff(&desired, &live);
        let file_problem = match facts.files.get(&path) {
            None | Some(None) => Some(format!("persisted file {path} is missing")),
            Some(Some(text)) => match firewall::parse_save(text, family) {
                Err(e) => Some(format!("persisted file {path} does not parse ({e})")),
                Ok(saved) if !firewall::diff(&desired, &saved).is_empty() => Some(format!(
                    "persisted file {path} differs from the desired rules"
                )),
                Ok(_) => None,
            },
        };
        if !facts.has_loader(family == Family::V6) {
            self.rep.warnings.push(format!(
                "no boot loader for {path}: {}",
                facts.os.loader_hint()
            ));
        }
        Ok(FamilyState {
            family,
            desired,
            live_diff,
            persist_path: path,
            file_problem,
        })
    }

    /// Steps 4-7: upload, test, back up, arm, apply; then confirm over B.
    fn apply(&mut self, mut a: Box<dyn Connection>, states: &[FamilyState]) -> Result<(), Fail> {
        let job = self.job;
        self.step(Step::Test);
        let script = apply_script(states, job.confirm_timeout, &self.token);
        let armed_at = Instant::now();
        let out = a
            .run(&script)
            .map_err(|e| (Status::Failed, Step::Apply, format!("connection lost while applying: {e} (the dead-man switch restores the old rules if they were changed)")))?;
        check_ran(&out, job.reach.become_, Step::Test)?;
        let s = Sections::parse(&out.stdout);
        let result = s.text("result").trim().to_string();
        match result.as_str() {
            "applied" => {}
            "busy" => {
                return Err((
                    Status::Failed,
                    Step::Test,
                    format!(
                        "another rampart transaction is in flight on this host: {}",
                        s.text("detail").trim()
                    ),
                ));
            }
            "test_failed" => {
                return Err((
                    Status::Failed,
                    Step::Test,
                    format!(
                        "iptables-restore --test rejected the rules; nothing applied: {}",
                        s.text("detail").trim()
                    ),
                ));
            }
            "apply_failed" => {
                return Err((
                    Status::Failed,
                    Step::Apply,
                    format!(
                        "iptables-restore failed; previous rules restored: {}",
                        s.text("detail").trim()
                    ),
                ));
            }
            other => {
                return Err((
                    Status::Failed,
                    Step::Apply,
                    format!(
                        "unexpected answer from the host ({other:?}): {}",
                        out.stderr.trim()
                    ),
                ));
            }
        }
        self.step(Step::Apply);

        // Step 7: a NEW connection is the only proof that NEW packets pass.
        self.step(Step::Confirm);
        match self.connector.connect(&job.reach) {
            Ok(mut b) => self.confirmed(b.as_mut(), states),
            Err(e) => {
                let why = format!("fresh SSH connection failed after applying: {e}");
                self.rollback(a, states, armed_at, why)
            }
        }
    }

    /// B connected: disarm, verify, persist.
    fn confirmed(&mut self, b: &mut dyn Connection, states: &[FamilyState]) -> Result<(), Fail> {
        self.step(Step::Verify);
        let out = b
            .run(&verify_script(states))
            .map_err(|e| (Status::Failed, Step::Verify, format!("connection lost while verifying: {e} (the dead-man switch restores the old rules)")))?;
        let s = Sections::parse(&out.stdout);
        if s.text("disarm").trim() != "disarmed" {
            self.rep.status = Status::RolledBack;
            self.rep.step = Some(Step::Confirm);
            self.rep.error = Some(format!(
                "the dead-man switch fired before a fresh connection could confirm the rules (the host was unreachable or too slow for --confirm-timeout {}s): previous rules are back, nothing persisted",
                self.job.confirm_timeout.as_secs()
            ));
            return Ok(());
        }
        let mut listing = String::new();
        let mut saves = Vec::new();
        let mut mismatch = Vec::new();
        for st in states {
            let t = tag(st.family);
            let list = s.text(&format!("list{t}"));
            listing.push_str(list);
            // `iptables -L` is the evidence an operator reads: cross-check it
            // (policies, rule counts) as well as the exact iptables-save.
            match firewall::listing::parse_list(list) {
                Ok(l) => {
                    if let Err(e) = firewall::listing::listing_matches(&l, &st.desired) {
                        mismatch.push(format!("{} -L: {e}", st.family.cmd()));
                    }
                }
                Err(e) => {
                    mismatch.push(format!("{} -L output does not parse: {e}", st.family.cmd()))
                }
            }
            let save = match saved_section(&s, &format!("save{t}")) {
                Ok(x) => x,
                Err(e) => {
                    mismatch.push(format!("{}: {e}", st.family.cmd()));
                    continue;
                }
            };
            match firewall::parse_save(&save, st.family) {
                Ok(now) => {
                    let d = firewall::diff(&st.desired, &now);
                    if !d.is_empty() {
                        mismatch.push(format!("{}:\n{d}", st.family.cmd()));
                    }
                }
                Err(e) => mismatch.push(format!(
                    "{}-save output does not parse: {e}",
                    st.family.cmd()
                )),
            }
            saves.push((st.family, save));
        }
        self.rep.listing = Some(listing);
        if !mismatch.is_empty() {
            let restored = b
                .run(&restore_script(states, &self.token))
                .map(|o| o.stdout.contains("restored"))
                .unwrap_or(false);
            let note = if restored {
                "previous rules restored"
            } else {
                "restore failed: the dead-man switch is gone, check the host"
            };
            return Err((
                Status::Failed,
                Step::Verify,
                format!(
                    "verify mismatch: the live rules differ from the desired ones ({note}):\n{}",
                    mismatch.join("\n")
                ),
            ));
        }
        self.step(Step::Persist);
        self.persist(b, states, &saves)?;
        self.rep.status = Status::Changed;
        Ok(())
    }

    fn persist(
        &mut self,
        conn: &mut dyn Connection,
        states: &[FamilyState],
        saves: &[(Family, String)],
    ) -> Result<(), Fail> {
        let mut script = String::from(PROLOGUE);
        for (st, (_, text)) in states.iter().zip(saves) {
            let path = &st.persist_path;
            let tmp = format!("{path}.rampart-tmp");
            let dir = std::path::Path::new(path)
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "/".into());
            script.push_str(&format!("(umask 022; mkdir -p -- {})\n", quote(&dir)));
            heredoc_to_file(&mut script, &tmp, text);
            script.push_str(&format!(
                "chmod 600 -- {t} && mv -f -- {t} {p} && {{ command -v restorecon >/dev/null 2>&1 && restorecon -- {p} 2>/dev/null; echo ok_{tag}; }} || {{ rm -f -- {t}; echo failed_{tag}; }}\n",
                t = quote(&tmp),
                p = quote(path),
                tag = tag(st.family)
            ));
        }
        script.push_str(&cleanup_snippet(&self.token));
        let out = conn.run(&script).map_err(|e| {
            (
                Status::Failed,
                Step::Persist,
                format!("connection lost while persisting: {e} (live rules are confirmed)"),
            )
        })?;
        for st in states {
            if out.stdout.contains(&format!("ok_{}", tag(st.family))) {
                self.rep.persisted.push(st.persist_path.clone());
            } else {
                return Err((
                    Status::Failed,
                    Step::Persist,
                    format!(
                        "could not write {} (live rules are confirmed and stay): {}",
                        st.persist_path,
                        out.stderr.trim()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// B failed: restore over A at once if A answers, else let the switch
    /// fire; then prove the host is back with a new connection.
    fn rollback(
        &mut self,
        mut a: Box<dyn Connection>,
        states: &[FamilyState],
        armed_at: Instant,
        why: String,
    ) -> Result<(), Fail> {
        let job = self.job;
        let states_note;
        self.step(Step::Rollback);
        // A may be cut too: do not wait on it longer than on a new connection.
        a.set_timeout(job.connect_timeout);
        let restored_over_a = a
            .run(&restore_script(states, &self.token))
            .map(|o| o.stdout.contains("restored"))
            .unwrap_or(false);
        drop(a);
        if restored_over_a {
            states_note = "restored over the original connection";
        } else {
            states_note = "restored by the dead-man switch";
            let fire_at = armed_at + job.confirm_timeout + Duration::from_secs(1);
            let now = Instant::now();
            if fire_at > now {
                std::thread::sleep(fire_at - now);
            }
        }
        // Prove the host is back: bounded retries of a fresh connection.
        let deadline = Instant::now() + job.connect_timeout * 3 + Duration::from_secs(5);
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.connector.connect(&job.reach) {
                Ok(mut c) => {
                    let _ = c.run(&format!("{PROLOGUE}{}", cleanup_snippet(&self.token)));
                    self.rep.status = Status::RolledBack;
                    self.rep.step = Some(Step::Confirm);
                    self.rep.error = Some(format!(
                        "{why}; previous rules {states_note}; nothing persisted"
                    ));
                    return Ok(());
                }
                Err(e) => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        Err((
            Status::Failed,
            Step::Rollback,
            format!("{why}; rollback could not be confirmed: the host did not answer a new connection afterwards ({last})"),
        ))
    }
}

fn save_text(facts: &Facts, family: Family) -> Result<String, String> {
    match family {
        Family::V4 => facts.save_v4.clone(),
        Family::V6 => facts.save_v6.clone(),
    }
}

/// A `saveNN` section of a script: the text, or why it failed.
fn saved_section(s: &Sections, name: &str) -> Result<String, String> {
    let body = s.get(name).ok_or_else(|| format!("no {name} output"))?;
    match body.trim_end().rsplit_once("@@rc=") {
        Some((t, rc)) if rc.trim() == "0" => Ok(t.to_string()),
        Some((t, rc)) => Err(format!("exit {}: {}", rc.trim(), t.trim())),
        None => Err("no exit status".into()),
    }
}

fn render_diff(states: &[FamilyState]) -> String {
    let mut out = String::new();
    for st in states {
        if !st.live_diff.is_empty() {
            out.push_str(&format!(
                "{} (live rules):\n{}",
                st.family.cmd(),
                st.live_diff
            ));
        }
        if let Some(p) = &st.file_problem {
            out.push_str(&format!("~ {p}\n"));
        }
    }
    out
}

/// Removes the uploaded rules and the switch's leftovers; keeps backups.
fn cleanup_snippet(tok: &str) -> String {
    format!(
        "rm -f -- {d}/desired.{tok}.v4 {d}/desired.{tok}.v6 {d}/switch.fired\n",
        d = STATE_DIR
    )
}

/// What a backup holds when the host had no filter table at all (nf_tables
/// hosts with no rules print nothing): restoring it must still undo our
/// filter table, so the kernel's defaults are written out explicitly.
const EMPTY_FILTER: &str =
    "*filter\\n:INPUT ACCEPT [0:0]\\n:FORWARD ACCEPT [0:0]\\n:OUTPUT ACCEPT [0:0]\\nCOMMIT\\n";

/// Upload, test, back up, arm, apply: one round trip.
fn apply_script(states: &[FamilyState], confirm_timeout: Duration, tok: &str) -> String {
    let d = STATE_DIR;
    let mut s = String::from(PROLOGUE);
    s.push_str(&format!("mkdir -p {d} && chmod 700 {d} || {{ sec result; echo test_failed; sec detail; echo cannot create {d}; exit 0; }}\n"));
    // From the busy check to the armed switch, hold a lock on the state dir
    // (where flock exists): two transactions checking at the same moment would
    // both see no switch, and the second would orphan the first's switch.
    s.push_str(&format!(
        "exec 9<{d}; if command -v flock >/dev/null 2>&1 && ! flock -w 10 9; then sec result; echo busy; sec detail; echo cannot lock {d}; exit 0; fi\n"
    ));
    // Refuse to run beside another transaction (its switch is still armed).
    s.push_str(&format!(
        "if [ -f {d}/switch.pid ] && kill -0 \"$(cat {d}/switch.pid)\" 2>/dev/null; then sec result; echo busy; sec detail; echo switch pid $(cat {d}/switch.pid); exit 0; fi\n"
    ));
    for st in states {
        let t = tag(st.family);
        heredoc_to_file(
            &mut s,
            &format!("{d}/desired.{tok}.{t}"),
            &firewall::render(&st.desired),
        );
    }
    // Step 4: test everything before touching anything.
    for st in states {
        let t = tag(st.family);
        let cmd = st.family.cmd();
        s.push_str(&format!(
            "if ! err=$({cmd}-restore --test < {d}/desired.{tok}.{t} 2>&1); then rm -f {d}/desired.{tok}.v4 {d}/desired.{tok}.v6; sec result; echo test_failed; sec detail; echo \"{cmd}: $err\"; exit 0; fi\n"
        ));
    }
    // Step 5: back up the live rules as they are now, then arm the switch.
    let mut restore = String::new();
    for st in states {
        let t = tag(st.family);
        let cmd = st.family.cmd();
        s.push_str(&format!(
            "{cmd}-save > {d}/backup.{t}.tmp && {{ grep -q '^\\*filter' {d}/backup.{t}.tmp || printf '{EMPTY_FILTER}' >> {d}/backup.{t}.tmp; }} && mv -f {d}/backup.{t}.tmp {d}/backup.{t} || {{ rm -f {d}/desired.{tok}.v4 {d}/desired.{tok}.v6; sec result; echo test_failed; sec detail; echo cannot back up {cmd} rules; exit 0; }}\n"
        ));
        restore.push_str(&format!("{cmd}-restore < {d}/backup.{t}; "));
    }
    let secs = confirm_timeout.as_secs();
    s.push_str(&format!(
        "rm -f {d}/switch.fired {d}/switch.pid\n\
         setsid sh -c 'echo $$ > {d}/switch.pid; sleep {secs}; {restore}rm -f {d}/switch.pid {d}/desired.{tok}.v4 {d}/desired.{tok}.v6; echo fired > {d}/switch.fired' </dev/null >/dev/null 2>&1 9<&- &\n\
         i=0; while [ ! -s {d}/switch.pid ] && [ $i -lt 200 ]; do i=$((i+1)); sleep 0.01 2>/dev/null || sleep 1; done\n\
         if [ ! -s {d}/switch.pid ]; then rm -f {d}/desired.{tok}.v4 {d}/desired.{tok}.v6; sec result; echo test_failed; sec detail; echo the dead-man switch did not start; exit 0; fi\n\
         exec 9<&-\n"
    ));
    // Step 6: apply, one atomic iptables-restore per family.
    s.push_str("applied=yes\n");
    for st in states {
        let t = tag(st.family);
        let cmd = st.family.cmd();
        s.push_str(&format!(
            "if [ \"$applied\" = yes ] && ! err=$({cmd}-restore < {d}/desired.{tok}.{t} 2>&1); then applied=\"{cmd}: $err\"; fi\n"
        ));
    }
    s.push_str(&format!(
        "if [ \"$applied\" != yes ]; then {restore}kill -s TERM -- -\"$(cat {d}/switch.pid)\" 2>/dev/null; rm -f {d}/switch.pid {d}/desired.{tok}.v4 {d}/desired.{tok}.v6; sec result; echo apply_failed; sec detail; echo \"$applied\"; exit 0; fi\n\
         sec result; echo applied\n"
    ));
    s
}

/// Over B: disarm first (a live B proves NEW connections pass), then read
/// back what the kernel holds.
fn verify_script(states: &[FamilyState]) -> String {
    let d = STATE_DIR;
    let mut s = String::from(PROLOGUE);
    s.push_str(&format!(
        "sec disarm; if [ -s {d}/switch.pid ] && kill -s TERM -- -\"$(cat {d}/switch.pid)\" 2>/dev/null; then rm -f {d}/switch.pid; echo disarmed; else echo fired; fi\n"
    ));
    for st in states {
        let t = tag(st.family);
        let cmd = st.family.cmd();
        s.push_str(&format!("sec save{t}; {cmd}-save 2>&1; echo \"@@rc=$?\"\nsec list{t}; {cmd} -L -n -v --line-numbers 2>&1\n"));
    }
    s
}

/// Restore the backups of the given families and disarm.
fn restore_script(states: &[FamilyState], tok: &str) -> String {
    let d = STATE_DIR;
    let mut s = String::from(PROLOGUE);
    s.push_str("ok=yes\n");
    for st in states {
        let t = tag(st.family);
        let cmd = st.family.cmd();
        s.push_str(&format!("{cmd}-restore < {d}/backup.{t} || ok=no\n"));
    }
    s.push_str(&format!(
        "if [ -s {d}/switch.pid ]; then kill -s TERM -- -\"$(cat {d}/switch.pid)\" 2>/dev/null; rm -f {d}/switch.pid; fi\n{}\
         [ $ok = yes ] && echo restored\n",
        cleanup_snippet(tok)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::facts::OsFamily;

    #[test]
    fn os_family_paths_cover_spec_table() {
        assert_eq!(
            OsFamily::Rhel.persist_paths(),
            Some(("/etc/sysconfig/iptables", "/etc/sysconfig/ip6tables"))
        );
        assert_eq!(
            OsFamily::Debian.persist_paths(),
            Some(("/etc/iptables/rules.v4", "/etc/iptables/rules.v6"))
        );
        assert_eq!(
            OsFamily::Alpine.persist_paths(),
            Some(("/etc/iptables/rules-save", "/etc/iptables/rules6-save"))
        );
        assert_eq!(OsFamily::Other.persist_paths(), None);
    }

    #[test]
    fn saved_section_reads_status() {
        let s = Sections::parse(
            "@@rampart:save4\n*filter\nCOMMIT\n@@rc=0\n@@rampart:save6\nboom\n@@rc=1\n",
        );
        assert_eq!(
            saved_section(&s, "save4").as_deref(),
            Ok("*filter\nCOMMIT\n")
        );
        assert!(saved_section(&s, "save6").is_err());
    }

    // ---- The engine's decisions, on a scripted transport ----------------
    // The lab tests drive real hosts; these pin the decision logic for the
    // outcomes a real host cannot be made to produce on demand (a kernel
    // that prints something else than what was applied).

    use crate::firewall::{Allow, FirewallSpec, PortRange, Proto};
    use crate::remote::{ConnectError, Output};
    use std::sync::{Arc, Mutex};

    /// Answers each script by what it is; records every script it got.
    struct Scripted {
        log: Arc<Mutex<Vec<String>>>,
        connects: Arc<Mutex<usize>>,
        /// Connection number (1-based) that fails, if any.
        fail_connect: Option<usize>,
        /// What `iptables-save` prints after the apply.
        after_v4: String,
    }

    struct ScriptedConn {
        log: Arc<Mutex<Vec<String>>>,
        after_v4: String,
    }

    /// An `iptables -L -n` listing with as many rows per chain as `save` has.
    fn listing(save: &str) -> String {
        let mut out = String::new();
        for (chain, policy) in [
            ("INPUT", "DROP"),
            ("FORWARD", "ACCEPT"),
            ("OUTPUT", "ACCEPT"),
        ] {
            out.push_str(&format!("Chain {chain} (policy {policy})\ntarget     prot opt source               destination\n"));
            let n = save
                .lines()
                .filter(|l| l.starts_with(&format!("-A {chain} ")))
                .count();
            for _ in 0..n {
                out.push_str("ACCEPT     all  --  0.0.0.0/0            0.0.0.0/0\n");
            }
            out.push('\n');
        }
        out
    }

    fn sec(name: &str, body: &str) -> String {
        format!("\n@@rampart:{name}\n{body}")
    }

    impl Connection for ScriptedConn {
        fn run(&mut self, script: &str) -> Result<Output, crate::remote::ExecError> {
            self.log.lock().expect("log").push(script.to_string());
            let stdout = if script.contains("sec os_release") {
                [
                    sec("uid", "0\n"),
                    sec("os_release", "ID=debian\n"),
                    sec("iptables_v", "iptables v1.8.9 (nf_tables)\n"),
                    sec("has", "iptables-save\niptables-restore\n"),
                    sec("save4", "@@rc=0\n"),
                    sec("loaders", "/etc/systemd/system/multi-user.target.wants/netfilter-persistent.service\n"),
                ]
                .concat()
            } else if script.contains("--test") {
                sec("result", "applied\n")
            } else if script.contains("sec disarm") {
                [
                    sec("disarm", "disarmed\n"),
                    sec("savev4", &format!("{}@@rc=0\n", self.after_v4)),
                    sec("listv4", &listing(&self.after_v4)),
                ]
                .concat()
            } else if script.contains("backup.v4 ||") {
                "restored\n".to_string()
            } else if script.contains(".rampart-tmp") {
                "ok_v4\nok_v6\n".to_string()
            } else {
                String::new()
            };
            Ok(Output {
                stdout,
                stderr: String::new(),
                status: 0,
            })
        }
        fn set_timeout(&mut self, _: Duration) {}
    }

    impl Connector for Scripted {
        fn connect(&self, _: &Reach) -> Result<Box<dyn Connection>, ConnectError> {
            let mut n = self.connects.lock().expect("connects");
            *n += 1;
            if self.fail_connect == Some(*n) {
                return Err(ConnectError::Handshake("scripted: no answer".into()));
            }
            Ok(Box::new(ScriptedConn {
                log: Arc::clone(&self.log),
                after_v4: self.after_v4.clone(),
            }))
        }
    }

    fn job() -> Job {
        Job {
            reach: Reach {
                name: "web1".into(),
                address: "198.18.0.2".into(),
                port: 22,
                user: "root".into(),
                identity_file: None,
                known_hosts: "/dev/null".into(),
                become_: false,
                password_env: None,
                password: None,
                ..Reach::default()
            },
            plan: HostPlan {
                plays: vec!["p".into()],
                firewall: FirewallSpec {
                    allow: vec![Allow {
                        ports: PortRange { lo: 22, hi: 22 },
                        proto: Proto::Tcp,
                        from: None,
                    }],
                    ipv6: false,
                    ..FirewallSpec::default()
                },
            },
            check: false,
            confirm_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        }
    }

    fn scripted(
        after_v4: &str,
        fail_connect: Option<usize>,
    ) -> (Scripted, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let c = Scripted {
            log: Arc::clone(&log),
            connects: Arc::new(Mutex::new(0)),
            fail_connect,
            after_v4: after_v4.to_string(),
        };
        (c, log)
    }

    fn desired_v4(job: &Job) -> String {
        firewall::render(&firewall::desired(&job.plan.firewall, Family::V4))
    }

    #[test]
    fn verify_mismatch_restores_and_fails_without_persisting() {
        let job = job();
        // The kernel shows one rule more than was applied (say, another tool
        // inserted it between apply and verify).
        let after = desired_v4(&job).replace(
            "COMMIT",
            "-A INPUT -p tcp -m tcp --dport 9999 -j ACCEPT\nCOMMIT",
        );
        let (c, log) = scripted(&after, None);
        let rep = run(&c, &job, &|_| {});
        assert_eq!(rep.status, Status::Failed, "{rep:?}");
        assert_eq!(rep.step, Some(Step::Verify));
        let err = rep.error.unwrap_or_default();
        assert!(
            err.contains("verify mismatch")
                && err.contains("9999")
                && err.contains("previous rules restored"),
            "{err}"
        );
        let log = log.lock().expect("log");
        assert!(
            log.iter()
                .any(|s| s.contains("iptables-restore < /var/lib/rampart/backup.v4")),
            "a restore was sent"
        );
        assert!(
            !log.iter().any(|s| s.contains(".rampart-tmp")),
            "nothing persisted"
        );
        assert!(rep.persisted.is_empty());
    }

    #[test]
    fn verified_rules_are_persisted_after_the_fresh_connection() {
        let job = job();
        let (c, log) = scripted(&desired_v4(&job), None);
        let rep = run(&c, &job, &|_| {});
        assert_eq!(rep.status, Status::Changed, "{rep:?}");
        assert_eq!(rep.persisted, vec!["/etc/iptables/rules.v4".to_string()]);
        let log = log.lock().expect("log");
        let verify = log
            .iter()
            .position(|s| s.contains("sec disarm"))
            .expect("verify ran");
        let persist = log
            .iter()
            .position(|s| s.contains(".rampart-tmp"))
            .expect("persist ran");
        assert!(verify < persist, "persisted only after the confirmation");
    }

    #[test]
    fn failed_fresh_connection_restores_over_the_first_and_persists_nothing() {
        let job = job();
        // Connection 2 is the confirmation: it fails.
        let (c, log) = scripted(&desired_v4(&job), Some(2));
        let rep = run(&c, &job, &|_| {});
        assert_eq!(rep.status, Status::RolledBack, "{rep:?}");
        assert!(rep
            .error
            .unwrap_or_default()
            .contains("restored over the original connection"));
        let log = log.lock().expect("log");
        assert!(
            !log.iter().any(|s| s.contains(".rampart-tmp")),
            "nothing persisted"
        );
        assert!(rep.persisted.is_empty());
    }

    #[test]
    fn check_mode_sends_only_the_read_script() {
        let mut job = job();
        job.check = true;
        let (c, log) = scripted("", None);
        let rep = run(&c, &job, &|_| {});
        assert_eq!(rep.status, Status::Drift, "{rep:?}");
        let log = log.lock().expect("log");
        assert_eq!(log.len(), 1, "one read-only script, nothing else");
        for writes in ["mkdir", "setsid", "cat >", "iptables-restore <", "rm -"] {
            assert!(
                !log[0].contains(writes),
                "read-only, yet the script has {writes:?}"
            );
        }
    }
}
