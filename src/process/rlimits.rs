//! rlimits for a service's child, resolved before the spawn (names to numbers) so that the
//! child, between clone and exec, only makes the `setrlimit` system calls.

use std::collections::BTreeMap;

use crate::config::Rlimit;

/// One limit as the child sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Limit {
    pub resource: libc::c_int,
    pub soft: libc::rlim_t,
    pub hard: libc::rlim_t,
}

/// The `RLIMIT_*` number of a lowercased name (the names `config` accepts).
fn resource(name: &str) -> Option<libc::c_int> {
    let r = match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    };
    Some(r as libc::c_int)
}

/// The limits of a spec, ready for the child; unknown names (which validation refuses)
/// are skipped.
pub fn resolve(rlimits: &BTreeMap<String, Rlimit>) -> Vec<Limit> {
    let value = |v: Option<u64>| v.unwrap_or(libc::RLIM_INFINITY);
    rlimits
        .iter()
        .filter_map(|(name, limit)| {
            Some(Limit {
                resource: resource(name)?,
                soft: value(limit.soft),
                hard: value(limit.hard),
            })
        })
        .collect()
}

/// Checks, before a spawn, that the child may set `limits`: raising a hard limit above
/// runpm's own needs `CAP_SYS_RESOURCE`. Done here because a failure in the child reads
/// only as an errno. Returns the offending limit's name and both values.
pub fn check(rlimits: &BTreeMap<String, Rlimit>) -> Result<(), String> {
    if rlimits.is_empty() || may_raise() {
        return Ok(());
    }
    for (name, limit) in rlimits {
        let Some(resource) = resource(name) else {
            continue;
        };
        let mut own = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only to `own`.
        if unsafe { libc::getrlimit(resource as _, &mut own) } != 0 {
            continue;
        }
        let wanted = limit.hard.unwrap_or(libc::RLIM_INFINITY);
        if wanted > own.rlim_max {
            let show = |v: libc::rlim_t| {
                if v == libc::RLIM_INFINITY {
                    "unlimited".to_owned()
                } else {
                    v.to_string()
                }
            };
            return Err(format!(
                "rlimit `{name}`: the hard limit {} is above runpm's own ({}), and raising it \
                 needs root with CAP_SYS_RESOURCE",
                show(wanted),
                show(own.rlim_max)
            ));
        }
    }
    Ok(())
}

/// Whether runpm has `CAP_SYS_RESOURCE` in its effective set.
fn may_raise() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// `setrlimit`, async-signal-safe: for the child between clone and exec. 0 or -1.
pub fn set_limit(limit: &Limit) -> libc::c_int {
    let value = libc::rlimit {
        rlim_cur: limit.soft,
        rlim_max: limit.hard,
    };
    // SAFETY: a plain system call on a local struct.
    unsafe { libc::setrlimit(limit.resource as _, &value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_name_has_a_number() {
        for (name, _) in crate::config::RLIMITS {
            assert!(resource(name).is_some(), "{name}");
        }
        let limits = resolve(&BTreeMap::from([(
            "core".to_owned(),
            Rlimit {
                soft: None,
                hard: None,
            },
        )]));
        assert_eq!(limits[0].soft, libc::RLIM_INFINITY);
    }
}
