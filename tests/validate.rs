//! `runpm validate` and the config errors of `runpm up`: every error at once, each located
//! as `FILE:LINE:COL: service `NAME`: message`, exit 1, and nothing started.

mod common;

use common::*;

/// One diagnostic line: `FILE:LINE:COL: service `NAME`: message`.
#[derive(Debug)]
struct Diag {
    file: String,
    line: u32,
    col: u32,
    service: String,
    message: String,
}

fn parse_diag(line: &str) -> Option<Diag> {
    let (head, rest) = line.split_once(": service `")?;
    let (service, message) = rest.split_once("`: ")?;
    let mut parts = head.rsplitn(3, ':');
    let col = parts.next()?.parse().ok()?;
    let line_no = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_string();
    Some(Diag {
        file,
        line: line_no,
        col,
        service: service.to_string(),
        message: message.to_string(),
    })
}

fn diags(stderr: &str) -> Vec<Diag> {
    stderr.lines().filter_map(parse_diag).collect()
}

/// The diagnostics about `service` in `file` (matched by file name).
fn diags_for<'a>(all: &'a [Diag], file: &str, service: &str) -> Vec<&'a Diag> {
    all.iter()
        .filter(|d| d.service == service && d.file.ends_with(file))
        .collect()
}

const GOOD: &str = r#"
[runpm]
shutdown_timeout = "10s"
exit_when = "any-failed"

[services.db]
cmd = ["sleep", "1000"]
kill_timeout = "1s"

[services.web]
cmd = ["python3", "-m", "http.server", "8000"]
env = { PORT = "8000" }
depends_on = ["db"]
restart = "on-failure"
restart_delay = "100ms"
restart_delay_max = "30s"
min_uptime = "1s"
max_restarts = 10
restart_window = "1m 30s"
success_exit_codes = [0, 42]
stop_signal = "SIGINT"
kill_mode = "process"

[services.job]
shell = "echo hi"
restart = "never"
clear_env = true
autostart = false
"#;

#[test]
fn validate_accepts_a_good_config() {
    let p = Project::new(secs(10));
    p.config(GOOD);
    let out = p.run(&["validate", "-f", "services.toml"], secs(5));
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(out.stdout.contains("ok: 3 services"), "{out:#?}");
}

#[test]
fn validate_finds_services_toml_without_f() {
    let p = Project::new(secs(10));
    p.config(GOOD);
    std::fs::create_dir_all(p.file("a/b")).unwrap();
    let mut cmd = p.command(["validate"]);
    cmd.current_dir(p.file("a/b"));
    let mut runpm = Runpm::start(cmd);
    runpm.assert_exit_code(secs(5), 0);
    assert!(
        runpm.stdout().contains("ok: 3 services"),
        "{}",
        runpm.describe()
    );
}

#[test]
fn validate_accepts_a_good_unit_directory() {
    let p = Project::new(secs(10));
    p.write("units/db.toml", "cmd = [\"sleep\", \"1000\"]\n");
    p.write(
        "units/web.toml",
        "shell = \"echo hi\"\ndepends_on = [\"db\"]\nrestart = \"never\"\n",
    );
    let out = p.run(&["validate", "-f", "units"], secs(5));
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(out.stdout.contains("ok: 2 services"), "{out:#?}");
}

/// Several independent mistakes, one per service; line numbers matter (see `BAD_LINES`).
const BAD: &str = r#"[services.web]
cmnd = ["python3"]

[services.worker]
shell = "true"
restart_delay = "soon"

[services.api]
shell = "true"
depends_on = ["nope"]

[services.sig]
shell = "true"
stop_signal = "SIGFOO"

[services.typed]
shell = "true"
max_restarts = "ten"

[services.policy]
shell = "true"
restart = "sometimes"

[services.ping]
shell = "true"
depends_on = ["pong"]

[services.pong]
shell = "true"
depends_on = ["ping"]

[services.empty]
restart = "never"

[services.both]
cmd = ["true"]
shell = "true"
"#;

/// (service, line of the mistake, a word the message must contain).
const BAD_LINES: &[(&str, u32, &str)] = &[
    ("web", 2, "cmnd"),
    ("worker", 6, "soon"),
    ("api", 10, "nope"),
    ("sig", 14, "SIGFOO"),
    ("typed", 18, ""),
    ("policy", 22, "sometimes"),
];

#[test]
fn validate_reports_every_error_with_file_line_column_and_service() {
    let p = Project::new(secs(10));
    p.config(BAD);
    let out = p.run(&["validate", "-f", "services.toml"], secs(5));
    assert_eq!(out.code(), Some(1), "{out:#?}");
    let all = diags(&out.stderr);

    for &(service, line, word) in BAD_LINES {
        let found = diags_for(&all, "services.toml", service);
        assert!(
            found
                .iter()
                .any(|d| d.line == line && d.col >= 1 && d.message.contains(word)),
            "expected `services.toml:{line}:COL: service `{service}`: …{word}…`; got {found:#?}\n\
             stderr:\n{}",
            out.stderr
        );
    }

    let web = diags_for(&all, "services.toml", "web");
    assert!(
        web.iter()
            .any(|d| d.message.contains("did you mean") && d.message.contains("cmd")),
        "an unknown key close to a known one gets a hint: {web:#?}"
    );

    let cycle: Vec<&Diag> = all
        .iter()
        .filter(|d| (d.service == "ping" || d.service == "pong") && d.message.contains("cycle"))
        .collect();
    assert!(
        !cycle.is_empty(),
        "a dependency cycle is reported\nstderr:\n{}",
        out.stderr
    );

    for service in ["empty", "both"] {
        assert!(
            !diags_for(&all, "services.toml", service).is_empty(),
            "a service needs exactly one of cmd and shell: `{service}`\nstderr:\n{}",
            out.stderr
        );
    }
}

#[test]
fn validate_reports_errors_in_unit_files_by_file() {
    let p = Project::new(secs(10));
    p.write("units/web.toml", "cmnd = [\"python3\"]\n");
    p.write(
        "units/worker.toml",
        "shell = \"true\"\nkill_timeout = \"forever\"\n",
    );
    p.write("units/fine.toml", "shell = \"true\"\n");
    let out = p.run(&["validate", "-f", "units"], secs(5));
    assert_eq!(out.code(), Some(1), "{out:#?}");
    let all = diags(&out.stderr);
    let web = diags_for(&all, "web.toml", "web");
    assert!(
        web.iter()
            .any(|d| d.line == 1 && d.col == 1 && d.message.contains("did you mean")),
        "expected `units/web.toml:1:1: service `web`: … did you mean …`: {web:#?}\n{}",
        out.stderr
    );
    let worker = diags_for(&all, "worker.toml", "worker");
    assert!(
        worker.iter().any(|d| d.line == 2),
        "expected `units/worker.toml:2:COL: service `worker`: …`: {worker:#?}\n{}",
        out.stderr
    );
    assert!(
        diags_for(&all, "fine.toml", "fine").is_empty(),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_reports_a_toml_syntax_error_with_its_location() {
    let p = Project::new(secs(10));
    p.config("[services.web]\ncmd = [\"true\"\n");
    let out = p.run(&["validate", "-f", "services.toml"], secs(5));
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("services.toml:2:") || out.stderr.contains("services.toml:3:"),
        "a syntax error names file and line\n{}",
        out.stderr
    );
}

#[test]
fn validate_of_a_missing_file_fails_and_names_it() {
    let p = Project::new(secs(10));
    let out = p.run(&["validate", "-f", "missing.toml"], secs(5));
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("missing.toml"), "{out:#?}");
}

#[test]
fn up_with_an_invalid_config_exits_1_and_starts_nothing() {
    let p = Project::new(secs(10));
    p.config(
        r#"
[services.good]
shell = 'echo ran > ran.out; exec sleep 1000'

[services.bad]
cmnd = ["true"]
"#,
    );
    let out = p.run(&["up", "-f", "services.toml"], secs(5));
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(
        diags(&out.stderr)
            .iter()
            .any(|d| d.service == "bad" && d.line == 6 && d.message.contains("cmnd")),
        "the error is reported like `validate` does\n{}",
        out.stderr
    );
    assert!(
        event_lines(&out.stderr, "good", "started").is_empty() && !p.file("ran.out").exists(),
        "nothing may start from an invalid config\n{out:#?}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let p = Project::new(secs(10));
    p.config(GOOD);
    for args in [
        &["up", "--no-such-flag"][..],
        &["frobnicate"][..],
        &["validate", "-f"][..],
    ] {
        let out = p.run(args, secs(5));
        assert_eq!(out.code(), Some(2), "runpm {args:?}: {out:#?}");
    }
}
