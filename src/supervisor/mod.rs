//! Supervision: per-service state machines driven by one event handler, and the runtime
//! that feeds it events and carries out its effects.

mod core;
mod deps;
mod event;
mod exit;
#[cfg(test)]
mod extremes;
mod output;
mod persist;
mod policy;
mod probes;
mod runtime;
mod service;
mod signals;
mod startup;
mod status;

pub use self::core::Supervisor;
pub use event::{Effect, Event, Now, Purpose};
pub use policy::{Decision, History, Jitter};
pub use runtime::{Control, RunError, RunOptions, run};
pub use service::{Phase, Service, Want};
pub use startup::{News, Outcome, StartupReport};
pub use status::{EndReason, ExitRecord, Status};
