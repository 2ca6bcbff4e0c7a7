use std::time::Duration;

use super::*;

#[derive(Default)]
struct Collect(Mutex<Vec<(String, Stream, String)>>);

impl LineSink for Collect {
    fn lines(&self, service: &str, stream: Stream, lines: &Lines) {
        let mut all = self.0.lock().unwrap();
        all.extend(
            lines
                .iter()
                .map(|l| (service.to_owned(), stream, l.to_owned())),
        );
    }
}

fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().join("logs")).unwrap();
    (tmp, dir)
}

fn names(services: &[&str]) -> Vec<String> {
    services.iter().map(|s| s.to_string()).collect()
}

fn texts(lines: &[LogLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| format!("{}:{}", l.service, l.line))
        .collect()
}

/// Runs `f` on a current-thread runtime, as the daemon does, with a hard limit.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), f)
                .await
                .expect("test timed out")
        })
}

#[test]
fn a_line_reaches_file_tail_console_and_last_lines() {
    let (_tmp, dir) = temp();
    let hub = LogHub::new(&dir);
    let console = Arc::new(Collect::default());
    hub.set_console(Some(console.clone()));
    hub.configure("web", 1_000_000, 2).unwrap();
    hub.line("web", Stream::Stdout, "hello");
    hub.line("web", Stream::Stderr, "oops");

    let file = std::fs::read_to_string(dir.join("web.log")).unwrap();
    let records: Vec<_> = file.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    assert_eq!(records, ["out hello", "err oops"]);
    assert_eq!(hub.last_lines("web", 10), ["hello", "oops"]);
    assert_eq!(hub.last_lines("web", 1), ["oops"]);
    assert!(hub.last_lines("nobody", 1).is_empty());
    assert_eq!(
        *console.0.lock().unwrap(),
        [
            ("web".into(), Stream::Stdout, "hello".into()),
            ("web".into(), Stream::Stderr, "oops".into())
        ]
    );

    hub.set_console(None);
    hub.line("web", Stream::Stdout, "quiet");
    assert_eq!(console.0.lock().unwrap().len(), 2);
    assert_eq!(hub.last_lines("web", 1), ["quiet"]);
}

#[test]
fn configure_changes_limits_and_remove_forgets() {
    let (_tmp, dir) = temp();
    let hub = LogHub::new(&dir);
    hub.configure("web", 1_000_000, 2).unwrap();
    hub.line("web", Stream::Stdout, "one");
    // Every record is over the new limit: each line now rotates the previous one out.
    hub.configure("web", 10, 1).unwrap();
    hub.line("web", Stream::Stdout, "two");
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    assert!(read("web.log.1").ends_with(" out one\n"));
    assert!(read("web.log").ends_with(" out two\n"));
    // The tail survives a reconfigure, not a removal.
    assert_eq!(hub.last_lines("web", 5), ["one", "two"]);
    hub.remove("web");
    assert!(hub.last_lines("web", 5).is_empty());
    assert!(dir.join("web.log").exists());
}

#[test]
fn a_service_that_prints_before_configure_still_gets_a_file() {
    let (_tmp, dir) = temp();
    let hub = LogHub::new(&dir);
    hub.line("early", Stream::Stdout, "first");
    assert!(
        std::fs::read_to_string(dir.join("early.log"))
            .unwrap()
            .ends_with(" out first\n")
    );
}

#[test]
fn a_name_that_escapes_the_directory_gets_no_file() {
    let (tmp, dir) = temp();
    let hub = LogHub::new(&dir);
    assert!(matches!(
        hub.configure("../x", 100, 1),
        Err(LogFileError::InvalidName { .. })
    ));
    // Should such a name reach the hot path anyway, its lines go everywhere but to disk.
    hub.line("../x", Stream::Stdout, "escaped?");
    assert_eq!(hub.last_lines("../x", 1), ["escaped?"]);
    assert!(!tmp.path().join("x.log").exists());
    assert!(!dir.exists());
}

#[test]
fn an_unwritable_logs_dir_does_not_stop_the_rest() {
    let (_tmp, dir) = temp();
    std::fs::write(&dir, "a file where the directory should be").unwrap();
    let hub = LogHub::new(&dir);
    let mut follower = hub.subscribe(&[]);
    hub.configure("web", 1000, 1).unwrap();
    for i in 0..10 {
        hub.line("web", Stream::Stdout, &i.to_string());
    }
    assert_eq!(hub.lost_lines("web"), 10);
    assert_eq!(hub.last_lines("web", 2), ["8", "9"]);
    block_on(async {
        match follower.recv().await {
            Some(Followed::Line(line)) => assert_eq!(line.line, "0"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn followers_get_live_lines_of_their_services() {
    let (_tmp, dir) = temp();
    let hub = LogHub::new(&dir);
    hub.line("web", Stream::Stdout, "before");
    let mut web = hub.subscribe(&names(&["web"]));
    let mut all = hub.subscribe(&[]);
    hub.line("db", Stream::Stdout, "db up");
    hub.line("web", Stream::Stderr, "web up");
    block_on(async {
        let Some(Followed::Line(line)) = web.recv().await else {
            panic!()
        };
        assert_eq!(
            (line.service.as_str(), line.stream, line.line.as_str()),
            ("web", Stream::Stderr, "web up")
        );
        let mut seen = Vec::new();
        for _ in 0..2 {
            let Some(Followed::Line(line)) = all.recv().await else {
                panic!()
            };
            seen.push(format!("{}:{}", line.service, line.line));
        }
        assert_eq!(seen, ["db:db up", "web:web up"]);
    });
    drop(hub);
    block_on(async { assert_eq!(web.recv().await, None) });
}

#[test]
fn the_follow_channel_exists_only_while_someone_follows() {
    let (_tmp, dir) = temp();
    let hub = LogHub::new(&dir);
    let has_channel = |hub: &LogHub| hub.followers.read().unwrap().is_some();
    hub.line("web", Stream::Stdout, "nobody follows");
    assert!(!has_channel(&hub));
    let first = hub.subscribe(&[]);
    assert!(has_channel(&hub));
    drop(first);
    // The next line finds no follower left and lets the channel go...
    hub.line("web", Stream::Stdout, "gone");
    assert!(!has_channel(&hub));
    // ...and a later follower gets a new one, with the lines from then on.
    let mut second = hub.subscribe(&names(&["web"]));
    hub.line("web", Stream::Stdout, "again");
    block_on(async {
        let Some(Followed::Line(line)) = second.recv().await else {
            panic!()
        };
        assert_eq!(line.line, "again");
    });
}

#[test]
fn a_follower_that_never_reads_blocks_nobody() {
    const LINES: usize = 100_000;
    let (_tmp, dir) = temp();
    let hub = Arc::new(LogHub::new(&dir));
    hub.configure("web", u64::MAX, 1).unwrap();
    let mut stalled = hub.subscribe(&[]);
    let mut reader = hub.subscribe(&names(&["web"]));

    let writer = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            for i in 0..LINES {
                hub.line("web", Stream::Stdout, &format!("line {i}"));
            }
        })
    };
    // The live reader sees lines in order up to the last one; it may itself fall behind
    // the writer thread, which shows as gaps, never as a wait.
    let (received, gaps) = block_on(async {
        let (mut received, mut gaps, mut next) = (0usize, 0u64, 0usize);
        loop {
            match reader.recv().await {
                Some(Followed::Line(line)) => {
                    let i: usize = line.line["line ".len()..].parse().unwrap();
                    assert!(i >= next, "line {i} after {next}");
                    next = i + 1;
                    received += 1;
                    if i == LINES - 1 {
                        return (received, gaps);
                    }
                }
                Some(Followed::Gap { missed }) => gaps += missed,
                None => panic!("hub closed"),
            }
        }
    });
    writer.join().unwrap();
    assert_eq!(received as u64 + gaps, LINES as u64);

    let file = std::fs::read_to_string(dir.join("web.log")).unwrap();
    assert_eq!(file.lines().count(), LINES);
    assert!(file.ends_with(&format!(" out line {}\n", LINES - 1)));

    // The stalled follower finds a gap, then the newest lines.
    block_on(async {
        let Some(Followed::Gap { missed }) = stalled.recv().await else {
            panic!("no gap")
        };
        assert_eq!(missed as usize, LINES - FOLLOW_BUFFER);
        let Some(Followed::Line(line)) = stalled.recv().await else {
            panic!()
        };
        assert_eq!(line.line, format!("line {}", LINES - FOLLOW_BUFFER));
    });
}

#[test]
fn tail_merges_services_by_time() {
    let (_tmp, dir) = temp();
    let hub = LogHub::new(&dir);
    for (service, line) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("b", "5")] {
        hub.line(service, Stream::Stdout, line);
    }
    let merged = hub.tail(&names(&["a", "b"]), 10);
    assert!(merged.windows(2).all(|w| w[0].at <= w[1].at));
    let of = |s: &str| -> Vec<String> {
        merged
            .iter()
            .filter(|l| l.service == s)
            .map(|l| l.line.clone())
            .collect()
    };
    assert_eq!(
        (of("a"), of("b"), of("c")),
        (names(&["1", "3"]), names(&["2", "5"]), vec![])
    );
    // `n` bounds the merged result, which keeps the newest lines.
    let last = hub.tail(&names(&["a", "b", "c"]), 2);
    assert_eq!(last.len(), 2);
    assert_eq!(last[1].line, "5");
    assert_eq!(hub.tail(&[], 10).len(), 5);
    assert!(hub.tail(&names(&["nobody"]), 10).is_empty());
}

#[test]
fn merge_keeps_each_services_order_even_when_the_clock_steps_back() {
    let t = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    let line = |service: &str, ms: u64, text: &str| LogLine {
        service: service.into(),
        at: t(ms),
        stream: Stream::Stdout,
        line: text.into(),
        runpm: false,
    };
    let a = vec![line("a", 10, "a1"), line("a", 30, "a2"), line("a", 5, "a3")];
    let b = vec![line("b", 20, "b1"), line("b", 40, "b2")];
    assert_eq!(
        texts(&merge_last(vec![a.clone(), b.clone()], 10)),
        ["a:a1", "b:b1", "a:a2", "a:a3", "b:b2"]
    );
    assert_eq!(texts(&merge_last(vec![a, b], 2)), ["a:a3", "b:b2"]);
}

#[test]
fn follow_joins_history_and_live_lines_exactly() {
    let (_tmp, dir) = temp();
    let hub = Arc::new(LogHub::new(&dir));
    for i in 0..5 {
        hub.line("web", Stream::Stdout, &i.to_string());
    }
    let writer = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            for i in 5..2000 {
                hub.line("web", Stream::Stdout, &i.to_string());
            }
        })
    };
    let (history, mut follower) = hub.follow(&names(&["web"]), 3);
    writer.join().unwrap();
    let mut seen: Vec<usize> = history.iter().map(|l| l.line.parse().unwrap()).collect();
    assert_eq!(seen.len(), 3);
    block_on(async {
        while seen.last() != Some(&1999) {
            match follower.recv().await {
                Some(Followed::Line(line)) => seen.push(line.line.parse().unwrap()),
                other => panic!("{other:?}"),
            }
        }
    });
    // Consecutive numbers from the history's first line on: nothing lost or repeated.
    let first = seen[0];
    assert_eq!(seen, (first..2000).collect::<Vec<_>>());
}

#[test]
fn a_log_line_serializes_for_the_socket() {
    let line = LogLine {
        service: "web".into(),
        at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_319_112_345),
        stream: Stream::Stderr,
        line: "boom".into(),
        runpm: false,
    };
    let json = serde_json::to_string(&line).unwrap();
    assert_eq!(
        json,
        r#"{"service":"web","at":"2026-11-22T03:45:12.345000000Z","stream":"err","line":"boom"}"#
    );
    assert_eq!(serde_json::from_str::<LogLine>(&json).unwrap(), line);
    assert!(serde_json::from_str::<LogLine>(&json.replace("err", "both")).is_err());
}
