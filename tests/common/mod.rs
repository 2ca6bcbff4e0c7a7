//! Harness for the integration tests: run the real `runpm` binary in a temporary project with
//! small misbehaving `/bin/sh` services, and observe it the way a user would (its output, its
//! exit status, the processes it leaves behind).
//!
//! Rules the tests follow:
//!
//! - Every test builds a [`Project`], which arms a watchdog: when the test overruns its hard
//!   deadline, every `runpm` it started is killed with its whole process tree and the test
//!   process exits with a failure, instead of hanging the suite.
//! - Nothing sleeps and hopes. Waits are for a condition, with a deadline ([`wait_for`],
//!   [`Runpm::wait_for_event`], [`Project::wait_lines`]); the short sleeps inside those loops
//!   only pace the re-checks. "Nothing happened for a while" is measured by another service's
//!   progress (a ticker appending to a file), not by the clock.
//! - A [`Runpm`] guard kills runpm and every process below it on drop, also when the test
//!   panics, so a failing test does not leak services into the next one.
//!
//! Service names in the tests are whole words (`alpha`, `ticker`), never one letter, because
//! events are matched by "a line of runpm's stderr that mentions the service and a key word".

#![allow(dead_code)] // Each test binary uses its own subset of the harness.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

mod daemon;
#[allow(unused_imports)] // Only the control tests use the daemon harness.
pub use daemon::*;

mod observe;
#[allow(unused_imports)] // Only the readiness and log tests use these.
pub use observe::*;

mod events;
#[allow(unused_imports)] // Only the tests of `runpmctl events` read it so far.
pub use events::*;

pub mod need;
#[allow(unused_imports)] // Only the tests that need root or a system program use these.
pub use need::{need_check, need_root, need_systemd_notify, need_tool, need_tools};

/// The binary under test.
pub const RUNPM: &str = env!("CARGO_BIN_EXE_runpm");

/// How often the wait loops re-check a condition that nothing notifies us about (files,
/// `/proc`). Short enough not to slow tests down, long enough not to burn a CPU.
const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Waits until `f` returns `Some`, or `timeout` passes.
pub fn wait_for_some<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let mut out = None;
    wait_for(timeout, || {
        out = f();
        out.is_some()
    });
    out
}

/// Seconds as a `Duration`, for readable test bodies.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Milliseconds as a `Duration`.
pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

// ---------------------------------------------------------------------------------------------
// The watchdog: a hard deadline per test
// ---------------------------------------------------------------------------------------------

/// Process ids of every runpm (or `unshare`) the tests of this process started and have not
/// cleaned up yet, so that the watchdog can kill them before failing the test.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The directories of every [`Project`] of this process: on a timeout the watchdog also kills
/// the processes working in them, such as the services of a daemon a test killed on purpose
/// (orphans that no `runpm` in [`LIVE`] has below it any more).
static PROJECT_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Fails the test process when it is still running after its deadline. Dropping it disarms it.
pub struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn arm(limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let name = thread::current().name().unwrap_or("test").to_string();
        let thread = thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("\n*** {name}: hard deadline of {limit:?} exceeded; killing runpm ***");
                let pids: Vec<u32> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
                for pid in pids {
                    kill_tree(pid as i32);
                }
                let dirs: Vec<PathBuf> = PROJECT_DIRS.lock().map(|d| d.clone()).unwrap_or_default();
                for dir in dirs {
                    kill_processes_in(&dir);
                }
                std::process::exit(101);
            }
        });
        Watchdog {
            disarm: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing the channel wakes the watchdog thread at once.
        drop(self.disarm.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A service that appends a line to `ticks` every 50 ms, forever: the clock of tests that
/// need "a while" to pass, and a witness that runpm keeps serving other services.
pub const TICKER: &str = r#"
[services.ticker]
shell = 'while :; do echo tick >> ticks; sleep 0.05; done'
"#;

// ---------------------------------------------------------------------------------------------
// A temporary project
// ---------------------------------------------------------------------------------------------

/// A temporary directory holding a config and whatever files its services write.
pub struct Project {
    dir: tempfile::TempDir,
    _watchdog: Watchdog,
}

impl Project {
    /// A fresh project; the test fails (and its processes are killed) after `limit`.
    pub fn new(limit: Duration) -> Project {
        let watchdog = Watchdog::arm(limit);
        let dir = tempfile::Builder::new()
            .prefix("runpm-test-")
            .tempdir()
            .expect("create temporary directory");
        PROJECT_DIRS.lock().unwrap().push(dir.path().to_owned());
        Project {
            dir,
            _watchdog: watchdog,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the project.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `contents` to `rel` (creating parent directories) and returns its path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.file(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        path
    }

    /// Writes `services.toml`.
    pub fn config(&self, toml: &str) -> PathBuf {
        self.write("services.toml", toml)
    }

    /// The contents of `rel`, or "" when it does not exist (yet).
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.file(rel)).unwrap_or_default()
    }

    /// The complete lines of `rel` (a last line without its newline is still being written
    /// and is left out).
    pub fn lines(&self, rel: &str) -> Vec<String> {
        let text = self.read(rel);
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete.lines().map(str::to_owned).collect()
    }

    /// Waits until `rel` has at least `n` complete lines; returns them.
    pub fn wait_lines(&self, rel: &str, n: usize, timeout: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        if !wait_for(timeout, || {
            lines = self.lines(rel);
            lines.len() >= n
        }) {
            panic!(
                "{rel}: expected at least {n} lines within {timeout:?}, have {}: {lines:?}",
                lines.len()
            );
        }
        lines
    }

    /// Waits until `rel` has grown by `more` complete lines from now. Used with [`TICKER`] to
    /// let "a while" pass, measured by another service's progress instead of a fixed sleep:
    /// when the ticker has run `more` more rounds, runpm has had time to act on anything
    /// that happened before.
    pub fn wait_growth(&self, rel: &str, more: usize, timeout: Duration) {
        let now = self.lines(rel).len();
        self.wait_lines(rel, now + more, timeout);
    }

    /// Waits until `rel` holds a pid on a complete line (written by `echo $$ > rel`).
    pub fn read_pid(&self, rel: &str, timeout: Duration) -> i32 {
        wait_for_some(timeout, || {
            self.lines(rel).first().and_then(|l| l.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no pid in {rel} within {timeout:?}: {:?}", self.read(rel)))
    }

    /// `runpm ARGS…` with the project as working directory, stdin from /dev/null and no
    /// configuration leaking in from the environment of whoever runs the tests.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.program(RUNPM, args)
    }

    /// Like [`Project::command`] for another program (such as `unshare` wrapping runpm).
    pub fn program<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .env_remove("RUNPM_FILE")
            .env_remove("RUNPM_STATE_DIR")
            .env_remove("RUNPM_SOCKET")
            .env_remove("RUNPM_PROFILES")
            .env_remove("NOTIFY_SOCKET")
            .env("NO_COLOR", "1");
        cmd
    }

    /// `runpm ARGS…` as PID 1 of a new pid namespace (`unshare --pid --fork --mount-proc
    /// --kill-child`, which needs root), as in a container.
    pub fn as_pid1<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.program(
            "unshare",
            ["--pid", "--fork", "--mount-proc", "--kill-child", RUNPM],
        );
        cmd.args(args);
        cmd
    }

    /// Starts `runpm up -f services.toml EXTRA…`.
    pub fn up(&self, extra: &[&str]) -> Runpm {
        Runpm::start(self.up_command(extra))
    }

    /// The command of [`Project::up`], for a test that sets up more (stdin, signals).
    pub fn up_command(&self, extra: &[&str]) -> Command {
        let file = self.file("services.toml");
        let mut args: Vec<&std::ffi::OsStr> = vec!["up".as_ref(), "-f".as_ref(), file.as_ref()];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        self.command(args)
    }

    /// Runs `runpm ARGS…` to completion (for `validate` and for commands that must fail
    /// before starting anything) and returns its status and output.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Finished {
        let mut runpm = Runpm::start(self.command(args));
        let status = runpm.wait_exit(timeout);
        Finished {
            status,
            stdout: runpm.stdout(),
            stderr: runpm.stderr(),
        }
    }
}

/// The outcome of a command run to completion.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

// ---------------------------------------------------------------------------------------------
// A running runpm
// ---------------------------------------------------------------------------------------------

/// Text read so far from one of runpm's pipes, and whether the pipe is closed.
#[derive(Default)]
struct Captured {
    state: Mutex<(String, bool)>,
    changed: Condvar,
}

impl Captured {
    fn collect(self: Arc<Self>, pipe: impl Read + Send + 'static) -> JoinHandle<()> {
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let mut st = self.state.lock().unwrap();
                        st.0.push_str(&String::from_utf8_lossy(&buf));
                        self.changed.notify_all();
                    }
                }
            }
            self.state.lock().unwrap().1 = true;
            self.changed.notify_all();
        })
    }

    fn text(&self) -> String {
        self.state.lock().unwrap().0.clone()
    }

    /// Waits until `pred` holds for the text; returns what it returned.
    fn wait<T>(&self, timeout: Duration, mut pred: impl FnMut(&str) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap();
        loop {
            if let Some(v) = pred(&st.0) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline || st.1 {
                return None;
            }
            st = self.changed.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap();
        while !st.1 {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            st = self.changed.wait_timeout(st, deadline - now).unwrap().0;
        }
    }
}

/// A `runpm` process (or a wrapper around one, such as `unshare`) with its stdout and stderr
/// captured. Dropping it kills it and every process below it.
pub struct Runpm {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Captured>,
    stderr: Arc<Captured>,
    status: Option<ExitStatus>,
    readers: Vec<JoinHandle<()>>,
}

impl Runpm {
    /// Spawns `cmd` in a new process group with stdout and stderr piped. A stdin configured on
    /// `cmd` is kept (and kept open while the guard lives).
    pub fn start(mut cmd: Command) -> Runpm {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        LIVE.lock().unwrap().push(child.id());
        let stdout = Arc::new(Captured::default());
        let stderr = Arc::new(Captured::default());
        let readers = vec![
            stdout
                .clone()
                .collect(child.stdout.take().expect("piped stdout")),
            stderr
                .clone()
                .collect(child.stderr.take().expect("piped stderr")),
        ];
        let stdin = child.stdin.take();
        Runpm {
            child,
            stdin,
            stdout,
            stderr,
            status: None,
            readers,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Both outputs, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- runpm stdout ---\n{}--- runpm stderr ---\n{}--------------------",
            self.stdout(),
            self.stderr()
        )
    }

    pub fn send_signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig)
            .unwrap_or_else(|e| panic!("send {sig} to runpm {}: {e}", self.pid()));
    }

    /// The exit status, if runpm has exited (it is reaped here, once).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on runpm");
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Asserts that runpm is still running.
    pub fn assert_running(&mut self, context: &str) {
        if let Some(status) = self.try_status() {
            panic!(
                "runpm exited ({status}) but should still run: {context}\n{}",
                self.describe()
            );
        }
    }

    /// Waits for runpm to exit; panics (with its output) if it has not within `timeout`.
    /// After the exit, waits briefly for both pipes to drain so the output is complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        wait_for(timeout, || {
            status = self.try_status();
            status.is_some()
        });
        let Some(status) = status else {
            panic!("runpm did not exit within {timeout:?}\n{}", self.describe());
        };
        self.stdout.wait_closed(secs(2));
        self.stderr.wait_closed(secs(2));
        status
    }

    /// Waits for runpm to exit and asserts its exit code.
    pub fn assert_exit_code(&mut self, timeout: Duration, code: i32) {
        let status = self.wait_exit(timeout);
        assert_eq!(
            status.code(),
            Some(code),
            "runpm's exit status is {status}, expected code {code}\n{}",
            self.describe()
        );
    }

    /// Waits until runpm's stdout contains `needle`.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) {
        if self
            .stdout
            .wait(timeout, |t| t.contains(needle).then_some(()))
            .is_none()
        {
            panic!(
                "runpm's stdout did not show {needle:?} within {timeout:?}\n{}",
                self.describe()
            );
        }
    }

    /// Waits until runpm's stderr contains `needle`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) {
        if self
            .stderr
            .wait(timeout, |t| t.contains(needle).then_some(()))
            .is_none()
        {
            panic!(
                "runpm's stderr did not show {needle:?} within {timeout:?}\n{}",
                self.describe()
            );
        }
    }

    /// The lines of runpm's stderr (its own events) that mention service `name` and contain
    /// `word`, in order.
    pub fn events(&self, name: &str, word: &str) -> Vec<String> {
        event_lines(&self.stderr(), name, word)
    }

    /// Waits for an event line about `name` containing `word` (`started`, `exited`, `failed`,
    /// `stopping`, …) and returns it.
    pub fn wait_for_event(&self, name: &str, word: &str, timeout: Duration) -> String {
        self.wait_for_events(name, word, 1, timeout).remove(0)
    }

    /// Waits until there are at least `n` event lines about `name` containing `word`.
    pub fn wait_for_events(
        &self,
        name: &str,
        word: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        self.stderr
            .wait(timeout, |t| {
                let lines = event_lines(t, name, word);
                (lines.len() >= n).then_some(lines)
            })
            .unwrap_or_else(|| {
                panic!(
                    "runpm's stderr did not show {n} line(s) about service `{name}` with \
                     {word:?} within {timeout:?}\n{}",
                    self.describe()
                )
            })
    }

    /// The host pid of the process that `unshare --fork` started (this guard's child being
    /// `unshare`), once it has exec'd `runpm`.
    pub fn unshared_runpm_pid(&self, timeout: Duration) -> i32 {
        let unshare = self.pid();
        wait_for_some(timeout, || {
            let children = children_from_task(unshare);
            children
                .into_iter()
                .find(|&pid| comm(pid).as_deref() == Some("runpm"))
        })
        .unwrap_or_else(|| {
            panic!(
                "unshare ({unshare}) has no runpm child within {timeout:?}\n{}",
                self.describe()
            )
        })
    }
}

impl Drop for Runpm {
    fn drop(&mut self) {
        let pid = self.pid();
        if self.status.is_none() {
            kill_tree(pid);
            let _ = self.child.wait();
        }
        // Services may outlive a runpm that failed to stop them (that is a test failure
        // reported elsewhere); they must not outlive the test.
        LIVE.lock().unwrap().retain(|&p| p != pid as u32);
        drop(self.stdin.take());
        for r in self.readers.drain(..) {
            // A reader only blocks while some process still holds the pipe open; do not hang
            // the test on it.
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }
}

/// Kills `root` and every process below it, including services in their own process groups
/// and sessions: `root` is stopped first so it cannot start replacements, then every
/// descendant's process group and the descendant itself get SIGKILL, then `root`'s group.
pub fn kill_tree(root: i32) {
    let root_pid = Pid::from_raw(root);
    let _ = kill(root_pid, Signal::SIGSTOP);
    // Repeat: a descendant caught mid-fork may add a child after the scan.
    for _ in 0..3 {
        let tree = descendants(root);
        if tree.is_empty() {
            break;
        }
        for &pid in &tree {
            let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
        }
        for &pid in &tree {
            if let Some(pgid) = stat_field(pid, 5).and_then(|f| f.parse::<i32>().ok())
                && pgid > 1
                && pgid != nix::unistd::getpgrp().as_raw()
            {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let _ = killpg(root_pid, Signal::SIGKILL);
    let _ = kill(root_pid, Signal::SIGKILL);
}

// ---------------------------------------------------------------------------------------------
// Matching runpm's event lines
// ---------------------------------------------------------------------------------------------

/// Whether `line` mentions `name` as a whole word (not as part of a longer name).
pub fn mentions(line: &str, name: &str) -> bool {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    line.match_indices(name).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + name.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// Lines of `text` that mention service `name` and contain `word`.
pub fn event_lines(text: &str, name: &str, word: &str) -> Vec<String> {
    text.lines()
        .filter(|l| mentions(l, name) && l.contains(word))
        .map(str::to_owned)
        .collect()
}

/// Position of the first line of `text` that mentions `name` and contains `word`.
pub fn event_index(text: &str, name: &str, word: &str) -> Option<usize> {
    text.lines()
        .position(|l| mentions(l, name) && l.contains(word))
}

/// The lines of runpm's stdout that come from service `name`, without the prefix.
/// The prefix is the name padded to `width` (the widest service name), then ` | `.
pub fn service_lines(stdout: &str, name: &str, width: usize) -> Vec<String> {
    let prefix = format!("{name:<width$} | ");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Processes, through /proc
// ---------------------------------------------------------------------------------------------

/// Fields of `/proc/PID/stat`, numbered as in proc(5) (1 = pid, 2 = comm, 3 = state, 4 = ppid,
/// 5 = pgrp, 6 = session, 22 = starttime). The comm may contain spaces and parentheses, so
/// the rest is split after the last `)`.
pub fn stat_field(pid: i32, field: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    match field {
        1 => Some(stat[..open].trim().to_string()),
        2 => Some(stat[open + 1..close].to_string()),
        n => stat[close + 1..]
            .split_whitespace()
            .nth(n - 3)
            .map(str::to_owned),
    }
}

/// The one-letter state (`R`, `S`, `Z`, …) of `pid`, or `None` when there is no such process.
pub fn proc_state(pid: i32) -> Option<char> {
    stat_field(pid, 3).and_then(|s| s.chars().next())
}

/// Alive means it exists and is not a zombie (a zombie has ended; it only waits to be reaped).
pub fn is_alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

pub fn is_zombie(pid: i32) -> bool {
    proc_state(pid) == Some('Z')
}

/// Waits until `pid` is dead (gone or a zombie).
pub fn wait_dead(pid: i32, timeout: Duration) -> bool {
    wait_for(timeout, || !is_alive(pid))
}

pub fn ppid(pid: i32) -> Option<i32> {
    stat_field(pid, 4)?.parse().ok()
}

pub fn pgid(pid: i32) -> Option<i32> {
    stat_field(pid, 5)?.parse().ok()
}

pub fn sid(pid: i32) -> Option<i32> {
    stat_field(pid, 6)?.parse().ok()
}

/// Start time in clock ticks since boot: with the pid, a process's identity.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

pub fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Every pid currently in `/proc`.
pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Processes whose parent is `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| ppid(p) == Some(pid))
        .collect()
}

/// Children of `pid` as the kernel lists them for its main thread.
pub fn children_from_task(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Every process below `root` (children, their children, …), excluding `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let pids = all_pids();
    let parents: Vec<(i32, Option<i32>)> = pids.iter().map(|&p| (p, ppid(p))).collect();
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, pp) in &parents {
            if pp == Some(parent) && pid != root && found.insert(pid) {
                frontier.push(pid);
            }
        }
    }
    found.into_iter().collect()
}

/// The pid namespace of `pid`, as the target of `/proc/PID/ns/pid` (`pid:[4026531836]`).
pub fn pid_ns(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Host pids of the processes in pid namespace `ns`.
pub fn pids_in_ns(ns: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| pid_ns(p).as_deref() == Some(ns))
        .collect()
}

/// The pids of `pid` in each nested namespace, outermost first (`NSpid:` in
/// `/proc/PID/status`); the last one is its pid in its own namespace.
pub fn ns_pids(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid`'s environment (as it was when it exec'd) holds `KEY=VALUE` exactly.
pub fn has_env(pid: i32, key: &str, value: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("{key}={value}");
    environ
        .split(|&b| b == 0)
        .any(|entry| entry == wanted.as_bytes())
}

/// Every live process on the machine whose environment holds `KEY=VALUE`: how the tests
/// count the copies of a service, whoever started them and whatever became of their parent.
pub fn processes_with_env(key: &str, value: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| has_env(pid, key, value) && is_alive(pid))
        .collect()
}

/// A process identity that survives pid reuse: (pid, start time).
pub type Identity = (i32, u64);

/// The zombies among `pids`, with their identities.
pub fn zombies(pids: impl IntoIterator<Item = i32>) -> Vec<Identity> {
    pids.into_iter()
        .filter(|&p| is_zombie(p))
        .filter_map(|p| Some((p, start_time(p)?)))
        .collect()
}

/// Whether the process `id` still exists as a zombie.
pub fn still_zombie(id: Identity) -> bool {
    is_zombie(id.0) && start_time(id.0) == Some(id.1)
}

/// Whether the current process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether `program` is found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether to run a test that runs runpm as PID 1 in a new pid namespace: it needs root and
/// util-linux's `unshare` (the rule of [`need`]).
pub fn need_pid1() -> bool {
    need_root("it runs runpm as PID 1 in a new pid namespace (`unshare --pid`)")
        && need_tool("unshare", "util-linux")
}
