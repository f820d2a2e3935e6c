//! The human report: a recap table like Ansible's PLAY RECAP, then errors,
//! warnings and (with --diff, or in an audit) each host's diff. Colour only
//! on a terminal and never when NO_COLOR is set; stable ordering (inventory
//! order) and no timestamps, so two runs can be compared line by line.
//!
//! Every text that did not come from rampart itself (host names and
//! addresses from the inventory, OS ids, errors and warnings quoting what a
//! host printed, rule comments in a diff) goes through [`inert`]: no
//! control character a host chose reaches the terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;

use super::inert;
use super::{counts, RunSummary};
use crate::converge::{HostReport, Status};

/// Colour when stdout is a terminal and NO_COLOR is unset (no-color.org).
pub fn use_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn paint(s: &str, status: Status, colour: bool) -> String {
    if !colour {
        return s.to_string();
    }
    let code = match status {
        Status::Ok => "32",
        Status::Changed => "33",
        Status::Drift => "35",
        Status::RolledBack | Status::Failed | Status::Unreachable => "31",
        Status::Skipped => "36",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

pub fn render(
    summary: &RunSummary,
    reports: &[HostReport],
    show_diff: bool,
    colour: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nRECAP {} {}{}",
        inert::line(&summary.command),
        inert::line(&summary.playbook),
        if summary.check { " (read-only)" } else { "" }
    );
    let names: Vec<String> = reports
        .iter()
        .map(|r| inert::line(&r.name).into_owned())
        .collect();
    let wname = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let waddr = reports
        .iter()
        .map(|r| inert::line(&r.address).chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:<wname$}  {:<waddr$}  {:<11}  {:<8}  {:<9}  {:>7}",
        "HOST", "ADDRESS", "STATUS", "OS", "BACKEND", "TIME"
    );
    for (r, name) in reports.iter().zip(&names) {
        let status = format!("{:<11}", r.status.as_str());
        let _ = writeln!(
            out,
            "{:<wname$}  {:<waddr$}  {}  {:<8}  {:<9}  {:>6.2}s",
            name,
            inert::line(&r.address),
            paint(&status, r.status, colour),
            inert::line(r.os.as_deref().unwrap_or("-")),
            inert::line(r.backend.as_deref().unwrap_or("-")),
            r.duration_ms as f64 / 1000.0
        );
    }
    let errors: Vec<&HostReport> = reports.iter().filter(|r| r.error.is_some()).collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nERRORS");
        for r in errors {
            let step = r
                .step
                .map(|s| format!(" [{}]", s.as_str()))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{}{}: {}",
                inert::line(&r.name),
                step,
                inert::text(r.error.as_deref().unwrap_or(""))
            );
        }
    }
    let warned: Vec<&HostReport> = reports.iter().filter(|r| !r.warnings.is_empty()).collect();
    if !warned.is_empty() {
        let _ = writeln!(out, "\nWARNINGS");
        for r in warned {
            for w in &r.warnings {
                let _ = writeln!(out, "{}: {}", inert::line(&r.name), inert::text(w));
            }
        }
    }
    if show_diff {
        for r in reports.iter().filter(|r| r.diff.is_some()) {
            let _ = writeln!(
                out,
                "\nDIFF {} ({})",
                inert::line(&r.name),
                r.status.as_str()
            );
            for line in r.diff.as_deref().unwrap_or("").lines() {
                let line = inert::line(line);
                let line = if colour && line.starts_with('+') {
                    format!("\x1b[32m{line}\x1b[0m")
                } else if colour && line.starts_with('-') {
                    format!("\x1b[31m{line}\x1b[0m")
                } else {
                    line.to_string()
                };
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    let parts: Vec<String> = counts(reports)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "\n{} host{}: {} in {:.2}s",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        },
        summary.duration_ms as f64 / 1000.0
    );
    out
}
