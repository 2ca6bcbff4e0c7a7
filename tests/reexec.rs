//! `runpmctl reexec` and SIGUSR2 (issue 14): runpm re-executes the binary at the path it was
//! started from and keeps every service — same pids, statuses and counters, no output line
//! lost — or, when that binary cannot take over, says why and goes on as it was.
//!
//! The tests that replace the binary run a copy of runpm from the project directory, so
//! that they can break or upgrade it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// A counter printing one numbered line every 5 ms; a service that crashes twice before it
/// stays up (so it has restarts to keep); one the operator stopped.
const CONFIG: &str = r#"
[services.counter]
shell = 'i=0; while :; do i=$((i+1)); echo "n $i"; sleep 0.005; done'

[services.flaky]
shell = 'n=$(cat runs 2>/dev/null || echo 0); echo $((n+1)) > runs; [ "$n" -ge 2 ] && exec sleep 1000; exit 1'
restart_delay = "10ms"
min_uptime = "0s"

[services.idle]
cmd = ["sleep", "1000"]
"#;

/// What must not change across a re-exec, per service.
fn kept(p: &Project) -> Vec<(String, String, Option<i64>, i64, usize)> {
    p.status_json()["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s: &Value| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                s["pid"].as_i64(),
                s["restarts"].as_i64().unwrap(),
                s["exits"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

fn settled(p: &Project) {
    p.running_pid("counter", secs(10));
    p.running_pid("flaky", secs(10));
    assert!(wait_for(secs(10), || p.services()["flaky"]["restarts"] == 2));
    p.ctl_ok(&["stop", "idle"]);
}

/// The numbers the counter printed, as its log file has them.
fn numbers(p: &Project) -> Vec<u64> {
    p.log_file("counter")
        .iter()
        .filter_map(|l| l.rsplit("n ").next()?.trim().parse().ok())
        .collect()
}

fn assert_no_gap(p: &Project, after: u64) {
    // The line written after the last re-exec arrives too.
    assert!(
        wait_for(secs(10), || numbers(p)
            .last()
            .is_some_and(|&n| n > after + 20)),
        "the counter's lines stopped at {:?}",
        numbers(p).last()
    );
    let seen = numbers(p);
    let gaps: Vec<(u64, u64)> = seen
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    assert_eq!(gaps, [], "every line arrives once, in order");
}

#[test]
fn reexec_keeps_every_pid_status_and_counter_and_loses_no_line() {
    let p = Project::new(secs(60));
    p.config(CONFIG);
    let d = p.up_detached(&[]);
    settled(&p);
    let before = kept(&p);
    let daemon = d.pid();
    for _ in 0..3 {
        let out = p.ctl_ok(&["reexec"]);
        assert!(out.contains("re-executed"), "{out}");
        assert!(out.contains(&format!("pid {daemon}")), "{out}");
    }
    assert_eq!(
        kept(&p),
        before,
        "pids, statuses, restarts and exits are kept"
    );
    assert!(d.is_alive());
    let last = *numbers(&p).last().unwrap();
    assert_no_gap(&p, last);
    // The re-executed daemon still supervises: a restart and a stop work.
    let old = p.running_pid("counter", secs(5));
    p.ctl_ok(&["restart", "counter"]);
    assert_ne!(p.running_pid("counter", secs(10)), old);
    let json: Value = serde_json::from_str(&p.ctl_ok(&["reexec", "--json"])).unwrap();
    assert_eq!(json["daemon_pid"], daemon);
    assert_eq!(json["reexecuted"], true);
}

/// A copy of runpm at `dir/runpm`, for a test that replaces it.
fn copy_runpm(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join("runpm");
    std::fs::copy(RUNPM, &path).unwrap();
    path
}

/// Replaces `path` the way a package manager does: a new file renamed over it.
fn replace(path: &Path, contents: &[u8]) {
    let new = path.with_extension("new");
    std::fs::write(&new, contents).unwrap();
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&new, path).unwrap();
}

fn up_from(p: &Project, binary: &Path) -> Daemon {
    let file = p.file("services.toml");
    let mut cmd = p.program(binary.to_str().unwrap(), ["up", "-f"]);
    cmd.arg(&file).arg("-d");
    p.up_detached_with(cmd, &p.file(".runpm"))
}

#[test]
fn a_binary_that_cannot_take_over_leaves_the_old_runpm_serving_and_says_why() {
    let p = Project::new(secs(60));
    p.config(CONFIG);
    let binary = copy_runpm(p.path());
    let d = up_from(&p, &binary);
    settled(&p);
    let before = kept(&p);

    let cases: [(&[u8], &str); 3] = [
        (
            b"#!/bin/sh\necho 'unknown state version' >&2\nexit 1\n",
            "exited with code 1: unknown state version",
        ),
        (b"\x7fELF garbage that is no program", "cannot run"),
        (b"", "cannot run"),
    ];
    for (contents, why) in cases {
        replace(&binary, contents);
        let out = p.ctl(&["reexec"]);
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(
            out.stderr.contains(why),
            "expected {why:?} in {:?}",
            out.stderr
        );
        assert!(
            out.stderr.contains(binary.to_str().unwrap()),
            "{}",
            out.stderr
        );
        assert_eq!(kept(&p), before, "nothing changed");
    }
    std::fs::remove_file(&binary).unwrap();
    let out = p.ctl(&["reexec"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("cannot run"), "{}", out.stderr);
    assert!(d.is_alive());
    let last = *numbers(&p).last().unwrap();
    assert_no_gap(&p, last);
}

/// `/proc/PID/exe`, which names a replaced file as `… (deleted)`.
fn exe(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn sigusr2_runs_the_upgraded_binary_at_the_same_path() {
    let p = Project::new(secs(60));
    p.config(CONFIG);
    let binary = copy_runpm(p.path());
    let d = up_from(&p, &binary);
    settled(&p);
    let before = kept(&p);
    // The upgrade: a new file at the path; the daemon still runs the old, deleted one.
    replace(&binary, &std::fs::read(RUNPM).unwrap());
    assert!(exe(d.pid()).ends_with("(deleted)"), "{}", exe(d.pid()));
    kill(Pid::from_raw(d.pid()), Signal::SIGUSR2).unwrap();
    assert!(
        wait_for(secs(10), || exe(d.pid()) == binary.display().to_string()),
        "runpm now runs the new file: {}",
        exe(d.pid())
    );
    p.wait_socket(secs(10));
    assert_eq!(kept(&p), before);
}

#[test]
fn reexec_as_pid1_keeps_the_container_and_its_services() {
    if !need_pid1() {
        return;
    }
    let p = Project::new(secs(60));
    p.config(CONFIG);
    let file = p.file("services.toml");
    let mut unshare = Runpm::start(p.as_pid1(["up".as_ref(), "-f".as_ref(), file.as_os_str()]));
    let runpm = unshare.unshared_runpm_pid(secs(5));
    assert_eq!(ns_pids(runpm).last(), Some(&1));
    p.wait_socket(secs(10));
    settled(&p);
    let before = kept(&p);
    let out = p.ctl_ok(&["reexec"]);
    assert!(out.contains("re-executed"), "{out}");
    assert_eq!(kept(&p), before);
    unshare.assert_running("the container goes on");
    let last = *numbers(&p).last().unwrap();
    assert_no_gap(&p, last);
    // And it still stops the container cleanly.
    kill(Pid::from_raw(runpm), Signal::SIGTERM).unwrap();
    unshare.assert_exit_code(secs(15), 0);
}

#[test]
fn a_stop_in_progress_makes_reexec_wait_its_turn() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.stubborn]
shell = 'trap "" TERM; while :; do sleep 0.05; done'
kill_timeout = "30s"
"#,
    );
    let _d = p.up_detached(&[]);
    p.running_pid("stubborn", secs(10));
    let stopping = p.ctl_spawn(&["stop", "stubborn"]);
    p.wait_status("stubborn", "stopping", secs(10));
    let out = p.ctl(&["reexec"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("cannot re-execute now"),
        "{}",
        out.stderr
    );
    drop(stopping);
}

#[test]
fn listen_sockets_and_the_fd_store_survive_a_reexec() {
    let port = free_port();
    let p = Project::new(secs(60));
    // Records the inode of the socket it got and of each stored descriptor; the first
    // run stores a memfd.
    p.write(
        "svc.py",
        r#"
import os, socket, time
n = int(os.environ.get("LISTEN_FDS", "0"))
inodes = [str(os.stat("/proc/self/fd/%d" % (3 + i)).st_ino) for i in range(n)]
with open("runs/%d.tmp" % os.getpid(), "w") as f:
    f.write(os.environ.get("LISTEN_FDNAMES", "") + " " + ",".join(inodes) + "\n")
# Renamed into place: the test never reads half a file.
os.rename("runs/%d.tmp" % os.getpid(), "runs/%d" % os.getpid())
if n < 2:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(os.environ["NOTIFY_SOCKET"])
    socket.send_fds(s, [b"FDSTORE=1\nFDNAME=kept\nSTATUS=stored"], [os.memfd_create("x")])
while True:
    time.sleep(60)
"#,
    );
    std::fs::create_dir_all(p.file("runs")).unwrap();
    p.config(&format!(
        r#"
[services.web]
cmd = ["python3", "svc.py"]
listen = ["tcp:127.0.0.1:{port}"]
fd_store_max = 1
"#
    ));
    let _d = p.up_detached(&[]);
    let first = p.running_pid("web", secs(10));
    assert!(wait_for(secs(10), || p.services()["web"]["status_text"] == "stored"));
    p.ctl_ok(&["reexec"]);
    assert!(port_open(port), "the socket is still open");
    p.ctl_ok(&["restart", "web"]);
    let second = p.running_pid("web", secs(10));
    assert_ne!(first, second);
    let rel = format!("runs/{second}");
    assert!(wait_for(secs(10), || p.file(&rel).exists()));
    let (names, inodes) = p
        .read(&rel)
        .trim()
        .split_once(' ')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    assert_eq!(names, "web:kept");
    let first_inodes = p.read(&format!("runs/{first}"));
    assert_eq!(
        inodes.split(',').next(),
        first_inodes.trim().split(' ').nth(1),
        "the same listening socket"
    );
}

#[test]
fn a_panic_reexecutes_three_times_a_minute_then_gives_up_loudly() {
    // Debug builds only (as these tests run): RUNPM_TEST_PANIC makes SIGUSR1 panic.
    let p = Project::new(secs(60));
    p.config(CONFIG);
    let file = p.file("services.toml");
    let mut cmd = p.command([
        "up".as_ref(),
        "-f".as_ref(),
        file.as_os_str(),
        "-d".as_ref(),
    ]);
    cmd.env("RUNPM_TEST_PANIC", "1");
    let d = p.up_detached_with(cmd, &p.file(".runpm"));
    settled(&p);
    let before = kept(&p);
    for round in 1..=3 {
        kill(Pid::from_raw(d.pid()), Signal::SIGUSR1).unwrap();
        assert!(
            wait_for(secs(10), || d.log().matches("re-executed:").count()
                == round),
            "re-exec {round} after a panic:\n{}",
            d.log()
        );
        p.wait_socket(secs(10));
        assert_eq!(kept(&p), before, "every service kept after panic {round}");
    }
    let quiet = p.running_pid("flaky", secs(5));
    kill(Pid::from_raw(d.pid()), Signal::SIGUSR1).unwrap();
    assert!(
        d.wait_exit(secs(10)),
        "the fourth panic within a minute ends runpm"
    );
    assert!(d.log().contains("giving up"), "{}", d.log());
    // Ending does not take the services down with it (one that writes meets a closed pipe,
    // as after any end of runpm); the next runpm finds them through the state file.
    assert!(is_alive(quiet));
}
