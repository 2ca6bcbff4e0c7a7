//! Persisted state: the snapshot that lets runpm survive its own crash and the machine's
//! reboot without duplicating, losing or mistaking a process.
//!
//! The daemon writes `state.json` (see [`StateFile`]) on every change of what runs, through a
//! [`Coalescer`] that turns bursts into single writes and retries failed ones, with
//! [`write_atomic`] (temp file, fsync, rename, fsync of the directory). At start-up it
//! [`load`]s the file (a bad one is moved aside and reported, never read as empty),
//! [`decide`]s whether the file is from this boot and pid namespace, and [`plan_recovery`]
//! says per service whether to adopt a surviving process, start it, or leave it stopped. A
//! recorded pid is trusted only on the same boot and only when [`verify`] finds a live
//! process with the recorded start time, checked through a pidfd taken first.
//!
//! `file`, `boot` and `coalesce` are pure; `store` is the filesystem edge and `proc` the
//! kernel one (`/proc`, pidfds).
//!
//! The state directory itself is here too: `statedir` and `sockpath` decide the paths both
//! binaries agree on (the control socket's included), `lock` keeps one daemon per state
//! directory, and `locate` is how runpmctl finds a project's daemon.

mod boot;
mod coalesce;
mod error;
mod file;
mod identity;
mod locate;
mod lock;
mod proc;
mod snapshot;
mod sockpath;
mod startup;
mod statedir;
mod store;
#[cfg(test)]
mod testing;
mod token;

pub use boot::{
    BootDecision, PidCheck, RecoveredService, Recovery, RecoveryAction, UP_STATUSES, decide,
    plan_recovery, record_cleanup, wanted_up,
};
pub use coalesce::{Coalescer, MAX_DELAY, RETRY_FIRST, RETRY_MAX, WRITE_DELAY, WriteTicket};
pub use error::{StateError, WriteStep};
pub use file::{STATE_VERSION, ServiceRecord, StateFile, parse, render, timestamp};
pub use identity::{Identity, Verified, parse_ns_link, parse_start_time, parse_start_time_bytes};
pub use locate::{LocateError, locate};
pub use lock::{Claim, Holder, InstanceLock, LockError, RELEASE_WAIT};
pub use proc::{
    INSTANCE_VAR, SERVICE_VAR, Tagged, boot_id, pid_ns, start_time, tagged_processes, verify,
};
pub use snapshot::{SnapshotError, wanted_up_in};
pub use sockpath::{Fallbacks, MAX_SOCKET_PATH, SOCKET_NAME, choose_named as choose_socket_path};
pub use startup::{Resume, Startup, Survivor, startup};
pub use statedir::{
    STATE_DIR_ENV, StateDir, StateDirError, choose as choose_state_dir,
    resolve as resolve_state_dir,
};
pub use store::{LoadOutcome, MAX_STATE_BYTES, load, move_aside, sweep_temp_files, write_atomic};
pub use token::{TOKEN_VAR, Token, TokenError};
