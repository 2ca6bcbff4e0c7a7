//! From raw units to a [`Config`]: defaults filled in, paths made absolute, `env_file` read,
//! users and groups looked up, and the checks that span fields or services.
//!
//! Every check reports and carries on, using a stand-in value where one is needed, so one
//! pass finds all problems; the resulting `Config` is only handed out when none was found.
//! Checks that involve a key already reported as malformed stay quiet, so one typo yields one
//! diagnostic and not a cascade ("`cmd`: invalid type" and then "no `cmd` given").

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use super::diagnostic::{Diagnostic, Diagnostics, Source};
use super::envfile;
use super::graph::{self, Problem};
use super::limits::{self, Limits, Rlimit};
use super::raw::{RawDependsOn, RawExitWhen, RawHealth, RawReady, RawService, RawSettings};
use super::recover::Recovered;
use super::spec::{
    Command, Condition, Config, EnvFile, ExitWhen, Health, HttpCheck, KillMode, Listen,
    ListenAddress, Probe, Ready, RestartPolicy, ServiceSpec, Settings, Signal,
};
use super::suggest::hint;

pub(crate) const RESTART_DELAY: Duration = Duration::from_millis(100);
pub(crate) const RESTART_DELAY_MAX: Duration = Duration::from_secs(30);
pub(crate) const MIN_UPTIME: Duration = Duration::from_secs(1);
pub(crate) const MAX_RESTARTS: u32 = 10;
pub(crate) const RESTART_WINDOW: Duration = Duration::from_secs(60);
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
const HEALTH_RETRIES: u32 = 3;
pub(crate) const FAILED_COOLDOWN: Duration = Duration::from_secs(5 * 60);
pub(crate) const LOG_MAX_SIZE: u64 = 10_000_000;
pub(crate) const LOG_KEEP: u32 = 5;
/// Every rotation renames each kept file: more than this is a typo, not a retention policy.
pub(crate) const MAX_LOG_KEEP: u32 = 1000;
/// Service names become `NAME.log`; this leaves room for rotation suffixes under the usual
/// 255-byte file name limit.
const MAX_NAME_LEN: usize = 128;

/// One service as read from a file, before validation.
#[derive(Debug)]
pub(super) struct Unit {
    pub name: String,
    pub source: Rc<Source>,
    /// The name in `[services.NAME]`; none in directory form, where the file is the unit.
    pub header: Option<Range<usize>>,
    /// Spans of the table's top-level keys, to point at a field.
    pub keys: BTreeMap<String, Range<usize>>,
    pub raw: Recovered<RawService>,
}

/// The `[runpm]` table (or `runpm.toml`) as read.
#[derive(Debug)]
pub(super) struct SettingsUnit {
    pub source: Rc<Source>,
    pub raw: Recovered<RawSettings>,
}

impl Unit {
    pub(super) fn report(
        &self,
        diags: &mut Diagnostics,
        span: Option<Range<usize>>,
        message: String,
    ) {
        diags.at(&self.source, span, Some(&self.name), message);
    }

    /// The span of a key, else of the service's header.
    pub(super) fn at(&self, key: &str) -> Option<Range<usize>> {
        self.keys.get(key).cloned().or_else(|| self.header.clone())
    }
}

pub(super) fn config(
    source: Utf8PathBuf,
    base_dir: Utf8PathBuf,
    settings: Option<SettingsUnit>,
    units: Vec<Unit>,
    diags: &mut Diagnostics,
) -> Config {
    let mut services = BTreeMap::new();
    for unit in &units {
        check_name(unit, diags);
        services.insert(unit.name.clone(), service(unit, &base_dir, diags));
    }
    dependencies(&units, diags);
    super::kinds::check(&units, &services, diags);
    let replicated = super::kinds::expand(&units, &mut services);
    shared_addresses(&units, &base_dir, diags);
    let names: BTreeSet<&str> = units.iter().map(|u| u.name.as_str()).collect();
    let settings = match &settings {
        Some(unit) => self::settings(unit, &base_dir, &names, diags),
        None => Settings::default(),
    };
    Config {
        source,
        base_dir,
        settings,
        services,
        replicated,
        selection: Default::default(),
    }
}

pub(super) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= MAX_NAME_LEN
}

fn check_name(unit: &Unit, diags: &mut Diagnostics) {
    if !is_valid_name(&unit.name) {
        unit.report(
            diags,
            unit.header.clone(),
            format!(
                "invalid service name: use at most {MAX_NAME_LEN} letters, digits, `_`, `.` \
                 and `-`, starting with a letter or digit"
            ),
        );
    }
}

fn service(unit: &Unit, base_dir: &Utf8Path, diags: &mut Diagnostics) -> ServiceSpec {
    let raw = &unit.raw.value;
    let dropped = |keys: &[&str]| unit.raw.dropped_any(keys);
    let report = |diags: &mut Diagnostics, key: &str, message: String| {
        unit.report(diags, unit.at(key), message)
    };

    let command = match (&raw.cmd, &raw.shell) {
        (Some(_), Some(_)) => {
            report(
                diags,
                "shell",
                "both `cmd` and `shell` are set; keep one".into(),
            );
            Command::Argv(Vec::new())
        }
        (None, None) => {
            if !dropped(&["cmd", "shell"]) {
                unit.report(
                    diags,
                    unit.header.clone(),
                    "no `cmd` or `shell` given".into(),
                );
            }
            Command::Argv(Vec::new())
        }
        (Some(argv), None) => {
            if let Err(message) = check_argv("cmd", argv) {
                report(diags, "cmd", message);
            }
            Command::Argv(argv.clone())
        }
        (None, Some(script)) => {
            if script.trim().is_empty() {
                report(diags, "shell", "`shell` is empty".into());
            }
            Command::Shell(script.clone())
        }
    };

    let restart_delay = raw.restart_delay.map_or(RESTART_DELAY, |d| d.0);
    let restart_delay_max = raw.restart_delay_max.map_or(RESTART_DELAY_MAX, |d| d.0);
    if restart_delay > restart_delay_max && !dropped(&["restart_delay", "restart_delay_max"]) {
        report(
            diags,
            "restart_delay",
            format!(
                "`restart_delay` ({}) is longer than `restart_delay_max` ({})",
                humantime::format_duration(restart_delay),
                humantime::format_duration(restart_delay_max)
            ),
        );
    }

    let ready = raw
        .ready
        .as_ref()
        .filter(|_| !dropped(&["ready"]))
        .and_then(|r| match ready(r) {
            Ok(ready) => Some(ready),
            Err(message) => {
                report(diags, "ready", message);
                None
            }
        });
    let health = raw
        .health
        .as_ref()
        .filter(|_| !dropped(&["health"]))
        .and_then(|h| match health(h) {
            Ok(health) => Some(health),
            Err(message) => {
                report(diags, "health", message);
                None
            }
        });
    let watchdog = raw.watchdog.map(|d| d.0);
    if let Some(watchdog) = watchdog {
        if watchdog.is_zero() {
            report(
                diags,
                "watchdog",
                "`watchdog` must be longer than zero".into(),
            );
        }
        if ready != Some(Ready::Notify) && !dropped(&["ready"]) {
            report(
                diags,
                "watchdog",
                "`watchdog` needs `ready = { notify = true }`".into(),
            );
        }
    }

    if let Some(keep) = raw.log_keep.filter(|&keep| keep > MAX_LOG_KEEP) {
        report(
            diags,
            "log_keep",
            format!("`log_keep` is {keep}: at most {MAX_LOG_KEEP} rotated files can be kept"),
        );
    }

    for (key, name) in [("user", &raw.user), ("group", &raw.group)] {
        if let Some(name) = name
            && let Err(message) = look_up(key, name)
        {
            report(diags, key, message);
        }
    }

    let mut env = raw.env.clone().unwrap_or_default();
    let mut env_file = None;
    if let Some(file) = &raw.env_file {
        let path = absolute(base_dir, file);
        match std::fs::read_to_string(&path) {
            Err(e) => report(
                diags,
                "env_file",
                format!("cannot read env_file `{path}`: {e}"),
            ),
            Ok(text) => {
                let (vars, bad) = envfile::parse(&text);
                for bad in bad {
                    diags.push(Diagnostic {
                        file: path.clone(),
                        line: Some(bad.line),
                        column: Some(1),
                        service: Some(unit.name.clone()),
                        message: bad.message,
                    });
                }
                env_file = Some(EnvFile {
                    path: path.clone(),
                    keys: vars.iter().map(|(k, _)| k.clone()).collect(),
                });
                env.extend(vars);
            }
        }
    }

    // The order of dependencies and of exit codes carries no meaning, so they are kept
    // sorted: two files that say the same thing give equal specs and no spurious restart.
    let mut depends_on: Vec<String> = raw
        .depends_on
        .iter()
        .flat_map(RawDependsOn::names)
        .map(|d| d.get_ref().clone())
        .collect();
    depends_on.sort();
    depends_on.dedup();
    let conditions = raw
        .depends_on
        .iter()
        .flat_map(|d| d.0.iter())
        .filter(|(_, condition)| *condition != Condition::default())
        .map(|(name, condition)| (name.get_ref().clone(), *condition))
        .collect();
    let mut success_exit_codes: Vec<i32> = match &raw.success_exit_codes {
        Some(codes) => codes.iter().map(|c| i32::from(c.0)).collect(),
        None => vec![0],
    };
    success_exit_codes.sort();
    success_exit_codes.dedup();

    let (limits, rlimits) = resources(unit, diags);

    ServiceSpec {
        name: unit.name.clone(),
        command,
        cwd: raw
            .cwd
            .as_ref()
            .map_or_else(|| base_dir.to_owned(), |cwd| absolute(base_dir, cwd)),
        env,
        env_file,
        clear_env: raw.clear_env.unwrap_or(false),
        depends_on,
        conditions,
        restart: raw.restart.map_or(RestartPolicy::default(), |k| k.0),
        restart_delay,
        restart_delay_max,
        min_uptime: raw.min_uptime.map_or(MIN_UPTIME, |d| d.0),
        max_restarts: raw.max_restarts.unwrap_or(MAX_RESTARTS),
        restart_window: raw.restart_window.map_or(RESTART_WINDOW, |d| d.0),
        success_exit_codes,
        stop_signal: raw
            .stop_signal
            .map_or(Signal(nix::sys::signal::Signal::SIGTERM), |s| s.0),
        kill_timeout: raw.kill_timeout.map_or(KILL_TIMEOUT, |d| d.0),
        kill_mode: raw.kill_mode.map_or(KillMode::default(), |k| k.0),
        autostart: raw.autostart.unwrap_or(true),
        user: raw.user.clone(),
        group: raw.group.clone(),
        ready,
        ready_timeout: raw.ready_timeout.map_or(READY_TIMEOUT, |d| d.0),
        health,
        watchdog,
        failed_cooldown: raw.failed_cooldown.map_or(FAILED_COOLDOWN, |d| d.0),
        log_max_size: raw.log_max_size.map_or(LOG_MAX_SIZE, |s| s.0),
        log_keep: raw.log_keep.unwrap_or(LOG_KEEP),
        profiles: raw.profiles.clone().unwrap_or_default(),
        replica_of: None,
        schedule: super::kinds::schedule(unit, diags),
        listen: listen(unit, base_dir, diags),
        fd_store_max: fd_store_max(unit, diags),
        limits,
        rlimits,
    }
}

/// `listen`, resolved; the same address twice in one service is an error (the second bind
/// would fail at start, later and less clearly).
fn listen(unit: &Unit, base_dir: &Utf8Path, diags: &mut Diagnostics) -> Vec<Listen> {
    let Some(raw) = &unit.raw.value.listen else {
        return Vec::new();
    };
    let resolved: Vec<Listen> = raw
        .iter()
        .map(|l| l.resolve(&unit.name, base_dir))
        .collect();
    if unit.raw.value.replicas.is_none() && resolved.iter().any(|l| l.template.is_some()) {
        unit.report(
            diags,
            unit.at("listen"),
            "`{replica}` in `listen` needs `replicas`: each replica gets its own address"
                .to_owned(),
        );
    }
    let mut seen = BTreeSet::new();
    for l in &resolved {
        if !seen.insert(&l.address) {
            unit.report(
                diags,
                unit.at("listen"),
                format!("`listen` names `{}` twice", l.address),
            );
        }
    }
    resolved
}

/// More stored descriptors than this is a leak, not a design: systemd's own limit per unit
/// is in the same range.
pub(crate) const MAX_FD_STORE: u32 = 4096;

fn fd_store_max(unit: &Unit, diags: &mut Diagnostics) -> u32 {
    let max = unit.raw.value.fd_store_max.unwrap_or(0);
    if max > MAX_FD_STORE {
        unit.report(
            diags,
            unit.at("fd_store_max"),
            format!("`fd_store_max` is {max}: at most {MAX_FD_STORE} descriptors can be stored"),
        );
    }
    max
}

/// Two services cannot listen on the same address: runpm would bind it once for each.
fn shared_addresses(units: &[Unit], base_dir: &Utf8Path, diags: &mut Diagnostics) {
    let mut owners: BTreeMap<ListenAddress, &str> = BTreeMap::new();
    for unit in units {
        for raw in unit.raw.value.listen.iter().flatten() {
            let address = raw.address.clone().resolved(base_dir);
            match owners.get(&address) {
                Some(owner) if *owner != unit.name => unit.report(
                    diags,
                    unit.at("listen"),
                    format!("`{address}` is already in `listen` of service `{owner}`"),
                ),
                _ => {
                    owners.insert(address, &unit.name);
                }
            }
        }
    }
}

/// The cgroup limits and rlimits of a unit, each checked at its key's position.
fn resources(unit: &Unit, diags: &mut Diagnostics) -> (Limits, BTreeMap<String, Rlimit>) {
    let raw = &unit.raw.value;
    let limits = Limits {
        memory_max: raw.memory_max.map(|s| s.0),
        memory_high: raw.memory_high.map(|s| s.0),
        cpu_max: raw.cpu_max.map(|c| c.0),
        cpu_weight: raw.cpu_weight.map(|w| w.0),
        pids_max: raw.pids_max,
        io_weight: raw.io_weight.map(|w| w.0),
        memory_restart: raw.memory_restart.map(|s| s.0),
    };
    if raw.pids_max == Some(0) {
        unit.report(
            diags,
            unit.at("pids_max"),
            "`pids_max` must be at least 1".into(),
        );
    }
    if let (Some(high), Some(max)) = (limits.memory_high, limits.memory_max)
        && high > max
    {
        unit.report(
            diags,
            unit.at("memory_high"),
            format!("`memory_high` ({high} bytes) is above `memory_max` ({max} bytes): it would never apply"),
        );
    }
    if let (Some(restart), Some(max)) = (limits.memory_restart, limits.memory_max)
        && restart >= max
    {
        unit.report(
            diags,
            unit.at("memory_restart"),
            format!("`memory_restart` ({restart} bytes) is not below `memory_max` ({max} bytes): the kernel would kill the service before runpm restarts it"),
        );
    }
    let rlimits = match &raw.rlimits {
        None => BTreeMap::new(),
        Some(raw) => match limits::resolve_rlimits(raw) {
            Ok(rlimits) => rlimits,
            Err(message) => {
                unit.report(diags, unit.at("rlimits"), message);
                BTreeMap::new()
            }
        },
    };
    (limits, rlimits)
}

fn check_argv(key: &str, argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => Err(format!("`{key}` is empty")),
        Some(program) if program.is_empty() => Err(format!("`{key}` has an empty program name")),
        Some(_) => Ok(()),
    }
}

fn ready(raw: &RawReady) -> Result<Ready, String> {
    let mut kinds = Vec::new();
    if raw.notify == Some(true) {
        kinds.push(Ready::Notify);
    }
    if let Some(tcp) = &raw.tcp {
        kinds.push(Ready::Tcp(tcp.0.clone()));
    }
    if let Some(exec) = &raw.exec {
        check_argv("ready.exec", exec)?;
        kinds.push(Ready::Exec(exec.clone()));
    }
    if let Some(log) = &raw.log {
        if log.is_empty() {
            return Err("`ready.log` is empty".into());
        }
        // Checked here so that a typo is a config error, not a service that never gets ready.
        if let Err(e) = regex_lite::Regex::new(log) {
            return Err(format!(
                "`ready.log` is not a valid regular expression: {}",
                e.to_string().trim_end().replace('\n', "; ")
            ));
        }
        kinds.push(Ready::Log(log.clone()));
    }
    match (&raw.http, &raw.status, raw.timeout) {
        (Some(url), status, timeout) => {
            let timeout = timeout.map(|d| d.0);
            if timeout.is_some_and(|t| t.is_zero()) {
                return Err("`ready.timeout` must be longer than zero".into());
            }
            kinds.push(Ready::Http(http_check(url, status, timeout)?));
        }
        (None, Some(_), _) | (None, _, Some(_)) => {
            return Err("`ready.status` and `ready.timeout` go with `ready.http`".into());
        }
        (None, None, None) => {}
    }
    match <[Ready; 1]>::try_from(kinds) {
        Ok([ready]) => Ok(ready),
        Err(_) => Err(
            "`ready` needs exactly one of `notify = true`, `tcp`, `exec`, `log` or `http`".into(),
        ),
    }
}

fn health(raw: &RawHealth) -> Result<Health, String> {
    if raw.status.is_some() && raw.http.is_none() {
        return Err("`health.status` goes with `health.http`".into());
    }
    let probe = match (&raw.exec, &raw.tcp, &raw.http) {
        (Some(exec), None, None) => {
            check_argv("health.exec", exec)?;
            Probe::Exec(exec.clone())
        }
        (None, Some(tcp), None) => Probe::Tcp(tcp.0.clone()),
        (None, None, Some(url)) => Probe::Http(http_check(url, &raw.status, None)?),
        _ => return Err("`health` needs exactly one of `exec`, `tcp` or `http`".into()),
    };
    let health = Health {
        probe,
        interval: raw.interval.map_or(HEALTH_INTERVAL, |d| d.0),
        timeout: raw.timeout.map_or(HEALTH_TIMEOUT, |d| d.0),
        retries: raw.retries.unwrap_or(HEALTH_RETRIES),
    };
    if health.interval.is_zero() || health.timeout.is_zero() {
        return Err("`health.interval` and `health.timeout` must be longer than zero".into());
    }
    if health.retries == 0 {
        return Err("`health.retries` must be at least 1".into());
    }
    Ok(health)
}

/// An HTTP check's URL and statuses, checked (`{replica}` stands for a digit).
fn http_check(
    url: &str,
    status: &Option<Vec<u16>>,
    timeout: Option<Duration>,
) -> Result<HttpCheck, String> {
    super::http::parse_http_url(&url.replace("{replica}", "0"))?;
    let mut status = status.clone().unwrap_or_default();
    if let Some(bad) = status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(format!("HTTP status {bad} is out of range 100..=599"));
    }
    status.sort_unstable();
    status.dedup();
    Ok(HttpCheck {
        url: url.to_owned(),
        status,
        timeout,
    })
}

/// Whether a user or group exists, so a typo fails at load time rather than at each spawn.
fn look_up(key: &str, name: &str) -> Result<(), String> {
    let found = match key {
        "user" => nix::unistd::User::from_name(name).map(|u| u.is_some()),
        _ => nix::unistd::Group::from_name(name).map(|g| g.is_some()),
    };
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("unknown {key} `{name}`")),
        Err(e) => Err(format!("cannot look up {key} `{name}`: {e}")),
    }
}

fn dependencies(units: &[Unit], diags: &mut Diagnostics) {
    let by_name: BTreeMap<&str, &Unit> = units.iter().map(|u| (u.name.as_str(), u)).collect();
    let mut deps: BTreeMap<&str, Vec<&str>> = units
        .iter()
        .map(|u| {
            let list = u
                .raw
                .value
                .depends_on
                .iter()
                .flat_map(RawDependsOn::names)
                .map(|d| d.get_ref().as_str());
            (u.name.as_str(), list.collect())
        })
        .collect();
    // Replicas (`web.1`) can be named as dependencies; each has its group's dependencies,
    // so a cycle through one is found too. A name taken by another unit is reported as a
    // collision elsewhere.
    let members = super::kinds::members(units);
    for (member, group) in &members {
        if !deps.contains_key(member.as_str()) {
            let list = deps.get(group.as_str()).cloned().unwrap_or_default();
            deps.insert(member.as_str(), list);
        }
    }
    let group_of = |service: &str| -> Option<&Unit> {
        match by_name.get(service) {
            Some(unit) => Some(*unit),
            None => members
                .iter()
                .find(|(m, _)| m == service)
                .and_then(|(_, g)| by_name.get(g.as_str()).copied()),
        }
    };
    let dep_span = |service: &str, index: usize| {
        let unit = group_of(service)?;
        let (dep, _) = unit.raw.value.depends_on.as_ref()?.0.get(index)?;
        Some(dep.span())
    };
    for problem in graph::check(&deps) {
        let (service, index, message) = match problem {
            Problem::Unknown {
                service,
                index,
                suggestion,
            } => {
                let dep = deps[service][index];
                let hint = suggestion
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                (service, index, format!("unknown dependency `{dep}`{hint}"))
            }
            Problem::SelfDependency { service, index } => {
                (service, index, "depends on itself".to_owned())
            }
            Problem::Cycle { path, index } => (
                path[0],
                index,
                format!("dependency cycle: {}", path.join(" -> ")),
            ),
        };
        if let Some(unit) = group_of(service) {
            let span = dep_span(service, index).or_else(|| unit.at("depends_on"));
            unit.report(diags, span, message);
        }
    }
}

fn settings(
    unit: &SettingsUnit,
    base_dir: &Utf8Path,
    names: &BTreeSet<&str>,
    diags: &mut Diagnostics,
) -> Settings {
    let raw = &unit.raw.value;
    let defaults = Settings::default();
    let exit_when = match &raw.exit_when {
        None => None,
        Some(RawExitWhen::AllExited) => Some(ExitWhen::AllExited),
        Some(RawExitWhen::AnyFailed) => Some(ExitWhen::AnyFailed),
        Some(RawExitWhen::Services(list)) => {
            for name in list {
                if !names.contains(name.get_ref().as_str()) {
                    let hint = hint(name.get_ref(), names.iter().copied());
                    let message =
                        format!("unknown service `{}` in `exit_when`{hint}", name.get_ref());
                    diags.at(&unit.source, Some(name.span()), None, message);
                }
            }
            Some(ExitWhen::Services(
                list.iter().map(|n| n.get_ref().clone()).collect(),
            ))
        }
    };
    Settings {
        shutdown_timeout: raw
            .shutdown_timeout
            .map_or(defaults.shutdown_timeout, |d| d.0),
        exit_when,
        watch: raw.watch.unwrap_or(defaults.watch),
        state_dir: raw.state_dir.as_ref().map(|dir| absolute(base_dir, dir)),
        cgroups: raw.cgroups.unwrap_or(defaults.cgroups),
    }
}

/// `path` against `base`, with `.` components removed. `..` stays: whether it may be
/// folded depends on symlinks, which only the file system knows.
pub(super) fn absolute(base: &Utf8Path, path: &Utf8Path) -> Utf8PathBuf {
    base.join(path)
        .components()
        .filter(|c| !matches!(c, camino::Utf8Component::CurDir))
        .collect()
}
