//! The daemon's notification socket: one `AF_UNIX` datagram socket for all services.
//!
//! Theory of operation. Services find the socket through `NOTIFY_SOCKET` and send one
//! datagram per sd_notify(3) call. Who sent it matters more than what it says, so the socket
//! has `SO_PASSCRED` set before it is bound: the kernel then attaches the sender's pid, uid
//! and gid to every datagram, whether or not the sender asked to, and a sender can claim
//! another pid only with privileges (the kernel checks explicit SCM_CREDENTIALS). A datagram
//! without credentials therefore cannot happen, and would be dropped if it did.
//!
//! File descriptors can ride along (SCM_RIGHTS). runpm closes every received fd as soon as
//! the datagram is read, unless the message says `FDSTORE=1`: that is the whole of the
//! `BARRIER=1` protocol — `systemd-notify` passes the write end of a pipe and waits for it to
//! be closed. Those of a `FDSTORE=1` message go with the datagram to the fd store, which
//! bounds them per service (`fd_store_max`) and closes the rest.
//!
//! Datagrams are read into a 4096-byte buffer, systemd's own limit; a longer one arrives
//! truncated and is dropped whole rather than half-understood.
//!
//! The socket is mode 0666 like systemd's: services may run as other users, and access is
//! decided by the credentials, not by the file mode. The directory around it is the caller's
//! business; note that a 0700 directory keeps other users out whatever the socket's mode.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;

use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, UnixCredentials,
    cmsg_space, recvmsg, setsockopt, sockopt,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::message::{self, Notification};
use crate::ipc::SocketGuard;

/// The socket's file name inside the state directory.
pub const SOCKET_NAME: &str = "notify.sock";

/// The largest datagram accepted, in bytes: systemd's `NOTIFY_BUFFER_MAX` (`PIPE_BUF`).
pub const MAX_MESSAGE: usize = 4096;

/// The most fds the kernel passes in one datagram (`SCM_MAX_FD`). The control buffer has room
/// for that many, so it is never truncated and every received fd is seen, and closed.
const MAX_FDS: usize = 253;

/// Where the notify socket of the state directory `state_dir` lives: `state_dir/notify.sock`,
/// or, when that is too long for `sun_path`, the same short fallbacks as the control socket
/// (`runpm-HASH-notify.sock` in `$XDG_RUNTIME_DIR`, else `/tmp/runpm-UID/HASH-notify.sock`,
/// a directory the caller creates as it does for the control socket).
pub fn socket_path(state_dir: &Utf8Path) -> Utf8PathBuf {
    let fallbacks = crate::ipc::Fallbacks::from_env();
    crate::ipc::choose_socket_path(state_dir, SOCKET_NAME, "-notify", &fallbacks).0
}

/// One notification, with the credentials the kernel attached to it.
#[derive(Debug)]
pub struct Datagram {
    /// The sender's pid in runpm's pid namespace; 0 when it has none there.
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub notifications: Vec<Notification>,
    /// The descriptors of a `FDSTORE=1` message (close-on-exec); none for any other.
    pub fds: Vec<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
enum SocketError {
    #[error("`{path}` exists and is not a socket; runpm will not replace it")]
    NotASocket { path: Utf8PathBuf },
    #[error("another process has its notify socket bound at `{path}`")]
    InUse { path: Utf8PathBuf },
    #[error("cannot bind the notify socket `{path}`")]
    Bind {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SocketError {
    /// As an `io::Error` of the right kind that still names the path.
    fn into_io(self) -> io::Error {
        let kind = match &self {
            SocketError::NotASocket { .. } => io::ErrorKind::AlreadyExists,
            SocketError::InUse { .. } => io::ErrorKind::AddrInUse,
            SocketError::Bind { source, .. } => source.kind(),
        };
        io::Error::new(kind, self)
    }
}

/// The bound notification socket. Dropping it closes the socket and removes its file, if the
/// file is still the one it bound.
#[derive(Debug)]
pub struct NotifySocket {
    // Declared before the guard so the socket is closed before its file goes.
    fd: AsyncFd<UnixDatagram>,
    /// Removes the file of a socket bound to a path when dropped; none for an abstract one.
    _file: Option<SocketGuard>,
    /// What `NOTIFY_SOCKET` says: the path, or `@name` for an abstract socket.
    address: String,
}

impl NotifySocket {
    /// Binds the socket at `path` (mode 0666), replacing a stale socket file left by an
    /// earlier run. Must be called within a tokio runtime.
    pub fn bind(path: &Utf8Path) -> io::Result<NotifySocket> {
        clear_the_way(path).map_err(SocketError::into_io)?;
        let bind_err = |source| SocketError::Bind {
            path: path.to_owned(),
            source,
        };
        let fd = nix::sys::socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| bind_err(e.into()).into_io())?;
        // Before bind: from the moment the path exists, every datagram must carry credentials.
        setsockopt(&fd, sockopt::PassCred, &true).map_err(|e| bind_err(e.into()).into_io())?;
        let addr = UnixAddr::new(path.as_std_path()).map_err(|e| bind_err(e.into()).into_io())?;
        nix::sys::socket::bind(fd.as_raw_fd(), &addr).map_err(|e| bind_err(e.into()).into_io())?;
        // From here on the file is ours, and the guard removes it if anything below fails.
        let guard = SocketGuard::of(path).map_err(|e| bind_err(e).into_io())?;
        // chmod after bind rather than a umask around it: umask is process-wide. Until the
        // chmod the socket is only stricter than intended.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| bind_err(e).into_io())?;
        let socket = UnixDatagram::from(fd);
        // SAFETY: the `UnixDatagram` owns its fd, which stays open and unchanged until the
        // `AsyncFd` (which owns the datagram socket) is dropped; nothing else closes it.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| bind_err(e.into()).into_io())?;
        Ok(NotifySocket {
            fd,
            address: path.to_string(),
            _file: Some(guard),
        })
    }

    /// Binds a socket in the abstract namespace under `name`: reachable by any user, for the
    /// services that run as another user and cannot enter runpm's private state directory.
    /// Who may speak is still decided by the credentials every datagram carries. It has no
    /// file, and disappears with the socket. Must be called within a tokio runtime.
    pub fn bind_abstract(name: &str) -> io::Result<NotifySocket> {
        let fd = nix::sys::socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        let addr = UnixAddr::new_abstract(name.as_bytes())?;
        nix::sys::socket::bind(fd.as_raw_fd(), &addr)?;
        let socket = UnixDatagram::from(fd);
        // SAFETY: as in `bind`.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(NotifySocket {
            fd,
            _file: None,
            address: format!("@{name}"),
        })
    }

    /// The value of `NOTIFY_SOCKET` for the services.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The socket's descriptor, kept open across a re-exec of runpm.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.get_ref().as_raw_fd()
    }

    /// Takes back, after a re-exec, the socket bound as `address` by the previous image.
    /// Must be called within a tokio runtime.
    pub fn adopt(fd: OwnedFd, address: String) -> io::Result<NotifySocket> {
        let file = match address.starts_with('@') {
            true => None,
            false => Some(SocketGuard::of(Utf8Path::new(&address))?),
        };
        let socket = UnixDatagram::from(fd);
        socket.set_nonblocking(true)?;
        // SAFETY: as in `bind`.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(NotifySocket {
            fd,
            _file: file,
            address,
        })
    }

    /// The next well-formed datagram. Datagrams without credentials, truncated ones and ones
    /// that do not parse are dropped (logged at debug) and the wait goes on; any fds they
    /// carried are closed all the same.
    ///
    /// Cancel-safe: a datagram is either returned or still queued in the socket. Attribute
    /// each datagram (see [`super::attribute`]) before calling `recv` again: the sender may be
    /// blocked on a `BARRIER=1` that only the next read releases, and is alive until then.
    pub async fn recv(&self) -> io::Result<Datagram> {
        loop {
            let received = self
                .fd
                .async_io(Interest::READABLE, |socket| receive(socket.as_fd()))
                .await?;
            if let Some(datagram) = received {
                return Ok(datagram);
            }
        }
    }
}

/// Reads one datagram; `Ok(None)` when it was read and dropped, `WouldBlock` when there is
/// none.
fn receive(socket: std::os::fd::BorrowedFd<'_>) -> io::Result<Option<Datagram>> {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut cmsg = vec![0u8; cmsg_space::<UnixCredentials>() + cmsg_space::<[RawFd; MAX_FDS]>()];
    let (bytes, flags, creds, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        // MSG_CMSG_CLOEXEC: received fds must not leak into a child spawned before they are
        // closed below.
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut creds = None;
                let mut fds = Vec::new();
                match msg.cmsgs() {
                    Ok(cmsgs) => {
                        for c in cmsgs {
                            match c {
                                ControlMessageOwned::ScmCredentials(c) => creds = Some(c),
                                ControlMessageOwned::ScmRights(received) => fds.extend(received),
                                other => {
                                    tracing::debug!(?other, "unexpected control message");
                                }
                            }
                        }
                    }
                    // Only MSG_CTRUNC, which the buffer's size rules out (see MAX_FDS).
                    Err(e) => tracing::warn!(error = %e, "notify control data truncated"),
                }
                break (msg.bytes, msg.flags, creds, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // SAFETY: the kernel created these fds for us in this recvmsg; nothing else knows them,
    // so each is owned (and closed) exactly once, here or by the fd store.
    let fds: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();

    let Some(creds) = creds else {
        tracing::debug!("dropping a notification without credentials");
        return Ok(None);
    };
    let pid = creds.pid();
    if flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
        tracing::debug!(
            pid,
            "dropping a notification longer than {MAX_MESSAGE} bytes"
        );
        return Ok(None);
    }
    match message::parse(&buf[..bytes]) {
        Ok(notifications) => {
            let storing = notifications
                .iter()
                .any(|n| matches!(n, Notification::Other(k, v) if k == "FDSTORE" && v == "1"));
            Ok(Some(Datagram {
                pid,
                uid: creds.uid(),
                gid: creds.gid(),
                notifications,
                // Anything else closes at once (what `BARRIER=1` waits for).
                fds: if storing { fds } else { Vec::new() },
            }))
        }
        Err(e) => {
            tracing::debug!(pid, error = %e, "dropping a malformed notification");
            Ok(None)
        }
    }
}

/// Makes sure `path` can be bound: nothing there, or a socket nobody has bound any more. The
/// state directory (and the instance lock the daemon holds on it) makes the path ours; the
/// check still refuses to delete what cannot be a leftover of ours.
fn clear_the_way(path: &Utf8Path) -> Result<(), SocketError> {
    let inspect_err = |source| SocketError::Bind {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(inspect_err(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket {
            path: path.to_owned(),
        });
    }
    // Connecting to a datagram socket succeeds only while some socket is bound to the path.
    let probe = UnixDatagram::unbound().map_err(inspect_err)?;
    match probe.connect(path) {
        Ok(()) => Err(SocketError::InUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::debug!(path = %path, "removing the stale notify socket of a previous run");
            std::fs::remove_file(path).map_err(inspect_err)
        }
        Err(e) => Err(inspect_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    use nix::sys::socket::{ControlMessage, sendmsg};

    use super::*;
    use crate::testing::tempdir;

    const LIMIT: Duration = Duration::from_secs(5);

    async fn recv(socket: &NotifySocket) -> Datagram {
        tokio::time::timeout(LIMIT, socket.recv())
            .await
            .expect("no datagram within the limit")
            .unwrap()
    }

    fn me() -> (i32, u32, u32) {
        (
            std::process::id() as i32,
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    }

    #[tokio::test]
    async fn an_abstract_socket_takes_datagrams_with_credentials_and_has_no_file() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("runpm-test/{}", std::process::id());
        let socket = NotifySocket::bind_abstract(&name).unwrap();
        assert_eq!(
            socket.address(),
            format!("@{name}"),
            "NOTIFY_SOCKET's spelling"
        );
        let client = UnixDatagram::unbound().unwrap();
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        client.send_to_addr(b"READY=1", &addr).unwrap();
        let d = recv(&socket).await;
        assert_eq!((d.pid, d.uid, d.gid), me());
        assert_eq!(d.notifications, [Notification::Ready]);
        // A second daemon cannot take the same name while this one holds it.
        assert!(NotifySocket::bind_abstract(&name).is_err());
    }

    #[tokio::test]
    async fn credentials_arrive_without_the_sender_asking() {
        let (_tmp, dir) = tempdir();
        let socket = NotifySocket::bind(&dir.join("n.sock")).unwrap();
        // A plain datagram socket: no SO_PASSCRED, no SCM_CREDENTIALS.
        let client = UnixDatagram::unbound().unwrap();
        client
            .send_to(b"READY=1\nSTATUS=up\n", socket.address())
            .unwrap();
        let d = recv(&socket).await;
        assert_eq!((d.pid, d.uid, d.gid), me());
        assert_eq!(
            d.notifications,
            [Notification::Ready, Notification::Status("up".into())]
        );
    }

    #[tokio::test]
    async fn mode_0666_and_removed_on_drop() {
        let (_tmp, dir) = tempdir();
        let path = dir.join("n.sock");
        let socket = NotifySocket::bind(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o666);
        drop(socket);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_a_live_one_is_not() {
        let (_tmp, dir) = tempdir();
        let path = dir.join("n.sock");
        drop(UnixDatagram::bind(&path).unwrap());
        let socket = NotifySocket::bind(&path).unwrap();
        let err = NotifySocket::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains("n.sock"), "{err}");
        drop(socket);
    }

    #[tokio::test]
    async fn a_file_is_not_replaced() {
        let (_tmp, dir) = tempdir();
        let path = dir.join("n.sock");
        std::fs::write(&path, "data").unwrap();
        let err = NotifySocket::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }

    #[tokio::test]
    async fn drop_leaves_a_replaced_socket_alone() {
        let (_tmp, dir) = tempdir();
        let path = dir.join("n.sock");
        let socket = NotifySocket::bind(&path).unwrap();
        std::fs::rename(&path, dir.join("moved.sock")).unwrap();
        let _theirs = UnixDatagram::bind(&path).unwrap();
        drop(socket);
        assert!(path.exists());
    }

    /// Sends `payload` with the write end of a fresh pipe and returns the read end, which
    /// reaches EOF once the receiver has closed its copy.
    fn send_with_fd(path: &Utf8Path, payload: &[u8]) -> std::fs::File {
        let (read, write) = nix::unistd::pipe().unwrap();
        let client = UnixDatagram::unbound().unwrap();
        let addr = UnixAddr::new(path.as_std_path()).unwrap();
        let fds = [write.as_raw_fd()];
        sendmsg(
            client.as_raw_fd(),
            &[io::IoSlice::new(payload)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&addr),
        )
        .unwrap();
        drop(write);
        std::fs::File::from(read)
    }

    /// Reads the pipe to EOF on a blocking thread, within the limit.
    async fn assert_eof(mut read: std::fs::File) {
        let eof = tokio::task::spawn_blocking(move || read.read(&mut [0u8; 1]));
        let n = tokio::time::timeout(LIMIT, eof)
            .await
            .expect("the passed fd was never closed")
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn passed_fds_are_closed_at_once() {
        let (_tmp, dir) = tempdir();
        let socket = NotifySocket::bind(&dir.join("n.sock")).unwrap();
        let read = send_with_fd(Utf8Path::new(socket.address()), b"BARRIER=1");
        let d = recv(&socket).await;
        assert_eq!(d.notifications, [Notification::Barrier]);
        assert_eof(read).await;
    }

    #[tokio::test]
    async fn oversized_and_malformed_datagrams_are_dropped_and_their_fds_closed() {
        let (_tmp, dir) = tempdir();
        let socket = NotifySocket::bind(&dir.join("n.sock")).unwrap();
        let mut big = b"STATUS=".to_vec();
        big.resize(MAX_MESSAGE + 1, b'x');
        let read = send_with_fd(Utf8Path::new(socket.address()), &big);
        let client = UnixDatagram::unbound().unwrap();
        client.send_to(b"READY=1\0", socket.address()).unwrap();
        // Exactly the limit is still fine.
        let mut full = b"STATUS=".to_vec();
        full.resize(MAX_MESSAGE, b'y');
        client.send_to(&full, socket.address()).unwrap();
        client.send_to(b"STOPPING=1", socket.address()).unwrap();
        let d = recv(&socket).await;
        assert_eq!(
            d.notifications,
            [Notification::Status("y".repeat(MAX_MESSAGE - 7))]
        );
        assert_eq!(recv(&socket).await.notifications, [Notification::Stopping]);
        assert_eof(read).await;
    }

    #[tokio::test]
    async fn an_empty_datagram_is_an_empty_list() {
        let (_tmp, dir) = tempdir();
        let socket = NotifySocket::bind(&dir.join("n.sock")).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client.send_to(b"", socket.address()).unwrap();
        assert_eq!(recv(&socket).await.notifications, []);
    }

    #[test]
    fn socket_path_inside_the_state_dir() {
        assert_eq!(
            socket_path(Utf8Path::new("/srv/app/.runpm")),
            "/srv/app/.runpm/notify.sock"
        );
        let long = Utf8PathBuf::from(format!("/{}", "d/".repeat(60)));
        let path = socket_path(&long);
        assert!(path.as_str().len() <= crate::ipc::MAX_SOCKET_PATH, "{path}");
        assert!(path.as_str().ends_with("-notify.sock"), "{path}");
    }
}
