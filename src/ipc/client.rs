//! The client's side of the control socket (blocking; used by runpmctl).
//!
//! [`Client::connect`] connects and exchanges `hello`; [`Client::call`] sends one request and
//! waits, up to a deadline, for the reply that carries its id. "No daemon" (no socket file,
//! or a stale one nobody listens on) is its own error, distinct from every other failure,
//! because it is an expected state that runpmctl reports with its own exit code.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use super::codec::encode_request;
use super::protocol::{ErrorKind, HelloResult, PROTOCOL_VERSION, ProtocolError, Reply, Request};
use crate::state::{StateDir, StateDirError};

/// How long the daemon may take to answer `hello`: it answers without consulting the
/// supervisor, so only a wedged daemon takes long.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest reply line read. Replies carry status tables and log lines, far below this;
/// the bound only keeps a misbehaving peer from exhausting memory.
const MAX_REPLY: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", no_daemon(socket, dir.as_deref()))]
    NoDaemon {
        socket: Utf8PathBuf,
        /// The state directory the socket was derived from, when known.
        dir: Option<Utf8PathBuf>,
    },
    #[error(
        "permission denied on the control socket `{socket}` (is runpm running as another user?)"
    )]
    PermissionDenied {
        socket: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to the control socket `{socket}`")]
    Connect {
        socket: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the socket's directory is unsafe")]
    UnsafeSocketDir(#[source] StateDirError),
    #[error("the state directory is unsafe; use --socket PATH to reach a daemon there on purpose")]
    UnsafeStateDir(#[source] StateDirError),
    #[error("the daemon refused this connection: {message}")]
    Forbidden { message: String },
    #[error("protocol version mismatch: {message}")]
    Version { message: String },
    #[error("no reply from the daemon within {}", humantime::format_duration(*.timeout))]
    Timeout { timeout: Duration },
    #[error("the daemon closed the connection before replying")]
    Disconnected,
    #[error("cannot talk to the daemon over `{socket}`")]
    Io {
        socket: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the daemon sent a reply that cannot be read")]
    BadReply(#[source] serde_json::Error),
    #[error("the daemon refused `hello`: {0}")]
    Hello(#[source] ProtocolError),
}

fn no_daemon(socket: &Utf8Path, dir: Option<&Utf8Path>) -> String {
    match dir {
        Some(dir) => format!("no runpm daemon is running for {dir} (socket {socket})"),
        None => format!("no runpm daemon is listening on {socket}"),
    }
}

impl ClientError {
    /// Whether this says that no daemon runs (as opposed to one that misbehaves).
    pub fn is_no_daemon(&self) -> bool {
        matches!(self, ClientError::NoDaemon { .. })
    }
}

/// A connection that has completed `hello`.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    socket: Utf8PathBuf,
    next_id: u64,
    hello: HelloResult,
}

/// "No timeout" for a follower: a year is as long as anyone follows a log.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// `timeout` from now, at most [`FOREVER`]: `--timeout 18446744073709551615s` must not make
/// `Instant + Duration` panic.
fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(FOREVER)).unwrap_or(now)
}

impl Client {
    /// Connects to the daemon of a state directory, after checking that a fallback socket
    /// directory (`/tmp/runpm-UID`) is private and ours.
    pub fn connect_state_dir(state: &StateDir) -> Result<Client, ClientError> {
        state
            .check_state_dir()
            .map_err(ClientError::UnsafeStateDir)?;
        state
            .check_socket_dir()
            .map_err(ClientError::UnsafeSocketDir)?;
        Client::connect(&state.socket).map_err(|e| match e {
            ClientError::NoDaemon { socket, .. } => ClientError::NoDaemon {
                socket,
                dir: Some(state.dir.clone()),
            },
            other => other,
        })
    }

    /// Connects to the socket at `socket` and exchanges `hello`.
    pub fn connect(socket: &Utf8Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|source| match source.kind() {
            // No socket file, or one left by a daemon that died: nobody is running.
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NoDaemon {
                socket: socket.to_owned(),
                dir: None,
            },
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                socket: socket.to_owned(),
                source,
            },
            _ => ClientError::Connect {
                socket: socket.to_owned(),
                source,
            },
        })?;
        let io_err = |source| ClientError::Io {
            socket: socket.to_owned(),
            source,
        };
        let writer = stream.try_clone().map_err(io_err)?;
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            socket: socket.to_owned(),
            next_id: 1,
            hello: HelloResult {
                version: 0,
                daemon_pid: 0,
                config: String::new(),
            },
        };
        let reply = client.call(
            &Request::Hello {
                version: PROTOCOL_VERSION,
            },
            HELLO_TIMEOUT,
        )?;
        match reply.into_result() {
            Ok(result) => {
                client.hello = result.decode().map_err(ClientError::BadReply)?;
                Ok(client)
            }
            Err(e) if e.kind == ErrorKind::Forbidden => {
                Err(ClientError::Forbidden { message: e.message })
            }
            Err(e) if e.kind == ErrorKind::Version => {
                Err(ClientError::Version { message: e.message })
            }
            Err(e) => Err(ClientError::Hello(e)),
        }
    }

    /// What the daemon said in `hello`: its pid and the config it runs.
    pub fn hello(&self) -> &HelloResult {
        &self.hello
    }

    /// Sends `request` and waits up to `timeout` for its reply. An error reply is returned
    /// as a `Reply` (see [`Reply::into_result`]); `Err` means the exchange itself failed.
    /// After an `Err`, the connection's state is unknown: connect again.
    pub fn call<R: Serialize + ?Sized>(
        &mut self,
        request: &R,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = encode_request(id, request).map_err(ClientError::BadReply)?;
        // A daemon that refuses us writes its refusal and closes at once, so our write can
        // fail with EPIPE while the refusal waits to be read: read before giving up.
        let written = self.writer.write_all(&line);
        match self.read_reply(id, deadline(timeout), timeout) {
            Err(ClientError::Disconnected) => match written {
                Err(source) => Err(ClientError::Io {
                    socket: self.socket.clone(),
                    source,
                }),
                Ok(()) => Err(ClientError::Disconnected),
            },
            other => other,
        }
    }

    /// Sends `request` and hands every reply to `each` until it returns false or the daemon
    /// ends the stream (a streaming call such as `logs -f`). The first reply must come
    /// within `timeout`; later ones may take as long as they take.
    pub fn stream<R: Serialize + ?Sized>(
        &mut self,
        request: &R,
        timeout: Duration,
        mut each: impl FnMut(Reply) -> bool,
    ) -> Result<(), ClientError> {
        let mut reply = self.call(request, timeout)?;
        let id = self.next_id - 1;
        loop {
            // An error ends the stream, after the caller has seen it.
            let ok = reply.ok;
            if !each(reply) || !ok {
                return Ok(());
            }
            reply = match self.read_reply(id, deadline(FOREVER), FOREVER) {
                Ok(reply) => reply,
                Err(ClientError::Disconnected) => return Ok(()),
                Err(e) => return Err(e),
            };
        }
    }

    /// Waits until the daemon closes the connection (it exits after `shutdown`), up to
    /// `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<(), ClientError> {
        match self.read_reply(u64::MAX, deadline(timeout), timeout) {
            Err(ClientError::Disconnected) => Ok(()),
            Err(e) => Err(e),
            // Nothing else is in flight; anything that arrives is not for us.
            Ok(_) => self.wait_closed(timeout),
        }
    }

    /// Reads replies until the one for `id`. A reply with a null id is the daemon's answer
    /// to something it could not attribute (a refusal, an unreadable request): since the
    /// client has one request in flight, it is the answer to this one. Replies with other
    /// ids are leftovers of an earlier call and are skipped.
    fn read_reply(
        &mut self,
        id: u64,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Timeout { timeout });
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(remaining))
                .map_err(|source| self.io_error(source))?;
            let mut line = Vec::new();
            let read = (&mut self.reader)
                .take(MAX_REPLY)
                .read_until(b'\n', &mut line);
            match read {
                Ok(0) => return Err(ClientError::Disconnected),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::Timeout { timeout });
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ClientError::Disconnected);
                }
                Err(source) => return Err(self.io_error(source)),
            }
            let reply: Reply = serde_json::from_slice(&line).map_err(ClientError::BadReply)?;
            if reply.id.is_none_or(|got| got == id) {
                return Ok(reply);
            }
        }
    }

    /// Another handle on the connection's socket, for another thread to end a stream
    /// that waits for its next reply (`shutdown` on it makes that read return).
    pub fn closer(&self) -> io::Result<UnixStream> {
        self.writer.try_clone()
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            socket: self.socket.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::testing::tempdir;

    /// A fake daemon on a thread: for each request line, the closure gives the reply lines.
    fn fake(
        socket: &Utf8Path,
        mut answer: impl FnMut(&str) -> Vec<String> + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let listener = UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                for reply in answer(&line) {
                    if writer.write_all(format!("{reply}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            }
        })
    }

    fn hello_ok(id: u64) -> String {
        format!(r#"{{"id":{id},"ok":true,"result":{{"version":1,"daemon_pid":42,"config":"/x"}}}}"#)
    }

    #[test]
    fn a_missing_socket_is_no_daemon() {
        let (_guard, root) = tempdir();
        let err = Client::connect(&root.join("runpm.sock")).unwrap_err();
        assert!(err.is_no_daemon(), "{err}");
        let state = StateDir::at(root.join(".runpm"));
        let err = Client::connect_state_dir(&state).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no runpm daemon is running for {} (socket {})",
                state.dir, state.socket
            )
        );
    }

    #[test]
    fn a_stale_socket_is_no_daemon() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        drop(UnixListener::bind(&socket).unwrap());
        let err = Client::connect(&socket).unwrap_err();
        assert!(err.is_no_daemon(), "{err}");
    }

    #[test]
    fn hello_then_calls_with_increasing_ids() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        let daemon = fake(&socket, |line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = value["id"].as_u64().unwrap();
            match value["cmd"].as_str().unwrap() {
                "hello" => vec![hello_ok(id)],
                // A leftover reply for another id first: the client skips it.
                _ => vec![
                    r#"{"id":999,"ok":true,"result":null}"#.to_owned(),
                    format!(r#"{{"id":{id},"ok":true,"result":{{"services":[]}}}}"#),
                ],
            }
        });
        let mut client = Client::connect(&socket).unwrap();
        assert_eq!(client.hello().daemon_pid, 42);
        let reply = client
            .call(
                &Request::Status { services: vec![] },
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(reply.id, Some(2));
        assert_eq!(
            reply.into_result().unwrap(),
            serde_json::json!({"services": []}).into()
        );
        drop(client);
        daemon.join().unwrap();
    }

    #[test]
    fn a_refusal_is_forbidden() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        // Like the server: refuse at once, without reading, and close.
        let daemon = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .write_all(b"{\"id\":null,\"ok\":false,\"error\":{\"kind\":\"forbidden\",\"message\":\"uid 7 may not\"}}\n")
                .unwrap();
        });
        let err = Client::connect(&socket).unwrap_err();
        daemon.join().unwrap();
        assert!(
            matches!(&err, ClientError::Forbidden { message } if message == "uid 7 may not"),
            "{err}"
        );
    }

    #[test]
    fn a_version_error_is_its_own_error() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        let _daemon = fake(&socket, |_| {
            vec![
                r#"{"id":1,"ok":false,"error":{"kind":"version","message":"speaks 2"}}"#.to_owned(),
            ]
        });
        let err = Client::connect(&socket).unwrap_err();
        assert!(matches!(err, ClientError::Version { .. }), "{err}");
    }

    #[test]
    fn a_silent_daemon_times_out() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        let _daemon = fake(&socket, |line| {
            if line.contains("hello") {
                vec![hello_ok(1)]
            } else {
                vec![]
            }
        });
        let mut client = Client::connect(&socket).unwrap();
        let err = client
            .call(&Request::Shutdown, Duration::from_millis(50))
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    }

    #[test]
    fn a_closed_connection_is_disconnected() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let daemon = std::thread::spawn(move || drop(listener.accept().unwrap()));
        let err = Client::connect(&socket).unwrap_err();
        assert!(
            matches!(err, ClientError::Disconnected | ClientError::Io { .. }),
            "{err}"
        );
        daemon.join().unwrap();
    }
}
