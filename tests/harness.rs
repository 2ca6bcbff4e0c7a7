//! Tests of the test harness itself, against plain shell processes: when a runpm test fails,
//! the harness must not be the suspect.

mod common;

use std::process::Command;

use common::*;

#[test]
fn captures_output_events_and_exit_code() {
    let p = Project::new(secs(10));
    let mut sh = Runpm::start(p.program(
        "sh",
        [
            "-c",
            "echo 'alpha | hi'; echo 'service `alpha` started (pid 42)' >&2; \
             echo 'service `alphabet` failed' >&2; exit 3",
        ],
    ));
    sh.wait_for_output("alpha | hi", secs(5));
    let line = sh.wait_for_event("alpha", "started", secs(5));
    assert!(line.contains("pid 42"));
    sh.assert_exit_code(secs(5), 3);
    // `alphabet` is another service: its events are not `alpha`'s.
    assert!(sh.events("alpha", "failed").is_empty());
    assert_eq!(sh.events("alphabet", "failed").len(), 1);
    assert_eq!(service_lines(&sh.stdout(), "alpha", 5), ["hi"]);
}

#[test]
fn mentions_matches_whole_names_only() {
    assert!(mentions("service `web`: started", "web"));
    assert!(mentions("web | hello", "web"));
    assert!(mentions("web: started", "web"));
    assert!(!mentions("service `webapp`: started", "web"));
    assert!(!mentions("service `my-web`: started", "web"));
}

#[test]
fn proc_helpers_read_state_ppid_and_zombies() {
    let _p = Project::new(secs(10));
    let me = std::process::id() as i32;
    assert!(is_alive(me));
    assert_eq!(sid(me), nix::unistd::getsid(None).ok().map(|s| s.as_raw()));

    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    assert!(
        wait_for(secs(5), || is_zombie(pid)),
        "an unreaped child is a zombie"
    );
    assert!(!is_alive(pid), "a zombie counts as dead");
    assert_eq!(ppid(pid), Some(me));
    assert!(zombies([pid]).iter().any(|z| z.0 == pid));
    child.wait().unwrap();
    assert_eq!(proc_state(pid), None, "reaped: gone");
}

#[test]
fn stat_fields_survive_a_command_name_with_parentheses() {
    let p = Project::new(secs(10));
    let odd = p.file("a) b (c");
    std::fs::copy("/bin/sleep", &odd).unwrap();
    let mut child = Command::new(&odd).arg("1000").spawn().unwrap();
    let pid = child.id() as i32;
    assert!(wait_for(secs(5), || comm(pid).as_deref() == Some("a) b (c")));
    assert_eq!(stat_field(pid, 2).as_deref(), Some("a) b (c"));
    assert_eq!(ppid(pid), Some(std::process::id() as i32));
    assert!(is_alive(pid));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn dropping_the_guard_kills_descendants_in_other_sessions() {
    let p = Project::new(secs(10));
    // A grandchild in its own session that ignores SIGTERM, like a runpm service.
    let guard = Runpm::start(p.program(
        "sh",
        [
            "-c",
            "setsid sh -c 'trap \"\" TERM; echo $$ > escapee.pid; exec sleep 1000' & wait",
        ],
    ));
    let escapee = p.read_pid("escapee.pid", secs(5));
    assert!(is_alive(escapee));
    assert_eq!(
        sid(escapee),
        Some(escapee),
        "it really is in another session"
    );
    assert!(descendants(guard.pid()).contains(&escapee));
    drop(guard);
    assert!(
        wait_dead(escapee, secs(5)),
        "the guard must not leak processes"
    );
}

#[test]
fn wait_growth_measures_progress_of_a_file() {
    let p = Project::new(secs(10));
    let mut sh = Runpm::start(p.program(
        "sh",
        ["-c", "while :; do echo tick >> ticks; sleep 0.01; done"],
    ));
    p.wait_lines("ticks", 1, secs(5));
    let before = p.lines("ticks").len();
    p.wait_growth("ticks", 5, secs(5));
    assert!(p.lines("ticks").len() >= before + 5);
    sh.assert_running("the ticker loops forever");
}
