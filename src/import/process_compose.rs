//! process-compose files (`process-compose.yaml`).
//!
//! | process-compose                          | runpm                                       |
//! |------------------------------------------|---------------------------------------------|
//! | `command`                                | `shell`                                     |
//! | `working_dir`, `environment` (also top-level) | `cwd`, `env`                           |
//! | `depends_on.X.condition` process_started / process_healthy / process_log_ready / process_completed_successfully | `started` / `ready` / `ready` / `completed` |
//! | `availability.restart` always / on_failure / exit_on_failure / no | `restart` always / on-failure / on-failure / never |
//! | `availability.backoff_seconds`, `max_restarts` | `restart_delay` (= `restart_delay_max`), `max_restarts` |
//! | `readiness_probe` exec / http_get        | `ready = { exec | http }`                   |
//! | `liveness_probe` (+ period, timeout, failure_threshold) | `health` (interval, timeout, retries) |
//! | `shutdown.signal` (a number), `timeout_seconds` | `stop_signal`, `kill_timeout`        |
//! | `ready_log_line`                         | `ready = { log = … }` (matched literally)   |
//! | `disabled: true`                         | `autostart = false`                         |
//! | `replicas`                               | `replicas`                                  |
//!
//! `namespace`, `shutdown.command`, `is_daemon` and log settings are reported.

use std::time::Duration;

use super::error::ImportError;
use super::model::{Command, Health, Imported, Note, Probe, Service};
use super::yaml::{self, Node};
use super::{Source, service_name};
use crate::config::{Condition, RestartPolicy, Signal};

pub(super) fn import(source: &Source, imported: &mut Imported) -> Result<(), ImportError> {
    let file = source.file.as_str();
    let doc = yaml::parse(file, &source.text)?;
    let Some(processes) = doc.get("processes") else {
        return Err(doc.invalid(file, "a process-compose file needs a `processes` mapping"));
    };
    let mut global = Vec::new();
    for (key, _, value) in doc.entries() {
        match key.as_str() {
            "processes" | "version" => {}
            "environment" => global = environment(file, "environment", value)?,
            other => imported.notes.push(Note {
                file: file.to_owned(),
                message: format!("top-level `{other}` is not imported: runpm has no equivalent"),
            }),
        }
    }
    for (name, _, node) in processes.map(file, "processes")? {
        let runpm_name = service_name(name);
        let mut s = Service::new(&runpm_name, source.origin(&format!("processes.{name}")));
        if runpm_name != *name {
            s.lose(format!("the name `{name}` is written `{runpm_name}`"));
        }
        s.restart = Some(RestartPolicy::Never);
        s.env.extend(global.iter().cloned());
        for (key, _, value) in node.map(file, &format!("processes.{name}"))? {
            let what = format!("processes.{name}.{key}");
            let what = what.as_str();
            match key.as_str() {
                "command" => s.command = Some(Command::Shell(value.text(file, what)?)),
                "working_dir" => s.cwd = Some(source.path(&value.text(file, what)?)),
                "environment" => s.env.extend(environment(file, what, value)?),
                "depends_on" => depends_on(file, what, value, &mut s)?,
                "availability" => availability(file, what, value, &mut s)?,
                "readiness_probe" => {
                    let (probe, timing) = probe(file, what, value, &mut s)?;
                    if timing.interval.is_some()
                        || timing.timeout.is_some()
                        || timing.retries.is_some()
                    {
                        s.lose(
                            "readiness_probe timing (period, timeout, failure_threshold): runpm \
                             retries a readiness check until it passes or `ready_timeout` ends",
                        );
                    }
                    s.ready = Some(probe);
                }
                "liveness_probe" => {
                    let (probe, health) = probe(file, what, value, &mut s)?;
                    s.health = Some(Health { probe, ..health });
                }
                "shutdown" => shutdown(file, what, value, &mut s)?,
                "ready_log_line" => {
                    let line = value.text(file, what)?;
                    if s.ready.is_some() {
                        s.lose(
                            "ready_log_line beside readiness_probe: runpm takes one readiness \
                             check, the probe",
                        );
                    } else {
                        s.ready = Some(Probe::Log(regex_lite::escape(&line)));
                    }
                }
                "disabled" => {
                    if value.boolean(file, what)? {
                        s.autostart = Some(false);
                    }
                }
                "replicas" => {
                    let n = value.uint(file, what)?;
                    s.replicas = Some(
                        u32::try_from(n).map_err(|_| value.invalid(file, "too many replicas"))?,
                    );
                }
                "namespace" => s.lose(format!(
                    "namespace `{}`: runpm has no namespaces; `profiles` select groups of \
                     services",
                    value.text(file, what)?
                )),
                "is_daemon" => s.lose(
                    "is_daemon: runpm supervises programs that stay in the foreground; start \
                     it without its daemonize option",
                ),
                "description" => {}
                other => s.lose(format!(
                    "`{other}` is not imported: runpm has no equivalent"
                )),
            }
        }
        if s.cwd.is_none() {
            s.cwd = source.home();
        }
        if s.command.is_none() {
            return Err(node.invalid(file, format!("processes.{name}: no `command`")));
        }
        imported.services.push(s);
    }
    Ok(())
}

fn environment(file: &str, what: &str, value: &Node) -> Result<Vec<(String, String)>, ImportError> {
    value
        .texts(file, what)?
        .into_iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => Err(value.invalid(file, format!("{what}: `{item}` is not KEY=VALUE"))),
        })
        .collect()
}

fn depends_on(file: &str, what: &str, value: &Node, s: &mut Service) -> Result<(), ImportError> {
    for (dep, _, spec) in value.map(file, what)? {
        let condition = match spec.get("condition") {
            None => Condition::Started,
            Some(c) => match c.text(file, what)?.as_str() {
                "process_started" => Condition::Started,
                "process_healthy" | "process_log_ready" => Condition::Ready,
                "process_completed_successfully" => Condition::Completed,
                "process_completed" => {
                    s.lose(format!(
                        "depends_on.{dep}: process_completed (whatever the exit code) is \
                         written `completed`, which needs a successful exit"
                    ));
                    Condition::Completed
                }
                other => {
                    return Err(c.invalid(file, format!("unknown condition `{other}`")));
                }
            },
        };
        s.depends_on.insert(service_name(dep), condition);
    }
    Ok(())
}

fn availability(file: &str, what: &str, value: &Node, s: &mut Service) -> Result<(), ImportError> {
    for (key, _, v) in value.map(file, what)? {
        match key.as_str() {
            "restart" => {
                s.restart = Some(match v.text(file, what)?.as_str() {
                    "always" => RestartPolicy::Always,
                    "on_failure" => RestartPolicy::OnFailure,
                    "exit_on_failure" => {
                        s.lose(
                            "restart: exit_on_failure stops the whole project when this fails; \
                             runpm restarts it on failure (in a container, `[runpm] exit_when \
                             = \"any-failed\"` ends runpm instead)",
                        );
                        RestartPolicy::OnFailure
                    }
                    "no" => RestartPolicy::Never,
                    other => {
                        return Err(v.invalid(file, format!("unknown restart policy `{other}`")));
                    }
                })
            }
            "backoff_seconds" => {
                let d = Duration::from_secs(v.uint(file, what)?);
                // process-compose waits the same time before every restart.
                s.restart_delay = Some(d);
                s.restart_delay_max = Some(d);
            }
            "max_restarts" => match v.uint(file, what)? {
                // 0 means no limit in process-compose.
                0 => s.lose(
                    "max_restarts: 0 (no limit): runpm counts failures within \
                     `restart_window`; raise `max_restarts` if needed",
                ),
                n => s.max_restarts = Some(u32::try_from(n).unwrap_or(u32::MAX)),
            },
            other => s.lose(format!(
                "availability.{other} is not imported: runpm has no equivalent"
            )),
        }
    }
    Ok(())
}

/// A probe, with the timing a liveness probe gives `health`.
fn probe(
    file: &str,
    what: &str,
    value: &Node,
    s: &mut Service,
) -> Result<(Probe, Health), ImportError> {
    let mut probe = None;
    let mut health = Health {
        probe: Probe::Notify,
        interval: None,
        timeout: None,
        retries: None,
    };
    let seconds = |v: &Node| v.uint(file, what).map(Duration::from_secs);
    for (key, _, v) in value.map(file, what)? {
        match key.as_str() {
            "exec" => {
                let command = v
                    .get("command")
                    .ok_or_else(|| v.invalid(file, format!("{what}.exec: needs `command`")))?
                    .text(file, what)?;
                if v.get("working_dir").is_some() {
                    s.lose(format!(
                        "{key}.working_dir: the probe runs in the service's `cwd`"
                    ));
                }
                probe = Some(Probe::Exec(vec!["/bin/sh".into(), "-c".into(), command]));
            }
            "http_get" => {
                let field = |k: &str| v.get(k).and_then(Node::str).map(str::to_owned);
                let port = field("port")
                    .ok_or_else(|| v.invalid(file, format!("{what}.http_get: needs `port`")))?;
                let path = field("path").unwrap_or_else(|| "/".into());
                probe = Some(Probe::Http(format!(
                    "{}://{}:{port}{}{path}",
                    field("scheme").unwrap_or_else(|| "http".into()),
                    field("host").unwrap_or_else(|| "127.0.0.1".into()),
                    if path.starts_with('/') { "" } else { "/" },
                )));
            }
            "period_seconds" => health.interval = Some(seconds(v)?),
            "timeout_seconds" => health.timeout = Some(seconds(v)?),
            "failure_threshold" => {
                health.retries =
                    Some(u32::try_from(v.uint(file, what)?.max(1)).unwrap_or(u32::MAX));
            }
            "initial_delay_seconds" | "success_threshold" => {
                s.lose(format!(
                    "{what}.{key} is not imported: runpm has no equivalent"
                ));
            }
            other => s.lose(format!(
                "{what}.{other} is not imported: runpm has no equivalent"
            )),
        }
    }
    let probe =
        probe.ok_or_else(|| value.invalid(file, format!("{what}: needs `exec` or `http_get`")))?;
    Ok((probe, health))
}

fn shutdown(file: &str, what: &str, value: &Node, s: &mut Service) -> Result<(), ImportError> {
    for (key, _, v) in value.map(file, what)? {
        match key.as_str() {
            "signal" => {
                let text = v.text(file, what)?;
                let signal = text
                    .parse::<i32>()
                    .ok()
                    .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
                    .map(Signal)
                    .or_else(|| Signal::parse(&text))
                    .ok_or_else(|| v.invalid(file, format!("unknown signal `{text}`")))?;
                s.stop_signal = Some(signal.name().to_owned());
            }
            "timeout_seconds" => s.kill_timeout = Some(Duration::from_secs(v.uint(file, what)?)),
            "command" => s.lose(
                "shutdown.command: runpm stops a service with `stop_signal`; make the program \
                 clean up on that signal",
            ),
            other => s.lose(format!(
                "shutdown.{other} is not imported: runpm has no equivalent"
            )),
        }
    }
    Ok(())
}
