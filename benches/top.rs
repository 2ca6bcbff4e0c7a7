//! What an attached `runpmctl top` costs the daemon (issue 16), and that nobody watching
//! costs nothing.
//!
//! ```text
//! cargo bench --bench top            # about 40 s; needs tmux (apt-get install tmux)
//! ```
//!
//! One daemon (`runpm up -d --no-watch`) runs 10 services that sleep. Three windows of
//! [`WINDOW`] each are measured from `/proc` of the daemon: its wake-ups (voluntary +
//! involuntary context switches, summed over its threads) and its CPU time (utime + stime):
//!
//! 1. **nobody attached**: must stay at 0 wake-ups (no timer runs while nobody watches);
//! 2. **top attached**: `runpmctl top` in an 80×24 tmux window, which reads the status once
//!    a second and holds an `events` subscription; its own CPU is shown too;
//! 3. **after top quit**: back to 0, so nothing `top` started outlives it in the daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// Only the clean command is used here; the other helpers serve the other benches.
#[allow(dead_code)]
#[path = "support/common.rs"]
mod common;
use common::runpm_command as command;

const RUNPM: &str = env!("CARGO_BIN_EXE_runpm");
const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");

const SERVICES: usize = 10;
/// Each measured window.
const WINDOW: Duration = Duration::from_secs(10);
/// How long any single wait may take before the bench counts it as hung.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Cumulative activity of a process: CPU ticks and context switches over its threads.
#[derive(Debug, Clone, Copy, Default)]
struct Activity {
    ticks: u64,
    switches: u64,
}

fn activity(pid: i32) -> Activity {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // After the command name (which may hold spaces and parentheses): utime and stime are
    // fields 14 and 15, the 12th and 13th after the `)`.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a command name") + 1..]
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task") {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
            {
                switches += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Activity { ticks, switches }
}

/// Wake-ups per second and CPU (ms per second) of `pids` over [`WINDOW`].
fn measure(pids: &[i32]) -> Vec<(f64, f64)> {
    let tick_ms = 1000.0
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
    let before: Vec<Activity> = pids.iter().map(|&p| activity(p)).collect();
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let after: Vec<Activity> = pids.iter().map(|&p| activity(p)).collect();
    let secs = start.elapsed().as_secs_f64();
    before
        .iter()
        .zip(&after)
        .map(|(b, a)| {
            (
                (a.switches - b.switches) as f64 / secs,
                (a.ticks - b.ticks) as f64 * tick_ms / secs,
            )
        })
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .stdin(Stdio::null())
            .env_remove("TMUX")
            .output()
            .expect("run tmux (apt-get install tmux)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

fn running(dir: &Path) -> usize {
    let out = command(RUNPMCTL, dir)
        .args(["status", "--json"])
        .output()
        .expect("run runpmctl status");
    let text = String::from_utf8_lossy(&out.stdout);
    text.matches("\"status\": \"running\"").count()
}

fn main() {
    // `cargo bench` passes `--bench`; any other word is a filter this bench does not have.
    let root = tempfile::Builder::new()
        .prefix("runpm-bench-top-")
        .tempdir()
        .expect("a temporary directory");
    let dir = root.path();
    let mut config = String::new();
    for i in 0..SERVICES {
        config.push_str(&format!(
            "[services.svc{i:02}]\ncmd = [\"sleep\", \"100000\"]\n\n"
        ));
    }
    std::fs::write(dir.join("services.toml"), config).expect("write the config");
    let up = command(RUNPM, dir)
        .args(["up", "-f", "services.toml", "-d", "--no-watch"])
        .stdout(Stdio::null())
        .status()
        .expect("run runpm up -d");
    assert!(up.success(), "runpm up -d failed");
    let daemon: i32 = std::fs::read_to_string(dir.join(".runpm/lock"))
        .expect("read the lock")
        .trim()
        .parse()
        .expect("a pid in the lock");
    wait_for("every service running", || running(dir) == SERVICES);

    println!(
        "runpm daemon, {SERVICES} sleeping services, {}s per window (from /proc of the daemon)",
        WINDOW.as_secs()
    );
    let idle = measure(&[daemon])[0];
    print_line("nobody attached", idle, None);

    let tmux = Tmux {
        socket: dir.join("tmux.sock"),
    };
    let top = format!("{RUNPMCTL} -f {}/services.toml top", dir.display());
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        "24",
        "-c",
        &dir.display().to_string(),
        &top,
    ]);
    let top_pid: i32 = tmux
        .run(&["display", "-p", "-t", "top", "#{pane_pid}"])
        .trim()
        .parse()
        .expect("the pane's pid");
    wait_for("top's table", || {
        tmux.run(&["capture-pane", "-p", "-t", "top"])
            .contains("svc09")
    });
    let attached = measure(&[daemon, top_pid]);
    print_line("one top attached", attached[0], Some(attached[1]));

    tmux.run(&["send-keys", "-t", "top", "q"]);
    wait_for("top to quit", || {
        !Path::new(&format!("/proc/{top_pid}")).exists()
    });
    drop(tmux);
    let after = measure(&[daemon])[0];
    print_line("after top quit", after, None);

    let _ = command(RUNPMCTL, dir)
        .args(["shutdown", "--yes"])
        .stdout(Stdio::null())
        .status();
}

fn print_line(what: &str, (wakeups, cpu): (f64, f64), top: Option<(f64, f64)>) {
    let mut line = format!(
        "  {what:<18} daemon: {wakeups:6.1} wake-ups/s, CPU {cpu:5.2} ms/s ({:.3} %)",
        cpu / 10.0
    );
    if let Some((top_wakeups, top_cpu)) = top {
        line.push_str(&format!(
            "; top itself: {top_wakeups:.1} wake-ups/s, CPU {top_cpu:.2} ms/s"
        ));
    }
    println!("{line}");
}
