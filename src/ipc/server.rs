//! The daemon's side of the control socket: accepts connections and turns requests into
//! [`Call`]s for the supervisor's event loop.
//!
//! Each connection is its own task. It first checks the peer's credentials (`SO_PEERCRED`,
//! taken by the kernel at `connect`, so they cannot be forged by what the peer sends): only
//! the daemon's own uid and root may talk. It then reads one line at a time, bounded in size
//! and in idle time, answers `hello` itself, and forwards every other request as a `Call`
//! carrying a channel for its replies. Requests on one connection are handled one at a time,
//! in order: the next line is read only once the previous call's reply channel has closed,
//! so replies can never interleave, and the idle timeout cannot fire while a call runs.
//!
//! Nothing a peer sends can take the daemon down: every failure ends at most that
//! connection's task, and every request gets a reply, also when the daemon drops a call
//! without answering it.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::codec::{encode_reply, parse_request};
use super::protocol::{
    ErrorKind, HelloResult, Incoming, Json, MAX_REQUEST, PROTOCOL_VERSION, ProtocolError, Reply,
    Request,
};

/// How long a connection may stay silent (no complete request, none in flight).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long writing one reply may take before the peer counts as gone: a client that stops
/// reading must not pin a task forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// After a failed `accept` (out of file descriptors, typically), wait a little instead of
/// spinning on an error that persists until something closes.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What `hello` reports besides the protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloInfo {
    pub daemon_pid: u32,
    /// The config file or directory the daemon runs.
    pub config: String,
}

/// A request for the daemon, with where to send its replies. The daemon sends one reply (or
/// several, for a stream) and then drops `replies`; that drop is what ends the call. The
/// `id` of each reply is filled in by the connection.
#[derive(Debug)]
pub struct Call {
    pub request: Request,
    pub replies: UnboundedSender<Reply>,
}

/// Serves the control socket until the receiver of `calls` is dropped. Spawns one task per
/// connection, so it must run within a tokio runtime (current_thread is enough).
pub async fn serve(listener: UnixListener, info: HelloInfo, calls: UnboundedSender<Call>) {
    let info = Arc::new(info);
    let daemon_uid = nix::unistd::geteuid().as_raw();
    loop {
        tokio::select! {
            () = calls.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, Arc::clone(&info), calls.clone(), daemon_uid));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a control connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

/// Only the daemon's own uid and root may steer it.
fn allowed(peer_uid: u32, daemon_uid: u32) -> bool {
    peer_uid == daemon_uid || peer_uid == 0
}

async fn connection(
    stream: UnixStream,
    info: Arc<HelloInfo>,
    calls: UnboundedSender<Call>,
    daemon_uid: u32,
) {
    let peer = match stream.peer_cred() {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a control connection's credentials; closing it");
            return;
        }
    };
    let (read, write) = stream.into_split();
    let mut conn = Connection {
        reader: BufReader::new(read),
        writer: write,
        info,
        calls,
        greeted: false,
    };
    if !allowed(peer.uid(), daemon_uid) {
        tracing::warn!(
            uid = peer.uid(),
            pid = ?peer.pid(),
            "refused a control connection from another user"
        );
        let error = ProtocolError::new(
            ErrorKind::Forbidden,
            format!(
                "uid {} may not control this runpm (only uid {daemon_uid} and root may)",
                peer.uid()
            ),
        );
        if let Err(e) = conn.send(Reply::err(None, error)).await {
            tracing::debug!(error = %e, "the refused peer did not take its reply");
        }
        return;
    }
    if let Err(e) = conn.run().await {
        tracing::debug!(error = %e, "control connection ended");
    }
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    info: Arc<HelloInfo>,
    calls: UnboundedSender<Call>,
    /// Whether a `hello` with our version has been answered on this connection.
    greeted: bool,
}

impl Connection {
    async fn run(&mut self) -> io::Result<()> {
        loop {
            let line =
                match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut self.reader, MAX_REQUEST))
                    .await
                {
                    Err(_elapsed) => {
                        tracing::debug!("closing an idle control connection");
                        return Ok(());
                    }
                    Ok(line) => line?,
                };
            match line {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    let error = ProtocolError::new(
                        ErrorKind::BadRequest,
                        format!("request longer than {MAX_REQUEST} bytes; closing the connection"),
                    );
                    return self.send(Reply::err(None, error)).await;
                }
                Line::Complete(bytes) if bytes.trim_ascii().is_empty() => continue,
                Line::Complete(bytes) => self.answer(parse_request(&bytes)).await?,
            }
        }
    }

    async fn answer(&mut self, incoming: Incoming) -> io::Result<()> {
        let id = incoming.id;
        let request = match incoming.request {
            Ok(request) => request,
            Err(error) => return self.send(Reply::err(id, error)).await,
        };
        match request {
            Request::Hello { version } if version == PROTOCOL_VERSION => {
                self.greeted = true;
                let hello = HelloResult {
                    version: PROTOCOL_VERSION,
                    daemon_pid: self.info.daemon_pid,
                    config: self.info.config.clone(),
                };
                self.send(Reply::from_result(id, Json::of(&hello))).await
            }
            Request::Hello { version } => {
                let error = ProtocolError::new(
                    ErrorKind::Version,
                    format!(
                        "this daemon speaks protocol version {PROTOCOL_VERSION}, the client \
                         {version}; use runpmctl from the same release as runpm"
                    ),
                );
                self.send(Reply::err(id, error)).await
            }
            _ if !self.greeted => {
                let error = ProtocolError::new(
                    ErrorKind::Version,
                    format!("send `hello` with version {PROTOCOL_VERSION} first"),
                );
                self.send(Reply::err(id, error)).await
            }
            request => self.forward(id, request).await,
        }
    }

    /// Hands the request to the daemon and writes its replies until it drops the sender.
    async fn forward(&mut self, id: Option<u64>, request: Request) -> io::Result<()> {
        let (replies, mut received) = unbounded_channel();
        if self.calls.send(Call { request, replies }).is_err() {
            return self
                .send(Reply::err(id, ProtocolError::shutting_down()))
                .await;
        }
        let mut answered = false;
        while let Some(mut reply) = received.recv().await {
            reply.id = id;
            answered = true;
            // On a write error, returning drops `received`, which tells a streaming call
            // that nobody listens any more.
            self.send(reply).await?;
        }
        if !answered {
            let error = ProtocolError::new(
                ErrorKind::Failed,
                "the daemon dropped the request without replying",
            );
            self.send(Reply::err(id, error)).await?;
        }
        Ok(())
    }

    async fn send(&mut self, reply: Reply) -> io::Result<()> {
        let line = encode_reply(&reply);
        match tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(&line)).await {
            Ok(written) => written,
            Err(_elapsed) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading replies",
            )),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line without its newline (or the unterminated rest before end of file).
    Complete(Vec<u8>),
    /// More than the limit arrived without a newline.
    TooLong,
    Eof,
}

/// Reads one line of at most `max` bytes (newline excluded), never buffering more than that.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Complete(line)
            });
        }
        let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        if line.len() + chunk.len() > max {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(chunk);
        let used = chunk.len() + usize::from(newline);
        reader.consume(used);
        if newline {
            return Ok(Line::Complete(line));
        }
    }
}

#[cfg(test)]
mod tests;
