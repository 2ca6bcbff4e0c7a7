//! `profiles`: services that run only when `runpm up --profile P` or `RUNPM_PROFILES`
//! selects them, or when `runpm up` names them, as in docker compose; the rest of the time
//! they are not part of the running config at all. The selection holds across reloads.

mod common;

use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
[services.web]
shell = "echo $$ > web.pid; exec sleep 600"

[services.debugger]
shell = "echo $$ > debugger.pid; exec sleep 600"
profiles = ["debug"]
depends_on = ["tool"]

[services.tool]
shell = "echo $$ > tool.pid; exec sleep 600"
profiles = ["tools", "debug"]
"#;

fn names(p: &Project) -> Vec<String> {
    p.services().into_keys().collect()
}

#[test]
fn without_a_profile_only_the_unprofiled_services_exist() {
    let p = Project::new(Duration::from_secs(60));
    p.config(CONFIG);
    let _d = p.up_detached(&[]);
    p.running_pid("web", secs(10));
    assert_eq!(names(&p), ["web"]);
    assert!(!p.file("tool.pid").exists() && !p.file("debugger.pid").exists());
    // Compose's way: the service is not known to the running project.
    let out = p.ctl(&["status", "tool"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
}

#[test]
fn a_profile_selected_by_flag_runs_its_services_and_survives_a_reload() {
    let p = Project::new(Duration::from_secs(60));
    p.config(CONFIG);
    let _d = p.up_detached(&["--profile", "tools"]);
    let tool = p.running_pid("tool", secs(10));
    p.running_pid("web", secs(10));
    assert_eq!(names(&p), ["tool", "web"]);
    // A reload reads the config again with the same selection: nothing changes.
    let plan = p.ctl_ok(&["reload"]);
    assert!(!plan.contains("debugger"), "{plan}");
    assert_eq!(names(&p), ["tool", "web"]);
    assert_eq!(p.running_pid("tool", secs(5)), tool);
}

#[test]
fn profiles_from_the_environment_are_a_comma_separated_list() {
    let p = Project::new(Duration::from_secs(60));
    p.config(CONFIG);
    let file = p.file("services.toml");
    let mut cmd = p.command(["up", "-f", file.to_str().unwrap(), "-d"]);
    cmd.env("RUNPM_PROFILES", "debug, tools");
    let _d = p.up_detached_with(cmd, &p.file(".runpm"));
    for name in ["web", "tool", "debugger"] {
        p.running_pid(name, secs(10));
    }
    assert_eq!(names(&p), ["debugger", "tool", "web"]);
}

#[test]
fn naming_a_profiled_service_starts_it_with_its_dependencies() {
    let p = Project::new(Duration::from_secs(60));
    p.config(CONFIG);
    let _d = p.up_detached(&["debugger"]);
    p.running_pid("debugger", secs(10));
    p.running_pid("tool", secs(10));
    // Only what was named (and needs) starts; `web` is defined but not started.
    assert_eq!(names(&p), ["debugger", "tool", "web"]);
    assert_eq!(p.statuses()["web"], "stopped");
}

#[test]
fn validate_rejects_an_unprofiled_service_that_needs_a_profiled_one() {
    let p = Project::new(Duration::from_secs(30));
    p.config(
        "[services.app]\ncmd = [\"true\"]\ndepends_on = [\"tool\"]\n\n\
         [services.tool]\ncmd = [\"true\"]\nprofiles = [\"tools\"]\n",
    );
    let out = p.run(&["validate", "-f", "services.toml"], secs(10));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("services.toml:3:15")
            && out.stderr.contains("runs only with profile \"tools\"")
            && out.stderr.contains("add `profiles = [\"tools\"]` to `app`"),
        "{}",
        out.describe()
    );
}
