//! CPU and memory figures: the CPU % of a service from two samples of its CPU time, and
//! the fallback that reads them from `/proc` when the daemon's status does not carry them.
//!
//! With cgroup accounting, the daemon's status gives each service's `cpu_usec` (CPU time
//! of the whole cgroup) and `memory_bytes`. Without it, `top` reads the main process's
//! `/proc/PID/stat` (utime + stime) and `/proc/PID/statm` (resident pages) itself: the
//! figures then cover the main process only, not the children it forked.

use std::collections::HashMap;
use std::time::Instant;

/// A service's CPU time at a moment, for one process (a restart starts a new series).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub pid: i32,
    pub cpu_usec: u64,
    pub at: Instant,
}

/// CPU % between two samples of the same process: 100 is one whole core. None when they
/// are of different processes, out of order, or the counter went back (a new cgroup).
pub fn cpu_percent(before: Sample, now: Sample) -> Option<f64> {
    if before.pid != now.pid {
        return None;
    }
    let wall = now.at.checked_duration_since(before.at)?.as_micros();
    let used = now.cpu_usec.checked_sub(before.cpu_usec)?;
    if wall == 0 {
        return None;
    }
    Some(used as f64 * 100.0 / wall as f64)
}

/// The last sample of each service, turning each new one into a CPU %.
#[derive(Debug, Default)]
pub struct CpuTracker {
    last: HashMap<String, Sample>,
}

impl CpuTracker {
    /// Records `sample` for `service` and returns the CPU % since the previous one.
    pub fn observe(&mut self, service: &str, sample: Sample) -> Option<f64> {
        let before = self.last.insert(service.to_owned(), sample)?;
        cpu_percent(before, sample)
    }

    /// Forgets a service that has no process any more.
    pub fn forget(&mut self, service: &str) {
        self.last.remove(service);
    }
}

/// `utime + stime` of `/proc/PID/stat`, in clock ticks. The command name (field 2) may
/// hold spaces and parentheses, so the fields are counted after the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After `)`: field 3 (state) comes first, so utime (14) and stime (15) are the 12th
    // and 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident pages, the second field of `/proc/PID/statm`.
pub fn parse_statm_resident(statm: &str) -> Option<u64> {
    statm.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// A process's CPU time (µs) and resident memory (bytes) from `/proc`; None when it is
/// gone or unreadable (it may exit between the status and this read).
pub fn read_proc(pid: i32) -> (Option<u64>, Option<u64>) {
    use nix::unistd::{SysconfVar, sysconf};
    let tick = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let page = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096)
        .max(1) as u64;
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat_ticks(&s))
        .map(|ticks| ticks.saturating_mul(1_000_000) / tick);
    let memory = std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| parse_statm_resident(&s))
        .map(|pages| pages.saturating_mul(page));
    (cpu, memory)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(base: Instant, ms: u64, pid: i32, cpu_usec: u64) -> Sample {
        Sample {
            pid,
            cpu_usec,
            at: base + Duration::from_millis(ms),
        }
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let t = Instant::now();
        // 250 ms of CPU in 1 s: 25 %; 2 s of CPU in 1 s (two cores): 200 %.
        assert_eq!(
            cpu_percent(at(t, 0, 1, 0), at(t, 1000, 1, 250_000)),
            Some(25.0)
        );
        assert_eq!(
            cpu_percent(at(t, 0, 1, 0), at(t, 1000, 1, 2_000_000)),
            Some(200.0)
        );
        assert_eq!(cpu_percent(at(t, 0, 1, 5), at(t, 500, 1, 5)), Some(0.0));
    }

    #[test]
    fn no_cpu_percent_across_processes_or_backwards() {
        let t = Instant::now();
        assert_eq!(cpu_percent(at(t, 0, 1, 0), at(t, 1000, 2, 10)), None);
        assert_eq!(cpu_percent(at(t, 0, 1, 50), at(t, 1000, 1, 10)), None);
        assert_eq!(cpu_percent(at(t, 1000, 1, 0), at(t, 0, 1, 10)), None);
        assert_eq!(cpu_percent(at(t, 0, 1, 0), at(t, 0, 1, 10)), None);
    }

    #[test]
    fn the_tracker_needs_two_samples() {
        let t = Instant::now();
        let mut cpu = CpuTracker::default();
        assert_eq!(cpu.observe("web", at(t, 0, 1, 0)), None);
        assert_eq!(cpu.observe("web", at(t, 1000, 1, 100_000)), Some(10.0));
        cpu.forget("web");
        assert_eq!(cpu.observe("web", at(t, 2000, 1, 300_000)), None);
    }

    #[test]
    fn stat_is_read_after_the_last_parenthesis() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 12345 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(10));
        assert_eq!(parse_stat_ticks("42 (x) S 1"), None);
        assert_eq!(parse_statm_resident("1000 250 100 1 0 50 0\n"), Some(250));
        assert_eq!(parse_statm_resident(""), None);
    }

    #[test]
    fn our_own_process_reads_from_proc() {
        let (cpu, memory) = read_proc(std::process::id() as i32);
        assert!(cpu.is_some());
        assert!(memory.is_some_and(|m| m > 0));
        assert_eq!(read_proc(i32::MAX), (None, None));
    }
}
