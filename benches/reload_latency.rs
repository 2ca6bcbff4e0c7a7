//! Reload latency with 100 quiet services: how long from "the operator acts" to "the
//! changed service's new process runs", and a check that the 99 others keep their pids.
//!
//! ```text
//! cargo bench --bench reload_latency
//! ```
//!
//! Two modes, 20 edits each (each edit changes one service's `shell`, saved the way editors
//! save: a temporary file renamed over `services.toml`):
//!
//! - `runpmctl reload`: from the moment the `runpmctl reload` command is spawned until the
//!   changed service's new process has written its pid file (daemon started `--no-watch`);
//! - watcher: from the rename until the new pid file (the daemon's watcher on; this includes
//!   its debounce).
//!
//! The new process is detected by polling its pid file every 200 µs: this is a benchmark,
//! not a test, and the polling resolution is far below what is measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNPM: &str = env!("CARGO_BIN_EXE_runpm");
const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");
const SERVICES: usize = 100;
const ROUNDS: usize = 20;
const WAIT_LIMIT: Duration = Duration::from_secs(10);

fn name(i: usize) -> String {
    format!("svc{i:03}")
}

/// The config where service `i` runs `sleep 1000000 + gens[i]`: bumping a generation changes
/// that service's `shell` and nothing else.
fn config(gens: &[u32]) -> String {
    let mut out = String::new();
    for (i, g) in gens.iter().enumerate() {
        out.push_str(&format!(
            "[services.{n}]\nshell = 'echo $$ > pids/{n}.pid; exec sleep {s}'\n\n",
            n = name(i),
            s = 1_000_000 + g
        ));
    }
    out
}

fn save_atomically(dir: &Path, text: &str) {
    let tmp = dir.join("services.toml.tmp~");
    std::fs::write(&tmp, text).expect("write the new config");
    std::fs::rename(&tmp, dir.join("services.toml")).expect("rename it over services.toml");
}

fn read_pid(dir: &Path, i: usize) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("pids").join(format!("{}.pid", name(i)))).ok()?;
    // Only a complete line: the shell may be halfway through writing it.
    text.strip_suffix('\n')?.trim().parse().ok()
}

fn all_pids(dir: &Path) -> BTreeMap<usize, i32> {
    (0..SERVICES)
        .map(|i| {
            (
                i,
                read_pid(dir, i).expect("every service has written its pid"),
            )
        })
        .collect()
}

fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s[s.rfind(')')? + 1..].split_whitespace().next()?.to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Waits until service `i` has a live pid other than `old`; returns it and when it was seen.
fn wait_new_pid(dir: &Path, i: usize, old: i32) -> (i32, Instant) {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(pid) = read_pid(dir, i).filter(|&p| p != old) {
            return (pid, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "{} did not restart within {WAIT_LIMIT:?}",
            name(i)
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn ctl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(RUNPMCTL)
        .args(args)
        .current_dir(dir)
        .env_remove("RUNPM_SOCKET")
        .env_remove("RUNPM_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run runpmctl")
}

/// A detached daemon; shut down (or killed) on drop.
struct Daemon {
    dir: PathBuf,
    pid: i32,
}

impl Daemon {
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let out = Command::new(RUNPM)
            .args(["up", "-d", "-f", "services.toml"])
            .args(extra)
            .current_dir(dir)
            .env_remove("RUNPM_STATE_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("run runpm up -d");
        assert!(
            out.status.success(),
            "runpm up -d failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = std::fs::read_to_string(dir.join(".runpm/lock"))
            .expect("the lock file")
            .trim()
            .parse()
            .expect("a pid in the lock file");
        let daemon = Daemon {
            dir: dir.to_owned(),
            pid,
        };
        let deadline = Instant::now() + WAIT_LIMIT;
        while (0..SERVICES).any(|i| read_pid(dir, i).is_none()) {
            assert!(Instant::now() < deadline, "the services did not all start");
            std::thread::sleep(Duration::from_millis(5));
        }
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = ctl(&self.dir, &["shutdown", "--yes"]);
        let deadline = Instant::now() + WAIT_LIMIT;
        while is_alive(self.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if is_alive(self.pid) {
            eprintln!(
                "the daemon (pid {}) did not shut down; killing it",
                self.pid
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Reload,
    Watcher,
}

struct Samples {
    latency: Vec<Duration>,
    /// `runpmctl reload` from spawn to exit (Reload mode only).
    command: Vec<Duration>,
}

fn run(dir: &Path, mode: Mode) -> Samples {
    let mut gens = vec![0u32; SERVICES];
    save_atomically(dir, &config(&gens));
    let extra: &[&str] = match mode {
        Mode::Reload => &["--no-watch"],
        Mode::Watcher => &[],
    };
    let daemon = Daemon::start(dir, extra);
    let mut pids = all_pids(dir);
    let mut samples = Samples {
        latency: Vec::new(),
        command: Vec::new(),
    };
    for round in 0..ROUNDS {
        // Spread the edits over the services, not always the first one.
        let i = (round * 37 + 11) % SERVICES;
        gens[i] += 1;
        let old = pids[&i];
        let started = match mode {
            Mode::Reload => {
                save_atomically(dir, &config(&gens));
                let started = Instant::now();
                let out = ctl(dir, &["reload"]);
                samples.command.push(started.elapsed());
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success()
                        && stdout.contains(&format!("~ {} restarted", name(i)))
                        && stdout.contains(&format!("= {} unchanged", SERVICES - 1)),
                    "unexpected reload result: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                started
            }
            Mode::Watcher => {
                let text = config(&gens);
                let started = Instant::now();
                save_atomically(dir, &text);
                started
            }
        };
        let (new, seen) = wait_new_pid(dir, i, old);
        samples.latency.push(seen - started);
        assert!(
            is_alive(new),
            "{}'s new process {new} is not alive",
            name(i)
        );
        pids.insert(i, new);
        // The other 99 were left alone.
        let now = all_pids(dir);
        for (j, pid) in &now {
            assert_eq!(
                pids[j],
                *pid,
                "round {round}: {} changed pid while {} was edited",
                name(*j),
                name(i)
            );
            assert!(is_alive(*pid), "{} (pid {pid}) is not alive", name(*j));
        }
    }
    // The daemon agrees with the pid files.
    let out = ctl(dir, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    for s in status["services"].as_array().expect("services") {
        let i: usize = s["name"].as_str().unwrap()[3..].parse().unwrap();
        assert_eq!(s["pid"].as_i64(), Some(i64::from(pids[&i])), "{s}");
        assert_eq!(s["status"], "running", "{s}");
    }
    drop(daemon);
    samples
}

fn summary(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<46} median {:7.2} ms   min {:7.2} ms   max {:7.2} ms   (n = {})",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any filter argument is ignored: there is one benchmark.
    let tmp = tempfile::Builder::new()
        .prefix("runpm-bench-")
        .tempdir()
        .expect("a temporary directory");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pids")).unwrap();
    println!("reload latency: {SERVICES} services (`exec sleep`), {ROUNDS} edits per mode");
    println!("  command: cargo bench --bench reload_latency");
    println!("  runpm:   {RUNPM}");
    println!("  project: {}", dir.display());

    let mut reload = run(dir, Mode::Reload);
    std::fs::remove_dir_all(dir.join("pids")).unwrap();
    std::fs::create_dir(dir.join("pids")).unwrap();
    let mut watcher = run(dir, Mode::Watcher);

    summary("runpmctl reload → new process running", &mut reload.latency);
    summary(
        "runpmctl reload (command until it exits)",
        &mut reload.command,
    );
    summary(
        "save (rename) → watcher → new process running",
        &mut watcher.latency,
    );
    println!(
        "  the {} other services kept their pids in every round (both modes)",
        SERVICES - 1
    );
}
