//! The server over a real socket, with a fake daemon answering its calls in-process.

use std::time::Duration;

use camino::Utf8PathBuf;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::*;
use crate::ipc::{InstanceLock, SocketGuard, StateDir, bind};

/// Every test's hard limit in real time (paused-clock tests never get near it).
const LIMIT: Duration = Duration::from_secs(20);

struct Daemon {
    state: StateDir,
    calls: UnboundedReceiver<Call>,
    serving: tokio::task::JoinHandle<()>,
    _lock: InstanceLock,
    _guard: SocketGuard,
    _tmp: tempfile::TempDir,
}

fn start() -> Daemon {
    let tmp = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::try_from(tmp.path().canonicalize().unwrap()).unwrap();
    let state = StateDir::at(root.join(".runpm"));
    state.create().unwrap();
    let lock = state.lock().unwrap();
    let (listener, guard) = bind(&state.socket, &lock).unwrap();
    let (tx, calls) = unbounded_channel();
    let info = HelloInfo {
        daemon_pid: 42,
        config: "/srv/services.toml".into(),
    };
    let serving = tokio::spawn(serve(listener, info, tx));
    Daemon {
        state,
        calls,
        serving,
        _lock: lock,
        _guard: guard,
        _tmp: tmp,
    }
}

/// Answers `status` with an empty list, `reload` with two replies, and drops `shutdown`
/// without replying.
fn answer(mut calls: UnboundedReceiver<Call>) {
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            match call.request {
                Request::Status { .. } => {
                    call.replies
                        .send(Reply::ok(None, json!({"services": []})))
                        .unwrap();
                }
                Request::Reload { .. } => {
                    call.replies.send(Reply::ok(None, json!(1))).unwrap();
                    call.replies.send(Reply::ok(None, json!(2))).unwrap();
                }
                _ => drop(call),
            }
        }
    });
}

struct Peer {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Peer {
    async fn connect(state: &StateDir) -> Peer {
        let (read, writer) = UnixStream::connect(&state.socket)
            .await
            .unwrap()
            .into_split();
        Peer {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next reply, or None at end of file.
    async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        }
    }

    async fn hello(&mut self) {
        self.send(r#"{"id":1,"cmd":"hello","version":1}"#).await;
        let reply = self.recv().await.unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
    }
}

/// The limit for tests on a paused clock, in virtual time.
async fn paused_within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(IDLE_TIMEOUT * 10, f)
        .await
        .expect("test timed out")
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out")
}

#[tokio::test]
async fn hello_then_a_forwarded_call() {
    within(async {
        let daemon = start();
        let mut peer = Peer::connect(&daemon.state).await;
        answer(daemon.calls);
        peer.send(r#"{"id":7,"cmd":"hello","version":1}"#).await;
        assert_eq!(
            peer.recv().await.unwrap(),
            json!({"id": 7, "ok": true, "result": {"version": 1, "daemon_pid": 42, "config": "/srv/services.toml"}})
        );
        peer.send(r#"{"id":8,"cmd":"status"}"#).await;
        assert_eq!(
            peer.recv().await.unwrap(),
            json!({"id": 8, "ok": true, "result": {"services": []}})
        );
    })
    .await;
}

#[tokio::test]
async fn every_reply_of_a_call_carries_its_id() {
    within(async {
        let daemon = start();
        let mut peer = Peer::connect(&daemon.state).await;
        answer(daemon.calls);
        peer.hello().await;
        peer.send(r#"{"id":3,"cmd":"reload"}"#).await;
        assert_eq!(
            peer.recv().await.unwrap(),
            json!({"id": 3, "ok": true, "result": 1})
        );
        assert_eq!(
            peer.recv().await.unwrap(),
            json!({"id": 3, "ok": true, "result": 2})
        );
        // Requests are handled in order: the next one is read after the last reply.
        peer.send(r#"{"id":4,"cmd":"status"}"#).await;
        assert_eq!(peer.recv().await.unwrap()["id"], 4);
    })
    .await;
}

#[tokio::test]
async fn hello_comes_first_and_must_match_the_version() {
    within(async {
        let daemon = start();
        let mut peer = Peer::connect(&daemon.state).await;
        answer(daemon.calls);
        peer.send(r#"{"id":1,"cmd":"status"}"#).await;
        let reply = peer.recv().await.unwrap();
        assert_eq!(reply["id"], 1);
        assert_eq!(reply["error"]["kind"], "version", "{reply}");
        peer.send(r#"{"id":2,"cmd":"hello","version":99}"#).await;
        let reply = peer.recv().await.unwrap();
        assert_eq!(reply["id"], 2);
        assert_eq!(reply["error"]["kind"], "version", "{reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains("99"));
        // The connection stays open for a correct hello.
        peer.hello().await;
        peer.send(r#"{"id":3,"cmd":"status"}"#).await;
        assert_eq!(peer.recv().await.unwrap()["ok"], true);
    })
    .await;
}

#[tokio::test]
async fn garbage_gets_an_error_and_the_daemon_keeps_serving() {
    within(async {
        let daemon = start();
        answer(daemon.calls);
        let mut peer = Peer::connect(&daemon.state).await;
        peer.send("\u{0}\u{7f}garbage{{{").await;
        let reply = peer.recv().await.unwrap();
        assert_eq!(reply["id"], Value::Null);
        assert_eq!(reply["ok"], false);
        assert_eq!(reply["error"]["kind"], "bad_request");
        // A wrong request with a readable id gets its id back, and the connection goes on.
        peer.hello().await;
        peer.send(r#"{"id":5,"cmd":"frobnicate"}"#).await;
        let reply = peer.recv().await.unwrap();
        assert_eq!(reply["id"], 5);
        assert_eq!(reply["error"]["kind"], "bad_request");
        peer.send(r#"{"id":6,"cmd":"status"}"#).await;
        assert_eq!(peer.recv().await.unwrap()["ok"], true);
        drop(peer);
        // And a new connection works as well.
        let mut peer = Peer::connect(&daemon.state).await;
        peer.hello().await;
        peer.send(r#"{"id":2,"cmd":"status"}"#).await;
        assert_eq!(peer.recv().await.unwrap()["ok"], true);
    })
    .await;
}

#[tokio::test]
async fn an_oversized_request_is_refused_and_the_connection_closed() {
    within(async {
        let daemon = start();
        answer(daemon.calls);
        let Peer { mut reader, writer } = Peer::connect(&daemon.state).await;
        // Written from another task: the server stops reading at the limit, so the rest of
        // this write fails once it closes, which is expected.
        let mut writer = writer;
        let writing = tokio::spawn(async move {
            let huge = vec![b'a'; MAX_REQUEST * 2];
            writer.write_all(&huge).await
        });
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply["error"]["kind"], "bad_request", "{reply}");
        line.clear();
        assert_eq!(reader.read_line(&mut line).await.unwrap_or(0), 0);
        // Whether the rest of the write fit in the socket buffer or failed does not matter.
        drop(writing.await);
        // The daemon still serves.
        let mut peer = Peer::connect(&daemon.state).await;
        peer.hello().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed() {
    paused_within(async {
        let daemon = start();
        answer(daemon.calls);
        let mut peer = Peer::connect(&daemon.state).await;
        peer.hello().await;
        let started = tokio::time::Instant::now();
        assert_eq!(peer.recv().await, None);
        assert!(started.elapsed() >= IDLE_TIMEOUT);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_is_not_idle() {
    paused_within(async {
        let mut daemon = start();
        let mut peer = Peer::connect(&daemon.state).await;
        peer.hello().await;
        peer.send(r#"{"id":2,"cmd":"restart","all":true}"#).await;
        let call = daemon.calls.recv().await.unwrap();
        assert_eq!(
            call.request,
            Request::Restart {
                services: vec![],
                all: true
            }
        );
        // A slow operation, well past the idle timeout.
        tokio::time::sleep(IDLE_TIMEOUT * 3).await;
        call.replies.send(Reply::ok(None, json!("done"))).unwrap();
        drop(call);
        assert_eq!(
            peer.recv().await.unwrap(),
            json!({"id": 2, "ok": true, "result": "done"})
        );
    })
    .await;
}

#[tokio::test]
async fn a_call_dropped_without_a_reply_gets_an_error() {
    within(async {
        let daemon = start();
        answer(daemon.calls);
        let mut peer = Peer::connect(&daemon.state).await;
        peer.hello().await;
        peer.send(r#"{"id":9,"cmd":"shutdown"}"#).await;
        let reply = peer.recv().await.unwrap();
        assert_eq!(reply["id"], 9);
        assert_eq!(reply["error"]["kind"], "failed", "{reply}");
    })
    .await;
}

#[tokio::test]
async fn serving_ends_when_the_daemon_stops_taking_calls() {
    within(async {
        let daemon = start();
        let mut peer = Peer::connect(&daemon.state).await;
        peer.hello().await;
        drop(daemon.calls);
        daemon.serving.await.unwrap();
        // A connection that was open already is told, not left hanging.
        peer.send(r#"{"id":2,"cmd":"status"}"#).await;
        let reply = peer.recv().await.unwrap();
        assert_eq!(reply["error"]["kind"], "shutting_down", "{reply}");
    })
    .await;
}

#[test]
fn only_our_uid_and_root_are_allowed() {
    assert!(allowed(1000, 1000));
    assert!(allowed(0, 1000));
    assert!(!allowed(1001, 1000));
    assert!(allowed(0, 0));
    assert!(!allowed(65534, 0));
}

#[tokio::test]
async fn lines_are_bounded() {
    let mut input: &[u8] = b"abc\nabcd\nabcde\nrest";
    assert_eq!(
        read_line(&mut input, 4).await.unwrap(),
        Line::Complete(b"abc".to_vec())
    );
    assert_eq!(
        read_line(&mut input, 4).await.unwrap(),
        Line::Complete(b"abcd".to_vec())
    );
    assert_eq!(read_line(&mut input, 4).await.unwrap(), Line::TooLong);
    let mut input: &[u8] = b"rest";
    assert_eq!(
        read_line(&mut input, 4).await.unwrap(),
        Line::Complete(b"rest".to_vec())
    );
    assert_eq!(read_line(&mut input, 4).await.unwrap(), Line::Eof);
}

/// Another user is refused with a `forbidden` reply and the daemon logs it. Needs root (to
/// become another uid) and `setpriv` + `python3` as the foreign client; skipped otherwise.
#[tokio::test]
async fn another_user_is_refused() {
    let tools = ["/usr/bin/setpriv", "/usr/bin/python3"];
    if !nix::unistd::geteuid().is_root() || !tools.iter().all(|t| std::path::Path::new(t).exists())
    {
        eprintln!("skipped: needs root, setpriv and python3");
        return;
    }
    within(async {
        // Outside a 0700 directory, so that uid 65534 can reach the socket at all: the
        // credentials check has to stop it, not the file permissions.
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::try_from(tmp.path().canonicalize().unwrap()).unwrap();
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let state = StateDir::at(root.join(".runpm"));
        state.create().unwrap();
        let lock = state.lock().unwrap();
        let socket = root.join("open.sock");
        let (listener, _guard) = bind(&socket, &lock).unwrap();
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        let (tx, _calls) = unbounded_channel();
        let info = HelloInfo {
            daemon_pid: 1,
            config: String::new(),
        };
        tokio::spawn(serve(listener, info, tx));
        let script = "import socket,sys\n\
            s=socket.socket(socket.AF_UNIX)\n\
            s.connect(sys.argv[1])\n\
            sys.stdout.write(s.makefile().readline())\n";
        let socket_arg = socket.to_string();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("/usr/bin/setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .args(["/usr/bin/python3", "-c", script, &socket_arg])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(output.status.success(), "{output:?}");
        let reply: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(reply["id"], Value::Null);
        assert_eq!(reply["ok"], false);
        assert_eq!(reply["error"]["kind"], "forbidden", "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("uid 65534")
        );
    })
    .await;
}

/// The blocking client against the real server, as runpmctl uses them.
#[tokio::test]
async fn the_client_talks_to_the_server() {
    within(async {
        let daemon = start();
        answer(daemon.calls);
        let socket = daemon.state.socket.clone();
        let (hello, reply, err) = tokio::task::spawn_blocking(move || {
            let mut client = crate::ipc::Client::connect(&socket).unwrap();
            let reply = client
                .call(&Request::Status { services: vec![] }, LIMIT)
                .unwrap();
            let err = client.call(&Request::Shutdown, LIMIT).unwrap();
            (client.hello().clone(), reply, err)
        })
        .await
        .unwrap();
        assert_eq!(hello.daemon_pid, 42);
        assert_eq!(hello.config, "/srv/services.toml");
        assert_eq!(reply.id, Some(2));
        assert_eq!(reply.into_result().unwrap(), json!({"services": []}).into());
        assert_eq!(err.id, Some(3));
        assert_eq!(err.into_result().unwrap_err().kind, ErrorKind::Failed);
    })
    .await;
}
