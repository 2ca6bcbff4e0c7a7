//! The planner: a pure difference between the desired and the observed table.
//!
//! Each service is decided on its own first, from its row in this table (`spec` = whether
//! the desired spec differs from the observed one, compared canonically):
//!
//! | desired         | observed  | spec      | action                                   |
//! |-----------------|-----------|-----------|------------------------------------------|
//! | up              | absent    | —         | `Start` (new)                            |
//! | down            | absent    | —         | `Update ["new"]` (new, adopted stopped)  |
//! | absent          | Active    | —         | `Stop`, then `Remove`                    |
//! | absent          | not Active| —         | `Remove`                                 |
//! | up              | Stopped   | any       | `Start` with the desired spec            |
//! | up              | Active    | changed   | `Restart (fields)`                       |
//! | up              | Active    | limits only | `Live (fields)`: applied to the running cgroup |
//! | up              | Settled   | changed   | `Restart (fields)`: a config change re-arms |
//! | up              | Active/Settled | same | nothing, or `Restart (requested)` if asked |
//! | down            | Active    | any       | `Stop` (then `Update` if changed)        |
//! | down            | not Active| changed   | `Update (fields)`                        |
//! | down            | not Active| same      | nothing                                  |
//!
//! Then restarts cascade: every active service that is wanted up and depends, directly or
//! through other services, on a restarting one restarts too, so it reconnects to the fresh
//! instance. A dependency whose change does not restart it (it is stopped, so it is only
//! updated) leaves its dependents alone.
//!
//! Finally the plan is ordered so the applier can run it front to back: stops with dependents
//! first (by the observed graph, which is what is running), removes, updates, then restarts
//! and starts with dependencies first (by the desired graph, which is what will run).

use std::collections::{BTreeMap, BTreeSet};

use super::action::{Action, Reason};
use super::fields::changed_fields;
use super::order::dependencies_first;
use super::state::{Desired, Observed, RunState};
use crate::config::LIMIT_KEYS;

/// What brings a service (back) up.
enum Launch {
    Start,
    Restart(Reason),
}

/// The actions that make `observed` match `desired`, in the order to apply them. `restart`
/// names the services the operator asked to restart; names not wanted up are ignored.
pub fn plan(
    desired: &BTreeMap<String, Desired>,
    observed: &BTreeMap<String, Observed>,
    restart: &BTreeSet<String>,
) -> Vec<Action> {
    let mut stops: BTreeSet<&str> = BTreeSet::new();
    let mut removes: BTreeSet<&str> = BTreeSet::new();
    let mut updates: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut launches: BTreeMap<&str, Launch> = BTreeMap::new();
    let mut lives: BTreeMap<&str, Vec<String>> = BTreeMap::new();

    for (name, seen) in observed {
        if !desired.contains_key(name) {
            if seen.run == RunState::Active {
                stops.insert(name);
            }
            removes.insert(name);
        }
    }

    for (name, want) in desired {
        let Some(seen) = observed.get(name) else {
            if want.up {
                launches.insert(name, Launch::Start);
            } else {
                updates.insert(name, vec!["new".into()]);
            }
            continue;
        };
        // `Arc::ptr_eq` is only a shortcut: the comparison that counts is by value.
        let changed = (!std::sync::Arc::ptr_eq(&want.spec, &seen.spec) && want.spec != seen.spec)
            .then(|| changed_fields(&seen.spec, &want.spec));
        match (want.up, seen.run) {
            (true, RunState::Stopped) => {
                launches.insert(name, Launch::Start);
            }
            (true, RunState::Active | RunState::Settled) => {
                let live = |fields: &[String]| {
                    seen.run == RunState::Active
                        && !restart.contains(name)
                        && fields.iter().all(|f| LIMIT_KEYS.contains(&f.as_str()))
                };
                if let Some(fields) = changed {
                    if live(&fields) {
                        lives.insert(name, fields);
                    } else {
                        launches.insert(name, Launch::Restart(Reason::Changed(fields)));
                    }
                } else if restart.contains(name) {
                    launches.insert(name, Launch::Restart(Reason::Requested));
                }
            }
            (false, run) => {
                if run == RunState::Active {
                    stops.insert(name);
                }
                if let Some(fields) = changed {
                    updates.insert(name, fields);
                }
            }
        }
    }

    let start_order = dependencies_first(desired, |d| d.spec.depends_on.as_slice());
    cascade(desired, observed, &start_order, &mut launches);
    // A restart (of a dependency) brings the new limits with the new process anyway.
    lives.retain(|name, _| !launches.contains_key(name));

    let stop_order = dependencies_first(observed, |o| o.spec.depends_on.as_slice());
    let mut actions = Vec::new();
    for name in stop_order.iter().rev() {
        if stops.contains(name) {
            actions.push(Action::Stop {
                name: name.to_string(),
            });
        }
    }
    for name in stop_order.iter().rev() {
        if removes.contains(name) {
            actions.push(Action::Remove {
                name: name.to_string(),
            });
        }
    }
    for (name, changed) in updates {
        actions.push(Action::Update {
            name: name.into(),
            changed,
        });
    }
    for (name, changed) in lives {
        actions.push(Action::Live {
            name: name.into(),
            changed,
        });
    }
    for name in start_order {
        match launches.remove(name) {
            Some(Launch::Start) => actions.push(Action::Start { name: name.into() }),
            Some(Launch::Restart(reason)) => actions.push(Action::Restart {
                name: name.into(),
                reason,
            }),
            None => {}
        }
    }
    actions
}

/// Adds a `Restart (dependency)` for every active, wanted-up service downstream of a
/// restart. Walking in dependency order means a service's dependencies are final when it is
/// reached. `reached` remembers, for services that do not restart themselves (stopped,
/// settled, being stopped), the restarting service upstream of them, so the cascade passes
/// through them to whatever depends on them.
fn cascade<'a>(
    desired: &'a BTreeMap<String, Desired>,
    observed: &BTreeMap<String, Observed>,
    start_order: &[&'a str],
    launches: &mut BTreeMap<&'a str, Launch>,
) {
    let mut reached: BTreeMap<&str, &str> = BTreeMap::new();
    for &name in start_order {
        if matches!(launches.get(name), Some(Launch::Restart(_))) {
            continue;
        }
        let want = &desired[name];
        let upstream = want.spec.depends_on.iter().find_map(|dep| {
            if matches!(launches.get(dep.as_str()), Some(Launch::Restart(_))) {
                Some(dep.as_str())
            } else {
                reached.get(dep.as_str()).copied()
            }
        });
        let Some(upstream) = upstream else {
            continue;
        };
        let active = observed
            .get(name)
            .is_some_and(|seen| seen.run == RunState::Active);
        if want.up && active && !launches.contains_key(name) {
            launches.insert(
                name,
                Launch::Restart(Reason::Dependency(upstream.to_string())),
            );
        } else {
            reached.insert(name, upstream);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::reconcile::testing::*;

    fn names(set: &[&str]) -> BTreeSet<String> {
        set.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn identical_tables_plan_nothing() {
        let d = desired([up(svc("db", "a", &[])), up(svc("web", "a", &["db"]))]);
        let o = observed([
            active(svc("db", "a", &[])),
            active(svc("web", "a", &["db"])),
        ]);
        assert_eq!(plan(&d, &o, &names(&[])), []);
    }

    #[test]
    fn a_new_service_wanted_up_starts() {
        let d = desired([up(svc("web", "a", &[]))]);
        assert_eq!(plan(&d, &observed([]), &names(&[])), [start("web")]);
    }

    #[test]
    fn a_new_service_wanted_down_is_adopted_as_an_update() {
        let d = desired([down(svc("web", "a", &[]))]);
        assert_eq!(
            plan(&d, &observed([]), &names(&[])),
            [update("web", &["new"])]
        );
    }

    #[test]
    fn a_removed_active_service_stops_then_is_removed() {
        let o = observed([active(svc("old", "a", &[]))]);
        assert_eq!(
            plan(&desired([]), &o, &names(&[])),
            [stop("old"), remove("old")]
        );
    }

    #[test]
    fn a_removed_settled_service_is_only_removed() {
        let o = observed([settled(svc("old", "a", &[])), stopped(svc("off", "a", &[]))]);
        assert_eq!(
            plan(&desired([]), &o, &names(&[])),
            [remove("old"), remove("off")]
        );
    }

    #[test]
    fn wanted_up_and_stopped_starts_with_the_new_spec() {
        let d = desired([up(svc("web", "b", &[]))]);
        let o = observed([stopped(svc("web", "a", &[]))]);
        assert_eq!(plan(&d, &o, &names(&[])), [start("web")]);
    }

    #[test]
    fn wanted_down_and_active_stops() {
        let d = desired([down(svc("web", "a", &[]))]);
        let o = observed([active(svc("web", "a", &[]))]);
        assert_eq!(plan(&d, &o, &names(&[])), [stop("web")]);
    }

    #[test]
    fn wanted_down_active_and_changed_stops_then_adopts_the_spec() {
        let d = desired([down(svc("web", "b", &[]))]);
        let o = observed([active(svc("web", "a", &[]))]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [stop("web"), update("web", &["cmd"])]
        );
    }

    #[test]
    fn settled_and_unchanged_stays_down() {
        let d = desired([up(svc("job", "a", &[]))]);
        let o = observed([settled(svc("job", "a", &[]))]);
        assert_eq!(plan(&d, &o, &names(&[])), []);
    }

    #[test]
    fn settled_and_changed_restarts_because_a_config_change_rearms() {
        let d = desired([up(svc("job", "b", &[]))]);
        let o = observed([settled(svc("job", "a", &[]))]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [restart("job", Reason::Changed(vec!["cmd".into()]))]
        );
    }

    #[test]
    fn active_and_changed_restarts_naming_the_fields() {
        let d = desired([up(with_env(svc("web", "b", &[]), "PORT", "80"))]);
        let o = observed([active(svc("web", "a", &[]))]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [restart(
                "web",
                Reason::Changed(vec!["cmd".into(), "env".into()])
            )]
        );
    }

    #[test]
    fn not_running_and_changed_is_updated_silently() {
        let d = desired([down(svc("a", "b", &[])), down(svc("b", "b", &[]))]);
        let o = observed([stopped(svc("a", "a", &[])), settled(svc("b", "a", &[]))]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [update("a", &["cmd"]), update("b", &["cmd"])]
        );
    }

    #[test]
    fn requested_restarts_apply_only_to_services_wanted_up() {
        let d = desired([
            up(svc("web", "a", &[])),
            down(svc("off", "a", &[])),
            up(svc("job", "a", &[])),
        ]);
        let o = observed([
            active(svc("web", "a", &[])),
            stopped(svc("off", "a", &[])),
            settled(svc("job", "a", &[])),
        ]);
        assert_eq!(
            plan(&d, &o, &names(&["web", "off", "job", "ghost"])),
            [
                restart("job", Reason::Requested),
                restart("web", Reason::Requested)
            ]
        );
    }

    #[test]
    fn a_requested_restart_of_a_stopped_service_is_a_start() {
        let d = desired([up(svc("web", "a", &[]))]);
        let o = observed([stopped(svc("web", "a", &[]))]);
        assert_eq!(plan(&d, &o, &names(&["web"])), [start("web")]);
    }

    #[test]
    fn a_spec_change_wins_over_a_requested_restart() {
        let d = desired([up(svc("web", "b", &[]))]);
        let o = observed([active(svc("web", "a", &[]))]);
        assert_eq!(
            plan(&d, &o, &names(&["web"])),
            [restart("web", Reason::Changed(vec!["cmd".into()]))]
        );
    }

    #[test]
    fn a_restart_cascades_to_active_dependents_transitively_in_dependency_order() {
        let d = desired([
            up(svc("db", "b", &[])),
            up(svc("api", "a", &["db"])),
            up(svc("web", "a", &["api"])),
            up(svc("other", "a", &[])),
        ]);
        let o = observed([
            active(svc("db", "a", &[])),
            active(svc("api", "a", &["db"])),
            active(svc("web", "a", &["api"])),
            active(svc("other", "a", &[])),
        ]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [
                restart("db", Reason::Changed(vec!["cmd".into()])),
                restart("api", Reason::Dependency("db".into())),
                restart("web", Reason::Dependency("api".into())),
            ]
        );
    }

    #[test]
    fn the_cascade_passes_through_a_settled_service() {
        let d = desired([
            up(svc("db", "b", &[])),
            up(svc("migrate", "a", &["db"])),
            up(svc("web", "a", &["migrate"])),
        ]);
        let o = observed([
            active(svc("db", "a", &[])),
            settled(svc("migrate", "a", &["db"])),
            active(svc("web", "a", &["migrate"])),
        ]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [
                restart("db", Reason::Changed(vec!["cmd".into()])),
                restart("web", Reason::Dependency("db".into())),
            ]
        );
    }

    #[test]
    fn a_dependent_keeps_its_own_reason() {
        let d = desired([up(svc("db", "b", &[])), up(svc("web", "b", &["db"]))]);
        let o = observed([
            active(svc("db", "a", &[])),
            active(svc("web", "a", &["db"])),
        ]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [
                restart("db", Reason::Changed(vec!["cmd".into()])),
                restart("web", Reason::Changed(vec!["cmd".into()])),
            ]
        );
    }

    #[test]
    fn a_requested_restart_cascades_too() {
        let d = desired([up(svc("db", "a", &[])), up(svc("web", "a", &["db"]))]);
        let o = observed([
            active(svc("db", "a", &[])),
            active(svc("web", "a", &["db"])),
        ]);
        assert_eq!(
            plan(&d, &o, &names(&["db"])),
            [
                restart("db", Reason::Requested),
                restart("web", Reason::Dependency("db".into())),
            ]
        );
    }

    #[test]
    fn an_updated_dependency_does_not_restart_its_dependents() {
        let d = desired([down(svc("db", "b", &[])), up(svc("web", "a", &["db"]))]);
        let o = observed([
            stopped(svc("db", "a", &[])),
            active(svc("web", "a", &["db"])),
        ]);
        assert_eq!(plan(&d, &o, &names(&[])), [update("db", &["cmd"])]);
    }

    #[test]
    fn a_started_dependency_does_not_restart_its_dependents() {
        let d = desired([up(svc("db", "a", &[])), up(svc("web", "a", &["db"]))]);
        let o = observed([
            stopped(svc("db", "a", &[])),
            active(svc("web", "a", &["db"])),
        ]);
        assert_eq!(plan(&d, &o, &names(&[])), [start("db")]);
    }

    #[test]
    fn the_cascade_skips_dependents_that_are_not_running() {
        let d = desired([
            up(svc("db", "b", &[])),
            up(svc("web", "a", &["db"])),
            down(svc("admin", "a", &["db"])),
        ]);
        let o = observed([
            active(svc("db", "a", &[])),
            settled(svc("web", "a", &["db"])),
            stopped(svc("admin", "a", &["db"])),
        ]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [restart("db", Reason::Changed(vec!["cmd".into()]))]
        );
    }

    #[test]
    fn stops_run_dependents_first_by_the_observed_graph() {
        // In the new config `web` no longer depends on `db`, but what runs now still does:
        // stopping `db` first would pull it from under a running `web`.
        let d = desired([down(svc("db", "a", &[])), down(svc("web", "a", &[]))]);
        let o = observed([
            active(svc("db", "a", &[])),
            active(svc("web", "a", &["db"])),
        ]);
        let p = plan(&d, &o, &names(&[]));
        assert_eq!(p, [stop("web"), stop("db"), update("web", &["depends_on"])]);
    }

    #[test]
    fn starts_run_dependencies_first_by_the_desired_graph() {
        let d = desired([up(svc("a", "x", &["z"])), up(svc("z", "x", &[]))]);
        assert_eq!(
            plan(&d, &observed([]), &names(&[])),
            [start("z"), start("a")]
        );
    }

    #[test]
    fn kinds_are_ordered_stops_removes_updates_then_launches() {
        let d = desired([
            up(svc("new", "a", &[])),
            down(svc("upd", "b", &[])),
            down(svc("down", "a", &[])),
        ]);
        let o = observed([
            active(svc("gone", "a", &[])),
            stopped(svc("upd", "a", &[])),
            active(svc("down", "a", &[])),
        ]);
        assert_eq!(
            plan(&d, &o, &names(&[])),
            [
                stop("gone"),
                stop("down"),
                remove("gone"),
                update("upd", &["cmd"]),
                start("new"),
            ]
        );
    }

    #[test]
    fn reordering_keys_and_comments_in_the_file_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(
            dir.path(),
            "a.toml",
            r#"
[services.db]
cmd = ["redis-server", "--port", "6390"]
env = { A = "1", B = "2" }

[services.web]
cmd = ["python3", "-m", "http.server"]
depends_on = ["db"]
restart = "always"
kill_timeout = "10s"
"#,
        );
        let second = write(
            dir.path(),
            "b.toml",
            r#"
# The web front end.
[services.web]
kill_timeout  =  "10000ms"   # same duration, other spelling
restart = "always"
depends_on = [ "db" ]
cmd = [ "python3", "-m", "http.server" ]

[services.db]
env = { B = "2", A = "1" }
cmd = ["redis-server", "--port", "6390"]
"#,
        );
        let old = crate::config::load(&first).unwrap();
        let new = crate::config::load(&second).unwrap();
        let o = old
            .services
            .into_values()
            .map(|s| active(std::sync::Arc::new(s)))
            .collect::<Vec<_>>();
        let d = new
            .services
            .into_values()
            .map(|s| up(std::sync::Arc::new(s)))
            .collect::<Vec<_>>();
        assert_eq!(plan(&desired(d), &observed(o), &names(&[])), []);
    }
}
