//! Errors say where (issue 11): a config that is not UTF-8 is pointed at by the line and
//! column of its first bad byte, a problem in a unit directory names the unit file, and a
//! quoted value that spans lines is shown escaped, so every diagnostic is one line that
//! starts with its position.

mod common;

use std::os::unix::ffi::OsStrExt;

use common::*;

/// `runpm validate -f TARGET`, which must fail; returns its stderr.
fn refused(p: &Project, target: &str) -> String {
    let out = p.run(&["validate", "-f", target], secs(5));
    assert_eq!(out.code(), Some(1), "{out:#?}");
    out.stderr
}

#[test]
fn a_config_that_is_not_utf8_is_pointed_at_by_line_and_column() {
    let p = Project::new(secs(20));
    std::fs::write(
        p.file("services.toml"),
        b"[services.web]\ncmd = [\"true\"]\n# caf\xe9 au lait\n",
    )
    .unwrap();
    let stderr = refused(&p, "services.toml");
    assert!(
        stderr.contains("services.toml:3:6: byte 0xe9 is not UTF-8"),
        "{stderr}"
    );
    // `up` says the same and starts nothing.
    let mut up = p.up(&["--no-watch"]);
    up.assert_exit_code(secs(10), 1);
    assert!(
        up.stderr()
            .contains("services.toml:3:6: byte 0xe9 is not UTF-8")
    );
}

#[test]
fn problems_in_a_unit_directory_name_the_unit_file() {
    let p = Project::new(secs(20));
    p.write("units/web.toml", "cmd = [\"sleep\", \"1000\"]\n");
    // A unit file that is not UTF-8, one whose name is not, and a dangling link.
    std::fs::write(p.file("units/db.toml"), b"cmd = [\"x\"]\n\xff\n").unwrap();
    std::fs::write(
        p.file("units")
            .join(std::ffi::OsStr::from_bytes(b"w\xffrker.toml")),
        "cmd = [\"x\"]\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("nowhere.toml", p.file("units/cache.toml")).unwrap();
    let stderr = refused(&p, "units");
    let lines: Vec<&str> = stderr.lines().collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has("units/db.toml:2:1: byte 0xff is not UTF-8"), "{stderr}");
    assert!(
        has("units/w\u{fffd}rker.toml: the file name is not UTF-8"),
        "{stderr}"
    );
    assert!(
        has("units/cache.toml: cannot read: No such file"),
        "{stderr}"
    );
    // No diagnostic that names only the directory.
    assert!(
        !lines.iter().any(
            |l| l.starts_with(&format!("{}:", p.file("units").display()))
                || l.starts_with("units:")
        ),
        "{stderr}"
    );
}

#[test]
fn multi_line_values_are_shown_escaped_on_one_line() {
    let p = Project::new(secs(20));
    p.config(
        "[services.web]\ncmd = [\"true\"]\nkill_timeout = \"\"\"\n10s\nfoo\"\"\"\n\
         stop_signal = \"SIG\\nTERM\"\n\n[services.\"a\\nb\"]\ncmd = [\"true\"]\n",
    );
    let stderr = refused(&p, "services.toml");
    let diagnostics: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("runpm:"))
        .collect();
    assert_eq!(diagnostics.len(), 3, "{stderr}");
    assert!(
        diagnostics.iter().all(|l| l
            .split_once("services.toml:")
            .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))),
        "every diagnostic is one line that starts with its position:\n{stderr}"
    );
    assert!(
        diagnostics[0].contains("invalid duration `10s\\nfoo`"),
        "{stderr}"
    );
    assert!(
        diagnostics[1].contains("unknown signal `SIG\\nTERM`"),
        "{stderr}"
    );
    assert!(
        diagnostics[2].contains("service `a\\nb`: invalid service name"),
        "{stderr}"
    );
}
