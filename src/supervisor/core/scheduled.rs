//! Scheduled services in the core: their runs are deadlines like any other.
//!
//! Each service with a `schedule` has a [`ScheduleClock`] beside its phase. Between runs it
//! waits (status `waiting`) with the next run as a deadline in [`Supervisor::next_deadline`];
//! when it comes, [`fire`] decides from `overlap` whether the run starts, is skipped, waits
//! for the current one (`queue`) or replaces it (`kill`), and the clock moves on to the run
//! after. `drive` spawns a scheduled service only while a run is due. A run is a task run:
//! a success leaves it waiting for the next time; a failure is retried per `restart`
//! (`on-failure`, with its backoff and crash-loop limit) and the schedule goes on anyway.
//!
//! Dependents of a scheduled service wait for its first run to end well (it is `waiting`,
//! not done, until then); after that a success counts as `ready`/`completed` until a later
//! run fails.

use std::time::{Duration, SystemTime};

use crate::config::Schedule;
use crate::supervisor::event::{Effect, Now};
use crate::supervisor::schedule::{Fire, ScheduleClock, fire, missed, next_after, until};
use crate::supervisor::service::{AfterStop, Phase};

use super::Supervisor;

/// A clock for `schedule`, starting now: due at once with `run_on_start`, or when
/// `catch_up` finds a run missed since `last_run` (at start-up only).
pub(super) fn new_clock(
    name: &str,
    schedule: &Schedule,
    last_run: Option<SystemTime>,
    catching_up: bool,
    now: Now,
) -> ScheduleClock {
    let mut due = schedule.run_on_start;
    if catching_up
        && schedule.catch_up
        && let Some(at) = last_run.and_then(|last| missed(schedule, last, now.wall))
    {
        tracing::info!(
            "{name}: the run due at {} was missed while runpm was down: running it now \
             (catch_up)",
            humantime::format_rfc3339_seconds(at)
        );
        due = true;
    }
    let next = deadline(schedule, now);
    if let Some((wall, _)) = next {
        tracing::info!(
            "{name}: next run at {} (in {})",
            humantime::format_rfc3339_seconds(wall),
            until(wall, now.wall)
        );
    }
    ScheduleClock {
        schedule: schedule.clone(),
        next,
        due,
        queued: false,
        last_run,
    }
}

/// The next run after now, on both clocks.
fn deadline(schedule: &Schedule, now: Now) -> Option<(SystemTime, std::time::Instant)> {
    let wall = next_after(schedule, now.wall)?;
    let left = wall.duration_since(now.wall).unwrap_or(Duration::ZERO);
    Some((wall, now.after(left)))
}

impl Supervisor {
    /// Gives every scheduled service a clock for its current schedule (a new one when a
    /// reload changed it), and lets a queued run go once the previous one has ended.
    pub(super) fn sync_clocks(&mut self, now: Now) {
        for (name, svc) in self.services.iter_mut() {
            let Some(schedule) = svc.spec.schedule.as_ref() else {
                svc.clock = None;
                continue;
            };
            if svc.clock.as_ref().is_none_or(|c| c.schedule != *schedule) {
                let last = svc.clock.as_ref().and_then(|c| c.last_run);
                svc.clock = Some(new_clock(name, schedule, last, false, now));
            }
            let idle = matches!(
                svc.phase,
                Phase::Exited { .. } | Phase::Stopped | Phase::Failed { .. } | Phase::Waiting
            );
            let Some(clock) = svc.clock.as_mut() else {
                continue;
            };
            if clock.queued && idle {
                clock.queued = false;
                clock.due = true;
                tracing::info!("{name}: the previous run ended: running the queued one");
            }
            if clock.due
                && svc.want.is_up()
                && matches!(
                    svc.phase,
                    Phase::Exited { .. } | Phase::Stopped | Phase::Failed { .. }
                )
            {
                svc.rearm();
                svc.set_phase(Phase::Waiting, now.wall);
            }
        }
    }

    /// The earliest next run of a scheduled service that should run.
    pub(super) fn schedule_deadline(&self) -> Option<std::time::Instant> {
        self.services
            .values()
            .filter(|s| s.want.is_up())
            .filter_map(|s| s.clock.as_ref()?.next.map(|(_, at)| at))
            .min()
    }

    /// Runs whose time has come.
    pub(super) fn tick_schedules(&mut self, now: Now, fx: &mut Vec<Effect>) {
        let mut replace = Vec::new();
        for (name, svc) in self.services.iter_mut() {
            if !svc.want.is_up() {
                continue;
            }
            let running = matches!(
                svc.phase,
                Phase::Spawning | Phase::Running(_) | Phase::Stopping(_) | Phase::Backoff { .. }
            );
            let Some(clock) = svc.clock.as_mut() else {
                continue;
            };
            let Some((wall, at)) = clock.next else {
                continue;
            };
            if at > now.at {
                continue;
            }
            clock.next = deadline(&clock.schedule, now);
            let at_text = humantime::format_rfc3339_seconds(wall);
            match fire(clock.schedule.overlap, running) {
                Fire::Start => clock.due = true,
                Fire::Skip => tracing::warn!(
                    "{name}: the run due at {at_text} is skipped: the previous run is still \
                     going (overlap = \"skip\")"
                ),
                Fire::Queue => {
                    tracing::info!(
                        "{name}: the run due at {at_text} waits for the previous one to end \
                         (overlap = \"queue\")"
                    );
                    clock.queued = true;
                }
                Fire::Replace => {
                    tracing::warn!(
                        "{name}: the run due at {at_text} replaces the previous one, still \
                         going (overlap = \"kill\")"
                    );
                    clock.due = true;
                    replace.push(name.clone());
                }
            }
        }
        for name in replace {
            let running = self
                .services
                .get(&name)
                .is_some_and(|s| matches!(s.phase, Phase::Running(_)));
            if running {
                self.begin_stop(&name, AfterStop::Start, now, fx);
            }
        }
    }

    /// A scheduled service is being spawned: its due run starts now.
    pub(super) fn run_starts(&mut self, name: &str, now: Now) {
        if let Some(clock) = self.services.get_mut(name).and_then(|s| s.clock.as_mut()) {
            clock.due = false;
            clock.last_run = Some(now.wall);
        }
    }
}
