//! `runpm`: the supervisor. Parses arguments, loads the config, and hands over to the
//! library; every exit code is decided in `main`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use camino::Utf8PathBuf;
use clap::{Parser, Subcommand};

use runpm::config::{self, Config};
use runpm::logs::{Console, EventFormat};
use runpm::process;
use runpm::supervisor::{self, RunOptions};

/// Exit codes shared by both binaries (see runpm(1)).
mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

#[derive(Parser)]
#[command(
    name = "runpm",
    version,
    about = "Declarative process supervisor: keeps services.toml running"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct FileArg {
    /// A services.toml, or a directory of NAME.toml unit files [default: $RUNPM_FILE, else
    /// services.toml in the current or nearest parent directory]
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    file: Option<Utf8PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the services and supervise them in the foreground until stopped
    Up {
        #[command(flatten)]
        file: FileArg,
        /// Reap orphaned descendants as PID 1 does (PR_SET_CHILD_SUBREAPER). Always on: runpm
        /// must see the last process of a service's group end to know that its stop is
        /// complete; the flag is accepted for scripts that pass it
        #[arg(long = "subreaper")]
        _subreaper: bool,
        /// Never colour the log prefixes (also: NO_COLOR set)
        #[arg(long)]
        no_color: bool,
        /// Start only these services (and what they depend on)
        #[arg(value_name = "SERVICE")]
        services: Vec<String>,
    },
    /// Check the configuration without running it
    Validate {
        #[command(flatten)]
        file: FileArg,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_tracing();
    ExitCode::from(match cli.command {
        Command::Validate { file } => validate(file),
        Command::Up {
            file,
            no_color,
            services,
            ..
        } => up(file, no_color, services),
    })
}

fn init_tracing() {
    let level = match std::env::var("RUNPM_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let terminal = std::io::stderr().is_terminal();
    let format = EventFormat {
        ansi: terminal && std::env::var_os("NO_COLOR").is_none(),
        timestamps: !terminal,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .event_format(format)
        .init();
}

/// Finds and loads the config, printing every diagnostic on failure.
fn load(file: &FileArg) -> Result<Config, u8> {
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or_else(|| Utf8PathBuf::from("."));
    let path = config::discover(file.file.as_deref(), &cwd).map_err(|e| {
        eprintln!("runpm: {e}");
        exit::FAILED
    })?;
    config::load(&path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("runpm: {} is invalid; nothing was started", path);
        exit::FAILED
    })
}

fn validate(file: FileArg) -> u8 {
    match load(&file) {
        Ok(cfg) => {
            println!("ok: {} services in {}", cfg.services.len(), cfg.source);
            exit::OK
        }
        Err(code) => code,
    }
}

fn up(file: FileArg, no_color: bool, only: Vec<String>) -> u8 {
    let cfg = match load(&file) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    if let Some(unknown) = only.iter().find(|n| !cfg.services.contains_key(n.as_str())) {
        let known: Vec<&str> = cfg.services.keys().map(String::as_str).collect();
        eprintln!(
            "runpm: no service named `{unknown}` in {} (services: {})",
            cfg.source,
            known.join(", ")
        );
        return exit::FAILED;
    }
    // Orphans of a service must come to runpm: when a service's main process dies before
    // its children, only their reaping tells runpm that the group is empty.
    if !process::is_pid1()
        && let Err(e) = process::become_subreaper()
    {
        eprintln!("runpm: cannot become a subreaper: {e}");
        return exit::FAILED;
    }
    let colour =
        !no_color && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let console = Console::new(cfg.start_order(), colour);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runpm: cannot start the event loop: {e}");
            return exit::FAILED;
        }
    };
    let options = RunOptions {
        only,
        sink: Arc::new(console),
    };
    match runtime.block_on(supervisor::run(&cfg, options)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("runpm: {e}");
            exit::FAILED
        }
    }
}
