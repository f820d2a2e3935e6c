//! How to reach one host: the one description of a host's connection
//! settings. The inventory layer produces it (defaults, group vars, host
//! vars and paths all resolved, whatever format the host came from); the
//! transport consumes it as is. Nothing copies it field by field in between,
//! so a new way to reach hosts (an ssh_config key, a jump host) is added in
//! one place.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Everything needed to open an SSH connection to one host and run scripts
/// there as root. `Default` is a blank for builders and tests to fill in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reach {
    /// The inventory name: what reports and error messages call the host.
    pub name: String,
    /// IP address or DNS name to connect to.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// A private key to offer; `None`: ssh-agent, then the default keys.
    pub identity_file: Option<PathBuf>,
    /// Host keys are always checked against this file; a key trusted on
    /// first use is recorded here.
    pub known_hosts: PathBuf,
    /// More known_hosts files, only read (ssh_config's `UserKnownHostsFile`
    /// may name several): a key listed in any file is known.
    pub extra_known_hosts: Vec<PathBuf>,
    /// Trust and record a key not yet known (ssh_config's
    /// `StrictHostKeyChecking accept-new`); a changed key still fails.
    pub accept_new_host_key: bool,
    /// Never ask the ssh-agent: only `identity_file`, else the default key
    /// files (ssh_config's `IdentitiesOnly`).
    pub identities_only: bool,
    /// Bound on this host's TCP connect and handshake (ssh_config's
    /// `ConnectTimeout`); `None`: the run's `--connect-timeout`.
    pub connect_timeout: Option<Duration>,
    /// Jump hosts in order: the first is reached directly, each next one
    /// through the ones before it, and this host through all of them. Their
    /// own `jumps` are empty (the chain is already flat).
    pub jumps: Vec<Reach>,
    /// Run scripts through `sudo -n` (the login user is not root).
    pub become_: bool,
    /// Name of the environment variable that holds the SSH password.
    pub password_env: Option<String>,
    /// The password itself, once the app layer has read it (never from a
    /// file: from `password_env` or `--ask-pass`).
    pub password: Option<Password>,
}

impl Reach {
    /// `user@address:port` (IPv6 in brackets), for messages.
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("{}@[{}]:{}", self.user, self.address, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.address, self.port)
        }
    }
}

/// A secret that never shows itself in `Debug` output, logs or reports.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: String) -> Password {
        Password(secret)
    }

    /// The secret, for the one place that hands it to the SSH library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let r = Reach {
            name: "web1".into(),
            address: "192.0.2.1".into(),
            port: 22,
            user: "root".into(),
            identity_file: None,
            known_hosts: PathBuf::from("/dev/null"),
            become_: false,
            password_env: Some("PW".into()),
            password: Some(Password::new("hunter2-secret".into())),
            ..Reach::default()
        };
        let shown = format!("{r:?} {r:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
