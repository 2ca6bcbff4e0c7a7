//! pm2 ecosystem files, in their JSON or YAML form (`ecosystem.config.json`, `.yaml`).
//!
//! | pm2                                   | runpm                                          |
//! |---------------------------------------|------------------------------------------------|
//! | `script` + `args`, `interpreter` (+ `interpreter_args`/`node_args`) | `cmd` (interpreter chosen by extension as pm2 does: `.js` → node, `.py` → python3…) |
//! | `cwd`, `env`                          | `cwd`, `env`                                   |
//! | `autorestart` (default true)          | `restart = "always"`, or `"never"`             |
//! | `stop_exit_codes`                     | `restart = "on-failure"` + `success_exit_codes` |
//! | `max_restarts`, `min_uptime`          | `max_restarts`, `min_uptime`                   |
//! | `restart_delay`                       | `restart_delay` = `restart_delay_max`          |
//! | `exp_backoff_restart_delay`           | `restart_delay`, up to `restart_delay_max = "15s"` (pm2's cap) |
//! | `kill_timeout` (default 1600 ms)      | `kill_timeout`                                 |
//! | `instances`                           | `replicas`                                     |
//! | `max_memory_restart`                  | `memory_restart`                               |
//! | `cron_restart`                        | reported: runpm's `schedule` runs tasks, it does not restart a running service |
//!
//! The JavaScript form (`ecosystem.config.js`) is code, which runpm does not run: the error
//! shows the `node -e` line that prints it as JSON.

use std::time::Duration;

use camino::Utf8Path;

use super::error::ImportError;
use super::model::{Command, Imported, Service};
use super::words::{any_duration, binary_size, shell_split};
use super::yaml::{self, Node, Value};
use super::{Source, service_name};
use crate::config::RestartPolicy;

/// pm2's `kill_timeout` when not set.
const PM2_KILL_TIMEOUT: Duration = Duration::from_millis(1600);
/// pm2's ceiling for `exp_backoff_restart_delay`.
const PM2_BACKOFF_MAX: Duration = Duration::from_secs(15);

/// The error for a JavaScript ecosystem file, with the line that turns it into JSON.
pub(super) fn javascript(path: &Utf8Path) -> ImportError {
    let shown = if path.is_absolute() || path.as_str().starts_with('.') {
        path.to_string()
    } else {
        format!("./{path}")
    };
    let shown = shown
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\'', "'\\''");
    let one_liner = if path.extension() == Some("mjs") {
        format!(
            "node --input-type=module -e 'import(\"{shown}\").then(m => \
             console.log(JSON.stringify(m.default, null, 2)))' > ecosystem.json"
        )
    } else {
        format!(
            "node -e 'console.log(JSON.stringify(require(\"{shown}\"), null, 2))' > ecosystem.json"
        )
    };
    ImportError::JavaScript {
        file: path.to_string(),
        one_liner,
    }
}

pub(super) fn import(source: &Source, imported: &mut Imported) -> Result<(), ImportError> {
    let file = source.file.as_str();
    let doc = yaml::parse(file, &source.text)?;
    let apps = match (&doc.value, doc.get("apps")) {
        (Value::Seq(_), _) => &doc,
        (_, Some(apps)) => apps,
        _ => return Err(doc.invalid(file, "a pm2 ecosystem file needs an `apps` list")),
    };
    for (i, app) in apps.items(file, "apps")?.iter().enumerate() {
        imported.services.push(one(source, i, app)?);
    }
    Ok(())
}

fn one(source: &Source, index: usize, app: &Node) -> Result<Service, ImportError> {
    let file = source.file.as_str();
    let at = format!("apps[{index}]");
    app.map(file, &at)?;
    let script = app
        .get("script")
        .ok_or_else(|| app.invalid(file, format!("{at}: needs `script`")))?
        .text(file, &format!("{at}.script"))?;
    let name = match app.get("name") {
        Some(n) => n.text(file, &format!("{at}.name"))?,
        None => Utf8Path::new(&script)
            .file_stem()
            .unwrap_or(&script)
            .to_owned(),
    };
    let runpm_name = service_name(&name);
    let mut s = Service::new(&runpm_name, source.origin(&format!("{at} ({name})")));
    if runpm_name != name {
        s.lose(format!("the name `{name}` is written `{runpm_name}`"));
    }
    s.restart = Some(RestartPolicy::Always);
    s.kill_timeout = Some(PM2_KILL_TIMEOUT);
    let mut args = Vec::new();
    let mut interpreter = None;
    let mut interpreter_args = Vec::new();
    for (key, _, v) in app.entries() {
        let what = format!("{at}.{key}");
        let what = what.as_str();
        match key.as_str() {
            "name" | "script" => {}
            "args" => args = words(file, what, v)?,
            "interpreter" | "exec_interpreter" => interpreter = Some(v.text(file, what)?),
            "interpreter_args" | "node_args" => interpreter_args.extend(words(file, what, v)?),
            "cwd" => s.cwd = Some(source.path(&v.text(file, what)?)),
            "env" => {
                for (k, _, value) in v.map(file, what)? {
                    s.env.insert(k.clone(), value.text(file, what)?);
                }
            }
            "autorestart" => {
                if !v.boolean(file, what)? {
                    s.restart = Some(RestartPolicy::Never);
                }
            }
            "stop_exit_codes" => {
                let codes = match &v.value {
                    Value::Seq(_) => v.texts(file, what)?,
                    _ => vec![v.text(file, what)?],
                };
                let codes = codes
                    .iter()
                    .map(|c| {
                        c.parse::<i32>()
                            .map_err(|_| v.invalid(file, format!("`{c}` is not an exit code")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                s.success_exit_codes = Some(codes);
            }
            "max_restarts" => {
                s.max_restarts = Some(u32::try_from(v.uint(file, what)?).unwrap_or(u32::MAX))
            }
            "min_uptime" => s.min_uptime = Some(millis(file, what, v)?),
            "restart_delay" => {
                let d = millis(file, what, v)?;
                s.restart_delay = Some(d);
                s.restart_delay_max = Some(d);
            }
            "exp_backoff_restart_delay" => {
                s.restart_delay = Some(millis(file, what, v)?);
                s.restart_delay_max = Some(PM2_BACKOFF_MAX);
            }
            "kill_timeout" => s.kill_timeout = Some(millis(file, what, v)?),
            "instances" => match v.text(file, what)?.as_str() {
                "1" => {}
                "max" | "0" | "-1" => {
                    s.lose("instances: one per CPU: runpm takes a fixed number; set `replicas`")
                }
                n => {
                    s.replicas = Some(n.parse().map_err(|_| {
                        v.invalid(file, format!("`{n}` is not a number of instances"))
                    })?);
                }
            },
            "exec_mode" => {
                if v.text(file, what)? == "cluster" {
                    s.lose(
                        "exec_mode: cluster shares one port between node workers; runpm's \
                         replicas are separate processes (give each its own port with \
                         RUNPM_REPLICA)",
                    );
                }
            }
            "max_memory_restart" => {
                let text = v.text(file, what)?;
                let bytes = binary_size(&text)
                    .ok_or_else(|| v.invalid(file, format!("`{text}` is not a size")))?;
                s.memory_restart = Some(bytes);
            }
            "cron_restart" => s.lose(format!(
                "cron_restart `{}`: runpm's `schedule` runs a task on a schedule, it does not \
                 restart a running service; use a cron job that runs `runpmctl restart {}`",
                v.text(file, what)?,
                runpm_name
            )),
            "watch" | "ignore_watch" | "watch_delay" => s.lose(format!(
                "{key}: runpm watches its config, not the program's sources; restart with \
                 `runpmctl restart`"
            )),
            "out_file" | "error_file" | "log_file" | "log_date_format" | "merge_logs"
            | "combine_logs" | "time" => s.lose(format!(
                "{key}: runpm keeps each service's output in .runpm/logs"
            )),
            k if k.starts_with("env_") => s.lose(format!(
                "{k}: runpm has one environment per service; put it in a file and point \
                 `env_file` at it"
            )),
            other => s.lose(format!(
                "`{other}` is not imported: runpm has no equivalent"
            )),
        }
    }
    let ext = Utf8Path::new(&script).extension().unwrap_or("");
    let interpreter = match interpreter.as_deref() {
        Some("none") => None,
        Some(i) => Some(i.to_owned()),
        None => match ext {
            "js" | "cjs" | "mjs" => Some("node".into()),
            "py" => Some("python3".into()),
            "sh" => Some("bash".into()),
            "rb" => Some("ruby".into()),
            "php" => Some("php".into()),
            "pl" => Some("perl".into()),
            "coffee" => Some("coffee".into()),
            "ts" => Some("ts-node".into()),
            _ => None,
        },
    };
    let mut argv = Vec::new();
    match interpreter {
        Some(i) => {
            argv.push(i);
            argv.extend(interpreter_args);
        }
        None if !interpreter_args.is_empty() => {
            s.lose("interpreter_args without an interpreter are not imported");
        }
        None => {}
    }
    argv.push(script);
    argv.extend(args);
    s.command = Some(Command::Argv(argv));
    if s.cwd.is_none() {
        s.cwd = source.home();
    }
    Ok(s)
}

/// `args`: a list, or a string pm2 splits into words.
fn words(file: &str, what: &str, v: &Node) -> Result<Vec<String>, ImportError> {
    match &v.value {
        Value::Seq(_) => v.texts(file, what),
        _ => {
            let text = v.text(file, what)?;
            shell_split(&text).ok_or_else(|| {
                v.invalid(
                    file,
                    format!("{what}: `{text}` needs a shell; write the words as a list"),
                )
            })
        }
    }
}

/// pm2's times: a number of milliseconds, or a string with a unit.
fn millis(file: &str, what: &str, v: &Node) -> Result<Duration, ImportError> {
    let text = v.text(file, what)?;
    match text.trim().parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => any_duration(&text).ok_or_else(|| {
            v.invalid(
                file,
                format!("{what}: `{text}` is not a time in milliseconds"),
            )
        }),
    }
}
