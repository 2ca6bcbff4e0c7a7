//! docker compose files (`compose.yaml`, `docker-compose.yml`).
//!
//! | compose                                   | runpm                                        |
//! |-------------------------------------------|----------------------------------------------|
//! | `command`/`entrypoint` list               | `cmd` (entrypoint first)                     |
//! | `command`/`entrypoint` string             | `shell` (compose splits it into words itself; `sh -c` runs the same words) |
//! | `environment` (map or `K=V` list)         | `env` (`${VAR}` kept as written: warned)     |
//! | `env_file` (string, list, long form)      | `env_file` (runpm takes one file)            |
//! | `working_dir`                             | `cwd` when the directory exists here         |
//! | `depends_on` list / conditions            | `depends_on`: `started`, `ready`, `completed` |
//! | `restart` no/always/on-failure[:N]/unless-stopped | `restart` never/always/on-failure (+`max_restarts`)/always |
//! | `healthcheck` CMD/CMD-SHELL/NONE, timing  | `health`, and `ready` when a dependent waits for `service_healthy` |
//! | `stop_signal`, `stop_grace_period`        | `stop_signal`, `kill_timeout`                |
//! | `user` (`name[:group]`)                   | `user`, `group` when they exist here          |
//! | `profiles`, `deploy.replicas`/`scale`     | `profiles`, `replicas`                       |
//! | `deploy.resources.limits` memory/cpus/pids, `mem_limit`, `cpus`, `pids_limit` | `memory_max`, `cpu_max`, `pids_max` |
//! | `ulimits`                                 | `rlimits`                                    |
//!
//! Compose's default is not to restart: an absent `restart` becomes `restart = "never"`.
//! What only a container has (`image`, `build`, `ports`, `volumes`, networks…) is reported per
//! service with what to do instead. A service with no command (its image's default) gets a
//! placeholder that says so and does not start by itself.

use std::collections::BTreeSet;
use std::time::Duration;

use super::error::ImportError;
use super::model::{Command, Health, Imported, Limit, Note, Probe, Service};
use super::words::{binary_size, go_duration, shell_join};
use super::yaml::{self, Node, Value};
use super::{Source, account_exists, service_name};
use crate::config::{Condition, RestartPolicy, Signal};

pub(super) fn import(source: &Source, imported: &mut Imported) -> Result<(), ImportError> {
    let file = source.file.as_str();
    let doc = yaml::parse(file, &source.text)?;
    let Some(services) = doc.get("services") else {
        return Err(doc.invalid(file, "a compose file needs a top-level `services` mapping"));
    };
    for (key, _, _) in doc.entries() {
        match key.as_str() {
            "services" | "version" | "name" => {}
            k if k.starts_with("x-") => {}
            "networks" | "volumes" | "secrets" | "configs" => imported.notes.push(Note {
                file: file.to_owned(),
                message: format!(
                    "top-level `{key}` is not imported: runpm's services use this machine's \
                     {} directly",
                    if key == "networks" {
                        "network"
                    } else {
                        "files"
                    }
                ),
            }),
            other => imported.notes.push(Note {
                file: file.to_owned(),
                message: format!("top-level `{other}` is not imported: runpm has no equivalent"),
            }),
        }
    }
    let mut healthy_waited = BTreeSet::new();
    let mut built = Vec::new();
    for (name, _, node) in services.map(file, "services")? {
        let service = one(source, name, node, &mut healthy_waited)?;
        built.push(service);
    }
    // A dependent that waits for `service_healthy` waits, under runpm, for the dependency's
    // readiness: its healthcheck becomes its readiness check too.
    for service in &mut built {
        if healthy_waited.contains(&service.name) && service.ready.is_none() {
            match &service.health {
                Some(health) => service.ready = Some(health.probe.clone()),
                None => service.lose(
                    "a dependent waits for `service_healthy`, but there is no healthcheck: \
                     add `ready = { … }` so that it waits for something",
                ),
            }
        }
    }
    imported.services.extend(built);
    Ok(())
}

fn one(
    source: &Source,
    name: &str,
    node: &Node,
    healthy_waited: &mut BTreeSet<String>,
) -> Result<Service, ImportError> {
    let file = source.file.as_str();
    let runpm_name = service_name(name);
    let mut s = Service::new(&runpm_name, source.origin(&format!("services.{name}")));
    if runpm_name != name {
        s.lose(format!(
            "the name `{name}` is written `{runpm_name}`, as runpm names allow"
        ));
    }
    s.restart = Some(RestartPolicy::Never);
    let mut entrypoint = None;
    let mut command = None;
    let mut image = None;
    let mut interpolated = BTreeSet::new();
    for (key, _, value) in node.map(file, &format!("services.{name}"))? {
        let what = format!("services.{name}.{key}");
        let what = what.as_str();
        match key.as_str() {
            "command" | "entrypoint" => {
                let (words, substituted) = words(file, what, value)?;
                if substituted {
                    interpolated.insert(key.clone());
                }
                if key == "command" {
                    command = Some(words);
                } else {
                    entrypoint = Some(words);
                }
            }
            "environment" => {
                for (k, v) in environment(file, what, value)? {
                    match v {
                        Some(v) => {
                            let (v, substituted) = unescape(&v);
                            if substituted {
                                interpolated.insert(k.clone());
                            }
                            s.env.insert(k, v);
                        }
                        None => s.lose(format!(
                            "`{k}` without a value (compose copies it from your shell): runpm \
                             passes its own environment to services, so set `{k}` where runpm \
                             starts"
                        )),
                    }
                }
            }
            "env_file" => env_file(source, what, value, &mut s)?,
            "working_dir" => {
                let dir = value.text(file, what)?;
                if source.exists(&dir) {
                    s.cwd = Some(source.path(&dir));
                } else {
                    s.lose(format!(
                        "working_dir `{dir}` is a path in the container that does not exist \
                         here: the service runs in the config's directory; set `cwd`"
                    ));
                }
            }
            "depends_on" => depends_on(file, what, value, &mut s, healthy_waited)?,
            "restart" => restart(file, value, &mut s)?,
            "healthcheck" => healthcheck(file, what, value, &mut s)?,
            "stop_signal" => {
                let text = value.text(file, what)?;
                match Signal::parse(&text) {
                    Some(signal) => s.stop_signal = Some(signal.name().to_owned()),
                    None => return Err(value.invalid(file, format!("unknown signal `{text}`"))),
                }
            }
            "stop_grace_period" => s.kill_timeout = Some(duration(file, what, value)?),
            "user" => user(&value.text(file, what)?, &mut s),
            "profiles" => s.profiles = value.texts(file, what)?,
            "scale" => s.replicas = Some(count(file, what, value)?),
            "deploy" => deploy(file, what, value, &mut s)?,
            "mem_limit" => s.memory_max = Some(size(file, what, value)?),
            "mem_reservation" => s.memory_high = Some(size(file, what, value)?),
            "cpus" => s.cpu_max = Some(cpus(file, what, value)?),
            "pids_limit" => s.pids_max = Some(value.uint(file, what)?),
            "ulimits" => ulimits(file, what, value, &mut s)?,
            "image" => {
                let text = value.text(file, what)?;
                s.lose(format!(
                    "image `{text}`: runpm runs programs installed on this machine, not images: \
                     install what the image provides and point `cmd` at it"
                ));
                image = Some(text);
            }
            "build" => s.lose(
                "build: build the program on this machine first (or add a task that builds \
                 it and a `completed` dependency on it)",
            ),
            "ports" | "expose" => s.lose(format!(
                "{key}: services listen on this machine's network directly, nothing is \
                 published; make sure two services do not use the same port"
            )),
            "volumes" | "volumes_from" | "tmpfs" => s.lose(format!(
                "{key}: services see this machine's files: point the program at host paths"
            )),
            "networks" | "network_mode" | "links" | "external_links" | "extra_hosts"
            | "hostname" | "domainname" | "dns" | "dns_search" | "mac_address" => s.lose(format!(
                "{key}: services share this machine's network: reach another service at \
                     127.0.0.1 and its port instead of by its name"
            )),
            "container_name" => s.lose("container_name: the service is called by its runpm name"),
            "logging" => s.lose(
                "logging: runpm keeps each service's output in .runpm/logs (see `log_max_size` \
                 and `log_keep`)",
            ),
            "init" => s.lose("init: runpm reaps orphaned processes itself"),
            other => s.lose(format!(
                "`{other}` only applies to containers or has no runpm equivalent"
            )),
        }
    }
    s.command = match (entrypoint, command) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => Some(only),
        (Some(Command::Argv(mut e)), Some(Command::Argv(c))) => {
            e.extend(c);
            Some(Command::Argv(e))
        }
        (Some(e), Some(c)) => Some(Command::Shell(format!("{} {}", script(&e), script(&c)))),
    };
    if s.command.is_none() {
        let ran = image.map_or_else(|| "its image".to_owned(), |i| format!("image {i}"));
        s.command = Some(Command::Shell(format!(
            "echo 'runpm import: no command for {}; compose ran the default command of {}: set \
             cmd' >&2; exit 1",
            s.name,
            ran.replace('\'', "")
        )));
        s.autostart = Some(false);
        s.lose(format!(
            "no `command`: compose ran the default command of {ran}; this service does not \
             start by itself until `cmd` is set"
        ));
    }
    if s.cwd.is_none() {
        s.cwd = source.home();
    }
    if !interpolated.is_empty() {
        let keys: Vec<String> = interpolated.into_iter().collect();
        s.lose(format!(
            "`${{VAR}}` in {} is written as is: compose substitutes it from your shell and \
             .env when it reads the file, runpm does not (in `shell`, sh expands it from the \
             service's environment at start; elsewhere write the value)",
            keys.join(", ")
        ));
    }
    Ok(s)
}

/// A command or entrypoint: a list is an argv, a string a script; and whether it asked
/// compose to substitute a variable.
fn words(file: &str, what: &str, value: &Node) -> Result<(Command, bool), ImportError> {
    match &value.value {
        Value::Seq(_) => {
            let mut substituted = false;
            let argv = value
                .texts(file, what)?
                .iter()
                .map(|w| {
                    let (w, s) = unescape(w);
                    substituted |= s;
                    w
                })
                .collect();
            Ok((Command::Argv(argv), substituted))
        }
        _ => {
            let (script, substituted) = unescape(&value.text(file, what)?);
            Ok((Command::Shell(script), substituted))
        }
    }
}

/// Compose's `$$` (a literal `$`) unescaped, and whether the text has a `$VAR`/`${VAR}`
/// that compose would have substituted.
fn unescape(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut substituted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            match chars.peek() {
                Some('$') => {
                    chars.next();
                }
                Some(n) if *n == '{' || n.is_ascii_alphabetic() || *n == '_' => substituted = true,
                _ => {}
            }
        }
        out.push(c);
    }
    (out, substituted)
}

fn script(command: &Command) -> String {
    match command {
        Command::Argv(argv) => shell_join(argv),
        Command::Shell(script) => script.clone(),
    }
}

/// `environment` as a map (a null value: taken from the shell) or a `K=V` list.
fn environment(
    file: &str,
    what: &str,
    value: &Node,
) -> Result<Vec<(String, Option<String>)>, ImportError> {
    match &value.value {
        Value::Seq(items) => items
            .iter()
            .map(|item| {
                let text = item.text(file, what)?;
                Ok(match text.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (text, None),
                })
            })
            .collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, _, v)| {
                let v = if v.is_null() {
                    None
                } else {
                    Some(v.text(file, what)?)
                };
                Ok((k.clone(), v))
            })
            .collect(),
        _ => Err(value.invalid(file, format!("{what}: expected a mapping or a list"))),
    }
}

fn env_file(source: &Source, what: &str, value: &Node, s: &mut Service) -> Result<(), ImportError> {
    let file = source.file.as_str();
    let mut paths = Vec::new();
    match &value.value {
        Value::Seq(items) => {
            for item in items {
                match &item.value {
                    Value::Map(_) => {
                        let path = item
                            .get("path")
                            .ok_or_else(|| item.invalid(file, format!("{what}: needs `path`")))?
                            .text(file, what)?;
                        let required = match item.get("required") {
                            Some(r) => r.boolean(file, what)?,
                            None => true,
                        };
                        paths.push((path, required));
                    }
                    _ => paths.push((item.text(file, what)?, true)),
                }
            }
        }
        _ => paths.push((value.text(file, what)?, true)),
    }
    for (i, (path, required)) in paths.into_iter().enumerate() {
        if i > 0 {
            s.lose(format!(
                "env_file `{path}`: runpm reads one env_file per service; merge it into the \
                 first"
            ));
        } else if !source.exists(&path) {
            s.lose(format!(
                "env_file `{path}` does not exist here{}: create it and set `env_file`",
                if required { "" } else { " (it was optional)" }
            ));
        } else {
            s.env_file = Some(source.path(&path));
        }
    }
    Ok(())
}

fn depends_on(
    file: &str,
    what: &str,
    value: &Node,
    s: &mut Service,
    healthy_waited: &mut BTreeSet<String>,
) -> Result<(), ImportError> {
    match &value.value {
        // The short form waits for the dependency to be started.
        Value::Seq(_) => {
            for dep in value.texts(file, what)? {
                s.depends_on.insert(service_name(&dep), Condition::Started);
            }
        }
        Value::Map(entries) => {
            for (dep, _, spec) in entries {
                let condition = match spec.get("condition") {
                    None => Condition::Started,
                    Some(c) => match c.text(file, what)?.as_str() {
                        "service_started" => Condition::Started,
                        "service_healthy" => {
                            healthy_waited.insert(service_name(dep));
                            Condition::Ready
                        }
                        "service_completed_successfully" => Condition::Completed,
                        other => {
                            return Err(c.invalid(
                                file,
                                format!(
                                    "unknown condition `{other}`: expected service_started, \
                                     service_healthy or service_completed_successfully"
                                ),
                            ));
                        }
                    },
                };
                if let Some(r) = spec.get("required")
                    && !r.boolean(file, what)?
                {
                    s.lose(format!(
                        "depends_on.{dep}.required = false: runpm dependencies are always \
                         required"
                    ));
                }
                if spec.get("restart").is_some() {
                    s.lose(format!(
                        "depends_on.{dep}.restart: runpm restarts dependents when a reload \
                         restarts their dependency"
                    ));
                }
                s.depends_on.insert(service_name(dep), condition);
            }
        }
        _ => return Err(value.invalid(file, format!("{what}: expected a list or a mapping"))),
    }
    Ok(())
}

fn restart(file: &str, value: &Node, s: &mut Service) -> Result<(), ImportError> {
    let text = value.text(file, "restart")?;
    let (policy, limit) = text.split_once(':').unwrap_or((&text, ""));
    s.restart = Some(match policy {
        "no" | "false" => RestartPolicy::Never,
        "always" => RestartPolicy::Always,
        // runpm, too, leaves a service down that the operator stopped.
        "unless-stopped" => RestartPolicy::Always,
        "on-failure" => RestartPolicy::OnFailure,
        _ => {
            return Err(value.invalid(
                file,
                format!(
                    "unknown restart policy `{text}`: expected no, always, on-failure[:N] \
                     or unless-stopped"
                ),
            ));
        }
    });
    if !limit.is_empty() {
        let n = limit
            .parse()
            .map_err(|_| value.invalid(file, format!("`{limit}` is not a number of restarts")))?;
        s.max_restarts = Some(n);
    }
    Ok(())
}

fn healthcheck(file: &str, what: &str, value: &Node, s: &mut Service) -> Result<(), ImportError> {
    if let Some(d) = value.get("disable")
        && d.boolean(file, what)?
    {
        return Ok(());
    }
    let Some(test) = value.get("test") else {
        s.lose("healthcheck without `test` (it used the image's): add `health = { … }`");
        return Ok(());
    };
    let probe = match &test.value {
        Value::Seq(_) => {
            let words = test.texts(file, what)?;
            match words.split_first() {
                Some((kind, rest)) if kind == "CMD" => Probe::Exec(rest.to_vec()),
                Some((kind, rest)) if kind == "CMD-SHELL" => {
                    Probe::Exec(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
                }
                Some((kind, _)) if kind == "NONE" => return Ok(()),
                _ => {
                    return Err(test.invalid(
                        file,
                        "a healthcheck test list starts with CMD, CMD-SHELL or NONE",
                    ));
                }
            }
        }
        _ => Probe::Exec(vec!["/bin/sh".into(), "-c".into(), test.text(file, what)?]),
    };
    let mut health = Health {
        probe,
        interval: None,
        timeout: None,
        retries: None,
    };
    for (key, _, v) in value.entries() {
        match key.as_str() {
            "test" | "disable" => {}
            "interval" => health.interval = Some(duration(file, what, v)?),
            "timeout" => health.timeout = Some(duration(file, what, v)?),
            "retries" => health.retries = Some(count(file, what, v)?.max(1)),
            "start_period" | "start_interval" => s.lose(format!(
                "healthcheck.{key}: runpm checks health once the service is ready; use \
                 `ready_timeout` for a slow start"
            )),
            other => s.lose(format!(
                "healthcheck.{other} is not imported: runpm has no equivalent"
            )),
        }
    }
    s.lose(
        "healthcheck: compose only marks an unhealthy container, runpm's `health` restarts the \
         service after `retries` failed checks",
    );
    s.health = Some(health);
    Ok(())
}

fn user(text: &str, s: &mut Service) {
    let (user, group) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    if account_exists(false, user) {
        s.user = Some(user.to_owned());
    } else {
        s.lose(format!(
            "user `{user}` does not exist on this machine: create it and set `user`, or run \
             as runpm's user"
        ));
    }
    if let Some(group) = group {
        if account_exists(true, group) {
            s.group = Some(group.to_owned());
        } else {
            s.lose(format!(
                "group `{group}` does not exist on this machine: create it and set `group`"
            ));
        }
    }
}

fn deploy(file: &str, what: &str, value: &Node, s: &mut Service) -> Result<(), ImportError> {
    for (key, _, v) in value.map(file, what)? {
        let what = format!("{what}.{key}");
        let what = what.as_str();
        match key.as_str() {
            "replicas" => s.replicas = Some(count(file, what, v)?),
            "resources" => {
                for (kind, _, r) in v.map(file, what)? {
                    for (limit, _, l) in r.map(file, what)? {
                        let what = format!("{what}.{kind}.{limit}");
                        let what = what.as_str();
                        match (kind.as_str(), limit.as_str()) {
                            ("limits", "memory") => s.memory_max = Some(size(file, what, l)?),
                            ("limits", "cpus") => s.cpu_max = Some(cpus(file, what, l)?),
                            ("limits", "pids") => s.pids_max = Some(l.uint(file, what)?),
                            ("reservations", "memory") => {
                                s.memory_high = Some(size(file, what, l)?);
                                s.lose(
                                    "deploy.resources.reservations.memory: runpm cannot \
                                     reserve memory; written as `memory_high`, where the \
                                     kernel starts reclaiming",
                                );
                            }
                            _ => s.lose(format!("{what} is not imported: runpm has no equivalent")),
                        }
                    }
                }
            }
            "restart_policy" => {
                if let Some(c) = v.get("condition") {
                    s.restart = Some(match c.text(file, what)?.as_str() {
                        "none" => RestartPolicy::Never,
                        "on-failure" => RestartPolicy::OnFailure,
                        _ => RestartPolicy::Always,
                    });
                }
                if let Some(n) = v.get("max_attempts") {
                    s.max_restarts = Some(count(file, what, n)?);
                }
                if let Some(d) = v.get("delay") {
                    let d = duration(file, what, d)?;
                    s.restart_delay = Some(d);
                    s.restart_delay_max = Some(d);
                }
                if let Some(w) = v.get("window") {
                    s.restart_window = Some(duration(file, what, w)?);
                }
            }
            other => s.lose(format!("deploy.{other} only applies to a swarm")),
        }
    }
    Ok(())
}

fn ulimits(file: &str, what: &str, value: &Node, s: &mut Service) -> Result<(), ImportError> {
    for (name, _, v) in value.map(file, what)? {
        let limit = match &v.value {
            Value::Map(_) => {
                let soft = v.get("soft").unwrap_or(v);
                if v.get("hard").is_some() {
                    s.lose(format!(
                        "ulimits.{name}.hard: runpm sets the soft and hard limit to one value"
                    ));
                }
                soft.uint(file, what)?
            }
            _ => v.uint(file, what)?,
        };
        let limit = if limit == u64::MAX {
            Limit::Unlimited
        } else {
            Limit::Value(limit)
        };
        s.rlimits.insert(name.clone(), limit);
    }
    Ok(())
}

fn duration(file: &str, what: &str, value: &Node) -> Result<Duration, ImportError> {
    let text = value.text(file, what)?;
    go_duration(&text).ok_or_else(|| {
        value.invalid(
            file,
            format!("{what}: `{text}` is not a duration (like `1m30s` or `500ms`)"),
        )
    })
}

fn count(file: &str, what: &str, value: &Node) -> Result<u32, ImportError> {
    let n = value.uint(file, what)?;
    u32::try_from(n).map_err(|_| value.invalid(file, format!("{what}: {n} is too large")))
}

fn size(file: &str, what: &str, value: &Node) -> Result<u64, ImportError> {
    let text = value.text(file, what)?;
    binary_size(&text).ok_or_else(|| {
        value.invalid(
            file,
            format!("{what}: `{text}` is not a size (like `512m` or `1g`)"),
        )
    })
}

/// `cpus: 0.5` as percent of one CPU.
fn cpus(file: &str, what: &str, value: &Node) -> Result<u32, ImportError> {
    let text = value.text(file, what)?;
    match text.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n < 10_000.0 => Ok((n * 100.0).round() as u32),
        _ => Err(value.invalid(file, format!("{what}: `{text}` is not a number of CPUs"))),
    }
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn dollars_are_unescaped_and_substitutions_noticed() {
        assert_eq!(unescape("a $$HOME b"), ("a $HOME b".into(), false));
        assert_eq!(unescape("${PORT:-80}"), ("${PORT:-80}".into(), true));
        assert_eq!(unescape("$PORT"), ("$PORT".into(), true));
        assert_eq!(unescape("5$"), ("5$".into(), false));
    }
}
