//! The thin async loop around [`Supervisor::handle`]: it turns signals, reaped children and
//! due deadlines into events, and has the executor (`executor.rs`) carry out the effects the
//! handler returns.
//!
//! It runs on a single-threaded tokio runtime. That is a correctness property, not only a
//! saving: spawning and reaping happen on the same thread, so the reaper can never collect
//! a child between `fork` and the moment its pid is recorded, nor race std's own wait on an
//! exec failure.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{Config, ExitWhen};
use crate::ipc::{self, Call, HelloInfo, InstanceLock, StateDir};
use crate::logs::{LogHub, stderr};
use crate::notify::{self, Datagram, NotifySocket};
use crate::process;
use crate::state::{self, Resume};

use crate::notify::NotifySocket as Notify;
use crate::supervisor::{self, Event, Jitter, News, Now, StartupReport, Supervisor};

use super::contain::Containment;
use super::executor::Executor;
use super::persist::Persist;
use super::probes::{Probes, Reaped};
use super::reexec::{Carrying, Resumed};
use super::setup::{env_files, notify_sockets, release_free_memory, sync_watcher};
use super::shell::Shell;
use super::signals::{DaemonSignals, Received};

pub struct RunOptions {
    /// Services to start (with their dependencies); `None`: every `autostart` service.
    pub only: Option<Vec<String>>,
    /// Where the services' output lines go: log files, tails, followers, and the console
    /// of a foreground `up`.
    pub logs: Arc<LogHub>,
    /// When to end if the config sets no `exit_when`: a foreground `up` ends once every
    /// service ended; a detached daemon keeps serving (`None`).
    pub exit_when_default: Option<ExitWhen>,
    /// The control socket to serve, under the instance lock.
    pub control: Option<Control>,
    /// Watch the config for changes (also subject to `[runpm] watch`).
    pub watch: bool,
    /// What the state file said, and whether the config is the snapshot's (last-known-good).
    pub startup: Option<(Option<Resume>, Option<String>)>,
    /// Told, turn by turn, how the start goes (see [`StartupReport`]) until every service
    /// asked to start runs, completed, failed or gave up: a detached `runpm up -d` shows
    /// the progress and returns to the terminal then.
    pub on_startup: Option<Box<dyn FnMut(News)>>,
    /// A foreground `runpm up` printing the services' lines: a re-exec keeps doing so.
    pub console: bool,
    /// Set in a re-executed daemon: what the previous image handed on (see `reexec`).
    pub resumed: Option<Resumed>,
}

pub struct Control {
    pub state: StateDir,
    pub lock: InstanceLock,
    /// The state directory's secret, carried by every service (see `state::Token`).
    pub token: state::Token,
}

/// Supervises `config` until it is stopped or `exit_when` is met; returns runpm's exit code.
/// Signal handlers are installed here, before the first spawn: as PID 1 a signal without a
/// handler would be ignored.
pub async fn run(config: Config, mut options: RunOptions) -> Result<u8, RunError> {
    let mut sigchld = signal(SignalKind::child())?;
    let mut signals = DaemonSignals::install()?;
    let mut resumed = options.resumed.take();
    if resumed.is_some() {
        // The previous image held these back across the exec (see `reexec::exec`).
        crate::reexec::release_signals();
    }

    let (call_tx, mut calls) = mpsc::unbounded_channel::<Call>();
    let mut control_fd = None;
    // Dropping the guard at the end of this function removes the socket (if still ours).
    let _socket = match &options.control {
        Some(control) => {
            let adopted = resumed.as_mut().and_then(|r| r.control.take());
            let (listener, guard) = match adopted {
                Some(fd) => adopt_listener(fd, &control.state.socket)?,
                None => ipc::bind(&control.state.socket, &control.lock)?,
            };
            control_fd = Some(std::os::fd::AsRawFd::as_raw_fd(&listener));
            let info = HelloInfo {
                daemon_pid: std::process::id(),
                config: config.source.to_string(),
            };
            tokio::spawn(ipc::serve(listener, info, call_tx));
            Some(guard)
        }
        None => {
            drop(call_tx);
            None
        }
    };
    // `--no-watch` rules out a watcher for good; `[runpm] watch` may change with a reload.
    let mut watching = None;
    sync_watcher(
        &mut watching,
        options.watch && config.settings.watch,
        &config.source,
        &env_files(config.services.values()),
    );

    let (notify, notify_others) = match resumed.as_mut() {
        Some(r) => (
            r.notify.take().and_then(|(fd, a)| adopt_notify(fd, a)),
            r.notify_others
                .take()
                .and_then(|(fd, a)| adopt_notify(fd, a)),
        ),
        None => notify_sockets(options.control.as_ref()),
    };
    let (internal_tx, mut internal) = mpsc::unbounded_channel::<Event>();
    // Before the first spawn: runpm moves itself into its subtree's `supervisor/` leaf.
    let instance = options
        .control
        .as_ref()
        .map_or_else(|| config.source.to_string(), |c| c.state.dir.to_string());
    let cgroups = crate::cgroup::set_up(config.settings.cgroups, &instance);
    crate::cgroup::set_current(Some(cgroups.clone()));
    let contain = Containment::new(cgroups, internal_tx.clone());
    contain.announce(config.services.values());

    let mut sup = Supervisor::new(
        &config,
        options.exit_when_default.clone(),
        Jitter::from_time(),
    );
    sup.set_cgroups(contain.cgroups.tree().is_some());
    let mut executor = Executor::new(Shell {
        logs: options.logs.clone(),
        captures: JoinSet::new(),
        source: config.source.clone(),
        selection: config.selection.clone(),
        probes: Probes::new(internal_tx.clone()),
        internal: internal_tx,
        notify_address: notify.as_ref().map(|n| n.address().to_owned()),
        notify_others_address: notify_others.as_ref().map(|n| n.address().to_owned()),
        survivors: HashMap::new(),
        state_file: options.control.as_ref().map(|c| c.state.state_file.clone()),
        instance: options
            .control
            .as_ref()
            .map_or_else(String::new, |c| c.state.dir.to_string()),
        token: options.control.as_ref().map(|c| c.token.clone()),
        deferred: Vec::new(),
        persist: options
            .control
            .as_ref()
            .map(|c| Persist::new(c.state.state_file.clone())),
        // When a service manager started runpm (systemd Type=notify), it hears from runpm
        // too; what it hears and when is the supervisor's decision.
        parent: notify::Parent::from_env(),
        events: Default::default(),
        sockets: Default::default(),
        fd_store: Default::default(),
        pipes: Default::default(),
        contain,
    });
    if executor.hands.parent.is_some() {
        sup.notify_parent(notify::watchdog_from_env(), Now::real());
    }
    let mut trimmed = false;
    let mut report = StartupReport::default();
    let (resume, last_known_good) = options.startup.take().unwrap_or((None, None));
    let survivors = resume
        .as_ref()
        .map(|r| r.survivors.iter().map(|s| s.pid).collect())
        .unwrap_or_default();
    // After a re-exec what is in the services' cgroups is ours, still supervised.
    if resumed.is_none() {
        executor.hands.contain.clean_leftovers(&survivors);
    }
    sup.set_last_known_good(last_known_good);
    let mut panics = Vec::new();
    let mut effects = match resumed.as_mut().and_then(|r| r.table.take()) {
        Some(table) => {
            let (resumed_sup, effects) =
                Supervisor::resume(table, Jitter::from_time(), Now::real());
            sup = resumed_sup;
            // The same cgroups (`Tree::take` finds runpm already in its leaf): stops of the
            // services carried over wait for their cgroups again.
            sup.set_cgroups(executor.hands.contain.cgroups.tree().is_some());
            for (name, svc) in sup.services() {
                if let Some(pid) = svc.pid() {
                    executor.hands.contain.spawned(name, &svc.spec, pid);
                }
            }
            if let Some(r) = resumed.take() {
                panics = r.panics.clone();
                take_back(&mut executor.hands, r);
            }
            // Children that ended while no handler was installed sent a SIGCHLD nobody saw.
            let mut effects = effects;
            for (pid, status) in process::reap_all() {
                effects.extend(sup.handle(Event::ChildExited { pid, status }, Now::real()));
            }
            // After a panic the table is the one of the last state write: a run that the old
            // image reaped since then is no child of ours any more, and ended unseen.
            let gone: Vec<i32> = sup
                .services()
                .filter_map(|(_, s)| s.pid())
                .filter(|&pid| !process::is_child(pid))
                .collect();
            for pid in gone {
                let status = process::ExitStatus::Unknown;
                effects.extend(sup.handle(Event::ChildExited { pid, status }, Now::real()));
            }
            let kept = sup.services().count();
            let plural = if kept == 1 { "" } else { "s" };
            tracing::info!("re-executed: {kept} service{plural} kept");
            effects
        }
        None => sup.boot(
            &config,
            options.only.as_deref(),
            resume.as_ref(),
            Now::real(),
        ),
    };
    // The supervisor's table holds what it needs; a reload reads the file anew.
    drop(config);
    if let Some(resume) = resume {
        for survivor in resume.survivors {
            executor.hands.watch_survivor(survivor.pid, survivor.pidfd);
        }
    }
    // Events are written once per turn (see logs::stderr); not while waiting, when other
    // tasks may log with no turn to follow.
    stderr::hold();
    loop {
        let exit = executor.carry_out(&mut sup, effects);
        executor.hands.sweep_descriptors(&sup);
        if let Some(table) = executor.reexec.take() {
            // The answer to `runpmctl reexec` must reach its socket before the exec.
            stderr::release();
            for _ in 0..FLUSH_YIELDS {
                tokio::task::yield_now().await;
            }
            // Signals from here on wait in the kernel for the new image, and those this
            // image received but has not handled yet are raised again to join them: at
            // this thread, which has them blocked (a process-wide one could go to a helper
            // thread and be lost with this image).
            crate::reexec::hold_signals();
            for sig in signals.drain_pending() {
                // SAFETY: a signal to this very thread, blocked here: it stays pending
                // across the exec.
                unsafe { libc::pthread_kill(libc::pthread_self(), sig) };
            }
            let sockets = (control_fd, notify.as_ref(), notify_others.as_ref());
            let carrying = carrying(&options, sockets, &executor.hands, &panics);
            match carrying.state(table) {
                Some(state) => {
                    let error = crate::reexec::exec(&state);
                    tracing::error!(
                        "the re-exec failed: {}; this runpm goes on",
                        crate::errors::error_chain(&error)
                    );
                }
                None => tracing::error!("the re-exec failed: no binary path; this runpm goes on"),
            }
            stderr::hold();
        }
        if std::mem::take(&mut executor.reloaded) {
            // What the config is made of may have changed: other env files, `watch` on or off.
            sync_watcher(
                &mut watching,
                options.watch && sup.settings().watch,
                &executor.hands.source,
                &env_files(sup.services().map(|(_, s)| s.spec.as_ref())),
            );
        }
        if let Some(persist) = &mut executor.hands.persist {
            // After the turn's effects (a restart is spawned before its pid is written), and
            // once more on the way out.
            let now = Now::real().at;
            persist.changed(&sup, now);
            if exit.is_some() || persist.due().is_some_and(|at| at <= now) {
                let _ = persist.write(&sup, now);
                // The state a panic re-executes from, as fresh as the state file.
                if exit.is_none()
                    && let Ok(table) = sup.carry(Now::real())
                {
                    let sockets = (control_fd, notify.as_ref(), notify_others.as_ref());
                    let carrying = carrying(&options, sockets, &executor.hands, &panics);
                    if let Some(state) = carrying.state(table) {
                        crate::reexec::refresh_panic_state(state);
                    }
                }
            }
        }
        if let Some(code) = exit {
            stderr::release();
            // `events` subscribers get the last events (`daemon_stopping`), then their
            // streams end and the connections close behind them.
            executor.hands.events.close();
            executor.hands.events.drain(EVENTS_DRAIN).await;
            // Replies handed to connection tasks in this same turn (a `shutdown` with
            // nothing left to stop) must reach their sockets before the runtime goes:
            // those tasks are runnable now, and yielding lets them write.
            for _ in 0..FLUSH_YIELDS {
                tokio::task::yield_now().await;
            }
            executor.hands.drain().await;
            executor.hands.contain.release();
            crate::cgroup::set_current(None);
            return Ok(code);
        }
        if let Some(tell) = &mut options.on_startup {
            let news = report.turn(supervisor::startup_outcomes(&sup));
            let done = news.result.is_some();
            if news != News::default() {
                tell(news);
            }
            if done {
                options.on_startup = None;
                // What it remembered per service is not needed again: let it go before the
                // heap is trimmed below.
                report = StartupReport::default();
            }
        }
        if !trimmed && !sup.is_starting() {
            trimmed = true;
            release_free_memory();
        }
        let deadline = [
            sup.next_deadline(),
            executor.hands.persist.as_ref().and_then(Persist::due),
        ]
        .into_iter()
        .flatten()
        .min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let change = async {
            match &mut watching {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        stderr::release();
        let events: Vec<Event> = tokio::select! {
            // Exits first: a burst of signals or requests must not starve the reaper.
            biased;
            _ = sigchld.recv() => process::reap_all()
                .into_iter()
                .flat_map(|(pid, status)| match executor.hands.probes.reaped(pid, status) {
                    Reaped::NotAProbe => {
                        let oom = executor
                            .hands
                            .contain
                            .oom_killed(pid, status)
                            .then_some(Event::OomKilled { pid });
                        oom.into_iter()
                            .chain([Event::ChildExited { pid, status }])
                            .collect()
                    }
                    Reaped::Done(event) => vec![*event],
                    Reaped::Killed => Vec::new(),
                })
                .collect(),
            received = signals.recv() => match received {
                Received::Terminate(signal) => vec![Event::Terminate { signal }],
                Received::Reload => vec![Event::Hangup],
                Received::DumpStatus => {
                    log_status(&sup);
                    panic_on_purpose();
                    Vec::new()
                }
                Received::Reexec => vec![Event::Reexec],
            },
            // A due state write is done at the top of the next turn.
            () = sleep => vec![Event::Tick],
            Some(call) = calls.recv() => vec![executor.accept(call)],
            Some(event) = internal.recv() => vec![event],
            datagram = notified(notify.as_ref(), notify_others.as_ref()) => match datagram {
                Ok(mut d) => {
                    let fds = std::mem::take(&mut d.fds);
                    let event = attribute_notification(&sup, d);
                    if let Some(Event::Notified { service, notifications, .. }) = &event {
                        executor.hands.fd_store_message(&sup, service, notifications, fds);
                    }
                    event.into_iter().collect()
                }
                Err(e) => {
                    tracing::debug!("sd_notify socket: {e}");
                    Vec::new()
                }
            },
            Some(()) = change => vec![Event::ConfigChanged],
        };
        stderr::hold();
        effects = Vec::new();
        for event in events {
            effects.extend(sup.handle(event, Now::real()));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot set up signal handling")]
    Signals(#[from] std::io::Error),
    #[error(transparent)]
    Socket(#[from] ipc::BindError),
}

/// How long runpm waits, on its way out, for `events` subscribers to take their last events.
const EVENTS_DRAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Turns given, on the way out, to connection tasks with a reply to write: each needs one
/// to receive it and write it to its socket (a non-blocking write of a short line).
const FLUSH_YIELDS: usize = 8;

/// SIGUSR1: one line per service in runpm's log, for an operator without `runpmctl` at hand
/// (or with a control socket that does not answer).
fn log_status(sup: &Supervisor) {
    tracing::info!("received SIGUSR1: the status of every service follows");
    for (name, service) in sup.services() {
        match service.pid() {
            Some(pid) => tracing::info!(
                "{name}: {} (pid {pid}, {} restarts)",
                service.status(),
                service.restarts
            ),
            None => tracing::info!(
                "{name}: {} ({} restarts)",
                service.status(),
                service.restarts
            ),
        }
    }
}

/// The next datagram on the sd_notify socket, or never when there is none.
/// The next datagram on either sd_notify socket (the state directory's, and the abstract
/// one for services of other users), or never when there is none. Cancel-safe, as
/// [`NotifySocket::recv`] is.
async fn notified(
    own: Option<&NotifySocket>,
    others: Option<&NotifySocket>,
) -> std::io::Result<Datagram> {
    async fn one(socket: Option<&NotifySocket>) -> std::io::Result<Datagram> {
        match socket {
            Some(socket) => socket.recv().await,
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        datagram = one(own) => datagram,
        datagram = one(others) => datagram,
    }
}

/// Finds the service a notification came from (its main process, or a process in its
/// group, such as `systemd-notify` run by its shell); messages from anyone else are dropped.
fn attribute_notification(sup: &Supervisor, datagram: Datagram) -> Option<Event> {
    let targets = sup.notify_targets();
    match notify::attribute(datagram.pid, &targets, notify::pgid_of) {
        Some(service) => Some(Event::Notified {
            service,
            sender: datagram.pid,
            notifications: datagram.notifications,
        }),
        None => {
            tracing::warn!(
                "dropped an sd_notify message from pid {} (uid {}): not a process of any service",
                datagram.pid,
                datagram.uid
            );
            None
        }
    }
}

/// The control socket the previous image listened on, with the guard that removes its file.
fn adopt_listener(
    fd: std::os::fd::OwnedFd,
    path: &camino::Utf8Path,
) -> Result<(tokio::net::UnixListener, ipc::SocketGuard), RunError> {
    let bind_err = |source| ipc::BindError::Bind {
        path: path.to_owned(),
        source,
    };
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener.set_nonblocking(true).map_err(bind_err)?;
    let guard = ipc::SocketGuard::of(path).map_err(bind_err)?;
    let listener = tokio::net::UnixListener::from_std(listener).map_err(bind_err)?;
    Ok((listener, guard))
}

/// An sd_notify socket the previous image had bound.
fn adopt_notify(fd: std::os::fd::OwnedFd, address: String) -> Option<Notify> {
    Notify::adopt(fd, address)
        .inspect_err(|e| tracing::warn!("cannot take the sd_notify socket back: {e}"))
        .ok()
}

/// The output pipes, `listen` sockets and fd store the previous image handed on.
fn take_back(shell: &mut Shell, r: Resumed) {
    for (service, listen, fd) in r.sockets {
        shell.sockets.adopt(service, listen, fd);
    }
    for (service, name, fd) in r.store {
        shell.fd_store.adopt(service, name, fd);
    }
    for (pipe, stdout, stderr) in r.pipes {
        let name: Arc<str> = Arc::from(pipe.service.as_str());
        let sink: Arc<dyn crate::logs::LineSink> = shell.logs.clone();
        let output = Arc::new(super::output::RunOutput::new(
            pipe.pid,
            sink,
            None,
            shell.internal.clone(),
        ));
        let spawned = process::Spawned {
            pid: pipe.pid,
            stdout,
            stderr,
        };
        shell.capture(spawned, &name, &output);
    }
}

/// What a re-exec carries besides the table: the daemon's options and the numbers of the
/// control and sd_notify sockets (see `reexec.rs`).
fn carrying<'a>(
    options: &RunOptions,
    (control, notify, notify_others): (Option<RawFd>, Option<&Notify>, Option<&Notify>),
    shell: &'a Shell,
    panics: &[u64],
) -> Carrying<'a> {
    let socket = |n: &Notify| (n.raw_fd(), n.address().to_owned());
    Carrying {
        state_dir: options
            .control
            .as_ref()
            .map(|c| c.state.dir.clone())
            .unwrap_or_default(),
        exit_when_default: options.exit_when_default.clone(),
        watch: options.watch,
        console: options.console,
        control,
        lock: options.control.as_ref().map(|c| c.lock.raw_fd()),
        notify: notify.map(socket),
        notify_others: notify_others.map(socket),
        shell,
        panics: panics.to_vec(),
    }
}

/// Debug builds only: `RUNPM_TEST_PANIC=1` makes SIGUSR1 panic the daemon, so that the
/// tests can show a panic re-executing runpm with every service kept (`tests/reexec.rs`).
fn panic_on_purpose() {
    #[cfg(debug_assertions)]
    if std::env::var_os("RUNPM_TEST_PANIC").is_some() {
        panic!("RUNPM_TEST_PANIC: panicking on purpose");
    }
}
