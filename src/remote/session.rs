//! The SSH transport: connect, check the host key, authenticate, run steps.
//!
//! ssh2 (libssh2) is blocking, so every [`SshConnection`] lives on one
//! blocking thread for its whole life (the runner puts each host's
//! transaction on tokio's blocking pool). Every blocking call is bounded:
//! the TCP connect by `connect_timeout`, the handshake and authentication by
//! the same, and each read or write of a step by `exec_timeout` (libssh2's
//! session timeout).
//!
//! Speed (docs/design.md, "The remote protocol"): TCP_NODELAY (steps are
//! many small packets), the fastest secure algorithms libssh2 offers put
//! first, and ONE remote shell per connection: each remote session costs
//! the host's sshd a fork and a shell start, so the steps of a connection
//! are sent one after the other to the same `sh -s`, each ended by a
//! marker only this connection knows.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ssh2::{MethodType, Session};

use super::jump::JumpPool;
use super::knownhosts::{self, Detail, KnownHosts};
use super::reach::Reach;
use super::script;
use super::shell::{self, Sections};

/// Settings shared by every connection of a run.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    pub exec_timeout: Duration,
    pub accept_new_host_keys: bool,
}

/// Why a connection could not be made. The first three mean the host is
/// `unreachable`; the host key ones mean `failed` (docs/design.md, "Formats").
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("TCP connect to {addr} failed: {source}")]
    Tcp {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("SSH handshake failed: {0}")]
    Handshake(String),
    #[error("authentication as {user} failed ({tried})")]
    Auth { user: String, tried: String },
    #[error(
        "host key of {host} is not in {file} (use --accept-new-host-keys to trust it on first use)"
    )]
    HostKeyUnknown { host: String, file: String },
    #[error("HOST KEY CHANGED for {host}: the key presented ({key_type}) differs from {file}; refusing to run anything")]
    HostKeyChanged {
        host: String,
        key_type: String,
        file: String,
    },
    #[error("host key of {host} is marked @revoked in {file}")]
    HostKeyRevoked { host: String, file: String },
    #[error("host key of {host}: only a @cert-authority line of {file} covers this host; rampart does not check certificates, so nothing it could trust is recorded (add the host's own key; --accept-new-host-keys does not apply)")]
    HostKeyCertOnly { host: String, file: String },
    #[error("cannot record the new host key in {file}: {source}")]
    HostKeyRecord {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A key file libssh2 could not use, and that this process cannot
    /// open either for lack of a resource (file descriptors): local, not
    /// a refusal by the host.
    #[error("cannot open the key {file}: {source}")]
    KeyRead {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {file}: {source}")]
    KnownHostsRead {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A jump host in front of the host could not be used; `jump` names it
    /// (`bastion (192.0.2.7:22)`), `host_key` tells a trust problem.
    #[error("jump host {jump}: {message}")]
    Jump {
        jump: String,
        message: String,
        host_key: bool,
    },
}

impl ConnectError {
    /// True when the cause is on this machine, not on the way to the host
    /// or in its rules: no file descriptors or memory for a socket, no
    /// local address or route. Such a failure of the confirming
    /// connection is retried before anything is rolled back.
    pub fn is_local(&self) -> bool {
        let local = |e: &std::io::Error| {
            matches!(
                e.raw_os_error(),
                Some(
                    libc::EMFILE
                        | libc::ENFILE
                        | libc::ENOBUFS
                        | libc::ENOMEM
                        | libc::EADDRNOTAVAIL
                        | libc::ENETUNREACH
                )
            )
        };
        match self {
            ConnectError::Tcp { source, .. }
            | ConnectError::KeyRead { source, .. }
            | ConnectError::KnownHostsRead { source, .. }
            | ConnectError::HostKeyRecord { source, .. } => local(source),
            _ => false,
        }
    }

    /// True when this machine ran out of a resource (file descriptors,
    /// buffers, memory): the host may be fine.
    pub fn is_resource_shortage(&self) -> bool {
        match self {
            ConnectError::Tcp { source, .. }
            | ConnectError::KeyRead { source, .. }
            | ConnectError::KnownHostsRead { source, .. }
            | ConnectError::HostKeyRecord { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
            ),
            _ => false,
        }
    }

    /// True when the error is about trust (host key), not reachability.
    pub fn is_host_key(&self) -> bool {
        matches!(
            self,
            ConnectError::HostKeyUnknown { .. }
                | ConnectError::HostKeyChanged { .. }
                | ConnectError::HostKeyRevoked { .. }
                | ConnectError::HostKeyCertOnly { .. }
                | ConnectError::HostKeyRecord { .. }
                | ConnectError::KnownHostsRead { .. }
                | ConnectError::Jump { host_key: true, .. }
        )
    }
}

/// A step could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The connection broke or timed out: nothing is known of the step.
    #[error("{0}")]
    Transport(String),
    /// The host's shell ended before the step did (sudo refused, no `sh`,
    /// the shell was killed): what it printed, and its exit status.
    #[error("the remote shell ended (exit {}): {}", .0.status, .0.text.trim())]
    Ended(Output),
}

/// What a step printed (standard error joined with standard output), split
/// into its sections, and how it exited.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Everything printed, section markers included.
    pub text: String,
    pub sections: Sections,
    pub status: i32,
}

/// The engine's view of the transport: it never constructs connections
/// itself, so tests and other transports can stand in.
pub trait Connector: Send + Sync {
    fn connect(&self, reach: &Reach) -> Result<Box<dyn Connection>, ConnectError>;
}

/// One authenticated connection to a host, with at most one remote shell
/// (docs/design.md, "The remote protocol").
pub trait Connection: Send {
    /// Run one step (a rendered [`super::script::Script`]) in the
    /// connection's shell, as root; the shell starts with the first step.
    /// Returns once the step has ended, whatever its exit status.
    fn run(&mut self, step: &str) -> Result<Output, ExecError>;

    /// Bound every later blocking call on this connection.
    fn set_timeout(&mut self, timeout: Duration);
}

/// The real transport, on ssh2.
#[derive(Debug, Clone)]
pub struct SshConnector {
    pub options: ConnectOptions,
    /// Sessions to jump hosts, shared by every host behind them.
    jumps: Arc<JumpPool>,
    /// The known_hosts files, parsed once for every connection.
    known_hosts_cache: Arc<knownhosts::Cache>,
}

/// Connections per jump session when the runner does not say (`--forks
/// 50`: two per host in flight).
const DEFAULT_JUMP_CHANNELS: usize = 100;

/// Fast, secure algorithm preferences, tried first; libssh2 builds lacking
/// one of them fall back to libssh2's defaults for that slot.
const KEX_PREF: &str = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,diffie-hellman-group14-sha256,diffie-hellman-group16-sha512";
const CIPHER_PREF: &str = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr";
const MAC_PREF: &str = "hmac-sha2-256-etm@openssh.com,hmac-sha2-256,hmac-sha2-512";

/// Host key algorithms that can present a key of a known_hosts key type.
fn hostkey_algs_for(key_type: &str) -> &'static [&'static str] {
    match key_type {
        "ssh-ed25519" => &["ssh-ed25519"],
        "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
        "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
        "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
        "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        _ => &[],
    }
}

impl SshConnector {
    pub fn new(options: ConnectOptions) -> Self {
        SshConnector {
            options,
            jumps: Arc::new(JumpPool::new(DEFAULT_JUMP_CHANNELS)),
            known_hosts_cache: Arc::default(),
        }
    }

    /// Bound the connections each jump session carries at once.
    pub fn with_jump_channels(mut self, channels: usize) -> Self {
        self.jumps = Arc::new(JumpPool::new(channels));
        self
    }

    /// The bound on a host's TCP connect and handshake: its own (ssh_config
    /// `ConnectTimeout`) or the run's.
    pub(crate) fn connect_timeout(&self, t: &Reach) -> Duration {
        t.connect_timeout.unwrap_or(self.options.connect_timeout)
    }

    pub(crate) fn tcp(&self, t: &Reach) -> Result<TcpStream, ConnectError> {
        let addrs: Vec<SocketAddr> = (t.address.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|_| ConnectError::Resolve(t.address.clone()))?
            .collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.connect_timeout(t)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(ConnectError::Tcp {
            addr: format!("{}:{}", t.address, t.port),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        })
    }

    fn verify_host_key(
        &self,
        t: &Reach,
        sess: &Session,
        kh: &KnownHosts,
    ) -> Result<(), ConnectError> {
        let file = t.known_hosts.display().to_string();
        let Some((key, _)) = sess.host_key() else {
            return Err(ConnectError::Handshake(
                "server presented no host key".into(),
            ));
        };
        match kh.check_detailed(&t.address, t.port, key) {
            Detail::Known => Ok(()),
            Detail::Revoked => Err(ConnectError::HostKeyRevoked {
                host: t.name.clone(),
                file,
            }),
            Detail::CertAuthorityOnly => Err(ConnectError::HostKeyCertOnly {
                host: t.name.clone(),
                file,
            }),
            Detail::Changed => Err(ConnectError::HostKeyChanged {
                host: t.name.clone(),
                key_type: knownhosts::blob_key_type(key).unwrap_or_else(|| "?".into()),
                file,
            }),
            Detail::Unknown if self.options.accept_new_host_keys || t.accept_new_host_key => {
                knownhosts::append(&t.known_hosts, &t.address, t.port, key)
                    .map_err(|source| ConnectError::HostKeyRecord { file, source })
            }
            Detail::Unknown => Err(ConnectError::HostKeyUnknown {
                host: t.name.clone(),
                file,
            }),
        }
    }

    fn authenticate(&self, t: &Reach, sess: &Session) -> Result<(), ConnectError> {
        let mut tried: Vec<String> = Vec::new();
        if let Some(pw) = &t.password {
            tried.push("password".into());
            if sess.userauth_password(&t.user, pw.expose()).is_ok() && sess.authenticated() {
                return Ok(());
            }
        }
        let mut keys: Vec<PathBuf> = Vec::new();
        if let Some(k) = &t.identity_file {
            keys.push(k.clone());
        } else {
            if !t.identities_only && std::env::var_os("SSH_AUTH_SOCK").is_some() {
                tried.push("ssh-agent".into());
                if sess.userauth_agent(&t.user).is_ok() && sess.authenticated() {
                    return Ok(());
                }
            }
            if let Some(home) = std::env::var_os("HOME") {
                let home = PathBuf::from(home);
                keys.push(home.join(".ssh/id_ed25519"));
                keys.push(home.join(".ssh/id_rsa"));
            }
        }
        for k in keys {
            if !k.exists() {
                continue;
            }
            tried.push(format!("key {}", k.display()));
            if sess.userauth_pubkey_file(&t.user, None, &k, None).is_ok() && sess.authenticated() {
                return Ok(());
            }
            // libssh2 says "authentication failed" also when it could not
            // open the key file: if this process cannot open it either for
            // lack of file descriptors, the cause is here, not the host.
            if let Err(source) = std::fs::File::open(&k) {
                let e = ConnectError::KeyRead {
                    file: k.display().to_string(),
                    source,
                };
                if e.is_resource_shortage() {
                    return Err(e);
                }
            }
        }
        if tried.is_empty() {
            tried.push("no password, key or agent available".into());
        }
        Err(ConnectError::Auth {
            user: t.user.clone(),
            tried: tried.join(", "),
        })
    }

    /// The host's known_hosts files read as one (a key in any is known),
    /// each parsed once per run ([`knownhosts::Cache`]).
    fn known_hosts(&self, t: &Reach) -> Result<Arc<KnownHosts>, ConnectError> {
        let mut paths: Vec<&Path> = vec![&t.known_hosts];
        paths.extend(t.extra_known_hosts.iter().map(PathBuf::as_path));
        self.known_hosts_cache
            .load_all(&paths)
            .map_err(|(file, source)| ConnectError::KnownHostsRead {
                file: file.display().to_string(),
                source,
            })
    }

    /// Handshake, host key check and authentication over `stream`: a TCP
    /// connection, or a socket carried through jump hosts ([`JumpPool`]).
    /// The one way a session is made, for hosts and jump hosts alike;
    /// bounded by the host's connect timeout, left in blocking mode.
    pub(crate) fn open_session<S: AsRawFd + 'static>(
        &self,
        t: &Reach,
        stream: S,
    ) -> Result<Session, ConnectError> {
        let kh = self.known_hosts(t)?;
        let mut sess = Session::new().map_err(|e| ConnectError::Handshake(e.to_string()))?;
        let ms = u32::try_from(self.connect_timeout(t).as_millis()).unwrap_or(u32::MAX);
        sess.set_timeout(ms);
        sess.set_tcp_stream(stream);
        let _ = sess.method_pref(MethodType::Kex, KEX_PREF);
        for m in [MethodType::CryptCs, MethodType::CryptSc] {
            let _ = sess.method_pref(m, CIPHER_PREF);
        }
        for m in [MethodType::MacCs, MethodType::MacSc] {
            let _ = sess.method_pref(m, MAC_PREF);
        }
        // Ask for a key type we can check, so a known host never looks changed
        // merely because it offered another of its keys first.
        let known: Vec<&str> = kh
            .key_types(&t.address, t.port)
            .iter()
            .flat_map(|k| hostkey_algs_for(k).iter().copied())
            .collect();
        if !known.is_empty() {
            let _ = sess.method_pref(MethodType::HostKey, &known.join(","));
        }
        sess.handshake()
            .map_err(|e| ConnectError::Handshake(e.message().to_string()))?;
        self.verify_host_key(t, &sess, &kh)?;
        self.authenticate(t, &sess)?;
        Ok(sess)
    }
}

impl Connector for SshConnector {
    fn connect(&self, t: &Reach) -> Result<Box<dyn Connection>, ConnectError> {
        let sess = if t.jumps.is_empty() {
            self.open_session(t, self.tcp(t)?)?
        } else {
            // Through the jump hosts' shared sessions: a socket carried by
            // a direct-tcpip channel of the last one (see `jump`).
            self.open_session(t, self.jumps.stream(self, &t.jumps, t)?)?
        };
        let exec_ms = u32::try_from(self.options.exec_timeout.as_millis()).unwrap_or(u32::MAX);
        sess.set_timeout(exec_ms);
        Ok(Box::new(SshConnection {
            sess,
            become_: t.become_,
            shell: None,
            nonce: nonce(),
            pending: Vec::new(),
        }))
    }
}

/// A random marker for one connection's sections: hex of 16 bytes from
/// the kernel's random source (or, failing that, of the time and pid:
/// unpredictable enough for a host that does not know it is being read).
fn nonce() -> String {
    use std::io::Read as _;
    let mut raw = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        raw[..16].copy_from_slice(&(t ^ u128::from(std::process::id())).to_le_bytes());
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// An authenticated ssh2 session and its one shell (opened by the first
/// step). Each step is written to the shell's stdin and read back up to
/// its end marker; the shell reads the next step only when it is sent.
pub struct SshConnection {
    sess: Session,
    become_: bool,
    shell: Option<ssh2::Channel>,
    nonce: String,
    /// Output read past the end of the last step (none expected).
    pending: Vec<u8>,
}

impl SshConnection {
    fn open_shell(&mut self) -> Result<(), ExecError> {
        let err =
            |what: &str, e: &dyn std::fmt::Display| ExecError::Transport(format!("{what}: {e}"));
        let mut ch = self
            .sess
            .channel_session()
            .map_err(|e| err("open channel", &e))?;
        // sudo and the shell's own complaints come before `exec 2>&1`.
        ch.handle_extended_data(ssh2::ExtendedData::Merge)
            .map_err(|e| err("merge stderr", &e))?;
        ch.exec(shell::remote_command(self.become_))
            .map_err(|e| err("exec", &e))?;
        ch.write_all(script::preamble(&self.nonce).as_bytes())
            .map_err(|e| err("send", &e))?;
        self.shell = Some(ch);
        Ok(())
    }

    /// The shell ended before the step did: what it printed, its status.
    fn ended(&mut self, text: String) -> ExecError {
        let status = match self.shell.as_mut() {
            Some(ch) => {
                let _ = ch.wait_close();
                ch.exit_status().unwrap_or(-1)
            }
            None => -1,
        };
        self.shell = None;
        let sections = Sections::parse(&text, &self.nonce);
        ExecError::Ended(Output {
            text,
            sections,
            status,
        })
    }
}

impl Connection for SshConnection {
    fn run(&mut self, step: &str) -> Result<Output, ExecError> {
        if self.shell.is_none() {
            self.open_shell()?;
        }
        let end = format!("\n@@rampart:{}:@end ", self.nonce);
        let Some(ch) = self.shell.as_mut() else {
            return Err(ExecError::Transport("no shell".into()));
        };
        let send = format!("{step}printf '\\n@@rampart:%s:@end %s\\n' \"$rp_nonce\" \"$?\"\n");
        ch.write_all(send.as_bytes())
            .and_then(|()| ch.flush())
            .map_err(|e| ExecError::Transport(format!("send step: {e}")))?;
        let mut buf = std::mem::take(&mut self.pending);
        let mut chunk = [0u8; 16384];
        // Where the end marker may start that was not searched yet: each
        // byte is searched once, however the output arrives.
        let mut searched = 0usize;
        loop {
            if let Some(at) = find(&buf[searched..], end.as_bytes()).map(|i| i + searched) {
                let rest = &buf[at + end.len()..];
                if let Some(nl) = rest.iter().position(|b| *b == b'\n') {
                    let status = String::from_utf8_lossy(&rest[..nl])
                        .trim()
                        .parse()
                        .unwrap_or(-1);
                    self.pending = rest[nl + 1..].to_vec();
                    let text = String::from_utf8_lossy(&buf[..at]).into_owned();
                    let sections = Sections::parse(&text, &self.nonce);
                    return Ok(Output {
                        text,
                        sections,
                        status,
                    });
                }
            } else {
                searched = buf.len().saturating_sub(end.len());
            }
            // A step prints a few hundred KiB at most (iptables-save of a
            // large host): a host that streams without end is cut off.
            if buf.len() > MAX_STEP_OUTPUT {
                self.shell = None;
                return Err(ExecError::Transport(format!(
                    "the host printed more than {} MiB for one step",
                    MAX_STEP_OUTPUT >> 20
                )));
            }
            let Some(ch) = self.shell.as_mut() else {
                return Err(ExecError::Transport("no shell".into()));
            };
            match ch.read(&mut chunk) {
                Ok(0) => {
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    return Err(self.ended(text));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    self.shell = None;
                    return Err(ExecError::Transport(format!("read output: {e}")));
                }
            }
        }
    }

    fn set_timeout(&mut self, timeout: Duration) {
        self.sess.set_timeout(Self::timeout_ms(timeout));
    }
}

/// The most a step's output may be before the connection is dropped.
const MAX_STEP_OUTPUT: usize = 64 << 20;

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl SshConnection {
    fn timeout_ms(d: Duration) -> u32 {
        u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
    }
}

impl Drop for SshConnection {
    fn drop(&mut self) {
        // End of input ends the shell: it runs nothing it has not received.
        if let Some(mut ch) = self.shell.take() {
            let _ = ch.send_eof();
            let _ = ch.close();
        }
        let _ = self.sess.disconnect(None, "rampart done", None);
    }
}
