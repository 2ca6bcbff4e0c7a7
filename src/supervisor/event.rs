//! What flows into the supervisor's handler, and what flows out of it.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use std::time::Duration;

use crate::config::{Config, Probe, ServiceSpec, Signal};
use crate::ipc::{ProtocolError, Request};
use crate::notify::{Notification, ParentNote};
use crate::process::{ExitStatus, Target};

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
    /// Answer to [`Effect::Spawn`]: it could not be started. `code` is what a shell would
    /// report (127 not found, 126 otherwise).
    SpawnFailed {
        service: String,
        error: String,
        code: i32,
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
    /// Answer to [`Effect::LoadConfig`]: the new config, or every diagnostic in one message.
    ConfigLoaded {
        token: Option<u64>,
        dry_run: bool,
        result: Result<Config, String>,
    },
    /// Answer to [`Effect::LoadSnapshot`]: the services the state file says were meant to
    /// run, or why it could not be read.
    SnapshotLoaded {
        token: u64,
        wanted_up: Result<Vec<String>, String>,
    },
    /// A control request; answered by one [`Effect::Reply`] with the same token.
    Request { token: u64, request: Request },
    /// Answer to [`Effect::Probe`].
    ProbeDone {
        service: String,
        pid: i32,
        purpose: Purpose,
        ok: bool,
        detail: String,
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
    /// Start the service; answer with `Spawned` or `SpawnFailed`.
    Spawn {
        service: String,
        spec: Arc<ServiceSpec>,
    },
    Signal {
        service: String,
        target: Target,
        signal: Signal,
    },
    /// Find out whether the process group is empty; answer with `GroupEmpty` if so, and with
    /// nothing otherwise (a later orphan exit or the kill deadline asks again).
    CheckGroup { service: String, pgid: i32 },
    /// Run `probe` for process `pid` of `service` within `timeout`; answer with `ProbeDone`.
    Probe {
        service: String,
        pid: i32,
        purpose: Purpose,
        probe: Probe,
        timeout: Duration,
    },
    /// Answer the control request `token` with the recent lines of `services` (every
    /// service when empty), the last `lines` of each, then follow them when `follow`: the
    /// lines are the shell's (the log hub), the names were checked here.
    ServeLogs {
        token: u64,
        services: Vec<String>,
        lines: usize,
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
        reply: Result<crate::ipc::Json, ProtocolError>,
    },
    /// Tell runpm's own service manager (`NOTIFY_SOCKET`) how runpm is doing.
    NotifyParent(ParentNote),
    /// runpm is done: exit with this code.
    Exit { code: u8 },
}
