//! One service's state: what is wanted of it beside what it is doing.
//!
//! `want` is the operator's and the config's intent; `phase` is what the process is doing.
//! The handler moves `phase` toward `want`; the combinations and what each one means:
//!
//! | want | phase      | meaning / next step                                                |
//! |------|------------|--------------------------------------------------------------------|
//! | up   | `Waiting`  | start requested; spawns once every dependency is running           |
//! | up   | `Spawning` | spawn effect issued; `Spawned`/`SpawnFailed` answers it            |
//! | up   | `Running`  | steady state; an exit goes through the restart policy              |
//! | up   | `Stopping` | a restart: stop first, then `Waiting` again                        |
//! | up   | `Backoff`  | restart delay running; `Waiting` when it expires                   |
//! | up   | `Exited`   | the policy said stay down; only a start re-arms it                 |
//! | up   | `Failed`   | crash loop or spawn error; only a start re-arms it                 |
//! | up   | `Stopped`  | not reached: a start request moves `Stopped` to `Waiting`          |
//! | down | `Waiting`, `Backoff` | dropped at once to `Stopped`                             |
//! | down | `Spawning` | stopped as soon as the spawn is answered                           |
//! | down | `Running`  | stop signal sent once no dependent is still going down             |
//! | down | `Stopping` | waiting for the exit (and an empty group), or the kill deadline    |
//! | down | `Stopped`, `Exited`, `Failed` | at rest                                     |

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::ServiceSpec;
use crate::process::ExitStatus;

use super::policy::History;
use super::status::{EXIT_HISTORY, EndReason, ExitRecord, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Up,
    Down,
}

/// A process of this service that is (or was just) alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub pid: i32,
    pub started: Instant,
    pub started_wall: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    Stay,
    Start,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopping {
    pub run: Run,
    /// When SIGKILL follows if the process (or its group) is still there.
    pub deadline: Instant,
    /// SIGKILL was sent: the stop no longer counts as clean.
    pub forced: bool,
    /// The main process has ended; in group mode the rest of the group may linger.
    pub main_exit: Option<ExitStatus>,
    pub then: AfterStop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Stopped,
    Waiting,
    Spawning,
    Running(Run),
    Stopping(Stopping),
    Backoff { until: Instant },
    Exited { status: ExitStatus },
    Failed { reason: String, code: u8 },
}

#[derive(Debug, Clone)]
pub struct Service {
    pub spec: Arc<ServiceSpec>,
    pub want: Want,
    pub phase: Phase,
    /// When `phase` last changed.
    pub since: SystemTime,
    /// Automatic restarts so far.
    pub restarts: u32,
    pub history: History,
    pub exits: VecDeque<ExitRecord>,
    pub stopped_by_operator: bool,
}

impl Service {
    pub fn new(spec: Arc<ServiceSpec>, now: SystemTime) -> Service {
        Service {
            spec,
            want: Want::Down,
            phase: Phase::Stopped,
            since: now,
            restarts: 0,
            history: History::default(),
            exits: VecDeque::new(),
            stopped_by_operator: false,
        }
    }

    pub fn status(&self) -> Status {
        match self.phase {
            Phase::Stopped => Status::Stopped,
            Phase::Waiting | Phase::Spawning => Status::Starting,
            Phase::Running(_) => Status::Running,
            Phase::Stopping(_) => Status::Stopping,
            Phase::Backoff { .. } => Status::Backoff,
            Phase::Exited { .. } => Status::Exited,
            Phase::Failed { .. } => Status::Failed,
        }
    }

    pub fn pid(&self) -> Option<i32> {
        match &self.phase {
            Phase::Running(run) => Some(run.pid),
            Phase::Stopping(s) if s.main_exit.is_none() => Some(s.run.pid),
            _ => None,
        }
    }

    /// A process of this service may still be alive.
    pub fn is_active(&self) -> bool {
        matches!(
            self.phase,
            Phase::Spawning | Phase::Running(_) | Phase::Stopping(_)
        )
    }

    pub fn set_phase(&mut self, phase: Phase, now: SystemTime) {
        self.phase = phase;
        self.since = now;
    }

    pub fn record_exit(
        &mut self,
        status: ExitStatus,
        at: SystemTime,
        uptime: Duration,
        reason: EndReason,
    ) {
        if self.exits.len() == EXIT_HISTORY {
            self.exits.pop_front();
        }
        self.exits.push_back(ExitRecord {
            status,
            at,
            uptime,
            reason,
        });
    }
}
