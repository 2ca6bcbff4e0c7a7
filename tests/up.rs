//! `runpm up` end to end: the real binary supervising small misbehaving shell services in a
//! temporary directory. Each test checks what a user would check: which processes run, what
//! runpm prints, how it exits, and that nothing is left behind.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use common::*;
use nix::sys::signal::Signal;

// ---------------------------------------------------------------------------------------------
// Stopping
// ---------------------------------------------------------------------------------------------

#[test]
fn ctrl_c_stops_services_and_exits_zero() {
    let p = Project::new(secs(20));
    // `sleeper` is a single process; `ticker` is a shell with a child at most moments. Both
    // die of SIGTERM at once, which is a clean stop: no need to wait for kill_timeout (10 s).
    p.config(&format!(
        r#"
[services.sleeper]
shell = 'echo $$ > sleeper.pid; exec sleep 1000'
{TICKER}"#
    ));
    let mut runpm = p.up(&[]);
    p.wait_lines("ticks", 1, secs(5));
    let pid = p.read_pid("sleeper.pid", secs(5));
    let started = runpm.wait_for_event("sleeper", "started", secs(5));
    assert!(
        started.contains(&pid.to_string()),
        "the `started` event should carry the pid {pid}: {started:?}"
    );
    assert!(is_alive(pid), "the service should run");

    runpm.send_signal(Signal::SIGINT);
    runpm.assert_exit_code(secs(5), 0);
    assert!(
        wait_dead(pid, secs(2)),
        "the service (pid {pid}) should be gone after Ctrl-C\n{}",
        runpm.describe()
    );
    runpm.wait_for_event("sleeper", "stopped", secs(1));
    runpm.wait_for_event("ticker", "stopped", secs(1));
}

#[test]
fn stop_kills_a_group_that_ignores_sigterm_after_kill_timeout() {
    let p = Project::new(secs(20));
    // The service and a grandchild both ignore SIGTERM (ignored dispositions survive fork and
    // exec, so their `sleep`s ignore it too).
    p.config(
        r#"
[services.stubborn]
shell = '''
trap '' TERM
echo $$ > main.pid
sh -c 'echo $$ > grandchild.pid; while :; do sleep 0.1; done' &
while :; do sleep 0.1; done
'''
kill_timeout = "300ms"
"#,
    );
    let mut runpm = p.up(&[]);
    let main = p.read_pid("main.pid", secs(5));
    let grandchild = p.read_pid("grandchild.pid", secs(5));
    assert!(is_alive(main) && is_alive(grandchild));

    runpm.send_signal(Signal::SIGTERM);
    assert!(
        wait_dead(main, secs(3)),
        "the service's main process should be killed after kill_timeout\n{}",
        runpm.describe()
    );
    assert!(
        wait_dead(grandchild, secs(3)),
        "the grandchild that ignores SIGTERM should be killed with the group\n{}",
        runpm.describe()
    );
    // The service had to be SIGKILLed: it did not stop cleanly, so runpm reports 128 + 9.
    runpm.assert_exit_code(secs(5), 137);
}

#[test]
fn second_ctrl_c_escalates_at_once() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.stubborn]
shell = '''
trap '' TERM
echo $$ > main.pid
while :; do sleep 0.1; done
'''
kill_timeout = "60s"
"#,
    );
    let mut runpm = p.up(&[]);
    let pid = p.read_pid("main.pid", secs(5));
    runpm.wait_for_event("stubborn", "started", secs(5));

    let first = std::time::Instant::now();
    runpm.send_signal(Signal::SIGINT);
    // Two signals sent back to back may coalesce into one; wait until the first was handled.
    runpm.wait_for_event("stubborn", "stopping", secs(5));
    runpm.assert_running("the service ignores SIGTERM and kill_timeout is 60 s");
    // Signals within 200 ms are one request (tests/edges_signals.rs): a second Ctrl-C is later.
    wait_for(secs(1), || first.elapsed() > ms(200));

    runpm.send_signal(Signal::SIGINT);
    runpm.wait_exit(secs(3));
    assert!(
        wait_dead(pid, secs(1)),
        "the service should be killed by the escalation\n{}",
        runpm.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// Restart policy
// ---------------------------------------------------------------------------------------------

#[test]
fn on_failure_restarts_and_never_stays_down() {
    let p = Project::new(secs(30));
    p.config(&format!(
        r#"
# Each run lasts longer than min_uptime, then fails.
[services.flaky]
shell = 'echo run >> flaky.runs; sleep 0.2; exit 1'
restart = "on-failure"
restart_delay = "10ms"
min_uptime = "100ms"
max_restarts = 100

[services.once]
shell = 'echo run >> once.runs; exit 1'
restart = "never"
{TICKER}"#
    ));
    let mut runpm = p.up(&[]);
    p.wait_lines("flaky.runs", 3, secs(10));
    runpm.wait_for_event("flaky", "exited with code 1", secs(5));
    runpm.wait_for_event("flaky", "restarting in", secs(5));

    runpm.wait_for_event("once", "exited with code 1", secs(5));
    // Let a while pass (the ticker runs 10 more rounds) and check `once` was not restarted.
    p.wait_growth("ticks", 10, secs(5));
    assert_eq!(
        p.lines("once.runs").len(),
        1,
        "restart = \"never\" must run exactly once\n{}",
        runpm.describe()
    );
    assert!(
        runpm.events("once", "restarting").is_empty(),
        "runpm must not announce a restart of `once`\n{}",
        runpm.describe()
    );
    runpm.assert_running("other services still run");
}

#[test]
fn success_exit_codes_are_not_restarted_by_on_failure() {
    let p = Project::new(secs(20));
    p.config(&format!(
        r#"
[services.done]
shell = 'echo run >> done.runs; exit 42'
restart = "on-failure"
restart_delay = "10ms"
success_exit_codes = [0, 42]
{TICKER}"#
    ));
    let mut runpm = p.up(&[]);
    runpm.wait_for_event("done", "exited with code 42", secs(5));
    p.wait_growth("ticks", 10, secs(5));
    assert_eq!(
        p.lines("done.runs").len(),
        1,
        "exit 42 is listed in success_exit_codes: no restart\n{}",
        runpm.describe()
    );
    assert!(runpm.events("done", "restarting").is_empty());
    runpm.assert_running("the ticker still runs");
}

#[test]
fn crash_loop_ends_in_failed() {
    let p = Project::new(secs(20));
    p.config(&format!(
        r#"
[services.crashy]
shell = 'echo run >> crashy.runs; exit 3'
restart = "always"
restart_delay = "1ms"
max_restarts = 3
restart_window = "60s"
{TICKER}"#
    ));
    let mut runpm = p.up(&[]);
    let failed = runpm.wait_for_event("crashy", "failed", secs(10));
    p.wait_growth("ticks", 10, secs(5));
    assert_eq!(
        p.lines("crashy.runs").len(),
        4,
        "the first run and max_restarts = 3 restarts, then `failed` ({failed:?})\n{}",
        runpm.describe()
    );
    runpm.assert_running("a failed service is not a failed supervisor: the ticker still runs");
}

#[test]
fn exit_when_any_failed_exits_with_the_failed_service_code() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[runpm]
exit_when = "any-failed"

[services.crashy]
shell = 'echo run >> crashy.runs; exit 3'
restart = "always"
restart_delay = "1ms"
max_restarts = 3
restart_window = "60s"

[services.steady]
shell = 'echo $$ > steady.pid; exec sleep 1000'
"#,
    );
    let mut runpm = p.up(&[]);
    let steady = p.read_pid("steady.pid", secs(5));
    runpm.assert_exit_code(secs(10), 3);
    assert_eq!(p.lines("crashy.runs").len(), 4, "{}", runpm.describe());
    runpm.wait_for_event("crashy", "failed", secs(1));
    assert!(
        wait_dead(steady, secs(2)),
        "the other services are stopped when runpm exits\n{}",
        runpm.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// Exit codes when services end (exit_when)
// ---------------------------------------------------------------------------------------------

#[test]
fn all_exited_successfully_exits_zero() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.first]
shell = 'echo one'
restart = "never"

[services.second]
shell = 'sleep 0.2; echo two'
restart = "on-failure"
"#,
    );
    let mut runpm = p.up(&[]);
    runpm.assert_exit_code(secs(10), 0);
    runpm.wait_for_event("first", "exited with code 0", secs(1));
    runpm.wait_for_event("second", "exited with code 0", secs(1));
}

#[test]
fn all_exited_with_a_failure_exits_with_its_code() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.good]
shell = 'exit 0'
restart = "never"

[services.bad]
shell = 'sleep 0.2; exit 5'
restart = "never"
"#,
    );
    let mut runpm = p.up(&[]);
    runpm.assert_exit_code(secs(10), 5);
    runpm.wait_for_event("bad", "exited with code 5", secs(1));
}

#[test]
fn a_service_killed_by_a_signal_gives_128_plus_signal() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.suicidal]
shell = 'kill -USR1 $$'
restart = "never"
"#,
    );
    let mut runpm = p.up(&[]);
    runpm.assert_exit_code(secs(10), 128 + 10);
    runpm.wait_for_event("suicidal", "killed by SIGUSR1", secs(1));
}

#[test]
fn exit_when_names_services() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[runpm]
exit_when = ["main"]

[services.main]
shell = 'sleep 0.3; echo finished > main.out'
restart = "never"

[services.side]
shell = 'echo $$ > side.pid; exec sleep 1000'
"#,
    );
    let mut runpm = p.up(&[]);
    let side = p.read_pid("side.pid", secs(5));
    runpm.assert_exit_code(secs(10), 0);
    assert_eq!(p.read("main.out"), "finished\n");
    assert!(
        wait_dead(side, secs(2)),
        "`side` is stopped when `main` ended\n{}",
        runpm.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// Dependencies
// ---------------------------------------------------------------------------------------------

/// alpha ← bravo ← charlie. Each service records its start in `order` and, on SIGTERM,
/// records `stop:NAME` and exits 0; it also appends to `NAME.ticks` while it runs.
const CHAIN: &str = r#"
[services.alpha]
shell = '''
trap 'echo stop:alpha >> order; exit 0' TERM
echo alpha >> order
while :; do echo t >> alpha.ticks; sleep 0.05; done
'''

[services.bravo]
depends_on = ["alpha"]
shell = '''
trap 'echo stop:bravo >> order; exit 0' TERM
echo bravo >> order
while :; do echo t >> bravo.ticks; sleep 0.05; done
'''

[services.charlie]
depends_on = ["bravo"]
shell = '''
trap 'echo stop:charlie >> order; exit 0' TERM
echo charlie >> order
while :; do echo t >> charlie.ticks; sleep 0.05; done
'''
"#;

#[test]
fn dependencies_start_in_order_and_stop_in_reverse() {
    let p = Project::new(secs(20));
    p.config(CHAIN);
    let mut runpm = p.up(&[]);
    p.wait_lines("order", 3, secs(5));
    for name in ["alpha", "bravo", "charlie"] {
        runpm.wait_for_event(name, "started", secs(5));
    }
    // "Running" means spawned here (readiness comes later), so the services' own first
    // lines may race; runpm's `started` events are what the dependency order promises.
    let stderr = runpm.stderr();
    let started: Vec<usize> = ["alpha", "bravo", "charlie"]
        .iter()
        .map(|n| event_index(&stderr, n, "started").unwrap())
        .collect();
    assert!(
        started[0] < started[1] && started[1] < started[2],
        "start order must be alpha, bravo, charlie\n{}",
        runpm.describe()
    );
    let mut starts = p.lines("order");
    starts.sort();
    assert_eq!(starts, ["alpha", "bravo", "charlie"]);

    runpm.send_signal(Signal::SIGTERM);
    runpm.assert_exit_code(secs(10), 0);
    let stops: Vec<String> = p
        .lines("order")
        .into_iter()
        .filter(|l| l.starts_with("stop:"))
        .collect();
    assert_eq!(
        stops,
        ["stop:charlie", "stop:bravo", "stop:alpha"],
        "stop order must be the reverse of the dependency order\n{}",
        runpm.describe()
    );
}

#[test]
fn up_with_names_starts_those_and_their_dependencies_only() {
    let p = Project::new(secs(20));
    p.config(CHAIN);
    let mut runpm = p.up(&["bravo"]);
    runpm.wait_for_event("alpha", "started", secs(5));
    runpm.wait_for_event("bravo", "started", secs(5));
    // By the time bravo has run 10 rounds, charlie would have started long ago.
    p.wait_lines("bravo.ticks", 1, secs(5));
    p.wait_growth("bravo.ticks", 10, secs(5));
    assert!(
        !p.read("order").contains("charlie") && runpm.events("charlie", "started").is_empty(),
        "charlie was not asked for and nothing depends on it\n{}",
        runpm.describe()
    );
    assert!(!p.file("charlie.ticks").exists());

    runpm.send_signal(Signal::SIGINT);
    runpm.assert_exit_code(secs(10), 0);
}

// ---------------------------------------------------------------------------------------------
// Spawn failures are per-service
// ---------------------------------------------------------------------------------------------

/// Runs `broken` (described by `broken_toml`) beside a healthy service and checks that runpm
/// reports the failure with the service's name and `needle`, and keeps supervising the rest.
fn spawn_failure_is_reported_and_contained(p: &Project, broken_toml: &str, needle: &str) {
    p.config(&format!(
        r#"
[services.broken]
{broken_toml}
restart = "never"
{TICKER}"#
    ));
    let mut runpm = p.up(&[]);
    runpm.wait_for_event("broken", "failed", secs(10));
    let mentioned = runpm
        .stderr()
        .lines()
        .any(|l| mentions(l, "broken") && l.contains(needle));
    assert!(
        mentioned,
        "runpm should name the service and {needle:?} in one line\n{}",
        runpm.describe()
    );
    // The rest keeps running and runpm keeps supervising it.
    p.wait_growth("ticks", 10, secs(5));
    runpm.assert_running("a spawn failure of one service is not fatal");

    // The ticker dies of SIGTERM at once: stopping must not wait for kill_timeout (10 s).
    runpm.send_signal(Signal::SIGINT);
    runpm.wait_exit(secs(5));
}

#[test]
fn a_missing_binary_is_a_service_failure() {
    let p = Project::new(secs(20));
    spawn_failure_is_reported_and_contained(&p, r#"cmd = ["/nonexistent/x"]"#, "/nonexistent/x");
}

#[test]
fn a_missing_cwd_is_a_service_failure() {
    let p = Project::new(secs(20));
    spawn_failure_is_reported_and_contained(
        &p,
        r#"cmd = ["/bin/true"]
cwd = "no-such-dir""#,
        "no-such-dir",
    );
}

#[test]
fn a_non_executable_file_is_a_service_failure() {
    let p = Project::new(secs(20));
    let script = p.write("not-executable.sh", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    spawn_failure_is_reported_and_contained(
        &p,
        &format!("cmd = [{:?}]", script.to_str().unwrap()),
        "not-executable.sh",
    );
}

// ---------------------------------------------------------------------------------------------
// The environment of a service
// ---------------------------------------------------------------------------------------------

fn env_map(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn environment_env_clear_env_and_env_file() {
    let p = Project::new(secs(20));
    p.write("overlay.env", "B=from-file\nC=from-file\n");
    p.config(
        r#"
[services.shelled]
shell = 'echo "FOO=$FOO" > shelled.out'
env = { FOO = "bar baz" }
restart = "never"

[services.inherits]
shell = 'env > inherits.env'
restart = "never"

[services.cleared]
shell = 'env > cleared.env'
clear_env = true
env = { KEPT = "yes" }
restart = "never"

[services.overlaid]
shell = 'env > overlaid.env'
env = { A = "from-env", B = "from-env" }
env_file = "overlay.env"
restart = "never"
"#,
    );
    let mut cmd = p.up_command(&[]);
    cmd.env("RUNPM_TEST_MARKER", "from-runpm");
    let mut runpm = Runpm::start(cmd);
    runpm.assert_exit_code(secs(10), 0);

    assert_eq!(
        p.read("shelled.out"),
        "FOO=bar baz\n",
        "{}",
        runpm.describe()
    );

    let inherits = env_map(&p.read("inherits.env"));
    assert_eq!(
        inherits.get("RUNPM_TEST_MARKER").map(String::as_str),
        Some("from-runpm"),
        "by default a service inherits runpm's environment"
    );

    let cleared = env_map(&p.read("cleared.env"));
    assert!(
        cleared.contains_key("PATH"),
        "clear_env keeps PATH: {cleared:?}"
    );
    assert_eq!(cleared.get("KEPT").map(String::as_str), Some("yes"));
    assert!(
        !cleared.contains_key("RUNPM_TEST_MARKER"),
        "clear_env must not pass runpm's environment: {cleared:?}"
    );
    // Only PATH, the service's own `env`, what /bin/sh itself exports (PWD), and runpm's
    // tags and secret (which let a restarted runpm recognise the processes it started).
    let tags = ["RUNPM_INSTANCE", "RUNPM_SERVICE", "RUNPM_TOKEN"];
    let unexpected: Vec<&String> = cleared
        .keys()
        .filter(|k| !["PATH", "KEPT", "PWD"].contains(&k.as_str()) && !tags.contains(&k.as_str()))
        .collect();
    assert_eq!(
        cleared.get("RUNPM_SERVICE").map(String::as_str),
        Some("cleared"),
        "{cleared:?}"
    );
    assert!(unexpected.is_empty(), "clear_env leaked {unexpected:?}");

    let overlaid = env_map(&p.read("overlaid.env"));
    assert_eq!(overlaid.get("A").map(String::as_str), Some("from-env"));
    assert_eq!(
        overlaid.get("B").map(String::as_str),
        Some("from-file"),
        "env_file is overlaid after env"
    );
    assert_eq!(overlaid.get("C").map(String::as_str), Some("from-file"));
}

// ---------------------------------------------------------------------------------------------
// Output, stdin, sessions
// ---------------------------------------------------------------------------------------------

#[test]
fn output_lines_are_prefixed_with_the_padded_service_name() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.ab]
shell = 'echo hello; echo oops >&2; printf "no newline at the end"'
restart = "never"

[services.longname]
shell = 'echo hello'
restart = "never"
"#,
    );
    let mut runpm = p.up(&[]);
    runpm.assert_exit_code(secs(10), 0);
    let stdout = runpm.stdout();
    let width = "longname".len();
    let ab = service_lines(&stdout, "ab", width);
    assert!(
        ab.contains(&"hello".to_string()),
        "expected `ab       | hello`\n{}",
        runpm.describe()
    );
    assert!(
        ab.contains(&"oops".to_string()),
        "a service's stderr is shown too, with the same prefix\n{}",
        runpm.describe()
    );
    assert!(
        ab.contains(&"no newline at the end".to_string()),
        "a last line without a newline is still shown\n{}",
        runpm.describe()
    );
    assert_eq!(
        service_lines(&stdout, "longname", width),
        ["hello"],
        "{}",
        runpm.describe()
    );
    assert!(
        !stdout.contains('\x1b'),
        "no colour codes when stdout is not a terminal\n{}",
        runpm.describe()
    );
}

#[test]
fn stdin_is_dev_null() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.reader]
shell = 'readlink /proc/$$/fd/0 > reader.stdin; cat; echo "cat exited $?" > reader.out'
restart = "never"
"#,
    );
    // runpm's own stdin is a pipe that stays open: a service inheriting it would block.
    let mut cmd = p.up_command(&[]);
    cmd.stdin(Stdio::piped());
    let mut runpm = Runpm::start(cmd);
    p.wait_lines("reader.out", 1, secs(5));
    assert_eq!(p.read("reader.out"), "cat exited 0\n");
    assert_eq!(p.read("reader.stdin"), "/dev/null\n");
    runpm.assert_exit_code(secs(10), 0);
}

#[test]
fn each_service_leads_its_own_session_and_process_group() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.one]
shell = 'echo $$ > one.pid; exec sleep 1000'

[services.two]
shell = 'echo $$ > two.pid; exec sleep 1000'
"#,
    );
    let mut runpm = p.up(&[]);
    let runpm_sid = sid(runpm.pid()).unwrap();
    for name in ["one", "two"] {
        let pid = p.read_pid(&format!("{name}.pid"), secs(5));
        assert_eq!(ppid(pid), Some(runpm.pid()), "{name} is runpm's child");
        assert_eq!(sid(pid), Some(pid), "{name} leads its own session");
        assert_eq!(pgid(pid), Some(pid), "{name} leads its own process group");
        assert_ne!(sid(pid), Some(runpm_sid));
    }
    runpm.send_signal(Signal::SIGINT);
    runpm.assert_exit_code(secs(10), 0);
}

// ---------------------------------------------------------------------------------------------
// Finding the config
// ---------------------------------------------------------------------------------------------

#[test]
fn a_directory_of_unit_files_works_like_services_toml() {
    let p = Project::new(secs(20));
    p.write(
        "units/alpha.toml",
        "shell = 'echo $$ > ../alpha.pid; pwd -P > here; echo hello; exec sleep 1000'\ncwd = \"work\"\n",
    );
    std::fs::create_dir_all(p.file("units/work")).unwrap();
    p.write(
        "units/bravo.toml",
        "depends_on = [\"alpha\"]\nshell = 'echo $$ > bravo.pid; echo hello; exec sleep 1000'\n",
    );
    let dir = p.file("units");
    let mut runpm = Runpm::start(p.command(["up".as_ref(), "-f".as_ref(), dir.as_os_str()]));
    // A relative cwd resolves against the unit directory; without cwd, a service runs there.
    let alpha = p.read_pid("units/alpha.pid", secs(5));
    let bravo = p.read_pid("units/bravo.pid", secs(5));
    p.wait_lines("units/work/here", 1, secs(5));
    assert_eq!(
        std::path::Path::new(p.read("units/work/here").trim()),
        dir.join("work").canonicalize().unwrap()
    );
    runpm.wait_for_output("alpha | hello", secs(5));
    runpm.wait_for_output("bravo | hello", secs(5));
    runpm.wait_for_event("alpha", "started", secs(5));
    runpm.wait_for_event("bravo", "started", secs(5));
    let stderr = runpm.stderr();
    assert!(
        event_index(&stderr, "alpha", "started") < event_index(&stderr, "bravo", "started"),
        "depends_on works in unit files\n{}",
        runpm.describe()
    );

    runpm.send_signal(Signal::SIGINT);
    runpm.assert_exit_code(secs(10), 0);
    assert!(wait_dead(alpha, secs(2)) && wait_dead(bravo, secs(2)));
}

#[test]
fn discovers_services_toml_in_a_parent_directory() {
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.found]
shell = 'pwd -P > found.out'
restart = "never"
"#,
    );
    let sub = p.file("sub/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cmd = p.command(["up"]);
    cmd.current_dir(&sub);
    let mut runpm = Runpm::start(cmd);
    runpm.assert_exit_code(secs(10), 0);
    // The service ran, in the config's directory (not in runpm's working directory).
    assert_eq!(
        std::path::Path::new(p.read("found.out").trim()),
        p.path().canonicalize().unwrap(),
        "{}",
        runpm.describe()
    );
}

#[test]
fn runpm_file_environment_variable_names_the_config() {
    let p = Project::new(secs(20));
    p.write(
        "elsewhere/custom.toml",
        r#"
[services.found]
shell = 'echo yes > found.out'
restart = "never"
"#,
    );
    let mut cmd = p.command(["up"]);
    cmd.env("RUNPM_FILE", p.file("elsewhere/custom.toml"));
    let mut runpm = Runpm::start(cmd);
    runpm.assert_exit_code(secs(10), 0);
    assert_eq!(
        p.read("elsewhere/found.out"),
        "yes\n",
        "{}",
        runpm.describe()
    );
}

#[test]
fn services_start_with_no_signal_blocked_or_ignored() {
    let p = Project::new(secs(20));
    // runpm itself ignores SIGPIPE (as every Rust program does) and may have been started
    // with signals ignored or blocked; none of that may reach a service, whose `yes | head`
    // would otherwise never end and whose SIGTERM could be lost.
    p.config(
        r#"
[services.masks]
shell = 'grep -E "^Sig(Blk|Ign)" /proc/self/status > masks.out'
restart = "never"
"#,
    );
    let mut cmd = p.up_command(&[]);
    // A parent that ignores SIGINT and SIGHUP, as nohup or a backgrounding shell does.
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::signal::{SigHandler, Signal, signal};
            signal(Signal::SIGINT, SigHandler::SigIgn)?;
            signal(Signal::SIGHUP, SigHandler::SigIgn)?;
            // And signals runpm has no handler for, which stay ignored unless reset.
            signal(Signal::SIGQUIT, SigHandler::SigIgn)?;
            signal(Signal::SIGUSR2, SigHandler::SigIgn)?;
            Ok(())
        });
    }
    let mut runpm = Runpm::start(cmd);
    p.wait_lines("masks.out", 2, secs(5));
    assert_eq!(
        p.read("masks.out"),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
    runpm.assert_exit_code(secs(10), 0);
}

/// `user =` takes the fork + exec path (posix_spawn cannot switch users); it must give the
/// service the same start as every other: its user, that user's HOME, its own session, no
/// signal blocked or ignored. Needs root, as switching users does (CI runs as root).
#[test]
fn user_switches_the_services_user_and_keeps_a_clean_start() {
    if !need_root("switching users needs it") {
        return;
    }
    let p = Project::new(secs(20));
    p.config(
        r#"
[services.who]
shell = 'echo "user=$(id -un) home=$HOME sid=$(ps -o sid= -p $$ | tr -d " ") pid=$$"; grep -E "^Sig(Blk|Ign)" /proc/self/status'
user = "nobody"
cwd = "/"
restart = "never"
"#,
    );
    let runpm = p.up(&[]);
    runpm.wait_for_output("SigIgn", secs(10));
    let out = runpm.stdout();
    let line = out
        .lines()
        .find(|l| l.contains("user="))
        .expect("the service's line");
    assert!(line.contains("user=nobody home=/nonexistent"), "{line}");
    let (sid, pid) = (field(line, "sid="), field(line, "pid="));
    assert_eq!(sid, pid, "the service leads its own session: {line}");
    // (runpm's console turns the tab into spaces.)
    for mask in ["SigBlk:", "SigIgn:"] {
        let line = out.lines().find(|l| l.contains(mask)).expect(mask);
        assert!(line.ends_with("0000000000000000"), "{out}");
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let rest = &line[line.find(key).unwrap() + key.len()..];
    rest.split_whitespace().next().unwrap()
}
