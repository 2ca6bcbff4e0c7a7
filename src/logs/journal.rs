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
//! The socket is non-blocking. A journald that stops reading would otherwise block every
//! write forever (FACTS.md), and with it the supervisor, or PID 1's reaping. When the
//! socket's queue is full a line is dropped and counted; the next line that gets through is
//! preceded by a `runpm` notice at priority 4 saying how many were lost.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A connection to journald's native socket.
pub struct Journal {
    socket: UnixDatagram,
    /// Lines dropped since the last notice about them.
    dropped: AtomicU64,
}

impl Journal {
    /// Connects to journald's socket at `path` ([`SOCKET`] outside of tests).
    pub fn connect(path: &Path) -> io::Result<Journal> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        socket.set_nonblocking(true)?;
        Ok(Journal {
            socket,
            dropped: AtomicU64::new(0),
        })
    }

    /// Sends one entry; never waits. A full queue, a journald gone away or an entry too
    /// large drops it, counted and reported with the next entry that gets through.
    pub fn send(&self, priority: u8, identifier: &str, service: Option<&str>, message: &str) {
        let pending = self.dropped.load(Ordering::Relaxed);
        if pending > 0 {
            let notice = format!(
                "{pending} log lines were dropped: the journal was not reading fast enough"
            );
            if self
                .socket
                .send(&entry(PRIORITY_WARNING, IDENTIFIER, None, &notice))
                .is_err()
            {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.dropped.fetch_sub(pending, Ordering::Relaxed);
        }
        if self
            .socket
            .send(&entry(priority, identifier, service, message))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
    fn a_journal_that_stops_reading_costs_lines_not_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let journal = Journal::connect(&path).unwrap();
        let mut lines = Lines::new();
        for i in 0..100 {
            lines.push(&format!("line {i} {}", "x".repeat(1000)));
        }
        // Nobody reads: the queue fills, and the rest is dropped without waiting.
        for _ in 0..100 {
            journal.lines("web", Stream::Stderr, &lines);
        }
        let dropped = journal.dropped();
        assert!(dropped > 0, "the socket never filled");
        // Once the journal reads again, the next line brings a notice of the loss.
        server.set_nonblocking(true).unwrap();
        let mut buf = vec![0; 64 * 1024];
        while server.recv(&mut buf).is_ok() {}
        journal.line("web", Stream::Stdout, "back");
        let n = server.recv(&mut buf).unwrap();
        let notice = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            notice.contains("PRIORITY=4\nSYSLOG_IDENTIFIER=runpm\n")
                && notice.contains(&format!("MESSAGE={dropped} log lines were dropped")),
            "{notice}"
        );
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"PRIORITY=6\nSYSLOG_IDENTIFIER=web\nRUNPM_SERVICE=web\nMESSAGE=back\n"
        );
        assert_eq!(journal.dropped(), 0);
    }
}
