//! How to reach one host: the one description of a host's connection
//! settings. The inventory layer produces it (defaults, group vars, host
//! vars and paths all resolved, whatever format the host came from); the
//! transport consumes it as is. Nothing copies it field by field in between,
//! so a new way to reach hosts (an ssh_config key, a jump host) is added in
//! one place.

use std::fmt;
use std::path::PathBuf;

/// Everything needed to open an SSH connection to one host and run scripts
/// there as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The inventory name: what reports and error messages call the host.
    pub name: String,
    /// IP address or DNS name to connect to.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// A private key to offer; `None`: ssh-agent, then the default keys.
    pub identity_file: Option<PathBuf>,
    /// Host keys are always checked against this file.
    pub known_hosts: PathBuf,
    /// Run scripts through `sudo -n` (the login user is not root).
    pub become_: bool,
    /// Name of the environment variable that holds the SSH password.
    pub password_env: Option<String>,
    /// The password itself, once the app layer has read it (never from a
    /// file: from `password_env` or `--ask-pass`).
    pub password: Option<Password>,
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
        };
        let shown = format!("{r:?} {r:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
