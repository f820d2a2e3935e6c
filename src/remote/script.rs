//! The scripts rampart runs on hosts, and the one step that gives them
//! their values.
//!
//! Each script is a POSIX sh file under `src/remote/scripts/`, compiled in
//! with `include_str!`, readable and checked (shellcheck, and run under
//! dash, bash --posix and busybox sh by the tests) as what it is: shell.
//! A script never has a value pasted into its text. Its parameters are
//! shell variables, assigned before the script's text by [`Script::render`]
//! with every value single-quoted by [`quote`]: the only place where a
//! value from an inventory, a playbook or a host meets shell text.
//!
//! Every step runs in a subshell `( ... ) </dev/null` of the connection's
//! one shell (docs/design.md, "The remote protocol"): its variables and
//! `exit` stay inside the step, nothing it runs can read the next steps
//! from the shell's standard input, and the shell runs the step only once
//! its closing parenthesis has arrived, so a controller that dies halfway
//! through sending a step runs nothing of it.

use super::shell::quote;

/// The shared functions, sent once per connection (see [`preamble`]).
pub const LIB: &str = include_str!("scripts/lib.sh");

/// Where rampart keeps its state on a host (docs/design.md, "State files
/// on the host").
pub const STATE_DIR: &str = "/var/lib/rampart";

/// The PATH every script runs with: sudo's secure_path and non-root logins
/// may lack the sbin directories where iptables lives.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Seconds an iptables tool waits for the xtables lock another program
/// holds (fail2ban, Docker, kube-proxy hold it routinely), in total.
pub const LOCK_WAIT_SECS: u32 = 10;

/// One of the scripts of `src/remote/scripts/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The shared functions (`lib.sh`); its parameters are [`lib_vars`].
    Lib,
    Facts,
    Apply,
    Switch,
    Verify,
    Commit,
    Restore,
    Readback,
    Canon,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Lib,
        Kind::Facts,
        Kind::Apply,
        Kind::Switch,
        Kind::Verify,
        Kind::Commit,
        Kind::Restore,
        Kind::Readback,
        Kind::Canon,
    ];

    /// The file's name, which is also how a step names itself in its first line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lib => "lib",
            Kind::Facts => "facts",
            Kind::Apply => "apply",
            Kind::Switch => "switch",
            Kind::Verify => "verify",
            Kind::Commit => "commit",
            Kind::Restore => "restore",
            Kind::Readback => "readback",
            Kind::Canon => "canon",
        }
    }

    /// The script's text.
    pub fn body(self) -> &'static str {
        match self {
            Kind::Lib => LIB,
            Kind::Facts => include_str!("scripts/facts.sh"),
            Kind::Apply => include_str!("scripts/apply.sh"),
            Kind::Switch => include_str!("scripts/switch.sh"),
            Kind::Verify => include_str!("scripts/verify.sh"),
            Kind::Commit => include_str!("scripts/commit.sh"),
            Kind::Restore => include_str!("scripts/restore.sh"),
            Kind::Readback => include_str!("scripts/readback.sh"),
            Kind::Canon => include_str!("scripts/canon.sh"),
        }
    }
}

/// A script with its parameters.
#[derive(Debug, Clone)]
pub struct Script {
    kind: Kind,
    vars: Vec<(&'static str, String)>,
}

/// The first line of every rendered step: names the step (for people
/// reading `-vv` output, and for the scripted transport of the tests).
pub const STEP_HEADER: &str = "# rampart step: ";

impl Script {
    /// A script whose state dir parameter (`rp_state`) is [`STATE_DIR`].
    pub fn new(kind: Kind) -> Script {
        Script {
            kind,
            vars: vec![("rp_state", STATE_DIR.to_string())],
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Set parameter `name` (a shell variable name of the script) to
    /// `value`, replacing an earlier value.
    pub fn set(mut self, name: &'static str, value: impl Into<String>) -> Script {
        debug_assert!(
            name.starts_with("rp_")
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "parameter names are rp_ shell identifiers: {name}"
        );
        let value = value.into();
        match self.vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
        self
    }

    /// The value of a parameter, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters as shell assignments, one per line, values quoted.
    fn assignments(&self) -> String {
        let mut s = String::new();
        for (name, value) in &self.vars {
            s.push_str(name);
            s.push('=');
            s.push_str(&quote(value));
            s.push('\n');
        }
        s
    }

    /// The step as sent to a connection's shell: a subshell reading
    /// nothing from the shell's standard input.
    pub fn render(&self) -> String {
        let body = self.kind.body();
        let mut s = String::with_capacity(body.len() + 256);
        s.push_str(STEP_HEADER);
        s.push_str(self.kind.name());
        s.push_str("\n(\n");
        s.push_str(&self.assignments());
        s.push_str(body);
        if !body.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(") </dev/null\n");
        s
    }

    /// The script as a file of its own (the dead-man switch runs apart from
    /// any connection): its parameters, the shared functions with theirs
    /// (`lib_vars`), then its text.
    pub fn standalone(&self, lib_vars: &Script) -> String {
        let mut s = String::from("#!/bin/sh\n");
        s.push_str(STEP_HEADER);
        s.push_str(self.kind.name());
        s.push('\n');
        s.push_str(&lib_vars.assignments());
        s.push_str(&self.assignments());
        s.push_str(LIB);
        s.push_str(self.kind.body());
        s
    }
}

/// The parameters of the shared functions themselves (see `lib.sh`).
pub fn lib_vars(nonce: &str) -> Script {
    Script::new(Kind::Lib)
        .set("rp_nonce", nonce)
        .set("rp_path", PATH)
        .set("rp_lock_wait", LOCK_WAIT_SECS.to_string())
        .set("rp_preserve", "")
        .set("rp_keep", "")
        .set("rp_systemd", "/run/systemd/system")
}

/// What a connection's shell runs first: standard error joins standard
/// output (one stream to read, in order), the command line's argument (the
/// login shell's `$SSH_CONNECTION`) is kept, and the shared functions are
/// defined with their parameters.
pub fn preamble(nonce: &str) -> String {
    preamble_with(&lib_vars(nonce))
}

/// [`preamble`] with the shared functions' parameters given (the tests
/// that run the scripts under several shells point `rp_path` at stubs).
pub fn preamble_with(lib: &Script) -> String {
    let mut s = String::from("exec 2>&1\nrp_ssh=${1-}\n");
    s.push_str(&lib.assignments());
    s.push_str(LIB);
    s
}

/// A newline-separated list, for list parameters (`rp_files`, `rp_keep`).
pub fn lines<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut s = String::new();
    for i in items {
        s.push_str(i.as_ref());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_never_pasted() {
        let s = Script::new(Kind::Verify)
            .set("rp_token", "$(reboot)'; rm -rf / #")
            .render();
        assert!(s.starts_with("# rampart step: verify\n(\n"), "{s}");
        assert!(s.contains("rp_token='$(reboot)'\\''; rm -rf / #'\n"), "{s}");
        assert!(s.ends_with(") </dev/null\n"), "{s}");
    }

    #[test]
    fn a_later_value_replaces_an_earlier_one() {
        let s = Script::new(Kind::Verify)
            .set("rp_state", "/tmp/x")
            .set("rp_token", "a");
        assert_eq!(s.get("rp_state"), Some("/tmp/x"));
        assert_eq!(s.render().matches("rp_state=").count(), 1);
    }

    #[test]
    fn multi_line_values_survive_quoting() {
        let text =
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -m comment --comment \"it's\" -j ACCEPT\nCOMMIT";
        let s = Script::new(Kind::Apply).set("rp_desired_v4", text).render();
        assert!(s.contains(&quote(text)), "{s}");
    }

    #[test]
    fn the_canon_step_prints_the_marker_the_pairing_looks_for() {
        assert!(Kind::Canon
            .body()
            .contains(&format!("echo {}", crate::firewall::HOST_CANON_MARKER)));
    }

    #[test]
    fn every_script_says_what_it_is_and_is_posix_sh() {
        for k in Kind::ALL {
            let body = k.body();
            assert!(
                body.starts_with(&format!("# {}.sh: ", k.name())),
                "{} starts with its name",
                k.name()
            );
            assert!(body.contains("# shellcheck shell=sh"), "{}", k.name());
        }
    }
}
