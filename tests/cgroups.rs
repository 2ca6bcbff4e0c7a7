//! A cgroup per service (issue 15), with the real binaries, as root on the machine's cgroup
//! v2 hierarchy (on a hybrid host the `unified` mount, which has no controllers delegated:
//! membership, `cgroup.kill`, `cgroup.events` and `cpu.stat` are testable there, limits
//! are not and are reported as not enforced).
//!
//! Every test needs root (the skip rule of `tests/common/need.rs`): CI runs them.

mod common;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// A service whose shell leaves a grandchild in a session of its own that ignores SIGTERM:
/// what a process-group stop cannot reach. The grandchild's pid goes to `escaped.pid`.
const ESCAPING: &str = r#"
[services.web]
shell = """
setsid sh -c 'trap "" TERM; echo $$ > escaped.pid; exec sleep 1000' &
exec sleep 1000
"""
kill_timeout = "500ms"
"#;

fn daemon_with(p: &Project, toml: &str) -> Daemon {
    p.config(toml);
    p.up_detached(&[])
}

fn service(p: &Project, name: &str) -> Value {
    p.services()
        .remove(name)
        .unwrap_or_else(|| panic!("no `{name}` in status"))
}

fn escaped(p: &Project) -> i32 {
    let pid = p.read_pid("escaped.pid", secs(10));
    assert!(is_alive(pid), "the escaped grandchild {pid} runs");
    pid
}

/// The escaped grandchild is really out of reach of a process-group kill.
fn assert_escaped(main: i32, pid: i32) {
    assert_ne!(sid(pid), sid(main), "{pid} has a session of its own");
    assert_ne!(
        pgid(pid),
        pgid(main),
        "{pid} left the service's process group"
    );
}

#[test]
fn a_setsid_grandchild_that_ignores_sigterm_is_gone_after_stop() {
    if !need_root("it creates cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    let _daemon = daemon_with(&p, ESCAPING);
    let main = p.running_pid("web", secs(10));
    let pid = escaped(&p);
    assert_escaped(main, pid);

    let out = p.ctl_ok(&["stop", "web"]);
    assert!(out.contains("web: stopped"), "{out}");
    // `stop` returns once the cgroup is empty: nothing is left to wait for.
    assert!(
        !is_alive(pid),
        "the escaped grandchild {pid} survived `stop`"
    );
    assert!(!is_alive(main));
    let web = service(&p, "web");
    assert_eq!(web["status"], "stopped", "{web}");
    assert_eq!(web["tasks"], 0, "an empty cgroup: {web}");
}

#[test]
fn a_setsid_grandchild_that_ignores_sigterm_is_gone_after_shutdown() {
    if !need_root("it creates cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    let daemon = daemon_with(&p, ESCAPING);
    let main = p.running_pid("web", secs(10));
    let pid = escaped(&p);
    assert_escaped(main, pid);
    let cgroup = service(&p, "web")["cgroup"]
        .as_str()
        .expect("a cgroup path in status")
        .to_owned();

    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(daemon.wait_exit(secs(20)), "{}", daemon.describe());
    assert!(
        !is_alive(pid),
        "the escaped grandchild {pid} survived `shutdown`"
    );
    // runpm cleans up after itself: the service's cgroup and its project's are gone.
    let project = std::path::Path::new(&cgroup).parent().unwrap();
    assert!(
        wait_for(secs(5), || !project.exists()),
        "{project:?} is left behind"
    );
}

#[test]
fn every_process_is_in_its_cgroup_from_its_first_instruction() {
    if !need_root("it creates cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    let daemon = daemon_with(
        &p,
        r#"
[services.web]
shell = "cat /proc/self/cgroup > cgroup.txt; sh -c 'cat /proc/self/cgroup > child.txt'; exec sleep 1000"
"#,
    );
    let pid = p.running_pid("web", secs(10));
    let v2 = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
            .unwrap_or_else(|| panic!("no cgroup v2 line in {text:?}"))
    };
    let first = v2(p.wait_lines("cgroup.txt", 1, secs(10)).join("\n"));
    assert!(first.ends_with("/web.service"), "{first}");
    let child = v2(p.wait_lines("child.txt", 1, secs(10)).join("\n"));
    assert_eq!(child, first, "a child of the service is in the same cgroup");
    let now = v2(std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap());
    assert_eq!(now, first);

    // runpm itself sits in the `supervisor` leaf beside its services.
    let own = v2(std::fs::read_to_string(format!("/proc/{}/cgroup", daemon.pid())).unwrap());
    let project = first.strip_suffix("/web.service").unwrap();
    assert_eq!(own, format!("{project}/supervisor"));

    // status says where, and the state file records it.
    let status = p.status_json();
    assert_eq!(status["cgroups"]["enabled"], true, "{status}");
    let web = &status["services"][0];
    assert!(
        web["cgroup"].as_str().unwrap().ends_with(&first),
        "{web} vs {first}"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".runpm/state.json")).unwrap())
            .unwrap();
    let recorded = state["services"][0]["cgroup"].as_str().unwrap_or_default();
    assert!(recorded.ends_with(&first), "{state}");
}

#[test]
fn cpu_time_grows_for_a_busy_service_and_tasks_are_counted() {
    if !need_root("it creates cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    let _daemon = daemon_with(
        &p,
        r#"
[services.busy]
shell = "while :; do :; done"

[services.idle]
shell = "sleep 1000 & sleep 1000 & exec sleep 1000"
"#,
    );
    p.running_pid("busy", secs(10));
    let cpu = |p: &Project| service(p, "busy")["cpu_usec"].as_u64().unwrap_or(0);
    assert!(
        wait_for(secs(20), || cpu(&p) > 100_000),
        "busy used no CPU: {}",
        service(&p, "busy")
    );
    let first = cpu(&p);
    assert!(
        wait_for(secs(20), || cpu(&p) > first),
        "cpu_usec did not grow"
    );
    assert!(
        wait_for(secs(10), || service(&p, "idle")["tasks"] == 3),
        "three sleeps: {}",
        service(&p, "idle")
    );
    assert!(service(&p, "idle")["memory_bytes"].as_u64().unwrap_or(0) > 0);
    let table = p.ctl_ok(&["status"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert!(header.ends_with(&["MEM", "CPU", "LAST-EXIT"]), "{table}");
    assert!(table.lines().all(|l| l.len() <= 80), "{table}");
}

#[test]
fn rlimits_are_set_before_exec() {
    if !need_root("it creates cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    let _daemon = daemon_with(
        &p,
        r#"
[services.web]
cmd = ["sleep", "1000"]
rlimits = { nofile = 1234, core = "unlimited", nproc = { soft = 500, hard = 600 }, memlock = "4MiB" }
"#,
    );
    let pid = p.running_pid("web", secs(10));
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let row = |name: &str| {
        let line = limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {limits}"));
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("Max open files"), ["1234", "1234"]);
    assert_eq!(row("Max core file size"), ["unlimited", "unlimited"]);
    assert_eq!(row("Max processes"), ["500", "600"]);
    assert_eq!(row("Max locked memory"), ["4194304", "4194304"]);
}

#[test]
fn without_a_writable_cgroup_runpm_says_why_and_stops_by_group() {
    if !need_root("it compares with cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.web]
shell = "echo $$ > main.pid; exec sleep 1000"
memory_max = "100MB"
"#,
    );
    // Not a directory: nothing can be created below it.
    let fake = p.write("not-a-cgroup", "");
    let mut cmd = p.command(["up", "-d", "-f", "services.toml"]);
    cmd.env("RUNPM_CGROUP_ROOT", &fake);
    let daemon = p.up_detached_with(cmd, &p.file(".runpm"));
    p.running_pid("web", secs(10));

    let status = p.status_json();
    assert_eq!(status["cgroups"]["enabled"], false, "{status}");
    let reason = status["cgroups"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot write to runpm's cgroup"),
        "{reason}"
    );
    let web = &status["services"][0];
    assert_eq!(web["limits_enforced"], false, "{web}");
    assert!(
        web["limits_reason"]
            .as_str()
            .unwrap()
            .contains("memory_max not enforced"),
        "{web}"
    );
    assert_eq!(web["cgroup"], Value::Null);
    let table = p.ctl_ok(&["status"]);
    assert!(
        table.contains("cgroups: not in use (cannot write"),
        "{table}"
    );
    let log = daemon.wait_for_log("cgroups not in use", secs(5));
    assert!(log.contains("memory_max not enforced"), "{log}");

    // Stops still work, by process group.
    p.ctl_ok(&["stop", "web"]);
    let main = p.read_pid("main.pid", secs(5));
    assert!(!is_alive(main));
}

#[test]
fn validate_warns_about_limits_it_cannot_enforce_and_passes() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[runpm]
cgroups = false

[services.web]
cmd = ["sleep", "1"]
memory_max = "512MB"
cpu_max = "50%"
"#,
    );
    let out = p.run(&["validate", "-f", "services.toml"], secs(10));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stderr
            .contains("warning: web: memory_max, cpu_max not enforced"),
        "{}",
        out.describe()
    );
}

#[test]
fn bad_limits_are_errors_at_their_position() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.web]
cmd = ["sleep", "1"]
cpu_max = "0%"
rlimits = { nofiles = 10 }
"#,
    );
    let out = p.run(&["validate", "-f", "services.toml"], secs(10));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains(":4:"), "{}", out.describe());
    assert!(
        out.stderr.contains("cpu_max `0%` is out of range"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains("unknown rlimit `nofiles` (did you mean `nofile`?)"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_limit_change_is_applied_live_on_reload() {
    if !need_root("it creates cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    let _daemon = daemon_with(
        &p,
        "[services.web]\ncmd = [\"sleep\", \"1000\"]\npids_max = 100\n",
    );
    let pid = p.running_pid("web", secs(10));
    p.config("[services.web]\ncmd = [\"sleep\", \"1000\"]\npids_max = 200\n");
    let out = p.ctl_ok(&["reload"]);
    assert!(out.contains("~ web limits changed (applied live)"), "{out}");
    assert_eq!(p.running_pid("web", secs(10)), pid, "no restart");
    let json: Value = serde_json::from_str(&p.ctl_ok(&["reload", "--json"])).unwrap();
    assert_eq!(json["changes"], Value::Array(vec![]), "{json}");
}

#[test]
fn a_restarted_daemon_kills_what_is_left_in_a_service_cgroup() {
    if !need_root("it creates cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    let daemon = daemon_with(&p, ESCAPING);
    let main = p.running_pid("web", secs(10));
    let pid = escaped(&p);
    daemon.crash();
    // The main process dies too, so only the escaped grandchild is left in the cgroup,
    // where nothing in the state file names it.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(main), Signal::SIGKILL).unwrap();
    assert!(wait_dead(main, secs(5)));
    assert!(is_alive(pid));

    let _again = p.up_detached(&[]);
    assert!(
        wait_dead(pid, secs(10)),
        "the leftover {pid} of the crashed daemon survived the new one"
    );
    let fresh = p.running_pid("web", secs(10));
    assert_ne!(fresh, main);
}

#[test]
fn cgroups_can_be_turned_off() {
    if !need_root("it compares with cgroups") {
        return;
    }
    let p = Project::new(secs(60));
    p.config("[services.web]\ncmd = [\"sleep\", \"1000\"]\n");
    let mut cmd = p.command(["up", "-d", "-f", "services.toml"]);
    cmd.env("RUNPM_CGROUPS", "0");
    let _daemon = p.up_detached_with(cmd, &p.file(".runpm"));
    let pid = p.running_pid("web", secs(10));
    let status = p.status_json();
    assert_eq!(status["cgroups"]["enabled"], false, "{status}");
    assert_eq!(status["cgroups"]["reason"], "turned off by RUNPM_CGROUPS=0");
    // Usage still comes from /proc.
    assert!(status["services"][0]["memory_bytes"].as_u64().unwrap_or(0) > 0);
    assert!(
        !std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap()
            .contains(".service")
    );
}

#[test]
fn limits_are_exported_to_systemd_and_kubernetes() {
    if !need_tool("systemd-analyze", "systemd") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.web]
cmd = ["/bin/sleep", "1000"]
memory_max = "512MB"
memory_high = "400MB"
cpu_max = "150%"
cpu_weight = 200
pids_max = 64
io_weight = 50
rlimits = { nofile = 65536, core = "unlimited", nproc = { soft = 100, hard = 200 } }
"#,
    );
    let units = p.file("units");
    let out = p.ctl(&["export", "systemd", "--out", units.to_str().unwrap()]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let unit = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|path| path.to_string_lossy().ends_with("web.service"))
        .expect("a unit for web");
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "MemoryMax=512000000",
        "MemoryHigh=400000000",
        "CPUQuota=150%",
        "CPUWeight=200",
        "TasksMax=64",
        "IOWeight=50",
        "LimitNOFILE=65536",
        "LimitCORE=infinity",
        "LimitNPROC=100:200",
        "KillMode=control-group",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .current_dir(&units)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr).to_string();
    assert!(
        verify.status.success()
            && !complaints
                .lines()
                .any(|l| l.contains("web.service") && !l.contains("RestartSteps")),
        "systemd-analyze verify: {complaints}\n{text}"
    );

    let k8s = p.ctl(&["export", "kubernetes"]);
    assert_eq!(k8s.code(), Some(0), "{}", k8s.describe());
    for needle in [
        "resources:",
        "memory: \"512000000\"",
        "cpu: \"1500m\"",
        "memory: \"400000000\"",
    ] {
        assert!(
            k8s.stdout.contains(needle),
            "no {needle} in\n{}",
            k8s.stdout
        );
    }
    assert!(k8s.stderr.contains("pids_max"), "{}", k8s.stderr);
}
