//! The services' lines and runpm's own events in the systemd journal, each service under its
//! own name, so that `journalctl -t web` works.
//!
//! runpm writes to the journal only when its stderr *is* the journal: systemd then sets
//! `JOURNAL_STREAM` to the device and inode of that stream, and sd_journal's documentation
//! says to compare them with stderr's (a variable inherited through a shell that redirected
//! stderr elsewhere must not count). Every line becomes one datagram of the journal's native
//! protocol on `/run/systemd/journal/socket`:
//!
//! ```text
//! PRIORITY=6            (3 for the service's stderr)
//! SYSLOG_IDENTIFIER=web
//! RUNPM_SERVICE=web
//! MESSAGE=the line
//! ```
//!
//! The supervisor never writes to the socket itself: a journald that stops reading would
//! block every write forever (FACTS.md), and with it the supervisor, or PID 1's reaping.
//! Entries are queued for a writer thread, at most [`MAX_QUEUED`] bytes of them, as the
//! console does for a slow terminal; beyond that a line is dropped and counted, and the next
//! line that fits is preceded by a `runpm` entry at priority 4 saying how many were lost. The
//! thread's own sends give up after a second, so a journald that is gone cannot hold it (or
//! runpm's exit) for good.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use super::capture::{LineSink, Lines, Stream};

/// Where journald reads native-protocol datagrams.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// syslog priorities, as journald stores them.
pub const PRIORITY_ERR: u8 = 3;
pub const PRIORITY_WARNING: u8 = 4;
pub const PRIORITY_INFO: u8 = 6;
pub const PRIORITY_DEBUG: u8 = 7;

/// The identifier of runpm's own entries.
pub const IDENTIFIER: &str = "runpm";

/// Whether `journal_stream` (the value of `JOURNAL_STREAM`, `DEVICE:INODE` in decimal) names
/// the file that `fd` is.
pub fn is_stream(journal_stream: &str, fd: impl AsFd) -> bool {
    let Some((dev, ino)) = journal_stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// Whether runpm's stderr is the journal, per `JOURNAL_STREAM`.
pub fn stderr_is_journal() -> bool {
    std::env::var("JOURNAL_STREAM").is_ok_and(|value| is_stream(&value, io::stderr()))
}

/// Bytes of entries that may wait for a journal that is slower than the services.
pub const MAX_QUEUED: usize = 1024 * 1024;

/// How long the writer thread waits for room in journald's queue before it gives an entry
/// up: a journald that has stopped reading costs the thread this per entry, never forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to journald's native socket, written by a thread of its own.
///
/// Callers only queue entries (at most [`MAX_QUEUED`] bytes of them), so they never wait
/// for journald. The writer thread sends them; journald's socket queue is short (the kernel's
/// `max_dgram_qlen`, a few hundred datagrams), so a burst from a service waits in this queue
/// instead of being lost.
pub struct Journal {
    queue: Arc<Queue>,
}

#[derive(Default)]
struct Queue {
    pending: Mutex<Pending>,
    /// Signalled when an entry is queued.
    queued: Condvar,
    /// Signalled when the writer has sent what it took.
    sent: Condvar,
}

#[derive(Default)]
struct Pending {
    entries: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Entries dropped since the last one queued (the queue was full, or journald did not
    /// take them within the send timeout).
    dropped: u64,
    /// The writer holds entries that it has not sent yet.
    sending: bool,
}

impl Journal {
    /// Connects to journald's socket at `path` ([`SOCKET`] outside of tests) and starts the
    /// writer thread.
    pub fn connect(path: &Path) -> io::Result<Journal> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        let queue = Arc::new(Queue::default());
        let writer = queue.clone();
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer.send_forever(&socket))?;
        Ok(Journal { queue })
    }

    /// Queues one entry; never waits. With the queue full it is dropped, counted, and
    /// reported by a `runpm` entry at priority 4 before the next one that fits.
    pub fn send(&self, priority: u8, identifier: &str, service: Option<&str>, message: &str) {
        let record = entry(priority, identifier, service, message);
        let mut pending = self.queue.lock();
        if pending.bytes + record.len() > MAX_QUEUED {
            pending.dropped += 1;
            return;
        }
        if pending.dropped > 0 {
            let dropped = std::mem::take(&mut pending.dropped);
            pending.push(notice(dropped));
        }
        pending.push(record);
        self.queue.queued.notify_one();
    }

    /// Lines dropped and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.queue.lock().dropped
    }

    /// Waits until every queued entry was sent, or `timeout` passed (journald may be gone):
    /// on the way out, so the last lines are not lost. Returns whether all were sent.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = self.queue.lock();
        loop {
            if pending.entries.is_empty() && !pending.sending {
                // Losses since the last notice, with no line after them to carry one.
                let dropped = std::mem::take(&mut pending.dropped);
                if dropped == 0 {
                    return true;
                }
                pending.push(notice(dropped));
                self.queue.queued.notify_one();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self
                .queue
                .sent
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The `runpm` entry that reports `dropped` lost lines.
fn notice(dropped: u64) -> Vec<u8> {
    let text = format!("{dropped} log lines were dropped: the journal was not reading fast enough");
    entry(PRIORITY_WARNING, IDENTIFIER, None, &text)
}

impl Pending {
    fn push(&mut self, entry: Vec<u8>) {
        self.bytes += entry.len();
        self.entries.push_back(entry);
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send_forever(&self, socket: &UnixDatagram) {
        let mut batch: VecDeque<Vec<u8>> = VecDeque::new();
        loop {
            let mut failed = 0;
            for entry in batch.drain(..) {
                // A full queue past the timeout, a journald gone away, an entry too large:
                // the entry is lost, and counted.
                if socket.send(&entry).is_err() {
                    failed += 1;
                }
            }
            let mut pending = self.lock();
            pending.dropped += failed;
            pending.sending = false;
            self.sent.notify_all();
            while pending.entries.is_empty() {
                pending = self
                    .queued
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::swap(&mut batch, &mut pending.entries);
            pending.bytes = 0;
            pending.sending = true;
        }
    }
}

impl LineSink for Journal {
    /// Each line under the service's own identifier: priority 6 for stdout, 3 for stderr.
    fn lines(&self, service: &str, stream: Stream, lines: &Lines) {
        let priority = match stream {
            Stream::Stdout => PRIORITY_INFO,
            Stream::Stderr => PRIORITY_ERR,
        };
        for line in lines.iter() {
            self.send(priority, service, Some(service), line);
        }
    }
}

/// The `MakeWriter` of runpm's own events under the journal: one entry per event, under
/// the identifier `runpm`, at the priority of its level (info at 6).
#[derive(Clone)]
pub struct EventJournal(pub Arc<Journal>);

impl<'a> MakeWriter<'a> for EventJournal {
    type Writer = EventEntry<'a>;

    fn make_writer(&'a self) -> EventEntry<'a> {
        EventEntry {
            journal: &self.0,
            priority: PRIORITY_INFO,
            text: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventEntry<'a> {
        let priority = match *meta.level() {
            Level::ERROR => PRIORITY_ERR,
            Level::WARN => PRIORITY_WARNING,
            Level::INFO => PRIORITY_INFO,
            _ => PRIORITY_DEBUG,
        };
        EventEntry {
            journal: &self.0,
            priority,
            text: Vec::new(),
        }
    }
}

/// runpm's events as journal messages: the text alone, since the entry's identifier says
/// it is runpm's and its priority gives the level (`journalctl -p warning`).
pub struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// One event's text, sent as one entry when the formatter is done with it.
pub struct EventEntry<'a> {
    journal: &'a Journal,
    priority: u8,
    text: Vec<u8>,
}

impl io::Write for EventEntry<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventEntry<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            self.journal.send(self.priority, IDENTIFIER, None, text);
        }
    }
}

/// One datagram of the native protocol. A value with a newline cannot be written as
/// `KEY=value\n`: it is sent as `KEY\n`, its length as 64-bit little-endian, the bytes, `\n`.
pub fn entry(priority: u8, identifier: &str, service: Option<&str>, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 80);
    field(&mut out, "PRIORITY", &priority.to_string());
    field(&mut out, "SYSLOG_IDENTIFIER", identifier);
    if let Some(service) = service {
        field(&mut out, "RUNPM_SERVICE", service);
    }
    field(&mut out, "MESSAGE", message);
    out
}

fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_in_the_native_protocol() {
        assert_eq!(
            entry(6, "web", Some("web"), "GET / 200"),
            b"PRIORITY=6\nSYSLOG_IDENTIFIER=web\nRUNPM_SERVICE=web\nMESSAGE=GET / 200\n"
        );
        let mut expected = b"PRIORITY=4\nSYSLOG_IDENTIFIER=runpm\nMESSAGE\n".to_vec();
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"a\nb\n");
        assert_eq!(entry(4, "runpm", None, "a\nb"), expected);
    }

    #[test]
    fn the_stream_is_recognised_by_device_and_inode() {
        let file = tempfile::tempfile().unwrap();
        let st = nix::sys::stat::fstat(&file).unwrap();
        assert!(is_stream(&format!("{}:{}", st.st_dev, st.st_ino), &file));
        assert!(!is_stream(
            &format!("{}:{}", st.st_dev, st.st_ino + 1),
            &file
        ));
        assert!(!is_stream("garbage", &file));
        assert!(!is_stream("1:", &file));
    }

    #[test]
    fn losses_that_no_later_line_reports_are_reported_on_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let journal = Journal::connect(&path).unwrap();
        let line = "x".repeat(1000);
        let mut sent = 0u64;
        while journal.dropped() == 0 {
            journal.line("web", Stream::Stdout, &line);
            sent += 1;
        }
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = read_until(server, |text| text.contains("SYSLOG_IDENTIFIER=runpm\n"));
        assert!(
            journal.flush(Duration::from_secs(10)),
            "the queue never drained"
        );
        let got = reader.join().unwrap();
        let notice = got.last().unwrap();
        let dropped: u64 = notice
            .split("MESSAGE=")
            .nth(1)
            .and_then(|m| m.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{notice}"));
        // The line that found the queue full (and, on a slow machine, one the writer gave up
        // on) is counted; every other one arrived.
        assert!(notice.contains("log lines were dropped"), "{notice}");
        assert!(dropped >= 1);
        assert_eq!(got.len() as u64 - 1 + dropped, sent);
        assert_eq!(journal.dropped(), 0);
    }

    /// The datagrams `server` receives, on a thread, up to the first that `last` accepts.
    fn read_until(
        server: UnixDatagram,
        last: impl Fn(&str) -> bool + Send + 'static,
    ) -> std::thread::JoinHandle<Vec<String>> {
        std::thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            let mut got = Vec::new();
            while let Ok(n) = server.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = last(&text);
                got.push(text);
                if done {
                    break;
                }
            }
            got
        })
    }

    #[test]
    fn a_journal_that_stops_reading_costs_lines_not_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let journal = Journal::connect(&path).unwrap();
        let mut lines = Lines::new();
        for i in 0..100 {
            lines.push(&format!("line {i} {}", "x".repeat(1000)));
        }
        // Nobody reads: 10 MB of lines fill the socket and the queue, and the rest is dropped
        // without waiting (this returns although the writer thread is stuck).
        for _ in 0..100 {
            journal.lines("web", Stream::Stderr, &lines);
        }
        let dropped = journal.dropped();
        assert!(dropped > 0, "nothing was dropped");

        // The journal reads again: what was queued arrives, then the notice and the next line.
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = read_until(server, |text| text.ends_with("MESSAGE=back\n"));
        assert!(
            journal.flush(Duration::from_secs(10)),
            "the queue never drained"
        );
        journal.line("web", Stream::Stdout, "back");
        let got = reader.join().unwrap();
        let [.., notice, back] = &got[..] else {
            panic!("got {} entries", got.len());
        };
        assert!(
            notice.starts_with("PRIORITY=4\nSYSLOG_IDENTIFIER=runpm\n")
                && notice.contains("log lines were dropped"),
            "{notice}"
        );
        assert_eq!(
            back,
            "PRIORITY=6\nSYSLOG_IDENTIFIER=web\nRUNPM_SERVICE=web\nMESSAGE=back\n"
        );
        // Every line was either delivered or counted in a notice (there is one after each
        // stretch of drops, so a writer that caught up in between makes several).
        let dropped: u64 = got
            .iter()
            .filter_map(|e| e.split("SYSLOG_IDENTIFIER=runpm\nMESSAGE=").nth(1))
            .filter_map(|m| m.split(' ').next()?.parse::<u64>().ok())
            .sum();
        let delivered = got
            .iter()
            .filter(|e| e.contains("RUNPM_SERVICE=web\nMESSAGE=line"))
            .count() as u64;
        assert_eq!(
            delivered + dropped,
            100 * 100,
            "delivered {delivered}, dropped {dropped}"
        );
        assert_eq!(journal.dropped(), 0);
    }
}
