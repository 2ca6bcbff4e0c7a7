//! Property tests of the planner over small random service graphs.
//!
//! Each case is up to six services `s0..s5`; a service depends only on lower-numbered ones,
//! so both graphs are acyclic. Each service may be desired, observed or both, with its
//! desired spec a random mutation (cmd, env, depends_on) of the observed one, a random
//! up/down and a random run state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;

use super::action::{Action, Reason};
use super::plan::plan;
use super::state::{Desired, Observed, RunState};
use super::testing::{apply_to_observed, svc, with_env};
use crate::config::ServiceSpec;

#[derive(Debug, Clone)]
struct Row {
    in_desired: bool,
    in_observed: bool,
    old_cmd: u8,
    new_cmd: u8,
    old_env: u8,
    new_env: u8,
    old_deps: u8,
    new_deps: u8,
    up: bool,
    run: RunState,
    restart: bool,
}

fn row() -> impl Strategy<Value = Row> {
    let presence = prop_oneof![Just((true, true)), Just((true, false)), Just((false, true))];
    let run = prop_oneof![
        Just(RunState::Active),
        Just(RunState::Settled),
        Just(RunState::Stopped)
    ];
    (
        presence,
        (0..2u8, 0..2u8, 0..2u8, 0..2u8),
        (any::<u8>(), any::<u8>()),
        any::<bool>(),
        run,
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(
                (in_desired, in_observed),
                (old_cmd, new_cmd, old_env, new_env),
                deps,
                up,
                run,
                restart,
            )| {
                Row {
                    in_desired,
                    in_observed,
                    old_cmd,
                    new_cmd,
                    old_env,
                    new_env,
                    old_deps: deps.0,
                    new_deps: deps.1,
                    up,
                    run,
                    restart,
                }
            },
        )
}

struct Case {
    desired: BTreeMap<String, Desired>,
    observed: BTreeMap<String, Observed>,
    restart: BTreeSet<String>,
}

/// A compact view of a case: full specs would bury a shrunk counterexample.
impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let brief = |s: &ServiceSpec| {
            format!(
                "{:?} env={:?} deps={:?}",
                s.command.argv(),
                s.env,
                s.depends_on
            )
        };
        let mut m = f.debug_map();
        for (n, d) in &self.desired {
            m.entry(
                &format!("desired {n}"),
                &format!("up={} {}", d.up, brief(&d.spec)),
            );
        }
        for (n, o) in &self.observed {
            m.entry(
                &format!("observed {n}"),
                &format!("{:?} {}", o.run, brief(&o.spec)),
            );
        }
        m.entry(&"restart", &self.restart);
        m.finish()
    }
}

fn name(i: usize) -> String {
    format!("s{i}")
}

/// A spec for service `i` whose dependencies are the lower-numbered services in `mask` that
/// exist in the table being built (a validated config only names services it has).
fn spec(i: usize, cmd: u8, env: u8, mask: u8, exists: impl Fn(usize) -> bool) -> Arc<ServiceSpec> {
    let deps: Vec<String> = (0..i)
        .filter(|&j| mask & (1 << j) != 0 && exists(j))
        .map(name)
        .collect();
    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
    let spec = svc(&name(i), &format!("cmd{cmd}"), &deps);
    if env == 0 {
        spec
    } else {
        with_env(spec, "MODE", "x")
    }
}

fn build(rows: &[Row]) -> Case {
    let mut desired = BTreeMap::new();
    let mut observed = BTreeMap::new();
    let mut restart = BTreeSet::new();
    for (i, r) in rows.iter().enumerate() {
        if r.in_desired {
            let spec = spec(i, r.new_cmd, r.new_env, r.new_deps, |j| rows[j].in_desired);
            desired.insert(name(i), Desired { spec, up: r.up });
        }
        if r.in_observed {
            let spec = spec(i, r.old_cmd, r.old_env, r.old_deps, |j| rows[j].in_observed);
            observed.insert(name(i), Observed { spec, run: r.run });
        }
        if r.restart {
            restart.insert(name(i));
        }
    }
    Case {
        desired,
        observed,
        restart,
    }
}

fn case() -> impl Strategy<Value = Case> {
    prop::collection::vec(row(), 1..=6).prop_map(|rows| build(&rows))
}

/// `name` and everything it depends on, transitively, in `deps`' graph.
fn ancestors(name: &str, deps: &dyn Fn(&str) -> Vec<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = deps(name);
    while let Some(dep) = stack.pop() {
        if out.insert(dep.clone()) {
            stack.extend(deps(&dep));
        }
    }
    out
}

fn deps_in<T>(
    table: &BTreeMap<String, T>,
    name: &str,
    spec: impl Fn(&T) -> &Arc<ServiceSpec>,
) -> Vec<String> {
    table
        .get(name)
        .map(|entry| spec(entry).depends_on.clone())
        .unwrap_or_default()
}

fn launches(action: &Action) -> bool {
    matches!(action, Action::Start { .. } | Action::Restart { .. })
}

fn kind_rank(action: &Action) -> u8 {
    match action {
        Action::Stop { .. } => 0,
        Action::Remove { .. } => 1,
        Action::Update { .. } | Action::Live { .. } => 2,
        Action::Start { .. } | Action::Restart { .. } => 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn planning_again_after_applying_is_empty(c in case()) {
        let first = plan(&c.desired, &c.observed, &c.restart);
        let after = apply_to_observed(&first, &c.desired, &c.observed);
        let second = plan(&c.desired, &after, &BTreeSet::new());
        prop_assert!(second.is_empty(), "first {first:?}, then {second:?}");
    }

    #[test]
    fn unchanged_services_appear_only_as_dependents_of_a_restart(c in case()) {
        let p = plan(&c.desired, &c.observed, &BTreeSet::new());
        let desired_deps = |n: &str| deps_in(&c.desired, n, |d| &d.spec);
        for action in &p {
            let name = action.name();
            let (Some(want), Some(seen)) = (c.desired.get(name), c.observed.get(name)) else {
                continue;
            };
            // Consistent: the state is one the planner leaves alone for that want.
            let consistent = matches!(
                (want.up, seen.run),
                (true, RunState::Active | RunState::Settled)
                    | (false, RunState::Settled | RunState::Stopped)
            );
            if want.spec != seen.spec || !consistent {
                continue;
            }
            let Action::Restart { reason: Reason::Dependency(dep), .. } = action else {
                return Err(TestCaseError::fail(format!("unchanged {name} in {p:?}")));
            };
            prop_assert!(ancestors(name, &desired_deps).contains(dep), "{p:?}");
            prop_assert!(
                p.iter().any(|a| matches!(a, Action::Restart { name, .. } if name == dep)),
                "{dep} does not restart in {p:?}"
            );
        }
    }

    #[test]
    fn order_follows_the_dependency_graphs(c in case()) {
        let p = plan(&c.desired, &c.observed, &c.restart);
        let desired_deps = |n: &str| deps_in(&c.desired, n, |d| &d.spec);
        let observed_deps = |n: &str| deps_in(&c.observed, n, |o| &o.spec);
        let at = |pred: &dyn Fn(&Action) -> bool, name: &str| {
            p.iter().position(|a| a.name() == name && pred(a))
        };
        let is_stop = |a: &Action| matches!(a, Action::Stop { .. });
        for (i, action) in p.iter().enumerate() {
            if launches(action) {
                for dep in ancestors(action.name(), &desired_deps) {
                    if let Some(j) = at(&launches, &dep) {
                        prop_assert!(j < i, "{dep} launches after {}: {p:?}", action.name());
                    }
                }
            }
            if is_stop(action) {
                for dep in ancestors(action.name(), &observed_deps) {
                    if let Some(j) = at(&is_stop, &dep) {
                        prop_assert!(i < j, "{dep} stops before {}: {p:?}", action.name());
                    }
                }
            }
        }
        prop_assert!(p.windows(2).all(|w| kind_rank(&w[0]) <= kind_rank(&w[1])), "{p:?}");
    }

    #[test]
    fn a_name_appears_once_except_a_stop_with_its_follow_up(c in case()) {
        let p = plan(&c.desired, &c.observed, &c.restart);
        let mut by_name: BTreeMap<&str, Vec<&Action>> = BTreeMap::new();
        for action in &p {
            by_name.entry(action.name()).or_default().push(action);
        }
        for (name, actions) in by_name {
            match actions.as_slice() {
                [_] => {}
                [Action::Stop { .. }, Action::Remove { .. } | Action::Update { .. }] => {}
                other => return Err(TestCaseError::fail(format!("{name}: {other:?}"))),
            }
        }
    }
}
