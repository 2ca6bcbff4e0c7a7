//! The validated, resolved form of a unit: what the supervisor and the reconciler consume.
//!
//! Everything here is already checked: paths are absolute, signals are known, dependencies
//! exist and form no cycle. Two specs that mean the same thing compare equal, whatever the
//! order of keys or the whitespace in the file they came from, so the reconciler can diff
//! them directly.

use std::collections::BTreeMap;
use std::time::Duration;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

pub use super::limits::{CPU_PERIOD_USEC, CpuMax, LIMIT_KEYS, Limits, RLIMITS, Rlimit};
pub use super::listen::{Listen, ListenAddress};

/// What to execute: an argv (no shell) or a `/bin/sh -c` script.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Argv(Vec<String>),
    Shell(String),
}

impl Command {
    /// The argv that is actually executed.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Argv(argv) => argv.clone(),
            Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    #[default]
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KillMode {
    /// Signal the whole process group the service leads.
    Group,
    /// Signal only the main process.
    Process,
    /// Signal every process in the service's cgroup, then `cgroup.kill`; the stop is done
    /// when the cgroup is empty. Where runpm has no cgroup, it acts as `Group`.
    #[default]
    Cgroup,
}

impl KillMode {
    /// Whether the stop reaches more than the main process (its group, or its cgroup).
    pub fn reaches_group(self) -> bool {
        self != KillMode::Process
    }
}

/// A signal by number, shown by its name (`SIGTERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(pub nix::sys::signal::Signal);

impl Signal {
    /// Accepts the name with or without `SIG`, in any case:
    ///
    /// ```
    /// use runpm::config::Signal;
    /// assert_eq!(Signal::parse("term").map(|s| s.name()), Some("SIGTERM"));
    /// assert_eq!(Signal::parse("SIGHUP").map(|s| s.number()), Some(1));
    /// assert!(Signal::parse("SIGNOPE").is_none());
    /// ```
    pub fn parse(name: &str) -> Option<Signal> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        full.parse::<nix::sys::signal::Signal>().ok().map(Signal)
    }

    pub fn name(&self) -> &'static str {
        self.0.as_str()
    }

    pub fn number(&self) -> i32 {
        self.0 as i32
    }
}

impl Serialize for Signal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Signal::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown signal `{name}`")))
    }
}

/// One service, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    pub command: Command,
    /// Absolute working directory (the config file's directory when not set).
    pub cwd: Utf8PathBuf,
    /// `env` with the `env_file` overlaid, in key order.
    pub env: BTreeMap<String, String>,
    /// Where the `env_file` variables in `env` came from, so that an export can point at the
    /// file instead of copying its values (often secrets) into unit files.
    #[serde(default)]
    pub env_file: Option<EnvFile>,
    pub clear_env: bool,
    /// The names of the services this one needs, sorted.
    pub depends_on: Vec<String>,
    /// The dependencies whose condition is not the default `ready`, by name; each is also
    /// in `depends_on`. Kept apart so that the many walks of the graph see plain names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, Condition>,
    pub restart: RestartPolicy,
    #[serde(with = "humantime_serde")]
    pub restart_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub restart_delay_max: Duration,
    #[serde(with = "humantime_serde")]
    pub min_uptime: Duration,
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    pub success_exit_codes: Vec<i32>,
    pub stop_signal: Signal,
    #[serde(with = "humantime_serde")]
    pub kill_timeout: Duration,
    pub kill_mode: KillMode,
    pub autostart: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    pub ready: Option<Ready>,
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
    pub health: Option<Health>,
    #[serde(with = "humantime_serde")]
    pub watchdog: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub failed_cooldown: Duration,
    /// Bytes per log file before rotation.
    pub log_max_size: u64,
    pub log_keep: u32,
    /// `profiles`: the service starts only when `runpm up --profile P` (or
    /// `RUNPM_PROFILES`) selects one of them, or when it is named on `runpm up`. Empty:
    /// always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// For a replica (`web.1`), the service it was expanded from (`web`), whose `replicas`
    /// made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_of: Option<String>,
    /// `schedule` or `interval`, with `timezone`, `overlap`, `run_on_start` and
    /// `catch_up`: the service runs at these times rather than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Sockets runpm binds and passes as `LISTEN_FDS` (socket activation), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<Listen>,
    /// How many descriptors the service may park with sd_notify `FDSTORE=1` (0: none).
    #[serde(default)]
    pub fd_store_max: u32,
    /// cgroup limits (`memory_max`, `cpu_max`, …), applied where a controller is delegated.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// rlimits set in the child before `exec`, by lowercased `RLIMIT_*` name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rlimits: BTreeMap<String, Rlimit>,
}

/// When a scheduled service runs, and what happens around its runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schedule {
    pub when: When,
    /// An IANA time zone name for `cron`; `None`: the machine's local time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub overlap: Overlap,
    pub run_on_start: bool,
    pub catch_up: bool,
}

/// The times of a scheduled service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// A cron expression of 5 fields, or 6 with seconds first (checked at load time).
    Cron(String),
    /// Every this long, counted from the previous run's start.
    #[serde(with = "humantime_serde")]
    Interval(Duration),
}

/// What a run that comes due does while the previous one still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    /// Leave this run out; the next one comes at its time.
    #[default]
    Skip,
    /// Run it as soon as the previous one ends (at most one waits).
    Queue,
    /// Stop the previous run, then start this one.
    Kill,
}

/// When a dependency lets its dependent start, as docker compose and process-compose name
/// it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// Its process was spawned (ready or not), or it already ended, whatever its result.
    Started,
    /// Its readiness check passed, or it was a task that completed successfully.
    #[default]
    Ready,
    /// It exited with a success code; a failure keeps the dependent from starting.
    Completed,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Completed => "completed",
        }
    }
}

impl ServiceSpec {
    /// What this service waits for from its dependency `dep`.
    pub fn condition(&self, dep: &str) -> Condition {
        self.conditions.get(dep).copied().unwrap_or_default()
    }
}

/// An `env_file`, resolved: its absolute path and the variables it set (already in the
/// service's `env`, where they override the `env` table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvFile {
    pub path: Utf8PathBuf,
    pub keys: std::collections::BTreeSet<String>,
}

/// How runpm learns that a started service is ready (issue: readiness). Exactly one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// sd_notify `READY=1` on `NOTIFY_SOCKET`.
    Notify,
    /// A TCP connect to `host:port` succeeds.
    Tcp(String),
    /// The command exits 0.
    Exec(Vec<String>),
    /// A line of the service's output matches this regular expression.
    Log(String),
    /// An HTTP GET answers with an accepted status.
    Http(HttpCheck),
}

/// An HTTP check (`ready` or `health`): a GET of `url` over plain HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HttpCheck {
    /// `http://host[:port][/path]`, checked at load time.
    pub url: String,
    /// The statuses that count as success; empty: any 2xx or 3xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<u16>,
    /// How long one GET may take (`ready` only: a health check has its own `timeout`).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
}

impl HttpCheck {
    /// Whether `status` is a success for this check.
    pub fn accepts(&self, status: u16) -> bool {
        if self.status.is_empty() {
            (200..400).contains(&status)
        } else {
            self.status.contains(&status)
        }
    }
}

/// The probe part of a liveness check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Exec(Vec<String>),
    Tcp(String),
    Http(HttpCheck),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Health {
    pub probe: Probe,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retries: u32,
}

/// What `exit_when` asks for: when a supervisor (typically PID 1 in a container) should end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExitWhen {
    /// Every service has ended and none will be restarted.
    #[default]
    AllExited,
    /// As soon as one service is `failed` (or exited unsuccessfully with no restart coming).
    AnyFailed,
    /// As soon as any of these services has ended for good.
    Services(Vec<String>),
}

/// The `[runpm]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// `None` when the config does not say: a foreground `runpm up` then ends once every
    /// service has ended (`all-exited`), while a detached daemon keeps serving.
    pub exit_when: Option<ExitWhen>,
    pub watch: bool,
    pub state_dir: Option<Utf8PathBuf>,
    /// Whether runpm may use cgroups (`[runpm] cgroups = false`, or `RUNPM_CGROUPS=0`).
    #[serde(default = "yes")]
    pub cgroups: bool,
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            shutdown_timeout: Duration::from_secs(30),
            exit_when: None,
            watch: true,
            state_dir: None,
            cgroups: true,
        }
    }
}

/// A whole validated configuration: the desired state before any operator intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file or directory it was loaded from.
    pub source: Utf8PathBuf,
    /// The directory relative paths are resolved against.
    pub base_dir: Utf8PathBuf,
    pub settings: Settings,
    /// Services by name (sorted, so iteration order is stable).
    pub services: BTreeMap<String, ServiceSpec>,
    /// The services with `replicas`, by the name they were written under: the spec before
    /// expansion (`{replica}` not substituted) and the count. Their replicas are in
    /// `services`; this is what `scale` and the exports work from.
    pub replicated: BTreeMap<String, super::replicas::Replicated>,
    /// The profiles and services that `runpm up` selected, once applied
    /// ([`Config::select`]): kept so that a reload selects the same way.
    pub selection: super::profiles::Selection,
}

impl Config {
    /// Services in an order where every service comes after its dependencies.
    /// Validation guarantees the graph has no cycle.
    pub fn start_order(&self) -> Vec<&str> {
        dependency_order(self.services.values())
    }

    /// The named services plus everything they transitively depend on.
    pub fn closure<'a>(&'a self, names: &[String]) -> std::collections::BTreeSet<&'a str> {
        let mut out = std::collections::BTreeSet::new();
        let mut stack: Vec<&str> = names
            .iter()
            .filter_map(|n| {
                self.services
                    .get_key_value(n.as_str())
                    .map(|(k, _)| k.as_str())
            })
            .collect();
        while let Some(name) = stack.pop() {
            if out.insert(name)
                && let Some(spec) = self.services.get(name)
            {
                stack.extend(spec.depends_on.iter().map(String::as_str));
            }
        }
        out
    }
}

/// `specs` in an order where every service comes after those of its dependencies that are
/// among them (depth-first, so it is stable for a given set). Assumes no cycle.
pub fn dependency_order<'a>(specs: impl IntoIterator<Item = &'a ServiceSpec>) -> Vec<&'a str> {
    let by_name: BTreeMap<&str, &ServiceSpec> =
        specs.into_iter().map(|s| (s.name.as_str(), s)).collect();
    let mut order = Vec::with_capacity(by_name.len());
    let mut seen = std::collections::BTreeSet::new();
    fn visit<'a>(
        name: &'a str,
        by_name: &BTreeMap<&'a str, &'a ServiceSpec>,
        seen: &mut std::collections::BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
    ) {
        let Some(spec) = by_name.get(name) else {
            return;
        };
        if !seen.insert(name) {
            return;
        }
        for dep in &spec.depends_on {
            visit(dep, by_name, seen, order);
        }
        order.push(spec.name.as_str());
    }
    for name in by_name.keys() {
        visit(name, &by_name, &mut seen, &mut order);
    }
    order
}
