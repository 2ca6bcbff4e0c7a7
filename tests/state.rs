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
//! (`RUNPM_CRASH_SEED` and `RUNPM_CRASH_ITERATIONS` override the defaults).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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
                .filter(|e| e.file_name().to_string_lossy().starts_with("state.json.bad-"))
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

/// The part of the daemon's log written after `from` bytes.
fn log_since(daemon: &Daemon, from: usize) -> String {
    daemon.log().get(from..).unwrap_or_default().to_owned()
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
        assert!(
            matches!(state, Some('S' | 'R')),
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
    let mut rng = Rng(seed);
    let mut generation = [0u32; 3];
    p.config(&crash_loop_config(&p, &generation));
    let mut figures = Figures::default();
    let started = Instant::now();

    let mut daemon = p.up_detached(&["--no-watch"]);
    for round in 0..iterations {
        let ready = Instant::now();
        let moment = rng.below(4) as usize;
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
