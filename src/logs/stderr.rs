//! Where runpm's own events go: stderr, one write per turn of the event loop.
//!
//! A turn can produce many events at once (a hundred "started" lines at boot, a hundred
//! "stopping" lines on shutdown, written before the signals go out). Written one by one
//! they cost a system call each on the path that decides how soon services start and stop.
//! The event loop's thread collects them instead and writes them at the end of its turn,
//! [`flush`]; every other thread, and the loop's thread outside of a turn, writes at once.
//! A panic hook flushes too, so the lines before a crash are not lost.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Beyond this a turn's lines are written at once rather than held.
const MAX_HELD: usize = 64 * 1024;

thread_local! {
    static HOLDING: Cell<bool> = const { Cell::new(false) };
    static HELD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The `MakeWriter` for runpm's tracing subscriber.
#[derive(Clone, Copy, Default)]
pub struct EventWriter;

impl<'a> MakeWriter<'a> for EventWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter
    }
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if HOLDING.get() {
            let full = HELD.with_borrow_mut(|held| {
                held.extend_from_slice(buf);
                held.len() >= MAX_HELD
            });
            if full {
                flush();
            }
            return Ok(buf.len());
        }
        io::stderr().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// From now on this thread's events wait for [`flush`]; until [`release`].
pub fn hold() {
    HOLDING.set(true);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            previous(info);
        }));
    });
}

/// Writes what this thread holds, and goes back to writing at once.
pub fn release() {
    flush();
    HOLDING.set(false);
}

/// Writes what this thread holds. An error (stderr gone) drops the lines: there is nowhere
/// else to say so.
pub fn flush() {
    HELD.with_borrow_mut(|held| {
        if !held.is_empty() {
            let _ = io::stderr().write_all(held);
            held.clear();
            // A long burst's buffer is not kept for the months of quiet that follow.
            if held.capacity() > MAX_HELD {
                *held = Vec::new();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_lines_until_flushed_and_only_on_the_holding_thread() {
        hold();
        EventWriter.write_all(b"one\n").unwrap();
        EventWriter.write_all(b"two\n").unwrap();
        assert_eq!(HELD.with_borrow(|h| h.clone()), b"one\ntwo\n");
        // Another thread writes at once: nothing of it is held here or there.
        std::thread::spawn(|| {
            EventWriter.write_all(b"").unwrap();
            assert!(HELD.with_borrow(|h| h.is_empty()));
        })
        .join()
        .unwrap();
        flush();
        assert!(HELD.with_borrow(|h| h.is_empty()));
        // A burst past the limit is written as it comes.
        EventWriter.write_all(&vec![b'x'; MAX_HELD]).unwrap();
        assert!(HELD.with_borrow(|h| h.is_empty()));
        release();
        assert!(!HOLDING.get());
    }
}
