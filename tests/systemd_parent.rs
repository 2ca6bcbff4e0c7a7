//! runpm under systemd (issue 12, part 4): started with `NOTIFY_SOCKET`, `WATCHDOG_USEC`,
//! `STATE_DIRECTORY` and `LOGS_DIRECTORY` as a unit of `units/runpm.service` is, it tells
//! the manager READY=1 with a current STATUS=, RELOADING=1 + MONOTONIC_USEC= then READY=1
//! around a `runpmctl reload` (the unit's ExecReload=), WATCHDOG=1 pings, STOPPING=1; and it
//! keeps its state and logs in systemd's directories.

mod common;

use std::cell::RefCell;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::Signal;

const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");

#[test]
fn under_systemd_runpm_reports_reloads_status_and_watchdog_and_uses_its_directories() {
    let p = Project::new(secs(40));
    p.config(
        r#"
[services.web]
shell = 'echo web is up; exec sleep 1000000'

[services.worker]
shell = 'exec sleep 1000000'
"#,
    );
    let manager_path = p.file("notify.sock");
    let manager = UnixDatagram::bind(&manager_path).expect("bind the manager's socket");
    manager.set_read_timeout(Some(ms(100))).expect("timeout");
    let received = RefCell::new(Vec::<String>::new());
    let drain = || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = manager.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            received.borrow_mut().push(text);
        }
    };
    // Index of the first message at or after `from` that has line `what`.
    let find = |from: usize, what: &dyn Fn(&str) -> bool| {
        received
            .borrow()
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, m)| m.lines().any(what))
            .map(|(i, _)| i)
    };
    let state_dir = p.file("lib/runpm");
    let logs_dir = p.file("log/runpm");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::create_dir_all(&logs_dir).unwrap();

    let mut cmd = p.up_command(&[]);
    cmd.env("NOTIFY_SOCKET", &manager_path)
        .env("WATCHDOG_USEC", "400000")
        .env("STATE_DIRECTORY", &state_dir)
        .env("LOGS_DIRECTORY", &logs_dir);
    let mut runpm = Runpm::start(cmd);

    assert!(
        wait_for(secs(10), || {
            drain();
            find(0, &|l| l == "READY=1").is_some()
        }),
        "no READY=1: {:?}\n{}",
        received.borrow(),
        runpm.describe()
    );
    let ready = find(0, &|l| l == "READY=1").unwrap();
    assert!(
        received.borrow()[ready]
            .lines()
            .any(|l| l == "STATUS=2 running"),
        "READY=1 comes with the status: {:?}",
        received.borrow()
    );
    // WATCHDOG_USEC=400ms: a ping every 200 ms, again and again.
    assert!(
        wait_for(secs(10), || {
            drain();
            let pings = received
                .borrow()
                .iter()
                .filter(|m| *m == "WATCHDOG=1")
                .count();
            pings >= 3
        }),
        "too few WATCHDOG=1 pings: {:?}",
        received.borrow()
    );

    // State and logs in systemd's directories, nothing beside the config.
    assert!(
        wait_for(secs(10), || state_dir.join("state.json").exists()),
        "no state.json in $STATE_DIRECTORY"
    );
    assert!(
        wait_for(secs(10), || std::fs::read_to_string(
            logs_dir.join("web.log")
        )
        .is_ok_and(|t| t.contains("web is up"))),
        "no web.log in $LOGS_DIRECTORY"
    );
    assert!(!p.file(".runpm").exists(), "a .runpm beside the config");

    // ExecReload=runpmctl reload: synchronous, announced as RELOADING=1 then READY=1.
    let ctl = |args: &[&str]| {
        let out = Command::new(RUNPMCTL)
            .args(["-f".as_ref(), p.file("services.toml").as_os_str()])
            .args(args)
            .current_dir(p.path())
            .env_remove("RUNPM_STATE_DIR")
            .env_remove("NOTIFY_SOCKET")
            .env("STATE_DIRECTORY", &state_dir)
            .stdin(Stdio::null())
            .output()
            .expect("runpmctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    drain();
    let before = received.borrow().len();
    let (code, stderr) = ctl(&["reload"]);
    assert_eq!(code, Some(0), "runpmctl reload: {stderr}");
    assert!(
        wait_for(secs(10), || {
            drain();
            find(before, &|l| l == "RELOADING=1")
                .and_then(|at| find(at + 1, &|l| l == "READY=1"))
                .is_some()
        }),
        "no RELOADING=1 then READY=1: {:?}",
        received.borrow()
    );
    let reloading = find(before, &|l| l == "RELOADING=1").unwrap();
    let usec: u64 = received.borrow()[reloading]
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .expect("MONOTONIC_USEC= with RELOADING=1");
    assert!(usec > 0);

    // An invalid config fails the reload (so `systemctl reload` fails) and changes nothing.
    p.write("services.toml", "[services.web]\ncmd = 5\n");
    let (code, stderr) = ctl(&["reload"]);
    assert_eq!(
        code,
        Some(1),
        "an invalid config must fail the reload: {stderr}"
    );
    runpm.assert_running("after a failed reload");

    // STATUS= follows what runs.
    drain();
    let before = received.borrow().len();
    let (code, stderr) = ctl(&["stop", "worker"]);
    assert_eq!(code, Some(0), "runpmctl stop worker: {stderr}");
    assert!(
        wait_for(secs(10), || {
            drain();
            find(before, &|l| l == "STATUS=1 running").is_some()
        }),
        "STATUS= not updated after a stop: {:?}",
        received.borrow()
    );

    runpm.send_signal(Signal::SIGTERM);
    runpm.assert_exit_code(secs(15), 0);
    drain();
    assert!(
        find(0, &|l| l == "STOPPING=1").is_some(),
        "no STOPPING=1: {:?}",
        received.borrow()
    );
}
