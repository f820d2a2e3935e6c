//! `--format json`: exactly one JSON document on stdout. The only
//! output with a wall-clock timestamp (`started_at`), so text reports stay
//! diffable run to run.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::{counts, RunSummary};
use crate::converge::HostReport;

/// RFC 3339 UTC time for `secs` since the epoch (civil-from-days algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The report of a run that just ended: it started `duration_ms` ago.
pub fn render(summary: &RunSummary, reports: &[HostReport]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let started = now.saturating_sub(summary.duration_ms / 1000);
    render_at(summary, reports, &rfc3339(started))
}

/// The report with a given start time (a merged report keeps the first
/// shard's).
pub fn render_at(summary: &RunSummary, reports: &[HostReport], started_at: &str) -> String {
    let mut counts_obj = Map::new();
    counts_obj.insert("hosts".into(), json!(reports.len()));
    for (s, n) in counts(reports) {
        counts_obj.insert(s.as_str().into(), json!(n));
    }
    let mut doc = json!({
        "command": summary.command,
        "playbook": summary.playbook,
        "check": summary.check,
        "started_at": started_at,
        "duration_ms": summary.duration_ms,
        "summary": Value::Object(counts_obj),
        "hosts": reports,
    });
    if let Some(s) = summary.shard {
        doc["shard"] = json!({"index": s.index, "count": s.count});
    }
    let s =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    // serde escapes C0 controls; DEL, C1 and bidi controls too, so that
    // `cat report.json` on a terminal is as inert as the human report.
    let mut s = super::inert::json(&s).into_owned();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_600_000), "2026-11-25T09:46:40Z");
    }
}
