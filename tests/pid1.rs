//! runpm as PID 1 of a pid namespace (as in a container) and as a subreaper: orphaned
//! grandchildren are reaped, SIGTERM stops the tree, and the exit code tells the truth.
//!
//! The namespace tests need root and `unshare` (CI runs as root). Without root they fail with
//! a clear message, unless `RUNPM_SKIP_ROOT_TESTS=1` asks to skip them: no silent skips.

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A service that leaves one long-lived orphan (`sleep 1000`, pid in `orphan.pid`) and then
/// keeps creating short-lived orphans, one line in `orphans` per orphan. Orphans are
/// re-parented to the nearest subreaper or to the namespace's PID 1: runpm in these tests.
const ORPHANER: &str = r#"
[services.orphaner]
shell = '''
sh -c 'sleep 1000 & echo $! > orphan.pid'
while :; do
  sh -c 'sleep 0.02 &'
  echo orphan >> orphans
  sleep 0.01
done
'''
"#;

/// Checks that zombies do not accumulate among `candidates()`: after `orphans` orphans have
/// been created, only a handful can be zombies at any moment (exited, not yet reaped), and
/// each of those is reaped soon after.
fn assert_orphans_reaped(p: &Project, runpm: &Runpm, candidates: impl Fn() -> Vec<i32>) {
    p.wait_lines("orphans", 100, secs(15));
    let first = zombies(candidates());
    assert!(
        first.len() < 10,
        "{} zombies after 100 orphans: orphans are not reaped: {first:?}\n{}",
        first.len(),
        runpm.describe()
    );
    // A while later (30 more orphans), every zombie seen before has been reaped.
    p.wait_growth("orphans", 30, secs(10));
    let left: Vec<Identity> = first.into_iter().filter(|&z| still_zombie(z)).collect();
    assert!(
        left.is_empty(),
        "zombies not reaped: {left:?}\n{}",
        runpm.describe()
    );
}

#[test]
fn as_pid1_reaps_orphans_and_stops_on_sigterm() {
    if !need_pid1() {
        return;
    }
    let p = Project::new(secs(30));
    p.config(&format!(
        r#"
[runpm]
shutdown_timeout = "5s"
{ORPHANER}
# Not `exec sleep`: the only `sleep` whose parent is runpm must be an adopted orphan.
[services.steady]
shell = 'while :; do sleep 1; done'
"#
    ));
    let file = p.file("services.toml");
    let mut unshare = Runpm::start(p.as_pid1(["up".as_ref(), "-f".as_ref(), file.as_os_str()]));
    let runpm = unshare.unshared_runpm_pid(secs(5));
    assert_eq!(
        ns_pids(runpm).last(),
        Some(&1),
        "runpm should be PID 1 of its namespace"
    );
    let ns = pid_ns(runpm).expect("runpm's pid namespace");

    // The long-lived orphan was re-parented to runpm (seen from the host: ppid = runpm's
    // host pid), which proves the orphans below really end up with runpm.
    let adopted = wait_for(secs(5), || {
        pids_in_ns(&ns)
            .into_iter()
            .any(|pid| ppid(pid) == Some(runpm) && comm(pid).as_deref() == Some("sleep"))
    });
    assert!(
        adopted,
        "no orphan was re-parented to runpm\n{}",
        unshare.describe()
    );

    assert_orphans_reaped(&p, &unshare, || pids_in_ns(&ns));

    // `unshare` ignores SIGTERM while it waits: signal PID 1 by its host pid, as a container
    // runtime would.
    kill(Pid::from_raw(runpm), Signal::SIGTERM).expect("SIGTERM to runpm");
    // Within shutdown_timeout (5 s); unshare exits with runpm's exit code.
    unshare.assert_exit_code(secs(7), 0);
    unshare.wait_for_event("orphaner", "stopped", secs(1));
    unshare.wait_for_event("steady", "stopped", secs(1));
    assert!(
        wait_for(secs(2), || pids_in_ns(&ns).is_empty()),
        "processes left in the namespace: {:?}",
        pids_in_ns(&ns)
    );
}

#[test]
fn as_pid1_exits_with_the_failing_service_code() {
    if !need_pid1() {
        return;
    }
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.job]
shell = 'sleep 0.2; exit 7'
restart = "never"
"#,
    );
    let file = p.file("services.toml");
    let mut unshare = Runpm::start(p.as_pid1(["up".as_ref(), "-f".as_ref(), file.as_os_str()]));
    unshare.assert_exit_code(secs(10), 7);
    unshare.wait_for_event("job", "exited with code 7", secs(1));
}

#[test]
fn subreaper_reaps_orphans_of_services() {
    let p = Project::new(secs(30));
    p.config(ORPHANER);
    let mut runpm = p.up(&["--subreaper"]);
    let orphan = p.read_pid("orphan.pid", secs(5));
    assert!(
        wait_for(secs(5), || ppid(orphan) == Some(runpm.pid())),
        "with --subreaper, an orphaned grandchild is re-parented to runpm (ppid of {orphan} is \
         {:?})\n{}",
        ppid(orphan),
        runpm.describe()
    );

    let pid = runpm.pid();
    assert_orphans_reaped(&p, &runpm, || children(pid));

    runpm.send_signal(Signal::SIGTERM);
    runpm.assert_exit_code(secs(10), 0);
    assert!(
        wait_dead(orphan, secs(2)),
        "the orphan is in the service's process group and is stopped with it"
    );
}
