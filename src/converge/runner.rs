//! The fleet: forks, batches (`--serial`), `--max-fail-percent`, stop on a
//! signal. It runs each host's blocking transaction on tokio's blocking pool
//! and reports only through [`Event`]s; it never prints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc::UnboundedSender, Semaphore};

use super::report_types::{Event, HostReport, Progress, Status};
use super::transaction::{self, Job};
use crate::remote::Connector;

/// Batch size of `--serial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serial {
    Count(usize),
    Percent(u8),
}

impl Serial {
    /// Parse `N` or `P%` (1..=100).
    pub fn parse(s: &str) -> Result<Serial, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "--serial {s:?}: expected a number of hosts (like 5) or a percentage (like 10%)"
            )
        };
        if let Some(p) = s.strip_suffix('%') {
            let p: u8 = p.trim().parse().map_err(|_| bad())?;
            if p == 0 || p > 100 {
                return Err(bad());
            }
            Ok(Serial::Percent(p))
        } else {
            let n: usize = s.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            Ok(Serial::Count(n))
        }
    }

    fn batch_size(self, total: usize) -> usize {
        match self {
            Serial::Count(n) => n,
            Serial::Percent(p) => (total * usize::from(p)).div_ceil(100).max(1),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub forks: usize,
    pub serial: Option<Serial>,
    pub max_fail_percent: Option<u8>,
}

fn skipped(job: &Job) -> HostReport {
    let mut r = HostReport::new(&job.reach.name, &job.reach.address, job.plan.plays.clone());
    r.status = Status::Skipped;
    r.error = Some("not started: the rollout stopped before this host (never contacted)".into());
    r
}

/// Converge `jobs`; the result is in the order of `jobs`.
pub async fn run_fleet(
    jobs: Vec<Job>,
    cfg: RunConfig,
    connector: Arc<dyn Connector>,
    events: UnboundedSender<Event>,
    stop: Arc<AtomicBool>,
) -> Vec<HostReport> {
    let total = jobs.len();
    let _ = events.send(Event::RunStarted { total });
    let batch = cfg.serial.map_or(total.max(1), |s| s.batch_size(total));
    let sem = Arc::new(Semaphore::new(cfg.forks.max(1)));
    let mut reports: Vec<HostReport> = Vec::with_capacity(total);
    let (mut finished, mut failures) = (0usize, 0usize);
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let this: Vec<Job> = jobs.by_ref().take(batch).collect();
        if stop.load(Ordering::SeqCst) {
            reports.extend(this.iter().map(skipped));
            continue;
        }
        let mut handles = Vec::with_capacity(this.len());
        for job in this {
            let sem = Arc::clone(&sem);
            let connector = Arc::clone(&connector);
            let events = events.clone();
            let stop = Arc::clone(&stop);
            handles.push(tokio::spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return skipped(&job);
                };
                // Ctrl-C: start no new host.
                if stop.load(Ordering::SeqCst) {
                    return skipped(&job);
                }
                let _ = events.send(Event::HostStarted {
                    name: job.reach.name.clone(),
                });
                let ev = events.clone();
                let fallback = skipped(&job);
                let res = tokio::task::spawn_blocking(move || {
                    let name = job.reach.name.clone();
                    let progress = move |p: Progress| {
                        let _ = ev.send(match p {
                            Progress::Step(step) => Event::HostStep {
                                name: name.clone(),
                                step,
                            },
                            Progress::Trace(text) => Event::HostTrace {
                                name: name.clone(),
                                text,
                            },
                        });
                    };
                    transaction::run(connector.as_ref(), &job, &progress)
                })
                .await;
                let rep = match res {
                    Ok(r) => r,
                    Err(e) => {
                        let mut r = fallback;
                        r.status = Status::Failed;
                        r.error = Some(format!("internal error: the host's worker died: {e}"));
                        r
                    }
                };
                let _ = events.send(Event::HostFinished(Box::new(rep.clone())));
                rep
            }));
        }
        for h in handles {
            if let Ok(r) = h.await {
                if r.status != Status::Skipped {
                    finished += 1;
                    if r.status.is_failure() {
                        failures += 1;
                    }
                }
                reports.push(r);
            }
        }
        if let Some(max) = cfg.max_fail_percent {
            if finished > 0 && failures * 100 > usize::from(max) * finished && jobs.peek().is_some()
            {
                stop.store(true, Ordering::SeqCst);
                let _ = events.send(Event::Stopping {
                    reason: format!(
                        "{failures} of {finished} hosts failed, above --max-fail-percent {max}: the remaining hosts are skipped"
                    ),
                });
            }
        }
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_parses_counts_and_percentages() {
        assert_eq!(Serial::parse("5"), Ok(Serial::Count(5)));
        assert_eq!(Serial::parse("10%"), Ok(Serial::Percent(10)));
        assert!(Serial::parse("0").is_err());
        assert!(Serial::parse("0%").is_err());
        assert!(Serial::parse("101%").is_err());
        assert!(Serial::parse("x").is_err());
        assert_eq!(Serial::Percent(10).batch_size(95), 10);
        assert_eq!(Serial::Percent(1).batch_size(5), 1);
        assert_eq!(Serial::Count(3).batch_size(100), 3);
    }
}
