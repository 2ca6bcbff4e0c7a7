//! The lines that one turn of a capture read from one pipe, handed to the sinks together.
//!
//! A service that prints fast prints thousands of short lines per read. Handed over one by
//! one, each would cost its own lock, clock read and `write` to the log file; handed over as
//! one batch they cost one of each. The text of every line sits in one buffer, so a batch
//! of 2-byte lines is not thousands of allocations either.

use std::ops::Range;

/// Lines in the order they were printed, each without its newline.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lines {
    text: String,
    /// Where each line is in `text`.
    spans: Vec<Range<usize>>,
}

impl Lines {
    pub fn new() -> Lines {
        Lines::default()
    }

    /// A batch of one line.
    pub fn one(line: &str) -> Lines {
        let mut lines = Lines::new();
        lines.push(line);
        lines
    }

    pub fn push(&mut self, line: &str) {
        let start = self.text.len();
        self.text.push_str(line);
        self.spans.push(start..self.text.len());
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes of line text, without newlines.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.spans.iter().map(|span| &self.text[span.clone()])
    }

    /// The last `n` lines (all when there are fewer), oldest first: a sink that keeps only
    /// the newest lines need not look at the others.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &str> {
        self.iter().skip(self.len().saturating_sub(n))
    }

    /// Empties the batch and keeps its buffers for the next one, unless a burst made them
    /// large: a quiet service does not keep a flood's memory.
    pub fn clear(&mut self) {
        const KEEP: usize = 64 * 1024;
        self.text.clear();
        self.spans.clear();
        if self.text.capacity() > KEEP {
            self.text = String::new();
        }
        if self.spans.capacity() > KEEP / 16 {
            self.spans = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_apart_and_in_order() {
        let mut lines = Lines::new();
        for line in ["one", "", "three", "ü"] {
            lines.push(line);
        }
        assert_eq!(lines.len(), 4);
        assert_eq!(lines.bytes(), 10);
        assert_eq!(lines.iter().collect::<Vec<_>>(), ["one", "", "three", "ü"]);
        assert_eq!(lines.last(2).collect::<Vec<_>>(), ["three", "ü"]);
        assert_eq!(lines.last(10).count(), 4);
        lines.clear();
        assert!(lines.is_empty());
        assert_eq!(Lines::one("x").iter().collect::<Vec<_>>(), ["x"]);
    }
}
