//! Process identity: what makes a recorded pid "ours", as pure parsing.
//!
//! A pid alone names nothing across time: the kernel hands it to the next process once the
//! old one is reaped. On one boot and in one pid namespace, the pair (pid, start time) does
//! name one process, because a process's start time (field 22 of `/proc/PID/stat`, clock
//! ticks since boot) never changes and a reused pid belongs to a process started later. The
//! boot id and namespace are checked once per state file (see `boot`); this module reads the
//! per-process part. The syscalls live in `proc`.

use std::os::fd::OwnedFd;

/// A process as recorded: pid plus start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    pub pid: i32,
    pub start_time: u64,
}

/// The answer to "is the recorded process still ours?".
#[derive(Debug)]
pub enum Verified {
    /// Alive with the recorded start time. The pidfd was taken before the comparison and
    /// refers to exactly that process: signal and watch it through the pidfd, never through
    /// the pid, so a later reuse of the number cannot redirect a signal.
    Ours(OwnedFd),
    /// No process with that pid, or it has exited (a zombie counts as exited).
    Gone,
    /// A live process holds the pid but started at another time: someone else's. Never
    /// signal it.
    Stranger,
    /// The check itself failed (no `/proc`, out of file descriptors, …). Treated like a
    /// stranger, because the one unforgivable mistake is signalling a process that is not
    /// ours; the message says why for the log.
    Unverifiable(String),
}

/// Field 22 (`starttime`) of a `/proc/PID/stat` line.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and
/// parentheses (a process can call itself `a) b (c`), so the fields are counted from the
/// last `)`, never from the start.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    parse_start_time_bytes(stat.as_bytes())
}

/// As [`parse_start_time`], for the raw bytes: a command name need not be UTF-8.
pub fn parse_start_time_bytes(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After the `)`, field 3 (state) comes first, so field 22 is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The namespace inode from a `/proc/self/ns/pid` link target, `pid:[4026531836]`.
pub fn parse_ns_link(link: &str) -> Option<String> {
    let inode = link.strip_prefix("pid:[")?.strip_suffix(']')?;
    (!inode.is_empty() && inode.bytes().all(|b| b.is_ascii_digit())).then(|| inode.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line shaped like a real one, with field 22 (starttime) = 8123456.
    fn stat_line(comm: &str) -> String {
        format!(
            "1234 ({comm}) S 1 1234 1234 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 1 0 8123456 \
             5730304 1024 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 \
             0 0 0 0"
        )
    }

    #[test]
    fn start_time_of_a_plain_name() {
        assert_eq!(parse_start_time(&stat_line("sleep")), Some(8_123_456));
    }

    #[test]
    fn start_time_with_spaces_and_parentheses_in_the_name() {
        for comm in [
            "a) b (c",
            "x) S 1 2 3 4 5",
            "(",
            ")",
            ") )",
            "with space",
            "",
        ] {
            assert_eq!(
                parse_start_time(&stat_line(comm)),
                Some(8_123_456),
                "{comm:?}"
            );
        }
        // Non-UTF-8 bytes in the name.
        let mut bytes = b"1234 (\xff\xfe) ".to_vec();
        bytes.extend_from_slice(stat_line("x").split_once(") ").unwrap().1.as_bytes());
        assert_eq!(parse_start_time_bytes(&bytes), Some(8_123_456));
    }

    #[test]
    fn start_time_of_malformed_lines() {
        assert_eq!(parse_start_time(""), None);
        assert_eq!(parse_start_time("1234 (sleep S 1 2"), None);
        assert_eq!(parse_start_time("1234 (sleep) S 1 2 3"), None);
        let mut line = stat_line("x");
        line = line.replace("8123456", "-5");
        assert_eq!(parse_start_time(&line), None);
    }

    #[test]
    fn namespace_link() {
        assert_eq!(
            parse_ns_link("pid:[4026531836]").as_deref(),
            Some("4026531836")
        );
        assert_eq!(parse_ns_link("pid:[]"), None);
        assert_eq!(parse_ns_link("net:[4026531836]"), None);
        assert_eq!(parse_ns_link("pid:[12a]"), None);
    }
}
