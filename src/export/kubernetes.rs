//! `runpmctl export kubernetes`: one Deployment whose single pod runs every service.
//!
//! runpm's services share one machine: they reach each other on `127.0.0.1`, and the whole
//! set is started and stopped together. A pod is the Kubernetes object with those
//! properties (one network namespace, one lifecycle), so every service becomes a container
//! of one pod, managed by a Deployment with one replica (`strategy: Recreate`, so two copies
//! of a service never run at once, as under runpm). A Deployment per service would need a
//! Kubernetes Service per dependency and addresses rewritten from `127.0.0.1` to service
//! names, which an export cannot do for the user.
//!
//! Regular containers in a pod have no start order. Init containers do: they run one after
//! the other, in the order listed, before the regular containers start. A service that others
//! depend on is therefore an init container, in dependency order, when everything it needs
//! is one too:
//!
//! - a task (`restart = "never"`, or `"on-failure"` with a dependent that waits for it to be
//!   `completed`) is a plain init container, which runs to completion before the next starts;
//! - a long-running service is a **native sidecar** (Kubernetes ≥ 1.29): an init container
//!   with `restartPolicy: Always`, which keeps running beside the pod's containers and lets
//!   the next one start once its `startupProbe` (from `ready`) has passed, so a `ready`
//!   dependency is honoured as under runpm.
//!
//! Only a dependency that cannot be placed there (it needs a regular container itself) is
//! reported: then the dependent must wait for it by itself.
//!
//! Probes: `ready` (tcp or exec) becomes a `startupProbe` polling every second for
//! `ready_timeout` (Kubernetes then restarts the container, where runpm counts a failed start)
//! and a `readinessProbe` with the same check; `health` becomes a `livenessProbe` with its
//! interval, timeout and retries.
//!
//! Kubernetes expands `$(NAME)` in `command`, `args` and `env` values, so a `$` before `(` or
//! another `$` is doubled: the container gets exactly the argv runpm would run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use camino::Utf8PathBuf;
use serde_json::{Map, Value, json};

use super::{Warning, is_local_host, split_host_port};
use crate::config::{
    Command, Condition, Config, Probe, Ready, RestartPolicy, ServiceSpec, defaults,
};

/// The image used when none is given: obviously a placeholder, so the manifest cannot be
/// applied by accident without choosing one.
pub const PLACEHOLDER_IMAGE: &str = "REPLACE-ME:latest";

/// Where the project's files are expected inside the image when not told otherwise.
pub const DEFAULT_WORKDIR: &str = "/app";

pub struct Options {
    /// The Deployment's name [default: the config's directory name].
    pub name: Option<String>,
    /// The image every container runs (one image holding the whole project, as on the
    /// machine runpm ran on).
    pub image: Option<String>,
    /// Where the config's directory is in the image; `cwd`s are mapped below it.
    pub workdir: Utf8PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            name: None,
            image: None,
            workdir: DEFAULT_WORKDIR.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The Deployment, as JSON (which is also YAML); [`render`] writes it as YAML.
    pub manifest: Value,
    pub warnings: Vec<Warning>,
    /// A CronJob per scheduled service, written after the Deployment.
    pub cron_jobs: Vec<Value>,
}

/// How a service ends up in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An init container that runs to completion before the next one starts.
    Init,
    /// A native sidecar: an init container with `restartPolicy: Always`.
    Sidecar,
    Container,
    Omitted,
}

impl Role {
    /// Whether the service is listed in `initContainers`, before every regular container.
    fn starts_first(self) -> bool {
        matches!(self, Role::Init | Role::Sidecar)
    }
}

/// The Deployment for `config`.
pub fn export(config: &Config, options: &Options) -> Export {
    let mut warnings = Vec::new();
    let order = config.start_order();
    let roles = roles(config, &order);

    let mut init_containers = Vec::new();
    let mut containers = Vec::new();
    let image = options.image.clone().unwrap_or_else(|| {
        warnings.push(Warning::new(
            "[export]",
            "image",
            format!(
                "no --image given: every container uses the placeholder `{PLACEHOLDER_IMAGE}`; \
                 use an image that holds the project at {} (see --workdir)",
                options.workdir
            ),
        ));
        PLACEHOLDER_IMAGE.to_owned()
    });
    let names = container_names(config, &order, &mut warnings);
    let deployment = deployment_name(config, options);
    let mut cron_jobs = Vec::new();
    let mut grace = Duration::from_secs(1);
    for &name in &order {
        let spec = &config.services[name];
        let role = roles[name];
        if let Some(group) = &spec.replica_of
            && spec.name.ends_with(".0")
        {
            let count = config
                .services
                .values()
                .filter(|s| s.replica_of.as_ref() == Some(group))
                .count();
            warnings.push(Warning::new(
                group,
                "replicas",
                super::kubernetes_kinds::replicas_note(group, count),
            ));
        }
        if let Some(schedule) = &spec.schedule {
            let mut warn = |field: &'static str, message: String| {
                warnings.push(Warning::new(name, field, message));
            };
            let c = container(
                config,
                spec,
                &names[name],
                &image,
                Role::Container,
                options,
                &mut warn,
            );
            cron_jobs.extend(super::kubernetes_kinds::cron_job(
                &deployment,
                spec,
                schedule,
                c,
                &mut warn,
            ));
            continue;
        }
        if role == Role::Omitted {
            warnings.push(Warning::new(
                name,
                "autostart",
                "left out: a pod starts all its containers, and nothing starts one later by \
                 hand; add it yourself (or as a Job) if it is needed",
            ));
            continue;
        }
        let mut warn = |field: &'static str, message: String| {
            warnings.push(Warning::new(name, field, message));
        };
        let container = container(config, spec, &names[name], &image, role, options, &mut warn);
        dependencies(spec, &roles, &mut warn);
        restart(spec, role, &mut warn);
        unmapped(spec, &mut warn);
        grace = grace.max(spec.kill_timeout);
        if role.starts_first() {
            init_containers.push(container);
        } else {
            containers.push(container);
        }
    }
    if containers.is_empty() {
        warnings.push(Warning::new(
            "[export]",
            "autostart",
            "no service starts automatically, so the pod has no containers and Kubernetes will \
             reject it",
        ));
    }
    if config.settings.exit_when.is_some() {
        warnings.push(Warning::new(
            "[runpm]",
            "exit_when",
            "a Deployment keeps its pod running; for a run-to-completion workload, put the \
             containers in a Job instead",
        ));
    }

    let name = deployment_name(config, options);
    let labels = json!({ "app.kubernetes.io/name": name });
    let mut pod = Map::new();
    pod.insert(
        "terminationGracePeriodSeconds".into(),
        json!(whole_seconds(grace)),
    );
    if !init_containers.is_empty() {
        pod.insert("initContainers".into(), Value::Array(init_containers));
    }
    pod.insert("containers".into(), Value::Array(containers));
    let manifest = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "replicas": 1,
            "strategy": { "type": "Recreate" },
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": pod,
            },
        },
    });
    Export {
        manifest,
        warnings,
        cron_jobs,
    }
}

/// The manifest as YAML, after a comment naming its source.
pub fn render(config: &Config, export: &Export) -> String {
    let mut out = format!(
        "# Generated by `runpmctl export kubernetes` from {}.\n{}",
        config.source,
        super::to_yaml(&export.manifest)
    );
    for job in &export.cron_jobs {
        out.push_str("---\n");
        out.push_str(&super::to_yaml(job));
    }
    out
}

/// Init containers and sidecars: the services an autostart service depends on whose own
/// dependencies start first too (init containers run before any regular container exists).
fn roles<'a>(config: &'a Config, order: &[&'a str]) -> BTreeMap<&'a str, Role> {
    let dependents = config.services.values().filter(|s| s.autostart);
    let mut depended_on = BTreeSet::new();
    let mut completed = BTreeSet::new();
    for spec in dependents {
        for dep in &spec.depends_on {
            depended_on.insert(dep.as_str());
            if spec.condition(dep) == Condition::Completed {
                completed.insert(dep.as_str());
            }
        }
    }
    let mut roles = BTreeMap::new();
    for &name in order {
        let spec = &config.services[name];
        let first = depended_on.contains(name)
            && spec.depends_on.iter().all(|d| {
                roles
                    .get(d.as_str())
                    .is_some_and(|r: &Role| r.starts_first())
            });
        let role = if !spec.autostart {
            Role::Omitted
        } else if !first {
            Role::Container
        } else if spec.restart == RestartPolicy::Never
            || (spec.restart == RestartPolicy::OnFailure && completed.contains(name))
        {
            Role::Init
        } else {
            Role::Sidecar
        };
        roles.insert(name, role);
    }
    // There is always a regular container when anything is exported: a service no autostart
    // service depends on (the end of every dependency chain) is never an init container.
    roles
}

fn container(
    config: &Config,
    spec: &ServiceSpec,
    name: &str,
    image: &str,
    role: Role,
    options: &Options,
    warn: &mut impl FnMut(&'static str, String),
) -> Value {
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    c.insert("image".into(), json!(image));
    let argv: Vec<String> = spec.command.argv().iter().map(|a| escape(a)).collect();
    match &spec.command {
        Command::Argv(_) => {
            c.insert("command".into(), json!(argv[..1]));
            if argv.len() > 1 {
                c.insert("args".into(), json!(argv[1..]));
            }
        }
        Command::Shell(_) => {
            c.insert("command".into(), json!(argv));
        }
    }
    c.insert(
        "workingDir".into(),
        json!(working_dir(config, spec, options, warn)),
    );
    if !spec.env.is_empty() {
        let env: Vec<Value> = spec
            .env
            .iter()
            .map(|(k, v)| json!({ "name": k, "value": escape(v) }))
            .collect();
        c.insert("env".into(), Value::Array(env));
    }
    if let Some(file) = &spec.env_file {
        warn(
            "env_file",
            format!(
                "the variables of `{}` ({}) are written into the manifest as plain values; \
                 for secrets, create a Secret from the file and use `envFrom`",
                file.path,
                file.keys.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }

    if let Some(resources) = super::resources::kubernetes(spec, warn) {
        c.insert("resources".into(), resources);
    }
    if role == Role::Sidecar {
        // Kubernetes restarts a sidecar whenever it exits, and starts the next init container
        // once this one's startupProbe has passed (at once without one).
        c.insert("restartPolicy".into(), json!("Always"));
    }
    if role == Role::Init {
        if spec.ready.is_some() {
            warn(
                "ready",
                "an init container has no probes: it is done when it exits 0".into(),
            );
        }
        if spec.health.is_some() {
            warn(
                "health",
                "an init container has no probes: it is done when it exits 0".into(),
            );
        }
        return Value::Object(c);
    }

    let ready = match &spec.ready {
        None => None,
        Some(Ready::Tcp(address)) => tcp_probe(address, "ready", warn),
        Some(Ready::Exec(argv)) => Some(json!({ "exec": { "command": argv } })),
        Some(Ready::Http(check)) => http_probe(check, "ready", warn),
        Some(Ready::Notify) => {
            warn(
                "ready",
                "Kubernetes has no sd_notify: the container counts as ready once it runs; add a \
                 readinessProbe that asks the service itself (e.g. `redis-cli ping`)"
                    .into(),
            );
            None
        }
        Some(Ready::Log(_)) => {
            warn(
                "ready",
                "Kubernetes cannot watch output for readiness: the container counts as ready \
                 once it runs; add a tcpSocket or exec readinessProbe"
                    .into(),
            );
            None
        }
    };
    if let Some(check) = ready {
        // The startup probe is runpm's readiness wait: polled every second for ready_timeout,
        // then the container is restarted. The readiness probe keeps checking afterwards.
        let mut startup = check.clone();
        startup["periodSeconds"] = json!(1);
        startup["failureThreshold"] = json!(whole_seconds(spec.ready_timeout).max(1));
        c.insert("startupProbe".into(), startup);
        c.insert("readinessProbe".into(), check);
    }
    if let Some(health) = &spec.health {
        let check = match &health.probe {
            Probe::Tcp(address) => tcp_probe(address, "health", warn),
            Probe::Exec(argv) => Some(json!({ "exec": { "command": argv } })),
            Probe::Http(check) => http_probe(check, "health", warn),
        };
        if let Some(mut check) = check {
            for (field, value) in [("interval", health.interval), ("timeout", health.timeout)] {
                if value.subsec_nanos() != 0 {
                    warn(
                        "health",
                        format!(
                            "Kubernetes counts probe times in whole seconds: the {field} {} is \
                             rounded up to {}s",
                            humantime::format_duration(value),
                            whole_seconds(value).max(1)
                        ),
                    );
                }
            }
            check["periodSeconds"] = json!(whole_seconds(health.interval).max(1));
            check["timeoutSeconds"] = json!(whole_seconds(health.timeout).max(1));
            check["failureThreshold"] = json!(health.retries.max(1));
            c.insert("livenessProbe".into(), check);
        }
    }
    Value::Object(c)
}

/// `tcpSocket` on the port of `address`, which must be the pod itself.
fn tcp_probe(
    address: &str,
    field: &'static str,
    warn: &mut impl FnMut(&'static str, String),
) -> Option<Value> {
    match split_host_port(address) {
        Some((host, port)) if is_local_host(host) => Some(json!({ "tcpSocket": { "port": port } })),
        Some((host, _)) => {
            warn(
                field,
                format!(
                    "`{address}` is not this pod (host `{host}`); a tcpSocket probe checks a \
                     port of the pod itself, so none was written"
                ),
            );
            None
        }
        None => {
            warn(
                field,
                format!("`{address}` is not HOST:PORT; no probe written"),
            );
            None
        }
    }
}

/// An `httpGet` probe for an HTTP check of the pod itself. Kubernetes accepts 200..399,
/// runpm's default; a `status` list cannot be said and is warned about.
fn http_probe(
    check: &crate::config::HttpCheck,
    field: &'static str,
    warn: &mut impl FnMut(&'static str, String),
) -> Option<Value> {
    let url = match crate::config::parse_http_url(&check.url) {
        Ok(url) => url,
        Err(e) => {
            warn(field, format!("{e}; no probe written"));
            return None;
        }
    };
    if !is_local_host(url.host.trim_start_matches('[').trim_end_matches(']')) {
        warn(
            field,
            format!(
                "`{}` is not this pod (host `{}`); an httpGet probe checks the pod itself, so \
                 none was written",
                check.url, url.host
            ),
        );
        return None;
    }
    if !check.status.is_empty() {
        warn(
            field,
            "an httpGet probe accepts any status from 200 to 399, not only the listed `status`"
                .into(),
        );
    }
    Some(json!({ "httpGet": { "path": url.path, "port": url.port } }))
}

/// The service's `cwd` inside the image: below `--workdir` as it is below the config's
/// directory on this machine.
fn working_dir(
    config: &Config,
    spec: &ServiceSpec,
    options: &Options,
    warn: &mut impl FnMut(&'static str, String),
) -> String {
    match spec.cwd.strip_prefix(&config.base_dir) {
        Ok(relative) if relative.as_str().is_empty() => options.workdir.to_string(),
        Ok(relative) => options.workdir.join(relative).to_string(),
        Err(_) => {
            warn(
                "cwd",
                format!(
                    "`{}` is outside the project directory `{}`, so it is kept as it is; the \
                     image must have it",
                    spec.cwd, config.base_dir
                ),
            );
            spec.cwd.to_string()
        }
    }
}

/// Reports the dependencies that the containers' start order does not honour.
fn dependencies(
    spec: &ServiceSpec,
    roles: &BTreeMap<&str, Role>,
    warn: &mut impl FnMut(&'static str, String),
) {
    for dep in &spec.depends_on {
        let condition = spec.condition(dep);
        match roles.get(dep.as_str()) {
            // Init containers have completed before the next one or any regular container
            // starts: `completed`, and so `ready` and `started`, hold.
            Some(Role::Init) => {}
            // A sidecar lets the next container start once its startupProbe has passed.
            Some(Role::Sidecar) => match condition {
                Condition::Ready | Condition::Started => {}
                Condition::Completed => warn(
                    "depends_on",
                    format!(
                        "`{dep}` restarts always, so it never completes; it runs as a sidecar \
                         and this container starts once it has started"
                    ),
                ),
            },
            Some(Role::Omitted) => warn(
                "depends_on",
                format!("`{dep}` is not exported (autostart = false)"),
            ),
            _ => warn(
                "depends_on",
                format!(
                    "containers of a pod start together, so this one may start before `{dep}` \
                     is ready: it must retry until `{dep}` answers (`{dep}` needs a regular \
                     container itself, so it cannot start first as an init container or \
                     sidecar)"
                ),
            ),
        }
    }
}

fn restart(spec: &ServiceSpec, role: Role, warn: &mut impl FnMut(&'static str, String)) {
    match (role, spec.restart) {
        (Role::Init, _) | (_, RestartPolicy::Always) => {}
        (_, RestartPolicy::OnFailure) => warn(
            "restart",
            "a Deployment's pod has `restartPolicy: Always`: the container is restarted after \
             every exit, a successful one too"
                .into(),
        ),
        (_, RestartPolicy::Never) => warn(
            "restart",
            "a Deployment's pod has `restartPolicy: Always`: this task is run again every time \
             it exits; run it as a Job, or make a service depend on it so it becomes an init \
             container"
                .into(),
        ),
    }
}

/// Warnings for the settings Kubernetes has no field for.
fn unmapped(spec: &ServiceSpec, warn: &mut impl FnMut(&'static str, String)) {
    // Socket activation and the fd store (issue 14) have nothing to hold them in a pod.
    if !spec.listen.is_empty() {
        let addresses: Vec<String> = spec.listen.iter().map(|l| l.address.to_string()).collect();
        warn(
            "listen",
            format!(
                "Kubernetes has no socket activation: the program gets no LISTEN_FDS and must \
                 bind {} itself, and connections are refused while the container restarts \
                 (run several replicas behind a Service with a readinessProbe instead)",
                addresses.join(", ")
            ),
        );
    }
    if spec.fd_store_max > 0 {
        warn(
            "fd_store_max",
            "Kubernetes keeps no descriptors for a container: FDSTORE=1 goes nowhere and a \
             restarted container starts without what it stored"
                .into(),
        );
    }
    let restarts = spec.restart != RestartPolicy::Never;
    let backoff = "Kubernetes restarts with its own back-off (10s doubling up to 5 minutes, \
                   reset after 10 minutes of running)";
    if restarts && spec.restart_delay != defaults::RESTART_DELAY {
        warn("restart_delay", backoff.into());
    }
    if restarts && spec.restart_delay_max != defaults::RESTART_DELAY_MAX {
        warn("restart_delay_max", backoff.into());
    }
    if restarts && spec.min_uptime != defaults::MIN_UPTIME {
        warn("min_uptime", backoff.into());
    }
    if restarts
        && (spec.max_restarts != defaults::MAX_RESTARTS
            || spec.restart_window != defaults::RESTART_WINDOW)
    {
        warn(
            "max_restarts",
            "Kubernetes never gives up restarting a container (it backs off instead)".into(),
        );
    }
    if restarts && spec.failed_cooldown != defaults::FAILED_COOLDOWN {
        warn(
            "failed_cooldown",
            "Kubernetes never marks a container failed for good".into(),
        );
    }
    if spec.success_exit_codes != [0] {
        warn(
            "success_exit_codes",
            "Kubernetes does not look at exit codes under `restartPolicy: Always` (and an init \
             container must exit 0)"
                .into(),
        );
    }
    if spec.stop_signal.name() != "SIGTERM" {
        warn(
            "stop_signal",
            format!(
                "Kubernetes stops containers with SIGTERM; to stop with {} use the image's \
                 STOPSIGNAL or a preStop hook",
                spec.stop_signal.name()
            ),
        );
    }
    if spec.clear_env {
        warn(
            "clear_env",
            "a container starts with its image's environment and Kubernetes' own variables; \
             they cannot be cleared"
                .into(),
        );
    }
    if let Some(user) = &spec.user {
        warn(
            "user",
            format!(
                "Kubernetes needs a numeric uid: set `securityContext.runAsUser` to the uid of \
                 `{user}` in the image"
            ),
        );
    }
    if let Some(group) = &spec.group {
        warn(
            "group",
            format!(
                "Kubernetes needs a numeric gid: set `securityContext.runAsGroup` to the gid of \
                 `{group}` in the image"
            ),
        );
    }
    if spec.watchdog.is_some() {
        warn(
            "watchdog",
            "Kubernetes has no sd_notify watchdog; a `health` check maps to a livenessProbe".into(),
        );
    }
    if spec.log_max_size != defaults::LOG_MAX_SIZE || spec.log_keep != defaults::LOG_KEEP {
        warn(
            "log_max_size",
            "the kubelet keeps and rotates container logs (containerLogMaxSize, \
             containerLogMaxFiles), not per container"
                .into(),
        );
    }
}

/// Container names must be DNS labels: lowercase letters, digits and `-`, at most 63. Names
/// that change are reported, and clashes get a number.
fn container_names<'a>(
    config: &'a Config,
    order: &[&'a str],
    warnings: &mut Vec<Warning>,
) -> BTreeMap<&'a str, String> {
    let mut taken = BTreeSet::new();
    let mut names = BTreeMap::new();
    for &name in order {
        let base = dns_label(name);
        let mut candidate = base.clone();
        let mut n = 2;
        while !taken.insert(candidate.clone()) {
            candidate = format!("{}-{n}", &base[..base.len().min(60)]);
            n += 1;
        }
        if candidate != name && config.services[name].autostart {
            warnings.push(Warning::new(
                name,
                "name",
                format!("container names must be DNS labels: named `{candidate}`"),
            ));
        }
        names.insert(name, candidate);
    }
    names
}

fn deployment_name(config: &Config, options: &Options) -> String {
    let given = options
        .name
        .clone()
        .or_else(|| config.base_dir.file_name().map(str::to_owned))
        .unwrap_or_default();
    let label = dns_label(&given);
    if label.is_empty() {
        "runpm".into()
    } else {
        label
    }
}

/// `name` as an RFC 1123 label (empty when nothing of it is usable).
pub(super) fn dns_label(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let mut label: String = trimmed.chars().take(63).collect();
    while label.ends_with('-') {
        label.pop();
    }
    label
}

/// Doubles a `$` that Kubernetes' `$(VAR)` expansion would otherwise consume: before `(` or
/// another `$` (a lone `$` followed by anything else is kept as it is by Kubernetes).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('(' | '$')) {
            out.push('$');
        }
    }
    out
}

/// Whole seconds, rounded up.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnvFile, Health, Signal};
    use crate::export::{test_config, test_spec};

    fn options() -> Options {
        Options {
            name: None,
            image: Some("example/app:1".into()),
            workdir: "/app".into(),
        }
    }

    fn pod(export: &Export) -> &Value {
        &export.manifest["spec"]["template"]["spec"]
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array()
            .map(|l| l.iter().map(|c| c["name"].as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    fn fields(export: &Export) -> Vec<(String, &'static str)> {
        export
            .warnings
            .iter()
            .map(|w| (w.service.clone(), w.field))
            .collect()
    }

    fn task(name: &str, deps: &[&str]) -> ServiceSpec {
        let mut spec = test_spec(name);
        spec.restart = RestartPolicy::Never;
        spec.depends_on = deps.iter().map(|d| d.to_string()).collect();
        spec
    }

    fn server(name: &str, deps: &[&str]) -> ServiceSpec {
        let mut spec = test_spec(name);
        spec.restart = RestartPolicy::Always;
        spec.depends_on = deps.iter().map(|d| d.to_string()).collect();
        spec
    }

    #[test]
    fn one_deployment_with_a_container_per_service() {
        let mut web = server("web", &[]);
        web.command = Command::Argv(vec!["python3".into(), "-m".into(), "http.server".into()]);
        web.cwd = "/srv/app/site".into();
        web.env = [("PORT".to_owned(), "8000".to_owned())].into();
        let mut job = server("job", &[]);
        job.command = Command::Shell("echo $((1 + 1)) $HOME $$".into());
        job.kill_timeout = Duration::from_millis(25_500);
        let export = export(&test_config(vec![web, job]), &options());
        let m = &export.manifest;
        assert_eq!(m["apiVersion"], "apps/v1");
        assert_eq!(m["kind"], "Deployment");
        assert_eq!(m["metadata"]["name"], "app");
        assert_eq!(m["spec"]["replicas"], 1);
        assert_eq!(m["spec"]["strategy"]["type"], "Recreate");
        assert_eq!(
            m["spec"]["selector"]["matchLabels"],
            m["spec"]["template"]["metadata"]["labels"]
        );
        let pod = pod(&export);
        assert_eq!(pod["terminationGracePeriodSeconds"], 26);
        assert_eq!(names(&pod["containers"]), ["job", "web"]);
        let job = &pod["containers"][0];
        assert_eq!(
            job["command"],
            json!(["/bin/sh", "-c", "echo $$((1 + 1)) $HOME $$$"])
        );
        assert_eq!(job["workingDir"], "/app");
        let web = &pod["containers"][1];
        assert_eq!(web["image"], "example/app:1");
        assert_eq!(web["command"], json!(["python3"]));
        assert_eq!(web["args"], json!(["-m", "http.server"]));
        assert_eq!(web["workingDir"], "/app/site");
        assert_eq!(web["env"], json!([{"name": "PORT", "value": "8000"}]));
        assert!(export.warnings.is_empty(), "{:#?}", export.warnings);
    }

    #[test]
    fn dependencies_start_first_as_init_containers_and_native_sidecars() {
        let mut db = server("db", &[]);
        db.ready = Some(Ready::Tcp("127.0.0.1:5432".into()));
        db.ready_timeout = Duration::from_secs(20);
        let mut build = test_spec("build");
        build.restart = RestartPolicy::OnFailure;
        let mut web = server("web", &["build", "seed", "warmup", "cache"]);
        web.conditions = [("build".to_owned(), Condition::Completed)].into();
        let mut manual = server("manual", &[]);
        manual.autostart = false;
        let specs = vec![
            task("schema", &[]),
            task("seed", &["schema"]),
            db,
            // Needs a running db, which starts first as a sidecar.
            task("warmup", &["db"]),
            build,
            // Needs a service that is not exported, so it cannot start first.
            server("cache", &["manual"]),
            web,
            // Nothing depends on it: a container, restarted (reported).
            task("report", &[]),
            manual,
        ];
        let export = export(&test_config(specs), &options());
        let pod = pod(&export);
        assert_eq!(
            names(&pod["initContainers"]),
            ["build", "db", "schema", "seed", "warmup"]
        );
        assert_eq!(names(&pod["containers"]), ["cache", "report", "web"]);
        let init = |name: &str| {
            pod["initContainers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap()
        };
        // The long-running db is a native sidecar that lets the next one start once ready.
        assert_eq!(init("db")["restartPolicy"], "Always");
        assert_eq!(
            init("db")["startupProbe"],
            json!({"tcpSocket": {"port": 5432}, "periodSeconds": 1, "failureThreshold": 20})
        );
        // Tasks, and an on-failure service that web waits to be `completed`, run to the end.
        for name in ["build", "schema", "seed", "warmup"] {
            assert!(init(name).get("restartPolicy").is_none(), "{name}");
        }
        let fields = fields(&export);
        assert!(
            fields.contains(&("report".to_owned(), "restart")),
            "{fields:?}"
        );
        // Only the dependency that could not start first is reported.
        let deps: Vec<&Warning> = export
            .warnings
            .iter()
            .filter(|w| w.field == "depends_on")
            .collect();
        assert_eq!(deps.len(), 2, "{deps:#?}");
        assert_eq!(deps[0].service, "cache");
        assert!(deps[0].message.contains("`manual` is not exported"));
        assert_eq!(deps[1].service, "web");
        assert!(deps[1].message.contains("before `cache` is ready"));
    }

    #[test]
    fn a_completed_dependency_that_always_restarts_is_a_sidecar_and_reported() {
        let mut app = server("app", &["db"]);
        app.conditions = [("db".to_owned(), Condition::Completed)].into();
        let export = export(&test_config(vec![server("db", &[]), app]), &options());
        assert_eq!(names(&pod(&export)["initContainers"]), ["db"]);
        assert_eq!(fields(&export), [("app".to_owned(), "depends_on")]);
        assert!(export.warnings[0].message.contains("never completes"));
    }

    #[test]
    fn a_config_with_nothing_to_start_is_reported() {
        let mut a = task("a", &[]);
        a.autostart = false;
        let export = export(&test_config(vec![a]), &options());
        assert_eq!(
            fields(&export),
            [
                ("a".to_owned(), "autostart"),
                ("[export]".to_owned(), "autostart")
            ]
        );
    }

    #[test]
    fn ready_and_health_become_probes() {
        let mut web = server("web", &[]);
        web.ready = Some(Ready::Tcp("127.0.0.1:8000".into()));
        web.ready_timeout = Duration::from_millis(4500);
        web.health = Some(Health {
            probe: Probe::Exec(vec!["curl".into(), "-fs".into(), "$(x)".into()]),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(3),
            retries: 4,
        });
        let mut api = server("api", &[]);
        api.ready = Some(Ready::Exec(vec!["check".into()]));
        api.health = Some(Health {
            probe: Probe::Tcp("localhost:9000".into()),
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
            retries: 0,
        });
        let export = export(&test_config(vec![web, api]), &options());
        let pod = pod(&export);
        let api = &pod["containers"][0];
        let web = &pod["containers"][1];
        assert_eq!(
            web["startupProbe"],
            json!({"tcpSocket": {"port": 8000}, "periodSeconds": 1, "failureThreshold": 5})
        );
        assert_eq!(web["readinessProbe"], json!({"tcpSocket": {"port": 8000}}));
        assert_eq!(
            web["livenessProbe"],
            // Probes are not expanded by Kubernetes, so `$(x)` stays as it is.
            json!({"exec": {"command": ["curl", "-fs", "$(x)"]}, "periodSeconds": 15,
                   "timeoutSeconds": 3, "failureThreshold": 4})
        );
        assert_eq!(
            api["readinessProbe"],
            json!({"exec": {"command": ["check"]}})
        );
        assert_eq!(
            api["livenessProbe"],
            json!({"tcpSocket": {"port": 9000}, "periodSeconds": 1, "timeoutSeconds": 1,
                   "failureThreshold": 1})
        );
        assert_eq!(fields(&export), [("api".to_owned(), "health")]);
    }

    #[test]
    fn what_kubernetes_cannot_express_is_reported() {
        let mut redis = server("redis", &[]);
        redis.ready = Some(Ready::Notify);
        redis.watchdog = Some(Duration::from_secs(10));
        let mut remote = server("remote", &[]);
        remote.ready = Some(Ready::Tcp("db.example:5432".into()));
        let mut logs = test_spec("logs");
        logs.ready = Some(Ready::Log("up".into()));
        logs.stop_signal = Signal::parse("QUIT").unwrap();
        logs.user = Some("www-data".into());
        logs.clear_env = true;
        logs.env = [("K".to_owned(), "v".to_owned())].into();
        logs.env_file = Some(EnvFile {
            path: "/srv/app/.env".into(),
            keys: ["K".to_owned()].into(),
        });
        logs.restart_delay = Duration::from_secs(1);
        logs.max_restarts = 3;
        logs.success_exit_codes = vec![0, 2];
        let mut manual = server("Manual_Tool", &[]);
        manual.autostart = false;
        let mut odd = server("Odd_Name", &[]);
        odd.cwd = "/elsewhere".into();
        let mut config = test_config(vec![redis, remote, logs, manual, odd]);
        config.settings.exit_when = Some(crate::config::ExitWhen::AnyFailed);
        let export = export(
            &config,
            &Options {
                image: None,
                ..options()
            },
        );
        let expected = [
            ("[export]", "image"),
            ("Odd_Name", "name"),
            ("Manual_Tool", "autostart"),
            ("Odd_Name", "cwd"),
            ("logs", "env_file"),
            ("logs", "ready"),
            ("logs", "restart"),
            ("logs", "restart_delay"),
            ("logs", "max_restarts"),
            ("logs", "success_exit_codes"),
            ("logs", "stop_signal"),
            ("logs", "clear_env"),
            ("logs", "user"),
            ("redis", "ready"),
            ("redis", "watchdog"),
            ("remote", "ready"),
            ("[runpm]", "exit_when"),
        ]
        .map(|(s, f)| (s.to_owned(), f));
        assert_eq!(fields(&export), expected);
        let pod = pod(&export);
        assert_eq!(
            names(&pod["containers"]),
            ["odd-name", "logs", "redis", "remote"]
        );
        assert_eq!(pod["containers"][0]["image"], PLACEHOLDER_IMAGE);
        assert!(pod["containers"][3].get("readinessProbe").is_none());
    }

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_label("web"), "web");
        assert_eq!(dns_label("My_App.v2"), "my-app-v2");
        assert_eq!(dns_label("-x-"), "x");
        assert_eq!(dns_label(&"a".repeat(80)).len(), 63);
        assert_eq!(dns_label("___"), "");
        let config = test_config(vec![test_spec("a_b"), test_spec("a.b"), test_spec("a-b")]);
        let mut warnings = Vec::new();
        let order = config.start_order();
        let names = container_names(&config, &order, &mut warnings);
        let mut taken: Vec<&String> = names.values().collect();
        taken.sort();
        assert_eq!(taken, ["a-b", "a-b-2", "a-b-3"]);
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn dollars_survive_kubernetes_expansion() {
        // Kubernetes reads `$$` as `$` and `$(NAME)` as a variable; any other `$` is literal.
        for (raw, escaped) in [
            ("$HOME", "$HOME"),
            ("$(date)", "$$(date)"),
            ("$$", "$$$"),
            ("cost 5$", "cost 5$"),
            ("$((1+1))", "$$((1+1))"),
        ] {
            assert_eq!(escape(raw), escaped, "for {raw:?}");
        }
    }
}
