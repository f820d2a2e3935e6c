//! OUTPUT: everything a user sees of a run, made only from the engine's
//! events and reports. Progress goes to stderr; the report (a human recap or
//! one JSON document) to stdout; JUnit XML to a file.

pub mod human;
pub mod json;
pub mod junit;
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
}

/// Count of hosts per status, in the order of SPEC §5.
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

/// Exit code of SPEC §5: 3 beats 2 beats 0.
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
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .map_err(|e| Error::io("writing the report", e))?;
    out.flush()
        .map_err(|e| Error::io("writing the report", e))?;
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::render(summary, reports))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

/// A warning about the inputs, before the run starts (stderr).
pub fn warn(message: &str) {
    eprintln!("rampart: warning: {message}");
}

/// Ask for a password on the terminal, without echo. Never logged.
pub fn ask_password(prompt: &str) -> std::io::Result<String> {
    use std::io::BufRead as _;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let mut w = tty.try_clone()?;
    write!(w, "{prompt}")?;
    w.flush()?;
    let stty = |arg: &str| {
        if let Ok(t) = tty.try_clone() {
            let _ = std::process::Command::new("stty")
                .arg(arg)
                .stdin(std::process::Stdio::from(t))
                .status();
        }
    };
    stty("-echo");
    let mut line = String::new();
    let r = std::io::BufReader::new(tty.try_clone()?).read_line(&mut line);
    stty("echo");
    writeln!(w)?;
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
