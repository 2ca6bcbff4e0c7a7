//! Tests of the planner's "live" class: a running service whose only changes are cgroup
//! limits keeps its process; the new limits are written to its cgroup.

use std::sync::Arc;

use super::action::{Action, Reason};
use super::plan::plan;
use super::testing::*;
use crate::config::ServiceSpec;

fn with_memory(spec: Arc<ServiceSpec>, bytes: u64) -> Arc<ServiceSpec> {
    let mut s = (*spec).clone();
    s.limits.memory_max = Some(bytes);
    Arc::new(s)
}

fn live(name: &str, changed: &[&str]) -> Action {
    Action::Live {
        name: name.into(),
        changed: changed.iter().map(|c| c.to_string()).collect(),
    }
}

#[test]
fn a_limit_change_of_a_running_service_is_applied_live() {
    let d = desired([up(with_memory(svc("web", "a", &[]), 2))]);
    let o = observed([active(with_memory(svc("web", "a", &[]), 1))]);
    let p = plan(&d, &o, &Default::default());
    assert_eq!(p, [live("web", &["memory_max"])]);
    // Applying it leaves nothing to do: the plan is idempotent.
    let after = apply_to_observed(&p, &d, &o);
    assert!(plan(&d, &after, &Default::default()).is_empty());
}

#[test]
fn a_limit_change_with_another_change_restarts() {
    let d = desired([up(with_memory(svc("web", "b", &[]), 2))]);
    let o = observed([active(with_memory(svc("web", "a", &[]), 1))]);
    assert_eq!(
        plan(&d, &o, &Default::default()),
        [restart(
            "web",
            Reason::Changed(vec!["cmd".into(), "memory_max".into()])
        )]
    );
}

#[test]
fn a_limit_change_does_not_restart_dependents_and_yields_to_a_cascade() {
    let d = desired([
        up(with_memory(svc("db", "a", &[]), 2)),
        up(svc("web", "a", &["db"])),
    ]);
    let o = observed([
        active(with_memory(svc("db", "a", &[]), 1)),
        active(svc("web", "a", &["db"])),
    ]);
    assert_eq!(
        plan(&d, &o, &Default::default()),
        [live("db", &["memory_max"])]
    );
    // A service whose dependency restarts restarts too: its new limits come with it.
    let d = desired([
        up(svc("db", "b", &[])),
        up(with_memory(svc("web", "a", &["db"]), 2)),
    ]);
    let o = observed([
        active(svc("db", "a", &[])),
        active(with_memory(svc("web", "a", &["db"]), 1)),
    ]);
    let p = plan(&d, &o, &Default::default());
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p.iter().all(|a| matches!(a, Action::Restart { .. })),
        "{p:?}"
    );
}
