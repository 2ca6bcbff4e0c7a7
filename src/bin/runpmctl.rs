//! `runpmctl`: steers a running runpm over its control socket.
//!
//! Thin by design: parse the arguments, find the socket, send one request, print the reply
//! with the library's renderers. Every exit code is decided in [`Failure::code`].

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use camino::Utf8PathBuf;
use clap::{Args, CommandFactory, Parser, Subcommand};
use serde::de::DeserializeOwned;

use runpm::ipc::{
    self, Client, ClientError, ErrorKind, LogsResult, ProtocolError, ReloadResult, Request,
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

    pub const HELP: &str = "\
Exit status:
  0  success
  1  the operation failed (the message says why)
  2  usage error
  3  no runpm daemon is running for this project";
}

#[derive(Parser)]
#[command(
    name = "runpmctl",
    version,
    about = "Inspect and steer a running runpm",
    after_help = exit::HELP
)]
struct Cli {
    /// The control socket to talk to (skips finding the project's config)
    #[arg(long, global = true, env = "RUNPM_SOCKET", value_name = "PATH")]
    socket: Option<Utf8PathBuf>,
    /// The project's services.toml or unit directory, to find its daemon [default:
    /// $RUNPM_FILE, else services.toml in the current or nearest parent directory]. Give it
    /// before the command, as with `docker compose -f`: after it, `logs -f` means follow
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    file: Option<Utf8PathBuf>,
    /// The project's state directory (holds runpm.sock) [default: the config's
    /// `[runpm] state_dir`, else .runpm beside the config]
    #[arg(long, global = true, env = "RUNPM_STATE_DIR", value_name = "DIR")]
    state_dir: Option<Utf8PathBuf>,
    /// How long to wait for the daemon to finish the command
    #[arg(long, global = true, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the services: a table, or the daemon's JSON
    Status {
        /// Only these services
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Print the daemon's result as JSON (`{"services": [...]}`, pretty-printed; stable)
        #[arg(long)]
        json: bool,
    },
    /// Start services and wait until they run
    Start(Targets),
    /// Stop services and wait until they stopped
    Stop {
        #[command(flatten)]
        targets: Targets,
        /// Confirm `--all`
        #[arg(long)]
        yes: bool,
    },
    /// Restart services and wait until they run again
    Restart(Targets),
    /// Re-read the config and apply the difference
    Reload {
        /// Print the plan without applying it
        #[arg(long)]
        dry_run: bool,
        /// Print the daemon's result as JSON (the plan with changed fields; stable)
        #[arg(long)]
        json: bool,
    },
    /// Write the state file (the resurrect snapshot) now and print its path
    Save,
    /// Bring back what the state file says was running
    Resurrect,
    /// Show the services' recent output, and follow it with -f
    Logs {
        /// Only these services [default: all]
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Keep printing new lines as they come (Ctrl-C to stop)
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many recent lines to show first
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
        lines: usize,
        /// Prefix each line with the time it was printed
        #[arg(short = 't', long)]
        timestamps: bool,
    },
    /// Stop every service, then the daemon
    Shutdown {
        /// Confirm
        #[arg(long)]
        yes: bool,
    },
    /// Write systemd units or a Kubernetes manifest from the config (no daemon needed);
    /// what cannot be carried over is reported on stderr as `warning: SERVICE: FIELD: why`
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
}

#[derive(Subcommand)]
enum ExportTarget {
    /// One `PREFIXNAME.service` per service, and `PREFIXall.target` wanting the autostart ones
    Systemd {
        /// Write the units into this directory [default: print them to stdout]
        #[arg(long, value_name = "DIR")]
        out: Option<Utf8PathBuf>,
        /// Put before every unit name
        #[arg(long, default_value = "runpm-", value_parser = runpm::export::systemd::parse_prefix)]
        prefix: String,
        /// Do not write `PREFIXall.target`
        #[arg(long)]
        no_target: bool,
        /// Overwrite existing files in DIR
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// One Deployment whose pod runs every service as a container
    Kubernetes {
        /// Write the manifest to this file [default: stdout]
        #[arg(long, value_name = "FILE")]
        out: Option<Utf8PathBuf>,
        /// The image the containers run [default: a placeholder, reported]
        #[arg(long)]
        image: Option<String>,
        /// The Deployment's name [default: the config's directory name]
        #[arg(long)]
        name: Option<String>,
        /// Where the config's directory is inside the image
        #[arg(long, value_name = "DIR", default_value = runpm::export::kubernetes::DEFAULT_WORKDIR)]
        workdir: Utf8PathBuf,
        /// Overwrite FILE if it exists
        #[arg(long, requires = "out")]
        force: bool,
    },
}

#[derive(Args)]
struct Targets {
    /// The services
    #[arg(
        value_name = "NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    names: Vec<String>,
    /// Every service
    #[arg(long)]
    all: bool,
}

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
    if let Command::Export { target } = &cli.command {
        return export(&cli, target);
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
            out = serde_json::to_string_pretty(&result).context("cannot print the result")?;
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
        Command::Save => {
            let path = result.get("path").and_then(|p| p.as_str()).unwrap_or("?");
            out = format!("{path}\n");
        }
        Command::Resurrect => {
            let plan: ReloadResult = decode(result, "resurrect")?;
            out = ipc::reload_plan(&plan);
        }
        // Answered by `export` above.
        Command::Export { .. } => {}
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
        Command::Export { .. } => {
            return Err(Failure::Other(anyhow!(
                "export does not talk to the daemon"
            )));
        }
    })
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
            force,
        } => {
            let which = |program: &str, path: &str| files::which(program, path);
            let options = systemd::Options {
                prefix: prefix.clone(),
                target: !no_target,
                which: &which,
                path: std::env::var("PATH").unwrap_or_default(),
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
        // A closed stdout (`| head`) ends the stream quietly.
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_ok()
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

fn decode<T: DeserializeOwned>(result: serde_json::Value, what: &str) -> Result<T, Failure> {
    serde_json::from_value(result)
        .map_err(|e| anyhow!(e).context(format!("the daemon's reply to {what} cannot be read")))
        .map_err(Failure::Other)
}
