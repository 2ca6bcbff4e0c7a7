//! Starting a process without copying runpm's file-descriptor table.
//!
//! With a thousand services runpm holds three thousand descriptors (two pipes and a log
//! file each). `posix_spawn` copies that table into every child at the clone, and the exec
//! then closes all of it again, descriptor by descriptor: measured at N = 1000, that was a
//! quarter of runpm's time to start its services, and it grows with every service.
//!
//! So the child here is cloned with `CLONE_VM | CLONE_VFORK | CLONE_FILES` (sharing memory
//! and the descriptor table, runpm suspended until the exec) and at once takes a private
//! table of only the first few descriptors, `close_range(keep, ~0, CLOSE_RANGE_UNSHARE)`.
//! For that, the descriptors it needs sit below `keep` in reserved slots: `/dev/null` and
//! two slots that hold the write ends of the service's pipes for the duration of the spawn.
//! Everything else is what `posix_spawn` does: every signal at its default, its own session,
//! the working directory, an empty signal mask, and the exec's errno reported back.
//!
//! A service with descriptors to receive (`listen` sockets, the fd store) takes a private
//! copy of the whole table instead (`unshare(CLONE_FILES)`, the cost the slots avoid, paid
//! only by such services), closes everything above its sources, stages each source above
//! them all and places it at 3, 4, … with `dup2` (which clears close-on-exec), then closes
//! the rest. It also writes its own pid into the `LISTEN_PID=` entry of the environment the
//! parent prepared (sd_listen_fds(3) checks it), and switches user and group with raw system
//! calls when asked (glibc's `setuid` would signal every thread of runpm, whose memory this
//! child shares): `posix_spawn` can do neither.
//!
//! The child shares runpm's memory, so it runs only system calls, allocates nothing and
//! never returns: it execs or `_exit`s. All signals are blocked around the clone, so no
//! handler of runpm's can run in it. A kernel without `CLOSE_RANGE_UNSHARE` (before 5.9)
//! makes [`spawn`] answer `None`, and the caller uses `posix_spawn` from then on.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::posix_spawn::{Request, Stdio, pointers};
use super::rlimits::{Limit, set_limit};
use super::signals;

const STACK_SIZE: usize = 64 * 1024;

/// What the parent prepared and the child reports back, in the memory both share.
#[repr(C)]
struct Shared {
    program: *const c_char,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
    cwd: *const c_char,
    keep: c_uint,
    null: c_int,
    out: c_int,
    err: c_int,
    /// Signals to set back to their default (bit `n - 1` for signal `n`).
    reset: u64,
    /// Descriptors to pass as 3, 4, … (`npassed` of them), and the first descriptor number
    /// above all of them and of the reserved slots, where they are staged on the way.
    passed: *const c_int,
    npassed: c_uint,
    staging: c_uint,
    /// Where the child writes its own pid, NUL-terminated: the value of the `LISTEN_PID=`
    /// entry of `envp` (null when nothing is passed).
    listen_pid: *mut u8,
    /// A user switch by raw system calls (`switch` is 0 without one).
    switch: c_int,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: *const libc::gid_t,
    ngroups: usize,
    /// `cgroup.procs` of the service's cgroup, to join before the exec; -1: none.
    cgroup: c_int,
    /// rlimits to set before the exec.
    limits: *const Limit,
    limit_count: usize,
    /// Where the child failed, and its errno; untouched when it exec'd.
    stage: Stage,
    errno: c_int,
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
enum Stage {
    Started,
    /// The descriptor table could not be unshared: not this kernel.
    Unshare,
    Setup,
    Exec,
}

/// The reserved descriptors and the child's stack, one spawn at a time.
struct Slots {
    null: OwnedFd,
    out: OwnedFd,
    err: OwnedFd,
    keep: c_uint,
    stack: *mut c_void,
    reset: u64,
}

// SAFETY: the stack pointer is only used under the mutex.
unsafe impl Send for Slots {}

static SLOTS: Mutex<Option<Slots>> = Mutex::new(None);
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
/// Set once clone3 with CLONE_INTO_CGROUP failed as unsupported (kernel before 5.7).
static NO_CLONE3: AtomicBool = AtomicBool::new(false);

/// clone3 with `CLONE_INTO_CGROUP`, on runpm's reserved stack, running [`child`] there.
///
/// glibc exports no clone3 wrapper, and with `CLONE_VM` the child starts on the new stack in
/// the middle of whatever called the system call: so the call, and the jump of the child
/// into `child`, are a few instructions of assembly (x86-64 only; elsewhere the child joins
/// the cgroup itself).
mod clone3 {
    use std::ffi::{c_int, c_void};

    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }

    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

    /// The child's pid, `Some(-errno)` on failure, `None` when this kernel (or
    /// architecture) cannot do it (the caller then clones the usual way).
    ///
    /// # Safety
    /// `stack` is `size` bytes that nothing else uses during the call; `arg` is what
    /// [`super::child`] expects, alive until the call returns (the child has exec'd or
    /// exited by then: `CLONE_VFORK`). Signals must be blocked.
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn into_cgroup(
        stack: *mut c_void,
        size: usize,
        cgroup: c_int,
        arg: *mut c_void,
    ) -> Option<i32> {
        let args = CloneArgs {
            flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES) as u64
                | CLONE_INTO_CGROUP,
            pidfd: 0,
            child_tid: 0,
            parent_tid: 0,
            exit_signal: libc::SIGCHLD as u64,
            stack: stack as u64,
            stack_size: size as u64,
            tls: 0,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: cgroup as u64,
        };
        let entry: extern "C" fn(*mut c_void) -> c_int = super::child;
        let ret: i64;
        // SAFETY: the parent continues at `2:` with only rax, rcx and r11 changed (the
        // system call's own clobbers). The child starts at the instruction after `syscall`
        // on the top of `stack` (16-byte aligned: the mapping is page-aligned), with the
        // parent's registers: it calls `child(arg)` from r12/r13 and, should that return,
        // exits with its value. It never comes back into this function.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "mov rdi, r12",
                "call r13",
                "mov edi, eax",
                "mov eax, 60",
                "syscall",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") &args as *const CloneArgs,
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") arg,
                in("r13") entry,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        match ret {
            pid if pid >= 0 => Some(pid as i32),
            // No clone3 (before 5.3), or no CLONE_INTO_CGROUP (before 5.7).
            e if e == -(libc::ENOSYS as i64)
                || e == -(libc::E2BIG as i64)
                || e == -(libc::EINVAL as i64) =>
            {
                super::NO_CLONE3.store(true, std::sync::atomic::Ordering::Relaxed);
                None
            }
            e => Some(e as i32),
        }
    }

    /// # Safety
    /// As on x86-64.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn into_cgroup(
        _stack: *mut c_void,
        _size: usize,
        _cgroup: c_int,
        _arg: *mut c_void,
    ) -> Option<i32> {
        None
    }
}

/// Starts the process; `None` when this kernel cannot do it this way (use `posix_spawn`).
pub fn spawn(req: &Request) -> Option<io::Result<i32>> {
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let mut guard = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        match Slots::reserve() {
            Ok(slots) => *guard = Some(slots),
            // Out of descriptors or memory for now: this spawn takes posix_spawn, the next
            // tries again.
            Err(_) => return None,
        }
    }
    match guard.as_ref().expect("reserved above").run(req) {
        Outcome::Started(pid) => Some(Ok(pid)),
        Outcome::Failed(e) => Some(Err(e)),
        Outcome::Unsupported => {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            None
        }
    }
}

enum Outcome {
    Started(i32),
    Failed(io::Error),
    Unsupported,
}

impl Slots {
    fn reserve() -> io::Result<Slots> {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        // Duplicated at 3 or above rather than kept: should runpm have started with stdin,
        // stdout or stderr closed, the open itself lands on 0, 1 or 2, and a slot there would
        // be runpm's own stdio.
        let null = above_stdio(&OwnedFd::from(null))?;
        let out = above_stdio(&null)?;
        let err = above_stdio(&null)?;
        let keep = [&null, &out, &err]
            .iter()
            .map(|fd| fd.as_raw_fd())
            .max()
            .unwrap_or(2)
            + 1;
        // SAFETY: a fresh private anonymous mapping, never unmapped.
        let stack = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if stack == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Slots {
            null,
            out,
            err,
            keep: keep as c_uint,
            stack,
            // Read once, here: at the first spawn, after the runtime installed every handler
            // it will ever install (see `daemon::runtime::run`), and runpm never ignores
            // a signal later. Resetting only these, rather than all 64, saves each child 60
            // system calls.
            reset: signals::non_default(),
        })
    }

    /// Points `slot` at `fd` (or back at /dev/null), close-on-exec as every slot is.
    fn set(&self, slot: &OwnedFd, fd: Option<c_int>) -> io::Result<()> {
        let source = fd.unwrap_or(self.null.as_raw_fd());
        // SAFETY: both descriptors are open; the slot is ours.
        if unsafe { libc::dup3(source, slot.as_raw_fd(), libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn run(&self, req: &Request) -> Outcome {
        let target = |stdio: Stdio| match stdio {
            Stdio::Null => None,
            Stdio::Fd(fd) => Some(fd.as_raw_fd()),
        };
        let placed = self
            .set(&self.out, target(req.stdout))
            .and_then(|()| self.set(&self.err, target(req.stderr)));
        let outcome = match placed {
            Ok(()) => self.clone_and_exec(req),
            Err(e) => Outcome::Failed(e),
        };
        // The slots must not keep the pipes open, or their readers would never see the end.
        let released = self
            .set(&self.out, None)
            .and_then(|()| self.set(&self.err, None));
        match (outcome, released) {
            (Outcome::Started(pid), Err(e)) => {
                // Cannot happen with valid descriptors; a service whose output never ends
                // is worse than one that does not start.
                // SAFETY: our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                Outcome::Failed(e)
            }
            (outcome, _) => outcome,
        }
    }

    fn clone_and_exec(&self, req: &Request) -> Outcome {
        let argv = pointers(req.argv);
        let mut envp = pointers(req.envp);
        let passed: Vec<c_int> = req.passed.iter().map(|fd| fd.as_raw_fd()).collect();
        // `LISTEN_PID=` and room for any pid; the child writes the digits.
        let mut listen_pid = [0u8; 32];
        listen_pid[..LISTEN_PID.len()].copy_from_slice(LISTEN_PID);
        if !passed.is_empty() {
            envp.insert(envp.len() - 1, listen_pid.as_mut_ptr().cast());
        }
        let staging = passed
            .iter()
            .copied()
            .chain([self.keep as c_int - 1, 2 + passed.len() as c_int])
            .max()
            .unwrap_or(2)
            + 1;
        let (switch, uid, gid, groups) = match req.credentials {
            Some(c) => (1, c.uid, c.gid, c.groups),
            None => (0, 0, 0, &[][..]),
        };
        let mut shared = Shared {
            passed: passed.as_ptr(),
            npassed: passed.len() as c_uint,
            staging: staging as c_uint,
            listen_pid: if passed.is_empty() {
                std::ptr::null_mut()
            } else {
                // SAFETY: within the buffer, right after the prefix.
                unsafe { listen_pid.as_mut_ptr().add(LISTEN_PID.len()) }
            },
            switch,
            uid,
            gid,
            groups: groups.as_ptr(),
            ngroups: groups.len(),
            program: req.program.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            cwd: req.cwd.as_ptr(),
            keep: self.keep,
            null: self.null.as_raw_fd(),
            out: self.out.as_raw_fd(),
            err: self.err.as_raw_fd(),
            reset: self.reset,
            // Set below when the child must join the cgroup itself.
            cgroup: -1,
            limits: req.extras.limits.as_ptr(),
            limit_count: req.extras.limits.len(),
            stage: Stage::Started,
            errno: 0,
        };
        // SAFETY: the stack is ours and unused by anyone else (the mutex); `shared` lives
        // until the clone returns, which with CLONE_VFORK is after the child exec'd or
        // exited. All signals are blocked across the clone and restored after.
        let (pid, clone_error) = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let top = (self.stack as *mut u8).add(STACK_SIZE) as *mut c_void;
            let arg: *mut c_void = (&mut shared as *mut Shared).cast();
            // Straight into the service's cgroup where the kernel can (clone3 with
            // CLONE_INTO_CGROUP): joining it from the child instead takes the kernel's
            // cgroup write lock, whose RCU grace period held runpm (waiting for its vfork
            // child) for 10-20 ms per spawn under load.
            let into = match req.extras.cgroup {
                Some(cgroup) if !NO_CLONE3.load(Ordering::Relaxed) => match cgroup.dir {
                    Some(dir) => clone3::into_cgroup(self.stack, STACK_SIZE, dir.as_raw_fd(), arg),
                    None => None,
                },
                _ => None,
            };
            let pid = match into {
                Some(pid) if pid >= 0 => pid,
                Some(errno) => {
                    *libc::__errno_location() = -errno;
                    -1
                }
                None => {
                    if req.extras.cgroup.is_some() {
                        // The child joins the cgroup itself.
                        (*arg.cast::<Shared>()).cgroup =
                            req.extras.cgroup.map_or(-1, |c| c.procs.as_raw_fd());
                    }
                    libc::clone(
                        child,
                        top,
                        libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD,
                        arg,
                    )
                }
            };
            let error = (pid < 0).then(io::Error::last_os_error);
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            (pid, error)
        };
        if let Some(e) = clone_error {
            return Outcome::Failed(e);
        }
        // SAFETY: the child is gone from this memory (exec'd or exited).
        let (stage, errno) = unsafe {
            (
                std::ptr::read_volatile(&shared.stage),
                std::ptr::read_volatile(&shared.errno),
            )
        };
        if stage == Stage::Started {
            return Outcome::Started(pid);
        }
        // It exited before the exec: collect it here, as posix_spawn does (the runtime is
        // single-threaded, so the reaper cannot take it first).
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        match stage {
            Stage::Unshare => Outcome::Unsupported,
            _ => Outcome::Failed(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// A close-on-exec duplicate of `fd` numbered 3 or above.
fn above_stdio(fd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: `fd` is open; the new descriptor is owned by nothing else.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, and ours alone.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) })
}

const LISTEN_PID: &[u8] = b"LISTEN_PID=";

/// Writes `pid` in decimal at `to`, NUL-terminated (at most 11 bytes): no allocation, as
/// everything in the child.
///
/// # Safety
///
/// `to` must have room for 11 bytes.
unsafe fn write_pid(to: *mut u8, pid: u32) {
    let mut digits = [0u8; 10];
    let mut n = pid;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        // SAFETY: the caller's buffer has room for 10 digits and the NUL.
        unsafe { *to.add(i) = digits[len - 1 - i] };
    }
    // SAFETY: as above.
    unsafe { *to.add(len) = 0 };
}

/// The child, on the reserved stack, in runpm's memory: system calls only.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `Shared`, alive while the parent waits for us.
    let shared = unsafe { &mut *arg.cast::<Shared>() };
    // SAFETY: only async-signal-safe system calls follow, on memory the parent keeps
    // alive and does not touch until this child has exec'd or exited.
    unsafe {
        let fail = |shared: &mut Shared, stage: Stage| -> ! {
            shared.errno = *libc::__errno_location();
            shared.stage = stage;
            libc::_exit(127)
        };
        // Every signal at its default: an ignored one would stay ignored across the exec,
        // and a handler of runpm's must not run here, in runpm's memory, should a signal
        // come before the exec. This child has its own copy of the dispositions (no
        // CLONE_SIGHAND), so runpm's are untouched.
        signals::set_default(shared.reset);
        // Into the service's cgroup first, while the descriptor table is still runpm's
        // (the cgroup's descriptor is not among the kept ones): every instruction of the
        // service, and everything it forks, is then inside it.
        if shared.cgroup >= 0 && libc::write(shared.cgroup, c"0".as_ptr().cast(), 1) != 1 {
            fail(shared, Stage::Setup);
        }
        if shared.npassed == 0 {
            if libc::syscall(
                libc::SYS_close_range,
                shared.keep,
                c_uint::MAX,
                libc::CLOSE_RANGE_UNSHARE,
            ) != 0
            {
                fail(shared, Stage::Unshare);
            }
        } else if libc::unshare(libc::CLONE_FILES) != 0
            // Passing descriptors: a private copy of the whole table (the cheap unshare
            // above would close them), then everything from `staging` up closed, so the
            // duplicates made there below land at `staging`, `staging + 1`, …
            || libc::syscall(libc::SYS_close_range, shared.staging, c_uint::MAX, 0) != 0
        {
            fail(shared, Stage::Setup);
        }
        // From here the descriptor table is the child's own.
        if libc::setsid() < 0
            || libc::dup2(shared.null, 0) < 0
            || libc::dup2(shared.out, 1) < 0
            || libc::dup2(shared.err, 2) < 0
            || libc::chdir(shared.cwd) != 0
        {
            fail(shared, Stage::Setup);
        }
        if shared.npassed > 0 {
            let n = shared.npassed as usize;
            // Staged above every source first, so that placing one at 3 + i can never
            // overwrite another still to be placed; dup2 clears close-on-exec.
            for i in 0..n {
                if libc::fcntl(*shared.passed.add(i), libc::F_DUPFD, shared.staging) < 0 {
                    fail(shared, Stage::Setup);
                }
            }
            for i in 0..n {
                if libc::dup2(shared.staging as c_int + i as c_int, 3 + i as c_int) < 0 {
                    fail(shared, Stage::Setup);
                }
            }
            if libc::syscall(libc::SYS_close_range, 3 + n as c_uint, c_uint::MAX, 0) != 0 {
                fail(shared, Stage::Setup);
            }
            write_pid(shared.listen_pid, libc::syscall(libc::SYS_getpid) as u32);
        }
        // Limits before the user switch: raising a hard limit needs the privileges that the
        // switch gives up.
        for i in 0..shared.limit_count {
            let limit = &*shared.limits.add(i);
            if set_limit(limit) != 0 {
                fail(shared, Stage::Setup);
            }
        }
        // Raw system calls: glibc's setuid would signal every thread of runpm (whose memory
        // this child shares) to switch them too.
        if shared.switch != 0
            && (libc::syscall(libc::SYS_setgroups, shared.ngroups, shared.groups) != 0
                || libc::syscall(libc::SYS_setgid, shared.gid) != 0
                || libc::syscall(libc::SYS_setuid, shared.uid) != 0)
        {
            fail(shared, Stage::Setup);
        }
        let empty = 0u64;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8,
        );
        libc::execve(shared.program, shared.argv.cast(), shared.envp.cast());
        fail(shared, Stage::Exec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::{CStr, CString};

    fn request<'a>(argv: &'a [CString], envp: &'a [CString], cwd: &'a CStr) -> Request<'a> {
        Request {
            program: &argv[0],
            argv,
            envp,
            cwd,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
            passed: &[],
            credentials: None,
            extras: Default::default(),
        }
    }

    fn wait(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`, a local.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        libc::WEXITSTATUS(status)
    }

    /// Runs `argv` with its stdout on a pipe; returns what it printed and its exit code.
    fn output(argv: &[CString], cwd: &CStr) -> (String, i32) {
        let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let envp = [c"PATH=/usr/bin:/bin".to_owned()];
        let mut req = request(argv, &envp, cwd);
        req.stdout = Stdio::Fd(std::os::fd::AsFd::as_fd(&tx));
        let pid = spawn(&req).expect("this kernel").unwrap();
        drop(tx);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(rx), &mut out).unwrap();
        (out, wait(pid))
    }

    #[test]
    fn starts_in_its_own_session_and_dir_with_only_the_standard_descriptors() {
        // Many open descriptors in the parent, none of which may reach the child.
        let held: Vec<std::fs::File> = (0..50)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let (listing, code) = output(&[c"/bin/ls".to_owned(), c"/proc/self/fd".to_owned()], c"/");
        assert_eq!(code, 0);
        let mut fds: Vec<i32> = listing.lines().map(|l| l.parse().unwrap()).collect();
        fds.sort_unstable();
        // 0, 1, 2, the directory `ls` opened, and otherwise only what the test runner left
        // open without close-on-exec: none of the 50 held here.
        assert!(fds.starts_with(&[0, 1, 2]), "{fds:?}");
        let ours: Vec<i32> = fds[3..]
            .iter()
            .copied()
            .filter(|&fd| {
                // SAFETY: F_GETFD only reads the descriptor's flags.
                let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                flags & libc::FD_CLOEXEC != 0
            })
            .collect();
        assert!(
            ours.len() <= 1,
            "only ls's own directory: {ours:?} of {fds:?}"
        );
        drop(held);

        let dir = tempfile::tempdir().unwrap();
        let cwd = CString::new(dir.path().to_str().unwrap()).unwrap();
        let script = c"pwd; ps -o sid= -p $$; echo $$".to_owned();
        let (out, code) = output(&[c"/bin/sh".to_owned(), c"-c".to_owned(), script], &cwd);
        assert_eq!(code, 0);
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(lines[0], real.to_str().unwrap());
        assert_eq!(lines[1], lines[2], "it leads its own session");

        // The slots went back to /dev/null: nothing of a spawn stays open in runpm.
        let guard = SLOTS.lock().unwrap();
        let slots = guard.as_ref().unwrap();
        for slot in [&slots.out, &slots.err] {
            let target = std::fs::read_link(format!("/proc/self/fd/{}", slot.as_raw_fd())).unwrap();
            assert_eq!(target, std::path::Path::new("/dev/null"));
        }
    }

    #[test]
    fn reports_exec_and_setup_errors_and_reaps_the_child() {
        let argv = [c"/nonexistent/program".to_owned()];
        let e = spawn(&request(&argv, &[], c"/")).unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let argv = [c"/bin/true".to_owned()];
        let e = spawn(&request(&argv, &[], c"/nonexistent-dir"))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // Both children were collected here: nothing is left to wait for.
        assert_eq!(
            // SAFETY: a null status pointer is allowed; nothing is written.
            unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) },
            -1
        );
    }

    #[test]
    fn passes_output_through_the_slots_and_ends_it() {
        let argv = [c"/bin/echo".to_owned(), c"hello".to_owned()];
        // `output` reads to end-of-file: the slots held no copy of the pipe.
        assert_eq!(output(&argv, c"/"), ("hello\n".to_owned(), 0));
    }
}
