//! Whether a dependency lets its dependent start, and if not, what it waits for.
//!
//! A dependent names each dependency with a condition (`started`, `ready`, `completed`).
//! The answer is one of [`Wait`]: met; pending (it will come by itself); in backoff (it will
//! come when a restart delay ends, which may be long); or blocked (it cannot come without an
//! operator or a cool-down: the dependency failed, exited unsuccessfully, or was stopped).
//!
//! Dependencies are a graph, whatever the state in between: a dependency that already ended
//! (a one-shot task that completed) stands for its own dependencies, so `app → migrate
//! (completed) → db` does not start app again while db is restarting. A service that runs
//! needs no such look-through: when something it depends on restarts, the planner restarts
//! it too, and it is not ready (nor `started`, being stopped) in between.
//!
//! | dependency phase            | started  | ready               | completed                 |
//! |-----------------------------|----------|---------------------|---------------------------|
//! | running, restart pending    | pending  | pending             | pending                   |
//! | running, not ready          | met      | pending             | pending                   |
//! | running, ready              | met      | met                 | pending                   |
//! | exited with a success code  | met (through its own dependencies)                       |
//! | exited otherwise            | met (through) | blocked        | blocked                   |
//! | failed                      | blocked  | blocked             | blocked                   |
//! | backoff                     | backoff  | backoff             | backoff                   |
//! | waiting                     | as its own dependencies when blocked or in backoff, else pending |
//! | spawning, stopping to start | pending  | pending             | pending                   |
//! | stopped or stopping, down   | blocked  | blocked             | blocked                   |

use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::Condition;
use crate::process::ExitStatus;

use super::policy::is_success;
use super::service::{AfterStop, Phase, Service, Want};

/// Where a dependency stands for one dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    Met,
    /// On its way by itself (spawning, starting, restarting).
    Pending,
    /// `service` (the dependency or one further down) restarts at `until`.
    Backoff {
        service: String,
        until: Instant,
    },
    /// `service` cannot get there by itself. `rearm_at`: a `failed_cooldown` will try it
    /// again then.
    Blocked {
        service: String,
        why: Block,
        rearm_at: Option<Instant>,
    },
}

/// What became of a dependency that blocks its dependents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Failed(String),
    Exited(ExitStatus),
    Stopped { by_operator: bool },
    Undefined,
}

impl std::fmt::Display for Block {
    /// To read after "which".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Block::Failed(reason) => write!(f, "failed ({reason})"),
            Block::Exited(status) => write!(f, "{status}"),
            Block::Stopped { by_operator: true } => f.write_str("was stopped by the operator"),
            Block::Stopped { by_operator: false } => f.write_str("is stopped"),
            Block::Undefined => f.write_str("is not defined"),
        }
    }
}

impl Wait {
    pub fn is_met(&self) -> bool {
        *self == Wait::Met
    }
}

/// Where `dep` stands for a dependent that waits for `condition`.
pub fn check(services: &BTreeMap<String, Service>, dep: &str, condition: Condition) -> Wait {
    let Some(svc) = services.get(dep) else {
        // The config check makes this unreachable; a missing dependency never comes.
        return blocked(dep, Block::Undefined, None);
    };
    match &svc.phase {
        Phase::Running(_) if svc.want == Want::Restart => Wait::Pending,
        Phase::Running(run) => match condition {
            Condition::Started => Wait::Met,
            Condition::Ready if run.is_ready() => Wait::Met,
            Condition::Ready | Condition::Completed => Wait::Pending,
        },
        Phase::Exited { status } => {
            let success = is_success(&svc.spec, *status);
            if success || condition == Condition::Started {
                own_dependencies(services, svc)
            } else {
                blocked(dep, Block::Exited(*status), None)
            }
        }
        Phase::Failed {
            reason, rearm_at, ..
        } => blocked(dep, Block::Failed(reason.clone()), *rearm_at),
        Phase::Backoff { until } => Wait::Backoff {
            service: dep.to_owned(),
            until: *until,
        },
        Phase::Waiting if svc.want.is_up() => match own_dependencies(services, svc) {
            // What holds it up holds up its dependents too.
            wait @ (Wait::Blocked { .. } | Wait::Backoff { .. }) => wait,
            Wait::Met | Wait::Pending => Wait::Pending,
        },
        Phase::Spawning => Wait::Pending,
        Phase::Stopping(stop) if svc.want.is_up() || stop.then == AfterStop::Start => Wait::Pending,
        Phase::Waiting | Phase::Stopping(_) | Phase::Stopped => {
            let by_operator = svc.want.by_operator();
            blocked(dep, Block::Stopped { by_operator }, None)
        }
    }
}

/// The first of `svc`'s own dependencies that is not met (a dependency that ended well
/// counts once what it depended on holds again): blocked before backoff before
/// pending, so the most telling reason is the one reported.
pub fn own_dependencies(services: &BTreeMap<String, Service>, svc: &Service) -> Wait {
    let mut worst = Wait::Met;
    for (_, wait) in each(services, svc) {
        if rank(&wait) > rank(&worst) {
            worst = wait;
        }
    }
    worst
}

/// Each of `svc`'s dependencies with where it stands for `svc`'s condition on it.
pub fn each<'a>(
    services: &'a BTreeMap<String, Service>,
    svc: &'a Service,
) -> impl Iterator<Item = (&'a str, Wait)> + 'a {
    svc.spec
        .depends_on
        .iter()
        .map(move |dep| (dep.as_str(), check(services, dep, svc.spec.condition(dep))))
}

fn rank(wait: &Wait) -> u8 {
    match wait {
        Wait::Met => 0,
        Wait::Pending => 1,
        Wait::Backoff { .. } => 2,
        Wait::Blocked { .. } => 3,
    }
}

fn blocked(service: &str, why: Block, rearm_at: Option<Instant>) -> Wait {
    Wait::Blocked {
        service: service.to_owned(),
        why,
        rearm_at,
    }
}

/// What the direct dependency `dep` stands for, to read after "waiting for": `db, which
/// failed (…)`, or through it, `web, which waits for migrate, which exited with code 2`.
pub fn describe(dep: &str, wait: &Wait) -> String {
    match wait {
        Wait::Backoff { service, .. } | Wait::Blocked { service, .. } if service != dep => {
            format!("{dep}, which waits for {wait}")
        }
        _ => wait.to_string(),
    }
}

impl std::fmt::Display for Wait {
    /// What a dependent waits for, to read after "waiting for": `db, which failed (crash
    /// loop: …)`, `db, which is in backoff`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Met => f.write_str("nothing"),
            Wait::Pending => f.write_str("its dependencies"),
            Wait::Backoff { service, .. } => write!(f, "{service}, which is in backoff"),
            Wait::Blocked { service, why, .. } => write!(f, "{service}, which {why}"),
        }
    }
}

impl Wait {
    /// Whether an operator who asked for the dependent should be told now rather than made
    /// to wait: the dependency cannot get there by itself, or not before `patience` is over.
    pub fn hopeless(&self, now: Instant, patience: std::time::Duration) -> bool {
        match self {
            Wait::Met | Wait::Pending => false,
            Wait::Backoff { until, .. } => until.saturating_duration_since(now) > patience,
            Wait::Blocked { .. } => true,
        }
    }

    /// What the operator can do about it.
    pub fn advice(&self) -> Option<String> {
        match self {
            Wait::Met | Wait::Pending => None,
            Wait::Backoff { service, .. } => {
                Some(format!("runpmctl restart {service} to start it now"))
            }
            Wait::Blocked {
                service,
                why: Block::Stopped { .. },
                ..
            } => Some(format!("runpmctl start {service} to start it")),
            Wait::Blocked {
                why: Block::Undefined,
                ..
            } => None,
            Wait::Blocked { service, .. } => {
                Some(format!("runpmctl restart {service} to try again"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::supervisor::service::{Readiness, Run, Stopping};
    use crate::testing::spec;

    fn table(rows: Vec<(&str, &[&str], Phase, Want)>) -> BTreeMap<String, Service> {
        rows.into_iter()
            .map(|(name, deps, phase, want)| {
                let mut s = spec(name);
                s.depends_on = deps.iter().map(|d| d.to_string()).collect();
                let mut svc = Service::new(Arc::new(s), SystemTime::UNIX_EPOCH);
                svc.phase = phase;
                svc.want = want;
                (name.to_owned(), svc)
            })
            .collect()
    }

    fn running(ready: bool) -> Phase {
        let mut run = Run::new(10, Instant::now(), SystemTime::UNIX_EPOCH);
        if !ready {
            run.readiness = Readiness::Pending {
                deadline: Instant::now(),
            };
        }
        Phase::Running(run)
    }

    fn each(phase: Phase, want: Want) -> [Wait; 3] {
        let t = table(vec![("dep", &[], phase, want)]);
        [Condition::Started, Condition::Ready, Condition::Completed].map(|c| check(&t, "dep", c))
    }

    fn is_blocked(w: &Wait) -> bool {
        matches!(w, Wait::Blocked { .. })
    }

    #[test]
    fn running_rows() {
        assert_eq!(
            each(running(false), Want::Up),
            [Wait::Met, Wait::Pending, Wait::Pending]
        );
        assert_eq!(
            each(running(true), Want::Up),
            [Wait::Met, Wait::Met, Wait::Pending]
        );
        let mut t = table(vec![("dep", &[], running(true), Want::Up)]);
        t.get_mut("dep").unwrap().want = Want::Restart;
        assert_eq!(check(&t, "dep", Condition::Started), Wait::Pending);
    }

    #[test]
    fn exited_rows() {
        let ok = Phase::Exited {
            status: ExitStatus::Code(0),
        };
        assert_eq!(each(ok, Want::Up), [Wait::Met, Wait::Met, Wait::Met]);
        let bad = Phase::Exited {
            status: ExitStatus::Code(3),
        };
        let [started, ready, completed] = each(bad, Want::Up);
        assert_eq!(started, Wait::Met);
        assert!(is_blocked(&ready) && is_blocked(&completed));
        assert_eq!(completed.to_string(), "dep, which exited with code 3");
    }

    #[test]
    fn failed_backoff_and_stopped_rows() {
        let failed = Phase::Failed {
            reason: "crash loop".into(),
            code: 1,
            rearm_at: None,
        };
        assert!(each(failed, Want::Up).iter().all(is_blocked));
        let until = Instant::now() + Duration::from_secs(30);
        assert!(
            each(Phase::Backoff { until }, Want::Up)
                .iter()
                .all(|w| matches!(w, Wait::Backoff { .. }))
        );
        assert!(
            each(Phase::Stopped, Want::Down { by_operator: false })
                .iter()
                .all(is_blocked)
        );
        assert_eq!(
            each(Phase::Spawning, Want::Up),
            [Wait::Pending, Wait::Pending, Wait::Pending]
        );
        let stopping = |then| {
            Phase::Stopping(Stopping::new(
                Run::new(10, Instant::now(), SystemTime::UNIX_EPOCH),
                Instant::now(),
                then,
            ))
        };
        assert_eq!(
            each(stopping(AfterStop::Start), Want::Up),
            [Wait::Pending, Wait::Pending, Wait::Pending]
        );
        assert!(
            each(stopping(AfterStop::Stay), Want::Down { by_operator: false })
                .iter()
                .all(is_blocked)
        );
    }

    #[test]
    fn a_finished_task_and_a_waiting_service_stand_for_their_own_dependencies() {
        let ok = Phase::Exited {
            status: ExitStatus::Code(0),
        };
        let until = Instant::now() + Duration::from_secs(30);
        let t = table(vec![
            ("db", &[], Phase::Backoff { until }, Want::Up),
            ("migrate", &["db"], ok, Want::Up),
            ("cache", &["db"], Phase::Waiting, Want::Up),
        ]);
        for through in ["migrate", "cache"] {
            assert_eq!(
                check(&t, through, Condition::Ready),
                Wait::Backoff {
                    service: "db".into(),
                    until
                },
                "{through}"
            );
        }
    }
}
