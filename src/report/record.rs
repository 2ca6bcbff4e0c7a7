//! The event record and its wire form: a flat JSON object,
//! `{"ts":"2026-12-07T04:50:00.123Z","service":"web","event":"exited","pid":42,…}`, with
//! `service` null for events about the daemon as a whole. Clients ignore events and fields
//! they do not know, so new ones can be added without a new protocol version.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// When the core handled what caused it (RFC 3339 with milliseconds, UTC).
    #[serde(serialize_with = "ser_ts", deserialize_with = "de_ts")]
    pub ts: SystemTime,
    /// The service it is about; `None` for the daemon as a whole.
    pub service: Option<String>,
    #[serde(flatten)]
    pub kind: Kind,
}

/// What happened, with its fields. The variant's name is the wire's `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Kind {
    /// The process was started.
    Spawned {
        pid: i32,
    },
    /// It is ready (at once for a service without a readiness check).
    Ready {
        pid: i32,
    },
    /// The main process ended on its own (not by a stop runpm sent). `reason`: `exited` or
    /// `signal` (others may come, such as `oom-killed`).
    Exited {
        pid: i32,
        code: Option<i32>,
        signal: Option<String>,
        uptime_ms: u64,
        reason: String,
    },
    /// The restart policy starts it again in `in_ms`; `restarts` counts this one.
    Restarting {
        in_ms: u64,
        restarts: u32,
    },
    /// Crash loop, spawn error, readiness timeout…: it stays down until re-armed.
    Failed {
        reason: String,
    },
    /// runpm sent its stop signal (or SIGKILL) to process `pid`.
    Stopping {
        pid: i32,
        signal: String,
    },
    /// Nothing of it runs any more after a stop.
    Stopped {},
    HealthFailed {
        message: String,
    },
    HealthRecovered {},
    /// A reload applied its plan (service null): names added, removed, changed (restarted
    /// or updated), and how many services it left alone.
    Reloaded {
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
        unchanged: usize,
    },
    /// A reload found the config invalid and changed nothing (service null).
    ConfigInvalid {
        message: String,
    },
    /// The daemon is exiting (service null): the last event of every stream.
    DaemonStopping {},
    /// A plan (reload, resurrect, start, stop, restart) decided this for the service:
    /// `action` is `started`, `stopped`, `removed`, `updated` or `restarted`; `reason` says
    /// why when there is more to say (`env changed`, `restart requested`).
    Planned {
        action: String,
        reason: Option<String>,
    },
}

impl Kind {
    /// The wire's `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Spawned { .. } => "spawned",
            Kind::Ready { .. } => "ready",
            Kind::Exited { .. } => "exited",
            Kind::Restarting { .. } => "restarting",
            Kind::Failed { .. } => "failed",
            Kind::Stopping { .. } => "stopping",
            Kind::Stopped {} => "stopped",
            Kind::HealthFailed { .. } => "health_failed",
            Kind::HealthRecovered {} => "health_recovered",
            Kind::Reloaded { .. } => "reloaded",
            Kind::ConfigInvalid { .. } => "config_invalid",
            Kind::DaemonStopping {} => "daemon_stopping",
            Kind::Planned { .. } => "planned",
        }
    }
}

impl Report {
    pub fn about(service: &str, ts: SystemTime, kind: Kind) -> Report {
        Report {
            ts,
            service: Some(service.to_owned()),
            kind,
        }
    }

    pub fn daemon(ts: SystemTime, kind: Kind) -> Report {
        Report {
            ts,
            service: None,
            kind,
        }
    }
}

/// A time as the events carry it: `2026-12-07T04:50:00.123Z`.
pub fn ts_text(ts: SystemTime) -> String {
    humantime::format_rfc3339_millis(ts).to_string()
}

fn ser_ts<S: Serializer>(ts: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts_text(*ts))
}

fn de_ts<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_619_000_123)
    }

    #[test]
    fn an_event_is_one_flat_object_with_ts_service_and_event_first() {
        let exited = Report::about(
            "web",
            at(),
            Kind::Exited {
                pid: 42,
                code: Some(1),
                signal: None,
                uptime_ms: 812,
                reason: "exited".into(),
            },
        );
        assert_eq!(
            serde_json::to_string(&exited).unwrap(),
            r#"{"ts":"2026-12-07T04:50:00.123Z","service":"web","event":"exited","pid":42,"code":1,"signal":null,"uptime_ms":812,"reason":"exited"}"#
        );
        let stopping = Report::daemon(at(), Kind::DaemonStopping {});
        assert_eq!(
            serde_json::to_string(&stopping).unwrap(),
            r#"{"ts":"2026-12-07T04:50:00.123Z","service":null,"event":"daemon_stopping"}"#
        );
    }

    #[test]
    fn every_event_reads_back_as_it_was_written_and_names_itself() {
        let kinds = [
            Kind::Spawned { pid: 1 },
            Kind::Ready { pid: 1 },
            Kind::Restarting {
                in_ms: 100,
                restarts: 2,
            },
            Kind::Failed { reason: "x".into() },
            Kind::Stopping {
                pid: 3,
                signal: "SIGTERM".into(),
            },
            Kind::Stopped {},
            Kind::HealthFailed {
                message: "m".into(),
            },
            Kind::HealthRecovered {},
            Kind::Reloaded {
                added: vec!["a".into()],
                removed: vec![],
                changed: vec!["c".into()],
                unchanged: 4,
            },
            Kind::ConfigInvalid {
                message: "bad".into(),
            },
            Kind::DaemonStopping {},
            Kind::Planned {
                action: "restarted".into(),
                reason: Some("env changed".into()),
            },
        ];
        for kind in kinds {
            let report = Report::about("web", at(), kind.clone());
            let value = serde_json::to_value(&report).unwrap();
            assert_eq!(value["event"], kind.name(), "{value}");
            let back: Report = serde_json::from_value(value).unwrap();
            assert_eq!(back, report);
        }
    }

    #[test]
    fn unknown_fields_are_ignored_when_reading() {
        let text = r#"{"ts":"2026-12-07T04:50:00.123Z","service":"web","event":"spawned","pid":7,"cgroup":"/x"}"#;
        let report: Report = serde_json::from_str(text).unwrap();
        assert_eq!(report.kind, Kind::Spawned { pid: 7 });
    }
}
