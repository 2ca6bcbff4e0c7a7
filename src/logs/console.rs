//! `runpm up`'s foreground output: every service's lines, interleaved, each prefixed with
//! the service's name padded to the widest name, in a colour of its own on a terminal.
//!
//! The event loop never writes to stdout itself: a terminal that stops reading (Ctrl-S, a
//! pager that waits, a pipe nobody drains) would block it, and with it every service's
//! supervision. Lines are queued for a writer thread instead, at most [`MAX_QUEUED`] bytes
//! of them; beyond that they are dropped from the console (never from the log files or the
//! tails, which have them all), and where they were, the console says
//! `[runpm: N lines dropped]`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::capture::{LineSink, Lines, Stream};

const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// Bytes of console output that may wait for a slow terminal.
pub const MAX_QUEUED: usize = 1024 * 1024;

pub struct Console {
    width: usize,
    colour: HashMap<String, &'static str>,
    use_colour: bool,
    queue: Arc<Queue>,
}

/// What waits for the writer thread.
#[derive(Default)]
struct Queue {
    pending: Mutex<Pending>,
    /// Signalled when text is queued.
    queued: Condvar,
    /// Signalled when the writer has written what it took.
    written: Condvar,
}

#[derive(Default)]
struct Pending {
    text: Vec<u8>,
    /// Lines dropped since the last one queued.
    dropped: u64,
    /// The writer holds text that it has not written yet.
    writing: bool,
}

impl Console {
    /// `names` in a stable order, so each service keeps its colour from run to run. Writes to
    /// stdout.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, use_colour: bool) -> Console {
        Console::with_writer(names, use_colour, Box::new(std::io::stdout()))
    }

    /// Like [`Console::new`], writing to `out` from a thread of its own.
    pub fn with_writer<'a>(
        names: impl IntoIterator<Item = &'a str>,
        use_colour: bool,
        out: Box<dyn Write + Send>,
    ) -> Console {
        let names: Vec<&str> = names.into_iter().collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let colour = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), COLOURS[i % COLOURS.len()]))
            .collect();
        let queue = Arc::new(Queue::default());
        let writer = queue.clone();
        let spawned = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || writer.write_forever(out));
        if let Err(e) = spawned {
            // Without the thread nothing is printed, but the services still run and log.
            tracing::warn!(
                "cannot start the console writer: {e}; services' output only goes to their log files"
            );
        }
        Console {
            width,
            colour,
            use_colour,
            queue,
        }
    }

    pub fn format(&self, service: &str, line: &str) -> String {
        let mut text = Vec::new();
        self.append(&mut text, service, line);
        String::from_utf8_lossy(&text).into_owned()
    }

    fn append(&self, text: &mut Vec<u8>, service: &str, line: &str) {
        let pad = self.width.saturating_sub(service.chars().count());
        // Writing into a Vec cannot fail.
        let _ = match self.colour.get(service).filter(|_| self.use_colour) {
            Some(c) => writeln!(text, "\x1b[{c}m{service}{:pad$} |\x1b[0m {line}", ""),
            None => writeln!(text, "{service}{:pad$} | {line}", ""),
        };
    }

    /// Waits until everything queued has been written: on the way out, so the last lines
    /// are not lost.
    pub fn flush(&self) {
        let mut pending = self.queue.lock();
        while !pending.text.is_empty() || pending.writing {
            pending = self
                .queue
                .written
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes whatever is queued, as it comes. A write error (stdout closed) drops the text:
    /// there is nowhere else to print it.
    fn write_forever(&self, mut out: Box<dyn Write + Send>) {
        let mut text = Vec::new();
        loop {
            {
                let mut pending = self.lock();
                pending.writing = false;
                self.written.notify_all();
                while pending.text.is_empty() {
                    pending = self
                        .queued
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                text.clear();
                std::mem::swap(&mut text, &mut pending.text);
                pending.writing = true;
            }
            let _ = out.write_all(&text).and_then(|()| out.flush());
            if text.capacity() > MAX_QUEUED {
                text = Vec::new();
            }
        }
    }
}

impl LineSink for Console {
    fn lines(&self, service: &str, _stream: Stream, lines: &Lines) {
        let mut pending = self.queue.lock();
        let was_empty = pending.text.is_empty();
        for line in lines.iter() {
            if pending.text.len() >= MAX_QUEUED {
                pending.dropped += 1;
                continue;
            }
            if pending.dropped > 0 {
                let dropped = std::mem::take(&mut pending.dropped);
                let _ = writeln!(pending.text, "[runpm: {dropped} lines dropped]");
            }
            self.append(&mut pending.text, service, line);
        }
        if was_empty && !pending.text.is_empty() {
            self.queue.queued.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::{Duration, Instant};

    #[test]
    fn pads_to_the_widest_name_and_colours_only_when_asked() {
        let plain = Console::new(["web", "worker"], false);
        assert_eq!(plain.format("web", "hello"), "web    | hello\n");
        assert_eq!(plain.format("worker", "hi"), "worker | hi\n");
        let coloured = Console::new(["web", "worker"], true);
        assert_eq!(coloured.format("web", "x"), "\x1b[36mweb    |\x1b[0m x\n");
    }

    #[test]
    fn a_terminal_that_stops_reading_blocks_nobody_and_hears_what_it_missed() {
        let (mut rx, tx) = std::io::pipe().unwrap();
        let console = Console::with_writer(["web"], false, Box::new(tx));
        // Nobody reads the pipe: the writer thread blocks once the pipe is full, the queue
        // fills up, and the rest is dropped, all without waiting.
        let started = Instant::now();
        let line = "x".repeat(1000);
        let mut batch = Lines::new();
        for _ in 0..100 {
            batch.push(&line);
        }
        for _ in 0..50 {
            console.lines("web", Stream::Stdout, &batch);
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // The reader comes back: what was queued arrives, then the count of what was not,
        // then new lines.
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let mut buf = vec![0; 64 * 1024];
            while !text.ends_with("web | after\n") {
                let n = rx.read(&mut buf).unwrap();
                assert!(n > 0, "the pipe closed");
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            text
        });
        console.flush();
        console.lines("web", Stream::Stdout, &Lines::one("after"));
        console.flush();
        let text = reader.join().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let shown = lines.iter().filter(|l| l.ends_with(&*line)).count();
        // A marker wherever lines went missing (more than one when the writer took some of
        // the queue while it was filling up); at most the pipe, the writer's hands and the
        // queue hold lines, about 2 MiB of the 5 MB, so some were.
        let markers: Vec<usize> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("[runpm: ")?.strip_suffix(" lines dropped]"))
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(!markers.is_empty());
        assert_eq!(lines[lines.len() - 1], "web | after");
        assert_eq!(shown + markers.iter().sum::<usize>(), 5000);
        assert_eq!(lines.len(), shown + markers.len() + 1);
    }
}
