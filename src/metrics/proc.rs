//! Resource use of a service's processes from `/proc`, for a daemon that does not account
//! for them itself: the resident memory and CPU time of every process in the process group
//! of the service's main process (which is where runpm starts each service).

use std::fs;

/// What a group of processes uses now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub memory_bytes: u64,
    pub cpu_seconds: f64,
}

/// The usage of `pid`'s process group; `None` when `pid` is gone.
pub fn group_usage(pid: i32) -> Option<Usage> {
    let pgrp = stat(pid)?.pgrp;
    let (page, ticks) = (page_size(), clock_ticks());
    let mut usage = Usage {
        memory_bytes: 0,
        cpu_seconds: 0.0,
    };
    let entries = fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Some(other) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A process can end between the listing and the read: it then counts no more.
        let Some(st) = stat(other).filter(|st| st.pgrp == pgrp) else {
            continue;
        };
        usage.memory_bytes += resident_pages(other).unwrap_or(0) * page;
        usage.cpu_seconds += (st.utime + st.stime) as f64 / ticks as f64;
    }
    Some(usage)
}

struct Stat {
    pgrp: i32,
    utime: u64,
    stime: u64,
}

/// Fields 5 (pgrp), 14 (utime) and 15 (stime) of `/proc/PID/stat`, counted after the last
/// `)`: the command name before it may hold spaces and parentheses.
fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Some(Stat {
        pgrp: field(5)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
    })
}

/// The second field of `/proc/PID/statm`: resident pages.
fn resident_pages(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system; it takes no pointer.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

fn clock_ticks() -> u64 {
    // SAFETY: as in `page_size`.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_after_the_last_parenthesis() {
        let text = "42 (a) b (c) S 1 40 40 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 12345 0 0\n";
        let st = parse_stat(text).unwrap();
        assert_eq!((st.pgrp, st.utime, st.stime), (40, 7, 3));
    }

    #[test]
    fn this_process_group_uses_memory_and_the_gone_use_nothing() {
        let me = std::process::id() as i32;
        let usage = group_usage(me).unwrap();
        assert!(usage.memory_bytes > 0, "{usage:?}");
        assert!(usage.cpu_seconds >= 0.0);
        assert_eq!(group_usage(i32::MAX), None);
    }
}
