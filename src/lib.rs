//! runpm: a declarative process supervisor.
//!
//! Data flows one way: config → desired state → plan → actions → running table.
//! `config` loads and validates unit files into specs; `reconcile` diffs what is wanted
//! against what runs; `supervisor` holds the per-service state machines and decides, as pure
//! functions returning effects, which `daemon` (the async shell) carries out; `process` is the narrow seam to the kernel (spawn, signal,
//! reap); `logs` captures and prints the services' output; `watch` notices edits to the config
//! and asks for a reload; `state` persists the snapshot that survives a crash or a reboot.
//! `cli` holds both binaries' command lines and [`cli::exit::Exit`], their one table of exit
//! codes.

// Every `unsafe` block says why it is sound, and no `unwrap` sits on a runtime path (the
// daemon may be PID 1: a panic there takes the container down). Tests may unwrap.
#![warn(clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod activation;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detach;
pub mod errors;
pub mod export;
pub mod import;
pub mod ipc;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod owner;
pub mod process;
pub mod quote;
pub mod reconcile;
pub mod reexec;
pub mod report;
pub mod state;
pub mod supervisor;
#[cfg(test)]
pub(crate) mod testing;
pub mod top;
pub mod watch;
