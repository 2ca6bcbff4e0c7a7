//! When a scheduled service runs: pure functions of its [`Schedule`] and the wall clock.
//!
//! Cron expressions are evaluated by `croner` in the schedule's time zone, read by `jiff`
//! from the system's time zone database (`/usr/share/zoneinfo`) when the service is
//! planned; nothing watches the clock. The core keeps the next run as a deadline
//! ([`ScheduleClock`]) and computes the one after when it comes: no timer task, no polling.
//! An interval counts from the start of the previous run, so a run that takes long does
//! not push the next ones later.

use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Overlap, Schedule, When};

/// The scheduling state of a service with a `schedule`, beside its phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleClock {
    /// The schedule this clock was made for: a reload that changes it makes a new clock.
    pub schedule: Schedule,
    /// The next run, on the wall clock (for status) and as a deadline of the core.
    pub next: Option<(SystemTime, Instant)>,
    /// A run is due: the next spawn may go. Set when the time comes, by `runpmctl start`,
    /// by `run_on_start` and by a catch-up; cleared when the run is spawned.
    pub due: bool,
    /// One run waits for the current one to end (`overlap = "queue"`).
    pub queued: bool,
    /// When the last run started.
    pub last_run: Option<SystemTime>,
}

/// What a run that comes due does, given whether the previous one still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// Nothing runs: start it.
    Start,
    /// Leave it out (`skip`).
    Skip,
    /// Start it when the current run ends (`queue`).
    Queue,
    /// Stop the current run, then start it (`kill`).
    Replace,
}

/// The decision for a run that comes due.
pub fn fire(overlap: Overlap, previous_runs: bool) -> Fire {
    match (previous_runs, overlap) {
        (false, _) => Fire::Start,
        (true, Overlap::Skip) => Fire::Skip,
        (true, Overlap::Queue) => Fire::Queue,
        (true, Overlap::Kill) => Fire::Replace,
    }
}

/// The first run strictly after `after`, or `None` when there is none (a cron expression
/// that never matches again, a time zone that disappeared).
pub fn next_after(schedule: &Schedule, after: SystemTime) -> Option<SystemTime> {
    match &schedule.when {
        When::Interval(every) => after.checked_add(*every),
        When::Cron(expr) => {
            let cron = croner::Cron::from_str(expr).ok()?;
            let tz = time_zone(schedule.timezone.as_deref()).ok()?;
            let start = jiff::Timestamp::try_from(after).ok()?.to_zoned(tz);
            let next = cron.find_next_occurrence(&start, false).ok()?;
            Some(SystemTime::from(next.timestamp()))
        }
    }
}

/// When the first run after `last_run` should have been, if that was at or before `now`:
/// a run missed while runpm was down.
pub fn missed(schedule: &Schedule, last_run: SystemTime, now: SystemTime) -> Option<SystemTime> {
    next_after(schedule, last_run).filter(|&at| at <= now)
}

/// The time zone of a schedule: by IANA name, or the system's local one.
pub fn time_zone(name: Option<&str>) -> Result<jiff::tz::TimeZone, String> {
    match name {
        None => Ok(jiff::tz::TimeZone::system()),
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| {
            format!(
                "unknown time zone `{name}` ({e}): use an IANA name from /usr/share/zoneinfo \
                 such as `UTC` or `Europe/Berlin`"
            )
        }),
    }
}

/// Checks a cron expression: 5 fields, or 6 with seconds first.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "`{expr}` has {fields} fields: a cron expression has 5 (minute hour day month \
             weekday), or 6 with seconds first"
        ));
    }
    croner::Cron::from_str(expr)
        .map(|_| ())
        .map_err(|e| format!("invalid cron expression `{expr}`: {e}"))
}

/// "4m", "1h 2m", "12s": how long until `at`, in words for status.
pub fn until(at: SystemTime, now: SystemTime) -> String {
    let left = at.duration_since(now).unwrap_or(Duration::ZERO);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let rounded = if secs >= 3600 {
        Duration::from_secs(secs / 60 * 60)
    } else {
        Duration::from_secs(secs)
    };
    humantime::format_duration(rounded).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn cron(expr: &str, tz: Option<&str>) -> Schedule {
        Schedule {
            when: When::Cron(expr.into()),
            timezone: tz.map(String::from),
            overlap: Overlap::Skip,
            run_on_start: false,
            catch_up: false,
        }
    }

    #[test]
    fn cron_runs_at_the_next_matching_minute() {
        let every5 = cron("*/5 * * * *", Some("UTC"));
        let now = at("2026-12-07T04:41:30Z");
        assert_eq!(next_after(&every5, now), Some(at("2026-12-07T04:45:00Z")));
        // Strictly after: a run at 04:45 is followed by the one at 04:50.
        assert_eq!(
            next_after(&every5, at("2026-12-07T04:45:00Z")),
            Some(at("2026-12-07T04:50:00Z"))
        );
        let seconds = cron("*/10 * * * * *", Some("UTC"));
        assert_eq!(
            next_after(&seconds, at("2026-12-07T04:41:31Z")),
            Some(at("2026-12-07T04:41:40Z"))
        );
    }

    #[test]
    fn the_time_zone_moves_the_hour() {
        // 09:00 in Berlin (UTC+1 in December) is 08:00 UTC.
        let nine = cron("0 9 * * *", Some("Europe/Berlin"));
        assert_eq!(
            next_after(&nine, at("2026-12-07T04:00:00Z")),
            Some(at("2026-12-07T08:00:00Z"))
        );
        let utc = cron("0 9 * * *", Some("UTC"));
        assert_eq!(
            next_after(&utc, at("2026-12-07T04:00:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
        assert!(
            time_zone(Some("Mars/Olympus"))
                .unwrap_err()
                .contains("IANA")
        );
    }

    #[test]
    fn intervals_count_from_the_previous_run() {
        let every = Schedule {
            when: When::Interval(Duration::from_secs(600)),
            ..cron("* * * * *", None)
        };
        assert_eq!(
            next_after(&every, at("2026-12-07T04:00:00Z")),
            Some(at("2026-12-07T04:10:00Z"))
        );
    }

    #[test]
    fn a_run_missed_while_down_is_found() {
        let hourly = cron("0 * * * *", Some("UTC"));
        let last = at("2026-12-07T03:00:00Z");
        assert_eq!(
            missed(&hourly, last, at("2026-12-07T04:30:00Z")),
            Some(at("2026-12-07T04:00:00Z"))
        );
        assert_eq!(missed(&hourly, last, at("2026-12-07T03:59:59Z")), None);
    }

    #[test]
    fn overlap_decides_only_when_the_previous_run_is_still_going() {
        for overlap in [Overlap::Skip, Overlap::Queue, Overlap::Kill] {
            assert_eq!(fire(overlap, false), Fire::Start);
        }
        assert_eq!(fire(Overlap::Skip, true), Fire::Skip);
        assert_eq!(fire(Overlap::Queue, true), Fire::Queue);
        assert_eq!(fire(Overlap::Kill, true), Fire::Replace);
    }

    #[test]
    fn cron_expressions_are_checked() {
        assert!(check_cron("*/5 * * * *").is_ok());
        assert!(check_cron("0 */5 * * * *").is_ok());
        assert!(check_cron("* * *").unwrap_err().contains("3 fields"));
        assert!(
            check_cron("61 * * * *")
                .unwrap_err()
                .starts_with("invalid cron")
        );
    }

    #[test]
    fn time_left_reads_well() {
        let now = at("2026-12-07T04:00:00Z");
        assert_eq!(until(at("2026-12-07T04:04:00Z"), now), "4m");
        assert_eq!(until(at("2026-12-07T04:00:11.2Z"), now), "12s");
        assert_eq!(until(at("2026-12-07T06:02:30Z"), now), "2h 2m");
        assert_eq!(until(now, at("2026-12-07T04:00:01Z")), "0s");
    }
}
