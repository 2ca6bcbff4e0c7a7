//! The handler driven by hand: events in, effects out, a clock that only moves when told.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal as Nix;

use super::*;
use crate::config::{Condition, ExitWhen, RestartPolicy, ServiceSpec};
use crate::ipc::ProtocolError;
use crate::process::Target;
use crate::supervisor::ProbeFailure;
use crate::supervisor::{Phase, Status};
use crate::testing::spec;

struct Harness {
    sup: Supervisor,
    cfg: Config,
    t0: Instant,
    elapsed: Duration,
    next_pid: i32,
}

fn config(specs: Vec<ServiceSpec>, settings: Settings) -> Config {
    Config {
        source: "/x/services.toml".into(),
        base_dir: "/x".into(),
        settings,
        services: specs
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect::<BTreeMap<_, _>>(),
        replicated: Default::default(),
        selection: Default::default(),
    }
}

fn dep(name: &str, deps: &[&str]) -> ServiceSpec {
    let mut s = spec(name);
    s.depends_on = deps.iter().map(|d| d.to_string()).collect();
    s
}

impl Harness {
    fn new(specs: Vec<ServiceSpec>) -> Harness {
        Harness::with_settings(specs, Settings::default())
    }

    fn with_settings(specs: Vec<ServiceSpec>, settings: Settings) -> Harness {
        let t0 = Instant::now();
        let cfg = config(specs, settings);
        let sup = Supervisor::new(&cfg, Some(ExitWhen::AllExited), Jitter::new(1));
        Harness {
            sup,
            cfg,
            t0,
            elapsed: Duration::ZERO,
            next_pid: 100,
        }
    }

    fn now(&self) -> Now {
        Now {
            at: self.t0 + self.elapsed,
            wall: SystemTime::UNIX_EPOCH + self.elapsed,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.elapsed += d;
    }

    /// Advances the clock to the next deadline and delivers the tick.
    fn tick(&mut self) -> Vec<Effect> {
        let at = self.sup.next_deadline().expect("a deadline is due");
        self.elapsed = at - self.t0;
        self.sup.handle(Event::Tick, self.now())
    }

    fn start_all(&mut self) -> Vec<Effect> {
        let now = self.now();
        self.sup.boot(&self.cfg, None, None, now)
    }

    /// Answers every spawn in `fx` with success, repeatedly, like the runtime does.
    fn settle(&mut self, mut fx: Vec<Effect>) -> Vec<Effect> {
        let mut rest = Vec::new();
        while !fx.is_empty() {
            let mut next = Vec::new();
            for e in fx {
                match e {
                    Effect::Spawn { service, .. } => {
                        self.next_pid += 1;
                        let ev = Event::Spawned {
                            service,
                            pid: self.next_pid,
                            start_time: None,
                        };
                        next.extend(self.sup.handle(ev, self.now()));
                    }
                    other => rest.push(other),
                }
            }
            fx = next;
        }
        rest
    }

    fn pid(&self, name: &str) -> i32 {
        self.sup.service(name).unwrap().pid().expect("running")
    }

    fn status(&self, name: &str) -> Status {
        self.sup.service(name).unwrap().status()
    }

    fn exit(&mut self, name: &str, status: ExitStatus) -> Vec<Effect> {
        let pid = self.pid(name);
        self.sup
            .handle(Event::ChildExited { pid, status }, self.now())
    }
}

/// `name` with a TCP health check every 10 s (1 s to answer) that restarts it after
/// `retries` failures in a row.
fn tcp_health(name: &str, retries: u32) -> ServiceSpec {
    let mut s = spec(name);
    s.health = Some(Health {
        probe: Probe::Tcp("127.0.0.1:80".into()),
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        retries,
    });
    s
}

fn spawned(fx: &[Effect]) -> Vec<&str> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Spawn { service, .. } => Some(service.as_str()),
            _ => None,
        })
        .collect()
}

/// The signals sent, apart from the SIGCONT that follows every stop signal (tested on its
/// own in `every_stop_signal_is_followed_by_sigcont`).
fn signals(fx: &[Effect]) -> Vec<(&str, Target, Nix)> {
    all_signals(fx)
        .into_iter()
        .filter(|(_, _, signal)| *signal != Nix::SIGCONT)
        .collect()
}

fn all_signals(fx: &[Effect]) -> Vec<(&str, Target, Nix)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Signal {
                service,
                target,
                signal,
            } => Some((service.as_str(), *target, signal.0)),
            _ => None,
        })
        .collect()
}

fn exit_code(fx: &[Effect]) -> Option<u8> {
    fx.iter().find_map(|e| match e {
        Effect::Exit { code } => Some(*code),
        _ => None,
    })
}

const TERM: ExitStatus = ExitStatus::Signal(15);

/// A config that failed to load, with one diagnostic at `file:line:column`.
fn invalid(file: &str, line: usize, column: usize) -> crate::config::ConfigErrors {
    crate::config::ConfigErrors {
        diagnostics: vec![crate::config::Diagnostic {
            file: file.into(),
            line: Some(line),
            column: Some(column),
            service: None,
            message: "bad".into(),
        }],
    }
}

fn not_found(program: &str) -> std::sync::Arc<crate::process::SpawnError> {
    std::sync::Arc::new(crate::process::SpawnError::NotFound {
        program: program.into(),
        cwd: "/".into(),
    })
}

fn denied(program: &str) -> std::sync::Arc<crate::process::SpawnError> {
    std::sync::Arc::new(crate::process::SpawnError::PermissionDenied {
        program: program.into(),
    })
}

#[test]
fn starts_in_dependency_order_one_layer_per_answer() {
    let mut h = Harness::new(vec![dep("c", &["b"]), dep("b", &["a"]), dep("a", &[])]);
    let fx = h.start_all();
    assert_eq!(
        spawned(&fx),
        ["a"],
        "only what has no unmet dependency starts"
    );
    assert_eq!(h.status("b"), Status::Starting);
    let fx = h.sup.handle(
        Event::Spawned {
            service: "a".into(),
            pid: 10,
            start_time: None,
        },
        h.now(),
    );
    assert_eq!(spawned(&fx), ["b"]);
    let fx = h.sup.handle(
        Event::Spawned {
            service: "b".into(),
            pid: 11,
            start_time: None,
        },
        h.now(),
    );
    assert_eq!(spawned(&fx), ["c"]);
}

#[test]
fn a_completed_task_keeps_satisfying_its_dependents() {
    let mut task = spec("migrate");
    task.restart = RestartPolicy::Never;
    let mut web = dep("web", &["migrate"]);
    web.restart = RestartPolicy::Always;
    web.min_uptime = Duration::ZERO;
    let mut h = Harness::new(vec![task, web]);
    let fx = h.start_all();
    assert_eq!(spawned(&fx), ["migrate"]);
    h.settle(fx);
    assert_eq!(
        h.status("web"),
        Status::Running,
        "started once the task ran"
    );
    let fx = h.exit("migrate", ExitStatus::Code(0));
    assert!(exit_code(&fx).is_none());
    assert_eq!(h.status("migrate"), Status::Exited);
    // web restarts later: the task that completed still counts, and is not run again.
    h.exit("web", ExitStatus::Code(0));
    let fx = h.tick();
    assert_eq!(spawned(&fx), ["web"]);
}

#[test]
fn a_failed_exit_backs_off_then_restarts() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let first = h.pid("a");
    h.advance(Duration::from_secs(2));
    let fx = h.exit("a", ExitStatus::Code(1));
    assert!(spawned(&fx).is_empty());
    assert_eq!(h.status("a"), Status::Backoff);
    let due = h.sup.next_deadline().unwrap() - (h.t0 + h.elapsed);
    assert!(
        due >= Duration::from_millis(100) && due <= Duration::from_millis(110),
        "{due:?}"
    );
    let fx = h.tick();
    assert_eq!(spawned(&fx), ["a"]);
    h.settle(fx);
    assert_ne!(h.pid("a"), first);
    assert_eq!(h.sup.service("a").unwrap().restarts, 1);
    assert_eq!(h.sup.service("a").unwrap().exits.len(), 1);
}

#[test]
fn a_crashing_service_does_not_hold_up_another() {
    let mut h = Harness::new(vec![spec("bad"), spec("good")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.exit("bad", ExitStatus::Code(1));
    assert!(
        fx.iter()
            .all(|e| !matches!(e, Effect::Signal { service, .. } if service == "good"))
    );
    assert_eq!(h.status("good"), Status::Running);
}

#[test]
fn a_crash_kills_what_the_main_process_left_in_its_group() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("a");
    let fx = h.exit("a", ExitStatus::Code(1));
    assert_eq!(signals(&fx), [("a", Target::Group(pid), Nix::SIGKILL)]);
}

#[test]
fn never_stays_down_and_all_exited_ends_runpm_with_its_code() {
    let mut s = spec("a");
    s.restart = RestartPolicy::Never;
    let mut h = Harness::new(vec![s, spec("b")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.exit("a", ExitStatus::Code(3));
    assert_eq!(h.status("a"), Status::Exited);
    assert_eq!(exit_code(&fx), None, "b still runs");
    let fx = h.exit("b", ExitStatus::Code(0));
    // b is on-failure: exit 0 stays down too.
    assert_eq!(h.status("b"), Status::Exited);
    assert_eq!(exit_code(&fx), Some(3));
}

#[test]
fn a_crash_loop_ends_in_failed_and_any_failed_exits_with_its_code() {
    let mut s = spec("a");
    s.restart = RestartPolicy::Always;
    s.max_restarts = 2;
    s.restart_delay = Duration::ZERO;
    let settings = Settings {
        exit_when: Some(ExitWhen::AnyFailed),
        ..Settings::default()
    };
    let mut h = Harness::with_settings(vec![s, spec("other")], settings);
    let fx = h.start_all();
    h.settle(fx);
    for _ in 0..2 {
        // No delay: the restart is spawned in the same turn as the exit, with no timer.
        let fx = h.exit("a", ExitStatus::Code(4));
        assert_eq!(spawned(&fx), ["a"]);
        h.settle(fx);
    }
    let fx = h.exit("a", ExitStatus::Code(4));
    assert_eq!(h.status("a"), Status::Failed);
    assert_eq!(h.sup.service("a").unwrap().restarts, 2);
    // The rest is stopped before runpm exits.
    let other = h.pid("other");
    assert_eq!(
        signals(&fx).last(),
        Some(&("other", Target::Group(other), Nix::SIGTERM))
    );
    h.exit("other", TERM);
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "other".into(),
            pgid: other,
        },
        h.now(),
    );
    assert_eq!(h.status("other"), Status::Stopped);
    assert_eq!(exit_code(&fx), Some(4));
}

#[test]
fn terminate_stops_in_reverse_dependency_order_and_exits_zero() {
    let mut h = Harness::new(vec![dep("a", &[]), dep("b", &["a"]), dep("c", &["b"])]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    let c = h.pid("c");
    assert_eq!(signals(&fx), [("c", Target::Group(c), Nix::SIGTERM)]);
    assert_eq!(h.status("b"), Status::Running, "b waits for c");
    let fx = h.exit("c", TERM);
    assert_eq!(
        fx,
        vec![Effect::CheckGroup {
            service: "c".into(),
            pgid: c
        }]
    );
    assert_eq!(h.status("c"), Status::Stopping, "until the group is empty");
    let b = h.pid("b");
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "c".into(),
            pgid: c,
        },
        h.now(),
    );
    assert_eq!(signals(&fx), [("b", Target::Group(b), Nix::SIGTERM)]);
    let fx = h.exit("b", ExitStatus::Code(0));
    let fx2 = h.sup.handle(
        Event::GroupEmpty {
            service: "b".into(),
            pgid: b,
        },
        h.now(),
    );
    assert!(fx.iter().all(|e| matches!(e, Effect::CheckGroup { .. })));
    let a = h.pid("a");
    assert_eq!(signals(&fx2), [("a", Target::Group(a), Nix::SIGTERM)]);
    h.exit("a", TERM);
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "a".into(),
            pgid: a,
        },
        h.now(),
    );
    assert_eq!(exit_code(&fx), Some(0));
    assert!(
        ["a", "b", "c"]
            .iter()
            .all(|n| h.status(n) == Status::Stopped)
    );
}

#[test]
fn kill_timeout_escalates_to_sigkill_and_the_exit_code_tells() {
    let mut s = spec("stubborn");
    s.kill_timeout = Duration::from_millis(300);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("stubborn");
    let _ = h.sup.handle(Event::Terminate { signal: "SIGINT" }, h.now());
    assert_eq!(
        h.sup.next_deadline(),
        Some(h.t0 + Duration::from_millis(300))
    );
    let fx = h.tick();
    assert_eq!(
        signals(&fx),
        [("stubborn", Target::Group(pid), Nix::SIGKILL)]
    );
    let fx = h.exit("stubborn", ExitStatus::Signal(9));
    assert_eq!(exit_code(&fx), Some(137));
}

#[test]
fn a_lingering_group_is_killed_at_the_deadline() {
    let mut s = spec("a");
    s.kill_timeout = Duration::from_secs(1);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("a");
    let _ = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    let fx = h.exit("a", TERM);
    assert_eq!(
        fx,
        vec![Effect::CheckGroup {
            service: "a".into(),
            pgid: pid
        }]
    );
    // The group is not empty (no answer): nothing happens until the deadline.
    let fx = h.tick();
    assert_eq!(signals(&fx), [("a", Target::Group(pid), Nix::SIGKILL)]);
    assert_eq!(
        exit_code(&fx),
        Some(143),
        "forced: not clean, reported with the main exit"
    );
}

#[test]
fn a_second_terminate_kills_at_once() {
    let mut s = spec("a");
    s.kill_timeout = Duration::from_secs(60);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("a");
    let _ = h.sup.handle(Event::Terminate { signal: "SIGINT" }, h.now());
    h.advance(super::stop::SAME_SIGNAL);
    let fx = h.sup.handle(Event::Terminate { signal: "SIGINT" }, h.now());
    assert_eq!(signals(&fx), [("a", Target::Group(pid), Nix::SIGKILL)]);
}

#[test]
fn the_same_signal_delivered_twice_at_once_is_one_request() {
    // `timeout 600 runpm up`: one Ctrl-C arrives from the terminal and from `timeout`.
    let mut s = spec("a");
    s.kill_timeout = Duration::from_secs(60);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let _ = h.sup.handle(Event::Terminate { signal: "SIGINT" }, h.now());
    h.advance(Duration::from_millis(1));
    let fx = h.sup.handle(Event::Terminate { signal: "SIGINT" }, h.now());
    assert!(signals(&fx).is_empty(), "no SIGKILL: {fx:?}");
    let fx = h.exit("a", TERM);
    assert!(
        fx.iter().any(|e| matches!(e, Effect::CheckGroup { .. })),
        "{fx:?}"
    );
}

#[test]
fn shutdown_timeout_kills_services_still_waiting_for_dependents() {
    let mut b = dep("b", &["a"]);
    b.kill_timeout = Duration::from_secs(60);
    let settings = Settings {
        shutdown_timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    let mut h = Harness::with_settings(vec![spec("a"), b], settings);
    let fx = h.start_all();
    h.settle(fx);
    let (a, b) = (h.pid("a"), h.pid("b"));
    let _ = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    let fx = h.tick();
    assert_eq!(h.elapsed, Duration::from_secs(5));
    let mut got = signals(&fx);
    got.sort_by_key(|(n, ..)| n.to_string());
    assert_eq!(
        got,
        [
            ("a", Target::Group(a), Nix::SIGKILL),
            ("b", Target::Group(b), Nix::SIGKILL)
        ]
    );
}

#[test]
fn process_kill_mode_signals_only_the_main_process() {
    let mut s = spec("a");
    s.kill_mode = KillMode::Process;
    s.stop_signal = Signal(Nix::SIGINT);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("a");
    let fx = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    assert_eq!(signals(&fx), [("a", Target::Process(pid), Nix::SIGINT)]);
    let fx = h.exit("a", ExitStatus::Signal(2));
    assert_eq!(
        exit_code(&fx),
        Some(0),
        "ended by its own stop signal: clean"
    );
}

#[test]
fn a_spawn_failure_fails_that_service_only() {
    let mut h = Harness::new(vec![spec("broken"), spec("fine")]);
    let fx = h.start_all();
    assert_eq!(spawned(&fx), ["broken", "fine"]);
    let ev = Event::SpawnFailed {
        service: "broken".into(),
        error: not_found("x"),
    };
    let fx = h.sup.handle(ev, h.now());
    assert!(exit_code(&fx).is_none());
    assert_eq!(h.status("broken"), Status::Failed);
    let _ = h.sup.handle(
        Event::Spawned {
            service: "fine".into(),
            pid: 50,
            start_time: None,
        },
        h.now(),
    );
    assert_eq!(h.status("fine"), Status::Running);
    let _ = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    h.exit("fine", TERM);
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "fine".into(),
            pgid: 50,
        },
        h.now(),
    );
    assert_eq!(
        exit_code(&fx),
        Some(127),
        "a failed service makes the exit code"
    );
}

#[test]
fn shutdown_drops_backoff_at_once_and_stops_a_spawn_in_flight() {
    let mut h = Harness::new(vec![spec("a"), dep("b", &["a"])]);
    let fx = h.start_all();
    assert_eq!(spawned(&fx), ["a"]);
    let fx = h.sup.handle(
        Event::Spawned {
            service: "a".into(),
            pid: 7,
            start_time: None,
        },
        h.now(),
    );
    assert_eq!(spawned(&fx), ["b"], "spawn of b issued, not yet answered");
    let _ = h.sup.handle(
        Event::ChildExited {
            pid: 7,
            status: ExitStatus::Code(1),
        },
        h.now(),
    );
    let fx = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    assert!(signals(&fx).is_empty());
    assert_eq!(
        (h.status("a"), h.status("b")),
        (Status::Stopped, Status::Starting)
    );
    let fx = h.sup.handle(
        Event::Spawned {
            service: "b".into(),
            pid: 8,
            start_time: None,
        },
        h.now(),
    );
    assert_eq!(
        signals(&fx),
        [("b", Target::Group(8), Nix::SIGTERM)],
        "stopped as soon as it exists"
    );
    let _ = h.sup.handle(
        Event::ChildExited {
            pid: 8,
            status: TERM,
        },
        h.now(),
    );
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "b".into(),
            pgid: 8,
        },
        h.now(),
    );
    assert_eq!(
        exit_code(&fx),
        Some(0),
        "a crash that was going to be restarted is not a failure"
    );
}

#[test]
fn all_exited_counts_a_service_blocked_by_a_failed_dependency() {
    let mut a = spec("a");
    a.failed_cooldown = Duration::ZERO;
    let mut h = Harness::new(vec![a, dep("b", &["a"])]);
    let fx = h.start_all();
    let ev = Event::SpawnFailed {
        service: "a".into(),
        error: denied("x"),
    };
    assert_eq!(spawned(&fx), ["a"]);
    let fx = h.sup.handle(ev, h.now());
    assert_eq!(exit_code(&fx), Some(126), "nothing is left that could run");
}

#[test]
fn idle_has_no_deadline() {
    let mut h = Harness::new((0..100).map(|i| spec(&format!("s{i}"))).collect());
    let fx = h.start_all();
    h.settle(fx);
    assert_eq!(h.sup.next_deadline(), None);
}

#[test]
fn orphans_are_ignored_but_recheck_lingering_groups() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("a");
    let fx = h.sup.handle(
        Event::ChildExited {
            pid: 9999,
            status: ExitStatus::Code(0),
        },
        h.now(),
    );
    assert!(fx.is_empty());
    let _ = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    h.exit("a", TERM);
    let fx = h.sup.handle(
        Event::ChildExited {
            pid: 9998,
            status: ExitStatus::Code(0),
        },
        h.now(),
    );
    assert_eq!(
        fx,
        vec![Effect::CheckGroup {
            service: "a".into(),
            pgid: pid
        }]
    );
}

#[test]
fn exit_when_names_a_service() {
    let mut task = spec("task");
    task.restart = RestartPolicy::Never;
    let settings = Settings {
        exit_when: Some(ExitWhen::Services(vec!["task".into()])),
        ..Settings::default()
    };
    let mut h = Harness::with_settings(vec![task, spec("web")], settings);
    let fx = h.start_all();
    h.settle(fx);
    let web = h.pid("web");
    let task = h.pid("task");
    let fx = h.exit("task", ExitStatus::Code(0));
    assert_eq!(
        signals(&fx),
        [
            ("task", Target::Group(task), Nix::SIGKILL),
            ("web", Target::Group(web), Nix::SIGTERM)
        ],
        "the task's leftovers, then the rest"
    );
    h.exit("web", TERM);
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "web".into(),
            pgid: web,
        },
        h.now(),
    );
    assert_eq!(exit_code(&fx), Some(0));
}

#[test]
fn boot_defines_every_service_and_starts_only_the_selection() {
    let mut off = spec("off");
    off.autostart = false;
    let mut h = Harness::new(vec![spec("a"), dep("b", &["a"]), spec("c"), off]);
    let now = h.now();
    let cfg = h.cfg.clone();
    let fx = h.sup.boot(&cfg, Some(&["b".to_string()]), None, now);
    assert_eq!(spawned(&fx), ["a"]);
    assert_eq!(h.status("c"), Status::Stopped);
    assert_eq!(h.status("off"), Status::Stopped);
    assert!(matches!(
        h.sup.service("off").unwrap().phase,
        Phase::Stopped
    ));
}

// ---- operator requests and reload ----------------------------------------------------

use crate::ipc::{ErrorKind, Request};

fn reply(fx: &[Effect], token: u64) -> Option<Result<serde_json::Value, ProtocolError>> {
    fx.iter().find_map(|e| match e {
        Effect::Reply { token: t, reply } if *t == token => Some(reply.clone().map(|response| {
            let json = response.to_json().expect("the reply serialises");
            json.decode().expect("the reply is JSON")
        })),
        _ => None,
    })
}

fn pids_in(value: &serde_json::Value) -> Vec<i64> {
    value["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["pid"].as_i64())
        .collect()
}

impl Harness {
    fn request(&mut self, token: u64, request: Request) -> Vec<Effect> {
        self.sup
            .handle(Event::Request { token, request }, self.now())
    }

    fn reload(&mut self, token: u64, specs: Vec<ServiceSpec>, dry_run: bool) -> Vec<Effect> {
        let cfg = config(specs, Settings::default());
        self.sup.handle(
            Event::ConfigLoaded {
                token: Some(token),
                dry_run,
                result: Ok(cfg),
            },
            self.now(),
        )
    }

    /// Answers stop signals as a well-behaved process would: it exits, its group empties.
    fn obey(&mut self, fx: Vec<Effect>) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut queue = self.settle(fx);
        while !queue.is_empty() {
            let mut next = Vec::new();
            for e in queue {
                match e {
                    Effect::Signal {
                        target: Target::Group(pid),
                        signal,
                        ..
                    } if ![Nix::SIGKILL, Nix::SIGCONT].contains(&signal.0) => {
                        let fx = self
                            .sup
                            .handle(Event::ChildExited { pid, status: TERM }, self.now());
                        next.extend(self.settle(fx));
                    }
                    Effect::CheckGroup { service, pgid } => {
                        let fx = self
                            .sup
                            .handle(Event::GroupEmpty { service, pgid }, self.now());
                        next.extend(self.settle(fx));
                    }
                    other => out.push(other),
                }
            }
            queue = next;
        }
        out
    }
}

#[test]
fn status_of_an_unknown_service_is_an_error_reply_with_the_token() {
    let mut h = Harness::new(vec![spec("web")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.request(
        7,
        Request::Status {
            services: vec!["wbe".into()],
        },
    );
    let err = reply(&fx, 7).unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownService);
    assert!(
        err.message.contains("wbe") && err.message.contains("web"),
        "{}",
        err.message
    );
    let fx = h.request(8, Request::Status { services: vec![] });
    let ok = reply(&fx, 8).unwrap().unwrap();
    assert_eq!(ok["services"][0]["name"], "web");
    assert_eq!(ok["services"][0]["status"], "running");
}

#[test]
fn restart_replies_once_the_new_process_runs() {
    let mut h = Harness::new(vec![spec("worker")]);
    let fx = h.start_all();
    h.settle(fx);
    let old = h.pid("worker");
    h.advance(Duration::from_secs(1));
    let fx = h.request(
        1,
        Request::Restart {
            services: vec!["worker".into()],
            all: false,
        },
    );
    assert!(
        reply(&fx, 1).is_none(),
        "no reply before the restart is done"
    );
    assert_eq!(signals(&fx), [("worker", Target::Group(old), Nix::SIGTERM)]);
    let fx = h.obey(fx);
    let ok = reply(&fx, 1).expect("replied").unwrap();
    let new = h.pid("worker");
    assert_ne!(new, old);
    assert_eq!(pids_in(&ok), [i64::from(new)]);
}

#[test]
fn stop_is_remembered_across_a_reload() {
    let mut h = Harness::new(vec![spec("web"), spec("worker")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.request(
        1,
        Request::Stop {
            services: vec!["web".into()],
            all: false,
        },
    );
    let fx = h.obey(fx);
    assert!(reply(&fx, 1).unwrap().is_ok());
    assert_eq!(h.status("web"), Status::Stopped);
    let mut worker = spec("worker");
    worker.env.insert("X".into(), "1".into());
    let fx = h.reload(2, vec![spec("web"), worker], false);
    let fx = h.obey(fx);
    let plan = reply(&fx, 2).unwrap().unwrap();
    assert_eq!(plan["changes"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["changes"][0]["name"], "worker");
    assert_eq!(
        h.status("web"),
        Status::Stopped,
        "the operator's stop stands"
    );
    assert!(h.sup.service("web").unwrap().want.by_operator());
    let fx = h.request(
        3,
        Request::Start {
            services: vec!["web".into()],
            all: false,
        },
    );
    let fx = h.obey(fx);
    assert!(reply(&fx, 3).unwrap().is_ok());
    assert_eq!(h.status("web"), Status::Running);
}

#[test]
fn reload_restarts_only_what_changed() {
    let mut h = Harness::new(vec![spec("a"), spec("b"), spec("c")]);
    let fx = h.start_all();
    h.settle(fx);
    let (a, c) = (h.pid("a"), h.pid("c"));
    let mut b = spec("b");
    b.command = crate::config::Command::Shell("exec sleep 1".into());
    let fx = h.reload(1, vec![spec("a"), b, spec("c")], false);
    let fx = h.obey(fx);
    let plan = reply(&fx, 1).unwrap().unwrap();
    assert_eq!(plan["unchanged"], 2);
    assert_eq!(plan["changes"][0]["action"], "restarted");
    assert_eq!(
        (h.pid("a"), h.pid("c")),
        (a, c),
        "unchanged services keep their pid"
    );
    assert_eq!(h.status("b"), Status::Running);
}

#[test]
fn a_dry_run_changes_nothing() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let a = h.pid("a");
    let mut changed = spec("a");
    changed.env.insert("X".into(), "1".into());
    let fx = h.reload(1, vec![changed, spec("new")], true);
    assert!(signals(&fx).is_empty() && spawned(&fx).is_empty());
    let plan = reply(&fx, 1).unwrap().unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["changes"].as_array().unwrap().len(), 2);
    assert_eq!(h.pid("a"), a);
    assert!(h.sup.service("new").is_none());
}

#[test]
fn an_invalid_config_changes_nothing_and_says_why() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let ev = Event::ConfigLoaded {
        token: Some(4),
        dry_run: false,
        result: Err(invalid("services.toml", 3, 1)),
    };
    let fx = h.sup.handle(ev, h.now());
    let err = reply(&fx, 4).unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("services.toml:3:1"));
    assert!(signals(&fx).is_empty());
    assert_eq!(h.status("a"), Status::Running);
}

#[test]
fn restarting_a_dependency_restarts_its_dependents_in_order() {
    let mut h = Harness::new(vec![spec("db"), dep("web", &["db"]), spec("other")]);
    let fx = h.start_all();
    h.settle(fx);
    let (db, web, other) = (h.pid("db"), h.pid("web"), h.pid("other"));
    let mut db2 = spec("db");
    db2.env.insert("V".into(), "2".into());
    let fx = h.reload(1, vec![db2, dep("web", &["db"]), spec("other")], false);
    assert_eq!(
        signals(&fx),
        [("web", Target::Group(web), Nix::SIGTERM)],
        "the dependent stops first"
    );
    // web has stopped: now db stops, and web waits for the new db.
    let fx = h.sup.handle(
        Event::ChildExited {
            pid: web,
            status: TERM,
        },
        h.now(),
    );
    let fx2 = h.sup.handle(
        Event::GroupEmpty {
            service: "web".into(),
            pgid: web,
        },
        h.now(),
    );
    assert!(fx.iter().all(|e| matches!(e, Effect::CheckGroup { .. })));
    assert_eq!(signals(&fx2), [("db", Target::Group(db), Nix::SIGTERM)]);
    assert!(
        spawned(&fx2).is_empty(),
        "web does not start against the old db"
    );
    let _ = h.sup.handle(
        Event::ChildExited {
            pid: db,
            status: TERM,
        },
        h.now(),
    );
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "db".into(),
            pgid: db,
        },
        h.now(),
    );
    assert_eq!(spawned(&fx), ["db"]);
    let fx = h.settle(fx);
    let plan = reply(&fx, 1).unwrap().unwrap();
    assert_eq!(plan["changes"].as_array().unwrap().len(), 2);
    assert_ne!(h.pid("db"), db);
    assert_ne!(h.pid("web"), web);
    assert_eq!(h.pid("other"), other);
}

#[test]
fn a_removed_service_is_stopped_then_forgotten() {
    let mut h = Harness::new(vec![spec("a"), spec("gone")]);
    let fx = h.start_all();
    h.settle(fx);
    let gone = h.pid("gone");
    let fx = h.reload(1, vec![spec("a")], false);
    assert_eq!(signals(&fx), [("gone", Target::Group(gone), Nix::SIGTERM)]);
    h.obey(fx);
    assert!(h.sup.service("gone").is_none());
    assert_eq!(h.status("a"), Status::Running);
}

#[test]
fn a_shutdown_request_replies_and_ends_runpm() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.request(9, Request::Shutdown);
    assert!(reply(&fx, 9).unwrap().is_ok());
    let fx = h.obey(fx);
    assert_eq!(exit_code(&fx), Some(0));
    let fx = h.request(
        10,
        Request::Start {
            services: vec!["a".into()],
            all: false,
        },
    );
    assert_eq!(
        reply(&fx, 10).unwrap().unwrap_err().kind,
        ErrorKind::ShuttingDown
    );
}

#[test]
fn an_unclean_restart_does_not_spoil_a_clean_shutdown() {
    let mut s = spec("a");
    s.kill_timeout = Duration::from_millis(100);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let old = h.pid("a");
    h.request(
        1,
        Request::Restart {
            services: vec!["a".into()],
            all: false,
        },
    );
    let fx = h.tick();
    assert_eq!(signals(&fx), [("a", Target::Group(old), Nix::SIGKILL)]);
    let fx = h.sup.handle(
        Event::ChildExited {
            pid: old,
            status: ExitStatus::Signal(9),
        },
        h.now(),
    );
    h.settle(fx);
    let fx = h.request(2, Request::Shutdown);
    let fx = h.obey(fx);
    assert_eq!(exit_code(&fx), Some(0));
}

#[test]
fn a_failed_service_rearms_after_its_cooldown() {
    let mut a = spec("a");
    a.failed_cooldown = Duration::from_secs(300);
    let mut h = Harness::new(vec![a, dep("b", &["a"])]);
    let fx = h.start_all();
    assert_eq!(spawned(&fx), ["a"]);
    let ev = Event::SpawnFailed {
        service: "a".into(),
        error: denied("x"),
    };
    let fx = h.sup.handle(ev, h.now());
    assert_eq!(exit_code(&fx), None, "a will be tried again: not the end");
    assert!(!h.sup.is_starting(), "but nothing is on its way now");
    let due = h.sup.next_deadline().unwrap();
    assert_eq!(due, h.t0 + Duration::from_secs(300));
    let fx = h.tick();
    assert_eq!(spawned(&fx), ["a"]);
    let fx = h.settle(fx);
    // Only the news of the two starts: no signal, no other effect.
    assert!(fx.iter().all(|e| matches!(e, Effect::Report(_))), "{fx:?}");
    assert_eq!(
        (h.status("a"), h.status("b")),
        (Status::Running, Status::Running)
    );
}

// ---- readiness, health, watchdog, sd_notify -------------------------------------------

use crate::config::{Health, Probe, Ready};
use crate::notify::Notification;
use crate::supervisor::Purpose;

fn probes(fx: &[Effect]) -> Vec<(&str, Purpose)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Probe {
                service, purpose, ..
            } => Some((service.as_str(), *purpose)),
            _ => None,
        })
        .collect()
}

impl Harness {
    fn probe_done(&mut self, name: &str, purpose: Purpose, ok: bool) -> Vec<Effect> {
        let pid = self.sup.service(name).unwrap().pid().unwrap();
        let ev = Event::ProbeDone {
            service: name.into(),
            pid,
            purpose,
            outcome: if ok {
                Ok(())
            } else {
                Err(ProbeFailure::Exited(ExitStatus::Code(1)))
            },
        };
        self.sup.handle(ev, self.now())
    }

    fn notify(&mut self, name: &str, notes: Vec<Notification>) -> Vec<Effect> {
        let pid = self.sup.service(name).unwrap().pid().unwrap();
        let ev = Event::Notified {
            service: name.into(),
            sender: pid,
            notifications: notes,
        };
        self.sup.handle(ev, self.now())
    }
}

#[test]
fn a_dependent_waits_for_readiness_not_for_the_spawn() {
    let mut db = spec("db");
    db.ready = Some(Ready::Tcp("127.0.0.1:5432".into()));
    let mut h = Harness::new(vec![db, dep("web", &["db"])]);
    let fx = h.start_all();
    h.settle(fx);
    assert_eq!(
        h.sup.next_deadline(),
        Some(h.t0),
        "the first probe is due at once"
    );
    let fx = h.tick();
    assert_eq!(probes(&fx), [("db", Purpose::Ready)]);
    assert_eq!(h.status("db"), Status::Starting);
    assert_eq!(h.status("web"), Status::Starting);
    assert!(
        h.sup.service("web").unwrap().pid().is_none(),
        "web is not spawned yet"
    );
    // A failed probe is retried on a timer, not in a loop.
    let fx = h.probe_done("db", Purpose::Ready, false);
    assert!(probes(&fx).is_empty());
    let fx = h.tick();
    assert_eq!(probes(&fx), [("db", Purpose::Ready)]);
    let fx = h.probe_done("db", Purpose::Ready, true);
    assert_eq!(spawned(&fx), ["web"]);
    assert_eq!(h.status("db"), Status::Running);
}

#[test]
fn a_missed_ready_timeout_fails_the_run_and_the_policy_decides() {
    let mut s = spec("slow");
    s.ready = Some(Ready::Notify);
    s.ready_timeout = Duration::from_secs(2);
    s.restart = RestartPolicy::Never;
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("slow");
    let fx = h.tick();
    assert_eq!(h.elapsed, Duration::from_secs(2));
    assert_eq!(signals(&fx), [("slow", Target::Group(pid), Nix::SIGTERM)]);
    let fx = h.obey(fx);
    assert_eq!(h.status("slow"), Status::Failed);
    match &h.sup.service("slow").unwrap().phase {
        Phase::Failed { reason, .. } => assert!(reason.contains("not ready within 2s"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let _ = fx;
}

#[test]
fn ready_timeout_under_on_failure_restarts() {
    let mut s = spec("slow");
    s.ready = Some(Ready::Log("listening".into()));
    s.ready_timeout = Duration::from_secs(1);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.tick();
    h.obey(fx);
    assert_eq!(h.status("slow"), Status::Backoff);
}

#[test]
fn notify_ready_status_and_watchdog() {
    let mut s = spec("redis");
    s.ready = Some(Ready::Notify);
    s.watchdog = Some(Duration::from_secs(3));
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    h.notify("redis", vec![Notification::Status("loading".into())]);
    assert_eq!(h.status("redis"), Status::Starting);
    h.advance(Duration::from_secs(1));
    h.notify(
        "redis",
        vec![Notification::Ready, Notification::Status("ready".into())],
    );
    assert_eq!(h.status("redis"), Status::Running);
    assert_eq!(
        h.sup.service("redis").unwrap().status_text.as_deref(),
        Some("ready")
    );
    // Pings push the deadline out; a missing ping stops the run.
    h.advance(Duration::from_secs(2));
    h.notify("redis", vec![Notification::Watchdog]);
    assert_eq!(h.sup.next_deadline(), Some(h.t0 + Duration::from_secs(6)));
    let pid = h.pid("redis");
    let fx = h.tick();
    assert_eq!(signals(&fx), [("redis", Target::Group(pid), Nix::SIGTERM)]);
}

#[test]
fn health_checks_restart_after_retries_failures() {
    let mut h = Harness::new(vec![tcp_health("web", 3)]);
    let fx = h.start_all();
    h.settle(fx);
    assert_eq!(
        h.status("web"),
        Status::Running,
        "no ready: running at once"
    );
    let pid = h.pid("web");
    for round in 1..=3 {
        let fx = h.tick();
        assert_eq!(probes(&fx), [("web", Purpose::Health)], "round {round}");
        let fx = h.probe_done("web", Purpose::Health, round == 1);
        if round < 3 {
            assert!(signals(&fx).is_empty());
        }
    }
    // Round 1 passed (resetting the count), so two failures are not three: one more.
    let fx = h.tick();
    assert_eq!(probes(&fx), [("web", Purpose::Health)]);
    let fx = h.probe_done("web", Purpose::Health, false);
    assert_eq!(signals(&fx), [("web", Target::Group(pid), Nix::SIGTERM)]);
}

fn kills(fx: &[Effect]) -> Vec<&str> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::KillProbe { service } => Some(service.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_probe_that_outlives_its_timeout_is_killed_and_counts_as_timed_out() {
    let mut s = spec("a");
    s.ready = Some(Ready::Exec(vec!["sleep".into(), "60".into()]));
    s.ready_timeout = Duration::from_secs(30);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.tick();
    assert_eq!(probes(&fx), [("a", Purpose::Ready)]);
    let began = h.elapsed;
    // The probe's own time limit is the next thing the core wakes for.
    let fx = h.tick();
    assert_eq!(
        h.elapsed - began,
        Duration::from_secs(5),
        "READY_PROBE_TIMEOUT"
    );
    assert_eq!(kills(&fx), ["a"]);
    let reason = h.sup.service("a").unwrap().not_ready.clone();
    assert_eq!(reason.as_deref(), Some("probe timed out after 5s"));
    // Its answer, should the shell still deliver one, is stale: still starting.
    let _ = h.probe_done("a", Purpose::Ready, true);
    assert_eq!(h.status("a"), Status::Starting);
    // The next probe follows after the retry interval, with a deadline of its own.
    let fx = h.tick();
    assert_eq!(probes(&fx), [("a", Purpose::Ready)]);
    let _ = h.probe_done("a", Purpose::Ready, true);
    assert_eq!(h.status("a"), Status::Running);
}

#[test]
fn a_tcp_probe_out_of_time_reads_as_a_connect_that_timed_out() {
    let mut h = Harness::new(vec![tcp_health("web", 1)]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("web");
    let fx = h.tick();
    assert_eq!(probes(&fx), [("web", Purpose::Health)]);
    let fx = h.tick();
    assert_eq!(kills(&fx), ["web"], "killed once, not again by the stop");
    assert_eq!(signals(&fx), [("web", Target::Group(pid), Nix::SIGTERM)]);
    let Phase::Stopping(stop) = &h.sup.service("web").unwrap().phase else {
        panic!("stopping after a failed health check");
    };
    assert_eq!(
        stop.then,
        AfterStop::Policy {
            reason: "health check failed 1 times in a row: \
                     connecting to 127.0.0.1:80 timed out after 1s"
                .into()
        }
    );
}

#[test]
fn a_run_that_ends_with_a_probe_in_flight_takes_the_probe_with_it() {
    let mut s = spec("a");
    s.ready = Some(Ready::Exec(vec!["sleep".into(), "60".into()]));
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.tick();
    assert_eq!(probes(&fx), [("a", Purpose::Ready)]);
    let fx = h.exit("a", ExitStatus::Code(1));
    assert_eq!(kills(&fx), ["a"]);
}

#[test]
fn a_stale_probe_answer_is_ignored() {
    let mut s = spec("a");
    s.ready = Some(Ready::Exec(vec!["true".into()]));
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let ev = Event::ProbeDone {
        service: "a".into(),
        pid: 4242,
        purpose: Purpose::Ready,
        outcome: Ok(()),
    };
    let _ = h.sup.handle(ev, h.now());
    assert_eq!(h.status("a"), Status::Starting, "4242 is not a's process");
}

#[test]
fn mainpid_moves_the_tracked_process() {
    let mut s = spec("forker");
    s.ready = Some(Ready::Notify);
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    h.settle(fx);
    let first = h.pid("forker");
    h.notify(
        "forker",
        vec![Notification::MainPid(9000), Notification::Ready],
    );
    assert_eq!(h.pid("forker"), 9000);
    // The parent that forked exits: not the service's end.
    let fx = h.sup.handle(
        Event::ChildExited {
            pid: first,
            status: ExitStatus::Code(0),
        },
        h.now(),
    );
    assert!(signals(&fx).is_empty());
    assert_eq!(h.status("forker"), Status::Running);
}

#[test]
fn the_crash_report_keeps_the_last_lines_whenever_they_arrive() {
    let mut h = Harness::new(vec![spec("a"), spec("b")]);
    let fx = h.start_all();
    h.settle(fx);
    // a: the lines come after the exit; b: before it.
    let a = h.pid("a");
    h.exit("a", ExitStatus::Code(3));
    let lines = vec!["boom".to_string()];
    let _ = h.sup.handle(
        Event::OutputClosed {
            service: "a".into(),
            pid: a,
            last_lines: lines.clone(),
        },
        h.now(),
    );
    let b = h.pid("b");
    let _ = h.sup.handle(
        Event::OutputClosed {
            service: "b".into(),
            pid: b,
            last_lines: lines.clone(),
        },
        h.now(),
    );
    h.exit("b", ExitStatus::Code(3));
    for name in ["a", "b"] {
        assert_eq!(
            h.sup
                .service(name)
                .unwrap()
                .exits
                .back()
                .unwrap()
                .last_lines,
            lines,
            "{name}"
        );
    }
}

/// `app → migrate → db`, where migrate is a one-shot task that has completed.
fn app_migrate_db() -> Harness {
    let mut migrate = dep("migrate", &["db"]);
    migrate.restart = RestartPolicy::Never;
    let mut h = Harness::new(vec![spec("db"), migrate, dep("app", &["migrate"])]);
    let fx = h.start_all();
    assert_eq!(spawned(&fx), ["db"]);
    h.settle(fx);
    let fx = h.exit("migrate", ExitStatus::Code(0));
    assert!(
        spawned(&fx).is_empty(),
        "app already ran once migrate started"
    );
    assert_eq!(h.status("migrate"), Status::Exited);
    assert_eq!(h.status("app"), Status::Running);
    h
}

#[test]
fn shutdown_stops_through_a_finished_task_in_dependency_order() {
    let mut h = app_migrate_db();
    let (app, db) = (h.pid("app"), h.pid("db"));
    let fx = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    assert_eq!(
        signals(&fx),
        [("app", Target::Group(app), Nix::SIGTERM)],
        "db waits for app although migrate, between them, is not running"
    );
    let fx = h.exit("app", TERM);
    assert!(
        signals(&fx).is_empty(),
        "app's group is not known empty yet"
    );
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "app".into(),
            pgid: app,
        },
        h.now(),
    );
    assert_eq!(signals(&fx), [("db", Target::Group(db), Nix::SIGTERM)]);
}

#[test]
fn a_dependency_restart_stops_and_starts_through_a_finished_task() {
    let mut h = app_migrate_db();
    let (app, db) = (h.pid("app"), h.pid("db"));
    let mut db2 = spec("db");
    db2.env.insert("V".into(), "2".into());
    let mut migrate = dep("migrate", &["db"]);
    migrate.restart = RestartPolicy::Never;
    let fx = h.reload(1, vec![db2, migrate, dep("app", &["migrate"])], false);
    assert_eq!(
        signals(&fx),
        [("app", Target::Group(app), Nix::SIGTERM)],
        "app stops before db"
    );
    h.exit("app", TERM);
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "app".into(),
            pgid: app,
        },
        h.now(),
    );
    assert_eq!(signals(&fx), [("db", Target::Group(db), Nix::SIGTERM)]);
    assert!(
        spawned(&fx).is_empty(),
        "app does not start again while db is going down"
    );
    h.exit("db", TERM);
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "db".into(),
            pgid: db,
        },
        h.now(),
    );
    assert_eq!(spawned(&fx), ["db"], "app waits for the new db");
    let fx = h.settle(fx);
    assert_eq!(h.status("app"), Status::Running);
    assert_eq!(
        h.status("migrate"),
        Status::Exited,
        "the task is not run again"
    );
    assert!(reply(&fx, 1).unwrap().is_ok());
}

fn with_conditions(name: &str, conditions: &[(&str, Condition)]) -> ServiceSpec {
    let mut s = dep(
        name,
        &conditions.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
    );
    s.conditions = conditions
        .iter()
        .filter(|(_, c)| *c != Condition::Ready)
        .map(|(d, c)| (d.to_string(), *c))
        .collect();
    s
}

#[test]
fn a_started_condition_does_not_wait_for_readiness() {
    let mut db = spec("db");
    db.ready = Some(Ready::Tcp("127.0.0.1:5432".into()));
    let app = with_conditions("app", &[("db", Condition::Started)]);
    let mut h = Harness::new(vec![db, app]);
    let fx = h.start_all();
    assert_eq!(spawned(&fx), ["db"]);
    let fx = h.sup.handle(
        Event::Spawned {
            service: "db".into(),
            pid: 10,
            start_time: None,
        },
        h.now(),
    );
    assert_eq!(h.status("db"), Status::Starting);
    assert_eq!(spawned(&fx), ["app"], "spawned is enough for `started`");
}

#[test]
fn a_completed_condition_waits_for_the_exit_and_blocks_on_a_failure() {
    let mut migrate = spec("migrate");
    migrate.restart = RestartPolicy::Never;
    let app = with_conditions("app", &[("migrate", Condition::Completed)]);
    let mut h = Harness::new(vec![migrate.clone(), app.clone()]);
    let fx = h.start_all();
    h.settle(fx);
    assert_eq!(h.status("migrate"), Status::Running);
    assert!(
        h.sup.service("app").unwrap().pid().is_none(),
        "running is not completed"
    );
    let fx = h.exit("migrate", ExitStatus::Code(0));
    assert_eq!(spawned(&fx), ["app"]);

    // The same task failing keeps app from starting, and says why (a detached daemon,
    // which does not end when everything has settled).
    let mut h = Harness::new(vec![migrate, app]);
    h.sup = Supervisor::new(&h.cfg, None, Jitter::new(1));
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.exit("migrate", ExitStatus::Code(3));
    assert!(spawned(&fx).is_empty());
    assert_eq!(h.status("app"), Status::Starting);
    let fx = h.request(
        1,
        Request::Status {
            services: vec!["app".into()],
        },
    );
    let status = reply(&fx, 1).unwrap().unwrap();
    let app = &status["services"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["waiting_for"], serde_json::json!(["migrate"]));
    assert_eq!(app["dependencies"][0]["name"], "migrate");
    assert_eq!(app["dependencies"][0]["condition"], "completed");
    assert_eq!(app["dependencies"][0]["status"], "exited");
    assert_eq!(app["dependencies"][0]["met"], false);
    assert!(
        app["dependencies"][0]["why"]
            .as_str()
            .unwrap()
            .contains("migrate, which exited with code 3"),
        "{status}"
    );
    assert!(
        !h.sup.is_starting(),
        "blocked is not starting: `up -d` returns"
    );
}

/// A detached daemon (no `exit_when`) with `worker` crash-looping into `failed` before it
/// was ever ready, and `app`, which depends on it, never spawned.
fn failed_worker_and_waiting_app() -> Harness {
    let mut worker = spec("worker");
    worker.restart = RestartPolicy::Always;
    worker.max_restarts = 1;
    worker.restart_delay = Duration::ZERO;
    worker.ready = Some(Ready::Notify);
    let mut h = Harness::new(vec![worker, dep("app", &["worker"])]);
    h.sup = Supervisor::new(&h.cfg, None, Jitter::new(1));
    let fx = h.start_all();
    h.settle(fx);
    for _ in 0..2 {
        let fx = h.exit("worker", ExitStatus::Code(1));
        h.settle(fx);
    }
    assert_eq!(h.status("worker"), Status::Failed);
    assert!(h.sup.service("app").unwrap().pid().is_none());
    h
}

#[test]
fn start_and_restart_behind_a_failed_dependency_reply_at_once_with_the_reason() {
    let mut h = failed_worker_and_waiting_app();
    for (token, request) in [
        (
            2,
            Request::Start {
                services: vec!["app".into()],
                all: false,
            },
        ),
        (
            3,
            Request::Restart {
                services: vec!["app".into()],
                all: false,
            },
        ),
    ] {
        let fx = h.request(token, request);
        let err = reply(&fx, token)
            .expect("a reply in the same turn")
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Failed);
        assert!(
            err.message
                .starts_with("app: waiting for worker, which failed (crash loop"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .ends_with("; runpmctl restart worker to try again"),
            "{}",
            err.message
        );
    }
    // Restarting the dependency re-arms it, and app follows once it is ready.
    let fx = h.request(
        4,
        Request::Restart {
            services: vec!["worker".into()],
            all: false,
        },
    );
    h.settle(fx);
    assert_eq!(h.status("worker"), Status::Starting);
    let fx = h.notify("worker", vec![Notification::Ready]);
    assert!(reply(&fx, 4).unwrap().is_ok());
    h.settle(fx);
    assert_eq!(h.status("app"), Status::Running);
}

#[test]
fn a_long_backoff_of_a_dependency_is_reported_a_short_one_waited_for() {
    let mut worker = spec("worker");
    worker.restart = RestartPolicy::Always;
    worker.restart_delay = Duration::from_secs(60);
    worker.restart_delay_max = Duration::from_secs(60);
    let mut app = dep("app", &["worker"]);
    app.autostart = false;
    let mut h = Harness::new(vec![worker, app]);
    h.sup = Supervisor::new(&h.cfg, None, Jitter::new(1));
    let fx = h.start_all();
    h.settle(fx);
    h.exit("worker", ExitStatus::Code(1));
    assert_eq!(h.status("worker"), Status::Backoff);
    let fx = h.request(
        1,
        Request::Start {
            services: vec!["app".into()],
            all: false,
        },
    );
    let err = reply(&fx, 1).unwrap().unwrap_err();
    assert_eq!(
        err.message,
        "app: waiting for worker, which is in backoff; runpmctl restart worker to start it now"
    );
    // Close to its end, the backoff is waited for: the reply comes once app runs.
    h.advance(Duration::from_secs(58));
    let fx = h.request(
        2,
        Request::Start {
            services: vec!["app".into()],
            all: false,
        },
    );
    assert!(reply(&fx, 2).is_none());
    let fx = h.tick();
    let fx = h.settle(fx);
    assert!(reply(&fx, 2).unwrap().is_ok());
    assert_eq!(h.status("app"), Status::Running);
}

#[test]
fn a_new_definition_and_a_rearm_start_a_fresh_crash_window() {
    let crashy = |v: &str| {
        let mut s = spec("worker");
        s.restart = RestartPolicy::Always;
        s.max_restarts = 2;
        s.restart_delay = Duration::ZERO;
        s.env.insert("V".into(), v.into());
        s
    };
    let mut h = Harness::new(vec![crashy("1")]);
    h.sup = Supervisor::new(&h.cfg, None, Jitter::new(1));
    let fx = h.start_all();
    h.settle(fx);
    for _ in 0..2 {
        let fx = h.exit("worker", ExitStatus::Code(1));
        h.settle(fx);
    }
    assert_eq!(h.sup.service("worker").unwrap().restarts, 2);
    // A reload with a new definition: the old crashes no longer count.
    let fx = h.reload(1, vec![crashy("2")], false);
    h.obey(fx);
    assert_eq!(h.status("worker"), Status::Running);
    assert_eq!(h.sup.service("worker").unwrap().restarts, 0);
    for _ in 0..2 {
        let fx = h.exit("worker", ExitStatus::Code(1));
        h.settle(fx);
        assert_eq!(
            h.status("worker"),
            Status::Running,
            "two crashes are allowed"
        );
    }
    h.exit("worker", ExitStatus::Code(1));
    assert_eq!(
        h.status("worker"),
        Status::Failed,
        "the third is one too many"
    );
    // An operator's start re-arms it the same way.
    let fx = h.request(
        2,
        Request::Start {
            services: vec!["worker".into()],
            all: false,
        },
    );
    let fx = h.settle(fx);
    assert!(reply(&fx, 2).unwrap().is_ok());
    assert_eq!(h.sup.service("worker").unwrap().restarts, 0);
    for _ in 0..2 {
        let fx = h.exit("worker", ExitStatus::Code(1));
        h.settle(fx);
        assert_eq!(h.status("worker"), Status::Running);
    }
}

#[test]
fn every_stop_signal_is_followed_by_sigcont() {
    let mut h = Harness::new(vec![spec("web")]);
    let fx = h.start_all();
    h.settle(fx);
    let web = h.pid("web");
    let fx = h.request(
        1,
        Request::Stop {
            services: vec!["web".into()],
            all: false,
        },
    );
    assert_eq!(
        all_signals(&fx),
        [
            ("web", Target::Group(web), Nix::SIGTERM),
            ("web", Target::Group(web), Nix::SIGCONT)
        ],
        "a SIGSTOPped service acts on the stop signal at once"
    );
}

#[test]
fn a_second_stop_or_shutdown_while_the_first_waits_kills_at_once() {
    let mut h = Harness::new(vec![spec("web"), spec("other")]);
    let fx = h.start_all();
    h.settle(fx);
    let web = h.pid("web");
    let stop = || Request::Stop {
        services: vec!["web".into()],
        all: false,
    };
    h.request(1, stop());
    assert_eq!(h.status("web"), Status::Stopping);
    let fx = h.request(2, stop());
    assert_eq!(
        signals(&fx),
        [("web", Target::Group(web), Nix::SIGKILL)],
        "the second stop does not wait out kill_timeout"
    );
    let fx = h.sup.handle(
        Event::ChildExited {
            pid: web,
            status: ExitStatus::Signal(9),
        },
        h.now(),
    );
    assert!(reply(&fx, 1).unwrap().is_ok() && reply(&fx, 2).unwrap().is_ok());
    assert_eq!(h.status("web"), Status::Stopped);

    let other = h.pid("other");
    let fx = h.request(3, Request::Shutdown);
    assert_eq!(
        signals(&fx),
        [("other", Target::Group(other), Nix::SIGTERM)]
    );
    let fx = h.request(4, Request::Shutdown);
    assert_eq!(
        signals(&fx),
        [("other", Target::Group(other), Nix::SIGKILL)]
    );
    assert!(reply(&fx, 4).unwrap().is_ok());
}

#[test]
fn kill_signals_the_main_process_or_its_group_and_refuses_a_service_without_one() {
    let mut off = spec("off");
    off.autostart = false;
    let mut h = Harness::new(vec![spec("web"), off]);
    let fx = h.start_all();
    h.settle(fx);
    let web = h.pid("web");
    let kill = |signal: &str, group: bool, names: &[&str]| Request::Kill {
        services: names.iter().map(|n| n.to_string()).collect(),
        signal: signal.into(),
        group,
    };

    let fx = h.request(1, kill("hup", false, &["web"]));
    assert_eq!(
        all_signals(&fx),
        [("web", Target::Process(web), Nix::SIGHUP)]
    );
    assert!(reply(&fx, 1).unwrap().is_ok());
    let fx = h.request(2, kill("SIGUSR1", true, &["web"]));
    assert_eq!(
        all_signals(&fx),
        [("web", Target::Group(web), Nix::SIGUSR1)]
    );
    assert_eq!(h.status("web"), Status::Running, "a signal is not a stop");

    // Nothing is sent when one of the services has no process, or the signal is unknown.
    let fx = h.request(3, kill("TERM", false, &["web", "off"]));
    assert!(all_signals(&fx).is_empty());
    let error = reply(&fx, 3).unwrap().unwrap_err();
    assert!(error.message.contains("off (stopped)"), "{}", error.message);
    let fx = h.request(4, kill("NOPE", false, &["web"]));
    assert!(all_signals(&fx).is_empty());
    assert_eq!(
        reply(&fx, 4).unwrap().unwrap_err().kind,
        ErrorKind::BadRequest
    );
    let fx = h.request(5, kill("TERM", false, &["nope"]));
    assert_eq!(
        reply(&fx, 5).unwrap().unwrap_err().kind,
        ErrorKind::UnknownService
    );
}

// ---------------------------------------------------------------------------------------------
// runpm's own service manager (NOTIFY_SOCKET)
// ---------------------------------------------------------------------------------------------

fn notes(fx: &[Effect]) -> Vec<crate::notify::ParentNote> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::NotifyParent(note) => Some(note.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn without_a_manager_nothing_is_told() {
    let mut h = Harness::new(vec![spec("web")]);
    let fx = h.start_all();
    let fx = h.settle(fx);
    assert!(notes(&fx).is_empty());
    let fx = h.sup.handle(Event::Hangup, h.now());
    assert!(notes(&fx).is_empty(), "{fx:?}");
}

#[test]
fn the_manager_hears_ready_once_the_services_run_then_each_change_of_status() {
    use crate::notify::ParentNote;
    let mut task = spec("task");
    task.restart = RestartPolicy::Never;
    let mut h = Harness::new(vec![spec("web"), spec("db"), task]);
    h.sup.notify_parent(None, h.now());
    let fx = h.start_all();
    assert!(notes(&fx).is_empty(), "not ready while spawning: {fx:?}");
    let mut told = Vec::new();
    // Answer the spawns one by one, as a slow runtime might.
    for effect in fx {
        if let Effect::Spawn { service, .. } = effect {
            h.next_pid += 1;
            let ev = Event::Spawned {
                service,
                pid: h.next_pid,
                start_time: None,
            };
            told.extend(notes(&h.sup.handle(ev, h.now())));
        }
    }
    assert_eq!(
        told,
        [ParentNote::Ready {
            status: "3 running".into()
        }]
    );
    // A task that ends under `never` is no longer running; the status says so.
    h.advance(Duration::from_secs(5));
    let fx = h.exit("task", ExitStatus::Code(3));
    assert_eq!(
        notes(&fx),
        [ParentNote::Status("2 running".into())],
        "an exited task is not running: {fx:?}"
    );
    // Nothing changed: nothing is said.
    let fx = h.sup.handle(Event::Tick, h.now());
    assert!(notes(&fx).is_empty(), "{fx:?}");
}

#[test]
fn a_reload_is_told_as_reloading_then_ready() {
    use crate::notify::ParentNote;
    let mut h = Harness::new(vec![spec("web")]);
    h.sup.notify_parent(None, h.now());
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.sup.handle(Event::Hangup, h.now());
    assert!(
        matches!(
            fx.as_slice(),
            [
                Effect::NotifyParent(ParentNote::Reloading),
                Effect::LoadConfig { dry_run: false, .. }
            ]
        ),
        "RELOADING=1 goes out before the config is read: {fx:?}"
    );
    let loaded = Event::ConfigLoaded {
        token: None,
        dry_run: false,
        result: Ok(h.cfg.clone()),
    };
    let fx = h.sup.handle(loaded, h.now());
    assert_eq!(
        notes(&fx),
        [ParentNote::Ready {
            status: "1 running".into()
        }]
    );
    // A config that cannot be loaded ends the reload too: the old one keeps running.
    let fx = h.sup.handle(Event::Hangup, h.now());
    assert_eq!(notes(&fx), [ParentNote::Reloading]);
    let failed = Event::ConfigLoaded {
        token: None,
        dry_run: false,
        result: Err(invalid("services.toml", 1, 1)),
    };
    let fx = h.sup.handle(failed, h.now());
    assert!(matches!(notes(&fx).as_slice(), [ParentNote::Ready { .. }]));
}

#[test]
fn the_shutdown_is_told_once_as_stopping() {
    use crate::notify::ParentNote;
    let mut h = Harness::new(vec![spec("web")]);
    h.sup.notify_parent(None, h.now());
    let fx = h.start_all();
    h.settle(fx);
    let fx = h
        .sup
        .handle(Event::Terminate { signal: "SIGTERM" }, h.now());
    assert_eq!(
        notes(&fx),
        [ParentNote::Stopping {
            status: "stopping services".into()
        }]
    );
    let fx = h.exit("web", ExitStatus::Signal(15));
    assert!(notes(&fx).is_empty(), "{fx:?}");
}

#[test]
fn the_watchdog_is_a_deadline_at_half_the_managers_interval() {
    use crate::notify::ParentNote;
    let mut h = Harness::new(vec![spec("web")]);
    h.sup.notify_parent(Some(Duration::from_secs(10)), h.now());
    let fx = h.start_all();
    assert_eq!(
        notes(&fx),
        [ParentNote::Watchdog],
        "the first ping is due at once"
    );
    h.settle(fx);
    let t0 = h.now().at;
    assert_eq!(h.sup.next_deadline(), Some(t0 + Duration::from_secs(5)));
    let fx = h.tick();
    assert_eq!(notes(&fx), [ParentNote::Watchdog]);
    assert_eq!(h.sup.next_deadline(), Some(t0 + Duration::from_secs(10)));
}

// ---------------------------------------------------------------------------------------------
// One test per row of the want × phase table in service.rs
// ---------------------------------------------------------------------------------------------

mod table {
    use super::*;
    use crate::supervisor::service::{AfterStop, Want};

    fn one(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn start(names: &[&str]) -> Request {
        Request::Start {
            services: one(names),
            all: false,
        }
    }

    fn stop(names: &[&str]) -> Request {
        Request::Stop {
            services: one(names),
            all: false,
        }
    }

    fn restart(names: &[&str]) -> Request {
        Request::Restart {
            services: one(names),
            all: false,
        }
    }

    /// `web` running, then set to `want` and `phase` by hand; `other` keeps running, so
    /// that the harness's `exit_when = all-exited` never ends the session.
    fn forced(want: Want, phase: Phase) -> Harness {
        let mut h = Harness::new(vec![spec("web"), spec("other")]);
        let fx = h.start_all();
        h.settle(fx);
        let pid = h.pid("web");
        h.sup.by_pid.remove(&pid);
        let svc = h.sup.services.get_mut("web").unwrap();
        svc.want = want;
        svc.phase = phase;
        h
    }

    fn phase(h: &Harness, name: &str) -> Phase {
        h.sup.service(name).unwrap().phase.clone()
    }

    #[test]
    fn up_waiting_spawns_once_every_dependency_runs() {
        let mut h = Harness::new(vec![dep("app", &["db"]), spec("db")]);
        let fx = h.start_all();
        assert_eq!(spawned(&fx), ["db"]);
        assert_eq!(phase(&h, "app"), Phase::Waiting);
        assert_eq!(h.sup.service("app").unwrap().want, Want::Up);
        let fx = h.sup.handle(
            Event::Spawned {
                service: "db".into(),
                pid: 50,
                start_time: None,
            },
            h.now(),
        );
        assert_eq!(spawned(&fx), ["app"]);
    }

    #[test]
    fn up_spawning_is_answered_by_spawned_or_spawn_failed() {
        let mut h = Harness::new(vec![spec("web"), spec("bad")]);
        h.start_all();
        assert_eq!(phase(&h, "web"), Phase::Spawning);
        let ok = Event::Spawned {
            service: "web".into(),
            pid: 50,
            start_time: None,
        };
        let _ = h.sup.handle(ok, h.now());
        assert!(matches!(phase(&h, "web"), Phase::Running(_)));
        let failed = Event::SpawnFailed {
            service: "bad".into(),
            error: not_found("bad"),
        };
        let _ = h.sup.handle(failed, h.now());
        assert!(!matches!(
            phase(&h, "bad"),
            Phase::Spawning | Phase::Running(_)
        ));
    }

    #[test]
    fn up_running_is_starting_until_ready_and_an_exit_goes_to_the_policy() {
        let mut s = spec("web");
        s.ready = Some(Ready::Notify);
        let mut h = Harness::new(vec![s]);
        let fx = h.start_all();
        h.settle(fx);
        assert_eq!(h.status("web"), Status::Starting);
        h.notify("web", vec![Notification::Ready]);
        assert_eq!(h.status("web"), Status::Running);
        h.exit("web", ExitStatus::Code(1));
        assert_eq!(h.status("web"), Status::Backoff, "on-failure restarts it");
    }

    #[test]
    fn up_stopping_is_a_restart_that_waits_again_after_the_exit() {
        let mut h = Harness::new(vec![spec("web")]);
        let fx = h.start_all();
        h.settle(fx);
        let pid = h.pid("web");
        h.request(1, restart(&["web"]));
        assert!(matches!(
            phase(&h, "web"),
            Phase::Stopping(Stopping {
                then: AfterStop::Start,
                ..
            })
        ));
        let fx = h
            .sup
            .handle(Event::ChildExited { pid, status: TERM }, h.now());
        let fx = h.obey(fx);
        assert_eq!(h.status("web"), Status::Running, "started again: {fx:?}");
        assert_ne!(h.pid("web"), pid);
    }

    #[test]
    fn up_backoff_waits_then_spawns_when_the_delay_expires() {
        let mut h = Harness::new(vec![spec("web")]);
        let fx = h.start_all();
        h.settle(fx);
        h.exit("web", ExitStatus::Code(1));
        assert_eq!(h.status("web"), Status::Backoff);
        let fx = h.tick();
        assert_eq!(spawned(&fx), ["web"]);
    }

    #[test]
    fn up_exited_stays_down_until_a_start() {
        let mut s = spec("task");
        s.restart = RestartPolicy::Never;
        let mut h = Harness::new(vec![s, spec("web")]);
        let fx = h.start_all();
        h.settle(fx);
        h.exit("task", ExitStatus::Code(0));
        assert_eq!(h.status("task"), Status::Exited);
        assert_eq!(h.sup.service("task").unwrap().want, Want::Up);
        let fx = h.sup.handle(Event::Tick, h.now());
        assert!(spawned(&fx).is_empty());
        let fx = h.request(1, start(&["task"]));
        assert_eq!(spawned(&fx), ["task"]);
    }

    #[test]
    fn up_failed_stays_until_a_start_rearms_it() {
        let failed = Phase::Failed {
            reason: "crash loop".into(),
            code: 1,
            rearm_at: None,
        };
        let mut h = forced(Want::Up, failed);
        let fx = h.sup.handle(Event::Tick, h.now());
        assert!(spawned(&fx).is_empty());
        let fx = h.request(1, start(&["web"]));
        assert_eq!(spawned(&fx), ["web"]);
    }

    #[test]
    fn up_stopped_is_not_reached_a_start_moves_it_on() {
        let mut h = forced(Want::Down { by_operator: true }, Phase::Stopped);
        let fx = h.request(1, start(&["web"]));
        assert_eq!(spawned(&fx), ["web"]);
        let svc = h.sup.service("web").unwrap();
        assert_eq!(svc.want, Want::Up);
        assert_eq!(svc.phase, Phase::Spawning);
    }

    #[test]
    fn restart_running_stops_after_its_dependents_then_starts() {
        let mut h = Harness::new(vec![dep("app", &["db"]), spec("db")]);
        let fx = h.start_all();
        h.settle(fx);
        let fx = h.request(1, restart(&["db"]));
        let stopped: Vec<&str> = signals(&fx).iter().map(|(s, _, _)| *s).collect();
        assert_eq!(stopped, ["app"], "the dependent stops first");
        assert_eq!(h.sup.service("db").unwrap().want, Want::Restart);
        let db = h.pid("db");
        let fx = h.obey(fx);
        assert_eq!(h.status("db"), Status::Running, "{fx:?}");
        assert_ne!(h.pid("db"), db, "db was restarted");
        assert_eq!(h.status("app"), Status::Running, "app came back after db");
        assert_eq!(h.sup.service("db").unwrap().want, Want::Up);
    }

    #[test]
    fn restart_stopping_ends_the_stop_under_way_in_a_start() {
        let mut h = Harness::new(vec![spec("web")]);
        let fx = h.start_all();
        h.settle(fx);
        h.request(1, stop(&["web"]));
        assert!(matches!(
            phase(&h, "web"),
            Phase::Stopping(Stopping {
                then: AfterStop::Stay,
                ..
            })
        ));
        h.request(2, restart(&["web"]));
        assert!(matches!(
            phase(&h, "web"),
            Phase::Stopping(Stopping {
                then: AfterStop::Start,
                ..
            })
        ));
        assert_eq!(h.sup.service("web").unwrap().want, Want::Up);
    }

    #[test]
    fn restart_at_rest_waits_again_at_once_with_a_fresh_crash_window() {
        let at_rest = Phase::Exited {
            status: ExitStatus::Code(1),
        };
        let mut h = forced(Want::Restart, at_rest);
        h.sup.services.get_mut("web").unwrap().restarts = 4;
        let fx = h.sup.handle(Event::Tick, h.now());
        assert_eq!(spawned(&fx), ["web"]);
        assert_eq!(h.sup.service("web").unwrap().want, Want::Up);
    }

    #[test]
    fn restart_spawning_waits_for_the_answer_then_stops() {
        let mut h = forced(Want::Restart, Phase::Spawning);
        let fx = h.sup.handle(Event::Tick, h.now());
        assert!(signals(&fx).is_empty() && spawned(&fx).is_empty());
        let fx = h.sup.handle(
            Event::Spawned {
                service: "web".into(),
                pid: 77,
                start_time: None,
            },
            h.now(),
        );
        assert_eq!(signals(&fx), [("web", Target::Group(77), Nix::SIGTERM)]);
    }

    #[test]
    fn down_waiting_or_backoff_drops_to_stopped_at_once() {
        for before in [
            Phase::Waiting,
            Phase::Backoff {
                until: Instant::now() + Duration::from_secs(60),
            },
        ] {
            let mut h = forced(Want::Down { by_operator: false }, before);
            let fx = h.sup.handle(Event::Tick, h.now());
            assert!(spawned(&fx).is_empty());
            assert_eq!(phase(&h, "web"), Phase::Stopped);
        }
    }

    #[test]
    fn down_spawning_stops_as_soon_as_the_spawn_is_answered() {
        let mut h = forced(Want::Down { by_operator: true }, Phase::Spawning);
        let fx = h.sup.handle(
            Event::Spawned {
                service: "web".into(),
                pid: 77,
                start_time: None,
            },
            h.now(),
        );
        assert_eq!(signals(&fx), [("web", Target::Group(77), Nix::SIGTERM)]);
    }

    #[test]
    fn down_running_is_signalled_once_no_dependent_is_going_down() {
        let mut h = Harness::new(vec![dep("app", &["db"]), spec("db")]);
        let fx = h.start_all();
        h.settle(fx);
        let fx = h.request(1, stop(&["app", "db"]));
        let stopped: Vec<&str> = signals(&fx).iter().map(|(s, _, _)| *s).collect();
        assert_eq!(stopped, ["app"], "db waits for app: {fx:?}");
        let fx = h.obey(fx);
        assert_eq!(h.status("db"), Status::Stopped, "{fx:?}");
    }

    #[test]
    fn down_stopping_waits_for_the_exit_or_the_kill_deadline() {
        let mut h = Harness::new(vec![spec("web")]);
        let fx = h.start_all();
        h.settle(fx);
        let pid = h.pid("web");
        h.request(1, stop(&["web"]));
        let fx = h.sup.handle(Event::Tick, h.now());
        assert!(signals(&fx).is_empty(), "nothing before the deadline");
        let fx = h.tick();
        assert_eq!(signals(&fx), [("web", Target::Group(pid), Nix::SIGKILL)]);
    }

    #[test]
    fn down_at_rest_does_nothing() {
        for at_rest in [
            Phase::Stopped,
            Phase::Exited {
                status: ExitStatus::Code(0),
            },
            Phase::Failed {
                reason: "x".into(),
                code: 1,
                rearm_at: None,
            },
        ] {
            let mut h = forced(Want::Down { by_operator: false }, at_rest.clone());
            let fx = h.sup.handle(Event::Tick, h.now());
            assert!(fx.is_empty(), "{at_rest:?}: {fx:?}");
            assert_eq!(phase(&h, "web"), at_rest);
        }
    }

    #[test]
    fn remove_stops_it_then_it_leaves_the_table() {
        let mut h = Harness::new(vec![spec("web"), spec("old")]);
        let fx = h.start_all();
        h.settle(fx);
        let fx = h.reload(1, vec![spec("web")], false);
        assert_eq!(h.sup.service("old").unwrap().want, Want::Remove);
        h.obey(fx);
        assert!(h.sup.service("old").is_none(), "gone once stopped");
        assert!(h.sup.service("web").is_some());
    }
}

#[test]
fn logs_and_saves_are_answered_by_the_core_through_effects() {
    let mut h = Harness::new(vec![spec("web")]);
    let fx = h.start_all();
    h.settle(fx);
    let logs = |services: &[&str]| Request::Logs {
        services: services.iter().map(|s| s.to_string()).collect(),
        lines: 10,
        follow: true,
        since: None,
    };
    let fx = h.request(1, logs(&["web"]));
    assert_eq!(
        fx,
        [Effect::ServeLogs {
            token: 1,
            services: vec!["web".into()],
            lines: 10,
            since: None,
            follow: true,
        }]
    );
    let fx = h.request(2, logs(&["wbe"]));
    let err = reply(&fx, 2).unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownService);
    assert!(err.message.contains("no service named `wbe`"), "{err:?}");
    let fx = h.request(3, Request::Save);
    assert_eq!(fx, [Effect::SaveState { token: 3 }]);
}

mod reports;
// ---------------------------------------------------------------------------------------------
// Scheduled services: runs are deadlines of the core
// ---------------------------------------------------------------------------------------------

fn every(name: &str, secs: u64, overlap: crate::config::Overlap) -> ServiceSpec {
    let mut s = spec(name);
    s.schedule = Some(crate::config::Schedule {
        when: crate::config::When::Interval(Duration::from_secs(secs)),
        timezone: None,
        overlap,
        run_on_start: false,
        catch_up: false,
    });
    s
}

#[test]
fn a_scheduled_service_waits_for_its_time_then_runs_and_waits_again() {
    let mut h = Harness::new(vec![every("job", 60, crate::config::Overlap::Skip)]);
    let fx = h.start_all();
    assert!(spawned(&fx).is_empty(), "not before its time: {fx:?}");
    assert_eq!(h.status("job"), Status::Waiting);
    assert!(!h.sup.is_starting(), "up -d does not wait for it");
    // The only deadline is the run, a minute away.
    let at = h.sup.next_deadline().expect("the next run is a deadline");
    assert_eq!(at - h.t0, Duration::from_secs(60));
    let fx = h.tick();
    assert_eq!(spawned(&fx), ["job"]);
    h.settle(fx);
    h.advance(Duration::from_secs(2));
    h.exit("job", ExitStatus::Code(0));
    assert_eq!(h.status("job"), Status::Waiting);
    // The next one counts from the previous run's time.
    assert_eq!(
        h.sup.next_deadline().map(|d| d - h.t0),
        Some(Duration::from_secs(120))
    );
}

#[test]
fn overlap_skip_queue_and_kill_while_a_run_is_going() {
    use crate::config::Overlap;
    let mut h = Harness::new(vec![
        every("skip", 10, Overlap::Skip),
        every("queue", 10, Overlap::Queue),
        every("kill", 10, Overlap::Kill),
    ]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.tick();
    assert_eq!(spawned(&fx), ["kill", "queue", "skip"]);
    h.settle(fx);
    // The second run comes due while the first ones still run.
    let fx = h.tick();
    assert!(spawned(&fx).is_empty(), "{fx:?}");
    let stopped: Vec<&str> = signals(&fx).iter().map(|(n, _, _)| *n).collect();
    assert_eq!(stopped, ["kill"], "only `kill` stops its run");
    // `queue` starts its waiting run as soon as the running one ends; `skip` does not.
    let fx = h.exit("queue", ExitStatus::Code(0));
    assert_eq!(spawned(&fx), ["queue"]);
    let fx = h.exit("skip", ExitStatus::Code(0));
    assert!(spawned(&fx).is_empty(), "{fx:?}");
    assert_eq!(h.status("skip"), Status::Waiting);
    // `kill`: once the stopped run is gone, the new one starts.
    let pgid = h.pid("kill");
    let fx = h.exit("kill", ExitStatus::Signal(15));
    h.settle(fx);
    let fx = h.sup.handle(
        Event::GroupEmpty {
            service: "kill".into(),
            pgid,
        },
        h.now(),
    );
    assert_eq!(spawned(&fx), ["kill"]);
    h.settle(fx);
    assert!(
        matches!(h.status("kill"), Status::Starting | Status::Running),
        "{:?}",
        h.status("kill")
    );
}

#[test]
fn start_runs_a_scheduled_service_now() {
    let mut h = Harness::new(vec![every("job", 3600, crate::config::Overlap::Skip)]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.sup.handle(
        Event::Request {
            token: 1,
            request: crate::ipc::Request::Start {
                services: vec!["job".into()],
                all: false,
            },
        },
        h.now(),
    );
    assert_eq!(spawned(&fx), ["job"]);
}

#[test]
fn a_run_the_shell_says_the_oom_killer_ended_is_recorded_as_oom_killed() {
    let mut web = spec("web");
    web.kill_mode = crate::config::KillMode::Cgroup;
    let mut h = Harness::new(vec![web, spec("other")]);
    h.sup.set_cgroups(true);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("web");
    let fx = h.sup.handle(Event::OomKilled { pid }, h.now());
    assert!(fx.is_empty(), "{fx:?}");
    let fx = h.exit("web", ExitStatus::Signal(9));
    h.settle(fx);
    let reason =
        |h: &Harness, name: &str| h.sup.service(name).unwrap().exits.back().unwrap().reason;
    assert_eq!(
        reason(&h, "web"),
        crate::supervisor::status::EndReason::OomKilled
    );
    // The fact was about that pid only: another SIGKILL is a plain exit.
    let fx = h.exit("other", ExitStatus::Signal(9));
    h.settle(fx);
    assert_eq!(
        reason(&h, "other"),
        crate::supervisor::status::EndReason::Exited
    );
}
