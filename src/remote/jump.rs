//! Jump hosts: reaching a host through one or more other hosts, as
//! `ssh -J` does, with ssh2's direct-tcpip channels.
//!
//! How: libssh2 runs a session over a file descriptor, so a host behind a
//! jump gets one end of a local socket pair ([`UnixStream::pair`]); the other
//! end is pumped to and from a direct-tcpip channel of the jump host's
//! session. The host's own session (handshake, host key, authentication,
//! scripts) is then exactly that of a directly reached host: the jump only
//! carries bytes, and the host key of the host behind it is checked as
//! usual, end to end.
//!
//! One session per jump host (keyed by the whole chain in front of it and
//! its own endpoint, user, key and known_hosts) is shared by every host
//! behind it: opened on first use, its host key checked like any host's
//! (its own known_hosts; `accept-new` and `--accept-new-host-keys` apply).
//! libssh2 sessions are not thread-safe, so ONE thread per jump session
//! owns it in non-blocking mode and multiplexes all its channels: it polls
//! the session's socket, a wake-up socket for new requests, and the local
//! end of every channel's socket pair, with bounded buffers (64 KiB each
//! way per channel). A multi-hop chain `a,b` is the same thing twice: a's
//! session carries the TCP of b's session, whose session carries the host's.
//!
//! Bounds, so that nothing waits forever:
//! - opening a jump session: the jump's connect timeout for TCP and for
//!   the handshake (like any host);
//! - opening a channel: the target's connect timeout. libssh2 opens one
//!   channel at a time per session, and the jump's sshd may try to reach a
//!   dead (or locked out) target for minutes. A session whose open has been
//!   pending for [`STALL`] takes no new request: those go to another session
//!   to the same jump, opened then (at most [`MAX_SESSIONS`] per jump), and
//!   a request goes to the session with the fewest requests in flight, so
//!   hosts that cannot be reached (a lockout's confirmations) hold up the
//!   others behind the jump by half a second at most each; the stalled
//!   session keeps carrying its connections and serves again once its open
//!   resolves;
//! - channels per session: at most `channels` (two per host in flight: the
//!   runner passes 2 x `--forks`), more requests wait for a free one until
//!   their own deadline;
//! - one poll wait: [`POLL_STEP`] at most, so deadlines are checked.
//!
//! Errors name the jump: `jump host bastion (192.0.2.7:22): TCP connect to
//! 192.0.2.7:22 failed: ...`. When several hosts wait for the same jump
//! session and opening it fails, they all get that one failure instead of
//! each trying again; a later request (a rollback's reconnection, say)
//! tries afresh.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ssh2::{Channel, ErrorCode, Session};

use super::reach::Reach;
use super::session::{ConnectError, SshConnector};

/// Bytes buffered per channel and direction.
const BUF_CAP: usize = 64 * 1024;
/// A channel open pending this long stalls its session (see the module
/// docs): a healthy open takes one round trip and the jump's own TCP
/// connect, so this is long for a jump that is merely busy, and short
/// against a connect timeout (a request may wait behind a few stalls).
const STALL: Duration = Duration::from_millis(500);
/// Sessions to one jump host at most (only stalls make more than one).
const MAX_SESSIONS: usize = 16;
/// Longest single wait of a pump thread.
const POLL_STEP: Duration = Duration::from_millis(100);
/// How long a channel whose target side ended may wait for the jump's EOF.
const LINGER: Duration = Duration::from_secs(10);
/// libssh2's "would block".
const LIBSSH2_EAGAIN: i32 = -37;
/// libssh2 errors that mean the session's own connection is gone.
const SESSION_GONE: [i32; 5] = [
    -7,  // LIBSSH2_ERROR_SOCKET_SEND
    -13, // LIBSSH2_ERROR_SOCKET_DISCONNECT
    -43, // LIBSSH2_ERROR_SOCKET_RECV
    -30, // LIBSSH2_ERROR_SOCKET_TIMEOUT
    -9,  // LIBSSH2_ERROR_TIMEOUT
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How a jump host is named in messages: `bastion (192.0.2.7:22)`.
fn label(r: &Reach) -> String {
    let ep = if r.address.contains(':') {
        format!("[{}]:{}", r.address, r.port)
    } else {
        format!("{}:{}", r.address, r.port)
    };
    if r.name == r.address {
        ep
    } else {
        format!("{} ({ep})", r.name)
    }
}

/// What identifies a jump session: every hop up to and including this one.
fn key(chain: &[Reach]) -> String {
    chain
        .iter()
        .map(|r| {
            format!(
                "{}|{:?}|{}|{}",
                r.endpoint(),
                r.identity_file,
                r.known_hosts.display(),
                r.identities_only
            )
        })
        .collect::<Vec<_>>()
        .join(" > ")
}

/// A failure to open a jump session, shareable between the hosts waiting
/// for it.
#[derive(Debug, Clone)]
struct Failure {
    jump: String,
    message: String,
    host_key: bool,
}

impl Failure {
    fn of(jump: &Reach, e: ConnectError) -> Failure {
        match e {
            // Already about an earlier hop: keep its name.
            ConnectError::Jump {
                jump,
                message,
                host_key,
            } => Failure {
                jump,
                message,
                host_key,
            },
            e => Failure {
                jump: label(jump),
                host_key: e.is_host_key(),
                message: e.to_string(),
            },
        }
    }

    fn error(&self) -> ConnectError {
        ConnectError::Jump {
            jump: self.jump.clone(),
            message: self.message.clone(),
            host_key: self.host_key,
        }
    }
}

/// The sessions to one jump host, and the last failure to open one.
#[derive(Default)]
struct Slot {
    sessions: Vec<Arc<JumpSession>>,
    failed: Option<(Instant, Failure)>,
}

/// The sessions to jump hosts of one run. The connector that makes them
/// (TCP, handshake, host key, authentication) is passed in on each call,
/// so that the pool can belong to that connector.
pub struct JumpPool {
    channels: usize,
    slots: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
}

impl std::fmt::Debug for JumpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JumpPool")
            .field("channels", &self.channels)
            .field("sessions", &lock(&self.slots).len())
            .finish()
    }
}

impl JumpPool {
    pub fn new(channels: usize) -> JumpPool {
        JumpPool {
            channels: channels.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A socket connected to `target` through `chain` (not empty).
    pub fn stream(
        &self,
        via: &SshConnector,
        chain: &[Reach],
        target: &Reach,
    ) -> Result<UnixStream, ConnectError> {
        self.stream_to(
            via,
            chain,
            &target.address,
            target.port,
            via.connect_timeout(target),
        )
    }

    fn stream_to(
        &self,
        via: &SshConnector,
        chain: &[Reach],
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<UnixStream, ConnectError> {
        let Some(last) = chain.last() else {
            return Err(ConnectError::Handshake("empty jump chain".into()));
        };
        let addr = || {
            if host.contains(':') {
                format!("[{host}]:{port} (via jump host {})", label(last))
            } else {
                format!("{host}:{port} (via jump host {})", label(last))
            }
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnectError::Tcp {
                    addr: addr(),
                    source: std::io::Error::other(format!(
                        "timed out after {}s: every session to the jump host is busy opening a connection",
                        timeout.as_secs()
                    )),
                });
            }
            let js = self.session(via, chain)?;
            match js.open(host, port, left) {
                Ok(s) => return Ok(s),
                // Stalled or ended meanwhile: another session, or a new one.
                Err(OpenError::Busy) => {
                    if !js.accepting() {
                        // Every session is stalled and no more may be
                        // opened: wait for one to resolve (bounded above).
                        std::thread::sleep(Duration::from_millis(50).min(left));
                    }
                }
                Err(OpenError::Failed(msg)) => {
                    return Err(ConnectError::Tcp {
                        addr: addr(),
                        source: std::io::Error::other(msg),
                    })
                }
            }
        }
    }

    /// The shared session for the last hop of `chain`: one that takes
    /// requests, else a new one (the first, or one more beside stalled
    /// ones), else a stalled one to wait on.
    fn session(
        &self,
        via: &SshConnector,
        chain: &[Reach],
    ) -> Result<Arc<JumpSession>, ConnectError> {
        let slot = Arc::clone(
            lock(&self.slots)
                .entry(key(chain))
                .or_insert_with(|| Arc::new(Mutex::new(Slot::default()))),
        );
        let asked = Instant::now();
        // Held while opening: the other hosts behind this jump wait for
        // this one attempt (bounded by the jump's timeouts).
        let mut st = lock(&slot);
        st.sessions.retain(|s| s.alive());
        let least_busy = st
            .sessions
            .iter()
            .filter(|s| s.accepting())
            .min_by_key(|s| s.in_flight.load(Ordering::SeqCst));
        if let Some(s) = least_busy {
            return Ok(Arc::clone(s));
        }
        if let Some((at, failure)) = &st.failed {
            if *at >= asked {
                return Err(failure.error());
            }
        }
        if st.sessions.len() >= MAX_SESSIONS {
            if let Some(s) = st.sessions.first() {
                return Ok(Arc::clone(s));
            }
        }
        match self.open(via, chain) {
            Ok(s) => {
                let s = Arc::new(s);
                st.sessions.push(Arc::clone(&s));
                st.failed = None;
                Ok(s)
            }
            Err(failure) => {
                st.failed = Some((Instant::now(), failure.clone()));
                Err(failure.error())
            }
        }
    }

    fn open(&self, via: &SshConnector, chain: &[Reach]) -> Result<JumpSession, Failure> {
        let Some((hop, before)) = chain.split_last() else {
            return Err(Failure {
                jump: "-".into(),
                message: "empty jump chain".into(),
                host_key: false,
            });
        };
        let fail = |e| Failure::of(hop, e);
        let (sess, fd) = if before.is_empty() {
            let tcp = via.tcp(hop).map_err(fail)?;
            let fd = tcp.as_raw_fd();
            (via.open_session(hop, tcp).map_err(fail)?, fd)
        } else {
            let timeout = via.connect_timeout(hop);
            let sock = self
                .stream_to(via, before, &hop.address, hop.port, timeout)
                .map_err(fail)?;
            let fd = sock.as_raw_fd();
            (via.open_session(hop, sock).map_err(fail)?, fd)
        };
        JumpSession::start(sess, fd, label(hop), self.channels).map_err(|e| Failure {
            jump: label(hop),
            message: format!("cannot start its session: {e}"),
            host_key: false,
        })
    }
}

enum OpenError {
    /// This session cannot take the request now (its one channel open is
    /// stalled, or it ended): use another.
    Busy,
    Failed(String),
}

struct Request {
    host: String,
    port: u16,
    deadline: Instant,
    reply: mpsc::SyncSender<Result<UnixStream, OpenError>>,
}

/// A handle on a jump session's pump thread.
struct JumpSession {
    requests: mpsc::Sender<Request>,
    wake: UnixStream,
    alive: Arc<AtomicBool>,
    /// Ended, or ending: takes no request any more.
    retired: Arc<AtomicBool>,
    /// Its channel open is pending for longer than [`STALL`].
    stalled: Arc<AtomicBool>,
    /// Requests sent and not answered yet.
    in_flight: AtomicUsize,
}

impl JumpSession {
    fn start(sess: Session, fd: RawFd, label: String, max: usize) -> std::io::Result<JumpSession> {
        let (tx, rx) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        sess.set_blocking(false);
        let alive = Arc::new(AtomicBool::new(true));
        let retired = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicBool::new(false));
        let mut pump = Pump {
            sess,
            fd,
            requests: rx,
            wake: wake_rx,
            queue: VecDeque::new(),
            opening: None,
            pipes: Vec::new(),
            max,
            retired: Arc::clone(&retired),
            stalled: Arc::clone(&stalled),
            no_more_requests: false,
            broken: false,
        };
        let a = Arc::clone(&alive);
        std::thread::Builder::new()
            .name(format!("jump {label}"))
            .spawn(move || {
                pump.run();
                a.store(false, Ordering::SeqCst);
            })?;
        Ok(JumpSession {
            requests: tx,
            wake,
            alive,
            retired,
            stalled,
            in_flight: AtomicUsize::new(0),
        })
    }

    fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.retired.load(Ordering::SeqCst)
    }

    /// Takes a request now.
    fn accepting(&self) -> bool {
        self.alive() && !self.stalled.load(Ordering::SeqCst)
    }

    /// A socket to `host:port` through this session, within `timeout`.
    fn open(&self, host: &str, port: u16, timeout: Duration) -> Result<UnixStream, OpenError> {
        struct InFlight<'a>(&'a AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _counted = InFlight(&self.in_flight);
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(Request {
                host: host.to_string(),
                port,
                deadline: Instant::now() + timeout,
                reply,
            })
            .map_err(|_| OpenError::Busy)?;
        let _ = (&self.wake).write(&[1]);
        // The pump answers by the deadline; the margin only covers a pump
        // that died without answering (its end of the channel drops).
        match answer.recv_timeout(timeout + Duration::from_secs(2)) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(OpenError::Busy),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(OpenError::Failed(format!(
                "no answer from the jump session within {}s",
                timeout.as_secs()
            ))),
        }
    }
}

/// One channel and its local socket.
struct Pipe {
    ch: Channel,
    sock: UnixStream,
    to_remote: Vec<u8>,
    to_local: Vec<u8>,
    sock_eof: bool,
    eof_sent: bool,
    eof_at: Option<Instant>,
    ch_eof: bool,
    sock_shut: bool,
    /// Done carrying bytes: the channel is being closed.
    closing: bool,
    closing_since: Option<Instant>,
}

/// What one pass over a pipe did.
#[derive(Default)]
struct Pass {
    progress: bool,
    session_gone: bool,
}

fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(LIBSSH2_EAGAIN)
}

impl Pipe {
    fn new(ch: Channel, sock: UnixStream) -> Pipe {
        Pipe {
            ch,
            sock,
            to_remote: Vec::new(),
            to_local: Vec::new(),
            sock_eof: false,
            eof_sent: false,
            eof_at: None,
            ch_eof: false,
            sock_shut: false,
            closing: false,
            closing_since: None,
        }
    }

    /// A channel that is not wanted any more (its requester gave up).
    fn unwanted(ch: Channel) -> Option<Pipe> {
        let (sock, _) = UnixStream::pair().ok()?;
        let mut p = Pipe::new(ch, sock);
        p.closing = true;
        Some(p)
    }

    fn fail(&mut self, sess: &Session, pass: &mut Pass) {
        self.closing = true;
        pass.progress = true;
        if let Some(e) = ssh2::Error::last_session_error(sess) {
            if let ErrorCode::Session(c) = e.code() {
                pass.session_gone |= SESSION_GONE.contains(&c);
            }
        }
    }

    /// Move what can be moved without blocking.
    fn pump(&mut self, sess: &Session, buf: &mut [u8]) -> Pass {
        let mut pass = Pass::default();
        if self.closing {
            return pass;
        }
        // Channel -> local socket.
        if !self.ch_eof && self.to_local.len() < BUF_CAP {
            let room = (BUF_CAP - self.to_local.len()).min(buf.len());
            match self.ch.read(&mut buf[..room]) {
                Ok(0) => {
                    if self.ch.eof() {
                        self.ch_eof = true;
                        pass.progress = true;
                    }
                }
                Ok(n) => {
                    self.to_local.extend_from_slice(&buf[..n]);
                    pass.progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.fail(sess, &mut pass);
                    return pass;
                }
            }
        }
        if !self.to_local.is_empty() {
            match self.sock.write(&self.to_local) {
                Ok(n) => {
                    self.to_local.drain(..n);
                    pass.progress |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    // The host's session let go of its end.
                    self.closing = true;
                    pass.progress = true;
                    return pass;
                }
            }
        }
        if self.ch_eof && self.to_local.is_empty() && !self.sock_shut {
            let _ = self.sock.shutdown(Shutdown::Write);
            self.sock_shut = true;
            pass.progress = true;
        }
        // Local socket -> channel.
        if !self.sock_eof && self.to_remote.len() < BUF_CAP {
            let room = (BUF_CAP - self.to_remote.len()).min(buf.len());
            match self.sock.read(&mut buf[..room]) {
                Ok(0) => {
                    self.sock_eof = true;
                    pass.progress = true;
                }
                Ok(n) => {
                    self.to_remote.extend_from_slice(&buf[..n]);
                    pass.progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.sock_eof = true;
                    pass.progress = true;
                }
            }
        }
        if !self.to_remote.is_empty() {
            // On "would block" libssh2 keeps the packet it built and wants
            // the same data again: it stays at the front of the buffer.
            match self.ch.write(&self.to_remote) {
                Ok(n) => {
                    self.to_remote.drain(..n);
                    pass.progress |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.fail(sess, &mut pass);
                    return pass;
                }
            }
        }
        if self.sock_eof && self.to_remote.is_empty() && !self.eof_sent {
            match self.ch.send_eof() {
                Ok(()) => {
                    self.eof_sent = true;
                    self.eof_at = Some(Instant::now());
                    pass.progress = true;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => {
                    self.fail(sess, &mut pass);
                    return pass;
                }
            }
        }
        let lingered = self.eof_at.is_some_and(|t| t.elapsed() > LINGER);
        if (self.eof_sent && self.sock_shut) || lingered {
            self.closing = true;
            pass.progress = true;
        }
        pass
    }

    /// Close the channel; true once done (or given up on).
    fn close(&mut self) -> bool {
        let since = *self.closing_since.get_or_insert_with(Instant::now);
        match self.ch.close() {
            Ok(()) => true,
            Err(e) if would_block(&e) => since.elapsed() > LINGER,
            Err(_) => true,
        }
    }
}

/// The channel open in progress (libssh2 does one at a time per session).
struct Opening {
    /// `None` once the requester has been answered (it gave up).
    req: Option<Request>,
    host: String,
    port: u16,
    since: Instant,
}

/// The state of a pump thread.
struct Pump {
    sess: Session,
    fd: RawFd,
    requests: mpsc::Receiver<Request>,
    wake: UnixStream,
    queue: VecDeque<Request>,
    opening: Option<Opening>,
    pipes: Vec<Pipe>,
    max: usize,
    retired: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    no_more_requests: bool,
    broken: bool,
}

/// poll(2): wait until one of `fds` is ready or `timeout` passes.
#[allow(unsafe_code)]
fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> std::io::Result<()> {
    let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
    let n = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` is a valid, exclusively borrowed slice of initialised
    // pollfd structs for the whole call, and `n` is its length.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), n, ms) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

impl Pump {
    fn run(&mut self) {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let mut progress = self.take_requests();
            progress |= self.drive_open();
            let mut gone = false;
            for p in &mut self.pipes {
                let pass = p.pump(&self.sess, &mut buf);
                progress |= pass.progress;
                gone |= pass.session_gone;
            }
            let before = self.pipes.len();
            self.pipes.retain_mut(|p| !(p.closing && p.close()));
            progress |= self.pipes.len() != before;
            if gone {
                self.broken = true;
            }
            if self.broken {
                // The jump's own connection is gone: nothing can be carried.
                self.retired.store(true, Ordering::SeqCst);
                break;
            }
            // An open whose requester gave up does not keep the thread.
            let waiting = self.opening.as_ref().is_some_and(|o| o.req.is_some());
            let idle = self.pipes.is_empty() && !waiting && self.queue.is_empty();
            if idle && (self.no_more_requests || self.retired.load(Ordering::SeqCst)) {
                break;
            }
            if !progress && !self.wait() {
                break;
            }
        }
        self.shutdown();
    }

    /// New requests into the queue (or back, when retired or stalled).
    fn take_requests(&mut self) -> bool {
        let mut drained = [0u8; 64];
        while matches!(self.wake.read(&mut drained), Ok(n) if n > 0) {}
        let mut got = false;
        loop {
            match self.requests.try_recv() {
                Ok(r) => {
                    got = true;
                    if self.retired.load(Ordering::SeqCst) || self.stalled.load(Ordering::SeqCst) {
                        let _ = r.reply.send(Err(OpenError::Busy));
                    } else {
                        self.queue.push_back(r);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.no_more_requests = true;
                    break;
                }
            }
        }
        got
    }

    /// Start or continue the one channel open, answer requests whose
    /// deadline passed or that another session should take.
    fn drive_open(&mut self) -> bool {
        let now = Instant::now();
        let mut progress = false;
        if self
            .opening
            .as_ref()
            .is_some_and(|o| now.duration_since(o.since) >= STALL)
            && !self.stalled.swap(true, Ordering::SeqCst)
        {
            progress = true;
        }
        // Queued requests: handed back when this session cannot serve them
        // soon, failed when their deadline passed.
        let hand_back = self.retired.load(Ordering::SeqCst) || self.stalled.load(Ordering::SeqCst);
        let mut keep = VecDeque::with_capacity(self.queue.len());
        while let Some(r) = self.queue.pop_front() {
            if hand_back {
                let _ = r.reply.send(Err(OpenError::Busy));
                progress = true;
            } else if now >= r.deadline {
                let why = if self.opening.is_some() {
                    "timed out: the jump session was still opening another connection \
                     (libssh2 opens one at a time)"
                        .to_string()
                } else if self.pipes.len() >= self.max {
                    format!(
                        "no free channel on the jump session: it carries {} connections, the limit (2 x --forks)",
                        self.pipes.len()
                    )
                } else {
                    "timed out waiting for the jump session".to_string()
                };
                let _ = r.reply.send(Err(OpenError::Failed(why)));
                progress = true;
            } else {
                keep.push_back(r);
            }
        }
        self.queue = keep;
        if self.opening.is_none() && !hand_back && self.pipes.len() < self.max {
            if let Some(r) = self.queue.pop_front() {
                self.opening = Some(Opening {
                    host: r.host.clone(),
                    port: r.port,
                    req: Some(r),
                    since: now,
                });
                progress = true;
            }
        }
        let Some(o) = &mut self.opening else {
            return progress;
        };
        if o.req.as_ref().is_some_and(|r| now >= r.deadline) {
            if let Some(r) = o.req.take() {
                let _ = r.reply.send(Err(OpenError::Failed(format!(
                    "timed out: the jump host did not complete a connection to {}:{} in time",
                    o.host, o.port
                ))));
            }
            // libssh2 cannot open another channel on this session until
            // this one resolves: it stays stalled until then.
            progress = true;
        }
        match self.sess.channel_direct_tcpip(&o.host, o.port, None) {
            Ok(ch) => {
                let opened = self.opening.take();
                self.stalled.store(false, Ordering::SeqCst);
                progress = true;
                match opened.and_then(|o| o.req) {
                    Some(r) => match UnixStream::pair() {
                        Ok((ours, theirs)) if ours.set_nonblocking(true).is_ok() => {
                            if r.reply.send(Ok(theirs)).is_ok() {
                                self.pipes.push(Pipe::new(ch, ours));
                            } else {
                                self.pipes.extend(Pipe::unwanted(ch));
                            }
                        }
                        _ => {
                            let _ = r.reply.send(Err(OpenError::Failed(
                                "cannot make a local socket pair".into(),
                            )));
                            self.pipes.extend(Pipe::unwanted(ch));
                        }
                    },
                    None => self.pipes.extend(Pipe::unwanted(ch)),
                }
            }
            Err(e) if would_block(&e) => {}
            Err(e) => {
                let opened = self.opening.take();
                self.stalled.store(false, Ordering::SeqCst);
                progress = true;
                let gone = matches!(e.code(), ErrorCode::Session(c) if SESSION_GONE.contains(&c));
                if gone {
                    self.broken = true;
                }
                if let Some(r) = opened.and_then(|o| o.req) {
                    let answer = if gone {
                        Err(OpenError::Busy)
                    } else {
                        Err(OpenError::Failed(format!(
                            "the jump host could not connect: {}",
                            e.message()
                        )))
                    };
                    let _ = r.reply.send(answer);
                }
            }
        }
        progress
    }

    /// Wait for something to do; false when the session's socket failed.
    fn wait(&mut self) -> bool {
        // Data libssh2 already read for a channel does not show on the socket.
        let queued = self
            .pipes
            .iter()
            .any(|p| !p.closing && p.to_local.len() < BUF_CAP && p.ch.read_window().available > 0);
        if queued {
            return true;
        }
        let mut timeout = POLL_STEP;
        let now = Instant::now();
        let deadlines = self
            .queue
            .iter()
            .chain(self.opening.iter().filter_map(|o| o.req.as_ref()))
            .map(|r| r.deadline);
        for d in deadlines {
            timeout = timeout.min(d.saturating_duration_since(now));
        }
        let busy = !self.pipes.is_empty() || self.opening.is_some();
        let mut session_events: libc::c_short = 0;
        if busy {
            session_events |= libc::POLLIN;
        }
        if matches!(
            self.sess.block_directions(),
            ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
        ) {
            session_events |= libc::POLLOUT;
        }
        let mut fds = vec![
            pollfd(self.wake.as_raw_fd(), libc::POLLIN),
            pollfd(self.fd, session_events),
        ];
        for p in &self.pipes {
            let mut ev: libc::c_short = 0;
            if !p.closing && !p.sock_eof && p.to_remote.len() < BUF_CAP {
                ev |= libc::POLLIN;
            }
            if !p.closing && !p.to_local.is_empty() {
                ev |= libc::POLLOUT;
            }
            fds.push(pollfd(p.sock.as_raw_fd(), ev));
        }
        if poll(&mut fds, timeout).is_err() {
            return false;
        }
        let session = fds[1].revents;
        // Hung up both ways, or failed: the jump's connection is gone.
        if session & (libc::POLLERR | libc::POLLNVAL | libc::POLLHUP) != 0 {
            self.broken = true;
            return true;
        }
        if session & libc::POLLIN != 0 {
            // Let libssh2 read what arrived, whichever channel it is for
            // (a zero-length read processes the transport only); a pipe
            // with a full buffer would otherwise leave it in the kernel.
            if let Some(p) = self.pipes.first_mut() {
                let _ = p.ch.read(&mut []);
            }
        }
        true
    }

    fn shutdown(&mut self) {
        for q in self.queue.drain(..) {
            let _ = q.reply.send(Err(OpenError::Busy));
        }
        if let Some(r) = self.opening.take().and_then(|o| o.req) {
            let _ = r.reply.send(Err(OpenError::Busy));
        }
        self.retired.store(true, Ordering::SeqCst);
        // Closing is best effort, and bounded.
        self.sess.set_timeout(1000);
        self.sess.set_blocking(true);
        self.pipes.clear();
        let _ = self.sess.disconnect(None, "rampart done", None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_are_named_by_name_and_endpoint() {
        let r = Reach {
            name: "bastion".into(),
            address: "192.0.2.7".into(),
            port: 22,
            ..Reach::default()
        };
        assert_eq!(label(&r), "bastion (192.0.2.7:22)");
        let r = Reach {
            name: "2001:db8::7".into(),
            address: "2001:db8::7".into(),
            port: 2222,
            ..Reach::default()
        };
        assert_eq!(label(&r), "[2001:db8::7]:2222");
    }

    #[test]
    fn a_dead_jump_fails_with_its_name() {
        // Nothing listens on this loopback port: TCP refused at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let via = SshConnector::new(super::super::session::ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            exec_timeout: Duration::from_secs(2),
            accept_new_host_keys: false,
        });
        let pool = JumpPool::new(4);
        let jump = Reach {
            name: "bastion".into(),
            address: "127.0.0.1".into(),
            port,
            user: "root".into(),
            ..Reach::default()
        };
        let target = Reach {
            name: "web1".into(),
            address: "10.0.0.5".into(),
            port: 22,
            ..Reach::default()
        };
        let e = pool.stream(&via, &[jump], &target).expect_err("dead jump");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "jump host bastion (127.0.0.1:{port}): TCP connect to 127.0.0.1:{port} failed"
            )),
            "{msg}"
        );
        assert!(!e.is_host_key());
    }
}
