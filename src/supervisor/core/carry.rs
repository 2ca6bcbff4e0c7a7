//! The supervisor's table across a re-exec of runpm (`runpmctl reexec`, issue 14).
//!
//! [`Supervisor::carry`] turns the table into plain data: per service its spec, what is
//! wanted of it, its phase with every deadline as the time that was left, its counters,
//! crash window and exit history. [`Supervisor::resume`] builds the table back in the new
//! process image, where the same pids are still runpm's children (the pid did not change),
//! so the reaper simply goes on.
//!
//! Phases in the middle of a transition are not carried: a service being spawned or
//! stopped, a shutdown, or an operator request still waiting for its reply (its
//! connection would not survive the exec). `carry` then says which, and the re-exec is
//! refused until things settle; that is a moment at most a `kill_timeout` away.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ExitWhen, ServiceSpec, Settings};
use crate::process::ExitStatus;

use super::super::policy::{History, Jitter};
use super::super::schedule::ScheduleClock;
use super::super::service::{Phase, ProbeClock, Readiness, Run, Service, Want};
use super::super::status::{EndReason, ExitRecord};
use super::{Effect, Now, Supervisor};

/// The supervisor's table as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarriedTable {
    pub source: String,
    pub settings: Settings,
    pub exit_when: Option<ExitWhen>,
    pub last_known_good: Option<String>,
    pub services: Vec<CarriedService>,
    /// The replicated groups as written, and `runpmctl scale` overrides in force.
    #[serde(default)]
    pub replicated: BTreeMap<String, crate::config::Replicated>,
    #[serde(default)]
    pub scaled: BTreeMap<String, crate::config::Scaled>,
    /// The profiles and services `runpm up` selected, for the reloads to come.
    #[serde(default)]
    pub selection: crate::config::Selection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarriedService {
    pub spec: ServiceSpec,
    pub want: CarriedWant,
    pub phase: CarriedPhase,
    pub since: SystemTime,
    pub restarts: u32,
    /// Failed runs inside the restart window, as how long ago they ended.
    pub failures_ago: Vec<Duration>,
    pub consecutive: u32,
    pub exits: Vec<CarriedExit>,
    pub status_text: Option<String>,
    /// A scheduled service's clock.
    #[serde(default)]
    pub schedule: Option<CarriedSchedule>,
}

/// A [`ScheduleClock`] with its deadline as the time that was left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarriedSchedule {
    pub next: Option<(SystemTime, Duration)>,
    pub due: bool,
    pub queued: bool,
    pub last_run: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CarriedWant {
    Up,
    Restart,
    Down,
    DownByOperator,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "phase")]
pub enum CarriedPhase {
    Stopped,
    Waiting,
    Running(CarriedRun),
    Backoff {
        left: Duration,
    },
    Exited {
        status: ExitStatus,
    },
    Failed {
        reason: String,
        code: u8,
        rearm_in: Option<Duration>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedRun {
    pub pid: i32,
    pub pgid: i32,
    pub start_time: Option<u64>,
    /// How long it had run.
    pub uptime: Duration,
    pub started_wall: SystemTime,
    /// `None`: ready; else the time left to become ready.
    pub ready_in: Option<Duration>,
    /// When the next probe is due (a probe in flight is started again: its process is an
    /// orphan to the new image, reaped and forgotten).
    pub probe_in: Option<Duration>,
    pub probe_attempts: u32,
    pub health_failures: u32,
    pub watchdog_in: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedExit {
    pub pid: i32,
    pub status: ExitStatus,
    pub at: SystemTime,
    pub uptime: Duration,
    pub reason: String,
    pub detail: Option<String>,
    pub last_lines: Vec<String>,
}

/// Why the table cannot be carried right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotNow {
    #[error("runpm is shutting down")]
    ShuttingDown,
    #[error("`{service}` is {doing}; try again once it has settled")]
    Busy {
        service: String,
        doing: &'static str,
    },
    #[error("an operator request is still in progress; try again once it has been answered")]
    Waiting,
}

fn left(deadline: Instant, now: Instant) -> Duration {
    deadline.saturating_duration_since(now)
}

impl Supervisor {
    /// The table as data, or why it cannot be carried at this moment.
    pub fn carry(&self, now: Now) -> Result<CarriedTable, NotNow> {
        if self.shutdown.is_some() {
            return Err(NotNow::ShuttingDown);
        }
        if !self.waiters.is_empty() {
            return Err(NotNow::Waiting);
        }
        let mut services = Vec::with_capacity(self.services.len());
        for (name, svc) in &self.services {
            let busy = |doing| NotNow::Busy {
                service: name.clone(),
                doing,
            };
            let want = match svc.want {
                Want::Up => CarriedWant::Up,
                Want::Restart => CarriedWant::Restart,
                Want::Down { by_operator: false } => CarriedWant::Down,
                Want::Down { by_operator: true } => CarriedWant::DownByOperator,
                Want::Remove => return Err(busy("being removed")),
            };
            let phase = match &svc.phase {
                Phase::Stopped => CarriedPhase::Stopped,
                Phase::Waiting => CarriedPhase::Waiting,
                Phase::Spawning => return Err(busy("being started")),
                Phase::Stopping(_) => return Err(busy("being stopped")),
                Phase::Running(run) => CarriedPhase::Running(CarriedRun {
                    pid: run.pid,
                    pgid: run.pgid,
                    start_time: run.start_time,
                    uptime: now.at.saturating_duration_since(run.started),
                    started_wall: run.started_wall,
                    ready_in: run.ready_deadline().map(|d| left(d, now.at)),
                    probe_in: match run.probe {
                        ProbeClock::Idle => None,
                        ProbeClock::Due(at) => Some(left(at, now.at)),
                        ProbeClock::InFlight { .. } => Some(Duration::ZERO),
                    },
                    probe_attempts: run.probe_attempts,
                    health_failures: run.health_failures,
                    watchdog_in: run.watchdog_deadline.map(|d| left(d, now.at)),
                }),
                Phase::Backoff { until } => CarriedPhase::Backoff {
                    left: left(*until, now.at),
                },
                Phase::Exited { status } => CarriedPhase::Exited { status: *status },
                Phase::Failed {
                    reason,
                    code,
                    rearm_at,
                } => CarriedPhase::Failed {
                    reason: reason.clone(),
                    code: *code,
                    rearm_in: rearm_at.map(|at| left(at, now.at)),
                },
            };
            services.push(CarriedService {
                spec: svc.spec.as_ref().clone(),
                want,
                phase,
                since: svc.since,
                restarts: svc.restarts,
                failures_ago: svc
                    .history
                    .failures
                    .iter()
                    .map(|at| now.at.saturating_duration_since(*at))
                    .collect(),
                consecutive: svc.history.consecutive,
                exits: svc
                    .exits
                    .iter()
                    .map(|e| CarriedExit {
                        pid: e.pid,
                        status: e.status,
                        at: e.at,
                        uptime: e.uptime,
                        reason: reason_word(e.reason).to_owned(),
                        detail: e.detail.clone(),
                        last_lines: e.last_lines.clone(),
                    })
                    .collect(),
                status_text: svc.status_text.clone(),
                schedule: svc.clock.as_ref().map(|c| CarriedSchedule {
                    next: c.next.map(|(wall, at)| (wall, left(at, now.at))),
                    due: c.due,
                    queued: c.queued,
                    last_run: c.last_run,
                }),
            });
        }
        Ok(CarriedTable {
            source: self.source.clone(),
            settings: self.settings.clone(),
            exit_when: self.exit_when.clone(),
            last_known_good: self.last_known_good.clone(),
            services,
            replicated: self.replicated.clone(),
            scaled: self.scaled.clone(),
            selection: self.selection.clone(),
        })
    }

    /// The table back from `table`, with the effects that carry on from it (a service
    /// that was waiting starts, due deadlines fire at the next turn).
    pub fn resume(table: CarriedTable, jitter: Jitter, now: Now) -> (Supervisor, Vec<Effect>) {
        let config = Config {
            source: table.source.clone().into(),
            base_dir: Default::default(),
            settings: table.settings.clone(),
            services: Default::default(),
            replicated: table.replicated.clone(),
            selection: table.selection.clone(),
        };
        let mut sup = Supervisor::new(&config, table.exit_when.clone(), jitter);
        sup.scaled = table.scaled;
        sup.exit_when = table.exit_when;
        sup.last_known_good = table.last_known_good;
        let back = |d: Duration| now.at.checked_sub(d).unwrap_or(now.at);
        let ahead = |d: Duration| now.after(d);
        for carried in table.services {
            let name = carried.spec.name.clone();
            let mut svc = Service::new(Arc::new(carried.spec), carried.since);
            svc.want = match carried.want {
                CarriedWant::Up => Want::Up,
                CarriedWant::Restart => Want::Restart,
                CarriedWant::Down => Want::Down { by_operator: false },
                CarriedWant::DownByOperator => Want::Down { by_operator: true },
            };
            svc.phase = match carried.phase {
                CarriedPhase::Stopped => Phase::Stopped,
                CarriedPhase::Waiting => Phase::Waiting,
                CarriedPhase::Running(run) => {
                    sup.by_pid.insert(run.pid, name.clone());
                    Phase::Running(Run {
                        pid: run.pid,
                        pgid: run.pgid,
                        start_time: run.start_time,
                        started: back(run.uptime),
                        started_wall: run.started_wall,
                        readiness: match run.ready_in {
                            None => Readiness::Ready,
                            Some(d) => Readiness::Pending { deadline: ahead(d) },
                        },
                        probe: ProbeClock::due(run.probe_in.map(ahead)),
                        probe_attempts: run.probe_attempts,
                        health_failures: run.health_failures,
                        watchdog_deadline: run.watchdog_in.map(ahead),
                    })
                }
                CarriedPhase::Backoff { left } => Phase::Backoff { until: ahead(left) },
                CarriedPhase::Exited { status } => Phase::Exited { status },
                CarriedPhase::Failed {
                    reason,
                    code,
                    rearm_in,
                } => Phase::Failed {
                    reason,
                    code,
                    rearm_at: rearm_in.map(ahead),
                },
            };
            svc.restarts = carried.restarts;
            svc.history = History {
                failures: carried.failures_ago.into_iter().map(back).collect(),
                consecutive: carried.consecutive,
            };
            svc.exits = carried
                .exits
                .into_iter()
                .map(|e| ExitRecord {
                    pid: e.pid,
                    status: e.status,
                    at: e.at,
                    uptime: e.uptime,
                    reason: reason_of(&e.reason),
                    detail: e.detail,
                    last_lines: e.last_lines,
                })
                .collect::<VecDeque<_>>();
            svc.status_text = carried.status_text;
            if let (Some(schedule), Some(clock)) = (&svc.spec.schedule, carried.schedule) {
                svc.clock = Some(ScheduleClock {
                    schedule: schedule.clone(),
                    next: clock.next.map(|(wall, d)| (wall, ahead(d))),
                    due: clock.due,
                    queued: clock.queued,
                    last_run: clock.last_run,
                });
            }
            sup.services.insert(name, svc);
        }
        sup.reorder();
        let mut fx = Vec::new();
        sup.drive(now, &mut fx);
        (sup, fx)
    }
}

impl Supervisor {
    /// `runpmctl reexec` (with its `token`) or SIGUSR2: the table goes to the shell, which
    /// checks the binary and execs; or the answer says why not now.
    pub(super) fn reexec(&self, token: Option<u64>, now: Now, fx: &mut Vec<Effect>) {
        match self.carry(now) {
            Ok(table) => fx.push(Effect::Reexec {
                token,
                table: Box::new(table),
            }),
            Err(e) => match token {
                Some(token) => fx.push(Effect::Reply {
                    token,
                    reply: Err(crate::ipc::ProtocolError::new(
                        crate::ipc::ErrorKind::Failed,
                        format!("cannot re-execute now: {e}"),
                    )),
                }),
                None => tracing::warn!("received SIGUSR2 but cannot re-execute now: {e}"),
            },
        }
    }
}

fn reason_word(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Exited => "exited",
        EndReason::Stopped => "stopped",
        EndReason::SpawnFailed => "spawn-failed",
        EndReason::Failed => "failed",
        EndReason::OomKilled => "oom-killed",
    }
}

fn reason_of(word: &str) -> EndReason {
    match word {
        "stopped" => EndReason::Stopped,
        "spawn-failed" => EndReason::SpawnFailed,
        "failed" => EndReason::Failed,
        "oom-killed" => EndReason::OomKilled,
        _ => EndReason::Exited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::testing::spec;

    fn now() -> Now {
        Now::real()
    }

    #[test]
    fn a_running_table_comes_back_the_same() {
        let mut config = Config {
            source: "/x/services.toml".into(),
            base_dir: "/x".into(),
            settings: Settings::default(),
            services: Default::default(),
            replicated: Default::default(),
            selection: Default::default(),
        };
        let mut web = spec("web");
        web.command = crate::config::Command::Argv(vec!["sleep".into(), "100".into()]);
        config.services.insert("web".into(), web);
        config.services.insert("db".into(), spec("db"));
        let t0 = now();
        let mut sup = Supervisor::new(&config, None, Jitter::new(1));
        let _ = sup.boot(&config, None, None, t0);
        for (name, pid) in [("web", 100), ("db", 101)] {
            let _ = sup.handle(
                crate::supervisor::Event::Spawned {
                    service: name.into(),
                    pid,
                    start_time: Some(7),
                },
                t0,
            );
        }
        let table = sup.carry(t0).unwrap();
        let text = serde_json::to_string(&table).unwrap();
        let back: CarriedTable = serde_json::from_str(&text).unwrap();
        let (resumed, fx) = Supervisor::resume(back, Jitter::new(1), now());
        assert!(
            fx.iter().all(|e| !matches!(e, Effect::Spawn { .. })),
            "{fx:?}"
        );
        for name in ["web", "db"] {
            let (a, b) = (sup.service(name).unwrap(), resumed.service(name).unwrap());
            assert_eq!(a.pid(), b.pid());
            assert_eq!(a.status(), b.status());
            assert_eq!(a.restarts, b.restarts);
        }
        assert_eq!(resumed.by_pid.get(&100).map(String::as_str), Some("web"));
    }

    #[test]
    fn a_service_being_stopped_is_not_carried() {
        let mut config = Config {
            source: "/x/services.toml".into(),
            base_dir: "/x".into(),
            settings: Settings::default(),
            services: Default::default(),
            replicated: Default::default(),
            selection: Default::default(),
        };
        config.services.insert("web".into(), spec("web"));
        let t0 = now();
        let mut sup = Supervisor::new(&config, None, Jitter::new(1));
        let _ = sup.boot(&config, None, None, t0);
        assert!(matches!(
            sup.carry(t0),
            Err(NotNow::Busy {
                doing: "being started",
                ..
            })
        ));
    }
}
