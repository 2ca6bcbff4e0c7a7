//! The watcher reacts to what the config is made of: the config file and every `env_file`,
//! not whatever else appears beside them; and with `watch = false` there is no watcher.

mod common;

use common::*;

/// What runpm logs when the watcher starts a reload.
const RELOADING: &str = "the configuration changed on disk: reloading";

fn reloads(daemon: &Daemon) -> usize {
    daemon.log().matches(RELOADING).count()
}

#[test]
fn a_new_file_beside_the_config_does_not_reload_an_edit_does() {
    let p = Project::new(secs(30));
    let config = r#"
[services.web]
shell = 'echo $$ > web.pid; exec sleep 1000'
"#;
    p.config(config);
    let daemon = p.up_detached(&[]);
    let web = p.running_pid("web", secs(5));

    // What a service or a person leaves beside the config: a pid file, a `touch`, a rename.
    p.write("nginx.pid", "42\n");
    p.write("notes.txt", "");
    std::fs::rename(p.file("notes.txt"), p.file("notes.old")).unwrap();
    std::fs::create_dir(p.file("tmp")).unwrap();
    // Several debounce windows (150 ms) with no reload.
    assert!(
        !wait_for(secs(1), || reloads(&daemon) > 0),
        "a file beside the config must not reload it\n{}",
        daemon.describe()
    );

    // A real edit does reload: the barrier that shows the watcher was listening all along.
    p.save_atomically(
        "services.toml",
        &format!("{config}\n[services.added]\nshell = 'exec sleep 1000'\n"),
    );
    p.running_pid("added", secs(5));
    assert_eq!(reloads(&daemon), 1, "{}", daemon.log());
    assert_eq!(p.pids()["web"], Some(web), "web is unchanged");
}

#[test]
fn editing_an_env_file_restarts_the_service_that_reads_it() {
    let p = Project::new(secs(30));
    p.write("app.env", "GREETING=hello\n");
    std::fs::create_dir(p.file("conf")).unwrap();
    p.write("conf/other.env", "GREETING=bonjour\n");
    let config = |env_file: &str| {
        format!(
            r#"
[services.app]
shell = 'echo $$ > app.pid; echo "$GREETING" > greeting.out; exec sleep 1000'
env_file = "{env_file}"

[services.bystander]
shell = 'echo $$ > bystander.pid; exec sleep 1000'
"#
        )
    };
    p.config(&config("app.env"));
    let _daemon = p.up_detached(&[]);
    let first = p.running_pid("app", secs(5));
    let bystander = p.running_pid("bystander", secs(5));
    assert_eq!(p.read("greeting.out").trim(), "hello");

    p.save_atomically("app.env", "GREETING=hi\n");
    let second = p.wait_new_pid("app.pid", first, secs(5));
    assert!(
        wait_for(secs(5), || p.read("greeting.out").trim() == "hi"),
        "the restarted service should see the new value: {:?}",
        p.read("greeting.out")
    );

    // A reload that points the service at another env file moves the watch there.
    p.save_atomically("services.toml", &config("conf/other.env"));
    let third = p.wait_new_pid("app.pid", second, secs(5));
    assert!(wait_for(secs(5), || p.read("greeting.out").trim() == "bonjour"));
    std::fs::write(p.file("conf/other.env"), "GREETING=salut\n").unwrap();
    p.wait_new_pid("app.pid", third, secs(5));
    assert!(wait_for(secs(5), || p.read("greeting.out").trim() == "salut"));
    assert_eq!(p.pids()["bystander"], Some(bystander));
}

/// The names of the daemon's threads (`/proc/PID/task/*/comm`).
fn threads(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect()
}

#[test]
fn watch_false_starts_no_watcher_thread() {
    let service = "[services.web]\nshell = 'exec sleep 1000'\n";
    let on = Project::new(secs(30));
    on.config(service);
    let off = Project::new(secs(30));
    off.config(&format!("[runpm]\nwatch = false\n\n{service}"));
    let watching = on.up_detached(&[]);
    let still = off.up_detached(&[]);
    on.running_pid("web", secs(5));
    off.running_pid("web", secs(5));

    let (with, without) = (threads(watching.pid()), threads(still.pid()));
    let notify = |names: &[String]| names.iter().any(|n| n.starts_with("notify"));
    assert!(
        notify(&with),
        "a watching daemon has notify's thread: {with:?}"
    );
    assert!(!notify(&without), "watch = false: {without:?}");
    assert!(without.len() < with.len(), "{without:?} vs {with:?}");
}
