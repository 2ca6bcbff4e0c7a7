//! `examples/container`: runpm as PID 1 of a container image. No container engine runs here,
//! so the tests run the image's entrypoint on the example's own `services.toml` in a new PID
//! namespace, the part of a container that matters to an init:
//!
//! ```text
//! unshare --pid --fork --mount-proc --kill-child runpm up -f examples/container/services.toml
//! ```
//!
//! and check what `examples/container/README.md` promises: orphans are reaped (no zombies in
//! the namespace), SIGTERM to PID 1 (what `docker stop` sends) stops everything within
//! docker's default grace period of 10 s, and the exit code is 0 after a clean stop, or the
//! failing service's code when `exit_when = "any-failed"` ends the container.
//!
//! The namespace needs root (CI runs as root). Without root these tests fail with a clear
//! message, unless `RUNPM_SKIP_ROOT_TESTS=1` asks to skip them: no silent skips.

mod common;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `docker stop`'s default grace period between SIGTERM and SIGKILL.
const DOCKER_GRACE: Duration = Duration::from_secs(10);

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/container")
}

/// The image's entrypoint in a new PID namespace, on the example's config, with the state
/// directory in the project (the config's `/run/runpm` is the image's).
fn start_container(p: &Project, env: &[(&str, &str)]) -> Runpm {
    let config = example().join("services.toml");
    let state = p.file("state");
    let args: Vec<OsString> = vec![
        "up".into(),
        "-f".into(),
        config.into(),
        "--state-dir".into(),
        state.into(),
    ];
    let mut cmd = p.as_pid1(args);
    // Only what the test sets: the config's MIGRATE_EXIT hook must not leak in.
    cmd.env_remove("MIGRATE_EXIT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Runpm::start(cmd)
}

/// The number in the last `app | handled N requests` line of runpm's stdout.
fn handled(runpm: &Runpm) -> u64 {
    runpm
        .stdout()
        .lines()
        .rev()
        .find_map(|l| l.split("handled ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Waits until the app has handled at least `n` requests (each one leaves an orphan).
fn wait_handled(runpm: &Runpm, n: u64, timeout: Duration) {
    assert!(
        wait_for(timeout, || handled(runpm) >= n),
        "the app did not handle {n} requests within {timeout:?}\n{}",
        runpm.describe()
    );
}

#[test]
fn the_example_config_fits_docker_stop() {
    // Pure checks of the example's promises, which the other tests rely on; no root needed.
    let text = std::fs::read_to_string(example().join("services.toml")).expect("services.toml");
    let config: toml::Table = text.parse().expect("services.toml is TOML");
    let runpm = config["runpm"].as_table().expect("[runpm]");
    let timeout = humantime::parse_duration(
        runpm["shutdown_timeout"]
            .as_str()
            .expect("shutdown_timeout"),
    )
    .expect("a duration");
    assert!(
        timeout < DOCKER_GRACE,
        "shutdown_timeout ({timeout:?}) must stay below docker stop's grace period"
    );
    assert_eq!(runpm["exit_when"].as_str(), Some("any-failed"));

    let dockerfile = std::fs::read_to_string(example().join("Dockerfile"))
        .expect("examples/container/Dockerfile");
    for line in [
        r#"ENTRYPOINT ["runpm", "up", "-f", "/etc/runpm/services.toml"]"#,
        "STOPSIGNAL SIGTERM",
        "COPY examples/container/services.toml /etc/runpm/services.toml",
        "FROM debian:bookworm-slim",
    ] {
        assert!(
            dockerfile.lines().any(|l| l.trim() == line),
            "the Dockerfile should have `{line}`"
        );
    }
    // The build stage uses the crate's minimum Rust version.
    let manifest: toml::Table =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml")
            .parse()
            .expect("Cargo.toml is TOML");
    let rust = manifest["package"]["rust-version"]
        .as_str()
        .expect("rust-version");
    assert!(
        dockerfile.contains(&format!("FROM rust:{rust}-slim-bookworm AS build")),
        "the build stage should use rust:{rust}"
    );
}

#[test]
fn container_reaps_orphans_and_stops_cleanly_on_sigterm() {
    if !need_pid1() {
        return;
    }
    let p = Project::new(secs(60));
    let mut unshare = start_container(&p, &[]);
    let runpm = unshare.unshared_runpm_pid(secs(5));
    assert_eq!(
        ns_pids(runpm).last(),
        Some(&1),
        "runpm should be PID 1 of its namespace"
    );
    let ns = pid_ns(runpm).expect("runpm's pid namespace");

    // The one-shot ran first and succeeded; the app starts only after it said so.
    unshare.wait_for_event("migrate", "exited with code 0", secs(10));
    unshare.wait_for_event("app", "started", secs(5));
    // Succeeded: it printed its success line (its `ready` check), or it exited 0 before
    // runpm read that line.
    let err = unshare.stderr();
    let succeeded = [
        event_index(&err, "migrate", "ready after"),
        event_index(&err, "migrate", "exited with code 0"),
    ]
    .into_iter()
    .flatten()
    .min()
    .expect("migrate succeeded");
    let app = event_index(&err, "app", "started").expect("app started");
    assert!(
        succeeded < app,
        "app starts once migrate has succeeded\n{err}"
    );
    unshare.wait_for_event("worker", "started", secs(5));

    // The app's helpers are orphans re-parented to PID 1 (seen from the host: their parent
    // is runpm's host pid).
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

    // No zombies pile up: after 100 orphans only a few can be zombies at any moment (ended,
    // not reaped yet), and each of those is gone once 50 more requests were handled.
    wait_handled(&unshare, 100, secs(20));
    let first = zombies(pids_in_ns(&ns));
    assert!(
        first.len() < 10,
        "{} zombies after 100 orphans: orphans are not reaped: {first:?}\n{}",
        first.len(),
        unshare.describe()
    );
    wait_handled(&unshare, 150, secs(20));
    let left: Vec<Identity> = first.into_iter().filter(|&z| still_zombie(z)).collect();
    assert!(left.is_empty(), "zombies not reaped: {left:?}");

    // `docker stop`: SIGTERM to PID 1 (by its host pid: `unshare` itself ignores SIGTERM).
    let sent = Instant::now();
    kill(Pid::from_raw(runpm), Signal::SIGTERM).expect("SIGTERM to runpm");
    unshare.assert_exit_code(DOCKER_GRACE, 0);
    let took = sent.elapsed();
    assert!(
        took < DOCKER_GRACE,
        "the stop took {took:?}, longer than docker's grace period"
    );
    // The worker stopped gracefully (its SIGTERM trap ran to the end), before the app it
    // depends on.
    let out = unshare.stdout();
    assert!(
        out.contains("worker  | worker done"),
        "the worker finished its job on SIGTERM\n{}",
        unshare.describe()
    );
    let err = unshare.stderr();
    let at = |name: &str, word: &str| {
        event_index(&err, name, word)
            .unwrap_or_else(|| panic!("no `{name}` event with {word:?}\n{err}"))
    };
    assert!(at("worker", "stopped") < at("app", "stopping"), "{err}");
    assert!(
        wait_for(secs(2), || pids_in_ns(&ns).is_empty()),
        "processes left in the namespace: {:?}",
        pids_in_ns(&ns)
    );
}

#[test]
fn container_exits_with_the_failed_one_shot_code() {
    if !need_pid1() {
        return;
    }
    let p = Project::new(secs(30));
    // A failed migration (the config's documented hook): exit_when = "any-failed" ends the
    // container with its code, and the app that depends on it never starts.
    let mut unshare = start_container(&p, &[("MIGRATE_EXIT", "3")]);
    unshare.assert_exit_code(secs(10), 3);
    unshare.wait_for_event("migrate", "exited with code 3", secs(1));
    assert!(
        unshare.events("app", "started").is_empty(),
        "app must not start after a failed migration\n{}",
        unshare.describe()
    );
    assert!(unshare.stdout().contains("migration failed"));
}

#[test]
fn container_exits_with_the_code_of_a_service_in_a_crash_loop() {
    if !need_pid1() {
        return;
    }
    // The same image with an app that crashes at once every time (exit 42): after
    // max_restarts failed starts it is `failed`, and runpm stops the rest and exits 42.
    let p = Project::new(secs(60));
    let text = std::fs::read_to_string(example().join("services.toml")).expect("services.toml");
    let broken = text.replacen("n=0\n", "echo 'cannot bind port 80' >&2; exit 42\n", 1);
    assert_ne!(broken, text, "the edit should change the app");
    p.write("services.toml", &broken);
    let args: Vec<OsString> = vec![
        "--pid".into(),
        "--fork".into(),
        "--mount-proc".into(),
        "--kill-child".into(),
        RUNPM.into(),
        "up".into(),
        "-f".into(),
        p.file("services.toml").into(),
        "--state-dir".into(),
        p.file("state").into(),
    ];
    let mut unshare = Runpm::start(p.program("unshare", args));
    unshare.assert_exit_code(secs(45), 42);
    unshare.wait_for_event("app", "failed", secs(1));
}
