//! The notify socket against a real client that nobody here wrote: Debian's `systemd-notify`.
//!
//! systemd-notify sends its assignments, then a `BARRIER=1` datagram carrying the write end
//! of a pipe, and waits up to 5 s for the receiver to close it. So "it exits well before 3 s"
//! proves the barrier fd was closed. By default it sends with its *parent's* pid in
//! SCM_CREDENTIALS (it is usually run from a service's shell script; root may claim another
//! pid, others fall back to their own), which is why attribution goes by process group.
//!
//! The tests fail when systemd-notify is missing, unless `RUNPM_SKIP_SYSTEMD_NOTIFY=1` or
//! `RUNPM_SKIP_SYSTEM_PACKAGES=1` (the rule of `tests/common/need.rs`).

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use common::need_systemd_notify;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use runpm::notify::{Datagram, Notification, NotifySocket, attribute, pgid_of};

const SYSTEMD_NOTIFY: &str = "/usr/bin/systemd-notify";

/// systemd-notify gives up on an unanswered barrier after 5 s; exiting before this shows
/// that the barrier was answered.
const DEADLINE: Duration = Duration::from_secs(3);

fn bind() -> (tempfile::TempDir, NotifySocket) {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::try_from(dir.path().join("notify.sock")).unwrap();
    let socket = NotifySocket::bind(&path).unwrap();
    (dir, socket)
}

/// Kills a process group when dropped, so a failing test leaves nothing running.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// A long-lived stand-in for a service's main process, leading its own process group.
fn service_leader() -> (Child, Group) {
    let child = Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    (child, Group(pid))
}

struct Run {
    /// Each datagram with the service it was attributed to on arrival.
    datagrams: Vec<(Datagram, Option<String>)>,
    status: ExitStatus,
    /// From the spawn to the client's exit.
    took: Duration,
    pid: i32,
}

/// Runs `command` (already configured) with `NOTIFY_SOCKET` set, receiving and attributing
/// every datagram until the barrier, then waits for the client to exit; all within
/// [`DEADLINE`]. `services` gets the client's pid, for tests whose service is the client.
async fn run(
    socket: &NotifySocket,
    mut command: Command,
    services: impl Fn(i32) -> Vec<(String, i32, i32)>,
) -> Run {
    let started = Instant::now();
    let mut child = command
        .env("NOTIFY_SOCKET", socket.address())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let services = services(pid);
    let waiter = tokio::task::spawn_blocking(move || {
        let status = child.wait();
        (status, Instant::now())
    });
    let work = async {
        let mut datagrams = Vec::new();
        loop {
            let datagram = socket.recv().await.unwrap();
            // Attributed before the next recv: the sender is still waiting on its barrier.
            let service = attribute(datagram.pid, &services, pgid_of);
            let barrier = datagram.notifications.contains(&Notification::Barrier);
            datagrams.push((datagram, service));
            if barrier {
                break;
            }
        }
        let (status, exited) = waiter.await.unwrap();
        (datagrams, status.unwrap(), exited)
    };
    let Ok((datagrams, status, exited)) = tokio::time::timeout(DEADLINE, work).await else {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        panic!("the client did not finish within {DEADLINE:?}: was the barrier fd closed?");
    };
    let took = exited - started;
    eprintln!("client exited after {took:?}");
    Run {
        datagrams,
        status,
        took,
        pid,
    }
}

fn me() -> (u32, u32) {
    (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    )
}

#[tokio::test]
async fn ready_and_status_then_the_barrier_is_released() {
    if !need_systemd_notify() {
        return;
    }
    let (_dir, socket) = bind();
    let mut command = Command::new(SYSTEMD_NOTIFY);
    command.args(["--ready", "--status=hello"]);
    let run = run(&socket, command, |_| Vec::new()).await;
    assert!(run.status.success(), "{:?}", run.status);
    assert!(run.took < DEADLINE, "took {:?}", run.took);

    let (first, _) = &run.datagrams[0];
    assert_eq!(
        first.notifications,
        [Notification::Ready, Notification::Status("hello".into())]
    );
    // Its parent's pid (ours) when it may claim it, else its own.
    let ours = std::process::id() as i32;
    assert!(
        first.pid == ours || first.pid == run.pid,
        "sender pid {} is neither the client {} nor its parent {ours}",
        first.pid,
        run.pid
    );
    assert_eq!((first.uid, first.gid), me());
    // The barrier is a datagram of its own, sent without claiming a pid: the client's own.
    let (last, _) = run.datagrams.last().unwrap();
    assert_eq!(last.notifications, [Notification::Barrier]);
    assert_eq!(last.pid, run.pid);
    assert_eq!(run.datagrams.len(), 2, "{:?}", run.datagrams);
}

#[tokio::test]
async fn from_a_service_script_it_is_attributed_to_the_service() {
    if !need_systemd_notify() {
        return;
    }
    let (_dir, socket) = bind();
    // The usual shape: a shell script, leading the service's process group, reports
    // readiness and goes on. (`; exit` keeps sh from exec'ing the client directly.)
    let mut command = Command::new("sh");
    command
        .args(["-c", "systemd-notify --ready --status=hello; exit $?"])
        .process_group(0);
    let run = run(&socket, command, |pid| vec![("svc".to_owned(), pid, pid)]).await;
    let _group = Group(run.pid);
    assert!(run.status.success(), "{:?}", run.status);
    let (first, service) = &run.datagrams[0];
    assert_eq!(
        first.notifications,
        [Notification::Ready, Notification::Status("hello".into())]
    );
    assert_eq!(service.as_deref(), Some("svc"));
}

#[tokio::test]
async fn mainpid_and_watchdog() {
    if !need_systemd_notify() {
        return;
    }
    let (_dir, socket) = bind();
    let mut command = Command::new("sh");
    command
        .args(["-c", "systemd-notify --pid=$$ WATCHDOG=1; exit $?"])
        .process_group(0);
    let run = run(&socket, command, |pid| vec![("svc".to_owned(), pid, pid)]).await;
    let _group = Group(run.pid);
    assert!(run.status.success(), "{:?}", run.status);
    assert!(run.took < DEADLINE, "took {:?}", run.took);
    let (first, service) = &run.datagrams[0];
    assert!(
        first
            .notifications
            .contains(&Notification::MainPid(run.pid)),
        "{:?}",
        first.notifications
    );
    assert!(
        first.notifications.contains(&Notification::Watchdog),
        "{:?}",
        first.notifications
    );
    assert_eq!(service.as_deref(), Some("svc"));
}

#[tokio::test]
async fn watchdog_trigger_stopping_and_reloading() {
    if !need_systemd_notify() {
        return;
    }
    let (_dir, socket) = bind();
    let mut command = Command::new(SYSTEMD_NOTIFY);
    command.args(["WATCHDOG=trigger", "STOPPING=1", "RELOADING=1", "ERRNO=5"]);
    let run = run(&socket, command, |_| Vec::new()).await;
    assert!(run.status.success(), "{:?}", run.status);
    assert_eq!(
        run.datagrams[0].0.notifications,
        [
            Notification::WatchdogTrigger,
            Notification::Stopping,
            Notification::Reloading,
            Notification::Errno(5),
        ]
    );
}

#[tokio::test]
async fn a_member_of_the_group_counts_a_stranger_does_not() {
    if !need_systemd_notify() {
        return;
    }
    let (_dir, socket) = bind();
    let (leader, _leader_group) = service_leader();
    let leader = leader.id() as i32;
    let services = move |_| vec![("svc".to_owned(), leader, leader)];

    // Joins the service's process group, as anything the service starts does.
    let mut member = Command::new("sh");
    member
        .args(["-c", "systemd-notify --ready; exit $?"])
        .process_group(leader);
    let run_member = run(&socket, member, services).await;
    assert!(run_member.status.success());
    assert_eq!(
        run_member.datagrams[0].0.notifications,
        [Notification::Ready]
    );
    assert_eq!(run_member.datagrams[0].1.as_deref(), Some("svc"));

    // The same script in a process group of its own belongs to nobody.
    let mut stranger = Command::new("sh");
    stranger
        .args(["-c", "systemd-notify --ready; exit $?"])
        .process_group(0);
    let run_stranger = run(&socket, stranger, services).await;
    let _stranger_group = Group(run_stranger.pid);
    assert!(run_stranger.status.success());
    assert_eq!(
        run_stranger.datagrams[0].0.notifications,
        [Notification::Ready]
    );
    assert_eq!(run_stranger.datagrams[0].1, None);
}

#[tokio::test]
async fn no_block_sends_no_barrier() {
    if !need_systemd_notify() {
        return;
    }
    let (_dir, socket) = bind();
    let mut child = Command::new(SYSTEMD_NOTIFY)
        .args(["--no-block", "--ready"])
        .env("NOTIFY_SOCKET", socket.address())
        .spawn()
        .unwrap();
    let datagram = tokio::time::timeout(DEADLINE, socket.recv())
        .await
        .expect("no datagram")
        .unwrap();
    assert_eq!(datagram.notifications, [Notification::Ready]);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
