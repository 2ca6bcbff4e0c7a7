//! When to write the state file: coalesced, never lost.
//!
//! Every change of what runs marks the state dirty; the writer asks [`Coalescer::due`] when
//! to write and sleeps until then (a deadline, not a poll). A burst of changes (a restart
//! storm, a reload touching ten services) becomes one write: the write waits until changes
//! pause for [`WRITE_DELAY`], but never longer than [`MAX_DELAY`] after the oldest unwritten
//! change, so a continuous stream still reaches the disk several times a second.
//! [`Coalescer::mark_urgent`] skips the pause for changes that must not wait (a new pid: a
//! crash before it is recorded leaves a process nobody knows).
//!
//! A write is bracketed by [`Coalescer::begin`] (the snapshot is taken now) and
//! [`Coalescer::written`] or [`Coalescer::failed`] with the returned ticket. Changes made
//! while a write is in flight are not in its snapshot, so its success leaves them dirty:
//! nothing is lost even when the write runs on another thread. A failed write keeps
//! everything dirty and backs off (100 ms doubling to 5 s), so a full or read-only disk is
//! retried without being hammered and without stopping supervision.
//!
//! Pure: time is passed in, nothing is read or written here.

use std::time::{Duration, Instant};

/// Quiet time after the last change before writing.
pub const WRITE_DELAY: Duration = Duration::from_millis(20);
/// Longest time a change waits while changes keep coming.
pub const MAX_DELAY: Duration = Duration::from_millis(200);
/// Retry delay after the first failed write; doubles per failure up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone)]
pub struct Coalescer {
    /// Counts changes; a write covers every change up to the count at its `begin`.
    changes: u64,
    /// The count covered by the last successful write.
    written: u64,
    /// The count the running write covers.
    in_flight: Option<u64>,
    last_change: Option<Instant>,
    /// The oldest change not yet on disk: the anchor of `MAX_DELAY`.
    oldest_unwritten: Option<Instant>,
    /// The oldest change since the running write's snapshot: the anchor once it succeeds.
    oldest_since_begin: Option<Instant>,
    /// The latest urgent change (count, when).
    urgent: Option<(u64, Instant)>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Proof of which changes a write covers; hand it back to `written` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct WriteTicket {
    covers: u64,
}

impl Coalescer {
    pub fn new() -> Coalescer {
        Coalescer::default()
    }

    pub fn mark_dirty(&mut self, now: Instant) {
        self.changes += 1;
        self.last_change = Some(now);
        self.oldest_unwritten.get_or_insert(now);
        if self.in_flight.is_some() {
            self.oldest_since_begin.get_or_insert(now);
        }
    }

    /// A change to write without waiting for quiet (still after a failure's backoff).
    pub fn mark_urgent(&mut self, now: Instant) {
        self.mark_dirty(now);
        self.urgent = Some((self.changes, now));
    }

    /// Whether some change is not yet on disk.
    pub fn is_dirty(&self) -> bool {
        self.changes > self.written
    }

    /// The number of consecutive failed writes.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When to start the next write; `None` when clean or while a write runs (its end
    /// calls `written`/`failed`, and then `due` answers again). May be in the past.
    pub fn due(&self) -> Option<Instant> {
        if !self.is_dirty() || self.in_flight.is_some() {
            return None;
        }
        if let Some(retry_at) = self.retry_at {
            return Some(retry_at);
        }
        if let Some((_, at)) = self.urgent {
            return Some(at);
        }
        let quiet = self.last_change.map(|t| t + WRITE_DELAY);
        let cap = self.oldest_unwritten.map(|t| t + MAX_DELAY);
        match (quiet, cap) {
            (Some(q), Some(c)) => Some(q.min(c)),
            (q, c) => q.or(c),
        }
    }

    /// The writer takes its snapshot now.
    pub fn begin(&mut self, _now: Instant) -> WriteTicket {
        self.in_flight = Some(self.changes);
        self.oldest_since_begin = None;
        WriteTicket {
            covers: self.changes,
        }
    }

    pub fn written(&mut self, ticket: WriteTicket, _now: Instant) {
        self.in_flight = None;
        self.written = self.written.max(ticket.covers);
        self.failures = 0;
        self.retry_at = None;
        self.oldest_unwritten = if self.is_dirty() {
            self.oldest_since_begin
        } else {
            None
        };
        self.oldest_since_begin = None;
        if matches!(self.urgent, Some((n, _)) if n <= self.written) {
            self.urgent = None;
        }
    }

    pub fn failed(&mut self, _ticket: WriteTicket, now: Instant) {
        self.in_flight = None;
        self.oldest_since_begin = None;
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(16);
        let delay = RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX);
        self.retry_at = Some(now + delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Writes whatever is due at `now`, succeeding; returns whether it wrote.
    fn write_if_due(c: &mut Coalescer, now: Instant) -> bool {
        match c.due() {
            Some(at) if at <= now => {
                let t = c.begin(now);
                c.written(t, now);
                true
            }
            _ => false,
        }
    }

    #[test]
    fn clean_means_nothing_due() {
        let c = Coalescer::new();
        assert_eq!(c.due(), None);
        assert!(!c.is_dirty());
    }

    #[test]
    fn one_change_is_written_after_the_delay() {
        let t0 = Instant::now();
        let mut c = Coalescer::new();
        c.mark_dirty(t0);
        assert_eq!(c.due(), Some(t0 + WRITE_DELAY));
        let ticket = c.begin(t0 + WRITE_DELAY);
        assert_eq!(c.due(), None, "nothing new while the write runs");
        c.written(ticket, t0 + ms(25));
        assert!(!c.is_dirty());
        assert_eq!(c.due(), None);
    }

    #[test]
    fn a_burst_becomes_one_write() {
        let t0 = Instant::now();
        let mut c = Coalescer::new();
        for i in 0..5 {
            c.mark_dirty(t0 + ms(i * 5));
        }
        assert_eq!(c.due(), Some(t0 + ms(20) + WRITE_DELAY));
        let mut writes = 0;
        for step in 0..100 {
            writes += u32::from(write_if_due(&mut c, t0 + ms(step)));
        }
        assert_eq!(writes, 1);
        assert!(!c.is_dirty());
    }

    #[test]
    fn a_continuous_stream_still_writes_every_max_delay() {
        let t0 = Instant::now();
        let mut c = Coalescer::new();
        let mut write_times = vec![];
        // A change every 10 ms for one second: never 20 ms of quiet.
        for step in 0..=1000u64 {
            let now = t0 + ms(step);
            if step % 10 == 0 {
                c.mark_dirty(now);
            }
            if write_if_due(&mut c, now) {
                write_times.push(step);
            }
        }
        assert_eq!(write_times.first(), Some(&200));
        for pair in write_times.windows(2) {
            assert!(pair[1] - pair[0] <= 210, "{write_times:?}");
        }
        assert!(write_times.len() >= 4, "{write_times:?}");
    }

    #[test]
    fn urgent_changes_skip_the_delay() {
        let t0 = Instant::now();
        let mut c = Coalescer::new();
        c.mark_dirty(t0);
        c.mark_urgent(t0 + ms(3));
        assert_eq!(c.due(), Some(t0 + ms(3)));
        let ticket = c.begin(t0 + ms(3));
        c.written(ticket, t0 + ms(4));
        c.mark_dirty(t0 + ms(10));
        assert_eq!(c.due(), Some(t0 + ms(10) + WRITE_DELAY), "urgency is spent");
    }

    #[test]
    fn changes_during_a_write_are_not_lost() {
        let t0 = Instant::now();
        let mut c = Coalescer::new();
        c.mark_dirty(t0);
        let ticket = c.begin(t0 + ms(20));
        c.mark_dirty(t0 + ms(21)); // Not in the snapshot.
        c.written(ticket, t0 + ms(30));
        assert!(c.is_dirty());
        assert_eq!(c.due(), Some(t0 + ms(21) + WRITE_DELAY));
        let ticket = c.begin(t0 + ms(41));
        c.written(ticket, t0 + ms(42));
        assert!(!c.is_dirty());
    }

    #[test]
    fn the_cap_is_anchored_at_the_oldest_unwritten_change() {
        let t0 = Instant::now();
        let mut c = Coalescer::new();
        c.mark_dirty(t0);
        let ticket = c.begin(t0 + ms(20));
        c.mark_dirty(t0 + ms(25));
        c.failed(ticket, t0 + ms(30));
        // After the retry succeeds, only changes since its snapshot remain.
        let retry = c.due().unwrap();
        assert_eq!(retry, t0 + ms(30) + RETRY_FIRST);
        let ticket = c.begin(retry);
        c.mark_dirty(retry + ms(1));
        c.written(ticket, retry + ms(2));
        assert_eq!(c.due(), Some(retry + ms(1) + WRITE_DELAY));
    }

    #[test]
    fn failures_back_off_up_to_five_seconds_and_stay_dirty() {
        let t0 = Instant::now();
        let mut c = Coalescer::new();
        c.mark_urgent(t0);
        let mut now = t0;
        let mut delays = vec![];
        for _ in 0..10 {
            let due = c.due().expect("still dirty after a failure");
            now = now.max(due);
            let ticket = c.begin(now);
            c.failed(ticket, now);
            delays.push(c.due().unwrap() - now);
            // New changes, even urgent ones, do not bypass the backoff.
            c.mark_urgent(now);
            assert_eq!(c.due(), Some(now + *delays.last().unwrap()));
        }
        assert_eq!(
            delays,
            vec![
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(5000),
                ms(5000),
                ms(5000),
                ms(5000)
            ]
        );
        assert_eq!(c.failures(), 10);
        let ticket = c.begin(now + RETRY_MAX);
        c.written(ticket, now + RETRY_MAX);
        assert_eq!(c.failures(), 0);
        assert!(!c.is_dirty());
        assert_eq!(c.due(), None);
    }
}
