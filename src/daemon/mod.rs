//! The daemon's shell: the thin async loop around the supervisor's synchronous core. It
//! turns signals, reaped children, control requests, sd_notify datagrams, file events and
//! due deadlines into [`crate::supervisor::Event`]s, and carries out the
//! [`crate::supervisor::Effect`]s the core returns (spawn, signal, probe, reply, persist).
//! Every decision lives in `supervisor/`; what is here only does.
//!
//! - `setup.rs`: what the loop listens on besides signals: the sd_notify sockets and the
//!   config watcher;
//! - `runtime.rs`: the loop, which waits for the next event or the core's next deadline;
//! - `executor.rs`: carries out a turn's effects in order, every side effect through its
//!   `Hands` trait (unit-tested with a fake);
//! - `shell.rs`: the real `Hands` (spawn, signal, probes, files, log serving, parent);
//! - `probes.rs`, `output.rs`, `persist.rs`, `signals.rs`: one job each.

mod contain;
mod events;
mod executor;
mod http;
mod output;
mod persist;
mod probes;
mod reexec;
mod runtime;
mod setup;
mod shell;
mod signals;

pub use reexec::{Resumed, adopt};
pub use runtime::{Control, RunError, RunOptions, run};
