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

/// Reads `fd` until every writer has closed it (the service and anything it left behind
/// holding the pipe). `fd` must be the read end of a pipe, already non-blocking. The future
/// must be polled inside the runtime.
pub fn capture(
    fd: OwnedFd,
    service: Arc<str>,
    stream: Stream,
    sink: Arc<dyn LineSink>,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let receiver = pipe::Receiver::from_owned_fd_unchecked(fd)?;
    Ok(read_lines(receiver, service, stream, sink))
}

/// Reads per wake-up before other readers get their turn.
const READS_PER_TURN: usize = 16;

thread_local! {
    /// The one read buffer of this thread's readers. A reader holds no buffer while it waits,
    /// which is nearly always: a thousand quiet services cost no buffer memory, and a chatty
    /// one still reads in large chunks.
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; 16 * 1024]);
}

enum Read {
    /// Nothing more to read for now.
    Drained,
    /// End of file, or an error that ends the stream.
    Closed,
}

async fn read_lines(
    rx: pipe::Receiver,
    service: Arc<str>,
    stream: Stream,
    sink: Arc<dyn LineSink>,
) {
    // Only a line cut off by the end of a read waits here.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if rx.readable().await.is_err() {
            break;
        }
        let read = READ_BUFFER.with_borrow_mut(|buf| {
            for _ in 0..READS_PER_TURN {
                match rx.try_read(buf) {
                    Ok(0) => return Read::Closed,
                    Ok(n) => feed(&buf[..n], &mut pending, &*sink, &service, stream),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read::Drained,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return Read::Closed,
                }
            }
            Read::Drained
        });
        if matches!(read, Read::Closed) {
            break;
        }
    }
    if !pending.is_empty() {
        emit(&*sink, &service, stream, &mut pending);
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
    struct Collect(Mutex<Vec<String>>);

    impl LineSink for Collect {
        fn line(&self, _: &str, _: Stream, line: &str) {
            self.0.lock().unwrap().push(line.to_string());
        }
    }

    #[test]
    fn cuts_lines_bounds_long_ones_and_keeps_binary() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sink = Arc::new(Collect::default());
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let mut tx = std::fs::File::from(tx);
        let long = "x".repeat(MAX_LINE + 10);
        let writer = std::thread::spawn(move || {
            tx.write_all(b"one\r\ntwo\n").unwrap();
            tx.write_all(long.as_bytes()).unwrap();
            tx.write_all(b"\n\xff\xfebin\nno newline at end").unwrap();
        });
        rt.block_on(async {
            let receiver = pipe::Receiver::from_owned_fd(rx).unwrap();
            read_lines(receiver, "svc".into(), Stream::Stdout, sink.clone()).await
        });
        writer.join().unwrap();
        let lines = sink.0.lock().unwrap().clone();
        assert_eq!(lines[0], "one");
        assert_eq!(lines[1], "two");
        assert_eq!(lines[2].len(), MAX_LINE);
        assert_eq!(lines[3], "x".repeat(10));
        assert_eq!(lines[4], "\u{fffd}\u{fffd}bin");
        assert_eq!(lines[5], "no newline at end");
        assert_eq!(lines.len(), 6);
    }
}
