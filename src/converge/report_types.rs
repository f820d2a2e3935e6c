//! What the engine tells the world: per-host reports and progress events.
//! The engine never prints; [`crate::report`] turns these into output.

use serde::{Deserialize, Serialize};

/// A host's outcome (docs/design.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Changed,
    Drift,
    RolledBack,
    Failed,
    Unreachable,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Drift => "drift",
            Status::RolledBack => "rolled_back",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
            Status::Skipped => "skipped",
        }
    }

    /// Counts toward `--max-fail-percent` and exit code 3.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::RolledBack | Status::Failed | Status::Unreachable
        )
    }
}

/// The step a host is in (progress) or where it failed (report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Connect,
    Facts,
    Diff,
    Canon,
    Predict,
    Test,
    Backup,
    Arm,
    Apply,
    Confirm,
    Verify,
    Persist,
    Boot,
    Rollback,
    Done,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Facts => "facts",
            Step::Diff => "diff",
            Step::Canon => "canon",
            Step::Predict => "predict",
            Step::Test => "test",
            Step::Backup => "backup",
            Step::Arm => "arm",
            Step::Apply => "apply",
            Step::Confirm => "confirm",
            Step::Verify => "verify",
            Step::Persist => "persist",
            Step::Boot => "boot",
            Step::Rollback => "rollback",
            Step::Done => "done",
        }
    }
}

/// One host's entry in the report (docs/design.md, "Formats"). Deserialize: `rampart report
/// merge` reads the JSON reports of shards back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostReport {
    pub name: String,
    pub address: String,
    pub status: Status,
    pub os: Option<String>,
    pub backend: Option<String>,
    pub persisted: Vec<String>,
    /// rampart's own boot loader, when this run installed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed: Vec<String>,
    pub diff: Option<String>,
    pub error: Option<String>,
    /// The step an error happened in.
    pub step: Option<Step>,
    pub warnings: Vec<String>,
    /// `iptables -L -n` after a change, as evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing: Option<String>,
    pub plays: Vec<String>,
    pub duration_ms: u64,
}

impl HostReport {
    pub fn new(name: &str, address: &str, plays: Vec<String>) -> Self {
        HostReport {
            name: name.to_string(),
            address: address.to_string(),
            status: Status::Failed,
            os: None,
            backend: None,
            persisted: Vec::new(),
            installed: Vec::new(),
            diff: None,
            error: None,
            step: None,
            warnings: Vec::new(),
            listing: None,
            plays,
            duration_ms: 0,
        }
    }
}

/// What a host's transaction tells as it goes: the step it enters, and
/// (with `-vv`) a trace of what it sends and what comes back.
#[derive(Debug, Clone)]
pub enum Progress {
    Step(Step),
    Trace(String),
}

/// Progress of a run, in the order things happen.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run is about to start `total` hosts.
    RunStarted {
        total: usize,
    },
    HostStarted {
        name: String,
    },
    HostStep {
        name: String,
        step: Step,
    },
    /// `-vv`: a step sent to the host and what it printed.
    HostTrace {
        name: String,
        text: String,
    },
    HostFinished(Box<HostReport>),
    /// The rollout stopped starting hosts (max-fail or a signal).
    Stopping {
        reason: String,
    },
}
