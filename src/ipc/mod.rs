//! The control socket: protocol, server and client.

pub mod protocol;

pub use protocol::*;
