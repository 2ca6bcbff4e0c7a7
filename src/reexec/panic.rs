//! A panic in the daemon re-executes it rather than aborting and orphaning the services.
//!
//! The panic hook cannot reach the supervisor's table, so the daemon keeps a recent
//! [`ReexecState`] here: refreshed at the end of every turn that had effects (an idle
//! daemon does nothing). The hook clears close-on-exec on its descriptors and execs the
//! binary as `runpmctl reexec` does. At most [`MAX_PANICS`] such re-execs within a minute
//! (counted in the carried state): one more panic means a bug that re-executing does not
//! cure, and runpm gives up loudly and ends as a panic always did: its services are not
//! signalled (those that write next meet a closed pipe), as PID 1 the container ends, and
//! the next `runpm up` finds and replaces what is left through the state file.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::exec::exec;
use super::state::ReexecState;

/// Panic re-execs allowed within [`PANIC_WINDOW`].
pub const MAX_PANICS: usize = 3;
const PANIC_WINDOW: Duration = Duration::from_secs(60);

static LAST: Mutex<Option<ReexecState>> = Mutex::new(None);

/// Keeps `state` for the panic hook.
pub fn refresh_panic_state(state: ReexecState) {
    if let Ok(mut last) = LAST.lock() {
        *last = Some(state);
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Installs the hook (in the daemon only: the client and one-shot commands just fail).
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        // try_lock: a panic while the state is being refreshed finds it held.
        let state = LAST.try_lock().ok().and_then(|mut s| s.take());
        let Some(mut state) = state else {
            eprintln!("runpm: panicked with no state to re-execute from; giving up");
            return;
        };
        if !may_reexec(&mut state.panics, now_secs()) {
            eprintln!(
                "runpm: panicked {} times within {}s; giving up (not re-executing again)",
                state.panics.len() + 1,
                PANIC_WINDOW.as_secs()
            );
            return;
        }
        eprintln!(
            "runpm: panicked; re-executing {} with every service kept",
            state.binary.display()
        );
        let error = exec(&state);
        eprintln!("runpm: the re-exec after a panic failed: {error}; giving up");
    }));
}

/// Whether one more panic re-exec is allowed at `now`, given the earlier ones (kept to the
/// last [`PANIC_WINDOW`], with `now` added when allowed).
fn may_reexec(panics: &mut Vec<u64>, now: u64) -> bool {
    panics.retain(|&at| now.saturating_sub(at) < PANIC_WINDOW.as_secs());
    if panics.len() >= MAX_PANICS {
        return false;
    }
    panics.push(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_three_a_minute() {
        let mut panics = Vec::new();
        for t in [100, 110, 120] {
            assert!(may_reexec(&mut panics, t));
        }
        assert!(!may_reexec(&mut panics, 130), "a fourth within the minute");
        assert!(may_reexec(&mut panics, 161), "the first one has aged out");
        assert_eq!(panics, [110, 120, 161]);
    }
}
