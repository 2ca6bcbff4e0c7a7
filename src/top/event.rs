//! The `events` stream as `top` reads it: the lifecycle events that change a row.
//!
//! The wire format is fixed by the `events` request (see runpmctl(1)): a flat object with
//! `ts`, `service` (null for daemon-wide events), `event`, and fields per event. Events and
//! fields this client does not know are ignored, so a newer daemon can add them.

use serde::{Deserialize, Serialize};

/// The `events` request: every service's events from now on. Its own type rather than a
/// variant of [`crate::ipc::Request`], so that `top` speaks the documented wire format
/// whichever daemon answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "cmd", rename = "events")]
pub struct EventsRequest {
    pub services: Vec<String>,
}

/// One reply of the stream: one or more events.
#[derive(Debug, Deserialize)]
pub struct EventsBatch {
    #[serde(default)]
    pub events: Vec<serde_json::Value>,
}

/// One event that `top` understands.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    #[serde(default)]
    pub ts: String,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(flatten)]
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Kind {
    Spawned {
        pid: i32,
    },
    Ready {
        #[serde(default)]
        pid: Option<i32>,
    },
    Exited {
        #[serde(default)]
        code: Option<i32>,
        #[serde(default)]
        signal: Option<String>,
        #[serde(default)]
        uptime_ms: u64,
        #[serde(default)]
        reason: Option<String>,
    },
    Restarting {
        #[serde(default)]
        in_ms: Option<u64>,
        #[serde(default)]
        restarts: Option<u32>,
    },
    Failed {
        #[serde(default)]
        reason: Option<String>,
    },
    Stopping,
    Stopped,
    HealthFailed {
        #[serde(default)]
        message: Option<String>,
    },
    HealthRecovered,
    Reloaded {
        #[serde(default)]
        added: Vec<String>,
        #[serde(default)]
        removed: Vec<String>,
        #[serde(default)]
        changed: Vec<String>,
        #[serde(default)]
        unchanged: usize,
    },
    ConfigInvalid {
        #[serde(default)]
        message: Option<String>,
    },
    DaemonStopping,
    /// An event this version does not know.
    #[serde(other)]
    Other,
}

/// The events of a batch that can be read; one malformed event does not hide the others.
pub fn parse(batch: &EventsBatch) -> Vec<Event> {
    batch
        .events
        .iter()
        .filter_map(|value| Event::deserialize(value).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(value: serde_json::Value) -> Vec<Event> {
        parse(&EventsBatch {
            events: vec![value],
        })
    }

    #[test]
    fn the_request_is_the_documented_line() {
        let request = EventsRequest { services: vec![] };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"cmd": "events", "services": []})
        );
    }

    #[test]
    fn events_read_with_their_fields() {
        let events = one(json!({
            "ts": "2026-12-07T04:50:00.123Z", "service": "web", "event": "exited",
            "pid": 42, "code": null, "signal": "SIGKILL", "uptime_ms": 812, "reason": "signal"
        }));
        assert_eq!(
            events,
            vec![Event {
                ts: "2026-12-07T04:50:00.123Z".into(),
                service: Some("web".into()),
                kind: Kind::Exited {
                    code: None,
                    signal: Some("SIGKILL".into()),
                    uptime_ms: 812,
                    reason: Some("signal".into()),
                },
            }]
        );
        let events = one(json!({"ts": "t", "service": null, "event": "reloaded",
            "added": ["new"], "removed": [], "changed": ["web"], "unchanged": 3}));
        assert_eq!(events[0].service, None);
        assert!(matches!(
            &events[0].kind,
            Kind::Reloaded { unchanged: 3, .. }
        ));
    }

    #[test]
    fn unknown_events_and_fields_are_ignored() {
        let events = one(
            json!({"ts": "t", "service": "web", "event": "spawned", "pid": 7,
            "cgroup": "/x"}),
        );
        assert_eq!(events[0].kind, Kind::Spawned { pid: 7 });
        let events = one(json!({"ts": "t", "service": "web", "event": "teleported", "to": 1}));
        assert_eq!(events[0].kind, Kind::Other);
    }

    #[test]
    fn a_malformed_event_does_not_hide_the_others() {
        let batch = EventsBatch {
            events: vec![
                json!({"event": "spawned", "pid": "not a number"}),
                json!({"ts": "t", "service": "web", "event": "stopped"}),
                json!(17),
            ],
        };
        let events = parse(&batch);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, Kind::Stopped);
    }
}
