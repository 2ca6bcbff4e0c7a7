//! Builders for planner tests, and the model of what applying a plan does.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use camino::Utf8PathBuf;

use super::action::{Action, Reason};
use super::state::{Desired, Observed, RunState};
use crate::config::{Command, ServiceSpec};

/// A spec whose argv is `[cmd]`, depending on `deps`.
pub fn svc(name: &str, cmd: &str, deps: &[&str]) -> Arc<ServiceSpec> {
    let mut spec = crate::testing::spec(name);
    spec.command = Command::Argv(vec![cmd.into()]);
    spec.depends_on = deps.iter().map(|d| d.to_string()).collect();
    Arc::new(spec)
}

pub fn with_env(spec: Arc<ServiceSpec>, key: &str, value: &str) -> Arc<ServiceSpec> {
    let mut spec = Arc::unwrap_or_clone(spec);
    spec.env.insert(key.into(), value.into());
    Arc::new(spec)
}

pub fn up(spec: Arc<ServiceSpec>) -> (String, Desired) {
    (spec.name.clone(), Desired { spec, up: true })
}

pub fn down(spec: Arc<ServiceSpec>) -> (String, Desired) {
    (spec.name.clone(), Desired { spec, up: false })
}

fn seen(spec: Arc<ServiceSpec>, run: RunState) -> (String, Observed) {
    (spec.name.clone(), Observed { spec, run })
}

pub fn active(spec: Arc<ServiceSpec>) -> (String, Observed) {
    seen(spec, RunState::Active)
}

pub fn settled(spec: Arc<ServiceSpec>) -> (String, Observed) {
    seen(spec, RunState::Settled)
}

pub fn stopped(spec: Arc<ServiceSpec>) -> (String, Observed) {
    seen(spec, RunState::Stopped)
}

pub fn desired(rows: impl IntoIterator<Item = (String, Desired)>) -> BTreeMap<String, Desired> {
    rows.into_iter().collect()
}

pub fn observed(rows: impl IntoIterator<Item = (String, Observed)>) -> BTreeMap<String, Observed> {
    rows.into_iter().collect()
}

pub fn start(name: &str) -> Action {
    Action::Start { name: name.into() }
}

pub fn stop(name: &str) -> Action {
    Action::Stop { name: name.into() }
}

pub fn remove(name: &str) -> Action {
    Action::Remove { name: name.into() }
}

pub fn update(name: &str, changed: &[&str]) -> Action {
    Action::Update {
        name: name.into(),
        changed: changed.iter().map(|c| c.to_string()).collect(),
    }
}

pub fn restart(name: &str, reason: Reason) -> Action {
    Action::Restart {
        name: name.into(),
        reason,
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> Utf8PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    Utf8PathBuf::try_from(path).unwrap()
}

/// The observed table after the supervisor carried out `plan`: what a correct applier does,
/// reduced to the planner's view.
pub fn apply_to_observed(
    plan: &[Action],
    desired: &BTreeMap<String, Desired>,
    observed: &BTreeMap<String, Observed>,
) -> BTreeMap<String, Observed> {
    let mut table = observed.clone();
    for action in plan {
        let name = action.name();
        match action {
            Action::Start { .. } | Action::Restart { .. } => {
                let spec = desired[name].spec.clone();
                table.insert(
                    name.into(),
                    Observed {
                        spec,
                        run: RunState::Active,
                    },
                );
            }
            Action::Stop { .. } => {
                table.get_mut(name).expect("stop of an unknown service").run = RunState::Stopped;
            }
            Action::Update { .. } | Action::Live { .. } => {
                let spec = desired[name].spec.clone();
                table
                    .entry(name.into())
                    .and_modify(|seen| seen.spec = spec.clone())
                    .or_insert(Observed {
                        spec,
                        run: RunState::Stopped,
                    });
            }
            Action::Remove { .. } => {
                table.remove(name).expect("remove of an unknown service");
            }
        }
    }
    table
}
