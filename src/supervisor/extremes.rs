//! Nothing `validate` accepts can crash the supervisor (issue 11): configs with every
//! duration and count at the edges of what loads (zero, a nanosecond, the one-year limit)
//! are driven through boot, exits, probes, operator requests, ticks at far-future times and
//! shutdown, on the pure handler with a fake world. The property: no panic, and a shutdown
//! always ends with `Effect::Exit`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;

use crate::config::{self, Config, ExitWhen};
use crate::ipc::Request;
use crate::process::{ExitStatus, Target};

use super::core::Supervisor;
use super::event::{Effect, Event, Now, ProbeFailure};
use super::policy::Jitter;

const SERVICES: [&str; 3] = ["alpha", "beta", "gamma"];

/// Durations at the edges of what loads, and a few ordinary ones.
fn duration() -> BoxedStrategy<String> {
    prop_oneof![
        Just("0s".to_string()),
        Just("1ns".to_string()),
        Just("1ms".to_string()),
        Just("1s".to_string()),
        Just("1year".to_string()),
        Just("31557599s 999ms 999us 999ns".to_string()),
        (0u64..=31_557_600).prop_map(|s| format!("{s}s")),
    ]
    .boxed()
}

/// A duration that must be longer than zero.
fn positive_duration() -> BoxedStrategy<String> {
    duration()
        .prop_filter("longer than zero", |d| d != "0s")
        .boxed()
}

fn count() -> BoxedStrategy<u32> {
    prop_oneof![Just(0), Just(1), Just(u32::MAX), any::<u32>()].boxed()
}

/// One `[services.NAME]` table with extreme values.
fn service(name: &'static str, index: usize) -> BoxedStrategy<String> {
    let timing = (
        duration(),
        duration(),
        duration(),
        duration(),
        duration(),
        duration(),
        duration(),
    );
    let limits = (
        count(),
        count(),
        0u32..=1000,
        positive_duration(),
        positive_duration(),
    );
    let kinds = (0usize..5, any::<bool>(), 0usize..3, any::<bool>());
    (timing, limits, kinds)
        .prop_map(
            move |(
                (delay_a, delay_b, min_uptime, window, kill, ready_timeout, cooldown),
                (max_restarts, retries, log_keep, interval, timeout),
                (ready, health, restart, depends),
            )| {
                let (delay, delay_max) = ordered(&delay_a, &delay_b);
                let ready = [
                    "",
                    "ready = { notify = true }\nwatchdog = \"1year\"\n",
                    "ready = { log = \"up\" }\n",
                    "ready = { tcp = \"127.0.0.1:1\" }\n",
                    "ready = { exec = [\"true\"] }\n",
                ][ready];
                let health = if health {
                    format!(
                        "health = {{ exec = [\"true\"], interval = \"{interval}\", timeout = \
                     \"{timeout}\", retries = {} }}\n",
                        retries.max(1)
                    )
                } else {
                    String::new()
                };
                let restart = ["always", "on-failure", "never"][restart];
                let depends = if depends && index > 0 {
                    format!("depends_on = [\"{}\"]\n", SERVICES[index - 1])
                } else {
                    String::new()
                };
                format!(
                    "[services.{name}]\ncmd = [\"x\"]\nrestart = \"{restart}\"\n\
                 restart_delay = \"{delay}\"\nrestart_delay_max = \"{delay_max}\"\n\
                 min_uptime = \"{min_uptime}\"\nrestart_window = \"{window}\"\n\
                 kill_timeout = \"{kill}\"\nready_timeout = \"{ready_timeout}\"\n\
                 failed_cooldown = \"{cooldown}\"\nmax_restarts = {max_restarts}\n\
                 log_keep = {log_keep}\nlog_max_size = \"1\"\n{ready}{health}{depends}\n"
                )
            },
        )
        .boxed()
}

/// The two durations, shorter first (`restart_delay` may not exceed `restart_delay_max`).
fn ordered(a: &str, b: &str) -> (String, String) {
    let parse = |d: &str| humantime::parse_duration(d).unwrap_or_default();
    if parse(a) <= parse(b) {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

fn config_text() -> impl Strategy<Value = String> {
    (
        duration(),
        service(SERVICES[0], 0),
        service(SERVICES[1], 1),
        service(SERVICES[2], 2),
    )
        .prop_map(|(shutdown, a, b, c)| {
            format!("[runpm]\nshutdown_timeout = \"{shutdown}\"\n\n{a}{b}{c}")
        })
}

/// Something that happens to the supervisor.
#[derive(Debug, Clone)]
enum Step {
    /// The service's main process exits on its own with this code.
    Exit(usize, i32),
    /// Time passes by this much, then the due deadlines are handled.
    Wait(Duration),
    /// Time jumps to the next deadline.
    NextDeadline,
    /// The running process says it is ready (a `ready.log` line).
    Ready(usize),
    Stop(usize),
    Start(usize),
    Restart(usize),
    Terminate,
}

fn step() -> BoxedStrategy<Step> {
    let service = 0..SERVICES.len();
    prop_oneof![
        (
            service.clone(),
            prop_oneof![Just(0), Just(1), Just(137), any::<i32>()]
        )
            .prop_map(|(s, c)| Step::Exit(s, c)),
        prop_oneof![
            Just(Duration::from_millis(1)),
            Just(Duration::from_secs(1)),
            Just(Duration::from_secs(3600)),
            Just(Duration::from_secs(31_557_600)),
            Just(Duration::from_secs(50 * 31_557_600)),
        ]
        .prop_map(Step::Wait),
        Just(Step::NextDeadline),
        service.clone().prop_map(Step::Ready),
        service.clone().prop_map(Step::Stop),
        service.clone().prop_map(Step::Start),
        service.prop_map(Step::Restart),
        Just(Step::Terminate),
    ]
    .boxed()
}

/// The supervisor with a world of fake processes around it.
struct World {
    sup: Supervisor,
    cfg: Config,
    t0: Instant,
    elapsed: Duration,
    next_pid: i32,
    /// Live fake processes, by pid: their service.
    alive: BTreeMap<i32, String>,
    /// Whether processes ignore SIGTERM (then only SIGKILL ends them).
    stubborn: bool,
    /// Events the world has yet to deliver (exits caused by signals).
    pending: VecDeque<Event>,
    exited: bool,
    token: u64,
}

impl World {
    fn now(&self) -> Now {
        Now {
            at: self.t0 + self.elapsed,
            wall: SystemTime::UNIX_EPOCH + self.elapsed,
        }
    }

    /// Carries out effects like the runtime, answering each at once.
    fn carry_out(&mut self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            if self.exited {
                return;
            }
            let answer = match effect {
                Effect::Spawn { service, .. } => {
                    self.next_pid += 1;
                    self.alive.insert(self.next_pid, service.clone());
                    Some(Event::Spawned {
                        service,
                        pid: self.next_pid,
                        start_time: None,
                    })
                }
                Effect::Signal { target, signal, .. } => {
                    let pid = match target {
                        Target::Process(pid) | Target::Group(pid) | Target::Cgroup(pid) => pid,
                    };
                    let kill = signal.0 == nix::sys::signal::Signal::SIGKILL;
                    if (kill || !self.stubborn) && self.alive.remove(&pid).is_some() {
                        self.pending.push_back(Event::ChildExited {
                            pid,
                            status: ExitStatus::Signal(signal.number()),
                        });
                    }
                    None
                }
                Effect::ApplyLimits { .. } => None,
                Effect::CheckGroup { service, pgid } => {
                    (!self.alive.contains_key(&pgid)).then_some(Event::GroupEmpty { service, pgid })
                }
                Effect::Probe {
                    service,
                    pid,
                    purpose,
                    ..
                } => Some(Event::ProbeDone {
                    service,
                    pid,
                    purpose,
                    outcome: if pid % 2 == 0 {
                        Ok(())
                    } else {
                        Err(ProbeFailure::Exited(ExitStatus::Code(1)))
                    },
                }),
                Effect::LoadSnapshot { token } => Some(Event::SnapshotLoaded {
                    token,
                    wanted_up: Err(crate::state::SnapshotError::NoStateFile),
                }),
                Effect::LoadConfig { token, dry_run } => Some(Event::ConfigLoaded {
                    token,
                    dry_run,
                    result: Ok(self.cfg.clone()),
                }),
                Effect::Reply { .. }
                | Effect::KillProbe { .. }
                | Effect::NotifyParent(_)
                | Effect::ServeLogs { .. }
                | Effect::SaveState { .. }
                | Effect::ServeEvents { .. }
                | Effect::Report(_) => None,
                Effect::Reexec { .. } => None,
                Effect::Exit { .. } => {
                    self.exited = true;
                    None
                }
            };
            if let Some(event) = answer {
                let now = self.now();
                queue.extend(self.sup.handle(event, now));
            }
        }
    }

    fn handle(&mut self, event: Event) {
        if self.exited {
            return;
        }
        let now = self.now();
        let effects = self.sup.handle(event, now);
        self.carry_out(effects);
        while let Some(event) = self.pending.pop_front() {
            if self.exited {
                return;
            }
            let now = self.now();
            let effects = self.sup.handle(event, now);
            self.carry_out(effects);
        }
    }

    fn pid_of(&self, index: usize) -> Option<i32> {
        self.sup.service(SERVICES[index])?.pid()
    }

    fn request(&mut self, request: Request) {
        self.token += 1;
        let token = self.token;
        self.handle(Event::Request { token, request });
    }

    /// Jumps to the next deadline, if any, and handles it.
    fn next_deadline(&mut self) -> bool {
        let Some(at) = self.sup.next_deadline() else {
            return false;
        };
        self.elapsed = self.elapsed.max(at.saturating_duration_since(self.t0));
        self.handle(Event::Tick);
        true
    }

    fn step(&mut self, step: &Step) {
        let one = |i: usize| vec![SERVICES[i].to_string()];
        match *step {
            Step::Exit(i, code) => {
                if let Some(pid) = self.pid_of(i) {
                    self.alive.remove(&pid);
                    self.handle(Event::ChildExited {
                        pid,
                        status: ExitStatus::Code(code),
                    });
                }
            }
            Step::Wait(d) => {
                self.elapsed += d;
                self.handle(Event::Tick);
            }
            Step::NextDeadline => {
                self.next_deadline();
            }
            Step::Ready(i) => {
                if let Some(pid) = self.pid_of(i) {
                    self.handle(Event::LogReady {
                        service: SERVICES[i].to_string(),
                        pid,
                    });
                }
            }
            Step::Stop(i) => self.request(Request::Stop {
                services: one(i),
                all: false,
            }),
            Step::Start(i) => self.request(Request::Start {
                services: one(i),
                all: false,
            }),
            Step::Restart(i) => self.request(Request::Restart {
                services: one(i),
                all: false,
            }),
            Step::Terminate => self.handle(Event::Terminate { signal: "SIGTERM" }),
        }
    }
}

/// Boots `cfg` in a fake world, takes `steps`, then shuts down (SIGTERM, then every deadline
/// as it comes, however far ahead).
fn run(cfg: Config, steps: &[Step], stubborn: bool) -> World {
    let mut world = World {
        sup: Supervisor::new(&cfg, Some(ExitWhen::AllExited), Jitter::new(7)),
        cfg: cfg.clone(),
        t0: Instant::now(),
        elapsed: Duration::ZERO,
        next_pid: 100,
        alive: BTreeMap::new(),
        stubborn,
        pending: VecDeque::new(),
        exited: false,
        token: 0,
    };
    let now = world.now();
    let effects = world.sup.boot(&cfg, None, None, now);
    world.carry_out(effects);
    for step in steps {
        world.step(step);
    }
    world.step(&Step::Terminate);
    // Ticks come later and later (a millisecond after the last, then two, four…), so that
    // a health check every nanosecond cannot keep the clock from reaching the kill and
    // shutdown deadlines, up to a year ahead.
    for round in 0..100u32 {
        let Some(due) = world.sup.next_deadline() else {
            break;
        };
        let late = world.elapsed + Duration::from_millis(1 << round.min(40));
        world.elapsed = late.max(due.saturating_duration_since(world.t0));
        world.handle(Event::Tick);
        if world.exited {
            break;
        }
    }
    world
}

fn load(text: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = camino::Utf8PathBuf::from_path_buf(dir.path().join("services.toml"))
        .map_err(|_| "temporary path is not UTF-8".to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    config::load(&path).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_accepted_config_runs_stops_and_shuts_down_without_a_panic(
        text in config_text(),
        steps in prop::collection::vec(step(), 0..30),
        stubborn in any::<bool>(),
    ) {
        let cfg = load(&text).unwrap_or_else(|e| panic!("not accepted:\n{text}\n{e}"));
        let world = run(cfg, &steps, stubborn);
        prop_assert!(world.exited, "no exit after shutdown; alive: {:?}", world.alive);
    }
}

#[test]
fn durations_beyond_a_year_are_refused_where_they_are_written() {
    for key in [
        "kill_timeout",
        "ready_timeout",
        "watchdog",
        "failed_cooldown",
        "restart_delay",
        "restart_delay_max",
        "min_uptime",
        "restart_window",
    ] {
        let text = format!(
            "[services.web]\ncmd = [\"x\"]\nready = {{ notify = true }}\n\
             {key} = \"18446744073709551615s\"\n"
        );
        let error = load(&text).expect_err(key);
        assert!(
            error.contains("services.toml:4:") && error.contains("at most `1year`"),
            "{key}: {error}"
        );
    }
    let error = load(
        "[services.web]\ncmd = [\"x\"]\n\
         health = { exec = [\"true\"], interval = \"400days\" }\n",
    )
    .expect_err("health.interval");
    assert!(error.contains("services.toml:3:"), "{error}");
    let error = load("[runpm]\nshutdown_timeout = \"2years\"\n[services.web]\ncmd = [\"x\"]\n")
        .expect_err("shutdown_timeout");
    assert!(error.contains("services.toml:2:"), "{error}");
    let error =
        load("[services.web]\ncmd = [\"x\"]\nlog_keep = 4294967295\n").expect_err("log_keep");
    assert!(
        error.contains("services.toml:3:") && error.contains("at most 1000"),
        "{error}"
    );
    // The limit itself is accepted.
    load("[services.web]\ncmd = [\"x\"]\nkill_timeout = \"1year\"\nlog_keep = 1000\n")
        .expect("the limits are accepted");
}

/// Specs that never went through `validate` (read back from a state file written by another
/// version, say) with every duration at `Duration::MAX`: the deadline arithmetic saturates.
#[test]
fn durations_the_clock_cannot_hold_saturate_instead_of_panicking() {
    use crate::config::{Health, Probe, Ready, RestartPolicy, Settings};
    let mut specs = BTreeMap::new();
    for (i, name) in SERVICES.iter().enumerate() {
        let mut spec = crate::testing::spec(name);
        spec.restart = RestartPolicy::Always;
        spec.restart_delay = Duration::MAX;
        spec.restart_delay_max = Duration::MAX;
        spec.min_uptime = Duration::MAX;
        spec.restart_window = Duration::MAX;
        spec.kill_timeout = Duration::MAX;
        spec.ready_timeout = Duration::MAX;
        spec.failed_cooldown = Duration::MAX;
        spec.max_restarts = if i == 0 { 0 } else { u32::MAX };
        spec.ready = Some(Ready::Notify);
        spec.watchdog = Some(Duration::MAX);
        spec.health = Some(Health {
            probe: Probe::Exec(vec!["true".into()]),
            interval: Duration::MAX,
            timeout: Duration::MAX,
            retries: u32::MAX,
        });
        specs.insert(name.to_string(), spec);
    }
    let cfg = Config {
        source: "/x/services.toml".into(),
        base_dir: "/x".into(),
        settings: Settings {
            shutdown_timeout: Duration::MAX,
            ..Settings::default()
        },
        services: specs,
        replicated: Default::default(),
        selection: Default::default(),
    };
    let steps = [
        Step::Exit(0, 1),
        Step::Exit(1, 1),
        Step::NextDeadline,
        Step::Wait(Duration::from_secs(50 * 31_557_600)),
        Step::Restart(2),
        Step::NextDeadline,
        Step::Stop(1),
        Step::NextDeadline,
    ];
    for stubborn in [false, true] {
        let world = run(cfg.clone(), &steps, stubborn);
        assert!(
            world.exited,
            "no exit after shutdown; alive: {:?}",
            world.alive
        );
    }
}
