//! The fd store (sd_notify `FDSTORE=1`, issue 14) from a user's side: a Python service
//! parks a memfd holding its "state" in runpm through `NOTIFY_SOCKET` (socket.send_fds, as
//! sd_pid_notify_with_fds(3) does), crashes, and its next run finds the descriptor again in
//! `LISTEN_FDS`/`LISTEN_FDNAMES`, after its `listen` sockets.

mod common;

use common::*;

/// Records what it was given in `runs/N` (N counts the runs), then: on a run without
/// stored descriptors, stores a memfd named `FDNAME` holding `generation-N` and crashes;
/// `remove` in the file `mode` makes it send FDSTOREREMOVE=1 instead; otherwise it idles.
const SERVICE: &str = r#"
import os, socket, sys, time
n = int(os.environ.get("LISTEN_FDS", "0"))
names = os.environ.get("LISTEN_FDNAMES", "").split(":") if n else []
if n:
    assert os.environ["LISTEN_PID"] == str(os.getpid())
os.makedirs("runs", exist_ok=True)
run = len(os.listdir("runs")) + 1
lines = []
for i in range(n):
    fd = 3 + i
    kind = "socket" if os.path.basename(os.readlink("/proc/self/fd/%d" % fd)).startswith("socket:") else "file"
    content = os.pread(fd, 100, 0).decode() if kind == "file" else ""
    lines.append("%d %s %s %s" % (fd, names[i], kind, content))
with open("runs/%d.tmp" % run, "w") as f:
    f.write("\n".join(lines) + "\n")
os.rename("runs/%d.tmp" % run, "runs/%d" % run)

addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.connect(addr)
mode = open("mode").read().strip() if os.path.exists("mode") else "store"
stored = [l for l in lines if " file " in l]
if mode == "remove" and stored:
    # STATUS= in the same datagram: once runpm shows it, the removal was handled.
    notify.send(b"FDSTOREREMOVE=1\nFDNAME=state\nSTATUS=removed")
elif not stored:
    memfd = os.memfd_create("state")
    os.write(memfd, b"generation-%d" % run)
    socket.send_fds(notify, [b"FDSTORE=1\nFDNAME=state"], [memfd])
    # The store is runpm's business from here: a barrier-free crash after the send.
    notify.send(b"STATUS=stored")
    time.sleep(0.2)
    sys.exit(3)
while True:
    time.sleep(60)
"#;

fn project(extra: &str) -> Project {
    let p = Project::new(secs(60));
    p.write("service.py", SERVICE);
    p.config(&format!(
        r#"
[services.keeper]
cmd = ["python3", "service.py"]
restart = "always"
restart_delay = "50ms"
{extra}
"#
    ));
    p
}

fn run(p: &Project, n: usize) -> Vec<String> {
    let rel = format!("runs/{n}");
    assert!(
        wait_for(secs(20), || p.file(&rel).exists()),
        "no run {n}: {:?}",
        p.try_service("keeper")
    );
    p.lines(&rel)
}

#[test]
fn a_stored_descriptor_comes_back_after_a_crash_behind_the_listen_sockets() {
    let port = free_port();
    let p = project(&format!(
        "fd_store_max = 4\nlisten = [{{ address = \"tcp:127.0.0.1:{port}\", name = \"http\" }}]"
    ));
    let _d = p.up_detached_failing(&[]);
    assert_eq!(run(&p, 1), ["3 http socket "]);
    // The crash after storing: the next run gets the memfd the first one wrote.
    assert_eq!(run(&p, 2), ["3 http socket ", "4 state file generation-1"]);
    p.running_pid("keeper", secs(10));

    // Stopped by the operator: the store is emptied (systemd's FileDescriptorStorePreserve=no).
    p.ctl_ok(&["stop", "keeper"]);
    p.ctl_ok(&["start", "keeper"]);
    assert_eq!(run(&p, 3), ["3 http socket "]);
}

#[test]
fn fdstoreremove_drops_the_named_descriptors() {
    let p = project("fd_store_max = 1");
    let _d = p.up_detached_failing(&[]);
    assert_eq!(run(&p, 2), ["3 state file generation-1"]);
    let pid = p.running_pid("keeper", secs(10));
    p.write("mode", "remove");
    // A restart by hand keeps the store; this run removes what it found.
    p.ctl_ok(&["restart", "keeper"]);
    assert_eq!(run(&p, 3), ["3 state file generation-1"]);
    let pid3 = wait_for_some(secs(10), || {
        let s = p.try_service("keeper")?;
        let now = s["pid"].as_i64()? as i32;
        (now != pid && s["status_text"] == "removed").then_some(now)
    })
    .expect("the third run removes what it found");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid3),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(run(&p, 4), [""], "nothing stored any more");
}

#[test]
fn without_fd_store_max_the_descriptors_are_refused_and_logged() {
    let p = project("fd_store_max = 0\nready = { notify = true }\nready_timeout = \"30s\"");
    let _d = p.up_detached_failing(&[]);
    assert_eq!(run(&p, 1), [""]);
    assert_eq!(run(&p, 2), [""], "nothing came back");
    let log = p.read(".runpm/runpm.log");
    assert!(log.contains("fd_store_max = 0"), "{log}");
}
