//! A plan in the wire form that `runpmctl reload` prints: one change per service.

use std::collections::{BTreeMap, BTreeSet};

use super::action::Action;
use super::state::Desired;
use crate::ipc::{Change, ReloadResult};

/// The reload result for `plan`. A service's follow-up actions fold into its `stopped` line:
/// a `Remove` after a `Stop` adds `removed`, an `Update` after a `Stop` adds its fields, so
/// the user reads one line per service.
pub fn describe(plan: &[Action], unchanged: usize, dry_run: bool, config: &str) -> ReloadResult {
    let mut changes: Vec<Change> = Vec::with_capacity(plan.len());
    let mut stopped_at: BTreeMap<&str, usize> = BTreeMap::new();
    fn push(changes: &mut Vec<Change>, name: &str, action: &str, changed: Vec<String>) {
        changes.push(Change {
            name: name.into(),
            action: action.into(),
            changed,
        });
    }
    for action in plan {
        match action {
            Action::Start { name } => push(&mut changes, name, "started", vec![]),
            Action::Stop { name } => {
                stopped_at.insert(name, changes.len());
                push(&mut changes, name, "stopped", vec![]);
            }
            Action::Remove { name } => match stopped_at.get(name.as_str()) {
                Some(&at) => changes[at].changed.push("removed".into()),
                None => push(&mut changes, name, "stopped", vec!["removed".into()]),
            },
            Action::Update { name, changed } => match stopped_at.get(name.as_str()) {
                Some(&at) => changes[at].changed.extend(changed.iter().cloned()),
                None => push(&mut changes, name, "updated", changed.clone()),
            },
            Action::Restart { name, reason } => {
                push(&mut changes, name, "restarted", reason.describe());
            }
            Action::Live { name, changed } => push(&mut changes, name, "live", changed.clone()),
        }
    }
    ReloadResult {
        dry_run,
        config: config.into(),
        changes,
        unchanged,
    }
}

/// How many desired services the plan leaves alone.
pub fn unchanged(desired: &BTreeMap<String, Desired>, plan: &[Action]) -> usize {
    let touched: BTreeSet<&str> = plan.iter().map(Action::name).collect();
    desired
        .keys()
        .filter(|name| !touched.contains(name.as_str()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::Reason;
    use crate::reconcile::testing::*;

    fn change(name: &str, action: &str, changed: &[&str]) -> Change {
        Change {
            name: name.into(),
            action: action.into(),
            changed: changed.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn maps_each_action_to_its_word() {
        let plan = [
            stop("old"),
            remove("old"),
            remove("idle"),
            update("later", &["env"]),
            update("fresh", &["new"]),
            restart("db", Reason::Changed(vec!["cmd".into()])),
            restart("web", Reason::Dependency("db".into())),
            restart("api", Reason::Requested),
            start("new"),
        ];
        let result = describe(&plan, 7, true, "/p/services.toml");
        assert_eq!(
            result,
            ReloadResult {
                dry_run: true,
                config: "/p/services.toml".into(),
                unchanged: 7,
                changes: vec![
                    change("old", "stopped", &["removed"]),
                    change("idle", "stopped", &["removed"]),
                    change("later", "updated", &["env"]),
                    change("fresh", "updated", &["new"]),
                    change("db", "restarted", &["cmd"]),
                    change("web", "restarted", &["dependency db restarted"]),
                    change("api", "restarted", &["restart requested"]),
                    change("new", "started", &[]),
                ],
            }
        );
    }

    #[test]
    fn a_stop_followed_by_an_update_is_one_line() {
        let result = describe(&[stop("web"), update("web", &["cmd"])], 0, false, "x");
        assert_eq!(result.changes, [change("web", "stopped", &["cmd"])]);
    }

    #[test]
    fn a_plain_stop_has_no_reasons() {
        let result = describe(&[stop("web")], 0, false, "x");
        assert_eq!(result.changes, [change("web", "stopped", &[])]);
    }

    #[test]
    fn unchanged_counts_desired_services_the_plan_does_not_name() {
        let d = desired([
            up(svc("a", "x", &[])),
            up(svc("b", "x", &[])),
            up(svc("c", "x", &[])),
        ]);
        assert_eq!(
            unchanged(&d, &[start("a"), stop("gone"), remove("gone")]),
            2
        );
        assert_eq!(unchanged(&d, &[]), 3);
    }
}
