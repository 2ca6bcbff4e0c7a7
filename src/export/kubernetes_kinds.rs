//! Schedules and replicas in the Kubernetes export.
//!
//! - A scheduled service leaves the pod and becomes a `CronJob` of its own (a `batch/v1`
//!   document after the Deployment) running the same container: `schedule` is the CronJob's
//!   (5 fields; a seconds field cannot be said), `timezone` its `timeZone`, `overlap` its
//!   `concurrencyPolicy` (`skip` → `Forbid`, `kill` → `Replace`, `queue` → `Forbid`,
//!   reported). An `interval` that divides an hour or a day becomes the matching cron
//!   expression; others are reported. `catch_up` → `startingDeadlineSeconds` of a day
//!   (Kubernetes starts a missed run within it); without it, a missed run is skipped.
//! - Replicas stay containers of the one pod (`web-0`, `web-1`, …), since the services
//!   reach each other on localhost; the Deployment's `replicas:` would copy every service.
//!   Reported once per replicated service, with what to do for a separate Deployment.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Overlap, Schedule, ServiceSpec, When};

/// The CronJob for a scheduled service whose container is `container`.
pub(super) fn cron_job(
    deployment: &str,
    spec: &ServiceSpec,
    schedule: &Schedule,
    mut container: Value,
    warn: &mut impl FnMut(&'static str, String),
) -> Option<Value> {
    let cron = match &schedule.when {
        When::Cron(expr) if expr.split_whitespace().count() == 6 => {
            warn(
                "schedule",
                format!(
                    "a CronJob's schedule has no seconds field: `{expr}` cannot be said; no \
                     CronJob written"
                ),
            );
            return None;
        }
        When::Cron(expr) => expr.clone(),
        When::Interval(every) => match interval_cron(*every) {
            Some(expr) => expr,
            None => {
                warn(
                    "interval",
                    format!(
                        "`{}` is not a whole number of minutes that divides an hour, or of \
                         hours that divides a day: no cron expression says it; no CronJob \
                         written",
                        humantime::format_duration(*every)
                    ),
                );
                return None;
            }
        },
    };
    let policy = match schedule.overlap {
        Overlap::Skip => "Forbid",
        Overlap::Kill => "Replace",
        Overlap::Queue => {
            warn(
                "overlap",
                "a CronJob cannot queue a run: `concurrencyPolicy: Forbid` skips a run that \
                 comes due while the previous one is going"
                    .into(),
            );
            "Forbid"
        }
    };
    if schedule.run_on_start {
        warn(
            "run_on_start",
            "a CronJob runs only at its times; create a Job from it for a first run \
             (`kubectl create job --from=cronjob/NAME`)"
                .into(),
        );
    }
    if let Some(obj) = container.as_object_mut() {
        // A Job's pod ends with the run; probes of a long-running container do not apply.
        for key in [
            "restartPolicy",
            "startupProbe",
            "readinessProbe",
            "livenessProbe",
        ] {
            obj.remove(key);
        }
    }
    let name = format!("{deployment}-{}", super::kubernetes::dns_label(&spec.name));
    let mut job_spec = json!({
        "schedule": cron,
        "concurrencyPolicy": policy,
        "jobTemplate": { "spec": { "template": { "spec": {
            "restartPolicy": if spec.restart == crate::config::RestartPolicy::Never { "Never" } else { "OnFailure" },
            "containers": [container],
        } } } },
    });
    if let Some(tz) = &schedule.timezone {
        job_spec["timeZone"] = json!(tz);
    }
    if schedule.catch_up {
        job_spec["startingDeadlineSeconds"] = json!(24 * 3600);
    }
    Some(json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/name": deployment } },
        "spec": job_spec,
    }))
}

/// A cron expression for an interval that divides an hour (in minutes) or a day (in hours).
fn interval_cron(every: Duration) -> Option<String> {
    let secs = every.as_secs();
    if every.subsec_nanos() != 0 || secs == 0 || !secs.is_multiple_of(60) {
        return None;
    }
    let minutes = secs / 60;
    if minutes < 60 && 60u64.is_multiple_of(minutes) {
        return Some(format!("*/{minutes} * * * *"));
    }
    if minutes.is_multiple_of(60) {
        let hours = minutes / 60;
        if hours == 24 {
            return Some("0 0 * * *".into());
        }
        if hours < 24 && 24u64.is_multiple_of(hours) {
            return Some(format!("0 */{hours} * * *"));
        }
    }
    None
}

/// The warning for a replicated service, said once per group.
pub(super) fn replicas_note(group: &str, count: usize) -> String {
    format!(
        "its {count} replicas are containers of the one pod, each with its own \
         `RUNPM_REPLICA` and ports; the Deployment keeps `replicas: 1`, since raising it would \
         copy every service. For `{group}` alone as a scaled Deployment, export it from a \
         config of its own"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_that_divide_an_hour_or_a_day_become_cron() {
        let m = |n: u64| interval_cron(Duration::from_secs(n * 60));
        assert_eq!(m(5).as_deref(), Some("*/5 * * * *"));
        assert_eq!(m(120).as_deref(), Some("0 */2 * * *"));
        assert_eq!(m(24 * 60).as_deref(), Some("0 0 * * *"));
        assert_eq!(m(7), None);
        assert_eq!(interval_cron(Duration::from_secs(90)), None);
    }
}
