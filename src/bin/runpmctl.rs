//! `runpmctl`: steers a running runpm over its control socket.
//!
//! Thin by design: parse the arguments, find the socket, send one request, print the reply
//! with the library's renderers. Every exit code is decided in [`Failure::code`].

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use camino::Utf8PathBuf;
use clap::{CommandFactory, Parser};
use serde::de::DeserializeOwned;

use runpm::cli::complete::{self, Shell};
use runpm::cli::runpmctl::{Cli, Command, ExportTarget};
use runpm::ipc::{
    self, Client, ClientError, ErrorKind, Json, LogsResult, ProtocolError, ReloadResult, Request,
    StatusResult,
};

/// The exit codes, the one table of them (see runpmctl(1)).
mod exit {
    /// The command did what was asked.
    pub const OK: u8 = 0;
    /// The daemon answered with an error, or talking to it failed.
    pub const FAILED: u8 = 1;
    /// The command line is wrong (clap's own errors use 2 as well).
    pub const USAGE: u8 = 2;
    /// No daemon is running for this project.
    pub const NO_DAEMON: u8 = 3;
}

/// How long a completing shell waits for the daemon's service names.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(2);

/// Why runpmctl did not succeed; decides the exit code.
enum Failure {
    Usage(clap::Error),
    NoDaemon(anyhow::Error),
    /// The daemon answered with an error.
    Daemon(ProtocolError),
    Other(anyhow::Error),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::NoDaemon(_) => exit::NO_DAEMON,
            Failure::Daemon(_) | Failure::Other(_) => exit::FAILED,
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
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            if let Err(print) = e.print() {
                eprintln!("runpmctl: {e} ({print})");
            }
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    // Answered without a daemon, or without failing when there is none.
    match &cli.command {
        Command::Completions { shell } => return completions(*shell),
        Command::Export { target } => return export(&cli, target),
        Command::CompleteServices => return complete_services(&cli),
        _ => {}
    }
    let request = request(&cli.command)?;
    let mut client = connect(&cli)?;
    if let Command::Logs { timestamps, .. } = &cli.command {
        return logs(&mut client, &request, cli.timeout, *timestamps);
    }
    let reply = client.call(&request, cli.timeout)?;
    let result = reply.into_result().map_err(Failure::Daemon)?;
    let mut out = String::new();
    match &cli.command {
        Command::Status { json: true, .. } | Command::Reload { json: true, .. } => {
            // Re-indented for people; the daemon sends it on one line.
            let value: serde_json::Value = decode(result, "the command")?;
            out = serde_json::to_string_pretty(&value).context("cannot print the result")?;
            out.push('\n');
        }
        Command::Status { .. } => {
            let status: StatusResult = decode(result, "status")?;
            if let Some(errors) = &status.running_from_snapshot {
                eprintln!(
                    "runpmctl: runpm is running the last-known-good services from its state file, \
                     because the config is invalid:\n{errors}"
                );
            }
            // Named services are shown in detail (exit history included); all of them, as a
            // table.
            out = match &cli.command {
                Command::Status { names, .. } if !names.is_empty() => status
                    .services
                    .iter()
                    .map(ipc::service_detail)
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => ipc::status_table(&status.services),
            };
        }
        Command::Start(_) | Command::Stop { .. } | Command::Restart(_) => {
            let status: StatusResult = decode(result, "the command")?;
            for service in &status.services {
                out.push_str(&ipc::service_line(service));
                out.push('\n');
            }
        }
        Command::Reload { .. } => {
            let plan: ReloadResult = decode(result, "reload")?;
            out = ipc::reload_plan(&plan);
        }
        // Answered by `logs` above.
        Command::Logs { .. } => {}
        // Answered before connecting.
        Command::Completions { .. } | Command::CompleteServices | Command::Export { .. } => {}
        Command::Save => {
            let saved: serde_json::Value = decode(result, "save")?;
            let path = saved.get("path").and_then(|p| p.as_str()).unwrap_or("?");
            out = format!("{path}\n");
        }
        Command::Resurrect => {
            let plan: ReloadResult = decode(result, "resurrect")?;
            out = ipc::reload_plan(&plan);
        }
        Command::Shutdown { .. } => {
            // Done when the daemon is gone: its connection closes as it exits.
            client.wait_closed(cli.timeout)?;
            out = format!("runpm (pid {}) shut down\n", client.hello().daemon_pid);
        }
    }
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("cannot write to stdout")?;
    Ok(())
}

/// The request for a command, after the checks clap cannot express.
fn request(command: &Command) -> Result<Request, Failure> {
    Ok(match command {
        Command::Status { names, .. } => Request::Status {
            services: names.clone(),
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
        Command::Save => Request::Save,
        Command::Resurrect => Request::Resurrect,
        Command::Logs {
            names,
            follow,
            lines,
            ..
        } => Request::Logs {
            services: names.clone(),
            lines: *lines,
            follow: *follow,
        },
        Command::Shutdown { yes } => {
            if !yes {
                return Err(usage(
                    "shutdown",
                    "`shutdown` stops every service and the daemon; add --yes to confirm",
                ));
            }
            Request::Shutdown
        }
        Command::Completions { .. } | Command::CompleteServices | Command::Export { .. } => {
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
        Ok(status.services.into_iter().map(|s| s.name).collect())
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

/// Prints log lines as `NAME | line` as they arrive, until the daemon ends the stream
/// (without -f, after the first reply).
fn logs(
    client: &mut Client,
    request: &Request,
    timeout: Duration,
    timestamps: bool,
) -> Result<(), Failure> {
    let follow = matches!(request, Request::Logs { follow: true, .. });
    let mut failure = None;
    let mut stdout = std::io::stdout().lock();
    client.stream(request, timeout, |reply| {
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
        let text = ipc::log_lines(&batch, timestamps);
        // A closed stdout (`| head`) ends the stream quietly; without -f, one batch is all.
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_ok()
            && follow
    })?;
    failure.map_or(Ok(()), Err)
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
    let cwd = std::env::current_dir().context("cannot find the current directory")?;
    let cwd = Utf8PathBuf::try_from(cwd).context("the current directory is not UTF-8")?;
    let state_dir = nonempty(&cli.state_dir);
    // Without a config there is no project, so no daemon can run for it.
    let state = ipc::locate(cli.file.as_deref(), &cwd, state_dir.as_deref())
        .map_err(|e| Failure::NoDaemon(e.into()))?;
    Ok(Client::connect_state_dir(&state)?)
}

fn decode<T: DeserializeOwned>(result: Json, what: &str) -> Result<T, Failure> {
    result
        .decode()
        .map_err(|e| anyhow!(e).context(format!("the daemon's reply to {what} cannot be read")))
        .map_err(Failure::Other)
}
