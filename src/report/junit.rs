//! `--junit FILE`: one testcase per host, so CI systems show a fleet run (or a
//! nightly audit) as a test report. Drift, rollbacks, failures and
//! unreachable hosts are failures; skipped hosts are skipped.

use std::fmt::Write as _;

use super::RunSummary;
use crate::converge::{HostReport, Status};

/// Escape text for an XML attribute value (see [`super::inert::xml`]:
/// nothing XML 1.0 forbids, no raw control character).
pub fn xml_escape(s: &str) -> String {
    super::inert::xml(s, true)
}

/// Escape text for XML character data.
fn xml_text(s: &str) -> String {
    super::inert::xml(s, false)
}

pub fn render(summary: &RunSummary, reports: &[HostReport]) -> String {
    let failures = reports
        .iter()
        .filter(|r| r.status.is_failure() || r.status == Status::Drift)
        .count();
    let skipped = reports
        .iter()
        .filter(|r| r.status == Status::Skipped)
        .count();
    let suite = format!("rampart {} {}", summary.command, summary.playbook);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"rampart\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
        reports.len(),
        summary.duration_ms as f64 / 1000.0
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
        xml_escape(&suite),
        reports.len(),
        summary.duration_ms as f64 / 1000.0
    );
    for r in reports {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&summary.playbook),
            xml_escape(&r.name),
            r.duration_ms as f64 / 1000.0
        );
        match r.status {
            Status::Ok | Status::Changed => x.push_str("/>\n"),
            Status::Skipped => x.push_str(">\n      <skipped message=\"rollout stopped before this host\"/>\n    </testcase>\n"),
            s => {
                let msg = match (s, &r.error) {
                    (_, Some(e)) => e.lines().next().unwrap_or("").to_string(),
                    (Status::Drift, None) => "live rules or persisted files differ from the playbook".to_string(),
                    _ => s.as_str().to_string(),
                };
                let body = [r.error.as_deref(), r.diff.as_deref()].into_iter().flatten().collect::<Vec<_>>().join("\n");
                let _ = write!(
                    x,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                    s.as_str(),
                    xml_escape(&msg),
                    xml_text(&body)
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
