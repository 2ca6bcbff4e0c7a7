//! Binding one `listen` address.
//!
//! TCP sockets get `SO_REUSEADDR` (a restarted runpm must not wait for TIME_WAIT to end, as
//! every server does), IPv6 ones `IPV6_V6ONLY` (`tcp:[::1]:8000` means that address, as
//! systemd's `BindIPv6Only=` default does for a specific address; a wildcard `[::]` then
//! leaves IPv4 to another socket). Unix sockets get their parent directory created, a stale
//! socket file replaced only when nobody accepts on it, and `mode` applied. Every socket is
//! blocking (what a service expects from systemd without `NonBlocking=`) and close-on-exec.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, UnixAddr,
    bind as nix_bind, listen, setsockopt, socket, sockopt,
};

use crate::config::{Listen, ListenAddress};
use crate::process::{Holder, Listener, listener_owner};

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on `{address}`: {}", in_use(.holder))]
    InUse {
        address: String,
        holder: Option<Holder>,
    },
    #[error(
        "cannot listen on `{address}`: `{path}` exists and is not a socket; remove it or pick another path"
    )]
    NotASocket { address: String, path: Utf8PathBuf },
    #[error("cannot listen on `{address}`: another process accepts on `{path}`")]
    UnixInUse { address: String, path: Utf8PathBuf },
    #[error("cannot listen on `{address}`")]
    Io {
        address: String,
        #[source]
        source: io::Error,
    },
}

fn in_use(holder: &Option<Holder>) -> String {
    match holder {
        Some(h) => format!("the address is in use by {h}"),
        None => "the address is in use (by a process runpm cannot see)".into(),
    }
}

/// Binds `listen` and starts listening (stream sockets); the socket is close-on-exec.
pub fn bind(listen: &Listen) -> Result<OwnedFd, BindError> {
    let address = listen.address.to_string();
    let io = |source: io::Error| BindError::Io {
        address: address.clone(),
        source,
    };
    match &listen.address {
        ListenAddress::Tcp(addr) | ListenAddress::Udp(addr) => {
            let stream = listen.address.is_stream();
            inet(*addr, stream, listen.backlog).map_err(|e| {
                if e.kind() == io::ErrorKind::AddrInUse {
                    BindError::InUse {
                        holder: if stream { holder(*addr) } else { None },
                        address: address.clone(),
                    }
                } else {
                    io(e)
                }
            })
        }
        ListenAddress::Unix(path) => {
            clear_the_way(path).map_err(|e| match e {
                Stale::NotASocket => BindError::NotASocket {
                    address: address.clone(),
                    path: path.clone(),
                },
                Stale::Live => BindError::UnixInUse {
                    address: address.clone(),
                    path: path.clone(),
                },
                Stale::Io(e) => io(e),
            })?;
            unix(path, listen.backlog, listen.mode).map_err(io)
        }
    }
}

/// Who holds a TCP port, to name in the error.
fn holder(addr: SocketAddr) -> Option<Holder> {
    match listener_owner(addr, std::process::id() as i32) {
        Listener::Service(h) | Listener::Other(Some(h)) => Some(h),
        Listener::Other(None) | Listener::NotFound => None,
    }
}

fn backlog(n: u32) -> io::Result<Backlog> {
    // The kernel caps it at net.core.somaxconn anyway.
    Backlog::new(n.min(i32::MAX as u32) as i32).map_err(io::Error::from)
}

fn inet(addr: SocketAddr, stream: bool, n: u32) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let ty = if stream {
        SockType::Stream
    } else {
        SockType::Datagram
    };
    let fd = socket(family, ty, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    match addr {
        SocketAddr::V4(v4) => nix_bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?,
        SocketAddr::V6(v6) => {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            nix_bind(fd.as_raw_fd(), &SockaddrIn6::from(v6))?
        }
    }
    if stream {
        listen(&fd, backlog(n)?)?;
    }
    Ok(fd)
}

fn unix(path: &Utf8Path, n: u32, mode: u32) -> io::Result<OwnedFd> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    nix_bind(fd.as_raw_fd(), &UnixAddr::new(path.as_std_path())?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    listen(&fd.as_fd(), backlog(n)?)?;
    Ok(fd)
}

enum Stale {
    NotASocket,
    Live,
    Io(io::Error),
}

/// Nothing at `path`, or a socket file nobody accepts on (removed): a leftover of an
/// earlier run. A live socket or any other file is left alone.
fn clear_the_way(path: &Utf8Path) -> Result<(), Stale> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Stale::Io(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(Stale::NotASocket);
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Stale::Live),
        Err(_) => std::fs::remove_file(path).map_err(Stale::Io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Listen, ListenAddress};

    fn listen(address: &str) -> Listen {
        Listen {
            template: None,
            address: ListenAddress::parse(address).unwrap(),
            name: "x".into(),
            backlog: 16,
            mode: 0o600,
        }
    }

    fn port_of(fd: &OwnedFd) -> u16 {
        let addr: SockaddrIn = nix::sys::socket::getsockname(fd.as_raw_fd()).unwrap();
        addr.port()
    }

    #[test]
    fn tcp_accepts_connections_before_anyone_calls_accept() {
        let fd = bind(&listen("tcp:127.0.0.1:0")).unwrap();
        let port = port_of(&fd);
        // The backlog takes the connection although nobody accepts yet.
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // SAFETY: F_GETFD only reads the flags.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "runpm's copy is close-on-exec");
    }

    #[test]
    fn a_taken_port_names_its_holder() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind(&listen(&format!("tcp:127.0.0.1:{port}"))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("`tcp:127.0.0.1:{port}`")), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "names this test process: {text}"
        );
    }

    #[test]
    fn ipv6_is_v6_only_and_udp_binds() {
        if let Ok(fd) = bind(&listen("tcp:[::1]:0")) {
            assert!(nix::sys::socket::getsockopt(&fd, sockopt::Ipv6V6Only).unwrap());
        }
        let fd = bind(&listen("udp:127.0.0.1:0")).unwrap();
        let ty = nix::sys::socket::getsockopt(&fd, sockopt::SockType).unwrap();
        assert_eq!(ty, SockType::Datagram);
    }

    #[test]
    fn unix_replaces_a_stale_file_keeps_a_live_one_and_sets_the_mode() {
        let (_guard, dir) = crate::testing::tempdir();
        let path = dir.join("run/app.sock");
        let address = format!("unix:{path}");
        let first = bind(&listen(&address)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Live: someone accepts on it.
        assert!(matches!(
            bind(&listen(&address)),
            Err(BindError::UnixInUse { .. })
        ));
        // Stale: the file stays, nobody listens.
        drop(first);
        let _second = bind(&listen(&address)).unwrap();
        std::os::unix::net::UnixStream::connect(&path).unwrap();

        let file = dir.join("plain");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            bind(&listen(&format!("unix:{file}"))),
            Err(BindError::NotASocket { .. })
        ));
    }
}
