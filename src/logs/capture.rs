//! Reading a service's stdout or stderr pipe and cutting it into lines.
//!
//! A line longer than [`MAX_LINE`] is cut into pieces so that a process writing without
//! newlines cannot make runpm buffer without bound; bytes that are not UTF-8 are replaced
//! rather than dropped, so binary output never breaks the stream.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::net::unix::pipe;

pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub trait LineSink: Send + Sync + 'static {
    fn line(&self, service: &str, stream: Stream, line: &str);
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
        while out.open || err.open {
            // Biased, stdout first: when both pipes have lines, the order they were written
            // in is most often stdout's first (a random pick reorders them needlessly).
            tokio::select! {
                biased;
                ready = out.rx.readable(), if out.open => out.read(ready, &*sink, &service),
                ready = err.rx.readable(), if err.open => err.read(ready, &*sink, &service),
            }
        }
    })
}

/// Reads per wake-up before other readers get their turn.
const READS_PER_TURN: usize = 16;

thread_local! {
    /// The one read buffer of this thread's readers. A reader holds no buffer while it waits,
    /// which is nearly always: a thousand quiet services cost no buffer memory, and a chatty
    /// one still reads in large chunks.
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; 16 * 1024]);
}

/// One pipe of a service.
struct Reader {
    rx: pipe::Receiver,
    stream: Stream,
    /// Only a line cut off by the end of a read waits here.
    pending: Vec<u8>,
    open: bool,
}

impl Reader {
    fn new(rx: pipe::Receiver, stream: Stream) -> Reader {
        Reader {
            rx,
            stream,
            pending: Vec::new(),
            open: true,
        }
    }

    /// Reads what the pipe has once it is readable; at the end, the partial last line.
    fn read(&mut self, ready: std::io::Result<()>, sink: &dyn LineSink, service: &str) {
        let closed = ready.is_err()
            || READ_BUFFER.with_borrow_mut(|buf| {
                for _ in 0..READS_PER_TURN {
                    match self.rx.try_read(buf) {
                        Ok(0) => return true,
                        Ok(n) => feed(&buf[..n], &mut self.pending, sink, service, self.stream),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return true,
                    }
                }
                false
            });
        if closed {
            self.open = false;
            if !self.pending.is_empty() {
                emit(sink, service, self.stream, &mut self.pending);
            }
            self.pending = Vec::new();
        }
    }
}

/// Cuts `chunk` into lines, continuing the partial line in `pending`.
fn feed(
    mut chunk: &[u8],
    pending: &mut Vec<u8>,
    sink: &dyn LineSink,
    service: &str,
    stream: Stream,
) {
    loop {
        let newline = chunk.iter().position(|&b| b == b'\n');
        let (segment, rest) = match newline {
            Some(pos) => (&chunk[..pos], &chunk[pos + 1..]),
            None => (chunk, &chunk[chunk.len()..]),
        };
        pending.extend_from_slice(segment);
        while pending.len() > MAX_LINE || (pending.len() == MAX_LINE && newline.is_none()) {
            let tail = pending.split_off(MAX_LINE);
            emit(sink, service, stream, pending);
            *pending = tail;
        }
        if newline.is_none() {
            return;
        }
        emit(sink, service, stream, pending);
        chunk = rest;
    }
}

fn emit(sink: &dyn LineSink, service: &str, stream: Stream, line: &mut Vec<u8>) {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    sink.line(service, stream, &String::from_utf8_lossy(line));
    line.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(Stream, String)>>);

    impl LineSink for Collect {
        fn line(&self, _: &str, stream: Stream, line: &str) {
            self.0.lock().unwrap().push((stream, line.to_string()));
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
}
