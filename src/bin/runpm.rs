//! `runpm`: the supervisor. Parses arguments, loads the config, and hands over to the
//! library; every exit code is decided in `main`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;

use runpm::cli::complete;
use runpm::cli::runpm::{self as cli_runpm, Cli, Command, FileArg, LogFormat};
use runpm::config::{self, Config, ExitWhen};
use runpm::detach;
use runpm::errors::error_chain;
use runpm::ipc;
use runpm::logs::{Console, EventFormat, EventWriter, JsonFormat, LineSink, LogHub};
use runpm::process;
use runpm::state;
use runpm::supervisor::{self, Control, RunOptions};

/// Exit codes shared by both binaries (see runpm(1)).
mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
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
    // A detached daemon logs to a file, whatever the terminal the command ran in.
    let daemon = matches!(cli.command, Command::Up { detach: true, .. });
    init_tracing(cli.log_format, daemon);
    ExitCode::from(match cli.command {
        Command::Validate { file, json } => validate(file, json),
        Command::Completions { shell } => {
            let script = complete::script_with(shell, &mut cli_runpm::command(), &complete::RUNPM);
            print!("{script}");
            exit::OK
        }
        Command::CompleteServices { file } => complete_services(&file),
        Command::Down {
            file,
            state_dir,
            timeout,
        } => down(&file, state_dir.as_deref(), timeout),
        Command::Up {
            file,
            detach,
            state_dir,
            no_watch,
            no_color,
            services,
            ..
        } => up(UpArgs {
            file,
            detach,
            state_dir,
            no_watch,
            no_color,
            services,
        }),
    })
}

fn init_tracing(format: LogFormat, daemon: bool) {
    use tracing_subscriber::prelude::*;

    let level = match std::env::var("RUNPM_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    // journald only where it is known to be there and reading: a journal that stops
    // reading blocks every log call, which for a supervisor (or PID 1) means no reaping.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some()
        && std::path::Path::new("/run/systemd/journal/socket").exists();
    let format = match format {
        LogFormat::Auto if under_journal => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    if format == LogFormat::Journald {
        match tracing_journald::layer() {
            Ok(journal) => {
                let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
                tracing_subscriber::registry()
                    .with(journal.with_syslog_identifier("runpm".into()))
                    .with(filter)
                    .with(runpm::logs::lifecycle::Tap)
                    .init();
                return;
            }
            Err(e) => eprintln!("runpm: the journal cannot be used ({e}); logging to stderr"),
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(EventWriter)
        .with_max_level(level);
    if format == LogFormat::Json {
        let json = builder.with_ansi(false).event_format(JsonFormat).finish();
        json.with(runpm::logs::lifecycle::Tap).init();
        return;
    }
    let terminal = !daemon && std::io::stderr().is_terminal();
    let text = EventFormat {
        ansi: !daemon && runpm::cli::colour::stderr(false),
        timestamps: !terminal,
    };
    // The field formatter colours by itself unless told: a daemon log must be plain.
    // The lifecycle tap shows what runpm does to a service in `runpmctl logs -f` of it.
    let text = builder.with_ansi(text.ansi).event_format(text).finish();
    text.with(runpm::logs::lifecycle::Tap).init();
}

/// Finds and loads the config, printing every diagnostic on failure.
fn load(file: &FileArg) -> Result<Config, u8> {
    let cwd = current_dir();
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

/// The config's service names for the completion scripts; nothing (and success) when the
/// config cannot be found or read: a completion must never print errors into the prompt.
fn complete_services(file: &FileArg) -> u8 {
    let names = config::discover(file.file.as_deref(), &current_dir())
        .ok()
        .and_then(|path| config::load(&path).ok());
    for name in names.iter().flat_map(|cfg| cfg.services.keys()) {
        println!("{name}");
    }
    exit::OK
}

fn validate(file: FileArg, json: bool) -> u8 {
    if !json {
        return match load(&file) {
            Ok(cfg) => {
                println!("ok: {} services in {}", cfg.services.len(), cfg.source);
                exit::OK
            }
            Err(code) => code,
        };
    }
    let cwd = current_dir();
    let (value, code) = match config::discover(file.file.as_deref(), &cwd) {
        Err(e) => (
            serde_json::json!({ "ok": false, "errors": [{
                "file": file.file.as_ref().map(|f| f.as_str()),
                "line": null, "column": null, "service": null,
                "message": e.to_string(),
            }]}),
            exit::FAILED,
        ),
        Ok(path) => match config::load(&path) {
            Ok(cfg) => (
                serde_json::json!({
                    "ok": true,
                    "config": cfg.source.as_str(),
                    "services": cfg.services.len(),
                }),
                exit::OK,
            ),
            Err(errors) => {
                let errors: Vec<serde_json::Value> = errors
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "file": d.file.as_str(),
                            "line": d.line,
                            "column": d.column,
                            "service": d.service,
                            "message": d.message,
                        })
                    })
                    .collect();
                (
                    serde_json::json!({ "ok": false, "errors": errors }),
                    exit::FAILED,
                )
            }
        },
    };
    match serde_json::to_string_pretty(&value) {
        Ok(text) => println!("{text}"),
        Err(e) => {
            eprintln!("runpm: cannot print the result: {e}");
            return exit::FAILED;
        }
    }
    code
}

/// `runpm down`: `runpmctl shutdown --yes` for the project, waiting until the daemon has
/// exited. Nothing running is not an error (as with `docker compose down`): the goal, a
/// stopped project, holds.
fn down(file: &FileArg, state_dir: Option<&Utf8Path>, timeout: std::time::Duration) -> u8 {
    let cwd = current_dir();
    let state = match ipc::locate(file.file.as_deref(), &cwd, state_dir) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("runpm: {e}");
            return exit::FAILED;
        }
    };
    let mut client = match ipc::Client::connect_state_dir(&state) {
        Ok(client) => client,
        Err(e) if e.is_no_daemon() => {
            println!("runpm: nothing is running for this project ({})", state.dir);
            return exit::OK;
        }
        Err(e) => {
            eprintln!("runpm: {}", error_chain(&e));
            return exit::FAILED;
        }
    };
    let pid = client.hello().daemon_pid;
    let stopped = client
        .call(&ipc::Request::Shutdown, timeout)
        .map_err(|e| error_chain(&e))
        .and_then(|reply| reply.into_result().map_err(|e| e.message))
        // Done when the daemon is gone: its connection closes as it exits.
        .and_then(|_| client.wait_closed(timeout).map_err(|e| error_chain(&e)));
    match stopped {
        Ok(_) => {
            println!("runpm (pid {pid}) stopped every service and exited");
            exit::OK
        }
        Err(e) => {
            eprintln!("runpm: cannot stop the project's runpm (pid {pid}): {e}");
            exit::FAILED
        }
    }
}

struct UpArgs {
    file: FileArg,
    detach: bool,
    state_dir: Option<Utf8PathBuf>,
    no_watch: bool,
    no_color: bool,
    services: Vec<String>,
}

fn up(args: UpArgs) -> u8 {
    let cwd = current_dir();
    let path = match config::discover(args.file.file.as_deref(), &cwd) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("runpm: {e}");
            return exit::FAILED;
        }
    };
    let loaded = config::load(&path);
    // The state directory is found even when the config is broken: its snapshot may be
    // what runs (last-known-good).
    let state = match &loaded {
        Ok(cfg) => ipc::resolve_state_dir(
            &cfg.base_dir,
            cfg.settings.state_dir.as_deref(),
            args.state_dir.as_deref(),
        ),
        Err(errors) => match ipc::locate(Some(&path), &cwd, args.state_dir.as_deref()) {
            Ok(state) if state.state_file.exists() => state,
            _ => {
                eprintln!("{errors}");
                eprintln!("runpm: {path} is invalid; nothing was started");
                return exit::FAILED;
            }
        },
    };
    if let Err(e) = state.create() {
        eprintln!("runpm: {}", error_chain(&e));
        return exit::FAILED;
    }
    // `up -d` forks the daemon: the lock file waits for the daemon to name itself.
    let claim = if args.detach {
        ipc::Claim::Later
    } else {
        ipc::Claim::Now
    };
    let waiting = |holder| {
        eprintln!(
            "runpm: {} is locked, but {holder}; waiting up to {}s for the lock to be released",
            state.dir,
            ipc::RELEASE_WAIT.as_secs()
        );
    };
    let mut lock = match state.lock_with(claim, waiting) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("runpm: {}", error_chain(&e));
            return exit::FAILED;
        }
    };
    if let Ok(cfg) = &loaded
        && let Some(code) = check_names(cfg, &args.services)
    {
        return code;
    }
    let token = match state::Token::load_or_create(&state.token_file) {
        Ok(token) => token,
        Err(e) => {
            eprintln!("runpm: {}", error_chain(&e));
            return exit::FAILED;
        }
    };
    let ready_pipe = if args.detach {
        match detach::fork_daemon(&state.daemon_log) {
            Ok(detach::Forked::Parent(parent)) => {
                // The lock belongs to the open file, which the daemon shares: closing our
                // copy must not unlock it.
                lock.leave_to_child();
                return report_detached(&path, &state, parent);
            }
            Ok(detach::Forked::Daemon(reporter)) => {
                if let Err(e) = lock.write_pid() {
                    eprintln!("runpm: {}", error_chain(&e));
                    return exit::FAILED;
                }
                Some(reporter)
            }
            Err(e) => {
                eprintln!("runpm: {}", error_chain(&e));
                return exit::FAILED;
            }
        }
    } else {
        None
    };
    let startup = match state::startup(&state.state_file, &token, loaded.map_err(|e| e.to_string()))
    {
        Ok(startup) => startup,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("runpm: {path} is invalid; nothing was started");
            return exit::FAILED;
        }
    };
    let cfg = startup.config;
    if let Some(code) = check_names(&cfg, &args.services) {
        return code;
    }
    if let Err(e) = process::raise_open_files_limit() {
        tracing::warn!("cannot raise the open-files limit: {e}; many services may not start");
    }
    // Orphans of a service must come to runpm: when a service's main process dies before
    // its children, only their reaping tells runpm that the group is empty.
    if !process::is_pid1()
        && let Err(e) = process::become_subreaper()
    {
        eprintln!("runpm: cannot become a subreaper: {e}");
        return exit::FAILED;
    }
    let colour = runpm::cli::colour::stdout(args.no_color);
    let logs = Arc::new(LogHub::new(&state.logs_dir));
    runpm::logs::lifecycle::attach(&logs);
    // A detached daemon's own output is its log file; the services' lines are in theirs.
    let console = ready_pipe
        .is_none()
        .then(|| Arc::new(Console::new(cfg.start_order(), colour)));
    if let Some(console) = &console {
        logs.set_console(Some(console.clone() as Arc<dyn LineSink>));
    }
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
    let detached = ready_pipe.is_some();
    let options = RunOptions {
        only: (!args.services.is_empty()).then_some(args.services),
        logs,
        // In the foreground runpm ends when nothing is left to run; a daemon keeps serving.
        exit_when_default: (!detached).then_some(ExitWhen::AllExited),
        control: Some(Control { state, lock, token }),
        watch: !args.no_watch,
        startup: Some((startup.resume, startup.last_known_good)),
        on_startup: ready_pipe.map(|mut reporter| {
            Box::new(move |news| reporter.send(news)) as Box<dyn FnMut(supervisor::News)>
        }),
    };
    let code = match runtime.block_on(supervisor::run(cfg, options)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("runpm: {}", error_chain(&e));
            exit::FAILED
        }
    };
    // The console's writer thread may still hold the services' last lines.
    if let Some(console) = &console {
        console.flush();
    }
    code
}

/// `SERVICE…` of `runpm up` must name services of the config.
fn check_names(cfg: &Config, names: &[String]) -> Option<u8> {
    let unknown = names
        .iter()
        .find(|n| !cfg.services.contains_key(n.as_str()))?;
    let known: Vec<&str> = cfg.services.keys().map(String::as_str).collect();
    let hint = config::did_you_mean(unknown, known.iter().copied())
        .map(|near| format!("did you mean `{near}`? "))
        .unwrap_or_default();
    eprintln!(
        "runpm: no service named `{unknown}` in {} ({hint}services: {})",
        cfg.source,
        known.join(", ")
    );
    Some(exit::FAILED)
}

fn current_dir() -> Utf8PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or_else(|| Utf8PathBuf::from("."))
}

/// `runpm up -d` once the daemon is forked: waits until the start is over (showing each
/// service as it settles, on a terminal), says how to reach the daemon, and exits 1 naming
/// the services that failed or gave up.
fn report_detached(config: &Utf8Path, state: &ipc::StateDir, daemon: detach::Parent) -> u8 {
    let terminal = std::io::stderr().is_terminal();
    let progress = |r: &detach::Reported| {
        if terminal {
            eprintln!("  {r}");
        }
    };
    match daemon.wait_ready(progress) {
        Ok((pid, result)) => {
            println!("runpm is running in the background (pid {pid})");
            println!(
                "  control: runpmctl -f {config}   (socket {})",
                state.socket
            );
            println!("  log:     {}", state.daemon_log);
            let bad: Vec<String> = result
                .iter()
                .filter(|r| r.bad)
                .map(|r| format!("{} ({})", r.service, r.outcome))
                .collect();
            if bad.is_empty() {
                return exit::OK;
            }
            eprintln!(
                "runpm: {} of {} services did not start: {}",
                bad.len(),
                result.len(),
                bad.join(", ")
            );
            exit::FAILED
        }
        Err(e) => {
            eprintln!("runpm: {e}");
            exit::FAILED
        }
    }
}
