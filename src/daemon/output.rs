//! The output of one run of a service, on its way to the log sinks.
//!
//! Each spawn gets its own [`RunOutput`] in front of the shared sink: it knows which
//! process the lines come from, so it can tell the supervisor that this run printed its
//! `ready.log` line, and it keeps the run's last lines for the crash report. When both
//! pipes have closed, every line the run printed has been seen, and the last lines go to
//! the supervisor to complete the exit record (an exit is often reaped before the last
//! lines are read).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use regex_lite::Regex;
use tokio::sync::mpsc::UnboundedSender;

use crate::logs::{LineSink, Lines, Stream};

use crate::supervisor::Event;

/// Lines kept for the crash report.
pub const LAST_LINES: usize = 10;

pub(super) struct RunOutput {
    pid: i32,
    inner: Arc<dyn LineSink>,
    ready: Option<Regex>,
    matched: AtomicBool,
    last: Mutex<VecDeque<String>>,
    internal: UnboundedSender<Event>,
}

impl RunOutput {
    pub fn new(
        pid: i32,
        inner: Arc<dyn LineSink>,
        ready: Option<Regex>,
        internal: UnboundedSender<Event>,
    ) -> RunOutput {
        RunOutput {
            pid,
            inner,
            ready,
            matched: AtomicBool::new(false),
            last: Mutex::new(VecDeque::with_capacity(LAST_LINES)),
            internal,
        }
    }

    /// Both of the run's pipes reached end-of-file: every line it printed has been seen.
    pub fn closed(&self, service: &str) {
        let last_lines = self
            .last
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        let event = Event::OutputClosed {
            service: service.to_string(),
            pid: self.pid,
            last_lines,
        };
        let _ = self.internal.send(event);
    }
}

impl LineSink for RunOutput {
    fn lines(&self, service: &str, stream: Stream, lines: &Lines) {
        self.inner.lines(service, stream, lines);
        if let Ok(mut last) = self.last.lock() {
            for line in lines.last(LAST_LINES) {
                if last.len() == LAST_LINES {
                    last.pop_front();
                }
                last.push_back(line.to_string());
            }
        }
        if let Some(pattern) = &self.ready
            && !self.matched.load(Ordering::Relaxed)
            && lines.iter().any(|line| pattern.is_match(line))
        {
            self.matched.store(true, Ordering::Relaxed);
            let _ = self.internal.send(Event::LogReady {
                service: service.to_string(),
                pid: self.pid,
            });
        }
    }
}
