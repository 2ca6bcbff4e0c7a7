//! The executor: carries out the core's effects, in order, and feeds their answers back.
//!
//! What is decided here, and unit-tested against a fake: the order in which effects run;
//! which answers go back to the core at once (a group check, a loaded config) and which
//! wait until the queue is empty (spawns, answered together through
//! [`Supervisor::handle_all`], so that the bookkeeping of one spawn never holds up the
//! next); which control request a reply belongs to (by its token); and that a signal that
//! cannot be sent is logged, not fatal. What is done — spawning, signalling, reading
//! files, writing replies — goes through [`Hands`], a narrow seam that `shell.rs`
//! implements for real and the tests with a recorder (as dinit's `baseproc-sys` and
//! watchexec's `testchild` do).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc::UnboundedSender;

use crate::config::{Config, ConfigErrors, Probe, ServiceSpec, Signal};
use crate::ipc::ErrorKind;
use crate::ipc::{Call, ProtocolError, Reply, Response};
use crate::notify::ParentNote;
use crate::process::{SpawnError, Target};
use crate::report::Report;
use crate::state::SnapshotError;
use crate::supervisor::{Effect, Event, NotifyRoute, Now, Purpose, Supervisor};

/// The side effects the executor performs, and nothing else.
pub(super) trait Hands {
    /// Starts a service's process; its pid. Its output is read only after
    /// [`Hands::spawns_done`].
    fn spawn(
        &mut self,
        service: &str,
        spec: &Arc<ServiceSpec>,
        notify: Option<NotifyRoute>,
    ) -> Result<i32, Arc<SpawnError>>;
    /// A run of spawns is over: their output readers start; `pids` are the processes started.
    /// Returns each one's start time (what identifies it in the state file), in order.
    fn spawns_done(&mut self, pids: &[i32]) -> Vec<Option<u64>>;
    fn signal(&mut self, target: Target, signal: Signal) -> Result<(), String>;
    fn group_is_empty(&mut self, pgid: i32) -> bool;
    fn probe(
        &mut self,
        spec: &Arc<ServiceSpec>,
        service: String,
        pid: i32,
        purpose: Purpose,
        probe: Probe,
    );
    fn kill_probe(&mut self, service: &str);
    fn load_snapshot(&mut self) -> Result<Vec<String>, SnapshotError>;
    fn load_config(&mut self) -> Result<Config, ConfigErrors>;
    /// Writes the state file now: its path, or why not.
    fn save_state(&mut self, sup: &Supervisor) -> Result<Response, ProtocolError>;
    /// Serves log lines to a client, replying on `replies` (once, or as lines come).
    fn serve_logs(
        &mut self,
        services: Vec<String>,
        lines: usize,
        since: Option<SystemTime>,
        follow: bool,
        replies: UnboundedSender<Reply>,
    );
    fn notify_parent(&mut self, note: &ParentNote);
    /// Hands a lifecycle event to whoever listens (`events` subscribers, `logs -f`).
    fn report(&mut self, report: Report);
    /// Serves lifecycle events to a client, replying on `replies` until it goes away or
    /// the daemon exits.
    fn serve_events(
        &mut self,
        services: Vec<String>,
        since: Option<SystemTime>,
        replies: UnboundedSender<Reply>,
    );
    /// Checks that the binary runpm was started from can take over (see `reexec`): what
    /// to answer the operator, or why not.
    fn preflight_reexec(&mut self) -> Result<Response, String>;
    /// Fills in what each service of a `status` answer uses (memory, CPU, tasks) and whether
    /// its limits hold: read from the cgroup files or /proc now, when someone asks, never
    /// on a timer.
    fn account(&mut self, _sup: &Supervisor, _status: &mut crate::ipc::StatusResult) {}
    /// Writes a running service's changed limits to its cgroup (nothing without cgroups).
    fn apply_limits(&mut self, _service: &str, _spec: &Arc<ServiceSpec>) {}
}

/// Carries out effects through `H`, and keeps where each control request's reply goes.
pub(super) struct Executor<H> {
    pub hands: H,
    /// Control requests waiting for their reply, by token.
    pending: HashMap<u64, UnboundedSender<Reply>>,
    next_token: u64,
    /// Set when a config was loaded for a reload: the watcher may need to follow it.
    pub reloaded: bool,
    /// Set once a re-exec passed its checks and was answered: the runtime execs after
    /// the answer reached the operator.
    pub reexec: Option<crate::supervisor::CarriedTable>,
}

impl<H: Hands> Executor<H> {
    pub fn new(hands: H) -> Executor<H> {
        Executor {
            hands,
            pending: HashMap::new(),
            next_token: 0,
            reloaded: false,
            reexec: None,
        }
    }

    /// Turns a control call into an event, keeping where its reply goes. Every request
    /// goes to the core, which answers it (through [`Effect::Reply`], [`Effect::ServeLogs`]
    /// or [`Effect::SaveState`]).
    pub fn accept(&mut self, call: Call) -> Event {
        self.next_token += 1;
        self.pending.insert(self.next_token, call.replies);
        Event::Request {
            token: self.next_token,
            request: call.request,
        }
    }

    fn reply(&mut self, token: u64, reply: Result<Response, ProtocolError>) {
        if let Some(to) = self.pending.remove(&token) {
            // The client may have gone away; its connection task then ended.
            let _ = to.send(Reply::from_response(None, reply));
        }
    }

    /// Carries out `effects` in order, feeding the answers of group checks and the like back
    /// into the handler at once, and those of the spawns together once the queue is empty
    /// (nothing queued depends on them; see `Supervisor::handle_all`). Returns the exit code
    /// once the handler asks to exit.
    pub fn carry_out(&mut self, sup: &mut Supervisor, effects: Vec<Effect>) -> Option<u8> {
        let mut queue: VecDeque<Effect> = effects.into();
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
                    spawned.push(match self.hands.spawn(&service, &spec, notify) {
                        Ok(pid) => Event::Spawned {
                            service,
                            pid,
                            start_time: None,
                        },
                        Err(error) => Event::SpawnFailed { service, error },
                    });
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
                        self.hands.probe(&spec, service, pid, purpose, probe);
                    }
                    None
                }
                Effect::KillProbe { service } => {
                    self.hands.kill_probe(&service);
                    None
                }
                Effect::Signal {
                    service,
                    target,
                    signal,
                } => {
                    if let Err(e) = self.hands.signal(target, signal) {
                        tracing::warn!(
                            "{service}: could not send {} to {target:?}: {e}",
                            signal.name()
                        );
                    }
                    None
                }
                Effect::CheckGroup { service, pgid } => self
                    .hands
                    .group_is_empty(pgid)
                    .then_some(Event::GroupEmpty { service, pgid }),
                Effect::LoadSnapshot { token } => Some(Event::SnapshotLoaded {
                    token,
                    wanted_up: self.hands.load_snapshot(),
                }),
                Effect::LoadConfig { token, dry_run } => {
                    let result = self.hands.load_config();
                    self.reloaded |= !dry_run;
                    Some(Event::ConfigLoaded {
                        token,
                        dry_run,
                        result,
                    })
                }
                Effect::Reply { token, mut reply } => {
                    if let Ok(Response::Status(status)) = &mut reply {
                        self.hands.account(sup, status);
                    }
                    self.reply(token, reply);
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
                        self.hands
                            .serve_logs(services, lines, since, follow, replies);
                    }
                    None
                }
                Effect::SaveState { token } => {
                    let reply = self.hands.save_state(sup);
                    self.reply(token, reply);
                    None
                }
                Effect::NotifyParent(note) => {
                    self.hands.notify_parent(&note);
                    None
                }
                Effect::Report(report) => {
                    self.hands.report(report);
                    None
                }
                Effect::ServeEvents {
                    token,
                    services,
                    since,
                } => {
                    if let Some(replies) = self.pending.remove(&token) {
                        self.hands.serve_events(services, since, replies);
                    }
                    None
                }
                Effect::Exit { code } => return Some(code),
                Effect::Reexec { token, table } => {
                    match self.hands.preflight_reexec() {
                        Ok(answer) => {
                            if let Some(token) = token {
                                self.reply(token, Ok(answer));
                            }
                            self.reexec = Some(*table);
                        }
                        Err(why) => {
                            tracing::warn!("not re-executing: {why}");
                            if let Some(token) = token {
                                self.reply(token, Err(ProtocolError::new(ErrorKind::Failed, why)));
                            }
                        }
                    }
                    None
                }
                Effect::ApplyLimits { service, spec } => {
                    self.hands.apply_limits(&service, &spec);
                    None
                }
            };
            if let Some(event) = answer {
                queue.extend(sup.handle(event, Now::real()));
            }
        }
        None
    }

    /// After a run of spawns: the shell starts their readers and tells their start times.
    /// Our children cannot be reaped (and their pids reused) before the reaper runs, which
    /// is not before this turn ends.
    fn finish_spawns(&mut self, answers: &mut [Event]) {
        let pids: Vec<i32> = answers
            .iter()
            .filter_map(|a| match a {
                Event::Spawned { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        let mut times = self.hands.spawns_done(&pids).into_iter();
        for answer in answers {
            if let Event::Spawned { start_time, .. } = answer {
                *start_time = times.next().flatten();
            }
        }
    }
}

#[cfg(test)]
mod tests;
