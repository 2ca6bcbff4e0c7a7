//! `runpm import`: each format's fixture (tests/fixtures/import/full) maps every key it
//! documents, the result passes `runpm validate`, importing twice gives the same bytes,
//! malformed input fails with file:line:column, and nothing is overwritten without --force.
//!
//! Keys other issues are adding (`replicas`, `profiles`, limits, `rlimits`, `ready.http`)
//! are asserted through [`assert_new_key`]: the key when this build's config reference
//! knows it, the `# not carried over:` comment naming it otherwise.

mod common;

use std::path::Path;

use common::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/import");

/// Copies a fixture directory (files and subdirectories) into the project.
fn copy_fixtures(p: &Project, set: &str) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    copy(&Path::new(FIXTURES).join(set), p.path());
}

fn project(set: &str) -> Project {
    let p = Project::new(secs(60));
    copy_fixtures(&p, set);
    p
}

/// `runpm import ARGS…`, which must succeed: its stdout and stderr.
fn import_ok(p: &Project, args: &[&str]) -> (String, String) {
    let mut all = vec!["import"];
    all.extend(args);
    let out = p.run(&all, COMMAND_LIMIT);
    assert_eq!(
        out.code(),
        Some(0),
        "runpm {}\n{}",
        all.join(" "),
        out.describe()
    );
    (out.stdout, out.stderr)
}

fn import_fails(p: &Project, args: &[&str]) -> String {
    let mut all = vec!["import"];
    all.extend(args);
    let out = p.run(&all, COMMAND_LIMIT);
    assert_eq!(
        out.code(),
        Some(1),
        "runpm {}\n{}",
        all.join(" "),
        out.describe()
    );
    out.stderr
}

fn validate_ok(p: &Project, file: &str) {
    let out = p.run(&["validate", "-f", file], COMMAND_LIMIT);
    assert_eq!(
        out.code(),
        Some(0),
        "validate {file}\n{}\n{}",
        out.describe(),
        p.read(file)
    );
}

/// The lines of one service's table in a services.toml (comments above it included).
fn table<'a>(text: &'a str, name: &str) -> &'a str {
    let header = format!("[services.{name}]\n");
    let start = text
        .find(&header)
        .unwrap_or_else(|| panic!("no {header} in\n{text}"));
    // Back up over the comments that belong to this service.
    let comments_start = text[..start].rfind("\n\n").map_or(0, |i| i + 2);
    let end = text[start..].find("\n\n").map_or(text.len(), |i| start + i);
    &text[comments_start..end]
}

fn assert_has(table: &str, line: &str) {
    assert!(
        table.lines().any(|l| l == line),
        "expected the line\n  {line}\nin\n{table}"
    );
}

/// A key being added by another issue: written when this runpm knows it, else reported as
/// not carried over. `line` is the line expected when the key is known.
fn assert_new_key(table: &str, key: &str, line: &str) {
    if runpm::import::knows(key) {
        assert_has(table, line);
    } else {
        let (name, value) = line.split_once(" = ").unwrap();
        let comment =
            format!("# not carried over: `{name} = {value}`: this runpm does not know `{key}`");
        assert!(
            table.lines().any(|l| l.starts_with(&comment)),
            "expected `{key}` reported as not carried over ({comment}) in\n{table}"
        );
        assert!(
            !table.lines().any(|l| l.starts_with(&format!("{name} ="))),
            "{table}"
        );
    }
}

#[test]
fn compose_maps_every_key_and_reports_what_only_containers_have() {
    let p = project("full");
    let (out, warnings) = import_ok(&p, &["compose.yaml", "-o", "services.toml"]);
    assert_eq!(out, "");
    validate_ok(&p, "services.toml");
    let text = p.read("services.toml");

    let db = table(&text, "db");
    assert_has(db, "# from compose.yaml: services.db");
    assert_has(db, r#"cmd = ["postgres", "-c", "fsync=off"]"#);
    assert_has(
        db,
        r#"env = { POSTGRES_DB = "shop", POSTGRES_PASSWORD = "secret" }"#,
    );
    assert_has(db, r#"restart = "always""#);
    assert_has(db, r#"user = "nobody""#);
    assert_has(db, r#"group = "nogroup""#);
    // A dependent waits for service_healthy: the healthcheck is also the readiness check.
    assert_has(db, r#"ready = { exec = ["pg_isready", "-q"] }"#);
    assert_has(
        db,
        r#"health = { exec = ["pg_isready", "-q"], interval = "5s", timeout = "2s", retries = 5 }"#,
    );
    assert_new_key(db, "rlimits", "rlimits = { nofile = 20000, nproc = 512 }");
    for container_only in [
        "image `postgres:16`",
        "ports:",
        "volumes:",
        "healthcheck.start_period",
    ] {
        assert!(
            db.contains(&format!("# not carried over: {container_only}")),
            "{container_only} in\n{db}"
        );
    }

    let migrate = table(&text, "migrate");
    assert_has(
        migrate,
        r#"cmd = ["python3", "manage.py", "migrate", "--noinput"]"#,
    );
    assert_has(migrate, r#"cwd = "app""#);
    assert_has(migrate, r#"env_file = ".env""#);
    assert_has(migrate, r#"depends_on = ["db"]"#);
    // Compose does not restart by default.
    assert_has(migrate, r#"restart = "never""#);
    assert!(migrate.contains("# not carried over: build:"), "{migrate}");

    let web = table(&text, "web");
    assert_has(
        web,
        r#"shell = "gunicorn app:wsgi --bind 0.0.0.0:${PORT:-8000}""#,
    );
    assert_has(web, r#"env = { GREETING = "hello $USER", PORT = "8000" }"#);
    assert_has(
        web,
        r#"depends_on = { cache = "started", db = "ready", migrate = "completed" }"#,
    );
    assert_has(web, r#"restart = "on-failure""#);
    assert_has(web, "max_restarts = 3");
    // From the `<<: *defaults` merge.
    assert_has(web, r#"stop_signal = "SIGINT""#);
    assert_has(web, r#"kill_timeout = "1m 30s""#);
    assert_has(
        web,
        r#"health = { exec = ["/bin/sh", "-c", "curl -fs http://127.0.0.1:8000/health"] }"#,
    );
    assert_new_key(web, "profiles", r#"profiles = ["web", "full"]"#);
    assert_new_key(web, "replicas", "replicas = 3");
    assert_new_key(web, "memory_max", r#"memory_max = "512MiB""#);
    assert_new_key(web, "cpu_max", r#"cpu_max = "50%""#);
    assert_new_key(web, "pids_max", "pids_max = 256");
    assert!(
        web.contains("# not carried over: env_file `.env.local`"),
        "{web}"
    );
    assert!(
        web.contains("# not carried over: `${VAR}` in command"),
        "{web}"
    );
    assert!(web.contains("# not carried over: networks:"), "{web}");

    let cache = table(&text, "cache");
    assert_has(cache, r#"restart = "always""#);
    assert!(!cache.contains("health"), "healthcheck NONE: {cache}");

    let worker = table(&text, "worker");
    assert_has(worker, r#"shell = "sh -c 'echo working'""#);
    assert_has(worker, r#"restart = "never""#);
    assert_new_key(worker, "memory_max", r#"memory_max = "1GiB""#);
    assert_new_key(worker, "cpu_max", r#"cpu_max = "150%""#);

    // No command: a placeholder that says so and does not start by itself.
    let placeholder = table(&text, "placeholder");
    assert_has(placeholder, "autostart = false");
    assert_has(placeholder, r#"depends_on = { cache = "started" }"#);

    // The same on stderr, naming the file and the service.
    for warning in [
        "compose.yaml: services.db (service `db`): image `postgres:16`",
        "compose.yaml: services.web (service `web`): networks:",
        "compose.yaml: top-level `volumes` is not imported",
    ] {
        assert!(warnings.contains(warning), "{warning} in\n{warnings}");
    }
}

#[test]
fn procfile_lines_become_shell_services_with_foremans_ports() {
    let p = project("full");
    let (out, _) = import_ok(&p, &["Procfile"]);
    p.write("services.toml", &out);
    validate_ok(&p, "services.toml");
    let web = table(&out, "web");
    assert_has(web, "# from Procfile: line 2: web");
    assert_has(web, r#"shell = "bundle exec puma -p $PORT""#);
    assert_has(web, r#"env = { PORT = "5000" }"#);
    assert_has(web, r#"env_file = ".env""#);
    assert_has(table(&out, "worker"), r#"env = { PORT = "5100" }"#);
    let release = table(&out, "release");
    assert_has(release, r#"shell = "./bin/migrate && echo done""#);
    assert_has(release, r#"env = { PORT = "5200" }"#);
}

#[test]
fn process_compose_maps_every_key() {
    let p = project("full");
    let (_, warnings) = import_ok(&p, &["process-compose.yaml", "-o", "services.toml"]);
    validate_ok(&p, "services.toml");
    let text = p.read("services.toml");

    let setup = table(&text, "setup");
    assert_has(setup, r#"shell = "./setup.sh""#);
    assert_has(setup, r#"cwd = "scripts""#);
    assert_has(setup, r#"env = { LOG_LEVEL = "info" }"#);
    assert_has(setup, r#"restart = "never""#);

    let api = table(&text, "api");
    assert_has(api, r#"env = { API_KEY = "abc", LOG_LEVEL = "info" }"#);
    assert_has(
        api,
        r#"depends_on = { cache = "started", setup = "completed" }"#,
    );
    assert_has(api, r#"restart = "always""#);
    assert_has(api, r#"restart_delay = "2s""#);
    assert_has(api, r#"restart_delay_max = "2s""#);
    assert_has(api, "max_restarts = 5");
    assert_has(api, r#"stop_signal = "SIGINT""#);
    assert_has(api, r#"kill_timeout = "7s""#);
    assert_has(
        api,
        r#"health = { exec = ["/bin/sh", "-c", "pgrep -f http.server"], interval = "10s", timeout = "2s", retries = 4 }"#,
    );
    assert_new_key(api, "replicas", "replicas = 2");
    if runpm::import::knows("ready.http") {
        assert_has(api, r#"ready = { http = "http://127.0.0.1:8080/health" }"#);
    } else {
        assert_has(api, r#"ready = { tcp = "127.0.0.1:8080" }"#);
        assert!(
            api.contains("this runpm does not know `ready.http` yet"),
            "{api}"
        );
    }
    assert!(
        api.contains("# not carried over: namespace `backend`"),
        "{api}"
    );
    assert!(
        api.contains("# not carried over: shutdown.command"),
        "{api}"
    );

    assert_has(table(&text, "cache"), r#"restart = "on-failure""#);
    let watcher = table(&text, "watcher");
    // ready_log_line is matched literally: the regex is escaped.
    assert_has(watcher, r#"ready = { log = "ready \\(v1\\.2\\)" }"#);
    assert_has(watcher, r#"depends_on = ["api", "logger"]"#);
    assert_has(watcher, r#"restart = "on-failure""#);
    let logger = table(&text, "logger");
    assert_has(logger, "autostart = false");
    assert_has(logger, r#"ready = { log = "started" }"#);
    assert!(
        warnings.contains("top-level `log_location` is not imported"),
        "{warnings}"
    );
}

#[test]
fn pm2_json_and_yaml_map_every_key() {
    let p = project("full");
    let (json, warnings) = import_ok(&p, &["ecosystem.config.json"]);
    p.write("services.toml", &json);
    validate_ok(&p, "services.toml");

    let api = table(&json, "api");
    assert_has(
        api,
        r#"cmd = ["node", "--max-old-space-size=512", "server.js", "--port", "3000", "--host", "127.0.0.1"]"#,
    );
    assert_has(api, r#"env = { NODE_ENV = "production", WORKERS = "4" }"#);
    assert_has(api, r#"restart = "always""#);
    assert_has(api, r#"restart_delay = "100ms""#);
    assert_has(api, r#"restart_delay_max = "15s""#);
    assert_has(api, r#"min_uptime = "2s""#);
    assert_has(api, "max_restarts = 10");
    assert_has(api, r#"kill_timeout = "5s""#);
    assert_new_key(api, "replicas", "replicas = 4");
    assert_new_key(api, "memory_restart", r#"memory_restart = "300MiB""#);
    assert!(
        api.contains("# not carried over: exec_mode: cluster"),
        "{api}"
    );
    assert!(api.contains("# not carried over: env_staging"), "{api}");

    let jobs = table(&json, "jobs");
    assert_has(
        jobs,
        r#"cmd = ["/usr/bin/python3", "worker.py", "--queue", "default"]"#,
    );
    assert_has(jobs, r#"restart_delay = "3s""#);
    assert_has(jobs, r#"restart_delay_max = "3s""#);
    assert_has(jobs, "success_exit_codes = [0, 3]");
    // pm2's default kill_timeout, kept.
    assert_has(jobs, r#"kill_timeout = "1s 600ms""#);
    // cron_restart restarts a running app; runpm's `schedule` runs a task: not the same.
    assert!(
        jobs.contains("# not carried over: cron_restart `0 3 * * *`"),
        "{jobs}"
    );
    assert!(!jobs.contains("schedule ="), "{jobs}");

    let once = table(&json, "once");
    assert_has(once, r#"cmd = ["./bin/report"]"#);
    assert_has(once, r#"restart = "never""#);
    assert!(
        warnings.contains("(service `once`): out_file"),
        "{warnings}"
    );

    let (yaml, _) = import_ok(&p, &["ecosystem.config.yaml"]);
    let api = table(&yaml, "api");
    assert_has(api, r#"cmd = ["node", "server.js", "--port", "3000"]"#);
    assert_new_key(api, "replicas", "replicas = 2");
}

#[test]
fn a_pm2_javascript_file_is_refused_with_the_line_that_prints_it_as_json() {
    let p = project("full");
    let stderr = import_fails(&p, &["ecosystem.config.js", "-o", "services.toml"]);
    assert!(
        stderr.contains("ecosystem.config.js is JavaScript"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            r#"node -e 'console.log(JSON.stringify(require("./ecosystem.config.js"), null, 2))' > ecosystem.json"#
        ),
        "{stderr}"
    );
    assert!(!p.file("services.toml").exists());
}

#[test]
fn systemd_units_map_every_key_and_depend_on_each_other() {
    let p = project("full");
    let (_, warnings) = import_ok(
        &p,
        &[
            "db.service",
            "migrate.service",
            "app.service",
            "-o",
            "services.toml",
        ],
    );
    validate_ok(&p, "services.toml");
    let text = p.read("services.toml");

    let db = table(&text, "db");
    assert_has(db, "# from db.service");
    // A continuation line joined; a path outside the project stays absolute.
    assert_has(
        db,
        r#"cmd = ["/usr/bin/env", "redis-server", "--port", "6390", "--supervised", "systemd"]"#,
    );
    assert_has(db, r#"cwd = "/tmp""#);
    // Quoting, and the specifiers %n, %N and %h resolved.
    assert_has(
        db,
        r#"env = { GREETING = "hello world", HOME_DIR = "/root", MODE = "prod", NAME = "db", UNIT = "db.service" }"#,
    );
    assert_has(db, r#"restart = "on-failure""#);
    assert_has(db, r#"restart_delay = "2s""#);
    assert_has(db, r#"restart_delay_max = "30s""#);
    assert_has(db, "max_restarts = 5");
    assert_has(db, r#"restart_window = "2m""#);
    assert_has(db, "success_exit_codes = [0, 3]");
    assert_has(db, r#"stop_signal = "SIGINT""#);
    assert_has(db, r#"kill_timeout = "15s""#);
    assert_has(db, r#"kill_mode = "process""#);
    assert_has(db, r#"user = "nobody""#);
    assert_has(db, r#"group = "nogroup""#);
    assert_has(db, "ready = { notify = true }");
    assert_has(db, r#"ready_timeout = "20s""#);
    assert_has(db, r#"watchdog = "30s""#);
    assert_new_key(
        db,
        "rlimits",
        r#"rlimits = { core = "unlimited", nofile = 65536, nproc = 100 }"#,
    );
    assert_new_key(db, "memory_max", r#"memory_max = "1GiB""#);
    assert_new_key(db, "memory_high", r#"memory_high = "800MiB""#);
    assert_new_key(db, "cpu_max", r#"cpu_max = "150%""#);
    assert_new_key(db, "cpu_weight", "cpu_weight = 50");
    assert_new_key(db, "pids_max", "pids_max = 512");
    assert!(
        db.contains("# not carried over: [Service] PrivateTmp="),
        "{db}"
    );

    // Several ExecStart= of a oneshot run in turn; `-` ignores a failure; %t resolved.
    let migrate = table(&text, "migrate");
    assert_has(
        migrate,
        r#"shell = "/bin/echo 'step one' && { /bin/false || true; } && /bin/sh -c 'echo \"two words\" > /run/migrated'""#,
    );
    assert_has(migrate, r#"depends_on = ["db"]"#);
    assert_has(migrate, r#"restart = "never""#);
    assert_has(migrate, r#"cwd = "/""#);

    // systemd substitutes ${PORT} (one word) and $EXTRA_ARGS (split): sh does the same.
    let app = table(&text, "app");
    assert_has(
        app,
        r#"shell = "exec /usr/bin/python3 -m http.server \"${PORT}\" $EXTRA_ARGS""#,
    );
    assert_has(
        app,
        r#"env = { EXTRA_ARGS = "--bind 127.0.0.1", PORT = "8080" }"#,
    );
    assert_has(app, r#"depends_on = ["db", "migrate"]"#);
    assert_has(app, r#"restart = "always""#);
    assert_has(app, r#"kill_timeout = "5s""#);
    assert!(app.contains("# not carried over: ExecStartPre="), "{app}");
    assert!(
        warnings.contains("postgresql.service (not imported)"),
        "{warnings}"
    );
}

#[test]
fn every_import_is_stable_and_valid_as_a_file_and_as_a_unit_directory() {
    let p = project("full");
    let inputs: &[&[&str]] = &[
        &["compose.yaml"],
        &["Procfile"],
        &["process-compose.yaml"],
        &["ecosystem.config.json"],
        &["ecosystem.config.yaml"],
        &["db.service", "migrate.service", "app.service"],
    ];
    for (i, files) in inputs.iter().enumerate() {
        let (first, _) = import_ok(&p, files);
        let (second, _) = import_ok(&p, files);
        assert_eq!(first, second, "importing {files:?} twice differs");
        let out = format!("out{i}.toml");
        let mut args = files.to_vec();
        args.extend(["-o", out.as_str()]);
        import_ok(&p, &args);
        assert_eq!(p.read(&out), first, "-o writes what stdout shows");
        validate_ok(&p, &out);

        let dir = format!("units{i}");
        let mut args = files.to_vec();
        args.extend(["--units", dir.as_str()]);
        import_ok(&p, &args);
        validate_ok(&p, &dir);
    }
}

#[test]
fn malformed_input_fails_with_its_file_line_and_column() {
    let p = Project::new(secs(60));
    let cases = [
        (
            "compose.yaml",
            "services:\n  web:\n    command: [a, b\n",
            "compose.yaml:4:1:",
        ),
        (
            "compose.yaml",
            "services:\n  web:\n    restart: sometimes\n",
            "compose.yaml:3:14: unknown restart policy `sometimes`",
        ),
        (
            "compose.yaml",
            "services:\n  web:\n    command: x\n    stop_grace_period: soon\n",
            "compose.yaml:4:24: services.web.stop_grace_period: `soon` is not a duration",
        ),
        (
            "process-compose.yaml",
            "processes:\n  a:\n    command: x\n    depends_on:\n      b:\n        condition: whenever\n",
            "process-compose.yaml:6:20: unknown condition `whenever`",
        ),
        (
            "ecosystem.config.json",
            "{\"apps\": [{\"name\": \"a\", \"script\": \"a.js\",\n  \"instances\": \"many\"}]}",
            "ecosystem.config.json:2:16: `many` is not a number of instances",
        ),
        (
            "ecosystem.config.json",
            "{\"apps\": [{\"name\": \"a\",,}]}",
            "ecosystem.config.json:1:",
        ),
        (
            "Procfile",
            "web: ok\nthis line is wrong\n",
            "Procfile:2:1: expected `name: command`",
        ),
        (
            "bad.service",
            "[Service]\nExecStart=/bin/true\nnonsense\n",
            "bad.service:3:1: expected `Key=Value`",
        ),
        (
            "quote.service",
            "[Service]\nExecStart=/bin/echo \"open\n",
            "quote.service:2:11: ExecStart=: the quote \" is not closed",
        ),
    ];
    for (file, text, expected) in cases {
        p.write(file, text);
        let stderr = import_fails(&p, &[file]);
        assert!(
            stderr.contains(expected),
            "{file}: expected `{expected}` in\n{stderr}"
        );
    }
}

#[test]
fn existing_output_is_not_overwritten_without_force() {
    let p = project("full");
    p.write("services.toml", "# mine\n");
    let stderr = import_fails(&p, &["Procfile", "-o", "services.toml"]);
    assert!(
        stderr.contains("services.toml exists: pass --force to overwrite it"),
        "{stderr}"
    );
    assert_eq!(p.read("services.toml"), "# mine\n");
    import_ok(&p, &["Procfile", "-o", "services.toml", "--force"]);
    assert!(p.read("services.toml").contains("[services.web]"));

    p.write("units/worker.toml", "# mine\n");
    let stderr = import_fails(&p, &["Procfile", "--units", "units"]);
    assert!(
        stderr.contains("worker.toml exists: pass --force"),
        "{stderr}"
    );
    // Nothing was written: not even the files that did not exist.
    assert!(!p.file("units/web.toml").exists());
    import_ok(&p, &["Procfile", "--units", "units", "--force"]);
    assert!(
        p.read("units/worker.toml")
            .starts_with("# from Procfile: line 3: worker")
    );
}

#[test]
fn two_inputs_with_the_same_service_name_are_refused() {
    let p = project("full");
    let stderr = import_fails(&p, &["Procfile", "ecosystem.config.yaml", "compose.yaml"]);
    assert!(
        stderr.contains(
            "service `web` comes from both Procfile: line 2: web and compose.yaml: services.web"
        ),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_utf8_fails_with_the_position_of_the_bad_byte() {
    let p = Project::new(secs(60));
    std::fs::write(p.file("Procfile"), b"web: ok\nworker: caf\xe9 run\n").unwrap();
    let stderr = import_fails(&p, &["Procfile"]);
    assert!(
        stderr.contains("Procfile:2:12: byte 0xe9 is not UTF-8: save the file as UTF-8"),
        "{stderr}"
    );
}
