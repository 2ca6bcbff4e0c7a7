//! The control socket: the protocol, the daemon's server and the client.
//!
//! `bind` and `server` are the daemon's side; `client` is runpmctl's; `codec` reads and
//! writes the lines of `protocol`; `render` turns replies into text. Where the socket lives
//! (the state directory, its lock, and how runpmctl locates it) belongs to [`crate::state`],
//! re-exported here for the callers that knew it from here.

mod bind;
mod client;
mod codec;
pub mod protocol;
mod render;
mod response;
mod server;
mod usage;

pub use crate::state::{
    Claim, Fallbacks, Holder, InstanceLock, LocateError, LockError, MAX_SOCKET_PATH, RELEASE_WAIT,
    SOCKET_NAME, STATE_DIR_ENV, StateDir, StateDirError, choose_socket_path, choose_state_dir,
    locate, resolve_state_dir,
};
pub use bind::{BindError, SocketGuard, bind};
pub use client::{Client, ClientError};
pub use codec::{encode_reply, encode_request, parse_request};
pub use protocol::*;
pub use render::*;
pub use response::{EventsResult, Response, ScaleResult};
pub use server::{Call, HelloInfo, IDLE_TIMEOUT, serve};
pub use usage::{cgroups_note, format_bytes, format_cpu};
