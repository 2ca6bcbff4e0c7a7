//! Reading a service's stdout or stderr pipe and cutting it into lines.
//!
//! A line longer than [`MAX_LINE`] is cut into pieces so that a process writing without
//! newlines cannot make runpm buffer without bound; bytes that are not UTF-8 are replaced
//! rather than dropped, so binary output never breaks the stream.
//!
//! **Nothing a service prints may starve the supervisor.** The readers run on the event
//! loop's single thread, and a pipe that never runs dry (`yes`) is always readable: tokio's
//! `readable()` does not count against a task's cooperative budget, so a loop that reads
//! until `WouldBlock` never gives the thread back. So each wake-up is one *turn* that reads
//! at most [`TURN_BYTES`] (and so cuts at most that many lines), hands them to the sink as
//! one batch, and yields before the next turn: the reaper, the control socket, signals and
//! the other services' readers run in between.
//!
//! Under sustained overload runpm applies **backpressure** rather than dropping lines: what
//! runpm has not read stays in the pipe, and a service whose pipe is full blocks in its
//! `write` until runpm catches up. The flooding service is slowed down to runpm's pace;
//! nothing it printed is lost, and no other service waits longer than one turn per flooding
//! pipe. Such an episode is reported once it has lasted [`OVERLOAD_REPORT`], and its end
//! when the pipe runs dry again.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;

pub use super::batch::Lines;

pub const MAX_LINE: usize = 16 * 1024;

/// Bytes read from one pipe per turn. Every line has at least its newline, so this also
/// bounds the lines of a turn (plus the partial line carried over).
pub const TURN_BYTES: usize = 16 * 1024;

/// How long a pipe may stay behind (full after every turn) before runpm says so.
pub const OVERLOAD_REPORT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub trait LineSink: Send + Sync + 'static {
    /// The lines of one turn of one pipe, in the order they were printed.
    fn lines(&self, service: &str, stream: Stream, lines: &Lines);

    fn line(&self, service: &str, stream: Stream, line: &str) {
        self.lines(service, stream, &Lines::one(line));
    }
}

/// Reads a service's stdout and stderr until every writer has closed both (the service and
/// anything it left behind holding them). The fds must be the read ends of pipes, already
/// non-blocking. One future (one task) reads both: a task per pipe cost a thousand quiet
/// services most of a megabyte. The future must be polled inside the runtime.
pub fn capture(
    stdout: OwnedFd,
    stderr: OwnedFd,
    service: Arc<str>,
    sink: Arc<dyn LineSink>,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut out = Reader::new(
        pipe::Receiver::from_owned_fd_unchecked(stdout)?,
        Stream::Stdout,
    );
    let mut err = Reader::new(
        pipe::Receiver::from_owned_fd_unchecked(stderr)?,
        Stream::Stderr,
    );
    Ok(async move {
        // Whether stderr goes first at the next wake-up: after a turn on a stdout that may
        // still be full, so that a flood on one pipe cannot hold back the other.
        let mut err_first = false;
        while out.open || err.open {
            // Otherwise stdout first: when both pipes have lines, the order they were
            // written in is most often stdout's first (a random pick reorders them
            // needlessly).
            // Two branches with the order swapped, rather than three: every branch's
            // future lives in this task for as long as the service runs.
            let (first, second) = if err_first {
                (&mut err, &mut out)
            } else {
                (&mut out, &mut err)
            };
            let turn = tokio::select! {
                biased;
                ready = first.rx.readable(), if first.open => first.turn(ready, &*sink, &service),
                ready = second.rx.readable(), if second.open => {
                    second.turn(ready, &*sink, &service)
                }
            };
            if let Turn::Read { stream, full } = turn {
                // Only after a full read of stdout (a flood, most likely) does stderr go
                // first; otherwise lines written to both at once keep stdout's first.
                err_first = stream == Stream::Stdout && full;
                // The pipe may still be readable (a flood), and then the next `readable()`
                // would be ready at once: without this the loop would never give the thread
                // back. One turn per wake-up also keeps a fast writer on another CPU, whose
                // every write makes the pipe readable again, from holding the thread.
                tokio::task::yield_now().await;
            }
        }
    })
}

/// How a turn on one pipe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Nothing to read: the reader waits for the next write.
    Drained,
    /// Lines were read; `full`: the read filled the turn's budget, so the pipe may hold
    /// more (the writer is ahead of runpm).
    Read { stream: Stream, full: bool },
    /// Every writer has closed the pipe.
    Closed,
}

thread_local! {
    /// The one read buffer of this thread's readers. A reader holds no buffer while it waits,
    /// which is nearly always: a thousand quiet services cost no buffer memory, and a chatty
    /// one still reads in large chunks.
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; TURN_BYTES]);
    /// The lines of the turn being read, likewise shared.
    static BATCH: RefCell<Lines> = RefCell::new(Lines::new());
}

/// One pipe of a service.
struct Reader {
    rx: pipe::Receiver,
    stream: Stream,
    /// Only a line cut off by the end of a read waits here.
    pending: Vec<u8>,
    open: bool,
    pace: Pace,
}

impl Reader {
    fn new(rx: pipe::Receiver, stream: Stream) -> Reader {
        Reader {
            rx,
            stream,
            pending: Vec::new(),
            open: true,
            pace: Pace::Keeping,
        }
    }

    /// One turn once the pipe is readable: one read of at most [`TURN_BYTES`], its lines
    /// handed over as one batch; at the end, the partial last line too.
    fn turn(&mut self, ready: std::io::Result<()>, sink: &dyn LineSink, service: &str) -> Turn {
        let turn = match ready {
            Err(_) => Turn::Closed,
            Ok(()) => READ_BUFFER.with_borrow_mut(|buf| {
                loop {
                    match self.rx.try_read(buf) {
                        Ok(0) => break Turn::Closed,
                        Ok(n) => {
                            BATCH.with_borrow_mut(|batch| {
                                feed(&buf[..n], &mut self.pending, batch);
                            });
                            break Turn::Read {
                                stream: self.stream,
                                full: n == buf.len(),
                            };
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            break Turn::Drained;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break Turn::Closed,
                    }
                }
            }),
        };
        BATCH.with_borrow_mut(|batch| {
            if turn == Turn::Closed && !self.pending.is_empty() {
                push_line(batch, &mut self.pending);
            }
            if !batch.is_empty() {
                sink.lines(service, self.stream, batch);
            }
            batch.clear();
        });
        if turn == Turn::Closed {
            self.open = false;
            self.pending = Vec::new();
        }
        self.note_pace(turn, service);
        turn
    }

    /// Reports an episode of sustained overload once, and its end.
    fn note_pace(&mut self, turn: Turn, service: &str) {
        let stream = match self.stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let behind = matches!(turn, Turn::Read { full: true, .. });
        self.pace = match (behind, self.pace) {
            (true, Pace::Keeping) => Pace::Behind {
                since: Instant::now(),
            },
            (true, Pace::Behind { since }) if since.elapsed() >= OVERLOAD_REPORT => {
                tracing::warn!(
                    "{service}: prints to {stream} faster than runpm can record it; \
                     runpm reads it at its own pace, which slows the service down"
                );
                Pace::Reported { since }
            }
            (true, pace) => pace,
            (false, Pace::Reported { since }) => {
                tracing::info!(
                    "{service}: runpm caught up with its {stream} after {:.1}s of backpressure",
                    since.elapsed().as_secs_f64()
                );
                Pace::Keeping
            }
            (false, _) => Pace::Keeping,
        };
    }
}

/// Whether runpm keeps up with a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// The last turn left the pipe empty (or nearly so).
    Keeping,
    /// Every turn since `since` filled its budget: the writer is ahead of runpm.
    Behind { since: Instant },
    /// Behind for longer than [`OVERLOAD_REPORT`], and reported.
    Reported { since: Instant },
}

/// Cuts `chunk` into lines, continuing the partial line in `pending`.
fn feed(mut chunk: &[u8], pending: &mut Vec<u8>, batch: &mut Lines) {
    loop {
        let newline = chunk.iter().position(|&b| b == b'\n');
        let (segment, rest) = match newline {
            Some(pos) => (&chunk[..pos], &chunk[pos + 1..]),
            None => (chunk, &chunk[chunk.len()..]),
        };
        if pending.is_empty() && segment.len() < MAX_LINE && newline.is_some() {
            // The common case, a whole line within this chunk: no copy into `pending`.
            push_text(batch, segment);
        } else {
            pending.extend_from_slice(segment);
            while pending.len() > MAX_LINE || (pending.len() == MAX_LINE && newline.is_none()) {
                let tail = pending.split_off(MAX_LINE);
                push_line(batch, pending);
                *pending = tail;
            }
            if newline.is_none() {
                return;
            }
            push_line(batch, pending);
        }
        chunk = rest;
    }
}

fn push_line(batch: &mut Lines, line: &mut Vec<u8>) {
    push_text(batch, line);
    line.clear();
}

fn push_text(batch: &mut Lines, mut line: &[u8]) {
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    batch.push(&String::from_utf8_lossy(line));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(Stream, String)>>);

    impl LineSink for Collect {
        fn lines(&self, _: &str, stream: Stream, lines: &Lines) {
            let mut all = self.0.lock().unwrap();
            all.extend(lines.iter().map(|line| (stream, line.to_string())));
        }
    }

    #[test]
    fn cuts_lines_bounds_long_ones_and_keeps_binary_on_both_pipes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sink = Arc::new(Collect::default());
        let pipe = || {
            let (rx, tx) = nix::unistd::pipe().unwrap();
            nix::fcntl::fcntl(
                &rx,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .unwrap();
            (rx, std::fs::File::from(tx))
        };
        let ((out_rx, mut out), (err_rx, mut err)) = (pipe(), pipe());
        let long = "x".repeat(MAX_LINE + 10);
        let writer = std::thread::spawn(move || {
            out.write_all(b"one\r\ntwo\n").unwrap();
            out.write_all(long.as_bytes()).unwrap();
            out.write_all(b"\n\xff\xfebin\nno newline at end").unwrap();
            drop(out);
            // stderr stays open after stdout closed, and its last line has no newline.
            err.write_all(b"e1\ne2").unwrap();
        });
        rt.block_on(async {
            capture(out_rx, err_rx, "svc".into(), sink.clone())
                .unwrap()
                .await
        });
        writer.join().unwrap();
        let lines = sink.0.lock().unwrap().clone();
        let (out, err): (Vec<_>, Vec<_>) =
            lines.into_iter().partition(|(s, _)| *s == Stream::Stdout);
        let out: Vec<String> = out.into_iter().map(|(_, l)| l).collect();
        let err: Vec<String> = err.into_iter().map(|(_, l)| l).collect();
        assert_eq!(out[0], "one");
        assert_eq!(out[1], "two");
        assert_eq!(out[2].len(), MAX_LINE);
        assert_eq!(out[3], "x".repeat(10));
        assert_eq!(out[4], "\u{fffd}\u{fffd}bin");
        assert_eq!(out[5], "no newline at end");
        assert_eq!(out.len(), 6);
        assert_eq!(err, ["e1", "e2"]);
    }

    /// A pipe that never runs dry must not keep the thread: a timer on the same
    /// current-thread runtime still fires, and the lines arrive in batches of one turn.
    #[test]
    fn a_pipe_that_never_runs_dry_leaves_the_thread_to_others() {
        use std::sync::atomic::{AtomicBool, Ordering};
        #[derive(Default)]
        struct Count(Mutex<(usize, usize)>);
        impl LineSink for Count {
            fn lines(&self, _: &str, _: Stream, lines: &Lines) {
                // Slower than the writer, as writing a log file is slower than `yes`: the
                // pipe never runs dry, so reading never meets `WouldBlock`.
                std::thread::sleep(std::time::Duration::from_micros(200));
                let mut count = self.0.lock().unwrap();
                count.0 += lines.len();
                count.1 = count.1.max(lines.len());
            }
        }
        let (rx, tx) = nix::unistd::pipe().unwrap();
        nix::fcntl::fcntl(
            &rx,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let (err_rx, err_tx) = nix::unistd::pipe().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let mut tx = std::fs::File::from(tx);
            std::thread::spawn(move || {
                let chunk = b"y\n".repeat(4096);
                // Until told to stop, or until the read side is gone.
                while !stop.load(Ordering::Relaxed) && tx.write_all(&chunk).is_ok() {}
            })
        };
        let sink = Arc::new(Count::default());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let runtime = {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    tokio::spawn(capture(rx, err_rx, "flood".into(), sink).unwrap());
                    // The capture task runs first and would never give the thread back.
                    tokio::task::yield_now().await;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    done_tx.send(()).unwrap();
                });
            })
        };
        let fired = done_rx.recv_timeout(std::time::Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        // The writer may be blocked on a full pipe: the runtime's end closes the read side.
        assert!(
            fired.is_ok(),
            "the timer never fired: the capture held the thread"
        );
        runtime.join().unwrap();
        drop(err_tx);
        let _ = writer.join();
        let (lines, largest) = *sink.0.lock().unwrap();
        assert!(lines > 0);
        assert!(largest <= TURN_BYTES, "a batch of {largest} lines");
    }
}
