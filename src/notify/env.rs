//! The environment that tells a service where to send its notifications.
//!
//! As systemd does: `NOTIFY_SOCKET` names the socket, and with a watchdog `WATCHDOG_USEC`
//! says how often to ping. systemd also sets `WATCHDOG_PID` to the main pid so that children
//! do not mistake the variable for their own; runpm learns the pid only after the spawn, and
//! sd_watchdog_enabled(3) treats a missing `WATCHDOG_PID` as "for whoever reads it", so it is
//! left out rather than guessed.
//!
//! runpm itself may run under systemd with these variables set for *it*. A service must never
//! inherit them, or it would report its readiness to runpm's supervisor as runpm's own: the
//! spawner removes [`NOTIFY_VARS`] from every service's environment, then adds
//! [`service_env`] for the services that use notify.

use std::time::Duration;

/// The variables of the notification protocol, to be removed from every inherited
/// environment.
pub const NOTIFY_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// The variables for a service that notifies over `socket`, with an optional watchdog
/// interval. A zero interval means no watchdog, as `WatchdogSec=0` does in systemd; below a
/// microsecond there is nothing to announce either.
pub fn service_env(socket: &str, watchdog: Option<Duration>) -> Vec<(String, String)> {
    let mut env = vec![("NOTIFY_SOCKET".to_owned(), socket.to_owned())];
    if let Some(usec) = watchdog.map(|w| w.as_micros()).filter(|&usec| usec > 0) {
        env.push(("WATCHDOG_USEC".to_owned(), usec.to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn socket_only() {
        let env = service_env("/srv/app/.runpm/notify.sock", None);
        assert_eq!(
            pairs(&env),
            [("NOTIFY_SOCKET", "/srv/app/.runpm/notify.sock")]
        );
    }

    #[test]
    fn with_a_watchdog_in_microseconds() {
        let env = service_env("/n.sock", Some(Duration::from_secs(30)));
        assert_eq!(
            pairs(&env),
            [("NOTIFY_SOCKET", "/n.sock"), ("WATCHDOG_USEC", "30000000")]
        );
        let env = service_env("/n.sock", Some(Duration::from_millis(1500)));
        assert_eq!(env[1].1, "1500000");
        // No WATCHDOG_PID: it is unknown before the spawn.
        assert!(env.iter().all(|(k, _)| k != "WATCHDOG_PID"));
    }

    #[test]
    fn a_zero_watchdog_is_none() {
        for w in [Duration::ZERO, Duration::from_nanos(999)] {
            assert_eq!(service_env("/n.sock", Some(w)).len(), 1);
        }
    }

    #[test]
    fn every_variable_we_set_is_one_we_clear() {
        let env = service_env("/n.sock", Some(Duration::from_secs(1)));
        assert!(env.iter().all(|(k, _)| NOTIFY_VARS.contains(&k.as_str())));
    }
}
