//! Unit files: loading, validation and the resolved service specs.
//!
//! Loading runs in two stages. `raw` is the schema as written, checked by serde alone;
//! `validate` turns it into the resolved [`ServiceSpec`]s (defaults, absolute paths, users
//! looked up, the dependency graph checked). Both stages report into one list of
//! [`Diagnostic`]s, so a user sees every problem at once, each at its file position.

mod diagnostic;
mod discover;
mod envfile;
mod graph;
mod http;
mod kinds;
mod limits;
pub mod listen;
mod load;
pub mod profiles;
mod raw;
mod recover;
pub mod reference;
pub mod replicas;
mod size;
mod spec;
mod suggest;
mod validate;

pub use diagnostic::{ConfigErrors, Diagnostic};
pub use discover::{DEFAULT_FILE, DiscoverError, discover};
pub use http::{HttpUrl, parse_http_url};
pub use listen::check_fd_name;
pub use load::{load, utf8_error_position};
pub use profiles::Selection;
pub use replicas::{Replicated, Scaled};
pub use spec::*;
pub use suggest::did_you_mean;

/// The defaults of optional fields, for code that must tell a value that was set from one
/// that was not (the exporters warn only about the former).
pub(crate) mod defaults {
    pub(crate) use super::validate::{
        FAILED_COOLDOWN, LOG_KEEP, LOG_MAX_SIZE, MAX_RESTARTS, MIN_UPTIME, RESTART_DELAY,
        RESTART_DELAY_MAX, RESTART_WINDOW,
    };
}

#[cfg(test)]
mod tests;
