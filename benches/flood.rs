//! Supervision beside a flood (issue 11): does a service that prints as fast as it can slow
//! down runpm's work for the others?
//!
//! ```text
//! cargo bench --bench flood          # about a minute
//! ```
//!
//! Two projects run in turns in the same run, each under a fresh `runpm up -d --no-watch`:
//!
//! - **quiet**: a `crashy` service and a neighbour that sleeps;
//! - **flood**: the same `crashy` and a neighbour running `yes` (millions of 2-byte lines
//!   per second; runpm reads it at its own pace, so it floods for as long as it runs).
//!
//! `crashy` is `benches/support/workload.c` with `restart = "always"`, `restart_delay = "0s"`:
//! it stamps CLOCK_MONOTONIC into a file first thing after exec. Figures per project:
//!
//! - **restart**: from the bench's clock just before it SIGKILLs `crashy` to the stamp of the
//!   process runpm started in its place (kill → reap → decide → spawn → exec);
//! - **status**: the wall time of `runpmctl status --json` (a client process, a connection,
//!   the daemon's answer);
//! - **shutdown**: from `kill -TERM` of the daemon to the daemon's exit, seen through a
//!   pidfd (both services stopped, the flood's remaining output read).
//!
//! The machine has few cores, and `yes` and runpm's reading of it take most of two: the
//! flood figures include that contention, which is what a user of such a machine sees.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[path = "support/common.rs"]
mod common;
use common::{median, now_ns, runpm_command as command};

const RUNPM: &str = env!("CARGO_BIN_EXE_runpm");
const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");
const WORKLOAD_C: &str = include_str!("support/workload.c");

/// Daemons per project; each measures the restarts and status calls below.
const REPS: usize = 5;
const RESTARTS_PER_REP: usize = 6;
const STATUS_PER_REP: usize = 6;
/// How long any single wait of the bench may take before it counts as hung.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// How often a file is re-read while waiting for it to change; this decides how soon the
/// bench moves on, not what it measures (the figures come from stamps and pidfds).
const POLL: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Neighbour {
    Quiet,
    Flood,
}

impl Neighbour {
    fn name(self) -> &'static str {
        match self {
            Neighbour::Quiet => "quiet",
            Neighbour::Flood => "flood",
        }
    }

    fn shell(self) -> &'static str {
        match self {
            Neighbour::Quiet => "exec sleep 100000",
            Neighbour::Flood => "exec yes",
        }
    }
}

#[derive(Default)]
struct Figures {
    restart_ms: Vec<f64>,
    status_ms: Vec<f64>,
    shutdown_ms: Vec<f64>,
}

fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run a runpm binary");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The stamps `crashy` wrote: (pid, CLOCK_MONOTONIC ns) per start.
fn stamps(path: &Path) -> Vec<(i32, i64)> {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

/// One daemon with `crashy` and `neighbour`: measures, then shuts it down.
/// Compiles the workload into the target directory.
fn build_workload() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flood");
    std::fs::create_dir_all(&dir).expect("create the helper's directory");
    common::compile(&dir, "workload", WORKLOAD_C).0
}

fn one_daemon(workload: &Path, root: &Path, rep: usize, neighbour: Neighbour, f: &mut Figures) {
    let dir = root.join(format!("{}-{rep}", neighbour.name()));
    std::fs::create_dir_all(&dir).expect("create the project");
    let stamp_file = dir.join("stamps");
    std::fs::write(
        dir.join("services.toml"),
        format!(
            "[services.crashy]\ncmd = [{:?}, \"crashy\", {:?}]\nrestart = \"always\"\n\
             restart_delay = \"0s\"\nmax_restarts = 1000000\n\n\
             [services.neighbour]\nshell = {:?}\n",
            workload.display().to_string(),
            stamp_file.display().to_string(),
            neighbour.shell()
        ),
    )
    .expect("write services.toml");
    run({
        let mut cmd = command(RUNPM, &dir);
        cmd.args(["up", "-d", "--no-watch", "-f", "services.toml"]);
        cmd
    });
    let daemon: i32 = std::fs::read_to_string(dir.join(".runpm/lock"))
        .expect("the lock file")
        .trim()
        .parse()
        .expect("a pid in the lock file");
    if neighbour == Neighbour::Flood {
        // Flooding for real: a megabyte of `y` lines logged already.
        let log = dir.join(".runpm/logs/neighbour.log");
        wait_until("the flood", || {
            (std::fs::metadata(&log).map_or(0, |m| m.len()) > 1_000_000).then_some(())
        });
    }
    wait_until("crashy's first start", || {
        stamps(&stamp_file).last().copied()
    });

    for _ in 0..RESTARTS_PER_REP {
        let before = stamps(&stamp_file);
        let (pid, _) = *before.last().expect("a stamp");
        let t0 = now_ns();
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill crashy");
        let (_, started) = wait_until("crashy's restart", || {
            stamps(&stamp_file).get(before.len()).copied()
        });
        f.restart_ms.push((started - t0) as f64 / 1e6);
    }
    for _ in 0..STATUS_PER_REP {
        let t0 = Instant::now();
        run({
            let mut cmd = command(RUNPMCTL, &dir);
            cmd.args(["-f", "services.toml", "status", "--json"]);
            cmd
        });
        f.status_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }

    let pidfd: OwnedFd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(daemon).expect("a pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd_open of the daemon");
    let t0 = Instant::now();
    kill(Pid::from_raw(daemon), Signal::SIGTERM).expect("SIGTERM the daemon");
    let pidfd = pidfd.as_fd();
    let mut fds = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::time::Timespec {
        tv_sec: WAIT_LIMIT.as_secs() as i64,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut fds, Some(&timeout)).expect("poll the pidfd");
    assert_eq!(ready, 1, "the daemon did not exit within {WAIT_LIMIT:?}");
    f.shutdown_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    let _ = std::fs::remove_dir_all(&dir);
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let workload = build_workload();
    let root = tempfile::Builder::new()
        .prefix("runpm-flood-bench-")
        .tempdir()
        .expect("a temporary directory");
    let mut quiet = Figures::default();
    let mut flood = Figures::default();
    for rep in 0..REPS {
        // In turns, each going first every other time, so a drift of the machine's load
        // weighs on both.
        let order = if rep % 2 == 0 {
            [Neighbour::Quiet, Neighbour::Flood]
        } else {
            [Neighbour::Flood, Neighbour::Quiet]
        };
        for neighbour in order {
            let figures = match neighbour {
                Neighbour::Quiet => &mut quiet,
                Neighbour::Flood => &mut flood,
            };
            one_daemon(&workload, root.path(), rep, neighbour, figures);
        }
    }
    println!(
        "runpm beside a flood: {REPS} daemons per project, {} restarts and {} status calls each",
        RESTARTS_PER_REP, STATUS_PER_REP
    );
    println!(
        "{:<22} {:>14} {:>14} {:>14} {:>14}",
        "", "quiet median", "quiet max", "flood median", "flood max"
    );
    for (what, q, f) in [
        ("restart latency (ms)", &quiet.restart_ms, &flood.restart_ms),
        ("status --json (ms)", &quiet.status_ms, &flood.status_ms),
        ("shutdown (ms)", &quiet.shutdown_ms, &flood.shutdown_ms),
    ] {
        println!(
            "{what:<22} {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
            median(q),
            max(q),
            median(f),
            max(f)
        );
    }
}
