//! One host, one transaction (docs/design.md, "The transaction"): read,
//! diff, test, back up, arm, apply, confirm over a NEW connection, verify,
//! commit (disarm and persist); or roll back.
//!
//! This file holds the decisions; what runs on the host is in
//! `src/remote/scripts/`. Each connection has one remote shell
//! (docs/design.md, "The remote protocol"): connection A runs the facts
//! step and, only when something must change, the apply step (test, back
//! up, arm the dead-man switch, apply), and a restore if the confirmation
//! fails. Connection B, the confirmation, runs the verify step and then the
//! commit step (or a restore). Nothing sleeps on the happy path.
//!
//! The safety rules this code keeps (docs/design.md, "Guarantees"):
//! - the switch is armed before any rule changes, and disarmed only by a
//!   connection that proved NEW connections pass (B), or after a restore
//!   the host proved (its `-save` reads back as the backup);
//! - nothing is persisted before B connected and the live rules verified;
//! - `rolled_back` is reported only once a new connection shows the
//!   backup's rules live;
//! - a panic on host data ends this host as `failed`, never the run.

use std::time::{Duration, Instant};

use crate::firewall::{self, Family, Ruleset};
use crate::playbook::HostPlan;
use crate::remote::facts::{self, Facts, FileState};
use crate::remote::script::{self, Kind, Script};
use crate::remote::{ConnectError, Connection, Connector, ExecError, Output, Reach};

use super::report_types::{HostReport, Progress, Status, Step};

/// Where rampart keeps its state on a host.
pub use crate::remote::script::STATE_DIR;

/// How many times the dead-man switch tries its restore before it records
/// `restore_failed` (each try waits for the xtables lock, 2 s apart).
const SWITCH_ATTEMPTS: u32 = 10;

/// Everything one host's transaction needs.
#[derive(Debug, Clone)]
pub struct Job {
    pub reach: Reach,
    pub plan: HostPlan,
    /// Read-only: report drift, change nothing.
    pub check: bool,
    /// Evaluate the new rules for the controller's own SSH packets before
    /// anything is uploaded (docs/design.md, "Lockout prediction").
    pub predict: bool,
    /// `-vv` and more: trace every step sent and what the host printed.
    pub trace: bool,
    pub confirm_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Per-family working data once the host has been read.
struct FamilyState {
    family: Family,
    /// What the playbook wants, before the preserved chains are added.
    base: Ruleset,
    /// `base` with the host's preserved chains as the facts found them.
    desired: Ruleset,
    /// What the facts step read.
    live: Ruleset,
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

/// Run the whole transaction for one host. Never panics: a failure is a
/// status with the step and a message, and a panic (a bug, on data a host
/// sent) is caught and reported as `failed` for this host alone.
pub fn run(
    connector: &dyn Connector,
    job: &Job,
    progress: &(dyn Fn(Progress) + Sync),
) -> HostReport {
    let started = Instant::now();
    let mut rep = HostReport::new(&job.reach.name, &job.reach.address, job.plan.plays.clone());
    let at = std::cell::Cell::new(Step::Connect);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut txn = Txn {
            connector,
            job,
            progress,
            rep: &mut rep,
            token: new_token(),
            at: &at,
            boot: None,
        };
        txn.go()
    }));
    let result = result.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err((
            Status::Failed,
            at.get(),
            format!("internal error (a bug in rampart, please report it): {what}; if rules were being changed, the dead-man switch restores them"),
        ))
    });
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
    progress: &'a (dyn Fn(Progress) + Sync),
    rep: &'a mut HostReport,
    /// Names this transaction on the host (its switch's claim and unit).
    token: String,
    /// The step in progress (for the report of a panic).
    at: &'a std::cell::Cell<Step>,
    /// rampart's own boot loader, to install once the rules are persisted.
    boot: Option<(Script, String)>,
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

/// A connection that could not be made: `unreachable`, unless the cause is
/// trust (a host key) or this machine's resources (no file descriptors or
/// memory), which say nothing about whether the host answers.
fn connect_fail(step: Step, e: &ConnectError) -> Fail {
    if e.is_resource_shortage() {
        return (
            Status::Failed,
            step,
            format!("{e} (the cause is local to this machine, not the host)"),
        );
    }
    let status = if e.is_host_key() {
        Status::Failed
    } else {
        Status::Unreachable
    };
    (status, step, e.to_string())
}

/// A step's output, or why the step did not run to its end: the shell
/// ended (sudo refused, no shell) or the connection broke.
fn step_output(
    r: Result<Output, ExecError>,
    become_: bool,
    step: Step,
    lost: impl FnOnce(&str) -> Fail,
) -> Result<Output, Fail> {
    match r {
        Ok(out) => Ok(out),
        Err(ExecError::Transport(e)) => Err(lost(&e)),
        Err(ExecError::Ended(out)) => {
            let err = out.text.trim();
            let msg = if become_ && (err.contains("sudo") || err.contains("password")) {
                format!("sudo refused (become needs passwordless sudo: NOPASSWD): {err}")
            } else {
                format!("remote shell failed (exit {}): {err}", out.status)
            };
            Err((Status::Failed, step, msg))
        }
    }
}

impl Txn<'_> {
    fn step(&mut self, s: Step) {
        self.at.set(s);
        (self.progress)(Progress::Step(s));
    }

    fn run_step(
        &mut self,
        conn: &mut dyn Connection,
        script: &Script,
        step: Step,
        lost: impl FnOnce(&str) -> Fail,
    ) -> Result<Output, Fail> {
        let r = self.exec(conn, script);
        step_output(r, self.job.reach.become_, step, lost)
    }

    /// Send one step; with tracing on, say what was sent and what came
    /// back. (No step carries a password: they travel only to libssh2.)
    fn exec(&mut self, conn: &mut dyn Connection, script: &Script) -> Result<Output, ExecError> {
        let text = self.with_backend(script.clone()).render();
        if self.job.trace {
            (self.progress)(Progress::Trace(format!(
                "sends the {} step ({} bytes; the shared functions of lib.sh went once, first):\n{text}",
                script.kind().name(),
                text.len()
            )));
        }
        let started = Instant::now();
        let r = conn.run(&text);
        if self.job.trace {
            let took = started.elapsed().as_secs_f64();
            (self.progress)(Progress::Trace(match &r {
                Ok(out) => format!(
                    "the {} step ended in {took:.3}s (exit {}), printing:\n{}",
                    script.kind().name(),
                    out.status,
                    out.text
                ),
                Err(e) => format!(
                    "the {} step failed after {took:.3}s: {e}",
                    script.kind().name()
                ),
            }));
        }
        r
    }

    /// A step of a host whose facts are known carries its iptables
    /// backend: on nf_tables every tool takes `-w`, and lib.sh's
    /// `rp_has_wait` then runs no probe (two execs per tool call saved).
    fn with_backend(&self, script: Script) -> Script {
        match &self.rep.backend {
            Some(b) if script.get("rp_backend").is_none() => script.set("rp_backend", b.clone()),
            _ => script,
        }
    }

    fn go(&mut self) -> Result<(), Fail> {
        let job = self.job;
        let spec = &job.plan.firewall;
        self.step(Step::Connect);
        let mut a = self
            .connector
            .connect(&job.reach)
            .map_err(|e| connect_fail(Step::Connect, &e))?;

        // Facts, live rules, persisted files: one read-only step.
        self.step(Step::Facts);
        let mut extra = Vec::new();
        if let Some(p) = &spec.persist {
            for path in [&p.ipv4, &p.ipv6].into_iter().flatten() {
                extra.push(path.display().to_string());
            }
        }
        let out = self.run_step(
            a.as_mut(),
            &facts::script(&facts::paths_to_read(&extra)),
            Step::Facts,
            |e| {
                (
                    Status::Unreachable,
                    Step::Facts,
                    format!("connection lost: {e}"),
                )
            },
        )?;
        let facts = Facts::parse(&out.sections);
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
        if facts.switch_state.as_deref() == Some("restore_failed") {
            self.rep.warnings.push(format!(
                "the dead-man switch of an earlier run could not restore its backup ({STATE_DIR}/switch.state says restore_failed): check this host's rules"
            ));
        }
        let (p4, p6) = self.persist_paths(&facts)?;

        self.step(Step::Diff);
        let mut families = vec![(Family::V4, p4)];
        if spec.ipv6 {
            if !facts.ipv6_enabled {
                self.rep.warnings.push(
                    "IPv6 is disabled in this host's kernel (no /proc/net/if_inet6): IPv6 rules not managed".into(),
                );
            } else if facts.has_ip6tables {
                families.push((Family::V6, p6));
            } else {
                self.rep
                    .warnings
                    .push("no ip6tables on this host: IPv6 rules not managed".into());
            }
        }
        let mut read = Vec::new();
        for (family, path) in families {
            let live = parse_live(&facts, family)?;
            let base = firewall::desired(spec, family);
            read.push((family, path, live, base));
        }
        self.host_canonical(a.as_mut(), &mut read)?;
        let mut states = Vec::new();
        for (family, path, live, base) in read {
            states.push(self.read_family(&facts, family, path, &live, base));
        }
        let live_changes = states.iter().any(|s| !s.live_diff.is_empty());
        let file_changes = states.iter().any(|s| s.file_problem.is_some());
        let boot = self.boot_plan(&facts, &states);
        if !live_changes && !file_changes && boot.is_none() {
            if job.check {
                self.predict(&facts, &states, true)?;
            }
            self.rep.status = Status::Ok;
            return Ok(());
        }
        let mut diff = render_diff(&states);
        if let Some((_, what)) = &boot {
            diff.push_str(&format!(
                "+ boot loader {what}: nothing loads the persisted rules at boot\n"
            ));
        }
        self.rep.diff = Some(diff);
        if job.check {
            self.predict(&facts, &states, true)?;
            self.rep.status = Status::Drift;
            return Ok(());
        }
        if !live_changes {
            // Live rules are right; only persisted files are stale: rewrite
            // them from the live rules (already confirmed, nothing to roll
            // back), under the same lock and busy check as an apply.
            self.step(Step::Persist);
            if file_changes {
                let texts: Vec<String> = states
                    .iter()
                    .map(|s| save_text(&facts, s.family).unwrap_or_default())
                    .collect();
                self.commit(a.as_mut(), &states, &texts, None)?;
            }
            if let Some(b) = boot {
                self.install_boot(a.as_mut(), b)?;
            }
            self.rep.status = Status::Changed;
            return Ok(());
        }
        self.predict(&facts, &states, false)?;
        self.boot = boot;
        self.apply(a, &states)
    }

    /// Where nothing loads the persisted rules at boot: with `boot: ensure`,
    /// the step that installs rampart's own loader (and what it is); with
    /// `boot: warn`, or an init system rampart does not know, a warning.
    fn boot_plan(&mut self, facts: &Facts, states: &[FamilyState]) -> Option<(Script, String)> {
        let missing: Vec<&FamilyState> = states
            .iter()
            .filter(|s| !facts.has_loader(s.family == Family::V6))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let path = |f: Family| {
            states
                .iter()
                .find(|s| s.family == f)
                .map(|s| s.persist_path.clone())
                .unwrap_or_default()
        };
        if self.job.plan.firewall.boot == firewall::Boot::Ensure {
            let step = crate::remote::boot::install_step(
                facts.init,
                facts.has_rcs,
                &path(Family::V4),
                &path(Family::V6),
            );
            if step.is_some() {
                return step;
            }
        }
        for s in missing {
            self.rep.warnings.push(format!(
                "no boot loader for {}: {}{}",
                s.persist_path,
                facts.os.loader_hint(),
                if facts.init == crate::remote::facts::Init::Unknown {
                    " (this host's init system is not known to rampart, so it installs none of its own)"
                } else {
                    ""
                }
            ));
        }
        None
    }

    /// The boot step: rampart's own loader, after the rules were confirmed
    /// and persisted (a rollback never leaves one behind).
    fn install_boot(
        &mut self,
        conn: &mut dyn Connection,
        (step, what): (Script, String),
    ) -> Result<(), Fail> {
        self.step(Step::Boot);
        let out = self.run_step(conn, &step, Step::Boot, |e| {
            (Status::Failed, Step::Boot, format!("connection lost while installing the boot loader: {e} (the rules are live, confirmed and persisted)"))
        })?;
        let r = out.sections.text("boot").trim().to_string();
        if r == "ok" {
            self.rep
                .installed
                .push(format!("{} and {what}", crate::remote::boot::LOADER_PATH));
            Ok(())
        } else {
            Err((
                Status::Failed,
                Step::Boot,
                format!(
                    "the rules are live, confirmed and persisted, but nothing will load them at boot: installing {what} failed: {}",
                    r.strip_prefix("failed: ").unwrap_or(&r)
                ),
            ))
        }
    }

    /// Would the rules stop this controller's next SSH connection? The
    /// host said, in SSH_CONNECTION, which address and port it sees us come
    /// from and which it serves: run a NEW SYN from there (any source port:
    /// the next connection's is not known yet) and an ESTABLISHED packet of
    /// connection A through the filter table, as the kernel would
    /// (docs/design.md, "Lockout prediction"). `live`: judge the rules in
    /// place (audit) rather than the new ones. Through a jump host, the
    /// address the host sees is the jump's, which is the one that matters.
    fn predict(&mut self, facts: &Facts, states: &[FamilyState], live: bool) -> Result<(), Fail> {
        if !self.job.predict {
            return Ok(());
        }
        let Some((cip, cport, sip, sport)) = facts.ssh_connection else {
            self.rep.warnings.push(
                "the host did not say how it sees this connection (no SSH_CONNECTION): a lockout was not predicted".into(),
            );
            return Ok(());
        };
        let family = if cip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let Some(st) = states.iter().find(|s| s.family == family) else {
            // This family's rules are not rampart's on this host.
            return Ok(());
        };
        self.step(Step::Predict);
        let rules = if live { &st.live } else { &st.desired };
        let new = firewall::evaluate(
            rules,
            "INPUT",
            &firewall::Packet::tcp_syn(cip, 1024..=65535, sip, sport),
        );
        let which = if live {
            "the live rules"
        } else {
            "the new rules"
        };
        if new.verdict.blocks() {
            let at = &new.at;
            if live {
                self.rep.warnings.push(format!(
                    "{which} {} NEW SSH from {cip} (this controller) {at}: the next connection from here will fail",
                    if new.verdict == firewall::Verdict::Reject { "reject" } else { "drop" }
                ));
                return Ok(());
            }
            return Err((
                Status::Failed,
                Step::Predict,
                format!(
                    "{which} would {} NEW SSH from {cip} {at}: nothing applied",
                    new.verdict
                ),
            ));
        }
        if new.is_unknown() {
            self.rep.warnings.push(format!(
                "cannot tell whether {which} let NEW SSH from {cip} through ({new}){}",
                if live {
                    ""
                } else {
                    ": applying, the dead-man switch protects the host"
                }
            ));
        }
        if !live {
            let est = firewall::evaluate(
                rules,
                "INPUT",
                &firewall::Packet::tcp_established(cip, cport, sip, sport),
            );
            if est.verdict.blocks() {
                self.rep.warnings.push(format!(
                    "{which} would {} the open SSH connection ({}): an immediate rollback over it will not be possible; the dead-man switch still protects the host",
                    est.verdict, est.at
                ));
            }
        }
        Ok(())
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

    /// Where some desired rule's offline form may not be what this host's
    /// iptables prints, let the host say (the canon step: read-only, in a
    /// throwaway network namespace), and take its form as the desired one
    /// (docs/design.md, "Canonical form"). Offline, with a warning, where
    /// the host cannot make such a namespace.
    fn host_canonical(
        &mut self,
        a: &mut dyn Connection,
        read: &mut [(Family, String, Ruleset, Ruleset)],
    ) -> Result<(), Fail> {
        let uncertain = |rs: &Ruleset| {
            rs.table("filter").is_some_and(|t| {
                t.chains
                    .iter()
                    .flat_map(|c| &c.rules)
                    .any(|r| !r.canon_certain())
            })
        };
        if !read.iter().any(|(_, _, _, base)| uncertain(base)) {
            return Ok(());
        }
        self.step(Step::Canon);
        let mut step = Script::new(Kind::Canon)
            .set("rp_probe_v4", "")
            .set("rp_probe_v6", "");
        let mut fams = Vec::new();
        for (family, _, live, base) in read.iter() {
            if !uncertain(base) {
                continue;
            }
            fams.push(tag(*family));
            let probe = firewall::canon_probe(base, live);
            step = match family {
                Family::V4 => step.set("rp_probe_v4", probe),
                Family::V6 => step.set("rp_probe_v6", probe),
            };
        }
        step = step.set("rp_families", fams.join(" "));
        let out = self.run_step(a, &step, Step::Canon, |e| {
            (
                Status::Unreachable,
                Step::Canon,
                format!("connection lost: {e}"),
            )
        })?;
        for (family, _, _, base) in read.iter_mut() {
            let t = tag(*family);
            let Some(printed) = out.sections.get(&format!("canon{t}")) else {
                continue;
            };
            let rc = out.sections.text(&format!("rccanon{t}")).trim().to_string();
            let err = out.sections.text(&format!("errcanon{t}")).trim();
            if !printed.contains(firewall::HOST_CANON_MARKER) {
                self.rep.warnings.push(format!(
                    "this host cannot load rules into a throwaway network namespace ({err}): {} rules are compared in rampart's offline form, which may differ from what its iptables prints",
                    family.cmd()
                ));
                continue;
            }
            if rc != "0" {
                let why = err;
                return Err((
                    Status::Failed,
                    Step::Test,
                    format!(
                        "{} on the host rejected the rules; nothing applied: {why}",
                        family.cmd()
                    ),
                ));
            }
            match firewall::host_canonical(base, printed) {
                Ok(hc) => *base = hc.ruleset,
                Err(e) => self.rep.warnings.push(format!(
                    "the host's printing of the {} rules could not be paired with them ({e}): compared in rampart's offline form",
                    family.cmd()
                )),
            }
        }
        Ok(())
    }

    fn read_family(
        &mut self,
        facts: &Facts,
        family: Family,
        path: String,
        live: &Ruleset,
        base: Ruleset,
    ) -> FamilyState {
        let spec = &self.job.plan.firewall;
        let desired = firewall::with_preserved(&base, live, &spec.preserve);
        let live_diff = firewall::diff(&desired, live);
        let keep = live
            .table("filter")
            .map(|t| firewall::preserved_chains(t, &spec.preserve))
            .unwrap_or_default();
        // Never a file's content in a message: a path a play names may hold
        // anything (docs/design.md, "Guarantees").
        let file_problem = match facts.files.get(&path) {
            None | Some(FileState::Absent) => Some(format!("persisted file {path} is missing")),
            Some(FileState::Symlink) => Some(format!(
                "persisted file {path} is a symlink (not followed; it will be replaced by a file)"
            )),
            Some(FileState::Special) => {
                Some(format!("persisted file {path} is not a regular file"))
            }
            Some(FileState::Present(text)) => match firewall::parse_save(text, family) {
                Err(e) => Some(format!(
                    "persisted file {path} does not parse (line {})",
                    e.line
                )),
                // The preserved chains in the file are what was live when it
                // was written (fail2ban and Docker rebuild theirs at boot):
                // only the rules rampart manages must match.
                Ok(saved)
                    if !firewall::diff(
                        &firewall::without_preserved(&desired, &spec.preserve, &keep),
                        &firewall::without_preserved(&saved, &spec.preserve, &keep),
                    )
                    .is_empty() =>
                {
                    Some(format!(
                        "persisted file {path} differs from the desired rules"
                    ))
                }
                Ok(_) => None,
            },
        };
        FamilyState {
            family,
            base,
            desired,
            live: live.clone(),
            live_diff,
            persist_path: path,
            file_problem,
        }
    }

    /// The chains preserved on this host, by pattern or found by the facts
    /// step (a chain a preserved chain jumps to), as script parameters.
    fn with_preserve(&self, script: Script, states: &[FamilyState]) -> Script {
        let spec = &self.job.plan.firewall;
        let mut keep: Vec<String> = Vec::new();
        for st in states {
            if let Some(t) = st.desired.table("filter") {
                for c in t.chains.iter().filter(|c| !c.is_builtin()) {
                    if st
                        .base
                        .table("filter")
                        .and_then(|b| b.chain(&c.name))
                        .is_none()
                        && !keep.contains(&c.name)
                    {
                        keep.push(c.name.clone());
                    }
                }
            }
        }
        script
            .set("rp_preserve", script::lines(&spec.preserve))
            .set("rp_keep", script::lines(&keep))
    }

    fn families(states: &[FamilyState]) -> String {
        states
            .iter()
            .map(|s| tag(s.family))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Test, back up, arm, apply over A; then confirm over B.
    fn apply(&mut self, mut a: Box<dyn Connection>, states: &[FamilyState]) -> Result<(), Fail> {
        let job = self.job;
        self.step(Step::Test);
        let spec = &job.plan.firewall;
        let families = Self::families(states);
        let secs = job.confirm_timeout.as_secs().max(1).to_string();
        let switch = self
            .with_backend(self.with_preserve(Script::new(Kind::Switch), states))
            .set("rp_token", self.token.clone())
            .set("rp_secs", secs.clone())
            .set("rp_families", families.clone())
            .set("rp_attempts", SWITCH_ATTEMPTS.to_string())
            .standalone(&script::lib_vars("switch"));
        let mut apply = self
            .with_preserve(Script::new(Kind::Apply), states)
            .set("rp_token", self.token.clone())
            .set("rp_secs", secs)
            .set("rp_families", families)
            .set("rp_switch", switch)
            .set("rp_desired_v4", "")
            .set("rp_desired_v6", "");
        for st in states {
            let managed = firewall::without_preserved(&st.base, &spec.preserve, &[]);
            let text = firewall::render(&managed);
            apply = match st.family {
                Family::V4 => apply.set("rp_desired_v4", text),
                Family::V6 => apply.set("rp_desired_v6", text),
            };
        }
        let armed_at = Instant::now();
        let out = self.run_step(a.as_mut(), &apply, Step::Test, |e| {
            (Status::Failed, Step::Apply, format!("connection lost while applying: {e} (the dead-man switch restores the old rules if they were changed)"))
        })?;
        let s = &out.sections;
        let detail = s.text("detail").trim().to_string();
        let result = s.text("result").trim().to_string();
        let fail = |step: Step, msg: String| Err((Status::Failed, step, msg));
        match result.as_str() {
            "applied" => {}
            "busy" => {
                return fail(
                    Step::Test,
                    format!("another rampart transaction is in flight on this host: {detail}"),
                )
            }
            "test_failed" => {
                return fail(
                    Step::Test,
                    format!(
                        "iptables-restore --test rejected the rules; nothing applied: {detail}"
                    ),
                )
            }
            "backup_failed" => return fail(Step::Backup, detail),
            "arm_failed" => return fail(Step::Arm, detail),
            "apply_failed" => {
                return fail(Step::Apply, format!("iptables-restore failed: {detail}"))
            }
            other => {
                return fail(
                    Step::Apply,
                    format!(
                        "unexpected answer from the host ({other:?}): {}",
                        out.text.trim()
                    ),
                )
            }
        }
        let backups: Vec<String> = states
            .iter()
            .map(|st| s.text(&format!("backup{}", tag(st.family))).to_string())
            .collect();
        self.step(Step::Apply);

        // A NEW connection is the only proof that NEW packets pass.
        self.step(Step::Confirm);
        match self.connect_b() {
            Ok(mut b) => self.confirmed(b.as_mut(), states, &backups),
            Err(why) => self.rollback(a, states, &backups, armed_at, why),
        }
    }

    /// Connection B. A failure for a local reason (no file descriptors, no
    /// route on this machine) says nothing about the host's rules: it is
    /// retried, within the confirmation window, before anything is rolled back.
    fn connect_b(&mut self) -> Result<Box<dyn Connection>, String> {
        let job = self.job;
        let deadline = Instant::now() + job.confirm_timeout / 2;
        let mut local_failures = 0;
        loop {
            match self.connector.connect(&job.reach) {
                Ok(b) => return Ok(b),
                Err(e) if e.is_local() && Instant::now() < deadline => {
                    local_failures += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    let local = if e.is_local() {
                        " (the cause was local to this machine, not the host's new rules)"
                    } else if local_failures > 0 {
                        " (after local failures on this machine)"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "fresh SSH connection failed after applying: {e}{local}"
                    ));
                }
            }
        }
    }

    /// B connected: verify what the kernel holds, then commit or restore.
    fn confirmed(
        &mut self,
        b: &mut dyn Connection,
        states: &[FamilyState],
        backups: &[String],
    ) -> Result<(), Fail> {
        self.step(Step::Verify);
        let verify = Script::new(Kind::Verify)
            .set("rp_token", self.token.clone())
            .set("rp_families", Self::families(states))
            .set("rp_listing", "yes");
        let out = self.run_step(b, &verify, Step::Verify, |e| {
            (Status::Failed, Step::Verify, format!("connection lost while verifying: {e} (the dead-man switch restores the old rules)"))
        })?;
        let s = &out.sections;
        let switch = s.text("switch").trim().to_string();
        if let Some(state) = switch.strip_prefix("fired") {
            return self.switch_fired_first(state.trim(), states, backups, s);
        }
        let spec = &self.job.plan.firewall;
        let mut listing = String::new();
        let mut saves = Vec::new();
        let mut mismatch = Vec::new();
        for st in states {
            let t = tag(st.family);
            let list = s.text(&format!("list{t}"));
            listing.push_str(list);
            let save = s.text(&format!("save{t}")).to_string();
            if s.text(&format!("rcsave{t}")).trim() != "0" {
                mismatch.push(format!("{}-save failed: {}", st.family.cmd(), save.trim()));
                saves.push(save);
                continue;
            }
            match firewall::parse_save(&save, st.family) {
                Ok(now) => {
                    // Preserved chains as they are NOW: a ban or a Docker
                    // update since the facts is churn, not a mismatch.
                    let want = firewall::with_preserved(&st.base, &now, &spec.preserve);
                    let d = firewall::diff(&want, &now);
                    if !d.is_empty() {
                        mismatch.push(format!("{}:\n{d}", st.family.cmd()));
                    }
                    // `iptables -L` is the evidence an operator reads:
                    // cross-check it (policies, rule counts) too, for the
                    // chains rampart manages: it is read a moment after
                    // -save, and preserved chains may change in between.
                    match firewall::listing::parse_list(list) {
                        Ok(mut l) => {
                            let keep = now
                                .table("filter")
                                .map(|t| firewall::preserved_chains(t, &spec.preserve))
                                .unwrap_or_default();
                            let kept = |name: &str| {
                                keep.iter().any(|k| k == name)
                                    || spec.preserve.iter().any(|p| firewall::glob_match(p, name))
                            };
                            l.chains.retain(|c| !kept(&c.name));
                            for c in &mut l.chains {
                                c.rows.retain(|r| !kept(&r.target));
                            }
                            let managed = firewall::without_preserved(&want, &spec.preserve, &keep);
                            if let Err(e) = firewall::listing::listing_matches(&l, &managed) {
                                mismatch.push(format!("{} -L: {e}", st.family.cmd()));
                            }
                        }
                        Err(e) => mismatch
                            .push(format!("{} -L output does not parse: {e}", st.family.cmd())),
                    }
                }
                Err(e) => mismatch.push(format!(
                    "{}-save output does not parse: {e}",
                    st.family.cmd()
                )),
            }
            saves.push(save);
        }
        self.rep.listing = Some(listing);
        if !mismatch.is_empty() {
            let note = self.restore_over(b, states);
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
        self.commit(b, states, &saves, Some(backups))?;
        if let Some(boot) = self.boot.take() {
            self.install_boot(b, boot)?;
        }
        self.rep.status = Status::Changed;
        Ok(())
    }

    /// The commit step: disarm (when `backups` is Some: a confirmed apply),
    /// then persist `texts` with checked writes.
    fn commit(
        &mut self,
        conn: &mut dyn Connection,
        states: &[FamilyState],
        texts: &[String],
        backups: Option<&[String]>,
    ) -> Result<(), Fail> {
        let mut commit = Script::new(Kind::Commit)
            .set(
                "rp_token",
                if backups.is_some() {
                    self.token.clone()
                } else {
                    String::new()
                },
            )
            .set("rp_families", Self::families(states))
            .set("rp_path_v4", "")
            .set("rp_path_v6", "")
            .set("rp_text_v4", "")
            .set("rp_text_v6", "");
        for (st, text) in states.iter().zip(texts) {
            commit = match st.family {
                Family::V4 => commit
                    .set("rp_path_v4", st.persist_path.clone())
                    .set("rp_text_v4", text.trim_end().to_string()),
                Family::V6 => commit
                    .set("rp_path_v6", st.persist_path.clone())
                    .set("rp_text_v6", text.trim_end().to_string()),
            };
        }
        let out = self.run_step(conn, &commit, Step::Persist, |e| {
            (Status::Failed, Step::Persist, format!("connection lost while persisting: {e} (if the dead-man switch was not disarmed yet, it restores the old rules)"))
        })?;
        let s = &out.sections;
        let disarm = s.text("disarm").trim().to_string();
        if let Some(state) = disarm.strip_prefix("fired") {
            // Between the verify and this step: read what is live now.
            let state = state.trim().to_string();
            let readback = Script::new(Kind::Readback)
                .set("rp_token", self.token.clone())
                .set("rp_families", Self::families(states));
            let now = self
                .exec(conn, &readback)
                .map(|o| o.sections)
                .unwrap_or_default();
            return self.switch_fired_first(&state, states, backups.unwrap_or(&[]), &now);
        }
        if s.text("result").trim() == "busy" {
            return Err((
                Status::Failed,
                Step::Persist,
                format!(
                    "{}; live rules are confirmed, nothing persisted",
                    s.text("detail").trim()
                ),
            ));
        }
        let mut failed = Vec::new();
        for st in states {
            let r = s
                .text(&format!("persist{}", tag(st.family)))
                .trim()
                .to_string();
            if r == "ok" {
                self.rep.persisted.push(st.persist_path.clone());
            } else {
                failed.push(format!(
                    "{}: {}",
                    st.persist_path,
                    r.strip_prefix("failed: ").unwrap_or(if r.is_empty() {
                        "no answer"
                    } else {
                        &r
                    })
                ));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err((
                Status::Failed,
                Step::Persist,
                format!(
                    "the rules are live and confirmed but not persisted (the previous persisted file is unchanged): {}",
                    failed.join("; ")
                ),
            ))
        }
    }

    /// The switch claimed the transaction before the confirmation could:
    /// it restored (or tried to restore) the backup. Say which, by what the
    /// host holds now.
    fn switch_fired_first(
        &mut self,
        state: &str,
        states: &[FamilyState],
        backups: &[String],
        s: &crate::remote::shell::Sections,
    ) -> Result<(), Fail> {
        let why = format!(
            "the dead-man switch fired before a fresh connection could confirm the rules (the host was unreachable or too slow for --confirm-timeout {}s)",
            self.job.confirm_timeout.as_secs()
        );
        match self.backup_is_live(states, backups, s) {
            Ok(()) if state != "restore_failed" => {
                self.rep.status = Status::RolledBack;
                self.rep.step = Some(Step::Confirm);
                self.rep.error = Some(format!("{why}: previous rules are back, nothing persisted"));
                Ok(())
            }
            Ok(()) => Err((
                Status::Failed,
                Step::Rollback,
                format!("{why}; the switch recorded {state}, yet the backup's rules are live"),
            )),
            Err(live) => Err((
                Status::Failed,
                Step::Rollback,
                format!(
                    "{why}; the switch recorded {}: {live}",
                    if state.is_empty() { "nothing" } else { state }
                ),
            )),
        }
    }

    /// Whether each family's `save{v4,v6}` section of `s` holds the
    /// backup's rules (preserved chains aside); Err says what is live.
    fn backup_is_live(
        &self,
        states: &[FamilyState],
        backups: &[String],
        s: &crate::remote::shell::Sections,
    ) -> Result<(), String> {
        let spec = &self.job.plan.firewall;
        let mut problems = Vec::new();
        for (i, st) in states.iter().enumerate() {
            let t = tag(st.family);
            let Some(live_text) = s.get(&format!("save{t}")) else {
                problems.push(format!("{}: not read back", st.family.cmd()));
                continue;
            };
            let backup = backups.get(i).map(String::as_str).unwrap_or("");
            let parsed = (
                firewall::parse_save(live_text, st.family),
                firewall::parse_save(backup, st.family),
            );
            match parsed {
                (Ok(live), Ok(backup)) => {
                    let keep = live
                        .table("filter")
                        .map(|t| firewall::preserved_chains(t, &spec.preserve))
                        .unwrap_or_default();
                    let want = firewall::without_preserved(&backup, &spec.preserve, &keep);
                    let now = firewall::without_preserved(&live, &spec.preserve, &keep);
                    let d = firewall::diff(&want, &now);
                    if !d.is_empty() {
                        let new_live = firewall::diff(
                            &firewall::without_preserved(&st.base, &spec.preserve, &keep),
                            &now,
                        )
                        .is_empty();
                        problems.push(if new_live {
                            format!("{}: the NEW rules are still live", st.family.cmd())
                        } else {
                            format!(
                                "{}: the live rules differ from the backup:\n{d}",
                                st.family.cmd()
                            )
                        });
                    }
                }
                (Err(e), _) => problems.push(format!(
                    "{}-save output does not parse ({e})",
                    st.family.cmd()
                )),
                (_, Err(e)) => problems.push(format!(
                    "the backup of {} does not parse ({e})",
                    st.family.cmd()
                )),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Restore the backups over `conn` (proven by the host before it
    /// disarms); returns what to say about it.
    fn restore_over(&mut self, conn: &mut dyn Connection, states: &[FamilyState]) -> String {
        let restore = self
            .with_preserve(Script::new(Kind::Restore), states)
            .set("rp_token", self.token.clone())
            .set("rp_families", Self::families(states));
        match self.exec(conn, &restore) {
            Ok(out) => {
                let result = out.sections.text("result").trim().to_string();
                match result.as_str() {
                    "restored" => "previous rules restored".to_string(),
                    "restore_failed" => format!(
                        "restoring the previous rules failed ({}): the dead-man switch stays armed and retries when it fires",
                        out.sections.text("detail").trim()
                    ),
                    other => match other.strip_prefix("fired") {
                        Some(st) => format!("the dead-man switch had fired and recorded {}", st.trim()),
                        None => format!("the restore gave no answer ({other:?}): the dead-man switch stays armed"),
                    },
                }
            }
            Err(e) => format!("the restore did not run ({e}): the dead-man switch stays armed and restores the old rules"),
        }
    }

    /// B failed: restore over A at once if A answers (the host proves it
    /// before disarming), else let the switch fire; then a NEW connection
    /// must show the backup's rules live before this says `rolled_back`.
    fn rollback(
        &mut self,
        mut a: Box<dyn Connection>,
        states: &[FamilyState],
        backups: &[String],
        armed_at: Instant,
        why: String,
    ) -> Result<(), Fail> {
        let job = self.job;
        self.step(Step::Rollback);
        // A may be cut too: do not wait on it longer than on a new connection.
        a.set_timeout(job.connect_timeout);
        let note = self.restore_over(a.as_mut(), states);
        let over_a = note == "previous rules restored";
        if over_a {
            drop(a);
            return self.prove_rollback(None, states, backups, why, note, over_a);
        }
        // The switch fires at armed_at + confirm_timeout, and may wait for
        // the xtables lock while it restores. A stays open meanwhile: if no
        // new connection gets through afterwards, it can still say what is
        // live.
        let fire_at = armed_at + job.confirm_timeout + Duration::from_secs(1);
        let now = Instant::now();
        if fire_at > now {
            std::thread::sleep(fire_at - now);
        }
        self.prove_rollback(Some(a), states, backups, why, note, over_a)
    }

    /// After a rollback: bounded retries of a NEW connection, then what the
    /// switch recorded and what is live; `rolled_back` only if the backup's
    /// rules are. When no new connection gets through, connection A (if it
    /// still answers) says what is live, for the message.
    fn prove_rollback(
        &mut self,
        a: Option<Box<dyn Connection>>,
        states: &[FamilyState],
        backups: &[String],
        why: String,
        note: String,
        over_a: bool,
    ) -> Result<(), Fail> {
        let job = self.job;
        let readback = Script::new(Kind::Readback)
            .set("rp_token", self.token.clone())
            .set("rp_families", Self::families(states));
        let deadline = Instant::now()
            + job.connect_timeout * 3
            + Duration::from_secs(u64::from(script::LOCK_WAIT_SECS) * 2 + 5);
        let mut last = String::new();
        while Instant::now() < deadline {
            let mut c = match self.connector.connect(&job.reach) {
                Ok(c) => c,
                Err(e) => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            };
            let out = match self.exec(c.as_mut(), &readback) {
                Ok(o) => o,
                Err(e) => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            };
            let switch = out.sections.text("switch").trim().to_string();
            if switch == "firing" {
                // Still restoring (waiting for the lock): ask again.
                last = "the dead-man switch is still restoring".into();
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            let how = if over_a {
                "restored over the original connection".to_string()
            } else {
                format!("restored by the dead-man switch ({note})")
            };
            return match self.backup_is_live(states, backups, &out.sections) {
                Ok(()) => {
                    self.rep.status = Status::RolledBack;
                    self.rep.step = Some(Step::Confirm);
                    self.rep.error = Some(format!("{why}; previous rules {how}; nothing persisted"));
                    Ok(())
                }
                Err(live) => Err((
                    Status::Failed,
                    Step::Rollback,
                    format!(
                        "{why}; the rollback is not proven ({note}; the switch recorded {}): {live}",
                        if switch.is_empty() { "nothing" } else { &switch }
                    ),
                )),
            };
        }
        // No new connection: the host is still cut off. Say what is live,
        // over A if it still answers.
        let over_old = a.and_then(|mut a| self.exec(a.as_mut(), &readback).ok());
        let live = match over_old {
            Some(out) => {
                let switch = out.sections.text("switch").trim().to_string();
                let live = match self.backup_is_live(states, backups, &out.sections) {
                    Ok(()) => "the backup's rules are live".to_string(),
                    Err(live) => live,
                };
                format!(
                    "; over the original connection: the switch recorded {}, {live}",
                    if switch.is_empty() {
                        "nothing"
                    } else {
                        &switch
                    }
                )
            }
            None => String::new(),
        };
        Err((
            Status::Failed,
            Step::Rollback,
            format!("{why}; rollback could not be confirmed ({note}): the host did not answer a new connection afterwards ({last}){live}"),
        ))
    }
}

/// The live rules of a family, as the facts step read them.
fn parse_live(facts: &Facts, family: Family) -> Result<Ruleset, Fail> {
    let save = save_text(facts, family).map_err(|e| (Status::Failed, Step::Facts, e))?;
    firewall::parse_save(&save, family).map_err(|e| {
        (
            Status::Failed,
            Step::Diff,
            format!("cannot parse {}-save output: {e}", family.cmd()),
        )
    })
}

fn save_text(facts: &Facts, family: Family) -> Result<String, String> {
    match family {
        Family::V4 => facts.save_v4.clone(),
        Family::V6 => facts.save_v6.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::{Allow, FirewallSpec, PortRange, Proto};
    use crate::remote::facts::OsFamily;
    use crate::remote::shell::Sections;
    use std::sync::{Arc, Mutex};

    #[test]
    fn os_family_paths_cover_the_persistence_table() {
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

    // ---- The engine's decisions, on a scripted transport ----------------
    // The lab tests drive real hosts; these pin the decision logic and the
    // protocol for outcomes a real host cannot be made to produce on
    // demand (a kernel that prints something else than was applied, a
    // connection that drops exactly between two steps).

    const BEFORE: &str =
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

    /// How the scripted host behaves.
    #[derive(Clone)]
    struct Host {
        /// What `iptables-save` prints after the apply.
        after: String,
        /// Connection number (1-based) that cannot be made.
        fail_connect: Option<usize>,
        /// (connection number, step name): the connection breaks when this step is sent.
        drop_at: Option<(usize, &'static str)>,
        restore_ok: bool,
        persist_ok: bool,
        /// The switch claimed the transaction before the confirmation.
        fired: bool,
    }

    /// Every step sent: (connection number, step name).
    type Log = Arc<Mutex<Vec<(usize, String)>>>;

    struct Scripted {
        host: Host,
        log: Log,
        connects: Mutex<usize>,
        /// What the host holds now: BEFORE, or the new rules.
        live: Arc<Mutex<String>>,
    }

    struct Conn {
        n: usize,
        host: Host,
        log: Log,
        live: Arc<Mutex<String>>,
    }

    fn sec(name: &str, body: &str) -> String {
        format!("\n@@rampart:N:{name}\n{body}")
    }

    /// An `iptables -L -n` listing with as many rows per chain as `save` has.
    fn listing(save: &str) -> String {
        let mut out = String::new();
        for (chain, policy) in [
            ("INPUT", "DROP"),
            ("FORWARD", "ACCEPT"),
            ("OUTPUT", "ACCEPT"),
        ] {
            out.push_str(&format!(
                "Chain {chain} (policy {policy})\ntarget     prot opt source               destination\n"
            ));
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

    impl Connection for Conn {
        fn run(&mut self, step: &str) -> Result<Output, ExecError> {
            let name = step
                .lines()
                .next()
                .and_then(|l| l.strip_prefix(script::STEP_HEADER))
                .unwrap_or("?")
                .to_string();
            self.log.lock().expect("log").push((self.n, name.clone()));
            if self.host.drop_at == Some((self.n, leak(&name))) {
                return Err(ExecError::Transport("scripted: connection reset".into()));
            }
            let mut live = self.live.lock().expect("live");
            let text = match name.as_str() {
                "facts" => [
                    sec("uid", "0\n"),
                    sec("ssh_connection", "203.0.113.7 40000 198.18.0.2 22\n"),
                    sec("os_release", "ID=debian\n"),
                    sec("iptables_v", "iptables v1.8.9 (nf_tables)\n"),
                    sec("has", "iptables-save\niptables-restore\n"),
                    sec("ipv6", "enabled\n"),
                    sec("init", "sysv\n"),
                    sec("save4", &format!("{}@@rc=0\n", *live)),
                    sec("loaders", "/etc/rc2.d/S01netfilter-persistent\n"),
                ]
                .concat(),
                "apply" => {
                    let backup = live.clone();
                    *live = self.host.after.clone();
                    [sec("result", "applied\n"), sec("armed", "setsid\n"), sec("backupv4", &backup)].concat()
                }
                "verify" => {
                    if self.host.fired {
                        *live = BEFORE.to_string();
                    }
                    [
                        sec("switch", if self.host.fired { "fired restored\n" } else { "armed\n" }),
                        sec("savev4", &live),
                        sec("rcsavev4", "0\n"),
                        sec("listv4", &listing(&live)),
                    ]
                    .concat()
                }
                "commit" => [
                    sec("disarm", "disarmed\n"),
                    sec("result", "ok\n"),
                    sec("persistv4", if self.host.persist_ok { "ok\n" } else { "failed: /etc/iptables/rules.v4.rampart-tmp does not read back as written (is the disk full?)\n" }),
                ]
                .concat(),
                "restore" => {
                    if self.host.restore_ok {
                        *live = BEFORE.to_string();
                    }
                    [
                        sec("result", if self.host.restore_ok { "restored\n" } else { "restore_failed\n" }),
                        sec("savev4", &live),
                    ]
                    .concat()
                }
                "readback" => [sec("switch", ""), sec("savev4", &live)].concat(),
                _ => String::new(),
            };
            Ok(Output {
                sections: Sections::parse(&text, "N"),
                text,
                status: 0,
            })
        }
        fn set_timeout(&mut self, _: Duration) {}
    }

    /// Step names are few and fixed: compare them as &'static str.
    fn leak(name: &str) -> &'static str {
        ["facts", "apply", "verify", "commit", "restore", "readback"]
            .into_iter()
            .find(|n| *n == name)
            .unwrap_or("?")
    }

    impl Connector for Scripted {
        fn connect(&self, _: &Reach) -> Result<Box<dyn Connection>, ConnectError> {
            let mut n = self.connects.lock().expect("connects");
            *n += 1;
            if self.host.fail_connect == Some(*n) {
                return Err(ConnectError::Handshake("scripted: no answer".into()));
            }
            Ok(Box::new(Conn {
                n: *n,
                host: self.host.clone(),
                log: Arc::clone(&self.log),
                live: Arc::clone(&self.live),
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
            predict: true,
            trace: false,
            confirm_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(200),
        }
    }

    fn desired_v4(job: &Job) -> String {
        firewall::render(&firewall::desired(&job.plan.firewall, Family::V4))
    }

    fn host(job: &Job) -> Host {
        Host {
            after: desired_v4(job),
            fail_connect: None,
            drop_at: None,
            restore_ok: true,
            persist_ok: true,
            fired: false,
        }
    }

    fn run_on(job: &Job, host: Host) -> (HostReport, Vec<(usize, String)>) {
        let log: Log = Arc::default();
        let c = Scripted {
            host,
            log: Arc::clone(&log),
            connects: Mutex::new(0),
            live: Arc::new(Mutex::new(BEFORE.to_string())),
        };
        let rep = run(&c, job, &|_| {});
        let log = log.lock().expect("log").clone();
        (rep, log)
    }

    fn steps(log: &[(usize, String)]) -> Vec<String> {
        log.iter().map(|(n, s)| format!("{n}:{s}")).collect()
    }

    #[test]
    fn one_shell_per_connection_two_for_an_apply() {
        let job = job();
        let (rep, log) = run_on(&job, host(&job));
        assert_eq!(rep.status, Status::Changed, "{rep:?}");
        assert_eq!(rep.persisted, vec!["/etc/iptables/rules.v4".to_string()]);
        assert_eq!(
            steps(&log),
            ["1:facts", "1:apply", "2:verify", "2:commit"],
            "A: facts + apply; B: verify + commit; persisted only after B"
        );
    }

    #[test]
    fn verify_mismatch_restores_and_fails_without_persisting() {
        let job = job();
        let mut h = host(&job);
        // The kernel shows one rule more than was applied.
        h.after = desired_v4(&job).replace(
            "COMMIT",
            "-A INPUT -p tcp -m tcp --dport 9999 -j ACCEPT\nCOMMIT",
        );
        let (rep, log) = run_on(&job, h);
        assert_eq!(rep.status, Status::Failed, "{rep:?}");
        assert_eq!(rep.step, Some(Step::Verify));
        let err = rep.error.unwrap_or_default();
        assert!(
            err.contains("verify mismatch")
                && err.contains("9999")
                && err.contains("previous rules restored"),
            "{err}"
        );
        assert_eq!(steps(&log), ["1:facts", "1:apply", "2:verify", "2:restore"]);
        assert!(rep.persisted.is_empty());
    }

    #[test]
    fn an_unproven_restore_says_so_and_never_claims_success() {
        let job = job();
        let mut h = host(&job);
        h.after = desired_v4(&job).replace("COMMIT", "-A INPUT -j DROP\nCOMMIT");
        h.restore_ok = false;
        let (rep, _) = run_on(&job, h);
        let err = rep.error.unwrap_or_default();
        assert!(
            err.contains("restoring the previous rules failed") && err.contains("stays armed"),
            "{err}"
        );
        assert!(!err.contains("previous rules restored"), "{err}");
    }

    #[test]
    fn failed_fresh_connection_restores_over_the_first_and_proves_it_over_a_third() {
        let job = job();
        let mut h = host(&job);
        h.fail_connect = Some(2);
        let (rep, log) = run_on(&job, h);
        assert_eq!(rep.status, Status::RolledBack, "{rep:?}");
        assert!(rep
            .error
            .unwrap_or_default()
            .contains("restored over the original connection"));
        assert_eq!(
            steps(&log),
            ["1:facts", "1:apply", "1:restore", "3:readback"]
        );
        assert!(rep.persisted.is_empty());
    }

    #[test]
    fn a_rollback_whose_rules_are_not_back_is_failed_and_names_what_is_live() {
        let job = job();
        let mut h = host(&job);
        h.fail_connect = Some(2);
        h.restore_ok = false;
        let (rep, _) = run_on(&job, h);
        assert_eq!(rep.status, Status::Failed, "{rep:?}");
        assert_eq!(rep.step, Some(Step::Rollback));
        let err = rep.error.unwrap_or_default();
        assert!(err.contains("the NEW rules are still live"), "{err}");
    }

    #[test]
    fn a_switch_that_fired_first_is_rolled_back_when_the_backup_is_live() {
        let job = job();
        let mut h = host(&job);
        h.fired = true;
        let (rep, log) = run_on(&job, h);
        assert_eq!(rep.status, Status::RolledBack, "{rep:?}");
        assert!(rep.error.unwrap_or_default().contains("fired before"));
        assert_eq!(steps(&log), ["1:facts", "1:apply", "2:verify"], "no commit");
    }

    #[test]
    fn a_full_disk_at_persist_is_failed_with_the_rules_confirmed() {
        let job = job();
        let mut h = host(&job);
        h.persist_ok = false;
        let (rep, _) = run_on(&job, h);
        assert_eq!(
            (rep.status, rep.step),
            (Status::Failed, Some(Step::Persist)),
            "{rep:?}"
        );
        let err = rep.error.unwrap_or_default();
        assert!(
            err.contains("live and confirmed but not persisted") && err.contains("disk full"),
            "{err}"
        );
    }

    #[test]
    fn a_connection_dropped_at_any_step_ends_the_host_safely() {
        let job = job();
        for (at, status, step) in [
            ((1, "facts"), Status::Unreachable, Step::Facts),
            ((1, "apply"), Status::Failed, Step::Apply),
            ((2, "verify"), Status::Failed, Step::Verify),
            ((2, "commit"), Status::Failed, Step::Persist),
        ] {
            let mut h = host(&job);
            h.drop_at = Some(at);
            let (rep, log) = run_on(&job, h);
            assert_eq!(
                (rep.status, rep.step),
                (status, Some(step)),
                "drop at {at:?}: {rep:?}"
            );
            assert!(rep.persisted.is_empty(), "drop at {at:?}");
            let last = log.last().map(|(_, s)| s.as_str());
            assert_eq!(last, Some(at.1), "nothing is sent after the drop at {at:?}");
            if at.1 != "facts" {
                assert!(
                    rep.error.unwrap_or_default().contains("dead-man switch"),
                    "drop at {at:?}: the message says what protects the host"
                );
            }
        }
    }

    #[test]
    fn a_predicted_lockout_fails_before_anything_is_sent() {
        let mut job = job();
        job.plan.firewall.allow[0].ports = PortRange { lo: 80, hi: 80 };
        let (rep, log) = run_on(&job, host(&job));
        assert_eq!(
            (rep.status, rep.step),
            (Status::Failed, Some(Step::Predict)),
            "{rep:?}"
        );
        assert_eq!(
            rep.error.as_deref(),
            Some("the new rules would drop NEW SSH from 203.0.113.7 at INPUT policy DROP: nothing applied")
        );
        assert_eq!(
            steps(&log),
            ["1:facts"],
            "no backup, no switch, no second connection"
        );
        job.predict = false;
        let (rep, log) = run_on(&job, host(&job));
        assert_eq!(rep.status, Status::Changed, "--no-predict applies: {rep:?}");
        assert_eq!(steps(&log)[1], "1:apply");
    }

    #[test]
    fn established_traffic_the_new_rules_drop_is_a_warning() {
        let mut job = job();
        // NEW SSH is accepted, but nothing lets connection A's packets back in.
        job.plan.firewall.baseline = false;
        job.plan.firewall.allow.clear();
        job.plan.firewall.rules = vec![firewall::Rule::parse(
            "-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -j ACCEPT",
        )
        .expect("rule")];
        let (rep, _) = run_on(&job, host(&job));
        assert!(
            rep.warnings
                .iter()
                .any(|w| w.contains("would drop the open SSH connection")
                    && w.contains("dead-man switch still protects")),
            "{rep:?}"
        );
    }

    #[test]
    fn an_audit_says_when_the_live_rules_would_lock_this_controller_out() {
        let mut job = job();
        job.check = true;
        let mut h = host(&job);
        h.after = String::new();
        let lock = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s 203.0.113.0/24 -j DROP\nCOMMIT\n";
        let log: Log = Arc::default();
        let c = Scripted {
            host: h,
            log: Arc::clone(&log),
            connects: Mutex::new(0),
            live: Arc::new(Mutex::new(lock.to_string())),
        };
        let rep = run(&c, &job, &|_| {});
        assert_eq!(rep.status, Status::Drift, "{rep:?}");
        assert!(
            rep.warnings.iter().any(|w| w.contains(
                "the live rules drop NEW SSH from 203.0.113.7 (this controller) at INPUT rule 1"
            )),
            "{rep:?}"
        );
    }

    #[test]
    fn check_mode_sends_only_the_facts_step() {
        let mut job = job();
        job.check = true;
        let (rep, log) = run_on(&job, host(&job));
        assert_eq!(rep.status, Status::Drift, "{rep:?}");
        assert_eq!(steps(&log), ["1:facts"], "one read-only step, nothing else");
    }
}
