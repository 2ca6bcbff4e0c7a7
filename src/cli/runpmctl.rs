//! `runpmctl`'s command line.

use std::time::{Duration, SystemTime};

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand};

use super::complete::{COMPLETE_SERVICES, Shell};

/// The exit codes as `--help` shows them; the binary's `exit` module holds the values.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the operation failed (the message says why)
  2  usage error
  3  no runpm daemon is running for this project";

#[derive(Parser)]
#[command(
    name = "runpmctl",
    version,
    about = "Inspect and steer a running runpm",
    after_help = EXIT_STATUS_HELP
)]
pub struct Cli {
    /// The control socket to talk to (skips finding the project's config)
    #[arg(long, global = true, env = "RUNPM_SOCKET", value_name = "PATH")]
    pub socket: Option<Utf8PathBuf>,
    /// The project's services.toml or unit directory, to find its daemon [default:
    /// $RUNPM_FILE, else services.toml in the current or nearest parent directory]. Give it
    /// before the command, as with `docker compose -f`: after it, `logs -f` means follow
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<Utf8PathBuf>,
    /// The project's state directory (holds runpm.sock) [default: the config's
    /// `[runpm] state_dir`, else .runpm beside the config]
    #[arg(long, global = true, env = "RUNPM_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<Utf8PathBuf>,
    /// How long to wait for the daemon to finish the command
    #[arg(long, global = true, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the services: a table (with what a starting service waits for), or the daemon's
    /// JSON; `ps` is the same command
    #[command(visible_alias = "ps")]
    Status {
        /// Only these services
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Print the daemon's result as JSON (`{"services": [...]}`, pretty-printed; stable)
        #[arg(long)]
        json: bool,
        /// Exit 0 only when every named service (default: every service that should run) is
        /// running or completed successfully; else print the others and exit 1. For
        /// scripts and container health checks
        #[arg(long)]
        check: bool,
    },
    /// Start services and wait until they run
    Start(Targets),
    /// Stop services and wait until they stopped (stopping one again sends SIGKILL at once)
    Stop {
        #[command(flatten)]
        targets: Targets,
        /// Confirm `--all`
        #[arg(long)]
        yes: bool,
    },
    /// Restart services and wait until they run again
    Restart(Targets),
    /// Send a signal to services' main processes (`-s HUP` to make nginx or gunicorn reload);
    /// the restart policy then applies as to any exit
    Kill {
        /// The signal, by name with or without SIG (`HUP`, `SIGUSR1`) or by number
        #[arg(short = 's', long, value_name = "SIGNAL", default_value = "SIGTERM", value_parser = parse_signal)]
        signal: String,
        /// Signal every process of each service's process group, not only its main process
        #[arg(long)]
        group: bool,
        /// The services (each must have a process)
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
        /// Print the services' status afterwards as JSON (as `status --json`)
        #[arg(long)]
        json: bool,
    },
    /// Run N replicas of a service with `replicas` (NAME.0 to NAME.N-1); only the difference
    /// starts or stops. Holds until the config's `replicas` changes
    Scale {
        /// The service as written in the config (with `replicas`)
        #[arg(value_name = "NAME")]
        name: String,
        /// How many replicas to run (0 stops them all)
        #[arg(value_name = "N")]
        replicas: u32,
        /// Print the result as JSON (`service`, `replicas`, `config_replicas`, `started`,
        /// `stopped`)
        #[arg(long)]
        json: bool,
    },
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
    Save {
        /// Print `{"path": "..."}`
        #[arg(long)]
        json: bool,
    },
    /// Bring back what the state file says was running
    Resurrect {
        /// Print the plan as JSON (as `reload --json`)
        #[arg(long)]
        json: bool,
    },
    /// Show the services' recent output, and follow it with -f. Without a running daemon,
    /// the log files in STATE_DIR/logs are read instead
    Logs {
        /// Only these services [default: all]
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Keep printing new lines as they come, and runpm's lifecycle lines for these
        /// services (Ctrl-C to stop)
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many recent lines to show first, per service [default: 10; all with --since]
        #[arg(short = 'n', long = "lines", value_name = "N")]
        lines: Option<usize>,
        /// Only lines printed since then: a duration ago (`10m`, `1h 30m`) or a time
        /// (`2026-11-22T03:45:00Z`, `2026-11-22 03:45:00`, UTC)
        #[arg(long, value_name = "DURATION|TIMESTAMP", value_parser = parse_since)]
        since: Option<Since>,
        /// Prefix each line with the time it was printed
        #[arg(short = 't', long)]
        timestamps: bool,
    },
    /// Stop every service, then the daemon (asking again while it stops kills what is left)
    Shutdown {
        /// Confirm
        #[arg(long)]
        yes: bool,
        /// Print `{"daemon_pid": N, "shut_down": true}` once the daemon is gone
        #[arg(long)]
        json: bool,
    },
    /// Print a completion script for SHELL on stdout (service names come from the running
    /// daemon)
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the running daemon's service names, one per line (for the completion
    /// scripts; prints nothing when no daemon runs)
    #[command(name = COMPLETE_SERVICES, hide = true)]
    CompleteServices,
    /// Write systemd units or a Kubernetes manifest from the config (no daemon needed);
    /// what cannot be carried over is reported on stderr as `warning: SERVICE: FIELD: why`
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
}

#[derive(Subcommand)]
pub enum ExportTarget {
    /// One `PREFIXNAME.service` per service, and `PREFIXall.target` wanting the autostart ones
    Systemd {
        /// Write the units into this directory [default: print them to stdout]
        #[arg(long, value_name = "DIR")]
        out: Option<Utf8PathBuf>,
        /// Put before every unit name
        #[arg(long, default_value = "runpm-", value_parser = crate::export::systemd::parse_prefix)]
        prefix: String,
        /// Do not write `PREFIXall.target`
        #[arg(long)]
        no_target: bool,
        /// User units for `systemctl --user` (WantedBy=default.target, no User=/Group=)
        #[arg(long)]
        user: bool,
        /// The systemd release the units are for; keys it lacks are left out and reported
        /// [default: this machine's, from `systemctl --version`, else 252]
        #[arg(long, value_name = "N")]
        systemd_version: Option<u32>,
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
        #[arg(long, value_name = "DIR", default_value = crate::export::kubernetes::DEFAULT_WORKDIR)]
        workdir: Utf8PathBuf,
        /// Overwrite FILE if it exists
        #[arg(long, requires = "out")]
        force: bool,
    },
}

#[derive(Args)]
pub struct Targets {
    /// The services
    #[arg(
        value_name = "NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub names: Vec<String>,
    /// Every service
    #[arg(long)]
    pub all: bool,
    /// Print the services as they are once done, as JSON (as `status --json`)
    #[arg(long)]
    pub json: bool,
}

/// `--since`: how long ago, or when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Ago(Duration),
    At(SystemTime),
}

impl Since {
    /// The moment it names, counted back from `now`.
    pub fn at(self, now: SystemTime) -> SystemTime {
        match self {
            Since::Ago(ago) => now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH),
            Since::At(at) => at,
        }
    }
}

/// `10m` or `2026-11-22T03:45:00Z` (also with a space, fractions, or no `Z`: UTC).
pub fn parse_since(text: &str) -> Result<Since, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(Since::Ago(ago));
    }
    humantime::parse_rfc3339_weak(text.trim())
        .map(Since::At)
        .map_err(|_| {
            format!("`{text}` is neither a duration (`10m`, `1h 30m`) nor a time (`2026-11-22T03:45:00Z`)")
        })
}

/// A signal name (`HUP`, `sighup`, `SIGHUP`) or number, as its canonical name; an unknown
/// one gets the nearest name as a hint.
pub fn parse_signal(text: &str) -> Result<String, String> {
    use nix::sys::signal::Signal;
    if let Ok(number) = text.trim().parse::<i32>() {
        return Signal::try_from(number)
            .map(|s| s.as_str().to_owned())
            .map_err(|_| format!("{number} is not a signal number (`kill -l` lists them)"));
    }
    if let Some(signal) = crate::config::Signal::parse(text) {
        return Ok(signal.name().to_owned());
    }
    let upper = text.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let names: Vec<&str> = Signal::iterator().map(|s| &s.as_str()[3..]).collect();
    let hint = crate::config::did_you_mean(bare, names.iter().copied())
        .map(|near| format!(" (did you mean `{near}`?)"))
        .unwrap_or_else(|| " (`kill -l` lists them)".to_owned());
    Err(format!("unknown signal `{text}`{hint}"))
}

/// The whole command line, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
