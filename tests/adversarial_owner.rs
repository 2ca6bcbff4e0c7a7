//! Only the owner is trusted: what runpm does with input and surroundings that someone
//! else (another uid, a forged tag, a crafted request) put there, and a restart right after
//! a crash. Real binaries, real processes, real files; the stranger is uid 65534 (nobody),
//! which needs root (CI runs as root).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use common::*;
use serde_json::Value;

const ONE: &str = r#"
[services.web]
shell = 'echo $$ > web.pid; exec sleep 1000000'
"#;

/// Writes `lines` after a good `hello` on one connection and returns the replies.
fn exchange(socket: &std::path::Path, lines: &[&str]) -> Vec<Value> {
    let mut stream = UnixStream::connect(socket).expect("connect to the socket");
    stream.set_read_timeout(Some(secs(10))).unwrap();
    let mut text = String::from("{\"id\":1,\"cmd\":\"hello\",\"version\":1}\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    stream.write_all(text.as_bytes()).unwrap();
    let mut reader = BufReader::new(&stream);
    (0..=lines.len())
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read a reply line");
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

#[test]
fn a_request_with_a_duplicate_key_is_refused_with_its_id() {
    let p = Project::new(secs(60));
    p.config(ONE);
    let daemon = p.up_detached(&["--no-watch"]);
    let web = p.running_pid("web", secs(10));
    let replies = exchange(
        daemon.socket(),
        &[
            r#"{"id":3,"cmd":"status","cmd":"stop","services":["web"]}"#,
            r#"{"id":4,"cmd":"stop","services":[],"services":["web"]}"#,
            r#"{"id":5,"id":6,"cmd":"stop","services":["web"]}"#,
            r#"{"id":7,"cmd":"status","services":["web"]}"#,
        ],
    );
    assert_eq!(replies[0]["ok"], true, "hello: {replies:?}");
    for (reply, id) in replies[1..3].iter().zip([3, 4]) {
        assert_eq!(reply["id"], id, "{reply}");
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!(reply["error"]["kind"], "bad_request", "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains("appears twice"), "{reply}");
    }
    // Which of two ids to echo is unknowable: none is.
    assert_eq!(replies[3]["id"], Value::Null, "{}", replies[3]);
    assert_eq!(replies[3]["ok"], false, "{}", replies[3]);
    // The connection and the daemon go on, and nothing was stopped.
    assert_eq!(replies[4]["id"], 7, "{}", replies[4]);
    assert_eq!(replies[4]["result"]["services"][0]["status"], "running");
    assert_eq!(replies[4]["result"]["services"][0]["pid"], web);
    assert!(is_alive(web));
}

/// Every distinct content of `path` seen until `stop` is set, read as fast as possible.
fn observe_file(
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut seen: Vec<String> = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(text) = std::fs::read_to_string(&path)
                && !seen.contains(&text)
            {
                seen.push(text);
            }
        }
        seen
    })
}

#[test]
fn up_right_after_a_kill_9_starts_and_the_lock_only_ever_names_a_daemon() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let p = Project::new(secs(170));
    p.config(ONE);
    let _strays = p.stray_guard();
    let lock = p.file(".runpm/lock");
    let mut previous: Option<i32> = None;
    let rounds = 25;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let observer = observe_file(lock.clone(), stop.clone());
        // `up_detached` asserts that `up -d` exits 0: "already running" would fail here.
        let daemon = p.up_detached(&["--no-watch"]);
        stop.store(true, Ordering::Relaxed);
        let seen = observer.join().unwrap();
        let pid = daemon.pid();
        // The daemon says the same pid as the lock file.
        let hello = exchange(daemon.socket(), &[]);
        assert_eq!(hello[0]["result"]["daemon_pid"], pid, "round {round}");
        // The file named the dead daemon (until the new one locked), nobody, or the new
        // daemon: never the `up -d` process that forked it.
        for text in &seen {
            let named = text.lines().next().map(|l| l.trim().parse::<i32>());
            match named {
                None => {}
                Some(Ok(named)) if named == pid || Some(named) == previous => {}
                other => panic!(
                    "round {round}: the lock file named {other:?} ({text:?}), not the daemon \
                     {pid} (previous {previous:?}); all seen: {seen:?}\n{}",
                    daemon.describe()
                ),
            }
        }
        if round + 1 < rounds {
            // No waiting for the lock to be free: the next `up -d` comes at once.
            daemon.crash_now();
            previous = Some(pid);
        }
    }
}

const NOBODY: u32 = 65534;

fn chown(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {path:?} needs root (CI runs as root): {e}"));
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `mkdir .runpm; chown 65534 .runpm; chmod 777 .runpm; ln -s ELSEWHERE .runpm/logs`.
#[test]
fn a_state_dir_of_another_user_is_refused_by_runpm_and_runpmctl() {
    if !need_root("it chowns files to uid 65534") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(ONE);
    let _strays = p.stray_guard();
    let elsewhere = p.file("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let state = p.file(".runpm");
    std::fs::create_dir(&state).unwrap();
    chown(&state, NOBODY);
    chmod(&state, 0o777);
    std::os::unix::fs::symlink(&elsewhere, state.join("logs")).unwrap();
    chown(&state.join("logs"), NOBODY);

    let file = p.file("services.toml");
    for extra in [&["-d"][..], &[][..]] {
        let mut args = vec!["up", "-f", file.to_str().unwrap()];
        args.extend(extra);
        let up = p.run(&args, COMMAND_LIMIT);
        assert_eq!(
            up.code(),
            Some(1),
            "`runpm up {extra:?}`\n{}",
            up.describe()
        );
        let text = &up.stderr;
        assert!(
            text.contains(".runpm")
                && text.contains("owned by uid 65534")
                && text.contains("remove it"),
            "the message names the directory, its owner and the fix:\n{}",
            up.describe()
        );
    }
    assert!(!p.file("web.pid").exists(), "nothing was started");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written there"
    );
    let meta = std::fs::symlink_metadata(&state).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (NOBODY, 0o777),
        "left as it was"
    );

    // Root's own directory that anyone may write to is refused too.
    chown(&state, 0);
    let up = p.run(&["up", "-f", file.to_str().unwrap(), "-d"], COMMAND_LIMIT);
    assert_eq!(up.code(), Some(1), "{}", up.describe());
    assert!(up.stderr.contains("chmod go-w"), "{}", up.describe());

    // The client will not trust a socket found there either.
    chown(&state, NOBODY);
    let ctl = p.ctl(&["status"]);
    assert_ne!(ctl.code(), Some(0), "{}", ctl.describe());
    assert!(
        ctl.stderr.contains("state directory is unsafe") && ctl.stderr.contains("65534"),
        "{}",
        ctl.describe()
    );
}

/// A `state.json` that another user owns is not read: its specs never run as
/// last-known-good.
#[test]
fn a_state_file_of_another_user_is_not_run_as_last_known_good() {
    if !need_root("it chowns files to uid 65534") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(ONE);
    let _strays = p.stray_guard();
    let daemon = p.up_detached(&[]);
    p.running_pid("web", secs(10));
    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(daemon.wait_exit(COMMAND_LIMIT), "{}", daemon.describe());
    drop(daemon);
    std::fs::remove_file(p.file("web.pid")).unwrap();
    let state_file = p.file(".runpm/state.json");
    chown(&state_file, NOBODY);
    p.config("[services.web\ncmd = 1\n");

    let file = p.file("services.toml");
    let up = p.run(&["up", "-f", file.to_str().unwrap(), "-d"], COMMAND_LIMIT);
    assert_eq!(up.code(), Some(1), "{}", up.describe());
    let log = std::fs::read_to_string(p.file(".runpm/runpm.log")).unwrap_or_default();
    assert!(
        log.contains("state.json") && log.contains("owned by uid 65534"),
        "the log says why the snapshot was not used:\n{log}"
    );
    assert!(!p.file("web.pid").exists(), "the snapshot's web never ran");
}

/// Inside a trusted state directory, a `logs` symlink is not written through.
#[test]
fn a_logs_symlink_is_never_written_through() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.web]
shell = 'echo hello; echo $$ > web.pid; exec sleep 1000000'
"#,
    );
    let elsewhere = p.file("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let state = p.file(".runpm");
    std::fs::create_dir(&state).unwrap();
    chmod(&state, 0o700);
    std::os::unix::fs::symlink(&elsewhere, state.join("logs")).unwrap();
    let daemon = p.up_detached(&[]);
    p.running_pid("web", secs(10));
    let log = daemon.wait_for_log("failed to write its log", secs(10));
    assert!(log.contains("logs` is a symlink"), "{log}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // The line is not lost to `runpmctl logs`, which reads the daemon's memory.
    assert!(p.ctl_ok(&["logs", "web"]).contains("hello"));
}

/// A tag proves nothing: a stranger's process (uid 65534) and a root process with a forged
/// token, both tagged as this project's `web`, are never signalled by a root daemon at
/// start-up. A process that carries the real token is, which shows the scan ran.
#[test]
fn the_tag_scan_never_signals_a_stranger_or_a_forged_token() {
    if !need_root("it runs a process as uid 65534") {
        return;
    }
    let p = Project::new(secs(90));
    p.config(ONE);
    let _strays = p.stray_guard();
    let forged = "0123456789abcdef".repeat(4);
    let mut stranger = tagged_sleep(&p, "web", None, Some(NOBODY));
    let mut stranger_forged = tagged_sleep(&p, "web", Some(&forged), Some(NOBODY));
    let mut root_forged = tagged_sleep(&p, "web", Some(&forged), None);
    let strangers = [
        stranger.id() as i32,
        stranger_forged.id() as i32,
        root_forged.id() as i32,
    ];

    let daemon = p.up_detached(&[]);
    let web = p.running_pid("web", secs(10));
    for pid in strangers {
        assert!(
            is_alive(pid),
            "pid {pid} was signalled\n{}",
            daemon.describe()
        );
    }
    // The daemon's secret: 0600 in the 0700 state directory, and in its services' env.
    let token = std::fs::read_to_string(p.file(".runpm/token")).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64);
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(p.file(".runpm/token")).unwrap().mode();
    assert_eq!(mode & 0o777, 0o600);
    let environ = std::fs::read(format!("/proc/{web}/environ")).unwrap();
    let carried = format!("RUNPM_TOKEN={token}");
    assert!(
        environ.split(|&b| b == 0).any(|v| v == carried.as_bytes()),
        "web carries the token"
    );

    // A crash, and a process with the real token that the state file does not know about:
    // the next daemon stops it, and still leaves the strangers alone.
    daemon.crash();
    let mut ours = tagged_sleep(&p, "web", Some(token), None);
    let ours_pid = ours.id() as i32;
    let daemon = p.up_detached(&[]);
    assert!(
        wait_dead(ours_pid, secs(20)),
        "the process with the real token is stopped\n{}",
        daemon.describe()
    );
    let log = daemon.log();
    for pid in strangers {
        assert!(
            is_alive(pid),
            "pid {pid} was signalled\n{}",
            daemon.describe()
        );
        assert!(!log.contains(&format!("pid {pid} ")), "{log}");
    }
    // The token outlived the crash: the same secret, so `web` was recognised too.
    let again = std::fs::read_to_string(p.file(".runpm/token")).unwrap();
    assert_eq!(again.trim(), token);
    drop(daemon);
    for child in [
        &mut stranger,
        &mut stranger_forged,
        &mut root_forged,
        &mut ours,
    ] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
