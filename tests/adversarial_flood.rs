//! Output that would drown a supervisor (issue 11): a service that prints as fast as it can,
//! a 10 MB line without a newline, binary noise. Beside it a service that crashes every
//! 200 ms must keep being restarted, `runpmctl status` must answer at once, and SIGTERM must
//! still stop everything: nothing a service prints may starve the supervisor.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Restarted every 200 ms or so, whatever its neighbours do: the witness that runpm keeps
/// supervising.
const CRASHY: &str = r#"
[services.crashy]
shell = "sleep 0.2; exit 1"
restart = "always"
restart_delay = "50ms"
restart_delay_max = "50ms"
max_restarts = 1000000
"#;

/// How long `runpmctl status` may take while a neighbour floods: it answers in milliseconds
/// when nothing floods; this leaves room for a loaded CI machine, not for a stall.
const STATUS_LIMIT: Duration = Duration::from_secs(3);

/// `status --json`, which must answer within [`STATUS_LIMIT`].
fn status(p: &Project) -> Value {
    let out = p.ctl_within(&["status", "--json"], STATUS_LIMIT);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    serde_json::from_str(&out.stdout).expect("status --json is JSON")
}

fn restarts(p: &Project, name: &str) -> u64 {
    services_by_name(&status(p))[name]["restarts"]
        .as_u64()
        .expect("restarts is a number")
}

/// Waits until `crashy` has been restarted `more` more times, asking `status` all along.
fn crashy_keeps_restarting(p: &Project, daemon: &Daemon, more: u64) {
    let before = restarts(p, "crashy");
    let mut now = before;
    let restarted = wait_for(secs(20), || {
        now = restarts(p, "crashy");
        now >= before + more
    });
    assert!(
        restarted,
        "crashy was restarted {} times in 20s beside the flood (expected {more})\n{}",
        now - before,
        daemon.describe()
    );
}

/// SIGTERM stops the daemon and every service within the deadline.
fn sigterm_ends_everything(p: &Project, daemon: &Daemon) {
    daemon.send_signal(Signal::SIGTERM);
    assert!(
        daemon.wait_exit(secs(10)),
        "the daemon did not exit within 10s of SIGTERM\n{}",
        daemon.describe()
    );
    assert!(
        wait_for(secs(5), || processes_in(p.path()).is_empty()),
        "services outlived the daemon: {:?}",
        processes_in(p.path())
    );
}

fn file_len(p: &Project, rel: &str) -> u64 {
    std::fs::metadata(p.file(rel)).map_or(0, |m| m.len())
}

#[test]
fn a_service_that_prints_as_fast_as_it_can_starves_nobody() {
    let p = Project::new(secs(120));
    p.config(&format!("[services.flood]\nshell = \"exec yes\"\n{CRASHY}"));
    let daemon = p.up_detached(&["--no-watch"]);
    // The flood is on: its log has rotated at least once (10 MB of `y` lines).
    assert!(
        wait_for(secs(20), || p.file(".runpm/logs/flood.log.1").exists()),
        "flood.log never reached 10 MB\n{}",
        daemon.describe()
    );
    crashy_keeps_restarting(&p, &daemon, 5);
    assert_eq!(services_by_name(&status(&p))["flood"]["status"], "running");
    // Overload is reported, and nothing was dropped: every record is one of `yes`'s lines.
    daemon.wait_for_log(
        "flood: prints to stdout faster than runpm can record it",
        secs(10),
    );
    let records = p.lines(".runpm/logs/flood.log.1");
    assert!(!records.is_empty());
    for record in &records {
        assert_eq!(
            parse_record(record).map(|(_, marker, line)| (marker, line)),
            Some(("out", "y")),
            "{record:?}"
        );
    }
    sigterm_ends_everything(&p, &daemon);
}

#[test]
fn a_ten_megabyte_line_and_binary_noise_are_kept_and_starve_nobody() {
    let p = Project::new(secs(120));
    p.config(&format!(
        r#"
[services.long]
shell = '''head -c 10000000 /dev/zero | tr '\000' x; printf '\nlong done\n'; exec sleep 1000'''
log_max_size = "100MB"

[services.binary]
shell = '''head -c 5000000 /dev/urandom; printf '\nbinary done\n'; exec sleep 1000'''
log_max_size = "100MB"
{CRASHY}"#
    ));
    let daemon = p.up_detached(&["--no-watch"]);
    crashy_keeps_restarting(&p, &daemon, 3);
    let done = |name: &str, last: &str| {
        wait_for(secs(30), || {
            // A cheap check first: the last record is small, the file is not.
            file_len(&p, &format!(".runpm/logs/{name}.log")) > 0
                && p.read(&format!(".runpm/logs/{name}.log"))
                    .ends_with(&format!(" out {last}\n"))
        })
    };
    assert!(
        done("long", "long done"),
        "long.log did not end with `long done`\n{}",
        daemon.describe()
    );
    assert!(
        done("binary", "binary done"),
        "binary.log did not end with `binary done`\n{}",
        daemon.describe()
    );

    // The long line arrives whole, in pieces of 16 KiB at most.
    let long: Vec<String> = p
        .lines(".runpm/logs/long.log")
        .iter()
        .filter_map(|r| parse_record(r).map(|(_, _, line)| line.to_owned()))
        .collect();
    let (last, pieces) = long.split_last().expect("records");
    assert_eq!(last, "long done");
    assert!(
        pieces
            .iter()
            .all(|l| l.len() <= 16 * 1024 && l.bytes().all(|b| b == b'x'))
    );
    assert_eq!(pieces.iter().map(String::len).sum::<usize>(), 10_000_000);
    assert_eq!(pieces.len(), 10_000_000usize.div_ceil(16 * 1024));

    // Binary noise becomes valid UTF-8 text (the file reads as a string) of whole records.
    let binary = p.lines(".runpm/logs/binary.log");
    assert!(binary.len() > 1000, "{} records", binary.len());
    assert!(binary.iter().all(|r| parse_record(r).is_some()));

    crashy_keeps_restarting(&p, &daemon, 2);
    sigterm_ends_everything(&p, &daemon);
}
