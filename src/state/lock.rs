//! The single-instance lock: one daemon per state directory.
//!
//! An exclusive `flock` on `<state dir>/lock`. The kernel drops it when the process dies,
//! however it dies, so a crashed daemon never leaves a stale lock behind (unlike a pid file
//! alone). The pid written into the file only serves the message a second daemon prints.
//! The descriptor is close-on-exec, so services never inherit it.
//!
//! "Dies" is not one instant, though: a SIGKILLed daemon is a zombie while its other
//! threads are still exiting, and a service being spawned shares its descriptor table
//! until it execs; either holds the lock for a few milliseconds more. So a lock that is held
//! while the pid in the file is not a live runpm (gone, a zombie, another program, or no pid
//! yet) is waited for, up to [`RELEASE_WAIT`], and a refusal only ever names a pid that is a
//! running runpm. The wait retries on a short, growing timer rather than blocking in
//! `flock`: a blocking `flock` can only be cut short by a signal (a process-wide SIGALRM
//! handler and mask, in a process that installs its own handlers later) or from another
//! thread (which `up -d` cannot have: it forks, and forking needs a single thread). The
//! retries happen only in this rare case, at most a few dozen in two seconds.
//!
//! `runpm up -d` takes the lock before it forks the daemon; the file is then left empty
//! ([`Claim::Later`]) until the daemon writes its own pid, so it never names the short-lived
//! parent.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::statedir::StateDir;

/// Held for as long as the daemon runs; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    file: Flock<File>,
    path: Utf8PathBuf,
}

/// How long a new daemon waits for a lock whose holder is not a running runpm.
pub const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Who the lock file says holds the lock, as far as `/proc` can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A live process with runpm's name: a daemon that runs.
    Running(u32),
    /// No such process: it exited and the lock is on its way out.
    Gone(u32),
    /// Killed, with its threads still exiting.
    Zombie(u32),
    /// A live process that is not runpm (the pid was reused).
    Other(u32),
    /// The file names nobody: a daemon that has just locked and not yet written its pid,
    /// or one that died before it could.
    Unknown,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Running(pid) => write!(f, "pid {pid} runs"),
            Holder::Gone(pid) => write!(f, "pid {pid} has exited"),
            Holder::Zombie(pid) => write!(f, "pid {pid} is exiting"),
            Holder::Other(pid) => write!(f, "pid {pid} is not runpm"),
            Holder::Unknown => write!(f, "the lock file names no pid yet"),
        }
    }
}

/// Whether the lock file names the process that keeps the lock from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Write our pid at once: this process is the daemon.
    Now,
    /// Leave the file empty: the daemon is a child yet to be forked, and it writes its own
    /// pid ([`InstanceLock::write_pid`]).
    Later,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("runpm is already running for {dir} (pid {pid})")]
    AlreadyRunning { pid: u32, dir: Utf8PathBuf },
    #[error(
        "`{path}` is still locked after {}s, but not by a running runpm ({holder}); find the \
         process that holds it with `fuser -v {path}`",
        RELEASE_WAIT.as_secs()
    )]
    Stuck { path: Utf8PathBuf, holder: Holder },
    #[error(transparent)]
    Untrusted(#[from] crate::owner::Untrusted),
    #[error("cannot open the lock file `{path}`")]
    Open {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot lock `{path}`")]
    Lock {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write our pid to `{path}`")]
    WritePid {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StateDir {
    /// Takes the single-instance lock and writes our pid, or says which pid holds it. The
    /// directory must exist ([`StateDir::create`]).
    pub fn lock(&self) -> Result<InstanceLock, LockError> {
        self.lock_with(Claim::Now, |_| {})
    }

    /// Takes the single-instance lock. When it is held but not by a running runpm,
    /// `waiting` hears who the file names and the lock is waited for, up to
    /// [`RELEASE_WAIT`] (see the module documentation).
    pub fn lock_with(
        &self,
        claim: Claim,
        waiting: impl FnOnce(Holder),
    ) -> Result<InstanceLock, LockError> {
        let file = open(&self.lock_file)?;
        let file = match try_lock(file, &self.lock_file)? {
            Ok(file) => file,
            Err(file) => wait_for_release(file, &self.lock_file, &self.dir, waiting)?,
        };
        let mut lock = InstanceLock {
            file,
            path: self.lock_file.clone(),
        };
        match claim {
            Claim::Now => lock.write_pid()?,
            Claim::Later => lock.clear()?,
        }
        Ok(lock)
    }
}

/// Retries the lock on a growing timer until it is free, the file names a running runpm
/// (refused with its pid), or [`RELEASE_WAIT`] has passed.
fn wait_for_release(
    mut file: File,
    path: &Utf8Path,
    dir: &Utf8Path,
    waiting: impl FnOnce(Holder),
) -> Result<Flock<File>, LockError> {
    let refused = |pid| LockError::AlreadyRunning {
        pid,
        dir: dir.to_owned(),
    };
    let mut holder = holder(&mut file);
    if let Holder::Running(pid) = holder {
        return Err(refused(pid));
    }
    waiting(holder);
    let deadline = Instant::now() + RELEASE_WAIT;
    let mut delay = Duration::from_millis(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LockError::Stuck {
                path: path.to_owned(),
                holder,
            });
        }
        std::thread::sleep(delay.min(left));
        delay = (delay * 2).min(Duration::from_millis(100));
        file = match try_lock(file, path)? {
            Ok(locked) => return Ok(locked),
            Err(file) => file,
        };
        // Another runpm may have won the lock meanwhile (two `up` after one crash).
        holder = self::holder(&mut file);
        if let Holder::Running(pid) = holder {
            return Err(refused(pid));
        }
    }
}

/// The lock without waiting: `Ok(Err(file))` when someone else holds it.
fn try_lock(file: File, path: &Utf8Path) -> Result<Result<Flock<File>, File>, LockError> {
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(Ok(locked)),
        Err((file, Errno::EWOULDBLOCK)) => Ok(Err(file)),
        Err((_, errno)) => Err(LockError::Lock {
            path: path.to_owned(),
            source: errno.into(),
        }),
    }
}

fn open(path: &Utf8Path) -> Result<File, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A symlink planted at the lock path must not make us truncate its target.
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_owned(),
            source,
        })?;
    // Judged on the descriptor: a lock file someone else made could be held by them.
    let meta = file.metadata().map_err(|source| LockError::Open {
        path: path.to_owned(),
        source,
    })?;
    crate::owner::check(&meta, path, crate::owner::Trust::Daemon)?;
    Ok(file)
}

/// Who the lock file names. The holder writes its pid right after locking (or after its
/// fork); a reader that comes in between finds no pid.
fn holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let read = file
        .rewind()
        .and_then(|()| file.take(64).read_to_string(&mut text));
    // Only the first line: a longer stale pid may still follow it for an instant.
    match read
        .ok()
        .and_then(|_| text.lines().next()?.trim().parse::<u32>().ok())
    {
        Some(pid) if pid > 0 => classify(
            pid,
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .as_deref(),
            std::fs::read_to_string("/proc/self/comm").ok().as_deref(),
        ),
        _ => Holder::Unknown,
    }
}

/// What `/proc/PID/status` (`None`: no such process) says of `pid`, compared with our own
/// command name (a renamed binary still recognises its own kind). A process with a SIGKILL
/// pending is dying: right after `kill -9` returns it still looks alive for an instant.
fn classify(pid: u32, status: Option<&str>, own_comm: Option<&str>) -> Holder {
    let Some(status) = status else {
        return Holder::Gone(pid);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let state = field("State").and_then(|s| s.split_whitespace().next());
    // SIGKILL is signal 9: bit 8 of the pending masks, for the thread or the whole process.
    let kill_pending = ["SigPnd", "ShdPnd"].iter().any(|name| {
        field(name)
            .and_then(|mask| u64::from_str_radix(mask, 16).ok())
            .is_some_and(|mask| mask & (1 << 8) != 0)
    });
    if matches!(state, Some("Z" | "X")) || kill_pending {
        return Holder::Zombie(pid);
    }
    if field("Name").is_some_and(|name| Some(name) == own_comm.map(str::trim)) {
        Holder::Running(pid)
    } else {
        Holder::Other(pid)
    }
}

impl InstanceLock {
    /// Writes the current pid into the lock file. Called on locking, and again by a daemon
    /// that forked after taking the lock (the lock belongs to the open file, so the child
    /// keeps it), so that the file names the process that actually runs.
    /// The pid goes in with one write at the start of the file before the rest is cut
    /// off, so a reader of the first line sees the old pid or the new one, never nothing.
    pub fn write_pid(&mut self) -> Result<(), LockError> {
        let line = format!("{}\n", std::process::id());
        let result = (|| {
            use std::os::unix::fs::FileExt;
            self.file.write_all_at(line.as_bytes(), 0)?;
            self.file.set_len(line.len() as u64)
        })();
        result.map_err(|source| LockError::WritePid {
            path: self.path.clone(),
            source,
        })
    }

    /// Empties the file: the pid of a daemon that has died must not stand for the one to
    /// be forked.
    fn clear(&mut self) -> Result<(), LockError> {
        self.file.set_len(0).map_err(|source| LockError::WritePid {
            path: self.path.clone(),
            source,
        })
    }

    /// In the parent after a fork: lets go of this copy without unlocking, because the lock
    /// belongs to the open file the child shares and the child goes on holding it.
    pub fn leave_to_child(self) {
        std::mem::forget(self);
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// The lock file's descriptor, kept open across a re-exec of runpm (the lock belongs
    /// to the open file, so it is never let go on the way).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.file.as_raw_fd()
    }

    /// Takes the lock back after a re-exec: `fd` is the same open file, which holds it
    /// already, so locking it again cannot wait.
    pub fn adopt(fd: std::os::fd::OwnedFd, path: Utf8PathBuf) -> Result<InstanceLock, LockError> {
        let file = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock).map_err(
            |(_, errno)| LockError::WritePid {
                path: path.clone(),
                source: errno.into(),
            },
        )?;
        Ok(InstanceLock { file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(dir.path().canonicalize().unwrap()).unwrap();
        let state = StateDir::at(path.join(".runpm"));
        state.create().unwrap();
        (dir, state)
    }

    #[test]
    fn a_second_lock_is_refused_with_the_pid() {
        let (_guard, state) = state();
        let first = state.lock().unwrap();
        let text = std::fs::read_to_string(&state.lock_file).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just as another process would.
        let err = state.lock().unwrap_err();
        assert!(
            matches!(&err, LockError::AlreadyRunning { pid, .. } if *pid == std::process::id())
        );
        assert_eq!(
            err.to_string(),
            format!(
                "runpm is already running for {} (pid {})",
                state.dir,
                std::process::id()
            )
        );
        drop(first);
        state.lock().unwrap();
    }

    #[test]
    fn a_stale_pid_is_overwritten() {
        let (_guard, state) = state();
        std::fs::write(&state.lock_file, "99999999999\nleftover\n").unwrap();
        let _lock = state.lock().unwrap();
        let text = std::fs::read_to_string(&state.lock_file).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_lock_held_under_a_dead_pid_is_waited_for_then_reported_without_naming_it() {
        let (_guard, state) = state();
        let first = state.lock().unwrap();
        // The file names a pid that does not exist (beyond pid_max).
        std::fs::write(&state.lock_file, "99999999\n").unwrap();
        let mut heard = None;
        let started = Instant::now();
        let err = state
            .lock_with(Claim::Now, |holder| heard = Some(holder))
            .unwrap_err();
        assert_eq!(heard, Some(Holder::Gone(99999999)));
        assert!(started.elapsed() >= RELEASE_WAIT);
        assert!(matches!(err, LockError::Stuck { .. }), "{err}");
        let message = err.to_string();
        assert!(!message.contains("already running"), "{message}");
        assert!(message.contains("99999999 has exited"), "{message}");
        drop(first);
    }

    #[test]
    fn a_lock_released_while_waiting_is_taken() {
        let (_guard, state) = state();
        let first = state.lock().unwrap();
        std::fs::write(&state.lock_file, "").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        let mut heard = None;
        let lock = state.lock_with(Claim::Later, |holder| heard = Some(holder));
        release.join().unwrap();
        assert!(lock.is_ok(), "{lock:?}");
        assert_eq!(heard, Some(Holder::Unknown));
        // `Later`: the file is left for the daemon to name itself.
        assert_eq!(std::fs::read_to_string(&state.lock_file).unwrap(), "");
    }

    #[test]
    fn holders_are_classified_from_proc() {
        let status = |name: &str, state: &str, pending: &str| {
            format!(
                "Name:\t{name}\nState:\t{state} (x)\nSigPnd:\t{pending}\nShdPnd:\t0000000000000000\n"
            )
        };
        let own = Some("runpm\n");
        let no_signal = "0000000000000000";
        let classify_as =
            |name, state, pending| classify(42, Some(&status(name, state, pending)), own);
        assert_eq!(classify(42, None, own), Holder::Gone(42));
        assert_eq!(classify_as("runpm", "S", no_signal), Holder::Running(42));
        assert_eq!(classify_as("runpm", "Z", no_signal), Holder::Zombie(42));
        assert_eq!(
            classify_as("runpm", "S", "0000000000000100"),
            Holder::Zombie(42)
        );
        // Another pending signal (SIGTERM, bit 14) may be handled: still running.
        assert_eq!(
            classify_as("runpm", "S", "0000000000004000"),
            Holder::Running(42)
        );
        assert_eq!(classify_as("sleep", "S", no_signal), Holder::Other(42));
        assert_eq!(classify(42, Some("garbage"), own), Holder::Other(42));
        // This very process is alive and of its own kind.
        let me = std::process::id();
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let comm = std::fs::read_to_string("/proc/self/comm").ok();
        assert_eq!(
            classify(me, status.as_deref(), comm.as_deref()),
            Holder::Running(me)
        );
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let (_guard, state) = state();
        let target = state.dir.join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, &state.lock_file).unwrap();
        let err = state.lock().unwrap_err();
        assert!(matches!(err, LockError::Open { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
