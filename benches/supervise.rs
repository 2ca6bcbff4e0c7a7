//! runpm against the fork/exec floor: the figures of issue 6, measured side by side.
//!
//! ```text
//! cargo bench --bench supervise                 # everything, about 2–3 minutes
//! cargo bench --bench supervise -- n100 idle    # only some parts: n100 n1000 idle reload cgroups
//! ```
//!
//! Two supervisors run the same workload in the same run, in turns:
//!
//! - **the floor** (`benches/support/floor.c`): a minimal C loop that starts N workloads with
//!   `posix_spawn` (own session, empty signal mask, output to /dev/null), restarts an exited
//!   one at once, and on SIGTERM stops them all and reaps them;
//! - **runpm**: the same N workloads as services of `runpm up -d --no-watch`, with
//!   `restart = "always"` and `restart_delay = "0s"`, in a fresh project directory (and so a
//!   fresh state directory) per repetition.
//!
//! The workload (`benches/support/workload.c`, built `-static` when the C library allows) reads
//! CLOCK_MONOTONIC first thing and appends `ID PID NS` to a stamp file, prints one log line and
//! sleeps. Every start time below is a workload's own stamp minus the bench's CLOCK_MONOTONIC
//! reading taken just before it acted (exec of `runpm up -d` or the floor, `kill`, exec of
//! `runpmctl reload`); the bench only polls the stamp file to learn *that* a stamp is there.
//! Exits (stop all) are seen through pidfds in an epoll set, which wake the bench when each
//! workload ends; that time is the bench's clock when the last pidfd became readable.
//!
//! Both helpers are compiled at run time with `cc` (`$CC` if set) into the target directory:
//! nothing is downloaded and nothing ships with runpm.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rustix::event::epoll;

#[path = "support/common.rs"]
mod common;
use common::{compile, median, now_ns, runpm_command};

const RUNPM: &str = env!("CARGO_BIN_EXE_runpm");
const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");
const WORKLOAD_C: &str = include_str!("support/workload.c");
const FLOOR_C: &str = include_str!("support/floor.c");

/// Repetitions per supervisor at N = 100 (start, memory, restart, stop).
const REPS_100: usize = 9;
/// Restarts measured per repetition at N = 100: 20 in all per supervisor.
const RESTARTS_PER_REP: usize = 4;
/// Repetitions per supervisor at N = 1000 (start, memory, stop).
const REPS_1000: usize = 5;
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const RELOADS: usize = 20;
const STATUS_RUNS: usize = 20;
/// Time given after the last start before memory or idleness is measured: runpm coalesces its
/// state writes over up to 200 ms and logs the services' first lines.
const SETTLE: Duration = Duration::from_millis(400);
/// How long any single wait of the bench may take before it counts as hung.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// How often the stamp file is re-read while waiting for a stamp. The figures come from the
/// stamps, so this only decides how soon the bench moves on, not what it measures.
const STAMP_POLL: Duration = Duration::from_millis(2);

// ---------------------------------------------------------------------------------------------
// The helper programs
// ---------------------------------------------------------------------------------------------

struct Helpers {
    workload: PathBuf,
    floor: PathBuf,
    /// "static" or "dynamic": how the helpers were linked.
    linking: &'static str,
}

/// Compiles both C helpers into the target directory; static when the C library allows it.
fn build_helpers() -> Helpers {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("supervise");
    std::fs::create_dir_all(&dir).expect("create the helpers' directory");
    let (workload, static_workload) = compile(&dir, "workload", WORKLOAD_C);
    let (floor, static_floor) = compile(&dir, "floor", FLOOR_C);
    Helpers {
        workload,
        floor,
        linking: if static_workload && static_floor {
            "static"
        } else {
            "dynamic"
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Clock and stamps
// ---------------------------------------------------------------------------------------------

fn ns_to_ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// One start of a workload, as it stamped it.
#[derive(Debug, Clone)]
struct Stamp {
    id: String,
    pid: i32,
    ns: i64,
}

/// Reads a stamp file incrementally: every call takes only what was appended since.
struct StampFile {
    path: PathBuf,
    file: Option<File>,
    partial: Vec<u8>,
    stamps: Vec<Stamp>,
}

impl StampFile {
    fn new(path: PathBuf) -> StampFile {
        StampFile {
            path,
            file: None,
            partial: Vec::new(),
            stamps: Vec::new(),
        }
    }

    fn refresh(&mut self) {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = &mut self.file else { return };
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).expect("read the stamp file");
        self.partial.extend_from_slice(&buf);
        // Only complete lines: a workload's single write(2) may be read half-way.
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let mut fields = line.split_whitespace();
            let (Some(id), Some(pid), Some(ns)) = (fields.next(), fields.next(), fields.next())
            else {
                panic!("a malformed stamp: {line:?}");
            };
            self.stamps.push(Stamp {
                id: id.to_owned(),
                pid: pid.parse().expect("a pid in the stamp"),
                ns: ns.parse().expect("nanoseconds in the stamp"),
            });
        }
    }

    /// Re-reads until `done` holds for the stamps so far; panics after [`WAIT_LIMIT`].
    fn wait(&mut self, what: &str, mut done: impl FnMut(&[Stamp]) -> bool) {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            self.refresh();
            if done(&self.stamps) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT_LIMIT:?} ({} stamps in {})",
                self.stamps.len(),
                self.path.display()
            );
            std::thread::sleep(STAMP_POLL);
        }
    }

    /// The newest start of every workload, by id.
    fn current(&self) -> BTreeMap<String, Stamp> {
        let mut out = BTreeMap::new();
        for s in &self.stamps {
            out.insert(s.id.clone(), s.clone());
        }
        out
    }
}

fn service_id(i: usize) -> String {
    format!("svc{i:04}")
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s[s.rfind(')')? + 1..].split_whitespace().next()?.to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Proportional set size of `pid` in KiB (`/proc/PID/smaps_rollup`).
fn pss_kib(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/smaps_rollup: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("a Pss: line in smaps_rollup")
}

/// What a process did, cumulatively: CPU ticks (utime + stime of all its threads) and context
/// switches summed over its threads (a voluntary switch is a wake-up after sleeping).
#[derive(Debug, Clone, Copy, Default)]
struct Activity {
    ticks: u64,
    voluntary: u64,
    involuntary: u64,
    threads: u64,
}

fn activity(pid: i32) -> Activity {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which may itself hold spaces and parentheses: the state is
    // field 3, utime field 14 and stime field 15.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a command name") + 1..]
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let mut out = Activity {
        ticks,
        ..Activity::default()
    };
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task") {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        out.threads += 1;
        for line in status.lines() {
            let value = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse().ok());
            if line.starts_with("voluntary_ctxt_switches:") {
                out.voluntary += value(line).unwrap_or(0);
            } else if line.starts_with("nonvoluntary_ctxt_switches:") {
                out.involuntary += value(line).unwrap_or(0);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// One supervisor running N workloads
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Floor,
    Runpm,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Runpm => "runpm",
        }
    }
}

/// A supervisor with its N workloads, in its own directory. Dropping it without
/// [`Session::stop`] stops (or kills) the supervisor and every workload it started.
struct Session {
    kind: Kind,
    n: usize,
    dir: PathBuf,
    stamps: StampFile,
    /// The supervisor's pid (the daemon's, for runpm).
    pid: i32,
    /// The floor is the bench's child.
    child: Option<Child>,
    /// Per service: the extra argument the config gives it, changed to make reload see a change.
    generation: Vec<u32>,
    /// From the exec of the supervisor to the last workload's start stamp.
    start_ns: i64,
    /// From the exec of `runpm up -d` until it returned.
    up_command_ns: Option<i64>,
    stopped: bool,
}

impl Session {
    fn start(kind: Kind, n: usize, helpers: &Helpers, dir: PathBuf) -> Session {
        std::fs::create_dir_all(&dir).expect("create the session directory");
        let stamps_path = dir.join("stamps");
        let mut session = Session {
            kind,
            n,
            stamps: StampFile::new(stamps_path.clone()),
            dir,
            pid: 0,
            child: None,
            generation: vec![0; n],
            start_ns: 0,
            up_command_ns: None,
            stopped: false,
        };
        let t0;
        match kind {
            Kind::Floor => {
                let mut cmd = Command::new(&helpers.floor);
                cmd.arg(n.to_string())
                    .arg(&helpers.workload)
                    .arg(&stamps_path)
                    .current_dir(&session.dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null());
                t0 = now_ns();
                let child = cmd.spawn().expect("start the floor");
                session.pid = child.id() as i32;
                session.child = Some(child);
            }
            Kind::Runpm => {
                session.write_config(helpers);
                let mut cmd = runpm_command(RUNPM, &session.dir);
                cmd.args(["up", "-d", "-f", "services.toml", "--no-watch"]);
                t0 = now_ns();
                let out = cmd.output().expect("run runpm up -d");
                session.up_command_ns = Some(now_ns() - t0);
                assert!(
                    out.status.success(),
                    "runpm up -d failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                session.pid = std::fs::read_to_string(session.dir.join(".runpm/lock"))
                    .expect("the lock file")
                    .trim()
                    .parse()
                    .expect("a pid in the lock file");
            }
        }
        let what = format!("{} starting {n} workloads", kind.label());
        session.stamps.wait(&what, |s| s.len() >= n);
        let current = session.stamps.current();
        assert_eq!(current.len(), n, "{what}: every workload started once");
        session.start_ns = current.values().map(|s| s.ns).max().unwrap() - t0;
        session
    }

    /// `services.toml` for the current generations: every service runs the workload with its
    /// id and the stamp file, and is restarted at once whenever it ends.
    fn write_config(&self, helpers: &Helpers) {
        let mut text = String::from("[runpm]\nwatch = false\n\n");
        for (i, generation) in self.generation.iter().enumerate() {
            text.push_str(&format!(
                "[services.{id}]\ncmd = [{w:?}, {id:?}, {s:?}, \"gen{generation}\"]\n\
                 restart = \"always\"\nrestart_delay = \"0s\"\n\n",
                id = service_id(i),
                w = helpers.workload.display().to_string(),
                s = self.stamps.path.display().to_string(),
            ));
        }
        // Saved the way editors save, so that a reader never sees half a file.
        let tmp = self.dir.join("services.toml.tmp~");
        std::fs::write(&tmp, text).expect("write services.toml");
        std::fs::rename(&tmp, self.dir.join("services.toml")).expect("rename services.toml");
    }

    fn ctl(&self, args: &[&str]) -> Output {
        runpm_command(RUNPMCTL, &self.dir)
            .args(args)
            .output()
            .expect("run runpmctl")
    }

    /// SIGKILLs workload `i`; returns the time from the kill to its replacement's stamp.
    fn restart_after_kill(&mut self, i: usize) -> i64 {
        self.stamps.refresh();
        let id = service_id(i);
        let old = self.stamps.current()[&id].pid;
        let seen = self.stamps.stamps.len();
        let t0 = now_ns();
        kill(Pid::from_raw(old), Signal::SIGKILL).expect("SIGKILL a workload");
        let what = format!("{}: {id} replaced after SIGKILL", self.kind.label());
        self.stamps.wait(&what, |s| {
            s[seen..].iter().any(|s| s.id == id && s.pid != old)
        });
        let new = self.stamps.stamps[seen..]
            .iter()
            .find(|s| s.id == id)
            .unwrap();
        new.ns - t0
    }

    /// Stops the supervisor and all its workloads (SIGTERM to the floor, `runpmctl shutdown
    /// --yes` for runpm). Returns the time until the last workload had ended, and until the
    /// supervisor itself had.
    fn stop(&mut self) -> (i64, i64) {
        self.stamps.refresh();
        let workloads: Vec<i32> = self.stamps.current().values().map(|s| s.pid).collect();
        let mut watch = ExitWatch::new();
        for &pid in &workloads {
            watch.add(pid, false);
        }
        watch.add(self.pid, true);
        let t0 = now_ns();
        let mut ctl = None;
        match self.kind {
            Kind::Floor => {
                kill(Pid::from_raw(self.pid), Signal::SIGTERM).expect("SIGTERM the floor")
            }
            Kind::Runpm => {
                ctl = Some(
                    runpm_command(RUNPMCTL, &self.dir)
                        .args(["shutdown", "--yes"])
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("run runpmctl shutdown"),
                );
            }
        }
        let (last_workload, supervisor) = watch.wait(&format!("{} stopping", self.kind.label()));
        if let Some(child) = self.child.take() {
            let out = child.wait_with_output().expect("wait for the floor");
            assert!(out.status.success(), "the floor failed: {:?}", out.status);
        }
        if let Some(ctl) = ctl {
            let out = ctl.wait_with_output().expect("wait for runpmctl shutdown");
            assert!(
                out.status.success(),
                "runpmctl shutdown failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.stopped = true;
        (last_workload - t0, supervisor - t0)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        if self.kind == Kind::Runpm && self.pid > 0 && is_alive(self.pid) {
            let _ = self.ctl(&["--timeout", "10s", "shutdown", "--yes"]);
        }
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
        if self.pid > 0 && is_alive(self.pid) {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
        self.stamps.refresh();
        for s in &self.stamps.stamps {
            if is_alive(s.pid) {
                let _ = kill(Pid::from_raw(s.pid), Signal::SIGKILL);
            }
        }
    }
}

/// Learns when processes end: a pidfd per process in one epoll set. A pidfd becomes readable
/// when its process exits, whoever its parent is, so the bench sleeps until an exit happens.
struct ExitWatch {
    epoll: OwnedFd,
    fds: Vec<OwnedFd>,
    /// Whether each fd is the supervisor's (reported apart from the workloads).
    supervisor: Vec<bool>,
}

impl ExitWatch {
    fn new() -> ExitWatch {
        ExitWatch {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create"),
            fds: Vec::new(),
            supervisor: Vec::new(),
        }
    }

    fn add(&mut self, pid: i32, supervisor: bool) {
        let pid = rustix::process::Pid::from_raw(pid).expect("a positive pid");
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .expect("pidfd_open a running process");
        epoll::add(
            &self.epoll,
            &fd,
            epoll::EventData::new_u64(self.fds.len() as u64),
            epoll::EventFlags::IN,
        )
        .expect("epoll_ctl ADD");
        self.fds.push(fd);
        self.supervisor.push(supervisor);
    }

    /// Waits until every watched process has ended. Returns the clock when the last workload
    /// ended and when the supervisor did.
    fn wait(&mut self, what: &str) -> (i64, i64) {
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut left = self.fds.len();
        let mut done = vec![false; self.fds.len()];
        let (mut last_workload, mut supervisor) = (0, 0);
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        while left > 0 {
            assert!(
                Instant::now() < deadline,
                "{what}: {left} processes still running after {WAIT_LIMIT:?}"
            );
            events.clear();
            let timeout = rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            epoll::wait(
                self.epoll.as_fd(),
                rustix::buffer::spare_capacity(&mut events),
                Some(&timeout),
            )
            .expect("epoll_wait");
            let now = now_ns();
            for event in &events {
                let i = event.data.u64() as usize;
                if done[i] {
                    continue;
                }
                done[i] = true;
                left -= 1;
                epoll::delete(&self.epoll, &self.fds[i]).expect("epoll_ctl DEL");
                if self.supervisor[i] {
                    supervisor = now;
                } else {
                    last_workload = now;
                }
            }
        }
        (last_workload, supervisor)
    }
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

/// Samples of one figure for both supervisors.
#[derive(Default)]
struct Figure {
    floor: Vec<f64>,
    runpm: Vec<f64>,
}

impl Figure {
    fn push(&mut self, kind: Kind, value: f64) {
        match kind {
            Kind::Floor => self.floor.push(value),
            Kind::Runpm => self.runpm.push(value),
        }
    }
}

fn spread(v: &[f64], decimals: usize) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.d$} ({:.d$}–{:.d$})", median(v), min, max, d = decimals)
}

/// The issue's memory budget is in MB (10^6 bytes), the stricter reading; PSS is shown in MiB.
fn megabytes_in_mib(mb: f64) -> f64 {
    mb * 1e6 / (1024.0 * 1024.0)
}

/// How a figure is judged against the issue's budget.
enum Budget {
    /// runpm's median ≤ this many times the floor's median.
    Ratio(f64),
    /// runpm's median ≤ the floor's median plus this much.
    Plus(f64),
    /// runpm's median ≤ this.
    Max(f64),
}

struct Row {
    label: String,
    unit: &'static str,
    decimals: usize,
    figure: Figure,
    budget: Budget,
    budget_text: &'static str,
}

impl Row {
    fn verdict(&self) -> &'static str {
        if self.figure.runpm.is_empty() {
            return "–";
        }
        let runpm = median(&self.figure.runpm);
        let floor = (!self.figure.floor.is_empty()).then(|| median(&self.figure.floor));
        let within = match (&self.budget, floor) {
            (Budget::Ratio(r), Some(f)) => runpm <= r * f,
            (Budget::Plus(p), Some(f)) => runpm <= f + p,
            (Budget::Max(m), _) => runpm <= *m,
            _ => return "–",
        };
        if within { "within" } else { "**over**" }
    }

    fn ratio(&self) -> String {
        if self.figure.floor.is_empty() || self.figure.runpm.is_empty() {
            return "–".into();
        }
        let floor = median(&self.figure.floor);
        if floor == 0.0 {
            return "–".into();
        }
        format!("{:.2}×", median(&self.figure.runpm) / floor)
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| figure | floor: median (min–max) | runpm: median (min–max) | runpm / floor | budget | verdict |"
    );
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} ({}) | {} | {} | {} | {} | {} |",
            row.label,
            row.unit,
            spread(&row.figure.floor, row.decimals),
            spread(&row.figure.runpm, row.decimals),
            row.ratio(),
            row.budget_text,
            row.verdict()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The parts
// ---------------------------------------------------------------------------------------------

/// The figures every part adds to.
#[derive(Default)]
struct Results {
    start_100: Figure,
    start_1000: Figure,
    restart: Figure,
    pss_100: Figure,
    pss_1000: Figure,
    idle_syscalls: Figure,
    idle_ticks: Figure,
    idle_wakeups: Figure,
    reload: Figure,
    stop_100: Figure,
    stop_1000: Figure,
    status_1000: Figure,
    /// Side figures (not in the issue's table), printed below it.
    notes: Vec<String>,
}

/// The order of the two supervisors in repetition `rep`: alternating, so that neither always
/// runs on a machine just warmed (or just disturbed) by the other.
fn turns(rep: usize) -> [Kind; 2] {
    if rep.is_multiple_of(2) {
        [Kind::Floor, Kind::Runpm]
    } else {
        [Kind::Runpm, Kind::Floor]
    }
}

fn part_n100(helpers: &Helpers, root: &Path, results: &mut Results) {
    let mut up_command = Vec::new();
    let mut supervisor_gone = Figure::default();
    for rep in 0..REPS_100 {
        for kind in turns(rep) {
            let dir = root.join(format!("{}-100-{rep}", kind.label()));
            let mut s = Session::start(kind, 100, helpers, dir);
            results.start_100.push(kind, ns_to_ms(s.start_ns));
            if let Some(ns) = s.up_command_ns {
                up_command.push(ns_to_ms(ns));
            }
            std::thread::sleep(SETTLE);
            results.pss_100.push(kind, pss_kib(s.pid) as f64 / 1024.0);
            for k in 0..RESTARTS_PER_REP {
                // A different service each time: runpm counts a quick death as a failed start,
                // and the same one killed 20 times would be a crash loop, not a restart.
                let i = (rep * RESTARTS_PER_REP + k) * 37 % 100;
                results
                    .restart
                    .push(kind, ns_to_ms(s.restart_after_kill(i)));
                // Let the supervisor finish with the replacement (its log line, its state
                // write) so that the next kill meets an idle supervisor.
                std::thread::sleep(Duration::from_millis(50));
            }
            let (workloads, supervisor) = s.stop();
            results.stop_100.push(kind, ns_to_ms(workloads));
            supervisor_gone.push(kind, ns_to_ms(supervisor));
            eprintln!(
                "  n100 rep {rep} {}: start {:.2} ms, stop {:.2} ms",
                kind.label(),
                ns_to_ms(s.start_ns),
                ns_to_ms(workloads)
            );
        }
    }
    results.notes.push(format!(
        "`runpm up -d` until it returned, N = 100: {} ms",
        spread(&up_command, 2)
    ));
    results.notes.push(format!(
        "stop all 100 until the supervisor itself had exited: floor {} ms, runpm {} ms",
        spread(&supervisor_gone.floor, 2),
        spread(&supervisor_gone.runpm, 2)
    ));
}

/// Repetitions of the cgroups part, per mode.
const REPS_CGROUPS: usize = 5;

/// runpm with cgroups on (each service in its own cgroup, stops by `cgroup.kill` and
/// `cgroup.events`) and off (`RUNPM_CGROUPS=0`: process groups), N = 100: start and stop.
/// Only where runpm may create cgroups (root on this machine) are the two different.
fn part_cgroups(helpers: &Helpers, root: &Path, results: &mut Results) {
    let mut figures: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for rep in 0..REPS_CGROUPS {
        for (mode, on) in [(0, true), (1, false)] {
            // SAFETY: the bench is single-threaded here; runpm's sessions inherit it.
            unsafe {
                if on {
                    std::env::remove_var("RUNPM_CGROUPS");
                } else {
                    std::env::set_var("RUNPM_CGROUPS", "0");
                }
            }
            let label = if on { "on" } else { "off" };
            let dir = root.join(format!("cgroups-{label}-{rep}"));
            let mut s = Session::start(Kind::Runpm, 100, helpers, dir);
            std::thread::sleep(SETTLE);
            let (workloads, _) = s.stop();
            figures[mode].0.push(ns_to_ms(s.start_ns));
            figures[mode].1.push(ns_to_ms(workloads));
            eprintln!(
                "  cgroups {label} rep {rep}: start {:.2} ms, stop {:.2} ms",
                ns_to_ms(s.start_ns),
                ns_to_ms(workloads)
            );
        }
    }
    // SAFETY: as above.
    unsafe { std::env::remove_var("RUNPM_CGROUPS") };
    for (mode, label) in [(0, "on"), (1, "off (RUNPM_CGROUPS=0)")] {
        results.notes.push(format!(
            "runpm with cgroups {label}, N = 100: start all {} ms, stop all {} ms",
            spread(&figures[mode].0, 2),
            spread(&figures[mode].1, 2)
        ));
    }
}

fn part_n1000(helpers: &Helpers, root: &Path, results: &mut Results) {
    let mut up_command = Vec::new();
    let mut supervisor_gone = Figure::default();
    for rep in 0..REPS_1000 {
        for kind in turns(rep) {
            let dir = root.join(format!("{}-1000-{rep}", kind.label()));
            let mut s = Session::start(kind, 1000, helpers, dir);
            results.start_1000.push(kind, ns_to_ms(s.start_ns));
            if let Some(ns) = s.up_command_ns {
                up_command.push(ns_to_ms(ns));
            }
            std::thread::sleep(SETTLE);
            results.pss_1000.push(kind, pss_kib(s.pid) as f64 / 1024.0);
            if kind == Kind::Runpm && rep == 0 {
                status_json(&s, results);
            }
            let (workloads, supervisor) = s.stop();
            results.stop_1000.push(kind, ns_to_ms(workloads));
            supervisor_gone.push(kind, ns_to_ms(supervisor));
            eprintln!(
                "  n1000 rep {rep} {}: start {:.2} ms, stop {:.2} ms",
                kind.label(),
                ns_to_ms(s.start_ns),
                ns_to_ms(workloads)
            );
        }
    }
    results.notes.push(format!(
        "`runpm up -d` until it returned, N = 1000: {} ms",
        spread(&up_command, 2)
    ));
    results.notes.push(format!(
        "stop all 1000 until the supervisor itself had exited: floor {} ms, runpm {} ms",
        spread(&supervisor_gone.floor, 2),
        spread(&supervisor_gone.runpm, 2)
    ));
}

/// `runpmctl status --json` with N = 1000, the whole command's wall time.
fn status_json(s: &Session, results: &mut Results) {
    for run in 0..STATUS_RUNS {
        let t0 = Instant::now();
        let out = s.ctl(&["status", "--json"]);
        let took = t0.elapsed();
        assert!(
            out.status.success(),
            "runpmctl status --json failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if run == 0 {
            let status: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("status --json is JSON");
            let services = status["services"].as_array().expect("a services list");
            assert_eq!(services.len(), s.n, "status --json lists every service");
            assert!(
                services.iter().all(|s| s["status"] == "running"),
                "every service runs"
            );
        }
        results
            .status_1000
            .push(Kind::Runpm, took.as_secs_f64() * 1000.0);
    }
}

/// Idle with N = 100 quiet services: both supervisors over the same window, counted from
/// /proc; then both under `strace -c -f` over a second window. Returns runpm's session, which
/// the reload part may go on with.
fn part_idle(helpers: &Helpers, root: &Path, results: &mut Results) -> Session {
    let floor = Session::start(Kind::Floor, 100, helpers, root.join("floor-idle"));
    let runpm = Session::start(Kind::Runpm, 100, helpers, root.join("runpm-idle"));
    std::thread::sleep(Duration::from_secs(1));
    let before = [activity(floor.pid), activity(runpm.pid)];
    std::thread::sleep(IDLE_WINDOW);
    let after = [activity(floor.pid), activity(runpm.pid)];
    for (kind, (b, a)) in [Kind::Floor, Kind::Runpm]
        .into_iter()
        .zip(before.iter().zip(&after))
    {
        results.idle_ticks.push(kind, (a.ticks - b.ticks) as f64);
        results
            .idle_wakeups
            .push(kind, (a.voluntary - b.voluntary) as f64);
        results.notes.push(format!(
            "idle {}: {} thread(s), {} involuntary context switches in {}s",
            kind.label(),
            a.threads,
            a.involuntary - b.involuntary,
            IDLE_WINDOW.as_secs()
        ));
    }
    match strace_counts(&[floor.pid, runpm.pid]).as_deref() {
        Some(&[f, r]) => {
            results.idle_syscalls.push(Kind::Floor, f as f64);
            results.idle_syscalls.push(Kind::Runpm, r as f64);
        }
        _ => results
            .notes
            .push("idle syscalls: strace is not installed (apt-get install strace)".into()),
    }
    drop(floor);
    runpm
}

/// System calls of each of `pids` (all threads) over one [`IDLE_WINDOW`], counted by
/// `strace -c -f -p`, one strace per process. Attaching interrupts a blocking call, which the
/// kernel restarts without strace counting it. None when strace cannot be run (missing).
fn strace_counts(pids: &[i32]) -> Option<Vec<u64>> {
    let mut traces = Vec::new();
    for &pid in pids {
        let out_file = std::env::temp_dir().join(format!("runpm-bench-strace-{pid}"));
        let child = Command::new("strace")
            .args(["-c", "-f", "-o"])
            .arg(&out_file)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        traces.push((child, out_file));
    }
    std::thread::sleep(IDLE_WINDOW);
    let mut counts = Vec::new();
    for (child, out_file) in traces {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
        let out = child.wait_with_output().expect("wait for strace");
        let text = std::fs::read_to_string(&out_file).unwrap_or_default();
        let _ = std::fs::remove_file(&out_file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("attached"),
            "strace could not attach (ptrace not permitted?): {stderr}"
        );
        // The summary ends `100.00 0.000123 12 10 1 total` (calls in the 4th column); with no
        // system call at all strace prints no table.
        counts.push(
            text.lines()
                .find(|l| l.trim_end().ends_with("total"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
                .unwrap_or(0),
        );
    }
    Some(counts)
}

/// Reload with 1 of 100 changed, [`RELOADS`] times: from the exec of `runpmctl reload` to the
/// changed service's new start stamp; the 99 others must keep their pids.
fn part_reload(helpers: &Helpers, root: &Path, session: Option<Session>, results: &mut Results) {
    let mut s = session
        .unwrap_or_else(|| Session::start(Kind::Runpm, 100, helpers, root.join("runpm-reload")));
    let mut command = Vec::new();
    for round in 0..RELOADS {
        let i = (round * 37 + 11) % s.n;
        let id = service_id(i);
        s.stamps.refresh();
        let before = s.stamps.current();
        let seen = s.stamps.stamps.len();
        s.generation[i] += 1;
        s.write_config(helpers);
        let t0 = now_ns();
        let out = s.ctl(&["reload"]);
        command.push(ns_to_ms(now_ns() - t0));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && stdout.contains(&format!("~ {id} restarted"))
                && stdout.contains(&format!("= {} unchanged", s.n - 1)),
            "unexpected reload result: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.stamps.wait(&format!("reload restarting {id}"), |st| {
            st[seen..].iter().any(|x| x.id == id)
        });
        let new = s.stamps.stamps[seen..].iter().find(|x| x.id == id).unwrap();
        results.reload.push(Kind::Runpm, ns_to_ms(new.ns - t0));
        let after = s.stamps.current();
        for (other, stamp) in &before {
            if *other != id {
                assert_eq!(
                    after[other].pid, stamp.pid,
                    "{other} changed pid while {id} was reloaded"
                );
                assert!(is_alive(stamp.pid), "{other} (pid {}) died", stamp.pid);
            }
        }
    }
    results.notes.push(format!(
        "`runpmctl reload` (1 of 100 changed) until the command returned: {} ms; the 99 others kept their pids every time",
        spread(&command, 2)
    ));
    s.stop();
}

// ---------------------------------------------------------------------------------------------

fn machine() -> Vec<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into());
    vec![
        format!("date:    {date}"),
        format!(
            "load:    {} (1, 5, 15 min averages at the start)",
            load_average()
        ),
        format!("machine: {nproc} CPUs ({cpu}), Linux {kernel}"),
        "command: cargo bench --bench supervise".into(),
    ]
}

/// `/proc/loadavg`'s three averages: the machine may be shared, and a busy one spreads the
/// figures (the floor's too).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments choose parts (all when none is given).
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |part: &str| chosen.is_empty() || chosen.iter().any(|c| c == part);

    let started = Instant::now();
    let helpers = build_helpers();
    let tmp = tempfile::Builder::new()
        .prefix("runpm-bench-")
        .tempdir()
        .expect("a temporary directory");
    let root = tmp.path();
    for line in machine() {
        println!("{line}");
    }
    println!(
        "helpers: {} and {} ({} linking)",
        helpers.workload.display(),
        helpers.floor.display(),
        helpers.linking
    );
    println!("runpm:   {RUNPM}");
    println!(
        "floor:   posix_spawn loop in C (own session, empty signal mask, output to /dev/null); \
         restarts on SIGCHLD at once; on SIGTERM signals all and reaps them"
    );
    println!();

    let mut results = Results::default();
    if want("n100") {
        eprintln!("N = 100: start, memory, restart, stop ({REPS_100} repetitions each)");
        part_n100(&helpers, root, &mut results);
    }
    if want("n1000") {
        eprintln!("N = 1000: start, memory, stop, status --json ({REPS_1000} repetitions each)");
        part_n1000(&helpers, root, &mut results);
    }
    if want("cgroups") {
        eprintln!("cgroups: runpm with cgroups on and off, N = 100 ({REPS_CGROUPS} repetitions)");
        part_cgroups(&helpers, root, &mut results);
    }
    let mut idle_session = None;
    if want("idle") {
        eprintln!(
            "idle: N = 100, {}s from /proc, then {}s under strace",
            IDLE_WINDOW.as_secs(),
            IDLE_WINDOW.as_secs()
        );
        idle_session = Some(part_idle(&helpers, root, &mut results));
    }
    if want("reload") {
        eprintln!("reload: 1 of 100 changed, {RELOADS} times");
        part_reload(&helpers, root, idle_session.take(), &mut results);
    }
    drop(idle_session);

    let rows = vec![
        Row {
            label: "start all 100".into(),
            unit: "ms",
            decimals: 2,
            figure: results.start_100,
            budget: Budget::Ratio(1.5),
            budget_text: "≤ 1.5× floor",
        },
        Row {
            label: "start all 1000".into(),
            unit: "ms",
            decimals: 1,
            figure: results.start_1000,
            budget: Budget::Ratio(1.5),
            budget_text: "≤ 1.5× floor",
        },
        Row {
            label: "restart after SIGKILL, N = 100".into(),
            unit: "ms",
            decimals: 3,
            figure: results.restart,
            budget: Budget::Plus(1.0),
            budget_text: "≤ floor + 1 ms",
        },
        Row {
            label: "supervisor PSS, N = 100".into(),
            unit: "MiB",
            decimals: 2,
            figure: results.pss_100,
            budget: Budget::Max(megabytes_in_mib(3.0)),
            budget_text: "≤ 3 MB",
        },
        Row {
            label: "supervisor PSS, N = 1000".into(),
            unit: "MiB",
            decimals: 2,
            figure: results.pss_1000,
            budget: Budget::Max(megabytes_in_mib(16.0)),
            budget_text: "≤ 16 MB",
        },
        Row {
            label: format!(
                "idle {} s, N = 100: syscalls, strace -c -f",
                IDLE_WINDOW.as_secs()
            ),
            unit: "calls",
            decimals: 0,
            figure: results.idle_syscalls,
            budget: Budget::Max(0.0),
            budget_text: "0",
        },
        Row {
            label: format!("idle {} s, N = 100: CPU ticks", IDLE_WINDOW.as_secs()),
            unit: "ticks",
            decimals: 0,
            figure: results.idle_ticks,
            budget: Budget::Max(0.0),
            budget_text: "0",
        },
        Row {
            label: format!(
                "idle {} s, N = 100: wake-ups (voluntary context switches)",
                IDLE_WINDOW.as_secs()
            ),
            unit: "switches",
            decimals: 0,
            figure: results.idle_wakeups,
            budget: Budget::Max(0.0),
            budget_text: "0",
        },
        Row {
            label: "reload 1 of 100: `runpmctl reload` → new process".into(),
            unit: "ms",
            decimals: 2,
            figure: results.reload,
            budget: Budget::Max(10.0),
            budget_text: "≤ 10 ms",
        },
        Row {
            label: "stop all 100".into(),
            unit: "ms",
            decimals: 2,
            figure: results.stop_100,
            budget: Budget::Ratio(2.0),
            budget_text: "≤ 2× floor",
        },
        Row {
            label: "stop all 1000".into(),
            unit: "ms",
            decimals: 1,
            figure: results.stop_1000,
            budget: Budget::Ratio(2.0),
            budget_text: "≤ 2× floor",
        },
        Row {
            label: "`runpmctl status --json`, N = 1000".into(),
            unit: "ms",
            decimals: 2,
            figure: results.status_1000,
            budget: Budget::Max(20.0),
            budget_text: "≤ 20 ms",
        },
    ];
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| !r.figure.runpm.is_empty() || !r.figure.floor.is_empty())
        .collect();
    print_table(&rows);
    println!();
    for note in &results.notes {
        println!("- {note}");
    }
    println!(
        "- the whole run took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    std::io::stdout().flush().ok();
}
