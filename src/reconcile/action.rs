//! What a plan asks the supervisor to do, one service at a time.

/// One step of a plan. The applier carries the steps out in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Wanted up and not running (stopped, or newly added): start it with the desired spec.
    Start { name: String },
    /// Wanted down, or removed from the config, and active. When the service is still in the
    /// config with a changed spec, an [`Action::Update`] for it follows.
    Stop { name: String },
    /// Wanted up and its spec changed, a dependency restarts, or the operator asked: stop it,
    /// then start it with the desired spec.
    Restart { name: String, reason: Reason },
    /// The spec changed (or the service is new) but it is not, and will not be, running:
    /// adopt the desired spec silently; it takes effect at the next start.
    Update { name: String, changed: Vec<String> },
    /// No longer in the config: forget it. A `Stop` precedes it when it was active.
    Remove { name: String },
    /// Running, and only its cgroup limits changed (`changed`, all in
    /// [`crate::config::LIMIT_KEYS`]): adopt the desired spec and write the limits to the
    /// running cgroup, without a restart.
    Live { name: String, changed: Vec<String> },
}

impl Action {
    /// The service this action is about.
    pub fn name(&self) -> &str {
        match self {
            Action::Start { name }
            | Action::Stop { name }
            | Action::Restart { name, .. }
            | Action::Update { name, .. }
            | Action::Remove { name }
            | Action::Live { name, .. } => name,
        }
    }
}

/// Why a service restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// These spec fields (TOML names) differ from the running spec.
    Changed(Vec<String>),
    /// This dependency restarts, so the dependent must reconnect to a fresh instance.
    Dependency(String),
    /// The operator asked (`runpmctl restart`).
    Requested,
}

impl Reason {
    /// The `changed` list of the wire form: field names, or a short phrase saying why.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Reason::Changed(fields) => fields.clone(),
            Reason::Dependency(dep) => vec![format!("dependency {dep} restarted")],
            Reason::Requested => vec!["restart requested".into()],
        }
    }
}
