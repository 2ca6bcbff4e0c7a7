//! Starting a service's process.
//!
//! Services that run as runpm's own user start vfork-style without copying runpm's
//! descriptor table ([`super::vfork`]), or through `posix_spawn` on kernels that cannot
//! ([`super::posix_spawn`]); only a `user`/`group` switch, which neither can do, takes std's
//! fork + exec with a `pre_exec` hook — unless the service also receives descriptors
//! (`listen`, the fd store), which only the vfork path can pass (it writes `LISTEN_PID` in
//! the child), so there it switches users too. Either way the command is looked up in the service's
//! own `PATH` first, so all paths report a missing command the same way, and we keep only the
//! pid and the output pipes: the reaper owns every exit status.
//!
//! Note on exec failures: each path `waitpid`s that one failed child itself. That cannot race
//! our reaper because the runtime is single-threaded: the reaper never runs during a spawn.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use nix::unistd::{Gid, Uid, setgid, setgroups, setsid, setuid};

pub use super::posix_spawn::Cgroup;
use super::posix_spawn::Extras;
use super::resolve::{DEFAULT_PATH, Unresolved, resolve};
use super::{posix_spawn, rlimits, signals, vfork};
use crate::config::ServiceSpec;

pub struct Spawned {
    pub pid: i32,
    /// The read ends of the output pipes, already non-blocking and close-on-exec.
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("working directory `{cwd}` does not exist or is not a directory")]
    BadCwd { cwd: String },
    #[error("command `{program}` not found (looked in `{cwd}` and PATH)")]
    NotFound { program: String, cwd: String },
    #[error("permission denied executing `{program}`")]
    PermissionDenied { program: String },
    #[error("unknown user `{user}`")]
    UnknownUser { user: String },
    #[error("unknown group `{group}`")]
    UnknownGroup { group: String },
    #[error("`user`/`group` need runpm to run as root")]
    NeedsRoot,
    #[error("could not start `{program}`")]
    Other {
        program: String,
        #[source]
        source: io::Error,
    },
    /// A `listen` socket could not be bound: the service cannot start without it.
    #[error(transparent)]
    Listen(#[from] crate::activation::BindError),
    /// The child could not be given its rlimits (the message names the limit).
    #[error("{0}")]
    Rlimit(String),
}

impl SpawnError {
    /// The exit code a shell would report for this failure; used as the service's result.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            _ => 126,
        }
    }
}

/// Credentials to switch to in the child, looked up before the fork because name lookups
/// are not safe between fork and exec.
struct Credentials {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    home: String,
    name: String,
}

fn lookup_credentials(spec: &ServiceSpec) -> Result<Option<Credentials>, SpawnError> {
    let group = match &spec.group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| SpawnError::UnknownGroup {
                    group: name.clone(),
                })?,
        ),
        None => None,
    };
    let Some(user_name) = &spec.user else {
        return Ok(group.map(|g| Credentials {
            uid: Uid::current(),
            gid: g.gid,
            groups: vec![g.gid],
            home: std::env::var("HOME").unwrap_or_else(|_| "/".into()),
            name: String::new(),
        }));
    };
    let user = nix::unistd::User::from_name(user_name)
        .ok()
        .flatten()
        .ok_or_else(|| SpawnError::UnknownUser {
            user: user_name.clone(),
        })?;
    let gid = group.map(|g| g.gid).unwrap_or(user.gid);
    let groups = CString::new(user.name.clone())
        .ok()
        .and_then(|c| nix::unistd::getgrouplist(&c, gid).ok())
        .unwrap_or_else(|| vec![gid]);
    Ok(Some(Credentials {
        uid: user.uid,
        gid,
        groups,
        home: user.dir.to_string_lossy().into_owned(),
        name: user.name,
    }))
}

/// runpm's own environment, read once: it does not change while runpm runs, and reading it
/// per spawn was a measurable part of starting a thousand services.
fn inherited() -> &'static BTreeMap<String, String> {
    static INHERITED: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
    INHERITED.get_or_init(|| std::env::vars().collect())
}

/// The environment a service starts with.
fn environment(spec: &ServiceSpec, extra: &[(String, String)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = if spec.clear_env {
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into());
        BTreeMap::from([("PATH".to_string(), path)])
    } else {
        inherited().clone()
    };
    // Variables that describe runpm itself must not leak into services.
    // runpm's own sd_notify variables (when systemd runs runpm) are not the services'.
    for var in crate::notify::NOTIFY_VARS {
        env.remove(var);
    }
    env.remove("LISTEN_FDS");
    env.remove("LISTEN_PID");
    env.remove("LISTEN_FDNAMES");
    // systemd's JOURNAL_STREAM names runpm's stderr; a service's stderr is runpm's pipe, and
    // its lines reach the journal through runpm under the service's own identifier.
    env.remove("JOURNAL_STREAM");
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(extra.iter().cloned());
    env
}

/// Where the child's stdout and stderr go.
enum Output {
    /// The write ends of two pipes.
    Pipes {
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Null,
}

/// Starts `spec` in a new session (so it leads its own process group), stdin from
/// /dev/null, stdout and stderr on pipes.
pub fn spawn(spec: &ServiceSpec, extra_env: &[(String, String)]) -> Result<Spawned, SpawnError> {
    spawn_in(spec, extra_env, None)
}

/// [`spawn`], with the child in a cgroup from its start (see [`Cgroup`]).
pub fn spawn_in(
    spec: &ServiceSpec,
    extra_env: &[(String, String)],
    cgroup: Option<Cgroup<'_>>,
) -> Result<Spawned, SpawnError> {
    spawn_passing(spec, extra_env, &[], cgroup)
}

/// As [`spawn_in`], with `passed` as descriptors 3, 4, … and `LISTEN_PID` set to the
/// child's own pid (the caller sets `LISTEN_FDS` and `LISTEN_FDNAMES` in `extra_env`).
pub fn spawn_passing(
    spec: &ServiceSpec,
    extra_env: &[(String, String)],
    passed: &[BorrowedFd<'_>],
    cgroup: Option<Cgroup<'_>>,
) -> Result<Spawned, SpawnError> {
    let other = |source| SpawnError::Other {
        program: spec.command.argv()[0].clone(),
        source,
    };
    let (stdout, stdout_w) = output_pipe().map_err(other)?;
    let (stderr, stderr_w) = output_pipe().map_err(other)?;
    let output = Output::Pipes {
        stdout: stdout_w,
        stderr: stderr_w,
    };
    // The write ends are closed here once the child holds its copies, so that the pipes
    // report end-of-file when the service (and whatever inherited them) is gone.
    let pid = start(spec, extra_env, output, passed, cgroup)?;
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// Starts `spec` (a probe) with its output discarded; returns the pid. The reaper collects
/// it like any child.
pub fn spawn_quiet(spec: &ServiceSpec) -> Result<i32, SpawnError> {
    start(spec, &[], Output::Null, &[], None)
}

/// A pipe whose read end (ours) is non-blocking, for the runtime to poll, and whose write end
/// (the child's) stays blocking: a service writing faster than runpm reads must wait, not
/// fail with EAGAIN.
fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    fcntl(read.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((read, write))
}

fn start(
    spec: &ServiceSpec,
    extra_env: &[(String, String)],
    output: Output,
    passed: &[BorrowedFd<'_>],
    cgroup: Option<Cgroup<'_>>,
) -> Result<i32, SpawnError> {
    let argv = spec.command.argv();
    let program = argv[0].clone();
    if !spec.cwd.is_dir() {
        return Err(SpawnError::BadCwd {
            cwd: spec.cwd.to_string(),
        });
    }
    let creds = lookup_credentials(spec)?;
    if creds.is_some() && !Uid::effective().is_root() {
        return Err(SpawnError::NeedsRoot);
    }
    let mut env = environment(spec, extra_env);
    if let Some(c) = &creds
        && spec.user.is_some()
    {
        for (key, value) in [("USER", &c.name), ("LOGNAME", &c.name), ("HOME", &c.home)] {
            if !spec.env.contains_key(key) {
                env.insert(key.into(), value.clone());
            }
        }
    }
    let path = resolve(
        &program,
        env.get("PATH").map(String::as_str),
        spec.cwd.as_std_path(),
    )
    .map_err(|e| match e {
        Unresolved::NotFound => SpawnError::NotFound {
            program: program.clone(),
            cwd: spec.cwd.to_string(),
        },
        Unresolved::NotExecutable(_) => SpawnError::PermissionDenied {
            program: program.clone(),
        },
    })?;
    rlimits::check(&spec.rlimits).map_err(SpawnError::Rlimit)?;
    let limits = rlimits::resolve(&spec.rlimits);
    let extras = Extras {
        cgroup,
        limits: &limits,
    };
    let cwd = spec.cwd.as_std_path();
    // Passed descriptors need the vfork path (see `vfork`), which can join a cgroup, set
    // rlimits and switch users too; without it they cannot be passed at all.
    let unsupported = || {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "passing sockets (`listen`, the fd store) needs Linux 5.9 or later (close_range)",
        ))
    };
    let result = match creds {
        None => match spawn_fast(&path, &argv, &env, cwd, &output, (passed, None), extras) {
            Fast::Done(result) => result,
            // posix_spawn cannot join a cgroup or set rlimits.
            Fast::Unsupported if passed.is_empty() => {
                fork_exec(&path, &argv, &env, cwd, output, None, extras)
            }
            Fast::Unsupported => unsupported(),
        },
        Some(creds) if !passed.is_empty() => {
            let groups: Vec<libc::gid_t> = creds.groups.iter().map(|g| g.as_raw()).collect();
            let switch = posix_spawn::Credentials {
                uid: creds.uid.as_raw(),
                gid: creds.gid.as_raw(),
                groups: &groups,
            };
            match spawn_fast(
                &path,
                &argv,
                &env,
                cwd,
                &output,
                (passed, Some(switch)),
                extras,
            ) {
                Fast::Done(result) => result,
                Fast::Unsupported => unsupported(),
            }
        }
        Some(creds) => fork_exec(&path, &argv, &env, cwd, output, Some(creds), extras),
    };
    result.map_err(|source| spawn_error(source, &program, spec))
}

/// Everything but a credentials switch: vfork-style, or `posix_spawn` where the kernel
/// cannot (see [`super::vfork`]).
/// What the fast path did: started (or failed to start) the process, or left it to
/// fork + exec because neither vfork nor `posix_spawn` can do what `extras` ask.
enum Fast {
    Done(io::Result<i32>),
    Unsupported,
}

fn spawn_fast(
    path: &Path,
    argv: &[String],
    env: &BTreeMap<String, String>,
    cwd: &Path,
    output: &Output,
    passing: (&[BorrowedFd<'_>], Option<posix_spawn::Credentials<'_>>),
    extras: Extras<'_>,
) -> Fast {
    match build_fast(path, argv, env, cwd, output, passing, extras) {
        Ok(fast) => fast,
        Err(e) => Fast::Done(Err(e)),
    }
}

fn build_fast(
    path: &Path,
    argv: &[String],
    env: &BTreeMap<String, String>,
    cwd: &Path,
    output: &Output,
    (passed, credentials): (&[BorrowedFd<'_>], Option<posix_spawn::Credentials<'_>>),
    extras: Extras<'_>,
) -> io::Result<Fast> {
    let c = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a NUL byte in the command, its environment or its cwd",
            )
        })
    };
    let program = c(path.as_os_str().as_bytes())?;
    let argv: Vec<CString> = argv
        .iter()
        .map(|a| c(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| c(format!("{k}={v}").as_bytes()))
        .collect::<io::Result<_>>()?;
    let cwd = c(cwd.as_os_str().as_bytes())?;
    let (stdout, stderr) = match output {
        Output::Pipes { stdout, stderr } => (
            posix_spawn::Stdio::Fd(stdout.as_fd()),
            posix_spawn::Stdio::Fd(stderr.as_fd()),
        ),
        Output::Null => (posix_spawn::Stdio::Null, posix_spawn::Stdio::Null),
    };
    let request = posix_spawn::Request {
        program: &program,
        argv: &argv,
        envp: &envp,
        cwd: &cwd,
        stdout,
        stderr,
        passed,
        credentials,
        extras,
    };
    Ok(match vfork::spawn(&request) {
        Some(result) => Fast::Done(result),
        None if extras.any() => Fast::Unsupported,
        None => Fast::Done(posix_spawn::spawn(&request)),
    })
}

/// The fork + exec path, for a service that switches user or group.
fn fork_exec(
    path: &Path,
    argv: &[String],
    env: &BTreeMap<String, String>,
    cwd: &Path,
    output: Output,
    creds: Option<Credentials>,
    extras: Extras<'_>,
) -> io::Result<i32> {
    let cgroup = extras.cgroup.map(|c| c.procs.as_raw_fd());
    let limits = extras.limits.to_vec();
    let mut cmd = Command::new(path);
    cmd.arg0(&argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null());
    match output {
        Output::Pipes { stdout, stderr } => cmd.stdout(stdout).stderr(stderr),
        Output::Null => cmd.stdout(Stdio::null()).stderr(Stdio::null()),
    };
    // SAFETY: the closure only makes async-signal-safe system calls (write, setrlimit,
    // setsid, signal, setgroups, setgid, setuid) and allocates nothing. std itself empties
    // the signal mask.
    unsafe {
        cmd.pre_exec(move || {
            // The cgroup first, while still root: a service of another user joins it too.
            if let Some(fd) = cgroup
                && libc::write(fd, c"0".as_ptr().cast(), 1) != 1
            {
                return Err(io::Error::last_os_error());
            }
            for limit in &limits {
                if rlimits::set_limit(limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            setsid()?;
            // Every signal at its default, as on the other paths: an ignored one would
            // stay ignored across the exec.
            signals::set_default(u64::MAX);
            if let Some(creds) = &creds {
                if creds.uid != Uid::current() || !creds.groups.is_empty() {
                    setgroups(&creds.groups)?;
                }
                setgid(creds.gid)?;
                setuid(creds.uid)?;
            }
            Ok(())
        });
    }
    // Dropping the child neither waits nor kills: the reaper collects the status.
    Ok(cmd.spawn()?.id() as i32)
}

fn spawn_error(source: io::Error, program: &str, spec: &ServiceSpec) -> SpawnError {
    let program = program.to_string();
    match source.kind() {
        io::ErrorKind::NotFound => SpawnError::NotFound {
            program,
            cwd: spec.cwd.to_string(),
        },
        io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied { program },
        _ => SpawnError::Other { program, source },
    }
}
