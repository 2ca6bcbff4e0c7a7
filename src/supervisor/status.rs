//! What a service looks like from outside: its status word and its exit history.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::process::ExitStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Spawned (or waiting for its dependencies), not yet ready.
    Starting,
    Running,
    Stopping,
    /// Stopped by the operator, or never started.
    Stopped,
    /// Ended, and the restart policy says stay down.
    Exited,
    /// Waiting to be restarted.
    Backoff,
    /// Crash loop or spawn error.
    Failed,
    /// A scheduled service between its runs: the next one comes at its time.
    Waiting,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Exited => "exited",
            Status::Backoff => "backoff",
            Status::Failed => "failed",
            Status::Waiting => "waiting",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run ended, from runpm's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// It ended on its own.
    Exited,
    /// runpm stopped it.
    Stopped,
    /// It could not be started at all.
    SpawnFailed,
    /// runpm ended it because it failed while running: never ready, failed health checks,
    /// a missed watchdog (the record's `detail` says which).
    Failed,
    /// The kernel's OOM killer ended it (its cgroup's `memory.events` counted the kill).
    OomKilled,
}

/// One ended run of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRecord {
    pub pid: i32,
    pub status: ExitStatus,
    pub at: SystemTime,
    pub uptime: Duration,
    pub reason: EndReason,
    /// Why, in words, when runpm knows more than the status says.
    pub detail: Option<String>,
    /// What the run printed last; filled in when its pipes close.
    pub last_lines: Vec<String>,
}

/// How many ended runs a service remembers.
pub const EXIT_HISTORY: usize = 10;
