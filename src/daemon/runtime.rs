//! The thin async loop around [`Supervisor::handle`]: it turns signals, reaped children and
//! due deadlines into events, and carries out the effects the handler returns.
//!
//! It runs on a single-threaded tokio runtime. That is a correctness property, not only a
//! saving: spawning and reaping happen on the same thread, so the reaper can never collect
//! a child between `fork` and the moment its pid is recorded, nor race std's own wait on an
//! exec failure.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

use std::collections::HashMap;

use camino::{Utf8Path, Utf8PathBuf};
use tokio::sync::mpsc;

use regex_lite::Regex;

use crate::config::{self, Config, ExitWhen, Ready, ServiceSpec};
use crate::ipc::{self, Call, HelloInfo, InstanceLock, Json, Reply, StateDir};
use crate::ipc::{ErrorKind, LogsResult, ProtocolError};
use crate::logs::{Followed, LineSink, LogHub, capture, stderr};
use crate::notify::{self, Datagram, NotifySocket};
use crate::process;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::config::Signal;
use crate::process::{ExitStatus, Target};
use crate::state::{self, Resume};
use crate::watch::{DEFAULT_DEBOUNCE, Watcher};

use crate::supervisor::{
    self, Effect, Event, Jitter, News, NotifyRoute, Now, StartupReport, Supervisor,
};

use super::output::RunOutput;
use super::persist::Persist;
use super::probes::{Probes, Reaped};
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

    let (call_tx, mut calls) = mpsc::unbounded_channel::<Call>();
    // Dropping the guard at the end of this function removes the socket (if still ours).
    let _socket = match &options.control {
        Some(control) => {
            let (listener, guard) = ipc::bind(&control.state.socket, &control.lock)?;
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

    // sd_notify: one datagram socket for the daemon; services that asked for it get its
    // path in NOTIFY_SOCKET.
    let notify = match &options.control {
        Some(control) => {
            let path = notify::socket_path(&control.state.dir);
            match NotifySocket::bind(&path) {
                Ok(socket) => Some(socket),
                Err(e) => {
                    tracing::warn!(
                        "cannot create the sd_notify socket {path}: {e}; ready.notify cannot work"
                    );
                    None
                }
            }
        }
        None => None,
    };
    // A service that runs as another user cannot reach that socket inside the private
    // state directory; it gets an abstract one. Only root can switch users, so only a root
    // daemon opens it. The name is unique per daemon.
    let notify_others = match &options.control {
        Some(control) if notify.is_some() && nix::unistd::Uid::effective().is_root() => {
            let name = format!("runpm/{}/{}", std::process::id(), control.state.dir);
            let name: String = name.chars().take(100).collect();
            match NotifySocket::bind_abstract(&name) {
                Ok(socket) => Some(socket),
                Err(e) => {
                    tracing::warn!(
                        "cannot create the sd_notify socket for services with `user`: {e}; \
                         their ready.notify cannot work"
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let (internal_tx, mut internal) = mpsc::unbounded_channel::<Event>();

    let mut sup = Supervisor::new(
        &config,
        options.exit_when_default.clone(),
        Jitter::from_time(),
    );
    let mut executor = Executor {
        logs: options.logs.clone(),
        captures: JoinSet::new(),
        source: config.source.clone(),
        pending: HashMap::new(),
        next_token: 0,
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
        reloaded: false,
        persist: options
            .control
            .as_ref()
            .map(|c| Persist::new(c.state.state_file.clone())),
        // When a service manager started runpm (systemd Type=notify), it hears from runpm
        // too; what it hears and when is the supervisor's decision.
        parent: notify::Parent::from_env(),
    };
    if executor.parent.is_some() {
        sup.notify_parent(notify::watchdog_from_env(), Now::real());
    }
    let mut trimmed = false;
    let mut report = StartupReport::default();
    let (resume, last_known_good) = options.startup.take().unwrap_or((None, None));
    sup.set_last_known_good(last_known_good);
    let mut effects = sup.boot(
        &config,
        options.only.as_deref(),
        resume.as_ref(),
        Now::real(),
    );
    // The supervisor's table holds what it needs; a reload reads the file anew.
    drop(config);
    if let Some(resume) = resume {
        for survivor in resume.survivors {
            executor.watch_survivor(survivor.pid, survivor.pidfd);
        }
    }
    // Events are written once per turn (see logs::stderr); not while waiting, when other
    // tasks may log with no turn to follow.
    stderr::hold();
    loop {
        let exit = executor.carry_out(&mut sup, effects);
        if std::mem::take(&mut executor.reloaded) {
            // What the config is made of may have changed: other env files, `watch` on or off.
            sync_watcher(
                &mut watching,
                options.watch && sup.settings().watch,
                &executor.source,
                &env_files(sup.services().map(|(_, s)| s.spec.as_ref())),
            );
        }
        if let Some(persist) = &mut executor.persist {
            // After the turn's effects (a restart is spawned before its pid is written), and
            // once more on the way out.
            let now = Now::real().at;
            persist.changed(&sup, now);
            if exit.is_some() || persist.due().is_some_and(|at| at <= now) {
                let _ = persist.write(&sup, now);
            }
        }
        if let Some(code) = exit {
            stderr::release();
            // Replies handed to connection tasks in this same turn (a `shutdown` with
            // nothing left to stop) must reach their sockets before the runtime goes:
            // those tasks are runnable now, and yielding lets them write.
            for _ in 0..FLUSH_YIELDS {
                tokio::task::yield_now().await;
            }
            executor.drain().await;
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
            executor.persist.as_ref().and_then(Persist::due),
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
                .filter_map(|(pid, status)| match executor.probes.reaped(pid, status) {
                    Reaped::NotAProbe => Some(Event::ChildExited { pid, status }),
                    Reaped::Done(event) => Some(event),
                    Reaped::Killed => None,
                })
                .collect(),
            received = signals.recv() => match received {
                Received::Terminate(signal) => vec![Event::Terminate { signal }],
                Received::Reload => vec![Event::Hangup],
                Received::DumpStatus => {
                    log_status(&sup);
                    Vec::new()
                }
            },
            // A due state write is done at the top of the next turn.
            () = sleep => vec![Event::Tick],
            Some(call) = calls.recv() => vec![executor.accept(call)],
            Some(event) = internal.recv() => vec![event],
            datagram = notified(notify.as_ref(), notify_others.as_ref()) => match datagram {
                Ok(d) => attribute_notification(&sup, d).into_iter().collect(),
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

/// Turns given, on the way out, to connection tasks with a reply to write: each needs one
/// to receive it and write it to its socket (a non-blocking write of a short line).
const FLUSH_YIELDS: usize = 8;

/// How long runpm waits, on its way out, for the services' last output lines. Pipes reach
/// end-of-file as soon as the last process holding them is gone, which is normally at once;
/// a leftover that keeps a pipe open must not keep runpm from exiting.
const DRAIN: Duration = Duration::from_secs(1);

struct Executor {
    logs: Arc<LogHub>,
    /// The readers of the services' pipes.
    captures: JoinSet<()>,
    /// The config file or directory, re-read on reload.
    source: Utf8PathBuf,
    /// Control requests waiting for their reply, by token.
    pending: HashMap<u64, mpsc::UnboundedSender<Reply>>,
    next_token: u64,
    probes: Probes,
    internal: mpsc::UnboundedSender<Event>,
    /// The sd_notify socket, for the services that want it; and the one for services that
    /// run as another user.
    notify_address: Option<String>,
    notify_others_address: Option<String>,
    /// Processes of an earlier daemon being stopped, with their pidfds.
    survivors: HashMap<i32, Arc<AsyncFd<OwnedFd>>>,
    state_file: Option<Utf8PathBuf>,
    /// This daemon's state directory, the value of its processes' instance tag.
    instance: String,
    /// The secret that proves the tag (none without a state directory).
    token: Option<state::Token>,
    /// The output of this turn's spawns, to read once all of them have started: the
    /// bookkeeping of one spawn does not hold up the next.
    deferred: Vec<(process::Spawned, Arc<str>, Arc<RunOutput>)>,
    /// Set when a config was loaded for a reload: the watcher may need to follow it.
    reloaded: bool,
    /// The state file's writer (none without a state directory).
    persist: Option<Persist>,
    /// runpm's own service manager (`NOTIFY_SOCKET`), if any.
    parent: Option<notify::Parent>,
}

impl Executor {
    /// Signals a target; a survivor of an earlier daemon through its pidfd, which cannot
    /// hit a process that took over its pid.
    fn signal(&self, target: Target, signal: Signal) -> Result<(), String> {
        if let Target::Process(pid) = target
            && let Some(pidfd) = self.survivors.get(&pid)
        {
            let sig = rustix::process::Signal::from_named_raw(signal.number())
                .ok_or_else(|| format!("unknown signal {}", signal.number()))?;
            return match rustix::process::pidfd_send_signal(pidfd.get_ref(), sig) {
                Ok(()) => Ok(()),
                Err(e) if e == rustix::io::Errno::SRCH => Ok(()),
                Err(e) => Err(e.to_string()),
            };
        }
        target.signal(signal.0).map_err(|e| e.to_string())
    }

    /// Watches a survivor of an earlier daemon through its pidfd: it is not our child, so
    /// the reaper never sees it; its pidfd turns readable when it ends.
    fn watch_survivor(&mut self, pid: i32, pidfd: OwnedFd) {
        // SAFETY: the AsyncFd owns the pidfd, which stays open until the AsyncFd is dropped.
        let watched = match unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) } {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                tracing::warn!(
                    "cannot watch pid {pid} of the previous runpm: {}",
                    std::io::Error::from(e)
                );
                return;
            }
        };
        self.survivors.insert(pid, watched.clone());
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let _ = watched.readable().await;
            let _ = internal.send(Event::ChildExited {
                pid,
                status: ExitStatus::Unknown,
            });
        });
    }

    /// Turns a control call into an event, keeping where its reply goes. Log requests are
    /// answered here, from the log hub, without the supervisor.
    /// Every control request goes to the core, which answers it (through effects such as
    /// [`Effect::Reply`], [`Effect::ServeLogs`] and [`Effect::SaveState`]).
    fn accept(&mut self, call: Call) -> Event {
        self.next_token += 1;
        self.pending.insert(self.next_token, call.replies);
        Event::Request {
            token: self.next_token,
            request: call.request,
        }
    }

    /// `runpmctl save`: the state file written now, its path in the reply.
    fn save(&mut self, sup: &Supervisor) -> Result<Json, ProtocolError> {
        let Some(persist) = &mut self.persist else {
            return Err(ProtocolError::new(
                ErrorKind::Failed,
                "this runpm keeps no state file",
            ));
        };
        match persist.write(sup, std::time::Instant::now()) {
            Ok(()) => Json::of(&serde_json::json!({ "path": persist.path.as_str() })),
            Err(e) => Err(ProtocolError::new(ErrorKind::Failed, e)),
        }
    }

    fn logs(
        &self,
        services: Vec<String>,
        (lines, since): (usize, Option<std::time::SystemTime>),
        follow: bool,
        replies: mpsc::UnboundedSender<Reply>,
    ) {
        let send =
            |replies: &mpsc::UnboundedSender<Reply>, result: LogsResult| match Json::of(&result) {
                Ok(value) => replies.send(Reply::ok(None, value)).is_ok(),
                Err(_) => false,
            };
        if !follow {
            send(
                &replies,
                LogsResult {
                    lines: self.logs.history(&services, lines, since),
                    missed: None,
                },
            );
            return;
        }
        let (history, mut follower) = self.logs.follow_history(&services, lines, since);
        if !send(
            &replies,
            LogsResult {
                lines: history,
                missed: None,
            },
        ) {
            return;
        }
        // Pushed as lines come; ends when the client is gone (a send fails) or the daemon
        // exits (the hub goes away).
        tokio::spawn(async move {
            while let Some(next) = follower.recv().await {
                let result = match next {
                    Followed::Line(line) => LogsResult {
                        lines: vec![line.as_ref().clone()],
                        missed: None,
                    },
                    Followed::Gap { missed } => LogsResult {
                        lines: Vec::new(),
                        missed: Some(missed),
                    },
                };
                if !send(&replies, result) {
                    break;
                }
            }
        });
    }
    fn capture(&mut self, spawned: process::Spawned, service: &Arc<str>, output: &Arc<RunOutput>) {
        let sink: Arc<dyn LineSink> = output.clone();
        match capture(spawned.stdout, spawned.stderr, service.clone(), sink) {
            Ok(reader) => {
                let (output, service) = (output.clone(), service.clone());
                self.captures.spawn(async move {
                    reader.await;
                    output.closed(&service);
                });
            }
            Err(e) => {
                tracing::warn!("{service}: cannot read its output: {e}");
                output.closed(service);
            }
        }
        // Forget readers that are done, so the set does not grow with every restart.
        while self.captures.try_join_next().is_some() {}
    }

    fn spawn(
        &mut self,
        service: String,
        spec: &Arc<ServiceSpec>,
        notify: Option<NotifyRoute>,
    ) -> Event {
        if let Err(e) = self
            .logs
            .configure(&service, spec.log_max_size, spec.log_keep)
        {
            tracing::warn!("{service}: its log file cannot be used: {e}");
        }
        // The tag that lets a later daemon find this process should this one die before
        // recording it.
        let mut env = vec![
            (state::INSTANCE_VAR.to_string(), self.instance.clone()),
            (state::SERVICE_VAR.to_string(), service.clone()),
        ];
        if let Some(token) = &self.token {
            env.push((state::TOKEN_VAR.to_string(), token.value().to_owned()));
        }
        let address = match notify {
            Some(NotifyRoute::Own) => self.notify_address.as_ref(),
            Some(NotifyRoute::Abstract) => self.notify_others_address.as_ref(),
            None => None,
        };
        if let Some(address) = address {
            env.extend(notify::service_env(address, spec.watchdog));
        }
        match process::spawn(spec, &env) {
            Ok(spawned) => {
                let name: Arc<str> = Arc::from(service.as_str());
                let ready = match &spec.ready {
                    Some(Ready::Log(pattern)) => Regex::new(pattern).ok(),
                    _ => None,
                };
                let sink: Arc<dyn LineSink> = self.logs.clone();
                let output = Arc::new(RunOutput::new(
                    spawned.pid,
                    sink,
                    ready,
                    self.internal.clone(),
                ));
                let pid = spawned.pid;
                self.deferred.push((spawned, name, output));
                Event::Spawned {
                    service,
                    pid,
                    start_time: None,
                }
            }
            Err(e) => Event::SpawnFailed {
                error: Arc::new(e),
                service,
            },
        }
    }

    /// After a run of spawns: their output readers, and the start times that identify their
    /// processes in the state file. Our children cannot be reaped (and their pids reused)
    /// before the reaper runs, which is not before this turn ends.
    fn finish_spawns(&mut self, answers: &mut [Event]) {
        for (spawned, name, output) in std::mem::take(&mut self.deferred) {
            self.capture(spawned, &name, &output);
        }
        for answer in answers {
            if let Event::Spawned {
                pid, start_time, ..
            } = answer
            {
                *start_time = state::start_time(*pid).ok();
            }
        }
    }

    /// Waits until every reader has printed its last line, within [`DRAIN`].
    async fn drain(&mut self) {
        let all = async { while self.captures.join_next().await.is_some() {} };
        if tokio::time::timeout(DRAIN, all).await.is_err() {
            tracing::debug!("some service output pipes are still held open; not waiting for them");
        }
    }

    /// Carries out `effects` in order, feeding the answers of group checks and the like back
    /// into the handler at once, and those of the spawns together once the queue is empty
    /// (nothing queued depends on them; see `Supervisor::handle_all`). Returns the exit code
    /// once the handler asks to exit.
    fn carry_out(&mut self, sup: &mut Supervisor, effects: Vec<Effect>) -> Option<u8> {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        let mut spawned = Vec::new();
        loop {
            let Some(effect) = queue.pop_front() else {
                if spawned.is_empty() {
                    break;
                }
                self.finish_spawns(&mut spawned);
                queue.extend(sup.handle_all(spawned.drain(..), Now::real()));
                continue;
            };
            let answer = match effect {
                Effect::Spawn {
                    service,
                    spec,
                    notify,
                } => {
                    spawned.push(self.spawn(service, &spec, notify));
                    None
                }
                Effect::Probe {
                    service,
                    pid,
                    purpose,
                    probe,
                    timeout: _,
                } => {
                    if let Some(spec) = sup.service(&service).map(|s| s.spec.clone()) {
                        self.probes.start(&spec, service, pid, purpose, probe);
                    }
                    None
                }
                Effect::KillProbe { service } => {
                    self.probes.kill(&service);
                    None
                }
                Effect::Signal {
                    service,
                    target,
                    signal,
                } => {
                    if let Err(e) = self.signal(target, signal) {
                        tracing::warn!(
                            "{service}: could not send {} to {target:?}: {e}",
                            signal.name()
                        );
                    }
                    None
                }
                Effect::CheckGroup { service, pgid } => {
                    process::group_is_empty(pgid).then_some(Event::GroupEmpty { service, pgid })
                }
                Effect::LoadSnapshot { token } => {
                    let wanted_up = state::wanted_up_in(self.state_file.as_deref());
                    Some(Event::SnapshotLoaded { token, wanted_up })
                }
                Effect::LoadConfig { token, dry_run } => {
                    let result = config::load(&self.source);
                    self.reloaded |= !dry_run;
                    Some(Event::ConfigLoaded {
                        token,
                        dry_run,
                        result,
                    })
                }
                Effect::Reply { token, reply } => {
                    if let Some(to) = self.pending.remove(&token) {
                        let reply = Reply::from_result(None, reply);
                        // The client may have gone away; its connection task then ended.
                        let _ = to.send(reply);
                    }
                    None
                }
                Effect::ServeLogs {
                    token,
                    services,
                    lines,
                    since,
                    follow,
                } => {
                    if let Some(replies) = self.pending.remove(&token) {
                        self.logs(services, (lines, since), follow, replies);
                    }
                    None
                }
                Effect::SaveState { token } => {
                    let reply = self.save(sup);
                    if let Some(to) = self.pending.remove(&token) {
                        let _ = to.send(Reply::from_result(None, reply));
                    }
                    None
                }
                Effect::NotifyParent(note) => {
                    if let Some(parent) = &self.parent {
                        parent.send(&note.message(notify::monotonic_usec()));
                    }
                    None
                }
                Effect::Exit { code } => return Some(code),
            };
            if let Some(event) = answer {
                queue.extend(sup.handle(event, Now::real()));
            }
        }
        None
    }
}

/// The env files that `specs` read, each once.
fn env_files<'a>(specs: impl Iterator<Item = &'a ServiceSpec>) -> Vec<Utf8PathBuf> {
    let mut files: Vec<Utf8PathBuf> = specs
        .filter_map(|s| s.env_file.as_ref().map(|f| f.path.clone()))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Starts, updates or stops the watcher so that it watches `source` and `env_files` exactly
/// when `wanted`. Without a watch no watcher exists at all: no inotify descriptor, no
/// thread.
fn sync_watcher(
    watching: &mut Option<(Watcher, mpsc::UnboundedReceiver<()>)>,
    wanted: bool,
    source: &Utf8Path,
    env_files: &[Utf8PathBuf],
) {
    match (wanted, watching.as_mut()) {
        (false, _) => *watching = None,
        (true, Some((watcher, _))) => watcher.update(env_files),
        (true, None) => match Watcher::new(source, env_files, DEFAULT_DEBOUNCE) {
            Ok(started) => *watching = Some(started),
            Err(e) => tracing::warn!(
                "cannot watch {source} for changes: {e}; reload with runpmctl reload or SIGHUP"
            ),
        },
    }
}

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

/// Hands the pages that start-up used and freed (parsing the config, the first state
/// write) back to the kernel. glibc keeps freed memory inside the heap for reuse; a daemon
/// that then idles for months would hold it for nothing.
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
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
