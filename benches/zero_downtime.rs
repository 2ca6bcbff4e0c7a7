//! Zero downtime (issue 14): what clients see while a service restarts, reloads or is killed,
//! with runpm owning the socket (`listen`) and without (the server binds it itself); and
//! what `runpmctl reexec` costs with 100 services.
//!
//! ```text
//! cargo bench --bench zero_downtime
//! ```
//!
//! Part 1, on 127.0.0.1 only: a small Python HTTP server (the same program in both modes:
//! it takes descriptor 3 from `LISTEN_FDS`, or binds the port itself) that answers the
//! request in flight before it exits on SIGTERM, and is ready (`ready.log`) once it serves. A load client sends about 300 requests a
//! second (one connection each) while the bench does, 5 times each: `runpmctl restart web`;
//! a reload that changes web's environment; `kill -9` of web (waiting each time until web
//! runs again). It counts answered requests, refused connections (ECONNREFUSED), and other
//! failures (a connection reset or closed without an answer: with `kill -9`, the request in
//! flight dies with the process, counted apart).
//!
//! Part 2: 100 services each printing a numbered line every 20 ms; 10 × `runpmctl reexec`.
//! Reported: services restarted (pids that changed, restart counters), lines lost or doubled
//! (gaps in each service's numbering in its log file), and how long `runpmctl reexec` takes
//! (pre-flight check, exec, until the new image answers on the control socket) and a
//! `runpmctl status` right after it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

// Only the command and median helpers are used here.
#[allow(dead_code)]
#[path = "support/common.rs"]
mod common;

const RUNPM: &str = env!("CARGO_BIN_EXE_runpm");
const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");

const SERVER: &str = r#"
import signal
# First of all: a SIGTERM during start-up must not kill the server mid-request later.
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
import os, select, socket, sys
if os.environ.get("LISTEN_FDS"):
    assert os.environ["LISTEN_PID"] == str(os.getpid())
    http = socket.socket(fileno=3)
else:
    http = socket.socket()
    http.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    http.bind(("127.0.0.1", int(sys.argv[1])))
    http.listen(128)
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
print("serving", flush=True)
while True:
    ready, _, _ = select.select([http, wake_r], [], [])
    if wake_r in ready or stopping:
        os._exit(0)
    conn, _ = http.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n%d\n" % os.getpid())
    conn.close()
"#;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn take(&self) -> (u64, u64, u64) {
        (
            self.ok.swap(0, Ordering::Relaxed),
            self.refused.swap(0, Ordering::Relaxed),
            self.failed.swap(0, Ordering::Relaxed),
        )
    }
}

fn request(port: u16, counts: &Counts) {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut text = String::new();
    let answered = stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
        && stream.read_to_string(&mut text).is_ok()
        && text.starts_with("HTTP/1.0 200");
    let counter = if answered { &counts.ok } else { &counts.failed };
    counter.fetch_add(1, Ordering::Relaxed);
}

fn ctl(dir: &Path, args: &[&str]) -> String {
    let out = common::runpm_command(RUNPMCTL, dir)
        .args(["-f", "services.toml"])
        .args(args)
        .output()
        .expect("runpmctl");
    assert!(out.status.success(), "runpmctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ctl(dir, &["status", "--json"])).expect("status json")
}

fn pid_of(dir: &Path, name: &str) -> Option<i64> {
    status(dir)["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name && s["status"] == "running")?["pid"]
        .as_i64()
}

fn wait_new_pid(dir: &Path, old: Option<i64>) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = pid_of(dir, "web")
            && Some(pid) != old
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "web never ran again");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn config(port: u16, listen: bool, generation: u32) -> String {
    let listen = if listen {
        format!("listen = [\"tcp:127.0.0.1:{port}\"]\n")
    } else {
        String::new()
    };
    format!(
        "[services.web]\ncmd = [\"python3\", \"server.py\", \"{port}\"]\n{listen}\
         ready = {{ log = \"serving\" }}\n\
         restart = \"always\"\nrestart_delay = \"100ms\"\nmin_uptime = \"0s\"\n\
         env = {{ GENERATION = \"{generation}\" }}\n"
    )
}

fn part1(listen: bool) -> Vec<(&'static str, (u64, u64, u64))> {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port");
    std::fs::write(dir.join("server.py"), SERVER).expect("server");
    std::fs::write(dir.join("services.toml"), config(port, listen, 0)).expect("config");
    let up = common::runpm_command(RUNPM, dir)
        .args(["up", "-f", "services.toml", "-d", "--no-watch"])
        .output()
        .expect("runpm up");
    assert!(up.status.success(), "{up:?}");
    let mut pid = wait_new_pid(dir, None);
    // The bind mode's server may answer a moment after it counts as running.
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (counts, stop) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            // About 300 requests a second.
            let interval = Duration::from_micros(3333);
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                request(port, &counts);
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };
    let settle = || std::thread::sleep(Duration::from_millis(300));
    let mut rows = Vec::new();
    settle();
    counts.take();
    for _ in 0..5 {
        ctl(dir, &["restart", "web"]);
        pid = wait_new_pid(dir, Some(pid));
        settle();
    }
    rows.push(("restart web (5x)", counts.take()));
    for generation in 1..=5 {
        std::fs::write(dir.join("services.toml"), config(port, listen, generation))
            .expect("config");
        ctl(dir, &["reload"]);
        pid = wait_new_pid(dir, Some(pid));
        settle();
    }
    rows.push(("env-changing reload (5x)", counts.take()));
    for _ in 0..5 {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        pid = wait_new_pid(dir, Some(pid));
        settle();
    }
    rows.push(("kill -9 web (5x)", counts.take()));
    stop.store(true, Ordering::Relaxed);
    let _ = client.join();
    ctl(dir, &["shutdown", "--yes"]);
    rows
}

fn part2() {
    const SERVICES: usize = 100;
    const ROUNDS: usize = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut text = String::new();
    for i in 0..SERVICES {
        text.push_str(&format!(
            "[services.s{i:03}]\nshell = 'i=0; while :; do i=$((i+1)); echo \"n $i\"; sleep 0.02; done'\n"
        ));
    }
    std::fs::write(dir.join("services.toml"), text).expect("config");
    let up = common::runpm_command(RUNPM, dir)
        .args(["up", "-f", "services.toml", "-d", "--no-watch"])
        .output()
        .expect("runpm up");
    assert!(up.status.success(), "{up:?}");
    let before = status(dir);
    std::thread::sleep(Duration::from_millis(500));
    // What a `status` costs with this load and no re-exec, to read the figures below by.
    let baseline: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            status(dir);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let (mut reexec_ms, mut status_ms) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        ctl(dir, &["reexec"]);
        reexec_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        status(dir);
        status_ms.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = status(dir);
    let key = |v: &serde_json::Value| -> Vec<(String, i64, i64)> {
        v["services"]
            .as_array()
            .expect("services")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("").to_owned(),
                    s["pid"].as_i64().unwrap_or(-1),
                    s["restarts"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    let restarted = key(&before)
        .iter()
        .zip(key(&after))
        .filter(|(a, b)| **a != *b)
        .count();
    ctl(dir, &["shutdown", "--yes"]);
    let (mut lost, mut lines) = (0u64, 0u64);
    for i in 0..SERVICES {
        let log = std::fs::read_to_string(dir.join(format!(".runpm/logs/s{i:03}.log")))
            .unwrap_or_default();
        let numbers: Vec<u64> = log
            .lines()
            .filter_map(|l| l.rsplit("n ").next()?.trim().parse().ok())
            .collect();
        lines += numbers.len() as u64;
        for w in numbers.windows(2) {
            if w[1] != w[0] + 1 {
                lost += w[1].abs_diff(w[0] + 1) + u64::from(w[1] <= w[0]);
            }
        }
    }
    println!("\nrunpmctl reexec with {SERVICES} services ({ROUNDS} rounds)");
    println!("  services restarted or with a new pid: {restarted}");
    println!("  output lines lost or doubled:          {lost} (of {lines} lines)");
    println!(
        "  runpmctl reexec, until the new image answers: median {:.1} ms (max {:.1} ms)",
        common::median(&reexec_ms),
        reexec_ms.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "  runpmctl status right after:                 median {:.1} ms (max {:.1} ms)",
        common::median(&status_ms),
        status_ms.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "  runpmctl status with no re-exec (baseline):  median {:.1} ms",
        common::median(&baseline)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter.
    println!("load: ~300 requests/s on 127.0.0.1, one connection each");
    println!(
        "{:<26} {:>22} {:>22}",
        "", "with listen", "server binds itself"
    );
    println!(
        "{:<26} {:>22} {:>22}",
        "", "ok/refused/failed", "ok/refused/failed"
    );
    let with = part1(true);
    let without = part1(false);
    for ((what, a), (_, b)) in with.iter().zip(&without) {
        println!(
            "{what:<26} {:>22} {:>22}",
            format!("{}/{}/{}", a.0, a.1, a.2),
            format!("{}/{}/{}", b.0, b.1, b.2)
        );
    }
    println!("(failed: reset or closed without an answer; after kill -9, the request in flight)");
    part2();
}
