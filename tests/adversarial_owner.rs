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
