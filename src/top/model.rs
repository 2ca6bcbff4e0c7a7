//! The table `top` shows: one row per service, from the daemon's status (re-read about once
//! a second, and soon after every event) and patched at once by the events in between, so
//! a crash shows before the next status arrives.
//!
//! Pure: no I/O, no clock. The status reader hands in snapshots stamped with the moment they
//! were taken; CPU % is the difference between two of them.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use serde::Deserialize;

use super::event::{Event, Kind};
use super::usage::{CpuTracker, Sample};
use crate::ipc::{ExitInfo, ServiceInfo};

/// A `status` result as `top` reads it: each service with the resource figures that cgroup
/// accounting adds when the daemon has it.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    #[serde(flatten)]
    pub info: ServiceInfo,
    /// CPU time used (µs): the service's cgroup, else read from `/proc` by `top` itself.
    #[serde(default)]
    pub cpu_usec: Option<u64>,
    /// Memory in use (bytes), from the same places.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// A status taken at a moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub services: Vec<Service>,
    pub at: Instant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub info: ServiceInfo,
    /// Since the previous snapshot; None until there are two of the same process.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// The last failed health check, from the event stream, until it recovers.
    pub health: Option<String>,
}

impl Row {
    /// The INFO cell: what `runpmctl status` says about the service (what a starting
    /// service waits for, why it failed, when it starts next), and a failing health check.
    /// The next start is counted from `now` (`next start in 12s`): a timestamp would not
    /// fit the column.
    pub fn info_text(&self, now: SystemTime) -> String {
        let mut text = crate::ipc::info(&self.info);
        if let Some(next) = &self.info.next_start
            && let Ok(at) = humantime::parse_rfc3339_weak(next)
        {
            // Rounded up: `in 0s` would read as "now" for most of the last second.
            let left = at.duration_since(now).unwrap_or_default();
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let left = crate::ipc::format_uptime(std::time::Duration::from_secs(secs));
            text = text.replace(
                &format!("next start {next}"),
                &format!("next start in {left}"),
            );
        }
        if let Some(health) = &self.health {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(&format!("health: {health}"));
        }
        text
    }
}

/// What an event means beyond its row.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A line for the status bar (a reload's plan, an invalid config).
    Text(String),
    /// The daemon is going away; the stream ends next.
    DaemonStopping,
}

/// The order in which the header counts states.
const STATE_ORDER: [&str; 7] = [
    "running", "starting", "stopping", "backoff", "failed", "exited", "stopped",
];

#[derive(Debug, Default)]
pub struct Table {
    /// Sorted by name.
    rows: Vec<Row>,
    cpu: CpuTracker,
    filter: String,
    /// By name, so that it stays on its service while rows come and go.
    selected: Option<String>,
}

impl Table {
    /// Replaces the rows with a new status, keeping what only events know (health).
    pub fn apply_status(&mut self, snapshot: Snapshot) {
        let mut health: HashMap<String, Option<String>> = self
            .rows
            .drain(..)
            .map(|row| (row.info.name, row.health))
            .collect();
        for service in snapshot.services {
            let name = service.info.name.clone();
            let cpu_percent = match (service.info.pid, service.cpu_usec) {
                (Some(pid), Some(cpu_usec)) => self.cpu.observe(
                    &name,
                    Sample {
                        pid,
                        cpu_usec,
                        at: snapshot.at,
                    },
                ),
                _ => {
                    self.cpu.forget(&name);
                    None
                }
            };
            self.rows.push(Row {
                health: health.remove(&name).flatten(),
                cpu_percent,
                memory_bytes: service.info.pid.and(service.memory_bytes),
                info: service.info,
            });
        }
        for gone in health.keys() {
            self.cpu.forget(gone);
        }
        self.rows.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    }

    /// Patches the event's row at once (the next status fills in the rest). A service this
    /// table does not know yet waits for that status.
    pub fn apply_event(&mut self, event: &Event) -> Option<Notice> {
        let Some(name) = &event.service else {
            return match &event.kind {
                Kind::Reloaded {
                    added,
                    removed,
                    changed,
                    unchanged,
                } => Some(Notice::Text(reload_summary(
                    added, removed, changed, *unchanged,
                ))),
                Kind::ConfigInvalid { message } => Some(Notice::Text(format!(
                    "config invalid, nothing changed: {}",
                    message.as_deref().unwrap_or("see `runpmctl reload`")
                ))),
                Kind::DaemonStopping => Some(Notice::DaemonStopping),
                _ => None,
            };
        };
        let row = self.rows.iter_mut().find(|r| &r.info.name == name)?;
        let info = &mut row.info;
        match &event.kind {
            Kind::Spawned { pid } => {
                info.status = "starting".into();
                info.pid = Some(*pid);
                info.uptime_ms = Some(0);
                info.waiting_for.clear();
                info.reason = None;
                info.not_ready = None;
                info.next_start = None;
            }
            Kind::Ready { pid } => {
                info.status = "running".into();
                info.pid = pid.or(info.pid);
                info.not_ready = None;
            }
            Kind::Exited {
                code,
                signal,
                uptime_ms,
                reason,
            } => {
                info.status = "exited".into();
                info.pid = None;
                info.uptime_ms = None;
                info.exits.push(ExitInfo {
                    code: *code,
                    signal: signal.clone(),
                    at: event.ts.clone(),
                    uptime_ms: *uptime_ms,
                    reason: reason.clone().unwrap_or_else(|| "exited".into()),
                    detail: None,
                    last_lines: Vec::new(),
                });
                row.cpu_percent = None;
                row.memory_bytes = None;
                self.cpu.forget(name);
            }
            Kind::Restarting { restarts, .. } => {
                info.status = "backoff".into();
                if let Some(restarts) = restarts {
                    info.restarts = *restarts;
                }
            }
            Kind::Failed { reason } => {
                info.status = "failed".into();
                info.reason = reason.clone();
            }
            Kind::Stopping => info.status = "stopping".into(),
            Kind::Stopped => {
                info.status = "stopped".into();
                info.pid = None;
                info.uptime_ms = None;
                row.cpu_percent = None;
                row.memory_bytes = None;
            }
            Kind::HealthFailed { message } => {
                row.health = Some(message.clone().unwrap_or_else(|| "failing".into()));
            }
            Kind::HealthRecovered => row.health = None,
            Kind::Reloaded { .. } | Kind::ConfigInvalid { .. } | Kind::DaemonStopping => {}
            Kind::Other => {}
        }
        None
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Whether a service named `name` is in the table (the event stream may name one that
    /// the next status adds).
    pub fn knows(&self, name: &str) -> bool {
        self.rows.iter().any(|r| r.info.name == name)
    }

    /// The rows the filter lets through, in order.
    pub fn visible(&self) -> Vec<&Row> {
        let needle = self.filter.to_lowercase();
        self.rows
            .iter()
            .filter(|r| needle.is_empty() || r.info.name.to_lowercase().contains(&needle))
            .collect()
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn set_filter(&mut self, filter: String) {
        self.filter = filter;
    }

    /// The index of the selected row among the visible ones: the selected service if it
    /// is shown, else the first row.
    pub fn selected_index(&self) -> Option<usize> {
        let visible = self.visible();
        if visible.is_empty() {
            return None;
        }
        let found = self
            .selected
            .as_ref()
            .and_then(|name| visible.iter().position(|r| &r.info.name == name));
        Some(found.unwrap_or(0))
    }

    /// The selected service's name, if any row is shown.
    pub fn selected_name(&self) -> Option<String> {
        let index = self.selected_index()?;
        self.visible().get(index).map(|r| r.info.name.clone())
    }

    /// Moves the selection by `delta` rows, stopping at the ends.
    pub fn move_selection(&mut self, delta: isize) {
        let visible = self.visible();
        let Some(current) = self.selected_index() else {
            return;
        };
        let last = visible.len() - 1;
        let next = current.saturating_add_signed(delta).min(last);
        self.selected = Some(visible[next].info.name.clone());
    }

    /// `running 3 · starting 1 · failed 1`: how many services are in each state, all
    /// of them (not only the filtered ones), in a fixed order.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for row in &self.rows {
            match counts
                .iter_mut()
                .find(|(state, _)| *state == row.info.status)
            {
                Some((_, n)) => *n += 1,
                None => counts.push((row.info.status.clone(), 1)),
            }
        }
        let rank = |state: &str| {
            STATE_ORDER
                .iter()
                .position(|s| *s == state)
                .unwrap_or(STATE_ORDER.len())
        };
        counts.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then(a.0.cmp(&b.0)));
        counts
    }
}

/// A reload's plan on one line: `reloaded: +new ~web -old, 3 unchanged`.
pub fn reload_summary(
    added: &[String],
    removed: &[String],
    changed: &[String],
    unchanged: usize,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    parts.extend(added.iter().map(|n| format!("+{n}")));
    parts.extend(changed.iter().map(|n| format!("~{n}")));
    parts.extend(removed.iter().map(|n| format!("-{n}")));
    if parts.is_empty() {
        format!("reloaded: no change, {unchanged} unchanged")
    } else {
        format!("reloaded: {}, {unchanged} unchanged", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    pub(crate) fn service(name: &str, status: &str, pid: Option<i32>) -> Service {
        let info: ServiceInfo = serde_json::from_value(json!({
            "name": name, "status": status, "pid": pid, "restarts": 0,
            "since": "2026-12-07T04:50:00Z", "uptime_ms": pid.map(|_| 5000),
            "stopped_by_operator": false, "exits": []
        }))
        .unwrap();
        Service {
            info,
            cpu_usec: None,
            memory_bytes: None,
        }
    }

    fn event(service: Option<&str>, kind: Kind) -> Event {
        Event {
            ts: "2026-12-07T04:51:00Z".into(),
            service: service.map(str::to_owned),
            kind,
        }
    }

    fn table(services: Vec<Service>) -> Table {
        let mut table = Table::default();
        table.apply_status(Snapshot {
            services,
            at: Instant::now(),
        });
        table
    }

    fn names(table: &Table) -> Vec<&str> {
        table
            .visible()
            .iter()
            .map(|r| r.info.name.as_str())
            .collect()
    }

    #[test]
    fn status_json_with_resource_fields_reads() {
        let status: Status = serde_json::from_value(json!({"services": [{
            "name": "web", "status": "running", "pid": 42, "restarts": 1,
            "since": "t", "uptime_ms": 10, "stopped_by_operator": false, "exits": [],
            "cpu_usec": 1500, "memory_bytes": 4096, "tasks": 3
        }]}))
        .unwrap();
        assert_eq!(status.services[0].info.name, "web");
        assert_eq!(status.services[0].cpu_usec, Some(1500));
        assert_eq!(status.services[0].memory_bytes, Some(4096));
    }

    #[test]
    fn rows_are_sorted_and_cpu_comes_from_two_snapshots() {
        let t = Instant::now();
        let with = |cpu_usec| {
            let mut web = service("web", "running", Some(42));
            web.cpu_usec = Some(cpu_usec);
            web.memory_bytes = Some(1 << 20);
            vec![web, service("db", "running", Some(41))]
        };
        let mut table = Table::default();
        table.apply_status(Snapshot {
            services: with(0),
            at: t,
        });
        assert_eq!(names(&table), ["db", "web"]);
        assert_eq!(table.rows()[1].cpu_percent, None);
        table.apply_status(Snapshot {
            services: with(500_000),
            at: t + Duration::from_secs(1),
        });
        assert_eq!(table.rows()[1].cpu_percent, Some(50.0));
        assert_eq!(table.rows()[1].memory_bytes, Some(1 << 20));
        assert_eq!(table.rows()[0].cpu_percent, None);
    }

    #[test]
    fn events_patch_their_row() {
        let mut table = table(vec![service("web", "running", Some(42))]);
        let kinds = [
            (
                Kind::Exited {
                    code: Some(3),
                    signal: None,
                    uptime_ms: 900,
                    reason: Some("exited".into()),
                },
                "exited",
                None,
            ),
            (
                Kind::Restarting {
                    in_ms: Some(100),
                    restarts: Some(4),
                },
                "backoff",
                None,
            ),
            (Kind::Spawned { pid: 43 }, "starting", Some(43)),
            (Kind::Ready { pid: Some(43) }, "running", Some(43)),
            (Kind::Stopping, "stopping", Some(43)),
            (Kind::Stopped, "stopped", None),
            (
                Kind::Failed {
                    reason: Some("crash loop".into()),
                },
                "failed",
                None,
            ),
        ];
        for (kind, status, pid) in kinds {
            assert_eq!(table.apply_event(&event(Some("web"), kind)), None);
            let row = &table.rows()[0];
            assert_eq!((row.info.status.as_str(), row.info.pid), (status, pid));
        }
        let row = &table.rows()[0];
        assert_eq!(row.info.restarts, 4);
        assert_eq!(row.info.exits[0].code, Some(3));
        assert_eq!(crate::ipc::last_exit(&row.info.exits), "code 3");
        assert_eq!(row.info_text(SystemTime::UNIX_EPOCH), "crash loop");
    }

    #[test]
    fn the_next_start_is_counted_from_now() {
        let mut web = service("web", "backoff", None);
        web.info.next_start = Some("2026-12-07T04:50:12.300Z".into());
        let table = table(vec![web]);
        let now = humantime::parse_rfc3339("2026-12-07T04:50:00Z").unwrap();
        assert_eq!(table.rows()[0].info_text(now), "next start in 13s");
        let later = humantime::parse_rfc3339("2026-12-07T04:51:00Z").unwrap();
        assert_eq!(table.rows()[0].info_text(later), "next start in 0s");
    }

    #[test]
    fn health_is_kept_across_status_until_it_recovers() {
        let mut table = table(vec![service("web", "running", Some(42))]);
        table.apply_event(&event(
            Some("web"),
            Kind::HealthFailed {
                message: Some("exit 1".into()),
            },
        ));
        table.apply_status(Snapshot {
            services: vec![service("web", "running", Some(42))],
            at: Instant::now(),
        });
        assert_eq!(
            table.rows()[0].info_text(SystemTime::UNIX_EPOCH),
            "health: exit 1"
        );
        table.apply_event(&event(Some("web"), Kind::HealthRecovered));
        assert_eq!(table.rows()[0].info_text(SystemTime::UNIX_EPOCH), "");
    }

    #[test]
    fn daemon_wide_events_are_notices() {
        let mut table = table(vec![]);
        let reloaded = Kind::Reloaded {
            added: vec!["new".into()],
            removed: vec!["old".into()],
            changed: vec!["web".into()],
            unchanged: 2,
        };
        assert_eq!(
            table.apply_event(&event(None, reloaded)),
            Some(Notice::Text("reloaded: +new ~web -old, 2 unchanged".into()))
        );
        assert_eq!(
            table.apply_event(&event(None, Kind::DaemonStopping)),
            Some(Notice::DaemonStopping)
        );
        // Unknown services and unknown events change nothing.
        assert_eq!(table.apply_event(&event(Some("nope"), Kind::Stopped)), None);
        assert_eq!(table.apply_event(&event(None, Kind::Other)), None);
    }

    #[test]
    fn filter_and_selection_follow_names() {
        let mut table = table(vec![
            service("web", "running", Some(1)),
            service("worker", "running", Some(2)),
            service("db", "running", Some(3)),
        ]);
        assert_eq!(table.selected_name().as_deref(), Some("db"));
        table.move_selection(1);
        assert_eq!(table.selected_name().as_deref(), Some("web"));
        table.move_selection(10);
        assert_eq!(table.selected_name().as_deref(), Some("worker"));
        table.move_selection(-10);
        assert_eq!(table.selected_name().as_deref(), Some("db"));
        table.move_selection(2);
        table.set_filter("W".into());
        assert_eq!(names(&table), ["web", "worker"]);
        assert_eq!(table.selected_name().as_deref(), Some("worker"));
        table.set_filter("zzz".into());
        assert_eq!(table.selected_name(), None);
        table.move_selection(1);
        table.set_filter(String::new());
        assert_eq!(table.selected_name().as_deref(), Some("worker"));
    }

    #[test]
    fn counts_are_in_state_order() {
        let table = table(vec![
            service("a", "failed", None),
            service("b", "running", Some(1)),
            service("c", "running", Some(2)),
            service("d", "starting", Some(3)),
            service("e", "weird", None),
        ]);
        assert_eq!(
            table.counts(),
            vec![
                ("running".into(), 2),
                ("starting".into(), 1),
                ("failed".into(), 1),
                ("weird".into(), 1)
            ]
        );
    }
}
