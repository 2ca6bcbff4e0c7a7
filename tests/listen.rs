//! Socket activation (`listen`, issue 14) from a user's side: the real `runpm up -d` and
//! `runpmctl`, a small Python HTTP server that takes its socket from `LISTEN_FDS` the way
//! sd_listen_fds(3) does (and checks `LISTEN_PID` against its own pid), gunicorn from the CI
//! virtualenv (which finds `LISTEN_FDS` and checks `LISTEN_PID` by itself: given `--bind
//! fd://3` as well, it would take the descriptor twice and fail), and a client loop in a thread of the test that counts
//! every refused or failed request while the service restarts, reloads or is killed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use common::*;
use nix::sys::signal::Signal;

/// A server in the style of a systemd socket-activated daemon: it refuses to run unless
/// `LISTEN_PID` is its own pid, records what it was given in `runs/PID`, and answers each
/// request with its pid. On SIGTERM it finishes the request in flight and exits without
/// closing anything else (runpm keeps the listening socket).
const SERVER: &str = r#"
import os, select, signal, socket, sys
assert os.environ["LISTEN_PID"] == str(os.getpid()), "LISTEN_PID is not my pid"
n = int(os.environ["LISTEN_FDS"])
names = os.environ["LISTEN_FDNAMES"].split(":")
assert len(names) == n, names
socks = [socket.socket(fileno=3 + i) for i in range(n)]
os.makedirs("runs", exist_ok=True)
with open("runs/%d.tmp" % os.getpid(), "w") as f:
    for i, s in enumerate(socks):
        inode = os.stat("/proc/self/fd/%d" % (3 + i)).st_ino
        f.write("%d %s %d %d %d\n" % (3 + i, names[i], s.family, s.type, inode))
    f.write("env %s\n" % os.environ.get("GENERATION", ""))
os.rename("runs/%d.tmp" % os.getpid(), "runs/%d" % os.getpid())
# SIGTERM only wakes the loop: it is noticed between requests, never inside one, so a
# connection once accepted is always answered (and those not yet accepted wait for the next
# run in the backlog runpm keeps).
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGTERM, lambda *_: None)
http = socks[0]
while True:
    ready, _, _ = select.select([http, wake_r], [], [])
    if wake_r in ready:
        os._exit(0)
    conn, _ = http.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%d\n" % os.getpid())
    conn.close()
"#;

fn project(listen: &str, extra: &str) -> Project {
    let p = Project::new(secs(120));
    p.write("server.py", SERVER);
    p.config(&format!(
        r#"
[services.web]
cmd = ["python3", "server.py"]
listen = {listen}
restart = "always"
restart_delay = "50ms"
{extra}
"#
    ));
    p
}

/// One `GET /` on 127.0.0.1:`port`: the pid that answered, or how it failed.
fn get(port: u16) -> Result<i32, Failure> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            Failure::Refused
        } else {
            Failure::Other(e.to_string())
        }
    })?;
    stream.set_read_timeout(Some(secs(20))).ok();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(|e| Failure::Other(e.to_string()))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| Failure::Other(e.to_string()))?;
    text.rsplit("\r\n\r\n")
        .next()
        .and_then(|body| body.trim().parse().ok())
        .ok_or_else(|| Failure::Other(format!("unexpected answer {text:?}")))
}

#[derive(Debug, PartialEq)]
enum Failure {
    Refused,
    Other(String),
}

/// Requests in a loop on a thread until stopped: the pids that answered, and the failures.
struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<i32>, Vec<Failure>)>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut pids, mut failures) = (Vec::new(), Vec::new());
            while !flag.load(Ordering::Relaxed) {
                match get(port) {
                    Ok(pid) => pids.push(pid),
                    Err(f) => failures.push(f),
                }
            }
            (pids, failures)
        });
        Load { stop, thread }
    }

    fn finish(self) -> (Vec<i32>, Vec<Failure>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the client thread")
    }
}

/// `runs/PID` of a run: one line per descriptor (`fd name family type inode`) and `env …`.
fn run_record(p: &Project, pid: i32) -> Vec<String> {
    let rel = format!("runs/{pid}");
    assert!(
        wait_for(secs(10), || p.file(&rel).exists()),
        "run {pid} recorded nothing"
    );
    p.lines(&rel)
}

fn inode(line: &str) -> String {
    line.split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn passes_the_socket_as_fd_3_with_listen_pid_and_keeps_it_across_restarts() {
    let port = free_port();
    let p = project(&format!(r#"["tcp:127.0.0.1:{port}"]"#), "");
    let _d = p.up_detached(&[]);
    let first = p.running_pid("web", secs(10));
    assert_eq!(get(port), Ok(first));
    let record = run_record(&p, first);
    // AF_INET = 2, SOCK_STREAM = 1; the default name is the service's.
    assert_eq!(record[0].rsplit_once(' ').unwrap().0, "3 web 2 1");

    let load = Load::start(port);
    for _ in 0..3 {
        let old = p.running_pid("web", secs(10));
        p.ctl_ok(&["restart", "web"]);
        p.wait_new_pid_of("web", old);
    }
    let (pids, failures) = load.finish();
    assert_eq!(failures, [], "no request failed across three restarts");
    let mut distinct = pids.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 2,
        "answers came from several runs: {distinct:?}"
    );
    let last = p.running_pid("web", secs(10));
    assert_eq!(
        inode(&run_record(&p, last)[0]),
        inode(&record[0]),
        "every run got the same socket"
    );
}

#[test]
fn an_env_changing_reload_and_a_kill_9_refuse_no_connection() {
    let port = free_port();
    let p = project(
        &format!(r#"["tcp:127.0.0.1:{port}"]"#),
        r#"env = { GENERATION = "1" }"#,
    );
    let _d = p.up_detached(&["--no-watch"]);
    let first = p.running_pid("web", secs(10));
    assert_eq!(get(port), Ok(first));

    let load = Load::start(port);
    p.config(
        &std::fs::read_to_string(p.file("services.toml"))
            .unwrap()
            .replace(r#"GENERATION = "1""#, r#"GENERATION = "2""#),
    );
    let plan = p.ctl_ok(&["reload"]);
    assert!(plan.contains("web"), "{plan}");
    let second = p.wait_new_pid_of("web", first);
    assert!(run_record(&p, second).contains(&"env 2".to_owned()));
    let (pids, failures) = load.finish();
    assert_eq!(failures, [], "no request failed across the reload");
    assert!(pids.contains(&second));

    // kill -9: a request in flight at that moment dies with the process; nothing is refused,
    // and whatever waited in the backlog is answered by the next run.
    let load = Load::start(port);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(second), Signal::SIGKILL).unwrap();
    let third = p.wait_new_pid_of("web", second);
    assert!(wait_for(secs(10), || get(port) == Ok(third)));
    let (_, failures) = load.finish();
    let refused = failures.iter().filter(|f| **f == Failure::Refused).count();
    assert_eq!(
        refused, 0,
        "no connection refused after kill -9: {failures:?}"
    );
    assert!(
        failures.len() <= 1,
        "at most the request in flight died: {failures:?}"
    );
}

#[test]
fn unix_udp_and_ipv6_sockets_arrive_in_order_with_their_names() {
    let port = free_port();
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let v6 = if ipv6 {
        format!(r#", "tcp:[::1]:{port}""#)
    } else {
        String::new()
    };
    let p = project(
        &format!(
            r#"["tcp:127.0.0.1:{port}", {{ address = "unix:run/app.sock", name = "control", mode = "0660", backlog = 8 }}, "udp:127.0.0.1:{port}"{v6}]"#
        ),
        "",
    );
    let _d = p.up_detached(&[]);
    let pid = p.running_pid("web", secs(10));
    let record = run_record(&p, pid);
    let fields: Vec<String> = record
        .iter()
        .filter(|l| !l.starts_with("env"))
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .collect();
    // AF_UNIX = 1, AF_INET6 = 10; SOCK_DGRAM = 2.
    let mut expected = vec!["3 web 2 1", "4 control 1 1", "5 web 2 2"];
    if ipv6 {
        expected.push("6 web 10 1");
    }
    assert_eq!(fields, expected);
    // The unix socket sits relative to the config, with its mode, and accepts.
    let path = p.file("run/app.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o660
    );
    std::os::unix::net::UnixStream::connect(&path).unwrap();
    if ipv6 {
        // IPv6-only: the [::1] socket is not also the IPv4 one (they share the port).
        TcpStream::connect(("::1", port)).unwrap();
    }
}

#[test]
fn a_reload_that_changes_listen_binds_only_the_difference() {
    let (a, b) = (free_port(), free_port());
    let p = project(&format!(r#"["tcp:127.0.0.1:{a}"]"#), "");
    let _d = p.up_detached(&["--no-watch"]);
    let first = p.running_pid("web", secs(10));
    let kept = inode(&run_record(&p, first)[0]);
    p.config(
        &std::fs::read_to_string(p.file("services.toml"))
            .unwrap()
            .replace(
                &format!(r#"["tcp:127.0.0.1:{a}"]"#),
                &format!(
                    r#"["tcp:127.0.0.1:{a}", {{ address = "tcp:127.0.0.1:{b}", name = "admin" }}]"#
                ),
            ),
    );
    let plan = p.ctl_ok(&["reload"]);
    assert!(plan.contains("listen"), "{plan}");
    let second = p.wait_new_pid_of("web", first);
    let record = run_record(&p, second);
    assert_eq!(inode(&record[0]), kept, "the kept address kept its socket");
    assert!(record[1].starts_with("4 admin 2 1"), "{record:?}");
    assert!(port_open(b));
}

#[test]
fn a_taken_port_fails_the_service_naming_the_address_and_its_holder() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let p = project(
        &format!(r#"["tcp:127.0.0.1:{port}"]"#),
        r#"max_restarts = 0"#,
    );
    let _d = p.up_detached_failing(&[]);
    let s = p.wait_status("web", "failed", secs(10));
    let text = s.to_string();
    assert!(text.contains(&format!("tcp:127.0.0.1:{port}")), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "names the holder (this test): {text}"
    );
}

#[test]
fn listen_with_user_switch_passes_the_socket_to_the_other_user() {
    if !need_root("switching to user nobody") {
        return;
    }
    let port = free_port();
    let p = project(
        &format!(r#"["tcp:127.0.0.1:{port}"]"#),
        r#"user = "nobody""#,
    );
    // The system's Python: one under root's home would not be reachable for nobody.
    let config = std::fs::read_to_string(p.file("services.toml")).unwrap();
    p.config(&config.replace(r#"["python3","#, r#"["/usr/bin/python3","#));
    // nobody must be able to read the script and write its records.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let _d = p.up_detached(&[]);
    let pid = p.running_pid("web", secs(10));
    assert_eq!(get(port), Ok(pid));
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned());
    assert_eq!(uid.as_deref(), Some("65534"));
}

fn gunicorn() -> Option<PathBuf> {
    let venv = std::env::var_os("RUNPM_CI_VENV").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/runpm-ci-venv"),
        PathBuf::from,
    );
    let bin = venv.join("bin/gunicorn");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("RUNPM_SKIP_SYSTEM_PACKAGES").is_some(),
        "gunicorn is needed in {venv:?}: run `bash .ci/run`, which makes that virtualenv \
         (or set RUNPM_SKIP_SYSTEM_PACKAGES=1)"
    );
    None
}

#[test]
fn gunicorn_serves_from_the_passed_socket_through_restarts() {
    let Some(gunicorn) = gunicorn() else { return };
    let port = free_port();
    let p = Project::new(secs(120));
    p.write(
        "app.py",
        "import os\ndef app(environ, start):\n    start('200 OK', [('Content-Type', 'text/plain')])\n    return [b'%d\\n' % os.getppid()]\n",
    );
    p.config(&format!(
        r#"
[services.web]
cmd = ["{gunicorn}", "--workers", "1", "app:app"]
listen = ["tcp:127.0.0.1:{port}"]
"#,
        gunicorn = gunicorn.display()
    ));
    let _d = p.up_detached(&[]);
    let first = p.running_pid("web", secs(20));
    assert!(
        wait_for(secs(20), || get(port) == Ok(first)),
        "gunicorn answers"
    );
    let load = Load::start(port);
    p.ctl_ok(&["restart", "web"]);
    let second = p.wait_new_pid_of("web", first);
    assert!(wait_for(secs(20), || get(port) == Ok(second)));
    let (_, failures) = load.finish();
    let refused = failures.iter().filter(|f| **f == Failure::Refused).count();
    assert_eq!(refused, 0, "{failures:?}");
}

impl ProjectExt for Project {
    fn wait_new_pid_of(&self, name: &str, old: i32) -> i32 {
        wait_for_some(secs(20), || {
            let s = self.try_service(name)?;
            let pid = s["pid"].as_i64()? as i32;
            (pid != old && s["status"] == "running").then_some(pid)
        })
        .unwrap_or_else(|| panic!("{name} never ran again after pid {old}"))
    }
}

trait ProjectExt {
    fn wait_new_pid_of(&self, name: &str, old: i32) -> i32;
}

/// A prefix `N` such that ports `N0` and `N1` are both free now.
fn free_port_pair() -> u16 {
    (2000u16..6000)
        .find(|n| {
            std::net::TcpListener::bind(("127.0.0.1", n * 10)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", n * 10 + 1)).is_ok()
        })
        .expect("two free ports")
}

#[test]
fn each_replica_gets_its_own_socket_from_replica_in_listen() {
    let prefix = free_port_pair();
    let p = Project::new(secs(120));
    p.write("server.py", SERVER);
    p.config(&format!(
        r#"
[services.web]
cmd = ["python3", "server.py"]
listen = ["tcp:127.0.0.1:{prefix}{{replica}}"]
replicas = 2
"#
    ));
    let _daemon = p.up_detached(&["--no-watch"]);
    let first = p.running_pid("web.0", secs(20));
    let second = p.running_pid("web.1", secs(20));
    assert_ne!(first, second);
    // Each replica answers on its own port, from the socket runpm bound for it.
    assert_eq!(get(prefix * 10), Ok(first));
    assert_eq!(get(prefix * 10 + 1), Ok(second));
}

#[test]
fn replica_in_listen_without_replicas_is_refused() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.web]
cmd = ["sleep", "100"]
listen = ["tcp:127.0.0.1:80{replica}"]
"#,
    );
    let out = p.run(&["validate", "-f", "services.toml"], secs(10));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("`{replica}` in `listen` needs `replicas`"),
        "{}",
        out.stderr
    );
}
