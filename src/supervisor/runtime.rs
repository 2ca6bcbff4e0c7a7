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

use crate::config::Config;
use crate::logs::{LineSink, Stream, capture};
use crate::process;

use super::core::Supervisor;
use super::event::{Effect, Event, Now};
use super::policy::Jitter;

pub struct RunOptions {
    /// Services to start (with their dependencies); empty means every `autostart` service.
    pub only: Vec<String>,
    /// Where the services' output lines go.
    pub sink: Arc<dyn LineSink>,
}

/// Supervises `config` until it is stopped or `exit_when` is met; returns runpm's exit code.
/// Signal handlers are installed here, before the first spawn: as PID 1 a signal without a
/// handler would be ignored.
pub async fn run(config: &Config, options: RunOptions) -> std::io::Result<u8> {
    let mut sigchld = signal(SignalKind::child())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

    let mut sup = Supervisor::new(config, Jitter::from_time(), Now::real());
    let names: Vec<String> = if options.only.is_empty() {
        config
            .services
            .values()
            .filter(|s| s.autostart)
            .map(|s| s.name.clone())
            .collect()
    } else {
        options.only.clone()
    };
    let mut executor = Executor {
        sink: options.sink,
        captures: JoinSet::new(),
    };
    let mut effects = sup.start(&names, Now::real());
    loop {
        if let Some(code) = executor.carry_out(&mut sup, effects) {
            executor.drain().await;
            return Ok(code);
        }
        let deadline = sup.next_deadline();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let events: Vec<Event> = tokio::select! {
            // Exits first: a burst of signals must not starve the reaper.
            biased;
            _ = sigchld.recv() => process::reap_all()
                .into_iter()
                .map(|(pid, status)| Event::ChildExited { pid, status })
                .collect(),
            _ = sigterm.recv() => vec![Event::Terminate { signal: "SIGTERM" }],
            _ = sigint.recv() => vec![Event::Terminate { signal: "SIGINT" }],
            _ = sighup.recv() => vec![Event::Hangup],
            () = sleep => vec![Event::Tick],
        };
        effects = Vec::new();
        for event in events {
            effects.extend(sup.handle(event, Now::real()));
        }
    }
}

/// How long runpm waits, on its way out, for the services' last output lines. Pipes reach
/// end-of-file as soon as the last process holding them is gone, which is normally at once;
/// a leftover that keeps a pipe open must not keep runpm from exiting.
const DRAIN: Duration = Duration::from_secs(1);

struct Executor {
    sink: Arc<dyn LineSink>,
    /// The readers of the services' pipes.
    captures: JoinSet<()>,
}

impl Executor {
    fn capture(&mut self, fd: OwnedFd, service: &Arc<str>, stream: Stream) {
        match capture(fd, service.clone(), stream, self.sink.clone()) {
            Ok(reader) => {
                self.captures.spawn(reader);
            }
            Err(e) => tracing::warn!("{service}: cannot read its {stream:?}: {e}"),
        }
        // Forget readers that are done, so the set does not grow with every restart.
        while self.captures.try_join_next().is_some() {}
    }

    /// Waits until every reader has printed its last line, within [`DRAIN`].
    async fn drain(&mut self) {
        let all = async { while self.captures.join_next().await.is_some() {} };
        if tokio::time::timeout(DRAIN, all).await.is_err() {
            tracing::debug!("some service output pipes are still held open; not waiting for them");
        }
    }

    /// Carries out `effects` in order, feeding the answers of spawns and group checks back
    /// into the handler at once. Returns the exit code once the handler asks to exit.
    fn carry_out(&mut self, sup: &mut Supervisor, effects: Vec<Effect>) -> Option<u8> {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            let answer = match effect {
                Effect::Spawn { service, spec } => Some(match process::spawn(&spec, &[]) {
                    Ok(spawned) => {
                        let name: Arc<str> = Arc::from(service.as_str());
                        self.capture(spawned.stdout, &name, Stream::Stdout);
                        self.capture(spawned.stderr, &name, Stream::Stderr);
                        Event::Spawned {
                            service,
                            pid: spawned.pid,
                        }
                    }
                    Err(e) => Event::SpawnFailed {
                        code: e.exit_code(),
                        error: e.to_string(),
                        service,
                    },
                }),
                Effect::Signal {
                    service,
                    target,
                    signal,
                } => {
                    if let Err(e) = target.signal(signal.0) {
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
                Effect::Exit { code } => return Some(code),
            };
            if let Some(event) = answer {
                queue.extend(sup.handle(event, Now::real()));
            }
        }
        None
    }
}
