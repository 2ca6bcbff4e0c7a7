//! Which service a notification belongs to, decided from the sender's pid.
//!
//! The kernel stamps every datagram with the sender's pid (SO_PASSCRED), so a service cannot
//! speak for another one. The sender is either a service's main process or, commonly, a
//! helper in its process group: `systemd-notify --ready` run from the service's shell script
//! is a child of that shell and inherits its group, and every service runs in a group of its
//! own. systemd answers the same question with cgroups; process groups are what runpm has.
//! A process that escaped its group (`setsid` in a double-forking daemon) is not attributed:
//! such a daemon should send from its main process or announce itself with `MAINPID=`.
//!
//! The sender may have exited by the time its message is read, and a process that is gone
//! has no group to look up. systemd-notify waits for its `BARRIER=1` to be answered, which
//! happens only when the datagram after its message is read; so attributing each datagram
//! before receiving the next one always finds it alive (or a zombie, which still has its
//! `/proc` entry).

/// The service whose main pid is `sender_pid`, else the one whose process group the sender is
/// in. `services` holds `(name, main pid, process group id)` for each running service;
/// non-positive ids (not running) match nothing. A sender the kernel could not map into our
/// pid namespace arrives as pid 0 and belongs to nobody.
pub fn attribute(
    sender_pid: i32,
    services: &[(String, i32, i32)],
    pgid_of: impl Fn(i32) -> Option<i32>,
) -> Option<String> {
    if sender_pid <= 0 {
        return None;
    }
    // The main pid wins over group membership: after `MAINPID=` a service's main process may
    // sit in a group that is not the one runpm created for it.
    if let Some((name, _, _)) = services.iter().find(|(_, pid, _)| *pid == sender_pid) {
        return Some(name.clone());
    }
    let pgid = pgid_of(sender_pid).filter(|&pgid| pgid > 0)?;
    services
        .iter()
        .find(|(_, _, group)| *group == pgid)
        .map(|(name, _, _)| name.clone())
}

/// The process group of `pid`, from field 5 of `/proc/PID/stat`; `None` when the process is
/// gone (or the entry cannot be read or parsed).
pub fn pgid_of(pid: i32) -> Option<i32> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_pgid(&stat)
}

/// Field 5 of a `/proc/PID/stat` line. The command name (field 2) is in parentheses and may
/// itself contain `)` and spaces, so the fields are counted from after the *last* `)`: state,
/// ppid, pgrp.
fn parse_pgid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<(String, i32, i32)> {
        vec![
            ("web".to_owned(), 100, 100),
            ("db".to_owned(), 200, 200),
            // A service whose main pid moved (MAINPID=) out of its own group.
            ("moved".to_owned(), 301, 300),
            ("stopped".to_owned(), 0, 0),
        ]
    }

    fn groups(pid: i32) -> Option<i32> {
        match pid {
            100..=102 => Some(100),
            200 | 201 => Some(200),
            301 => Some(100),
            302 => Some(300),
            999 => Some(999),
            0 => Some(0),
            _ => None,
        }
    }

    #[test]
    fn main_pid() {
        assert_eq!(attribute(100, &services(), groups).as_deref(), Some("web"));
        assert_eq!(attribute(200, &services(), groups).as_deref(), Some("db"));
    }

    #[test]
    fn main_pid_wins_over_group() {
        // 301 is in web's group, but it is moved's main process.
        assert_eq!(
            attribute(301, &services(), groups).as_deref(),
            Some("moved")
        );
    }

    #[test]
    fn group_members() {
        assert_eq!(attribute(102, &services(), groups).as_deref(), Some("web"));
        assert_eq!(attribute(201, &services(), groups).as_deref(), Some("db"));
        assert_eq!(
            attribute(302, &services(), groups).as_deref(),
            Some("moved")
        );
    }

    #[test]
    fn strangers_and_the_gone_belong_to_nobody() {
        assert_eq!(attribute(999, &services(), groups), None);
        assert_eq!(attribute(12345, &services(), groups), None);
        assert_eq!(attribute(0, &services(), groups), None);
        assert_eq!(attribute(-100, &services(), groups), None);
        assert_eq!(attribute(100, &[], groups), None);
    }

    #[test]
    fn stopped_services_match_nothing() {
        // A sender in group 0 (impossible, but pgid_of is the caller's) must not land on a
        // service whose ids are placeholders.
        assert_eq!(attribute(5, &services(), |_| Some(0)), None);
    }

    #[test]
    fn stat_parsing_counts_from_the_last_paren() {
        assert_eq!(parse_pgid("42 (sh) S 1 42 42 0 -1 4194560"), Some(42));
        assert_eq!(parse_pgid("42 (a) b (c) S 7 8 9 0 -1"), Some(8));
        assert_eq!(parse_pgid("42 (x) S 7"), None);
        assert_eq!(parse_pgid("garbage"), None);
    }

    #[test]
    fn our_own_group() {
        let pid = std::process::id() as i32;
        assert_eq!(pgid_of(pid), Some(nix::unistd::getpgrp().as_raw()));
        assert_eq!(pgid_of(0), None);
        assert_eq!(pgid_of(-1), None);
    }

    #[test]
    fn a_pid_that_does_not_exist() {
        // pid_max is at most 2^22 on Linux.
        assert_eq!(pgid_of(i32::MAX), None);
    }
}
