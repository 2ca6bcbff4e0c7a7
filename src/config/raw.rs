//! The unit file schema, exactly as written: what serde can check without looking anywhere
//! else.
//!
//! Every field is optional here, so a missing key and a default stay distinguishable until
//! validation fills the defaults in, and a key dropped after an error leaves a usable struct.
//! Values that can be judged on their own (durations, signal names, keywords, sizes,
//! addresses) are parsed by small types below whose errors read well on their own, because
//! the error lands at that value's position. Checks that need other fields, other services or
//! the system (users, files) happen in `validate`.
//!
//! File form: an optional `[runpm]` table ([`RawSettings`]) and `[services.NAME]` tables
//! ([`RawService`]). Directory form: each `NAME.toml` holds one [`RawService`] at top level,
//! and `runpm.toml`, if present, holds [`RawSettings`] at top level, so no service can be
//! named `runpm` there.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use camino::Utf8PathBuf;
use serde::Deserialize;
use serde::de::Error as _;
use toml::Spanned;

use super::limits::{RawCpuMax, RawRlimit, Weight};
use super::size::ByteSize;
use super::spec::{Condition, KillMode, Overlap, RestartPolicy, Signal};
use super::suggest::{did_you_mean, hint};

/// The keys allowed at the top of a `services.toml`.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &["runpm", "services"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub cmd: Option<Vec<String>>,
    pub shell: Option<String>,
    pub cwd: Option<Utf8PathBuf>,
    pub env: Option<BTreeMap<String, String>>,
    pub env_file: Option<Utf8PathBuf>,
    pub clear_env: Option<bool>,
    pub depends_on: Option<RawDependsOn>,
    pub restart: Option<Keyword<RestartPolicy>>,
    pub restart_delay: Option<Dur>,
    pub restart_delay_max: Option<Dur>,
    pub min_uptime: Option<Dur>,
    pub max_restarts: Option<u32>,
    pub restart_window: Option<Dur>,
    pub success_exit_codes: Option<Vec<ExitCode>>,
    pub stop_signal: Option<SignalName>,
    pub kill_timeout: Option<Dur>,
    pub kill_mode: Option<Keyword<KillMode>>,
    pub autostart: Option<bool>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub ready: Option<RawReady>,
    pub ready_timeout: Option<Dur>,
    pub health: Option<RawHealth>,
    pub watchdog: Option<Dur>,
    pub failed_cooldown: Option<Dur>,
    pub log_max_size: Option<ByteSize>,
    pub log_keep: Option<u32>,
    pub profiles: Option<Vec<String>>,
    pub replicas: Option<u32>,
    pub schedule: Option<String>,
    pub interval: Option<Dur>,
    pub timezone: Option<String>,
    pub overlap: Option<Keyword<Overlap>>,
    pub run_on_start: Option<bool>,
    pub catch_up: Option<bool>,
    pub listen: Option<Vec<super::listen::RawListen>>,
    pub fd_store_max: Option<u32>,
    pub memory_max: Option<ByteSize>,
    pub memory_high: Option<ByteSize>,
    pub cpu_max: Option<RawCpuMax>,
    pub cpu_weight: Option<Weight>,
    pub pids_max: Option<u64>,
    pub io_weight: Option<Weight>,
    pub memory_restart: Option<ByteSize>,
    pub rlimits: Option<BTreeMap<String, RawRlimit>>,
}

/// `ready = { … }`: exactly one kind, checked in `validate` so that the message can name
/// what was given rather than serde's view of an enum.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReady {
    pub notify: Option<bool>,
    pub tcp: Option<HostPort>,
    pub exec: Option<Vec<String>>,
    pub log: Option<String>,
    pub http: Option<String>,
    pub status: Option<Vec<u16>>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub exec: Option<Vec<String>>,
    pub tcp: Option<HostPort>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub retries: Option<u32>,
    pub http: Option<String>,
    pub status: Option<Vec<u16>>,
}

/// The `[runpm]` table (or `runpm.toml` in directory form).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    pub shutdown_timeout: Option<Dur>,
    pub exit_when: Option<RawExitWhen>,
    pub watch: Option<bool>,
    pub state_dir: Option<Utf8PathBuf>,
    pub cgroups: Option<bool>,
}

/// The longest duration any field accepts: humantime's `1year` (365.25 days). No timeout,
/// delay or interval of a supervisor means anything beyond it, and every deadline computed
/// from a duration stays far inside what the clock can represent.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// A humantime duration (`"250ms"`, `"1m 30s"`), at most [`MAX_DURATION`].
///
/// This parses with `humantime` directly instead of `humantime_serde`, whose error
/// ("expected a duration") drops humantime's explanation of what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match humantime::parse_duration(&text) {
            Ok(duration) if duration > MAX_DURATION => Err(D::Error::custom(format!(
                "duration `{text}` is too long: at most `1year` (365.25 days)"
            ))),
            Ok(duration) => Ok(Dur(duration)),
            Err(e) => Err(D::Error::custom(format!("invalid duration `{text}`: {e}"))),
        }
    }
}

/// A string that must be one of a fixed set of words.
pub(super) trait Keywords: Sized + Copy + 'static {
    const WORDS: &'static [(&'static str, Self)];
}

impl Keywords for RestartPolicy {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ];
}

impl Keywords for Condition {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("started", Condition::Started),
        ("ready", Condition::Ready),
        ("completed", Condition::Completed),
    ];
}

impl Keywords for KillMode {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("group", KillMode::Group),
        ("process", KillMode::Process),
        ("cgroup", KillMode::Cgroup),
    ];
}

impl Keywords for Overlap {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("skip", Overlap::Skip),
        ("queue", Overlap::Queue),
        ("kill", Overlap::Kill),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Keyword<T>(pub T);

impl<'de, T: Keywords> Deserialize<'de> for Keyword<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match T::WORDS.iter().find(|(word, _)| *word == text) {
            Some(&(_, value)) => Ok(Keyword(value)),
            None => Err(D::Error::custom(unknown_word(
                &text,
                T::WORDS.iter().map(|(w, _)| *w),
            ))),
        }
    }
}

/// `unknown value `x` (did you mean `y`?)`, or the list of choices when nothing is close.
fn unknown_word<'a>(text: &str, words: impl Iterator<Item = &'a str> + Clone) -> String {
    let hint = hint(text, words.clone());
    if hint.is_empty() {
        let choices: Vec<String> = words.map(|w| format!("`{w}`")).collect();
        format!(
            "unknown value `{text}`, expected one of {}",
            choices.join(", ")
        )
    } else {
        format!("unknown value `{text}`{hint}")
    }
}

/// A signal name, with or without the `SIG` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SignalName(pub Signal);

impl<'de> Deserialize<'de> for SignalName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Signal::parse(&text).map(SignalName).ok_or_else(|| {
            // Compared without the common `SIG` prefix, which would make every name look
            // alike (`SIGNOPE` is not a typo of `SIGFPE`).
            let upper = text.trim().to_ascii_uppercase();
            let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
            let names = nix::sys::signal::Signal::iterator().map(|s| &s.as_str()[3..]);
            let hint = match did_you_mean(bare, names) {
                Some(name) => format!(" (did you mean `SIG{name}`?)"),
                None => String::new(),
            };
            D::Error::custom(format!("unknown signal `{text}`{hint}"))
        })
    }
}

/// `host:port` with a numeric port; the host is resolved only when probing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPort(pub String);

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // `{replica}` becomes a digit when a service with `replicas` is expanded.
        let valid = text
            .replace("{replica}", "0")
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if valid {
            Ok(HostPort(text))
        } else {
            Err(D::Error::custom(format!(
                "invalid address `{text}`: expected `host:port`"
            )))
        }
    }
}

/// An exit status a process can actually report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExitCode(pub u8);

impl<'de> Deserialize<'de> for ExitCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, so the error is raised inside the element's deserializer and gets the
        // element's span rather than the whole array's.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ExitCode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exit code from 0 to 255")
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ExitCode, E> {
                u8::try_from(n)
                    .map(ExitCode)
                    .map_err(|_| E::custom(format!("exit code {n} is out of range 0..=255")))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ExitCode, E> {
                u8::try_from(n)
                    .map(ExitCode)
                    .map_err(|_| E::custom(format!("exit code {n} is out of range 0..=255")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `exit_when`: a keyword or a list of service names (kept with their spans so an unknown
/// name can be pointed at). A hand-written visitor rather than `untagged`, whose error
/// ("data did not match any variant") would say nothing useful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawExitWhen {
    AllExited,
    AnyFailed,
    Services(Vec<Spanned<String>>),
}

const EXIT_WHEN_WORDS: &[&str] = &["all-exited", "any-failed"];

impl<'de> Deserialize<'de> for RawExitWhen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor(PhantomData<RawExitWhen>);
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawExitWhen;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all-exited\", \"any-failed\" or a list of service names")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawExitWhen, E> {
                match v {
                    "all-exited" => Ok(RawExitWhen::AllExited),
                    "any-failed" => Ok(RawExitWhen::AnyFailed),
                    _ => Err(E::custom(format!(
                        "{}, or a list of service names",
                        unknown_word(v, EXIT_WHEN_WORDS.iter().copied())
                    ))),
                }
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawExitWhen, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    names.push(name);
                }
                Ok(RawExitWhen::Services(names))
            }
        }
        d.deserialize_any(Visitor(PhantomData))
    }
}

/// `depends_on`: a list of names (each waited for until `ready`), or a table from name to
/// condition. Every name keeps its span so that an unknown one can be pointed at; the
/// condition's word is checked inside its own deserializer, so a wrong word gets its own
/// position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct RawDependsOn(pub Vec<(Spanned<String>, Condition)>);

impl RawDependsOn {
    pub fn names(&self) -> impl Iterator<Item = &Spanned<String>> {
        self.0.iter().map(|(name, _)| name)
    }
}

impl<'de> Deserialize<'de> for RawDependsOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawDependsOn;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of service names, or a table of service name = \"started\", \
                     \"ready\" or \"completed\"",
                )
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawDependsOn, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    out.push((name, Condition::Ready));
                }
                Ok(RawDependsOn(out))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawDependsOn, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let Keyword(condition) = map.next_value::<Keyword<Condition>>()?;
                    out.push((name, condition));
                }
                Ok(RawDependsOn(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The field names a derived struct accepts, asked from serde itself so that did-you-mean
/// hints can never drift from the schema.
///
/// Derived `Deserialize` impls hand their field list to `deserialize_struct`; this
/// deserializer only records it and stops.
pub(super) fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::value::Error;

    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Error;

        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _probe_always_fails = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de<T: for<'de> Deserialize<'de>>(toml_value: &str) -> Result<T, String> {
        let de = toml::de::ValueDeserializer::parse(toml_value).map_err(|e| e.to_string())?;
        T::deserialize(de).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn field_lists_come_from_the_structs() {
        let service = fields_of::<RawService>();
        assert_eq!(service.len(), 45);
        assert_eq!(service.first(), Some(&"cmd"));
        assert!(service.contains(&"log_keep"));
        assert_eq!(
            fields_of::<RawReady>(),
            ["notify", "tcp", "exec", "log", "http", "status", "timeout"]
        );
        assert_eq!(
            fields_of::<RawHealth>(),
            [
                "exec", "tcp", "interval", "timeout", "retries", "http", "status"
            ]
        );
        assert_eq!(
            fields_of::<RawSettings>(),
            [
                "shutdown_timeout",
                "exit_when",
                "watch",
                "state_dir",
                "cgroups"
            ]
        );
    }

    #[test]
    fn every_listed_field_is_accepted() {
        // Each key alone, with a value of the right shape: an empty table would be accepted by
        // any struct, so this also proves the names are spelled as serde expects them.
        let values: BTreeMap<&str, &str> = [
            ("cmd", r#"["x"]"#),
            ("shell", r#""x""#),
            ("cwd", r#""x""#),
            ("env", r#"{ A = "b" }"#),
            ("env_file", r#"".env""#),
            ("clear_env", "true"),
            ("depends_on", r#"["a"]"#),
            ("restart", r#""always""#),
            ("restart_delay", r#""1s""#),
            ("restart_delay_max", r#""1s""#),
            ("min_uptime", r#""1s""#),
            ("max_restarts", "1"),
            ("restart_window", r#""1s""#),
            ("success_exit_codes", "[0, 255]"),
            ("stop_signal", r#""INT""#),
            ("kill_timeout", r#""1s""#),
            ("kill_mode", r#""process""#),
            ("autostart", "false"),
            ("user", r#""root""#),
            ("group", r#""root""#),
            ("ready", "{ notify = true }"),
            ("ready_timeout", r#""1s""#),
            ("health", r#"{ tcp = "localhost:1" }"#),
            ("watchdog", r#""1s""#),
            ("failed_cooldown", r#""0s""#),
            ("log_max_size", r#""1MiB""#),
            ("log_keep", "1"),
            ("profiles", r#"["debug"]"#),
            ("replicas", "2"),
            ("schedule", r#""*/5 * * * *""#),
            ("interval", r#""10m""#),
            ("timezone", r#""UTC""#),
            ("overlap", r#""queue""#),
            ("run_on_start", "true"),
            ("catch_up", "true"),
            ("listen", r#"["tcp:127.0.0.1:1"]"#),
            ("fd_store_max", "1"),
            ("memory_max", r#""512MB""#),
            ("memory_high", r#""400MiB""#),
            ("cpu_max", r#""50%""#),
            ("cpu_weight", "100"),
            ("pids_max", "256"),
            ("io_weight", "100"),
            ("memory_restart", r#""1G""#),
            ("rlimits", "{ nofile = 1024 }"),
        ]
        .into();
        let fields = fields_of::<RawService>();
        assert_eq!(fields.len(), values.len());
        for field in fields {
            let value = values
                .get(field)
                .unwrap_or_else(|| panic!("no sample for `{field}`"));
            de::<RawService>(&format!("{{ {field} = {value} }}"))
                .unwrap_or_else(|e| panic!("`{field}` rejected: {e}"));
        }
    }

    #[test]
    fn value_types_explain_themselves() {
        assert_eq!(
            de::<Dur>(r#""1m 30s""#).unwrap(),
            Dur(Duration::from_secs(90))
        );
        assert!(
            de::<Dur>(r#""10 parsecs""#)
                .unwrap_err()
                .starts_with("invalid duration `10 parsecs`")
        );
        assert_eq!(
            de::<Keyword<RestartPolicy>>(r#""on-failur""#).unwrap_err(),
            "unknown value `on-failur` (did you mean `on-failure`?)"
        );
        assert_eq!(
            de::<Keyword<KillMode>>(r#""all""#).unwrap_err(),
            "unknown value `all`, expected one of `group`, `process`, `cgroup`"
        );
        assert_eq!(de::<SignalName>(r#""TERM""#).unwrap().0.name(), "SIGTERM");
        assert_eq!(
            de::<SignalName>(r#""SIGTREM""#).unwrap_err(),
            "unknown signal `SIGTREM` (did you mean `SIGTERM`?)"
        );
        assert!(de::<HostPort>(r#""[::1]:80""#).is_ok());
        assert!(de::<HostPort>(r#""localhost""#).is_err());
        assert!(de::<HostPort>(r#"":80""#).is_err());
        assert!(de::<HostPort>(r#""h:http""#).is_err());
        assert_eq!(
            de::<ExitCode>("256").unwrap_err(),
            "exit code 256 is out of range 0..=255"
        );
        assert_eq!(
            de::<RawExitWhen>(r#""any-failed""#).unwrap(),
            RawExitWhen::AnyFailed
        );
        assert!(
            matches!(de::<RawExitWhen>(r#"["a", "b"]"#).unwrap(), RawExitWhen::Services(v) if v.len() == 2)
        );
        assert_eq!(
            de::<RawExitWhen>(r#""any-fail""#).unwrap_err(),
            "unknown value `any-fail` (did you mean `any-failed`?), or a list of service names"
        );
    }
}
