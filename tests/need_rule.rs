//! The rule of `tests/common/need.rs`: an unmet need fails the test saying what to install
//! and how to skip, and only the documented variable skips it (saying so).
//!
//! Each case runs a probe test of this very binary in a child process, with the environment
//! the case needs, and reads its exit status and output as a developer would.

mod common;

use std::process::{Command, Output};

use common::need::{SKIP_ROOT, SKIP_SYSTEM_PACKAGES, SKIP_SYSTEMD_NOTIFY};
use common::{need_check, need_tool};

/// A program no machine has.
const MISSING: &str = "runpm-test-no-such-tool";

/// Runs the probe test `name` of this binary with `env` (every skip variable removed first).
fn probe(name: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for var in [SKIP_ROOT, SKIP_SYSTEM_PACKAGES, SKIP_SYSTEMD_NOTIFY] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run the probe")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The probe: needs a tool that is missing; prints whether it was told to run.
#[test]
#[ignore = "run by the tests below, in a child process"]
fn probe_missing_tool() {
    let run = need_tool(MISSING, "runpm-test-package");
    println!("need_tool returned {run}");
}

/// The probe: needs a command that fails.
#[test]
#[ignore = "run by the tests below, in a child process"]
fn probe_failing_check() {
    let run = need_check("false", &[], "install nothing: this is a probe");
    println!("need_check returned {run}");
}

#[test]
fn a_missing_tool_fails_the_test_naming_the_package_and_the_skip_variable() {
    let out = probe("probe_missing_tool", &[]);
    let text = text(&out);
    assert!(!out.status.success(), "an unmet need must fail:\n{text}");
    assert!(
        text.contains(MISSING) && text.contains("apt-get install runpm-test-package"),
        "the failure says what is missing and what to install:\n{text}"
    );
    assert!(
        text.contains("RUNPM_SKIP_SYSTEM_PACKAGES=1"),
        "the failure says how to skip on purpose:\n{text}"
    );
}

#[test]
fn the_skip_variable_skips_and_says_so() {
    let out = probe("probe_missing_tool", &[(SKIP_SYSTEM_PACKAGES, "1")]);
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("need_tool returned false"), "{text}");
    assert!(
        text.contains("SKIPPED") && text.contains("RUNPM_SKIP_SYSTEM_PACKAGES=1"),
        "a skip is said, with the variable that asked for it:\n{text}"
    );
}

#[test]
fn another_skip_variable_or_another_value_does_not_skip() {
    for env in [
        [(SKIP_ROOT, "1")],
        [(SKIP_SYSTEM_PACKAGES, "0")],
        [(SKIP_SYSTEM_PACKAGES, "yes")],
    ] {
        let out = probe("probe_missing_tool", &env);
        assert!(
            !out.status.success(),
            "{env:?} must not skip a missing tool:\n{}",
            text(&out)
        );
    }
}

#[test]
fn a_failing_check_fails_with_its_install_hint() {
    let out = probe("probe_failing_check", &[]);
    let text = text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("install nothing: this is a probe"), "{text}");
    let skipped = probe("probe_failing_check", &[(SKIP_SYSTEM_PACKAGES, "1")]);
    assert!(
        text_of_success(&skipped).contains("need_check returned false"),
        "{}",
        self::text(&skipped)
    );
}

#[test]
fn an_installed_tool_runs_the_test() {
    assert!(need_tool("sh", "dash"));
}

fn text_of_success(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    text(out)
}
