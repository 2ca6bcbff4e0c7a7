//! Loading whole configurations from temporary directories, in both forms.

use std::collections::BTreeMap;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use super::*;

struct Project {
    _guard: tempfile::TempDir,
    root: Utf8PathBuf,
}

impl Project {
    fn new() -> Project {
        let guard = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::try_from(guard.path().canonicalize().unwrap()).unwrap();
        Project {
            _guard: guard,
            root,
        }
    }

    fn write(&self, path: &str, text: &str) -> Utf8PathBuf {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Loads `text` as a `services.toml` and returns the rendered errors, one string each, with
/// the temporary directory's path removed.
fn errors(text: &str) -> Vec<String> {
    let p = Project::new();
    let path = p.write("services.toml", text);
    errors_at(&p, &path)
}

fn errors_at(p: &Project, path: &Utf8Path) -> Vec<String> {
    let errors = load(path).expect_err("config should be invalid");
    let prefix = format!("{}/", p.root);
    errors
        .iter()
        .map(|d| d.to_string().replace(&prefix, ""))
        .collect()
}

fn ok(text: &str) -> Config {
    let p = Project::new();
    let path = p.write("services.toml", text);
    load(&path).unwrap_or_else(|e| panic!("{e}"))
}

const FULL: &str = r#"
[runpm]
shutdown_timeout = "45s"
exit_when = ["web"]
watch = false
state_dir = "state"

[services.db]
cmd = ["redis-server", "--port", "6390"]
ready = { notify = true }
watchdog = "30s"

[services.web]
cmd = ["python3", "-m", "http.server", "8000"]
cwd = "./site"
env = { PORT = "8000", MODE = "dev" }
env_file = ".env"
clear_env = true
depends_on = ["db"]
ready = { tcp = "127.0.0.1:8000" }
ready_timeout = "5s"
restart = "always"
restart_delay = "250ms"
restart_delay_max = "1m"
min_uptime = "2s"
max_restarts = 3
restart_window = "10s"
success_exit_codes = [3, 0, 3]
stop_signal = "INT"
kill_timeout = "3s"
kill_mode = "process"
autostart = false
user = "root"
group = "root"
health = { exec = ["curl", "-fs", "localhost:8000"], interval = "1s", retries = 5 }
failed_cooldown = "0s"
log_max_size = "512KiB"
log_keep = 2
"#;

const ENV: &str = "# overrides\nexport MODE='prod'\nSECRET=\"s3 cr3t\"\n";

fn check_full(config: &Config, root: &Utf8Path) {
    assert_eq!(config.base_dir, root);
    assert_eq!(
        config.settings,
        Settings {
            shutdown_timeout: Duration::from_secs(45),
            exit_when: Some(ExitWhen::Services(vec!["web".into()])),
            watch: false,
            state_dir: Some(root.join("state")),
            cgroups: true,
        }
    );
    let db = &config.services["db"];
    assert_eq!(db.ready, Some(Ready::Notify));
    assert_eq!(db.watchdog, Some(Duration::from_secs(30)));
    let web = &config.services["web"];
    let expected = ServiceSpec {
        name: "web".into(),
        command: Command::Argv(
            ["python3", "-m", "http.server", "8000"]
                .map(String::from)
                .to_vec(),
        ),
        cwd: root.join("site"),
        env: BTreeMap::from(
            [("PORT", "8000"), ("MODE", "prod"), ("SECRET", "s3 cr3t")]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        ),
        env_file: Some(EnvFile {
            path: root.join(".env"),
            keys: ["MODE", "SECRET"].map(String::from).into(),
        }),
        clear_env: true,
        depends_on: vec!["db".into()],
        conditions: BTreeMap::new(),
        restart: RestartPolicy::Always,
        restart_delay: Duration::from_millis(250),
        restart_delay_max: Duration::from_secs(60),
        min_uptime: Duration::from_secs(2),
        max_restarts: 3,
        restart_window: Duration::from_secs(10),
        success_exit_codes: vec![0, 3],
        stop_signal: Signal::parse("SIGINT").unwrap(),
        kill_timeout: Duration::from_secs(3),
        kill_mode: KillMode::Process,
        autostart: false,
        user: Some("root".into()),
        group: Some("root".into()),
        ready: Some(Ready::Tcp("127.0.0.1:8000".into())),
        ready_timeout: Duration::from_secs(5),
        health: Some(Health {
            probe: Probe::Exec(["curl", "-fs", "localhost:8000"].map(String::from).to_vec()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            retries: 5,
        }),
        watchdog: None,
        failed_cooldown: Duration::ZERO,
        log_max_size: 512 * 1024,
        log_keep: 2,
        profiles: Vec::new(),
        replica_of: None,
        schedule: None,
        listen: Vec::new(),
        fd_store_max: 0,
        limits: Default::default(),
        rlimits: Default::default(),
    };
    assert_eq!(web, &expected);
    assert_eq!(config.start_order(), ["db", "web"]);
}

#[test]
fn a_full_file_resolves() {
    let p = Project::new();
    let path = p.write("services.toml", FULL);
    p.write(".env", ENV);
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.source, path);
    check_full(&config, &p.root);
}

#[test]
fn file_and_directory_forms_give_equal_specs() {
    let file = Project::new();
    let path = file.write("services.toml", FULL);
    file.write(".env", ENV);
    let from_file = load(&path).unwrap();

    // The same units split into files: each `[section]` becomes a file's top level.
    let dir = Project::new();
    let (settings, services) = FULL.split_once("[services.db]").unwrap();
    let (db, web) = services.split_once("[services.web]").unwrap();
    dir.write("units/runpm.toml", settings.replace("[runpm]", "").as_str());
    dir.write("units/db.toml", db);
    dir.write("units/web.toml", web);
    dir.write("units/.env", ENV);
    dir.write("units/README.md", "not a unit");
    dir.write("units/.web.toml.swp", "garbage");
    let from_dir = load(&dir.root.join("units")).unwrap_or_else(|e| panic!("{e}"));
    check_full(&from_dir, &dir.root.join("units"));
    assert_eq!(from_dir.source, dir.root.join("units"));

    let rebase = |config: &Config, root: &Utf8Path| -> BTreeMap<String, ServiceSpec> {
        let mut services = config.services.clone();
        for spec in services.values_mut() {
            spec.cwd = spec.cwd.strip_prefix(root).unwrap().to_owned();
            if let Some(file) = &mut spec.env_file {
                file.path = file.path.strip_prefix(root).unwrap().to_owned();
            }
        }
        services
    };
    assert_eq!(
        rebase(&from_file, &file.root),
        rebase(&from_dir, &dir.root.join("units"))
    );
}

#[test]
fn defaults() {
    let config = ok("[services.a]\nshell = \"sleep 1\"\n");
    assert_eq!(config.settings, Settings::default());
    let a = &config.services["a"];
    assert_eq!(a.command, Command::Shell("sleep 1".into()));
    assert_eq!(a.cwd, config.base_dir);
    assert!(a.env.is_empty());
    assert!(!a.clear_env);
    assert!(a.depends_on.is_empty());
    assert_eq!(a.restart, RestartPolicy::OnFailure);
    assert_eq!(a.restart_delay, Duration::from_millis(100));
    assert_eq!(a.restart_delay_max, Duration::from_secs(30));
    assert_eq!(a.min_uptime, Duration::from_secs(1));
    assert_eq!(a.max_restarts, 10);
    assert_eq!(a.restart_window, Duration::from_secs(60));
    assert_eq!(a.success_exit_codes, [0]);
    assert_eq!(a.stop_signal.name(), "SIGTERM");
    assert_eq!(a.kill_timeout, Duration::from_secs(10));
    assert_eq!(a.kill_mode, KillMode::Cgroup);
    assert!(a.autostart);
    assert_eq!((&a.user, &a.group), (&None, &None));
    assert_eq!(a.ready, None);
    assert_eq!(a.ready_timeout, Duration::from_secs(30));
    assert_eq!(a.health, None);
    assert_eq!(a.watchdog, None);
    assert_eq!(a.failed_cooldown, Duration::from_secs(300));
    assert_eq!(a.log_max_size, 10_000_000);
    assert_eq!(a.log_keep, 5);
}

#[test]
fn health_defaults_and_integer_sizes() {
    let config = ok(r#"
[services.a]
cmd = ["a"]
health = { tcp = "localhost:80" }
log_max_size = 4096
"#);
    let a = &config.services["a"];
    assert_eq!(
        a.health,
        Some(Health {
            probe: Probe::Tcp("localhost:80".into()),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            retries: 3,
        })
    );
    assert_eq!(a.log_max_size, 4096);
}

#[test]
fn an_empty_file_is_an_empty_config() {
    assert!(ok("").services.is_empty());
}

#[test]
fn unknown_field_with_hint() {
    assert_eq!(
        errors("[services.web]\ncmnd = [\"x\"]\n"),
        ["services.toml:2:1: service `web`: unknown field `cmnd` (did you mean `cmd`?)"]
    );
}

#[test]
fn unknown_field_far_from_anything() {
    assert_eq!(
        errors("[services.web]\ncmd = [\"x\"]\nbanana = 1\n"),
        ["services.toml:3:1: service `web`: unknown field `banana`"]
    );
}

#[test]
fn unknown_nested_field_with_hint() {
    assert_eq!(
        errors("[services.web]\ncmd = [\"x\"]\nhealth = { tcp = \"h:1\", intervl = \"1s\" }\n"),
        [
            "services.toml:3:25: service `web`: unknown field `intervl` in `health` \
             (did you mean `interval`?)"
        ]
    );
}

#[test]
fn unknown_top_level_keys() {
    assert_eq!(
        errors("[service.web]\ncmd = [\"x\"]\n\n[web]\ncmd = [\"y\"]\n"),
        [
            "services.toml:1:2: unknown field `service` (did you mean `services`?)",
            "services.toml:4:2: unknown table `web` (did you mean `services.web`?)",
        ]
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors("[services.web]\ncmd = \"python3 app.py\"\n"),
        [
            "services.toml:2:7: service `web`: `cmd`: invalid type: string \"python3 app.py\", \
             expected a sequence; `cmd` is a list of arguments, run without a shell: \
             `cmd = [\"python3\", \"app.py\"]`; to run a command line with sh -c, write \
             `shell = \"...\"` instead"
        ]
    );
}

#[test]
fn keys_from_other_tools_get_their_names_here() {
    assert_eq!(
        errors(
            "[services.web]\ncommand = \"python3 app.py\"\nenvironment = { A = \"1\" }\nworking_dir = \"x\"\n"
        ),
        [
            "services.toml:2:1: service `web`: unknown field `command`: use `cmd = [\"prog\", \"arg\"]` \
             (a list, no shell) or `shell = \"...\"` (run by sh -c)",
            "services.toml:3:1: service `web`: unknown field `environment`: use `env = { KEY = \"value\" }`",
            "services.toml:4:1: service `web`: unknown field `working_dir`: use `cwd` (relative to the \
             config file's directory)",
        ]
    );
}

#[test]
fn wrong_type_inside_a_table() {
    assert_eq!(
        errors("[services.web]\ncmd = [\"x\"]\nenv = { PORT = 8000 }\n"),
        [
            "services.toml:3:16: service `web`: `env.PORT`: invalid type: integer `8000`, \
             expected a string"
        ]
    );
}

#[test]
fn bad_duration() {
    let errors = errors("[services.web]\ncmd = [\"x\"]\nkill_timeout = \"10 parsecs\"\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "services.toml:3:16: service `web`: `kill_timeout`: invalid duration `10 parsecs`: \
             unknown time unit \"parsecs\""
        ),
        "{errors:?}"
    );
}

#[test]
fn unknown_signal() {
    assert_eq!(
        errors("[services.web]\ncmd = [\"x\"]\nstop_signal = \"SIGTREM\"\n"),
        [
            "services.toml:3:15: service `web`: `stop_signal`: unknown signal `SIGTREM` \
             (did you mean `SIGTERM`?)"
        ]
    );
}

#[test]
fn unknown_restart_value_with_hint() {
    assert_eq!(
        errors("[services.web]\ncmd = [\"x\"]\nrestart = \"on-failur\"\n"),
        [
            "services.toml:3:11: service `web`: `restart`: unknown value `on-failur` \
             (did you mean `on-failure`?)"
        ]
    );
}

#[test]
fn unknown_dependency_with_hint() {
    assert_eq!(
        errors(
            "[services.db]\ncmd = [\"x\"]\n[services.web]\ncmd = [\"x\"]\ndepends_on = [\"bd\", \"cache\"]\n"
        ),
        [
            "services.toml:5:15: service `web`: unknown dependency `bd` (did you mean `db`?)",
            "services.toml:5:21: service `web`: unknown dependency `cache`",
        ]
    );
}

#[test]
fn dependency_conditions_in_table_form() {
    let config = ok(r#"
[services.db]
cmd = ["x"]
[services.migrate]
cmd = ["x"]
restart = "never"
[services.logger]
cmd = ["x"]
[services.app]
cmd = ["x"]
depends_on = { migrate = "completed", db = "ready", logger = "started" }
"#);
    let app = &config.services["app"];
    assert_eq!(app.depends_on, ["db", "logger", "migrate"]);
    assert_eq!(app.condition("db"), Condition::Ready);
    assert_eq!(app.condition("logger"), Condition::Started);
    assert_eq!(app.condition("migrate"), Condition::Completed);
    // `ready` is the default and is not stored: the list form and the table form that
    // say the same thing give equal specs (no spurious restart on reload).
    let listed =
        ok("[services.db]\ncmd = [\"x\"]\n[services.app]\ncmd = [\"x\"]\ndepends_on = [\"db\"]\n");
    let tabled = ok(
        "[services.db]\ncmd = [\"x\"]\n[services.app]\ncmd = [\"x\"]\ndepends_on = { db = \"ready\" }\n",
    );
    let (mut listed, tabled) = (listed.services["app"].clone(), &tabled.services["app"]);
    listed.cwd = tabled.cwd.clone();
    assert_eq!(&listed, tabled);
}

#[test]
fn dependency_conditions_are_checked_where_they_are() {
    assert_eq!(
        errors(
            "[services.db]\ncmd = [\"x\"]\n[services.app]\ncmd = [\"x\"]\ndepends_on = { db = \"healthy\", dbb = \"ready\" }\n"
        ),
        [
            "services.toml:5:21: service `app`: `depends_on.db`: unknown value `healthy`, expected one of `started`, `ready`, `completed`",
            "services.toml:5:32: service `app`: unknown dependency `dbb` (did you mean `db`?)"
        ]
    );
    assert_eq!(
        errors(
            "[services.db]\ncmd = [\"x\"]\n[services.app]\ncmd = [\"x\"]\ndepends_on = { dbb = \"ready\" }\n"
        ),
        ["services.toml:5:16: service `app`: unknown dependency `dbb` (did you mean `db`?)"]
    );
    assert_eq!(
        errors("[services.app]\ncmd = [\"x\"]\ndepends_on = \"db\"\n"),
        [
            "services.toml:3:14: service `app`: `depends_on`: invalid type: string \"db\", expected a list of service names, or a table of service name = \"started\", \"ready\" or \"completed\""
        ]
    );
}

#[test]
fn dependency_cycle() {
    assert_eq!(
        errors(
            "[services.a]\ncmd = [\"x\"]\ndepends_on = [\"b\"]\n\
             [services.b]\ncmd = [\"x\"]\ndepends_on = [\"c\"]\n\
             [services.c]\ncmd = [\"x\"]\ndepends_on = [\"a\"]\n"
        ),
        ["services.toml:3:15: service `a`: dependency cycle: a -> b -> c -> a"]
    );
}

#[test]
fn self_dependency() {
    assert_eq!(
        errors("[services.a]\ncmd = [\"x\"]\ndepends_on = [\"a\"]\n"),
        ["services.toml:3:15: service `a`: depends on itself"]
    );
}

#[test]
fn both_cmd_and_shell() {
    assert_eq!(
        errors("[services.a]\ncmd = [\"x\"]\nshell = \"x\"\n"),
        ["services.toml:3:1: service `a`: both `cmd` and `shell` are set; keep one"]
    );
}

#[test]
fn neither_cmd_nor_shell() {
    assert_eq!(
        errors("[services.a]\nautostart = false\n"),
        ["services.toml:1:11: service `a`: no `cmd` or `shell` given"]
    );
}

#[test]
fn empty_commands() {
    assert_eq!(
        errors(
            "[services.a]\ncmd = []\n[services.b]\ncmd = [\"\", \"x\"]\n[services.c]\nshell = \" \"\n"
        ),
        [
            "services.toml:2:1: service `a`: `cmd` is empty",
            "services.toml:4:1: service `b`: `cmd` has an empty program name",
            "services.toml:6:1: service `c`: `shell` is empty",
        ]
    );
}

#[test]
fn missing_env_file() {
    let p = Project::new();
    let path = p.write(
        "services.toml",
        "[services.a]\ncmd = [\"x\"]\nenv_file = \"nope.env\"\n",
    );
    let errors = errors_at(&p, &path);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("services.toml:3:1: service `a`: cannot read env_file `"),
        "{errors:?}"
    );
    assert!(errors[0].contains("nope.env"), "{errors:?}");
}

#[test]
fn malformed_env_file_lines_point_into_the_env_file() {
    let p = Project::new();
    let path = p.write(
        "services.toml",
        "[services.a]\ncmd = [\"x\"]\nenv_file = \"x.env\"\n",
    );
    p.write("x.env", "A=1\noops\n");
    assert_eq!(
        errors_at(&p, &path),
        ["x.env:2:1: service `a`: expected `KEY=VALUE`"]
    );
}

#[test]
fn bad_service_name() {
    assert_eq!(
        errors("[services.\"../etc\"]\ncmd = [\"x\"]\n[services.\"a b\"]\ncmd = [\"x\"]\n"),
        [
            "services.toml:1:11: service `../etc`: invalid service name: use at most 128 \
             letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            "services.toml:3:11: service `a b`: invalid service name: use at most 128 \
             letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        ]
    );
}

#[test]
fn bad_exit_when_name() {
    assert_eq!(
        errors("[runpm]\nexit_when = [\"wbe\"]\n[services.web]\ncmd = [\"x\"]\n"),
        ["services.toml:2:14: unknown service `wbe` in `exit_when` (did you mean `web`?)"]
    );
}

#[test]
fn bad_exit_when_keyword() {
    assert_eq!(
        errors("[runpm]\nexit_when = \"any-fail\"\n"),
        ["services.toml:2:13: `exit_when`: unknown value `any-fail` \
             (did you mean `any-failed`?), or a list of service names"]
    );
}

#[test]
fn watchdog_without_notify() {
    assert_eq!(
        errors("[services.a]\ncmd = [\"x\"]\nready = { tcp = \"h:1\" }\nwatchdog = \"5s\"\n"),
        ["services.toml:4:1: service `a`: `watchdog` needs `ready = { notify = true }`"]
    );
}

#[test]
fn bad_size() {
    assert_eq!(
        errors("[services.a]\ncmd = [\"x\"]\nlog_max_size = \"10 parsecs\"\n"),
        [
            "services.toml:3:16: service `a`: `log_max_size`: unknown size unit `parsecs` in \
             `10 parsecs`: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
        ]
    );
}

#[test]
fn ready_log_must_be_a_regular_expression() {
    let errs = errors("[services.a]\ncmd = [\"x\"]\nready = { log = \"listening on (port\" }\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "services.toml:3:1: service `a`: `ready.log` is not a valid regular expression: "
        ),
        "{errs:?}"
    );
    ok("[services.a]\ncmd = [\"x\"]\nready = { log = \"listening on (port|socket) \\\\d+\" }\n");
}

#[test]
fn ready_needs_exactly_one_kind() {
    assert_eq!(
        errors(
            "[services.a]\ncmd = [\"x\"]\nready = { tcp = \"h:1\", log = \"up\" }\n[services.b]\ncmd = [\"x\"]\nready = { notify = false }\n"
        ),
        [
            "services.toml:3:1: service `a`: `ready` needs exactly one of `notify = true`, \
             `tcp`, `exec`, `log` or `http`",
            "services.toml:6:1: service `b`: `ready` needs exactly one of `notify = true`, \
             `tcp`, `exec`, `log` or `http`",
        ]
    );
}

#[test]
fn bad_tcp_address_and_exit_code() {
    assert_eq!(
        errors(
            "[services.a]\ncmd = [\"x\"]\nready = { tcp = \"localhost\" }\nsuccess_exit_codes = [0, 300]\n"
        ),
        [
            "services.toml:3:17: service `a`: `ready.tcp`: invalid address `localhost`: \
             expected `host:port`",
            "services.toml:4:26: service `a`: `success_exit_codes`: exit code 300 is out of \
             range 0..=255",
        ]
    );
}

#[test]
fn restart_delay_above_its_maximum() {
    assert_eq!(
        errors(
            "[services.a]\ncmd = [\"x\"]\nrestart_delay = \"1m\"\nrestart_delay_max = \"10s\"\n"
        ),
        [
            "services.toml:3:1: service `a`: `restart_delay` (1m) is longer than `restart_delay_max` (10s)"
        ]
    );
}

#[test]
fn unknown_user_and_group() {
    assert_eq!(
        errors(
            "[services.a]\ncmd = [\"x\"]\nuser = \"no-such-user-xyz\"\ngroup = \"no-such-group-xyz\"\n"
        ),
        [
            "services.toml:3:1: service `a`: unknown user `no-such-user-xyz`",
            "services.toml:4:1: service `a`: unknown group `no-such-group-xyz`",
        ]
    );
}

#[test]
fn every_error_in_a_file_is_reported_together() {
    let text = r#"
[services.web]
cmnd = ["x"]
shel = "y"
restart = "sometimes"
kill_timeout = 5
depends_on = ["dbb"]

[services.db]
cmd = ["redis"]
stop_signal = "SIGNOPE"
log_keep = -1
"#;
    assert_eq!(
        errors(text),
        [
            "services.toml:3:1: service `web`: unknown field `cmnd` (did you mean `cmd`?)",
            "services.toml:4:1: service `web`: unknown field `shel` (did you mean `shell`?)",
            "services.toml:5:11: service `web`: `restart`: unknown value `sometimes`, expected \
             one of `always`, `on-failure`, `never`",
            "services.toml:6:16: service `web`: `kill_timeout`: invalid type: integer `5`, \
             expected a string",
            "services.toml:7:15: service `web`: unknown dependency `dbb` (did you mean `db`?)",
            "services.toml:11:15: service `db`: `stop_signal`: unknown signal `SIGNOPE`",
            "services.toml:12:12: service `db`: `log_keep`: invalid value: integer `-1`, \
             expected u32",
        ]
    );
}

#[test]
fn syntax_error_is_one_diagnostic_with_a_position() {
    assert_eq!(
        errors("[services.web]\ncmd = [\"x\"\nshell = 5\n"),
        ["services.toml:3:1: missing comma between array elements, expected `,`"]
    );
    assert_eq!(
        errors("[services.web]\ncmd = [\"x\"]\ncmd = [\"y\"]\n"),
        ["services.toml:3:1: duplicate key"]
    );
}

#[test]
fn errors_across_directory_files() {
    let p = Project::new();
    p.write("units/web.toml", "cmd = [\"x\"]\ndepends_on = [\"bd\"]\n");
    p.write("units/db.toml", "cmnd = [\"x\"]\n");
    p.write("units/bad name.toml", "cmd = [\"x\"]\n");
    assert_eq!(
        errors_at(&p, &p.root.join("units")),
        [
            "units/bad name.toml: service `bad name`: invalid service name: use at most 128 \
             letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            "units/db.toml:1:1: service `db`: unknown field `cmnd` (did you mean `cmd`?)",
            "units/web.toml:2:15: service `web`: unknown dependency `bd` (did you mean `db`?)",
        ]
    );
}

#[test]
fn a_service_named_runpm_in_directory_form() {
    let p = Project::new();
    p.write("units/runpm.toml", "cmd = [\"x\"]\n");
    let errors = errors_at(&p, &p.root.join("units"));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("units/runpm.toml: `runpm.toml` holds the `[runpm]` settings"));
}

#[test]
fn a_missing_path() {
    let p = Project::new();
    let errors = errors_at(&p, &p.root.join("nope.toml"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("nope.toml: cannot read: "),
        "{errors:?}"
    );
}

#[test]
fn errors_in_a_subtable_header_form() {
    let text = "\
[services.web]
cmd = [\"x\"]

[services.web.health]
tcp = \"h:1\"
intervl = \"1s\"
timeout = \"soon\"
";
    assert_eq!(
        errors(text),
        [
            "services.toml:6:1: service `web`: unknown field `intervl` in `health` \
             (did you mean `interval`?)",
            "services.toml:7:11: service `web`: `health.timeout`: invalid duration `soon`: \
             expected number at 0",
        ]
    );
}

#[test]
fn a_service_that_is_not_a_table() {
    assert_eq!(
        errors("[[services.web]]\ncmd = [\"x\"]\n"),
        ["services.toml:1:12: service `web`: a service must be a table, like `[services.NAME]`"]
    );
}

#[test]
fn a_broken_unit_file_is_still_a_known_service() {
    let p = Project::new();
    p.write("units/web.toml", "cmd = [\"x\"]\ndepends_on = [\"db\"]\n");
    p.write("units/db.toml", "cmd = [\"x\"\n");
    assert_eq!(
        errors_at(&p, &p.root.join("units")),
        ["units/db.toml:1:11: unclosed array, expected `]`"]
    );
}
