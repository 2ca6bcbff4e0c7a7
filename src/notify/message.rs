//! The payload of one notification datagram, as sd_notify(3) defines it.
//!
//! A datagram carries newline-separated `KEY=VALUE` assignments. Like systemd, runpm acts
//! only on exact spellings (`READY=1`, not `READY=yes`); every other assignment, including a
//! known key with a value it cannot take (`MAINPID=abc`), comes out as [`Notification::Other`]
//! so the caller can log it instead of it vanishing. A trailing newline and empty lines are
//! harmless; a line without `=` carries no assignment and is skipped, as systemd skips it. A
//! NUL byte anywhere rejects the whole datagram, as it does in systemd: C senders cannot
//! have meant it, so the rest of the payload cannot be trusted either.

/// One assignment from a notification datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `READY=1`: start-up is complete.
    Ready,
    /// `RELOADING=1`: the service is reloading its configuration.
    Reloading,
    /// `STOPPING=1`: the service is shutting down.
    Stopping,
    /// `WATCHDOG=1`: the keep-alive ping.
    Watchdog,
    /// `WATCHDOG=trigger`: the service asks to be treated as if its watchdog expired.
    WatchdogTrigger,
    /// `STATUS=…`: free-form text for status displays.
    Status(String),
    /// `MAINPID=N`: the service's main process is now `N` (positive).
    MainPid(i32),
    /// `ERRNO=N`: the failure the service reports, as a non-negative errno.
    Errno(i32),
    /// `BARRIER=1`: the sender waits for the fd it passed along to be closed.
    Barrier,
    /// Anything else, verbatim.
    Other(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("notification message contains a NUL byte at offset {offset}")]
    Nul { offset: usize },
}

/// Parses a datagram's payload into its assignments, in order.
pub fn parse(payload: &[u8]) -> Result<Vec<Notification>, MessageError> {
    if let Some(offset) = payload.iter().position(|&b| b == 0) {
        return Err(MessageError::Nul { offset });
    }
    Ok(payload
        .split(|&b| b == b'\n')
        .filter_map(parse_line)
        .collect())
}

fn parse_line(line: &[u8]) -> Option<Notification> {
    let eq = line.iter().position(|&b| b == b'=')?;
    // Lossy rather than rejecting: a STATUS= with a stray Latin-1 byte should not cost the
    // READY=1 beside it. The replacement character shows the operator what happened.
    let key = String::from_utf8_lossy(&line[..eq]);
    let value = String::from_utf8_lossy(&line[eq + 1..]);
    Some(match (key.as_ref(), value.as_ref()) {
        ("READY", "1") => Notification::Ready,
        ("RELOADING", "1") => Notification::Reloading,
        ("STOPPING", "1") => Notification::Stopping,
        ("WATCHDOG", "1") => Notification::Watchdog,
        ("WATCHDOG", "trigger") => Notification::WatchdogTrigger,
        ("BARRIER", "1") => Notification::Barrier,
        ("STATUS", status) => Notification::Status(status.to_owned()),
        ("MAINPID", pid) => match parse_int(pid) {
            Some(pid) if pid > 0 => Notification::MainPid(pid),
            _ => Notification::Other(key.into_owned(), value.into_owned()),
        },
        ("ERRNO", errno) => match parse_int(errno) {
            Some(errno) if errno >= 0 => Notification::Errno(errno),
            _ => Notification::Other(key.into_owned(), value.into_owned()),
        },
        _ => Notification::Other(key.into_owned(), value.into_owned()),
    })
}

/// A decimal integer, digits only: `str::parse` would also take a leading `+`, which
/// systemd's parser would too, but nothing sends it and being strict keeps `MAINPID= 7`
/// from meaning something.
fn parse_int(text: &str) -> Option<i32> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Notification::*;

    fn other(key: &str, value: &str) -> Notification {
        Other(key.to_owned(), value.to_owned())
    }

    #[test]
    fn the_flags() {
        assert_eq!(
            parse(b"READY=1\nRELOADING=1\nSTOPPING=1\nWATCHDOG=1\nWATCHDOG=trigger\nBARRIER=1"),
            Ok(vec![
                Ready,
                Reloading,
                Stopping,
                Watchdog,
                WatchdogTrigger,
                Barrier
            ])
        );
    }

    #[test]
    fn flags_need_their_exact_value() {
        assert_eq!(
            parse(b"READY=0\nREADY=yes\nREADY=\nWATCHDOG=2\nBARRIER=0\nready=1"),
            Ok(vec![
                other("READY", "0"),
                other("READY", "yes"),
                other("READY", ""),
                other("WATCHDOG", "2"),
                other("BARRIER", "0"),
                other("ready", "1"),
            ])
        );
    }

    #[test]
    fn status_keeps_everything_after_the_first_equals_sign() {
        assert_eq!(
            parse(b"STATUS=a = b  \nSTATUS="),
            Ok(vec![Status("a = b  ".into()), Status(String::new())])
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            parse(b"MAINPID=4242\nERRNO=2\nERRNO=0"),
            Ok(vec![MainPid(4242), Errno(2), Errno(0)])
        );
        assert_eq!(
            parse(
                b"MAINPID=0\nMAINPID=-5\nMAINPID=abc\nMAINPID= 7\nMAINPID=+7\nMAINPID=99999999999"
            ),
            Ok(vec![
                other("MAINPID", "0"),
                other("MAINPID", "-5"),
                other("MAINPID", "abc"),
                other("MAINPID", " 7"),
                other("MAINPID", "+7"),
                other("MAINPID", "99999999999"),
            ])
        );
        assert_eq!(
            parse(b"ERRNO=-1\nERRNO=x"),
            Ok(vec![other("ERRNO", "-1"), other("ERRNO", "x")])
        );
    }

    #[test]
    fn newlines_and_lines_without_assignments() {
        assert_eq!(parse(b""), Ok(vec![]));
        assert_eq!(parse(b"\n\n"), Ok(vec![]));
        assert_eq!(parse(b"READY=1\n"), Ok(vec![Ready]));
        assert_eq!(
            parse(b"\nREADY=1\n\nSTATUS=x\n"),
            Ok(vec![Ready, Status("x".into())])
        );
        assert_eq!(parse(b"garbage\nREADY=1"), Ok(vec![Ready]));
    }

    #[test]
    fn unknown_keys_are_kept_in_order() {
        assert_eq!(
            parse(b"FDSTORE=1\nEXTEND_TIMEOUT_USEC=5000000\nX_CUSTOM=a=b"),
            Ok(vec![
                other("FDSTORE", "1"),
                other("EXTEND_TIMEOUT_USEC", "5000000"),
                other("X_CUSTOM", "a=b"),
            ])
        );
    }

    #[test]
    fn nul_rejects_the_datagram() {
        assert_eq!(
            parse(b"READY=1\nSTATUS=a\0b"),
            Err(MessageError::Nul { offset: 16 })
        );
        assert_eq!(parse(b"\0"), Err(MessageError::Nul { offset: 0 }));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(
            parse(b"STATUS=caf\xe9\nREADY=1"),
            Ok(vec![Status("caf\u{fffd}".into()), Ready])
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse(&bytes);
            }

            #[test]
            fn well_formed_lines_round_trip(
                lines in proptest::collection::vec(("[A-Z_]{1,12}", "[ -~]{0,40}"), 0..8)
            ) {
                let payload: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                let parsed = parse(payload.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(parsed.len(), lines.len());
            }

            #[test]
            fn a_nul_anywhere_rejects(
                before in proptest::collection::vec(1u8.., 0..64),
                after in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let mut payload = before.clone();
                payload.push(0);
                payload.extend(after);
                prop_assert_eq!(parse(&payload), Err(MessageError::Nul { offset: before.len() }));
            }
        }
    }
}
