//! Errors that end a whole command, before or instead of a run.
//!
//! Per-host failures are not errors here: they are statuses in the report
//! (docs/design.md, "Exit codes"). What lives here is what makes rampart exit 1 without contacting
//! any host: bad input (always with file:line:column where it is known),
//! usage mistakes, and lab failures.

use std::fmt;
use std::path::PathBuf;

/// A problem in an input file, pointing at the place that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: PathBuf,
    /// 1-based; 0 when the position is not known.
    pub line: usize,
    /// 1-based; 0 when the position is not known.
    pub column: usize,
    pub message: String,
}

impl InputError {
    pub fn new(
        file: impl Into<PathBuf>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        InputError {
            file: file.into(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error about a whole file (unreadable, empty, ...).
    pub fn whole_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::new(file, 0, 0, message)
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file.display(), self.message),
            (l, 0) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            (l, c) => write!(f, "{}:{}:{}: {}", self.file.display(), l, c, self.message),
        }
    }
}

impl std::error::Error for InputError {}

/// Everything that stops a command as a whole. All of these exit 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{0}")]
    Usage(String),
    #[error("lab: {0}")]
    Lab(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
