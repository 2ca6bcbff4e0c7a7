//! The two tables the planner compares: what is wanted and what is.

use std::sync::Arc;

use crate::config::ServiceSpec;

/// What the config and the operator want for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub spec: Arc<ServiceSpec>,
    /// Wanted running: autostart, or started by the operator and not stopped since.
    pub up: bool,
}

/// Whether a process exists for a service, reduced to what the planner needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RunState {
    /// A process exists or will (starting, running, backoff, stopping).
    Active,
    /// Ended, and the restart policy says stay down (exited, failed).
    Settled,
    /// Stopped by the operator, or never started.
    Stopped,
}

/// What the supervisor holds for one service: the spec it last applied and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub spec: Arc<ServiceSpec>,
    pub run: RunState,
}
