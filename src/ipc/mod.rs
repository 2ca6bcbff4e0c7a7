//! The control socket: where it lives, the protocol, the daemon's server and the client.
//!
//! `statedir` and `sockpath` decide the paths both binaries agree on; `lock` keeps one daemon
//! per state directory; `bind` and `server` are the daemon's side; `client` is runpmctl's;
//! `codec` reads and writes the lines of `protocol`; `render` turns replies into text.

mod bind;
mod client;
mod codec;
mod locate;
mod lock;
pub mod protocol;
mod render;
mod server;
mod sockpath;
mod statedir;

pub use bind::{BindError, SocketGuard, bind};
pub use client::{Client, ClientError};
pub use codec::{encode_reply, encode_request, parse_request};
pub use locate::{LocateError, locate};
pub use lock::{Claim, Holder, InstanceLock, LockError, RELEASE_WAIT};
pub use protocol::*;
pub use render::*;
pub use server::{Call, HelloInfo, IDLE_TIMEOUT, serve};
pub use sockpath::{Fallbacks, MAX_SOCKET_PATH, SOCKET_NAME, choose_named as choose_socket_path};
pub use statedir::{
    STATE_DIR_ENV, StateDir, StateDirError, choose as choose_state_dir,
    resolve as resolve_state_dir,
};
