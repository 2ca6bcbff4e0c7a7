//! The last lines of one service, in memory: what `runpmctl logs -n` and a crash report
//! show without reading files back.
//!
//! A ring bounded twice, by line count and by the bytes of the lines, so a service that
//! prints long lines cannot make the tail cost more than its byte budget. The newest line is
//! always kept, even when it alone is over budget (capture bounds lines to 16 KiB, far below
//! any sensible budget, so this only matters for tiny test budgets).

use std::collections::VecDeque;
use std::time::SystemTime;

use super::capture::Stream;

/// Lines kept per service unless configured otherwise.
pub const TAIL_LINES: usize = 1000;
/// Bytes of line text kept per service unless configured otherwise.
pub const TAIL_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailLine {
    pub at: SystemTime,
    pub stream: Stream,
    pub line: String,
}

#[derive(Debug)]
pub struct Tail {
    lines: VecDeque<TailLine>,
    /// Sum of `line.len()` over `lines`.
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

impl Default for Tail {
    fn default() -> Tail {
        Tail::new(TAIL_LINES, TAIL_BYTES)
    }
}

impl Tail {
    pub fn new(max_lines: usize, max_bytes: usize) -> Tail {
        Tail {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines: max_lines.max(1),
            max_bytes,
        }
    }

    pub fn push(&mut self, at: SystemTime, stream: Stream, line: &str) {
        self.bytes += line.len();
        self.lines.push_back(TailLine {
            at,
            stream,
            line: line.to_owned(),
        });
        while self.lines.len() > 1
            && (self.lines.len() > self.max_lines || self.bytes > self.max_bytes)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.line.len();
            }
        }
    }

    /// The last `n` lines (fewer when fewer are kept), oldest first.
    pub fn last(&self, n: usize) -> impl DoubleEndedIterator<Item = &TailLine> + ExactSizeIterator {
        self.lines.range(self.lines.len().saturating_sub(n)..)
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes of line text held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(tail: &Tail, n: usize) -> Vec<&str> {
        tail.last(n).map(|l| l.line.as_str()).collect()
    }

    #[test]
    fn keeps_the_last_lines_by_count() {
        let mut tail = Tail::new(3, usize::MAX);
        for i in 0..10 {
            tail.push(SystemTime::now(), Stream::Stdout, &i.to_string());
        }
        assert_eq!(texts(&tail, 10), ["7", "8", "9"]);
        assert_eq!(texts(&tail, 2), ["8", "9"]);
        assert_eq!(texts(&tail, 0), Vec::<&str>::new());
    }

    #[test]
    fn keeps_the_last_lines_by_bytes() {
        let mut tail = Tail::new(1000, 10);
        for line in ["aaaa", "bbbb", "cccc", "dd"] {
            tail.push(SystemTime::now(), Stream::Stderr, line);
        }
        assert_eq!(texts(&tail, 10), ["bbbb", "cccc", "dd"]);
        assert_eq!(tail.bytes(), 10);
        // A line over the whole budget pushes everything else out, but is itself kept.
        tail.push(SystemTime::now(), Stream::Stderr, &"x".repeat(50));
        assert_eq!(tail.len(), 1);
        assert_eq!(tail.bytes(), 50);
        tail.push(SystemTime::now(), Stream::Stderr, "y");
        assert_eq!(texts(&tail, 10), ["y"]);
    }

    #[test]
    fn default_budget_holds_a_thousand_lines_or_a_mebibyte() {
        let mut tail = Tail::default();
        for _ in 0..2000 {
            tail.push(SystemTime::now(), Stream::Stdout, "short");
        }
        assert_eq!(tail.len(), TAIL_LINES);
        let long = "z".repeat(super::super::MAX_LINE);
        for _ in 0..100 {
            tail.push(SystemTime::now(), Stream::Stdout, &long);
        }
        assert!(tail.bytes() <= TAIL_BYTES);
        assert_eq!(tail.len(), TAIL_BYTES / long.len());
    }
}
