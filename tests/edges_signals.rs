//! Signals to a runpm that is not PID 1: one Ctrl-C is one Ctrl-C, even when it arrives
//! twice; a second one later still kills everything; and no stray signal ends the daemon.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// runpm's window within which terminating signals are one request (see runpm(1)).
const SAME_SIGNAL: Duration = Duration::from_millis(200);

/// A service that takes its time to stop: on SIGTERM it writes `term`, then exits 0 only
/// once the test creates `release`.
const SLOW_STOPPER: &str = r#"
[services.slow]
shell = '''
echo $$ > slow.pid
trap 'touch term; while [ ! -e release ]; do sleep 0.05; done; exit 0' TERM
while :; do sleep 0.1; done
'''
kill_timeout = "60s"
"#;

#[test]
fn one_ctrl_c_under_timeout_is_one_ctrl_c() {
    if !on_path("timeout") {
        panic!("`timeout` (coreutils) is needed");
    }
    let p = Project::new(secs(30));
    p.config(&format!(
        r#"
[services.sleeper]
shell = 'echo $$ > sleeper.pid; exec sleep 1000'
{TICKER}"#
    ));
    let file = p.file("services.toml");
    let cmd = p.program(
        "timeout",
        [
            "600".as_ref(),
            RUNPM.as_ref(),
            "up".as_ref(),
            "-f".as_ref(),
            file.as_os_str(),
        ],
    );
    // `Runpm::start` gives `timeout` a process group of its own, as a shell gives a job.
    let mut job = Runpm::start(cmd);
    let sleeper = p.read_pid("sleeper.pid", secs(5));
    job.wait_for_event("sleeper", "started", secs(5));

    // Ctrl-C: the terminal signals the whole foreground group, runpm and `timeout`, and
    // `timeout` forwards it to runpm once more (and to its group again).
    kill(Pid::from_raw(-job.pid()), Signal::SIGINT).expect("signal the job's group");
    job.assert_exit_code(secs(10), 0);
    assert!(wait_dead(sleeper, secs(2)), "{}", job.describe());
    assert!(
        !job.stderr().contains("killing all services"),
        "one Ctrl-C must not escalate\n{}",
        job.describe()
    );
}

#[test]
fn a_repeat_right_after_the_first_signal_is_the_same_request() {
    let p = Project::new(secs(30));
    p.config(SLOW_STOPPER);
    let mut cmd = p.up_command(&[]);
    cmd.env("RUNPM_LOG", "debug");
    let mut runpm = Runpm::start(cmd);
    let pid = p.read_pid("slow.pid", secs(5));
    runpm.wait_for_event("slow", "started", secs(5));

    runpm.send_signal(Signal::SIGINT);
    // runpm has handled the first signal (its event lines are written at the end of the
    // turn, and read here as they come): the second one follows within the window.
    runpm.wait_for_event("slow", "stopping", secs(5));
    runpm.send_signal(Signal::SIGINT);
    runpm.wait_for_stderr("the same request", secs(5));
    wait_for_file(&p, "term");
    assert!(
        is_alive(pid),
        "the service must not be killed\n{}",
        runpm.describe()
    );

    p.write("release", "");
    runpm.assert_exit_code(secs(10), 0);
}

#[test]
fn a_second_signal_after_the_window_still_kills_at_once() {
    let p = Project::new(secs(30));
    p.config(SLOW_STOPPER);
    let mut runpm = p.up(&[]);
    let pid = p.read_pid("slow.pid", secs(5));
    runpm.wait_for_event("slow", "started", secs(5));

    let first = Instant::now();
    runpm.send_signal(Signal::SIGINT);
    wait_for_file(&p, "term");
    // What is tested is the window itself: the second Ctrl-C of a person comes later.
    wait_for(secs(1), || first.elapsed() > SAME_SIGNAL);
    runpm.send_signal(Signal::SIGINT);
    assert!(
        wait_dead(pid, secs(5)),
        "the escalation should kill the service\n{}",
        runpm.describe()
    );
    runpm.assert_exit_code(secs(5), 137);
    assert!(!p.file("release").exists());
}

#[test]
fn stray_signals_neither_end_the_daemon_nor_reach_its_services() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.sleeper]
shell = 'echo $$ > sleeper.pid; exec sleep 1000'
"#,
    );
    let mut runpm = p.up(&[]);
    let sleeper = p.read_pid("sleeper.pid", secs(5));
    runpm.wait_for_event("sleeper", "started", secs(5));

    // Every signal whose default action would end runpm, except the documented stops.
    let rtmin = libc::SIGRTMIN();
    let rtmax = libc::SIGRTMAX();
    let stray = [
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGSYS,
        rtmin,
        rtmin + 3,
        rtmax,
    ];
    for sig in stray {
        // SAFETY: kill(2) with a valid pid and signal number.
        let sent = unsafe { libc::kill(runpm.pid(), sig) };
        assert_eq!(sent, 0, "kill -{sig}");
    }
    // An ignored signal is dropped when it is sent; a fatal one would be taking runpm down
    // now. SIGUSR1 answers with the status in runpm's log: runpm is alive and handling.
    runpm.send_signal(Signal::SIGUSR1);
    runpm.wait_for_stderr("received SIGUSR1", secs(5));
    runpm.wait_for_event("sleeper", "running (pid", secs(5));
    runpm.assert_running("stray signals must not end runpm");
    assert!(is_alive(sleeper));

    // The service runs with every signal at its default: nothing runpm ignores or handles
    // is inherited.
    let status = std::fs::read_to_string(format!("/proc/{sleeper}/status")).unwrap();
    for field in ["SigIgn:", "SigCgt:", "SigBlk:"] {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        assert_eq!(
            line.split_whitespace().nth(1),
            Some("0000000000000000"),
            "{line}"
        );
    }

    // SIGQUIT is a graceful stop, like SIGTERM.
    runpm.send_signal(Signal::SIGQUIT);
    runpm.assert_exit_code(secs(10), 0);
    assert!(wait_dead(sleeper, secs(2)));
    runpm.wait_for_event("sleeper", "stopped", secs(1));
}

fn wait_for_file(p: &Project, rel: &str) {
    assert!(
        wait_for(secs(5), || p.file(rel).exists()),
        "{rel} did not appear"
    );
}
