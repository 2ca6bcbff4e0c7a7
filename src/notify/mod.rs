//! The daemon's side of systemd's notification protocol (sd_notify(3)).
//!
//! `socket` binds the datagram socket and receives messages with the sender's credentials;
//! `message` parses their payload; `attribute` decides which service a sender belongs to;
//! `env` is what a service is told; `parent` is runpm notifying its own service manager. What a notification does to a service is the
//! supervisor's business.

mod attribute;
mod env;
mod message;
mod parent;
mod socket;

pub use attribute::{attribute, pgid_of};
pub use env::{NOTIFY_VARS, service_env};
pub use message::{MessageError, Notification, parse};
pub use parent::{Parent, ParentNote, monotonic_usec, watchdog_from_env};
pub use socket::{Datagram, MAX_MESSAGE, NotifySocket, SOCKET_NAME, socket_path};
