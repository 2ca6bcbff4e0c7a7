//! Builders shared by the crate's unit tests.

use std::collections::BTreeMap;
use std::time::Duration;

use camino::Utf8PathBuf;

use crate::config::{Command, KillMode, RestartPolicy, ServiceSpec, Signal};

/// A service with the documented defaults.
pub fn spec(name: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        command: Command::Argv(vec!["true".into()]),
        cwd: "/".into(),
        env: BTreeMap::new(),
        env_file: None,
        clear_env: false,
        depends_on: vec![],
        conditions: BTreeMap::new(),
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
        limits: Default::default(),
        rlimits: Default::default(),
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
        profiles: Vec::new(),
        replica_of: None,
        schedule: None,
        listen: Vec::new(),
        fd_store_max: 0,
    }
}

/// A temporary directory and its canonical UTF-8 path (the directory goes when the guard
/// does).
pub fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = Utf8PathBuf::try_from(dir.path().canonicalize().expect("canonical")).expect("UTF-8");
    (dir, path)
}
