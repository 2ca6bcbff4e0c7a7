//! `replicas = N`: one unit written, N services run.
//!
//! Expansion is a pure function on resolved specs, done at load time: the service `web`
//! with `replicas = 3` becomes `web.0`, `web.1` and `web.2`, each an ordinary service
//! (its own pid, state, logs and status row) whose spec says `replica_of = "web"`, with
//! `RUNPM_REPLICA` set to its index and `{replica}` replaced by it in the fields listed in
//! [`substitute`]. So the planner, the supervisor and the state file need to know nothing
//! of replicas.
//!
//! A dependency on the group (`depends_on = ["web"]`) becomes one on every replica, with the
//! same condition: the dependent waits for all of them. `"web.1"` names one. When the count
//! changes (`runpmctl scale`, or a reload), [`rescale`] replaces the replicas and widens or
//! narrows the dependencies that named the whole group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::{Command, Condition, Config, Probe, Ready, ServiceSpec};

/// The largest `replicas` (and `scale`) accepted: each replica is a process, a log file
/// and a row of the state file.
pub const MAX_REPLICAS: u32 = 1000;

/// What a unit with `replicas` was written as: its spec before expansion and the count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicated {
    /// As written: `{replica}` still in place, the name the group's.
    pub template: ServiceSpec,
    /// The count the config asks for.
    pub count: u32,
    /// The services that depend on the whole group, with their condition: what a new count
    /// changes besides the replicas.
    #[serde(default)]
    pub dependents: BTreeMap<String, Condition>,
}

/// A count set by `runpmctl scale`, recorded in the state file: it stands while the
/// config still asks for `config` replicas, and is dropped once the config says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaled {
    /// The config's `replicas` when the operator scaled.
    pub config: u32,
    /// The count the operator asked for.
    pub count: u32,
}

/// The name of replica `index` of `group`.
pub fn member(group: &str, index: u32) -> String {
    format!("{group}.{index}")
}

/// Replicas `0..count` of `template`.
pub fn expand(template: &ServiceSpec, count: u32) -> Vec<ServiceSpec> {
    (0..count)
        .map(|index| {
            let mut spec = expand_as(template, &index.to_string());
            spec.name = member(&template.name, index);
            spec
        })
        .collect()
}

/// `template` with `value` for `{replica}` and `RUNPM_REPLICA` (an export passes a
/// placeholder for the instance name); the name is left to the caller.
pub fn expand_as(template: &ServiceSpec, value: &str) -> ServiceSpec {
    let mut spec = template.clone();
    substitute(&mut spec, &|text: &str| text.replace("{replica}", value));
    spec.replica_of = Some(template.name.clone());
    spec.env.insert("RUNPM_REPLICA".into(), value.to_owned());
    spec
}

/// Applies `f` to every field in which `{replica}` is substituted. A new field that takes
/// `{replica}` is one line here.
fn substitute(spec: &mut ServiceSpec, f: &dyn Fn(&str) -> String) {
    let all = |list: &mut Vec<String>| list.iter_mut().for_each(|s| *s = f(s));
    match &mut spec.command {
        Command::Argv(argv) => all(argv),
        Command::Shell(script) => *script = f(script),
    }
    spec.env.values_mut().for_each(|v| *v = f(v));
    spec.listen.iter_mut().for_each(|l| l.for_replica(f));
    if let Some(ready) = &mut spec.ready {
        match ready {
            Ready::Notify => {}
            Ready::Tcp(addr) | Ready::Log(addr) => *addr = f(addr),
            Ready::Exec(argv) => all(argv),
            Ready::Http(check) => check.url = f(&check.url),
        }
    }
    if let Some(health) = &mut spec.health {
        match &mut health.probe {
            Probe::Tcp(addr) => *addr = f(addr),
            Probe::Exec(argv) => all(argv),
            Probe::Http(check) => check.url = f(&check.url),
        }
    }
}

/// Rewrites every dependency on a group in `counts` (group → replica count) into one on
/// each of its replicas, with the same condition.
pub(super) fn resolve_groups(
    services: &mut BTreeMap<String, ServiceSpec>,
    counts: &BTreeMap<String, u32>,
) {
    for spec in services.values_mut() {
        if !spec.depends_on.iter().any(|d| counts.contains_key(d)) {
            continue;
        }
        let mut depends_on = Vec::new();
        for dep in std::mem::take(&mut spec.depends_on) {
            let Some(&count) = counts.get(&dep) else {
                depends_on.push(dep);
                continue;
            };
            let condition = spec.conditions.remove(&dep);
            for index in 0..count {
                let name = member(&dep, index);
                if let Some(condition) = condition {
                    spec.conditions.insert(name.clone(), condition);
                }
                depends_on.push(name);
            }
        }
        depends_on.sort();
        depends_on.dedup();
        spec.depends_on = depends_on;
    }
}

/// `config` with `group` run as `count` replicas: the old replicas replaced, and every
/// service that depended on all of them (the group) now depending on all of the new ones.
/// `None` when `group` has no `replicas`.
pub fn rescale(config: &Config, group: &str, count: u32) -> Option<Config> {
    let replicated = config.replicated.get(group)?;
    let mut out = config.clone();
    let old: Vec<String> = config
        .services
        .values()
        .filter(|s| s.replica_of.as_deref() == Some(group))
        .map(|s| s.name.clone())
        .collect();
    for name in &old {
        out.services.remove(name);
    }
    for spec in expand(&replicated.template, count) {
        out.services.insert(spec.name.clone(), spec);
    }
    for (name, &condition) in &replicated.dependents {
        // A dependent that is itself replicated stands for its replicas.
        for spec in out.services.values_mut() {
            if spec.name != *name && spec.replica_of.as_deref() != Some(name.as_str()) {
                continue;
            }
            spec.depends_on.retain(|d| !old.contains(d));
            spec.conditions.retain(|d, _| !old.contains(d));
            spec.depends_on.push(group.to_owned());
            if condition != Condition::default() {
                spec.conditions.insert(group.to_owned(), condition);
            }
        }
    }
    // The new replicas' own dependencies on groups, and the widened ones above.
    let counts: BTreeMap<String, u32> = config
        .replicated
        .keys()
        .map(|g| {
            let n = out
                .services
                .values()
                .filter(|s| s.replica_of.as_deref() == Some(g.as_str()))
                .count();
            (g.clone(), n as u32)
        })
        .collect();
    resolve_groups(&mut out.services, &counts);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Health, HttpCheck};
    use crate::testing::spec;

    fn web() -> ServiceSpec {
        let mut web = spec("web");
        web.command = Command::Argv(vec!["serve".into(), "--port=80{replica}".into()]);
        web.env.insert("PORT".into(), "80{replica}".into());
        web.ready = Some(Ready::Tcp("127.0.0.1:80{replica}".into()));
        web.health = Some(Health {
            probe: Probe::Http(HttpCheck {
                url: "http://127.0.0.1:80{replica}/".into(),
                status: vec![],
                timeout: None,
            }),
            interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
            retries: 1,
        });
        web
    }

    #[test]
    fn expansion_substitutes_the_index_everywhere() {
        let replicas = expand(&web(), 3);
        let names: Vec<&str> = replicas.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web.0", "web.1", "web.2"]);
        let one = &replicas[1];
        assert_eq!(one.replica_of.as_deref(), Some("web"));
        assert_eq!(one.command.argv(), ["serve", "--port=801"]);
        assert_eq!(one.env["PORT"], "801");
        assert_eq!(one.env["RUNPM_REPLICA"], "1");
        assert_eq!(one.ready, Some(Ready::Tcp("127.0.0.1:801".into())));
        assert!(matches!(
            &one.health.as_ref().unwrap().probe,
            Probe::Http(c) if c.url == "http://127.0.0.1:801/"
        ));
        let mut shell = spec("job");
        shell.command = Command::Shell("echo {replica} {replica}".into());
        assert_eq!(
            expand(&shell, 1)[0].command,
            Command::Shell("echo 0 0".into())
        );
        assert!(expand(&web(), 0).is_empty());
    }

    #[test]
    fn a_dependency_on_the_group_is_one_on_every_replica() {
        let mut app = spec("app");
        app.depends_on = vec!["db".into(), "web".into()];
        app.conditions.insert("web".into(), Condition::Started);
        let mut one = spec("one");
        one.depends_on = vec!["web.1".into()];
        let mut services: BTreeMap<String, ServiceSpec> =
            [app, one].map(|s| (s.name.clone(), s)).into();
        resolve_groups(&mut services, &BTreeMap::from([("web".into(), 2)]));
        assert_eq!(services["app"].depends_on, ["db", "web.0", "web.1"]);
        assert_eq!(services["app"].condition("web.1"), Condition::Started);
        assert_eq!(services["one"].depends_on, ["web.1"]);
    }

    fn config_of(count: u32) -> Config {
        let template = web();
        let mut app = spec("app");
        app.depends_on = vec!["web".into()];
        let mut one = spec("one");
        one.depends_on = vec!["web.0".into()];
        let mut services: BTreeMap<String, ServiceSpec> =
            [app, one].map(|s| (s.name.clone(), s)).into();
        for replica in expand(&template, count) {
            services.insert(replica.name.clone(), replica);
        }
        resolve_groups(&mut services, &BTreeMap::from([("web".into(), count)]));
        Config {
            source: "/x/services.toml".into(),
            base_dir: "/x".into(),
            settings: Default::default(),
            services,
            replicated: BTreeMap::from([(
                "web".into(),
                Replicated {
                    template,
                    count,
                    dependents: BTreeMap::from([("app".into(), Condition::Ready)]),
                },
            )]),
            selection: Default::default(),
        }
    }

    #[test]
    fn rescaling_replaces_the_replicas_and_the_group_dependencies() {
        let two = config_of(2);
        let four = rescale(&two, "web", 4).unwrap();
        let names: Vec<&str> = four.services.keys().map(String::as_str).collect();
        assert_eq!(names, ["app", "one", "web.0", "web.1", "web.2", "web.3"]);
        assert_eq!(
            four.services["app"].depends_on,
            ["web.0", "web.1", "web.2", "web.3"]
        );
        assert_eq!(four.services["one"].depends_on, ["web.0"]);
        // The replicas that stay have the same spec: the planner leaves them alone.
        assert_eq!(four.services["web.1"], two.services["web.1"]);
        // Scaling back gives what the config said.
        assert_eq!(rescale(&four, "web", 2).unwrap().services, two.services);
        assert_eq!(rescale(&two, "web", 2).unwrap(), two);
        assert!(rescale(&two, "app", 2).is_none());
        // Through zero and back: the dependents of the group are remembered.
        let none = rescale(&two, "web", 0).unwrap();
        assert!(none.services["app"].depends_on.is_empty());
        assert_eq!(rescale(&none, "web", 2).unwrap().services, two.services);
    }
}
