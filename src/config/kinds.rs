//! The load-time checks and the expansion of `replicas` and `profiles`, which span
//! services: a replica's name must not be taken, and a service that always runs must not
//! depend on one that runs only in a profile.

use std::collections::BTreeMap;

use super::diagnostic::Diagnostics;
use super::raw::RawDependsOn;
use super::replicas::{self, MAX_REPLICAS, Replicated};
use super::spec::{Overlap, RestartPolicy, Schedule, ServiceSpec, When};
use super::validate::{Unit, is_valid_name};

/// `schedule` or `interval` and the keys that go with them, checked.
pub(super) fn schedule(unit: &Unit, diags: &mut Diagnostics) -> Option<Schedule> {
    use crate::supervisor::schedule::{check_cron, time_zone};
    let raw = &unit.raw.value;
    let report = |diags: &mut Diagnostics, key: &str, message: String| {
        unit.report(diags, unit.at(key), message)
    };
    let when = match (&raw.schedule, raw.interval) {
        (Some(_), Some(_)) => {
            let message = "both `schedule` and `interval` are set; keep one".into();
            report(diags, "interval", message);
            return None;
        }
        (Some(expr), None) => {
            if let Err(message) = check_cron(expr) {
                report(diags, "schedule", message);
                return None;
            }
            When::Cron(expr.clone())
        }
        (None, Some(every)) if every.0.is_zero() => {
            report(
                diags,
                "interval",
                "`interval` must be longer than zero".into(),
            );
            return None;
        }
        (None, Some(every)) => When::Interval(every.0),
        (None, None) => {
            for key in ["timezone", "overlap", "run_on_start", "catch_up"] {
                if unit.keys.contains_key(key) {
                    report(
                        diags,
                        key,
                        format!("`{key}` goes with `schedule` or `interval`"),
                    );
                }
            }
            return None;
        }
    };
    if let Some(name) = &raw.timezone {
        if matches!(when, When::Interval(_)) {
            report(
                diags,
                "timezone",
                "`timezone` goes with `schedule` (an `interval` has no time of day)".into(),
            );
        } else if let Err(message) = time_zone(Some(name)) {
            report(diags, "timezone", message);
        }
    }
    if raw.restart.is_some_and(|r| r.0 == RestartPolicy::Always) {
        report(
            diags,
            "restart",
            "`restart = \"always\"` would run a scheduled service without end; a run that \
             fails is retried with `on-failure`, and the next run comes at its time"
                .into(),
        );
    }
    Some(Schedule {
        when,
        timezone: raw.timezone.clone(),
        overlap: raw.overlap.map_or(Overlap::default(), |o| o.0),
        run_on_start: raw.run_on_start.unwrap_or(false),
        catch_up: raw.catch_up.unwrap_or(false),
    })
}

/// Every replica name a unit's `replicas` makes, with its group.
pub(super) fn members(units: &[Unit]) -> Vec<(String, String)> {
    units
        .iter()
        .flat_map(|u| {
            let count = u.raw.value.replicas.unwrap_or(0).min(MAX_REPLICAS);
            (0..count).map(move |i| (replicas::member(&u.name, i), u.name.clone()))
        })
        .collect()
}

pub(super) fn check(
    units: &[Unit],
    services: &BTreeMap<String, ServiceSpec>,
    diags: &mut Diagnostics,
) {
    let by_name: BTreeMap<&str, &Unit> = units.iter().map(|u| (u.name.as_str(), u)).collect();
    for unit in units {
        let raw = &unit.raw.value;
        if let Some(count) = raw.replicas.filter(|&n| n > MAX_REPLICAS) {
            unit.report(
                diags,
                unit.at("replicas"),
                format!("`replicas` is {count}: at most {MAX_REPLICAS}"),
            );
        }
        for profile in raw.profiles.iter().flatten() {
            if !is_valid_name(profile) {
                unit.report(
                    diags,
                    unit.at("profiles"),
                    format!(
                        "invalid profile name `{profile}`: use letters, digits, `_`, `.` and \
                         `-`, starting with a letter or digit"
                    ),
                );
            }
        }
    }
    for (member, group) in members(units) {
        if let (Some(taken), Some(group_unit)) =
            (by_name.get(member.as_str()), by_name.get(group.as_str()))
        {
            let theirs = place(taken, taken.header.clone());
            let ours = place(group_unit, group_unit.at("replicas"));
            taken.report(
                diags,
                taken.header.clone(),
                format!(
                    "the name `{member}` is taken by a replica of `{group}` (`replicas` at \
                     {ours}): rename this service or lower `replicas`"
                ),
            );
            group_unit.report(
                diags,
                group_unit.at("replicas"),
                format!(
                    "replica `{member}` collides with the service defined at {theirs}: rename \
                     one of them"
                ),
            );
        }
    }
    // Compose's rule: what always runs cannot need what runs only in a profile.
    let group_of = |dep: &str| -> Option<String> {
        if by_name.contains_key(dep) {
            return Some(dep.to_owned());
        }
        let (group, index) = dep.rsplit_once('.')?;
        let count = by_name.get(group)?.raw.value.replicas?;
        index
            .parse::<u32>()
            .ok()
            .filter(|&i| i < count)
            .map(|_| group.to_owned())
    };
    for unit in units {
        if unit
            .raw
            .value
            .profiles
            .as_ref()
            .is_some_and(|p| !p.is_empty())
        {
            continue;
        }
        for dep in unit
            .raw
            .value
            .depends_on
            .iter()
            .flat_map(RawDependsOn::names)
        {
            let Some(target) = group_of(dep.get_ref()).and_then(|g| services.get(&g)) else {
                continue;
            };
            if target.profiles.is_empty() {
                continue;
            }
            unit.report(
                diags,
                Some(dep.span()),
                format!(
                    "depends on `{}`, which runs only with profile {}, but `{}` has no \
                     `profiles` and always runs: add `profiles = [{}]` to `{}` too, or remove \
                     them from `{}`",
                    dep.get_ref(),
                    quoted(&target.profiles, " or "),
                    unit.name,
                    quoted(&target.profiles, ", "),
                    unit.name,
                    target.name
                ),
            );
        }
    }
}

/// `file:line:col` of `span` in `unit`'s file, to point from one error at another place.
fn place(unit: &Unit, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let (line, column) = unit.source.position(span.start);
            format!("{}:{line}:{column}", unit.source.path)
        }
        None => unit.source.path.to_string(),
    }
}

fn quoted(list: &[String], sep: &str) -> String {
    list.iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Replaces every service with `replicas` by its replicas, and dependencies on it by
/// dependencies on them; the specs as written, by group.
pub(super) fn expand(
    units: &[Unit],
    services: &mut BTreeMap<String, ServiceSpec>,
) -> BTreeMap<String, Replicated> {
    let mut out = BTreeMap::new();
    for unit in units {
        let Some(count) = unit.raw.value.replicas else {
            continue;
        };
        let Some(template) = services.remove(&unit.name) else {
            continue;
        };
        let count = count.min(MAX_REPLICAS);
        let dependents = services
            .values()
            .filter(|s| s.depends_on.contains(&unit.name))
            .map(|s| (s.name.clone(), s.condition(&unit.name)))
            .collect();
        for replica in replicas::expand(&template, count) {
            // A collision was reported; the unit written under that name stays.
            services.entry(replica.name.clone()).or_insert(replica);
        }
        out.insert(
            unit.name.clone(),
            Replicated {
                template,
                count,
                dependents,
            },
        );
    }
    let counts = out.iter().map(|(g, r)| (g.clone(), r.count)).collect();
    replicas::resolve_groups(services, &counts);
    out
}
