//! Watching services from the outside while runpm decides whether they work: their status
//! over time, the ports they serve, and the daemon-independent clients the tests run.
//!
//! These helpers work the same for a foreground `runpm up` ([`Runpm`]) and a detached one
//! ([`super::Daemon`]): both serve the control socket, and `runpmctl` finds it from the
//! project directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{Finished, Project, RUNPMCTL, Runpm, secs, services_by_name, wait_for, wait_for_some};

/// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick, released
/// at once: good enough for a test that binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("pick a free port")
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Sends `PING` to a redis server on 127.0.0.1:`port`; true when it answers `+PONG`.
pub fn redis_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

/// Parses an RFC 3339 time as runpm prints it.
pub fn parse_time(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("`{text}` is not RFC 3339: {e}"))
}

/// The modification time of a file.
pub fn mtime(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {path:?}: {e}"))
}

impl Project {
    /// `status --json`'s entry for `name`, or None when runpmctl cannot tell (the daemon is
    /// not listening yet, or has no such service). Unlike [`Project::services`] it does not
    /// fail the test, so that it can be polled while a foreground runpm starts.
    pub fn try_service(&self, name: &str) -> Option<Value> {
        let out = self.ctl(&["status", "--json"]);
        if out.code() != Some(0) {
            return None;
        }
        let json: Value = serde_json::from_str(&out.stdout).ok()?;
        services_by_name(&json).remove(name)
    }

    /// `status --json`'s entry for `name` (which must exist).
    pub fn service(&self, name: &str) -> Value {
        self.services()
            .remove(name)
            .unwrap_or_else(|| panic!("`status --json` has no service `{name}`"))
    }

    /// Waits until `name`'s entry of `status --json` satisfies `pred`; returns it. Panics
    /// with the last entry seen when it does not within `timeout`.
    pub fn wait_service(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut last = None;
        wait_for_some(timeout, || {
            let s = self.try_service(name)?;
            let ok = pred(&s);
            last = Some(s.clone());
            ok.then_some(s)
        })
        .unwrap_or_else(|| {
            panic!("`{name}` did not become {what} within {timeout:?}; last status: {last:#?}")
        })
    }

    /// Waits until `name`'s status is `status`; returns its entry.
    pub fn wait_status(&self, name: &str, status: &str, timeout: Duration) -> Value {
        self.wait_service(name, &format!("`{status}`"), timeout, |s| {
            s["status"] == status
        })
    }

    /// Waits until the control socket answers (a foreground runpm has just been started).
    pub fn wait_socket(&self, timeout: Duration) {
        wait_for_some(timeout, || {
            let out = self.ctl(&["status", "--json"]);
            (out.code() == Some(0)).then_some(())
        })
        .unwrap_or_else(|| panic!("runpm's control socket did not answer within {timeout:?}"));
    }

    /// `runpmctl ARGS…` left running in the background (`logs -f`, a `restart` that waits),
    /// with its output captured. Dropping the guard kills it.
    pub fn ctl_spawn(&self, args: &[&str]) -> Runpm {
        Runpm::start(self.program(RUNPMCTL, args))
    }

    /// `runpmctl ARGS…` run to completion, which must come within `limit` (much shorter than
    /// [`super::COMMAND_LIMIT`], for commands that should answer at once): a command that
    /// hangs fails the test with what it printed so far.
    pub fn ctl_within(&self, args: &[&str], limit: Duration) -> Finished {
        let mut child = self.ctl_spawn(args);
        if !wait_for(limit, || !child.is_running()) {
            panic!(
                "`runpmctl {}` did not exit within {limit:?}\n{}",
                args.join(" "),
                child.describe().replace("runpm ", "runpmctl ")
            );
        }
        let status = child.wait_exit(secs(1));
        Finished {
            status,
            stdout: child.stdout(),
            stderr: child.stderr(),
        }
    }

    /// The lines of `.runpm/logs/NAME.log` (complete lines only).
    pub fn log_file(&self, name: &str) -> Vec<String> {
        self.lines(&format!(".runpm/logs/{name}.log"))
    }
}

/// The text after the `out `/`err ` marker of a log file record, with its marker; None when
/// the record is not `TIMESTAMP MARKER LINE`.
pub fn parse_record(record: &str) -> Option<(SystemTime, &str, &str)> {
    let (at, rest) = record.split_once(' ')?;
    let at = humantime::parse_rfc3339(at).ok()?;
    let (marker, line) = rest.split_once(' ').unwrap_or((rest, ""));
    matches!(marker, "out" | "err").then_some((at, marker, line))
}
