//! Carrying a config over to an orchestrator: `runpmctl export systemd` and
//! `runpmctl export kubernetes`.
//!
//! Each exporter is a pure function from a validated [`Config`](crate::config::Config) to
//! text plus a list of [`Warning`]s: one for every setting the target cannot express (or
//! expresses differently enough to matter), so that nothing is dropped silently. Reading the
//! config, looking programs up on `PATH` and writing files is left to the binary.
//!
//! A warning is raised for a setting the config *sets* to something the target cannot honour;
//! behaviour that differs for every config (systemd's start rate limit also counting good
//! runs, Kubernetes' own restart back-off) is described once in the README instead of being
//! repeated for every service.

pub mod files;
pub mod kubernetes;
mod kubernetes_kinds;
mod resources;
mod sockets;
pub mod systemd;
mod yaml;

pub use yaml::to_yaml;

use std::fmt;

/// A setting that was not carried over, or not exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The service, or `[runpm]` for the daemon's settings.
    pub service: String,
    /// The unit-file key, as the user wrote it.
    pub field: &'static str,
    /// Why, and what to do instead where there is something.
    pub message: String,
}

impl Warning {
    fn new(service: &str, field: &'static str, message: impl Into<String>) -> Warning {
        Warning {
            service: service.to_owned(),
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    /// `SERVICE: FIELD: why`, printed by runpmctl after `warning: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.service, self.field, self.message)
    }
}

/// Splits `host:port` (or `[v6]:port`) as written in `ready.tcp` / `health.tcp`.
fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// Whether `host` names the machine itself, which in a pod means the pod.
fn is_local_host(host: &str) -> bool {
    matches!(
        host,
        "localhost" | "127.0.0.1" | "::1" | "0.0.0.0" | "" | "::"
    ) || host.starts_with("127.")
}

/// A config made of `specs`, as if loaded from `/srv/app/services.toml`.
#[cfg(test)]
fn test_config(specs: Vec<crate::config::ServiceSpec>) -> crate::config::Config {
    crate::config::Config {
        source: "/srv/app/services.toml".into(),
        base_dir: "/srv/app".into(),
        settings: crate::config::Settings::default(),
        services: specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
        replicated: Default::default(),
        selection: Default::default(),
    }
}

/// A spec with the documented defaults, run from the test config's directory.
#[cfg(test)]
fn test_spec(name: &str) -> crate::config::ServiceSpec {
    let mut spec = crate::testing::spec(name);
    spec.cwd = "/srv/app".into();
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", 80)));
        assert_eq!(split_host_port("[::1]:6379"), Some(("::1", 6379)));
        assert_eq!(split_host_port("db:5432"), Some(("db", 5432)));
        assert_eq!(split_host_port("nope"), None);
        assert!(is_local_host("localhost") && is_local_host("127.0.0.2"));
        assert!(!is_local_host("db"));
    }

    #[test]
    fn warnings_read_service_field_why() {
        let w = Warning::new("web", "health", "not mapped");
        assert_eq!(w.to_string(), "web: health: not mapped");
    }
}
