//! What runpm tells its own service manager, decided here and carried out by the shell as
//! [`Effect::NotifyParent`]: `READY=1` once nothing asked to start is still on its way,
//! `RELOADING=1` then `READY=1` around a reload, `STOPPING=1` when the shutdown begins, a
//! `STATUS=` line whenever the counts it shows change, and `WATCHDOG=1` at half the
//! manager's `WATCHDOG_USEC`, as a deadline of the core (a loop that stopped turning stops
//! pinging, which is what the watchdog is for).

use std::time::{Duration, Instant};

use crate::notify::ParentNote;
use crate::supervisor::Status;

use super::super::event::{Effect, Event, Now};
use super::Supervisor;

/// What was told so far. Present only when a manager listens (`NOTIFY_SOCKET`).
#[derive(Debug, Clone)]
pub(super) struct Parent {
    told_ready: bool,
    told_stopping: bool,
    /// The last `STATUS=` sent, so that an unchanged one is not sent again.
    status: String,
    /// The watchdog interval to ping at, and when the next ping is due.
    watchdog: Option<(Duration, Instant)>,
}

impl Supervisor {
    /// A service manager listens: tell it how runpm is doing. `watchdog`: its
    /// `WATCHDOG_USEC`, pinged at half that interval.
    pub fn notify_parent(&mut self, watchdog: Option<Duration>, now: Now) {
        self.parent = Some(Parent {
            told_ready: false,
            told_stopping: false,
            status: String::new(),
            watchdog: watchdog.map(|w| (w / 2, now.at)),
        });
    }

    /// When the next watchdog ping is due.
    pub(super) fn parent_deadline(&self) -> Option<Instant> {
        self.parent.as_ref()?.watchdog.map(|(_, at)| at)
    }

    /// After a turn: what the manager should hear about it. `events` tells whether a reload
    /// finished in this turn; `fx` holds the turn's effects, where a reload that begins is
    /// announced just before its `LoadConfig`.
    pub(super) fn tell_parent(&mut self, reload_done: bool, now: Now, fx: &mut Vec<Effect>) {
        let Some(mut parent) = self.parent.take() else {
            return;
        };
        if let Some((interval, due)) = &mut parent.watchdog
            && *due <= now.at
        {
            fx.push(Effect::NotifyParent(ParentNote::Watchdog));
            *due = now.after(*interval);
        }
        if self.shutdown.is_some() {
            if !parent.told_stopping {
                parent.told_stopping = true;
                fx.push(Effect::NotifyParent(ParentNote::Stopping {
                    status: "stopping services".into(),
                }));
            }
        } else if !parent.told_ready {
            if !self.is_starting() {
                parent.told_ready = true;
                parent.status = self.status_line();
                fx.push(Effect::NotifyParent(ParentNote::Ready {
                    status: parent.status.clone(),
                }));
            }
        } else {
            let reload_begins = fx
                .iter()
                .position(|e| matches!(e, Effect::LoadConfig { dry_run: false, .. }));
            if let Some(at) = reload_begins {
                fx.insert(at, Effect::NotifyParent(ParentNote::Reloading));
            }
            let status = self.status_line();
            if reload_done {
                parent.status = status.clone();
                fx.push(Effect::NotifyParent(ParentNote::Ready { status }));
            } else if status != parent.status {
                parent.status = status.clone();
                fx.push(Effect::NotifyParent(ParentNote::Status(status)));
            }
        }
        self.parent = Some(parent);
    }

    /// "5 running, 1 failed": the services that run, then those on their way or in trouble.
    fn status_line(&self) -> String {
        let count = |status: Status| {
            self.services
                .values()
                .filter(|s| s.status() == status)
                .count()
        };
        let mut line = format!("{} running", count(Status::Running));
        for status in [Status::Starting, Status::Backoff, Status::Failed] {
            let n = count(status);
            if n > 0 {
                line.push_str(&format!(", {n} {status}"));
            }
        }
        line
    }
}

/// Whether `event` ends a reload that was announced (a dry run changes nothing).
pub(super) fn ends_reload(event: &Event) -> bool {
    matches!(event, Event::ConfigLoaded { dry_run: false, .. })
}
