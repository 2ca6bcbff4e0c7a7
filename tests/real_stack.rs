//! A real stack as a user would run it: PostgreSQL (as user `postgres`, ready through its
//! own sd_notify), a migration task that must complete, and a gunicorn app (ready through
//! gunicorn's own sd_notify) that depends on both. The app writes its last record while it
//! stops; that write must be accepted, so PostgreSQL may only be stopped after the app has
//! exited, through the finished migration between them.
//!
//! Needs root (to run PostgreSQL as `postgres`), Debian's `postgresql`, and gunicorn in the
//! virtualenv that `.ci/run` makes (`$RUNPM_CI_VENV`, default `~/.cache/runpm-ci-venv`).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::*;

fn postgres_bin() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|bin| bin.join("initdb").is_file());
    found.expect("PostgreSQL is needed: install Debian's `postgresql` (.ci/run does)")
}

fn gunicorn() -> PathBuf {
    let venv = std::env::var_os("RUNPM_CI_VENV").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/runpm-ci-venv"),
        PathBuf::from,
    );
    let bin = venv.join("bin/gunicorn");
    assert!(
        bin.is_file(),
        "gunicorn is needed in {venv:?}: run `bash .ci/run`, which makes that virtualenv"
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET /` on the app; the body.
fn get(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "GET / HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
}

const APP: &str = r#"
import os, subprocess

def app(environ, start_response):
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", os.environ["PGPORT"], "-U", "postgres", "-tAc",
         "SELECT count(*) FROM hits"],
        capture_output=True, text=True)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("hits " + out.stdout.strip()).encode()]
"#;

/// gunicorn's hook as the arbiter exits: the app's last write, while the database must
/// still be up.
const GUNICORN_CONF: &str = r#"
import os, subprocess

def on_exit(server):
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", os.environ["PGPORT"], "-U", "postgres", "-tAc",
         "INSERT INTO hits VALUES (1)"],
        capture_output=True, text=True)
    with open("last-write.out", "w") as f:
        f.write(out.stdout + out.stderr)
"#;

#[test]
fn postgres_migration_and_gunicorn_start_in_order_and_stop_in_reverse() {
    if !need_root("PostgreSQL runs as user `postgres`") {
        return;
    }
    let pg = postgres_bin();
    let gunicorn = gunicorn();
    let p = Project::new(secs(120));
    let _strays = p.stray_guard();
    // PostgreSQL runs as `postgres`: it must reach its data directory.
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = p.file("pgdata");
    std::fs::create_dir(&data).unwrap();
    let chown = run_to_end(p.program("chown", ["postgres:postgres", data.to_str().unwrap()]));
    assert_eq!(chown.code(), Some(0), "{}", chown.describe());
    let initdb = run_to_end(p.program(
        "setpriv",
        [
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            pg.join("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
        ],
    ));
    assert_eq!(initdb.code(), Some(0), "{}", initdb.describe());

    let (db_port, app_port) = (free_port(), free_port());
    p.write("app.py", APP);
    p.write("gunicorn.conf.py", GUNICORN_CONF);
    p.config(&format!(
        r#"
[services.db]
cmd = ["{postgres}", "-D", "pgdata", "-p", "{db_port}", "-k", "{sockets}",
       "-c", "listen_addresses=127.0.0.1"]
user = "postgres"
ready = {{ notify = true }}
ready_timeout = "60s"

[services.migrate]
shell = "psql -h 127.0.0.1 -p {db_port} -U postgres -c 'CREATE TABLE IF NOT EXISTS hits (n int)'"
restart = "never"
depends_on = ["db"]

[services.app]
cmd = ["{gunicorn}", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:{app_port}",
       "--workers", "2", "app:app"]
env = {{ PGPORT = "{db_port}" }}
ready = {{ notify = true }}
depends_on = {{ db = "ready", migrate = "completed" }}
"#,
        postgres = pg.join("postgres").display(),
        sockets = data.display(),
        gunicorn = gunicorn.display(),
    ));
    let daemon = p.up_detached(&["--no-watch"]);
    let statuses = p.statuses();
    assert_eq!(statuses["db"], "running", "{statuses:?}\n{}", daemon.log());
    assert_eq!(statuses["migrate"], "exited", "{statuses:?}");
    assert_eq!(statuses["app"], "running", "{statuses:?}\n{}", daemon.log());
    assert_eq!(get(app_port), "hits 0", "the app reads the migrated table");

    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(daemon.wait_exit(secs(60)), "{}", daemon.describe());
    let last = p.read("last-write.out");
    assert_eq!(
        last.trim(),
        "INSERT 0 1",
        "the app's last write was refused: PostgreSQL went down before the app had exited\n{}",
        daemon.log()
    );
    let log = daemon.log();
    let position = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in the log:\n{log}"))
    };
    assert!(
        position("app: stopped") < position("db: stopping"),
        "db was signalled before app had stopped:\n{log}"
    );
}
