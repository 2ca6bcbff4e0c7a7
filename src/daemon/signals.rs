//! What each signal means to the daemon.
//!
//! Every signal whose default action would end runpm gets a deliberate meaning or is
//! ignored: a stray `kill -USR1` must not end the supervisor and orphan its services, also
//! when runpm is not PID 1 (as PID 1 the kernel already drops signals without a handler).
//!
//! | signal                         | meaning                                             |
//! |--------------------------------|-----------------------------------------------------|
//! | SIGTERM, SIGINT, SIGQUIT, SIGPWR | stop every service in order, then exit; a second one (200 ms or more later) kills what is left |
//! | SIGHUP                         | reload the configuration                            |
//! | SIGUSR1                        | write every service's status to runpm's log         |
//! | SIGUSR2                        | re-execute runpm in place, every service kept (as `runpmctl reexec`) |
//! | SIGCHLD                        | reap (handled by the runtime's loop)                |
//! | SIGPIPE, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGSYS, SIGRTMIN…SIGRTMAX | ignored |
//!
//! SIGPWR is a stop because LXC's `lxc-stop` asks a container's init to shut down with it.
//! The faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP) keep their default: they
//! mean runpm itself is broken. Services never inherit any of this: every spawn path sets all
//! signals back to their default and empties the mask (see `process::signals`).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The signals runpm ignores: those whose default action is to terminate and that have no
/// meaning for it. The real-time signals are added by [`ignore_the_rest`].
const IGNORED: [i32; 9] = [
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGSTKFLT,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGSYS,
];

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stop everything and exit; the name is for the log.
    Terminate(&'static str),
    Reload,
    DumpStatus,
    Reexec,
}

/// The daemon's signal streams, other than SIGCHLD (which the loop polls first).
pub struct DaemonSignals {
    term: Signal,
    int: Signal,
    quit: Signal,
    pwr: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl DaemonSignals {
    /// Installs the handlers and ignores the signals without a meaning. Must run before the
    /// first spawn: as PID 1 a signal without a handler would be dropped.
    pub fn install() -> std::io::Result<DaemonSignals> {
        ignore_the_rest()?;
        Ok(DaemonSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            pwr: signal(SignalKind::from_raw(libc::SIGPWR))?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    /// The next signal. Cancel-safe: a signal that arrives while this is not polled is
    /// kept by its stream.
    pub async fn recv(&mut self) -> Received {
        tokio::select! {
            Some(()) = self.term.recv() => Received::Terminate("SIGTERM"),
            Some(()) = self.int.recv() => Received::Terminate("SIGINT"),
            Some(()) = self.quit.recv() => Received::Terminate("SIGQUIT"),
            Some(()) = self.pwr.recv() => Received::Terminate("SIGPWR"),
            Some(()) = self.hup.recv() => Received::Reload,
            Some(()) = self.usr1.recv() => Received::DumpStatus,
            Some(()) = self.usr2.recv() => Received::Reexec,
            // The streams end only with the runtime; never panic for want of a branch.
            else => std::future::pending().await,
        }
    }
}

impl DaemonSignals {
    /// The signals received but not yet handled, taken from their streams without waiting:
    /// before a re-exec, so they can be raised again for the new image (see `runtime`).
    pub fn drain_pending(&mut self) -> Vec<i32> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        for (stream, sig) in [
            (&mut self.term, libc::SIGTERM),
            (&mut self.int, libc::SIGINT),
            (&mut self.quit, libc::SIGQUIT),
            (&mut self.pwr, libc::SIGPWR),
            (&mut self.hup, libc::SIGHUP),
            (&mut self.usr1, libc::SIGUSR1),
            (&mut self.usr2, libc::SIGUSR2),
        ] {
            if let std::task::Poll::Ready(Some(())) = stream.poll_recv(&mut cx) {
                out.push(sig);
            }
        }
        out
    }
}

/// Sets [`IGNORED`] and the real-time signals to SIG_IGN. glibc's own real-time signals
/// (32 and 33, below `SIGRTMIN`) are left alone.
fn ignore_the_rest() -> std::io::Result<()> {
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    for sig in IGNORED.into_iter().chain(realtime) {
        // SAFETY: SIG_IGN installs no code; the signal numbers are valid and not glibc's.
        if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
