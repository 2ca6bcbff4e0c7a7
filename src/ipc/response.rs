//! What the daemon answers, as types: the core decides a [`Response`] (or a
//! [`ProtocolError`]) and only this module turns it into the JSON of a reply's `result`.
//!
//! The wire format is the contract of `runpmctl`, of scripts and of the README's examples:
//! each variant serialises to exactly the object it always has (`status` and the operator
//! commands to [`StatusResult`], `reload`/`resurrect` to [`ReloadResult`], `save` to
//! `{"path": …}`, `shutdown` to `{"shutting_down": true}`).

use serde::Serialize;

use super::protocol::{Json, LogsResult, ProtocolError, ReloadResult, Reply, StatusResult};

/// A successful answer to one request (or one batch of a streamed answer).
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// A `hello` that reached the core (the connection answers it with more detail).
    Hello { version: u32 },
    /// `status`, and `start`/`stop`/`restart`/`kill`: the services as they are now.
    Status(StatusResult),
    /// `reload` and `resurrect`: the plan.
    Plan(ReloadResult),
    /// `save`: where the state file was written.
    Saved { path: String },
    /// `shutdown`: accepted; the connection closes when the daemon is gone.
    ShuttingDown,
    /// `logs`: lines (or a gap while following).
    Logs(LogsResult),
    /// `events`: lifecycle events (see [`crate::report`]).
    Events(EventsResult),
    /// `scale`: the group's new count and the replicas started and stopped.
    Scaled(ScaleResult),
    /// `reexec`: the binary passed its pre-flight and is executed next, in this pid.
    Reexecuting { pid: u32, binary: String },
}

/// A `scale` reply, once the started replicas run and the stopped ones are gone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleResult {
    pub service: String,
    pub replicas: u32,
    pub config_replicas: u32,
    pub started: Vec<String>,
    pub stopped: Vec<String>,
}

/// An `events` reply: `{"events": [EVENT, …]}`, and (while following) how many events this
/// client missed because it read too slowly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsResult {
    pub events: Vec<crate::report::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

impl Response {
    /// The `result` of the reply: the one place the daemon's answers become JSON.
    pub fn to_json(&self) -> Result<Json, ProtocolError> {
        #[derive(Serialize)]
        struct Version {
            version: u32,
        }
        #[derive(Serialize)]
        struct Path<'a> {
            path: &'a str,
        }
        #[derive(Serialize)]
        struct Reexecuting<'a> {
            pid: u32,
            binary: &'a str,
        }
        #[derive(Serialize)]
        struct ShuttingDown {
            shutting_down: bool,
        }
        match self {
            Response::Hello { version } => Json::of(&Version { version: *version }),
            Response::Status(status) => Json::of(status),
            Response::Plan(plan) => Json::of(plan),
            Response::Saved { path } => Json::of(&Path { path }),
            Response::ShuttingDown => Json::of(&ShuttingDown {
                shutting_down: true,
            }),
            Response::Logs(logs) => Json::of(logs),
            Response::Events(events) => Json::of(events),
            Response::Scaled(scaled) => Json::of(scaled),
            Response::Reexecuting { pid, binary } => Json::of(&Reexecuting { pid: *pid, binary }),
        }
    }
}

impl Reply {
    /// The reply line for what the daemon decided: its result serialised here, or its error.
    pub fn from_response(id: Option<u64>, response: Result<Response, ProtocolError>) -> Reply {
        Reply::from_result(id, response.and_then(|r| r.to_json()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: Response) -> String {
        response.to_json().unwrap().text().to_owned()
    }

    #[test]
    fn each_answer_keeps_its_wire_form() {
        assert_eq!(text(Response::Hello { version: 1 }), r#"{"version":1}"#);
        assert_eq!(
            text(Response::Saved {
                path: "/p/.runpm/state.json".into()
            }),
            r#"{"path":"/p/.runpm/state.json"}"#
        );
        assert_eq!(text(Response::ShuttingDown), r#"{"shutting_down":true}"#);
        let status = StatusResult {
            services: Vec::new(),
            running_from_snapshot: None,
            cgroups: None,
        };
        assert_eq!(text(Response::Status(status)), r#"{"services":[]}"#);
        let logs = LogsResult {
            lines: Vec::new(),
            missed: Some(3),
        };
        assert_eq!(text(Response::Logs(logs)), r#"{"lines":[],"missed":3}"#);
    }

    #[test]
    fn an_error_stays_an_error_reply() {
        let error = ProtocolError::shutting_down();
        let reply = Reply::from_response(Some(4), Err(error.clone()));
        assert!(!reply.ok);
        assert_eq!(reply.error, Some(error));
    }
}
