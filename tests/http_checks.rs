//! HTTP checks (`ready = { http = … }`, `health = { http = … }`) against a real HTTP server:
//! Python's `http.server`, subclassed to answer 503 until a file exists and 200 after, so
//! "not ready yet" is a fact the test controls.

mod common;

use std::time::Duration;

use common::*;

/// A server on `port` that answers `/healthz` with 503 while `gate` is missing, 200 once it
/// exists, and counts its requests in `hits`.
fn server(port: u16) -> String {
    format!(
        r#"
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open("hits", "a") as f: f.write(self.path + " " + self.headers.get("Host", "") + "\n")
        code = 200 if os.path.exists("gate") else 503
        self.send_response(code); self.end_headers(); self.wfile.write(b"x")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", {port}), H).serve_forever()
"#
    )
}

#[test]
fn a_service_is_starting_while_it_answers_503_and_running_once_it_answers_200() {
    let p = Project::new(Duration::from_secs(60));
    let port = free_port();
    p.write("server.py", &server(port));
    p.config(&format!(
        "[services.api]\ncmd = [\"python3\", \"server.py\"]\n\
         ready = {{ http = \"http://127.0.0.1:{port}/healthz\", timeout = \"2s\" }}\n\
         ready_timeout = \"30s\"\n\n\
         [services.client]\nshell = \"echo $$ > client.pid; exec sleep 600\"\ndepends_on = [\"api\"]\n"
    ));
    let mut runpm = p.up(&["--no-watch"]);
    p.wait_socket(secs(10));
    // The server answers (503) several times, and api stays starting; client waits.
    assert!(
        wait_for(secs(10), || p.lines("hits").len() >= 3),
        "the check never asked the server"
    );
    let api = p.service("api");
    assert_eq!(api["status"], "starting", "{api}");
    assert!(
        api["not_ready"]
            .as_str()
            .is_some_and(|r| r.contains("answered 503")),
        "{api}"
    );
    assert!(!p.file("client.pid").exists());
    let first = &p.lines("hits")[0];
    assert_eq!(first, &format!("/healthz 127.0.0.1:{port}"));
    p.write("gate", "");
    p.wait_status("api", "running", secs(10));
    p.wait_status("client", "running", secs(10));
    runpm.send_signal(nix::sys::signal::Signal::SIGTERM);
    runpm.wait_exit(secs(20));
}

#[test]
fn a_failing_http_health_check_restarts_the_service() {
    let p = Project::new(Duration::from_secs(60));
    let port = free_port();
    p.write("server.py", &server(port));
    p.write("gate", "");
    p.config(&format!(
        "[services.api]\nshell = \"echo $$ >> api.pids; exec python3 server.py\"\n\
         ready = {{ http = \"http://127.0.0.1:{port}/healthz\" }}\n\
         health = {{ http = \"http://127.0.0.1:{port}/healthz\", status = [200], \
         interval = \"100ms\", retries = 2 }}\n\
         restart = \"always\"\nrestart_delay = \"100ms\"\n"
    ));
    let mut runpm = p.up(&["--no-watch"]);
    p.wait_socket(secs(10));
    p.wait_status("api", "running", secs(10));
    std::fs::remove_file(p.file("gate")).unwrap();
    // Two 503s in a row: runpm restarts it (a new pid is written).
    p.wait_lines("api.pids", 2, secs(20));
    let exits = p.service("api")["exits"].clone();
    assert!(
        exits.to_string().contains("answered 503"),
        "the exit history names the failed check: {exits}"
    );
    runpm.send_signal(nix::sys::signal::Signal::SIGTERM);
    runpm.wait_exit(secs(20));
}

#[test]
fn https_is_a_config_error_that_says_what_to_do() {
    let p = Project::new(Duration::from_secs(30));
    p.config("[services.api]\ncmd = [\"true\"]\nready = { http = \"https://127.0.0.1:8443/\" }\n");
    let out = p.run(&["validate", "-f", "services.toml"], secs(10));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("services.toml:3:1")
            && out.stderr.contains("https is not supported")
            && out.stderr.contains("curl"),
        "{}",
        out.describe()
    );
}
