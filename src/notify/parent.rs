//! runpm as the *sender*: when a service manager started runpm with `NOTIFY_SOCKET` (a
//! systemd unit with `Type=notify` or `Type=notify-reload`), runpm tells it `READY=1` once
//! its services are up, `RELOADING=1` (with `MONOTONIC_USEC=`) and `READY=1` again around a
//! reload, `STOPPING=1` when it begins to shut down, a current `STATUS=` line ("5 running,
//! 1 failed"), and `WATCHDOG=1` when the manager set `WATCHDOG_USEC`. *When* to say what is
//! the supervisor's decision ([`ParentNote`] effects); this module only words and sends.
//!
//! Sends never block: the datagram socket is non-blocking, and a manager that stopped
//! reading loses a status line rather than stopping runpm.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// What runpm tells its own service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentNote {
    /// The services asked to start are up (or settled), or a reload is done.
    Ready { status: String },
    /// A reload of the config begins.
    Reloading,
    /// The shutdown began.
    Stopping { status: String },
    /// What runs changed.
    Status(String),
    /// runpm's loop is alive (`WATCHDOG_USEC`).
    Watchdog,
}

impl ParentNote {
    /// The datagram's text. `monotonic_usec` is CLOCK_MONOTONIC now, in microseconds:
    /// systemd wants it with `RELOADING=1` to tell this reload from an older one.
    pub fn message(&self, monotonic_usec: u64) -> String {
        match self {
            ParentNote::Ready { status } => format!("READY=1\nSTATUS={status}"),
            ParentNote::Reloading => {
                format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\nSTATUS=reloading")
            }
            ParentNote::Stopping { status } => format!("STOPPING=1\nSTATUS={status}"),
            ParentNote::Status(status) => format!("STATUS={status}"),
            ParentNote::Watchdog => "WATCHDOG=1".to_owned(),
        }
    }
}

/// The watchdog interval the manager asked for: `WATCHDOG_USEC`, when `WATCHDOG_PID` is
/// unset or names runpm (systemd sets it for the main process only).
pub fn watchdog_from_env() -> Option<Duration> {
    watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec))
}

/// CLOCK_MONOTONIC now, in microseconds (what `MONOTONIC_USEC=` carries).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_MONOTONIC is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1_000)
}

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
    fn each_note_is_worded_as_sd_notify_expects() {
        let ready = ParentNote::Ready {
            status: "5 running, 1 failed".into(),
        };
        assert_eq!(ready.message(7), "READY=1\nSTATUS=5 running, 1 failed");
        assert_eq!(
            ParentNote::Reloading.message(1234),
            "RELOADING=1\nMONOTONIC_USEC=1234\nSTATUS=reloading"
        );
        let stopping = ParentNote::Stopping {
            status: "stopping".into(),
        };
        assert_eq!(stopping.message(0), "STOPPING=1\nSTATUS=stopping");
        assert_eq!(ParentNote::Status("x".into()).message(0), "STATUS=x");
        assert_eq!(ParentNote::Watchdog.message(0), "WATCHDOG=1");
    }

    #[test]
    fn the_watchdog_is_runpms_only_when_the_pid_is_its_own_or_unset() {
        let two_s = Some(Duration::from_secs(2));
        assert_eq!(watchdog(Some("2000000"), None, 42), two_s);
        assert_eq!(watchdog(Some("2000000"), Some("42"), 42), two_s);
        assert_eq!(watchdog(Some("2000000"), Some("43"), 42), None);
        assert_eq!(watchdog(Some("0"), None, 42), None);
        assert_eq!(watchdog(Some("soon"), None, 42), None);
        assert_eq!(watchdog(None, None, 42), None);
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        let b = monotonic_usec();
        assert!(a > 0 && b >= a);
    }

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
