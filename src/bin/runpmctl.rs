//! `runpmctl`: steers a running runpm over its control socket.
//!
//! Thin by design: parse the arguments, find the socket, send one request, print the reply
//! with the library's renderers. Every exit code is decided in [`Failure::exit`], from the
//! one table of them in [`runpm::cli::exit`].

// As in the library: every `unsafe` block says why it is sound, and no `unwrap` sits on a
// runtime path (runpm may be PID 1: a panic there takes the container down).
#![warn(clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use camino::Utf8PathBuf;
use clap::{CommandFactory, Parser};
use serde::de::DeserializeOwned;

use runpm::cli::complete::{self, Shell};
use runpm::cli::exit::Exit;
use runpm::cli::runpmctl::{Cli, Command, ExportTarget};
use runpm::ipc::{
    self, Client, ClientError, ErrorKind, Json, LogsResult, ProtocolError, ReloadResult, Request,
    StatusResult,
};

#[path = "runpmctl/events.rs"]
mod events;
#[path = "runpmctl/metrics.rs"]
mod metrics;

/// How long a completing shell waits for the daemon's service names.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(2);

/// Why runpmctl did not succeed; decides the exit code.
enum Failure {
    Usage(clap::Error),
    NoDaemon(anyhow::Error),
    /// The daemon answered with an error.
    Daemon(ProtocolError),
    /// `status --check`: this many of the checked services are not running or completed.
    Unhealthy {
        bad: usize,
        checked: usize,
    },
    Other(anyhow::Error),
}

impl Failure {
    fn exit(&self) -> Exit {
        match self {
            Failure::Usage(_) => Exit::Usage,
            Failure::NoDaemon(_) => Exit::NoDaemon,
            Failure::Daemon(_) | Failure::Unhealthy { .. } | Failure::Other(_) => Exit::Failed,
        }
    }

    fn report(&self) {
        match self {
            Failure::Usage(e) => {
                if let Err(print) = e.print() {
                    eprintln!("runpmctl: {e} ({print})");
                }
            }
            Failure::NoDaemon(e) | Failure::Other(e) => eprintln!("runpmctl: {e:#}"),
            // The message is the config's diagnostics, file:line:col each: print them as
            // they are, then say what it means.
            Failure::Daemon(e) if e.kind == ErrorKind::InvalidConfig => {
                eprintln!("{}", e.message.trim_end());
                eprintln!("runpmctl: the config is invalid; nothing was changed");
            }
            Failure::Daemon(e) => eprintln!("runpmctl: {}", e.message),
            Failure::Unhealthy { bad, checked } => {
                eprintln!("runpmctl: {bad} of {checked} services are not running or completed")
            }
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        if e.is_no_daemon() {
            Failure::NoDaemon(e.into())
        } else {
            Failure::Other(e.into())
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Other(e)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Err(print) = e.print() {
                eprintln!("runpmctl: {e} ({print})");
            }
            return Exit::of_clap(&e).into();
        }
    };
    match run(cli) {
        Ok(()) => Exit::Ok.into(),
        Err(failure) => {
            failure.report();
            failure.exit().into()
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    // Answered without a daemon, or without failing when there is none.
    match &cli.command {
        Command::Completions { shell } => return completions(*shell),
        Command::Export { target } => return export(&cli, target),
        Command::CompleteServices => return complete_services(&cli),
        Command::Logs { .. } => return logs(&cli),
        Command::Events { .. } => return events::events(&cli),
        Command::Metrics => return metrics::metrics(&cli),
        Command::Top { mouse } => return top(&cli, *mouse),
        _ => {}
    }
    let request = request(&cli.command)?;
    let mut client = connect(&cli)?;
    let reply = client.call(&request, cli.timeout)?;
    let result = match reply.into_result() {
        Ok(result) => result,
        Err(e) => {
            // A script that asked for JSON gets the error as JSON too (and the exit code).
            if wants_json(&cli.command) {
                let error = serde_json::json!({ "error": e });
                print(&format!("{}\n", pretty(&error)?))?;
            }
            return Err(Failure::Daemon(e));
        }
    };
    let out = match &cli.command {
        Command::Status {
            check: true, json, ..
        } => return check(&cli.command, result, *json),
        Command::Shutdown { json, .. } => {
            // Done when the daemon is gone: its connection closes as it exits.
            client.wait_closed(cli.timeout)?;
            let pid = client.hello().daemon_pid;
            if *json {
                let done = serde_json::json!({ "daemon_pid": pid, "shut_down": true });
                format!("{}\n", pretty(&done)?)
            } else {
                format!("runpm (pid {pid}) shut down\n")
            }
        }
        // Done once the new image answers, JSON or not.
        Command::Reexec { json } => reexecuted(&cli, client, result, *json)?,
        command if wants_json(command) => {
            // Re-indented for people; the daemon sends it on one line.
            let value: serde_json::Value = decode(result, "the command")?;
            format!("{}\n", pretty(&value)?)
        }
        Command::Status { names, .. } => {
            let status: StatusResult = decode(result, "status")?;
            if let Some(errors) = &status.running_from_snapshot {
                eprintln!(
                    "runpmctl: runpm is running the last-known-good services from its state file, \
                     because the config is invalid:\n{errors}"
                );
            }
            // Named services are shown in detail (exit history included); all of them, as a
            // table.
            if names.is_empty() {
                let colour = runpm::cli::colour::stdout(false);
                let mut table = ipc::status_table_styled(&status.services, colour);
                if let Some(note) = status.cgroups.as_ref().and_then(ipc::cgroups_note) {
                    table.push_str(&note);
                    table.push('\n');
                }
                table
            } else {
                status
                    .services
                    .iter()
                    .map(ipc::service_detail)
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Command::Start(_) | Command::Stop { .. } | Command::Restart(_) => {
            let status: StatusResult = decode(result, "the command")?;
            status
                .services
                .iter()
                .map(|s| format!("{}\n", ipc::service_line(s)))
                .collect()
        }
        Command::Kill { signal, group, .. } => {
            let status: StatusResult = decode(result, "kill")?;
            let whom = if *group { "process group" } else { "pid" };
            status
                .services
                .iter()
                .map(|s| match s.pid {
                    Some(pid) => format!("{}: {signal} sent to {whom} {pid}\n", s.name),
                    None => format!("{}: {signal} sent ({})\n", s.name, s.status),
                })
                .collect()
        }
        Command::Reload { .. } => ipc::reload_plan(&decode::<ReloadResult>(result, "reload")?),
        Command::Scale { name, replicas, .. } => {
            let done: serde_json::Value = decode(result, "scale")?;
            let names = |key: &str| -> String {
                let list: Vec<&str> = done[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                if list.is_empty() {
                    "none".into()
                } else {
                    list.join(", ")
                }
            };
            format!(
                "{name}: {replicas} replicas (started: {}; stopped: {})\n",
                names("started"),
                names("stopped")
            )
        }
        Command::Resurrect { .. } => {
            ipc::reload_plan(&decode::<ReloadResult>(result, "resurrect")?)
        }
        Command::Save { .. } => {
            let saved: serde_json::Value = decode(result, "save")?;
            let path = saved.get("path").and_then(|p| p.as_str()).unwrap_or("?");
            format!("{path}\n")
        }
        // Answered before connecting.
        Command::Logs { .. }
        | Command::Completions { .. }
        | Command::CompleteServices
        | Command::Export { .. }
        | Command::Events { .. }
        | Command::Metrics
        | Command::Top { .. } => String::new(),
    };
    print(&out)
}

/// Whether the command was asked for JSON output.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::Status { json, .. }
        | Command::Kill { json, .. }
        | Command::Scale { json, .. }
        | Command::Reload { json, .. }
        | Command::Save { json }
        | Command::Reexec { json }
        | Command::Resurrect { json }
        | Command::Shutdown { json, .. } => *json,
        Command::Start(t) | Command::Restart(t) | Command::Stop { targets: t, .. } => t.json,
        Command::Events { json, .. } => *json,
        Command::Logs { .. }
        | Command::Completions { .. }
        | Command::CompleteServices
        | Command::Export { .. }
        | Command::Metrics
        | Command::Top { .. } => false,
    }
}

/// `status --check`: the services that should run (or the named ones) must each be running
/// or completed; the others are printed, one line each, and the exit code is 1.
fn check(command: &Command, result: Json, json: bool) -> Result<(), Failure> {
    let status: StatusResult = decode(result, "status")?;
    let named = matches!(command, Command::Status { names, .. } if !names.is_empty());
    let checked: Vec<&ipc::ServiceInfo> = status
        .services
        .iter()
        .filter(|s| named || ipc::should_run(s))
        .collect();
    let bad: Vec<String> = checked
        .iter()
        .filter_map(|s| ipc::check_failure(s))
        .collect();
    if json {
        let value = serde_json::json!({
            "ok": bad.is_empty(),
            "services": checked,
        });
        print(&format!("{}\n", pretty(&value)?))?;
    } else if bad.is_empty() {
        print(&format!(
            "ok: {} services running or completed\n",
            checked.len()
        ))?;
    } else {
        print(&bad.iter().map(|b| format!("{b}\n")).collect::<String>())?;
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Failure::Unhealthy {
            bad: bad.len(),
            checked: checked.len(),
        })
    }
}

fn pretty(value: &impl serde::Serialize) -> Result<String, Failure> {
    Ok(serde_json::to_string_pretty(value).context("cannot print the result")?)
}

fn print(text: &str) -> Result<(), Failure> {
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("cannot write to stdout")?;
    Ok(())
}

/// The request for a command, after the checks clap cannot express.
fn request(command: &Command) -> Result<Request, Failure> {
    Ok(match command {
        Command::Status { names, .. } => Request::Status {
            services: names.clone(),
        },
        Command::Kill {
            signal,
            group,
            names,
            ..
        } => Request::Kill {
            services: names.clone(),
            signal: signal.clone(),
            group: *group,
        },
        Command::Scale { name, replicas, .. } => Request::Scale {
            service: name.clone(),
            replicas: *replicas,
        },
        Command::Start(t) => Request::Start {
            services: t.names.clone(),
            all: t.all,
        },
        Command::Stop { targets, yes } => {
            if targets.all && !yes {
                return Err(usage(
                    "stop",
                    "`stop --all` stops every service; add --yes to confirm",
                ));
            }
            Request::Stop {
                services: targets.names.clone(),
                all: targets.all,
            }
        }
        Command::Restart(t) => Request::Restart {
            services: t.names.clone(),
            all: t.all,
        },
        Command::Reload { dry_run, .. } => Request::Reload { dry_run: *dry_run },
        Command::Save { .. } => Request::Save,
        Command::Reexec { .. } => Request::Reexec,
        Command::Resurrect { .. } => Request::Resurrect,
        Command::Shutdown { yes, .. } => {
            if !yes {
                return Err(usage(
                    "shutdown",
                    "`shutdown` stops every service and the daemon; add --yes to confirm",
                ));
            }
            Request::Shutdown
        }
        Command::Completions { .. }
        | Command::CompleteServices
        | Command::Export { .. }
        | Command::Logs { .. }
        | Command::Events { .. }
        | Command::Metrics
        | Command::Top { .. } => {
            return Err(Failure::Other(anyhow!("this command sends no request")));
        }
    })
}

/// `runpmctl completions SHELL`: the script on stdout.
fn completions(shell: Shell) -> Result<(), Failure> {
    let script = complete::script(shell, &mut Cli::command());
    std::io::stdout()
        .lock()
        .write_all(script.as_bytes())
        .context("cannot write to stdout")?;
    Ok(())
}

/// `runpmctl __complete-services`: the daemon's service names, one per line. A shell is
/// completing a word: it must get an answer quickly and never an error, so no daemon (or
/// any failure) prints nothing and succeeds.
fn complete_services(cli: &Cli) -> Result<(), Failure> {
    let names = || -> Result<Vec<String>, Failure> {
        let mut client = connect(cli)?;
        let timeout = cli.timeout.min(COMPLETION_TIMEOUT);
        let reply = client.call(&Request::Status { services: vec![] }, timeout)?;
        let status: StatusResult = decode(reply.into_result().map_err(Failure::Daemon)?, "status")?;
        // A replicated service's own name too (`scale web`, `status web.0`).
        let mut names: Vec<String> = Vec::new();
        for s in status.services {
            if let Some(group) = s.replica_of
                && !names.contains(&group)
            {
                names.push(group);
            }
            names.push(s.name);
        }
        Ok(names)
    };
    let mut out = String::new();
    for name in names().unwrap_or_default() {
        out.push_str(&name);
        out.push('\n');
    }
    // A closed pipe is the shell's business.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}

/// `runpmctl export`: reads the config like `runpm up` would, writes what the library
/// generates, and prints its warnings on stderr. Warnings do not fail the command.
fn export(cli: &Cli, target: &ExportTarget) -> Result<(), Failure> {
    use runpm::export::{files, kubernetes, systemd};

    let cwd = std::env::current_dir().context("cannot find the current directory")?;
    let cwd = Utf8PathBuf::try_from(cwd).context("the current directory is not UTF-8")?;
    let path = runpm::config::discover(cli.file.as_deref(), &cwd).map_err(anyhow::Error::from)?;
    let config = runpm::config::load(&path).map_err(|errors| {
        anyhow!("{}", errors.to_string().trim_end()).context("the config is invalid")
    })?;
    let mut stdout = String::new();
    let warnings = match target {
        ExportTarget::Systemd {
            out,
            prefix,
            no_target,
            user,
            systemd_version,
            force,
        } => {
            let which = |program: &str, path: &str| files::which(program, path);
            let options = systemd::Options {
                prefix: prefix.clone(),
                target: !no_target,
                which: &which,
                path: std::env::var("PATH").unwrap_or_default(),
                user: *user,
                systemd_version: systemd_version.unwrap_or_else(|| {
                    std::process::Command::new("systemctl")
                        .arg("--version")
                        .output()
                        .ok()
                        .and_then(|out| {
                            systemd::parse_version(&String::from_utf8_lossy(&out.stdout))
                        })
                        .unwrap_or(systemd::DEFAULT_SYSTEMD_VERSION)
                }),
            };
            let export = systemd::export(&config, &options);
            match out {
                Some(dir) => {
                    let units: Vec<(String, String)> =
                        export.units.into_iter().map(|u| (u.name, u.text)).collect();
                    for path in
                        files::write_all(dir, &units, *force).map_err(anyhow::Error::from)?
                    {
                        eprintln!("wrote {path}");
                    }
                }
                None => stdout = systemd::concatenate(&export.units),
            }
            export.warnings
        }
        ExportTarget::Kubernetes {
            out,
            image,
            name,
            workdir,
            force,
        } => {
            let options = kubernetes::Options {
                name: name.clone(),
                image: image.clone(),
                workdir: workdir.clone(),
            };
            let export = kubernetes::export(&config, &options);
            let text = kubernetes::render(&config, &export);
            match out {
                Some(file) => {
                    files::write_one(file, &text, *force).map_err(anyhow::Error::from)?;
                    eprintln!("wrote {file}");
                }
                None => stdout = text,
            }
            export.warnings
        }
    };
    std::io::stdout()
        .lock()
        .write_all(stdout.as_bytes())
        .context("cannot write to stdout")?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// `runpmctl logs`: from the daemon, which also follows; or, when none runs, from the log
/// files it left in the state directory.
fn logs(cli: &Cli) -> Result<(), Failure> {
    let Command::Logs {
        names,
        follow,
        lines,
        since,
        timestamps,
    } = &cli.command
    else {
        return Ok(());
    };
    // `--since` alone shows everything since then, as `docker compose logs --since` does.
    let per_service = lines.unwrap_or(if since.is_some() { usize::MAX } else { 10 });
    let since = since.map(|s| s.at(SystemTime::now()));
    let mut client = match connect(cli) {
        Ok(client) => client,
        Err(Failure::NoDaemon(e)) => {
            return logs_from_files(cli, names, per_service, since, *timestamps, *follow, e);
        }
        Err(e) => return Err(e),
    };
    // Prefixes keep one width for the whole stream: that of the longest name shown.
    let shown = if names.is_empty() {
        let reply = client.call(&Request::Status { services: vec![] }, cli.timeout)?;
        let status: StatusResult = decode(reply.into_result().map_err(Failure::Daemon)?, "status")?;
        status.services.into_iter().map(|s| s.name).collect()
    } else {
        names.clone()
    };
    let width = shown.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let request = Request::Logs {
        services: names.clone(),
        lines: per_service,
        follow: *follow,
        since,
    };
    let mut failure = None;
    let mut stdout = std::io::stdout().lock();
    client.stream(&request, cli.timeout, |reply| {
        let result = match reply.into_result() {
            Ok(result) => result,
            Err(e) => {
                failure = Some(Failure::Daemon(e));
                return false;
            }
        };
        let batch: LogsResult = match decode(result, "logs") {
            Ok(batch) => batch,
            Err(e) => {
                failure = Some(e);
                return false;
            }
        };
        let text = ipc::log_lines(&batch, *timestamps, width);
        // A closed stdout (`| head`) ends the stream quietly; without -f, one batch is all.
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_ok()
            && *follow
    })?;
    failure.map_or(Ok(()), Err)
}

/// `runpmctl logs` with no daemon: the files under STATE_DIR/logs. There is nothing to
/// follow, which is said on stderr; the lines are still worth showing (after a crash or a
/// `runpm down`, they are where the last words are).
fn logs_from_files(
    cli: &Cli,
    names: &[String],
    per_service: usize,
    since: Option<SystemTime>,
    timestamps: bool,
    follow: bool,
    no_daemon: anyhow::Error,
) -> Result<(), Failure> {
    // Without a project (only a socket given, or no config) there are no files to read.
    let Ok(state) = locate_state(cli) else {
        return Err(Failure::NoDaemon(no_daemon));
    };
    // A service of the config that never printed has no file: it has no lines, which is no
    // error. Any other name without a file is (a typo gets the names that have files).
    let logged = runpm::logs::logged_services(&state.logs_dir).map_err(anyhow::Error::from)?;
    let configured = configured_services(cli);
    let wanted: Vec<String> = names
        .iter()
        .filter(|n| logged.contains(n) || !configured.contains(n))
        .cloned()
        .collect();
    let lines = if wanted.is_empty() && !names.is_empty() {
        Vec::new()
    } else {
        runpm::logs::read_logs(&state.logs_dir, &wanted, per_service, since)
            .map_err(anyhow::Error::from)?
    };
    let shown = if names.is_empty() {
        logged
    } else {
        names.to_vec()
    };
    let width = shown.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let batch = LogsResult {
        lines,
        missed: None,
    };
    print(&ipc::log_lines(&batch, timestamps, width))?;
    if follow {
        eprintln!(
            "runpmctl: no runpm daemon is running for this project; these lines are from {} \
             and nothing more will come",
            state.logs_dir
        );
    }
    Ok(())
}

/// The service names of the project's config, when it can be loaded (empty otherwise).
fn configured_services(cli: &Cli) -> Vec<String> {
    let Ok(cwd) = std::env::current_dir() else {
        return Vec::new();
    };
    let Ok(cwd) = Utf8PathBuf::try_from(cwd) else {
        return Vec::new();
    };
    runpm::config::discover(cli.file.as_deref(), &cwd)
        .ok()
        .and_then(|path| runpm::config::load(&path).ok())
        .map(|config| config.services.into_keys().collect())
        .unwrap_or_default()
}

/// `runpmctl top`: exit 3 without a daemon (checked first, like every command), 2 without
/// a terminal, 1 when the daemon goes away while it runs.
fn top(cli: &Cli, mouse: bool) -> Result<(), Failure> {
    use runpm::top::{Options, Outcome, TopError};
    let connect = connector(cli)?;
    let client = connect()?;
    if let Err(e) = runpm::top::check_terminal() {
        return Err(usage("top", &e.to_string()));
    }
    let options = Options {
        mouse,
        colour: runpm::cli::colour::stdout(false),
        timeout: cli.timeout,
    };
    match runpm::top::run(client, connect, options) {
        Ok(Outcome::Quit) => Ok(()),
        Ok(Outcome::Signalled(signal)) => {
            runpm::top::reraise(signal);
            Ok(())
        }
        Err(e @ TopError::NotATerminal) => Err(usage("top", &e.to_string())),
        Err(e) => Err(Failure::Other(e.into())),
    }
}

/// Opens connections to the daemon found as [`connect`] finds it, again and again (`top`
/// uses one per feed).
fn connector(cli: &Cli) -> Result<runpm::top::feed::Connect, Failure> {
    if let Some(socket) = cli.socket.clone().filter(|p| !p.as_str().is_empty()) {
        return Ok(std::sync::Arc::new(move || Client::connect(&socket)));
    }
    let state = locate_state(cli)?;
    Ok(std::sync::Arc::new(move || {
        Client::connect_state_dir(&state)
    }))
}

/// A usage error in clap's format, with the usage line of `subcommand`.
fn usage(subcommand: &str, message: &str) -> Failure {
    let mut cli = Cli::command();
    cli.build();
    let kind = clap::error::ErrorKind::MissingRequiredArgument;
    Failure::Usage(match cli.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(kind, message),
        None => cli.error(kind, message),
    })
}

/// Connects to `--socket`, or to the socket of the project found from the config.
fn connect(cli: &Cli) -> Result<Client, Failure> {
    let nonempty = |p: &Option<Utf8PathBuf>| p.clone().filter(|p| !p.as_str().is_empty());
    if let Some(socket) = nonempty(&cli.socket) {
        return Ok(Client::connect(&socket)?);
    }
    let state = locate_state(cli)?;
    Ok(Client::connect_state_dir(&state)?)
}

/// The project's state directory, found from `--state-dir` or the config.
fn locate_state(cli: &Cli) -> Result<ipc::StateDir, Failure> {
    let nonempty = |p: &Option<Utf8PathBuf>| p.clone().filter(|p| !p.as_str().is_empty());
    let cwd = std::env::current_dir().context("cannot find the current directory")?;
    let cwd = Utf8PathBuf::try_from(cwd).context("the current directory is not UTF-8")?;
    let state_dir = nonempty(&cli.state_dir);
    // Without a config there is no project, so no daemon can run for it.
    ipc::locate(cli.file.as_deref(), &cwd, state_dir.as_deref())
        .map_err(|e| Failure::NoDaemon(e.into()))
}

fn decode<T: DeserializeOwned>(result: Json, what: &str) -> Result<T, Failure> {
    result
        .decode()
        .map_err(|e| anyhow!(e).context(format!("the daemon's reply to {what} cannot be read")))
        .map_err(Failure::Other)
}

/// How long the old image may take to exec once it said it would: the exec closes every
/// control connection at once, so this is only reached when `execve` itself failed.
const REEXEC_CLOSE: Duration = Duration::from_secs(10);

/// `runpmctl reexec` after the daemon said yes: done once the old image's connection
/// closed (it exec'd) and the new one answers on the same socket, with the same pid.
fn reexecuted(
    cli: &Cli,
    mut client: ipc::Client,
    result: Json,
    json: bool,
) -> Result<String, Failure> {
    let answer: serde_json::Value = decode(result, "reexec")?;
    let binary = answer["binary"].as_str().unwrap_or("?").to_owned();
    let pid = client.hello().daemon_pid;
    if client.wait_closed(REEXEC_CLOSE.min(cli.timeout)).is_err() {
        return Err(Failure::Other(anyhow::anyhow!(
            "runpm (pid {pid}) said it would re-execute {binary} but is still the old image \
             (the exec failed; its log says why); it goes on serving"
        )));
    }
    let again = connect(cli)?;
    let now = again.hello().daemon_pid;
    if now != pid {
        return Err(Failure::Other(anyhow::anyhow!(
            "a different runpm (pid {now}, not {pid}) answers after the re-exec"
        )));
    }
    if json {
        let done = serde_json::json!({ "daemon_pid": pid, "binary": binary, "reexecuted": true });
        return Ok(format!("{}\n", pretty(&done)?));
    }
    Ok(format!(
        "runpm (pid {pid}) re-executed {binary}; every service kept\n"
    ))
}
