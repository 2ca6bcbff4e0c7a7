//! runpm as the *sender*: when a service manager started runpm with `NOTIFY_SOCKET` (a
//! systemd unit with `Type=notify`), runpm tells it `READY=1` once its services are up and
//! `STOPPING=1` when it begins to shut down, each with a `STATUS=` line. Reloads are not
//! announced: `Type=notify` does not need them, and `ExecReload=` sends SIGHUP.
//!
//! Sends never block: the datagram socket is non-blocking, and a manager that stopped
//! reading loses a status line rather than stopping runpm.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Parent {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Parent {
    /// The manager named by `NOTIFY_SOCKET`, if any (a path, or `@name` for an abstract
    /// socket). Read once at start-up: services never inherit the variable.
    pub fn from_env() -> Option<Parent> {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|t| !t.is_empty())?;
        let addr = match target.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
            None => SocketAddr::from_pathname(&target).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        socket.set_nonblocking(true).ok()?;
        Some(Parent { socket, addr })
    }

    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::debug!("cannot notify the service manager ({message:?}): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_the_socket_named_by_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.sock");
        let manager = UnixDatagram::bind(&path).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        let parent = Parent {
            socket,
            addr: SocketAddr::from_pathname(&path).unwrap(),
        };
        parent.send("READY=1\nSTATUS=3 services running");
        let mut buf = [0u8; 128];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=3 services running");
    }
}
