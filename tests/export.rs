//! `runpmctl export`: the generated units pass `systemd-analyze verify`, the generated
//! manifest passes the Kubernetes API models (`tests/support/validate_k8s.py`), and what does
//! not carry over is reported on stderr as `warning: SERVICE: FIELD: why`.
//!
//! The checkers are system tools. When one is missing the test fails with what to install,
//! unless `RUNPM_SKIP_SYSTEM_PACKAGES=1` says the machine cannot have it.
//!
//! Exports run with `PATH=/usr/bin:/bin`, so programs resolve to the same absolute paths on
//! every machine (and those exist, which `verify` checks).

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use common::{need_check, need_tool};

const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Each command of these tests is quick; past this, it hangs.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The PATH the exports run with.
const PATH: &str = "/usr/bin:/bin";

fn quickstart() -> PathBuf {
    Path::new(ROOT).join("examples/quickstart/services.toml")
}

fn fixture() -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/export/services.toml")
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// `(service, field)` of every `warning: SERVICE: FIELD: why` line.
    fn warnings(&self) -> BTreeSet<(String, String)> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("warning: "))
            .filter_map(|w| {
                let mut parts = w.splitn(3, ": ");
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            })
            .collect()
    }
}

/// Runs `cmd` to its end, killing it after [`TIMEOUT`]. Output goes to files, so a chatty
/// command cannot block on a full pipe.
fn run(mut cmd: Command) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: status.code(),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    }
}

/// `runpmctl -f CONFIG export ARGS...`.
fn export(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(RUNPMCTL);
    cmd.arg("-f").arg(config).arg("export").args(args);
    cmd.env("PATH", PATH)
        .env_remove("RUNPM_FILE")
        .env_remove("RUNPM_SOCKET");
    run(cmd)
}

fn export_ok(config: &Path, args: &[&str]) -> Output {
    let out = export(config, args);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    out
}

// ---------------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------------

/// The version `systemd-analyze --version` reports (`systemd 252 (252.38-1~deb12u1)`).
fn systemd_version() -> u32 {
    let out = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the systemd version from {text:?}"))
}

/// Runs `systemd-analyze verify` on every unit in `dir` and fails on any complaint about one
/// of them. On systemd older than 254, the unknown-key notices for `RestartSteps=` and
/// `RestartMaxDelaySec=` are expected: the export reports them itself, and that is checked.
fn verify(dir: &Path, export_stderr: &str) {
    let mut units: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    units.sort();
    assert!(!units.is_empty());
    let mut cmd = Command::new("systemd-analyze");
    cmd.current_dir(dir)
        .args(["verify", "--man=no"])
        .args(units.iter().map(|u| format!("./{u}")));
    let out = run(cmd);

    let old_systemd = systemd_version() < 254;
    let tolerated = |line: &str| {
        old_systemd
            && (line.contains("Unknown key 'RestartSteps'")
                || line.contains("Unknown key 'RestartMaxDelaySec'")
                || line.contains("Unknown key name 'RestartSteps'")
                || line.contains("Unknown key name 'RestartMaxDelaySec'"))
    };
    let complaints: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|line| units.iter().any(|u| line.contains(u.as_str())))
        .filter(|line| !tolerated(line))
        .collect();
    assert!(
        complaints.is_empty() && out.code == Some(0),
        "systemd-analyze verify complains about the generated units:\n{}\n\n{}\n\nunits:\n{}",
        complaints.join("\n"),
        out.describe(),
        units
            .iter()
            .map(|u| format!("== {u}\n{}", std::fs::read_to_string(dir.join(u)).unwrap()))
            .collect::<String>()
    );
    if old_systemd && out.stderr.contains("RestartSteps") {
        assert!(
            export_stderr.contains("warning: [export]: restart_delay_max: systemd "),
            "the export must say that old systemd ignores RestartSteps=:\n{export_stderr}"
        );
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
}

/// The values of `key=` lines in `unit`.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_units_of_the_quickstart_pass_systemd_analyze_verify() {
    if !need_tool("systemd-analyze", "systemd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("units");
    let out = export_ok(
        &quickstart(),
        &["systemd", "--out", out_dir.to_str().unwrap()],
    );
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "runpm-all.target",
            "runpm-migrate.service",
            "runpm-web.service",
            "runpm-worker.service"
        ]
    );
    verify(&out_dir, &out.stderr);

    let web = read(&out_dir, "runpm-web.service");
    assert_eq!(
        values(&web, "ExecStart"),
        ["/usr/bin/python3 -m http.server 8000 --bind 127.0.0.1"]
    );
    assert_eq!(
        values(&web, "WorkingDirectory"),
        [format!("{ROOT}/examples/quickstart/site")]
    );
    assert_eq!(values(&web, "Environment"), ["\"PYTHONUNBUFFERED=1\""]);
    let worker = read(&out_dir, "runpm-worker.service");
    assert_eq!(values(&worker, "After"), ["runpm-web.service"]);
    assert_eq!(values(&worker, "Requires"), ["runpm-web.service"]);
    assert_eq!(values(&worker, "TimeoutStopSec"), ["3s"]);
    assert!(
        values(&worker, "ExecStart")[0].contains("job=$$((job + 1))"),
        "{worker}"
    );
    let migrate = read(&out_dir, "runpm-migrate.service");
    assert_eq!(values(&migrate, "Restart"), ["no"]);
    assert_eq!(values(&migrate, "RemainAfterExit"), ["yes"]);
    let target = read(&out_dir, "runpm-all.target");
    assert_eq!(
        values(&target, "Wants"),
        [
            "runpm-migrate.service",
            "runpm-web.service",
            "runpm-worker.service"
        ]
    );
    // The quickstart uses nothing systemd lacks, apart from the version note.
    assert_eq!(
        out.warnings(),
        BTreeSet::from([("[export]".into(), "restart_delay_max".into())]),
        "{}",
        out.describe()
    );
}

#[test]
fn systemd_units_of_the_richer_fixture_pass_verify_and_report_what_is_not_mapped() {
    if !need_tool("systemd-analyze", "systemd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("units");
    let out = export_ok(
        &fixture(),
        &[
            "systemd",
            "--out",
            out_dir.to_str().unwrap(),
            "--prefix",
            "shop-",
        ],
    );
    verify(&out_dir, &out.stderr);

    let fixture_dir = format!("{ROOT}/tests/fixtures/export");
    let redis = read(&out_dir, "shop-redis.service");
    assert_eq!(values(&redis, "Type"), ["notify"]);
    assert_eq!(values(&redis, "NotifyAccess"), ["all"]);
    assert_eq!(
        values(&redis, "ExecStart"),
        [r#"/usr/bin/redis-server --port 6390 --supervised systemd --save """#]
    );
    let web = read(&out_dir, "shop-web.service");
    assert_eq!(values(&web, "Requires"), ["shop-migrate.service"]);
    assert_eq!(
        values(&web, "Environment"),
        [
            r#""GREETING=100%% \"quoted\" $HOME and \\ back""#,
            r#""PORT=8000""#
        ]
    );
    assert_eq!(
        values(&web, "EnvironmentFile"),
        [format!("{fixture_dir}/web.env")]
    );
    assert!(!web.contains("s3cr3t"), "the env_file's values stay in it");
    assert_eq!(values(&web, "Restart"), ["always"]);
    assert_eq!(values(&web, "RestartSec"), ["250ms"]);
    assert_eq!(values(&web, "TimeoutStartSec"), ["10s"]);
    let worker = read(&out_dir, "shop-worker.service");
    assert_eq!(
        values(&worker, "After"),
        ["shop-redis.service", "shop-web.service"]
    );
    assert_eq!(
        values(&worker, "ExecStartPost"),
        [
            r#"/bin/sh -c "until /bin/sh -c 'test -n \"$$HOME\"' >/dev/null 2>&1; do sleep 0.1; done""#
        ]
    );
    for (key, value) in [
        ("SuccessExitStatus", "3"),
        ("KillSignal", "SIGINT"),
        ("KillMode", "process"),
        ("StartLimitBurst", "6"),
        ("StartLimitIntervalSec", "30s"),
        ("User", "root"),
        ("Group", "root"),
    ] {
        assert_eq!(values(&worker, key), [value], "{key} in\n{worker}");
    }
    // A manual-only service is exported but not installed or wanted by the target.
    let admin = read(&out_dir, "shop-admin.service");
    assert!(!admin.contains("[Install]"));
    assert!(!read(&out_dir, "shop-all.target").contains("shop-admin"));

    let expected: BTreeSet<(String, String)> = [
        ("web", "ready"),
        ("web", "health"),
        ("worker", "min_uptime"),
        ("[runpm]", "exit_when"),
        ("[export]", "restart_delay_max"),
    ]
    .into_iter()
    .map(|(s, f)| (s.to_owned(), f.to_owned()))
    .collect();
    assert_eq!(out.warnings(), expected, "{}", out.describe());
}

#[test]
fn systemd_export_prints_to_stdout_and_never_overwrites_without_force() {
    let out = export_ok(&quickstart(), &["systemd", "--no-target"]);
    let headers: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("# ---- "))
        .collect();
    assert_eq!(
        headers,
        [
            "# ---- runpm-migrate.service ----",
            "# ---- runpm-web.service ----",
            "# ---- runpm-worker.service ----"
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("units");
    let dir_arg = out_dir.to_str().unwrap();
    export_ok(&quickstart(), &["systemd", "--out", dir_arg]);
    std::fs::write(out_dir.join("runpm-web.service"), "edited by hand").unwrap();
    let refused = export(&quickstart(), &["systemd", "--out", dir_arg]);
    assert_eq!(refused.code, Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains("already exists (pass --force"),
        "{}",
        refused.describe()
    );
    assert_eq!(read(&out_dir, "runpm-web.service"), "edited by hand");
    export_ok(&quickstart(), &["systemd", "--out", dir_arg, "--force"]);
    assert!(read(&out_dir, "runpm-web.service").contains("[Service]"));
}

#[test]
fn export_of_an_invalid_config_fails_with_its_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("services.toml");
    std::fs::write(
        &config,
        "[services.web]\ncmd = [\"x\"]\nrestart = \"sometimes\"\n",
    )
    .unwrap();
    let out = export(&config, &["kubernetes"]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("services.toml:3"), "{}", out.describe());
    assert!(out.stdout.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------------

/// Exports `config` with the binary (YAML) and with the library (the JSON value), then has
/// the Python checker validate the YAML against the API models and compare it to the JSON.
fn validate_kubernetes(config: &Path, args: &[&str]) -> (serde_json::Value, Output) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("manifest.yaml");
    let mut all = vec!["kubernetes", "--out", yaml.to_str().unwrap()];
    all.extend(args);
    let out = export_ok(config, &all);

    let loaded = runpm::config::load(&Utf8PathBuf::from_path_buf(config.to_owned()).unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    let image = args
        .iter()
        .position(|a| *a == "--image")
        .map(|i| args[i + 1].to_owned());
    let options = runpm::export::kubernetes::Options {
        image,
        ..Default::default()
    };
    let manifest = runpm::export::kubernetes::export(&loaded, &options).manifest;
    let json = dir.path().join("manifest.json");
    std::fs::write(&json, serde_json::to_string(&manifest).unwrap()).unwrap();

    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(ROOT).join("tests/support/validate_k8s.py"))
        .arg(&yaml)
        .arg(&json);
    let checked = run(cmd);
    assert_eq!(
        checked.code,
        Some(0),
        "the manifest does not pass the Kubernetes API models:\n{}\n--- manifest\n{}",
        checked.describe(),
        std::fs::read_to_string(&yaml).unwrap()
    );
    (manifest, out)
}

/// The Kubernetes client's models, which check the manifests.
fn need_kubernetes_client() -> bool {
    need_check(
        "python3",
        &["-c", "import kubernetes, yaml"],
        "install python3 and the Kubernetes client (`python3 -m pip install kubernetes`; \
         `bash .ci/run` does)",
    )
}

#[test]
fn kubernetes_manifest_of_the_quickstart_passes_the_api_schema() {
    if !need_kubernetes_client() {
        return;
    }
    let (manifest, out) = validate_kubernetes(&quickstart(), &[]);
    let pod = &manifest["spec"]["template"]["spec"];
    let names: Vec<&str> = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // The migration web waits for (`completed`) runs as an init container; web, which the
    // worker waits for, is a native sidecar started after it; the worker is the pod's container.
    assert_eq!(names, ["worker"]);
    assert_eq!(pod["initContainers"][0]["name"], "migrate");
    assert!(pod["initContainers"][0].get("restartPolicy").is_none());
    assert_eq!(pod["initContainers"][1]["name"], "web");
    assert_eq!(pod["initContainers"][1]["restartPolicy"], "Always");
    assert_eq!(pod["initContainers"][1]["workingDir"], "/app/site");
    let expected: BTreeSet<(String, String)> = [
        ("[export]", "image"),
        ("web", "restart"),
        ("worker", "restart"),
        ("worker", "restart_delay"),
    ]
    .into_iter()
    .map(|(s, f)| (s.to_owned(), f.to_owned()))
    .collect();
    assert_eq!(out.warnings(), expected, "{}", out.describe());
}

#[test]
fn kubernetes_manifest_of_the_richer_fixture_passes_the_api_schema() {
    if !need_kubernetes_client() {
        return;
    }
    let (manifest, out) = validate_kubernetes(&fixture(), &["--image", "registry.example/shop:1"]);
    assert_eq!(manifest["metadata"]["name"], "export");
    let pod = &manifest["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["name"], "migrate");
    assert_eq!(pod["terminationGracePeriodSeconds"], 20);
    let containers = pod["containers"].as_array().unwrap();
    let init = pod["initContainers"].as_array().unwrap();
    let by_name = |name: &str| {
        containers
            .iter()
            .chain(init)
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    };
    assert!(containers.iter().all(|c| c["name"] != "admin"));
    // What the worker waits for starts first: the migration to its end, then redis and web as
    // native sidecars, each once its startupProbe passed (redis has none: sd_notify).
    let init_names: Vec<&str> = init.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(init_names, ["migrate", "redis", "web"]);
    for name in ["redis", "web"] {
        assert_eq!(by_name(name)["restartPolicy"], "Always", "{name}");
    }
    let container_names: Vec<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(container_names, ["worker"]);
    let web = by_name("web");
    assert_eq!(web["readinessProbe"]["tcpSocket"]["port"], 8000);
    assert_eq!(web["startupProbe"]["failureThreshold"], 10);
    assert_eq!(web["livenessProbe"]["periodSeconds"], 5);
    assert_eq!(web["livenessProbe"]["timeoutSeconds"], 2);
    let worker = by_name("worker");
    assert_eq!(
        worker["readinessProbe"]["exec"]["command"][0], "/bin/sh",
        "{worker}"
    );
    assert!(
        worker["command"][2]
            .as_str()
            .unwrap()
            .contains("tick $$(date +%s) for $USER"),
        "{worker}"
    );

    let expected: BTreeSet<(String, String)> = [
        ("admin", "autostart"),
        ("redis", "ready"),
        ("redis", "restart"),
        ("web", "env_file"),
        ("web", "health"),
        ("web", "restart_delay"),
        ("web", "restart_delay_max"),
        ("worker", "restart"),
        ("worker", "min_uptime"),
        ("worker", "max_restarts"),
        ("worker", "success_exit_codes"),
        ("worker", "stop_signal"),
        ("worker", "user"),
        ("worker", "group"),
        ("[runpm]", "exit_when"),
    ]
    .into_iter()
    .map(|(s, f)| (s.to_owned(), f.to_owned()))
    .collect();
    assert_eq!(out.warnings(), expected, "{}", out.describe());
}

#[test]
fn kubernetes_export_to_stdout_is_the_same_manifest() {
    let out = export_ok(&quickstart(), &["kubernetes", "--image", "app:1"]);
    assert!(
        out.stdout
            .starts_with("# Generated by `runpmctl export kubernetes`")
    );
    assert!(out.stdout.contains("\nkind: Deployment\n"));
    assert!(out.stdout.contains("image: \"app:1\""));
}
