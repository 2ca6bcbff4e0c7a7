//! The executor's own logic against a fake [`Hands`] that records every call: no process,
//! no runtime, no file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nix::sys::signal::Signal as Nix;
use tokio::sync::mpsc;

use super::*;
use crate::config::{ExitWhen, Settings};
use crate::ipc::{ErrorKind, Request};
use crate::supervisor::{Jitter, Status};
use crate::testing::spec;

/// What the fake was asked to do, in order.
#[derive(Debug, Clone, PartialEq)]
enum Called {
    Spawn(String),
    SpawnsDone(Vec<i32>),
    Signal(Target, i32),
    GroupCheck(i32),
    Probe(String, Purpose),
    KillProbe(String),
    LoadSnapshot,
    LoadConfig,
    SaveState,
    ServeLogs(Vec<String>),
    NotifyParent,
    ServeEvents(Vec<String>),
}

#[derive(Default)]
struct Fake {
    done: Vec<Called>,
    next_pid: i32,
    /// Services whose spawn fails.
    unstartable: BTreeSet<String>,
    /// Whether signals fail (as for a process that is not ours to signal).
    signals_fail: bool,
    /// What group checks answer.
    groups_empty: bool,
    /// The lifecycle events handed out, apart from the calls: they come with most turns.
    reports: Vec<Report>,
}

impl Hands for Fake {
    fn spawn(
        &mut self,
        service: &str,
        _spec: &Arc<ServiceSpec>,
        _notify: Option<NotifyRoute>,
    ) -> Result<i32, Arc<SpawnError>> {
        self.done.push(Called::Spawn(service.to_owned()));
        if self.unstartable.contains(service) {
            return Err(Arc::new(SpawnError::NotFound {
                program: "nope".into(),
                cwd: "/".into(),
            }));
        }
        self.next_pid += 1;
        Ok(1000 + self.next_pid)
    }

    fn spawns_done(&mut self, pids: &[i32]) -> Vec<Option<u64>> {
        self.done.push(Called::SpawnsDone(pids.to_vec()));
        pids.iter().map(|pid| Some(*pid as u64 * 10)).collect()
    }

    fn signal(&mut self, target: Target, signal: Signal) -> Result<(), String> {
        self.done.push(Called::Signal(target, signal.number()));
        if self.signals_fail {
            return Err("Operation not permitted".into());
        }
        Ok(())
    }

    fn group_is_empty(&mut self, pgid: i32) -> bool {
        self.done.push(Called::GroupCheck(pgid));
        self.groups_empty
    }

    fn probe(
        &mut self,
        _spec: &Arc<ServiceSpec>,
        service: String,
        _pid: i32,
        purpose: Purpose,
        _probe: Probe,
    ) {
        self.done.push(Called::Probe(service, purpose));
    }

    fn kill_probe(&mut self, service: &str) {
        self.done.push(Called::KillProbe(service.to_owned()));
    }

    fn load_snapshot(&mut self) -> Result<Vec<String>, SnapshotError> {
        self.done.push(Called::LoadSnapshot);
        Err(SnapshotError::NoStateFile)
    }

    fn load_config(&mut self) -> Result<Config, ConfigErrors> {
        self.done.push(Called::LoadConfig);
        Err(ConfigErrors {
            diagnostics: Vec::new(),
        })
    }

    fn save_state(&mut self, _sup: &Supervisor) -> Result<Response, ProtocolError> {
        self.done.push(Called::SaveState);
        Ok(Response::Saved {
            path: "/state/state.json".into(),
        })
    }

    fn serve_logs(
        &mut self,
        services: Vec<String>,
        _lines: usize,
        _since: Option<SystemTime>,
        _follow: bool,
        replies: UnboundedSender<Reply>,
    ) {
        self.done.push(Called::ServeLogs(services));
        let _ = replies.send(Reply::ok(
            None,
            crate::ipc::Json::of(&"lines").expect("json"),
        ));
    }

    fn notify_parent(&mut self, _note: &ParentNote) {
        self.done.push(Called::NotifyParent);
    }

    fn report(&mut self, report: Report) {
        self.reports.push(report);
    }

    fn serve_events(
        &mut self,
        services: Vec<String>,
        _since: Option<SystemTime>,
        _replies: UnboundedSender<Reply>,
    ) {
        self.done.push(Called::ServeEvents(services));
    }

    fn preflight_reexec(&mut self) -> Result<Response, String> {
        Err("not in tests".into())
    }
}

fn supervisor(specs: Vec<ServiceSpec>) -> (Supervisor, Config) {
    let config = Config {
        source: "/x/services.toml".into(),
        base_dir: "/x".into(),
        settings: Settings::default(),
        services: specs
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect::<BTreeMap<_, _>>(),
        replicated: Default::default(),
        selection: Default::default(),
    };
    let sup = Supervisor::new(&config, Some(ExitWhen::AllExited), Jitter::new(1));
    (sup, config)
}

/// Boots `specs` through an executor over a fresh fake.
fn booted(specs: Vec<ServiceSpec>, fake: Fake) -> (Supervisor, Executor<Fake>) {
    let (mut sup, config) = supervisor(specs);
    let mut executor = Executor::new(fake);
    let effects = sup.boot(&config, None, None, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    (sup, executor)
}

fn call(request: Request) -> (Call, mpsc::UnboundedReceiver<Reply>) {
    let (replies, rx) = mpsc::unbounded_channel();
    (Call { request, replies }, rx)
}

fn status(sup: &Supervisor, name: &str) -> Status {
    sup.service(name).expect("in the table").status()
}

#[test]
fn the_spawns_of_a_turn_are_answered_together_after_all_of_them_started() {
    let (sup, executor) = booted(vec![spec("a"), spec("b"), spec("c")], Fake::default());
    assert_eq!(
        executor.hands.done,
        [
            Called::Spawn("a".into()),
            Called::Spawn("b".into()),
            Called::Spawn("c".into()),
            Called::SpawnsDone(vec![1001, 1002, 1003]),
        ]
    );
    for (name, pid) in [("a", 1001), ("b", 1002), ("c", 1003)] {
        assert_eq!(status(&sup, name), Status::Running, "{name}");
        assert_eq!(sup.service(name).and_then(|s| s.pid()), Some(pid));
    }
}

#[test]
fn a_dependent_is_spawned_only_after_its_dependency_was_answered() {
    let mut web = spec("web");
    web.depends_on = vec!["db".into()];
    let (sup, executor) = booted(vec![spec("db"), web], Fake::default());
    assert_eq!(
        executor.hands.done,
        [
            Called::Spawn("db".into()),
            Called::SpawnsDone(vec![1001]),
            Called::Spawn("web".into()),
            Called::SpawnsDone(vec![1002]),
        ]
    );
    assert_eq!(status(&sup, "web"), Status::Running);
}

#[test]
fn a_spawn_that_fails_is_answered_as_a_failure_beside_the_ones_that_started() {
    let mut b = spec("b");
    b.restart = crate::config::RestartPolicy::Never;
    let fake = Fake {
        unstartable: BTreeSet::from(["b".to_string()]),
        ..Fake::default()
    };
    let (sup, executor) = booted(vec![spec("a"), b], fake);
    assert_eq!(
        executor.hands.done,
        [
            Called::Spawn("a".into()),
            Called::Spawn("b".into()),
            Called::SpawnsDone(vec![1001]),
        ]
    );
    assert_eq!(status(&sup, "a"), Status::Running);
    assert_eq!(status(&sup, "b"), Status::Failed);
}

#[test]
fn replies_reach_the_client_whose_request_they_answer() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    let (first, mut first_rx) = call(Request::Status {
        services: vec!["a".into()],
    });
    let (second, mut second_rx) = call(Request::Status {
        services: vec!["nope".into()],
    });
    let first = executor.accept(first);
    let second = executor.accept(second);
    // Answered in the other order: each reply still finds its own client.
    let effects = sup.handle(second, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    let effects = sup.handle(first, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    let to_first = first_rx.try_recv().expect("a reply for the first");
    let to_second = second_rx.try_recv().expect("a reply for the second");
    assert!(to_first.ok, "{to_first:?}");
    assert!(!to_second.ok, "{to_second:?}");
    assert_eq!(
        to_second.error.map(|e| e.kind),
        Some(ErrorKind::UnknownService)
    );
    assert!(first_rx.try_recv().is_err(), "one reply per request");
}

#[test]
fn a_reply_for_a_client_that_left_is_dropped_quietly() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    let (status, rx) = call(Request::Status { services: vec![] });
    let event = executor.accept(status);
    drop(rx);
    let effects = sup.handle(event, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
}

#[test]
fn logs_and_save_are_served_to_their_own_client() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    let (logs, mut logs_rx) = call(Request::Logs {
        services: vec!["a".into()],
        lines: 10,
        since: None,
        follow: false,
    });
    let event = executor.accept(logs);
    let effects = sup.handle(event, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    assert!(logs_rx.try_recv().expect("lines").ok);
    let (save, mut save_rx) = call(Request::Save);
    let event = executor.accept(save);
    let effects = sup.handle(event, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    let saved = save_rx.try_recv().expect("the path");
    assert!(saved.ok, "{saved:?}");
    assert!(
        executor
            .hands
            .done
            .ends_with(&[Called::ServeLogs(vec!["a".into()]), Called::SaveState]),
        "{:?}",
        executor.hands.done
    );
}

#[test]
fn a_signal_that_cannot_be_sent_is_logged_and_the_effects_after_it_still_run() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    executor.hands.signals_fail = true;
    let sigterm = Signal(Nix::SIGTERM);
    let effects = vec![
        Effect::Signal {
            service: "a".into(),
            target: Target::Group(1001),
            signal: sigterm,
        },
        Effect::KillProbe {
            service: "a".into(),
        },
        Effect::CheckGroup {
            service: "a".into(),
            pgid: 1001,
        },
    ];
    executor.hands.done.clear();
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    assert_eq!(
        executor.hands.done,
        [
            Called::Signal(Target::Group(1001), Nix::SIGTERM as i32),
            Called::KillProbe("a".into()),
            Called::GroupCheck(1001),
        ]
    );
}

#[test]
fn a_group_check_is_answered_at_once_and_what_it_settles_is_carried_out_in_the_same_turn() {
    for empty in [false, true] {
        let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
        executor.hands.groups_empty = empty;
        let (stop, mut rx) = call(Request::Stop {
            services: vec!["a".into()],
            all: false,
        });
        let event = executor.accept(stop);
        let effects = sup.handle(event, Now::real());
        assert_eq!(executor.carry_out(&mut sup, effects), None);
        assert!(rx.try_recv().is_err(), "not stopped yet");
        executor.hands.done.clear();
        let exited = Event::ChildExited {
            pid: 1001,
            status: crate::process::ExitStatus::Signal(Nix::SIGTERM as i32),
        };
        let effects = sup.handle(exited, Now::real());
        assert_eq!(executor.carry_out(&mut sup, effects), None);
        assert_eq!(executor.hands.done, [Called::GroupCheck(1001)]);
        // An empty group ends the stop within this turn: the client hears at once.
        assert_eq!(rx.try_recv().is_ok(), empty, "group empty: {empty}");
        let want = if empty {
            Status::Stopped
        } else {
            Status::Stopping
        };
        assert_eq!(status(&sup, "a"), want);
    }
}

#[test]
fn only_a_config_loaded_for_a_reload_may_change_what_is_watched() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    executor.hands.done.clear();
    let effects = vec![
        Effect::LoadConfig {
            token: None,
            dry_run: true,
        },
        Effect::NotifyParent(ParentNote::Reloading),
    ];
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    assert_eq!(
        executor.hands.done,
        [Called::LoadConfig, Called::NotifyParent]
    );
    assert!(!executor.reloaded, "a dry run changes nothing to watch");
    let effects = vec![Effect::LoadConfig {
        token: None,
        dry_run: false,
    }];
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    assert!(executor.reloaded);
}

#[test]
fn exit_ends_the_turn_and_nothing_queued_after_it_runs() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    executor.hands.done.clear();
    let effects = vec![
        Effect::NotifyParent(ParentNote::Reloading),
        Effect::Exit { code: 3 },
        Effect::KillProbe {
            service: "a".into(),
        },
    ];
    assert_eq!(executor.carry_out(&mut sup, effects), Some(3));
    assert_eq!(executor.hands.done, [Called::NotifyParent]);
}

#[test]
fn a_probe_starts_only_for_a_service_still_in_the_table() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    executor.hands.done.clear();
    let probe = |service: &str| Effect::Probe {
        service: service.into(),
        pid: 1001,
        purpose: Purpose::Health,
        probe: Probe::Tcp("127.0.0.1:1".into()),
        timeout: Duration::from_secs(1),
    };
    assert_eq!(
        executor.carry_out(&mut sup, vec![probe("gone"), probe("a")]),
        None
    );
    assert_eq!(
        executor.hands.done,
        [Called::Probe("a".into(), Purpose::Health)]
    );
}

#[test]
fn a_resurrect_reads_the_snapshot_and_its_answer_reaches_the_client() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    let (resurrect, mut rx) = call(Request::Resurrect);
    let event = executor.accept(resurrect);
    let effects = sup.handle(event, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    assert!(executor.hands.done.contains(&Called::LoadSnapshot));
    let reply = rx.try_recv().expect("an answer");
    assert!(!reply.ok, "no state file: {reply:?}");
}

#[test]
fn reports_reach_the_hands_and_events_are_served_to_their_own_client() {
    let (mut sup, mut executor) = booted(vec![spec("a")], Fake::default());
    let told: Vec<&str> = executor
        .hands
        .reports
        .iter()
        .map(|r| r.kind.name())
        .collect();
    assert_eq!(
        told,
        ["spawned", "ready"],
        "the spawn's answer was reported"
    );
    let (events, mut events_rx) = call(Request::Events {
        services: vec!["a".into()],
        since: None,
    });
    let event = executor.accept(events);
    let effects = sup.handle(event, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    assert_eq!(
        executor.hands.done.last(),
        Some(&Called::ServeEvents(vec!["a".into()]))
    );
    // The fake keeps the channel only as long as the call: nothing was replied here.
    assert!(events_rx.try_recv().is_err());
    let (typo, mut typo_rx) = call(Request::Events {
        services: vec!["b".into()],
        since: None,
    });
    let event = executor.accept(typo);
    let effects = sup.handle(event, Now::real());
    assert_eq!(executor.carry_out(&mut sup, effects), None);
    let refused = typo_rx.try_recv().expect("an error reply");
    assert_eq!(
        refused.error.map(|e| e.kind),
        Some(ErrorKind::UnknownService)
    );
}
