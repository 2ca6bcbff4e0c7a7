//! One service's state: what is wanted of it beside what it is doing.
//!
//! `want` is the operator's and the config's intent ([`Want`]: up, up with a restart
//! pending, down (by hand or not), or on the way out of the table); `phase` is what the
//! process is doing. The handler moves `phase` toward `want`; the combinations and what
//! each one means (each row has its test in `core/tests.rs`, module `table`):
//!
//! | want    | phase      | meaning / next step                                             |
//! |---------|------------|-----------------------------------------------------------------|
//! | up      | `Waiting`  | start requested; spawns once every dependency is running        |
//! | up      | `Spawning` | spawn effect issued; `Spawned`/`SpawnFailed` answers it         |
//! | up      | `Running`  | `starting` until ready, then `running`; an exit (or a missed    |
//! |         |            | readiness, health or watchdog deadline) goes to the policy      |
//! | up      | `Stopping` | a restart: stop first, then `Waiting` again                     |
//! | up      | `Backoff`  | restart delay running; `Waiting` when it expires                |
//! | up      | `Exited`   | the policy said stay down; only a start re-arms it              |
//! | up      | `Failed`   | crash loop, spawn error, missed readiness under `never`; a      |
//! |         |            | start, a config change or `failed_cooldown` re-arms it          |
//! | up      | `Stopped`  | not reached: a start request moves `Stopped` to `Waiting`       |
//! | restart | `Running`  | stop signal once no dependent is still going down, then start   |
//! | restart | `Stopping` | the stop under way ends in a start; want is up again            |
//! | restart | `Waiting`, `Backoff`, `Stopped`, `Exited`, `Failed` | `Waiting` at once,     |
//! |         |            | with a fresh crash window                                       |
//! | restart | `Spawning` | waits for the spawn's answer, then as `Running`                 |
//! | down    | `Waiting`, `Backoff` | dropped at once to `Stopped`                          |
//! | down    | `Spawning` | stopped as soon as the spawn is answered                        |
//! | down    | `Running`  | stop signal sent once no dependent is still going down          |
//! | down    | `Stopping` | waiting for the exit (and an empty group), or the kill deadline |
//! | down    | `Stopped`, `Exited`, `Failed` | at rest                                      |
//! | remove  | any        | as down; leaves the table once nothing of it runs               |

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{KillMode, ServiceSpec};
use crate::process::{ExitStatus, Target};

use super::event::Purpose;
use super::policy::History;
use super::status::{EXIT_HISTORY, EndReason, ExitRecord, Status};

/// What is wanted of a service. One value rather than a direction plus flags, so that no
/// combination can contradict itself: a restart is only ever pending for a service that
/// should run, and only a service that should be down can have been stopped by hand or be
/// on its way out of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Want {
    /// It should run.
    Up,
    /// It should run, and a restart was asked for (operator, changed spec, restarted
    /// dependency) that waits for its turn: dependents stop first.
    Restart,
    /// It should be down; `by_operator`: because someone stopped it by hand, which a
    /// reload and a resurrect respect.
    Down { by_operator: bool },
    /// Removed from the config: it leaves the table once stopped.
    Remove,
}

impl Want {
    /// Up, with or without a restart pending.
    pub fn is_up(self) -> bool {
        matches!(self, Want::Up | Want::Restart)
    }

    /// Down, whether stopped by hand, by the config or on the way out.
    pub fn is_down(self) -> bool {
        !self.is_up()
    }

    /// Stopped by hand (what the state file records as `stopped_by_operator`).
    pub fn by_operator(self) -> bool {
        self == Want::Down { by_operator: true }
    }

    /// Wanted up, keeping a pending restart.
    pub fn up(self) -> Want {
        match self {
            Want::Restart => Want::Restart,
            _ => Want::Up,
        }
    }

    /// Wanted down, keeping who stopped it and whether it is being removed; a pending
    /// restart is dropped.
    pub fn down(self) -> Want {
        match self {
            Want::Up | Want::Restart => Want::Down { by_operator: false },
            down => down,
        }
    }

    /// A start (by the operator or a resurrect) is on its way: a stop by hand no longer
    /// stands.
    pub fn forget_operator_stop(self) -> Want {
        match self {
            Want::Down { by_operator: true } => Want::Down { by_operator: false },
            other => other,
        }
    }
}

/// A process of this service that is (or was just) alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The main process (`MAINPID=` may move it).
    pub pid: i32,
    /// The process group the service leads: the pid it was started with.
    pub pgid: i32,
    /// Field 22 of /proc/PID/stat: with the boot id, what proves later that a pid is
    /// still this process.
    pub start_time: Option<u64>,
    pub started: Instant,
    pub started_wall: SystemTime,
    /// Whether dependents may start yet and the status is `running`.
    pub readiness: Readiness,
    /// The readiness or health probe: when the next one is due, or until when the one in
    /// flight may take.
    pub probe: ProbeClock,
    /// Readiness probes tried so far (the retry interval grows with it).
    pub probe_attempts: u32,
    /// Consecutive failed health checks.
    pub health_failures: u32,
    /// `WATCHDOG=1` must come before this.
    pub watchdog_deadline: Option<Instant>,
}

/// Where a run stands with its `ready` check. A run waiting for readiness always has a
/// deadline, and a ready one none: one value, so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Readiness reported (or none asked for).
    Ready,
    /// Readiness must come before `deadline`, or the run has failed.
    Pending { deadline: Instant },
}

/// Where a run stands with its probes. A probe in flight has a deadline of the run, like
/// every other timer of the core: once it passes, the core declares the probe timed out
/// and has the shell kill it, so no task sleeps beside the probe. One value, so that a
/// next probe cannot be scheduled while one is still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeClock {
    /// No probe to run (no health check, or a readiness that needs none).
    Idle,
    /// The next probe starts then.
    Due(Instant),
    /// A probe runs; its answer must come before `deadline` (`timeout` after it began).
    InFlight {
        purpose: Purpose,
        deadline: Instant,
        timeout: Duration,
    },
}

impl ProbeClock {
    /// The moment this clock wants the core woken: a due probe or a probe's time limit.
    pub fn deadline(self) -> Option<Instant> {
        match self {
            ProbeClock::Idle => None,
            ProbeClock::Due(at) => Some(at),
            ProbeClock::InFlight { deadline, .. } => Some(deadline),
        }
    }

    /// The next probe at `at`, if any (`None`: idle).
    pub fn due(at: Option<Instant>) -> ProbeClock {
        at.map_or(ProbeClock::Idle, ProbeClock::Due)
    }
}

impl Run {
    pub fn is_ready(&self) -> bool {
        self.readiness == Readiness::Ready
    }

    /// When readiness must have come, while it has not.
    pub fn ready_deadline(&self) -> Option<Instant> {
        match self.readiness {
            Readiness::Ready => None,
            Readiness::Pending { deadline } => Some(deadline),
        }
    }

    /// Who the kill policy signals: the whole group, or only the main process.
    pub fn target(&self, mode: KillMode) -> Target {
        match mode {
            KillMode::Group => Target::Group(self.pgid),
            KillMode::Process => Target::Process(self.pid),
            KillMode::Cgroup => Target::Cgroup(self.pgid),
        }
    }

    pub fn new(pid: i32, now_at: Instant, now_wall: SystemTime) -> Run {
        Run {
            pid,
            pgid: pid,
            start_time: None,
            started: now_at,
            started_wall: now_wall,
            readiness: Readiness::Ready,
            probe: ProbeClock::Idle,
            probe_attempts: 0,
            health_failures: 0,
            watchdog_deadline: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStop {
    Stay,
    Start,
    /// runpm stopped a run that failed while running (readiness timeout, health checks,
    /// watchdog): the restart policy decides what follows, as after a crash.
    Policy {
        reason: String,
    },
}

/// How a stop is going: the stop signal went out, or SIGKILL did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// The stop signal was sent; SIGKILL follows at `deadline` if the process (or its
    /// group) is still there.
    Graceful { deadline: Instant },
    /// SIGKILL was sent: the stop no longer counts as clean, and no deadline is left.
    Forced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopping {
    pub run: Run,
    pub kill: Kill,
    /// The main process has ended; in group mode the rest of the group may linger.
    pub main_exit: Option<ExitStatus>,
    pub then: AfterStop,
    /// The process is not runpm's child (a survivor of an earlier daemon): leftovers in its
    /// group become zombies only init can reap, so their end is never seen. Its stop ends
    /// with the main process, and whatever is left of the group is killed.
    pub orphaned: bool,
}

impl Stopping {
    /// The stop signal just went to `run`'s process (or group); SIGKILL follows at
    /// `kill_deadline`.
    pub fn new(run: Run, kill_deadline: Instant, then: AfterStop) -> Stopping {
        Stopping {
            run,
            kill: Kill::Graceful {
                deadline: kill_deadline,
            },
            main_exit: None,
            then,
            orphaned: false,
        }
    }

    /// When SIGKILL is due, unless it was sent already.
    pub fn kill_deadline(&self) -> Option<Instant> {
        match self.kill {
            Kill::Graceful { deadline } => Some(deadline),
            Kill::Forced => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Stopped,
    Waiting,
    Spawning,
    Running(Run),
    Stopping(Stopping),
    Backoff {
        until: Instant,
    },
    Exited {
        status: ExitStatus,
    },
    /// `rearm_at`: when `failed_cooldown` starts it again by itself (`None`: stays failed).
    Failed {
        reason: String,
        code: u8,
        rearm_at: Option<Instant>,
    },
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
    /// Last lines of a run whose pipes closed before its exit was reaped.
    pub early_output: Option<(i32, Vec<String>)>,
    /// The last `STATUS=` the service sent over sd_notify.
    pub status_text: Option<String>,
    /// While it starts: why its last readiness probe failed (such as who else holds its
    /// port). Cleared when it becomes ready and on every change of phase.
    pub not_ready: Option<String>,
    /// Position in the supervisor's dependency order (dependencies first).
    pub rank: usize,
    /// For a service with a `schedule`: when it runs next, and whether a run is due.
    pub clock: Option<super::schedule::ScheduleClock>,
}

impl Service {
    pub fn new(spec: Arc<ServiceSpec>, now: SystemTime) -> Service {
        Service {
            spec,
            want: Want::Down { by_operator: false },
            phase: Phase::Stopped,
            since: now,
            restarts: 0,
            history: History::default(),
            exits: VecDeque::new(),
            early_output: None,
            status_text: None,
            not_ready: None,
            rank: 0,
            clock: None,
        }
    }

    /// A scheduled service that should run, with no run going and none due: it waits for
    /// its next time.
    pub fn between_runs(&self) -> bool {
        self.want.is_up()
            && self.clock.as_ref().is_some_and(|c| !c.due)
            && matches!(
                self.phase,
                Phase::Waiting | Phase::Exited { .. } | Phase::Stopped
            )
    }

    pub fn status(&self) -> Status {
        if self.between_runs() {
            return Status::Waiting;
        }
        match self.phase {
            Phase::Stopped => Status::Stopped,
            Phase::Waiting | Phase::Spawning => Status::Starting,
            Phase::Running(run) if !run.is_ready() => Status::Starting,
            Phase::Running(_) => Status::Running,
            Phase::Stopping(_) => Status::Stopping,
            Phase::Backoff { .. } => Status::Backoff,
            Phase::Exited { .. } => Status::Exited,
            Phase::Failed { .. } => Status::Failed,
        }
    }

    /// The run whose main process is alive: running, or stopping and not yet exited.
    pub fn live_run(&self) -> Option<&Run> {
        match &self.phase {
            Phase::Running(run) => Some(run),
            Phase::Stopping(s) if s.main_exit.is_none() => Some(&s.run),
            _ => None,
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.live_run().map(|run| run.pid)
    }

    /// A task that ended with a success code and stays down.
    pub fn completed(&self) -> bool {
        matches!(self.phase, Phase::Exited { status } if super::policy::is_success(&self.spec, status))
    }

    /// A process of this service may still be alive.
    pub fn is_active(&self) -> bool {
        matches!(
            self.phase,
            Phase::Spawning | Phase::Running(_) | Phase::Stopping(_)
        )
    }

    /// A fresh start by the operator, a new definition or `failed_cooldown`: the crash
    /// window starts empty and `restarts` counts from zero again.
    pub fn rearm(&mut self) {
        self.history = History::default();
        self.restarts = 0;
    }

    pub fn set_phase(&mut self, phase: Phase, now: SystemTime) {
        self.phase = phase;
        self.since = now;
        self.not_ready = None;
    }

    pub fn record_exit(
        &mut self,
        pid: i32,
        status: ExitStatus,
        at: SystemTime,
        uptime: Duration,
        reason: EndReason,
        detail: Option<String>,
    ) {
        if self.exits.len() == EXIT_HISTORY {
            self.exits.pop_front();
        }
        let last_lines = match self.early_output.take() {
            Some((early, lines)) if early == pid => lines,
            _ => Vec::new(),
        };
        self.exits.push_back(ExitRecord {
            pid,
            status,
            at,
            uptime,
            reason,
            detail,
            last_lines,
        });
    }
}
