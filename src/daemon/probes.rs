//! Carrying out readiness and health probes for the runtime.
//!
//! A TCP probe is a connect attempt in a task of its own, then a look at whose listening
//! socket answered: another process holding the port does not make the service ready. An exec probe is a child process
//! like any other: the one reaper collects it, and the runtime asks [`Probes::reaped`]
//! before handing an exit to the supervisor. Its timeout is a timer that kills the probe's
//! process group; the kill shows up as a reaped probe that failed. Results come back as
//! [`Event::ProbeDone`] through the runtime's channel of internal events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
    timeout: Duration,
    timed_out: bool,
}

pub(super) struct Probes {
    exec: HashMap<i32, Running>,
    internal: UnboundedSender<Internal>,
}

/// What the runtime's internal channel carries besides supervisor events.
pub(super) enum Internal {
    Event(Event),
    /// An exec probe ran out of time.
    ProbeTimeout(i32),
}

impl Probes {
    pub fn new(internal: UnboundedSender<Internal>) -> Probes {
        Probes {
            exec: HashMap::new(),
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
        timeout: Duration,
    ) {
        match probe {
            Probe::Tcp(addr) => {
                let internal = self.internal.clone();
                tokio::spawn(async move {
                    let attempt =
                        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await;
                    let connect = |error: std::io::Error| ProbeFailure::Connect {
                        addr: addr.clone(),
                        error: error.to_string(),
                    };
                    let outcome = match attempt {
                        Ok(Ok(stream)) => match stream.peer_addr() {
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
                        Ok(Err(e)) => Err(connect(e)),
                        Err(_) => Err(ProbeFailure::ConnectTimedOut {
                            addr: addr.clone(),
                            after: timeout,
                        }),
                    };
                    let _ = internal.send(Internal::Event(Event::ProbeDone {
                        service,
                        pid,
                        purpose,
                        outcome,
                    }));
                });
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
                                timeout,
                                timed_out: false,
                            },
                        );
                        let internal = self.internal.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(timeout).await;
                            let _ = internal.send(Internal::ProbeTimeout(probe_pid));
                        });
                    }
                    Err(e) => {
                        let done = Event::ProbeDone {
                            service,
                            pid,
                            purpose,
                            outcome: Err(ProbeFailure::NotStarted(e.to_string())),
                        };
                        let _ = self.internal.send(Internal::Event(done));
                    }
                }
            }
        }
    }

    /// Kills an exec probe that ran out of time (its group: a probe script's children too).
    pub fn timed_out(&mut self, probe_pid: i32) {
        if let Some(p) = self.exec.get_mut(&probe_pid) {
            p.timed_out = true;
            let _ = Target::Group(probe_pid).signal(NixSignal::SIGKILL);
        }
    }

    /// The result of an exec probe, if `pid` was one.
    pub fn reaped(&mut self, pid: i32, status: ExitStatus) -> Option<Event> {
        let p = self.exec.remove(&pid)?;
        // Whatever the probe left in its group goes with it.
        let _ = Target::Group(pid).signal(NixSignal::SIGKILL);
        let outcome = match status {
            _ if p.timed_out => Err(ProbeFailure::TimedOut { after: p.timeout }),
            ExitStatus::Code(0) => Ok(()),
            other => Err(ProbeFailure::Exited(other)),
        };
        Some(Event::ProbeDone {
            service: p.service,
            pid: p.target,
            purpose: p.purpose,
            outcome,
        })
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
