//! `ready = { tcp = … }` proves that the service itself listens: a port held by another
//! process does not make it ready, and status names the holder. With real nginx.

mod common;

use std::path::Path;

use common::*;

/// A minimal nginx in the foreground (`daemon off;`) with every path it writes in `dir`,
/// listening on 127.0.0.1:`port`.
fn nginx_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr;
events {{ worker_connections 16; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\n"; }}
    }}
}}
"#
    )
}

/// A project whose service `web` is that nginx, ready when 127.0.0.1:`port` accepts.
fn nginx_project(port: u16) -> Project {
    let p = Project::new(secs(60));
    std::fs::create_dir(p.file("tmp")).unwrap();
    let conf = p.write("nginx.conf", &nginx_conf(p.path(), port));
    p.config(&format!(
        r#"
[services.web]
cmd = ["nginx", "-p", "{dir}", "-c", "{conf}", "-e", "stderr"]
ready = {{ tcp = "127.0.0.1:{port}" }}
ready_timeout = "60s"
restart_delay = "100ms"
"#,
        dir = p.path().display(),
        conf = conf.display(),
    ));
    p
}

#[test]
fn nginx_alone_becomes_ready() {
    if !need_tool("nginx", "nginx") {
        return;
    }
    let port = free_port();
    let p = nginx_project(port);
    let _daemon = p.up_detached(&[]);
    let web = p.wait_status("web", "running", secs(10));
    assert!(web["not_ready"].is_null(), "{web:#}");
    assert!(port_open(port));
}

#[test]
fn a_port_held_by_another_process_is_not_ready_and_status_names_the_holder() {
    if !need_tool("nginx", "nginx") {
        return;
    }
    let port = free_port();
    let p = nginx_project(port);
    // Someone else holds the port first.
    let holder = Runpm::start(p.program(
        "python3",
        [
            "-c",
            &format!(
                "import socket, sys, time\n\
                 s = socket.socket()\n\
                 s.bind(('127.0.0.1', {port}))\n\
                 s.listen(64)\n\
                 print('listening', flush=True)\n\
                 time.sleep(1000)\n"
            ),
        ],
    ));
    holder.wait_for_output("listening", secs(10));
    let python = holder.pid();

    // In the foreground: `up -d` would report nginx's failed binds (tests/edges_up_detach.rs).
    let _runpm = p.up(&[]);
    let web = p.wait_service("web", "not ready because of the holder", secs(15), |s| {
        s["not_ready"]
            .as_str()
            .is_some_and(|why| why.contains(&format!("pid {python} (python3)")))
    });
    assert_eq!(web["status"], "starting", "{web:#}");
    let table = p.ctl_ok(&["status"]);
    assert!(
        table.contains(&format!("pid {python} (python3)")),
        "`runpmctl status` shows who holds the port:\n{table}"
    );
    // nginx cannot bind while python holds the port; it is never counted as running.
    for _ in 0..5 {
        let s = p.service("web");
        assert_ne!(s["status"], "running", "{s:#}");
    }

    // Once the port is free, nginx (restarted after its failed bind) gets it and is ready.
    drop(holder);
    let web = p.wait_status("web", "running", secs(30));
    assert!(web["not_ready"].is_null(), "{web:#}");
}
