//! What a service uses: memory (now and peak), CPU time, tasks and OOM kills. From its
//! cgroup's files where they exist; otherwise summed over its processes in `/proc` (the
//! processes of its cgroup, or of its process group without one). Read only when someone
//! asks (`runpmctl status`): nothing here runs on a timer.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::tree::keyed;

/// One service's usage; `None`: not known here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub tasks: Option<u64>,
    pub oom_kills: Option<u64>,
}

fn number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// From the cgroup `dir`, with `/proc` filling in what its controllers do not give.
pub fn of_cgroup(dir: &Path) -> Usage {
    let procs: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let fallback = of_processes(&procs);
    let cpu = std::fs::read_to_string(dir.join("cpu.stat"))
        .ok()
        .and_then(|t| keyed(&t, "usage_usec"));
    let oom_kills = std::fs::read_to_string(dir.join("memory.events"))
        .ok()
        .and_then(|t| keyed(&t, "oom_kill"));
    Usage {
        memory_bytes: number(&dir.join("memory.current")).or(fallback.memory_bytes),
        memory_peak_bytes: number(&dir.join("memory.peak")),
        // cpu.stat counts every process that ever ran in the cgroup, exited ones too.
        cpu_usec: cpu.or(fallback.cpu_usec),
        tasks: number(&dir.join("pids.current")).or(fallback.tasks),
        oom_kills,
    }
}

/// The usage of each process group in `pgids`, summed over its members, from one pass over
/// `/proc`: asking per group would read every process once per service.
pub fn of_groups(pgids: &HashSet<i32>) -> HashMap<i32, Usage> {
    let mut members: HashMap<i32, Vec<i32>> = HashMap::new();
    if !pgids.is_empty()
        && let Ok(entries) = std::fs::read_dir("/proc")
    {
        for pid in entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            let pgrp = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat(&s))
                .map(|s| s.pgrp);
            if let Some(pgrp) = pgrp.filter(|g| pgids.contains(g)) {
                members.entry(pgrp).or_default().push(pid);
            }
        }
    }
    pgids
        .iter()
        .map(|&pgid| {
            let pids = members.get(&pgid).map_or(&[][..], Vec::as_slice);
            (pgid, of_processes(pids))
        })
        .collect()
}

/// Summed over `pids` from `/proc` (processes that are gone are skipped).
pub fn of_processes(pids: &[i32]) -> Usage {
    if pids.is_empty() {
        return Usage {
            memory_bytes: Some(0),
            cpu_usec: None,
            tasks: Some(0),
            ..Usage::default()
        };
    }
    // SAFETY: sysconf only reads configuration.
    let ticks = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    // SAFETY: as above.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let (mut memory, mut cpu, mut tasks) = (0u64, 0u64, 0u64);
    for pid in pids {
        let Some(s) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| stat(&t))
        else {
            continue;
        };
        cpu += s.cpu_ticks * 1_000_000 / ticks.max(1);
        tasks += s.threads;
        let resident = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        memory += resident * page;
    }
    Usage {
        memory_bytes: Some(memory),
        memory_peak_bytes: None,
        cpu_usec: Some(cpu),
        tasks: Some(tasks),
        oom_kills: None,
    }
}

/// The fields of `/proc/PID/stat` used here.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    pgrp: i32,
    cpu_ticks: u64,
    threads: u64,
}

/// Parses after the last `)`: a process may be named `a) b (c`.
fn stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state).
    let at = |field: usize| fields.get(field - 3).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        pgrp: fields.get(2)?.parse().ok()?,
        cpu_ticks: at(14)? + at(15)?,
        threads: at(20)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_over_proc_sums_each_asked_group() {
        // SAFETY: getpgrp has no preconditions.
        let own = unsafe { libc::getpgrp() };
        let gone = i32::MAX;
        let usage = of_groups(&[own, gone].into_iter().collect());
        let mine = usage[&own];
        assert!(mine.tasks.is_some_and(|t| t >= 1), "{mine:?}");
        assert!(mine.memory_bytes.is_some_and(|m| m > 0), "{mine:?}");
        // A group with no process: nothing in it, rather than no answer.
        assert_eq!(usage[&gone].tasks, Some(0));
        assert_eq!(usage.len(), 2);
    }

    #[test]
    fn parses_stat_after_the_last_paren() {
        let text = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 2 0 12345 0 0";
        assert_eq!(
            stat(text),
            Some(Stat {
                pgrp: 42,
                cpu_ticks: 10,
                threads: 2
            })
        );
        assert_eq!(stat("garbage"), None);
    }

    #[test]
    fn sums_our_own_process() {
        let me = std::process::id() as i32;
        let usage = of_processes(&[me, i32::MAX]);
        assert!(usage.memory_bytes.unwrap() > 0);
        assert!(usage.tasks.unwrap() >= 1);
        assert_eq!(of_processes(&[]).tasks, Some(0));
    }

    #[test]
    fn reads_a_fake_cgroup_directory() {
        let dir = tempfile::tempdir().unwrap();
        let write = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).unwrap();
        write("cgroup.procs", "");
        write("memory.current", "1048576\n");
        write("memory.peak", "2097152\n");
        write(
            "cpu.stat",
            "usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\n",
        );
        write("pids.current", "3\n");
        write("memory.events", "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n");
        assert_eq!(
            of_cgroup(dir.path()),
            Usage {
                memory_bytes: Some(1_048_576),
                memory_peak_bytes: Some(2_097_152),
                cpu_usec: Some(5000),
                tasks: Some(3),
                oom_kills: Some(1),
            }
        );
    }
}
