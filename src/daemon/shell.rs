//! The real [`Hands`]: what the executor does on this machine. Spawning with the service's
//! environment (instance tag, sd_notify socket) and starting its output readers, signalling
//! (a survivor of an earlier daemon through its pidfd), probes, reading the config and the
//! state file, serving logs, writing the state file, telling runpm's own service manager.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use camino::Utf8PathBuf;
use regex_lite::Regex;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::activation::{FdStore, Passing, Sockets, StoreOutcome};
use crate::config::{self, Config, ConfigErrors, Probe, Ready, ServiceSpec, Signal};
use crate::ipc::{ErrorKind, LogsResult, ProtocolError, Reply, Response};
use crate::logs::{Followed, LineSink, LogHub, capture};
use crate::notify::{self, ParentNote};
use crate::process::{self, ExitStatus, SpawnError, Target};
use crate::report::Report;
use crate::state::{self, SnapshotError};
use crate::supervisor::{Event, NotifyRoute, Purpose, Supervisor};

use super::contain::Containment;
use super::events::Events;
use super::executor::Hands;
use super::output::RunOutput;
use super::persist::Persist;
use super::probes::Probes;

/// How long runpm waits, on its way out, for the services' last output lines. Pipes reach
/// end-of-file as soon as the last process holding them is gone, which is normally at once;
/// a leftover that keeps a pipe open must not keep runpm from exiting.
const DRAIN: Duration = Duration::from_secs(1);

pub(super) struct Shell {
    pub(super) logs: Arc<LogHub>,
    /// The readers of the services' pipes.
    pub(super) captures: JoinSet<()>,
    /// The config file or directory, re-read on reload.
    pub(super) source: Utf8PathBuf,
    pub(super) probes: Probes,
    pub(super) internal: mpsc::UnboundedSender<Event>,
    /// The sd_notify socket, for the services that want it; and the one for services that
    /// run as another user.
    pub(super) notify_address: Option<String>,
    pub(super) notify_others_address: Option<String>,
    /// Processes of an earlier daemon being stopped, with their pidfds.
    pub(super) survivors: HashMap<i32, Arc<AsyncFd<OwnedFd>>>,
    pub(super) state_file: Option<Utf8PathBuf>,
    /// This daemon's state directory, the value of its processes' instance tag.
    pub(super) instance: String,
    /// The secret that proves the tag (none without a state directory).
    pub(super) token: Option<state::Token>,
    /// The output of this turn's spawns, to read once all of them have started: the
    /// bookkeeping of one spawn does not hold up the next.
    pub(super) deferred: Vec<(process::Spawned, Arc<str>, Arc<RunOutput>)>,
    /// The state file's writer (none without a state directory).
    pub(super) persist: Option<Persist>,
    /// runpm's own service manager (`NOTIFY_SOCKET`), if any.
    pub(super) parent: Option<notify::Parent>,
    /// The lifecycle events: their ring, `runpmctl events` subscribers.
    pub(super) events: Events,
    /// The profiles and services `runpm up` selected, applied to every reload.
    pub(super) selection: config::Selection,
    /// The services' `listen` sockets, held across their restarts.
    pub(super) sockets: Sockets,
    /// The descriptors services parked with `FDSTORE=1`.
    pub(super) fd_store: FdStore,
    /// The output pipes being read, for a re-exec to hand on.
    pub(super) pipes: super::reexec::LivePipes,
    /// The services' cgroups, when runpm has them.
    pub(super) contain: Containment,
}

impl Shell {
    /// Signals a target; a survivor of an earlier daemon through its pidfd, which cannot
    /// hit a process that took over its pid.
    fn send_signal(&self, target: Target, signal: Signal) -> Result<(), String> {
        if let Some(result) = self.contain.signal(target, signal) {
            return result;
        }
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
    pub(super) fn watch_survivor(&mut self, pid: i32, pidfd: OwnedFd) {
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

    /// `runpmctl save`: the state file written now, its path in the reply.
    fn save(&mut self, sup: &Supervisor) -> Result<Response, ProtocolError> {
        let Some(persist) = &mut self.persist else {
            return Err(ProtocolError::new(
                ErrorKind::Failed,
                "this runpm keeps no state file",
            ));
        };
        match persist.write(sup, std::time::Instant::now()) {
            Ok(()) => Ok(Response::Saved {
                path: persist.path.to_string(),
            }),
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
        let send = |replies: &mpsc::UnboundedSender<Reply>, result: LogsResult| {
            replies
                .send(Reply::from_response(None, Ok(Response::Logs(result))))
                .is_ok()
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
    pub(super) fn capture(
        &mut self,
        spawned: process::Spawned,
        service: &Arc<str>,
        output: &Arc<RunOutput>,
    ) {
        use std::os::fd::AsRawFd;
        let sink: Arc<dyn LineSink> = output.clone();
        let carried = crate::reexec::CarriedPipe {
            service: service.to_string(),
            pid: spawned.pid,
            stdout: spawned.stdout.as_raw_fd(),
            stderr: spawned.stderr.as_raw_fd(),
        };
        match capture(spawned.stdout, spawned.stderr, service.clone(), sink) {
            Ok(reader) => {
                let (output, service) = (output.clone(), service.clone());
                let pipes = self.pipes.clone();
                let pid = carried.pid;
                if let Ok(mut live) = self.pipes.lock() {
                    live.insert(pid, carried);
                }
                self.captures.spawn(async move {
                    reader.await;
                    // Before the descriptors' numbers can be reused (they are closed as the
                    // reader is dropped, here).
                    if let Ok(mut live) = pipes.lock() {
                        live.remove(&pid);
                    }
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

    fn start(
        &mut self,
        service: &str,
        spec: &Arc<ServiceSpec>,
        notify: Option<NotifyRoute>,
    ) -> Result<i32, Arc<SpawnError>> {
        if let Err(e) = self
            .logs
            .configure(service, spec.log_max_size, spec.log_keep)
        {
            tracing::warn!("{service}: its log file cannot be used: {e}");
        }
        // The tag that lets a later daemon find this process should this one die before
        // recording it.
        let mut env = vec![
            (state::INSTANCE_VAR.to_string(), self.instance.clone()),
            (state::SERVICE_VAR.to_string(), service.to_owned()),
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
        let cgroup = self.contain.prepare(service, spec);
        self.sockets
            .prepare(service, &spec.listen)
            .map_err(|e| Arc::new(SpawnError::from(e)))?;
        let passing = Passing::of(service, &self.sockets, &self.fd_store);
        env.extend(passing.env());
        match process::spawn_passing(spec, &env, &passing.fds, cgroup.as_ref().map(|c| c.fds())) {
            Ok(spawned) => {
                self.contain.spawned(service, spec, spawned.pid);
                let name: Arc<str> = Arc::from(service);
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
                Ok(pid)
            }
            Err(e) => Err(Arc::new(e)),
        }
    }

    /// Waits until every reader has printed its last line, within [`DRAIN`].
    pub(super) async fn drain(&mut self) {
        let all = async { while self.captures.join_next().await.is_some() {} };
        if tokio::time::timeout(DRAIN, all).await.is_err() {
            tracing::debug!("some service output pipes are still held open; not waiting for them");
        }
    }
}

impl Hands for Shell {
    fn spawn(
        &mut self,
        service: &str,
        spec: &Arc<ServiceSpec>,
        notify: Option<NotifyRoute>,
    ) -> Result<i32, Arc<SpawnError>> {
        self.start(service, spec, notify)
    }

    fn spawns_done(&mut self, pids: &[i32]) -> Vec<Option<u64>> {
        for (spawned, name, output) in std::mem::take(&mut self.deferred) {
            self.capture(spawned, &name, &output);
        }
        pids.iter()
            .map(|pid| state::start_time(*pid).ok())
            .collect()
    }

    fn signal(&mut self, target: Target, signal: Signal) -> Result<(), String> {
        self.send_signal(target, signal)
    }

    fn group_is_empty(&mut self, pgid: i32) -> bool {
        self.contain
            .is_empty(pgid)
            .unwrap_or_else(|| process::group_is_empty(pgid))
    }

    fn probe(
        &mut self,
        spec: &Arc<ServiceSpec>,
        service: String,
        pid: i32,
        purpose: Purpose,
        probe: Probe,
    ) {
        self.probes.start(spec, service, pid, purpose, probe);
    }

    fn kill_probe(&mut self, service: &str) {
        self.probes.kill(service);
    }

    fn load_snapshot(&mut self) -> Result<Vec<String>, SnapshotError> {
        state::wanted_up_in(self.state_file.as_deref())
    }

    fn load_config(&mut self) -> Result<Config, ConfigErrors> {
        config::load(&self.source).map(|mut config| {
            config.select(&self.selection);
            config
        })
    }

    fn save_state(&mut self, sup: &Supervisor) -> Result<Response, ProtocolError> {
        self.save(sup)
    }

    fn serve_logs(
        &mut self,
        services: Vec<String>,
        lines: usize,
        since: Option<SystemTime>,
        follow: bool,
        replies: mpsc::UnboundedSender<Reply>,
    ) {
        self.logs(services, (lines, since), follow, replies);
    }

    fn preflight_reexec(&mut self) -> Result<Response, String> {
        let binary =
            crate::reexec::binary().ok_or("runpm does not know the path it was started from")?;
        crate::reexec::preflight(binary).map_err(|e| crate::errors::error_chain(&e))?;
        tracing::info!("re-executing {} (every service is kept)", binary.display());
        Ok(Response::Reexecuting {
            pid: std::process::id(),
            binary: binary.display().to_string(),
        })
    }

    fn apply_limits(&mut self, service: &str, spec: &Arc<ServiceSpec>) {
        self.contain.apply_limits(service, spec);
    }

    fn account(&mut self, sup: &Supervisor, status: &mut crate::ipc::StatusResult) {
        let Some(cgroups) = crate::cgroup::current() else {
            return;
        };
        let groups = match &cgroups {
            crate::cgroup::Cgroups::Enabled(_) => Default::default(),
            crate::cgroup::Cgroups::Disabled { .. } => crate::cgroup::accounting::of_groups(
                &status.services.iter().filter_map(|s| s.pid).collect(),
            ),
        };
        for info in &mut status.services {
            if let Some(svc) = sup.service(&info.name) {
                info.resources =
                    crate::cgroup::report::resources(&svc.spec, info.pid, &cgroups, &groups);
            }
        }
        status.cgroups = Some(crate::cgroup::report::info(&cgroups));
    }

    fn notify_parent(&mut self, note: &ParentNote) {
        if let Some(parent) = &self.parent {
            parent.send(&note.message(notify::monotonic_usec()));
        }
    }

    fn report(&mut self, report: Report) {
        self.events.report(report, &self.logs);
    }

    fn serve_events(
        &mut self,
        services: Vec<String>,
        since: Option<SystemTime>,
        replies: mpsc::UnboundedSender<Reply>,
    ) {
        self.events.serve(services, since, replies);
    }
}

impl Shell {
    /// After a turn: the sockets of services gone from the config are closed, and the fd
    /// store of a service stopped for good is emptied (systemd's default
    /// `FileDescriptorStorePreserve=no`: kept across restarts only).
    pub(super) fn sweep_descriptors(&mut self, sup: &Supervisor) {
        if !self.sockets.is_empty() {
            self.sockets.retain(|name| sup.service(name).is_some());
        }
        if !self.fd_store.is_empty() {
            self.fd_store.retain(|name| {
                sup.service(name).is_some_and(|s| {
                    s.is_active()
                        || matches!(
                            s.phase,
                            crate::supervisor::Phase::Waiting
                                | crate::supervisor::Phase::Backoff { .. }
                        )
                })
            });
        }
    }
}

impl Shell {
    /// `FDSTORE=1` (with the message's descriptors) and `FDSTOREREMOVE=1` from `service`.
    pub(super) fn fd_store_message(
        &mut self,
        sup: &Supervisor,
        service: &str,
        notifications: &[notify::Notification],
        fds: Vec<OwnedFd>,
    ) {
        let value = |key: &str| {
            notifications.iter().find_map(|n| match n {
                notify::Notification::Other(k, v) if k == key => Some(v.as_str()),
                _ => None,
            })
        };
        let name = value("FDNAME");
        let outcome = if value("FDSTOREREMOVE") == Some("1") {
            match name {
                Some(name) => self.fd_store.remove(service, name),
                None => {
                    tracing::warn!("{service}: FDSTOREREMOVE=1 without FDNAME=; ignored");
                    return;
                }
            }
        } else if value("FDSTORE") == Some("1") {
            let max = sup.service(service).map_or(0, |s| s.spec.fd_store_max);
            self.fd_store.store(service, max, name, fds)
        } else {
            return;
        };
        match outcome {
            StoreOutcome::Stored { stored, refused } => {
                tracing::debug!("{service}: stored {stored} descriptor(s) in the fd store");
                if refused > 0 {
                    tracing::warn!(
                        "{service}: the fd store is full (fd_store_max); closed {refused} descriptor(s)"
                    );
                }
            }
            StoreOutcome::Disabled { refused } => tracing::warn!(
                "{service}: sent FDSTORE=1 but has fd_store_max = 0; closed {refused} descriptor(s) \
                 (set fd_store_max to let it store them)"
            ),
            StoreOutcome::BadName { name } => tracing::warn!(
                "{service}: FDNAME=`{name}` is not a valid name; its descriptors were closed"
            ),
            StoreOutcome::Removed { removed } => {
                tracing::debug!("{service}: removed {removed} descriptor(s) from the fd store")
            }
        }
    }
}
