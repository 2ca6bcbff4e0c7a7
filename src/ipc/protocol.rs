//! The control protocol: newline-delimited JSON over a Unix stream socket.
//!
//! Every request is one JSON object on one line with an `id` (an integer chosen by the
//! client) and a `cmd`; every reply carries the same `id`, also when the request was
//! malformed (`id` is null only when none could be read). The first request on a connection
//! must be `hello`, whose reply names the protocol version the daemon speaks; a client with
//! another major version is refused. A request that fails is an error reply
//! (`"ok": false`), never a success that wraps a failure. A request with a key given twice
//! is refused (see `codec`): JSON parsers disagree on which of the two counts.
//!
//! ```text
//! → {"id":1,"cmd":"hello","version":1}
//! ← {"id":1,"ok":true,"result":{"version":1,"daemon_pid":4242,"config":"/srv/app/services.toml"}}
//! → {"id":2,"cmd":"restart","services":["worker"]}
//! ← {"id":2,"ok":true,"result":{"services":[{"name":"worker","status":"running","pid":4313,...}]}}
//! → {"id":3,"cmd":"stop","services":["nope"]}
//! ← {"id":3,"ok":false,"error":{"kind":"unknown_service","message":"no service named `nope`"}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the daemon reads; longer ones get an error and the connection ends.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Hello {
        version: u32,
    },
    Status {
        #[serde(default)]
        services: Vec<String>,
    },
    Start {
        #[serde(default)]
        services: Vec<String>,
        #[serde(default)]
        all: bool,
    },
    Stop {
        #[serde(default)]
        services: Vec<String>,
        #[serde(default)]
        all: bool,
    },
    Restart {
        #[serde(default)]
        services: Vec<String>,
        #[serde(default)]
        all: bool,
    },
    Reload {
        #[serde(default)]
        dry_run: bool,
    },
    Shutdown,
    /// Write the state file now; the reply names it.
    Save,
    /// Bring back what the state file says was running (through the planner: running it
    /// twice changes nothing the second time). Replies as `reload` does.
    Resurrect,
    /// The last `lines` lines of these services (all when empty), merged by time; with
    /// `follow`, further replies carry new lines as they are printed, until the client
    /// goes away.
    Logs {
        #[serde(default)]
        services: Vec<String>,
        /// Per service: each followed service shows its own last `lines` lines.
        #[serde(default = "default_log_lines")]
        lines: usize,
        #[serde(default)]
        follow: bool,
        /// Only lines printed at or after this time (RFC 3339).
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        since: Option<std::time::SystemTime>,
    },
    /// Sends `signal` (a name such as `HUP` or `SIGHUP`) to each service's main process, or
    /// with `group` to its whole process group. Refused for a service that has no process.
    /// Replies as `status` does, for these services.
    Kill {
        services: Vec<String>,
        signal: String,
        #[serde(default)]
        group: bool,
    },
    /// The lifecycle events of these services (all when empty) and the daemon's own, pushed
    /// as they happen until the client goes away or the daemon exits (after a last
    /// `daemon_stopping`). With `since` (RFC 3339), the retained events at or after it come
    /// first (the daemon keeps the last 1000). The first reply comes at once, with those
    /// (or none): it confirms the subscription.
    Events {
        #[serde(default)]
        services: Vec<String>,
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        since: Option<std::time::SystemTime>,
    },
    /// Run `replicas` copies of the replicated service `service` (its `replicas` in the
    /// config) until the config's `replicas` changes; only the difference starts or stops.
    /// Replies with the group and the replicas started and stopped, once done.
    Scale {
        service: String,
        replicas: u32,
    },
    /// Re-executes runpm from the path it was started from, every service kept (issue 14).
    /// Replies `{"pid": N, "binary": "…"}` just before the exec, once the binary has shown
    /// it can take over; an error (and no exec) otherwise.
    Reexec,
}

fn default_log_lines() -> usize {
    10
}

fn default_wanted() -> String {
    "up".into()
}

/// A `logs` reply: lines, or (while following) how many lines this client missed because
/// it read too slowly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsResult {
    #[serde(default)]
    pub lines: Vec<crate::logs::LogLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

/// A request as it arrives: the id, and the request or why it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub id: Option<u64>,
    pub request: Result<Request, ProtocolError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ProtocolError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            kind,
            message: message.into(),
        }
    }

    /// The one answer to work asked of a daemon that is shutting down.
    pub fn shutting_down() -> ProtocolError {
        ProtocolError::new(ErrorKind::ShuttingDown, "runpm is shutting down")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not JSON, not an object, unknown `cmd`, wrong field types, too long.
    BadRequest,
    /// `hello` missing, or a version this daemon does not speak.
    Version,
    UnknownService,
    /// The config could not be loaded (reload); the message lists every diagnostic.
    InvalidConfig,
    /// The operation was carried out and did not succeed (a start that failed, a timeout).
    Failed,
    /// The daemon is shutting down and takes no more work.
    ShuttingDown,
    /// The peer's uid may not control this daemon (only the daemon's own uid and root may).
    Forbidden,
}

/// A result as JSON text. The daemon serializes a status of a thousand services straight
/// into it, and the client decodes it straight into its type, with no tree of values in
/// between.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(Box<RawValue>);

impl Json {
    /// `value` as a reply's result. Our results are plain data; should one ever fail to
    /// serialize, the client gets an error that says so instead of no answer.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<Json, ProtocolError> {
        serde_json::value::to_raw_value(value)
            .map(Json)
            .map_err(|e| {
                ProtocolError::new(ErrorKind::Failed, format!("cannot encode the result: {e}"))
            })
    }

    pub fn null() -> Json {
        Json(RawValue::NULL.to_owned())
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }

    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }
}

/// A value always serializes.
impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Json {
        Json(serde_json::value::to_raw_value(&value).expect("a JSON value serializes"))
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.text() == other.text()
    }
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProtocolError>,
}

impl Reply {
    pub fn ok(id: Option<u64>, result: impl Into<Json>) -> Reply {
        Reply {
            id,
            ok: true,
            result: Some(result.into()),
            error: None,
        }
    }

    /// A reply to `id` from what the daemon decided: a result or an error.
    pub fn from_result(id: Option<u64>, result: Result<Json, ProtocolError>) -> Reply {
        match result {
            Ok(value) => Reply::ok(id, value),
            Err(error) => Reply::err(id, error),
        }
    }

    pub fn err(id: Option<u64>, error: ProtocolError) -> Reply {
        Reply {
            id,
            ok: false,
            result: None,
            error: Some(error),
        }
    }

    /// The result of a successful reply (null when it carried none), or its error. A reply
    /// that says `ok: false` without an error is reported as a `failed` error.
    pub fn into_result(self) -> Result<Json, ProtocolError> {
        match (self.ok, self.error) {
            (true, _) => Ok(self.result.unwrap_or_else(Json::null)),
            (false, Some(error)) => Err(error),
            (false, None) => Err(ProtocolError::new(
                ErrorKind::Failed,
                "the daemon reported a failure without saying why",
            )),
        }
    }
}

/// `hello` result: the protocol version the daemon speaks, its pid, and the config it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResult {
    pub version: u32,
    pub daemon_pid: u32,
    pub config: String,
}

/// `status` result: `{"services": [ServiceInfo…]}`, and the result of start/stop/restart
/// (the services they touched, as they are once the operation is done).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResult {
    pub services: Vec<ServiceInfo>,
    /// Set while the daemon runs the last-known-good specs from its state file because the
    /// config could not be loaded at start-up: the config's errors. A valid reload clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_from_snapshot: Option<String>,
    /// Whether the services run in cgroups of their own, and where, or why not (none from
    /// a daemon that predates cgroups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<CgroupsInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    /// starting, running, stopping, stopped, exited, backoff, failed.
    pub status: String,
    pub pid: Option<i32>,
    /// Automatic restarts since the daemon started (or the service was re-armed).
    pub restarts: u32,
    /// When the status last changed (RFC 3339, UTC).
    pub since: String,
    /// How long the current process has run, while there is one.
    pub uptime_ms: Option<u64>,
    pub stopped_by_operator: bool,
    /// Whether the service should run: `up` (autostart, or started by the operator) or
    /// `down` (stopped by the operator, or `autostart = false` and never started).
    #[serde(default = "default_wanted")]
    pub wanted: String,
    /// A task that ended with one of its `success_exit_codes` and stays down.
    #[serde(default)]
    pub completed: bool,
    /// For `failed`: why.
    #[serde(default)]
    pub reason: Option<String>,
    /// For `backoff`, and for `failed` with a `failed_cooldown`: when the next start is
    /// due (RFC 3339, UTC).
    #[serde(default)]
    pub next_start: Option<String>,
    /// The last `STATUS=` the service sent over sd_notify.
    #[serde(default)]
    pub status_text: Option<String>,
    /// For a `starting` service that has no process yet: the dependencies whose condition
    /// does not hold yet (names).
    #[serde(default)]
    pub waiting_for: Vec<String>,
    /// Every dependency, with its condition and where it stands.
    #[serde(default)]
    pub dependencies: Vec<DependencyInfo>,
    /// For `starting`: why its last readiness check failed (such as `… the listening
    /// socket belongs to pid 42 (python3), not to this service`).
    #[serde(default)]
    pub not_ready: Option<String>,
    /// Most recent last.
    pub exits: Vec<ExitInfo>,
    /// For a replica (`web.1`): the service whose `replicas` made it (`web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_of: Option<String>,
    /// For a scheduled service that should run: when its next run comes (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// For a scheduled service: when its last run started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// What it uses and whether its limits hold (see [`ResourceInfo`]).
    #[serde(flatten, default)]
    pub resources: ResourceInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyInfo {
    pub name: String,
    /// `started`, `ready` or `completed`.
    pub condition: String,
    /// The dependency's own status.
    pub status: String,
    /// Whether the condition holds (through the whole graph: a completed task whose own
    /// dependency is restarting does not count yet).
    pub met: bool,
    /// When it cannot hold by itself or waits for a restart: why, in words
    /// (`db, which failed (crash loop: …)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// The exit code, or null when a signal ended the process.
    pub code: Option<i32>,
    /// The signal's name (`SIGKILL`), or null.
    pub signal: Option<String>,
    pub at: String,
    pub uptime_ms: u64,
    /// `exited` (on its own), `stopped` (by runpm or the operator), `spawn-failed`, or
    /// `failed` (runpm ended it: never ready, failed health checks, missed watchdog).
    pub reason: String,
    /// Why, in words (the spawn error, `not ready within 30s`, …), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default)]
    pub last_lines: Vec<String>,
}

/// `reload` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadResult {
    pub dry_run: bool,
    pub config: String,
    pub changes: Vec<Change>,
    pub unchanged: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    /// `started`, `stopped`, `restarted`, `updated` (changed while not running: takes
    /// effect at its next start).
    pub action: String,
    /// The spec fields that differ (`cmd`, `env`, …), or why else it is in the plan
    /// (`dependency db restarted`, `new`, `removed`).
    pub changed: Vec<String>,
}

/// `status`: the daemon's cgroups. `path` when enabled, `reason` when not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupsInfo {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The controllers enabled for the services (`cpu memory pids`…).
    #[serde(default)]
    pub controllers: Vec<String>,
}

/// `status`, per service: what it uses now (read when asked; null when not known here)
/// and whether its limits are enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    /// The service's cgroup, when it has one.
    #[serde(default)]
    pub cgroup: Option<String>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub memory_peak_bytes: Option<u64>,
    #[serde(default)]
    pub cpu_usec: Option<u64>,
    #[serde(default)]
    pub tasks: Option<u64>,
    #[serde(default)]
    pub oom_kills: Option<u64>,
    /// False when a limit it sets cannot be enforced here; `limits_reason` says why.
    #[serde(default = "enforced")]
    pub limits_enforced: bool,
    #[serde(default)]
    pub limits_reason: Option<String>,
}

fn enforced() -> bool {
    true
}

impl Default for ResourceInfo {
    fn default() -> ResourceInfo {
        ResourceInfo {
            cgroup: None,
            memory_bytes: None,
            memory_peak_bytes: None,
            cpu_usec: None,
            tasks: None,
            oom_kills: None,
            limits_enforced: true,
            limits_reason: None,
        }
    }
}
