//! The narrow seam between runpm and the kernel: spawning services, signalling them, and
//! reaping every child. The supervisor's decisions never call these directly; they return
//! effects that the runtime carries out here.

mod listeners;
mod posix_spawn;
mod reaper;
mod resolve;
mod rlimits;
mod signals;
mod spawn;
mod sys;
mod target;
mod vfork;

pub use listeners::{Holder, Listener, owner as listener_owner};
pub use reaper::{ExitStatus, reap_all};
pub use spawn::{Cgroup, SpawnError, Spawned, spawn, spawn_in, spawn_passing, spawn_quiet};
pub use sys::{become_subreaper, group_is_empty, is_child, is_pid1, raise_open_files_limit};
pub use target::Target;
