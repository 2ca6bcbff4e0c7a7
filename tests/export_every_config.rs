//! Every config shipped in `examples/` and `units/` exports to units that
//! `systemd-analyze verify` accepts (system and `--user`), and to a manifest that passes the
//! Kubernetes API models (`tests/support/validate_k8s.py`).
//!
//! A config added to either directory is picked up here without touching this file. Exports
//! run with `PATH=/usr/bin:/bin`, so programs resolve to absolute paths that exist (which
//! `verify` checks).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{need_check, need_tool};

const RUNPMCTL: &str = env!("CARGO_BIN_EXE_runpmctl");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `examples/*/services.toml` and the unit directories `units/*/`.
fn shipped_configs() -> Vec<PathBuf> {
    let mut configs = Vec::new();
    for (dir, file) in [("examples", Some("services.toml")), ("units", None)] {
        for entry in std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_dir() {
                continue;
            }
            match file {
                Some(file) if path.join(file).is_file() => configs.push(path.join(file)),
                Some(_) => {}
                None => configs.push(path),
            }
        }
    }
    configs.sort();
    assert!(configs.len() >= 5, "the shipped configs: {configs:?}");
    configs
}

/// Runs `cmd` to its end with stdin closed. Each of these commands is quick; nextest's
/// slow-timeout ends a hung one.
fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn export(config: &Path, args: &[&str]) -> Output {
    let out = run(Command::new(RUNPMCTL)
        .arg("-f")
        .arg(config)
        .arg("export")
        .args(args)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("RUNPM_FILE")
        .env_remove("RUNPM_SOCKET"));
    assert!(
        out.status.success(),
        "export {args:?} of {config:?}: {}",
        describe(&out)
    );
    out
}

/// The version `systemd-analyze --version` reports (`systemd 252 (252.38-1~deb12u1)`).
fn systemd_version() -> u32 {
    let out = run(Command::new("systemd-analyze").arg("--version"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!("cannot read the systemd version from {text:?}: install Debian's `systemd`")
        })
}

/// `systemd-analyze [--user] verify` on every unit in `dir`; returns everything it said. The
/// export leaves out the keys that this systemd does not know (`--systemd-version` defaults
/// to the machine's), so there must be nothing at all, not even an unknown-key notice.
fn verify(dir: &Path, user: bool) -> Vec<String> {
    let runtime = tempfile::tempdir().unwrap();
    let mut units: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    units.sort();
    let mut cmd = Command::new("systemd-analyze");
    cmd.current_dir(dir);
    if user {
        // A user manager needs a runtime directory, which a CI shell has not.
        cmd.arg("--user").env("XDG_RUNTIME_DIR", runtime.path());
    }
    cmd.args(["verify", "--man=no"])
        .args(units.iter().map(|u| format!("./{u}")));
    let out = run(&mut cmd);
    let mut complaints: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(str::to_owned)
        .collect();
    if !out.status.success() && complaints.is_empty() {
        complaints.push(describe(&out));
    }
    complaints
}

fn check_systemd(user: bool) {
    if !need_tool("systemd-analyze", "systemd") {
        return;
    }
    let mut failures = Vec::new();
    for config in shipped_configs() {
        let dir = tempfile::tempdir().unwrap();
        let units = dir.path().join("units");
        let mut args = vec!["systemd", "--out", units.to_str().unwrap()];
        if user {
            args.push("--user");
        }
        export(&config, &args);
        let complaints = verify(&units, user);
        if !complaints.is_empty() {
            let texts: String = std::fs::read_dir(&units)
                .unwrap()
                .map(|e| {
                    let path = e.unwrap().path();
                    format!(
                        "== {}\n{}",
                        path.display(),
                        std::fs::read_to_string(&path).unwrap()
                    )
                })
                .collect();
            failures.push(format!(
                "{}:\n{}\n{texts}",
                config.display(),
                complaints.join("\n")
            ));
        }
        for unit in std::fs::read_dir(&units).unwrap() {
            let path = unit.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // A scheduled service's timer is hooked into timers.target, and socket units
            // (`listen`) into sockets.target, as systemd's own are.
            let timer = path.extension().is_some_and(|e| e == "timer");
            let socket = path.extension().is_some_and(|e| e == "socket");
            let wanted_by = if timer {
                "WantedBy=timers.target"
            } else if socket {
                "WantedBy=sockets.target"
            } else if user {
                "WantedBy=default.target"
            } else {
                "WantedBy=multi-user.target"
            };
            if text.contains("[Install]") {
                assert!(text.contains(wanted_by), "{config:?}:\n{text}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "systemd-analyze verify complains:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn systemd_accepts_the_system_units_of_every_shipped_config() {
    check_systemd(false);
}

#[test]
fn systemd_accepts_the_user_units_of_every_shipped_config() {
    check_systemd(true);
}

#[test]
fn restart_steps_are_written_for_a_systemd_that_knows_them() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    let config = Path::new(ROOT).join("examples/stack/services.toml");
    let version = systemd_version();
    let out = export(
        &config,
        &[
            "systemd",
            "--out",
            units.to_str().unwrap(),
            "--systemd-version",
            "254",
        ],
    );
    let web = std::fs::read_to_string(units.join("runpm-web.service")).unwrap();
    // 500ms doubled 5 times passes 10s.
    assert!(
        web.contains("\nRestartSteps=5\nRestartMaxDelaySec=10s\n"),
        "{web}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("[export]: restart_delay_max"));
    // Left out for this machine's systemd when it is older, and said once.
    let old = tempfile::tempdir().unwrap();
    let out = export(
        &config,
        &["systemd", "--out", old.path().join("u").to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notes = stderr
        .lines()
        .filter(|l| l.starts_with("warning: [export]: restart_delay_max: "))
        .count();
    assert_eq!(notes, usize::from(version < 254), "{stderr}");
}

#[test]
fn unit_directories_export_normalized_paths_and_tasks_as_oneshots() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    export(
        &Path::new(ROOT).join("units/stack"),
        &["systemd", "--out", units.to_str().unwrap()],
    );
    let web = std::fs::read_to_string(units.join("runpm-web.service")).unwrap();
    assert!(
        web.contains(&format!("\nWorkingDirectory={ROOT}/examples/stack\n")),
        "{web}"
    );
    let seed = std::fs::read_to_string(units.join("runpm-seed.service")).unwrap();
    for line in ["Type=oneshot", "RemainAfterExit=yes", "Restart=no"] {
        assert!(seed.contains(&format!("\n{line}\n")), "{line} in\n{seed}");
    }
}

#[test]
fn kubernetes_accepts_the_manifest_of_every_shipped_config() {
    if !need_check(
        "python3",
        &["-c", "import kubernetes, yaml"],
        "install python3 and the Kubernetes client (`python3 -m pip install kubernetes`; \
         `bash .ci/run` does)",
    ) {
        return;
    }
    let mut failures = Vec::new();
    for config in shipped_configs() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("manifest.yaml");
        export(
            &config,
            &[
                "kubernetes",
                "--image",
                "registry.example/app:1",
                "--out",
                manifest.to_str().unwrap(),
            ],
        );
        let checked = run(Command::new("python3")
            .arg(Path::new(ROOT).join("tests/support/validate_k8s.py"))
            .arg(&manifest));
        if !checked.status.success() {
            failures.push(format!(
                "{}: {}\n--- manifest\n{}",
                config.display(),
                describe(&checked),
                std::fs::read_to_string(&manifest).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
