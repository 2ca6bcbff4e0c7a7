//! Socket activation and the fd store (issue 14): descriptors runpm holds for a service
//! and passes to each of its runs as 3, 4, … with `LISTEN_FDS`, `LISTEN_PID` and
//! `LISTEN_FDNAMES`, as systemd does (sd_listen_fds(3)).
//!
//! - `bind.rs`: binding one `listen` address (tcp, udp, unix), with the errors a user reads;
//! - `sockets.rs`: the sockets of every service, kept across its restarts and reloads and
//!   rebound only where `listen` changed;
//! - `store.rs`: the descriptors services park with sd_notify `FDSTORE=1`;
//! - `passing.rs`: what one run receives: the descriptors in order and the variables that
//!   name them.
//!
//! All of runpm's copies are close-on-exec: only the spawn path (see `process::vfork`)
//! places them, at 3 and up, in the one child they are meant for.

mod bind;
mod passing;
mod sockets;
mod store;

pub use bind::{BindError, bind};
pub use passing::{Passing, listen_env};
pub use sockets::Sockets;
pub use store::{FdStore, StoreOutcome};
