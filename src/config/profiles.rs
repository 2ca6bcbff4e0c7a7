//! `profiles`: services that exist in the config but run only when asked for, as in docker
//! compose.
//!
//! Selection happens when the config is loaded, before anything is planned: a service with
//! `profiles` that none of the selected profiles names, and that `runpm up SERVICE` did not
//! name (nor need, as a dependency of a named one), is left out of the config in force, as
//! compose leaves it out of `docker compose ps`. The daemon keeps the [`Selection`] and
//! applies it again to every reload. Services without `profiles` are always in.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::spec::Config;

/// What `runpm up` selected: `--profile` (and `RUNPM_PROFILES`), and the services it named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub profiles: BTreeSet<String>,
    pub services: BTreeSet<String>,
}

impl Config {
    /// Leaves out the services that `selection` does not select, and remembers it.
    pub fn select(&mut self, selection: &Selection) {
        let named: Vec<String> = selection.services.iter().cloned().collect();
        // A named replicated group stands for its replicas.
        let named: Vec<String> = named
            .iter()
            .flat_map(|name| match self.replicated.get(name) {
                Some(_) => self
                    .services
                    .values()
                    .filter(|s| s.replica_of.as_deref() == Some(name.as_str()))
                    .map(|s| s.name.clone())
                    .collect(),
                None => vec![name.clone()],
            })
            .collect();
        let wanted: BTreeSet<String> = self.closure(&named).into_iter().map(String::from).collect();
        self.services.retain(|name, spec| {
            spec.profiles.is_empty()
                || spec.profiles.iter().any(|p| selection.profiles.contains(p))
                || wanted.contains(name)
        });
        // A group stays known (for `scale`) when it is selected, even at zero replicas.
        self.replicated.retain(|group, r| {
            r.template.profiles.is_empty()
                || r.template
                    .profiles
                    .iter()
                    .any(|p| selection.profiles.contains(p))
                || selection.services.contains(group)
        });
        self.selection = selection.clone();
    }

    /// Every profile some service names, sorted.
    pub fn profile_names(&self) -> BTreeSet<&str> {
        self.services
            .values()
            .flat_map(|s| s.profiles.iter().map(String::as_str))
            .chain(
                self.replicated
                    .values()
                    .flat_map(|r| r.template.profiles.iter().map(String::as_str)),
            )
            .collect()
    }
}

/// `RUNPM_PROFILES=a,b`: the names, without blanks.
pub fn parse_list(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::testing::spec;

    fn config() -> Config {
        let web = spec("web");
        let mut debug = spec("debugger");
        debug.profiles = vec!["debug".into()];
        debug.depends_on = vec!["tool".into()];
        let mut tool = spec("tool");
        tool.profiles = vec!["tools".into(), "debug".into()];
        Config {
            source: "/x/services.toml".into(),
            base_dir: "/x".into(),
            settings: Default::default(),
            services: [web, debug, tool]
                .map(|s| (s.name.clone(), s))
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            replicated: BTreeMap::new(),
            selection: Default::default(),
        }
    }

    fn selected(selection: Selection) -> Vec<String> {
        let mut config = config();
        config.select(&selection);
        assert_eq!(config.selection, selection);
        config.services.into_keys().collect()
    }

    #[test]
    fn profiled_services_run_only_when_selected() {
        assert_eq!(selected(Selection::default()), ["web"]);
        let tools = Selection {
            profiles: ["tools".into()].into(),
            ..Selection::default()
        };
        assert_eq!(selected(tools), ["tool", "web"]);
        let debug = Selection {
            profiles: ["debug".into()].into(),
            ..Selection::default()
        };
        assert_eq!(selected(debug), ["debugger", "tool", "web"]);
    }

    #[test]
    fn a_named_service_is_selected_with_its_dependencies() {
        let named = Selection {
            services: ["debugger".into()].into(),
            ..Selection::default()
        };
        assert_eq!(selected(named), ["debugger", "tool", "web"]);
    }

    #[test]
    fn the_environment_list_ignores_blanks() {
        let names: Vec<String> = parse_list(" debug, ,tools,").collect();
        assert_eq!(names, ["debug", "tools"]);
        assert_eq!(config().profile_names(), ["debug", "tools"].into());
    }
}
