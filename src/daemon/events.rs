//! The shell's side of the lifecycle events: every [`Report`] the core hands out goes into
//! the ring of `runpmctl events` (and to its live subscribers), and, when it is about a
//! service and someone follows logs, becomes that service's `[runpm] …` line in `runpmctl
//! logs -f` (the hub sends it only to followers of that service).
//!
//! Each subscriber is a task that forwards its [`Subscription`] to its connection. When
//! the daemon exits, [`Events::close`] ends every subscription once it has received the
//! last events (`daemon_stopping` among them), and [`Events::drain`] waits, briefly, for
//! the tasks to hand them over, so the connections close after them.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use crate::ipc::{EventsResult, Reply, Response};
use crate::logs::LogHub;
use crate::report::{self, Next, Report, Ring, Subscription};

/// Events in one reply at most, when a burst is waiting.
const BATCH: usize = 256;

#[derive(Default)]
pub(super) struct Events {
    ring: Ring,
    subscribers: JoinSet<()>,
}

impl Events {
    /// Keeps `report` for `events` and hands it to its subscribers and, as a lifecycle
    /// line, to the followers of its service's logs.
    pub fn report(&mut self, report: Report, logs: &LogHub) {
        let report = self.ring.push(report);
        if let Some(service) = &report.service
            && logs.has_followers()
        {
            logs.lifecycle(service, &report::phrase(&report));
        }
    }

    /// Serves one `events` request: the replay at once (possibly empty: it confirms the
    /// subscription), then each event as it comes.
    pub fn serve(
        &mut self,
        services: Vec<String>,
        since: Option<SystemTime>,
        replies: UnboundedSender<Reply>,
    ) {
        let mut subscription = self.ring.subscribe(services, since);
        let history = std::mem::take(&mut subscription.history);
        let first = history.iter().map(|r| r.as_ref().clone()).collect();
        if !send(&replies, first, None) {
            return;
        }
        self.subscribers.spawn(forward(subscription, replies));
        // Forget subscribers that are done, so the set does not grow with every client.
        while self.subscribers.try_join_next().is_some() {}
    }

    /// The daemon exits: no more events; each subscription ends after what it has.
    pub fn close(&mut self) {
        self.ring.close();
    }

    /// Waits until every subscriber has handed over its last events, within `limit`.
    pub async fn drain(&mut self, limit: Duration) {
        let all = async { while self.subscribers.join_next().await.is_some() {} };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::debug!("an events subscriber did not finish in time");
        }
    }
}

/// Forwards events until the client goes away (a send fails) or the ring closes. A burst
/// goes out as one reply.
async fn forward(mut subscription: Subscription, replies: UnboundedSender<Reply>) {
    while let Some(next) = subscription.recv().await {
        let (mut events, missed) = match next {
            Next::Event(report) => (vec![report.as_ref().clone()], None),
            Next::Missed(n) => (Vec::new(), Some(n)),
        };
        while events.len() < BATCH {
            match subscription.try_recv() {
                Some(report) => events.push(report.as_ref().clone()),
                None => break,
            }
        }
        if !send(&replies, events, missed) {
            return;
        }
    }
}

fn send(replies: &UnboundedSender<Reply>, events: Vec<Report>, missed: Option<u64>) -> bool {
    let result = Response::Events(EventsResult { events, missed });
    replies.send(Reply::from_response(None, Ok(result))).is_ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::logs::Followed;
    use crate::report::Kind;
    use crate::testing::tempdir;

    fn spawned(service: &str, pid: i32) -> Report {
        Report::about(service, SystemTime::now(), Kind::Spawned { pid })
    }

    fn events_of(reply: Reply) -> Vec<serde_json::Value> {
        let result: serde_json::Value = reply.into_result().unwrap().decode().unwrap();
        result["events"].as_array().unwrap().clone()
    }

    #[tokio::test]
    async fn a_subscriber_is_answered_at_once_then_per_event_and_ends_after_the_last() {
        let (_guard, dir) = tempdir();
        let logs = LogHub::new(&dir);
        let mut events = Events::default();
        events.report(spawned("web", 1), &logs);
        let (tx, mut rx) = mpsc::unbounded_channel();
        events.serve(Vec::new(), None, tx);
        assert!(
            events_of(rx.recv().await.unwrap()).is_empty(),
            "no --since: no replay, but an answer"
        );
        events.report(spawned("db", 2), &logs);
        let got = events_of(rx.recv().await.unwrap());
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0]["service"].as_str(), got[0]["pid"].as_i64()),
            (Some("db"), Some(2))
        );
        events.report(
            Report::daemon(SystemTime::now(), Kind::DaemonStopping {}),
            &logs,
        );
        events.close();
        events.drain(Duration::from_secs(5)).await;
        let last = events_of(rx.recv().await.unwrap());
        assert_eq!(last[0]["event"], "daemon_stopping");
        assert!(
            rx.recv().await.is_none(),
            "the stream ends after the last event"
        );
    }

    #[tokio::test]
    async fn since_replays_and_a_followed_service_hears_its_lifecycle_line() {
        let (_guard, dir) = tempdir();
        let logs = LogHub::new(&dir);
        let mut events = Events::default();
        let before = SystemTime::now() - Duration::from_secs(1);
        events.report(spawned("web", 1), &logs);
        events.report(spawned("db", 2), &logs);
        let (tx, mut rx) = mpsc::unbounded_channel();
        events.serve(vec!["web".into()], Some(before), tx);
        let replay = events_of(rx.recv().await.unwrap());
        assert_eq!(replay.len(), 1, "only web's: {replay:?}");

        let (_, mut follower) = logs.follow(&["web".to_owned()], 0);
        events.report(spawned("web", 3), &logs);
        match follower.recv().await {
            Some(Followed::Line(line)) => {
                assert!(line.runpm, "{line:?}");
                assert_eq!(line.line, "web started (pid 3)");
            }
            other => panic!("{other:?}"),
        }
    }
}
