//! `runpm`'s command line.

use camino::Utf8PathBuf;
use clap::{Parser, Subcommand};

use super::complete::{COMPLETE_SERVICES, Shell};

#[derive(Parser)]
#[command(
    name = "runpm",
    version,
    about = "Declarative process supervisor: keeps services.toml running"
)]
pub struct Cli {
    /// How runpm writes its own events: `text` (stderr, or the daemon log), `json` (one
    /// object per line), `journald` (structured, to the journal), or `auto`: journald when
    /// runpm runs as a systemd service whose output goes to the journal, else text
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "RUNPM_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
    Journald,
}

#[derive(clap::Args)]
pub struct FileArg {
    /// A services.toml, or a directory of NAME.toml unit files [default: $RUNPM_FILE, else
    /// services.toml in the current or nearest parent directory]
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<Utf8PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the services and supervise them in the foreground until stopped
    Up {
        #[command(flatten)]
        file: FileArg,
        /// Run in the background; return once the control socket answers and every service
        /// runs, completed, failed or gave up (exit 1, naming them, when any failed or gave
        /// up). The daemon's output goes to STATE_DIR/runpm.log
        #[arg(short = 'd', long)]
        detach: bool,
        /// Where the socket, state and logs live [default: $RUNPM_STATE_DIR, else the
        /// config's `state_dir`, else .runpm beside the config]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<Utf8PathBuf>,
        /// Do not reload when the config changes on disk
        #[arg(long)]
        no_watch: bool,
        /// Reap orphaned descendants as PID 1 does (PR_SET_CHILD_SUBREAPER). Always on: runpm
        /// must see the last process of a service's group end to know that its stop is
        /// complete; the flag is accepted for scripts that pass it
        #[arg(long = "subreaper")]
        _subreaper: bool,
        /// Never colour the log prefixes (also: NO_COLOR set and not empty; CLICOLOR_FORCE=1
        /// colours even when stdout is not a terminal)
        #[arg(long)]
        no_color: bool,
        /// Start only these services (and what they depend on)
        #[arg(value_name = "SERVICE")]
        services: Vec<String>,
        /// Also run the services with this profile in their `profiles` (repeatable; a
        /// comma-separated list in $RUNPM_PROFILES). Remembered for reloads
        #[arg(
            long = "profile",
            value_name = "PROFILE",
            env = "RUNPM_PROFILES",
            value_delimiter = ','
        )]
        profiles: Vec<String>,
    },
    /// Check the configuration without running it
    Validate {
        #[command(flatten)]
        file: FileArg,
        /// Print the result as JSON: `{"ok": true, "config": PATH, "services": N}`, or
        /// `{"ok": false, "errors": [{"file", "line", "column", "service", "message"}]}`
        #[arg(long)]
        json: bool,
    },
    /// Stop the project started with `runpm up -d`: every service, then the daemon; waits
    /// until the daemon has exited. Succeeds, saying so, when nothing runs
    Down {
        #[command(flatten)]
        file: FileArg,
        /// The project's state directory (holds runpm.sock) [default: $RUNPM_STATE_DIR, else
        /// the config's `state_dir`, else .runpm beside the config]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<Utf8PathBuf>,
        /// How long to wait for everything to stop (runpm's own `shutdown_timeout` applies
        /// first: it kills what does not stop in time)
        #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Print a completion script for SHELL on stdout (`runpm up <Tab>` completes the service
    /// names of the config)
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
    /// The config's service names, one per line, for the completion scripts
    #[command(name = COMPLETE_SERVICES, hide = true)]
    CompleteServices {
        #[command(flatten)]
        file: FileArg,
    },
    /// Write a runpm config from docker compose, Procfile, process-compose, pm2 (JSON or
    /// YAML) or systemd `.service` files. The format is told by the file's name, else by its
    /// content. What does not carry over is printed on stderr and written as `# not carried
    /// over:` comments; malformed input fails with its file:line:column
    Import {
        /// The files to import, together (systemd units that name each other become
        /// dependencies)
        #[arg(value_name = "FILE", required = true, value_hint = clap::ValueHint::FilePath)]
        files: Vec<Utf8PathBuf>,
        /// Write this services.toml [default: print it on stdout]
        #[arg(
            short = 'o',
            long = "output",
            value_name = "FILE",
            conflicts_with = "units"
        )]
        output: Option<Utf8PathBuf>,
        /// Write one NAME.toml unit file per service into this directory instead
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        units: Option<Utf8PathBuf>,
        /// Overwrite files that exist
        #[arg(long)]
        force: bool,
    },
    /// Internal: the new image of a re-executed daemon, reading the old one's state (see
    /// `runpmctl reexec`)
    #[command(name = "__reexec", hide = true)]
    Reexec {
        /// The memfd holding the state
        #[arg(long)]
        state_fd: i32,
    },
    /// Internal: exits 0 when this binary can take over from a daemon whose state has this
    /// version (the pre-flight check of `runpmctl reexec`)
    #[command(name = "__reexec-check", hide = true)]
    ReexecCheck {
        #[arg(long)]
        state_version: u32,
    },
}

/// The whole command line, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
