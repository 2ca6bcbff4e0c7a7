//! How the start of `runpm up -d` went, service by service, for the command waiting on it.
//!
//! `runpm up -d` returns once every service it started has got somewhere: it runs (ready),
//! it completed, or it failed or gave up. A service in backoff has failed at least once and
//! counts as failing (as `docker compose up --wait` counts a container that exited), so a
//! service that flaps forever cannot hold the command; one waiting for a dependency that
//! failed has given up. The daemon reports each service once it settles, and again if that
//! changes before the start is over, so that a terminal can show progress; then the whole
//! result, which decides the command's exit code (1 when any service failed or gave up).

use std::collections::BTreeMap;
use std::fmt;

use super::core::Supervisor;
use super::policy::is_success;
use super::service::{Phase, Service};

/// Where a service that was asked to start has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still on its way: spawning, not ready yet, waiting for its dependencies.
    Pending,
    Running,
    /// A task that ended successfully.
    Completed,
    /// It failed (crash loop, spawn error, readiness timeout) or ended badly; why.
    Failed(String),
    /// It ended badly and waits to be restarted; how its last run ended.
    Restarting(String),
    /// It waits for a dependency that failed or ended badly, and will not start by itself;
    /// for what (`migrate, which exited with code 3`).
    GaveUp(String),
    /// A scheduled service waiting for its next run, or a service that waits for the first
    /// run of a scheduled one: nothing to wait for now.
    Scheduled,
}

impl Outcome {
    pub fn is_bad(&self) -> bool {
        matches!(
            self,
            Outcome::Failed(_) | Outcome::Restarting(_) | Outcome::GaveUp(_)
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pending => f.write_str("starting"),
            Outcome::Running => f.write_str("running"),
            Outcome::Completed => f.write_str("completed"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
            Outcome::Restarting(how) => write!(f, "restarting: {how}"),
            Outcome::GaveUp(what) => write!(f, "gave up: waiting for {what}"),
            Outcome::Scheduled => f.write_str("waiting for its scheduled run"),
        }
    }
}

/// The outcome of one service; `blocked` says what it waits for when that is a dependency
/// that cannot get there by itself (the supervisor knows its dependency graph).
pub fn outcome(service: &Service, blocked: Option<String>) -> Outcome {
    match &service.phase {
        Phase::Running(run) if run.is_ready() => Outcome::Running,
        Phase::Exited { status } if is_success(&service.spec, *status) => Outcome::Completed,
        Phase::Exited { status } => Outcome::Failed(status.to_string()),
        Phase::Failed { reason, .. } => Outcome::Failed(reason.clone()),
        Phase::Waiting if blocked.is_some() => Outcome::GaveUp(blocked.unwrap_or_default()),
        Phase::Backoff { .. } => Outcome::Restarting(match service.exits.back() {
            Some(last) => match &last.detail {
                Some(detail) => format!("{} ({detail})", last.status),
                None => last.status.to_string(),
            },
            None => "its last run failed".into(),
        }),
        // Stopped while wanted up: on its way to `Waiting`.
        Phase::Stopped
        | Phase::Waiting
        | Phase::Spawning
        | Phase::Running(_)
        | Phase::Stopping(_) => Outcome::Pending,
    }
}

/// Follows the start for the waiting command: what to tell it after each turn.
#[derive(Debug, Default)]
pub struct StartupReport {
    /// What was last told per service.
    told: BTreeMap<String, Outcome>,
    done: bool,
}

/// What to send after a turn.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct News {
    /// Services whose outcome settled or changed since the last turn.
    pub progress: Vec<(String, Outcome)>,
    /// Once no service is pending any more (once): every service asked to start, with its
    /// outcome.
    pub result: Option<Vec<(String, Outcome)>>,
}

impl StartupReport {
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What changed since the last turn, from the current `outcomes` of the services that
    /// are wanted up.
    pub fn turn(&mut self, outcomes: Vec<(String, Outcome)>) -> News {
        if self.done {
            return News::default();
        }
        let mut news = News::default();
        for (name, outcome) in &outcomes {
            if *outcome == Outcome::Pending || self.told.get(name) == Some(outcome) {
                continue;
            }
            self.told.insert(name.clone(), outcome.clone());
            news.progress.push((name.clone(), outcome.clone()));
        }
        if outcomes.iter().all(|(_, o)| *o != Outcome::Pending) {
            self.done = true;
            news.result = Some(outcomes);
        }
        news
    }
}

/// The outcome of every service the supervisor wants up.
pub fn outcomes(sup: &Supervisor) -> Vec<(String, Outcome)> {
    let between_runs = |name: &str| sup.service(name).is_some_and(Service::between_runs);
    sup.services()
        .filter(|(_, s)| s.want.is_up())
        .map(|(name, s)| {
            let scheduled = s.between_runs()
                || s.phase == Phase::Waiting && s.spec.depends_on.iter().any(|d| between_runs(d));
            if scheduled {
                return (name.clone(), Outcome::Scheduled);
            }
            (name.clone(), outcome(s, sup.blocked_by(name)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Instant, SystemTime};

    use super::*;
    use crate::process::ExitStatus;
    use crate::supervisor::service::{Readiness, Run, Want};
    use crate::testing::spec;

    fn service(phase: Phase) -> Service {
        let mut s = Service::new(Arc::new(spec("s")), SystemTime::UNIX_EPOCH);
        s.want = Want::Up;
        s.phase = phase;
        s
    }

    fn running(ready: bool) -> Phase {
        let mut run = Run::new(42, Instant::now(), SystemTime::UNIX_EPOCH);
        if !ready {
            run.readiness = Readiness::Pending {
                deadline: Instant::now(),
            };
        }
        Phase::Running(run)
    }

    #[test]
    fn each_phase_has_its_outcome() {
        let failed = Phase::Failed {
            reason: "crash loop".into(),
            code: 1,
            rearm_at: None,
        };
        let backoff = Phase::Backoff {
            until: Instant::now(),
        };
        let ok = Phase::Exited {
            status: ExitStatus::Code(0),
        };
        let bad = Phase::Exited {
            status: ExitStatus::Code(3),
        };
        let cases = [
            (running(true), None, Outcome::Running),
            (running(false), None, Outcome::Pending),
            (Phase::Spawning, None, Outcome::Pending),
            (
                backoff,
                None,
                Outcome::Restarting("its last run failed".into()),
            ),
            (Phase::Waiting, None, Outcome::Pending),
            (
                Phase::Waiting,
                Some("db, which failed (crash loop)".to_owned()),
                Outcome::GaveUp("db, which failed (crash loop)".into()),
            ),
            (ok, None, Outcome::Completed),
            (bad, None, Outcome::Failed("exited with code 3".into())),
            (failed, None, Outcome::Failed("crash loop".into())),
        ];
        for (phase, blocked, want) in cases {
            assert_eq!(outcome(&service(phase.clone()), blocked), want, "{phase:?}");
        }
    }

    #[test]
    fn a_service_in_backoff_is_restarting_after_its_last_exit() {
        let mut s = service(Phase::Spawning);
        s.record_exit(
            42,
            ExitStatus::Code(1),
            SystemTime::UNIX_EPOCH,
            std::time::Duration::ZERO,
            crate::supervisor::EndReason::Exited,
            None,
        );
        s.phase = Phase::Backoff {
            until: Instant::now(),
        };
        let outcome = outcome(&s, None);
        assert_eq!(outcome, Outcome::Restarting("exited with code 1".into()));
        assert!(outcome.is_bad());
    }

    fn named(list: &[(&str, Outcome)]) -> Vec<(String, Outcome)> {
        list.iter()
            .map(|(n, o)| (n.to_string(), o.clone()))
            .collect()
    }

    #[test]
    fn progress_once_per_change_then_the_result_once() {
        let mut report = StartupReport::default();
        let news = report.turn(named(&[("a", Outcome::Pending), ("b", Outcome::Pending)]));
        assert_eq!(news, News::default());

        let news = report.turn(named(&[("a", Outcome::Running), ("b", Outcome::Pending)]));
        assert_eq!(news.progress, named(&[("a", Outcome::Running)]));
        assert_eq!(news.result, None);

        // Nothing new: nothing said.
        let news = report.turn(named(&[("a", Outcome::Running), ("b", Outcome::Pending)]));
        assert_eq!(news, News::default());

        let end = named(&[
            ("a", Outcome::Running),
            ("b", Outcome::GaveUp("c, which failed (x)".into())),
        ]);
        let news = report.turn(end.clone());
        assert_eq!(
            news.progress,
            named(&[("b", Outcome::GaveUp("c, which failed (x)".into()))])
        );
        assert_eq!(news.result, Some(end));
        assert!(report.is_done());

        let later = named(&[
            ("a", Outcome::Failed("x".into())),
            ("b", Outcome::GaveUp("c, which failed (x)".into())),
        ]);
        assert_eq!(report.turn(later), News::default());
    }

    #[test]
    fn a_changed_outcome_is_told_again() {
        let mut report = StartupReport::default();
        let pending = ("c", Outcome::Pending);
        report.turn(named(&[("a", Outcome::Running), pending.clone()]));
        let crashed = Outcome::Failed("exited with code 1".into());
        let news = report.turn(named(&[("a", crashed.clone()), pending]));
        assert_eq!(news.progress, named(&[("a", crashed)]));
    }

    #[test]
    fn nothing_to_start_is_done_at_once() {
        let mut report = StartupReport::default();
        assert_eq!(report.turn(Vec::new()).result, Some(Vec::new()));
    }
}
