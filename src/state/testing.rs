//! Builders for the tests of this module.

use std::collections::BTreeMap;
use std::time::Duration;

use super::file::{STATE_VERSION, ServiceRecord, StateFile};
use crate::config::{Command, KillMode, RestartPolicy, ServiceSpec, Signal};

pub fn spec(name: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        command: Command::Argv(vec!["sleep".into(), "300".into()]),
        cwd: "/srv/app".into(),
        env: BTreeMap::from([("PORT".into(), "8080".into())]),
        env_file: None,
        clear_env: false,
        depends_on: vec![],
        restart: RestartPolicy::OnFailure,
        restart_delay: Duration::from_millis(100),
        restart_delay_max: Duration::from_secs(30),
        min_uptime: Duration::from_secs(1),
        max_restarts: 10,
        restart_window: Duration::from_secs(60),
        success_exit_codes: vec![0],
        stop_signal: Signal(nix::sys::signal::Signal::SIGTERM),
        kill_timeout: Duration::from_secs(10),
        kill_mode: KillMode::Group,
        autostart: true,
        user: None,
        group: None,
        ready: None,
        ready_timeout: Duration::from_secs(30),
        health: None,
        watchdog: None,
        failed_cooldown: Duration::from_secs(300),
        log_max_size: 10_000_000,
        log_keep: 5,
    }
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
        spec: spec(name),
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
        services,
    }
}
