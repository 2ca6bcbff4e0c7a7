//! Reconciliation: the one way to change what runs.
//!
//! Start-up, reload, operator commands and resurrect all build a desired table (which spec,
//! wanted up or down) and hand it to [`plan`] together with what is observed. The planner is a
//! pure set difference: it is never told why it runs, so it must be idempotent — applying its
//! plan and planning again yields nothing. [`describe`] turns a plan into the wire form that
//! `runpmctl reload` prints.

mod action;
mod describe;
mod fields;
mod order;
mod plan;
mod state;
#[cfg(test)]
mod testing;

#[cfg(test)]
mod live;
#[cfg(test)]
mod properties;

pub use action::{Action, Reason};
pub use describe::{describe, unchanged};
pub use fields::changed_fields;
pub use plan::plan;
pub use state::{Desired, Observed, RunState};
