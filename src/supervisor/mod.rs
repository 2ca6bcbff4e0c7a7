//! Supervision: per-service state machines driven by one synchronous event handler. The
//! async shell that feeds it events and carries out its effects is [`crate::daemon`].

mod core;
mod deps;
mod event;
mod exit;
#[cfg(test)]
mod extremes;
mod policy;
pub mod schedule;
mod service;
mod startup;
mod status;

pub use self::core::Supervisor;
pub use self::core::carry::{CarriedTable, NotNow};
pub use event::{Effect, Event, NotifyRoute, Now, ProbeFailure, Purpose};
pub use policy::{Decision, History, Jitter};
// The shell moved to `daemon/`; its entry points stay reachable here for the binaries.
pub use crate::daemon::{Control, RunError, RunOptions, run};
pub use service::{Phase, Service, Want};
pub use startup::{News, Outcome, StartupReport, outcomes as startup_outcomes};
pub use status::{EndReason, ExitRecord, Status};
