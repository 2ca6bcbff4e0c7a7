//! runpmctl, the real binary, against the real control server with a fake supervisor behind
//! it: output formats, discovery and exit codes. (Against the real daemon: see the
//! integration tests of `runpm`.)

use std::process::{Command, Output};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};

use runpm::ipc::{
    Call, Change, ErrorKind, ExitInfo, HelloInfo, ProtocolError, ReloadResult, Reply, Request,
    ServiceInfo, StateDir, StatusResult,
};

fn service(name: &str, status: &str, pid: Option<i32>) -> ServiceInfo {
    ServiceInfo {
        name: name.into(),
        status: status.into(),
        pid,
        restarts: 0,
        since: "2024-01-01T00:00:00Z".into(),
        uptime_ms: pid.map(|_| 192_000),
        stopped_by_operator: false,
        wanted: "up".into(),
        completed: false,
        reason: None,
        next_start: None,
        status_text: None,
        waiting_for: vec![],
        dependencies: vec![],
        not_ready: None,
        exits: vec![],
        replica_of: None,
        next_run: None,
        last_run: None,
        resources: Default::default(),
    }
}

fn respond(request: Request) -> Reply {
    fn ok(value: impl serde::Serialize) -> Reply {
        Reply::ok(None, serde_json::to_value(value).unwrap())
    }
    let err = |kind, message: &str| Reply::err(None, ProtocolError::new(kind, message));
    match request {
        Request::Status { services } if services.iter().any(|s| s == "nope") => {
            err(ErrorKind::UnknownService, "no service named `nope`")
        }
        Request::Status { .. } => {
            let mut worker = service("worker", "backoff", None);
            worker.restarts = 3;
            worker.exits.push(ExitInfo {
                code: Some(1),
                signal: None,
                at: "2024-01-01T00:00:00Z".into(),
                uptime_ms: 10,
                reason: "exited".into(),
                detail: None,
                last_lines: vec![],
            });
            ok(StatusResult {
                services: vec![service("web", "running", Some(4242)), worker],
                running_from_snapshot: None,
                cgroups: None,
            })
        }
        Request::Start { services, .. } | Request::Restart { services, .. } => ok(StatusResult {
            services: services
                .iter()
                .map(|s| service(s, "running", Some(4313)))
                .collect(),
            running_from_snapshot: None,
            cgroups: None,
        }),
        Request::Stop { all, .. } => {
            assert!(all);
            ok(StatusResult {
                services: vec![service("web", "stopped", None)],
                running_from_snapshot: None,
                cgroups: None,
            })
        }
        Request::Reload { dry_run: true } => ok(ReloadResult {
            dry_run: true,
            config: "/srv/services.toml".into(),
            changes: vec![Change {
                name: "worker".into(),
                action: "restarted".into(),
                changed: vec!["cmd".into()],
            }],
            unchanged: 2,
        }),
        Request::Save | Request::Resurrect => {
            err(ErrorKind::BadRequest, "this fake daemon keeps no state")
        }
        Request::Logs { .. } => err(ErrorKind::BadRequest, "this fake daemon keeps no logs"),
        Request::Kill { .. } => err(ErrorKind::Failed, "this fake daemon has no processes"),
        Request::Events { .. } => err(ErrorKind::BadRequest, "this fake daemon has no events"),
        Request::Scale { .. } => err(ErrorKind::UnknownService, "no replicas here"),
        Request::Reexec => err(ErrorKind::Failed, "this fake daemon cannot re-execute"),
        Request::Reload { dry_run: false } => err(
            ErrorKind::InvalidConfig,
            "services.toml:3:1: unknown field `cmdd` in service `web` (did you mean `cmd`?)",
        ),
        Request::Shutdown => Reply::ok(None, Value::Null),
        Request::Hello { .. } => unreachable!("the server answers hello"),
    }
}

/// Serves `state`'s socket from a thread until the test process ends.
fn fake_daemon(state: &StateDir) {
    state.create().unwrap();
    let lock = state.lock().unwrap();
    let socket = state.socket.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (listener, _guard) = runpm::ipc::bind(&socket, &lock).unwrap();
            let (tx, mut calls) = tokio::sync::mpsc::unbounded_channel::<Call>();
            let info = HelloInfo {
                daemon_pid: 777,
                config: "/srv/services.toml".into(),
            };
            tokio::spawn(runpm::ipc::serve(listener, info, tx));
            ready_tx.send(()).unwrap();
            while let Some(call) = calls.recv().await {
                let shutdown = matches!(call.request, Request::Shutdown);
                call.replies.send(respond(call.request)).unwrap();
                if shutdown {
                    // Like the real daemon: the reply is written, then the daemon is gone
                    // and its connections close (runpmctl waits for that).
                    for _ in 0..8 {
                        tokio::task::yield_now().await;
                    }
                    break;
                }
            }
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::try_from(dir.path().canonicalize().unwrap()).unwrap();
    (dir, path)
}

fn runpmctl(cwd: &Utf8Path, args: &[&str]) -> Output {
    // A short --timeout bounds the test should the fake daemon ever hang.
    Command::new(env!("CARGO_BIN_EXE_runpmctl"))
        .args(["--timeout", "10s"])
        .args(args)
        .current_dir(cwd)
        .env_remove("RUNPM_SOCKET")
        .env_remove("RUNPM_STATE_DIR")
        .env_remove("RUNPM_FILE")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// A project with a services.toml and a fake daemon on its default socket.
fn project() -> (tempfile::TempDir, Utf8PathBuf) {
    let (guard, root) = tempdir();
    std::fs::write(
        root.join("services.toml"),
        "[services.web]\ncmd = [\"true\"]\n",
    )
    .unwrap();
    fake_daemon(&StateDir::at(root.join(".runpm")));
    (guard, root)
}

#[test]
fn status_table_and_json() {
    let (_guard, root) = project();
    let out = runpmctl(&root, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "\
NAME    STATUS   PID   UPTIME  RESTARTS  LAST-EXIT
web     running  4242  3m12s   0         -
worker  backoff  -     -       3         code 1
"
    );
    let out = runpmctl(&root, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["services"][0]["name"], "web");
    assert_eq!(json["services"][0]["pid"], 4242);
    assert_eq!(json["services"][1]["exits"][0]["code"], 1);
}

#[test]
fn a_daemon_error_is_exit_1() {
    let (_guard, root) = project();
    let out = runpmctl(&root, &["status", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(text(&out.stderr), "runpmctl: no service named `nope`\n");
}

#[test]
fn restart_prints_the_new_pids() {
    let (_guard, root) = project();
    let out = runpmctl(&root, &["restart", "worker", "web"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "worker: running (pid 4313)\nweb: running (pid 4313)\n"
    );
    let out = runpmctl(&root, &["stop", "--all", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "web: stopped\n");
}

#[test]
fn confirmations_and_exclusive_targets_are_usage_errors() {
    let (_guard, root) = project();
    for args in [
        &["stop", "--all"][..],
        &["shutdown"],
        &["stop"],
        &["start", "web", "--all"],
        &["restart"],
        &["status", "--bogus"],
    ] {
        let out = runpmctl(&root, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let out = runpmctl(&root, &["stop", "--all"]);
    assert!(text(&out.stderr).contains("--yes"), "{out:?}");
    let out = runpmctl(&root, &["shutdown", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "runpm (pid 777) shut down\n");
}

#[test]
fn reload_prints_the_plan_or_the_diagnostics() {
    let (_guard, root) = project();
    let out = runpmctl(&root, &["reload", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "dry run: nothing was changed\n~ worker restarted (cmd changed)\n= 2 unchanged\n"
    );
    let out = runpmctl(&root, &["reload", "--dry-run", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["changes"][0],
        json!({"name": "worker", "action": "restarted", "changed": ["cmd"]})
    );
    let out = runpmctl(&root, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("services.toml:3:1: unknown field `cmdd`"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
}

#[test]
fn the_daemon_is_found_from_a_subdirectory_via_socket_or_state_dir() {
    let (_guard, root) = project();
    let sub = root.join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    assert_eq!(runpmctl(&sub, &["status"]).status.code(), Some(0));
    let (_other, elsewhere) = tempdir();
    let socket = root.join(".runpm/runpm.sock");
    let out = runpmctl(&elsewhere, &["--socket", socket.as_str(), "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let state = root.join(".runpm");
    let out = runpmctl(&elsewhere, &["status", "--state-dir", state.as_str()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let config = root.join("services.toml");
    let out = runpmctl(&elsewhere, &["-f", config.as_str(), "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_long_state_dir_uses_the_short_socket_path() {
    let (_guard, root) = tempdir();
    let deep = root.join("d".repeat(60)).join("e".repeat(60));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(
        deep.join("services.toml"),
        "[runpm]\nstate_dir = \"state\"\n[services.web]\ncmd = [\"true\"]\n",
    )
    .unwrap();
    // A runtime directory of the test's own, so that no socket is left in a shared place.
    let (_rt_guard, runtime_dir) = tempdir();
    // SAFETY: nextest runs each test in its own process; no other thread reads the env yet.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir) };
    let state = StateDir::at(deep.join("state"));
    assert!(state.socket.starts_with(&runtime_dir), "{}", state.socket);
    fake_daemon(&state);
    let out = runpmctl(&deep, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn no_daemon_is_exit_3() {
    let (_guard, root) = tempdir();
    std::fs::write(
        root.join("services.toml"),
        "[services.web]\ncmd = [\"true\"]\n",
    )
    .unwrap();
    let out = runpmctl(&root, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        format!(
            "runpmctl: no runpm daemon is running for {root}/.runpm (socket {root}/.runpm/runpm.sock)\n"
        )
    );
    // A stale socket is the same.
    std::fs::create_dir(root.join(".runpm")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(root.join(".runpm/runpm.sock")).unwrap());
    assert_eq!(runpmctl(&root, &["status"]).status.code(), Some(3));
    // No config at all: no project, no daemon.
    let (_other, empty) = tempdir();
    assert_eq!(runpmctl(&empty, &["status"]).status.code(), Some(3));
}
