//! Resource limits and rlimits as a unit file writes them, and their resolved form.
//!
//! Limits (`memory_max`, `cpu_max`, …) are enforced through the service's cgroup where the
//! delegated subtree has the controller (see `crate::cgroup`); rlimits are set in the child
//! before `exec` on every spawn path. Both are plain data here: what the kernel accepts is
//! decided where they are applied.
//!
//! Sizes take the units of [`super::size`]: `K`/`KB`/`M`/`MB`/`G`/`GB` are decimal (powers of
//! 1000), `KiB`/`MiB`/`GiB` binary (powers of 1024).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Serialize};

use super::size::parse_size;

/// The period `cpu_max` is expressed in, as systemd and the kernel's default use: 100 ms.
pub const CPU_PERIOD_USEC: u64 = 100_000;

/// The most CPUs `cpu_max` may name: far beyond any machine, small enough to never
/// overflow the quota.
const MAX_CPUS: f64 = 4096.0;

/// A CPU bandwidth limit: `quota_usec` of CPU time per `period_usec` of wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CpuMax {
    pub quota_usec: u64,
    pub period_usec: u64,
}

impl CpuMax {
    /// `"50%"` (of one CPU), `"150%"`, `"1.5"` (CPUs) or a number of CPUs.
    ///
    /// ```
    /// use runpm::config::CpuMax;
    /// assert_eq!(CpuMax::parse("50%").unwrap().quota_usec, 50_000);
    /// assert_eq!(CpuMax::parse("1.5").unwrap().quota_usec, 150_000);
    /// assert!(CpuMax::parse("0%").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<CpuMax, String> {
        let trimmed = text.trim();
        let cpus = match trimmed.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => trimmed.parse::<f64>(),
        }
        .map_err(|_| {
            format!("invalid cpu_max `{text}`: expected a share of one CPU like `50%` or a number of CPUs like `1.5`")
        })?;
        CpuMax::cpus(cpus).ok_or_else(|| {
            format!("cpu_max `{text}` is out of range: more than 0 and at most {MAX_CPUS} CPUs")
        })
    }

    fn cpus(cpus: f64) -> Option<CpuMax> {
        if !cpus.is_finite() || cpus <= 0.0 || cpus > MAX_CPUS {
            return None;
        }
        // The kernel's smallest quota is 1 ms.
        let quota_usec = ((cpus * CPU_PERIOD_USEC as f64).round() as u64).max(1_000);
        Some(CpuMax {
            quota_usec,
            period_usec: CPU_PERIOD_USEC,
        })
    }

    /// The share of one CPU in percent, as systemd's `CPUQuota=` writes it.
    pub fn percent(&self) -> u64 {
        (self.quota_usec * 100).div_ceil(self.period_usec.max(1))
    }

    /// Thousandths of a CPU, as Kubernetes' `cpu: 500m` writes it.
    pub fn millicpus(&self) -> u64 {
        (self.quota_usec * 1000).div_ceil(self.period_usec.max(1))
    }
}

/// The cgroup limits of a service; `None`: not limited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_high: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_max: Option<CpuMax>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u32>,
    /// Restart the service when its memory goes above this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_restart: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The TOML keys whose values differ between `self` and `new`.
    pub fn changed_keys(&self, new: &Limits) -> Vec<&'static str> {
        let differs = |key: &str| match key {
            "memory_max" => self.memory_max != new.memory_max,
            "memory_high" => self.memory_high != new.memory_high,
            "cpu_max" => self.cpu_max != new.cpu_max,
            "cpu_weight" => self.cpu_weight != new.cpu_weight,
            "pids_max" => self.pids_max != new.pids_max,
            "io_weight" => self.io_weight != new.io_weight,
            _ => self.memory_restart != new.memory_restart,
        };
        LIMIT_KEYS.iter().copied().filter(|k| differs(k)).collect()
    }

    /// The TOML keys that are set, in the order the reference lists them.
    pub fn keys(&self) -> Vec<&'static str> {
        let Limits {
            memory_max,
            memory_high,
            cpu_max,
            cpu_weight,
            pids_max,
            io_weight,
            memory_restart,
        } = self;
        [
            ("memory_max", memory_max.is_some()),
            ("memory_high", memory_high.is_some()),
            ("cpu_max", cpu_max.is_some()),
            ("cpu_weight", cpu_weight.is_some()),
            ("pids_max", pids_max.is_some()),
            ("io_weight", io_weight.is_some()),
            ("memory_restart", memory_restart.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

/// The limit keys, in the order the reference lists them. A change of only these is applied
/// to a running service's cgroup without a restart.
pub const LIMIT_KEYS: &[&str] = &[
    "memory_max",
    "memory_high",
    "cpu_max",
    "cpu_weight",
    "pids_max",
    "io_weight",
    "memory_restart",
];

/// The rlimits a unit may set: the `RLIMIT_*` names, lowercased, and whether their values
/// are bytes (and so take a size string).
pub const RLIMITS: &[(&str, bool)] = &[
    ("as", true),
    ("core", true),
    ("cpu", false),
    ("data", true),
    ("fsize", true),
    ("locks", false),
    ("memlock", true),
    ("msgqueue", true),
    ("nice", false),
    ("nofile", false),
    ("nproc", false),
    ("rss", true),
    ("rtprio", false),
    ("rttime", false),
    ("sigpending", false),
    ("stack", true),
];

/// One rlimit; `None` is `unlimited` (`RLIM_INFINITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rlimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl fmt::Display for Rlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<u64>| v.map_or_else(|| "infinity".to_owned(), |n| n.to_string());
        if self.soft == self.hard {
            f.write_str(&show(self.soft))
        } else {
            write!(f, "{}:{}", show(self.soft), show(self.hard))
        }
    }
}

/// An rlimit's value as written: a number, `"unlimited"`, a size, or `{ soft, hard }`.
/// Which of these the name accepts is checked in `validate`, where the name is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawRlimitValue {
    Number(u64),
    Unlimited,
    Size(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawRlimit {
    pub soft: RawRlimitValue,
    pub hard: RawRlimitValue,
}

impl RawRlimitValue {
    fn from_str<E: serde::de::Error>(text: &str) -> Result<RawRlimitValue, E> {
        if text.trim().eq_ignore_ascii_case("unlimited") || text.trim() == "infinity" {
            return Ok(RawRlimitValue::Unlimited);
        }
        parse_size(text)
            .map(RawRlimitValue::Size)
            .map_err(|e| E::custom(format!("{e}, or `unlimited`")))
    }

    /// The value for a limit that counts bytes (`bytes`) or not.
    pub fn resolve(self, bytes: bool) -> Result<Option<u64>, String> {
        match self {
            RawRlimitValue::Unlimited => Ok(None),
            RawRlimitValue::Number(n) => Ok(Some(n)),
            RawRlimitValue::Size(n) if bytes => Ok(Some(n)),
            RawRlimitValue::Size(_) => Err("takes a number or `unlimited`, not a size".into()),
        }
    }
}

impl<'de> Deserialize<'de> for RawRlimitValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawRlimitValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a size like \"64MB\", or \"unlimited\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawRlimitValue, E> {
                u64::try_from(v)
                    .map(RawRlimitValue::Number)
                    .map_err(|_| E::custom("an rlimit cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawRlimitValue, E> {
                Ok(RawRlimitValue::Number(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRlimitValue, E> {
                RawRlimitValue::from_str(v)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for RawRlimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawRlimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a number, a size like \"64MB\", \"unlimited\", or { soft = …, hard = … }",
                )
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawRlimit, E> {
                let value = serde::de::Visitor::visit_i64(ValueVisitor, v)?;
                Ok(RawRlimit {
                    soft: value,
                    hard: value,
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawRlimit, E> {
                let value = RawRlimitValue::Number(v);
                Ok(RawRlimit {
                    soft: value,
                    hard: value,
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRlimit, E> {
                let value = RawRlimitValue::from_str(v)?;
                Ok(RawRlimit {
                    soft: value,
                    hard: value,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawRlimit, A::Error> {
                let (mut soft, mut hard) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "soft" => soft = Some(map.next_value::<RawRlimitValue>()?),
                        "hard" => hard = Some(map.next_value::<RawRlimitValue>()?),
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}`: an rlimit table has `soft` and `hard`"
                            )));
                        }
                    }
                }
                match (soft, hard) {
                    (Some(soft), Some(hard)) => Ok(RawRlimit { soft, hard }),
                    (Some(one), None) | (None, Some(one)) => Ok(RawRlimit {
                        soft: one,
                        hard: one,
                    }),
                    (None, None) => Err(A::Error::custom("an rlimit table needs `soft` or `hard`")),
                }
            }
        }
        struct ValueVisitor;
        impl serde::de::Visitor<'_> for ValueVisitor {
            type Value = RawRlimitValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawRlimitValue, E> {
                u64::try_from(v)
                    .map(RawRlimitValue::Number)
                    .map_err(|_| E::custom("an rlimit cannot be negative"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `cpu_max` as written: a string (`"50%"`, `"1.5"`) or a number of CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawCpuMax(pub CpuMax);

impl<'de> Deserialize<'de> for RawCpuMax {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawCpuMax;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a share of one CPU like \"50%\", or a number of CPUs like 1.5")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawCpuMax, E> {
                CpuMax::parse(v).map(RawCpuMax).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawCpuMax, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawCpuMax, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawCpuMax, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A weight (`cpu_weight`, `io_weight`): 1 to 10000, as the kernel takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Weight(pub u32);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(w @ 1..=10_000) => Ok(Weight(w)),
            _ => Err(D::Error::custom(format!(
                "weight {n} is out of range 1..=10000 (the default is 100)"
            ))),
        }
    }
}

/// Resolves the `rlimits` table: names checked, values in the units the name takes, soft
/// at most hard. Errors name the key.
pub(super) fn resolve_rlimits(
    raw: &BTreeMap<String, RawRlimit>,
) -> Result<BTreeMap<String, Rlimit>, String> {
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let Some(&(_, bytes)) = RLIMITS.iter().find(|(n, _)| n == name) else {
            let hint = super::suggest::hint(name, RLIMITS.iter().map(|(n, _)| *n));
            return Err(format!(
                "unknown rlimit `{name}`{hint}: use the RLIMIT_* name in lower case, such as \
                 `nofile` or `core`"
            ));
        };
        let soft = value
            .soft
            .resolve(bytes)
            .map_err(|e| format!("rlimit `{name}` {e}"))?;
        let hard = value
            .hard
            .resolve(bytes)
            .map_err(|e| format!("rlimit `{name}` {e}"))?;
        if let (Some(s), h) = (soft, hard)
            && h.is_some_and(|h| s > h)
        {
            return Err(format!(
                "rlimit `{name}`: the soft limit ({s}) is above the hard limit ({})",
                h.unwrap_or_default()
            ));
        }
        if soft.is_none() && hard.is_some() {
            return Err(format!(
                "rlimit `{name}`: the soft limit is unlimited but the hard limit is not"
            ));
        }
        out.insert(name.clone(), Rlimit { soft, hard });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de<T: for<'de> Deserialize<'de>>(toml_value: &str) -> Result<T, String> {
        let de = toml::de::ValueDeserializer::parse(toml_value).map_err(|e| e.to_string())?;
        T::deserialize(de).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn cpu_max_takes_percent_and_cpus() {
        assert_eq!(
            CpuMax::parse("50%").unwrap(),
            CpuMax {
                quota_usec: 50_000,
                period_usec: 100_000
            }
        );
        assert_eq!(CpuMax::parse("150%").unwrap().quota_usec, 150_000);
        assert_eq!(CpuMax::parse("1.5").unwrap().quota_usec, 150_000);
        assert_eq!(CpuMax::parse("2").unwrap().percent(), 200);
        assert_eq!(CpuMax::parse("0.25").unwrap().millicpus(), 250);
        assert_eq!(de::<RawCpuMax>("0.5").unwrap().0.quota_usec, 50_000);
        assert_eq!(de::<RawCpuMax>("2").unwrap().0.quota_usec, 200_000);
        // The kernel's floor of 1 ms per period.
        assert_eq!(CpuMax::parse("0.1%").unwrap().quota_usec, 1_000);
        for bad in ["0%", "-1", "abc", "5000", "nan", "%"] {
            assert!(CpuMax::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_are_bounded() {
        assert_eq!(de::<Weight>("100").unwrap(), Weight(100));
        assert!(de::<Weight>("0").unwrap_err().contains("1..=10000"));
        assert!(de::<Weight>("10001").is_err());
    }

    #[test]
    fn rlimits_take_numbers_sizes_unlimited_and_tables() {
        let raw: BTreeMap<String, RawRlimit> = de(
            r#"{ nofile = 65536, core = "unlimited", memlock = "64MB", nproc = { soft = 100, hard = 200 } }"#,
        )
        .unwrap();
        let limits = resolve_rlimits(&raw).unwrap();
        assert_eq!(
            limits["nofile"],
            Rlimit {
                soft: Some(65536),
                hard: Some(65536)
            }
        );
        assert_eq!(
            limits["core"],
            Rlimit {
                soft: None,
                hard: None
            }
        );
        assert_eq!(limits["memlock"].soft, Some(64_000_000));
        assert_eq!(limits["nproc"].to_string(), "100:200");
    }

    #[test]
    fn rlimit_errors_name_the_limit() {
        let raw: BTreeMap<String, RawRlimit> = de(r#"{ nofiles = 10 }"#).unwrap();
        let e = resolve_rlimits(&raw).unwrap_err();
        assert!(
            e.contains("unknown rlimit `nofiles` (did you mean `nofile`?)"),
            "{e}"
        );
        let raw: BTreeMap<String, RawRlimit> = de(r#"{ nofile = "1MB" }"#).unwrap();
        assert!(resolve_rlimits(&raw).unwrap_err().contains("not a size"));
        let raw: BTreeMap<String, RawRlimit> = de("{ nproc = { soft = 9, hard = 2 } }").unwrap();
        assert!(
            resolve_rlimits(&raw)
                .unwrap_err()
                .contains("above the hard")
        );
        assert!(de::<RawRlimit>("-1").is_err());
        assert!(
            de::<RawRlimit>("{ sfot = 1 }")
                .unwrap_err()
                .contains("`soft` and `hard`")
        );
    }
}
