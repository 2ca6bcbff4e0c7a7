//! The threads that feed the screen: each talks to the daemon (or the terminal) on its own
//! and sends what it learns to the UI thread as a [`Msg`]. A feed ends when the UI thread
//! is gone (its sends fail) or its connection ends.

use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self as term, KeyEvent};

use super::app::Operation;
use super::event::{self, Event, EventsBatch, EventsRequest};
use super::model::{Snapshot, Status};
use super::usage;
use crate::ipc::{self, Client, ClientError, ErrorKind, LogsResult, ReloadResult, Request};

/// How often the status is re-read while `top` is attached: uptime, CPU and memory move
/// without events.
pub const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// The shortest gap between two reads of the status that events asked for: a crash loop
/// sends several events a second, and one status read covers them all.
const REFRESH_GAP: Duration = Duration::from_millis(100);

/// How many lines of its past the log pane starts with.
const LOG_HISTORY: usize = 1000;

/// "Wait as long as it takes" for the first reply of a stream (an event may be hours away).
const UNTIL_CLOSED: Duration = Duration::from_secs(365 * 24 * 3600);

/// Opens a new connection to the daemon (`hello` done).
pub type Connect = Arc<dyn Fn() -> Result<Client, ClientError> + Send + Sync>;

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Resize,
    /// The terminal cannot be read any more.
    InputFailed(std::io::Error),
    Status(Snapshot),
    /// A read of the status failed but the daemon is there (a timeout, an odd reply).
    StatusFailed(String),
    Events(Vec<Event>),
    /// The daemon does not know `events` (an older runpm): the status alone drives the rows.
    EventsUnsupported,
    /// The event stream ended: the daemon closed it (it stops), or it failed.
    EventsEnded(Option<String>),
    Log {
        generation: u64,
        lines: Vec<String>,
    },
    LogEnded {
        generation: u64,
        why: String,
    },
    /// An operator command finished: what it did, or why it failed.
    Done(Result<String, String>),
    /// The daemon cannot be reached any more.
    Gone(String),
    Signal(nix::sys::signal::Signal),
}

/// Keys and resizes, read by crossterm.
pub fn input(tx: Sender<Msg>) {
    thread::spawn(move || {
        loop {
            let msg = match term::read() {
                Ok(term::Event::Key(key)) => Msg::Key(key),
                Ok(term::Event::Resize(..)) => Msg::Resize,
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Msg::InputFailed(e));
                    return;
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
}

/// The signals that end `top` (blocked in every thread, so that they arrive here instead
/// of killing the process with the terminal left in raw mode).
pub fn signals(tx: Sender<Msg>, set: nix::sys::signal::SigSet) {
    thread::spawn(move || {
        while let Ok(signal) = set.wait() {
            if tx.send(Msg::Signal(signal)).is_err() {
                return;
            }
        }
    });
}

/// The status, once a [`STATUS_PERIOD`] and soon after each request on `refresh`, with CPU
/// and memory read from `/proc` where the daemon gives none.
pub fn status(
    mut client: Client,
    connect: Connect,
    timeout: Duration,
    tx: Sender<Msg>,
) -> Sender<()> {
    let (refresh, requests) = std::sync::mpsc::channel::<()>();
    thread::spawn(move || {
        loop {
            let read = Instant::now();
            let msg = match read_status(&mut client, timeout) {
                Ok(snapshot) => Msg::Status(snapshot),
                Err(Read::Gone(why)) => {
                    let _ = tx.send(Msg::Gone(why));
                    return;
                }
                Err(Read::Failed(why, reconnect)) => {
                    if reconnect {
                        // After a failed exchange the connection's state is unknown.
                        match connect() {
                            Ok(fresh) => client = fresh,
                            Err(e) => {
                                let _ = tx.send(Msg::Gone(e.to_string()));
                                return;
                            }
                        }
                    }
                    Msg::StatusFailed(why)
                }
            };
            if tx.send(msg).is_err() || !wait_for_next(&requests, read) {
                return;
            }
        }
    });
    refresh
}

/// Waits until the next read is due: a period after `read`, or when a refresh is asked
/// for (but not sooner than [`REFRESH_GAP`] after `read`). False when the UI is gone.
fn wait_for_next(requests: &Receiver<()>, read: Instant) -> bool {
    let due = read + STATUS_PERIOD;
    match requests.recv_timeout(due.saturating_duration_since(Instant::now())) {
        Ok(()) => {
            let soonest = read + REFRESH_GAP;
            // Coalesces a burst of events into one read.
            thread::sleep(soonest.saturating_duration_since(Instant::now()));
            while requests.try_recv().is_ok() {}
            true
        }
        Err(RecvTimeoutError::Timeout) => true,
        Err(RecvTimeoutError::Disconnected) => false,
    }
}

enum Read {
    /// The daemon is not there any more.
    Gone(String),
    /// This read failed; whether the connection must be opened again.
    Failed(String, bool),
}

fn read_status(client: &mut Client, timeout: Duration) -> Result<Snapshot, Read> {
    let reply = client
        .call(&Request::Status { services: vec![] }, timeout)
        .map_err(|e| match e {
            ClientError::Timeout { .. } | ClientError::BadReply(_) => {
                Read::Failed(format!("status: {e}"), true)
            }
            other => Read::Gone(other.to_string()),
        })?;
    let at = Instant::now();
    let result = reply.into_result().map_err(|e| match e.kind {
        ErrorKind::ShuttingDown => Read::Gone(e.message),
        _ => Read::Failed(format!("status: {}", e.message), false),
    })?;
    let mut status: Status = result
        .decode()
        .map_err(|e| Read::Failed(format!("cannot read the status: {e}"), false))?;
    for service in &mut status.services {
        if let (Some(pid), None) = (service.info.pid, service.cpu_usec) {
            let (cpu, memory) = usage::read_proc(pid);
            service.cpu_usec = cpu;
            service.memory_bytes = service.memory_bytes.or(memory);
        }
    }
    Ok(Snapshot {
        services: status.services,
        at,
    })
}

/// Every lifecycle event, as the daemon pushes them.
pub fn events(connect: Connect, tx: Sender<Msg>) {
    thread::spawn(move || {
        let mut client = match connect() {
            Ok(client) => client,
            Err(e) => {
                let _ = tx.send(Msg::Gone(e.to_string()));
                return;
            }
        };
        let mut ended = None;
        let request = EventsRequest { services: vec![] };
        let streamed = client.stream(&request, UNTIL_CLOSED, |reply| {
            match reply.into_result() {
                Ok(result) => match result.decode::<EventsBatch>() {
                    Ok(batch) => tx.send(Msg::Events(event::parse(&batch))).is_ok(),
                    // A batch that cannot be read is skipped like an unknown event.
                    Err(_) => true,
                },
                Err(e) if e.kind == ErrorKind::BadRequest => {
                    ended = Some(Msg::EventsUnsupported);
                    false
                }
                Err(e) => {
                    ended = Some(Msg::EventsEnded(Some(e.message)));
                    false
                }
            }
        });
        let msg = match (ended, streamed) {
            (Some(msg), _) => msg,
            (None, Ok(())) => Msg::EventsEnded(None),
            (None, Err(e)) => Msg::EventsEnded(Some(e.to_string())),
        };
        let _ = tx.send(msg);
    });
}

/// A follow of one service's log that the UI can end: [`LogFollow::cancel`] shuts its
/// connection down, so the thread's blocking read returns at once instead of waiting for
/// the service's next line.
#[derive(Debug, Default)]
pub struct LogFollow {
    state: Arc<Mutex<FollowState>>,
}

#[derive(Debug, Default)]
struct FollowState {
    cancelled: bool,
    socket: Option<UnixStream>,
}

impl LogFollow {
    pub fn cancel(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.cancelled = true;
            if let Some(socket) = state.socket.take() {
                // Nothing to do if it is already closed.
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Follows `service`'s log: its last lines, then each new one.
pub fn log(connect: Connect, service: String, generation: u64, tx: Sender<Msg>) -> LogFollow {
    let follow = LogFollow::default();
    let state = Arc::clone(&follow.state);
    thread::spawn(move || {
        let ended = |why: String| {
            let _ = tx.send(Msg::LogEnded { generation, why });
        };
        let mut client = match connect() {
            Ok(client) => client,
            Err(e) => return ended(e.to_string()),
        };
        {
            let Ok(mut state) = state.lock() else { return };
            if state.cancelled {
                return;
            }
            state.socket = client.closer().ok();
        }
        let request = Request::Logs {
            services: vec![service],
            lines: LOG_HISTORY,
            follow: true,
            since: None,
        };
        let mut failed = None;
        let streamed = client.stream(&request, UNTIL_CLOSED, |reply| match reply.into_result() {
            Ok(result) => match result.decode::<LogsResult>() {
                Ok(batch) => tx
                    .send(Msg::Log {
                        generation,
                        lines: log_lines(batch),
                    })
                    .is_ok(),
                Err(e) => {
                    failed = Some(format!("cannot read the log: {e}"));
                    false
                }
            },
            Err(e) => {
                failed = Some(e.message);
                false
            }
        });
        if state.lock().map(|s| s.cancelled).unwrap_or(true) {
            return;
        }
        ended(match (failed, streamed) {
            (Some(why), _) => why,
            (None, Ok(())) => "the daemon closed the log".to_owned(),
            (None, Err(e)) => e.to_string(),
        });
    });
    follow
}

/// A batch of log lines as the pane shows them: runpm's own lines marked, a gap said.
pub fn log_lines(batch: LogsResult) -> Vec<String> {
    let mut out = Vec::with_capacity(batch.lines.len() + 1);
    if let Some(missed) = batch.missed {
        out.push(format!(
            "[runpm] {missed} lines were missed (reading too slowly)"
        ));
    }
    out.extend(batch.lines.into_iter().map(|l| {
        if l.runpm {
            format!("[runpm] {}", l.line)
        } else {
            l.line
        }
    }));
    out
}

/// Runs an operator command on its own connection and reports how it went.
pub fn run(connect: Connect, operation: Operation, timeout: Duration, tx: Sender<Msg>) {
    thread::spawn(move || {
        let _ = tx.send(Msg::Done(perform(&connect, &operation, timeout)));
    });
}

fn perform(connect: &Connect, operation: &Operation, timeout: Duration) -> Result<String, String> {
    let request = match operation.clone() {
        Operation::Start(name) => Request::Start {
            services: vec![name],
            all: false,
        },
        Operation::Stop(name) => Request::Stop {
            services: vec![name],
            all: false,
        },
        Operation::Restart(name) => Request::Restart {
            services: vec![name],
            all: false,
        },
        Operation::Reload => Request::Reload { dry_run: false },
    };
    let mut client = connect().map_err(|e| e.to_string())?;
    let reply = client.call(&request, timeout).map_err(|e| e.to_string())?;
    let result = reply.into_result().map_err(|e| match e.kind {
        // The diagnostics are several lines; the first says where.
        ErrorKind::InvalidConfig => format!(
            "config invalid, nothing changed: {}",
            e.message.lines().next().unwrap_or_default()
        ),
        _ => e.message,
    })?;
    let cannot_read = |e: serde_json::Error| format!("cannot read the reply: {e}");
    Ok(match operation {
        Operation::Reload => {
            let plan: ReloadResult = result.decode().map_err(cannot_read)?;
            format!(
                "reloaded: {}",
                ipc::reload_plan(&plan)
                    .lines()
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
        _ => {
            let status: ipc::StatusResult = result.decode().map_err(cannot_read)?;
            status
                .services
                .iter()
                .map(ipc::service_line)
                .collect::<Vec<_>>()
                .join("; ")
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;

    use camino::Utf8PathBuf;

    use super::*;
    use crate::testing::tempdir;
    use crate::top::event::Kind;

    /// A fake daemon: answers `hello`, then hands every other request line (with its id)
    /// to `answer`, which writes what it wants and says whether to keep the connection.
    fn fake(
        socket: &Utf8PathBuf,
        answer: impl Fn(u64, &serde_json::Value, &mut UnixStream) -> bool + Send + 'static,
    ) {
        let listener = UnixListener::bind(socket).unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let request: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let id = request["id"].as_u64().unwrap();
                    if request["cmd"] == "hello" {
                        let hello = format!(
                            r#"{{"id":{id},"ok":true,"result":{{"version":1,"daemon_pid":42,"config":"/x"}}}}"#
                        );
                        writeln!(writer, "{hello}").unwrap();
                    } else if !answer(id, &request, &mut writer) {
                        break;
                    }
                }
            }
        });
    }

    fn connector(socket: Utf8PathBuf) -> Connect {
        Arc::new(move || Client::connect(&socket))
    }

    fn next(rx: &mpsc::Receiver<Msg>) -> Msg {
        rx.recv_timeout(Duration::from_secs(10)).expect("a message")
    }

    #[test]
    fn events_are_read_batch_by_batch_until_the_daemon_closes() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        fake(&socket, |id, request, out| {
            assert_eq!(request["cmd"], "events");
            assert_eq!(request["services"], serde_json::json!([]));
            for batch in [
                r#"[{"ts":"t","service":"web","event":"exited","pid":7,"code":1,"signal":null,"uptime_ms":5,"reason":"exited"},{"ts":"t","service":"web","event":"restarting","in_ms":100,"restarts":1}]"#,
                r#"[{"ts":"t","service":null,"event":"daemon_stopping"}]"#,
            ] {
                writeln!(
                    out,
                    r#"{{"id":{id},"ok":true,"result":{{"events":{batch}}}}}"#
                )
                .unwrap();
            }
            false
        });
        let (tx, rx) = mpsc::channel();
        events(connector(socket), tx);
        let Msg::Events(first) = next(&rx) else {
            panic!("a batch first")
        };
        assert_eq!(first.len(), 2);
        assert!(matches!(first[0].kind, Kind::Exited { code: Some(1), .. }));
        let Msg::Events(second) = next(&rx) else {
            panic!("then the second batch")
        };
        assert_eq!(second[0].kind, Kind::DaemonStopping);
        assert!(matches!(next(&rx), Msg::EventsEnded(None)));
    }

    #[test]
    fn a_daemon_without_events_is_said_so() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        fake(&socket, |id, _, out| {
            writeln!(
                out,
                r#"{{"id":{id},"ok":false,"error":{{"kind":"bad_request","message":"bad request: unknown variant `events`"}}}}"#
            )
            .unwrap();
            true
        });
        let (tx, rx) = mpsc::channel();
        events(connector(socket), tx);
        assert!(matches!(next(&rx), Msg::EventsUnsupported));
    }

    #[test]
    fn status_is_read_with_resource_figures_and_again_on_request() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        let reads = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&reads);
        fake(&socket, move |id, request, out| {
            assert_eq!(request["cmd"], "status");
            *counted.lock().unwrap() += 1;
            writeln!(
                out,
                r#"{{"id":{id},"ok":true,"result":{{"services":[{{"name":"web","status":"running","pid":4242,"restarts":0,"since":"t","uptime_ms":5,"stopped_by_operator":false,"exits":[],"cpu_usec":900,"memory_bytes":2048}}]}}}}"#
            )
            .unwrap();
            true
        });
        let (tx, rx) = mpsc::channel();
        let connect = connector(socket);
        let client = connect().unwrap();
        let refresh = status(client, connect, Duration::from_secs(5), tx);
        let Msg::Status(snapshot) = next(&rx) else {
            panic!("a status")
        };
        // The daemon's figures are taken as they are, not read from /proc.
        assert_eq!(snapshot.services[0].cpu_usec, Some(900));
        assert_eq!(snapshot.services[0].memory_bytes, Some(2048));
        refresh.send(()).unwrap();
        assert!(matches!(next(&rx), Msg::Status(_)));
        assert!(*reads.lock().unwrap() >= 2);
    }

    #[test]
    fn a_daemon_that_goes_away_is_gone() {
        let (_guard, root) = tempdir();
        let socket = root.join("runpm.sock");
        fake(&socket, |_, _, _| false);
        let (tx, rx) = mpsc::channel();
        let connect = connector(socket);
        let client = connect().unwrap();
        let _refresh = status(client, connect, Duration::from_secs(5), tx);
        assert!(matches!(next(&rx), Msg::Gone(_)));
    }

    #[test]
    fn log_lines_mark_runpm_and_gaps() {
        let batch: LogsResult = serde_json::from_value(serde_json::json!({
            "lines": [
                {"service": "web", "at": "2026-12-07T04:50:00Z", "stream": "out", "line": "hello"},
                {"service": "web", "at": "2026-12-07T04:50:01Z", "stream": "out", "line": "web restarted", "runpm": true}
            ],
            "missed": 3
        }))
        .unwrap();
        assert_eq!(
            log_lines(batch),
            [
                "[runpm] 3 lines were missed (reading too slowly)",
                "hello",
                "[runpm] web restarted"
            ]
        );
    }
}
