//! ENGINE: the per-host transaction ([`transaction`]) and the fleet runner
//! ([`runner`]). It never prints: it emits [`Event`]s and returns
//! [`HostReport`]s, and [`crate::report`] shows them.

pub mod report_types;
pub mod runner;
pub mod transaction;

pub use report_types::{Event, HostReport, Progress, Status, Step};
pub use runner::{RunConfig, Serial};
pub use transaction::Job;
