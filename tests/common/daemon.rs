//! The control plane from a user's side: `runpm up -d` and `runpmctl`, the real binaries.
//!
//! A [`Daemon`] guard stands for a detached runpm. It knows the daemon's pid from the lock
//! file (`.runpm/lock`), registers it with the watchdog, and on drop SIGKILLs the daemon, its
//! services' process groups and anything else still running in the project directory: a
//! detached daemon is no child of the test, so without the guard it would outlive a failing
//! test and keep its services running.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

use super::{Finished, LIVE, Project, Runpm, is_alive, kill_tree, pgid, secs, wait_for_some};

/// The client binary under test.
pub const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");

/// The longest any single runpm/runpmctl command may take in a test before it counts as hung.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(30);

impl Project {
    /// `runpm up -f services.toml -d EXTRA…`; asserts that it returns 0 and hands back the
    /// guard of the daemon it started. The state directory is `--state-dir` when `extra`
    /// has one, else `.runpm` beside the config.
    pub fn up_detached(&self, extra: &[&str]) -> Daemon {
        let file = self.file("services.toml");
        let mut args: Vec<&OsStr> =
            vec!["up".as_ref(), "-f".as_ref(), file.as_ref(), "-d".as_ref()];
        args.extend(extra.iter().map(OsStr::new));
        let state_dir = extra
            .iter()
            .position(|a| *a == "--state-dir")
            .and_then(|i| extra.get(i + 1))
            .map_or_else(|| self.file(".runpm"), PathBuf::from);
        self.up_detached_with(self.command(args), &state_dir)
    }

    /// Runs `cmd` (a `runpm up -d` of some form) and returns the guard of the daemon that
    /// locks `state_dir`.
    pub fn up_detached_with(&self, cmd: std::process::Command, state_dir: &Path) -> Daemon {
        self.up_detached_expecting(cmd, state_dir, Some(0))
    }

    /// `runpm up -f services.toml -d EXTRA…` for services some of which fail at start (so
    /// that `up -d` exits 0 or 1, depending on the moment): the guard of the daemon, which
    /// must be running.
    pub fn up_detached_failing(&self, extra: &[&str]) -> Daemon {
        let file = self.file("services.toml");
        let mut args: Vec<&OsStr> =
            vec!["up".as_ref(), "-f".as_ref(), file.as_ref(), "-d".as_ref()];
        args.extend(extra.iter().map(OsStr::new));
        self.up_detached_expecting(self.command(args), &self.file(".runpm"), None)
    }

    /// As [`Project::up_detached_with`], asserting `runpm up -d`'s exit code when given.
    pub fn up_detached_expecting(
        &self,
        cmd: std::process::Command,
        state_dir: &Path,
        code: Option<i32>,
    ) -> Daemon {
        let mut up = Runpm::start(cmd);
        let status = up.wait_exit(COMMAND_LIMIT);
        let finished = Finished {
            status,
            stdout: up.stdout(),
            stderr: up.stderr(),
        };
        // Read the lock before asserting anything, so that even a failed `up -d` leaves no
        // daemon behind.
        let lock = state_dir.join("lock");
        let pid = std::fs::read_to_string(&lock)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        let socket = finished
            .stdout
            .split("(socket ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .map_or_else(|| state_dir.join("runpm.sock"), PathBuf::from);
        let daemon = Daemon {
            pid: pid.unwrap_or(0),
            leave_services: false,
            project: self.path().to_owned(),
            state_dir: state_dir.to_owned(),
            socket,
            up: finished,
        };
        if let Some(pid) = pid {
            LIVE.lock().unwrap().push(pid as u32);
        }
        if let Some(code) = code {
            assert_eq!(
                daemon.up.code(),
                Some(code),
                "`runpm up -d` should exit {code}\n{}",
                daemon.describe()
            );
        }
        assert!(
            pid.is_some_and(is_alive),
            "no live daemon pid in {lock:?} after `runpm up -d`\n{}",
            daemon.describe()
        );
        daemon
    }

    /// `runpmctl ARGS…` run to completion in the project directory.
    pub fn ctl(&self, args: &[&str]) -> Finished {
        self.ctl_in(self.path(), args)
    }

    /// `runpmctl ARGS…` run to completion in `dir`.
    pub fn ctl_in(&self, dir: &Path, args: &[&str]) -> Finished {
        let mut cmd = self.program(RUNPMCTL, args);
        cmd.current_dir(dir);
        run_to_end(cmd)
    }

    /// `runpmctl ARGS…`, which must exit 0; returns its stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(
            out.code(),
            Some(0),
            "`runpmctl {}` should succeed\n{}",
            args.join(" "),
            out.describe()
        );
        out.stdout
    }

    /// `runpmctl status --json`, parsed.
    pub fn status_json(&self) -> Value {
        let text = self.ctl_ok(&["status", "--json"]);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("`status --json` is not JSON ({e}):\n{text}"))
    }

    /// Every service's entry of `status --json`, by name.
    pub fn services(&self) -> BTreeMap<String, Value> {
        services_by_name(&self.status_json())
    }

    /// Every service's pid (None when not running), by name.
    pub fn pids(&self) -> BTreeMap<String, Option<i32>> {
        self.services()
            .into_iter()
            .map(|(name, s)| (name, s["pid"].as_i64().map(|p| p as i32)))
            .collect()
    }

    /// Every service's status, by name.
    pub fn statuses(&self) -> BTreeMap<String, String> {
        self.services()
            .into_iter()
            .map(|(name, s)| (name, s["status"].as_str().unwrap_or("?").to_owned()))
            .collect()
    }

    /// The pid of `name` once it runs (per `status --json`).
    pub fn running_pid(&self, name: &str, timeout: Duration) -> i32 {
        wait_for_some(timeout, || {
            let s = self.services().remove(name)?;
            let pid = s["pid"].as_i64()? as i32;
            (s["status"] == "running" && is_alive(pid)).then_some(pid)
        })
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not running within {timeout:?}: {:?}",
                self.services().get(name)
            )
        })
    }

    /// Saves `rel` the way editors do: write a temporary file beside it, then rename it over
    /// the original (the watcher must see this as a change of the file, not a deletion).
    pub fn save_atomically(&self, rel: &str, contents: &str) {
        let path = self.file(rel);
        let tmp = path.with_extension("tmp~");
        std::fs::write(&tmp, contents).unwrap_or_else(|e| panic!("write {tmp:?}: {e}"));
        std::fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename {tmp:?}: {e}"));
    }

    /// Waits until the pid in `rel` (written by `echo $$ > rel`) differs from `old`, and the
    /// process is alive; returns it.
    pub fn wait_new_pid(&self, rel: &str, old: i32, timeout: Duration) -> i32 {
        wait_for_some(timeout, || {
            let pid: i32 = self.lines(rel).first()?.trim().parse().ok()?;
            (pid != old && is_alive(pid)).then_some(pid)
        })
        .unwrap_or_else(|| {
            panic!(
                "{rel}: no new live pid (old {old}) within {timeout:?}: {:?}",
                self.read(rel)
            )
        })
    }
}

/// `status --json`'s `services` list by name.
pub fn services_by_name(status: &Value) -> BTreeMap<String, Value> {
    status["services"]
        .as_array()
        .unwrap_or_else(|| panic!("`services` should be a list: {status}"))
        .iter()
        .map(|s| {
            let name = s["name"].as_str().expect("every service has a name");
            (name.to_owned(), s.clone())
        })
        .collect()
}

/// Runs `cmd` to completion (killing it after [`COMMAND_LIMIT`]).
pub fn run_to_end(cmd: std::process::Command) -> Finished {
    let mut child = Runpm::start(cmd);
    let status = child.wait_exit(COMMAND_LIMIT);
    Finished {
        status,
        stdout: child.stdout(),
        stderr: child.stderr(),
    }
}

impl Finished {
    /// Exit status and both outputs, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit status: {}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A detached runpm. Dropping it kills the daemon and everything it started.
pub struct Daemon {
    pid: i32,
    /// Set by [`Daemon::crash`]: the daemon is gone and its services are left running.
    leave_services: bool,
    project: PathBuf,
    state_dir: PathBuf,
    socket: PathBuf,
    /// What `runpm up -d` printed.
    pub up: Finished,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The socket path `runpm up -d` announced.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's own log (`STATE_DIR/runpm.log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("runpm.log")).unwrap_or_default()
    }

    pub fn is_alive(&self) -> bool {
        is_alive(self.pid)
    }

    /// Waits until the daemon has ended; false if it still runs after `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        super::wait_dead(self.pid, timeout)
    }

    pub fn send_signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig)
            .unwrap_or_else(|e| panic!("send {sig} to the daemon {}: {e}", self.pid));
    }

    /// Waits until the daemon's log contains `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for_some(timeout, || {
            let log = self.log();
            log.contains(needle).then_some(log)
        })
        .unwrap_or_else(|| {
            panic!(
                "the daemon's log did not show {needle:?} within {timeout:?}\n{}",
                self.describe()
            )
        })
    }

    /// `kill -9` of the daemon alone, as a crash would end it: its services keep running
    /// (orphaned), and this guard no longer kills them. Returns once the daemon has ended.
    /// Keep a [`StrayGuard`] (or a later daemon's guard) to end them when the test ends.
    pub fn crash(mut self) {
        if self.pid > 0 {
            // A daemon that already died is a crash too; the caller looks at the result.
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            assert!(
                super::wait_dead(self.pid, COMMAND_LIMIT),
                "the daemon {} survived SIGKILL",
                self.pid
            );
            // The main thread turns zombie before the other threads have finished exiting
            // and closed the shared files: only then is the single-instance lock free.
            let lock = self.state_dir.join("lock");
            assert!(
                super::wait_for(COMMAND_LIMIT, || lock_is_free(&lock)),
                "the lock {lock:?} is still held after the daemon {} died",
                self.pid
            );
        }
        self.leave_services = true;
    }

    /// `kill -9` of the daemon alone, returning at once: the lock may still be held by its
    /// exiting threads (unlike [`Daemon::crash`], which waits until it is free). Its
    /// services keep running and this guard no longer kills them.
    pub fn crash_now(mut self) {
        if self.pid > 0 {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
        self.leave_services = true;
    }

    /// The output of `runpm up -d` and the daemon's log, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- runpm up -d ---\n{}\n--- {}/runpm.log ---\n{}--------------------",
            self.up.describe(),
            self.state_dir.display(),
            self.log()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.leave_services {
            LIVE.lock().unwrap().retain(|&p| p != self.pid as u32);
            return;
        }
        if self.pid > 0 && is_alive(self.pid) {
            kill_tree(self.pid);
        }
        // Services whose daemon died (or was killed above before it could stop them) are
        // orphans that kill_tree no longer finds below it; they still run in the project.
        kill_processes_in(&self.project);
        LIVE.lock().unwrap().retain(|&p| p != self.pid as u32);
        // A fallback socket outside the state directory is not removed with the project.
        if !self.socket.starts_with(&self.state_dir) && !self.socket.starts_with(&self.project) {
            let _ = std::fs::remove_file(&self.socket);
        }
        // Tests loosen permissions on purpose; let the temporary directory be removed.
        let _ = std::fs::set_permissions(&self.state_dir, std::fs::Permissions::from_mode(0o700));
    }
}

/// Kills the processes working in a project when dropped: the services of a daemon that a
/// test crashed on purpose, should the test fail before another daemon's guard takes over.
pub struct StrayGuard(PathBuf);

impl Project {
    pub fn stray_guard(&self) -> StrayGuard {
        StrayGuard(self.path().to_owned())
    }
}

impl Drop for StrayGuard {
    fn drop(&mut self) {
        kill_processes_in(&self.0);
    }
}

/// SIGKILLs every process (and its process group) working in `dir` or below it.
pub fn kill_processes_in(dir: &Path) {
    for _ in 0..3 {
        let strays = processes_in(dir);
        if strays.is_empty() {
            break;
        }
        for pid in strays {
            if let Some(group) = pgid(pid).filter(|&g| g > 1 && g != own_pgid()) {
                let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        super::wait_for(secs(1), || processes_in(dir).is_empty());
    }
}

/// Whether nobody holds the flock on `path` (taken and released at once to find out).
fn lock_is_free(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return true;
    };
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
}

fn own_pgid() -> i32 {
    nix::unistd::getpgrp().as_raw()
}

/// Live processes (not us) whose working directory is `dir` or below it.
pub fn processes_in(dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    super::all_pids()
        .into_iter()
        .filter(|&pid| pid != me && is_alive(pid))
        .filter(|&pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

/// `sleep` in a session of its own that carries runpm's tag for `service` of the project's
/// daemon, with `token` (or none), as `uid` (through setpriv) or as the test's own user: a
/// process that only looks like one of runpm's. Returns once it runs `sleep` (until it has
/// exec'd, its environment is setpriv's, not yet the one it keeps).
pub fn tagged_sleep(
    p: &Project,
    service: &str,
    token: Option<&str>,
    uid: Option<u32>,
) -> std::process::Child {
    let mut cmd = std::process::Command::new("setpriv");
    if let Some(uid) = uid {
        cmd.args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_owned(),
        ]);
    }
    cmd.args(["setsid", "sleep", "1000000"])
        .current_dir(p.path())
        .env("RUNPM_INSTANCE", p.file(".runpm"))
        .env("RUNPM_SERVICE", service)
        .stdin(std::process::Stdio::null());
    if let Some(token) = token {
        cmd.env("RUNPM_TOKEN", token);
    }
    let child = cmd.spawn().expect("setpriv (util-linux) runs");
    let pid = child.id() as i32;
    assert!(
        super::wait_for(COMMAND_LIMIT, || std::fs::read(format!(
            "/proc/{pid}/cmdline"
        ))
        .is_ok_and(|c| c.starts_with(b"sleep\0"))),
        "the tagged sleep did not start"
    );
    child
}
