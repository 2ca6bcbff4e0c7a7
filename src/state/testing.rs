//! Builders for the tests of this module.

use std::collections::BTreeMap;

use super::file::{STATE_VERSION, ServiceRecord, StateFile};
use crate::config::{Command, ServiceSpec};

/// The crate's test spec, with a cwd and an environment so round trips carry something.
pub fn spec(name: &str) -> ServiceSpec {
    let mut spec = crate::testing::spec(name);
    spec.command = Command::Argv(vec!["sleep".into(), "300".into()]);
    spec.cwd = "/srv/app".into();
    spec.env = BTreeMap::from([("PORT".into(), "8080".into())]);
    spec
}

/// A record; `pid` is `(pid, start time)`.
pub fn record(name: &str, status: &str, pid: Option<(i32, u64)>) -> ServiceRecord {
    ServiceRecord {
        name: name.into(),
        status: status.into(),
        pid: pid.map(|p| p.0),
        pid_start_time: pid.map(|p| p.1),
        restarts: 0,
        stopped_by_operator: false,
        completed: false,
        spec: spec(name),
        last_run: None,
        cgroup: None,
    }
}

pub fn doc(services: Vec<ServiceRecord>) -> StateFile {
    StateFile {
        version: STATE_VERSION,
        boot_id: "8d2c3c0e-6d8e-4d53-9d6f-0f6c1f0e2a11".into(),
        pid_ns: "4026531836".into(),
        written_at: "2026-11-22T03:45:12Z".into(),
        daemon_pid: 4000,
        config: "/srv/app/services.toml".into(),
        cleaned_boot: None,
        clean_shutdown: false,
        services,
        scaled: Default::default(),
    }
}
