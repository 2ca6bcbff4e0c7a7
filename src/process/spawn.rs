//! Starting a service's process.
//!
//! std's `Command` does the fork/exec and reports exec failures (missing binary, no
//! permission) back to the parent through its close-on-exec pipe, which is exactly the
//! per-service error we want. We keep only the pid and the output pipes: the `Child` handle
//! is dropped without waiting, because the reaper owns every exit status.
//!
//! Note on the exec-failure path: std then `waitpid`s that one child itself. That cannot race
//! our reaper because the runtime is single-threaded: the reaper never runs during a spawn.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::{Gid, Uid, setgid, setgroups, setsid, setuid};

use crate::config::ServiceSpec;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Spawned {
    pub pid: i32,
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
    env.remove(crate::detach::READY_FD_ENV);
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(extra.iter().cloned());
    env
}

/// The command for `spec`: its own session, its cwd, environment and credentials, stdin
/// from /dev/null. The caller chooses where output goes.
fn command(spec: &ServiceSpec, extra_env: &[(String, String)]) -> Result<Command, SpawnError> {
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

    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&env)
        .stdin(Stdio::null());
    // SAFETY: the closure only makes async-signal-safe system calls (setsid, sigprocmask,
    // setgroups, setgid, setuid) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            setsid()?;
            // runpm's signal mask must not leak: a service that starts with SIGTERM blocked
            // could never be stopped gracefully.
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            if let Some(c) = &creds {
                if c.uid != Uid::current() || !c.groups.is_empty() {
                    setgroups(&c.groups)?;
                }
                setgid(c.gid)?;
                setuid(c.uid)?;
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Starts `spec` in a new session (so it leads its own process group), stdin from
/// /dev/null, stdout and stderr on pipes.
pub fn spawn(spec: &ServiceSpec, extra_env: &[(String, String)]) -> Result<Spawned, SpawnError> {
    let mut cmd = command(spec, extra_env)?;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let program = spec.command.argv()[0].clone();
    let mut child = cmd
        .spawn()
        .map_err(|source| spawn_error(source, &program, spec))?;
    let pid = child.id() as i32;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let source = io::Error::other("output pipes missing after spawn");
        return Err(SpawnError::Other { program, source });
    };
    // Dropping `child` neither waits nor kills: the reaper collects the status.
    Ok(Spawned {
        pid,
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

/// Starts `spec` (a probe) with its output discarded; returns the pid. The reaper collects
/// it like any child.
pub fn spawn_quiet(spec: &ServiceSpec) -> Result<i32, SpawnError> {
    let mut cmd = command(spec, &[])?;
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let program = spec.command.argv()[0].clone();
    let child = cmd
        .spawn()
        .map_err(|source| spawn_error(source, &program, spec))?;
    Ok(child.id() as i32)
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
