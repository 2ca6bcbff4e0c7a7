//! What a test needs from the machine (root, a system program), with one rule for all of
//! them: when the need is not met, the test **fails**, saying what to install or how to run
//! it; it is skipped only when the documented skip variable is set to `1`, and then it says
//! so on stderr. Never a silent skip: a machine without the tool must not look green.
//!
//! | need | skip variable |
//! |------|---------------|
//! | root ([`need_root`]) | `RUNPM_SKIP_ROOT_TESTS=1` |
//! | a system program ([`need_tool`], [`need_tools`], [`need_check`]) | `RUNPM_SKIP_SYSTEM_PACKAGES=1` |
//! | `systemd-notify` in `tests/notify_clients.rs` ([`need_systemd_notify`]) | either of `RUNPM_SKIP_SYSTEM_PACKAGES=1`, `RUNPM_SKIP_SYSTEMD_NOTIFY=1` |
//!
//! Each helper returns whether the test should run: `if !need_tool("nginx", "nginx") { return; }`.
//! `.ci/run` installs every package named here (as root), so CI meets every need.

use std::path::Path;
use std::process::{Command, Stdio};

/// Skips the tests that need root.
pub const SKIP_ROOT: &str = "RUNPM_SKIP_ROOT_TESTS";
/// Skips the tests that need a system program.
pub const SKIP_SYSTEM_PACKAGES: &str = "RUNPM_SKIP_SYSTEM_PACKAGES";
/// Skips only the tests of `tests/notify_clients.rs` that run a real `systemd-notify` (kept
/// as the README documents it).
pub const SKIP_SYSTEMD_NOTIFY: &str = "RUNPM_SKIP_SYSTEMD_NOTIFY";

/// Whether the test runs as root; `why` says what it does with root (the failure message).
pub fn need_root(why: &str) -> bool {
    if super::is_root() {
        return true;
    }
    unmet(
        &[SKIP_ROOT],
        &format!("this test needs root: {why}"),
        "run the tests as root (CI does)",
    )
}

/// Whether `tool` (a name on PATH, or an absolute path) is installed; `package` is the
/// Debian package that has it. The tool is looked up, never run.
pub fn need_tool(tool: &str, package: &str) -> bool {
    need_tools(&[tool], package)
}

/// Whether every one of `tools` is installed; `packages` are the Debian packages that have
/// them (as `apt-get install` takes them).
pub fn need_tools(tools: &[&str], packages: &str) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !installed(t)).collect();
    if missing.is_empty() {
        return true;
    }
    unmet(
        &[SKIP_SYSTEM_PACKAGES],
        &format!("this test needs {} (not installed)", quoted(&missing)),
        &format!("apt-get install {packages} (`bash .ci/run` does it as root)"),
    )
}

/// Whether `program ARGS…` runs and succeeds: for a need that a lookup cannot tell, such as a
/// Python module. `install` says how to get it.
pub fn need_check(program: &str, args: &[&str], install: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    unmet(
        &[SKIP_SYSTEM_PACKAGES],
        &format!("this test needs `{program} {}` to succeed", args.join(" ")),
        install,
    )
}

/// Whether Debian's `systemd-notify` is installed, for the tests with a real notify client.
pub fn need_systemd_notify() -> bool {
    const SYSTEMD_NOTIFY: &str = "/usr/bin/systemd-notify";
    if installed(SYSTEMD_NOTIFY) {
        return true;
    }
    unmet(
        &[SKIP_SYSTEM_PACKAGES, SKIP_SYSTEMD_NOTIFY],
        &format!("this test needs {SYSTEMD_NOTIFY} (not installed)"),
        "apt-get install systemd (`bash .ci/run` does it as root)",
    )
}

/// The one rule: skip (saying so) when one of `skip_vars` is `1`, else fail saying what is
/// missing, how to get it, and how to skip on purpose.
fn unmet(skip_vars: &[&str], missing: &str, remedy: &str) -> bool {
    if let Some(var) = skip_vars.iter().find(|var| skip_requested(var)) {
        eprintln!("SKIPPED: {missing}, and {var}=1 asks to skip it");
        return false;
    }
    panic!(
        "{missing}: {remedy}, or set {}=1 to skip it on purpose",
        skip_vars[0]
    );
}

fn skip_requested(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == "1")
}

/// Whether `tool` is a file at its absolute path, or in a directory of PATH.
fn installed(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).is_file();
    }
    super::on_path(tool)
}

fn quoted(tools: &[&str]) -> String {
    let quoted: Vec<String> = tools.iter().map(|t| format!("`{t}`")).collect();
    quoted.join(", ")
}
