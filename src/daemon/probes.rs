//! Carrying out readiness and health probes for the runtime.
//!
//! A TCP probe is a connect attempt in a task of its own, then a look at whose listening
//! socket answered: another process holding the port does not make the service ready. An exec probe is a child process
//! like any other: the one reaper collects it, and the runtime asks [`Probes::reaped`]
//! before handing an exit to the supervisor. Results come back as [`Event::ProbeDone`]
//! through the runtime's channel of internal events.
//!
//! No timer lives here: the core keeps each probe's deadline and, when it passes (or the run
//! ends), sends `Effect::KillProbe`. Then the probe's process group is killed, or the TCP
//! attempt aborted, and whatever the probe would still have answered is dropped: the core
//! has already counted it as timed out.

use std::collections::HashMap;
use std::sync::Arc;

use nix::sys::signal::Signal as NixSignal;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{Command, Probe, ServiceSpec};
use crate::process::{self, ExitStatus, Listener, Target};

use crate::supervisor::{Event, ProbeFailure, Purpose};

/// An exec probe in flight.
struct Running {
    service: String,
    /// The service process it probes.
    target: i32,
    purpose: Purpose,
    /// Killed on the core's word: its exit answers nothing.
    killed: bool,
}

pub(super) struct Probes {
    /// Exec probes by the probe's own pid.
    exec: HashMap<i32, Running>,
    /// The TCP attempt of each service, the latest one (at most one is in flight).
    tcp: HashMap<String, tokio::task::AbortHandle>,
    internal: UnboundedSender<Event>,
}

/// What a reaped pid was to the probes.
pub(super) enum Reaped {
    /// Not a probe: a service's process or an orphan.
    NotAProbe,
    /// A probe that ended on its own: its answer.
    Done(Box<Event>),
    /// A probe killed on the core's word: nothing to say.
    Killed,
}

impl Probes {
    pub fn new(internal: UnboundedSender<Event>) -> Probes {
        Probes {
            exec: HashMap::new(),
            tcp: HashMap::new(),
            internal,
        }
    }

    /// Starts a probe. `spec` is the service's, so an exec probe runs with the same cwd,
    /// environment and user as the service.
    pub fn start(
        &mut self,
        spec: &Arc<ServiceSpec>,
        service: String,
        pid: i32,
        purpose: Purpose,
        probe: Probe,
    ) {
        let name = service.clone();
        match probe {
            Probe::Tcp(addr) => {
                let internal = self.internal.clone();
                let task = tokio::spawn(async move {
                    let attempt = tokio::net::TcpStream::connect(&addr).await;
                    let connect = |error: std::io::Error| ProbeFailure::Connect {
                        addr: addr.clone(),
                        error: error.to_string(),
                    };
                    let outcome = match attempt {
                        Ok(stream) => match stream.peer_addr() {
                            // Reading /proc is blocking file I/O: off the event loop.
                            Ok(peer) => {
                                let checked = addr.clone();
                                tokio::task::spawn_blocking(move || {
                                    whose_listener(&checked, peer, pid)
                                })
                                .await
                                .unwrap_or_else(|e| {
                                    Err(ProbeFailure::Connect {
                                        addr: addr.clone(),
                                        error: format!("checking the listener: {e}"),
                                    })
                                })
                            }
                            Err(e) => Err(connect(e)),
                        },
                        Err(e) => Err(connect(e)),
                    };
                    // The loop is gone only when the daemon exits: nobody left to tell.
                    let _ = internal.send(Event::ProbeDone {
                        service,
                        pid,
                        purpose,
                        outcome,
                    });
                });
                self.tcp.insert(name, task.abort_handle());
            }
            Probe::Http(check) => {
                let internal = self.internal.clone();
                let task = tokio::spawn(async move {
                    let outcome = super::http::check(&check).await;
                    // The loop is gone only when the daemon exits: nobody left to tell.
                    let _ = internal.send(Event::ProbeDone {
                        service,
                        pid,
                        purpose,
                        outcome,
                    });
                });
                // One attempt in flight per service, aborted like a TCP one.
                self.tcp.insert(name, task.abort_handle());
            }
            Probe::Exec(argv) => {
                let mut probe_spec = spec.as_ref().clone();
                probe_spec.command = Command::Argv(argv);
                match process::spawn_quiet(&probe_spec) {
                    Ok(probe_pid) => {
                        self.exec.insert(
                            probe_pid,
                            Running {
                                service,
                                target: pid,
                                purpose,
                                killed: false,
                            },
                        );
                    }
                    Err(e) => {
                        let done = Event::ProbeDone {
                            service,
                            pid,
                            purpose,
                            outcome: Err(ProbeFailure::NotStarted(e.to_string())),
                        };
                        let _ = self.internal.send(done);
                    }
                }
            }
        }
    }

    /// Kills the probe in flight for `service` (the core's [`crate::supervisor::Effect::KillProbe`]):
    /// an exec probe's whole group (a probe script's children too), or the TCP attempt.
    pub fn kill(&mut self, service: &str) {
        if let Some(task) = self.tcp.remove(service) {
            task.abort();
        }
        for (pid, probe) in &mut self.exec {
            if probe.service == service && !probe.killed {
                probe.killed = true;
                if let Err(e) = Target::Group(*pid).signal(NixSignal::SIGKILL) {
                    tracing::debug!("{service}: cannot kill its probe {pid}: {e}");
                }
            }
        }
    }

    /// What the exit of `pid` means, if it was an exec probe.
    pub fn reaped(&mut self, pid: i32, status: ExitStatus) -> Reaped {
        let Some(p) = self.exec.remove(&pid) else {
            return Reaped::NotAProbe;
        };
        // Whatever the probe left in its group goes with it; the group may be empty already.
        let _ = Target::Group(pid).signal(NixSignal::SIGKILL);
        if p.killed {
            return Reaped::Killed;
        }
        let outcome = match status {
            ExitStatus::Code(0) => Ok(()),
            other => Err(ProbeFailure::Exited(other)),
        };
        Reaped::Done(Box::new(Event::ProbeDone {
            service: p.service,
            pid: p.target,
            purpose: p.purpose,
            outcome,
        }))
    }
}

/// The verdict of a TCP probe that connected to `peer` (the address `addr` resolved to):
/// ready only when the listening socket is one of the service's (see
/// [`process::listener_owner`]).
fn whose_listener(addr: &str, peer: std::net::SocketAddr, pid: i32) -> Result<(), ProbeFailure> {
    match process::listener_owner(peer, pid) {
        Listener::Service(_) => Ok(()),
        Listener::Other(holder) => Err(ProbeFailure::OtherListener {
            addr: addr.to_owned(),
            holder: holder.map(|h| h.to_string()),
        }),
        // Nothing to prove it by (NAT, another network namespace): the connect counts.
        Listener::NotFound => Ok(()),
    }
}
