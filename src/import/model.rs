//! The common form every importer produces: runpm's own vocabulary, one [`Service`] per
//! imported process, plus what did not carry over. The writer renders it; nothing here does
//! I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Condition, RestartPolicy};

/// What a service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// An argv, executed directly: `cmd = […]`.
    Argv(Vec<String>),
    /// A script for `/bin/sh -c`: `shell = "…"`.
    Shell(String),
}

/// A readiness or health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Notify,
    Tcp(String),
    Exec(Vec<String>),
    Log(String),
    /// `ready = { http = … }` / `health = { http = … }`, a key being added: written only when
    /// this runpm knows it, else checked as TCP on the same address (see `settle`).
    Http(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub probe: Probe,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
}

/// An rlimit value: a number, or `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Value(u64),
    Unlimited,
}

/// One imported service, in runpm's terms. `None` and empty fields are left out of the
/// output, so runpm's defaults apply; importers set a field whenever the source format's
/// default differs from runpm's (compose does not restart by default: `restart = "never"`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Service {
    pub name: String,
    /// Where it came from: `compose.yaml: services.web`.
    pub origin: String,
    pub command: Option<Command>,
    pub cwd: Option<String>,
    pub env: BTreeMap<String, String>,
    pub env_file: Option<String>,
    pub depends_on: BTreeMap<String, Condition>,
    pub restart: Option<RestartPolicy>,
    pub restart_delay: Option<Duration>,
    pub restart_delay_max: Option<Duration>,
    pub min_uptime: Option<Duration>,
    pub max_restarts: Option<u32>,
    pub restart_window: Option<Duration>,
    pub success_exit_codes: Option<Vec<i32>>,
    pub stop_signal: Option<String>,
    pub kill_timeout: Option<Duration>,
    pub kill_mode: Option<&'static str>,
    pub autostart: Option<bool>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub ready: Option<Probe>,
    pub ready_timeout: Option<Duration>,
    pub health: Option<Health>,
    pub watchdog: Option<Duration>,
    // Keys being added to runpm by other issues: written only when the config reference of
    // this build lists them (`settle`), else reported as not carried over.
    pub replicas: Option<u32>,
    pub profiles: Vec<String>,
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub memory_restart: Option<u64>,
    /// Percent of one CPU (`150` = one and a half CPUs).
    pub cpu_max: Option<u32>,
    pub cpu_weight: Option<u32>,
    pub pids_max: Option<u64>,
    pub rlimits: BTreeMap<String, Limit>,
    /// What did not carry over, each with what to do instead: written as comments above the
    /// service and printed as warnings.
    pub lost: Vec<String>,
}

impl Service {
    pub fn new(name: &str, origin: String) -> Service {
        Service {
            name: name.to_owned(),
            origin,
            ..Service::default()
        }
    }

    pub fn lose(&mut self, what: impl Into<String>) {
        self.lost.push(what.into());
    }
}

/// A warning about the input as a whole rather than one service (compose's top-level
/// `networks`, a unit that is not a service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub file: String,
    pub message: String,
}

/// The result of importing one or more files.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub services: Vec<Service>,
    pub notes: Vec<Note>,
}
