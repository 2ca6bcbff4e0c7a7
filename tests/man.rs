//! The man pages in `man/`: generated from the code (the clap definitions and
//! `config::reference`), checked in, and checked here.
//!
//! `man_pages_match_the_code` renders every page into memory and compares it with the file;
//! with `RUNPM_BLESS=1` it writes the files instead:
//!
//! ```sh
//! RUNPM_BLESS=1 cargo nextest run man
//! ```
//!
//! `man_pages_render_without_warnings` formats each page with groff (`-ww`: all warnings)
//! and man-db, which `.ci/run` installs (groff-base, man-db). Without them it fails, unless
//! `RUNPM_SKIP_SYSTEM_PACKAGES=1` says to skip it.

mod common;

mod man {
    pub mod pages;
    pub mod roff;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use common::need_tool;

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

const BLESS: &str = "RUNPM_BLESS=1 cargo nextest run man";

#[test]
fn man_pages_match_the_code() {
    let bless = std::env::var_os("RUNPM_BLESS").is_some_and(|v| v == "1");
    let mut drifted = Vec::new();
    for (name, rendered) in man::pages::all() {
        let path = man_dir().join(name);
        if bless {
            std::fs::create_dir_all(man_dir()).unwrap();
            std::fs::write(&path, &rendered).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != rendered {
            let line = on_disk
                .lines()
                .zip(rendered.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| on_disk.lines().count().min(rendered.lines().count()));
            drifted.push(format!(
                "  man/{name}: first difference at line {}\n    file: {:?}\n    code: {:?}",
                line + 1,
                on_disk.lines().nth(line).unwrap_or("<end of file>"),
                rendered.lines().nth(line).unwrap_or("<end of page>"),
            ));
        }
    }
    assert!(
        drifted.is_empty(),
        "man pages drifted from the code: run `{BLESS}` to regenerate them, and commit \
         the result\n{}",
        drifted.join("\n")
    );
}

#[test]
fn man_pages_render_without_warnings() {
    if !need_tool("groff", "groff-base") || !need_tool("man", "man-db") {
        return;
    }
    for (name, _) in man::pages::all() {
        let path = man_dir().join(name);
        assert!(path.exists(), "man/{name} is missing: run `{BLESS}`");
        // -ww: every warning; -z: format, print nothing but the warnings.
        let groff = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("run groff");
        let warnings = String::from_utf8_lossy(&groff.stderr);
        assert!(
            groff.status.success() && warnings.trim().is_empty(),
            "groff warns about man/{name} ({}):\n{warnings}",
            groff.status
        );
        // As a reader would see it.
        let man = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .env("LANG", "C.UTF-8")
            .output()
            .expect("run man");
        let text = String::from_utf8_lossy(&man.stdout);
        let warnings = String::from_utf8_lossy(&man.stderr);
        assert!(
            man.status.success() && warnings.trim().is_empty(),
            "`man -l man/{name}` failed or warned ({}):\n{warnings}",
            man.status
        );
        for heading in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "EXIT STATUS",
            "FILES",
            "SEE ALSO",
        ] {
            assert!(
                text.lines().any(|l| l == heading),
                "`man -l man/{name}` has no {heading} section:\n{text}"
            );
        }
    }
}

#[test]
fn the_format_page_lists_every_key_status_and_file() {
    let (_, page) = man::pages::all()
        .into_iter()
        .find(|(name, _)| *name == "runpm.toml.5")
        .unwrap();
    use runpm::config::reference::{HEALTH, READY, SERVICE, SETTINGS};
    for (prefix, table) in [
        ("", SERVICE),
        ("ready.", READY),
        ("health.", HEALTH),
        ("", SETTINGS),
    ] {
        for field in table {
            let key = format!("\\fB{prefix}{}\\fR", field.name.replace('-', "\\-"));
            assert!(
                page.contains(&key),
                "runpm.toml.5 does not describe `{prefix}{}`",
                field.name
            );
        }
    }
    for word in [
        "starting",
        "running",
        "stopping",
        "stopped",
        "exited",
        "backoff",
        "failed",
        "state.json",
        "runpm.sock",
        "notify.sock",
        "logs/NAME.log",
        ".runpm/",
    ] {
        assert!(
            page.contains(word),
            "runpm.toml.5 does not mention `{word}`"
        );
    }
}

/// Every command path a user can type (`export`, `export systemd`, …) below `cmd`.
fn command_paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in man::roff::visible_subcommands(cmd) {
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_owned());
        out.push(path.clone());
        command_paths(sub, &path, out);
    }
}

/// The long options a `--help` text offers (`--json`, `--state-dir`, …).
fn long_options(help: &str) -> std::collections::BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter_map(|word| {
            let name = word.strip_prefix("--")?;
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty() && name != "help" && name != "version").then(|| format!("--{name}"))
        })
        .collect()
}

/// What each binary's own `--help` says, command by command, is in its man page: a
/// subsection per command (nested ones included) and every long option it lists.
#[test]
fn every_command_and_option_of_help_is_in_the_man_pages() {
    let binaries = [
        (
            env!("CARGO_BIN_EXE_runpm"),
            runpm::cli::runpm::command(),
            "runpm.1",
        ),
        (
            env!("CARGO_BIN_EXE_runpmctl"),
            runpm::cli::runpmctl::command(),
            "runpmctl.1",
        ),
    ];
    let mut missing = Vec::new();
    for (binary, cmd, page) in binaries {
        let text = std::fs::read_to_string(man_dir().join(page))
            .unwrap_or_else(|e| panic!("man/{page}: {e}"))
            .replace("\\-", "-");
        let mut paths = vec![Vec::new()];
        command_paths(&cmd, &[], &mut paths);
        for path in paths {
            let help = Command::new(binary)
                .args(&path)
                .arg("--help")
                .output()
                .unwrap_or_else(|e| panic!("run {binary} --help: {e}"));
            assert!(help.status.success(), "{binary} {path:?} --help failed");
            let help = String::from_utf8_lossy(&help.stdout);
            let title = path.join(" ");
            let has_subsection = text.contains(&format!(".SS \"{title}\""))
                || text.contains(&format!(".SS {title}\n"));
            if !path.is_empty() && !has_subsection {
                missing.push(format!("man/{page}: no subsection for `{title}`"));
            }
            for option in long_options(&help) {
                if !text.contains(&option) {
                    missing.push(format!(
                        "man/{page}: `{option}` (from `{} {title} --help`) is not described",
                        cmd.get_name()
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the man pages do not cover `--help`; run `{BLESS}`:\n{}",
        missing.join("\n")
    );
}
