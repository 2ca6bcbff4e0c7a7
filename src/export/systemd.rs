//! `runpmctl export systemd`: one `.service` unit per service, plus a target that groups them.
//!
//! The mapping, field by field (the README has the table a user reads):
//!
//! - `cmd`/`shell` → `ExecStart=`. systemd wants an absolute program path, so a bare name is
//!   looked up on `PATH` when exporting (the service's own `PATH` if its `env` sets one), the
//!   program runpm would have run from this shell; a relative path is taken from `cwd`. A
//!   name that is not found stays bare (systemd ≥ 239 searches its own fixed path) and is
//!   reported. Every word is escaped for systemd's command-line syntax: `%` and `$` doubled
//!   (specifiers and variable expansion), and words with anything but plain characters
//!   double-quoted with C escapes, so a multi-line `shell` script becomes one line.
//! - `env` → `Environment=`; `env_file` → `EnvironmentFile=` pointing at the file, so its
//!   values (often secrets) are not copied into a world-readable unit. systemd, like runpm,
//!   lets the file override `Environment=`.
//! - `restart`, `restart_delay`, `restart_delay_max` → `Restart=`, `RestartSec=`,
//!   `RestartSteps=` + `RestartMaxDelaySec=` (systemd ≥ 254 grows the delay exponentially
//!   from one to the other, as runpm doubles it). For an older systemd (`--systemd-version`,
//!   by default the exporting machine's) they are left out, since it would warn about each
//!   as an unknown key, and that is reported once.
//! - `max_restarts` within `restart_window` → `StartLimitBurst=` (max_restarts + 1: the first
//!   start plus that many restarts) within `StartLimitIntervalSec=`.
//! - `ready = { notify = true }` → `Type=notify` with `NotifyAccess=all` (runpm accepts
//!   messages from the whole process group); `ready.exec` → `Type=exec` and an
//!   `ExecStartPost=` loop that runs the probe until it succeeds, so dependents ordered
//!   `After=` wait for readiness as under runpm; `ready_timeout` → `TimeoutStartSec=`.
//! - `depends_on` → `After=` + `Requires=`. A task (`restart = "never"`, or `"on-failure"`
//!   with a dependent that waits for it to be `completed`) becomes `Type=oneshot` +
//!   `RemainAfterExit=yes`: systemd counts a oneshot as started only once it has exited
//!   successfully, so its dependents wait for it to finish, and a finished task stays "active
//!   (exited)" and keeps satisfying them, as in runpm. A `started` condition has no systemd
//!   equivalent when the dependency has a readiness mapping: reported.
//! - Every path (`WorkingDirectory=`, `EnvironmentFile=`, the program) is normalized: systemd
//!   refuses `a/../b`.
//! - `--user` writes user units: `WantedBy=default.target`, and no `User=`/`Group=` (a user
//!   manager runs everything as its own user).
//! - The stop policy: `stop_signal` → `KillSignal=`, `kill_timeout` → `TimeoutStopSec=`,
//!   `kill_mode` → `KillMode=control-group|process` (the cgroup holds the process group and
//!   anything that escaped it).

use std::fmt::Write as _;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use super::{Warning, split_host_port};
use crate::config::{
    Command, Condition, Config, KillMode, Ready, RestartPolicy, ServiceSpec, defaults,
};

mod kinds;

/// The systemd release that introduced `RestartSteps=` and `RestartMaxDelaySec=`.
const EXPONENTIAL_RESTART_SINCE: u32 = 254;

/// The release assumed when the exporting machine has no systemd to ask: Debian 12's and
/// RHEL 9's.
pub const DEFAULT_SYSTEMD_VERSION: u32 = 252;

/// How units are named and how programs are found.
pub struct Options<'a> {
    /// Put before every service name: `runpm-` gives `runpm-web.service`.
    pub prefix: String,
    /// Also write `<prefix>all.target`, which wants every autostart service.
    pub target: bool,
    /// Finds a bare program name on a `PATH` value, as runpm would when starting it. The
    /// binary passes a real lookup; tests pass a fake.
    pub which: &'a dyn Fn(&str, &str) -> Option<Utf8PathBuf>,
    /// The `PATH` runpm would search (the exporting shell's), unless a service sets its own.
    pub path: String,
    /// Units for a user's own manager (`systemctl --user`) instead of the system's.
    pub user: bool,
    /// The systemd release the units are for: keys that came later are not written (systemd
    /// would warn about each as unknown), and what they would have said is reported.
    pub systemd_version: u32,
}

impl Options<'_> {
    /// The target that `[Install]` hooks the units into: the one each manager reaches at boot
    /// (or at login, for a user manager).
    fn wanted_by(&self) -> &'static str {
        if self.user {
            "default.target"
        } else {
            "multi-user.target"
        }
    }
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The file name: `runpm-web.service`.
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The services' units in dependency order, then the target.
    pub units: Vec<Unit>,
    pub warnings: Vec<Warning>,
}

/// The units for every service of `config`.
pub fn export(config: &Config, options: &Options) -> Export {
    let mut warnings = Vec::new();
    let mut units = Vec::new();
    let mut templates = std::collections::BTreeSet::new();
    for name in config.start_order() {
        let spec = &config.services[name];
        // Replicas share one template unit, written where the first of them comes.
        if let Some(group) = &spec.replica_of {
            if templates.insert(group.clone())
                && let Some(unit) = kinds::template(config, group, options, &mut warnings)
            {
                units.push(unit);
            }
            continue;
        }
        units.push(Unit {
            name: unit_name(&options.prefix, name),
            text: service_unit(config, spec, options, &mut warnings),
        });
        if let Some(schedule) = &spec.schedule {
            let mut warn = |field: &'static str, message: String| {
                warnings.push(Warning::new(name, field, message));
            };
            kinds::schedule_warnings(schedule, &mut warn);
            match kinds::timer(spec, schedule, options) {
                Ok(timer) => units.push(timer),
                Err(why) => warn(
                    "schedule",
                    format!("no timer written: {why}; write its OnCalendar= by hand"),
                ),
            }
        }
        units.extend(super::sockets::socket_units(
            config,
            spec,
            &options.prefix,
            &mut warnings,
        ));
    }
    if options.target {
        units.push(target_unit(config, options));
    }
    settings_warnings(config, &mut warnings);
    let backoff: Vec<String> = config
        .start_order()
        .into_iter()
        .filter(|name| doubles(&config.services[*name]))
        .map(|name| unit_name(&options.prefix, name))
        .collect();
    if !backoff.is_empty() && options.systemd_version < EXPONENTIAL_RESTART_SINCE {
        // About the target's version rather than a service: said once.
        warnings.push(Warning::new(
            "[export]",
            "restart_delay_max",
            format!(
                "systemd {} has no RestartSteps= and RestartMaxDelaySec= (they came with \
                 {EXPONENTIAL_RESTART_SINCE}), so {} wait RestartSec= before every restart \
                 instead of doubling it; pass --systemd-version {EXPONENTIAL_RESTART_SINCE} \
                 (or later) when the units are for a newer systemd",
                options.systemd_version,
                backoff.join(", ")
            ),
        ));
    }
    Export { units, warnings }
}

/// All units in one text, each after a `# ---- NAME ----` line, for stdout.
pub fn concatenate(units: &[Unit]) -> String {
    let mut out = String::new();
    for (i, unit) in units.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "# ---- {} ----", unit.name);
        out.push_str(&unit.text);
    }
    out
}

/// Checks a `--prefix`: unit names allow letters, digits and `:_.-` (`@` would make a template).
pub fn parse_prefix(prefix: &str) -> Result<String, String> {
    if prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ":_.-".contains(c))
    {
        Ok(prefix.to_owned())
    } else {
        Err("a unit name prefix may hold only letters, digits and `:_.-`".into())
    }
}

fn unit_name(prefix: &str, service: &str) -> String {
    format!("{prefix}{service}.service")
}

fn target_name(prefix: &str) -> String {
    format!("{prefix}all.target")
}

fn service_unit(
    config: &Config,
    spec: &ServiceSpec,
    options: &Options,
    warnings: &mut Vec<Warning>,
) -> String {
    let name = spec.name.as_str();
    let mut warn = |field: &'static str, message: String| {
        warnings.push(Warning::new(name, field, message));
    };
    // [Unit]
    let mut out = format!(
        "# Generated by `runpmctl export systemd` from {} (service `{name}`).\n[Unit]\n",
        config.source
    );
    kv(
        &mut out,
        "Description",
        &specifiers(&format!("runpm service {name} ({})", config.source)),
    );
    for socket in super::sockets::socket_names(spec, &options.prefix) {
        kv(&mut out, "Requires", &socket);
        kv(&mut out, "After", &socket);
    }
    for dep in &spec.depends_on {
        for unit in kinds::dependency_units(config, &options.prefix, dep) {
            kv(&mut out, "After", &unit);
            kv(&mut out, "Requires", &unit);
        }
        dependency_warnings(config, spec, dep, &mut warn);
    }
    if options.target {
        // Stopping or restarting the target stops or restarts everything, like `runpm down`.
        kv(&mut out, "PartOf", &target_name(&options.prefix));
    }
    if spec.restart != RestartPolicy::Never {
        kv(
            &mut out,
            "StartLimitIntervalSec",
            &duration(spec.restart_window),
        );
        kv(
            &mut out,
            "StartLimitBurst",
            &spec.max_restarts.saturating_add(1).to_string(),
        );
    }

    // [Service]
    out.push_str("\n[Service]\n");
    let mut line = |key: &str, value: &str| kv(&mut out, key, value);
    // A scheduled service is a oneshot that its timer starts, run after run.
    let task = is_task(config, spec) || spec.schedule.is_some();
    match &spec.ready {
        _ if task => {
            line("Type", "oneshot");
            // A finished task stays "active (exited)": it keeps satisfying Requires= of its
            // dependents and is not run again when one of them restarts, as under runpm.
            // Not a scheduled one: an active unit is not started again by its timer.
            if spec.schedule.is_none() {
                line("RemainAfterExit", "yes");
            }
        }
        Some(Ready::Notify) => {
            line("Type", "notify");
            // runpm accepts sd_notify messages from any process of the service's group.
            line("NotifyAccess", "all");
        }
        _ => line("Type", "exec"),
    }
    // Socket activation: the sockets come from `.socket` units (see `export::sockets`).
    let sockets = super::sockets::socket_names(spec, &options.prefix);
    if !sockets.is_empty() {
        line("Sockets", &sockets.join(" "));
    }
    if spec.fd_store_max > 0 {
        line("FileDescriptorStoreMax", &spec.fd_store_max.to_string());
    }
    let argv = spec.command.argv();
    let program = program_path(spec, &argv[0], options, &mut warn);
    line("ExecStart", &exec_line(&program, &argv[1..]));
    match &spec.ready {
        None => {}
        Some(_) if task => warn(
            "ready",
            "a oneshot unit counts as started once it has exited successfully, so its \
             dependents wait for the task to finish rather than for its readiness check"
                .into(),
        ),
        Some(Ready::Notify) => {}
        Some(Ready::Exec(probe)) => {
            line("ExecStartPost", &poll_until(probe));
        }
        Some(Ready::Tcp(address)) => {
            let target = split_host_port(address)
                .map_or_else(|| address.clone(), |(host, port)| format!("{host}/{port}"));
            warn(
                "ready",
                format!(
                    "systemd has no TCP readiness check; the unit counts as started once the \
                     program runs. To make dependents wait, add e.g. `ExecStartPost=/bin/bash \
                     -c 'until (exec 3<>/dev/tcp/{target}) 2>/dev/null; do sleep 0.1; done'`, \
                     or use `ready = {{ notify = true }}`"
                ),
            );
        }
        Some(Ready::Http(check)) => {
            // curl -f fails on 4xx and 5xx: what runpm accepts by default (2xx, 3xx).
            let curl = [
                "curl",
                "-fsS",
                "-o",
                "/dev/null",
                "--max-time",
                "5",
                &check.url,
            ];
            line("ExecStartPost", &poll_until(&curl.map(String::from)));
            if !check.status.is_empty() {
                warn(
                    "ready",
                    "the ExecStartPost= loop accepts any 2xx or 3xx status (curl -f), not only \
                     the listed `status`"
                        .into(),
                );
            }
        }
        Some(Ready::Log(_)) => warn(
            "ready",
            "systemd cannot watch a service's output for readiness; the unit counts as started \
             once the program runs (sd_notify with `ready = { notify = true }` maps to \
             Type=notify)"
                .into(),
        ),
    }
    if task {
        // systemd's start timeout covers a oneshot's whole run (90 s by default); runpm
        // gives a task as long as it takes.
        line("TimeoutStartSec", "infinity");
    } else if spec.ready.is_some() {
        line("TimeoutStartSec", &duration(spec.ready_timeout));
    }
    line(
        "WorkingDirectory",
        &specifiers(normalize(&spec.cwd).as_str()),
    );
    environment(spec, &mut line, &mut warn);
    for (field, key, value) in [
        ("user", "User", &spec.user),
        ("group", "Group", &spec.group),
    ] {
        match value {
            None => {}
            Some(value) if options.user => warn(
                field,
                format!(
                    "a user manager runs every unit as its own user, so `{value}` is left out \
                     (export without --user for a system unit)"
                ),
            ),
            Some(value) => line(key, &specifiers(value)),
        }
    }

    line(
        "Restart",
        match spec.restart {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "no",
        },
    );
    if spec.restart != RestartPolicy::Never {
        line("RestartSec", &duration(spec.restart_delay));
        if doubles(spec) && options.systemd_version >= EXPONENTIAL_RESTART_SINCE {
            line("RestartSteps", &restart_steps(spec).to_string());
            line("RestartMaxDelaySec", &duration(spec.restart_delay_max));
        }
    }
    let extra_codes: Vec<String> = spec
        .success_exit_codes
        .iter()
        .filter(|&&code| code != 0)
        .map(i32::to_string)
        .collect();
    if !extra_codes.is_empty() {
        line("SuccessExitStatus", &extra_codes.join(" "));
    }
    if !spec.success_exit_codes.contains(&0) {
        warn(
            "success_exit_codes",
            "systemd always counts exit code 0 as success, so `Restart=on-failure` does not \
             restart after it"
                .into(),
        );
    }
    match spec.watchdog {
        None => {}
        // A oneshot takes no sd_notify messages: systemd would kill it when the first
        // WATCHDOG=1 it ignored was due.
        Some(_) if task => warn(
            "watchdog",
            "a oneshot unit takes no sd_notify messages, so the task runs without a watchdog"
                .into(),
        ),
        Some(watchdog) => line("WatchdogSec", &duration(watchdog)),
    }
    line(
        "KillMode",
        match spec.kill_mode {
            KillMode::Group | KillMode::Cgroup => "control-group",
            KillMode::Process => "process",
        },
    );
    line("KillSignal", spec.stop_signal.name());
    // 0 would mean "wait forever" to systemd, where runpm sends SIGKILL at once.
    line(
        "TimeoutStopSec",
        &duration(spec.kill_timeout.max(Duration::from_millis(1))),
    );
    super::resources::systemd(spec, &mut line, &mut warn);

    // A scheduled service is enabled through its timer; one in a profile is not enabled.
    if !spec.profiles.is_empty() {
        warn(
            "profiles",
            "in a profile: the unit is written but not enabled; start it by hand".into(),
        );
    }
    if spec.autostart && spec.schedule.is_none() && spec.profiles.is_empty() {
        let _ = write!(out, "\n[Install]\nWantedBy={}\n", options.wanted_by());
    }

    unmapped(spec, &mut warn);
    out
}

fn kv(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key}={value}");
}

/// `Environment=` for the variables from the `env` table, `EnvironmentFile=` for the file.
fn environment(
    spec: &ServiceSpec,
    line: &mut impl FnMut(&str, &str),
    warn: &mut impl FnMut(&'static str, String),
) {
    let from_file = |key: &str| spec.env_file.as_ref().is_some_and(|f| f.keys.contains(key));
    for (key, value) in &spec.env {
        if !env_name_is_valid(key) {
            warn(
                if from_file(key) { "env_file" } else { "env" },
                format!(
                    "`{key}` is not a name systemd accepts (letters, digits and `_`, not \
                     starting with a digit); it is left out"
                ),
            );
            continue;
        }
        if from_file(key) {
            if value.contains('\\') {
                warn(
                    "env_file",
                    format!(
                        "the value of `{key}` contains a backslash, which systemd's \
                         EnvironmentFile= reads as an escape where runpm keeps it as is"
                    ),
                );
            }
            continue;
        }
        line(
            "Environment",
            &quote(&specifiers(&format!("{key}={value}"))),
        );
    }
    if let Some(file) = &spec.env_file {
        line(
            "EnvironmentFile",
            &specifiers(normalize(&file.path).as_str()),
        );
    }
}

/// Whether `spec` becomes a `Type=oneshot` unit: a task that never restarts, or one that
/// restarts only on failure and that a dependent waits for to be `completed`. systemd allows
/// a oneshot only `Restart=no` or `on-failure`, and starts its dependents ordered `After=` it
/// only once it has exited successfully: runpm's `completed`.
fn is_task(config: &Config, spec: &ServiceSpec) -> bool {
    match spec.restart {
        RestartPolicy::Never => true,
        RestartPolicy::Always => false,
        RestartPolicy::OnFailure => config
            .services
            .values()
            .any(|s| s.conditions.get(&spec.name) == Some(&Condition::Completed)),
    }
}

/// What `After=` + `Requires=` on `dep` does not say of the condition `spec` waits for.
fn dependency_warnings(
    config: &Config,
    spec: &ServiceSpec,
    dep: &str,
    warn: &mut impl FnMut(&'static str, String),
) {
    let Some(dependency) = config.services.get(dep) else {
        return;
    };
    let task = is_task(config, dependency);
    match spec.condition(dep) {
        Condition::Completed if !task => warn(
            "depends_on",
            format!(
                "`{dep}` restarts always, so it never completes; this unit is ordered after \
                 its start instead"
            ),
        ),
        Condition::Started if task => warn(
            "depends_on",
            format!(
                "`{dep}` is a oneshot unit, so systemd starts this one after `{dep}` has \
                 finished, not as soon as it was spawned"
            ),
        ),
        Condition::Started if matches!(dependency.ready, Some(Ready::Notify | Ready::Exec(_))) => {
            warn(
                "depends_on",
                format!(
                    "systemd starts this unit once `{dep}` is ready, not as soon as it was \
                     spawned (`started`)"
                ),
            )
        }
        _ => {}
    }
}

/// Warnings for the fields this exporter has no key for at all.
fn unmapped(spec: &ServiceSpec, warn: &mut impl FnMut(&'static str, String)) {
    if spec.health.is_some() {
        warn(
            "health",
            "systemd has no liveness probe; with sd_notify, `watchdog` maps to WatchdogSec=, \
             or run the check from a timer unit that restarts this one"
                .into(),
        );
    }
    if spec.min_uptime != defaults::MIN_UPTIME && spec.restart != RestartPolicy::Never {
        warn(
            "min_uptime",
            "systemd does not tell short runs from long ones: every start counts toward \
             StartLimitBurst="
                .into(),
        );
    }
    if spec.failed_cooldown != defaults::FAILED_COOLDOWN && spec.restart != RestartPolicy::Never {
        warn(
            "failed_cooldown",
            "systemd does not re-arm a unit that hit its start limit; it stays failed until \
             `systemctl reset-failed` (or a timer doing it)"
                .into(),
        );
    }
    if spec.log_max_size != defaults::LOG_MAX_SIZE || spec.log_keep != defaults::LOG_KEEP {
        warn(
            "log_max_size",
            "output goes to the journal, whose size limits are set in journald.conf \
             (SystemMaxUse=), not per service"
                .into(),
        );
    }
}

/// `<prefix>all.target`: starting it starts every autostart service, as `runpm up` does.
fn target_unit(config: &Config, options: &Options) -> Unit {
    let mut text = format!(
        "# Generated by `runpmctl export systemd` from {}.\n[Unit]\nDescription={}\n",
        config.source,
        specifiers(&format!("runpm services of {}", config.source))
    );
    for name in config.start_order() {
        let spec = &config.services[name];
        if !spec.autostart || !spec.profiles.is_empty() {
            continue;
        }
        let unit = match (&spec.replica_of, &spec.schedule) {
            (Some(_), _) => kinds::instance_name(&options.prefix, spec),
            (None, Some(_)) => format!("{}{name}.timer", options.prefix),
            (None, None) => unit_name(&options.prefix, name),
        };
        let _ = writeln!(text, "Wants={unit}");
    }
    let _ = write!(text, "\n[Install]\nWantedBy={}\n", options.wanted_by());
    Unit {
        name: target_name(&options.prefix),
        text,
    }
}

fn settings_warnings(config: &Config, warnings: &mut Vec<Warning>) {
    if config.settings.exit_when.is_some() {
        warnings.push(Warning::new(
            "[runpm]",
            "exit_when",
            "systemd keeps each unit's own lifecycle; nothing stops the others when one ends \
             (BindsTo= or OnFailure= can express some of it by hand)",
        ));
    }
}

/// The absolute program for `ExecStart=`.
fn program_path(
    spec: &ServiceSpec,
    program: &str,
    options: &Options,
    warn: &mut impl FnMut(&'static str, String),
) -> String {
    let field = match spec.command {
        Command::Argv(_) => "cmd",
        Command::Shell(_) => "shell",
    };
    if program.starts_with('/') {
        return normalize(Utf8Path::new(program)).into_string();
    }
    if program.contains('/') {
        // runpm runs a relative path from the service's working directory.
        return normalize(&spec.cwd.join(program)).into_string();
    }
    let path = spec.env.get("PATH").unwrap_or(&options.path);
    match (options.which)(program, path) {
        Some(found) => found.into_string(),
        None => {
            warn(
                field,
                format!(
                    "`{program}` was not found on PATH when exporting; it is left bare, and \
                     systemd looks for it in its own fixed path (/usr/local/sbin:\
                     /usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)"
                ),
            );
            program.to_owned()
        }
    }
}

/// `a/./b/../c` → `a/c`: systemd refuses executable paths that are not normalized.
fn normalize(path: &Utf8Path) -> Utf8PathBuf {
    let mut out = Utf8PathBuf::new();
    for component in path.components() {
        match component {
            camino::Utf8Component::CurDir => {}
            camino::Utf8Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_str()),
        }
    }
    out
}

/// An `ExecStartPost=` that runs `probe` until it succeeds; the start timeout bounds it.
fn poll_until(probe: &[String]) -> String {
    let probe: Vec<String> = probe.iter().map(|w| shell_quote(w)).collect();
    let script = format!(
        "until {} >/dev/null 2>&1; do sleep 0.1; done",
        probe.join(" ")
    );
    exec_line("/bin/sh", &["-c".into(), script])
}

/// Whether runpm doubles the service's restart delay, which systemd can say only from
/// [`EXPONENTIAL_RESTART_SINCE`] on.
fn doubles(spec: &ServiceSpec) -> bool {
    spec.restart != RestartPolicy::Never
        && spec.restart_delay_max > spec.restart_delay
        && !spec.restart_delay.is_zero()
}

/// The release in the first line of `systemctl --version` (`systemd 252 (252.38-1~deb12u1)`).
pub fn parse_version(text: &str) -> Option<u32> {
    text.lines()
        .next()?
        .strip_prefix("systemd ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The number of steps systemd takes from `RestartSec=` to `RestartMaxDelaySec=`: as many as
/// runpm's doublings.
fn restart_steps(spec: &ServiceSpec) -> u32 {
    let ratio = spec.restart_delay_max.as_secs_f64() / spec.restart_delay.as_secs_f64();
    // At least one step; ceil(log2) doublings reach the maximum.
    (ratio.log2().ceil() as u32).max(1)
}

/// A command line for `ExecStart=` and friends.
pub fn exec_line(program: &str, args: &[String]) -> String {
    let mut out = exec_word(program);
    for arg in args {
        out.push(' ');
        out.push_str(&exec_word(arg));
    }
    out
}

/// One word of a systemd command line: `%` and `$` doubled, quoted unless plain.
pub fn exec_word(word: &str) -> String {
    let escaped = specifiers(word).replace('$', "$$");
    let plain = !escaped.is_empty()
        && escaped
            .chars()
            // Not `;` (a lone one separates commands), quotes or blanks. A leading `-`, `@`,
            // `+`, `!` or `:` is special only on the program, which is absolute.
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%$".contains(c));
    if plain { escaped } else { quote(&escaped) }
}

/// `"…"` with C escapes, as systemd's unquoting reads it.
pub fn quote(value: &str) -> String {
    crate::quote::double_quoted(value, |c| {
        c.is_ascii_control().then(|| format!("\\x{:02x}", c as u32))
    })
}

/// `%` doubled, so systemd does not read it as a specifier.
pub fn specifiers(value: &str) -> String {
    value.replace('%', "%%")
}

/// A POSIX shell word (for scripts built here, such as the readiness loop).
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// systemd accepts variable names made of letters, digits and `_`, not starting with a digit.
fn env_name_is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A duration in systemd's syntax: `100ms`, `30s`, `5min`.
pub fn duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros == 0 {
        "0".into()
    } else if micros.is_multiple_of(60_000_000) {
        format!("{}min", micros / 60_000_000)
    } else if micros.is_multiple_of(1_000_000) {
        format!("{}s", micros / 1_000_000)
    } else if micros.is_multiple_of(1000) {
        format!("{}ms", micros / 1000)
    } else {
        format!("{micros}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnvFile, Health, Signal};
    use crate::export::{test_config, test_spec};

    fn which(program: &str, _path: &str) -> Option<Utf8PathBuf> {
        match program {
            "python3" => Some("/usr/bin/python3".into()),
            "true" => Some("/bin/true".into()),
            _ => None,
        }
    }

    fn options() -> Options<'static> {
        Options {
            prefix: "app-".into(),
            target: true,
            which: &which,
            path: "/usr/bin:/bin".into(),
            user: false,
            systemd_version: 254,
        }
    }

    fn unit_of(specs: Vec<ServiceSpec>, name: &str) -> (String, Vec<String>) {
        let export = export(&test_config(specs), &options());
        let unit = export
            .units
            .iter()
            .find(|u| u.name == format!("app-{name}.service"))
            .expect("the unit")
            .text
            .clone();
        let warnings = export.warnings.iter().map(|w| w.to_string()).collect();
        (unit, warnings)
    }

    fn lines<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    }

    #[test]
    fn plain_words_stay_bare_and_the_rest_is_quoted_with_c_escapes() {
        for (word, expected) in [
            ("--port", "--port"),
            ("/usr/bin/python3", "/usr/bin/python3"),
            ("a=b,c:d@e", "a=b,c:d@e"),
            ("", r#""""#),
            ("two words", r#""two words""#),
            ("$HOME", "$$HOME"),
            ("${HOME}/x", r#""$${HOME}/x""#),
            ("100%", "100%%"),
            ("%h", "%%h"),
            (r#"say "hi""#, r#""say \"hi\"""#),
            ("it's", r#""it's""#),
            (r"back\slash", r#""back\\slash""#),
            ("ends with \\", r#""ends with \\""#),
            (";", r#"";""#),
            ("line\nbreak\ttab", r#""line\nbreak\ttab""#),
            ("bell\u{7}", r#""bell\x07""#),
        ] {
            assert_eq!(exec_word(word), expected, "for {word:?}");
        }
    }

    #[test]
    fn a_shell_script_becomes_one_sh_c_line() {
        let mut spec = test_spec("job");
        spec.command = Command::Shell(
            "echo \"cost: 5$ or 100%\"\nfor f in *.txt; do\n  cat \"$f\"\ndone\n".into(),
        );
        let (unit, _) = unit_of(vec![spec], "job");
        assert_eq!(
            lines(&unit, "ExecStart"),
            [
                r#"/bin/sh -c "echo \"cost: 5$$ or 100%%\"\nfor f in *.txt; do\n  cat \"$$f\"\ndone\n""#
            ]
        );
    }

    #[test]
    fn programs_are_made_absolute() {
        let mut found = test_spec("found");
        found.command = Command::Argv(vec!["python3".into(), "-V".into()]);
        let mut relative = test_spec("relative");
        relative.command = Command::Argv(vec!["./bin/../bin/server".into()]);
        relative.cwd = "/srv/app/web".into();
        let mut missing = test_spec("missing");
        missing.command = Command::Argv(vec!["nosuchtool".into()]);
        let specs = vec![found, relative, missing];
        let (unit, warnings) = unit_of(specs.clone(), "found");
        assert_eq!(lines(&unit, "ExecStart"), ["/usr/bin/python3 -V"]);
        let (unit, _) = unit_of(specs.clone(), "relative");
        assert_eq!(lines(&unit, "ExecStart"), ["/srv/app/web/bin/server"]);
        let (unit, _) = unit_of(specs, "missing");
        assert_eq!(lines(&unit, "ExecStart"), ["nosuchtool"]);
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("missing: cmd: `nosuchtool` was not found on PATH")),
            "{warnings:#?}"
        );
    }

    #[test]
    fn environment_is_quoted_and_the_env_file_is_referenced_not_copied() {
        let mut spec = test_spec("web");
        spec.env = [
            ("GREETING", "100% \"quoted\" $HOME \\ x"),
            ("SECRET", "from-the-file"),
            ("bad-name", "x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        spec.env_file = Some(EnvFile {
            path: "/srv/app/.env".into(),
            keys: ["SECRET".to_owned()].into(),
        });
        let (unit, warnings) = unit_of(vec![spec], "web");
        assert_eq!(
            lines(&unit, "Environment"),
            [r#""GREETING=100%% \"quoted\" $HOME \\ x""#]
        );
        assert_eq!(lines(&unit, "EnvironmentFile"), ["/srv/app/.env"]);
        assert!(!unit.contains("from-the-file"));
        let warnings: Vec<&String> = warnings.iter().filter(|w| w.contains(": env")).collect();
        assert_eq!(
            warnings,
            [
                "web: env: `bad-name` is not a name systemd accepts (letters, digits and `_`, not \
              starting with a digit); it is left out"
            ]
        );
    }

    #[test]
    fn restart_and_stop_policies() {
        let mut spec = test_spec("web");
        spec.restart = RestartPolicy::Always;
        spec.restart_delay = Duration::from_millis(250);
        spec.restart_delay_max = Duration::from_secs(10);
        spec.max_restarts = 4;
        spec.restart_window = Duration::from_secs(90);
        spec.success_exit_codes = vec![0, 3, 7];
        spec.stop_signal = Signal::parse("INT").unwrap();
        spec.kill_timeout = Duration::from_millis(1500);
        spec.kill_mode = KillMode::Process;
        let (unit, _) = unit_of(vec![spec], "web");
        for (key, value) in [
            ("Restart", "always"),
            ("RestartSec", "250ms"),
            // 250ms doubled 6 times passes 10s.
            ("RestartSteps", "6"),
            ("RestartMaxDelaySec", "10s"),
            ("StartLimitBurst", "5"),
            ("StartLimitIntervalSec", "90s"),
            ("SuccessExitStatus", "3 7"),
            ("KillSignal", "SIGINT"),
            ("TimeoutStopSec", "1500ms"),
            ("KillMode", "process"),
            ("Type", "exec"),
        ] {
            assert_eq!(lines(&unit, key), [value], "{key} in\n{unit}");
        }
    }

    #[test]
    fn a_task_remains_after_exit_and_has_no_restart_settings() {
        let mut spec = test_spec("migrate");
        spec.restart = RestartPolicy::Never;
        spec.ready = Some(Ready::Notify);
        spec.watchdog = Some(Duration::from_secs(5));
        let (unit, warnings) = unit_of(vec![spec], "migrate");
        assert_eq!(lines(&unit, "Type"), ["oneshot"]);
        assert!(lines(&unit, "WatchdogSec").is_empty(), "{unit}");
        assert!(lines(&unit, "NotifyAccess").is_empty(), "{unit}");
        let fields: Vec<&str> = warnings
            .iter()
            .filter_map(|w| w.strip_prefix("migrate: ")?.split(':').next())
            .collect();
        assert_eq!(fields, ["ready", "watchdog"]);
        assert_eq!(lines(&unit, "Restart"), ["no"]);
        assert_eq!(lines(&unit, "RemainAfterExit"), ["yes"]);
        assert_eq!(lines(&unit, "TimeoutStartSec"), ["infinity"]);
        for key in ["RestartSec", "RestartSteps", "StartLimitBurst"] {
            assert!(lines(&unit, key).is_empty(), "{key} in\n{unit}");
        }
    }

    #[test]
    fn conditions_map_to_oneshots_and_what_systemd_cannot_say_is_reported() {
        let mut build = test_spec("build");
        build.restart = RestartPolicy::OnFailure;
        let mut db = test_spec("db");
        db.restart = RestartPolicy::Always;
        db.ready = Some(Ready::Notify);
        let mut app = test_spec("app");
        app.depends_on = vec!["build".into(), "db".into()];
        app.conditions = [
            ("build".to_owned(), Condition::Completed),
            ("db".to_owned(), Condition::Started),
        ]
        .into();
        let mut tail = test_spec("tail");
        tail.depends_on = vec!["db".into()];
        tail.conditions = [("db".to_owned(), Condition::Completed)].into();
        let specs = vec![build, db, app, tail];

        // An on-failure service that a dependent waits to be `completed` is a oneshot that
        // may still restart on failure.
        let (unit, _) = unit_of(specs.clone(), "build");
        assert_eq!(lines(&unit, "Type"), ["oneshot"]);
        assert_eq!(lines(&unit, "Restart"), ["on-failure"]);
        assert_eq!(lines(&unit, "RemainAfterExit"), ["yes"]);
        let (unit, _) = unit_of(specs.clone(), "db");
        assert_eq!(lines(&unit, "Type"), ["notify"]);
        let (unit, warnings) = unit_of(specs, "app");
        assert_eq!(
            lines(&unit, "After"),
            ["app-build.service", "app-db.service"]
        );
        assert_eq!(
            lines(&unit, "Requires"),
            ["app-build.service", "app-db.service"]
        );
        let deps: Vec<&String> = warnings
            .iter()
            .filter(|w| w.contains(": depends_on: "))
            .collect();
        assert_eq!(deps.len(), 2, "{deps:#?}");
        assert!(deps[0].starts_with("app: depends_on: systemd starts this unit once `db`"));
        assert!(deps[1].starts_with("tail: depends_on: `db` restarts always"));
    }

    #[test]
    fn paths_are_normalized() {
        let mut web = test_spec("web");
        web.cwd = "/srv/app/units/../site/./static".into();
        web.env_file = Some(EnvFile {
            path: "/srv/app/units/../.env".into(),
            keys: Default::default(),
        });
        let (unit, _) = unit_of(vec![web], "web");
        assert_eq!(lines(&unit, "WorkingDirectory"), ["/srv/app/site/static"]);
        assert_eq!(lines(&unit, "EnvironmentFile"), ["/srv/app/.env"]);
    }

    #[test]
    fn user_units_are_wanted_by_default_target_and_run_as_the_user() {
        let mut web = test_spec("web");
        web.user = Some("www-data".into());
        let config = test_config(vec![web]);
        let export = export(
            &config,
            &Options {
                user: true,
                ..options()
            },
        );
        for unit in &export.units {
            assert_eq!(
                lines(&unit.text, "WantedBy"),
                ["default.target"],
                "{unit:?}"
            );
            assert!(lines(&unit.text, "User").is_empty(), "{unit:?}");
        }
        assert!(
            export
                .warnings
                .iter()
                .any(|w| w.service == "web" && w.field == "user"),
            "{:#?}",
            export.warnings
        );
    }

    #[test]
    fn readiness_dependencies_and_install() {
        let mut db = test_spec("db");
        db.ready = Some(Ready::Notify);
        db.watchdog = Some(Duration::from_secs(30));
        let mut web = test_spec("web");
        web.depends_on = vec!["db".into()];
        web.ready = Some(Ready::Exec(vec![
            "curl".into(),
            "-fs".into(),
            "it's".into(),
        ]));
        web.ready_timeout = Duration::from_secs(5);
        let mut manual = test_spec("manual");
        manual.autostart = false;
        let specs = vec![db, web, manual];

        let (unit, _) = unit_of(specs.clone(), "db");
        assert_eq!(lines(&unit, "Type"), ["notify"]);
        assert_eq!(lines(&unit, "NotifyAccess"), ["all"]);
        assert_eq!(lines(&unit, "WatchdogSec"), ["30s"]);
        assert_eq!(lines(&unit, "WantedBy"), ["multi-user.target"]);

        let (unit, _) = unit_of(specs.clone(), "web");
        assert_eq!(lines(&unit, "After"), ["app-db.service"]);
        assert_eq!(lines(&unit, "Requires"), ["app-db.service"]);
        assert_eq!(lines(&unit, "PartOf"), ["app-all.target"]);
        assert_eq!(lines(&unit, "Type"), ["exec"]);
        assert_eq!(
            lines(&unit, "ExecStartPost"),
            [r#"/bin/sh -c "until curl -fs 'it'\\''s' >/dev/null 2>&1; do sleep 0.1; done""#]
        );
        assert_eq!(lines(&unit, "TimeoutStartSec"), ["5s"]);

        let (unit, _) = unit_of(specs.clone(), "manual");
        assert!(!unit.contains("[Install]"));

        let export = export(&test_config(specs), &options());
        let target = export.units.last().unwrap();
        assert_eq!(target.name, "app-all.target");
        assert_eq!(
            lines(&target.text, "Wants"),
            ["app-db.service", "app-web.service"]
        );
    }

    #[test]
    fn what_systemd_cannot_express_is_reported() {
        let mut web = test_spec("web");
        web.ready = Some(Ready::Tcp("127.0.0.1:8000".into()));
        web.health = Some(Health {
            probe: crate::config::Probe::Tcp("127.0.0.1:8000".into()),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            retries: 3,
        });
        web.min_uptime = Duration::from_secs(5);
        web.failed_cooldown = Duration::ZERO;
        web.log_keep = 2;
        web.success_exit_codes = vec![1];
        let mut logs = test_spec("logs");
        logs.ready = Some(Ready::Log("listening".into()));
        let mut config = test_config(vec![web, logs]);
        config.settings.exit_when = Some(crate::config::ExitWhen::AnyFailed);
        let export = export(&config, &options());
        let fields: Vec<(String, &str)> = export
            .warnings
            .iter()
            .map(|w| (w.service.clone(), w.field))
            .collect();
        let expected = [
            ("logs", "ready"),
            ("web", "ready"),
            ("web", "success_exit_codes"),
            ("web", "health"),
            ("web", "min_uptime"),
            ("web", "failed_cooldown"),
            ("web", "log_max_size"),
            ("[runpm]", "exit_when"),
        ]
        .map(|(s, f)| (s.to_owned(), f));
        assert_eq!(fields, expected);
    }

    #[test]
    fn defaults_raise_no_warning_beyond_the_systemd_version_note() {
        let export = export(&test_config(vec![test_spec("a")]), &options());
        assert_eq!(export.warnings, []);
        assert!(export.units[0].text.contains("\nRestartSteps="));
    }

    #[test]
    fn keys_newer_than_the_target_systemd_are_left_out_and_reported() {
        let old = Options {
            systemd_version: 252,
            ..options()
        };
        let mut task = test_spec("task");
        task.restart = RestartPolicy::Never;
        let export = export(&test_config(vec![test_spec("a"), task]), &old);
        for unit in &export.units {
            assert!(!unit.text.contains("RestartSteps="), "{}", unit.text);
            assert!(!unit.text.contains("RestartMaxDelaySec="), "{}", unit.text);
        }
        assert_eq!(export.warnings.len(), 1, "{:#?}", export.warnings);
        let warning = export.warnings[0].to_string();
        assert!(
            warning.starts_with(
                "[export]: restart_delay_max: systemd 252 has no RestartSteps= and \
                 RestartMaxDelaySec= (they came with 254), so app-a.service wait"
            ),
            "{warning}"
        );
    }

    #[test]
    fn the_version_is_read_from_systemctl() {
        assert_eq!(
            parse_version("systemd 252 (252.38-1~deb12u1)\n+PAM +AUDIT\n"),
            Some(252)
        );
        assert_eq!(parse_version("systemd 256.7\n"), Some(256));
        assert_eq!(parse_version("systemd 255 (255.4-1ubuntu8)"), Some(255));
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("bash 5"), None);
    }

    #[test]
    fn prefixes_must_make_valid_unit_names() {
        assert_eq!(parse_prefix("shop-"), Ok("shop-".into()));
        assert_eq!(parse_prefix(""), Ok(String::new()));
        assert!(parse_prefix("my app-").is_err());
        assert!(parse_prefix("a@").is_err());
        assert!(parse_prefix("../").is_err());
    }

    #[test]
    fn durations_in_systemd_syntax() {
        for (d, expected) in [
            (Duration::ZERO, "0"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(300), "5min"),
            (Duration::from_micros(1500), "1500us"),
        ] {
            assert_eq!(duration(d), expected);
        }
    }

    #[test]
    fn stdout_form_separates_units() {
        let units = [
            Unit {
                name: "a.service".into(),
                text: "A\n".into(),
            },
            Unit {
                name: "b.target".into(),
                text: "B\n".into(),
            },
        ];
        assert_eq!(
            concatenate(&units),
            "# ---- a.service ----\nA\n\n# ---- b.target ----\nB\n"
        );
    }
}
