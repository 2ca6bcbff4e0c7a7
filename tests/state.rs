//! The persisted state end to end (issue 4): `state.json`, what a new daemon does with it
//! after a crash of the old one or a reboot, bad files, last-known-good, `runpmctl save` and
//! `runpmctl resurrect`, with the real binaries.
//!
//! The question every test answers the way a user would: how many copies of each service run
//! on the machine, counted in `/proc` by a marker in their environment (whoever started them,
//! whatever became of their parent), and was any process that runpm did not start touched.
//!
//! A daemon is "crashed" with [`Daemon::crash`]: `kill -9` of the daemon alone, its services
//! left running as orphans, as after a real crash. A [`StrayGuard`] ends those orphans if the
//! test fails before the next daemon's guard takes them over.
//!
//! The crash loop prints its figures: `cargo nextest run --no-capture --test state crash_loop`
//! (`RUNPM_CRASH_SEED`, `RUNPM_CRASH_ITERATIONS` and `RUNPM_CRASH_MOMENTS` override the
//! defaults).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The environment variable that marks a service's processes: `<project>-<service>`.
const MARKER: &str = "RUNPM_TEST_MARKER";

fn marker(p: &Project, name: &str) -> String {
    let tag = p
        .path()
        .file_name()
        .expect("a temporary directory has a name")
        .to_string_lossy();
    format!("{tag}-{name}")
}

/// The live processes of service `name` on the whole machine.
fn copies(p: &Project, name: &str) -> Vec<i32> {
    processes_with_env(MARKER, &marker(p, name))
}

/// A quiet service: `sleep` (the main process itself, no shell), marked. `extra` is more
/// TOML for its table.
fn quiet(p: &Project, name: &str, extra: &str) -> String {
    format!(
        "[services.{name}]\ncmd = [\"sleep\", \"1000000\"]\nenv = {{ {MARKER} = \"{}\" }}\n{extra}\n",
        marker(p, name)
    )
}

// ---------------------------------------------------------------------------------------------
// The state file
// ---------------------------------------------------------------------------------------------

fn state_path(p: &Project) -> PathBuf {
    p.file(".runpm/state.json")
}

/// Parses a state file's bytes twice: as JSON, and with runpm's own strict reader (which
/// refuses what a new daemon would refuse).
fn parse_state(bytes: &[u8]) -> Result<Value, String> {
    runpm::state::parse(bytes).map_err(|e| e.to_string())?;
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

fn read_state(p: &Project) -> Value {
    let path = state_path(p);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    parse_state(&bytes).unwrap_or_else(|e| {
        panic!(
            "{path:?} does not parse ({e}):\n{}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// Writes a (doctored) state file while no daemon runs.
fn write_state(p: &Project, state: &Value) {
    let text = serde_json::to_string_pretty(state).expect("serialise");
    std::fs::write(state_path(p), text).expect("write state.json");
}

/// The record of service `name` in a state document.
fn record<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["services"]
        .as_array()
        .unwrap_or_else(|| panic!("`services` should be a list: {state}"))
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no record of `{name}` in {state}"))
}

fn record_mut<'a>(state: &'a mut Value, name: &str) -> &'a mut Value {
    state["services"]
        .as_array_mut()
        .expect("`services` is a list")
        .iter_mut()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no record of `{name}`"))
}

/// Waits until the state file parses and `pred` holds for it; returns it.
fn wait_state(p: &Project, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let mut last = None;
    wait_for_some(timeout, || {
        let bytes = std::fs::read(state_path(p)).ok()?;
        let state = parse_state(&bytes).ok()?;
        let ok = pred(&state);
        last = Some(state.clone());
        ok.then_some(state)
    })
    .unwrap_or_else(|| panic!("the state file did not reach the expected state within {timeout:?}; last seen:\n{last:#?}"))
}

/// The files a bad state file was moved aside to (`state.json.bad-*`).
fn bad_files(p: &Project) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(p.file(".runpm"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("state.json.bad-")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn this_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("read the boot id")
        .trim()
        .to_owned()
}

/// The inode of this process's pid namespace, as the state file writes it.
fn this_pid_ns() -> String {
    let link = pid_ns(std::process::id() as i32).expect("read /proc/self/ns/pid");
    link.trim_start_matches("pid:[")
        .trim_end_matches(']')
        .to_owned()
}

/// Stops the daemon in order (`runpmctl shutdown --yes`) and waits until it is gone.
fn shutdown(p: &Project, daemon: &Daemon) {
    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(
        daemon.wait_exit(secs(10)),
        "the daemon should be gone after shutdown\n{}",
        daemon.describe()
    );
}

/// Waits until each of `names` runs per `status --json`; returns their pids.
fn running(p: &Project, names: &[&str]) -> BTreeMap<String, i32> {
    names
        .iter()
        .map(|n| (n.to_string(), p.running_pid(n, secs(10))))
        .collect()
}

/// Asserts that exactly one process of each of `names` runs on the machine, and that it is
/// the one `status` names.
fn assert_one_copy_each(p: &Project, names: &[&str], context: &str) {
    for name in names {
        let pid = p.running_pid(name, secs(10));
        let found = copies(p, name);
        assert_eq!(
            found,
            vec![pid],
            "{context}: `{name}` should run exactly once, as pid {pid} (per status)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A stranger: a live process that runpm never ran
// ---------------------------------------------------------------------------------------------

/// A process runpm never started, that records every catchable signal it receives in
/// `stranger.signals` and appends to `stranger.ticks` as it lives. Killed on drop.
struct Stranger {
    child: Child,
    pid: i32,
    start_time: u64,
}

impl Stranger {
    fn start(p: &Project) -> Stranger {
        let script = r#"
            for s in HUP INT QUIT USR1 USR2 TERM CONT ALRM PIPE WINCH; do
                trap "echo $s >> stranger.signals" $s
            done
            echo $$ > stranger.pid
            while :; do echo tick >> stranger.ticks; sleep 0.05; done
        "#;
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .current_dir(p.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the stranger");
        let pid = p.read_pid("stranger.pid", secs(5));
        assert_eq!(pid, child.id() as i32);
        let start_time = start_time(pid).expect("the stranger's start time");
        Stranger {
            child,
            pid,
            start_time,
        }
    }

    /// Asserts that the stranger is the same process, alive, not stopped, and has received
    /// no signal: it has gone on ticking for a few more rounds, after which a trapped signal
    /// would have been written down.
    fn assert_untouched(&self, p: &Project, context: &str) {
        assert_eq!(
            start_time(self.pid),
            Some(self.start_time),
            "{context}: the stranger (pid {}) should be the same process",
            self.pid
        );
        p.wait_growth("stranger.ticks", 3, secs(5));
        let state = proc_state(self.pid);
        // Alive and not stopped (`D` is a short wait for the disk while it writes a tick).
        assert!(
            matches!(state, Some('S' | 'R' | 'D')),
            "{context}: the stranger should be running, not {state:?}"
        );
        assert_eq!(
            p.read("stranger.signals"),
            "",
            "{context}: the stranger should have received no signal"
        );
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The crash loop
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a seeded generator, so a failing run can be repeated with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The services that must always run exactly once; `crasher` exits after ~20 ms and is
/// restarted at once, for ever, so that restart bursts go on all the time.
const STEADY: [&str; 3] = ["db", "web", "worker"];

/// The crash loop's config; `generation[i]` is `STEADY[i]`'s `GEN`, bumped to make a
/// reload restart it.
fn crash_loop_config(p: &Project, generation: &[u32; 3]) -> String {
    let steady = |i: usize, extra: &str| {
        let name = STEADY[i];
        format!(
            "[services.{name}]\ncmd = [\"sleep\", \"1000000\"]\n\
             env = {{ {MARKER} = \"{}\", GEN = \"{}\" }}\n{extra}\n",
            marker(p, name),
            generation[i]
        )
    };
    format!(
        "{}{}{}\
         [services.crasher]\n\
         cmd = [\"sh\", \"-c\", \"sleep 0.02; exit 1\"]\n\
         env = {{ {MARKER} = \"{}\" }}\n\
         restart = \"always\"\n\
         restart_delay = \"0s\"\n\
         max_restarts = 1000000\n",
        steady(0, ""),
        steady(1, "depends_on = [\"db\"]"),
        steady(2, ""),
        marker(p, "crasher"),
    )
}

#[derive(Default, Debug)]
struct Figures {
    iterations: u64,
    /// Kills by moment: idle 0–300 ms after ready, while a reload is in flight, at once
    /// after a reload returned, while `restart --all` is in flight.
    kills: [u64; 4],
    counted: u64,
    duplicates: u64,
    lost: u64,
    state_reads: u64,
    corrupt: u64,
    stale: u64,
    notes: Vec<String>,
    /// The kills since the last count: when, and which pids state.json held right after.
    kills_since_count: Vec<String>,
}

const MOMENTS: [&str; 4] = [
    "idle",
    "during a reload",
    "just after a reload",
    "during restart --all",
];

/// After a (re)start: waits until every steady service runs, then counts each one's copies
/// on the machine. A duplicate is recorded and the extra copies (those `status` does not
/// name) are killed so that the next round starts clean; a service that does not run, or
/// runs nowhere, is lost.
fn settle_and_count(p: &Project, round: u64, figures: &mut Figures) {
    figures.counted += 1;
    let kills = std::mem::take(&mut figures.kills_since_count);
    let mut pids = BTreeMap::new();
    for name in STEADY {
        let pid = wait_for_some(secs(15), || {
            let out = p.ctl(&["status", "--json"]);
            let status: Value = serde_json::from_str(&out.stdout).ok()?;
            let s = services_by_name(&status).remove(name)?;
            let pid = s["pid"].as_i64()? as i32;
            (s["status"] == "running" && is_alive(pid)).then_some(pid)
        });
        match pid {
            Some(pid) => {
                pids.insert(name, pid);
            }
            None => {
                figures.lost += 1;
                figures
                    .notes
                    .push(format!("round {round}: `{name}` is not running after 15 s"));
            }
        }
    }
    for (&name, &pid) in &pids {
        // The replaced copy of a previous daemon is gone before its successor starts; a
        // short grace only absorbs the scan racing an exit.
        let mut found = Vec::new();
        wait_for(secs(2), || {
            found = copies(p, name);
            found == [pid]
        });
        if found.len() > 1 {
            figures.duplicates += found.len() as u64 - 1;
            let who: Vec<String> = found
                .iter()
                .map(|&c| {
                    format!(
                        "pid {c} (ppid {:?}, start {:?}){}",
                        ppid(c),
                        start_time(c),
                        if c == pid { " per status" } else { "" }
                    )
                })
                .collect();
            figures.notes.push(format!(
                "round {round}: `{name}` runs {} times: {}; kills since the last count: {}",
                found.len(),
                who.join(", "),
                kills.join("; ")
            ));
            for extra in found.iter().filter(|&&c| c != pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*extra),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        } else if !found.contains(&pid) {
            figures.lost += 1;
            figures.notes.push(format!(
                "round {round}: `{name}`: status says pid {pid}, the machine has {found:?}"
            ));
        }
    }
    // What runs is on disk soon after (the write of a new pid is urgent).
    let on_disk = wait_for(secs(3), || {
        let Ok(bytes) = std::fs::read(state_path(p)) else {
            return false;
        };
        let Ok(state) = parse_state(&bytes) else {
            return false;
        };
        pids.iter()
            .all(|(name, pid)| record(&state, name)["pid"].as_i64() == Some(i64::from(*pid)))
    });
    if !on_disk {
        figures.stale += 1;
        figures.notes.push(format!(
            "round {round}: state.json does not record the running pids {pids:?} after 3 s"
        ));
    }
}

/// Reads the state file at the moment of a kill and counts it if it does not parse.
fn check_state_at_kill(p: &Project, round: u64, when: &str, figures: &mut Figures) {
    figures.state_reads += 1;
    match std::fs::read(state_path(p)) {
        Ok(bytes) => {
            if let Err(e) = parse_state(&bytes) {
                figures.corrupt += 1;
                figures.notes.push(format!(
                    "round {round}: state.json {when} the kill does not parse: {e}"
                ));
            }
        }
        Err(e) => {
            figures.corrupt += 1;
            figures.notes.push(format!(
                "round {round}: state.json {when} the kill cannot be read: {e}"
            ));
        }
    }
}

/// The headline test: `kill -9` of the daemon at random moments, ≥ 30 times, and after each
/// restart every service runs exactly once (counted across the whole machine), none is lost,
/// and `state.json` parses at every kill.
#[test]
fn crash_loop_never_duplicates_or_loses_a_service() {
    let seed = env_number("RUNPM_CRASH_SEED", 0x5EED_0004);
    let iterations = env_number("RUNPM_CRASH_ITERATIONS", 40).max(30);
    let p = Project::new(secs(170.max(iterations * 4)));
    let _strays = p.stray_guard();
    // `RUNPM_CRASH_MOMENTS=0,3` limits the kills to some moments (indexes into MOMENTS).
    let moments: Vec<usize> = match std::env::var("RUNPM_CRASH_MOMENTS") {
        Ok(list) => list
            .split(',')
            .map(|m| {
                m.trim()
                    .parse()
                    .ok()
                    .filter(|&m| m < MOMENTS.len())
                    .unwrap_or_else(|| panic!("RUNPM_CRASH_MOMENTS: bad moment {m:?}"))
            })
            .collect(),
        Err(_) => (0..MOMENTS.len()).collect(),
    };
    let mut rng = Rng(seed);
    let mut generation = [0u32; 3];
    p.config(&crash_loop_config(&p, &generation));
    let mut figures = Figures::default();
    // Processes that only pretend to be runpm's: tagged as its `db`, with a forged token,
    // and (as root) one of uid 65534 with none. No daemon may ever signal them.
    let mut strangers = vec![tagged_sleep(&p, "db", Some(&"0f".repeat(32)), None)];
    if need_root("a stranger of uid 65534 is spawned") {
        strangers.push(tagged_sleep(&p, "db", None, Some(65534)));
    }
    let started = Instant::now();

    let mut daemon = p.up_detached(&["--no-watch"]);
    for round in 0..iterations {
        let ready = Instant::now();
        let moment = moments[rng.below(moments.len() as u64) as usize];
        // A command still in flight when the daemon dies; killed when dropped.
        let mut in_flight: Option<Runpm> = None;
        match moment {
            0 => {
                // 0–300 ms after `up -d` reported ready: while survivors of the last daemon
                // may still be being replaced, and in the middle of crasher's restarts.
                // Sleeping is the point here: the kill comes at a random moment.
                let delay = ms(rng.below(301));
                std::thread::sleep(delay.saturating_sub(ready.elapsed()));
            }
            _ => {
                settle_and_count(&p, round, &mut figures);
                match moment {
                    1 | 2 => {
                        // Change one or two services, so the reload restarts them.
                        let first = rng.below(3) as usize;
                        generation[first] += 1;
                        if rng.below(2) == 0 {
                            generation[(first + 1) % 3] += 1;
                        }
                        p.save_atomically("services.toml", &crash_loop_config(&p, &generation));
                        if moment == 1 {
                            let mut cmd = p.program(RUNPMCTL, ["reload"]);
                            cmd.current_dir(p.path());
                            in_flight = Some(Runpm::start(cmd));
                            std::thread::sleep(ms(rng.below(31)));
                        } else {
                            // Right after the new processes were spawned: the window in which
                            // a pid is not yet on disk.
                            p.ctl_ok(&["reload"]);
                        }
                    }
                    _ => {
                        let mut cmd = p.program(RUNPMCTL, ["restart", "--all"]);
                        cmd.current_dir(p.path());
                        in_flight = Some(Runpm::start(cmd));
                        std::thread::sleep(ms(rng.below(31)));
                    }
                }
            }
        }
        figures.kills[moment] += 1;
        check_state_at_kill(&p, round, "just before", &mut figures);
        let (killed, at) = (daemon.pid(), ready.elapsed());
        daemon.crash();
        check_state_at_kill(&p, round, "just after", &mut figures);
        let recorded: Vec<String> = std::fs::read(state_path(&p))
            .ok()
            .and_then(|b| parse_state(&b).ok())
            .map(|state| {
                STEADY
                    .iter()
                    .map(|n| format!("{n}={}", record(&state, n)["pid"]))
                    .collect()
            })
            .unwrap_or_default();
        figures.kills_since_count.push(format!(
            "round {round} killed daemon {killed} {} ({} ms after ready), state.json then recorded {}",
            MOMENTS[moment],
            at.as_millis(),
            recorded.join(" ")
        ));
        drop(in_flight);
        figures.iterations += 1;
        daemon = p.up_detached(&["--no-watch"]);
    }
    settle_and_count(&p, iterations, &mut figures);
    let bad = bad_files(&p);
    if !bad.is_empty() {
        figures.corrupt += bad.len() as u64;
        figures
            .notes
            .push(format!("bad state files moved aside by a daemon: {bad:?}"));
    }
    let crasher_restarts = p.services()["crasher"]["restarts"].as_u64().unwrap_or(0);

    println!(
        "crash loop (seed {seed:#x}, {:.1} s):\n  \
         iterations (kill -9 + restart): {}\n  \
         kill moments: {} idle 0-300 ms after ready, {} during a reload, {} just after a reload, \
         {} during restart --all\n  \
         rounds counted: {}\n  \
         duplicates seen: {}\n  \
         services lost: {}\n  \
         corrupt state files seen: {} (of {} reads at a kill)\n  \
         state files not matching what runs: {}\n  \
         crasher restarts recorded at the end: {crasher_restarts}",
        started.elapsed().as_secs_f64(),
        figures.iterations,
        figures.kills[0],
        figures.kills[1],
        figures.kills[2],
        figures.kills[3],
        figures.counted,
        figures.duplicates,
        figures.lost,
        figures.corrupt,
        figures.state_reads,
        figures.stale,
    );
    for note in &figures.notes {
        println!("  - {note}");
    }
    assert!(figures.iterations >= 30);
    for stranger in &mut strangers {
        let pid = stranger.id() as i32;
        assert!(
            is_alive(pid),
            "pid {pid} only carried runpm's tag, and was signalled"
        );
        let _ = stranger.kill();
        let _ = stranger.wait();
    }
    assert_eq!(
        (
            figures.duplicates,
            figures.lost,
            figures.corrupt,
            figures.stale
        ),
        (0, 0, 0, 0),
        "duplicates, lost services, corrupt state files and stale state files must all be 0: \
         {:#?}\n{}",
        figures.notes,
        daemon.describe()
    );
    drop(daemon);
}

// ---------------------------------------------------------------------------------------------
// Reboot: the boot gate
// ---------------------------------------------------------------------------------------------

/// Three quiet services; the tests stop `gamma` as the operator.
fn three(p: &Project) -> String {
    format!(
        "{}{}{}",
        quiet(p, "alpha", ""),
        quiet(p, "beta", ""),
        quiet(p, "gamma", "")
    )
}

/// Runs alpha, beta and gamma, stops gamma as the operator, and waits until the state file
/// says so. Returns the daemon.
fn run_three_with_gamma_stopped(p: &Project) -> Daemon {
    p.config(&three(p));
    let daemon = p.up_detached(&[]);
    running(p, &["alpha", "beta", "gamma"]);
    p.ctl_ok(&["stop", "gamma"]);
    wait_state(p, secs(5), |s| {
        record(s, "gamma")["stopped_by_operator"] == true
            && ["alpha", "beta"]
                .iter()
                .all(|n| record(s, n)["status"] == "running")
    });
    daemon
}

/// After a reboot (another boot id, or another pid namespace): a recorded pid that now
/// belongs to a live stranger (with its real start time, so only the boot gate protects
/// it) is never signalled; what was running runs again; what the operator stopped stays
/// stopped.
fn reboot(field: &str) {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    let daemon = run_three_with_gamma_stopped(&p);
    shutdown(&p, &daemon);
    drop(daemon);
    // The frozen snapshot still says what ran when the shutdown began.
    let mut state = read_state(&p);
    for name in ["alpha", "beta"] {
        assert_eq!(record(&state, name)["status"], "running", "{state:#}");
        assert!(record(&state, name)["pid"].is_i64(), "{state:#}");
    }
    for name in ["alpha", "beta", "gamma"] {
        assert!(copies(&p, name).is_empty(), "{name} should be gone");
    }

    // "Reboot": another boot id or pid namespace, and alpha's pid now names a stranger,
    // down to its start time.
    let stranger = Stranger::start(&p);
    state[field] = Value::from(match field {
        "boot_id" => "00000000-0000-4000-8000-000000000000",
        _ => "4026531000",
    });
    let alpha = record_mut(&mut state, "alpha");
    alpha["pid"] = Value::from(stranger.pid);
    alpha["pid_start_time"] = Value::from(stranger.start_time);
    write_state(&p, &state);

    let daemon = p.up_detached(&[]);
    let pids = running(&p, &["alpha", "beta"]);
    assert_ne!(pids["alpha"], stranger.pid);
    stranger.assert_untouched(&p, "after a start on a new boot");
    assert_one_copy_each(&p, &["alpha", "beta"], "after a reboot");
    assert!(copies(&p, "gamma").is_empty(), "gamma should stay stopped");
    let gamma = &p.services()["gamma"];
    assert_eq!(gamma["status"], "stopped", "{gamma}");
    assert_eq!(gamma["stopped_by_operator"], true, "{gamma}");

    let log = daemon.wait_for_log("the machine rebooted", secs(5));
    assert!(
        log.contains("none will be signalled"),
        "the log should say that no recorded pid is signalled\n{log}"
    );
    assert!(
        !log.contains("recorded pid"),
        "no recorded pid is even looked at on a new boot\n{log}"
    );
    // The daemon now writes this boot's identity.
    wait_state(&p, secs(5), |s| {
        s["boot_id"] == this_boot_id().as_str() && s["pid_ns"] == this_pid_ns().as_str()
    });

    // A crash and a second start on this boot: no second cleanup, and the same services.
    daemon.crash();
    let daemon = p.up_detached(&[]);
    running(&p, &["alpha", "beta"]);
    assert_one_copy_each(&p, &["alpha", "beta"], "after a second start");
    assert!(copies(&p, "gamma").is_empty(), "gamma should stay stopped");
    stranger.assert_untouched(&p, "after a second start");
    let log = daemon.log();
    assert_eq!(
        log.matches("the machine rebooted").count(),
        1,
        "the reboot cleanup is reported once\n{log}"
    );
}

#[test]
fn reboot_with_another_boot_id_signals_no_recorded_pid_and_resurrects() {
    reboot("boot_id");
}

#[test]
fn reboot_into_another_pid_namespace_signals_no_recorded_pid_and_resurrects() {
    reboot("pid_ns");
}

/// The reboot cleanup is written to the file at once (`cleaned_boot`), before anything else
/// happens: a start that goes no further (here: a foreground `runpm up` that refuses an
/// unknown service name after the state was read) leaves it recorded, and the next start
/// on the same boot does not report it again but still resurrects.
#[test]
fn the_reboot_cleanup_is_recorded_once_per_boot() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    let daemon = run_three_with_gamma_stopped(&p);
    shutdown(&p, &daemon);
    drop(daemon);
    let mut state = read_state(&p);
    state["boot_id"] = Value::from("00000000-0000-4000-8000-000000000000");
    write_state(&p, &state);
    assert_eq!(state["cleaned_boot"], Value::Null);

    // An invalid config and an unknown name: runpm reads the state (last-known-good),
    // records the cleanup, and then refuses the name.
    let good = p.read("services.toml");
    p.config(&format!("{good}\nthis is not toml\n"));
    let file = p.file("services.toml");
    let refused = p.run(
        &["up", "-f", file.to_str().unwrap(), "no-such-service"],
        COMMAND_LIMIT,
    );
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("the machine rebooted"),
        "the first start on the new boot reports the cleanup\n{}",
        refused.describe()
    );
    let state = read_state(&p);
    assert_eq!(state["cleaned_boot"], this_boot_id().as_str(), "{state:#}");
    assert_eq!(
        state["boot_id"], "00000000-0000-4000-8000-000000000000",
        "the snapshot itself is kept for the resurrection"
    );
    assert_eq!(record(&state, "alpha")["status"], "running", "{state:#}");

    p.config(&good);
    let daemon = p.up_detached(&[]);
    running(&p, &["alpha", "beta"]);
    assert_one_copy_each(&p, &["alpha", "beta"], "resurrected");
    assert!(copies(&p, "gamma").is_empty(), "gamma should stay stopped");
    let log = daemon.log();
    assert!(
        !log.contains("the machine rebooted"),
        "the cleanup was already recorded for this boot\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// Same boot: the daemon crashed
// ---------------------------------------------------------------------------------------------

/// A recorded pid that is alive but started at another time (the pid was reused) is not
/// ours: it is never signalled, and the service is started afresh.
#[test]
fn a_reused_pid_is_never_signalled_and_the_service_starts_afresh() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    p.config(&format!(
        "{}{}",
        quiet(&p, "alpha", ""),
        quiet(&p, "beta", "")
    ));
    let daemon = p.up_detached(&[]);
    let pids = running(&p, &["alpha", "beta"]);
    wait_state(&p, secs(5), |s| {
        record(s, "alpha")["pid"] == pids["alpha"] && record(s, "beta")["pid"] == pids["beta"]
    });
    daemon.crash();
    // alpha's process ended while no daemon watched, and its pid went to a stranger.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids["alpha"]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill alpha");
    assert!(wait_dead(pids["alpha"], secs(5)));
    let stranger = Stranger::start(&p);
    let mut state = read_state(&p);
    assert_eq!(state["boot_id"], this_boot_id().as_str());
    let alpha = record_mut(&mut state, "alpha");
    alpha["pid"] = Value::from(stranger.pid);
    alpha["pid_start_time"] = Value::from(stranger.start_time + 1);
    write_state(&p, &state);

    let daemon = p.up_detached(&[]);
    let now = running(&p, &["alpha", "beta"]);
    assert_ne!(now["alpha"], stranger.pid);
    stranger.assert_untouched(&p, "a recorded pid with another start time");
    assert_one_copy_each(&p, &["alpha", "beta"], "after the restart");
    let log = daemon.wait_for_log("alpha: recorded pid", secs(5));
    let line = log
        .lines()
        .find(|l| l.contains("alpha: recorded pid"))
        .unwrap_or_default();
    assert!(
        line.contains(&stranger.pid.to_string())
            && line.contains("another process")
            && line.contains("not signalled"),
        "the log should say why the recorded pid was left alone: {line}"
    );
}

/// kill -9 of the daemon: its services outlive it. The next daemon replaces each survivor
/// (stops it through its pidfd, then starts a fresh copy: the old one's output pipes died
/// with the old daemon), so that at no moment do two copies run, also for a survivor that
/// ignores SIGTERM and must be killed; what the operator stopped stays stopped.
#[test]
fn after_a_daemon_crash_survivors_are_replaced_never_doubled() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    // beta ignores SIGTERM (the ignored disposition survives the exec of sleep).
    let beta = format!(
        "[services.beta]\nshell = 'trap \"\" TERM; exec sleep 1000000'\n\
         env = {{ {MARKER} = \"{}\" }}\nkill_timeout = \"1s\"\n",
        marker(&p, "beta")
    );
    p.config(&format!(
        "{}{beta}{}",
        quiet(&p, "alpha", ""),
        quiet(&p, "gamma", "")
    ));
    let daemon = p.up_detached(&[]);
    let old = running(&p, &["alpha", "beta", "gamma"]);
    p.ctl_ok(&["stop", "gamma"]);
    wait_state(&p, secs(5), |s| {
        record(s, "gamma")["stopped_by_operator"] == true
            && record(s, "alpha")["pid"] == old["alpha"]
            && record(s, "beta")["pid"] == old["beta"]
    });
    daemon.crash();
    for name in ["alpha", "beta"] {
        assert!(is_alive(old[name]), "{name} outlives the daemon's crash");
    }

    // Count the copies all along the replacement, from before the new daemon starts until
    // both services run their fresh copy.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let markers: Vec<(String, String)> = ["alpha", "beta"]
            .iter()
            .map(|n| (n.to_string(), marker(&p, n)))
            .collect();
        std::thread::spawn(move || {
            let mut most: BTreeMap<String, usize> = BTreeMap::new();
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                for (name, m) in &markers {
                    let n = processes_with_env(MARKER, m).len();
                    let e = most.entry(name.clone()).or_default();
                    *e = (*e).max(n);
                }
            }
            most
        })
    };
    let daemon = p.up_detached(&[]);
    let new = wait_for_some(secs(10), || {
        let pids = p.pids();
        let alpha = pids.get("alpha").copied().flatten()?;
        let beta = pids.get("beta").copied().flatten()?;
        (alpha != old["alpha"] && beta != old["beta"] && is_alive(alpha) && is_alive(beta))
            .then_some((alpha, beta))
    })
    .unwrap_or_else(|| panic!("alpha and beta were not replaced\n{}", daemon.describe()));
    done.store(true, std::sync::atomic::Ordering::Release);
    let most = watcher.join().expect("the counting thread");
    assert_eq!(
        most.values().copied().max(),
        Some(1),
        "never two copies of a service at once: {most:?}"
    );
    assert!(!is_alive(old["alpha"]) && !is_alive(old["beta"]));
    assert_eq!(copies(&p, "alpha"), vec![new.0]);
    assert_eq!(copies(&p, "beta"), vec![new.1]);
    assert!(copies(&p, "gamma").is_empty(), "gamma should stay stopped");
    let gamma = &p.services()["gamma"];
    assert_eq!(gamma["stopped_by_operator"], true, "{gamma}");
    let log = daemon.log();
    for name in ["alpha", "beta"] {
        let said = format!(
            "{name}: pid {} of the previous runpm is still running",
            old[name]
        );
        assert!(log.contains(&said), "the log should say `{said}`\n{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad state files
// ---------------------------------------------------------------------------------------------

/// Each unusable state file: the daemon starts from the config, the file is kept aside
/// byte for byte under `state.json.bad-<stamp>`, and the log says why.
#[test]
fn a_bad_state_file_is_moved_aside_and_runpm_starts_from_the_config() {
    let p = Project::new(secs(90));
    let _strays = p.stray_guard();
    // gamma does not start by itself: a state file that was acted upon would start it.
    p.config(&format!(
        "{}{}",
        quiet(&p, "alpha", ""),
        quiet(&p, "gamma", "autostart = false")
    ));
    let daemon = p.up_detached(&[]);
    running(&p, &["alpha"]);
    p.ctl_ok(&["start", "gamma"]);
    let snapshot_pids = running(&p, &["alpha", "gamma"]);
    wait_state(&p, secs(5), |s| {
        record(s, "gamma")["pid"] == snapshot_pids["gamma"]
    });
    shutdown(&p, &daemon);
    drop(daemon);
    let valid = std::fs::read(state_path(&p)).expect("a state file");
    let value: Value = serde_json::from_slice(&valid).expect("JSON");
    assert_eq!(record(&value, "gamma")["status"], "running");

    let mut version_7 = value.clone();
    version_7["version"] = Value::from(7);
    let mut wrong_type = value.clone();
    record_mut(&mut wrong_type, "alpha")["pid"] = Value::from("4242");
    let mut wrong_bool = value.clone();
    record_mut(&mut wrong_bool, "gamma")["stopped_by_operator"] = Value::from("no");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", valid[..valid.len() / 2].to_vec(), "truncated"),
        ("not JSON", b"pid=4242\n".to_vec(), "not JSON at line 1"),
        (
            "version 7",
            serde_json::to_vec(&version_7).unwrap(),
            "unsupported version 7",
        ),
        (
            "a pid that is a string",
            serde_json::to_vec(&wrong_type).unwrap(),
            "services[0].pid: expected an integer or null, found a string",
        ),
        (
            "a flag that is a string",
            serde_json::to_vec(&wrong_bool).unwrap(),
            "stopped_by_operator: expected true or false, found a string",
        ),
        ("empty", Vec::new(), "the file is empty"),
    ];
    for (what, bytes, reason) in cases {
        std::fs::write(state_path(&p), &bytes).unwrap();
        let before = bad_files(&p);
        let daemon = p.up_detached(&[]);
        check_bad_file_start(&p, &daemon, what, reason, &before);
        let kept = new_bad_file(&p, &before, what);
        assert_eq!(
            std::fs::read(&kept).unwrap(),
            bytes,
            "{what}: the bad file is kept byte for byte"
        );
        shutdown(&p, &daemon);
    }

    // A symlink planted at the path, to a state file elsewhere that says gamma runs.
    let elsewhere = p.file("elsewhere.json");
    std::fs::write(&elsewhere, &valid).unwrap();
    std::fs::remove_file(state_path(&p)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, state_path(&p)).unwrap();
    let before = bad_files(&p);
    let daemon = p.up_detached(&[]);
    check_bad_file_start(&p, &daemon, "a symlink", "is a symlink", &before);
    let kept = new_bad_file(&p, &before, "a symlink");
    assert_eq!(
        std::fs::read_link(&kept).ok().as_deref(),
        Some(elsewhere.as_path()),
        "the link itself is moved aside"
    );
    assert_eq!(
        std::fs::read(&elsewhere).unwrap(),
        valid,
        "the file the link pointed to is intact"
    );
    let meta = std::fs::symlink_metadata(state_path(&p)).unwrap();
    assert!(meta.file_type().is_file(), "a new, real state file");
}

/// The daemon started from the config after a bad state file: alpha runs, gamma (which only
/// the bad file said was running) does not, the log names the reason and where the file
/// went, and a fresh state file is written.
fn check_bad_file_start(
    p: &Project,
    daemon: &Daemon,
    what: &str,
    reason: &str,
    before: &[PathBuf],
) {
    running(p, &["alpha"]);
    assert_one_copy_each(p, &["alpha"], what);
    let gamma = &p.services()["gamma"];
    assert_eq!(gamma["status"], "stopped", "{what}: {gamma}");
    assert!(
        copies(p, "gamma").is_empty(),
        "{what}: gamma must not start"
    );
    let kept = new_bad_file(p, before, what);
    let log = daemon.wait_for_log("cannot be used", secs(5));
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("cannot be used"))
        .unwrap_or_default();
    assert!(
        line.contains(reason),
        "{what}: the log should say {reason:?}: {line}"
    );
    assert!(
        line.contains(&format!("moved aside to {}", kept.display())),
        "{what}: the log should say where the file went: {line}"
    );
    assert!(
        line.contains("starts from the config"),
        "{what}: the log should say what runpm does: {line}"
    );
    wait_state(p, secs(5), |s| record(s, "alpha")["status"] == "running");
}

fn new_bad_file(p: &Project, before: &[PathBuf], what: &str) -> PathBuf {
    let new: Vec<PathBuf> = bad_files(p)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(
        new.len(),
        1,
        "{what}: one new state.json.bad-* file: {new:?}"
    );
    new.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Last-known-good
// ---------------------------------------------------------------------------------------------

/// An invalid config at start-up: runpm runs the snapshot's specs, says so loudly (log,
/// `status` on stderr, `status --json`), and the next valid reload returns to the config.
#[test]
fn an_invalid_config_at_start_runs_the_last_known_good_snapshot() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    let daemon = run_three_with_gamma_stopped(&p);
    // The daemon dies (a crash, not a clean end): the snapshot is what the next start
    // restores, gamma's stop included.
    daemon.crash();
    let good = p.read("services.toml");
    p.config(&format!("{good}\n[services.broken\ncmd = 1\n"));
    assert_eq!(
        p.run(
            &["validate", "-f", p.file("services.toml").to_str().unwrap()],
            COMMAND_LIMIT
        )
        .code(),
        Some(1),
        "the config is invalid"
    );

    let daemon = p.up_detached(&[]);
    running(&p, &["alpha", "beta"]);
    assert_one_copy_each(&p, &["alpha", "beta"], "from the snapshot");
    assert!(copies(&p, "gamma").is_empty(), "gamma stays stopped");
    let log = daemon.wait_for_log("THE CONFIG IS INVALID", secs(5));
    assert!(log.contains("last-known-good"), "{log}");
    assert!(
        log.contains("services.toml:"),
        "the log names the error: {log}"
    );

    let status = p.ctl(&["status"]);
    assert_eq!(status.code(), Some(0), "{}", status.describe());
    assert!(
        status.stderr.contains("last-known-good") && status.stderr.contains("services.toml:"),
        "`status` warns on stderr\n{}",
        status.describe()
    );
    assert!(
        !status.stdout.contains("last-known-good"),
        "the table stays clean"
    );
    let json = p.status_json();
    let why = json["running_from_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("`status --json` should have running_from_snapshot: {json:#}"));
    assert!(why.contains("services.toml:"), "{why}");

    // A fixed config, with alpha changed: the reload returns to the config.
    let old_alpha = p.running_pid("alpha", secs(5));
    p.config(&good.replacen("1000000", "1000002", 1));
    let plan = p.ctl_ok(&["reload"]);
    assert!(plan.contains("~ alpha restarted"), "{plan}");
    let json = p.status_json();
    assert!(
        json.get("running_from_snapshot").is_none(),
        "back on the config: {json:#}"
    );
    let status = p.ctl(&["status"]);
    assert!(
        !status.stderr.contains("last-known-good"),
        "{}",
        status.describe()
    );
    let alpha = p.running_pid("alpha", secs(5));
    assert_ne!(alpha, old_alpha);
    let cmdline = std::fs::read(format!("/proc/{alpha}/cmdline")).unwrap();
    assert_eq!(
        cmdline, b"sleep\x001000002\x00",
        "the config's version of alpha runs"
    );
    assert_eq!(p.services()["gamma"]["status"], "stopped");
}

/// `reload --dry-run` with a valid config applies nothing, so runpm still runs the snapshot's
/// specs and `status --json` must still say so.
#[test]
fn a_dry_run_reload_does_not_leave_the_last_known_good_snapshot() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    p.config(&quiet(&p, "alpha", ""));
    let daemon = p.up_detached(&[]);
    running(&p, &["alpha"]);
    shutdown(&p, &daemon);
    drop(daemon);
    let good = p.read("services.toml");
    p.config(&format!("{good}\n[services.broken\n"));
    let _daemon = p.up_detached(&[]);
    let alpha = p.running_pid("alpha", secs(10));
    assert!(p.status_json().get("running_from_snapshot").is_some());

    p.config(&good.replacen("1000000", "1000002", 1));
    let plan = p.ctl_ok(&["reload", "--dry-run"]);
    assert!(plan.contains("~ alpha restarted"), "{plan}");
    assert_eq!(
        p.running_pid("alpha", secs(5)),
        alpha,
        "a dry run changes nothing"
    );
    let json = p.status_json();
    assert!(
        json.get("running_from_snapshot").is_some(),
        "after a dry run the snapshot's alpha (pid {alpha}) still runs, so status must still \
         say running_from_snapshot: {json:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// save and resurrect
// ---------------------------------------------------------------------------------------------

#[test]
fn save_writes_now_and_prints_the_path() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    p.config(&format!(
        "{}{}",
        quiet(&p, "alpha", ""),
        quiet(&p, "beta", "")
    ));
    let daemon = p.up_detached(&[]);
    let pids = running(&p, &["alpha", "beta"]);
    // Gone while the daemon runs: save writes it again at once.
    std::fs::remove_file(state_path(&p)).unwrap();
    let printed = p.ctl_ok(&["save"]);
    assert_eq!(
        printed.trim_end(),
        daemon.state_dir().join("state.json").to_str().unwrap(),
        "`save` prints the state file's path"
    );
    let state = read_state(&p);
    for (name, pid) in &pids {
        assert_eq!(record(&state, name)["pid"], *pid, "{state:#}");
    }
}

/// `runpmctl resurrect` starts what the file says was running, through the planner: a
/// second run changes nothing. It follows the file, and the file keeps the operator's stops.
#[test]
fn resurrect_starts_what_the_file_says_ran_and_is_idempotent() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    let daemon = run_three_with_gamma_stopped(&p);
    let pids = running(&p, &["alpha", "beta"]);

    // Everything the file wants already runs, and gamma was stopped by the operator.
    let out = p.ctl_ok(&["resurrect"]);
    assert!(!out.contains('+'), "nothing to start:\n{out}");
    assert!(out.contains("= 3 unchanged"), "{out}");
    assert!(
        copies(&p, "gamma").is_empty(),
        "the operator's stop is kept"
    );

    // A snapshot that says gamma was running (and not stopped by the operator), as after a
    // daemon that ran it: resurrect starts it.
    let mut state = read_state(&p);
    let gamma = record_mut(&mut state, "gamma");
    gamma["status"] = Value::from("running");
    gamma["stopped_by_operator"] = Value::from(false);
    write_state(&p, &state);
    let out = p.ctl_ok(&["resurrect"]);
    assert!(out.contains("+ gamma started"), "{out}");
    assert!(out.contains("= 2 unchanged"), "{out}");
    running(&p, &["gamma"]);
    let pids_after: BTreeMap<String, i32> = running(&p, &["alpha", "beta", "gamma"]);
    assert_eq!(pids_after["alpha"], pids["alpha"]);
    assert_eq!(pids_after["beta"], pids["beta"]);

    // Again: idempotent.
    let out = p.ctl_ok(&["resurrect"]);
    assert!(
        !out.contains('+'),
        "the second resurrect starts nothing:\n{out}"
    );
    assert!(out.contains("= 3 unchanged"), "{out}");
    assert_eq!(running(&p, &["alpha", "beta", "gamma"]), pids_after);
    assert_one_copy_each(&p, &["alpha", "beta", "gamma"], "after two resurrects");

    // After `stop --all --yes` the file says every service was stopped by the operator:
    // resurrect starts nothing.
    p.ctl_ok(&["stop", "--all", "--yes"]);
    wait_state(&p, secs(5), |s| {
        ["alpha", "beta", "gamma"]
            .iter()
            .all(|n| record(s, n)["stopped_by_operator"] == true)
    });
    let out = p.ctl_ok(&["resurrect"]);
    assert!(
        !out.contains('+'),
        "nothing starts after stop --all:\n{out}"
    );
    for name in ["alpha", "beta", "gamma"] {
        assert!(copies(&p, name).is_empty(), "{name} stays stopped");
    }

    // Without a state file there is nothing to resurrect from: an error, not a silent no-op.
    std::fs::remove_file(state_path(&p)).unwrap();
    let out = p.ctl(&["resurrect"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("no state file"), "{}", out.describe());
    drop(daemon);
}

/// `runpmctl shutdown` freezes the snapshot as the shutdown begins: the next `runpm up`
/// brings back what ran, not the "stopped" of the shutdown itself.
#[test]
/// A clean stop ends the session: the next `up` on the same boot starts from the config,
/// as a first start would, including what the operator had stopped. The file still says
/// what ran when the shutdown began, and that the session ended cleanly.
fn shutdown_then_up_starts_from_the_config() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    let daemon = run_three_with_gamma_stopped(&p);
    shutdown(&p, &daemon);
    drop(daemon);
    let state = read_state(&p);
    assert_eq!(record(&state, "alpha")["status"], "running", "{state:#}");
    assert_eq!(state["clean_shutdown"], true, "{state:#}");
    let daemon = p.up_detached(&[]);
    running(&p, &["alpha", "beta", "gamma"]);
    assert_one_copy_each(&p, &["alpha", "beta", "gamma"], "after shutdown and up");
    assert_eq!(p.services()["gamma"]["stopped_by_operator"], false);
    let state = wait_state(&p, secs(5), |s| s["daemon_pid"] == daemon.pid());
    assert_eq!(
        state["clean_shutdown"], false,
        "a running session is not ended"
    );
    drop(daemon);
}

// ---------------------------------------------------------------------------------------------
// The file's format
// ---------------------------------------------------------------------------------------------

#[test]
fn the_state_file_holds_the_documented_fields_and_follows_every_change() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    p.config(&format!(
        "{}{}",
        quiet(&p, "alpha", ""),
        quiet(&p, "beta", "")
    ));
    let daemon = p.up_detached(&[]);
    let pids = running(&p, &["alpha", "beta"]);
    let state = wait_state(&p, secs(5), |s| {
        pids.iter().all(|(n, pid)| record(s, n)["pid"] == *pid)
    });

    let mode = std::fs::metadata(state_path(&p))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o600, "state.json's mode");
    assert_eq!(state["version"], 1);
    assert_eq!(state["boot_id"], this_boot_id().as_str());
    assert_eq!(state["pid_ns"], this_pid_ns().as_str());
    assert_eq!(state["daemon_pid"], daemon.pid());
    assert_eq!(state["config"], p.file("services.toml").to_str().unwrap());
    let written_at = state["written_at"].as_str().expect("written_at");
    assert!(
        humantime::parse_rfc3339(written_at).is_ok(),
        "written_at is RFC 3339: {written_at}"
    );
    for (name, pid) in &pids {
        let r = record(&state, name);
        assert_eq!(r["status"], "running", "{r}");
        assert_eq!(
            r["pid_start_time"],
            start_time(*pid).unwrap(),
            "{name}: field 22"
        );
        assert_eq!(r["restarts"], 0, "{r}");
        assert_eq!(r["stopped_by_operator"], false, "{r}");
        assert_eq!(r["spec"]["name"], name.as_str(), "{r}");
        assert_eq!(
            r["spec"]["command"]["argv"][0], "sleep",
            "the resolved spec: {r}"
        );
        assert_eq!(r["spec"]["env"][MARKER], marker(&p, name), "{r}");
    }

    // A stop by the operator is written down.
    p.ctl_ok(&["stop", "beta"]);
    let state = wait_state(&p, secs(5), |s| record(s, "beta")["status"] == "stopped");
    let beta = record(&state, "beta");
    assert_eq!(beta["stopped_by_operator"], true, "{beta}");
    assert_eq!(beta["pid"], Value::Null, "{beta}");

    // A restart is written down with the new pid and its start time.
    p.ctl_ok(&["restart", "alpha"]);
    let alpha = p.running_pid("alpha", secs(5));
    assert_ne!(alpha, pids["alpha"]);
    let state = wait_state(&p, secs(5), |s| record(s, "alpha")["pid"] == alpha);
    assert_eq!(
        record(&state, "alpha")["pid_start_time"],
        start_time(alpha).unwrap()
    );
    // Whole files only: no temporary file is left beside it.
    let leftovers: Vec<String> = std::fs::read_dir(p.file(".runpm"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.json") && n != "state.json")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// Write failures
// ---------------------------------------------------------------------------------------------

/// Config for the write-failure tests: a quiet service and one that restarts every 100 ms,
/// so that there is always something new to write.
fn with_restarts(p: &Project) -> String {
    format!(
        "{}[services.crasher]\ncmd = [\"sh\", \"-c\", \"sleep 0.1; exit 1\"]\n\
         restart = \"always\"\nrestart_delay = \"0s\"\nmax_restarts = 1000000\n",
        quiet(p, "alpha", "")
    )
}

/// Replaces state.json by a directory: every write fails at its rename.
fn block_state_writes(p: &Project) {
    std::fs::remove_file(state_path(p)).unwrap();
    std::fs::create_dir(state_path(p)).unwrap();
}

/// Failed writes never stop supervision: services keep running and restarting, commands
/// work, the log says the write failed and is retried, and once the path is usable again the
/// file is written again.
#[test]
fn a_failing_state_write_never_stops_supervision() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    p.config(&with_restarts(&p));
    let daemon = p.up_detached(&[]);
    let alpha = p.running_pid("alpha", secs(5));
    wait_state(&p, secs(5), |s| record(s, "alpha")["pid"] == alpha);

    block_state_writes(&p);
    let log = daemon.wait_for_log("cannot write state file", secs(10));
    let line = log
        .lines()
        .find(|l| l.contains("cannot write state file"))
        .unwrap_or_default();
    assert!(line.contains("retr"), "the log says it is retried: {line}");

    // Supervision goes on: crasher keeps being restarted, alpha keeps running, and commands
    // work (a `save` reports the failure instead of pretending).
    let restarts = |p: &Project| p.services()["crasher"]["restarts"].as_u64().unwrap();
    let before = restarts(&p);
    assert!(
        wait_for(secs(10), || restarts(&p) >= before + 5),
        "crasher should keep restarting while writes fail\n{}",
        daemon.describe()
    );
    assert!(is_alive(alpha));
    p.ctl_ok(&["restart", "alpha"]);
    let alpha = p.running_pid("alpha", secs(5));
    assert_one_copy_each(&p, &["alpha"], "while writes fail");
    let save = p.ctl(&["save"]);
    assert_eq!(save.code(), Some(1), "{}", save.describe());
    assert!(save.stderr.contains("cannot write"), "{}", save.describe());
    assert!(daemon.is_alive());

    // The path is usable again: the retry writes the file, with what runs now.
    std::fs::remove_dir(state_path(&p)).unwrap();
    let state = wait_state(&p, secs(10), |s| record(s, "alpha")["pid"] == alpha);
    assert_eq!(state["version"], 1);
}

/// A failed write's log line says what the system said (disk full, read-only, is a
/// directory…), not only which step failed: the operator must be able to tell the causes
/// apart.
#[test]
fn a_failing_state_write_logs_the_system_error() {
    let p = Project::new(secs(30));
    let _strays = p.stray_guard();
    p.config(&with_restarts(&p));
    let daemon = p.up_detached(&[]);
    let alpha = p.running_pid("alpha", secs(5));
    wait_state(&p, secs(5), |s| record(s, "alpha")["pid"] == alpha);
    block_state_writes(&p);
    let log = daemon.wait_for_log("cannot write state file", secs(10));
    let line = log
        .lines()
        .find(|l| l.contains("cannot write state file"))
        .unwrap_or_default();
    // rename(2) of a file over a directory: EISDIR.
    assert!(
        line.contains("Is a directory"),
        "the log line should carry the OS error: {line}"
    );
}
