//! Re-executing runpm in place (`runpmctl reexec`, SIGUSR2, a panic; issue 14).
//!
//! Theory of operation. The daemon writes its whole state ([`ReexecState`]: the
//! supervisor's table, and the numbers of every descriptor that must live on — the control
//! socket, the instance lock, the sd_notify sockets, each running service's output pipes,
//! the `listen` sockets and the fd store) as versioned JSON to a memfd, clears close-on-exec
//! on exactly those descriptors, and `execve`s the binary at the path it was started from
//! (kept from the start: after a package upgrade `/proc/self/exe` names the deleted old
//! file, the path the new one) as `runpm __reexec --state-fd N`. The pid does not change, so
//! the services stay its children and the reaper just goes on; the pipes never close, so
//! what the services write meanwhile waits in the kernel's pipe buffers and is read by the
//! new image.
//!
//! What can go wrong is checked first, while the old image can still say so: the candidate
//! binary is run as `runpm __reexec-check --state-version V` (a fork and exec that must exit
//! 0 within a few seconds), which a missing file, a file that is not executable, a script
//! that fails, a foreign binary or a runpm that cannot read state version V all fail. Only
//! then does the old image answer the operator and exec; should `execve` itself still fail
//! (the file replaced in between), the old image logs why and goes on serving.
//!
//! - `state.rs`: what is carried, its version, the memfd;
//! - `exec.rs`: the pre-flight, the exec, and the binary's path;
//! - `panic.rs`: a panic in the daemon re-executes it from the last state it wrote.

mod exec;
mod panic;
mod state;

pub use exec::{
    ReexecError, binary, exec, hold_signals, preflight, release_signals, remember_binary,
};
pub use panic::{install_panic_hook, refresh_panic_state};
pub use state::{CarriedFds, CarriedPipe, ReexecState, STATE_VERSION, read_state, write_state};
