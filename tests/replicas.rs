//! `replicas = N` and `runpmctl scale`: real processes, each replica with its own port
//! (`{replica}` in `env`), a dependent that waits for every replica, and scaling that starts
//! and stops only the difference.

mod common;

use std::time::Duration;

use common::*;

/// `web` runs `count` replicas, each a Python HTTP server on `base + index` (its port from
/// `{replica}`-substituted `PORT_SUFFIX`), ready once it listens; `app` needs all of them.
fn config(base: u16, count: u32) -> String {
    format!(
        r#"
[services.web]
shell = "echo $RUNPM_REPLICA > web.$RUNPM_REPLICA.env; exec python3 -m http.server --bind 127.0.0.1 $(( {base} + {{replica}} ))"
replicas = {count}
ready = {{ http = "http://127.0.0.1:{}{{replica}}/" }}

[services.app]
shell = "echo $$ > app.pid; exec sleep 600"
depends_on = ["web"]
"#,
        base / 10
    )
}

/// A base port whose last digit is 0 and whose next `n` ports are free, so that
/// `{base/10}{replica}` is the same port as `base + replica`.
fn free_base(n: u16) -> u16 {
    loop {
        let port = free_port();
        let base = port - port % 10;
        if base >= 1024 && (0..n).all(|i| !port_open(base + i)) {
            return base;
        }
    }
}

#[test]
fn replicas_listen_on_their_own_ports_and_a_dependent_waits_for_all() {
    let p = Project::new(Duration::from_secs(90));
    let base = free_base(3);
    p.config(&config(base, 3));
    // `up -d` returns once everything is ready: every replica, then app.
    let _d = p.up_detached(&[]);
    let services = p.services();
    let names: Vec<&String> = services.keys().collect();
    assert_eq!(names, ["app", "web.0", "web.1", "web.2"]);
    for i in 0..3u16 {
        let name = format!("web.{i}");
        assert_eq!(services[&name]["status"], "running");
        assert_eq!(services[&name]["replica_of"], "web");
        assert!(port_open(base + i), "web.{i} listens on {}", base + i);
        assert_eq!(p.read(&format!("web.{i}.env")).trim(), i.to_string());
    }
    assert_eq!(services["app"]["status"], "running");
    let deps: Vec<String> = services["app"]["dependencies"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(deps, ["web.0", "web.1", "web.2"], "{}", services["app"]);
}

#[test]
fn scale_up_and_down_keeps_the_other_replicas_and_the_dependent() {
    let p = Project::new(Duration::from_secs(90));
    let base = free_base(4);
    p.config(&config(base, 2));
    let _d = p.up_detached(&[]);
    let before = p.pids();
    let app = before["app"].expect("app runs");

    let out = p.ctl_ok(&["scale", "web", "4"]);
    assert!(out.contains("started: web.2, web.3"), "{out}");
    p.running_pid("web.3", secs(20));
    assert!(port_open(base + 3));
    let after = p.pids();
    assert_eq!(after["web.0"], before["web.0"], "web.0 keeps its pid");
    assert_eq!(after["web.1"], before["web.1"], "web.1 keeps its pid");
    assert_eq!(after["app"], Some(app), "the dependent is not restarted");

    // Recorded in the state file with the count the config asked for.
    let state: serde_json::Value =
        serde_json::from_str(&p.read(".runpm/state.json")).expect("state.json");
    assert_eq!(state["scaled"]["web"]["count"], 4, "{}", state["scaled"]);
    assert_eq!(state["scaled"]["web"]["config"], 2);

    let out = p.ctl_ok(&["scale", "web", "1", "--json"]);
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        done["stopped"],
        serde_json::json!(["web.1", "web.2", "web.3"]),
        "{done}"
    );
    let last = p.pids();
    assert_eq!(last.keys().collect::<Vec<_>>(), ["app", "web.0"]);
    assert_eq!(last["web.0"], before["web.0"]);
    assert_eq!(last["app"], Some(app));
    assert!(!port_open(base + 1));

    // The override holds across a reload of the same config…
    p.ctl_ok(&["reload"]);
    assert_eq!(p.pids().len(), 2);
    // …and the config wins once its `replicas` changes: only the difference starts.
    p.write("services.toml", &config(base, 3));
    let plan = p.ctl_ok(&["reload"]);
    assert!(plan.contains("web.1") && plan.contains("web.2"), "{plan}");
    p.running_pid("web.2", secs(20));
    assert_eq!(p.pids()["web.0"], before["web.0"]);
    assert_eq!(p.pids()["app"], Some(app));
}

#[test]
fn scale_refuses_a_service_without_replicas() {
    let p = Project::new(Duration::from_secs(60));
    let base = free_base(1);
    p.config(&config(base, 1));
    let _d = p.up_detached(&[]);
    let out = p.ctl(&["scale", "app", "2"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("`app` has no `replicas`") && out.stderr.contains("web"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_replica_name_taken_by_another_service_is_an_error_at_both_places() {
    let p = Project::new(Duration::from_secs(30));
    p.config("[services.web]\ncmd = [\"true\"]\nreplicas = 2\n\n[services.\"web.1\"]\ncmd = [\"true\"]\n");
    let out = p.run(&["validate", "-f", "services.toml"], secs(10));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("services.toml:3:1")
            && out.stderr.contains("services.toml:5:11")
            && out.stderr.contains("taken by a replica of `web`"),
        "{}",
        out.describe()
    );
}
