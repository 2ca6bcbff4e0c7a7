//! The state document and its strict parser.
//!
//! The document is plain JSON that people and tests read. Parsing happens in two stages so
//! that every error says where it is: first the bytes become a JSON value (a syntax error is
//! reported with its line and column, an early end as truncation), then the version is
//! checked before anything else (a file from another runpm is "another version", not a pile
//! of field errors), and only then are the fields read one by one with their path
//! (`services[2].pid`). Unknown fields are ignored on purpose: a newer runpm of the same
//! version may add fields, and an older one must still read its file. Missing required
//! fields, wrong types, duplicate service names and impossible pids are errors: a state file
//! that is only half understood must never be acted upon as if it were whole.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::StateError;
use crate::config::ServiceSpec;

/// The only version this runpm reads and writes. Fields may be added within a version
/// (readers ignore what they do not know); anything that changes the meaning of an existing
/// field needs a new version.
pub const STATE_VERSION: u32 = 1;

/// The persisted state: what ran, on which boot, with which specs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StateFile {
    pub version: u32,
    /// `/proc/sys/kernel/random/boot_id` of the boot the pids below belong to.
    pub boot_id: String,
    /// Inode of the daemon's pid namespace: a container restarted in a new namespace reuses
    /// the boot id but none of the pids.
    pub pid_ns: String,
    /// RFC 3339, for people; never used to decide anything.
    pub written_at: String,
    pub daemon_pid: u32,
    /// The config path the daemon was started with.
    pub config: String,
    /// The boot id whose reboot cleanup was already recorded, so it happens once per boot.
    #[serde(default)]
    pub cleaned_boot: Option<String>,
    /// The daemon that wrote this ended its session itself (Ctrl-C, `shutdown`, SIGTERM,
    /// `exit_when`): the next start begins from the config, and the records are history.
    /// False while a daemon runs, so a crash leaves a snapshot to restore.
    #[serde(default)]
    pub clean_shutdown: bool,
    pub services: Vec<ServiceRecord>,
    /// `runpmctl scale` overrides of `replicas`, by group.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scaled: std::collections::BTreeMap<String, crate::config::Scaled>,
}

/// One service as last seen by the daemon that wrote the file.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ServiceRecord {
    pub name: String,
    /// The status as `runpmctl status` shows it (`running`, `backoff`, `stopped`, …). Kept
    /// as a string so a newer status never makes the file unreadable.
    pub status: String,
    #[serde(default)]
    pub pid: Option<i32>,
    /// Field 22 of `/proc/PID/stat` when `pid` was recorded: pid and start time together
    /// identify a process on one boot.
    #[serde(default)]
    pub pid_start_time: Option<u64>,
    pub restarts: u32,
    pub stopped_by_operator: bool,
    /// A task that exited with a success code and stays down: after a crash of the daemon
    /// in the same boot it is not run again.
    #[serde(default)]
    pub completed: bool,
    /// The resolved spec as last applied: the last-known-good definition.
    pub spec: ServiceSpec,
    /// For a scheduled service: when its last run started (RFC 3339), for `catch_up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// The service's cgroup directory, when runpm uses cgroups: where a restarted daemon
    /// looks for what is left of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

/// An RFC 3339 timestamp (UTC, whole seconds) for `written_at`.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The document as written to disk: pretty JSON with a final newline.
pub fn render(doc: &StateFile) -> Result<Vec<u8>, StateError> {
    let mut bytes = Vec::new();
    render_to(doc, &mut bytes).map_err(|source| StateError::Serialize { source })?;
    Ok(bytes)
}

/// [`render`] straight into `out`, which should be buffered: the document grows with the
/// number of services (about 1 KB each), and a daemon writes it often. A failed write is an
/// error for which `is_io()` holds.
pub fn render_to(doc: &StateFile, mut out: impl std::io::Write) -> Result<(), serde_json::Error> {
    serde_json::to_writer_pretty(&mut out, doc)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

/// Reads a state document, refusing anything it does not fully understand.
pub fn parse(bytes: &[u8]) -> Result<StateFile, StateError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(StateError::Empty);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|source| {
        if source.is_eof() {
            StateError::Truncated {
                line: source.line(),
                column: source.column(),
            }
        } else {
            StateError::NotJson {
                line: source.line(),
                column: source.column(),
                source,
            }
        }
    })?;
    let Value::Object(top) = &value else {
        return Err(StateError::Field {
            path: "(document)".into(),
            problem: format!("expected an object, found {}", describe(&value)),
        });
    };
    let top = Fields {
        obj: top,
        prefix: String::new(),
    };

    // The version first: a file of another version may look like anything else.
    let version: u64 = top.required("version", "an integer")?;
    if version != u64::from(STATE_VERSION) {
        return Err(StateError::UnsupportedVersion { found: version });
    }

    let services_value = top.get("services")?;
    let Value::Array(items) = services_value else {
        return Err(top.wrong("services", "an array", services_value));
    };
    let mut services = Vec::with_capacity(items.len());
    let mut names = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("services[{i}].");
        let Value::Object(obj) = item else {
            return Err(StateError::Field {
                path: format!("services[{i}]"),
                problem: format!("expected an object, found {}", describe(item)),
            });
        };
        let record = parse_record(&Fields { obj, prefix })?;
        if !names.insert(record.name.clone()) {
            return Err(StateError::Field {
                path: format!("services[{i}].name"),
                problem: format!("service `{}` appears twice", record.name),
            });
        }
        services.push(record);
    }

    Ok(StateFile {
        version: STATE_VERSION,
        boot_id: top.required("boot_id", "a string")?,
        pid_ns: top.required("pid_ns", "a string")?,
        written_at: top.required("written_at", "a string")?,
        daemon_pid: top.required("daemon_pid", "a non-negative integer")?,
        config: top.required("config", "a string")?,
        cleaned_boot: top.optional("cleaned_boot", "a string or null")?,
        clean_shutdown: top
            .optional("clean_shutdown", "true or false")?
            .unwrap_or(false),
        services,
        scaled: top
            .optional("scaled", "an object of group = { config, count }")?
            .unwrap_or_default(),
    })
}

fn parse_record(fields: &Fields<'_>) -> Result<ServiceRecord, StateError> {
    let name: String = fields.required("name", "a string")?;
    if name.is_empty() {
        return Err(fields.invalid("name", "must not be empty".into()));
    }
    // A pid of 0 or below names a process group or "every process" to kill(2): such a value
    // must never reach anything that signals.
    let pid: Option<i32> = fields.optional("pid", "an integer or null")?;
    if let Some(pid) = pid
        && pid <= 0
    {
        return Err(fields.invalid("pid", format!("{pid} is not a process id")));
    }
    let spec: ServiceSpec = fields.required("spec", "a service spec")?;
    if spec.name != name {
        return Err(fields.invalid(
            "spec.name",
            format!("`{}` does not match the record's name `{name}`", spec.name),
        ));
    }
    Ok(ServiceRecord {
        name,
        status: fields.required("status", "a string")?,
        pid,
        pid_start_time: fields.optional("pid_start_time", "a non-negative integer or null")?,
        restarts: fields.required("restarts", "a non-negative integer")?,
        stopped_by_operator: fields.required("stopped_by_operator", "true or false")?,
        completed: fields
            .optional("completed", "true or false")?
            .unwrap_or(false),
        spec,
        last_run: fields.optional("last_run", "an RFC 3339 time or null")?,
        cgroup: fields.optional("cgroup", "a string or null")?,
    })
}

/// The fields of one JSON object, with the path that error messages show.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    /// `""` at the top, `services[2].` inside a record.
    prefix: String,
}

impl Fields<'_> {
    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get(&self, key: &str) -> Result<&Value, StateError> {
        self.obj.get(key).ok_or_else(|| StateError::Field {
            path: self.path(key),
            problem: "missing".into(),
        })
    }

    fn required<T: DeserializeOwned>(&self, key: &str, expected: &str) -> Result<T, StateError> {
        let value = self.get(key)?;
        self.convert(key, expected, value)
    }

    /// Missing and `null` both mean "not set", as they do for the derived `Deserialize`.
    fn optional<T: DeserializeOwned>(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<T>, StateError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => self.convert(key, expected, value).map(Some),
        }
    }

    fn convert<T: DeserializeOwned>(
        &self,
        key: &str,
        expected: &str,
        value: &Value,
    ) -> Result<T, StateError> {
        T::deserialize(value).map_err(|e| {
            // A nested structure (the spec) has its own field names in serde's message; a
            // scalar of the wrong type reads better as "expected X, found Y".
            if value.is_object() {
                self.invalid(key, e.to_string())
            } else {
                self.wrong(key, expected, value)
            }
        })
    }

    fn wrong(&self, key: &str, expected: &str, found: &Value) -> StateError {
        self.invalid(
            key,
            format!("expected {expected}, found {}", describe(found)),
        )
    }

    fn invalid(&self, key: &str, problem: String) -> StateError {
        StateError::Field {
            path: self.path(key),
            problem,
        }
    }
}

/// A short description of a JSON value for error messages, without echoing long content.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{doc, record};

    fn to_value(doc: &StateFile) -> Value {
        serde_json::to_value(doc).unwrap()
    }

    fn parse_value(value: &Value) -> Result<StateFile, StateError> {
        parse(&serde_json::to_vec(value).unwrap())
    }

    fn error_of(value: &Value) -> String {
        parse_value(value).unwrap_err().to_string()
    }

    #[test]
    fn round_trip() {
        let mut original = doc(vec![
            record("web", "running", Some((4242, 123_456))),
            record("worker", "stopped", None),
        ]);
        original.cleaned_boot = Some("b00t".into());
        original.services[1].stopped_by_operator = true;
        original.services[1].restarts = 3;
        let bytes = render(&original).unwrap();
        assert_eq!(parse(&bytes).unwrap(), original);
        // The derived Deserialize agrees with the strict parser on a valid document.
        assert_eq!(
            serde_json::from_slice::<StateFile>(&bytes).unwrap(),
            original
        );
        assert!(bytes.ends_with(b"}\n"));
    }

    #[test]
    fn the_documented_fields_are_present() {
        let value = to_value(&doc(vec![record("web", "running", Some((4242, 1)))]));
        for key in ["version", "boot_id", "pid_ns", "services"] {
            assert!(value.get(key).is_some(), "{key}");
        }
        let service = &value["services"][0];
        for key in [
            "name",
            "status",
            "pid",
            "pid_start_time",
            "restarts",
            "stopped_by_operator",
            "spec",
        ] {
            assert!(service.get(key).is_some(), "{key}");
        }
        assert_eq!(value["version"], 1);
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let original = doc(vec![record("web", "running", Some((4242, 1)))]);
        let mut value = to_value(&original);
        value["added_later"] = Value::from("x");
        value["services"][0]["also_new"] = Value::from(3);
        assert_eq!(parse_value(&value).unwrap(), original);
    }

    #[test]
    fn optional_fields_may_be_missing_or_null() {
        let original = doc(vec![record("web", "stopped", None)]);
        let mut value = to_value(&original);
        value.as_object_mut().unwrap().remove("cleaned_boot");
        let service = value["services"][0].as_object_mut().unwrap();
        service.remove("pid");
        service.insert("pid_start_time".into(), Value::Null);
        assert_eq!(parse_value(&value).unwrap(), original);
    }

    #[test]
    fn not_json_names_line_and_column() {
        let err = parse(b"{\n  \"version\": 1,\n  nope\n}").unwrap_err();
        assert!(
            matches!(err, StateError::NotJson { line: 3, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("not JSON at line 3 column 3"),
            "{err}"
        );
    }

    #[test]
    fn truncated_and_empty() {
        let bytes = render(&doc(vec![record("web", "running", Some((1, 2)))])).unwrap();
        let err = parse(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(matches!(err, StateError::Truncated { .. }), "{err:?}");
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(matches!(parse(b"").unwrap_err(), StateError::Empty));
        assert!(matches!(parse(b" \n").unwrap_err(), StateError::Empty));
    }

    #[test]
    fn the_version_is_checked_first() {
        let mut value = to_value(&doc(vec![]));
        value["version"] = Value::from(7);
        // Even with the rest of the document unrecognisable.
        value["services"] = Value::from("whatever version 7 keeps here");
        assert_eq!(
            error_of(&value),
            "unsupported version 7 (this runpm reads version 1)"
        );
        value["version"] = Value::from("1");
        assert_eq!(
            error_of(&value),
            "field version: expected an integer, found a string"
        );
        value.as_object_mut().unwrap().remove("version");
        assert_eq!(error_of(&value), "field version: missing");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let base = to_value(&doc(vec![
            record("a", "running", Some((10, 1))),
            record("b", "running", Some((11, 1))),
            record("c", "running", Some((12, 1))),
        ]));
        let mut value = base.clone();
        value["services"][2]["pid"] = Value::from("4242");
        assert_eq!(
            error_of(&value),
            "field services[2].pid: expected an integer or null, found a string"
        );

        let mut value = base.clone();
        value["services"][1]["stopped_by_operator"] = Value::from(0);
        assert_eq!(
            error_of(&value),
            "field services[1].stopped_by_operator: expected true or false, found the number 0"
        );

        let mut value = base.clone();
        value["services"][0]["restarts"] = Value::from(-1);
        assert_eq!(
            error_of(&value),
            "field services[0].restarts: expected a non-negative integer, found the number -1"
        );

        let mut value = base.clone();
        value["boot_id"] = Value::Null;
        assert_eq!(
            error_of(&value),
            "field boot_id: expected a string, found null"
        );

        let mut value = base.clone();
        value["services"] = Value::from(3);
        assert_eq!(
            error_of(&value),
            "field services: expected an array, found the number 3"
        );

        let mut value = base.clone();
        value["services"][1]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("cwd");
        let msg = error_of(&value);
        assert!(msg.starts_with("field services[1].spec: "), "{msg}");
        assert!(msg.contains("cwd"), "{msg}");

        let mut value = base;
        value["services"][0]
            .as_object_mut()
            .unwrap()
            .remove("status");
        assert_eq!(error_of(&value), "field services[0].status: missing");

        assert_eq!(
            parse(b"[1, 2]").unwrap_err().to_string(),
            "field (document): expected an object, found an array"
        );
    }

    #[test]
    fn impossible_values_are_refused() {
        let base = to_value(&doc(vec![
            record("a", "running", Some((10, 1))),
            record("b", "running", None),
        ]));
        for bad_pid in [0, -1] {
            let mut value = base.clone();
            value["services"][0]["pid"] = Value::from(bad_pid);
            assert_eq!(
                error_of(&value),
                format!("field services[0].pid: {bad_pid} is not a process id")
            );
        }
        let mut value = base.clone();
        value["services"][1]["name"] = Value::from("a");
        value["services"][1]["spec"]["name"] = Value::from("a");
        assert_eq!(
            error_of(&value),
            "field services[1].name: service `a` appears twice"
        );
        let mut value = base;
        value["services"][1]["spec"]["name"] = Value::from("other");
        assert_eq!(
            error_of(&value),
            "field services[1].spec.name: `other` does not match the record's name `b`"
        );
    }

    #[test]
    fn timestamp_is_rfc3339_utc() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_318_512);
        assert_eq!(timestamp(at), "2026-11-22T03:35:12Z");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mangled_documents(
            cut in 0usize..2000,
            flip in 0usize..2000,
            byte in proptest::num::u8::ANY,
        ) {
            let mut bytes = render(&doc(vec![record("web", "running", Some((4242, 7)))])).unwrap();
            let len = bytes.len();
            bytes[flip % len] = byte;
            bytes.truncate(cut % (len + 1));
            let _ = parse(&bytes);
        }
    }
}
