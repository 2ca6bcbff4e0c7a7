//! The daemon's shell: the thin async loop around the supervisor's synchronous core. It
//! turns signals, reaped children, control requests, sd_notify datagrams, file events and
//! due deadlines into [`crate::supervisor::Event`]s, and carries out the
//! [`crate::supervisor::Effect`]s the core returns (spawn, signal, probe, reply, persist).
//! Every decision lives in `supervisor/`; what is here only does.

mod executor;
mod output;
mod persist;
mod probes;
mod runtime;
mod shell;
mod signals;

pub use runtime::{Control, RunError, RunOptions, run};
