//! The daemon's side of the event stream: the last [`RING_CAPACITY`] events for `events
//! --since`, and a broadcast to the live subscribers.
//!
//! Pushing is all an event costs while nobody subscribes: the broadcast is skipped when it
//! has no receiver. History and subscription are taken together, on the loop's thread, so
//! the replayed events and the live ones meet exactly. A subscriber that falls more than
//! [`FOLLOW_BUFFER`] events behind loses the oldest and is told how many.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;

use super::record::Report;

/// Events kept for replay.
pub const RING_CAPACITY: usize = 1000;

/// Events a subscriber may fall behind before it loses some.
const FOLLOW_BUFFER: usize = 1024;

pub struct Ring {
    recent: VecDeque<Arc<Report>>,
    live: Option<broadcast::Sender<Arc<Report>>>,
}

impl Default for Ring {
    fn default() -> Ring {
        Ring::new()
    }
}

impl Ring {
    pub fn new() -> Ring {
        Ring {
            recent: VecDeque::with_capacity(64),
            live: Some(broadcast::channel(FOLLOW_BUFFER).0),
        }
    }

    /// Keeps `report` and hands it to the live subscribers, if any.
    pub fn push(&mut self, report: Report) -> Arc<Report> {
        let report = Arc::new(report);
        if self.recent.len() == RING_CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back(report.clone());
        if let Some(tx) = self.live.as_ref().filter(|tx| tx.receiver_count() > 0) {
            // Fails only when the last receiver went since the check: nobody to tell.
            let _ = tx.send(report.clone());
        }
        report
    }

    /// The retained events at or after `since` (none without it) about `services` (every
    /// service when empty; daemon-wide events always), and the live ones from now on.
    pub fn subscribe(&self, services: Vec<String>, since: Option<SystemTime>) -> Subscription {
        let filter = Filter(services);
        let history = match since {
            Some(since) => self
                .recent
                .iter()
                .filter(|r| r.ts >= since && filter.wants(r))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        Subscription {
            history,
            live: self.live.as_ref().map(broadcast::Sender::subscribe),
            filter,
        }
    }

    /// The daemon exits: every subscription ends once it has received what was pushed.
    pub fn close(&mut self) {
        self.live = None;
    }
}

struct Filter(Vec<String>);

impl Filter {
    fn wants(&self, report: &Report) -> bool {
        match &report.service {
            None => true,
            Some(name) => self.0.is_empty() || self.0.iter().any(|n| n == name),
        }
    }
}

/// One subscriber's events: the replay first, then the live stream.
pub struct Subscription {
    pub history: Vec<Arc<Report>>,
    live: Option<broadcast::Receiver<Arc<Report>>>,
    filter: Filter,
}

/// What a subscriber receives next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Event(Arc<Report>),
    /// It fell behind and lost this many events.
    Missed(u64),
}

impl Subscription {
    /// The next wanted event; `None` once the ring is closed and drained. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Next> {
        let live = self.live.as_mut()?;
        loop {
            match live.recv().await {
                Ok(report) if self.filter.wants(&report) => return Some(Next::Event(report)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => return Some(Next::Missed(n)),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The wanted events already waiting, without waiting for more: a burst goes out as
    /// one reply.
    pub fn try_recv(&mut self) -> Option<Arc<Report>> {
        let live = self.live.as_mut()?;
        loop {
            match live.try_recv() {
                Ok(report) if self.filter.wants(&report) => return Some(report),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::Kind;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn spawned(service: &str, s: u64) -> Report {
        Report::about(service, at(s), Kind::Spawned { pid: s as i32 })
    }

    #[test]
    fn the_ring_keeps_the_last_thousand_and_replays_from_since() {
        let mut ring = Ring::new();
        for s in 0..(RING_CAPACITY as u64 + 10) {
            ring.push(spawned("web", s));
        }
        let all = ring.subscribe(vec![], Some(at(0)));
        assert_eq!(all.history.len(), RING_CAPACITY);
        assert_eq!(all.history[0].ts, at(10));
        let recent = ring.subscribe(vec![], Some(at(1005)));
        assert_eq!(recent.history.len(), 5);
        assert!(ring.subscribe(vec![], None).history.is_empty());
    }

    #[tokio::test]
    async fn subscribers_get_their_services_and_daemon_events_then_end_on_close() {
        let mut ring = Ring::new();
        let mut web = ring.subscribe(vec!["web".into()], None);
        ring.push(spawned("db", 1));
        ring.push(spawned("web", 2));
        ring.push(Report::daemon(at(3), Kind::DaemonStopping {}));
        ring.close();
        assert_eq!(
            web.recv().await,
            Some(Next::Event(Arc::new(spawned("web", 2))))
        );
        match web.recv().await {
            Some(Next::Event(r)) => assert_eq!(r.kind, Kind::DaemonStopping {}),
            other => panic!("{other:?}"),
        }
        assert_eq!(web.recv().await, None);
    }

    #[test]
    fn nothing_is_broadcast_while_nobody_listens() {
        let mut ring = Ring::new();
        ring.push(spawned("web", 1));
        let mut late = ring.subscribe(vec![], None);
        assert!(late.try_recv().is_none());
    }
}
