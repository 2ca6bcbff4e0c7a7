//! `runpm`: the supervisor. Parses arguments, loads the config, and hands over to the
//! library. Every command returns a typed [`Failure`], reported and turned into its exit code
//! in `main` only, from the one table of them in [`runpm::cli::exit`].

// As in the library: every `unsafe` block says why it is sound, and no `unwrap` sits on a
// runtime path (runpm may be PID 1: a panic there takes the container down).
#![warn(clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;

use runpm::cli::complete;
use runpm::cli::exit::Exit;
use runpm::cli::runpm::{self as cli_runpm, Cli, Command, FileArg, LogFormat};
use runpm::config::{self, Config, ExitWhen};
use runpm::detach;
use runpm::errors::error_chain;
use runpm::ipc;
use runpm::logs::{Console, EventFormat, EventWriter, JsonFormat, LineSink, LogHub, journal};
use runpm::process;
use runpm::state;
use runpm::supervisor::{self, Control, RunOptions};

/// Why a runpm command did not succeed. Every one exits 1 ([`Exit::Failed`]): runpm's
/// usage errors are clap's, and a stopped `runpm up` exits with its services' code instead.
#[derive(Debug)]
enum Failure {
    /// The config cannot be used: its diagnostics (file:line:column each), then what that
    /// means for the command.
    InvalidConfig {
        path: Utf8PathBuf,
        diagnostics: String,
    },
    /// `runpm up -d`: the daemon runs, but these services failed or gave up while starting.
    NotStarted { bad: Vec<String>, total: usize },
    /// `validate --json`: the result on stdout already says why.
    Shown,
    /// Anything else: one line with every cause.
    Other(String),
}

impl Failure {
    fn exit(&self) -> Exit {
        match self {
            Failure::InvalidConfig { .. }
            | Failure::NotStarted { .. }
            | Failure::Shown
            | Failure::Other(_) => Exit::Failed,
        }
    }

    fn report(&self) {
        match self {
            Failure::InvalidConfig { path, diagnostics } => {
                eprintln!("{diagnostics}");
                eprintln!("runpm: {path} is invalid; nothing was started");
            }
            Failure::NotStarted { bad, total } => eprintln!(
                "runpm: {} of {total} services did not start: {}",
                bad.len(),
                bad.join(", ")
            ),
            Failure::Shown => {}
            Failure::Other(message) => eprintln!("runpm: {message}"),
        }
    }
}

/// Errors become one line with every cause, as in `cannot write state.json: No space left`.
impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Other(error_chain(&e))
    }
}

fn main() -> ExitCode {
    // Before anything can replace the file: the path a re-exec runs (see `runpm::reexec`).
    runpm::reexec::remember_binary(None);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Exit::of_clap(&e).into();
        }
    };
    // A detached daemon logs to a file, whatever the terminal the command ran in.
    let daemon = matches!(cli.command, Command::Up { detach: true, .. });
    if let Command::Reexec { state_fd } = cli.command {
        return match resume(state_fd, cli.log_format) {
            Ok(exit) => exit.into(),
            Err(failure) => {
                failure.report();
                failure.exit().into()
            }
        };
    }
    init_tracing(cli.log_format, daemon);
    match run(cli.command) {
        Ok(exit) => exit.into(),
        Err(failure) => {
            failure.report();
            failure.exit().into()
        }
    }
}

/// Runs one command; `Ok` is how it ended (always success, but for `up`: its services' code).
fn run(command: Command) -> Result<Exit, Failure> {
    match command {
        Command::Validate { file, json } => validate(file, json).map(|()| Exit::Ok),
        Command::Completions { shell } => {
            let script = complete::script_with(shell, &mut cli_runpm::command(), &complete::RUNPM);
            print!("{script}");
            Ok(Exit::Ok)
        }
        Command::CompleteServices { file } => {
            complete_services(&file);
            Ok(Exit::Ok)
        }
        Command::Import {
            files,
            output,
            units,
            force,
        } => import(&files, output, units, force).map(|()| Exit::Ok),
        Command::ReexecCheck { state_version } => {
            if state_version == runpm::reexec::STATE_VERSION {
                Ok(Exit::Ok)
            } else {
                Err(Failure::Other(format!(
                    "this runpm ({}) reads re-exec state version {}, not {state_version}",
                    env!("CARGO_PKG_VERSION"),
                    runpm::reexec::STATE_VERSION
                )))
            }
        }
        Command::Reexec { .. } => Err(Failure::Other("`__reexec` is runpm's own".into())),
        Command::Down {
            file,
            state_dir,
            timeout,
        } => down(&file, state_dir.as_deref(), timeout).map(|()| Exit::Ok),
        Command::Up {
            file,
            detach,
            state_dir,
            no_watch,
            no_color,
            services,
            profiles,
            ..
        } => up(UpArgs {
            file,
            detach,
            state_dir,
            no_watch,
            no_color,
            services,
            profiles,
        }),
    }
}

/// Where runpm's own events go under the journal, kept to be flushed on the way out.
static EVENT_JOURNAL: std::sync::OnceLock<Arc<journal::Journal>> = std::sync::OnceLock::new();

/// How long runpm's exit waits for the journal to take the last lines.
const JOURNAL_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

fn init_tracing(format: LogFormat, daemon: bool) {
    use tracing_subscriber::prelude::*;
    let level = match std::env::var("RUNPM_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    // The journal when runpm's stderr is the journal (systemd's JOURNAL_STREAM names it).
    // Its socket is non-blocking: a journal that stops reading costs lines, never a wait,
    // which for a supervisor (or PID 1) would mean no reaping.
    let format = match format {
        LogFormat::Auto if journal::stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    if format == LogFormat::Journald {
        match journal::Journal::connect(std::path::Path::new(journal::SOCKET)) {
            Ok(socket) => {
                let socket = Arc::new(socket);
                let _ = EVENT_JOURNAL.set(socket.clone());
                // The journal stamps every entry itself and keeps the level as its priority.
                tracing_subscriber::fmt()
                    .with_writer(journal::EventJournal(socket))
                    .with_max_level(level)
                    .with_ansi(false)
                    .event_format(journal::JournalFormat)
                    .finish()
                    .init();
                return;
            }
            Err(e) => eprintln!(
                "runpm: the journal cannot be used ({}: {e}); logging to stderr",
                journal::SOCKET
            ),
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(EventWriter)
        .with_max_level(level);
    if format == LogFormat::Json {
        let json = builder.with_ansi(false).event_format(JsonFormat).finish();
        json.init();
        return;
    }
    let terminal = !daemon && std::io::stderr().is_terminal();
    let text = EventFormat {
        ansi: !daemon && runpm::cli::colour::stderr(false),
        timestamps: !terminal,
    };
    // The field formatter colours by itself unless told: a daemon log must be plain.
    let text = builder.with_ansi(text.ansi).event_format(text).finish();
    text.init();
}

/// Finds and loads the config, printing every diagnostic on failure.
fn load(file: &FileArg) -> Result<Config, Failure> {
    let cwd = current_dir();
    let path = config::discover(file.file.as_deref(), &cwd)?;
    config::load(&path).map_err(|errors| Failure::InvalidConfig {
        diagnostics: errors.to_string(),
        path,
    })
}

/// The config's service names for the completion scripts; nothing (and success) when the
/// config cannot be found or read: a completion must never print errors into the prompt.
fn complete_services(file: &FileArg) {
    let names = config::discover(file.file.as_deref(), &current_dir())
        .ok()
        .and_then(|path| config::load(&path).ok());
    for name in names.iter().flat_map(|cfg| cfg.services.keys()) {
        println!("{name}");
    }
}

fn validate(file: FileArg, json: bool) -> Result<(), Failure> {
    if !json {
        let cfg = load(&file)?;
        // Loud but not fatal: a laptop without delegation still runs the project.
        for warning in runpm::cgroup::report::validate_warnings(&cfg) {
            eprintln!("warning: {warning}");
        }
        println!("ok: {} services in {}", cfg.services.len(), cfg.source);
        return Ok(());
    }
    let cwd = current_dir();
    let (value, outcome) = match config::discover(file.file.as_deref(), &cwd) {
        Err(e) => (
            serde_json::json!({ "ok": false, "errors": [{
                "file": file.file.as_ref().map(|f| f.as_str()),
                "line": null, "column": null, "service": null,
                "message": e.to_string(),
            }]}),
            Err(Failure::Shown),
        ),
        Ok(path) => match config::load(&path) {
            Ok(cfg) => (
                serde_json::json!({
                    "ok": true,
                    "config": cfg.source.as_str(),
                    "services": cfg.services.len(),
                    "warnings": runpm::cgroup::report::validate_warnings(&cfg),
                }),
                Ok(()),
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
                    Err(Failure::Shown),
                )
            }
        },
    };
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| Failure::Other(format!("cannot print the result: {e}")))?;
    println!("{text}");
    outcome
}

/// `runpm down`: `runpmctl shutdown --yes` for the project, waiting until the daemon has
/// exited. Nothing running is not an error (as with `docker compose down`): the goal, a
/// stopped project, holds.
fn down(
    file: &FileArg,
    state_dir: Option<&Utf8Path>,
    timeout: std::time::Duration,
) -> Result<(), Failure> {
    let cwd = current_dir();
    let state = ipc::locate(file.file.as_deref(), &cwd, state_dir)?;
    let mut client = match ipc::Client::connect_state_dir(&state) {
        Ok(client) => client,
        Err(e) if e.is_no_daemon() => {
            println!("runpm: nothing is running for this project ({})", state.dir);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let pid = client.hello().daemon_pid;
    // Taken before the shutdown, so that the process watched is the daemon, whatever
    // takes its pid later.
    let pidfd = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let stopped = client
        .call(&ipc::Request::Shutdown, timeout)
        .map_err(|e| error_chain(&e))
        .and_then(|reply| reply.into_result().map_err(|e| e.message))
        // Its connection closes as it exits; the process itself is gone a moment later
        // (its threads end after the socket is closed).
        .and_then(|_| client.wait_closed(timeout).map_err(|e| error_chain(&e)))
        .and_then(|_| match &pidfd {
            Some(pidfd) => wait_gone(pidfd, timeout),
            None => Ok(()),
        });
    stopped
        .map_err(|e| Failure::Other(format!("cannot stop the project's runpm (pid {pid}): {e}")))?;
    println!("runpm (pid {pid}) stopped every service and exited");
    Ok(())
}

/// Waits until the process behind `pidfd` has ended (the pidfd turns readable).
fn wait_gone(pidfd: &std::os::fd::OwnedFd, timeout: std::time::Duration) -> Result<(), String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    // Beyond what poll can wait (24 days), wait as long as it can.
    let wait = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, wait) {
        Ok(0) => Err(format!(
            "it closed its connection but had not exited {}s later",
            timeout.as_secs()
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("cannot wait for it to exit: {e}")),
    }
}

struct UpArgs {
    file: FileArg,
    detach: bool,
    state_dir: Option<Utf8PathBuf>,
    no_watch: bool,
    no_color: bool,
    services: Vec<String>,
    profiles: Vec<String>,
}

/// `runpm up`: `Ok` once the services have ended, with their code.
fn up(args: UpArgs) -> Result<Exit, Failure> {
    let cwd = current_dir();
    let path = config::discover(args.file.file.as_deref(), &cwd)?;
    let selection = config::Selection {
        profiles: args
            .profiles
            .iter()
            .flat_map(|p| config::profiles::parse_list(p))
            .collect(),
        services: args.services.iter().cloned().collect(),
    };
    let loaded = config::load(&path).map(|mut cfg| {
        cfg.select(&selection);
        cfg
    });
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
                return Err(Failure::InvalidConfig {
                    diagnostics: errors.to_string(),
                    path,
                });
            }
        },
    };
    state.create()?;
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
    let mut lock = state.lock_with(claim, waiting)?;
    if let Ok(cfg) = &loaded {
        check_names(cfg, &args.services)?;
    }
    let token = state::Token::load_or_create(&state.token_file)?;
    let ready_pipe = if args.detach {
        match detach::fork_daemon(&state.daemon_log) {
            Ok(detach::Forked::Parent(parent)) => {
                // The lock belongs to the open file, which the daemon shares: closing our
                // copy must not unlock it.
                lock.leave_to_child();
                return report_detached(&path, &state, parent).map(|()| Exit::Ok);
            }
            Ok(detach::Forked::Daemon(reporter)) => {
                lock.write_pid()?;
                Some(reporter)
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let startup = state::startup(&state.state_file, &token, loaded.map_err(|e| e.to_string()))
        .map_err(|diagnostics| Failure::InvalidConfig {
            path: path.clone(),
            diagnostics,
        })?;
    let cfg = startup.config;
    check_names(&cfg, &args.services)?;
    if let Err(e) = process::raise_open_files_limit() {
        tracing::warn!("cannot raise the open-files limit: {e}; many services may not start");
    }
    // Orphans of a service must come to runpm: when a service's main process dies before
    // its children, only their reaping tells runpm that the group is empty.
    if !process::is_pid1()
        && let Err(e) = process::become_subreaper()
    {
        return Err(Failure::Other(format!("cannot become a subreaper: {e}")));
    }
    let colour = runpm::cli::colour::stdout(args.no_color);
    let logs = Arc::new(LogHub::new(&state.logs_dir));
    let (console, journal) = service_sinks(&logs, ready_pipe.is_none(), cfg.start_order(), colour);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the event loop: {e}")))?;
    let detached = ready_pipe.is_some();
    // A replicated service named on the command line stands for its replicas.
    let only: Vec<String> = args
        .services
        .iter()
        .flat_map(|name| match cfg.replicated.contains_key(name) {
            true => cfg
                .services
                .values()
                .filter(|s| s.replica_of.as_ref() == Some(name))
                .map(|s| s.name.clone())
                .collect(),
            false => vec![name.clone()],
        })
        .collect();
    let options = RunOptions {
        only: (!only.is_empty()).then_some(only),
        logs,
        // In the foreground runpm ends when nothing is left to run; a daemon keeps serving.
        exit_when_default: (!detached).then_some(ExitWhen::AllExited),
        control: Some(Control { state, lock, token }),
        watch: !args.no_watch,
        startup: Some((startup.resume, startup.last_known_good)),
        on_startup: ready_pipe.map(|mut reporter| {
            Box::new(move |news| reporter.send(news)) as Box<dyn FnMut(supervisor::News)>
        }),
        console: console.is_some(),
        resumed: None,
    };
    serve(&runtime, cfg, options, console, journal)
}

/// `SERVICE…` of `runpm up` must name services of the config.
fn check_names(cfg: &Config, names: &[String]) -> Result<(), Failure> {
    let Some(unknown) = names.iter().find(|n| {
        !cfg.services.contains_key(n.as_str()) && !cfg.replicated.contains_key(n.as_str())
    }) else {
        return Ok(());
    };
    let known: Vec<&str> = cfg.services.keys().map(String::as_str).collect();
    let hint = config::did_you_mean(unknown, known.iter().copied())
        .map(|near| format!("did you mean `{near}`? "))
        .unwrap_or_default();
    Err(Failure::Other(format!(
        "no service named `{unknown}` in {} ({hint}services: {})",
        cfg.source,
        known.join(", ")
    )))
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
fn report_detached(
    config: &Utf8Path,
    state: &ipc::StateDir,
    daemon: detach::Parent,
) -> Result<(), Failure> {
    let terminal = std::io::stderr().is_terminal();
    let progress = |r: &detach::Reported| {
        if terminal {
            eprintln!("  {r}");
        }
    };
    let (pid, result) = daemon
        .wait_ready(progress)
        .map_err(|e| Failure::Other(e.to_string()))?;
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
        return Ok(());
    }
    Err(Failure::NotStarted {
        bad,
        total: result.len(),
    })
}

/// `runpm import`: the config on stdout or in the files asked for, what did not carry over
/// on stderr.
fn import(
    files: &[Utf8PathBuf],
    output: Option<Utf8PathBuf>,
    units: Option<Utf8PathBuf>,
    force: bool,
) -> Result<(), Failure> {
    use runpm::import::{self, Target};
    let target = match (output, units) {
        (Some(file), _) => Target::File(file),
        (None, Some(dir)) => Target::Units(dir),
        (None, None) => Target::Stdout,
    };
    let imported = import::import(files, &target.dir())?;
    for note in &imported.notes {
        eprintln!("runpm import: warning: {}: {}", note.file, note.message);
    }
    for service in &imported.services {
        for lost in &service.lost {
            eprintln!(
                "runpm import: warning: {} (service `{}`): {lost}",
                service.origin, service.name
            );
        }
    }
    let sources: Vec<String> = files.iter().map(ToString::to_string).collect();
    let text = import::deliver(&imported, &sources, &target, force)?;
    print!("{text}");
    match &target {
        Target::Stdout => {}
        Target::File(path) | Target::Units(path) => eprintln!(
            "runpm import: wrote {} service{} to {path}; check it with `runpm validate -f {path}`",
            imported.services.len(),
            if imported.services.len() == 1 {
                ""
            } else {
                "s"
            }
        ),
    }
    Ok(())
}

/// `runpm __reexec --state-fd N`: the new image of a daemon that re-executed itself. It
/// takes back the state and every descriptor the old image handed on, and serves on.
fn resume(state_fd: i32, log_format: LogFormat) -> Result<Exit, Failure> {
    use std::os::fd::FromRawFd;
    if state_fd < 3 {
        return Err(Failure::Other(format!("bad state descriptor {state_fd}")));
    }
    // SAFETY: the previous image passed this memfd for us alone.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(state_fd) };
    let state = runpm::reexec::read_state(fd)?;
    runpm::reexec::remember_binary(Some(state.binary.clone()));
    init_tracing(log_format, !state.console);
    // SAFETY: every descriptor the state names was handed on by the previous image, open,
    // and owned by nothing in this one yet.
    let (resumed, state) = unsafe { runpm::daemon::adopt(state) };
    let dir = ipc::StateDir::at(state.state_dir.clone());
    let Some(lock_fd) = state.fds.lock else {
        return Err(Failure::Other("the re-exec state has no lock".into()));
    };
    // SAFETY: as above; the lock's descriptor is taken once, here (`adopt` leaves it out).
    let lock_fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(lock_fd) };
    let lock = state::InstanceLock::adopt(lock_fd, dir.lock_file.clone())?;
    let token = state::Token::load_or_create(&dir.token_file)?;
    let table = &state.table;
    let cfg = Config {
        source: table.source.clone().into(),
        // A unit directory is its own base; a file's base is where it lies.
        base_dir: match Utf8Path::new(&table.source) {
            dir if dir.is_dir() => dir.to_owned(),
            file => file.parent().map(Utf8Path::to_owned).unwrap_or_default(),
        },
        settings: table.settings.clone(),
        services: table
            .services
            .iter()
            .map(|s| (s.spec.name.clone(), s.spec.clone()))
            .collect(),
        replicated: table.replicated.clone(),
        selection: table.selection.clone(),
    };
    let logs = Arc::new(LogHub::new(&dir.logs_dir));
    // The old image's sinks, chosen again: its stderr (the journal, or not) came along.
    let (console, journal) = service_sinks(
        &logs,
        state.console || journal::stderr_is_journal(),
        cfg.start_order(),
        runpm::cli::colour::stdout(false),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the event loop: {e}")))?;
    let options = RunOptions {
        only: None,
        logs,
        exit_when_default: state.exit_when_default.clone(),
        control: Some(Control {
            state: dir,
            lock,
            token,
        }),
        watch: state.watch,
        startup: None,
        on_startup: None,
        console: state.console,
        resumed: Some(resumed),
    };
    serve(&runtime, cfg, options, console, journal)
}

/// Where the services' lines go besides their log files, in the foreground: the journal
/// under systemd (runpm's stderr is the journal), each service under its own name
/// (`journalctl -t web`), else the prefixed console. A detached daemon has neither: its own
/// output is its log file.
fn service_sinks(
    logs: &LogHub,
    foreground: bool,
    order: Vec<&str>,
    colour: bool,
) -> (Option<Arc<Console>>, Option<Arc<journal::Journal>>) {
    let journal = (foreground && journal::stderr_is_journal())
        .then(|| journal::Journal::connect(std::path::Path::new(journal::SOCKET)))
        .and_then(|connected| {
            connected
                .inspect_err(|e| {
                    tracing::warn!(
                        "the services' lines go to stdout, not to the journal ({}: {e})",
                        journal::SOCKET
                    );
                })
                .ok()
        })
        .map(Arc::new);
    let console = (foreground && journal.is_none()).then(|| Arc::new(Console::new(order, colour)));
    if let Some(console) = &console {
        logs.set_console(Some(console.clone() as Arc<dyn LineSink>));
    }
    if let Some(journal) = &journal {
        logs.set_console(Some(journal.clone() as Arc<dyn LineSink>));
    }
    (console, journal)
}

/// Runs the daemon until it ends, then lets the sinks' writer threads hand on the services'
/// last lines (the journal's gives up after a while: journald may be gone).
fn serve(
    runtime: &tokio::runtime::Runtime,
    cfg: Config,
    options: RunOptions,
    console: Option<Arc<Console>>,
    journal: Option<Arc<journal::Journal>>,
) -> Result<Exit, Failure> {
    runpm::reexec::install_panic_hook();
    let ended = runtime
        .block_on(supervisor::run(cfg, options))
        .map(Exit::Services)
        .map_err(Failure::from);
    if let Some(console) = &console {
        console.flush();
    }
    for journal in journal.iter().chain(EVENT_JOURNAL.get()) {
        journal.flush(JOURNAL_FLUSH);
    }
    ended
}
