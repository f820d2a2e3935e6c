//! OUTPUT: everything a user sees of a run, made only from the engine's
//! events and reports. Progress goes to stderr; the report (a human recap or
//! one JSON document) to stdout; JUnit XML to a file.

pub mod human;
pub mod inert;
pub mod inventory;
pub mod json;
pub mod junit;
pub mod merge;
pub mod progress;

use std::io::Write as _;

use crate::cli::{Format, RunArgs};
use crate::converge::{HostReport, Status};
use crate::error::{Error, Result};

/// What the report says about the run as a whole.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub command: String,
    pub playbook: String,
    pub duration_ms: u64,
    /// Read-only run (audit or --check).
    pub check: bool,
    /// `--shard K/N` of the run, recorded in the JSON report so that
    /// `rampart report merge` can tell a missing shard.
    pub shard: Option<crate::inventory::Shard>,
}

/// Count of hosts per status, in the order of the report (docs/design.md, "Formats").
pub fn counts(reports: &[HostReport]) -> Vec<(Status, usize)> {
    [
        Status::Ok,
        Status::Changed,
        Status::Drift,
        Status::RolledBack,
        Status::Failed,
        Status::Unreachable,
        Status::Skipped,
    ]
    .into_iter()
    .map(|s| (s, reports.iter().filter(|r| r.status == s).count()))
    .collect()
}

/// The exit code of a run (docs/design.md, "Exit codes"): 3 beats 2 beats 0.
/// `rampart report merge` uses it too, so a merged report exits as one run would.
pub fn exit_code(reports: &[HostReport]) -> u8 {
    if reports
        .iter()
        .any(|r| r.status.is_failure() || r.status == Status::Skipped)
    {
        crate::exit::HOST_PROBLEM
    } else if reports.iter().any(|r| r.status == Status::Drift) {
        crate::exit::DRIFT
    } else {
        crate::exit::OK
    }
}

/// Write the final report (stdout) and the JUnit file.
pub fn finish(summary: &RunSummary, reports: &[HostReport], args: &RunArgs) -> Result<()> {
    let text = match args.format {
        Format::Json => json::render(summary, reports),
        Format::Human => human::render(
            summary,
            reports,
            args.diff || summary.check,
            human::use_colour(),
        ),
    };
    emit(&text, args.junit.as_deref(), summary, reports)
}

/// Print a report on stdout and write the JUnit file, if asked for.
pub fn emit(
    text: &str,
    junit_path: Option<&std::path::Path>,
    summary: &RunSummary,
    reports: &[HostReport],
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .map_err(|e| Error::io("writing the report", e))?;
    out.flush()
        .map_err(|e| Error::io("writing the report", e))?;
    if let Some(path) = junit_path {
        std::fs::write(path, junit::render(summary, reports))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

/// Print `text` on stdout. A reader that went away (`| head`) is not an
/// error: what it wanted, it got.
pub fn print(text: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("writing to stdout", e))
        }
        _ => Ok(()),
    }
}

/// A warning about the inputs, before the run starts (stderr). It may
/// quote input files (host names, variable names): made inert.
pub fn warn(message: &str) {
    eprintln!("rampart: warning: {}", inert::text(message));
}

/// A note about the run that is not a problem (stderr).
pub fn note(message: &str) {
    eprintln!("rampart: {}", inert::text(message));
}

/// Ask for a password on the terminal (`/dev/tty`), without echo. Never
/// logged. When echo cannot be turned off (no terminal, or one that
/// refuses), this fails rather than show the password as it is typed.
pub fn ask_password(prompt: &str) -> std::io::Result<String> {
    use std::io::IsTerminal as _;
    // rpassword reads a non-terminal /dev/tty without touching echo; only
    // a real terminal is acceptable here.
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("no terminal to ask on (/dev/tty: {e})"))
        })?;
    if !tty.is_terminal() {
        return Err(std::io::Error::other("/dev/tty is not a terminal"));
    }
    drop(tty);
    rpassword::prompt_password(prompt)
}
