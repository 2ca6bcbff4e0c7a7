//! Starting a process with glibc's `posix_spawn`: the request both spawners take, and the
//! path for kernels without `CLOSE_RANGE_UNSHARE` (see [`super::vfork`]).
//!
//! `posix_spawn` clones with `CLONE_VM | CLONE_VFORK`: the child borrows runpm's address
//! space until it execs, so no page tables are copied and the cost does not grow with
//! runpm's memory (it still copies the descriptor table). `fork` + `exec` (std's `Command` with a
//! `pre_exec` hook) cost three times as much per service here, and the parent waits for every
//! exec either way. The flags give the child what the `pre_exec` hook used to: its own
//! session (`POSIX_SPAWN_SETSID`, glibc 2.26), an empty signal mask and every signal at its
//! default disposition (as systemd does: a service must not inherit runpm's ignored SIGPIPE or
//! blocked SIGTERM). The working directory is changed in the child
//! (`posix_spawn_file_actions_addchdir_np`, glibc 2.29).
//!
//! glibc reports a failed `chdir` or `execve` as the return value and reaps that child
//! itself, which cannot race our reaper: the runtime is single-threaded.

use std::ffi::{CStr, CString, c_char};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::signal::SigSet;

/// Where one of the child's standard streams goes.
#[derive(Clone, Copy)]
pub enum Stdio<'a> {
    Null,
    Fd(BorrowedFd<'a>),
}

pub struct Request<'a> {
    /// A path containing a slash; resolved against `cwd` when relative.
    pub program: &'a CStr,
    pub argv: &'a [CString],
    pub envp: &'a [CString],
    pub cwd: &'a CStr,
    pub stdout: Stdio<'a>,
    pub stderr: Stdio<'a>,
    /// Descriptors passed as 3, 4, … with `LISTEN_PID` set to the child's pid (socket
    /// activation and the fd store); only the vfork path can do this.
    pub passed: &'a [BorrowedFd<'a>],
    /// Credentials to switch to before the exec (only with `passed`; see [`super::vfork`]).
    pub credentials: Option<Credentials<'a>>,
    /// What only the vfork path (and fork + exec) can do: see [`Extras::any`].
    pub extras: Extras<'a>,
}

/// A user switch done in the vfork child with raw system calls.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: &'a [libc::gid_t],
}

/// A cgroup to join and rlimits to set in the child before `exec`. `posix_spawn` can do
/// neither, so a request with any of them takes another path where vfork cannot run.
#[derive(Clone, Copy, Default)]
pub struct Extras<'a> {
    pub cgroup: Option<Cgroup<'a>>,
    pub limits: &'a [super::rlimits::Limit],
}

/// A cgroup to start in: its directory (for clone3's `CLONE_INTO_CGROUP`) and its
/// `cgroup.procs` open for writing (for a child that joins it before `exec`).
#[derive(Clone, Copy)]
pub struct Cgroup<'a> {
    /// `None`: the child must join from inside.
    pub dir: Option<BorrowedFd<'a>>,
    pub procs: BorrowedFd<'a>,
}

impl Extras<'_> {
    pub fn any(&self) -> bool {
        self.cgroup.is_some() || !self.limits.is_empty()
    }
}

/// Starts the process; returns its pid. Errors are the child's `chdir`/`execve` errno.
pub fn spawn(req: &Request) -> io::Result<i32> {
    if !req.passed.is_empty() || req.credentials.is_some() {
        // LISTEN_PID must be the child's own pid, which only a child that runs our code
        // before the exec can write.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "passing sockets (`listen`, the fd store) needs Linux 5.9 or later (close_range)",
        ));
    }
    let mut actions = FileActions::new()?;
    actions.open(0, c"/dev/null", libc::O_RDONLY)?;
    for (fd, target) in [(1, req.stdout), (2, req.stderr)] {
        match target {
            Stdio::Null => actions.open(fd, c"/dev/null", libc::O_WRONLY)?,
            // dup2 onto the standard fd clears close-on-exec there (glibc also does so when
            // the numbers are equal); the pipe's own fd stays close-on-exec.
            Stdio::Fd(source) => actions.dup2(source.as_raw_fd(), fd)?,
        }
    }
    actions.chdir(req.cwd)?;

    let mut attr = Attributes::new()?;
    attr.set(
        libc::POSIX_SPAWN_SETSID as libc::c_int
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF,
        SigSet::empty().as_ref(),
        &every_signal(),
    )?;

    let argv = pointers(req.argv);
    let envp = pointers(req.envp);
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer refers to a NUL-terminated string or a null-terminated array that
    // outlives the call; the attribute and action objects are initialised.
    check(unsafe {
        libc::posix_spawn(
            &mut pid,
            req.program.as_ptr(),
            &*actions.0,
            &*attr.0,
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    Ok(pid)
}

/// Every signal, glibc's internal 32 and 33 included. `sigfillset` leaves those two out, and
/// glibc's spawn then sets them to SIG_IGN in the child, where being ignored survives the
/// exec: a service would start with two real-time signals it can never receive.
fn every_signal() -> libc::sigset_t {
    // SAFETY: on Linux sigset_t is a plain bit array; all ones is every signal. glibc copies
    // the set as it is and resets each of its members below _NSIG.
    unsafe { std::mem::transmute([u8::MAX; std::mem::size_of::<libc::sigset_t>()]) }
}

/// The null-terminated pointer array that `posix_spawn` takes for argv and envp. The
/// interface is `char *const[]`, but nothing writes through the pointers.
pub(super) fn pointers(strings: &[CString]) -> Vec<*mut c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// The `posix_spawn*` functions return the error number instead of setting errno.
fn check(code: libc::c_int) -> io::Result<()> {
    match code {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Boxed so the object never moves once glibc has initialised it.
struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        let mut raw = Box::new(MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit());
        // SAFETY: `raw` is a writable, boxed (never moving) object of the right type for
        // glibc to initialise.
        check(unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) })?;
        // SAFETY: initialised just above; MaybeUninit<T> has T's layout.
        Ok(FileActions(unsafe {
            Box::from_raw(Box::into_raw(raw).cast())
        }))
    }

    fn open(&mut self, fd: libc::c_int, path: &CStr, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: the object was initialised in `new`; glibc copies `path` before returning.
        check(unsafe {
            libc::posix_spawn_file_actions_addopen(&mut *self.0, fd, path.as_ptr(), flags, 0)
        })
    }

    fn dup2(&mut self, source: libc::c_int, fd: libc::c_int) -> io::Result<()> {
        // SAFETY: the object was initialised in `new`; the descriptors are plain integers.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(&mut *self.0, source, fd) })
    }

    fn chdir(&mut self, dir: &CStr) -> io::Result<()> {
        // SAFETY: the object was initialised in `new`; glibc copies `dir` before returning.
        check(unsafe { libc::posix_spawn_file_actions_addchdir_np(&mut *self.0, dir.as_ptr()) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once, here, and never used after.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut *self.0) };
    }
}

struct Attributes(Box<libc::posix_spawnattr_t>);

impl Attributes {
    fn new() -> io::Result<Attributes> {
        let mut raw = Box::new(MaybeUninit::<libc::posix_spawnattr_t>::uninit());
        // SAFETY: as for FileActions: a writable, boxed object for glibc to initialise.
        check(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        // SAFETY: as for FileActions.
        Ok(Attributes(unsafe {
            Box::from_raw(Box::into_raw(raw).cast())
        }))
    }

    fn set(
        &mut self,
        flags: libc::c_int,
        mask: &libc::sigset_t,
        default: &libc::sigset_t,
    ) -> io::Result<()> {
        let attr = &mut *self.0;
        // SAFETY: `attr` was initialised in `new`; the signal sets are
        // valid references that glibc copies.
        check(unsafe { libc::posix_spawnattr_setflags(attr, flags as libc::c_short) })?;
        // SAFETY: as above.
        check(unsafe { libc::posix_spawnattr_setsigmask(attr, mask) })?;
        // SAFETY: as above.
        check(unsafe { libc::posix_spawnattr_setsigdefault(attr, default) })
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once, here, and never used after.
        unsafe { libc::posix_spawnattr_destroy(&mut *self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::AsFd;

    /// The fallback for kernels before 5.9: the same start as the vfork path gives.
    #[test]
    fn starts_in_its_own_session_and_dir_with_output_on_the_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = CString::new(dir.path().to_str().unwrap()).unwrap();
        let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let script = c"pwd; ps -o sid= -p $$; echo $$; grep -E '^Sig(Blk|Ign)' /proc/self/status";
        let argv = [c"/bin/sh".to_owned(), c"-c".to_owned(), script.to_owned()];
        let envp = [c"PATH=/usr/bin:/bin".to_owned()];
        let pid = spawn(&Request {
            program: &argv[0],
            argv: &argv,
            envp: &envp,
            cwd: &cwd,
            stdout: Stdio::Fd(tx.as_fd()),
            stderr: Stdio::Null,
            passed: &[],
            credentials: None,
            extras: Default::default(),
        })
        .unwrap();
        drop(tx);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(rx), &mut out).unwrap();
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`, a local.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(libc::WEXITSTATUS(status), 0, "{out}");
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(lines[0], real.to_str().unwrap());
        assert_eq!(lines[1], lines[2], "it leads its own session");
        assert_eq!(lines[3], "SigBlk:\t0000000000000000");
        assert_eq!(lines[4], "SigIgn:\t0000000000000000");
    }

    #[test]
    fn reports_a_missing_program() {
        let argv = [CString::new("/nonexistent/program").unwrap()];
        let e = spawn(&Request {
            program: &argv[0],
            argv: &argv,
            envp: &[],
            cwd: c"/",
            stdout: Stdio::Null,
            stderr: Stdio::Null,
            passed: &[],
            credentials: None,
            extras: Default::default(),
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
