//! The restart policy: what happens after a service's process ends on its own.
//!
//! Pure: the caller passes the clock and the random source, so every decision is
//! reproducible in tests.
//!
//! - A run *failed* when it ended unsuccessfully (a code outside `success_exit_codes`, or a
//!   signal runpm did not send) or lasted less than `min_uptime` (a failed start).
//! - `restart` decides whether to start again: `always`; `on-failure` unless the exit was
//!   successful; `never`.
//! - Failed runs are counted within `restart_window`; once more than `max_restarts` of them
//!   fall inside the window, the service is `failed` (a crash loop) instead of restarting.
//! - The delay starts at `restart_delay` and doubles per consecutive failed run up to
//!   `restart_delay_max`, plus up to 10% jitter so that services that crashed together do
//!   not restart in lock-step. A run that lasted `min_uptime` resets the doubling.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{RestartPolicy, ServiceSpec};
use crate::process::ExitStatus;

/// The memory of past runs that the policy needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// End times of failed runs still inside the restart window.
    pub failures: VecDeque<Instant>,
    /// Failed runs in a row; 0 after a run that lasted long enough.
    pub consecutive: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Restart {
        delay: Duration,
    },
    /// Stay down: the policy does not restart this kind of exit.
    Stay,
    /// Too many failed runs within the window.
    CrashLoop {
        failures: usize,
        window: Duration,
    },
}

pub fn is_success(spec: &ServiceSpec, status: ExitStatus) -> bool {
    matches!(status, ExitStatus::Code(c) if spec.success_exit_codes.contains(&c))
}

/// Decides what follows a run that ended after `uptime`, and updates `history`. `success`
/// is the exit's verdict (see [`is_success`]); a run that runpm had to stop because it
/// never became ready or failed its health checks is not a success, whatever its exit.
/// `jitter` is a number in [0, 1).
pub fn decide_run(
    spec: &ServiceSpec,
    history: &mut History,
    success: bool,
    uptime: Duration,
    now: Instant,
    jitter: f64,
) -> Decision {
    let failed_run = !success || uptime < spec.min_uptime;
    if uptime >= spec.min_uptime {
        history.consecutive = 0;
    }
    while let Some(&first) = history.failures.front() {
        if now.saturating_duration_since(first) > spec.restart_window {
            history.failures.pop_front();
        } else {
            break;
        }
    }
    if failed_run {
        history.failures.push_back(now);
        history.consecutive = history.consecutive.saturating_add(1);
    }
    let restart = match spec.restart {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !success,
        RestartPolicy::Never => false,
    };
    if !restart {
        return Decision::Stay;
    }
    if history.failures.len() > spec.max_restarts as usize {
        return Decision::CrashLoop {
            failures: history.failures.len(),
            window: spec.restart_window,
        };
    }
    Decision::Restart {
        delay: delay(spec, history.consecutive, jitter),
    }
}

/// The wait before the next start after `consecutive` failed runs in a row.
pub fn delay(spec: &ServiceSpec, consecutive: u32, jitter: f64) -> Duration {
    let doublings = consecutive.saturating_sub(1).min(32);
    let base = spec
        .restart_delay
        .saturating_mul(1u32 << doublings.min(31))
        .min(spec.restart_delay_max);
    // Saturating: `restart_delay_max` may be as long as the clock allows.
    let jittered = base.saturating_add(base.mul_f64(jitter.clamp(0.0, 1.0) * 0.1));
    jittered.min(spec.restart_delay_max.max(spec.restart_delay))
}

/// A small xorshift generator: jitter needs no cryptographic quality, and a seedable source
/// keeps the state machine deterministic under test.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    pub fn from_time() -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Jitter::new(nanos ^ u64::from(std::process::id()).rotate_left(32))
    }

    /// A number in [0, 1).
    pub fn sample(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::spec;

    fn decide(
        spec: &ServiceSpec,
        history: &mut History,
        status: ExitStatus,
        uptime: Duration,
        now: Instant,
        jitter: f64,
    ) -> Decision {
        decide_run(spec, history, is_success(spec, status), uptime, now, jitter)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delay_doubles_up_to_the_maximum() {
        let mut s = spec("a");
        s.restart_delay = ms(100);
        s.restart_delay_max = ms(1000);
        let d: Vec<_> = (1..=6).map(|n| delay(&s, n, 0.0)).collect();
        assert_eq!(d, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(
            delay(&s, 1000, 0.0),
            ms(1000),
            "no overflow on long streaks"
        );
    }

    #[test]
    fn jitter_adds_at_most_a_tenth_and_never_passes_the_maximum() {
        let mut s = spec("a");
        s.restart_delay = ms(100);
        s.restart_delay_max = ms(1000);
        assert_eq!(
            delay(&s, 1, 0.999_999),
            ms(100) + ms(100).mul_f64(0.999_999 * 0.1)
        );
        assert_eq!(delay(&s, 10, 0.999_999), ms(1000));
        let mut j = Jitter::new(7);
        assert!(
            (0..1000)
                .map(|_| j.sample())
                .all(|x| (0.0..1.0).contains(&x))
        );
    }

    #[test]
    fn zero_delay_stays_zero() {
        let mut s = spec("a");
        s.restart_delay = Duration::ZERO;
        assert_eq!(delay(&s, 5, 0.5), Duration::ZERO);
    }

    #[test]
    fn policies_decide_by_exit_kind() {
        let t0 = Instant::now();
        let up = Duration::from_secs(5);
        let cases = [
            (RestartPolicy::Always, ExitStatus::Code(0), true),
            (RestartPolicy::Always, ExitStatus::Code(1), true),
            (RestartPolicy::OnFailure, ExitStatus::Code(0), false),
            (RestartPolicy::OnFailure, ExitStatus::Code(42), false),
            (RestartPolicy::OnFailure, ExitStatus::Code(1), true),
            (RestartPolicy::OnFailure, ExitStatus::Signal(9), true),
            (RestartPolicy::Never, ExitStatus::Code(1), false),
        ];
        for (policy, status, restarts) in cases {
            let mut s = spec("a");
            s.restart = policy;
            s.success_exit_codes = vec![0, 42];
            let d = decide(&s, &mut History::default(), status, up, t0, 0.0);
            assert_eq!(
                matches!(d, Decision::Restart { .. }),
                restarts,
                "{policy:?} {status:?}"
            );
        }
    }

    #[test]
    fn crash_loop_after_more_than_max_restarts_failed_runs_in_the_window() {
        let mut s = spec("a");
        s.restart = RestartPolicy::Always;
        s.max_restarts = 3;
        s.restart_window = Duration::from_secs(60);
        s.min_uptime = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut h = History::default();
        let mut decisions = Vec::new();
        for i in 0..4 {
            decisions.push(decide(
                &s,
                &mut h,
                ExitStatus::Code(0),
                ms(10),
                t0 + ms(i * 100),
                0.0,
            ));
        }
        assert!(
            decisions[..3]
                .iter()
                .all(|d| matches!(d, Decision::Restart { .. }))
        );
        assert_eq!(
            decisions[3],
            Decision::CrashLoop {
                failures: 4,
                window: s.restart_window
            }
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let mut s = spec("a");
        s.max_restarts = 2;
        s.restart_window = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut h = History::default();
        for i in 0..10u64 {
            // One failure every 6 s: never more than two inside a 10 s window.
            let d = decide(
                &s,
                &mut h,
                ExitStatus::Code(1),
                ms(10),
                t0 + Duration::from_secs(6 * i),
                0.0,
            );
            assert!(matches!(d, Decision::Restart { .. }), "run {i}: {d:?}");
        }
    }

    #[test]
    fn a_long_run_resets_the_doubling() {
        let mut s = spec("a");
        s.restart_delay = ms(100);
        s.restart_delay_max = Duration::from_secs(30);
        s.min_uptime = Duration::from_secs(1);
        s.max_restarts = 100;
        let t0 = Instant::now();
        let mut h = History::default();
        for _ in 0..4 {
            decide(&s, &mut h, ExitStatus::Code(1), ms(10), t0, 0.0);
        }
        assert_eq!(
            decide(&s, &mut h, ExitStatus::Code(1), ms(10), t0, 0.0),
            Decision::Restart { delay: ms(1600) }
        );
        let after_long = decide(
            &s,
            &mut h,
            ExitStatus::Code(1),
            Duration::from_secs(5),
            t0,
            0.0,
        );
        assert_eq!(after_long, Decision::Restart { delay: ms(100) });
    }

    #[test]
    fn a_short_successful_run_counts_as_a_failed_start() {
        let mut s = spec("a");
        s.restart = RestartPolicy::Always;
        s.max_restarts = 0;
        let d = decide(
            &s,
            &mut History::default(),
            ExitStatus::Code(0),
            ms(1),
            Instant::now(),
            0.0,
        );
        assert!(matches!(d, Decision::CrashLoop { .. }));
    }
}
