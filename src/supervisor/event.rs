//! What flows into the supervisor's handler, and what flows out of it.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use std::time::Duration;

use crate::config::{Config, ConfigErrors, Probe, Ready, ServiceSpec, Signal};
use crate::ipc::{ProtocolError, Request};
use crate::notify::{Notification, ParentNote};
use crate::process::{ExitStatus, SpawnError, Target};

/// The moment an event is handled, on both clocks: the monotonic one for every deadline and
/// duration, the wall clock only for what people read.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn real() -> Now {
        Now {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The deadline `d` from now. Every deadline is computed here, saturating: `Instant + d`
    /// panics when the clock cannot represent the sum, and no duration (a config's, or one
    /// read back from a state file written by another version) may crash the supervisor.
    pub fn after(&self, d: Duration) -> Instant {
        later(self.at, d)
    }

    /// `d` from now on the wall clock, for people to read; saturating like [`Now::after`].
    pub fn wall_after(&self, d: Duration) -> SystemTime {
        self.wall.checked_add(d.min(FAR_AHEAD)).unwrap_or(self.wall)
    }
}

/// What "later than the clock can say" becomes: a century ahead is never in practice.
const FAR_AHEAD: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `at + d`, or at most a century ahead (see [`Now::after`]).
pub fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR_AHEAD)).unwrap_or(at)
}

#[derive(Debug, Clone)]
pub enum Event {
    /// The reaper collected a child (a service's main process or an orphan).
    ChildExited { pid: i32, status: ExitStatus },
    /// Answer to [`Effect::Spawn`]: the process runs.
    Spawned {
        service: String,
        pid: i32,
        start_time: Option<u64>,
    },
    /// Answer to [`Effect::Spawn`]: it could not be started. Shared, because events are
    /// cloned and an I/O error is not.
    SpawnFailed {
        service: String,
        error: Arc<SpawnError>,
    },
    /// Answer to [`Effect::CheckGroup`] when no process is left in the group.
    GroupEmpty { service: String, pgid: i32 },
    /// A deadline that [`super::Supervisor::next_deadline`] named has come.
    Tick,
    /// SIGTERM or SIGINT: stop everything; a second one escalates.
    Terminate { signal: &'static str },
    /// SIGHUP: reload.
    Hangup,
    /// The watcher saw the config change on disk.
    ConfigChanged,
    /// Answer to [`Effect::LoadConfig`]: the new config, or every diagnostic (file, line,
    /// column, service).
    ConfigLoaded {
        token: Option<u64>,
        dry_run: bool,
        result: Result<Config, ConfigErrors>,
    },
    /// Answer to [`Effect::LoadSnapshot`]: the services the state file says were meant to
    /// run, or why it could not be read.
    SnapshotLoaded {
        token: u64,
        wanted_up: Result<Vec<String>, crate::state::SnapshotError>,
    },
    /// A control request; answered by one [`Effect::Reply`] with the same token.
    Request { token: u64, request: Request },
    /// Answer to [`Effect::Probe`].
    ProbeDone {
        service: String,
        pid: i32,
        purpose: Purpose,
        outcome: Result<(), ProbeFailure>,
    },
    /// sd_notify messages from `sender`, a process of `service`.
    Notified {
        service: String,
        sender: i32,
        notifications: Vec<Notification>,
    },
    /// A line that process `pid` of `service` printed matched its `ready.log` pattern.
    LogReady { service: String, pid: i32 },
    /// Both output pipes of process `pid` of `service` closed: these were its last lines.
    OutputClosed {
        service: String,
        pid: i32,
        last_lines: Vec<String>,
    },
    /// SIGUSR2: re-execute runpm (as `runpmctl reexec`, with nobody to answer).
    Reexec,
    /// The cgroup of process `pid` of `service` went above its `memory_restart` (a
    /// `memory.events` notification).
    MemoryExceeded { service: String, pid: i32 },
    /// The kernel's OOM killer ended process `pid` (its cgroup's `oom_kill` count grew):
    /// told by the shell just before that pid's `ChildExited`, which it qualifies.
    OomKilled { pid: i32 },
}

/// Which sd_notify socket a service is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyRoute {
    /// The socket in the state directory.
    Own,
    /// The abstract socket, for a service that runs as another user or group and cannot
    /// enter the private state directory.
    Abstract,
}

impl NotifyRoute {
    /// Whether `spec` hears of a notify socket at all (it asked for `ready.notify` or a
    /// `watchdog`), and which one.
    pub fn of(spec: &ServiceSpec) -> Option<NotifyRoute> {
        // `fd_store_max`: the store is reached through the same socket (`FDSTORE=1`).
        let wants = matches!(spec.ready, Some(Ready::Notify))
            || spec.watchdog.is_some()
            || spec.fd_store_max > 0;
        match (wants, spec.user.is_some() || spec.group.is_some()) {
            (false, _) => None,
            (true, false) => Some(NotifyRoute::Own),
            (true, true) => Some(NotifyRoute::Abstract),
        }
    }
}

/// Why a readiness or health probe failed: shown as the service's `not ready` reason and
/// in the health-check failure it leads to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeFailure {
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: String },
    #[error("connecting to {addr} timed out after {}", rounded(*after))]
    ConnectTimedOut { addr: String, after: Duration },
    /// Something accepts connections at `addr`, but it is not this service (`holder`:
    /// who it is, when runpm can see it).
    #[error(
        "{addr} accepts connections, but the listening socket belongs to {}, not to this service",
        holder.as_deref().unwrap_or("a process runpm cannot see")
    )]
    OtherListener {
        addr: String,
        holder: Option<String>,
    },
    #[error("probe could not start: {0}")]
    NotStarted(String),
    #[error("probe timed out after {}", rounded(*after))]
    TimedOut { after: Duration },
    #[error("probe {0}")]
    Exited(ExitStatus),
    /// An HTTP check got an answer whose status it does not accept.
    #[error("GET {url} answered {status}")]
    HttpStatus { url: String, status: u16 },
    /// An HTTP check connected, but the exchange failed.
    #[error("GET {url}: {error}")]
    Http { url: String, error: String },
}

/// A duration as people read it, to the millisecond.
fn rounded(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64))
}

/// What a probe is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Ready,
    Health,
}

/// Side effects the runtime must carry out, in order.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start the service; answer with `Spawned` or `SpawnFailed`. `notify`: which of
    /// runpm's sd_notify sockets it is given in `NOTIFY_SOCKET`, if any.
    Spawn {
        service: String,
        spec: Arc<ServiceSpec>,
        notify: Option<NotifyRoute>,
    },
    Signal {
        service: String,
        target: Target,
        signal: Signal,
    },
    /// Find out whether the process group is empty; answer with `GroupEmpty` if so, and with
    /// nothing otherwise (a later orphan exit or the kill deadline asks again).
    CheckGroup { service: String, pgid: i32 },
    /// Run `probe` for process `pid` of `service`; answer with `ProbeDone`. `timeout` is for
    /// people to read: the core keeps the deadline and sends [`Effect::KillProbe`] when it
    /// passes.
    Probe {
        service: String,
        pid: i32,
        purpose: Purpose,
        probe: Probe,
        timeout: Duration,
    },
    /// Kill the probe in flight for `service` (it ran out of time, or its run ended): its
    /// process group for a command, the attempt for a TCP probe. Answered by nothing; the
    /// probe's own answer, if it still comes, is dropped by the shell.
    KillProbe { service: String },
    /// Answer the control request `token` with the recent lines of `services` (every
    /// service when empty), the last `lines` of each, then follow them when `follow`: the
    /// lines are the shell's (the log hub), the names were checked here.
    ServeLogs {
        token: u64,
        services: Vec<String>,
        lines: usize,
        /// Only lines printed since then (`logs --since`).
        since: Option<std::time::SystemTime>,
        follow: bool,
    },
    /// Write the state file now and answer the control request `token` with its path.
    SaveState { token: u64 },
    /// Read the state file for `resurrect`; answer with `SnapshotLoaded`.
    LoadSnapshot { token: u64 },
    /// Read and validate the config file again; answer with `ConfigLoaded`.
    LoadConfig { token: Option<u64>, dry_run: bool },
    /// Answer the control request `token`.
    Reply {
        token: u64,
        reply: Result<crate::ipc::Response, ProtocolError>,
    },
    /// Tell runpm's own service manager (`NOTIFY_SOCKET`) how runpm is doing.
    NotifyParent(ParentNote),
    /// runpm is done: exit with this code.
    Exit { code: u8 },
    /// Answer the control request `token` with the lifecycle events of `services` (every
    /// service when empty; names checked here): those retained since `since`, then live.
    ServeEvents {
        token: u64,
        services: Vec<String>,
        since: Option<std::time::SystemTime>,
    },
    /// Something happened that people and tools may want to know: the shell hands it to
    /// `runpmctl events` subscribers and to `logs -f` followers. Answered by nothing.
    Report(crate::report::Report),
    /// Re-execute runpm with this table (see `reexec`); `token`: the request to answer.
    Reexec {
        token: Option<u64>,
        table: Box<super::CarriedTable>,
    },
    /// Write the service's limits to its running cgroup (a reload changed only them).
    ApplyLimits {
        service: String,
        spec: Arc<ServiceSpec>,
    },
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::spec;

    #[test]
    fn a_service_hears_of_the_notify_socket_it_can_reach_when_it_needs_one() {
        let mut s = spec("web");
        assert_eq!(NotifyRoute::of(&s), None);
        s.ready = Some(Ready::Notify);
        assert_eq!(NotifyRoute::of(&s), Some(NotifyRoute::Own));
        s.user = Some("nobody".into());
        assert_eq!(NotifyRoute::of(&s), Some(NotifyRoute::Abstract));
        let mut w = spec("worker");
        w.watchdog = Some(Duration::from_secs(5));
        assert_eq!(NotifyRoute::of(&w), Some(NotifyRoute::Own));
        let mut store = spec("store");
        store.fd_store_max = 1;
        assert_eq!(NotifyRoute::of(&store), Some(NotifyRoute::Own));
    }

    #[test]
    fn probe_failures_read_as_the_not_ready_reason_people_see() {
        let other = ProbeFailure::OtherListener {
            addr: "127.0.0.1:8000".into(),
            holder: Some("pid 42 (nc)".into()),
        };
        assert_eq!(
            other.to_string(),
            "127.0.0.1:8000 accepts connections, but the listening socket belongs to \
             pid 42 (nc), not to this service"
        );
        let unseen = ProbeFailure::OtherListener {
            addr: "a:1".into(),
            holder: None,
        };
        assert!(unseen.to_string().contains("a process runpm cannot see"));
        let slow = ProbeFailure::TimedOut {
            after: Duration::from_micros(1_500_400),
        };
        assert_eq!(slow.to_string(), "probe timed out after 1s 500ms");
        let exited = ProbeFailure::Exited(ExitStatus::Code(3));
        assert!(exited.to_string().starts_with("probe "), "{exited}");
    }
}
