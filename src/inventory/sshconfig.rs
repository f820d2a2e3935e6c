//! The OpenSSH client configuration (`~/.ssh/config`, ssh_config(5)): the
//! part of it that decides how a host is reached.
//!
//! People who already reach their fleet with `ssh web1` keep their
//! `HostName`, `User`, `IdentityFile` and `ProxyJump` there; rampart reads
//! the same file so that an inventory listing `web1` reaches the same
//! machine the same way. Values an inventory states win over this file
//! (docs/design.md, "Formats"); this file wins over built-in defaults.
//!
//! Honoured keywords: `Host`, `Match`, `Include`, `HostName`, `Port`,
//! `User`, `IdentityFile`, `IdentitiesOnly`, `UserKnownHostsFile`,
//! `GlobalKnownHostsFile`, `StrictHostKeyChecking`, `ConnectTimeout`,
//! `ProxyJump`. Any other keyword
//! is ignored (it does not change how rampart connects), except
//! `ProxyCommand`, which would, and is named in a warning.
//!
//! As in OpenSSH: keywords are case-insensitive, `Key value` and `Key=value`
//! both work, arguments may be quoted, an unquoted `#` starts a comment; the
//! FIRST value obtained for a keyword wins; `Host` takes whitespace-separated
//! patterns (`*`, `?`, `!negation`: a matching negated pattern rejects the
//! block whatever else matches); `Include` takes paths and globs, relative
//! ones from `~/.ssh`, and may sit inside a block (then it applies only when
//! the block does); `%h %p %r %u %n %d %%` and `~` are expanded in
//! `IdentityFile`, `UserKnownHostsFile` and `GlobalKnownHostsFile`, `%h %%`
//! in `HostName`. `GlobalKnownHostsFile none` reads no global file.
//!
//! Where rampart differs, on purpose:
//! - `Host` patterns are matched against the inventory name AND the address
//!   the inventory states (when it differs): an inventory is not a command
//!   line, and both are names a user may have written in their config.
//!   `Match host` matches the effective host name (after `HostName`),
//!   `Match originalhost` the same names as `Host`, `Match all` everything;
//!   any other criterion (`exec`, `user`, `localuser`, `canonical`, `final`,
//!   `tagged`, `localnetwork`, ...) cannot be evaluated the way ssh would, so
//!   its block is skipped, with a warning.
//! - `StrictHostKeyChecking no` (or `off`) is NOT honoured: rampart always
//!   checks host keys. The block still loads (refusing the whole file would
//!   lock out people whose config says `no` for unrelated hosts), a warning
//!   names the line, and the host is checked strictly. `accept-new` trusts
//!   and records an unknown key, like `--accept-new-host-keys`; `yes` and
//!   `ask` are strict.
//! - Only the first `IdentityFile` applies (OpenSSH tries each in turn);
//!   when it does not exist, it is passed over with a warning, as ssh does.
//! - `/etc/ssh/ssh_config` is not read: what reaches a fleet should not
//!   change with the machine rampart runs on.
//!
//! Mistakes in an honoured keyword (a bad port, a malformed `ProxyJump`, an
//! unterminated quote, an unknown `%` token) are errors with
//! `file:line:column`, reported before any host is contacted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{check_address, check_user, parse_port};
use crate::error::InputError;

/// OpenSSH's limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;

/// One hop of a jump chain as written: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl std::fmt::Display for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        match (self.host.contains(':'), self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

/// Parse a jump list, `ProxyJump` syntax: `none`, or comma-separated
/// `[user@]host[:port]` / `ssh://[user@]host[:port]`, IPv6 in brackets when
/// a port follows. `None` means "no jump" (an explicit `none`). Errors carry
/// the 0-based char offset of the bad hop.
pub fn parse_jumps(text: &str) -> Result<Option<Vec<Hop>>, (usize, String)> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if t.is_empty() {
        return Err((0, "empty jump host list (use `none` for no jump)".into()));
    }
    let mut hops = Vec::new();
    let mut offset = text.len() - text.trim_start().len();
    for part in t.split(',') {
        let at = offset + (part.len() - part.trim_start().len());
        offset += part.chars().count() + 1;
        hops.push(parse_hop(part.trim()).map_err(|m| (at, m))?);
    }
    Ok(Some(hops))
}

fn parse_hop(s: &str) -> Result<Hop, String> {
    let bad = |why: &str| format!("bad jump host '{s}': {why} (expected [user@]host[:port])");
    // A message that already says what was expected.
    let wrong = |why: String| format!("bad jump host '{s}': {why}");
    let rest = s.strip_prefix("ssh://").unwrap_or(s);
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => {
            check_user(u).map_err(wrong)?;
            (Some(u.to_string()), h)
        }
        None => (None, rest),
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after {
            "" => (h, None),
            p => match p.strip_prefix(':') {
                Some(p) => (h, Some(parse_port(p).map_err(wrong)?)),
                None => return Err(bad("text after ']'")),
            },
        }
    } else if hostport.matches(':').count() == 1 {
        let (h, p) = hostport.split_once(':').unwrap_or((hostport, ""));
        (h, Some(parse_port(p).map_err(wrong)?))
    } else {
        (hostport, None)
    };
    check_address(host).map_err(wrong)?;
    if host.contains('/') {
        return Err(bad("a host name has no '/'"));
    }
    Ok(Hop {
        user,
        host: host.to_string(),
        port,
    })
}

/// `StrictHostKeyChecking`, as far as rampart honours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strict {
    /// `yes` / `ask`: only known keys.
    Yes,
    /// `accept-new`: trust and record an unknown key; a changed key fails.
    AcceptNew,
    /// `no` / `off`: not honoured (see the module docs): strict, with a warning.
    RefusedNo,
}

/// Where a value came from: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<PathBuf>,
    pub line: usize,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A value and the line that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Val<T> {
    pub value: T,
    pub at: Loc,
}

/// Text with `%` tokens and `~` still to expand, once the host's final
/// address, port and user are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(String);

/// What the config says about one host: the first value of each keyword.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub hostname: Option<Val<String>>,
    pub port: Option<Val<u16>>,
    pub user: Option<Val<String>>,
    pub identity_file: Option<Val<Template>>,
    pub identities_only: Option<Val<bool>>,
    pub known_hosts: Option<Val<Vec<Template>>>,
    /// `GlobalKnownHostsFile`: read-only known_hosts files consulted after
    /// the user's; an empty list is `none`.
    pub global_known_hosts: Option<Val<Vec<Template>>>,
    pub strict: Option<Val<Strict>>,
    pub connect_timeout: Option<Val<Duration>>,
    pub proxy_jump: Option<Val<Option<Vec<Hop>>>>,
    /// Things that apply to this host and are not honoured.
    pub warnings: Vec<String>,
}

/// What the `%` tokens of a [`Template`] stand for.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    /// `%h`: the address connected to.
    pub host: &'a str,
    /// `%n`: the name as given (the inventory name).
    pub original: &'a str,
    /// `%p`
    pub port: u16,
    /// `%r`: the remote user.
    pub user: &'a str,
}

impl Template {
    /// Expand the tokens and `~`; a relative result is taken from the
    /// current directory, as ssh does.
    pub fn expand(&self, t: &Tokens) -> Result<PathBuf, String> {
        let mut out = String::new();
        let mut chars = self.0.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('h') => out.push_str(t.host),
                Some('n') => out.push_str(t.original),
                Some('p') => out.push_str(&t.port.to_string()),
                Some('r') => out.push_str(t.user),
                Some('u') => out.push_str(&local_user()),
                Some('d') => out.push_str(&home()?.display().to_string()),
                // Checked when the line was read.
                _ => return Err(format!("bad % token in '{}'", self.0)),
            }
        }
        let p = expand_tilde(&out)?;
        std::path::absolute(&p).map_err(|e| format!("cannot resolve '{}': {e}", p.display()))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn home() -> Result<PathBuf, String> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| "HOME is not set".to_string())
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into())
}

fn expand_tilde(s: &str) -> Result<PathBuf, String> {
    if s == "~" {
        home()
    } else if let Some(rest) = s.strip_prefix("~/") {
        Ok(home()?.join(rest))
    } else if s.starts_with('~') {
        Err(format!(
            "'{s}': only '~/' (the current user's home) is expanded"
        ))
    } else {
        Ok(PathBuf::from(s))
    }
}

/// One honoured option line.
#[derive(Debug, Clone)]
enum Opt {
    HostName(String),
    Port(u16),
    User(String),
    IdentityFile(Template),
    IdentitiesOnly(bool),
    UserKnownHostsFile(Vec<Template>),
    GlobalKnownHostsFile(Vec<Template>),
    Strict(Strict),
    ConnectTimeout(Duration),
    ProxyJump(Option<Vec<Hop>>),
    ProxyCommand,
}

/// A `Match` criterion.
#[derive(Debug, Clone)]
enum Crit {
    All,
    Host(Vec<String>),
    OriginalHost(Vec<String>),
    /// Not evaluated: the block is skipped.
    Unsupported(String),
}

#[derive(Debug, Clone)]
enum Item {
    Host(Vec<String>),
    Match(Vec<(bool, Crit)>),
    Opt(Opt),
    Include(Vec<SshConfig>),
}

/// A parsed config file, `Include`s read in.
#[derive(Debug, Clone)]
pub struct SshConfig {
    file: Arc<PathBuf>,
    items: Vec<(usize, Item)>,
}

/// Arguments of a line, each with its 1-based column.
type Args = Vec<(usize, String)>;

/// Split a line into its keyword and arguments (each with its 1-based
/// column), OpenSSH style: `Key value`, `Key=value`, `Key = value`, quotes,
/// `#` comments.
fn split_line(line: &str) -> Result<Option<(String, Args)>, (usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    if i == chars.len() || chars[i] == '#' {
        return Ok(None);
    }
    let mut keyword = String::new();
    while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
        keyword.push(chars[i]);
        i += 1;
    }
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    if i < chars.len() && chars[i] == '=' {
        i += 1;
    }
    let mut args = Vec::new();
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i == chars.len() || chars[i] == '#' {
            break;
        }
        let start = i;
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) if c == '\\' && matches!(chars.get(i + 1), Some('"' | '\'' | '\\')) => {
                    i += 1;
                    arg.push(chars[i]);
                }
                Some(_) => arg.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => break,
                None => arg.push(c),
            }
            i += 1;
        }
        if quote.is_some() {
            return Err((start + 1, "unterminated quote".into()));
        }
        args.push((start + 1, arg));
    }
    Ok(Some((keyword, args)))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

/// `ConnectTimeout`: seconds, or an OpenSSH time like `1m30s`.
fn parse_time(v: &str) -> Option<Duration> {
    if let Ok(n) = v.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let mult = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    if !num.is_empty() {
        total = total.checked_add(num.parse().ok()?)?;
    }
    Some(Duration::from_secs(total))
}

/// Check the `%` tokens of a path template.
fn check_tokens(v: &str, allowed: &str) -> Result<(), String> {
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(t) if t == '%' || allowed.contains(t) => {}
                Some(t) => return Err(format!("unknown token %{t} in '{v}'")),
                None => return Err(format!("'%' at the end of '{v}'")),
            }
        }
    }
    Ok(())
}

/// Expand an `Include` argument into the files it names, sorted (as
/// glob(3) does). A pattern that matches nothing includes nothing.
fn include_paths(arg: &str) -> Result<Vec<PathBuf>, String> {
    let p = expand_tilde(arg)?;
    let p = if p.is_absolute() {
        p
    } else {
        home()?.join(".ssh").join(p)
    };
    let mut found = vec![PathBuf::from("/")];
    for comp in p.components().skip(1) {
        let comp = comp.as_os_str().to_string_lossy();
        let glob = comp.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for dir in &found {
            if glob {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') || comp.starts_with('.'))
                    .filter(|n| crate::glob::matches(&comp, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            } else {
                next.push(dir.join(comp.as_ref()));
            }
        }
        found = next;
    }
    Ok(found.into_iter().filter(|f| f.is_file()).collect())
}

impl SshConfig {
    /// Read a config file and what it includes.
    pub fn load(path: &Path) -> Result<SshConfig, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::whole_file(path, format!("cannot read ssh_config: {e}")))?;
        Self::parse_at(path, &text, 0)
    }

    /// Parse config text as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<SshConfig, InputError> {
        Self::parse_at(path, text, 0)
    }

    fn parse_at(path: &Path, text: &str, depth: usize) -> Result<SshConfig, InputError> {
        let file = Arc::new(path.to_path_buf());
        let mut items = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |col: usize, msg: String| InputError::new(path, line, col, msg);
            let Some((keyword, args)) =
                split_line(raw.trim_end_matches('\r')).map_err(|(c, m)| err(c, m))?
            else {
                continue;
            };
            let kw_col = raw.chars().take_while(|c| c.is_whitespace()).count() + 1;
            let lower = keyword.to_ascii_lowercase();
            let first = |what: &str| -> Result<(usize, String), InputError> {
                match args.first() {
                    Some((c, a)) if !a.is_empty() => Ok((*c, a.clone())),
                    _ => Err(err(kw_col, format!("{keyword} needs {what}"))),
                }
            };
            let item = match lower.as_str() {
                "host" => {
                    if args.is_empty() {
                        return Err(err(kw_col, "Host needs at least one pattern".into()));
                    }
                    Item::Host(args.iter().map(|(_, a)| a.to_ascii_lowercase()).collect())
                }
                "match" => Item::Match(
                    parse_match(&args).map_err(|(c, m)| err(if c == 0 { kw_col } else { c }, m))?,
                ),
                "include" => {
                    if args.is_empty() {
                        return Err(err(kw_col, "Include needs a file".into()));
                    }
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(err(
                            kw_col,
                            format!("Include nested more than {MAX_INCLUDE_DEPTH} deep"),
                        ));
                    }
                    let mut configs = Vec::new();
                    for (col, a) in &args {
                        for f in include_paths(a).map_err(|m| err(*col, m))? {
                            let text = std::fs::read_to_string(&f).map_err(|e| {
                                err(*col, format!("cannot read included {}: {e}", f.display()))
                            })?;
                            configs.push(Self::parse_at(&f, &text, depth + 1)?);
                        }
                    }
                    Item::Include(configs)
                }
                "hostname" => {
                    let (c, v) = first("a host name")?;
                    check_tokens(&v, "h").map_err(|m| err(c, m))?;
                    check_address(&v.replace("%h", "h").replace("%%", "%"))
                        .map_err(|m| err(c, format!("HostName: {m}")))?;
                    Item::Opt(Opt::HostName(v))
                }
                "port" => {
                    let (c, v) = first("a port number")?;
                    Item::Opt(Opt::Port(parse_port(&v).map_err(|m| err(c, m))?))
                }
                "user" => {
                    let (c, v) = first("a user name")?;
                    check_user(&v).map_err(|m| err(c, m))?;
                    Item::Opt(Opt::User(v))
                }
                "identityfile" => {
                    let (c, v) = first("a file")?;
                    check_tokens(&v, "hnprud").map_err(|m| err(c, m))?;
                    Item::Opt(Opt::IdentityFile(Template(v)))
                }
                "identitiesonly" => {
                    let (c, v) = first("yes or no")?;
                    let b = parse_bool(&v)
                        .ok_or_else(|| err(c, format!("IdentitiesOnly: '{v}' is not yes or no")))?;
                    Item::Opt(Opt::IdentitiesOnly(b))
                }
                "userknownhostsfile" => {
                    let (_, v) = first("a file or none")?;
                    let mut files = Vec::new();
                    if v.eq_ignore_ascii_case("none") {
                        // No user file, as OpenSSH reads it: nothing known
                        // from it, and a key accepted on first use is
                        // remembered nowhere.
                        if let Some((c, _)) = args.get(1) {
                            return Err(err(
                                *c,
                                "UserKnownHostsFile none must appear alone".into(),
                            ));
                        }
                        files.push(Template("/dev/null".into()));
                    } else {
                        for (c, v) in &args {
                            check_tokens(v, "hnprud").map_err(|m| err(*c, m))?;
                            files.push(Template(v.clone()));
                        }
                    }
                    Item::Opt(Opt::UserKnownHostsFile(files))
                }
                "globalknownhostsfile" => {
                    let (_, v) = first("a file or none")?;
                    let mut files = Vec::new();
                    if v.eq_ignore_ascii_case("none") {
                        if let Some((c, _)) = args.get(1) {
                            return Err(err(
                                *c,
                                "GlobalKnownHostsFile none must appear alone".into(),
                            ));
                        }
                    } else {
                        for (c, v) in &args {
                            check_tokens(v, "hnprud").map_err(|m| err(*c, m))?;
                            files.push(Template(v.clone()));
                        }
                    }
                    Item::Opt(Opt::GlobalKnownHostsFile(files))
                }
                "stricthostkeychecking" => {
                    let (c, v) = first("a value")?;
                    let s = match v.to_ascii_lowercase().as_str() {
                        "yes" | "true" | "ask" => Strict::Yes,
                        "accept-new" => Strict::AcceptNew,
                        "no" | "off" | "false" => Strict::RefusedNo,
                        _ => {
                            return Err(err(
                                c,
                                format!("StrictHostKeyChecking: unknown value '{v}' (yes, accept-new, ask, no)"),
                            ))
                        }
                    };
                    Item::Opt(Opt::Strict(s))
                }
                "connecttimeout" => {
                    let (c, v) = first("a number of seconds")?;
                    let d = parse_time(&v)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| err(c, format!("ConnectTimeout: bad time '{v}'")))?;
                    Item::Opt(Opt::ConnectTimeout(d))
                }
                "proxyjump" => {
                    let (c, v) = first("a jump host or none")?;
                    if args.len() > 1 {
                        return Err(err(
                            args[1].0,
                            "ProxyJump takes one comma-separated list".into(),
                        ));
                    }
                    Item::Opt(Opt::ProxyJump(
                        parse_jumps(&v).map_err(|(off, m)| err(c + off, m))?,
                    ))
                }
                "proxycommand" => Item::Opt(Opt::ProxyCommand),
                _ => continue,
            };
            items.push((line, item));
        }
        Ok(SshConfig { file, items })
    }

    /// What the config says for the host known as `names` (inventory name
    /// first, then the stated address if any).
    pub fn lookup(&self, names: &[&str], stated_address: Option<&str>) -> Lookup {
        let names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let mut out = Lookup::default();
        let mut q = Query {
            names: &names,
            stated_address: stated_address.map(str::to_ascii_lowercase),
        };
        self.eval(&mut q, true, &mut out);
        out
    }

    fn eval(&self, q: &mut Query, outer_active: bool, out: &mut Lookup) {
        let mut active = outer_active;
        for (line, item) in &self.items {
            let at = Loc {
                file: Arc::clone(&self.file),
                line: *line,
            };
            match item {
                Item::Host(pats) => {
                    active = outer_active && q.names_match(pats);
                }
                Item::Match(crits) => {
                    active = outer_active && q.crits_match(crits, out, &at);
                }
                Item::Include(configs) => {
                    for c in configs {
                        c.eval(q, active, out);
                    }
                }
                Item::Opt(o) if active => apply(o, at, &q.names[0], out),
                Item::Opt(_) => {}
            }
        }
    }
}

/// Record an option unless a value was already obtained (first wins).
fn apply(o: &Opt, at: Loc, original: &str, out: &mut Lookup) {
    fn set<T>(slot: &mut Option<Val<T>>, value: T, at: Loc) {
        if slot.is_none() {
            *slot = Some(Val { value, at });
        }
    }
    match o {
        Opt::HostName(h) => {
            let v = h.replace("%h", original).replace("%%", "%");
            set(&mut out.hostname, v, at);
        }
        Opt::Port(p) => set(&mut out.port, *p, at),
        Opt::User(u) => set(&mut out.user, u.clone(), at),
        Opt::IdentityFile(t) => set(&mut out.identity_file, t.clone(), at),
        Opt::IdentitiesOnly(b) => set(&mut out.identities_only, *b, at),
        Opt::UserKnownHostsFile(f) => set(&mut out.known_hosts, f.clone(), at),
        Opt::GlobalKnownHostsFile(f) => set(&mut out.global_known_hosts, f.clone(), at),
        Opt::Strict(s) => {
            if out.strict.is_none() && *s == Strict::RefusedNo {
                out.warnings.push(format!(
                    "{at}: StrictHostKeyChecking no is not honoured: rampart always checks host keys \
                     (accept-new, or --accept-new-host-keys, trusts and records unknown ones)"
                ));
            }
            set(&mut out.strict, *s, at);
        }
        Opt::ConnectTimeout(d) => set(&mut out.connect_timeout, *d, at),
        Opt::ProxyJump(j) => set(&mut out.proxy_jump, j.clone(), at),
        Opt::ProxyCommand => {
            if out.proxy_jump.is_none() {
                out.warnings.push(format!(
                    "{at}: ProxyCommand is not supported (rampart connects directly, or through ProxyJump / proxy_jump)"
                ));
            }
        }
    }
}

struct Query<'a> {
    names: &'a [String],
    stated_address: Option<String>,
}

/// OpenSSH pattern-list semantics: a matching negated pattern rejects,
/// else any matching positive pattern accepts.
fn list_match(pats: &[String], candidates: &[&str]) -> bool {
    let mut hit = false;
    for p in pats {
        if let Some(neg) = p.strip_prefix('!') {
            if candidates
                .iter()
                .any(|c| crate::glob::matches_simple(neg, c))
            {
                return false;
            }
        } else if candidates.iter().any(|c| crate::glob::matches_simple(p, c)) {
            hit = true;
        }
    }
    hit
}

impl Query<'_> {
    fn candidates(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self.names.iter().map(String::as_str).collect();
        if let Some(a) = &self.stated_address {
            if !c.contains(&a.as_str()) {
                c.push(a);
            }
        }
        c
    }

    fn names_match(&self, pats: &[String]) -> bool {
        list_match(pats, &self.candidates())
    }

    fn crits_match(&self, crits: &[(bool, Crit)], out: &mut Lookup, at: &Loc) -> bool {
        let mut all = true;
        for (negated, c) in crits {
            let m = match c {
                Crit::All => true,
                Crit::Host(p) => {
                    // The effective host name: the inventory's address, else
                    // a HostName obtained so far, else the name.
                    let h = self
                        .stated_address
                        .clone()
                        .or_else(|| out.hostname.as_ref().map(|v| v.value.to_ascii_lowercase()))
                        .unwrap_or_else(|| self.names[0].clone());
                    list_match(p, &[h.as_str()])
                }
                Crit::OriginalHost(p) => list_match(p, &self.candidates()),
                Crit::Unsupported(what) => {
                    out.warnings.push(format!(
                        "{at}: Match {what} is not supported by rampart: the block is skipped"
                    ));
                    return false;
                }
            };
            all &= m != *negated;
        }
        all
    }
}

/// Parse `Match` criteria; column 0 in an error means the keyword's.
fn parse_match(args: &[(usize, String)]) -> Result<Vec<(bool, Crit)>, (usize, String)> {
    if args.is_empty() {
        return Err((
            0,
            "Match needs a criterion (all, host, originalhost, ...)".into(),
        ));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let (col, word) = &args[i];
        let (negated, name) = match word.strip_prefix('!') {
            Some(n) => (true, n.to_ascii_lowercase()),
            None => (false, word.to_ascii_lowercase()),
        };
        i += 1;
        let crit = match name.as_str() {
            "all" => Crit::All,
            "canonical" | "final" => Crit::Unsupported(name.clone()),
            "host" | "originalhost" | "user" | "localuser" | "exec" | "localnetwork" | "tagged"
            | "version" | "sessiontype" | "command" => {
                let Some((_, arg)) = args.get(i) else {
                    return Err((*col, format!("Match {name} needs an argument")));
                };
                i += 1;
                let pats: Vec<String> = arg
                    .split(',')
                    .map(|p| p.trim().to_ascii_lowercase())
                    .filter(|p| !p.is_empty())
                    .collect();
                match name.as_str() {
                    "host" => Crit::Host(pats),
                    "originalhost" => Crit::OriginalHost(pats),
                    _ => Crit::Unsupported(format!("{name} {arg}")),
                }
            }
            _ => return Err((*col, format!("unknown Match criterion '{word}'"))),
        };
        out.push((negated, crit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> SshConfig {
        SshConfig::parse(Path::new("/home/u/.ssh/config"), text).expect("valid config")
    }

    fn err(text: &str) -> (usize, usize, String) {
        let e = SshConfig::parse(Path::new("/c"), text).expect_err("should fail");
        (e.line, e.column, e.message)
    }

    #[test]
    fn first_value_wins_and_patterns_match() {
        let c = cfg("\
# comment
Host web1 web2
  HostName 203.0.113.10
  User deploy
Host web*
  User other
  Port=2222
  IdentityFile \"~/.ssh/id web\"
Host * !db1
  ConnectTimeout 7
Host *
  User fallback
  ProxyJump bastion
");
        let l = c.lookup(&["web1"], None);
        assert_eq!(
            l.hostname.as_ref().map(|v| v.value.as_str()),
            Some("203.0.113.10")
        );
        assert_eq!(l.user.as_ref().map(|v| v.value.as_str()), Some("deploy"));
        assert_eq!(l.user.as_ref().map(|v| v.at.line), Some(4));
        assert_eq!(l.port.as_ref().map(|v| v.value), Some(2222));
        assert_eq!(
            l.identity_file.as_ref().map(|v| v.value.as_str()),
            Some("~/.ssh/id web")
        );
        assert_eq!(
            l.connect_timeout.map(|v| v.value),
            Some(Duration::from_secs(7))
        );
        let db = c.lookup(&["db1"], None);
        assert!(
            db.connect_timeout.is_none(),
            "negated pattern rejects the block"
        );
        assert_eq!(db.user.map(|v| v.value).as_deref(), Some("fallback"));
        assert_eq!(
            db.proxy_jump.map(|v| v.value),
            Some(Some(vec![Hop {
                user: None,
                host: "bastion".into(),
                port: None
            }]))
        );
    }

    #[test]
    fn stated_address_is_a_candidate_and_keywords_are_case_insensitive() {
        let c = cfg("HOST 198.51.100.*\n  uSeR ops\n");
        assert!(c.lookup(&["web1"], None).user.is_none());
        let l = c.lookup(&["web1"], Some("198.51.100.7"));
        assert_eq!(l.user.map(|v| v.value).as_deref(), Some("ops"));
    }

    #[test]
    fn match_host_all_and_unsupported() {
        let c = cfg("\
Host web1
  HostName 10.0.0.5
Match host 10.0.0.*
  User inner
Match exec \"true\"
  Port 2200
Match all
  Port 2222
");
        let l = c.lookup(&["web1"], None);
        assert_eq!(l.user.map(|v| v.value).as_deref(), Some("inner"));
        assert_eq!(l.port.map(|v| v.value), Some(2222));
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(l.warnings[0].contains(":5: Match exec"), "{:?}", l.warnings);
        let c = cfg("Match !host a*\n  User notA\n");
        assert!(c.lookup(&["abc"], None).user.is_none());
        assert!(c.lookup(&["xyz"], None).user.is_some());
    }

    #[test]
    fn strict_no_is_refused_with_a_warning() {
        let c = cfg("Host *\n  StrictHostKeyChecking no\n");
        let l = c.lookup(&["x"], None);
        assert_eq!(l.strict.map(|v| v.value), Some(Strict::RefusedNo));
        assert!(l.warnings[0].contains("not honoured"), "{:?}", l.warnings);
        let c = cfg("StrictHostKeyChecking accept-new\n");
        assert_eq!(
            c.lookup(&["x"], None).strict.map(|v| v.value),
            Some(Strict::AcceptNew)
        );
    }

    #[test]
    fn global_known_hosts_files_and_none() {
        let c = cfg(
            "Host a\n  GlobalKnownHostsFile /g/one /g/%h\nHost b\n  GlobalKnownHostsFile none\n",
        );
        let files = |n: &str| {
            c.lookup(&[n], None).global_known_hosts.map(|v| {
                v.value
                    .iter()
                    .map(|t| t.as_str().to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            files("a"),
            Some(vec!["/g/one".to_string(), "/g/%h".to_string()])
        );
        assert_eq!(files("b"), Some(vec![]), "none: no global file");
        assert_eq!(files("c"), None, "unset: the built-in default");
        let (l, c, m) = err("GlobalKnownHostsFile none /x\n");
        assert_eq!((l, c), (1, 27), "{m}");
        assert!(m.contains("alone"), "{m}");
        let (_, _, m) = err("GlobalKnownHostsFile /x/%z\n");
        assert!(m.contains("unknown token %z"), "{m}");
    }

    #[test]
    fn tokens_expand() {
        let t = Template("/k/%h-%p-%r-%n-%%".into());
        let p = t
            .expand(&Tokens {
                host: "10.0.0.5",
                original: "web1",
                port: 22,
                user: "root",
            })
            .expect("expands");
        assert_eq!(p, PathBuf::from("/k/10.0.0.5-22-root-web1-%"));
        let c = cfg("Host web1\n  HostName %h.example.com\n");
        assert_eq!(
            c.lookup(&["web1"], None)
                .hostname
                .map(|v| v.value)
                .as_deref(),
            Some("web1.example.com")
        );
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(err("Host x\n  Port 70000\n").0, 2);
        let (l, c, m) = err("Host x\n  Port 70000\n");
        assert_eq!((l, c), (2, 8), "{m}");
        let (l, c, m) = err("ProxyJump a@b:22,c:x\n");
        assert_eq!((l, c), (1, 18), "{m}");
        assert!(m.contains("bad jump host 'c:x'"), "{m}");
        let (l, c, m) = err("IdentityFile ~/.ssh/%z\n");
        assert_eq!((l, c), (1, 14), "{m}");
        assert!(m.contains("unknown token %z"), "{m}");
        let (l, c, m) = err("User \"unterminated\n");
        assert_eq!((l, c), (1, 6), "{m}");
        let (_, _, m) = err("Match\n");
        assert!(m.contains("needs a criterion"), "{m}");
        let (_, _, m) = err("Match bogus x\n");
        assert!(m.contains("unknown Match criterion"), "{m}");
        let (l, c, _) = err("  ConnectTimeout=abc\n");
        assert_eq!((l, c), (1, 18));
        let (_, _, m) = err("StrictHostKeyChecking maybe\n");
        assert!(m.contains("unknown value"), "{m}");
    }

    #[test]
    fn jump_lists() {
        assert_eq!(parse_jumps("none"), Ok(None));
        let j = parse_jumps("ops@bastion:2222, [2001:db8::1]:22,ssh://u@h,2001:db8::2")
            .expect("valid")
            .expect("some");
        assert_eq!(j.len(), 4);
        assert_eq!(j[0].to_string(), "ops@bastion:2222");
        assert_eq!(j[1].host, "2001:db8::1");
        assert_eq!(j[1].port, Some(22));
        assert_eq!(j[2].user.as_deref(), Some("u"));
        assert_eq!(j[3].host, "2001:db8::2");
        assert_eq!(j[3].port, None);
        assert!(parse_jumps("").is_err());
        assert!(parse_jumps("a,,b").is_err());
        assert_eq!(parse_jumps("a, b:0").map_err(|e| e.0), Err(3));
        assert!(parse_jumps("-oProxyCommand=x").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_time("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("x"), None);
    }

    #[test]
    fn includes_apply_inside_their_block() {
        let dir = std::env::temp_dir().join(format!("rampart-sshcfg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
        std::fs::write(dir.join("conf.d/a.conf"), "User from-a\n").expect("write");
        std::fs::write(dir.join("conf.d/b.conf"), "Host other\n  Port 1\n").expect("write");
        std::fs::write(dir.join("conf.d/skip.txt"), "User never\n").expect("write");
        let text = format!(
            "Host web1\n  Include {}/conf.d/*.conf\n  Port 2\nHost *\n  User last\n",
            dir.display()
        );
        let c = cfg(&text);
        let l = c.lookup(&["web1"], None);
        assert_eq!(l.user.map(|v| v.value).as_deref(), Some("from-a"));
        // b.conf's `Host other` ends at the end of b.conf: `Port 2` applies.
        assert_eq!(l.port.map(|v| v.value), Some(2));
        let l = c.lookup(&["db"], None);
        assert_eq!(l.user.map(|v| v.value).as_deref(), Some("last"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
